/* SPDX-License-Identifier: MIT */
/* The cancel connection (see cancel.h). Bytes go through a channel (channel.c). */
#include "cancel.h"

#include "alloc.h"
#include "fw_util.h"
#include "proto.h"

#include <stdio.h>
#include <string.h>

typedef enum { K_CONNECTING, K_SSL_RESPONSE, K_HANDSHAKE, K_SENT, K_DONE } kstate_t;

struct fw__cancel_s {
    uv_loop_t *loop;
    fw__chan_t chan;
    uv_timer_t timer;
    fw__tls_mode_t mode;
    kstate_t state;
    int open;                /* handles still to close */
    fw__pq_cancel_key_t key; /* the connection's BackendKeyData: pid and 4..256 key bytes */
    bool tcp;
    fw__sock_tuning_t tuning;
    fw__cancel_cb cb;
    void *ud;
    uint8_t rbuf[4096]; /* the channel's raw reads */
    uint8_t buf[4096];  /* plaintext after the request: nothing but the end is expected */
};

static void maybe_free(fw__cancel_t *k)
{
    if (k->open == 0) {
        fw__chan_drop_tls(&k->chan);
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

static void on_chan_closed(fw__chan_t *ch)
{
    fw__cancel_t *k = ch->data;
    k->open--;
    maybe_free(k);
}

static void shut(fw__cancel_t *k)
{
    k->state = K_DONE;
    uv_timer_stop(&k->timer);
    uv_close((uv_handle_t *)&k->timer, on_timer_closed);
    fw__chan_close(&k->chan, on_chan_closed);
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

static void on_write_error(fw__chan_t *ch, int err)
{
    fw__cancel_t *k = ch->data;
    /* The server may close as soon as it has read the request: that is success. */
    if (k->state == K_SENT)
        finish(k, 0, NULL);
    else
        finish(k, err, uv_strerror(err));
}

static void send_request(fw__cancel_t *k)
{
    fw__pq_buf_t b;
    fw__pq_buf_init(&b, &fw__alloc);
    int rc = fw__pq_put_cancel_request(&b, &k->key); /* the whole key, 12 + len bytes */
    if (rc == 0)
        rc = fw__chan_write(&k->chan, b.data, b.len);
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
    int hs = fw__chan_handshake(&k->chan, p, n);
    if (hs < 0) {
        finish(k, hs == FW_ENOMEM ? hs : FW_ETLS,
               hs == FW_ENOMEM ? "out of memory" : fw__chan_tls_error(&k->chan));
        return;
    }
    if (hs == FW__TLS_DONE)
        send_request(k);
}

static void on_ssl_response(fw__cancel_t *k, const uint8_t *p, size_t n)
{
    char why[256];
    int r = fw__tls_ssl_response(p, n, k->mode, why, sizeof(why));
    if (r != FW__TLS_RESP_TLS) {
        /* The query's connection has TLS: its cancel never goes in plaintext. */
        finish(k, FW_ETLS, r < 0 ? why : "the server refused TLS on the cancel connection");
        return;
    }
    k->state = K_HANDSHAKE;
    handshake(k, NULL, 0);
}

static void on_readable(fw__chan_t *ch)
{
    fw__cancel_t *k = ch->reader;
    while (k->state != K_DONE && k->state != K_CONNECTING) {
        /* Below TLS until the handshake is done; after the request, plaintext (a TLS
         * close_notify comes out of fw__chan_read as the end). */
        bool raw = k->state != K_SENT;
        ssize_t n = raw ? fw__chan_recv_raw(ch) : fw__chan_read(ch, k->buf, sizeof(k->buf));
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
        if (k->state == K_SSL_RESPONSE)
            on_ssl_response(k, ch->rbuf, (size_t)n);
        else if (k->state == K_HANDSHAKE)
            handshake(k, ch->rbuf, (size_t)n);
        /* K_SENT: nothing is expected but the end; bytes are dropped */
    }
}

static void on_connected(fw__chan_t *ch, int status)
{
    fw__cancel_t *k = ch->data;
    if (status < 0) {
        finish(k, status, uv_strerror(status));
        return;
    }
    if (k->tcp) {
        int rc = fw__chan_tune(ch, &k->tuning);
        if (rc < 0) {
            finish(k, rc, uv_strerror(rc));
            return;
        }
    }
    fw__chan_read_start(ch, on_readable, k); /* events come from the loop, after this */
    if (ch->tls == NULL) {
        send_request(k);
        return;
    }
    k->state = K_SSL_RESPONSE;
    fw__pq_buf_t b;
    fw__pq_buf_init(&b, &fw__alloc);
    int rc = fw__pq_put_ssl_request(&b);
    if (rc == 0)
        rc = fw__chan_write(ch, b.data, b.len);
    fw__pq_buf_free(&b);
    if (rc < 0)
        finish(k, rc, uv_strerror(rc));
}

static void on_timeout(uv_timer_t *t)
{
    fw__cancel_t *k = t->data;
    finish(k, FW_ETIMEDOUT, "the cancel connection did not complete in time");
}

int fw__cancel_start(const fw__cancel_target_t *t, uint32_t timeout_ms, fw__cancel_cb cb,
                     void *ud, fw__cancel_t **out)
{
    *out = NULL;
    if (t->peer_len == 0 || t->key.len == 0)
        return FW_ESTATE; /* no address, or no BackendKeyData to cancel with */
    fw__cancel_t *k = fw__calloc(1, sizeof(*k));
    if (k == NULL)
        return FW_ENOMEM;
    k->loop = t->loop;
    k->tcp = t->tcp;
    k->tuning = t->tuning;
    k->key = t->key;
    k->cb = cb;
    k->ud = ud;
    fw__chan_init(&k->chan, k->rbuf, sizeof(k->rbuf), k, on_write_error);
    if (t->tls != NULL) {
        fw__tls_config_t cfg = *t->tls;
        /* TLS was used: require it (and keep any verification) on the cancel connection. */
        if (cfg.mode < FW__TLS_MODE_REQUIRE)
            cfg.mode = FW__TLS_MODE_REQUIRE;
        k->mode = cfg.mode;
        char why[256];
        fw__tls_t *tls = NULL;
        int rc = fw__tls_new(&tls, &cfg, why, sizeof(why));
        if (rc < 0) {
            fw__free(k);
            return rc;
        }
        fw__chan_set_tls(&k->chan, tls);
    }
    uv_timer_init(t->loop, &k->timer);
    k->timer.data = k;
    k->open = 1;
    int rc = fw__chan_connect(&k->chan, t->loop, t->peer, t->peer_len, on_connected);
    if (rc < 0) {
        uv_close((uv_handle_t *)&k->timer, on_timer_closed);
        k->state = K_DONE;
        fw__chan_drop_tls(&k->chan);
        /* freed by on_timer_closed */
        return rc;
    }
    k->open = 2;
    uv_timer_start(&k->timer, on_timeout, timeout_ms, 0);
    *out = k;
    return 0;
}
