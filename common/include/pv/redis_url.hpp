// Redis URLs (redis.url, suppression.redis_url): what pv accepts, shared by the dispatcher's and the
// workers' parsers so both refuse the same URLs with the same words.
#pragma once

#include <string>
#include <string_view>

namespace pv {

// Why a Redis URL is refused for its scheme, or "" when it starts with redis://, the only scheme pv
// speaks. rediss:// (TLS) gets its own answer: pv's hiredis client has no TLS, so it refuses rather
// than connect in clear text, and the message points at the tunnel recipe (docs/operations.md "Redis
// over TLS"). The URL in the message has its password masked (MaskUrlPassword). Tests:
// RedisUrl.RedissIsRefusedWithTheTunnelRecipe (dispatcher),
// WorkerConfigTest.RedissIsRefusedWithTheTunnelRecipe.
std::string RedisUrlSchemeError(std::string_view url);

}  // namespace pv
