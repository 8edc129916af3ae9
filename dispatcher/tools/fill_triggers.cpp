// pv-dispatcher-fill: writes N synthetic triggers to pv.triggers, shaped as ingest writes them, and
// waits until the broker acknowledged every one. For bench/dispatcher and manual runs on the dev stack.
//
//   pv-dispatcher-fill --brokers 127.0.0.1:9092 --count 100000 [--campaign 44] [--project demo]
//                      [--channel email|text|push] [--users 1000] [--topic pv.triggers]
#include <fmt/format.h>
#include <rapidjson/document.h>

#include <chrono>
#include <iostream>
#include <string>
#include <vector>

#include "pv/command_line.hpp"
#include "pv/ids.hpp"
#include "pv/json.hpp"
#include "pv/kafka.hpp"
#include "pv/records.hpp"
#include "pv/topics.hpp"

int main(int argc, char** argv) {
  std::string brokers;
  std::string campaign = "44";
  std::string project = "demo";
  std::string channel = "email";
  std::string topic(pv::topics::kTriggers);
  long count = 0;
  long users = 1000;
  CLI::App app(
      "Writes N synthetic triggers to pv.triggers, shaped as ingest writes them, and waits until the\n"
      "broker acknowledged every one. For bench/dispatcher and manual runs on the dev stack.",
      "pv-dispatcher-fill");
  app.add_option("--brokers", brokers, "bootstrap list")
      ->type_name("LIST")
      ->required()
      ->check(pv::cli::NotEmpty());
  app.add_option("--count", count, "triggers to write")
      ->type_name("N")
      ->required()
      ->check(pv::cli::IntegerIn(1, 100000000));
  app.add_option("--campaign", campaign, "campaign id (default 44)")->type_name("ID");
  app.add_option("--project", project, "project (default demo)")->type_name("P");
  app.add_option("--channel", channel, "the contact each user gets (default email)")
      ->type_name("email|text|push")
      ->check(CLI::IsMember({"email", "text", "sms", "push"}));
  app.add_option("--users", users, "distinct users, round robin (default 1000)")
      ->type_name("N")
      ->check(pv::cli::IntegerIn(1, 100000000));
  app.add_option("--topic", topic, "the topic (default pv.triggers)")->type_name("T");
  if (auto code =
          pv::cli::Parse(app, std::vector<std::string>(argv + 1, argv + argc), std::cout, std::cerr)) {
    return *code;
  }
  const char* address = channel == "email" ? "email" : channel == "push" ? "device_token" : "phone";

  pv::kafka::Settings settings;
  settings.brokers = brokers;
  pv::kafka::ProducerOptions options;
  options.client_id = "pv-dispatcher-fill";
  options.defaults = {{"linger.ms", "20"}, {"queue.buffering.max.messages", "1000000"}};
  pv::kafka::Producer producer(settings, options);
  auto group = std::make_shared<pv::kafka::DeliveryGroup>(static_cast<int>(count));
  auto start = std::chrono::steady_clock::now();
  std::string received_at = pv::FormatTimestamp(std::chrono::system_clock::now());
  for (long i = 0; i < count; ++i) {
    std::string external_id = fmt::format("user-{}", i % users);
    std::string contact = channel == "email"  ? fmt::format("{}@example.com", external_id)
                          : channel == "push" ? fmt::format("token-{}", i % users)
                                              : fmt::format("+1555{:07d}", i % users);
    std::string trigger_id = pv::NewTriggerId();
    std::string body = fmt::format(
        R"({{"user":{{"external_id":"{}","{}":"{}","first_name":"User {}","locale":"en-US"}},)"
        R"("event":{{"order_id":"O-{}","code":"{:06d}","minutes":10,"item_count":2,"cart_id":"c-{}",)"
        R"("items":[{{"name":"Pen","quantity":2}},{{"name":"Ink","quantity":1}}]}}}})",
        external_id, address, contact, i, i, i % 1000000, i);
    rapidjson::Document doc;
    doc.Parse(body.data(), body.size());
    std::string value;  // written as ingest writes it
    pv::AppendTrigger(value, {trigger_id, project, campaign, received_at, &doc["user"], &doc["event"], {}});
    pv::kafka::Header header{"pv-trigger-id", trigger_id};
    while (true) {
      auto err =
          producer.Produce(topic, external_id, value, std::span<const pv::kafka::Header>(&header, 1), group);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) break;
      if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        fmt::print(stderr, "produce: {}\n", rd_kafka_err2str(err));
        return 1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  bool all = group->Wait(std::chrono::steady_clock::now() + std::chrono::minutes(5));
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!all || group->first_error() != RD_KAFKA_RESP_ERR_NO_ERROR) {
    fmt::print(stderr, "not every trigger was acknowledged: {}\n", rd_kafka_err2str(group->first_error()));
    return 1;
  }
  fmt::print("produced {} triggers to {} in {:.2f} s ({:.0f}/s)\n", count, topic, seconds, count / seconds);
  return 0;
}
