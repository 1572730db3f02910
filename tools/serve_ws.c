/* SPDX-License-Identifier: MIT */
/*
 * fwire serve, the WebSocket side (RFC 6455): the handshake (Sec-WebSocket-Accept is
 * base64(SHA-1(key + GUID)), with OpenSSL), framing by libwslay's event API, and the client's
 * JSON messages (docs/gateway.md).
 *
 * wslay does no I/O of its own here: its recv callback reads from the bytes of the current
 * libuv read, and its send callback gathers frames into the client's write buffer, refusing
 * (WOULDBLOCK) once OUT_CAP bytes are on their way, so what wslay keeps queued is what the
 * client has not read: gw_client_pending() counts it for the watermarks.
 */
#include "serve.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
/* Bytes handed to the socket at once, per client. Enough to keep a fast link busy; the rest
 * waits in wslay's queue where the watermarks see it. */
#define OUT_CAP (256u * 1024u)

/* Messages waiting in wslay's send queue, whatever their size, above which the client's input
 * is no longer handed to wslay (nor read from its socket) until the queue is down to half of
 * it. The watermarks count bytes, and a pong answering an empty ping is 0 bytes for them but a
 * queued message of its own (about 100 bytes of wslay's bookkeeping and malloc): a client
 * sending empty pings and reading nothing grew the gateway by gigabytes before this cap. One
 * recv call hands wslay at most 4096 bytes (682 empty pings), so the queue stays under
 * WS_MAX_QUEUED_MSGS + 682 messages. */
#define WS_MAX_QUEUED_MSGS 1024u

/* RFC 6455 5.2: where the payload length field ends (2, 4 or 10 bytes into the header). */
static size_t frame_len_end(const uint8_t *fh)
{
    uint8_t len7 = fh[1] & 0x7f;
    return 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0);
}

/* The first two bytes of a header: the rules of control frames, which wslay itself checks on
 * these two bytes already (so they must be decided before it sees the second). Returns 0 or the
 * close code. */
static uint16_t frame_check_start(const uint8_t *fh)
{
    bool fin = (fh[0] & 0x80) != 0;
    uint8_t opcode = fh[0] & 0x0f;
    uint8_t len7 = fh[1] & 0x7f;
    /* control frames: at most 125 bytes, never fragmented; a close payload is empty or a 2-byte
     * code and a reason, so 1 byte is a protocol error (RFC 6455 5.5, 5.5.1) */
    if ((opcode & 0x08) && (len7 > 125 || !fin || (opcode == 0x8 && len7 == 1)))
        return 1002;
    return 0;
}

/* The payload length, once its last byte is in: the top bit must be 0, and a data message may
 * not pass --max-frame-bytes. Refused here, on the header, before any payload is awaited or
 * buffered. Returns 0 or the close code; the length goes to *len. */
static uint16_t frame_check_length(gw_client_t *c, uint64_t *len)
{
    const uint8_t *fh = c->ws.fh;
    uint8_t opcode = fh[0] & 0x0f;
    uint8_t len7 = fh[1] & 0x7f;
    uint64_t n = len7;
    if (len7 == 126) {
        n = ((uint64_t)fh[2] << 8) | fh[3];
    } else if (len7 == 127) {
        n = 0;
        for (int i = 0; i < 8; i++)
            n = (n << 8) | fh[2 + i];
        if (n >> 63)
            return 1002;
    }
    *len = n;
    if (opcode == 0x1 || opcode == 0x2)
        c->ws.f_msg_len = n;
    else if (opcode == 0x0)
        c->ws.f_msg_len += n;
    else
        return 0; /* control frames (checked above); reserved opcodes: wslay fails them (1002) */
    return c->ws.f_msg_len > c->srv->cfg.max_frame_bytes ? 1009 : 0;
}

/* Walks the frame headers in the next n input bytes; returns how many of them may go to wslay:
 * all, or (a header refused, its close code in f_fail) those before the byte that decided it,
 * or before the header when it began in this call. Either way wslay never sees a header it would
 * act on first: it drops the connection without a close frame on some of these. */
static size_t frames_scan(gw_client_t *c, const uint8_t *p, size_t n)
{
    size_t i = 0, hstart = 0;
    bool here = false; /* the current header began in this call */
    while (i < n) {
        if (c->ws.f_left > 0) {
            uint64_t skip = c->ws.f_left < n - i ? c->ws.f_left : n - i;
            c->ws.f_left -= skip;
            i += (size_t)skip;
            continue;
        }
        if (c->ws.fh_len == 0) {
            hstart = i;
            here = true;
        }
        uint8_t *fh = c->ws.fh;
        fh[c->ws.fh_len++] = p[i++];
        size_t have = c->ws.fh_len;
        if (have < 2)
            continue;
        uint16_t code = have == 2 ? frame_check_start(fh) : 0;
        size_t lend = frame_len_end(fh);
        uint64_t len = 0;
        if (code == 0 && have == lend)
            code = frame_check_length(c, &len);
        if (code != 0) {
            c->ws.f_fail = code;
            return here ? hstart : i - 1;
        }
        if (have == lend)
            c->ws.f_pending = len;
        if (have == lend + ((fh[1] & 0x80) ? 4 : 0)) {
            c->ws.f_left = c->ws.f_pending; /* the header is whole: its payload follows */
            c->ws.fh_len = 0;
            here = false;
        }
    }
    return n;
}

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *ud)
{
    (void)flags;
    gw_client_t *c = ud;
    if (c->ws.in_len == 0 || c->ws.f_fail != 0 ||
        wslay_event_get_queued_msg_count(ctx) >= WS_MAX_QUEUED_MSGS) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    size_t n = len < c->ws.in_len ? len : c->ws.in_len;
    n = frames_scan(c, c->ws.in, n);
    if (n == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    memcpy(buf, c->ws.in, n);
    c->ws.in += n;
    c->ws.in_len -= n;
    return (ssize_t)n;
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *ud)
{
    (void)flags;
    gw_client_t *c = ud;
    if (c->closed || c->inflight + c->wbuf.len >= OUT_CAP) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    gwbuf_append(&c->wbuf, data, len);
    if (c->wbuf.failed) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)len;
}

void gw_send_error(gw_client_t *c, const char *request_id, const char *stream_id, const char *code,
                   const char *sqlstate, const char *message)
{
    gwbuf_t b = {0};
    gwbuf_puts(&b, "{\"type\":\"query_error\",\"request_id\":");
    gwbuf_json_cstr(&b, request_id);
    gwbuf_puts(&b, ",\"stream_id\":");
    gwbuf_json_cstr(&b, stream_id);
    gwbuf_puts(&b, ",\"code\":");
    gwbuf_json_cstr(&b, code);
    gwbuf_puts(&b, ",\"sqlstate\":");
    gwbuf_json_cstr(&b, sqlstate != NULL && sqlstate[0] != '\0' ? sqlstate : NULL);
    gwbuf_puts(&b, ",\"message\":");
    gwbuf_json_cstr(&b, message);
    gwbuf_puts(&b, "}");
    if (!b.failed)
        gw_ws_send(c, b.ptr, b.len);
    gwbuf_free(&b);
}

static void handle_text(gw_client_t *c, const uint8_t *msg, size_t len)
{
    gw_server_t *srv = c->srv;
    srv->c.messages_received_total++;
    if (srv->stopping) {
        gw_send_error(c, NULL, NULL, "shutdown", NULL, "the server is shutting down");
        return;
    }
    if (!gwjson_utf8_valid(msg, len)) {
        /* RFC 6455 8.1: a text frame that is not UTF-8 fails the connection (1007) */
        srv->c.bad_messages_total++;
        gw_send_error(c, NULL, NULL, "bad_request", NULL, "text frame is not valid UTF-8");
        gw_ws_close(c, 1007, "invalid UTF-8");
        return;
    }
    gw_request_t req;
    gw_reqerr_t err;
    int rc = gw_request_parse((const char *)msg, len, srv->cfg.max_frame_bytes, &req, &err);
    if (rc == -2) {
        gw_send_error(c, NULL, NULL, "FW_ENOMEM", NULL, "out of memory");
        return;
    }
    if (rc < 0) {
        srv->c.bad_messages_total++;
        gw_log(srv, "client %llu: refused a message: %s", (unsigned long long)c->id, err.message);
        gw_send_error(c, err.has_request_id ? err.request_id : NULL, NULL, err.code, NULL,
                      err.message);
        return;
    }
    if (req.type == GW_MSG_STREAM_QUERY) {
        if (!gw_entity_allowed(srv, req.entity)) {
            char m[160];
            snprintf(m, sizeof(m), "entity \"%.60s\" is not in the allowlist", req.entity);
            gw_send_error(c, req.request_id, NULL, "not_allowed", NULL, m);
        } else {
            gw_stream_request(c, &req);
        }
    } else {
        gw_stream_control(c, &req);
    }
    gw_request_free(&req);
}

static void on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                   void *ud)
{
    (void)ctx;
    gw_client_t *c = ud;
    if (c->closed)
        return;
    if (arg->opcode == WSLAY_TEXT_FRAME) {
        handle_text(c, arg->msg, arg->msg_length);
    } else if (arg->opcode == WSLAY_BINARY_FRAME) {
        c->srv->c.bad_messages_total++;
        gw_send_error(c, NULL, NULL, "bad_request", NULL,
                      "binary frames are not supported: send JSON text");
    }
    /* close, ping and pong are answered by wslay */
}

void gw_ws_flush(gw_client_t *c)
{
    if (c->closed || c->ws.ctx == NULL)
        return;
    int rc = wslay_event_send(c->ws.ctx);
    if (c->wbuf.len > 0) {
        bool ok = gw_client_write(c, c->wbuf.ptr, c->wbuf.len);
        gwbuf_reset(&c->wbuf);
        if (!ok)
            return; /* closed */
    }
    if (rc < 0) {
        gw_log(c->srv, "client %llu: WebSocket send failed (%d)", (unsigned long long)c->id, rc);
        gw_client_close(c);
        return;
    }
    if (c->ws.close_pending && wslay_event_get_queued_msg_count(c->ws.ctx) == 0) {
        c->ws.close_pending = false;
        if (wslay_event_queue_close(c->ws.ctx, c->ws.close_code,
                                    (const uint8_t *)c->ws.close_reason,
                                    strlen(c->ws.close_reason)) != 0) {
            gw_client_close_when_flushed(c);
            return;
        }
        gw_ws_flush(c);
        return;
    }
    /* Our close frame is out (after the peer's, or ours first): the TCP connection ends once it
     * is written; waiting for the peer's close could wait forever. */
    if (wslay_event_get_close_sent(c->ws.ctx) && !wslay_event_want_write(c->ws.ctx))
        gw_client_close_when_flushed(c);
}

bool gw_ws_send(gw_client_t *c, const char *text, size_t len)
{
    if (c->closed || c->ws.ctx == NULL || c->closing || c->ws.close_pending)
        return false;
    struct wslay_event_msg m = {WSLAY_TEXT_FRAME, (const uint8_t *)text, len};
    if (wslay_event_queue_msg(c->ws.ctx, &m) != 0)
        return false;
    gw_ws_flush(c);
    gw_client_check_high(c); /* what the socket did not take waits in wslay's queue */
    return true;
}

void gw_ws_close(gw_client_t *c, uint16_t code, const char *reason)
{
    if (c->closed || c->ws.close_pending)
        return;
    if (c->ws.ctx == NULL) {
        gw_client_close_when_flushed(c);
        return;
    }
    /* sent by gw_ws_flush once every message before it is out */
    c->ws.close_pending = true;
    c->ws.close_code = code;
    snprintf(c->ws.close_reason, sizeof(c->ws.close_reason), "%s", reason);
    gw_ws_flush(c);
}

/* A frame header was refused (f_fail): nothing more is read, the close frame goes out ahead
 * of queued messages (wslay sends control frames first), and the connection ends once it is
 * written. */
static void ws_fail(gw_client_t *c)
{
    gw_log(c->srv, "client %llu: frame header refused, closing with %u", (unsigned long long)c->id,
           (unsigned)c->ws.f_fail);
    c->srv->c.bad_messages_total++;
    free(c->ws.held);
    c->ws.held = NULL;
    c->ws.held_len = 0;
    wslay_event_shutdown_read(c->ws.ctx);
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
    const char *why = c->ws.f_fail == 1009 ? "message too big" : "protocol error";
    if (wslay_event_get_close_sent(c->ws.ctx) ||
        wslay_event_queue_close(c->ws.ctx, c->ws.f_fail, (const uint8_t *)why, strlen(why)) != 0) {
        gw_client_close_when_flushed(c);
        return;
    }
    gw_ws_flush(c);
    if (!c->closed)
        gw_client_close_when_flushed(c);
}

void gw_ws_on_read(gw_client_t *c, const uint8_t *data, size_t len)
{
    c->ws.last_recv_ms = gw_now_ms(c->srv);
    c->ws.ping_sent = false;
    c->ws.in = data;
    c->ws.in_len = len;
    int rc = wslay_event_recv(c->ws.ctx);
    const uint8_t *rest = c->ws.in;
    size_t rest_len = c->ws.in_len;
    c->ws.in = NULL;
    c->ws.in_len = 0;
    if (c->closed)
        return;
    if (rc < 0) {
        gw_client_close(c);
        return;
    }
    if (c->ws.f_fail != 0) {
        ws_fail(c);
        return;
    }
    if (rest_len > 0 && wslay_event_want_read(c->ws.ctx)) {
        /* the send queue is full of messages (pongs, most likely): keep the rest, read no
         * more until it drains (gw_ws_input_resume) */
        uint8_t *h = malloc(rest_len);
        if (h == NULL) {
            gw_client_close(c);
            return;
        }
        memcpy(h, rest, rest_len);
        free(c->ws.held);
        c->ws.held = h;
        c->ws.held_len = rest_len;
        c->ws.in_blocked = true;
        if (c->reading) {
            uv_read_stop((uv_stream_t *)&c->tcp);
            c->reading = false;
        }
    }
    gw_ws_flush(c);
    if (c->closed)
        return;
    if (!wslay_event_want_read(c->ws.ctx) && !wslay_event_want_write(c->ws.ctx)) {
        gw_client_close_when_flushed(c);
        return;
    }
    gw_client_check_watermarks(c);
}

/* A peer that vanished without a FIN or RST (a laptop closed, a NAT that forgot the flow) and
 * had no output pending would hold its connection slot forever: so a WebSocket that sent
 * nothing for --ws-ping-seconds gets a ping, and one silent for twice that is closed. Browsers
 * answer pings by themselves. While its input is not read (backpressure), its pongs could not
 * be seen: that time does not count (a stalled writer is the write-stall rule's business). */
void gw_ws_tick(gw_client_t *c, uint64_t now)
{
    uint32_t n = c->srv->cfg.ws_ping_seconds;
    if (n == 0 || c->closed || c->ws.ctx == NULL)
        return;
    if (!c->reading) {
        c->ws.last_recv_ms = now;
        c->ws.ping_sent = false;
        return;
    }
    uint64_t idle = gw_elapsed(now, c->ws.last_recv_ms);
    if (idle >= 2000ull * n) {
        gw_log(c->srv, "client %llu: no frame for %llu ms (pings unanswered), closed",
               (unsigned long long)c->id, (unsigned long long)idle);
        gw_client_close(c);
        return;
    }
    if (idle >= 1000ull * n && !c->ws.ping_sent && !c->closing && !c->ws.close_pending) {
        struct wslay_event_msg m = {WSLAY_PING, NULL, 0};
        c->ws.ping_sent = true;
        if (wslay_event_queue_msg(c->ws.ctx, &m) == 0)
            gw_ws_flush(c);
    }
}

void gw_ws_input_resume(gw_client_t *c)
{
    if (!c->ws.in_blocked || c->closed || c->ws.ctx == NULL ||
        wslay_event_get_queued_msg_count(c->ws.ctx) > WS_MAX_QUEUED_MSGS / 2)
        return;
    uint8_t *h = c->ws.held;
    size_t n = c->ws.held_len;
    c->ws.held = NULL;
    c->ws.held_len = 0;
    c->ws.in_blocked = false;
    if (h != NULL) {
        gw_ws_on_read(c, h, n); /* may hold a new copy of what it could not take */
        free(h);
    }
    if (!c->closed && !c->ws.in_blocked)
        gw_client_check_watermarks(c); /* reads again unless the output is too far behind */
}

void gw_ws_free(gw_client_t *c)
{
    free(c->ws.held);
    c->ws.held = NULL;
    if (c->ws.ctx != NULL)
        wslay_event_context_free(c->ws.ctx);
    c->ws.ctx = NULL;
}

bool gw_header_has_token(const char *list, const char *token)
{
    size_t tl = strlen(token);
    for (const char *p = list; *p != '\0';) {
        p += strspn(p, " \t,");
        size_t n = strcspn(p, ",");
        size_t e = n;
        while (e > 0 && (p[e - 1] == ' ' || p[e - 1] == '\t'))
            e--;
        if (e == tl && strncasecmp(p, token, tl) == 0)
            return true;
        p += n;
    }
    return false;
}

void gw_ws_accept(gw_client_t *c, const uint8_t *rest, size_t rest_len)
{
    gw_server_t *srv = c->srv;
    if (!gw_header_has_token(c->h_upgrade, "websocket") ||
        !gw_header_has_token(c->h_connection, "upgrade")) {
        gw_http_error(c, 426, "bad_request", NULL,
                      "/ws is a WebSocket endpoint (Upgrade: websocket)");
        return;
    }
    if (strcmp(c->h_version, "13") != 0) {
        gw_http_error(c, 426, "bad_request", NULL, "Sec-WebSocket-Version must be 13");
        return;
    }
    /* the key is base64 of 16 bytes: 24 characters ending in "==" */
    uint8_t raw[32];
    if (c->l_key != 24 || EVP_DecodeBlock(raw, (const unsigned char *)c->h_key, 24) != 18 ||
        c->h_key[22] != '=' || c->h_key[23] != '=') {
        gw_http_error(c, 400, "bad_request", NULL, "bad Sec-WebSocket-Key");
        return;
    }
    char src[24 + sizeof(WS_GUID)];
    memcpy(src, c->h_key, 24);
    memcpy(src + 24, WS_GUID, sizeof(WS_GUID) - 1);
    uint8_t sha[EVP_MAX_MD_SIZE];
    unsigned int shalen = 0;
    char accept[64];
    if (EVP_Digest(src, 24 + sizeof(WS_GUID) - 1, sha, &shalen, EVP_sha1(), NULL) != 1 ||
        shalen != 20) {
        gw_http_error(c, 500, "internal", NULL, "SHA-1 unavailable");
        return;
    }
    EVP_EncodeBlock((unsigned char *)accept, sha, 20);
    struct wslay_event_callbacks cbs = {
        .recv_callback = recv_cb,
        .send_callback = send_cb,
        .on_msg_recv_callback = on_msg,
    };
    if (wslay_event_context_server_init(&c->ws.ctx, &cbs, c) != 0) {
        c->ws.ctx = NULL;
        gw_http_error(c, 500, "FW_ENOMEM", NULL, "out of memory");
        return;
    }
    /* a message over the limit gets close code 1009 (message too big) from wslay */
    wslay_event_config_set_max_recv_msg_length(c->ws.ctx, srv->cfg.max_frame_bytes);
    gwbuf_t h = {0};
    gwbuf_printf(&h,
                 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                 accept);
    c->mode = GW_CLIENT_WS;
    c->ws.last_recv_ms = gw_now_ms(srv);
    srv->c.ws_connections_total++;
    bool ok = !h.failed && gw_client_write(c, h.ptr, h.len);
    gwbuf_free(&h);
    if (!ok)
        return;
    gw_log(srv, "client %llu: WebSocket open", (unsigned long long)c->id);
    gw_client_start_reading(c);
    if (rest_len > 0 && !c->closed)
        gw_ws_on_read(c, rest, rest_len);
}
