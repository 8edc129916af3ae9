-- wrk script for bench/latency: POSTs triggers of campaign 44 (email), each with its own external_id,
-- at a fixed rate per wrk thread (open loop: request k of a thread is due at start + k / rate, whichever
-- connection is free takes it; a late slot goes out at once).
-- Environment: PV_BENCH_KEY (bearer key), PV_BENCH_RATE (requests/s per thread; 0 = as fast as possible),
-- PV_BENCH_PREFIX (external_id prefix, so a run's deliveries can be told apart in the outbox).
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } pv_bench_timespec;
int clock_gettime(int clock_id, pv_bench_timespec *tp);
]]
local ts = ffi.new("pv_bench_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local key = os.getenv("PV_BENCH_KEY") or "sk_missing"
local rate = tonumber(os.getenv("PV_BENCH_RATE") or "0")
local prefix = os.getenv("PV_BENCH_PREFIX") or "bench"

local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

local headers = { ["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json" }
local counter = 0
function request()
  counter = counter + 1
  local body = string.format(
    '{"user":{"external_id":"%s-%d-%d","email":"test@test.com","timezone":"America/Chicago","locale":"en"},' ..
    '"event":{"random_field":"value"}}', prefix, tid or 0, counter)
  return wrk.format("POST", "/api/client/campaigns/44/trigger", headers, body)
end

if rate > 0 then
  local next_at = nil
  function delay()
    local t = now_ms()
    if next_at == nil then next_at = t end
    next_at = next_at + 1000 / rate
    local d = next_at - t
    if d < 0 then return 0 end
    return math.floor(d)
  end
end
