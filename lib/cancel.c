/* SPDX-License-Identifier: MIT */
/* The cancel connection (see cancel.h). */
#include "cancel.h"

#include "alloc.h"

#include <stdio.h>
#include <string.h>

typedef enum { K_CONNECTING, K_SSL_RESPONSE, K_HANDSHAKE, K_SENT, K_DONE } kstate_t;

struct fw__cancel_s {
    uv_loop_t *loop;
    fw__sock_t sock;
    uv_timer_t timer;
    fw__tls_t *tls;
    fw__tls_mode_t mode;
    kstate_t state;
    int open;                /* handles still to close */
    fw__pq_cancel_key_t key; /* the connection's BackendKeyData: pid and 4..256 key bytes */
    bool tcp;
    fw__sock_tuning_t tuning;
    fw__cancel_cb cb;
    void *ud;
    uint8_t buf[4096];
};

static void maybe_free(fw__cancel_t *k)
{
    if (k->open == 0) {
        fw__tls_free(k->tls);
        fw__wipe(&k->key, sizeof(k->key));
        fw__free(k);
    }
}

static void on_timer_closed(uv_handle_t *h)
{
    fw__cancel_t *k = h->data;
    k->open--;
    maybe_free(k);
}

static void on_sock_closed(fw__sock_t *s)
{
    fw__cancel_t *k = s->data;
    k->open--;
    maybe_free(k);
}

static void shut(fw__cancel_t *k)
{
    k->state = K_DONE;
    uv_timer_stop(&k->timer);
    uv_close((uv_handle_t *)&k->timer, on_timer_closed);
    fw__sock_close(&k->sock, on_sock_closed);
}

static void finish(fw__cancel_t *k, int status, const char *why)
{
    if (k->state == K_DONE)
        return;
    fw__cancel_cb cb = k->cb;
    shut(k);
    if (cb != NULL)
        cb(k, status, why, k->ud);
}

void fw__cancel_detach(fw__cancel_t *k)
{
    if (k != NULL)
        k->cb = NULL; /* runs to its end (or timeout) on its own, then frees itself */
}

void fw__cancel_abort(fw__cancel_t *k)
{
    if (k == NULL || k->state == K_DONE)
        return;
    k->cb = NULL;
    shut(k);
}

static void on_write_error(fw__sock_t *s, int err)
{
    fw__cancel_t *k = s->data;
    /* The server may close as soon as it has read the request: that is success. */
    if (k->state == K_SENT)
        finish(k, 0, NULL);
    else
        finish(k, err, uv_strerror(err));
}

static int flush_tls(fw__cancel_t *k)
{
    const uint8_t *p;
    size_t n;
    fw__tls_out(k->tls, &p, &n);
    if (n == 0)
        return 0;
    int rc = fw__sock_write(&k->sock, p, n, on_write_error);
    fw__tls_out_consumed(k->tls, n);
    return rc;
}

static void send_request(fw__cancel_t *k)
{
    fw__pq_buf_t b;
    fw__pq_buf_init(&b, &fw__pq_alloc);
    int rc = fw__pq_put_cancel_request(&b, &k->key); /* the whole key, 12 + len bytes */
    if (rc == 0) {
        if (k->tls != NULL) {
            long w = fw__tls_write(k->tls, b.data, b.len);
            rc = w == (long)b.len ? flush_tls(k) : (w < 0 ? (int)w : FW_ETLS);
        } else {
            rc = fw__sock_write(&k->sock, b.data, b.len, on_write_error);
        }
    }
    fw__pq_buf_free(&b); /* zeroes the secret */
    if (rc < 0) {
        finish(k, rc, "could not send the CancelRequest");
        return;
    }
    k->state = K_SENT;
}

/* Feeds handshake bytes (none at its start) and sends the request once TLS is up. */
static void handshake(fw__cancel_t *k, const uint8_t *p, size_t n)
{
    if (n > 0 && fw__tls_feed(k->tls, p, n) < 0) {
        finish(k, FW_ENOMEM, "out of memory");
        return;
    }
    int hs = fw__tls_handshake(k->tls);
    if (hs >= 0 && flush_tls(k) < 0)
        hs = FW_ETLS;
    if (hs < 0) {
        finish(k, FW_ETLS, fw__tls_error(k->tls));
        return;
    }
    if (hs == FW__TLS_DONE)
        send_request(k);
}

static void on_bytes(fw__cancel_t *k, const uint8_t *p, size_t n)
{
    switch (k->state) {
    case K_SSL_RESPONSE: {
        char why[256];
        int r = fw__tls_ssl_response(p, n, k->mode, why, sizeof(why));
        if (r != FW__TLS_RESP_TLS) {
            /* The query's connection has TLS: its cancel never goes in plaintext. */
            finish(k, FW_ETLS, r < 0 ? why : "the server refused TLS on the cancel connection");
            return;
        }
        k->state = K_HANDSHAKE;
        handshake(k, NULL, 0);
        return;
    }
    case K_HANDSHAKE:
        handshake(k, p, n);
        return;
    case K_SENT:
        /* Nothing is expected but the end; a TLS close_notify may come first. */
        if (k->tls != NULL) {
            (void)fw__tls_feed(k->tls, p, n);
            for (;;) {
                long r = fw__tls_read(k->tls, k->buf, sizeof(k->buf));
                if (r <= 0) {
                    if (r == FW__TLS_CLOSED)
                        finish(k, 0, NULL);
                    return;
                }
            }
        }
        return;
    case K_CONNECTING:
    case K_DONE:
        return;
    }
}

static void on_readable(fw__sock_t *s)
{
    fw__cancel_t *k = s->data;
    while (k->state != K_DONE) {
        ssize_t n = fw__sock_recv(s, k->buf, sizeof(k->buf));
        if (n == UV_EAGAIN)
            return;
        if (n == UV_EOF || (n < 0 && k->state == K_SENT)) {
            /* The server closed the cancel connection: the request was acted on. */
            if (k->state == K_SENT)
                finish(k, 0, NULL);
            else
                finish(k, FW_ECLOSED, "the server closed the cancel connection early");
            return;
        }
        if (n < 0) {
            finish(k, (int)n, uv_strerror((int)n));
            return;
        }
        uint8_t copy[sizeof(k->buf)];
        memcpy(copy, k->buf, (size_t)n);
        on_bytes(k, copy, (size_t)n);
    }
}

static void on_connected(fw__sock_t *s, int status)
{
    fw__cancel_t *k = s->data;
    if (status < 0) {
        finish(k, status, uv_strerror(status));
        return;
    }
    if (k->tcp) {
        int rc = fw__sock_tune(s, &k->tuning);
        if (rc < 0) {
            finish(k, rc, uv_strerror(rc));
            return;
        }
    }
    fw__sock_read_start(s, on_readable);
    if (k->tls == NULL) {
        send_request(k);
        return;
    }
    fw__pq_buf_t b;
    fw__pq_buf_init(&b, &fw__pq_alloc);
    int rc = fw__pq_put_ssl_request(&b);
    if (rc == 0)
        rc = fw__sock_write(&k->sock, b.data, b.len, on_write_error);
    fw__pq_buf_free(&b);
    if (rc < 0) {
        finish(k, rc, uv_strerror(rc));
        return;
    }
    k->state = K_SSL_RESPONSE;
}

static void on_timeout(uv_timer_t *t)
{
    fw__cancel_t *k = t->data;
    finish(k, FW_ETIMEDOUT, "the cancel connection did not complete in time");
}

int fw__cancel_start(fw_conn_t *c, uint32_t timeout_ms, fw__cancel_cb cb, void *ud,
                     fw__cancel_t **out)
{
    *out = NULL;
    if (c->peer_len == 0 || c->backend_key.len == 0)
        return FW_ESTATE; /* no address, or no BackendKeyData to cancel with */
    fw__cancel_t *k = fw__calloc(1, sizeof(*k));
    if (k == NULL)
        return FW_ENOMEM;
    k->loop = c->loop;
    k->tcp = !fw__dial_is_unix(&c->dial);
    fw__conn_tuning(c, &k->tuning); /* keepalives on the cancel connection too (decision 9) */
    k->key = c->backend_key;
    k->cb = cb;
    k->ud = ud;
    if (c->tls != NULL) {
        fw__tls_config_t cfg;
        fw__conn_tls_config(c, &cfg);
        /* TLS was used: require it (and keep any verification) on the cancel connection. */
        if (cfg.mode < FW__TLS_MODE_REQUIRE)
            cfg.mode = FW__TLS_MODE_REQUIRE;
        k->mode = cfg.mode;
        char why[256];
        int rc = fw__tls_new(&k->tls, &cfg, why, sizeof(why));
        if (rc < 0) {
            fw__free(k);
            return rc;
        }
    }
    uv_timer_init(c->loop, &k->timer);
    k->timer.data = k;
    k->open = 1;
    k->sock.data = k;
    int rc = fw__sock_connect(&k->sock, c->loop, (const struct sockaddr *)&c->peer, c->peer_len,
                              on_connected);
    if (rc < 0) {
        uv_close((uv_handle_t *)&k->timer, on_timer_closed);
        k->state = K_DONE;
        fw__tls_free(k->tls);
        k->tls = NULL;
        /* freed by on_timer_closed */
        return rc;
    }
    k->sock.data = k;
    k->open = 2;
    uv_timer_start(&k->timer, on_timeout, timeout_ms, 0);
    *out = k;
    return 0;
}
