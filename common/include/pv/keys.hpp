// API keys. A key is "sk_<random>" (secret: may trigger) or "pk_<random>" (public: may not); only
// its SHA-256 is stored. Keys are long random strings, so a fast hash is the right tool here (a
// password hash would only slow every request). Presented keys are hashed, looked up by hash, and
// the stored hash is compared in constant time. A key is never logged.
//
// Storage: a YAML file (`keys_file`), rewritten atomically by `pvctl keys`, and watched by ingest,
// which reloads it within a second of a change. See docs/operations.md "Key rotation".
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

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
  bool revoked() const { return !revoked_at.empty(); }
};

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
// plain key. pvctl publishes one per create/revoke; every ingest consumes the topic, so a key change
// reaches ingests on any machine without sharing the keys file.
std::string KeyRecord(const ApiKey& key);
// False, with `error` saying why, for a malformed record.
bool ParseKeyRecord(std::string_view json, ApiKey& out, std::string& error);

class KeyStore {
 public:
  // A store of these keys; a later entry with the same id replaces an earlier one.
  static std::shared_ptr<const KeyStore> FromKeys(const std::vector<ApiKey>& keys);
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
