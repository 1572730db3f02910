/* SPDX-License-Identifier: MIT */
/*
 * Protocol 3.2 settings through the public API against the harness's real PostgreSQL 15, which
 * knows 3.0 only and says so with NegotiateProtocolVersion when asked for more:
 *   - max_protocol_version=3.2 connects at 3.0 (fw_conn_info says 30000), streams every row the
 *     server has (compared with psql's answer, never fwire's), and cancels a running query with
 *     the 4-byte key of 3.0;
 *   - min_protocol_version=3.2 fails with FW_EPROTOCOL_VERSION and a message that says why;
 *   - a bad value fails in fw_conn_new, before any socket.
 * Over the unix socket and over TCP with TLS (the negotiation then happens inside TLS).
 */
/* The MD5 of every row (stream_oracle.h): OpenSSL's one-shot MD5(), a deprecated API. */
#define OPENSSL_SUPPRESS_DEPRECATED

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
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

static void psql(const char *sql, char *out, size_t cap)
{
    psql_as("FW_TEST_USER_TRUST", sql, out, cap);
}

/* The connection strings: trust over the unix socket, SCRAM over TCP with TLS. */
static const char *dsn(int which, const char *extra, char *buf, size_t cap)
{
    if (which == 0)
        snprintf(buf, cap, "host=%s port=%s dbname=%s user=%s %s", env("FW_TEST_SOCKDIR"),
                 env("FW_TEST_PORT"), env("FW_TEST_DBNAME"), env("FW_TEST_USER_TRUST"), extra);
    else
        snprintf(buf, cap,
                 "host=localhost port=%s dbname=%s user=%s password=%s sslmode=verify-full "
                 "sslrootcert=%s %s",
                 env("FW_TEST_PORT"), env("FW_TEST_DBNAME"), env("FW_TEST_USER_SCRAM"),
                 env("FW_TEST_PASS_SCRAM"), env("FW_TEST_CA"), extra);
    return buf;
}

static fw_conn_t *connect_sync(fw_runtime_t *rt, const char *conninfo, int *rc, fw_error_t *err)
{
    fw_conn_opts_t o;
    fw_conn_opts_init(&o);
    o.conninfo = conninfo;
    o.use_environment = false; /* hermetic: no PG* variables, no ~/.pgpass */
    fw_conn_t *c = NULL;
    *rc = fw_conn_connect_sync(rt, &o, &c, err);
    return c;
}

/* Connects over the unix socket (which 0) or TCP with TLS (1), asking for protocol 3.2. */
static fw_conn_t *connect_asking_for_3_2(fw_runtime_t *rt, int which)
{
    char d[1024];
    fw_error_t err;
    int rc;
    fw_conn_t *c =
        connect_sync(rt, dsn(which, "max_protocol_version=3.2", d, sizeof(d)), &rc, &err);
    if (rc != 0)
        fail_msg("%s: connect: %s", which == 0 ? "unix" : "tcp+tls", err.message);
    return c;
}

/* Streams `view` on c and compares it with the server's own answer. */
static void stream_matches_the_server(fw_conn_t *c, const char *view, const char *what)
{
    const oracle_t *o = view_oracle(view, false);
    fw_query_t *q;
    assert_int_equal(fw_query_new(&q), 0);
    assert_int_equal(fw_query_relation(q, view), 0);
    fw_stream_t *s = NULL;
    fw_error_t err;
    int rc = fw_stream_start(c, q, NULL, NULL, &s, &err);
    fw_query_free(q);
    if (rc != 0)
        fail_msg("%s: fw_stream_start: %s", what, err.message);
    res_t r;
    res_init(&r);
    fw_row_t row;
    while ((rc = fw_stream_next(s, &row, 30000)) == FW_ROW)
        res_row(&r, &row);
    res_finish(&r);
    char why[sizeof(err.message)];
    snprintf(why, sizeof(why), "%s", fw_stream_error(s)->message);
    fw_stream_free(s);
    if (rc != FW_END)
        fail_msg("%s: the stream ended with %s: %s", what, fw_err_name(rc), why);
    if (r.rows != o->rows || r.bytes != o->bytes || r.nulls != o->nulls || r.sum != o->sum)
        fail_msg("%s: got %llu rows, %llu bytes, sum %llu; the server has %llu, %llu, %llu", what,
                 (unsigned long long)r.rows, (unsigned long long)r.bytes, (unsigned long long)r.sum,
                 (unsigned long long)o->rows, (unsigned long long)o->bytes,
                 (unsigned long long)o->sum);
}

static void test_max_protocol_3_2_connects_at_3_0_and_streams_every_row(void **state)
{
    (void)state;
    fw_runtime_t *rt;
    assert_int_equal(fw_runtime_new(&rt), 0);
    for (int which = 0; which < 2; which++) {
        fw_conn_t *c = connect_asking_for_3_2(rt, which);
        fw_conn_info_t info;
        assert_int_equal(fw_conn_info(c, &info), 0);
        assert_int_equal(info.protocol_version, 30000); /* PostgreSQL 15 has nothing newer */
        assert_true(info.backend_pid > 0);
        stream_matches_the_server(c, "v_bench_1k", which == 0 ? "unix" : "tcp+tls");
        stream_matches_the_server(c, "v_fixture", which == 0 ? "unix, again" : "tls, again");
        fw_conn_close_sync(c);
    }
    /* the default asks for 3.0 and gets it without any negotiation */
    char d[1024];
    fw_error_t err;
    int rc;
    fw_conn_t *c = connect_sync(rt, dsn(0, "", d, sizeof(d)), &rc, &err);
    assert_int_equal(rc, 0);
    fw_conn_info_t info;
    assert_int_equal(fw_conn_info(c, &info), 0);
    assert_int_equal(info.protocol_version, 30000);
    fw_conn_close_sync(c);
    fw_runtime_free(rt);
}

/*
 * After negotiating down to 3.0, the key is the 4-byte one of 3.0 and a cancel must still stop
 * the query on the server: v_fixture_sleepy_wide with a sleep per row takes about 3 s to run
 * out; cancelled after its first row, the reply ends within a fraction of that.
 */
static void test_a_cancel_after_negotiating_down_to_3_0_stops_the_query(void **state)
{
    (void)state;
    fw_runtime_t *rt;
    assert_int_equal(fw_runtime_new(&rt), 0);
    for (int which = 0; which < 2; which++) {
        fw_conn_t *c = connect_asking_for_3_2(rt, which);
        fw_error_t err;
        fw_query_t *q;
        assert_int_equal(fw_query_new(&q), 0);
        assert_int_equal(fw_query_relation(q, "v_fixture_sleepy_wide"), 0);
        assert_int_equal(fw_query_where_sql(q, "pg_sleep(0.2)::text IS NOT NULL"), 0);
        fw_stream_t *s = NULL;
        assert_int_equal(fw_stream_start(c, q, NULL, NULL, &s, &err), 0);
        fw_query_free(q);
        fw_row_t row;
        assert_int_equal(fw_stream_next(s, &row, 10000), FW_ROW);
        uint64_t t0 = uv_hrtime();
        int rc = fw_stream_cancel(s);
        double secs = secs_since(t0);
        int next = fw_stream_next(s, &row, 0);
        fw_stream_free(s);
        /* the connection goes on */
        stream_matches_the_server(c, "v_fixture", "after the cancel");
        fw_conn_close_sync(c);
        assert_int_equal(rc, 0);
        assert_int_equal(next, FW_ECANCELED);
        if (secs > 1.5)
            fail_msg("%s: the cancel took %.2f s: the server did not act on it",
                     which == 0 ? "unix" : "tcp+tls", secs);
    }
    fw_runtime_free(rt);
}

static void test_min_protocol_3_2_fails_with_a_clear_error(void **state)
{
    (void)state;
    fw_runtime_t *rt;
    assert_int_equal(fw_runtime_new(&rt), 0);
    const char *extras[] = {"min_protocol_version=3.2", "min_protocol_version=latest",
                            "min_protocol_version=3.2 max_protocol_version=3.2"};
    for (int which = 0; which < 2; which++) {
        for (size_t i = 0; i < 3; i++) {
            char d[1024];
            fw_error_t err;
            int rc;
            fw_conn_t *c = connect_sync(rt, dsn(which, extras[i], d, sizeof(d)), &rc, &err);
            assert_null(c);
            if (rc != FW_EPROTOCOL_VERSION)
                fail_msg("%s: got %s: %s", extras[i], fw_err_name(rc), err.message);
            assert_int_equal(err.code, FW_EPROTOCOL_VERSION);
            assert_int_equal(err.phase, FW_PHASE_AUTH);
            if (strstr(err.message, "server only supports protocol version 3.0, but "
                                    "min_protocol_version was set to 3.2") == NULL)
                fail_msg("%s: the message does not say why: %s", extras[i], err.message);
        }
    }
    fw_runtime_free(rt);
}

/* The same failure on an embedded connection: one callback, every handle closed. */
static int g_calls, g_status, g_closed;
static fw_error_t g_err;

static void on_closed(fw_conn_t *c, void *ud)
{
    (void)c;
    (void)ud;
    g_closed++;
}

static void on_connect(fw_conn_t *c, int status, const fw_error_t *err, void *ud)
{
    (void)ud;
    g_calls++;
    g_status = status;
    if (err != NULL)
        g_err = *err;
    fw_conn_close(c, on_closed, NULL);
}

static void test_min_protocol_3_2_fails_once_and_cleanly_in_embedded_mode(void **state)
{
    (void)state;
    uv_loop_t loop;
    fw_conn_t *c;
    fw_conn_opts_t o;
    fw_error_t err;
    char d[1024];
    assert_int_equal(uv_loop_init(&loop), 0);
    fw_conn_opts_init(&o);
    o.conninfo = dsn(0, "min_protocol_version=3.2", d, sizeof(d));
    o.use_environment = false;
    assert_int_equal(fw_conn_new(&c, &loop, &o, &err), 0);
    assert_int_equal(fw_conn_connect(c, on_connect, NULL), 0);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(g_calls, 1);
    assert_int_equal(g_closed, 1);
    assert_int_equal(g_status, FW_EPROTOCOL_VERSION);
    assert_non_null(strstr(g_err.message, "min_protocol_version was set to 3.2"));
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_bad_protocol_values_fail_before_any_socket(void **state)
{
    (void)state;
    uv_loop_t loop;
    fw_error_t err;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_null(live_conn_new_econfig(
        &loop, "host=127.0.0.1 port=1 user=u max_protocol_version=3.1", &err));
    assert_int_equal(err.phase, FW_PHASE_CONFIG);
    assert_non_null(strstr(err.message,
                           "invalid max_protocol_version value: \"3.1\" (accepted: 3.0, 3.2, "
                           "latest)"));
    live_conn_new_econfig(
        &loop, "host=127.0.0.1 port=1 user=u min_protocol_version=3.2 max_protocol_version=3.0",
        &err);
    assert_non_null(strstr(err.message, "is greater than max_protocol_version"));
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_max_protocol_3_2_connects_at_3_0_and_streams_every_row),
        cmocka_unit_test(test_a_cancel_after_negotiating_down_to_3_0_stops_the_query),
        cmocka_unit_test(test_min_protocol_3_2_fails_with_a_clear_error),
        cmocka_unit_test(test_min_protocol_3_2_fails_once_and_cleanly_in_embedded_mode),
        cmocka_unit_test(test_bad_protocol_values_fail_before_any_socket),
    };
    return cmocka_run_group_tests_name("lib_protocol_live", tests, NULL, NULL);
}
