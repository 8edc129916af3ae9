// pv-worker-fill: produces synthetic sends to pv.send.<channel>, as the dispatcher would, for
// bench/workers and manual runs on the dev stack. Waits until the brokers acknowledged every record.
//
//   pv-worker-fill --brokers HOST:PORT[,...] [--channel email|text|push] [--provider NAME]
//                  [--count N] [--campaign ID]
#include <fmt/format.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "pv/command_line.hpp"
#include "pv/ids.hpp"
#include "pv/json.hpp"
#include "pv/kafka.hpp"
#include "kafka_client.hpp"
#include "pv/records.hpp"
#include "pv/topics.hpp"

namespace {

// A send record as the dispatcher writes it (pv::AppendSend), with fixed content per channel.
std::string Value(pv::Channel channel, const std::string& send_id, const std::string& provider,
                  const std::string& campaign, const std::string& user) {
  static const std::map<std::string, std::map<std::string, std::string>> kContent = {
      {"email",
       {{"from", "Demo Shop <orders@demo.example>"},
        {"subject", "Your order A-17 is on its way"},
        {"html", "<p>Hi Ana, your order <b>A-17</b> ships today.</p>"},
        {"text", "Hi Ana, your order A-17 ships today."}}},
      {"text", {{"body", "123456 is your Demo verification code."}}},
      {"push", {{"title", "Still thinking?"}, {"body", "Your cart is waiting."}}}};
  static const std::map<std::string, std::string> kPushData = {{"screen", "cart"}};
  std::string trigger_id = "fill-" + send_id;
  std::string created_at = pv::FormatTimestamp(std::chrono::system_clock::now());
  std::string address = channel == pv::Channel::kEmail ? user + "@example.com"
                        : channel == pv::Channel::kSms
                            ? "+34600" + std::to_string(100000 + std::hash<std::string>{}(user) % 900000)
                            : "a1b2c3d4e5f6a7b8c9d0";
  pv::SendOut s;
  s.send_id = send_id;
  s.trigger_id = trigger_id;
  s.project = "demo";
  s.campaign_id = campaign;
  s.channel = channel;
  s.provider = provider;
  s.created_at = created_at;
  s.address = address;
  s.external_id = user;
  s.content.fields = &kContent.at(std::string(pv::ChannelName(channel)));
  if (channel == pv::Channel::kPush) s.content.data = &kPushData;
  std::string out;
  pv::AppendSend(out, s);
  return out;
}

// How many records `topic` holds now: high minus low watermark, summed over its partitions (pvctl's
// look-ups, 10 s each). Throws KafkaError when the brokers do not say.
std::int64_t RecordsHeld(const pv::kafka::Settings& settings, const std::string& topic) {
  pv::pvctl::Client client(RD_KAFKA_PRODUCER, settings, "pv-worker-fill-check");
  const auto timeout = std::chrono::seconds(10);
  std::int64_t held = 0;
  for (const auto& [partition, marks] :
       pv::pvctl::QueryWatermarks(client.get(), topic, pv::pvctl::PartitionsOf(client.get(), topic, timeout), timeout))
    held += marks.high - marks.low;
  return held;
}

}  // namespace

int main(int argc, char** argv) {
  std::string brokers;
  std::string channel_name = "email";
  std::string provider = "log";
  std::string campaign = "44";
  long count = 10000;
  CLI::App app(
      "Produces synthetic sends to pv.send.<channel>, as the dispatcher would, for bench/workers and\n"
      "manual runs on the dev stack. Waits until the brokers acknowledged every record.",
      "pv-worker-fill");
  app.add_option("--brokers", brokers, "bootstrap list")
      ->type_name("LIST")
      ->required()
      ->check(pv::cli::NotEmpty());
  app.add_option("--channel", channel_name, "the channel (default email)")
      ->type_name("email|text|push")
      ->check(CLI::IsMember({"email", "text", "sms", "push"}));
  app.add_option("--provider", provider, "the provider each send names (default log)")->type_name("NAME");
  app.add_option("--count", count, "sends to produce (default 10000)")
      ->type_name("N")
      ->check(pv::cli::IntegerIn(1, 100000000));
  app.add_option("--campaign", campaign, "campaign id (default 44)")->type_name("ID");
  if (auto code =
          pv::cli::Parse(app, std::vector<std::string>(argv + 1, argv + argc), std::cout, std::cerr)) {
    return *code;
  }
  pv::Channel channel{};
  pv::ParseChannel(channel_name, channel);  // checked by the command line
  pv::kafka::Settings settings;
  settings.brokers = brokers;
  settings.properties["log_level"] = "3";
  pv::kafka::ProducerOptions options;
  options.client_id = "pv-worker-fill";
  options.defaults = {{"linger.ms", "20"}, {"batch.num.messages", "10000"}};
  pv::kafka::Producer producer(settings, options);
  auto group = std::make_shared<pv::kafka::DeliveryGroup>(static_cast<int>(count));
  std::string topic = pv::topics::Send(channel);
  auto start = std::chrono::steady_clock::now();
  for (long i = 0; i < count; ++i) {
    std::string user = fmt::format("user-{}", i % 10007);
    std::string value =
        Value(channel, pv::SendIdFor(pv::NewTriggerId(), channel_name), provider, campaign, user);
    while (true) {
      rd_kafka_resp_err_t err = producer.Produce(topic, user, value, {}, group);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) break;
      if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        fmt::print(stderr, "pv-worker-fill: {}\n", rd_kafka_err2str(err));
        return 1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  if (!group->Wait(std::chrono::steady_clock::now() + std::chrono::seconds(120)) ||
      group->first_error() != RD_KAFKA_RESP_ERR_NO_ERROR) {
    fmt::print(stderr, "pv-worker-fill: not every record was acknowledged\n");
    return 1;
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // A broker that keeps little (the dev broker: a few MiB per partition) drops the oldest records
  // as new ones come: a run waiting for all of them would wait for ever. Refuse it here.
  std::int64_t held = 0;
  try {
    held = RecordsHeld(settings, topic);
  } catch (const std::exception& e) {
    fmt::print(stderr, "pv-worker-fill: could not read {}'s watermarks to check that it kept every record: {}\n",
               topic, e.what());
    return 1;
  }
  if (held < count) {
    fmt::print(stderr,
               "pv-worker-fill: {} holds {} records after {} were produced: the broker dropped the oldest "
               "(the dev broker keeps ~5 MiB per partition); produce fewer, or into more partitions\n",
               topic, held, count);
    return 1;
  }
  fmt::print("pv-worker-fill: {} sends to {} in {:.2f} s\n", count, topic, seconds);
  return 0;
}
