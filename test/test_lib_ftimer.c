/* SPDX-License-Identifier: MIT */
/*
 * The fine timer (lib/ftimer.h) on a real loop: periodic ticks at a sub-millisecond interval,
 * a restart at another interval, a stopped timer that neither ticks nor keeps the loop alive,
 * and a clean close, started or not. Counts ticks only: how punctual they are is the benchmarks'
 * business.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ftimer.h"

typedef struct ctx_s {
    int ticks;
    int stop_at;
    int closes;
} ctx_t;

static void on_tick(fw__ftimer_t *t)
{
    ctx_t *c = t->data;
    if (++c->ticks == c->stop_at)
        fw__ftimer_stop(t);
}

static void on_closed(fw__ftimer_t *t)
{
    ctx_t *c = t->data;
    c->closes++;
}

/* Closes the timer, runs the loop until it is closed, and checks the callback ran once and the
 * loop has nothing left. */
static void close_and_end(uv_loop_t *loop, fw__ftimer_t *t, ctx_t *c)
{
    fw__ftimer_close(t, on_closed);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(c->closes, 1);
    assert_int_equal(uv_loop_close(loop), 0);
}

static void test_ticks_repeat_until_stopped_and_a_stopped_timer_lets_the_loop_end(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    fw__ftimer_t t;
    ctx_t c = {0, 5, 0};
    fw__ftimer_init(&loop, &t);
    t.data = &c;
    fw__ftimer_start(&t, 200, on_tick);
#ifdef __linux__
    assert_true(fw__ftimer_is_fine(&t));
#endif
    /* Returns once the timer is stopped: nothing else keeps the loop alive. */
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(c.ticks, 5);
    /* Stopped: another turn brings no tick. */
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(c.ticks, 5);
    close_and_end(&loop, &t, &c);
}

static void test_a_restart_changes_the_interval_and_keeps_ticking(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    fw__ftimer_t t;
    ctx_t c = {0, 3, 0};
    fw__ftimer_init(&loop, &t);
    t.data = &c;
    fw__ftimer_start(&t, 1500, on_tick);
    fw__ftimer_start(&t, 100, on_tick); /* a running timer restarts at the new interval */
    assert_int_equal((int)t.interval_us, 100);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(c.ticks, 3);
    /* Started again after a stop: it ticks again. */
    c.stop_at = 6;
    fw__ftimer_start(&t, 300, on_tick);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(c.ticks, 6);
    close_and_end(&loop, &t, &c);
}

static void test_closing_a_running_timer_runs_the_callback_once(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    fw__ftimer_t t;
    ctx_t c = {0, -1, 0};
    fw__ftimer_init(&loop, &t);
    t.data = &c;
    fw__ftimer_start(&t, 1, on_tick);
    fw__ftimer_close(&t, on_closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(c.ticks, 0);
    assert_int_equal(c.closes, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_a_timer_never_started_closes_through_the_loop(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    fw__ftimer_t t;
    ctx_t c = {0, -1, 0};
    fw__ftimer_init(&loop, &t);
    t.data = &c;
    fw__ftimer_close(&t, on_closed);
    assert_int_equal(c.closes, 0); /* never from inside the call */
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(c.closes, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ticks_repeat_until_stopped_and_a_stopped_timer_lets_the_loop_end),
        cmocka_unit_test(test_a_restart_changes_the_interval_and_keeps_ticking),
        cmocka_unit_test(test_closing_a_running_timer_runs_the_callback_once),
        cmocka_unit_test(test_a_timer_never_started_closes_through_the_loop),
    };
    return cmocka_run_group_tests_name("lib_ftimer", tests, NULL, NULL);
}
