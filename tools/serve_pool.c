/* SPDX-License-Identifier: MIT */
/*
 * fwire serve: PostgreSQL connections for the streams, readiness, and the gateway's metrics.
 *
 * The connections come from fwire's pool (fw_pool_t, docs/pool.md) on the gateway's loop: it
 * knows the hosts of --dsn and their roles, routes (a standby for reads, or the primary with
 * --read-from-primary), backs failing hosts off, drains a released connection before reusing it
 * and closes one that broke. The gateway keeps its own FIFO of waiting streams, bounded because
 * every stream, waiting or not, counts against --max-concurrent-streams, and its fair share per
 * client (--max-pool-per-connection); it asks the pool for a connection only when a waiting
 * stream may take one and it holds fewer than --pool-size, and hands the connection to the first
 * such stream when it arrives (or back to the pool when none is left).
 */
#include "serve.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An acquire waits this long at most. The gateway asks only when it has room under
 * --pool-size, so the wait is the connect itself (TCP, TLS, authentication) or the drain of a
 * connection just released: longer than this means the servers are in trouble, and the stream
 * at the head of the queue hears so (FW_ETIMEDOUT) instead of waiting until --max-query-seconds. */
#define ACQUIRE_TIMEOUT_MS 10000
/* The readiness probe: a round trip (the first allowed view with LIMIT 0) every PROBE_EVERY_MS
 * while nothing else proved PostgreSQL reachable; /readyz is 503 once the last proof is older
 * than READY_STALE_MS, or when an acquire or a probe failed after it. A probe that takes longer
 * than PROBE_TIMEOUT_MS is abandoned (its connection is drained or closed by the pool) and
 * counts as a failure: a server that does not answer in seconds is not one to send work to. */
#define PROBE_EVERY_MS   1000
#define READY_STALE_MS   3000
#define PROBE_TIMEOUT_MS 2500

static void probe_end(gw_server_t *srv, bool ok, const char *why);

int gw_pool_init(gw_server_t *srv, char *errbuf, size_t errlen)
{
    fw_pool_opts_t o;
    fw_pool_opts_init(&o);
    o.conninfo = srv->cfg.dsn;
    o.name = "gateway"; /* fraiseql_pool_*{pool="gateway"} on /metrics */
    /* the probe takes one of these too, for a round trip, when the streams leave one free */
    o.max_size = srv->cfg.pool_size;
    o.acquire_timeout_ms = ACQUIRE_TIMEOUT_MS;
    fw_error_t err;
    memset(&err, 0, sizeof(err));
    int rc = fw_pool_new(&srv->fwpool, srv->loop, &o, &err);
    if (rc < 0) {
        snprintf(errbuf, errlen, "%s", err.message[0] ? err.message : fw_strerror(rc));
        return rc;
    }
    snprintf(srv->ready_reason, sizeof(srv->ready_reason), "no PostgreSQL server checked yet");
    return 0;
}

bool gw_entity_allowed(const gw_server_t *srv, const char *entity)
{
    for (size_t i = 0; i < srv->cfg.nallow; i++)
        if (strcmp(srv->cfg.allow[i], entity) == 0)
            return true;
    return false;
}

static fw_pool_want_t want_of(const gw_server_t *srv)
{
    return srv->cfg.read_from_primary ? FW_POOL_WRITE : FW_POOL_READ;
}

/* ---- readiness ---- */

static void ready_ok(gw_server_t *srv)
{
    if (srv->ready_failed)
        fprintf(stderr, "fwire serve: ready again: PostgreSQL answers\n");
    srv->ready_ok_ms = gw_now_ms(srv);
    srv->ready_failed = false;
}

static void ready_fail(gw_server_t *srv, const char *why)
{
    if (!srv->ready_failed)
        fprintf(stderr, "fwire serve: not ready: %s\n", why);
    srv->ready_failed = true;
    snprintf(srv->ready_reason, sizeof(srv->ready_reason), "%s", why);
}

bool gw_ready(const gw_server_t *srv, char *why, size_t len)
{
    if (srv->stopping || srv->draining) {
        snprintf(why, len, "the server is stopping");
        return false;
    }
    if (srv->ready_failed || srv->ready_ok_ms == 0) {
        snprintf(why, len, "%s", srv->ready_reason);
        return false;
    }
    uint64_t age = gw_elapsed(gw_now_ms(srv), srv->ready_ok_ms);
    if (age > READY_STALE_MS) {
        snprintf(why, len, "no PostgreSQL server answered for %llu ms", (unsigned long long)age);
        return false;
    }
    return true;
}

/* ---- connections for streams ---- */

/* Fair sharing: a client holds at most --max-pool-per-connection connections (by default
 * half the pool), so one client's paused or slow streams cannot hold the whole pool while
 * another client's stream waits; its further streams wait in the queue without blocking the
 * streams behind them. A stream whose client left holds on only until its cancel is confirmed.
 * `extra`: connections already promised to this client in the current count. */
static bool may_take(const gw_server_t *srv, const gw_stream_t *s, uint32_t extra)
{
    const gw_client_t *c = s->client;
    if (c == NULL)
        return true;
    uint32_t held = extra;
    for (const gw_stream_t *o = c->streams; o != NULL; o = o->cnext)
        held += o->pg != NULL ? o->pg->weight : 0;
    return held < srv->cfg.max_pool_per_connection;
}

uint32_t gw_pool_parts(const gw_server_t *srv, const gw_stream_t *s, uint32_t want)
{
    uint32_t used = srv->pg_held + srv->pg_pending + (srv->probe_busy ? 1u : 0u);
    uint32_t room = srv->cfg.pool_size > used ? srv->cfg.pool_size - used : 0;
    /* ...and what the pool itself can hand out at once: a connection the gateway let go may
     * still be draining or rolling back there, and an abandoned probe's acquire may wait. */
    fw_pool_stats_t ps;
    memset(&ps, 0, sizeof(ps));
    if (srv->fwpool != NULL && fw_pool_stats(srv->fwpool, &ps) == 0) {
        uint32_t free_now = ps.idle + (ps.size < srv->cfg.pool_size ? srv->cfg.pool_size - ps.size : 0);
        free_now = free_now > ps.waiting ? free_now - ps.waiting : 0;
        if (free_now < room)
            room = free_now;
    }
    const gw_client_t *c = s->client;
    if (c != NULL) {
        uint32_t held = 0; /* s's own connection included */
        for (const gw_stream_t *o = c->streams; o != NULL; o = o->cnext)
            held += o->pg != NULL ? o->pg->weight : 0;
        uint32_t share = srv->cfg.max_pool_per_connection > held
                             ? srv->cfg.max_pool_per_connection - held
                             : 0;
        if (share < room)
            room = share;
    }
    return want - 1 < room ? want : room + 1;
}

/* Queued streams that could take a connection now, each client counted up to its share. */
static uint32_t eligible_count(const gw_server_t *srv)
{
    uint32_t n = 0;
    for (const gw_stream_t *s = srv->queue_head; s != NULL; s = s->qnext) {
        uint32_t before = 0; /* earlier queued streams of the same client already counted */
        for (const gw_stream_t *o = srv->queue_head; o != s; o = o->qnext)
            before += o->client != NULL && o->client == s->client;
        if (may_take(srv, s, before))
            n++;
    }
    return n;
}

static gw_stream_t *first_eligible(const gw_server_t *srv)
{
    for (gw_stream_t *s = srv->queue_head; s != NULL; s = s->qnext)
        if (may_take(srv, s, 0))
            return s;
    return NULL;
}

static void on_acquired(fw_pool_t *pool, fw_conn_t *conn, int status, const fw_error_t *err,
                        void *ud)
{
    gw_server_t *srv = ud;
    srv->pg_pending--;
    if (status < 0) {
        char why[300];
        snprintf(why, sizeof(why), "no PostgreSQL connection: %.200s (%s)",
                 err != NULL && err->message[0] ? err->message : fw_strerror(status),
                 fw_err_name(status));
        if (status == FW_ECLOSED)
            return; /* the pool is closing (graceful stop): the streams are ending anyway */
        srv->c.pg_acquire_failures_total++;
        ready_fail(srv, why);
        gw_log(srv, "%s", why);
        /* the first waiting query learns why, so a dead database fails requests quickly
         * instead of queueing them until their timeout */
        gw_stream_t *s = first_eligible(srv);
        if (s != NULL)
            gw_stream_fail_queued(s, status, err);
        gw_pool_dispatch(srv);
        return;
    }
    ready_ok(srv);
    srv->c.pg_acquires_total++;
    gw_stream_t *s = srv->stopping ? NULL : first_eligible(srv);
    gw_pg_t *pg = s != NULL ? calloc(1, sizeof(*pg)) : NULL;
    if (pg == NULL) {
        /* nobody wants it any more (a stream cancelled while it waited): back to the pool */
        fw_pool_release(pool, conn);
        gw_pool_dispatch(srv);
        return;
    }
    pg->srv = srv;
    pg->conn = conn;
    pg->weight = 1;
    srv->pg_held++;
    fw_conn_info_t info;
    if (srv->cfg.verbose && fw_conn_info(conn, &info) == 0)
        gw_log(srv, "PostgreSQL connection: pid %d, %s %s:%d (%s)", (int)info.backend_pid,
               info.transport, info.address, info.port,
               info.role == FW_ROLE_STANDBY ? "standby" : "primary");
    gw_stream_assign(s, pg);
    gw_pool_dispatch(srv);
}

void gw_pool_dispatch(gw_server_t *srv)
{
    if (srv->fwpool == NULL || srv->pool_closed || srv->stopping)
        return;
    uint32_t want = eligible_count(srv);
    while (srv->pg_pending < want &&
           srv->pg_held + srv->pg_pending + (srv->probe_busy ? 1u : 0u) < srv->cfg.pool_size) {
        int rc = fw_pool_acquire(srv->fwpool, want_of(srv), on_acquired, srv);
        if (rc < 0) {
            gw_stream_t *s = first_eligible(srv);
            if (s == NULL)
                return;
            gw_stream_fail_queued(s, rc, NULL); /* dispatches again */
            return;
        }
        srv->pg_pending++;
    }
}

void gw_pg_release(gw_pg_t *pg, bool usable)
{
    /* The pool drains a connection whose stream was cancelled or freed mid-way before reusing
     * it, and closes one that broke; `usable` is what the gateway saw, and the connection
     * itself knows the same (fwire marks it BAD on every error the gateway calls unusable). */
    (void)usable;
    gw_server_t *srv = pg->srv;
    srv->pg_held -= pg->weight;
    if (srv->fwpool != NULL && !pg->stream_owned)
        fw_pool_release(srv->fwpool, pg->conn);
    free(pg);
    gw_pool_dispatch(srv);
}

void gw_pg_discard(gw_pg_t *pg)
{
    gw_pg_release(pg, false);
}

/* ---- the readiness probe ---- */

static void probe_rows(fw_stream_t *fs, void *ud)
{
    gw_server_t *srv = ud;
    fw_row_t row;
    int rc;
    while ((rc = fw_stream_try_next(fs, &row)) == FW_ROW)
        ;
    if (rc == FW_AGAIN || rc == FW_PAUSED)
        return;
    const fw_error_t *e = fw_stream_error(fs);
    int code = rc == FW_END ? 0 : (e->code != 0 ? e->code : rc);
    /* a server error (a view missing on this server, say) is still an answer: the server is
     * reachable; what the view lacks, the streams report to their clients */
    if (code == 0 || code == FW_ESERVER || code == FW_ESCHEMA) {
        probe_end(srv, true, NULL);
    } else {
        char why[300];
        snprintf(why, sizeof(why), "the readiness query failed: %.200s (%s)",
                 e->message[0] ? e->message : fw_strerror(code), fw_err_name(code));
        probe_end(srv, false, why);
    }
}

static void on_probe_conn(fw_pool_t *pool, fw_conn_t *conn, int status, const fw_error_t *err,
                          void *ud)
{
    gw_server_t *srv = ud;
    if (!srv->probe_busy || srv->probe_conn != NULL) {
        if (conn != NULL) /* the probe was abandoned meanwhile */
            fw_pool_release(pool, conn);
        return;
    }
    if (status < 0) {
        char why[300];
        snprintf(why, sizeof(why), "no PostgreSQL connection: %.200s (%s)",
                 err != NULL && err->message[0] ? err->message : fw_strerror(status),
                 fw_err_name(status));
        probe_end(srv, false, status == FW_ECLOSED ? NULL : why);
        return;
    }
    srv->probe_conn = conn;
    fw_query_t *q = NULL;
    fw_error_t e;
    memset(&e, 0, sizeof(e));
    int rc = fw_query_new(&q);
    if (rc == 0)
        rc = fw_query_entity(q, srv->cfg.allow[0]);
    if (rc == 0)
        rc = fw_query_limit(q, 0);
    if (rc == 0)
        rc = fw_stream_start(conn, q, probe_rows, srv, &srv->probe_fs, &e);
    fw_query_free(q);
    if (rc < 0) {
        srv->probe_fs = NULL;
        char why[300];
        snprintf(why, sizeof(why), "the readiness query could not start: %.200s (%s)",
                 e.message[0] ? e.message : fw_strerror(rc), fw_err_name(rc));
        probe_end(srv, false, why);
    }
}

/* Ends the probe: its stream freed, its connection back to the pool, the verdict recorded
 * (why NULL and !ok: no verdict, the probe was just stopped). */
static void probe_end(gw_server_t *srv, bool ok, const char *why)
{
    if (srv->probe_fs != NULL) {
        fw_stream_free(srv->probe_fs);
        srv->probe_fs = NULL;
    }
    if (srv->probe_conn != NULL) {
        if (srv->fwpool != NULL)
            fw_pool_release(srv->fwpool, srv->probe_conn);
        srv->probe_conn = NULL;
    }
    srv->probe_busy = false;
    if (ok)
        ready_ok(srv);
    else if (why != NULL)
        ready_fail(srv, why);
    gw_pool_dispatch(srv); /* a stream may have waited for the probe's slot */
    gw_maybe_finish_stop(srv);
}

void gw_pool_tick(gw_server_t *srv, uint64_t now)
{
    if (srv->fwpool == NULL || srv->pool_closed)
        return;
    if (srv->stopping || srv->draining) {
        if (srv->probe_busy)
            probe_end(srv, false, NULL);
        return;
    }
    if (srv->probe_busy) {
        if (gw_elapsed(now, srv->probe_ms) > PROBE_TIMEOUT_MS) {
            char why[160];
            snprintf(why, sizeof(why), "the readiness query took longer than %d ms",
                     PROBE_TIMEOUT_MS);
            probe_end(srv, false, why);
        }
        return;
    }
    /* a recent acquire or probe is proof enough; otherwise ask (also while failing: that is
     * how the gateway finds out the servers are back) */
    if (!srv->ready_failed && srv->ready_ok_ms != 0 &&
        gw_elapsed(now, srv->ready_ok_ms) < PROBE_EVERY_MS)
        return;
    if (srv->probe_ms != 0 && gw_elapsed(now, srv->probe_ms) < PROBE_EVERY_MS)
        return;
    if (srv->pg_held + srv->pg_pending >= srv->cfg.pool_size) {
        /* every connection is busy with a stream, or about to be: no room for a probe. A
         * connection that broke would have failed its stream (and so this proof); while none
         * did, the servers that hold them are answering. */
        if (srv->pg_held > 0 && !srv->ready_failed)
            ready_ok(srv);
        return;
    }
    srv->probe_ms = now;
    if (fw_pool_acquire(srv->fwpool, want_of(srv), on_probe_conn, srv) == 0)
        srv->probe_busy = true;
}

static void on_pool_closed(fw_pool_t *pool, void *ud)
{
    (void)pool;
    gw_server_t *srv = ud;
    srv->fwpool = NULL;
    gw_maybe_finish_stop(srv);
}

void gw_pool_close(gw_server_t *srv)
{
    if (srv->pool_closed)
        return;
    srv->pool_closed = true;
    if (srv->probe_busy)
        probe_end(srv, false, NULL);
    if (srv->fwpool != NULL)
        fw_pool_close(srv->fwpool, on_pool_closed, srv);
}

bool gw_pool_closed(const gw_server_t *srv)
{
    return srv->pool_closed && srv->fwpool == NULL;
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

/* A label value as the exposition format wants it: backslash, double quote and newline
 * escaped (a host name comes from the operator's --dsn, but is still not trusted to be tidy). */
static void label_value(gwbuf_t *b, const char *v)
{
    for (; *v != '\0'; v++) {
        if (*v == '\\' || *v == '"')
            gwbuf_append(b, "\\", 1);
        if (*v == '\n')
            gwbuf_append(b, "\\n", 2);
        else
            gwbuf_append(b, v, 1);
    }
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
    fw_pool_stats_t ps;
    memset(&ps, 0, sizeof(ps));
    if (srv->fwpool != NULL)
        fw_pool_stats(srv->fwpool, &ps);
    uint64_t pool[3] = {ps.idle, ps.in_use, ps.opening};
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
    counter(b, "fraiseql_gateway_pool_connects_total",
            "PostgreSQL connection attempts of the pool (fw_pool_stats: opened + failed).",
            ps.opened + ps.connect_failures);
    counter(b, "fraiseql_gateway_pool_connect_failures_total",
            "PostgreSQL connection attempts that failed.", ps.connect_failures);
    counter(b, "fraiseql_gateway_pool_acquires_total", "Connections handed to streams.",
            c->pg_acquires_total);
    counter(b, "fraiseql_gateway_parallel_streams_total",
            "Streams read over several PostgreSQL connections under one snapshot (--parallel).",
            c->parallel_streams_total);
    counter(b, "fraiseql_gateway_parallel_parts_total",
            "Connections those streams read over, summed (fewer than N when the pool was busy).",
            c->parallel_parts_total);
    counter(b, "fraiseql_gateway_pool_acquire_failures_total",
            "Acquires that failed (every server failing, or a timeout).",
            c->pg_acquire_failures_total);
    metric(b, "fraiseql_gateway_pool_host_up", "gauge",
           "Per PostgreSQL host of --dsn: 1 when its circuit breaker is closed (it connected "
           "last time, or was never tried), 0 while it is open or half-open.");
    for (size_t i = 0; srv->fwpool != NULL; i++) {
        fw_pool_host_t h;
        if (fw_pool_host(srv->fwpool, i, &h) != 0)
            break;
        gwbuf_puts(b, "fraiseql_gateway_pool_host_up{host=\"");
        label_value(b, h.host);
        gwbuf_printf(b, ":%d\",role=\"%s\"} %d\n", h.port,
                     h.role == FW_ROLE_PRIMARY   ? "primary"
                     : h.role == FW_ROLE_STANDBY ? "standby"
                                                 : "unknown",
                     strcmp(h.breaker, "closed") == 0 ? 1 : 0);
    }
    char why[sizeof(srv->ready_reason) + 64]; /* the reason is not shown here, but gw_ready
                                                 writes it whole (gcc -O3 checks the size) */
    gauge(b, "fraiseql_gateway_ready", "1 when /readyz answers 200.",
          gw_ready(srv, why, sizeof(why)));
}
