// A replica's view of the campaigns topic (pv.campaigns): ingest and the dispatcher each follow it
// from its beginning (kafka::TopicFeed, no consumer group), keep the newest state of every campaign id
// on it (TopicCampaignSupersedes), removals included, and hand them all to their owner whenever one
// changes, for the owner to merge with its catalog_dir (Catalog::Merge). This is how a campaign
// applied with `pvctl campaigns apply` on one machine reaches every replica within about a second.
//
// Every record is outside data. One that cannot be read, that fails the owner's check, or that would
// keep more than kMaxTopicCampaigns ids is logged (campaign_record_ignored) and counted
// (result="invalid" or "over_limit"), and changes nothing: the last good state of its campaign stays.
// A record older than the state held is counted as "older"; one that changes the state, "applied".
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "pv/campaign_records.hpp"
#include "pv/kafka.hpp"
#include "pv/metrics.hpp"
#include "pv/topic_feed.hpp"

namespace pv {

class CampaignFeed {
 public:
  // More than the record's own rules, e.g. the dispatcher compiles the templates. Empty: none.
  using Check = std::function<bool(const Campaign& campaign, std::string& error)>;
  // On the feed's thread, with the newest state of every campaign id read so far.
  using OnChange = std::function<void(const std::vector<TopicCampaign>& states)>;

  // `records` is the owner's counter family with one label, result. Starts following at once;
  // throws kafka::KafkaError on a bad property.
  CampaignFeed(const kafka::Settings& settings, std::string topic, const std::string& client_id,
               metrics::Family<metrics::Counter>& records, Check check, OnChange on_change);
  ~CampaignFeed();
  CampaignFeed(const CampaignFeed&) = delete;
  CampaignFeed& operator=(const CampaignFeed&) = delete;

  // kafka::TopicFeed::WaitCaughtUp and Sync: on_change has run for what they report as read.
  bool WaitCaughtUp(std::chrono::milliseconds timeout) { return feed_->WaitCaughtUp(timeout); }
  bool Sync(std::chrono::milliseconds timeout) { return feed_->Sync(timeout); }
  const std::string& topic() const { return topic_; }

 private:
  bool Apply(const rd_kafka_message_t* m);

  std::string topic_;
  Check check_;
  OnChange on_change_;
  metrics::Counter& applied_;
  metrics::Counter& older_;
  metrics::Counter& invalid_;
  metrics::Counter& over_limit_;
  std::map<std::string, TopicCampaign> states_;  // on the feed's thread only
  std::unique_ptr<kafka::TopicFeed> feed_;       // last: stopped first, while the state above exists
};

}  // namespace pv
