/* SPDX-License-Identifier: MIT */
/*
 * Threaded mode: a runtime owns one libuv loop on its own thread and serves many connections.
 * Callers on other threads hand it commands through a mutex-protected list and uv_async_send,
 * then wait on a condition variable for the answer. The stream's rows and its control requests
 * do not come through here (the SPSC ring, the stream's own wake); connect, start and close do.
 * After answering a connect or a call the loop thread stays awake a moment for the caller's
 * next command, and after sending a stream's query for the first bytes of its reply
 * (on_linger).
 */
#include "alloc.h"
#include "conn.h"

#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How long the loop thread stays awake for a next command after answering one (on_linger). */
#define LINGER_NS 300000u
/* How long a caller polls for the answer to a call before it sleeps (post_and_wait_n). */
#define CALL_POLL_NS 200000u
/* How long the loop thread watches a stream's socket after sending its query (on_linger). */
#define REPLY_SPIN_NS 300000u

typedef enum cmd_kind_e { CMD_CONNECT, CMD_CLOSE, CMD_STOP, CMD_CALL } cmd_kind_t;

typedef struct cmd_s {
    cmd_kind_t kind;
    struct cmd_s *next;
    const fw_conn_opts_t *opts; /* CMD_CONNECT: borrowed, the caller waits */
    void (*fn)(void *arg);      /* CMD_CALL: run on the loop thread, then answered */
    void *arg;
    fw_conn_t *conn;
    int status;
    fw_error_t err;
    atomic_bool done;
    bool sleeping; /* the caller waits on cond (under mu): answer() signals it */
    pthread_cond_t cond;
} cmd_t;

/* A connection the runtime tracks so fw_runtime_free can close what callers left open. */
typedef struct link_s {
    fw_conn_t *conn;
    struct link_s *prev, *next;
    cmd_t *waiting; /* the command to answer when this connection's operation completes */
} link_t;

struct fw_runtime_s {
    uv_loop_t loop;
    uv_async_t async;
    uv_thread_t thread;
    pthread_mutex_t mu;
    cmd_t *head, *tail; /* commands not yet taken by the loop */
    link_t *conns;      /* loop thread only */
    cmd_t *stop;        /* the pending stop command, loop thread only */
    void (*then_fn)(void *arg); /* fw__runtime_then: after the CMD_CALL's answer, loop thread */
    void *then_arg;
    fw__rt_child_t *children; /* pools on this loop, loop thread only */
    uv_prepare_t linger;      /* before the loop sleeps: linger_until */
    uint64_t linger_until;    /* loop thread only: stay awake for a next command until then */
    atomic_bool posted;       /* a command is in the list (set by posters, cleared by on_async) */
    atomic_bool awake;        /* on_linger polls the list (or runs what it found there) */
    const fw_conn_t *spin_conn; /* fw__runtime_spin: its query has just gone out (loop thread) */
    uint64_t spin_until;
    bool started;
};

static void answer(fw_runtime_t *rt, cmd_t *cmd)
{
    if (cmd->kind == CMD_CONNECT || cmd->kind == CMD_CALL)
        rt->linger_until = uv_hrtime() + LINGER_NS;
    pthread_mutex_lock(&rt->mu);
    atomic_store_explicit(&cmd->done, true, memory_order_release);
    if (cmd->sleeping)
        pthread_cond_signal(&cmd->cond);
    pthread_mutex_unlock(&rt->mu);
}

static void unlink_conn(fw_runtime_t *rt, link_t *l)
{
    if (l->prev != NULL)
        l->prev->next = l->next;
    else
        rt->conns = l->next;
    if (l->next != NULL)
        l->next->prev = l->prev;
}

static void maybe_stop(fw_runtime_t *rt)
{
    if (rt->stop != NULL && rt->conns == NULL && rt->children == NULL &&
        !uv_is_closing((uv_handle_t *)&rt->async)) {
        uv_close((uv_handle_t *)&rt->async, NULL);
        uv_close((uv_handle_t *)&rt->linger, NULL);
        /* the loop ends once the async handle is closed: nothing else is left */
    }
}

static void on_closed(fw_conn_t *conn, void *ud)
{
    link_t *l = ud;
    fw_runtime_t *rt = conn->runtime_link;
    (void)conn;
    unlink_conn(rt, l);
    if (l->waiting != NULL)
        answer(rt, l->waiting);
    fw__free(l);
    maybe_stop(rt);
}

static void on_connected(fw_conn_t *conn, int status, const fw_error_t *err, void *ud)
{
    link_t *l = ud;
    fw_runtime_t *rt = conn->runtime_link;
    cmd_t *cmd = l->waiting;
    if (cmd == NULL) /* closed by fw_runtime_free before it finished */
        return;
    cmd->status = status;
    if (status == 0) {
        l->waiting = NULL;
        cmd->conn = conn;
        answer(rt, cmd);
        return;
    }
    if (err != NULL)
        cmd->err = *err;
    cmd->conn = NULL;
    /* A failed connection is closed here; the caller is answered once its memory is gone. */
    fw_conn_close(conn, on_closed, l);
}

static void run_connect(fw_runtime_t *rt, cmd_t *cmd)
{
    fw_conn_t *conn;
    int rc = fw_conn_new(&conn, &rt->loop, cmd->opts, &cmd->err);
    if (rc < 0) {
        cmd->status = rc;
        answer(rt, cmd);
        return;
    }
    link_t *l = fw__calloc(1, sizeof(*l));
    if (l == NULL) {
        cmd->status = FW_ENOMEM;
        fw_conn_close(conn, NULL, NULL);
        answer(rt, cmd);
        return;
    }
    l->conn = conn;
    l->waiting = cmd;
    l->next = rt->conns;
    if (rt->conns != NULL)
        rt->conns->prev = l;
    rt->conns = l;
    conn->runtime_link = rt;
    rc = fw_conn_connect(conn, on_connected, l);
    if (rc < 0) {
        cmd->status = rc;
        fw_conn_close(conn, on_closed, l);
    }
}

static link_t *find_link(fw_runtime_t *rt, fw_conn_t *conn)
{
    for (link_t *l = rt->conns; l != NULL; l = l->next)
        if (l->conn == conn)
            return l;
    return NULL;
}

static void on_async(uv_async_t *h)
{
    fw_runtime_t *rt = h->data;
    pthread_mutex_lock(&rt->mu);
    cmd_t *list = rt->head;
    rt->head = rt->tail = NULL;
    atomic_store_explicit(&rt->posted, false, memory_order_relaxed);
    pthread_mutex_unlock(&rt->mu);
    while (list != NULL) {
        cmd_t *cmd = list;
        list = list->next;
        switch (cmd->kind) {
        case CMD_CONNECT:
            run_connect(rt, cmd);
            break;
        case CMD_CLOSE: {
            link_t *l = find_link(rt, cmd->conn);
            if (l == NULL) {
                answer(rt, cmd);
                break;
            }
            l->waiting = cmd;
            fw_conn_close(cmd->conn, on_closed, l);
            break;
        }
        case CMD_CALL:
            cmd->fn(cmd->arg);
            answer(rt, cmd);
            if (rt->then_fn != NULL) {
                void (*then)(void *) = rt->then_fn;
                rt->then_fn = NULL;
                then(rt->then_arg);
            }
            break;
        case CMD_STOP:
            rt->stop = cmd;
            for (fw__rt_child_t *ch = rt->children, *next; ch != NULL; ch = next) {
                next = ch->next; /* stop may end the child at once */
                ch->stop(ch->arg);
            }
            for (link_t *l = rt->conns; l != NULL; l = l->next) {
                if (l->waiting != NULL && l->waiting->kind == CMD_CONNECT) {
                    /* a connect still in flight: its caller gets FW_ECLOSED */
                    cmd_t *c = l->waiting;
                    c->status = FW_ECLOSED;
                    c->conn = NULL;
                    l->waiting = NULL;
                    answer(rt, c);
                }
                fw_conn_close(l->conn, on_closed, l);
            }
            maybe_stop(rt);
            break;
        }
    }
}

/* Nothing waits on the loop that a short spin would delay: no pool, no connect or close under
 * way, no query, exec or cancel on any connection (a metrics listener's scrape, or a handle of
 * the user's on fw__runtime_loop, may wait up to LINGER_NS). */
static bool quiet(const fw_runtime_t *rt)
{
    if (rt->children != NULL || rt->stop != NULL)
        return false;
    for (const link_t *l = rt->conns; l != NULL; l = l->next) {
        const fw_conn_t *c = l->conn;
        if (l->waiting != NULL || c->stream != NULL || c->cancel_stream != NULL ||
            c->exec_cb != NULL || c->state != FW__CONN_READY)
            return false;
    }
    return true;
}

/* Like quiet(), but `c`, still on this runtime, is streaming: its reply is what the loop waits
 * for. */
static bool quiet_but(const fw_runtime_t *rt, const fw_conn_t *c)
{
    if (rt->children != NULL || rt->stop != NULL)
        return false;
    bool found = false;
    for (const link_t *l = rt->conns; l != NULL; l = l->next) {
        const fw_conn_t *o = l->conn;
        if (o == c) {
            if (l->waiting != NULL || o->stream == NULL || o->state != FW__CONN_READY ||
                o->cancel_stream != NULL || !o->chan.open || o->closing)
                return false;
            found = true;
        } else if (l->waiting != NULL || o->stream != NULL || o->cancel_stream != NULL ||
                   o->exec_cb != NULL || o->state != FW__CONN_READY) {
            return false;
        }
    }
    return found;
}

/*
 * A stream's query has just gone out (fw__runtime_spin): for REPLY_SPIN_NS, while nothing else
 * runs on this loop, the thread watches the socket (poll with no timeout) and the command list
 * instead of sleeping, giving its core away between looks, as on_linger does after a connect.
 * A warm backend answers in 150-250 us here; a sleeping loop thread is woken for those bytes
 * 20-60 us later, and in some runs (its vCPU halted, or the backend run on its core) 1 ms or
 * more: the threaded first row on a warm connection was 1.24-1.35x libpq's, its 90th percentile
 * 1.4 ms. At most REPLY_SPIN_NS of CPU per query start (docs/benchmarks.md, "The first row on a
 * warm connection: the loop watches for the reply").
 */
static void spin_reply(fw_runtime_t *rt, const fw_conn_t *c, uint64_t until)
{
    struct pollfd pfd = {.fd = c->chan.sock.fd, .events = POLLIN};
    atomic_store_explicit(&rt->awake, true, memory_order_relaxed);
    for (;;) {
        if (atomic_load_explicit(&rt->posted, memory_order_relaxed)) {
            on_async(&rt->async);
            break;
        }
        if (poll(&pfd, 1, 0) != 0 || uv_hrtime() >= until)
            break; /* readable (or an error): the loop's own poll takes it from here */
        sched_yield();
    }
    atomic_store_explicit(&rt->awake, false, memory_order_relaxed);
}

/*
 * Before the loop sleeps: after it answered a connect or a call, a caller often posts its next
 * command soon (connect, then start a stream: 25-80 us later here, the caller's own wake-up).
 * Waking a sleeping loop thread for it costs 10-40 us on the VMs measured, on the first row's
 * path (the query goes out only once the loop has the start). So for LINGER_NS after such an
 * answer, while nothing else runs on this loop (no stream, no pool, no connect or cancel: their
 * I/O would wait), the thread polls the command list instead of sleeping, giving its core away
 * between looks (sched_yield: a caller woken onto this core runs; a plain spin held it off, up
 * to a scheduler tick). At most LINGER_NS of CPU per answer nobody follows up. The caller's
 * uv_async_send still wakes the loop once more afterwards (an empty on_async).
 * docs/benchmarks.md, "The first row: the loop stays awake after a connect".
 */
static void on_linger(uv_prepare_t *h)
{
    fw_runtime_t *rt = h->data;
    if (rt->spin_until != 0) {
        uint64_t su = rt->spin_until;
        const fw_conn_t *sc = rt->spin_conn;
        rt->spin_until = 0;
        rt->spin_conn = NULL;
        if (quiet_but(rt, sc))
            spin_reply(rt, sc, su);
    }
    uint64_t until = rt->linger_until;
    rt->linger_until = 0;
    if (until == 0 || !quiet(rt))
        return;
    atomic_store_explicit(&rt->awake, true, memory_order_relaxed);
    for (;;) {
        if (atomic_load_explicit(&rt->posted, memory_order_relaxed)) {
            on_async(&rt->async);
            break;
        }
        if (uv_hrtime() >= until)
            break;
        sched_yield();
    }
    atomic_store_explicit(&rt->awake, false, memory_order_relaxed);
}

static void thread_main(void *arg)
{
    fw_runtime_t *rt = arg;
    /* fwire's own sends never raise SIGPIPE (MSG_NOSIGNAL); blocking it here also covers any
     * code a user callback runs on this thread. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    uv_run(&rt->loop, UV_RUN_DEFAULT);
}

int fw_runtime_new(fw_runtime_t **out)
{
    if (out == NULL)
        return FW_EINVAL;
    *out = NULL;
    fw_runtime_t *rt = fw__calloc(1, sizeof(*rt));
    if (rt == NULL)
        return FW_ENOMEM;
    int rc = uv_loop_init(&rt->loop);
    if (rc < 0) {
        fw__free(rt);
        return rc;
    }
    rc = uv_async_init(&rt->loop, &rt->async, on_async);
    if (rc < 0) {
        uv_loop_close(&rt->loop);
        fw__free(rt);
        return rc;
    }
    rt->async.data = rt;
    atomic_init(&rt->posted, false);
    atomic_init(&rt->awake, false);
    uv_prepare_init(&rt->loop, &rt->linger);
    rt->linger.data = rt;
    uv_prepare_start(&rt->linger, on_linger);
    uv_unref((uv_handle_t *)&rt->linger); /* the async handle alone keeps the loop running */
    pthread_mutex_init(&rt->mu, NULL);
    rc = uv_thread_create(&rt->thread, thread_main, rt);
    if (rc < 0) {
        uv_close((uv_handle_t *)&rt->async, NULL);
        uv_close((uv_handle_t *)&rt->linger, NULL);
        uv_run(&rt->loop, UV_RUN_DEFAULT);
        uv_loop_close(&rt->loop);
        pthread_mutex_destroy(&rt->mu);
        fw__free(rt);
        return rc;
    }
    rt->started = true;
    *out = rt;
    return 0;
}

/* Posts n commands in one batch (one wake of the loop), then waits for every answer: the loop
 * runs them all before it answers the first that needs I/O, so n connects proceed at once. */
static void post_and_wait_n(fw_runtime_t *rt, cmd_t *cmds, int n)
{
    for (int i = 0; i < n; i++)
        pthread_cond_init(&cmds[i].cond, NULL);
    pthread_mutex_lock(&rt->mu);
    for (int i = 0; i < n; i++) {
        cmd_t *cmd = &cmds[i];
        cmd->next = NULL;
        if (rt->tail != NULL)
            rt->tail->next = cmd;
        else
            rt->head = cmd;
        rt->tail = cmd;
    }
    atomic_store_explicit(&rt->posted, true, memory_order_relaxed);
    pthread_mutex_unlock(&rt->mu);
    uv_async_send(&rt->async);
    if (n == 1 && cmds[0].kind == CMD_CALL &&
        atomic_load_explicit(&rt->awake, memory_order_relaxed)) {
        /* The loop thread is awake for us (on_linger): the answer comes within microseconds.
         * Poll for it, giving the core away between looks (the loop thread may have been put
         * on this one), rather than sleep: the wake-up would be on the first row's path. */
        uint64_t until = uv_hrtime() + CALL_POLL_NS;
        while (!atomic_load_explicit(&cmds[0].done, memory_order_acquire) && uv_hrtime() < until)
            sched_yield();
    }
    /* Always through the mutex, even when the poll saw the answer: answer() may still be
     * inside its critical section, reading cmd (on this stack) and its condition variable. */
    pthread_mutex_lock(&rt->mu);
    for (int i = 0; i < n; i++) {
        cmds[i].sleeping = true;
        while (!atomic_load_explicit(&cmds[i].done, memory_order_acquire))
            pthread_cond_wait(&cmds[i].cond, &rt->mu);
    }
    pthread_mutex_unlock(&rt->mu);
    for (int i = 0; i < n; i++)
        pthread_cond_destroy(&cmds[i].cond);
}

/* Posts a command and waits for its answer. */
static void post_and_wait(fw_runtime_t *rt, cmd_t *cmd)
{
    post_and_wait_n(rt, cmd, 1);
}

int fw_conn_connect_sync(fw_runtime_t *rt, const fw_conn_opts_t *opts, fw_conn_t **out,
                         fw_error_t *err)
{
    if (err != NULL)
        memset(err, 0, sizeof(*err));
    if (rt == NULL || out == NULL)
        return FW_EINVAL;
    *out = NULL;
    cmd_t cmd;
    memset(&cmd, 0, sizeof(cmd));
    cmd.kind = CMD_CONNECT;
    cmd.opts = opts;
    post_and_wait(rt, &cmd);
    if (cmd.status < 0) {
        if (err != NULL)
            *err = cmd.err;
        return cmd.status;
    }
    *out = cmd.conn;
    return 0;
}

int fw__runtime_connect_n(fw_runtime_t *rt, const fw_conn_opts_t *opts, int n, fw_conn_t **out,
                          fw_error_t *err)
{
    cmd_t *cmds = fw__calloc((size_t)n, sizeof(*cmds));
    if (cmds == NULL) {
        if (err != NULL) {
            memset(err, 0, sizeof(*err));
            err->code = FW_ENOMEM;
            snprintf(err->message, sizeof(err->message), "out of memory");
        }
        return FW_ENOMEM;
    }
    for (int i = 0; i < n; i++) {
        cmds[i].kind = CMD_CONNECT;
        cmds[i].opts = opts;
    }
    post_and_wait_n(rt, cmds, n);
    int rc = 0;
    for (int i = 0; i < n; i++) {
        out[i] = cmds[i].conn;
        if (cmds[i].status < 0 && rc == 0) {
            rc = cmds[i].status;
            if (err != NULL)
                *err = cmds[i].err;
            if (err != NULL) {
                char m[sizeof(err->message)];
                snprintf(m, sizeof(m), "%s", err->message);
                snprintf(err->message, sizeof(err->message), "connection %d: %.900s", i, m);
            }
        }
    }
    fw__free(cmds);
    return rc;
}

void fw_conn_close_sync(fw_conn_t *conn)
{
    if (conn == NULL || conn->runtime_link == NULL)
        return;
    cmd_t cmd;
    memset(&cmd, 0, sizeof(cmd));
    cmd.kind = CMD_CLOSE;
    cmd.conn = conn;
    post_and_wait(conn->runtime_link, &cmd);
}

void fw__runtime_call(fw_conn_t *conn, void (*fn)(void *arg), void *arg)
{
    fw__runtime_run(conn->runtime_link, fn, arg);
}

void fw__runtime_spin(fw_conn_t *conn)
{
    /* Not for a connection's first query: a fresh backend's first reply takes 0.8-1 ms here,
     * past the spin, and with two vCPUs a spinning loop thread got in that backend's way (fresh
     * first rows 1.05-1.13x libpq, against 1.03-1.05x without the spin). Nor after a reply that
     * came later than the spin lasts (a slow query: the spin would only cost CPU). */
    if (conn->nqueries < 2 || (conn->reply_ns != 0 && conn->reply_ns >= REPLY_SPIN_NS))
        return;
    fw_runtime_t *rt = conn->runtime_link;
    rt->spin_conn = conn;
    rt->spin_until = uv_hrtime() + REPLY_SPIN_NS;
}

void fw__runtime_then(fw_conn_t *conn, void (*fn)(void *arg), void *arg)
{
    fw_runtime_t *rt = conn->runtime_link;
    rt->then_fn = fn;
    rt->then_arg = arg;
}

void fw__runtime_run(fw_runtime_t *rt, void (*fn)(void *arg), void *arg)
{
    cmd_t cmd;
    memset(&cmd, 0, sizeof(cmd));
    cmd.kind = CMD_CALL;
    cmd.fn = fn;
    cmd.arg = arg;
    post_and_wait(rt, &cmd);
}

uv_loop_t *fw__runtime_loop(fw_runtime_t *rt)
{
    return &rt->loop;
}

void fw__runtime_child_add(fw_runtime_t *rt, fw__rt_child_t *ch)
{
    ch->prev = NULL;
    ch->next = rt->children;
    if (rt->children != NULL)
        rt->children->prev = ch;
    rt->children = ch;
}

void fw__runtime_child_done(fw_runtime_t *rt, fw__rt_child_t *ch)
{
    if (ch->prev != NULL)
        ch->prev->next = ch->next;
    else
        rt->children = ch->next;
    if (ch->next != NULL)
        ch->next->prev = ch->prev;
    maybe_stop(rt);
}

void fw_runtime_free(fw_runtime_t *rt)
{
    if (rt == NULL)
        return;
    cmd_t cmd;
    memset(&cmd, 0, sizeof(cmd));
    cmd.kind = CMD_STOP;
    /* The stop command is answered by the thread ending, not by answer(). */
    pthread_mutex_lock(&rt->mu);
    if (rt->tail != NULL)
        rt->tail->next = &cmd;
    else
        rt->head = &cmd;
    rt->tail = &cmd;
    atomic_store_explicit(&rt->posted, true, memory_order_relaxed);
    pthread_mutex_unlock(&rt->mu);
    uv_async_send(&rt->async);
    uv_thread_join(&rt->thread);
    int rc = uv_loop_close(&rt->loop);
    (void)rc; /* every handle was closed above; a failure here would be a bug caught in tests */
    pthread_mutex_destroy(&rt->mu);
    fw__free(rt);
}
