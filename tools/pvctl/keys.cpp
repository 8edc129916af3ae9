// pvctl keys: create, list, revoke. The keys file is rewritten atomically under an exclusive lock,
// so concurrent pvctl runs never lose each other's changes; every ingest picks the change up within
// its reload interval (1 s by default).
#include "pv/keys.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <unistd.h>

#include <chrono>
#include <ostream>

#include "pv/ids.hpp"
#include "pv/json.hpp"
#include "pv/kafka.hpp"
#include "pv/topics.hpp"
#include "pv/validate.hpp"
#include "pvctl.hpp"

namespace pv::pvctl {
namespace {

constexpr const char* kKeysUsage = R"(Usage:
  pvctl keys create --project P --name N [--public] [--json]
  pvctl keys list [--project P] [--json]
  pvctl keys revoke KEY_ID [--json]

Keys are stored only as SHA-256 hashes in keys_file (config; env PV_KEYS_FILE; or --keys-file),
and each create/revoke is published to the compacted topic pv.keys (ingest.keys_topic) when
kafka.brokers is set, so every ingest on every machine applies it within about a second.
--local-only skips the topic. A new key is printed once: store it now, it cannot be shown again.
)";

// Holds an exclusive lock on "<keys file>.lock" for the scope.
class FileLock {
 public:
  explicit FileLock(const std::string& path) : fd_(::open((path + ".lock").c_str(), O_RDWR | O_CREAT, 0600)) {
    if (fd_ < 0 || ::flock(fd_, LOCK_EX) != 0) throw KeyError("cannot lock " + path + ".lock");
  }
  ~FileLock() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_;
};

std::string KeysFile(const Context& ctx) {
  std::string path = ctx.args.Get("--keys-file");
  return path.empty() ? ctx.config.GetString("keys_file", "keys.yaml") : path;
}

std::string KeyJson(const ApiKey& k) {
  std::string out = "{\"id\":";
  AppendJsonString(out, k.id);
  out += ",\"name\":";
  AppendJsonString(out, k.name);
  out += ",\"project\":";
  AppendJsonString(out, k.project);
  out += fmt::format(",\"scope\":\"{}\",\"last4\":", k.scope == KeyScope::kSecret ? "secret" : "public");
  AppendJsonString(out, k.last4);
  out += ",\"created_at\":";
  AppendJsonString(out, k.created_at);
  out += ",\"revoked_at\":";
  if (k.revoked()) {
    AppendJsonString(out, k.revoked_at);
  } else {
    out += "null";
  }
  return out + "}";
}

// Publishes the key's record to the compacted keys topic, so ingests on every machine pick the
// change up (docs/operations.md, "Keys"). Returns false, having said why, when it could not.
bool PublishKey(Context& ctx, const ApiKey& key) {
  if (ctx.args.Has("--local-only")) return true;
  kafka::Settings settings = kafka::LoadSettings(ctx.config);
  if (!ctx.args.Get("--brokers").empty()) settings.brokers = ctx.args.Get("--brokers");
  if (settings.brokers.empty()) {
    *ctx.err << "pvctl keys: note: kafka.brokers is not set, so the change is only in " << KeysFile(ctx)
             << " (ingests that read this file see it; others do not)\n";
    return true;
  }
  std::string topic = ctx.config.GetString("ingest.keys_topic", std::string(topics::kKeys));
  kafka::ProducerOptions options;
  options.client_id = "pvctl-keys";
  options.defaults = {{"message.timeout.ms", "10000"}};
  kafka::Producer producer(settings, options);
  auto group = std::make_shared<kafka::DeliveryGroup>(1);
  rd_kafka_resp_err_t err = producer.Produce(topic, key.id, KeyRecord(key), {}, group);
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    group->Wait(std::chrono::steady_clock::now() + std::chrono::seconds(12));
    err = group->first_error();
  }
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    *ctx.err << fmt::format(
        "pvctl keys: saved in {} but NOT published to {}: {}\n"
        "  ingests on other machines will not see it; rerun when the brokers are reachable\n",
        KeysFile(ctx), topic, rd_kafka_err2str(err));
    return false;
  }
  return true;
}

int Create(Context& ctx) {
  std::string project = ctx.args.Get("--project");
  std::string name = ctx.args.Get("--name");
  if (project.empty() || name.empty() || project == "true" || name == "true") {
    *ctx.err << "pvctl keys create: --project and --name are required\n\n" << kKeysUsage;
    return kExitUsage;
  }
  if (!validate::IsProjectName(project)) {
    *ctx.err << fmt::format("pvctl keys create: --project '{}' is not a project name: {}\n\n", project,
                            validate::kProjectNameRule)
             << kKeysUsage;
    return kExitUsage;
  }
  std::string path = KeysFile(ctx);
  FileLock lock(path);
  auto keys = KeyStore::LoadFile(path)->keys();
  KeyScope scope = ctx.args.Has("--public") ? KeyScope::kPublic : KeyScope::kSecret;
  std::string plain = GenerateKey(scope);
  ApiKey key;
  key.id = "key_" + RandomHex(8);
  key.name = name;
  key.project = project;
  key.scope = scope;
  key.hash = HashKey(plain);
  key.last4 = plain.substr(plain.size() - 4);
  key.created_at = FormatTimestamp(std::chrono::system_clock::now());
  keys.push_back(key);
  KeyStore::SaveFile(path, keys);
  bool published = PublishKey(ctx, key);
  if (ctx.json) {
    std::string json = KeyJson(key);
    json.pop_back();
    json += ",\"key\":";
    AppendJsonString(json, plain);
    *ctx.out << json << "}\n";
  } else {
    *ctx.out << fmt::format("Created {} key {} ({}) for project {}.\n",
                            scope == KeyScope::kSecret ? "secret" : "public", key.id, name, project)
             << "Key (shown once, store it now):\n"
             << plain << "\n";
  }
  return published ? kExitOk : kExitFailed;
}

int List(Context& ctx) {
  auto store = KeyStore::LoadFile(KeysFile(ctx));
  std::string project = ctx.args.Get("--project");
  if (ctx.json) {
    std::string out = "[";
    bool first = true;
    for (const auto& k : store->keys()) {
      if (!project.empty() && k.project != project) continue;
      out += (first ? "" : ",") + KeyJson(k);
      first = false;
    }
    *ctx.out << out << "]\n";
    return kExitOk;
  }
  *ctx.out << fmt::format("{:<22} {:<16} {:<12} {:<7} {:<25} {:<6} {}\n", "ID", "NAME", "PROJECT", "SCOPE",
                          "CREATED", "LAST4", "STATUS");
  for (const auto& k : store->keys()) {
    if (!project.empty() && k.project != project) continue;
    *ctx.out << fmt::format("{:<22} {:<16} {:<12} {:<7} {:<25} {:<6} {}\n", k.id, k.name, k.project,
                            k.scope == KeyScope::kSecret ? "secret" : "public", k.created_at, k.last4,
                            k.revoked() ? "revoked " + k.revoked_at : "active");
  }
  return kExitOk;
}

int Revoke(Context& ctx) {
  if (ctx.args.positional.size() != 3) {
    *ctx.err << "pvctl keys revoke: exactly one KEY_ID is required\n\n" << kKeysUsage;
    return kExitUsage;
  }
  const std::string& id = ctx.args.positional[2];
  std::string path = KeysFile(ctx);
  FileLock lock(path);
  auto keys = KeyStore::LoadFile(path)->keys();
  for (auto& k : keys) {
    if (k.id != id) continue;
    bool already = k.revoked();
    if (!already) {
      k.revoked_at = FormatTimestamp(std::chrono::system_clock::now());
      KeyStore::SaveFile(path, keys);
    }
    // Published again even when already revoked: a rerun after a failed publish completes it.
    if (!PublishKey(ctx, k)) return kExitFailed;
    if (ctx.json) {
      *ctx.out << KeyJson(k) << "\n";
    } else {
      *ctx.out << (already ? fmt::format("Key {} was already revoked at {}.\n", id, k.revoked_at)
                           : fmt::format("Revoked key {} ({}, project {}).\n", id, k.name, k.project));
    }
    return kExitOk;
  }
  *ctx.err << fmt::format("pvctl keys revoke: no key with id {}\n", id);
  return kExitNotFound;
}

}  // namespace

int KeysCommand(Context& ctx) {
  const auto& pos = ctx.args.positional;
  if (ctx.args.Has("--help") || ctx.args.Has("-h")) {
    *ctx.out << kKeysUsage;
    return kExitOk;
  }
  std::string sub = pos.size() > 1 ? pos[1] : "";
  if (sub == "create") return Create(ctx);
  if (sub == "list") return List(ctx);
  if (sub == "revoke") return Revoke(ctx);
  *ctx.err << (sub.empty() ? "pvctl keys: a subcommand is required\n\n"
                           : fmt::format("pvctl keys: unknown subcommand '{}'\n\n", sub))
           << kKeysUsage;
  return kExitUsage;
}

}  // namespace pv::pvctl
