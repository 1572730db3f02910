/* SPDX-License-Identifier: MIT */
/*
 * The pipe (see pipe.h). Ownership in one sentence: the producer owns every slab and chunk
 * count; a chunk crosses to the consumer through `full` and comes back through `empty`, and
 * those two rings carry every ordering the pair needs (ring.c explains them). The statistics
 * are relaxed atomics: each is exact on its own, and nothing is published through them.
 */
#include "fw_util.h"
#include "pipe.h"

#include <string.h>

/* 16 bytes: fw__slab_t's data[] is alignas(16), and chunks take the same for simplicity. */
static void *pipe_alloc(fw__pipe_t *p, size_t size)
{
    return fw__aligned_alloc(&p->alloc, size, 16);
}

int fw__pipe_init(fw__pipe_t *p, const fw__pipe_opts_t *o, const fw_allocator_t *alloc)
{
    if (p == NULL || ((uintptr_t)p & (alignof(fw__pipe_t) - 1)) != 0)
        return FW_EINVAL;
    memset(p, 0, sizeof(*p));
    if (o == NULL || o->slab_size == 0 || o->max_memory == 0 || o->chunk_rows == 0 ||
        o->chunk_rows > o->chunk_cap || o->ring_cap == 0 || o->chunk_cap > UINT32_MAX / 2)
        return FW_EINVAL;
    p->o = *o;
    int rc = fw__ring_init(&p->full, o->ring_cap, alloc);
    if (rc < 0)
        return rc;
    p->alloc = p->full.alloc;
    /* Chunks: up to a full ring, as many again held by the consumer (next_chunk), and the open
     * one. The empty ring is as large as that, so a release always finds room. */
    p->max_chunks = 2 * fw__ring_capacity(&p->full) + 1;
    rc = fw__ring_init(&p->empty, p->max_chunks, alloc);
    if (rc < 0)
        return rc;
    atomic_store_explicit(&p->st_chunk_rows, o->chunk_rows, memory_order_relaxed);
    return 0;
}

/* A slab's memory goes back: a standard slab to the shared cache when it takes it. */
static void slab_release_block(fw__pipe_t *p, fw__slab_t *s)
{
    if (!s->big && !s->oversize && p->o.slab_put != NULL &&
        p->o.slab_put(s, sizeof(fw__slab_t) + s->cap))
        return;
    fw__aligned_free(&p->alloc, s);
}

void fw__pipe_free(fw__pipe_t *p)
{
    if (p == NULL)
        return;
    for (fw__slab_t *s = p->all; s != NULL;) {
        fw__slab_t *next = s->all_next;
        slab_release_block(p, s);
        s = next;
    }
    for (fw__chunk_t *c = p->chunk_all; c != NULL;) {
        fw__chunk_t *next = c->all_next;
        fw__aligned_free(&p->alloc, c);
        c = next;
    }
    p->all = NULL;
    p->chunk_all = NULL;
    if (p->full.slots != NULL)
        fw__ring_free(&p->full);
    if (p->empty.slots != NULL)
        fw__ring_free(&p->empty);
}

/* ---- producer: slabs ------------------------------------------------------------------- */

/* held + extra > max_memory, without wrapping for a hostile `extra` near SIZE_MAX. */
static bool over_budget(const fw__pipe_t *p, size_t held, size_t extra)
{
    return extra > p->o.max_memory || held > p->o.max_memory - extra;
}

static void publish_held(fw__pipe_t *p)
{
    atomic_store_explicit(&p->st_held, p->held, memory_order_relaxed);
}

static void slab_destroy(fw__pipe_t *p, fw__slab_t *s)
{
    if (s->all_prev != NULL)
        s->all_prev->all_next = s->all_next;
    else
        p->all = s->all_next;
    if (s->all_next != NULL)
        s->all_next->all_prev = s->all_prev;
    slab_release_block(p, s);
}

/* Pops the first slab of a free list. */
static fw__slab_t *pop_free(fw__pipe_t *p, fw__slab_t **list)
{
    fw__slab_t *s = *list;
    *list = s->next;
    p->pooled -= s->cap;
    return s;
}

/* Unlinks and returns the smallest free big slab that holds `need` bytes, or NULL. */
static fw__slab_t *take_big(fw__pipe_t *p, size_t need)
{
    fw__slab_t **best = NULL;
    for (fw__slab_t **at = &p->big_pool; *at != NULL; at = &(*at)->next)
        if ((*at)->cap >= need && (best == NULL || (*at)->cap < (*best)->cap))
            best = at;
    if (best == NULL)
        return NULL;
    return pop_free(p, best);
}

/* A new slab of `size` bytes, on the pipe's list of every slab; NULL when out of memory. */
static fw__slab_t *slab_new(fw__pipe_t *p, size_t size, bool big, bool oversize)
{
    if (size > SIZE_MAX - sizeof(fw__slab_t))
        return NULL;
    fw__slab_t *s = NULL;
    if (!big && !oversize && p->o.slab_get != NULL)
        s = p->o.slab_get(sizeof(fw__slab_t) + size);
    if (s == NULL)
        s = pipe_alloc(p, sizeof(fw__slab_t) + size);
    if (s == NULL)
        return NULL;
    s->cap = size;
    s->big = big;
    s->oversize = oversize;
    s->all_prev = NULL;
    s->all_next = p->all;
    if (p->all != NULL)
        p->all->all_prev = s;
    p->all = s;
    return s;
}

/* The producer takes s: one reference, empty, counted as held. */
static void hold(fw__pipe_t *p, fw__slab_t *s)
{
    s->next = NULL;
    s->used = 0;
    s->refs = 1;
    p->held += s->cap;
    if (!s->big)
        p->held_std += s->cap;
    publish_held(p);
}

/* Another standard slab would pass the soft limit (fw__pipe_opts_t.soft_held). Never with
 * fewer than 3 standard slabs held, so at least 2 are pinned by chunks handed over (the open
 * chunk points into the producer's current slab only), and never while the consumer has taken
 * every chunk queued: then it is not behind but holding what it took, which only the budget
 * bounds (a consumer that gathers chunks before it releases any would wait for ever). */
static bool soft_full(const fw__pipe_t *p, size_t size)
{
    return p->o.soft_held != 0 && p->held_std + size > p->o.soft_held &&
           p->held_std >= 3 * size && fw__ring_size(&p->full) > 0;
}

int fw__pipe_slab_get(fw__pipe_t *p, size_t need, fw__slab_t **out)
{
    *out = NULL;
    bool big = need > p->o.slab_size;
    size_t size = p->o.slab_size;
    if (big) {
        /* Rounded up to whole slabs, so rows of similar sizes reuse one buffer instead of
         * allocating per row; never rounded past the budget. */
        size_t k = need / p->o.slab_size + (need % p->o.slab_size != 0);
        size = k <= SIZE_MAX / p->o.slab_size ? k * p->o.slab_size : need;
        if (size > p->o.max_memory)
            size = need;
    }
    /* Take back what the consumer released before allocating anything: a fast consumer then
     * keeps the pipe at a slab or two instead of letting it grow to the budget. */
    if (big || p->pool == NULL)
        fw__pipe_reclaim(p);
    p->soft_hit = false;
    if (!big && soft_full(p, size)) {
        fw__pipe_reclaim(p);
        if (soft_full(p, size)) {
            p->soft_hit = true;
            return FW__PIPE_FULL;
        }
    }
    fw__slab_t *s = big ? take_big(p, need) : (p->pool != NULL ? pop_free(p, &p->pool) : NULL);
    if (s != NULL && over_budget(p, p->held, s->cap)) {
        /* A cached buffer too large for what the budget has left: give it up. */
        slab_destroy(p, s);
        s = NULL;
    }
    if (s == NULL) {
        if (over_budget(p, p->held, size))
            return FW__PIPE_FULL;
        /* Everything allocated stays within the budget: cached slabs make room for a new one
         * first (held + pooled + size <= max_memory), the big ones before the standard. */
        while (over_budget(p, p->held + p->pooled, size)) {
            fw__slab_t *f = p->big_pool != NULL ? pop_free(p, &p->big_pool) : pop_free(p, &p->pool);
            slab_destroy(p, f);
        }
        s = slab_new(p, size, big, false);
        if (s == NULL)
            return FW_ENOMEM;
    }
    hold(p, s);
    *out = s;
    return FW__PIPE_OK;
}

/* The size fw__pipe_slab_get gives a slab for `need` bytes. */
static size_t slab_size(const fw__pipe_t *p, size_t need)
{
    if (need <= p->o.slab_size)
        return p->o.slab_size;
    size_t k = need / p->o.slab_size + (need % p->o.slab_size != 0);
    size_t size = k <= SIZE_MAX / p->o.slab_size ? k * p->o.slab_size : need;
    return size > p->o.max_memory ? need : size;
}

bool fw__pipe_never_fits(const fw__pipe_t *p, size_t need)
{
    return over_budget(p, 0, slab_size(p, need));
}

int fw__pipe_slab_get_oversize(fw__pipe_t *p, size_t need, fw__slab_t **out)
{
    *out = NULL;
    p->soft_hit = false; /* never the read-ahead limit: the budget (nothing else held) */
    fw__pipe_reclaim(p);
    if (p->held > 0)
        return FW__PIPE_FULL;
    /* Nothing is held: the cached slabs go first, so what the pipe owns is this row alone. */
    while (p->big_pool != NULL)
        slab_destroy(p, pop_free(p, &p->big_pool));
    while (p->pool != NULL)
        slab_destroy(p, pop_free(p, &p->pool));
    fw__slab_t *s = need > 0 ? slab_new(p, need, true, true) : NULL;
    if (s == NULL)
        return FW_ENOMEM;
    hold(p, s);
    *out = s;
    return FW__PIPE_OK;
}

void fw__pipe_slab_unref(fw__pipe_t *p, fw__slab_t *s)
{
    if (--s->refs > 0)
        return;
    p->held -= s->cap;
    if (!s->big)
        p->held_std -= s->cap;
    publish_held(p);
    if (s->oversize) { /* beyond the budget: it goes back at once */
        slab_destroy(p, s);
        return;
    }
    fw__slab_t **list = s->big ? &p->big_pool : &p->pool;
    s->next = *list;
    *list = s;
    p->pooled += s->cap;
}

/* ---- producer: chunks ------------------------------------------------------------------ */

/*
 * Chunks are allocated for the rows per chunk in use (or for the rows a chunk is expected to
 * get, fw__pipe_hint_fill, when fewer), not for chunk_cap: in flight they are one
 * each per read when the consumer sleeps (up to the ring's 64), and 64 arrays of 1,024 rows
 * (24 KiB each, the adaptive ceiling) for ~30 rows each touched a page apiece, about 250 KiB
 * of RSS in a TLS stream read by a thread (issue 18); arrays of the rows in use share pages.
 * Sizes go by powers of two (CHUNK_MIN_ROWS up, capped at chunk_cap), and a free chunk is
 * reallocated only when the size in use is past twice its size or under an eighth of it, so
 * the adaptive chunker's steps of 1.5x back and forth reallocate nothing (a test counts the
 * allocator's calls: 100k rows may cost no more than a pool's worth over 1k rows), and a
 * chunk is reallocated a few times at most over a stream. A chunk smaller than the size in
 * use just holds fewer rows (fw__pipe_add flushes it when full).
 */
#define CHUNK_MIN_ROWS   32  /* 768 bytes of rows */
#define CHUNK_SMALL_ROWS 128 /* 3 KiB of rows: under a page, never reallocated for shrinking */
static bool chunk_suits(const fw__chunk_t *c, uint32_t rows)
{
    return (uint64_t)c->cap * 2 >= rows && (c->cap <= CHUNK_SMALL_ROWS || c->cap / 8 <= rows);
}

/* The rows a new chunk is made for: the power of two at or above `rows` (at least
 * CHUNK_MIN_ROWS), capped at chunk_cap (never below rows: chunk_rows <= chunk_cap). */
static uint32_t chunk_class(const fw__pipe_t *p, uint32_t rows)
{
    uint64_t n = CHUNK_MIN_ROWS;
    while (n < rows)
        n *= 2;
    return n > p->o.chunk_cap ? (p->o.chunk_cap > rows ? p->o.chunk_cap : rows) : (uint32_t)n;
}

/* Unlinks c from the list of every chunk and frees it. */
static void chunk_destroy(fw__pipe_t *p, fw__chunk_t *c)
{
    for (fw__chunk_t **at = &p->chunk_all; *at != NULL; at = &(*at)->all_next) {
        if (*at == c) {
            *at = c->all_next;
            break;
        }
    }
    p->chunks--;
    fw__aligned_free(&p->alloc, c);
}

static int chunk_get(fw__pipe_t *p, fw__chunk_t **out)
{
    if (p->chunk_pool == NULL)
        fw__pipe_reclaim(p); /* reuse before allocating, as for slabs */
    fw__chunk_t *c = p->chunk_pool;
    if (c == NULL && p->chunks >= p->max_chunks)
        return FW__PIPE_FULL;
    uint32_t rows = p->o.chunk_rows;
    if (p->fill_rows != 0 && p->fill_rows < rows)
        rows = p->fill_rows;
    if (c != NULL)
        p->chunk_pool = c->next;
    if (c == NULL || !chunk_suits(c, rows)) {
        uint32_t cap = chunk_class(p, rows);
        fw__chunk_t *nc = pipe_alloc(p, sizeof(fw__chunk_t) + (size_t)cap * sizeof(fw_row_t));
        if (nc == NULL && c == NULL)
            return FW_ENOMEM;
        if (nc != NULL) {
            if (c != NULL)
                chunk_destroy(p, c); /* far from the size in use */
            c = nc;
            c->cap = cap;
            c->all_next = p->chunk_all;
            p->chunk_all = c;
            p->chunks++;
        } /* else: out of memory, but the old chunk still takes rows (fewer or more): keep it */
    }
    c->next = NULL;
    c->taken = false;
    c->taken_prev = c->taken_next = NULL;
    c->slab = NULL;
    c->n = 0;
    c->first = 0;
    c->bytes = 0;
    *out = c;
    return FW__PIPE_OK;
}

int fw__pipe_flush(fw__pipe_t *p)
{
    fw__chunk_t *c = p->open;
    if (c == NULL)
        return FW__PIPE_OK;
    c->stamp = p->now;
    if (!fw__ring_push(&p->full, c))
        return FW__PIPE_FULL;
    p->open = NULL;
    p->pushed++;
    p->rows_pushed += c->n;
    p->bytes_pushed += c->bytes;
    atomic_store_explicit(&p->st_rows_pushed, p->rows_pushed, memory_order_relaxed);
    atomic_store_explicit(&p->st_chunks_pushed, p->pushed, memory_order_relaxed);
    return FW__PIPE_OK;
}

int fw__pipe_add(fw__pipe_t *p, fw__slab_t *slab, const char *json, size_t len, bool is_null)
{
    fw__chunk_t *c = p->open;
    if (c != NULL && (c->n >= p->o.chunk_rows || c->n >= c->cap || c->slab != slab)) {
        int rc = fw__pipe_flush(p);
        if (rc != FW__PIPE_OK)
            return rc;
        c = NULL;
    }
    if (c == NULL) {
        int rc = chunk_get(p, &c);
        if (rc != FW__PIPE_OK)
            return rc;
        c->slab = slab;
        slab->refs++;
        p->open = c;
    }
    fw_row_t *r = &c->rows[c->n++];
    r->json = is_null ? NULL : json;
    r->len = is_null ? 0 : len;
    r->is_null = is_null;
    c->bytes += r->len;
    return FW__PIPE_OK;
}

size_t fw__pipe_reclaim(fw__pipe_t *p)
{
    size_t n = 0;
    void *item;
    while (fw__ring_pop(&p->empty, &item)) {
        fw__chunk_t *c = item;
        fw__pipe_slab_unref(p, c->slab);
        c->slab = NULL;
        c->next = p->chunk_pool;
        p->chunk_pool = c;
        n++;
    }
    p->reclaimed += n;
    return n;
}

void fw__pipe_note_received(fw__pipe_t *p, size_t n)
{
    uint64_t v = atomic_load_explicit(&p->st_bytes_received, memory_order_relaxed);
    atomic_store_explicit(&p->st_bytes_received, v + n, memory_order_relaxed);
}

void fw__pipe_note_filtered(fw__pipe_t *p)
{
    uint64_t v = atomic_load_explicit(&p->st_rows_filtered, memory_order_relaxed);
    atomic_store_explicit(&p->st_rows_filtered, v + 1, memory_order_relaxed);
}

void fw__pipe_note_read_stop(fw__pipe_t *p)
{
    uint64_t v = atomic_load_explicit(&p->st_read_stops, memory_order_relaxed);
    atomic_store_explicit(&p->st_read_stops, v + 1, memory_order_relaxed);
}

void fw__pipe_set_chunk_rows(fw__pipe_t *p, uint32_t rows)
{
    if (rows < 1)
        rows = 1;
    if (rows > p->o.chunk_cap)
        rows = p->o.chunk_cap;
    p->o.chunk_rows = rows;
    atomic_store_explicit(&p->st_chunk_rows, rows, memory_order_relaxed);
}

void fw__pipe_hint_fill(fw__pipe_t *p, uint32_t rows)
{
    p->fill_rows = rows;
}

/* ---- consumer -------------------------------------------------------------------------- */

/* Hands a chunk back through the empty ring. Cannot fail: that ring holds every chunk that
 * exists (max_chunks). */
static void release_now(fw__pipe_t *p, fw__chunk_t *c)
{
    if (p->o.on_release != NULL)
        p->o.on_release(p->o.hook_ud, c);
    bool ok = fw__ring_push(&p->empty, c);
    (void)ok;
    p->released++;
    atomic_store_explicit(&p->st_released, p->released, memory_order_relaxed);
}

void fw__pipe_release(fw__pipe_t *p, fw__chunk_t *c)
{
    if (c->taken) {
        c->taken = false;
        if (c->taken_prev != NULL)
            c->taken_prev->taken_next = c->taken_next;
        else
            p->taken_list = c->taken_next;
        if (c->taken_next != NULL)
            c->taken_next->taken_prev = c->taken_prev;
    } else if (c == p->cur) {
        p->cur = NULL;
    } else {
        return; /* not the consumer's: already released */
    }
    release_now(p, c);
}

static fw__chunk_t *pop_chunk(fw__pipe_t *p)
{
    void *item;
    if (!fw__ring_pop(&p->full, &item))
        return NULL;
    p->taken++;
    atomic_store_explicit(&p->st_chunks_taken, p->taken, memory_order_relaxed);
    return item;
}

bool fw__pipe_next(fw__pipe_t *p, fw_row_t *row)
{
    fw__chunk_t *c = p->cur;
    if (c == NULL || c->first >= c->n) {
        if (c != NULL) {
            p->cur = NULL;
            release_now(p, c);
        }
        c = pop_chunk(p);
        if (c == NULL)
            return false;
        p->cur = c;
    }
    *row = c->rows[c->first++];
    /* relaxed: a counter for stats only. */
    atomic_store_explicit(&p->st_rows_yielded, ++p->yielded, memory_order_relaxed);
    return true;
}

/* Moves a chunk onto the consumer's taken list. */
static fw__chunk_t *mark_taken(fw__pipe_t *p, fw__chunk_t *c)
{
    p->yielded += c->n - c->first;
    atomic_store_explicit(&p->st_rows_yielded, p->yielded, memory_order_relaxed);
    c->taken = true;
    c->taken_prev = NULL;
    c->taken_next = p->taken_list;
    if (p->taken_list != NULL)
        p->taken_list->taken_prev = c;
    p->taken_list = c;
    return c;
}

fw__chunk_t *fw__pipe_take(fw__pipe_t *p)
{
    fw__chunk_t *c = p->cur;
    if (c != NULL && c->first < c->n) {
        p->cur = NULL;
        return mark_taken(p, c);
    }
    p->cur = NULL;
    if (c != NULL)
        release_now(p, c);
    c = pop_chunk(p);
    return c != NULL ? mark_taken(p, c) : NULL;
}

void fw__pipe_drain(fw__pipe_t *p)
{
    if (p->cur != NULL) {
        release_now(p, p->cur);
        p->cur = NULL;
    }
    while (p->taken_list != NULL)
        fw__pipe_release(p, p->taken_list);
    fw__chunk_t *c;
    while ((c = pop_chunk(p)) != NULL)
        release_now(p, c);
}

uint64_t fw__pipe_released(const fw__pipe_t *p)
{
    return atomic_load_explicit(&p->st_released, memory_order_relaxed);
}

/* ---- any thread ------------------------------------------------------------------------ */

void fw__pipe_stats(const fw__pipe_t *p, fw__pipe_stats_t *out)
{
    /* Read the consumer's counters first: they never run ahead of the producer's, so the
     * differences below cannot go negative. */
    uint64_t yielded = atomic_load_explicit(&p->st_rows_yielded, memory_order_relaxed);
    uint64_t taken = atomic_load_explicit(&p->st_chunks_taken, memory_order_relaxed);
    uint64_t pushed = atomic_load_explicit(&p->st_rows_pushed, memory_order_relaxed);
    uint64_t cpushed = atomic_load_explicit(&p->st_chunks_pushed, memory_order_relaxed);
    out->rows_yielded = yielded;
    out->rows_buffered = pushed > yielded ? pushed - yielded : 0;
    out->chunks_buffered = cpushed > taken ? cpushed - taken : 0;
    out->chunks_taken = taken;
    out->bytes_held = atomic_load_explicit(&p->st_held, memory_order_relaxed);
    out->rows_filtered = atomic_load_explicit(&p->st_rows_filtered, memory_order_relaxed);
    out->bytes_received = atomic_load_explicit(&p->st_bytes_received, memory_order_relaxed);
    out->read_stops = atomic_load_explicit(&p->st_read_stops, memory_order_relaxed);
    out->chunk_rows = atomic_load_explicit(&p->st_chunk_rows, memory_order_relaxed);
}

/* ---- receiving (producer) ---- */

/*
 * A slab for the message at the start of the receive cursor: as fw__pipe_slab_get, but a message
 * the budget can never hold gets a slab of its own once nothing else is held (RELIABILITY
 * decision 4: a row over the budget but under the row-size limit is delivered, alone).
 */
static int get_for(fw__pipe_t *p, size_t need, fw__slab_t **out)
{
    if (need > p->o.slab_size && fw__pipe_never_fits(p, need))
        return fw__pipe_slab_get_oversize(p, need, out);
    return fw__pipe_slab_get(p, need, out);
}

/* Size of the incomplete message at pos once its header is there, else 0. */
static size_t pending_size(const fw__rx_t *rx, bool skipping)
{
    const fw__slab_t *sl = rx->slab;
    if (sl == NULL || sl->used - rx->pos < 5 || skipping)
        return 0;
    return (size_t)fw__be32(sl->data + rx->pos + 1) + 1;
}

/* The tail of the receive slab moves to its start (memmove: it may overlap), one copy. */
static int move_to_start(fw__rx_t *rx, size_t tail)
{
    fw__slab_t *sl = rx->slab;
    memmove(sl->data, sl->data + rx->pos, tail);
    sl->used = tail;
    rx->pos = 0;
    return FW__PIPE_OK;
}

int fw__pipe_make_room(fw__pipe_t *p, fw__rx_t *rx, bool skipping)
{
    p->soft_hit = false; /* set again only by this call's fw__pipe_slab_get */
    fw__slab_t *sl = rx->slab;
    if (sl == NULL && rx->parked > 0) {
        /* A tail parked in the scratch buffer while the budget was full (below). */
        size_t need = rx->parked >= 5 ? (size_t)fw__be32(rx->scratch + 1) + 1 : 0;
        fw__slab_t *ns;
        int rc = get_for(p, need, &ns);
        if (rc != FW__PIPE_OK)
            return rc;
        memcpy(ns->data, rx->scratch, rx->parked);
        ns->used = rx->parked;
        rx->parked = 0;
        rx->slab = ns;
        rx->pos = 0;
        return FW__PIPE_OK;
    }
    size_t need = pending_size(rx, skipping);
    if (sl != NULL) {
        size_t room = sl->cap - sl->used;
        if (room > 0 && (need > 0 ? rx->pos + need <= sl->cap : room >= FW__PIPE_MIN_ROOM))
            return FW__PIPE_OK;
    }
    size_t tail = sl != NULL ? sl->used - rx->pos : 0;
    size_t want = need; /* 0 or less than a slab: a standard slab */
    /* The open chunk points into the old slab: it cannot take rows from the new one. */
    if (sl != NULL && p->open != NULL && p->open->slab == sl) {
        int rc = fw__pipe_flush(p);
        if (rc != FW__PIPE_OK)
            return rc;
    }
    /* Chunks the consumer released may be all that still pins the old slab. */
    fw__pipe_reclaim(p);
    /* Only the producer holds the old slab and the message fits it. */
    bool reusable = sl != NULL && sl->refs == 1 && !sl->oversize && sl->cap >= need && sl->cap > tail;
    if (reusable && sl->cap <= slab_size(p, want))
        return move_to_start(rx, tail); /* the size a new slab would be: keep it */
    fw__slab_t *ns;
    int rc = get_for(p, want, &ns);
    if (rc == FW__PIPE_FULL && reusable)
        return move_to_start(rx, tail); /* larger than needed, but no room for another */
    if (rc == FW__PIPE_FULL && sl != NULL && sl->refs == 1 && tail <= rx->scratch_cap) {
        /* The budget cannot hold the old slab and a new one together, and no chunk points
         * into the old one: park the tail in the scratch buffer and give the slab back first,
         * so that a budget of one slab still makes progress (two copies, only here). */
        memcpy(rx->scratch, sl->data + rx->pos, tail);
        fw__pipe_slab_unref(p, sl);
        rx->slab = NULL;
        rx->pos = 0;
        rx->parked = tail;
        rc = get_for(p, want, &ns);
        if (rc != FW__PIPE_OK)
            return rc; /* parked: restored at the top once the consumer has released */
        memcpy(ns->data, rx->scratch, tail);
        rx->parked = 0;
    } else if (rc == FW__PIPE_FULL && sl != NULL && sl->refs == 1 && p->held == sl->cap) {
        /* The tail is larger than the scratch buffer (a big slab's) and this slab is all the
         * pipe holds: no release will ever come to make room, so waiting would hang. Carry the
         * tail over in a buffer of its own for the moment the old slab is given back (the
         * budget is exceeded by the tail for that moment only, never while rows are held). */
        uint8_t *carry = pipe_alloc(p, tail);
        if (carry == NULL)
            return FW_ENOMEM;
        memcpy(carry, sl->data + rx->pos, tail);
        fw__pipe_slab_unref(p, sl);
        rx->slab = NULL;
        rx->pos = 0;
        rc = get_for(p, want, &ns); /* nothing is held: fits, or gets a slab of its own */
        if (rc != FW__PIPE_OK) {
            fw__aligned_free(&p->alloc, carry);
            return rc == FW__PIPE_FULL ? FW_ENOMEM : rc;
        }
        memcpy(ns->data, carry, tail);
        fw__aligned_free(&p->alloc, carry);
    } else if (rc != FW__PIPE_OK) {
        return rc;
    } else if (sl != NULL) {
        /* One copy, straight into the new slab; the old one goes back when its chunks do. */
        memcpy(ns->data, sl->data + rx->pos, tail);
        fw__pipe_slab_unref(p, sl);
    }
    ns->used = tail;
    rx->slab = ns;
    rx->pos = 0;
    return FW__PIPE_OK;
}

