// The text part the dispatcher derives for an email that has only an html template.
#pragma once

#include <string>
#include <string_view>

namespace pv::dispatcher {

// Plain text from HTML for an email's text part: drops tags, <head>, <style> and <script>; breaks
// lines at block elements and <br>; keeps link targets as "text (url)"; decodes the common entities;
// collapses runs of blank space.
std::string HtmlToText(std::string_view html);

}  // namespace pv::dispatcher
