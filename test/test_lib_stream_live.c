/* SPDX-License-Identifier: MIT */
/*
 * Streaming acceptance tests against the harness's real PostgreSQL 15 (test/with-pg.sh): what
 * fwire delivers is compared with the server's own answer, computed by psql, never by fwire.
 *
 * The oracle is order-independent per row plus an order check: for every row (SQL NULL counts
 * as the text "<NULL>", which no JSON text can be) both sides take the MD5 of the text and add
 * its first 60 bits, modulo 2^64. Together with the row count, the byte count and the number
 * of SQL NULL rows, a lost, duplicated or altered row shows. Where the view has a defined
 * order (ORDER BY), both sides also digest the sequence of row MD5s; the bench views have no
 * ORDER BY (and bench_100k and bench_1m are large enough for PostgreSQL's synchronized scans
 * to start mid-table), so there the "id" inside each row must be consecutive, allowing one
 * wrap-around where a scan may have started late.
 *
 * Both run modes go through one helper each: threaded (fw_runtime_new, fw_conn_connect_sync,
 * fw_stream_next and friends on this thread) and embedded (our own uv loop, fw_conn_new,
 * fw_conn_connect, a rows-ready callback draining with fw_stream_try_next). Every wait is
 * bounded: fw_stream_next with a timeout, loops run with a ticking timer and a deadline.
 *
 * The whole binary runs with a counting allocator (main() installs it before anything else),
 * so a test can count fwire's allocations on the hot path and check that nothing leaks.
 */
/* The MD5 of every row: OpenSSL's one-shot MD5() allocates nothing (EVP_Digest would allocate
 * a context per row, which would blur the memory tests), at the price of a deprecated API. */
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

/* The trust user sees what the tests read. */
static void psql(const char *sql, char *out, size_t cap)
{
    psql_as("FW_TEST_USER_TRUST", sql, out, cap);
}

#define KIB ((size_t)1024)
#define MIB ((size_t)1024 * 1024)

/* Order-independent sum of a chunk's rows, to check they stay valid while it is held. */
static uint64_t rows_sum(const fw_row_t *rows, size_t n)
{
    uint64_t s = 0;
    unsigned char d[16];
    for (size_t i = 0; i < n; i++)
        s += row_md5(&rows[i], d);
    return s;
}

/* ---- sessions: one connection in one run mode ------------------------------------------------ */

typedef enum consume_e {
    CONSUME_NEXT = 0, /* fw_stream_next */
    CONSUME_TRY,      /* fw_stream_try_next (threaded: fw_stream_next when nothing is queued) */
    CONSUME_CHUNK,    /* fw_stream_next_chunk + fw_chunk_release */
    CONSUME_MIX       /* threaded: all three at random, holding some chunks a while */
} consume_t;

typedef struct sess_s {
    bool threaded, tls;
    const char *name;
    fw_runtime_t *rt;
    uv_loop_t loop;
    uv_timer_t tick; /* keeps uv_run(UV_RUN_ONCE) returning, so waits can time out */
    fw_conn_t *conn;
    int connects, connect_status;
    fw_error_t err;
    int closes;
    pthread_mutex_t mu; /* the notice fields: written on the loop thread */
    int notices;
    char notice_msg[256], notice_sev[16], notice_state[6];
} sess_t;

static void on_notice(void *ud, const fw_notice_t *n)
{
    sess_t *S = ud;
    pthread_mutex_lock(&S->mu);
    S->notices++;
    snprintf(S->notice_msg, sizeof(S->notice_msg), "%s", n->message);
    snprintf(S->notice_sev, sizeof(S->notice_sev), "%s", n->severity);
    snprintf(S->notice_state, sizeof(S->notice_state), "%s", n->sqlstate);
    pthread_mutex_unlock(&S->mu);
}

LIVE_CONN_CALLBACKS(sess_t)

/* Runs the embedded loop until *flag, failing after `secs` (stretched under sanitizers). */
static void run_until(sess_t *S, const bool *flag, double secs, const char *what)
{
    live_run_until(&S->loop, S->name, flag, secs, what);
}

static void sess_open(sess_t *S, bool threaded, bool tls)
{
    memset(S, 0, sizeof(*S));
    S->threaded = threaded;
    S->tls = tls;
    S->name = threaded ? (tls ? "threaded/tls" : "threaded/unix")
                       : (tls ? "embedded/tls" : "embedded/unix");
    pthread_mutex_init(&S->mu, NULL);
    char ci[1024];
    live_conninfo(ci, sizeof(ci), tls);
    fw_conn_opts_t o;
    fw_conn_opts_init(&o);
    o.conninfo = ci;
    o.use_environment = false; /* hermetic: no PG* variables, no ~/.pgpass */
    o.notice_cb = on_notice;
    o.notice_ud = S;
    if (threaded) {
        assert_int_equal(fw_runtime_new(&S->rt), 0);
        int rc = fw_conn_connect_sync(S->rt, &o, &S->conn, &S->err);
        if (rc != 0)
            fail_msg("%s: connect: %s", S->name, S->err.message);
    } else {
        live_loop_init(&S->loop, &S->tick);
        if (fw_conn_new(&S->conn, &S->loop, &o, &S->err) != 0)
            fail_msg("%s: fw_conn_new: %s", S->name, S->err.message);
        assert_int_equal(fw_conn_connect(S->conn, on_connect, S), 0);
        live_run_until_counted(&S->loop, &S->connects, 30);
        assert_int_equal(S->connects, 1);
        if (S->connect_status != 0)
            fail_msg("%s: connect: %s", S->name, S->err.message);
    }
    fw_conn_info_t info;
    assert_int_equal(fw_conn_info(S->conn, &info), 0);
    assert_string_equal(info.transport, tls ? "tcp" : "unix");
    if (tls != (info.tls_version != NULL))
        fail_msg("%s: TLS %s", S->name, info.tls_version ? info.tls_version : "off");
}

/* Closes the connection (unless a test already did: conn NULL) and checks the loop ends
 * clean in embedded mode. */
static void sess_close(sess_t *S)
{
    if (S->threaded) {
        fw_conn_close_sync(S->conn);
        fw_runtime_free(S->rt);
    } else {
        if (S->conn != NULL)
            fw_conn_close(S->conn, on_closed, S);
        live_loop_drain(&S->loop, &S->tick, 30);
        assert_int_equal(S->closes, 1);
        assert_int_equal(uv_loop_close(&S->loop), 0);
    }
    S->conn = NULL;
    pthread_mutex_destroy(&S->mu);
}

/* ---- threaded mode ------------------------------------------------------------------------ */

/* Gives back a chunk kept by thr_drain, checking its rows did not change meanwhile. */
static void release_held(fw_stream_t *s, res_t *r, fw_chunk_t **held, size_t held_n,
                         uint64_t held_sum)
{
    size_t n;
    const fw_row_t *rows = fw_chunk_rows(*held, &n);
    r->bad_held += n != held_n || rows_sum(rows, n) != held_sum;
    fw_chunk_release(s, *held);
    *held = NULL;
}

/*
 * Consumes `s` on this thread until it ends (r->code) or `limit` rows were read (0: no
 * limit). Every wait is bounded: a stream that stays silent for 60 s fails the test.
 * CONSUME_MIX keeps some chunks for a few calls (their rows must stay valid whatever else is
 * called); while it keeps one it only polls (try_next), and gives it back before it would
 * wait: test_a_consumer_holding_a_chunk_still_gets_the_rows_after_it covers waiting.
 */
static void thr_drain(fw_stream_t *s, res_t *r, consume_t how, uint64_t limit)
{
    uint32_t rnd = 0x9e3779b9u ^ (uint32_t)how;
    fw_chunk_t *held = NULL;
    size_t held_n = 0;
    uint64_t held_sum = 0;
    int held_for = 0;
    uint64_t quiet_since = uv_hrtime();
    while (limit == 0 || r->rows < limit) {
        consume_t op = how == CONSUME_MIX ? (consume_t)(xorshift(&rnd) % 3) : how;
        fw_row_t row;
        int rc;
        if (held != NULL) {
            rc = fw_stream_try_next(s, &row);
            if (rc == FW_ROW)
                res_row(r, &row);
            if (rc != FW_ROW || --held_for <= 0)
                release_held(s, r, &held, held_n, held_sum);
            if (rc == FW_AGAIN)
                continue;
        } else if (op == CONSUME_CHUNK) {
            fw_chunk_t *ch = NULL;
            rc = fw_stream_next_chunk(s, &ch, 1000);
            if (rc == FW_ROW) {
                size_t n;
                const fw_row_t *rows = fw_chunk_rows(ch, &n);
                assert_true(n >= 1);
                for (size_t i = 0; i < n; i++)
                    res_row(r, &rows[i]);
                if (how == CONSUME_MIX && (xorshift(&rnd) & 3) == 0) {
                    held = ch;
                    held_n = n;
                    held_sum = rows_sum(rows, n);
                    held_for = 1 + (int)(xorshift(&rnd) % 4);
                } else {
                    fw_chunk_release(s, ch);
                }
            }
        } else if (op == CONSUME_TRY) {
            rc = fw_stream_try_next(s, &row);
            if (rc == FW_AGAIN)
                rc = fw_stream_next(s, &row, 1000);
            if (rc == FW_ROW)
                res_row(r, &row);
        } else {
            rc = fw_stream_next(s, &row, 1000);
            if (rc == FW_ROW)
                res_row(r, &row);
        }
        if (rc == FW_ROW) {
            quiet_since = uv_hrtime();
            continue;
        }
        if (rc == FW_AGAIN) {
            if (secs_since(quiet_since) > 60 * SLOW)
                fail_msg("no row for %.0f s after %" PRIu64 " rows", 60 * SLOW, r->rows);
            continue;
        }
        r->code = rc;
        if (rc < 0)
            r->err = *fw_stream_error(s);
        break;
    }
    if (held != NULL)
        release_held(s, r, &held, held_n, held_sum);
    fw_stream_stats(s, &r->stats);
}

static void thr_stream(sess_t *S, const fw_query_t *q, consume_t how, res_t *r)
{
    fw_stream_t *s = NULL;
    r->start_rc = fw_stream_start(S->conn, q, NULL, NULL, &s, &r->err);
    if (r->start_rc != 0) {
        assert_null(s);
        res_finish(r);
        return;
    }
    thr_drain(s, r, how, 0);
    res_finish(r);
    /* FW_END and failures are sticky. */
    fw_row_t row;
    assert_int_equal(fw_stream_next(s, &row, 0), r->code);
    fw_stream_free(s);
}

/* ---- embedded mode ------------------------------------------------------------------------ */

typedef struct emb_s {
    sess_t *S;
    res_t *r;
    consume_t how; /* CONSUME_TRY or CONSUME_CHUNK (fw_stream_next_chunk with timeout 0) */
    fw_stream_t *s;
    bool done;
    int calls, calls_after_end;
    uint64_t free_after;  /* fw_stream_free inside the callback after this many rows */
    int start_after_free; /* fw_stream_start's answer right after that free */
    uint64_t close_after; /* fw_conn_close inside the callback after this many rows */
    bool closed_conn;
} emb_t;

static void on_ready(fw_stream_t *s, void *ud)
{
    emb_t *e = ud;
    e->calls++;
    if (e->done) {
        e->calls_after_end++;
        return;
    }
    for (;;) {
        int rc;
        if (e->how == CONSUME_CHUNK) {
            fw_chunk_t *ch;
            rc = fw_stream_next_chunk(s, &ch, 0);
            if (rc == FW_ROW) {
                size_t n;
                const fw_row_t *rows = fw_chunk_rows(ch, &n);
                for (size_t i = 0; i < n; i++)
                    res_row(e->r, &rows[i]);
                fw_chunk_release(s, ch);
            }
        } else {
            fw_row_t row;
            rc = fw_stream_try_next(s, &row);
            if (rc == FW_ROW)
                res_row(e->r, &row);
        }
        if (rc == FW_ROW) {
            if (e->free_after != 0 && e->r->rows >= e->free_after) {
                fw_stream_free(s); /* legal inside the callback */
                e->s = NULL;
                e->done = true;
                fw_stream_t *again = NULL;
                fw_query_t *q;
                assert_int_equal(fw_query_new(&q), 0);
                fw_query_entity(q, "fixture");
                e->start_after_free = fw_stream_start(e->S->conn, q, on_ready, e, &again, NULL);
                fw_query_free(q);
                if (again != NULL) /* not expected: checked by the caller */
                    fw_stream_free(again);
                return;
            }
            if (e->close_after != 0 && e->r->rows >= e->close_after && !e->closed_conn) {
                /* Legal inside the callback; the stream's end (FW_ECLOSED) reaches us again,
                 * re-entrantly, from within this call. */
                e->closed_conn = true;
                fw_conn_close(e->S->conn, on_closed, e->S);
                e->S->conn = NULL;
            }
            continue;
        }
        if (rc == FW_AGAIN)
            return;
        if (!e->done) {
            e->done = true;
            e->r->code = rc;
            if (rc < 0)
                e->r->err = *fw_stream_error(s);
            fw_stream_stats(s, &e->r->stats);
        }
        return;
    }
}

/* Starts `q`; runs the loop until the callback saw the end (or freed the stream). The stream
 * is left in e->s (NULL when freed) for the caller. */
static void emb_start_and_run(emb_t *e, const fw_query_t *q)
{
    e->r->start_rc = fw_stream_start(e->S->conn, q, on_ready, e, &e->s, &e->r->err);
    if (e->r->start_rc != 0) {
        assert_null(e->s);
        return;
    }
    assert_int_equal(e->calls, 0); /* never inside fw_stream_start */
    fw_row_t row;
    assert_int_equal(fw_stream_next(e->s, &row, 10), FW_ESTATE); /* it would block the loop */
    run_until(e->S, &e->done, 120, "stream");
}

static void emb_stream(sess_t *S, const fw_query_t *q, consume_t how, res_t *r)
{
    emb_t e = {.S = S, .r = r, .how = how == CONSUME_CHUNK ? CONSUME_CHUNK : CONSUME_TRY};
    emb_start_and_run(&e, q);
    if (e.s != NULL) {
        fw_row_t row;
        assert_int_equal(fw_stream_try_next(e.s, &row), r->code); /* sticky */
        /* A few more loop turns: no callback after the end. */
        for (int i = 0; i < 3; i++)
            uv_run(&S->loop, UV_RUN_NOWAIT);
        assert_int_equal(e.calls_after_end, 0);
        fw_stream_free(e.s);
    }
    res_finish(r);
}

static void sess_stream(sess_t *S, const fw_query_t *q, consume_t how, res_t *r)
{
    res_init(r);
    if (S->threaded)
        thr_stream(S, q, how, r);
    else
        emb_stream(S, q, how, r);
}

/* A query on `relation`, with a chunk size and a budget unless 0 (the defaults). */
static fw_query_t *query(const char *relation, size_t chunk, size_t budget)
{
    fw_query_t *q;
    assert_int_equal(fw_query_new(&q), 0);
    assert_int_equal(fw_query_relation(q, relation), 0);
    if (chunk != 0)
        assert_int_equal(fw_query_chunk_size(q, chunk), 0);
    if (budget != 0)
        assert_int_equal(fw_query_max_memory(q, budget), 0);
    return q;
}

/* Streams `view` on S and checks it against the oracle (the connection must work). */
static void expect_view(sess_t *S, const char *view, bool ordered, consume_t how)
{
    fw_query_t *q = query(view, 0, 0);
    res_t r;
    sess_stream(S, q, how, &r);
    fw_query_free(q);
    char what[128];
    snprintf(what, sizeof(what), "%s %s", S->name, view);
    check_res(&r, view_oracle(view, ordered), ordered, what);
}

/* ---- 1. correctness ------------------------------------------------------------------------ */

typedef enum { IDS_NONE, IDS_STRICT, IDS_ROTATED, IDS_ROTATED_SPARSE } ids_t;

typedef struct view_s {
    const char *name;
    bool ordered; /* digest the order against psql's */
    ids_t ids;
} view_t;

static const size_t chunk_sizes[] = {1, 16, 256, 1024};
static const size_t budgets[] = {64 * KIB, 256 * KIB, 4 * MIB};

static void run_case(sess_t *S, const view_t *v, size_t chunk, size_t budget, consume_t how)
{
    const oracle_t *o = view_oracle(v->name, v->ordered);
    fw_query_t *q = query(v->name, chunk, budget);
    res_t r;
    uint64_t t0 = uv_hrtime();
    sess_stream(S, q, how, &r);
    fw_query_free(q);
    char what[160];
    snprintf(what, sizeof(what), "%s %s chunk %zu budget %zu KiB consume %d (%.2f s)", S->name,
             v->name, chunk, budget / KIB, (int)how, secs_since(t0));
    /* A row larger than the budget is delivered too, alone in a buffer of its own (issue 17:
     * the budget bounds what is queued; only max_message bounds one row). */
    check_res(&r, o, v->ordered, what);
    if (v->ids != IDS_NONE)
        check_ids(&r, v->ids == IDS_STRICT, v->ids != IDS_ROTATED_SPARSE, what);
    if (getenv("FW_TEST_VERBOSE") != NULL)
        print_message("%s ok\n", what);
}

static void test_every_view_arrives_exactly_as_the_server_has_it(void **state)
{
    (void)state;
    static const view_t small[] = {
        {"v_fixture", true, IDS_STRICT},         {"v_fixture_json", true, IDS_NONE},
        {"v_fixture_nulls", true, IDS_NONE},     {"v_fixture_empty", true, IDS_NONE},
        {"v_fixture_big_row", true, IDS_STRICT}, {"v_bench_1k", true, IDS_STRICT},
    };
    static const view_t medium[] = {
        {"v_bench_complex", false, IDS_STRICT},       {"v_bench_100k", false, IDS_ROTATED},
        {"v_bench_sel10", false, IDS_ROTATED_SPARSE}, {"v_bench_sel50", false, IDS_ROTATED_SPARSE},
        {"v_bench_sel90", false, IDS_ROTATED_SPARSE},
    };
    static const view_t large_v = {"v_bench_large", false, IDS_STRICT};
    static const view_t m1_v = {"v_bench_1m", false, IDS_ROTATED};
    /* The oracles first: psql runs while no fwire thread exists. */
    for (size_t i = 0; i < sizeof(small) / sizeof(small[0]); i++)
        view_oracle(small[i].name, small[i].ordered);
    for (size_t i = 0; i < sizeof(medium) / sizeof(medium[0]); i++)
        view_oracle(medium[i].name, false);
    view_oracle(large_v.name, false);
    view_oracle(m1_v.name, false);
    /* The server's oracle itself is what we think it is. */
    assert_int_equal(view_oracle("v_fixture_nulls", true)->nulls, 2);
    assert_int_equal(view_oracle("v_fixture_empty", true)->rows, 0);
    assert_int_equal(view_oracle("v_bench_1k", true)->rows, 1000);

    int64_t live0 = live_now();
    sess_t S[4];
    sess_open(&S[0], true, false);
    sess_open(&S[1], true, true);
    sess_open(&S[2], false, false);
    sess_open(&S[3], false, true);

    /* Small views: every chunk size x budget, in every session. */
    for (size_t v = 0; v < sizeof(small) / sizeof(small[0]); v++)
        for (size_t si = 0; si < 4; si++)
            for (size_t c = 0; c < 4; c++)
                for (size_t b = 0; b < 3; b++)
                    run_case(&S[si], &small[v], chunk_sizes[c], budgets[b],
                             (consume_t)((c + b + v) % (S[si].threaded ? 4 : 3)));
    /* Medium views: every (chunk, budget) pair, each in one of the sessions, in turn. */
    for (size_t v = 0; v < sizeof(medium) / sizeof(medium[0]); v++) {
        for (size_t p = 0; p < 12; p++) {
            sess_t *s = &S[(p + v) % 4];
            run_case(s, &medium[v], chunk_sizes[p / 3], budgets[p % 3],
                     (consume_t)((p + v) % (s->threaded ? 4 : 3)));
        }
    }
    /* The large views, a few combinations each (~100 MB and ~270 MB a run). Rows of ~100 KB
     * are larger than a 64 KiB budget: each is delivered alone, and every row arrives. */
    run_case(&S[0], &large_v, 1, 64 * KIB, CONSUME_NEXT);
    run_case(&S[1], &large_v, 16, 256 * KIB, CONSUME_MIX);
    run_case(&S[0], &m1_v, 1024, 4 * MIB, CONSUME_NEXT);
    run_case(&S[1], &m1_v, 256, 64 * KIB, CONSUME_CHUNK);
    run_case(&S[1], &m1_v, 16, 4 * MIB, CONSUME_MIX);
#if !defined(FW_TSAN)
    /* The embedded sessions' large runs (one thread: nothing for TSan to find, and 5 of the
     * test's 10 large reads; the ASan build and every plain run do them) */
    run_case(&S[3], &m1_v, 16, 256 * KIB, CONSUME_TRY);
    run_case(&S[2], &large_v, 1024, 4 * MIB, CONSUME_CHUNK);
    run_case(&S[3], &large_v, 1, 256 * KIB, CONSUME_TRY);
    run_case(&S[2], &m1_v, 1, 256 * KIB, CONSUME_TRY);
    run_case(&S[3], &m1_v, 1024, 64 * KIB, CONSUME_CHUNK);
#endif
    for (size_t i = 0; i < 4; i++)
        sess_close(&S[i]);
    assert_int_equal(live_now(), live0); /* nothing leaked */
}

/* ---- 2. rows, then an error ------------------------------------------------------------------ */

static void test_rows_then_a_server_error_and_the_connection_runs_the_next_query(void **state)
{
    (void)state;
    view_oracle("v_fixture", true);
    for (int m = 0; m < 4; m++) {
        sess_t S;
        sess_open(&S, m < 2, m % 2 == 1);
        fw_query_t *q = query("v_fixture_error_500k", 0, 256 * KIB);
        res_t r;
        sess_stream(&S, q, S.threaded ? CONSUME_MIX : CONSUME_TRY, &r);
        fw_query_free(q);
        if (r.code != FW_ESERVER)
            fail_msg("%s: ended with %s (%s) after %" PRIu64 " rows", S.name, fw_err_name(r.code),
                     r.err.message, r.rows);
        assert_int_equal(r.rows, 499999);
        check_ids(&r, true, true, S.name); /* i = 1 .. 499,999, in order */
        assert_int_equal(r.err.code, FW_ESERVER);
        assert_string_equal(r.err.sqlstate, "22012");
        assert_string_equal(r.err.severity, "ERROR");
        assert_true(r.err.message[0] != '\0');
        assert_non_null(strstr(r.err.message, "division by zero"));
        assert_int_equal(r.stats.state, FW_STREAM_FAILED);
        assert_int_equal(r.stats.rows_yielded, 499999);
        /* the same connection runs the next query */
        expect_view(&S, "v_fixture", true, CONSUME_TRY);
        sess_close(&S);
    }
}

/* ---- 3. a notice mid-stream ---------------------------------------------------------------- */

static void test_a_notice_mid_stream_reaches_the_hook_and_every_row_arrives(void **state)
{
    (void)state;
    const oracle_t *o = view_oracle("v_fixture_notice", true);
    assert_int_equal(o->rows, 2000);
    for (int m = 0; m < 4; m++) {
        sess_t S;
        sess_open(&S, m < 2, m % 2 == 1);
        fw_query_t *q = query("v_fixture_notice", (size_t)(m * 300 + 1), 0);
        res_t r;
        sess_stream(&S, q, m == 0 ? CONSUME_CHUNK : CONSUME_TRY, &r);
        fw_query_free(q);
        check_res(&r, o, true, S.name);
        check_ids(&r, true, true, S.name);
        pthread_mutex_lock(&S.mu);
        assert_int_equal(S.notices, 1);
        assert_string_equal(S.notice_msg, "fwire fixture notice at row 1000");
        assert_string_equal(S.notice_sev, "NOTICE");
        assert_string_equal(S.notice_state, "00000");
        pthread_mutex_unlock(&S.mu);
        sess_close(&S);
    }
}

/* ---- 3b. the server switches client_encoding mid-query ----------------------------------- */

/* set_config('client_encoding', 'LATIN1') inside the query makes a real server report the new
 * encoding mid-stream: every row before it arrives, then a protocol error naming the encoding,
 * and the connection is closed (issue 17). */
static void test_a_client_encoding_switch_fails_after_the_rows_before_it(void **state)
{
    (void)state;
    const oracle_t *o = view_oracle("v_fixture", true);
    for (int m = 0; m < 4; m++) {
        sess_t S;
        sess_open(&S, m < 2, m % 2 == 1);
        fw_query_t *q = query("v_fixture", 0, 0);
        assert_int_equal(
            fw_query_where_sql(q, "set_config('client_encoding', 'LATIN1', false) <> ''"), 0);
        res_t r;
        sess_stream(&S, q, S.threaded ? CONSUME_MIX : CONSUME_TRY, &r);
        fw_query_free(q);
        if (r.code != FW_EPROTO_BAD_VALUE)
            fail_msg("%s: ended with %s (%s) after %" PRIu64 " rows", S.name, fw_err_name(r.code),
                     r.err.message, r.rows);
        assert_int_equal(r.rows, o->rows);
        assert_non_null(strstr(r.err.message, "client_encoding to \"LATIN1\""));
        assert_int_equal(r.stats.state, FW_STREAM_FAILED);
        sess_close(&S);
    }
}

/* ---- 4. schema errors ------------------------------------------------------------------------ */

static void test_schema_errors_fail_the_stream_and_the_connection_runs_the_next_query(void **state)
{
    (void)state;
    view_oracle("v_fixture", true);
    const oracle_t *two = oracle("SELECT data FROM v_fixture_two_cols", true);
    for (int m = 0; m < 4; m++) {
        sess_t S;
        sess_open(&S, m < 2, m % 2 == 1);
        res_t r;
        fw_query_t *q = query("v_fixture_wrong_type", 0, 0);
        sess_stream(&S, q, CONSUME_TRY, &r);
        fw_query_free(q);
        assert_int_equal(r.start_rc, 0);
        assert_int_equal(r.code, FW_ESCHEMA);
        assert_int_equal(r.rows, 0);
        if (strstr(r.err.message, "\"data\" (text)") == NULL)
            fail_msg("%s: %s", S.name, r.err.message);
        expect_view(&S, "v_fixture", true, CONSUME_NEXT);

        q = query("v_fixture_wrong_name", 0, 0);
        sess_stream(&S, q, CONSUME_NEXT, &r);
        fw_query_free(q);
        assert_int_equal(r.code, FW_ESERVER);
        assert_string_equal(r.err.sqlstate, "42703"); /* the builder selects "data" */
        assert_non_null(strstr(r.err.message, "data"));
        expect_view(&S, "v_fixture", true, CONSUME_CHUNK);

        q = query("v_fixture_does_not_exist", 0, 0);
        sess_stream(&S, q, CONSUME_CHUNK, &r);
        fw_query_free(q);
        assert_int_equal(r.code, FW_ESERVER);
        assert_string_equal(r.err.sqlstate, "42P01");
        assert_string_equal(r.err.severity, "ERROR");
        expect_view(&S, "v_fixture", true, CONSUME_TRY);

        /* Only "data" is selected, so a view with an extra column streams its data column. */
        q = query("v_fixture_two_cols", 0, 0);
        sess_stream(&S, q, CONSUME_TRY, &r);
        fw_query_free(q);
        check_res(&r, two, true, S.name);
        sess_close(&S);
    }
}

/* ---- 5. one query at a time ------------------------------------------------------------------ */

static void test_a_second_stream_is_refused_while_the_first_runs(void **state)
{
    (void)state;
    const oracle_t *big = view_oracle("v_bench_100k", false);
    view_oracle("v_fixture", true);
    for (int m = 0; m < 2; m++) {
        sess_t S;
        sess_open(&S, m == 0, false);
        fw_query_t *q1 = query("v_bench_100k", 0, 0);
        fw_query_t *q2 = query("v_fixture", 0, 0);
        fw_stream_t *s1 = NULL, *s2 = NULL;
        fw_error_t err;
        res_t r1, r2;
        res_init(&r1);
        emb_t e1 = {.S = &S, .r = &r1, .how = CONSUME_TRY};
        assert_int_equal(fw_stream_start(S.conn, q1, S.threaded ? NULL : on_ready, &e1, &s1, &err),
                         0);
        e1.s = s1;
        /* the first runs: the second is refused, with a message saying why */
        assert_int_equal(fw_stream_start(S.conn, q2, NULL, NULL, &s2, &err), FW_EBUSY);
        assert_null(s2);
        assert_int_equal(err.code, FW_EBUSY);
        assert_non_null(strstr(err.message, "another query is running"));
        /* still refused after some rows */
        if (S.threaded) {
            thr_drain(s1, &r1, CONSUME_NEXT, 1000);
        } else {
            uint64_t t0 = uv_hrtime();
            while (r1.rows < 1000 && !e1.done && secs_since(t0) < 30 * SLOW)
                uv_run(&S.loop, UV_RUN_ONCE);
        }
        assert_true(r1.rows >= 1000);
        assert_int_equal(fw_stream_start(S.conn, q2, NULL, NULL, &s2, &err), FW_EBUSY);
        /* drain the first to its end, without freeing it: then a new one may start */
        if (S.threaded)
            thr_drain(s1, &r1, CONSUME_NEXT, 0);
        else
            run_until(&S, &e1.done, 120, "first stream");
        res_finish(&r1);
        check_res(&r1, big, false, S.name);
        res_init(&r2);
        emb_t e2 = {.S = &S, .r = &r2, .how = CONSUME_TRY};
        assert_int_equal(fw_stream_start(S.conn, q2, S.threaded ? NULL : on_ready, &e2, &s2, &err),
                         0);
        fw_stream_free(s1);
        if (S.threaded)
            thr_drain(s2, &r2, CONSUME_NEXT, 0);
        else
            run_until(&S, &e2.done, 30, "second stream");
        res_finish(&r2);
        check_res(&r2, view_oracle("v_fixture", true), true, S.name);
        fw_stream_free(s2);
        fw_query_free(q1);
        fw_query_free(q2);
        sess_close(&S);
    }
}

/* ---- 6. a slow consumer -------------------------------------------------------------------- */

typedef struct sampler_s {
    const fw_stream_t *s;
    atomic_bool stop;
    uint64_t samples, max_bytes, max_memory, running_samples;
} sampler_t;

static void *sampler_main(void *arg)
{
    sampler_t *sm = arg;
    while (!atomic_load(&sm->stop)) {
        fw_stream_stats_t st;
        fw_stream_stats(sm->s, &st);
        if (st.bytes_buffered > sm->max_bytes)
            sm->max_bytes = st.bytes_buffered;
        sm->max_memory = st.max_memory;
        sm->running_samples += st.state == FW_STREAM_RUNNING;
        sm->samples++;
        sleep_ms(5);
    }
    return NULL;
}

/* A threaded stream of v_bench_1m (budget 0: the default) read by a consumer that sleeps 1 ms
 * every 2,000 rows, while a second thread samples its stats: *r holds the rows, the end and
 * the final stats, *sm the samples; RSS at 10 % and at the end. The stream is freed. */
static void run_sampled(size_t budget, const char *what, res_t *r, sampler_t *sm, size_t *rss10,
                        size_t *rss100, double *secs)
{
    const oracle_t *o = view_oracle("v_bench_1m", false);
    sess_t S;
    sess_open(&S, true, false);
    fw_query_t *q = query("v_bench_1m", 0, budget);
    fw_stream_t *s;
    fw_error_t err;
    assert_int_equal(fw_stream_start(S.conn, q, NULL, NULL, &s, &err), 0);
    fw_query_free(q);
    *sm = (sampler_t){.s = s};
    atomic_init(&sm->stop, false);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, sampler_main, sm), 0);
    res_init(r);
    *rss10 = 0;
    int rc;
    fw_row_t row;
    uint64_t t0 = uv_hrtime();
    while ((rc = fw_stream_next(s, &row, 1000)) == FW_ROW || rc == FW_AGAIN) {
        if (secs_since(t0) > 300 * SLOW)
            break;
        if (rc == FW_AGAIN)
            continue;
        res_row(r, &row);
        if (r->rows % 2000 == 0)
            sleep_ms(1); /* the loop thread reads on meanwhile, up to what it may hold */
        if (r->rows == o->rows / 10)
            *rss10 = rss_bytes();
    }
    *rss100 = rss_bytes();
    atomic_store(&sm->stop, true);
    pthread_join(th, NULL);
    r->code = rc;
    fw_stream_stats(s, &r->stats);
    res_finish(r);
    check_res(r, o, false, what);
    check_ids(r, false, true, what);
    assert_true(sm->samples > 10);
    *secs = secs_since(t0);
    fw_stream_free(s);
    sess_close(&S);
}

static void test_a_slow_consumer_keeps_memory_within_the_budget(void **state)
{
    (void)state;
    res_t r;
    sampler_t sm;
    size_t rss10, rss100;
    double secs;
    run_sampled(256 * KIB, "slow consumer", &r, &sm, &rss10, &rss100, &secs);
    assert_true(sm.running_samples > 0);
    assert_int_equal(sm.max_memory, 256 * KIB);
    if (sm.max_bytes > 256 * KIB || r.stats.bytes_buffered > 256 * KIB)
        fail_msg("bytes_buffered reached %" PRIu64 " over a budget of %zu", sm.max_bytes,
                 256 * KIB);
    assert_true(sm.max_bytes > 0);
    if (r.stats.read_stops == 0)
        fail_msg("the producer never stopped reading for a consumer this slow");
    assert_true(r.stats.bytes_received > view_oracle("v_bench_1m", false)->bytes);
    print_message("slow consumer: %.1f s, %" PRIu64 " samples, max %" PRIu64
                  " bytes buffered, %" PRIu64 " read stops, RSS %zu -> %zu KiB\n",
                  secs, sm.samples, sm.max_bytes, r.stats.read_stops, rss10 / KIB,
                  rss100 / KIB);
    if (rss100 > rss10 + 8 * MIB)
        fail_msg("RSS grew from %zu to %zu KiB between 10%% and 100%% of the stream", rss10 / KIB,
                 rss100 / KIB);
}

/*
 * Threaded mode reads no more than 256 KiB of receive slabs (FW__STREAM_SOFT_HELD) ahead of its
 * consumer, whatever the budget (the default 4 MiB here): a consumer thread the scheduler runs
 * late let the loop thread read up to the ring's 64 chunks ahead (issue 18: TLS threaded peak
 * RSS). The reads stall there instead, and a stall while reading in bulk keeps reading in bulk:
 * the socket is not watched again after each stall (every readable event is an epoll_wait and
 * a recv or more, ~8 KiB each from PostgreSQL).
 */
static void test_a_threaded_stream_reads_at_most_256_kib_ahead_and_its_stalls_keep_bulk_reads(
    void **state)
{
    (void)state;
    res_t r;
    sampler_t sm;
    size_t rss10, rss100;
    double secs;
    run_sampled(0, "threaded, consumer with pauses", &r, &sm, &rss10, &rss100, &secs);
    assert_int_equal(sm.max_memory, 4 * MIB); /* the default budget */
    print_message("read-ahead: %.1f s, max %" PRIu64 " bytes buffered (%" PRIu64
                  " samples), %" PRIu64 " read stops, %" PRIu64 " readable wakeups, %" PRIu64
                  " bulk-read ticks\n",
                  secs, sm.max_bytes, sm.samples, r.stats.read_stops, r.stats.read_wakeups,
                  r.stats.read_ticks);
    if (sm.max_bytes > 256 * KIB)
        fail_msg("the loop thread read %" PRIu64 " bytes ahead of its consumer (limit 256 KiB)",
                 sm.max_bytes);
    if (r.stats.read_stops < 20)
        fail_msg("%" PRIu64 " read stops: the consumer's pauses did not stop the reads at the "
                 "limit", r.stats.read_stops);
    /* Reading in bulk (ticks) goes on across the stalls; once it had ended at each stall, every
     * one of the server's pieces woke the reader again. */
    if (r.stats.read_ticks == 0 || r.stats.read_wakeups > r.stats.read_ticks)
        fail_msg("%" PRIu64 " readable wakeups against %" PRIu64 " bulk-read ticks, %" PRIu64
                 " read stops: a stall ended the bulk reads",
                 r.stats.read_wakeups, r.stats.read_ticks, r.stats.read_stops);
}

/*
 * The read-ahead limit never stops a consumer that gathers chunks before it releases any: with
 * every queued chunk taken, it is not behind but holding, which only the budget bounds. Here
 * it takes whole chunks until it holds 600 KB of rows (more than the 256 KiB limit, less than
 * the 4 MiB budget), then gives them all back, to the end of v_bench_100k. Before the limit
 * gave way to an empty queue, the stream stopped for good at the first 256 KiB.
 */
static void gathered_row(void *ud, const fw_row_t *row)
{
    res_row(ud, row);
}

static void test_a_consumer_gathering_chunks_past_the_read_ahead_limit_gets_every_row(
    void **state)
{
    (void)state;
    const oracle_t *o = view_oracle("v_bench_100k", false);
    sess_t S;
    sess_open(&S, true, false);
    fw_query_t *q = query("v_bench_100k", 0, 0);
    fw_stream_t *s;
    fw_error_t err;
    assert_int_equal(fw_stream_start(S.conn, q, NULL, NULL, &s, &err), 0);
    fw_query_free(q);
    res_t r;
    res_init(&r);
    uint64_t t0 = uv_hrtime();
    gathered_t g;
    r.code = gather_chunks(s, 600 * KIB, gathered_row, &r, &g);
    fw_stream_stats(s, &r.stats);
    res_finish(&r);
    check_res(&r, o, false, "gathering consumer");
    print_message("gathering consumer: %.1f s, %zu batches of 600 KB, at most %zu bytes held, %" PRIu64
                  " read stops\n",
                  secs_since(t0), g.batches, g.most, r.stats.read_stops);
    assert_true(g.batches >= 30);
    fw_stream_free(s);
    sess_close(&S);
}

/*
 * A cancel while the producer waits at the read-ahead limit, its bulk reads kept across the
 * stall: the queued chunks pin its slabs and the consumer, blocked in fw_stream_cancel,
 * releases nothing; the cancel completes (0, then FW_ECANCELED, not FW_ETIMEDOUT) and the
 * connection runs the next query. (It passes without the cancel's reset of the limit too: the
 * rest of the reply is dropped as it is read. The reset is for a discard that needs a slab.)
 */
static void test_a_cancel_at_the_read_ahead_limit_completes(void **state)
{
    (void)state;
    sess_t S;
    sess_open(&S, true, false);
    fw_query_t *q = query("v_bench_1m", 0, 0);
    assert_int_equal(fw_query_cancel_timeout(q, 1500), 0);
    fw_stream_t *s;
    fw_error_t err;
    assert_int_equal(fw_stream_start(S.conn, q, NULL, NULL, &s, &err), 0);
    fw_query_free(q);
    fw_row_t row;
    assert_int_equal(fw_stream_next(s, &row, 5000), FW_ROW);
    /* The loop thread reads on to the limit and stalls there, chunks queued. */
    fw_stream_stats_t st;
    uint64_t t0 = uv_hrtime();
    do {
        sleep_ms(20);
        fw_stream_stats(s, &st);
    } while (st.read_stops == 0 && secs_since(t0) < 10 * SLOW);
    assert_true(st.read_stops > 0);
    assert_true(st.chunks_buffered > 0);
    int rc = fw_stream_cancel(s);
    if (rc != 0)
        fail_msg("fw_stream_cancel at the read-ahead limit returned %s (%s): it waited for a "
                 "consumer that holds the queue", fw_strerror(rc), fw_stream_error(s)->message);
    assert_int_equal(fw_stream_next(s, &row, 1000), FW_ECANCELED);
    fw_stream_free(s);
    expect_view(&S, "v_fixture", false, CONSUME_NEXT); /* the connection runs the next query */
    sess_close(&S);
}

/* ---- 7. no allocation per row ----------------------------------------------------------- */

/* Streams `view` on S, counting allocator calls from the start to the end (before the free)
 * and from row `from` to the end. */
static void count_stream(sess_t *S, const char *view, size_t budget, uint64_t from, uint64_t *whole,
                         uint64_t *tail, res_t *r)
{
    fw_query_t *q = query(view, 0, budget);
    fw_stream_t *s;
    fw_error_t err;
    res_init(r);
    uint64_t c0 = calls_now(), c1 = 0;
    assert_int_equal(fw_stream_start(S->conn, q, NULL, NULL, &s, &err), 0);
    fw_row_t row;
    int rc;
    uint64_t t0 = uv_hrtime();
    while ((rc = fw_stream_next(s, &row, 1000)) == FW_ROW || rc == FW_AGAIN) {
        assert_true(secs_since(t0) < 120 * SLOW);
        if (rc == FW_ROW) {
            res_row(r, &row);
            if (r->rows == from)
                c1 = calls_now();
        }
    }
    uint64_t c2 = calls_now();
    r->code = rc;
    fw_stream_stats(s, &r->stats);
    res_finish(r);
    fw_stream_free(s);
    fw_query_free(q);
    *whole = c2 - c0;
    *tail = c1 != 0 ? c2 - c1 : 0;
}

static void test_streaming_allocates_nothing_per_row(void **state)
{
    (void)state;
    const oracle_t *o100k = view_oracle("v_bench_100k", false);
    const oracle_t *o1k = view_oracle("v_bench_1k", false);
    sess_t S;
    sess_open(&S, true, false);
    /* The allocator is really ours: starting a query allocates through it. */
    uint64_t before = calls_now();
    fw_query_t *q;
    assert_int_equal(fw_query_new(&q), 0);
    fw_query_free(q);
    assert_true(calls_now() > before);
    char failure[256] = "";
    for (size_t b = 0; b < 3; b++) {
        size_t budget = budgets[b];
        res_t r;
        uint64_t whole1k, tail1k, whole100k, tail100k;
        count_stream(&S, "v_bench_1k", budget, 100, &whole1k, &tail1k, &r);
        check_res(&r, o1k, false, "1k");
        count_stream(&S, "v_bench_100k", budget, 1000, &whole100k, &tail100k, &r);
        check_res(&r, o100k, false, "100k");
        print_message("budget %zu KiB: allocator calls: 1k rows %" PRIu64
                      " (after row 100: %" PRIu64 "), 100k rows %" PRIu64
                      " (after row 1000: %" PRIu64 ")\n",
                      budget / KIB, whole1k, tail1k, whole100k, tail100k);
        /* Slabs and chunks come from pools bounded by the budget: slabs of budget / 4 (at
         * most 64 KiB), at most 2 x 64 + 1 chunks. Once the pools are warm a row costs no
         * allocation; 100 times the rows may cost a few more pool entries, never more per
         * row. The adaptive chunk size (the default) can shrink later in the stream, which
         * puts more (smaller) chunks in flight: those come from the same bounded pool. */
        size_t slab = budget / 4 < 64 * KIB ? budget / 4 : 64 * KIB;
        size_t pool = budget / slab + 2 * 64 + 1;
        size_t tail_max = pool;
        if (failure[0] == '\0' && tail100k > tail_max)
            snprintf(failure, sizeof(failure),
                     "budget %zu KiB: %" PRIu64 " allocator calls after the first 1,000 of "
                     "100,000 rows (at most %zu expected)",
                     budget / KIB, tail100k, tail_max);
        if (failure[0] == '\0' && whole100k > whole1k + pool)
            snprintf(failure, sizeof(failure),
                     "budget %zu KiB: 100k rows took %" PRIu64 " allocator calls, 1k rows %" PRIu64,
                     budget / KIB, whole100k, whole1k);
    }
    sess_close(&S);
    if (failure[0] != '\0')
        fail_msg("%s", failure);
}

/* ---- 8. threaded stress ------------------------------------------------------------------- */

static void test_two_threads_deliver_every_row_exactly_once(void **state)
{
    (void)state;
    const oracle_t *o = view_oracle("v_bench_1m", false);
    sess_t S;
    sess_open(&S, true, false);
    static const size_t chunks[] = {1, 16};
    for (size_t i = 0; i < 2; i++) {
        fw_query_t *q = query("v_bench_1m", chunks[i], 64 * KIB);
        res_t r;
        uint64_t t0 = uv_hrtime();
        sess_stream(&S, q, CONSUME_MIX, &r);
        fw_query_free(q);
        char what[64];
        snprintf(what, sizeof(what), "stress, chunk size %zu", chunks[i]);
        check_res(&r, o, false, what);
        check_ids(&r, false, true, what);
        assert_true(r.stats.read_stops > 0); /* 64 KiB cannot hold 270 MB */
        print_message("%s: %.1f s, %" PRIu64 " chunks, %" PRIu64 " read stops\n", what,
                      secs_since(t0), r.stats.chunks_delivered, r.stats.read_stops);
    }
    sess_close(&S);
}

/* ---- a consumer that keeps a chunk ------------------------------------------------------ */

typedef struct hold_s {
    res_t *r;
    fw_chunk_t *held;
    size_t held_n;
    uint64_t held_sum, hold_rows;
    bool took, done;
} hold_t;

/* Embedded: keeps the first chunk until hold_rows more rows arrived, draining with try_next. */
static void on_ready_hold(fw_stream_t *s, void *ud)
{
    hold_t *h = ud;
    if (h->done)
        return;
    if (!h->took) {
        fw_chunk_t *ch;
        if (fw_stream_next_chunk(s, &ch, 0) != FW_ROW)
            return;
        h->took = true;
        h->held = ch;
        const fw_row_t *rows = fw_chunk_rows(ch, &h->held_n);
        for (size_t i = 0; i < h->held_n; i++)
            res_row(h->r, &rows[i]);
        h->held_sum = rows_sum(rows, h->held_n);
    }
    for (;;) {
        fw_row_t row;
        int rc = fw_stream_try_next(s, &row);
        if (rc == FW_AGAIN)
            return;
        if (rc != FW_ROW) {
            h->done = true;
            h->r->code = rc;
            fw_stream_stats(s, &h->r->stats);
            return;
        }
        res_row(h->r, &row);
        if (h->held != NULL && h->r->rows >= h->hold_rows)
            release_held(s, h->r, &h->held, h->held_n, h->held_sum);
    }
}

/*
 * A chunk taken with fw_stream_next_chunk stays valid until released, "whatever else is called
 * on the stream", and its memory counts against the budget. Keeping one chunk of 16 rows while
 * reading the next 20,000 must work at every budget: one chunk pins one receive slab, and the
 * budget holds several (the pipe is set up with budget / 4 slabs below 256 KiB).
 */
/* How long a stream may go without a row while the consumer keeps a chunk: the 20,000 rows
 * take well under a second even under sanitizers, so 5 s without one is a stall. */
#define HOLD_WAIT_MS 5000

static void test_a_consumer_holding_a_chunk_still_gets_the_rows_after_it(void **state)
{
    (void)state;
    static const size_t hold_budgets[] = {64 * KIB, 128 * KIB, 256 * KIB, 4 * MIB};
    const oracle_t *o = view_oracle("v_bench_100k", false);
    char failures[1024] = "";
    size_t flen = 0;
    for (int m = 0; m < 2; m++) {
        sess_t S;
        sess_open(&S, m == 0, false);
        for (size_t b = 0; b < sizeof(hold_budgets) / sizeof(hold_budgets[0]); b++) {
            size_t budget = hold_budgets[b];
            fw_query_t *q = query("v_bench_100k", 16, budget);
            res_t r;
            res_init(&r);
            hold_t h = {.r = &r, .hold_rows = 20000};
            fw_stream_t *s = NULL;
            assert_int_equal(
                fw_stream_start(S.conn, q, S.threaded ? NULL : on_ready_hold, &h, &s, NULL), 0);
            fw_query_free(q);
            fw_stream_stats_t st;
            bool stalled = false;
            if (S.threaded) {
                assert_int_equal(fw_stream_next_chunk(s, &h.held, (int)(10000 * SLOW)), FW_ROW);
                const fw_row_t *rows = fw_chunk_rows(h.held, &h.held_n);
                for (size_t i = 0; i < h.held_n; i++)
                    res_row(&r, &rows[i]);
                h.held_sum = rows_sum(rows, h.held_n);
                fw_row_t row;
                int rc = FW_ROW;
                while (r.rows < h.hold_rows &&
                       (rc = fw_stream_next(s, &row, HOLD_WAIT_MS)) == FW_ROW)
                    res_row(&r, &row);
                fw_stream_stats(s, &st);
                stalled = rc != FW_ROW;
                release_held(s, &r, &h.held, h.held_n, h.held_sum);
                thr_drain(s, &r, CONSUME_NEXT, 0); /* the rest, once the chunk is back */
            } else {
                uint64_t t0 = uv_hrtime();
                while (!h.done && (!h.took || h.held != NULL) &&
                       secs_since(t0) < HOLD_WAIT_MS / 1000.0)
                    uv_run(&S.loop, UV_RUN_ONCE);
                fw_stream_stats(s, &st);
                stalled = h.held != NULL && !h.done;
                if (h.held != NULL)
                    release_held(s, &r, &h.held, h.held_n, h.held_sum);
                run_until(&S, &h.done, 60, "the rest after the release");
            }
            fw_stream_free(s);
            res_finish(&r);
            char what[128];
            snprintf(what, sizeof(what), "%s, budget %zu KiB", S.name, budget / KIB);
            check_res(&r, o, false, what);
            check_ids(&r, false, true, what);
            if (stalled && flen < sizeof(failures))
                flen += (size_t)snprintf(
                    failures + flen, sizeof(failures) - flen,
                    "\n  %s: no row for 5 s after %" PRIu64
                    " rows while one chunk of %zu rows was held (bytes_buffered %" PRIu64 ")",
                    what, st.rows_yielded, h.held_n, st.bytes_buffered);
        }
        sess_close(&S);
    }
    if (failures[0] != '\0')
        fail_msg("the stream stopped while the consumer held one chunk:%s", failures);
}

/* ---- 9. fw_stream_free mid-stream -------------------------------------------------------------
 */

static void test_freeing_a_stream_mid_way_drops_the_rest_and_frees_the_connection(void **state)
{
    (void)state;
    const oracle_t *fx = view_oracle("v_fixture", true);
    for (int m = 0; m < 4; m++) {
        sess_t S;
        sess_open(&S, m < 2, m % 2 == 1);
        fw_query_t *q = query("v_bench_1m", 0, 0);
        fw_query_t *next = query("v_fixture", 0, 0);
        res_t r;
        res_init(&r);
        uint64_t t0 = uv_hrtime();
        int busy = 0;
        if (S.threaded) {
            fw_stream_t *s;
            assert_int_equal(fw_stream_start(S.conn, q, NULL, NULL, &s, NULL), 0);
            thr_drain(s, &r, CONSUME_NEXT, 1000);
            fw_stream_free(s);
            /* The rest (~270 MB) is read and dropped: the connection is busy until then. */
            fw_stream_t *s2 = NULL;
            fw_error_t err;
            int rc;
            while ((rc = fw_stream_start(S.conn, next, NULL, NULL, &s2, &err)) == FW_EBUSY) {
                busy++;
                if (secs_since(t0) > 30 * SLOW)
                    fail_msg("%s: still busy after %.0f s", S.name, 30 * SLOW);
                sleep_ms(5);
            }
            assert_int_equal(rc, 0);
            res_t r2;
            res_init(&r2);
            thr_drain(s2, &r2, CONSUME_NEXT, 0);
            fw_stream_free(s2);
            res_finish(&r2);
            check_res(&r2, fx, true, S.name);
        } else {
            emb_t e = {.S = &S, .r = &r, .how = CONSUME_TRY, .free_after = 1000};
            emb_start_and_run(&e, q);
            assert_null(e.s); /* freed inside the callback */
            assert_int_equal(e.start_after_free, FW_EBUSY);
            busy = 1;
            res_t r2;
            for (;;) {
                res_init(&r2);
                emb_t e2 = {.S = &S, .r = &r2, .how = CONSUME_TRY};
                emb_start_and_run(&e2, next);
                if (r2.start_rc != FW_EBUSY) {
                    if (e2.s != NULL)
                        fw_stream_free(e2.s);
                    res_finish(&r2);
                    break;
                }
                busy++;
                if (secs_since(t0) > 30 * SLOW)
                    fail_msg("%s: still busy after %.0f s", S.name, 30 * SLOW);
                /* let the loop read and drop the rest for a while */
                uint64_t t1 = uv_hrtime();
                while (secs_since(t1) < 0.005)
                    uv_run(&S.loop, UV_RUN_ONCE);
            }
            check_res(&r2, fx, true, S.name);
        }
        assert_int_equal(r.rows, 1000);
        /* the first try right after the free found the connection still draining */
        assert_true(busy > 0);
        print_message("%s: next query after %.2f s (%d busy answers)\n", S.name, secs_since(t0),
                      busy);
        fw_query_free(q);
        fw_query_free(next);
        sess_close(&S);
    }
}

/* ---- 10. the query builder against the server ---------------------------------------------- */

typedef struct wcase_s {
    const char *view;
    const char *path;
    fw_op_t op;
    fw_value_type_t type;
    const char *value;
    const char *sql; /* the same condition, written independently */
    long expect;     /* rows the server must find, or -1: some but not all */
} wcase_t;

static const wcase_t where_cases[] = {
    {"v_fixture", "name", FW_OP_EQ, FW_VALUE_TEXT, "beta", "data->>'name' = 'beta'", 1},
    {"v_fixture", "id", FW_OP_NE, FW_VALUE_NUMBER, "3", "(data->>'id')::numeric <> 3", 4},
    {"v_fixture", "id", FW_OP_LT, FW_VALUE_NUMBER, "3", "(data->>'id')::numeric < 3", 2},
    {"v_fixture", "id", FW_OP_LE, FW_VALUE_NUMBER, "3", "(data->>'id')::numeric <= 3", 3},
    {"v_fixture", "nested.k", FW_OP_GT, FW_VALUE_NUMBER, "3",
     "(data #>> '{nested,k}')::numeric > 3", 2},
    {"v_fixture", "nested.f", FW_OP_GE, FW_VALUE_NUMBER, "1.5",
     "(data #>> '{nested,f}')::numeric >= 1.5", 1},
    {"v_fixture", "name", FW_OP_GT, FW_VALUE_TEXT, "delta", "data->>'name' > 'delta'", 2},
    {"v_fixture", "name", FW_OP_LIKE, FW_VALUE_TEXT, "%ta", "data->>'name' LIKE '%ta'", 2},
    {"v_fixture", "name", FW_OP_ILIKE, FW_VALUE_TEXT, "E%", "data->>'name' ILIKE 'e%'", 1},
    {"v_fixture", "nested.ok", FW_OP_IS_NULL, FW_VALUE_TEXT, NULL,
     "coalesce(data #> '{nested,ok}', 'null') = 'null'::jsonb", 4},
    {"v_fixture", "nested.v", FW_OP_IS_NULL, FW_VALUE_TEXT, NULL,
     "coalesce(data #> '{nested,v}', 'null') = 'null'::jsonb", 5},
    {"v_fixture", "nested.ok", FW_OP_IS_NOT_NULL, FW_VALUE_TEXT, NULL,
     "coalesce(data #> '{nested,ok}', 'null') <> 'null'::jsonb", 1},
    {"v_fixture", "nested.ok", FW_OP_EQ, FW_VALUE_BOOL, "true", "(data #>> '{nested,ok}')::boolean",
     1},
    {"v_fixture", "tags", FW_OP_CONTAINS, FW_VALUE_JSON, "[\"d\"]", "data->'tags' @> '[\"d\"]'", 1},
    {"v_fixture", "", FW_OP_CONTAINS, FW_VALUE_JSON, "{\"name\": \"gamma\"}",
     "data @> '{\"name\": \"gamma\"}'", 1},
    {"v_fixture", "nested", FW_OP_HAS_KEY, FW_VALUE_TEXT, "ok", "data->'nested' ? 'ok'", 1},
    {"v_fixture", NULL, FW_OP_HAS_KEY, FW_VALUE_TEXT, "tags", "data ? 'tags'", 5},
    {"v_fixture", "tags.0", FW_OP_EQ, FW_VALUE_TEXT, "c", "data #>> '{tags,0}' = 'c'", 1},
    {"v_fixture", "nested.s", FW_OP_EQ, FW_VALUE_TEXT, "x\"y", "data #>> '{nested,s}' = 'x\"y'", 1},
    {"v_fixture", "id", FW_OP_EQ, FW_VALUE_TEXT, "3", "false", 0}, /* "3" is not 3 */
    {"v_bench_1k", "status", FW_OP_EQ, FW_VALUE_TEXT, "open", "data->>'status' = 'open'", -1},
    {"v_bench_1k", "cost", FW_OP_GT, FW_VALUE_NUMBER, "500", "(data->>'cost')::numeric > 500", -1},
    {"v_bench_1k", "priority", FW_OP_LE, FW_VALUE_NUMBER, "2", "(data->>'priority')::numeric <= 2",
     -1},
    {"v_bench_1k", "nested.owner.email", FW_OP_LIKE, FW_VALUE_TEXT, "owner1%",
     "data #>> '{nested,owner,email}' LIKE 'owner1%'", -1},
    {"v_bench_1k", "name", FW_OP_ILIKE, FW_VALUE_TEXT, "ITEM-1%", "data->>'name' ILIKE 'item-1%'",
     -1},
    {"v_bench_1k", "active", FW_OP_EQ, FW_VALUE_BOOL, "false", "NOT (data->>'active')::boolean",
     -1},
    {"v_bench_1k", "tags", FW_OP_CONTAINS, FW_VALUE_JSON, "[\"teal\"]",
     "data->'tags' @> '[\"teal\"]'", -1},
    {"v_bench_1k", "tags.0", FW_OP_NE, FW_VALUE_TEXT, "green", "data #>> '{tags,0}' <> 'green'",
     -1},
    {"v_bench_1k", "nested.created_at", FW_OP_LT, FW_VALUE_TEXT, "2020-01-01T01:00:00Z",
     "data #>> '{nested,created_at}' < '2020-01-01T01:00:00Z'", -1},
    {"v_bench_1k", "nested.owner", FW_OP_HAS_KEY, FW_VALUE_TEXT, "email",
     "data #> '{nested,owner}' ? 'email'", 1000},
};

/* Streams q on S and compares with psql running `sql`. */
static void expect_query(sess_t *S, const fw_query_t *q, const char *sql, bool ordered, long expect,
                         const char *what)
{
    const oracle_t *o = oracle(sql, ordered);
    if (expect >= 0 && o->rows != (uint64_t)expect)
        fail_msg("%s: the server finds %" PRIu64 " rows for %s, the test expects %ld", what,
                 o->rows, sql, expect);
    if (expect < 0 && (o->rows == 0 || o->rows >= 1000))
        fail_msg("%s: %s selects %" PRIu64 " rows: not a useful case", what, sql, o->rows);
    res_t r;
    sess_stream(S, q, CONSUME_TRY, &r);
    char w[512];
    snprintf(w, sizeof(w), "%s %s [%s]", S->name, what, sql);
    check_res(&r, o, ordered, w);
}

static void where_case_sql(const wcase_t *c, char *sql, size_t cap)
{
    snprintf(sql, cap, "SELECT data FROM %s WHERE %s", c->view, c->sql);
}

static bool keep_bucket_0(void *ud, const fw_row_t *row)
{
    atomic_uint_fast64_t *calls = ud;
    atomic_fetch_add_explicit(calls, 1, memory_order_relaxed);
    static const char key[] = "\"bucket\": 0,";
    size_t k = sizeof(key) - 1;
    if (row->is_null)
        return false;
    for (size_t i = 0; i + k <= row->len; i++)
        if (memcmp(row->json + i, key, k) == 0)
            return true;
    return false;
}

/* The statement_timeout the server applies to a query on S (v_fixture_settings). */
static void setting_seen(sess_t *S, uint32_t timeout_ms, char *out, size_t cap)
{
    fw_query_t *q = query("v_fixture_settings", 0, 0);
    if (timeout_ms != 0)
        assert_int_equal(fw_query_statement_timeout(q, timeout_ms), 0);
    res_t r;
    sess_stream(S, q, CONSUME_TRY, &r);
    fw_query_free(q);
    assert_int_equal(r.code, FW_END);
    assert_int_equal(r.rows, 1);
    snprintf(out, cap, "%s", r.text);
}

static void test_typed_predicates_and_the_builder_match_the_server(void **state)
{
    (void)state;
    size_t ncases = sizeof(where_cases) / sizeof(where_cases[0]);
    char sql[1024];
    /* the oracles first, while no fwire thread runs */
    for (size_t i = 0; i < ncases; i++) {
        where_case_sql(&where_cases[i], sql, sizeof(sql));
        oracle(sql, where_cases[i].view[2] == 'f');
    }
    for (int m = 0; m < 2; m++) {
        sess_t S;
        sess_open(&S, m == 0, m == 1);
        for (size_t i = 0; i < ncases; i++) {
            const wcase_t *c = &where_cases[i];
            fw_query_t *q = query(c->view, 0, 0);
            assert_int_equal(fw_query_where(q, c->path, c->op, c->type, c->value), 0);
            where_case_sql(c, sql, sizeof(sql));
            expect_query(&S, q, sql, c->view[2] == 'f', c->expect, "where");
            fw_query_free(q);
        }

        /* IN lists, two predicates ANDed, trusted SQL */
        fw_query_t *q = query("v_fixture", 0, 0);
        const char *ids[] = {"1", "3", "5"};
        assert_int_equal(fw_query_where_in(q, "id", FW_VALUE_NUMBER, ids, 3), 0);
        expect_query(&S, q, "SELECT data FROM v_fixture WHERE (data->>'id')::int IN (1, 3, 5)",
                     true, 3, "where_in");
        fw_query_free(q);
        q = query("v_fixture", 0, 0);
        const char *names[] = {"alpha", "zeta"};
        assert_int_equal(fw_query_where_in(q, "name", FW_VALUE_TEXT, names, 2), 0);
        expect_query(&S, q, "SELECT data FROM v_fixture WHERE data->>'name' = 'alpha'", true, 1,
                     "where_in text");
        fw_query_free(q);
        q = query("v_fixture", 0, 0);
        assert_int_equal(fw_query_where_in(q, "name", FW_VALUE_TEXT, names, 0), 0);
        expect_query(&S, q, "SELECT data FROM v_fixture WHERE false", true, 0, "where_in none");
        fw_query_free(q);
        q = query("v_bench_1k", 0, 0);
        assert_int_equal(fw_query_where(q, "bucket", FW_OP_LT, FW_VALUE_NUMBER, "5"), 0);
        assert_int_equal(fw_query_where(q, "status", FW_OP_NE, FW_VALUE_TEXT, "done"), 0);
        assert_int_equal(fw_query_where_sql(q, "(data->>'id')::int % 7 = 0 -- trailing comment"),
                         0);
        expect_query(&S, q,
                     "SELECT data FROM v_bench_1k WHERE (data->>'bucket')::int < 5 AND "
                     "data->>'status' <> 'done' AND (data->>'id')::int % 7 = 0",
                     false, -1, "and");
        fw_query_free(q);

        /* ORDER BY with a collation, descending; LIMIT and OFFSET */
        q = query("v_bench_1k", 0, 0);
        assert_int_equal(fw_query_where(q, "bucket", FW_OP_GE, FW_VALUE_NUMBER, "5"), 0);
        assert_int_equal(fw_query_order_by(q, "data->>'name'", "C", true), 0);
        assert_int_equal(fw_query_limit(q, 10), 0);
        assert_int_equal(fw_query_offset(q, 5), 0);
        expect_query(&S, q,
                     "SELECT data FROM v_bench_1k WHERE (data->>'bucket')::int >= 5 "
                     "ORDER BY data->>'name' COLLATE \"C\" DESC LIMIT 10 OFFSET 5",
                     true, 10, "order by C desc, limit, offset");
        fw_query_free(q);
        q = query("v_bench_1k", 0, 0);
        assert_int_equal(fw_query_order_by(q, "(data->>'bucket')::int", NULL, false), 0);
        assert_int_equal(fw_query_order_by(q, "(data->>'id')::int", NULL, true), 0);
        assert_int_equal(fw_query_limit(q, 250), 0);
        expect_query(&S, q,
                     "SELECT data FROM v_bench_1k ORDER BY (data->>'bucket')::int, "
                     "(data->>'id')::int DESC LIMIT 250",
                     true, 250, "two order keys");
        fw_query_free(q);
        q = query("v_bench_1k", 0, 0);
        assert_int_equal(fw_query_order_by(q, "(data->>'id')::int", NULL, false), 0);
        assert_int_equal(fw_query_offset(q, 995), 0);
        expect_query(&S, q, "SELECT data FROM v_bench_1k ORDER BY (data->>'id')::int OFFSET 995",
                     true, 5, "offset");
        fw_query_free(q);
        q = query("v_bench_1k", 0, 0);
        assert_int_equal(fw_query_limit(q, 0), 0);
        expect_query(&S, q, "SELECT data FROM v_bench_1k LIMIT 0", true, 0, "limit 0");
        fw_query_free(q);

        /* A client-side predicate keeping bucket 0 (10 %) */
        atomic_uint_fast64_t calls;
        atomic_init(&calls, 0);
        q = query("v_bench_1k", 16, 0);
        assert_int_equal(fw_query_predicate(q, keep_bucket_0, &calls), 0);
        res_t r;
        sess_stream(&S, q, CONSUME_TRY, &r);
        fw_query_free(q);
        check_res(&r, oracle("SELECT data FROM v_bench_1k WHERE (data->>'bucket')::int = 0", false),
                  false, "predicate");
        assert_int_equal(r.rows, 100);
        assert_int_equal(r.stats.rows_filtered + r.rows, 1000);
        assert_int_equal(atomic_load(&calls), 1000);

        /* A statement timeout: the rows before it, then 57014; the setting does not leak. */
        char before[256], during[256], after[256];
        setting_seen(&S, 0, before, sizeof(before));
        setting_seen(&S, 1234, during, sizeof(during));
        assert_string_equal(during, "{\"statement_timeout\": \"1234ms\"}");
        q = query("v_fixture_sleepy", 1, 0);
        assert_int_equal(fw_query_statement_timeout(q, 250), 0);
        uint64_t t0 = uv_hrtime();
        sess_stream(&S, q, CONSUME_TRY, &r);
        fw_query_free(q);
        double took = secs_since(t0);
        if (r.code != FW_ESERVER)
            fail_msg("%s: sleepy view ended with %s after %" PRIu64 " rows", S.name,
                     fw_err_name(r.code), r.rows);
        assert_string_equal(r.err.sqlstate, "57014");
        assert_true(r.rows >= 1 && r.rows < 10); /* ~2 rows of 100 ms fit in 250 ms */
        check_ids(&r, true, true, "sleepy");
        assert_true(took < 0.9 * SLOW); /* not the full second the view takes */
        setting_seen(&S, 0, after, sizeof(after));
        assert_string_equal(after, before);
        assert_null(strstr(before, "1234"));
        print_message("%s: statement timeout after %" PRIu64 " rows in %.2f s; setting %s\n",
                      S.name, r.rows, took, after);
        sess_close(&S);
    }
}

/* ---- 11. closing the connection under a running stream ------------------------------------ */

static void test_closing_the_connection_ends_a_running_stream_with_eclosed(void **state)
{
    (void)state;
    for (int m = 0; m < 4; m++) {
        int64_t live0 = live_now();
        sess_t S;
        sess_open(&S, m < 2, m % 2 == 1);
        fw_query_t *q = query("v_bench_1m", 0, 0);
        res_t r;
        res_init(&r);
        if (S.threaded) {
            fw_stream_t *s;
            assert_int_equal(fw_stream_start(S.conn, q, NULL, NULL, &s, NULL), 0);
            thr_drain(s, &r, CONSUME_NEXT, 1000);
            fw_conn_close_sync(S.conn);
            S.conn = NULL;
            /* what was queued, then the end */
            thr_drain(s, &r, CONSUME_MIX, 0);
            fw_row_t row;
            assert_int_equal(fw_stream_next(s, &row, 0), FW_ECLOSED); /* sticky */
            fw_stream_free(s);
            res_finish(&r);
        } else {
            emb_t e = {.S = &S, .r = &r, .how = CONSUME_TRY, .close_after = 1000};
            emb_start_and_run(&e, q);
            assert_true(e.closed_conn);
            assert_non_null(e.s);
            fw_row_t row;
            assert_int_equal(fw_stream_try_next(e.s, &row), FW_ECLOSED); /* sticky */
            fw_stream_free(e.s);
            res_finish(&r);
        }
        fw_query_free(q);
        if (r.code != FW_ECLOSED)
            fail_msg("%s: ended with %s (%s)", S.name, fw_err_name(r.code), r.err.message);
        assert_int_equal(r.err.code, FW_ECLOSED);
        assert_non_null(strstr(r.err.message, "closed"));
        assert_true(r.rows >= 1000 && r.rows < 1000000);
        check_ids(&r, false, true, S.name); /* every queued row, in order */
        assert_int_equal(r.stats.state, FW_STREAM_FAILED);
        sess_close(&S); /* embedded: the loop closes clean (uv_loop_close == 0) */
        assert_int_equal(live_now(), live0);
    }
}

int main(void)
{
    /* Before anything else: fwire's memory comes from this allocator for the whole run. */
    static const fw_allocator_t counting = {count_malloc, count_realloc, count_free, NULL};
    if (fw_allocator_set(&counting) != 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_view_arrives_exactly_as_the_server_has_it),
        cmocka_unit_test(test_rows_then_a_server_error_and_the_connection_runs_the_next_query),
        cmocka_unit_test(test_a_notice_mid_stream_reaches_the_hook_and_every_row_arrives),
        cmocka_unit_test(test_a_client_encoding_switch_fails_after_the_rows_before_it),
        cmocka_unit_test(test_schema_errors_fail_the_stream_and_the_connection_runs_the_next_query),
        cmocka_unit_test(test_a_second_stream_is_refused_while_the_first_runs),
        cmocka_unit_test(test_a_slow_consumer_keeps_memory_within_the_budget),
        cmocka_unit_test(
            test_a_threaded_stream_reads_at_most_256_kib_ahead_and_its_stalls_keep_bulk_reads),
        cmocka_unit_test(
            test_a_consumer_gathering_chunks_past_the_read_ahead_limit_gets_every_row),
        cmocka_unit_test(test_a_cancel_at_the_read_ahead_limit_completes),
        cmocka_unit_test(test_streaming_allocates_nothing_per_row),
        cmocka_unit_test(test_two_threads_deliver_every_row_exactly_once),
        cmocka_unit_test(test_a_consumer_holding_a_chunk_still_gets_the_rows_after_it),
        cmocka_unit_test(test_freeing_a_stream_mid_way_drops_the_rest_and_frees_the_connection),
        cmocka_unit_test(test_typed_predicates_and_the_builder_match_the_server),
        cmocka_unit_test(test_closing_the_connection_ends_a_running_stream_with_eclosed),
    };
    /* FW_TEST_FILTER=pattern runs the matching cases only (cmocka's glob). */
    const char *filter = getenv("FW_TEST_FILTER");
    if (filter != NULL && filter[0] != '\0')
        cmocka_set_test_filter(filter);
    return cmocka_run_group_tests_name("lib_stream_live", tests, NULL, NULL);
}
