/* SPDX-License-Identifier: MIT */
/* fwire serve: a client connection (serve_http.c: listener, HTTP requests, output and watermarks).
 */
#ifndef FWIRE_SERVE_HTTP_H
#define FWIRE_SERVE_HTTP_H

#include <http_parser.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "serve_json.h"
#include "serve_tls.h"
#include "serve_ws.h"

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
    bool closing;   /* close once the output is written */
    bool closed;    /* uv_close called */
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
    bool dup_header;    /* a header that may appear once appeared twice (Host, ...): 400 */
    gw_ws_t ws;         /* WebSocket: serve_ws.h */
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
    gw_tls_t tls; /* TLS: serve_tls.h (tls.ssl NULL for a plaintext client) */
};

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

#endif /* FWIRE_SERVE_HTTP_H */
