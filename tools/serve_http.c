/* SPDX-License-Identifier: MIT */
/*
 * fwire serve, the HTTP side: the listener, one request per connection (parsed by http-parser,
 * answered with Connection: close, refused unless its Host names this server), the static
 * page, /healthz, /metrics, the routes to the WebSocket (serve_ws.c) and NDJSON
 * (serve_stream.c) handlers, and every client's output.
 *
 * Output: each write copies its bytes into one uv_write request, and `inflight` counts them
 * until libuv reports them written. gw_client_pending() adds what wslay still holds;
 * gw_client_check_high(), run wherever output is queued, pauses the client's PostgreSQL
 * streams above the high watermark, and gw_client_check_watermarks(), run as writes complete,
 * also resumes them below the low one (docs/gateway.md, "Backpressure").
 */
#include "serve.h"
#include "serve_assets.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A request must arrive whole within this time and size: a slowloris client trickling bytes,
 * or one sending megabytes of headers, is dropped instead of holding a connection slot. */
#define REQUEST_TIMEOUT_MS 10000
/* The request line alone must arrive within this time: an idle connection (opened and never
 * written to) is the cheapest way to hold a slot, so it is let go sooner than a slow one. */
#define REQUEST_LINE_TIMEOUT_MS 3000
/* Connections admitted over --max-connections or a per-address cap, for /healthz and /readyz
 * only: liveness probes keep working while idle or abusive connections fill the server. */
#define PROBE_SLOTS       8
#define REQUEST_MAX_BYTES (16u * 1024u)
/* Above the high watermark by this much, the client's own input is not read either: its
 * pings and requests produce output it does not read. */
#define READ_STOP_SLACK (256u * 1024u)
#define READ_BUFFER     (64u * 1024u)
/* A client whose socket has taken none of its pending output for this long is gone in all but
 * name (a vanished peer without a reset, or one that never reads): it is closed so it cannot
 * hold a connection slot, and its streams, forever. */
#define WRITE_STALL_MS 60000

typedef struct wreq_s {
    uv_write_t req;
    gw_client_t *c;
    size_t len;
    char data[];
} wreq_t;

static char read_buffer[READ_BUFFER]; /* one loop thread: every read is handled before the next */

size_t gw_client_pending(const gw_client_t *c)
{
    size_t n = c->inflight + c->wbuf.len;
    if (c->ws.ctx != NULL)
        n += wslay_event_get_queued_msg_length(c->ws.ctx);
    return n;
}

/* The high half of the watermarks: pause the client's streams, stop reading its input. Only
 * pauses, so it is safe wherever output is queued (gw_client_write, gw_ws_send), whatever
 * queued it: batches (full or lingering), progress, acknowledgements, errors. */
void gw_client_check_high(gw_client_t *c)
{
    if (c->closed)
        return;
    const gw_config_t *cfg = &c->srv->cfg;
    size_t pending = gw_client_pending(c);
    if (!c->bp_paused && pending > cfg->high_watermark) {
        c->bp_paused = true;
        c->srv->c.backpressure_pauses_total++;
        gw_log(c->srv, "client %llu: %zu bytes pending, pausing its streams",
               (unsigned long long)c->id, pending);
        for (gw_stream_t *s = c->streams; s != NULL; s = s->cnext)
            gw_stream_pause_bp(s);
    }
    if (c->reading && pending > cfg->high_watermark + READ_STOP_SLACK) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

void gw_client_check_watermarks(gw_client_t *c)
{
    if (c->closed)
        return;
    const gw_config_t *cfg = &c->srv->cfg;
    gw_client_check_high(c);
    size_t pending = gw_client_pending(c);
    if (c->bp_paused && pending <= cfg->low_watermark) {
        c->bp_paused = false;
        gw_log(c->srv, "client %llu: drained to %zu bytes, resuming its streams",
               (unsigned long long)c->id, pending);
        /* Resuming a stream drains it, and that can end it and others of this client (its
         * end frees a connection, the next queued stream fails on it...): no saved `next`
         * survives that, so the walk starts over after each resume and skips the streams this
         * pass already visited. */
        uint64_t pass = ++c->resume_pass;
        while (!c->closed && !c->bp_paused) {
            gw_stream_t *s = c->streams;
            while (s != NULL && s->resume_pass == pass)
                s = s->cnext;
            if (s == NULL)
                break;
            s->resume_pass = pass;
            gw_stream_resume_bp(s);
        }
    }
    if (c->closed)
        return;
    pending = gw_client_pending(c);
    if (c->reading && pending > cfg->high_watermark + READ_STOP_SLACK) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    } else if (!c->reading && !c->closing && !c->ws.in_blocked && pending <= cfg->low_watermark &&
               c->mode != GW_CLIENT_RESPONSE) {
        gw_client_start_reading(c);
    }
}

static void on_close(uv_handle_t *h)
{
    gw_client_t *c = h->data;
    gw_server_t *srv = c->srv;
    gw_ws_free(c);
    gw_tls_client_free(c);
    gwbuf_free(&c->wbuf);
    free(c);
    gw_maybe_finish_stop(srv);
}

void gw_client_close(gw_client_t *c)
{
    if (c->closed)
        return;
    gw_server_t *srv = c->srv;
    c->closed = true;
    gw_streams_detach(c);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        srv->clients = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    srv->nclients--;
    if (c->probe_only)
        srv->nprobe--;
    gw_log(srv, "client %llu: closed", (unsigned long long)c->id);
    uv_close((uv_handle_t *)&c->tcp, on_close);
}

void gw_client_close_when_flushed(gw_client_t *c)
{
    if (c->closed)
        return;
    c->closing = true;
    gw_tls_shutdown(c);
    if (c->closed)
        return;
    if (c->reading && c->mode != GW_CLIENT_WS) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
    if (gw_client_pending(c) == 0)
        gw_client_close(c);
}

static void on_write(uv_write_t *req, int status)
{
    wreq_t *w = (wreq_t *)req;
    gw_client_t *c = w->c;
    c->inflight -= w->len;
    c->last_write_ms = gw_now_ms(c->srv);
    free(w);
    if (c->closed)
        return;
    if (status < 0) {
        gw_log(c->srv, "client %llu: write failed: %s", (unsigned long long)c->id,
               uv_strerror(status));
        gw_client_close(c);
        return;
    }
    if (c->ws.ctx != NULL) {
        gw_ws_flush(c);
        gw_ws_input_resume(c);
    }
    if (c->closed)
        return;
    gw_client_check_watermarks(c);
    if (!c->closed && c->closing && gw_client_pending(c) == 0)
        gw_client_close(c);
}

bool gw_client_write(gw_client_t *c, const void *data, size_t len)
{
    if (c->closed)
        return false;
    if (len == 0)
        return true;
    if (c->tls.ssl != NULL)
        return gw_tls_write(c, data, len);
    return gw_client_raw_write(c, data, len);
}

bool gw_client_raw_write(gw_client_t *c, const void *data, size_t len)
{
    if (c->closed)
        return false;
    if (len == 0)
        return true;
    wreq_t *w = malloc(sizeof(*w) + len);
    if (w == NULL) {
        gw_client_close(c);
        return false;
    }
    w->c = c;
    w->len = len;
    memcpy(w->data, data, len);
    uv_buf_t b = uv_buf_init(w->data, (unsigned int)len);
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (rc < 0) {
        free(w);
        gw_client_close(c);
        return false;
    }
    if (c->inflight == 0)
        c->last_write_ms = gw_now_ms(c->srv);
    c->inflight += len;
    c->srv->c.bytes_queued_total += len;
    gw_client_check_high(c);
    return true;
}

/* A complete plain response; the connection closes once it is written. */
static void respond(gw_client_t *c, int status, const char *reason, const char *ctype,
                    const void *body, size_t len, const char *extra)
{
    gwbuf_t h = {0};
    gwbuf_printf(&h,
                 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                 "Connection: close\r\nCache-Control: no-store\r\n"
                 "X-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n%s\r\n",
                 status, reason, ctype, len, extra != NULL ? extra : "");
    c->mode = GW_CLIENT_RESPONSE;
    if (!h.failed && gw_client_write(c, h.ptr, h.len))
        gw_client_write(c, body, len);
    gwbuf_free(&h);
    gw_client_close_when_flushed(c);
}

static const char *status_reason(int status)
{
    switch (status) {
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 421:
        return "Misdirected Request";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Internal Server Error";
    }
}

/* An error as JSON: {"type":"query_error",...} with the same fields as on the WebSocket. */
void gw_http_error(gw_client_t *c, int status, const char *code, const char *sqlstate,
                   const char *message)
{
    const char *reason = status_reason(status);
    gwbuf_t b = {0};
    gwbuf_puts(&b, "{\"type\":\"query_error\",\"request_id\":null,\"stream_id\":null,\"code\":");
    gwbuf_json_cstr(&b, code);
    gwbuf_puts(&b, ",\"sqlstate\":");
    gwbuf_json_cstr(&b, sqlstate);
    gwbuf_puts(&b, ",\"message\":");
    gwbuf_json_cstr(&b, message);
    gwbuf_puts(&b, "}\n");
    const char *extra = status == 401 ? "WWW-Authenticate: Bearer realm=\"fwire\"\r\n" : NULL;
    if (b.failed)
        respond(c, 500, "Internal Server Error", "text/plain", "out of memory\n", 14, NULL);
    else
        respond(c, status, reason, "application/json", b.ptr, b.len, extra);
    gwbuf_free(&b);
}

bool gw_token_ok(const gw_server_t *srv, const char *tok, size_t len)
{
    if (srv->cfg.token == NULL)
        return true;
    if (tok == NULL)
        return false;
    uint8_t h[32];
    unsigned int n = 0;
    if (EVP_Digest(tok, len, h, &n, EVP_sha256(), NULL) != 1 || n != 32)
        return false;
    return CRYPTO_memcmp(h, srv->token_hash, 32) == 0;
}

static int hexval(char h)
{
    return h >= '0' && h <= '9'   ? h - '0'
           : h >= 'a' && h <= 'f' ? h - 'a' + 10
           : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                  : -1;
}

/* The percent-decoded value of `name` in a query string, into out (NUL-terminated). */
static bool query_param(const char *query, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (const char *p = query; p != NULL && *p != '\0';) {
        size_t n = strcspn(p, "&");
        if (n > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
            size_t k = 0;
            for (size_t i = nl + 1; i < n; i++) {
                char ch = p[i];
                if (ch == '%') {
                    if (i + 2 >= n)
                        return false;
                    int hi = hexval(p[i + 1]), lo = hexval(p[i + 2]);
                    if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                        return false;
                    ch = (char)(hi * 16 + lo);
                    i += 2;
                } else if (ch == '+') {
                    ch = ' ';
                }
                if (k + 1 >= cap)
                    return false;
                out[k++] = ch;
            }
            out[k] = '\0';
            return true;
        }
        p += n;
        if (*p == '&')
            p++;
    }
    return false;
}

/* Token from `Authorization: Bearer T` or `?token=T`. */
static bool request_authorized(gw_client_t *c, const char *query, bool header_allowed)
{
    gw_server_t *srv = c->srv;
    if (srv->cfg.token == NULL)
        return true;
    bool ok = false;
    if (header_allowed && c->l_auth > 7 && strncasecmp(c->h_auth, "Bearer ", 7) == 0)
        ok = gw_token_ok(srv, c->h_auth + 7, c->l_auth - 7);
    char tok[GW_HEADER_MAX];
    if (!ok && query != NULL && query_param(query, "token", tok, sizeof(tok)))
        ok = gw_token_ok(srv, tok, strlen(tok));
    if (!ok)
        srv->c.auth_failures_total++;
    return ok;
}

static const gw_asset_t *find_asset(const char *path)
{
    if (strcmp(path, "/") == 0)
        path = "/index.html";
    for (size_t i = 0; i < gw_nassets; i++)
        if (strcmp(gw_assets[i].path, path) == 0)
            return &gw_assets[i];
    return NULL;
}

static bool origin_allowed(const gw_client_t *c)
{
    if (c->l_origin == 0)
        return true; /* not a browser: curl, scripts */
    const gw_config_t *cfg = &c->srv->cfg;
    for (size_t i = 0; i < cfg->norigins; i++)
        if (strcmp(cfg->origins[i], "*") == 0 || strcmp(cfg->origins[i], c->h_origin) == 0)
            return true;
    /* same origin: the page we served, on the Host the browser used */
    const char *o = c->h_origin;
    const char *rest = strncmp(o, "http://", 7) == 0    ? o + 7
                       : strncmp(o, "https://", 8) == 0 ? o + 8
                                                        : NULL;
    return rest != NULL && c->l_host > 0 && strcasecmp(rest, c->h_host) == 0;
}

void gw_metrics_respond(gw_client_t *c)
{
    gwbuf_t b = {0};
    long need = fw_metrics_render(NULL, 0);
    if (need > 0) {
        char *lib = malloc((size_t)need + 1);
        if (lib != NULL) {
            long got = fw_metrics_render(lib, (size_t)need + 1);
            if (got > 0 && got <= need)
                gwbuf_append(&b, lib, (size_t)got);
            free(lib);
        }
    }
    gw_streams_metrics(c->srv, &b);
    if (b.failed)
        respond(c, 500, "Internal Server Error", "text/plain", "out of memory\n", 14, NULL);
    else
        respond(c, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", b.ptr, b.len, NULL);
    gwbuf_free(&b);
}

static void route(gw_client_t *c, const uint8_t *rest, size_t rest_len)
{
    gw_server_t *srv = c->srv;
    srv->c.http_requests_total++;
    char *query = strchr(c->url, '?');
    if (query != NULL)
        *query++ = '\0';
    const char *path = c->url;
    gw_log(srv, "client %llu: %s %s", (unsigned long long)c->id,
           http_method_str((enum http_method)c->parser.method), path);
    /* HTTP/1.0 and 1.1 only: a request line without a version (HTTP/0.9's form) is
     * malformed here, and other versions are not spoken (RFC 9110 15.6.6) */
    if (c->parser.http_major == 0) {
        gw_http_error(c, 400, "bad_request", NULL, "request line without HTTP/1.x version");
        return;
    }
    if (c->parser.http_major != 1 || c->parser.http_minor > 1) {
        gw_http_error(c, 505, "bad_request", NULL, "only HTTP/1.0 and HTTP/1.1 are served");
        return;
    }
    if (c->dup_header) {
        gw_http_error(c, 400, "bad_request", NULL,
                      "a header that may appear once (Host, Origin, Authorization, "
                      "Sec-WebSocket-*) appeared twice");
        return;
    }
    if (c->parser.method != HTTP_GET) {
        gw_http_error(c, 405, "bad_request", NULL, "only GET is served");
        return;
    }
    if (strcmp(path, "/healthz") == 0) {
        const char ok[] = "{\"status\":\"ok\"}\n";
        respond(c, 200, "OK", "application/json", ok, sizeof(ok) - 1, NULL);
        return;
    }
    if (strcmp(path, "/readyz") == 0) {
        /* ready: not stopping or draining, and PostgreSQL answered lately (serve_pool.c: an
         * acquire, or the probe's round trip, within the last 3 s, and no failure since) */
        char why[320];
        if (srv->stopping || srv->draining) {
            gw_http_error(c, 503, "shutdown", NULL, "the server is stopping");
        } else if (!gw_ready(srv, why, sizeof(why))) {
            gw_http_error(c, 503, "unavailable", NULL, why);
        } else {
            const char ok[] = "{\"status\":\"ready\"}\n";
            respond(c, 200, "OK", "application/json", ok, sizeof(ok) - 1, NULL);
        }
        return;
    }
    if (c->probe_only) {
        srv->c.connections_rejected_total++;
        gw_http_error(c, 503, "limit", NULL,
                      "too many connections (--max-connections, or per address): only "
                      "/healthz and /readyz are answered");
        return;
    }
    /* DNS rebinding: a page whose name now resolves to this address passes the same-origin
     * check of /ws (its Origin matches its Host), and needs none for the rest; its Host is
     * still its own name, so only this machine's names (and --allow-host) are served.
     * /healthz and /readyz (above) stay open to anything: probes use whatever name they were
     * given. */
    if (!gw_host_allowed(c->l_host > 0 ? c->h_host : NULL, srv->cfg.listen_host,
                         srv->cfg.listen_port, srv->cfg.hosts, srv->cfg.nhosts)) {
        char msg[160];
        snprintf(msg, sizeof(msg), "Host \"%.60s\" is not this server (see --allow-host)",
                 c->h_host);
        gw_http_error(c, 421, "forbidden", NULL, msg);
        return;
    }
    /* An Upgrade to anything but websocket (h2c, say) is optional for the server to honour
     * (RFC 9110 7.8): such a request is answered as the plain GET it also is. */
    bool ws_upgrade = c->l_upgrade > 0 && gw_header_has_token(c->h_upgrade, "websocket");
    if (ws_upgrade || strcmp(path, "/ws") == 0) {
        if (strcmp(path, "/ws") != 0) {
            gw_http_error(c, 404, "not_found", NULL, "WebSocket endpoint is /ws");
            return;
        }
        if (c->parser.http_minor == 0) {
            /* RFC 6455 4.1: the opening handshake is HTTP/1.1 or later */
            gw_http_error(c, 400, "bad_request", NULL, "a WebSocket handshake needs HTTP/1.1");
            return;
        }
        if (!request_authorized(c, query, true)) {
            gw_http_error(c, 401, "unauthorized", NULL,
                          "missing or wrong token: connect to /ws?token=TOKEN");
            return;
        }
        if (!origin_allowed(c)) {
            gw_http_error(c, 403, "forbidden", NULL,
                          "cross-origin WebSocket refused (see --allow-origin)");
            return;
        }
        if (srv->draining) {
            /* a balancer retries a 503 on another gateway (docs/haproxy.md) */
            gw_http_error(c, 503, "shutdown", NULL, "the server is shutting down");
            return;
        }
        gw_ws_accept(c, rest, rest_len);
        return;
    }

    if (strcmp(path, "/metrics") == 0) {
        if (!request_authorized(c, query, true)) {
            gw_http_error(c, 401, "unauthorized", NULL, "missing or wrong token");
            return;
        }
        gw_metrics_respond(c);
        return;
    }
    if (strcmp(path, "/entities") == 0) { /* the page's suggestions: the --allow list */
        if (!request_authorized(c, query, true)) {
            gw_http_error(c, 401, "unauthorized", NULL, "missing or wrong token");
            return;
        }
        gwbuf_t b = {0};
        gwbuf_puts(&b, "{\"entities\":[");
        for (size_t i = 0; i < srv->cfg.nallow; i++) {
            gwbuf_puts(&b, i > 0 ? "," : "");
            gwbuf_json_cstr(&b, srv->cfg.allow[i]);
        }
        gwbuf_puts(&b, "]}\n");
        if (b.failed)
            gw_http_error(c, 500, "FW_ENOMEM", NULL, "out of memory");
        else
            respond(c, 200, "OK", "application/json", b.ptr, b.len, NULL);
        gwbuf_free(&b);
        return;
    }
    if (strncmp(path, "/stream/", 8) == 0) {
        if (!request_authorized(c, query, true)) {
            gw_http_error(c, 401, "unauthorized", NULL, "missing or wrong token");
            return;
        }
        gw_request_t req;
        gw_reqerr_t err;
        int rc = gw_request_from_url(path + 8, query, &req, &err);
        if (rc == -2) {
            gw_http_error(c, 500, "FW_ENOMEM", NULL, "out of memory");
            return;
        }
        if (rc < 0) {
            srv->c.bad_messages_total++;
            gw_http_error(c, 400, err.code, NULL, err.message);
            return;
        }
        if (!gw_entity_allowed(srv, req.entity)) {
            char msg[160];
            snprintf(msg, sizeof(msg), "entity \"%.60s\" is not in the allowlist", req.entity);
            gw_request_free(&req);
            gw_http_error(c, 403, "not_allowed", NULL, msg);
            return;
        }
        c->mode = GW_CLIENT_NDJSON;
        gw_stream_request(c, &req);
        gw_request_free(&req);
        /* read on, only to see the client go away while its stream waits or runs (on_read
         * drops whatever it sends) */
        if (c->mode == GW_CLIENT_NDJSON && !c->closing)
            gw_client_start_reading(c);
        return;
    }
    const gw_asset_t *a = find_asset(path);
    if (a != NULL) {
        respond(c, 200, "OK", a->ctype, a->data, a->len, NULL);
        return;
    }
    gw_http_error(c, 404, "not_found", NULL, "no such page");
}

/* ---- http-parser callbacks: copy what we need into the client's fixed buffers ---- */

static gw_client_t *client_of(http_parser *p)
{
    return p->data;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    gw_client_t *c = client_of(p);
    if (len >= sizeof(c->url) - c->url_len) {
        c->header_too_big = true;
        return 1;
    }
    memcpy(c->url + c->url_len, at, len);
    c->url_len += len;
    c->url[c->url_len] = '\0';
    return 0;
}

static void header_done(gw_client_t *c)
{
    if (c->value_dst != NULL)
        c->value_dst[*c->value_len] = '\0';
    c->value_dst = NULL;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    gw_client_t *c = client_of(p);
    c->line_done = true;
    if (c->header_state != 1) {
        header_done(c);
        c->field_len = 0;
        c->header_state = 1;
    }
    size_t room = sizeof(c->field) - 1 - c->field_len;
    size_t n = len < room ? len : room; /* long names are not ones we keep */
    memcpy(c->field + c->field_len, at, n);
    c->field_len += n;
    c->field[c->field_len] = '\0';
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    gw_client_t *c = client_of(p);
    if (c->header_state != 2) {
        c->header_state = 2;
        /* `once`: a header that must not repeat. Two Host headers are a 400 (RFC 9112 3.2):
         * a proxy in front may have checked one and this server would act on the other. */
        static const struct {
            const char *name;
            size_t buf_off, len_off, cap;
            bool once;
        } keep[] = {
#define K(n, f, o)                                                  \
    {n, offsetof(gw_client_t, h_##f), offsetof(gw_client_t, l_##f), \
     sizeof(((gw_client_t *)0)->h_##f), o}
            K("upgrade", upgrade, false),      K("connection", connection, false),
            K("sec-websocket-key", key, true), K("sec-websocket-version", version, true),
            K("authorization", auth, true),    K("host", host, true),
            K("origin", origin, true),
#undef K
        };
        c->value_dst = NULL;
        for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
            if (strcasecmp(c->field, keep[i].name) == 0) {
                c->value_dst = (char *)c + keep[i].buf_off;
                c->value_len = (size_t *)(void *)((char *)c + keep[i].len_off);
                c->value_cap = keep[i].cap;
                if (keep[i].once && (c->seen_once & (1u << i)) != 0)
                    c->dup_header = true;
                c->seen_once |= 1u << i;
                *c->value_len = 0; /* a repeated list header: the last one counts */
                break;
            }
        }
    }
    if (c->value_dst == NULL)
        return 0;
    if (len >= c->value_cap - *c->value_len) {
        c->header_too_big = true;
        return 1;
    }
    memcpy(c->value_dst + *c->value_len, at, len);
    *c->value_len += len;
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    gw_client_t *c = client_of(p);
    c->line_done = true;
    header_done(c);
    c->header_state = 0;
    /* no request we serve has a body: skip it instead of reading it */
    return 0;
}

static int on_message_complete(http_parser *p)
{
    gw_client_t *c = client_of(p);
    c->message_done = true;
    http_parser_pause(p, 1); /* one request per connection: stop here */
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_message_complete = on_message_complete,
};

static void http_on_read(gw_client_t *c, const char *data, size_t len)
{
    size_t n = http_parser_execute(&c->parser, &parser_settings, data, len);
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    c->request_bytes += n;
    if (c->request_bytes > REQUEST_MAX_BYTES) {
        gw_http_error(c, 431, "bad_request", NULL, "request too large");
        return;
    }
    if (c->message_done) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
        route(c, (const uint8_t *)data + n, len - n);
        return;
    }
    if (c->header_too_big) {
        gw_http_error(c, 431, "bad_request", NULL, "request line or header too large");
        return;
    }
    if (e != HPE_OK) {
        char msg[160];
        snprintf(msg, sizeof(msg), "bad HTTP request: %s", http_errno_description(e));
        gw_http_error(c, 400, "bad_request", NULL, msg);
        return;
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    buf->base = read_buffer;
    buf->len = sizeof(read_buffer);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    gw_client_t *c = stream->data;
    if (nread == 0 || c->closed)
        return;
    if (nread < 0) {
        if (nread != UV_EOF)
            gw_log(c->srv, "client %llu: read: %s", (unsigned long long)c->id,
                   uv_strerror((int)nread));
        gw_client_close(c);
        return;
    }
    if (c->tls.ssl != NULL)
        gw_tls_on_read(c, (const uint8_t *)buf->base, (size_t)nread);
    else
        gw_client_dispatch(c, (const uint8_t *)buf->base, (size_t)nread);
}

void gw_client_dispatch(gw_client_t *c, const uint8_t *data, size_t len)
{
    switch (c->mode) {
    case GW_CLIENT_HTTP:
        http_on_read(c, (const char *)data, len);
        break;
    case GW_CLIENT_WS:
        gw_ws_on_read(c, data, len);
        break;
    case GW_CLIENT_NDJSON:
    case GW_CLIENT_RESPONSE:
        break; /* read only to see the client go away */
    }
}

void gw_client_start_reading(gw_client_t *c)
{
    if (c->reading || c->closed)
        return;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0) {
        c->reading = true;
        gw_tls_pump(c); /* records received before reading stopped */
    }
}

static void free_unaccepted(uv_handle_t *h)
{
    free(h->data);
}

static void on_connection(uv_stream_t *server, int status)
{
    gw_server_t *srv = server->data;
    if (status < 0 || srv->stopping)
        return;
    gw_client_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return;
    c->srv = srv;
    c->id = ++srv->next_client_id;
    uv_tcp_init(srv->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
        /* not yet a client (no list, no parser): only its memory to free, through h->data,
         * since the handle is not the first member of the client */
        uv_close((uv_handle_t *)&c->tcp, free_unaccepted);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    struct sockaddr_storage peer;
    int plen = sizeof(peer);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&peer, &plen) == 0) {
        if (peer.ss_family == AF_INET) {
            memcpy(c->peer, &((struct sockaddr_in *)&peer)->sin_addr, 4);
            c->peer_len = 4;
        } else if (peer.ss_family == AF_INET6) {
            memcpy(c->peer, &((struct sockaddr_in6 *)&peer)->sin6_addr, 16);
            c->peer_len = 16;
        }
    }
    /* what this address already holds: every live connection, and those still sending their
     * request (idle ones included) */
    uint32_t same = 0, same_hs = 0;
    for (const gw_client_t *o = srv->clients; o != NULL; o = o->next) {
        if (o->closing || o->probe_only || o->peer_len != c->peer_len || c->peer_len == 0 ||
            memcmp(o->peer, c->peer, c->peer_len) != 0)
            continue;
        same++;
        same_hs += o->mode == GW_CLIENT_HTTP;
    }
    const char *over = NULL;
    if (srv->nclients - srv->nprobe >= srv->cfg.max_connections)
        over = "too many connections (--max-connections)";
    else if (same >= srv->cfg.max_connections_per_address)
        over = "too many connections from this address (--max-connections-per-address)";
    else if (same_hs >= srv->cfg.max_handshakes_per_address)
        over = "too many requests in progress from this address (--max-handshakes-per-address)";
    c->next = srv->clients;
    if (srv->clients != NULL)
        srv->clients->prev = c;
    srv->clients = c;
    srv->nclients++;
    srv->c.connections_total++;
    c->accepted_ms = gw_now_ms(srv);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    if (srv->tls_ctx != NULL && gw_tls_client_init(c) < 0) {
        gw_client_close(c);
        return;
    }
    if (over != NULL) {
        if (srv->nprobe < PROBE_SLOTS) {
            c->probe_only = true; /* answers /healthz and /readyz, 503 to anything else */
            srv->nprobe++;
        } else {
            srv->c.connections_rejected_total++;
            gw_http_error(c, 503, "limit", NULL, over);
            return;
        }
    }
    gw_client_start_reading(c);
}

int gw_http_listen(gw_server_t *srv)
{
    const gw_config_t *cfg = &srv->cfg;
    struct sockaddr_storage addr;
    int rc;
    if (strchr(cfg->listen_host, ':') != NULL)
        rc = uv_ip6_addr(cfg->listen_host, cfg->listen_port, (struct sockaddr_in6 *)&addr);
    else
        rc = uv_ip4_addr(cfg->listen_host, cfg->listen_port, (struct sockaddr_in *)&addr);
    if (rc < 0)
        return rc;
    uv_tcp_init(srv->loop, &srv->listener);
    srv->listener.data = srv;
    srv->listening = true;
    rc = uv_tcp_bind(&srv->listener, (const struct sockaddr *)&addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&srv->listener, 128, on_connection);
    if (rc == 0 && srv->cfg.listen_port == 0) {
        /* port 0: the kernel chose; say which (the tests read it from the first line) */
        struct sockaddr_storage got;
        int len = sizeof(got);
        if (uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&got, &len) == 0)
            srv->cfg.listen_port =
                ntohs(got.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&got)->sin6_port
                                                : ((struct sockaddr_in *)&got)->sin_port);
    }
    return rc;
}

void gw_http_stop_listening(gw_server_t *srv)
{
    if (srv->listening) {
        srv->listening = false;
        uv_close((uv_handle_t *)&srv->listener, NULL);
    }
}

void gw_http_tick(gw_server_t *srv, uint64_t now)
{
    for (gw_client_t *c = srv->clients, *next; c != NULL; c = next) {
        next = c->next;
        if (c->closed)
            continue;
        if (c->mode == GW_CLIENT_WS) {
            gw_ws_tick(c, now);
            if (c->closed)
                continue;
        }
        if (c->inflight > 0 && gw_elapsed(now, c->last_write_ms) > WRITE_STALL_MS) {
            gw_log(srv, "client %llu: took no output for %d ms, closed", (unsigned long long)c->id,
                   WRITE_STALL_MS);
            gw_client_close(c);
            continue;
        }
        if (c->mode == GW_CLIENT_HTTP && (!c->line_done || c->probe_only) &&
            gw_elapsed(now, c->accepted_ms) > REQUEST_LINE_TIMEOUT_MS) {
            gw_log(srv, "client %llu: no request line within %d ms, dropped",
                   (unsigned long long)c->id, REQUEST_LINE_TIMEOUT_MS);
            gw_http_error(c, 408, "timeout", NULL, "request took too long");
            continue;
        }
        if (c->mode == GW_CLIENT_HTTP && gw_elapsed(now, c->accepted_ms) > REQUEST_TIMEOUT_MS) {
            gw_log(srv, "client %llu: request not complete within %d ms, dropped",
                   (unsigned long long)c->id, REQUEST_TIMEOUT_MS);
            gw_http_error(c, 408, "timeout", NULL, "request took too long");
        }
    }
}
