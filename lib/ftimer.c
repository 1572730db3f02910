/* SPDX-License-Identifier: MIT */
/* A fine timer (see ftimer.h): a timerfd on Linux, a libuv timer elsewhere. */
#include "ftimer.h"

#include <errno.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/timerfd.h>
#endif

static void on_timer(uv_timer_t *h)
{
    fw__ftimer_t *t = h->data;
    t->cb(t);
}

#ifdef __linux__
static void on_tick(uv_poll_t *h, int status, int events)
{
    (void)events;
    fw__ftimer_t *t = h->data;
    /* The read resets the expiration count, so the level-triggered poll stops reporting the
     * timerfd until the next tick. Ticks missed while the loop was busy are one tick: a late
     * reader wants the socket read once, not once per missed period. */
    uint64_t ticks;
    ssize_t n;
    do {
        n = read(t->fd, &ticks, sizeof(ticks));
    } while (n < 0 && errno == EINTR);
    if (status < 0 || n != (ssize_t)sizeof(ticks) || !t->active)
        return; /* EAGAIN: stopped, or re-armed, since epoll saw it */
    t->cb(t);
}

static void set_fd(fw__ftimer_t *t, uint64_t us)
{
    struct itimerspec its = {{0, 0}, {0, 0}};
    if (us > 0) {
        its.it_interval.tv_sec = (time_t)(us / 1000000);
        its.it_interval.tv_nsec = (long)(us % 1000000) * 1000;
        its.it_value = its.it_interval;
    }
    /* Cannot fail for a valid timerfd and a normalised, non-negative time. */
    (void)timerfd_settime(t->fd, 0, &its, NULL);
}
#endif

void fw__ftimer_init(uv_loop_t *loop, fw__ftimer_t *t)
{
    t->loop = loop;
    t->made = false;
    t->active = false;
    t->interval_us = 0;
    t->cb = NULL;
    t->close_cb = NULL;
    t->fd = -1;
}

/* The handle, at the first start: most streams are short and never start their timer, and a
 * timerfd costs two system calls (create, close) to a stream that does not use it. */
static void make(fw__ftimer_t *t, bool fine)
{
    if (t->made)
        return;
    t->made = true;
#ifdef __linux__
    int fd = fine ? timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC) : -1;
    if (fd >= 0) {
        if (uv_poll_init(t->loop, &t->h.poll, fd) == 0) {
            t->fd = fd;
            t->h.poll.data = t;
            return;
        }
        close(fd);
    }
#else
    (void)fine;
#endif
    uv_timer_init(t->loop, &t->h.timer); /* cannot fail */
    t->h.timer.data = t;
}

void fw__ftimer_start(fw__ftimer_t *t, uint64_t interval_us, fw__ftimer_cb cb)
{
    if (interval_us == 0)
        interval_us = 1;
    make(t, true);
    t->cb = cb;
    t->interval_us = interval_us;
    t->active = true;
#ifdef __linux__
    if (t->fd >= 0) {
        set_fd(t, interval_us);
        /* Already watched: uv_poll_start would cost an epoll_ctl at the next turn. */
        if (!uv_is_active(&t->h.handle))
            uv_poll_start(&t->h.poll, UV_READABLE, on_tick);
        uv_ref(&t->h.handle);
        return;
    }
#endif
    uint64_t ms = (interval_us + 999) / 1000;
    uv_timer_start(&t->h.timer, on_timer, ms, ms);
}

void fw__ftimer_stop(fw__ftimer_t *t)
{
    if (!t->active)
        return;
    t->active = false;
#ifdef __linux__
    if (t->fd >= 0) {
        /* Disarmed but still watched: a stream goes in and out of coalescing many times, and
         * every uv_poll_stop/uv_poll_start pair costs two epoll_ctl calls. A disarmed timerfd
         * is never readable (settime drops the ticks due); unreferenced, it does not keep
         * the loop alive. */
        set_fd(t, 0);
        uv_unref(&t->h.handle);
        return;
    }
#endif
    uv_timer_stop(&t->h.timer);
}

bool fw__ftimer_is_fine(const fw__ftimer_t *t)
{
    return t->fd >= 0;
}

static void on_closed(uv_handle_t *h)
{
    fw__ftimer_t *t = h->data;
    if (t->close_cb != NULL)
        t->close_cb(t);
}

void fw__ftimer_close(fw__ftimer_t *t, fw__ftimer_cb cb)
{
    make(t, false); /* never started: a libuv timer, to close through the loop all the same */
    t->active = false;
    t->close_cb = cb;
    uv_close(&t->h.handle, on_closed);
#ifdef __linux__
    if (t->fd >= 0) {
        /* Safe right after uv_close, which stops the watch (uv_poll_t's documentation). */
        close(t->fd);
        t->fd = -1;
    }
#endif
}
