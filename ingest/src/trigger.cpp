#include "pv/ingest/trigger.hpp"

#include <fmt/format.h>

#include "pv/json.hpp"
#include "pv/records.hpp"
#include "pv/validate.hpp"

namespace pv::ingest {
namespace {

// A JSON Pointer path shown to a client as a dotted name in messages: "/user/email" -> "user.email".
std::string Dotted(std::string_view pointer) {
  std::string out;
  for (char c : pointer.substr(pointer.empty() ? 0 : 1)) out += c == '/' ? '.' : c;
  return out;
}

void Add(std::vector<FieldError>& errors, std::string_view prefix, std::string_view path,
         std::string_view what) {
  std::string full = std::string(prefix) + std::string(path);
  errors.push_back({full, fmt::format("{} {}", Dotted(full), what)});
}

// The channel's contact field of `user` (email, phone or device token).
void ValidateContact(const rapidjson::Value& user, Channel channel, std::string_view prefix,
                     std::vector<FieldError>& errors) {
  const char* contact = ContactField(channel);
  std::string contact_path = std::string("/user/") + contact;
  const rapidjson::Value* value = FindMember(user, contact);
  if (value == nullptr || value->IsNull()) {
    Add(errors, prefix, contact_path,
        fmt::format("is required for {} {} campaign", channel == Channel::kEmail ? "an" : "a",
                    ChannelName(channel)));
  } else if (!value->IsString()) {
    Add(errors, prefix, contact_path, "must be a string");
  } else {
    std::string_view v = AsStringView(*value);
    switch (channel) {
      case Channel::kEmail:
        if (!validate::IsEmail(v)) Add(errors, prefix, contact_path, "is not a valid email address");
        break;
      case Channel::kSms:
        if (!validate::IsE164(v)) {
          Add(errors, prefix, contact_path, "must be an E.164 phone number such as +12345678900");
        }
        break;
      case Channel::kPush:
        if (v.empty()) {
          Add(errors, prefix, contact_path, "must not be empty");
        } else if (v.size() > kMaxDeviceTokenBytes) {
          Add(errors, prefix, contact_path, fmt::format("must be at most {} bytes", kMaxDeviceTokenBytes));
        }
        break;
    }
  }
}

}  // namespace

void ValidateTrigger(const rapidjson::Value& trigger, Channel channel, std::string_view prefix,
                     std::vector<FieldError>& errors) {
  if (!trigger.IsObject()) {
    errors.push_back({std::string(prefix), prefix.empty()
                                               ? "the body must be a JSON object"
                                               : fmt::format("{} must be an object", Dotted(prefix))});
    return;
  }
  for (const auto& member : trigger.GetObject()) {
    std::string_view name = AsStringView(member.name);
    if (name != "user" && name != "event") {
      Add(errors, prefix, "/" + std::string(name), "is not a known field (expected user and event)");
    }
  }
  const rapidjson::Value* user = FindMember(trigger, "user");
  if (user == nullptr || user->IsNull()) {
    Add(errors, prefix, "/user", "is required");
  } else if (!user->IsObject()) {
    Add(errors, prefix, "/user", "must be an object");
  } else {
    const rapidjson::Value* id = FindMember(*user, "external_id");
    if (id == nullptr || id->IsNull()) {
      Add(errors, prefix, "/user/external_id", "is required");
    } else if (!id->IsString()) {
      Add(errors, prefix, "/user/external_id", "must be a string");
    } else if (id->GetStringLength() == 0) {
      Add(errors, prefix, "/user/external_id", "must not be empty");
    } else if (id->GetStringLength() > kMaxExternalIdBytes) {
      Add(errors, prefix, "/user/external_id", fmt::format("must be at most {} bytes", kMaxExternalIdBytes));
    }

    ValidateContact(*user, channel, prefix, errors);
    // Optional strings: absent or null is fine.
    auto optional = [&](const char* name, bool (*valid)(std::string_view), std::string_view rule) {
      const rapidjson::Value* v = FindMember(*user, name);
      if (v == nullptr || v->IsNull()) return;
      std::string path = std::string("/user/") + name;
      if (!v->IsString()) {
        Add(errors, prefix, path, "must be a string");
      } else if (!valid(AsStringView(*v))) {
        Add(errors, prefix, path, rule);
      }
    };
    optional("timezone", validate::IsTimeZone, "is not a known IANA time zone (e.g. America/Chicago)");
    optional("locale", validate::IsLanguageTag, "is not a language tag (e.g. en, pt-BR)");
  }
  if (const rapidjson::Value* event = FindMember(trigger, "event"); event != nullptr && !event->IsNull()) {
    if (!event->IsObject()) Add(errors, prefix, "/event", "must be an object");
  }
}

void ValidateBatch(const rapidjson::Value& body, Channel channel, int max_batch,
                   std::vector<FieldError>& errors, std::vector<const rapidjson::Value*>& items) {
  const rapidjson::Value* list = body.IsObject() ? FindMember(body, "triggers") : nullptr;
  if (!body.IsObject()) {
    errors.push_back({"", "the body must be a JSON object with a triggers list"});
  } else if (list == nullptr || !list->IsArray()) {
    errors.push_back({"/triggers", "triggers is required and must be a list"});
  } else if (list->Empty()) {
    errors.push_back({"/triggers", "triggers must not be empty"});
  } else if (list->Size() > static_cast<rapidjson::SizeType>(max_batch)) {
    errors.push_back(
        {"/triggers", fmt::format("triggers has {} items; at most {} are allowed", list->Size(), max_batch)});
  } else {
    for (const auto& member : body.GetObject()) {
      if (AsStringView(member.name) != "triggers") {
        errors.push_back(
            {"/" + std::string(AsStringView(member.name)),
             fmt::format("{} is not a known field (expected triggers)", AsStringView(member.name))});
      }
    }
    for (rapidjson::SizeType i = 0; i < list->Size(); ++i) {
      ValidateTrigger((*list)[i], channel, fmt::format("/triggers/{}", i), errors);
      items.push_back(&(*list)[i]);
    }
  }
}

std::string BuildTriggerRecord(const rapidjson::Value& trigger, std::string_view trigger_id,
                               std::string_view project, std::string_view campaign_id,
                               std::string_view received_at) {
  TriggerRecord record;
  record.trigger_id = trigger_id;
  record.project = project;
  record.campaign_id = campaign_id;
  record.received_at = received_at;
  record.user = FindMember(trigger, "user");
  record.event = FindMember(trigger, "event");
  std::string out;
  AppendTrigger(out, record);
  return out;
}

std::string ErrorBody(std::string_view message, const std::vector<FieldError>& errors) {
  std::string out = "{\"status\":\"error\",\"error\":";
  AppendJsonString(out, message);
  out += ",\"errors\":[";
  for (size_t i = 0; i < errors.size(); ++i) {
    if (i > 0) out += ',';
    out += "{\"path\":";
    AppendJsonString(out, errors[i].path);
    out += ",\"message\":";
    AppendJsonString(out, errors[i].message);
    out += '}';
  }
  out += "]}";
  return out;
}

}  // namespace pv::ingest
