/* SPDX-License-Identifier: MIT */
/*
 * fwire through PgBouncer 1.18 in transaction pooling mode (test/with-pgbouncer.sh inside
 * test/with-pg.sh; SCRAM user, auth_file with the server's SCRAM secret). Embedded mode on a
 * loop of the test's own:
 *   - a stream of v_bench_100k through PgBouncer delivers every row: count and total bytes
 *     equal what psql computes on the server;
 *   - a cancel through PgBouncer ends the server's query (pg_stat_activity on the server) and
 *     the stream, within the same bound as a cancel sent directly (both measured, printed);
 *   - fw_pool_t through PgBouncer: acquire / stream / release, many rounds, with a stream freed
 *     mid-way now and then (drained before reuse); nothing retired, at most max_size opened;
 *   - the start-up parameters: fwire sends none that PgBouncer refuses unless `options` is set,
 *     and then the refusal is a clear error naming the parameter.
 */
#include <fwire.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "pool_loop.h"

/* The bound both cancels must meet: from fw_stream_cancel to the stream's end, and to the
 * server's backend no longer running the query (the gateway's cancel test uses 1 s too). */
#define CANCEL_BOUND_MS 1000.0

static const char *env(const char *name)
{
    const char *v = getenv(name);
    if (v == NULL || v[0] == '\0')
        fail_msg("%s is not set (run through test/with-pg.sh and test/with-pgbouncer.sh)", name);
    return v;
}

static double now_ms(void)
{
    return (double)uv_hrtime() / 1e6;
}

/* One value from psql on the server's admin socket (never through PgBouncer). */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void
server_sql(char *out, size_t cap, const char *fmt, ...)
{
    char sql[1024], cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    const char *bindir = getenv("FW_TEST_PGBINDIR");
    snprintf(cmd, sizeof(cmd), "'%s%spsql' -X -At -h '%s' -p '%s' -U '%s' -d '%s' -c \"%s\"",
             bindir != NULL ? bindir : "", bindir != NULL ? "/" : "", env("FW_TEST_SOCKDIR"),
             env("FW_TEST_PORT"), getenv("FW_TEST_ADMIN") ? getenv("FW_TEST_ADMIN") : "fw_admin",
             env("FW_TEST_DBNAME"), sql);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    out[0] = '\0';
    if (fgets(out, (int)cap, f) == NULL)
        out[0] = '\0';
    out[strcspn(out, "\n")] = '\0';
    assert_int_equal(pclose(f), 0);
}

typedef struct conn_wait_s {
    bool done;
    int status;
    char message[1024];
} conn_wait_t;

static void on_connected(fw_conn_t *c, int status, const fw_error_t *err, void *ud)
{
    (void)c;
    conn_wait_t *w = ud;
    w->done = true;
    w->status = status;
    if (err != NULL)
        snprintf(w->message, sizeof(w->message), "%s", err->message);
}

/* Connects to `conninfo` plus `extra`; returns the status, *out set on success. */
static int connect_to(const char *conninfo, const char *extra, fw_conn_t **out, char *msg,
                      size_t msglen)
{
    char ci[1024];
    snprintf(ci, sizeof(ci), "%s %s", conninfo, extra);
    fw_conn_opts_t o;
    fw_conn_opts_init(&o);
    o.conninfo = ci;
    o.use_environment = false;
    fw_error_t err;
    fw_conn_t *c = NULL;
    if (fw_conn_new(&c, &loop, &o, &err) != 0)
        fail_msg("fw_conn_new: %s", err.message);
    conn_wait_t w;
    memset(&w, 0, sizeof(w));
    assert_int_equal(fw_conn_connect(c, on_connected, &w), 0);
    run_until(&w.done, 15000);
    assert_true(w.done);
    if (msg != NULL)
        snprintf(msg, msglen, "%s", w.message);
    if (w.status != 0) {
        fw_conn_close(c, NULL, NULL);
        uv_run(&loop, UV_RUN_NOWAIT);
        *out = NULL;
        return w.status;
    }
    *out = c;
    return 0;
}

static void close_conn(fw_conn_t *c)
{
    fw_conn_close(c, NULL, NULL);
    for (int i = 0; i < 20; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
}

static fw_query_t *view_query(const char *view)
{
    fw_query_t *q = NULL;
    assert_int_equal(fw_query_new(&q), 0);
    assert_int_equal(fw_query_relation(q, view), 0);
    return q;
}

/* ---- every row --------------------------------------------------------------------------- */

static void test_a_stream_through_pgbouncer_gives_every_row(void **state)
{
    (void)state;
    char want[128];
    server_sql(want, sizeof(want),
               "SELECT count(*) || ' ' || coalesce(sum(octet_length(data::text)), 0) FROM "
               "v_bench_100k");
    fw_conn_t *c;
    char msg[1024];
    int rc = connect_to(env("FW_BOUNCER_DSN"), "application_name=fw_bouncer_rows", &c, msg,
                        sizeof(msg));
    if (rc != 0)
        fail_msg("connect through pgbouncer: %s (%s)", msg, fw_err_name(rc));
    fw_query_t *q = view_query("v_bench_100k");
    rows_t r;
    memset(&r, 0, sizeof(r));
    fw_stream_t *s = NULL;
    fw_error_t err;
    assert_int_equal(fw_stream_start(c, q, on_rows, &r, &s, &err), 0);
    run_until(&r.done, 60000);
    assert_true(r.done);
    assert_int_equal(r.status, FW_END);
    char got[128];
    snprintf(got, sizeof(got), "%ld %llu", r.rows, (unsigned long long)r.bytes);
    printf("through pgbouncer: %s rows/bytes (server: %s)\n", got, want);
    assert_string_equal(got, want);
    fw_stream_free(s);
    /* the same session again: the server connection behind it may differ (transaction mode) */
    fw_query_t *q2 = view_query("v_fixture");
    memset(&r, 0, sizeof(r));
    assert_int_equal(fw_stream_start(c, q2, on_rows, &r, &s, &err), 0);
    run_until(&r.done, 10000);
    assert_int_equal(r.status, FW_END);
    assert_int_equal(r.rows, 5);
    fw_stream_free(s);
    fw_query_free(q);
    fw_query_free(q2);
    close_conn(c);
}

/* ---- cancel ------------------------------------------------------------------------------ */

typedef struct cancel_times_s {
    double to_end_ms;  /* fw_stream_cancel -> the stream's end */
    double to_idle_ms; /* fw_stream_cancel -> the server runs no v_bench_1m for this user */
} cancel_times_t;

static int server_running(const char *app)
{
    char n[32];
    server_sql(n, sizeof(n),
               "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND "
               "application_name = '%s' AND query LIKE '%%v_bench_1m%%'",
               app);
    return atoi(n);
}

static cancel_times_t cancel_case(const char *conninfo, const char *app)
{
    char extra[128], msg[1024];
    snprintf(extra, sizeof(extra), "application_name=%s", app);
    fw_conn_t *c;
    int rc = connect_to(conninfo, extra, &c, msg, sizeof(msg));
    if (rc != 0)
        fail_msg("connect (%s): %s", app, msg);
    fw_query_t *q = view_query("v_bench_1m");
    rows_t r;
    memset(&r, 0, sizeof(r));
    fw_stream_t *s = NULL;
    fw_error_t err;
    assert_int_equal(fw_stream_start(c, q, on_rows, &r, &s, &err), 0);
    /* rows flowing, and the server running the query */
    uint64_t t0 = uv_hrtime();
    while (r.rows < 1000 && !r.done && uv_hrtime() - t0 < 20000000000ull)
        uv_run(&loop, UV_RUN_NOWAIT);
    assert_false(r.done);
    assert_int_equal(server_running(app), 1);
    double tc = now_ms();
    assert_int_equal(fw_stream_cancel(s), 0);
    run_until(&r.done, 10000);
    assert_true(r.done);
    cancel_times_t t;
    t.to_end_ms = now_ms() - tc;
    printf("%s: stream ended with %s after %ld rows\n", app, fw_err_name(r.status), r.rows);
    assert_int_not_equal(r.status, FW_END); /* 1M rows cannot have arrived by now */
    while (server_running(app) != 0 && now_ms() - tc < 10000)
        ;
    t.to_idle_ms = now_ms() - tc;
    assert_int_equal(server_running(app), 0);
    /* the connection takes the next query (after its drain) */
    fw_stream_free(s);
    fw_query_t *q2 = view_query("v_fixture");
    memset(&r, 0, sizeof(r));
    t0 = uv_hrtime();
    while ((rc = fw_stream_start(c, q2, on_rows, &r, &s, &err)) == FW_EBUSY &&
           uv_hrtime() - t0 < 10000000000ull)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(rc, 0);
    run_until(&r.done, 10000);
    assert_int_equal(r.status, FW_END);
    assert_int_equal(r.rows, 5);
    fw_stream_free(s);
    fw_query_free(q);
    fw_query_free(q2);
    close_conn(c);
    return t;
}

static void test_a_cancel_through_pgbouncer_ends_the_server_query_in_time(void **state)
{
    (void)state;
    char direct[1024];
    snprintf(direct, sizeof(direct),
             "host=127.0.0.1 port=%s dbname=%s user=%s password=%s sslmode=disable",
             env("FW_TEST_PORT"), env("FW_TEST_DBNAME"), env("FW_TEST_USER_SCRAM"),
             env("FW_TEST_PASS_SCRAM"));
    cancel_times_t d = cancel_case(direct, "fw_cancel_direct");
    cancel_times_t b = cancel_case(env("FW_BOUNCER_DSN"), "fw_cancel_bouncer");
    printf("cancel, direct:          stream ended in %.1f ms, server query gone in %.1f ms\n",
           d.to_end_ms, d.to_idle_ms);
    printf("cancel, through bouncer: stream ended in %.1f ms, server query gone in %.1f ms\n",
           b.to_end_ms, b.to_idle_ms);
    assert_true(d.to_end_ms < CANCEL_BOUND_MS && d.to_idle_ms < CANCEL_BOUND_MS);
    assert_true(b.to_end_ms < CANCEL_BOUND_MS && b.to_idle_ms < CANCEL_BOUND_MS);
}

/* ---- fw_pool_t through PgBouncer -------------------------------------------------------- */

static void test_a_pool_through_pgbouncer_acquires_streams_and_releases(void **state)
{
    (void)state;
    enum { ROUNDS = 60, MAX_SIZE = 3, AT_ONCE = 3 };
    char ci[1024];
    snprintf(ci, sizeof(ci), "%s application_name=fw_bouncer_pool", env("FW_BOUNCER_DSN"));
    fw_pool_opts_t o;
    fw_pool_opts_init(&o);
    o.conninfo = ci;
    o.use_environment = false;
    o.max_size = MAX_SIZE;
    fw_pool_t *p = NULL;
    fw_error_t err;
    if (fw_pool_new(&p, &loop, &o, &err) != 0)
        fail_msg("fw_pool_new: %s", err.message);
    fw_query_t *small = view_query("v_fixture");
    fw_query_t *big = view_query("v_bench_100k");
    long total = 0;
    for (int round = 0; round < ROUNDS / AT_ONCE; round++) {
        got_t g[AT_ONCE];
        rows_t r[AT_ONCE];
        fw_stream_t *s[AT_ONCE];
        memset(g, 0, sizeof(g));
        memset(r, 0, sizeof(r));
        for (int i = 0; i < AT_ONCE; i++)
            assert_int_equal(fw_pool_acquire(p, FW_POOL_READ, on_acquired, &g[i]), 0);
        for (int i = 0; i < AT_ONCE; i++) {
            run_until(&g[i].done, 10000);
            assert_true(g[i].done);
            if (g[i].status != 0)
                fail_msg("round %d acquire %d: %s", round, i, g[i].message);
            /* every fifth round, the first stream is a big one freed after its first rows */
            bool mid = round % 5 == 4 && i == 0;
            assert_int_equal(fw_stream_start(g[i].conn, mid ? big : small, on_rows, &r[i], &s[i],
                                             &err),
                             0);
        }
        for (int i = 0; i < AT_ONCE; i++) {
            bool mid = round % 5 == 4 && i == 0;
            if (mid) {
                uint64_t t0 = uv_hrtime();
                while (r[i].rows == 0 && !r[i].done && uv_hrtime() - t0 < 10000000000ull)
                    uv_run(&loop, UV_RUN_NOWAIT);
                assert_true(r[i].rows > 0);
            } else {
                run_until(&r[i].done, 10000);
                assert_int_equal(r[i].status, FW_END);
                assert_int_equal(r[i].rows, 5);
                total += r[i].rows;
            }
            fw_stream_free(s[i]);
            fw_pool_release(p, g[i].conn);
        }
    }
    fw_pool_stats_t st;
    assert_int_equal(fw_pool_stats(p, &st), 0);
    printf("pool through pgbouncer: %llu acquires, %llu opened, %ld rows, closed by error %llu, "
           "max wait %.1f ms\n",
           (unsigned long long)st.acquires, (unsigned long long)st.opened, total,
           (unsigned long long)st.closed_error, st.acquire_wait_max_seconds * 1000.0);
    assert_int_equal(st.acquires, ROUNDS);
    assert_true(st.opened >= 1 && st.opened <= MAX_SIZE);
    assert_int_equal(st.closed_error, 0);
    assert_int_equal(st.acquire_timeouts, 0);
    assert_int_equal(total, (long)(ROUNDS - ROUNDS / AT_ONCE / 5) * 5);
    fw_query_free(small);
    fw_query_free(big);
    close_pool(p);
}

/* ---- start-up parameters ----------------------------------------------------------------- */

static void test_options_is_sent_only_when_set_and_pgbouncer_names_it(void **state)
{
    (void)state;
    fw_conn_t *c;
    char msg[1024];
    /* application_name and client_encoding (always sent) are parameters PgBouncer knows */
    assert_int_equal(connect_to(env("FW_BOUNCER_DSN"), "application_name=fw_bouncer_params", &c,
                                msg, sizeof(msg)),
                     0);
    close_conn(c);
    /* `options` set: PgBouncer 1.18 refuses it unless ignore_startup_parameters lists it */
    int rc = connect_to(env("FW_BOUNCER_DSN"), "options='-c work_mem=8MB'", &c, msg, sizeof(msg));
    printf("with options: %s: %s\n", fw_err_name(rc), msg);
    assert_true(rc < 0);
    assert_non_null(strstr(msg, "unsupported startup parameter"));
    assert_non_null(strstr(msg, "options"));
}

static int setup(void **state)
{
    (void)state;
    return uv_loop_init(&loop);
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < 50; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    return uv_loop_close(&loop) == 0 ? 0 : -1;
}

int main(void)
{
    if (getenv("FW_BOUNCER_DSN") == NULL) {
        printf("no pgbouncer (run through test/with-pg.sh and test/with-pgbouncer.sh)\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_a_stream_through_pgbouncer_gives_every_row, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_a_cancel_through_pgbouncer_ends_the_server_query_in_time, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_a_pool_through_pgbouncer_acquires_streams_and_releases, setup, teardown),
        cmocka_unit_test_setup_teardown(test_options_is_sent_only_when_set_and_pgbouncer_names_it,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
