/* SPDX-License-Identifier: MIT */
/*
 * Faults on the wire (issue 17): fwire against the harness's real PostgreSQL 15 through the
 * fault-injecting proxy of test/faultproxy.h, in both run modes, plaintext (trust) and TLS
 * (verify-full, SCRAM):
 *
 *  - a reset (RST) and a close (FIN) of the server's side at many byte offsets of the reply:
 *    every row before the cut delivered, in order, none partial, then a clear "server closed
 *    the connection" / "connection reset" failure; never a hang. The offsets are every
 *    FW_FAULT_STRIDE-th byte of the first FW_FAULT_SPAN (65536) bytes of the reply, plus
 *    FW_FAULT_LATER (8) random offsets further on; the default strides (multiples of 7, see
 *    RESET_STRIDE) keep the binary near a minute, FW_FAULT_STRIDE=7 is the sweep.
 *  - a stall with both sockets open: the idle timeout ends the stream in time; without one,
 *    fw_stream_free and the connection's close return at once.
 *  - a slow, bursty network: the result equals psql's, and no timeout fires.
 *  - the allocator hook failing the Nth allocation for every N over connect plus one query.
 *
 * FW_TEST_FILTER=pattern runs the matching cases only.
 */
#define _GNU_SOURCE /* setns */
#define OPENSSL_SUPPRESS_DEPRECATED

#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/md5.h>
#include <uv.h>

#include "fwire.h"

#include "faultproxy.h"
#include "stream_oracle.h"

static void psql(const char *sql, char *out, size_t cap)
{
    psql_as("FW_TEST_ADMIN", sql, out, cap);
}

/* The reply under test: the 1,000 rows (~260 KB) of bench_1k, in id order (a table too small
 * for a parallel or synchronized scan), with a LIMIT as in the issue's `fwire stream --limit`
 * (a LIMIT over bench_100k is not deterministic: its scan runs in parallel workers). */
#define VIEW "v_bench_1k"
#define LIMIT 1000
#define ORACLE_SQL "SELECT data FROM v_bench_1k LIMIT 1000"

/* ---- the proxy and the reference reply ------------------------------------------------------ */

static fp_t proxy;
static uint64_t ref_sum[LIMIT]; /* each row's MD5 prefix (stream_oracle.h row_md5), in order */
static size_t ref_rows;
static size_t *row_end; /* plaintext: the reply offset just past each DataRow */
static size_t reply_len;

/* ---- sessions ----------------------------------------------------------------------------- */

typedef struct sess_s {
    bool threaded, tls;
    const char *name;
    fw_runtime_t *rt;
    uv_loop_t loop;
    uv_timer_t tick;
    fw_conn_t *conn;
    int connects, connect_status, closes;
    fw_error_t err;
} sess_t;

LIVE_CONN_CALLBACKS(sess_t)

static void conninfo(char *ci, size_t cap, bool tls, uint16_t port, const char *extra)
{
    if (tls)
        snprintf(ci, cap,
                 "host=127.0.0.1 port=%u dbname=%s user=%s password=%s sslmode=verify-full "
                 "sslrootcert=%s connect_timeout=10 %s",
                 port, env("FW_TEST_DBNAME"), env("FW_TEST_USER_SCRAM"), env("FW_TEST_PASS_SCRAM"),
                 env("FW_TEST_CA"), extra);
    else
        snprintf(ci, cap,
                 "host=127.0.0.1 port=%u dbname=%s user=%s sslmode=disable connect_timeout=10 %s",
                 port, env("FW_TEST_DBNAME"), env("FW_TEST_USER_TRUST"), extra);
}

/* The run mode's machinery (a runtime, or a loop of ours), kept across connections; 0 or
 * fw_runtime_new's failure. */
static int sess_try_init(sess_t *S, bool threaded, bool tls)
{
    memset(S, 0, sizeof(*S));
    S->threaded = threaded;
    S->tls = tls;
    S->name = threaded ? (tls ? "threaded/tls" : "threaded/plain")
                       : (tls ? "embedded/tls" : "embedded/plain");
    if (threaded)
        return fw_runtime_new(&S->rt);
    live_loop_init(&S->loop, &S->tick);
    return 0;
}

static void sess_init(sess_t *S, bool threaded, bool tls)
{
    assert_int_equal(sess_try_init(S, threaded, tls), 0);
}

/* Connects through the proxy (port) or straight to the server; returns the connect status. */
static int sess_connect_to(sess_t *S, uint16_t port, const char *extra)
{
    char ci[1024];
    conninfo(ci, sizeof(ci), S->tls, port, extra);
    fw_conn_opts_t o;
    fw_conn_opts_init(&o);
    o.conninfo = ci;
    o.use_environment = false;
    S->conn = NULL;
    if (S->threaded) {
        int rc = fw_conn_connect_sync(S->rt, &o, &S->conn, &S->err);
        if (rc != 0)
            S->conn = NULL;
        return rc;
    }
    int rc = fw_conn_new(&S->conn, &S->loop, &o, &S->err);
    if (rc != 0) {
        S->conn = NULL;
        return rc;
    }
    S->connects = 0;
    assert_int_equal(fw_conn_connect(S->conn, on_connect, S), 0);
    live_run_until_counted(&S->loop, &S->connects, 30);
    assert_int_equal(S->connects, 1);
    if (S->connect_status != 0) {
        /* A failed connect still owns its handle: close it. */
        S->closes = 0;
        fw_conn_close(S->conn, on_closed, S);
        while (S->closes == 0)
            uv_run(&S->loop, UV_RUN_ONCE);
        S->conn = NULL;
    }
    return S->connect_status;
}

static void sess_connect(sess_t *S)
{
    int rc = sess_connect_to(S, proxy.port, "");
    if (rc != 0)
        fail_msg("%s: connect: %s", S->name, S->err.message);
}

static void sess_disconnect(sess_t *S)
{
    if (S->conn == NULL)
        return;
    if (S->threaded) {
        fw_conn_close_sync(S->conn);
    } else {
        S->closes = 0;
        fw_conn_close(S->conn, on_closed, S);
        live_run_until_counted(&S->loop, &S->closes, 10);
        assert_int_equal(S->closes, 1);
    }
    S->conn = NULL;
}

static void sess_fini(sess_t *S)
{
    sess_disconnect(S);
    if (S->threaded) {
        fw_runtime_free(S->rt);
    } else {
        live_loop_drain(&S->loop, &S->tick, 10);
        assert_int_equal(uv_loop_close(&S->loop), 0);
    }
}

static fw_query_t *the_query(uint32_t idle_ms)
{
    fw_query_t *q;
    assert_int_equal(fw_query_new(&q), 0);
    assert_int_equal(fw_query_relation(q, VIEW), 0);
    assert_int_equal(fw_query_limit(q, LIMIT), 0);
    if (idle_ms > 0)
        assert_int_equal(fw_query_idle_timeout(q, idle_ms), 0);
    return q;
}

/* What one stream delivered. */
typedef struct got_s {
    uint64_t rows;
    uint64_t sums_ok; /* rows equal to the reference row at their position */
    res_t r;          /* the oracle's digest of what came */
    int code;         /* FW_END or the failure */
    fw_error_t err;
    bool hung;
    double secs;
} got_t;

static void got_row(got_t *g, const fw_row_t *row)
{
    unsigned char d[16];
    uint64_t v = row_md5(row, d);
    if (g->rows < ref_rows && ref_sum[g->rows] == v)
        g->sums_ok++;
    res_row(&g->r, row);
    g->rows++;
}

static void on_ready(fw_stream_t *s, void *ud)
{
    (void)s;
    (void)ud;
}

/*
 * Streams the query on the session's connection to its end, giving up (hung) after `secs`
 * without an end. Frees the stream; the connection stays for the caller.
 */
static void run_stream(sess_t *S, const fw_query_t *q, double secs, got_t *g)
{
    memset(g, 0, sizeof(*g));
    res_init(&g->r);
    g->code = 1;
    fw_stream_t *s = NULL;
    fw_error_t err;
    uint64_t t0 = uv_hrtime();
    int rc = fw_stream_start(S->conn, q, S->threaded ? NULL : on_ready, NULL, &s, &err);
    if (rc != 0) {
        g->code = rc;
        g->err = err;
        return;
    }
    for (;;) {
        fw_row_t row;
        int k = S->threaded ? fw_stream_next(s, &row, 100) : fw_stream_try_next(s, &row);
        if (k == FW_ROW) {
            got_row(g, &row);
            continue;
        }
        if (k == FW_AGAIN) {
            if (secs_since(t0) > secs) {
                g->hung = true;
                break;
            }
            if (!S->threaded)
                uv_run(&S->loop, UV_RUN_ONCE);
            continue;
        }
        g->code = k;
        if (k < 0)
            g->err = *fw_stream_error(s);
        break;
    }
    g->secs = secs_since(t0);
    res_finish(&g->r);
    fw_stream_free(s);
}

/* ---- the reference reply ------------------------------------------------------------------ */

static int setup(void **state)
{
    (void)state;
    long port = strtol(env("FW_TEST_PORT"), NULL, 10);
    fp_start(&proxy, (uint16_t)port);
    /* One pass through the proxy, recording the plaintext reply: the rows (checked against
     * psql) and where each DataRow ends on the wire. */
    sess_t S;
    sess_init(&S, true, false);
    sess_connect(&S);
    fp_arm(&proxy, FP_PASS, 0, true);
    fw_query_t *q = the_query(0);
    got_t g;
    memset(ref_sum, 0, sizeof(ref_sum));
    ref_rows = 0;
    run_stream(&S, q, 30 * SLOW, &g);
    fw_query_free(q);
    sess_fini(&S);
    if (g.code != FW_END)
        fail_msg("reference run: %s %s", code_name(g.code), g.err.message);
    const oracle_t *o = oracle(ORACLE_SQL, false);
    if (g.r.rows != o->rows || g.r.sum != o->sum || g.r.bytes != o->bytes)
        fail_msg("reference run: %" PRIu64 " rows, sum %" PRIu64 "; psql: %" PRIu64
                 " rows, sum %" PRIu64,
                 g.r.rows, g.r.sum, o->rows, o->sum);
    /* The reference rows, in order, from a second plain pass over the recording. */
    pthread_mutex_lock(&proxy.mu);
    reply_len = proxy.rec_len;
    const uint8_t *b = proxy.rec;
    row_end = calloc(LIMIT + 1, sizeof(size_t));
    assert_non_null(row_end);
    size_t pos = 0;
    while (pos + 5 <= reply_len) {
        uint32_t len = (uint32_t)b[pos + 1] << 24 | (uint32_t)b[pos + 2] << 16 |
                       (uint32_t)b[pos + 3] << 8 | b[pos + 4];
        size_t end = pos + 1 + len;
        if (end > reply_len)
            break;
        if (b[pos] == 'D') {
            assert_true(ref_rows < LIMIT);
            /* one column: int16 count, int32 length, the value */
            uint32_t vlen = (uint32_t)b[pos + 7] << 24 | (uint32_t)b[pos + 8] << 16 |
                            (uint32_t)b[pos + 9] << 8 | b[pos + 10];
            fw_row_t row = {(const char *)b + pos + 11, vlen, false};
            unsigned char d[16];
            ref_sum[ref_rows] = row_md5(&row, d);
            row_end[ref_rows] = end;
            ref_rows++;
        }
        pos = end;
    }
    pthread_mutex_unlock(&proxy.mu);
    assert_int_equal(ref_rows, LIMIT);
    return 0;
}

/* stream_oracle.h's view oracle and sleep: this file has its own query and waits. */
static const oracle_t *(*const unused_view_oracle)(const char *, bool)
    __attribute__((unused)) = view_oracle;
static void (*const unused_sleep_ms)(long) __attribute__((unused)) = sleep_ms;

static int teardown(void **state)
{
    (void)state;
    fp_stop(&proxy);
    free(row_end);
    return 0;
}

/* Rows whose DataRow lies wholly within the first `off` bytes of the plaintext reply. */
static uint64_t rows_before(size_t off)
{
    uint64_t n = 0;
    while (n < ref_rows && row_end[n] <= off)
        n++;
    return n;
}

/* ---- cuts at many offsets ------------------------------------------------------------------ */

/* The cut's failure must say what happened to the connection. */
static bool cut_error_is_clear(const got_t *g)
{
    if (g->code == FW_ECLOSED)
        return strstr(g->err.message, "server closed the connection unexpectedly") != NULL;
    if (g->code == UV_ECONNRESET)
        return strstr(g->err.message, "reset") != NULL;
    return false;
}

static void cut_sweep(bool threaded, bool tls, fp_mode_t mode, long dflt_stride)
{
    /* Sanitizers make each case slower: half the cases. */
    long stride = env_long("FW_FAULT_STRIDE", dflt_stride * (SLOW > 1 ? 2 : 1));
    long span = env_long("FW_FAULT_SPAN", 65536);
    long later = env_long("FW_FAULT_LATER", 8);
    if (stride < 1)
        stride = 1;
    if (span > 65536)
        span = 65536;
    /* The offsets: every stride-th byte of the first span bytes, then `later` random offsets
     * further into the reply (fixed seed: the same run every time). */
    size_t n_off = (size_t)(span / stride) + (size_t)later;
    long *offs = calloc(n_off, sizeof(long));
    assert_non_null(offs);
    size_t k = 0;
    for (long off = stride; off <= span; off += stride)
        offs[k++] = off;
    uint32_t seed = 0x2545f491u ^ (uint32_t)mode ^ (threaded ? 0x100u : 0u) ^ (tls ? 0x200u : 0u);
    for (long i = 0; i < later && reply_len > 65536 + 256; i++) {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        offs[k++] = 65536 + (long)(seed % (uint32_t)(reply_len - 65536 - 256));
    }
    n_off = k;
    const char *what = mode == FP_RESET ? "reset" : "close";
    sess_t S;
    sess_init(&S, threaded, tls);
    fw_query_t *q = the_query(0);
    uint64_t t0 = uv_hrtime();
    long cases = 0, bad = 0, hangs = 0;
    double worst = 0, t_connect = 0, t_stream = 0, t_close = 0;
    char first[512] = "";
    for (size_t i = 0; i < n_off; i++, cases++) {
        long off = offs[i];
        uint64_t t1 = uv_hrtime();
        sess_connect(&S);
        t_connect += secs_since(t1);
        /* TLS: every other cut moves to the end of a TLS record, so that OpenSSL holds no
         * partial record when the end comes (a cut inside a record makes the reader ask the
         * socket again, which finds the end; a cut between records may not). */
        if (tls && i % 2 == 0)
            fp_arm_tls(&proxy, mode, (uint64_t)off);
        else
            fp_arm(&proxy, mode, (uint64_t)off, false);
        got_t g;
        /* A good run ends within a fraction of a second; a lost event never ends. */
        run_stream(&S, q, 5 * SLOW, &g);
        t_stream += g.secs;
        char why[1200] = "";
        if (g.hung)
            snprintf(why, sizeof(why), "hung (%" PRIu64 " rows, no end after %.0f s)", g.rows,
                     5 * SLOW);
        else if (g.code >= 0)
            snprintf(why, sizeof(why), "ended with %s after %" PRIu64 " rows", code_name(g.code),
                     g.rows);
        else if (!cut_error_is_clear(&g))
            snprintf(why, sizeof(why), "%s: %s", fw_err_name(g.code), g.err.message);
        else if (g.sums_ok != g.rows)
            snprintf(why, sizeof(why), "%" PRIu64 " rows, only %" PRIu64 " of them the reference's",
                     g.rows, g.sums_ok);
        /* Plaintext: exactly the rows wholly before the cut (the proxy waits until they are in
         * our receive queue before it resets). TLS: a prefix (a record cut in two is lost). */
        else if (!tls && g.rows != rows_before((size_t)off))
            snprintf(why, sizeof(why), "%" PRIu64 " rows delivered, %" PRIu64 " before the cut",
                     g.rows, rows_before((size_t)off));
        if (why[0] != '\0') {
            bad++;
            hangs += g.hung;
            printf("# %s %s at offset %ld: %s\n", S.name, what, off, why);
            if (first[0] == '\0')
                snprintf(first, sizeof(first), "offset %ld: %s", off, why);
        }
        if (g.secs > worst && !g.hung)
            worst = g.secs;
        t1 = uv_hrtime();
        sess_disconnect(&S);
        t_close += secs_since(t1);
    }
    fw_query_free(q);
    free(offs);
    sess_fini(&S);
    printf("# %s %s: %ld cuts (every %ld bytes up to %ld, %ld later), %.1f s (connect %.1f, "
           "stream %.1f, close %.1f), slowest end %.3f s\n",
           S.name, what, cases, stride, span, later, secs_since(t0), t_connect, t_stream, t_close,
           worst);
    if (bad > 0)
        fail_msg("%s %s: %ld of %ld cuts went wrong (%ld hung); the first at %s", S.name, what, bad,
                 cases, hangs, first);
}

/*
 * The issue asks for every 7th byte of the first 64 KB: 9,362 cuts per variant, about ten
 * minutes each here (a connection costs ~60 ms, most of it the server's backend start). The
 * suite keeps every offset a multiple of 7 but takes every 658th byte for resets (99 cuts per
 * variant) and every 1,638th for closes (40), plus 8 random later offsets each, so the binary
 * stays near a minute; FW_FAULT_STRIDE=7 runs the full sweep (docs/testing.md). The code
 * before the fix hung at ~1 in 6 of the reset offsets past the first 8 KiB.
 */
#define RESET_STRIDE (7 * 94)
#define CLOSE_STRIDE (7 * 234)

static void test_a_reset_at_every_7th_byte_fails_cleanly_threaded_plaintext(void **state)
{
    (void)state;
    cut_sweep(true, false, FP_RESET, RESET_STRIDE);
}

static void test_a_reset_at_every_7th_byte_fails_cleanly_embedded_plaintext(void **state)
{
    (void)state;
    cut_sweep(false, false, FP_RESET, RESET_STRIDE);
}

static void test_a_reset_at_every_7th_byte_fails_cleanly_threaded_tls(void **state)
{
    (void)state;
    cut_sweep(true, true, FP_RESET, RESET_STRIDE);
}

static void test_a_reset_at_every_7th_byte_fails_cleanly_embedded_tls(void **state)
{
    (void)state;
    cut_sweep(false, true, FP_RESET, RESET_STRIDE);
}

static void test_a_close_at_every_7th_byte_fails_cleanly_threaded_plaintext(void **state)
{
    (void)state;
    cut_sweep(true, false, FP_CLOSE, CLOSE_STRIDE);
}

static void test_a_close_at_every_7th_byte_fails_cleanly_embedded_plaintext(void **state)
{
    (void)state;
    cut_sweep(false, false, FP_CLOSE, CLOSE_STRIDE);
}

static void test_a_close_at_every_7th_byte_fails_cleanly_threaded_tls(void **state)
{
    (void)state;
    cut_sweep(true, true, FP_CLOSE, CLOSE_STRIDE);
}

static void test_a_close_at_every_7th_byte_fails_cleanly_embedded_tls(void **state)
{
    (void)state;
    cut_sweep(false, true, FP_CLOSE, CLOSE_STRIDE);
}

/* ---- a stall with the sockets open --------------------------------------------------------- */

/*
 * The proxy stops forwarding in the middle of the reply and holds both sockets open (a
 * half-open peer: nothing on the wire ever says the connection is gone). With an idle timeout
 * the stream fails with FW_ETIMEDOUT within idle + cancel timeout (the cancel reaches the
 * server, its answer cannot come back), after the rows before the stall; the connection is then
 * closed and everything is released (fds back, the embedded loop closes clean).
 */
static void stall_with_idle_timeout(bool threaded, bool tls)
{
    assert_true(fp_quiesce(&proxy));
    int fds0 = open_fds();
    sess_t S;
    sess_init(&S, threaded, tls);
    sess_connect(&S);
    fw_query_t *q = the_query(500);
    assert_int_equal(fw_query_cancel_timeout(q, 1000), 0);
    fp_arm(&proxy, FP_STALL, 40000, false);
    got_t g;
    run_stream(&S, q, 20 * SLOW, &g);
    fw_query_free(q);
    if (g.hung)
        fail_msg("%s: the idle timeout never ended the stalled stream (%" PRIu64 " rows)", S.name,
                 g.rows);
    if (g.code != FW_ETIMEDOUT)
        fail_msg("%s: ended with %s: %s", S.name, code_name(g.code), g.err.message);
    printf("# %s: stalled stream failed after %.2f s, %" PRIu64 " rows: %s\n", S.name, g.secs,
           g.rows, g.err.message);
    assert_true(g.secs >= 0.45);
    assert_true(g.secs < (0.5 + 1.0 + 1.5) * SLOW);
    assert_true(g.rows > 0 && g.rows < LIMIT);
    assert_int_equal(g.sums_ok, g.rows);
    assert_true(fp_fired(&proxy));
    sess_fini(&S);
    assert_true(fp_quiesce(&proxy));
    assert_int_equal(open_fds(), fds0);
}

static void test_a_stall_ends_with_the_idle_timeout_threaded_plaintext(void **state)
{
    (void)state;
    stall_with_idle_timeout(true, false);
}

static void test_a_stall_ends_with_the_idle_timeout_embedded_plaintext(void **state)
{
    (void)state;
    stall_with_idle_timeout(false, false);
}

static void test_a_stall_ends_with_the_idle_timeout_threaded_tls(void **state)
{
    (void)state;
    stall_with_idle_timeout(true, true);
}

static void test_a_stall_ends_with_the_idle_timeout_embedded_tls(void **state)
{
    (void)state;
    stall_with_idle_timeout(false, true);
}

/*
 * No idle timeout: the stream waits (rightly: nothing says the server is gone), but freeing
 * it and closing the connection must not wait for the silent peer.
 */
static void stall_without_timeout(bool threaded, bool tls)
{
    assert_true(fp_quiesce(&proxy));
    int fds0 = open_fds();
    sess_t S;
    sess_init(&S, threaded, tls);
    sess_connect(&S);
    fw_query_t *q = the_query(0);
    fp_arm(&proxy, FP_STALL, 40000, false);
    fw_stream_t *s = NULL;
    fw_error_t err;
    assert_int_equal(fw_stream_start(S.conn, q, threaded ? NULL : on_ready, NULL, &s, &err), 0);
    fw_query_free(q);
    got_t g;
    memset(&g, 0, sizeof(g));
    res_init(&g.r);
    uint64_t quiet = uv_hrtime();
    while (secs_since(quiet) < 0.5) { /* rows until the stall, then half a second of nothing */
        fw_row_t row;
        int k = threaded ? fw_stream_next(s, &row, 50) : fw_stream_try_next(s, &row);
        if (k == FW_ROW) {
            got_row(&g, &row);
            quiet = uv_hrtime();
        } else if (k == FW_AGAIN) {
            if (!threaded)
                uv_run(&S.loop, UV_RUN_ONCE);
        } else {
            fail_msg("%s: the stalled stream ended with %s", S.name, code_name(k));
        }
    }
    assert_true(fp_fired(&proxy));
    assert_true(g.rows > 0 && g.rows < LIMIT);
    assert_int_equal(g.sums_ok, g.rows);
    uint64_t t0 = uv_hrtime();
    fw_stream_free(s);
    double t_free = secs_since(t0);
    t0 = uv_hrtime();
    sess_disconnect(&S);
    double t_close = secs_since(t0);
    printf("# %s: %" PRIu64 " rows before the stall; free %.4f s, close %.4f s\n", S.name,
           g.rows, t_free, t_close);
    assert_true(t_free < 0.1 * SLOW);
    assert_true(t_close < 0.5 * SLOW);
    sess_fini(&S);
    assert_true(fp_quiesce(&proxy));
    assert_int_equal(open_fds(), fds0);
}

static void test_a_stall_without_a_timeout_frees_and_closes_at_once_threaded_plaintext(void **state)
{
    (void)state;
    stall_without_timeout(true, false);
}

static void test_a_stall_without_a_timeout_frees_and_closes_at_once_embedded_plaintext(void **state)
{
    (void)state;
    stall_without_timeout(false, false);
}

static void test_a_stall_without_a_timeout_frees_and_closes_at_once_threaded_tls(void **state)
{
    (void)state;
    stall_without_timeout(true, true);
}

static void test_a_stall_without_a_timeout_frees_and_closes_at_once_embedded_tls(void **state)
{
    (void)state;
    stall_without_timeout(false, true);
}

/* ---- a slow, bursty network ---------------------------------------------------------------- */

/*
 * Pieces of 1 to 100 bytes, one in eight followed by 1 to 3 ms (latency plus jitter): the
 * result equals psql's, in order, and an idle timeout well above the longest gap never fires.
 */
static void slow_network(bool threaded, bool tls)
{
    sess_t S;
    sess_init(&S, threaded, tls);
    sess_connect(&S);
    fw_query_t *q = the_query((uint32_t)(1000 * SLOW));
    pthread_mutex_lock(&proxy.mu);
    proxy.latency_us = 1000;
    proxy.jitter_us = 2000;
    proxy.slow_pieces = 0;
    pthread_mutex_unlock(&proxy.mu);
    fp_arm(&proxy, FP_SLOW, 0, false);
    got_t g;
    run_stream(&S, q, 120 * SLOW, &g);
    fw_query_free(q);
    pthread_mutex_lock(&proxy.mu);
    uint64_t pieces = proxy.slow_pieces;
    proxy.target = -1;
    pthread_mutex_unlock(&proxy.mu);
    if (g.code != FW_END)
        fail_msg("%s: ended with %s after %" PRIu64 " rows: %s", S.name, code_name(g.code), g.rows,
                 g.err.message);
    const oracle_t *o = oracle(ORACLE_SQL, false);
    if (g.r.rows != o->rows || g.r.sum != o->sum || g.r.bytes != o->bytes)
        fail_msg("%s: %" PRIu64 " rows, sum %" PRIu64 "; psql: %" PRIu64 " rows, sum %" PRIu64,
                 S.name, g.r.rows, g.r.sum, o->rows, o->sum);
    assert_int_equal(g.sums_ok, LIMIT); /* and in order */
    printf("# %s: %" PRIu64 " rows in %" PRIu64 " pieces, %.2f s\n", S.name, g.rows, pieces,
           g.secs);
    assert_true(pieces > 1000);
    sess_fini(&S);
}

static void test_a_slow_bursty_network_gives_the_exact_result_threaded_plaintext(void **state)
{
    (void)state;
    slow_network(true, false);
}

static void test_a_slow_bursty_network_gives_the_exact_result_embedded_plaintext(void **state)
{
    (void)state;
    slow_network(false, false);
}

static void test_a_slow_bursty_network_gives_the_exact_result_threaded_tls(void **state)
{
    (void)state;
    slow_network(true, true);
}

static void test_a_slow_bursty_network_gives_the_exact_result_embedded_tls(void **state)
{
    (void)state;
    slow_network(false, true);
}

/* ---- out of memory at every allocation ----------------------------------------------------- */

/* The allocator of the whole binary (installed in main, before fwire is used): libc's, counting
 * calls and live blocks, failing the call numbered oom_fail_at (0: none) once. */
static atomic_long oom_calls, oom_fail_at, oom_failed, oom_live;

static void *oom_malloc(void *ud, size_t size)
{
    (void)ud;
    long k = atomic_fetch_add(&oom_calls, 1) + 1;
    if (k == atomic_load(&oom_fail_at)) {
        atomic_fetch_add(&oom_failed, 1);
        return NULL;
    }
    void *p = malloc(size);
    if (p != NULL)
        atomic_fetch_add(&oom_live, 1);
    return p;
}

static void *oom_realloc(void *ud, void *ptr, size_t size)
{
    (void)ud;
    long k = atomic_fetch_add(&oom_calls, 1) + 1;
    if (k == atomic_load(&oom_fail_at)) {
        atomic_fetch_add(&oom_failed, 1);
        return NULL;
    }
    void *p = realloc(ptr, size);
    if (p != NULL && ptr == NULL)
        atomic_fetch_add(&oom_live, 1);
    return p;
}

static void oom_free(void *ud, void *ptr)
{
    (void)ud;
    if (ptr != NULL)
        atomic_fetch_sub(&oom_live, 1);
    free(ptr);
}

/*
 * Connect (straight to the server) and stream 20 rows, with the Nth allocation failing, for
 * N = 1, 2, ... until a run needs fewer than N allocations. Every run must end cleanly: the
 * connect fails, or the stream ends (FW_END, or a failure such as FW_ENOMEM); the rows that
 * come are the reference's; afterwards no block is live, the loop closes clean and no fd is
 * left. ASan adds: no crash, no double free, no leak.
 */
static void oom_every_allocation(bool threaded, bool tls)
{
    fw_query_t *q;
    assert_int_equal(fw_query_new(&q), 0);
    assert_int_equal(fw_query_relation(q, VIEW), 0);
    assert_int_equal(fw_query_limit(q, 20), 0);
    char port[16];
    snprintf(port, sizeof(port), "%s", env("FW_TEST_PORT"));
    uint16_t server = (uint16_t)strtol(port, NULL, 10);
    assert_true(fp_quiesce(&proxy));
    long n_max = env_long("FW_OOM_MAX", 100000);
    long base = -1, ends[4] = {0, 0, 0, 0}, runs = 0;
    int fds0 = -1;
    uint64_t t0 = uv_hrtime();
    const char *name = "";
    for (long n = 0; n <= n_max; n++) {
        /* n == 0: a warm-up run without failure (first-use allocations that live on). */
        if (n == 1) {
            assert_true(fp_quiesce(&proxy));
            base = atomic_load(&oom_live);
            fds0 = open_fds();
        }
        atomic_store(&oom_failed, 0);
        atomic_store(&oom_calls, 0);
        atomic_store(&oom_fail_at, n);
        sess_t S;
        int rc = sess_try_init(&S, threaded, tls);
        name = S.name;
        if (rc != 0) {
            assert_int_equal(rc, FW_ENOMEM);
            ends[3]++;
            runs++;
            continue;
        }
        rc = sess_connect_to(&S, server, "");
        got_t g;
        memset(&g, 0, sizeof(g));
        if (rc == 0) {
            run_stream(&S, q, 20 * SLOW, &g);
            if (g.hung)
                fail_msg("%s: allocation %ld failing: the stream hung", S.name, n);
            if (g.code >= 0 && g.rows != 20)
                fail_msg("%s: allocation %ld failing: %s after %" PRIu64 " rows", S.name, n,
                         code_name(g.code), g.rows);
            if (g.sums_ok != g.rows)
                fail_msg("%s: allocation %ld failing: rows that are not the reference's", S.name,
                         n);
            ends[g.code == FW_END ? 0 : g.code == FW_ENOMEM ? 1 : 2]++;
        } else {
            ends[3]++;
        }
        sess_fini(&S);
        atomic_store(&oom_fail_at, 0);
        long calls = atomic_load(&oom_calls);
        bool hit = atomic_load(&oom_failed) > 0;
        if (n == 0 && (rc != 0 || g.code != FW_END))
            fail_msg("%s: the run without failures: %s %s", S.name, code_name(rc != 0 ? rc : g.code),
                     rc != 0 ? S.err.message : g.err.message);
        if (n > 0) {
            runs++;
            long live = atomic_load(&oom_live);
            if (live != base)
                fail_msg("%s: allocation %ld failing: %ld blocks live afterwards, %ld before",
                         S.name, n, live, base);
            if (open_fds() != fds0)
                fail_msg("%s: allocation %ld failing: %d fds open afterwards, %d before", S.name,
                         n, open_fds(), fds0);
        }
        if (n > 0 && !hit) {
            assert_true(calls < n);
            break;
        }
        if (n == n_max && n_max == 100000)
            fail_msg("%s: still allocating after %ld failures", S.name, n);
    }
    fw_query_free(q);
    printf("# %s: %ld runs, one per allocation of connect + query: %ld completed, %ld FW_ENOMEM, "
           "%ld other stream failures, %ld failed connects; %.1f s\n",
           name, runs, ends[0], ends[1], ends[2], ends[3], secs_since(t0));
}

static void test_every_failing_allocation_ends_cleanly_embedded_plaintext(void **state)
{
    (void)state;
    oom_every_allocation(false, false);
}

static void test_every_failing_allocation_ends_cleanly_embedded_tls(void **state)
{
    (void)state;
    oom_every_allocation(false, true);
}

static void test_every_failing_allocation_ends_cleanly_threaded_plaintext(void **state)
{
    (void)state;
    oom_every_allocation(true, false);
}

static void test_every_failing_allocation_ends_cleanly_threaded_tls(void **state)
{
    (void)state;
    oom_every_allocation(true, true);
}

/* ---- a black-holed peer in a network namespace --------------------------------------------- */

/*
 * The proxy listens inside a network namespace of the test's own, reached over a veth pair
 * with a private /30 (10.213.x.y); the stream stalls mid-reply (the proxy holds it, its kernel
 * still answers keepalive probes: the stream must live on), then the namespace's end of the
 * veth goes down, so every packet to it vanishes. Keepalives, or tcp_user_timeout, must end
 * the stream within their configured bounds. Needs root and iproute2: skipped otherwise.
 */
static char ns_name[32], ns_host_if[16], ns_peer_if[16], ns_host_ip[20], ns_peer_ip[20];

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    char full[600];
    snprintf(full, sizeof(full), "%s >/dev/null 2>&1", cmd);
    return system(full);
}

static void ns_down(void)
{
    if (ns_name[0] != '\0') {
        /* Deleting one end deletes the pair; the namespace alone could outlive the test while
         * an orphaned socket in it retransmits into the black hole, keeping the veth. */
        sh("ip link del %s", ns_host_if);
        sh("ip netns del %s", ns_name);
    }
    ns_name[0] = '\0';
}

/* Makes the namespace and the veth pair; false (and a message) where that is not possible. */
static bool ns_up(void)
{
    static unsigned seq; /* a fresh name and /30 each time: deleting a veth takes a moment */
    unsigned id = ((unsigned)getpid() % 100000u) * 8u + (seq++ % 8u);
    snprintf(ns_name, sizeof(ns_name), "fwfault%u", id);
    snprintf(ns_host_if, sizeof(ns_host_if), "fwh%u", id);
    snprintf(ns_peer_if, sizeof(ns_peer_if), "fwn%u", id);
    unsigned net = (id % 16384u) * 4u; /* a /30 of 10.213.0.0/16 */
    snprintf(ns_host_ip, sizeof(ns_host_ip), "10.213.%u.%u", net / 256, net % 256 + 1);
    snprintf(ns_peer_ip, sizeof(ns_peer_ip), "10.213.%u.%u", net / 256, net % 256 + 2);
    if (geteuid() != 0 || sh("ip netns add %s", ns_name) != 0) {
        ns_name[0] = '\0';
        return false;
    }
    if (sh("ip link add %s type veth peer name %s", ns_host_if, ns_peer_if) != 0 ||
        sh("ip link set %s netns %s", ns_peer_if, ns_name) != 0 ||
        sh("ip addr add %s/30 dev %s", ns_host_ip, ns_host_if) != 0 ||
        sh("ip link set %s up", ns_host_if) != 0 ||
        sh("ip -n %s addr add %s/30 dev %s", ns_name, ns_peer_ip, ns_peer_if) != 0 ||
        sh("ip -n %s link set %s up", ns_name, ns_peer_if) != 0) {
        ns_down();
        return false;
    }
    return true;
}

/* A listening socket on the namespace's address: this thread enters the namespace to make it,
 * then returns (the socket stays in the namespace). */
static int ns_listen(void)
{
    char path[64];
    snprintf(path, sizeof(path), "/var/run/netns/%s", ns_name);
    int host = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    int ns = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(host >= 0 && ns >= 0);
    assert_int_equal(setns(ns, CLONE_NEWNET), 0);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    int ok = fd >= 0 && inet_pton(AF_INET, ns_peer_ip, &sa.sin_addr) == 1 &&
             bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(fd, 16) == 0;
    assert_int_equal(setns(host, CLONE_NEWNET), 0);
    close(host);
    close(ns);
    assert_true(ok);
    return fd;
}

static void black_hole(bool threaded, const char *tcp, double min_s, double max_s)
{
    if (!ns_up()) {
        printf("# skipped: no network namespace (needs root, iproute2 and `ip netns add`)\n");
        skip();
    }
    int fds0 = open_fds();
    fp_t np;
    fp_start_on(&np, (uint16_t)strtol(env("FW_TEST_PORT"), NULL, 10), ns_listen());
    sess_t S;
    sess_init(&S, threaded, false);
    char ci[1024];
    snprintf(ci, sizeof(ci),
             "host=%s port=%u dbname=%s user=%s sslmode=disable connect_timeout=10 keepalives=1 "
             "%s",
             ns_peer_ip, np.port, env("FW_TEST_DBNAME"), env("FW_TEST_USER_TRUST"), tcp);
    fw_conn_opts_t o;
    fw_conn_opts_init(&o);
    o.conninfo = ci;
    o.use_environment = false;
    if (threaded) {
        if (fw_conn_connect_sync(S.rt, &o, &S.conn, &S.err) != 0)
            fail_msg("connect through the namespace: %s", S.err.message);
    } else {
        assert_int_equal(fw_conn_new(&S.conn, &S.loop, &o, &S.err), 0);
        assert_int_equal(fw_conn_connect(S.conn, on_connect, &S), 0);
        live_run_until_counted(&S.loop, &S.connects, 30);
        if (S.connect_status != 0)
            fail_msg("connect through the namespace: %s", S.err.message);
    }
    fp_arm(&np, FP_STALL, 40000, false);
    fw_query_t *q = the_query(0);
    fw_stream_t *s = NULL;
    fw_error_t err;
    assert_int_equal(fw_stream_start(S.conn, q, threaded ? NULL : on_ready, NULL, &s, &err), 0);
    fw_query_free(q);
    got_t g;
    memset(&g, 0, sizeof(g));
    res_init(&g.r);
    /* Rows until the stall, then 2.5 s of stall with the peer alive: the stream must stay. */
    uint64_t quiet = uv_hrtime(), t0 = 0;
    bool holed = false;
    int end = 0;
    for (;;) {
        fw_row_t row;
        int k = threaded ? fw_stream_next(s, &row, 50) : fw_stream_try_next(s, &row);
        if (k == FW_ROW) {
            got_row(&g, &row);
            quiet = uv_hrtime();
            continue;
        }
        if (k != FW_AGAIN) {
            end = k;
            g.err = *fw_stream_error(s);
            break;
        }
        if (!threaded)
            uv_run(&S.loop, UV_RUN_ONCE);
        if (!holed && secs_since(quiet) > 2.5) {
            assert_true(fp_fired(&np));
            assert_int_equal(sh("ip -n %s link set %s down", ns_name, ns_peer_if), 0);
            holed = true;
            t0 = uv_hrtime();
        }
        if (holed && secs_since(t0) > 30 * SLOW)
            fail_msg("%s: the black-holed stream did not end in %.0f s", S.name, 30 * SLOW);
    }
    double secs = holed ? secs_since(t0) : 0;
    printf("# %s %s: ended %.2f s after the black hole with %s (%s), %" PRIu64 " rows\n", S.name,
           tcp, secs, code_name(end), g.err.message, g.rows);
    if (!holed)
        fail_msg("%s: the stream ended before the black hole (a live peer): %s", S.name,
                 g.err.message);
    assert_true(end == UV_ETIMEDOUT || end == UV_EHOSTUNREACH);
    assert_true(g.rows > 0 && g.sums_ok == g.rows);
    if (secs < min_s || secs > max_s * SLOW)
        fail_msg("%s %s: ended %.2f s after the black hole, expected %.1f..%.1f s", S.name, tcp,
                 secs, min_s, max_s * SLOW);
    fw_stream_free(s);
    sess_fini(&S);
    fp_stop(&np); /* its sockets in the namespace never hear the client's close */
    ns_down();
    assert_int_equal(open_fds(), fds0);
}

static int ns_teardown(void **state)
{
    (void)state;
    ns_down();
    return 0;
}

/* Keepalives after 1 s idle, every 1 s, 3 unanswered probes: the dead peer is found in
 * 1..(1 + 3) s plus scheduling, not in the OS's default two hours. */
static void test_keepalives_end_a_stream_to_a_black_holed_peer_threaded(void **state)
{
    (void)state;
    black_hole(true, "keepalives_idle=1 keepalives_interval=1 keepalives_count=3", 1.0, 6.0);
}

/* 1 s probes, 60 of them (a minute by keepalives alone), but tcp_user_timeout=2000: the kernel
 * ends the connection once 2 s have passed since the last ACK (the last probe answered, up to
 * 1 s before the black hole) with a probe unanswered: 1..3 s after it. */
static void test_tcp_user_timeout_ends_a_stream_to_a_black_holed_peer_embedded(void **state)
{
    (void)state;
    black_hole(false,
               "keepalives_idle=1 keepalives_interval=1 keepalives_count=60 tcp_user_timeout=2000",
               0.9, 6.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_reset_at_every_7th_byte_fails_cleanly_threaded_plaintext),
        cmocka_unit_test(test_a_reset_at_every_7th_byte_fails_cleanly_embedded_plaintext),
        cmocka_unit_test(test_a_reset_at_every_7th_byte_fails_cleanly_threaded_tls),
        cmocka_unit_test(test_a_reset_at_every_7th_byte_fails_cleanly_embedded_tls),
        cmocka_unit_test(test_a_close_at_every_7th_byte_fails_cleanly_threaded_plaintext),
        cmocka_unit_test(test_a_close_at_every_7th_byte_fails_cleanly_embedded_plaintext),
        cmocka_unit_test(test_a_close_at_every_7th_byte_fails_cleanly_threaded_tls),
        cmocka_unit_test(test_a_close_at_every_7th_byte_fails_cleanly_embedded_tls),
        cmocka_unit_test(test_a_stall_ends_with_the_idle_timeout_threaded_plaintext),
        cmocka_unit_test(test_a_stall_ends_with_the_idle_timeout_embedded_plaintext),
        cmocka_unit_test(test_a_stall_ends_with_the_idle_timeout_threaded_tls),
        cmocka_unit_test(test_a_stall_ends_with_the_idle_timeout_embedded_tls),
        cmocka_unit_test(test_a_stall_without_a_timeout_frees_and_closes_at_once_threaded_plaintext),
        cmocka_unit_test(test_a_stall_without_a_timeout_frees_and_closes_at_once_embedded_plaintext),
        cmocka_unit_test(test_a_stall_without_a_timeout_frees_and_closes_at_once_threaded_tls),
        cmocka_unit_test(test_a_stall_without_a_timeout_frees_and_closes_at_once_embedded_tls),
        cmocka_unit_test(test_a_slow_bursty_network_gives_the_exact_result_threaded_plaintext),
        cmocka_unit_test(test_a_slow_bursty_network_gives_the_exact_result_embedded_plaintext),
        cmocka_unit_test(test_a_slow_bursty_network_gives_the_exact_result_threaded_tls),
        cmocka_unit_test(test_a_slow_bursty_network_gives_the_exact_result_embedded_tls),
        cmocka_unit_test(test_every_failing_allocation_ends_cleanly_embedded_plaintext),
        cmocka_unit_test(test_every_failing_allocation_ends_cleanly_embedded_tls),
        cmocka_unit_test(test_every_failing_allocation_ends_cleanly_threaded_plaintext),
        cmocka_unit_test(test_every_failing_allocation_ends_cleanly_threaded_tls),
        cmocka_unit_test_teardown(test_keepalives_end_a_stream_to_a_black_holed_peer_threaded,
                                  ns_teardown),
        cmocka_unit_test_teardown(
            test_tcp_user_timeout_ends_a_stream_to_a_black_holed_peer_embedded, ns_teardown),
    };
    const fw_allocator_t counting = {oom_malloc, oom_realloc, oom_free, NULL};
    if (fw_allocator_set(&counting) != 0)
        return 1;
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *filter = getenv("FW_TEST_FILTER");
    if (filter != NULL && filter[0] != '\0')
        cmocka_set_test_filter(filter);
    return cmocka_run_group_tests(tests, setup, teardown);
}
