/* SPDX-License-Identifier: MIT */
/* fwire serve: the streams (serve_stream.c: registry, batches, progress, cancel, pause, timeouts).
 */
#ifndef FWIRE_SERVE_STREAM_H
#define FWIRE_SERVE_STREAM_H

#include <fwire.h>
#include <stdbool.h>
#include <stdint.h>

#include "serve_config.h"
#include "serve_json.h"
#include "serve_req.h"

typedef struct gw_server_s gw_server_t;
typedef struct gw_client_s gw_client_t;
typedef struct gw_stream_s gw_stream_t;
typedef struct gw_pg_s gw_pg_t;

typedef enum gw_phase_e {
    GW_PHASE_QUEUED = 0, /* waiting for a PostgreSQL connection */
    GW_PHASE_EXPLAIN,    /* running EXPLAIN for the estimate */
    GW_PHASE_RUNNING,    /* streaming */
    GW_PHASE_DONE
} gw_phase_t;

typedef enum gw_end_reason_e {
    GW_END_NONE = 0,
    GW_END_CLIENT,    /* cancel_query */
    GW_END_GONE,      /* the client disconnected */
    GW_END_TIMEOUT,   /* max-query-seconds */
    GW_END_ABANDONED, /* paused longer than abandon-seconds */
    GW_END_SHUTDOWN   /* SIGINT / SIGTERM */
} gw_end_reason_t;

struct gw_stream_s {
    gw_server_t *srv;
    gw_client_t *client;        /* NULL once the client is gone (the stream is being cancelled) */
    gw_client_t *client_at_end; /* stream_free: its client, for the drain's check (transient) */
    gw_stream_t *cprev, *cnext; /* the client's streams */
    gw_stream_t *sprev, *snext; /* the server's registry */
    gw_stream_t *qnext;         /* the wait queue */
    bool queued;
    char id[37]; /* uuid v4 */
    char *request_id;
    char *entity;
    gw_phase_t phase;
    gw_end_reason_t end_reason;
    bool ending;          /* its last message is being sent: no cancel may start now */
    uint64_t cancel_ms;   /* when the cancel was asked for (end_reason set) */
    uint64_t resume_pass; /* the client's resume walk that last visited it */
    bool client_paused;
    bool fw_paused; /* fw_stream_pause is in effect */
    uint64_t paused_at_ms;
    uint64_t paused_total_ms; /* client pauses before the current one, summed (abandon) */
    fw_query_t *q;
    fw_stream_t *fs;
    gw_pg_t *pg;
    int64_t limit;
    int64_t estimate; /* -1 unknown */
    const gw_parallel_t *par; /* --parallel of its entity, when the request can be split */
    uint32_t batch_size;
    /* counters */
    uint64_t start_ms; /* when the request arrived */
    double run_start;  /* when the query started streaming (seconds) */
    uint64_t rows;     /* rows taken from fwire and sent (or queued to send) */
    uint64_t batches;
    uint64_t last_progress_ms;
    /* the open batch */
    gwbuf_t batch;
    uint32_t batch_rows;
    uint64_t batch_opened_ms;
};

/* Starts a stream for a validated request on client c (WebSocket or NDJSON). Errors are sent
 * to the client. */
void gw_stream_request(gw_client_t *c, const gw_request_t *req);
void gw_stream_control(gw_client_t *c, const gw_request_t *req);
/* Takes rows again after the client drained (watermarks). */
void gw_stream_resume_bp(gw_stream_t *s);
void gw_stream_pause_bp(gw_stream_t *s);
/* The client is going away: every stream of it is cancelled and detached. */
void gw_streams_detach(gw_client_t *c);
/* Every stream is cancelled (graceful stop). */
void gw_streams_shutdown(gw_server_t *srv);
/* Progress, batch linger, timeouts, abandonment. */
void gw_streams_tick(gw_server_t *srv, uint64_t now);
/* Frees ended streams (never while an iteration over the registry runs). */
void gw_streams_reap(gw_server_t *srv);

/* Runs the head of the queue on `pg` (dequeues it). */
void gw_stream_assign(gw_stream_t *s, gw_pg_t *pg);
/* Fails a queued stream with a connection error (dequeues and frees it). */
void gw_stream_fail_queued(gw_stream_t *s, int code, const fw_error_t *err);

#endif /* FWIRE_SERVE_STREAM_H */
