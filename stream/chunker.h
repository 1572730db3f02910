/* SPDX-License-Identifier: MIT */
/*
 * The adaptive chunk-size policy (DESIGN.md "Adaptive chunking", STYLE 19): a pure function of
 * the ring's occupancy observed at each flush. A slow consumer leaves chunks queued (high
 * occupancy): bigger chunks cut the per-chunk cost. A fast consumer empties the ring (low
 * occupancy): smaller chunks reach it sooner. Integer arithmetic only, so a table of inputs
 * always gives the same sizes. Producer-side only; no atomics.
 */
#ifndef FW_CHUNKER_H
#define FW_CHUNKER_H

#include <stddef.h>
#include <stdint.h>

typedef struct fw__chunker_opts_s {
    uint32_t floor;           /* smallest chunk, rows (default 16) */
    uint32_t ceiling;         /* largest chunk, rows (default 1024) */
    uint32_t start;           /* first chunk size (default 256) */
    uint32_t window;          /* observations per decision; at most one change per window (50) */
    uint32_t high_permille;   /* average occupancy above which chunks grow (800 = 80%) */
    uint32_t low_permille;    /* below which they shrink (200 = 20%) */
    uint32_t factor_permille; /* growth factor (1500 = 1.5x; shrinking divides by it) */
} fw__chunker_opts_t;

typedef struct fw__chunker_s {
    fw__chunker_opts_t o;
    uint32_t size;  /* rows per chunk now */
    uint32_t seen;  /* observations in the current window */
    uint64_t sum;   /* their occupancy, permille */
    uint64_t grows; /* adjustments made, by direction */
    uint64_t shrinks;
    uint32_t batch; /* rows that arrive together (fw__chunker_hint_batch); 0: no hint */
} fw__chunker_t;

/* The defaults above. */
void fw__chunker_opts_init(fw__chunker_opts_t *o);

/*
 * Tells the policy how many rows arrive together (one socket read's worth): shrinking stops
 * there (never below the floor, never above the ceiling), because every read ends its chunk
 * anyway, so a smaller size cannot hand rows over sooner and only adds hand-overs. 0 removes
 * the hint. Growing is unaffected.
 */
void fw__chunker_hint_batch(fw__chunker_t *c, uint32_t rows);

/*
 * Starts the policy at o->start. Returns 0, or FW_EINVAL unless 1 <= floor <= start <= ceiling,
 * window >= 1, low_permille < high_permille <= 1000 and factor_permille > 1000.
 */
int fw__chunker_init(fw__chunker_t *c, const fw__chunker_opts_t *o);

/*
 * One observation at a flush: `queued` chunks in a ring of `capacity`. At the end of each
 * window the average occupancy decides: above high, size = ceil(size * factor) capped at the
 * ceiling; below low, size = floor(size / factor) kept at or above the floor; else no change.
 * Returns the size to use from now on.
 */
uint32_t fw__chunker_observe(fw__chunker_t *c, size_t queued, size_t capacity);

/*
 * The producer had to stop because the consumer did not free room in time: the rest of the
 * current window counts as a full ring, and the window's decision is made now. (The ring's
 * hysteresis otherwise hides a slow consumer: once stopped, the producer waits until half of
 * the ring is free, so occupancy at flushes swings between a half and full, averaging below
 * the high threshold.) Returns the size to use from now on.
 */
uint32_t fw__chunker_stall(fw__chunker_t *c, size_t capacity);

#endif /* FW_CHUNKER_H */
