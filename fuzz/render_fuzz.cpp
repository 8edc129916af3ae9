// Mustache rendering (dispatcher/src/renderer.cpp) with a hostile template and hostile data, and
// HtmlToText on hostile HTML. Fields split at 0x1e (fuzz_support.hpp):
//
//   h|<template>|<data JSON>   CompiledText with HTML escaping (an email's html field)
//   t|<template>|<data JSON>   without escaping (subject, text, SMS, push)
//   x|<html>                   HtmlToText (the text part derived from an email's html)
//
// The data is the template's top level (TemplateData(root)), parsed the way the dispatcher parses a
// trigger record. Invariants, with HTML escaping and a template that inserts nothing raw ({{{ }}},
// {{& }}: no '&' and no "{{{" in it): a '<' in the data only ever comes out as "&lt;" (rendering with
// every '<' of the data's strings replaced by 'a' gives the same output once "&lt;" is read as 'a'),
// and a template without '<' renders without '<'. Rendering the same template twice gives the same
// output (a CompiledText is reused for every trigger). And it is kainjow/mustache's (the renderer up to
// issue 13, dispatcher/test/kainjow_reference.hpp): the same templates refused with the same error,
// except a delimiter change in a triple tag and sections nested too deep, which only we refuse; the
// same output and missing variables, unless our render stopped at one of its limits. HtmlToText's
// output is at most about twice its input (link targets are repeated once).
#include <rapidjson/document.h>

#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_support.hpp"
#include "kainjow_reference.hpp"
#include "pv/dispatcher/html_to_text.hpp"
#include "pv/dispatcher/renderer.hpp"

namespace {

using pv::fuzz::Check;

void ReplaceLt(rapidjson::Value& v, rapidjson::Document::AllocatorType& alloc) {
  if (v.IsString()) {
    std::string s(v.GetString(), v.GetStringLength());
    for (char& c : s) {
      if (c == '<') c = 'a';
    }
    v.SetString(s.data(), static_cast<rapidjson::SizeType>(s.size()), alloc);
    return;
  }
  if (v.IsArray()) {
    for (auto& item : v.GetArray()) ReplaceLt(item, alloc);
  } else if (v.IsObject()) {
    // By index: clang 14 finds RapidJSON's member iterator comparison ambiguous under C++20.
    for (rapidjson::SizeType i = 0; i < v.MemberCount(); ++i) ReplaceLt((v.MemberBegin() + i)->value, alloc);
  }
}

std::string EntitiesAsA(std::string s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    if (s.compare(i, 4, "&lt;") == 0) {
      out += 'a';
      i += 4;
    } else {
      out += s[i++];
    }
  }
  return out;
}

std::string RenderWith(const pv::dispatcher::CompiledText& text, const rapidjson::Value& root, bool& ok,
                       std::vector<std::string>* missing = nullptr) {
  pv::dispatcher::TemplateData data(root);
  std::string out;
  std::string error;
  ok = text.Render(data, out, missing, error);
  return out;
}

// Sections nested deeper than CompiledText::kMaxDepth, counted the way the parse counts them.
bool TooDeep(std::string_view source) {
  int depth = 0;
  for (size_t pos = 0; (pos = source.find("{{", pos)) != std::string_view::npos;) {
    bool triple = source.compare(pos, 3, "{{{") == 0;
    size_t close = source.find(triple ? "}}}" : "}}", pos + (triple ? 3 : 2));
    if (close == std::string_view::npos) return false;
    std::string_view tag = source.substr(pos + 2, close - pos - 2);
    size_t first = tag.find_first_not_of(" \t\n\v\f\r");
    char sigil = triple || first == std::string_view::npos ? '\0' : tag[first];
    if (sigil == '#' || sigil == '^') {
      if (++depth > pv::dispatcher::CompiledText::kMaxDepth) return true;
    } else if (sigil == '/' && depth > 0) {
      --depth;
    }
    pos = close + (triple ? 3 : 2);
  }
  return false;
}

void SameAsKainjow(bool html_escape, const std::string& source, const rapidjson::Value& root,
                   const pv::dispatcher::CompiledText* text, const std::string& error) {
  std::string reference_error;
  auto reference = pv::dispatcher::reference::KainjowText::Compile(source, html_escape, reference_error);
  if (!text) {
    // Ours alone: a delimiter change in a triple tag (kainjow switched delimiters, or refused an
    // invalid one with its own message) and sections nested too deep.
    bool ours_only =
        (error.find("delimiters") != std::string::npos && source.find("{{{") != std::string::npos) ||
        (error.find("nested deeper") != std::string::npos && TooDeep(source));
    Check(reference == nullptr ? reference_error == error || ours_only : ours_only,
          "refused otherwise than kainjow", source + "\n----\n" + error + "\n----\n" + reference_error);
    return;
  }
  Check(reference != nullptr, "accepted what kainjow refuses", source + "\n----\n" + reference_error);
  bool ok = false;
  std::vector<std::string> missing;
  std::string out = RenderWith(*text, root, ok, &missing);
  if (!ok) return;  // a limit: kainjow has none
  std::string reference_out;
  std::vector<std::string> reference_missing;
  reference->Render(root, reference_out, &reference_missing, reference_error);
  Check(out == reference_out, "rendered otherwise than kainjow",
        source + "\n----\n" + out + "\n----\n" + reference_out);
  Check(missing == reference_missing, "missing variables otherwise than kainjow", source);
}

void Template(bool html_escape, std::string_view source, std::string_view json) {
  rapidjson::Document doc;
  doc.Parse(json.data(), json.size());
  if (doc.HasParseError() || !doc.IsObject()) doc.SetObject();
  std::string error;
  auto text = pv::dispatcher::CompiledText::Compile(std::string(source), html_escape, error);
  SameAsKainjow(html_escape, std::string(source), doc, text.get(), error);
  if (!text) {
    Check(!error.empty(), "a template refused without a reason", source);
    return;
  }
  bool ok = false;
  std::string out = RenderWith(*text, doc, ok);
  bool again_ok = false;
  Check(RenderWith(*text, doc, again_ok) == out && again_ok == ok, "a second render differs", source);
  if (!html_escape || !ok) return;
  bool raw = source.find('&') != std::string_view::npos || source.find("{{{") != std::string_view::npos;
  if (raw) return;
  if (source.find('<') == std::string_view::npos) {
    Check(out.find('<') == std::string::npos, "a '<' from the data was not escaped", out);
  }
  rapidjson::Document replaced;
  replaced.CopyFrom(doc, replaced.GetAllocator());
  ReplaceLt(replaced, replaced.GetAllocator());
  bool replaced_ok = false;
  std::string other = RenderWith(*text, replaced, replaced_ok);
  Check(replaced_ok && EntitiesAsA(out) == EntitiesAsA(other),
        "a '<' of the data changed the output beyond &lt;", out + "\n----\n" + other);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  pv::fuzz::Budget budget("render");
  pv::fuzz::Fields in(data, size);
  unsigned char mode = in.Byte();
  if (mode == 'x') {
    std::string_view html = in.Rest();
    std::string text = pv::dispatcher::HtmlToText(html);
    Check(text.size() <= 2 * html.size() + 16, "HtmlToText grew its input", text);
    return 0;
  }
  if (mode != 'h' && mode != 't') return 0;
  std::string_view source = in.Next();
  Template(mode == 'h', source, in.Rest());
  return 0;
}
