/* SPDX-License-Identifier: MIT */
/*
 * The pool in threaded mode (fw_pool_new_rt) on a real replicated cluster (test/pgrepl.sh
 * through with-repl.sh): threads acquire with fw_pool_acquire_wait, stream with
 * fw_stream_next on the pooled connection, release from any thread; a blocking acquire times
 * out on its own timeout and is woken by a release on another thread; min_size opens on the
 * runtime's loop; closing refuses while a connection is out, and fw_runtime_free closes a pool
 * left open. In the 'threads' suite: CI runs it under TSan.
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
#include <time.h>

#include <cmocka.h>
#include <uv.h>

#include "repl_env.h"

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static char conninfo[1024];

static fw_pool_t *new_pool(fw_runtime_t *rt, unsigned max_size, unsigned min_size)
{
    make_conninfo(conninfo, sizeof(conninfo), 0, NULL);
    fw_pool_opts_t o;
    fw_pool_opts_init(&o);
    o.conninfo = conninfo;
    o.use_environment = false;
    o.max_size = max_size;
    o.min_size = min_size;
    o.acquire_timeout_ms = 3000;
    o.after_connect_sql = "SET application_name = 'fwire_pool_threads'";
    fw_pool_t *p = NULL;
    fw_error_t err;
    if (fw_pool_new_rt(&p, rt, &o, &err) != 0)
        fail_msg("fw_pool_new_rt: %s", err.message);
    return p;
}

/* Streams v_fixture on a pooled connection from this thread: the rows, or a negative code. */
static long stream_rows(fw_conn_t *c)
{
    fw_query_t *q;
    if (fw_query_new(&q) != 0 || fw_query_relation(q, "v_fixture") != 0)
        return FW_ENOMEM;
    fw_stream_t *s = NULL;
    fw_error_t err;
    int rc = fw_stream_start(c, q, NULL, NULL, &s, &err);
    fw_query_free(q);
    if (rc != 0)
        return rc;
    long rows = 0;
    fw_row_t row;
    while ((rc = fw_stream_next(s, &row, 10000)) == FW_ROW)
        rows++;
    fw_stream_free(s);
    return rc == FW_END ? rows : rc;
}

/* ---- many threads, one pool ---------------------------------------------------------------- */

#define THREADS 4
#define ROUNDS 10

typedef struct worker_s {
    fw_pool_t *p;
    fw_pool_want_t want;
    int failures;
    long rows;
    char why[1024];
} worker_t;

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    for (int i = 0; i < ROUNDS; i++) {
        fw_conn_t *c = NULL;
        fw_error_t err;
        int rc = fw_pool_acquire_wait(w->p, w->want, 0, &c, &err);
        if (rc != 0) {
            w->failures++;
            snprintf(w->why, sizeof(w->why), "acquire: %.900s", err.message);
            continue;
        }
        long n = stream_rows(c);
        if (n < 0) {
            w->failures++;
            snprintf(w->why, sizeof(w->why), "stream: %s", fw_err_name((int)n));
        } else {
            w->rows += n;
        }
        fw_pool_release(w->p, c);
    }
    return NULL;
}

static void test_threads_share_a_pool(void **state)
{
    (void)state;
    fw_runtime_t *rt;
    assert_int_equal(fw_runtime_new(&rt), 0);
    fw_pool_t *p = new_pool(rt, 3, 0);
    pthread_t th[THREADS];
    worker_t w[THREADS];
    memset(w, 0, sizeof(w));
    double t0 = now_s();
    for (int i = 0; i < THREADS; i++) {
        w[i].p = p;
        w[i].want = i == 0 ? FW_POOL_WRITE : FW_POOL_READ;
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    long rows = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        if (w[i].failures != 0)
            fail_msg("thread %d: %d failures, last: %s", i, w[i].failures, w[i].why);
        rows += w[i].rows;
    }
    double secs = now_s() - t0;
    fw_pool_stats_t st;
    assert_int_equal(fw_pool_stats(p, &st), 0);
    printf("%d threads x %d acquire+stream+release on max_size 3: %ld rows in %.3f s; opened %llu, "
           "acquires %llu, max wait %.3f s\n",
           THREADS, ROUNDS, rows, secs, (unsigned long long)st.opened,
           (unsigned long long)st.acquires, st.acquire_wait_max_seconds);
    assert_int_equal(rows, (long)THREADS * ROUNDS * 5);
    assert_int_equal(st.acquires, THREADS * ROUNDS);
    /* never more than max_size open; beyond the first 3, only connections opened in place of
     * an idle one of the wrong role closed for the writer (closed_idle: the pool makes room) */
    printf("closed to make room: %llu\n", (unsigned long long)st.closed_idle);
    assert_true(st.size <= 3);
    assert_true(st.opened >= 1 && st.opened <= 3 + st.closed_idle);
    assert_true(st.closed_idle <= ROUNDS);
    assert_int_equal(st.in_use, 0);
    assert_int_equal(st.acquire_timeouts, 0);
    assert_int_equal(fw_pool_close_sync(p), 0);
    fw_runtime_free(rt);
}

/* ---- blocking acquire: its own timeout, woken by a release on another thread --------------- */

typedef struct waiter_s {
    fw_pool_t *p;
    unsigned timeout_ms;
    int rc;
    fw_conn_t *conn;
    double secs;
    char why[1024];
} waiter_t;

static void *waiter_main(void *arg)
{
    waiter_t *w = arg;
    fw_error_t err;
    double t0 = now_s();
    w->rc = fw_pool_acquire_wait(w->p, FW_POOL_READ, w->timeout_ms, &w->conn, &err);
    w->secs = now_s() - t0;
    if (w->rc != 0)
        snprintf(w->why, sizeof(w->why), "%s", err.message);
    return NULL;
}

typedef struct rel_s {
    fw_pool_t *p;
    fw_conn_t *c;
    int delay_ms;
} rel_t;

static void *releaser_main(void *arg)
{
    rel_t *r = arg;
    sleep_ms(r->delay_ms);
    fw_pool_release(r->p, r->c);
    return NULL;
}

static void test_acquire_wait_timeout_and_wakeup(void **state)
{
    (void)state;
    fw_runtime_t *rt;
    assert_int_equal(fw_runtime_new(&rt), 0);
    fw_pool_t *p = new_pool(rt, 2, 0);
    fw_conn_t *a = NULL, *b = NULL;
    fw_error_t err;
    assert_int_equal(fw_pool_acquire_wait(p, FW_POOL_READ, 0, &a, &err), 0);
    assert_int_equal(fw_pool_acquire_wait(p, FW_POOL_READ, 0, &b, &err), 0);
    assert_non_null(a);
    assert_non_null(b);
    assert_true(a != b);
    /* full: 300 ms of its own (the pool's acquire_timeout_ms is 3000), then FW_ETIMEDOUT */
    fw_conn_t *c = NULL;
    double t0 = now_s();
    int rc = fw_pool_acquire_wait(p, FW_POOL_READ, 300, &c, &err);
    double secs = now_s() - t0;
    printf("full pool: FW_ETIMEDOUT after %.3f s (asked 0.3 s): %s\n", secs, err.message);
    assert_int_equal(rc, FW_ETIMEDOUT);
    assert_null(c);
    assert_true(secs >= 0.29 && secs < 2.0);
    assert_non_null(strstr(err.message, "300 ms"));
    /* a waiter on another thread is served by a release from a third thread */
    int pid_a = backend_pid(a);
    waiter_t w = {p, 5000, -1, NULL, 0, ""};
    pthread_t wt, rth;
    assert_int_equal(pthread_create(&wt, NULL, waiter_main, &w), 0);
    rel_t r = {p, a, 200};
    assert_int_equal(pthread_create(&rth, NULL, releaser_main, &r), 0);
    pthread_join(rth, NULL);
    pthread_join(wt, NULL);
    printf("waiter served by a release on another thread after %.3f s (release at 0.2 s)\n",
           w.secs);
    if (w.rc != 0)
        fail_msg("waiter: %s", w.why);
    assert_int_equal(backend_pid(w.conn), pid_a); /* the very connection released */
    assert_true(w.secs >= 0.15 && w.secs < 3.0);
    /* streams work on it from this thread */
    assert_int_equal(stream_rows(w.conn), 5);
    /* closing with connections out is refused, and changes nothing */
    assert_int_equal(fw_pool_close_sync(p), FW_EBUSY);
    assert_int_equal(stream_rows(b), 5);
    fw_pool_stats_t st;
    assert_int_equal(fw_pool_stats(p, &st), 0);
    assert_int_equal(st.in_use, 2);
    assert_int_equal(st.acquire_timeouts, 1);
    fw_pool_release(p, w.conn);
    fw_pool_release(p, b);
    assert_int_equal(fw_pool_close_sync(p), 0);
    fw_runtime_free(rt);
}

static void never_cb(fw_pool_t *p, fw_conn_t *c, int status, const fw_error_t *err, void *ud)
{
    (void)p;
    (void)c;
    (void)status;
    (void)err;
    (void)ud;
    fail_msg("an acquire callback ran on a threaded pool");
}

/* ---- min_size on the runtime's loop; fw_runtime_free closes a pool left open --------------- */

static void test_min_size_and_runtime_free(void **state)
{
    (void)state;
    fw_runtime_t *rt;
    assert_int_equal(fw_runtime_new(&rt), 0);
    fw_pool_t *p = new_pool(rt, 4, 2);
    fw_pool_stats_t st;
    double t0 = now_s();
    do {
        sleep_ms(10);
        assert_int_equal(fw_pool_stats(p, &st), 0);
    } while (st.idle < 2 && now_s() - t0 < 10.0);
    printf("min_size 2 (threaded): %u idle after %.3f s\n", st.idle, now_s() - t0);
    assert_int_equal(st.idle, 2);
    assert_int_equal(st.opened, 2);
    assert_int_equal(st.acquires, 0);
    fw_pool_host_t h;
    assert_int_equal(fw_pool_host(p, 0, &h), 0);
    assert_int_equal(h.port, node_port(0));
    fw_conn_t *c = NULL;
    fw_error_t err;
    assert_int_equal(fw_pool_acquire_wait(p, FW_POOL_WRITE, 0, &c, &err), 0);
    assert_int_equal(fw_conn_role(c), FW_ROLE_PRIMARY);
    assert_non_null(c);
    /* bad calls: clear errors */
    assert_int_equal(fw_pool_acquire_wait(p, (fw_pool_want_t)7, 0, &c, &err), FW_EINVAL);
    assert_null(c); /* *out cleared even on a bad call */
    assert_int_equal(fw_pool_acquire_wait(NULL, FW_POOL_READ, 0, &c, &err), FW_EINVAL);
    assert_int_equal(fw_pool_acquire(p, FW_POOL_READ, never_cb, NULL),
                     FW_EINVAL); /* callbacks are for embedded pools */
    assert_int_equal(fw_pool_close_sync(NULL), FW_EINVAL);
    /* the runtime goes away with the pool open and a connection out: closed, no hang */
    double t1 = now_s();
    fw_runtime_free(rt);
    printf("fw_runtime_free with an open pool: %.3f s\n", now_s() - t1);
    assert_true(now_s() - t1 < 5.0);
}

/* ---- fw_pool_stream_start_wait: the stream gives its connection back -------------------- */

static void wait_idle(fw_pool_t *p, unsigned idle, fw_pool_stats_t *st)
{
    double t0 = now_s();
    do {
        assert_int_equal(fw_pool_stats(p, st), 0);
        if (st->in_use == 0 && st->idle == idle)
            return;
        sleep_ms(5);
    } while (now_s() - t0 < 5.0);
}

static void test_stream_gives_its_connection_back(void **state)
{
    (void)state;
    fw_runtime_t *rt;
    assert_int_equal(fw_runtime_new(&rt), 0);
    fw_pool_t *p = new_pool(rt, 1, 0); /* one connection: every stream needs it back */
    fw_query_t *q;
    assert_int_equal(fw_query_new(&q), 0);
    assert_int_equal(fw_query_relation(q, "v_fixture"), 0);
    fw_stream_t *s = NULL;
    fw_error_t err;
    fw_pool_stats_t st;
    for (int round = 0; round < 3; round++) {
        if (fw_pool_stream_start_wait(p, FW_POOL_READ, 2000, q, &s, &err) != 0)
            fail_msg("round %d: %s", round, err.message);
        fw_row_t row;
        long rows = 0;
        int rc;
        /* round 1 frees the stream after its first row: the pool drains it before reuse */
        while ((rc = fw_stream_next(s, &row, 10000)) == FW_ROW && !(round == 1 && rows == 1))
            rows++;
        if (round != 1) {
            assert_int_equal(rc, FW_END);
            assert_int_equal(rows, 5);
        }
        fw_stream_free(s);
        wait_idle(p, 1, &st);
        assert_int_equal(st.in_use, 0);
        assert_int_equal(st.idle, 1);
    }
    assert_int_equal(st.opened, 1); /* the one connection, back every time */
    assert_int_equal(st.acquires, 3);
    /* a start that fails gives the connection back at once */
    fw_query_t *bad;
    assert_int_equal(fw_query_new(&bad), 0); /* no relation: refused before the loop */
    assert_int_equal(fw_pool_stream_start_wait(p, FW_POOL_READ, 2000, bad, &s, &err), FW_EINVAL);
    assert_null(s);
    wait_idle(p, 1, &st);
    assert_int_equal(st.in_use, 0);
    assert_int_equal(fw_pool_stream_start_wait(p, FW_POOL_READ, 2000, NULL, &s, &err), FW_EINVAL);
    assert_int_equal(fw_pool_stream_start(p, NULL, q, NULL, NULL, &s, &err), FW_EINVAL);
    fw_query_free(bad);
    fw_query_free(q);
    assert_int_equal(fw_pool_stats(p, &st), 0);
    printf("fw_pool_stream_start_wait: 3 streams (one freed mid-way) on one connection: opened "
           "%llu, acquires %llu\n",
           (unsigned long long)st.opened, (unsigned long long)st.acquires);
    assert_int_equal(fw_pool_close_sync(p), 0);
    fw_runtime_free(rt);
}

/* An embedded pool refuses the threaded calls. */
static void test_embedded_pool_refuses_threaded_calls(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    fw_pool_opts_t o;
    fw_pool_opts_init(&o);
    o.conninfo = "host=127.0.0.1 port=1 dbname=x user=x";
    o.use_environment = false;
    fw_pool_t *p = NULL;
    fw_error_t err;
    assert_int_equal(fw_pool_new(&p, &loop, &o, &err), 0);
    fw_conn_t *c = NULL;
    assert_int_equal(fw_pool_acquire_wait(p, FW_POOL_READ, 100, &c, &err), FW_EINVAL);
    assert_non_null(strstr(err.message, "fw_pool_acquire"));
    assert_int_equal(fw_pool_close_sync(p), FW_EINVAL);
    fw_pool_close(p, NULL, NULL);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    if (getenv("FW_REPL_DIR") == NULL) {
        printf("no replicated cluster (run through test/with-repl.sh)\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads_share_a_pool),
        cmocka_unit_test(test_acquire_wait_timeout_and_wakeup),
        cmocka_unit_test(test_stream_gives_its_connection_back),
        cmocka_unit_test(test_min_size_and_runtime_free),
        cmocka_unit_test(test_embedded_pool_refuses_threaded_calls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
