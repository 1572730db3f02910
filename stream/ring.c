/* SPDX-License-Identifier: MIT */
/*
 * The SPSC ring (STYLE 18). Two release/acquire pairs carry all the synchronisation:
 *
 *   producer: write slots, then release-store tail  ->  consumer: acquire-load tail, read slots.
 *     A consumer that sees tail == t also sees every slot written below index t.
 *   consumer: read slots, then release-store head   ->  producer: acquire-load head, write slots.
 *     A producer that sees head == h knows the consumer has finished reading every slot below h,
 *     so it may overwrite them.
 *
 * A side loads its own index relaxed: it is the only writer, so it always reads its own last
 * store. The slots themselves are plain memory; the pairs above order every access to them.
 */
#include "stream.h"

#include <stdlib.h>
#include <string.h>

static void *libc_malloc(void *ud, size_t size)
{
    (void)ud;
    return malloc(size);
}

static void libc_free(void *ud, void *p)
{
    (void)ud;
    free(p);
}

/* realloc_fn stays NULL: stream/ never resizes a block. */
static const fw_allocator_t libc_hook = {libc_malloc, NULL, libc_free, NULL};

/* ---- aligned memory on any hook -------------------------------------------------------- */

/*
 * Why not aligned_alloc(): the memory must come from the embedder's hook (fw_allocator_set
 * accounts for every byte fwire takes), and the hook has no alignment argument. The price is
 * FW__ALIGNED_EXTRA(align) bytes a block: 71 for a ring's slot array, 23 for a slab or a chunk,
 * both noise beside the block. Nothing is assumed of the pointer malloc_fn returns, not even
 * pointer alignment: the back pointer sits just below an `align`-aligned address and align is
 * at least sizeof(void *), so it is aligned whatever the block's start.
 */
void *fw__aligned_alloc(const fw_allocator_t *a, size_t size, size_t align)
{
    if (align < sizeof(void *))
        align = sizeof(void *);
    /* A hostile or buggy size near SIZE_MAX must not wrap into a small block that the caller
     * then writes `size` bytes into. */
    if ((align & (align - 1)) != 0 || size > SIZE_MAX - FW__ALIGNED_EXTRA(align))
        return NULL;
    unsigned char *raw = a->malloc_fn(a->ud, size + FW__ALIGNED_EXTRA(align));
    if (raw == NULL)
        return NULL;
    /* At most sizeof(void *) + align - 1 bytes in, so `size` bytes still fit the block. The
     * offset is added to `raw` rather than the integer cast back, to keep the pointer's
     * provenance. */
    uintptr_t start = (uintptr_t)raw;
    uintptr_t aligned = (start + sizeof(void *) + align - 1) & ~(uintptr_t)(align - 1);
    unsigned char *p = raw + (aligned - start);
    memcpy(p - sizeof(void *), &raw, sizeof(raw));
    return p;
}

void fw__aligned_free(const fw_allocator_t *a, void *p)
{
    if (p == NULL)
        return;
    void *raw;
    memcpy(&raw, (unsigned char *)p - sizeof(void *), sizeof(raw));
    a->free_fn(a->ud, raw);
}

/* ---- init and free --------------------------------------------------------------------- */

int fw__ring_init(fw__ring_t *r, size_t capacity, const fw_allocator_t *alloc)
{
    /* A misaligned ring would still work on x86, but it is undefined behaviour and could put
     * head and tail on one line again: refuse it where it is cheap to notice. */
    if (r == NULL || ((uintptr_t)r & (alignof(fw__ring_t) - 1)) != 0)
        return FW_EINVAL;
    memset(r, 0, sizeof(*r));
    /* Plain initialisation: no other thread can see the ring yet. */
    atomic_init(&r->head, 0);
    atomic_init(&r->tail, 0);
    if (capacity == 0)
        return FW_EINVAL;
    if (alloc == NULL)
        alloc = &libc_hook;
    else if (alloc->malloc_fn == NULL || alloc->free_fn == NULL)
        return FW_EINVAL;
    if (capacity > FW__RING_MAX_CAPACITY)
        return FW_ENOMEM;

    /* A power of two turns `index % capacity` into a mask and keeps it right across counter
     * wrap-around. Cannot overflow: FW__RING_MAX_CAPACITY is itself a power of two. */
    size_t cap = 2;
    while (cap < capacity)
        cap <<= 1;
    /* Line-aligned so the first slots never share a line with whatever the heap put before.
     * cap * sizeof(void *) plus the extra cannot wrap (FW__RING_MAX_CAPACITY); the helper checks
     * all the same. */
    void **slots = fw__aligned_alloc(alloc, cap * sizeof(void *), FW__CACHE_LINE);
    if (slots == NULL)
        return FW_ENOMEM;
    r->slots = slots;
    r->mask = cap - 1;
    r->alloc = *alloc;
    return 0;
}

void fw__ring_free(fw__ring_t *r)
{
    if (r == NULL || r->slots == NULL)
        return;
    fw__aligned_free(&r->alloc, r->slots);
    r->slots = NULL;
    r->mask = 0;
}

/* ---- producer -------------------------------------------------------------------------- */

/*
 * Free slots as the producer sees them, reloading head only when the cached copy cannot
 * satisfy `want`: in steady state the consumer's line is not touched at all.
 */
static size_t producer_room(fw__ring_t *r, size_t tail, size_t want)
{
    size_t room = r->mask + 1 - (tail - r->head_cache);
    if (room < want) {
        /* acquire: pairs with the consumer's release store of head, so its reads of the slots
         * below head happen before we overwrite them. */
        r->head_cache = atomic_load_explicit(&r->head, memory_order_acquire);
        room = r->mask + 1 - (tail - r->head_cache);
    }
    return room;
}

bool fw__ring_push(fw__ring_t *r, void *item)
{
    /* relaxed: our own index; only this thread stores it. */
    size_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    if (producer_room(r, tail, 1) == 0)
        return false;
    r->slots[tail & r->mask] = item;
    /* release: publishes the slot write above; pairs with the consumer's acquire load of tail. */
    atomic_store_explicit(&r->tail, tail + 1, memory_order_release);
    return true;
}

size_t fw__ring_push_many(fw__ring_t *r, void *const *items, size_t n)
{
    if (n == 0)
        return 0;
    /* relaxed: our own index; only this thread stores it. */
    size_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    size_t room = producer_room(r, tail, n);
    if (n > room)
        n = room;
    if (n == 0)
        return 0;
    /* At most two runs: up to the end of the array, then from its start. */
    size_t at = tail & r->mask;
    size_t first = r->mask + 1 - at < n ? r->mask + 1 - at : n;
    memcpy(&r->slots[at], items, first * sizeof(void *));
    memcpy(r->slots, items + first, (n - first) * sizeof(void *));
    /* release: publishes all n slot writes at once; pairs with the consumer's acquire load. */
    atomic_store_explicit(&r->tail, tail + n, memory_order_release);
    return n;
}

/* ---- consumer -------------------------------------------------------------------------- */

/* Items ready as the consumer sees them; the mirror of producer_room(). */
static size_t consumer_ready(fw__ring_t *r, size_t head, size_t want)
{
    size_t ready = r->tail_cache - head;
    if (ready < want) {
        /* acquire: pairs with the producer's release store of tail, so its slot writes below
         * tail are visible before we read them. */
        r->tail_cache = atomic_load_explicit(&r->tail, memory_order_acquire);
        ready = r->tail_cache - head;
    }
    return ready;
}

bool fw__ring_pop(fw__ring_t *r, void **item)
{
    /* relaxed: our own index; only this thread stores it. */
    size_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    if (consumer_ready(r, head, 1) == 0)
        return false;
    *item = r->slots[head & r->mask];
    /* release: orders the slot read above before the producer may reuse the slot; pairs with
     * the producer's acquire load of head. */
    atomic_store_explicit(&r->head, head + 1, memory_order_release);
    return true;
}

size_t fw__ring_pop_many(fw__ring_t *r, void **items, size_t max)
{
    if (max == 0)
        return 0;
    /* relaxed: our own index; only this thread stores it. */
    size_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    size_t n = consumer_ready(r, head, max);
    if (n > max)
        n = max;
    if (n == 0)
        return 0;
    size_t at = head & r->mask;
    size_t first = r->mask + 1 - at < n ? r->mask + 1 - at : n;
    memcpy(items, &r->slots[at], first * sizeof(void *));
    memcpy(items + first, r->slots, (n - first) * sizeof(void *));
    /* release: hands all n slots back at once; pairs with the producer's acquire load of head. */
    atomic_store_explicit(&r->head, head + n, memory_order_release);
    return n;
}

/* ---- any thread ------------------------------------------------------------------------ */

size_t fw__ring_size(const fw__ring_t *r)
{
    /* acquire: pairs with the consumer's release store of head. The consumer had seen a tail of
     * at least this head before storing it, so the tail load below cannot return less. */
    size_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    /* relaxed: a gauge; we read no slot, so nothing needs to be published to us. */
    size_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    size_t n = tail - head;
    /* Between the two loads the consumer may have freed slots and the producer refilled them. */
    return n > r->mask + 1 ? r->mask + 1 : n;
}

size_t fw__ring_capacity(const fw__ring_t *r)
{
    /* 0 for a ring that failed to initialise or was freed, rather than a made-up 1. */
    return r->slots != NULL ? r->mask + 1 : 0;
}
