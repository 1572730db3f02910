/* SPDX-License-Identifier: MIT */
/*
 * The pipe: everything between the loop thread (producer) and the consumer of one stream.
 * Pure: no libuv, no sockets, no clocks, no waiting. lib/ adds the waking on top.
 *
 *   producer                                  consumer
 *   receive slabs (pool, byte budget)
 *   rows -> open chunk --flush--> [full ring] --take--> current chunk -> rows
 *   reclaim <------------------- [empty ring] <--release--
 *
 * Rows are (ptr, len) slices into receive slabs: nothing is copied. A chunk points into exactly
 * one slab, and holds one reference to it. A released chunk travels back through the empty ring,
 * so every slab and chunk count is touched by the producer alone: the only atomics are the two
 * rings and the statistics.
 */
#ifndef FW_PIPE_H
#define FW_PIPE_H

#include "stream.h"

/* A receive buffer. Standard slabs have the pipe's slab size; a "big" slab is made for a
 * message larger than that (rounded up to whole slab sizes, kept for reuse best-fit), and the
 * room after that message takes further reads like any slab. Producer-owned except for the row
 * bytes chunks point at. */
typedef struct fw__slab_s {
    struct fw__slab_s *next;                /* the pool's free list */
    struct fw__slab_s *all_prev, *all_next; /* every slab the pipe owns */
    size_t cap;                             /* bytes in data[] */
    size_t used;                            /* bytes received into data[] */
    uint32_t refs; /* chunks pointing in, plus one while the producer receives into it */
    bool big;
    bool oversize; /* one row larger than the budget allows: freed, never pooled, on release */
    alignas(16) uint8_t data[];
} fw__slab_t;

/* A chunk of rows; the public fw_chunk_t. rows[first..n) are the consumer's. */
struct fw_chunk_s {
    struct fw_chunk_s *next;     /* the producer's free list */
    struct fw_chunk_s *all_next; /* every chunk the pipe owns */
    /* The consumer's list of chunks taken whole (fw__pipe_take) and not yet released, so that
     * a consumer that leaves gives them back too. Consumer only. */
    struct fw_chunk_s *taken_prev, *taken_next;
    bool taken;
    fw__slab_t *slab;
    uint32_t n, first, cap;
    uint64_t bytes; /* JSON bytes of the rows (stats) */
    uint64_t stamp; /* the producer's `now` when the chunk was handed over */
    fw_row_t rows[];
};
typedef struct fw_chunk_s fw__chunk_t;

typedef struct fw__pipe_opts_s {
    size_t slab_size;    /* bytes of a standard slab */
    size_t max_memory;   /* the byte budget: bytes of slabs held (in flight) */
    uint32_t chunk_rows; /* rows per chunk now (may change while running) */
    uint32_t chunk_cap;  /* the largest chunk_rows may become (chunks are allocated for the
                            chunk_rows in use when they are made, see chunk_get) */
    size_t ring_cap;     /* chunks queued at most (rounded up to a power of two) */
    /* A soft limit under the budget, 0 for none: no new standard slab once the standard slabs
     * held would pass it (FW__PIPE_FULL, as for the budget: the producer stalls until the
     * consumer releases). lib/ sets it for threaded streams, whose consumer thread the
     * scheduler may run late: bytes read ahead of it are memory, not speed. Slabs for rows
     * larger than a standard slab are not counted and not limited (by the budget only), and it
     * never stops the producer while the ring is empty (the consumer then holds what it took).
     * At least 4 standard slabs. */
    size_t soft_held;
    /* Optional (NULL for none): runs on the consumer for every chunk it gives back, just
     * before the producer can see it again (lib/ records per-chunk metrics with it). */
    void (*on_release)(void *ud, const fw__chunk_t *c);
    void *hook_ud;
    /* Optional (NULL for none): a cache of standard slabs shared across pipes, so that a new
     * stream writes into pages an earlier one touched (lib/: a fresh page costs a page fault,
     * 6-12 us on the VMs measured). slab_get(bytes) gives a block that fw__aligned_alloc(the
     * pipe's hook, bytes, 16) returned, or NULL; slab_put(block, bytes) keeps a standard slab
     * (true) or leaves it to the pipe to free (false). Called from either side's thread. */
    void *(*slab_get)(size_t bytes);
    bool (*slab_put)(void *block, size_t bytes);
} fw__pipe_opts_t;

typedef struct fw__pipe_s {
    fw__ring_t full;  /* chunks, producer -> consumer */
    fw__ring_t empty; /* released chunks, consumer -> producer */

    /* ---- producer only ---- */
    fw_allocator_t alloc; /* the rings' hook, copied: slabs and chunks come from it too */
    fw__pipe_opts_t o;
    size_t held;          /* bytes of slabs with refs > 0: what the budget bounds */
    size_t held_std;      /* ...of them, standard slabs: what soft_held bounds */
    uint32_t fill_rows;   /* fw__pipe_hint_fill, 0 none */
    /* The last fw__pipe_slab_get said FW__PIPE_FULL for the soft limit (not the budget), and no
     * fw__pipe_make_room or oversize request came since: the producer's stall may end as soon
     * as the consumer has taken every queued chunk (lib/). */
    bool soft_hit;
    size_t pooled;        /* bytes of free slabs kept for reuse (both pools) */
    fw__slab_t *pool;     /* free standard slabs */
    fw__slab_t *big_pool; /* free big slabs, any sizes (reused best-fit) */
    fw__slab_t *all;      /* every slab */
    fw__chunk_t *chunk_pool, *chunk_all;
    size_t chunks;     /* chunks allocated */
    size_t max_chunks; /* never more: the empty ring can hold them all, so release never fails */
    fw__chunk_t *open; /* being filled */
    uint64_t pushed, reclaimed; /* chunks */
    uint64_t rows_pushed;
    uint64_t bytes_pushed; /* JSON bytes of the rows handed over */
    uint64_t now; /* the producer's clock, set by the caller (the pipe reads none): chunks
                     handed over carry it in `stamp` */

    /* ---- statistics: written by one side (relaxed), read by any thread ---- */
    alignas(FW__CACHE_LINE) _Atomic uint64_t st_rows_pushed;
    _Atomic uint64_t st_chunks_pushed;
    _Atomic uint64_t st_rows_filtered;
    _Atomic uint64_t st_bytes_received;
    _Atomic uint64_t st_read_stops;
    _Atomic uint64_t st_held;
    _Atomic uint32_t st_chunk_rows;
    alignas(FW__CACHE_LINE) _Atomic uint64_t st_rows_yielded; /* consumer */
    _Atomic uint64_t st_chunks_taken;                         /* consumer */
    _Atomic uint64_t st_released; /* consumer: chunks released, for the producer's wake test */

    /* ---- consumer only ---- */
    alignas(FW__CACHE_LINE) fw__chunk_t *cur; /* the chunk rows are being read from */
    fw__chunk_t *taken_list;                  /* chunks taken whole, not yet released */
    uint64_t yielded, taken, released;
} fw__pipe_t;

/*
 * Initialises the pipe (aligned like fw__ring_t). `alloc` as for the ring (NULL: libc; else
 * malloc_fn and free_fn are required): the rings, slabs and chunks all come from it.
 * Returns 0, FW_EINVAL (sizes of 0, chunk_rows > chunk_cap) or FW_ENOMEM. After a failure the
 * pipe may be passed to fw__pipe_free(). Thread: before either side uses it.
 */
int fw__pipe_init(fw__pipe_t *p, const fw__pipe_opts_t *o, const fw_allocator_t *alloc);

/* Frees every slab and chunk, wherever it is. Thread: after both sides have stopped. */
void fw__pipe_free(fw__pipe_t *p);

/* ---- producer ---- */

/* Result of the producer calls that can run out of room. */
enum { FW__PIPE_OK = 0, FW__PIPE_FULL = 1 };

/*
 * A slab with room for at least `need` bytes (need <= slab_size: a standard slab; else a big
 * slab, `need` rounded up to whole slab sizes unless that passes the budget, or a cached big
 * slab that holds it), with refs = 1 (the producer's) and used = 0. FW__PIPE_FULL when the
 * budget does not allow it (held + its size > max_memory), after reclaiming released chunks;
 * FW_ENOMEM. Allocated memory (held + pooled) never exceeds max_memory. Thread: producer.
 */
int fw__pipe_slab_get(fw__pipe_t *p, size_t need, fw__slab_t **out);

/*
 * A slab of exactly `need` bytes for one message that the budget can never hold (a row larger
 * than max_memory allows, up to the row-size limit the caller enforces): only when nothing else
 * is held, so memory peaks at the budget's worth of nothing plus this one row, and the row is
 * delivered alone. Pooled slabs are freed first. FW__PIPE_FULL while anything is held (the
 * consumer must release first), FW_ENOMEM. The slab is freed, not pooled, when released.
 * Thread: producer.
 */
int fw__pipe_slab_get_oversize(fw__pipe_t *p, size_t need, fw__slab_t **out);

/* Whether a slab for `need` bytes can never fit the budget, whatever is released. */
bool fw__pipe_never_fits(const fw__pipe_t *p, size_t need);

/* Drops one reference; at zero the slab returns to its pool. Thread: producer. */
void fw__pipe_slab_unref(fw__pipe_t *p, fw__slab_t *s);

/*
 * The producer's receive position: the slab being read into, where parsing stands in it (bytes
 * [pos, slab->used) are not parsed yet), and the tail of a message parked in `scratch` while the
 * budget is full. `scratch` (scratch_cap bytes, at least slab_size) is the caller's.
 */
typedef struct fw__rx_s {
    fw__slab_t *slab; /* NULL before the first read, or while a tail is parked */
    size_t pos;
    size_t parked; /* bytes of a message tail in scratch */
    uint8_t *scratch;
    size_t scratch_cap;
} fw__rx_t;

/* A slab with less room than this takes no more reads: the tail moves to a fresh slab. */
#define FW__PIPE_MIN_ROOM ((size_t)4096)

/*
 * Makes sure rx->slab can take a read: FW__PIPE_OK, FW__PIPE_FULL (the budget is reached: the
 * producer stalls and calls again once the consumer has released), or FW_ENOMEM. An incomplete
 * message at pos (its size known from the 5-byte header, unless `skipping`: its bytes are being
 * dropped as they arrive) that does not fit the rest of the slab moves, with its received part,
 * to a fresh slab, or to one of its own when larger than a slab. The open chunk is flushed first
 * when it points into the old slab. Thread: producer.
 */
int fw__pipe_make_room(fw__pipe_t *p, fw__rx_t *rx, bool skipping);

/*
 * Appends a row that lies in `slab` to the open chunk (json NULL for SQL NULL). Flushes first
 * when the open chunk is full or points into another slab. FW__PIPE_FULL when that flush or a
 * new chunk is not possible (ring full, every chunk in use): nothing was added. FW_ENOMEM.
 * Thread: producer.
 */
int fw__pipe_add(fw__pipe_t *p, fw__slab_t *slab, const char *json, size_t len, bool is_null);

/* Hands the open chunk (if any) to the consumer. FW__PIPE_FULL when the ring is full.
 * Thread: producer. */
int fw__pipe_flush(fw__pipe_t *p);

/* Takes back every chunk the consumer released; returns how many. Thread: producer. */
size_t fw__pipe_reclaim(fw__pipe_t *p);

/* Chunks handed over and not yet reclaimed. Thread: producer. */
static inline uint64_t fw__pipe_outstanding(const fw__pipe_t *p)
{
    return p->pushed - p->reclaimed;
}

/* Counts n received bytes / one filtered row / one read stop (stats). Thread: producer. */
void fw__pipe_note_received(fw__pipe_t *p, size_t n);
void fw__pipe_note_filtered(fw__pipe_t *p);
void fw__pipe_note_read_stop(fw__pipe_t *p);

/* Changes rows per chunk (1..chunk_cap); takes effect for the next chunk. Thread: producer. */
void fw__pipe_set_chunk_rows(fw__pipe_t *p, uint32_t rows);
/* The rows a chunk is expected to get before it is handed over (0: chunk_rows), when that is
 * fewer than chunk_rows: a producer that hands a chunk over after each read, a read bringing
 * about `rows`. New chunks are allocated for it (chunk_get), not for chunk_rows; a chunk
 * still takes up to chunk_rows rows, a smaller one being handed over when full. Thread:
 * producer. */
void fw__pipe_hint_fill(fw__pipe_t *p, uint32_t rows);

/* ---- consumer ---- */

/* The next row: true and *row, or false when nothing is queued. The previous row's chunk is
 * released when the consumer moves past its last row. Thread: consumer. */
bool fw__pipe_next(fw__pipe_t *p, fw_row_t *row);

/* The next row of the chunk being read, if it has one: fw__pipe_next without taking or
 * releasing a chunk (the caller goes through fw__pipe_next when this says false).
 * Thread: consumer. */
static inline bool fw__pipe_next_in_chunk(fw__pipe_t *p, fw_row_t *row)
{
    fw__chunk_t *c = p->cur;
    if (c == NULL || c->first >= c->n)
        return false;
    *row = c->rows[c->first++];
    /* relaxed: a counter for stats only. */
    atomic_store_explicit(&p->st_rows_yielded, ++p->yielded, memory_order_relaxed);
    return true;
}

/* The next whole chunk (the rest of the current one first), or NULL. Thread: consumer. */
fw__chunk_t *fw__pipe_take(fw__pipe_t *p);

/* Gives a chunk back to the producer (a chunk taken whole, or the current one). Never fails;
 * a chunk that is not the consumer's (released twice) is ignored. Thread: consumer. */
void fw__pipe_release(fw__pipe_t *p, fw__chunk_t *c);

/* Releases the current chunk, every chunk taken whole and not released, and every queued one
 * (the consumer leaves). Thread: consumer. */
void fw__pipe_drain(fw__pipe_t *p);

/* Chunks released so far (the producer compares it with its wake threshold). Any thread. */
uint64_t fw__pipe_released(const fw__pipe_t *p);

/* ---- any thread ---- */

typedef struct fw__pipe_stats_s {
    uint64_t rows_buffered, chunks_buffered, bytes_held, rows_yielded, rows_filtered,
        bytes_received, chunks_taken, read_stops;
    uint32_t chunk_rows;
} fw__pipe_stats_t;

void fw__pipe_stats(const fw__pipe_t *p, fw__pipe_stats_t *out);

#endif /* FW_PIPE_H */
