/* SPDX-License-Identifier: MIT */
/*
 * Telling the consumer that rows (or the end) are there: the rows-ready callback in embedded
 * mode; in threaded mode the consumer's park word (park.h), woken only when it says it sleeps,
 * and batched so a fast stream does not pay a futex call and two context switches per read.
 */
#include "stream_int.h"

/* Threaded mode: the longest a small batch of rows waits to be joined by more before a
 * sleeping consumer is woken for it (libuv timers count milliseconds). */
#define NUDGE_MS 1
/* ...and at most this long while rows keep coming right after each nudge (a steady flow of
 * batches under the thresholds below: 100 KB rows ~1 ms apart woke the consumer once per row,
 * 1,574 futex calls per 1,000 rows). A pause longer than the delay brings it back to NUDGE_MS,
 * so a slow producer's rows still go out within a millisecond. */
#define NUDGE_MAX_MS 4
/* Threaded mode: rows that wake a sleeping consumer at once (whatever the chunk size, so an
 * adaptive chunk size does not change how often it is woken, down to 32-row chunks; smaller
 * ones wake it at half the ring, see fw__stream_notify). A larger ring for small chunks was
 * tried and measured: it restored the wake cadence but its extra chunks (one page each) cost
 * 1.4 MiB of RSS with a slow consumer (bench/run.sh --only chunking). */
#define WAKE_ROWS FW__STREAM_WAKE_ROWS
/* ...or this part of the byte budget, so large rows never wait until the budget is full (half
 * the read-ahead limit instead when the stream has one, fw__pipe_opts_t.soft_held: woken any
 * later, the consumer would find the producer stalled at it every time). */
#define WAKE_BUDGET_PART 8

/* Wakes a consumer sleeping in fw_stream_next (threaded mode): the stream's own, or the
 * parallel stream's that this stream is a part of (wake_to). */
static void signal_consumer(fw_stream_t *s)
{
    /* After our ring push (or final store): fw__park_wake's fence orders it before the look at
     * the consumer's park word, against the consumer's store of 1 before its last poll
     * (stream_api.c, wait_for). The stream outlives this call: the loop thread holds its
     * reference while it reads. */
    fw__park_wake(&s->wake_to->park);
}

static void on_nudge(uv_timer_t *t)
{
    fw_stream_t *s = t->data;
    /* The timer has fired: the next small batch arms it again. (Left set, as it was until this
     * fix, every later small batch waited for WAKE_ROWS, half the ring or the end: a slow
     * producer's rows reached a sleeping consumer only at its own timeout.) */
    s->nudge_armed = false;
    s->nudge_fired_at = uv_now(t->loop);
    s->signaled_rows = s->pipe.rows_pushed;
    s->signaled_bytes = s->pipe.bytes_pushed;
    signal_consumer(s);
}

/* Arms the nudge for rows pushed since the last wake. Rows again within the last delay after
 * the nudge fired: a steady flow, the delay doubles (up to NUDGE_MAX_MS); else NUDGE_MS. */
static void arm_nudge(fw_stream_t *s)
{
    uint64_t now = uv_now(s->nudge.loop);
    unsigned ms = s->nudge_ms < NUDGE_MS ? NUDGE_MS : s->nudge_ms;
    if (s->nudge_fired_at != 0 && now - s->nudge_fired_at <= ms)
        ms = ms * 2 > NUDGE_MAX_MS ? NUDGE_MAX_MS : ms * 2;
    else
        ms = NUDGE_MS;
    s->nudge_ms = (uint8_t)ms;
    s->nudge_armed = true;
    uv_timer_start(&s->nudge, on_nudge, ms, 0);
}

/*
 * Tells the consumer that rows (or the end) are there. May run user code (embedded mode).
 *
 * Threaded mode batches the wakeups of a consumer that sleeps: the server flushes every 8 KiB,
 * so one wakeup per read would cost a futex call and two context switches per ~30 rows, more
 * than the rows themselves. The first rows, a full chunk's worth, a stall and the end wake it
 * at once; smaller batches wait at most NUDGE_MS for more rows to join them.
 */
void fw__stream_notify(fw_stream_t *s, bool now)
{
    s->pushed = false;
    if (!s->threaded) {
        if (s->ready != NULL && !atomic_load_explicit(&s->abandoned, memory_order_relaxed))
            s->ready(s, s->ready_ud);
        return;
    }
    uint64_t fresh = s->pipe.rows_pushed - s->signaled_rows;
    uint64_t fresh_bytes = s->pipe.bytes_pushed - s->signaled_bytes;
    /* Half the ring queued also wakes it: with small chunks (adaptive, fast consumer) a
     * batch of WAKE_ROWS would fill the ring and stop the reads before the consumer woke. */
    if (now || s->signaled_rows == 0 || fresh >= WAKE_ROWS ||
        fresh_bytes >= (s->pipe.o.soft_held != 0 ? s->pipe.o.soft_held / 2
                                                 : s->pipe.o.max_memory / WAKE_BUDGET_PART) ||
        fw__ring_size(&s->pipe.full) >= fw__ring_capacity(&s->pipe.full) / 2) {
        s->signaled_rows = s->pipe.rows_pushed;
        s->signaled_bytes = s->pipe.bytes_pushed;
        if (s->nudge_armed) {
            uv_timer_stop(&s->nudge);
            s->nudge_armed = false;
        }
        signal_consumer(s);
    } else if (s->coalescing) {
        /* Coalescing: the next read is at most a millisecond away (stream.c, COAL_MAX_US)
         * and brings more rows; the batch grows to WAKE_ROWS there, or coal_leave wakes the
         * consumer for what is left (fw__stream_wake_pending). No nudge timer: it would only
         * wake the loop once more. */
    } else if (!s->nudge_armed && fresh > 0) {
        arm_nudge(s);
    }
}

/* Rows pushed but not yet signalled to a sleeping consumer (threaded mode): arm the nudge for
 * them. Coalescing batches without one (notify); when it ends, this picks the batch up. */
void fw__stream_wake_pending(fw_stream_t *s)
{
    if (!s->threaded || s->nudge_armed || s->pipe.rows_pushed == s->signaled_rows)
        return;
    arm_nudge(s);
}
