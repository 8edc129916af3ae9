-- wrk script for bench/status: GET /api/client/triggers/:id over the trigger ids in PV_BENCH_IDS (a
-- file, one id a line), in turn, at a fixed rate per wrk thread (open loop, as trigger_paced.lua: request
-- k of a thread is due at start + k / rate; a late slot goes out at once).
-- Environment: PV_BENCH_KEY (bearer key), PV_BENCH_RATE (requests/s per thread), PV_BENCH_IDS (path).
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } pv_status_timespec;
int clock_gettime(int clock_id, pv_status_timespec *tp);
]]
local ts = ffi.new("pv_status_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local key = os.getenv("PV_BENCH_KEY") or "sk_missing"
local rate = tonumber(os.getenv("PV_BENCH_RATE") or "0")
local ids = {}
for line in io.lines(os.getenv("PV_BENCH_IDS")) do
  if #line > 0 then ids[#ids + 1] = line end
end

local headers = { ["Authorization"] = "Bearer " .. key }
local counter = 0
function request()
  counter = counter + 1
  return wrk.format("GET", "/api/client/triggers/" .. ids[(counter % #ids) + 1], headers)
end

local statuses = {}
function response(status)
  statuses[status] = (statuses[status] or 0) + 1
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
