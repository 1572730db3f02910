/* SPDX-License-Identifier: MIT */
/*
 * Starting a query on the loop thread: the connection's state is checked, the stream and its
 * pipe are made with the query's budget and chunk policy, the extended-protocol run is encoded
 * and sent, and the stream takes over the connection's reading (fw__stream_begin).
 */
#include "alloc.h"
#include "stream_int.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

void fw__stream_set_err(fw_error_t *err, int code, const char *msg)
{
    if (err == NULL)
        return;
    memset(err, 0, sizeof(*err));
    err->code = code;
    err->phase = FW_PHASE_READY;
    snprintf(err->message, sizeof(err->message), "%s", msg);
}

fw_stream_t *fw__stream_alloc(void)
{
    /* Cache-line aligned (the pipe's rings): stream/'s helper, on the user's hook. */
    fw_stream_t *s = fw__aligned_alloc(&fw__alloc, sizeof(*s), alignof(fw_stream_t));
    if (s == NULL)
        return NULL;
    memset(s, 0, sizeof(*s));
    if (fw__park_init(&s->park) != 0) {
        fw__aligned_free(&fw__alloc, s);
        return NULL;
    }
    pthread_mutex_init(&s->wake_mu, NULL);
    atomic_init(&s->refs, 1);
    atomic_init(&s->final, FW__FINAL_NONE);
    atomic_init(&s->stall_flag, false);
    atomic_init(&s->abandoned, false);
    atomic_init(&s->wake_at, 0);
    atomic_init(&s->want_pause, false);
    atomic_init(&s->want_cancel, false);
    atomic_init(&s->st_pauses, 0);
    atomic_init(&s->st_pause_timeouts, 0);
    atomic_init(&s->st_chunk_grows, 0);
    atomic_init(&s->st_chunk_shrinks, 0);
    s->wake_to = s;
    return s;
}

/*
 * The start failed with `rc` after the query was handed to the socket (`sent` is what that
 * returned): the server's reply to it would arrive with no stream to read it, so the connection
 * is closed (it is broken now, like one whose send failed) and the caller gets rc.
 */
static void start_failed(fw__stream_start_t *a, fw_conn_t *c, int rc, int sent)
{
    if (a->send_after_answer) {
        /* Nothing was sent yet (start_send sends once the caller is answered). */
        fw__pq_buf_reset(&c->out);
        a->rc = rc;
        fw__stream_set_err(a->err, rc, rc == FW_ENOMEM ? "out of memory" : fw_strerror(rc));
        return;
    }
    fw__conn_abort(c);
    a->rc = rc;
    char msg[160];
    snprintf(msg, sizeof(msg), "%s; the query was already sent, so the connection is closed%s",
             rc == FW_ENOMEM ? "out of memory" : fw_strerror(rc),
             sent < 0 ? " (its send had failed too)" : "");
    fw__stream_set_err(a->err, rc, msg);
}

/* Threaded: the query of a started stream goes out, once its caller has been answered. */
static void start_send(void *arg)
{
    fw_stream_t *s = arg;
    fw_conn_t *c = s->conn;
    if (c == NULL)
        return;
    int rc = fw__conn_flush_out(c);
    if (rc < 0) {
        c->state = FW__CONN_BAD;
        fw__stream_conn_gone(s, rc, "could not send the query");
        return;
    }
    s->t_sent = c->nqueries++ > 0 ? uv_hrtime() : 0; /* the first reply is not measured */
    fw__runtime_spin(c);
}

void fw__stream_start_on_loop(void *arg)
{
    fw__stream_start_t *a = arg;
    fw_conn_t *c = a->conn;
    if (c->closing || c->state != FW__CONN_READY) {
        a->rc = FW_ESTATE;
        fw__stream_set_err(a->err, FW_ESTATE,
                c->state == FW__CONN_BAD ? "the connection is broken; close it and connect again"
                                         : "the connection is not connected");
        return;
    }
    if (c->stream == NULL && c->cancel_stream != NULL) {
        a->rc = FW_EBUSY;
        fw__stream_set_err(a->err, FW_EBUSY,
                "the previous query on this connection was cancelled and the server has not "
                "yet closed the cancel connection; try again in a moment");
        return;
    }
    if (c->stream != NULL) {
        a->rc = FW_EBUSY;
        fw__stream_set_err(a->err, FW_EBUSY,
                "another query is running on this connection; a connection runs one query at a "
                "time (read its stream to the end or free it first)");
        return;
    }
    /* Embedded, the query goes out first: everything below (the stream's memory, its pipe,
     * its handles) is made while the server works on it, off the first row's path. What fails
     * after this point leaves a reply in flight that nothing would read: the connection is
     * closed (start_failed). A send that fails is kept for later: the stream ends with it.
     * Threaded, from fw_stream_start or fw_pool_stream_start, it goes out right after the
     * caller is answered (start_send; parallel parts send at once): woken while the
     * backend still waits for the query, the caller's thread finds a core free; woken after
     * the send, it could wait behind the busy backend for a scheduler tick (1-3 ms; one start
     * in six on v_bench_1m here: docs/benchmarks.md, "The first row: the query goes out
     * first"). The set-up is short (5-7 us) now that the metrics series are found earlier. */
    uint64_t t_start = uv_hrtime(); /* the metrics' start of the query (startup, first row) */
    fw__pq_buf_reset(&c->out);
    int rc = fw__query_encode_run(a->q, a->run, &c->out);
    if (rc < 0) {
        fw__pq_buf_reset(&c->out);
        a->rc = rc;
        fw__stream_set_err(a->err, rc, rc == FW_ENOMEM ? "out of memory" : fw_strerror(rc));
        return;
    }
    bool later = a->send_after_answer;
    int sent = later ? 0 : fw__conn_flush_out(c);
    fw_stream_t *s = fw__stream_alloc();
    if (s == NULL) {
        start_failed(a, c, FW_ENOMEM, sent);
        return;
    }
    size_t chunk = fw__query_chunk_size(a->q);
    size_t budget = fw__query_max_memory(a->q);
    fw__pipe_opts_t o = {
        .slab_size = budget / 4 < FW__STREAM_SLAB ? budget / 4 : FW__STREAM_SLAB,
        .max_memory = budget,
        .chunk_rows = (uint32_t)chunk,
        .chunk_cap = (uint32_t)chunk,
        .ring_cap = FW__STREAM_RING,
        .soft_held = c->runtime_link != NULL && budget >= 2 * FW__STREAM_SOFT_HELD &&
                             4 * FW__STREAM_SLAB <= FW__STREAM_SOFT_HELD
                         ? FW__STREAM_SOFT_HELD
                         : 0,
        .slab_get = fw__slab_cache_get,
        .slab_put = fw__slab_cache_put,
    };
    if (a->q->adaptive) {
        /* Chunks are allocated at the ceiling so the size can move without reallocating. */
        (void)fw__chunker_init(&s->chunker, &a->q->chunk_policy); /* checked by the setter */
        s->adaptive = true;
        o.chunk_rows = s->chunker.size;
        o.chunk_cap = a->q->chunk_policy.ceiling;

    }
    /* Metrics: the entity's series, looked up when the query's label was set (query.c); none
     * when off. */
    bool raw = a->run != NULL && a->run->raw != NULL; /* fwire's own statement: no metrics */
    s->lm.e = raw || !fw__lm_on()          ? NULL
              : a->q->lm_e != NULL         ? a->q->lm_e
              : fw__lm_entity(a->q->label[0] != '\0' ? a->q->label : NULL);
    if (s->lm.e != NULL) {
        o.on_release = fw__stream_lm_chunk;
        o.hook_ud = s;
    }
    rc = fw__pipe_init(&s->pipe, &o, &fw__alloc);
    if (rc < 0) {
        fw__pipe_free(&s->pipe);
        atomic_store(&s->refs, 1);
        fw__stream_unref(s);
        start_failed(a, c, rc, sent);
        return;
    }
    s->threaded = c->runtime_link != NULL;
    s->explain = a->q->explain;
    s->ready = a->ready;
    s->ready_ud = a->ud;
    s->pred = raw ? NULL : fw__query_predicate(a->q, &s->pred_ud);
    s->cancel_timeout_ms = a->q->cancel_timeout_ms != 0 ? a->q->cancel_timeout_ms
                                                        : FW__QUERY_DEFAULT_CANCEL_TIMEOUT_MS;
    s->pause_timeout_ms = a->q->pause_timeout_ms;
    s->pause_action = a->q->pause_action;
    s->idle_timeout_ms = a->q->idle_timeout_ms;
    s->sticky = 1; /* FW_ROW: nothing sticky yet */
    if (a->wake_to != NULL) {
        /* A parallel part: its consumer sleeps on the parallel stream, which must outlive
         * this part's producer (the reference goes in fw__stream_unref). */
        s->wake_to = a->wake_to;
        atomic_fetch_add_explicit(&a->wake_to->refs, 1, memory_order_relaxed);
    }
    int npre = a->run != NULL ? a->run->npre : 0;
    if (a->run == NULL || a->run->raw == NULL)
        npre += fw__query_preamble(a->q);
    rc = fw__stream_begin(s, c, npre, fw__query_simple(a->q, a->run));
    if (rc < 0) {
        fw__pipe_free(&s->pipe);
        fw__stream_unref(s);
        start_failed(a, c, rc, sent);
        return;
    }
    atomic_store_explicit(&s->refs, 2, memory_order_relaxed); /* consumer + producer */
    if (s->lm.e != NULL) {
        s->lm.t_start = t_start;
        fw__lm_query_submitted(s->lm.e->name, a->q->nconds > 0, s->pred != NULL,
                               a->q->norders > 0);
        fw__metric_gauge_add(s->lm.e->streams_active, 1);
        fw__metric_gauge_set(s->lm.e->chunk_size, (int64_t)o.chunk_rows);
    }
    fw__stream_ctl_begin(s);
    if (later)
        fw__runtime_then(c, start_send, s);
    if (sent < 0) {
        /* The stream exists now: it ends through the normal path, failed. */
        c->state = FW__CONN_BAD;
        fw__stream_conn_gone(s, sent, "could not send the query");
    }
    a->s = s;
    a->rc = 0;
}
