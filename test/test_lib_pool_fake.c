/* SPDX-License-Identifier: MIT */
/*
 * The connection pool (fw_pool_t) against fake servers (test/fakepg.h), for what a real cluster
 * cannot show: options that make no sense are refused at creation, in both run modes; an
 * unknown `want` is FW_EINVAL at once (never a hang); an acquire on a closing pool is FW_ESTATE
 * at once, also fw_pool_acquire_wait on a threaded pool whose close waits for a connection
 * still draining; and a host that refuses every connection is dialled `breaker_threshold`
 * times, then once per cooldown, however often the pool is asked (counted by the fake server,
 * which sees every TCP connection).
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
#include "pool_loop.h"

static double now_s(void)
{
    return (double)uv_hrtime() / 1e9;
}

/* ---- backend messages -------------------------------------------------------------------- */

/* The reply to a stream's query: ParseComplete, BindComplete, RowDescription (data jsonb),
 * one row, CommandComplete, ReadyForQuery. */
static void reply_one_row(bb_t *b)
{
    m_empty(b, '1');
    m_empty(b, '2');
    size_t at = msg_begin(b, 'T');
    bb_u16(b, 1);
    bb_str(b, "data");
    bb_u32(b, 0);
    bb_u16(b, 0);
    bb_u32(b, 3802); /* jsonb */
    bb_u16(b, 0xffff);
    bb_u32(b, 0xffffffff);
    bb_u16(b, 0);
    msg_end(b, at);
    m_row(b, "{\"a\":1}");
    m_complete(b, "SELECT 1");
    m_ready(b);
}

/* Static: a failed assertion longjmps out while a fake server's thread may still run. */
static fakepg_t g_fake;
static bb_t g_startup, g_reply;

static fakepg_t *fake_init(void)
{
    memset(&g_fake, 0, sizeof(g_fake));
    bb_free(&g_startup);
    bb_free(&g_reply);
    g_fake.io_timeout_ms = (unsigned)(20000 * time_scale());
    return &g_fake;
}

static char conninfo_buf[256];

static void opts_for_port(fw_pool_opts_t *o, int port)
{
    snprintf(conninfo_buf, sizeof(conninfo_buf),
             "host=127.0.0.1 port=%d dbname=app user=app sslmode=disable connect_timeout=2", port);
    fw_pool_opts_init(o);
    o->conninfo = conninfo_buf;
    o->use_environment = false;
}

/* ---- bad input at creation --------------------------------------------------------------- */

/* fw_pool_new and fw_pool_new_rt refuse `o` with FW_EINVAL and a message holding `what`. */
static void expect_refused(fw_runtime_t *rt, const fw_pool_opts_t *o, const char *what)
{
    fw_pool_t *p = (fw_pool_t *)&p; /* not NULL: the call must clear it */
    fw_error_t err;
    assert_int_equal(fw_pool_new(&p, &loop, o, &err), FW_EINVAL);
    assert_null(p);
    assert_int_equal(err.code, FW_EINVAL);
    if (strstr(err.message, what) == NULL)
        fail_msg("embedded: \"%s\" does not name %s", err.message, what);
    p = (fw_pool_t *)&p;
    memset(&err, 0, sizeof(err));
    assert_int_equal(fw_pool_new_rt(&p, rt, o, &err), FW_EINVAL);
    assert_null(p);
    if (strstr(err.message, what) == NULL)
        fail_msg("threaded: \"%s\" does not name %s", err.message, what);
    printf("refused in both modes: %s\n", err.message);
}

static void test_options_that_make_no_sense_are_refused_in_both_modes(void **state)
{
    (void)state;
    fw_runtime_t *rt;
    assert_int_equal(fw_runtime_new(&rt), 0);
    fw_pool_opts_t o;
    opts_for_port(&o, 1);
    o.max_size = 0;
    expect_refused(rt, &o, "max_size");
    opts_for_port(&o, 1);
    o.max_size = 2;
    o.min_size = 3;
    expect_refused(rt, &o, "min_size");
    /* at the limit: min_size == max_size is fine */
    opts_for_port(&o, 1);
    o.max_size = 1;
    o.min_size = 1;
    o.acquire_timeout_ms = 1;
    fw_pool_t *p = NULL;
    fw_error_t err;
    assert_int_equal(fw_pool_new(&p, &loop, &o, &err), 0);
    close_pool(p);
    /* acquire_timeout_ms 0: refused (it would time out every acquire that has to wait) */
    opts_for_port(&o, 1);
    o.acquire_timeout_ms = 0;
    expect_refused(rt, &o, "acquire_timeout_ms");
    /* a name the metrics' label cannot take: empty, or 64 bytes and more */
    opts_for_port(&o, 1);
    o.name = "";
    expect_refused(rt, &o, "name must be 1 to 63 bytes");
    char long_name[65];
    memset(long_name, 'p', 64);
    long_name[64] = '\0';
    o.name = long_name;
    expect_refused(rt, &o, "name must be 1 to 63 bytes");
    long_name[63] = '\0'; /* 63: fine */
    assert_int_equal(fw_pool_new(&p, &loop, &o, &err), 0);
    close_pool(p);
    /* a reserved slot set (an option of a later version): refused, not ignored */
    opts_for_port(&o, 1);
    o.reserved[7] = &o;
    expect_refused(rt, &o, "reserved slot");
    /* NULL options, NULL out */
    assert_int_equal(fw_pool_new(&p, &loop, NULL, &err), FW_EINVAL);
    assert_int_equal(fw_pool_new(NULL, &loop, &o, &err), FW_EINVAL);
    assert_int_equal(fw_pool_new_rt(&p, rt, NULL, &err), FW_EINVAL);
    assert_null(p);
    assert_true(err.message[0] != '\0');
    /* a connection string that does not parse: FW_ECONFIG with the parser's reason */
    opts_for_port(&o, 1);
    o.conninfo = "host=127.0.0.1 port=notaport";
    p = (fw_pool_t *)&p;
    assert_int_equal(fw_pool_new(&p, &loop, &o, &err), FW_ECONFIG);
    assert_null(p);
    printf("bad conninfo: %s\n", err.message);
    assert_true(err.message[0] != '\0');
    fw_runtime_free(rt);
}

/* ---- an unknown want --------------------------------------------------------------------- */

static void test_an_unknown_want_is_einval_at_once_in_both_modes(void **state)
{
    (void)state;
    fw_pool_opts_t o;
    opts_for_port(&o, 1); /* nothing listens: nothing must be dialled either */
    fw_pool_t *p = NULL;
    fw_error_t err;
    assert_int_equal(fw_pool_new(&p, &loop, &o, &err), 0);
    got_t g;
    memset(&g, 0, sizeof(g));
    assert_int_equal(fw_pool_acquire(p, (fw_pool_want_t)42, on_acquired, &g), FW_EINVAL);
    assert_int_equal(fw_pool_acquire(p, (fw_pool_want_t)-1, on_acquired, &g), FW_EINVAL);
    assert_int_equal(fw_pool_acquire(p, FW_POOL_READ, NULL, &g), FW_EINVAL);
    assert_int_equal(fw_pool_acquire(NULL, FW_POOL_READ, on_acquired, &g), FW_EINVAL);
    run_for(100);
    assert_int_equal(g.calls, 0); /* the callback never runs after a refused call */
    fw_pool_stats_t st;
    assert_int_equal(fw_pool_stats(p, &st), 0);
    assert_int_equal(st.waiting, 0);
    assert_int_equal(st.size, 0); /* nothing was opened for it */
    /* a threaded call on an embedded pool: refused with a message */
    fw_conn_t *c = (fw_conn_t *)&c;
    assert_int_equal(fw_pool_acquire_wait(p, FW_POOL_READ, 10, &c, &err), FW_EINVAL);
    assert_null(c);
    assert_non_null(strstr(err.message, "embedded"));
    close_pool(p);

    fw_runtime_t *rt;
    assert_int_equal(fw_runtime_new(&rt), 0);
    assert_int_equal(fw_pool_new_rt(&p, rt, &o, &err), 0);
    double t0 = now_s();
    c = (fw_conn_t *)&c;
    assert_int_equal(fw_pool_acquire_wait(p, (fw_pool_want_t)42, 5000, &c, &err), FW_EINVAL);
    double secs = now_s() - t0;
    printf("threaded, want 42: %s after %.4f s: %s\n", fw_err_name(err.code), secs, err.message);
    assert_null(c);
    assert_int_equal(err.code, FW_EINVAL);
    assert_non_null(strstr(err.message, "FW_POOL_"));
    assert_true(secs < 1.0); /* at once, not after the 5 s timeout */
    /* the embedded call on a threaded pool: refused */
    assert_int_equal(fw_pool_acquire(p, FW_POOL_READ, on_acquired, &g), FW_EINVAL);
    assert_int_equal(fw_pool_stats(p, &st), 0);
    assert_int_equal(st.waiting, 0);
    assert_int_equal(st.acquires, 0);
    assert_int_equal(fw_pool_close_sync(p), 0);
    fw_runtime_free(rt);
}

/* ---- an acquire on a closing pool -------------------------------------------------------- */

static void test_an_acquire_on_a_closing_embedded_pool_is_estate_at_once(void **state)
{
    (void)state;
    fakepg_t *f = fake_init();
    m_startup_ok(&g_startup, "15.6");
    f->startup_reply = g_startup.p;
    f->startup_reply_len = g_startup.len;
    assert_int_equal(fakepg_start(f), 0);
    fw_pool_opts_t o;
    opts_for_port(&o, f->port);
    o.max_size = 1;
    fw_pool_t *p = NULL;
    fw_error_t err;
    assert_int_equal(fw_pool_new(&p, &loop, &o, &err), 0);
    got_t a;
    memset(&a, 0, sizeof(a));
    assert_int_equal(fw_pool_acquire(p, FW_POOL_WRITE, on_acquired, &a), 0);
    run_until(&a.done, 5000);
    if (a.status != 0)
        fail_msg("acquire on the fake: %s", a.message);
    /* a waiter, then the close: the waiter gets FW_ECLOSED inside fw_pool_close */
    got_t w;
    memset(&w, 0, sizeof(w));
    assert_int_equal(fw_pool_acquire(p, FW_POOL_WRITE, on_acquired, &w), 0);
    run_for(20);
    closed_flag = false;
    fw_pool_close(p, on_pool_closed, NULL);
    assert_int_equal(w.calls, 1);
    assert_int_equal(w.status, FW_ECLOSED);
    assert_true(w.message[0] != '\0');
    /* the pool lives on (a connection is out): every acquire now is FW_ESTATE, at once */
    got_t g;
    memset(&g, 0, sizeof(g));
    for (int want = FW_POOL_WRITE; want <= FW_POOL_READ_STANDBY; want++)
        assert_int_equal(fw_pool_acquire(p, (fw_pool_want_t)want, on_acquired, &g), FW_ESTATE);
    assert_false(closed_flag);
    run_for(50);
    assert_int_equal(g.calls, 0);
    fw_pool_release(p, a.conn);
    run_until(&closed_flag, 5000);
    assert_true(closed_flag);
    fakepg_stop(f);
}

typedef struct closer_s {
    fw_pool_t *p;
    int rc;
    double secs;
} closer_t;

static void *closer_main(void *arg)
{
    closer_t *c = arg;
    double t0 = now_s();
    c->rc = fw_pool_close_sync(c->p);
    c->secs = now_s() - t0;
    return NULL;
}

/* Threaded: fw_pool_close_sync waits for the last connection to close; one still draining a
 * cancelled stream (the fake sends the rest of the reply 2 s late) keeps the pool closing but
 * alive for that long, and an acquire from another thread meanwhile must be FW_ESTATE at once
 * (not queued, not answered by the end of the close). */
static void test_an_acquire_on_a_closing_threaded_pool_is_estate_at_once(void **state)
{
    (void)state;
    fakepg_t *f = fake_init();
    m_startup_ok(&g_startup, "15.6");
    reply_one_row(&g_reply);
    static fakepg_piece_t piece;
    piece.ptr = g_reply.p;
    piece.len = g_reply.len;
    piece.delay_ms = 2000;
    f->startup_reply = g_startup.p;
    f->startup_reply_len = g_startup.len;
    f->query_pieces = &piece;
    f->query_npieces = 1;
    f->accept_cancels = true;
    assert_int_equal(fakepg_start(f), 0);
    fw_runtime_t *rt;
    assert_int_equal(fw_runtime_new(&rt), 0);
    fw_pool_opts_t o;
    opts_for_port(&o, f->port);
    o.max_size = 1;
    fw_pool_t *p = NULL;
    fw_error_t err;
    assert_int_equal(fw_pool_new_rt(&p, rt, &o, &err), 0);
    fw_query_t *q;
    assert_int_equal(fw_query_new(&q), 0);
    assert_int_equal(fw_query_relation(q, "v_fixture"), 0);
    fw_stream_t *s = NULL;
    if (fw_pool_stream_start_wait(p, FW_POOL_WRITE, 5000, q, &s, &err) != 0)
        fail_msg("stream on the fake: %s", err.message);
    fw_query_free(q);
    fw_stream_free(s); /* cancelled; the connection drains (2 s) before it is back */
    closer_t cl = {p, 1, 0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, closer_main, &cl), 0);
    usleep(300000); /* the close has begun (it waits for the drain) */
    double t0 = now_s();
    fw_conn_t *c = (fw_conn_t *)&c;
    int rc = fw_pool_acquire_wait(p, FW_POOL_WRITE, 5000, &c, &err);
    double secs = now_s() - t0;
    printf("threaded, closing: %s after %.4f s: %s\n", fw_err_name(rc), secs, err.message);
    assert_int_equal(rc, FW_ESTATE);
    assert_null(c);
    assert_int_equal(err.code, FW_ESTATE);
    assert_non_null(strstr(err.message, "closing"));
    assert_true(secs < 0.5);
    assert_int_equal(fw_pool_close_sync(p), FW_ESTATE); /* a second close, meanwhile */
    pthread_join(th, NULL);
    printf("fw_pool_close_sync returned %d after %.3f s (the drain)\n", cl.rc, cl.secs);
    assert_int_equal(cl.rc, 0);
    assert_true(cl.secs > 1.0); /* it did wait for the draining connection */
    fw_runtime_free(rt);
    fakepg_stop(f);
    assert_true(atomic_load(&f->ncancels) >= 1);
}

/* ---- a refusing host: threshold connects, then one probe per cooldown -------------------- */

static void test_a_refusing_host_is_probed_once_per_cooldown(void **state)
{
    (void)state;
    fakepg_t *f = fake_init();
    /* every connection: the StartupMessage read, FATAL 53300, hung up */
    m_error(&g_startup, "FATAL", "53300", "sorry, too many clients already");
    f->startup_reply = g_startup.p;
    f->startup_reply_len = g_startup.len;
    f->close_after = true;
    f->conns = 1000;
    f->io_timeout_ms = 0; /* fakepg_stop ends the accept loop */
    assert_int_equal(fakepg_start(f), 0);
    fw_pool_opts_t o;
    opts_for_port(&o, f->port);
    o.max_size = 4;
    o.breaker_threshold = 3;
    o.breaker_cooldown_ms = 300;
    o.backoff_base_ms = 20;
    o.acquire_timeout_ms = 1000;
    fw_pool_t *p = NULL;
    fw_error_t err;
    assert_int_equal(fw_pool_new(&p, &loop, &o, &err), 0);
    /* asked every 5 ms for 2 s */
    int asked = 0, refused = 0, timed_out = 0, served = 0;
    char last[1024] = "";
    double t0 = now_s(), open_at = 0;
    while (now_s() - t0 < 2.0) {
        got_t g;
        memset(&g, 0, sizeof(g));
        assert_int_equal(fw_pool_acquire(p, FW_POOL_READ, on_acquired, &g), 0);
        asked++;
        run_until(&g.done, 3000);
        assert_true(g.done);
        if (g.status == FW_EROUTE) {
            refused++;
            if (open_at == 0)
                open_at = now_s() - t0;
            snprintf(last, sizeof(last), "%s", g.message);
        } else if (g.status == FW_ETIMEDOUT) {
            timed_out++;
        } else {
            served++;
        }
        run_for(5);
    }
    double span = now_s() - t0;
    int accepted = atomic_load(&f->accepted);
    fw_pool_host_t h;
    assert_int_equal(fw_pool_host(p, 0, &h), 0);
    fw_pool_stats_t st;
    assert_int_equal(fw_pool_stats(p, &st), 0);
    printf("%.2f s, %d acquires (%d refused, %d timed out, %d served): the fake saw %d "
           "connections; pool: %llu connects, %llu probes, breaker %s (open after %.3f s)\n",
           span, asked, refused, timed_out, served, accepted, (unsigned long long)h.connects,
           (unsigned long long)h.probes, h.breaker, open_at);
    printf("last refusal: %s\n", last);
    assert_int_equal(served, 0);
    assert_int_equal(timed_out, 0); /* refused at once while the breaker is open */
    assert_true(asked >= 100);
    /* every connect reached the fake, and nothing else did */
    assert_int_equal((uint64_t)accepted, h.connects);
    assert_int_equal(st.connect_failures, h.connects);
    /* the threshold, then one probe per cooldown: the breaker opened after ~0.1 s, the rest of
     * the 2 s holds at most (2 s - open_at) / 300 ms + 1 probes; one less at least, allowing
     * for a late acquire after each cooldown on a loaded machine */
    assert_true(open_at > 0 && open_at < 0.5);
    unsigned max_probes = (unsigned)((span - open_at) / 0.3) + 1;
    assert_in_range(h.probes, max_probes >= 3 ? max_probes - 3 : 1, max_probes);
    assert_int_equal(h.connects, 3 + h.probes);
    assert_non_null(strstr(last, "too many clients")); /* the refusal says why */
    close_pool(p);
    fakepg_stop(f);
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
    bb_free(&g_startup);
    bb_free(&g_reply);
    return uv_loop_close(&loop) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options_that_make_no_sense_are_refused_in_both_modes),
        cmocka_unit_test(test_an_unknown_want_is_einval_at_once_in_both_modes),
        cmocka_unit_test(test_an_acquire_on_a_closing_embedded_pool_is_estate_at_once),
        cmocka_unit_test(test_an_acquire_on_a_closing_threaded_pool_is_estate_at_once),
        cmocka_unit_test(test_a_refusing_host_is_probed_once_per_cooldown),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
