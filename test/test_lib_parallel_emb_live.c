/* SPDX-License-Identifier: MIT */
/*
 * Parallel streams (fw_query_parallel, issue 16) in embedded mode, against the harness's
 * PostgreSQL (test/with-pg.sh): the set-up (n connects, the snapshot's export, the split's
 * bounds, the parts' starts) runs as a state machine on this test's own libuv loop, driven by
 * uv_run; rows come through the rows-ready callback (fw_stream_try_next).
 *
 * The oracle is the threaded test's (test_lib_parallel_live.c): psql imports the stream's
 * snapshot while it is open and computes count, bytes and the order-insensitive sum of the
 * rows' MD5 prefixes (stream_oracle.h); the parts together must equal it. Cancel and free are
 * tried after every turn of the loop from the start until the parts run, so they land in
 * every phase of the set-up (connects in flight, the snapshot's statement, the key's range
 * statement); a counting allocator checks that each leaves no block behind, and the loop must
 * close with nothing left on it (ASan: no leak, no use after free).
 *
 * Sizes: bench_1m (ctid, and a keyed view over it), N = 1..4, in the plain build; bench_100k
 * under sanitizers.
 */
#define OPENSSL_SUPPRESS_DEPRECATED

#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/md5.h>
#include <uv.h>

#include "fwire.h"

#include "fakepg.h"
#include "stream_oracle.h"

static void psql(const char *sql, char *out, size_t cap)
{
    psql_as("FW_TEST_ADMIN", sql, out, cap);
}

#if defined(FW_SANITIZED)
#define BIG_TABLE "bench_100k"
#else
#define BIG_TABLE "bench_1m"
#endif

/* ---- the loop and the user's connection ---------------------------------------------------- */

typedef struct emb_s {
    uv_loop_t loop;
    uv_timer_t tick;
    fw_conn_t *conn;
    int connects, connect_status, closes;
    fw_error_t err;
} emb_t;

LIVE_CONN_CALLBACKS(emb_t)

static void emb_open(emb_t *E)
{
    memset(E, 0, sizeof(*E));
    live_loop_init(&E->loop, &E->tick);
    char ci[1024];
    live_conninfo(ci, sizeof(ci), false);
    fw_conn_opts_t o;
    fw_conn_opts_init(&o);
    o.conninfo = ci;
    o.use_environment = false;
    if (fw_conn_new(&E->conn, &E->loop, &o, &E->err) != 0)
        fail_msg("fw_conn_new: %s", E->err.message);
    assert_int_equal(fw_conn_connect(E->conn, on_connect, E), 0);
    live_run_until_counted(&E->loop, &E->connects, 10);
    if (E->connect_status != 0)
        fail_msg("connect: %s", E->err.message);
}

static void emb_close(emb_t *E)
{
    fw_conn_close(E->conn, on_closed, E);
    live_loop_drain(&E->loop, &E->tick, 10);
    assert_int_equal(E->closes, 1);
    assert_int_equal(uv_loop_close(&E->loop), 0); /* nothing of the stream's left on it */
}

/* ---- a reader: the rows-ready callback drains into a res_t ------------------------------------ */

typedef struct rd_s {
    fw_stream_t *s;
    res_t r;
    int calls, calls_after_end;
    bool done;
    uint64_t over_budget; /* polls that saw more receive memory than the n budgets */
    uint64_t cancel_at;   /* cancel from the callback once this many rows came (0: never) */
    uint64_t free_at;     /* free from the callback once this many rows came (0: never) */
} rd_t;

static void on_rows(fw_stream_t *s, void *ud)
{
    rd_t *d = ud;
    d->calls++;
    if (d->done) {
        d->calls_after_end++;
        return;
    }
    fw_row_t row;
    int rc;
    while ((rc = fw_stream_try_next(s, &row)) == FW_ROW) {
        res_row(&d->r, &row);
        if (d->r.rows % 4096 == 0) {
            fw_stream_stats_t mid;
            fw_stream_stats(s, &mid);
            d->over_budget += mid.bytes_buffered > mid.max_memory;
        }
        if (d->free_at != 0 && d->r.rows == d->free_at) {
            fw_stream_free(s); /* inside the callback of one of its parts */
            d->s = NULL;
            d->done = true;
            return;
        }
        if (d->cancel_at != 0 && d->r.rows == d->cancel_at)
            assert_int_equal(fw_stream_cancel(s), 0); /* at once; the end comes later */
    }
    if (rc == FW_AGAIN || rc == FW_PAUSED)
        return;
    d->r.code = rc;
    if (rc < 0)
        d->r.err = *fw_stream_error(s);
    fw_stream_stats(s, &d->r.stats);
    res_finish(&d->r);
    d->done = true;
}

static fw_query_t *par_query(const char *relation, const char *key, int n)
{
    fw_query_t *q;
    assert_int_equal(fw_query_new(&q), 0);
    assert_int_equal(fw_query_relation(q, relation), 0);
    assert_int_equal(fw_query_parallel(q, n), 0);
    if (key != NULL)
        assert_int_equal(fw_query_partition_key(q, key), 0);
    return q;
}

/* When set, start() takes the stream's connection from this pool (fw_pool_stream_start: the
 * parts' other connections come from it too). */
static fw_pool_t *g_pool;

typedef struct acq_s {
    fw_conn_t *c;
    int status;
    bool done;
} acq_t;

static void on_acquired(fw_pool_t *pool, fw_conn_t *c, int status, const fw_error_t *err,
                        void *ud)
{
    (void)pool;
    (void)err;
    acq_t *a = ud;
    a->c = c;
    a->status = status;
    a->done = true;
}

static fw_conn_t *pool_acquire(emb_t *E)
{
    acq_t a = {NULL, 1, false};
    assert_int_equal(fw_pool_acquire(g_pool, FW_POOL_READ, on_acquired, &a), 0);
    live_run_until(&E->loop, "pool acquire", &a.done, 30, "the acquire's answer");
    assert_int_equal(a.status, 0);
    return a.c;
}

/* Starts q (freed at once: the stream keeps a copy) with d as the reader. */
static void start(emb_t *E, fw_query_t *q, rd_t *d)
{
    memset(d, 0, sizeof(*d));
    res_init(&d->r);
    int rc = g_pool != NULL
                 ? fw_pool_stream_start(g_pool, pool_acquire(E), q, on_rows, d, &d->s, &E->err)
                 : fw_stream_start(E->conn, q, on_rows, d, &d->s, &E->err);
    fw_query_free(q);
    if (rc != 0)
        fail_msg("parallel start: %s", E->err.message);
    assert_non_null(d->s);
}

static void run_until_done(emb_t *E, rd_t *d, const char *what)
{
    live_run_until(&E->loop, what, &d->done, 120, "the stream's end");
}

/* Runs the loop for `ms` (stretched), whatever happens. */
static void run_for(emb_t *E, double ms)
{
    uint64_t t0 = uv_hrtime();
    while (secs_since(t0) < ms * SLOW / 1000)
        uv_run(&E->loop, UV_RUN_ONCE);
}

/* Runs the loop until every block fwire held at `live0` is all it holds again (the parts'
 * connections close on the loop after fw_stream_free); fails after 10 s (stretched). */
static void settle(emb_t *E, int64_t live0, const char *what)
{
    uint64_t t0 = uv_hrtime();
    while (live_now() != live0 && secs_since(t0) < 10 * SLOW)
        uv_run(&E->loop, UV_RUN_ONCE);
    if (live_now() != live0)
        fail_msg("%s: %" PRId64 " blocks left", what, live_now() - live0);
}

/* ---- the big table by ctid and as a keyed view, N = 1..4 ----------------------------------- */

static void check_at_snapshot(emb_t *E, const char *relation, const char *key, int n,
                              oracle_t *at_out)
{
    rd_t d;
    start(E, par_query(relation, key, n), &d);
    assert_int_equal(fw_stream_parts(d.s), n);
    /* The snapshot is known once the set-up is over (before any row). */
    uint64_t t0 = uv_hrtime();
    while (fw_stream_snapshot(d.s) == NULL && !d.done) {
        if (secs_since(t0) > 30 * SLOW)
            fail_msg("%s: the set-up did not finish", relation);
        uv_run(&E->loop, UV_RUN_ONCE);
    }
    if (d.done)
        fail_msg("%s, %d parts: %s (%s)", relation, n, code_name(d.r.code), d.r.err.message);
    char snap[64], select[256];
    snprintf(snap, sizeof(snap), "%s", fw_stream_snapshot(d.s));
    snprintf(select, sizeof(select), "SELECT data FROM %s", relation);
    oracle_t at;
    oracle_at(snap, select, &at); /* blocks the loop meanwhile: the parts wait in their budget */
    run_until_done(E, &d, relation);
    if (d.r.code != FW_END)
        fail_msg("%s, %d parts: %s (%s)", relation, n, code_name(d.r.code), d.r.err.message);
    uint64_t parts_rows = 0;
    for (int i = 0; i < n; i++) {
        fw_stream_stats_t part;
        assert_int_equal(fw_stream_part_stats(d.s, i, &part), 0);
        assert_int_equal(part.state, FW_STREAM_COMPLETED);
        parts_rows += part.rows_yielded;
    }
    run_for(E, 50);
    assert_int_equal(d.calls_after_end, 0);
    fw_stream_free(d.s);
    print_message("embedded %s key=%s N=%d: %" PRIu64 " rows in %d callbacks, snapshot %s: "
                  "server %" PRIu64 " rows\n",
                  relation, key != NULL ? key : "(ctid)", n, d.r.rows, d.calls, snap, at.rows);
    *at_out = at;
    assert_int_equal(d.r.rows, at.rows);
    assert_int_equal(d.r.bytes, at.bytes);
    assert_int_equal(d.r.sum, at.sum);
    assert_int_equal(d.r.stats.rows_yielded, d.r.rows);
    assert_int_equal(parts_rows, d.r.rows);
    assert_int_equal(d.r.stats.state, FW_STREAM_COMPLETED);
    assert_int_equal(d.r.stats.max_memory, (uint64_t)n * 4 * 1024 * 1024);
    assert_int_equal(d.over_budget, 0);
}

/* v_par_emb_keyed: the big table as a view with its key (id) beside data. */
static void make_keyed_view(void)
{
    char out[256];
    psql("CREATE OR REPLACE VIEW v_par_emb_keyed AS SELECT id, data FROM " BIG_TABLE ";\n"
         "GRANT SELECT ON v_par_emb_keyed TO PUBLIC;\n",
         out, sizeof(out));
}

static void test_emb_ctid_and_keyed_view_equal_the_server_n1_to_4(void **state)
{
    (void)state;
    make_keyed_view();
    emb_t E;
    emb_open(&E);
    for (int n = 1; n <= 4; n++) {
        oracle_t at;
        check_at_snapshot(&E, BIG_TABLE, NULL, n, &at);
        assert_true(at.rows >= 100000);
        check_at_snapshot(&E, "v_par_emb_keyed", "id", n, &at);
        assert_true(at.rows >= 100000);
    }
    emb_close(&E);
}

/* ---- parts from a pool ------------------------------------------------------------------ */

/* Runs the loop until the pool has every connection back and none is inside a transaction. */
static void wait_pool_clean(emb_t *E, fw_pool_t *pool, const char *app)
{
    fw_pool_stats_t st;
    uint64_t t0 = uv_hrtime();
    while (secs_since(t0) < 10 * SLOW) {
        for (int i = 0; i < 20; i++)
            uv_run(&E->loop, UV_RUN_NOWAIT);
        assert_int_equal(fw_pool_stats(pool, &st), 0);
        if (st.in_use == 0 && backends_not_idle(app) == 0)
            return;
    }
    fail_msg("after fw_stream_free: %u connection(s) in use, %d backend(s) not idle", st.in_use,
             backends_not_idle(app));
}

static void on_pool_closed(fw_pool_t *pool, void *ud)
{
    (void)pool;
    *(bool *)ud = true;
}

static fw_pool_t *pool_open(emb_t *E, const char *ci)
{
    fw_pool_opts_t po = pool_opts(ci, "parallel-emb");
    fw_pool_t *pool = NULL;
    if (fw_pool_new(&pool, &E->loop, &po, &E->err) != 0)
        fail_msg("pool: %s", E->err.message);
    return pool;
}

static void pool_close(emb_t *E, fw_pool_t *pool)
{
    bool closed = false;
    fw_pool_close(pool, on_pool_closed, &closed);
    live_run_until(&E->loop, "pool close", &closed, 30, "the pool's close");
}

static void test_emb_from_a_pool_reuses_its_connections_and_ends_their_transactions(void **state)
{
    (void)state;
    make_keyed_view();
    emb_t E;
    emb_open(&E);
    int64_t live0 = live_now();
    char ci[1024];
    pool_conninfo(ci, sizeof(ci), "fw_par_pool_emb", false);
    fw_pool_t *pool = pool_open(&E, ci);
    g_pool = pool;
    oracle_t at;
    for (int round = 0; round < 2; round++) {
        for (int n = 1; n <= 3; n++) {
            check_at_snapshot(&E, BIG_TABLE, NULL, n, &at);
            wait_pool_clean(&E, pool, "fw_par_pool_emb");
        }
        check_at_snapshot(&E, "v_par_emb_keyed", "id", 3, &at);
        wait_pool_clean(&E, pool, "fw_par_pool_emb");
    }
    /* Freed from its callback after a few rows: the parts are cancelled, and the connections
     * come back clean all the same. */
    rd_t d;
    start(&E, par_query(BIG_TABLE, NULL, 3), &d);
    d.free_at = 10;
    run_until_done(&E, &d, "free after 10 rows");
    wait_pool_clean(&E, pool, "fw_par_pool_emb");
    /* Freed during the set-up (right after the start: the acquires are still out). */
    start(&E, par_query(BIG_TABLE, NULL, 3), &d);
    fw_stream_free(d.s);
    wait_pool_clean(&E, pool, "fw_par_pool_emb");
    check_at_snapshot(&E, BIG_TABLE, NULL, 3, &at);
    wait_pool_clean(&E, pool, "fw_par_pool_emb");
    fw_pool_stats_t st;
    check_pool_reused(pool, &st);
    g_pool = NULL;
    pool_close(&E, pool);

    /* A pool of two hosts (the same server twice): the parts come from the first part's host
     * (test_lib_parallel_repl_live.c shows it with three servers). */
    pool_conninfo(ci, sizeof(ci), NULL, true);
    pool = pool_open(&E, ci);
    g_pool = pool;
    check_at_snapshot(&E, BIG_TABLE, NULL, 2, &at);
    wait_pool_clean(&E, pool, "none");
    g_pool = NULL;
    pool_close(&E, pool);
    settle(&E, live0, "the pools' streams");
    emb_close(&E);
}

/* While a writer deletes, inserts and updates rows (test_lib_parallel_live.c has the same in
 * threaded mode): the parts read the snapshot, and the table did change meanwhile. */
static void test_emb_reads_its_snapshot_while_a_writer_writes(void **state)
{
    (void)state;
    char out[256];
    emb_t E;
    emb_open(&E);
    for (int mode = 0; mode < 2; mode++) {
        for (int n = 2; n <= 4; n += 2) {
            psql("DROP VIEW IF EXISTS v_par_we; DROP TABLE IF EXISTS par_we;\n"
                 "CREATE TABLE par_we AS SELECT id, data FROM bench_100k;\n"
                 "CREATE INDEX ON par_we (id);\n"
                 "CREATE VIEW v_par_we AS SELECT id, data FROM par_we;\n"
                 "GRANT SELECT ON par_we, v_par_we TO PUBLIC;\n",
                 out, sizeof(out));
            FILE *w = writer_start("par_we");
            oracle_t at, after;
            check_at_snapshot(&E, mode == 0 ? "par_we" : "v_par_we", mode == 0 ? NULL : "id", n,
                              &at);
            assert_int_equal(writer_stop(w, "par_we"), 0);
            oracle_now("SELECT data FROM par_we", &after);
            assert_true(after.sum != at.sum || after.rows != at.rows);
        }
    }
    psql("DROP VIEW IF EXISTS v_par_we; DROP TABLE IF EXISTS par_we;", out, sizeof(out));
    emb_close(&E);
}

/* ---- ordered by the key; an error in one part ---------------------------------------------- */

static void test_emb_ordered_by_key_delivers_key_order(void **state)
{
    (void)state;
    emb_t E;
    emb_open(&E);
    fw_query_t *q = par_query("v_par_emb_100k", "id", 3);
    assert_int_equal(fw_query_order_by(q, "id", NULL, false), 0);
    rd_t d;
    start(&E, q, &d);
    run_until_done(&E, &d, "ordered");
    assert_int_equal(d.r.code, FW_END);
    fw_stream_free(d.s);
    assert_int_equal(d.r.rows, 100000);
    assert_int_equal(d.r.with_id, 100000);
    assert_int_equal(d.r.first_id, 1);
    assert_int_equal(d.r.descents, 0);
    assert_int_equal(d.r.breaks, 0); /* 1, 2, 3, ... 100000: every id once, in order */
    emb_close(&E);
}

static void test_emb_error_in_one_part_is_reported_after_its_rows(void **state)
{
    (void)state;
    emb_t E;
    emb_open(&E);
    fw_query_t *q = par_query("v_par_emb_100k", "id", 3);
    /* Division by zero at id 90000 only: in the last part (ids from 66667). */
    assert_int_equal(fw_query_where_sql(q, "1 / (id - 90000) IS NOT NULL OR id = 90000"), 0);
    rd_t d;
    start(&E, q, &d);
    run_until_done(&E, &d, "error");
    assert_int_equal(d.r.code, FW_ESERVER);
    assert_string_equal(d.r.err.sqlstate, "22012");
    assert_non_null(strstr(d.r.err.message, "part 2 of 3"));
    assert_true(d.r.rows < 100000);
    assert_int_equal(d.r.stats.state, FW_STREAM_FAILED);
    fw_row_t row;
    assert_int_equal(fw_stream_try_next(d.s, &row), FW_ESERVER); /* sticky */
    run_for(&E, 200); /* the other parts' cancels end: the user hears nothing more */
    assert_int_equal(d.calls_after_end, 0);
    fw_stream_free(d.s);
    emb_close(&E);
}

/* ---- control while running: pause before the parts run, cancel, free in the callback ------- */

static void test_emb_pause_during_setup_cancel_and_free_while_running(void **state)
{
    (void)state;
    emb_t E;
    emb_open(&E);
    /* paused at once: the set-up completes, the parts start paused, no row until resume */
    int64_t live0 = live_now();
    rd_t d;
    start(&E, par_query("bench_100k", NULL, 3), &d);
    assert_int_equal(fw_stream_pause(d.s), 0);
    fw_stream_stats_t st;
    fw_stream_stats(d.s, &st);
    assert_int_equal(st.state, FW_STREAM_PAUSED);
    run_for(&E, 500);
    assert_non_null(fw_stream_snapshot(d.s));
    fw_row_t row;
    int rc = fw_stream_try_next(d.s, &row);
    uint64_t early = d.r.rows;
    while (rc == FW_ROW) { /* what a part read before its pause took effect */
        early++;
        rc = fw_stream_try_next(d.s, &row);
    }
    assert_int_equal(rc, FW_PAUSED);
    assert_true(early < 100000);
    d.r.rows = 0;
    assert_int_equal(fw_stream_resume(d.s), 0);
    run_until_done(&E, &d, "resumed");
    assert_int_equal(d.r.code, FW_END);
    assert_int_equal(d.r.rows + early, 100000);
    assert_int_equal(fw_stream_pause(d.s), FW_ESTATE);
    fw_stream_free(d.s);
    settle(&E, live0, "free after the end");

    /* cancel from the callback after 1000 rows: returns at once, then FW_ECANCELED once */
    start(&E, par_query(BIG_TABLE, NULL, 4), &d);
    d.cancel_at = 1000;
    run_until_done(&E, &d, "cancel");
    assert_int_equal(d.r.code, FW_ECANCELED);
    assert_int_equal(d.r.rows, 1000);
    assert_int_equal(d.r.stats.state, FW_STREAM_CANCELLED);
    assert_int_equal(fw_stream_try_next(d.s, &row), FW_ECANCELED);
    run_for(&E, 100);
    assert_int_equal(d.calls_after_end, 0);
    fw_stream_free(d.s);
    settle(&E, live0, "free after a cancel");

    /* free from inside the callback mid-stream: no callback after it, nothing left behind */
    start(&E, par_query(BIG_TABLE, NULL, 2), &d);
    d.free_at = 100;
    run_until_done(&E, &d, "free in callback");
    int calls = d.calls;
    run_for(&E, 200);
    assert_int_equal(d.calls, calls);
    settle(&E, live0, "free in the callback");

    /* the user's connection ran nothing and is still usable */
    fw_query_t *q;
    assert_int_equal(fw_query_new(&q), 0);
    assert_int_equal(fw_query_relation(q, "bench_1k"), 0);
    start(&E, q, &d);
    run_until_done(&E, &d, "after");
    assert_int_equal(d.r.code, FW_END);
    assert_int_equal(d.r.rows, 1000);
    assert_int_equal(fw_stream_parts(d.s), 1);
    assert_null(fw_stream_snapshot(d.s));
    fw_stream_free(d.s);
    emb_close(&E);
}

/*
 * A part whose rows and end came in one read (a table of five rows: one part has them all),
 * read through the chunk the parallel stream lends its own row path (par_fast), cancelled from
 * the callback after its first row: nothing more comes. (A review found the rest of that
 * chunk still coming after the cancel: an ended part's cancel does not drain its queue.)
 */
static void test_emb_cancel_inside_an_ended_parts_chunk_delivers_nothing_more(void **state)
{
    (void)state;
    emb_t E;
    emb_open(&E);
    int64_t live0 = live_now();
    rd_t d;
    start(&E, par_query("fixture_rows", NULL, 2), &d);
    d.cancel_at = 1;
    run_until_done(&E, &d, "cancel inside an ended part's chunk");
    assert_int_equal(d.r.code, FW_ECANCELED);
    assert_int_equal(d.r.rows, 1);
    fw_row_t row;
    assert_int_equal(fw_stream_try_next(d.s, &row), FW_ECANCELED);
    fw_stream_free(d.s);
    settle(&E, live0, "free after the cancel");
    emb_close(&E);
}

/* ---- cancel and free at every turn of the loop during the set-up ------------------------------ */

/*
 * Starts a parallel read of `relation`, runs `turns` turns of the loop (UV_RUN_ONCE), then
 * cancels (free == false: FW_ECANCELED through the callback, no row if the parts were not
 * running yet) or frees it; then every block the stream allocated must come back. Returns
 * whether the parts were running at the cancel or free (the snapshot was known).
 */
static bool stop_after(emb_t *E, const char *relation, const char *key, int n, int turns,
                       bool free)
{
    int64_t live0 = live_now();
    rd_t d;
    start(E, par_query(relation, key, n), &d);
    for (int i = 0; i < turns && !d.done; i++)
        uv_run(&E->loop, UV_RUN_ONCE);
    bool running = fw_stream_snapshot(d.s) != NULL;
    uint64_t rows = d.r.rows;
    if (d.done) { /* a small relation read to its end already */
        assert_int_equal(d.r.code, FW_END);
        fw_stream_free(d.s);
    } else if (free) {
        int calls = d.calls;
        fw_stream_free(d.s);
        run_for(E, 20);
        assert_int_equal(d.calls, calls); /* nobody calls a freed stream's callback */
    } else {
        assert_int_equal(fw_stream_cancel(d.s), 0);
        run_until_done(E, &d, "cancel in the set-up");
        if (d.r.code != FW_ECANCELED)
            fail_msg("turn %d: %s (%s)", turns, code_name(d.r.code), d.r.err.message);
        assert_int_equal(d.r.rows, rows); /* no row after the cancel */
        if (!running)
            assert_int_equal(d.r.rows, 0);
        fw_row_t row;
        assert_int_equal(fw_stream_try_next(d.s, &row), FW_ECANCELED);
        run_for(E, 20);
        assert_int_equal(d.calls_after_end, 0);
        fw_stream_free(d.s);
    }
    char what[64];
    snprintf(what, sizeof(what), "%s after %d turns", free ? "free" : "cancel", turns);
    settle(E, live0, what);
    return running;
}

static void test_emb_cancel_and_free_at_every_turn_of_the_setup(void **state)
{
    (void)state;
    emb_t E;
    emb_open(&E);
    /* par_emb_raw has no statistics: the key's set-up takes two statements (histogram, then
     * min and max), the ctid one takes one. */
    const char *rel[] = {"v_par_emb_raw", "bench_100k"};
    const char *key[] = {"id", NULL};
    for (int r = 0; r < 2; r++) {
        for (int mode = 0; mode < 2; mode++) {
            int setup_turns = 0, after = 0;
            for (int turns = 0; turns < 200 && after < 3; turns++) {
                if (stop_after(&E, rel[r], key[r], 3, turns, mode == 1))
                    after++;
                else
                    setup_turns++;
            }
            print_message("%s: %s in the set-up at %d turns of the loop, then 3 while running\n",
                          rel[r], mode == 1 ? "freed" : "cancelled", setup_turns);
            assert_true(setup_turns >= 2); /* at least: connects in flight, and after */
            assert_int_equal(after, 3);
        }
    }
    emb_close(&E);
}

/* ---- what is refused: before any row -------------------------------------------------------- */

/* Refused by fw_stream_start itself (nothing connects). */
static void expect_refused_now(emb_t *E, fw_query_t *q, const char *needle)
{
    fw_stream_t *s = (fw_stream_t *)1;
    int rc = fw_stream_start(E->conn, q, on_rows, NULL, &s, &E->err);
    fw_query_free(q);
    assert_int_equal(rc, FW_EINVAL);
    assert_null(s);
    if (strstr(E->err.message, needle) == NULL)
        fail_msg("message without '%s': %s", needle, E->err.message);
}

/* Refused once the server has answered the set-up: the stream's failure, before any row. */
static void expect_failed(emb_t *E, fw_query_t *q, int code, const char *needle)
{
    rd_t d;
    start(E, q, &d);
    run_until_done(E, &d, needle);
    if (d.r.code != code)
        fail_msg("expected %s, got %s: %s", fw_err_name(code), code_name(d.r.code),
                 d.r.err.message);
    assert_int_equal(d.r.rows, 0);
    assert_int_equal(d.r.stats.state, code == FW_ECANCELED ? FW_STREAM_CANCELLED
                                                           : FW_STREAM_FAILED);
    if (strstr(d.r.err.message, needle) == NULL)
        fail_msg("message without '%s': %s", needle, d.r.err.message);
    assert_int_equal(d.calls, 1);
    fw_stream_free(d.s);
}

static void test_emb_refuses_what_it_cannot_split_before_any_row(void **state)
{
    (void)state;
    emb_t E;
    emb_open(&E);
    fw_query_t *q = par_query("bench_1k", NULL, 2);
    assert_int_equal(fw_query_limit(q, 10), 0);
    expect_refused_now(&E, q, "LIMIT");
    q = par_query("bench_1k", NULL, 2);
    assert_int_equal(fw_query_explain(q, true), 0);
    expect_refused_now(&E, q, "EXPLAIN");
    q = par_query("bench_1k", NULL, 2);
    assert_int_equal(fw_query_order_by(q, "data->>'name'", NULL, false), 0);
    expect_refused_now(&E, q, "partition key");

    expect_failed(&E, par_query("v_bench_1k", NULL, 2), FW_EINVAL, "fw_query_partition_key");
    expect_failed(&E, par_query("bench_1k", "data", 2), FW_EINVAL, "integer column");
    expect_failed(&E, par_query("bench_1k", "nope", 2), FW_EINVAL, "no column \"nope\"");
    expect_failed(&E, par_query("no_such_table", NULL, 2), FW_ESERVER, "no_such_table");
    emb_close(&E);
}

/* A fake server that answers the user's connection and no other: the parts' connects time out
 * (connect_timeout), and that is the stream's failure, before any row, through the callback. */
static const uint8_t STARTUP_OK[] = {'R', 0, 0, 0, 8, 0, 0, 0, 0,   'K', 0, 0, 0, 12,
                                     0,   0, 0, 7, 0, 0, 0, 9, 'Z', 0,   0, 0, 5, 'I'};

static void test_emb_parts_that_cannot_connect_fail_the_stream_before_any_row(void **state)
{
    (void)state;
    fakepg_t f;
    memset(&f, 0, sizeof(f));
    f.startup_reply = STARTUP_OK;
    f.startup_reply_len = sizeof(STARTUP_OK);
    assert_int_equal(fakepg_start(&f), 0);
    emb_t E;
    memset(&E, 0, sizeof(E));
    live_loop_init(&E.loop, &E.tick);
    char ci[256];
    snprintf(ci, sizeof(ci),
             "host=127.0.0.1 port=%d user=u dbname=d sslmode=disable connect_timeout=2", f.port);
    fw_conn_opts_t o;
    fw_conn_opts_init(&o);
    o.conninfo = ci;
    o.use_environment = false;
    assert_int_equal(fw_conn_new(&E.conn, &E.loop, &o, &E.err), 0);
    assert_int_equal(fw_conn_connect(E.conn, on_connect, &E), 0);
    live_run_until_counted(&E.loop, &E.connects, 10);
    assert_int_equal(E.connect_status, 0);
    int64_t live0 = live_now();
    rd_t d;
    start(&E, par_query("t", NULL, 3), &d);
    live_run_until(&E.loop, "connect failure", &d.done, 30, "the stream's failure");
    assert_int_equal(d.r.code, FW_ETIMEDOUT);
    if (strstr(d.r.err.message, "parallel stream, connecting the parts: connection ") == NULL)
        fail_msg("message: %s", d.r.err.message);
    assert_int_equal(d.r.rows, 0);
    assert_int_equal(d.calls, 1);
    assert_null(fw_stream_snapshot(d.s));
    fw_stream_stats_t st;
    assert_int_equal(fw_stream_part_stats(d.s, 0, &st), FW_ESTATE);
    fw_stream_free(d.s);
    settle(&E, live0, "after the connect failure");
    emb_close(&E);
    fakepg_stop(&f);
}

static int group_setup(void **state)
{
    (void)state;
    char out[256];
    psql("CREATE OR REPLACE VIEW v_par_emb_100k AS SELECT id, data FROM bench_100k;\n"
         "DROP VIEW IF EXISTS v_par_emb_raw; DROP TABLE IF EXISTS par_emb_raw;\n"
         "CREATE TABLE par_emb_raw (id bigint, data jsonb) WITH (autovacuum_enabled = false);\n"
         "INSERT INTO par_emb_raw SELECT g, jsonb_build_object('id', g) "
         "FROM generate_series(1, 3000) AS g;\n"
         "CREATE VIEW v_par_emb_raw AS SELECT id, data FROM par_emb_raw;\n"
         "GRANT SELECT ON v_par_emb_100k, par_emb_raw, v_par_emb_raw TO PUBLIC;\n",
         out, sizeof(out));
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    char out[256];
    psql("DROP VIEW IF EXISTS v_par_emb_raw; DROP TABLE IF EXISTS par_emb_raw;\n", out,
         sizeof(out));
    return 0;
}

int main(void)
{
    /* Every block fwire allocates is counted: a cancel or free must give them all back. */
    static const fw_allocator_t counting = {count_malloc, count_realloc, count_free, NULL};
    assert_int_equal(fw_allocator_set(&counting), 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_emb_refuses_what_it_cannot_split_before_any_row),
        cmocka_unit_test(test_emb_parts_that_cannot_connect_fail_the_stream_before_any_row),
        cmocka_unit_test(test_emb_cancel_and_free_at_every_turn_of_the_setup),
        cmocka_unit_test(test_emb_pause_during_setup_cancel_and_free_while_running),
        cmocka_unit_test(test_emb_cancel_inside_an_ended_parts_chunk_delivers_nothing_more),
        cmocka_unit_test(test_emb_error_in_one_part_is_reported_after_its_rows),
        cmocka_unit_test(test_emb_ordered_by_key_delivers_key_order),
        cmocka_unit_test(test_emb_reads_its_snapshot_while_a_writer_writes),
        cmocka_unit_test(test_emb_from_a_pool_reuses_its_connections_and_ends_their_transactions),
        cmocka_unit_test(test_emb_ctid_and_keyed_view_equal_the_server_n1_to_4),
    };
    (void)view_oracle; /* stream_oracle.h helpers this file does not need */
    const char *filter = getenv("FW_TEST_FILTER"); /* the matching cases only */
    if (filter != NULL && filter[0] != '\0')
        cmocka_set_test_filter(filter);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
