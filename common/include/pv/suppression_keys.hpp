// The suppression store's layout in Redis, shared by the dispatcher (which checks it before producing
// each send, and adds to it from the providers' receipts) and `pvctl suppress` (which an operator
// uses to read and change it), so that the two cannot drift apart. What suppression means and how the
// dispatcher checks it: pv/dispatcher/suppression.hpp.
//
//   key    pv:suppress:<channel>          a SET per channel; channel is email, text or push
//   member user:<project>:<external_id>   one user of one project (external ids are per project)
//          address:<address>              an address for everyone: an email address in lower case, a
//                                         phone number in E.164, a device token as given
//
//   redis-cli SADD pv:suppress:email address:bob@example.com
//   redis-cli SADD pv:suppress:text 'user:demo:u-123'
//
// Why and since when (a second key, so the sets and every check of them stay as they were):
//
//   key    pv:suppress:<channel>:why       a HASH per channel; field = the member above, value =
//          {"reason":"bounce","at":"2026-12-05T10:00:00.000Z","source":"sendgrid-main"}
//
// reason is one of manual (pvctl suppress add), bounce, complaint, unsubscribe, stop (SMS STOP),
// unregistered (a dead push token). A member with no entry there (added before reasons were kept, or
// by hand with SADD) reads as reason "unknown": no migration is needed. The first reason stays (HSETNX);
// `pvctl suppress remove` and an SMS START (only when the reason is stop) delete both.
// (Tests: SuppressionKeys.* in common/test/suppression_keys_test.cpp.)
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "pv/topics.hpp"

namespace pv {

class Config;

// The suppression store's URL, read the same way by the dispatcher and `pvctl suppress`:
// `suppression.redis_url` when it is set and not empty, else `redis.url`, else `default_url`.
// (Tests: SuppressionRedisUrl.* in dispatcher/test/suppression_test.cpp.)
std::string SuppressionRedisUrl(const Config& config, std::string_view default_url);

// The Redis key and members of a check.
std::string SuppressionKey(Channel channel);
std::string SuppressedUserMember(std::string_view project, std::string_view external_id);
// Email addresses are lower-cased (the domain is case-insensitive, and mail systems treat local parts
// so too in practice); others are used as given.
std::string SuppressedAddressMember(Channel channel, std::string_view address);

std::string SuppressionWhyKey(Channel channel);

// The recorded reason of one member: reason "unknown" and empty at/source when `json` is empty or not
// one of ours.
struct SuppressionWhy {
  std::string reason;
  std::string at;      // RFC 3339
  std::string source;  // the provider account, worker or "pvctl"
};
std::string SuppressionWhyJson(std::string_view reason, std::string_view at, std::string_view source);
SuppressionWhy ParseSuppressionWhy(std::string_view json);

// Redis commands (argv) that change suppressions atomically, shared by the feedback pipeline and pvctl:
// SuppressCommand adds `member` with its reason (the first reason stays), returns 1 when it was new;
// LiftStopCommand removes `member` only when its reason is stop (SMS START), returns 1 when it did.
std::vector<std::string> SuppressCommand(Channel channel, std::string_view member, std::string_view why_json);
std::vector<std::string> LiftStopCommand(Channel channel, std::string_view member);

}  // namespace pv
