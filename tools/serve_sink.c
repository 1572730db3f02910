/* SPDX-License-Identifier: MIT */
/*
 * fwire serve: where a stream's messages go. A WebSocket stream gets JSON messages
 * (docs/gateway.md, "Server to client"); a GET /stream one gets chunked NDJSON, and its errors
 * as an HTTP status before the first row or as a last line (and no final chunk) after.
 */
#include "serve.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void gw_uuid_v4(char out[37])
{
    uint8_t b[16];
    if (RAND_bytes(b, sizeof(b)) != 1) {
        /* never expected; a stream id only has to be unique within this process */
        static uint64_t n;
        memset(b, 0, sizeof(b));
        n++;
        memcpy(b, &n, sizeof(n));
    }
    b[6] = (uint8_t)((b[6] & 0x0F) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3F) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

bool gw_sink_is_ws(const gw_stream_t *s)
{
    return s->client != NULL && s->client->mode == GW_CLIENT_WS;
}

bool gw_sink_is_ndjson(const gw_stream_t *s)
{
    return s->client != NULL && s->client->mode == GW_CLIENT_NDJSON;
}

/* Sends a small message built in b (WebSocket) and frees b. */
void gw_sink_send(gw_stream_t *s, gwbuf_t *b)
{
    if (gw_sink_is_ws(s) && !b->failed)
        gw_ws_send(s->client, b->ptr, b->len);
    gwbuf_free(b);
}

void gw_ndjson_chunk(gw_client_t *c, const char *data, size_t len)
{
    if (len == 0)
        return;
    char head[24];
    int n = snprintf(head, sizeof(head), "%zx\r\n", len);
    if (gw_client_write(c, head, (size_t)n) && gw_client_write(c, data, len))
        gw_client_write(c, "\r\n", 2);
}

void gw_ndjson_begin(gw_client_t *c)
{
    if (c->ndjson_started)
        return;
    c->ndjson_started = true;
    static const char h[] = "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
                            "Transfer-Encoding: chunked\r\nConnection: close\r\n"
                            "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
                            "Referrer-Policy: no-referrer\r\n\r\n";
    gw_client_write(c, h, sizeof(h) - 1);
}

/* The HTTP status of an error before any row: what went wrong, in HTTP's words. */
static int http_status(const char *code)
{
    if (strcmp(code, "bad_request") == 0)
        return 400;
    if (strcmp(code, "not_allowed") == 0)
        return 403;
    if (strcmp(code, "limit") == 0)
        return 429;
    if (strcmp(code, "timeout") == 0)
        return 504;
    if (strcmp(code, "shutdown") == 0)
        return 503;
    return 502; /* the database said no */
}

/* An error to the stream's client, whatever kind it is. */
void gw_sink_error(gw_stream_t *s, const char *code, const char *sqlstate, const char *msg)
{
    gw_client_t *c = s->client;
    if (c == NULL)
        return;
    if (c->mode == GW_CLIENT_WS) {
        gw_send_error(c, s->request_id, s->phase == GW_PHASE_QUEUED ? NULL : s->id, code, sqlstate,
                      msg);
        return;
    }
    if (!c->ndjson_started) {
        gw_http_error(c, http_status(code), code, sqlstate, msg);
        return;
    }
    /* Mid-stream: one last line saying why, then the connection ends without the final
     * chunk, so curl and any HTTP client see an incomplete transfer, not a short success. */
    gwbuf_t b = {0};
    gwbuf_puts(&b, "{\"type\":\"query_error\",\"code\":");
    gwbuf_json_cstr(&b, code);
    gwbuf_puts(&b, ",\"sqlstate\":");
    gwbuf_json_cstr(&b, sqlstate != NULL && sqlstate[0] ? sqlstate : NULL);
    gwbuf_puts(&b, ",\"message\":");
    gwbuf_json_cstr(&b, msg);
    gwbuf_puts(&b, "}\n");
    if (!b.failed)
        gw_ndjson_chunk(c, b.ptr, b.len);
    gwbuf_free(&b);
    c->closing = true;
    gw_client_close_when_flushed(c);
}
