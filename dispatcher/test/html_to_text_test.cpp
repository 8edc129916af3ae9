#include "pv/dispatcher/html_to_text.hpp"

#include <gtest/gtest.h>

namespace pv::dispatcher {
namespace {

TEST(HtmlToText, ReadableTextFromHtml) {
  EXPECT_EQ(
      HtmlToText(
          "<html><head><title>T</title><style>p{color:red}</style></head><body>"
          "<h1>Order   shipped</h1><p>Hi <b>Ana</b>,<br>your order &amp; gift.</p>"
          "<ul><li>Pen &times; 2</li><li>Ink</li></ul>"
          "<p>Track it <a href=\"https://t.example/1\">here</a> or at "
          "<a href='https://t.example/2'>https://t.example/2</a>.</p>"
          "<script>alert(1)</script><!-- hidden --><p>&copy;&nbsp;Shop &#8212; &#x41;</p></body></html>"),
      "Order shipped\n\nHi Ana,\nyour order & gift.\n\n- Pen × 2\n- Ink\n\n"
      "Track it here (https://t.example/1) or at https://t.example/2.\n\n© Shop — A");
  EXPECT_EQ(HtmlToText("just text &unknown; < 3"), "just text &unknown; < 3");
}

}  // namespace
}  // namespace pv::dispatcher
