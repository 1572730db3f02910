/* SPDX-License-Identifier: MIT */
/*
 * The metrics registry: golden exposition text, snprintf-style truncation at every buffer size,
 * label escaping, the cardinality cap four ways, histogram buckets at their bounds, exact totals
 * from four threads (run under TSan too), and a failure at every allocation through the
 * allocator hook (STYLE 20, 23, 25).
 */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "metrics.h"

/* ---- helpers ----------------------------------------------------------------------------- */

/* Renders the registry into a fresh heap string, sized from a first call with cap 0. */
static char *render(fw__registry_t *r)
{
    fw__metrics_snapshot_t *snap;
    assert_int_equal(fw__registry_snapshot(r, &snap), 0);
    size_t n = fw__snapshot_render(snap, NULL, 0);
    char *buf = malloc(n + 1);
    assert_non_null(buf);
    assert_int_equal(fw__snapshot_render(snap, buf, n + 1), n);
    assert_int_equal(strlen(buf), n);
    fw__snapshot_free(snap);
    return buf;
}

static fw__family_t *family(fw__registry_t *r, const fw__family_def_t *def)
{
    fw__family_t *f;
    assert_int_equal(fw__registry_family(r, def, &f), 0);
    return f;
}

static fw__series_t *series(fw__family_t *f, const char *const *values)
{
    fw__series_t *s;
    assert_int_equal(fw__family_series(f, values, &s), 0);
    return s;
}

static const double seconds_bounds[] = {0.005, 0.1, 1, 10};

/* Families registered out of name order, so the output shows the sort. */
static fw__registry_t *golden_registry(void)
{
    fw__registry_t *r;
    assert_int_equal(fw__registry_new(NULL, &r), 0);
    fw__family_def_t hist = {.name = "fraiseql_query_duration_seconds",
                             .help = "Query duration, submit to completion.",
                             .type = FW__METRIC_HISTOGRAM,
                             .nlabels = 1,
                             .label_names = {"entity"},
                             .bounds = seconds_bounds,
                             .nbounds = 4};
    fw__family_def_t counter = {.name = "fraiseql_queries_completed_total",
                                .help = "Queries completed.",
                                .type = FW__METRIC_COUNTER,
                                .nlabels = 2,
                                .label_names = {"entity", "status"}};
    fw__family_def_t gauge = {.name = "fraiseql_rows_buffered",
                              .help = "Rows decoded and not yet taken by the consumer.",
                              .type = FW__METRIC_GAUGE};
    fw__family_t *fh = family(r, &hist), *fc = family(r, &counter), *fg = family(r, &gauge);

    fw__series_t *ok = series(fc, (const char *[]){"user", "success"});
    fw__series_t *err = series(fc, (const char *[]){"user", "error"});
    fw__series_t *proj = series(fc, (const char *[]){"project", "success"});
    fw__metric_add(ok, 41);
    fw__metric_inc(ok);
    fw__metric_inc(err);
    fw__metric_add(proj, 7);

    fw__series_t *g = series(fg, NULL);
    fw__metric_gauge_set(g, 100);
    fw__metric_gauge_add(g, -58);

    fw__series_t *hu = series(fh, (const char *[]){"user"});
    fw__hist_observe(hu, 0.005); /* on a bound: counts in that bucket (le is <=) */
    fw__hist_observe(hu, 0.25);
    fw__hist_observe(hu, 0.75);
    fw__hist_observe(hu, 60);
    (void)series(fh, (const char *[]){"project"}); /* a series with no observations */
    return r;
}

static const char golden[] =
    "# HELP fraiseql_queries_completed_total Queries completed.\n"
    "# TYPE fraiseql_queries_completed_total counter\n"
    "fraiseql_queries_completed_total{entity=\"user\",status=\"success\"} 42\n"
    "fraiseql_queries_completed_total{entity=\"user\",status=\"error\"} 1\n"
    "fraiseql_queries_completed_total{entity=\"project\",status=\"success\"} 7\n"
    "# HELP fraiseql_query_duration_seconds Query duration, submit to completion.\n"
    "# TYPE fraiseql_query_duration_seconds histogram\n"
    "fraiseql_query_duration_seconds_bucket{entity=\"user\",le=\"0.005\"} 1\n"
    "fraiseql_query_duration_seconds_bucket{entity=\"user\",le=\"0.1\"} 1\n"
    "fraiseql_query_duration_seconds_bucket{entity=\"user\",le=\"1\"} 3\n"
    "fraiseql_query_duration_seconds_bucket{entity=\"user\",le=\"10\"} 3\n"
    "fraiseql_query_duration_seconds_bucket{entity=\"user\",le=\"+Inf\"} 4\n"
    "fraiseql_query_duration_seconds_sum{entity=\"user\"} 61.005\n"
    "fraiseql_query_duration_seconds_count{entity=\"user\"} 4\n"
    "fraiseql_query_duration_seconds_bucket{entity=\"project\",le=\"0.005\"} 0\n"
    "fraiseql_query_duration_seconds_bucket{entity=\"project\",le=\"0.1\"} 0\n"
    "fraiseql_query_duration_seconds_bucket{entity=\"project\",le=\"1\"} 0\n"
    "fraiseql_query_duration_seconds_bucket{entity=\"project\",le=\"10\"} 0\n"
    "fraiseql_query_duration_seconds_bucket{entity=\"project\",le=\"+Inf\"} 0\n"
    "fraiseql_query_duration_seconds_sum{entity=\"project\"} 0\n"
    "fraiseql_query_duration_seconds_count{entity=\"project\"} 0\n"
    "# HELP fraiseql_rows_buffered Rows decoded and not yet taken by the consumer.\n"
    "# TYPE fraiseql_rows_buffered gauge\n"
    "fraiseql_rows_buffered 42\n";

/* ---- exposition -------------------------------------------------------------------------- */

static void test_render_matches_golden_text_for_counter_gauge_and_histogram(void **state)
{
    (void)state;
    fw__registry_t *r = golden_registry();
    char *text = render(r);
    assert_string_equal(text, golden);
    free(text);
    fw__registry_free(r);
}

static void test_render_returns_the_full_length_and_a_terminated_prefix_at_every_size(void **state)
{
    (void)state;
    fw__registry_t *r = golden_registry();
    fw__metrics_snapshot_t *snap;
    assert_int_equal(fw__registry_snapshot(r, &snap), 0);
    size_t n = strlen(golden);
    assert_int_equal(fw__snapshot_render(snap, NULL, 0), n);
    char *buf = malloc(n + 2);
    assert_non_null(buf);
    for (size_t cap = 1; cap <= n + 1; cap++) {
        memset(buf, 'X', n + 2);
        assert_int_equal(fw__snapshot_render(snap, buf, cap), n);
        assert_int_equal(buf[cap - 1], '\0');
        assert_memory_equal(buf, golden, cap - 1);
        assert_int_equal(buf[cap], 'X'); /* nothing past cap */
    }
    free(buf);
    fw__snapshot_free(snap);
    fw__registry_free(r);
}

static void test_label_values_escape_backslash_quote_and_newline(void **state)
{
    (void)state;
    fw__registry_t *r;
    assert_int_equal(fw__registry_new(NULL, &r), 0);
    fw__family_def_t def = {
        .name = "m_total", .type = FW__METRIC_COUNTER, .nlabels = 1, .label_names = {"entity"}};
    fw__family_t *f = family(r, &def);
    fw__metric_inc(series(f, (const char *[]){"a\\b\"c\nd"}));
    char *text = render(r);
    assert_string_equal(text, "# TYPE m_total counter\n"
                              "m_total{entity=\"a\\\\b\\\"c\\nd\"} 1\n");
    free(text);
    fw__registry_free(r);
}

static void test_snapshot_is_a_copy_not_a_view(void **state)
{
    (void)state;
    fw__registry_t *r;
    assert_int_equal(fw__registry_new(NULL, &r), 0);
    fw__family_def_t def = {.name = "m_total", .type = FW__METRIC_COUNTER};
    fw__series_t *s = series(family(r, &def), NULL);
    fw__metric_add(s, 5);
    fw__metrics_snapshot_t *snap;
    assert_int_equal(fw__registry_snapshot(r, &snap), 0);
    fw__metric_add(s, 5);
    char buf[128];
    fw__snapshot_render(snap, buf, sizeof(buf));
    assert_string_equal(buf, "# TYPE m_total counter\nm_total 5\n");
    fw__snapshot_free(snap);
    fw__registry_free(r);
}

static void test_empty_registry_renders_nothing(void **state)
{
    (void)state;
    fw__registry_t *r;
    assert_int_equal(fw__registry_new(NULL, &r), 0);
    char *text = render(r);
    assert_string_equal(text, "");
    free(text);
    fw__registry_free(r);
    fw__snapshot_free(NULL);
    fw__registry_free(NULL);
}

/* ---- definitions ------------------------------------------------------------------------- */

static void test_family_definitions_are_validated_and_reregistration_is_idempotent(void **state)
{
    (void)state;
    fw__registry_t *r;
    assert_int_equal(fw__registry_new(NULL, &r), 0);
    fw__family_t *f, *again;
    const double unsorted[] = {1, 0.5};
    const double with_inf[] = {1, (double)INFINITY};
    double too_many[FW__HIST_MAX_BOUNDS + 1];
    for (size_t i = 0; i < FW__HIST_MAX_BOUNDS + 1; i++)
        too_many[i] = (double)i;
    fw__family_def_t bad[] = {
        {.name = "1bad", .type = FW__METRIC_COUNTER},
        {.name = "m", .type = (fw__metric_type_t)7},
        {.name = "m", .type = FW__METRIC_COUNTER, .nlabels = 4},
        {.name = "m", .type = FW__METRIC_COUNTER, .nlabels = 1, .label_names = {"__x"}},
        {.name = "m", .type = FW__METRIC_COUNTER, .nlabels = 2, .label_names = {"a", "a"}},
        {.name = "m", .type = FW__METRIC_HISTOGRAM},
        {.name = "m", .type = FW__METRIC_HISTOGRAM, .bounds = unsorted, .nbounds = 2},
        {.name = "m", .type = FW__METRIC_HISTOGRAM, .bounds = with_inf, .nbounds = 2},
        {.name = "m",
         .type = FW__METRIC_HISTOGRAM,
         .bounds = too_many,
         .nbounds = FW__HIST_MAX_BOUNDS + 1},
        {.name = "m",
         .type = FW__METRIC_HISTOGRAM,
         .nlabels = 1,
         .label_names = {"le"},
         .bounds = seconds_bounds,
         .nbounds = 1},
        {.name = "m", .type = FW__METRIC_COUNTER, .bounds = seconds_bounds, .nbounds = 1},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(fw__registry_family(r, &bad[i], &f), FW_EINVAL);
        assert_null(f);
    }
    /* At the bound limit it is accepted. */
    fw__family_def_t max = {.name = "h",
                            .type = FW__METRIC_HISTOGRAM,
                            .bounds = too_many,
                            .nbounds = FW__HIST_MAX_BOUNDS};
    assert_int_equal(fw__registry_family(r, &max, &f), 0);

    fw__family_def_t def = {
        .name = "m_total", .type = FW__METRIC_COUNTER, .nlabels = 1, .label_names = {"entity"}};
    assert_int_equal(fw__registry_family(r, &def, &f), 0);
    assert_int_equal(fw__registry_family(r, &def, &again), 0);
    assert_ptr_equal(f, again);
    fw__family_def_t clash = def;
    clash.type = FW__METRIC_GAUGE;
    assert_int_equal(fw__registry_family(r, &clash, &again), FW_EINVAL);
    clash = def;
    clash.label_names[0] = "other_label";
    assert_int_equal(fw__registry_family(r, &clash, &again), FW_EINVAL);

    fw__series_t *s;
    assert_int_equal(fw__family_series(f, NULL, &s), FW_EINVAL);
    assert_int_equal(fw__family_series(f, (const char *[]){NULL}, &s), FW_EINVAL);
    fw__series_t *a = series(f, (const char *[]){"x"});
    assert_ptr_equal(series(f, (const char *[]){"x"}), a);
    fw__registry_free(r);
}

/* ---- cardinality ------------------------------------------------------------------------- */

static void test_the_33rd_entity_goes_to_other_and_totals_stay_exact(void **state)
{
    (void)state;
    fw__registry_t *r;
    assert_int_equal(fw__registry_new(NULL, &r), 0);
    fw__family_def_t def = {.name = "rows_total",
                            .type = FW__METRIC_COUNTER,
                            .nlabels = 2,
                            .label_names = {"entity", "status"}};
    fw__family_t *f = family(r, &def); /* max_series 0: the default, 32 */
    fw__series_t *seen[40];
    uint64_t total = 0;
    for (size_t i = 0; i < 40; i++) {
        char entity[16];
        snprintf(entity, sizeof(entity), "e%zu", i);
        seen[i] = series(f, (const char *[]){entity, "ok"});
        fw__metric_add(seen[i], i + 1);
        total += i + 1;
    }
    /* At the limit (the 32nd) it is still its own series; one past goes to other. */
    assert_string_equal(seen[31]->values[0], "e31");
    for (size_t i = 32; i < 40; i++) {
        assert_ptr_equal(seen[i], seen[32]);
        assert_string_equal(seen[i]->values[0], FW__METRIC_OVERFLOW_VALUE);
        assert_string_equal(seen[i]->values[1], "ok");
    }
    /* An entity seen before the cap keeps its own series after it. */
    assert_ptr_equal(series(f, (const char *[]){"e3", "ok"}), seen[3]);
    /* The other labels survive the overflow. */
    fw__series_t *err = series(f, (const char *[]){"e99", "error"});
    assert_string_equal(err->values[0], "other");
    assert_string_equal(err->values[1], "error");

    uint64_t sum = 0;
    for (size_t i = 0; i < 32; i++)
        sum += fw__counter_get(&seen[i]->counter);
    sum += fw__counter_get(&seen[32]->counter);
    assert_int_equal(sum, total);
    assert_int_equal(fw__counter_get(&seen[32]->counter), (33 + 40) * 8 / 2);

    char *text = render(r);
    assert_non_null(strstr(text, "rows_total{entity=\"other\",status=\"ok\"} 292\n"));
    assert_non_null(strstr(text, "rows_total{entity=\"e31\",status=\"ok\"} 32\n"));
    assert_null(strstr(text, "e32"));
    free(text);
    fw__registry_free(r);
}

static void test_past_both_caps_every_label_becomes_other(void **state)
{
    (void)state;
    fw__registry_t *r;
    assert_int_equal(fw__registry_new(NULL, &r), 0);
    fw__family_def_t def = {.name = "errors_total",
                            .type = FW__METRIC_COUNTER,
                            .nlabels = 2,
                            .label_names = {"entity", "category"},
                            .max_series = 1};
    fw__family_t *f = family(r, &def);
    fw__series_t *own = series(f, (const char *[]){"a", "x"});
    fw__series_t *over = series(f, (const char *[]){"b", "y"});
    fw__series_t *all = series(f, (const char *[]){"c", "z"});
    fw__series_t *all2 = series(f, (const char *[]){"d", "w"});
    assert_string_equal(own->values[0], "a");
    assert_string_equal(over->values[0], "other");
    assert_string_equal(over->values[1], "y");
    assert_string_equal(all->values[0], "other");
    assert_string_equal(all->values[1], "other");
    assert_ptr_equal(all, all2);
    fw__registry_free(r);
}

/* ---- histograms -------------------------------------------------------------------------- */

static void test_histogram_counts_a_bound_in_its_bucket_and_nan_in_inf(void **state)
{
    (void)state;
    fw__registry_t *r;
    assert_int_equal(fw__registry_new(NULL, &r), 0);
    const double rows[] = {16, 64};
    fw__family_def_t def = {
        .name = "chunk_rows", .type = FW__METRIC_HISTOGRAM, .bounds = rows, .nbounds = 2};
    fw__series_t *s = series(family(r, &def), NULL);
    fw__hist_observe(s, 16);
    fw__hist_observe(s, 17);
    fw__hist_observe(s, 64);
    fw__hist_observe(s, 1e9);
    fw__hist_observe(s, -1);
    char *text = render(r);
    assert_string_equal(text, "# TYPE chunk_rows histogram\n"
                              "chunk_rows_bucket{le=\"16\"} 2\n"
                              "chunk_rows_bucket{le=\"64\"} 4\n"
                              "chunk_rows_bucket{le=\"+Inf\"} 5\n"
                              "chunk_rows_sum 1000000096\n"
                              "chunk_rows_count 5\n");
    free(text);
    fw__hist_observe(s, (double)NAN);
    text = render(r);
    assert_non_null(strstr(text, "chunk_rows_bucket{le=\"+Inf\"} 6\n"));
    assert_non_null(strstr(text, "chunk_rows_sum NaN\n"));
    assert_non_null(strstr(text, "chunk_rows_count 6\n"));
    free(text);
    fw__registry_free(r);
}

/* ---- threads ----------------------------------------------------------------------------- */

#define THREADS 4
#define RECORDS 1000000

static fw__series_t *hammer_counter, *hammer_hist;

static void *hammer_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < RECORDS; i++) {
        fw__metric_inc(hammer_counter);
        /* 0.5 and 1.5: every partial sum is a multiple of 0.5 below 2^53, so exact. */
        fw__hist_observe(hammer_hist, (i & 1) ? 1.5 : 0.5);
    }
    return NULL;
}

static void test_four_threads_recording_one_series_give_exact_totals(void **state)
{
    (void)state;
    fw__registry_t *r;
    assert_int_equal(fw__registry_new(NULL, &r), 0);
    fw__family_def_t c = {.name = "c_total", .type = FW__METRIC_COUNTER};
    const double bounds[] = {1};
    fw__family_def_t h = {
        .name = "h_seconds", .type = FW__METRIC_HISTOGRAM, .bounds = bounds, .nbounds = 1};
    hammer_counter = series(family(r, &c), NULL);
    hammer_hist = series(family(r, &h), NULL);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, hammer_main, NULL), 0);
    /* A scrape while they run: TSan must find it clean. */
    fw__metrics_snapshot_t *snap;
    assert_int_equal(fw__registry_snapshot(r, &snap), 0);
    assert_true(fw__snapshot_render(snap, NULL, 0) > 0);
    fw__snapshot_free(snap);
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);

    char *text = render(r);
    assert_string_equal(text, "# TYPE c_total counter\n"
                              "c_total 4000000\n"
                              "# TYPE h_seconds histogram\n"
                              "h_seconds_bucket{le=\"1\"} 2000000\n"
                              "h_seconds_bucket{le=\"+Inf\"} 4000000\n"
                              "h_seconds_sum 4000000\n"
                              "h_seconds_count 4000000\n");
    free(text);
    fw__registry_free(r);
}

/* ---- allocation failure ------------------------------------------------------------------ */

typedef struct oom_s {
    long fail_at; /* the index of the allocation that fails; -1 never */
    long count;
    long live;
} oom_t;

static void *oom_malloc(void *ud, size_t size)
{
    oom_t *o = ud;
    if (o->count++ == o->fail_at)
        return NULL;
    void *p = malloc(size);
    if (p != NULL)
        o->live++;
    return p;
}

static void *oom_realloc(void *ud, void *ptr, size_t size)
{
    (void)ud;
    (void)ptr;
    (void)size;
    fail_msg("the registry never reallocates");
    return NULL;
}

static void oom_free(void *ud, void *ptr)
{
    oom_t *o = ud;
    if (ptr != NULL)
        o->live--;
    free(ptr);
}

/* The golden scenario through a failing allocator: returns whether it got to the end. */
static bool oom_scenario(oom_t *o)
{
    fw_allocator_t a = {oom_malloc, oom_realloc, oom_free, o};
    fw__registry_t *r;
    int rc = fw__registry_new(&a, &r);
    if (rc != 0) {
        assert_int_equal(rc, FW_ENOMEM);
        assert_null(r);
        return false;
    }
    bool done = false;
    fw__family_def_t hist = {.name = "d_seconds",
                             .help = "h",
                             .type = FW__METRIC_HISTOGRAM,
                             .nlabels = 2,
                             .label_names = {"entity", "status"},
                             .bounds = seconds_bounds,
                             .nbounds = 4};
    fw__family_def_t counter = {.name = "c_total",
                                .help = "c",
                                .type = FW__METRIC_COUNTER,
                                .nlabels = 1,
                                .label_names = {"entity"}};
    fw__family_t *fh, *fc;
    fw__series_t *sh, *sc;
    fw__metrics_snapshot_t *snap;
    if ((rc = fw__registry_family(r, &hist, &fh)) != 0)
        goto out;
    if ((rc = fw__registry_family(r, &counter, &fc)) != 0)
        goto out;
    if ((rc = fw__family_series(fh, (const char *[]){"user", "ok"}, &sh)) != 0)
        goto out;
    fw__hist_observe(sh, 0.5);
    if ((rc = fw__family_series(fc, (const char *[]){"user"}, &sc)) != 0)
        goto out;
    fw__metric_inc(sc);
    if ((rc = fw__registry_snapshot(r, &snap)) != 0)
        goto out;
    char buf[2048];
    size_t n = fw__snapshot_render(snap, buf, sizeof(buf));
    assert_true(n < sizeof(buf));
    assert_non_null(strstr(buf, "c_total{entity=\"user\"} 1\n"));
    assert_non_null(strstr(buf, "d_seconds_count{entity=\"user\",status=\"ok\"} 1\n"));
    fw__snapshot_free(snap);
    done = true;
out:
    if (!done)
        assert_int_equal(rc, FW_ENOMEM);
    fw__registry_free(r);
    return done;
}

static void test_every_allocation_failure_returns_enomem_and_leaks_nothing(void **state)
{
    (void)state;
    oom_t o = {-1, 0, 0};
    assert_true(oom_scenario(&o));
    assert_int_equal(o.live, 0);
    long total = o.count;
    assert_true(total > 10);
    for (long i = 0; i < total; i++) {
        o = (oom_t){i, 0, 0};
        assert_false(oom_scenario(&o));
        assert_int_equal(o.live, 0);
    }
}

static void test_an_allocator_without_malloc_or_free_is_rejected(void **state)
{
    (void)state;
    fw__registry_t *r;
    fw_allocator_t a = {NULL, NULL, oom_free, NULL};
    assert_int_equal(fw__registry_new(&a, &r), FW_EINVAL);
    a = (fw_allocator_t){oom_malloc, NULL, NULL, NULL};
    assert_int_equal(fw__registry_new(&a, &r), FW_EINVAL);
    assert_int_equal(fw__registry_new(NULL, NULL), FW_EINVAL);
}

/* With --print-exposition, writes the golden registry's exposition, plus an escaped label
 * value, to stdout instead of testing: test/check-metrics-promtool.sh feeds it to promtool. */
static int print_exposition(void)
{
    fw__registry_t *r = golden_registry();
    fw__family_def_t def = {.name = "fraiseql_notices_total",
                            .help = "Notices with \\ and\nnewline in help.",
                            .type = FW__METRIC_COUNTER,
                            .nlabels = 1,
                            .label_names = {"entity"}};
    fw__family_t *f;
    fw__series_t *s;
    if (fw__registry_family(r, &def, &f) != 0 ||
        fw__family_series(f, (const char *[]){"a\\b\"c\nd"}, &s) != 0)
        return 1;
    fw__metric_inc(s);
    char *text = render(r);
    fputs(text, stdout);
    free(text);
    fw__registry_free(r);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--print-exposition") == 0)
        return print_exposition();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_matches_golden_text_for_counter_gauge_and_histogram),
        cmocka_unit_test(test_render_returns_the_full_length_and_a_terminated_prefix_at_every_size),
        cmocka_unit_test(test_label_values_escape_backslash_quote_and_newline),
        cmocka_unit_test(test_snapshot_is_a_copy_not_a_view),
        cmocka_unit_test(test_empty_registry_renders_nothing),
        cmocka_unit_test(test_family_definitions_are_validated_and_reregistration_is_idempotent),
        cmocka_unit_test(test_the_33rd_entity_goes_to_other_and_totals_stay_exact),
        cmocka_unit_test(test_past_both_caps_every_label_becomes_other),
        cmocka_unit_test(test_histogram_counts_a_bound_in_its_bucket_and_nan_in_inf),
        cmocka_unit_test(test_four_threads_recording_one_series_give_exact_totals),
        cmocka_unit_test(test_every_allocation_failure_returns_enomem_and_leaks_nothing),
        cmocka_unit_test(test_an_allocator_without_malloc_or_free_is_rejected),
    };
    return cmocka_run_group_tests_name("metrics_registry", tests, NULL, NULL);
}
