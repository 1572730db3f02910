/* SPDX-License-Identifier: MIT */
/* fwire serve: the PostgreSQL pool (serve_pool.c, which also writes the gateway's /metrics lines).
 */
#ifndef FWIRE_SERVE_POOL_H
#define FWIRE_SERVE_POOL_H

#include <fwire.h>
#include <stdbool.h>

#include "serve_json.h"

typedef struct gw_server_s gw_server_t;
typedef struct gw_client_s gw_client_t;
typedef struct gw_stream_s gw_stream_t;
typedef struct gw_pg_s gw_pg_t;

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

int gw_pool_init(gw_server_t *srv);
/* serve_stream.c */
/* Closes every pooled connection (end of a graceful stop). */
void gw_pool_close(gw_server_t *srv);
bool gw_pool_closed(const gw_server_t *srv);
/* Appends the gateway's metric lines. */
void gw_streams_metrics(const gw_server_t *srv, gwbuf_t *b);
bool gw_entity_allowed(const gw_server_t *srv, const char *entity);
/* Hands idle connections to waiting streams, opening connections as needed. */
void gw_pool_dispatch(gw_server_t *srv);
/* A stream is done with its connection: idle again when `usable`, else closed. */
void gw_pg_release(gw_pg_t *pg, bool usable);
/* Closes a connection whatever its state; its slot reopens on demand. */
void gw_pg_discard(gw_pg_t *pg);

#endif /* FWIRE_SERVE_POOL_H */
