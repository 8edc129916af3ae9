#include "pv/keys.hpp"

#include <fmt/format.h>
#include <rapidjson/document.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>

#include "pv/files.hpp"
#include "pv/ids.hpp"
#include "pv/json.hpp"
#include "pv/strings.hpp"
#include "pv/validate.hpp"

namespace pv {

std::string HashKey(std::string_view plain_key) {
  return "sha256:" + Sha256Hex(plain_key);
}

std::string GenerateKey(KeyScope scope) {
  std::string hex = RandomHex(16);
  return fmt::format("{}_{}-{}-{}-{}-{}", scope == KeyScope::kSecret ? "sk" : "pk", hex.substr(0, 8),
                     hex.substr(8, 4), hex.substr(12, 4), hex.substr(16, 4), hex.substr(20, 12));
}

bool LooksLikeKey(std::string_view token) {
  if (token.size() < 3 + 16 || token.size() > 3 + 128) return false;
  if (token.substr(0, 3) != "sk_" && token.substr(0, 3) != "pk_") return false;
  for (char c : token.substr(3)) {
    bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

namespace {

// Deleted > revoked > active: what wins a tie of versions.
int StateRank(const ApiKey& k) {
  if (k.deleted) return 2;
  return k.revoked() ? 1 : 0;
}

// The pv.keys record (`record`) or pvctl's listing of a key: the same fields, but the listing has
// neither the version nor the hash, and says null for a key that was never revoked.
std::string KeyJson(const ApiKey& k, bool record) {
  std::string out = record ? "{\"v\":1," : "{";
  auto field = [&out](std::string_view name, std::string_view value) {
    out += fmt::format("\"{}\":", name);
    AppendJsonString(out, value);
    out += ',';
  };
  field("id", k.id);
  field("name", k.name);
  field("project", k.project);
  field("scope", k.scope == KeyScope::kSecret ? "secret" : "public");
  if (record) field("hash", k.hash);
  field("last4", k.last4);
  field("created_at", k.created_at);
  if (record || k.revoked()) {
    field("revoked_at", k.revoked_at);
  } else {
    out += "\"revoked_at\":null,";
  }
  return out + fmt::format("\"updated_at_ms\":{}}}", k.updated_at_ms);
}

}  // namespace

bool KeySupersedes(const ApiKey& candidate, const ApiKey& current) {
  if (candidate.updated_at_ms != current.updated_at_ms)
    return candidate.updated_at_ms > current.updated_at_ms;
  return StateRank(candidate) >= StateRank(current);
}

std::int64_t NextKeyVersion(std::int64_t previous_ms, std::int64_t now_ms) {
  return std::max(now_ms, previous_ms + 1);
}

std::vector<ApiKey> MergeKeyStates(const std::vector<ApiKey>& states) {
  std::vector<ApiKey> out;
  std::unordered_map<std::string, size_t> by_id;
  for (const auto& state : states) {
    auto [it, inserted] = by_id.emplace(state.id, out.size());
    if (inserted) {
      out.push_back(state);
    } else if (KeySupersedes(state, out[it->second])) {
      out[it->second] = state;
    }
  }
  return out;
}

bool ParseKeyState(const KeyRecordView& record, ApiKey& out, std::string& error) {
  if (record.record_key.empty()) {
    error = "a record without a key id";
    return false;
  }
  if (!record.value) {
    out = ApiKey{};
    out.id = std::string(record.record_key);
    out.deleted = true;
    return TombstoneVersion(record, kKeyUpdatedAtHeader, out.updated_at_ms, error);
  }
  if (!ParseKeyRecord(*record.value, out, error)) return false;
  if (out.id != record.record_key) {
    // Compaction keeps the last record per record key: a record filed under another key would
    // outlive the key's own deletion.
    error = fmt::format("record key {} does not match the id {} in its value", record.record_key, out.id);
    return false;
  }
  return true;
}

bool ParseKeyMessage(const rd_kafka_message_s* message, ApiKey& out, std::string& error) {
  return ParseStateMessage(message, kKeyUpdatedAtHeader,
                           [&](const KeyRecordView& view) { return ParseKeyState(view, out, error); });
}

std::shared_ptr<const KeyStore> KeyStore::LoadFile(const std::string& path) {
  auto store = std::make_shared<KeyStore>();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return store;
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    throw KeyError(fmt::format("keys file {}: {}", path, e.what()));
  }
  if (root.IsNull()) return store;
  // Checked before indexing: operator[] on a sequence silently turns it into a mapping, and on a
  // scalar throws a yaml-cpp error instead of a KeyError.
  if (!root.IsMap()) throw KeyError(fmt::format("keys file {}: expected a mapping with a 'keys' list", path));
  YAML::Node list = root["keys"];
  if (list && !list.IsNull() && !list.IsSequence()) {
    throw KeyError(fmt::format("keys file {}: expected a mapping with a 'keys' list", path));
  }
  size_t index = 0;
  for (const auto& node : list) {
    if (!node.IsMap()) throw KeyError(fmt::format("keys file {}: keys[{}] must be a mapping", path, index));
    // "keys file F: keys[I].<problem>"
    auto bad = [&](std::string_view problem) {
      return KeyError(fmt::format("keys file {}: keys[{}].{}", path, index, problem));
    };
    auto field = [&](const char* name, bool required) -> std::string {
      YAML::Node n = node[name];
      if (!n || n.IsNull()) {
        if (required) throw bad(fmt::format("{} is required", name));
        return {};
      }
      if (!n.IsScalar()) throw bad(fmt::format("{} must be a string", name));
      return n.as<std::string>();
    };
    ApiKey key;
    key.id = field("id", true);
    key.name = field("name", false);
    key.project = field("project", true);
    if (!validate::IsProjectName(key.project)) {
      throw bad(
          fmt::format("project '{}' is not a project name: {}", key.project, validate::kProjectNameRule));
    }
    std::string scope = field("scope", true);
    if (scope != "secret" && scope != "public") throw bad("scope must be secret or public");
    key.scope = scope == "secret" ? KeyScope::kSecret : KeyScope::kPublic;
    key.hash = field("hash", true);
    if (key.hash.size() != 7 + 64 || key.hash.substr(0, 7) != "sha256:")
      throw bad("hash must be sha256:<64 hex>");
    key.last4 = field("last4", false);
    key.created_at = field("created_at", false);
    key.revoked_at = field("revoked_at", false);
    std::string updated = field("updated_at_ms", false);
    if (!updated.empty() && !ParseDigits(updated, key.updated_at_ms)) {
      throw bad("updated_at_ms must be a number of milliseconds");
    }
    store->by_hash_[key.hash] = store->keys_.size();
    store->keys_.push_back(std::move(key));
    ++index;
  }
  return store;
}

void KeyStore::SaveFile(const std::string& path, const std::vector<ApiKey>& keys) {
  YAML::Emitter out;
  out << YAML::BeginMap << YAML::Key << "keys" << YAML::Value << YAML::BeginSeq;
  for (const auto& k : keys) {
    out << YAML::BeginMap;
    out << YAML::Key << "id" << YAML::Value << k.id;
    out << YAML::Key << "name" << YAML::Value << k.name;
    out << YAML::Key << "project" << YAML::Value << k.project;
    out << YAML::Key << "scope" << YAML::Value << (k.scope == KeyScope::kSecret ? "secret" : "public");
    out << YAML::Key << "hash" << YAML::Value << k.hash;
    out << YAML::Key << "last4" << YAML::Value << k.last4;
    out << YAML::Key << "created_at" << YAML::Value << k.created_at;
    if (!k.revoked_at.empty()) out << YAML::Key << "revoked_at" << YAML::Value << k.revoked_at;
    if (k.updated_at_ms > 0) out << YAML::Key << "updated_at_ms" << YAML::Value << k.updated_at_ms;
    out << YAML::EndMap;
  }
  out << YAML::EndSeq << YAML::EndMap;
  std::string error;
  if (!WriteFileAtomically(path, std::string(out.c_str()) + "\n", error, 0600))
    throw KeyError(fmt::format("keys file {}: cannot write: {}", path, error));
}

std::string KeyRecord(const ApiKey& k) {
  return KeyJson(k, true);
}

std::string KeyListingJson(const ApiKey& k) {
  return KeyJson(k, false);
}

bool ParseKeyRecord(std::string_view json, ApiKey& out, std::string& error) {
  auto fail = [&error](std::string why) {
    error = std::move(why);
    return false;
  };
  rapidjson::Document doc;
  ParseRecord(doc, json);
  if (doc.HasParseError() || !doc.IsObject()) return fail("not a JSON object");
  auto field = [&](const char* name) { return std::string(FindString(doc, name).value_or("")); };
  out.id = field("id");
  out.name = field("name");
  out.project = field("project");
  std::string scope = field("scope");
  out.hash = field("hash");
  out.last4 = field("last4");
  out.created_at = field("created_at");
  out.revoked_at = field("revoked_at");
  out.updated_at_ms = 0;  // a record from before versions: the oldest state
  out.deleted = false;
  if (const rapidjson::Value* v = FindMember(doc, "updated_at_ms"); v != nullptr) {
    if (!v->IsInt64() || v->GetInt64() < 0) return fail("updated_at_ms must be a number of milliseconds");
    out.updated_at_ms = v->GetInt64();
  }
  if (out.id.empty() || out.project.empty()) return fail("id and project are required");
  if (!validate::IsProjectName(out.project)) {
    return fail(
        fmt::format("project '{}' is not a project name: {}", out.project, validate::kProjectNameRule));
  }
  if (scope != "secret" && scope != "public") return fail("scope must be secret or public");
  out.scope = scope == "secret" ? KeyScope::kSecret : KeyScope::kPublic;
  if (out.hash.size() != 7 + 64 || out.hash.substr(0, 7) != "sha256:")
    return fail("hash must be sha256:<64 hex>");
  return true;
}

std::shared_ptr<const KeyStore> KeyStore::FromKeys(const std::vector<ApiKey>& states) {
  auto store = std::make_shared<KeyStore>();
  for (auto& key : MergeKeyStates(states)) {
    if (!key.deleted) store->keys_.push_back(std::move(key));
  }
  for (size_t i = 0; i < store->keys_.size(); ++i) store->by_hash_[store->keys_[i].hash] = i;
  return store;
}

KeyStore::Match KeyStore::Authenticate(std::string_view plain_key) const {
  return AuthenticateHash(HashKey(plain_key));
}

KeyStore::Match KeyStore::AuthenticateHash(std::string_view hash) const {
  auto it = by_hash_.find(std::string(hash));
  if (it == by_hash_.end()) return {};
  const ApiKey& key = keys_[it->second];
  // The map lookup already matched; the constant-time compare keeps a timing channel out even if
  // the map's equality were to short-circuit on a prefix of a colliding bucket.
  if (!ConstantTimeEquals(key.hash, hash)) return {};
  return {key.revoked() ? Result::kRevoked : Result::kOk, &key};
}

}  // namespace pv
