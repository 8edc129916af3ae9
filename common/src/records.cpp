#include "pv/records.hpp"

#include <fmt/format.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <span>
#include <vector>

#include "pv/delay_ladder.hpp"
#include "pv/json.hpp"
#include "pv/strings.hpp"

namespace pv {
namespace {

// RapidJSON's output stream over the caller's string. The Writer reserves room before each value
// (PutReserve) and then writes character by character (PutUnsafe): the string is grown ahead and
// written through a pointer, not appended to a character at a time (that was a sixth of ingest's
// instructions per trigger), and trimmed to what was written when the stream ends.
class AppendStream {
 public:
  using Ch = char;
  // Room for a typical record up front: growing a string from nothing costs a reallocation per
  // doubling.
  explicit AppendStream(std::string& out) : out_(out) { Grow(out.size(), kStartBytes); }
  ~AppendStream() { out_.resize(Used()); }
  AppendStream(const AppendStream&) = delete;
  AppendStream& operator=(const AppendStream&) = delete;

  void Reserve(size_t count) {
    if (static_cast<size_t>(end_ - next_) < count) Grow(Used(), count);
  }
  void PutUnsafe(char c) { *next_++ = c; }
  void Put(char c) {
    Reserve(1);
    PutUnsafe(c);
  }
  // `text` between double quotes.
  void PutQuoted(std::string_view text) {
    Reserve(text.size() + 2);
    *next_++ = '"';
    next_ += text.copy(next_, text.size());
    *next_++ = '"';
  }
  void Flush() {}

 private:
  static constexpr size_t kStartBytes = 512;

  size_t Used() const { return static_cast<size_t>(next_ - out_.data()); }
  // Room for `count` more bytes after the first `used`.
  void Grow(size_t used, size_t count) {
    out_.resize(std::max(used + count, out_.size() * 2));
    next_ = out_.data() + used;
    end_ = out_.data() + out_.size();
  }

  std::string& out_;
  char* next_ = nullptr;
  char* end_ = nullptr;
};

}  // namespace
}  // namespace pv

namespace rapidjson {
template <>
inline void PutReserve(pv::AppendStream& stream, size_t count) {
  stream.Reserve(count);
}
template <>
inline void PutUnsafe(pv::AppendStream& stream, char c) {
  stream.PutUnsafe(c);
}
}  // namespace rapidjson

namespace pv {
namespace {

// RapidJSON's Writer, with a shortcut for the common string: one with nothing to escape (no
// control character, quote or backslash) is copied whole, where the Writer looks up and writes
// each byte. Anything else goes to the Writer, so the output is the Writer's byte for byte
// (it copies other bytes, UTF-8 included, as they are).
class TriggerWriter : public rapidjson::Writer<AppendStream> {
 public:
  using Writer::Writer;
  bool String(const char* str, rapidjson::SizeType length, bool copy = false) {
    std::string_view text(str, length);
    for (char c : text) {
      if (static_cast<unsigned char>(c) < 0x20 || c == '"' || c == '\\')
        return Writer::String(str, length, copy);
    }
    Prefix(rapidjson::kStringType);
    os_->PutQuoted(text);
    return EndValue(true);
  }
  bool Key(const char* str, rapidjson::SizeType length, bool copy = false) {
    return String(str, length, copy);
  }
  bool Key(const char* str) { return Key(str, static_cast<rapidjson::SizeType>(std::strlen(str))); }
};

std::string_view Text(const rapidjson::Value& object, std::string_view name) {
  return FindString(object, name).value_or(std::string_view());
}

// `,"name":` then the quoted value.
void Field(std::string& out, std::string_view name, std::string_view value) {
  if (NeedsJsonEscape(value)) {
    out += ",\"";
    out += name;
    out += "\":";
    AppendJsonString(out, value);
    return;
  }
  // ,"name":"value" in one resize and two copies: an event is eight of these, and seven appends each
  // were most of its cost (callgrind: 335 instructions per field).
  size_t at = out.size();
  out.resize(at + name.size() + value.size() + 6);
  char* p = out.data() + at;
  *p++ = ',';
  *p++ = '"';
  std::memcpy(p, name.data(), name.size());
  p += name.size();
  *p++ = '"';
  *p++ = ':';
  *p++ = '"';
  if (!value.empty()) std::memcpy(p, value.data(), value.size());
  p[value.size()] = '"';
}

// The content fields written first, in this order (the rest follow in name order).
constexpr std::string_view kContentOrder[] = {"from", "reply_to", "subject", "title",
                                              "body", "html",     "text",    "sound"};

// The text fields of an event in the order they are written ("attempt" follows "error").
struct EventField {
  std::string_view name;
  std::string_view EventRecord::*member;
  bool optional;
};
constexpr EventField kEventFields[] = {
    {"send_id", &EventRecord::send_id, false},
    {"trigger_id", &EventRecord::trigger_id, false},
    {"project", &EventRecord::project, true},
    {"campaign_id", &EventRecord::campaign_id, false},
    {"channel", &EventRecord::channel, false},
    {"status", &EventRecord::status, false},
    {"provider", &EventRecord::provider, false},
    {"provider_message_id", &EventRecord::provider_message_id, true},
    {"error_code", &EventRecord::error_code, true},
    {"error", &EventRecord::error, true},
    {"receipt_id", &EventRecord::receipt_id, true},
    {"occurred_at", &EventRecord::occurred_at, true},
    {"reason", &EventRecord::reason, true},
    {"suppression_reason", &EventRecord::suppression_reason, true},
    {"suppressed_at", &EventRecord::suppressed_at, true},
    {"due_at", &EventRecord::due_at, true},
    {"at", &EventRecord::at, false},
};

// The fields of a receipt in the order they are written.
constexpr std::pair<std::string_view, std::string ReceiptRecord::*> kReceiptFields[] = {
    {"receipt_id", &ReceiptRecord::receipt_id},   {"provider_type", &ReceiptRecord::provider_type},
    {"provider", &ReceiptRecord::provider},       {"type", &ReceiptRecord::type},
    {"send_id", &ReceiptRecord::send_id},         {"trigger_id", &ReceiptRecord::trigger_id},
    {"campaign_id", &ReceiptRecord::campaign_id}, {"message_id", &ReceiptRecord::message_id},
    {"address", &ReceiptRecord::address},         {"reason", &ReceiptRecord::reason},
    {"error_code", &ReceiptRecord::error_code},   {"occurred_at", &ReceiptRecord::occurred_at},
};

// The members of `object` named in `names`, in one pass over its members instead of a lookup per
// name: found[i] is the first member named names[i] (the one a lookup finds), or nullptr.
void FindMembers(const rapidjson::Value& object, std::span<const std::string_view> names,
                 std::span<const rapidjson::Value*> found) {
  std::fill(found.begin(), found.end(), nullptr);
  for (const auto& m : object.GetObject()) {
    std::string_view name = AsStringView(m.name);
    for (std::size_t i = 0; i < names.size(); ++i) {
      if (name != names[i]) continue;
      if (found[i] == nullptr) found[i] = &m.value;
      break;
    }
  }
}

// A found member's text, or empty when it is absent or not a string.
std::string_view TextOf(const rapidjson::Value* v) {
  return v != nullptr && v->IsString() ? AsStringView(*v) : std::string_view();
}

// The members ParseTrigger reads, found in one pass.
enum TriggerMember {
  kTriggerTriggerId,
  kTriggerProject,
  kTriggerCampaignId,
  kTriggerReceivedAt,
  kTriggerUser,
  kTriggerEvent,
};
constexpr std::string_view kTriggerMembers[] = {"trigger_id",  "project", "campaign_id",
                                                "received_at", "user",    "event"};

// The members of a send that ParseSend reads, by SendMember.
enum SendMember {
  kSendId,
  kTriggerId,
  kProject,
  kCampaignId,
  kChannel,
  kProvider,
  kFallbackProvider,
  kReceivedAt,
  kAttempt,
  kTo,
  kContent,
};
constexpr std::string_view kSendMembers[] = {
    "send_id",           "trigger_id",  "project", "campaign_id", "channel", "provider",
    "fallback_provider", "received_at", "attempt", "to",          "content",
};

constexpr std::string_view kReceiptTypes[] = {
    "delivered",  "bounced",      "undelivered", "provider_deferred",
    "complained", "unsubscribed", "stop",        "start"};

}  // namespace

void AppendTrigger(std::string& out, const TriggerRecord& t) {
  AppendStream stream(out);
  TriggerWriter w(stream);
  auto str = [&w](std::string_view s) { w.String(s.data(), static_cast<rapidjson::SizeType>(s.size())); };
  w.StartObject();
  w.Key("v");
  w.Int(1);
  w.Key("trigger_id");
  str(t.trigger_id);
  w.Key("project");
  str(t.project);
  w.Key("campaign_id");
  str(t.campaign_id);
  w.Key("received_at");
  str(t.received_at);
  w.Key("user");
  w.StartObject();
  if (t.user != nullptr && t.user->IsObject()) {
    for (const auto& member : t.user->GetObject()) {
      if (member.value.IsNull()) continue;
      w.Key(member.name.GetString(), member.name.GetStringLength());
      member.value.Accept(w);
    }
  }
  w.EndObject();
  w.Key("event");
  if (t.event != nullptr && t.event->IsObject()) {
    t.event->Accept(w);
  } else {
    w.StartObject();
    w.EndObject();
  }
  w.EndObject();
}

bool ParseTrigger(rapidjson::Document& doc, std::string_view value, TriggerRecord& out) {
  out = {};
  // Parsed in place over a copy made in the document's allocator: RapidJSON decodes each string where
  // it stands instead of through its stack and into the allocator (-6k instructions of a trigger's
  // 14k parse, callgrind). The strings live as long as copied ones did: as long as `doc`'s allocator.
  char* copy = static_cast<char*>(doc.GetAllocator().Malloc(value.size() + 1));
  if (!value.empty()) std::memcpy(copy, value.data(), value.size());
  copy[value.size()] = '\0';
  ParseRecordInPlace(doc, copy, value.size());
  if (doc.HasParseError() || !doc.IsObject()) return false;
  // A member of the wrong type reads as absent.
  const rapidjson::Value* found[std::size(kTriggerMembers)];
  FindMembers(doc, kTriggerMembers, found);
  auto text = [&found](TriggerMember member) { return TextOf(found[member]); };
  auto object = [&found](TriggerMember member) {
    const rapidjson::Value* v = found[member];
    return v != nullptr && v->IsObject() ? v : nullptr;
  };
  out.trigger_id = text(kTriggerTriggerId);
  out.project = text(kTriggerProject);
  out.campaign_id = text(kTriggerCampaignId);
  out.received_at = text(kTriggerReceivedAt);
  out.user = object(kTriggerUser);
  out.event = object(kTriggerEvent);
  if (out.user != nullptr) out.external_id = Text(*out.user, "external_id");
  return true;
}

void AppendSend(std::string& out, const SendOut& s) {
  out += R"({"v":1,"send_id":)";
  AppendJsonString(out, s.send_id);
  Field(out, "trigger_id", s.trigger_id);
  Field(out, "project", s.project);
  Field(out, "campaign_id", s.campaign_id);
  Field(out, "channel", ChannelName(s.channel));
  Field(out, "provider", s.provider);
  AppendOptionalField(out, "fallback_provider", s.fallback_provider);
  fmt::format_to(std::back_inserter(out), R"(,"attempt":{})", s.attempt);
  Field(out, "created_at", s.created_at);
  AppendOptionalField(out, "received_at", s.received_at);
  Field(out, "locale", s.locale);
  out += R"(,"to":{)";
  AppendJsonString(out, ContactField(s.channel));
  out += ':';
  AppendJsonString(out, s.address);
  Field(out, "external_id", s.external_id);
  out += R"(},"content":{)";
  bool first = true;
  auto member = [&](std::string_view name) {
    if (!first) out += ',';
    first = false;
    AppendJsonString(out, name);
    out += ':';
  };
  if (s.content.fields != nullptr) {
    for (std::string_view first_name : kContentOrder) {
      for (const auto& [name, value] : *s.content.fields) {
        if (name != first_name) continue;
        member(name);
        AppendJsonString(out, value);
      }
    }
    for (const auto& [name, value] : *s.content.fields) {
      if (std::find(std::begin(kContentOrder), std::end(kContentOrder), name) != std::end(kContentOrder))
        continue;
      member(name);
      AppendJsonString(out, value);
    }
  }
  if (s.content.badge) {
    member("badge");
    fmt::format_to(std::back_inserter(out), "{}", *s.content.badge);
  }
  if (s.content.data != nullptr) {
    member("data");
    AppendJsonObject(out, *s.content.data);
  }
  out += "}}";
}

std::string_view Send::ContentString(std::string_view name) const {
  const rapidjson::Value* v = ContentMember(name);
  return v != nullptr && v->IsString() ? AsStringView(*v) : std::string_view();
}

const rapidjson::Value* Send::ContentMember(std::string_view name) const {
  return content == nullptr ? nullptr : FindMember(*content, name);
}

std::optional<std::string_view> Send::RawString(std::string_view s) const {
  // Parsed in place, a string's characters start where its text did, just after its opening quote,
  // and `parsed` is `value` byte for byte up to the parse (ParseRecordInPlace).
  if (s.data() == nullptr || parsed.size() != value.size() || s.data() <= parsed.data() ||
      s.data() >= parsed.data() + parsed.size()) {
    return std::nullopt;
  }
  auto begin = static_cast<size_t>(s.data() - parsed.data());
  if (value[begin - 1] != '"') return std::nullopt;
  size_t end = JsonStringEnd(value, begin);
  if (end == std::string_view::npos || end - begin < s.size()) return std::nullopt;
  return std::string_view(value).substr(begin, end - begin);
}

std::optional<std::string_view> Send::RawObject(const rapidjson::Value& v) const {
  if (!v.IsObject() || v.MemberCount() == 0) return std::nullopt;
  auto name = RawString(AsStringView(v.MemberBegin()->name));
  if (!name) return std::nullopt;
  // Back from the first member's name over whitespace to the object's '{'...
  auto open = static_cast<size_t>(name->data() - value.data()) - 1;
  while (open > 0 && (value[open - 1] == ' ' || value[open - 1] == '\t')) --open;
  if (open == 0 || value[open - 1] != '{') return std::nullopt;
  --open;
  // ...then on to the '}' that closes it, strings skipped whole. The text parsed, so it nests right.
  int depth = 0;
  for (size_t i = open; i < value.size(); ++i) {
    switch (value[i]) {
      case '"':
        i = JsonStringEnd(value, i + 1);
        if (i == std::string_view::npos) return std::nullopt;
        break;
      case '{':
      case '[':
        ++depth;
        break;
      case '}':
      case ']':
        if (--depth == 0) return std::string_view(value).substr(open, i + 1 - open);
        break;
      case '\n':
      case '\r':
        return std::nullopt;
      default:
        break;
    }
  }
  return std::nullopt;
}

void Send::AppendString(std::string& out, std::string_view s) const {
  if (auto raw = RawString(s)) {
    out += '"';
    out += *raw;
    out += '"';
  } else {
    AppendJsonString(out, s);
  }
}

void Send::AppendContentString(std::string& out, std::string_view name) const {
  AppendString(out, ContentString(name));
}

void Send::AppendObject(std::string& out, const rapidjson::Value& v) const {
  if (auto raw = RawObject(v)) {
    out += *raw;
  } else {
    AppendJson(out, v);
  }
}

std::shared_ptr<Send> ParseSend(std::string_view value, std::string_view key, Channel channel,
                                std::string& error, std::shared_ptr<Send>* partial) {
  auto send = std::make_shared<Send>();
  auto copy = [&send](std::string_view from) {
    char* text = static_cast<char*>(send->pool.Malloc(from.size() + 1));
    if (!from.empty()) std::memcpy(text, from.data(), from.size());
    text[from.size()] = '\0';
    return text;
  };
  send->value = std::string_view(copy(value), value.size());
  send->key = std::string_view(copy(key), key.size());
  // In place: strings are decoded where they stand instead of copied through the parser's stack.
  char* parsed = copy(value);
  send->parsed = std::string_view(parsed, value.size());
  ParseRecordInPlace(send->doc, parsed, value.size());
  if (send->doc.HasParseError() || !send->doc.IsObject()) {
    error = "value is not a JSON object";
    return nullptr;
  }
  const rapidjson::Value* found[std::size(kSendMembers)];
  FindMembers(send->doc, kSendMembers, found);
  auto text = [&found](SendMember member) { return TextOf(found[member]); };
  send->send_id = text(kSendId);
  send->trigger_id = text(kTriggerId);
  send->project = text(kProject);
  send->campaign_id = text(kCampaignId);
  send->channel = text(kChannel);
  send->provider = text(kProvider);
  send->fallback_provider = text(kFallbackProvider);
  if (found[kReceivedAt] != nullptr && found[kReceivedAt]->IsString())
    send->received_at = ParseTimestamp(text(kReceivedAt));
  if (const auto* a = found[kAttempt]; a != nullptr && a->IsInt() && a->GetInt() > 0) {
    send->attempt = a->GetInt();
  }
  send->to = found[kTo];
  send->content = found[kContent];
  if (send->to != nullptr && send->to->IsObject()) {
    send->address = Text(*send->to, ContactField(channel));
    send->external_id = Text(*send->to, "external_id");
  }
  if (partial != nullptr && !send->send_id.empty()) *partial = send;

  if (send->send_id.empty()) {
    error = "send_id missing";
  } else if (send->provider.empty()) {
    error = "provider missing";
  } else if (Channel c{}; !ParseChannel(send->channel, c) || c != channel) {
    error =
        fmt::format("channel '{}' does not belong on this topic ({})", send->channel, ChannelName(channel));
  } else if (send->to == nullptr || !send->to->IsObject()) {
    error = "to missing";
  } else if (send->address.empty()) {
    error = fmt::format("to.{} missing", ContactField(channel));
  } else if (send->content == nullptr || !send->content->IsObject()) {
    error = "content missing";
  } else {
    return send;
  }
  return nullptr;
}

EventRecord EventFor(const Send& send) {
  EventRecord e;
  e.send_id = send.send_id;
  e.trigger_id = send.trigger_id;
  e.campaign_id = send.campaign_id;
  e.channel = send.channel;
  return e;
}

void AppendEvent(std::string& out, const EventRecord& e) {
  std::size_t text = 0;
  for (const auto& f : kEventFields) text += (e.*f.member).size();
  out.reserve(out.size() + text + 320);  // one allocation: every name and its punctuation fit in 320
  out += R"({"v":1)";
  for (const auto& f : kEventFields) {
    if (!f.optional || !(e.*f.member).empty()) Field(out, f.name, e.*f.member);
    if (f.member == &EventRecord::error && e.attempt) {
      char digits[16];  // an int's digits and sign
      out += R"(,"attempt":)";
      out.append(digits, std::to_chars(digits, digits + sizeof digits, *e.attempt).ptr);
    }
  }
  out += '}';
}

namespace {

// The event `doc` holds, once parsed.
bool ReadEvent(const rapidjson::Document& doc, EventRecord& out) {
  out = {};
  if (doc.HasParseError() || !doc.IsObject()) return false;
  // One pass over the members instead of a lookup per field. As with a lookup, the first member of a
  // name decides: a later one of the same name is ignored, and one of the wrong type reads as absent.
  std::uint32_t seen = 0;  // a bit per kEventFields entry, then one for attempt
  static_assert(std::size(kEventFields) < 32);
  constexpr std::uint32_t kAttemptSeen = 1u << std::size(kEventFields);
  for (const auto& m : doc.GetObject()) {
    std::string_view name = AsStringView(m.name);
    if (name == "attempt") {
      if (!(seen & kAttemptSeen) && m.value.IsInt()) out.attempt = m.value.GetInt();
      seen |= kAttemptSeen;
      continue;
    }
    for (std::size_t i = 0; i < std::size(kEventFields); ++i) {
      if (name != kEventFields[i].name) continue;
      if (!(seen & (1u << i)) && m.value.IsString()) out.*kEventFields[i].member = AsStringView(m.value);
      seen |= 1u << i;
      break;
    }
  }
  return true;
}

}  // namespace

bool ParseEvent(rapidjson::Document& doc, std::string_view value, EventRecord& out) {
  ParseRecord(doc, value);
  return ReadEvent(doc, out);
}

bool ParseEventInPlace(rapidjson::Document& doc, std::string& value, EventRecord& out) {
  ParseRecordInPlace(doc, value);
  return ReadEvent(doc, out);
}

void AppendReceipt(std::string& out, const ReceiptRecord& r, std::string_view received_at) {
  out += R"({"v":1)";
  for (const auto& [name, member] : kReceiptFields) AppendOptionalField(out, name, r.*member);
  AppendOptionalField(out, "received_at", received_at);
  out += '}';
}

bool ParseReceipt(std::string_view value, ReceiptRecord& out, std::string& error) {
  rapidjson::Document doc;
  ParseRecord(doc, value);
  if (doc.HasParseError() || !doc.IsObject()) {
    error = "not a JSON object";
    return false;
  }
  for (const auto& [name, member] : kReceiptFields) out.*member = Text(doc, name);
  if (out.receipt_id.empty() || out.provider_type.empty() || out.type.empty()) {
    error = "receipt_id, provider_type and type are required";
  } else if (out.provider_type != "sendgrid" && out.provider_type != "twilio") {
    error = "provider_type '" + out.provider_type + "' is not sendgrid or twilio";
  } else if (std::find(std::begin(kReceiptTypes), std::end(kReceiptTypes), out.type) ==
             std::end(kReceiptTypes)) {
    error = "type '" + out.type + "' is not a receipt type";
  } else {
    return true;
  }
  return false;
}

std::vector<std::pair<std::string, std::string>> DeadLetterHeaders(const DeadLetter& d) {
  std::vector<std::pair<std::string, std::string>> out;
  if (d.error_code) out.emplace_back(ladder::kErrorCode, *d.error_code);
  if (d.error) out.emplace_back(ladder::kError, *d.error);
  if (d.attempt) out.emplace_back(ladder::kAttempt, std::to_string(*d.attempt));
  if (d.provider) out.emplace_back(ladder::kProvider, *d.provider);
  if (d.failed_at) out.emplace_back(ladder::kFailedAt, *d.failed_at);
  if (d.omitted_bytes) out.emplace_back(ladder::kOmittedBytes, std::to_string(*d.omitted_bytes));
  return out;
}

DeadLetter ParseDeadLetter(const std::map<std::string, std::string>& headers) {
  auto header = [&](const char* name) -> const std::string* {
    auto it = headers.find(name);
    return it == headers.end() ? nullptr : &it->second;
  };
  DeadLetter d;
  for (auto [name, field] : {std::pair{ladder::kErrorCode, &d.error_code},
                             {ladder::kError, &d.error},
                             {ladder::kProvider, &d.provider},
                             {ladder::kFailedAt, &d.failed_at}}) {
    if (const std::string* v = header(name)) *field = *v;
  }
  if (const std::string* v = header(ladder::kAttempt)) d.attempt = ladder::ParseAttempt(*v);
  std::int64_t bytes = 0;
  if (const std::string* v = header(ladder::kOmittedBytes); v != nullptr && ParseDigits(*v, bytes))
    d.omitted_bytes = static_cast<std::size_t>(bytes);
  return d;
}

}  // namespace pv
