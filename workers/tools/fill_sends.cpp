// pv-worker-fill: produces synthetic sends to pv.send.<channel>, as the dispatcher would, for
// bench/workers and manual runs on the dev stack. Waits until the brokers acknowledged every record.
//
//   pv-worker-fill --brokers HOST:PORT[,...] [--channel email|text|push] [--provider NAME]
//                  [--count N] [--campaign ID]
#include <fmt/format.h>

#include <chrono>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "pv/command_line.hpp"
#include "pv/ids.hpp"
#include "pv/json.hpp"
#include "pv/kafka.hpp"
#include "pv/topics.hpp"

namespace {

std::string Value(pv::Channel channel, const std::string& send_id, const std::string& provider,
                  const std::string& campaign, const std::string& user) {
  std::string out = R"({"v":1,"send_id":)";
  pv::AppendJsonString(out, send_id);
  out += R"(,"trigger_id":)";
  pv::AppendJsonString(out, "fill-" + send_id);
  out += R"(,"project":"demo","campaign_id":)";
  pv::AppendJsonString(out, campaign);
  out += R"(,"channel":)";
  pv::AppendJsonString(out, pv::ChannelName(channel));
  out += R"(,"provider":)";
  pv::AppendJsonString(out, provider);
  out += R"(,"attempt":1,"created_at":)";
  pv::AppendJsonString(out, pv::FormatTimestamp(std::chrono::system_clock::now()));
  switch (channel) {
    case pv::Channel::kEmail:
      out += R"(,"to":{"email":")" + user + R"(@example.com","external_id":")" + user + R"("},)";
      out +=
          R"("content":{"from":"Demo Shop <orders@demo.example>","subject":"Your order A-17 is on its way",)"
          R"("html":"<p>Hi Ana, your order <b>A-17</b> ships today.</p>","text":"Hi Ana, your order A-17 ships today."}})";
      break;
    case pv::Channel::kSms:
      out += R"(,"to":{"phone":"+34600)" + std::to_string(100000 + std::hash<std::string>{}(user) % 900000) +
             R"(","external_id":")" + user +
             R"("},"content":{"body":"123456 is your Demo verification code."}})";
      break;
    case pv::Channel::kPush:
      out += R"(,"to":{"device_token":"a1b2c3d4e5f6a7b8c9d0","external_id":")" + user + R"("},)";
      out +=
          R"("content":{"title":"Still thinking?","body":"Your cart is waiting.","data":{"screen":"cart"}}})";
      break;
  }
  return out;
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
  fmt::print("pv-worker-fill: {} sends to {} in {:.2f} s\n", count, topic, seconds);
  return 0;
}
