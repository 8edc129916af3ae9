#!/usr/bin/env bash
# End to end, as a newcomer runs it: `scripts/dev up` in a fresh state directory, the printed curl
# for the seed's example, then the delivered send in the outbox (log provider) for email, text and
# push; `up` again starts nothing new; `down` leaves no process behind.
# Usage: dev_stack_test.sh BUILD_DIR
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
export BUILD_DIR=${1:?build dir}
export PV_DEV_DIR
PV_DEV_DIR=$(mktemp -d "${TMPDIR:-/tmp}/pv-e2e.XXXXXX")
fail() { echo "FAIL: $*"; echo "--- logs"; tail -n 20 "$PV_DEV_DIR"/log/*.log 2>/dev/null || true; exit 1; }
cleanup() {
  "$root/scripts/dev" down >/dev/null 2>&1 || true
  rm -rf "$PV_DEV_DIR"
}
trap cleanup EXIT

out=$("$root/scripts/dev" up 2>&1) || fail "dev up: $out"
# shellcheck disable=SC1091
source "$PV_DEV_DIR/env"
[ -n "$INGEST_URL" ] && [ -n "$DEV_API_KEY" ] && [ -n "$KAFKA_BROKERS" ] && [ -n "$REDIS_URL" ] && [ -n "$OUTBOX_DIR" ] ||
  fail ".dev/env lacks a setting"
grep -q "$DEV_API_KEY" "$PV_DEV_DIR/keys.yaml" && fail "the plain dev key is in keys.yaml"
for s in dev-broker redis ingest; do
  [ -s "$PV_DEV_DIR/run/$s.pid" ] && kill -0 "$(cat "$PV_DEV_DIR/run/$s.pid")" || fail "$s is not running"
done

# The printed curl, run as printed (the line continuation is part of what a user pastes).
curl_cmd=$(printf '%s\n' "$out" | sed -n '/^curl /,/^ *-d /p')
[ -n "$curl_cmd" ] || fail "dev up printed no curl"
status=$(bash -c "${curl_cmd/curl -i/curl -s -o /dev/null -w '%{http_code}'}")
[ "$status" = 204 ] || fail "the printed curl answered $status"
echo "ok: printed curl -> 204"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$INGEST_ADMIN_URL/readyz")" = 200 ] || fail "ingest /readyz on the admin port"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$INGEST_URL/readyz")" = 404 ] || fail "/readyz must not be on the API port"
echo "ok: ingest's /readyz on its admin port only"

# A second up starts nothing new.
pids_before=$(cat "$PV_DEV_DIR"/run/*.pid | sort)
"$root/scripts/dev" up >/dev/null 2>&1 || fail "second dev up failed"
pids_after=$(cat "$PV_DEV_DIR"/run/*.pid | sort)
[ "$pids_before" = "$pids_after" ] || fail "second up restarted services"
echo "ok: dev up is idempotent"

post() {  # post CAMPAIGN BODY -> HTTP status
  curl -s -o /dev/null -w '%{http_code}' -X POST "$INGEST_URL/api/client/campaigns/$1/trigger" \
    -H "Authorization: Bearer $DEV_API_KEY" -H "Content-Type: application/json" -d "$2"
}

if [ -s "$PV_DEV_DIR/run/dispatcher.pid" ] && [ -s "$PV_DEV_DIR/run/email-worker.pid" ]; then
  # A zone where it is now daytime, so campaign 46's 09:00-21:00 window is open.
  tz=$(python3 -c '
from datetime import datetime; from zoneinfo import ZoneInfo
for z in ["UTC","Asia/Tokyo","America/New_York","Europe/London","Australia/Sydney","Pacific/Honolulu","Asia/Kolkata","America/Los_Angeles"]:
    if 10 <= datetime.now(ZoneInfo(z)).hour < 20: print(z); break')
  run_id=$$-$RANDOM
  [ "$(post 44 '{"user":{"external_id":"e2e-email-'$run_id'","email":"ana@example.com","first_name":"Ana","locale":"es"},"event":{"order_id":"A-1"}}')" = 204 ] || fail "email trigger"
  [ "$(post 45 '{"user":{"external_id":"e2e-text-'$run_id'","phone":"+14155550100"},"event":{"code":"123456","minutes":10}}')" = 204 ] || fail "text trigger"
  [ "$(post 46 '{"user":{"external_id":"e2e-push-'$run_id'","device_token":"tok-e2e","first_name":"Bo","timezone":"'$tz'"},"event":{"item_count":3,"cart_id":"c9"}}')" = 204 ] || fail "push trigger"
  for channel in email text push; do
    found=0
    for _ in $(seq 300); do
      if grep -qs "e2e-$channel-$run_id" "$OUTBOX_DIR"/*; then found=1; break; fi
      sleep 0.1
    done
    [ "$found" = 1 ] || fail "no $channel send for e2e-$channel-$run_id in $OUTBOX_DIR within 30s"
  done
  grep -hs "e2e-email-$run_id" "$OUTBOX_DIR"/* | grep -q 'Hola Ana' || fail "email not rendered from the es template"
  grep -hs "e2e-text-$run_id" "$OUTBOX_DIR"/* | grep -q '123456' || fail "text not rendered"
  echo "ok: email, text and push delivered once each through the log provider"
  for channel in email text push; do
    n=$(grep -hs "e2e-$channel-$run_id" "$OUTBOX_DIR"/* | wc -l)
    [ "$n" = 1 ] || fail "$channel delivered $n times"
  done
else
  echo "note: dispatcher/workers not built; checked ingest only"
fi

pids=$(cat "$PV_DEV_DIR"/run/*.pid)
"$root/scripts/dev" down >/dev/null 2>&1 || fail "dev down failed"
for pid in $pids; do
  kill -0 "$pid" 2>/dev/null && fail "pid $pid still running after down"
done
ls "$PV_DEV_DIR"/run/*.pid >/dev/null 2>&1 && fail "pid files left after down"
echo "ok: dev down stopped every process it started"
echo "1 passed, 0 failed"
