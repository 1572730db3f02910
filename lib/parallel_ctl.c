/* SPDX-License-Identifier: MIT */
/*
 * A parallel stream's control, stats and end (parallel.c has the design, the set-up and the
 * consumer's polling): pause and resume every part, cancel every part at once, free, and the
 * parts' figures added up.
 */
#include "parallel_int.h"

#include <stdio.h>
#include <string.h>

int fw__par_pause(fw_stream_t *s, bool pause)
{
    fw__par_t *p = s->par;
    if (s->sticky <= 0 || p->cancelling)
        return FW_ESTATE;
    if (p->emb != NULL && fw__par_emb_pause(s, pause)) {
        /* Embedded mode, still setting up: the parts start paused (or not). */
        atomic_store_explicit(&s->want_pause, pause, memory_order_relaxed);
        return 0;
    }
    int ok = 0;
    for (int i = 0; i < p->n; i++) {
        if (p->state[i] == 1 &&
            (pause ? fw_stream_pause(p->parts[i]) : fw_stream_resume(p->parts[i])) == 0)
            ok++;
    }
    if (ok > 0)
        atomic_store_explicit(&s->want_pause, pause, memory_order_relaxed);
    return ok > 0 ? 0 : FW_ESTATE;
}

bool fw__par_all_final(const fw__par_t *p)
{
    for (int i = 0; i < p->n; i++) {
        if (p->parts[i] != NULL &&
            atomic_load_explicit(&p->parts[i]->final, memory_order_acquire) == FW__FINAL_NONE)
            return false;
    }
    return true;
}

/* Every part has published its end (the consumer waits on the parallel stream for that). */
static int poll_all_final(fw_stream_t *s, void *arg)
{
    (void)arg;
    return fw__par_all_final(s->par) ? 0 : FW_AGAIN;
}

int fw__par_cancel_finish(fw_stream_t *s)
{
    fw__par_t *p = s->par;
    int rc = 0;
    for (int i = 0; i < p->n; i++) {
        int r = p->parts[i] != NULL ? fw__stream_cancel_end(p->parts[i]) : 0;
        if (r < 0 && rc == 0)
            rc = r;
    }
    if (s->sticky > 0) {
        memset(&s->err, 0, sizeof(s->err));
        s->err.code = rc < 0 ? rc : FW_ECANCELED;
        s->err.phase = FW_PHASE_READY;
        snprintf(s->err.message, sizeof(s->err.message), "%s",
                 rc < 0 ? "a part's cancel did not complete in time; its connection was closed"
                        : "the query was cancelled");
        fw__par_set_end(s, s->err.code);
    }
    for (int i = 0; i < p->n; i++)
        if (p->state[i] == 1) {
            p->state[i] = FW_ECANCELED;
            p->live--;
        }
    p->cancelling = false;
    return rc;
}

int fw__par_cancel(fw_stream_t *s)
{
    fw__par_t *p = s->par;
    s->par_fast = NULL; /* no row of a lent chunk after a cancel */
    if (p->emb != NULL)
        return fw__par_emb_cancel(s); /* returns at once; the rows-ready callback tells the end */
    /* Every part's cancel goes out first, then one wait covers them all: the parts are
     * drained at the same time, not one after another. */
    for (int i = 0; i < p->n; i++)
        (void)fw__stream_cancel_request(p->parts[i]);
    (void)fw__stream_wait(s, -1, poll_all_final, NULL); /* bounded by the cancel timeouts */
    return fw__par_cancel_finish(s);
}

/* Frees what start made so far (the consumer's side: parts first, then their connections). */
void fw__par_teardown(fw__par_t *p)
{
    bool ran[FW__QUERY_MAX_PARALLEL];
    for (int i = 0; i < p->n; i++) {
        ran[i] = i == 0 || p->parts[i] != NULL; /* conns[0] ran the set-up */
        fw_stream_free(p->parts[i]);
        p->parts[i] = NULL;
    }
    for (int i = 0; i < p->n; i++) {
        fw_conn_t *c = p->conns[i];
        p->conns[i] = NULL; /* first: a pending connect's callback runs inside the close */
        if (p->pool != NULL) {
            /* back to the pool, which rolls the transaction back first (pool.c); conns[0]
             * goes back from fw_stream_free (or fw_pool_stream_start's failure) */
            if (c != NULL && ran[i])
                c->par_rollback = true;
            if (i > 0)
                fw_pool_release(p->pool, c);
        } else if (p->emb != NULL) {
            fw_conn_close(c, NULL, NULL);
        } else {
            fw_conn_close_sync(c);
        }
    }
}

void fw__par_free(fw_stream_t *s)
{
    /* Parts first (a running one is cancelled without waiting), then their connections: the
     * close ends what a cancel still waits for, and the transactions with it. */
    if (s->par->emb != NULL) {
        fw__par_emb_free(s); /* a set-up in flight too; the loop closes what is left */
        return;
    }
    fw__par_teardown(s->par);
    fw__stream_unref(s);
}

void fw__par_soft_nudge(fw_stream_t *s)
{
    const fw__par_t *p = s->par;
    for (int i = 0; i < p->n; i++)
        if (p->parts[i] != NULL)
            fw__stream_soft_nudge(p->parts[i]);
}

void fw__par_stats(const fw_stream_t *s, fw_stream_stats_t *out)
{
    const fw__par_t *p = s->par;
    fw_stream_stats_t st;
    uint32_t chunk = 0;
    for (int i = 0; i < p->n; i++) {
        if (p->parts[i] == NULL)
            continue;
        fw_stream_stats(p->parts[i], &st);
        out->rows_buffered += st.rows_buffered;
        out->chunks_buffered += st.chunks_buffered;
        out->bytes_buffered += st.bytes_buffered;
        out->rows_yielded += st.rows_yielded;
        out->rows_filtered += st.rows_filtered;
        out->bytes_received += st.bytes_received;
        out->chunks_delivered += st.chunks_delivered;
        out->read_stops += st.read_stops;
        out->pauses += st.pauses;
        out->pause_timeouts += st.pause_timeouts;
        out->chunk_grows += st.chunk_grows;
        out->chunk_shrinks += st.chunk_shrinks;
        out->read_wakeups += st.read_wakeups;
        out->read_ticks += st.read_ticks;
        out->max_memory += st.max_memory;
        if (st.chunk_size > chunk)
            chunk = st.chunk_size;
    }
    out->chunk_size = chunk;
    /* The state is the consumer's view (sticky), read without a lock: any thread may ask. */
    int sticky = atomic_load_explicit(&p->result, memory_order_relaxed);
    out->state = sticky == FW_END                                             ? FW_STREAM_COMPLETED
                 : sticky == FW_ECANCELED                                     ? FW_STREAM_CANCELLED
                 : sticky < 0                                                 ? FW_STREAM_FAILED
                 : atomic_load_explicit(&s->want_pause, memory_order_relaxed) ? FW_STREAM_PAUSED
                                                                              : FW_STREAM_RUNNING;
}

int fw_stream_parts(const fw_stream_t *s)
{
    if (s == NULL)
        return FW_EINVAL;
    return s->par != NULL ? s->par->n : 1;
}

int fw_stream_part_stats(const fw_stream_t *s, int part, fw_stream_stats_t *out)
{
    if (s == NULL || out == NULL || part < 0 || part >= fw_stream_parts(s))
        return FW_EINVAL;
    if (s->par == NULL) {
        fw_stream_stats(s, out);
        return 0;
    }
    if (s->par->parts[part] == NULL)
        return FW_ESTATE;
    fw_stream_stats(s->par->parts[part], out);
    return 0;
}

const char *fw_stream_snapshot(const fw_stream_t *s)
{
    /* NULL too while an embedded-mode set-up has not exported it yet */
    return s != NULL && s->par != NULL && s->par->snapshot[0] != '\0' ? s->par->snapshot : NULL;
}

void fw__par_chunk_release(fw_stream_t *s, fw_chunk_t *chunk)
{
    fw__par_t *p = s->par;
    for (int i = 0; i < p->n; i++) {
        if (p->parts[i] == NULL)
            continue;
        for (const fw__chunk_t *c = p->parts[i]->pipe.taken_list; c != NULL; c = c->taken_next) {
            if (c == chunk) {
                fw_chunk_release(p->parts[i], chunk);
                return;
            }
        }
    }
    /* Not taken from any part (released twice): ignored, as fw__pipe_release does. */
}
