// The workers' Redis client is the one every component uses (pv/redis_client.hpp).
#pragma once

#include "pv/redis_client.hpp"

namespace pv::workers {

using pv::RedisClient;
using pv::RedisEndpoint;
using pv::RedisReply;

// redis.url by the parser every component uses. Throws std::invalid_argument (without the password).
inline RedisEndpoint ParseRedisUrl(const std::string& url) {
  return pv::ParseRedisEndpoint(url);
}

}  // namespace pv::workers
