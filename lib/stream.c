/* SPDX-License-Identifier: MIT */
/*
 * The producer side of a stream, on the loop thread (docs/architecture.md, "The data path"):
 *
 *   socket (or OpenSSL) --recv--> receive slab --reply machine (reply.h)--> DataRow (ptr, len)
 *     --predicate--> open chunk --flush (full, or the end of every read)--> ring --> consumer
 *
 * This file reads, hands the bytes to the reply machine, acts on its events, applies
 * backpressure and ends the stream; the consumer is woken by stream_wake.c, metrics are
 * recorded by stream_lm.c, slabs are managed by stream/pipe.c.
 *
 * Nothing is copied except the tail of a message that straddles the end of a slab. When the
 * ring is full, no chunk is free or the byte budget is reached, socket reading stops (the
 * kernel's buffers fill and the server waits in send) until the consumer has released half of
 * what it holds; then the bytes already in the slab and inside OpenSSL are handled first, with
 * no socket event needed.
 */
#include "alloc.h"
#include "cancel.h"
#include "stream_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Reads per socket event, so one busy stream cannot starve other handles on the loop. The
 * poll is level-triggered: unread bytes bring us back at once. */
#define MAX_READS 32
/*
 * The loop's turn (issue 15: 1,000 streams on one loop, the timers' lag under 20 ms). Every
 * ready socket of a turn is served before the loop runs its timers again, so many busy streams
 * on one loop add up: 100 ready sockets that each read until EAGAIN (in embedded mode running
 * the application's callback on every row) held the loop for 30-100 ms. A stream reads only
 * while its turn is younger than TURN_MS: the time since the loop last polled (uv_now, updated
 * when epoll_wait returns and when a loop iteration starts) against the monotonic clock, one
 * vDSO call per read. Past it the stream leaves the rest for the next turn: the poll is
 * level-triggered, so a readable socket comes back by itself (a coalescing one through its
 * wake); the timers run in between. A stream that has given way TURN_FORCE times in a row reads
 * once anyway, whatever the turn's age: epoll reports ready sockets in a stable order, and the last
 * ones must not wait for ever behind the first.
 */
#define TURN_MS    2
#define TURN_FORCE 4
enum { PUMP_NEED, PUMP_STALL, PUMP_OVER };

static void adapt_chunk_size(fw_stream_t *s, bool stalled);
static void on_readable(fw__chan_t *ch);

/* ---- ending ---------------------------------------------------------------------------- */

void fw__stream_unref(fw_stream_t *s)
{
    /* acq_rel: the last owner must see every write the other owner made before dropping. */
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (s->lm.e != NULL) {
        fw__stream_lm_merge_chunks(s);
        fw__hist_merge(s->lm.e->occupancy, &s->lm.occupancy);
        fw__stream_lm_sync(s, true);
    }
    if (s->par != NULL)
        fw__par_destroy(s->par);
    fw__pipe_free(&s->pipe);
    if (s->wake_to != s && s->wake_to != NULL)
        fw__stream_unref(s->wake_to);
    fw__park_destroy(&s->park);
    pthread_mutex_destroy(&s->wake_mu);
    fw__aligned_free(&fw__alloc, s);
}

/* The producer's reference goes when its four handles (wake, nudge, ctl, coal) have closed. */
static void on_handle_closed(uv_handle_t *h)
{
    fw_stream_t *s = h->data;
    if (--s->open_handles == 0)
        fw__stream_unref(s);
}

static void on_coal_closed(fw__ftimer_t *t)
{
    fw_stream_t *s = t->data;
    if (--s->open_handles == 0)
        fw__stream_unref(s);
}

/* A failure of ours the reply machine recorded (a result of the wrong shape, a row over a
 * limit): counted, and the query cancelled. */
static void failed(fw_stream_t *s)
{
    if (s->err.code == FW_ETOOBIG && s->lm.e != NULL)
        fw__metric_inc(s->lm.e->mem_limit);
    /* RELIABILITY decision 4: a failure of ours while the server still sends cancels the
     * query, so the rest of a large result is not produced only to be dropped; the reply is
     * then drained as usual. */
    if (s->conn != NULL && s->reply.phase != FW__RP_DONE)
        fw__stream_start_cancel(s, s->err.code, s->err.message);
}

/* Records a failure of the stream itself (the first one wins) and drops the rows still to
 * come. */
static void fail(fw_stream_t *s, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(fw_stream_t *s, int code, const char *fmt, ...)
{
    s->reply.discard = true;
    if (s->err.code != 0)
        return;
    s->err.code = code;
    s->err.phase = FW_PHASE_READY;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err.message, sizeof(s->err.message), fmt, ap);
    va_end(ap);
}

/*
 * The end of the stream: publish it, close the producer's handles (their close callbacks drop
 * the producer's reference), tell the consumer. After a cancel it runs only once the cancel
 * connection has ended too (stream_ctl.c, on_cancel_done).
 */
void fw__stream_finish(fw_stream_t *s)
{
    if (s->cconn != NULL) {
        if (s->cconn->cancel_stream == s)
            s->cconn->cancel_stream = NULL;
        s->cconn = NULL;
    }
    uv_timer_stop(&s->ctl);
    int final = s->err.code == 0 ? FW__FINAL_COMPLETED : FW__FINAL_FAILED;
    if (s->cancelling && !s->cancel_timed_out &&
        (s->err.code == 0 || strcmp(s->err.sqlstate, "57014") == 0)) {
        /* Cancelled as asked (the server's "canceling statement due to user request", 57014,
         * is the expected answer, not a failure). */
        s->err.code = s->cancel_code;
        if (s->cancel_why[0] != '\0')
            snprintf(s->err.message, sizeof(s->err.message), "%s", s->cancel_why);
        final = s->cancel_code == FW_ECANCELED ? FW__FINAL_CANCELLED : FW__FINAL_FAILED;
    }
    fw__stream_lm_end(s, final);
    /* release: the consumer that sees `final` sees err, last_chunk, every chunk pushed before,
     * and the pipe as we leave it: from here on the pipe is the consumer's alone. */
    atomic_store_explicit(&s->final, final, memory_order_release);
    pthread_mutex_lock(&s->wake_mu);
    s->wake_alive = false;
    pthread_mutex_unlock(&s->wake_mu);
    uv_close((uv_handle_t *)&s->wake, on_handle_closed);
    uv_close((uv_handle_t *)&s->nudge, on_handle_closed);
    uv_close((uv_handle_t *)&s->ctl, on_handle_closed);
    fw__ftimer_close(&s->coal, on_coal_closed);
    fw__stream_notify(s, true);
}

/*
 * The query is over for the connection: give the connection back (the idle reader takes over,
 * with `rest`, the bytes received after ReadyForQuery), hand over the rows not yet queued, and
 * end the stream, or wait for the cancel connection first.
 */
static void detach(fw_stream_t *s, const uint8_t *rest, size_t rest_len)
{
    fw_conn_t *c = s->conn;
    s->conn = NULL;
    c->stream = NULL;
    s->stalled = false;
    s->paused = false;
    atomic_store_explicit(&s->stall_flag, false, memory_order_relaxed);
    s->reading = false;
    fw__stream_coal_leave(s);
    /* The idle reader takes over, with what came after ReadyForQuery and what OpenSSL holds:
     * before the consumer hears of the end, since its callback may start the next query,
     * whose bytes must not go to the idle reader. */
    fw__conn_resume_idle(c, rest, rest_len);
    if (s->rx.slab != NULL) {
        fw__pipe_slab_unref(&s->pipe, s->rx.slab);
        s->rx.slab = NULL;
    }
    /* Rows not yet handed over: through the ring if it has room, else (a failure while the
     * ring was full) as the last chunk the consumer takes once the ring is empty. */
    if (fw__pipe_flush(&s->pipe) != FW__PIPE_OK) {
        s->last_chunk = s->pipe.open;
        s->pipe.open = NULL;
    }
    if (s->cancel != NULL && !c->closing) {
        /* The reply is over but the cancel connection is not: no query may start on this
         * connection until the server has closed it (a late cancel would hit that query). */
        s->cconn = c;
        c->cancel_stream = s;
        return;
    }
    if (s->cancel != NULL) { /* the connection closes: the cancel still goes out */
        fw__cancel_detach(s->cancel);
        s->cancel = NULL;
    }
    fw__stream_finish(s);
    fw__conn_idle_check(c); /* fw_conn_when_idle */
}

void fw__stream_conn_gone(fw_stream_t *s, int code, const char *why)
{
    if (s->conn == NULL)
        return;
    if (s->err.code == 0)
        fail(s, code, "%s (after %llu row%s)", why, (unsigned long long)s->rows_total,
             s->rows_total == 1 ? "" : "s");
    s->conn->state = s->conn->closing ? s->conn->state : FW__CONN_BAD;
    detach(s, NULL, 0);
}

/* The connection is unusable: protocol violation, EOF, transport error. */
static void conn_failed(fw_stream_t *s, int code, const char *why)
{
    fw_conn_t *c = s->conn;
    c->state = FW__CONN_BAD;
    c->err.code = code;
    if (s->lm.e != NULL)
        fw__lm_protocol_error(code);
    fw__chan_read_stop(&c->chan);
    s->reading = false;
    fw__conn_log(c, FW_LOG_WARNING, "the connection failed during a query: %s", why);
    fw__stream_conn_gone(s, code, why);
}

/* ---- messages -------------------------------------------------------------------------- */

/* The reply machine's events that ask something of the stream or the connection. Returns 0,
 * or PUMP_OVER when a callback closed the connection. */
static int on_event(fw_stream_t *s, const fw__reply_event_t *ev)
{
    fw_conn_t *c = s->conn;
    switch (ev->kind) {
    case FW__RE_DESCRIBED:
        if (s->lm.e != NULL)
            fw__lm_seconds(s->lm.e->startup_seconds, uv_hrtime() - s->lm.t_start);
        break;
    case FW__RE_FAILED:
        failed(s);
        break;
    case FW__RE_SERVER_ERROR:
        if (ev->fatal)
            c->state = FW__CONN_BAD; /* the server closes next; EOF ends the stream */
        if (strcmp(s->err.sqlstate, "25006") == 0)
            fw__conn_saw_read_only(c); /* read-only SQL transaction: a pool retires it */
        break;
    case FW__RE_NOTICE:
        fw__conn_notice(c, &ev->msg);
        break;
    case FW__RE_NOTIFY:
        fw__conn_notification(c, &ev->msg);
        break;
    case FW__RE_PARAM:
        fw__conn_param(c, &ev->msg); /* a promotion says in_hot_standby=off */
        break;
    case FW__RE_NONE: /* ev->msg is not a ParameterStatus, or not parsed at all (has_msg) */
    case FW__RE_ROW:
    case FW__RE_READY:
        break;
    }
    return s->conn == NULL || s->conn->closing ? PUMP_OVER : 0;
}

/* The client-side predicate, on a copy of the row: `row` in parse never has its address taken,
 * so the compiler keeps it in registers from the reply machine to fw__pipe_add (one call per
 * row; a row in memory costs a store and a load per field). */
static bool keep(fw_stream_t *s, fw_row_t row)
{
    return s->pred(s->pred_ud, &row);
}

/*
 * Hands every complete message in the slab from pos to the reply machine and acts on what it
 * says. PUMP_NEED when the rest is an incomplete message (or nothing), PUMP_STALL when a row
 * could not be queued (pos stays on it), PUMP_OVER when the stream detached.
 */
static int parse(fw_stream_t *s)
{
    fw__slab_t *sl = s->rx.slab;
    if (sl == NULL)
        return PUMP_NEED;
    const uint8_t *d = sl->data;
    size_t used = sl->used;
    size_t pos = s->rx.pos;
    int out = PUMP_NEED;
    while (pos < used) {
        fw_row_t row;
        fw__reply_event_t ev;
        long n = fw__reply_row(&s->reply, d + pos, used - pos, &row);
        if (n == 0) {
            /* Anything but a plain row: the reply machine's slow path. */
            n = fw__reply_other(&s->reply, d + pos, used - pos, &ev);
            if (n == 0)
                break;
            if (n < 0) {
                s->rx.pos = pos;
                conn_failed(s, (int)n, s->reply.why != NULL ? s->reply.why : fw_strerror((int)n));
                return PUMP_OVER;
            }
            if (ev.kind != FW__RE_ROW)
                goto other;
            row = ev.row;
        }
        if (s->pred != NULL && !keep(s, row)) {
            fw__pipe_note_filtered(&s->pipe);
            s->rows_total++;
            pos += (size_t)n;
            continue;
        }
        int rc = fw__pipe_add(&s->pipe, sl, row.json, row.len, row.is_null);
        if (rc == FW__PIPE_FULL) {
            out = PUMP_STALL; /* the same bytes give the same row again */
            break;
        }
        if (rc < 0) {
            fail(s, FW_ENOMEM, "out of memory queueing a row");
        } else {
            s->pushed = true;
            s->rows_total++;
        }
        pos += (size_t)n;
        continue;
    other:
        if (ev.has_msg)
            fw__conn_trace_in(s->conn, &ev.msg);
        if (ev.kind == FW__RE_READY) {
            /* Everything before ReadyForQuery must reach the consumer before the end. */
            if (fw__pipe_flush(&s->pipe) == FW__PIPE_FULL) {
                out = PUMP_STALL;
                break;
            }
            pos += (size_t)n;
            s->rx.pos = pos;
            detach(s, d + pos, used - pos);
            return PUMP_OVER;
        }
        s->rx.pos = pos + (size_t)n;
        if (on_event(s, &ev) == PUMP_OVER)
            return PUMP_OVER;
        pos += (size_t)n;
    }
    s->rx.pos = pos;
    return out;
}

/* ---- receiving ------------------------------------------------------------------------- */

/*
 * One read into the slab: bytes > 0, UV_EAGAIN, UV_EOF or another error. With TLS, plaintext
 * OpenSSL already holds comes first (channel.c).
 */
static ssize_t receive(fw_stream_t *s)
{
    fw__slab_t *sl = s->rx.slab;
    size_t want = sl->cap - sl->used;
    size_t have = sl->used - s->rx.pos;
    if (have >= 5 && s->reply.skip == 0) {
        /* A message larger than a slab is being received into a slab of its own: this read
         * stops at its end plus the next message's header. The bytes after it would be the
         * start of the next row, which (a large row again, as a rule) does not fit the room
         * left and would be copied into a new slab; this way what moves is 5 bytes, for one
         * more recv() per large row instead of a copy of up to a slab. */
        size_t msg = (size_t)fw__be32(sl->data + s->rx.pos + 1) + 1;
        if (msg > s->pipe.o.slab_size && msg > have && msg - have + 5 < want)
            want = msg - have + 5;
    }
    /* The reply's first bytes are read in a small piece: its first rows reach the consumer
     * once FIRST_READ bytes are parsed, not the up to 64 KiB the server may have sent by the
     * time the loop reads (one more recv() per stream). */
    if (s->rx_total < FW__STREAM_FIRST_READ && want > FW__STREAM_FIRST_READ - s->rx_total)
        want = FW__STREAM_FIRST_READ - (size_t)s->rx_total;
    ssize_t n = fw__chan_read(&s->conn->chan, sl->data + sl->used, want);
    s->drained = s->conn->chan.drained;
    return n;
}

/* ---- backpressure ---------------------------------------------------------------------- */

/* Stops reading until the consumer has released enough; `soft`: the cause is the read-ahead
 * limit (fw__pipe_opts_t.soft_held), which gives way once the consumer has taken every queued
 * chunk (fw__stream_on_wake). */
static void stall(fw_stream_t *s, bool soft)
{
    fw_conn_t *c = s->conn;
    /* Before the consumer is woken: once it has taken what is queued, finding nothing more it
     * wakes us (fw__stream_soft_nudge); set after the wake, a consumer already past its look
     * would sleep until its timeout. */
    s->soft_stalled = soft;
    atomic_store_explicit(&s->soft_stall, soft, memory_order_seq_cst);
    if (s->threaded)
        fw__stream_notify(
            s, true); /* what is queued is what the consumer must drain for us to go on */
    (void)c;
    if (s->adaptive)
        adapt_chunk_size(s, true);
    if (!s->stalled) {
        s->stalled = true;
        fw__stream_set_reading(s);
        fw__pipe_note_read_stop(&s->pipe);
        if (s->lm.e != NULL) {
            fw__metric_inc(s->lm.e->read_stops);
            s->lm.t_stall = uv_hrtime();
            fw__stream_lm_sync(s, false);
        }
    }
    /* Hysteresis: wait until the consumer has released half of what it holds (at least one
     * chunk). Every stall has something outstanding: the budget, the ring and the chunks are
     * only ever exhausted by chunks handed over. */
    uint64_t out = fw__pipe_outstanding(&s->pipe);
    uint64_t at = s->pipe.reclaimed + (out + 1) / 2;
    atomic_store_explicit(&s->wake_at, at, memory_order_relaxed);
    /* seq_cst: pairs with the consumer's fence between its release and its load of stall_flag
     * (stream_api.c): either it sees the flag, or we see its releases below. */
    atomic_store_explicit(&s->stall_flag, true, memory_order_seq_cst);
    if (out == 0 || fw__pipe_released(&s->pipe) >= at)
        uv_async_send(&s->wake);
}

void fw__stream_set_reading(fw_stream_t *s)
{
    fw_conn_t *c = s->conn;
    bool usable = c != NULL && !s->paused && c->state == FW__CONN_READY && !c->closing &&
                  c->chan.open;
    bool want = usable && !s->stalled;
    if (s->coalescing && !usable)
        fw__stream_coal_leave(s); /* paused or closing while a stall kept it (below) */
    if (want == s->reading)
        return;
    if (s->coalescing) {
        /* A stall, or its end, while coalescing: coalescing goes on across it. The socket is
         * not watched anyway (deferred), and the timer is disarmed until the stall ends (a
         * timerfd_settime each way, no epoll_ctl). Ending it cost an epoll_ctl at each end of the stall and
         * then COAL_WINDOW_MS of reads woken by every 8 KiB piece before it began again. */
        s->reading = want;
        if (want)
            fw__stream_coal_resume(s);
        else
            fw__stream_coal_hold(s);
        return;
    }
    fw__stream_coal_leave(s);
    s->reading = want;
    if (want)
        fw__chan_read_start(&c->chan, on_readable, s);
    else if (c != NULL)
        fw__chan_read_stop(&c->chan);
}

void fw__stream_unstall(fw_stream_t *s)
{
    atomic_store_explicit(&s->stall_flag, false, memory_order_relaxed);
    atomic_store_explicit(&s->soft_stall, false, memory_order_relaxed);
    s->soft_stalled = false;
    if (s->stalled) {
        s->stalled = false;
        if (s->lm.e != NULL && s->lm.t_stall != 0) {
            fw__lm_seconds(s->lm.e->read_stop_seconds, uv_hrtime() - s->lm.t_stall);
            s->lm.t_stall = 0;
        }
        fw__stream_set_reading(s);
    }
}

/*
 * The adaptive chunk size (stream/chunker.h): one observation of the ring's occupancy per read
 * that queued rows; the policy changes the size at most once per window.
 */
static void adapt_chunk_size(fw_stream_t *s, bool stalled)
{
    /* A consumer asleep waiting for rows keeps up, whatever is queued: threaded mode lets a
     * few chunks gather before it wakes one (fw__stream_notify), which would otherwise read as
     * a slow consumer. */
    bool waiting = s->threaded && fw__park_waiting(&s->wake_to->park);
    size_t queued = waiting ? 0 : fw__ring_size(&s->pipe.full);
    size_t cap = fw__ring_capacity(&s->pipe.full);
    /* A stall is the consumer at its slowest: it decides the window (chunker.h). */
    uint32_t size = stalled ? fw__chunker_stall(&s->chunker, cap)
                            : fw__chunker_observe(&s->chunker, queued, cap);
    if (size == s->pipe.o.chunk_rows)
        return;
    if (s->lm.e != NULL) {
        fw__metric_inc(size > s->pipe.o.chunk_rows ? s->lm.e->adjust_up : s->lm.e->adjust_down);
        fw__metric_gauge_set(s->lm.e->chunk_size, (int64_t)size);
    }
    fw__pipe_set_chunk_rows(&s->pipe, size);
    atomic_store_explicit(&s->st_chunk_grows, s->chunker.grows, memory_order_relaxed);
    atomic_store_explicit(&s->st_chunk_shrinks, s->chunker.shrinks, memory_order_relaxed);
}

/* The loop's turn is TURN_MS old: give way (see TURN_MS), unless this stream has given way
 * TURN_FORCE times in a row already. */
static bool turn_over(fw_stream_t *s)
{
    uint64_t now_ms = uv_hrtime() / 1000000;
    uint64_t t0 = uv_now(s->conn->loop);
    if (now_ms < t0 + TURN_MS || s->turn_skips >= TURN_FORCE) {
        s->turn_skips = 0;
        return false;
    }
    s->turn_skips++;
    return true;
}

/*
 * Parses what is there, then reads, parses and hands over, read by read, until the socket has
 * nothing more, the stream stalls, the loop's turn is over, or the reply ends.
 */
void fw__stream_pump(fw_stream_t *s)
{
    if (s->in_pump || s->paused || s->conn == NULL)
        return; /* in_pump: a callback of ours started this again; the outer pump continues */
    s->in_pump = true;
    s->turn_wake = false;
    bool coal = false; /* left at an empty socket, still coalescing */
    for (int reads = 0;; reads++) {
        uint64_t t0 = 0;
        if (s->lm.e != NULL) {
            /* The stamp of the chunks this read fills: every 8th read (fw__stream_lm_chunk). */
            bool sampled = (s->lm.reads++ & 7) == 0;
            if (sampled || s->pred != NULL)
                t0 = uv_hrtime();
            s->pipe.now = sampled ? t0 : 0;
        }
        uint64_t rows_before = s->rows_total;
        int r = parse(s);
        if (s->pred != NULL && s->lm.e != NULL)
            fw__lm_seconds(s->lm.e->filter_seconds, uv_hrtime() - t0);
        if (s->adaptive && s->rows_total > rows_before) {
            /* Rows one read brings, smoothed: the adaptive size never shrinks below twice that,
             * so that a typical read still fits one chunk (a smaller chunk cannot hand rows
             * over sooner: every read ends its chunk; it only adds hand-overs). */
            uint64_t n = s->rows_total - rows_before;
            s->read_rows = s->read_rows == 0 ? n : (s->read_rows * 7 + n) / 8;
            uint64_t hint = 2 * s->read_rows;
            uint32_t rows = hint > UINT32_MAX ? UINT32_MAX : (uint32_t)hint;
            fw__chunker_hint_batch(&s->chunker, rows);
            /* ...and every read hands its chunk over: new chunks are made for a read's rows,
             * not for the adaptive size (over TLS ~30 rows a read against a size of several
             * hundred; 64 chunks in flight were 150 KB of arrays, massif). */
            fw__pipe_hint_fill(&s->pipe, rows);
        }
        if (r == PUMP_OVER)
            break;
        if (s->pushed) {
            if (r != PUMP_STALL && fw__pipe_flush(&s->pipe) == FW__PIPE_FULL)
                r = PUMP_STALL;
            if (s->lm.e != NULL)
                fw__stream_lm_after_push(s);
            if (s->adaptive)
                adapt_chunk_size(s, false);
            fw__stream_notify(s, r == PUMP_STALL);
            if (s->conn == NULL || s->conn->closing)
                break;
            fw__stream_control(s); /* the rows-ready callback may have paused or cancelled */
            if (s->paused || s->conn == NULL)
                break;
        }
        if (atomic_load_explicit(&s->abandoned, memory_order_relaxed) && !s->reply.discard) {
            s->reply.discard = true; /* the consumer left: read the rest of the reply and drop it */
            s->pipe.o.soft_held = 0;  /* ...within the budget alone */
            fw__pipe_reclaim(&s->pipe);
        }
        if (r == PUMP_STALL) {
            stall(s, false); /* the queue of chunks is full */
            break;
        }
        if (s->drained) {
            /* The last read emptied the socket: back to the loop, which polls it again
             * (level-triggered) instead of a recv() that would say EAGAIN, or reads it on
             * the coalescing timer. */
            s->drained = false;
            coal = fw__stream_coalesce_next(s);
            break;
        }
        if (reads >= MAX_READS || turn_over(s)) {
            /* Back at the next turn: a watched socket's level-triggered poll brings us; a
             * coalescing stream's socket is not watched, and plaintext inside OpenSSL raises
             * no socket event: the wake brings those (at once: not after a coalescing
             * interval, which would idle a stream whose consumer is the slow part). */
            if (s->coalescing || fw__chan_has_buffered(&s->conn->chan)) {
                s->turn_wake = true;
                uv_async_send(&s->wake);
            }
            break;
        }
        int rc = fw__pipe_make_room(&s->pipe, &s->rx, s->reply.skip > 0);
        if (rc == FW__PIPE_FULL) {
            stall(s, s->pipe.soft_hit); /* the budget, or the read-ahead limit */
            break;
        }
        if (rc < 0) {
            conn_failed(s, FW_ENOMEM, "out of memory for a receive buffer");
            break;
        }
        ssize_t n = receive(s);
        if (n == UV_EAGAIN) {
            fw__stream_unstall(s);
            if (s->conn != NULL && s->reading)
                coal = fw__stream_coalesce_next(s);
            break;
        }
        if (n < 0) {
            const char *why = n == UV_EOF    ? "server closed the connection unexpectedly"
                              : n == FW_ETLS ? fw__chan_tls_error(&s->conn->chan)
                                             : fw_strerror((int)n);
            /* A FATAL ErrorResponse before the end is the reason worth reporting. */
            conn_failed(s, n == UV_EOF ? FW_ECLOSED : (int)n, why);
            break;
        }
        s->rx.slab->used += (size_t)n;
        if (s->rx_total == 0 && s->t_sent != 0)
            s->conn->reply_ns = uv_hrtime() - s->t_sent;
        s->rx_total += (uint64_t)n;
        s->cycle_bytes += (uint64_t)n;
        s->win_bytes += (uint64_t)n;
        fw__pipe_note_received(&s->pipe, (size_t)n);
        s->last_rx = uv_now(s->conn->loop);
    }
    /* Left for another reason than an empty socket (the read limit, the end; a stall keeps
     * it, fw__stream_set_reading):
     * whatever comes next must not wait for a timer nobody armed. */
    if (s->coalescing && !coal && !s->turn_wake && !s->stalled)
        fw__stream_coal_leave(s);
    s->in_pump = false;
}

/* A counter the loop thread alone writes, for fw_stream_stats on any thread. */
void fw__stream_count(_Atomic uint64_t *c)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

static void on_readable(fw__chan_t *ch)
{
    fw_stream_t *s = ch->reader;
    fw__stream_count(&s->st_read_wakeups);
    fw__stream_pump(s);
}

void fw__stream_on_wake(uv_async_t *h)
{
    fw_stream_t *s = h->data;
    if (s->conn == NULL)
        return;
    fw__stream_control(s);
    if (s->conn == NULL)
        return;
    fw__pipe_reclaim(&s->pipe);
    if (s->stalled || atomic_load_explicit(&s->stall_flag, memory_order_relaxed)) {
        uint64_t at = atomic_load_explicit(&s->wake_at, memory_order_relaxed);
        bool abandoned = atomic_load_explicit(&s->abandoned, memory_order_relaxed);
        /* At the read-ahead limit with every chunk taken: the consumer holds them, it is not
         * behind (soft_nudge in stream_api.c woke us); the limit no longer applies. */
        bool taken = s->soft_stalled && fw__ring_size(&s->pipe.full) == 0;
        if (!abandoned && !taken && fw__pipe_released(&s->pipe) < at &&
            fw__pipe_outstanding(&s->pipe) > 0)
            return; /* woken early (a release raced the threshold): keep waiting */
        fw__stream_unstall(s);
    }
    fw__stream_pump(s);
}

/* ---- starting -------------------------------------------------------------------------- */

int fw__stream_begin(fw_stream_t *s, fw_conn_t *c, int npre, bool simple)
{
    s->conn = c;
    s->rx.scratch = c->plain;
    s->rx.scratch_cap = FW__CONN_BUF;
    size_t max_message =
        c->opts.max_message != 0 ? c->opts.max_message : FW__PQ_DEFAULT_MAX_MESSAGE;
    fw__reply_init(&s->reply, npre, simple, s->explain, max_message, s->pipe.o.max_memory,
                   &s->err);
    int rc = uv_async_init(c->loop, &s->wake, fw__stream_on_wake);
    if (rc < 0)
        return rc;
    s->wake.data = s;
    uv_timer_init(c->loop, &s->nudge); /* cannot fail */
    s->nudge.data = s;
    uv_timer_init(c->loop, &s->ctl);
    s->ctl.data = s;
    fw__ftimer_init(c->loop, &s->coal); /* cannot fail */
    s->coal.data = s;
    s->coalescing = false;
    fw__stream_coal_init(s);
    s->rx_total = s->cycle_bytes = s->win_bytes = s->win_wakes = 0;
    s->win_t = uv_hrtime();
    s->open_handles = 4;
    s->reading = true; /* the connection reads while idle: the stream inherits that */
    s->last_rx = uv_now(c->loop);
    s->wake_alive = true;
    /* Bytes the idle reader holds (the start of an asynchronous message) come first. */
    s->rx.parked = fw__conn_take_idle_bytes(c, s->rx.scratch, s->rx.scratch_cap);
    c->stream = s;
    c->hooks = &fw__stream_conn_hooks;
    fw__chan_read_start(&c->chan, on_readable, s);
    return 0;
}
