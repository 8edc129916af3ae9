#include "catalog_source.hpp"

#include "pv/log.hpp"

namespace pv::dispatcher {

CatalogSource::CatalogSource(std::string dir, const kafka::Settings& settings, const std::string& topic,
                             DispatcherMetrics& metrics)
    : dir_(std::move(dir)), topic_(topic), metrics_(metrics) {
  files_ = Catalog::LoadDirectory(dir_);
  current_.store(CompiledCatalog::Compile(files_));  // throws: every template error, with file and field
  metrics_.catalog_campaigns.Get().Set(static_cast<double>(files_->size()));
  log::Info("catalog_loaded", {{"dir", dir_}, {"campaigns", files_->size()}});
  if (topic_.empty()) return;
  // A record must compile on its own before it may replace anything: a merged catalog that failed
  // to compile would hold back every other change.
  auto check = [](const Campaign& campaign, std::string& error) {
    try {
      CompiledCatalog::Compile(Catalog::Of(campaign.source_file, {campaign}));
      return true;
    } catch (const std::exception& e) {
      error = e.what();
      return false;
    }
  };
  feed_ = std::make_unique<CampaignFeed>(
      settings, topic_, "pv-dispatcher-campaigns", metrics_.campaign_records, check,
      [this](const std::vector<TopicCampaign>& states) {
        std::lock_guard lock(mutex_);
        topic_campaigns_ = states;
        PublishLocked();
        log::Info(
            "catalog_updated_from_topic",
            {{"topic", topic_}, {"topic_campaigns", states.size()}, {"campaigns", current_.load()->size()}});
      });
}

CatalogSource::~CatalogSource() {
  feed_.reset();
}

void CatalogSource::PublishLocked() {
  try {
    auto merged = topic_campaigns_.empty() ? files_ : Catalog::Merge(*files_, topic_campaigns_);
    auto compiled = CompiledCatalog::Compile(merged);
    metrics_.catalog_campaigns.Get().Set(static_cast<double>(compiled->size()));
    current_.store(std::move(compiled));
  } catch (const std::exception& e) {
    // Not expected: the files compiled when loaded and every record on its own. Keep what works.
    metrics_.catalog_reloads.With({"error"}).Inc();
    log::Error("catalog_merge_failed", {{"error", e.what()}, {"action", "keeping the previous catalog"}});
  }
}

bool CatalogSource::ReloadFiles(const char* reason) {
  try {
    // Compiled alone first, so that a template error in a file refuses the reload (and is reported)
    // even when the topic holds a newer version of that campaign.
    auto files = Catalog::LoadDirectory(dir_);
    CompiledCatalog::Compile(files);
    std::lock_guard lock(mutex_);
    files_ = std::move(files);
    PublishLocked();
    metrics_.catalog_reloads.With({"ok"}).Inc();
    log::Info("catalog_reloaded",
              {{"reason", reason}, {"files", files_->size()}, {"campaigns", current_.load()->size()}});
    return true;
  } catch (const std::exception& e) {
    metrics_.catalog_reloads.With({"error"}).Inc();
    log::Error("catalog_reload_failed",
               {{"reason", reason}, {"error", e.what()}, {"action", "keeping the previous catalog"}});
    return false;
  }
}

std::shared_ptr<CompiledCatalog> CatalogSource::Refresh(std::chrono::milliseconds sync_timeout) {
  if (feed_ && !feed_->Sync(sync_timeout)) {
    log::Warn(
        "campaigns_topic_sync_failed",
        {{"topic", topic_}, {"timeout_ms", sync_timeout.count()}, {"action", "going on with what was read"}});
  }
  ReloadFiles("unknown campaign");
  return Current();
}

bool CatalogSource::WaitForTopic(std::chrono::milliseconds timeout, const std::atomic<bool>& stop) {
  if (!feed_) return true;
  auto start = std::chrono::steady_clock::now();
  while (!stop.load() && std::chrono::steady_clock::now() - start < timeout) {
    if (feed_->WaitCaughtUp(std::chrono::milliseconds(100))) {
      log::Info("campaigns_topic_read", {{"topic", topic_},
                                         {"waited_ms", std::chrono::duration_cast<std::chrono::milliseconds>(
                                                           std::chrono::steady_clock::now() - start)
                                                           .count()}});
      return true;
    }
  }
  if (!stop.load()) {
    log::Warn("campaigns_topic_not_read",
              {{"topic", topic_},
               {"waited_ms", timeout.count()},
               {"action", "dispatching with catalog_dir and what was read; the rest applies as it arrives"}});
  }
  return false;
}

}  // namespace pv::dispatcher
