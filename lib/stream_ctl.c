/* SPDX-License-Identifier: MIT */
/*
 * Stream control on the loop thread (DESIGN.md "Backpressure, pause, cancel"): the consumer's
 * pause, resume and cancel requests arrive as atomics plus a wake, and are applied here; one
 * timer serves the idle timeout (while reading), the pause timeout (while paused) and the
 * cancel timeout (while cancelling), which never overlap.
 */
#include "alloc.h"
#include "cancel.h"
#include "stream_int.h"

#include <stdio.h>
#include <string.h>

static void on_ctl(uv_timer_t *t);

static void ctl_arm(fw_stream_t *s, fw__ctl_mode_t mode, uint64_t ms)
{
    s->ctl_mode = mode;
    uv_timer_start(&s->ctl, on_ctl, ms, 0);
}

static void ctl_stop(fw_stream_t *s)
{
    s->ctl_mode = CTL_NONE;
    uv_timer_stop(&s->ctl);
}

/* The idle timer runs while the stream reads (not paused, not cancelling). */
static void idle_arm(fw_stream_t *s)
{
    if (s->idle_timeout_ms > 0 && !s->paused && !s->cancelling) {
        s->last_rx = uv_now(s->conn->loop);
        ctl_arm(s, CTL_IDLE, s->idle_timeout_ms);
    }
}

void fw__stream_ctl_begin(fw_stream_t *s)
{
    idle_arm(s);
}

static void on_cancel_done(fw__cancel_t *k, int status, const char *why, void *ud)
{
    (void)k;
    fw_stream_t *s = ud;
    s->cancel = NULL;
    fw_conn_t *c = s->conn != NULL ? s->conn : s->cconn;
    if (status < 0 && c != NULL)
        fw__conn_log(c, FW_LOG_WARNING, "the cancel request failed: %s", why ? why : "");
    if (s->conn == NULL) { /* the reply had already ended: this was all we waited for */
        fw_conn_t *cc = s->cconn;
        fw__stream_finish(s);
        if (cc != NULL)
            fw__conn_idle_check(cc); /* the connection may take the next query now */
    }
}

/* A pause ended (resumed, or cancelled while paused): its duration. */
static void lm_pause_over(fw_stream_t *s)
{
    if (s->lm.e != NULL && s->lm.t_pause != 0) {
        fw__lm_seconds(s->lm.e->pause_seconds, uv_hrtime() - s->lm.t_pause);
        s->lm.t_pause = 0;
    }
}

void fw__stream_start_cancel(fw_stream_t *s, int code, const char *why)
{
    fw_conn_t *c = s->conn;
    if (s->cancelling || c == NULL)
        return;
    s->cancelling = true;
    s->reply.discard = true; /* rows still coming are dropped unread */
    s->cancel_code = code;
    s->lm.t_cancel = uv_hrtime();
    snprintf(s->cancel_why, sizeof(s->cancel_why), "%s", why);
    if (s->paused) { /* decision 8: a paused stream resumes reading to reach the end */
        s->paused = false;
        lm_pause_over(s);
    }
    /* Nothing is queued any more: never wait for the consumer, and the rows still coming are
     * dropped within the budget alone (the read-ahead limit would wait for a consumer that
     * may hold its chunks, or be paused, until the cancel times out). */
    s->pipe.o.soft_held = 0;
    fw__stream_unstall(s);
    fw__cancel_target_t target;
    fw__tls_config_t tls;
    fw__conn_cancel_target(c, &target, &tls);
    int rc = fw__cancel_start(&target, s->cancel_timeout_ms, on_cancel_done, s, &s->cancel);
    if (rc < 0) {
        s->cancel = NULL;
        fw__conn_log(c, FW_LOG_WARNING,
                     "could not send a cancel request (%s); reading the rest "
                     "of the reply instead",
                     fw_strerror(rc));
    }
    ctl_arm(s, CTL_CANCEL, s->cancel_timeout_ms);
    fw__stream_set_reading(s);
    /* From the loop, not from inside whatever called us (a callback, the pump itself). */
    uv_async_send(&s->wake);
}

/* The cancel did not finish in time: give up on the connection, and say so. */
static void cancel_timed_out(fw_stream_t *s)
{
    s->cancel_timed_out = true;
    if (s->cancel != NULL) {
        fw__cancel_abort(s->cancel);
        s->cancel = NULL;
    }
    char msg[256];
    snprintf(msg, sizeof(msg),
             "the cancel did not complete within %u ms; the connection was closed",
             (unsigned)s->cancel_timeout_ms);
    memset(&s->err, 0, sizeof(s->err));
    s->err.code = FW_ETIMEDOUT;
    s->err.phase = FW_PHASE_READY;
    snprintf(s->err.message, sizeof(s->err.message), "%s", msg);
    if (s->conn != NULL) {
        fw_conn_t *c = s->conn;
        fw__conn_log(c, FW_LOG_WARNING, "%s", msg);
        fw__stream_conn_gone(s, FW_ETIMEDOUT, msg);
        fw__conn_abort(c);
    } else {
        /* The reply ended but the server never closed the cancel connection: a late cancel
         * could still hit the next query, so the connection cannot be trusted with one. */
        fw_conn_t *c = s->cconn;
        fw__stream_finish(s);
        if (c != NULL) {
            fw__conn_log(c, FW_LOG_WARNING, "%s", msg);
            fw__conn_abort(c);
            fw__conn_idle_check(c); /* a waiting fw_conn_when_idle hears FW_ESTATE */
        }
    }
}

static void on_ctl(uv_timer_t *t)
{
    fw_stream_t *s = t->data;
    fw__ctl_mode_t mode = s->ctl_mode;
    s->ctl_mode = CTL_NONE;
    switch (mode) {
    case CTL_CANCEL:
        cancel_timed_out(s);
        return;
    case CTL_PAUSE:
        if (s->conn == NULL || !s->paused)
            return;
        atomic_fetch_add_explicit(&s->st_pause_timeouts, 1, memory_order_relaxed);
        if (s->lm.e != NULL)
            fw__metric_inc(s->lm.e->pause_timeouts);
        fw__conn_log(s->conn, FW_LOG_WARNING, "a pause ran past %u ms: %s",
                     (unsigned)s->pause_timeout_ms,
                     s->pause_action == FW_PAUSE_CANCEL ? "cancelling" : "resuming");
        if (s->pause_action == FW_PAUSE_CANCEL) {
            fw__stream_start_cancel(s, FW_ETIMEDOUT, "the stream was paused for too long");
        } else {
            atomic_store_explicit(&s->want_pause, false, memory_order_relaxed);
            fw__stream_control(s);
        }
        return;
    case CTL_IDLE: {
        if (s->conn == NULL || s->cancelling || s->paused)
            return;
        uint64_t now = uv_now(s->conn->loop);
        if (s->stalled) { /* the consumer holds us back: not the server's silence */
            idle_arm(s);
            return;
        }
        if (now - s->last_rx >= s->idle_timeout_ms) {
            char why[128];
            snprintf(why, sizeof(why), "no data from the server for %u ms",
                     (unsigned)s->idle_timeout_ms);
            fw__stream_start_cancel(s, FW_ETIMEDOUT, why);
        } else {
            ctl_arm(s, CTL_IDLE, s->idle_timeout_ms - (now - s->last_rx));
        }
        return;
    }
    case CTL_NONE:
        return;
    }
}

void fw__stream_control(fw_stream_t *s)
{
    if (s->conn == NULL)
        return;
    if (atomic_load_explicit(&s->want_cancel, memory_order_relaxed) ||
        (atomic_load_explicit(&s->abandoned, memory_order_relaxed) && !s->cancelling)) {
        fw__stream_start_cancel(s, FW_ECANCELED, "the query was cancelled");
        return;
    }
    if (s->cancelling)
        return;
    bool want = atomic_load_explicit(&s->want_pause, memory_order_relaxed);
    if (want && !s->paused) {
        s->paused = true;
        fw__stream_set_reading(s);
        atomic_fetch_add_explicit(&s->st_pauses, 1, memory_order_relaxed);
        if (s->lm.e != NULL) {
            fw__metric_inc(s->lm.e->paused);
            s->lm.t_pause = uv_hrtime();
        }
        ctl_stop(s);
        if (s->pause_timeout_ms > 0)
            ctl_arm(s, CTL_PAUSE, s->pause_timeout_ms);
    } else if (!want && s->paused) {
        s->paused = false;
        if (s->lm.e != NULL)
            fw__metric_inc(s->lm.e->resumed);
        lm_pause_over(s);
        s->signaled_rows = 0; /* the first rows after a resume wake the consumer at once */
        ctl_stop(s);
        idle_arm(s);
        fw__stream_set_reading(s);
        /* Bytes already in the slab or inside OpenSSL raise no socket event: handle them now
         * (RELIABILITY decision 8). */
        fw__stream_pump(s);
    }
}

/* ---- what the connection tells the stream (conn.h, fw__conn_hooks_t) ------------------- */

static void on_conn_failed(fw_stream_t *s, int code, const char *why)
{
    fw__stream_conn_gone(s, code, why);
}

static void on_conn_closing(fw_stream_t *s)
{
    /* A cancel the consumer asked for (fw_stream_cancel, fw_stream_free) but the loop has not
     * applied yet is sent now, before the connection goes. */
    fw__stream_control(s);
    if (s->conn != NULL)
        fw__stream_conn_gone(s, FW_ECLOSED, "the connection was closed while the query was running");
}

static void on_conn_closing_cancel(fw_stream_t *s)
{
    /* The connection closes while the stream waits for its cancel connection: that one runs
     * to its end on its own. */
    if (s->cancel != NULL) {
        fw__cancel_detach(s->cancel);
        s->cancel = NULL;
    }
    fw__stream_finish(s);
}

const fw__conn_hooks_t fw__stream_conn_hooks = {on_conn_failed, on_conn_closing,
                                                on_conn_closing_cancel};
