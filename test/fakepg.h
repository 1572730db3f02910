/* SPDX-License-Identifier: MIT */
/*
 * Test helper: a scripted fake PostgreSQL server for what a real server cannot produce (hostile
 * or broken behaviour). It listens on 127.0.0.1 with a kernel-chosen port, accepts one
 * connection on its own thread, and follows a script:
 *   1. if `ssl_reply` is set: read the 8-byte SSLRequest and answer with ssl_reply bytes;
 *   2. if `startup_reply` is set: read one StartupMessage and answer with those bytes;
 *   3. if `query_reply` or `query_pieces` is set (the query phase): read the client's frontend
 *      messages up to a Sync, recording them, then send the scripted reply (in pieces, with
 *      pauses, when asked), then hang up if `query_close` says so; with `query_reply2`, do the
 *      same once more for a second query on the same connection;
 *   4. record every byte the client sends after that (for "no password was sent" checks);
 *   5. stay silent until the client closes (or `close_after` says to hang up at once).
 * With `accept_cancels` or `ignore_cancels`, a second thread also accepts every further
 * connection on the listening socket as a cancel connection: it reads the CancelRequest
 * (length 12 + key length, code 80877102, pid, then a key of 4 bytes under protocol 3.0 or 4
 * to 256 under 3.2), records it, then closes the connection (accept_cancels: the server acted
 * on it) or keeps it open, silent, until fakepg_stop (ignore_cancels: a server that never
 * answers).
 * With `conns` > 1 (not with the cancel options), the script runs again for each of that
 * many connections, one after another (a host that a client tries twice).
 * With nothing scripted, the server accepts, records what the client sends and never answers.
 *
 * At the end: bb_t, a growable buffer to build the scripted replies in, with the backend
 * messages the fake-server tests share (msg_begin/msg_end frame any other).
 */
#ifndef FW_TEST_FAKEPG_H
#define FW_TEST_FAKEPG_H

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

/* One piece of a scripted reply: sent after a pause of delay_ms. */
typedef struct fakepg_piece_s {
    const uint8_t *ptr;
    size_t len;
    unsigned delay_ms;
} fakepg_piece_t;

/* The frontend messages of one query as the fake server read them. */
typedef struct fakepg_query_s {
    char types[64];     /* one type byte per message, in order ("PBDES"), NUL-terminated */
    uint8_t sent[8192]; /* the messages' bytes (type, length, body), as far as they fit */
    size_t sent_len;
    bool synced; /* a Sync arrived (the reply was sent) */
} fakepg_query_t;

typedef struct fakepg_s {
    /* script */
    const uint8_t *ssl_reply;
    size_t ssl_reply_len;
    const uint8_t *startup_reply;
    size_t startup_reply_len;
    bool close_after;
    /* When > 0: after the StartupMessage, ask for SCRAM-SHA-256 and answer the client's first
     * message with a server-first message that extends its nonce and demands this many
     * iterations (instead of startup_reply). */
    unsigned long scram_iterations;
    /* With scram_iterations: send a nonce that does not extend the client's, or answer the
     * client's first message with AuthenticationOk instead of SASLContinue. */
    bool scram_foreign_nonce;
    bool scram_ok_early;
    /* With scram_iterations: answer the client's first message with a SASLContinue whose body
     * is garbage (no r=, s=, i= attributes, bytes that are not even text). */
    bool scram_garbage;
    /* Sent 100 ms after startup_reply (for messages that must arrive in a later read). */
    const uint8_t *late_reply;
    size_t late_reply_len;
    /*
     * The query phase, after startup_reply (unused when both query_reply and query_pieces are
     * NULL). The reply to the first query is query_pieces (each after its pause), else
     * query_reply: whole, or when query_split > 0 in pieces of that many bytes with
     * query_split_delay_ms between them (1: byte by byte). query_close: hang up right after it
     * (before any second query). query_reply2: the reply to a second query, sent whole.
     */
    const uint8_t *query_reply;
    size_t query_reply_len;
    const fakepg_piece_t *query_pieces;
    size_t query_npieces;
    size_t query_split;
    unsigned query_split_delay_ms;
    bool query_close;
    const uint8_t *query_reply2;
    size_t query_reply2_len;
    /* Unused: a query phase always ends at a Sync or at a simple Query ('Q', which has no Sync
     * after it: the target_session_attrs check, and a plain stream's query, query.h
     * fw__query_simple). Kept so that the scripts that set it still say what they expect. */
    bool query_simple;
    /* How many connections to serve one after another, each with the whole script (0: one). */
    unsigned conns;
    /* With conns > 1: serve them at the same time instead, each on a thread of its own (a
     * client that opens several connections at once and keeps them all open). queries[] is
     * then not recorded, nor conn_got_end. At most 8. */
    bool concurrent;
    /* When > 0: give up waiting for the client (accept, reads, writes) after this long, so a
     * broken test ends instead of hanging. */
    unsigned io_timeout_ms;
    /* Cancel connections (see the top): close each after its CancelRequest, or keep it open.
     * The first connection must arrive before any cancel connection (fwire's order). */
    bool accept_cancels;
    bool ignore_cancels;
    /* results */
    int port;
    uint8_t got[4096]; /* bytes received after the scripted replies (every connection's) */
    size_t got_len;
    bool got_ssl_request;
    bool got_startup;
    uint32_t startup_version;  /* the protocol version the StartupMessage asked for */
    fakepg_query_t queries[2]; /* the query phase: what the client sent for each query */
    int nqueries;              /* queries answered */
    /* Connections accepted so far (read any time); where each one's bytes end in got, and
     * whether the client ended it with an orderly close (EOF, not an error or io_timeout_ms):
     * read after fakepg_stop. queries[] and nqueries are the first connection's. */
    atomic_int accepted;
    size_t conn_got_end[8];
    bool conn_eof[8];
    /* With scram_iterations: the client's SASLInitialResponse, whole (type, length, body). */
    uint8_t sasl_initial[512];
    size_t sasl_initial_len;
    /* Cancel connections: how many sent a well-formed CancelRequest (read any time), the
     * last one's pid, key (cancel_secret: its first 4 bytes, the whole key of protocol 3.0)
     * and key length (read after fakepg_stop), and connections that sent anything else. */
    atomic_int ncancels;
    int32_t cancel_pid, cancel_secret;
    uint8_t cancel_key[256];
    size_t cancel_key_len;
    int cancel_bad;
    /* internals */
    int lfd;
    pthread_t thread;
    pthread_t cancel_thread;
    bool cancel_thread_started;
    atomic_bool stopping;
    atomic_bool no_more; /* fakepg_stop began: accept only a connection already waiting */
    int cancel_fds[16];  /* ignore_cancels: the connections kept open */
    int ncancel_fds;
    pthread_mutex_t got_lock; /* got and got_len (concurrent connections) */
} fakepg_t;

static inline int fakepg_read_n(int fd, uint8_t *buf, size_t n)
{
    size_t off = 0;
    while (off < n) {
        ssize_t k = recv(fd, buf + off, n - off, 0);
        if (k <= 0)
            return -1;
        off += (size_t)k;
    }
    return 0;
}

static inline void fakepg_pause(unsigned ms)
{
    if (ms > 0)
        usleep((useconds_t)ms * 1000u);
}

/* Returns false when the client went away (the script goes on, sending nothing). */
static inline bool fakepg_send_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k <= 0)
            return false;
        p += k;
        n -= (size_t)k;
    }
    return true;
}

/*
 * Reads frontend messages into q until a Sync or a simple Query. Returns 0 there, -1 when the
 * client sent Terminate, closed, or sent something that is no message.
 */
static inline int fakepg_read_query(int fd, fakepg_query_t *q)
{
    uint8_t hdr[5], body[4096];
    size_t ntypes = 0;
    for (;;) {
        if (fakepg_read_n(fd, hdr, 5) != 0)
            return -1;
        uint32_t n =
            ((uint32_t)hdr[1] << 24) | ((uint32_t)hdr[2] << 16) | ((uint32_t)hdr[3] << 8) | hdr[4];
        if (n < 4)
            return -1;
        if (ntypes + 1 < sizeof(q->types)) {
            q->types[ntypes++] = (char)hdr[0];
            q->types[ntypes] = '\0';
        }
        if (q->sent_len + 5 <= sizeof(q->sent)) {
            memcpy(q->sent + q->sent_len, hdr, 5);
            q->sent_len += 5;
        }
        for (size_t left = n - 4; left > 0;) {
            size_t take = left < sizeof(body) ? left : sizeof(body);
            if (fakepg_read_n(fd, body, take) != 0)
                return -1;
            size_t room = sizeof(q->sent) - q->sent_len;
            memcpy(q->sent + q->sent_len, body, take < room ? take : room);
            q->sent_len += take < room ? take : room;
            left -= take;
        }
        if (hdr[0] == 'X')
            return -1;
        if (hdr[0] == 'S' || hdr[0] == 'Q') {
            q->synced = true;
            return 0;
        }
    }
}

/* Sends the reply to the first query as the script says. */
static inline void fakepg_send_reply(const fakepg_t *f, int fd)
{
    if (f->query_pieces != NULL) {
        for (size_t i = 0; i < f->query_npieces; i++) {
            fakepg_pause(f->query_pieces[i].delay_ms);
            /* Once the client is gone, the pauses of the pieces left would only delay
             * fakepg_stop: nothing could arrive anyway. */
            if (!fakepg_send_all(fd, f->query_pieces[i].ptr, f->query_pieces[i].len))
                return;
        }
        return;
    }
    size_t step = f->query_split > 0 ? f->query_split : f->query_reply_len;
    for (size_t off = 0; off < f->query_reply_len; off += step) {
        size_t k = f->query_reply_len - off < step ? f->query_reply_len - off : step;
        if (off > 0)
            fakepg_pause(f->query_split_delay_ms);
        (void)fakepg_send_all(fd, f->query_reply + off, k);
    }
}

/* The query phase; returns true when the script hung up (nothing more to do). Only the first
 * connection's queries are recorded. */
static inline bool fakepg_query_phase(fakepg_t *f, int fd, bool record)
{
    /* Pieces must leave as they are cut, not coalesced by Nagle's algorithm. */
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    fakepg_query_t scratch[2];
    fakepg_query_t *qs = record ? f->queries : scratch;
    memset(scratch, 0, sizeof(scratch));
    if (fakepg_read_query(fd, &qs[0]) != 0)
        return false;
    fakepg_send_reply(f, fd);
    if (record)
        f->nqueries = 1;
    if (f->query_close)
        return true;
    if (f->query_reply2 != NULL && fakepg_read_query(fd, &qs[1]) == 0) {
        (void)fakepg_send_all(fd, f->query_reply2, f->query_reply2_len);
        if (record)
            f->nqueries = 2;
    }
    return false;
}

static inline uint32_t fakepg_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* The cancel connections: accepted until fakepg_stop (polling, so it notices the stop). */
static inline void *fakepg_cancel_main(void *arg)
{
    fakepg_t *f = arg;
    while (!atomic_load(&f->stopping)) {
        struct pollfd pfd = {f->lfd, POLLIN, 0};
        if (poll(&pfd, 1, 20) != 1)
            continue;
        int fd = accept(f->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        struct timeval tv = {2, 0}; /* a client that connects and sends nothing */
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        /* length, code, pid, key: 16 bytes (3.0) up to 12 + 256 (3.2), as the server reads */
        uint8_t req[12 + 256];
        uint32_t n = 0;
        if (fakepg_read_n(fd, req, 4) == 0)
            n = fakepg_be32(req);
        if (n >= 16 && n <= sizeof(req) && fakepg_read_n(fd, req + 4, n - 4) == 0 &&
            fakepg_be32(req + 4) == 80877102u) {
            f->cancel_pid = (int32_t)fakepg_be32(req + 8);
            f->cancel_secret = (int32_t)fakepg_be32(req + 12);
            f->cancel_key_len = n - 12;
            memcpy(f->cancel_key, req + 12, n - 12);
            atomic_fetch_add(&f->ncancels, 1);
        } else {
            f->cancel_bad++;
        }
        int cap = (int)(sizeof(f->cancel_fds) / sizeof(f->cancel_fds[0]));
        if (f->ignore_cancels && f->ncancel_fds < cap)
            f->cancel_fds[f->ncancel_fds++] = fd; /* never answered, closed by fakepg_stop */
        else
            close(fd);
    }
    return NULL;
}

/*
 * Waits for the next connection. Polls, so that once fakepg_stop began a server that no client
 * (or no further client) reaches ends at once; a connection already waiting is still taken.
 * Returns the socket, or -1 (stopped, or io_timeout_ms passed).
 */
static inline int fakepg_accept(fakepg_t *f)
{
    unsigned waited = 0;
    for (;;) {
        struct pollfd pfd = {f->lfd, POLLIN, 0};
        if (poll(&pfd, 1, 20) == 1)
            return accept(f->lfd, NULL, NULL);
        if (atomic_load(&f->no_more))
            return -1;
        waited += 20;
        if (f->io_timeout_ms > 0 && waited >= f->io_timeout_ms)
            return -1;
    }
}

/* One connection through the whole script (steps 1 to 5 at the top); conn is its index. */
static inline void fakepg_serve(fakepg_t *f, int fd, unsigned conn)
{
    if (f->io_timeout_ms > 0) {
        struct timeval tv = {(time_t)(f->io_timeout_ms / 1000),
                             (suseconds_t)(f->io_timeout_ms % 1000) * 1000};
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    }
    uint8_t buf[10000];
    if (f->ssl_reply != NULL) {
        if (fakepg_read_n(fd, buf, 8) == 0 && buf[3] == 8 && buf[4] == 0x04 && buf[5] == 0xd2) {
            f->got_ssl_request = true;
            (void)send(fd, f->ssl_reply, f->ssl_reply_len, MSG_NOSIGNAL);
        }
    }
    if (f->scram_iterations > 0) {
        static const uint8_t sasl[] = {'R', 0,   0,   0,   23,  0,   0,   0,   10,  'S', 'C', 'R',
                                       'A', 'M', '-', 'S', 'H', 'A', '-', '2', '5', '6', 0,   0};
        uint8_t hdr[5];
        if (fakepg_read_n(fd, buf, 4) == 0) {
            uint32_t n = ((uint32_t)buf[0] << 24) | ((uint32_t)buf[1] << 16) |
                         ((uint32_t)buf[2] << 8) | buf[3];
            if (n >= 8 && n <= sizeof(buf) && fakepg_read_n(fd, buf + 4, n - 4) == 0) {
                f->got_startup = true;
                (void)send(fd, sasl, sizeof(sasl), MSG_NOSIGNAL);
            }
        }
        /* SASLInitialResponse: 'p', length, mechanism, int32 length, "n,,n=,r=<nonce>" */
        if (fakepg_read_n(fd, hdr, 5) == 0) {
            uint32_t n = ((uint32_t)hdr[1] << 24) | ((uint32_t)hdr[2] << 16) |
                         ((uint32_t)hdr[3] << 8) | hdr[4];
            if (n >= 4 && n - 4 < sizeof(buf) - 1 && fakepg_read_n(fd, buf, n - 4) == 0) {
                if (5 + (size_t)n - 4 <= sizeof(f->sasl_initial)) {
                    memcpy(f->sasl_initial, hdr, 5);
                    memcpy(f->sasl_initial + 5, buf, n - 4);
                    f->sasl_initial_len = 5 + (size_t)n - 4;
                }
                buf[n - 4] = 0;
                const char *r = strstr((const char *)buf + strlen((const char *)buf) + 5, "r=");
                char msg[256];
                int len = snprintf(msg, sizeof(msg), "r=%sX,s=c2FsdHNhbHQ=,i=%lu",
                                   f->scram_foreign_nonce ? "someoneelsesnonce"
                                   : r != NULL            ? r + 2
                                                          : "",
                                   f->scram_iterations);
                if (f->scram_garbage)
                    len = snprintf(msg, sizeof(msg), "%s", "\x01\xfegarbage=,,\x7f");
                if (f->scram_ok_early) {
                    static const uint8_t ok[] = {'R', 0, 0, 0, 8, 0, 0, 0, 0, 'Z', 0, 0, 0, 5, 'I'};
                    (void)send(fd, ok, sizeof(ok), MSG_NOSIGNAL);
                    len = -1;
                }
                uint8_t out[300];
                uint32_t total = (uint32_t)(len < 0 ? 0 : len) + 8;
                out[0] = 'R';
                out[1] = (uint8_t)(total >> 24);
                out[2] = (uint8_t)(total >> 16);
                out[3] = (uint8_t)(total >> 8);
                out[4] = (uint8_t)total;
                out[5] = out[6] = out[7] = 0;
                out[8] = 11; /* SASLContinue */
                if (len >= 0) {
                    memcpy(out + 9, msg, (size_t)len);
                    (void)send(fd, out, (size_t)len + 9, MSG_NOSIGNAL);
                }
            }
        }
    } else if (f->startup_reply != NULL) {
        if (fakepg_read_n(fd, buf, 4) == 0) {
            uint32_t n = ((uint32_t)buf[0] << 24) | ((uint32_t)buf[1] << 16) |
                         ((uint32_t)buf[2] << 8) | buf[3];
            if (n >= 8 && n <= sizeof(buf) && fakepg_read_n(fd, buf + 4, n - 4) == 0) {
                f->got_startup = true;
                f->startup_version = fakepg_be32(buf + 4);
                (void)send(fd, f->startup_reply, f->startup_reply_len, MSG_NOSIGNAL);
                if (f->late_reply != NULL) {
                    usleep(100000);
                    (void)send(fd, f->late_reply, f->late_reply_len, MSG_NOSIGNAL);
                }
            }
        }
    }
    if ((f->query_reply != NULL || f->query_pieces != NULL) && fakepg_query_phase(f, fd, conn == 0))
        return;
    if (!f->close_after) {
        for (;;) {
            ssize_t k = recv(fd, buf, sizeof(buf), 0);
            if (k <= 0) {
                if (k == 0 && conn < sizeof(f->conn_eof) / sizeof(f->conn_eof[0]))
                    f->conn_eof[conn] = true;
                break;
            }
            pthread_mutex_lock(&f->got_lock);
            size_t room = sizeof(f->got) - f->got_len;
            size_t take = (size_t)k < room ? (size_t)k : room;
            memcpy(f->got + f->got_len, buf, take);
            f->got_len += take;
            pthread_mutex_unlock(&f->got_lock);
        }
    }
}

typedef struct fakepg_conn_s {
    fakepg_t *f;
    int fd;
    unsigned i;
} fakepg_conn_t;

static inline void *fakepg_conn_main(void *arg)
{
    fakepg_conn_t *c = arg;
    fakepg_serve(c->f, c->fd, c->i);
    close(c->fd);
    return NULL;
}

/* conns connections at the same time, one thread each (`concurrent`). */
static inline void fakepg_serve_concurrent(fakepg_t *f, unsigned n)
{
    pthread_t t[8];
    fakepg_conn_t c[8];
    unsigned started = 0;
    for (unsigned i = 0; i < n && i < 8; i++) {
        int fd = fakepg_accept(f);
        if (fd < 0)
            break;
        atomic_fetch_add(&f->accepted, 1);
        c[i] = (fakepg_conn_t){f, fd, i + 1}; /* never 0: queries[] is not recorded */
        if (pthread_create(&t[i], NULL, fakepg_conn_main, &c[i]) != 0) {
            close(fd);
            break;
        }
        started++;
    }
    for (unsigned i = 0; i < started; i++)
        pthread_join(t[i], NULL);
}

static inline void *fakepg_main(void *arg)
{
    fakepg_t *f = arg;
    unsigned n = f->conns > 0 ? f->conns : 1;
    if (f->concurrent) {
        fakepg_serve_concurrent(f, n);
        return NULL;
    }
    for (unsigned i = 0; i < n; i++) {
        int fd = fakepg_accept(f);
        if (fd < 0)
            return NULL;
        atomic_fetch_add(&f->accepted, 1);
        /* Only now: the first connection is the query's, every later one a cancel connection. */
        if (i == 0 && (f->accept_cancels || f->ignore_cancels) &&
            pthread_create(&f->cancel_thread, NULL, fakepg_cancel_main, f) == 0)
            f->cancel_thread_started = true;
        fakepg_serve(f, fd, i);
        close(fd);
        if (i < sizeof(f->conn_got_end) / sizeof(f->conn_got_end[0]))
            f->conn_got_end[i] = f->got_len;
    }
    return NULL;
}

/* Starts listening and the server thread. Returns 0 or -1. */
static inline int fakepg_start(fakepg_t *f)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (f->lfd < 0 || bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(f->lfd, 4) != 0 || getsockname(f->lfd, (struct sockaddr *)&sa, &len) != 0)
        return -1;
    f->port = ntohs(sa.sin_port);
    pthread_mutex_init(&f->got_lock, NULL);
    return pthread_create(&f->thread, NULL, fakepg_main, f) == 0 ? 0 : -1;
}

/* Waits for the server thread (it ends when the client closes; while it waits for a
 * connection, at once), stops accepting cancel connections, closes those kept open and the
 * listener. */
static inline void fakepg_stop(fakepg_t *f)
{
    atomic_store(&f->no_more, true);
    pthread_join(f->thread, NULL);
    atomic_store(&f->stopping, true);
    if (f->cancel_thread_started)
        pthread_join(f->cancel_thread, NULL);
    f->cancel_thread_started = false;
    for (int i = 0; i < f->ncancel_fds; i++)
        close(f->cancel_fds[i]);
    f->ncancel_fds = 0;
    close(f->lfd);
    pthread_mutex_destroy(&f->got_lock);
}

/* The bytes connection `conn` sent after its script (*len of them); after fakepg_stop. */
static inline const uint8_t *fakepg_conn_got(const fakepg_t *f, unsigned conn, size_t *len)
{
    size_t cap = sizeof(f->conn_got_end) / sizeof(f->conn_got_end[0]);
    if (conn >= cap || (int)conn >= atomic_load(&f->accepted)) {
        *len = 0;
        return f->got;
    }
    size_t from = conn == 0 ? 0 : f->conn_got_end[conn - 1];
    *len = f->conn_got_end[conn] - from;
    return f->got + from;
}

/* True when the bytes the client sent after the script hold a message of type `type`. */
static inline bool fakepg_client_sent(const fakepg_t *f, uint8_t type)
{
    size_t off = 0;
    while (off + 5 <= f->got_len) {
        uint32_t n = ((uint32_t)f->got[off + 1] << 24) | ((uint32_t)f->got[off + 2] << 16) |
                     ((uint32_t)f->got[off + 3] << 8) | f->got[off + 4];
        if (f->got[off] == type)
            return true;
        if (n < 4)
            return false;
        off += 1 + n;
    }
    return false;
}

/* ---- building the replies: backend messages in a growable buffer ------------------------------
 */

typedef struct bb_s {
    uint8_t *p;
    size_t len, cap;
} bb_t;

static inline void bb_bytes(bb_t *b, const void *d, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap == 0 ? 256 : b->cap;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        assert_non_null(p);
        b->p = p;
        b->cap = cap;
    }
    if (n > 0 && d != NULL) /* d NULL: room only, the caller fills it */
        memcpy(b->p + b->len, d, n);
    b->len += n;
}

static inline void bb_u8(bb_t *b, uint8_t v)
{
    bb_bytes(b, &v, 1);
}

static inline void bb_u16(bb_t *b, uint16_t v)
{
    uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    bb_bytes(b, x, 2);
}

static inline void bb_u32(bb_t *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    bb_bytes(b, x, 4);
}

static inline void bb_str(bb_t *b, const char *s)
{
    bb_bytes(b, s, strlen(s) + 1);
}

/* Frees the buffer and empties it for reuse. */
static inline void bb_free(bb_t *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

/* A message: type, then its length back-patched by msg_end. */
static inline size_t msg_begin(bb_t *b, char type)
{
    bb_u8(b, (uint8_t)type);
    size_t at = b->len;
    bb_u32(b, 0);
    return at;
}

static inline void msg_end(bb_t *b, size_t at)
{
    uint32_t n = (uint32_t)(b->len - at);
    b->p[at] = (uint8_t)(n >> 24);
    b->p[at + 1] = (uint8_t)(n >> 16);
    b->p[at + 2] = (uint8_t)(n >> 8);
    b->p[at + 3] = (uint8_t)n;
}

/* A message with the given body. */
static inline void m_raw(bb_t *b, char type, const void *body, size_t n)
{
    size_t at = msg_begin(b, type);
    bb_bytes(b, body, n);
    msg_end(b, at);
}

static inline void m_empty(bb_t *b, char type)
{
    m_raw(b, type, NULL, 0);
}

/* A one-column DataRow: the text, or SQL NULL for NULL. */
static inline void m_row(bb_t *b, const char *v)
{
    size_t at = msg_begin(b, 'D');
    bb_u16(b, 1);
    if (v == NULL) {
        bb_u32(b, 0xffffffff);
    } else {
        bb_u32(b, (uint32_t)strlen(v));
        bb_bytes(b, v, strlen(v));
    }
    msg_end(b, at);
}

static inline void m_complete(bb_t *b, const char *tag)
{
    size_t at = msg_begin(b, 'C');
    bb_str(b, tag);
    msg_end(b, at);
}

/* ReadyForQuery, idle. */
static inline void m_ready(bb_t *b)
{
    m_raw(b, 'Z', "I", 1);
}

static inline void m_param(bb_t *b, const char *name, const char *value)
{
    size_t at = msg_begin(b, 'S');
    bb_str(b, name);
    bb_str(b, value);
    msg_end(b, at);
}

/* valgrind runs everything ~50x slower (meson.build's valgrind setup sets FW_TEST_TIME_SCALE):
 * timeouts a test waits out are multiplied by this. */
static inline double time_scale(void)
{
    const char *s = getenv("FW_TEST_TIME_SCALE");
    double v = s != NULL ? atof(s) : 1.0;
    return v >= 1.0 ? v : 1.0;
}

/* AuthenticationRequest with `code` (0: AuthenticationOk). */
static inline void m_auth(bb_t *b, uint32_t code)
{
    size_t at = msg_begin(b, 'R');
    bb_u32(b, code);
    msg_end(b, at);
}

/* BackendKeyData: pid 4242, a 4-byte key 77 (protocol 3.0). */
static inline void m_key(bb_t *b)
{
    size_t at = msg_begin(b, 'K');
    bb_u32(b, 4242);
    bb_u32(b, 77);
    msg_end(b, at);
}

/* The fields every ErrorResponse and NoticeResponse has: severity (S and V), SQLSTATE, message. */
static inline void m_error_fields(bb_t *b, const char *sev, const char *code, const char *msg)
{
    bb_u8(b, 'S');
    bb_str(b, sev);
    bb_u8(b, 'V');
    bb_str(b, sev);
    bb_u8(b, 'C');
    bb_str(b, code);
    bb_u8(b, 'M');
    bb_str(b, msg);
}

/* ErrorResponse with those fields only. */
static inline void m_error(bb_t *b, const char *sev, const char *code, const char *msg)
{
    size_t at = msg_begin(b, 'E');
    m_error_fields(b, sev, code, msg);
    bb_u8(b, 0);
    msg_end(b, at);
}

/* A start-up that succeeds at once (trust authentication) as a primary of `version` ("15.6"):
 * AuthenticationOk, the ParameterStatus a PostgreSQL 15 primary sends that fwire reads,
 * BackendKeyData, ReadyForQuery. */
static inline void m_startup_ok(bb_t *b, const char *version)
{
    m_auth(b, 0);
    m_param(b, "server_version", version);
    m_param(b, "server_encoding", "UTF8");
    m_param(b, "client_encoding", "UTF8");
    m_param(b, "standard_conforming_strings", "on");
    m_param(b, "in_hot_standby", "off");
    m_param(b, "default_transaction_read_only", "off");
    m_key(b);
    m_ready(b);
}

#endif
