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
 *                   backpressure (serve_stream.h: what it shares with the two below)
 *   serve_sink.c    where a stream's messages go: WebSocket JSON or chunked NDJSON
 *   serve_pool.c    the PostgreSQL pool and the gateway's /metrics lines
 *   serve_tls.c     TLS of its own (--tls-cert): OpenSSL memory BIOs under HTTP/WebSocket
 *   serve_req.c     client messages validated into queries (pure); serve_json.c the JSON parser
 * Everything runs on the loop thread; nothing here is shared with another thread.
 */
#ifndef FWIRE_SERVE_H
#define FWIRE_SERVE_H

#include <fwire.h>

#include <http_parser.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>
#include <wslay/wslay.h>

#include "serve_json.h"
#include "serve_req.h"

typedef struct gw_config_s {
    char *listen_host;
    int listen_port;
    char *dsn; /* NULL: PG* environment and defaults */
    char **allow;
    size_t nallow;
    char *token;    /* NULL: no token */
    char **origins; /* allowed Origin values of /ws besides the same origin; "*" any */
    size_t norigins;
    char **hosts; /* allowed Host values besides loopback and the listen address; "*" any */
    size_t nhosts;
    uint32_t max_connections;
    uint32_t max_connections_per_address; /* by client IP address */
    uint32_t max_handshakes_per_address;  /* of those, requests not yet complete */
    uint32_t max_pool_per_connection;     /* PostgreSQL connections one client may hold */
    uint32_t max_streams_per_connection;
    uint32_t max_concurrent_streams;
    uint32_t max_query_seconds;
    uint32_t max_frame_bytes;
    uint32_t batch_size;
    uint32_t progress_ms;
    uint32_t pool_size;
    uint32_t abandon_seconds;
    uint32_t ws_ping_seconds; /* 0: no pings, no idle timeout */
    size_t stream_budget;
    size_t high_watermark;
    size_t low_watermark;
    char *tls_cert; /* PEM chain: serve https/wss (with tls_key) */
    char *tls_key;
    char *tls_client_ca; /* require client certificates signed by these CAs */
    bool insecure_listen; /* a token over plaintext off loopback, knowingly */
    bool verbose;
} gw_config_t;

/* serve_config.c. Returns -1 to go on, or an exit code (help printed: EXIT_OK). */
int gw_config_load(gw_config_t *cfg, int argc, char **argv);
void gw_config_free(gw_config_t *cfg);
void gw_config_usage(FILE *f);

typedef struct gw_server_s gw_server_t;
typedef struct gw_client_s gw_client_t;
typedef struct gw_stream_s gw_stream_t;
typedef struct gw_pg_s gw_pg_t;

typedef enum gw_client_mode_e {
    GW_CLIENT_HTTP = 0, /* reading a request */
    GW_CLIENT_RESPONSE, /* a plain response is being written; close when written */
    GW_CLIENT_WS,       /* a WebSocket */
    GW_CLIENT_NDJSON    /* GET /stream: chunked NDJSON of one stream */
} gw_client_mode_t;

#define GW_URL_MAX    4096
#define GW_HEADER_MAX 1024

struct gw_client_s {
    gw_server_t *srv;
    gw_client_t *prev, *next;
    uv_tcp_t tcp;
    uint64_t id;
    gw_client_mode_t mode;
    uint64_t accepted_ms;
    uint8_t peer[16]; /* the client's IP address (IPv4 in the first 4 bytes) */
    uint8_t peer_len; /* 4, 16, or 0 when unknown */
    /* admitted over a limit (--max-connections or per address) into one of the few probe
     * slots: only /healthz and /readyz are answered */
    bool probe_only;
    bool line_done; /* the request line is in */
    bool closing; /* close once the output is written */
    bool closed;  /* uv_close called */
    bool reading;
    bool ndjson_started; /* NDJSON: the 200 and its headers are out */
    /* HTTP request */
    http_parser parser;
    size_t request_bytes;
    bool message_done;
    bool header_too_big;
    int header_state; /* 0 none, 1 in a field, 2 in a value */
    char field[64];
    size_t field_len;
    char *value_dst; /* the buffer of the header being read, or NULL (not kept) */
    size_t value_cap, *value_len;
    char url[GW_URL_MAX];
    size_t url_len;
    char h_upgrade[64], h_connection[128], h_key[64], h_version[8], h_auth[GW_HEADER_MAX];
    char h_host[256], h_origin[256];
    size_t l_upgrade, l_connection, l_key, l_version, l_auth, l_host, l_origin;
    uint32_t seen_once; /* which of the kept headers were seen */
    bool dup_header; /* a header that may appear once appeared twice (Host, ...): 400 */
    /* WebSocket */
    wslay_event_context_ptr ws;
    const uint8_t *in;
    size_t in_len;
    /* a close frame waiting for the queued messages: wslay sends control frames first, so a
     * close queued at once would overtake (and drop) the messages before it */
    bool close_pending;
    uint16_t close_code;
    char close_reason[64];
    /* the frame-header scanner (serve_ws.c): checks each header before wslay sees it */
    uint8_t fh[14];
    uint8_t fh_len;
    uint64_t f_left;     /* payload bytes of the current frame not yet seen */
    uint64_t f_msg_len;  /* bytes of the data message being received (fragments summed) */
    uint16_t f_fail;     /* a close code: a header was refused, nothing more goes to wslay */
    /* input not yet given to wslay while too many messages wait to be sent (ping floods) */
    uint8_t *held;
    size_t held_len;
    bool in_blocked; /* reading stopped until the queue drains (held may be empty) */
    uint64_t last_recv_ms; /* WebSocket: when bytes last arrived (pongs included) */
    bool ping_sent;        /* a ping went out since then */
    /* output */
    gwbuf_t wbuf;           /* WebSocket frames being gathered for one write */
    size_t inflight;        /* bytes handed to uv_write and not yet written */
    uint64_t last_write_ms; /* when a write last completed (or began, from idle) */
    bool bp_paused;         /* over the high watermark: its streams are paused */
    uint64_t resume_pass;   /* numbers the resume walks of gw_client_check_watermarks */
    /* streams of this client */
    gw_stream_t *streams;
    uint32_t nstreams;
    uint64_t next_stream_no;
    /* TLS (serve_tls.c): NULL for a plaintext client */
    struct ssl_st *ssl;
    struct bio_st *tls_in, *tls_out; /* owned by ssl */
    bool tls_pumping;
};

typedef enum gw_pg_state_e {
    GW_PG_EMPTY = 0,
    GW_PG_CONNECTING,
    GW_PG_IDLE,
    GW_PG_BUSY,
    GW_PG_CLOSING
} gw_pg_state_t;

struct gw_pg_s {
    gw_server_t *srv;
    fw_conn_t *conn;
    gw_pg_state_t state;
    gw_stream_t *stream; /* BUSY: the stream using it */
};

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
    uint64_t pg_connects_total;
    uint64_t pg_connect_failures_total;
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
    bool pg_down;    /* the last PostgreSQL connection attempt failed (/readyz) */
    uint64_t next_client_id;
    gw_stream_t *streams;
    uint32_t nstreams;
    gw_stream_t *queue_head, *queue_tail;
    gw_stream_t *graveyard; /* ended streams, freed by gw_streams_reap */
    uint32_t nqueued;
    gw_pg_t *pool;
    bool stopping;
    uint64_t stop_deadline_ms;
    bool pool_closed;
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

/* serve_http.c */
int gw_http_listen(gw_server_t *srv);
void gw_http_stop_listening(gw_server_t *srv);
/* Copies bytes into a write request; false when the client is closed or memory ran out. */
bool gw_client_write(gw_client_t *c, const void *data, size_t len);
/* Bytes accepted for this client and not yet written to its socket. */
size_t gw_client_pending(const gw_client_t *c);
/* Pauses or resumes the client's streams on its watermarks (call after queueing output). */
void gw_client_check_watermarks(gw_client_t *c);
/* Only the pausing half of it: called wherever output is queued. */
void gw_client_check_high(gw_client_t *c);
void gw_client_start_reading(gw_client_t *c);
/* Closes the connection now (streams detached and cancelled). */
void gw_client_close(gw_client_t *c);
/* Closes once the queued output is written. */
void gw_client_close_when_flushed(gw_client_t *c);
/* Called by the tick timer: request deadlines. */
void gw_http_tick(gw_server_t *srv, uint64_t now);
/* The constant-time token check; true when no token is configured. */
bool gw_token_ok(const gw_server_t *srv, const char *tok, size_t len);
void gw_metrics_respond(gw_client_t *c);
/* A complete error response (JSON body as a query_error message); closes when written. */
void gw_http_error(gw_client_t *c, int status, const char *code, const char *sqlstate,
                   const char *message);

/* Bytes onto the socket as they are (TLS records, or plaintext): one uv_write. */
bool gw_client_raw_write(gw_client_t *c, const void *data, size_t len);
/* Bytes read from a client (decrypted if TLS) to its current layer: HTTP, WebSocket, ... */
void gw_client_dispatch(gw_client_t *c, const uint8_t *data, size_t len);

/* serve_tls.c */
/* Loads --tls-cert/--tls-key (and --tls-client-ca) into a new context; the old one is kept
 * when this fails (-1, the reason on stderr). Nothing to do without --tls-cert. */
int gw_tls_load(gw_server_t *srv);
void gw_tls_unload(gw_server_t *srv);
int gw_tls_client_init(gw_client_t *c);
void gw_tls_client_free(gw_client_t *c);
/* Ciphertext read from the socket. */
void gw_tls_on_read(gw_client_t *c, const uint8_t *data, size_t len);
/* Handles records already inside OpenSSL (call when reading restarts). */
void gw_tls_pump(gw_client_t *c);
/* Encrypts and writes; false when the client was closed. */
bool gw_tls_write(gw_client_t *c, const void *data, size_t len);
/* Queues close_notify (once). */
void gw_tls_shutdown(gw_client_t *c);

/* serve_ws.c */
/* Completes the handshake of an upgrade request; `rest` are bytes after the request. */
void gw_ws_accept(gw_client_t *c, const uint8_t *rest, size_t rest_len);
void gw_ws_on_read(gw_client_t *c, const uint8_t *data, size_t len);
/* After output was written: feeds held input again once the send queue has drained. */
void gw_ws_input_resume(gw_client_t *c);
/* Queues a text message; false when it could not be queued. */
bool gw_ws_send(gw_client_t *c, const char *text, size_t len);
/* Writes what wslay has queued, as far as the output cap allows. */
void gw_ws_flush(gw_client_t *c);
/* Sends a close frame (code, reason) and closes once it is written. */
void gw_ws_close(gw_client_t *c, uint16_t code, const char *reason);
void gw_ws_free(gw_client_t *c);
/* Whether a comma-separated header value holds `token` (case-insensitive). */
bool gw_header_has_token(const char *list, const char *token);
/* Called by the tick timer: pings an idle WebSocket, closes a silent one. */
void gw_ws_tick(gw_client_t *c, uint64_t now);
/* A query_error message to a WebSocket or, for NDJSON, an error line. */
void gw_send_error(gw_client_t *c, const char *request_id, const char *stream_id, const char *code,
                   const char *sqlstate, const char *message);

/* serve_stream.c */
int gw_pool_init(gw_server_t *srv);
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
/* Closes every pooled connection (end of a graceful stop). */
void gw_pool_close(gw_server_t *srv);
bool gw_pool_closed(const gw_server_t *srv);
/* Appends the gateway's metric lines. */
void gw_streams_metrics(const gw_server_t *srv, gwbuf_t *b);
bool gw_entity_allowed(const gw_server_t *srv, const char *entity);

#endif /* FWIRE_SERVE_H */
