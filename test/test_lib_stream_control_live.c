/* SPDX-License-Identifier: MIT */
/*
 * Stream control against the harness's real PostgreSQL 15 (test/with-pg.sh): pause, resume,
 * cancel, free, and the idle, pause and cancel timeouts (fwire.h "streams"; RELIABILITY.md
 * bars 7 and 8, decisions 8 and 9).
 *
 * What the server does is read from the server, never from fwire: psql (as the admin user,
 * over the unix socket) reads pg_stat_activity for the query's backend (a paused stream must
 * leave it `active`, waiting in `ClientWrite`; a cancelled one `idle`), and the rows are
 * checked against psql's count, byte count and MD5 sum of the same view as in
 * test_lib_stream_live.c. The bench views have no ORDER BY, so their rows' ids must be
 * consecutive with at most one wrap-around (a synchronized scan may start mid-table).
 *
 * Every wait is bounded; the whole binary is meant to run in well under 90 s (gcc), so it
 * also fits under ASan and TSan. FW_TEST_FILTER=pattern runs the matching cases only.
 */
/* The MD5 of every row: OpenSSL's one-shot MD5() allocates nothing (as in the live test). */
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

#include "stream_oracle.h"

/* The admin user sees every backend in pg_stat_activity. */
static void psql(const char *sql, char *out, size_t cap)
{
    psql_as("FW_TEST_ADMIN", sql, out, cap);
}

#define MIB ((size_t)1024 * 1024)

/* "state|wait_event" of a backend in pg_stat_activity ("" when it is gone). */
static void activity(int32_t pid, char *out, size_t cap)
{
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT coalesce(state, '') || '|' || coalesce(wait_event, '') "
             "FROM pg_stat_activity WHERE pid = %d;",
             (int)pid);
    psql(sql, out, cap);
}

/* Polls pg_stat_activity until the backend shows `want` ("state|wait_event"), up to `secs`;
 * true when it did. *seen holds the last answer. */
static bool activity_becomes(int32_t pid, const char *want, double secs, char *seen, size_t cap)
{
    uint64_t t0 = uv_hrtime();
    for (;;) {
        activity(pid, seen, cap);
        if (strcmp(seen, want) == 0)
            return true;
        if (secs_since(t0) > secs * SLOW)
            return false;
        sleep_ms(50);
    }
}

/* ---- sessions: one connection over the unix socket, in one run mode -------------------------- */

typedef struct sess_s {
    bool threaded;
    const char *name;
    fw_runtime_t *rt;
    uv_loop_t loop;
    uv_timer_t tick; /* keeps uv_run(UV_RUN_ONCE) returning, so waits can time out */
    fw_conn_t *conn;
    int32_t pid; /* the backend's */
    int connects, connect_status;
    fw_error_t err;
    int closes;
} sess_t;

LIVE_CONN_CALLBACKS(sess_t)

/* Sessions go over the unix socket, or with this set, over TCP with verified TLS and SCRAM:
 * the cancel connection must then use TLS too. */
static bool sess_tls;

static void sess_open(sess_t *S, bool threaded)
{
    memset(S, 0, sizeof(*S));
    S->threaded = threaded;
    S->name = threaded ? "threaded" : "embedded";
    char ci[1024];
    live_conninfo(ci, sizeof(ci), sess_tls);
    fw_conn_opts_t o;
    fw_conn_opts_init(&o);
    o.conninfo = ci;
    o.use_environment = false; /* hermetic: no PG* variables, no ~/.pgpass */
    if (threaded) {
        assert_int_equal(fw_runtime_new(&S->rt), 0);
        if (fw_conn_connect_sync(S->rt, &o, &S->conn, &S->err) != 0)
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
    S->pid = info.backend_pid;
    assert_true(S->pid > 0);
}

/* Closes the connection (unless a test already did: conn NULL); embedded: the loop must end
 * clean (uv_loop_close == 0). */
static void sess_close(sess_t *S)
{
    if (S->threaded) {
        if (S->conn != NULL)
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
}

/* Runs the embedded loop until *flag, failing after `secs` (stretched under sanitizers). */
static void run_until(sess_t *S, const bool *flag, double secs, const char *what)
{
    live_run_until(&S->loop, S->name, flag, secs, what);
}

static fw_query_t *query(const char *relation)
{
    fw_query_t *q;
    assert_int_equal(fw_query_new(&q), 0);
    assert_int_equal(fw_query_relation(q, relation), 0);
    return q;
}

static fw_stream_t *thr_start(sess_t *S, const fw_query_t *q)
{
    fw_stream_t *s = NULL;
    fw_error_t err;
    int rc = fw_stream_start(S->conn, q, NULL, NULL, &s, &err);
    if (rc != 0)
        fail_msg("%s: fw_stream_start: %s (%s)", S->name, code_name(rc), err.message);
    return s;
}

/* Threaded: starts a stream of the whole `view`. */
static fw_stream_t *thr_start_view(sess_t *S, const char *view)
{
    fw_query_t *q = query(view);
    fw_stream_t *s = thr_start(S, q);
    fw_query_free(q);
    return s;
}

/* Threaded: reads `s` into r until it ends (r->code) or r->rows reaches `limit` (0: none);
 * fails when no row comes for 30 s. Returns the last answer (FW_ROW at the limit). */
static int thr_read(fw_stream_t *s, res_t *r, uint64_t limit)
{
    uint64_t quiet = uv_hrtime();
    while (limit == 0 || r->rows < limit) {
        fw_row_t row;
        int rc = fw_stream_next(s, &row, 1000);
        if (rc == FW_ROW) {
            res_row(r, &row);
            quiet = uv_hrtime();
            continue;
        }
        if (rc == FW_AGAIN) {
            if (secs_since(quiet) > 30 * SLOW)
                fail_msg("no row for %.0f s after %" PRIu64 " rows", 30 * SLOW, r->rows);
            continue;
        }
        if (rc == FW_PAUSED)
            return rc;
        r->code = rc;
        if (rc < 0)
            r->err = *fw_stream_error(s);
        fw_stream_stats(s, &r->stats);
        return rc;
    }
    return FW_ROW;
}

/* Threaded: takes the rows queued on a paused stream until FW_PAUSED (or the end), bounded. */
static int thr_take_queued(fw_stream_t *s, res_t *r)
{
    uint64_t t0 = uv_hrtime();
    for (;;) {
        fw_row_t row;
        int rc = fw_stream_next(s, &row, 1000);
        if (rc == FW_ROW) {
            res_row(r, &row);
            continue;
        }
        if (rc == FW_AGAIN && secs_since(t0) < 10 * SLOW)
            continue;
        return rc;
    }
}

/* Streams `view` to the end on a threaded session and checks it against the oracle. */
static void thr_expect_view(sess_t *S, const char *view, bool ordered, const char *what)
{
    fw_query_t *q = query(view);
    fw_stream_t *s = thr_start(S, q);
    fw_query_free(q);
    res_t r;
    res_init(&r);
    thr_read(s, &r, 0);
    res_finish(&r);
    fw_stream_free(s);
    check_res(&r, view_oracle(view, ordered), ordered, what);
}

/* The checks of a whole v_bench_1m (or _100k) result: the oracle, then consecutive ids. */
static void check_bench(const res_t *r, const char *view, const char *what)
{
    check_res(r, view_oracle(view, false), false, what);
    check_ids(r, false, true, what);
}

/* ---- pause and resume -------------------------------------------------------------------- */

/*
 * fwire.h, fw_stream_pause: "fwire stops reading the socket (the kernel's buffers fill and
 * the server waits in send) ... once they are taken, next/try_next return FW_PAUSED instead of
 * waiting." Paused for ~2 s in the middle of a million rows, then resumed: nothing lost.
 */
static void test_a_paused_stream_holds_the_server_in_clientwrite_and_loses_nothing(void **state)
{
    (void)state;
    sess_t S;
    sess_open(&S, true);
    fw_stream_t *s = thr_start_view(&S, "v_bench_1m");
    res_t r;
    res_init(&r);
    assert_int_equal(thr_read(s, &r, 300000), FW_ROW);
    assert_int_equal(fw_stream_pause(s), 0);
    assert_int_equal(fw_stream_pause(s), 0); /* idempotent */
    fw_stream_stats_t st;
    fw_stream_stats(s, &st);
    assert_int_equal(st.state, FW_STREAM_PAUSED);
    assert_int_equal(thr_take_queued(s, &r), FW_PAUSED);
    /* FW_PAUSED again, at once, whatever the timeout. */
    fw_row_t row;
    uint64_t t0 = uv_hrtime();
    assert_int_equal(fw_stream_next(s, &row, 2000), FW_PAUSED);
    assert_true(secs_since(t0) < 0.1 * SLOW);
    assert_int_equal(fw_stream_try_next(s, &row), FW_PAUSED);
    sleep_ms(100); /* a read already under way when the pause came */
    fw_stream_stats(s, &st);
    uint64_t bytes0 = st.bytes_received;
    char seen[128];
    bool waits = activity_becomes(S.pid, "active|ClientWrite", 2.0, seen, sizeof(seen));
    uint64_t waited = uv_hrtime();
    while (secs_since(waited) < 1.5)
        sleep_ms(50);
    char seen2[128];
    activity(S.pid, seen2, sizeof(seen2));
    fw_stream_stats(s, &st);
    uint64_t bytes1 = st.bytes_received;
    fw_stream_state_t paused_state = st.state;
    assert_int_equal(fw_stream_resume(s), 0);
    assert_int_equal(fw_stream_resume(s), 0); /* idempotent */
    fw_stream_stats(s, &st);
    fw_stream_state_t resumed_state = st.state;
    thr_read(s, &r, 0);
    res_finish(&r);
    assert_int_equal(fw_stream_next(s, &row, 0), FW_END); /* sticky */
    assert_int_equal(fw_stream_pause(s), FW_ESTATE);      /* ended */
    assert_int_equal(fw_stream_resume(s), FW_ESTATE);
    fw_stream_free(s);
    sess_close(&S);
    if (!waits || strcmp(seen2, "active|ClientWrite") != 0)
        fail_msg("paused: the backend showed \"%s\", then \"%s\", not active|ClientWrite", seen,
                 seen2);
    if (bytes1 != bytes0)
        fail_msg("paused: %" PRIu64 " bytes received while paused", bytes1 - bytes0);
    assert_int_equal(paused_state, FW_STREAM_PAUSED);
    assert_int_equal(resumed_state, FW_STREAM_RUNNING);
    check_bench(&r, "v_bench_1m", "paused 2 s");
    assert_int_equal(r.stats.state, FW_STREAM_COMPLETED);
    assert_int_equal(r.stats.pauses, 1);
    assert_int_equal(r.stats.pause_timeouts, 0);
}

/* The embedded consumer of the many-pauses test: pauses from the rows-ready callback, resumes
 * from a uv timer. */
typedef struct flap_s {
    sess_t *S;
    res_t *r;
    fw_stream_t *s;
    uv_timer_t resume;
    uint32_t rnd;
    uint64_t countdown;
    int pause_calls, resume_calls, pause_refused;
    bool paused, done;
    size_t rss_mid;
} flap_t;

static void flap_resume(uv_timer_t *t)
{
    flap_t *f = t->data;
    if (f->done || !f->paused)
        return;
    f->paused = false;
    f->resume_calls++;
    assert_int_equal(fw_stream_resume(f->s), 0);
    f->countdown = 1 + xorshift(&f->rnd) % 199;
}

static void flap_ready(fw_stream_t *s, void *ud)
{
    flap_t *f = ud;
    for (;;) {
        fw_row_t row;
        int rc = fw_stream_try_next(s, &row);
        if (rc == FW_ROW) {
            res_row(f->r, &row);
            if (!f->paused && f->pause_calls < 1000 && --f->countdown == 0) {
                int p = fw_stream_pause(s);
                if (p == 0) {
                    f->paused = true;
                    f->pause_calls++;
                    if (f->pause_calls == 100)
                        f->rss_mid = rss_bytes();
                } else {
                    f->pause_refused++;
                }
            }
            continue;
        }
        if (rc == FW_AGAIN)
            return;
        if (rc == FW_PAUSED) {
            assert_true(f->paused);
            uv_timer_start(&f->resume, flap_resume, xorshift(&f->rnd) % 2, 0);
            return;
        }
        f->done = true;
        f->r->code = rc;
        if (rc < 0)
            f->r->err = *fw_stream_error(s);
        fw_stream_stats(s, &f->r->stats);
        return;
    }
}

/* RELIABILITY bar 8: "Pause/resume loses nothing and never stalls ... Memory stays bounded." */
static void test_a_thousand_pauses_lose_no_row_and_keep_memory_flat(void **state)
{
    (void)state;
    for (int m = 0; m < 2; m++) {
        sess_t S;
        sess_open(&S, m == 0);
        fw_query_t *q = query("v_bench_1m");
        /* A small budget bounds the rows queued when a pause comes (each pause takes them
         * first), so 1,000 pauses fit in the million rows however slow the consumer is. */
        assert_int_equal(fw_query_max_memory(q, 64 * 1024), 0);
        assert_int_equal(fw_query_chunk_size(q, 16), 0);
        res_t r;
        res_init(&r);
        int pauses = 0;
        size_t rss_mid = 0, rss_end;
        uint64_t t0 = uv_hrtime();
        if (S.threaded) {
            fw_stream_t *s = thr_start(&S, q);
            uint32_t rnd = 0x12345u;
            for (;;) {
                uint64_t at = r.rows + 1 + xorshift(&rnd) % 199;
                int rc = thr_read(s, &r, pauses < 1000 ? at : 0);
                if (rc != FW_ROW) {
                    if (pauses < 1000)
                        fail_msg("after %d pauses and %" PRIu64 " rows: %s", pauses, r.rows,
                                 code_name(rc));
                    break;
                }
                if (fw_stream_pause(s) != 0)
                    continue; /* ended meanwhile: the next read says so */
                pauses++;
                if (pauses == 100)
                    rss_mid = rss_bytes();
                rc = thr_take_queued(s, &r);
                if (rc != FW_PAUSED && rc != FW_END)
                    fail_msg("pause %d: %s after %" PRIu64 " rows", pauses, code_name(rc), r.rows);
                if (xorshift(&rnd) % 8 == 0)
                    sleep_ms(1); /* sometimes long enough for the loop to stop reading */
                if (rc == FW_PAUSED)
                    assert_int_equal(fw_stream_resume(s), 0);
            }
            fw_stream_free(s);
        } else {
            flap_t f = {.S = &S, .r = &r, .rnd = 0x777u, .countdown = 500};
            assert_int_equal(uv_timer_init(&S.loop, &f.resume), 0);
            f.resume.data = &f;
            fw_error_t err;
            assert_int_equal(fw_stream_start(S.conn, q, flap_ready, &f, &f.s, &err), 0);
            run_until(&S, &f.done, 60, "1,000 pauses");
            fw_stream_free(f.s);
            uv_close((uv_handle_t *)&f.resume, NULL);
            pauses = f.pause_calls;
            rss_mid = f.rss_mid;
            assert_int_equal(f.pause_refused, 0);
        }
        rss_end = rss_bytes();
        res_finish(&r);
        fw_query_free(q);
        sess_close(&S);
        char what[64];
        snprintf(what, sizeof(what), "%s, %d pauses", S.name, pauses);
        print_message("%s: %.2f s, %" PRIu64 " pauses applied, RSS %zu -> %zu KiB\n", what,
                      secs_since(t0), r.stats.pauses, rss_mid / 1024, rss_end / 1024);
        check_bench(&r, "v_bench_1m", what);
        assert_int_equal(pauses, 1000);
        assert_true(r.stats.pauses >= 1 && r.stats.pauses <= 1000);
        /* Flat: what the stream needs was allocated before the 100th pause. */
        if (rss_mid != 0 && rss_end > rss_mid + 16 * MIB * (size_t)SLOW)
            fail_msg("%s: RSS grew from %zu to %zu KiB between pause 100 and the end", what,
                     rss_mid / 1024, rss_end / 1024);
    }
}

/* ---- cancel ---------------------------------------------------------------------------------- */

/* fw_stream_cancel, timed; fails past `secs` (stretched under sanitizers). */
static int timed_cancel(fw_stream_t *s, double secs, const char *what)
{
    uint64_t t0 = uv_hrtime();
    int rc = fw_stream_cancel(s);
    double took = secs_since(t0);
    if (took > secs * SLOW)
        fail_msg("%s: fw_stream_cancel took %.2f s", what, took);
    return rc;
}

/*
 * fwire.h, fw_stream_cancel: "Threaded mode: waits until the cancel is complete ... Returns 0
 * ... Afterwards next/try_next return FW_ECANCELED (sticky)." RELIABILITY bar 7: the
 * connection runs the next query, which a late cancel never hits.
 */
static void cancel_mid_stream(bool tls)
{
    int64_t live0 = live_now();
    sess_t S;
    sess_tls = tls;
    sess_open(&S, true);
    sess_tls = false;
    fw_conn_info_t info;
    assert_int_equal(fw_conn_info(S.conn, &info), 0);
    if (tls && (info.tls_version == NULL || strcmp(info.transport, "tcp") != 0))
        fail_msg("the TLS session is not TLS over TCP");
    fw_stream_t *s = thr_start_view(&S, "v_bench_1m");
    res_t r;
    res_init(&r);
    assert_int_equal(thr_read(s, &r, 200000), FW_ROW);
    assert_int_equal(timed_cancel(s, 1.0, "mid-stream"), 0);
    char seen[128];
    activity(S.pid, seen, sizeof(seen)); /* right after: no polling */
    fw_row_t row;
    assert_int_equal(fw_stream_next(s, &row, 0), FW_ECANCELED);
    assert_int_equal(fw_stream_next(s, &row, 100), FW_ECANCELED); /* sticky */
    assert_int_equal(fw_stream_try_next(s, &row), FW_ECANCELED);
    assert_int_equal(fw_stream_error(s)->code, FW_ECANCELED);
    fw_stream_stats_t st;
    fw_stream_stats(s, &st);
    assert_int_equal(st.state, FW_STREAM_CANCELLED);
    assert_int_equal(fw_stream_cancel(s), 0); /* twice: harmless */
    assert_int_equal(fw_stream_pause(s), FW_ESTATE);
    fw_stream_free(s);
    if (strncmp(seen, "idle|", 5) != 0)
        fail_msg("right after the cancel the backend shows \"%s\", not idle", seen);
    thr_expect_view(&S, "v_fixture", true, "v_fixture after a cancel");
    sess_close(&S);
    assert_int_equal(live_now(), live0);
}

/* Over the unix socket, and over TCP with TLS (verify-full, SCRAM-SHA-256-PLUS): the cancel
 * connection then does its own TLS handshake to the same address before the CancelRequest. */
static void test_a_cancel_mid_stream_leaves_the_backend_idle_and_the_connection_usable(void **state)
{
    (void)state;
    cancel_mid_stream(false);
    cancel_mid_stream(true);
}

/* Decision 8: "cancel() on a paused stream resumes reading and discards rows until the query
 * ends." Also: cancelling twice, and cancelling after the last row, are harmless. */
static void test_cancel_while_paused_twice_and_after_the_last_row(void **state)
{
    (void)state;
    sess_t S;
    sess_open(&S, true);
    /* paused */
    fw_stream_t *s = thr_start_view(&S, "v_bench_1m");
    res_t r;
    res_init(&r);
    assert_int_equal(thr_read(s, &r, 50000), FW_ROW);
    assert_int_equal(fw_stream_pause(s), 0);
    assert_int_equal(thr_take_queued(s, &r), FW_PAUSED);
    char seen[128];
    if (!activity_becomes(S.pid, "active|ClientWrite", 2.0, seen, sizeof(seen)))
        fail_msg("paused: the backend shows \"%s\"", seen);
    assert_int_equal(timed_cancel(s, 1.0, "paused"), 0);
    fw_row_t row;
    assert_int_equal(fw_stream_next(s, &row, 0), FW_ECANCELED);
    /* twice */
    assert_int_equal(timed_cancel(s, 0.2, "a second cancel"), 0);
    assert_int_equal(fw_stream_next(s, &row, 0), FW_ECANCELED);
    fw_stream_free(s);
    activity(S.pid, seen, sizeof(seen));
    if (strncmp(seen, "idle|", 5) != 0)
        fail_msg("after cancelling a paused stream the backend shows \"%s\"", seen);
    thr_expect_view(&S, "v_fixture", true, "v_fixture after cancelling a paused stream");

    /* after the last row (the end not yet read), then after FW_END */
    for (int after_end = 0; after_end < 2; after_end++) {
        s = thr_start_view(&S, "v_fixture");
        res_init(&r);
        assert_int_equal(thr_read(s, &r, 5), FW_ROW);
        if (after_end)
            assert_int_equal(fw_stream_next(s, &row, 5000), FW_END);
        else
            sleep_ms(50); /* the end has arrived by now, most likely */
        assert_int_equal(timed_cancel(s, 1.0, "after the last row"), 0);
        int rc = fw_stream_next(s, &row, 0);
        if (after_end)
            assert_int_equal(rc, FW_END); /* sticky, the cancel changed nothing */
        else if (rc != FW_END && rc != FW_ECANCELED)
            fail_msg("cancel after the last row: next gave %s", code_name(rc));
        fw_stream_free(s);
        thr_expect_view(&S, "v_fixture", true, "v_fixture after a cancel at the end");
    }
    sess_close(&S);
}

typedef struct cb_cancel_s {
    res_t *r;
    uint64_t at;
    bool cancelled, done;
    int cancel_rc, calls_after, ends;
    int after_rc; /* what try_next gave in the calls after the cancel */
} cb_cancel_t;

static void cb_cancel_ready(fw_stream_t *s, void *ud)
{
    cb_cancel_t *c = ud;
    if (c->cancelled)
        c->calls_after++;
    for (;;) {
        fw_row_t row;
        int rc = fw_stream_try_next(s, &row);
        if (rc == FW_ROW) {
            assert_false(c->cancelled); /* queued rows are dropped */
            res_row(c->r, &row);
            if (c->r->rows == c->at) {
                c->cancel_rc = fw_stream_cancel(s); /* embedded: returns at once */
                c->cancelled = true;
            }
            continue;
        }
        if (rc == FW_AGAIN)
            return;
        c->ends++;
        c->after_rc = rc;
        c->done = true;
        return;
    }
}

/* fwire.h: "Embedded mode: returns 0 at once; the rows-ready callback runs once more when the
 * cancel is complete, and try_next then returns FW_ECANCELED." */
static void test_a_cancel_from_the_rows_ready_callback_calls_it_once_more(void **state)
{
    (void)state;
    sess_t S;
    sess_open(&S, false);
    fw_query_t *q = query("v_bench_1m");
    res_t r;
    res_init(&r);
    cb_cancel_t c = {.r = &r, .at = 200000};
    fw_stream_t *s = NULL;
    fw_error_t err;
    assert_int_equal(fw_stream_start(S.conn, q, cb_cancel_ready, &c, &s, &err), 0);
    fw_query_free(q);
    uint64_t t0 = uv_hrtime();
    run_until(&S, &c.cancelled, 30, "200,000 rows");
    t0 = uv_hrtime();
    run_until(&S, &c.done, 2, "the callback after the cancel");
    double took = secs_since(t0);
    /* no more calls after the end */
    for (int i = 0; i < 5; i++)
        uv_run(&S.loop, UV_RUN_NOWAIT);
    fw_row_t row;
    int sticky = fw_stream_try_next(s, &row);
    fw_stream_free(s);
    assert_int_equal(c.cancel_rc, 0);
    if (c.after_rc != FW_ECANCELED)
        fail_msg("after the cancel try_next gave %s", code_name(c.after_rc));
    assert_int_equal(sticky, FW_ECANCELED);
    if (c.calls_after != 1)
        fail_msg("the callback ran %d times after the cancel, not once", c.calls_after);
    assert_true(took < 1.0 * SLOW);
    char seen[128];
    activity(S.pid, seen, sizeof(seen));
    if (strncmp(seen, "idle|", 5) != 0)
        fail_msg("after the cancel the backend shows \"%s\"", seen);
    /* the connection runs the next query */
    res_t r2;
    res_init(&r2);
    cb_cancel_t c2 = {.r = &r2, .at = 0};
    q = query("v_fixture");
    assert_int_equal(fw_stream_start(S.conn, q, cb_cancel_ready, &c2, &s, &err), 0);
    fw_query_free(q);
    run_until(&S, &c2.done, 10, "v_fixture after the cancel");
    r2.code = c2.after_rc;
    fw_stream_stats(s, &r2.stats);
    fw_stream_free(s);
    res_finish(&r2);
    check_res(&r2, view_oracle("v_fixture", true), true, "v_fixture after a callback cancel");
    sess_close(&S);
}

/*
 * fwire.h, fw_stream_cancel: "queued rows are dropped ... Afterwards next/try_next return
 * FW_ECANCELED (sticky)." Here the server has already completed (state "completed", rows
 * still queued) when the consumer cancels: the cancel returns 0, so the consumer has every
 * reason to expect no more rows.
 */
static void test_a_cancel_after_completion_still_drops_the_queued_rows(void **state)
{
    (void)state;
    sess_t S;
    sess_open(&S, true);
    fw_stream_t *s = thr_start_view(&S, "v_fixture");
    fw_stream_stats_t st;
    uint64_t t0 = uv_hrtime();
    do {
        sleep_ms(5);
        fw_stream_stats(s, &st);
    } while (st.state == FW_STREAM_RUNNING && secs_since(t0) < 5 * SLOW);
    assert_int_equal(st.state, FW_STREAM_COMPLETED);
    assert_int_equal(st.rows_buffered, 5);
    int rc = fw_stream_cancel(s);
    fw_row_t row;
    int next = fw_stream_next(s, &row, 0);
    fw_stream_stats(s, &st);
    fw_stream_free(s);
    thr_expect_view(&S, "v_fixture", true, "v_fixture after the cancel");
    sess_close(&S);
    assert_int_equal(rc, 0);
    if (next != FW_ECANCELED)
        fail_msg("after fw_stream_cancel returned 0 next gave %s (%" PRIu64
                 " rows still queued, state %s), not FW_ECANCELED",
                 code_name(next), st.rows_buffered, fw_stream_state_name(st.state));
}

/* A cancel racing the end of a small query, at every kind of moment (before the first row,
 * mid-way, after the last row, after FW_END): the next query on the connection always gets
 * exactly v_fixture's rows, never a cancel meant for the one before. */
static void test_a_cancel_racing_completion_never_hits_the_next_query(void **state)
{
    (void)state;
    sess_t S;
    sess_open(&S, true);
    const oracle_t *fx = view_oracle("v_fixture", true);
    uint32_t rnd = 0xc0ffeeu;
    int ended = 0, cancelled = 0;
    for (int i = 0; i < 50; i++) {
        uint64_t at = i < 2 ? (uint64_t)(i * 1001) : xorshift(&rnd) % 1002;
        fw_stream_t *s = thr_start_view(&S, "v_bench_1k");
        res_t r;
        res_init(&r);
        int rc = at == 0 ? FW_ROW : thr_read(s, &r, at > 1000 ? 0 : at);
        char what[64];
        snprintf(what, sizeof(what), "race %d (cancel at row %" PRIu64 ")", i, at);
        if (rc != FW_ROW && rc != FW_END)
            fail_msg("%s: %s", what, code_name(rc));
        int c = timed_cancel(s, 1.0, what);
        if (c != 0)
            fail_msg("%s: fw_stream_cancel gave %s", what, code_name(c));
        fw_row_t row;
        rc = fw_stream_next(s, &row, 0);
        /* FW_ROW: the stream had completed before the cancel, which then kept its queued rows
         * (see test_a_cancel_after_completion_still_drops_the_queued_rows); read them. */
        while (rc == FW_ROW)
            rc = fw_stream_next(s, &row, 0);
        if (rc != FW_END && rc != FW_ECANCELED)
            fail_msg("%s: next gave %s", what, code_name(rc));
        ended += rc == FW_END;
        cancelled += rc == FW_ECANCELED;
        fw_stream_free(s);
        /* at once: fw_stream_cancel returned, so the cancel is complete */
        fw_query_t *q = query("v_fixture");
        s = NULL;
        fw_error_t err;
        rc = fw_stream_start(S.conn, q, NULL, NULL, &s, &err);
        fw_query_free(q);
        if (rc != 0)
            fail_msg("%s: the next query: %s (%s)", what, code_name(rc), err.message);
        res_t r2;
        res_init(&r2);
        thr_read(s, &r2, 0);
        res_finish(&r2);
        fw_stream_free(s);
        check_res(&r2, fx, true, what);
    }
    print_message("%d ended before the cancel, %d cancelled\n", ended, cancelled);
    sess_close(&S);
}

/* fwire.h, fw_stream_free: "If the query still runs, it is cancelled as by fw_stream_cancel
 * (without waiting), so the connection can run the next query once the cancel is complete." */
static void test_freeing_a_running_stream_frees_the_connection_within_a_second(void **state)
{
    (void)state;
    sess_t S;
    sess_open(&S, true);
    for (int paused = 0; paused < 2; paused++) {
        fw_stream_t *s = thr_start_view(&S, "v_bench_1m");
        res_t r;
        res_init(&r);
        assert_int_equal(thr_read(s, &r, 100000), FW_ROW);
        if (paused)
            assert_int_equal(fw_stream_pause(s), 0);
        uint64_t t0 = uv_hrtime();
        fw_stream_free(s);
        fw_query_t *q = query("v_fixture");
        int rc, busy = 0;
        fw_error_t err;
        while ((rc = fw_stream_start(S.conn, q, NULL, NULL, &s, &err)) == FW_EBUSY) {
            busy++;
            if (secs_since(t0) > 1.0 * SLOW)
                break;
            sleep_ms(5);
        }
        double took = secs_since(t0);
        fw_query_free(q);
        if (rc != 0)
            fail_msg("%s: the next query after %.2f s: %s (%s)", paused ? "paused" : "running",
                     took, code_name(rc), err.message);
        res_t r2;
        res_init(&r2);
        thr_read(s, &r2, 0);
        res_finish(&r2);
        fw_stream_free(s);
        check_res(&r2, view_oracle("v_fixture", true), true, "v_fixture after a free");
        print_message("%s: next query after %.3f s (%d busy answers)\n",
                      paused ? "paused" : "running", took, busy);
    }
    sess_close(&S);
}

/* ---- timeouts -------------------------------------------------------------------------------- */

/*
 * fwire.h, fw_query_idle_timeout: fires only when no byte arrives for that long. A row every
 * 100 ms keeps it quiet; a second of silence before the first row does not. (The rows must be
 * wide: the server flushes its 8 KiB output buffer only when it fills or the query ends, so
 * v_fixture_sleepy's small rows all arrive after a second of silence, and the timeout rightly
 * fires there.)
 */
static void test_the_idle_timeout_fires_only_on_silence(void **state)
{
    (void)state;
    for (int m = 0; m < 2; m++) {
        sess_t S;
        sess_open(&S, m == 0);
        if (!S.threaded) {
            sess_close(&S); /* embedded: below, through the callback helper */
            sess_open(&S, false);
        }
        const char *views[2] = {"v_fixture_sleepy_wide", "v_fixture_slow_start"};
        for (int v = 0; v < 2; v++) {
            fw_query_t *q = query(views[v]);
            assert_int_equal(fw_query_idle_timeout(q, 300), 0);
            res_t r;
            res_init(&r);
            uint64_t t0 = uv_hrtime();
            fw_stream_t *s = NULL;
            if (S.threaded) {
                s = thr_start(&S, q);
                thr_read(s, &r, 0);
            } else {
                cb_cancel_t c = {.r = &r, .at = 0};
                fw_error_t err;
                assert_int_equal(fw_stream_start(S.conn, q, cb_cancel_ready, &c, &s, &err), 0);
                run_until(&S, &c.done, 10, views[v]);
                r.code = c.after_rc;
                if (r.code < 0)
                    r.err = *fw_stream_error(s);
                fw_stream_stats(s, &r.stats);
            }
            double took = secs_since(t0);
            fw_query_free(q);
            fw_stream_free(s);
            char what[96];
            snprintf(what, sizeof(what), "%s %s, idle timeout 300 ms", S.name, views[v]);
            if (v == 0) {
                if (r.code != FW_END || r.rows != 10)
                    fail_msg("%s: %s after %" PRIu64 " rows (%s)", what, code_name(r.code), r.rows,
                             r.err.message);
            } else {
                if (r.code != FW_ETIMEDOUT)
                    fail_msg("%s: %s after %" PRIu64 " rows", what, code_name(r.code), r.rows);
                if (strstr(r.err.message, "no data") == NULL)
                    fail_msg("%s: the error says \"%s\"", what, r.err.message);
                assert_int_equal(r.rows, 0);
                assert_true(took < 1.0 * SLOW); /* not after the sleep */
                assert_int_equal(r.stats.state, FW_STREAM_FAILED);
            }
            if (S.threaded) {
                thr_expect_view(&S, "v_fixture", true, what);
            } else {
                res_t r2;
                res_init(&r2);
                cb_cancel_t c2 = {.r = &r2, .at = 0};
                q = query("v_fixture");
                fw_error_t err;
                assert_int_equal(fw_stream_start(S.conn, q, cb_cancel_ready, &c2, &s, &err), 0);
                fw_query_free(q);
                run_until(&S, &c2.done, 10, "v_fixture");
                r2.code = c2.after_rc;
                fw_stream_stats(s, &r2.stats);
                fw_stream_free(s);
                res_finish(&r2);
                check_res(&r2, view_oracle("v_fixture", true), true, what);
            }
        }
        sess_close(&S);
    }
}

/* fwire.h, fw_query_pause_timeout: a forgotten pause ends by itself, as `action` says. */
static void test_a_pause_timeout_resumes_or_cancels_as_asked(void **state)
{
    (void)state;
    sess_t S;
    sess_open(&S, true);
    for (int action = FW_PAUSE_RESUME; action <= FW_PAUSE_CANCEL; action++) {
        const char *what = action == FW_PAUSE_RESUME ? "FW_PAUSE_RESUME" : "FW_PAUSE_CANCEL";
        fw_query_t *q = query("v_bench_100k");
        assert_int_equal(fw_query_pause_timeout(q, 300, (fw_pause_action_t)action), 0);
        fw_stream_t *s = thr_start(&S, q);
        fw_query_free(q);
        res_t r;
        res_init(&r);
        assert_int_equal(thr_read(s, &r, 20000), FW_ROW);
        assert_int_equal(fw_stream_pause(s), 0);
        uint64_t t0 = uv_hrtime();
        assert_int_equal(thr_take_queued(s, &r), FW_PAUSED);
        /* Not waiting: poll until the stream is no longer paused (bounded). */
        fw_stream_stats_t st;
        for (;;) {
            fw_stream_stats(s, &st);
            if (st.state != FW_STREAM_PAUSED || secs_since(t0) > 3.0 * SLOW)
                break;
            sleep_ms(10);
        }
        double took = secs_since(t0);
        if (st.state == FW_STREAM_PAUSED)
            fail_msg("%s: still paused after %.1f s", what, took);
        assert_true(took >= 0.25);
        int rc = thr_read(s, &r, 0);
        fw_stream_stats(s, &st);
        fw_stream_free(s);
        res_finish(&r);
        print_message("%s: the pause ended after %.2f s; %s\n", what, took, code_name(rc));
        assert_int_equal(st.pause_timeouts, 1);
        if (action == FW_PAUSE_RESUME) {
            check_bench(&r, "v_bench_100k", what);
        } else {
            if (rc != FW_ETIMEDOUT)
                fail_msg("%s: the stream ended with %s (%s)", what, code_name(rc), r.err.message);
            assert_int_equal(st.state, FW_STREAM_FAILED);
            assert_true(r.rows < 100000);
            char seen[128];
            activity(S.pid, seen, sizeof(seen));
            if (strncmp(seen, "idle|", 5) != 0)
                fail_msg("%s: the backend shows \"%s\"", what, seen);
        }
        thr_expect_view(&S, "v_fixture", true, what);
    }
    sess_close(&S);
}

/* ---- closing ----------------------------------------------------------------------------- */

typedef struct close_cb_s {
    sess_t *S;
    res_t *r;
    bool paused, done;
    int end;
} close_cb_t;

static void close_ready(fw_stream_t *s, void *ud)
{
    close_cb_t *c = ud;
    for (;;) {
        fw_row_t row;
        int rc = fw_stream_try_next(s, &row);
        if (rc == FW_ROW) {
            res_row(c->r, &row);
            if (c->r->rows == 1000)
                assert_int_equal(fw_stream_pause(s), 0);
            continue;
        }
        if (rc == FW_PAUSED) {
            c->paused = true;
            return;
        }
        if (rc == FW_AGAIN)
            return;
        c->end = rc;
        c->done = true;
        return;
    }
}

/* Closing the connection under a paused stream: the stream ends with FW_ECLOSED, nothing
 * hangs, nothing leaks. */
static void test_closing_the_connection_under_a_paused_stream_ends_it_with_eclosed(void **state)
{
    (void)state;
    for (int m = 0; m < 2; m++) {
        int64_t live0 = live_now();
        sess_t S;
        sess_open(&S, m == 0);
        fw_query_t *q = query("v_bench_1m");
        res_t r;
        res_init(&r);
        if (S.threaded) {
            fw_stream_t *s = thr_start(&S, q);
            assert_int_equal(thr_read(s, &r, 1000), FW_ROW);
            assert_int_equal(fw_stream_pause(s), 0);
            assert_int_equal(thr_take_queued(s, &r), FW_PAUSED);
            uint64_t t0 = uv_hrtime();
            fw_conn_close_sync(S.conn);
            S.conn = NULL;
            assert_true(secs_since(t0) < 2.0 * SLOW);
            /* Rows the loop had parsed before it applied the pause may still come (the
             * consumer's FW_PAUSED only said none was queued then); then the end. */
            int rc = thr_read(s, &r, 0);
            if (rc != FW_ECLOSED)
                fail_msg("threaded: after the close next gave %s", code_name(rc));
            fw_row_t row;
            assert_int_equal(fw_stream_next(s, &row, 0), FW_ECLOSED); /* sticky */
            assert_non_null(strstr(fw_stream_error(s)->message, "closed"));
            fw_stream_stats_t st;
            fw_stream_stats(s, &st);
            assert_int_equal(st.state, FW_STREAM_FAILED);
            fw_stream_free(s);
        } else {
            close_cb_t c = {.S = &S, .r = &r};
            fw_stream_t *s = NULL;
            fw_error_t err;
            assert_int_equal(fw_stream_start(S.conn, q, close_ready, &c, &s, &err), 0);
            run_until(&S, &c.paused, 30, "the pause");
            fw_conn_close(S.conn, on_closed, &S);
            S.conn = NULL;
            run_until(&S, &c.done, 2, "the end after the close");
            assert_int_equal(c.end, FW_ECLOSED);
            fw_row_t row;
            assert_int_equal(fw_stream_try_next(s, &row), FW_ECLOSED);
            fw_stream_free(s);
        }
        fw_query_free(q);
        sess_close(&S);
        assert_true(r.rows >= 1000 && r.rows < 1000000);
        res_finish(&r);
        check_ids(&r, false, true, S.name);
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
        cmocka_unit_test(test_a_paused_stream_holds_the_server_in_clientwrite_and_loses_nothing),
        cmocka_unit_test(test_a_thousand_pauses_lose_no_row_and_keep_memory_flat),
        cmocka_unit_test(
            test_a_cancel_mid_stream_leaves_the_backend_idle_and_the_connection_usable),
        cmocka_unit_test(test_cancel_while_paused_twice_and_after_the_last_row),
        cmocka_unit_test(test_a_cancel_from_the_rows_ready_callback_calls_it_once_more),
        cmocka_unit_test(test_a_cancel_after_completion_still_drops_the_queued_rows),
        cmocka_unit_test(test_a_cancel_racing_completion_never_hits_the_next_query),
        cmocka_unit_test(test_freeing_a_running_stream_frees_the_connection_within_a_second),
        cmocka_unit_test(test_the_idle_timeout_fires_only_on_silence),
        cmocka_unit_test(test_a_pause_timeout_resumes_or_cancels_as_asked),
        cmocka_unit_test(test_closing_the_connection_under_a_paused_stream_ends_it_with_eclosed),
    };
    const char *filter = getenv("FW_TEST_FILTER");
    if (filter != NULL && filter[0] != '\0')
        cmocka_set_test_filter(filter);
    return cmocka_run_group_tests_name("lib_stream_control_live", tests, NULL, NULL);
}
