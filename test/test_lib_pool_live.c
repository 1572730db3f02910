/* SPDX-License-Identifier: MIT */
/*
 * The connection pool (fw_pool_t) on a real replicated cluster (test/pgrepl.sh through
 * with-repl.sh: node 0 the primary, nodes 1 and 2 streaming standbys), embedded mode on a loop
 * of the test's own: reads go to standbys and spread over them, writes to the primary, a
 * released connection is reused, max_size and the acquire timeout hold, a stream runs on a
 * pooled connection, a dead standby's breaker opens (it then costs one probe per cooldown,
 * counted), a failover retires connections whose server changed role and routes writes to the
 * new primary, and closing gives every waiter FW_ECLOSED.
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

static uv_loop_t loop;

static const char *env(const char *name)
{
    const char *v = getenv(name);
    if (v == NULL || v[0] == '\0')
        fail_msg("%s is not set (run through test/with-repl.sh)", name);
    return v;
}

static int node_port(int n)
{
    char name[32];
    snprintf(name, sizeof(name), "FW_REPL_N%d_PORT", n);
    return atoi(env(name));
}

#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
static int
sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    return rc == -1 ? -1 : WEXITSTATUS(rc);
}

static void on_log(void *ud, fw_log_level_t level, const char *line)
{
    (void)ud;
    if (level >= FW_LOG_INFO && strncmp(line, "pool:", 5) == 0)
        fprintf(stderr, "%s\n", line);
}

static fw_pool_t *new_pool(unsigned max_size, unsigned timeout_ms)
{
    char conninfo[1024];
    snprintf(conninfo, sizeof(conninfo),
             "host=%s,%s,%s port=%d,%d,%d dbname=%s user=%s password=%s sslmode=disable "
             "connect_timeout=2",
             env("FW_REPL_HOST4"), env("FW_REPL_HOST4"), env("FW_REPL_HOST4"), node_port(0),
             node_port(1), node_port(2), env("FW_REPL_DBNAME"), env("FW_REPL_USER_SCRAM"),
             env("FW_REPL_PASS_SCRAM"));
    fw_pool_opts_t o;
    fw_pool_opts_init(&o);
    o.conninfo = conninfo;
    o.use_environment = false;
    o.max_size = max_size;
    o.acquire_timeout_ms = timeout_ms;
    o.breaker_cooldown_ms = 1000;
    o.backoff_base_ms = 50;
    if (getenv("FW_TEST_VERBOSE") != NULL)
        o.log_cb = on_log;
    fw_pool_t *p = NULL;
    fw_error_t err;
    if (fw_pool_new(&p, &loop, &o, &err) != 0)
        fail_msg("fw_pool_new: %s", err.message);
    return p;
}

typedef struct got_s {
    bool done;
    int status;
    fw_conn_t *conn;
    char message[1024];
} got_t;

static void on_acquired(fw_pool_t *p, fw_conn_t *c, int status, const fw_error_t *err, void *ud)
{
    (void)p;
    got_t *g = ud;
    assert_false(g->done); /* exactly once */
    g->done = true;
    g->status = status;
    g->conn = c;
    if (err != NULL)
        snprintf(g->message, sizeof(g->message), "%s", err->message);
}

static void run_until(bool *flag, int ms)
{
    uint64_t t0 = uv_hrtime();
    while (!*flag && uv_hrtime() - t0 < (uint64_t)ms * 1000000u)
        uv_run(&loop, UV_RUN_NOWAIT);
}

static int node_of(fw_conn_t *c)
{
    fw_conn_info_t info;
    assert_int_equal(fw_conn_info(c, &info), 0);
    for (int n = 0; n < 3; n++)
        if (info.port == node_port(n))
            return n;
    return -1;
}

static got_t acquire(fw_pool_t *p, fw_pool_want_t want, int wait_ms)
{
    got_t g;
    memset(&g, 0, sizeof(g));
    assert_int_equal(fw_pool_acquire(p, want, on_acquired, &g), 0);
    assert_false(g.done); /* never inside the call */
    run_until(&g.done, wait_ms);
    assert_true(g.done);
    return g;
}

static bool closed_flag;
static void on_pool_closed(fw_pool_t *p, void *ud)
{
    (void)p;
    (void)ud;
    assert_false(closed_flag);
    closed_flag = true;
}

static void close_pool(fw_pool_t *p)
{
    closed_flag = false;
    fw_pool_close(p, on_pool_closed, NULL);
    run_until(&closed_flag, 5000);
    assert_true(closed_flag);
}

/* ---- routing by role, reuse, limits ------------------------------------------------------ */

static void test_reads_go_to_standbys_writes_to_the_primary(void **state)
{
    (void)state;
    fw_pool_t *p = new_pool(6, 5000);
    got_t w = acquire(p, FW_POOL_WRITE, 10000);
    if (w.status != 0)
        fail_msg("write acquire: %s", w.message);
    assert_int_equal(node_of(w.conn), 0);
    assert_int_equal(fw_conn_role(w.conn), FW_ROLE_PRIMARY);
    /* four reads at once: standbys only, spread over both */
    got_t r[4];
    memset(r, 0, sizeof(r));
    for (int i = 0; i < 4; i++)
        assert_int_equal(fw_pool_acquire(p, FW_POOL_READ, on_acquired, &r[i]), 0);
    for (int i = 0; i < 4; i++)
        run_until(&r[i].done, 10000);
    int hits[3] = {0, 0, 0};
    for (int i = 0; i < 4; i++) {
        if (r[i].status != 0)
            fail_msg("read %d: %s", i, r[i].message);
        hits[node_of(r[i].conn)]++;
    }
    printf("reads on node 0/1/2: %d/%d/%d\n", hits[0], hits[1], hits[2]);
    /* the first read may go to a host of unknown role (node 1 or 2 were never tried), never
     * to the primary while standbys are usable */
    assert_int_equal(hits[0], 0);
    assert_true(hits[1] >= 1 && hits[2] >= 1);
    fw_pool_stats_t st;
    assert_int_equal(fw_pool_stats(p, &st), 0);
    assert_int_equal(st.in_use, 5);
    assert_int_equal(st.opened, 5);
    /* release one read and acquire again: the same connection comes back, nothing opens */
    fw_conn_t *back = r[0].conn;
    fw_pool_release(p, back);
    got_t again = acquire(p, FW_POOL_READ, 5000);
    assert_int_equal(again.status, 0);
    assert_ptr_equal(again.conn, back);
    assert_int_equal(fw_pool_stats(p, &st), 0);
    assert_int_equal(st.opened, 5);
    assert_int_equal(st.acquires, 6);
    /* the sixth connection is allowed; a seventh waits and times out */
    got_t sixth = acquire(p, FW_POOL_READ, 10000);
    assert_int_equal(sixth.status, 0);
    got_t late;
    memset(&late, 0, sizeof(late));
    assert_int_equal(fw_pool_acquire(p, FW_POOL_WRITE, on_acquired, &late), 0);
    run_until(&late.done, 10000);
    assert_true(late.done);
    assert_int_equal(late.status, FW_ETIMEDOUT);
    assert_non_null(strstr(late.message, "5000 ms"));
    assert_int_equal(fw_pool_stats(p, &st), 0);
    assert_int_equal(st.acquire_timeouts, 1);
    assert_true(st.acquire_wait_max_seconds >= 4.9);
    /* a release serves a waiter at once */
    got_t next;
    memset(&next, 0, sizeof(next));
    assert_int_equal(fw_pool_acquire(p, FW_POOL_WRITE, on_acquired, &next), 0);
    fw_pool_release(p, w.conn);
    run_until(&next.done, 5000);
    assert_int_equal(next.status, 0);
    assert_ptr_equal(next.conn, w.conn);
    /* hosts as the pool sees them */
    fw_pool_host_t h;
    assert_int_equal(fw_pool_host(p, 0, &h), 0);
    assert_int_equal(h.role, FW_ROLE_PRIMARY);
    assert_string_equal(h.breaker, "closed");
    assert_int_equal(fw_pool_host(p, 1, &h), 0);
    assert_int_equal(h.role, FW_ROLE_STANDBY);
    assert_int_equal(fw_pool_host(p, 3, &h), FW_EINVAL);
    fw_pool_release(p, next.conn);
    fw_pool_release(p, r[1].conn);
    fw_pool_release(p, r[2].conn);
    fw_pool_release(p, r[3].conn);
    fw_pool_release(p, again.conn);
    fw_pool_release(p, sixth.conn);
    close_pool(p);
}

/* ---- a stream on a pooled connection; a stream freed mid-way drains before reuse --------- */

typedef struct rows_s {
    bool done;
    long rows;
    int status;
} rows_t;

static void on_rows(fw_stream_t *s, void *ud)
{
    rows_t *r = ud;
    fw_row_t row;
    int rc;
    while ((rc = fw_stream_try_next(s, &row)) == FW_ROW)
        r->rows++;
    if (rc != FW_AGAIN) {
        r->status = rc;
        r->done = true;
    }
}

static void test_a_stream_on_a_pooled_connection(void **state)
{
    (void)state;
    fw_pool_t *p = new_pool(2, 5000);
    got_t g = acquire(p, FW_POOL_READ, 10000);
    assert_int_equal(g.status, 0);
    fw_query_t *q;
    assert_int_equal(fw_query_new(&q), 0);
    assert_int_equal(fw_query_relation(q, "v_fixture"), 0);
    rows_t r = {false, 0, 0};
    fw_stream_t *s = NULL;
    fw_error_t err;
    assert_int_equal(fw_stream_start(g.conn, q, on_rows, &r, &s, &err), 0);
    run_until(&r.done, 10000);
    assert_true(r.done);
    assert_int_equal(r.status, FW_END);
    assert_int_equal(r.rows, 5);
    fw_stream_free(s);
    fw_pool_release(p, g.conn);
    /* the same connection again, usable for a second query */
    got_t g2 = acquire(p, FW_POOL_READ, 5000);
    assert_ptr_equal(g2.conn, g.conn);
    rows_t r2 = {false, 0, 0};
    assert_int_equal(fw_stream_start(g2.conn, q, on_rows, &r2, &s, &err), 0);
    /* freed after the first row: the pool waits for the drain (fw_conn_when_idle) */
    fw_stream_free(s);
    fw_pool_release(p, g2.conn);
    got_t g3 = acquire(p, FW_POOL_READ, 10000);
    assert_int_equal(g3.status, 0);
    rows_t r3 = {false, 0, 0};
    assert_int_equal(fw_stream_start(g3.conn, q, on_rows, &r3, &s, &err), 0);
    run_until(&r3.done, 10000);
    assert_int_equal(r3.status, FW_END);
    assert_int_equal(r3.rows, 5);
    fw_stream_free(s);
    fw_query_free(q);
    fw_pool_release(p, g3.conn);
    close_pool(p);
}

/* ---- a dead standby: back-off, breaker, one probe per cooldown --------------------------- */

static void test_a_dead_standby_opens_its_breaker(void **state)
{
    (void)state;
    assert_int_equal(sh("'%s' stop-node '%s' 2 immediate >/dev/null 2>&1", env("FW_REPL_CTL"),
                        env("FW_REPL_DIR")),
                     0);
    fw_pool_t *p = new_pool(8, 3000);
    /* 3 s of read acquires, each released at once: node 1 serves them all */
    uint64_t t0 = uv_hrtime();
    int served = 0;
    while (uv_hrtime() - t0 < 3000000000ull) {
        /* three at once, so the pool wants more than one connection (and tries node 2) */
        got_t g[3];
        memset(g, 0, sizeof(g));
        for (int i = 0; i < 3; i++)
            assert_int_equal(fw_pool_acquire(p, FW_POOL_READ_STANDBY, on_acquired, &g[i]), 0);
        for (int i = 0; i < 3; i++) {
            run_until(&g[i].done, 5000);
            if (g[i].status != 0)
                fail_msg("read acquire: %s", g[i].message);
            assert_int_equal(node_of(g[i].conn), 1);
            served++;
        }
        for (int i = 0; i < 3; i++)
            fw_pool_release(p, g[i].conn);
        run_until(&(bool){false}, 5);
    }
    fw_pool_host_t h;
    assert_int_equal(fw_pool_host(p, 2, &h), 0);
    printf("%d reads served; node 2: breaker %s, %llu connects (%llu probes), %u failures\n",
           served, h.breaker, (unsigned long long)h.connects, (unsigned long long)h.probes,
           h.failures);
    assert_true(served > 50);
    /* Hundreds of acquires, and the dead host was dialled only while the pool wanted more
     * connections: a few times (back-off 50 ms, 100 ms, then the breaker), never per request. */
    assert_in_range(h.connects, 1, 3 + 3);
    assert_int_equal(h.failures, h.connects);
    fw_pool_stats_t st;
    assert_int_equal(fw_pool_stats(p, &st), 0);
    assert_int_equal(st.connect_failures, h.connects);
    close_pool(p);
    /* only standbys wanted and the only live standby gone too: refused at once, not timed out */
    assert_int_equal(sh("'%s' stop-node '%s' 1 immediate >/dev/null 2>&1", env("FW_REPL_CTL"),
                        env("FW_REPL_DIR")),
                     0);
    p = new_pool(4, 20000);
    uint64_t t1 = uv_hrtime();
    got_t g;
    for (int i = 0; i < 8; i++) { /* until both breakers are open */
        g = acquire(p, FW_POOL_READ_STANDBY, 30000);
        if (g.status == FW_EROUTE)
            break;
    }
    double secs = (double)(uv_hrtime() - t1) / 1e9;
    printf("no standby left: refused with FW_EROUTE after %.2f s: %s\n", secs, g.message);
    assert_int_equal(g.status, FW_EROUTE);
    assert_true(secs < 15.0); /* well before the 20 s acquire timeout */
    for (size_t i = 1; i <= 2; i++) {
        assert_int_equal(fw_pool_host(p, i, &h), 0);
        printf("node %zu: breaker %s after %llu connects\n", i, h.breaker,
               (unsigned long long)h.connects);
        assert_string_equal(h.breaker, "open");
        assert_int_equal(h.connects, 3); /* the threshold, then nothing until the cooldown */
    }
    close_pool(p);
    assert_int_equal(sh("'%s' start-node '%s' 1 >/dev/null 2>&1 && '%s' start-node '%s' 2 "
                        ">/dev/null 2>&1 && '%s' wait-streaming '%s' >/dev/null 2>&1",
                        env("FW_REPL_CTL"), env("FW_REPL_DIR"), env("FW_REPL_CTL"),
                        env("FW_REPL_DIR"), env("FW_REPL_CTL"), env("FW_REPL_DIR")),
                     0);
}

/* ---- failover: retire what changed role, write to the new primary ------------------------ */

static void test_failover_retires_and_reroutes(void **state)
{
    (void)state;
    fw_pool_t *p = new_pool(6, 15000);
    got_t w = acquire(p, FW_POOL_WRITE, 10000);
    assert_int_equal(w.status, 0);
    assert_int_equal(node_of(w.conn), 0);
    got_t r = acquire(p, FW_POOL_READ_STANDBY, 10000);
    assert_int_equal(r.status, 0);
    int standby = node_of(r.conn);
    assert_true(standby == 1 || standby == 2);
    fw_pool_release(p, w.conn);
    /* the old primary goes away; the standby we hold is promoted */
    assert_int_equal(sh("'%s' stop-node '%s' 0 fast >/dev/null 2>&1 && '%s' promote '%s' %d "
                        ">/dev/null 2>&1",
                        env("FW_REPL_CTL"), env("FW_REPL_DIR"), env("FW_REPL_CTL"),
                        env("FW_REPL_DIR"), standby),
                     0);
    /* a query on the held connection makes the server report in_hot_standby=off */
    fw_query_t *q;
    assert_int_equal(fw_query_new(&q), 0);
    assert_int_equal(fw_query_relation(q, "v_fixture"), 0);
    /* (with the ReadyForQuery after the backend noticed: the first query, or the next) */
    for (int i = 0; i < 5 && fw_conn_role(r.conn) != FW_ROLE_PRIMARY; i++) {
        rows_t rr = {false, 0, 0};
        fw_stream_t *s = NULL;
        fw_error_t err;
        assert_int_equal(fw_stream_start(r.conn, q, on_rows, &rr, &s, &err), 0);
        run_until(&rr.done, 10000);
        assert_int_equal(rr.status, FW_END);
        fw_stream_free(s);
        run_until(&(bool){false}, 200);
        printf("after query %d on the promoted node: role %s, %ld rows\n", i + 1,
               fw_server_role_name(fw_conn_role(r.conn)), rr.rows);
    }
    fw_query_free(q);
    assert_int_equal(fw_conn_role(r.conn), FW_ROLE_PRIMARY);
    fw_pool_release(p, r.conn); /* opened as a standby: retired */
    /* writes now land on the promoted node, within a connect attempt per host */
    got_t w2 = acquire(p, FW_POOL_WRITE, 20000);
    if (w2.status != 0)
        fail_msg("write after failover: %s", w2.message);
    assert_int_equal(node_of(w2.conn), standby);
    fw_pool_stats_t st;
    assert_int_equal(fw_pool_stats(p, &st), 0);
    printf("after failover: closed for role %llu, for error %llu, connect failures %llu\n",
           (unsigned long long)st.closed_role, (unsigned long long)st.closed_error,
           (unsigned long long)st.connect_failures);
    assert_true(st.closed_role >= 1);
    fw_pool_release(p, w2.conn);
    /* a waiter when the pool closes gets FW_ECLOSED, once */
    got_t a = acquire(p, FW_POOL_WRITE, 5000);
    assert_int_equal(a.status, 0);
    got_t b[3];
    memset(b, 0, sizeof(b));
    for (int i = 0; i < 3; i++)
        assert_int_equal(fw_pool_acquire(p, FW_POOL_READ_STANDBY, on_acquired, &b[i]), 0);
    closed_flag = false;
    fw_pool_close(p, on_pool_closed, NULL);
    for (int i = 0; i < 3; i++) {
        assert_true(b[i].done);
        assert_int_equal(b[i].status, FW_ECLOSED);
    }
    assert_int_equal(fw_pool_acquire(p, FW_POOL_READ, on_acquired, &b[0]), FW_ESTATE);
    fw_pool_release(p, a.conn);
    run_until(&closed_flag, 5000);
    assert_true(closed_flag);
}

static int setup(void **state)
{
    (void)state;
    return uv_loop_init(&loop);
}

static int teardown(void **state)
{
    (void)state;
    uv_run(&loop, UV_RUN_NOWAIT);
    return uv_loop_close(&loop) == 0 ? 0 : -1;
}

int main(void)
{
    if (getenv("FW_REPL_DIR") == NULL) {
        printf("no replicated cluster (run through test/with-repl.sh)\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reads_go_to_standbys_writes_to_the_primary),
        cmocka_unit_test(test_a_stream_on_a_pooled_connection),
        cmocka_unit_test(test_a_dead_standby_opens_its_breaker),
        cmocka_unit_test(test_failover_retires_and_reroutes), /* last: it changes the cluster */
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
