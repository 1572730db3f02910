/* SPDX-License-Identifier: MIT */
/*
 * A parallel stream in embedded mode (docs/streaming.md, "Parallel streams"): the threaded
 * set-up's steps (parallel.c) as a state machine on the caller's libuv loop, which it never
 * blocks. fw_stream_start returns at once; then
 *
 *   CONNECTING  the n connections connect at the same time (fw_conn_connect); each callback
 *               counts one in, the last one moves on
 *   SETUP       the set-up's statements on conns[0] (fw__par_setup_step, shared with threaded
 *               mode), each an embedded stream of its own whose rows-ready callback takes the
 *               answer and sends the next statement, or starts the parts
 *   RUNNING     every part started on its connection with its run (snapshot import, range);
 *               each part's rows-ready callback calls the user's, on the parallel stream
 *   OVER        the set-up failed or was cancelled: every connection is closed, the consumer's
 *               next poll gives the failure and the user's callback runs once, from `kick`
 *
 * From RUNNING on, the consumer's side is parallel.c and parallel_ctl.c, as in threaded mode:
 * the user's try_next polls the parts. Lifetimes: the parallel stream's handle holds one
 * reference for its consumer and one for the kick timer (dropped once the loop has closed the
 * timer, after fw_stream_free); every part holds one too (parallel.c). The callbacks find
 * their state through the handle, and none can run after fw_stream_free: a pending connect's
 * callback runs inside fw_conn_close, before the handle is let go (and finds its connection
 * gone from conns[]); the set-up statement and the parts are freed first (a freed stream calls
 * nobody); the timer is closed.
 */
#include "alloc.h"
#include "parallel_int.h"

#include <stdio.h>
#include <string.h>

typedef enum { EMB_CONNECTING, EMB_SETUP, EMB_RUNNING, EMB_OVER } emb_phase_t;

struct fw__par_emb_s {
    fw_stream_t *outer;     /* the parallel stream */
    fw_query_t *q;          /* the caller's query, copied: it may be freed once started */
    fw_rows_ready_cb ready; /* the user's callback, on the parallel stream */
    void *ud;
    emb_phase_t phase;
    int connected;
    int step;           /* the set-up step whose statement runs on conns[0] */
    fw_stream_t *setup; /* ...its stream */
    bool got, bad;      /* its row came; it was not what the step expects */
    bool want_pause;    /* fw_stream_pause before the parts run */
    uv_timer_t kick;    /* calls the user's callback from the loop once the set-up is OVER */
    fw__par_setup_t st;
    char text[1024];
    char sql[FW__PAR_SQL_CAP];
};

static void on_kick(uv_timer_t *t)
{
    fw__par_emb_t *e = t->data;
    if (e->ready != NULL)
        e->ready(e->outer, e->ud); /* may free the stream: nothing after this */
}

static void on_kick_closed(uv_handle_t *h)
{
    fw__par_emb_t *e = h->data;
    fw__stream_unref(e->outer); /* the timer's reference; the last one frees e too */
}

/* The set-up is over without a row: everything closes, and the consumer gets `err`. */
static void emb_over(fw_stream_t *s, const fw_error_t *err)
{
    fw__par_t *p = s->par;
    fw__par_emb_t *e = p->emb;
    if (e->phase == EMB_OVER)
        return;
    e->phase = EMB_OVER;
    if (e->setup != NULL) {
        fw_stream_free(e->setup); /* cancels a statement still running */
        e->setup = NULL;
    }
    fw__par_teardown(p); /* the parts started so far, and every connection */
    s->err = *err;
    if (s->err.code == 0)
        s->err.code = FW_ECLOSED;
    fw__par_set_end(s, s->err.code);
    uv_timer_start(&e->kick, on_kick, 0, 0);
}

static void on_part_rows(fw_stream_t *part, void *ud)
{
    (void)part;
    fw_stream_t *s = ud;
    fw__par_t *p = s->par;
    if (s->sticky <= 0)
        return; /* the consumer has had its end: a part's late end tells nothing new */
    if (p->cancelling && !fw__par_all_final(p))
        return; /* the cancel's end comes with the last part's */
    if (p->emb->ready != NULL)
        p->emb->ready(s, p->emb->ud); /* may free the stream: nothing after this */
}

/* The set-up is complete: every part starts on its connection, conns[0] in the transaction
 * that exported the snapshot (we may be inside its last statement's callback: it has ended). */
static void start_parts(fw_stream_t *s)
{
    fw__par_t *p = s->par;
    fw__par_emb_t *e = p->emb;
    fw_error_t err;
    memcpy(p->snapshot, e->st.snapshot, sizeof(p->snapshot));
    fw__par_runs_t *r = fw__calloc(1, sizeof(*r));
    if (r == NULL) {
        fw__par_errf(&err, FW_ENOMEM, "out of memory");
        emb_over(s, &err);
        return;
    }
    fw__par_part_runs(p, e->q, &e->st, r);
    for (int i = 0; i < p->n; i++) {
        fw__stream_start_t a = {p->conns[i], e->q, on_part_rows, s, NULL, 0, &err, &r->run[i], s,
                                false};
        fw__stream_start_on_loop(&a);
        if (a.rc < 0) {
            fw__free(r);
            fw__par_prefix_err(&err, "starting part", i);
            emb_over(s, &err);
            return;
        }
        p->parts[i] = a.s;
        p->state[i] = 1;
        if (e->want_pause)
            (void)fw_stream_pause(a.s);
    }
    fw__free(r);
    p->live = p->n;
    e->phase = EMB_RUNNING;
    p->hold = false; /* the consumer polls the parts directly */
}

static void on_setup_rows(fw_stream_t *st, void *ud);

/* The next set-up step: its statement goes out on conns[0], or the parts start. */
static void next_step(fw_stream_t *s)
{
    fw__par_t *p = s->par;
    fw__par_emb_t *e = p->emb;
    fw_error_t err;
    fw__query_run_t run;
    int rc = fw__par_setup_step(p, e->q, &e->st, e->step++, e->text, &run, e->sql, &err);
    if (rc < 0) {
        emb_over(s, &err);
        return;
    }
    if (rc == 0) {
        start_parts(s);
        return;
    }
    e->got = e->bad = false;
    fw__stream_start_t a = {p->conns[0], e->q, on_setup_rows, s, NULL, 0, &err, &run, NULL, false};
    fw__stream_start_on_loop(&a);
    if (a.rc < 0) {
        fw__par_prefix_err(&err, "setting up on connection", 0);
        emb_over(s, &err);
        return;
    }
    e->setup = a.s;
}

/* A set-up statement's rows-ready callback: its one row is the answer (as run_one's). */
static void on_setup_rows(fw_stream_t *st, void *ud)
{
    fw_stream_t *s = ud;
    fw__par_emb_t *e = s->par->emb;
    fw_row_t row;
    int rc;
    while ((rc = fw_stream_try_next(st, &row)) == FW_ROW) {
        if (e->got || !fw__par_answer(&row, e->text, sizeof(e->text)))
            e->bad = true;
        e->got = true;
    }
    if (rc == FW_AGAIN)
        return;
    fw_error_t err;
    if (rc == FW_END && e->got && !e->bad) {
        fw_stream_free(st);
        e->setup = NULL;
        next_step(s);
        return;
    }
    if (rc < 0 && fw_stream_error(st)->code != 0)
        err = *fw_stream_error(st);
    else
        fw__par_errf(&err, rc < 0 ? rc : FW_ESCHEMA, "unexpected answer");
    fw__par_prefix_err(&err, "setting up the snapshot on connection", 0);
    emb_over(s, &err); /* frees st */
}

static void on_connect(fw_conn_t *c, int status, const fw_error_t *cerr, void *ud)
{
    fw_stream_t *s = ud;
    fw__par_t *p = s->par;
    fw__par_emb_t *e = p->emb;
    int i = 0;
    while (i < p->n && p->conns[i] != c)
        i++;
    if (i == p->n || e->phase != EMB_CONNECTING)
        return; /* closed by the teardown (it is inside fw_conn_close) */
    if (status < 0) {
        fw_error_t err;
        if (cerr != NULL)
            err = *cerr;
        else
            fw__par_errf(&err, status, "%s", fw_strerror(status));
        char m[sizeof(err.message)];
        snprintf(m, sizeof(m), "%s", err.message);
        snprintf(err.message, sizeof(err.message), "connection %d: %.900s", i, m);
        fw__par_prefix_err(&err, "connecting the parts", -1);
        emb_over(s, &err);
        return;
    }
    if (++e->connected < p->n)
        return;
    e->phase = EMB_SETUP;
    next_step(s);
}

/* A connection for part `i` came from the pool (or why none came). Each pending acquire holds
 * a reference to the stream: a connection arriving after the stream's end goes back at once. */
static void on_acquired(fw_pool_t *pool, fw_conn_t *c, int status, const fw_error_t *aerr,
                        void *ud)
{
    fw_stream_t *s = ud;
    fw__par_t *p = s->par;
    fw__par_emb_t *e = p->emb;
    if (e->phase != EMB_CONNECTING) {
        fw_pool_release(pool, c); /* untouched; NULL is ignored */
    } else if (status < 0) {
        fw_error_t err;
        if (aerr != NULL)
            err = *aerr;
        else
            fw__par_errf(&err, status, "%s", fw_strerror(status));
        fw__par_prefix_err(&err, "taking the parts' connections from the pool", -1);
        emb_over(s, &err);
    } else {
        int i = 1;
        while (i < p->n && p->conns[i] != NULL)
            i++;
        p->conns[i] = c; /* a free slot: n - 1 acquires for n - 1 slots */
        if (++e->connected == p->n) {
            e->phase = EMB_SETUP;
            next_step(s);
        }
    }
    fw__stream_unref(s);
}

int fw__par_emb_start(fw_stream_t *outer, fw_conn_t *conn, const fw_query_t *q,
                      fw_rows_ready_cb ready, void *ud, fw_error_t *err)
{
    fw__par_t *p = outer->par;
    fw__par_emb_t *e = fw__calloc(1, sizeof(*e));
    if (e == NULL || (p->emb = e, e->q = fw__query_clone(q)) == NULL) {
        fw__par_errf(err, FW_ENOMEM, "out of memory");
        return FW_ENOMEM;
    }
    e->outer = outer;
    p->hold = true;
    e->ready = ready;
    e->ud = ud;
    if (p->pool != NULL) {
        /* conns[0] is this one; n - 1 more from the pool (answers come from the loop later) */
        p->conns[0] = conn;
        e->connected = 1;
        uv_timer_init(conn->loop, &e->kick);
        e->kick.data = e;
        atomic_fetch_add_explicit(&outer->refs, 1, memory_order_relaxed); /* the timer's */
        if (p->n == 1) {
            e->phase = EMB_SETUP;
            next_step(outer);
            return 0;
        }
        for (int i = 1; i < p->n; i++) {
            atomic_fetch_add_explicit(&outer->refs, 1, memory_order_relaxed); /* the acquire's */
            int rc = fw__pool_acquire_like(p->pool, conn, on_acquired, outer);
            if (rc < 0) { /* the pool is closing: the consumer hears of it */
                fw__stream_unref(outer);
                fw_error_t ae;
                fw__par_errf(&ae, rc, "parallel stream, taking the parts' connections from the "
                                      "pool: %s", fw_strerror(rc));
                emb_over(outer, &ae);
                break;
            }
        }
        return 0;
    }
    fw_conn_opts_t o = conn->opts;
    o.conninfo = conn->conninfo_copy;
    for (int i = 0; i < p->n; i++) {
        int rc = fw_conn_new(&p->conns[i], conn->loop, &o, err);
        if (rc < 0) {
            p->conns[i] = NULL;
            fw__par_teardown(p); /* the ones made so far: closed on the loop */
            if (err != NULL && err->code == 0)
                fw__par_errf(err, rc, "%s", fw_strerror(rc));
            fw__par_prefix_err(err, "connecting the parts", -1);
            return rc;
        }
    }
    uv_timer_init(conn->loop, &e->kick);
    e->kick.data = e;
    atomic_fetch_add_explicit(&outer->refs, 1, memory_order_relaxed); /* the timer's */
    /* The n start-ups at once (their callbacks run later, never inside fw_conn_connect). */
    for (int i = 0; i < p->n; i++) {
        int rc = fw_conn_connect(p->conns[i], on_connect, outer);
        if (rc < 0) { /* not expected of a new connection; the consumer hears of it */
            fw_error_t ce;
            fw__par_errf(&ce, rc, "parallel stream, connecting the parts: connection %d: %s", i,
                         fw_strerror(rc));
            emb_over(outer, &ce);
            break;
        }
    }
    return 0;
}

int fw__par_emb_poll(fw_stream_t *s)
{
    fw__par_t *p = s->par;
    fw__par_emb_t *e = p->emb;
    switch (e->phase) {
    case EMB_CONNECTING:
    case EMB_SETUP:
        return e->want_pause ? FW_PAUSED : FW_AGAIN;
    case EMB_OVER:
        return s->sticky; /* set by emb_over */
    case EMB_RUNNING:
        break;
    }
    if (!p->cancelling)
        return 1;
    if (!fw__par_all_final(p))
        return FW_AGAIN; /* no row after fw_stream_cancel: they are dropped */
    (void)fw__par_cancel_finish(s);
    return s->sticky;
}

bool fw__par_emb_pause(fw_stream_t *s, bool pause)
{
    fw__par_emb_t *e = s->par->emb;
    if (e->phase != EMB_CONNECTING && e->phase != EMB_SETUP)
        return false;
    e->want_pause = pause;
    return true;
}

int fw__par_emb_cancel(fw_stream_t *s)
{
    fw__par_t *p = s->par;
    fw__par_emb_t *e = p->emb;
    if (s->sticky <= 0 || e->phase == EMB_OVER || p->cancelling)
        return 0;
    if (e->phase != EMB_RUNNING) {
        /* Mid-set-up: nothing was delivered; the statement in flight is cancelled (its
         * stream's free) and every connection closed. */
        fw_error_t err;
        fw__par_errf(&err, FW_ECANCELED, "the query was cancelled");
        emb_over(s, &err);
        return 0;
    }
    p->cancelling = true;
    p->hold = true;
    /* As an ordinary stream's: when every part had ended already, no callback follows and the
     * next try_next gives FW_ECANCELED; else the last part's end calls the user once more. */
    for (int i = 0; i < p->n; i++)
        (void)fw__stream_cancel_request(p->parts[i]);
    return 0;
}

void fw__par_emb_free(fw_stream_t *s)
{
    fw__par_t *p = s->par;
    fw__par_emb_t *e = p->emb;
    e->phase = EMB_OVER; /* no step runs any more */
    if (e->setup != NULL) {
        fw_stream_free(e->setup);
        e->setup = NULL;
    }
    fw__par_teardown(p); /* parts (cancelled when running), then every connection */
    uv_close((uv_handle_t *)&e->kick, on_kick_closed);
    fw__stream_unref(s); /* the consumer's reference */
}

void fw__par_emb_destroy(fw__par_emb_t *e)
{
    fw_query_free(e->q);
    fw__free(e);
}
