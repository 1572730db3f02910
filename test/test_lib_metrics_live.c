/* SPDX-License-Identifier: MIT */
/*
 * The fraiseql_* metrics against the real server: every family the library defines is really
 * recorded by what it names, with exact values where the stream's own statistics or psql say
 * what they must be. Each test reads the exposition (fw_metrics_render) before and after and
 * compares the differences, under an entity label of its own, so the tests do not depend on
 * each other. Also: recording switched off, exact totals from several threads at once (run
 * under TSan too), and the HTTP listener (threaded and embedded) serving the same text.
 */
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "fwire.h"

static const char *env(const char *name)
{
    const char *v = getenv(name);
    if (v == NULL || v[0] == '\0')
        fail_msg("%s is not set (run through test/with-pg.sh)", name);
    return v;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- the exposition ---------------------------------------------------------------------- */

static char *render(void)
{
    /* Streams on other threads may add series between the sizing call and the render: retry
     * with the length the last call asked for (the snprintf contract). */
    long n = fw_metrics_render(NULL, 0);
    for (;;) {
        assert_true(n > 0);
        char *b = malloc((size_t)n + 1);
        assert_non_null(b);
        long m = fw_metrics_render(b, (size_t)n + 1);
        assert_true(m > 0);
        if (m <= n)
            return b;
        free(b);
        n = m;
    }
}

/* The value of the sample `series` ("name{labels}" exactly as rendered), 0 when absent. */
static double value(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; (p = strstr(p, series)) != NULL; p += n)
        if ((p == text || p[-1] == '\n') && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    return 0;
}

/* value(after) - value(before) for a series built printf-style. */
static double delta(const char *before, const char *after, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static double delta(const char *before, const char *after, const char *fmt, ...)
{
    char series[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(series, sizeof(series), fmt, ap);
    va_end(ap);
    return value(after, series) - value(before, series);
}

/* ---- connections and streams ------------------------------------------------------------- */

/* The max_message of the connections connect_as makes (0: the default). */
static size_t g_max_message;

static fw_conn_t *connect_as(fw_runtime_t *rt, const char *user, const char *password, int *rc,
                             fw_error_t *err)
{
    char ci[768];
    snprintf(ci, sizeof(ci), "host=%s port=%s dbname=%s user=%s%s%s connect_timeout=10",
             env("FW_TEST_SOCKDIR"), env("FW_TEST_PORT"), env("FW_TEST_DBNAME"), user,
             password != NULL ? " password=" : "", password != NULL ? password : "");
    fw_conn_opts_t o;
    fw_conn_opts_init(&o);
    o.conninfo = ci;
    o.use_environment = false;
    o.max_message = g_max_message;
    fw_conn_t *c = NULL;
    *rc = fw_conn_connect_sync(rt, &o, &c, err);
    return c;
}

static fw_conn_t *connect_trust(fw_runtime_t *rt)
{
    int rc;
    fw_error_t err;
    fw_conn_t *c = connect_as(rt, env("FW_TEST_USER_TRUST"), NULL, &rc, &err);
    if (rc != 0)
        fail_msg("connect: %s", err.message);
    return c;
}

typedef struct run_s {
    int end;
    uint64_t rows, bytes;
    fw_stream_stats_t st;
} run_t;

/* Streams q to its end; sleep_every > 0 sleeps 1 ms every that many rows (a slow consumer). */
static void drain(fw_conn_t *c, const fw_query_t *q, unsigned sleep_every, run_t *r)
{
    fw_stream_t *s;
    fw_error_t err;
    if (fw_stream_start(c, q, NULL, NULL, &s, &err) != 0)
        fail_msg("start: %s", err.message);
    memset(r, 0, sizeof(*r));
    fw_row_t row;
    while ((r->end = fw_stream_next(s, &row, 30000)) == FW_ROW) {
        r->rows++;
        r->bytes += row.len;
        if (sleep_every > 0 && r->rows % sleep_every == 0)
            sleep_ms(1);
    }
    fw_stream_stats(s, &r->st);
    fw_stream_free(s);
}

static fw_query_t *query(const char *relation)
{
    fw_query_t *q;
    assert_int_equal(fw_query_new(&q), 0);
    assert_int_equal(fw_query_relation(q, relation), 0);
    return q;
}

/* count(*) and the bytes of the data column's text, from psql. */
static void oracle(const char *view, uint64_t *rows, uint64_t *bytes)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "'%s/psql' -X -At -h '%s' -p '%s' -U '%s' -d '%s' -F ' ' -c "
             "\"SELECT count(*), coalesce(sum(octet_length(data::text)), 0) FROM %s\"",
             env("FW_TEST_PGBINDIR"), env("FW_TEST_SOCKDIR"), env("FW_TEST_PORT"),
             env("FW_TEST_USER_TRUST"), env("FW_TEST_DBNAME"), view);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    unsigned long long a, b;
    assert_int_equal(fscanf(p, "%llu %llu", &a, &b), 2);
    assert_int_equal(pclose(p), 0);
    *rows = a;
    *bytes = b;
}

/* ---- tests ------------------------------------------------------------------------------- */

/* One stream: every row, byte and chunk counted exactly; the histograms each got their
 * observations; the gauges return to where they were. */
static void test_a_stream_is_recorded_exactly(void **state)
{
    (void)state;
    const char *rel = "public.v_bench_100k"; /* a label of its own: "public.v_bench_100k" */
    const char *E = "entity=\"public.v_bench_100k\"";
    uint64_t orows, obytes;
    oracle("v_bench_100k", &orows, &obytes);
    fw_runtime_t *rt;
    assert_int_equal(fw_runtime_new(&rt), 0);
    char *b0 = render();
    fw_conn_t *c = connect_trust(rt);
    char *b1 = render();
    assert_true(delta(b0, b1, "fraiseql_connections_opened_total{transport=\"unix\"}") == 1);
    assert_true(delta(b0, b1, "fraiseql_connections_active") == 1);
    fw_query_t *q = query(rel);
    run_t r;
    drain(c, q, 0, &r);
    fw_query_free(q);
    assert_int_equal(r.end, FW_END);
    assert_int_equal(r.rows, orows);
    assert_int_equal(r.bytes, obytes);
    fw_conn_close_sync(c);
    fw_runtime_free(rt);
    char *b2 = render();

    assert_true(delta(b0, b2, "fraiseql_connections_active") == 0);
    assert_true(delta(b1, b2,
                      "fraiseql_queries_total{%s,has_where_sql=\"false\",has_predicate=\"false\","
                      "has_order_by=\"false\"}",
                      E) == 1);
    assert_true(delta(b1, b2, "fraiseql_query_completed_total{%s,status=\"success\"}", E) == 1);
    assert_true(delta(b1, b2, "fraiseql_rows_processed_total{%s}", E) == (double)orows);
    assert_true(delta(b1, b2, "fraiseql_rows_delivered_total{%s}", E) == (double)orows);
    assert_true(delta(b1, b2, "fraiseql_rows_filtered_total{%s}", E) == 0);
    assert_true(delta(b1, b2, "fraiseql_bytes_received_total{%s}", E) ==
                (double)r.st.bytes_received);
    /* every chunk handed over was released, and its rows add up to the result */
    assert_true(delta(b1, b2, "fraiseql_chunk_size_rows_count{%s}", E) >=
                (double)r.st.chunks_delivered);
    assert_true(delta(b1, b2, "fraiseql_chunk_size_rows_sum{%s}", E) == (double)orows);
    /* chunk durations are sampled: the chunks of every 8th read */
    double timed = delta(b1, b2, "fraiseql_chunk_processing_duration_seconds_count{%s}", E);
    assert_true(timed >= 1 && timed <= delta(b1, b2, "fraiseql_chunk_size_rows_count{%s}", E));
    /* the backpressure signal: one sample per batch of rows queued */
    assert_true(delta(b1, b2, "fraiseql_channel_occupancy_rows_count{%s}", E) > 10);
    assert_true(delta(b1, b2, "fraiseql_channel_occupancy_rows_sum{%s}", E) > 0);
    assert_true(delta(b1, b2, "fraiseql_query_duration_seconds_count{%s}", E) == 1);
    assert_true(delta(b1, b2, "fraiseql_query_startup_duration_seconds_count{%s}", E) == 1);
    assert_true(delta(b1, b2, "fraiseql_query_first_row_seconds_count{%s}", E) == 1);
    assert_true(delta(b1, b2, "fraiseql_query_rows_sum{%s}", E) == (double)orows);
    assert_true(delta(b1, b2, "fraiseql_query_bytes_sum{%s}", E) == (double)r.st.bytes_received);
    assert_true(delta(b1, b2, "fraiseql_query_duration_seconds_sum{%s}", E) > 0);
    /* gauges: back to nothing buffered and no stream running */
    assert_true(value(b2, "fraiseql_rows_buffered{entity=\"public.v_bench_100k\"}") == 0);
    assert_true(value(b2, "fraiseql_bytes_buffered{entity=\"public.v_bench_100k\"}") == 0);
    assert_true(value(b2, "fraiseql_streams_active{entity=\"public.v_bench_100k\"}") == 0);
    /* adaptive by default: the gauge holds the size the stream ended with */
    assert_true(value(b2, "fraiseql_adaptive_chunk_size_rows{entity=\"public.v_bench_100k\"}") ==
                (double)r.st.chunk_size);
    assert_true(delta(b1, b2, "fraiseql_adaptive_chunk_adjustments_total{%s,direction=\"up\"}",
                      E) == (double)r.st.chunk_grows);
    assert_true(delta(b1, b2, "fraiseql_adaptive_chunk_adjustments_total{%s,direction=\"down\"}",
                      E) == (double)r.st.chunk_shrinks);
    free(b0);
    free(b1);
    free(b2);
}

/* Authentication: SCRAM and MD5 successes with their durations, a wrong password as a failure
 * with its reason, and the failed connection with the phase it failed in. */
static void test_authentication_is_recorded(void **state)
{
    (void)state;
    fw_runtime_t *rt;
    assert_int_equal(fw_runtime_new(&rt), 0);
    char *b0 = render();
    int rc;
    fw_error_t err;
    fw_conn_t *c = connect_as(rt, env("FW_TEST_USER_SCRAM"), env("FW_TEST_PASS_SCRAM"), &rc, &err);
    if (rc != 0)
        fail_msg("scram: %s", err.message);
    fw_conn_close_sync(c);
    c = connect_as(rt, env("FW_TEST_USER_MD5"), env("FW_TEST_PASS_MD5"), &rc, &err);
    if (rc != 0)
        fail_msg("md5: %s", err.message);
    fw_conn_close_sync(c);
    c = connect_as(rt, env("FW_TEST_USER_SCRAM"), "not-the-password", &rc, &err);
    assert_null(c);
    assert_int_equal(rc, FW_EAUTH);
    c = connect_as(rt, env("FW_TEST_USER_TRUST"), NULL, &rc, &err); /* no exchange at all */
    assert_int_equal(rc, 0);
    fw_conn_close_sync(c);
    fw_runtime_free(rt);
    char *b1 = render();
    const char *S = "mechanism=\"scram-sha-256\"";
    assert_true(delta(b0, b1, "fraiseql_authentications_total{%s}", S) == 2);
    assert_true(delta(b0, b1, "fraiseql_authentications_succeeded_total{%s}", S) == 1);
    assert_true(delta(b0, b1,
                      "fraiseql_authentications_failed_total{%s,reason=\"invalid_password\"}",
                      S) == 1);
    assert_true(delta(b0, b1, "fraiseql_auth_duration_seconds_count{%s}", S) == 1);
    assert_true(delta(b0, b1, "fraiseql_auth_duration_seconds_sum{%s}", S) > 0);
    assert_true(delta(b0, b1, "fraiseql_authentications_succeeded_total{mechanism=\"md5\"}") == 1);
    assert_true(delta(b0, b1, "fraiseql_authentications_total{mechanism=\"none\"}") == 0);
    assert_true(delta(b0, b1, "fraiseql_connections_opened_total{transport=\"unix\"}") == 3);
    assert_true(delta(b0, b1,
                      "fraiseql_connections_failed_total{transport=\"unix\",phase=\"auth\"}") ==
                1);
    assert_true(delta(b0, b1, "fraiseql_connections_active") == 0);
    free(b0);
    free(b1);
}

/* Failures by category, the memory limit, notices. */
static void test_errors_and_notices_are_recorded(void **state)
{
    (void)state;
    fw_runtime_t *rt;
    assert_int_equal(fw_runtime_new(&rt), 0);
    fw_conn_t *c = connect_trust(rt);
    char *b0 = render();
    run_t r;
    fw_query_t *q = query("v_fixture_error_500k"); /* a division by zero after 499,999 rows */
    drain(c, q, 0, &r);
    fw_query_free(q);
    assert_int_equal(r.end, FW_ESERVER);
    q = query("v_fixture_wrong_type"); /* not json */
    drain(c, q, 0, &r);
    fw_query_free(q);
    assert_int_equal(r.end, FW_ESCHEMA);
    /* rows of ~100 KB over a 64 KiB max_message: a row over the limit (the byte budget no
     * longer refuses a row, it delivers it alone) */
    g_max_message = 64 * 1024;
    fw_conn_t *small = connect_trust(rt);
    g_max_message = 0;
    q = query("v_bench_large");
    drain(small, q, 0, &r);
    fw_query_free(q);
    assert_int_equal(r.end, FW_ETOOBIG);
    fw_conn_close_sync(small);
    q = query("v_fixture_notice");
    drain(c, q, 0, &r);
    fw_query_free(q);
    assert_int_equal(r.end, FW_END);
    fw_conn_close_sync(c);
    fw_runtime_free(rt);
    char *b1 = render();
    assert_true(delta(b0, b1,
                      "fraiseql_query_errors_total{entity=\"v_fixture_error_500k\","
                      "category=\"server\"}") == 1);
    assert_true(delta(b0, b1,
                      "fraiseql_query_completed_total{entity=\"v_fixture_error_500k\","
                      "status=\"error\"}") == 1);
    assert_true(delta(b0, b1,
                      "fraiseql_rows_delivered_total{entity=\"v_fixture_error_500k\"}") ==
                499999);
    assert_true(delta(b0, b1,
                      "fraiseql_query_errors_total{entity=\"v_fixture_wrong_type\","
                      "category=\"schema\"}") == 1);
    assert_true(delta(b0, b1,
                      "fraiseql_query_errors_total{entity=\"v_bench_large\","
                      "category=\"memory_limit\"}") == 1);
    assert_true(
        delta(b0, b1, "fraiseql_memory_limit_exceeded_total{entity=\"v_bench_large\"}") == 1);
    assert_true(delta(b0, b1, "fraiseql_notices_total{severity=\"NOTICE\"}") >= 1);
    assert_true(delta(b0, b1,
                      "fraiseql_query_completed_total{entity=\"v_fixture_notice\","
                      "status=\"success\"}") == 1);
    free(b0);
    free(b1);
}

/* Pause, resume, cancel; a slow consumer's read stops with their durations. */
static void test_control_and_backpressure_are_recorded(void **state)
{
    (void)state;
    fw_runtime_t *rt;
    assert_int_equal(fw_runtime_new(&rt), 0);
    fw_conn_t *c = connect_trust(rt);
    char *b0 = render();
    /* pause 50 ms, resume, then cancel */
    fw_query_t *q = query("public.v_bench_1m");
    fw_stream_t *s;
    fw_error_t err;
    assert_int_equal(fw_stream_start(c, q, NULL, NULL, &s, &err), 0);
    fw_query_free(q);
    fw_row_t row;
    assert_int_equal(fw_stream_next(s, &row, 30000), FW_ROW);
    assert_int_equal(fw_stream_pause(s), 0);
    int rc;
    while ((rc = fw_stream_next(s, &row, 30000)) == FW_ROW) {
    }
    assert_int_equal(rc, FW_PAUSED);
    sleep_ms(50);
    assert_int_equal(fw_stream_resume(s), 0);
    /* More rows than the 4 MiB budget holds (~15,000): the producer has surely resumed reading
     * before the cancel (otherwise a cancel could overtake the resume, legitimately). */
    for (int i = 0; i < 30000; i++)
        assert_int_equal(fw_stream_next(s, &row, 30000), FW_ROW);
    assert_int_equal(fw_stream_cancel(s), 0);
    fw_stream_free(s);
    /* a slow consumer under a small budget */
    q = query("v_bench_100k");
    assert_int_equal(fw_query_max_memory(q, 64 * 1024), 0);
    run_t r;
    drain(c, q, 2000, &r);
    fw_query_free(q);
    assert_int_equal(r.end, FW_END);
    assert_true(r.st.read_stops > 0);
    fw_conn_close_sync(c);
    fw_runtime_free(rt);
    char *b1 = render();
    const char *E = "entity=\"public.v_bench_1m\"";
    assert_true(delta(b0, b1, "fraiseql_stream_paused_total{%s}", E) == 1);
    assert_true(delta(b0, b1, "fraiseql_stream_resumed_total{%s}", E) == 1);
    assert_true(delta(b0, b1, "fraiseql_stream_pause_duration_seconds_count{%s}", E) == 1);
    assert_true(delta(b0, b1, "fraiseql_stream_pause_duration_seconds_sum{%s}", E) > 0.02);
    assert_true(delta(b0, b1, "fraiseql_cancellations_total{%s,result=\"completed\"}", E) == 1);
    assert_true(delta(b0, b1, "fraiseql_cancellation_duration_seconds_count{%s}", E) == 1);
    assert_true(delta(b0, b1, "fraiseql_query_completed_total{%s,status=\"cancelled\"}", E) == 1);
    const char *B = "entity=\"v_bench_100k\"";
    assert_true(delta(b0, b1, "fraiseql_read_stops_total{%s}", B) == (double)r.st.read_stops);
    /* each stop's duration observed once, when reading resumed (or at the end) */
    assert_true(delta(b0, b1, "fraiseql_read_stop_duration_seconds_count{%s}", B) ==
                (double)r.st.read_stops);
    assert_true(delta(b0, b1, "fraiseql_read_stop_duration_seconds_sum{%s}", B) > 0);
    /* the consumer fell behind: some samples found a full budget's worth of rows queued */
    assert_true(value(b1, "fraiseql_channel_occupancy_rows_sum{entity=\"v_bench_100k\"}") > 0);
    free(b0);
    free(b1);
}

/* Off, nothing is recorded; on again, recording resumes. */
static void test_recording_can_be_switched_off(void **state)
{
    (void)state;
    assert_true(fw_metrics_enabled());
    fw_metrics_set_enabled(false);
    assert_false(fw_metrics_enabled());
    fw_runtime_t *rt;
    assert_int_equal(fw_runtime_new(&rt), 0);
    char *b0 = render();
    fw_conn_t *c = connect_trust(rt);
    fw_query_t *q = query("public.v_fixture");
    run_t r;
    drain(c, q, 0, &r);
    assert_int_equal(r.end, FW_END);
    assert_true(r.rows > 0);
    fw_conn_close_sync(c);
    char *b1 = render();
    assert_null(strstr(b1, "entity=\"public.v_fixture\""));
    assert_true(delta(b0, b1, "fraiseql_connections_opened_total{transport=\"unix\"}") == 0);
    fw_metrics_set_enabled(true);
    c = connect_trust(rt);
    drain(c, q, 0, &r);
    fw_query_free(q);
    fw_conn_close_sync(c);
    fw_runtime_free(rt);
    char *b2 = render();
    assert_true(value(b2, "fraiseql_rows_delivered_total{entity=\"public.v_fixture\"}") ==
                (double)r.rows);
    free(b0);
    free(b1);
    free(b2);
}

/* ---- several threads at once: exact totals (also under TSan) ------------------------------ */

#define THREADS 4
#define RUNS_PER_THREAD 2

typedef struct worker_s {
    pthread_t t;
    uint64_t rows, bytes_received, chunks;
} worker_t;

static void *worker(void *arg)
{
    worker_t *w = arg;
    fw_runtime_t *rt;
    if (fw_runtime_new(&rt) != 0)
        return NULL;
    fw_conn_t *c = connect_trust(rt);
    for (int i = 0; i < RUNS_PER_THREAD; i++) {
        fw_query_t *q = query("public.v_bench_1k");
        run_t r;
        drain(c, q, i == 1 ? 100 : 0, &r);
        fw_query_free(q);
        if (r.end == FW_END) {
            w->rows += r.rows;
            w->bytes_received += r.st.bytes_received;
        }
    }
    fw_conn_close_sync(c);
    fw_runtime_free(rt);
    return NULL;
}

static void test_threads_record_exact_totals(void **state)
{
    (void)state;
    char *b0 = render();
    worker_t w[THREADS];
    memset(w, 0, sizeof(w));
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&w[i].t, NULL, worker, &w[i]), 0);
    /* scrapes while they run: a render never blocks recording */
    for (int i = 0; i < 20; i++) {
        free(render());
        sleep_ms(2);
    }
    uint64_t rows = 0, bytes = 0;
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(w[i].t, NULL), 0);
        rows += w[i].rows;
        bytes += w[i].bytes_received;
    }
    char *b1 = render();
    const char *E = "entity=\"public.v_bench_1k\"";
    assert_int_equal(rows, (uint64_t)THREADS * RUNS_PER_THREAD * 1000);
    assert_true(delta(b0, b1, "fraiseql_rows_delivered_total{%s}", E) == (double)rows);
    assert_true(delta(b0, b1, "fraiseql_rows_processed_total{%s}", E) == (double)rows);
    assert_true(delta(b0, b1, "fraiseql_bytes_received_total{%s}", E) == (double)bytes);
    assert_true(delta(b0, b1, "fraiseql_query_completed_total{%s,status=\"success\"}", E) ==
                THREADS * RUNS_PER_THREAD);
    assert_true(delta(b0, b1, "fraiseql_chunk_size_rows_sum{%s}", E) == (double)rows);
    assert_true(value(b1, "fraiseql_rows_buffered{entity=\"public.v_bench_1k\"}") == 0);
    assert_true(value(b1, "fraiseql_streams_active{entity=\"public.v_bench_1k\"}") == 0);
    free(b0);
    free(b1);
}

/* ---- the HTTP listener ------------------------------------------------------------------- */

/* One request to 127.0.0.1:port; the whole response (the server closes) into a malloc'd
 * string. */
static char *http(int port, const char *request)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    size_t n = strlen(request);
    assert_int_equal(send(fd, request, n, MSG_NOSIGNAL), (ssize_t)n);
    size_t cap = 1 << 20, len = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    for (;;) {
        if (len + 1 == cap) {
            cap *= 2;
            out = realloc(out, cap);
            assert_non_null(out);
        }
        ssize_t k = recv(fd, out + len, cap - 1 - len, 0);
        if (k <= 0)
            break;
        len += (size_t)k;
    }
    out[len] = '\0';
    close(fd);
    return out;
}

/* Every family named in the render (# TYPE lines) is in the HTTP body too. */
static void same_families(const char *body)
{
    char *text = render();
    size_t families = 0;
    for (const char *p = text; (p = strstr(p, "# TYPE ")) != NULL; p++) {
        const char *end = strchr(p, '\n');
        assert_non_null(end);
        char line[256];
        size_t n = (size_t)(end - p);
        assert_true(n < sizeof(line));
        memcpy(line, p, n);
        line[n] = '\0';
        if (strstr(body, line) == NULL)
            fail_msg("the HTTP body lacks \"%s\"", line);
        families++;
    }
    assert_true(families >= 35);
    free(text);
}

static void check_listener(int port)
{
    char *r = http(port, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_true(strncmp(r, "HTTP/1.1 200 OK\r\n", 17) == 0);
    assert_non_null(strstr(r, "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
    const char *body = strstr(r, "\r\n\r\n");
    assert_non_null(body);
    long clen = strtol(strstr(r, "Content-Length: ") + 16, NULL, 10);
    assert_int_equal((long)strlen(body + 4), clen);
    same_families(body + 4);
    free(r);
    r = http(port, "GET / HTTP/1.1\r\n\r\n");
    assert_true(strncmp(r, "HTTP/1.1 404 ", 13) == 0);
    free(r);
    r = http(port, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_true(strncmp(r, "HTTP/1.1 405 ", 13) == 0);
    free(r);
    r = http(port, "HEAD /metrics HTTP/1.0\r\n\r\n");
    assert_true(strncmp(r, "HTTP/1.1 200 OK\r\n", 17) == 0);
    assert_true(strlen(strstr(r, "\r\n\r\n")) == 4); /* no body */
    free(r);
    r = http(port, "garbage\r\n\r\n");
    assert_true(strncmp(r, "HTTP/1.1 400 ", 13) == 0);
    free(r);
    /* a request that never ends its headers: cut off at 8 KiB */
    char big[9000];
    memset(big, 'a', sizeof(big) - 1);
    memcpy(big, "GET /metrics HTTP/1.1\r\nX: ", 26);
    big[sizeof(big) - 1] = '\0';
    r = http(port, big);
    assert_true(r[0] == '\0' || strncmp(r, "HTTP/1.1 431 ", 13) == 0);
    free(r);
}

static void test_http_listener_threaded(void **state)
{
    (void)state;
    fw_runtime_t *rt;
    assert_int_equal(fw_runtime_new(&rt), 0);
    fw_metrics_listener_t *l;
    fw_error_t err;
    assert_int_equal(fw_metrics_listen_rt(rt, NULL, 0, &l, &err), 0);
    int port = fw_metrics_listener_port(l);
    assert_true(port > 0);
    /* a second listener on the same port is refused with a clear error */
    fw_metrics_listener_t *l2 = NULL;
    assert_int_equal(fw_metrics_listen_rt(rt, "127.0.0.1", port, &l2, &err), UV_EADDRINUSE);
    assert_null(l2);
    assert_non_null(strstr(err.message, "address already in use"));
    assert_int_equal(fw_metrics_listen_rt(rt, "not-an-address", 0, &l2, &err), UV_EINVAL);
    check_listener(port);
    fw_metrics_listener_close(l);
    fw_runtime_free(rt);
}

typedef struct embedded_s {
    int port;
    _Atomic bool done;
} embedded_t;

static void *client_thread(void *arg)
{
    embedded_t *e = arg;
    check_listener(e->port);
    atomic_store(&e->done, true);
    return NULL;
}

static void on_tick(uv_timer_t *t)
{
    embedded_t *e = t->data;
    if (atomic_load(&e->done))
        uv_stop(t->loop);
}

static void test_http_listener_embedded(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    fw_metrics_listener_t *l;
    assert_int_equal(fw_metrics_listen(&loop, "127.0.0.1", 0, &l, NULL), 0);
    embedded_t e = {.port = fw_metrics_listener_port(l)};
    atomic_init(&e.done, false);
    uv_timer_t tick;
    uv_timer_init(&loop, &tick);
    tick.data = &e;
    uv_timer_start(&tick, on_tick, 5, 5);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, client_thread, &e), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(pthread_join(t, NULL), 0);
    uv_close((uv_handle_t *)&tick, NULL);
    fw_metrics_listener_close(l);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0); /* every handle closed, the memory freed */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_stream_is_recorded_exactly),
        cmocka_unit_test(test_authentication_is_recorded),
        cmocka_unit_test(test_errors_and_notices_are_recorded),
        cmocka_unit_test(test_control_and_backpressure_are_recorded),
        cmocka_unit_test(test_recording_can_be_switched_off),
        cmocka_unit_test(test_threads_record_exact_totals),
        cmocka_unit_test(test_http_listener_threaded),
        cmocka_unit_test(test_http_listener_embedded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
