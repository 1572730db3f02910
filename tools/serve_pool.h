/* SPDX-License-Identifier: MIT */
/* fwire serve: the PostgreSQL pool (serve_pool.c, which also writes the gateway's /metrics lines).
 */
#ifndef FWIRE_SERVE_POOL_H
#define FWIRE_SERVE_POOL_H

#include <fwire.h>
#include <stdbool.h>
#include <stdint.h>

#include "serve_json.h"

typedef struct gw_server_s gw_server_t;
typedef struct gw_client_s gw_client_t;
typedef struct gw_stream_s gw_stream_t;
typedef struct gw_pg_s gw_pg_t;

/* A PostgreSQL connection of fw_pool_t held by one stream (from the acquire to the release). */
struct gw_pg_s {
    gw_server_t *srv;
    fw_conn_t *conn;
    /* Connections this stream counts for: 1, or the parts of a parallel stream (--parallel),
     * which fwire acquires from the pool itself and gives back at fw_stream_free. */
    uint32_t weight;
    /* fw_pool_stream_start took conn: fw_stream_free (or its failed start) gives it back */
    bool stream_owned;
};

/* Creates the fw_pool_t of --dsn (nothing connects yet). Returns 0, or a negative fwire code
 * with the reason in errbuf (a bad --dsn). */
int gw_pool_init(gw_server_t *srv, char *errbuf, size_t errlen);
/* Closes the pool (end of a graceful stop): connections still held close when released. */
void gw_pool_close(gw_server_t *srv);
/* The pool is gone (fw_pool_close's callback ran). */
bool gw_pool_closed(const gw_server_t *srv);
/* The readiness probe, from the tick timer. */
void gw_pool_tick(gw_server_t *srv, uint64_t now);
/* /readyz: whether PostgreSQL answered recently; else false and the reason in why. */
bool gw_ready(const gw_server_t *srv, char *why, size_t len);
/* Appends the gateway's metric lines. */
void gw_streams_metrics(const gw_server_t *srv, gwbuf_t *b);
bool gw_entity_allowed(const gw_server_t *srv, const char *entity);
/* The parts a parallel stream of s may run on now, from 1 to `want`: the room left under
 * --pool-size (streams held, acquires pending, the probe) and under the client's share
 * (--max-pool-per-connection), counting the connection s already holds. Never waits for more. */
uint32_t gw_pool_parts(const gw_server_t *srv, const gw_stream_t *s, uint32_t want);
/* Asks the pool for connections for the streams that wait and may take one. */
void gw_pool_dispatch(gw_server_t *srv);
/* A stream is done with its connection: back to the pool, which drains it first when its
 * stream was cancelled and closes it when it broke (`usable`: what the stream saw). Frees pg. */
void gw_pg_release(gw_pg_t *pg, bool usable);
/* The same for a connection found unusable before its stream started. */
void gw_pg_discard(gw_pg_t *pg);

#endif /* FWIRE_SERVE_POOL_H */
