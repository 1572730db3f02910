/* SPDX-License-Identifier: MIT */
/*
 * The connection pool under contention (issue 15), embedded mode, one libuv loop.
 *
 *   bench_pool [--runs N] [--requests N | --quick] [--json OUT]
 *
 * Runs against the throwaway cluster of test/with-pg.sh (the FW_TEST_* variables, unix socket,
 * the trust user); without them it exits 77 ("skipped"). Every request is one 1-row stream
 * (SELECT data FROM v_fixture LIMIT 1) run to its end. Cases:
 *   pool P / R requesters   R requesters loop acquire (fw_pool_acquire) -> fw_pool_stream_start
 *                           -> rows -> fw_stream_free (gives the connection back), on a pool
 *                           of max_size P opened ahead of the clock (min_size = P, all idle);
 *                           the acquire wait is from fw_pool_acquire to its callback.
 *   connect / R requesters  the baseline: R requesters loop fw_conn_new + fw_conn_connect ->
 *                           the same stream -> fw_conn_close; "wait" is the connect.
 * Pools of 8 and 16 with 8, 64 and 256 requesters; the baseline at 8 and 16 (what the pools
 * give the server). After one warm-up round, N rounds (default 5) each run every case once in
 * the same order (A B C ... A B C ...), so all see the same machine (the baseline runs a tenth
 * of the requests, at least 64: it is two orders of magnitude slower); per case the medians over
 * rounds of throughput (requests/s) and of each round's p50 and p99 wait are reported, with
 * the min and max throughput. This is a benchmark (meson benchmark()), never a test.
 */
#include <fwire.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define MAX_REQUESTERS 256

typedef struct bcase_s {
    const char *name;
    unsigned pool; /* 0: the connect-per-request baseline */
    int requesters;
    double *rps, *p50, *p99; /* one per counted round */
} bcase_t;

static bcase_t cases[] = {
    {"pool 8 / 8", 8, 8, NULL, NULL, NULL},       {"pool 8 / 64", 8, 64, NULL, NULL, NULL},
    {"pool 8 / 256", 8, 256, NULL, NULL, NULL},   {"pool 16 / 64", 16, 64, NULL, NULL, NULL},
    {"pool 16 / 256", 16, 256, NULL, NULL, NULL}, {"connect / 8", 0, 8, NULL, NULL, NULL},
    {"connect / 16", 0, 16, NULL, NULL, NULL},
};
#define NCASES (sizeof(cases) / sizeof(cases[0]))

static char conninfo[1024];
static fw_query_t *query;

typedef struct run_s run_t;
typedef struct requester_s {
    run_t *R;
    uint64_t t_ask;
    fw_conn_t *conn; /* baseline */
    fw_stream_t *s;
} requester_t;

struct run_s {
    uv_loop_t *loop;
    fw_pool_t *pool;
    int started, done, target, failures;
    double *waits; /* ms, one per request */
    int nwaits;
    requester_t req[MAX_REQUESTERS];
    int closing; /* baseline connections being closed */
};

static void next_request(requester_t *q);

static void on_rows(fw_stream_t *s, void *ud)
{
    requester_t *q = ud;
    if (q->s == NULL)
        return;
    fw_row_t row;
    int rc;
    while ((rc = fw_stream_try_next(s, &row)) == FW_ROW) {
    }
    if (rc == FW_AGAIN)
        return;
    run_t *R = q->R;
    if (rc != FW_END)
        R->failures++;
    fw_stream_free(q->s);
    q->s = NULL;
    R->done++;
    if (q->conn != NULL) {
        fw_conn_close(q->conn, NULL, NULL);
        q->conn = NULL;
    }
    next_request(q);
}

static void record_wait(requester_t *q)
{
    run_t *R = q->R;
    R->waits[R->nwaits++] = (double)(uv_hrtime() - q->t_ask) / 1e6;
}

static void on_acquired(fw_pool_t *pool, fw_conn_t *conn, int status, const fw_error_t *err,
                        void *ud)
{
    requester_t *q = ud;
    record_wait(q);
    fw_error_t e;
    if (status != 0 || fw_pool_stream_start(pool, conn, query, on_rows, q, &q->s, &e) != 0) {
        fprintf(stderr, "bench_pool: acquire/start: %s\n",
                status != 0 ? (err != NULL ? err->message : fw_err_name(status)) : e.message);
        q->R->failures++;
        q->R->done++;
        next_request(q);
    }
}

static void on_connected(fw_conn_t *conn, int status, const fw_error_t *err, void *ud)
{
    requester_t *q = ud;
    record_wait(q);
    fw_error_t e;
    if (status != 0 || fw_stream_start(conn, query, on_rows, q, &q->s, &e) != 0) {
        fprintf(stderr, "bench_pool: connect/start: %s\n",
                status != 0 ? (err != NULL ? err->message : fw_err_name(status)) : e.message);
        q->R->failures++;
        q->R->done++;
        fw_conn_close(conn, NULL, NULL);
        q->conn = NULL;
        next_request(q);
    }
}

static void next_request(requester_t *q)
{
    run_t *R = q->R;
    if (R->started >= R->target)
        return;
    R->started++;
    q->t_ask = uv_hrtime();
    if (R->pool != NULL) {
        if (fw_pool_acquire(R->pool, FW_POOL_READ, on_acquired, q) != 0) {
            R->failures++;
            R->done++;
        }
        return;
    }
    fw_conn_opts_t o;
    fw_conn_opts_init(&o);
    o.conninfo = conninfo;
    o.use_environment = false;
    fw_error_t err;
    if (fw_conn_new(&q->conn, R->loop, &o, &err) != 0 ||
        fw_conn_connect(q->conn, on_connected, q) != 0) {
        fprintf(stderr, "bench_pool: fw_conn_new/connect: %s\n", err.message);
        R->failures++;
        R->done++;
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p)
{
    if (n == 0)
        return 0;
    int k = (int)(p * (double)n + 0.5) - 1; /* nearest rank */
    if (k < 0)
        k = 0;
    if (k >= n)
        k = n - 1;
    return v[k];
}

static void on_pool_closed(fw_pool_t *p, void *ud)
{
    (void)p;
    *(int *)ud = 1;
}

/* One case once: requests requests; returns requests/s and the wait percentiles. */
static int run_case(uv_loop_t *loop, const bcase_t *c, int requests, double *rps, double *p50,
                    double *p99)
{
    run_t *R = calloc(1, sizeof(*R));
    if (R == NULL)
        return -1;
    R->loop = loop;
    R->target = requests;
    R->waits = calloc((size_t)requests, sizeof(double));
    if (c->pool > 0) {
        fw_pool_opts_t o;
        fw_pool_opts_init(&o);
        o.conninfo = conninfo;
        o.use_environment = false;
        o.max_size = c->pool;
        o.min_size = c->pool;
        o.acquire_timeout_ms = 60000;
        fw_error_t err;
        if (fw_pool_new(&R->pool, loop, &o, &err) != 0) {
            fprintf(stderr, "bench_pool: fw_pool_new: %s\n", err.message);
            return -1;
        }
        /* the clock starts with every connection open and idle */
        fw_pool_stats_t st;
        do {
            uv_run(loop, UV_RUN_ONCE);
            fw_pool_stats(R->pool, &st);
        } while (st.idle < c->pool);
    }
    uint64_t t0 = uv_hrtime();
    for (int i = 0; i < c->requesters; i++) {
        R->req[i].R = R;
        next_request(&R->req[i]);
    }
    while (R->done < R->target)
        uv_run(loop, UV_RUN_ONCE);
    double secs = (double)(uv_hrtime() - t0) / 1e9;
    if (R->pool != NULL) {
        int closed = 0;
        fw_pool_close(R->pool, on_pool_closed, &closed);
        while (!closed)
            uv_run(loop, UV_RUN_ONCE);
    }
    while (uv_run(loop, UV_RUN_NOWAIT) != 0) { /* closing baseline connections */
    }
    int failures = R->failures;
    qsort(R->waits, (size_t)R->nwaits, sizeof(double), cmp_double);
    *rps = (double)requests / secs;
    *p50 = pct(R->waits, R->nwaits, 0.50);
    *p99 = pct(R->waits, R->nwaits, 0.99);
    free(R->waits);
    free(R);
    return failures == 0 ? 0 : -1;
}

static double median(const double *v, int n)
{
    double *t = malloc((size_t)n * sizeof(double));
    memcpy(t, v, (size_t)n * sizeof(double));
    qsort(t, (size_t)n, sizeof(double), cmp_double);
    double m = n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
    free(t);
    return m;
}

static double vmin(const double *v, int n)
{
    double m = v[0];
    for (int i = 1; i < n; i++)
        m = v[i] < m ? v[i] : m;
    return m;
}

static double vmax(const double *v, int n)
{
    double m = v[0];
    for (int i = 1; i < n; i++)
        m = v[i] > m ? v[i] : m;
    return m;
}

int main(int argc, char **argv)
{
    int runs = 5, requests = 4000;
    const char *json_out = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (strcmp(argv[i], "--requests") == 0 && i + 1 < argc)
            requests = atoi(argv[++i]);
        else if (strcmp(argv[i], "--quick") == 0) {
            runs = 3;
            requests = 1000;
        } else if (strcmp(argv[i], "--json") == 0 && i + 1 < argc)
            json_out = argv[++i];
        else {
            fprintf(stderr, "usage: bench_pool [--runs N] [--requests N | --quick] [--json OUT]\n");
            return 2;
        }
    }
    if (runs < 1 || requests < MAX_REQUESTERS) {
        fprintf(stderr, "bench_pool: --runs >= 1, --requests >= %d\n", MAX_REQUESTERS);
        return 2;
    }
    const char *sock = getenv("FW_TEST_SOCKDIR"), *port = getenv("FW_TEST_PORT"),
               *db = getenv("FW_TEST_DBNAME"), *user = getenv("FW_TEST_USER_TRUST");
    if (sock == NULL || port == NULL || db == NULL || user == NULL) {
        fprintf(stderr, "bench_pool: FW_TEST_* not set (run through test/with-pg.sh): skipped\n");
        return 77;
    }
    snprintf(conninfo, sizeof(conninfo),
             "host=%s port=%s dbname=%s user=%s sslmode=disable connect_timeout=10", sock, port, db,
             user);
    if (fw_query_new(&query) != 0 || fw_query_relation(query, "v_fixture") != 0 ||
        fw_query_limit(query, 1) != 0)
        return 1;
    for (size_t c = 0; c < NCASES; c++) {
        cases[c].rps = calloc((size_t)runs, sizeof(double));
        cases[c].p50 = calloc((size_t)runs, sizeof(double));
        cases[c].p99 = calloc((size_t)runs, sizeof(double));
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    int rc = 0;
    for (int r = -1; r < runs; r++) { /* round -1: the warm-up */
        for (size_t c = 0; c < NCASES; c++) {
            double rps = 0, p50 = 0, p99 = 0;
            /* connect-per-request is ~100x slower: a tenth of the requests (at least 64) */
            int n = r < 0 ? MAX_REQUESTERS : requests;
            if (cases[c].pool == 0)
                n = n / 10 > 64 ? n / 10 : 64;
            if (run_case(&loop, &cases[c], n, &rps, &p50, &p99) != 0) {
                fprintf(stderr, "bench_pool: %s: requests failed\n", cases[c].name);
                rc = 1;
            }
            if (r >= 0) {
                cases[c].rps[r] = rps;
                cases[c].p50[r] = p50;
                cases[c].p99[r] = p99;
            }
        }
    }
    fw_query_free(query);
    uv_loop_close(&loop);

    double base8 = median(cases[NCASES - 2].rps, runs);
    printf("bench_pool: %d requests per pool case and round (a 1-row stream each; connect cases a "
           "tenth), %d rounds after one warm-up, interleaved; medians over rounds\n\n",
           requests, runs);
    printf("| case | requests/s | min | max | acquire wait p50 ms | p99 ms | vs connect / 8 |\n"
           "|---|---|---|---|---|---|---|\n");
    for (size_t c = 0; c < NCASES; c++) {
        bcase_t *k = &cases[c];
        double m = median(k->rps, runs);
        printf("| %s | %.0f | %.0f | %.0f | %.3f | %.3f | %.2fx |\n", k->name, m,
               vmin(k->rps, runs), vmax(k->rps, runs), median(k->p50, runs), median(k->p99, runs),
               base8 > 0 ? m / base8 : 0.0);
    }
    if (json_out != NULL) {
        FILE *jf = fopen(json_out, "w");
        if (jf == NULL) {
            fprintf(stderr, "bench_pool: %s: %s\n", json_out, strerror(errno));
            return 1;
        }
        fprintf(jf, "{\"benchmark\": \"pool\", \"requests\": %d, \"runs\": %d, \"cases\": [",
                requests, runs);
        for (size_t c = 0; c < NCASES; c++) {
            bcase_t *k = &cases[c];
            fprintf(jf,
                    "%s\n {\"case\": \"%s\", \"pool\": %u, \"requesters\": %d, "
                    "\"rps_median\": %.1f, \"rps_min\": %.1f, \"rps_max\": %.1f, "
                    "\"wait_p50_ms\": %.4f, \"wait_p99_ms\": %.4f}",
                    c ? "," : "", k->name, k->pool, k->requesters, median(k->rps, runs),
                    vmin(k->rps, runs), vmax(k->rps, runs), median(k->p50, runs),
                    median(k->p99, runs));
        }
        fprintf(jf, "]}\n");
        fclose(jf);
    }
    for (size_t c = 0; c < NCASES; c++) {
        free(cases[c].rps);
        free(cases[c].p50);
        free(cases[c].p99);
    }
    return rc;
}
