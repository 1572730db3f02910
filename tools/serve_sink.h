/* SPDX-License-Identifier: MIT */
/* fwire serve: where a stream's messages go (serve_sink.c: WebSocket JSON or chunked NDJSON). */
#ifndef FWIRE_SERVE_SINK_H
#define FWIRE_SERVE_SINK_H

#include <stdbool.h>
#include <stddef.h>

#include "serve_json.h"

typedef struct gw_server_s gw_server_t;
typedef struct gw_client_s gw_client_t;
typedef struct gw_stream_s gw_stream_t;
typedef struct gw_pg_s gw_pg_t;

/* A random (version 4) UUID, NUL-terminated, into out. */
void gw_uuid_v4(char out[37]);
/* The stream's client is a WebSocket / a GET /stream (false once the client is gone). */
bool gw_sink_is_ws(const gw_stream_t *s);
bool gw_sink_is_ndjson(const gw_stream_t *s);
/* Sends the message built in b to a WebSocket client (nothing for others) and frees b. */
void gw_sink_send(gw_stream_t *s, gwbuf_t *b);
/* NDJSON: the 200 and its headers (once), then chunks of rows. */
void gw_ndjson_begin(gw_client_t *c);
void gw_ndjson_chunk(gw_client_t *c, const char *data, size_t len);
/* An error to the stream's client, whatever kind it is (see the file comment). */
void gw_sink_error(gw_stream_t *s, const char *code, const char *sqlstate, const char *msg);

#endif /* FWIRE_SERVE_SINK_H */
