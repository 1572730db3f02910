/* SPDX-License-Identifier: MIT */
/*
 * Pause and cancel latency of a running stream, threaded mode, against the real server.
 *
 *   bench_control [--tries N] [--seed S] [--dsn CONNINFO] [--json OUT]
 *
 * resume   On one running stream of v_bench_1m: read a random 100..5,000 rows, fw_stream_pause,
 *          drain the queued rows with fw_stream_next until FW_PAUSED, sleep 5 ms (the server
 *          fills the socket buffers and waits in send), then time from fw_stream_resume to the
 *          next row in hand (fw_stream_next returns FW_ROW). A stream that reaches its end is
 *          replaced by a new one.
 * cancel   Per try: start v_bench_1m, read a random 1,000..50,000 rows, then time
 *          fw_stream_cancel from call to return: in threaded mode it returns once the
 *          CancelRequest was acted on (the server closed the cancel connection) and the rest of
 *          the reply was read up to ReadyForQuery, i.e. the backend is idle and the connection
 *          can run the next query. Then fw_stream_next must return FW_ECANCELED, and the same
 *          connection must run v_fixture at once and return its 5 rows; any other outcome is a
 *          failure (exit 1).
 *
 * Both report median, p99, min, max and mean over N tries (default 200) after 5 warm-up tries
 * that are not counted, against the targets: resume under 1 ms to the next row, cancel under
 * 10 ms to an idle backend. --json writes the same numbers. Random row counts come from a
 * fixed-seed generator (--seed), so runs are comparable.
 *
 * --dsn defaults to the test cluster's unix socket as its trust user (FW_TEST_DSN_TRUST, set by
 * test/with-pg.sh; without it the program exits 77, "skipped"). No libpq: only the library.
 * A benchmark, never a test: on a shared 2-core machine the tail is noisy.
 */
#include <fwire.h>

#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WARMUP        5
#define MAX_TRIES     100000
#define PAUSE_WAIT_MS 5
#define BENCH_VIEW    "v_bench_1m"
#define CHECK_VIEW    "v_fixture"
#define CHECK_ROWS    5
#define TARGET_RESUME 1e-3  /* seconds */
#define TARGET_CANCEL 10e-3 /* seconds */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* xorshift64*: reproducible row counts. */
static uint64_t rng_state = 1;

static uint64_t rng_next(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

static uint64_t rng_range(uint64_t lo, uint64_t hi)
{
    return lo + rng_next() % (hi - lo + 1);
}

typedef struct series_s {
    double *v;
    int n;
    int cap;
} series_t;

typedef struct summary_s {
    double median, p90, p99, min, max, mean;
    int under_target; /* tries under the target */
} summary_t;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void summarize(series_t *s, double target, summary_t *out)
{
    memset(out, 0, sizeof(*out));
    if (s->n == 0)
        return;
    qsort(s->v, (size_t)s->n, sizeof(double), cmp_double);
    int n = s->n;
    out->median = n % 2 ? s->v[n / 2] : (s->v[n / 2 - 1] + s->v[n / 2]) / 2;
    /* nearest rank: the smallest value with at least 99 % of the tries at or below it */
    int rank = (99 * n + 99) / 100;
    out->p99 = s->v[rank - 1];
    out->p90 = s->v[(90 * n + 99) / 100 - 1];
    out->min = s->v[0];
    out->max = s->v[n - 1];
    double sum = 0;
    for (int i = 0; i < n; i++) {
        sum += s->v[i];
        out->under_target += s->v[i] < target;
    }
    out->mean = sum / n;
}

static void fail_msg(const char *what, int rc, const fw_error_t *err)
{
    fprintf(stderr, "bench_control: %s: %s (%s)%s%s\n", what, fw_err_name(rc), fw_strerror(rc),
            err != NULL && err->message[0] ? ": " : "", err != NULL ? err->message : "");
}

static fw_query_t *make_query(const char *view)
{
    fw_query_t *q = NULL;
    if (fw_query_new(&q) < 0 || fw_query_relation(q, view) < 0) {
        fprintf(stderr, "bench_control: cannot build the query of %s\n", view);
        exit(1);
    }
    return q;
}

/* Reads up to n rows; returns the rows read (fewer at the end), or a negative code. */
static long read_rows(fw_stream_t *s, uint64_t n)
{
    fw_row_t row;
    uint64_t got = 0;
    while (got < n) {
        int rc = fw_stream_next(s, &row, -1);
        if (rc == FW_ROW)
            got++;
        else if (rc == FW_END)
            break;
        else
            return rc < 0 ? rc : -1000 - rc;
    }
    return (long)got;
}

static fw_stream_t *start(fw_conn_t *conn, const fw_query_t *q)
{
    fw_stream_t *s = NULL;
    fw_error_t err;
    int rc = fw_stream_start(conn, q, NULL, NULL, &s, &err);
    if (rc < 0) {
        fail_msg("fw_stream_start", rc, &err);
        exit(1);
    }
    return s;
}

/* ---- (a) pause -> resume -------------------------------------------------------------- */

typedef struct resume_extra_s {
    uint64_t streams;       /* streams of v_bench_1m used */
    uint64_t drained_max;   /* the most rows still queued when a pause was asked */
    uint64_t drained_total; /* rows taken between pause and FW_PAUSED, all tries */
} resume_extra_t;

static int bench_resume(fw_conn_t *conn, int tries, series_t *out, resume_extra_t *x)
{
    fw_query_t *q = make_query(BENCH_VIEW);
    fw_stream_t *s = start(conn, q);
    x->streams = 1;
    for (int i = 0; i < tries + WARMUP; i++) {
        long r = read_rows(s, rng_range(100, 5000));
        if (r < 0) {
            fail_msg("reading before a pause", (int)r, fw_stream_error(s));
            return -1;
        }
        int rc = fw_stream_pause(s);
        if (rc == FW_ESTATE) { /* the stream ended: a new one */
            fw_stream_free(s);
            s = start(conn, q);
            x->streams++;
            i--;
            continue;
        }
        fw_row_t row;
        uint64_t drained = 0;
        while ((rc = fw_stream_next(s, &row, -1)) == FW_ROW)
            drained++;
        if (rc == FW_END) { /* the last rows arrived before the pause took effect */
            fw_stream_free(s);
            s = start(conn, q);
            x->streams++;
            i--;
            continue;
        }
        if (rc != FW_PAUSED) {
            fail_msg("draining a paused stream", rc, fw_stream_error(s));
            return -1;
        }
        x->drained_total += drained;
        if (drained > x->drained_max)
            x->drained_max = drained;
        sleep_ms(PAUSE_WAIT_MS);
        double t0 = now_s();
        rc = fw_stream_resume(s);
        if (rc < 0) {
            fail_msg("fw_stream_resume", rc, NULL);
            return -1;
        }
        rc = fw_stream_next(s, &row, -1);
        double t1 = now_s();
        if (rc != FW_ROW) {
            if (rc < 0) {
                fail_msg("the row after resume", rc, fw_stream_error(s));
                return -1;
            }
            fw_stream_free(s); /* FW_END: the stream ended while paused; not a sample */
            s = start(conn, q);
            x->streams++;
            i--;
            continue;
        }
        if (i >= WARMUP)
            out->v[out->n++] = t1 - t0;
    }
    /* Cancels without waiting: bench_cancel's first start retries while that cancel runs. */
    fw_stream_free(s);
    fw_query_free(q);
    return 0;
}

/* ---- (b) cancel ------------------------------------------------------------------------ */

typedef struct cancel_extra_s {
    uint64_t rows_min, rows_max; /* rows read before the cancel */
    double check_max;            /* the slowest v_fixture check after a cancel (seconds) */
    uint64_t busy_retries;       /* FW_EBUSY from the next fw_stream_start (must stay 0) */
} cancel_extra_t;

static int check_fixture(fw_conn_t *conn, const fw_query_t *q, cancel_extra_t *x)
{
    double t0 = now_s();
    fw_stream_t *s = NULL;
    fw_error_t err;
    int rc = fw_stream_start(conn, q, NULL, NULL, &s, &err);
    while (rc == FW_EBUSY) { /* should not happen: fw_stream_cancel waited for the cancel */
        x->busy_retries++;
        sleep_ms(1);
        rc = fw_stream_start(conn, q, NULL, NULL, &s, &err);
    }
    if (rc < 0) {
        fail_msg("starting " CHECK_VIEW " after a cancel", rc, &err);
        return -1;
    }
    long n = read_rows(s, UINT64_MAX);
    if (n != CHECK_ROWS) {
        fprintf(stderr, "bench_control: " CHECK_VIEW " after a cancel: %ld rows, want %d\n", n,
                CHECK_ROWS);
        if (n < 0)
            fail_msg(CHECK_VIEW, (int)n, fw_stream_error(s));
        fw_stream_free(s);
        return -1;
    }
    fw_stream_free(s);
    double t = now_s() - t0;
    if (t > x->check_max)
        x->check_max = t;
    return 0;
}

static int bench_cancel(fw_conn_t *conn, int tries, series_t *out, cancel_extra_t *x)
{
    fw_query_t *q = make_query(BENCH_VIEW);
    fw_query_t *fixture = make_query(CHECK_VIEW);
    x->rows_min = UINT64_MAX;
    for (int i = 0; i < tries + WARMUP; i++) {
        fw_stream_t *s = NULL;
        fw_error_t err;
        int rc = fw_stream_start(conn, q, NULL, NULL, &s, &err);
        while (rc == FW_EBUSY) { /* the free of the resume phase's stream, still cancelling */
            sleep_ms(1);
            rc = fw_stream_start(conn, q, NULL, NULL, &s, &err);
        }
        if (rc < 0) {
            fail_msg("fw_stream_start", rc, &err);
            return -1;
        }
        uint64_t want = rng_range(1000, 50000);
        long r = read_rows(s, want);
        if (r < 0 || (uint64_t)r != want) {
            fprintf(stderr, "bench_control: read %ld of %" PRIu64 " rows before the cancel\n", r,
                    want);
            fw_stream_free(s);
            return -1;
        }
        double t0 = now_s();
        rc = fw_stream_cancel(s);
        double t1 = now_s();
        if (rc < 0) {
            fail_msg("fw_stream_cancel", rc, fw_stream_error(s));
            fw_stream_free(s);
            return -1;
        }
        fw_row_t row;
        rc = fw_stream_next(s, &row, 0);
        if (rc != FW_ECANCELED) {
            fprintf(stderr, "bench_control: after fw_stream_cancel, next returned %d (%s)\n", rc,
                    rc < 0 ? fw_err_name(rc) : "not an error");
            fw_stream_free(s);
            return -1;
        }
        fw_stream_free(s);
        if (check_fixture(conn, fixture, x) < 0)
            return -1;
        if (i >= WARMUP) {
            out->v[out->n++] = t1 - t0;
            if (want < x->rows_min)
                x->rows_min = want;
            if (want > x->rows_max)
                x->rows_max = want;
        }
    }
    fw_query_free(q);
    fw_query_free(fixture);
    return 0;
}

/* ---- output ---------------------------------------------------------------------------- */

static void print_row(const char *name, const summary_t *m, double target, int n)
{
    printf("%-34s %9.3f %9.3f %9.3f %9.3f %9.3f %9.3f %7.1f  %4d/%d\n", name, m->median * 1e3,
           m->p90 * 1e3, m->p99 * 1e3, m->min * 1e3, m->max * 1e3, m->mean * 1e3, target * 1e3,
           m->under_target, n);
}

/* The summary and every sample (sorted, ms). */
static void json_summary(FILE *f, const char *name, const summary_t *m, double target,
                         const series_t *s)
{
    fprintf(f,
            "  \"%s\": {\"tries\": %d, \"median_ms\": %.4f, \"p90_ms\": %.4f, \"p99_ms\": %.4f, "
            "\"min_ms\": %.4f, \"max_ms\": %.4f, \"mean_ms\": %.4f, \"target_ms\": %.1f, "
            "\"under_target\": %d, \"median_meets_target\": %s, \"p99_meets_target\": %s, "
            "\"samples_ms\": [",
            name, s->n, m->median * 1e3, m->p90 * 1e3, m->p99 * 1e3, m->min * 1e3, m->max * 1e3,
            m->mean * 1e3, target * 1e3, m->under_target, m->median < target ? "true" : "false",
            m->p99 < target ? "true" : "false");
    for (int i = 0; i < s->n; i++)
        fprintf(f, "%s%.4f", i ? ", " : "", s->v[i] * 1e3);
    fprintf(f, "]}");
}

static void usage(const char *argv0)
{
    fprintf(stderr, "usage: %s [--tries N] [--seed S] [--dsn CONNINFO] [--json OUT]\n", argv0);
}

int main(int argc, char **argv)
{
    int tries = 200;
    const char *dsn = NULL, *json_out = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--tries") == 0 && i + 1 < argc) {
            tries = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            rng_state = strtoull(argv[++i], NULL, 10);
            if (rng_state == 0)
                rng_state = 1;
        } else if (strcmp(argv[i], "--dsn") == 0 && i + 1 < argc) {
            dsn = argv[++i];
        } else if (strcmp(argv[i], "--json") == 0 && i + 1 < argc) {
            json_out = argv[++i];
        } else {
            usage(argv[0]);
            return 2;
        }
    }
    if (tries < 1 || tries > MAX_TRIES) {
        fprintf(stderr, "bench_control: --tries must be 1..%d\n", MAX_TRIES);
        return 2;
    }
    if (dsn == NULL) {
        dsn = getenv("FW_TEST_DSN_TRUST");
        if (dsn == NULL || dsn[0] == '\0') {
            fprintf(stderr, "bench_control: FW_TEST_DSN_TRUST is not set: run through "
                            "test/with-pg.sh or give --dsn\n");
            return 77;
        }
    }
    signal(SIGPIPE, SIG_IGN);

    fw_runtime_t *rt = NULL;
    int rc = fw_runtime_new(&rt);
    if (rc < 0) {
        fail_msg("fw_runtime_new", rc, NULL);
        return 1;
    }
    fw_conn_opts_t o;
    fw_conn_opts_init(&o);
    o.conninfo = dsn;
    fw_conn_t *conn = NULL;
    fw_error_t err;
    rc = fw_conn_connect_sync(rt, &o, &conn, &err);
    if (rc < 0) {
        fail_msg("connect", rc, &err);
        fw_runtime_free(rt);
        return 1;
    }

    series_t resume = {calloc((size_t)tries, sizeof(double)), 0, tries};
    series_t cancel = {calloc((size_t)tries, sizeof(double)), 0, tries};
    if (resume.v == NULL || cancel.v == NULL) {
        fputs("bench_control: out of memory\n", stderr);
        return 1;
    }
    resume_extra_t rx;
    cancel_extra_t cx;
    memset(&rx, 0, sizeof(rx));
    memset(&cx, 0, sizeof(cx));
    int code = 0;
    fprintf(stderr, "bench_control: pause/resume, %d tries on %s...\n", tries, BENCH_VIEW);
    if (bench_resume(conn, tries, &resume, &rx) < 0)
        code = 1;
    fprintf(stderr, "bench_control: cancel, %d tries on %s...\n", tries, BENCH_VIEW);
    if (code == 0 && bench_cancel(conn, tries, &cancel, &cx) < 0)
        code = 1;
    fw_conn_close_sync(conn);
    fw_runtime_free(rt);
    if (code != 0) {
        fputs("bench_control: FAILED\n", stderr);
        return code;
    }

    summary_t mr, mc;
    summarize(&resume, TARGET_RESUME, &mr);
    summarize(&cancel, TARGET_CANCEL, &mc);
    printf("%-34s %9s %9s %9s %9s %9s %9s %7s  %s\n", "ms (threaded mode)", "median", "p90", "p99",
           "min", "max", "mean", "target", "under");
    print_row("resume -> next row (after 5 ms)", &mr, TARGET_RESUME, resume.n);
    print_row("cancel -> idle backend", &mc, TARGET_CANCEL, cancel.n);
    printf("resume: %" PRIu64 " stream(s); %.0f rows on average (at most %" PRIu64
           ") still queued when pausing\n",
           rx.streams, (double)rx.drained_total / (tries + WARMUP), rx.drained_max);
    printf("cancel: after %" PRIu64 "..%" PRIu64 " rows; every cancel returned 0, next gave "
           "FW_ECANCELED and the connection then ran " CHECK_VIEW " (%d rows; slowest %.3f ms, "
           "%" PRIu64 " FW_EBUSY)\n",
           cx.rows_min, cx.rows_max, CHECK_ROWS, cx.check_max * 1e3, cx.busy_retries);

    if (json_out != NULL) {
        FILE *f = fopen(json_out, "w");
        if (f == NULL) {
            perror(json_out);
            return 1;
        }
        char date[32];
        time_t t = time(NULL);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", &tm);
        fprintf(f, "{\n  \"date\": \"%s\", \"view\": \"%s\", \"pause_wait_ms\": %d,\n", date,
                BENCH_VIEW, PAUSE_WAIT_MS);
        json_summary(f, "resume", &mr, TARGET_RESUME, &resume);
        fprintf(f, ",\n");
        json_summary(f, "cancel", &mc, TARGET_CANCEL, &cancel);
        fprintf(f,
                ",\n  \"resume_streams\": %" PRIu64 ", \"cancel_rows_min\": %" PRIu64
                ", \"cancel_rows_max\": %" PRIu64 ", \"check_max_ms\": %.4f, "
                "\"check_ebusy\": %" PRIu64 "\n}\n",
                rx.streams, cx.rows_min, cx.rows_max, cx.check_max * 1e3, cx.busy_retries);
        if (fclose(f) != 0) {
            perror(json_out);
            return 1;
        }
    }
    free(resume.v);
    free(cancel.v);
    return 0;
}
