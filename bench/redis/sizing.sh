#!/usr/bin/env bash
# Bytes of Redis memory per sent mark, per suppression member and per send's statuses, for sizing
# REDIS_MAXMEMORY, SUPPRESSION_REDIS_MAXMEMORY and STATUS_REDIS_MAXMEMORY (docs/operations.md
# "Redis"). Starts a throwaway redis-server on a free loopback port, writes N keys shaped like the
# workers', pvctl's and the status feeder's, prints used_memory per key. A send's statuses (its
# queued and sent entries) are measured twice: with Redis's default hash-max-listpack-value (64
# bytes, shorter than an entry: a hashtable) and with compose's 1024 (a listpack).
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
# A send's statuses: HSET pv:status:s:<send id> with the dispatcher's queued entry and the worker's
# sent one (as the log provider's, common/src/status_store.cpp's StatusFromEvent), PEXPIRE 7 days.
statuses() {
  python3 -c "
import hashlib, json, sys, uuid
def bulk(*args):
    out = ['*%d\r\n' % len(args)]
    for a in args:
        out.append('\$%d\r\n%s\r\n' % (len(a.encode()), a))
    return ''.join(out)
w = sys.stdout.write
for _ in range($n):
    send, trigger = str(uuid.uuid4()), str(uuid.uuid4())
    at = '2026-12-06T09:36:09.813Z'
    queued = json.dumps(dict(send_id=send, channel='email', status='queued', at=at, trigger_id=trigger,
                             project='demo', campaign_id='44', provider='log'), separators=(',', ':'))
    sent = json.dumps(dict(send_id=send, channel='email', status='sent', at=at, provider='log',
                           provider_message_id='log-' + send, attempt=1), separators=(',', ':'))
    field = lambda e: 'e:' + hashlib.sha256(e.encode()).hexdigest()[:16]
    key = 'pv:status:s:' + send
    w(bulk('HSET', key, field(queued), queued, field(sent), sent))
    w(bulk('PEXPIRE', key, '604800000'))
" | redis-cli -p "$port" --pipe >/dev/null
}
redis-cli -p "$port" config set hash-max-listpack-value 64 >/dev/null
statuses
hashtable=$(used)
redis-cli -p "$port" config set hash-max-listpack-value 1024 >/dev/null
statuses
listpack=$(used)
echo "redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'), $n keys each"
echo "sent mark:          $(( (marks - before) / n )) bytes"
echo "suppression member: $(( (after - marks) / n )) bytes"
echo "a send's statuses:  $(( (hashtable - after) / n )) bytes (hash-max-listpack-value 64, Redis's default)"
echo "                    $(( (listpack - hashtable) / n )) bytes (hash-max-listpack-value 1024, compose's)"
