#!/usr/bin/env bash
# Bytes of Redis memory per sent mark and per suppression member, for sizing REDIS_MAXMEMORY and
# SUPPRESSION_REDIS_MAXMEMORY (docs/operations.md "Redis"). Starts a throwaway redis-server on a free
# loopback port, writes N keys shaped like the workers' and pvctl's, prints used_memory per key.
#   bench/redis/sizing.sh [N]      (default 100000)
set -euo pipefail
n=${1:-100000}
dir=$(mktemp -d "${TMPDIR:-/tmp}/pv-redis-sizing.XXXXXX")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --save '' --appendonly no >"$dir/log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
used() { redis-cli -p "$port" info memory | tr -d '\r' | sed -n 's/^used_memory://p'; }

before=$(used)
# A sent mark: SET pv:send:<send id, a UUID> sent:<provider message id> PX <7 days> (dedupe_store.cpp).
python3 -c "
import uuid
for _ in range($n):
    print('SET pv:send:%s sent:SM%s PX 604800000' % (uuid.uuid4(), uuid.uuid4().hex))
" | redis-cli -p "$port" --pipe >/dev/null
marks=$(used)
# A suppression member: SADD pv:suppress:email address:<a 25-character address> (suppression.hpp).
python3 -c "
import uuid
for _ in range($n):
    print('SADD pv:suppress:email address:%s@example.com' % uuid.uuid4().hex[:13])
" | redis-cli -p "$port" --pipe >/dev/null
after=$(used)
echo "redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'), $n keys each"
echo "sent mark:          $(( (marks - before) / n )) bytes"
echo "suppression member: $(( (after - marks) / n )) bytes"
