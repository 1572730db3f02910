/* SPDX-License-Identifier: MIT */
/*
 * Test helper shared by the tests that drive a pool (fw_pool_t) in embedded mode on a loop of
 * the test's own (test_lib_pool_live, test_lib_pool_load_live, test_lib_pool_fake,
 * test_lib_pgbouncer_live): the loop, running it until a flag or for a while, an acquire and
 * its result, closing a pool, and a stream callback that counts rows.
 * Everything is static or static inline: each test takes what it needs. The test calls
 * uv_loop_init(&loop) in its setup and uv_loop_close(&loop) in its teardown.
 * With test/repl_env.h included first, also the options of a pool over the three nodes of the
 * replicated cluster (pool_opts, new_pool).
 */
#ifndef FW_TEST_POOL_LOOP_H
#define FW_TEST_POOL_LOOP_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "fwire.h"

static uv_loop_t loop;

/* Runs the loop until *flag is true or `ms` have passed (it never sleeps: UV_RUN_NOWAIT). */
static inline void run_until(const bool *flag, int ms)
{
    uint64_t t0 = uv_hrtime();
    while (!*flag && uv_hrtime() - t0 < (uint64_t)ms * 1000000u)
        uv_run(&loop, UV_RUN_NOWAIT);
}

static inline void run_for(int ms)
{
    bool never = false;
    run_until(&never, ms);
}

/* One acquire's outcome, as its callback gave it. */
typedef struct got_s {
    bool done;
    int calls; /* how often the callback ran: exactly once for every accepted acquire */
    int status;
    fw_conn_t *conn;
    char message[1024];
    char sqlstate[6];
} got_t;

static inline void on_acquired(fw_pool_t *p, fw_conn_t *c, int status, const fw_error_t *err,
                               void *ud)
{
    (void)p;
    got_t *g = ud;
    g->calls++;
    assert_int_equal(g->calls, 1);
    g->done = true;
    g->status = status;
    g->conn = c;
    if (err != NULL) {
        snprintf(g->message, sizeof(g->message), "%s", err->message);
        memcpy(g->sqlstate, err->sqlstate, sizeof(g->sqlstate));
    }
}

/* fw_pool_acquire, then the loop until its callback (which never runs inside the call). */
static inline got_t acquire(fw_pool_t *p, fw_pool_want_t want, int wait_ms)
{
    got_t g;
    memset(&g, 0, sizeof(g));
    assert_int_equal(fw_pool_acquire(p, want, on_acquired, &g), 0);
    assert_false(g.done);
    run_until(&g.done, wait_ms);
    assert_true(g.done);
    return g;
}

static bool closed_flag;
static inline void on_pool_closed(fw_pool_t *p, void *ud)
{
    (void)p;
    (void)ud;
    assert_false(closed_flag); /* exactly once */
    closed_flag = true;
}

/* fw_pool_close, and the loop until its callback ran (10 s at most). */
static inline void close_pool(fw_pool_t *p)
{
    closed_flag = false;
    fw_pool_close(p, on_pool_closed, NULL);
    run_until(&closed_flag, 10000);
    assert_true(closed_flag);
}

/* A stream's rows counted by its callback (fw_stream_try_next until FW_AGAIN or the end). */
typedef struct rows_s {
    bool done;
    long rows;
    uint64_t bytes;
    int status; /* FW_END, or the error's code */
    double first_row_ms;
} rows_t;

static inline void on_rows(fw_stream_t *s, void *ud)
{
    rows_t *r = ud;
    fw_row_t row;
    int rc;
    while ((rc = fw_stream_try_next(s, &row)) == FW_ROW) {
        if (r->rows == 0)
            r->first_row_ms = (double)uv_hrtime() / 1e6;
        r->rows++;
        r->bytes += row.is_null ? 0 : row.len;
    }
    if (rc != FW_AGAIN && rc != FW_PAUSED) {
        r->status = rc == FW_END ? FW_END : fw_stream_error(s)->code;
        r->done = true;
    }
}

/* Streams q on c to its end (or `ms`), frees the stream; the rows as on_rows counted them. */
static inline rows_t stream_all(fw_conn_t *c, const fw_query_t *q, int ms)
{
    rows_t r;
    memset(&r, 0, sizeof(r));
    fw_stream_t *s = NULL;
    fw_error_t err;
    if (fw_stream_start(c, q, on_rows, &r, &s, &err) != 0)
        fail_msg("fw_stream_start: %s", err.message);
    run_until(&r.done, ms);
    assert_true(r.done);
    fw_stream_free(s);
    return r;
}

/* Asserts that c works: the 5 rows of v_fixture (test/pgcluster.sh, test/pgrepl.sh) come. */
static inline void expect_fixture_rows(fw_conn_t *c)
{
    fw_query_t *q;
    assert_int_equal(fw_query_new(&q), 0);
    assert_int_equal(fw_query_relation(q, "v_fixture"), 0);
    rows_t r = stream_all(c, q, 10000);
    assert_int_equal(r.status, FW_END);
    assert_int_equal(r.rows, 5);
    fw_query_free(q);
}

#ifdef FW_TEST_REPL_ENV_H
static inline void pool_on_log(void *ud, fw_log_level_t level, const char *line)
{
    (void)ud;
    if (level >= FW_LOG_INFO && strncmp(line, "pool:", 5) == 0)
        fprintf(stderr, "%s\n", line);
}

static char pool_conninfo[1024];

/* A pool over the three nodes (SCRAM over TCP; sessions named `app` unless NULL) with a short
 * breaker cooldown and backoff; FW_TEST_VERBOSE=1 prints the pool's own log lines. */
static inline void pool_opts(fw_pool_opts_t *o, unsigned max_size, unsigned timeout_ms,
                             const char *app)
{
    char extra[256];
    if (app != NULL)
        snprintf(extra, sizeof(extra), "application_name=%s", app);
    make_conninfo(pool_conninfo, sizeof(pool_conninfo), 0, app != NULL ? extra : NULL);
    fw_pool_opts_init(o);
    o->conninfo = pool_conninfo;
    o->use_environment = false;
    o->max_size = max_size;
    o->acquire_timeout_ms = timeout_ms;
    o->breaker_cooldown_ms = 1000;
    o->backoff_base_ms = 50;
    if (getenv("FW_TEST_VERBOSE") != NULL)
        o->log_cb = pool_on_log;
}

static inline fw_pool_t *new_pool_with(const fw_pool_opts_t *o)
{
    fw_pool_t *p = NULL;
    fw_error_t err;
    if (fw_pool_new(&p, &loop, o, &err) != 0)
        fail_msg("fw_pool_new: %s", err.message);
    return p;
}

static inline fw_pool_t *new_pool(unsigned max_size, unsigned timeout_ms)
{
    fw_pool_opts_t o;
    pool_opts(&o, max_size, timeout_ms, NULL);
    return new_pool_with(&o);
}
#endif

#endif
