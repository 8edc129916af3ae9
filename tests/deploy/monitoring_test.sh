#!/usr/bin/env bash
# The monitoring configuration of compose.yaml, checked with the tools of the versions Debian ships
# (packages prometheus and prometheus-alertmanager; scripts/bootstrap installs them):
#
#   monitoring_test.sh check   promtool check config (prometheus.yml and every rule file it loads),
#                              promtool check rules on every deploy/prometheus/alerts*.yml, the rules'
#                              unit tests (promtool test rules deploy/prometheus/tests/*.yml: input series,
#                              alerts that must fire and must clear), amtool check-config.
#   monitoring_test.sh route   Debian's Alertmanager with deploy/alertmanager/alertmanager.yml (only the
#                              webhook's host changed to loopback) and the example receiver
#                              (alert_log.py): an alert posted to Alertmanager comes out as a log line.
#   monitoring_test.sh redis   Debian's redis_exporter against a redis-server configured like compose's
#                              instances: every redis_* metric the rules and the dashboard query is one
#                              it exports (Debian ships 1.45; compose runs a newer image).
#
# Run by ctest (deploy.monitoring_check, deploy.alert_routing, deploy.redis_metrics). Binds loopback ports picked free;
# stops what it started, by pid.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
mode=${1:-check}
fail() { echo "FAIL: $*" >&2; exit 1; }
need() {
  command -v "$1" >/dev/null || fail "$1 is not installed (Debian package $2; run scripts/bootstrap)"
}

check() {
  need promtool prometheus
  need amtool prometheus-alertmanager
  cd "$root/deploy/prometheus"
  promtool check config prometheus.yml
  # Every rule file in the directory must be one prometheus.yml loads (rule_files: alerts*.yml).
  shopt -s nullglob
  local rules=(alerts*.yml)
  [ ${#rules[@]} -ge 3 ] || fail "expected alerts.yml, alerts-dead-letters.yml, alerts-redis.yml; found ${rules[*]}"
  for f in *.yml; do
    case "$f" in
      prometheus.yml | alerts*.yml) ;;
      *) fail "deploy/prometheus/$f: neither prometheus.yml nor a rule file it loads (alerts*.yml)" ;;
    esac
  done
  promtool check rules "${rules[@]}"
  local tests=(tests/*_test.yml)
  [ ${#tests[@]} -ge 2 ] || fail "no rule unit tests in deploy/prometheus/tests"
  promtool test rules "${tests[@]}"
  amtool check-config "$root/deploy/alertmanager/alertmanager.yml"

  # Every query of the Grafana dashboard parses as PromQL: each becomes a recording rule of a
  # throwaway file that promtool checks. Recording rules the dashboard uses (pv:...) must exist.
  local tmp
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/pv-dashboard.XXXXXX")
  python3 - "$root/deploy/grafana/dashboards/pv.json" "$tmp/dashboard.yml" "${rules[@]}" <<'PY'
import json, re, sys
dashboard, out, rule_files = sys.argv[1], sys.argv[2], sys.argv[3:]
exprs = []
def walk(panels):
    for p in panels:
        walk(p.get("panels", []))
        exprs.extend((p.get("title", ""), t["expr"]) for t in p.get("targets", []) if "expr" in t)
walk(json.load(open(dashboard))["panels"])
recorded = set()
for f in rule_files:
    recorded.update(re.findall(r"^\s*- record:\s*(\S+)", open(f).read(), re.M))
missing = sorted({n for _, e in exprs for n in re.findall(r"\bpv:[a-z0-9_:]+", e)} - recorded)
if missing:
    sys.exit("dashboard uses recording rules no rule file defines: %s" % ", ".join(missing))
with open(out, "w") as f:
    f.write("groups:\n  - name: dashboard\n    rules:\n")
    for i, (title, e) in enumerate(exprs):
        f.write("      - record: dashboard_query_%d  # %s\n        expr: %s\n" % (i, title.replace("#", ""), json.dumps(e)))
print("dashboard: %d queries" % len(exprs))
PY
  promtool check rules "$tmp/dashboard.yml" || { rm -rf "$tmp"; fail "a dashboard query does not parse"; }
  rm -rf "$tmp"
  echo "monitoring check: ok"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

route() {
  need prometheus-alertmanager prometheus-alertmanager
  need amtool prometheus-alertmanager
  # Global, not local: the EXIT trap runs after this function returned.
  pids=()
  dir=$(mktemp -d "${TMPDIR:-/tmp}/pv-alert-route.XXXXXX")
  trap cleanup EXIT

  python3 "$root/deploy/alertmanager/alert_log.py" --port 0 --port-file "$dir/log.port" \
    >"$dir/alerts.jsonl" 2>"$dir/alert_log.err" &
  pids+=($!)
  for _ in $(seq 100); do [ -s "$dir/log.port" ] && break; sleep 0.1; done
  [ -s "$dir/log.port" ] || fail "alert_log.py did not start: $(cat "$dir/alert_log.err")"
  local log_port am_port
  log_port=$(cat "$dir/log.port")
  am_port=$(free_port)

  # The compose config, pointed at the receiver on loopback instead of the alert-log service.
  grep -q 'url: http://alert-log:9099/' "$root/deploy/alertmanager/alertmanager.yml" ||
    fail "alertmanager.yml no longer routes to http://alert-log:9099/ (update this test)"
  sed "s#http://alert-log:9099/#http://127.0.0.1:${log_port}/#" "$root/deploy/alertmanager/alertmanager.yml" \
    >"$dir/alertmanager.yml"
  prometheus-alertmanager --config.file="$dir/alertmanager.yml" --storage.path="$dir/data" \
    --web.listen-address="127.0.0.1:${am_port}" --cluster.listen-address= \
    >"$dir/alertmanager.log" 2>&1 &
  pids+=($!)
  local url="http://127.0.0.1:${am_port}"
  for _ in $(seq 100); do curl -fsS -o /dev/null "$url/-/ready" 2>/dev/null && break; sleep 0.2; done
  curl -fsS -o /dev/null "$url/-/ready" || fail "alertmanager did not start: $(tail -5 "$dir/alertmanager.log")"

  # A critical alert as Prometheus would send it (critical route: group_wait 10s).
  amtool --alertmanager.url="$url" alert add PvRedisDown severity=critical job=redis \
    instance=redis-exporter:9121 redis=marks --annotation=summary="Redis marks does not answer"
  for _ in $(seq 300); do grep -q '"PvRedisDown"' "$dir/alerts.jsonl" && break; sleep 0.1; done
  grep -q '"alertname": "PvRedisDown"' "$dir/alerts.jsonl" ||
    fail "the alert did not reach the log receiver within 30 s: $(tail -5 "$dir/alertmanager.log")"
  grep -q '"status": "firing"' "$dir/alerts.jsonl" || fail "not logged as firing: $(cat "$dir/alerts.jsonl")"
  grep -q '"summary": "Redis marks does not answer"' "$dir/alerts.jsonl" || fail "summary missing"
  cat "$dir/alerts.jsonl"
  echo "alert routing: ok"
}

redis_metrics() {
  need prometheus-redis-exporter prometheus-redis-exporter
  need redis-server redis-server
  pids=()
  dir=$(mktemp -d "${TMPDIR:-/tmp}/pv-redis-metrics.XXXXXX")
  trap cleanup EXIT
  local redis_port exporter_port
  redis_port=$(free_port)
  exporter_port=$(free_port)
  # As compose's suppression instance: append-only file, noeviction, a cap.
  redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$dir" --appendonly yes \
    --maxmemory 64mb --maxmemory-policy noeviction >"$dir/redis.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  prometheus-redis-exporter --redis.addr="redis://127.0.0.1:${redis_port}" \
    --web.listen-address="127.0.0.1:${exporter_port}" >"$dir/exporter.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 50); do curl -fsS -o "$dir/metrics" "http://127.0.0.1:${exporter_port}/metrics" 2>/dev/null && break; sleep 0.2; done
  grep -q '^redis_up 1' "$dir/metrics" || fail "redis_exporter does not see Redis: $(tail -3 "$dir/exporter.log")"
  grep -q 'maxmemory_policy="noeviction"' "$dir/metrics" || fail "redis_instance_info has no maxmemory_policy label"
  local used
  used=$(cat "$root"/deploy/prometheus/alerts*.yml "$root/deploy/grafana/dashboards/pv.json" | grep -v "^ *#" |
    grep -o '\bredis_[a-z0-9_]*' | sort -u)
  [ -n "$used" ] || fail "no redis_* metric queried: expected the Redis alerts"
  for m in $used; do
    grep -q "^${m}[{ ]" "$dir/metrics" || fail "$m is queried but redis_exporter does not export it"
    echo "exported: $m"
  done
  echo "redis metrics: ok"
}

# Stops what route or redis_metrics started (EXIT trap).
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}

case "$mode" in
  check) check ;;
  route) route ;;
  redis) redis_metrics ;;
  *) fail "usage: $0 check|route|redis" ;;
esac
