/* SPDX-License-Identifier: MIT */
/*
 * A fine timer: periodic, with an interval in microseconds, on the loop (the stream's coalesced
 * reads, stream.c). libuv's timers count milliseconds and fire up to a millisecond late; on
 * Linux this one is a timerfd watched by a uv_poll_t, so a period of a few hundred microseconds
 * costs one epoll_wait and one read() of the timerfd per tick. Elsewhere, or when no timerfd
 * can be created, it is a uv_timer_t of the interval rounded up to a whole millisecond.
 * Loop thread only.
 */
#ifndef FW_FTIMER_H
#define FW_FTIMER_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

typedef struct fw__ftimer_s fw__ftimer_t;
typedef void (*fw__ftimer_cb)(fw__ftimer_t *t);

struct fw__ftimer_s {
    union {
        uv_handle_t handle;
        uv_poll_t poll;   /* fine: the timerfd */
        uv_timer_t timer; /* coarse: milliseconds */
    } h;
    uv_loop_t *loop;
    bool made; /* the handle exists (from the first start on) */
    int fd;    /* the timerfd, or -1 (coarse) */
    bool active;
    uint64_t interval_us; /* while active */
    fw__ftimer_cb cb;
    fw__ftimer_cb close_cb;
    void *data; /* the owner's */
};

/* Sets *t up on loop; the handle itself is made at the first start (a timerfd, or without
 * one a coarse timer). Cannot fail. */
void fw__ftimer_init(uv_loop_t *loop, fw__ftimer_t *t);
/* Runs cb every interval_us (at least 1) from now on; a running timer starts its period anew. */
void fw__ftimer_start(fw__ftimer_t *t, uint64_t interval_us, fw__ftimer_cb cb);
void fw__ftimer_stop(fw__ftimer_t *t);
/* Whether the ticks are finer than libuv's milliseconds (a timerfd; known once started). */
bool fw__ftimer_is_fine(const fw__ftimer_t *t);
/* Stops and releases it; cb runs once the loop has let go of it (uv_close). */
void fw__ftimer_close(fw__ftimer_t *t, fw__ftimer_cb cb);

#endif
