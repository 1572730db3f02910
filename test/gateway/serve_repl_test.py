# SPDX-License-Identifier: MIT
"""`fwire serve` on fw_pool_t against the replicated test cluster (issue 15), run through
test/with-repl.sh (a primary, node 0, and two streaming standbys, nodes 1 and 2):

    serve_repl_test.py FWIRE_BINARY

- routing: with `--dsn` listing the three nodes, a stream runs on a standby (pg_stat_activity
  of each node shows where); with `--read-from-primary` on the primary; /metrics lists the hosts;
- /readyz: 200 while the cluster runs; every node stopped: 503 with a reason within a bound
  (measured and printed), and a stream fails fast instead of hanging; every node started
  again: 200 within a bound, and streams are served again;
- failover (last): two clients read without pause while the primary is stopped with
  -m immediate and node 1 promoted; every read has every row or a JSON error, the reads after
  it all succeed (on node 1 or 2), and /readyz is 200.

Plain HTTP only (urllib): no websockets module needed. Each check prints ok/FAIL; exit 1 if
any failed.
"""
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

FWIRE = sys.argv[1]
E = os.environ
PSQL = os.path.join(E.get("FW_REPL_BINDIR", "/usr/lib/postgresql/15/bin"), "psql")
if not os.path.exists(PSQL):
    PSQL = "psql"
CTL = E["FW_REPL_CTL"]
DIR = E["FW_REPL_DIR"]
NODES = int(E.get("FW_REPL_NODES", "3"))
MULTI = E["FW_REPL_DSN_MULTI"] + " user=" + E["FW_REPL_USER_TRUST"] + " sslmode=disable"
# /readyz must turn within these (the probe runs every 1 s and a proof is stale after 3 s; the
# pool's breakers open after 3 failed connects per host, and a host comes back after its 5 s
# cooldown)
DOWN_BOUND = 5.0
UP_BOUND = 15.0

passed = failed = 0


def ok(cond, what, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print("ok   %s" % what, flush=True)
    else:
        failed += 1
        print("FAIL %s %s" % (what, detail), flush=True)
    return cond


def admin(n, sql):
    out = subprocess.run([PSQL, "-X", "-At", "-v", "ON_ERROR_STOP=1", "-h",
                          E["FW_REPL_N%d_SOCKDIR" % n], "-p", E["FW_REPL_N%d_PORT" % n], "-U",
                          E["FW_REPL_ADMIN"], "-d", E["FW_REPL_DBNAME"], "-c", sql],
                         capture_output=True, timeout=30)
    return out.stdout.decode().strip()


def ctl(*args):
    r = subprocess.run(["bash", CTL, args[0], DIR] + [str(a) for a in args[1:]],
                       capture_output=True, timeout=180)
    if r.returncode != 0:
        print("pgrepl.sh %s failed: %s" % (" ".join(map(str, args)), r.stderr.decode()[-800:]))
    return r.returncode == 0


class Gateway:
    def __init__(self, app, *extra):
        self.app = app
        self.proc = subprocess.Popen(
            [FWIRE, "serve", "--listen", "127.0.0.1:0", "--dsn",
             MULTI + " application_name=" + app, "--allow", "fixture,fixture_sleepy",
             "--pool-size", "4"] + list(extra),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        line = self.proc.stderr.readline().decode()
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)/", line)
        if not m:
            raise RuntimeError("gateway did not start: %r" % line)
        self.url = "http://127.0.0.1:%s" % m.group(1)
        self.log = []
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()

    def _drain(self):
        for line in self.proc.stderr:
            self.log.append(line.decode(errors="replace"))

    def get(self, path, timeout=30):
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def wait_ready(self, want, seconds):
        """Polls /readyz every 50 ms until its status is `want`; (seconds taken or None, body)."""
        t0 = time.monotonic()
        while True:
            st, body = self.get("/readyz", 5)
            if st == want:
                return time.monotonic() - t0, body
            if time.monotonic() - t0 > seconds:
                return None, body
            time.sleep(0.05)

    def stop(self, what):
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = "hung"
        self.reader.join(timeout=5)
        log = "".join(self.log)
        sanit = re.search(r"(AddressSanitizer|LeakSanitizer|runtime error:)", log)
        ok(rc == 0 and not sanit, "%s: stops cleanly on SIGTERM" % what,
           "rc=%s\n%s" % (rc, log[-3000:]))


def where_runs(app, view):
    """The nodes on which a query of `view` from application `app` is active right now (the
    three nodes asked at the same time: one psql after another can take longer than the query
    on a loaded machine)."""
    hits = [False] * NODES

    def ask(n):
        c = admin(n, "SELECT count(*) FROM pg_stat_activity WHERE application_name = '%s' "
                     "AND state = 'active' AND query LIKE '%%%s%%'" % (app, view))
        hits[n] = c not in ("", "0")

    askers = [threading.Thread(target=ask, args=(n,)) for n in range(NODES)]
    for a in askers:
        a.start()
    for a in askers:
        a.join(35)
    return [n for n in range(NODES) if hits[n]]


def stream_where(gw, app):
    """Streams v_fixture_sleepy (10 rows, ~1 s) and looks where it runs meanwhile: every node
    seen running it while the stream lasts (one node, if routing holds)."""
    res = {}

    def run():
        res["status"], res["body"] = gw.get("/stream/fixture_sleepy")

    t = threading.Thread(target=run)
    t.start()
    nodes = set()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and t.is_alive():
        nodes.update(where_runs(app, "v_fixture_sleepy"))
        time.sleep(0.05)
    t.join(30)
    rows = [l for l in res.get("body", "").splitlines() if l]
    return sorted(nodes), res.get("status"), rows


def main():
    print("# routing: reads on a standby by default, on the primary with --read-from-primary")
    want_rows = int(admin(0, "SELECT count(*) FROM v_fixture_sleepy"))
    app = "fwire_gw_repl_read_%d" % os.getpid()
    gw = Gateway(app)
    try:
        t, body = gw.wait_ready(200, 10)
        ok(t is not None, "/readyz 200 once the probe reached a server (%.2f s)" % (t or -1),
           body)
        for i in range(3):
            nodes, st, rows = stream_where(gw, app)
            ok(st == 200 and len(rows) == want_rows and len(nodes) == 1 and nodes[0] in (1, 2),
               "stream %d: every row (%d), run on standby node %s" % (i + 1, len(rows), nodes),
               repr((st, nodes, len(rows))))
        st, body = gw.get("/metrics")
        hosts = re.findall(r'fraiseql_gateway_pool_host_up\{host="([^"]+)",role="(\w+)"\} (\d)',
                           body)
        ok(len(hosts) == NODES and all(h[2] == "1" for h in hosts),
           "/metrics: fraiseql_gateway_pool_host_up for the %d hosts, all up: %s"
           % (NODES, hosts), body[-1500:])
        ok(re.search(r"^fraiseql_gateway_ready 1$", body, re.M) is not None,
           "/metrics: fraiseql_gateway_ready 1")
    finally:
        gw.stop("reading gateway")

    app_p = "fwire_gw_repl_primary_%d" % os.getpid()
    gw = Gateway(app_p, "--read-from-primary")
    try:
        gw.wait_ready(200, 10)
        for i in range(2):
            nodes, st, rows = stream_where(gw, app_p)
            ok(st == 200 and len(rows) == want_rows and nodes == [0],
               "--read-from-primary: stream %d runs on the primary, node 0" % (i + 1),
               repr((st, nodes, len(rows))))
    finally:
        gw.stop("--read-from-primary gateway")

    print("# /readyz: every node stopped, then started again")
    app_r = "fwire_gw_repl_ready_%d" % os.getpid()
    gw = Gateway(app_r)
    try:
        t, body = gw.wait_ready(200, 10)
        ok(t is not None, "/readyz 200 with the cluster up", body)
        # the standbys first: reads then fall back on the primary, so the gateway stays ready
        for n in (1, 2):
            if not ctl("stop-node", n, "fast"):
                ok(False, "stop-node %d" % n)
                return
        st, body = gw.get("/readyz")
        ok(st == 200, "both standbys stopped: still ready (reads fall back on the primary)",
           repr((st, body)))
        t_last = time.monotonic()
        if not ctl("stop-node", 0, "fast"):
            ok(False, "stop-node 0")
            return
        t_stopped = time.monotonic() - t_last
        t, body = gw.wait_ready(503, DOWN_BOUND)
        ok(t is not None, "every node stopped: /readyz 503 %.2f s after the last node stopped "
           "(bound %.0f s; %.2f s after its stop began, pg_ctl's stop took %.2f s)"
           % (t or -1, DOWN_BOUND, time.monotonic() - t_last, t_stopped), body)
        try:
            reason = json.loads(body)
        except ValueError:
            reason = {}
        ok(reason.get("code") == "unavailable" and reason.get("message"),
           "503 body names why: %s" % reason.get("message"), body)
        t0 = time.monotonic()
        st, body = gw.get("/stream/fixture", 30)
        took = time.monotonic() - t0
        ok(st == 502 and '"FW_EROUTE"' in body and took < 11,
           "a stream while every node is down fails in %.2f s with %s FW_EROUTE" % (took, st),
           body[:300])
        st, _ = gw.get("/healthz")
        ok(st == 200, "/healthz stays 200 (alive) meanwhile")
        t_start = time.monotonic()
        for n in (0, 1, 2):
            if not ctl("start-node", n):
                ok(False, "start-node %d" % n)
                return
        t_started = time.monotonic() - t_start
        t, body = gw.wait_ready(200, UP_BOUND)
        ok(t is not None, "every node started again: /readyz 200 %.2f s after the last start "
           "(bound %.0f s; the three starts took %.2f s)" % (t or -1, UP_BOUND, t_started), body)
        st, body = gw.get("/stream/fixture")
        rows = [l for l in body.splitlines() if l]
        ok(st == 200 and len(rows) == int(admin(0, "SELECT count(*) FROM v_fixture")),
           "streams served again (%d rows)" % len(rows), repr((st, body[:200])))
    finally:
        gw.stop("readiness gateway")

    failover()


def failover():
    """Last (the cluster keeps its new primary): reads keep coming while the primary is stopped
    (-m immediate) and node 1 promoted; every read either has every row or fails with a JSON
    error; reads after the failover succeed, and /readyz is 200 again."""
    print("# failover while the gateway serves reads")
    if not ctl("wait-streaming"):
        ok(False, "wait-streaming before the failover")
        return
    want = int(admin(0, "SELECT count(*) FROM v_fixture"))
    app_f = "fwire_gw_repl_failover_%d" % os.getpid()
    gw = Gateway(app_f)
    try:
        t, body = gw.wait_ready(200, 10)
        ok(t is not None, "failover gateway ready", body)
        results = []  # (start, end, status, rows, body)
        stop = threading.Event()

        def reader():
            while not stop.is_set():
                t0 = time.monotonic()
                try:
                    st, body = gw.get("/stream/fixture", 30)
                except Exception as e:  # a reset connection, say: recorded as a failure
                    st, body = None, repr(e)
                rows = [l for l in body.splitlines() if l] if st == 200 else []
                results.append((t0, time.monotonic(), st, len(rows), body[:200]))
                time.sleep(0.02)

        readers = [threading.Thread(target=reader) for _ in range(2)]
        for r in readers:
            r.start()
        time.sleep(1.0)
        t_fail = time.monotonic()
        stopped = ctl("stop-node", 0, "immediate")
        promoted = stopped and ctl("promote", 1)
        t_done = time.monotonic()
        ok(stopped and promoted, "primary stopped (-m immediate) and node 1 promoted in %.2f s"
           % (t_done - t_fail))
        t, body = gw.wait_ready(200, UP_BOUND)
        ok(t is not None, "/readyz 200 %.2f s after the promotion (bound %.0f s)"
           % (t if t is not None else -1, UP_BOUND), body)
        time.sleep(2.0)  # reads go on after the failover
        stop.set()
        for r in readers:
            r.join(60)
        during = [x for x in results if x[1] >= t_fail and x[0] <= t_done]
        after = [x for x in results if x[0] > t_done]
        bad = [x for x in results if not (
            (x[2] == 200 and x[3] == want) or
            (x[2] is not None and x[2] >= 500 and '"code"' in x[4]))]
        failed_reads = [x for x in results if x[2] != 200]
        ok(not bad, "%d reads in all, %d during the failover, %d failed (each with a JSON "
           "error): every read has all %d rows or a clear error" % (
               len(results), len(during), len(failed_reads), want), repr(bad[:3]))
        ok(len(after) >= 5 and all(x[2] == 200 and x[3] == want for x in after),
           "%d reads after the failover: all 200 with every row" % len(after),
           repr([x for x in after if x[2] != 200][:3]))
        nodes, st, rows = stream_where(gw, app_f)
        ok(st == 200 and len(nodes) == 1 and nodes[0] in (1, 2),
           "a read after the failover runs on node %s (the new primary or the standby)" % nodes,
           repr((st, nodes, len(rows))))
    finally:
        gw.stop("failover gateway")


if __name__ == "__main__":
    try:
        main()
    except Exception:
        import traceback
        traceback.print_exc()
        failed += 1
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)
