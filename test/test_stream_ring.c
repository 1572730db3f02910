/* SPDX-License-Identifier: MIT */
/*
 * The SPSC ring: capacity rules, full/empty edges, FIFO order across wrap-around, batches,
 * argument and allocation failures (STYLE 25), a line-aligned slot array on a hook that hands out
 * misaligned blocks (and the aligned helper's size check), and two threads handing over two
 * million items, which is the case ThreadSanitizer must find clean (STYLE 18, 29).
 */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "stream.h"

/* Items are small integers; 0 is never pushed, so a popped 0 means "not written". */
#define ITEM(i) ((void *)(uintptr_t)(i))
#define VALUE(p) ((uintptr_t)(p))

/* ---- an allocator hook that counts, and fails on request -------------------------------- */

typedef struct counting_alloc_s {
    int allocs;
    int frees;
    bool fail;
    size_t last_size;
} counting_alloc_t;

static void *counting_malloc_fn(void *ud, size_t size)
{
    counting_alloc_t *c = ud;
    c->allocs++;
    c->last_size = size;
    if (c->fail)
        return NULL;
    return malloc(size);
}

static void counting_free_fn(void *ud, void *p)
{
    counting_alloc_t *c = ud;
    c->frees++;
    free(p);
}

/*
 * A hook whose blocks start `skew` bytes past a malloc'd block (so 8 is a pointer-aligned
 * address off malloc's 16): the ring must align the slot array itself. It remembers the block it
 * handed out, to check that the slots lie inside it and that free gets that block back.
 */
typedef struct skewed_alloc_s {
    size_t skew;
    unsigned char *block; /* what malloc_fn returned last, NULL once freed */
    size_t size;
    int frees;
} skewed_alloc_t;

static void *skewed_malloc_fn(void *ud, size_t size)
{
    skewed_alloc_t *k = ud;
    unsigned char *raw = malloc(size + k->skew);
    if (raw == NULL)
        return NULL;
    k->block = raw + k->skew;
    k->size = size;
    return k->block;
}

static void skewed_free_fn(void *ud, void *p)
{
    skewed_alloc_t *k = ud;
    assert_ptr_equal(p, k->block);
    k->frees++;
    k->block = NULL;
    free((unsigned char *)p - k->skew);
}

/* ---- single-thread behaviour ----------------------------------------------------------- */

static void test_ring_initialises_empty_and_frees_twice_safely(void **state)
{
    (void)state;
    fw__ring_t r;
    assert_int_equal(fw__ring_init(&r, 16, NULL), 0);
    assert_int_equal(fw__ring_capacity(&r), 16);
    assert_int_equal(fw__ring_size(&r), 0);
    fw__ring_free(&r);
    assert_int_equal(fw__ring_capacity(&r), 0);
    fw__ring_free(&r);
    fw__ring_free(NULL);
}

static void test_ring_rounds_capacity_up_to_a_power_of_two(void **state)
{
    (void)state;
    static const struct {
        size_t asked, got;
    } cases[] = {{1, 2}, {2, 2},  {3, 4},       {4, 4},       {5, 8},
                 {8, 8}, {9, 16}, {1000, 1024}, {1024, 1024}, {1025, 2048}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fw__ring_t r;
        assert_int_equal(fw__ring_init(&r, cases[i].asked, NULL), 0);
        assert_int_equal(fw__ring_capacity(&r), cases[i].got);
        fw__ring_free(&r);
    }
}

static void test_ring_push_fails_exactly_when_capacity_is_reached(void **state)
{
    (void)state;
    fw__ring_t r;
    assert_int_equal(fw__ring_init(&r, 8, NULL), 0);
    for (uintptr_t i = 1; i <= 8; i++)
        assert_true(fw__ring_push(&r, ITEM(i)));
    assert_false(fw__ring_push(&r, ITEM(9)));
    assert_false(fw__ring_push(&r, ITEM(9)));
    assert_int_equal(fw__ring_size(&r), 8);

    /* One pop makes exactly one slot of room, and the refused item left no trace. */
    void *p = NULL;
    assert_true(fw__ring_pop(&r, &p));
    assert_int_equal(VALUE(p), 1);
    assert_true(fw__ring_push(&r, ITEM(9)));
    assert_false(fw__ring_push(&r, ITEM(10)));
    for (uintptr_t i = 2; i <= 9; i++) {
        assert_true(fw__ring_pop(&r, &p));
        assert_int_equal(VALUE(p), i);
    }
    assert_false(fw__ring_pop(&r, &p));
    fw__ring_free(&r);
}

static void test_ring_pop_on_an_empty_ring_returns_false_and_leaves_the_item_untouched(void **state)
{
    (void)state;
    fw__ring_t r;
    assert_int_equal(fw__ring_init(&r, 4, NULL), 0);
    void *p = ITEM(77);
    assert_false(fw__ring_pop(&r, &p));
    assert_int_equal(VALUE(p), 77);

    /* Empty again after a push and a pop. */
    assert_true(fw__ring_push(&r, ITEM(1)));
    assert_true(fw__ring_pop(&r, &p));
    assert_false(fw__ring_pop(&r, &p));
    assert_int_equal(VALUE(p), 1);
    fw__ring_free(&r);
}

static void test_ring_pops_items_in_fifo_order(void **state)
{
    (void)state;
    fw__ring_t r;
    assert_int_equal(fw__ring_init(&r, 32, NULL), 0);
    for (uintptr_t i = 1; i <= 20; i++)
        assert_true(fw__ring_push(&r, ITEM(i)));
    for (uintptr_t i = 1; i <= 20; i++) {
        void *p = NULL;
        assert_true(fw__ring_pop(&r, &p));
        assert_int_equal(VALUE(p), i);
    }
    fw__ring_free(&r);
}

static void test_ring_keeps_order_across_many_wrap_arounds(void **state)
{
    (void)state;
    fw__ring_t r;
    assert_int_equal(fw__ring_init(&r, 4, NULL), 0);
    /* Bursts of 1..4 items, so the indices meet the array's end at every offset. */
    uintptr_t next_in = 1, next_out = 1;
    for (int round = 0; round < 10000; round++) {
        size_t burst = (size_t)round % 4 + 1;
        for (size_t k = 0; k < burst; k++)
            assert_true(fw__ring_push(&r, ITEM(next_in++)));
        assert_int_equal(fw__ring_size(&r), burst);
        for (size_t k = 0; k < burst; k++) {
            void *p = NULL;
            assert_true(fw__ring_pop(&r, &p));
            assert_int_equal(VALUE(p), next_out++);
        }
    }
    assert_int_equal(next_in, next_out);
    assert_true(next_in > 10000 * 2);
    fw__ring_free(&r);
}

static void test_ring_push_many_appends_only_what_fits(void **state)
{
    (void)state;
    fw__ring_t r;
    assert_int_equal(fw__ring_init(&r, 8, NULL), 0);
    void *in[10];
    for (uintptr_t i = 0; i < 10; i++)
        in[i] = ITEM(i + 1);

    assert_int_equal(fw__ring_push_many(&r, in, 0), 0);
    assert_int_equal(fw__ring_push_many(&r, in, 5), 5);
    /* Three slots left: a batch of five is cut to three, in order. */
    assert_int_equal(fw__ring_push_many(&r, in + 5, 5), 3);
    assert_int_equal(fw__ring_size(&r), 8);
    assert_int_equal(fw__ring_push_many(&r, in + 8, 2), 0);
    assert_false(fw__ring_push(&r, in[8]));

    void *out[8];
    assert_int_equal(fw__ring_pop_many(&r, out, 8), 8);
    for (uintptr_t i = 0; i < 8; i++)
        assert_int_equal(VALUE(out[i]), i + 1);
    fw__ring_free(&r);
}

static void test_ring_pop_many_returns_only_what_is_queued(void **state)
{
    (void)state;
    fw__ring_t r;
    assert_int_equal(fw__ring_init(&r, 8, NULL), 0);
    void *out[8] = {0};
    assert_int_equal(fw__ring_pop_many(&r, out, 8), 0);
    assert_null(out[0]);

    for (uintptr_t i = 1; i <= 3; i++)
        assert_true(fw__ring_push(&r, ITEM(i)));
    assert_int_equal(fw__ring_pop_many(&r, out, 0), 0);
    assert_int_equal(fw__ring_pop_many(&r, out, 2), 2);
    assert_int_equal(VALUE(out[0]), 1);
    assert_int_equal(VALUE(out[1]), 2);
    /* One left: asking for eight gives one and does not write past it. */
    memset(out, 0, sizeof(out));
    assert_int_equal(fw__ring_pop_many(&r, out, 8), 1);
    assert_int_equal(VALUE(out[0]), 3);
    assert_null(out[1]);
    assert_int_equal(fw__ring_pop_many(&r, out, 8), 0);
    fw__ring_free(&r);
}

static void test_ring_batches_split_correctly_at_the_end_of_the_array(void **state)
{
    (void)state;
    fw__ring_t r;
    assert_int_equal(fw__ring_init(&r, 8, NULL), 0);
    void *in[8], *out[8];
    uintptr_t next_in = 1, next_out = 1;
    /* Batches of 1..8 against every starting offset: each one crosses the end at some point. */
    for (int round = 0; round < 2000; round++) {
        size_t n = (size_t)round % 8 + 1;
        for (size_t k = 0; k < n; k++)
            in[k] = ITEM(next_in + k);
        assert_int_equal(fw__ring_push_many(&r, in, n), n);
        next_in += n;
        /* Pop in two unequal parts so the consumer's offset differs from the producer's. */
        size_t part = n / 2 + 1 > n ? n : n / 2 + 1;
        assert_int_equal(fw__ring_pop_many(&r, out, part), part);
        assert_int_equal(fw__ring_pop_many(&r, out + part, 8), n - part);
        for (size_t k = 0; k < n; k++)
            assert_int_equal(VALUE(out[k]), next_out++);
    }
    assert_int_equal(fw__ring_size(&r), 0);
    fw__ring_free(&r);
}

static void test_ring_size_tracks_pushes_and_pops(void **state)
{
    (void)state;
    fw__ring_t r;
    assert_int_equal(fw__ring_init(&r, 4, NULL), 0);
    void *p;
    assert_int_equal(fw__ring_size(&r), 0);
    assert_true(fw__ring_push(&r, ITEM(1)));
    assert_int_equal(fw__ring_size(&r), 1);
    assert_true(fw__ring_push(&r, ITEM(2)));
    assert_true(fw__ring_push(&r, ITEM(3)));
    assert_int_equal(fw__ring_size(&r), 3);
    assert_true(fw__ring_pop(&r, &p));
    assert_int_equal(fw__ring_size(&r), 2);
    assert_true(fw__ring_push(&r, ITEM(4)));
    assert_true(fw__ring_push(&r, ITEM(5)));
    assert_int_equal(fw__ring_size(&r), 4);
    void *out[4];
    assert_int_equal(fw__ring_pop_many(&r, out, 4), 4);
    assert_int_equal(fw__ring_size(&r), 0);
    fw__ring_free(&r);
}

static void test_ring_refuses_invalid_arguments(void **state)
{
    (void)state;
    counting_alloc_t c = {0};
    fw__ring_t r;
    assert_int_equal(fw__ring_init(NULL, 8, NULL), FW_EINVAL);
    assert_int_equal(fw__ring_init(&r, 0, NULL), FW_EINVAL);
    assert_int_equal(fw__ring_capacity(&r), 0);
    fw__ring_free(&r);

    /* A hook with one function missing is a bug in the caller, not a request for libc. */
    fw_allocator_t half = {counting_malloc_fn, NULL, NULL, &c};
    assert_int_equal(fw__ring_init(&r, 8, &half), FW_EINVAL);
    half = (fw_allocator_t){NULL, NULL, counting_free_fn, &c};
    assert_int_equal(fw__ring_init(&r, 8, &half), FW_EINVAL);
    assert_int_equal(c.allocs, 0);

    /* Storage that breaks the struct's cache-line alignment; the ring never touches it. */
    static alignas(FW__CACHE_LINE) unsigned char raw[2 * sizeof(fw__ring_t)];
    void *misaligned = raw + sizeof(void *);
    assert_int_equal(fw__ring_init(misaligned, 8, NULL), FW_EINVAL);
}

static void test_ring_refuses_capacities_that_would_overflow(void **state)
{
    (void)state;
    counting_alloc_t c = {.fail = true};
    fw_allocator_t hook = {counting_malloc_fn, NULL, counting_free_fn, &c};
    fw__ring_t r;

    /* Past the limit: refused before any allocation, including values whose rounding up to a
     * power of two or whose size in bytes would wrap. */
    const size_t past[] = {FW__RING_MAX_CAPACITY + 1, SIZE_MAX / 2 + 2, SIZE_MAX};
    for (size_t i = 0; i < sizeof(past) / sizeof(past[0]); i++) {
        assert_int_equal(fw__ring_init(&r, past[i], &hook), FW_ENOMEM);
        fw__ring_free(&r);
    }
    assert_int_equal(c.allocs, 0);

    /* At the limit: the request reaches the allocator with an exact, unwrapped size (the slot
     * array plus the alignment extra). */
    const size_t at_limit =
        FW__RING_MAX_CAPACITY * sizeof(void *) + FW__ALIGNED_EXTRA(FW__CACHE_LINE);
    assert_int_equal(fw__ring_init(&r, FW__RING_MAX_CAPACITY, &hook), FW_ENOMEM);
    assert_int_equal(c.allocs, 1);
    assert_int_equal(c.last_size, at_limit);
    assert_int_equal((c.last_size - FW__ALIGNED_EXTRA(FW__CACHE_LINE)) / sizeof(void *),
                     FW__RING_MAX_CAPACITY);

    /* One above half the limit rounds up to the limit itself, not past it. */
    assert_int_equal(fw__ring_init(&r, FW__RING_MAX_CAPACITY / 2 + 1, &hook), FW_ENOMEM);
    assert_int_equal(c.allocs, 2);
    assert_int_equal(c.last_size, at_limit);
    assert_int_equal(c.frees, 0);
    fw__ring_free(&r);
    assert_int_equal(c.frees, 0);
}

static void test_ring_reports_allocation_failure_through_the_hook(void **state)
{
    (void)state;
    counting_alloc_t c = {.fail = true};
    fw_allocator_t hook = {counting_malloc_fn, NULL, counting_free_fn, &c};
    fw__ring_t r;
    assert_int_equal(fw__ring_init(&r, 100, &hook), FW_ENOMEM);
    assert_int_equal(c.allocs, 1);
    fw__ring_free(&r);
    assert_int_equal(c.frees, 0);

    /* The same hook succeeding: one line-aligned array of the rounded capacity, freed once. */
    c.fail = false;
    assert_int_equal(fw__ring_init(&r, 100, &hook), 0);
    assert_int_equal(c.allocs, 2);
    assert_int_equal(c.last_size, 128 * sizeof(void *) + FW__ALIGNED_EXTRA(FW__CACHE_LINE));
    assert_int_equal((uintptr_t)r.slots % FW__CACHE_LINE, 0);
    assert_true(fw__ring_push(&r, ITEM(1)));
    fw__ring_free(&r);
    fw__ring_free(&r);
    assert_int_equal(c.frees, 1);
}

/* The slot array is line-aligned whatever the hook's blocks are aligned to: at malloc's 16, 8
 * past it, and every other byte offset within a line. */
static void test_ring_aligns_the_slot_array_on_a_hook_that_returns_misaligned_blocks(void **state)
{
    (void)state;
    for (size_t skew = 0; skew < FW__CACHE_LINE; skew++) {
        skewed_alloc_t k = {.skew = skew};
        fw_allocator_t hook = {skewed_malloc_fn, NULL, skewed_free_fn, &k};
        fw__ring_t r;
        assert_int_equal(fw__ring_init(&r, 16, &hook), 0);
        const size_t bytes = 16 * sizeof(void *);
        assert_int_equal(k.size, bytes + FW__ALIGNED_EXTRA(FW__CACHE_LINE));
        if (((uintptr_t)r.slots % FW__CACHE_LINE) != 0)
            fail_msg("skew %zu: slots at %p", skew, (void *)r.slots);
        /* Inside the block, with room for the back pointer below. */
        unsigned char *slots = (unsigned char *)r.slots;
        assert_true(slots >= k.block + sizeof(void *));
        assert_true(slots + bytes <= k.block + k.size);
        /* Every slot written and read back (ASan checks the bounds), twice around. */
        for (uintptr_t i = 1; i <= 32; i++) {
            assert_true(fw__ring_push(&r, ITEM(i)));
            void *p;
            assert_true(fw__ring_pop(&r, &p));
            assert_int_equal(VALUE(p), i);
        }
        fw__ring_free(&r); /* skewed_free_fn checks it gets the block it handed out */
        assert_int_equal(k.frees, 1);
        assert_null(k.block);
    }
}

/* The helper under the ring, on its own: the size check four ways, and the alignment rules. */
static void test_aligned_alloc_refuses_sizes_that_would_wrap_before_calling_the_hook(void **state)
{
    (void)state;
    counting_alloc_t c = {.fail = true};
    fw_allocator_t hook = {counting_malloc_fn, NULL, counting_free_fn, &c};
    const size_t aligns[] = {16, FW__CACHE_LINE, 4096};
    for (size_t i = 0; i < sizeof(aligns) / sizeof(aligns[0]); i++) {
        const size_t align = aligns[i];
        const size_t limit = SIZE_MAX - FW__ALIGNED_EXTRA(align);
        c = (counting_alloc_t){.fail = true};
        /* At the limit: the hook is asked for SIZE_MAX exactly (and refuses here). */
        assert_null(fw__aligned_alloc(&hook, limit, align));
        assert_int_equal(c.allocs, 1);
        assert_int_equal(c.last_size, SIZE_MAX);
        /* One past, and far past: refused before the hook, so it never sees a wrapped size. */
        assert_null(fw__aligned_alloc(&hook, limit + 1, align));
        assert_null(fw__aligned_alloc(&hook, SIZE_MAX, align));
        assert_int_equal(c.allocs, 1);
        /* An ordinary size: the size plus the extra, aligned, and freed through the hook. */
        c.fail = false;
        void *p = fw__aligned_alloc(&hook, 100, align);
        assert_non_null(p);
        assert_int_equal(c.last_size, 100 + FW__ALIGNED_EXTRA(align));
        assert_int_equal((uintptr_t)p % align, 0);
        memset(p, 0xab, 100);
        fw__aligned_free(&hook, p);
        assert_int_equal(c.frees, 1);
    }
    /* An alignment that is not a power of two is refused without calling the hook; one below a
     * pointer's size is raised to it; NULL frees nothing. */
    c = (counting_alloc_t){0};
    assert_null(fw__aligned_alloc(&hook, 8, 24));
    assert_int_equal(c.allocs, 0);
    void *p = fw__aligned_alloc(&hook, 3, 1);
    assert_non_null(p);
    assert_int_equal(c.last_size, 3 + FW__ALIGNED_EXTRA(sizeof(void *)));
    assert_int_equal((uintptr_t)p % sizeof(void *), 0);
    fw__aligned_free(&hook, p);
    fw__aligned_free(&hook, NULL);
    assert_int_equal(c.frees, 1);
}

/* ---- two threads ----------------------------------------------------------------------- */

#define HANDOVER_ITEMS 2000000u

typedef struct handover_s {
    fw__ring_t ring;
    bool batches;           /* use push_many/pop_many instead of push/pop */
    atomic_bool done;       /* the consumer has seen the last item */
    atomic_bool size_wrong; /* the watcher saw a size outside 0..capacity */
} handover_t;

/* Spinning with sched_yield() rather than a bare loop keeps the test quick on one CPU and
 * under ThreadSanitizer, where the other side may not be running at all. */
static void *producer_main(void *arg)
{
    handover_t *h = arg;
    uintptr_t next = 1;
    while (next <= HANDOVER_ITEMS) {
        if (h->batches) {
            void *batch[37]; /* not a divisor of the capacity, so batches straddle the end */
            size_t n = 0;
            while (n < 37 && next + n <= HANDOVER_ITEMS) {
                batch[n] = ITEM(next + n);
                n++;
            }
            size_t sent = 0;
            while (sent < n) {
                size_t k = fw__ring_push_many(&h->ring, batch + sent, n - sent);
                if (k == 0)
                    sched_yield();
                sent += k;
            }
            next += n;
        } else if (fw__ring_push(&h->ring, ITEM(next))) {
            next++;
        } else {
            sched_yield();
        }
    }
    return NULL;
}

/* A third thread reading the gauge while both sides run: it must stay in range and race-free. */
static void *watcher_main(void *arg)
{
    handover_t *h = arg;
    size_t cap = fw__ring_capacity(&h->ring);
    while (!atomic_load_explicit(&h->done, memory_order_relaxed)) {
        if (fw__ring_size(&h->ring) > cap)
            atomic_store_explicit(&h->size_wrong, true, memory_order_relaxed);
        sched_yield();
    }
    return NULL;
}

static void run_handover(bool batches)
{
    /* Static, not on the stack: should an assertion longjmp out of this function while a thread
     * still runs, that thread must not be left pointing into a dead frame. */
    static handover_t h;
    memset(&h, 0, sizeof(h));
    h.batches = batches;
    atomic_init(&h.done, false);
    atomic_init(&h.size_wrong, false);
    /* Small, so both full and empty happen often and the cached indices are reloaded a lot. */
    assert_int_equal(fw__ring_init(&h.ring, 64, NULL), 0);

    pthread_t producer, watcher;
    assert_int_equal(pthread_create(&producer, NULL, producer_main, &h), 0);
    assert_int_equal(pthread_create(&watcher, NULL, watcher_main, &h), 0);

    /* The consumer runs here. cmocka's asserts must not fire while the other threads still need
     * the ring, so record the first disorder and assert after the joins. */
    uintptr_t expect = 1, first_bad = 0;
    uint64_t count = 0, sum = 0;
    void *batch[50];
    while (count < HANDOVER_ITEMS) {
        size_t n;
        if (batches) {
            n = fw__ring_pop_many(&h.ring, batch, sizeof(batch) / sizeof(batch[0]));
        } else {
            n = fw__ring_pop(&h.ring, &batch[0]) ? 1 : 0;
        }
        if (n == 0) {
            sched_yield();
            continue;
        }
        for (size_t k = 0; k < n; k++) {
            uintptr_t v = VALUE(batch[k]);
            if (v != expect && first_bad == 0)
                first_bad = expect;
            expect = v + 1;
            count++;
            sum += v;
        }
    }
    atomic_store_explicit(&h.done, true, memory_order_relaxed);
    assert_int_equal(pthread_join(producer, NULL), 0);
    assert_int_equal(pthread_join(watcher, NULL), 0);

    assert_int_equal(first_bad, 0);
    assert_int_equal(count, HANDOVER_ITEMS);
    assert_int_equal(sum, (uint64_t)HANDOVER_ITEMS * (HANDOVER_ITEMS + 1) / 2);
    assert_false(atomic_load(&h.size_wrong));
    /* Nothing beyond the last item was pushed. */
    void *extra;
    assert_false(fw__ring_pop(&h.ring, &extra));
    assert_int_equal(fw__ring_size(&h.ring), 0);
    fw__ring_free(&h.ring);
}

static void test_ring_hands_two_million_items_between_threads_in_order(void **state)
{
    (void)state;
    run_handover(false);
}

static void test_ring_batches_hand_two_million_items_between_threads_in_order(void **state)
{
    (void)state;
    run_handover(true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring_initialises_empty_and_frees_twice_safely),
        cmocka_unit_test(test_ring_rounds_capacity_up_to_a_power_of_two),
        cmocka_unit_test(test_ring_push_fails_exactly_when_capacity_is_reached),
        cmocka_unit_test(
            test_ring_pop_on_an_empty_ring_returns_false_and_leaves_the_item_untouched),
        cmocka_unit_test(test_ring_pops_items_in_fifo_order),
        cmocka_unit_test(test_ring_keeps_order_across_many_wrap_arounds),
        cmocka_unit_test(test_ring_push_many_appends_only_what_fits),
        cmocka_unit_test(test_ring_pop_many_returns_only_what_is_queued),
        cmocka_unit_test(test_ring_batches_split_correctly_at_the_end_of_the_array),
        cmocka_unit_test(test_ring_size_tracks_pushes_and_pops),
        cmocka_unit_test(test_ring_refuses_invalid_arguments),
        cmocka_unit_test(test_ring_refuses_capacities_that_would_overflow),
        cmocka_unit_test(test_ring_reports_allocation_failure_through_the_hook),
        cmocka_unit_test(test_ring_aligns_the_slot_array_on_a_hook_that_returns_misaligned_blocks),
        cmocka_unit_test(test_aligned_alloc_refuses_sizes_that_would_wrap_before_calling_the_hook),
        cmocka_unit_test(test_ring_hands_two_million_items_between_threads_in_order),
        cmocka_unit_test(test_ring_batches_hand_two_million_items_between_threads_in_order),
    };
    return cmocka_run_group_tests_name("stream_ring", tests, NULL, NULL);
}
