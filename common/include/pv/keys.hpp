// API keys. A key is "sk_<random>" (secret: may trigger) or "pk_<random>" (public: may not); only
// its SHA-256 is stored. Keys are long random strings, so a fast hash is the right tool here (a
// password hash would only slow every request). Presented keys are hashed, looked up by hash, and
// the stored hash is compared in constant time. A key is never logged.
//
// Storage: a YAML file (`keys_file`), rewritten atomically by `pvctl keys`, and watched by ingest,
// which reloads it within a second of a change; and the compacted topic pv.keys, which every ingest
// follows. The two are merged by one rule (KeySupersedes): the newest state of a key wins, whichever
// source it came from. See docs/operations.md "Keys".
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "pv/state_record.hpp"

namespace pv {

enum class KeyScope { kSecret, kPublic };

struct ApiKey {
  std::string id;    // "key_<hex>": names the key in listings and logs
  std::string name;  // the operator's label
  std::string project;
  KeyScope scope = KeyScope::kSecret;
  std::string hash;  // "sha256:<hex>"
  std::string last4;
  std::string created_at;
  std::string revoked_at;  // empty: active
  // When this state of the key was written, in Unix ms (NextKeyVersion): the version that decides
  // which of two states of the key wins. 0 in entries and records written before the field existed,
  // which therefore lose to any state that has one.
  std::int64_t updated_at_ms = 0;
  // A deletion (a tombstone on pv.keys): only id and updated_at_ms mean anything; it never
  // authenticates, and a store drops the key.
  bool deleted = false;
  bool revoked() const { return !revoked_at.empty(); }
};

// The merge rule, the same across keys_file and pv.keys and within each: true when `candidate`
// replaces `current` (the same key id). The later updated_at_ms wins; on a tie a deletion beats a
// revoke beats an active state, so no tie can bring a key back; on a complete tie the candidate
// (the later source) wins. Tested in keys_test.cpp (KeyMerge*).
bool KeySupersedes(const ApiKey& candidate, const ApiKey& current);

// The version for a new state of a key whose newest known state has `previous_ms` (0: none): the
// wall clock, but never at or before `previous_ms`, so a revoke wins even when this machine's clock is
// behind the one that wrote the state it replaces.
std::int64_t NextKeyVersion(std::int64_t previous_ms, std::int64_t now_ms);

// The newest state of each key id among `states` (KeySupersedes), in order of first appearance;
// deletions are kept, so a caller can merge the result again with another source.
std::vector<ApiKey> MergeKeyStates(const std::vector<ApiKey>& states);

class KeyError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// "sha256:<hex>" of a plain key.
std::string HashKey(std::string_view plain_key);
// A new key of the given scope ("sk_" or "pk_" + 32 random hex characters in UUID form).
std::string GenerateKey(KeyScope scope);
// The shape every key has: (sk|pk)_ then 16-128 of [A-Za-z0-9_-].
bool LooksLikeKey(std::string_view token);

// The record of a key on the compacted topic pv.keys (key = id): JSON with the hash, never the
// plain key, and updated_at_ms. pvctl publishes one per create/revoke and a tombstone (null value,
// kKeyUpdatedAtHeader) per delete; every ingest consumes the topic, so a key change reaches ingests
// on any machine without sharing the keys file.
std::string KeyRecord(const ApiKey& key);
// The key as pvctl shows it (`--json`): the record's fields but the version and the hash, with
// revoked_at null for a key that was never revoked.
std::string KeyListingJson(const ApiKey& key);
// False, with `error` saying why, for a malformed record.
bool ParseKeyRecord(std::string_view json, ApiKey& out, std::string& error);

// The header that carries a tombstone's updated_at_ms (a tombstone has no value to carry it).
inline constexpr const char* kKeyUpdatedAtHeader = "pv-updated-at";

// What a consumer read from pv.keys (the header: kKeyUpdatedAtHeader).
using KeyRecordView = StateRecordView;
// The state a pv.keys record stands for: the parsed value (whose id must be the record's key), or
// for a tombstone a deletion versioned by its header, else by the record's timestamp (a tombstone
// written by something other than pvctl). False, with `error`, for a record to ignore.
bool ParseKeyState(const KeyRecordView& record, ApiKey& out, std::string& error);
// The same for a record as librdkafka returned it (rd_kafka_message_t).
bool ParseKeyMessage(const rd_kafka_message_s* message, ApiKey& out, std::string& error);

class KeyStore {
 public:
  // A store of the newest state of each key among `states` (MergeKeyStates, so the order of the
  // sources matters only on a complete tie); deleted keys are left out.
  static std::shared_ptr<const KeyStore> FromKeys(const std::vector<ApiKey>& states);
  enum class Result { kOk, kUnknown, kRevoked };
  struct Match {
    Result result = Result::kUnknown;
    const ApiKey* key = nullptr;
  };

  // Throws KeyError naming the file and entry on any problem. A missing file is an empty store.
  static std::shared_ptr<const KeyStore> LoadFile(const std::string& path);
  // Writes atomically (temp file + rename), mode 0600.
  static void SaveFile(const std::string& path, const std::vector<ApiKey>& keys);

  Match Authenticate(std::string_view plain_key) const;
  // The same, for a key already hashed with HashKey (callers that cache the hash of a key).
  Match AuthenticateHash(std::string_view hash) const;
  const std::vector<ApiKey>& keys() const { return keys_; }

 private:
  std::vector<ApiKey> keys_;
  std::unordered_map<std::string, size_t> by_hash_;
};

}  // namespace pv
