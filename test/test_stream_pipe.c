/* SPDX-License-Identifier: MIT */
/*
 * The pipe (stream/pipe.h) without any loop: receive slabs and the byte budget, chunks and the
 * two rings, the consumer's next / take / release / drain, reclaim, statistics, argument and
 * allocation failures at every allocation point (STYLE 25), and two threads handing two million
 * rows through a small budget, which is the case ThreadSanitizer must find clean (STYLE 18, 29).
 */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fw_util.h"
#include "pipe.h"

#define KIB ((size_t)1024)

/* ---- an allocator hook that counts, and fails the k-th call on request ------------------ */

/*
 * The hook hands out memory HOOK_SKEW bytes past what malloc returned, so every block is 8 bytes
 * off malloc's 16-byte alignment: the pipe must align its slabs, chunks and rings itself
 * (fw__aligned_alloc), and UBSan's alignment check sees any access that relies on more.
 */
#define HOOK_SKEW 8

typedef struct counting_alloc_s {
    int allocs;  /* calls, failed ones included */
    int ok;      /* calls that returned memory */
    int frees;   /* non-NULL frees */
    int fail_at; /* 1-based call to fail; 0: never */
    bool fail_all;
    size_t last_size;
} counting_alloc_t;

static void *counting_malloc_fn(void *ud, size_t size)
{
    counting_alloc_t *c = ud;
    c->allocs++;
    c->last_size = size;
    if (c->fail_all || c->allocs == c->fail_at || size > SIZE_MAX - HOOK_SKEW)
        return NULL;
    unsigned char *p = malloc(size + HOOK_SKEW);
    if (p == NULL)
        return NULL;
    c->ok++;
    return p + HOOK_SKEW;
}

static void counting_free_fn(void *ud, void *p)
{
    counting_alloc_t *c = ud;
    if (p == NULL)
        return;
    c->frees++;
    free((unsigned char *)p - HOOK_SKEW);
}

/* ---- helpers ----------------------------------------------------------------------------- */

/* Static: a failed assertion longjmps out of the test, and the next test re-initialises it. */
static fw__pipe_t g_pipe;

static fw__pipe_opts_t opts(size_t slab, size_t max, uint32_t rows, uint32_t cap, size_t ring)
{
    fw__pipe_opts_t o = {
        .slab_size = slab,
        .max_memory = max,
        .chunk_rows = rows,
        .chunk_cap = cap,
        .ring_cap = ring,
    };
    return o;
}

static fw__pipe_t *pipe_new(size_t slab, size_t max, uint32_t rows, uint32_t cap, size_t ring,
                            const fw_allocator_t *hook)
{
    fw__pipe_opts_t o = opts(slab, max, rows, cap, ring);
    assert_int_equal(fw__pipe_init(&g_pipe, &o, hook), 0);
    return &g_pipe;
}

static fw__pipe_stats_t stats(const fw__pipe_t *p)
{
    fw__pipe_stats_t s;
    memset(&s, 0xa5, sizeof(s));
    fw__pipe_stats(p, &s);
    return s;
}

/* Bytes of every slab the pipe owns, walked through its list: what it really has allocated. */
static size_t slab_bytes_owned(const fw__pipe_t *p)
{
    size_t n = 0;
    for (const fw__slab_t *s = p->all; s != NULL; s = s->all_next)
        n += s->cap;
    return n;
}

static size_t pool_len(const fw__pipe_t *p)
{
    size_t n = 0;
    for (const fw__slab_t *s = p->pool; s != NULL; s = s->next)
        n++;
    return n;
}

/* Writes `text` into the slab and queues it as a row. Returns what fw__pipe_add returned. */
static int add_text(fw__pipe_t *p, fw__slab_t *s, const char *text)
{
    size_t n = strlen(text);
    assert_true(s->cap - s->used >= n);
    char *at = (char *)s->data + s->used;
    memcpy(at, text, n);
    int rc = fw__pipe_add(p, s, at, n, false);
    if (rc == FW__PIPE_OK)
        s->used += n;
    return rc;
}

static void expect_row(fw__pipe_t *p, const char *text)
{
    fw_row_t row;
    assert_true(fw__pipe_next(p, &row));
    assert_false(row.is_null);
    assert_int_equal(row.len, strlen(text));
    assert_memory_equal(row.json, text, row.len);
}

/* ---- init -------------------------------------------------------------------------------- */

static void test_pipe_init_refuses_invalid_options(void **state)
{
    (void)state;
    static const struct {
        const char *what;
        size_t slab, max;
        uint32_t rows, cap;
        size_t ring;
    } cases[] = {
        {"slab_size 0", 0, 64 * KIB, 4, 4, 8},
        {"max_memory 0", 4 * KIB, 0, 4, 4, 8},
        {"chunk_rows 0", 4 * KIB, 64 * KIB, 0, 4, 8},
        {"chunk_rows above chunk_cap", 4 * KIB, 64 * KIB, 5, 4, 8},
        {"ring_cap 0", 4 * KIB, 64 * KIB, 4, 4, 0},
        {"chunk_cap above UINT32_MAX / 2", 4 * KIB, 64 * KIB, 4, UINT32_MAX / 2 + 1, 8},
        {"chunk_cap UINT32_MAX", 4 * KIB, 64 * KIB, 4, UINT32_MAX, 8},
    };
    counting_alloc_t c = {0};
    fw_allocator_t hook = {counting_malloc_fn, NULL, counting_free_fn, &c};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fw__pipe_opts_t o =
            opts(cases[i].slab, cases[i].max, cases[i].rows, cases[i].cap, cases[i].ring);
        int rc = fw__pipe_init(&g_pipe, &o, &hook);
        if (rc != FW_EINVAL)
            fail_msg("%s: %d", cases[i].what, rc);
        fw__pipe_free(&g_pipe); /* safe after a failure */
    }
    assert_int_equal(c.allocs, 0);

    /* No options, no pipe, a hook missing a function. */
    fw__pipe_opts_t o = opts(4 * KIB, 64 * KIB, 4, 4, 8);
    assert_int_equal(fw__pipe_init(&g_pipe, NULL, &hook), FW_EINVAL);
    fw__pipe_free(&g_pipe);
    assert_int_equal(fw__pipe_init(NULL, &o, &hook), FW_EINVAL);
    fw_allocator_t half = {counting_malloc_fn, NULL, NULL, &c};
    assert_int_equal(fw__pipe_init(&g_pipe, &o, &half), FW_EINVAL);
    fw__pipe_free(&g_pipe);
    half = (fw_allocator_t){NULL, NULL, counting_free_fn, &c};
    assert_int_equal(fw__pipe_init(&g_pipe, &o, &half), FW_EINVAL);
    fw__pipe_free(&g_pipe);
    assert_int_equal(c.allocs, 0);
    fw__pipe_free(NULL);

    /* Storage that breaks the struct's cache-line alignment: refused, never touched. */
    static alignas(FW__CACHE_LINE) unsigned char raw[sizeof(fw__pipe_t) + FW__CACHE_LINE];
    memset(raw, 0x5a, sizeof(raw));
    for (size_t off = sizeof(void *); off < FW__CACHE_LINE; off += sizeof(void *)) {
        assert_int_equal(fw__pipe_init((fw__pipe_t *)(void *)(raw + off), &o, &hook), FW_EINVAL);
        for (size_t k = 0; k < sizeof(raw); k++)
            assert_int_equal(raw[k], 0x5a);
    }
    assert_int_equal(c.allocs, 0);
}

static void test_pipe_init_reports_ring_allocation_failures(void **state)
{
    (void)state;
    fw__pipe_opts_t o = opts(4 * KIB, 64 * KIB, 4, 4, 8);
    /* The full ring, then the empty ring: either failing gives FW_ENOMEM and leaks nothing. */
    for (int k = 1; k <= 2; k++) {
        counting_alloc_t c = {.fail_at = k};
        fw_allocator_t hook = {counting_malloc_fn, NULL, counting_free_fn, &c};
        assert_int_equal(fw__pipe_init(&g_pipe, &o, &hook), FW_ENOMEM);
        assert_int_equal(c.allocs, k);
        fw__pipe_free(&g_pipe);
        assert_int_equal(c.frees, c.ok);
    }
    /* A ring too large to represent. */
    counting_alloc_t c = {0};
    fw_allocator_t hook = {counting_malloc_fn, NULL, counting_free_fn, &c};
    o.ring_cap = SIZE_MAX;
    assert_int_equal(fw__pipe_init(&g_pipe, &o, &hook), FW_ENOMEM);
    fw__pipe_free(&g_pipe);
    assert_int_equal(c.frees, c.ok);
}

static void test_pipe_init_sizes_the_rings_so_a_release_never_fails(void **state)
{
    (void)state;
    static const struct {
        size_t asked, full;
    } cases[] = {{1, 2}, {2, 2}, {3, 4}, {8, 8}, {9, 16}, {64, 64}, {100, 128}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        counting_alloc_t c = {0};
        fw_allocator_t hook = {counting_malloc_fn, NULL, counting_free_fn, &c};
        fw__pipe_t *p = pipe_new(4 * KIB, 64 * KIB, 4, 8, cases[i].asked, &hook);
        assert_int_equal(c.allocs, 2); /* the two rings, nothing else up front */
        assert_int_equal(fw__ring_capacity(&p->full), cases[i].full);
        /* Up to a full ring, as many again held by the consumer, and the open chunk. */
        assert_int_equal(p->max_chunks, 2 * cases[i].full + 1);
        assert_true(fw__ring_capacity(&p->empty) >= p->max_chunks);
        fw__pipe_stats_t s = stats(p);
        assert_int_equal(s.chunk_rows, 4);
        assert_int_equal(s.rows_buffered, 0);
        assert_int_equal(s.chunks_buffered, 0);
        assert_int_equal(s.bytes_held, 0);
        assert_int_equal(fw__pipe_outstanding(p), 0);
        assert_int_equal(fw__pipe_released(p), 0);
        fw__pipe_free(p);
        assert_int_equal(c.frees, 2);
    }
}

/* ---- slabs and the budget ---------------------------------------------------------------- */

/* A shared slab cache as lib/ keeps one (fw__pipe_opts_t.slab_get / slab_put): up to 3 blocks. */
static struct {
    void *block[3];
    size_t n, bytes, gets, hits, puts, refused;
} g_cache;

static void *cache_get(size_t bytes)
{
    g_cache.gets++;
    if (g_cache.n == 0 || g_cache.bytes != bytes)
        return NULL;
    g_cache.hits++;
    return g_cache.block[--g_cache.n];
}

static bool cache_put(void *block, size_t bytes)
{
    if (g_cache.n == 3) {
        g_cache.refused++;
        return false;
    }
    g_cache.bytes = bytes;
    g_cache.block[g_cache.n++] = block;
    g_cache.puts++;
    return true;
}

static void test_pipe_standard_slabs_go_to_the_shared_cache_and_come_back_from_it(void **state)
{
    (void)state;
    memset(&g_cache, 0, sizeof(g_cache));
    counting_alloc_t c = {0};
    fw_allocator_t hook = {counting_malloc_fn, NULL, counting_free_fn, &c};
    fw__pipe_opts_t o = opts(4 * KIB, 64 * KIB, 4, 4, 8);
    o.slab_get = cache_get;
    o.slab_put = cache_put;
    /* A first stream: two standard slabs and a big one, all allocated (the cache is empty). */
    assert_int_equal(fw__pipe_init(&g_pipe, &o, &hook), 0);
    fw__slab_t *a, *b, *big;
    assert_int_equal(fw__pipe_slab_get(&g_pipe, 100, &a), FW__PIPE_OK);
    assert_int_equal(fw__pipe_slab_get(&g_pipe, 100, &b), FW__PIPE_OK);
    assert_int_equal(fw__pipe_slab_get(&g_pipe, 6 * KIB, &big), FW__PIPE_OK);
    assert_true(big->big);
    assert_int_equal(g_cache.gets, 2); /* asked for the standard ones only */
    assert_int_equal(g_cache.hits, 0);
    size_t allocs = c.allocs; /* two rings, three slabs */
    assert_int_equal(allocs, 5);
    fw__pipe_slab_unref(&g_pipe, a);
    fw__pipe_slab_unref(&g_pipe, b);
    fw__pipe_slab_unref(&g_pipe, big);
    /* Its end: the standard slabs go to the cache (not freed), the big one and the rings are
     * freed. */
    fw__pipe_free(&g_pipe);
    assert_int_equal(g_cache.puts, 2);
    assert_int_equal(g_cache.bytes, sizeof(fw__slab_t) + 4 * KIB);
    assert_int_equal(c.frees, 3);
    /* The next stream takes them back before allocating: its third slab is a new one. */
    assert_int_equal(fw__pipe_init(&g_pipe, &o, &hook), 0);
    fw__slab_t *x, *y, *z;
    assert_int_equal(fw__pipe_slab_get(&g_pipe, 1, &x), FW__PIPE_OK);
    assert_int_equal(fw__pipe_slab_get(&g_pipe, 1, &y), FW__PIPE_OK);
    assert_true((x == a && y == b) || (x == b && y == a));
    assert_int_equal(x->used, 0);
    assert_int_equal(x->refs, 1);
    assert_int_equal(g_cache.hits, 2);
    assert_int_equal(c.allocs, allocs + 2); /* the rings only */
    assert_int_equal(fw__pipe_slab_get(&g_pipe, 1, &z), FW__PIPE_OK);
    assert_int_equal(c.allocs, allocs + 3);
    assert_int_equal(stats(&g_pipe).bytes_held, 12 * KIB); /* the budget counts them all */
    fw__pipe_slab_unref(&g_pipe, x);
    fw__pipe_slab_unref(&g_pipe, y);
    fw__pipe_slab_unref(&g_pipe, z);
    fw__pipe_free(&g_pipe);
    assert_int_equal(g_cache.n, 3);
    /* A full cache refuses: the pipe frees what it does not take. */
    assert_int_equal(fw__pipe_init(&g_pipe, &o, &hook), 0);
    for (int i = 0; i < 4; i++) {
        fw__slab_t *s4;
        assert_int_equal(fw__pipe_slab_get(&g_pipe, 1, &s4), FW__PIPE_OK);
        fw__pipe_slab_unref(&g_pipe, s4); /* pooled in the pipe, then reused */
    }
    fw__slab_t *s1, *s2, *s3, *s4;
    assert_int_equal(fw__pipe_slab_get(&g_pipe, 1, &s1), FW__PIPE_OK);
    assert_int_equal(fw__pipe_slab_get(&g_pipe, 1, &s2), FW__PIPE_OK);
    assert_int_equal(fw__pipe_slab_get(&g_pipe, 1, &s3), FW__PIPE_OK);
    assert_int_equal(fw__pipe_slab_get(&g_pipe, 1, &s4), FW__PIPE_OK);
    fw__pipe_slab_unref(&g_pipe, s1);
    fw__pipe_slab_unref(&g_pipe, s2);
    fw__pipe_slab_unref(&g_pipe, s3);
    fw__pipe_slab_unref(&g_pipe, s4);
    fw__pipe_free(&g_pipe);
    assert_int_equal(g_cache.n, 3);
    assert_int_equal(g_cache.refused, 1);
    /* Every block is either freed or in the cache, and the cache's go back with the hook. */
    while (g_cache.n > 0)
        fw__aligned_free(&hook, g_cache.block[--g_cache.n]);
    assert_int_equal(c.allocs, c.frees);
}

static void test_pipe_standard_slabs_return_to_the_pool_and_are_reused(void **state)
{
    (void)state;
    counting_alloc_t c = {0};
    fw_allocator_t hook = {counting_malloc_fn, NULL, counting_free_fn, &c};
    fw__pipe_t *p = pipe_new(4 * KIB, 64 * KIB, 4, 4, 8, &hook);
    fw__slab_t *a = NULL, *b = NULL;
    /* Any need up to the slab size gives a standard slab. */
    const size_t needs[] = {0, 1, 100, 4 * KIB};
    for (size_t i = 0; i < sizeof(needs) / sizeof(needs[0]); i++) {
        assert_int_equal(fw__pipe_slab_get(p, needs[i], &a), FW__PIPE_OK);
        assert_non_null(a);
        assert_int_equal(a->cap, 4 * KIB);
        assert_false(a->big);
        assert_int_equal(a->refs, 1);
        assert_int_equal(a->used, 0);
        assert_int_equal(((uintptr_t)a->data) % 16, 0);
        assert_int_equal(stats(p).bytes_held, 4 * KIB);
        a->used = 17; /* dirty it: the pool must hand it back clean */
        fw__pipe_slab_unref(p, a);
        assert_int_equal(stats(p).bytes_held, 0);
        assert_int_equal(p->pooled, 4 * KIB);
        assert_int_equal(pool_len(p), 1);
    }
    assert_int_equal(c.allocs, 3); /* two rings and one slab, reused four times */

    /* The pooled slab comes back first; a second one is allocated next to it. */
    fw__slab_t *first = a;
    assert_int_equal(fw__pipe_slab_get(p, 10, &a), FW__PIPE_OK);
    assert_ptr_equal(a, first);
    assert_int_equal(a->used, 0);
    assert_int_equal(p->pooled, 0);
    assert_int_equal(fw__pipe_slab_get(p, 10, &b), FW__PIPE_OK);
    assert_ptr_not_equal(a, b);
    assert_int_equal(c.allocs, 4);
    assert_int_equal(stats(p).bytes_held, 8 * KIB);

    /* Extra references keep a slab held until the last one goes. */
    a->refs += 2;
    fw__pipe_slab_unref(p, a);
    fw__pipe_slab_unref(p, a);
    assert_int_equal(stats(p).bytes_held, 8 * KIB);
    assert_int_equal(pool_len(p), 0);
    fw__pipe_slab_unref(p, a);
    fw__pipe_slab_unref(p, b);
    assert_int_equal(stats(p).bytes_held, 0);
    assert_int_equal(pool_len(p), 2);
    assert_int_equal(slab_bytes_owned(p), 8 * KIB);
    fw__pipe_free(p);
    assert_int_equal(c.frees, c.ok);
}

/* The size a get of `need` asks the budget for (pipe.h): a standard slab, or a big one rounded
 * up to whole slab sizes unless that passes the budget. */
static size_t slab_size_for(size_t slab, size_t max, size_t need)
{
    if (need <= slab)
        return slab;
    size_t k = need / slab + (need % slab != 0);
    if (k > SIZE_MAX / slab || k * slab > max)
        return need;
    return k * slab;
}

static void test_pipe_big_slab_is_rounded_to_whole_slabs_and_reused(void **state)
{
    (void)state;
    static const struct {
        size_t slab, max, need, cap;
    } cases[] = {
        {4 * KIB, 64 * KIB, 4 * KIB + 1, 8 * KIB},
        {4 * KIB, 64 * KIB, 10000, 12 * KIB},
        {4 * KIB, 64 * KIB, 60 * KIB + 1, 64 * KIB},
        {4 * KIB, 64 * KIB, 64 * KIB, 64 * KIB},
        {4 * KIB, 64 * KIB + 100, 64 * KIB + 50, 64 * KIB + 50}, /* rounding would pass it */
        {1000, 3500, 3001, 3001},
        {1000, 3500, 2001, 3000},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        counting_alloc_t c = {0};
        fw_allocator_t hook = {counting_malloc_fn, NULL, counting_free_fn, &c};
        fw__pipe_t *p = pipe_new(cases[i].slab, cases[i].max, 4, 4, 8, &hook);
        fw__slab_t *s = NULL, *again = NULL;
        assert_int_equal(fw__pipe_slab_get(p, cases[i].need, &s), FW__PIPE_OK);
        assert_true(s->big);
        assert_int_equal(s->cap, cases[i].cap);
        assert_int_equal(s->refs, 1);
        assert_int_equal(s->used, 0);
        assert_int_equal(c.last_size, sizeof(fw__slab_t) + cases[i].cap + FW__ALIGNED_EXTRA(16));
        assert_int_equal((uintptr_t)s->data % 16, 0); /* though the hook's block is not */
        assert_int_equal(stats(p).bytes_held, cases[i].cap);
        memset(s->data, 0xee, s->cap); /* all of it is ours (ASan checks) */
        s->refs++;                     /* a chunk points in */
        fw__pipe_slab_unref(p, s);
        assert_int_equal(stats(p).bytes_held, cases[i].cap);
        fw__pipe_slab_unref(p, s); /* the last reference: cached, not freed */
        assert_int_equal(stats(p).bytes_held, 0);
        assert_int_equal(p->pooled, cases[i].cap);
        assert_int_equal(pool_len(p), 0); /* not with the standard slabs */
        /* A row of a similar size reuses it without allocating. */
        int allocs = c.allocs;
        s->used = 3;
        assert_int_equal(fw__pipe_slab_get(p, cases[i].need, &again), FW__PIPE_OK);
        assert_ptr_equal(again, s);
        assert_int_equal(again->used, 0);
        assert_int_equal(again->refs, 1);
        assert_int_equal(c.allocs, allocs);
        assert_int_equal(p->pooled, 0);
        fw__pipe_slab_unref(p, again);
        assert_int_equal(slab_bytes_owned(p), cases[i].cap);
        fw__pipe_free(p);
        assert_int_equal(c.frees, c.ok);
    }
}

static void test_pipe_cached_big_slabs_are_reused_best_fit(void **state)
{
    (void)state;
    counting_alloc_t c = {0};
    fw_allocator_t hook = {counting_malloc_fn, NULL, counting_free_fn, &c};
    fw__pipe_t *p = pipe_new(4 * KIB, 64 * KIB, 4, 4, 8, &hook);
    fw__slab_t *b8, *b12, *b20, *s;
    assert_int_equal(fw__pipe_slab_get(p, 20 * KIB, &b20), FW__PIPE_OK);
    assert_int_equal(fw__pipe_slab_get(p, 8 * KIB, &b8), FW__PIPE_OK);
    assert_int_equal(fw__pipe_slab_get(p, 12 * KIB, &b12), FW__PIPE_OK);
    fw__pipe_slab_unref(p, b20);
    fw__pipe_slab_unref(p, b8);
    fw__pipe_slab_unref(p, b12);
    assert_int_equal(p->pooled, 40 * KIB);
    int allocs = c.allocs;
    /* The smallest cached slab that holds the need. */
    assert_int_equal(fw__pipe_slab_get(p, 9 * KIB, &s), FW__PIPE_OK);
    assert_ptr_equal(s, b12);
    fw__pipe_slab_unref(p, s);
    assert_int_equal(fw__pipe_slab_get(p, 5 * KIB, &s), FW__PIPE_OK);
    assert_ptr_equal(s, b8);
    fw__slab_t *t;
    assert_int_equal(fw__pipe_slab_get(p, 5 * KIB, &t), FW__PIPE_OK);
    assert_ptr_equal(t, b12);
    assert_int_equal(c.allocs, allocs);
    fw__pipe_slab_unref(p, s);
    fw__pipe_slab_unref(p, t);
    /* A standard slab never takes a big one. */
    assert_int_equal(fw__pipe_slab_get(p, 1, &s), FW__PIPE_OK);
    assert_false(s->big);
    assert_int_equal(s->cap, 4 * KIB);
    assert_int_equal(c.allocs, allocs + 1);
    fw__pipe_slab_unref(p, s);

    /* Cached slabs count against the budget like held ones: standard slabs allocated later
     * make them go, big ones first; what is left is still reused. */
    fw__slab_t *hold[11];
    for (int k = 0; k < 11; k++)
        assert_int_equal(fw__pipe_slab_get(p, 1, &hold[k]), FW__PIPE_OK);
    assert_int_equal(stats(p).bytes_held, 44 * KIB);
    assert_true(slab_bytes_owned(p) <= 64 * KIB);
    assert_int_equal(slab_bytes_owned(p), p->held + p->pooled);
    allocs = c.allocs;
    assert_int_equal(fw__pipe_slab_get(p, 13 * KIB, &s), FW__PIPE_OK);
    assert_true(s->big && s->cap >= 13 * KIB);
    assert_true(p->held <= 64 * KIB);
    assert_int_equal(c.allocs, allocs); /* the 20 KiB one was still cached */
    fw__pipe_slab_unref(p, s);
    for (int k = 0; k < 11; k++)
        fw__pipe_slab_unref(p, hold[k]);
    assert_int_equal(stats(p).bytes_held, 0);
    fw__pipe_free(p);
    assert_int_equal(c.frees, c.ok);
}

/* A model of the budget: every get is FW__PIPE_FULL exactly when held + size > max_memory (size
 * as pipe.h defines it), held never exceeds it, and neither do all the slabs the pipe owns
 * (held + pooled). */
static void test_pipe_budget_is_full_exactly_when_held_plus_size_exceeds_it(void **state)
{
    (void)state;
    static const struct {
        size_t slab, max;
    } budgets[] = {{4 * KIB, 16 * KIB}, {4 * KIB, 16 * KIB + 4095}, {4 * KIB, 16 * KIB + 1},
                   {1000, 3500},        {4 * KIB, 4 * KIB},         {64, 64 * KIB}};
    for (size_t b = 0; b < sizeof(budgets) / sizeof(budgets[0]); b++) {
        counting_alloc_t c = {0};
        fw_allocator_t hook = {counting_malloc_fn, NULL, counting_free_fn, &c};
        size_t slab = budgets[b].slab, max = budgets[b].max;
        fw__pipe_t *p = pipe_new(slab, max, 4, 4, 8, &hook);
        fw__slab_t *live[256];
        size_t nlive = 0, held = 0;
        uint64_t rng = 0x9e3779b97f4a7c15ull ^ b;
        for (int step = 0; step < 4000; step++) {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            bool get = nlive == 0 || (rng % 3 != 0 && nlive < 256);
            if (get) {
                /* Mostly standard; a few big ones, up to one past the whole budget. */
                size_t need;
                switch (rng >> 8 & 7) {
                case 0:
                    need = slab + 1 + (size_t)(rng >> 16) % max;
                    break;
                case 1:
                    need = max;
                    break;
                case 2:
                    need = max + 1;
                    break;
                default:
                    need = (size_t)(rng >> 16) % (slab + 1);
                    break;
                }
                size_t size = slab_size_for(slab, max, need);
                fw__slab_t *s = (fw__slab_t *)(uintptr_t)1;
                int rc = fw__pipe_slab_get(p, need, &s);
                if (held + size > max) {
                    if (rc != FW__PIPE_FULL)
                        fail_msg("budget %zu: held %zu + %zu should be full, got %d", max, held,
                                 size, rc);
                    assert_null(s);
                } else {
                    if (rc != FW__PIPE_OK)
                        fail_msg("budget %zu: held %zu + %zu fits, got %d", max, held, size, rc);
                    /* A cached big slab may be larger than asked, never past the budget. */
                    assert_true(s->cap >= size);
                    assert_true(s->cap == size || s->big);
                    assert_true(held + s->cap <= max);
                    assert_int_equal(s->big, need > slab);
                    live[nlive++] = s;
                    held += s->cap;
                }
            } else {
                size_t k = (size_t)(rng >> 20) % nlive;
                held -= live[k]->cap;
                fw__pipe_slab_unref(p, live[k]);
                live[k] = live[--nlive];
            }
            assert_int_equal(p->held, held);
            assert_int_equal(stats(p).bytes_held, held);
            assert_true(held <= max);
            assert_int_equal(slab_bytes_owned(p), p->held + p->pooled);
            assert_true(p->held + p->pooled <= max);
        }
        while (nlive > 0)
            fw__pipe_slab_unref(p, live[--nlive]);
        assert_int_equal(stats(p).bytes_held, 0);
        fw__pipe_free(p);
        assert_int_equal(c.frees, c.ok);
    }
}

/* The arithmetic of the budget test cannot wrap: a need near SIZE_MAX is over any budget. */
static void test_pipe_budget_check_does_not_wrap_for_a_huge_need(void **state)
{
    (void)state;
    counting_alloc_t c = {0};
    fw_allocator_t hook = {counting_malloc_fn, NULL, counting_free_fn, &c};
    fw__pipe_t *p = pipe_new(4 * KIB, 64 * KIB, 4, 4, 8, &hook);
    fw__slab_t *held = NULL, *s = NULL;
    assert_int_equal(fw__pipe_slab_get(p, 1, &held), FW__PIPE_OK);
    int allocs = c.allocs;
    /* held (4 KiB) + need wraps to a small number in size_t arithmetic. */
    const size_t needs[] = {SIZE_MAX, SIZE_MAX - 4 * KIB + 1, SIZE_MAX - 4 * KIB + 100,
                            SIZE_MAX / 2 + 1, 64 * KIB + 1};
    char why[512] = "";
    size_t at = 0;
    for (size_t i = 0; i < sizeof(needs) / sizeof(needs[0]); i++) {
        int before = c.allocs;
        int rc = fw__pipe_slab_get(p, needs[i], &s);
        assert_null(s);
        if (rc != FW__PIPE_FULL && at < sizeof(why))
            at += (size_t)snprintf(why + at, sizeof(why) - at,
                                   "[need %zu: got %d, %d allocation(s) tried] ", needs[i], rc,
                                   c.allocs - before);
    }
    if (why[0] != '\0')
        fail_msg("with 4 KiB held of a 64 KiB budget, expected FW__PIPE_FULL: %s", why);
    assert_int_equal(c.allocs, allocs); /* the allocator was never asked */
    assert_int_equal(stats(p).bytes_held, 4 * KIB);
    fw__pipe_slab_unref(p, held);
    fw__pipe_free(p);
    assert_int_equal(c.frees, c.ok);
}

static void test_pipe_pooled_slabs_are_freed_to_make_room(void **state)
{
    (void)state;
    counting_alloc_t c = {0};
    fw_allocator_t hook = {counting_malloc_fn, NULL, counting_free_fn, &c};
    fw__pipe_t *p = pipe_new(4 * KIB, 16 * KIB, 4, 4, 8, &hook);
    fw__slab_t *s[4], *big = NULL, *again = NULL, *more = NULL;
    for (int i = 0; i < 4; i++)
        assert_int_equal(fw__pipe_slab_get(p, 1, &s[i]), FW__PIPE_OK);
    assert_int_equal(fw__pipe_slab_get(p, 1, &again), FW__PIPE_FULL);
    for (int i = 0; i < 4; i++)
        fw__pipe_slab_unref(p, s[i]);
    assert_int_equal(p->pooled, 16 * KIB);
    assert_int_equal(stats(p).bytes_held, 0);

    /* 8 KiB + 1 (12 KiB rounded): three pooled slabs go, held + pooled + size <= 16 KiB. */
    int frees = c.frees;
    assert_int_equal(fw__pipe_slab_get(p, 8 * KIB + 1, &big), FW__PIPE_OK);
    assert_int_equal(big->cap, 12 * KIB);
    assert_int_equal(c.frees - frees, 3);
    assert_int_equal(pool_len(p), 1);
    assert_int_equal(p->pooled, 4 * KIB);
    assert_int_equal(slab_bytes_owned(p), 16 * KIB);

    /* A standard slab now comes from the pool (no allocation), and the budget holds. */
    int allocs = c.allocs;
    assert_int_equal(fw__pipe_slab_get(p, 1, &again), FW__PIPE_OK);
    assert_int_equal(c.allocs, allocs);
    assert_int_equal(stats(p).bytes_held, 16 * KIB);
    assert_int_equal(fw__pipe_slab_get(p, 1, &more), FW__PIPE_FULL);
    assert_int_equal(c.allocs, allocs);

    /* The big slab is cached when released; a new standard slab makes it go first. */
    fw__pipe_slab_unref(p, big);
    assert_int_equal(stats(p).bytes_held, 4 * KIB);
    assert_int_equal(p->pooled, 12 * KIB);
    frees = c.frees;
    assert_int_equal(fw__pipe_slab_get(p, 1, &more), FW__PIPE_OK);
    assert_int_equal(c.allocs, allocs + 1);
    assert_int_equal(c.frees, frees + 1);
    assert_true(slab_bytes_owned(p) <= 16 * KIB);
    fw__pipe_slab_unref(p, more);
    fw__pipe_slab_unref(p, again);
    assert_int_equal(pool_len(p), 2);

    /* A big slab of the whole budget: every pooled slab goes. */
    assert_int_equal(fw__pipe_slab_get(p, 16 * KIB, &big), FW__PIPE_OK);
    assert_int_equal(pool_len(p), 0);
    assert_int_equal(slab_bytes_owned(p), 16 * KIB);
    fw__pipe_slab_unref(p, big);
    fw__pipe_free(p);
    assert_int_equal(c.frees, c.ok);
}

static void test_pipe_slab_get_reclaims_released_chunks_before_reporting_full(void **state)
{
    (void)state;
    fw__pipe_t *p = pipe_new(4 * KIB, 8 * KIB, 2, 2, 4, NULL);
    fw__slab_t *a, *b, *x = NULL;
    assert_int_equal(fw__pipe_slab_get(p, 1, &a), FW__PIPE_OK);
    assert_int_equal(add_text(p, a, "[1]"), FW__PIPE_OK);
    assert_int_equal(fw__pipe_slab_get(p, 1, &b), FW__PIPE_OK);
    assert_int_equal(add_text(p, b, "[2]"), FW__PIPE_OK); /* flushes a's chunk */
    assert_int_equal(fw__pipe_flush(p), FW__PIPE_OK);
    fw__pipe_slab_unref(p, a);
    fw__pipe_slab_unref(p, b);
    assert_int_equal(stats(p).bytes_held, 8 * KIB); /* the chunks keep both held */
    assert_int_equal(fw__pipe_slab_get(p, 1, &x), FW__PIPE_FULL);

    /* The consumer releases a's chunk; the producer has not reclaimed it, get does. */
    expect_row(p, "[1]");
    expect_row(p, "[2]"); /* moving on released the first chunk */
    assert_int_equal(fw__pipe_released(p), 1);
    assert_int_equal(fw__pipe_slab_get(p, 1, &x), FW__PIPE_OK);
    assert_ptr_equal(x, a); /* back through the pool */
    assert_int_equal(p->reclaimed, 1);
    fw__pipe_drain(p);
    fw__pipe_slab_unref(p, x);
    assert_int_equal(fw__pipe_reclaim(p), 1);
    assert_int_equal(stats(p).bytes_held, 0);
    fw__pipe_free(p);
}

/* ---- chunks ------------------------------------------------------------------------------ */

static void test_pipe_chunk_is_flushed_when_full(void **state)
{
    (void)state;
    static const uint32_t sizes[] = {1, 2, 3, 7, 64};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        uint32_t rows = sizes[i];
        fw__pipe_t *p = pipe_new(4 * KIB, 64 * KIB, rows, rows, 64, NULL);
        fw__slab_t *s;
        assert_int_equal(fw__pipe_slab_get(p, 1, &s), FW__PIPE_OK);
        uint32_t total = 3 * rows + 1;
        for (uint32_t k = 1; k <= total; k++) {
            assert_int_equal(add_text(p, s, "x"), FW__PIPE_OK);
            /* The open chunk is handed over only by the add that finds it full. */
            fw__pipe_stats_t st = stats(p);
            assert_int_equal(st.chunks_buffered, (k - 1) / rows);
            assert_int_equal(st.rows_buffered, (uint64_t)((k - 1) / rows) * rows);
            assert_int_equal(p->open->n, (k - 1) % rows + 1);
        }
        assert_int_equal(s->refs, 1 + 4); /* the producer and four chunks */
        assert_int_equal(fw__pipe_flush(p), FW__PIPE_OK);
        assert_null(p->open);
        assert_int_equal(fw__pipe_flush(p), FW__PIPE_OK); /* nothing open: a no-op */
        fw__pipe_stats_t st = stats(p);
        assert_int_equal(st.chunks_buffered, 4);
        assert_int_equal(st.rows_buffered, total);
        /* Chunk by chunk: rows, rows, rows, 1. */
        for (int k = 0; k < 4; k++) {
            fw__chunk_t *c = fw__pipe_take(p);
            assert_non_null(c);
            assert_ptr_equal(c->slab, s);
            assert_int_equal(c->n - c->first, k < 3 ? rows : 1);
            assert_int_equal(c->bytes, c->n);
            fw__pipe_release(p, c);
        }
        assert_null(fw__pipe_take(p));
        assert_int_equal(fw__pipe_reclaim(p), 4);
        assert_int_equal(s->refs, 1);
        fw__pipe_slab_unref(p, s);
        fw__pipe_free(p);
    }
}

static void test_pipe_chunk_is_flushed_when_the_slab_changes(void **state)
{
    (void)state;
    fw__pipe_t *p = pipe_new(4 * KIB, 64 * KIB, 100, 100, 8, NULL);
    fw__slab_t *a, *b;
    assert_int_equal(fw__pipe_slab_get(p, 1, &a), FW__PIPE_OK);
    assert_int_equal(fw__pipe_slab_get(p, 1, &b), FW__PIPE_OK);
    assert_int_equal(add_text(p, a, "a1"), FW__PIPE_OK);
    assert_int_equal(add_text(p, a, "a2"), FW__PIPE_OK);
    assert_int_equal(stats(p).chunks_buffered, 0);
    assert_int_equal(add_text(p, b, "b1"), FW__PIPE_OK);
    assert_int_equal(stats(p).chunks_buffered, 1);
    assert_int_equal(add_text(p, a, "a3"), FW__PIPE_OK); /* and back */
    assert_int_equal(stats(p).chunks_buffered, 2);
    assert_int_equal(a->refs, 3); /* producer + two chunks */
    assert_int_equal(b->refs, 2);
    assert_int_equal(fw__pipe_flush(p), FW__PIPE_OK);
    const char *want[] = {"a1", "a2", "b1", "a3"};
    const fw__slab_t *from[] = {a, a, b, a};
    for (int k = 0; k < 4; k++) {
        expect_row(p, want[k]);
        assert_ptr_equal(p->cur->slab, from[k]);
    }
    fw__pipe_drain(p);
    assert_int_equal(fw__pipe_reclaim(p), 3);
    assert_int_equal(a->refs, 1);
    assert_int_equal(b->refs, 1);
    fw__pipe_slab_unref(p, a);
    fw__pipe_slab_unref(p, b);
    fw__pipe_free(p);
}

static void test_pipe_add_is_full_when_the_ring_is_full_and_adds_nothing(void **state)
{
    (void)state;
    /* Ring of 2, one row per chunk: rows 1 and 2 fill the ring, row 3 sits in the open chunk,
     * row 4 needs a flush that cannot happen. */
    fw__pipe_t *p = pipe_new(4 * KIB, 64 * KIB, 1, 1, 2, NULL);
    fw__slab_t *s;
    assert_int_equal(fw__pipe_slab_get(p, 1, &s), FW__PIPE_OK);
    assert_int_equal(add_text(p, s, "r1"), FW__PIPE_OK);
    assert_int_equal(add_text(p, s, "r2"), FW__PIPE_OK);
    assert_int_equal(add_text(p, s, "r3"), FW__PIPE_OK);
    assert_int_equal(stats(p).chunks_buffered, 2);
    for (int tries = 0; tries < 3; tries++) {
        size_t used = s->used;
        assert_int_equal(add_text(p, s, "r4"), FW__PIPE_FULL);
        assert_int_equal(s->used, used);
        assert_int_equal(p->open->n, 1);
        assert_int_equal(stats(p).rows_buffered, 2);
        assert_int_equal(fw__pipe_flush(p), FW__PIPE_FULL);
        assert_non_null(p->open);
    }
    assert_int_equal(s->refs, 1 + 3);
    /* The consumer makes room for one chunk: r3 goes, r4 is added. */
    expect_row(p, "r1");
    assert_int_equal(add_text(p, s, "r4"), FW__PIPE_OK);
    assert_int_equal(fw__pipe_flush(p), FW__PIPE_FULL); /* r2 and r3 fill the ring again */
    expect_row(p, "r2");
    assert_int_equal(fw__pipe_flush(p), FW__PIPE_OK);
    expect_row(p, "r3");
    expect_row(p, "r4");
    fw_row_t row;
    assert_false(fw__pipe_next(p, &row));
    assert_int_equal(fw__pipe_reclaim(p), 4);
    assert_int_equal(s->refs, 1);
    fw__pipe_slab_unref(p, s);
    fw__pipe_free(p);
}

static void test_pipe_add_is_full_when_every_chunk_is_in_use(void **state)
{
    (void)state;
    counting_alloc_t c = {0};
    fw_allocator_t hook = {counting_malloc_fn, NULL, counting_free_fn, &c};
    /* Ring of 2: at most 2 * 2 + 1 = 5 chunks exist. */
    fw__pipe_t *p = pipe_new(4 * KIB, 64 * KIB, 1, 1, 2, &hook);
    assert_int_equal(p->max_chunks, 5);
    fw__slab_t *s;
    assert_int_equal(fw__pipe_slab_get(p, 1, &s), FW__PIPE_OK);
    fw__chunk_t *held[4];
    int nheld = 0;
    char text[16];
    int next = 1;
    /* The consumer takes chunks and keeps them: 4 held, 1 open, none queued. */
    while (nheld < 4) {
        snprintf(text, sizeof(text), "r%d", next);
        assert_int_equal(add_text(p, s, text), FW__PIPE_OK);
        next++;
        fw__chunk_t *t;
        while (nheld < 4 && (t = fw__pipe_take(p)) != NULL)
            held[nheld++] = t;
    }
    assert_int_equal(p->chunks, 5);
    assert_int_equal(stats(p).chunks_buffered, 0);
    int allocs = c.allocs;
    /* The next row flushes the open chunk (the ring has room) but finds no chunk for itself. */
    snprintf(text, sizeof(text), "r%d", next);
    assert_int_equal(add_text(p, s, text), FW__PIPE_FULL);
    assert_null(p->open);
    assert_int_equal(stats(p).chunks_buffered, 1);
    assert_int_equal(add_text(p, s, text), FW__PIPE_FULL); /* still: nothing released */
    assert_int_equal(c.allocs, allocs);                    /* and never more than five */
    assert_int_equal(stats(p).rows_buffered, 1);           /* r5: the four held were taken */

    /* One release is enough: add reclaims it and goes on. */
    fw__pipe_release(p, held[0]);
    assert_int_equal(add_text(p, s, text), FW__PIPE_OK);
    assert_int_equal(p->reclaimed, 1);
    assert_int_equal(c.allocs, allocs);
    for (int k = 1; k < 4; k++) {
        assert_int_equal(held[k]->n - held[k]->first, 1);
        fw__pipe_release(p, held[k]);
    }
    assert_int_equal(fw__pipe_flush(p), FW__PIPE_OK);
    expect_row(p, "r5");
    expect_row(p, text);
    fw__pipe_drain(p);
    fw__pipe_reclaim(p);
    assert_int_equal(fw__pipe_outstanding(p), 0);
    assert_int_equal(s->refs, 1);
    fw__pipe_slab_unref(p, s);
    fw__pipe_free(p);
    assert_int_equal(c.frees, c.ok);
}

static void test_pipe_rows_keep_their_pointer_length_and_null_flag(void **state)
{
    (void)state;
    fw__pipe_t *p = pipe_new(4 * KIB, 64 * KIB, 3, 3, 8, NULL);
    fw__slab_t *s;
    assert_int_equal(fw__pipe_slab_get(p, 1, &s), FW__PIPE_OK);
    memset(s->data, 'j', s->cap);
    const char *base = (const char *)s->data;
    static const struct {
        size_t off, len;
        bool is_null;
    } rows[] = {
        {0, 2, false},        {2, 0, false}, /* an empty text is not NULL */
        {2, 5, true},                        /* SQL NULL: pointer and length are dropped */
        {7, 4096 - 7, false},                /* up to the slab's last byte */
        {0, 0, true},         {100, 1, false},
    };
    size_t n = sizeof(rows) / sizeof(rows[0]);
    uint64_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(fw__pipe_add(p, s, base + rows[i].off, rows[i].len, rows[i].is_null),
                         FW__PIPE_OK);
        bytes += rows[i].is_null ? 0 : rows[i].len;
    }
    assert_int_equal(fw__pipe_flush(p), FW__PIPE_OK);
    assert_int_equal(stats(p).rows_buffered, n);
    for (size_t i = 0; i < n; i++) {
        fw_row_t r;
        memset(&r, 0x77, sizeof(r));
        assert_true(fw__pipe_next(p, &r));
        assert_int_equal(r.is_null, rows[i].is_null);
        if (rows[i].is_null) {
            assert_null(r.json);
            assert_int_equal(r.len, 0);
        } else {
            assert_ptr_equal(r.json, base + rows[i].off); /* zero-copy */
            assert_int_equal(r.len, rows[i].len);
        }
        bytes -= r.is_null ? 0 : r.len;
    }
    assert_int_equal(bytes, 0);
    fw_row_t r;
    assert_false(fw__pipe_next(p, &r));
    assert_int_equal(fw__pipe_reclaim(p), 2);
    fw__pipe_slab_unref(p, s);
    fw__pipe_free(p);
}

/* ---- the consumer ------------------------------------------------------------------------ */

static void test_pipe_next_releases_a_chunk_only_after_moving_past_its_last_row(void **state)
{
    (void)state;
    fw__pipe_t *p = pipe_new(4 * KIB, 64 * KIB, 2, 2, 8, NULL);
    fw__slab_t *s;
    fw_row_t r;
    assert_int_equal(fw__pipe_slab_get(p, 1, &s), FW__PIPE_OK);
    assert_false(fw__pipe_next(p, &r)); /* nothing queued */
    assert_int_equal(fw__pipe_released(p), 0);
    const char *text[] = {"a", "b", "c", "d"};
    for (int k = 0; k < 4; k++)
        assert_int_equal(add_text(p, s, text[k]), FW__PIPE_OK);
    assert_int_equal(fw__pipe_flush(p), FW__PIPE_OK);
    expect_row(p, "a");
    expect_row(p, "b");
    /* "b" is still borrowed: its chunk stays with the consumer. */
    assert_int_equal(fw__pipe_released(p), 0);
    expect_row(p, "c");
    assert_int_equal(fw__pipe_released(p), 1);
    expect_row(p, "d");
    assert_int_equal(fw__pipe_released(p), 1);
    assert_false(fw__pipe_next(p, &r)); /* the end of the queue releases the last chunk */
    assert_int_equal(fw__pipe_released(p), 2);
    assert_null(p->cur);
    assert_false(fw__pipe_next(p, &r));
    assert_int_equal(fw__pipe_released(p), 2);
    assert_int_equal(fw__pipe_reclaim(p), 2);
    assert_int_equal(fw__pipe_reclaim(p), 0);
    fw__pipe_slab_unref(p, s);
    fw__pipe_free(p);
}

static void test_pipe_take_returns_the_rest_of_a_partly_read_chunk_first(void **state)
{
    (void)state;
    fw__pipe_t *p = pipe_new(4 * KIB, 64 * KIB, 5, 5, 8, NULL);
    fw__slab_t *s;
    assert_int_equal(fw__pipe_slab_get(p, 1, &s), FW__PIPE_OK);
    const char *text[] = {"1", "2", "3", "4", "5", "6", "7", "8", "9", "10"};
    for (int k = 0; k < 10; k++)
        assert_int_equal(add_text(p, s, text[k]), FW__PIPE_OK);
    assert_int_equal(fw__pipe_flush(p), FW__PIPE_OK);
    expect_row(p, "1");
    expect_row(p, "2");
    assert_int_equal(stats(p).rows_yielded, 2);
    fw__chunk_t *c = fw__pipe_take(p);
    assert_non_null(c);
    assert_null(p->cur);
    assert_int_equal(c->n - c->first, 3);
    assert_int_equal(c->rows[c->first].len, 1);
    assert_memory_equal(c->rows[c->first].json, "3", 1);
    assert_memory_equal(c->rows[c->n - 1].json, "5", 1);
    /* Taking counts every row of it as yielded. */
    assert_int_equal(stats(p).rows_yielded, 5);
    assert_int_equal(stats(p).rows_buffered, 5);
    /* The next row comes from the next chunk, while the taken one is still held. */
    expect_row(p, "6");
    assert_int_equal(fw__pipe_released(p), 0);
    fw__pipe_release(p, c);
    assert_int_equal(fw__pipe_released(p), 1);

    /* A chunk read to its end is released by take, which then pops the next one. */
    expect_row(p, "7");
    expect_row(p, "8");
    expect_row(p, "9");
    expect_row(p, "10");
    assert_null(fw__pipe_take(p));
    assert_int_equal(fw__pipe_released(p), 2);
    assert_null(fw__pipe_take(p));
    assert_int_equal(stats(p).rows_yielded, 10);
    assert_int_equal(stats(p).chunks_taken, 2);
    assert_int_equal(fw__pipe_reclaim(p), 2);
    fw__pipe_slab_unref(p, s);
    fw__pipe_free(p);
}

static void test_pipe_drain_and_reclaim_return_every_slab_to_the_pool(void **state)
{
    (void)state;
    counting_alloc_t c = {0};
    fw_allocator_t hook = {counting_malloc_fn, NULL, counting_free_fn, &c};
    fw__pipe_t *p = pipe_new(256, 4 * KIB, 2, 2, 16, &hook);
    fw__slab_t *big;
    /* Rows in three standard slabs and one big one; one chunk current, some queued. */
    for (int k = 0; k < 3; k++) {
        fw__slab_t *s;
        assert_int_equal(fw__pipe_slab_get(p, 1, &s), FW__PIPE_OK);
        for (int r = 0; r < 5; r++)
            assert_int_equal(add_text(p, s, "{\"k\":1}"), FW__PIPE_OK);
        fw__pipe_slab_unref(p, s); /* the producer is done with it */
    }
    assert_int_equal(fw__pipe_slab_get(p, 1000, &big), FW__PIPE_OK);
    assert_int_equal(add_text(p, big, "[\"big\"]"), FW__PIPE_OK);
    fw__pipe_slab_unref(p, big);
    assert_int_equal(fw__pipe_flush(p), FW__PIPE_OK);
    assert_int_equal(stats(p).bytes_held, 3 * 256 + 1024); /* 1000 rounded to whole slabs */
    expect_row(p, "{\"k\":1}");
    fw__chunk_t *t = fw__pipe_take(p); /* the rest of the first chunk */
    assert_non_null(t);
    fw__pipe_release(p, t);
    uint64_t pushed = p->pushed;
    fw__pipe_drain(p);
    assert_null(p->cur);
    assert_int_equal(stats(p).chunks_buffered, 0);
    assert_int_equal(fw__pipe_released(p), pushed);
    /* Nothing changes for the producer until it reclaims. */
    assert_int_equal(stats(p).bytes_held, 3 * 256 + 1024);
    int frees = c.frees;
    assert_int_equal(fw__pipe_reclaim(p), pushed);
    assert_int_equal(fw__pipe_outstanding(p), 0);
    assert_int_equal(stats(p).bytes_held, 0);
    assert_int_equal(pool_len(p), 3);
    assert_int_equal(p->pooled, 3 * 256 + 1024); /* the big one cached beside them */
    assert_int_equal(c.frees, frees);
    /* Every chunk is back in the pool: the next rows allocate none. */
    int allocs = c.allocs;
    fw__slab_t *s;
    assert_int_equal(fw__pipe_slab_get(p, 1, &s), FW__PIPE_OK);
    for (int r = 0; r < 9; r++)
        assert_int_equal(add_text(p, s, "1"), FW__PIPE_OK);
    assert_int_equal(c.allocs, allocs);
    fw__pipe_slab_unref(p, s);
    fw__pipe_free(p); /* with rows still queued and a chunk open */
    assert_int_equal(c.frees, c.ok);
}

static void test_pipe_stats_are_exact_at_every_step(void **state)
{
    (void)state;
    fw__pipe_t *p = pipe_new(1 * KIB, 8 * KIB, 3, 4, 8, NULL);
    fw__slab_t *a, *b;
    fw__pipe_stats_t st = stats(p);
    assert_int_equal(st.rows_buffered, 0);
    assert_int_equal(st.chunks_buffered, 0);
    assert_int_equal(st.bytes_held, 0);
    assert_int_equal(st.rows_yielded, 0);
    assert_int_equal(st.rows_filtered, 0);
    assert_int_equal(st.bytes_received, 0);
    assert_int_equal(st.chunks_taken, 0);
    assert_int_equal(st.read_stops, 0);
    assert_int_equal(st.chunk_rows, 3);

    assert_int_equal(fw__pipe_slab_get(p, 1, &a), FW__PIPE_OK);
    assert_int_equal(fw__pipe_slab_get(p, 2000, &b), FW__PIPE_OK);
    fw__pipe_note_received(p, 1000);
    fw__pipe_note_received(p, 24);
    fw__pipe_note_filtered(p);
    fw__pipe_note_filtered(p);
    fw__pipe_note_read_stop(p);
    for (int k = 0; k < 7; k++)
        assert_int_equal(add_text(p, k < 5 ? a : b, "ab"), FW__PIPE_OK);
    /* chunks: a[3] a[2] flushed; b[2] open */
    st = stats(p);
    assert_int_equal(st.rows_buffered, 5);
    assert_int_equal(st.chunks_buffered, 2);
    assert_int_equal(st.bytes_held, 1 * KIB + 2 * KIB); /* 2000 rounded to whole slabs */
    assert_int_equal(st.bytes_received, 1024);
    assert_int_equal(st.rows_filtered, 2);
    assert_int_equal(st.read_stops, 1);
    assert_int_equal(fw__pipe_flush(p), FW__PIPE_OK);
    assert_int_equal(stats(p).rows_buffered, 7);
    assert_int_equal(stats(p).chunks_buffered, 3);

    fw_row_t r;
    assert_true(fw__pipe_next(p, &r));
    st = stats(p);
    assert_int_equal(st.rows_yielded, 1);
    assert_int_equal(st.rows_buffered, 6);
    assert_int_equal(st.chunks_buffered, 2); /* the current one was taken off the ring */
    assert_int_equal(st.chunks_taken, 1);
    fw__chunk_t *c = fw__pipe_take(p);
    st = stats(p);
    assert_int_equal(st.rows_yielded, 3);
    assert_int_equal(st.rows_buffered, 4);
    assert_int_equal(st.chunks_taken, 1);
    fw__pipe_release(p, c);
    c = fw__pipe_take(p);
    st = stats(p);
    assert_int_equal(st.rows_yielded, 5);
    assert_int_equal(st.chunks_taken, 2);
    assert_int_equal(st.chunks_buffered, 1);
    fw__pipe_release(p, c);
    fw__pipe_slab_unref(p, a);
    fw__pipe_reclaim(p);
    assert_int_equal(stats(p).bytes_held, 2 * KIB); /* a went back to the pool, b is held */
    fw__pipe_drain(p);
    st = stats(p);
    assert_int_equal(st.rows_yielded, 5); /* drained rows are dropped, not yielded */
    assert_int_equal(st.chunks_buffered, 0);
    assert_int_equal(st.chunks_taken, 3);
    fw__pipe_reclaim(p);
    fw__pipe_slab_unref(p, b);
    assert_int_equal(stats(p).bytes_held, 0);
    fw__pipe_free(p);
}

static void test_pipe_set_chunk_rows_clamps_to_1_and_chunk_cap(void **state)
{
    (void)state;
    static const struct {
        uint32_t asked, got;
    } cases[] = {{0, 1}, {1, 1}, {2, 2}, {7, 7}, {8, 8}, {9, 8}, {UINT32_MAX, 8}};
    fw__pipe_t *p = pipe_new(4 * KIB, 64 * KIB, 4, 8, 64, NULL);
    fw__slab_t *s;
    assert_int_equal(fw__pipe_slab_get(p, 1, &s), FW__PIPE_OK);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fw__pipe_set_chunk_rows(p, cases[i].asked);
        assert_int_equal(stats(p).chunk_rows, cases[i].got);
        assert_int_equal(p->o.chunk_rows, cases[i].got);
        /* Chunks now hold exactly that many rows. */
        assert_int_equal(fw__pipe_flush(p), FW__PIPE_OK);
        uint64_t before = stats(p).chunks_buffered;
        for (uint32_t k = 0; k < 2 * cases[i].got + 1; k++)
            assert_int_equal(add_text(p, s, "1"), FW__PIPE_OK);
        assert_int_equal(stats(p).chunks_buffered - before, 2);
        assert_int_equal(p->open->n, 1);
        fw__pipe_drain(p);
        fw__pipe_reclaim(p);
    }
    /* Lowered below what the open chunk holds: the next add hands it over first. */
    fw__pipe_set_chunk_rows(p, 8);
    for (int k = 0; k < 5; k++)
        assert_int_equal(add_text(p, s, "1"), FW__PIPE_OK);
    fw__pipe_set_chunk_rows(p, 2);
    uint64_t before = stats(p).chunks_buffered;
    assert_int_equal(add_text(p, s, "1"), FW__PIPE_OK);
    assert_int_equal(stats(p).chunks_buffered - before, 1);
    assert_int_equal(p->open->n, 1);
    fw__pipe_drain(p);
    fw__pipe_reclaim(p);
    fw__pipe_slab_unref(p, s);
    fw__pipe_free(p);
}

/*
 * The soft limit (fw__pipe_opts_t.soft_held, threaded streams): no new standard slab once the
 * standard slabs held would pass it, as FW__PIPE_FULL (soft_hit set); never while fewer than
 * three are held, and never while the ring is empty (the consumer has taken everything queued:
 * it holds, it is not behind, and only the budget bounds what it holds); big slabs are neither
 * counted nor stopped by it.
 */
static void test_pipe_soft_limit_stops_standard_slabs_and_not_big_ones(void **state)
{
    (void)state;
    fw__pipe_opts_t o = opts(4 * KIB, 64 * KIB, 4, 4, 64);
    o.soft_held = 16 * KIB;
    assert_int_equal(fw__pipe_init(&g_pipe, &o, NULL), 0);
    fw__pipe_t *p = &g_pipe;
    fw__slab_t *sl[6];
    for (int i = 0; i < 4; i++)
        assert_int_equal(fw__pipe_slab_get(p, 1, &sl[i]), FW__PIPE_OK);
    assert_int_equal(p->held_std, 16 * KIB);
    fw__slab_t *x = (fw__slab_t *)(uintptr_t)1;
    /* Nothing queued: the consumer is not behind, the limit gives way (the budget holds). */
    assert_int_equal(fw__pipe_slab_get(p, 1, &x), FW__PIPE_OK);
    assert_false(p->soft_hit);
    fw__pipe_slab_unref(p, x);
    /* A chunk queued: at the limit. */
    assert_int_equal(add_text(p, sl[1], "{}"), FW__PIPE_OK);
    assert_int_equal(fw__pipe_flush(p), FW__PIPE_OK);
    x = (fw__slab_t *)(uintptr_t)1;
    assert_int_equal(fw__pipe_slab_get(p, 1, &x), FW__PIPE_FULL);
    assert_null(x);
    assert_true(p->soft_hit);
    /* A row larger than a standard slab still gets one (8 KiB, within the 64 KiB budget). */
    fw__slab_t *big;
    assert_int_equal(fw__pipe_slab_get(p, 6 * KIB, &big), FW__PIPE_OK);
    assert_false(p->soft_hit);
    assert_true(big->big);
    assert_int_equal(p->held, 24 * KIB);
    assert_int_equal(p->held_std, 16 * KIB);
    assert_int_equal(fw__pipe_slab_get(p, 1, &x), FW__PIPE_FULL); /* still at the limit */
    /* One standard slab given back: room for exactly one. */
    fw__pipe_slab_unref(p, sl[0]);
    assert_int_equal(p->held_std, 12 * KIB);
    assert_int_equal(fw__pipe_slab_get(p, 1, &sl[0]), FW__PIPE_OK);
    assert_int_equal(fw__pipe_slab_get(p, 1, &x), FW__PIPE_FULL);
    /* The big slab's release changes nothing for standard slabs. */
    fw__pipe_slab_unref(p, big);
    assert_int_equal(p->held_std, 16 * KIB);
    assert_int_equal(fw__pipe_slab_get(p, 1, &x), FW__PIPE_FULL);
    /* The consumer takes the chunk and holds it: the ring is empty, the limit gives way. */
    fw__chunk_t *held = fw__pipe_take(p);
    assert_non_null(held);
    assert_int_equal(fw__pipe_slab_get(p, 1, &sl[4]), FW__PIPE_OK);
    assert_false(p->soft_hit);
    assert_int_equal(p->held_std, 20 * KIB);
    /* Released, and the producer's reference dropped: the slab it pinned counts no more. */
    fw__pipe_slab_unref(p, sl[1]);
    fw__pipe_release(p, held);
    assert_int_equal(add_text(p, sl[2], "[]"), FW__PIPE_OK); /* queued again */
    assert_int_equal(fw__pipe_flush(p), FW__PIPE_OK);
    assert_int_equal(fw__pipe_slab_get(p, 1, &sl[1]), FW__PIPE_FULL); /* 16 KiB held + 4 */
    fw__pipe_slab_unref(p, sl[4]);
    assert_int_equal(fw__pipe_slab_get(p, 1, &sl[1]), FW__PIPE_OK);
    expect_row(p, "[]");
    fw_row_t row;
    assert_false(fw__pipe_next(p, &row));
    for (int i = 0; i < 4; i++)
        fw__pipe_slab_unref(p, sl[i]);
    fw__pipe_reclaim(p);
    assert_int_equal(p->held_std, 0);
    assert_int_equal(p->held, 0);
    fw__pipe_free(p);

    /* A limit under three slabs: three are held all the same, never a fourth. */
    o.soft_held = 5 * KIB;
    assert_int_equal(fw__pipe_init(&g_pipe, &o, NULL), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(fw__pipe_slab_get(p, 1, &sl[i]), FW__PIPE_OK);
    assert_int_equal(add_text(p, sl[0], "1"), FW__PIPE_OK);
    assert_int_equal(fw__pipe_flush(p), FW__PIPE_OK);
    assert_int_equal(fw__pipe_slab_get(p, 1, &x), FW__PIPE_FULL);
    fw__pipe_drain(p);
    for (int i = 0; i < 3; i++)
        fw__pipe_slab_unref(p, sl[i]);
    fw__pipe_reclaim(p);
    fw__pipe_free(p);

    /* No limit (0): the budget alone, 16 slabs. */
    o.soft_held = 0;
    assert_int_equal(fw__pipe_init(&g_pipe, &o, NULL), 0);
    fw__slab_t *all[16];
    for (int i = 0; i < 16; i++)
        assert_int_equal(fw__pipe_slab_get(p, 1, &all[i]), FW__PIPE_OK);
    assert_int_equal(add_text(p, all[0], "1"), FW__PIPE_OK);
    assert_int_equal(fw__pipe_flush(p), FW__PIPE_OK);
    assert_int_equal(fw__pipe_slab_get(p, 1, &x), FW__PIPE_FULL);
    assert_false(p->soft_hit);
    fw__pipe_drain(p);
    for (int i = 0; i < 16; i++)
        fw__pipe_slab_unref(p, all[i]);
    fw__pipe_reclaim(p);
    fw__pipe_free(p);
}

/*
 * fw__pipe_hint_fill: chunks are made for the rows a chunk is expected to get when that is
 * fewer than chunk_rows (the power of two at or above it, 32 at least), hold that many, and are
 * handed over when full; chunks already made are kept while they suit the size (no
 * reallocation for every change of the hint).
 */
static void test_pipe_chunks_are_made_for_the_fill_hint(void **state)
{
    (void)state;
    counting_alloc_t c = {0};
    fw_allocator_t hook = {counting_malloc_fn, NULL, counting_free_fn, &c};
    fw__pipe_t *p = pipe_new(64 * KIB, 1024 * KIB, 1024, 1024, 64, &hook);
    fw__slab_t *s;
    assert_int_equal(fw__pipe_slab_get(p, 1, &s), FW__PIPE_OK);
    /* No hint: made for chunk_rows. */
    assert_int_equal(add_text(p, s, "1"), FW__PIPE_OK);
    assert_int_equal(p->open->cap, 1024);
    assert_int_equal(fw__pipe_flush(p), FW__PIPE_OK);
    fw__pipe_drain(p);
    fw__pipe_reclaim(p);
    /* 40 rows expected: a chunk of 64, handed over at its 64th row. */
    fw__pipe_hint_fill(p, 40);
    uint64_t before = stats(p).chunks_buffered;
    for (int k = 0; k < 65; k++)
        assert_int_equal(add_text(p, s, "1"), FW__PIPE_OK);
    assert_int_equal(stats(p).chunks_buffered - before, 1);
    assert_int_equal(p->open->cap, 64);
    assert_int_equal(p->open->n, 1);
    assert_int_equal(fw__pipe_flush(p), FW__PIPE_OK);
    fw__chunk_t *ch = fw__pipe_take(p);
    assert_int_equal(ch->n - ch->first, 64);
    fw__pipe_release(p, ch);
    fw__pipe_drain(p);
    fw__pipe_reclaim(p);
    /* A hint that moves within a factor of two reuses the chunks made. */
    size_t allocs = c.ok;
    for (int round = 0; round < 8; round++) {
        fw__pipe_hint_fill(p, round % 2 == 0 ? 60 : 33);
        for (int k = 0; k < 50; k++)
            assert_int_equal(add_text(p, s, "1"), FW__PIPE_OK);
        assert_int_equal(p->open->cap, 64);
        assert_int_equal(fw__pipe_flush(p), FW__PIPE_OK);
        fw__pipe_drain(p);
        fw__pipe_reclaim(p);
    }
    assert_int_equal(c.ok, allocs);
    fw__pipe_slab_unref(p, s);
    fw__pipe_free(p);
    /* A hint above chunk_rows: chunk_rows (100: chunks of 128 taking 100 each). */
    p = pipe_new(64 * KIB, 1024 * KIB, 100, 1024, 64, &hook);
    assert_int_equal(fw__pipe_slab_get(p, 1, &s), FW__PIPE_OK);
    fw__pipe_hint_fill(p, 5000);
    for (int k = 0; k < 101; k++)
        assert_int_equal(add_text(p, s, "1"), FW__PIPE_OK);
    assert_int_equal(p->open->cap, 128);
    assert_int_equal(p->open->n, 1);
    assert_int_equal(fw__pipe_flush(p), FW__PIPE_OK);
    fw__pipe_drain(p);
    fw__pipe_reclaim(p);
    fw__pipe_slab_unref(p, s);
    fw__pipe_free(p);
    assert_int_equal(c.frees, c.ok);
}

/* ---- allocation failures ------------------------------------------------------------------ */

/*
 * A run that touches every allocation point: both rings, standard slabs, a big slab, chunks
 * (new and reused). Each call that can fail is checked: FW_ENOMEM leaves the pipe as it was and
 * the run goes on. Returns how many FW_ENOMEM it saw.
 */
static int oom_scenario(counting_alloc_t *c)
{
    fw_allocator_t hook = {counting_malloc_fn, NULL, counting_free_fn, c};
    fw__pipe_opts_t o = opts(512, 8 * KIB, 2, 4, 16);
    int enomem = 0;
    int rc = fw__pipe_init(&g_pipe, &o, &hook);
    if (rc < 0) {
        assert_int_equal(rc, FW_ENOMEM);
        fw__pipe_free(&g_pipe);
        return 1;
    }
    fw__pipe_t *p = &g_pipe;
    uint64_t expect_rows = 0;
    for (int round = 0; round < 2; round++) {
        for (int k = 0; k < 4; k++) {
            fw__slab_t *s = NULL;
            size_t held = p->held;
            rc = fw__pipe_slab_get(p, k == 3 ? 700 : 10, &s);
            if (rc == FW_ENOMEM) {
                assert_null(s);
                assert_int_equal(p->held, held);
                enomem++;
                continue;
            }
            assert_int_equal(rc, FW__PIPE_OK);
            for (int r = 0; r < 3; r++) {
                uint64_t pushed = p->rows_pushed + (p->open != NULL ? p->open->n : 0);
                uint32_t refs = s->refs;
                rc = add_text(p, s, "[0]");
                if (rc == FW_ENOMEM) {
                    assert_int_equal(p->rows_pushed + (p->open != NULL ? p->open->n : 0), pushed);
                    assert_int_equal(s->refs, refs);
                    enomem++;
                    continue;
                }
                assert_int_equal(rc, FW__PIPE_OK);
                expect_rows++;
            }
            fw__pipe_slab_unref(p, s);
        }
        assert_int_equal(fw__pipe_flush(p), FW__PIPE_OK);
        /* The consumer: a row, the rest of its chunk, then everything. */
        fw_row_t row;
        uint64_t seen = 0;
        if (fw__pipe_next(p, &row)) {
            seen++;
            fw__chunk_t *t = fw__pipe_take(p);
            if (t != NULL) {
                seen += t->n - t->first;
                fw__pipe_release(p, t);
            }
        }
        while (fw__pipe_next(p, &row))
            seen++;
        assert_int_equal(seen, expect_rows);
        expect_rows = 0;
        fw__pipe_reclaim(p);
        assert_int_equal(p->held, 0);
    }
    fw__pipe_free(p);
    return enomem;
}

static void test_pipe_survives_allocation_failure_at_every_point(void **state)
{
    (void)state;
    counting_alloc_t dry = {0};
    assert_int_equal(oom_scenario(&dry), 0);
    assert_int_equal(dry.frees, dry.ok);
    assert_true(dry.allocs >= 8); /* rings, slabs, big slabs, chunks */
    for (int k = 1; k <= dry.allocs; k++) {
        counting_alloc_t c = {.fail_at = k};
        int enomem = oom_scenario(&c);
        if (enomem != 1)
            fail_msg("failing allocation %d of %d: %d FW_ENOMEM seen", k, dry.allocs, enomem);
        if (c.frees != c.ok)
            fail_msg("failing allocation %d: %d allocated, %d freed", k, c.ok, c.frees);
    }
    /* Every allocation failing from the first on. */
    counting_alloc_t none = {.fail_all = true};
    assert_int_equal(oom_scenario(&none), 1);
    assert_int_equal(none.ok, 0);
}

/* ---- two threads ------------------------------------------------------------------------- */

#define STRESS_ROWS   2000000u
#define STRESS_BUDGET (64 * KIB)
#define STRESS_SLAB   (4 * KIB)
#define STRESS_BIG    5000u /* every BIG_EVERY-th row does not fit a standard slab */
#define BIG_EVERY     9973u
#define NULL_EVERY    101u

typedef struct stress_s {
    fw__pipe_t pipe;           /* first: cache-line aligned */
    atomic_bool done;          /* the consumer has every row */
    atomic_bool producer_done; /* the last chunk was handed over */
    atomic_bool stats_wrong;
    atomic_int producer_error;
    uint64_t fulls; /* producer only: times it had to wait */
} stress_t;

static stress_t g_stress;

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

/* Row i's bytes: its number (8 bytes, little-endian), then bytes derived from it. */
static size_t row_len(uint64_t i)
{
    return i % BIG_EVERY == BIG_EVERY - 1 ? STRESS_BIG : 8 + (size_t)(i * 7919u % 41u);
}

static bool row_is_null(uint64_t i)
{
    return i % NULL_EVERY == NULL_EVERY - 1;
}

static void row_write(uint64_t i, uint8_t *out, size_t len)
{
    for (int k = 0; k < 8; k++)
        out[k] = (uint8_t)(i >> (8 * k));
    for (size_t k = 8; k < len; k++)
        out[k] = (uint8_t)(i * 31u + k);
}

static bool row_check(uint64_t i, const fw_row_t *r)
{
    if (row_is_null(i))
        return r->is_null && r->json == NULL && r->len == 0;
    size_t len = row_len(i);
    if (r->is_null || r->json == NULL || r->len != len)
        return false;
    const uint8_t *b = (const uint8_t *)r->json;
    uint64_t got = 0;
    for (int k = 0; k < 8; k++)
        got |= (uint64_t)b[k] << (8 * k);
    if (got != i)
        return false;
    for (size_t k = 8; k < len; k++)
        if (b[k] != (uint8_t)(i * 31u + k))
            return false;
    return true;
}

/* Hands the open chunk over, waiting for room. */
static void stress_flush(stress_t *st)
{
    while (fw__pipe_flush(&st->pipe) == FW__PIPE_FULL) {
        st->fulls++;
        fw__pipe_reclaim(&st->pipe);
        sched_yield();
    }
}

/* Spinning with sched_yield() keeps the test quick on one CPU and under ThreadSanitizer. */
static void *stress_producer(void *arg)
{
    stress_t *st = arg;
    fw__pipe_t *p = &st->pipe;
    uint64_t rng = 0x243f6a8885a308d3ull;
    fw__slab_t *slab = NULL;
    for (uint64_t i = 0; i < STRESS_ROWS; i++) {
        size_t len = row_is_null(i) ? 0 : row_len(i);
        if (slab == NULL || slab->cap - slab->used < len) {
            if (slab != NULL) {
                /* The open chunk points into the old slab: hand it over, so the consumer can
                 * release it and the budget makes room. */
                stress_flush(st);
                fw__pipe_slab_unref(p, slab);
                slab = NULL;
            }
            int rc;
            while ((rc = fw__pipe_slab_get(p, len, &slab)) == FW__PIPE_FULL) {
                st->fulls++;
                sched_yield();
            }
            if (rc != FW__PIPE_OK) {
                atomic_store(&st->producer_error, rc);
                return NULL;
            }
        }
        uint8_t *at = slab->data + slab->used;
        if (!row_is_null(i))
            row_write(i, at, len);
        int rc;
        while ((rc = fw__pipe_add(p, slab, (const char *)at, len, row_is_null(i))) ==
               FW__PIPE_FULL) {
            st->fulls++;
            fw__pipe_reclaim(p);
            sched_yield();
        }
        if (rc != FW__PIPE_OK) {
            atomic_store(&st->producer_error, rc);
            return NULL;
        }
        slab->used += len;
        uint64_t r = xorshift(&rng);
        if (r % 61 == 0)
            fw__pipe_set_chunk_rows(p, (uint32_t)(1 + (r >> 8) % p->o.chunk_cap));
        if ((r >> 20) % 17 == 0 && fw__pipe_flush(p) == FW__PIPE_FULL)
            st->fulls++; /* the next add retries it */
        if ((r >> 30) % 5 == 0)
            fw__pipe_reclaim(p);
    }
    stress_flush(st);
    if (slab != NULL)
        fw__pipe_slab_unref(p, slab);
    /* After the last push: a consumer that sees this finds every chunk in the ring. */
    atomic_store(&st->producer_done, true);
    return NULL;
}

/* A third thread reading the statistics while both sides run: in range and race-free. */
static void *stress_watcher(void *arg)
{
    stress_t *st = arg;
    while (!atomic_load_explicit(&st->done, memory_order_relaxed)) {
        fw__pipe_stats_t s;
        fw__pipe_stats(&st->pipe, &s);
        if (s.bytes_held > STRESS_BUDGET || s.rows_buffered > STRESS_ROWS ||
            s.rows_yielded > STRESS_ROWS || s.chunk_rows < 1 || s.chunk_rows > 64)
            atomic_store_explicit(&st->stats_wrong, true, memory_order_relaxed);
        sched_yield();
    }
    return NULL;
}

static void test_pipe_two_threads_hand_two_million_rows_in_order_with_intact_bytes(void **state)
{
    (void)state;
    stress_t *st = &g_stress;
    memset(st, 0, sizeof(*st));
    atomic_init(&st->done, false);
    atomic_init(&st->producer_done, false);
    atomic_init(&st->stats_wrong, false);
    atomic_init(&st->producer_error, 0);
    /* A small budget and ring, so the budget, the ring and the chunk count all run out often. */
    fw__pipe_opts_t o = opts(STRESS_SLAB, STRESS_BUDGET, 16, 64, 8);
    assert_int_equal(fw__pipe_init(&st->pipe, &o, NULL), 0);

    pthread_t producer, watcher;
    assert_int_equal(pthread_create(&producer, NULL, stress_producer, st), 0);
    assert_int_equal(pthread_create(&watcher, NULL, stress_watcher, st), 0);

    /* The consumer runs here, mixing row by row and chunk by chunk. cmocka's asserts must not
     * fire while the other threads still use the pipe: record the first fault, assert later. */
    uint64_t expect = 0, first_bad = UINT64_MAX, nulls = 0, takes = 0;
    uint64_t rng = 0x13198a2e03707344ull;
    bool last_look = false; /* the producer is done: one more empty poll means rows were lost */
    while (expect < STRESS_ROWS && atomic_load(&st->producer_error) == 0) {
        if (xorshift(&rng) % 4 == 0) {
            fw__chunk_t *c = fw__pipe_take(&st->pipe);
            if (c == NULL) {
                if (last_look)
                    break;
                last_look = atomic_load(&st->producer_done);
                sched_yield();
                continue;
            }
            takes++;
            for (uint32_t k = c->first; k < c->n; k++, expect++) {
                if (!row_check(expect, &c->rows[k]) && first_bad == UINT64_MAX)
                    first_bad = expect;
                nulls += c->rows[k].is_null;
            }
            fw__pipe_release(&st->pipe, c);
        } else {
            fw_row_t row;
            if (!fw__pipe_next(&st->pipe, &row)) {
                if (last_look)
                    break;
                last_look = atomic_load(&st->producer_done);
                sched_yield();
                continue;
            }
            if (!row_check(expect, &row) && first_bad == UINT64_MAX)
                first_bad = expect;
            nulls += row.is_null;
            expect++;
        }
    }
    fw__pipe_drain(&st->pipe); /* the last chunk read row by row */
    atomic_store_explicit(&st->done, true, memory_order_relaxed);
    assert_int_equal(pthread_join(producer, NULL), 0);
    assert_int_equal(pthread_join(watcher, NULL), 0);

    assert_int_equal(atomic_load(&st->producer_error), 0);
    if (first_bad != UINT64_MAX)
        fail_msg("row %llu arrived damaged or out of order", (unsigned long long)first_bad);
    assert_int_equal(expect, STRESS_ROWS);
    assert_int_equal(nulls, STRESS_ROWS / NULL_EVERY);
    assert_false(atomic_load(&st->stats_wrong));
    assert_true(st->fulls > 0); /* backpressure really happened */
    assert_true(takes > 0);

    /* Nothing beyond the last row, and everything comes back. */
    fw_row_t extra;
    assert_false(fw__pipe_next(&st->pipe, &extra));
    fw__pipe_stats_t s = stats(&st->pipe);
    assert_int_equal(s.rows_yielded, STRESS_ROWS);
    assert_int_equal(s.rows_buffered, 0);
    assert_int_equal(s.chunks_buffered, 0);
    fw__pipe_reclaim(&st->pipe);
    assert_int_equal(fw__pipe_outstanding(&st->pipe), 0);
    assert_int_equal(stats(&st->pipe).bytes_held, 0);
    assert_true(st->pipe.pooled <= STRESS_BUDGET);
    fw__pipe_free(&st->pipe);
}


/* ---- receiving: room for the next read ------------------------------------------------- */

/* Writes a message header (type, length of `total` bytes overall) plus `have` body bytes. */
static void put_partial(fw__slab_t *sl, size_t total, size_t have)
{
    uint8_t *d = sl->data + sl->used;
    uint32_t len = (uint32_t)(total - 1);
    d[0] = 'D';
    d[1] = (uint8_t)(len >> 24);
    d[2] = (uint8_t)(len >> 16);
    d[3] = (uint8_t)(len >> 8);
    d[4] = (uint8_t)len;
    for (size_t i = 0; i < have; i++)
        d[5 + i] = (uint8_t)('a' + i % 26);
    sl->used += 5 + have;
}

static void test_pipe_make_room_keeps_a_slab_with_room(void **state)
{
    (void)state;
    fw__pipe_t *p = pipe_new(1024, 8192, 4, 4, 8, NULL);
    uint8_t scratch[1024];
    fw__rx_t rx = {NULL, 0, 0, scratch, sizeof(scratch)};
    assert_int_equal(fw__pipe_make_room(p, &rx, false), FW__PIPE_OK); /* the first slab */
    assert_non_null(rx.slab);
    fw__slab_t *first = rx.slab;
    rx.slab->used = 100;
    rx.pos = 100;
    assert_int_equal(fw__pipe_make_room(p, &rx, false), FW__PIPE_OK);
    assert_ptr_equal(rx.slab, first); /* under FW__PIPE_MIN_ROOM left, but the slab is free and
                                         standard: it is reused in place, nothing to move */
    assert_int_equal(rx.pos, 0);
    assert_int_equal(rx.slab->used, 0);
    fw__pipe_slab_unref(p, rx.slab);
    fw__pipe_free(p);
}

static void test_pipe_make_room_moves_a_tail_that_does_not_fit(void **state)
{
    (void)state;
    fw__pipe_t *p = pipe_new(1024, 8192, 4, 4, 8, NULL);
    uint8_t scratch[1024];
    fw__rx_t rx = {NULL, 0, 0, scratch, sizeof(scratch)};
    assert_int_equal(fw__pipe_make_room(p, &rx, false), FW__PIPE_OK);
    fw__slab_t *first = rx.slab;
    first->used = 900;
    rx.pos = 900;
    put_partial(first, 300, 50); /* 300-byte message, 55 bytes here: ends past the slab */
    uint8_t copy[55];
    memcpy(copy, first->data + 900, sizeof(copy));
    assert_int_equal(fw__pipe_make_room(p, &rx, false), FW__PIPE_OK);
    assert_ptr_not_equal(rx.slab, NULL);
    assert_int_equal(rx.pos, 0);
    assert_int_equal(rx.slab->used, 55);
    assert_memory_equal(rx.slab->data, copy, sizeof(copy));
    assert_true(rx.slab->cap >= 300);
    /* while skipping an oversized row, the header means nothing: a slab with room is kept */
    fw__slab_t *second = rx.slab;
    assert_int_equal(fw__pipe_make_room(p, &rx, true), FW__PIPE_OK);
    assert_ptr_equal(rx.slab, second);
    fw__pipe_slab_unref(p, rx.slab);
    fw__pipe_free(p);
}

static void test_pipe_make_room_gives_a_big_message_a_slab_of_its_own(void **state)
{
    (void)state;
    fw__pipe_t *p = pipe_new(1024, 16384, 4, 4, 8, NULL);
    uint8_t scratch[1024];
    fw__rx_t rx = {NULL, 0, 0, scratch, sizeof(scratch)};
    assert_int_equal(fw__pipe_make_room(p, &rx, false), FW__PIPE_OK);
    put_partial(rx.slab, 5000, 100);
    assert_int_equal(fw__pipe_make_room(p, &rx, false), FW__PIPE_OK);
    assert_true(rx.slab->big);
    assert_true(rx.slab->cap >= 5000);
    assert_int_equal(rx.slab->used, 105);
    assert_int_equal(rx.slab->data[0], 'D');
    fw__pipe_slab_unref(p, rx.slab);
    fw__pipe_free(p);
}

static void test_pipe_make_room_parks_the_tail_while_the_budget_is_full(void **state)
{
    (void)state;
    /* a budget of two slabs: one held by a queued row, one being read into */
    fw__pipe_t *p = pipe_new(1024, 2048, 1, 1, 8, NULL);
    uint8_t scratch[1024];
    fw__rx_t rx = {NULL, 0, 0, scratch, sizeof(scratch)};
    assert_int_equal(fw__pipe_make_room(p, &rx, false), FW__PIPE_OK);
    fw__slab_t *a = rx.slab;
    assert_int_equal(add_text(p, a, "[1]"), FW__PIPE_OK); /* pins slab a */
    assert_int_equal(fw__pipe_flush(p), FW__PIPE_OK);
    a->used = 1000;
    rx.pos = 1000;
    assert_int_equal(fw__pipe_make_room(p, &rx, false), FW__PIPE_OK); /* b; a stays pinned */
    fw__slab_t *b = rx.slab;
    assert_ptr_not_equal(a, b);
    assert_int_equal(add_text(p, b, "[2]"), FW__PIPE_OK); /* pins slab b too */
    assert_int_equal(fw__pipe_flush(p), FW__PIPE_OK);
    b->used = 1000;
    rx.pos = 1000;
    put_partial(b, 400, 10); /* a 15-byte tail of a 400-byte message */
    /* b is pinned by its row and the budget holds a and b: no new slab, the tail is not
     * parked (b cannot be given back) */
    assert_int_equal(fw__pipe_make_room(p, &rx, false), FW__PIPE_FULL);
    assert_ptr_equal(rx.slab, b);
    /* the consumer takes and releases [1] and [2]: b is pinned by the producer only now */
    expect_row(p, "[1]");
    expect_row(p, "[2]");
    fw_row_t row;
    assert_false(fw__pipe_next(p, &row));
    assert_int_equal(fw__pipe_make_room(p, &rx, false), FW__PIPE_OK);
    assert_int_equal(rx.pos, 0);
    assert_int_equal(rx.parked, 0);
    assert_int_equal(rx.slab->used, 15);
    assert_int_equal(rx.slab->data[0], 'D');
    fw__pipe_slab_unref(p, rx.slab);
    fw__pipe_free(p);
}

/* Writes a whole message of `total` bytes (header included) whose body is pattern(i). */
static void put_message(uint8_t *d, size_t total, uint32_t i)
{
    uint32_t len = (uint32_t)(total - 1);
    d[0] = 'D';
    d[1] = (uint8_t)(len >> 24);
    d[2] = (uint8_t)(len >> 16);
    d[3] = (uint8_t)(len >> 8);
    d[4] = (uint8_t)len;
    for (size_t k = 5; k < total; k++)
        d[k] = (uint8_t)(i * 131u + k * 7u);
}

static void check_body(const fw_row_t *row, size_t total, uint32_t i)
{
    assert_false(row->is_null);
    assert_int_equal(row->len, total - 5);
    const uint8_t *b = (const uint8_t *)row->json;
    for (size_t k = 5; k < total; k++)
        if (b[k - 5] != (uint8_t)(i * 131u + k * 7u))
            fail_msg("row %u: byte %zu changed while the consumer held it", i, k);
}

#define SENTINEL 0x5a

static bool scratch_untouched(const uint8_t *scratch, size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (scratch[k] != SENTINEL)
            return false;
    return true;
}

/* A big slab holding one whole 5000-byte row and the first 25 bytes of the next: the row is
 * queued (a chunk points into the slab); returns the slab. */
static fw__slab_t *big_row_then_header(fw__pipe_t *p, fw__rx_t *rx)
{
    assert_int_equal(fw__pipe_make_room(p, rx, false), FW__PIPE_OK);
    put_partial(rx->slab, 5000, 100);
    assert_int_equal(fw__pipe_make_room(p, rx, false), FW__PIPE_OK);
    fw__slab_t *big = rx->slab;
    assert_true(big->big);
    assert_int_equal(big->cap, 5120); /* 5000 rounded up to whole 1 KiB slabs */
    put_message(big->data, 5000, 1);
    static uint8_t next[5000];
    put_message(next, sizeof(next), 2);
    memcpy(big->data + 5000, next, 25); /* only its first 25 bytes have "arrived" */
    big->used = 5025;
    assert_int_equal(fw__pipe_add(p, big, (const char *)big->data + 5, 4995, false), FW__PIPE_OK);
    rx->pos = 5000;
    return big;
}

static void test_pipe_make_room_reuses_a_free_big_slab_in_place_for_the_next_big_row(void **state)
{
    (void)state;
    counting_alloc_t c = {0};
    fw_allocator_t hook = {counting_malloc_fn, NULL, counting_free_fn, &c};
    fw__pipe_t *p = pipe_new(1024, 16384, 4, 4, 8, &hook);
    uint8_t scratch[1024];
    memset(scratch, SENTINEL, sizeof(scratch));
    fw__rx_t rx = {NULL, 0, 0, scratch, sizeof(scratch)};
    fw__slab_t *big = big_row_then_header(p, &rx);
    assert_int_equal(fw__pipe_flush(p), FW__PIPE_OK);
    fw_row_t row;
    assert_true(fw__pipe_next(p, &row));
    check_body(&row, 5000, 1);
    assert_false(fw__pipe_next(p, &row)); /* released: only the producer holds the slab */
    size_t held = stats(p).bytes_held, pooled = p->pooled;
    int allocs = c.allocs;
    assert_int_equal(fw__pipe_make_room(p, &rx, false), FW__PIPE_OK);
    assert_ptr_equal(rx.slab, big); /* the same slab, the tail at its start */
    assert_int_equal(rx.pos, 0);
    assert_int_equal(big->used, 25);
    assert_true(scratch_untouched(scratch, sizeof(scratch))); /* one move, in place */
    static uint8_t want[5000];
    put_message(want, sizeof(want), 2);
    assert_memory_equal(big->data, want, 25);
    assert_int_equal(fw__be32(big->data + 1) + 1, 5000); /* the header moved with it */
    assert_int_equal(c.allocs, allocs);   /* nothing allocated */
    assert_int_equal(stats(p).bytes_held, held); /* nor counted twice */
    assert_int_equal(p->pooled, pooled);
    fw__pipe_slab_unref(p, rx.slab);
    fw__pipe_free(p);
    assert_int_equal(c.frees, c.ok);
}

static void test_pipe_make_room_moves_a_tail_once_while_a_row_pins_the_old_slab(void **state)
{
    (void)state;
    fw__pipe_t *p = pipe_new(1024, 16384, 4, 4, 8, NULL);
    uint8_t scratch[1024];
    memset(scratch, SENTINEL, sizeof(scratch));
    fw__rx_t rx = {NULL, 0, 0, scratch, sizeof(scratch)};
    fw__slab_t *big = big_row_then_header(p, &rx);
    /* the consumer holds the row: the old slab cannot be reused nor parked from */
    fw__chunk_t *held_chunk = NULL;
    assert_int_equal(fw__pipe_flush(p), FW__PIPE_OK);
    held_chunk = fw__pipe_take(p);
    assert_non_null(held_chunk);
    assert_int_equal(fw__pipe_make_room(p, &rx, false), FW__PIPE_OK);
    assert_ptr_not_equal(rx.slab, big);
    assert_true(rx.slab->big && rx.slab->cap >= 5000);
    assert_int_equal(rx.pos, 0);
    assert_int_equal(rx.slab->used, 25);
    assert_int_equal(fw__be32(rx.slab->data + 1) + 1, 5000);
    assert_true(scratch_untouched(scratch, sizeof(scratch))); /* copied once, not parked */
    assert_int_equal(stats(p).bytes_held, 2 * 5120);          /* both, within the budget */
    /* the row the consumer holds is intact */
    check_body(&held_chunk->rows[0], 5000, 1);
    fw__pipe_release(p, held_chunk);
    fw__pipe_reclaim(p);
    assert_int_equal(stats(p).bytes_held, 5120);
    assert_int_equal(p->pooled, 1024 + 5120); /* the first standard slab, and the old big one:
                                                  it waits in the pool for the next big row */
    fw__pipe_slab_unref(p, rx.slab);
    fw__pipe_free(p);
}

/* A big slab whose tail (larger than the scratch buffer) starts a row larger than the slab,
 * the budget too small for both slabs, and nothing else held: no release can ever come, so
 * make_room must not wait (it did: FW__PIPE_FULL for ever); the tail is carried over. */
static void test_pipe_make_room_carries_a_tail_larger_than_the_scratch_when_alone(void **state)
{
    (void)state;
    fw__pipe_t *p = pipe_new(1024, 12288, 4, 4, 8, NULL);
    uint8_t scratch[1024];
    memset(scratch, SENTINEL, sizeof(scratch));
    fw__rx_t rx = {NULL, 0, 0, scratch, sizeof(scratch)};
    assert_int_equal(fw__pipe_make_room(p, &rx, false), FW__PIPE_OK);
    put_partial(rx.slab, 5000, 100);
    assert_int_equal(fw__pipe_make_room(p, &rx, false), FW__PIPE_OK);
    fw__slab_t *big = rx.slab;
    assert_int_equal(big->cap, 5120);
    /* a 3,000-byte row, then the first 2,120 bytes of a 9,000-byte one: the slab is full */
    put_message(big->data, 3000, 1);
    static uint8_t next[9000];
    put_message(next, sizeof(next), 2);
    memcpy(big->data + 3000, next, 2120);
    big->used = 5120;
    assert_int_equal(fw__pipe_add(p, big, (const char *)big->data + 5, 2995, false), FW__PIPE_OK);
    rx.pos = 3000;
    assert_int_equal(fw__pipe_flush(p), FW__PIPE_OK);
    fw_row_t row;
    assert_true(fw__pipe_next(p, &row));
    check_body(&row, 3000, 1);
    assert_false(fw__pipe_next(p, &row)); /* released: the producer alone holds the slab */
    assert_int_equal(fw__pipe_make_room(p, &rx, false), FW__PIPE_OK);
    assert_true(rx.slab->cap >= 9000); /* a slab for the whole row (maybe at the same address) */
    assert_int_equal(rx.pos, 0);
    assert_int_equal(rx.slab->used, 2120);
    assert_memory_equal(rx.slab->data, next, 2120);
    assert_true(scratch_untouched(scratch, sizeof(scratch)));
    assert_int_equal(stats(p).bytes_held, rx.slab->cap); /* the new slab alone */
    assert_true(stats(p).bytes_held <= 12288);
    fw__pipe_slab_unref(p, rx.slab);
    fw__pipe_free(p);
}

static void test_pipe_make_room_parks_only_when_the_budget_cannot_hold_both(void **state)
{
    (void)state;
    /* a budget of one big slab and a bit: the free standard slab and the big one do not fit
     * together, so the tail goes through the scratch buffer */
    fw__pipe_t *p = pipe_new(1024, 5500, 4, 4, 8, NULL);
    uint8_t scratch[1024];
    memset(scratch, SENTINEL, sizeof(scratch));
    fw__rx_t rx = {NULL, 0, 0, scratch, sizeof(scratch)};
    assert_int_equal(fw__pipe_make_room(p, &rx, false), FW__PIPE_OK);
    fw__slab_t *std = rx.slab;
    std->used = 500;
    rx.pos = 500;
    put_partial(std, 5000, 300);
    assert_int_equal(fw__pipe_make_room(p, &rx, false), FW__PIPE_OK);
    assert_true(rx.slab->big);
    assert_int_equal(rx.slab->used, 305);
    assert_int_equal(rx.parked, 0);
    assert_int_equal(fw__be32(rx.slab->data + 1) + 1, 5000);
    assert_false(scratch_untouched(scratch, sizeof(scratch))); /* it did go through scratch */
    assert_int_equal(stats(p).bytes_held, 5120);
    assert_true(slab_bytes_owned(p) <= 5500);
    fw__pipe_slab_unref(p, rx.slab);
    fw__pipe_free(p);
}

/*
 * A producer and a consumer in one thread, through make_room, reads of an odd size and rows of
 * mixed sizes (most larger than a slab): every row arrives whole and in order, and keeps its
 * bytes for as long as the consumer holds it (up to `hold` chunks taken whole); the slabs held
 * and allocated never pass the budget; big slabs are reused rather than allocated per row.
 */
static void large_rows_case(size_t budget, size_t read_size, size_t hold)
{
    enum { ROWS = 120, MAXHOLD = 8 };
    counting_alloc_t c = {0};
    fw_allocator_t hook = {counting_malloc_fn, NULL, counting_free_fn, &c};
    fw__pipe_t *p = pipe_new(1024, budget, 2, 2, 8, &hook);
    size_t sizes[ROWS], wire_len = 0;
    for (uint32_t i = 0; i < ROWS; i++) {
        sizes[i] = i % 5 == 4 ? 40 + i : 2500 + (i * 377u) % 2200; /* 2.5-4.7 KB, or small */
        wire_len += sizes[i];
    }
    uint8_t *wire = malloc(wire_len);
    assert_non_null(wire);
    for (size_t i = 0, at = 0; i < ROWS; at += sizes[i], i++)
        put_message(wire + at, sizes[i], (uint32_t)i);
    uint8_t scratch[1024];
    fw__rx_t rx = {NULL, 0, 0, scratch, sizeof(scratch)};
    fw__chunk_t *held[MAXHOLD];
    size_t nheld = 0, sent = 0, parsed = 0;
    uint32_t next_row = 0; /* the next row the consumer expects */
    for (int steps = 0; next_row < ROWS; steps++) {
        if (steps >= 100000)
            fail_msg("stuck: budget %zu read %zu hold %zu: row %u, parsed %zu, sent %zu/%zu, "
                     "held %zu parked %zu", budget, read_size, hold, next_row, parsed, sent,
                     wire_len, stats(p).bytes_held, rx.parked);
        bool full = false;
        int rc = fw__pipe_make_room(p, &rx, false);
        assert_true(rc >= 0);
        if (rc == FW__PIPE_FULL) {
            full = true;
        } else if (sent < wire_len) {
            fw__slab_t *sl = rx.slab;
            size_t n = sl->cap - sl->used;
            if (n > read_size)
                n = read_size;
            if (n > wire_len - sent)
                n = wire_len - sent;
            memcpy(sl->data + sl->used, wire + sent, n);
            sl->used += n;
            sent += n;
        }
        /* parse whole messages */
        while (rx.slab != NULL && rx.slab->used - rx.pos >= 5) {
            size_t m = (size_t)fw__be32(rx.slab->data + rx.pos + 1) + 1;
            if (rx.slab->used - rx.pos < m)
                break;
            assert_int_equal(m, sizes[parsed]);
            rc = fw__pipe_add(p, rx.slab, (const char *)rx.slab->data + rx.pos + 5, m - 5, false);
            if (rc == FW__PIPE_FULL) {
                full = true;
                break;
            }
            assert_int_equal(rc, FW__PIPE_OK);
            rx.pos += m;
            parsed++;
        }
        if (fw__pipe_flush(p) == FW__PIPE_FULL)
            full = true;
        /* the budget, at every step */
        assert_true(stats(p).bytes_held <= budget);
        assert_true(slab_bytes_owned(p) <= budget);
        /* the consumer takes what is queued, and gives back its oldest beyond `hold` (all of
         * them when the producer is stuck) */
        fw__chunk_t *ch;
        while (nheld < MAXHOLD && (ch = fw__pipe_take(p)) != NULL)
            held[nheld++] = ch;
        size_t keep = full || parsed == ROWS ? 0 : hold;
        while (nheld > keep) {
            ch = held[0];
            for (uint32_t k = ch->first; k < ch->n; k++, next_row++)
                check_body(&ch->rows[k], sizes[next_row], next_row);
            fw__pipe_release(p, ch);
            memmove(held, held + 1, --nheld * sizeof(held[0]));
        }
    }
    assert_int_equal(parsed, ROWS);
    /* Allocations: slabs and chunks, a bounded set, however many big rows went through. */
    assert_true(c.ok < 20);
    if (rx.slab != NULL)
        fw__pipe_slab_unref(p, rx.slab);
    fw__pipe_reclaim(p);
    assert_int_equal(stats(p).bytes_held, 0);
    fw__pipe_free(p);
    assert_int_equal(c.frees, c.ok);
    free(wire);
}

static void test_pipe_large_rows_across_slabs_stay_whole_within_the_budget(void **state)
{
    (void)state;
    large_rows_case(64 * KIB, 3000, 4); /* room for several big slabs: the one-copy path */
    large_rows_case(64 * KIB, 700, 0);  /* the consumer keeps up: in-place reuse */
    large_rows_case(64 * KIB, 9000, 2);
    /* one big slab and a bit: parking, or reuse in place. Reads stay under the scratch
     * buffer's size, as the stream's do into standard slabs (a tail larger than the scratch
     * buffer cannot be parked: the producer waits for the consumer) */
    large_rows_case(5 * KIB + 512, 1000, 1);
    large_rows_case(5 * KIB + 512, 600, 0);
    large_rows_case(12 * KIB, 1500, 3);
}

/* ---- one row over the budget ------------------------------------------------------------ */

static void test_pipe_an_oversize_slab_waits_until_nothing_is_held_and_is_freed_on_release(void **state)
{
    (void)state;
    counting_alloc_t c = {0};
    fw_allocator_t hook = {counting_malloc_fn, NULL, counting_free_fn, &c};
    fw__pipe_t *p = pipe_new(1024, 4096, 1, 1, 8, &hook);
    assert_false(fw__pipe_never_fits(p, 4096));
    assert_true(fw__pipe_never_fits(p, 4097));
    fw__slab_t *a = NULL, *big = NULL;
    assert_int_equal(fw__pipe_slab_get(p, 10, &a), FW__PIPE_OK);
    /* something is held: the row must wait */
    assert_int_equal(fw__pipe_slab_get_oversize(p, 10000, &big), FW__PIPE_FULL);
    assert_null(big);
    fw__pipe_slab_unref(p, a); /* pooled */
    assert_int_equal(fw__pipe_slab_get_oversize(p, 10000, &big), FW__PIPE_OK);
    assert_int_equal(big->cap, 10000); /* exactly the row, not rounded */
    assert_true(big->oversize);
    assert_int_equal(p->pooled, 0); /* the cache went first */
    assert_int_equal(stats(p).bytes_held, 10000);
    assert_int_equal(slab_bytes_owned(p), 10000);
    /* while it is held nothing else fits */
    assert_int_equal(fw__pipe_slab_get(p, 10, &a), FW__PIPE_FULL);
    fw__pipe_slab_unref(p, big); /* freed, not pooled */
    assert_int_equal(stats(p).bytes_held, 0);
    assert_int_equal(p->pooled, 0);
    assert_int_equal(slab_bytes_owned(p), 0);
    assert_int_equal(fw__pipe_slab_get(p, 10, &a), FW__PIPE_OK);
    fw__pipe_slab_unref(p, a);
    fw__pipe_free(p);
    assert_int_equal(c.frees, c.ok);
}

static void test_pipe_make_room_gives_a_row_over_the_budget_a_slab_once_the_queue_drains(void **state)
{
    (void)state;
    fw__pipe_t *p = pipe_new(1024, 2048, 1, 1, 8, NULL);
    uint8_t scratch[1024];
    fw__rx_t rx = {NULL, 0, 0, scratch, sizeof(scratch)};
    assert_int_equal(fw__pipe_make_room(p, &rx, false), FW__PIPE_OK);
    assert_int_equal(add_text(p, rx.slab, "[1]"), FW__PIPE_OK); /* a queued row pins the slab */
    assert_int_equal(fw__pipe_flush(p), FW__PIPE_OK);
    rx.pos = rx.slab->used;
    put_partial(rx.slab, 5000, 20); /* a 5000-byte message: the budget is 2048 */
    assert_int_equal(fw__pipe_make_room(p, &rx, false), FW__PIPE_FULL);
    expect_row(p, "[1]"); /* the consumer drains the queue */
    fw_row_t row;
    assert_false(fw__pipe_next(p, &row));
    assert_int_equal(fw__pipe_make_room(p, &rx, false), FW__PIPE_OK);
    assert_true(rx.slab->oversize);
    assert_int_equal(rx.slab->cap, 5000);
    assert_int_equal(rx.slab->used, 25);
    assert_int_equal(rx.pos, 0);
    assert_int_equal(rx.slab->data[0], 'D');
    fw__pipe_slab_unref(p, rx.slab);
    assert_int_equal(stats(p).bytes_held, 0);
    fw__pipe_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipe_init_refuses_invalid_options),
        cmocka_unit_test(test_pipe_init_reports_ring_allocation_failures),
        cmocka_unit_test(test_pipe_init_sizes_the_rings_so_a_release_never_fails),
        cmocka_unit_test(test_pipe_standard_slabs_return_to_the_pool_and_are_reused),
        cmocka_unit_test(test_pipe_standard_slabs_go_to_the_shared_cache_and_come_back_from_it),
        cmocka_unit_test(test_pipe_big_slab_is_rounded_to_whole_slabs_and_reused),
        cmocka_unit_test(test_pipe_cached_big_slabs_are_reused_best_fit),
        cmocka_unit_test(test_pipe_budget_is_full_exactly_when_held_plus_size_exceeds_it),
        cmocka_unit_test(test_pipe_budget_check_does_not_wrap_for_a_huge_need),
        cmocka_unit_test(test_pipe_pooled_slabs_are_freed_to_make_room),
        cmocka_unit_test(test_pipe_slab_get_reclaims_released_chunks_before_reporting_full),
        cmocka_unit_test(test_pipe_chunk_is_flushed_when_full),
        cmocka_unit_test(test_pipe_chunk_is_flushed_when_the_slab_changes),
        cmocka_unit_test(test_pipe_add_is_full_when_the_ring_is_full_and_adds_nothing),
        cmocka_unit_test(test_pipe_add_is_full_when_every_chunk_is_in_use),
        cmocka_unit_test(test_pipe_rows_keep_their_pointer_length_and_null_flag),
        cmocka_unit_test(test_pipe_next_releases_a_chunk_only_after_moving_past_its_last_row),
        cmocka_unit_test(test_pipe_take_returns_the_rest_of_a_partly_read_chunk_first),
        cmocka_unit_test(test_pipe_drain_and_reclaim_return_every_slab_to_the_pool),
        cmocka_unit_test(test_pipe_stats_are_exact_at_every_step),
        cmocka_unit_test(test_pipe_set_chunk_rows_clamps_to_1_and_chunk_cap),
        cmocka_unit_test(test_pipe_soft_limit_stops_standard_slabs_and_not_big_ones),
        cmocka_unit_test(test_pipe_chunks_are_made_for_the_fill_hint),
        cmocka_unit_test(test_pipe_make_room_keeps_a_slab_with_room),
        cmocka_unit_test(test_pipe_make_room_moves_a_tail_that_does_not_fit),
        cmocka_unit_test(test_pipe_make_room_gives_a_big_message_a_slab_of_its_own),
        cmocka_unit_test(test_pipe_make_room_parks_the_tail_while_the_budget_is_full),
        cmocka_unit_test(test_pipe_make_room_reuses_a_free_big_slab_in_place_for_the_next_big_row),
        cmocka_unit_test(test_pipe_make_room_moves_a_tail_once_while_a_row_pins_the_old_slab),
        cmocka_unit_test(test_pipe_make_room_parks_only_when_the_budget_cannot_hold_both),
        cmocka_unit_test(test_pipe_make_room_carries_a_tail_larger_than_the_scratch_when_alone),
        cmocka_unit_test(test_pipe_large_rows_across_slabs_stay_whole_within_the_budget),
        cmocka_unit_test(test_pipe_an_oversize_slab_waits_until_nothing_is_held_and_is_freed_on_release),
        cmocka_unit_test(test_pipe_make_room_gives_a_row_over_the_budget_a_slab_once_the_queue_drains),
        cmocka_unit_test(test_pipe_survives_allocation_failure_at_every_point),
        cmocka_unit_test(test_pipe_two_threads_hand_two_million_rows_in_order_with_intact_bytes),
    };
    return cmocka_run_group_tests_name("stream_pipe", tests, NULL, NULL);
}
