/* SPDX-License-Identifier: MIT */
/*
 * Test helper: a fault-injecting TCP proxy on 127.0.0.1, between fwire and the real server
 * (issue 17, "faults on the wire"; RELIABILITY.md bar 10, asyncpg's fault proxy). Plain
 * sockets and poll(), one thread accepting and one thread per connection, so a cancel
 * connection can pass while the first one is held.
 *
 * Faults apply to the server -> client direction of the connection that was accepted last, from
 * the moment fp_arm() is called: the test connects through the proxy (startup and TLS pass
 * untouched), arms a fault `offset` bytes ahead, then starts its query, so the offset counts
 * bytes of the query's reply as they travel on the wire (ciphertext under TLS).
 *
 *   FP_CLOSE  forward exactly `offset` bytes, then FIN to the client (shutdown), close upstream
 *   FP_RESET  forward exactly `offset` bytes, wait until the client's kernel has acknowledged
 *             them (SIOCOUTQ == 0, so they are in its receive queue and the RST lands right
 *             behind them), then RST (SO_LINGER 0 and close)
 *   FP_STALL  forward `offset` bytes, then forward nothing either way while both sockets stay
 *             open (a half-open peer); ends when the client closes or the proxy stops
 *   FP_SLOW   forward everything in random pieces of 1..100 bytes with latency and jitter, in
 *             bursts (TCP_NODELAY towards the client, so pieces travel as separate segments)
 *
 * With `record` set, fp_arm() also keeps the bytes it forwards (for plaintext tests that
 * compute which rows precede a cut). The including file includes <cmocka.h> and friends.
 */
#ifndef FW_TEST_FAULTPROXY_H
#define FW_TEST_FAULTPROXY_H

#include <arpa/inet.h>
#include <errno.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef enum fp_mode_e { FP_PASS, FP_CLOSE, FP_RESET, FP_STALL, FP_SLOW } fp_mode_t;

#define FP_MAX_CONNS 8

typedef struct fp_conn_s {
    struct fp_s *p;
    int cfd, ufd;
    int index; /* accept order */
    pthread_t th;
    bool used;         /* under the proxy's mu */
    _Atomic bool done; /* its thread has closed both sockets */
} fp_conn_t;

typedef struct fp_s {
    int lfd;
    uint16_t port;    /* where clients connect */
    uint16_t up_port; /* the real server, on 127.0.0.1 */
    int wake[2];      /* a byte here stops every thread */
    pthread_t th;
    pthread_mutex_t mu;
    /* ---- under mu ---- */
    int accepted;
    fp_conn_t conns[FP_MAX_CONNS];
    int target;         /* the armed connection's index, -1: none */
    fp_mode_t mode;     /* its fault */
    uint64_t remaining; /* bytes still to forward before the fault (UINT64_MAX: never) */
    bool fired;         /* the fault happened */
    bool record;
    uint8_t *rec;
    size_t rec_len, rec_cap;
    uint32_t seed; /* FP_SLOW pieces and delays */
    int latency_us, jitter_us;
    uint64_t slow_pieces;
    /* TLS alignment: the cut moves forward to the end of a TLS record (see fp_arm_tls) */
    bool tls_align;
    uint64_t sent; /* bytes forwarded since the arm */
    uint64_t cut_at;
    uint8_t tls_hdr[5];
    size_t tls_have, tls_left;
} fp_t;

static void fp_sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000L};
    nanosleep(&ts, NULL);
}

static uint32_t fp_rand(fp_t *p)
{
    uint32_t x = p->seed;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    p->seed = x;
    return x;
}

/* Writes all of buf (blocking socket), false when the peer is gone. */
static bool fp_write_all(int fd, const uint8_t *b, size_t n)
{
    while (n > 0) {
        ssize_t k = send(fd, b, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return false;
        b += k;
        n -= (size_t)k;
    }
    return true;
}

static void fp_reset(int fd)
{
    /* Give the bytes before the cut time to reach the client's receive queue: a linger-0 close
     * drops whatever is still in our send queue. */
    for (int i = 0; i < 2000; i++) {
        int q = 0;
        if (ioctl(fd, SIOCOUTQ, &q) != 0 || q == 0)
            break;
        fp_sleep_us(1000);
    }
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
}

/* Reads and drops what the client sends until it closes or the proxy stops. */
static void fp_hold(fp_t *p, int cfd)
{
    uint8_t buf[4096];
    for (;;) {
        struct pollfd pf[2] = {{cfd, POLLIN, 0}, {p->wake[0], POLLIN, 0}};
        if (poll(pf, 2, -1) < 0 && errno != EINTR)
            return;
        if (pf[1].revents != 0)
            return;
        if (pf[0].revents != 0) {
            ssize_t n = recv(cfd, buf, sizeof(buf), 0);
            if (n == 0 || (n < 0 && errno != EINTR))
                return;
        }
    }
}

/* With TLS alignment: how many of the n bytes at b go before the cut, which comes at the first
 * end of a TLS record at or past cut_at (*cut set), or n when no cut falls in them. Under mu. */
static size_t fp_tls_cut(fp_t *p, const uint8_t *b, size_t n, bool *cut)
{
    size_t i = 0;
    *cut = false;
    while (i < n) {
        if (p->tls_left == 0) {
            p->tls_hdr[p->tls_have++] = b[i++];
            if (p->tls_have < 5)
                continue;
            p->tls_have = 0;
            p->tls_left = (size_t)p->tls_hdr[3] << 8 | p->tls_hdr[4];
            if (p->tls_left > 0)
                continue;
        } else {
            size_t take = n - i < p->tls_left ? n - i : p->tls_left;
            i += take;
            p->tls_left -= take;
            if (p->tls_left > 0)
                continue;
        }
        if (p->sent + i >= p->cut_at) { /* a record ends at i */
            *cut = true;
            return i;
        }
    }
    return n;
}

/* Server -> client bytes just read on connection `k`: forwards them, applying the fault.
 * Returns false when the connection is over (the fault has been applied, or a peer left). */
static bool fp_down(fp_t *p, fp_conn_t *k, uint8_t *b, size_t n)
{
    pthread_mutex_lock(&p->mu);
    bool armed = p->target == k->index && !p->fired;
    fp_mode_t mode = armed ? p->mode : FP_PASS;
    uint64_t rem = armed ? p->remaining : UINT64_MAX;
    size_t now = rem < n ? (size_t)rem : n;
    if (armed && p->tls_align && mode != FP_SLOW && mode != FP_PASS) {
        bool cut;
        now = fp_tls_cut(p, b, n, &cut);
        rem = cut ? now : UINT64_MAX; /* "at the cut" below when cut */
    }
    if (armed) {
        if (p->remaining != UINT64_MAX)
            p->remaining -= p->tls_align ? 0 : now;
        p->sent += now;
        if (p->record && p->rec_len + now <= p->rec_cap) {
            memcpy(p->rec + p->rec_len, b, now);
            p->rec_len += now;
        }
    }
    pthread_mutex_unlock(&p->mu);
    if (mode == FP_SLOW) {
        size_t off = 0;
        while (off < now) {
            pthread_mutex_lock(&p->mu);
            size_t piece = 1 + fp_rand(p) % 100;
            uint32_t r = fp_rand(p);
            long delay = 0;
            /* Bursts: most pieces go at once, one in eight waits latency +- jitter. */
            if ((r & 7) == 0)
                delay = p->latency_us + (p->jitter_us > 0 ? (long)(r >> 8) % p->jitter_us : 0);
            p->slow_pieces++;
            pthread_mutex_unlock(&p->mu);
            if (piece > now - off)
                piece = now - off;
            if (!fp_write_all(k->cfd, b + off, piece))
                return false;
            off += piece;
            if (delay > 0)
                fp_sleep_us(delay);
        }
        return true;
    }
    if (now > 0 && !fp_write_all(k->cfd, b, now))
        return false;
    if (now == n && rem != now)
        return true; /* not at the cut yet (or no fault) */
    if (mode == FP_PASS)
        return true;
    pthread_mutex_lock(&p->mu);
    p->fired = true;
    pthread_mutex_unlock(&p->mu);
    switch (mode) {
    case FP_CLOSE:
        shutdown(k->cfd, SHUT_WR);
        close(k->ufd);
        k->ufd = -1;
        fp_hold(p, k->cfd); /* the client reads the FIN and closes */
        break;
    case FP_RESET:
        close(k->ufd);
        k->ufd = -1;
        fp_reset(k->cfd);
        k->cfd = -1;
        break;
    case FP_STALL:
        fp_hold(p, k->cfd);
        break;
    case FP_PASS:
    case FP_SLOW:
        break;
    }
    return false;
}

static void *fp_conn_main(void *arg)
{
    fp_conn_t *k = arg;
    fp_t *p = k->p;
    uint8_t buf[16384];
    int one = 1;
    setsockopt(k->cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(k->ufd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    for (;;) {
        struct pollfd pf[3] = {{k->cfd, POLLIN, 0}, {k->ufd, POLLIN, 0}, {p->wake[0], POLLIN, 0}};
        if (poll(pf, 3, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (pf[2].revents != 0)
            break;
        if (pf[0].revents != 0) {
            ssize_t n = recv(k->cfd, buf, sizeof(buf), 0);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0 || !fp_write_all(k->ufd, buf, (size_t)n))
                break;
        }
        if (pf[1].revents != 0) {
            /* FP_SLOW reads little at a time, so the server meets the slowness too. */
            pthread_mutex_lock(&p->mu);
            bool slow = p->target == k->index && p->mode == FP_SLOW;
            pthread_mutex_unlock(&p->mu);
            ssize_t n = recv(k->ufd, buf, slow ? 512 : sizeof(buf), 0);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0 || !fp_down(p, k, buf, (size_t)n))
                break;
        }
    }
    if (k->cfd >= 0)
        close(k->cfd);
    if (k->ufd >= 0)
        close(k->ufd);
    k->cfd = k->ufd = -1;
    atomic_store(&k->done, true);
    return NULL;
}

static int fp_connect_up(fp_t *p)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(p->up_port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void *fp_main(void *arg)
{
    fp_t *p = arg;
    for (;;) {
        struct pollfd pf[2] = {{p->lfd, POLLIN, 0}, {p->wake[0], POLLIN, 0}};
        if (poll(pf, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (pf[1].revents != 0)
            break;
        int cfd = accept(p->lfd, NULL, NULL);
        if (cfd < 0)
            continue;
        int ufd = fp_connect_up(p);
        pthread_mutex_lock(&p->mu);
        /* A finished connection's slot is reused (its thread is joined first). */
        fp_conn_t *k = NULL;
        for (int i = 0; i < FP_MAX_CONNS && k == NULL; i++) {
            if (p->conns[i].used && atomic_load(&p->conns[i].done)) {
                pthread_join(p->conns[i].th, NULL);
                p->conns[i].used = false;
            }
            if (!p->conns[i].used)
                k = &p->conns[i];
        }
        int index = p->accepted++;
        pthread_mutex_unlock(&p->mu);
        if (k == NULL || ufd < 0) {
            close(cfd);
            if (ufd >= 0)
                close(ufd);
            continue;
        }
        k->p = p;
        k->cfd = cfd;
        k->ufd = ufd;
        k->index = index;
        k->used = true;
        atomic_store(&k->done, false);
        if (pthread_create(&k->th, NULL, fp_conn_main, k) != 0) {
            close(cfd);
            close(ufd);
            k->used = false;
        }
    }
    return NULL;
}

/* Starts a proxy to 127.0.0.1:up_port accepting on `lfd` (a listening socket, for instance one
 * made inside a network namespace), or on a fresh 127.0.0.1 socket when lfd < 0; p->port is
 * the port clients connect to. */
static void fp_start_on(fp_t *p, uint16_t up_port, int lfd)
{
    memset(p, 0, sizeof(*p));
    p->up_port = up_port;
    p->target = -1;
    p->seed = 0x9e3779b9u;
    pthread_mutex_init(&p->mu, NULL);
    assert_int_equal(pipe(p->wake), 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    p->lfd = lfd;
    if (lfd < 0) {
        p->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(p->lfd >= 0);
        assert_int_equal(bind(p->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        assert_int_equal(listen(p->lfd, 64), 0);
    }
    socklen_t len = sizeof(sa);
    assert_int_equal(getsockname(p->lfd, (struct sockaddr *)&sa, &len), 0);
    p->port = ntohs(sa.sin_port);
    assert_int_equal(pthread_create(&p->th, NULL, fp_main, p), 0);
}

static void fp_start(fp_t *p, uint16_t up_port)
{
    fp_start_on(p, up_port, -1);
}

/* Arms `mode` on the connection accepted last, `offset` bytes of server data from now.
 * FP_PASS with `record` only records. */
static void fp_arm(fp_t *p, fp_mode_t mode, uint64_t offset, bool record)
{
    pthread_mutex_lock(&p->mu);
    p->target = p->accepted - 1;
    p->mode = mode;
    p->remaining = mode == FP_PASS || mode == FP_SLOW ? UINT64_MAX : offset;
    p->fired = false;
    p->tls_align = false;
    p->sent = 0;
    p->cut_at = offset;
    p->tls_have = p->tls_left = 0;
    p->record = record;
    p->rec_len = 0;
    if (record && p->rec == NULL) {
        p->rec_cap = (size_t)8 << 20;
        p->rec = malloc(p->rec_cap);
        assert_non_null(p->rec);
    }
    pthread_mutex_unlock(&p->mu);
}

/* As fp_arm, but the cut comes at the end of the first TLS record that ends at or past
 * `offset` (the stream from the arm on must be TLS records, as it is after the handshake): a
 * cut on a record boundary leaves OpenSSL nothing partial, so the reader sees whole records,
 * then the end. */
static void fp_arm_tls(fp_t *p, fp_mode_t mode, uint64_t offset)
{
    fp_arm(p, mode, offset, false);
    pthread_mutex_lock(&p->mu);
    p->tls_align = true;
    pthread_mutex_unlock(&p->mu);
}

static inline bool fp_fired(fp_t *p)
{
    pthread_mutex_lock(&p->mu);
    bool f = p->fired;
    pthread_mutex_unlock(&p->mu);
    return f;
}

/* Waits (up to 5 s) until every connection's thread has closed its sockets: the proxy lives in
 * the test's process, so its fds count in the test's fd checks. True when they all have. */
static bool fp_quiesce(fp_t *p)
{
    for (int i = 0; i < 5000; i++) {
        int open = 0;
        pthread_mutex_lock(&p->mu);
        for (int k = 0; k < FP_MAX_CONNS; k++)
            open += p->conns[k].used && !atomic_load(&p->conns[k].done);
        pthread_mutex_unlock(&p->mu);
        if (open == 0)
            return true;
        fp_sleep_us(1000);
    }
    return false;
}

/* Stops every thread and closes every socket. */
static void fp_stop(fp_t *p)
{
    assert_int_equal(write(p->wake[1], "x", 1), 1);
    pthread_join(p->th, NULL);
    for (int i = 0; i < FP_MAX_CONNS; i++) {
        if (p->conns[i].used)
            pthread_join(p->conns[i].th, NULL);
    }
    close(p->lfd);
    close(p->wake[0]);
    close(p->wake[1]);
    pthread_mutex_destroy(&p->mu);
    free(p->rec);
    p->rec = NULL;
}

#endif /* FW_TEST_FAULTPROXY_H */
