// The dispatcher's campaigns: catalog_dir merged with the campaigns topic (Catalog::Merge: the newer
// version of a campaign wins), every template compiled. Private to the dispatcher library.
//
// Thread-safe. The campaign feed's thread brings the topic's changes, the signal thread SIGHUP's
// reload of the files, the trigger pipeline asks for the current catalog between batches and, for a
// campaign it does not know, for a refresh of both sources (Refresh).
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "dispatcher_metrics.hpp"
#include "pv/campaign_feed.hpp"
#include "pv/dispatcher/renderer.hpp"
#include "pv/kafka.hpp"

namespace pv::dispatcher {

class CatalogSource {
 public:
  // Loads and compiles catalog_dir (throws CatalogError: a dispatcher does not start on a broken
  // catalog), then follows `topic` unless it is empty. A record of the topic whose templates do not
  // compile is ignored (counted invalid) and the campaign's last good version kept.
  CatalogSource(std::string dir, const kafka::Settings& settings, const std::string& topic,
                DispatcherMetrics& metrics);
  ~CatalogSource();
  CatalogSource(const CatalogSource&) = delete;
  CatalogSource& operator=(const CatalogSource&) = delete;

  // The catalog to render with now.
  std::shared_ptr<CompiledCatalog> Current() const { return current_.load(); }
  // Reloads catalog_dir and merges it with the topic's campaigns again; a broken catalog_dir is
  // refused (logged with `reason`, counted) and the previous files kept. Returns whether it loaded.
  bool ReloadFiles(const char* reason);
  // For a campaign the pipeline does not know: waits (up to `sync_timeout`) until the feed has read
  // what the topic holds now, reloads catalog_dir, and returns the current catalog.
  std::shared_ptr<CompiledCatalog> Refresh(std::chrono::milliseconds sync_timeout);
  // Waits until the feed has read the topic as it was at start, up to `timeout` or until `stop`.
  // True when read (or there is no topic to read).
  bool WaitForTopic(std::chrono::milliseconds timeout, const std::atomic<bool>& stop);

 private:
  // Merges and compiles the sources (under mutex_) and makes the result current.
  void PublishLocked();

  std::string dir_;
  std::string topic_;
  DispatcherMetrics& metrics_;
  std::mutex mutex_;
  std::shared_ptr<const Catalog> files_;
  std::vector<TopicCampaign> topic_campaigns_;
  std::atomic<std::shared_ptr<CompiledCatalog>> current_;
  std::unique_ptr<CampaignFeed> feed_;  // last: stopped first, while what it updates exists
};

}  // namespace pv::dispatcher
