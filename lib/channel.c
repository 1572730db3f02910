/* SPDX-License-Identifier: MIT */
/* The channel: one socket and the TLS records over it (see channel.h). */
#include "channel.h"

#include "fw_util.h"


/* The socket's owner pointer is its channel (set in fw__chan_connect). */
static fw__chan_t *chan_of(fw__sock_t *s)
{
    return s->data;
}

static void on_sock_error(fw__sock_t *s, int err)
{
    fw__chan_t *ch = chan_of(s);
    if (ch->on_error != NULL)
        ch->on_error(ch, err);
}

static void on_sock_connect(fw__sock_t *s, int status)
{
    fw__chan_t *ch = chan_of(s);
    ch->on_connect(ch, status);
}

static void on_sock_read(fw__sock_t *s)
{
    fw__chan_t *ch = chan_of(s);
    ch->on_read(ch);
}

static void on_sock_closed(fw__sock_t *s)
{
    fw__chan_t *ch = chan_of(s);
    ch->open = false;
    fw__chan_close_cb cb = ch->on_close;
    ch->on_close = NULL;
    if (cb != NULL)
        cb(ch);
}

void fw__chan_init(fw__chan_t *ch, uint8_t *rbuf, size_t rcap, void *data,
                   fw__chan_error_cb on_error)
{
    ch->open = false;
    ch->tls = NULL;
    ch->tls_up = false;
    ch->drained = false;
    ch->short_read = false;
    ch->rbuf = rbuf;
    ch->rcap = rcap;
    ch->data = data;
    ch->reader = NULL;
    ch->on_error = on_error;
    ch->on_connect = NULL;
    ch->on_read = NULL;
    ch->on_close = NULL;
}

int fw__chan_connect(fw__chan_t *ch, uv_loop_t *loop, const struct sockaddr *sa, socklen_t len,
                     fw__chan_connect_cb cb)
{
    ch->on_connect = cb;
    ch->tls_up = false;
    ch->drained = false;
    ch->short_read = false;
    ch->sock.data = ch;
    int rc = fw__sock_connect(&ch->sock, loop, sa, len, on_sock_connect);
    if (rc < 0)
        return rc;
    ch->sock.data = ch;
    ch->open = true;
    return 0;
}

int fw__chan_tune(fw__chan_t *ch, const fw__sock_tuning_t *t)
{
    return fw__sock_tune(&ch->sock, t);
}

void fw__chan_read_start(fw__chan_t *ch, fw__chan_read_cb cb, void *reader)
{
    ch->on_read = cb;
    ch->reader = reader;
    if (ch->open)
        (void)fw__sock_read_start(&ch->sock, on_sock_read);
}

void fw__chan_read_stop(fw__chan_t *ch)
{
    if (ch->open)
        (void)fw__sock_read_stop(&ch->sock);
}

void fw__chan_read_defer(fw__chan_t *ch, bool defer)
{
    if (ch->open)
        fw__sock_read_defer(&ch->sock, defer);
}

ssize_t fw__chan_recv_raw(fw__chan_t *ch)
{
    if (ch->tls != NULL && fw__tls_unlend(ch->tls) < 0)
        return FW_ENOMEM;
    return fw__sock_recv(&ch->sock, ch->rbuf, ch->rcap);
}

void fw__chan_set_tls(fw__chan_t *ch, fw__tls_t *tls)
{
    fw__tls_free(ch->tls);
    ch->tls = tls;
    ch->tls_up = false;
}

void fw__chan_drop_tls(fw__chan_t *ch)
{
    fw__tls_free(ch->tls);
    ch->tls = NULL;
    ch->tls_up = false;
}

/* Sends the ciphertext OpenSSL produced. */
static int flush_tls(fw__chan_t *ch)
{
    const uint8_t *p;
    size_t n;
    fw__tls_out(ch->tls, &p, &n);
    if (n == 0)
        return 0;
    int rc = fw__sock_write(&ch->sock, p, n, on_sock_error);
    fw__tls_out_consumed(ch->tls, n);
    return rc;
}

int fw__chan_handshake(fw__chan_t *ch, const uint8_t *p, size_t n)
{
    if (ch->tls == NULL)
        return FW_ESTATE;
    if (n > 0 && fw__tls_feed(ch->tls, p, n) < 0)
        return FW_ENOMEM;
    int hs = fw__tls_handshake(ch->tls);
    if (hs < 0)
        return hs == FW_ENOMEM ? hs : FW_ETLS;
    int rc = flush_tls(ch);
    if (rc < 0)
        return rc;
    if (hs == FW__TLS_DONE)
        ch->tls_up = true;
    return hs;
}

ssize_t fw__chan_read(fw__chan_t *ch, uint8_t *buf, size_t cap)
{
    if (ch->tls == NULL) {
        ssize_t n = fw__sock_recv(&ch->sock, buf, cap);
        ch->drained = n > 0 && (size_t)n < cap;
        return n;
    }
    for (;;) {
        long k = fw__tls_read(ch->tls, buf, cap);
        if (k > 0) {
            ch->drained = ch->short_read && !fw__tls_has_buffered(ch->tls);
            return k;
        }
        if (k == FW__TLS_CLOSED)
            return UV_EOF;
        if (k < 0)
            return k == FW_ENOMEM ? k : FW_ETLS;
        /* fw__tls_read said "more": OpenSSL has read all that was lent (unlend is then free,
         * and keeps the rule if that ever changes). */
        if (fw__tls_unlend(ch->tls) < 0)
            return FW_ENOMEM;
        ssize_t n = fw__sock_recv(&ch->sock, ch->rbuf, ch->rcap);
        if (n <= 0)
            return n;
        /* Drained once OpenSSL has handed out all of this short read. */
        ch->short_read = (size_t)n < ch->rcap;
        /* Lent, not copied: rbuf is received into again only after the next "more". */
        if (fw__tls_feed_view(ch->tls, ch->rbuf, (size_t)n) < 0)
            return FW_ENOMEM;
        /* OpenSSL may answer (a key update, a ticket acknowledgement). */
        int rc = flush_tls(ch);
        if (rc < 0)
            return rc;
    }
}

bool fw__chan_has_buffered(const fw__chan_t *ch)
{
    return ch->tls != NULL && fw__tls_has_buffered(ch->tls);
}

int fw__chan_write(fw__chan_t *ch, const uint8_t *p, size_t n)
{
    if (ch->tls == NULL || !ch->tls_up)
        return fw__sock_write(&ch->sock, p, n, on_sock_error);
    size_t off = 0;
    while (off < n) {
        long w = fw__tls_write(ch->tls, p + off, n - off);
        if (w < 0)
            return w == FW_ENOMEM ? (int)w : FW_ETLS;
        off += (size_t)w;
        int rc = flush_tls(ch);
        if (rc < 0)
            return rc;
    }
    return 0;
}

void fw__chan_shutdown(fw__chan_t *ch)
{
    if (ch->tls != NULL && ch->tls_up && ch->open && fw__tls_shutdown(ch->tls) == 0)
        (void)flush_tls(ch);
}

const char *fw__chan_tls_error(const fw__chan_t *ch)
{
    return ch->tls != NULL ? fw__tls_error(ch->tls) : "";
}

void fw__chan_close(fw__chan_t *ch, fw__chan_close_cb cb)
{
    fw__chan_drop_tls(ch);
    if (!ch->open)
        return;
    ch->on_close = cb;
    fw__sock_close(&ch->sock, on_sock_closed);
}
