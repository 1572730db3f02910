/* SPDX-License-Identifier: MIT */
/*
 * Counters and gauges. The recording functions are inline definitions in metrics.h; under C99/C11
 * inline rules one translation unit must provide the external definition that callers fall back
 * to when a call is not inlined (-O0, taking the address). These `extern inline` declarations
 * make this file that unit, so the code exists once, in the header.
 */
#include "metrics.h"

extern inline void fw__counter_add(fw__counter_t *c, uint64_t n);
extern inline uint64_t fw__counter_get(const fw__counter_t *c);
extern inline void fw__gauge_add(fw__gauge_t *g, int64_t n);
extern inline void fw__gauge_sub(fw__gauge_t *g, int64_t n);
extern inline void fw__gauge_set(fw__gauge_t *g, int64_t v);
extern inline int64_t fw__gauge_get(const fw__gauge_t *g);
extern inline void fw__metric_inc(fw__series_t *s);
extern inline void fw__metric_add(fw__series_t *s, uint64_t n);
extern inline void fw__metric_gauge_add(fw__series_t *s, int64_t n);
extern inline void fw__metric_gauge_set(fw__series_t *s, int64_t v);
extern inline void fw__hist_batch_add(fw__hist_batch_t *b, const fw__series_t *s, double v);

/* atomic_init, not a store: the object is not shared yet, and C11 does not promise that an
 * atomic in fresh heap memory holds a valid value before it is initialised. */
void fw__counter_init(fw__counter_t *c)
{
    atomic_init(&c->v, 0);
}

void fw__gauge_init(fw__gauge_t *g)
{
    atomic_init(&g->v, 0);
}
