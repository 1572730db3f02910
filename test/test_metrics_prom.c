/* SPDX-License-Identifier: MIT */
/*
 * Prometheus exposition writers against byte-exact strings: escaping, UTF-8 repair, the name
 * grammar, value formatting, and snprintf-style truncation at every buffer size. Then counters
 * and gauges hammered from two threads, which ThreadSanitizer must find clean (STYLE 20, 29).
 */
#include <float.h>
#include <locale.h>
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

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* Each replacement of an ill-formed subpart, spelled out so expectations read byte by byte. */
#define FFFD "\xEF\xBF\xBD"

/* ---- helpers --------------------------------------------------------------------------- */

/* Escapes `len` bytes of src as a label value and compares with the expected C string. */
static void check_label_value(const char *src, size_t len, const char *want)
{
    char out[256];
    size_t n = fw__prom_escape_label_value(out, sizeof(out), src, len);
    assert_int_equal(n, strlen(want));
    assert_string_equal(out, want);
}

static void check_help(const char *src, const char *want)
{
    char out[256];
    size_t n = fw__prom_escape_help(out, sizeof(out), src, strlen(src));
    assert_int_equal(n, strlen(want));
    assert_string_equal(out, want);
}

static void check_value(double v, const char *want)
{
    char out[128];
    size_t n = fw__prom_write_sample(out, sizeof(out), "m", NULL, NULL, 0, v);
    assert_int_equal(n, strlen(want));
    assert_string_equal(out, want);
}

/* ---- escaping -------------------------------------------------------------------------- */

static void test_label_value_escapes_backslash_quote_and_newline(void **state)
{
    (void)state;
    check_label_value("\\", 1, "\\\\");
    check_label_value("\"", 1, "\\\"");
    check_label_value("\n", 1, "\\n");
    check_label_value("a\\b\"c\nd", 7, "a\\\\b\\\"c\\nd");
    check_label_value("\\\\\"\"\n\n", 6, "\\\\\\\\\\\"\\\"\\n\\n");
    /* Everything else passes: tab, carriage return, single quote, braces, '=' and ','. */
    check_label_value("\t\r'{}=,", 7, "\t\r'{}=,");
    check_label_value("", 0, "");
    check_label_value(NULL, 0, "");
}

static void test_help_escapes_backslash_and_newline_but_not_quotes(void **state)
{
    (void)state;
    check_help("\\", "\\\\");
    check_help("\n", "\\n");
    check_help("\"", "\"");
    check_help("Rows \"sent\"\nper\\stream", "Rows \"sent\"\\nper\\\\stream");
    check_help("bad \xC3", "bad " FFFD);
}

static void test_label_value_passes_well_formed_utf8_through(void **state)
{
    (void)state;
    static const char *const ok[] = {
        "caf\xC3\xA9",      /* U+00E9, two bytes */
        "\xE2\x82\xAC",     /* U+20AC euro, three bytes */
        "\xF0\x9D\x84\x9E", /* U+1D11E, four bytes */
        "\xC2\x80",         /* U+0080, the first two-byte code point */
        "\xE0\xA0\x80",     /* U+0800, the first three-byte code point */
        "\xED\x9F\xBF",     /* U+D7FF, just below the surrogates */
        "\xEE\x80\x80",     /* U+E000, just above them */
        "\xEF\xBF\xBF",     /* U+FFFF */
        "\xF0\x90\x80\x80", /* U+10000, the first four-byte code point */
        "\xF4\x8F\xBF\xBF", /* U+10FFFF, the last code point */
        "\xEF\xBF\xBD",     /* U+FFFD itself */
    };
    for (size_t i = 0; i < N_ELEMS(ok); i++)
        check_label_value(ok[i], strlen(ok[i]), ok[i]);
    /* A quote right after multibyte text (CJK) is still escaped. */
    check_label_value("\xE6\x97\xA5\xE6\x9C\xAC\"x", 8, "\xE6\x97\xA5\xE6\x9C\xAC\\\"x");

    /* An embedded NUL is well-formed UTF-8 and passes through; the length says so. */
    char out[8];
    assert_int_equal(fw__prom_escape_label_value(out, sizeof(out), "a\0b", 3), 3);
    assert_memory_equal(out, "a\0b", 4);
}

static void test_label_value_replaces_each_ill_formed_subpart_with_u_fffd(void **state)
{
    (void)state;
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"\x80", FFFD},                            /* continuation without a lead */
        {"\xBF\x80", FFFD FFFD},                   /* two of them: one each */
        {"\xC0\x80", FFFD FFFD},                   /* overlong NUL: C0 never leads */
        {"\xC1\xBF", FFFD FFFD},                   /* overlong DEL */
        {"\xE0\x80\x80", FFFD FFFD FFFD},          /* overlong three-byte form */
        {"\xE0\x9F\xBF", FFFD FFFD FFFD},          /* E0 needs A0..BF next */
        {"\xED\xA0\x80", FFFD FFFD FFFD},          /* U+D800, a UTF-16 surrogate */
        {"\xED\xBF\xBF", FFFD FFFD FFFD},          /* U+DFFF */
        {"\xF0\x80\x80\x80", FFFD FFFD FFFD FFFD}, /* overlong four-byte form */
        {"\xF4\x90\x80\x80", FFFD FFFD FFFD FFFD}, /* U+110000, past the last code point */
        {"\xF5\x80\x80\x80", FFFD FFFD FFFD FFFD}, /* F5..FF never lead */
        {"\xFE", FFFD},
        {"\xFF", FFFD},
        {"\xC3", FFFD},                                /* truncated at the end of the input */
        {"\xE2\x82", FFFD},                            /* truncated euro: one subpart, one FFFD */
        {"\xF0\x9F\x98", FFFD},                        /* truncated four-byte sequence */
        {"\xE2\x82x", FFFD "x"},                       /* cut short by ASCII, which survives */
        {"\xE2\x82\xE2\x82\xAC", FFFD "\xE2\x82\xAC"}, /* cut short by a new lead */
        {"\xE2\x82\"", FFFD "\\\""},                   /* the quote that cuts it is escaped */
        {"\xE2\x82\\", FFFD "\\\\"},
        {"\xE2\x82\n", FFFD "\\n"},
        {"ok\xC3(\xC3\xA9)", "ok" FFFD "(\xC3\xA9)"},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++)
        check_label_value(cases[i].in, strlen(cases[i].in), cases[i].want);
}

/* ---- names ----------------------------------------------------------------------------- */

static void test_names_are_checked_against_the_exposition_grammar(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        bool metric, label;
    } cases[] = {
        {"fraiseql_rows_total", true, true},
        {"a", true, true},
        {"_", true, true},
        {"A_b9", true, true},
        {"_private", true, true},
        {"__reserved", true, false}, /* labels starting with __ belong to Prometheus */
        {"__", true, false},
        {"_x_", true, true},
        {"job:rate5m", true, false}, /* colons: metric names only */
        {":leading", true, false},
        {"9lives", false, false}, /* no leading digit */
        {"", false, false},
        {"has space", false, false},
        {"has-dash", false, false},
        {"dot.ted", false, false},
        {"caf\xC3\xA9", false, false}, /* ASCII only */
        {"tab\t", false, false},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        assert_int_equal(fw__prom_valid_metric_name(cases[i].name), cases[i].metric);
        assert_int_equal(fw__prom_valid_label_name(cases[i].name), cases[i].label);
    }
    assert_false(fw__prom_valid_metric_name(NULL));
    assert_false(fw__prom_valid_label_name(NULL));

    static const char *const types[] = {"counter", "gauge", "histogram", "summary", "untyped"};
    for (size_t i = 0; i < N_ELEMS(types); i++)
        assert_true(fw__prom_valid_type(types[i]));
    assert_false(fw__prom_valid_type("Counter"));
    assert_false(fw__prom_valid_type("info"));
    assert_false(fw__prom_valid_type(""));
    assert_false(fw__prom_valid_type(NULL));
}

/* ---- samples and headers --------------------------------------------------------------- */

static void test_sample_writes_zero_one_and_two_labels(void **state)
{
    (void)state;
    char out[256];
    assert_int_equal(fw__prom_write_sample(out, sizeof(out), "fraiseql_up", NULL, NULL, 0, 1), 14);
    assert_string_equal(out, "fraiseql_up 1\n");

    const char *names[] = {"entity", "state"};
    const char *values[] = {"users", "open"};
    fw__prom_write_sample(out, sizeof(out), "fraiseql_rows_total", names, values, 1, 1234);
    assert_string_equal(out, "fraiseql_rows_total{entity=\"users\"} 1234\n");
    fw__prom_write_sample(out, sizeof(out), "fraiseql_streams", names, values, 2, 3);
    assert_string_equal(out, "fraiseql_streams{entity=\"users\",state=\"open\"} 3\n");

    /* Values are escaped and repaired; an empty value is legal. */
    const char *odd[] = {"a\"b\\c\nd\xFF", ""};
    fw__prom_write_sample(out, sizeof(out), "m", names, odd, 2, 0);
    assert_string_equal(out, "m{entity=\"a\\\"b\\\\c\\nd" FFFD "\",state=\"\"} 0\n");
}

static void test_sample_prints_integral_values_without_a_decimal_point(void **state)
{
    (void)state;
    check_value(0, "m 0\n");
    check_value(-0.0, "m 0\n");
    check_value(1, "m 1\n");
    check_value(-7, "m -7\n");
    check_value(42, "m 42\n");
    check_value(1e15, "m 1000000000000000\n");
    check_value(9007199254740991.0, "m 9007199254740991\n"); /* 2^53 - 1 */
    check_value(-9007199254740991.0, "m -9007199254740991\n");
    /* From 2^53 on, integral doubles take the round-trip path like any other. */
    check_value(9007199254740992.0, "m 9007199254740992\n");
    check_value(18446744073709551616.0, "m 1.8446744073709552e+19\n"); /* 2^64 */
    check_value(1e20, "m 1e+20\n");
    check_value(-1e300, "m -1e+300\n");
}

static void test_sample_prints_fractions_in_the_fewest_digits_that_round_trip(void **state)
{
    (void)state;
    check_value(0.5, "m 0.5\n");
    check_value(0.1, "m 0.1\n");
    check_value(-2.25, "m -2.25\n");
    check_value(1.0 / 3.0, "m 0.3333333333333333\n");  /* 16 digits */
    check_value(0.1 + 0.2, "m 0.30000000000000004\n"); /* 17 digits */
    check_value(1e-7, "m 1e-07\n");
    check_value(123456.789, "m 123456.789\n");
    check_value(DBL_MAX, "m 1.7976931348623157e+308\n");
    check_value(DBL_MIN, "m 2.2250738585072014e-308\n");
    check_value(5e-324, "m 4.94065645841247e-324\n");        /* the smallest subnormal */
    check_value(9007199254740993.5, "m 9007199254740994\n"); /* rounds to 2^53 + 2 */
}

static void test_sample_prints_nan_and_infinities_as_the_format_spells_them(void **state)
{
    (void)state;
    check_value((double)NAN, "m NaN\n");
    check_value(-(double)NAN, "m NaN\n");
    check_value((double)INFINITY, "m +Inf\n");
    check_value(-(double)INFINITY, "m -Inf\n");
}

/* The decimal point is '.', whatever LC_NUMERIC an embedding program chose. Needs a locale with
 * a comma; skipped where none is installed (run with LOCPATH at a localedef output to force). */
static void test_sample_uses_a_dot_in_a_comma_decimal_locale(void **state)
{
    (void)state;
    static const char *const names[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "de_DE",
                                        "fr_FR"};
    const char *set = NULL;
    for (size_t i = 0; i < N_ELEMS(names) && set == NULL; i++)
        set = setlocale(LC_NUMERIC, names[i]);
    if (set == NULL) {
        skip();
        return;
    }
    char probe[16];
    snprintf(probe, sizeof(probe), "%.1f", 0.5);
    bool comma = strcmp(probe, "0,5") == 0;
    char out[64];
    fw__prom_write_sample(out, sizeof(out), "m", NULL, NULL, 0, 0.25);
    char out2[64];
    fw__prom_write_sample(out2, sizeof(out2), "m", NULL, NULL, 0, 1.0 / 3.0);
    setlocale(LC_NUMERIC, "C");
    assert_true(comma);
    assert_string_equal(out, "m 0.25\n");
    assert_string_equal(out2, "m 0.3333333333333333\n");
}

static void test_header_writes_help_and_type_lines(void **state)
{
    (void)state;
    char out[256];
    size_t n = fw__prom_write_header(out, sizeof(out), "fraiseql_rows_total",
                                     "Rows handed to consumers.", "counter");
    assert_string_equal(out, "# HELP fraiseql_rows_total Rows handed to consumers.\n"
                             "# TYPE fraiseql_rows_total counter\n");
    assert_int_equal(n, strlen(out));

    fw__prom_write_header(out, sizeof(out), "m", "a \"b\"\\c\nd", "gauge");
    assert_string_equal(out, "# HELP m a \"b\"\\\\c\\nd\n# TYPE m gauge\n");

    n = fw__prom_write_header(out, sizeof(out), "m", NULL, "untyped");
    assert_string_equal(out, "# TYPE m untyped\n");
    assert_int_equal(n, 17);

    fw__prom_write_header(out, sizeof(out), "m", "", "histogram");
    assert_string_equal(out, "# HELP m \n# TYPE m histogram\n");
}

/* ---- truncation ------------------------------------------------------------------------ */

typedef size_t (*writer_fn)(char *dst, size_t cap);

static size_t write_escaped_label(char *dst, size_t cap)
{
    /* Escapes and multibyte sequences, so some cuts land inside them. */
    static const char in[] = "a\"\\\n\xC3\xA9\xE2\x82\xAC\xFF\xF0\x9D\x84\x9E\xE2\x82z";
    return fw__prom_escape_label_value(dst, cap, in, sizeof(in) - 1);
}

static size_t write_escaped_help(char *dst, size_t cap)
{
    static const char in[] = "help \"q\" \\ \n \xC0 end";
    return fw__prom_escape_help(dst, cap, in, sizeof(in) - 1);
}

static size_t write_two_label_sample(char *dst, size_t cap)
{
    const char *names[] = {"entity", "q"};
    const char *values[] = {"us\"ers", "\xE2\x82\xAC\n"};
    return fw__prom_write_sample(dst, cap, "fraiseql_bytes_total", names, values, 2, 0.1);
}

static size_t write_inf_sample(char *dst, size_t cap)
{
    return fw__prom_write_sample(dst, cap, "m", NULL, NULL, 0, -(double)INFINITY);
}

static size_t write_full_header(char *dst, size_t cap)
{
    return fw__prom_write_header(dst, cap, "fraiseql_rows_total", "Rows \\ sent\n", "counter");
}

static void
test_every_writer_returns_the_full_length_and_a_terminated_prefix_at_every_size(void **state)
{
    (void)state;
    static const writer_fn writers[] = {write_escaped_label, write_escaped_help,
                                        write_two_label_sample, write_inf_sample,
                                        write_full_header};
    for (size_t w = 0; w < N_ELEMS(writers); w++) {
        /* The length alone, with no buffer at all. */
        size_t full = writers[w](NULL, 0);
        assert_true(full > 0);
        char *ref = malloc(full + 1);
        assert_non_null(ref);
        assert_int_equal(writers[w](ref, full + 1), full);
        assert_int_equal(strlen(ref), full);

        for (size_t cap = 1; cap <= full + 2; cap++) {
            /* Exactly cap bytes on the heap, so AddressSanitizer sees any byte written past it. */
            char *buf = malloc(cap);
            assert_non_null(buf);
            memset(buf, 'Z', cap);
            assert_int_equal(writers[w](buf, cap), full);
            size_t kept = cap - 1 < full ? cap - 1 : full;
            assert_int_equal(buf[kept], '\0');
            assert_memory_equal(buf, ref, kept);
            free(buf);
        }
        free(ref);
    }
}

/* ---- counters and gauges --------------------------------------------------------------- */

static void test_counter_and_gauge_start_at_zero_and_add_sub_set_get(void **state)
{
    (void)state;
    fw__counter_t *c = malloc(sizeof(*c));
    fw__gauge_t *g = malloc(sizeof(*g));
    assert_non_null(c);
    assert_non_null(g);
    fw__counter_init(c);
    fw__gauge_init(g);
    assert_int_equal(fw__counter_get(c), 0);
    assert_int_equal(fw__gauge_get(g), 0);

    fw__counter_add(c, 5);
    fw__counter_add(c, 0);
    fw__counter_add(c, UINT64_C(1) << 40);
    assert_int_equal(fw__counter_get(c), (UINT64_C(1) << 40) + 5);

    fw__gauge_add(g, 10);
    fw__gauge_sub(g, 25);
    assert_int_equal(fw__gauge_get(g), -15);
    fw__gauge_set(g, INT64_MAX);
    assert_int_equal(fw__gauge_get(g), INT64_MAX);
    fw__gauge_add(g, -INT64_MAX);
    assert_int_equal(fw__gauge_get(g), 0);
    free(c);
    free(g);
}

static void test_recording_works_through_the_out_of_line_definitions(void **state)
{
    (void)state;
    /* Calls through pointers cannot be inlined: they reach the copies metric.c emits. */
    void (*counter_add)(fw__counter_t *, uint64_t) = fw__counter_add;
    uint64_t (*counter_get)(const fw__counter_t *) = fw__counter_get;
    void (*gauge_add)(fw__gauge_t *, int64_t) = fw__gauge_add;
    void (*gauge_sub)(fw__gauge_t *, int64_t) = fw__gauge_sub;
    void (*gauge_set)(fw__gauge_t *, int64_t) = fw__gauge_set;
    int64_t (*gauge_get)(const fw__gauge_t *) = fw__gauge_get;
    static fw__counter_t c; /* static storage starts at zero without init */
    static fw__gauge_t g;
    counter_add(&c, 3);
    assert_int_equal(counter_get(&c), 3);
    gauge_set(&g, 7);
    gauge_add(&g, 2);
    gauge_sub(&g, 10);
    assert_int_equal(gauge_get(&g), -1);
}

#define HAMMER_ITERATIONS 1000000

static fw__counter_t hammer_counter;
static fw__gauge_t hammer_gauge;
static fw__gauge_t hammer_balance;

static void *hammer_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < HAMMER_ITERATIONS; i++) {
        fw__counter_add(&hammer_counter, 1);
        fw__gauge_add(&hammer_gauge, 3);
        fw__gauge_sub(&hammer_gauge, 1);
        /* Up then down: a lost update would leave the balance off zero. */
        fw__gauge_add(&hammer_balance, 1);
        fw__gauge_sub(&hammer_balance, 1);
    }
    return NULL;
}

static void test_counters_and_gauges_count_every_update_from_two_threads(void **state)
{
    (void)state;
    fw__counter_init(&hammer_counter);
    fw__gauge_init(&hammer_gauge);
    fw__gauge_init(&hammer_balance);
    pthread_t a, b;
    assert_int_equal(pthread_create(&a, NULL, hammer_main, NULL), 0);
    assert_int_equal(pthread_create(&b, NULL, hammer_main, NULL), 0);
    /* A scrape while they run: any value in range is fine, and TSan must see no race. */
    uint64_t seen = fw__counter_get(&hammer_counter);
    int64_t level = fw__gauge_get(&hammer_gauge);
    assert_int_equal(pthread_join(a, NULL), 0);
    assert_int_equal(pthread_join(b, NULL), 0);
    assert_true(seen <= 2 * HAMMER_ITERATIONS);
    assert_true(level >= -2 * HAMMER_ITERATIONS && level <= 4 * HAMMER_ITERATIONS);

    assert_int_equal(fw__counter_get(&hammer_counter), 2 * HAMMER_ITERATIONS);
    assert_int_equal(fw__gauge_get(&hammer_gauge), 4 * HAMMER_ITERATIONS);
    assert_int_equal(fw__gauge_get(&hammer_balance), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_label_value_escapes_backslash_quote_and_newline),
        cmocka_unit_test(test_help_escapes_backslash_and_newline_but_not_quotes),
        cmocka_unit_test(test_label_value_passes_well_formed_utf8_through),
        cmocka_unit_test(test_label_value_replaces_each_ill_formed_subpart_with_u_fffd),
        cmocka_unit_test(test_names_are_checked_against_the_exposition_grammar),
        cmocka_unit_test(test_sample_writes_zero_one_and_two_labels),
        cmocka_unit_test(test_sample_prints_integral_values_without_a_decimal_point),
        cmocka_unit_test(test_sample_prints_fractions_in_the_fewest_digits_that_round_trip),
        cmocka_unit_test(test_sample_prints_nan_and_infinities_as_the_format_spells_them),
        cmocka_unit_test(test_sample_uses_a_dot_in_a_comma_decimal_locale),
        cmocka_unit_test(test_header_writes_help_and_type_lines),
        cmocka_unit_test(
            test_every_writer_returns_the_full_length_and_a_terminated_prefix_at_every_size),
        cmocka_unit_test(test_counter_and_gauge_start_at_zero_and_add_sub_set_get),
        cmocka_unit_test(test_recording_works_through_the_out_of_line_definitions),
        cmocka_unit_test(test_counters_and_gauges_count_every_update_from_two_threads),
    };
    return cmocka_run_group_tests_name("metrics_prom", tests, NULL, NULL);
}
