/* SPDX-License-Identifier: MIT */
/*
 * fwire serve: the PostgreSQL pool and the gateway's metrics.
 *
 * --pool-size connections, opened when a query needs one and kept for the next; a query that
 * finds every connection busy waits in a FIFO queue, bounded because every stream, waiting or
 * not, counts against --max-concurrent-streams. A connection that fwire reports as unusable
 * (closed, protocol error, a cancel that timed out) is closed and its slot reopened on demand.
 */
#include "serve.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int gw_pool_init(gw_server_t *srv)
{
    srv->pool = calloc(srv->cfg.pool_size, sizeof(*srv->pool));
    if (srv->pool == NULL)
        return -1;
    for (uint32_t i = 0; i < srv->cfg.pool_size; i++)
        srv->pool[i].srv = srv;
    return 0;
}

bool gw_entity_allowed(const gw_server_t *srv, const char *entity)
{
    for (size_t i = 0; i < srv->cfg.nallow; i++)
        if (strcmp(srv->cfg.allow[i], entity) == 0)
            return true;
    return false;
}

static void on_pg_closed(fw_conn_t *conn, void *ud)
{
    (void)conn;
    gw_pg_t *pg = ud;
    gw_server_t *srv = pg->srv;
    pg->conn = NULL;
    pg->state = GW_PG_EMPTY;
    /* The slot is free: a stream may be waiting for exactly this one (a pool of one whose
     * connection died while idle, found out when a query tried to use it). */
    if (!srv->stopping)
        gw_pool_dispatch(srv);
    gw_maybe_finish_stop(srv);
}

void gw_pg_discard(gw_pg_t *pg)
{
    pg->stream = NULL;
    if (pg->conn == NULL || pg->state == GW_PG_CLOSING) {
        if (pg->conn == NULL)
            pg->state = GW_PG_EMPTY;
        return;
    }
    pg->state = GW_PG_CLOSING;
    fw_conn_close(pg->conn, on_pg_closed, pg);
}

void gw_pg_release(gw_pg_t *pg, bool usable)
{
    pg->stream = NULL;
    if (!usable || pg->srv->stopping) {
        gw_pg_discard(pg);
        return;
    }
    pg->state = GW_PG_IDLE;
}

static void on_pg_connected(fw_conn_t *conn, int status, const fw_error_t *err, void *ud)
{
    (void)conn;
    gw_pg_t *pg = ud;
    gw_server_t *srv = pg->srv;
    if (pg->state == GW_PG_CLOSING)
        return; /* closed by the pool while connecting: on_pg_closed follows */
    if (status < 0) {
        srv->c.pg_connect_failures_total++;
        srv->pg_down = true;
        fprintf(stderr, "fwire serve: PostgreSQL connection failed: %s\n",
                err != NULL && err->message[0] ? err->message : fw_strerror(status));
        gw_pg_discard(pg);
        /* the first waiting query learns why, so a dead database fails requests quickly
         * instead of queueing them until their timeout */
        gw_stream_t *s = srv->queue_head;
        if (s != NULL && !srv->stopping)
            gw_stream_fail_queued(s, status, err);
        gw_pool_dispatch(srv);
        return;
    }
    fw_conn_info_t info;
    if (fw_conn_info(conn, &info) == 0)
        gw_log(srv, "PostgreSQL connection open: pid %d, %s %s", (int)info.backend_pid,
               info.transport, info.address);
    pg->state = GW_PG_IDLE;
    srv->pg_down = false;
    gw_pool_dispatch(srv);
}

static int pg_connect(gw_pg_t *pg)
{
    gw_server_t *srv = pg->srv;
    fw_conn_opts_t opts;
    fw_conn_opts_init(&opts);
    opts.conninfo = srv->cfg.dsn;
    fw_error_t err;
    memset(&err, 0, sizeof(err));
    srv->c.pg_connects_total++;
    int rc = fw_conn_new(&pg->conn, srv->loop, &opts, &err);
    if (rc == 0) {
        pg->state = GW_PG_CONNECTING;
        rc = fw_conn_connect(pg->conn, on_pg_connected, pg);
        if (rc < 0) {
            fw_conn_close(pg->conn, NULL, NULL);
            pg->conn = NULL;
        }
    }
    if (rc < 0) {
        pg->conn = NULL;
        pg->state = GW_PG_EMPTY;
        srv->c.pg_connect_failures_total++;
        if (srv->queue_head != NULL)
            gw_stream_fail_queued(srv->queue_head, rc, &err);
        return -1;
    }
    return 0;
}

/* Fair sharing: a client holds at most --max-pool-per-connection connections (by default
 * half the pool), so one client's paused or slow streams cannot hold the whole pool while
 * another client's stream waits; its further streams wait in the queue without blocking the
 * streams behind them. A stream whose client left holds on only until its cancel is confirmed. */
static bool may_take(const gw_server_t *srv, const gw_stream_t *s)
{
    const gw_client_t *c = s->client;
    if (c == NULL)
        return true;
    uint32_t held = 0;
    for (const gw_stream_t *o = c->streams; o != NULL; o = o->cnext)
        held += o->pg != NULL;
    return held < srv->cfg.max_pool_per_connection;
}

void gw_pool_dispatch(gw_server_t *srv)
{
    while (srv->queue_head != NULL && !srv->stopping) {
        gw_stream_t *first = NULL;
        uint32_t eligible = 0;
        for (gw_stream_t *s = srv->queue_head; s != NULL; s = s->qnext) {
            if (may_take(srv, s)) {
                eligible++;
                if (first == NULL)
                    first = s;
            }
        }
        if (first == NULL)
            break;
        gw_pg_t *idle = NULL, *empty = NULL;
        uint32_t connecting = 0;
        for (uint32_t i = 0; i < srv->cfg.pool_size; i++) {
            gw_pg_t *pg = &srv->pool[i];
            if (pg->state == GW_PG_IDLE && idle == NULL)
                idle = pg;
            else if (pg->state == GW_PG_EMPTY && empty == NULL)
                empty = pg;
            else if (pg->state == GW_PG_CONNECTING)
                connecting++;
        }
        if (idle != NULL) {
            gw_stream_assign(first, idle);
            continue;
        }
        if (empty != NULL && connecting < eligible) {
            pg_connect(empty); /* on failure the head was failed: the loop goes on */
            continue;
        }
        break;
    }
}

void gw_pool_close(gw_server_t *srv)
{
    srv->pool_closed = true;
    for (uint32_t i = 0; i < srv->cfg.pool_size; i++) {
        gw_pg_t *pg = &srv->pool[i];
        if (pg->conn != NULL && pg->state != GW_PG_CLOSING) {
            pg->state = GW_PG_CLOSING;
            fw_conn_close(pg->conn, on_pg_closed, pg);
        }
    }
}

bool gw_pool_closed(const gw_server_t *srv)
{
    if (!srv->pool_closed)
        return false;
    for (uint32_t i = 0; i < srv->cfg.pool_size; i++)
        if (srv->pool[i].state != GW_PG_EMPTY)
            return false;
    return true;
}

/* ---- /metrics: the gateway's own lines, after the library's fraiseql_* text ---- */

static void metric(gwbuf_t *b, const char *name, const char *type, const char *help)
{
    gwbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void counter(gwbuf_t *b, const char *name, const char *help, uint64_t v)
{
    metric(b, name, "counter", help);
    gwbuf_printf(b, "%s %" PRIu64 "\n", name, v);
}

static void gauge(gwbuf_t *b, const char *name, const char *help, uint64_t v)
{
    metric(b, name, "gauge", help);
    gwbuf_printf(b, "%s %" PRIu64 "\n", name, v);
}

void gw_streams_metrics(const gw_server_t *srv, gwbuf_t *b)
{
    const gw_counters_t *c = &srv->c;
    uint64_t st[7] = {0}; /* queued explain running paused_client paused_bp cancelling ndjson */
    uint64_t buffered = 0, fw_pauses = 0;
    for (const gw_stream_t *s = srv->streams; s != NULL; s = s->snext) {
        if (s->end_reason != GW_END_NONE)
            st[5]++;
        else if (s->phase == GW_PHASE_QUEUED)
            st[0]++;
        else if (s->phase == GW_PHASE_EXPLAIN)
            st[1]++;
        else if (s->client_paused)
            st[3]++;
        else if (s->fw_paused)
            st[4]++;
        else
            st[2]++;
        if (s->fs != NULL && s->phase == GW_PHASE_RUNNING) {
            fw_stream_stats_t fst;
            fw_stream_stats(s->fs, &fst);
            buffered += fst.bytes_buffered;
            fw_pauses += fst.pauses;
        }
    }
    uint64_t pending = 0, bp_clients = 0, ws = 0;
    for (const gw_client_t *cl = srv->clients; cl != NULL; cl = cl->next) {
        pending += gw_client_pending(cl);
        bp_clients += cl->bp_paused;
        ws += cl->mode == GW_CLIENT_WS;
    }
    uint64_t pool[3] = {0};
    for (uint32_t i = 0; i < srv->cfg.pool_size; i++) {
        gw_pg_state_t ps = srv->pool[i].state;
        if (ps == GW_PG_IDLE)
            pool[0]++;
        else if (ps == GW_PG_BUSY)
            pool[1]++;
        else if (ps == GW_PG_CONNECTING)
            pool[2]++;
    }
    gauge(b, "fraiseql_gateway_open_connections", "Open client connections (HTTP and WebSocket).",
          srv->nclients);
    gauge(b, "fraiseql_gateway_open_websockets", "Open WebSocket connections.", ws);
    counter(b, "fraiseql_gateway_connections_total", "Client connections accepted.",
            c->connections_total);
    counter(b, "fraiseql_gateway_connections_rejected_total",
            "Client connections refused by --max-connections.", c->connections_rejected_total);
    counter(b, "fraiseql_gateway_websocket_handshakes_total", "WebSocket handshakes completed.",
            c->ws_connections_total);
    counter(b, "fraiseql_gateway_http_requests_total", "HTTP requests routed.",
            c->http_requests_total);
    metric(b, "fraiseql_gateway_active_streams", "gauge",
           "Streams by state: queued for a connection, explain, running, paused by the client, "
           "paused by backpressure, cancelling.");
    static const char *const names[] = {
        "queued", "explain", "running", "paused_client", "paused_backpressure", "cancelling"};
    for (int i = 0; i < 6; i++)
        gwbuf_printf(b, "fraiseql_gateway_active_streams{state=\"%s\"} %" PRIu64 "\n", names[i],
                     st[i]);
    metric(b, "fraiseql_gateway_streams_total", "counter", "Streams ended, by outcome.");
    gwbuf_printf(b,
                 "fraiseql_gateway_streams_total{outcome=\"completed\"} %" PRIu64 "\n"
                 "fraiseql_gateway_streams_total{outcome=\"failed\"} %" PRIu64 "\n"
                 "fraiseql_gateway_streams_total{outcome=\"cancelled\"} %" PRIu64 "\n"
                 "fraiseql_gateway_streams_total{outcome=\"timeout\"} %" PRIu64 "\n"
                 "fraiseql_gateway_streams_total{outcome=\"rejected\"} %" PRIu64 "\n",
                 c->streams_completed_total, c->streams_failed_total, c->streams_cancelled_total,
                 c->streams_timeout_total, c->streams_rejected_total);
    counter(b, "fraiseql_gateway_streams_started_total", "stream_query requests accepted.",
            c->streams_started_total);
    counter(b, "fraiseql_gateway_backpressure_pauses_total",
            "Times a client's output passed the high watermark and its streams were paused.",
            c->backpressure_pauses_total);
    gauge(b, "fraiseql_gateway_backpressured_clients", "Clients over the high watermark right now.",
          bp_clients);
    gauge(b, "fraiseql_gateway_pending_bytes",
          "Output bytes accepted for clients and not yet written to their sockets.", pending);
    gauge(b, "fraiseql_gateway_stream_buffered_bytes",
          "Receive memory held by running streams (fwire's per-stream budget bounds it).",
          buffered);
    gauge(b, "fraiseql_gateway_stream_pauses",
          "fw_stream_pause calls that took effect, summed over the running streams.", fw_pauses);
    counter(b, "fraiseql_gateway_rows_sent_total", "Rows sent to clients.", c->rows_sent_total);
    counter(b, "fraiseql_gateway_batches_sent_total", "query_batch messages sent.",
            c->batches_sent_total);
    counter(b, "fraiseql_gateway_written_bytes_total", "Bytes handed to client sockets.",
            c->bytes_queued_total);
    counter(b, "fraiseql_gateway_messages_received_total", "WebSocket messages received.",
            c->messages_received_total);
    counter(b, "fraiseql_gateway_bad_messages_total", "Client messages refused as invalid.",
            c->bad_messages_total);
    counter(b, "fraiseql_gateway_auth_failures_total",
            "Requests refused for a missing or wrong "
            "token.",
            c->auth_failures_total);
    metric(b, "fraiseql_gateway_pool_connections", "gauge",
           "PostgreSQL connections of the pool by state.");
    gwbuf_printf(b,
                 "fraiseql_gateway_pool_connections{state=\"idle\"} %" PRIu64 "\n"
                 "fraiseql_gateway_pool_connections{state=\"busy\"} %" PRIu64 "\n"
                 "fraiseql_gateway_pool_connections{state=\"connecting\"} %" PRIu64 "\n",
                 pool[0], pool[1], pool[2]);
    counter(b, "fraiseql_gateway_pool_connects_total", "PostgreSQL connection attempts.",
            c->pg_connects_total);
    counter(b, "fraiseql_gateway_pool_connect_failures_total",
            "PostgreSQL connection attempts that failed.", c->pg_connect_failures_total);
}
