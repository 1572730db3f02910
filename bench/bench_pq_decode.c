/* SPDX-License-Identifier: MIT */
/*
 * Micro-benchmark: decoder framing throughput (MB/s, messages/s) over a stream of DataRows.
 *
 *   bench_pq_decode [--input FILE] [--rows N] [--runs R] [--json OUT]
 *
 * The stream is either a recording of what a real server sent (`bench/pq_raw capture` writes one:
 * see docs/benchmarks.md) or, without --input, a synthetic stream shaped like v_bench_1m
 * (one 'T', N DataRows of 250-300 bytes of JSON, 'C', 'Z'). Four paths are timed, interleaved,
 * R times after one warm-up, and reported as median, min and max:
 *   frame        fw__pq_frame() alone: the cost of finding message boundaries
 *   frame+parse  plus fw__pq_parse() and the one-column fast path: what the data path pays
 *   memcpy/64K   copying the stream into a 64 KiB receive buffer, as recv() does
 *   reader/64K   that copy plus the incremental reader, as socket reads would arrive
 * This is a benchmark (meson `benchmark()`), never a test: timings on a shared 2-core machine
 * are noisy, so only medians and ratios from one run mean anything.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct growbuf_s {
    uint8_t *p;
    size_t len, cap;
} growbuf_t;

static void gb_put(growbuf_t *g, const void *src, size_t n)
{
    if (g->len + n > g->cap) {
        size_t cap = g->cap ? g->cap : 1 << 20;
        while (cap < g->len + n)
            cap *= 2;
        g->p = realloc(g->p, cap);
        if (g->p == NULL) {
            perror("realloc");
            exit(2);
        }
        g->cap = cap;
    }
    memcpy(g->p + g->len, src, n);
    g->len += n;
}

static void gb_msg(growbuf_t *g, uint8_t type, const void *body, size_t n)
{
    uint32_t len = (uint32_t)(n + 4);
    uint8_t h[5] = {type, (uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
                    (uint8_t)len};
    gb_put(g, h, 5);
    gb_put(g, body, n);
}

/* A synthetic result shaped like SELECT data FROM v_bench_1m. */
static void synth(growbuf_t *g, long rows)
{
    static const uint8_t rowdesc[] = {0, 1, 'd',  'a',  't',  'a',  0,    0,    0,    0x40, 0, 0, 1,
                                      0, 0, 0x0e, 0xda, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0};
    static const char *const status[] = {"active", "pending", "archived", "blocked"};
    char json[512];
    uint8_t body[520];
    gb_msg(g, 'T', rowdesc, sizeof(rowdesc));
    for (long i = 1; i <= rows; i++) {
        int n = snprintf(json, sizeof(json),
                         "{\"id\": %ld, \"cost\": %ld.%02ld, \"name\": \"item-%ld\", \"tags\": "
                         "[\"t%ld\", \"t%ld\", \"blue\"], \"bucket\": %ld, \"nested\": {\"owner\": "
                         "{\"id\": %ld, \"email\": \"user%ld@example.test\"}, \"created_at\": "
                         "\"2026-01-%02ldT10:%02ld:00+00:00\"}, \"status\": \"%s\", \"priority\": "
                         "%ld}",
                         i, i % 1000, i % 100, i, i % 7, i % 11, i % 10, i % 5000, i % 5000,
                         1 + i % 28, i % 60, status[i % 4], 1 + i % 5);
        body[0] = 0;
        body[1] = 1;
        body[2] = 0;
        body[3] = 0;
        body[4] = (uint8_t)(n >> 8);
        body[5] = (uint8_t)n;
        memcpy(body + 6, json, (size_t)n);
        gb_msg(g, 'D', body, (size_t)n + 6);
    }
    char tag[32];
    int n = snprintf(tag, sizeof(tag), "SELECT %ld", rows);
    gb_msg(g, 'C', tag, (size_t)n + 1);
    gb_msg(g, 'Z', "I", 1);
}

static int load(growbuf_t *g, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "bench_pq_decode: %s: %s\n", path, strerror(errno));
        return -1;
    }
    uint8_t chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        gb_put(g, chunk, n);
    fclose(f);
    return 0;
}

static volatile size_t sink;

/*
 * What the decoder sees in real life is a receive buffer the kernel has just written, so it is in
 * cache. Walking a 280 MB stream in place would instead measure DRAM latency (each header is a
 * dependent load ~280 bytes after the last one). So the frame and parse paths walk a
 * cache-resident window of whole messages (the first WINDOW bytes of the stream) again and again,
 * and the reader path copies each 64 KiB of the stream into a receive buffer first, as recv()
 * would; memcpy/64K times that copy alone, so reader - memcpy is the reader's own cost.
 */
#define WINDOW (192 * 1024)
#define CHUNK  (64 * 1024)

static const uint8_t *g_stream;
static size_t g_len;
static size_t g_window; /* whole messages within the first WINDOW bytes */
static long g_window_msgs;

static void find_window(void)
{
    fw__pq_limits_t lim;
    fw__pq_limits_init(&lim);
    size_t off = 0;
    long msgs = 0;
    for (;;) {
        fw__pq_frame_t f;
        size_t left = g_len - off < WINDOW - off ? g_len - off : WINDOW - off;
        long n = fw__pq_frame(g_stream + off, left, &lim, &f, NULL);
        if (n <= 0)
            break;
        off += (size_t)n;
        msgs++;
        if (off >= WINDOW || off == g_len)
            break;
    }
    g_window = off;
    g_window_msgs = msgs;
}

/* What the data path does with a message: take the one JSON column of a DataRow. */
static int take_row(const fw__pq_msg_t *m)
{
    if (m->type == 'D') {
        fw__pq_col_t c;
        if (fw__pq_datarow_one(m, &c) < 0)
            return -1;
        sink += c.value.len;
    }
    return 0;
}

/* Walks the window until about g_len bytes are done; with `parse`, also parses each message.
 * Inlined with a constant flag, so each path pays only for its own work. */
static inline long walk_window(bool parse)
{
    fw__pq_limits_t lim;
    fw__pq_limits_init(&lim);
    long msgs = 0;
    for (size_t done = 0; done < g_len; done += g_window) {
        size_t off = 0;
        while (off < g_window) {
            fw__pq_frame_t f;
            fw__pq_msg_t m;
            long n = fw__pq_frame(g_stream + off, g_window - off, &lim, &f, NULL);
            if (n <= 0)
                return -1;
            if (parse && (fw__pq_parse(f.type, f.body, f.len, &m) < 0 || take_row(&m) < 0))
                return -1;
            sink += f.len;
            off += (size_t)n;
            msgs++;
        }
    }
    return msgs;
}

/* Each path processes about g_len bytes and returns what it counted, or -1 on an error. */
static long run_frame(void)
{
    return walk_window(false);
}

static long run_parse(void)
{
    return walk_window(true);
}

static uint8_t recvbuf[CHUNK];

static long run_memcpy(void)
{
    long chunks = 0;
    for (size_t off = 0; off < g_len; off += CHUNK) {
        size_t n = g_len - off < CHUNK ? g_len - off : CHUNK;
        memcpy(recvbuf, g_stream + off, n);
        sink += recvbuf[n - 1];
        chunks++;
    }
    return chunks;
}

static long run_reader(void)
{
    fw__pq_reader_t r;
    fw__pq_msg_t m;
    long msgs = 0;
    fw__pq_reader_init(&r, NULL, NULL);
    for (size_t off = 0; off < g_len; off += CHUNK) {
        size_t n = g_len - off < CHUNK ? g_len - off : CHUNK;
        memcpy(recvbuf, g_stream + off, n);
        if (fw__pq_reader_feed(&r, recvbuf, n) < 0)
            return -1;
        int rc;
        while ((rc = fw__pq_reader_next(&r, &m)) == 1) {
            if (take_row(&m) < 0)
                return -1;
            msgs++;
        }
        if (rc < 0)
            return -1;
    }
    fw__pq_reader_free(&r);
    return msgs;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    const char *input = NULL, *json_out = NULL;
    long rows = 1000000;
    int runs = 7;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--input") == 0 && i + 1 < argc)
            input = argv[++i];
        else if (strcmp(argv[i], "--rows") == 0 && i + 1 < argc)
            rows = atol(argv[++i]);
        else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (strcmp(argv[i], "--json") == 0 && i + 1 < argc)
            json_out = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--input FILE] [--rows N] [--runs R] [--json OUT]\n",
                    argv[0]);
            return 2;
        }
    }
    if (runs < 1 || runs > 1000 || rows < 1) {
        fprintf(stderr, "bench_pq_decode: --runs must be 1..1000 and --rows positive\n");
        return 2;
    }

    growbuf_t g = {NULL, 0, 0};
    if (input != NULL ? load(&g, input) < 0 : (synth(&g, rows), 0))
        return 1;
    g_stream = g.p;
    g_len = g.len;
    find_window();
    if (g_window == 0) {
        fprintf(stderr, "bench_pq_decode: the stream does not start with a whole message\n");
        return 1;
    }
    size_t passes = (g_len + g_window - 1) / g_window;

    static struct path_s {
        const char *name;
        const char *unit; /* what "items" counts */
        long (*fn)(void);
        long expect;
        double bps[1000], ips[1000];
    } paths[] = {{"frame (cache-resident window)", "messages", run_frame, 0, {0}, {0}},
                 {"frame+parse (cache-resident window)", "messages", run_parse, 0, {0}, {0}},
                 {"memcpy/64K (the recv() copy alone)", "chunks", run_memcpy, 0, {0}, {0}},
                 {"reader/64K (copy + incremental reader)", "messages", run_reader, 0, {0}, {0}}};
    const size_t npaths = sizeof(paths) / sizeof(paths[0]);
    paths[0].expect = paths[1].expect = (long)passes * g_window_msgs;
    paths[2].expect = (long)((g_len + CHUNK - 1) / CHUNK);
    paths[3].expect = -2; /* set from the frame walk below */
    {
        fw__pq_limits_t lim;
        fw__pq_limits_init(&lim);
        long msgs = 0;
        for (size_t off = 0; off < g_len;) {
            fw__pq_frame_t f;
            long n = fw__pq_frame(g_stream + off, g_len - off, &lim, &f, NULL);
            if (n <= 0) {
                fprintf(stderr, "bench_pq_decode: the stream does not decode at %zu\n", off);
                return 1;
            }
            off += (size_t)n;
            msgs++;
        }
        paths[3].expect = msgs;
    }
    size_t processed[4] = {passes * g_window, passes * g_window, g_len, g_len};

    for (size_t k = 0; k < npaths; k++) { /* warm-up, and every path must see what it should */
        long got = paths[k].fn();
        if (got != paths[k].expect) {
            fprintf(stderr, "bench_pq_decode: %s saw %ld %s, expected %ld\n", paths[k].name, got,
                    paths[k].unit, paths[k].expect);
            return 1;
        }
    }
    for (int r = 0; r < runs; r++) { /* interleaved: A B C D A B C D ... */
        for (size_t k = 0; k < npaths; k++) {
            double t0 = now_s();
            long items = paths[k].fn();
            double dt = now_s() - t0;
            if (items != paths[k].expect)
                return 1;
            paths[k].bps[r] = (double)processed[k] / dt;
            paths[k].ips[r] = (double)items / dt;
        }
    }

    long nmsgs = paths[3].expect;
    printf("decoder throughput: %s, %.1f MB, %ld messages (%.0f bytes each on average), %d runs\n"
           "median [min, max]; cache-resident window %zu bytes (%ld messages)\n\n",
           input ? input : "synthetic v_bench_1m-shaped stream", (double)g_len / 1e6, nmsgs,
           (double)g_len / (double)nmsgs, runs, g_window, g_window_msgs);
    printf("| path | MB/s | messages/s | ns/message |\n|---|---|---|---|\n");
    FILE *jf = json_out ? fopen(json_out, "w") : NULL;
    if (json_out != NULL && jf == NULL) {
        fprintf(stderr, "bench_pq_decode: %s: %s\n", json_out, strerror(errno));
        return 1;
    }
    if (jf)
        fprintf(jf,
                "{\"benchmark\": \"pq_decode\", \"input\": \"%s\", \"bytes\": %zu, "
                "\"messages\": %ld, \"runs\": %d, \"paths\": [",
                input ? "recorded" : "synthetic", g_len, nmsgs, runs);
    double avg_msg = (double)g_len / (double)nmsgs;
    for (size_t k = 0; k < npaths; k++) {
        qsort(paths[k].bps, (size_t)runs, sizeof(double), cmp_double);
        double med = paths[k].bps[runs / 2], lo = paths[k].bps[0], hi = paths[k].bps[runs - 1];
        /* messages/s on the same footing for every path: bytes/s over the average message */
        double mps = med / avg_msg, mps_lo = lo / avg_msg, mps_hi = hi / avg_msg;
        printf("| %s | %.0f [%.0f, %.0f] | %.1fM [%.1fM, %.1fM] | %.1f |\n", paths[k].name,
               med / 1e6, lo / 1e6, hi / 1e6, mps / 1e6, mps_lo / 1e6, mps_hi / 1e6, 1e9 / mps);
        if (jf)
            fprintf(jf,
                    "%s{\"path\": \"%s\", \"mb_per_s\": {\"median\": %.1f, \"min\": %.1f, "
                    "\"max\": %.1f}, \"messages_per_s\": {\"median\": %.0f, \"min\": %.0f, "
                    "\"max\": %.0f}, \"ns_per_message\": %.2f}",
                    k ? ", " : "", paths[k].name, med / 1e6, lo / 1e6, hi / 1e6, mps, mps_lo,
                    mps_hi, 1e9 / mps);
    }
    if (jf) {
        fprintf(jf, "]}\n");
        fclose(jf);
    }
    free(g.p);
    return 0;
}
