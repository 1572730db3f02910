/* SPDX-License-Identifier: MIT */
/*
 * The metrics registry: families, their series, histograms, snapshots and rendering.
 *
 * Everything that changes the shape of the registry (a new family, a new series) happens under
 * one mutex and allocates through the caller's allocator; that is registration time, once per
 * query or connection at most. Recording goes straight to a series' atomics and never sees the
 * mutex. A series is never freed before the registry, so a handle needs no reference count.
 */
#include "metrics.h"

#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

struct fw__registry_s {
    fw_allocator_t alloc;
    pthread_mutex_t mu;
    fw__family_t *families; /* sorted by name, so a snapshot needs no sort */
};

struct fw__family_s {
    fw__family_t *next;
    fw__registry_t *reg;
    char *name;
    char *help;
    char *bucket_name; /* name_bucket, name_sum, name_count for a histogram */
    char *sum_name;
    char *count_name;
    fw__metric_type_t type;
    size_t nlabels;
    char *label_names[FW__METRIC_MAX_LABELS];
    double *bounds;
    size_t nbounds;
    size_t max_series;
    size_t nregular;  /* series with the caller's own values, capped at max_series */
    size_t noverflow; /* series whose first value was replaced by "other", capped the same */
    size_t nseries;
    fw__series_t *first;
    fw__series_t *last;
};

typedef struct snap_series_s {
    const fw__series_t *s;
    uint64_t counter;
    int64_t gauge;
    double sum;
    const uint64_t *buckets; /* nbounds + 1 copied counts for a histogram */
} snap_series_t;

typedef struct snap_family_s {
    const fw__family_t *f;
    const snap_series_t *series;
    size_t nseries;
} snap_family_t;

struct fw__metrics_snapshot_s {
    fw_allocator_t alloc;
    size_t nfamilies;
    snap_family_t *families;
};

/* ---- memory ------------------------------------------------------------------------------ */

static void *libc_malloc(void *ud, size_t size)
{
    (void)ud;
    return malloc(size);
}

static void *libc_realloc(void *ud, void *ptr, size_t size)
{
    (void)ud;
    return realloc(ptr, size);
}

static void libc_free(void *ud, void *ptr)
{
    (void)ud;
    free(ptr);
}

static void *mem_alloc(const fw_allocator_t *a, size_t size)
{
    return a->malloc_fn(a->ud, size);
}

static void mem_free(const fw_allocator_t *a, void *p)
{
    if (p != NULL)
        a->free_fn(a->ud, p);
}

static char *mem_strdup(const fw_allocator_t *a, const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = mem_alloc(a, n);
    if (d != NULL)
        memcpy(d, s, n);
    return d;
}

static char *mem_concat(const fw_allocator_t *a, const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix) + 1;
    char *d = mem_alloc(a, n + m);
    if (d != NULL) {
        memcpy(d, s, n);
        memcpy(d + n, suffix, m);
    }
    return d;
}

/* ---- registry ---------------------------------------------------------------------------- */

int fw__registry_new(const fw_allocator_t *alloc, fw__registry_t **out)
{
    if (out == NULL)
        return FW_EINVAL;
    *out = NULL;
    fw_allocator_t a = {libc_malloc, libc_realloc, libc_free, NULL};
    if (alloc != NULL) {
        if (alloc->malloc_fn == NULL || alloc->free_fn == NULL)
            return FW_EINVAL;
        a = *alloc;
    }
    fw__registry_t *r = mem_alloc(&a, sizeof(*r));
    if (r == NULL)
        return FW_ENOMEM;
    r->alloc = a;
    r->families = NULL;
    if (pthread_mutex_init(&r->mu, NULL) != 0) {
        mem_free(&a, r);
        return FW_ENOMEM;
    }
    *out = r;
    return 0;
}

static void series_free(const fw_allocator_t *a, fw__series_t *s)
{
    for (size_t i = 0; i < FW__METRIC_MAX_LABELS; i++)
        mem_free(a, s->values[i]);
    mem_free(a, s);
}

static void family_free(const fw_allocator_t *a, fw__family_t *f)
{
    for (fw__series_t *s = f->first, *next; s != NULL; s = next) {
        next = s->next;
        series_free(a, s);
    }
    mem_free(a, f->name);
    mem_free(a, f->help);
    mem_free(a, f->bucket_name);
    mem_free(a, f->sum_name);
    mem_free(a, f->count_name);
    for (size_t i = 0; i < FW__METRIC_MAX_LABELS; i++)
        mem_free(a, f->label_names[i]);
    mem_free(a, f->bounds);
    mem_free(a, f);
}

void fw__registry_free(fw__registry_t *r)
{
    if (r == NULL)
        return;
    for (fw__family_t *f = r->families, *next; f != NULL; f = next) {
        next = f->next;
        family_free(&r->alloc, f);
    }
    pthread_mutex_destroy(&r->mu);
    fw_allocator_t a = r->alloc;
    mem_free(&a, r);
}

/* ---- families ---------------------------------------------------------------------------- */

static bool def_valid(const fw__family_def_t *d)
{
    if (!fw__prom_valid_metric_name(d->name) || d->nlabels > FW__METRIC_MAX_LABELS)
        return false;
    if (d->type != FW__METRIC_COUNTER && d->type != FW__METRIC_GAUGE &&
        d->type != FW__METRIC_HISTOGRAM)
        return false;
    for (size_t i = 0; i < d->nlabels; i++) {
        if (!fw__prom_valid_label_name(d->label_names[i]))
            return false;
        /* le is the histogram's own bucket label; a second one would make buckets ambiguous. */
        if (d->type == FW__METRIC_HISTOGRAM && strcmp(d->label_names[i], "le") == 0)
            return false;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(d->label_names[i], d->label_names[j]) == 0)
                return false;
        }
    }
    if (d->type == FW__METRIC_HISTOGRAM) {
        if (d->bounds == NULL || d->nbounds == 0 || d->nbounds > FW__HIST_MAX_BOUNDS)
            return false;
        for (size_t i = 0; i < d->nbounds; i++) {
            if (!isfinite(d->bounds[i]) || (i > 0 && !(d->bounds[i] > d->bounds[i - 1])))
                return false;
        }
    } else if (d->nbounds != 0) {
        return false;
    }
    return true;
}

/* Whether the registered family f is the definition d (same name assumed). */
static bool family_matches(const fw__family_t *f, const fw__family_def_t *d)
{
    if (f->type != d->type || f->nlabels != d->nlabels || f->nbounds != d->nbounds)
        return false;
    for (size_t i = 0; i < d->nlabels; i++) {
        if (strcmp(f->label_names[i], d->label_names[i]) != 0)
            return false;
    }
    for (size_t i = 0; i < d->nbounds; i++) {
        if (f->bounds[i] != d->bounds[i])
            return false;
    }
    return true;
}

static fw__family_t *family_make(fw__registry_t *r, const fw__family_def_t *d)
{
    const fw_allocator_t *a = &r->alloc;
    fw__family_t *f = mem_alloc(a, sizeof(*f));
    if (f == NULL)
        return NULL;
    memset(f, 0, sizeof(*f));
    f->reg = r;
    f->type = d->type;
    f->nlabels = d->nlabels;
    f->nbounds = d->nbounds;
    f->max_series = d->max_series != 0 ? d->max_series : FW__METRIC_DEFAULT_MAX_SERIES;
    bool ok = (f->name = mem_strdup(a, d->name)) != NULL;
    if (ok && d->help != NULL)
        ok = (f->help = mem_strdup(a, d->help)) != NULL;
    for (size_t i = 0; ok && i < d->nlabels; i++)
        ok = (f->label_names[i] = mem_strdup(a, d->label_names[i])) != NULL;
    if (ok && d->type == FW__METRIC_HISTOGRAM) {
        ok = (f->bounds = mem_alloc(a, d->nbounds * sizeof(double))) != NULL &&
             (f->bucket_name = mem_concat(a, d->name, "_bucket")) != NULL &&
             (f->sum_name = mem_concat(a, d->name, "_sum")) != NULL &&
             (f->count_name = mem_concat(a, d->name, "_count")) != NULL;
        if (f->bounds != NULL)
            memcpy(f->bounds, d->bounds, d->nbounds * sizeof(double));
    }
    if (!ok) {
        family_free(a, f);
        return NULL;
    }
    return f;
}

int fw__registry_family(fw__registry_t *r, const fw__family_def_t *def, fw__family_t **out)
{
    if (out != NULL)
        *out = NULL;
    if (r == NULL || def == NULL || out == NULL || !def_valid(def))
        return FW_EINVAL;
    int rc = 0;
    pthread_mutex_lock(&r->mu);
    fw__family_t **link = &r->families;
    while (*link != NULL && strcmp((*link)->name, def->name) < 0)
        link = &(*link)->next;
    if (*link != NULL && strcmp((*link)->name, def->name) == 0) {
        if (family_matches(*link, def))
            *out = *link;
        else
            rc = FW_EINVAL;
    } else {
        fw__family_t *f = family_make(r, def);
        if (f == NULL) {
            rc = FW_ENOMEM;
        } else {
            f->next = *link;
            *link = f;
            *out = f;
        }
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

/* ---- series ------------------------------------------------------------------------------ */

static fw__series_t *series_find(const fw__family_t *f, const char *const *values)
{
    for (fw__series_t *s = f->first; s != NULL; s = s->next) {
        size_t i = 0;
        while (i < f->nlabels && strcmp(s->values[i], values[i]) == 0)
            i++;
        if (i == f->nlabels)
            return s;
    }
    return NULL;
}

static fw__series_t *series_make(fw__family_t *f, const char *const *values)
{
    const fw_allocator_t *a = &f->reg->alloc;
    size_t nbuckets = f->type == FW__METRIC_HISTOGRAM ? f->nbounds + 1 : 0;
    fw__series_t *s = mem_alloc(a, sizeof(*s) + nbuckets * sizeof(s->buckets[0]));
    if (s == NULL)
        return NULL;
    s->next = NULL;
    s->family = f;
    for (size_t i = 0; i < FW__METRIC_MAX_LABELS; i++)
        s->values[i] = NULL;
    for (size_t i = 0; i < f->nlabels; i++) {
        if ((s->values[i] = mem_strdup(a, values[i])) == NULL) {
            series_free(a, s);
            return NULL;
        }
    }
    /* atomic_init, not a store: the memory is fresh and not yet visible to another thread; the
     * mutex unlock after linking it publishes it to whoever looks it up next. */
    fw__counter_init(&s->counter);
    fw__gauge_init(&s->gauge);
    atomic_init(&s->sum_bits, 0); /* the bit pattern of +0.0 */
    s->nbounds = f->nbounds;
    s->bounds = f->bounds;
    for (size_t i = 0; i < nbuckets; i++)
        atomic_init(&s->buckets[i], 0);
    if (f->last != NULL)
        f->last->next = s;
    else
        f->first = s;
    f->last = s;
    f->nseries++;
    return s;
}

int fw__family_series(fw__family_t *f, const char *const *values, fw__series_t **out)
{
    if (out != NULL)
        *out = NULL;
    if (f == NULL || out == NULL || (f->nlabels > 0 && values == NULL))
        return FW_EINVAL;
    for (size_t i = 0; i < f->nlabels; i++) {
        if (values[i] == NULL)
            return FW_EINVAL;
    }
    fw__registry_t *r = f->reg;
    pthread_mutex_lock(&r->mu);
    fw__series_t *s = series_find(f, values);
    if (s == NULL && f->nregular < f->max_series) {
        if ((s = series_make(f, values)) != NULL)
            f->nregular++;
    } else if (s == NULL) {
        const char *other[FW__METRIC_MAX_LABELS];
        for (size_t i = 0; i < f->nlabels; i++)
            other[i] = values[i];
        other[0] = FW__METRIC_OVERFLOW_VALUE;
        s = series_find(f, other);
        if (s == NULL && f->noverflow < f->max_series) {
            if ((s = series_make(f, other)) != NULL)
                f->noverflow++;
        } else if (s == NULL) {
            /* Both caps reached: the remaining labels vary without bound too, so all go. */
            for (size_t i = 1; i < f->nlabels; i++)
                other[i] = FW__METRIC_OVERFLOW_VALUE;
            if ((s = series_find(f, other)) == NULL)
                s = series_make(f, other);
        }
    }
    pthread_mutex_unlock(&r->mu);
    if (s == NULL)
        return FW_ENOMEM;
    *out = s;
    return 0;
}

/* ---- histograms -------------------------------------------------------------------------- */

static uint64_t double_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof(u));
    return u;
}

static double bits_double(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof(d));
    return d;
}

void fw__hist_observe(fw__series_t *s, double v)
{
    assert(s->family->type == FW__METRIC_HISTOGRAM);
    /* Linear: at most FW__HIST_MAX_BOUNDS compares on data that stays in cache, cheaper in
     * practice than a binary search's unpredictable branches for the usual 8..16 bounds.
     * !(v <= bound) sends NaN past every bound, to +Inf. */
    size_t i = 0;
    while (i < s->nbounds && !(v <= s->bounds[i]))
        i++;
    atomic_fetch_add_explicit(&s->buckets[i], 1, memory_order_relaxed);
    /* Relaxed for the same reason as the counters (metrics.h): the sum publishes nothing.
     * A failed CAS reloads `old`, so the loop adds v exactly once to whatever sum won. */
    uint64_t old = atomic_load_explicit(&s->sum_bits, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&s->sum_bits, &old,
                                                  double_bits(bits_double(old) + v),
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
}

void fw__hist_merge(fw__series_t *s, fw__hist_batch_t *b)
{
    assert(s->family->type == FW__METRIC_HISTOGRAM);
    if (b->count == 0)
        return;
    for (size_t i = 0; i <= s->nbounds; i++)
        if (b->buckets[i] != 0)
            atomic_fetch_add_explicit(&s->buckets[i], b->buckets[i], memory_order_relaxed);
    uint64_t old = atomic_load_explicit(&s->sum_bits, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&s->sum_bits, &old,
                                                  double_bits(bits_double(old) + b->sum),
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
    memset(b, 0, sizeof(*b));
}

/* ---- snapshots --------------------------------------------------------------------------- */

/* Rounds n up to the strictest alignment, so the parts of one allocation are each aligned. */
static size_t align_up(size_t n)
{
    size_t m = alignof(max_align_t);
    return (n + m - 1) / m * m;
}

int fw__registry_snapshot(fw__registry_t *r, fw__metrics_snapshot_t **out)
{
    if (out != NULL)
        *out = NULL;
    if (r == NULL || out == NULL)
        return FW_EINVAL;
    pthread_mutex_lock(&r->mu);
    size_t nfam = 0, nser = 0, nbuck = 0;
    for (const fw__family_t *f = r->families; f != NULL; f = f->next) {
        nfam++;
        nser += f->nseries;
        if (f->type == FW__METRIC_HISTOGRAM)
            nbuck += f->nseries * (f->nbounds + 1);
    }
    /* One allocation: header, families, series, bucket counts. The sizes are bounded by the
     * cardinality caps, far from overflowing size_t. */
    size_t off_fam = align_up(sizeof(fw__metrics_snapshot_t));
    size_t off_ser = off_fam + align_up(nfam * sizeof(snap_family_t));
    size_t off_buck = off_ser + align_up(nser * sizeof(snap_series_t));
    size_t total = off_buck + nbuck * sizeof(uint64_t);
    unsigned char *mem = mem_alloc(&r->alloc, total);
    if (mem == NULL) {
        pthread_mutex_unlock(&r->mu);
        return FW_ENOMEM;
    }
    fw__metrics_snapshot_t *snap = (fw__metrics_snapshot_t *)(void *)mem;
    snap_family_t *fams = (snap_family_t *)(void *)(mem + off_fam);
    snap_series_t *sers = (snap_series_t *)(void *)(mem + off_ser);
    uint64_t *bucks = (uint64_t *)(void *)(mem + off_buck);
    snap->alloc = r->alloc;
    snap->nfamilies = nfam;
    snap->families = fams;
    for (const fw__family_t *f = r->families; f != NULL; f = f->next) {
        fams->f = f;
        fams->series = sers;
        fams->nseries = f->nseries;
        for (const fw__series_t *s = f->first; s != NULL; s = s->next) {
            sers->s = s;
            sers->counter = fw__counter_get(&s->counter);
            sers->gauge = fw__gauge_get(&s->gauge);
            sers->sum = bits_double(atomic_load_explicit(&s->sum_bits, memory_order_relaxed));
            sers->buckets = NULL;
            if (f->type == FW__METRIC_HISTOGRAM) {
                sers->buckets = bucks;
                for (size_t i = 0; i <= f->nbounds; i++)
                    *bucks++ = atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
            }
            sers++;
        }
        fams++;
    }
    pthread_mutex_unlock(&r->mu);
    *out = snap;
    return 0;
}

void fw__snapshot_free(fw__metrics_snapshot_t *s)
{
    if (s == NULL)
        return;
    fw_allocator_t a = s->alloc;
    mem_free(&a, s);
}

/* ---- rendering --------------------------------------------------------------------------- */

/* The writers' output cursor: each writes at dst + len with what is left of cap, and the
 * lengths add up (saturating) to the whole exposition, as one snprintf would. */
typedef struct render_s {
    char *dst;
    size_t cap;
    size_t len;
} render_t;

static char *at(const render_t *o)
{
    return o->len < o->cap ? o->dst + o->len : NULL;
}

static size_t left(const render_t *o)
{
    return o->len < o->cap ? o->cap - o->len : 0;
}

static void advance(render_t *o, size_t n)
{
    o->len = n > SIZE_MAX - o->len ? SIZE_MAX : o->len + n;
}

static const char *type_name(fw__metric_type_t t)
{
    switch (t) {
    case FW__METRIC_COUNTER:
        return "counter";
    case FW__METRIC_GAUGE:
        return "gauge";
    case FW__METRIC_HISTOGRAM:
        return "histogram";
    }
    return "untyped";
}

static void render_histogram(render_t *o, const fw__family_t *f, const snap_series_t *ss)
{
    const char *names[FW__METRIC_MAX_LABELS + 1];
    const char *values[FW__METRIC_MAX_LABELS + 1];
    for (size_t i = 0; i < f->nlabels; i++) {
        names[i] = f->label_names[i];
        values[i] = ss->s->values[i];
    }
    names[f->nlabels] = "le";
    uint64_t cum = 0;
    char le[48];
    for (size_t b = 0; b <= f->nbounds; b++) {
        cum += ss->buckets[b];
        if (b < f->nbounds)
            (void)fw__prom_format_value(le, sizeof(le), f->bounds[b]);
        else
            strcpy(le, "+Inf");
        values[f->nlabels] = le;
        advance(o, fw__prom_write_sample(at(o), left(o), f->bucket_name, names, values,
                                         f->nlabels + 1, (double)cum));
    }
    advance(o,
            fw__prom_write_sample(at(o), left(o), f->sum_name, names, values, f->nlabels, ss->sum));
    advance(o, fw__prom_write_sample(at(o), left(o), f->count_name, names, values, f->nlabels,
                                     (double)cum));
}

size_t fw__snapshot_render(const fw__metrics_snapshot_t *s, char *dst, size_t cap)
{
    render_t o = {dst, cap, 0};
    if (cap > 0)
        dst[0] = '\0';
    if (s == NULL)
        return 0;
    for (size_t i = 0; i < s->nfamilies; i++) {
        const snap_family_t *sf = &s->families[i];
        const fw__family_t *f = sf->f;
        advance(&o, fw__prom_write_header(at(&o), left(&o), f->name, f->help, type_name(f->type)));
        for (size_t j = 0; j < sf->nseries; j++) {
            const snap_series_t *ss = &sf->series[j];
            const char *const *values = (const char *const *)ss->s->values;
            if (f->type == FW__METRIC_HISTOGRAM)
                render_histogram(&o, f, ss);
            else
                advance(&o, fw__prom_write_sample(
                                at(&o), left(&o), f->name, (const char *const *)f->label_names,
                                values, f->nlabels,
                                f->type == FW__METRIC_COUNTER ? (double)ss->counter
                                                              : (double)ss->gauge));
        }
    }
    return o.len;
}
