/* SPDX-License-Identifier: MIT */
/* Private to lib/: the connection object (made by conn_attempt.c, run by conn.c) and what the
 * runtime (runtime.c) needs. */
#ifndef FW_CONN_H
#define FW_CONN_H

#include "auth.h"
#include "cancel.h"
#include "channel.h"
#include "conninfo.h"
#include "dialer.h"
#include "fwire.h"
#include "proto.h"
#include "route.h"
#include "sock.h"
#include "startup.h"
#include "tls.h"

#include <stdatomic.h>
#include <stdbool.h>

#include <uv.h>

typedef enum fw__conn_state_e {
    FW__CONN_NEW,
    FW__CONN_CONNECTING,
    FW__CONN_READY,
    FW__CONN_BAD, /* failed, or the server went away: only fw_conn_close is useful */
    FW__CONN_CLOSED
} fw__conn_state_t;

/*
 * A SCRAM key derivation on the thread pool. It owns the startup state it works on, so an
 * attempt that times out (or a connection that closes) can move on at once: the job is marked
 * stale, `cancel` stops the PBKDF2 loop within about a millisecond instead of letting it burn a
 * core for up to max_iterations HMACs (CVE-2026-42198), and after_derive throws the result away.
 */
typedef struct fw__derive_job_s {
    uv_work_t work;
    fw_conn_t *conn;
    fw__startup_t *su;
    int rc;     /* written by the worker; read in after_derive (ordered by libuv's queue) */
    bool stale; /* loop thread only */
    /* Set (relaxed) by the loop thread together with `stale`, read (relaxed) by the worker.
     * Relaxed is enough: the flag publishes no data, it only asks the worker to stop, and a
     * stale job's state is never read again; the worker's writes reach after_derive through
     * libuv's work queue, not through this flag. */
    _Atomic bool cancel;
} fw__derive_job_t;

/*
 * What the connection tells the query that holds it: conn->stream (a running query) or
 * conn->cancel_stream (a query whose reply is over while its cancel connection is still out).
 * The stream files set conn->hooks when a query begins.
 */
typedef struct fw__conn_hooks_s {
    /* A write failed under the running query: the connection is bad. */
    void (*failed)(struct fw_stream_s *s, int code, const char *why);
    /* fw_conn_close while the query runs: apply what is pending, then end it. */
    void (*closing)(struct fw_stream_s *s);
    /* fw_conn_close while the query waits for its cancel connection: end it now. */
    void (*cancel_closing)(struct fw_stream_s *s);
} fw__conn_hooks_t;

struct fw_conn_s {
    uv_loop_t *loop;
    fw_conn_opts_t opts; /* opts.conninfo not kept (parsed into ci) */
    char *conninfo_copy; /* the connection string, for a parallel stream's other connections */
    fw__conninfo_t *ci;
    fw__conn_state_t state;
    fw_phase_t phase;
    bool closing;
    int pending; /* handles and jobs still to finish before the memory goes (+ fw__dial_pending) */
    /* Threaded: queries sent, and how long after its send the last one's first bytes came
     * (0: none measured; the first query's is not: a fresh backend's first is slow). They
     * decide whether the loop watches for the next reply (runtime.c, fw__runtime_spin). */
    uint64_t nqueries, reply_ns;

    fw__dialer_t dial; /* which host and address this attempt uses (dialer.h) */

    uv_timer_t timer; /* connect_timeout, per host as in libpq */
    uv_idle_t kick;   /* starts the connect from the loop */
    bool kick_open;

    fw__chan_t chan; /* the socket and TLS of this attempt, then of the connection */
    void (*sock_closed_then)(fw__dialer_t *d); /* the dialer's next step once it is gone */

    fw__tls_mode_t tls_mode;
    bool want_tls;
    bool retried_plain; /* prefer/allow: the one retry with the other transport was used */
    uint8_t cb_data[64];
    size_t cb_data_len;

    /* routing (route.h): what this attempt's server says it is; the target check's query */
    fw__route_facts_t facts;
    bool pass2;       /* prefer-standby found no standby: the second pass takes any server */
    bool checking;    /* the target check's query is out; its reply goes to `reader` */
    bool check_got;   /* ... and its one row came */
    bool check_extra; /* ... and another row after it: the answer proves nothing */
    bool check_null;
    char check_value[16];
    size_t check_len;
    const char *check_query;

    fw__startup_t *su;      /* this attempt's startup exchange */
    fw__derive_job_t *job;  /* its key derivation, while one runs */
    fw__pq_buf_t out;       /* messages to send */
    bool out_untyped;       /* out starts with an untyped message (StartupMessage, SSLRequest) */
    fw__pq_reader_t reader; /* after startup: asynchronous messages while idle */

    int keepalives_idle, keepalives_interval, keepalives_count;
    char passfile_warning[256];

    fw_connect_cb connect_cb;
    void *connect_ud;
    fw_close_cb close_cb;
    void *close_ud;
    fw_error_t err;
    uint64_t t_start;
    /* metrics (lmetrics.h) */
    uint64_t t_auth;   /* uv_hrtime() when the startup message went out */
    bool lm_auth_done; /* this attempt's authentication outcome was recorded */
    bool lm_active;    /* counted in fraiseql_connections_active */

    /* facts kept at ReadyForQuery */
    fw__params_t params;
    char server_version[64];
    int server_version_num;
    char tls_version[32];
    char tls_cipher[64];
    fw__auth_method_t method;
    uint32_t protocol;               /* as negotiated: FW__PQ_PROTOCOL_3_0 or _3_2 */
    fw__pq_cancel_key_t backend_key; /* BackendKeyData (pid and key), for CancelRequest */
    double connect_seconds;
    fw_server_role_t role_at_connect;
    bool read_only_at_connect;
    /* now: updated by the loop thread when the server reports a change (or 25006), read from
     * any thread (fw_conn_role, fw_conn_read_only) */
    _Atomic int role;
    _Atomic bool read_only;
    struct sockaddr_storage peer; /* the address connected to (TCP or unix) */
    socklen_t peer_len;
    /* A stream whose reply ended while its cancel connection still runs: no new query may
     * start until that ends (a late cancel would hit it). */
    struct fw_stream_s *cancel_stream;
    /* How the connection tells stream and cancel_stream what happens to it (set by the stream
     * files; conn.c and conn_attempt.c call nothing else of theirs: check-layering.sh). */
    const fw__conn_hooks_t *hooks;

    /* fw_conn_when_idle: the waiting callback, checked from a zero timer (never inside the
     * call that made the connection idle, so user code runs from a clean stack) */
    fw_idle_cb idle_cb;
    void *idle_ud;
    uv_timer_t idle_timer;

    /* fw__conn_exec (conn_exec.c): one simple Query out on the idle reader; its outcome is
     * delivered from `timer` (free once READY) */
    void (*exec_cb)(fw_conn_t *c, int status, const fw_error_t *err, void *ud);
    void *exec_ud;
    fw_error_t exec_err;
    bool exec_done; /* ReadyForQuery came (or the connection broke): deliver */
    unsigned exec_timeout_ms;

    /* A parallel stream from a pool ran a transaction here (its snapshot's, or a part's): the
     * pool rolls it back when the connection comes back, before anyone else gets it (pool.c).
     * Set by the consumer before fw_pool_release; read on the loop after it. */
    bool par_rollback;

    void *runtime_link;         /* threaded mode: the runtime's bookkeeping */
    struct fw_stream_s *stream; /* the query running now, or NULL (loop thread) */

    /* Two buffers of FW__CONN_BUF bytes, allocated apart and never zeroed: a
     * 128 KiB part of the record made every fw_conn_new an mmap and a zeroing of pages that
     * are only ever read after a read filled them (0.2-1 ms a connection, 25-45 ms for the
     * 100 connections a pool opens at once; issue 15). */
    uint8_t *rbuf; /* the channel's raw socket reads */
    /* Plaintext of the attempt and the idle reader; lent to a running stream as the scratch
     * where a message split across receive slabs is joined (conn->stream owns it then). */
    uint8_t *plain;
};
#define FW__CONN_BUF ((size_t)64 * 1024)

void fw__conn_kick(uv_idle_t *h);
/* A query or its cancel connection ended on c: a waiting fw_conn_when_idle callback is checked
 * (from the loop, a zero timer). Loop thread. */
void fw__conn_idle_check(fw_conn_t *c);
/* The TLS settings and TCP tuning of the connection (the cancel connection uses the same). */
void fw__conn_tls_config(const fw_conn_t *c, fw__tls_config_t *cfg);
void fw__conn_tuning(const fw_conn_t *c, fw__sock_tuning_t *t);
/* Where and how to cancel the running query: *t (and *cfg, which t->tls points to when the
 * connection has TLS; its strings are borrowed from c). */
void fw__conn_cancel_target(const fw_conn_t *c, fw__cancel_target_t *t, fw__tls_config_t *cfg);
/* Gives the connection up (a cancel that did not finish): bad, socket closed. */
void fw__conn_abort(fw_conn_t *c);
/* Sends c->out (through TLS when on). 0 or an error. */
int fw__conn_flush_out(fw_conn_t *c);
/*
 * The idle reader takes the channel (back) over: at ReadyForQuery of the startup, and when a
 * query ends. `rest` (borrowed for the call) is what the query's reader received after its
 * ReadyForQuery; plaintext already inside OpenSSL is read now (no socket event would bring it).
 * Nothing happens on a connection that is not READY or is closing.
 */
void fw__conn_resume_idle(fw_conn_t *c, const uint8_t *rest, size_t rest_len);
/* A query begins: the start of a message the idle reader holds is copied to dst (cap bytes)
 * and the idle reader is emptied. Returns the bytes copied. */
size_t fw__conn_take_idle_bytes(fw_conn_t *c, uint8_t *dst, size_t cap);

/* For the pool (pool.c): before fw_conn_connect, only host i of the list is tried and every
 * server is accepted (target_session_attrs any: the pool routes by role itself). 0 or
 * FW_EINVAL. The hosts, in the order of the connection string (no shuffle when pinned). */
int fw__conn_pin_host(fw_conn_t *c, size_t i);
size_t fw__conn_nhosts(const fw_conn_t *c);
/* READY, not closing, no query on it: what an idle pooled connection must be. */
bool fw__conn_usable(const fw_conn_t *c);
const fw__conninfo_host_t *fw__conn_host(const fw_conn_t *c, size_t i);

/*
 * For the pool (conn_exec.c): runs `sql` as one simple Query on an idle READY connection and
 * calls cb once from the loop (never inside this call): status 0, or the server's error
 * (FW_ESERVER, SQLSTATE in *err: the connection stays usable), FW_ETIMEDOUT (no ReadyForQuery
 * within timeout_ms, 0 = no limit: the connection is given up, BAD), FW_ECLOSED or the code that
 * broke it (a FATAL, EOF), or FW_ECLOSED from fw_conn_close. Returns 0, FW_EINVAL, FW_EBUSY or
 * FW_ESTATE (not idle and READY; cb never runs). While it runs the connection is not idle
 * (fw__conn_usable false). Loop thread.
 */
typedef void (*fw__exec_cb)(fw_conn_t *c, int status, const fw_error_t *err, void *ud);
int fw__conn_exec(fw_conn_t *c, const char *sql, unsigned timeout_ms, fw__exec_cb cb, void *ud);
/* conn.c's idle reader: a message while an exec is out (true: it was the exec's); the
 * connection broke (EOF, FATAL, protocol); the connection is closing. */
bool fw__conn_exec_msg(fw_conn_t *c, const fw__pq_msg_t *m);
void fw__conn_exec_broken(fw_conn_t *c);
void fw__conn_exec_closing(fw_conn_t *c);

/* Between conn.c and conn_attempt.c. */
extern const fw__dial_cbs_t fw__conn_dial_cbs;
/* This address failed: noted; the next address, then host. */
void fw__conn_attempt_failed(fw_conn_t *c, int code, const char *what);
/* Notes one failed attempt in libpq's words ("connection to server at ... failed: what"),
 * with its code and phase, and logs it. */
void fw__conn_note_attempt(fw_conn_t *c, int code, const char *what);
/* The end of the connect: made (status 0: the idle reader takes the channel over) or failed;
 * the connect callback runs once. */
void fw__conn_finish(fw_conn_t *c, int status);
/* conn_check.c: the target_session_attrs check once the server is ready, and the bytes of the
 * check query's reply (a server that does not report in_hot_standby). */
void fw__conn_check_target(fw_conn_t *c);
void fw__conn_check_bytes(fw_conn_t *c, const uint8_t *p, size_t n);
/* Closes the channel (if open) and runs `then` (a dialer step, or NULL) once it is gone. */
void fw__conn_drop_socket(fw_conn_t *c, void (*then)(fw__dialer_t *));
/* Releases the attempt's startup state (a running key derivation is cancelled). */
void fw__conn_free_startup(fw_conn_t *c);
/* Frees c once it is closing and nothing is pending. */
void fw__conn_maybe_free(fw_conn_t *c);
/* A NoticeResponse (counted in the metrics, then to notice_cb) and a NotificationResponse (to
 * notification_cb), decoded by servermsg.c. */
void fw__conn_notice(void *ud, const fw__pq_msg_t *m);
void fw__conn_notification(fw_conn_t *c, const fw__pq_msg_t *m);
/* A ParameterStatus after the connect (idle or during a query): a change of in_hot_standby or
 * default_transaction_read_only updates the role (logged). */
void fw__conn_param(fw_conn_t *c, const fw__pq_msg_t *m);
/* A query failed with SQLSTATE 25006: the session is read-only from now on. */
void fw__conn_saw_read_only(fw_conn_t *c);
/* The facts say what the server is now (after the connect or a change). */
void fw__conn_set_role(fw_conn_t *c);
void fw__conn_trace_in(void *ud, const fw__pq_msg_t *m);
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
void fw__conn_log(fw_conn_t *c, fw_log_level_t level, const char *fmt, ...);
void fw__wipe_conn_secrets(fw_conn_t *c);
/* Threaded mode: runs fn(arg) on the connection's runtime thread and waits for it to return.
 * Thread: any thread but the runtime's. */
void fw__runtime_call(fw_conn_t *conn, void (*fn)(void *arg), void *arg);
/* From inside a fw__runtime_call's fn (loop thread): fn(arg) runs once the caller has been
 * answered, before the loop takes anything else. */
void fw__runtime_then(fw_conn_t *conn, void (*fn)(void *arg), void *arg);
/* Threaded, loop thread: conn's query has just gone out; before the loop sleeps, it watches
 * conn's socket for a moment when conn's last reply came within that moment (runtime.c,
 * spin_reply). */
void fw__runtime_spin(fw_conn_t *conn);
/* Opens n connections with the same options at the same time (one batch of connect commands,
 * so the n start-ups overlap) and waits for all of them. out[i] is the i-th connection or NULL
 * if it failed; on any failure returns the first failure's code with its error in *err (NULL
 * allowed), and the caller closes the connections that did open (fw_conn_close_sync). opts is
 * borrowed until the call returns. Thread: any thread but the runtime's. */
int fw__runtime_connect_n(fw_runtime_t *rt, const fw_conn_opts_t *opts, int n, fw_conn_t **out,
                          fw_error_t *err);
/* The same for a runtime. Thread: any thread but the runtime's. */
void fw__runtime_run(fw_runtime_t *rt, void (*fn)(void *arg), void *arg);
/* The runtime's loop, for code that runs on it (fw__runtime_run). */
uv_loop_t *fw__runtime_loop(fw_runtime_t *rt);
/* Something else living on a runtime's loop (a pool): fw_runtime_free calls stop(arg) on the
 * loop thread, and the loop ends only after every child called fw__runtime_child_done. Loop
 * thread (add through fw__runtime_run). */
typedef struct fw__rt_child_s {
    struct fw__rt_child_s *prev, *next;
    void (*stop)(void *arg);
    void *arg;
} fw__rt_child_t;
void fw__runtime_child_add(fw_runtime_t *rt, fw__rt_child_t *ch);
void fw__runtime_child_done(fw_runtime_t *rt, fw__rt_child_t *ch);
/* fw_conn_when_idle without its threaded-mode refusal, for the pool (which runs on the loop
 * in both modes). Loop thread. */
int fw__conn_when_idle(fw_conn_t *c, fw_idle_cb cb, void *ud);

#endif /* FW_CONN_H */
