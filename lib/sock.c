/* SPDX-License-Identifier: MIT */
/* The socket transport (see sock.h for why fwire does its own send/recv on a uv_poll_t). */
#include "alloc.h"
#include "sock.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* EAGAIN and EWOULDBLOCK are one value on Linux but not everywhere. */
static bool would_block(int e)
{
#if EAGAIN == EWOULDBLOCK
    return e == EAGAIN;
#else
    return e == EAGAIN || e == EWOULDBLOCK;
#endif
}

static void update_poll(fw__sock_t *s);

static void on_poll(uv_poll_t *h, int status, int events)
{
    fw__sock_t *s = h->data;
    if (s->closing)
        return;
    if (s->connecting) {
        if (status < 0 || (events & UV_WRITABLE) || (events & UV_DISCONNECT)) {
            int err = s->connect_err;
            socklen_t len = sizeof(err);
            /* libuv reports POLLERR as UV_EBADF: the real reason is the socket's SO_ERROR. */
            if (err == 0 && getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
                err = errno;
            if (err == 0 && status < 0)
                err = -status;
            s->connecting = false;
            update_poll(s);
            s->on_connect(s, err == 0 ? 0 : uv_translate_sys_error(err));
        }
        return;
    }
    if (status < 0) {
        /* A poll error is a socket error: let the reader find it with recv(), or report it to
         * the writer if nobody reads. libuv has stopped the watcher before telling us (POLLERR,
         * uv__poll_io). For a reader, watch again, so that the error comes back until a recv()
         * reaches it: a reader may stop before that (a short read of the bytes that arrived
         * with a reset means "drained" to the stream), and a stopped watcher would never
         * report the socket again, leaving the stream waiting forever. The writer is told once;
         * the watcher stays stopped until the next read_start or write re-arms it. */
        s->poll_active = false;
        if (s->reading && s->on_read != NULL) {
            update_poll(s);
            s->on_read(s);
        } else if (s->on_error != NULL) {
            s->on_error(s, status);
        }
        return;
    }
    if ((events & UV_WRITABLE) && s->wlen > s->woff) {
        while (s->woff < s->wlen) {
            ssize_t n = send(s->fd, s->wbuf + s->woff, s->wlen - s->woff, MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && would_block(errno))
                break;
            if (n < 0) {
                int err = uv_translate_sys_error(errno);
                s->woff = s->wlen = 0;
                update_poll(s);
                if (s->on_error != NULL)
                    s->on_error(s, err);
                return;
            }
            s->woff += (size_t)n;
        }
        if (s->woff == s->wlen)
            s->woff = s->wlen = 0;
        update_poll(s);
        if (s->closing)
            return;
    }
    if ((events & (UV_READABLE | UV_DISCONNECT)) && s->reading && s->on_read != NULL)
        s->on_read(s);
}

/* Watches exactly what is needed: writable while connecting or while bytes are queued,
 * readable while reading. */
static void update_poll(fw__sock_t *s)
{
    if (s->closing)
        return;
    int ev = 0;
    if (s->connecting || s->wlen > s->woff)
        ev |= UV_WRITABLE;
    /* Deferred: not watched at all for reading (the owner's timer finds a reset or EOF with
     * its next recv()); changing the events of a poll costs libuv an EPOLL_CTL_DEL and an ADD,
     * stopping it only the DEL. */
    if (s->reading && !s->deferred)
        ev |= UV_READABLE | UV_DISCONNECT;
    if (ev == 0) {
        if (s->poll_active)
            uv_poll_stop(&s->poll);
        s->poll_active = false;
    } else if (!s->poll_active || ev != s->poll_events) {
        /* Every uv_poll_start costs an epoll_ctl at the loop's next turn, even for the same
         * events: only when something changes. */
        uv_poll_start(&s->poll, ev, on_poll);
        s->poll_active = true;
    }
    s->poll_events = ev;
}

int fw__sock_connect(fw__sock_t *s, uv_loop_t *loop, const struct sockaddr *sa, socklen_t salen,
                     fw__sock_connect_cb cb)
{
    memset(s, 0, sizeof(*s));
    s->loop = loop;
    s->is_unix = sa->sa_family == AF_UNIX;
    s->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->fd < 0)
        return uv_translate_sys_error(errno);
    int rc;
    do {
        rc = connect(s->fd, sa, salen);
    } while (rc != 0 && errno == EINTR);
    /* Unix sockets refuse with EAGAIN when the listen queue is full: report it as the connect
     * result from the loop like any other outcome. */
    int early = 0;
    if (rc != 0 && errno != EINPROGRESS)
        early = errno;
    rc = uv_poll_init_socket(loop, &s->poll, s->fd);
    if (rc < 0) {
        close(s->fd);
        s->fd = -1;
        return rc;
    }
    s->poll.data = s;
    s->on_connect = cb;
    s->connecting = true;
    if (early != 0) {
        /* Keep the error for the callback; a socket whose connect failed polls as writable at
         * once, so the callback still comes from the loop, never from inside this call. */
        s->connect_err = early;
    }
    update_poll(s);
    return 0;
}

int fw__sock_tune(fw__sock_t *s, const fw__sock_tuning_t *t)
{
    int one = 1;
    if (s->is_unix)
        return 0;
    /* Small protocol messages must not wait for Nagle's algorithm. */
    if (setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
        return uv_translate_sys_error(errno);
    int on = t->keepalives ? 1 : 0;
    if (setsockopt(s->fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on)) != 0)
        return uv_translate_sys_error(errno);
    if (t->keepalives) {
        if (t->keepalives_idle >= 0 &&
            setsockopt(s->fd, IPPROTO_TCP, TCP_KEEPIDLE, &t->keepalives_idle, sizeof(int)) != 0)
            return uv_translate_sys_error(errno);
        if (t->keepalives_interval >= 0 && setsockopt(s->fd, IPPROTO_TCP, TCP_KEEPINTVL,
                                                      &t->keepalives_interval, sizeof(int)) != 0)
            return uv_translate_sys_error(errno);
        if (t->keepalives_count >= 0 &&
            setsockopt(s->fd, IPPROTO_TCP, TCP_KEEPCNT, &t->keepalives_count, sizeof(int)) != 0)
            return uv_translate_sys_error(errno);
    }
    if (t->tcp_user_timeout >= 0) {
        unsigned int ms = (unsigned int)t->tcp_user_timeout;
        if (setsockopt(s->fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof(ms)) != 0)
            return uv_translate_sys_error(errno);
    }
    return 0;
}

int fw__sock_read_start(fw__sock_t *s, fw__sock_read_cb cb)
{
    if (s->closing)
        return UV_EINVAL;
    s->on_read = cb;
    s->reading = true;
    s->deferred = false;
    update_poll(s);
    return 0;
}

void fw__sock_read_defer(fw__sock_t *s, bool defer)
{
    if (s->deferred == defer)
        return;
    s->deferred = defer;
    update_poll(s);
}

int fw__sock_read_stop(fw__sock_t *s)
{
    s->reading = false;
    update_poll(s);
    return 0;
}

ssize_t fw__sock_recv(fw__sock_t *s, uint8_t *buf, size_t cap)
{
    ssize_t n;
    do {
        n = recv(s->fd, buf, cap, 0);
    } while (n < 0 && errno == EINTR);
    if (n > 0)
        return n;
    if (n == 0)
        return UV_EOF;
    if (would_block(errno))
        return UV_EAGAIN;
    return uv_translate_sys_error(errno);
}

int fw__sock_write(fw__sock_t *s, const uint8_t *p, size_t n, fw__sock_error_cb on_error)
{
    if (s->closing)
        return UV_EPIPE;
    s->on_error = on_error;
    size_t off = 0;
    if (s->wlen == s->woff) { /* nothing queued: try now, keeping order */
        while (off < n) {
            ssize_t k = send(s->fd, p + off, n - off, MSG_NOSIGNAL);
            if (k < 0 && errno == EINTR)
                continue;
            if (k < 0 && would_block(errno))
                break;
            if (k < 0)
                return uv_translate_sys_error(errno);
            off += (size_t)k;
        }
    }
    if (off == n)
        return 0;
    size_t rest = n - off;
    if (s->woff > 0 && s->woff == s->wlen)
        s->woff = s->wlen = 0;
    if (rest > SIZE_MAX - s->wlen)
        return UV_ENOMEM;
    if (s->wlen + rest > s->wcap) {
        size_t cap = s->wcap ? s->wcap : 4096;
        while (cap < s->wlen + rest)
            cap *= 2;
        uint8_t *nb = fw__realloc(s->wbuf, cap);
        if (nb == NULL)
            return UV_ENOMEM;
        s->wbuf = nb;
        s->wcap = cap;
    }
    memcpy(s->wbuf + s->wlen, p + off, rest);
    s->wlen += rest;
    update_poll(s);
    return 0;
}

size_t fw__sock_pending(const fw__sock_t *s)
{
    return s->wlen - s->woff;
}

static void on_closed(uv_handle_t *h)
{
    fw__sock_t *s = h->data;
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    fw__free(s->wbuf);
    s->wbuf = NULL;
    s->wlen = s->woff = s->wcap = 0;
    if (s->on_close != NULL)
        s->on_close(s);
}

void fw__sock_close(fw__sock_t *s, fw__sock_close_cb cb)
{
    if (s->closing)
        return;
    s->closing = true;
    s->on_close = cb;
    uv_close((uv_handle_t *)&s->poll, on_closed);
}
