#include "pvctl.hpp"

#include <fmt/format.h>

#include <ostream>
#include <set>

#include "pv/log.hpp"

namespace pv::pvctl {
namespace {

constexpr const char* kUsage = R"(Usage: pvctl [--config PATH] [--json] COMMAND ...

The operator's tool for the pv pipeline.

Commands:
  keys create --project P --name N [--public]   create an API key; prints it once (only its hash is kept)
  keys list                                       list keys (name, project, scope, created, last four)
  keys revoke KEY_ID                              revoke a key; ingest refuses it within seconds
  keys delete KEY_ID                              delete a key (a tombstone on pv.keys); ingest forgets it
  topics create [--dry-run]                       create the pipeline's topics (partitions from the config)
  topics list [--all]                             topics, partitions, records, consumer-group lag
  replay --from TOPIC [--to TOPIC] [filters]      re-publish dead letters once the cause is fixed
         [--campaign ID] [--error-code C] [--since T] [--until T] [--limit N] [--dry-run] [--restart]
  tail TOPIC [--follow] [--from-beginning]        print records with partition, offset, key, headers
       [--limit N]
  suppress add|remove|list --channel C VALUE...   suppressed addresses and users (Redis)

Options:
  --config PATH   deployment config (default: $PV_CONFIG); keys_file, kafka.brokers... come from it
  --keys-file F   override keys_file for the keys commands
  --brokers B     override kafka.brokers for keys, topics, replay and tail
  --redis-url U   override suppression.redis_url (else redis.url) for suppress
  --timeout S     broker round-trip timeout in seconds (default 10)
  --json          machine-readable output
  -h, --help      this help (also after any command: pvctl keys --help)

Exit codes: 0 ok, 1 failed, 2 usage error, 3 not found.
)";

}  // namespace

bool IsFlag(const std::string& name) {
  static const std::set<std::string> kFlags = {"--json",           "--public",  "--help", "-h",
                                               "--dry-run", "--local-only",        "--follow",  "--yes",  "--no-progress",
                                               "--from-beginning", "--restart", "--all",  "--user"};
  return kFlags.count(name) != 0;
}

Args ParseArgs(const std::vector<std::string>& words) {
  Args args;
  for (size_t i = 0; i < words.size(); ++i) {
    const std::string& w = words[i];
    if (w.size() > 1 && w[0] == '-') {
      auto eq = w.find('=');
      if (eq != std::string::npos) {
        args.options[w.substr(0, eq)] = w.substr(eq + 1);
      } else if (IsFlag(w) || i + 1 >= words.size()) {
        args.options[w] = "true";
      } else {
        args.options[w] = words[++i];
      }
    } else {
      args.positional.push_back(w);
    }
  }
  return args;
}

int Run(const std::vector<std::string>& words, std::ostream& out, std::ostream& err) {
  Context ctx{ParseArgs(words), Config(), false, &out, &err};
  ctx.json = ctx.args.Has("--json");
  log::SetService("pvctl");
  log::SetLevel(log::Level::kWarn);
  if (ctx.args.positional.empty()) {
    (ctx.args.Has("--help") || ctx.args.Has("-h") ? out : err) << kUsage;
    return ctx.args.Has("--help") || ctx.args.Has("-h") ? kExitOk : kExitUsage;
  }
  try {
    std::string path = ctx.args.Get("--config");
    if (path.empty()) {
      if (const char* env = std::getenv("PV_CONFIG"); env != nullptr) path = env;
    }
    ctx.config = Config::Load(path);
    const std::string& group = ctx.args.positional[0];
    if (group == "keys") return KeysCommand(ctx);
    if (group == "topics") return TopicsCommand(ctx);
    if (group == "replay") return ReplayCommand(ctx);
    if (group == "tail") return TailCommand(ctx);
    if (group == "suppress") return SuppressCommand(ctx);
    err << fmt::format("pvctl: unknown command '{}'\n\n{}", group, kUsage);
    return kExitUsage;
  } catch (const std::exception& e) {
    err << "pvctl: " << e.what() << "\n";
    return kExitFailed;
  }
}

}  // namespace pv::pvctl
