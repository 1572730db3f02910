/* SPDX-License-Identifier: MIT */
/*
 * Parallel streams (fw_query_parallel, issue 16) against the harness's PostgreSQL
 * (test/with-pg.sh), threaded mode.
 *
 * The oracle is the server's own answer AT THE SAME SNAPSHOT: while the parallel stream is
 * open, psql imports its snapshot (fw_stream_snapshot: SET TRANSACTION SNAPSHOT) in a
 * session of its own and computes the count, the bytes and the sum of each row's MD5 prefix
 * (stream_oracle.h) over the same relation; what the parts delivered together must equal it.
 * The same runs with a concurrent writer (psql in the background deleting, inserting and
 * updating rows, an UPDATE moving a row to the end of the table): the snapshot must win, and
 * the relation must have changed meanwhile (checked: the answer after the stream differs).
 *
 * Sizes: bench_1m (1,000,000 rows) by ctid and as a keyed view, N = 1..4, in the plain build;
 * under sanitizers bench_100k (100,000), so the ASan and TSan runs stay within minutes.
 * Embedded mode (the set-up as a state machine on the caller's loop) is tested in
 * test_lib_parallel_emb_live.c.
 */
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
#include <unistd.h>

#include <cmocka.h>
#include <openssl/md5.h>
#include <uv.h>

#include "fwire.h"

#include "gather.h"
#include "stream_oracle.h"

/* DDL and the writer run as the admin; what is read is readable by the trust user. */
static void psql(const char *sql, char *out, size_t cap)
{
    psql_as("FW_TEST_ADMIN", sql, out, cap);
}

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define FW_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define FW_SANITIZED 1
#endif
#endif
#if defined(FW_SANITIZED)
#define BIG_TABLE "bench_100k"
#define SLOW      5.0
#else
#define BIG_TABLE "bench_1m"
#define SLOW      1.0
#endif

typedef struct sess_s {
    fw_runtime_t *rt;
    fw_conn_t *conn;
    fw_error_t err;
} sess_t;

static void sess_open(sess_t *S)
{
    memset(S, 0, sizeof(*S));
    char ci[1024];
    snprintf(ci, sizeof(ci), "host=%s port=%s dbname=%s user=%s sslmode=disable connect_timeout=10",
             env("FW_TEST_SOCKDIR"), env("FW_TEST_PORT"), env("FW_TEST_DBNAME"),
             env("FW_TEST_USER_TRUST"));
    fw_conn_opts_t o;
    fw_conn_opts_init(&o);
    o.conninfo = ci;
    o.use_environment = false;
    assert_int_equal(fw_runtime_new(&S->rt), 0);
    if (fw_conn_connect_sync(S->rt, &o, &S->conn, &S->err) != 0)
        fail_msg("connect: %s", S->err.message);
}

static void sess_close(sess_t *S)
{
    fw_conn_close_sync(S->conn);
    fw_runtime_free(S->rt);
}

/* Drains s into r (threaded), with a generous deadline per row. */
static void drain(fw_stream_t *s, res_t *r)
{
    fw_row_t row;
    int rc;
    while ((rc = fw_stream_next(s, &row, (int)(30000 * SLOW))) == FW_ROW)
        res_row(r, &row);
    r->code = rc;
    if (rc < 0)
        r->err = *fw_stream_error(s);
    res_finish(r);
}

/* When set, start_par takes the stream's connections from this pool (fw_pool_stream_start). */
static fw_pool_t *g_pool;

/* Starts a parallel read of `relation` (key: NULL for ctid ranges, "tid:COL" for a view's ctid
 * column, fw_query_partition_ctid) over n parts. */
static fw_stream_t *start_par(sess_t *S, const char *relation, const char *key, int n)
{
    fw_query_t *q;
    assert_int_equal(fw_query_new(&q), 0);
    assert_int_equal(fw_query_relation(q, relation), 0);
    assert_int_equal(fw_query_parallel(q, n), 0);
    if (key != NULL && strncmp(key, "tid:", 4) == 0)
        assert_int_equal(fw_query_partition_ctid(q, key + 4), 0);
    else if (key != NULL)
        assert_int_equal(fw_query_partition_key(q, key), 0);
    fw_stream_t *s = NULL;
    int rc = g_pool != NULL ? fw_pool_stream_start_wait(g_pool, FW_POOL_READ, 0, q, &s, &S->err)
                            : fw_stream_start(S->conn, q, NULL, NULL, &s, &S->err);
    fw_query_free(q);
    if (rc != 0)
        fail_msg("parallel start (%s, %d parts): %s", relation, n, S->err.message);
    assert_int_equal(fw_stream_parts(s), n);
    assert_non_null(fw_stream_snapshot(s));
    return s;
}

/* One parallel read checked against the server's answer at its snapshot; returns that answer. */
static void check_at_snapshot(sess_t *S, const char *relation, const char *key, int n, oracle_t *at)
{
    fw_stream_t *s = start_par(S, relation, key, n);
    char snap[64];
    snprintf(snap, sizeof(snap), "%s", fw_stream_snapshot(s));
    char select[256];
    snprintf(select, sizeof(select), "SELECT data FROM %s", relation);
    /* The exporting transaction is open while the stream is: psql can import it now. */
    oracle_at(snap, select, at);
    res_t r;
    res_init(&r);
    /* As drain(), checking on the way that receive memory stays within n budgets. */
    fw_row_t row;
    int rc;
    while ((rc = fw_stream_next(s, &row, (int)(30000 * SLOW))) == FW_ROW) {
        res_row(&r, &row);
        if (r.rows % 4096 == 0) {
            fw_stream_stats_t mid;
            fw_stream_stats(s, &mid);
            assert_true(mid.bytes_buffered <= mid.max_memory);
        }
    }
    r.code = rc;
    if (rc < 0)
        r.err = *fw_stream_error(s);
    res_finish(&r);
    if (r.code != FW_END)
        fail_msg("%s, %d parts: %s (%s)", relation, n, fw_err_name(r.code), r.err.message);
    fw_stream_stats_t st, part;
    fw_stream_stats(s, &st);
    uint64_t parts_rows = 0;
    for (int i = 0; i < n; i++) {
        assert_int_equal(fw_stream_part_stats(s, i, &part), 0);
        assert_int_equal(part.state, FW_STREAM_COMPLETED);
        /* ctid ranges really split: every part read some (key ranges may leave one empty) */
        if (key == NULL || strncmp(key, "tid:", 4) == 0)
            assert_true(part.rows_yielded > 0);
        parts_rows += part.rows_yielded;
    }
    assert_int_equal(fw_stream_part_stats(s, n, &part), FW_EINVAL);
    fw_stream_free(s);
    print_message("%s key=%s N=%d: %" PRIu64 " rows, snapshot %s: server %" PRIu64 " rows\n",
                  relation, key != NULL ? key : "(ctid)", n, r.rows, snap, at->rows);
    assert_int_equal(r.rows, at->rows);
    assert_int_equal(r.bytes, at->bytes);
    assert_int_equal(r.sum, at->sum);
    assert_int_equal(st.rows_yielded, r.rows);
    assert_int_equal(parts_rows, r.rows);
    assert_int_equal(st.state, FW_STREAM_COMPLETED);
    assert_int_equal(st.max_memory, (uint64_t)n * 4 * 1024 * 1024);
}

/* ---- the big table, by ctid and as a keyed view, N = 1..4 -------------------------------- */

static void test_parallel_ctid_equals_one_connection_n1_to_4(void **state)
{
    (void)state;
    sess_t S;
    sess_open(&S);
    for (int n = 1; n <= 4; n++) {
        oracle_t at;
        check_at_snapshot(&S, BIG_TABLE, NULL, n, &at);
        assert_true(at.rows >= 100000);
    }
    sess_close(&S);
}

static void test_parallel_keyed_view_equals_one_connection_n1_to_4(void **state)
{
    (void)state;
    char out[256];
    psql("CREATE OR REPLACE VIEW v_par_keyed AS SELECT id, data FROM " BIG_TABLE ";\n"
         "GRANT SELECT ON v_par_keyed TO PUBLIC;\n",
         out, sizeof(out));
    sess_t S;
    sess_open(&S);
    for (int n = 1; n <= 4; n++) {
        oracle_t at;
        check_at_snapshot(&S, "v_par_keyed", "id", n, &at);
        assert_true(at.rows >= 100000);
    }
    sess_close(&S);
}

/* A view showing its table's ctid (fw_query_partition_ctid), with a filter of its own: split by
 * the table's pages through the view (TID range scans pushed down). */
static void test_parallel_ctid_view_equals_one_connection_n1_to_4(void **state)
{
    (void)state;
    char out[256];
    psql(
        "CREATE OR REPLACE VIEW v_par_ctid AS SELECT t.ctid AS \"row ctid\", t.data FROM " BIG_TABLE
        " t WHERE t.id % 3 <> 0;\n"
        "GRANT SELECT ON v_par_ctid TO PUBLIC;\n",
        out, sizeof(out));
    sess_t S;
    sess_open(&S);
    for (int n = 1; n <= 4; n++) {
        oracle_t at;
        check_at_snapshot(&S, "v_par_ctid", "tid:row ctid", n, &at);
        assert_true(at.rows >= 60000);
    }
    sess_close(&S);
}

/* ---- key ranges from the histogram ------------------------------------------------------- */

/* Reads `relation` over 2 parts split on "id"; returns part 0's rows, checks the total. */
static uint64_t part0_rows(sess_t *S, const char *relation, uint64_t total)
{
    fw_stream_t *s = start_par(S, relation, "id", 2);
    res_t r;
    res_init(&r);
    drain(s, &r);
    if (r.code != FW_END)
        fail_msg("%s: %s (%s)", relation, fw_err_name(r.code), r.err.message);
    fw_stream_stats_t p0, p1;
    assert_int_equal(fw_stream_part_stats(s, 0, &p0), 0);
    assert_int_equal(fw_stream_part_stats(s, 1, &p1), 0);
    fw_stream_free(s);
    assert_int_equal(r.rows, total);
    assert_int_equal(p0.rows_yielded + p1.rows_yielded, total);
    print_message("%s: part 0 %" PRIu64 " rows, part 1 %" PRIu64 "\n", relation, p0.rows_yielded,
                  p1.rows_yielded);
    return p0.rows_yielded;
}

/*
 * A skewed key: ids 1..9000 and 10^12 + 1..1000. Equal spans of [min, max] put 9,000 rows in
 * part 0 and 1,000 in part 1; the histogram's median puts about 5,000 in each. With
 * statistics (ANALYZE), on the table and through a view over it (the view borrows its
 * table's), the parts are balanced; without (autovacuum off, never analyzed), min and max.
 */
static void test_parallel_key_bounds_come_from_the_histogram(void **state)
{
    (void)state;
    char out[256];
    psql("DROP VIEW IF EXISTS v_par_skew, v_par_skew_raw;\n"
         "DROP TABLE IF EXISTS par_skew, par_skew_raw;\n"
         "CREATE TABLE par_skew (id bigint, data jsonb) WITH (autovacuum_enabled = false);\n"
         "CREATE TABLE par_skew_raw (id bigint, data jsonb) WITH (autovacuum_enabled = false);\n"
         "INSERT INTO par_skew SELECT g, jsonb_build_object('id', g) FROM "
         "(SELECT generate_series(1, 9000) AS g UNION ALL "
         "SELECT 1000000000000 + generate_series(1, 1000)) AS x;\n"
         "INSERT INTO par_skew_raw SELECT * FROM par_skew;\n"
         "ANALYZE par_skew;\n"
         "CREATE VIEW v_par_skew AS SELECT id, data FROM par_skew;\n"
         "CREATE VIEW v_par_skew_raw AS SELECT id, data FROM par_skew_raw;\n"
         "GRANT SELECT ON par_skew, par_skew_raw, v_par_skew, v_par_skew_raw TO PUBLIC;\n",
         out, sizeof(out));
    sess_t S;
    sess_open(&S);
    uint64_t t = part0_rows(&S, "par_skew", 10000);
    assert_true(t >= 4000 && t <= 6000);
    uint64_t v = part0_rows(&S, "v_par_skew", 10000);
    assert_true(v >= 4000 && v <= 6000);
    assert_int_equal(part0_rows(&S, "v_par_skew_raw", 10000), 9000);
    sess_close(&S);
    psql("DROP VIEW v_par_skew, v_par_skew_raw; DROP TABLE par_skew, par_skew_raw;\n", out,
         sizeof(out));
}

/* ---- with a concurrent writer ------------------------------------------------------------ */

static void test_parallel_reads_its_snapshot_while_a_writer_writes(void **state)
{
    (void)state;
    char out[256];
    sess_t S;
    sess_open(&S);
    for (int mode = 0; mode < 2; mode++) {
        for (int n = 1; n <= 4; n++) {
            psql("DROP VIEW IF EXISTS v_par_w; DROP TABLE IF EXISTS par_w;\n"
                 "CREATE TABLE par_w AS SELECT id, data FROM bench_100k;\n"
                 "CREATE INDEX ON par_w (id);\n"
                 "CREATE VIEW v_par_w AS SELECT id, data FROM par_w;\n"
                 "GRANT SELECT ON par_w, v_par_w TO PUBLIC;\n",
                 out, sizeof(out));
            FILE *w = writer_start("par_w");
            oracle_t at, after;
            check_at_snapshot(&S, mode == 0 ? "par_w" : "v_par_w", mode == 0 ? NULL : "id", n, &at);
            assert_int_equal(writer_stop(w, "par_w"), 0);
            oracle_now("SELECT data FROM par_w", &after);
            /* The writer went on after the snapshot: the table changed under the stream. */
            assert_true(after.sum != at.sum || after.rows != at.rows);
        }
    }
    psql("DROP VIEW IF EXISTS v_par_w; DROP TABLE IF EXISTS par_w;", out, sizeof(out));
    sess_close(&S);
}

/* ---- parts from a pool ----------------------------------------------------------------------- */

/* After fw_stream_free the pool has every connection back, none inside a transaction. */
static void wait_pool_clean(fw_pool_t *pool, const char *app)
{
    fw_pool_stats_t st;
    for (int i = 0; i < 500; i++) {
        assert_int_equal(fw_pool_stats(pool, &st), 0);
        if (st.in_use == 0 && backends_not_idle(app) == 0)
            return;
        sleep_ms(10);
    }
    fail_msg("5 s after fw_stream_free: %u connection(s) in use, %d backend(s) not idle", st.in_use,
             backends_not_idle(app));
}

static void test_parallel_from_a_pool_reuses_its_connections_and_ends_their_transactions(
    void **state)
{
    (void)state;
    sess_t S;
    sess_open(&S);
    char ci[1024];
    pool_conninfo(ci, sizeof(ci), "fw_par_pool", false);
    fw_pool_opts_t po = pool_opts(ci, "parallel");
    fw_pool_t *pool = NULL;
    if (fw_pool_new_rt(&pool, S.rt, &po, &S.err) != 0)
        fail_msg("pool: %s", S.err.message);
    g_pool = pool;
    /* Rounds of N = 1..3 by ctid and N = 3 by key: each the server's answer at its snapshot,
     * and afterwards every connection back in the pool, no transaction left open on it. */
    oracle_t at;
    for (int round = 0; round < 2; round++) {
        for (int n = 1; n <= 3; n++) {
            check_at_snapshot(&S, BIG_TABLE, NULL, n, &at);
            wait_pool_clean(pool, "fw_par_pool");
        }
        check_at_snapshot(&S, "v_par_100k", "id", 3, &at);
        wait_pool_clean(pool, "fw_par_pool");
    }
    /* Freed after a few rows (the parts cancelled mid-read): the same. */
    fw_stream_t *s = start_par(&S, BIG_TABLE, NULL, 3);
    fw_row_t row;
    for (int i = 0; i < 10; i++)
        assert_int_equal(fw_stream_next(s, &row, (int)(30000 * SLOW)), FW_ROW);
    fw_stream_free(s);
    wait_pool_clean(pool, "fw_par_pool");
    check_at_snapshot(&S, BIG_TABLE, NULL, 3, &at);
    wait_pool_clean(pool, "fw_par_pool");
    /* Nine streams of up to three connections: the pool opened three and handed them out again
     * (their backends warm), closed none for an error. */
    fw_pool_stats_t st;
    check_pool_reused(pool, &st);
    assert_int_equal(st.acquires, 2 * (1 + 2 + 3 + 3) + 3 + 3);
    g_pool = NULL;
    assert_int_equal(fw_pool_close_sync(pool), 0);

    /* A pool of two hosts (here the same server twice): the parts come from the host of the
     * connection the stream started on (test_lib_parallel_repl_live.c shows it with three
     * servers), and the answer is the server's at the snapshot. */
    pool_conninfo(ci, sizeof(ci), NULL, true);
    po.conninfo = ci;
    assert_int_equal(fw_pool_new_rt(&pool, S.rt, &po, &S.err), 0);
    g_pool = pool;
    check_at_snapshot(&S, BIG_TABLE, NULL, 2, &at);
    g_pool = NULL;
    wait_pool_clean(pool, "none"); /* every connection back (the release is asynchronous) */
    assert_int_equal(fw_pool_close_sync(pool), 0);
    sess_close(&S);
}

/* ---- ordered by the key -------------------------------------------------------------------- */

/* Starts v_par_100k over 3 parts split by id and ordered by it. */
static fw_stream_t *start_ordered(sess_t *S)
{
    fw_query_t *q;
    assert_int_equal(fw_query_new(&q), 0);
    assert_int_equal(fw_query_relation(q, "v_par_100k"), 0);
    assert_int_equal(fw_query_parallel(q, 3), 0);
    assert_int_equal(fw_query_partition_key(q, "id"), 0);
    assert_int_equal(fw_query_order_by(q, "id", NULL, false), 0);
    fw_stream_t *s;
    assert_int_equal(fw_stream_start(S->conn, q, NULL, NULL, &s, &S->err), 0);
    fw_query_free(q);
    return s;
}

static void test_parallel_ordered_by_key_delivers_key_order(void **state)
{
    (void)state;
    sess_t S;
    sess_open(&S);
    fw_stream_t *s = start_ordered(&S);
    res_t r;
    res_init(&r);
    drain(s, &r);
    assert_int_equal(r.code, FW_END);
    fw_stream_free(s);
    assert_int_equal(r.rows, 100000);
    assert_int_equal(r.with_id, 100000);
    assert_int_equal(r.first_id, 1);
    assert_int_equal(r.descents, 0);
    assert_int_equal(r.breaks, 0); /* 1, 2, 3, ... 100000: every id once, in order */
    sess_close(&S);
}

/*
 * Ordered by the key, the parts are read one after another: a later part reads ahead to its
 * read-ahead limit (threaded mode, 256 KiB) and waits there while the consumer is still on an
 * earlier one. A consumer that gathers chunks before releasing any (600 KB here) must still get
 * every row: the later part's stall gives way once its queue is taken (a nudge spent on it
 * while its chunks were still queued once left it waiting for ever).
 */
static void test_parallel_ordered_with_a_consumer_gathering_chunks_gets_every_row(void **state)
{
    (void)state;
    sess_t S;
    sess_open(&S);
    fw_stream_t *s = start_ordered(&S);
    gathered_t g;
    int rc = gather_chunks(s, 600 * 1024, NULL, NULL, &g);
    if (rc != FW_END)
        fail_msg("ended with %s: %s", fw_strerror(rc), fw_stream_error(s)->message);
    assert_int_equal(g.rows, 100000);
    print_message("ordered, 3 parts, gathering consumer: %" PRIu64 " rows, %zu batches of 600 KB\n",
                  g.rows, g.batches);
    assert_true(g.batches >= 2);
    fw_stream_free(s);
    sess_close(&S);
}

/* ---- control: pause, cancel, free, a failing part ------------------------------------------ */

static void test_parallel_pause_resume_cancel_and_free(void **state)
{
    (void)state;
    sess_t S;
    sess_open(&S);
    /* pause: every part stops; queued rows drain, then FW_PAUSED; resume finishes it all */
    fw_stream_t *s = start_par(&S, "bench_100k", NULL, 3);
    fw_row_t row;
    assert_int_equal(fw_stream_next(s, &row, (int)(30000 * SLOW)), FW_ROW);
    assert_int_equal(fw_stream_pause(s), 0);
    uint64_t n = 1;
    int rc;
    while ((rc = fw_stream_next(s, &row, (int)(30000 * SLOW))) == FW_ROW)
        n++;
    assert_int_equal(rc, FW_PAUSED);
    fw_stream_stats_t st;
    fw_stream_stats(s, &st);
    assert_int_equal(st.state, FW_STREAM_PAUSED);
    assert_true(n < 100000);
    assert_int_equal(fw_stream_resume(s), 0);
    while ((rc = fw_stream_next(s, &row, (int)(30000 * SLOW))) == FW_ROW)
        n++;
    assert_int_equal(rc, FW_END);
    assert_int_equal(n, 100000);
    assert_int_equal(fw_stream_pause(s), FW_ESTATE);
    fw_stream_free(s);

    /* cancel: returns once every part is drained; FW_ECANCELED, sticky */
    s = start_par(&S, BIG_TABLE, NULL, 4);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(fw_stream_next(s, &row, (int)(30000 * SLOW)), FW_ROW);
    assert_int_equal(fw_stream_cancel(s), 0);
    assert_int_equal(fw_stream_next(s, &row, 0), FW_ECANCELED);
    assert_int_equal(fw_stream_next(s, &row, 0), FW_ECANCELED);
    fw_stream_stats(s, &st);
    assert_int_equal(st.state, FW_STREAM_CANCELLED);
    fw_stream_free(s);

    /* free mid-stream: closes everything (ASan: nothing leaks) */
    s = start_par(&S, BIG_TABLE, NULL, 2);
    for (int i = 0; i < 100; i++)
        assert_int_equal(fw_stream_next(s, &row, (int)(30000 * SLOW)), FW_ROW);
    fw_stream_free(s);

    /* the user's connection ran nothing and is still usable */
    fw_query_t *q;
    assert_int_equal(fw_query_new(&q), 0);
    assert_int_equal(fw_query_relation(q, "bench_1k"), 0);
    assert_int_equal(fw_stream_start(S.conn, q, NULL, NULL, &s, &S.err), 0);
    fw_query_free(q);
    n = 0;
    while ((rc = fw_stream_next(s, &row, (int)(30000 * SLOW))) == FW_ROW)
        n++;
    assert_int_equal(rc, FW_END);
    assert_int_equal(n, 1000);
    fw_stream_free(s);
    sess_close(&S);
}

static void test_parallel_error_in_one_part_is_reported_after_its_rows(void **state)
{
    (void)state;
    sess_t S;
    sess_open(&S);
    fw_query_t *q;
    assert_int_equal(fw_query_new(&q), 0);
    assert_int_equal(fw_query_relation(q, "v_par_100k"), 0);
    assert_int_equal(fw_query_parallel(q, 3), 0);
    assert_int_equal(fw_query_partition_key(q, "id"), 0);
    /* Division by zero at id 90000 only: in the last part (ids from 66667). */
    assert_int_equal(fw_query_where_sql(q, "1 / (id - 90000) IS NOT NULL OR id = 90000"), 0);
    fw_stream_t *s;
    assert_int_equal(fw_stream_start(S.conn, q, NULL, NULL, &s, &S.err), 0);
    fw_query_free(q);
    res_t r;
    res_init(&r);
    drain(s, &r);
    assert_int_equal(r.code, FW_ESERVER);
    assert_string_equal(r.err.sqlstate, "22012");
    assert_non_null(strstr(r.err.message, "part 2 of 3"));
    assert_true(r.rows < 100000);
    fw_row_t row;
    assert_int_equal(fw_stream_next(s, &row, 0), FW_ESERVER); /* sticky */
    fw_stream_stats_t st;
    fw_stream_stats(s, &st);
    assert_int_equal(st.state, FW_STREAM_FAILED);
    fw_stream_free(s);
    sess_close(&S);
}

/* ---- what is refused ---------------------------------------------------------------------- */

static void expect_refused(sess_t *S, fw_query_t *q, int code, const char *needle)
{
    fw_stream_t *s = (fw_stream_t *)1;
    int rc = fw_stream_start(S->conn, q, NULL, NULL, &s, &S->err);
    fw_query_free(q);
    if (rc != code)
        fail_msg("expected %s, got %s: %s", fw_err_name(code), fw_err_name(rc), S->err.message);
    assert_null(s);
    if (strstr(S->err.message, needle) == NULL)
        fail_msg("message without '%s': %s", needle, S->err.message);
}

static fw_query_t *par_query(const char *relation, int n)
{
    fw_query_t *q;
    assert_int_equal(fw_query_new(&q), 0);
    assert_int_equal(fw_query_relation(q, relation), 0);
    assert_int_equal(fw_query_parallel(q, n), 0);
    return q;
}

static void test_parallel_refuses_what_it_cannot_split(void **state)
{
    (void)state;
    sess_t S;
    sess_open(&S);
    fw_query_t *q;
    assert_int_equal(fw_query_new(&q), 0);
    assert_int_equal(fw_query_parallel(q, 17), FW_EINVAL);
    fw_query_free(q);
    assert_int_equal(fw_query_new(&q), 0);
    assert_int_equal(fw_query_parallel(q, -1), FW_EINVAL);
    fw_query_free(q);
    assert_int_equal(fw_query_new(&q), 0);
    assert_int_equal(fw_query_partition_key(q, ""), FW_EINVAL);
    fw_query_free(q);

    /* a view without a key: both options named */
    q = par_query("v_bench_1k", 2);
    expect_refused(&S, q, FW_EINVAL, "fw_query_partition_key");
    q = par_query("v_bench_1k", 2);
    expect_refused(&S, q, FW_EINVAL, "fw_query_relation");
    q = par_query("v_bench_1k", 2);
    expect_refused(&S, q, FW_EINVAL, "fw_query_partition_ctid");
    /* LIMIT, OFFSET, EXPLAIN, ORDER BY other than the key */
    q = par_query("bench_1k", 2);
    assert_int_equal(fw_query_limit(q, 10), 0);
    expect_refused(&S, q, FW_EINVAL, "LIMIT");
    q = par_query("bench_1k", 2);
    assert_int_equal(fw_query_explain(q, true), 0);
    expect_refused(&S, q, FW_EINVAL, "EXPLAIN");
    q = par_query("bench_1k", 2);
    assert_int_equal(fw_query_order_by(q, "data->>'name'", NULL, false), 0);
    expect_refused(&S, q, FW_EINVAL, "partition key");
    q = par_query("v_par_100k", 2);
    assert_int_equal(fw_query_partition_key(q, "id"), 0);
    assert_int_equal(fw_query_order_by(q, "id", NULL, true), 0);
    expect_refused(&S, q, FW_EINVAL, "ascending");
    /* a key that is not an integer column; a key that does not exist; no such relation */
    q = par_query("bench_1k", 2);
    assert_int_equal(fw_query_partition_key(q, "data"), 0);
    expect_refused(&S, q, FW_EINVAL, "integer column");
    q = par_query("bench_1k", 2);
    assert_int_equal(fw_query_partition_key(q, "nope"), 0);
    expect_refused(&S, q, FW_EINVAL, "no column \"nope\"");
    q = par_query("no_such_table", 2);
    expect_refused(&S, q, FW_ESERVER, "no_such_table");
    /* a ctid column (fw_query_partition_ctid): not a tid, missing, on a table, a view over two
     * tables, over a view, and not its table's ctid */
    char out[256];
    psql(
        "CREATE OR REPLACE VIEW v_par_notid AS SELECT t.id AS row_ctid, t.data FROM bench_1k t;\n"
        "CREATE OR REPLACE VIEW v_par_two AS SELECT a.ctid AS row_ctid, a.data FROM bench_1k a "
        "JOIN bench_100k b USING (id);\n"
        "CREATE OR REPLACE VIEW v_par_onview AS SELECT NULL::tid AS row_ctid, data FROM "
        "v_par_100k;\n"
        "CREATE OR REPLACE VIEW v_par_noctid AS SELECT NULL::tid AS row_ctid, data FROM bench_1k;\n"
        "GRANT SELECT ON v_par_notid, v_par_two, v_par_onview, v_par_noctid TO PUBLIC;\n",
        out, sizeof(out));
    static const struct {
        const char *rel, *col, *needle;
    } bad[] = {
        {"v_par_notid", "row_ctid", "must be of type tid"},
        {"v_par_two", "nope", "no column \"nope\""},
        {"bench_1k", "id", "not a view"},
        {"v_par_two", "row_ctid", "reads 2 relation(s)"},
        {"v_par_onview", "row_ctid", "kinds 'v'"},
        {"v_par_noctid", "row_ctid", "no ctid"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        q = par_query(bad[i].rel, 2);
        assert_int_equal(fw_query_partition_ctid(q, bad[i].col), 0);
        expect_refused(&S, q, FW_EINVAL, bad[i].needle);
    }
    q = par_query("bench_1k", 2);
    assert_int_equal(fw_query_partition_ctid(q, ""), FW_EINVAL);
    fw_query_free(q);
    sess_close(&S);

    /* embedded mode: test_lib_parallel_emb_live.c */

    /* an ordinary stream: one part, no snapshot */
    assert_int_equal(fw_stream_parts(NULL), FW_EINVAL);
    assert_null(fw_stream_snapshot(NULL));
}

/* The keyed view over bench_100k that several tests read. */
static int group_setup(void **state)
{
    (void)state;
    char out[256];
    psql("CREATE OR REPLACE VIEW v_par_100k AS SELECT id, data FROM bench_100k;\n"
         "GRANT SELECT ON v_par_100k TO PUBLIC;\n",
         out, sizeof(out));
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parallel_refuses_what_it_cannot_split),
        cmocka_unit_test(test_parallel_ordered_by_key_delivers_key_order),
        cmocka_unit_test(test_parallel_ordered_with_a_consumer_gathering_chunks_gets_every_row),
        cmocka_unit_test(test_parallel_error_in_one_part_is_reported_after_its_rows),
        cmocka_unit_test(test_parallel_pause_resume_cancel_and_free),
        cmocka_unit_test(test_parallel_ctid_equals_one_connection_n1_to_4),
        cmocka_unit_test(test_parallel_keyed_view_equals_one_connection_n1_to_4),
        cmocka_unit_test(test_parallel_ctid_view_equals_one_connection_n1_to_4),
        cmocka_unit_test(test_parallel_key_bounds_come_from_the_histogram),
        cmocka_unit_test(test_parallel_reads_its_snapshot_while_a_writer_writes),
        cmocka_unit_test(
            test_parallel_from_a_pool_reuses_its_connections_and_ends_their_transactions),
    };
    (void)view_oracle; /* stream_oracle.h helpers this file does not need */
    (void)secs_since;
    /* FW_TEST_FILTER=pattern runs the matching cases only (cmocka's glob). */
    const char *filter = getenv("FW_TEST_FILTER");
    if (filter != NULL && filter[0] != '\0')
        cmocka_set_test_filter(filter);
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
