/* SPDX-License-Identifier: MIT */
/*
 * Parallel streams (fw_query_parallel, issue 16) against fake servers (test/fakepg.h), for
 * what PostgreSQL 15 cannot show: a server older than 14 (no TID range scans) refuses a split
 * by ctid with a clear error before any row, and a server whose answer to the set-up query is
 * not what fwire asked for (a hostile or broken server) fails the start with
 * FW_EPROTO_BAD_VALUE, never a stream over made-up ranges. The fake serves the caller's
 * connection and the parts' connections at the same time (`concurrent`). Both run modes: in
 * threaded mode fw_stream_start fails; in embedded mode (the set-up on the test's loop) the
 * failure is the stream's, delivered through its callback before any row.
 */
#include <fwire.h>

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "fakepg.h"

/* The reply to the set-up run: BEGIN (ParseComplete, BindComplete, CommandComplete), then the
 * one-row answer `answer` (JSON text) in a column named data of type json, then ReadyForQuery. */
static void setup_reply(bb_t *b, const char *answer)
{
    m_empty(b, '1');
    m_empty(b, '2');
    m_complete(b, "BEGIN");
    m_empty(b, '1');
    m_empty(b, '2');
    size_t at = msg_begin(b, 'T');
    bb_u16(b, 1);
    bb_str(b, "data");
    bb_u32(b, 0);
    bb_u16(b, 0);
    bb_u32(b, 114); /* json */
    bb_u16(b, 0xffff);
    bb_u32(b, 0xffffffff);
    bb_u16(b, 0);
    msg_end(b, at);
    m_row(b, answer);
    m_complete(b, "SELECT 1");
    m_ready(b);
}

/* Static: a failed assertion longjmps out while the fake server's threads may still run. */
static fakepg_t g_fake;
static bb_t g_startup, g_reply;

/*
 * A parallel stream of n parts over fw_query_relation(relation) (and `key` unless NULL) on a
 * fake server of `version` that answers the set-up with `answer`: fw_stream_start must fail
 * with `want`, a message holding `what`, and no stream.
 */
/* The fake server for the caller's connection and n parts, answering the set-up with `answer`
 * as a server of `version`; its port. */
static int fake_up(const char *version, const char *answer, int n)
{
    memset(&g_fake, 0, sizeof(g_fake));
    bb_free(&g_startup);
    bb_free(&g_reply);
    m_startup_ok(&g_startup, version);
    setup_reply(&g_reply, answer);
    g_fake.startup_reply = g_startup.p;
    g_fake.startup_reply_len = g_startup.len;
    g_fake.query_reply = g_reply.p;
    g_fake.query_reply_len = g_reply.len;
    g_fake.conns = (unsigned)n + 1; /* the caller's connection and the n parts' */
    g_fake.concurrent = true;
    g_fake.io_timeout_ms = (unsigned)(20000 * time_scale());
    assert_int_equal(fakepg_start(&g_fake), 0);
    return g_fake.port;
}

static fw_query_t *par_query(int n, const char *key)
{
    fw_query_t *q;
    assert_int_equal(fw_query_new(&q), 0);
    assert_int_equal(fw_query_relation(q, "t"), 0);
    assert_int_equal(fw_query_parallel(q, n), 0);
    if (key != NULL)
        assert_int_equal(fw_query_partition_key(q, key), 0);
    return q;
}

static void conn_opts(fw_conn_opts_t *o, char *ci, size_t cap, int port)
{
    snprintf(ci, cap,
             "host=127.0.0.1 port=%d dbname=app user=app sslmode=disable connect_timeout=5",
             port);
    fw_conn_opts_init(o);
    o->conninfo = ci;
    o->use_environment = false;
}

static void check_failure(int rc, const fw_error_t *err, int want, const char *what)
{
    assert_int_equal(rc, want);
    assert_int_equal(err->code, want);
    if (strstr(err->message, what) == NULL)
        fail_msg("the message does not say \"%s\": %s", what, err->message);
}

/*
 * Threaded mode: a parallel stream of n parts over relation t (and `key` unless NULL) on a fake
 * server of `version` that answers the set-up with `answer`: fw_stream_start must fail with
 * `want`, a message holding `what`, and no stream.
 */
static void expect_start_fails(const char *version, const char *answer, int n, const char *key,
                               int want, const char *what)
{
    char ci[256];
    fw_conn_opts_t o;
    conn_opts(&o, ci, sizeof(ci), fake_up(version, answer, n));
    fw_runtime_t *rt;
    assert_int_equal(fw_runtime_new(&rt), 0);
    fw_conn_t *c = NULL;
    fw_error_t err;
    if (fw_conn_connect_sync(rt, &o, &c, &err) != 0)
        fail_msg("connect to the fake: %s", err.message);
    fw_query_t *q = par_query(n, key);
    fw_stream_t *s = (fw_stream_t *)&s; /* must come back NULL */
    int rc = fw_stream_start(c, q, NULL, NULL, &s, &err);
    print_message("threaded, server %s, answer %s: %s (%s)\n", version, answer, fw_err_name(rc),
                  err.message);
    check_failure(rc, &err, want, what);
    assert_null(s);
    /* every part connection reached the fake and is closed again */
    assert_int_equal(atomic_load(&g_fake.accepted), n + 1);
    fw_query_free(q);
    fw_conn_close_sync(c);
    fw_runtime_free(rt);
    fakepg_stop(&g_fake);
}

/* ---- embedded mode: the loop is the test's ------------------------------------------------ */

typedef struct emb_s {
    bool connected, closed, ended;
    int connect_status, calls, rows, code;
    fw_error_t err;
} emb_t;

static void on_connect(fw_conn_t *c, int status, const fw_error_t *err, void *ud)
{
    (void)c;
    emb_t *E = ud;
    E->connected = true;
    E->connect_status = status;
    if (err != NULL)
        E->err = *err;
}

static void on_closed(fw_conn_t *c, void *ud)
{
    (void)c;
    ((emb_t *)ud)->closed = true;
}

static void on_rows(fw_stream_t *s, void *ud)
{
    emb_t *E = ud;
    E->calls++;
    fw_row_t row;
    int rc;
    while ((rc = fw_stream_try_next(s, &row)) == FW_ROW)
        E->rows++;
    if (rc != FW_AGAIN && rc != FW_PAUSED && !E->ended) {
        E->ended = true;
        E->code = rc;
        if (rc < 0)
            E->err = *fw_stream_error(s);
    }
}

static void run_until(uv_loop_t *loop, const bool *flag, double seconds)
{
    uint64_t t0 = uv_hrtime();
    while (!*flag && (double)(uv_hrtime() - t0) < seconds * 1e9)
        uv_run(loop, UV_RUN_NOWAIT);
    assert_true(*flag);
}

/* Embedded mode: fw_stream_start returns 0, and the failure comes through the callback, before
 * any row, once. */
static void expect_stream_fails(const char *version, const char *answer, int n, const char *key,
                                int want, const char *what)
{
    char ci[256];
    fw_conn_opts_t o;
    conn_opts(&o, ci, sizeof(ci), fake_up(version, answer, n));
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    emb_t E;
    memset(&E, 0, sizeof(E));
    fw_conn_t *c = NULL;
    assert_int_equal(fw_conn_new(&c, &loop, &o, &E.err), 0);
    assert_int_equal(fw_conn_connect(c, on_connect, &E), 0);
    run_until(&loop, &E.connected, 10 * time_scale());
    assert_int_equal(E.connect_status, 0);
    fw_query_t *q = par_query(n, key);
    fw_stream_t *s = NULL;
    fw_error_t err;
    assert_int_equal(fw_stream_start(c, q, on_rows, &E, &s, &err), 0);
    fw_query_free(q); /* the stream has its own copy */
    run_until(&loop, &E.ended, 20 * time_scale());
    print_message("embedded, server %s, answer %s: %s (%s)\n", version, answer,
                  fw_err_name(E.code), E.err.message);
    check_failure(E.code, &E.err, want, what);
    assert_int_equal(E.rows, 0);
    assert_int_equal(E.calls, 1);
    fw_stream_free(s);
    fw_conn_close(c, on_closed, &E);
    run_until(&loop, &E.closed, 10 * time_scale());
    for (int i = 0; i < 100 && uv_loop_alive(&loop); i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(uv_loop_close(&loop), 0); /* nothing of the stream's left on the loop */
    assert_int_equal(atomic_load(&g_fake.accepted), n + 1);
    fakepg_stop(&g_fake);
}

static void test_a_ctid_split_on_postgresql_13_is_refused_before_any_row(void **state)
{
    (void)state;
    /* the set-up answer: snapshot, server_version_num, relkind, pages */
    expect_start_fails("13.14", "\"00000003-0000001B-1 130014 r 1000\"", 2, NULL, FW_EINVAL,
                       "ctid ranges need PostgreSQL 14 or later");
    expect_start_fails("13.14", "\"00000003-0000001B-1 130014 r 1000\"", 1, NULL, FW_EINVAL,
                       "fw_query_partition_key");
    expect_stream_fails("13.14", "\"00000003-0000001B-1 130014 r 1000\"", 2, NULL, FW_EINVAL,
                        "ctid ranges need PostgreSQL 14 or later");
}

static void test_a_set_up_answer_that_makes_no_sense_fails_the_start(void **state)
{
    (void)state;
    /* not a snapshot id; no page count; a page count that is no number */
    expect_start_fails("15.6", "\"'; DROP TABLE t; -- 150006 r 10\"", 2, NULL,
                       FW_EPROTO_BAD_VALUE, "not understood: '; DROP TABLE t; -- 150006 r 10");
    expect_start_fails("15.6", "\"00000003-0000001B-1 150006 r\"", 2, NULL, FW_EPROTO_BAD_VALUE,
                       "size answer is not understood: 00000003-0000001B-1 150006 r");
    expect_start_fails("15.6", "\"00000003-0000001B-1 150006 r 12x\"", 2, NULL,
                       FW_EPROTO_BAD_VALUE, "size answer is not understood");
    expect_stream_fails("15.6", "\"00000003-0000001B-1 150006 r\"", 3, NULL,
                        FW_EPROTO_BAD_VALUE, "size answer is not understood");
}

static int teardown(void **state)
{
    (void)state;
    bb_free(&g_startup);
    bb_free(&g_reply);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_ctid_split_on_postgresql_13_is_refused_before_any_row),
        cmocka_unit_test(test_a_set_up_answer_that_makes_no_sense_fails_the_start),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
}
