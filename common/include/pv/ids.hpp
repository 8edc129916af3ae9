// Identifiers: trigger ids, send ids, API key material. See DESIGN.md "Identity and exactly-once".
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace pv {

// A new time-ordered id (UUIDv7 layout: 48-bit Unix milliseconds, then randomness).
std::string NewTriggerId();

// The trigger id of a request that carried an Idempotency-Key: the same project, campaign and key
// always give the same id (UUIDv8 layout over SHA-256), so a retried request yields the same sends.
// `index` distinguishes the items of one batch request.
std::string DerivedTriggerId(std::string_view project, std::string_view campaign_id,
                             std::string_view idempotency_key, int index = -1);

// send_id = f(trigger_id, channel): stable, so a redelivered trigger is deduplicated by the workers.
std::string SendIdFor(std::string_view trigger_id, std::string_view channel);
// The same id appended to `out` (no allocation when `out` has room for its 36 characters).
void AppendSendIdFor(std::string& out, std::string_view trigger_id, std::string_view channel);

// Lower-case hex SHA-256.
std::string Sha256Hex(std::string_view data);
std::array<unsigned char, 32> Sha256(std::string_view data);

// Constant-time equality (length is not secret).
bool ConstantTimeEquals(std::string_view a, std::string_view b);

// `n` bytes from the system CSPRNG as lower-case hex; throws std::runtime_error if it fails.
std::string RandomHex(size_t n);

}  // namespace pv
