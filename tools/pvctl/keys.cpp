// pvctl keys: create, list, revoke, delete. A key's state lives in two places: keys_file (rewritten
// atomically under an exclusive lock, so concurrent pvctl runs never lose each other's changes) and
// the compacted topic pv.keys (ingest.keys_topic), which every ingest follows. Both are merged by one
// rule (KeySupersedes: the newest state wins), here as in ingest, so list and revoke see keys created
// on any machine. A change that must reach the topic (every change unless ingest.keys_topic is empty)
// exits 0 only once the broker acknowledged it.
#include "pv/keys.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <ostream>

#include "kafka_client.hpp"
#include "pv/command_line.hpp"
#include "pv/ids.hpp"
#include "pv/json.hpp"
#include "pv/kafka.hpp"
#include "pv/topics.hpp"
#include "pv/validate.hpp"
#include "pvctl.hpp"

namespace pv::pvctl {
namespace {

constexpr const char* kKeysFooter =
    R"(Keys are stored only as SHA-256 hashes, in keys_file (config; env PV_KEYS_FILE; or --keys-file) and
on the compacted topic pv.keys (ingest.keys_topic), which every ingest on every machine follows.
A key's newest state wins, from either place. create, revoke and delete publish to the topic and
exit 0 only once the broker acknowledged; without kafka.brokers (or --brokers), or when the broker
cannot be reached, they exit 1 and say what did and did not change. list and revoke read the file
and the topic, so they see keys created on other machines. delete writes a tombstone: every ingest
forgets the key (it then answers "unknown API key"); revoke first to keep the reason visible.
With ingest.keys_topic set to "" (ingests read keys_file only) every command works on the file alone.
A new key is printed once: store it now, it cannot be shown again.
Global options (before or after the command): --config, --json, --keys-file, --brokers, --timeout.
Exit codes: 0 ok, 1 failed (the topic could not be read or written), 2 usage, 3 no such key.)";

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
  return ctx.keys_file.empty() ? ctx.config.GetString("keys_file", "keys.yaml") : ctx.keys_file;
}

// Where key changes go besides the file. `topic` empty: the deployment's ingests read keys_file only
// (ingest.keys_topic: ""), and the file is the whole truth.
struct KeysTopic {
  std::string topic;
  std::optional<kafka::Settings> settings;  // none: kafka.brokers is not set
};

KeysTopic TopicOf(const Context& ctx) {
  KeysTopic t;
  t.topic = ctx.config.GetString("ingest.keys_topic", std::string(topics::kKeys));
  if (t.topic.empty()) return t;
  kafka::Settings settings = kafka::LoadSettings(ctx.config);
  if (!ctx.brokers.empty()) settings.brokers = ctx.brokers;
  if (!settings.brokers.empty()) t.settings = std::move(settings);
  return t;
}

std::string NoBrokers(const KeysTopic& t) {
  return fmt::format(
      "kafka.brokers is not set, so {} cannot be read or written (set kafka.brokers or PV_KAFKA_BROKERS, "
      "or pass --brokers; a deployment whose ingests read only keys_file sets ingest.keys_topic: \"\")",
      t.topic);
}

// Every state on the topic (records and tombstones, oldest first), read from the beginning up to the
// high watermarks taken at the start. Throws KafkaError when the topic cannot be read in time.
std::vector<ApiKey> ReadTopicStates(const Context& ctx, const KeysTopic& t) {
  std::vector<ApiKey> states;
  ReadToEnd(*t.settings, t.topic, "pvctl-keys", RequestTimeout(ctx), [&](const rd_kafka_message_t* m) {
    ApiKey state;
    std::string error;
    if (ParseKeyMessage(m, state, error)) {
      states.push_back(std::move(state));
    } else {
      *ctx.err << fmt::format("pvctl keys: note: {} offset {} ignored: {}\n", t.topic, m->offset, error);
    }
  });
  return states;
}

// Publishes a state (a record, or a tombstone for a deletion) and waits for the acknowledgement.
// Returns the error, empty on success.
std::string Publish(const KeysTopic& t, const ApiKey& state) {
  kafka::ProducerOptions options;
  options.client_id = "pvctl-keys";
  options.defaults = {{"message.timeout.ms", "10000"}};
  kafka::Producer producer(*t.settings, options);
  auto group = std::make_shared<kafka::DeliveryGroup>(1);
  rd_kafka_resp_err_t err = ProduceState(producer, t.topic, state.id,
                                         state.deleted ? std::nullopt : std::optional(KeyRecord(state)),
                                         kKeyUpdatedAtHeader, state.updated_at_ms, group);
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    if (!group->Wait(std::chrono::steady_clock::now() + std::chrono::seconds(12))) {
      return "no acknowledgement from the broker within 12 s";
    }
    err = group->first_error();
  }
  return err == RD_KAFKA_RESP_ERR_NO_ERROR ? std::string() : rd_kafka_err2str(err);
}

// The merged view: the newest state of every key across the file and the topic.
struct View {
  std::vector<ApiKey> file;    // the file's entries, as stored
  std::vector<ApiKey> merged;  // newest state per id, deletions included
  std::string topic_error;     // why the topic could not be read (the view is then the file's alone)
  const ApiKey* Find(const std::string& id) const {
    auto it = std::find_if(merged.begin(), merged.end(), [&](const ApiKey& k) { return k.id == id; });
    return it == merged.end() ? nullptr : &*it;
  }
};

View ReadView(const Context& ctx, const KeysTopic& t, const std::string& path) {
  View v;
  v.file = KeyStore::LoadFile(path)->keys();
  std::vector<ApiKey> states = v.file;
  if (!t.topic.empty() && !t.settings) {
    v.topic_error = NoBrokers(t);
  } else if (!t.topic.empty()) {
    try {
      auto topic_states = ReadTopicStates(ctx, t);
      states.insert(states.end(), topic_states.begin(), topic_states.end());
    } catch (const std::exception& e) {
      v.topic_error = fmt::format("cannot read {}: {}", t.topic, e.what());
    }
  }
  v.merged = MergeKeyStates(states);
  return v;
}

// The file with `state` in place of the entry of the same id (when the file has one), and without entries
// whose key the topic deleted (a deletion made on another machine reaches this file the next time pvctl
// rewrites it). Returns whether anything changed.
bool UpdateFile(std::vector<ApiKey>& file, const View& view, const ApiKey* state) {
  bool changed = false;
  std::vector<ApiKey> out;
  for (auto& entry : file) {
    bool replaced = state != nullptr && entry.id == state->id;
    const ApiKey* merged = replaced ? state : view.Find(entry.id);
    if (merged != nullptr && merged->deleted) {
      changed = true;
    } else if (replaced) {
      changed =
          changed || entry.updated_at_ms != state->updated_at_ms || entry.revoked_at != state->revoked_at;
      out.push_back(*state);
    } else {
      out.push_back(std::move(entry));
    }
  }
  file = std::move(out);
  return changed;
}

struct CreateOptions {
  std::string project;
  std::string name;
  bool is_public = false;
};

int Create(Context& ctx, const CreateOptions& options) {
  const std::string& project = options.project;
  const std::string& name = options.name;
  if (!validate::IsProjectName(project)) {
    return UsageError(
        ctx, fmt::format("--project '{}' is not a project name: {}", project, validate::kProjectNameRule));
  }
  KeysTopic topic = TopicOf(ctx);
  if (!topic.topic.empty() && !topic.settings) return Fail(ctx, "nothing created: " + NoBrokers(topic));
  std::string path = KeysFile(ctx);
  FileLock lock(path);
  auto keys = KeyStore::LoadFile(path)->keys();
  KeyScope scope = options.is_public ? KeyScope::kPublic : KeyScope::kSecret;
  std::string plain = GenerateKey(scope);
  ApiKey key;
  key.id = "key_" + RandomHex(8);
  key.name = name;
  key.project = project;
  key.scope = scope;
  key.hash = HashKey(plain);
  key.last4 = plain.substr(plain.size() - 4);
  auto now = std::chrono::system_clock::now();
  key.created_at = FormatTimestamp(now);
  key.updated_at_ms = ToUnixMillis(now);
  keys.push_back(key);
  KeyStore::SaveFile(path, keys);
  std::string error = topic.topic.empty() ? std::string() : Publish(topic, key);
  if (!error.empty()) {
    *ctx.err << fmt::format(
        "pvctl keys create: saved in {} but NOT published to {}: {}\n"
        "  ingests that do not read this file will not accept the key; rerun when the brokers are "
        "reachable\n",
        path, topic.topic, error);
  }
  if (ctx.json) {
    std::string json = KeyListingJson(key);
    json.pop_back();  // its closing brace: the key goes in too
    *ctx.out << json << ",\"key\":" << JsonString(plain) << "}\n";
  } else {
    *ctx.out << fmt::format("Created {} key {} ({}) for project {}.\n",
                            scope == KeyScope::kSecret ? "secret" : "public", key.id, name, project)
             << "Key (shown once, store it now):\n"
             << plain << "\n";
  }
  return error.empty() ? kExitOk : kExitFailed;
}

int List(Context& ctx, const std::string& project) {
  KeysTopic topic = TopicOf(ctx);
  View view = ReadView(ctx, topic, KeysFile(ctx));
  // Listing the file alone would show keys as active that the topic revoked or deleted, and miss keys
  // created elsewhere.
  if (!view.topic_error.empty()) return Fail(ctx, view.topic_error);
  std::vector<const ApiKey*> shown;
  for (const auto& k : view.merged) {
    if (!k.deleted && (project.empty() || k.project == project)) shown.push_back(&k);
  }
  if (ctx.json) {
    *ctx.out << JsonArray(shown, [](const ApiKey* k) { return KeyListingJson(*k); }) << "\n";
    return kExitOk;
  }
  *ctx.out << fmt::format("{:<22} {:<16} {:<12} {:<7} {:<25} {:<6} {}\n", "ID", "NAME", "PROJECT", "SCOPE",
                          "CREATED", "LAST4", "STATUS");
  for (const ApiKey* k : shown) {
    *ctx.out << fmt::format("{:<22} {:<16} {:<12} {:<7} {:<25} {:<6} {}\n", k->id, k->name, k->project,
                            k->scope == KeyScope::kSecret ? "secret" : "public", k->created_at, k->last4,
                            k->revoked() ? "revoked " + k->revoked_at : "active");
  }
  return kExitOk;
}

int Revoke(Context& ctx, const std::string& id) {
  KeysTopic topic = TopicOf(ctx);
  std::string path = KeysFile(ctx);
  FileLock lock(path);
  View view = ReadView(ctx, topic, path);
  const ApiKey* current = view.Find(id);
  if (current == nullptr && !view.topic_error.empty())
    return Fail(ctx, fmt::format("{} is not in {}, and {}", id, path, view.topic_error));
  if (current == nullptr) return Fail(ctx, "no key with id " + id, kExitNotFound);
  if (current->deleted) {
    if (UpdateFile(view.file, view, nullptr)) KeyStore::SaveFile(path, view.file);
    *ctx.out << fmt::format("Key {} was deleted; no ingest accepts it.\n", id);
    return kExitOk;
  }
  bool already = current->revoked();
  ApiKey state = *current;
  if (!already) {
    std::int64_t now = NowUnixMillis();
    state.revoked_at = FormatTimestamp(FromUnixMillis(now));
    state.updated_at_ms = NextKeyVersion(current->updated_at_ms, now);
  }
  // The file first: ingests that read it refuse the key even if the topic cannot be reached.
  bool in_file = std::any_of(view.file.begin(), view.file.end(), [&](const ApiKey& k) { return k.id == id; });
  if (UpdateFile(view.file, view, &state)) KeyStore::SaveFile(path, view.file);
  if (!view.topic_error.empty()) {
    return Fail(
        ctx, fmt::format(
                 "{}; NOT revoked on the topic: {}; rerun when the brokers are reachable", view.topic_error,
                 in_file ? fmt::format("revoked in {} only, so only ingests that read it refuse {}", path, id)
                         : fmt::format("{} is not in {} either, so nothing changed", id, path)));
  }
  // Published again when already revoked: a rerun after a failed publish completes it.
  if (!topic.topic.empty()) {
    if (std::string error = Publish(topic, state); !error.empty()) {
      return Fail(ctx, fmt::format("NOT published to {}: {}\n  ingests that do not read {} still accept {}; "
                                   "rerun when the brokers are reachable",
                                   topic.topic, error, path, id));
    }
  }
  *ctx.out << (ctx.json  ? KeyListingJson(state) + "\n"
               : already ? fmt::format("Key {} was already revoked at {}.\n", id, state.revoked_at)
                         : fmt::format("Revoked key {} ({}, project {}).\n", id, state.name, state.project));
  return kExitOk;
}

int Delete(Context& ctx, const std::string& id) {
  KeysTopic topic = TopicOf(ctx);
  std::string path = KeysFile(ctx);
  FileLock lock(path);
  View view = ReadView(ctx, topic, path);
  // Nothing changes: removing the file's entry alone could bring back an older active state from the
  // topic on the ingests that read this file.
  if (!view.topic_error.empty()) return Fail(ctx, "nothing deleted: " + view.topic_error);
  const ApiKey* current = view.Find(id);
  if (current == nullptr) return Fail(ctx, "no key with id " + id, kExitNotFound);
  ApiKey state;
  state.id = id;
  state.deleted = true;
  state.updated_at_ms =
      current->deleted ? current->updated_at_ms : NextKeyVersion(current->updated_at_ms, NowUnixMillis());
  // The tombstone before the file: until it is on the topic, the file's entry (if any) keeps the key's
  // newest state where this file is read.
  if (!topic.topic.empty()) {
    if (std::string error = Publish(topic, state); !error.empty())
      return Fail(
          ctx, fmt::format("nothing deleted: the tombstone was NOT published to {}: {}", topic.topic, error));
  }
  if (UpdateFile(view.file, view, &state)) KeyStore::SaveFile(path, view.file);
  *ctx.out << (ctx.json ? fmt::format("{{\"id\":\"{}\",\"deleted\":true,\"updated_at_ms\":{}}}\n", id,
                                      state.updated_at_ms)
                        : fmt::format("Deleted key {}.\n", id));
  return kExitOk;
}

}  // namespace

void AddKeysCommands(CLI::App& app, Context& ctx) {
  CLI::App* keys = app.add_subcommand("keys", "API keys: create, list, revoke, delete");
  keys->footer(kKeysFooter);  // its subcommands inherit it
  keys->require_subcommand(1);
  // It once wrote only the file and exited 0, while the older active record on pv.keys kept the key
  // working on every other ingest. Hidden (no group), refused with the reason.
  auto gone = [] {
    throw CLI::ValidationError(
        "--local-only is gone: a change exits 0 only once it is on the keys topic. A deployment whose "
        "ingests read only keys_file sets ingest.keys_topic: \"\" (then every keys command works on the file "
        "alone)");
  };
  keys->add_flag_callback("--local-only", gone)->group("");

  auto create_options = std::make_shared<CreateOptions>();
  CLI::App* create =
      keys->add_subcommand("create", "create an API key; prints it once (only its hash is kept)");
  create->add_option("--project", create_options->project, "the project the key sends for")
      ->type_name("P")
      ->required();
  AddText(create, "--name", create_options->name, "a name to recognise the key by", "N")->required();
  create->add_flag("--public", create_options->is_public,
                   "a public key (pk_...) instead of a secret one (sk_...)");
  OnRun(create, ctx, [&ctx, create_options] { return Create(ctx, *create_options); });

  auto project = std::make_shared<std::string>();
  CLI::App* list =
      keys->add_subcommand("list", "list keys: id, name, project, scope, created, last four, status");
  list->add_option("--project", *project, "only the keys of this project")->type_name("P");
  OnRun(list, ctx, [&ctx, project] { return List(ctx, *project); });

  auto revoke_id = std::make_shared<std::string>();
  CLI::App* revoke = keys->add_subcommand("revoke", "revoke a key: every ingest refuses it within seconds");
  revoke->add_option("KEY_ID", *revoke_id, "the key's id (key_...)")->required();
  OnRun(revoke, ctx, [&ctx, revoke_id] { return Revoke(ctx, *revoke_id); });

  auto delete_id = std::make_shared<std::string>();
  CLI::App* del =
      keys->add_subcommand("delete", "delete a key: a tombstone on pv.keys, every ingest forgets it");
  del->add_option("KEY_ID", *delete_id, "the key's id (key_...)")->required();
  OnRun(del, ctx, [&ctx, delete_id] { return Delete(ctx, *delete_id); });
}

}  // namespace pv::pvctl
