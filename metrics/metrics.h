/* SPDX-License-Identifier: MIT */
/*
 * metrics/: the foundation primitives for operators' numbers. Depends on nothing else in fwire
 * (only fwire.h, for error codes). Recording never allocates, never locks and never fails;
 * rendering writes into a caller buffer and returns the length it needs, like snprintf (STYLE 20).
 *
 * Recording: counters and gauges are single relaxed atomics, updated from any thread.
 * Rendering: Prometheus text exposition format 0.0.4, one header or sample line at a time.
 */
#ifndef FW_METRICS_H
#define FW_METRICS_H

#include "fwire.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- counters and gauges --------------------------------------------------------------- */

/*
 * Why relaxed is enough: each counter or gauge is an independent number. Nobody reads one to
 * learn that some other memory is ready (that is what the ring's release/acquire pairs are for),
 * so there is nothing to publish; atomicity alone makes every increment count exactly once. A
 * scrape that reads several of them does not get a consistent cut across them, and does not
 * need one: Prometheus samples each series on its own, and each value is correct for some
 * moment during the scrape. Relaxed keeps the recording cost at one locked add on x86 and no
 * fence on arm64.
 *
 * The functions are C99-style `inline` so the recording path compiles to the bare atomic in the
 * caller; metric.c holds the one out-of-line copy of each for when the compiler does not inline.
 *
 * Objects with static storage start at zero. Others must be initialised with the _init function
 * before any thread sees them.
 */

/* A monotonic count ("_total" series): only ever goes up, wraps after 2^64. */
typedef struct fw__counter_s {
    _Atomic uint64_t v;
} fw__counter_t;

/* A value that goes up and down: bytes in flight, items queued, connections open. */
typedef struct fw__gauge_s {
    _Atomic int64_t v;
} fw__gauge_t;

/* Sets the counter to 0. Thread: before the counter is shared. */
void fw__counter_init(fw__counter_t *c);

/* Adds n. Thread: any thread. */
inline void fw__counter_add(fw__counter_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(&c->v, n, memory_order_relaxed);
}

/* The current value. Thread: any thread. */
inline uint64_t fw__counter_get(const fw__counter_t *c)
{
    return atomic_load_explicit(&c->v, memory_order_relaxed);
}

/* Sets the gauge to 0. Thread: before the gauge is shared. */
void fw__gauge_init(fw__gauge_t *g);

/* Adds n (may be negative; wraps in two's complement, as C11 defines for atomic types).
 * Thread: any thread. */
inline void fw__gauge_add(fw__gauge_t *g, int64_t n)
{
    atomic_fetch_add_explicit(&g->v, n, memory_order_relaxed);
}

/* Subtracts n. Thread: any thread. */
inline void fw__gauge_sub(fw__gauge_t *g, int64_t n)
{
    atomic_fetch_sub_explicit(&g->v, n, memory_order_relaxed);
}

/* Replaces the value. An add or sub racing with it lands wholly before (and is overwritten) or
 * wholly after. Thread: any thread. */
inline void fw__gauge_set(fw__gauge_t *g, int64_t v)
{
    atomic_store_explicit(&g->v, v, memory_order_relaxed);
}

/* The current value. Thread: any thread. */
inline int64_t fw__gauge_get(const fw__gauge_t *g)
{
    return atomic_load_explicit(&g->v, memory_order_relaxed);
}

/* ---- Prometheus text exposition 0.0.4 -------------------------------------------------- */

/*
 * Every writer below works like snprintf: it writes at most cap - 1 bytes of output into dst and
 * a terminating NUL (nothing at all when cap is 0, in which case dst may be NULL), and returns
 * the length of the whole output without the NUL. A return value >= cap means the output was
 * cut to a prefix; call again with at least return + 1 bytes. Lengths saturate at SIZE_MAX
 * rather than wrap. No allocation, no locale (the decimal point is always '.'), no globals.
 * Thread: any thread.
 */

/*
 * A label value as it goes between the double quotes: backslash, double quote and newline become
 * \\, \" and \n. The exposition format is UTF-8, so an ill-formed byte sequence in src[0..len)
 * becomes U+FFFD, one per maximal ill-formed subpart (the Unicode Standard's recommended
 * practice, as WHATWG and Python decode): a truncated sequence is one replacement, a stray
 * byte is one each. Well-formed text, NUL bytes included, passes through unchanged.
 */
size_t fw__prom_escape_label_value(char *dst, size_t cap, const char *src, size_t len);

/* HELP text: backslash and newline become \\ and \n; double quotes stay as they are. Ill-formed
 * UTF-8 is replaced as for label values. */
size_t fw__prom_escape_help(char *dst, size_t cap, const char *src, size_t len);

/* [a-zA-Z_:][a-zA-Z0-9_:]* ; false for NULL or "". */
bool fw__prom_valid_metric_name(const char *name);

/* [a-zA-Z_][a-zA-Z0-9_]* and not starting with "__" (reserved for Prometheus itself);
 * false for NULL or "". */
bool fw__prom_valid_label_name(const char *name);

/* True for the five metric types of the format: counter, gauge, histogram, summary, untyped. */
bool fw__prom_valid_type(const char *type);

/*
 * One sample line: `name{a="x",b="y"} value\n`, or `name value\n` when nlabels is 0.
 * label_names[i] pairs with label_values[i] (NUL-terminated; values are escaped here).
 * The metric and label names are written verbatim: they come from fwire's code, not from data,
 * and must pass the checks above (asserted in debug builds).
 * value: an integral value with |v| < 2^53 prints as an integer ("42", "-7"); NaN, +Inf and -Inf
 * print as "NaN", "+Inf", "-Inf"; anything else in the fewest significant digits (15 to 17) that
 * read back as the same double ("0.1", "1e+300").
 */
size_t fw__prom_write_sample(char *dst, size_t cap, const char *name,
                             const char *const *label_names, const char *const *label_values,
                             size_t nlabels, double value);

/*
 * The two comment lines before a metric family: `# HELP name help\n# TYPE name type\n`, with the
 * help text escaped. help NULL leaves out the HELP line. type is one of "counter", "gauge",
 * "histogram", "summary", "untyped" (asserted in debug builds).
 */
size_t fw__prom_write_header(char *dst, size_t cap, const char *name, const char *help,
                             const char *type);

#endif /* FW_METRICS_H */
