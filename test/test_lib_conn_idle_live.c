/* SPDX-License-Identifier: MIT */
/*
 * fw_conn_when_idle against the real server, embedded mode (issue 19): after a stream is freed
 * mid-way, the caller is told when the connection can take the next query instead of polling on
 * FW_EBUSY; the callback runs once, never inside the call, with 0, FW_ESTATE or FW_ECLOSED.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "fwire.h"

static const char *env(const char *name)
{
    const char *v = getenv(name);
    if (v == NULL || v[0] == '\0')
        fail_msg("%s is not set: run through test/with-pg.sh", name);
    return v;
}

typedef struct h_s {
    uv_loop_t loop;
    fw_conn_t *conn;
    int connected; /* 1 ok, -1 failed */
    int idle_calls;
    int idle_status;
    bool in_call; /* fw_conn_when_idle is running: the callback must not come now */
    int next_start_rc;
    fw_stream_t *next;
    uint64_t next_rows;
    int next_end;
} h_t;

static void on_connect(fw_conn_t *c, int status, const fw_error_t *err, void *ud)
{
    (void)c;
    h_t *h = ud;
    if (status != 0)
        print_error("connect: %s\n", err != NULL ? err->message : "?");
    h->connected = status == 0 ? 1 : -1;
}

/* Options for the trust user over the cluster's unix socket; ci holds the string. */
static fw_conn_opts_t trust_opts(char *ci, size_t cap)
{
    snprintf(ci, cap, "host=%s port=%s dbname=%s user=%s", env("FW_TEST_SOCKDIR"),
             env("FW_TEST_PORT"), env("FW_TEST_DBNAME"), env("FW_TEST_USER_TRUST"));
    fw_conn_opts_t o;
    fw_conn_opts_init(&o);
    o.conninfo = ci;
    o.use_environment = false;
    return o;
}

static void h_open(h_t *h)
{
    memset(h, 0, sizeof(*h));
    assert_int_equal(uv_loop_init(&h->loop), 0);
    char ci[512];
    fw_conn_opts_t o = trust_opts(ci, sizeof(ci));
    fw_error_t err;
    assert_int_equal(fw_conn_new(&h->conn, &h->loop, &o, &err), 0);
    assert_int_equal(fw_conn_connect(h->conn, on_connect, h), 0);
    while (h->connected == 0)
        uv_run(&h->loop, UV_RUN_ONCE);
    assert_int_equal(h->connected, 1);
}

static void h_close(h_t *h)
{
    if (h->conn != NULL)
        fw_conn_close(h->conn, NULL, NULL);
    h->conn = NULL;
    uv_run(&h->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&h->loop), 0);
}

static fw_query_t *query(const char *relation)
{
    fw_query_t *q;
    assert_int_equal(fw_query_new(&q), 0);
    assert_int_equal(fw_query_relation(q, relation), 0);
    return q;
}

/* The next query's rows, taken as they come (embedded mode). */
static void on_next_rows(fw_stream_t *s, void *ud)
{
    h_t *h = ud;
    fw_row_t row;
    int rc;
    while ((rc = fw_stream_try_next(s, &row)) == FW_ROW)
        h->next_rows++;
    if (rc != FW_AGAIN && rc != FW_PAUSED)
        h->next_end = rc == FW_END ? 1 : rc;
}

static void on_idle(fw_conn_t *c, int status, void *ud)
{
    h_t *h = ud;
    assert_false(h->in_call);
    h->idle_calls++;
    h->idle_status = status;
    if (status == 0) {
        /* the point of the callback: the next query starts here, never FW_EBUSY */
        fw_query_t *q = query("v_fixture");
        fw_error_t err;
        h->next_start_rc = fw_stream_start(c, q, on_next_rows, h, &h->next, &err);
        fw_query_free(q);
    }
}

static int when_idle(h_t *h)
{
    h->in_call = true;
    int rc = fw_conn_when_idle(h->conn, on_idle, h);
    h->in_call = false;
    return rc;
}

static void test_an_idle_connection_calls_back_from_the_loop(void **state)
{
    (void)state;
    h_t h;
    h_open(&h);
    assert_int_equal(when_idle(&h), 0);
    assert_int_equal(h.idle_calls, 0); /* never inside the call */
    assert_int_equal(fw_conn_when_idle(h.conn, on_idle, &h), FW_EBUSY); /* one at a time */
    while (h.idle_calls == 0)
        uv_run(&h.loop, UV_RUN_ONCE);
    assert_int_equal(h.idle_status, 0);
    assert_int_equal(h.next_start_rc, 0);
    while (h.next_end == 0)
        uv_run(&h.loop, UV_RUN_ONCE);
    assert_int_equal(h.next_end, 1);
    assert_int_equal(h.next_rows, 5);
    fw_stream_free(h.next);
    assert_int_equal(h.idle_calls, 1);
    h_close(&h);
}

static void on_rows_ignore(fw_stream_t *s, void *ud)
{
    (void)s;
    (void)ud;
}

static void test_after_freeing_a_stream_mid_way_the_next_query_starts_from_the_callback(void **state)
{
    (void)state;
    for (int round = 0; round < 3; round++) {
        h_t h;
        h_open(&h);
        fw_query_t *q = query("v_bench_100k");
        fw_stream_t *s;
        fw_error_t err;
        assert_int_equal(fw_stream_start(h.conn, q, on_rows_ignore, NULL, &s, &err), 0);
        fw_query_free(q);
        /* let rows arrive, then leave mid-stream: the rest is cancelled and drained */
        fw_row_t row;
        uint64_t got = 0;
        while (got < 100) {
            uv_run(&h.loop, UV_RUN_ONCE);
            while (fw_stream_try_next(s, &row) == FW_ROW)
                got++;
        }
        fw_stream_free(s);
        /* busy now: this is what callers used to poll on */
        fw_query_t *q2 = query("v_fixture");
        fw_stream_t *s2 = NULL;
        int busy = fw_stream_start(h.conn, q2, NULL, NULL, &s2, &err);
        fw_query_free(q2);
        assert_int_equal(busy, FW_EBUSY);
        assert_null(s2);
        assert_int_equal(when_idle(&h), 0);
        uint64_t t0 = uv_hrtime();
        while (h.idle_calls == 0 && uv_hrtime() - t0 < 30ull * 1000000000ull)
            uv_run(&h.loop, UV_RUN_ONCE);
        assert_int_equal(h.idle_calls, 1);
        assert_int_equal(h.idle_status, 0);
        assert_int_equal(h.next_start_rc, 0);
        while (h.next_end == 0)
            uv_run(&h.loop, UV_RUN_ONCE);
        assert_int_equal(h.next_end, 1);
        assert_int_equal(h.next_rows, 5);
        fw_stream_free(h.next);
        h_close(&h);
        assert_int_equal(h.idle_calls, 1); /* exactly once */
    }
}

static void test_closing_while_waiting_calls_back_with_eclosed_once(void **state)
{
    (void)state;
    h_t h;
    h_open(&h);
    fw_query_t *q = query("v_bench_100k");
    fw_stream_t *s;
    fw_error_t err;
    assert_int_equal(fw_stream_start(h.conn, q, on_rows_ignore, NULL, &s, &err), 0);
    fw_query_free(q);
    assert_int_equal(when_idle(&h), 0);
    fw_stream_free(s);
    fw_conn_close(h.conn, NULL, NULL); /* before the drain can end */
    assert_int_equal(h.idle_calls, 1);
    assert_int_equal(h.idle_status, FW_ECLOSED);
    assert_int_equal(fw_conn_when_idle(h.conn, on_idle, &h), FW_ESTATE);
    h.conn = NULL;
    h_close(&h);
    assert_int_equal(h.idle_calls, 1);
}

static void test_bad_arguments_are_refused(void **state)
{
    (void)state;
    h_t h;
    h_open(&h);
    assert_int_equal(fw_conn_when_idle(NULL, on_idle, &h), FW_EINVAL);
    assert_int_equal(fw_conn_when_idle(h.conn, NULL, &h), FW_EINVAL);
    h_close(&h);
    /* threaded mode has blocking starts: no callback */
    fw_runtime_t *rt;
    assert_int_equal(fw_runtime_new(&rt), 0);
    char ci[512];
    fw_conn_opts_t o = trust_opts(ci, sizeof(ci));
    fw_conn_t *c;
    fw_error_t err;
    assert_int_equal(fw_conn_connect_sync(rt, &o, &c, &err), 0);
    assert_int_equal(fw_conn_when_idle(c, on_idle, &h), FW_EINVAL);
    fw_conn_close_sync(c);
    fw_runtime_free(rt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_an_idle_connection_calls_back_from_the_loop),
        cmocka_unit_test(test_after_freeing_a_stream_mid_way_the_next_query_starts_from_the_callback),
        cmocka_unit_test(test_closing_while_waiting_calls_back_with_eclosed_once),
        cmocka_unit_test(test_bad_arguments_are_refused),
    };
    return cmocka_run_group_tests_name("lib_conn_idle_live", tests, NULL, NULL);
}
