/* SPDX-License-Identifier: MIT */
/*
 * The consumer side of a stream and its public API: start (handed to the loop thread,
 * directly or through the runtime: stream_start.c), next / try_next / next_chunk, stats,
 * pause / resume / cancel requests, free.
 *
 * The consumer's fast path is a pop from the pipe: no lock, no syscall. It touches shared
 * state only when a chunk is finished (one release into the empty ring), when it has nothing
 * to read (then it may sleep, announcing itself in its park word), and when the producer is stalled
 * (then it wakes the loop once enough has been released).
 */
#include "alloc.h"
#include "stream_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ __volatile__("yield")
#else
#define cpu_relax() ((void)0)
#endif

/* Polls before sleeping in fw_stream_next: a chunk usually follows the last within a few
 * microseconds while the server streams, and a futex sleep and wake costs about as much. */
#define SPIN_POLLS 8

const char *fw_stream_state_name(fw_stream_state_t state)
{
    switch (state) {
    case FW_STREAM_RUNNING:
        return "running";
    case FW_STREAM_COMPLETED:
        return "completed";
    case FW_STREAM_FAILED:
        return "failed";
    case FW_STREAM_PAUSED:
        return "paused";
    case FW_STREAM_CANCELLED:
        return "cancelled";
    }
    return "unknown";
}

/* ---- start ----------------------------------------------------------------------------- */

int fw_stream_start(fw_conn_t *conn, const fw_query_t *q, fw_rows_ready_cb ready, void *ud,
                    fw_stream_t **out, fw_error_t *err)
{
    return fw__stream_start_pool(NULL, conn, q, ready, ud, out, err);
}

int fw__stream_start_pool(fw_pool_t *pool, fw_conn_t *conn, const fw_query_t *q,
                          fw_rows_ready_cb ready, void *ud, fw_stream_t **out, fw_error_t *err)
{
    if (err != NULL)
        memset(err, 0, sizeof(*err));
    if (out != NULL)
        *out = NULL;
    if (conn == NULL || q == NULL || out == NULL || (conn->runtime_link != NULL && ready != NULL)) {
        fw__stream_set_err(err, FW_EINVAL,
                conn != NULL && conn->runtime_link != NULL && ready != NULL
                    ? "threaded mode takes no rows-ready callback: use fw_stream_next"
                    : "conn, q and out are required");
        return FW_EINVAL;
    }
    /* Refuse a bad query here, before it costs a round trip to the loop thread. */
    long sql = fw_query_sql(q, NULL, 0);
    if (sql < 0) {
        fw__stream_set_err(err, (int)sql,
                sql == FW_EINVAL ? "the query has no source (fw_query_entity or fw_query_relation)"
                                 : "the query recorded an error while it was built");
        return (int)sql;
    }
    if (q->parallel > 0)
        return fw__par_start(pool, conn, q, ready, ud, out, err);
    fw__stream_start_t a = {conn, q, ready, ud, NULL, 0, err, NULL, NULL, false};
    if (conn->runtime_link != NULL) {
        a.send_after_answer = true;
        fw__runtime_call(conn, fw__stream_start_on_loop, &a);
    }
    else
        fw__stream_start_on_loop(&a);
    *out = a.s;
    return a.rc;
}

/* ---- consuming ------------------------------------------------------------------------- */

static void wake_producer(fw_stream_t *s)
{
    pthread_mutex_lock(&s->wake_mu);
    if (s->wake_alive)
        uv_async_send(&s->wake);
    pthread_mutex_unlock(&s->wake_mu);
}

void fw__stream_soft_nudge(fw_stream_t *s)
{
    if (s->par != NULL) {
        fw__par_soft_nudge(s);
        return;
    }
    /* Only with this stream's own queue empty: the producer lets the stall end only then (its
     * pushes come before the flag, and a stalled producer pushes nothing), and a nudge spent
     * while chunks were still queued (a parallel stream asks every part; or the consumer woken
     * just now) would be the last one. */
    if (atomic_load_explicit(&s->soft_stall, memory_order_acquire) &&
        fw__ring_size(&s->pipe.full) == 0 &&
        atomic_exchange_explicit(&s->soft_stall, false, memory_order_relaxed))
        wake_producer(s);
}

/* After the consumer released chunks: wake a stalled producer once enough are back. */
static void after_release(fw_stream_t *s)
{
    uint64_t rel = s->pipe.released;
    if (rel == s->released_seen)
        return;
    s->released_seen = rel;
    /* seq_cst fence: orders the releases (ring pushes) before the load of stall_flag; pairs
     * with the producer's seq_cst store of the flag before it re-reads the released count. */
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&s->stall_flag, memory_order_relaxed) &&
        rel >= atomic_load_explicit(&s->wake_at, memory_order_relaxed))
        wake_producer(s);
}

/*
 * The end, once every row before it was taken: FW_END or the failure. Once the producer has
 * published the end it never touches the pipe again, so the consumer takes over its side too:
 * the last chunk, and reclaiming what was released (so bytes_buffered falls to what the
 * consumer still holds).
 */
static int ending(fw_stream_t *s)
{
    /* acquire: pairs with the producer's release store; err, last_chunk, every chunk and the
     * producer's pipe state are visible. */
    int f = atomic_load_explicit(&s->final, memory_order_acquire);
    if (f == FW__FINAL_NONE)
        return FW_AGAIN;
    if (s->last_chunk != NULL && s->pipe.cur == NULL && fw__ring_size(&s->pipe.full) == 0) {
        s->pipe.cur = s->last_chunk;
        s->last_chunk = NULL;
    }
    fw__pipe_reclaim(&s->pipe);
    fw__stream_lm_merge_chunks(s);
    fw__stream_lm_sync(s, false); /* the rows yielded since the producer's last sync */
    return f == FW__FINAL_COMPLETED ? FW_END : (s->err.code != 0 ? s->err.code : FW_ECLOSED);
}

static int cancelled_end(fw_stream_t *s);

/* After fw_stream_cancel: no row is delivered, whatever the producer pushed meanwhile. */
static int poll_cancelled(fw_stream_t *s)
{
    if (atomic_load_explicit(&s->final, memory_order_acquire) == FW__FINAL_NONE) {
        fw__pipe_drain(&s->pipe);
        after_release(s);
        return FW_AGAIN;
    }
    (void)cancelled_end(s);
    return s->sticky;
}

/* The consumer's slow path, out of line so the row path stays small enough to inline: a
 * cancelled stream, or a parallel stream's poll of its parts (parallel.c). */
__attribute__((noinline, cold)) static int poll_slow(fw_stream_t *s, fw_row_t *row,
                                                     fw_chunk_t **chunk)
{
    return (s->slow & FW__SLOW_PAR) ? fw__par_poll(s, row, chunk) : poll_cancelled(s);
}

static int poll_row(fw_stream_t *s, fw_row_t *row)
{
    if (s->sticky <= 0)
        return s->sticky;
    if (s->slow) {
        /* A parallel stream, inside a part's chunk: the row without the slow path's calls
         * (callgrind, bench_100k threaded, 2 parts: 59 instructions a row more than one
         * stream before this, 8 with it). */
        if (s->slow == FW__SLOW_PAR && s->par_fast != NULL && s->par_fast->slow == 0 &&
            fw__pipe_next_in_chunk(&s->par_fast->pipe, row))
            return FW_ROW;
        return poll_slow(s, row, NULL);
    }
    if (fw__pipe_next_in_chunk(&s->pipe, row))
        return FW_ROW; /* inline: no chunk taken or released, nothing for after_release */
    bool got = fw__pipe_next(&s->pipe, row);
    after_release(s);
    if (got)
        return FW_ROW;
    int e = ending(s);
    if (e == FW_AGAIN)
        return atomic_load_explicit(&s->want_pause, memory_order_relaxed) ? FW_PAUSED : FW_AGAIN;
    /* The end was published after the last push: look once more. */
    if (fw__pipe_next(&s->pipe, row)) {
        after_release(s);
        return FW_ROW;
    }
    after_release(s);
    s->sticky = e;
    return e;
}

static int poll_chunk(fw_stream_t *s, fw_chunk_t **chunk)
{
    if (s->sticky <= 0)
        return s->sticky;
    if (s->slow)
        return poll_slow(s, NULL, chunk);
    fw__chunk_t *c = fw__pipe_take(&s->pipe);
    after_release(s);
    if (c == NULL) {
        int e = ending(s);
        if (e == FW_AGAIN)
            return atomic_load_explicit(&s->want_pause, memory_order_relaxed) ? FW_PAUSED
                                                                              : FW_AGAIN;
        c = fw__pipe_take(&s->pipe);
        if (c == NULL) {
            s->sticky = e;
            return e;
        }
    }
    *chunk = c;
    return FW_ROW;
}

static void deadline_after(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Waits for `poll` to give something other than FW_AGAIN, up to timeout_ms (-1: forever). */
static int wait_for(fw_stream_t *s, int timeout_ms, int (*poll)(fw_stream_t *, void *), void *arg)
{
    int r = poll(s, arg);
    if (r != FW_AGAIN || timeout_ms == 0) {
        if (r == FW_AGAIN)
            fw__stream_soft_nudge(s);
        return r; /* FW_PAUSED too: a paused stream never makes the consumer wait */
    }
    for (int i = 0; i < SPIN_POLLS; i++) {
        cpu_relax();
        if ((r = poll(s, arg)) != FW_AGAIN)
            return r;
    }
    struct timespec deadline;
    if (timeout_ms > 0)
        deadline_after(&deadline, timeout_ms);
    for (;;) {
        /* Announced with a seq_cst fence before the look, paired with the producer's after
         * its push (fw__park_wake): it sees the announcement, or this look sees its rows. */
        fw__park_announce(&s->park);
        if ((r = poll(s, arg)) != FW_AGAIN)
            break;
        fw__stream_soft_nudge(s);
        if (!fw__park_wait(&s->park, timeout_ms > 0 ? &deadline : NULL)) {
            r = poll(s, arg);
            break;
        }
    }
    fw__park_leave(&s->park);
    return r;
}

int fw__stream_poll_row(fw_stream_t *s, fw_row_t *row)
{
    return poll_row(s, row);
}

static int poll_row_v(fw_stream_t *s, void *arg)
{
    return poll_row(s, arg);
}

static int poll_chunk_v(fw_stream_t *s, void *arg)
{
    return poll_chunk(s, arg);
}

int fw_stream_next(fw_stream_t *s, fw_row_t *row, int timeout_ms)
{
    if (s == NULL || row == NULL)
        return FW_EINVAL;
    if (!s->threaded && timeout_ms != 0)
        return FW_ESTATE;
    return wait_for(s, timeout_ms, poll_row_v, row);
}

int fw_stream_try_next(fw_stream_t *s, fw_row_t *row)
{
    if (s == NULL || row == NULL)
        return FW_EINVAL;
    return poll_row(s, row);
}

int fw_stream_next_chunk(fw_stream_t *s, fw_chunk_t **chunk, int timeout_ms)
{
    if (s == NULL || chunk == NULL)
        return FW_EINVAL;
    *chunk = NULL;
    if (!s->threaded && timeout_ms != 0)
        return FW_ESTATE;
    return wait_for(s, timeout_ms, poll_chunk_v, chunk);
}

const fw_row_t *fw_chunk_rows(const fw_chunk_t *chunk, size_t *n)
{
    if (chunk == NULL) {
        if (n != NULL)
            *n = 0;
        return NULL;
    }
    if (n != NULL)
        *n = chunk->n - chunk->first;
    return chunk->rows + chunk->first;
}

void fw_chunk_release(fw_stream_t *s, fw_chunk_t *chunk)
{
    if (s == NULL || chunk == NULL)
        return;
    if (s->par != NULL) {
        fw__par_chunk_release(s, chunk);
        return;
    }
    fw__pipe_release(&s->pipe, chunk);
    after_release(s);
    if (atomic_load_explicit(&s->final, memory_order_acquire) != FW__FINAL_NONE)
        fw__pipe_reclaim(&s->pipe); /* the producer is gone: see ending() */
}

const fw_error_t *fw_stream_error(const fw_stream_t *s)
{
    static const fw_error_t none;
    if (s == NULL)
        return &none;
    /* The consumer reads err only after it saw `final` (acquire) in ending(). */
    return s->sticky < 0 ? &s->err : &none;
}

void fw_stream_stats(const fw_stream_t *s, fw_stream_stats_t *out)
{
    if (out == NULL)
        return;
    memset(out, 0, sizeof(*out));
    if (s == NULL)
        return;
    if (s->par != NULL) {
        fw__par_stats(s, out);
        return;
    }
    fw__pipe_stats_t p;
    fw__pipe_stats(&s->pipe, &p);
    out->rows_buffered = p.rows_buffered;
    out->chunks_buffered = p.chunks_buffered;
    out->bytes_buffered = p.bytes_held;
    out->rows_yielded = p.rows_yielded;
    out->rows_filtered = p.rows_filtered;
    out->bytes_received = p.bytes_received;
    out->chunks_delivered = p.chunks_taken;
    out->read_stops = p.read_stops;
    out->chunk_size = p.chunk_rows;
    out->max_memory = s->pipe.o.max_memory;
    out->pauses = atomic_load_explicit(&s->st_pauses, memory_order_relaxed);
    out->pause_timeouts = atomic_load_explicit(&s->st_pause_timeouts, memory_order_relaxed);
    out->chunk_grows = atomic_load_explicit(&s->st_chunk_grows, memory_order_relaxed);
    out->chunk_shrinks = atomic_load_explicit(&s->st_chunk_shrinks, memory_order_relaxed);
    out->read_wakeups = atomic_load_explicit(&s->st_read_wakeups, memory_order_relaxed);
    out->read_ticks = atomic_load_explicit(&s->st_read_ticks, memory_order_relaxed);
    int f = atomic_load_explicit(&s->final, memory_order_relaxed);
    out->state = f == FW__FINAL_COMPLETED                                      ? FW_STREAM_COMPLETED
                 : f == FW__FINAL_FAILED                                       ? FW_STREAM_FAILED
                 : f == FW__FINAL_CANCELLED                                    ? FW_STREAM_CANCELLED
                 : atomic_load_explicit(&s->want_cancel, memory_order_relaxed) ? FW_STREAM_CANCELLED
                 : atomic_load_explicit(&s->want_pause, memory_order_relaxed)  ? FW_STREAM_PAUSED
                                                                               : FW_STREAM_RUNNING;
}

int fw_stream_pause(fw_stream_t *s)
{
    if (s == NULL)
        return FW_EINVAL;
    if (s->par != NULL)
        return fw__par_pause(s, true);
    if (atomic_load_explicit(&s->final, memory_order_acquire) != FW__FINAL_NONE ||
        atomic_load_explicit(&s->want_cancel, memory_order_relaxed))
        return FW_ESTATE;
    if (!atomic_exchange_explicit(&s->want_pause, true, memory_order_relaxed))
        wake_producer(s);
    return 0;
}

int fw_stream_resume(fw_stream_t *s)
{
    if (s == NULL)
        return FW_EINVAL;
    if (s->par != NULL)
        return fw__par_pause(s, false);
    if (atomic_load_explicit(&s->final, memory_order_acquire) != FW__FINAL_NONE)
        return FW_ESTATE;
    if (atomic_exchange_explicit(&s->want_pause, false, memory_order_relaxed))
        wake_producer(s);
    return 0;
}

static int poll_end(fw_stream_t *s, void *arg)
{
    (void)arg;
    int f = atomic_load_explicit(&s->final, memory_order_acquire);
    return f == FW__FINAL_NONE ? FW_AGAIN : 0;
}

/*
 * After a cancel, whoever won the race with the server's end, the consumer sees the same
 * thing: no more rows, then FW_ECANCELED (or the failure that ended the stream first, which
 * stays the reported one). Called once `final` is set: the pipe and err are the consumer's.
 */
static int cancelled_end(fw_stream_t *s)
{
    fw__pipe_drain(&s->pipe);
    if (s->last_chunk != NULL) {
        s->pipe.cur = s->last_chunk;
        s->last_chunk = NULL;
        fw__pipe_drain(&s->pipe);
    }
    fw__pipe_reclaim(&s->pipe);
    int f = atomic_load_explicit(&s->final, memory_order_acquire);
    if (s->sticky > 0) {
        if (f == FW__FINAL_COMPLETED || f == FW__FINAL_CANCELLED) {
            memset(&s->err, 0, sizeof(s->err));
            s->err.code = FW_ECANCELED;
            s->err.phase = FW_PHASE_READY;
            snprintf(s->err.message, sizeof(s->err.message), "the query was cancelled");
        }
        s->sticky = s->err.code != 0 ? s->err.code : FW_ECANCELED;
    }
    return f == FW__FINAL_FAILED && s->err.code == FW_ETIMEDOUT ? FW_ETIMEDOUT : 0;
}

bool fw__stream_cancel_request(fw_stream_t *s)
{
    s->slow |= FW__SLOW_CANCEL;
    if (atomic_load_explicit(&s->final, memory_order_acquire) != FW__FINAL_NONE)
        return false; /* the reply is over: nothing to send, rows still dropped */
    /* Queued rows are dropped now; the producer drops what still comes. */
    fw__pipe_drain(&s->pipe);
    if (!atomic_exchange_explicit(&s->want_cancel, true, memory_order_relaxed))
        wake_producer(s);
    after_release(s);
    return true;
}

int fw__stream_cancel_end(fw_stream_t *s)
{
    return cancelled_end(s);
}

int fw__stream_wait(fw_stream_t *s, int timeout_ms, int (*poll)(fw_stream_t *, void *), void *arg)
{
    return wait_for(s, timeout_ms, poll, arg);
}

int fw_stream_cancel(fw_stream_t *s)
{
    if (s == NULL)
        return FW_EINVAL;
    if (s->par != NULL)
        return fw__par_cancel(s);
    if (!fw__stream_cancel_request(s))
        return cancelled_end(s);
    if (!s->threaded)
        return 0;                          /* embedded: the rows-ready callback tells the end */
    (void)wait_for(s, -1, poll_end, NULL); /* bounded by the cancel timeout */
    return cancelled_end(s);
}

void fw_stream_free(fw_stream_t *s)
{
    if (s == NULL)
        return;
    fw_pool_t *pool = s->release_to; /* fw_pool_stream_start: read before s may go */
    fw_conn_t *pooled = s->release_conn;
    if (s->par != NULL) {
        /* A parallel stream's parts run on connections of its own: the pooled connection
         * it was started on ran nothing and goes back as it is. */
        fw__par_free(s);
        if (pool != NULL)
            fw_pool_release(pool, pooled);
        return;
    }
    fw__pipe_drain(&s->pipe);
    if (atomic_load_explicit(&s->final, memory_order_acquire) == FW__FINAL_NONE) {
        /* The query still runs: the producer cancels it (and reads the rest of the reply). */
        atomic_store_explicit(&s->abandoned, true, memory_order_relaxed);
        atomic_store_explicit(&s->want_cancel, true, memory_order_relaxed);
        wake_producer(s);
    } else {
        after_release(s);
    }
    fw__stream_unref(s);
    /* the pool waits for the cancel and drain above to end (fw_conn_when_idle) */
    if (pool != NULL)
        fw_pool_release(pool, pooled);
}

void fw__stream_release_to(fw_stream_t *s, fw_pool_t *pool, fw_conn_t *conn)
{
    s->release_to = pool;
    s->release_conn = conn;
}
