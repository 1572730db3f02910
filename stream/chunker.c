/* SPDX-License-Identifier: MIT */
/* The adaptive chunk-size policy (see chunker.h). */
#include "chunker.h"

#include "fwire_base.h"

void fw__chunker_opts_init(fw__chunker_opts_t *o)
{
    o->floor = 16;
    o->ceiling = 1024;
    o->start = 256;
    o->window = 50;
    o->high_permille = 800;
    o->low_permille = 200;
    o->factor_permille = 1500;
}

int fw__chunker_init(fw__chunker_t *c, const fw__chunker_opts_t *o)
{
    if (c == NULL || o == NULL || o->floor < 1 || o->floor > o->start || o->start > o->ceiling ||
        o->window < 1 || o->low_permille >= o->high_permille || o->high_permille > 1000 ||
        o->factor_permille <= 1000)
        return FW_EINVAL;
    c->o = *o;
    c->size = o->start;
    c->seen = 0;
    c->sum = 0;
    c->grows = 0;
    c->shrinks = 0;
    c->batch = 0;
    return 0;
}

void fw__chunker_hint_batch(fw__chunker_t *c, uint32_t rows)
{
    c->batch = rows;
}

uint32_t fw__chunker_stall(fw__chunker_t *c, size_t capacity)
{
    while (c->seen + 1 < c->o.window)
        (void)fw__chunker_observe(c, capacity, capacity);
    return fw__chunker_observe(c, capacity, capacity);
}

uint32_t fw__chunker_observe(fw__chunker_t *c, size_t queued, size_t capacity)
{
    uint64_t occ = 0;
    if (capacity > 0)
        occ = queued >= capacity ? 1000 : (uint64_t)queued * 1000 / (uint64_t)capacity;
    c->sum += occ;
    if (++c->seen < c->o.window)
        return c->size;
    uint64_t avg = c->sum / c->seen;
    c->seen = 0;
    c->sum = 0;
    uint64_t size = c->size;
    if (avg > c->o.high_permille) {
        /* ceil(size * factor): a size of 1 still grows. */
        uint64_t next = (size * c->o.factor_permille + 999) / 1000;
        if (next > c->o.ceiling)
            next = c->o.ceiling;
        if (next != size) {
            c->size = (uint32_t)next;
            c->grows++;
        }
    } else if (avg < c->o.low_permille) {
        uint64_t lo = c->batch > c->o.floor ? c->batch : c->o.floor;
        if (lo > c->o.ceiling)
            lo = c->o.ceiling;
        uint64_t next = size * 1000 / c->o.factor_permille;
        if (next < lo)
            next = lo;
        if (next < size) {
            c->size = (uint32_t)next;
            c->shrinks++;
        }
    }
    return c->size;
}
