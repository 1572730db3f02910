/* SPDX-License-Identifier: MIT */
/*
 * The transport below a channel (channel.h): one non-blocking socket (TCP or unix) watched by a
 * libuv poll handle. fwire does its own recv()/send() instead of using uv_tcp_t streams for two
 * reasons:
 *   - every send() carries MSG_NOSIGNAL, so a peer that vanished can never raise SIGPIPE in the
 *     host program, whatever its signal disposition (libuv's stream writes use write()/writev(),
 *     which do);
 *   - reads land in buffers fwire chooses at the moment it reads (receive slabs, the TLS
 *     engine's input), and pausing is just dropping UV_READABLE from the watch.
 * Interface in the shape of hiredis's event hooks (STYLE 2): connect, start/stop reading,
 * write, close. Loop thread only.
 */
#ifndef FW_SOCK_H
#define FW_SOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <uv.h>

typedef struct fw__sock_s fw__sock_t;

/* status 0 when connected, else a negative libuv code (UV_ECONNREFUSED, ...). */
typedef void (*fw__sock_connect_cb)(fw__sock_t *s, int status);
/* The socket is readable (call fw__sock_recv until it returns UV_EAGAIN), or failed. */
typedef void (*fw__sock_read_cb)(fw__sock_t *s);
/* A queued write failed (EPIPE, ECONNRESET, ...): the connection is gone. */
typedef void (*fw__sock_error_cb)(fw__sock_t *s, int err);
typedef void (*fw__sock_close_cb)(fw__sock_t *s);

struct fw__sock_s {
    uv_poll_t poll;
    uv_loop_t *loop;
    int fd;
    bool connecting;
    bool reading;
    bool poll_active;
    bool closing;
    bool is_unix;
    bool deferred;   /* reading, but not watched for readable: the owner reads on a timer */
    int poll_events; /* what the poll watches now (uv_poll_start only when this changes) */
    int connect_err; /* errno of a connect() that failed at once, reported from the loop */
    /* Bytes accepted by fw__sock_write that the kernel did not take yet. */
    uint8_t *wbuf;
    size_t wlen, woff, wcap;
    fw__sock_connect_cb on_connect;
    fw__sock_read_cb on_read;
    fw__sock_error_cb on_error;
    fw__sock_close_cb on_close;
    void *data; /* the owner's */
};

/* TCP tuning applied once connected (RELIABILITY decision 9); a field < 0 keeps the OS value. */
typedef struct fw__sock_tuning_s {
    bool keepalives;
    int keepalives_idle;     /* seconds */
    int keepalives_interval; /* seconds */
    int keepalives_count;
    int tcp_user_timeout; /* milliseconds */
} fw__sock_tuning_t;

/*
 * Starts a non-blocking connect to `sa` (AF_INET, AF_INET6 or AF_UNIX). `cb` runs once, from
 * the loop, never from inside this call. Returns 0, or a negative libuv code when the socket
 * could not even be created (then cb never runs and the sock needs no close).
 */
int fw__sock_connect(fw__sock_t *s, uv_loop_t *loop, const struct sockaddr *sa, socklen_t salen,
                     fw__sock_connect_cb cb);

/* Applies TCP_NODELAY and the keepalive/user-timeout settings (TCP only). Returns 0 or the
 * first setsockopt error as a libuv code. */
int fw__sock_tune(fw__sock_t *s, const fw__sock_tuning_t *t);

/* Watches for readability (`cb` on each readable event) or stops watching. */
int fw__sock_read_start(fw__sock_t *s, fw__sock_read_cb cb);
/* While reading: `defer` stops watching the socket (its owner's next recv() finds a reset or
 * EOF); the owner reads on its own schedule (a timer) to let bytes gather
 * in the kernel, so that one recv() takes many of the server's 8 KiB pieces. read_start and
 * `defer` false watch it again. */
void fw__sock_read_defer(fw__sock_t *s, bool defer);

int fw__sock_read_stop(fw__sock_t *s);

/* Reads up to cap bytes: > 0 bytes read, UV_EAGAIN when nothing is ready, UV_EOF at the
 * peer's end, or another negative libuv code. */
ssize_t fw__sock_recv(fw__sock_t *s, uint8_t *buf, size_t cap);

/*
 * Sends p[0..n) now as far as the kernel takes it and queues the rest (copied), to be sent when
 * the socket becomes writable. Returns 0, UV_ENOMEM, or the send error (UV_EPIPE, ...). A later
 * failure of queued bytes is reported through `on_error`.
 */
int fw__sock_write(fw__sock_t *s, const uint8_t *p, size_t n, fw__sock_error_cb on_error);

/* Bytes still queued. */
size_t fw__sock_pending(const fw__sock_t *s);

/* Closes the socket and the poll handle; `cb` runs from the loop once libuv has released the
 * handle (the memory of s may be freed there). Idempotent. */
void fw__sock_close(fw__sock_t *s, fw__sock_close_cb cb);

#endif /* FW_SOCK_H */
