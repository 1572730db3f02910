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

static const char *env(const char *name)
{
    const char *v = getenv(name);
    if (v == NULL || v[0] == '\0')
        fail_msg("%s is not set: run through test/with-pg.sh (meson test does)", name);
    return v;
}

static double secs_since(uint64_t t0)
{
    return (double)(uv_hrtime() - t0) / 1e9;
}

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define FW_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define FW_SANITIZED 1
#endif
#endif

static atomic_long live_blocks;

static void *c_malloc(void *ud, size_t n)
{
    (void)ud;
    void *p = malloc(n);
    if (p != NULL)
        atomic_fetch_add(&live_blocks, 1);
    return p;
}

static void *c_realloc(void *ud, void *ptr, size_t n)
{
    (void)ud;
    void *p = realloc(ptr, n);
    if (p != NULL && ptr == NULL)
        atomic_fetch_add(&live_blocks, 1);
    return p;
}

static void c_free(void *ud, void *ptr)
{
    (void)ud;
    if (ptr != NULL)
        atomic_fetch_sub(&live_blocks, 1);
    free(ptr);
}

static size_t rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    assert_non_null(f);
    unsigned long size = 0, resident = 0;
    assert_int_equal(fscanf(f, "%lu %lu", &size, &resident), 2);
    fclose(f);
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE) / 1024;
}

static int open_fds(void)
{
    int n = 0;
    for (int fd = 0; fd < 4096; fd++)
        n += fcntl(fd, F_GETFD) != -1;
    return n;
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
    int connects, status, closes;
    fw_error_t err;
} emb_t;

static void on_connect(fw_conn_t *c, int status, const fw_error_t *err, void *ud)
{
    (void)c;
    emb_t *e = ud;
    e->connects++;
    e->status = status;
    if (err != NULL)
        e->err = *err;
}

static void on_closed(fw_conn_t *c, void *ud)
{
    (void)c;
    emb_t *e = ud;
    e->closes++;
}

static void on_ready(fw_stream_t *s, void *ud)
{
    (void)s;
    (void)ud;
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
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
        if (e.status != 0)
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

static void churn(bool threaded)
{
    char ci[1024];
    snprintf(ci, sizeof(ci),
             "host=%s port=%s dbname=%s user=%s password=%s sslmode=verify-full sslrootcert=%s "
             "connect_timeout=10",
             env("FW_TEST_HOST4"), env("FW_TEST_PORT"), env("FW_TEST_DBNAME"),
             env("FW_TEST_USER_SCRAM"), env("FW_TEST_PASS_SCRAM"), env("FW_TEST_CA"));
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
        assert_int_equal(uv_loop_init(&loop), 0);
        assert_int_equal(uv_timer_init(&loop, &tick), 0);
        assert_int_equal(uv_timer_start(&tick, on_tick, 10, 10), 0);
    }
    long n = cycles();
    long warm = n / 10 > 20 ? n / 10 : 20;
    size_t rss0 = 0, rss_max = 0;
    int fds0 = 0;
    long blocks0 = 0;
    uint64_t t0 = uv_hrtime();
    for (long i = 0; i < warm + n; i++) {
        cycle(threaded, rt, threaded ? NULL : &loop, q, ci, i);
        if (i + 1 == warm) {
            /* Caches filled (OpenSSL's, the allocator's arenas): the baseline. */
            rss0 = rss_kib();
            fds0 = open_fds();
            blocks0 = atomic_load(&live_blocks);
            t0 = uv_hrtime();
        } else if (i >= warm) {
            size_t r = rss_kib();
            rss_max = r > rss_max ? r : rss_max;
            if ((i - warm + 1) % (n / 5 > 0 ? n / 5 : 1) == 0)
                printf("# %s: %ld cycles: RSS %zu KiB (baseline %zu), fds %d (%d), blocks %ld "
                       "(%ld), %.1f ms per cycle\n",
                       threaded ? "threaded" : "embedded", i - warm + 1, r, rss0, open_fds(), fds0,
                       atomic_load(&live_blocks), blocks0,
                       secs_since(t0) * 1000 / (double)(i - warm + 1));
        }
    }
    /* Threaded: the loop thread may still be dropping the last stream's memory when
     * fw_conn_close_sync returns (its handles close after); give it a moment. */
    for (int i = 0; i < 2000 && atomic_load(&live_blocks) != blocks0; i++)
        usleep(1000);
    assert_int_equal(open_fds(), fds0);
    assert_int_equal(atomic_load(&live_blocks), blocks0);
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
    const fw_allocator_t counting = {c_malloc, c_realloc, c_free, NULL};
    if (fw_allocator_set(&counting) != 0)
        return 1;
    const char *filter = getenv("FW_TEST_FILTER");
    if (filter != NULL && filter[0] != '\0')
        cmocka_set_test_filter(filter);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
