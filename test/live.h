/* SPDX-License-Identifier: MIT */
/*
 * Test helper shared by the tests that run against the harness's real PostgreSQL 15
 * (test/with-pg.sh): the environment it exports, deadlines stretched under sanitizers, the
 * embedded mode's loop chores, a counting allocator, and the process's RSS and open fds.
 * Everything is static inline: each test takes what it needs. test/stream_oracle.h includes it.
 */
#ifndef FW_TEST_LIVE_H
#define FW_TEST_LIVE_H

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "fwire.h"

/* Sanitizers slow everything down: every deadline stretches by SLOW under them. */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define FW_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define FW_SANITIZED 1
#endif
#endif
/* ThreadSanitizer alone (the threaded paths are what it is for). */
#if defined(__SANITIZE_THREAD__)
#define FW_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FW_TSAN 1
#endif
#endif
#if defined(FW_SANITIZED)
#define SLOW 5.0
#else
#define SLOW 1.0
#endif

/* A variable test/with-pg.sh exports; the test fails when it is missing. */
static inline const char *env(const char *name)
{
    const char *v = getenv(name);
    if (v == NULL || v[0] == '\0')
        fail_msg("%s is not set: run through test/with-pg.sh (meson test does)", name);
    return v;
}

/* An optional numeric setting (FW_FAULT_STRIDE and friends), `dflt` when unset or empty. */
static inline long env_long(const char *name, long dflt)
{
    const char *v = getenv(name);
    return v != NULL && v[0] != '\0' ? strtol(v, NULL, 10) : dflt;
}

static inline double secs_since(uint64_t t0)
{
    return (double)(uv_hrtime() - t0) / 1e9;
}

static inline void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A stream answer's name (fw_err_name knows only the failures). */
static inline const char *code_name(int rc)
{
    switch (rc) {
    case FW_ROW:
        return "FW_ROW";
    case FW_END:
        return "FW_END";
    case FW_AGAIN:
        return "FW_AGAIN";
    case FW_PAUSED:
        return "FW_PAUSED";
    default:
        return fw_err_name(rc);
    }
}

/* Connection parameters: over TCP (127.0.0.1) with verified TLS and SCRAM, or over the unix
 * socket as the trust user; a connect gives up after 10 s. */
static inline void live_conninfo(char *buf, size_t cap, bool tls)
{
    if (tls)
        snprintf(buf, cap,
                 "host=%s port=%s dbname=%s user=%s password=%s sslmode=verify-full "
                 "sslrootcert=%s connect_timeout=10",
                 env("FW_TEST_HOST4"), env("FW_TEST_PORT"), env("FW_TEST_DBNAME"),
                 env("FW_TEST_USER_SCRAM"), env("FW_TEST_PASS_SCRAM"), env("FW_TEST_CA"));
    else
        snprintf(buf, cap, "host=%s port=%s dbname=%s user=%s sslmode=disable connect_timeout=10",
                 env("FW_TEST_SOCKDIR"), env("FW_TEST_PORT"), env("FW_TEST_DBNAME"),
                 env("FW_TEST_USER_TRUST"));
}

/* fw_conn_new with only `conninfo` (no environment) must fail with FW_ECONFIG, before any
 * socket; returns what it left in the connection pointer, *err says why. */
static inline fw_conn_t *live_conn_new_econfig(uv_loop_t *loop, const char *conninfo,
                                               fw_error_t *err)
{
    fw_conn_opts_t o;
    fw_conn_opts_init(&o);
    o.use_environment = false;
    o.conninfo = conninfo;
    fw_conn_t *c = NULL;
    assert_int_equal(fw_conn_new(&c, loop, &o, err), FW_ECONFIG);
    return c;
}

/* ---- the embedded mode's loop --------------------------------------------------------------- */

static inline void on_tick(uv_timer_t *t)
{
    (void)t;
}

/* Our own loop, with a timer ticking every 10 ms so that uv_run(UV_RUN_ONCE) keeps returning
 * and every wait can time out. */
static inline void live_loop_init(uv_loop_t *loop, uv_timer_t *tick)
{
    assert_int_equal(uv_loop_init(loop), 0);
    assert_int_equal(uv_timer_init(loop, tick), 0);
    assert_int_equal(uv_timer_start(tick, on_tick, 10, 10), 0);
}

/* Stops and closes the tick, then runs the loop until nothing is left on it or `secs`
 * (stretched under sanitizers) pass; the caller asserts uv_loop_close(loop) == 0. */
static inline void live_loop_drain(uv_loop_t *loop, uv_timer_t *tick, double secs)
{
    uv_timer_stop(tick);
    uv_close((uv_handle_t *)tick, NULL);
    uint64_t t0 = uv_hrtime();
    while (uv_loop_alive(loop) && secs_since(t0) < secs * SLOW)
        uv_run(loop, UV_RUN_ONCE);
}

/* Runs the loop until *count (a callback's counter) is not 0, or `secs` (stretched) pass; the
 * caller asserts the count. */
static inline void live_run_until_counted(uv_loop_t *loop, const int *count, double secs)
{
    uint64_t t0 = uv_hrtime();
    while (*count == 0 && secs_since(t0) < secs * SLOW)
        uv_run(loop, UV_RUN_ONCE);
}

/* Runs the loop until *flag, failing after `secs` (stretched): "NAME: WHAT: nothing after". */
static inline void live_run_until(uv_loop_t *loop, const char *name, const bool *flag, double secs,
                                  const char *what)
{
    uint64_t t0 = uv_hrtime();
    while (!*flag) {
        if (secs_since(t0) > secs * SLOW)
            fail_msg("%s: %s: nothing after %.0f s", name, what, secs * SLOW);
        uv_run(loop, UV_RUN_ONCE);
    }
}

/* The embedded mode's connect and close callbacks, on_connect and on_closed, for a struct TYPE
 * (passed as their ud) with the members `int connects, connect_status, closes` and
 * `fw_error_t err`: each counts its calls; on_connect keeps the status and the error. */
#define LIVE_CONN_CALLBACKS(TYPE)                                                     \
    static void on_connect(fw_conn_t *c, int status, const fw_error_t *err, void *ud) \
    {                                                                                 \
        (void)c;                                                                      \
        TYPE *S_ = ud;                                                                \
        S_->connects++;                                                               \
        S_->connect_status = status;                                                  \
        if (err != NULL)                                                              \
            S_->err = *err;                                                           \
    }                                                                                 \
                                                                                      \
    static void on_closed(fw_conn_t *c, void *ud)                                     \
    {                                                                                 \
        (void)c;                                                                      \
        TYPE *S_ = ud;                                                                \
        S_->closes++;                                                                 \
    }

/* ---- the counting allocator (fw_allocator_set(&counting_allocator) in main) -------------------
 */

static atomic_uint_fast64_t alloc_calls; /* malloc, realloc and free calls */
static atomic_int_fast64_t alloc_live;   /* blocks allocated and not yet freed */

static inline void *count_malloc(void *ud, size_t size)
{
    (void)ud;
    atomic_fetch_add_explicit(&alloc_calls, 1, memory_order_relaxed);
    void *p = malloc(size);
    if (p != NULL)
        atomic_fetch_add_explicit(&alloc_live, 1, memory_order_relaxed);
    return p;
}

static inline void *count_realloc(void *ud, void *ptr, size_t size)
{
    (void)ud;
    atomic_fetch_add_explicit(&alloc_calls, 1, memory_order_relaxed);
    void *p = realloc(ptr, size);
    if (p != NULL && ptr == NULL)
        atomic_fetch_add_explicit(&alloc_live, 1, memory_order_relaxed);
    return p;
}

static inline void count_free(void *ud, void *ptr)
{
    (void)ud;
    atomic_fetch_add_explicit(&alloc_calls, 1, memory_order_relaxed);
    if (ptr != NULL)
        atomic_fetch_sub_explicit(&alloc_live, 1, memory_order_relaxed);
    free(ptr);
}

static inline uint64_t calls_now(void)
{
    return atomic_load_explicit(&alloc_calls, memory_order_relaxed);
}

static inline int64_t live_now(void)
{
    return atomic_load_explicit(&alloc_live, memory_order_relaxed);
}

/* ---- the process --------------------------------------------------------------------------- */

static inline size_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    assert_non_null(f);
    unsigned long size = 0, resident = 0;
    assert_int_equal(fscanf(f, "%lu %lu", &size, &resident), 2);
    fclose(f);
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

static inline int open_fds(void)
{
    int n = 0;
    for (int fd = 0; fd < 4096; fd++)
        n += fcntl(fd, F_GETFD) != -1;
    return n;
}

static inline uint32_t xorshift(uint32_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

#endif
