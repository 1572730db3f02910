/* SPDX-License-Identifier: MIT */
/*
 * Private to lib/: a stream, shared by the loop thread (producer: stream.c) and the consumer
 * (stream_api.c). Which side may touch what is written at each field; the pipe (stream/pipe.h)
 * carries the rows, and everything else that crosses threads is an atomic named here.
 */
#ifndef FW_STREAM_INT_H
#define FW_STREAM_INT_H

#include "park.h"
#include "conn.h"
#include "ftimer.h"
#include "lmetrics.h"
#include "pipe.h"
#include "query.h"
#include "reply.h"

#include <pthread.h>
#include <stdatomic.h>

/* fw_stream_s.final: 0 while running, then one of these (stored last, with release). */
enum { FW__FINAL_NONE = 0, FW__FINAL_COMPLETED = 1, FW__FINAL_FAILED = 2, FW__FINAL_CANCELLED = 3 };

/* What the control timer (stream_ctl.c) is timing. */
typedef enum fw__ctl_mode_e { CTL_NONE, CTL_IDLE, CTL_PAUSE, CTL_CANCEL } fw__ctl_mode_t;

struct fw_stream_s {
    fw__pipe_t pipe; /* first: it needs cache-line alignment */

    /* Two owners: the consumer handle and the producer (dropped when its wake handle has
     * closed). The last one frees the memory. */
    _Atomic int refs;
    bool threaded; /* set at start, read-only */
    /* fw_pool_stream_start: the pool that gets the connection back at fw_stream_free (consumer
     * side only: set right after the start, read by fw_stream_free) */
    fw_pool_t *release_to;
    fw_conn_t *release_conn;
    bool explain; /* the query is an EXPLAIN (FORMAT JSON): its schema differs */

    /* ---- producer (loop thread) ---- */
    fw_conn_t *conn;   /* NULL once detached: the query is over for the connection */
    fw__reply_t reply; /* the reply machine: phases, schema check, limits (reply.h) */
    bool stalled;      /* socket reading stopped for backpressure */
    bool soft_stalled; /* ...at the read-ahead limit (stall(), stream.c) */
    bool in_pump;      /* re-entrancy guard */
    bool pushed;       /* chunks handed over since the last notification */
    fw__rx_t rx;       /* the receive slab and parse position (stream/pipe.h); its scratch is
                        * conn->plain, FW__STREAM_SLAB bytes: a message tail between slabs */
    fw_predicate_cb pred;
    void *pred_ud;
    fw_rows_ready_cb ready;
    void *ready_ud;
    uint64_t rows_total; /* rows seen (kept or filtered), for messages */

    /* ---- the end: producer writes err, then final (release); consumer reads after acquire */
    fw_error_t err;
    fw__chunk_t *last_chunk; /* rows the ring had no room for at a failure */
    _Atomic int final;

    /* ---- consumer -> producer: requests, and the handle that carries them to the loop ---- */
    uv_async_t wake;         /* loop thread handle; uv_async_send from any thread */
    pthread_mutex_t wake_mu; /* guards wake_alive against the handle's close */
    bool wake_alive;
    _Atomic bool want_pause; /* applied on the loop by stream_ctl.c */
    _Atomic bool want_cancel;
    _Atomic bool abandoned;   /* the consumer freed its handle */
    _Atomic bool stall_flag;  /* the producer waits for releases */
    /* ...and that stall is at the read-ahead limit (fw__pipe_opts_t.soft_held): a consumer that
     * finds nothing to take wakes the producer once (stream_api.c, soft_nudge) */
    _Atomic bool soft_stall;
    _Atomic uint64_t wake_at; /* ...until the consumer has released this many chunks */

    /* ---- statistics the producer writes and any thread reads (fw_stream_stats) ---- */
    _Atomic uint64_t st_pauses, st_pause_timeouts;
    _Atomic uint64_t st_chunk_grows, st_chunk_shrinks;
    _Atomic uint64_t st_read_wakeups, st_read_ticks;

    /* ---- producer only (loop thread): control, adaptive size, wakeups ---- */
    uv_timer_t ctl; /* idle timeout, pause timeout, cancel timeout (stream_ctl.c) */
    fw__ctl_mode_t ctl_mode;
    bool adaptive; /* the chunk size follows `chunker` */
    fw__chunker_t chunker;
    uint64_t read_rows;    /* rows a read brings, smoothed (the chunker's batch hint) */
    bool paused;           /* reading stopped at the consumer's request */
    bool reading;          /* the socket is being watched for reading */
    bool cancelling;       /* the query is being cancelled: rows are dropped */
    bool cancel_timed_out; /* the cancel did not finish in time: the connection was closed */
    int cancel_code;       /* what the end reports: FW_ECANCELED or FW_ETIMEDOUT */
    char cancel_why[160];
    struct fw__cancel_s *cancel; /* the cancel connection in flight */
    fw_conn_t *cconn;            /* detached, waiting for the cancel connection to end */
    uint32_t cancel_timeout_ms, pause_timeout_ms, idle_timeout_ms;
    fw_pause_action_t pause_action;
    uint64_t last_rx; /* loop time of the last bytes received (idle timeout) */
    uv_timer_t nudge; /* wakes a sleeping consumer for a small batch (stream_wake.c) */
    int open_handles; /* wake, nudge, ctl, coal: the producer's reference goes with the last */
    bool nudge_armed;
    uint8_t nudge_ms;         /* the nudge's delay now: NUDGE_MS, longer in a steady flow */
    uint64_t nudge_fired_at;  /* uv_now when the nudge last fired, 0 never */
    uint64_t signaled_rows;  /* rows pushed when the consumer was last signalled */
    uint64_t signaled_bytes; /* and JSON bytes pushed then */
    bool drained;            /* the last read emptied the socket (and OpenSSL) */
    /* Coalesced reads in bulk (stream.c, coalesce_next): while the server sends fast, the
     * socket is not watched for readable and `coal` reads it every coal_us instead. */
    fw__ftimer_t coal;
    bool coalescing;
    uint64_t coal_us;      /* the coalescing interval the timer runs at */
    uint64_t coal_want;    /* ...and the one the measured rate asks for, smoothed */
    uint64_t coal_idle_ns; /* time of coalescing cycles in a row that brought (almost) nothing */
    uint64_t coal_t;       /* uv_hrtime at the end of the last coalescing cycle */
    uint64_t rx_total;     /* bytes received by this stream */
    uint64_t t_sent;       /* threaded: when its query went out (start_send); 0: embedded */
    uint64_t cycle_bytes;  /* ...since the socket was last emptied */
    uint64_t win_bytes;    /* ...since win_t (uv_hrtime): the rate that turns coalescing on */
    uint64_t win_t;
    uint64_t win_wakes; /* ...and the socket's wakes since win_t (bytes per wake) */
    int turn_skips;     /* the loop's turns this stream gave way to others in a row (stream.c) */
    bool turn_wake;     /* it gave way and its wake will bring it back (stream.c) */

    /* ---- producer -> a sleeping consumer (threaded mode) ---- */
    fw__park_t park; /* the consumer sleeps on it (park.h) */

    /* ---- metrics (lmetrics.h): the entity's series and what this stream added to them ---- */
    fw__lm_stream_t lm;

    /* ---- a parallel stream (parallel.c): set at start, read-only ---- */
    /* Whom the producer wakes: the stream itself, or the parallel stream a part belongs to
     * (whose park its consumer sleeps on; the part holds a reference to it). */
    fw_stream_t *wake_to;
    struct fw__par_s *par; /* this handle is a parallel stream: its parts are here */

    /* ---- consumer only ---- */
    int sticky; /* FW_END or the failure, once reported */
    /* The consumer's slow path, tested once per poll where the cancel flag alone was tested
     * before, so a parallel stream costs the ordinary one nothing per row: */
    uint8_t slow;
    uint64_t released_seen;
    /* A parallel stream: the part whose current chunk poll_row reads on its own, the rest of
     * that chunk having been counted in the part's streak (parallel.c, lend_chunk). */
    fw_stream_t *par_fast;
};
/* fw_stream_s.slow bits */
#define FW__SLOW_CANCEL 1u /* fw_stream_cancel was called: rows are no longer delivered */
#define FW__SLOW_PAR    2u /* a parallel stream: polls its parts (parallel.c) */

/* Receive slab size: large reads keep syscalls per megabyte low; one slab must fit the
 * connection's scratch buffer (conn->plain). */
#define FW__STREAM_SLAB ((size_t)64 * 1024)
/* Chunks in flight: 64 chunks of up to one slab each cover a 4 MiB budget. */
#define FW__STREAM_RING 64
/* Bytes of a reply read before its first rows are handed over (stream.c, receive). */
#define FW__STREAM_FIRST_READ ((size_t)4096)
/* Threaded mode: standard slabs held at most before the reads stall (fw__pipe_opts_t.soft_held),
 * when the budget is at least twice this. The consumer thread, woken at half of it
 * (fw__stream_notify), drains while the loop thread waits; without it the loop thread read up
 * to the ring's 64 chunks ahead of a consumer the scheduler ran late (over TLS one 8 KiB
 * record a chunk: 9 slabs, 576 KiB). A stall keeps coalescing (fw__stream_set_reading). */
#define FW__STREAM_SOFT_HELD ((size_t)256 * 1024)
/* Threaded mode: rows that wake a sleeping consumer at once (stream_wake.c, fw__stream_notify). */
#define FW__STREAM_WAKE_ROWS 1024

/* stream_start.c: what fw_stream_start hands to the loop thread, and what it gets back. */
typedef struct fw__stream_start_s {
    fw_conn_t *conn;
    const fw_query_t *q;
    fw_rows_ready_cb ready;
    void *ud;
    fw_stream_t *s; /* out */
    int rc;         /* out */
    fw_error_t *err;
    const fw__query_run_t *run; /* NULL, or a parallel part's additions (query.h) */
    fw_stream_t *wake_to;       /* NULL, or the parallel stream the part belongs to */
    /* fw_stream_start in threaded mode, run by fw__runtime_call: the query is sent once the
     * caller has been answered (stream_start.c, start_send); otherwise at once. */
    bool send_after_answer;
} fw__stream_start_t;
/* A stream handle with nothing started (stream_start.c): refs 1, the consumer's. */
fw_stream_t *fw__stream_alloc(void);
/* Loop thread (arg: fw__stream_start_t). */
void fw__stream_start_on_loop(void *arg);
/* Fills *err (when not NULL) with code, FW_PHASE_READY and msg. */
void fw__stream_set_err(fw_error_t *err, int code, const char *msg);
/* fw_pool_stream_start: fw_stream_free gives conn back to pool. Consumer thread, right after
 * the start. */
void fw__stream_release_to(fw_stream_t *s, fw_pool_t *pool, fw_conn_t *conn);
/* fw_stream_start, and fw_pool_stream_start's start: pool is the pool conn came from (a
 * parallel query takes its other parts' connections from it), or NULL. */
int fw__stream_start_pool(fw_pool_t *pool, fw_conn_t *conn, const fw_query_t *q,
                          fw_rows_ready_cb ready, void *ud, fw_stream_t **out, fw_error_t *err);
/* pool_sync.c, for a parallel stream from a pool: why the pool cannot give the parts of one
 * stream started on conn (not on conn's loop, closing: a code and a message in why, cap
 * bytes), or 0. */
int fw__pool_par_fits(const fw_pool_t *pool, const fw_conn_t *conn, char *why, size_t cap);
/* A connection to the server `like` (one of the pool's, handed out) is on: the parts of a
 * parallel stream import its snapshot. Threaded: fw_pool_acquire_wait's answers; embedded:
 * fw_pool_acquire's (cb from the loop), with the pool's acquire_timeout_ms. */
int fw__pool_acquire_wait_like(fw_pool_t *p, fw_pool_want_t want, unsigned timeout_ms,
                               const fw_conn_t *like, fw_conn_t **out, fw_error_t *err);
int fw__pool_acquire_like(fw_pool_t *p, const fw_conn_t *like, fw_pool_acquire_cb cb, void *ud);

/* Producer (stream.c), loop thread. */
void fw__stream_on_wake(uv_async_t *h);
void fw__stream_conn_gone(fw_stream_t *s, int code, const char *why);
int fw__stream_begin(fw_stream_t *s, fw_conn_t *c, int npre, bool simple);
void fw__stream_pump(fw_stream_t *s);
void fw__stream_set_reading(fw_stream_t *s);
/* Coalesced reads (stream_coal.c): the socket is empty, read again when it becomes readable or
 * at the next tick of the fine timer; returns whether the stream coalesces. */
bool fw__stream_coalesce_next(fw_stream_t *s);
/* Adds one to a statistic the loop thread alone writes (fw_stream_stats reads it). */
void fw__stream_count(_Atomic uint64_t *c);
/* Consumer, finding nothing to take: a producer stalled at the read-ahead limit goes on (once
 * per stall), since the consumer then holds what it took and is not behind
 * (fw__stream_on_wake). A parallel stream asks each of its parts (fw__par_soft_nudge). */
void fw__stream_soft_nudge(fw_stream_t *s);
void fw__par_soft_nudge(fw_stream_t *s);
/* A stall while coalescing: the timer disarmed, and armed again at its end. */
void fw__stream_coal_hold(fw_stream_t *s);
void fw__stream_coal_resume(fw_stream_t *s);
/* Back to reading on every socket event (no-op when not coalescing). */
void fw__stream_coal_leave(fw_stream_t *s);
/* The coalescing state of a stream that begins. */
void fw__stream_coal_init(fw_stream_t *s);
void fw__stream_unstall(fw_stream_t *s);
void fw__stream_finish(fw_stream_t *s);
/* stream_ctl.c, loop thread */
void fw__stream_control(fw_stream_t *s);
void fw__stream_ctl_begin(fw_stream_t *s);
void fw__stream_start_cancel(fw_stream_t *s, int code, const char *why);
/* What the connection calls when it fails or closes under a query (conn.h). */
extern const fw__conn_hooks_t fw__stream_conn_hooks;
void fw__stream_unref(fw_stream_t *s);
/* parallel.c: frees what a parallel stream owns besides the handle (its last owner left). */
void fw__par_destroy(struct fw__par_s *p);
/* parallel.c, the consumer: the parallel stream's poll (a row or a chunk), stats, control. */
/* pool: fw_pool_stream_start's pool (conn is one of its connections), or NULL */
int fw__par_start(fw_pool_t *pool, fw_conn_t *conn, const fw_query_t *q, fw_rows_ready_cb ready,
                  void *ud, fw_stream_t **out, fw_error_t *err);
int fw__par_poll(fw_stream_t *s, fw_row_t *row, fw_chunk_t **chunk);
/* stream_api.c: fw_stream_try_next without its argument checks (a parallel stream's parts). */
int fw__stream_poll_row(fw_stream_t *s, fw_row_t *row);
void fw__par_stats(const fw_stream_t *s, fw_stream_stats_t *out);
int fw__par_pause(fw_stream_t *s, bool pause);
int fw__par_cancel(fw_stream_t *s);
void fw__par_free(fw_stream_t *s);
void fw__par_chunk_release(fw_stream_t *s, fw_chunk_t *chunk);
/* stream_api.c, the consumer: fw_stream_cancel in two halves (request: false when the stream
 * had already ended; end: what cancel returns, once `final` is set), and its waiting loop
 * (spin, then sleep on s's park word until `poll` gives something but FW_AGAIN). */
bool fw__stream_cancel_request(fw_stream_t *s);
int fw__stream_cancel_end(fw_stream_t *s);
int fw__stream_wait(fw_stream_t *s, int timeout_ms, int (*poll)(fw_stream_t *, void *), void *arg);
/* stream_wake.c, loop thread: tells the consumer rows (or the end) are there; `now` skips the
 * threaded mode's batching. May run user code (embedded mode). */
void fw__stream_wake_pending(fw_stream_t *s);
void fw__stream_notify(fw_stream_t *s, bool now);
/* stream_lm.c: after rows were queued (producer), and the end of the query (producer, once). */
void fw__stream_lm_after_push(fw_stream_t *s);
void fw__stream_lm_end(fw_stream_t *s, int final);
/* Brings the shared counters and gauges up to date with the stream's statistics; `final`
 * withdraws its share of the gauges (its last owner is leaving). Thread: the producer, or the
 * consumer once the producer has ended. */
void fw__stream_lm_sync(fw_stream_t *s, bool final);
/* The chunk hook of the pipe (fw__pipe_opts_t.on_release): per-chunk histograms (consumer). */
void fw__stream_lm_chunk(void *ud, const fw__chunk_t *c);
/* The consumer's batched per-chunk samples into the shared histograms. */
void fw__stream_lm_merge_chunks(fw_stream_t *s);

#endif /* FW_STREAM_INT_H */
