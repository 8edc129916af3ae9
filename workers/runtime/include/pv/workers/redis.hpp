// The workers' Redis client is the one every component uses (pv/redis_client.hpp).
#pragma once

#include "pv/redis_client.hpp"

namespace pv::workers {

using pv::RedisClient;
using pv::RedisEndpoint;
using pv::RedisReply;

}  // namespace pv::workers
