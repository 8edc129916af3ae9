// What email-worker, sms-worker and push-worker run: the command line, the config, the providers,
// the Redis store, the admin endpoints and the worker loop, with SIGTERM draining.
#pragma once

#include "pv/config.hpp"
#include "pv/topics.hpp"
#include "pv/workers/dedupe_store.hpp"
#include "pv/workers/worker.hpp"

namespace pv::workers {

// worker.<channel>.<setting>, else workers.<setting>, else the default (<channel>: email|sms|push).
WorkerOptions LoadWorkerOptions(const Config& config, Channel channel);
RedisDedupeOptions LoadDedupeOptions(const Config& config, Channel channel, const std::string& worker_id);

int RunWorkerMain(Channel channel, int argc, char** argv);

}  // namespace pv::workers
