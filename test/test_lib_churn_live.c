/* SPDX-License-Identifier: MIT */
/*
 * Connection churn against the harness's real PostgreSQL 15 (issue 17): connect over TCP with
 * verified TLS and SCRAM, stream a few rows, close; many times over, in both run modes. RSS,
 * open fds and the blocks live in fwire's allocator must stay flat: a leak of one block, one
 * fd or a few hundred bytes per connection shows within the run.
 *
 * FW_CHURN_CYCLES sets the cycles per run mode (default 150, 100 under sanitizers, which also
 * skip the RSS bound: ASan's quarantine grows by design). The one-off 10,000-cycle run and its
 * figures are in docs/testing.md.
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "fwire.h"

#include "live.h"

static size_t rss_kib(void)
{
    return rss_bytes() / 1024;
}

static long cycles(void)
{
    const char *v = getenv("FW_CHURN_CYCLES");
    if (v != NULL && v[0] != '\0')
        return strtol(v, NULL, 10);
#if defined(FW_SANITIZED)
    return 100;
#else
    return 150;
#endif
}

typedef struct emb_s {
    int connects, connect_status, closes;
    fw_error_t err;
} emb_t;

LIVE_CONN_CALLBACKS(emb_t)

static void on_ready(fw_stream_t *s, void *ud)
{
    (void)s;
    (void)ud;
}

/* One connect (TLS + SCRAM) / 10-row query / close cycle. */
static void cycle(bool threaded, fw_runtime_t *rt, uv_loop_t *loop, const fw_query_t *q,
                  const char *ci, long i)
{
    fw_conn_opts_t o;
    fw_conn_opts_init(&o);
    o.conninfo = ci;
    o.use_environment = false;
    fw_conn_t *c = NULL;
    fw_error_t err;
    emb_t e;
    memset(&e, 0, sizeof(e));
    if (threaded) {
        if (fw_conn_connect_sync(rt, &o, &c, &err) != 0)
            fail_msg("cycle %ld: connect: %s", i, err.message);
    } else {
        assert_int_equal(fw_conn_new(&c, loop, &o, &err), 0);
        assert_int_equal(fw_conn_connect(c, on_connect, &e), 0);
        while (e.connects == 0)
            uv_run(loop, UV_RUN_ONCE);
        if (e.connect_status != 0)
            fail_msg("cycle %ld: connect: %s", i, e.err.message);
    }
    fw_stream_t *s = NULL;
    assert_int_equal(fw_stream_start(c, q, threaded ? NULL : on_ready, NULL, &s, &err), 0);
    uint64_t rows = 0;
    uint64_t t0 = uv_hrtime();
    for (;;) {
        fw_row_t row;
        int k = threaded ? fw_stream_next(s, &row, 1000) : fw_stream_try_next(s, &row);
        if (k == FW_ROW) {
            assert_false(row.is_null);
            rows++;
        } else if (k == FW_AGAIN) {
            if (secs_since(t0) > 30)
                fail_msg("cycle %ld: no end after 30 s", i);
            if (!threaded)
                uv_run(loop, UV_RUN_ONCE);
        } else if (k == FW_END) {
            break;
        } else {
            fail_msg("cycle %ld: %s: %s", i, fw_err_name(k), fw_stream_error(s)->message);
        }
    }
    assert_int_equal(rows, 10);
    fw_stream_free(s);
    if (threaded) {
        fw_conn_close_sync(c);
    } else {
        fw_conn_close(c, on_closed, &e);
        while (e.closes == 0)
            uv_run(loop, UV_RUN_ONCE);
    }
}

/* fwire's live blocks once the count has stopped moving (the same for 50 ms, at most 2 s):
 * in threaded mode the loop thread drops a stream's memory after fw_conn_close_sync has
 * returned (its handles close after), so a count taken at once may still hold the last
 * stream's (CI's ASan run took a baseline of 30 blocks where the settled count is 3). */
static int64_t settled_blocks(void)
{
    int64_t last = live_now();
    for (int i = 0, same = 0; i < 2000 && same < 50; i++) {
        usleep(1000);
        int64_t now = live_now();
        same = now == last ? same + 1 : 0;
        last = now;
    }
    return last;
}

static void churn(bool threaded)
{
    char ci[1024];
    live_conninfo(ci, sizeof(ci), true);
    fw_query_t *q;
    assert_int_equal(fw_query_new(&q), 0);
    assert_int_equal(fw_query_relation(q, "v_bench_1k"), 0);
    assert_int_equal(fw_query_limit(q, 10), 0);
    fw_runtime_t *rt = NULL;
    uv_loop_t loop;
    uv_timer_t tick;
    if (threaded) {
        assert_int_equal(fw_runtime_new(&rt), 0);
    } else {
        live_loop_init(&loop, &tick);
    }
    long n = cycles();
    long warm = n / 10 > 20 ? n / 10 : 20;
    size_t rss0 = 0, rss_max = 0;
    int fds0 = 0;
    int64_t blocks0 = 0;
    uint64_t t0 = uv_hrtime();
    for (long i = 0; i < warm + n; i++) {
        cycle(threaded, rt, threaded ? NULL : &loop, q, ci, i);
        if (i + 1 == warm) {
            /* Caches filled (OpenSSL's, the allocator's arenas): the baseline. */
            rss0 = rss_kib();
            fds0 = open_fds();
            blocks0 = settled_blocks();
            t0 = uv_hrtime();
        } else if (i >= warm) {
            size_t r = rss_kib();
            rss_max = r > rss_max ? r : rss_max;
            if ((i - warm + 1) % (n / 5 > 0 ? n / 5 : 1) == 0)
                printf("# %s: %ld cycles: RSS %zu KiB (baseline %zu), fds %d (%d), blocks %" PRId64
                       " (%" PRId64 "), %.1f ms per cycle\n",
                       threaded ? "threaded" : "embedded", i - warm + 1, r, rss0, open_fds(), fds0,
                       live_now(), blocks0, secs_since(t0) * 1000 / (double)(i - warm + 1));
        }
    }
    /* Threaded: the loop thread may still be dropping the last stream's memory when
     * fw_conn_close_sync returns (its handles close after); give it a moment. */
    for (int i = 0; i < 2000 && live_now() != blocks0; i++)
        usleep(1000);
    assert_int_equal(open_fds(), fds0);
    assert_int_equal(live_now(), blocks0);
#if !defined(FW_SANITIZED)
    /* Flat: allocator noise (glibc arenas, OpenSSL's caches) stays well under 1 MiB; a leak of
     * even 100 bytes per cycle would pass it within 10,000 cycles, a leak of one TLS session or
     * one receive slab per cycle within a few dozen. */
    if (rss_max > rss0 + 1024)
        fail_msg("RSS grew from %zu KiB to %zu KiB over %ld cycles", rss0, rss_max, n);
#endif
    fw_query_free(q);
    if (threaded) {
        fw_runtime_free(rt);
    } else {
        uv_timer_stop(&tick);
        uv_close((uv_handle_t *)&tick, NULL);
        while (uv_loop_alive(&loop))
            uv_run(&loop, UV_RUN_ONCE);
        assert_int_equal(uv_loop_close(&loop), 0);
    }
}

static void test_tls_scram_connect_query_close_churn_is_flat_threaded(void **state)
{
    (void)state;
    churn(true);
}

static void test_tls_scram_connect_query_close_churn_is_flat_embedded(void **state)
{
    (void)state;
    churn(false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls_scram_connect_query_close_churn_is_flat_threaded),
        cmocka_unit_test(test_tls_scram_connect_query_close_churn_is_flat_embedded),
    };
    setvbuf(stdout, NULL, _IOLBF, 0);
    const fw_allocator_t counting = {count_malloc, count_realloc, count_free, NULL};
    if (fw_allocator_set(&counting) != 0)
        return 1;
    const char *filter = getenv("FW_TEST_FILTER");
    if (filter != NULL && filter[0] != '\0')
        cmocka_set_test_filter(filter);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
