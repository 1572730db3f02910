/* SPDX-License-Identifier: MIT */
/*
 * Small helpers every layer uses, private to the build (never installed): big-endian readers and
 * writers, wiping secrets, and comparing them in constant time. All inline, so the pure leaves
 * can use them without linking anything.
 */
#ifndef FW_UTIL_H
#define FW_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Network byte order (the PostgreSQL protocol's), whatever the host's. */
static inline uint32_t fw__be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static inline uint16_t fw__be16(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | (unsigned)p[1]);
}

static inline void fw__put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/*
 * Zeroes a secret so the compiler cannot drop the stores as dead: memset through a volatile
 * function pointer (the call cannot be proven to be memset), then a compiler barrier.
 */
static void *(*const volatile fw__memset_v)(void *, int, size_t) = memset;
static inline void fw__wipe(void *p, size_t n)
{
    if (p != NULL && n > 0)
        fw__memset_v(p, 0, n);
#if defined(__GNUC__)
    __asm__ __volatile__("" : : "r"(p) : "memory");
#endif
}

/* A buffer's next capacity for `needed` bytes: `cap` (at least `floor`) doubled until it
 * holds them, or exactly `needed` where doubling would overflow. */
static inline size_t fw__grow_cap(size_t cap, size_t floor, size_t needed)
{
    if (cap < floor)
        cap = floor;
    while (cap < needed)
        cap = cap > SIZE_MAX / 2 ? needed : cap * 2;
    return cap;
}

/* Equality of two secrets in time that depends only on n (SCRAM proofs, tokens). */
static inline bool fw__ct_equal(const void *a, const void *b, size_t n)
{
    const volatile uint8_t *x = a, *y = b;
    uint8_t d = 0;
    for (size_t i = 0; i < n; i++)
        d |= (uint8_t)(x[i] ^ y[i]);
    return d == 0;
}

#endif /* FW_UTIL_H */
