#!/usr/bin/env python3
"""bench/redis/commands.py: Redis CPU per status event and per claim, by the shape of the commands.

  bench/redis/commands.py [--events N] [--runs R] [--batch B]

Starts a throwaway redis-server on a free loopback port. Status events: R times (3) each, writes N
(100,000) status events (two per trigger, as a delivered trigger through the log provider makes: `queued` naming the
project and campaign, then `sent`) in pipelined batches of B (500, the feeder's status.batch_size), in
these shapes:
  - EVAL: the Lua script the status feeder sent until issue 13 (its text in every call, 9 commands);
  - EVALSHA: the same script, loaded once;
  - plain, every event: HSETNX entry, HLEN, HSETNX project and campaign_id when named, PEXPIRE, SET
    of the send index (from ad0b200 to ed4498d);
  - plain, dispatcher's: HSETNX entry, HLEN, then project, campaign_id and the send index only for
    the event naming the project (the dispatcher's `queued`), PEXPIRE (until 2026-12-05);
  - plain, entry names project: the dispatcher's entry carries the project and campaign, so HSETNX
    entry, HLEN, the send index for the event naming the project, PEXPIRE (until 2026-12-06);
  - plain, send's hash: each event into its send's hash (pv:status:s:<send_id>, found by the send's
    id, so no index), HSET entry, HLEN, PEXPIRE (2026-12-06 morning);
  - the same with hash-max-listpack-value 1024 (compose's status-redis; every shape before runs
    with Redis's default, 64, shorter than an entry, so each hash is a hashtable);
  - the same, a send's two events in one write (HSET of both, one HLEN, one PEXPIRE), as the
    feeder writes them when they share its batch, with 1024;
  - one event a write, with 1024, the TTL only with the dispatcher's event (the one naming the
    project): HSET, HLEN, PEXPIRE for `queued`, HSET, HLEN for `sent` (what AddStatusWrite sends
    since 2026-12-06 afternoon).
Claims: R times each, claims N sends (a worker's claim of a send whose provider has no rate limit):
  - EVALSHA: the claim script (GET, then SET PX), as every claim did until issue 13;
  - SET NX GET: what workers/runtime/src/dedupe_store.cpp sends now for such a provider.
Suppression checks: R times each, the dispatcher checks N sends of one channel against a set of
10,000 suppressed members (about one send in a hundred suppressed), in batches of B:
  - SISMEMBER x2: the user's and the address's member, a command each (until issue 13);
  - SMISMEMBER: one command per batch asking about all of them, as dispatcher/src/suppression.cpp does
    now (up to 512 sends a command).
Prints, for each, the median over the runs of redis-server's CPU time (utime + stime from /proc) per
event or claim, and its ratio to the first shape. The load generator's own CPU does not count.
"""
import argparse, hashlib, json, os, socket, subprocess, sys, tempfile, time, uuid

EVAL_SCRIPT = r"""
local key = KEYS[1]
local ttl = tonumber(ARGV[1])
local result = 'applied'
if redis.call('HEXISTS', key, ARGV[5]) == 1 then
  result = 'duplicate'
else
  local meta = redis.call('HEXISTS', key, 'project') + redis.call('HEXISTS', key, 'campaign_id')
  if redis.call('HLEN', key) - meta >= tonumber(ARGV[2]) then
    result = 'over_limit'
  else
    redis.call('HSET', key, ARGV[5], ARGV[6])
  end
end
if ARGV[3] ~= '' then redis.call('HSETNX', key, 'project', ARGV[3]) end
if ARGV[4] ~= '' then redis.call('HSETNX', key, 'campaign_id', ARGV[4]) end
if redis.call('EXISTS', key) == 1 then redis.call('PEXPIRE', key, ttl) end
redis.call('SET', KEYS[2], ARGV[7], 'PX', ttl)
return result
"""
CLAIM_SCRIPT = r"""
local existing = redis.call('GET', KEYS[1])
if existing then return {0, existing} end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {1, ''}
"""
TTL_MS = 7 * 24 * 3600 * 1000


def command(*args):
    out = [b'*%d\r\n' % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b'$%d\r\n%s\r\n' % (len(b), b))
    return b''.join(out)


def cpu_seconds(pid):
    fields = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


class Connection:
    def __init__(self, port):
        self.sock = socket.create_connection(('127.0.0.1', port))
        self.buf = b''

    def _reply_end(self, i):
        """End of the reply starting at i, or -1 when incomplete. Replies here: status, error,
        integer, bulk string, and arrays of those."""
        j = self.buf.find(b'\r\n', i)
        if j < 0:
            return -1
        if self.buf[i:i + 1] == b'*':
            end = j + 2
            for _ in range(max(0, int(self.buf[i + 1:j]))):
                end = self._reply_end(end) if end < len(self.buf) else -1
                if end < 0:
                    return -1
            return end
        if self.buf[i:i + 1] == b'$':
            n = int(self.buf[i + 1:j])
            if n < 0:
                return j + 2
            return j + 2 + n + 2 if len(self.buf) >= j + 2 + n + 2 else -1
        return j + 2

    def run(self, commands, replies):
        """Sends the commands in one write and reads `replies` replies; fails on an error reply."""
        self.sock.sendall(b''.join(commands))
        out, i = [], 0
        while len(out) < replies:
            end = self._reply_end(i) if i < len(self.buf) else -1
            if end < 0:
                chunk = self.sock.recv(1 << 20)
                if not chunk:
                    sys.exit('bench/redis/commands.py: redis-server closed the connection')
                self.buf += chunk
                continue
            reply = self.buf[i:end]
            if reply.startswith(b'-'):
                sys.exit(f'bench/redis/commands.py: redis error {reply!r}')
            out.append(reply)
            i = end
        self.buf = self.buf[i:]
        return out


def events(n, project_in_entry=False, trigger_in_entry=False):
    for _ in range(n // 2):
        trigger, send = str(uuid.uuid4()), str(uuid.uuid4())
        for status, project, campaign in (('queued', 'demo', 'c44'), ('sent', '', 'c44')):
            fields = {'send_id': send, 'channel': 'email', 'status': status, 'at': '2026-12-03T08:00:00.000Z'}
            if project and trigger_in_entry:
                fields.update(trigger_id=trigger)
            if project and project_in_entry:
                fields.update(project=project, campaign_id=campaign)
            entry = json.dumps(dict(fields, provider='log'))
            field = 'e:' + hashlib.sha256(entry.encode()).hexdigest()[:16]
            yield trigger, send, project, campaign, field, entry


def eval_write(script, e):
    trigger, send, project, campaign, field, entry = e
    return [command(*script, 2, f'pv:status:{trigger}', f'pv:status:send:{send}', TTL_MS, 100,
                    project, campaign, field, entry, trigger)]


def plain_write(e, every_event, meta_fields=True):
    """The plain commands of one event: with `every_event`, campaign_id and the send index are written
    by every event (before ed4498d); else only by the one naming the project (the dispatcher's).
    Without `meta_fields`, project and campaign_id are in that event's entry (since 2026-12-05), not fields."""
    trigger, send, project, campaign, field, entry = e
    key = f'pv:status:{trigger}'
    out = [command('HSETNX', key, field, entry), command('HLEN', key)]
    opening = bool(project) or every_event
    if project and meta_fields:
        out.append(command('HSETNX', key, 'project', project))
    if campaign and opening and meta_fields:
        out.append(command('HSETNX', key, 'campaign_id', campaign))
    if opening:
        out.append(command('SET', f'pv:status:send:{send}', trigger, 'PX', TTL_MS))
    out.append(command('PEXPIRE', key, TTL_MS))
    return out


def send_hash_write(e):
    """The commands of one event written into its send's hash: no index to write."""
    trigger, send, project, campaign, field, entry = e
    key = f'pv:status:s:{send}'
    return [command('HSET', key, field, entry), command('HLEN', key), command('PEXPIRE', key, TTL_MS)]


def send_pair_write(a, b):
    """A send's two events in one write: the feeder's when both are in its batch."""
    key = f'pv:status:s:{a[1]}'
    return [command('HSET', key, a[4], a[5], b[4], b[5]), command('HLEN', key),
            command('PEXPIRE', key, TTL_MS)]


def send_hash_dispatcher_ttl_write(e):
    """One event into its send's hash, the TTL only with the dispatcher's event (now)."""
    trigger, send, project, campaign, field, entry = e
    key = f'pv:status:s:{send}'
    out = [command('HSET', key, field, entry), command('HLEN', key)]
    if project:
        out.append(command('PEXPIRE', key, TTL_MS))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--events', type=int, default=100000)
    parser.add_argument('--runs', type=int, default=3)
    parser.add_argument('--batch', type=int, default=500)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix='pv-redis-commands.')
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    server = subprocess.Popen(['redis-server', '--bind', '127.0.0.1', '--port', str(port), '--dir', work,
                               '--save', '', '--appendonly', 'no'], stdout=subprocess.DEVNULL)
    try:
        conn = None
        for _ in range(100):
            try:
                conn = Connection(port)
                break
            except OSError:
                time.sleep(0.1)
        if conn is None:
            sys.exit('bench/redis/commands.py: redis-server did not start')
        sha = conn.run([command('SCRIPT', 'LOAD', EVAL_SCRIPT)], 1)[0].split(b'\r\n')[1].decode()
        shapes = {
            'EVAL (before)': lambda e: eval_write(('EVAL', EVAL_SCRIPT), e),
            'EVALSHA': lambda e: eval_write(('EVALSHA', sha), e),
            'plain, every event': lambda e: plain_write(e, True),
            "plain, dispatcher's": lambda e: plain_write(e, False),
            'plain, entry names project': lambda e: plain_write(e, False, False),
            "plain, send's hash": send_hash_write,
            "send's hash, listpack": send_hash_write,
            "send's hash, listpack, pairs": None,  # by pairs of events: below
            "send's hash, listpack, TTL w/ queued": send_hash_dispatcher_ttl_write,
        }
        listpack = {n for n in shapes if 'listpack' in n}
        in_entry = {'plain, entry names project'} | {n for n in shapes if n.startswith(("plain, send", "send's"))}
        claim_sha = conn.run([command('SCRIPT', 'LOAD', CLAIM_SCRIPT)], 1)[0].split(b'\r\n')[1].decode()
        claims = {
            'claim EVALSHA (before)': lambda send: command('EVALSHA', claim_sha, 1, f'pv:send:{send}',
                                                          'inflight:w1', 60000, 1),
            'claim SET NX GET (now)': lambda send: command('SET', f'pv:send:{send}', 'inflight:w1', 'NX', 'PX',
                                                          60000, 'GET'),
        }
        key = 'pv:suppress:email'
        checks = {
            'check SISMEMBER x2 (before)': lambda batch: [command('SISMEMBER', key, m) for q in batch for m in q],
            'check SMISMEMBER (now)': lambda batch: [command('SMISMEMBER', key, *[m for q in batch[i:i + 512] for m in q])
                                                      for i in range(0, len(batch), 512)],
        }
        suppressed = [f'address:s{i}@example.com' for i in range(10000)]
        figures = {name: [] for name in list(shapes) + list(claims) + list(checks)}

        def measure(name, batches, count, setup=()):
            conn.run([command('FLUSHALL')], 1)
            conn.run([command('CONFIG', 'SET', 'hash-max-listpack-value', 1024 if name in listpack else 64)], 1)
            for i in range(0, len(setup), 1000):
                conn.run([command('SADD', key, *setup[i:i + 1000])], 1)
            before = cpu_seconds(server.pid)
            for cmds in batches:
                conn.run(cmds, len(cmds))
            figures[name].append((cpu_seconds(server.pid) - before) / count * 1e6)

        for _ in range(args.runs):
            for name, shape in shapes.items():
                send_hash = name.startswith(("plain, send", "send's"))
                evs = list(events(args.events, name in in_entry, send_hash))
                if shape is None:  # a send's two events (queued, sent) follow each other in evs
                    measure(name, [[c for j in range(i, min(i + args.batch, len(evs)), 2)
                                    for c in send_pair_write(evs[j], evs[j + 1])]
                                   for i in range(0, len(evs), args.batch)], len(evs))
                    continue
                measure(name, [[c for e in evs[i:i + args.batch] for c in shape(e)]
                               for i in range(0, len(evs), args.batch)], len(evs))
            for name, shape in claims.items():
                sends = [str(uuid.uuid4()) for _ in range(args.events)]
                measure(name, [[shape(x) for x in sends[i:i + args.batch]]
                               for i in range(0, len(sends), args.batch)], len(sends))
            for name, shape in checks.items():
                sends = [(f'user:demo:u{i}', f'address:s{i // 100}@example.com' if i % 100 == 0 else f'address:n{i}@example.com')
                         for i in range(args.events)]
                measure(name, [shape(sends[i:i + args.batch]) for i in range(0, len(sends), args.batch)],
                        len(sends), suppressed)
        median = lambda v: sorted(v)[len(v) // 2]
        for group in (list(shapes), list(claims), list(checks)):
            base = median(figures[group[0]])
            for name in group:
                v = figures[name]
                print(f'{name:37s} {median(v):6.2f} µs of redis-server CPU each (median of '
                      f'{len(v)}: {", ".join(f"{x:.2f}" for x in v)}), ratio {median(v) / base:.2f}')
    finally:
        server.terminate()
        server.wait()
        subprocess.run(['rm', '-rf', work])


if __name__ == '__main__':
    main()
