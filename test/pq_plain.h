/* SPDX-License-Identifier: MIT */
/*
 * Test and bench helper: blocking plain sockets to the test cluster, from the FW_TEST_*
 * variables that test/with-pg.sh exports. Test code only: the library's transport is libuv.
 */
#ifndef FW_TEST_PQ_PLAIN_H
#define FW_TEST_PQ_PLAIN_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* Connects to the cluster's unix socket; -1 (errno set) on failure. */
static inline int plain_open_unix(const char *sockdir, const char *port)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    int n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/.s.PGSQL.%s", sockdir, port);
    if (n < 0 || (size_t)n >= sizeof(sa.sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* Connects to an IPv4 loopback address; -1 on failure. */
static inline int plain_open_tcp4(const char *host, const char *port)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)atoi(port));
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* Sends all of p[0..n); 0 or -1. Never raises SIGPIPE. */
static inline int plain_send_all(int fd, const uint8_t *p, size_t n)
{
    size_t off = 0;
    while (off < n) {
        ssize_t k = send(fd, p + off, n - off, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        off += (size_t)k;
    }
    return 0;
}

/* recv() retried on EINTR. */
static inline ssize_t plain_recv(int fd, uint8_t *p, size_t n)
{
    ssize_t k;
    do {
        k = recv(fd, p, n, 0);
    } while (k < 0 && errno == EINTR);
    return k;
}

#endif
