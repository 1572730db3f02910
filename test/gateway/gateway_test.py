# SPDX-License-Identifier: MIT
"""Integration tests of `fwire serve` against the test cluster (run through test/with-pg.sh).

    gateway_test.py FWIRE_BINARY GROUP

GROUP is one of: protocol, bad_input, cancel, concurrency, backpressure, auth, shutdown, drain,
robustness, abuse (issue 20: floods, idle connections, pool fairness), strict (issue 20: HTTP and
frame parsing), tls (issue 20: the gateway's own TLS). A third argument `wss` runs the group with
every gateway on TLS (a CA generated with the openssl command) and every client on https/wss.
Each group starts its own gateway(s) on a free port, talks WebSocket (Debian's python3-websockets)
and plain HTTP to it, and checks the answers against psql, the oracle: row counts and checksums
(the sum of the first 60 bits of each row's md5, order-independent), and for small views the
exact text of every row in order. Every gateway is stopped with SIGTERM at the end and must exit
0 within its grace period with nothing from the sanitizers on stderr (ASan+UBSan builds).
"""
import asyncio
import hashlib
import json
import os
import re
import signal
import socket
import ssl
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request

import websockets

FWIRE = sys.argv[1]
GROUP = sys.argv[2]
# "wss": every gateway of the group serves TLS (--tls-cert, a CA made by this test) and every
# client speaks https:// and wss://
TLS = len(sys.argv) > 3 and sys.argv[3] == "wss"
DSN = os.environ["FW_TEST_DSN_TRUST"]
ADMIN_DSN = "host=%s port=%s dbname=%s user=%s" % (
    os.environ["FW_TEST_SOCKDIR"], os.environ["FW_TEST_PORT"], os.environ["FW_TEST_DBNAME"],
    os.environ.get("FW_TEST_ADMIN", "fw_admin"))
PSQL = os.path.join(os.environ.get("FW_TEST_PGBINDIR", "/usr/lib/postgresql/15/bin"), "psql")
if not os.path.exists(PSQL):
    PSQL = "psql"
SCALE = float(os.environ.get("FW_TEST_TIME_SCALE", "1"))
ALLOW = ("fixture,fixture_json,fixture_nulls,fixture_empty,fixture_error_mid,fixture_sleepy,"
         "fixture_sleepy_wide,bench_1k,bench_100k,bench_1m,missing_view,fixture_wrong_type,"
         "fixture_big_row")
# Every gateway of this run tags its PostgreSQL connections, so the pg_stat_activity checks see
# this test's backends only (the groups run in parallel against one cluster).
APP = "fwire_gw_%s_%d" % (GROUP, os.getpid())
GW_DSN = DSN + " application_name=" + APP
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

passed = 0
failed = 0

TLS_DIR = None
CLIENT_CTX = None


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), check=True, cwd=cwd, capture_output=True,
                   env=dict(os.environ, OPENSSL_CONF=os.path.join(cwd, "openssl.cnf")))


def make_cert(d, name, cn, ext, ca="ca"):
    """An EC P-256 key and a certificate for it signed by the test CA `ca`."""
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-subj", "/CN=" + cn, "-keyout", name + ".key", "-out", name + ".csr", cwd=d)
    openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt", "-CAkey", ca + ".key",
            "-set_serial", str(int(time.time() * 1000) % 10 ** 12), "-days", "2",
            "-extfile", "openssl.cnf", "-extensions", ext, "-out", name + ".crt", cwd=d)


def tls_setup():
    """A throwaway CA, a server certificate for 127.0.0.1/localhost and a client certificate,
    in a fresh directory (made with the openssl command; removed at exit)."""
    global TLS_DIR, CLIENT_CTX
    if TLS_DIR is not None:
        return
    import atexit
    import shutil
    import ssl
    import tempfile
    d = tempfile.mkdtemp(prefix="fwire-gw-tls-")
    atexit.register(shutil.rmtree, d, True)
    with open(os.path.join(d, "openssl.cnf"), "w") as f:
        f.write("[req]\ndistinguished_name = dn\n[dn]\n"
                "[v3_ca]\nbasicConstraints = critical, CA:true\n"
                "keyUsage = critical, keyCertSign, cRLSign\n"
                "[v3_server]\nbasicConstraints = CA:false\nkeyUsage = critical, digitalSignature\n"
                "extendedKeyUsage = serverAuth\n"
                "subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1\n"
                "[v3_client]\nbasicConstraints = CA:false\nkeyUsage = critical, digitalSignature\n"
                "extendedKeyUsage = clientAuth\n")
    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-days", "2", "-subj", "/CN=fwire gateway test " + ca, "-extensions", "v3_ca",
                "-keyout", ca + ".key", "-out", ca + ".crt", cwd=d)
    make_cert(d, "server", "localhost", "v3_server")
    make_cert(d, "client", "gateway test client", "v3_client")
    make_cert(d, "client-other", "stranger", "v3_client", ca="other-ca")
    TLS_DIR = d
    CLIENT_CTX = ssl.create_default_context(cafile=os.path.join(d, "ca.crt"))


def tls_path(name):
    return os.path.join(TLS_DIR, name)


def wrap(sock):
    """The socket as this run's clients speak: TLS (verified against the test CA) or not."""
    if not TLS:
        return sock
    return CLIENT_CTX.wrap_socket(sock, server_hostname="127.0.0.1")


def connect(port, src=None, timeout=10, rcvbuf=None):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    if src is not None:
        sock.bind((src, 0))
    sock.settimeout(timeout * SCALE)
    sock.connect(("127.0.0.1", port))
    return wrap(sock)


def ws_connect(uri, **kw):
    if uri.startswith("wss:"):
        kw.setdefault("ssl", CLIENT_CTX)
        if "sock" in kw:
            kw.setdefault("server_hostname", "127.0.0.1")
    return websockets.connect(uri, **kw)


async def open_conn(port):
    if TLS:
        return await asyncio.open_connection("127.0.0.1", port, ssl=CLIENT_CTX,
                                             server_hostname="127.0.0.1")
    return await asyncio.open_connection("127.0.0.1", port)


def ok(cond, what, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print("ok   %s" % what, flush=True)
    else:
        failed += 1
        print("FAIL %s %s" % (what, detail), flush=True)
    return cond


def psql(sql, dsn=DSN):
    out = subprocess.run([PSQL, "-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-c", sql],
                         check=True, capture_output=True)
    return out.stdout.decode()


def psql_rows(sql):
    """Every value of a one-column query, exact text; SQL NULL as None (psql -At -0)."""
    out = subprocess.run([PSQL, "-X", "-At", "-0", "-v", "ON_ERROR_STOP=1", "-d", DSN, "-c", sql],
                         check=True, capture_output=True).stdout
    recs = out.split(b"\0")
    assert recs[-1] == b""
    return [None if r == b"" else r.decode() for r in recs[:-1]]


def oracle(view, where="true"):
    """(count, checksum) of a view as PostgreSQL sees it."""
    line = psql("SELECT count(*), coalesce(sum(('x' || substr(md5(data::text), 1, 15))::bit(60)"
                "::bigint), 0) FROM %s WHERE %s" % (view, where)).strip()
    c, s = line.split("|")
    return int(c), int(s)


def row_sum(rows):
    return sum(int(hashlib.md5(r.encode()).hexdigest()[:15], 16) for r in rows if r is not None)


def raw_rows(text):
    """The rows of a query_batch message as the exact text the gateway wrote (verbatim from
    PostgreSQL; SQL NULL is the JSON null)."""
    start = text.index('"rows":[') + len('"rows":[')
    dec = json.JSONDecoder()
    rows = []
    i = start
    n = len(text)
    if text[i] == "]":
        return rows
    while True:
        j = i
        while text[j] in " \t\r\n":
            j += 1
        _, end = dec.raw_decode(text, j)
        k = end
        while text[k] in " \t\r\n":
            k += 1
        rows.append(text[i:k])
        if text[k] == "]":
            break
        assert text[k] == ",", text[k:k + 20]
        i = k + 1
        assert i < n
    return rows


class Gateway:
    """One `fwire serve` process on a free loopback port."""

    def __init__(self, *extra, allow=ALLOW):
        env = dict(os.environ)
        # ASan's quarantine keeps freed memory for reuse checks; a small one keeps RSS honest
        env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=8").lstrip(":")
        tls = []
        if TLS:
            tls_setup()
            tls = ["--tls-cert", tls_path("server.crt"), "--tls-key", tls_path("server.key")]
        self.args = [FWIRE, "serve", "--listen", "127.0.0.1:0", "--dsn", GW_DSN, "--allow", allow,
                     "-v"] + tls + list(extra)
        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env=env)
        line = self.proc.stderr.readline().decode()
        m = re.search(r"listening on (https?)://127\.0\.0\.1:(\d+)/", line)
        if not m or (m.group(1) == "https") != TLS:
            raise RuntimeError("gateway did not start: %r" % line)
        self.port = int(m.group(2))
        self.url = "%s://127.0.0.1:%d" % ("https" if TLS else "http", self.port)
        self.ws = "%s://127.0.0.1:%d/ws" % ("wss" if TLS else "ws", self.port)
        self.errlog = []
        # drain stderr in the background so the gateway never blocks on a full pipe
        import threading
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()

    def _drain(self):
        for line in self.proc.stderr:
            self.errlog.append(line.decode(errors="replace"))

    def rss_kb(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def get(self, path, headers=None):
        req = urllib.request.Request(self.url + path, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=30 * SCALE, context=CLIENT_CTX) as r:
                return r.status, r.read().decode(), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(), dict(e.headers)

    def metrics(self, headers=None):
        status, body, _ = self.get("/metrics", headers)
        vals = {}
        for line in body.splitlines():
            if line.startswith("#") or not line:
                continue
            name, _, v = line.rpartition(" ")
            vals[name] = float(v)
        return status, body, vals

    def stop(self, what="gateway"):
        """SIGTERM; must exit 0 within the grace period, sanitizers silent."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=15 * SCALE)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = "hung"
        self.reader.join(timeout=5)
        log = "".join(self.errlog)
        sanit = re.search(r"(AddressSanitizer|LeakSanitizer|runtime error:|UndefinedBehavior)", log)
        ok(rc == 0 and not sanit, "%s stops cleanly on SIGTERM" % what,
           "rc=%s\n%s" % (rc, log[-4000:]))
        # the cancel watchdog is a last resort: no test here should ever need it
        ok("cancel not confirmed" not in log, "%s: every cancel confirmed by fwire" % what,
           "\n".join(l for l in log.splitlines() if "cancel not confirmed" in l)[:2000])


def raw_ws(port, rcvbuf=None, host=None, path="/ws"):
    """A WebSocket by hand on a blocking socket (handshake done, 101 checked): for clients that
    must not read, or must not answer pings, which the websockets module would do for them."""
    sock = connect(port, rcvbuf=rcvbuf)
    sock.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n"
                  % (path, host or "127.0.0.1:%d" % port)).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        if not chunk:
            break
        head += chunk
    return sock, head


def ws_frame(text, opcode=0x1):
    """One masked client frame."""
    data = text.encode() if isinstance(text, str) else text
    mask = b"\x11\x22\x33\x44"
    n = len(data)
    if n < 126:
        head = bytes([0x80 | opcode, 0x80 | n])
    elif n < 65536:
        head = bytes([0x80 | opcode, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + n.to_bytes(8, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def raw_http(port, request):
    """Sends a raw request, returns the whole response (the server closes)."""
    sock = connect(port)
    sock.sendall(request.encode() if isinstance(request, str) else request)
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except (socket.timeout, ConnectionResetError):
        pass  # what came so far is the answer (a 101 keeps the connection open)
    sock.close()
    return data


def rst_close(sock):
    """Closes with a reset, as a crashed or vanished client's kernel would."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


async def wait_metric(gw, cond, seconds):
    """Polls /metrics until cond(vals) holds; returns (held, vals, body)."""
    deadline = time.monotonic() + seconds * SCALE
    while True:
        _, body, vals = gw.metrics()
        if cond(vals):
            return True, vals, body
        if time.monotonic() >= deadline:
            return False, vals, body
        await asyncio.sleep(0.1)


def active_streams(vals):
    return sum(v for k, v in vals.items() if k.startswith("fraiseql_gateway_active_streams"))


async def recv_json(ws, timeout=30):
    msg = await asyncio.wait_for(ws.recv(), timeout * SCALE)
    return msg, json.loads(msg)


async def run_stream(ws, query, keep_raw=True, on_msg=None):
    """Sends one stream_query and reads its messages to the end. Returns a dict with the
    messages by type, the rows (raw text) and the batch numbers."""
    await ws.send(json.dumps(query))
    res = {"started": None, "batches": [], "progress": [], "end": None, "rows": [],
           "has_more": [], "times": [], "sizes": []}
    sid = None
    while True:
        text, m = await recv_json(ws, 120)
        t = m.get("type")
        if sid is not None and m.get("stream_id") not in (None, sid):
            continue  # another stream's message on the same connection
        if t == "query_started":
            res["started"] = m
            sid = m["stream_id"]
            res["t0"] = time.monotonic()
        elif t == "query_batch":
            res["batches"].append(m["batch_number"])
            res["has_more"].append(m["has_more"])
            res["sizes"].append(len(m["rows"]))
            if keep_raw:
                res["rows"].extend(raw_rows(text))
            else:
                res["rows"].extend(m["rows"])
        elif t == "query_progress":
            res["progress"].append(m)
            res["times"].append(time.monotonic())
        elif t in ("query_completed", "query_error", "query_cancelled"):
            if t == "query_error" and m.get("request_id") not in (None, query.get("request_id")):
                continue
            res["end"] = m
            return res
        if on_msg is not None:
            await on_msg(ws, m, res)


def check_complete(res, want_rows, what, exact=True):
    end = res["end"] or {}
    ok(end.get("type") == "query_completed", "%s: completes" % what, repr(end)[:300])
    ok(res["started"] is not None and UUID4.match(res["started"]["stream_id"] or ""),
       "%s: query_started with a uuid v4 stream_id" % what, repr(res["started"])[:300])
    n = len(res["batches"])
    ok(res["batches"] == list(range(1, n + 1)), "%s: batch numbers 1..%d" % (what, n))
    ok(n >= 1 and res["has_more"][-1] is False and all(res["has_more"][:-1]),
       "%s: only the last batch has has_more false" % what)
    ok(end.get("total_rows") == len(res["rows"]), "%s: total_rows %s == rows received %d"
       % (what, end.get("total_rows"), len(res["rows"])))
    if exact:
        want_rows = ["null" if w is None else w for w in want_rows]
        ok(res["rows"] == want_rows, "%s: every row exactly as psql prints it, in order" % what,
           "got %d rows, want %d; first got %r want %r" % (
               len(res["rows"]), len(want_rows), res["rows"][:1], want_rows[:1]))
    else:
        c, s = want_rows
        ok(len(res["rows"]) == c and row_sum(res["rows"]) == s,
           "%s: count and checksum equal psql's (%d rows)" % (what, c),
           "got %d rows sum %d, want %d sum %d" % (len(res["rows"]), row_sum(res["rows"]), c, s))


# ---------------------------------------------------------------------------------------------

async def group_protocol():
    gw = Gateway("--progress-ms", "200")
    try:
        async with ws_connect(gw.ws, max_size=2 ** 24) as ws:
            res = await run_stream(ws, {"type": "stream_query", "request_id": "r1",
                                        "entity": "fixture", "batch_size": 2})
            ok(res["started"]["request_id"] == "r1" and res["started"]["entity"] == "fixture",
               "fixture: request_id and entity echoed")
            ok(res["batches"] == [1, 2, 3], "fixture: 5 rows in batches of 2 -> 3 batches",
               repr(res["batches"]))
            check_complete(res, psql_rows("SELECT data FROM v_fixture"), "fixture")
            ok(isinstance(res["end"]["execution_time_ms"], (int, float)),
               "fixture: execution_time_ms is a number")

            res = await run_stream(ws, {"type": "stream_query", "entity": "fixture_json"})
            check_complete(res, psql_rows("SELECT data FROM v_fixture_json"),
                           "fixture_json (json type, raw newlines, non-ASCII)")
            res = await run_stream(ws, {"type": "stream_query", "entity": "fixture_nulls"})
            check_complete(res, psql_rows("SELECT data FROM v_fixture_nulls"),
                           "fixture_nulls (SQL NULL rows as null)")
            res = await run_stream(ws, {"type": "stream_query", "entity": "fixture_empty"})
            ok(res["end"]["type"] == "query_completed" and res["end"]["total_rows"] == 0
               and res["batches"] == [1] and res["has_more"] == [False],
               "fixture_empty: one empty batch with has_more false, then 0 rows completed",
               repr(res)[:300])

            # order_by + limit + where: compared row by row with psql's ORDER BY
            res = await run_stream(ws, {
                "type": "stream_query", "entity": "bench_1k", "batch_size": 7,
                "where": [{"path": "bucket", "op": "in", "value": [1, 2, 3]},
                          {"path": "active", "op": "eq", "value": True},
                          {"path": "name", "op": "like", "value": "item-%"}],
                "order_by": {"path": "id", "desc": True}, "limit": 50})
            want = psql_rows("SELECT data FROM v_bench_1k WHERE (data->'bucket') IN ('1','2','3')"
                             " AND (data->'active') = 'true' AND data->>'name' LIKE 'item-%'"
                             " ORDER BY (data::jsonb)#>'{id}' DESC LIMIT 50")
            check_complete(res, want, "bench_1k where in/eq/like, order_by id desc, limit 50")
            ok(res["started"]["estimated_rows"] is not None
               and 0 <= res["started"]["estimated_rows"] <= 50,
               "estimate is capped by the limit", repr(res["started"]))
            res = await run_stream(ws, {
                "type": "stream_query", "entity": "bench_1k",
                "where": [{"path": "nested.owner.id", "op": "ge", "value": 5},
                          {"path": "tags", "op": "contains", "value": "blue"},
                          {"path": "nested", "op": "has_key", "value": "owner"},
                          {"path": "missing", "op": "is_null"},
                          {"path": "status", "op": "is_not_null"},
                          {"path": "name", "op": "ilike", "value": "ITEM-1%"}],
                "order_by": {"path": "nested.owner.id"}})
            want = psql_rows("SELECT data FROM v_bench_1k WHERE (data#>'{nested,owner,id}') >= '5'"
                             " AND data->'tags' @> '\"blue\"' AND data->'nested' ? 'owner'"
                             " AND data->'missing' IS NULL AND data->>'name' ILIKE 'ITEM-1%'"
                             " ORDER BY (data::jsonb)#>'{nested,owner,id}', data->'id'")
            # ties in the order key may come in any order: compare as multisets
            ok(sorted(res["rows"]) == sorted(want) and res["end"]["total_rows"] == len(want),
               "bench_1k: ge, contains, has_key, is_null, is_not_null, ilike (%d rows)" % len(want))

            # 100k rows, default batch size: count + checksum
            res = await run_stream(ws, {"type": "stream_query", "request_id": "big",
                                        "entity": "bench_100k", "batch_size": 500})
            check_complete(res, oracle("v_bench_100k"), "bench_100k", exact=False)
            est = res["started"]["estimated_rows"]
            ok(isinstance(est, int) and 50000 <= est <= 200000,
               "bench_100k: estimated_rows from EXPLAIN is near 100000", repr(est))
            ok(max(res["sizes"]) == 500 and len(res["batches"]) >= 200,
               "bench_100k: batches of at most 500 rows (%d batches)" % len(res["batches"]))

            # progress: 10 rows, one every 100 ms (v_fixture_sleepy_wide); --progress-ms 200
            res = await run_stream(ws, {"type": "stream_query", "entity": "fixture_sleepy_wide",
                                        "batch_size": 1})
            check_complete(res, oracle("v_fixture_sleepy_wide"), "fixture_sleepy_wide",
                           exact=False)
            prog = res["progress"]
            ok(3 <= len(prog) <= 7, "progress: about one message per 200 ms over ~1 s (%d)"
               % len(prog), repr(prog))
            gaps = [b - a for a, b in zip(res["times"], res["times"][1:])]
            ok(all(0.1 <= g <= 0.6 * SCALE for g in gaps),
               "progress: intervals near 200 ms", repr(gaps))
            pcts = [p["percentage"] for p in prog]
            ok(all(p is not None and 0 <= p <= 100 for p in pcts) and pcts == sorted(pcts),
               "progress: percentage within 0..100 and not decreasing", repr(pcts))
            ok(all(p["eta_seconds"] is None or p["eta_seconds"] >= 0 for p in prog)
               and all(p["rows_per_second"] >= 0 for p in prog),
               "progress: eta and rate are sensible", repr(prog[:2]))
            if prog:
                mid = prog[len(prog) // 2]
                # 10 rows over ~1 s: the ETA is the time left at the observed rate
                ok(mid["eta_seconds"] is not None and mid["eta_seconds"] <= 2.0 * SCALE,
                   "progress: eta_seconds bounded mid-stream", repr(mid))
            rp = [p["rows_processed"] for p in prog]
            ok(rp == sorted(rp) and all(0 <= r <= 10 for r in rp), "progress: rows_processed "
               "monotonic", repr(rp))

            # a server error before any row, and one after some rows
            res = await run_stream(ws, {"type": "stream_query", "request_id": "mv",
                                        "entity": "missing_view"})
            e = res["end"]
            ok(e["type"] == "query_error" and e["code"] == "FW_ESERVER" and e["sqlstate"] == "42P01"
               and e["request_id"] == "mv" and "v_missing_view" in e["message"],
               "a missing view: query_error FW_ESERVER 42P01 with the server's message", repr(e))
            res = await run_stream(ws, {"type": "stream_query", "entity": "fixture_error_mid"})
            e = res["end"]
            ok(e["type"] == "query_error" and e["sqlstate"] not in (None, "")
               and len(res["rows"]) > 0 and e["stream_id"] == res["started"]["stream_id"],
               "an error mid-stream: rows before it, then query_error with the SQLSTATE",
               repr(e) + " rows %d" % len(res["rows"]))
            res = await run_stream(ws, {"type": "stream_query", "entity": "fixture_wrong_type"})
            ok(res["end"]["type"] == "query_error" and res["end"]["code"] == "FW_ESCHEMA",
               "a view of the wrong shape: FW_ESCHEMA", repr(res["end"]))
            res = await run_stream(ws, {"type": "stream_query", "entity": "fixture_big_row"})
            want = psql_rows("SELECT data FROM v_fixture_big_row")
            ok(res["end"]["type"] == "query_completed" and res["rows"] == want,
               "a 2 MB row over the 1 MiB --stream-budget is delivered, alone (issue 17)",
               repr(res["end"])[:300] + " rows %d" % len(res["rows"]))
            # the connection still serves after errors
            res = await run_stream(ws, {"type": "stream_query", "entity": "fixture"})
            ok(res["end"]["type"] == "query_completed", "after errors the pool still serves")

        # plain HTTP: NDJSON, healthz, static page, metrics
        st, body, hdr = gw.get("/stream/fixture?order_by=id&desc=true&limit=3")
        lines = body.splitlines()
        want = psql_rows("SELECT data FROM v_fixture ORDER BY data->'id' DESC LIMIT 3")
        ok(st == 200 and hdr.get("Content-Type") == "application/x-ndjson" and lines == want,
           "GET /stream/fixture: NDJSON rows as psql prints them", repr((st, lines[:2])))
        st, body, _ = gw.get("/stream/bench_1k?where=bucket:eq:3&where=name:like:item-1%25")
        want = psql_rows("SELECT data FROM v_bench_1k WHERE data->'bucket' = '3' "
                         "AND data->>'name' LIKE 'item-1%'")
        ok(st == 200 and sorted(body.splitlines()) == sorted(want),
           "GET /stream with where=PATH:OP:VALUE (%d rows)" % len(want))
        st, body, _ = gw.get("/stream/fixture_json")
        ok(st == 200 and [json.loads(x) for x in body.splitlines()]
           == [json.loads(x) for x in psql_rows("SELECT data FROM v_fixture_json")],
           "GET /stream of a json view: one value per line (newlines flattened)")
        st, body, _ = gw.get("/stream/bench_100k")
        lines = body.splitlines()
        c, s = oracle("v_bench_100k")
        ok(st == 200 and len(lines) == c and row_sum(lines) == s,
           "GET /stream/bench_100k: count and checksum equal psql's")
        st, body, _ = gw.get("/stream/secret_view")
        ok(st == 403 and json.loads(body)["code"] == "not_allowed", "GET /stream: allowlist")
        st, body, _ = gw.get("/stream/fixture?where=a;drop:eq:1")
        ok(st == 400 and json.loads(body)["code"] == "bad_request", "GET /stream: bad path 400")
        st, body, _ = gw.get("/stream/missing_view")
        ok(st == 502 and json.loads(body)["sqlstate"] == "42P01",
           "GET /stream of a missing view: 502 with the SQLSTATE", body)
        # an error found after the query started but before any row (the view's shape is only
        # known from the query's RowDescription) is still an HTTP status, not a 200
        st, body, _ = gw.get("/stream/fixture_wrong_type")
        ok(st == 502 and json.loads(body)["code"] == "FW_ESCHEMA",
           "GET /stream of a view of the wrong shape: 502 FW_ESCHEMA, not 200", repr((st, body)))
        st, body, hdr = gw.get("/stream/fixture_empty")
        ok(st == 200 and body == "" and hdr.get("Referrer-Policy") == "no-referrer",
           "GET /stream of an empty view: 200, no lines, Referrer-Policy no-referrer",
           repr((st, body, hdr)))
        data = raw_http(gw.port, "GET /stream/fixture_error_mid HTTP/1.1\r\nHost: 127.0.0.1:%d"
                        "\r\n\r\n" % gw.port)
        ok(data.startswith(b"HTTP/1.1 200") and b'"type":"query_error"' in data
           and not data.endswith(b"0\r\n\r\n"),
           "GET /stream with an error after rows: 200, rows, an error line, no final chunk",
           repr(data[-300:]))
        st, body, _ = gw.get("/healthz")
        ok(st == 200 and json.loads(body) == {"status": "ok"}, "/healthz")
        for path, ctype in (("/", "text/html"), ("/app.js", "text/javascript"),
                            ("/style.css", "text/css")):
            st, body, hdr = gw.get(path)
            ok(st == 200 and hdr.get("Content-Type", "").startswith(ctype) and len(body) > 0,
               "static %s served as %s" % (path, ctype))
        st, _, _ = gw.get("/nope")
        ok(st == 404, "unknown path: 404")
        st, body, vals = gw.metrics()
        ok(st == 200 and vals.get("fraiseql_gateway_streams_total{outcome=\"completed\"}", 0) >= 8,
           "/metrics counts completed streams", body[-2000:])
        ok(prometheus_ok(body), "/metrics is valid Prometheus text", body[:500])
        ok(any(k.startswith("fraiseql_") and "gateway" not in k for k in vals),
           "/metrics includes the library's fraiseql_* metrics")
    finally:
        gw.stop()


def prometheus_ok(body):
    """Every line is a comment, a HELP/TYPE line or `name{labels} value`; TYPE before samples."""
    typed = set()
    sample = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*"'
                        r'(,[a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*")*\})? -?[0-9.eE+-]+|[+-]?Inf|NaN$')
    for line in body.splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
            continue
        if line.startswith("#") or line == "":
            continue
        m = sample.match(line)
        if not m:
            print("bad metrics line: %r" % line)
            return False
        name = m.group(1)
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        if name not in typed and base not in typed:
            print("sample before its TYPE: %r" % line)
            return False
    return True


async def expect_error(ws, payload, code, what, contains=None, binary=False):
    if binary:
        await ws.send(payload)
    else:
        await ws.send(payload if isinstance(payload, str) else json.dumps(payload))
    _, m = await recv_json(ws)
    good = m.get("type") == "query_error" and m.get("code") == code
    if contains is not None:
        good = good and contains in m.get("message", "")
    ok(good, what, repr(m))
    return m


async def group_bad_input():
    gw = Gateway("--max-frame-bytes", "4096", "--max-streams-per-connection", "2")
    try:
        async with ws_connect(gw.ws) as ws:
            await expect_error(ws, "{not json", "bad_request", "invalid JSON: bad_request",
                               "invalid JSON")
            await expect_error(ws, '{"type":"stream_query","entity":"fixture",}', "bad_request",
                               "trailing comma: bad_request")
            await expect_error(ws, '[1,2]', "bad_request", "not an object: bad_request")
            await expect_error(ws, {"type": "drop_table", "request_id": "x"}, "bad_request",
                               "unknown message type: bad_request", "unknown message type")
            m = await expect_error(ws, {"type": "stream_query", "request_id": "r9",
                                        "entity": "pg_shadow"}, "not_allowed",
                                   "entity not in the allowlist: not_allowed")
            ok(m.get("request_id") == "r9", "the error echoes request_id", repr(m))
            await expect_error(ws, {"type": "stream_query", "entity": "fixture; DROP TABLE x"},
                               "not_allowed", "SQL-looking entity: not_allowed")
            await expect_error(ws, {"type": "stream_query", "entity": "fixture",
                                    "where": [{"path": "id) OR 1=1 --", "op": "eq", "value": 1}]},
                               "bad_request", "SQL-looking where path: bad_request",
                               "[A-Za-z0-9_]")
            await expect_error(ws, {"type": "stream_query", "entity": "fixture",
                                    "order_by": {"path": "id'}'; DROP TABLE fixture_rows; --"}},
                               "bad_request", "SQL-looking order_by path: bad_request")
            await expect_error(ws, {"type": "stream_query", "entity": "fixture",
                                    "where": [{"path": "id", "op": "=", "value": 1}]},
                               "bad_request", "unknown op: bad_request")
            await expect_error(ws, {"type": "stream_query", "entity": "fixture",
                                    "where": [{"path": "id", "op": "eq"}]},
                               "bad_request", "eq without a value: bad_request")
            await expect_error(ws, {"type": "stream_query", "entity": "fixture",
                                    "where": [{"path": "name", "op": "like", "value": 3}]},
                               "bad_request", "like with a number: bad_request")
            await expect_error(ws, {"type": "stream_query", "entity": "fixture", "limit": -1},
                               "bad_request", "negative limit: bad_request")
            await expect_error(ws, {"type": "stream_query", "entity": "fixture", "sql": "x"},
                               "bad_request", "unknown field: bad_request", "sql")
            await expect_error(ws, {"type": "cancel_query", "stream_id": "nope"}, "not_found",
                               "cancel of an unknown stream: not_found")
            await expect_error(ws, b"\x01\x02", "bad_request", "binary frame: bad_request",
                               binary=True)
            # a SQL-looking value is just a value: bound as a parameter, zero rows, no harm
            res = await run_stream(ws, {"type": "stream_query", "entity": "fixture", "where": [
                {"path": "name", "op": "eq", "value": "x'; DROP TABLE fixture_rows; --"}]})
            ok(res["end"]["type"] == "query_completed" and res["end"]["total_rows"] == 0
               and psql("SELECT count(*) FROM fixture_rows").strip() == "5",
               "SQL-looking value: bound as data, 0 rows, the table is intact", repr(res["end"]))
            # the per-connection stream limit (2): the third waits for nothing, refused
            await ws.send(json.dumps({"type": "stream_query", "entity": "bench_1m",
                                      "request_id": "a"}))
            await ws.send(json.dumps({"type": "stream_query", "entity": "bench_1m",
                                      "request_id": "b"}))
            await ws.send(json.dumps({"type": "stream_query", "entity": "bench_1m",
                                      "request_id": "c"}))
            ids, got_limit = [], None
            while got_limit is None or len(ids) < 2:
                _, m = await recv_json(ws)
                if m["type"] == "query_started":
                    ids.append(m["stream_id"])
                elif m["type"] == "query_error":
                    got_limit = m
            ok(got_limit["code"] == "limit" and got_limit["request_id"] == "c",
               "a third stream over --max-streams-per-connection 2: limit", repr(got_limit))
            for sid in ids:
                await ws.send(json.dumps({"type": "cancel_query", "stream_id": sid}))
            cancelled = 0
            while cancelled < 2:
                _, m = await recv_json(ws)
                cancelled += m["type"] == "query_cancelled"
            ok(True, "both streams cancelled")

        # an oversized frame closes with 1009; the server goes on
        async with ws_connect(gw.ws) as ws:
            await ws.send(json.dumps({"type": "stream_query", "entity": "fixture",
                                      "request_id": "x" * 5000}))
            try:
                await asyncio.wait_for(ws.recv(), 10)
                code = None
            except websockets.ConnectionClosed as e:
                code = e.code
            ok(code == 1009, "a frame over --max-frame-bytes: close code 1009", repr(code))
        # invalid UTF-8 in a text frame: an error, then close 1007
        r, w = await open_conn(gw.port)
        key = "dGhlIHNhbXBsZSBub25jZQ=="
        w.write(("GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                 "Sec-WebSocket-Version: 13\r\n\r\n" % (gw.port, key)).encode())
        head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 10)
        ok(b"101 Switching Protocols" in head and b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head,
           "handshake: RFC 6455's sample key gives its sample accept value", head.decode())
        payload = b"\xff\xfe"
        mask = b"\x01\x02\x03\x04"
        w.write(bytes([0x81, 0x80 | len(payload)]) + mask +
                bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
        data = await asyncio.wait_for(r.read(4096), 10)
        # wslay validates text frames itself and fails the connection with 1007 (RFC 6455 8.1)
        ok(data.startswith(b"\x88") and b"\x03\xef" in data[:4],
           "invalid UTF-8 in a text frame: close 1007", repr(data[:200]))
        w.close()
        # a plain HTTP garbage request and a slowloris header: answered, not hung
        r, w = await open_conn(gw.port)
        w.write(b"\x16\x03\x01 garbage\r\n\r\n")
        data = await asyncio.wait_for(r.read(), 10)
        ok(data.startswith(b"HTTP/1.1 400"), "garbage instead of HTTP: 400", repr(data[:80]))
        w.close()
        r, w = await open_conn(gw.port)
        w.write(b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
        data = await asyncio.wait_for(r.read(), 10)
        ok(data.startswith(b"HTTP/1.1 431") or data == b"",
           "20 KB of headers: 431", repr(data[:80]))
        w.close()
        # a client that vanishes mid-stream: its query is cancelled, the server goes on
        ws = await ws_connect(gw.ws)
        await ws.send(json.dumps({"type": "stream_query", "entity": "bench_1m"}))
        _, m = await recv_json(ws)
        ok(m["type"] == "query_started", "vanishing client: stream started")
        await recv_json(ws)
        ws.transport.abort()
        idle = await wait_backends_idle("v_bench_1m", 3.0)
        ok(idle, "vanishing client: the server query stops (no active backend within 3 s)")
        async with ws_connect(gw.ws) as ws2:
            res = await run_stream(ws2, {"type": "stream_query", "entity": "fixture"})
            ok(res["end"]["type"] == "query_completed", "after a vanished client the server "
               "still serves others")
        await asyncio.sleep(0.3)
        _, body, vals = gw.metrics()
        active = sum(v for k, v in vals.items() if k.startswith("fraiseql_gateway_active_streams"))
        ok(active == 0, "no stream left behind after the vanished client", body[-1500:])
    finally:
        gw.stop()


def active_backends(view):
    out = psql("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND pid <> "
               "pg_backend_pid() AND application_name = '%s' AND query LIKE '%%%s%%'"
               % (APP, view), dsn=ADMIN_DSN)
    return int(out.strip())


async def wait_backends_idle(view, seconds):
    deadline = time.monotonic() + seconds * SCALE
    while time.monotonic() < deadline:
        if active_backends(view) == 0:
            return True
        await asyncio.sleep(0.05)
    return False


async def group_cancel():
    gw = Gateway("--abandon-seconds", "1")
    try:
        async with ws_connect(gw.ws, max_size=2 ** 24) as ws:
            # cancel: the backend is idle within 1 s
            await ws.send(json.dumps({"type": "stream_query", "entity": "bench_1m",
                                      "request_id": "c1", "batch_size": 1000}))
            _, m = await recv_json(ws)
            sid = m["stream_id"]
            _, m = await recv_json(ws)
            ok(m["type"] == "query_batch", "cancel: rows are flowing")
            ok(active_backends("v_bench_1m") == 1, "cancel: the backend is active before")
            t0 = time.monotonic()
            await ws.send(json.dumps({"type": "cancel_query", "stream_id": sid}))
            while True:
                _, m = await recv_json(ws)
                if m["type"] != "query_batch" and m["type"] != "query_progress":
                    break
            ok(m == {"type": "query_cancelled", "stream_id": sid}, "cancel: query_cancelled",
               repr(m))
            idle = await wait_backends_idle("v_bench_1m", 1.0)
            ok(idle, "cancel: pg_stat_activity shows the backend idle within 1 s (%.2f s)"
               % (time.monotonic() - t0))
            await expect_error(ws, {"type": "pause_query", "stream_id": sid}, "not_found",
                               "a cancelled stream is gone from the registry")

            # pause / resume: no batch while paused, then every row
            got_pause = {}

            async def pauser(ws_, m, res):
                if m["type"] == "query_batch" and m["batch_number"] == 2 and not got_pause:
                    got_pause["sent"] = True
                    await ws_.send(json.dumps({"type": "pause_query",
                                               "stream_id": m["stream_id"]}))
                elif m["type"] == "query_paused":
                    got_pause["ack"] = time.monotonic()
                    got_pause["n"] = len(res["batches"])
                    # anything still arriving was in flight before the pause: take it
                    quiet_start = None
                    while True:
                        try:
                            _, m2 = await recv_json(ws_, 0.6)
                        except asyncio.TimeoutError:
                            break
                        if m2["type"] == "query_batch":
                            res["batches"].append(m2["batch_number"])
                            res["has_more"].append(m2["has_more"])
                            res["rows"].extend(m2["rows"])
                        quiet_start = time.monotonic()
                    got_pause["quiet"] = True
                    got_pause["late"] = quiet_start
                    await ws_.send(json.dumps({"type": "resume_query",
                                               "stream_id": m["stream_id"]}))
                elif m["type"] == "query_resumed":
                    got_pause["resumed"] = True

            res = await run_stream(ws, {"type": "stream_query", "entity": "bench_100k",
                                        "batch_size": 100}, keep_raw=False, on_msg=pauser)
            ok(got_pause.get("ack") and got_pause.get("quiet") and got_pause.get("resumed"),
               "pause: query_paused, 0.6 s without a batch, query_resumed", repr(got_pause))
            rows = [json.dumps(r) for r in res["rows"]]
            want = psql_rows("SELECT data FROM v_bench_100k")
            ok(res["end"]["type"] == "query_completed" and len(res["rows"]) == len(want)
               and sorted(json.dumps(json.loads(w)) for w in want) == sorted(rows),
               "pause/resume: then every row exactly once (%d)" % len(want))

            # a paused stream no one resumes expires after --abandon-seconds
            await ws.send(json.dumps({"type": "stream_query", "entity": "bench_1m",
                                      "request_id": "ab"}))
            _, m = await recv_json(ws)
            sid = m["stream_id"]
            await ws.send(json.dumps({"type": "pause_query", "stream_id": sid}))
            t0 = time.monotonic()
            while True:
                _, m = await recv_json(ws, 10)
                if m["type"] == "query_error":
                    break
            ok(m["code"] == "abandoned" and m["stream_id"] == sid
               and 0.9 <= time.monotonic() - t0 <= 3 * SCALE,
               "abandoned: a paused stream expires after --abandon-seconds 1", repr(m))
            ok(await wait_backends_idle("v_bench_1m", 1.0), "abandoned: the backend is idle")
    finally:
        gw.stop()

    # --max-query-seconds: a stream over it is cancelled with code timeout
    gw = Gateway("--max-query-seconds", "1")
    try:
        async with ws_connect(gw.ws) as ws:
            await ws.send(json.dumps({"type": "stream_query", "entity": "bench_1m",
                                      "request_id": "t"}))
            _, m = await recv_json(ws)
            sid = m["stream_id"]
            await ws.send(json.dumps({"type": "pause_query", "stream_id": sid}))
            while True:
                _, m = await recv_json(ws, 10)
                if m["type"] == "query_error":
                    break
            ok(m["code"] == "timeout" and m["stream_id"] == sid, "max-query-seconds: timeout",
               repr(m))
            ok(await wait_backends_idle("v_bench_1m", 1.0), "timeout: the backend is idle")
    finally:
        gw.stop()


async def group_concurrency():
    gw = Gateway("--max-concurrent-streams", "64", "--pool-size", "8")
    want = {}
    for b in range(10):
        want[b] = oracle("v_bench_1k", "data->'bucket' = '%d'" % b)
    want_all = oracle("v_bench_100k")
    try:
        conns = [await ws_connect(gw.ws, max_size=2 ** 24) for _ in range(10)]

        async def one_conn(i, ws):
            # five streams at once on one connection, demultiplexed by stream_id
            reqs = {}
            for k in range(5):
                rid = "c%d-%d" % (i, k)
                if k == 0 and i % 5 == 0:
                    q = {"type": "stream_query", "request_id": rid, "entity": "bench_100k",
                         "batch_size": 1000}
                    reqs[rid] = ("all", None)
                else:
                    b = (i + k) % 10
                    q = {"type": "stream_query", "request_id": rid, "entity": "bench_1k",
                         "where": [{"path": "bucket", "op": "eq", "value": b}],
                         "batch_size": 17}
                    reqs[rid] = ("bucket", b)
                await ws.send(json.dumps(q))
            by_sid, rows, done, results = {}, {}, {}, {}
            while len(done) < 5:
                text, m = await recv_json(ws, 120)
                t = m["type"]
                if t == "query_started":
                    by_sid[m["stream_id"]] = m["request_id"]
                    rows[m["stream_id"]] = []
                elif t == "query_batch":
                    rows[m["stream_id"]].extend(raw_rows(text))
                elif t in ("query_completed", "query_error"):
                    rid = by_sid.get(m.get("stream_id")) or m.get("request_id")
                    done[rid] = m
                    results[rid] = rows.get(m.get("stream_id"), [])
            good = 0
            for rid, (kind, b) in reqs.items():
                c, s = want_all if kind == "all" else want[b]
                r = results[rid]
                if done[rid]["type"] == "query_completed" and len(r) == c and row_sum(r) == s \
                        and done[rid]["total_rows"] == c:
                    good += 1
                else:
                    print("stream %s: %r, %d rows" % (rid, done[rid], len(r)))
            return good

        t0 = time.monotonic()
        goods = await asyncio.gather(*(one_conn(i, ws) for i, ws in enumerate(conns)))
        ok(sum(goods) == 50, "50 concurrent streams over 10 WebSockets: all complete with "
           "psql's count and checksum (%d/50, %.1f s)" % (sum(goods), time.monotonic() - t0))
        for ws in conns:
            await ws.close()
        # the last stream's connection goes back to the pool just after its query_completed
        # (its stream is freed on the gateway's loop): poll briefly instead of one snapshot
        busy = 'fraiseql_gateway_pool_connections{state="busy"}'
        held, vals, body = await wait_metric(
            gw, lambda v: v.get(busy, 1) == 0
            and 1 <= v.get("fraiseql_gateway_pool_connects_total", 0) <= 8, 4)
        ok(held, "the pool stayed within --pool-size 8 and is idle afterwards",
           "busy %s, connects_total %s" % (vals.get(busy), vals.get("fraiseql_gateway_pool_connects_total")))
    finally:
        gw.stop()
    await parallel_case()


async def parallel_case():
    """--parallel: an entity's streams read over several connections under one snapshot, each
    equal to psql's answer; requests with a limit stay on one connection; a busy pool gives
    fewer parts, never a wait; a cancel and the end give every connection back idle."""
    sfx = "_wss" if TLS else ""
    key, mat, tid, bad = ("gwpar_key" + sfx, "gwpar_mat" + sfx, "gwpar_tid" + sfx,
                          "gwpar_bad" + sfx)
    psql("DROP VIEW IF EXISTS v_{k}, v_{t}, v_{b}; DROP MATERIALIZED VIEW IF EXISTS v_{m};"
         "DROP TABLE IF EXISTS t_{k};"
         "CREATE TABLE t_{k} AS SELECT id, data FROM bench_100k WHERE id <= 20000;"
         "CREATE INDEX ON t_{k} (id); ANALYZE t_{k};"
         "CREATE VIEW v_{k} AS SELECT id, data FROM t_{k};"
         "CREATE MATERIALIZED VIEW v_{m} AS SELECT data FROM t_{k};"
         "CREATE VIEW v_{t} AS SELECT t.ctid AS rid, t.data FROM t_{k} t;"
         "CREATE VIEW v_{b} AS SELECT data FROM t_{k};"
         "GRANT SELECT ON t_{k}, v_{k}, v_{m}, v_{t}, v_{b} TO PUBLIC"
         .format(k=key, m=mat, t=tid, b=bad), dsn=ADMIN_DSN)
    want = oracle("v_" + key)
    gw = Gateway("--pool-size", "4", "--max-pool-per-connection", "4", "--parallel",
                 "%s=3:id,%s=4,%s=2:tid:rid,%s=2:id" % (key, mat, tid, bad),
                 allow=ALLOW + ",%s,%s,%s,%s" % (key, mat, tid, bad))

    def parts():
        v = gw.metrics()[2]
        return (v.get("fraiseql_gateway_parallel_streams_total", -1),
                v.get("fraiseql_gateway_parallel_parts_total", -1))

    try:
        async with ws_connect(gw.ws, max_size=2 ** 24) as ws:
            for ent, n, how in ((key, 3, "key ranges"), (mat, 4, "ctid ranges"),
                                (tid, 2, "a ctid column")):
                before = parts()
                res = await run_stream(ws, {"type": "stream_query", "request_id": ent,
                                            "entity": ent, "batch_size": 500})
                check_complete(res, want, "--parallel %s=%d (%s)" % (ent, n, how), exact=False)
                after = parts()
                # n, or fewer when the readiness probe held a connection just then
                ok(after[0] == before[0] + 1 and 2 <= after[1] - before[1] <= n,
                   "--parallel %s: one stream over 2..%d connections on /metrics" % (ent, n),
                   "%r -> %r" % (before, after))
            before = parts()
            res = await run_stream(ws, {"type": "stream_query", "request_id": "w",
                                        "entity": key, "batch_size": 500,
                                        "where": [{"path": "bucket", "op": "eq", "value": 3}]})
            check_complete(res, oracle("v_" + key, "data->'bucket' = '3'"),
                           "--parallel with a where filter", exact=False)
            res = await run_stream(ws, {"type": "stream_query", "request_id": "l",
                                        "entity": key, "limit": 7})
            ok(res["end"]["type"] == "query_completed" and len(res["rows"]) == 7,
               "--parallel: a request with a limit completes", repr(res["end"]))
            after = parts()
            ok(after[0] == before[0] + 1 and 2 <= after[1] - before[1] <= 3,
               "--parallel: the filtered request was split, the limited one was not",
               "%r -> %r" % (before, after))
            st, body, _ = gw.get("/stream/" + key)
            lines = [l for l in body.split("\n") if l]
            ok(st == 200 and (len(lines), row_sum(lines)) == want,
               "--parallel over NDJSON: count and checksum equal psql's",
               "status %s, %d rows" % (st, len(lines)))
            # a busy pool: two paused streams hold 2 of the 4 connections, so the split gets
            # the one left beside its own: 2 parts, and no wait
            async with ws_connect(gw.ws) as ws2:
                sids = []
                for i in range(2):
                    await ws2.send(json.dumps({"type": "stream_query", "request_id": "p%d" % i,
                                               "entity": "fixture_sleepy", "batch_size": 1}))
                    while True:
                        _, m = await recv_json(ws2)
                        if m["type"] == "query_started":
                            break
                    sids.append(m["stream_id"])
                    await ws2.send(json.dumps({"type": "pause_query", "stream_id": sids[-1]}))
                before = parts()
                t0 = time.monotonic()
                res = await run_stream(ws, {"type": "stream_query", "request_id": "busy",
                                            "entity": key, "batch_size": 500})
                took = time.monotonic() - t0
                check_complete(res, want, "--parallel with 2 of 4 connections taken",
                               exact=False)
                after = parts()
                # 2 parts (1 when the probe held the last free one): never 3, and no wait for
                # a third (an acquire would wait 10 s and fail the stream)
                split = after[1] - before[1]
                ok(split in (0, 2) and after[0] - before[0] == (1 if split else 0)
                   and took < 5 * SCALE,
                   "--parallel: a busy pool gives the split the connections it has (2 of 3), "
                   "at once", "%r -> %r in %.1f s" % (before, after, took))
                for sid in sids:
                    await ws2.send(json.dumps({"type": "cancel_query", "stream_id": sid}))
            # a cancel in the middle ends every part
            await ws.send(json.dumps({"type": "stream_query", "request_id": "c", "entity": key,
                                      "batch_size": 100}))
            _, m = await recv_json(ws)
            sid = m.get("stream_id")
            _, m = await recv_json(ws)
            ok(m["type"] == "query_batch", "--parallel cancel: rows are flowing", repr(m)[:200])
            await ws.send(json.dumps({"type": "cancel_query", "stream_id": sid}))
            while m["type"] in ("query_batch", "query_progress"):
                _, m = await recv_json(ws)
            ok(m["type"] == "query_cancelled", "--parallel: cancel_query ends the split",
               repr(m)[:200])
            # the client leaves in the middle: every part is cancelled and given back
            ws3 = await ws_connect(gw.ws, max_size=2 ** 24)
            await ws3.send(json.dumps({"type": "stream_query", "request_id": "gone",
                                       "entity": key, "batch_size": 100}))
            _, m = await recv_json(ws3)
            _, m = await recv_json(ws3)
            ok(m["type"] == "query_batch", "--parallel, client gone: rows were flowing",
               repr(m)[:200])
            ws3.transport.abort()  # no close frame: the TCP connection just drops
            try:
                await ws3.close()  # only lets the client library finish its bookkeeping
            except Exception:
                pass
            busy = 'fraiseql_gateway_pool_connections{state="busy"}'
            held, vals, _ = await wait_metric(gw, lambda v: v.get(busy, 1) == 0, 5)
            ok(held and await wait_backends_idle("v_" + key, 5),
               "--parallel, client gone: its parts are cancelled and back in the pool",
               "busy %s" % vals.get(busy))
            # a key the view does not have: an error for the request, the gateway goes on
            res = await run_stream(ws, {"type": "stream_query", "request_id": "bad",
                                        "entity": bad})
            e = res["end"] or {}
            ok(e.get("type") == "query_error" and "id" in e.get("message", ""),
               "--parallel with a missing key column: a query_error naming it", repr(e)[:300])
            res = await run_stream(ws, {"type": "stream_query", "request_id": "after",
                                        "entity": key, "batch_size": 500})
            check_complete(res, want, "--parallel after the failed one", exact=False)
        busy = 'fraiseql_gateway_pool_connections{state="busy"}'
        held, vals, body = await wait_metric(gw, lambda v: v.get(busy, 1) == 0, 4)
        ok(held and prometheus_ok(body), "--parallel: every connection is back in the pool",
           "busy %s" % vals.get(busy))
        left = psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = '%s' AND "
                    "state <> 'idle'" % APP, dsn=ADMIN_DSN).strip()
        ok(left == "0", "--parallel: no backend of the gateway is left in a transaction",
           left)
    finally:
        gw.stop("the --parallel gateway")
        psql("DROP VIEW v_{k}, v_{t}, v_{b}; DROP MATERIALIZED VIEW v_{m}; DROP TABLE t_{k}"
             .format(k=key, m=mat, t=tid, b=bad), dsn=ADMIN_DSN)


async def group_backpressure():
    gw = Gateway("--high-watermark", "256K", "--stream-budget", "256K", "--progress-ms", "100")
    try:
        c, s = oracle("v_bench_1m")
        # a client with a small receive buffer that reads nothing for a while
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
        sock.connect(("127.0.0.1", gw.port))
        ws = await ws_connect(gw.ws, sock=sock, max_size=2 ** 24, max_queue=1,
                                      read_limit=2 ** 16)
        await asyncio.sleep(0.2)
        rss0 = gw.rss_kb()
        await ws.send(json.dumps({"type": "stream_query", "entity": "bench_1m",
                                  "batch_size": 1000}))
        # do not read: the gateway must stop taking rows and pause the PostgreSQL stream
        peak = 0
        paused_seen = False
        for _ in range(30):
            await asyncio.sleep(0.1 * SCALE)
            peak = max(peak, gw.rss_kb())
            _, body, vals = gw.metrics()
            if vals.get('fraiseql_gateway_active_streams{state="paused_backpressure"}', 0) == 1:
                paused_seen = True
        ok(paused_seen, "slow reader: the stream shows as paused_backpressure in /metrics")
        _, body, vals = gw.metrics()
        ok(vals.get("fraiseql_gateway_backpressure_pauses_total", 0) >= 1
           and vals.get("fraiseql_gateway_stream_pauses", 0) >= 1,
           "slow reader: backpressure pauses counted (gateway and fw_stream_stats)",
           body[-1500:])
        pending = vals.get("fraiseql_gateway_pending_bytes", -1)
        ok(0 < pending <= 256 * 1024 + 2 * 1024 * 1024,
           "slow reader: pending output bounded by the watermark plus a batch (%d)" % pending)
        # 1M rows are ~270 MB of JSON: holding them would show; 40 MB is the generous bound
        ok(peak - rss0 < 40 * 1024, "slow reader: gateway RSS grew %d KB (bounded)"
           % (peak - rss0), "rss0 %d peak %d" % (rss0, peak))
        # now read fast: everything arrives, exactly once
        rows, end = 0, None
        total = 0
        while True:
            text, m = await recv_json(ws, 120)
            if m["type"] == "query_batch":
                r = raw_rows(text)
                rows += len(r)
                total += row_sum(r)
                peak = max(peak, gw.rss_kb()) if rows % 100000 < 1000 else peak
            elif m["type"] in ("query_completed", "query_error"):
                end = m
                break
        ok(end["type"] == "query_completed" and rows == c and total == s
           and end["total_rows"] == c,
           "slow reader then fast: all %d rows, checksum equal to psql's" % c, repr(end))
        ok(peak - rss0 < 60 * 1024, "gateway RSS stayed bounded over 1M rows (+%d KB)"
           % (peak - rss0))
        await ws.close()
    finally:
        gw.stop()


async def group_auth():
    gw = Gateway("--token", "s3cret-token")
    try:
        for uri, what in ((gw.ws, "no token"), (gw.ws + "?token=wrong", "wrong token"),
                          (gw.ws + "?token=s3cret-tokenX", "longer token")):
            try:
                async with ws_connect(uri):
                    code = 101
            except websockets.InvalidStatusCode as e:
                code = e.status_code
            ok(code == 401, "WebSocket with %s: 401" % what, repr(code))
        async with ws_connect(gw.ws + "?token=s3cret-token") as ws:
            res = await run_stream(ws, {"type": "stream_query", "entity": "fixture"})
            ok(res["end"]["type"] == "query_completed", "WebSocket with the token: served")
        st, body, _ = gw.get("/stream/fixture")
        ok(st == 401 and json.loads(body)["code"] == "unauthorized", "/stream without token: 401")
        st, _, _ = gw.get("/stream/fixture", {"Authorization": "Bearer nope"})
        ok(st == 401, "/stream with a wrong Bearer: 401")
        st, body, _ = gw.get("/stream/fixture", {"Authorization": "Bearer s3cret-token"})
        ok(st == 200 and len(body.splitlines()) == 5, "/stream with Bearer: 200")
        st, body, _ = gw.get("/stream/fixture?limit=1&token=s3cret-token")
        ok(st == 200 and len(body.splitlines()) == 1, "/stream with ?token=: 200")
        st, _, _ = gw.get("/metrics")
        ok(st == 401, "/metrics without token: 401")
        st, _, _ = gw.get("/metrics?token=s3cret-token")
        ok(st == 200, "/metrics with token: 200")
        st, _, _ = gw.get("/")
        ok(st == 200, "the static page needs no token")
        st, _, _ = gw.get("/healthz")
        ok(st == 200, "/healthz needs no token")
        try:
            async with ws_connect(gw.ws + "?token=s3cret-token",
                                          origin="http://evil.example"):
                code = 101
        except websockets.InvalidStatusCode as e:
            code = e.status_code
        ok(code == 403, "cross-origin WebSocket: 403", repr(code))
        async with ws_connect(gw.ws + "?token=s3cret-token",
                                      origin="http://127.0.0.1:%d" % gw.port) as ws:
            ok(True, "same-origin WebSocket accepted")
        # DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1 is "same
        # origin" with its own Host; only this machine's names are served
        evil = "evil.example:%d" % gw.port
        for path in ("/", "/app.js", "/metrics?token=s3cret-token",
                     "/stream/fixture?token=s3cret-token"):
            st, body, _ = gw.get(path, {"Host": evil})
            ok(st == 421 and json.loads(body)["code"] == "forbidden",
               "Host %s on %s: 421" % (evil, path.split("?")[0]), repr((st, body[:200])))
        st, _, _ = gw.get("/healthz", {"Host": evil})
        ok(st == 200, "/healthz answers any Host")
        sock, head = raw_ws(gw.port, host=evil, path="/ws?token=s3cret-token")
        sock.close()
        ok(head.startswith(b"HTTP/1.1 421"), "WebSocket with Host evil.example: 421",
           head[:80].decode(errors="replace"))
        sock, head = raw_ws(gw.port, host="localhost:%d" % gw.port, path="/ws?token=s3cret-token")
        sock.close()
        ok(b" 101 " in head, "WebSocket with Host localhost:PORT: accepted")
        data = raw_http(gw.port, "GET / HTTP/1.0\r\n\r\n")
        ok(data.startswith(b"HTTP/1.1 421"), "a request without Host: 421", repr(data[:60]))
        st, _, _ = gw.get("/", {"Host": "127.0.0.1:%d" % (gw.port + 1 if gw.port < 65535 else 1)})
        ok(st == 421, "Host 127.0.0.1 with another port: 421")
    finally:
        gw.stop()
    gw = Gateway("--allow-host", "gw.example.test,other.test:99", "--allow-host", "third.test")
    try:
        for host, want in (("gw.example.test", 200), ("gw.example.test:443", 200),
                           ("other.test:99", 200), ("other.test:98", 421), ("third.test", 200),
                           ("evil.example", 421), ("localhost:%d" % gw.port, 200)):
            st, _, _ = gw.get("/", {"Host": host})
            ok(st == want, "--allow-host: Host %s -> %d" % (host, want), repr(st))
    finally:
        gw.stop()
    # off loopback a token is required
    r = subprocess.run([FWIRE, "serve", "--listen", "0.0.0.0:0", "--allow", "x", "--dsn", DSN],
                       capture_output=True)
    ok(r.returncode == 1 and b"--token" in r.stderr,
       "--listen 0.0.0.0 without --token: exit 1 saying why", r.stderr.decode()[-300:])
    # --max-connections
    gw = Gateway("--max-connections", "2")
    try:
        a = await ws_connect(gw.ws)
        b = await ws_connect(gw.ws)
        try:
            async with ws_connect(gw.ws):
                code = 101
        except websockets.InvalidStatusCode as e:
            code = e.status_code
        ok(code == 503, "over --max-connections: 503", repr(code))
        await a.close()
        await b.close()
        await asyncio.sleep(0.2)
        async with ws_connect(gw.ws) as ws:
            res = await run_stream(ws, {"type": "stream_query", "entity": "fixture"})
            ok(res["end"]["type"] == "query_completed", "after connections close: served again")
    finally:
        gw.stop()
    # PostgreSQL unreachable: each request fails with the connection error, the server lives
    bad_dsn = "host=%s port=1 dbname=x user=y connect_timeout=5" % os.environ["FW_TEST_SOCKDIR"]
    p = subprocess.Popen([FWIRE, "serve", "--listen", "127.0.0.1:0", "--dsn", bad_dsn,
                          "--allow", "fixture"], stderr=subprocess.PIPE)
    try:
        line = p.stderr.readline().decode()
        port = int(re.search(r":(\d+)/", line).group(1))
        async with ws_connect("ws://127.0.0.1:%d/ws" % port) as ws:
            for i in range(2):
                res = await run_stream(ws, {"type": "stream_query", "entity": "fixture",
                                            "request_id": "u%d" % i})
                e = res["end"]
                ok(e["type"] == "query_error" and e["request_id"] == "u%d" % i
                   and e["code"] not in ("", None) and e["stream_id"] is None,
                   "database unreachable: query_error %s (request %d)" % (e.get("code"), i),
                   repr(e))
            urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port, timeout=10).read()
            ok(True, "database unreachable: the gateway still answers")
    finally:
        p.send_signal(signal.SIGTERM)
        ok(p.wait(timeout=15) == 0, "database unreachable: clean stop")
    # configuration errors
    r = subprocess.run([FWIRE, "serve", "--dsn", DSN], capture_output=True)
    ok(r.returncode == 1 and b"--allow" in r.stderr, "no --allow: exit 1 with a message")
    r = subprocess.run([FWIRE, "serve", "--allow", "x", "--max-connections", "zero"],
                       capture_output=True)
    ok(r.returncode == 1 and b"max-connections" in r.stderr, "bad number: exit 1")
    # the command's one option parser (tools/cli.c): every bad option names itself, exit 1
    for args, needle in ((["--bogus"], b"'--bogus'"), (["-h"], b"'-h'"),
                         (["--pool-size"], b"--pool-size"), (["--batch-size", " 5"], b"batch-size"),
                         (["--stream-budget", "1X"], b"stream-budget"), (["stray"], b"'stray'"),
                         # issue 15
                         (["--drain-seconds", "-1"], b"--drain-seconds"),
                         (["--drain-seconds", "86401"], b"--drain-seconds"),
                         (["--read-from-primary", "yes"], b"'yes'"),
                         (["--dsn", "host=a,b,c port=1,2"], b"invalid connection options"),
                         (["--dsn", "host=a target_session_attrs=bogus"],
                          b"invalid connection options"),
                         # --parallel: N, the entity, the key, the pool
                         (["--parallel", "x=1"], b"N must be a whole number from 2 to 16"),
                         (["--parallel", "x=17"], b"N must be a whole number from 2 to 16"),
                         (["--parallel", "x=two"], b"N must be a whole number"),
                         (["--parallel", "x"], b"--parallel wants ENTITY=N[:KEY]"),
                         (["--parallel", "=2"], b"--parallel wants ENTITY=N[:KEY]"),
                         (["--parallel", "y=2"], b"entity 'y' is not in --allow"),
                         (["--parallel", "x=2:"], b"KEY must be a column name"),
                         (["--parallel", "x=2:tid:"], b"KEY must be a column name"),
                         (["--parallel", "x=5"], b"more than --pool-size 4"),
                         (["--parallel", "x=3"], b"--max-pool-per-connection 2"),
                         (["--parallel", "x=2: id"], b"KEY must be a column name"),
                         (["--parallel", "x=2:id;drop"], b"KEY must be a column name"),
                         (["--parallel", "x=2,x=2"], b"entity 'x' given twice")):
        r = subprocess.run([FWIRE, "serve", "--allow", "x"] + args, capture_output=True)
        ok(r.returncode == 1 and needle in r.stderr, "serve %r: exit 1 naming it" % args,
           repr((r.returncode, r.stderr[:200])))
    bad_cfg = "/tmp/fwire-gw-test-bad-%d.conf" % os.getpid()
    with open(bad_cfg, "w") as f:
        f.write("allow = fixture\nread-from-primary = maybe\n")
    try:
        r = subprocess.run([FWIRE, "serve", "--config", bad_cfg], capture_output=True)
        ok(r.returncode == 1 and b"--read-from-primary wants true or false" in r.stderr
           and b"line 2" in r.stderr, "--config: read-from-primary = maybe refused, line named",
           repr((r.returncode, r.stderr[:300])))
    finally:
        os.unlink(bad_cfg)
    r = subprocess.run([FWIRE, "serve", "-?"], capture_output=True)
    ok(r.returncode == 0 and b"usage: fwire serve" in r.stdout, "serve -?: the help, exit 0")
    cfg = "/tmp/fwire-gw-test-%d.conf" % os.getpid()
    with open(cfg, "w") as f:
        f.write("# test\nallow = fixture\nlisten = 127.0.0.1:0\nbatch-size = 2\n"
                "   # an indented comment\ntoken = ab#cdef\n"
                "dsn = %s\n" % DSN)
    try:
        p = subprocess.Popen([FWIRE, "serve", "--config", cfg, "--batch-size", "3"],
                             stderr=subprocess.PIPE)
        line = p.stderr.readline().decode()
        port = int(re.search(r":(\d+)/", line).group(1))
        async with ws_connect("ws://127.0.0.1:%d/ws?token=ab%%23cdef" % port) as ws:
            res = await run_stream(ws, {"type": "stream_query", "entity": "fixture"})
            ok(res["batches"] == [1, 2] and res["end"]["total_rows"] == 5,
               "--config file read, flags override it (batch-size 3)", repr(res["batches"]))
            ok(True, "--config: '#' inside a value is part of it (token ab#cdef accepted)")
        try:
            async with ws_connect("ws://127.0.0.1:%d/ws?token=ab" % port):
                code = 101
        except websockets.InvalidStatusCode as e:
            code = e.status_code
        ok(code == 401, "--config: the token is not cut at '#' (token ab refused)", repr(code))
        p.send_signal(signal.SIGINT)
        ok(p.wait(timeout=15) == 0, "SIGINT stops cleanly")
    finally:
        os.unlink(cfg)


async def group_shutdown():
    gw = Gateway()
    try:
        ws = await ws_connect(gw.ws)
        await ws.send(json.dumps({"type": "stream_query", "entity": "bench_1m",
                                  "request_id": "s"}))
        _, m = await recv_json(ws)
        await asyncio.sleep(0.2)
        ok(active_backends("v_bench_1m") == 1, "shutdown: a query is running")
        gw.proc.send_signal(signal.SIGTERM)
        err, code = None, None
        try:
            while True:
                _, m = await recv_json(ws, 10)
                if m["type"] == "query_error":
                    err = m
        except websockets.ConnectionClosed as e:
            code = e.code
        ok(err is not None and err["code"] == "shutdown", "shutdown: query_error shutdown",
           repr(err))
        ok(code == 1001, "shutdown: close code 1001 (going away)", repr(code))
        rc = gw.proc.wait(timeout=15 * SCALE)
        ok(rc == 0, "shutdown: exit 0", repr(rc))
        ok(await wait_backends_idle("v_bench_1m", 2.0), "shutdown: no query left running")
        gw.reader.join(timeout=5)
        log = "".join(gw.errlog)
        ok(not re.search(r"(AddressSanitizer|LeakSanitizer|runtime error:)", log),
           "shutdown: sanitizers silent", log[-3000:])
    finally:
        if gw.proc.poll() is None:
            gw.proc.kill()


async def group_robustness():
    # 1. A cancelled stream must end even when fwire had already read its reply to the end
    # (a pause that came too late) while the gateway was not draining it (backpressure): then
    # fw_stream_cancel calls nothing back, and only draining finds the verdict. Clients with a
    # 4 KB receive buffer that never read, streams of slightly different lengths (so some end
    # in the same loop pass as their pause), then every client resets its connection.
    gw = Gateway("--pool-size", "40", "--high-watermark", "16K", "--stream-budget", "64M",
                 "--max-concurrent-streams", "64")
    try:
        socks = []
        for limit in range(8500, 15501, 500):
            sock, head = raw_ws(gw.port, rcvbuf=4096)
            if b" 101 " not in head:
                ok(False, "stuck cancel: handshake", head.decode(errors="replace"))
                return
            sock.sendall(ws_frame(json.dumps({"type": "stream_query", "entity": "bench_100k",
                                              "limit": limit})))
            socks.append(sock)
        held, vals, body = await wait_metric(
            gw, lambda v: v.get('fraiseql_gateway_active_streams{state="paused_backpressure"}', 0)
            + v.get('fraiseql_gateway_active_streams{state="running"}', 0) >= len(socks), 10)
        await asyncio.sleep(1.0 * SCALE)
        for sock in socks:
            rst_close(sock)
        # fwire's cancel takes well under a second here; the gateway's watchdog (10 s) must not
        # be what ends them
        held, vals, body = await wait_metric(
            gw, lambda v: active_streams(v) == 0
            and v.get('fraiseql_gateway_pool_connections{state="busy"}', 1) == 0, 4)
        ok(held, "stuck cancel: every stream of %d reset clients ends within 4 s, no connection "
           "left busy" % len(socks), body[-2500:])
        # and the pool serves again
        async with ws_connect(gw.ws) as ws:
            res = await run_stream(ws, {"type": "stream_query", "entity": "fixture"})
            ok(res["end"]["type"] == "query_completed", "stuck cancel: the pool serves after")
    finally:
        gw.stop("stuck-cancel gateway")

    # 3. A pooled connection that dies while idle: the next stream must get a new one, not
    # wait for an unrelated request to dispatch it (pool of one).
    gw = Gateway("--pool-size", "1")
    try:
        async with ws_connect(gw.ws) as ws:
            res = await run_stream(ws, {"type": "stream_query", "entity": "fixture"})
            ok(res["end"]["type"] == "query_completed", "pool of one: first stream")
            n = psql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE "
                     "application_name = '%s' AND pid <> pg_backend_pid()" % APP,
                     dsn=ADMIN_DSN).strip()
            ok(n == "1", "pool of one: its idle backend terminated", n)
            await asyncio.sleep(0.3)
            try:
                res = await asyncio.wait_for(run_stream(ws, {"type": "stream_query",
                                                             "entity": "fixture"}), 10 * SCALE)
                end = res["end"]
            except asyncio.TimeoutError:
                end = "hung"
            ok(isinstance(end, dict) and end.get("type") == "query_completed",
               "pool of one: after pg_terminate_backend the next stream reconnects and completes",
               repr(end))
    finally:
        gw.stop("pool-of-one gateway")

    # 13. Dead peers: a /stream client that leaves while its stream waits for a connection is
    # noticed at once; a WebSocket that answers no ping is closed after 2 x --ws-ping-seconds.
    # (2 s, not 1: the websockets client answers pings from this test's event loop, which the
    # blocking /metrics and psql calls stall now and then)
    gw = Gateway("--pool-size", "1", "--ws-ping-seconds", "2")
    try:
        async with ws_connect(gw.ws) as ws:
            await ws.send(json.dumps({"type": "stream_query", "entity": "bench_1m"}))
            _, m = await recv_json(ws)
            sid = m["stream_id"]
            await ws.send(json.dumps({"type": "pause_query", "stream_id": sid}))
            sock = connect(gw.port)
            sock.sendall(("GET /stream/fixture HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"
                          % gw.port).encode())
            held, vals, body = await wait_metric(
                gw, lambda v: v.get('fraiseql_gateway_active_streams{state="queued"}', 0) == 1, 5)
            ok(held, "queued /stream: waits for the busy pool", body[-1500:])
            sock.close()
            held, vals, body = await wait_metric(
                gw, lambda v: v.get('fraiseql_gateway_active_streams{state="queued"}', 0) == 0,
                2)
            ok(held, "queued /stream: its client leaving ends it within 2 s", body[-1500:])

            # the websockets client answers pings by itself: still open after 5 s
            await asyncio.sleep(5.0)
            try:
                await ws.send(json.dumps({"type": "cancel_query", "stream_id": sid}))
                while True:
                    _, m = await recv_json(ws, 10)
                    if m["type"] == "query_cancelled":
                        break
                alive = True
            except websockets.ConnectionClosed as e:
                alive = e
            ok(alive is True, "a WebSocket that answers pings stays open past 2 x "
               "--ws-ping-seconds", repr(alive) + "\n" + "".join(gw.errlog[-30:]))
        sock, head = raw_ws(gw.port)
        t0 = time.monotonic()
        got, pinged = b"", False
        sock.settimeout(10 * SCALE)
        try:
            while True:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                got += chunk
                pinged = pinged or got.startswith(b"\x89")
        except (socket.timeout, ConnectionResetError):
            pass
        took = time.monotonic() - t0
        sock.close()
        ok(pinged and 3.5 <= took <= 7 * SCALE,
           "a WebSocket that answers no ping: pinged after 2 s, closed after ~4 s (%.1f s)" % took,
           repr(got[:40]) + "\n" + "".join(gw.errlog[-20:]))
    finally:
        gw.stop("dead-peer gateway")


# ---- issue 20: abuse -------------------------------------------------------------------------

# The documented bound (docs/gateway.md, "Limits and abuse") of what one WebSocket client that
# runs no stream can make the gateway hold, whatever it sends: RSS growth must stay under it.
PER_CLIENT_BOUND_KB = 4 * 1024
# Under AddressSanitizer, freed memory waits in a quarantine (8 MB here, see Gateway) and every
# allocation has redzones and shadow: a sanitizer build gets this much more, once per gateway.
with open(FWIRE, "rb") as _f:
    SANITIZER_SLACK_KB = 32 * 1024 if b"__asan_init" in _f.read() else 0


def ping_frame(payload=b""):
    mask = b"\x0a\x0b\x0c\x0d"
    return (bytes([0x89, 0x80 | len(payload)]) + mask
            + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))


def flood(sock, frame, seconds, read_rate=None):
    """Sends `frame` back to back for `seconds` on a non-blocking socket, never splitting the
    stream mid-frame; reads at most read_rate bytes/s meanwhile (None: never). Returns (frames
    sent, bytes read, closed)."""
    import select
    sock.setblocking(False)
    buf = frame * (65536 // len(frame))
    off, sent_bytes, got = 0, 0, 0
    t0 = time.monotonic()
    closed = False
    while time.monotonic() - t0 < seconds:
        r, w, _ = select.select([sock] if read_rate else [], [sock], [], 0.05)
        if w:
            try:
                n = sock.send(buf[off:])
                sent_bytes += n
                off = (off + n) % len(buf)
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                pass
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
        if r:
            allowed = int(read_rate * (time.monotonic() - t0) - got)
            if allowed >= 1:
                try:
                    d = sock.recv(int(min(allowed, 65536)))
                    if not d:
                        closed = True
                        break
                    got += len(d)
                except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                    pass
                except ConnectionResetError:
                    closed = True
                    break
        if read_rate and not w:
            time.sleep(0.005)
    return sent_bytes // len(frame), got, closed


async def ping_flood_case(gw, payload, read_rate, seconds, what):
    import concurrent.futures
    sock, head = raw_ws(gw.port, rcvbuf=16384)
    if b" 101 " not in head:
        ok(False, "%s: handshake" % what, head.decode(errors="replace"))
        return
    await asyncio.sleep(0.2)
    rss0 = gw.rss_kb()
    loop = asyncio.get_running_loop()
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        fut = loop.run_in_executor(ex, flood, sock, ping_frame(payload), seconds, read_rate)
        peak = rss0
        while not fut.done():
            peak = max(peak, gw.rss_kb())
            await asyncio.sleep(0.05)
        frames, got, closed = await fut
    peak = max(peak, gw.rss_kb())
    _, body, vals = gw.metrics()
    ok(peak - rss0 < PER_CLIENT_BOUND_KB + SANITIZER_SLACK_KB,
       "%s: %d pings in %.0f s, gateway RSS grew %d KB (< %d KB documented per client%s)"
       % (what, frames, seconds, peak - rss0, PER_CLIENT_BOUND_KB,
          " + %d KB for the sanitizers" % SANITIZER_SLACK_KB if SANITIZER_SLACK_KB else ""),
       "rss0 %d peak %d" % (rss0, peak))
    ok(frames > 1000, "%s: the flood really flooded (%d pings sent, %d bytes read)"
       % (what, frames, got))
    rst_close(sock)
    st, _, _ = gw.get("/healthz")
    ok(st == 200, "%s: the gateway still answers after" % what)


async def group_abuse():
    # 1. Ping floods, reading and not reading: memory per client is bounded by a figure. A
    # gateway of its own for each, so memory freed by one case cannot hide the next one's.
    for payload, rate, what in ((b"", None, "empty pings, never reading"),
                                (b"x", None, "1-byte pings, never reading"),
                                (b"", 64 * 1024, "empty pings, reading 64 KB/s"),
                                (b"x", 64 * 1024, "1-byte pings, reading 64 KB/s"),
                                (b"y" * 125, None, "125-byte pings, never reading")):
        gw = Gateway()
        try:
            await ping_flood_case(gw, payload, rate, 4.0, what)
            # the gateway is still a gateway
            async with ws_connect(gw.ws) as ws:
                res = await run_stream(ws, {"type": "stream_query", "entity": "fixture"})
                ok(res["end"]["type"] == "query_completed",
                   "%s: after the flood a stream completes" % what)
        finally:
            gw.stop("ping-flood gateway")

    # 1a. Many flooders at once: 32 WebSockets from 4 addresses, empty and 1-byte pings, none
    # reading. The gateway's growth stays under 32 x the per-client figure (and is printed: the
    # "per gateway" figure of docs/gateway.md).
    import concurrent.futures
    gw = Gateway()
    try:
        socks = []
        for i in range(32):
            sk = connect(gw.port, src="127.0.0.%d" % (1 + i % 4), rcvbuf=16384)
            sk.sendall(("GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                        "Sec-WebSocket-Version: 13\r\n\r\n" % gw.port).encode())
            head = b""
            while b"\r\n\r\n" not in head:
                head += sk.recv(1)
            if b" 101 " in head:
                socks.append(sk)
        await asyncio.sleep(0.2)
        rss0 = gw.rss_kb()
        loop = asyncio.get_running_loop()
        with concurrent.futures.ThreadPoolExecutor(len(socks)) as ex:
            futs = [loop.run_in_executor(ex, flood, sk, ping_frame(b"x" * (i % 2)), 4.0, None)
                    for i, sk in enumerate(socks)]
            peak = rss0
            while not all(f.done() for f in futs):
                peak = max(peak, gw.rss_kb())
                await asyncio.sleep(0.05)
            sent = sum(f.result()[0] for f in futs)
        ok(len(socks) == 32 and peak - rss0 < 32 * PER_CLIENT_BOUND_KB + SANITIZER_SLACK_KB,
           "32 clients flooding pings at once (%d pings): gateway RSS grew %d KB (< %d KB)"
           % (sent, peak - rss0, 32 * PER_CLIENT_BOUND_KB))
        for sk in socks:
            rst_close(sk)
        st, _, _ = gw.get("/healthz")
        ok(st == 200, "32 flooders: the gateway still answers after")
    finally:
        gw.stop("32-flooder gateway")

    # 1b. The worst a client with streams can hold: --max-streams-per-connection (8) streams of
    # bench_1m in batches of 10000, never reading, with a pool large enough to run all 8. The
    # documented figure (docs/gateway.md) is 8 x (--stream-budget + one 256 KiB batch) + the
    # high watermark + 256 KiB of read slack + the per-client figure above: 16 MiB with defaults.
    gw = Gateway("--pool-size", "16")  # half of it, 8, for one client
    try:
        sock, head = raw_ws(gw.port, rcvbuf=16384)
        await asyncio.sleep(0.2)
        rss0 = gw.rss_kb()
        for i in range(8):
            sock.sendall(ws_frame(json.dumps({"type": "stream_query", "entity": "bench_1m",
                                              "batch_size": 10000})))
        peak = rss0
        t0 = time.monotonic()
        running = 0
        while time.monotonic() - t0 < 6.0:
            peak = max(peak, gw.rss_kb())
            await asyncio.sleep(0.1)
        _, body, vals = gw.metrics()
        running = vals.get('fraiseql_gateway_active_streams{state="paused_backpressure"}', 0) + \
            vals.get('fraiseql_gateway_active_streams{state="running"}', 0)
        ok(running == 8 and peak - rss0 < 16 * 1024 + SANITIZER_SLACK_KB,
           "8 streams on one never-reading client: %d running or paused, gateway RSS grew %d KB "
           "(< 16384 KB documented per client with streams)" % (running, peak - rss0),
           body[-1500:])
        rst_close(sock)
    finally:
        gw.stop("8-stream gateway")

    # 2. Idle connections from one address do not lock out another address; the first request
    # line has a short deadline; probes have slots of their own.
    gw = Gateway()
    try:
        idle = []
        for _ in range(70):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            s.settimeout(5)
            s.connect(("127.0.0.1", gw.port))
            idle.append(s)
        await asyncio.sleep(0.3)
        refused, kept = 0, []
        for s in idle:
            s.setblocking(False)
            try:
                d = s.recv(200)
                refused += d.startswith(b"HTTP/1.1 503") or (TLS and d == b"")
            except BlockingIOError:
                kept.append(s)
        # over TLS a refused connection is closed without a word: no handshake is spent on it
        ok(refused >= 70 - 16 - 8,
           "70 idle connections from 127.0.0.1: all but its per-address share (16 + 8 probe "
           "slots) are refused at once with 503 (%d refused)" % refused)

        def get_from(src, path):
            s = connect(gw.port, src=src, timeout=5)
            s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (path, gw.port)).encode())
            d = b""
            try:
                while True:
                    c = s.recv(65536)
                    if not c:
                        break
                    d += c
            except (socket.timeout, ConnectionResetError):
                pass
            s.close()
            return d
        t0 = time.monotonic()
        r1 = get_from("127.0.0.2", "/healthz")
        r2 = get_from("127.0.0.2", "/")
        ok(r1.startswith(b"HTTP/1.1 200") and r2.startswith(b"HTTP/1.1 200")
           and time.monotonic() - t0 < 1.0,
           "meanwhile 127.0.0.2 gets /healthz and / at once (200, 200)", repr((r1[:40], r2[:40])))
        s = socket.socket()
        s.bind(("127.0.0.2", 0))
        s.connect(("127.0.0.1", gw.port))
        try:
            async with ws_connect(gw.ws, sock=s) as ws:
                res = await run_stream(ws, {"type": "stream_query", "entity": "fixture"})
                end = res["end"]["type"]
        except (websockets.InvalidStatusCode, OSError) as e:
            end = repr(e)
        ok(end == "query_completed", "meanwhile a WebSocket stream from 127.0.0.2 completes", end)
        # the idle ones are let go after the request-line deadline (3 s), not 10 s
        t0 = time.monotonic()
        timed = 0
        for s in kept:
            s.setblocking(True)
            s.settimeout(max(0.1, 5 - (time.monotonic() - t0)))
            try:
                d = s.recv(200)
                timed += d.startswith(b"HTTP/1.1 408") or (TLS and d == b"")
            except (socket.timeout, ConnectionResetError):
                pass
        took = time.monotonic() - t0
        ok(timed + refused == 70 and took < 5,
           "the idle connections left are answered 408 after the 3 s request-line deadline "
           "(%d of %d, %.1f s)" % (timed, 70 - refused, took))
        for s in idle:
            s.close()
    finally:
        gw.stop("per-address gateway")

    # 3. Fair sharing of the pool: one socket's paused streams do not starve another's.
    gw = Gateway("--pool-size", "4")
    try:
        async with ws_connect(gw.ws, max_size=2 ** 24) as a:
            for i in range(4):
                await a.send(json.dumps({"type": "stream_query", "entity": "bench_1m",
                                         "request_id": "a%d" % i, "batch_size": 10}))
            started = []
            t0 = time.monotonic()
            while time.monotonic() - t0 < 2.0:
                try:
                    _, m = await recv_json(a, 0.3)
                except asyncio.TimeoutError:
                    continue
                if m["type"] == "query_started":
                    started.append(m["stream_id"])
                    await a.send(json.dumps({"type": "pause_query", "stream_id": m["stream_id"]}))
            ok(1 <= len(started) <= 2, "one socket asking 4 streams of a pool of 4 runs at most "
               "half the pool (%d started)" % len(started))
            async with ws_connect(gw.ws) as b:
                t0 = time.monotonic()
                await b.send(json.dumps({"type": "stream_query", "entity": "fixture"}))
                try:
                    _, m = await recv_json(b, 5)
                except asyncio.TimeoutError:
                    m = {"type": "nothing within 5 s"}
                took = time.monotonic() - t0
                ok(m["type"] == "query_started" and took < 1.0,
                   "another socket's stream starts within 1 s (%.2f s)" % took, repr(m)[:200])
    finally:
        gw.stop("fair-pool gateway")

    # 4. Pause time adds up: pausing, resuming a moment and pausing again does not restart
    # --abandon-seconds.
    gw = Gateway("--abandon-seconds", "2")
    try:
        async with ws_connect(gw.ws, max_size=2 ** 24) as ws:
            await ws.send(json.dumps({"type": "stream_query", "entity": "bench_1m"}))
            _, m = await recv_json(ws)
            sid = m["stream_id"]
            await ws.send(json.dumps({"type": "pause_query", "stream_id": sid}))
            await asyncio.sleep(1.4)
            await ws.send(json.dumps({"type": "resume_query", "stream_id": sid}))
            await asyncio.sleep(0.05)
            await ws.send(json.dumps({"type": "pause_query", "stream_id": sid}))
            t0 = time.monotonic()
            end = None
            while time.monotonic() - t0 < 3.0 and end is None:
                try:
                    _, m = await recv_json(ws, 0.5)
                except asyncio.TimeoutError:
                    continue
                if m["type"] == "query_error" and m.get("stream_id") == sid:
                    end = m
            took = time.monotonic() - t0
            ok(end is not None and end["code"] == "abandoned" and took < 1.3,
               "--abandon-seconds 2 counts every pause: 1.4 s, resume, pause: abandoned %.2f s "
               "into the second pause" % took, repr(end))
    finally:
        gw.stop("abandon gateway")

    # 5. --max-connections full of idle connections: probes get slots of their own.
    gw = Gateway("--max-connections", "4")
    try:
        idle = [socket.create_connection(("127.0.0.1", gw.port)) for _ in range(4)]
        await asyncio.sleep(0.2)
        st, body, _ = gw.get("/healthz")
        ok(st == 200, "--max-connections full of idle connections: /healthz answered from a probe "
           "slot (200)", repr((st, body[:100])))
        st, body, _ = gw.get("/readyz")
        ok(st == 200 and json.loads(body)["status"] == "ready", "... and /readyz (200)",
           repr((st, body[:100])))
        st, body, _ = gw.get("/")
        ok(st == 503 and json.loads(body)["code"] == "limit", "... while / is 503 limit",
           repr((st, body[:100])))
        for s in idle:
            s.close()
    finally:
        gw.stop("probe-slot gateway")


# ---- issue 20: strict parsing ----------------------------------------------------------------

def ws_handshake_then(port, frames, version="1.1", wait=3.0, bytewise=False, watch_from=0):
    """A raw WebSocket handshake, then `frames`; returns (status line, what came back within
    `wait` seconds after the frames, seconds until the server closed or None)."""
    sock = connect(port, timeout=5)
    sock.sendall(("GET /ws HTTP/%s\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n" % (version, port)).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        c = sock.recv(1)
        if not c:
            break
        head += c
    status = head.split(b"\r\n")[0]
    t0 = time.monotonic()
    early = b""
    if bytewise:
        # one byte a segment: every header split at every point on its way to the scanner
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        import select
        for i in range(len(frames)):
            if i == watch_from and i > 0:
                time.sleep(0.3)  # the answer to what came before: read it first
                while select.select([sock], [], [], 0)[0]:
                    c = sock.recv(4096)
                    if not c:
                        break
                    early += c
            # the server may refuse a header on its decisive byte and close: stop sending then
            # (more bytes to a closed socket would draw a reset that discards its close frame)
            if i >= watch_from and select.select([sock], [], [], 0)[0]:
                break
            try:
                sock.sendall(frames[i:i + 1])
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                break
            time.sleep(0.002)
        t0 = time.monotonic()
    else:
        sock.sendall(frames)
    got, closed_at = early, None
    sock.settimeout(wait)
    try:
        while True:
            c = sock.recv(4096)
            if not c:
                closed_at = time.monotonic() - t0
                break
            got += c
    except (socket.timeout, ConnectionResetError):
        pass
    sock.close()
    return status, got, closed_at


def close_code(data):
    """The status code of the first close frame in server bytes, or None."""
    i = 0
    while i + 2 <= len(data):
        op, n = data[i] & 0x0f, data[i + 1] & 0x7f
        j = i + 2
        if n == 126:
            n = int.from_bytes(data[j:j + 2], "big")
            j += 2
        elif n == 127:
            n = int.from_bytes(data[j:j + 8], "big")
            j += 8
        if op == 0x8:
            return int.from_bytes(data[j:j + 2], "big") if n >= 2 else 1005
        i = j + n
    return None


def masked_header(opcode, length, fin=True):
    b0 = (0x80 if fin else 0) | opcode
    if length < 126:
        return bytes([b0, 0x80 | length]) + b"\x01\x02\x03\x04"
    if length < 65536:
        return bytes([b0, 0x80 | 126]) + length.to_bytes(2, "big") + b"\x01\x02\x03\x04"
    return bytes([b0, 0x80 | 127]) + length.to_bytes(8, "big") + b"\x01\x02\x03\x04"


async def group_strict():
    gw = Gateway("--max-frame-bytes", "4096")
    try:
        host = "Host: 127.0.0.1:%d\r\n" % gw.port
        cases = [
            ("two Host headers", "GET / HTTP/1.1\r\n" + host + "Host: evil.example\r\n\r\n", 400),
            ("two Host headers, /healthz", "GET /healthz HTTP/1.1\r\n" + host + host + "\r\n", 400),
            ("a request line without a version", "GET /\r\n\r\n", 400),
            ("HTTP/0.9", "GET / HTTP/0.9\r\n" + host + "\r\n", 400),
            ("HTTP/9.9", "GET / HTTP/9.9\r\n" + host + "\r\n", 505),
            ("HTTP/2.0", "GET / HTTP/2.0\r\n" + host + "\r\n", 505),
            ("a WebSocket handshake over HTTP/1.0",
             "GET /ws HTTP/1.0\r\n" + host + "Upgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
             400),
            ("limit=%205 (leading space)",
             "GET /stream/fixture?limit=%205 HTTP/1.1\r\n" + host + "\r\n", 400),
            ("limit=5%20 (trailing space)",
             "GET /stream/fixture?limit=5%20 HTTP/1.1\r\n" + host + "\r\n", 400),
            ("Upgrade: h2c on / is a plain GET",
             "GET / HTTP/1.1\r\n" + host + "Connection: Upgrade, HTTP2-Settings\r\n"
             "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n", 200),
            ("HTTP/1.0 GET / still served", "GET / HTTP/1.0\r\n" + host + "\r\n", 200),
        ]
        for what, req, want in cases:
            data = raw_http(gw.port, req)
            status = data.split(b"\r\n")[0]
            ok(status.startswith(b"HTTP/1.1 %d " % want), "%s: %d" % (what, want), repr(data[:200]))
            if want == 200 and "h2c" in req:
                ok(b"text/html" in data and b"101" not in status,
                   "h2c upgrade ignored: the page itself", repr(data[:200]))
        # WebSocket frames refused on their header, with the close code RFC 6455 wants
        fcases = [
            ("a close frame with a 1-byte payload", masked_header(0x8, 1) + b"\x00", 1002),
            ("a header announcing 2^63 bytes", masked_header(0x1, 2 ** 63), 1002),
            ("a header announcing 2^64-1 bytes", masked_header(0x2, 2 ** 64 - 1), 1002),
            ("a header announcing 1 MB (limit 4096), no payload sent",
             masked_header(0x1, 1 << 20), 1009),
            ("fragments adding up past the limit, refused on the second header",
             masked_header(0x1, 3000, fin=False) + bytes(3000) + masked_header(0x0, 3000), 1009),
            ("a ping of 126 bytes", masked_header(0x9, 126) + bytes(126), 1002),
        ]
        for what, frames, want in fcases:
            status, got, closed_at = ws_handshake_then(gw.port, frames)
            code = close_code(got)
            ok(b" 101 " in status and code == want and closed_at is not None and closed_at < 2.0,
               "%s: close %d at once, then the connection ends" % (what, want),
               "status %r code %r closed after %r: %r" % (status, code, closed_at, got[:60]))
            if len(frames) < 100:
                # the same bytes one at a time: a valid text message first, then the bad header
                msg = ws_frame(json.dumps({"type": "cancel_query", "stream_id": "x"}))
                status, got, closed_at = ws_handshake_then(gw.port, msg + frames, bytewise=True,
                                                           watch_from=len(msg))
                ok(b" 101 " in status and close_code(got) == want and b"not_found" in got,
                   "%s, byte by byte after a message: that message answered, then close %d"
                   % (what, want), "code %r: %r" % (close_code(got), got[:120]))
        # a 2-byte close still gets its echo (1000)
        status, got, closed_at = ws_handshake_then(
            gw.port, masked_header(0x8, 2) + bytes(b ^ m for b, m in zip(b"\x03\xe8", b"\x01\x02")))
        ok(close_code(got) == 1000, "a normal close (1000) is echoed", repr(got[:40]))
        st, _, _ = gw.get("/healthz")
        ok(st == 200, "the gateway serves on after every refusal")
    finally:
        gw.stop("strict-parsing gateway")


# ---- issue 20: TLS of its own ----------------------------------------------------------------

def tls_probe(port, **ctx_opts):
    """One TLS handshake with a context tuned by ctx_opts; returns (ok, detail)."""
    ctx = ssl.create_default_context(cafile=tls_path("ca.crt"))
    if "max_version" in ctx_opts:
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ctx_opts["max_version"]
        try:
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        except ssl.SSLError:
            pass
    if "ciphers" in ctx_opts:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers(ctx_opts["ciphers"])
    if "cert" in ctx_opts:
        ctx.load_cert_chain(tls_path(ctx_opts["cert"] + ".crt"), tls_path(ctx_opts["cert"] + ".key"))
    try:
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5),
                            server_hostname="127.0.0.1")
        s.sendall(("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % port).encode())
        d = s.recv(200)
        peer = s.getpeercert()
        ver, cipher = s.version(), s.cipher()[0]
        s.close()
        if not d:
            return False, "closed after the handshake"
        return d.startswith(b"HTTP/1.1 200"), (ver, cipher, peer.get("serialNumber"))
    except (ssl.SSLError, OSError) as e:
        return False, repr(e)


async def group_tls():
    tls_setup()
    global TLS
    TLS = True
    gw = Gateway()
    try:
        good, detail = tls_probe(gw.port)
        ok(good, "https: TLS verified against the test CA, /healthz 200 %r" % (detail,))
        good, detail = tls_probe(gw.port, max_version=ssl.TLSVersion.TLSv1_1)
        ok(not good, "TLS 1.1 refused", repr(detail))
        good, detail = tls_probe(gw.port, max_version=ssl.TLSVersion.TLSv1_2)
        ok(good and detail[0] == "TLSv1.2" and "ECDHE" in detail[1] and
           ("GCM" in detail[1] or "CHACHA20" in detail[1]),
           "TLS 1.2: an ECDHE AEAD suite %r" % (detail,))
        good, detail = tls_probe(gw.port, ciphers="ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA")
        ok(not good, "TLS 1.2 with CBC-SHA1 suites only: refused", repr(detail))
        # a plaintext client on the TLS port gets nothing it could mistake for an answer
        data = b""
        s = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
        s.sendall(("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % gw.port).encode())
        try:
            while True:
                c = s.recv(4096)
                if not c:
                    break
                data += c
        except (socket.timeout, ConnectionResetError):
            pass
        s.close()
        ok(b"HTTP/1.1" not in data, "plaintext HTTP on the TLS port: no HTTP answer", repr(data[:60]))
        # a stream over wss
        async with ws_connect(gw.ws) as ws:
            res = await run_stream(ws, {"type": "stream_query", "entity": "fixture"})
            check_complete(res, psql_rows("SELECT data FROM v_fixture"), "wss stream")
        # SIGHUP: a renewed certificate is served to new connections; a broken one is refused
        # and the previous one stays
        _, before = tls_probe(gw.port)
        make_cert(TLS_DIR, "server", "localhost", "v3_server")
        gw.proc.send_signal(signal.SIGHUP)
        await asyncio.sleep(0.5)
        good, after = tls_probe(gw.port)
        ok(good and after[2] != before[2],
           "SIGHUP: the renewed certificate is served (serial %s -> %s)" % (before[2], after[2]))
        with open(tls_path("server.key"), "w") as f:
            f.write("not a key\n")
        gw.proc.send_signal(signal.SIGHUP)
        await asyncio.sleep(0.5)
        good, again = tls_probe(gw.port)
        ok(good and again[2] == after[2] and
           any("TLS reload failed" in l for l in gw.errlog),
           "SIGHUP with a broken key: refused, the previous certificate stays", repr(again))
    finally:
        gw.stop("TLS gateway")
    make_cert(TLS_DIR, "server", "localhost", "v3_server")

    # client certificates
    gw = Gateway("--tls-client-ca", tls_path("ca.crt"))
    try:
        good, detail = tls_probe(gw.port)
        ok(not good, "--tls-client-ca: no client certificate, refused", repr(detail))
        good, detail = tls_probe(gw.port, cert="client-other")
        ok(not good, "--tls-client-ca: a certificate of another CA, refused", repr(detail))
        good, detail = tls_probe(gw.port, cert="client")
        ok(good, "--tls-client-ca: the test CA's client certificate, served", repr(detail))
    finally:
        gw.stop("client-certificate gateway")

    # off loopback, a token travels in plaintext unless TLS (or an explicit flag)
    r = subprocess.run([FWIRE, "serve", "--listen", "192.0.2.1:8080", "--token", "t",
                        "--allow", "fixture", "--dsn", DSN], capture_output=True, timeout=10)
    ok(r.returncode == 1 and b"--tls-cert" in r.stderr and b"--insecure-listen" in r.stderr,
       "a non-loopback --listen with a token and no TLS: refused", r.stderr.decode()[:300])
    r = subprocess.run([FWIRE, "serve", "--tls-cert", tls_path("server.crt"),
                        "--allow", "fixture", "--dsn", DSN], capture_output=True, timeout=10)
    ok(r.returncode == 1 and b"--tls-key" in r.stderr, "--tls-cert without --tls-key: refused")


async def group_drain():
    """SIGTERM with --drain-seconds (issue 15): /readyz 503 at once, new work refused, an idle
    WebSocket closed with 1001, a running stream finishes with every row, then exit 0; and a
    stream that would outlast the drain is cancelled at --drain-seconds."""
    gw = Gateway("--drain-seconds", "10")
    try:
        st, _, _ = gw.get("/readyz")
        deadline = time.monotonic() + 5 * SCALE
        while st != 200 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            st, _, _ = gw.get("/readyz")
        ok(st == 200, "drain: /readyz 200 before the signal", repr(st))
        want = psql_rows("SELECT data FROM v_fixture_sleepy")
        ws = await ws_connect(gw.ws)
        idle = await ws_connect(gw.ws)
        await ws.send(json.dumps({"type": "stream_query", "entity": "fixture_sleepy",
                                  "request_id": "d1"}))
        _, m = await recv_json(ws)
        ok(m["type"] == "query_started", "drain: a slow stream runs (10 rows, 1 s)", repr(m))
        sid = m["stream_id"]
        t_sig = time.monotonic()
        gw.proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.05)
        st, body, _ = gw.get("/readyz")
        took = time.monotonic() - t_sig
        ok(st == 503 and '"shutdown"' in body,
           "drain: /readyz 503 shutdown %.0f ms after SIGTERM" % (took * 1000), repr((st, body)))
        st, _, _ = gw.get("/healthz")
        ok(st == 200, "drain: /healthz still 200 (alive)", repr(st))
        st, body, _ = gw.get("/stream/fixture")
        ok(st == 503 and '"shutdown"' in body, "drain: a new /stream is refused with 503 shutdown",
           repr((st, body)))
        try:
            async with ws_connect(gw.ws) as w3:
                res = ("accepted", w3)
        except websockets.InvalidStatusCode as e:
            res = ("refused", e.status_code)
        except Exception as e:  # websockets >= 11 names it InvalidStatus
            res = ("refused", getattr(getattr(e, "response", None), "status_code", repr(e)))
        ok(res == ("refused", 503), "drain: a new WebSocket handshake gets 503", repr(res))
        try:
            await recv_json(idle, 5)
            code = "message"
        except websockets.ConnectionClosed as e:
            code = e.code
        ok(code == 1001, "drain: a WebSocket without streams is closed with 1001 at once",
           repr(code))
        await ws.send(json.dumps({"type": "stream_query", "entity": "fixture",
                                  "request_id": "d2"}))
        rows, end, refused = [], None, None
        while end is None:
            text, m = await recv_json(ws, 15)
            if m["type"] == "query_error" and m.get("request_id") == "d2":
                refused = m
            elif m["type"] == "query_batch" and m["stream_id"] == sid:
                rows.extend(raw_rows(text))
            elif m["type"] in ("query_completed", "query_error", "query_cancelled"):
                end = m
        ok(refused is not None and refused["code"] == "shutdown",
           "drain: a new stream_query on a running WebSocket gets query_error shutdown",
           repr(refused))
        ok(end["type"] == "query_completed" and rows == want,
           "drain: the running stream completes with every row (%d)" % len(rows), repr(end))
        try:
            await recv_json(ws, 5)
            code = "message"
        except websockets.ConnectionClosed as e:
            code = e.code
        ok(code == 1001, "drain: its WebSocket is closed with 1001 after its last stream",
           repr(code))
        try:
            rc = gw.proc.wait(timeout=10 * SCALE)
        except subprocess.TimeoutExpired:
            rc = "hung"
        took = time.monotonic() - t_sig
        ok(rc == 0 and took < 4 * SCALE,
           "drain: exit 0 %.2f s after SIGTERM (once the stream ended, not at 10 s)" % took,
           repr(rc))
        gw.reader.join(timeout=5)
        log = "".join(gw.errlog)
        ok(not re.search(r"(AddressSanitizer|LeakSanitizer|runtime error:)", log),
           "drain: sanitizers silent", log[-3000:])
    finally:
        if gw.proc.poll() is None:
            gw.proc.kill()

    # a paused stream outlasts the drain: cancelled at --drain-seconds with query_error
    # shutdown, its backend idle, exit 0
    gw = Gateway("--drain-seconds", "2")
    try:
        async with ws_connect(gw.ws) as ws:
            await ws.send(json.dumps({"type": "stream_query", "entity": "bench_1m"}))
            _, m = await recv_json(ws)
            sid = m["stream_id"]
            await ws.send(json.dumps({"type": "pause_query", "stream_id": sid}))
            await asyncio.sleep(0.3)
            t_sig = time.monotonic()
            gw.proc.send_signal(signal.SIGTERM)
            err, code, t_err = None, None, None
            try:
                while True:
                    _, m = await recv_json(ws, 10)
                    if m["type"] == "query_error":
                        err, t_err = m, time.monotonic() - t_sig
            except websockets.ConnectionClosed as e:
                code = e.code
            ok(err is not None and err["code"] == "shutdown" and 1.9 <= t_err <= 3.5 * SCALE,
               "drain: a paused stream gets query_error shutdown at --drain-seconds 2 "
               "(after %.2f s)" % (t_err or -1), repr(err))
            ok(code == 1001, "drain: then close 1001", repr(code))
        try:
            rc = gw.proc.wait(timeout=10 * SCALE)
        except subprocess.TimeoutExpired:
            rc = "hung"
        took = time.monotonic() - t_sig
        ok(rc == 0 and took < 5 * SCALE, "drain: exit 0 %.2f s after SIGTERM" % took, repr(rc))
        ok(await wait_backends_idle("v_bench_1m", 2.0), "drain: no query left running")
        # a second signal during a drain stops at once (cancels instead of waiting)
    finally:
        if gw.proc.poll() is None:
            gw.proc.kill()

    gw = Gateway("--drain-seconds", "30")
    try:
        async with ws_connect(gw.ws) as ws:
            await ws.send(json.dumps({"type": "stream_query", "entity": "bench_1m"}))
            _, m = await recv_json(ws)
            await ws.send(json.dumps({"type": "pause_query", "stream_id": m["stream_id"]}))
            await asyncio.sleep(0.3)
            t_sig = time.monotonic()
            gw.proc.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.3)
            gw.proc.send_signal(signal.SIGINT)
            err = None
            try:
                while True:
                    _, m = await recv_json(ws, 10)
                    if m["type"] == "query_error":
                        err = m
            except websockets.ConnectionClosed:
                pass
        try:
            rc = gw.proc.wait(timeout=10 * SCALE)
        except subprocess.TimeoutExpired:
            rc = "hung"
        took = time.monotonic() - t_sig
        ok(rc == 0 and err is not None and err["code"] == "shutdown" and took < 3 * SCALE,
           "drain: SIGINT during a drain stops at once (query_error shutdown, exit 0 after "
           "%.2f s)" % took, repr((rc, err)))
    finally:
        if gw.proc.poll() is None:
            gw.proc.kill()


GROUPS = {
    "protocol": group_protocol,
    "bad_input": group_bad_input,
    "cancel": group_cancel,
    "concurrency": group_concurrency,
    "backpressure": group_backpressure,
    "auth": group_auth,
    "shutdown": group_shutdown,
    "robustness": group_robustness,
    "abuse": group_abuse,
    "strict": group_strict,
    "tls": group_tls,
    "drain": group_drain,
}

if __name__ == "__main__":
    try:
        asyncio.run(GROUPS[GROUP]())
    except Exception as e:  # a crash of the test itself is a failure, with its traceback
        import traceback
        traceback.print_exc()
        failed += 1
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)
