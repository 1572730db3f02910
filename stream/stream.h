/* SPDX-License-Identifier: MIT */
/*
 * stream/: the data path between the loop thread (producer) and the consumer. Pure: no libuv,
 * no sockets, no clocks, no globals. Every function states which side may call it.
 *
 * The ring is the one place where the two threads meet, so it is the one place with atomics:
 * everything else a side owns is plain memory reached only through items handed over here.
 */
#ifndef FW_STREAM_H
#define FW_STREAM_H

#include "fwire_base.h"

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- SPSC ring ------------------------------------------------------------------------- */

/*
 * A cache line on every CPU fwire targets (x86-64, arm64). Getting it wrong costs speed, never
 * correctness: the fields it separates are independent atomics or single-owner plain data.
 */
#define FW__CACHE_LINE 64

/* The largest capacity fw__ring_init() accepts (2^60 on 64-bit): the largest power of two whose
 * slot array's size in bytes still fits a size_t, with room left for FW__ALIGNED_EXTRA. */
#define FW__RING_MAX_CAPACITY ((SIZE_MAX / sizeof(void *) / 2) + 1)

/*
 * Memory aligned beyond what an allocator hook promises, built on its malloc_fn and free_fn
 * (stream/ takes the public fw_allocator_t and nothing else). The ring's slot array wants a
 * cache line and a slab's data 16 bytes, while fw_allocator_t promises no alignment: malloc's
 * 16 bytes is usual, but an embedder's hook may hand out less. So fw__aligned_alloc() asks
 * malloc_fn for `size` plus FW__ALIGNED_EXTRA(align) bytes, returns the first `align`-aligned
 * address at least one pointer past the block's start, and keeps the block's own address in the
 * pointer just below the one it returns, where fw__aligned_free() finds it for free_fn.
 *
 * fw__aligned_alloc: `align` is a power of two (below sizeof(void *) it is raised to that);
 * returns NULL, without calling the hook, for any other `align` or when `size` plus the extra
 * would not fit a size_t, and NULL when malloc_fn does. fw__aligned_free: `p` is NULL or from
 * fw__aligned_alloc() with the same hook. Thread: whatever the hook allows.
 */
#define FW__ALIGNED_EXTRA(align) (sizeof(void *) - 1 + (align))
void *fw__aligned_alloc(const fw_allocator_t *a, size_t size, size_t align);
void fw__aligned_free(const fw_allocator_t *a, void *p);

/*
 * A single-producer single-consumer queue of `void *`. One thread pushes, one thread pops; they
 * may be the same thread. Neither side ever blocks or spins inside the ring.
 *
 * head and tail count items ever popped and ever pushed; they only grow, and a slot is
 * `index & mask`. Unsigned wrap-around keeps `tail - head` and `index & mask` right even after a
 * counter wraps (after 2^32 items on a 32-bit target), because the capacity is a power of two and
 * so divides the counter's range.
 *
 * Each side owns one cache line: its own index (written by it, read by the other side) and a
 * cached copy of the other side's index (private). A side reads the other's line only when its
 * cached copy says "full" or "empty", so a burst of pushes (or pops) pays for one cross-CPU read
 * of the other index, not one per item.
 *
 * The struct is aligned to FW__CACHE_LINE: give it static or automatic storage, embed it in a
 * struct with the same, or allocate it with alignof(fw__ring_t). fw__ring_init() refuses storage
 * that is not aligned.
 */
typedef struct fw__ring_s {
    /* The consumer's line. */
    alignas(FW__CACHE_LINE) _Atomic size_t head; /* next index to pop; written by the consumer */
    size_t tail_cache; /* the consumer's last view of tail; consumer only */

    /* The producer's line. */
    alignas(FW__CACHE_LINE) _Atomic size_t tail; /* next index to push; written by the producer */
    size_t head_cache; /* the producer's last view of head; producer only */

    /* Read-only after init, so both sides may cache this line for good. */
    alignas(FW__CACHE_LINE) void **slots;
    size_t mask;          /* capacity - 1 */
    fw_allocator_t alloc; /* the slot array's hook (malloc_fn and free_fn), copied at init */
} fw__ring_t;

/*
 * Initialises an empty ring holding at least `capacity` items: the capacity is rounded up to a
 * power of two, minimum 2. `alloc` is copied (NULL for libc); the ring calls its malloc_fn and
 * free_fn, through fw__aligned_alloc(), so both are required and realloc_fn may be NULL.
 * Returns 0; FW_EINVAL for a NULL or misaligned `r`, a capacity of 0 or a hook missing one of
 * those two; FW_ENOMEM when the allocation fails or the capacity exceeds FW__RING_MAX_CAPACITY
 * (as calloc() does when the size cannot be represented). After any failure but a NULL or
 * misaligned `r`, the ring is safe to pass to fw__ring_free().
 * Thread: before either side uses the ring; the thread start (or another synchronising handover)
 * that gives the ring to the other side publishes the initialised fields.
 */
int fw__ring_init(fw__ring_t *r, size_t capacity, const fw_allocator_t *alloc);

/*
 * Releases the slot array. Items still queued are not touched: drain them first if they own
 * anything. `r` may be NULL or already freed. Thread: after both sides have stopped.
 */
void fw__ring_free(fw__ring_t *r);

/* Appends one item. Returns false, changing nothing, when the ring is full. Thread: producer. */
bool fw__ring_push(fw__ring_t *r, void *item);

/*
 * Appends up to `n` items from items[0..n) in order, as many as there is room for, with one
 * publication for the whole batch. Returns how many were appended (0 when full).
 * Thread: producer.
 */
size_t fw__ring_push_many(fw__ring_t *r, void *const *items, size_t n);

/* Removes the oldest item into *item. Returns false, changing nothing, when the ring is empty.
 * Thread: consumer. */
bool fw__ring_pop(fw__ring_t *r, void **item);

/*
 * Removes up to `max` of the oldest items into items[0..), oldest first, with one publication for
 * the whole batch. Returns how many were removed (0 when empty). Thread: consumer.
 */
size_t fw__ring_pop_many(fw__ring_t *r, void **items, size_t max);

/*
 * Items queued. Exact when called by either side while the other is quiet; otherwise it may be
 * off by the items moved during the call, and is always within 0..capacity.
 * Thread: any thread (a gauge for stats; never a basis for deciding that push or pop succeeds).
 */
size_t fw__ring_size(const fw__ring_t *r);

/* The capacity after rounding. Thread: any thread. */
size_t fw__ring_capacity(const fw__ring_t *r);

#endif /* FW_STREAM_H */
