/* SPDX-License-Identifier: MIT */
/* fwire serve: what serve_stream.c and serve_pool.c share (serve.h has the rest). */
#ifndef FWIRE_SERVE_STREAM_H
#define FWIRE_SERVE_STREAM_H

#include "serve.h"

/* serve_pool.c */
/* Hands idle connections to waiting streams, opening connections as needed. */
void gw_pool_dispatch(gw_server_t *srv);
/* A stream is done with its connection: idle again when `usable`, else closed. */
void gw_pg_release(gw_pg_t *pg, bool usable);
/* Closes a connection whatever its state; its slot reopens on demand. */
void gw_pg_discard(gw_pg_t *pg);

/* serve_stream.c */
/* Runs the head of the queue on `pg` (dequeues it). */
void gw_stream_assign(gw_stream_t *s, gw_pg_t *pg);
/* Fails a queued stream with a connection error (dequeues and frees it). */
void gw_stream_fail_queued(gw_stream_t *s, int code, const fw_error_t *err);

/* serve_sink.c */
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

#endif /* FWIRE_SERVE_STREAM_H */
