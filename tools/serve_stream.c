/* SPDX-License-Identifier: MIT */
/*
 * fwire serve: the streams. A stream_query (or GET /stream) becomes a gw_stream_t in the
 * server's registry and its client's list, waits in the queue for a pooled connection, runs
 * EXPLAIN for the estimate, then streams: fwire's rows-ready callback drains rows with
 * fw_stream_try_next into the open batch, which is sent when it holds batch_size rows (or
 * BATCH_MAX_BYTES), when BATCH_LINGER_MS pass without it filling, and at the end.
 *
 * Memory per stream is bounded by fwire's byte budget (--stream-budget: rows not yet taken)
 * plus one open batch; per client by the watermarks: above the high one, rows are no longer
 * taken and the streams are paused with fw_stream_pause, so PostgreSQL waits in send; below
 * the low one they are resumed and drained again (fwire does not call rows-ready again for
 * rows it already queued, so resuming drains at once).
 *
 * A stream ends exactly once, in stream_end(): its last message (completed, error, cancelled)
 * goes out if its client is still there, its connection goes back to the pool (or is closed
 * when fwire says it is unusable), and it is freed. A stream whose client left keeps running
 * detached until fwire confirms the cancel, so the connection is known idle before reuse.
 */
#include "serve.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A partial batch waits this long for more rows before it is sent: rows arrive in chunks cut
 * at socket reads, so without it batches would follow the network's boundaries. */
#define BATCH_LINGER_MS 50
/* A batch is also sent once its JSON reaches this size: batch_size times a big row must not
 * become one huge message (the budget bounds rows, not batches). */
#define BATCH_MAX_BYTES (256u * 1024u)
/* EXPLAIN output is parsed with these limits; a plan past them just has no estimate. */
#define PLAN_MAX_BYTES (1024u * 1024u)
/* A cancelled stream that fwire has not ended after this long is ended here, and its connection
 * closed instead of reused: fwire's cancel timeout (5 s by default) should have ended it, so a
 * stream still here is stuck (a callback that will never come), and it would otherwise hold a
 * pool connection, a --max-concurrent-streams slot and a graceful stop forever. */
#define CANCEL_WATCHDOG_MS (5000u + 5000u)

static void drain(gw_stream_t *s);
static void explain_rows(gw_stream_t *s);

/* ---- registry ---- */

static void queue_remove(gw_stream_t *s)
{
    gw_server_t *srv = s->srv;
    if (!s->queued)
        return;
    gw_stream_t **pp = &srv->queue_head, *prev = NULL;
    while (*pp != NULL && *pp != s) {
        prev = *pp;
        pp = &(*pp)->qnext;
    }
    if (*pp == s) {
        *pp = s->qnext;
        if (srv->queue_tail == s)
            srv->queue_tail = prev;
    }
    s->qnext = NULL;
    s->queued = false;
    srv->nqueued--;
}

static void client_unlink(gw_stream_t *s)
{
    gw_client_t *c = s->client;
    if (c == NULL)
        return;
    if (s->cprev != NULL)
        s->cprev->cnext = s->cnext;
    else
        c->streams = s->cnext;
    if (s->cnext != NULL)
        s->cnext->cprev = s->cprev;
    s->cprev = s->cnext = NULL;
    c->nstreams--;
    s->client = NULL;
}

static bool conn_usable(int code)
{
    return code >= 0 || code == FW_ESERVER || code == FW_ESCHEMA || code == FW_ETOOBIG ||
           code == FW_ECANCELED;
}

/* The end of a stream: its connection back to the pool, unlinked, freed. */
static void stream_free(gw_stream_t *s, int code)
{
    gw_server_t *srv = s->srv;
    /* Idempotent: a last message can close its client synchronously (a failed write), and the
     * client's close cancels its streams, this one included, before the first call returns. */
    if (s->phase == GW_PHASE_DONE)
        return;
    s->ending = true;
    if (s->fs != NULL) {
        fw_stream_free(s->fs);
        s->fs = NULL;
    }
    if (s->pg != NULL) {
        /* unlinked first: the release dispatches, and the client's share counts its streams'
         * connections (may_take reads s->pg) */
        gw_pg_t *pg = s->pg;
        s->pg = NULL;
        gw_pg_release(pg, conn_usable(code));
    }
    queue_remove(s);
    s->client_at_end = s->client;
    client_unlink(s);
    if (s->sprev != NULL)
        s->sprev->snext = s->snext;
    else
        srv->streams = s->snext;
    if (s->snext != NULL)
        s->snext->sprev = s->sprev;
    srv->nstreams--;
    /* Freed later by gw_streams_reap: an iteration over the registry may be standing on it
     * (its snext stays valid, and so does every node reachable from it until the reap). */
    s->phase = GW_PHASE_DONE;
    s->qnext = srv->graveyard;
    srv->graveyard = s;
    gw_client_t *c = s->client_at_end;
    s->client_at_end = NULL;
    if (c != NULL && srv->draining && !srv->stopping && c->nstreams == 0)
        gw_drain_client_done(c);
    gw_pool_dispatch(srv);
    gw_maybe_finish_stop(srv);
}

/* The last message of a stream that was cancelled (by whom: end_reason), then the end. */
static void stream_end_cancelled(gw_stream_t *s, int code)
{
    gw_server_t *srv = s->srv;
    char msg[160];
    if (s->phase == GW_PHASE_DONE)
        return;
    s->ending = true; /* the message below may close the client: no cancel from its detach */
    switch (s->end_reason) {
    case GW_END_CLIENT:
        srv->c.streams_cancelled_total++;
        if (gw_sink_is_ws(s)) {
            gwbuf_t b = {0};
            gwbuf_printf(&b, "{\"type\":\"query_cancelled\",\"stream_id\":\"%s\"}", s->id);
            gw_sink_send(s, &b);
        }
        break;
    case GW_END_TIMEOUT:
        srv->c.streams_timeout_total++;
        snprintf(msg, sizeof(msg), "the query ran longer than %u seconds (--max-query-seconds)",
                 srv->cfg.max_query_seconds);
        gw_sink_error(s, "timeout", NULL, msg);
        break;
    case GW_END_ABANDONED:
        srv->c.streams_timeout_total++;
        snprintf(msg, sizeof(msg),
                 "the stream stayed paused longer than %u seconds (--abandon-seconds)",
                 srv->cfg.abandon_seconds);
        gw_sink_error(s, "abandoned", NULL, msg);
        break;
    case GW_END_SHUTDOWN:
    case GW_END_GONE:
    case GW_END_NONE:
        srv->c.streams_cancelled_total++;
        break;
    }
    stream_free(s, code);
}

/* Fails a stream with fwire's error (or `code` alone). */
static void stream_end_error(gw_stream_t *s, int code, const fw_error_t *e)
{
    if (s->phase == GW_PHASE_DONE)
        return;
    s->ending = true; /* the message below may close the client: no cancel from its detach */
    s->srv->c.streams_failed_total++;
    char msg[1100];
    snprintf(msg, sizeof(msg), "%s",
             e != NULL && e->message[0] != '\0' ? e->message : fw_strerror(code));
    if (e != NULL && e->detail[0] != '\0' && strlen(msg) + strlen(e->detail) + 10 < sizeof(msg)) {
        strcat(msg, " (DETAIL: ");
        strcat(msg, e->detail);
        strcat(msg, ")");
    }
    gw_log(s->srv, "stream %s failed: %s %s", s->id, fw_err_name(code), msg);
    gw_sink_error(s, fw_err_name(code), e != NULL ? e->sqlstate : NULL, msg);
    stream_free(s, code);
}

void gw_stream_fail_queued(gw_stream_t *s, int code, const fw_error_t *err)
{
    queue_remove(s);
    stream_end_error(s, code, err);
}

/* ---- batches ---- */

static void batch_open(gw_stream_t *s, uint64_t now)
{
    gwbuf_reset(&s->batch);
    s->batch_rows = 0;
    s->batch_opened_ms = now;
    if (gw_sink_is_ws(s))
        gwbuf_printf(&s->batch,
                     "{\"type\":\"query_batch\",\"stream_id\":\"%s\",\"batch_number\":%" PRIu64
                     ",\"rows\":[",
                     s->id, s->batches + 1);
}

/* Replaces raw CR and LF with spaces: NDJSON needs one value per line, and in valid JSON a
 * raw CR or LF is whitespace between tokens (inside strings they are escaped), so the value
 * is unchanged (a json column keeps the newlines it was typed with). */
static void flatten(char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] == '\n' || p[i] == '\r')
            p[i] = ' ';
}

static void batch_add(gw_stream_t *s, const fw_row_t *row)
{
    if (s->batch_rows == 0)
        batch_open(s, gw_now_ms(s->srv));
    if (gw_sink_is_ws(s) && s->batch_rows > 0)
        gwbuf_append(&s->batch, ",", 1);
    if (row->is_null) {
        gwbuf_append(&s->batch, "null", 4);
    } else {
        size_t at = s->batch.len;
        gwbuf_append(&s->batch, row->json, row->len);
        if (gw_sink_is_ndjson(s) && !s->batch.failed)
            flatten(s->batch.ptr + at, row->len);
    }
    if (gw_sink_is_ndjson(s))
        gwbuf_append(&s->batch, "\n", 1);
    s->batch_rows++;
    s->rows++;
}

static bool batch_full(const gw_stream_t *s)
{
    return s->batch_rows >= s->batch_size || s->batch.len >= BATCH_MAX_BYTES;
}

/* Sends the open batch; for WebSocket also an empty last one (has_more false). */
static void batch_send(gw_stream_t *s, bool has_more)
{
    gw_client_t *c = s->client;
    if (c == NULL)
        return;
    if (s->batch.failed) {
        gw_log(s->srv, "stream %s: out of memory for a batch", s->id);
        gwbuf_reset(&s->batch);
        s->batch_rows = 0;
        return;
    }
    if (c->mode == GW_CLIENT_NDJSON) {
        if (s->batch.len > 0) {
            gw_ndjson_begin(c);
            gw_ndjson_chunk(c, s->batch.ptr, s->batch.len);
        }
    } else {
        if (s->batch_rows == 0 && has_more)
            return;
        if (s->batch.len == 0)
            batch_open(s, 0);
        gwbuf_printf(&s->batch, "],\"has_more\":%s}", has_more ? "true" : "false");
        if (!s->batch.failed)
            gw_ws_send(c, s->batch.ptr, s->batch.len);
        s->batches++;
        s->srv->c.batches_sent_total++;
    }
    s->srv->c.rows_sent_total += s->batch_rows;
    gwbuf_reset(&s->batch);
    s->batch_rows = 0;
}

/* ---- progress ---- */

static void send_progress(gw_stream_t *s, uint64_t now)
{
    s->last_progress_ms = now;
    if (!gw_sink_is_ws(s))
        return;
    double secs = gw_now_seconds() - s->run_start;
    double rate = secs > 0 ? (double)s->rows / secs : 0;
    gwbuf_t b = {0};
    gwbuf_printf(&b,
                 "{\"type\":\"query_progress\",\"stream_id\":\"%s\",\"rows_processed\":%" PRIu64
                 ",\"percentage\":",
                 s->id, s->rows);
    if (s->estimate > 0) {
        double pct = (double)s->rows * 100.0 / (double)s->estimate;
        gwbuf_json_num(&b, pct > 100.0 ? 100.0 : pct, true);
    } else {
        gwbuf_puts(&b, s->estimate == 0 ? "100.0" : "null");
    }
    gwbuf_puts(&b, ",\"rows_per_second\":");
    gwbuf_json_num(&b, rate, true);
    gwbuf_puts(&b, ",\"eta_seconds\":");
    if (s->estimate >= 0 && rate > 0) {
        double left = (double)s->estimate - (double)s->rows;
        gwbuf_printf(&b, "%.2f", left > 0 ? left / rate : 0.0);
    } else {
        gwbuf_puts(&b, "null");
    }
    gwbuf_puts(&b, "}");
    gw_sink_send(s, &b);
}

/* ---- the query ---- */

static void pause_fw(gw_stream_t *s)
{
    if (!s->fw_paused && s->fs != NULL && s->phase == GW_PHASE_RUNNING &&
        fw_stream_pause(s->fs) == 0)
        s->fw_paused = true;
}

static void resume_fw(gw_stream_t *s)
{
    if (s->fw_paused && s->fs != NULL) {
        fw_stream_resume(s->fs);
        s->fw_paused = false;
    }
}

/* Asks fwire to cancel; the stream ends in drain() when fwire confirms. */
static void request_cancel(gw_stream_t *s, gw_end_reason_t why)
{
    if (s->end_reason != GW_END_NONE || s->ending || s->phase == GW_PHASE_DONE)
        return;
    s->end_reason = why;
    s->cancel_ms = gw_now_ms(s->srv);
    gwbuf_reset(&s->batch);
    s->batch_rows = 0;
    if (s->phase == GW_PHASE_QUEUED) {
        queue_remove(s);
        stream_end_cancelled(s, 0);
        return;
    }
    if (s->fs != NULL) {
        s->fw_paused = false; /* a cancel resumes a paused stream (fwire reads to the end) */
        fw_stream_cancel(s->fs);
        /* In embedded mode fwire calls rows-ready once more when the cancel completes, but not
         * when the stream had already ended (its reply read to the end, in the same loop pass
         * as a pause that came too late, say) and we had stopped draining it (backpressure, a
         * client's pause): then the verdict is already there, and only draining finds it. */
        if (s->phase == GW_PHASE_EXPLAIN)
            explain_rows(s);
        else
            drain(s);
    }
}

static int64_t plan_rows(const fw_row_t *row)
{
    if (row->is_null)
        return -1;
    /* PostgreSQL's own output: objects of a few dozen keys (more with future versions) */
    gwjson_limits_t lim = {
        .max_bytes = PLAN_MAX_BYTES, .max_depth = 200, .max_nodes = 200000, .max_keys = 1024};
    gwjson_doc_t *d = NULL;
    char e[8];
    if (gwjson_parse(row->json, row->len, &lim, &d, e, sizeof(e)) != 0)
        return -1;
    const gwjson_t *root = gwjson_root(d);
    const gwjson_t *first = root->type == GWJSON_ARRAY ? root->child : NULL;
    const gwjson_t *n = gwjson_get(gwjson_get(first, "Plan"), "Plan Rows");
    int64_t est = -1;
    if (n != NULL && n->type == GWJSON_NUMBER && isfinite(n->num) && n->num >= 0 && n->num < 9e18)
        est = (int64_t)n->num;
    gwjson_free(d);
    return est;
}

static void on_rows(fw_stream_t *fs, void *ud);

/* EXPLAIN is over: start the query itself on the same connection. */
static void start_query(gw_stream_t *s)
{
    fw_error_t err;
    memset(&err, 0, sizeof(err));
    if (s->limit >= 0 && (s->estimate < 0 || s->estimate > s->limit))
        s->estimate = s->limit;
    int rc;
    uint32_t parts = s->par != NULL ? gw_pool_parts(s->srv, s, s->par->n) : 1;
    if (parts >= 2) {
        /* --parallel: the parts come from the pool (fw_pool_stream_start), which gets them all
         * back at fw_stream_free; counted as held from now, so no other stream takes them. */
        const char *key = s->par->key;
        rc = fw_query_parallel(s->q, (int)parts);
        if (rc == 0 && key != NULL)
            rc = strncmp(key, "tid:", 4) == 0 ? fw_query_partition_ctid(s->q, key + 4)
                                              : fw_query_partition_key(s->q, key);
        /* --stream-budget bounds the stream's receive memory, as for any stream: fwire's
         * budget is per part, so each part gets its share (at least the flag's minimum). */
        size_t budget = s->srv->cfg.stream_budget / parts;
        if (rc == 0)
            rc = fw_query_max_memory(s->q, budget < GW_MIN_STREAM_BUDGET ? GW_MIN_STREAM_BUDGET
                                                                         : budget);
        /* from here the stream counts for `parts` connections, and fw_pool_stream_start owns
         * conn (it gives it back itself, also when the start fails) */
        s->pg->weight = parts;
        s->pg->stream_owned = true;
        s->srv->pg_held += parts - 1;
        if (rc == 0) {
            rc = fw_pool_stream_start(s->srv->fwpool, s->pg->conn, s->q, on_rows, s, &s->fs,
                                      &err);
            if (rc == 0) {
                s->srv->c.parallel_streams_total++;
                s->srv->c.parallel_parts_total += parts;
            }
        } else {
            snprintf(err.message, sizeof(err.message), "--parallel %s=%u refused: %s",
                     s->par->entity, s->par->n, fw_strerror(rc));
            fw_pool_release(s->srv->fwpool, s->pg->conn);
        }
    } else {
        rc = fw_stream_start(s->pg->conn, s->q, on_rows, s, &s->fs, &err);
    }
    if (rc < 0) {
        s->fs = NULL;
        stream_end_error(s, rc, &err);
        return;
    }
    fw_query_free(s->q);
    s->q = NULL;
    s->phase = GW_PHASE_RUNNING;
    s->run_start = gw_now_seconds();
    s->last_progress_ms = gw_now_ms(s->srv);
    if (gw_sink_is_ws(s)) {
        gwbuf_t b = {0};
        gwbuf_puts(&b, "{\"type\":\"query_started\",\"request_id\":");
        gwbuf_json_cstr(&b, s->request_id);
        gwbuf_printf(&b, ",\"stream_id\":\"%s\",\"entity\":", s->id);
        gwbuf_json_cstr(&b, s->entity);
        if (s->estimate >= 0)
            gwbuf_printf(&b, ",\"estimated_rows\":%" PRId64 "}", s->estimate);
        else
            gwbuf_puts(&b, ",\"estimated_rows\":null}");
        gw_sink_send(s, &b);
    }
    /* NDJSON: the 200 goes out with the first rows (or the end), so an error before any row
     * (a view of the wrong shape, a failure at the first fetch) is still an HTTP status */
    gw_log(s->srv, "stream %s: %s started (estimate %" PRId64 ", %u connection%s)", s->id,
           s->entity, s->estimate, parts, parts > 1 ? "s" : "");
}

static void explain_rows(gw_stream_t *s)
{
    fw_row_t row;
    int rc;
    while ((rc = fw_stream_try_next(s->fs, &row)) == FW_ROW)
        s->estimate = plan_rows(&row);
    if (rc == FW_AGAIN || rc == FW_PAUSED)
        return;
    if (rc < 0 && s->end_reason == GW_END_NONE) {
        int code = fw_stream_error(s->fs)->code;
        fw_error_t e = *fw_stream_error(s->fs);
        stream_end_error(s, code != 0 ? code : rc, &e);
        return;
    }
    fw_stream_free(s->fs);
    s->fs = NULL;
    if (s->end_reason != GW_END_NONE) {
        stream_end_cancelled(s, rc);
        return;
    }
    start_query(s);
}

static void drain(gw_stream_t *s)
{
    fw_row_t row;
    int rc;
    if (s->phase != GW_PHASE_RUNNING || s->fs == NULL)
        return;
    if (s->end_reason != GW_END_NONE) {
        /* cancelling: fwire drops what it queued; wait for its verdict */
        while ((rc = fw_stream_try_next(s->fs, &row)) == FW_ROW)
            ;
        if (rc != FW_AGAIN && rc != FW_PAUSED)
            stream_end_cancelled(s, rc == FW_END ? 0 : rc);
        return;
    }
    for (;;) {
        gw_client_t *c = s->client;
        if (c == NULL || c->bp_paused || s->client_paused) {
            pause_fw(s);
            return;
        }
        rc = fw_stream_try_next(s->fs, &row);
        if (rc == FW_ROW) {
            batch_add(s, &row);
            if (batch_full(s)) {
                batch_send(s, true);
                if (s->client != NULL)
                    gw_client_check_watermarks(s->client);
                if (s->end_reason != GW_END_NONE || s->phase != GW_PHASE_RUNNING)
                    return; /* the client went away while we wrote */
            }
            continue;
        }
        if (rc == FW_AGAIN || rc == FW_PAUSED) {
            if (s->batch_rows > 0 && gw_now_ms(s->srv) - s->batch_opened_ms >= BATCH_LINGER_MS)
                batch_send(s, true);
            return;
        }
        if (rc == FW_END) {
            double ms = (gw_now_seconds() - s->run_start) * 1000.0;
            s->ending = true; /* from here a client that closes under us cancels nothing */
            batch_send(s, false);
            s->srv->c.streams_completed_total++;
            if (gw_sink_is_ws(s)) {
                gwbuf_t b = {0};
                gwbuf_printf(&b,
                             "{\"type\":\"query_completed\",\"stream_id\":\"%s\","
                             "\"total_rows\":%" PRIu64 ",\"execution_time_ms\":",
                             s->id, s->rows);
                gwbuf_json_num(&b, ms, true);
                gwbuf_puts(&b, "}");
                gw_sink_send(s, &b);
            } else if (gw_sink_is_ndjson(s)) {
                gw_client_t *cl = s->client; /* stays valid if a write closes it (closed) */
                gw_ndjson_begin(cl);         /* an empty result: the 200 is still to send */
                gw_client_write(cl, "0\r\n\r\n", 5);
                gw_client_close_when_flushed(cl);
            }
            gw_log(s->srv, "stream %s: completed, %" PRIu64 " rows in %.1f ms", s->id, s->rows, ms);
            stream_free(s, 0);
            return;
        }
        /* failed: the rows before the error were sent, then the error */
        s->ending = true;
        batch_send(s, true);
        fw_error_t e = *fw_stream_error(s->fs);
        stream_end_error(s, e.code != 0 ? e.code : rc, &e);
        return;
    }
}

static void on_rows(fw_stream_t *fs, void *ud)
{
    (void)fs;
    gw_stream_t *s = ud;
    if (s->phase == GW_PHASE_EXPLAIN)
        explain_rows(s);
    else
        drain(s);
}

void gw_stream_assign(gw_stream_t *s, gw_pg_t *pg)
{
    queue_remove(s);
    s->pg = pg;
    s->phase = GW_PHASE_EXPLAIN;
    fw_error_t err;
    memset(&err, 0, sizeof(err));
    fw_query_explain(s->q, true);
    int rc = fw_stream_start(pg->conn, s->q, on_rows, s, &s->fs, &err);
    fw_query_explain(s->q, false);
    if (rc == FW_ESTATE || rc == FW_EBUSY) {
        /* the connection went bad while idle (server restart, network): back to the head of
         * the queue, and the pool closes that one and hands out (or opens) another */
        gw_log(s->srv, "PostgreSQL connection unusable (%s), reconnecting", fw_err_name(rc));
        s->fs = NULL;
        s->pg = NULL;
        s->phase = GW_PHASE_QUEUED;
        s->queued = true;
        s->qnext = s->srv->queue_head;
        s->srv->queue_head = s;
        if (s->srv->queue_tail == NULL)
            s->srv->queue_tail = s;
        s->srv->nqueued++;
        gw_pg_discard(pg); /* dispatches again */
        return;
    }
    if (rc < 0) {
        s->fs = NULL;
        stream_end_error(s, rc, &err);
    }
}

void gw_stream_request(gw_client_t *c, const gw_request_t *req)
{
    gw_server_t *srv = c->srv;
    const gw_config_t *cfg = &srv->cfg;
    const char *limit = NULL;
    char msg[256];
    if (srv->draining || srv->stopping) {
        srv->c.streams_rejected_total++;
        if (c->mode == GW_CLIENT_WS)
            gw_send_error(c, req->request_id, NULL, "shutdown", NULL,
                          "the server is shutting down");
        else
            gw_http_error(c, 503, "shutdown", NULL, "the server is shutting down");
        return;
    }
    if (c->mode == GW_CLIENT_WS && c->nstreams >= cfg->max_streams_per_connection)
        limit = "too many streams on this connection (--max-streams-per-connection)";
    else if (srv->nstreams >= cfg->max_concurrent_streams)
        limit = "too many streams on the server (--max-concurrent-streams)";
    if (limit != NULL) {
        srv->c.streams_rejected_total++;
        if (c->mode == GW_CLIENT_WS)
            gw_send_error(c, req->request_id, NULL, "limit", NULL, limit);
        else
            gw_http_error(c, 429, "limit", NULL, limit);
        return;
    }
    fw_query_t *q = NULL;
    int rc = gw_query_build(req, &q, msg, sizeof(msg));
    if (rc == 0)
        rc = fw_query_max_memory(q, cfg->stream_budget);
    gw_stream_t *s = rc == 0 ? calloc(1, sizeof(*s)) : NULL;
    if (s != NULL) {
        s->entity = strdup(req->entity);
        s->request_id = req->request_id != NULL ? strdup(req->request_id) : NULL;
    }
    if (rc < 0 || s == NULL || s->entity == NULL ||
        (req->request_id != NULL && s->request_id == NULL)) {
        srv->c.streams_rejected_total++;
        if (rc == 0)
            snprintf(msg, sizeof(msg), "out of memory");
        if (c->mode == GW_CLIENT_WS)
            gw_send_error(c, req->request_id, NULL, "bad_request", NULL, msg);
        else
            gw_http_error(c, 400, "bad_request", NULL, msg);
        fw_query_free(q);
        if (s != NULL) {
            free(s->entity);
            free(s->request_id);
            free(s);
        }
        return;
    }
    s->srv = srv;
    s->q = q;
    gw_uuid_v4(s->id);
    s->limit = req->limit;
    s->estimate = -1;
    /* A split has no global order and no LIMIT (fw_query_parallel): such requests of a
     * --parallel entity run on one connection, as any other. */
    if (req->limit < 0 && req->order_path == NULL)
        s->par = gw_config_parallel(cfg, req->entity);
    s->batch_size = req->batch_size != 0 ? req->batch_size : cfg->batch_size;
    if (c->mode == GW_CLIENT_NDJSON)
        s->batch_size = 1000; /* chunks of NDJSON: not a protocol unit, just fewer writes */
    s->start_ms = gw_now_ms(srv);
    s->phase = GW_PHASE_QUEUED;
    /* link: client, registry, queue */
    s->client = c;
    s->cnext = c->streams;
    if (c->streams != NULL)
        c->streams->cprev = s;
    c->streams = s;
    c->nstreams++;
    s->snext = srv->streams;
    if (srv->streams != NULL)
        srv->streams->sprev = s;
    srv->streams = s;
    srv->nstreams++;
    s->queued = true;
    if (srv->queue_tail != NULL)
        srv->queue_tail->qnext = s;
    else
        srv->queue_head = s;
    srv->queue_tail = s;
    srv->nqueued++;
    srv->c.streams_started_total++;
    gw_log(srv, "client %llu: stream %s for %s queued", (unsigned long long)c->id, s->id,
           s->entity);
    gw_pool_dispatch(srv);
}

void gw_stream_control(gw_client_t *c, const gw_request_t *req)
{
    gw_stream_t *s = c->streams;
    while (s != NULL && strcmp(s->id, req->stream_id) != 0)
        s = s->cnext;
    if (s == NULL || s->end_reason != GW_END_NONE) {
        /* unknown, finished, or another connection's: all look the same from here */
        gw_send_error(c, req->request_id, req->stream_id, "not_found", NULL,
                      "no active stream with this stream_id on this connection");
        return;
    }
    gwbuf_t b = {0};
    switch (req->type) {
    case GW_MSG_CANCEL_QUERY:
        request_cancel(s, GW_END_CLIENT);
        return;
    case GW_MSG_PAUSE_QUERY:
        if (!s->client_paused) {
            s->client_paused = true;
            s->paused_at_ms = gw_now_ms(c->srv);
            pause_fw(s);
        }
        gwbuf_printf(&b, "{\"type\":\"query_paused\",\"stream_id\":\"%s\"}", s->id);
        gw_sink_send(s, &b);
        return;
    case GW_MSG_RESUME_QUERY:
        gwbuf_printf(&b, "{\"type\":\"query_resumed\",\"stream_id\":\"%s\"}", s->id);
        gw_sink_send(s, &b);
        if (s->client_paused) {
            s->client_paused = false;
            s->paused_total_ms += gw_elapsed(gw_now_ms(c->srv), s->paused_at_ms);
            gw_stream_resume_bp(s);
        }
        return;
    case GW_MSG_STREAM_QUERY:
        break;
    }
}

void gw_stream_pause_bp(gw_stream_t *s)
{
    if (s->end_reason == GW_END_NONE)
        pause_fw(s);
}

void gw_stream_resume_bp(gw_stream_t *s)
{
    if (s->end_reason != GW_END_NONE || s->client_paused || s->phase != GW_PHASE_RUNNING ||
        s->client == NULL || s->client->bp_paused)
        return;
    resume_fw(s);
    drain(s); /* rows fwire queued before the pause do not trigger rows-ready again */
}

void gw_streams_detach(gw_client_t *c)
{
    while (c->streams != NULL) {
        gw_stream_t *s = c->streams;
        client_unlink(s);
        if (s->end_reason == GW_END_NONE)
            request_cancel(s, GW_END_GONE); /* may free s */
    }
}

void gw_streams_shutdown(gw_server_t *srv)
{
    for (gw_client_t *c = srv->clients; c != NULL; c = c->next) {
        for (gw_stream_t *s = c->streams; s != NULL; s = s->cnext)
            if (s->end_reason == GW_END_NONE)
                gw_sink_error(s, "shutdown", NULL, "the server is shutting down");
    }
    for (gw_client_t *c = srv->clients; c != NULL; c = c->next)
        gw_streams_detach(c);
    /* streams already detached (their clients left) are cancelling: let them finish */
}

void gw_streams_reap(gw_server_t *srv)
{
    while (srv->graveyard != NULL) {
        gw_stream_t *s = srv->graveyard;
        srv->graveyard = s->qnext;
        fw_query_free(s->q);
        gwbuf_free(&s->batch);
        free(s->request_id);
        free(s->entity);
        free(s);
    }
}

void gw_streams_tick(gw_server_t *srv, uint64_t now)
{
    const gw_config_t *cfg = &srv->cfg;
    for (gw_stream_t *s = srv->streams, *next; s != NULL; s = next) {
        next = s->snext;
        if (s->phase == GW_PHASE_DONE)
            continue;
        if (s->end_reason != GW_END_NONE) {
            /* a stop past its grace period does not wait for stuck cancels either */
            bool late = srv->stopping && now >= srv->stop_deadline_ms;
            if (late || gw_elapsed(now, s->cancel_ms) > CANCEL_WATCHDOG_MS) {
                fprintf(stderr,
                        "fwire serve: stream %s: cancel not confirmed after %llu ms, ended "
                        "and its PostgreSQL connection closed\n",
                        s->id, (unsigned long long)(gw_elapsed(now, s->cancel_ms)));
                stream_end_cancelled(s, FW_ETIMEDOUT); /* not usable: the connection is closed */
            }
            continue;
        }
        if (cfg->max_query_seconds > 0 &&
            gw_elapsed(now, s->start_ms) > cfg->max_query_seconds * 1000ull) {
            request_cancel(s, GW_END_TIMEOUT);
            continue;
        }
        /* paused time adds up over pauses: resuming for a moment does not start the clock
         * again, so a client cannot hold a connection with a pause until --max-query-seconds */
        if (s->client_paused && s->paused_total_ms + gw_elapsed(now, s->paused_at_ms) >
                                    cfg->abandon_seconds * 1000ull) {
            request_cancel(s, GW_END_ABANDONED);
            continue;
        }
        if (s->phase != GW_PHASE_RUNNING || s->client == NULL)
            continue;
        if (s->batch_rows > 0 && gw_elapsed(now, s->batch_opened_ms) >= BATCH_LINGER_MS &&
            !s->client->bp_paused)
            batch_send(s, true);
        if (s->client != NULL && !s->client_paused && !s->client->bp_paused &&
            gw_elapsed(now, s->last_progress_ms) >= cfg->progress_ms)
            send_progress(s, now);
    }
}
