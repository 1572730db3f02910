/* SPDX-License-Identifier: MIT */
/*
 * Coalesced reads in bulk, for the stream producer of stream.c (which calls
 * fw__stream_coalesce_next each time the socket is empty, and fw__stream_coal_leave when it
 * stops reading).
 *
 * Issue 18. PostgreSQL writes in 8 KiB pieces; an event loop that wakes for each
 * pays epoll_wait + recv per piece where a blocking reader pays one read. While the server
 * sends fast, the socket is not watched at all: a fine timer (ftimer.h: a timerfd on Linux)
 * reads it every coal_us, in 64 KiB recv()s back to back. Only after COAL_AFTER bytes (the
 * first rows and small results are read at once), while the bytes come at COAL_RATE or more
 * per millisecond and the socket's wakes bring less than COAL_SMALL each (a reader that the
 * scheduler runs late already finds large reads: a timer would only add system calls);
 * COAL_IDLE_MS of cycles that bring less than COAL_KEEP, one of the server's pieces (a slow
 * producer), go back to reading as soon as bytes arrive; the end of the reply
 * (ReadyForQuery) waits at most one interval. A unix socket's poll ignores SO_RCVLOWAT, so a
 * timer is the one way that works for both transports.
 *
 * The interval is the cost of the design: while we wait, the server's bytes pile up in its
 * socket send buffer (about 208 KB on a unix socket, wmem_default), and a full buffer stops
 * the backend in send(). At 175 KB/ms, the rate of v_bench_1m on a quiet reference host,
 * that is about a millisecond: libuv's millisecond timers (which fire 0-2 ms after they are
 * asked to) held the backend back and cost 12-22% of wall time against a blocking reader
 * (0.90-0.91 of its wall time with the fine timer: docs/benchmarks.md, "Coalesced reads").
 * So the interval follows the measured rate, aiming at COAL_TARGET bytes a cycle, under a
 * third of that buffer, between COAL_MIN_US and COAL_MAX_US: smoothed over a few cycles, but
 * shortened at once by a cycle that brought twice the target. Each cycle costs an
 * epoll_wait, a read() of the timerfd and one or two recv()s; re-arming the timer
 * (timerfd_settime) only when the interval changes by half.
 */
#include "stream_int.h"

#define COAL_AFTER     ((uint64_t)1024 * 1024)
#define COAL_WINDOW_MS 2
#define COAL_RATE      ((uint64_t)16 * 1024)
#define COAL_KEEP      ((uint64_t)8 * 1024)
#define COAL_SMALL     ((uint64_t)32 * 1024)
#define COAL_IDLE_MS   8
#define COAL_TARGET    ((uint64_t)64 * 1024)
#define COAL_MIN_US    100
#define COAL_MAX_US    1000

void fw__stream_coal_init(fw_stream_t *s)
{
    s->coal_us = s->coal_want = COAL_MAX_US;
}

void fw__stream_coal_leave(fw_stream_t *s)
{
    if (!s->coalescing)
        return;
    fw__ftimer_stop(&s->coal);
    s->coalescing = false;
    fw__stream_wake_pending(s);
    s->win_t = uv_hrtime();
    s->win_bytes = 0;
    s->win_wakes = 0;
    if (s->conn != NULL && s->reading)
        fw__chan_read_defer(&s->conn->chan, false);
}

static void on_coal(fw__ftimer_t *t)
{
    fw_stream_t *s = t->data;
    /* A stalled stream keeps coalescing (fw__stream_set_reading): its wake, not a tick,
     * brings it back once the consumer has made room. */
    if (s->coalescing && s->conn != NULL && !s->stalled) {
        fw__stream_count(&s->st_read_ticks);
        fw__stream_pump(s);
    }
}

/* A stall while coalescing (fw__stream_set_reading): the timer is disarmed, not watched less
 * (no epoll_ctl), and armed again when the stall ends; the stall is no cycle of the rate. */
void fw__stream_coal_hold(fw_stream_t *s)
{
    fw__ftimer_stop(&s->coal);
}

void fw__stream_coal_resume(fw_stream_t *s)
{
    s->coal_t = uv_hrtime();
    fw__ftimer_start(&s->coal, s->coal_us, on_coal);
}

/* The interval at which a cycle brings COAL_TARGET bytes, `got` having come in `ns`. */
static uint64_t coal_interval(uint64_t got, uint64_t ns)
{
    if (got == 0 || ns / 1000 >= COAL_MAX_US * got / COAL_TARGET)
        return COAL_MAX_US;
    uint64_t us = COAL_TARGET * (ns / 1000) / got;
    return us < COAL_MIN_US ? COAL_MIN_US : us;
}

/*
 * The socket is empty: read again when it becomes readable, or (coalescing) at the next tick.
 * Turns coalescing on after COAL_AFTER bytes, and keeps it, while the bytes come at COAL_RATE
 * per millisecond or more (measured on the monotonic clock). Returns whether the stream
 * coalesces.
 */
bool fw__stream_coalesce_next(fw_stream_t *s)
{
    if (!s->reading)
        return false; /* stalled or paused: the stall's end, not a tick, reads next */
    uint64_t got = s->cycle_bytes;
    s->cycle_bytes = 0;
    if (s->rx_total < COAL_AFTER)
        return false;
    uint64_t now = uv_hrtime();
    s->win_wakes++;
    if (s->coalescing) {
        uint64_t ns = now - s->coal_t;
        s->coal_t = now;
        /* COAL_IDLE_MS without a whole piece of the server's: it has slowed down. (Not at
         * the first empty cycle: on a busy machine the server often misses a few
         * milliseconds, and every change of what epoll watches is a system call.) */
        s->coal_idle_ns = got < COAL_KEEP ? s->coal_idle_ns + ns : 0;
        if (s->coal_idle_ns >= (uint64_t)COAL_IDLE_MS * 1000000) {
            fw__stream_coal_leave(s);
            return false;
        }
        /* Smoothed over about four cycles, but at once to a shorter interval when a cycle
         * brought twice the target: the server's buffer is then more than half full. */
        uint64_t ideal = coal_interval(got, ns);
        if (got > 2 * COAL_TARGET && ideal < s->coal_want)
            s->coal_want = ideal;
        else
            s->coal_want = (s->coal_want * 3 + ideal) / 4;
        /* Re-arming costs a timerfd_settime: only for a change by a factor of 1.5 or more. */
        if (s->coal_want * 3 <= s->coal_us * 2 || s->coal_want * 2 >= s->coal_us * 3) {
            s->coal_us = s->coal_want;
            fw__ftimer_start(&s->coal, s->coal_us, on_coal);
        }
        return true;
    }
    uint64_t ns = now - s->win_t;
    if (ns < (uint64_t)COAL_WINDOW_MS * 1000000)
        return false;
    /* bytes per ms >= COAL_RATE, i.e. bytes * 1e6 >= COAL_RATE * ns; and wakes that bring
     * less than COAL_SMALL each */
    bool fast = s->win_bytes * 1000000 >= COAL_RATE * ns;
    bool small = s->win_bytes < COAL_SMALL * s->win_wakes;
    uint64_t win = s->win_bytes;
    s->win_t = now;
    s->win_bytes = 0;
    s->win_wakes = 0;
    if (!fast || !small)
        return false;
    s->coalescing = true;
    s->coal_idle_ns = 0;
    s->coal_t = now;
    s->coal_us = s->coal_want = coal_interval(win, ns);
    fw__chan_read_defer(&s->conn->chan, true);
    fw__ftimer_start(&s->coal, s->coal_us, on_coal);
    return true;
}
