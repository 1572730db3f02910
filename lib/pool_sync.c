/* SPDX-License-Identifier: MIT */
/*
 * The pool in threaded mode (fwire.h): the pool lives on a runtime's loop like the runtime's
 * connections (runtime.c); callers on other threads reach it through fw__runtime_run and wait
 * on a condition variable for what comes later (an acquire's answer, the end of a close).
 *
 * Every answer is written under one process-wide mutex and read under it by the waiting
 * thread; a static mutex (never destroyed) because the waiter may return, and the pool be
 * freed, while the loop thread is still leaving the critical section that woke it.
 * Connections the pool opens carry the runtime (runtime_link), so fw_stream_start and
 * fw_stream_next on them work from the caller's thread as on fw_conn_connect_sync's.
 */
#include "pool_int.h"
#include "stream_int.h" /* fw__stream_release_to, the parallel stream's acquires */

#include <pthread.h>
#include <stdio.h>
#include <string.h>

static pthread_mutex_t sync_mu = PTHREAD_MUTEX_INITIALIZER;

static void set_err(fw_error_t *err, int code, const char *msg)
{
    if (err == NULL)
        return;
    memset(err, 0, sizeof(*err));
    err->code = code;
    snprintf(err->message, sizeof(err->message), "%s", msg);
}

/* ---- new, and the runtime's stop ------------------------------------------------------- */

/* fw_runtime_free with the pool still open: close it now, connections handed out included
 * (their owners are about to lose the runtime anyway). */
static void stop_on_loop(void *arg)
{
    fw_pool_t *p = arg;
    fw__pool_close(p, NULL, NULL);
    for (pconn_t *pc = p->conns, *next; pc != NULL; pc = next) {
        next = pc->next;
        if (pc->state != PC_CLOSING)
            fw__pool_retire(p, pc, &p->st.closed_pool, "the runtime is stopping");
    }
}

typedef struct new_call_s {
    fw_pool_t **out;
    fw_runtime_t *rt;
    const fw_pool_opts_t *o;
    fw_error_t *err;
    int rc;
} new_call_t;

static void new_on_loop(void *arg)
{
    new_call_t *a = arg;
    a->rc = fw_pool_new(a->out, fw__runtime_loop(a->rt), a->o, a->err);
    if (a->rc < 0)
        return;
    fw_pool_t *p = *a->out;
    p->rt = a->rt; /* before the loop runs anything of the pool's (min_size opens next turn) */
    p->rt_child.stop = stop_on_loop;
    p->rt_child.arg = p;
    fw__runtime_child_add(a->rt, &p->rt_child);
}

int fw_pool_new_rt(fw_pool_t **out, fw_runtime_t *rt, const fw_pool_opts_t *opts,
                   fw_error_t *err)
{
    if (err != NULL)
        memset(err, 0, sizeof(*err));
    if (out == NULL || rt == NULL || opts == NULL) {
        if (out != NULL)
            *out = NULL;
        set_err(err, FW_EINVAL, "out, rt and opts are required");
        return FW_EINVAL;
    }
    new_call_t a = {out, rt, opts, err, 0};
    fw__runtime_run(rt, new_on_loop, &a);
    return a.rc;
}

/* ---- acquire --------------------------------------------------------------------------- */

typedef struct acq_call_s {
    fw_pool_t *p;
    fw_pool_want_t want;
    unsigned timeout_ms;
    const fw_conn_t *like; /* fw__pool_acquire_wait_like */
    int rc;                /* fw__pool_acquire_ms */
    pthread_cond_t cond;
    /* ---- under sync_mu ---- */
    bool done;
    int status;
    fw_conn_t *conn;
    fw_error_t err;
} acq_call_t;

static void on_acquired(fw_pool_t *p, fw_conn_t *c, int status, const fw_error_t *err, void *ud)
{
    acq_call_t *a = ud;
    (void)p;
    pthread_mutex_lock(&sync_mu);
    a->status = status;
    a->conn = c;
    if (err != NULL)
        a->err = *err;
    a->done = true;
    pthread_cond_signal(&a->cond);
    pthread_mutex_unlock(&sync_mu);
}

static void acquire_on_loop(void *arg)
{
    acq_call_t *a = arg;
    a->rc = a->p->closing ? FW_ESTATE
                          : fw__pool_acquire_ms(a->p, a->want, a->timeout_ms, on_acquired, a,
                                                a->like);
}

int fw_pool_acquire_wait(fw_pool_t *p, fw_pool_want_t want, unsigned timeout_ms,
                         fw_conn_t **out, fw_error_t *err)
{
    return fw__pool_acquire_wait_like(p, want, timeout_ms, NULL, out, err);
}

int fw__pool_acquire_wait_like(fw_pool_t *p, fw_pool_want_t want, unsigned timeout_ms,
                               const fw_conn_t *like, fw_conn_t **out, fw_error_t *err)
{
    if (err != NULL)
        memset(err, 0, sizeof(*err));
    if (out != NULL)
        *out = NULL;
    if (p == NULL || out == NULL || (unsigned)want > FW_POOL_READ_STANDBY) {
        set_err(err, FW_EINVAL, "pool and out are required, want one of FW_POOL_*");
        return FW_EINVAL;
    }
    if (p->rt == NULL) {
        set_err(err, FW_EINVAL, "an embedded pool (fw_pool_new): use fw_pool_acquire");
        return FW_EINVAL;
    }
    acq_call_t a;
    memset(&a, 0, sizeof(a));
    a.p = p;
    a.want = want;
    a.like = like;
    a.timeout_ms = timeout_ms > 0 ? timeout_ms : p->o.acquire_timeout_ms;
    pthread_cond_init(&a.cond, NULL);
    fw__runtime_run(p->rt, acquire_on_loop, &a);
    if (a.rc < 0) {
        pthread_cond_destroy(&a.cond);
        set_err(err, a.rc,
                a.rc == FW_ESTATE                 ? "the pool is closing"
                : a.rc == FW_EINVAL && like != NULL ? "the connection is not one of this pool's"
                                                    : fw_strerror(a.rc));
        return a.rc;
    }
    /* the pool answers within timeout_ms (its wait timer), or at once when it closes */
    pthread_mutex_lock(&sync_mu);
    while (!a.done)
        pthread_cond_wait(&a.cond, &sync_mu);
    pthread_mutex_unlock(&sync_mu);
    pthread_cond_destroy(&a.cond);
    if (a.status < 0) {
        if (err != NULL)
            *err = a.err;
        return a.status;
    }
    *out = a.conn;
    return 0;
}

/* ---- release, close -------------------------------------------------------------------- */

typedef struct rel_call_s {
    fw_pool_t *p;
    fw_conn_t *c;
} rel_call_t;

static void release_on_loop(void *arg)
{
    rel_call_t *a = arg;
    fw__pool_release(a->p, a->c);
}

void fw__pool_release_rt(fw_pool_t *p, fw_conn_t *c)
{
    rel_call_t a = {p, c};
    fw__runtime_run(p->rt, release_on_loop, &a);
}

typedef struct close_call_s {
    fw_pool_t *p;
    int rc;
    pthread_cond_t cond;
    bool done; /* under sync_mu */
} close_call_t;

static void on_closed(fw_pool_t *p, void *ud)
{
    close_call_t *a = ud;
    (void)p;
    pthread_mutex_lock(&sync_mu);
    a->done = true;
    pthread_cond_signal(&a->cond);
    pthread_mutex_unlock(&sync_mu);
}

static void close_on_loop(void *arg)
{
    close_call_t *a = arg;
    fw_pool_t *p = a->p;
    if (p->closing) {
        a->rc = FW_ESTATE;
        return;
    }
    for (const pconn_t *pc = p->conns; pc != NULL; pc = pc->next) {
        if (pc->state == PC_IN_USE) {
            a->rc = FW_EBUSY; /* nothing done: the caller releases first */
            return;
        }
    }
    fw__pool_close(p, on_closed, a);
}

int fw_pool_close_sync(fw_pool_t *p)
{
    if (p == NULL || p->rt == NULL)
        return FW_EINVAL;
    close_call_t a;
    memset(&a, 0, sizeof(a));
    a.p = p;
    pthread_cond_init(&a.cond, NULL);
    fw__runtime_run(p->rt, close_on_loop, &a);
    if (a.rc == 0) {
        pthread_mutex_lock(&sync_mu);
        while (!a.done)
            pthread_cond_wait(&a.cond, &sync_mu);
        pthread_mutex_unlock(&sync_mu);
    }
    pthread_cond_destroy(&a.cond);
    return a.rc;
}

/* ---- a stream that gives its connection back ------------------------------------------- */

int fw_pool_stream_start(fw_pool_t *p, fw_conn_t *c, const fw_query_t *q, fw_rows_ready_cb ready,
                         void *ud, fw_stream_t **out, fw_error_t *err)
{
    if (out != NULL)
        *out = NULL;
    if (p == NULL || c == NULL || out == NULL) {
        set_err(err, FW_EINVAL, "pool, conn and out are required");
        return FW_EINVAL;
    }
    int rc = fw__stream_start_pool(p, c, q, ready, ud, out, err);
    if (rc < 0) {
        fw_pool_release(p, c); /* back at once (a parallel set-up's transaction rolled back) */
        return rc;
    }
    fw__stream_release_to(*out, p, c);
    return 0;
}

int fw_pool_stream_start_wait(fw_pool_t *p, fw_pool_want_t want, unsigned timeout_ms,
                              const fw_query_t *q, fw_stream_t **out, fw_error_t *err)
{
    if (out != NULL)
        *out = NULL;
    if (q == NULL || out == NULL) {
        set_err(err, FW_EINVAL, "q and out are required");
        return FW_EINVAL;
    }
    fw_conn_t *c = NULL;
    int rc = fw_pool_acquire_wait(p, want, timeout_ms, &c, err);
    if (rc < 0)
        return rc;
    return fw_pool_stream_start(p, c, q, NULL, NULL, out, err);
}

/* ---- parallel streams -------------------------------------------------------------------- */

int fw__pool_acquire_like(fw_pool_t *p, const fw_conn_t *like, fw_pool_acquire_cb cb, void *ud)
{
    if (p == NULL || p->rt != NULL || like == NULL)
        return FW_EINVAL;
    return fw__pool_acquire_ms(p, FW_POOL_READ, p->o.acquire_timeout_ms, cb, ud, like);
}

int fw__pool_par_fits(const fw_pool_t *p, const fw_conn_t *conn, char *why, size_t cap)
{
    if (p->loop != conn->loop || (p->rt != NULL) != (conn->runtime_link != NULL)) {
        snprintf(why, cap, "the connection is not one of this pool's");
        return FW_EINVAL;
    }
    if (p->closing) {
        snprintf(why, cap, "the pool is closing");
        return FW_ESTATE;
    }
    return 0;
}
