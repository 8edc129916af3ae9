-- wrk script: POST the seed's example (campaign 44, email) with the bench key.
-- Environment: PV_BENCH_KEY (the bearer key), PV_BENCH_DELAY_MS (optional pacing per connection).
local key = os.getenv("PV_BENCH_KEY") or "sk_missing"
local delay_ms = tonumber(os.getenv("PV_BENCH_DELAY_MS") or "0")
wrk.method = "POST"
wrk.path = "/api/client/campaigns/44/trigger"
wrk.headers["Authorization"] = "Bearer " .. key
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"user":{"external_id":"EXTERNAL_ID","email":"test@test.com","timezone":"America/Chicago","locale":"en"},"event":{"random_field":"value"}}'

local statuses = {}
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

if delay_ms > 0 then
  function delay()
    return delay_ms
  end
end

-- One summary line per thread is not available in done(); wrk exposes only the aggregate, so the
-- non-2xx count comes from wrk's own "Non-2xx or 3xx responses" line.
function done(summary, latency, requests)
  io.write(string.format("BENCH requests=%d duration_us=%d rps=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f errors=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout))
end
