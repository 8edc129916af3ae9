"""What bench/latency and bench/e2e share: the dev stack `scripts/dev up` started in a state directory,
its outbox (what the log provider accepted), triggers posted one at a time or by wrk, the CPU time of
each process of the stack, and the stalls a shared machine causes.

Times: a trigger id is a UUIDv7 taken when ingest accepted the request (its first 48 bits are Unix ms);
the outbox line's "at" is when the log provider accepted the send. Both have millisecond resolution.
"""
import datetime
import glob
import http.client
import json
import os
import re
import resource
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid


def at_ms(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp() * 1000


def uuid_ms(trigger_id):
    return int(uuid.UUID(trigger_id).hex[:12], 16)


def percentile(sorted_values, q):
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


class Stalls:
    """Shared machines stall now and then (every process stops for up to seconds). A thread that sleeps
    5 ms at a time notes every sleep that took over 250 ms, so an outlier can be told from a slow
    pipeline."""

    def __init__(self):
        self.seen = []
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self):
        last = time.monotonic()
        while True:
            time.sleep(0.005)
            now = time.monotonic()
            if now - last > 0.25:
                self.seen.append((time.time(), (now - last) * 1000))
            last = now

    def since(self, t):
        return [ms for at, ms in self.seen if at >= t]

    def note(self, t):
        s = self.since(t)
        return f"   STALLS {len(s)}x (longest {max(s):.0f} ms)" if s else ""


class Stack:
    def __init__(self, work, build):
        self.work = work
        self.env = dict(line.strip().split("=", 1) for line in open(f"{work}/env") if "=" in line)
        self.url = urllib.parse.urlparse(self.env["INGEST_URL"])
        self.key = self.env["DEV_API_KEY"]
        self.pvctl = f"{build}/tools/pvctl/pvctl"
        self.pids = {os.path.basename(f)[:-4]: open(f).read().strip()
                     for f in sorted(glob.glob(f"{work}/run/*.pid"))}
        self.delivered = {}  # trigger_id -> (delivery ms, external_id)
        path = f"{self.env['OUTBOX_DIR']}/email.jsonl"
        open(path, "a").close()
        self._outbox = open(path)
        self._partial = ""
        self._conn = None

    def read_outbox(self):
        while True:
            chunk = self._outbox.readline()
            if not chunk:
                return
            self._partial += chunk
            if not self._partial.endswith("\n"):
                return
            rec = json.loads(self._partial)
            self._partial = ""
            self.delivered[rec["trigger_id"]] = (at_ms(rec["at"]), (rec.get("to") or {}).get("external_id", ""))

    def post(self, external_id):
        body = json.dumps({"user": {"external_id": external_id, "email": "test@test.com", "locale": "en"},
                           "event": {"random_field": "value"}})
        headers = {"Authorization": "Bearer " + self.key, "Content-Type": "application/json"}
        for _ in range(2):
            try:
                if self._conn is None:
                    self._conn = http.client.HTTPConnection(self.url.hostname, self.url.port, timeout=10)
                self._conn.request("POST", "/api/client/campaigns/44/trigger", body, headers)
                r = self._conn.getresponse()
                r.read()
                if r.status != 204:
                    sys.exit(f"trigger answered {r.status}")
                return r.getheader("X-Trigger-Id")
            except (ConnectionError, http.client.HTTPException, OSError):
                self._conn = None  # the server closed an idle keep-alive connection: reconnect once
        sys.exit("ingest unreachable")

    def wait_delivered(self, trigger_ids, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.read_outbox()
            if all(t in self.delivered for t in trigger_ids):
                return True
            time.sleep(0.001)
        return False

    def warm_up(self):
        """Three triggers in a row delivered within a second each (groups joined, producers connected)."""
        deadline, good, i = time.time() + 90, 0, 0
        while good < 3:
            if time.time() > deadline:
                sys.exit("the stack did not deliver warm-up triggers within 90 s (see the logs in the state directory)")
            tid = self.post(f"warmup-{i}")
            i += 1
            good = good + 1 if self.wait_delivered([tid], 1.0) else 0
            time.sleep(0.2)

    def _redis_info(self, name, section):
        """INFO `section` of the stack's Redis `name` (its port in ports/), or None where redis-cli
        cannot ask."""
        try:
            port = open(f"{self.work}/ports/{name}").read().strip()
            return subprocess.run(["redis-cli", "-p", port, "INFO", section], capture_output=True, text=True,
                                  timeout=5).stdout
        except (OSError, subprocess.TimeoutExpired):
            return None

    def aof_rewrites(self):
        """How many append-only-file rewrites each Redis of the stack has started (INFO persistence's
        aof_rewrites; left out where it cannot be read). A rewrite forks a child that serializes the
        whole dataset, a core busy for a second or more on this machine: a run's p99 can be that
        second."""
        counts = {}
        for name in ("redis", "status-redis"):
            m = re.search(r"^aof_rewrites:(\d+)", self._redis_info(name, "persistence") or "", re.M)
            if m:
                counts[name] = int(m.group(1))
        return counts

    def _redis_calls(self, name, command):
        """How many times the stack's Redis `name` has run `command` (INFO commandstats; None where
        it cannot be read). INFO itself is not counted there, so polling it does not move it."""
        out = self._redis_info(name, "commandstats")
        if out is None:
            return None
        m = re.search(rf"^cmdstat_{command}:calls=(\d+)", out, re.M)
        return int(m.group(1)) if m else 0

    def wait_statuses_written(self, quiet=0.3, timeout=30):
        """Waits until the status feeder has written what it read: status-redis has run no HSET for
        `quiet` seconds (longer than the feeder's batches gather). Returns the seconds from the call
        to its last HSET, or None without a status-redis. A run's CPU figures are read after it, so that a feeder that fell behind
        during a phase is charged to that phase, not to the next."""
        start = time.time()
        last = self._redis_calls("status-redis", "hset")
        if last is None:
            return None
        still_since = start
        while time.time() - start < timeout:
            time.sleep(0.05)
            now = self._redis_calls("status-redis", "hset")
            if now != last:
                last, still_since = now, time.time()
            elif time.time() - still_since >= quiet:
                return still_since - start
        return time.time() - start

    @staticmethod
    def _tasks(pid):
        """(name, CPU ns, blocks) of each thread of `pid`: /proc/<pid>/task/*/{comm,schedstat,status}.
        A thread gone while it is read is left out."""
        for task in glob.glob(f"/proc/{pid}/task/*"):
            try:
                comm = open(f"{task}/comm").read().strip()
                ns = int(open(f"{task}/schedstat").read().split()[0])
                blocks = 0
                for line in open(f"{task}/status"):
                    if line.startswith("voluntary_ctxt_switches:"):
                        blocks = int(line.split()[1])
            except (OSError, ValueError):
                continue
            yield comm, ns, blocks

    def cpu_ns(self, thread_prefix=""):
        """CPU time of each process of the stack, from /proc/<pid>/task/*/schedstat (ns): all its threads,
        or those whose name starts with `thread_prefix` ("rdk:": librdkafka's own threads)."""
        out = {name: sum(ns for comm, ns, _ in self._tasks(pid) if comm.startswith(thread_prefix))
               for name, pid in self.pids.items()}
        return out, time.time()

    def sleeps(self):
        """How many times each process's threads blocked (voluntary context switches, all its threads,
        from /proc/<pid>/task/*/status): each is a wait that something had to end with a wake-up, the
        hand-offs between threads and processes that this guest pays for dearly."""
        return {name: sum(blocks for _, _, blocks in self._tasks(pid)) for name, pid in self.pids.items()}

    def threads(self, names):
        """CPU time (ns) and blocks (voluntary context switches) of each of the named processes'
        threads, summed by thread name: {(process, name): [ns, blocks, threads]}. librdkafka names
        every client's threads alike (rdk:main, rdk:broker1...), so a process with five clients has
        five of each under one name."""
        out = {}
        for name in names:
            pid = self.pids.get(name)
            for comm, ns, blocks in self._tasks(pid) if pid else []:
                row = out.setdefault((name, comm), [0, 0, 0])
                row[0] += ns
                row[1] += blocks
                row[2] += 1
        return out

    def cpu_percent_since(self, before, digits=2):
        (b, t0), (a, t1) = before, self.cpu_ns()
        cpu = {n: (a[n] - b[n]) / 1e9 / (t1 - t0) * 100 for n in b}
        return ", ".join(f"{n} {v:.{digits}f}" for n, v in cpu.items() if n != "redis" or v > 0) + \
            f"; total {sum(cpu.values()):.{digits}f}"

    def wrk(self, root, total_rate, seconds, prefix, threads, connections):
        """wrk posting triggers (bench/trigger_paced.lua; total_rate 0: as fast as it goes). Returns
        (requests, accepted, problems or "", wrk's own CPU seconds)."""
        envw = dict(os.environ, PV_BENCH_KEY=self.key, PV_BENCH_RATE=str(total_rate / threads),
                    PV_BENCH_PREFIX=prefix)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        out = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:.0f}s", "--timeout", "10s",
                              "-s", f"{root}/bench/trigger_paced.lua", self.env["INGEST_URL"]],
                             env=envw, capture_output=True, text=True).stdout
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        m = re.search(r"(\d+) requests in", out)
        if not m:
            sys.exit("wrk failed:\n" + out)
        requests = int(m.group(1))
        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        errors = re.search(r"Socket errors: (.*)", out)
        problems = ""
        if bad or errors:
            problems = f"{bad.group(1) if bad else 0} not 204, socket errors: {errors.group(1) if errors else 0}"
        wrk_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return requests, requests - (int(bad.group(1)) if bad else 0), problems, wrk_cpu

    def wait_prefix(self, prefix, count, timeout):
        """Trigger ids delivered for external ids `<prefix>-*`, once `count` are (or the timeout)."""
        deadline = time.time() + timeout
        while True:
            self.read_outbox()
            mine = [t for t, (_, ext) in self.delivered.items() if ext.startswith(prefix + "-")]
            if len(mine) >= count or time.time() >= deadline:
                return mine
            time.sleep(0.05)
