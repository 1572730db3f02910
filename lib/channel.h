/* SPDX-License-Identifier: MIT */
/*
 * Private to lib/: the channel, one socket plus (optionally) the TLS engine on top of it. The
 * only file in lib/ that moves TLS records: feeding ciphertext to OpenSSL, reading plaintext
 * out, writing plaintext in and flushing the ciphertext it produces. The connection (conn.c,
 * conn_attempt.c), the stream (stream.c) and the cancel connection (cancel.c) read and write
 * plaintext through it and never see a record.
 *
 *   fw__chan_init -> fw__chan_connect -> [raw bytes: the SSLRequest answer]
 *   -> [fw__chan_set_tls, fw__chan_handshake until DONE] -> fw__chan_read / fw__chan_write ...
 *   -> [fw__chan_shutdown] -> fw__chan_close
 *
 * The read rule of tls.h is kept here: fw__chan_read hands out plaintext OpenSSL already holds
 * before it reads the socket, so a caller that reads until UV_EAGAIN has seen everything. A
 * caller that stops earlier (backpressure, a cap on reads per event) asks
 * fw__chan_has_buffered before it waits for the socket again.
 *
 * Memory: the channel is embedded in its owner; the raw read buffer is the owner's (given to
 * fw__chan_init, it must live as long as the channel). The TLS engine belongs to the channel
 * from fw__chan_set_tls until fw__chan_close (or fw__chan_drop_tls).
 *
 * Thread: the loop thread only.
 */
#ifndef FW_CHANNEL_H
#define FW_CHANNEL_H

#include "sock.h"
#include "tls.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct fw__chan_s fw__chan_t;

/* Connected (status 0) or not (a negative libuv code). */
typedef void (*fw__chan_connect_cb)(fw__chan_t *ch, int status);
/* Readable: call fw__chan_read (or fw__chan_recv_raw) until UV_EAGAIN, or stop reading. */
typedef void (*fw__chan_read_cb)(fw__chan_t *ch);
/* A queued write failed (the server is gone). */
typedef void (*fw__chan_error_cb)(fw__chan_t *ch, int err);
/* The socket is closed and its handle released. */
typedef void (*fw__chan_close_cb)(fw__chan_t *ch);

struct fw__chan_s {
    fw__sock_t sock;
    bool open;      /* a socket exists: from fw__chan_connect until its close callback */
    fw__tls_t *tls; /* NULL: plaintext */
    bool tls_up;    /* the handshake is done: reads and writes go through TLS */
    /* Set by every fw__chan_read that returned bytes: the socket (and OpenSSL) had nothing more
     * right then, so the next read would say UV_EAGAIN; a pump may go back to the loop. */
    bool drained;
    bool short_read; /* TLS: the last socket read was short */
    uint8_t *rbuf;   /* the owner's: raw socket reads (ciphertext under TLS) */
    size_t rcap;
    void *data;        /* the owner's */
    void *reader;      /* the current reader's (fw__chan_read_start) */
    fw__chan_error_cb on_error;
    fw__chan_connect_cb on_connect;
    fw__chan_read_cb on_read;
    fw__chan_close_cb on_close;
};

/* Caller-owned storage; rbuf (rcap bytes) must outlive the channel. on_error may be NULL. */
void fw__chan_init(fw__chan_t *ch, uint8_t *rbuf, size_t rcap, void *data,
                   fw__chan_error_cb on_error);

/* A non-blocking connect to `sa` (see fw__sock_connect). 0 (then `cb` runs once, from the loop,
 * and the channel is open) or a negative libuv code (nothing to close). */
int fw__chan_connect(fw__chan_t *ch, uv_loop_t *loop, const struct sockaddr *sa, socklen_t len,
                     fw__chan_connect_cb cb);

/* TCP tuning (see fw__sock_tune). */
int fw__chan_tune(fw__chan_t *ch, const fw__sock_tuning_t *t);

/* Watch for readability with `cb` (replacing the reader before: the connection's idle reader
 * and a stream hand the channel to each other this way); `reader` is kept in ch->reader. */
void fw__chan_read_start(fw__chan_t *ch, fw__chan_read_cb cb, void *reader);
void fw__chan_read_stop(fw__chan_t *ch);
/* Reading, but not woken by readable bytes while `defer` (fw__sock_read_defer): the reader
 * reads on a timer of its own so that bytes gather in the kernel between reads. */
void fw__chan_read_defer(fw__chan_t *ch, bool defer);

/*
 * One socket read into rbuf, below TLS: the answer to SSLRequest and the handshake's bytes.
 * Returns > 0 bytes (at ch->rbuf), UV_EAGAIN, UV_EOF or another negative libuv code.
 */
ssize_t fw__chan_recv_raw(fw__chan_t *ch);

/* Hands the TLS engine to the channel (it frees it); reads and writes stay plaintext until
 * the handshake is done. */
void fw__chan_set_tls(fw__chan_t *ch, fw__tls_t *tls);

/* Frees the TLS engine: the server answered 'N' to SSLRequest and the attempt goes on in
 * plaintext on this socket. */
void fw__chan_drop_tls(fw__chan_t *ch);

/*
 * Feeds handshake bytes (p may be NULL with n 0: the first step), advances the handshake and
 * sends what it produced. Returns FW__TLS_DONE (tls_up is set; bytes fed with the last
 * handshake message come out of fw__chan_read), FW__TLS_CONTINUE, FW_ETLS (fw__chan_tls_error
 * says why), FW_ENOMEM, or the socket's write error.
 */
int fw__chan_handshake(fw__chan_t *ch, const uint8_t *p, size_t n);

/*
 * Plaintext into buf (cap bytes): with TLS, what OpenSSL holds first, then socket reads fed to
 * it until a record is complete or the socket is empty. Returns > 0 bytes; UV_EAGAIN; UV_EOF
 * (the server closed, or its TLS close_notify); FW_ETLS (a bad record or a fatal alert:
 * fw__chan_tls_error); FW_ENOMEM; or a socket error. Sets ch->drained.
 */
ssize_t fw__chan_read(fw__chan_t *ch, uint8_t *buf, size_t cap);

/* Whether plaintext or ciphertext is inside OpenSSL that no socket event will announce. */
bool fw__chan_has_buffered(const fw__chan_t *ch);

/*
 * Sends plaintext (borrowed for the call): through TLS once the handshake is done, else as is.
 * What the kernel does not take now is queued (a later failure goes to on_error). Returns 0,
 * FW_ENOMEM, FW_ETLS, or the socket's error.
 */
int fw__chan_write(fw__chan_t *ch, const uint8_t *p, size_t n);

/* Queues the TLS close_notify and sends it (best effort; nothing without TLS). */
void fw__chan_shutdown(fw__chan_t *ch);

/* Why TLS failed ("" when it did not). Borrowed from the channel. */
const char *fw__chan_tls_error(const fw__chan_t *ch);

/* Frees the TLS engine and closes the socket (when open); `cb` runs once the handle is
 * released (never inside this call). Without an open socket nothing runs. */
void fw__chan_close(fw__chan_t *ch, fw__chan_close_cb cb);

#endif /* FW_CHANNEL_H */
