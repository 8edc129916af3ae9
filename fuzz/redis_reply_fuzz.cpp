// What a Redis server answers, read by pv::RedisClient (every component's one Redis client): the
// whole input is the server's answer on the wire, written by a peer on loopback to a client that
// sent three commands, then the peer closes. Read through Pipeline (blocking), again through
// Send/Receive (the worker's loop), and as a new connection's setup (Options::on_connect, made on
// the client's connecting thread, as the worker's SCRIPT LOAD is), each with a 64 KiB reply limit.
//
// Invariants: no crash, leak or stall; a call returns the three replies or fails with the connection
// dropped (never a partial batch); a reply is never larger than the answer that carried it; both
// paths agree on whether the answer held three whole replies; the setup connects exactly when they
// did and none of them is an error.
#include <poll.h>

#include <chrono>
#include <cstdint>
#include <string>

#include "fuzz_support.hpp"
#include "pv/log.hpp"
#include "pv/redis_client.hpp"
#include "pv/testing/canned_peer.hpp"

namespace {

pv::RedisClient::Options Options(const std::string& url) {
  pv::RedisClient::Options o;
  o.url = url;
  o.timeout = std::chrono::milliseconds(2000);
  o.reconnect_backoff = std::chrono::milliseconds(0);
  o.max_reply_bytes = 64 * 1024;
  return o;
}

void CheckReplies(const std::vector<pv::RedisReply>& replies, size_t answer_bytes) {
  for (const auto& r : replies) pv::fuzz::Check(r.str.size() <= answer_bytes, "a reply larger than the answer");
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  pv::log::SetLevel(pv::log::Level::kError);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 256 * 1024) return 0;
  // Each connection gets the answer, then the peer closes its side.
  static pv::testing::CannedPeer peer("", pv::testing::CannedPeer::After::kClose);
  pv::fuzz::Budget budget("redis reply");
  std::string answer(reinterpret_cast<const char*>(data), size);
  peer.Set(answer);

  bool whole = false;
  bool any_error = false;
  {
    pv::RedisClient client(Options(peer.url()));
    auto replies = client.Pipeline({{"GET", "a"}, {"HGETALL", "b"}, {"SSCAN", "c", "0"}});
    if (replies) {
      pv::fuzz::Check(replies->size() == 3, "a partial batch");
      CheckReplies(*replies, size);
      whole = true;
      for (const auto& r : *replies) any_error = any_error || r.IsError();
    } else {
      pv::fuzz::Check(!client.connected(), "a failed batch left the connection up");
    }
  }
  {
    pv::RedisClient client(Options(peer.url()));
    pv::RedisCommands commands;
    commands.Add({"GET", "a"});
    commands.Add({"HGETALL", "b"});
    commands.Add({"SSCAN", "c", "0"});
    std::vector<pv::RedisReply> replies;
    bool ok = client.Send(commands);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    while (ok && replies.size() < 3 && std::chrono::steady_clock::now() < deadline) {
      pollfd p{client.fd(), POLLIN, 0};
      ::poll(&p, 1, 50);
      ok = client.Receive(replies, 3);
    }
    pv::fuzz::Check(replies.size() <= 3, "more replies than asked");
    CheckReplies(replies, size);
    // The peer closes after its answer: either three whole replies came or the connection was lost.
    pv::fuzz::Check(ok == (replies.size() == 3), "Receive neither finished nor failed");
    pv::fuzz::Check(ok == whole, "Pipeline and Receive disagree", answer);
  }
  {
    pv::RedisClient::Options o = Options(peer.url());
    o.on_connect = {{"GET", "a"}, {"HGETALL", "b"}, {"SSCAN", "c", "0"}};
    o.connect_in_background = true;
    o.connect_wait = std::chrono::milliseconds(5000);  // the attempt's own bound is 2 s a step
    pv::RedisClient client(o);
    bool connected = client.EnsureConnected();
    pv::fuzz::Check(!client.connecting(), "the setup outlived its bounds");
    if (connected) {
      pv::fuzz::Check(client.setup_replies().size() == 3, "a partial setup");
      CheckReplies(client.setup_replies(), size);
    }
    pv::fuzz::Check(connected == (whole && !any_error), "the setup and Pipeline disagree", answer);
  }
  return 0;
}
