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

#include "fwire_base.h"

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

/* The text of `v` exactly as write_sample prints a value ("0.25", "+Inf", "42"); used for the
 * histogram `le` label. */
size_t fw__prom_format_value(char *dst, size_t cap, double v);

/* ---- registry ---------------------------------------------------------------------------- */

/*
 * A registry of metric families (name, help, type, label names) and their series (one per
 * distinct set of label values). Registration (families, series lookup) and snapshots take the
 * registry's mutex; recording through a series handle takes no lock and allocates nothing, so
 * callers look a series up once (per query, per connection, at start-up) and keep the handle.
 *
 * Memory comes from the allocator given to fw__registry_new (malloc_fn and free_fn are used;
 * realloc_fn is not). Families and series live until fw__registry_free: there is no removal,
 * which is what lets a recording thread hold a handle without a reference count.
 */

#define FW__METRIC_MAX_LABELS 4 /* label names per family */
/* Bucket upper bounds per histogram. observe() scans them linearly: the bound keeps that scan
 * a few cache lines, so recording stays well under 1% of a query's cost (DESIGN "Metrics"). */
#define FW__HIST_MAX_BOUNDS 32
/* Distinct label-value sets per family when fw__family_def_t.max_series is 0. */
#define FW__METRIC_DEFAULT_MAX_SERIES 32
/* The value that replaces a label past the family's cardinality cap. */
#define FW__METRIC_OVERFLOW_VALUE "other"

typedef enum fw__metric_type_e {
    FW__METRIC_COUNTER = 0, /* rendered as "counter": a monotonic uint64 */
    FW__METRIC_GAUGE,       /* rendered as "gauge": an int64 that goes up and down */
    FW__METRIC_HISTOGRAM,   /* rendered as "histogram": fixed buckets, _sum, _count */
} fw__metric_type_t;

typedef struct fw__registry_s fw__registry_t;
typedef struct fw__family_s fw__family_t;
typedef struct fw__metrics_snapshot_s fw__metrics_snapshot_t;

/*
 * What a family is. Every pointer is borrowed for the call only (the registry copies all).
 * name: a metric name (fw__prom_valid_metric_name); counters should end in "_total".
 * help: NULL for no HELP line. label_names[0..nlabels): label names, distinct, not "le" for a
 * histogram. The first label is the one with unbounded values (the entity), the one that
 * becomes "other" past the cap. bounds[0..nbounds): histogram bucket upper bounds in the
 * metric's unit, finite and strictly increasing, 1..FW__HIST_MAX_BOUNDS of them (the +Inf
 * bucket is implied). max_series: the cardinality cap, 0 for FW__METRIC_DEFAULT_MAX_SERIES.
 */
typedef struct fw__family_def_s {
    const char *name;
    const char *help;
    fw__metric_type_t type;
    size_t nlabels;
    const char *label_names[FW__METRIC_MAX_LABELS];
    const double *bounds;
    size_t nbounds;
    size_t max_series;
} fw__family_def_t;

/*
 * One series. Its fields are the registry's; callers only pass the handle to the recording
 * functions below. Exposed so that counter and gauge recording inline to one atomic.
 *
 * Histogram: buckets[i] counts observations in (bounds[i-1], bounds[i]] (not cumulative:
 * recording touches one bucket), buckets[nbounds] those above the last bound or NaN. The count
 * is not stored apart: a scrape derives it from the buckets, so _count always equals the +Inf
 * bucket, which Prometheus requires and two separate atomics could not promise. The sum is a
 * double kept as its IEEE-754 bit pattern in a uint64 and updated by a CAS loop (C11 has no
 * atomic add on double); it is exact while every partial sum is an integer below 2^53.
 */
typedef struct fw__series_s {
    struct fw__series_s *next; /* creation order within the family; under the registry mutex */
    const fw__family_t *family;
    char *values[FW__METRIC_MAX_LABELS];
    fw__counter_t counter;
    fw__gauge_t gauge;
    _Atomic uint64_t sum_bits;
    size_t nbounds;
    const double *bounds;
    _Atomic uint64_t buckets[]; /* nbounds + 1 for a histogram, none otherwise */
} fw__series_t;

/*
 * Makes an empty registry. alloc: copied; NULL for libc malloc/free. Returns 0 and *out,
 * FW_EINVAL (out NULL, or alloc without malloc_fn or free_fn) or FW_ENOMEM.
 * Thread: any thread.
 */
int fw__registry_new(const fw_allocator_t *alloc, fw__registry_t **out);

/* Frees the registry, its families and series. Every handle and snapshot from it must be gone
 * (snapshots freed first). NULL is a no-op. Thread: one thread, once no other uses it. */
void fw__registry_free(fw__registry_t *r);

/*
 * Registers a family, or finds the one of the same name. *out lives as long as the registry.
 * Returns 0 and *out; FW_EINVAL for an invalid definition or a name already registered with a
 * different type, labels or bounds; FW_ENOMEM (nothing is registered then).
 * Thread: any thread.
 */
int fw__registry_family(fw__registry_t *r, const fw__family_def_t *def, fw__family_t **out);

/*
 * The series for values[0..nlabels) (NUL-terminated strings, borrowed for the call; values may
 * be NULL when the family has no labels), created on first use. *out lives as long as the
 * registry.
 *
 * Cardinality cap: a family holds at most max_series series of its own. Past that, a new
 * label-value set gets the value "other" in its first label (the other labels kept), so one
 * overflow series per combination of the others absorbs every later entity and the totals stay
 * exact. Those overflow series are capped at max_series too; past both caps every label is
 * "other". A family therefore never holds more than 2 * max_series + 1 series, whatever the
 * data: entity names come from the database and must not grow memory or a scrape without bound.
 * Lookup compares against each existing series (bounded by the cap); callers keep the handle.
 *
 * Returns 0 and *out; FW_EINVAL (a NULL value or wrong count); FW_ENOMEM.
 * Thread: any thread.
 */
int fw__family_series(fw__family_t *f, const char *const *values, fw__series_t **out);

/* Recording. Allocation-free, lock-free, never fails. Thread: any thread. */

/* Counter: adds 1 / n. */
inline void fw__metric_inc(fw__series_t *s)
{
    fw__counter_add(&s->counter, 1);
}

inline void fw__metric_add(fw__series_t *s, uint64_t n)
{
    fw__counter_add(&s->counter, n);
}

/* Gauge: adds n (may be negative) / replaces the value. */
inline void fw__metric_gauge_add(fw__series_t *s, int64_t n)
{
    fw__gauge_add(&s->gauge, n);
}

inline void fw__metric_gauge_set(fw__series_t *s, int64_t v)
{
    fw__gauge_set(&s->gauge, v);
}

/* Histogram: counts v in its bucket and adds it to the sum. NaN goes to the +Inf bucket and
 * makes the sum NaN, as in the Prometheus client libraries. */
void fw__hist_observe(fw__series_t *s, double v);

/*
 * A batch of observations gathered by one thread without atomics (fw__hist_batch_add) and added
 * to the series in one go (fw__hist_merge): a producer that observes per chunk pays a few
 * plain instructions per observation and the atomics once per batch. Zero-initialise it.
 */
typedef struct fw__hist_batch_s {
    uint32_t buckets[FW__HIST_MAX_BOUNDS + 1];
    uint32_t count;
    uint32_t last_i; /* the bucket of last_v: repeated values (full chunks) skip the scan */
    double last_v;
    double sum;
} fw__hist_batch_t;

/* Counts v into the batch for series s (a histogram: its bounds pick the bucket). */
inline void fw__hist_batch_add(fw__hist_batch_t *b, const fw__series_t *s, double v)
{
    size_t i = b->last_i;
    if (!(v == b->last_v && b->count > 0)) {
        i = 0;
        while (i < s->nbounds && !(v <= s->bounds[i]))
            i++;
        b->last_v = v;
        b->last_i = (uint32_t)i;
    }
    b->buckets[i]++;
    b->count++;
    b->sum += v;
}

/* Adds the batch to s (as many fw__hist_observe calls would) and empties it. Thread: any
 * thread; the batch is the caller's. */
void fw__hist_merge(fw__series_t *s, fw__hist_batch_t *b);

/*
 * Copies every value out (relaxed loads, under the registry mutex so the set of series is
 * fixed), families sorted by name, series in creation order. The snapshot borrows names and
 * label values from the registry: free it before the registry. Returns 0 and *out, FW_EINVAL
 * or FW_ENOMEM. Thread: any thread.
 */
int fw__registry_snapshot(fw__registry_t *r, fw__metrics_snapshot_t **out);

/*
 * Prometheus text exposition 0.0.4 of the snapshot, snprintf-style as the writers above:
 * at most cap - 1 bytes and a NUL into dst (dst may be NULL when cap is 0), returns the whole
 * length. Counter values above 2^53 print with a double's precision. Thread: any thread.
 */
size_t fw__snapshot_render(const fw__metrics_snapshot_t *s, char *dst, size_t cap);

/* NULL is a no-op. Thread: any thread. */
void fw__snapshot_free(fw__metrics_snapshot_t *s);

#endif /* FW_METRICS_H */
