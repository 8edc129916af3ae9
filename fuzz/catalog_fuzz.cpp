// A campaign file of the catalog (common/src/catalog.cpp), loaded the way ingest and the dispatcher
// load it: the input is written as <dir>/campaign.yaml beside a copy of the demo catalog's template
// files (so html_file: templates/44.en.html resolves), then CompiledCatalog::Load (Catalog::
// LoadDirectory, then every template compiled) runs on the directory, and each campaign it accepts is
// rendered for a trigger through Render(), as the dispatcher renders a send.
//
// Invariants: loading either throws CatalogError or yields campaigns that hold what catalog.hpp
// promises (an id, a valid project name and language tag, a send window inside the day, at least one
// template), and every accepted template renders or reports an error (never throws); ChooseLocale
// always picks a template the campaign has.
//
// Inputs naming /dev/, /proc/ or /sys/ are skipped: the catalog is operator configuration, and
// `html_file: /dev/zero` reads forever by design of the file system, not of pv.
#include <rapidjson/document.h>
#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "fuzz_support.hpp"
#include "pv/dispatcher/renderer.hpp"
#include "pv/validate.hpp"

namespace {

using pv::fuzz::Check;
namespace fs = std::filesystem;

struct Directory {
  Directory() {
    std::string base = fs::is_directory("/dev/shm") ? "/dev/shm" : fs::temp_directory_path().string();
    std::string pattern = base + "/pv-catalog-fuzz.XXXXXX";
    path = mkdtemp(pattern.data());
    fs::copy(fs::path(PV_DEMO_CATALOG) / "templates", fs::path(path) / "templates", fs::copy_options::recursive);
    file = path + "/campaign.yaml";
  }
  ~Directory() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string path;
  std::string file;
};

void RenderAll(const pv::dispatcher::CompiledCatalog& compiled) {
  static const char* kTrigger =
      R"({"user":{"external_id":"u-1","first_name":"<b>Ana</b>","locale":"pt-BR","email":"a@b.co"},)"
      R"("event":{"order_id":"A-17","items":[{"name":"<i>x</i>","quantity":2}],"item_count":3,"cart_id":"c&1"}})";
  rapidjson::Document doc;
  doc.Parse(kTrigger);
  for (const auto& [id, campaign] : compiled.catalog().campaigns()) {
    Check(!campaign.id.empty() && campaign.id == id, "a campaign without its id", id);
    Check(pv::validate::IsProjectName(campaign.project), "an accepted campaign with a bad project", campaign.project);
    Check(campaign.default_locale.empty() || pv::validate::IsLanguageTag(campaign.default_locale),
          "an accepted campaign with a bad default locale", campaign.default_locale);
    Check(!campaign.templates.empty(), "an accepted campaign without templates", id);
    if (campaign.send_window) {
      const auto& w = *campaign.send_window;
      Check(w.start_minute >= 0 && w.start_minute <= 1440 && w.end_minute >= 0 && w.end_minute <= 1440,
            "a send window outside the day", id);
    }
    const auto* c = compiled.Find(id);
    Check(c != nullptr && c->locales.size() == c->templates.size(), "a campaign not compiled", id);
    for (std::string_view locale : {"pt-BR", "en", "", "zz-ZZ-x"}) {
      Check(pv::dispatcher::ChooseLocale(c->locales, locale, campaign.default_locale) < c->locales.size(),
            "ChooseLocale chose no template", locale);
      pv::dispatcher::TemplateData data(&doc["user"], &doc["event"], &campaign);
      pv::dispatcher::Content content;
      for (auto mode : {pv::dispatcher::MissingVariables::kEmpty, pv::dispatcher::MissingVariables::kFail}) {
        auto result = pv::dispatcher::Render(*c, locale, data, mode, content);
        Check(result.ok || !result.error.empty(), "a render failed without a reason", id);
      }
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static Directory dir;
  std::string_view yaml(reinterpret_cast<const char*>(data), size);
  for (std::string_view special : {"/dev/", "/proc/", "/sys/"}) {
    if (yaml.find(special) != std::string_view::npos) return 0;
  }
  {
    std::ofstream out(dir.file, std::ios::binary | std::ios::trunc);
    out.write(yaml.data(), static_cast<std::streamsize>(yaml.size()));
  }
  pv::fuzz::Budget budget("catalog");
  std::shared_ptr<pv::dispatcher::CompiledCatalog> compiled;
  try {
    compiled = pv::dispatcher::CompiledCatalog::Load(dir.path);
  } catch (const pv::CatalogError& e) {
    Check(std::string_view(e.what()).find("problem") != std::string_view::npos, "a catalog error without problems",
          e.what());
    return 0;
  }
  RenderAll(*compiled);
  return 0;
}
