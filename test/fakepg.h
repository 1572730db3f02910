/* SPDX-License-Identifier: MIT */
/*
 * Test helper: a scripted fake PostgreSQL server for what a real server cannot produce (hostile
 * or broken behaviour). It listens on 127.0.0.1 with a kernel-chosen port, accepts one
 * connection on its own thread, and follows a script:
 *   1. if `ssl_reply` is set: read the 8-byte SSLRequest and answer with ssl_reply bytes;
 *   2. if `startup_reply` is set: read one StartupMessage and answer with those bytes;
 *   3. record every byte the client sends after that (for "no password was sent" checks);
 *   4. stay silent until the client closes (or `close_after` says to hang up at once).
 */
#ifndef FW_TEST_FAKEPG_H
#define FW_TEST_FAKEPG_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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
    /* Sent 100 ms after startup_reply (for messages that must arrive in a later read). */
    const uint8_t *late_reply;
    size_t late_reply_len;
    /* results */
    int port;
    uint8_t got[4096]; /* bytes received after the scripted replies */
    size_t got_len;
    bool got_ssl_request;
    bool got_startup;
    /* internals */
    int lfd;
    pthread_t thread;
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

static inline void *fakepg_main(void *arg)
{
    fakepg_t *f = arg;
    int fd = accept(f->lfd, NULL, NULL);
    if (fd < 0)
        return NULL;
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
                buf[n - 4] = 0;
                const char *r = strstr((const char *)buf + strlen((const char *)buf) + 5, "r=");
                char msg[256];
                int len = snprintf(msg, sizeof(msg), "r=%sX,s=c2FsdHNhbHQ=,i=%lu",
                                   f->scram_foreign_nonce ? "someoneelsesnonce"
                                   : r != NULL            ? r + 2
                                                          : "",
                                   f->scram_iterations);
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
                (void)send(fd, f->startup_reply, f->startup_reply_len, MSG_NOSIGNAL);
                if (f->late_reply != NULL) {
                    usleep(100000);
                    (void)send(fd, f->late_reply, f->late_reply_len, MSG_NOSIGNAL);
                }
            }
        }
    }
    if (!f->close_after) {
        for (;;) {
            ssize_t k = recv(fd, buf, sizeof(buf), 0);
            if (k <= 0)
                break;
            size_t room = sizeof(f->got) - f->got_len;
            size_t take = (size_t)k < room ? (size_t)k : room;
            memcpy(f->got + f->got_len, buf, take);
            f->got_len += take;
        }
    }
    close(fd);
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
    return pthread_create(&f->thread, NULL, fakepg_main, f) == 0 ? 0 : -1;
}

/* Waits for the server thread (it ends when the client closes) and closes the listener. */
static inline void fakepg_stop(fakepg_t *f)
{
    pthread_join(f->thread, NULL);
    close(f->lfd);
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

#endif
