/* SPDX-License-Identifier: MIT */
/* The adaptive chunk-size policy, table-tested without a loop (STYLE 19). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "chunker.h"
#include "fwire_base.h"

static fw__chunker_t start_default(void)
{
    fw__chunker_opts_t o;
    fw__chunker_opts_init(&o);
    fw__chunker_t c;
    assert_int_equal(fw__chunker_init(&c, &o), 0);
    return c;
}

/* Feeds whole windows of one occupancy and returns the size after each window. */
static void windows(fw__chunker_t *c, size_t queued, size_t cap, int n, uint32_t *sizes)
{
    for (int w = 0; w < n; w++) {
        for (uint32_t i = 0; i < c->o.window; i++)
            sizes[w] = fw__chunker_observe(c, queued, cap);
    }
}

static void test_defaults_are_16_to_1024_starting_at_256_over_50_observations(void **state)
{
    (void)state;
    fw__chunker_t c = start_default();
    assert_int_equal(c.size, 256);
    assert_int_equal(c.o.floor, 16);
    assert_int_equal(c.o.ceiling, 1024);
    assert_int_equal(c.o.window, 50);
    assert_int_equal(c.o.high_permille, 800);
    assert_int_equal(c.o.low_permille, 200);
    assert_int_equal(c.o.factor_permille, 1500);
}

static void test_stable_occupancy_inside_the_band_never_changes_the_size(void **state)
{
    (void)state;
    fw__chunker_t c = start_default();
    uint32_t sizes[40];
    windows(&c, 32, 64, 40, sizes); /* 50% */
    for (int i = 0; i < 40; i++)
        assert_int_equal(sizes[i], 256);
    assert_int_equal(c.grows + c.shrinks, 0);
}

static void test_high_occupancy_grows_by_half_to_the_ceiling_and_stops(void **state)
{
    (void)state;
    fw__chunker_t c = start_default();
    uint32_t sizes[8];
    windows(&c, 64, 64, 8, sizes); /* full ring: slow consumer */
    static const uint32_t want[8] = {384, 576, 864, 1024, 1024, 1024, 1024, 1024};
    for (int i = 0; i < 8; i++)
        assert_int_equal(sizes[i], want[i]);
    assert_int_equal(c.grows, 4);
    assert_int_equal(c.shrinks, 0);
}

static void test_low_occupancy_shrinks_by_half_to_the_floor_and_stops(void **state)
{
    (void)state;
    fw__chunker_t c = start_default();
    uint32_t sizes[10];
    windows(&c, 0, 64, 10, sizes); /* empty ring: fast consumer */
    static const uint32_t want[10] = {170, 113, 75, 50, 33, 22, 16, 16, 16, 16};
    for (int i = 0; i < 10; i++)
        assert_int_equal(sizes[i], want[i]);
    assert_int_equal(c.shrinks, 7);
    assert_int_equal(c.grows, 0);
}

static void test_at_most_one_change_per_window(void **state)
{
    (void)state;
    fw__chunker_t c = start_default();
    for (int i = 0; i < 49; i++)
        assert_int_equal(fw__chunker_observe(&c, 64, 64), 256);
    assert_int_equal(fw__chunker_observe(&c, 64, 64), 384); /* the 50th decides */
    for (int i = 0; i < 49; i++)
        assert_int_equal(fw__chunker_observe(&c, 64, 64), 384);
    assert_int_equal(c.grows, 1);
}

static void test_oscillation_inside_the_band_does_not_flap(void **state)
{
    (void)state;
    fw__chunker_t c = start_default();
    for (int i = 0; i < 50 * 30; i++) {
        /* 30% and 70% alternating, then windows that average 50% from 0% and 100% */
        size_t q = i < 50 * 15 ? (i % 2 ? 19 : 45) : (i % 2 ? 0 : 64);
        assert_int_equal(fw__chunker_observe(&c, q, 64), 256);
    }
    assert_int_equal(c.grows + c.shrinks, 0);
}

static void test_thresholds_are_strict_at_exactly_80_and_20_percent(void **state)
{
    (void)state;
    fw__chunker_t c = start_default();
    uint32_t s[1];
    windows(&c, 800, 1000, 1, s);
    assert_int_equal(s[0], 256);
    windows(&c, 200, 1000, 1, s);
    assert_int_equal(s[0], 256);
    windows(&c, 801, 1000, 1, s);
    assert_int_equal(s[0], 384);
    windows(&c, 199, 1000, 1, s);
    assert_int_equal(s[0], 256);
}

static void test_bounds_hold_for_any_input_sequence(void **state)
{
    (void)state;
    fw__chunker_opts_t o;
    fw__chunker_opts_init(&o);
    o.window = 3;
    fw__chunker_t c;
    assert_int_equal(fw__chunker_init(&c, &o), 0);
    uint32_t x = 12345;
    uint32_t last = c.size;
    uint64_t changes = 0;
    for (int i = 0; i < 100000; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        uint32_t size = fw__chunker_observe(&c, x % 100, 64); /* also over capacity */
        assert_true(size >= 16 && size <= 1024);
        if (size != last)
            changes++;
        if ((i + 1) % 3 != 0)
            assert_int_equal(size, last); /* changes only at window ends */
        last = size;
    }
    assert_int_equal(changes, c.grows + c.shrinks);
}

static void test_a_fixed_range_never_moves_and_size_one_can_grow(void **state)
{
    (void)state;
    fw__chunker_opts_t o;
    fw__chunker_opts_init(&o);
    o.floor = o.start = o.ceiling = 100;
    fw__chunker_t c;
    assert_int_equal(fw__chunker_init(&c, &o), 0);
    uint32_t s[5];
    windows(&c, 64, 64, 5, s);
    assert_int_equal(s[4], 100);
    windows(&c, 0, 64, 5, s);
    assert_int_equal(s[4], 100);
    assert_int_equal(c.grows + c.shrinks, 0);

    fw__chunker_opts_init(&o);
    o.floor = o.start = 1;
    o.ceiling = 4;
    assert_int_equal(fw__chunker_init(&c, &o), 0);
    windows(&c, 64, 64, 4, s);
    assert_int_equal(s[0], 2);
    assert_int_equal(s[1], 3);
    assert_int_equal(s[2], 4);
    assert_int_equal(s[3], 4);
}

static void test_a_zero_capacity_counts_as_empty(void **state)
{
    (void)state;
    fw__chunker_t c = start_default();
    uint32_t s[1];
    windows(&c, 5, 0, 1, s);
    assert_int_equal(s[0], 170);
}

static void test_a_stall_decides_the_window_as_a_full_ring(void **state)
{
    (void)state;
    fw__chunker_t c = start_default();
    for (int i = 0; i < 10; i++)
        assert_int_equal(fw__chunker_observe(&c, 32, 64), 256); /* 50%: in the band */
    assert_int_equal(fw__chunker_stall(&c, 64), 384);           /* 10 x 50% + 40 x 100% */
    assert_int_equal(c.seen, 0);
    for (int i = 0; i < 45; i++)
        assert_int_equal(fw__chunker_observe(&c, 0, 64), 384); /* a new window */
    /* 45 empty observations then a stall: 45 x 0 + 5 x 100% = 10%: it shrinks */
    assert_int_equal(fw__chunker_stall(&c, 64), 256);
    for (int i = 0; i < 20; i++)
        fw__chunker_stall(&c, 64);
    assert_int_equal(c.size, 1024); /* bounded */
}

static void test_invalid_options_are_refused(void **state)
{
    (void)state;
    fw__chunker_opts_t o;
    fw__chunker_t c;
    struct {
        uint32_t floor, ceiling, start, window, high, low, factor;
    } bad[] = {
        {0, 1024, 256, 50, 800, 200, 1500},  {300, 1024, 256, 50, 800, 200, 1500},
        {16, 128, 256, 50, 800, 200, 1500},  {16, 1024, 256, 0, 800, 200, 1500},
        {16, 1024, 256, 50, 200, 200, 1500}, {16, 1024, 256, 50, 1001, 200, 1500},
        {16, 1024, 256, 50, 800, 200, 1000},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        o.floor = bad[i].floor;
        o.ceiling = bad[i].ceiling;
        o.start = bad[i].start;
        o.window = bad[i].window;
        o.high_permille = bad[i].high;
        o.low_permille = bad[i].low;
        o.factor_permille = bad[i].factor;
        assert_int_equal(fw__chunker_init(&c, &o), FW_EINVAL);
    }
    assert_int_equal(fw__chunker_init(NULL, &o), FW_EINVAL);
    assert_int_equal(fw__chunker_init(&c, NULL), FW_EINVAL);
}


/* Rows arrive a read at a time: shrinking stops at a read's worth (a smaller chunk could not
 * hand them over sooner), never below the floor nor above the ceiling; growing is unaffected. */
static void test_shrinking_stops_at_the_rows_one_read_brings(void **state)
{
    (void)state;
    fw__chunker_t c = start_default();
    fw__chunker_hint_batch(&c, 60);
    uint32_t sizes[12];
    windows(&c, 0, 64, 8, sizes); /* empty ring: fast consumer */
    const uint32_t want[8] = {170, 113, 75, 60, 60, 60, 60, 60};
    for (int i = 0; i < 8; i++)
        assert_int_equal(sizes[i], want[i]);
    assert_int_equal(c.shrinks, 4);
    /* a larger hint than the size now: no shrink, and no growth from a low window either */
    fw__chunker_hint_batch(&c, 200);
    windows(&c, 0, 64, 3, sizes);
    assert_int_equal(sizes[2], 60);
    assert_int_equal(c.shrinks, 4);
    assert_int_equal(c.grows, 0);
    /* a slow consumer still grows it to the ceiling */
    windows(&c, 64, 64, 8, sizes);
    assert_int_equal(sizes[7], 1024);
    /* a hint below the floor or above the ceiling is clamped */
    fw__chunker_hint_batch(&c, 5000);
    windows(&c, 0, 64, 3, sizes);
    assert_int_equal(sizes[2], 1024);
    fw__chunker_hint_batch(&c, 1);
    windows(&c, 0, 64, 12, sizes);
    assert_int_equal(sizes[11], 16);
    fw__chunker_hint_batch(&c, 0); /* no hint: the floor */
    assert_int_equal(c.size, 16);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_are_16_to_1024_starting_at_256_over_50_observations),
        cmocka_unit_test(test_stable_occupancy_inside_the_band_never_changes_the_size),
        cmocka_unit_test(test_high_occupancy_grows_by_half_to_the_ceiling_and_stops),
        cmocka_unit_test(test_low_occupancy_shrinks_by_half_to_the_floor_and_stops),
        cmocka_unit_test(test_at_most_one_change_per_window),
        cmocka_unit_test(test_oscillation_inside_the_band_does_not_flap),
        cmocka_unit_test(test_thresholds_are_strict_at_exactly_80_and_20_percent),
        cmocka_unit_test(test_bounds_hold_for_any_input_sequence),
        cmocka_unit_test(test_a_fixed_range_never_moves_and_size_one_can_grow),
        cmocka_unit_test(test_a_zero_capacity_counts_as_empty),
        cmocka_unit_test(test_a_stall_decides_the_window_as_a_full_ring),
        cmocka_unit_test(test_invalid_options_are_refused),
        cmocka_unit_test(test_shrinking_stops_at_the_rows_one_read_brings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
