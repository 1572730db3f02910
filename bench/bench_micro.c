/* SPDX-License-Identifier: MIT */
/*
 * Micro benchmarks of the leaves, no server: what each piece of the data path and the connect
 * path costs on its own.
 *
 *   bench_micro [--runs N] [--quick] [--only NAME[,NAME...]] [--json OUT]
 *
 * Cases (interleaved: every case once per round, N counted rounds after one warm-up round):
 *   scram_proof       one whole SCRAM-SHA-256 client exchange of RFC 7677 (4,096 iterations):
 *                     init, client-first, server-first, PBKDF2 (fw__scram_derive), client-final
 *                     with the proof, server-final verified; µs per exchange
 *   ring_1t           fw__ring_push then fw__ring_pop of one item, one thread; Mops/s (an op
 *                     is one item through the ring)
 *   ring_1t_batch     fw__ring_push_many / fw__ring_pop_many of 64 items, one thread
 *   ring_2t           a producer thread pushes, a consumer thread pops, one item at a time,
 *                     capacity 1024; items/s end to end (both threads busy)
 *   ring_2t_batch     the same with push_many/pop_many of up to 64
 *   chunker_observe   fw__chunker_observe with a changing occupancy; ns per call
 *   metric_inc        fw__metric_inc on one counter series, one thread; ns per call
 *   metric_inc_2t     the same counter incremented by two threads at once (the shared cache
 *                     line bounces); ns per increment and thread
 *   hist_observe      fw__hist_observe on a 12-bucket histogram; ns per call
 * For the decoder's framing MB/s see bench_pq_decode.
 *
 * Results: a table on stdout (median, min, max over the counted rounds) and --json OUT.
 * This is a benchmark (meson `benchmark()`), never a test.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "chunker.h"
#include "metrics.h"
#include "stream.h"

#define MAX_RUNS 200

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Sinks the compiler cannot see through. */
static volatile uint64_t sink;

/* ---- SCRAM ------------------------------------------------------------------------------ */

/* RFC 7677 section 3: the published example exchange (user "user", password "pencil"). */
#define RFC_NONCE  "rOprNGfwEbeRWgbNEkqO"
#define RFC_SFIRST "r=" RFC_NONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
#define RFC_SFINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

static int scram_once(void)
{
    fw__scram_opts_t o;
    fw__scram_opts_init(&o);
    o.password = (const uint8_t *)"pencil";
    o.password_len = 6;
    o.nonce = RFC_NONCE;
    o.nonce_len = strlen(RFC_NONCE);
    o.username = "user";
    fw__scram_t s;
    fw_slice_t out;
    if (fw__scram_init(&s, &o) != 0)
        return -1;
    int rc = fw__scram_client_first(&s, &out);
    if (rc == 0)
        rc = fw__scram_server_first(&s, (const uint8_t *)RFC_SFIRST, strlen(RFC_SFIRST));
    if (rc == 0)
        rc = fw__scram_derive(&s);
    if (rc == 0)
        rc = fw__scram_client_final(&s, &out);
    if (rc == 0)
        rc = fw__scram_server_final(&s, (const uint8_t *)RFC_SFINAL, strlen(RFC_SFINAL));
    bool ok = rc == 0 && fw__scram_verified(&s);
    fw__scram_free(&s);
    return ok ? 0 : -1;
}

/* µs per exchange */
static double b_scram(bool quick)
{
    int n = quick ? 20 : 100;
    int64_t t0 = now_ns();
    for (int i = 0; i < n; i++)
        if (scram_once() < 0) {
            fprintf(stderr, "bench_micro: the RFC 7677 exchange failed\n");
            exit(1);
        }
    return (double)(now_ns() - t0) / 1e3 / n;
}

/* ---- SPSC ring -------------------------------------------------------------------------- */

static fw__ring_t ring; /* static storage: aligned as the ring needs */

static void ring_setup(size_t cap)
{
    fw__ring_free(&ring);
    if (fw__ring_init(&ring, cap, NULL) != 0) {
        fprintf(stderr, "bench_micro: fw__ring_init failed\n");
        exit(1);
    }
}

/* Mops/s */
static double b_ring_1t(bool quick)
{
    ring_setup(1024);
    size_t n = quick ? 2000000 : 20000000;
    uint64_t acc = 0;
    int64_t t0 = now_ns();
    for (size_t i = 0; i < n; i++) {
        void *p;
        fw__ring_push(&ring, (void *)(uintptr_t)(i + 1));
        fw__ring_pop(&ring, &p);
        acc += (uintptr_t)p;
    }
    int64_t t = now_ns() - t0;
    sink += acc;
    return (double)n / ((double)t / 1e9) / 1e6;
}

static double b_ring_1t_batch(bool quick)
{
    ring_setup(1024);
    size_t n = quick ? 4000000 : 40000000;
    void *items[64], *out[64];
    for (int k = 0; k < 64; k++)
        items[k] = (void *)(uintptr_t)(k + 1);
    uint64_t acc = 0;
    int64_t t0 = now_ns();
    for (size_t i = 0; i < n; i += 64) {
        fw__ring_push_many(&ring, items, 64);
        size_t got = fw__ring_pop_many(&ring, out, 64);
        acc += got + (uintptr_t)out[0];
    }
    int64_t t = now_ns() - t0;
    sink += acc;
    return (double)n / ((double)t / 1e9) / 1e6;
}

typedef struct prod_s {
    size_t n;
    bool batch;
} prod_t;

static void *producer(void *arg)
{
    const prod_t *pr = arg;
    if (!pr->batch) {
        for (size_t i = 1; i <= pr->n;)
            if (fw__ring_push(&ring, (void *)(uintptr_t)i))
                i++;
    } else {
        void *items[64];
        for (size_t i = 1; i <= pr->n;) {
            size_t k = pr->n - i + 1 < 64 ? pr->n - i + 1 : 64;
            for (size_t j = 0; j < k; j++)
                items[j] = (void *)(uintptr_t)(i + j);
            i += fw__ring_push_many(&ring, items, k);
        }
    }
    return NULL;
}

static double ring_2t(bool quick, bool batch)
{
    ring_setup(1024);
    prod_t pr = {quick ? 2000000 : 20000000, batch};
    uint64_t acc = 0;
    pthread_t th;
    int64_t t0 = now_ns();
    if (pthread_create(&th, NULL, producer, &pr) != 0) {
        fprintf(stderr, "bench_micro: pthread_create failed\n");
        exit(1);
    }
    size_t got = 0;
    void *out[64];
    while (got < pr.n) {
        size_t k = batch ? fw__ring_pop_many(&ring, out, 64) : fw__ring_pop(&ring, out);
        for (size_t j = 0; j < k; j++)
            acc += (uintptr_t)out[j];
        got += k;
    }
    pthread_join(th, NULL);
    int64_t t = now_ns() - t0;
    uint64_t want = (uint64_t)pr.n * (pr.n + 1) / 2;
    if (acc != want) {
        fprintf(stderr, "bench_micro: ring_2t lost items (%llu != %llu)\n", (unsigned long long)acc,
                (unsigned long long)want);
        exit(1);
    }
    return (double)pr.n / ((double)t / 1e9) / 1e6;
}

static double b_ring_2t(bool quick)
{
    return ring_2t(quick, false);
}

static double b_ring_2t_batch(bool quick)
{
    return ring_2t(quick, true);
}

/* ---- chunker ---------------------------------------------------------------------------- */

/* ns per observation */
static double b_chunker(bool quick)
{
    fw__chunker_opts_t o;
    fw__chunker_opts_init(&o);
    fw__chunker_t c;
    if (fw__chunker_init(&c, &o) != 0)
        exit(1);
    size_t n = quick ? 5000000 : 50000000;
    uint64_t acc = 0;
    int64_t t0 = now_ns();
    for (size_t i = 0; i < n; i++) /* occupancy sweeps 0..63 of 64: grows and shrinks happen */
        acc += fw__chunker_observe(&c, (i >> 8) & 63, 64);
    int64_t t = now_ns() - t0;
    sink += acc + c.grows + c.shrinks;
    return (double)t / (double)n;
}

/* ---- metrics ---------------------------------------------------------------------------- */

static fw__registry_t *reg;
static fw__series_t *counter, *hist;

static void metrics_setup(void)
{
    if (reg != NULL)
        return;
    fw__family_t *fc, *fh;
    static const double bounds[] = {1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60};
    fw__family_def_t dc = {.name = "bench_rows_total",
                           .help = "rows",
                           .type = FW__METRIC_COUNTER,
                           .nlabels = 1,
                           .label_names = {"entity"}};
    fw__family_def_t dh = {.name = "bench_seconds",
                           .help = "seconds",
                           .type = FW__METRIC_HISTOGRAM,
                           .nlabels = 1,
                           .label_names = {"entity"},
                           .bounds = bounds,
                           .nbounds = sizeof(bounds) / sizeof(bounds[0])};
    const char *vals[] = {"bench"};
    if (fw__registry_new(NULL, &reg) != 0 || fw__registry_family(reg, &dc, &fc) != 0 ||
        fw__registry_family(reg, &dh, &fh) != 0 || fw__family_series(fc, vals, &counter) != 0 ||
        fw__family_series(fh, vals, &hist) != 0) {
        fprintf(stderr, "bench_micro: metrics registry setup failed\n");
        exit(1);
    }
}

static double b_metric_inc(bool quick)
{
    metrics_setup();
    size_t n = quick ? 10000000 : 100000000;
    int64_t t0 = now_ns();
    for (size_t i = 0; i < n; i++)
        fw__metric_inc(counter);
    return (double)(now_ns() - t0) / (double)n;
}

static void *inc_thread(void *arg)
{
    size_t n = *(const size_t *)arg;
    for (size_t i = 0; i < n; i++)
        fw__metric_inc(counter);
    return NULL;
}

static double b_metric_inc_2t(bool quick)
{
    metrics_setup();
    size_t n = quick ? 5000000 : 50000000;
    pthread_t th;
    int64_t t0 = now_ns();
    if (pthread_create(&th, NULL, inc_thread, &n) != 0)
        exit(1);
    inc_thread(&n);
    pthread_join(th, NULL);
    return (double)(now_ns() - t0) / (double)n;
}

static double b_hist(bool quick)
{
    metrics_setup();
    size_t n = quick ? 5000000 : 50000000;
    int64_t t0 = now_ns();
    for (size_t i = 0; i < n; i++)
        fw__hist_observe(hist, (double)(i & 1023) * 1e-3);
    return (double)(now_ns() - t0) / (double)n;
}

/* ---- driver ----------------------------------------------------------------------------- */

typedef struct case_s {
    const char *name, *unit, *what;
    double (*fn)(bool quick);
    bool on;
    int n;
    double v[MAX_RUNS];
    double med, min, max;
} case_t;

static case_t cases[] = {
    {"scram_proof",
     "us",
     "one RFC 7677 SCRAM-SHA-256 exchange, 4096 iterations",
     b_scram,
     0,
     0,
     {0},
     0,
     0,
     0},
    {"ring_1t", "Mops/s", "push+pop of one item, one thread", b_ring_1t, 0, 0, {0}, 0, 0, 0},
    {"ring_1t_batch",
     "Mops/s",
     "push_many+pop_many of 64, one thread",
     b_ring_1t_batch,
     0,
     0,
     {0},
     0,
     0,
     0},
    {"ring_2t",
     "Mops/s",
     "producer and consumer threads, one item at a time",
     b_ring_2t,
     0,
     0,
     {0},
     0,
     0,
     0},
    {"ring_2t_batch",
     "Mops/s",
     "producer and consumer threads, batches of up to 64",
     b_ring_2t_batch,
     0,
     0,
     {0},
     0,
     0,
     0},
    {"chunker_observe", "ns/call", "fw__chunker_observe", b_chunker, 0, 0, {0}, 0, 0, 0},
    {"metric_inc", "ns/call", "fw__metric_inc, one thread", b_metric_inc, 0, 0, {0}, 0, 0, 0},
    {"metric_inc_2t",
     "ns/call",
     "fw__metric_inc, two threads on one series",
     b_metric_inc_2t,
     0,
     0,
     {0},
     0,
     0,
     0},
    {"hist_observe", "ns/call", "fw__hist_observe, 12 buckets", b_hist, 0, 0, {0}, 0, 0, 0},
};
#define NCASES (sizeof(cases) / sizeof(cases[0]))

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int runs = 7;
    bool quick = false;
    const char *only = NULL, *json = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (strcmp(argv[i], "--quick") == 0)
            quick = true;
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
            only = argv[++i];
        else if (strcmp(argv[i], "--json") == 0 && i + 1 < argc)
            json = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--runs N] [--quick] [--only NAME,...] [--json OUT]\n",
                    argv[0]);
            return 2;
        }
    }
    if (runs < 1 || runs > MAX_RUNS) {
        fprintf(stderr, "bench_micro: --runs must be 1..%d\n", MAX_RUNS);
        return 2;
    }
    for (size_t c = 0; c < NCASES; c++) {
        if (only == NULL) {
            cases[c].on = true;
            continue;
        }
        size_t len = strlen(cases[c].name);
        for (const char *p = only; *p != '\0'; p += strcspn(p, ","), p += *p == ',')
            if (strncmp(p, cases[c].name, len) == 0 && (p[len] == ',' || p[len] == '\0'))
                cases[c].on = true;
    }
    for (int round = -1; round < runs; round++) /* -1: the warm-up */
        for (size_t c = 0; c < NCASES; c++) {
            if (!cases[c].on)
                continue;
            double v = cases[c].fn(quick);
            if (round >= 0)
                cases[c].v[cases[c].n++] = v;
        }
    char date[64];
    time_t now = time(NULL);
    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    printf("micro benchmarks, %s, %d counted rounds after 1 warm-up, interleaved%s\n\n", date, runs,
           quick ? " (quick sizes)" : "");
    printf("| case | unit | median | min | max | what |\n|---|---|---|---|---|---|\n");
    for (size_t c = 0; c < NCASES; c++) {
        case_t *k = &cases[c];
        if (!k->on)
            continue;
        double s[MAX_RUNS];
        memcpy(s, k->v, sizeof(double) * (size_t)k->n);
        qsort(s, (size_t)k->n, sizeof(double), cmp_double);
        k->min = s[0];
        k->max = s[k->n - 1];
        k->med = k->n % 2 ? s[k->n / 2] : (s[k->n / 2 - 1] + s[k->n / 2]) / 2;
        printf("| %s | %s | %.3f | %.3f | %.3f | %s |\n", k->name, k->unit, k->med, k->min, k->max,
               k->what);
    }
    if (json != NULL) {
        FILE *f = fopen(json, "w");
        if (f == NULL) {
            perror(json);
            return 1;
        }
        fprintf(f,
                "{\"benchmark\": \"micro\", \"date\": \"%s\", \"runs\": %d, \"quick\": %s, "
                "\"cases\": [",
                date, runs, quick ? "true" : "false");
        bool first = true;
        for (size_t c = 0; c < NCASES; c++) {
            case_t *k = &cases[c];
            if (!k->on)
                continue;
            fprintf(f,
                    "%s{\"name\": \"%s\", \"unit\": \"%s\", \"what\": \"%s\", \"median\": %.6g, "
                    "\"min\": %.6g, \"max\": %.6g, \"runs\": [",
                    first ? "" : ", ", k->name, k->unit, k->what, k->med, k->min, k->max);
            first = false;
            for (int i = 0; i < k->n; i++)
                fprintf(f, "%s%.6g", i ? ", " : "", k->v[i]);
            fprintf(f, "]}");
        }
        fprintf(f, "]}\n");
        if (fclose(f) != 0)
            return 1;
    }
    fw__ring_free(&ring);
    fw__registry_free(reg);
    return 0;
}
