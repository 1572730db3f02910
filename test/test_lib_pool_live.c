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

#include "faultproxy.h"
#include "repl_env.h"
#include "pool_loop.h"

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

static void test_a_stream_on_a_pooled_connection(void **state)
{
    (void)state;
    fw_pool_t *p = new_pool(2, 5000);
    got_t g = acquire(p, FW_POOL_READ, 10000);
    assert_int_equal(g.status, 0);
    fw_query_t *q;
    assert_int_equal(fw_query_new(&q), 0);
    assert_int_equal(fw_query_relation(q, "v_fixture"), 0);
    rows_t r = {0};
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
    rows_t r2 = {0};
    assert_int_equal(fw_stream_start(g2.conn, q, on_rows, &r2, &s, &err), 0);
    /* freed after the first row: the pool waits for the drain (fw_conn_when_idle) */
    fw_stream_free(s);
    fw_pool_release(p, g2.conn);
    got_t g3 = acquire(p, FW_POOL_READ, 10000);
    assert_int_equal(g3.status, 0);
    rows_t r3 = {0};
    assert_int_equal(fw_stream_start(g3.conn, q, on_rows, &r3, &s, &err), 0);
    run_until(&r3.done, 10000);
    assert_int_equal(r3.status, FW_END);
    assert_int_equal(r3.rows, 5);
    fw_stream_free(s);
    fw_pool_release(p, g3.conn);
    /* fw_pool_stream_start: fw_stream_free gives the connection back (no fw_pool_release) */
    got_t g4 = acquire(p, FW_POOL_READ, 10000);
    assert_int_equal(g4.status, 0);
    rows_t r4 = {0};
    assert_int_equal(fw_pool_stream_start(p, g4.conn, q, on_rows, &r4, &s, &err), 0);
    run_until(&r4.done, 10000);
    assert_int_equal(r4.status, FW_END);
    assert_int_equal(r4.rows, 5);
    /* g4's connection is out; g2's, freed before its first row, may still be draining (on a
     * loaded machine, past g3's and g4's whole streams): wait for it to come back */
    fw_pool_stats_t st;
    uint64_t tw = uv_hrtime();
    do {
        run_until(&(bool){false}, 10);
        assert_int_equal(fw_pool_stats(p, &st), 0);
    } while (st.in_use > 1 && uv_hrtime() - tw < 5000000000ull);
    assert_int_equal(st.in_use, 1);
    uint64_t closed_before = st.closed_lifetime + st.closed_idle + st.closed_health +
                             st.closed_role + st.closed_error + st.closed_pool;
    fw_stream_free(s);
    /* (a connection opened for g3 may still be finishing its connect: wait for it too) */
    uint64_t t0 = uv_hrtime();
    do {
        run_until(&(bool){false}, 10);
        assert_int_equal(fw_pool_stats(p, &st), 0);
    } while ((st.in_use != 0 || st.opening != 0) && uv_hrtime() - t0 < 5000000000ull);
    assert_int_equal(st.in_use, 0);
    assert_int_equal(st.idle, st.size); /* back in the pool ... */
    assert_int_equal(st.closed_lifetime + st.closed_idle + st.closed_health + st.closed_role +
                         st.closed_error + st.closed_pool,
                     closed_before); /* ... not closed */
    fw_query_free(q);
    close_pool(p);
}

/* ---- health check: a half-open connection is never handed out --------------------------- */

static void test_a_half_open_connection_fails_its_health_check(void **state)
{
    (void)state;
    /* one host, through the fault proxy: FP_STALL makes the connection half-open (the proxy
     * forwards nothing more either way and keeps both sockets open: no FIN, no RST) */
    fp_t fp;
    fp_start(&fp, (uint16_t)node_port(1));
    char ci[1024];
    make_conninfo(ci, sizeof(ci), fp.port, NULL);
    fw_pool_opts_t o;
    pool_opts(&o, 2, 10000, NULL);
    o.conninfo = ci;
    o.health_check_after_ms = 200;
    o.health_check_timeout_ms = 700;
    fw_pool_t *p = new_pool_with(&o);
    got_t a = acquire(p, FW_POOL_READ, 10000);
    assert_int_equal(a.status, 0);
    int pid_a = backend_pid(a.conn);
    fw_pool_release(p, a.conn);
    /* idle for less than the threshold: handed out again without a check */
    got_t a2 = acquire(p, FW_POOL_READ, 5000);
    assert_int_equal(a2.status, 0);
    assert_int_equal(backend_pid(a2.conn), pid_a);
    fw_pool_stats_t st;
    assert_int_equal(fw_pool_stats(p, &st), 0);
    assert_int_equal(st.health_checks, 0);
    fw_pool_release(p, a2.conn);
    /* idle past the threshold, healthy: one check, the same connection */
    run_until(&(bool){false}, 300);
    got_t b = acquire(p, FW_POOL_READ, 5000);
    assert_int_equal(b.status, 0);
    assert_int_equal(backend_pid(b.conn), pid_a);
    assert_int_equal(fw_pool_stats(p, &st), 0);
    assert_int_equal(st.health_checks, 1);
    assert_int_equal(st.closed_health, 0);
    fw_pool_release(p, b.conn);
    /* now half-open: the check gets no answer within 700 ms; the waiter gets a new
     * connection (opened through the proxy, which passes new connections) */
    run_until(&(bool){false}, 300);
    fp_arm(&fp, FP_STALL, 0, false);
    uint64_t t0 = uv_hrtime();
    got_t c = acquire(p, FW_POOL_READ, 10000);
    double secs = (double)(uv_hrtime() - t0) / 1e9;
    if (c.status != 0)
        fail_msg("acquire after a half-open connection: %s", c.message);
    int pid_c = backend_pid(c.conn);
    assert_int_equal(fw_pool_stats(p, &st), 0);
    printf("half-open connection: found by the health check, new connection handed out after "
           "%.3f s (check timeout 0.7 s); checks %llu, closed_health %llu, opened %llu\n",
           secs, (unsigned long long)st.health_checks, (unsigned long long)st.closed_health,
           (unsigned long long)st.opened);
    assert_true(fp_fired(&fp)); /* the stall really happened */
    assert_int_not_equal(pid_c, pid_a);
    assert_int_equal(st.health_checks, 2);
    assert_int_equal(st.closed_health, 1);
    assert_int_equal(st.opened, 2);
    assert_int_equal(st.acquire_timeouts, 0);
    assert_true(secs >= 0.65 && secs < 5.0);
    /* the new connection works */
    expect_fixture_rows(c.conn);
    fw_pool_release(p, c.conn);
    /* the peer closes (FIN) when the check's answer comes: found at once, not at the timeout */
    run_until(&(bool){false}, 300);
    fp_arm(&fp, FP_CLOSE, 0, false);
    t0 = uv_hrtime();
    got_t d = acquire(p, FW_POOL_READ, 10000);
    secs = (double)(uv_hrtime() - t0) / 1e9;
    if (d.status != 0)
        fail_msg("acquire after a closed connection: %s", d.message);
    assert_int_equal(fw_pool_stats(p, &st), 0);
    printf("closed by the peer during the check: new connection after %.3f s; closed_health "
           "%llu\n",
           secs, (unsigned long long)st.closed_health);
    assert_true(fp_fired(&fp));
    assert_int_not_equal(backend_pid(d.conn), pid_c);
    assert_int_equal(st.closed_health, 2);
    assert_int_equal(st.opened, 3);
    assert_true(secs < 0.65); /* the EOF ended the check, not its 0.7 s timeout */
    fw_pool_release(p, d.conn);
    close_pool(p);
    assert_true(fp_quiesce(&fp)); /* both connections closed by the pool, the stalled one too */
    fp_stop(&fp);
}

/* A backend ended by pg_terminate_backend while idle: never handed out. The idle reader sees
 * the server's FATAL (57P01) and EOF; with health_check_after_ms 0 the check would catch a
 * connection whose FATAL had not been read yet. */
static void test_a_terminated_backend_is_not_handed_out(void **state)
{
    (void)state;
    fw_pool_opts_t o;
    pool_opts(&o, 3, 10000, NULL);
    o.health_check_after_ms = 0; /* every hand-out checked */
    fw_pool_t *p = new_pool_with(&o);
    got_t a = acquire(p, FW_POOL_WRITE, 10000);
    assert_int_equal(a.status, 0);
    int pid_a = backend_pid(a.conn);
    fw_pool_release(p, a.conn);
    /* another session (psql, the same role) ends a's backend */
    assert_int_equal(sh("PGPASSWORD='%s' '%s/psql' -X -q -At -h '%s' -p %d -U '%s' -d '%s' -c "
                        "'SELECT pg_terminate_backend(%d)' >/dev/null 2>&1",
                        env("FW_REPL_PASS_SCRAM"), env("FW_REPL_BINDIR"), env("FW_REPL_HOST4"),
                        node_port(0), env("FW_REPL_USER_SCRAM"), env("FW_REPL_DBNAME"), pid_a),
                     0);
    run_until(&(bool){false}, 300);
    got_t b = acquire(p, FW_POOL_WRITE, 10000);
    if (b.status != 0)
        fail_msg("acquire after pg_terminate_backend: %s", b.message);
    assert_int_not_equal(backend_pid(b.conn), pid_a);
    fw_pool_stats_t st;
    assert_int_equal(fw_pool_stats(p, &st), 0);
    printf("terminated backend: closed_error %llu, closed_health %llu, checks %llu\n",
           (unsigned long long)st.closed_error, (unsigned long long)st.closed_health,
           (unsigned long long)st.health_checks);
    assert_int_equal(st.closed_error + st.closed_health, 1);
    fw_pool_release(p, b.conn);
    close_pool(p);
}

/* ---- min_size: opened ahead of demand, refilled after retirement -------------------------- */

static void run_until_idle(fw_pool_t *p, unsigned idle, int ms)
{
    fw_pool_stats_t st;
    uint64_t t0 = uv_hrtime();
    do {
        run_until(&(bool){false}, 10);
        assert_int_equal(fw_pool_stats(p, &st), 0);
    } while (st.idle != idle && uv_hrtime() - t0 < (uint64_t)ms * 1000000u);
}

static void test_min_size_opens_ahead_and_refills(void **state)
{
    (void)state;
    fw_pool_opts_t o;
    pool_opts(&o, 5, 10000, NULL);
    o.min_size = 3;
    o.max_lifetime_ms = 1500;
    o.lifetime_jitter_ms = 0;
    fw_pool_t *p = new_pool_with(&o);
    fw_pool_stats_t st;
    assert_int_equal(fw_pool_stats(p, &st), 0);
    assert_int_equal(st.size, 0); /* nothing inside fw_pool_new */
    uint64_t t0 = uv_hrtime();
    run_until_idle(p, 3, 10000);
    double secs = (double)(uv_hrtime() - t0) / 1e9;
    assert_int_equal(fw_pool_stats(p, &st), 0);
    printf("min_size 3: %u idle after %.3f s, no acquire\n", st.idle, secs);
    assert_int_equal(st.idle, 3);
    assert_int_equal(st.opened, 3);
    assert_int_equal(st.acquires, 0);
    /* least used hosts first: one on each node */
    for (size_t i = 0; i < 3; i++) {
        fw_pool_host_t h;
        assert_int_equal(fw_pool_host(p, i, &h), 0);
        assert_int_equal(h.connections, 1);
    }
    /* an acquire takes one of them: nothing new opens (min_size counts connections out) */
    got_t g = acquire(p, FW_POOL_WRITE, 5000);
    assert_int_equal(g.status, 0);
    assert_int_equal(node_of(g.conn), 0);
    run_until(&(bool){false}, 100);
    assert_int_equal(fw_pool_stats(p, &st), 0);
    assert_int_equal(st.opened, 3);
    assert_int_equal(st.size, 3);
    fw_pool_release(p, g.conn);
    /* lifetimes end (1.5 s, checked every second): retired, and opened again */
    run_until(&(bool){false}, 2600);
    run_until_idle(p, 3, 5000);
    assert_int_equal(fw_pool_stats(p, &st), 0);
    printf("after the lifetimes: closed_lifetime %llu, opened %llu, idle %u\n",
           (unsigned long long)st.closed_lifetime, (unsigned long long)st.opened, st.idle);
    assert_true(st.closed_lifetime >= 3);
    assert_true(st.opened >= 6);
    assert_int_equal(st.opened - st.closed_lifetime, 3);
    assert_int_equal(st.idle, 3);
    close_pool(p);
    /* bad values are refused, with a reason */
    pool_opts(&o, 2, 1000, NULL);
    o.min_size = 3;
    fw_pool_t *bad = NULL;
    fw_error_t err;
    assert_int_equal(fw_pool_new(&bad, &loop, &o, &err), FW_EINVAL);
    assert_null(bad);
    assert_non_null(strstr(err.message, "min_size"));
}

/* ---- idle timeout and lifetime jitter ------------------------------------------------------ */

/* Acquires n connections at once (all held), then gives them all back and waits until every
 * connection of the pool is idle (a READ may open one more than it takes: a host of unknown
 * role that turns out a primary). Returns the hrtime then; *idle, how many are idle. */
static uint64_t open_n_then_idle(fw_pool_t *p, int n, unsigned *idle)
{
    got_t g[16];
    assert_true(n <= 16);
    memset(g, 0, sizeof(g));
    for (int i = 0; i < n; i++)
        assert_int_equal(fw_pool_acquire(p, FW_POOL_READ, on_acquired, &g[i]), 0);
    for (int i = 0; i < n; i++) {
        run_until(&g[i].done, 10000);
        assert_true(g[i].done);
        assert_int_equal(g[i].status, 0);
    }
    for (int i = 0; i < n; i++)
        fw_pool_release(p, g[i].conn);
    fw_pool_stats_t st;
    uint64_t t0 = uv_hrtime();
    do {
        run_until(&(bool){false}, 2);
        assert_int_equal(fw_pool_stats(p, &st), 0);
    } while ((st.in_use != 0 || st.opening != 0 || st.idle != st.size) &&
             uv_hrtime() - t0 < 5000000000u);
    assert_int_equal(st.in_use, 0);
    assert_true(st.idle >= (unsigned)n);
    assert_int_equal(st.closed_idle + st.closed_lifetime, 0); /* nothing closed yet */
    *idle = st.idle;
    return uv_hrtime();
}

/* Runs the loop until the counter *at (a field of the stats, by offset) reaches want or ms
 * pass; records the hrtime of every increase in ticks[] (at most cap). Returns how many. */
static int watch_counter(fw_pool_t *p, size_t off, uint64_t want, int ms, uint64_t *ticks, int cap)
{
    fw_pool_stats_t st;
    uint64_t last = 0;
    int k = 0;
    uint64_t t0 = uv_hrtime();
    do {
        run_until(&(bool){false}, 5);
        assert_int_equal(fw_pool_stats(p, &st), 0);
        uint64_t v;
        memcpy(&v, (const char *)&st + off, sizeof(v));
        for (; last < v && k < cap; last++)
            ticks[k++] = uv_hrtime();
        last = v;
        if (v >= want)
            break;
    } while (uv_hrtime() - t0 < (uint64_t)ms * 1000000u);
    return k;
}

static void test_idle_connections_close_after_the_idle_timeout(void **state)
{
    (void)state;
    for (unsigned min_size = 0; min_size <= 1; min_size++) {
        fw_pool_opts_t o;
        pool_opts(&o, 6, 10000, NULL);
        o.idle_timeout_ms = 1000; /* checked by the sweep, every second */
        o.min_size = min_size;
        fw_pool_t *p = new_pool_with(&o);
        unsigned idle = 0;
        uint64_t t0 = open_n_then_idle(p, 3, &idle);
        uint64_t ticks[8];
        /* every idle connection above min_size closes between 1 s (the timeout) and about
         * 2 s (the next sweep after it) */
        int k = watch_counter(p, offsetof(fw_pool_stats_t, closed_idle), idle - min_size, 6000,
                              ticks, 8);
        fw_pool_stats_t st;
        assert_int_equal(fw_pool_stats(p, &st), 0);
        double first = k > 0 ? (double)(ticks[0] - t0) / 1e9 : -1;
        double last = k > 0 ? (double)(ticks[k - 1] - t0) / 1e9 : -1;
        printf("idle timeout 1 s, min_size %u: closed_idle %llu, first %.3f s, last %.3f s "
               "after the release; idle %u of %u\n",
               min_size, (unsigned long long)st.closed_idle, first, last, st.idle, idle);
        assert_int_equal(st.closed_idle, idle - min_size);
        assert_true(first >= 0.9);
        assert_true(last <= 3.5);
        /* min_size stays open; nothing else closed it */
        run_until(&(bool){false}, 1500);
        assert_int_equal(fw_pool_stats(p, &st), 0);
        assert_int_equal(st.closed_idle, idle - min_size);
        assert_int_equal(st.idle, min_size);
        assert_int_equal(st.closed_lifetime + st.closed_error + st.closed_role, 0);
        close_pool(p);
    }
}

static void test_lifetimes_are_spread_by_the_jitter(void **state)
{
    (void)state;
    fw_pool_opts_t o;
    pool_opts(&o, 16, 10000, NULL);
    o.max_lifetime_ms = 3000;
    o.lifetime_jitter_ms = 1900; /* each connection lives 1.1 to 3 s */
    o.idle_timeout_ms = 0;       /* off: only lifetimes close */
    fw_pool_t *p = new_pool_with(&o);
    unsigned idle = 0;
    uint64_t t0 = open_n_then_idle(p, 16, &idle);
    int n = (int)idle;
    uint64_t ticks[16];
    int k =
        watch_counter(p, offsetof(fw_pool_stats_t, closed_lifetime), (uint64_t)n, 6000, ticks, 16);
    fw_pool_stats_t st;
    assert_int_equal(fw_pool_stats(p, &st), 0);
    assert_int_equal(st.closed_lifetime, (uint64_t)n);
    assert_int_equal(k, n);
    /* retired at the sweep after their expiry: the sweep runs every second and the expiries
     * are spread over 1.9 s, so they fall at two or three different sweeps (all 16 within
     * one second: a chance of (1/1.9)^16, 3e-5); without jitter (the min_size test) every
     * lifetime ends at the same sweep */
    int sweeps = 1;
    for (int i = 1; i < k; i++)
        if (ticks[i] - ticks[i - 1] > 500000000u)
            sweeps++;
    double first = (double)(ticks[0] - t0) / 1e9, last = (double)(ticks[k - 1] - t0) / 1e9;
    printf("lifetime 3 s, jitter 1.9 s, %d connections: retired at %d sweeps, from %.3f s to "
           "%.3f s after the release\n",
           n, sweeps, first, last);
    assert_true(sweeps >= 2);
    assert_true(first >= 0.5); /* 1.1 s at least from the opens, which came before t0 */
    assert_true(last <= 5.0);  /* 3 s lifetime + a sweep + slack */
    assert_int_equal(st.closed_idle + st.closed_error + st.closed_role, 0);
    close_pool(p);
}

/* ---- after-connect SQL -------------------------------------------------------------------- */

static void test_after_connect_sql(void **state)
{
    (void)state;
    fw_pool_opts_t o;
    pool_opts(&o, 2, 5000, NULL);
    o.after_connect_sql = "SET application_name = 'fwire_pool_test'; SET search_path = public";
    fw_pool_t *p = new_pool_with(&o);
    got_t g = acquire(p, FW_POOL_READ, 10000);
    if (g.status != 0)
        fail_msg("acquire: %s", g.message);
    /* the session has the settings: the rows come only where the setting is what was SET */
    fw_query_t *q;
    assert_int_equal(fw_query_new(&q), 0);
    assert_int_equal(fw_query_relation(q, "v_fixture"), 0);
    assert_int_equal(fw_query_where_sql(q, "current_setting('application_name') = "
                                           "'fwire_pool_test' AND current_schemas(false) = "
                                           "ARRAY['public']::name[]"),
                     0);
    rows_t r = stream_all(g.conn, q, 10000);
    assert_int_equal(r.status, FW_END);
    assert_int_equal(r.rows, 5);
    fw_query_free(q);
    fw_pool_release(p, g.conn);
    close_pool(p);
    /* SQL that fails: no connection is handed out; the acquire says why, SQLSTATE included */
    pool_opts(&o, 2, 4000, NULL);
    o.after_connect_sql = "SELECT 1/0";
    p = new_pool_with(&o);
    got_t f = acquire(p, FW_POOL_WRITE, 10000);
    printf("after_connect_sql failing: status %s, sqlstate %s: %s\n", fw_err_name(f.status),
           f.sqlstate, f.message);
    assert_true(f.status == FW_EROUTE || f.status == FW_ETIMEDOUT);
    assert_null(f.conn);
    assert_string_equal(f.sqlstate, "22012");
    assert_non_null(strstr(f.message, "after_connect_sql failed"));
    fw_pool_stats_t st;
    assert_int_equal(fw_pool_stats(p, &st), 0);
    assert_int_equal(st.opened, 0);
    assert_true(st.connect_failures >= 1);
    close_pool(p);
    /* SQL that leaves a transaction open: refused, with a message that says so */
    pool_opts(&o, 2, 3000, NULL);
    o.after_connect_sql = "BEGIN";
    p = new_pool_with(&o);
    got_t t = acquire(p, FW_POOL_WRITE, 10000);
    printf("after_connect_sql BEGIN: %s: %s\n", fw_err_name(t.status), t.message);
    assert_true(t.status == FW_EROUTE || t.status == FW_ETIMEDOUT);
    assert_non_null(strstr(t.message, "transaction block"));
    assert_int_equal(fw_pool_stats(p, &st), 0);
    assert_int_equal(st.opened, 0);
    close_pool(p);
}

/* ---- metrics: the fraiseql_pool_* families, promtool-clean -------------------------------- */

static char *render(void)
{
    long n = fw_metrics_render(NULL, 0);
    assert_true(n > 0);
    char *buf = malloc((size_t)n + 4096);
    assert_non_null(buf);
    long m = fw_metrics_render(buf, (size_t)n + 4096);
    assert_true(m > 0 && m < n + 4096);
    return buf;
}

/* The value of the series `name` (with its labels, exactly as rendered), or -1 when absent. */
static double metric(const char *text, const char *name)
{
    size_t len = strlen(name);
    for (const char *l = text; l != NULL && *l != '\0'; l = strchr(l, '\n'), l = l ? l + 1 : l) {
        if (strncmp(l, name, len) == 0 && l[len] == ' ')
            return strtod(l + len + 1, NULL);
    }
    return -1;
}

static void promtool_check(const char *text)
{
    if (sh("command -v promtool >/dev/null 2>&1") != 0) {
        printf("promtool not installed: exposition not linted\n");
        return;
    }
    char path[] = "/tmp/fw_pool_metrics_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t n = strlen(text);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    close(fd);
    int rc = sh("promtool check metrics <'%s'", path);
    unlink(path);
    assert_int_equal(rc, 0);
}

static void test_pool_metrics(void **state)
{
    (void)state;
    char *t0 = render();
    fw_pool_opts_t o;
    pool_opts(&o, 2, 500, NULL);
    o.name = "api"; /* every series below is this pool's: {pool="api"} */
    fw_pool_t *p = new_pool_with(&o);
    /* another pool of another name: its own series, which this pool's figures never reach */
    pool_opts(&o, 1, 500, NULL);
    o.name = "batch";
    fw_pool_t *other = new_pool_with(&o);
    got_t ob = acquire(other, FW_POOL_WRITE, 10000);
    assert_int_equal(ob.status, 0);
    got_t a = acquire(p, FW_POOL_WRITE, 10000);
    got_t b = acquire(p, FW_POOL_WRITE, 10000);
    assert_int_equal(a.status, 0);
    assert_int_equal(b.status, 0);
    got_t late;
    memset(&late, 0, sizeof(late));
    assert_int_equal(fw_pool_acquire(p, FW_POOL_WRITE, on_acquired, &late), 0);
    run_until(&(bool){false}, 50);
    char *t1 = render(); /* two out, one waiting */
    run_until(&late.done, 5000);
    assert_int_equal(late.status, FW_ETIMEDOUT);
    char host0[128];
    snprintf(host0, sizeof(host0),
             "fraiseql_pool_host_breaker{pool=\"api\",host=\"%s:%d\",state=\"closed\"}",
             env("FW_REPL_HOST4"), node_port(0));
    printf("while open: connections %g, in_use %g, waiting %g, %s %g\n",
           metric(t1, "fraiseql_pool_connections{pool=\"api\"}"),
           metric(t1, "fraiseql_pool_connections_in_use{pool=\"api\"}"),
           metric(t1, "fraiseql_pool_acquires_waiting{pool=\"api\"}"), host0, metric(t1, host0));
    assert_true(metric(t1, "fraiseql_pool_connections{pool=\"api\"}") ==
                (metric(t0, "fraiseql_pool_connections{pool=\"api\"}") > 0
                     ? metric(t0, "fraiseql_pool_connections{pool=\"api\"}")
                     : 0) +
                    2);
    assert_true(metric(t1, "fraiseql_pool_connections_in_use{pool=\"api\"}") >= 2);
    assert_true(metric(t1, "fraiseql_pool_acquires_waiting{pool=\"api\"}") >= 1);
    assert_true(metric(t1, host0) >= 1);
    promtool_check(t1);
    /* the other pool's one connection, in its own series */
    assert_true(metric(t1, "fraiseql_pool_connections_in_use{pool=\"batch\"}") == 1);
    fw_pool_release(p, a.conn);
    fw_pool_release(p, b.conn);
    close_pool(p);
    fw_pool_release(other, ob.conn);
    close_pool(other);
    char *t2 = render();
    promtool_check(t2);
    /* the counters moved by what this pool did; its gauges went back */
    double base_acq = metric(t0, "fraiseql_pool_acquires_total{pool=\"api\"}");
    double base_to = metric(t0, "fraiseql_pool_acquire_timeouts_total{pool=\"api\"}");
    double base_open = metric(t0, "fraiseql_pool_connections_opened_total{pool=\"api\"}");
    double base_closed =
        metric(t0, "fraiseql_pool_connections_closed_total{pool=\"api\",reason=\"pool\"}");
    double base_wait = metric(t0, "fraiseql_pool_acquire_wait_seconds_count{pool=\"api\"}");
    assert_true(metric(t2, "fraiseql_pool_acquires_total{pool=\"api\"}") ==
                (base_acq < 0 ? 0 : base_acq) + 2);
    assert_true(metric(t2, "fraiseql_pool_acquire_timeouts_total{pool=\"api\"}") ==
                (base_to < 0 ? 0 : base_to) + 1);
    assert_true(metric(t2, "fraiseql_pool_connections_opened_total{pool=\"api\"}") ==
                (base_open < 0 ? 0 : base_open) + 2);
    assert_true(
        metric(t2, "fraiseql_pool_connections_closed_total{pool=\"api\",reason=\"pool\"}") ==
        (base_closed < 0 ? 0 : base_closed) + 2);
    assert_true(metric(t2, "fraiseql_pool_acquire_wait_seconds_count{pool=\"api\"}") ==
                (base_wait < 0 ? 0 : base_wait) + 3);
    assert_true(metric(t2, "fraiseql_pool_connections{pool=\"api\"}") == 0);
    assert_true(metric(t2, "fraiseql_pool_connections_in_use{pool=\"api\"}") == 0);
    assert_true(metric(t2, "fraiseql_pool_acquires_waiting{pool=\"api\"}") == 0);
    assert_true(metric(t2, host0) == 0);
    free(t0);
    free(t1);
    free(t2);
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
    /* min_size with node 2 dead: filled from the live nodes; the dead one is dialled once
     * (then backs off) and not again while min_size is met */
    fw_pool_opts_t mo;
    pool_opts(&mo, 8, 3000, NULL);
    mo.min_size = 3;
    p = new_pool_with(&mo);
    run_until(&(bool){false}, 2500);
    assert_int_equal(fw_pool_stats(p, &st), 0);
    fw_pool_host_t h0, h1;
    assert_int_equal(fw_pool_host(p, 0, &h0), 0);
    assert_int_equal(fw_pool_host(p, 1, &h1), 0);
    assert_int_equal(fw_pool_host(p, 2, &h), 0);
    printf("min_size 3, node 2 dead: %u idle (nodes 0/1: %u/%u), node 2 dialled %llu times in "
           "2.5 s\n",
           st.idle, h0.connections, h1.connections, (unsigned long long)h.connects);
    assert_int_equal(st.idle, 3);
    assert_int_equal(h0.connections + h1.connections, 3);
    assert_int_equal(h.connections, 0);
    assert_in_range(h.connects, 1, 2);
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
        /* the same in the metrics: this pool counts the host's breaker as open */
        char *text = render();
        char name[160];
        snprintf(name, sizeof(name),
                 "fraiseql_pool_host_breaker{pool=\"default\",host=\"%s:%d\",state=\"open\"}",
                 h.host, h.port);
        assert_true(metric(text, name) == 1);
        snprintf(name, sizeof(name),
                 "fraiseql_pool_host_breaker{pool=\"default\",host=\"%s:%d\",state=\"closed\"}",
                 h.host, h.port);
        assert_true(metric(text, name) == 0);
        free(text);
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
        rows_t rr = {0};
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
    (void)fp_arm_tls; /* faultproxy.h's TLS mode: not needed here */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reads_go_to_standbys_writes_to_the_primary),
        cmocka_unit_test(test_a_stream_on_a_pooled_connection),
        cmocka_unit_test(test_a_half_open_connection_fails_its_health_check),
        cmocka_unit_test(test_a_terminated_backend_is_not_handed_out),
        cmocka_unit_test(test_min_size_opens_ahead_and_refills),
        cmocka_unit_test(test_idle_connections_close_after_the_idle_timeout),
        cmocka_unit_test(test_lifetimes_are_spread_by_the_jitter),
        cmocka_unit_test(test_after_connect_sql),
        cmocka_unit_test(test_pool_metrics),
        cmocka_unit_test(test_a_dead_standby_opens_its_breaker),
        cmocka_unit_test(test_failover_retires_and_reroutes), /* last: it changes the cluster */
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
