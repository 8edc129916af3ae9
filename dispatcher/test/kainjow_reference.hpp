// The renderer as it was up to issue 13: kainjow/mustache (Debian's header-only implementation) with our
// name lookup on top. Kept only as the reference that renderer_test and fuzz/render_fuzz.cpp compare
// pv::dispatcher::CompiledText against (same refusals, same output, same missing variables), while
// libkainjow-mustache-dev is still installed; the dispatcher itself no longer links it.
#pragma once

#include <rapidjson/document.h>

#include <memory>
#include <string>
#include <vector>

#include "pv/catalog.hpp"

namespace pv::dispatcher::reference {

class KainjowText {
 public:
  // Returns nullptr and sets `error` when kainjow (or the tag scan in front of it) refuses `source`.
  static std::unique_ptr<KainjowText> Compile(const std::string& source, bool html_escape,
                                              std::string& error);
  ~KainjowText();

  // The members of `root` as the top-level names (TemplateData(root)).
  bool Render(const rapidjson::Value& root, std::string& out, std::vector<std::string>* missing,
              std::string& error) const;
  // {user, event, campaign{id, name}} (TemplateData(user, event, campaign)).
  bool Render(const rapidjson::Value* user, const rapidjson::Value* event, const Campaign* campaign,
              std::string& out, std::vector<std::string>* missing, std::string& error) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pv::dispatcher::reference
