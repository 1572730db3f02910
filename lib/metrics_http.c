/* SPDX-License-Identifier: MIT */
/*
 * fw_metrics_listen: a deliberately tiny HTTP/1.1 server for Prometheus scrapes, on a libuv
 * loop. One request per connection: read up to the end of the headers (8 KiB at most, 10 s at
 * most), answer `GET /metrics` (or HEAD) with fw_metrics_render's text, anything else with a
 * short error, then close. No request body, keep-alive or chunked encoding is ever needed by a
 * scraper, so none is parsed: the request line is all that is read.
 */
#include "alloc.h"
#include "conn.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#define REQ_MAX 8192
#define REQ_TIMEOUT_MS 10000
#define MAX_CLIENTS 32

typedef struct client_s {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wr;
    struct client_s *prev, *next;
    struct fw_metrics_listener_s *l;
    int handles; /* tcp and timer still open */
    bool done;   /* answered or dropped: closing */
    size_t len;
    char *resp;
    char req[REQ_MAX];
} client_t;

struct fw_metrics_listener_s {
    uv_tcp_t server;
    uv_loop_t *loop;
    fw_runtime_t *rt; /* made by fw_metrics_listen_rt */
    client_t *clients;
    int nclients;
    int handles; /* the server and every client handle still open */
    int port;
    bool closing;
    /* threaded close: the caller waits for the memory to go */
    pthread_mutex_t *done_mu;
    pthread_cond_t *done_cv;
    bool *done_flag;
};

static void maybe_free(fw_metrics_listener_t *l)
{
    if (!l->closing || l->handles > 0)
        return;
    pthread_mutex_t *mu = l->done_mu;
    pthread_cond_t *cv = l->done_cv;
    bool *flag = l->done_flag;
    fw__free(l);
    if (mu != NULL) {
        pthread_mutex_lock(mu);
        *flag = true;
        pthread_cond_signal(cv);
        pthread_mutex_unlock(mu);
    }
}

static void on_client_closed(uv_handle_t *h)
{
    client_t *c = h->data;
    fw_metrics_listener_t *l = c->l;
    l->handles--;
    if (--c->handles > 0)
        return;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        l->clients = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    l->nclients--;
    fw__free(c->resp);
    fw__free(c);
    maybe_free(l);
}

static void drop(client_t *c)
{
    c->done = true;
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, on_client_closed);
    if (!uv_is_closing((uv_handle_t *)&c->timer))
        uv_close((uv_handle_t *)&c->timer, on_client_closed);
}

static void on_written(uv_write_t *w, int status)
{
    (void)status;
    drop(w->data);
}

/* Sends head (and body unless NULL) and closes once written. `c->resp` owns the bytes. */
static void respond(client_t *c, int code, const char *reason, const char *type, const char *body,
                    size_t body_len, bool head_only)
{
    char head[256];
    int hn = snprintf(head, sizeof(head),
                      "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                      "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                      code, reason, type, body_len);
    size_t total = (size_t)hn + (head_only ? 0 : body_len);
    c->resp = fw__malloc(total);
    if (c->resp == NULL) {
        drop(c);
        return;
    }
    memcpy(c->resp, head, (size_t)hn);
    if (!head_only && body_len > 0)
        memcpy(c->resp + hn, body, body_len);
    uv_buf_t b = uv_buf_init(c->resp, (unsigned)total);
    c->wr.data = c;
    c->done = true;
    uv_read_stop((uv_stream_t *)&c->tcp);
    if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, on_written) < 0)
        drop(c);
}

static void respond_text(client_t *c, int code, const char *reason, const char *text)
{
    respond(c, code, reason, "text/plain; charset=utf-8", text, strlen(text), false);
}

static void serve_metrics(client_t *c, bool head_only)
{
    /* The text may grow between the sizing call and the render: retry with what it says. */
    size_t cap = 64 * 1024;
    for (int tries = 0; tries < 4; tries++) {
        char *buf = fw__malloc(cap);
        if (buf == NULL)
            break;
        long n = fw_metrics_render(buf, cap);
        if (n >= 0 && (size_t)n < cap) {
            respond(c, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", buf, (size_t)n,
                    head_only);
            fw__free(buf);
            return;
        }
        fw__free(buf);
        if (n < 0)
            break;
        cap = (size_t)n + 4096;
    }
    respond_text(c, 500, "Internal Server Error", "could not render the metrics\n");
}

/* The request is complete (headers ended): look at its first line only. */
static void handle(client_t *c)
{
    const char *r = c->req;
    const char *sp1 = memchr(r, ' ', c->len);
    const char *eol = memchr(r, '\r', c->len);
    if (sp1 == NULL || eol == NULL || sp1 > eol) {
        respond_text(c, 400, "Bad Request", "bad request line\n");
        return;
    }
    size_t mlen = (size_t)(sp1 - r);
    const char *target = sp1 + 1;
    const char *sp2 = memchr(target, ' ', (size_t)(eol - target));
    if (sp2 == NULL || (size_t)(eol - sp2) < 9 || memcmp(sp2 + 1, "HTTP/1.", 7) != 0) {
        respond_text(c, 400, "Bad Request", "bad request line\n");
        return;
    }
    size_t tlen = (size_t)(sp2 - target);
    bool is_get = mlen == 3 && memcmp(r, "GET", 3) == 0;
    bool is_head = mlen == 4 && memcmp(r, "HEAD", 4) == 0;
    bool path_ok = (tlen == 8 && memcmp(target, "/metrics", 8) == 0) ||
                   (tlen > 8 && memcmp(target, "/metrics?", 9) == 0);
    if (!path_ok)
        respond_text(c, 404, "Not Found", "not found: the metrics are at /metrics\n");
    else if (!is_get && !is_head)
        respond_text(c, 405, "Method Not Allowed", "only GET and HEAD\n");
    else
        serve_metrics(c, is_head);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    client_t *c = h->data;
    (void)suggested;
    *buf = uv_buf_init(c->req + c->len, (unsigned)(REQ_MAX - c->len));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    client_t *c = s->data;
    (void)buf;
    if (c->done)
        return;
    if (n < 0) {
        drop(c);
        return;
    }
    size_t from = c->len >= 3 ? c->len - 3 : 0;
    c->len += (size_t)n;
    for (size_t i = from; i + 4 <= c->len; i++) {
        if (memcmp(c->req + i, "\r\n\r\n", 4) == 0) {
            handle(c);
            return;
        }
    }
    if (c->len == REQ_MAX)
        respond_text(c, 431, "Request Header Fields Too Large", "request too large\n");
}

static void on_timeout(uv_timer_t *t)
{
    drop(t->data);
}

static void on_connection(uv_stream_t *server, int status)
{
    fw_metrics_listener_t *l = server->data;
    if (status < 0 || l->closing)
        return;
    client_t *c = fw__calloc(1, sizeof(*c));
    if (c == NULL)
        return; /* the connection stays in the backlog until the next accept */
    c->l = l;
    uv_tcp_init(l->loop, &c->tcp);
    uv_timer_init(l->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->handles = 2;
    l->handles += 2;
    c->next = l->clients;
    if (l->clients != NULL)
        l->clients->prev = c;
    l->clients = c;
    l->nclients++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0 || l->nclients > MAX_CLIENTS) {
        drop(c);
        return;
    }
    uv_timer_start(&c->timer, on_timeout, REQ_TIMEOUT_MS, 0);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
        drop(c);
}

static void on_server_closed(uv_handle_t *h)
{
    fw_metrics_listener_t *l = h->data;
    l->handles--;
    maybe_free(l);
}

static void set_err(fw_error_t *err, int code, const char *what, const char *host, int port)
{
    if (err == NULL)
        return;
    memset(err, 0, sizeof(*err));
    err->code = code;
    snprintf(err->message, sizeof(err->message), "metrics listener on %s port %d: %s", host,
             port, what);
}

int fw_metrics_listen(uv_loop_t *loop, const char *host, int port, fw_metrics_listener_t **out,
                      fw_error_t *err)
{
    if (err != NULL)
        memset(err, 0, sizeof(*err));
    if (host == NULL)
        host = "127.0.0.1";
    if (loop == NULL || out == NULL || port < 0 || port > 65535) {
        set_err(err, FW_EINVAL, "loop and out are required, port 0..65535", host, port);
        return FW_EINVAL;
    }
    *out = NULL;
    struct sockaddr_storage ss;
    int rc = strchr(host, ':') != NULL
                 ? uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss)
                 : uv_ip4_addr(host, port, (struct sockaddr_in *)&ss);
    if (rc < 0) {
        set_err(err, rc, "not a numeric IPv4 or IPv6 address", host, port);
        return rc;
    }
    fw_metrics_listener_t *l = fw__calloc(1, sizeof(*l));
    if (l == NULL) {
        set_err(err, FW_ENOMEM, "out of memory", host, port);
        return FW_ENOMEM;
    }
    l->loop = loop;
    uv_tcp_init(loop, &l->server);
    l->server.data = l;
    l->handles = 1;
    rc = uv_tcp_bind(&l->server, (const struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&l->server, 64, on_connection);
    if (rc < 0) {
        set_err(err, rc, uv_strerror(rc), host, port);
        l->closing = true;
        uv_close((uv_handle_t *)&l->server, on_server_closed);
        return rc;
    }
    struct sockaddr_storage bound;
    int blen = sizeof(bound);
    uv_tcp_getsockname(&l->server, (struct sockaddr *)&bound, &blen);
    l->port = bound.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
                                          : ntohs(((struct sockaddr_in *)&bound)->sin_port);
    *out = l;
    return 0;
}

int fw_metrics_listener_port(const fw_metrics_listener_t *l)
{
    return l != NULL ? l->port : 0;
}

/* On the loop: stop accepting, drop every client. */
static void begin_close(fw_metrics_listener_t *l)
{
    l->closing = true;
    for (client_t *c = l->clients; c != NULL; c = c->next)
        drop(c);
    uv_close((uv_handle_t *)&l->server, on_server_closed);
}

typedef struct {
    fw_runtime_t *rt;
    const char *host;
    int port;
    fw_metrics_listener_t *l;
    fw_error_t *err;
    int rc;
} listen_call_t;

static void listen_on_loop(void *arg)
{
    listen_call_t *a = arg;
    a->rc = fw_metrics_listen(fw__runtime_loop(a->rt), a->host, a->port, &a->l, a->err);
    if (a->rc == 0)
        a->l->rt = a->rt;
}

int fw_metrics_listen_rt(fw_runtime_t *rt, const char *host, int port,
                         fw_metrics_listener_t **out, fw_error_t *err)
{
    if (rt == NULL || out == NULL) {
        set_err(err, FW_EINVAL, "rt and out are required", host ? host : "127.0.0.1", port);
        return FW_EINVAL;
    }
    listen_call_t a = {rt, host, port, NULL, err, 0};
    fw__runtime_run(rt, listen_on_loop, &a);
    *out = a.l;
    return a.rc;
}

static void close_on_loop(void *arg)
{
    begin_close(arg);
}

void fw_metrics_listener_close(fw_metrics_listener_t *l)
{
    if (l == NULL)
        return;
    if (l->rt == NULL) {
        if (!l->closing)
            begin_close(l);
        return;
    }
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
    bool done = false;
    l->done_mu = &mu; /* published to the loop thread by the runtime's command queue */
    l->done_cv = &cv;
    l->done_flag = &done;
    fw__runtime_run(l->rt, close_on_loop, l);
    pthread_mutex_lock(&mu);
    while (!done)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    pthread_cond_destroy(&cv);
    pthread_mutex_destroy(&mu);
}
