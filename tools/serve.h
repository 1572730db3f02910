/* SPDX-License-Identifier: MIT */
/*
 * fwire serve: a gateway that streams the data column of allowlisted views to browsers over
 * WebSocket (and to curl as chunked NDJSON), on one libuv loop with fwire in embedded mode.
 * docs/gateway.md is the protocol and the operator's guide. Files:
 *   serve.c         entry point, the loop, signals, graceful stop, the tick timer
 *   serve_config.c  flags and --config FILE
 *   serve_http.c    listener, HTTP/1.1 requests (http-parser), static files, /metrics, /healthz,
 *                   GET /stream NDJSON, client output and its watermarks
 *   serve_ws.c      the WebSocket handshake and framing (wslay), client messages
 *   serve_stream.c  the registry of streams, batches, progress, cancel, pause, timeouts,
 *                   backpressure
 *   serve_sink.c    where a stream's messages go: WebSocket JSON or chunked NDJSON
 *   serve_pool.c    connections from fw_pool_t for the streams, the readiness probe
 *                   (/readyz) and the gateway's /metrics lines
 *   serve_tls.c     TLS of its own (--tls-cert): OpenSSL memory BIOs under HTTP/WebSocket
 *   serve_req.c     client messages validated into queries (pure); serve_json.c the JSON parser
 * Each file has its header (serve_X.h for serve_X.c) with the struct it owns: gw_config_t,
 * gw_client_t (serve_http.h) with its gw_ws_t and gw_tls_t, gw_stream_t, gw_pg_t; this one has
 * the server, gw_server_t, and includes the others.
 * Everything runs on the loop thread; nothing here is shared with another thread.
 */
#ifndef FWIRE_SERVE_H
#define FWIRE_SERVE_H

#include <fwire.h>

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "serve_config.h"
#include "serve_http.h"
#include "serve_json.h"
#include "serve_pool.h"
#include "serve_req.h"
#include "serve_sink.h"
#include "serve_stream.h"
#include "serve_tls.h"
#include "serve_ws.h"

typedef struct gw_counters_s {
    uint64_t connections_total;
    uint64_t connections_rejected_total;
    uint64_t ws_connections_total;
    uint64_t http_requests_total;
    uint64_t streams_started_total;
    uint64_t streams_completed_total;
    uint64_t streams_failed_total;
    uint64_t streams_cancelled_total;
    uint64_t streams_timeout_total;
    uint64_t streams_rejected_total;
    uint64_t backpressure_pauses_total;
    uint64_t rows_sent_total;
    uint64_t batches_sent_total;
    uint64_t bytes_queued_total;
    uint64_t messages_received_total;
    uint64_t bad_messages_total;
    uint64_t auth_failures_total;
    uint64_t pg_acquires_total;
    uint64_t pg_acquire_failures_total;
    uint64_t parallel_streams_total;
    uint64_t parallel_parts_total;
} gw_counters_t;

struct gw_server_s {
    uv_loop_t *loop;
    gw_config_t cfg;
    uv_tcp_t listener;
    bool listening;
    uv_timer_t tick;
    uv_signal_t sigint, sigterm, sighup;
    struct ssl_ctx_st *tls_ctx; /* --tls-cert: every new client is TLS */
    gw_client_t *clients;
    uint32_t nclients;
    uint32_t nprobe; /* clients in probe slots (counted in nclients too) */
    uint64_t next_client_id;
    gw_stream_t *streams;
    uint32_t nstreams;
    gw_stream_t *queue_head, *queue_tail;
    gw_stream_t *graveyard; /* ended streams, freed by gw_streams_reap */
    uint32_t nqueued;
    fw_pool_t *fwpool;    /* NULL once closed */
    uint32_t pg_held;     /* connections held by streams (a parallel one's parts included) */
    uint32_t pg_pending;  /* acquires asked for streams, not yet answered */
    /* readiness (serve_pool.c): the last proof that PostgreSQL answers, and whether an
     * acquire or the probe failed since */
    uint64_t ready_ok_ms;
    bool ready_failed;
    char ready_reason[320];
    bool probe_busy;
    uint64_t probe_ms; /* when the last probe started */
    fw_conn_t *probe_conn;
    fw_stream_t *probe_fs;
    /* SIGTERM with --drain-seconds: no new streams, running ones may finish until then */
    bool draining;
    uint64_t drain_deadline_ms;
    bool stopping;
    uint64_t stop_deadline_ms;
    bool pool_closed; /* fw_pool_close was called */
    gw_counters_t c;
    uint8_t token_hash[32];
};

/* serve.c */
uint64_t gw_now_ms(const gw_server_t *srv);
/* Milliseconds from `then` to `now`, 0 when `then` is later: the tick reads the clock once, and
 * what it does (a ping, a cancel) may stamp a later time on the very thing it checks next. */
static inline uint64_t gw_elapsed(uint64_t now, uint64_t then)
{
    return now > then ? now - then : 0;
}
double gw_now_seconds(void);
void gw_log(const gw_server_t *srv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Checks whether a graceful stop has finished, and ends the loop's handles if so. */
void gw_maybe_finish_stop(gw_server_t *srv);
/* Draining: a client whose last stream ended is closed (1001 for a WebSocket). */
void gw_drain_client_done(gw_client_t *c);

#endif /* FWIRE_SERVE_H */
