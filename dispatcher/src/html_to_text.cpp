#include "pv/dispatcher/html_to_text.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <set>
#include <string>

namespace pv::dispatcher {

namespace {

void AppendUtf8(std::string& out, unsigned long cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x110000) {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// Decodes the entity at html[i] ('&'); returns the characters consumed, 0 when not an entity.
size_t DecodeEntity(std::string_view html, size_t i, std::string& out) {
  size_t semi = html.find(';', i);
  if (semi == std::string_view::npos || semi - i > 10) return 0;
  std::string_view name = html.substr(i + 1, semi - i - 1);
  if (!name.empty() && name.front() == '#') {
    unsigned long cp = 0;
    std::string_view digits = name.substr(1);
    int base = 10;
    if (!digits.empty() && (digits.front() == 'x' || digits.front() == 'X')) {
      base = 16;
      digits.remove_prefix(1);
    }
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), cp, base);
    if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size()) return 0;
    AppendUtf8(out, cp == 0xA0 ? ' ' : cp);
    return semi - i + 1;
  }
  static const std::pair<std::string_view, std::string_view> kNamed[] = {
      {"amp", "&"},   {"lt", "<"},    {"gt", ">"},    {"quot", "\""},  {"apos", "'"},   {"nbsp", " "},
      {"times", "×"}, {"mdash", "—"}, {"ndash", "–"}, {"hellip", "…"}, {"copy", "©"},   {"reg", "®"},
      {"trade", "™"}, {"euro", "€"},  {"pound", "£"}, {"laquo", "«"},  {"raquo", "»"},  {"rsquo", "’"},
      {"lsquo", "‘"}, {"rdquo", "”"}, {"ldquo", "“"}, {"bull", "•"},   {"middot", "·"},
  };
  for (const auto& [n, v] : kNamed) {
    if (name == n) {
      out += v;
      return semi - i + 1;
    }
  }
  return 0;
}

// Output with whitespace collapsed as a browser would, and line breaks requested by block tags.
class TextOut {
 public:
  void Char(char c) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f') {
      space_ = true;
      return;
    }
    if (space_ && !out_.empty() && out_.back() != '\n') out_ += ' ';
    space_ = false;
    out_ += c;
  }
  void Text(std::string_view s) {
    for (char c : s) Char(c);
  }
  // Ensures the output ends with `n` newlines (1: line break, 2: paragraph break).
  void Break(int n) {
    space_ = false;
    while (!out_.empty() && out_.back() == ' ') out_.pop_back();
    if (out_.empty()) return;
    int have = 0;
    for (auto it = out_.rbegin(); it != out_.rend() && *it == '\n'; ++it) ++have;
    for (; have < n; ++have) out_ += '\n';
  }
  size_t size() const { return out_.size(); }
  std::string_view Since(size_t pos) const { return std::string_view(out_).substr(pos); }
  std::string Finish() {
    while (!out_.empty() && (out_.back() == '\n' || out_.back() == ' ')) out_.pop_back();
    return std::move(out_);
  }

 private:
  std::string out_;
  bool space_ = false;
};

std::string Lower(std::string_view text) {
  std::string lower(text);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  return lower;
}

std::string AttributeValue(std::string_view tag, std::string_view name) {
  // tag is the inside of <...>; finds name="value", name='value' or name=value.
  std::string lower = Lower(tag);
  size_t pos = 0;
  while ((pos = lower.find(name, pos)) != std::string::npos) {
    bool boundary = pos > 0 && std::isspace(static_cast<unsigned char>(lower[pos - 1]));
    size_t i = pos + name.size();
    while (i < lower.size() && lower[i] == ' ') ++i;
    if (!boundary || i >= lower.size() || lower[i] != '=') {
      pos += name.size();
      continue;
    }
    ++i;
    while (i < lower.size() && lower[i] == ' ') ++i;
    if (i >= lower.size()) return {};
    char quote = tag[i];
    if (quote == '"' || quote == '\'') {
      size_t end = tag.find(quote, i + 1);
      return std::string(
          tag.substr(i + 1, end == std::string_view::npos ? std::string_view::npos : end - i - 1));
    }
    size_t end = i;
    while (end < tag.size() && !std::isspace(static_cast<unsigned char>(tag[end])) && tag[end] != '>') ++end;
    return std::string(tag.substr(i, end - i));
  }
  return {};
}

}  // namespace

std::string HtmlToText(std::string_view html) {
  static const std::set<std::string, std::less<>> kParagraph = {
      "p", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol", "blockquote", "hr"};
  static const std::set<std::string, std::less<>> kLine = {
      "br", "div", "tr", "section", "article", "header", "footer", "pre", "address", "dl", "dt", "dd"};
  static const std::set<std::string, std::less<>> kSkip = {"head", "style", "script", "title", "template"};
  TextOut out;
  std::string href;
  size_t link_start = 0;
  size_t i = 0;
  while (i < html.size()) {
    char c = html[i];
    if (c == '&') {
      std::string decoded;
      if (size_t used = DecodeEntity(html, i, decoded); used > 0) {
        out.Text(decoded == " " ? std::string_view("\x01") : std::string_view(decoded));
        i += used;
        continue;
      }
    }
    if (c == '<' && html.substr(i, 4) == "<!--") {
      size_t end = html.find("-->", i + 4);
      i = end == std::string_view::npos ? html.size() : end + 3;
      continue;
    }
    size_t end = c == '<' ? html.find('>', i + 1) : std::string_view::npos;
    if (end == std::string_view::npos) {  // text, or a '<' that opens no tag
      out.Char(c);
      ++i;
      continue;
    }
    std::string_view tag = html.substr(i + 1, end - i - 1);
    i = end + 1;
    bool closing = !tag.empty() && tag.front() == '/';
    std::string_view body = closing ? tag.substr(1) : tag;
    size_t name_end = 0;
    while (name_end < body.size() && std::isalnum(static_cast<unsigned char>(body[name_end]))) ++name_end;
    std::string name = Lower(body.substr(0, name_end));
    if (name.empty()) continue;  // <!DOCTYPE>, <?xml?>
    if (!closing && kSkip.count(name) != 0) {
      // Skip to the matching close tag, case-insensitively.
      size_t close = Lower(html.substr(i)).find("</" + name);
      size_t gt = close == std::string::npos ? std::string_view::npos : html.find('>', i + close);
      i = gt == std::string_view::npos ? html.size() : gt + 1;
      continue;
    }
    if (name == "a") {
      if (!closing) {
        href = AttributeValue(tag, "href");
        link_start = out.size();
      } else if (!href.empty()) {
        std::string_view text = out.Since(link_start);
        while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
        std::string_view shown = href;
        if (shown.substr(0, 7) == "mailto:") shown.remove_prefix(7);
        if (text != shown && text != href) {
          out.Text(" (");
          out.Text(href);
          out.Text(")");
        }
        href.clear();
      }
      continue;
    }
    if (name == "li") {
      out.Break(1);
      if (!closing) out.Text("- ");
      continue;
    }
    if (name == "td" || name == "th") {
      if (closing) out.Char(' ');
      continue;
    }
    if (kParagraph.count(name) != 0) {
      out.Break(2);
    } else if (kLine.count(name) != 0) {
      out.Break(1);
    }
  }
  std::string text = out.Finish();
  // &nbsp; was kept as \x01 so that collapsing did not eat it; it is a plain space in the text.
  std::replace(text.begin(), text.end(), '\x01', ' ');
  return text;
}

}  // namespace pv::dispatcher
