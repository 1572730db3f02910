/* SPDX-License-Identifier: MIT */
/*
 * The socket transport on a real loop: connect to a unix socket made here, write to a peer that
 * has gone (an error, never SIGPIPE: this process keeps SIGPIPE's default action, which would
 * end it), a refused connect reported from the loop, and a clean loop close.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "sock.h"

typedef struct ctx_s {
    int status;
    int connects;
    int closes;
} ctx_t;

static void on_connect(fw__sock_t *s, int status)
{
    ctx_t *c = s->data;
    c->status = status;
    c->connects++;
}

static void on_close(fw__sock_t *s)
{
    ctx_t *c = s->data;
    c->closes++;
}

static int listen_unix(struct sockaddr_un *sa)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    snprintf(sa->sun_path, sizeof(sa->sun_path), "/tmp/fwire-sock-test.%d", (int)getpid());
    unlink(sa->sun_path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)sa, sizeof(*sa)), 0);
    assert_int_equal(listen(fd, 4), 0);
    return fd;
}

static void test_write_to_a_vanished_peer_is_an_error_not_sigpipe(void **state)
{
    (void)state;
    uv_loop_t loop;
    fw__sock_t s;
    ctx_t c = {0, 0, 0};
    struct sockaddr_un sa;
    int lfd = listen_unix(&sa);
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(fw__sock_connect(&s, &loop, (struct sockaddr *)&sa, sizeof(sa), on_connect),
                     0);
    s.data = &c;
    assert_int_equal(c.connects, 0); /* never from inside the call */
    uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(c.connects, 1);
    assert_int_equal(c.status, 0);
    int peer = accept(lfd, NULL, NULL);
    assert_true(peer >= 0);
    close(peer);
    /* The first write may still be accepted by the kernel; the next ones find the peer gone. */
    static const uint8_t msg[] = "hello";
    int rc = 0;
    for (int i = 0; i < 50 && rc == 0; i++)
        rc = fw__sock_write(&s, msg, sizeof(msg), NULL);
    assert_true(rc == UV_EPIPE || rc == UV_ECONNRESET);
    fw__sock_close(&s, on_close);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(c.closes, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
    close(lfd);
    unlink(sa.sun_path);
}

static void test_refused_connect_is_reported_from_the_loop(void **state)
{
    (void)state;
    uv_loop_t loop;
    fw__sock_t s;
    ctx_t c = {0, 0, 0};
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "/tmp/fwire-sock-test-none.%d", (int)getpid());
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(fw__sock_connect(&s, &loop, (struct sockaddr *)&sa, sizeof(sa), on_connect),
                     0);
    s.data = &c;
    assert_int_equal(c.connects, 0);
    uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(c.connects, 1);
    assert_int_equal(c.status, UV_ENOENT);
    fw__sock_close(&s, on_close);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* Keepalives and tcp_user_timeout land on the socket with the values asked for. */
static void test_tcp_tuning_is_applied_to_the_socket(void **state)
{
    (void)state;
    uv_loop_t loop;
    fw__sock_t s;
    ctx_t c = {0, 0, 0};
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(lfd >= 0);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(lfd, 4), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &len), 0);
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(fw__sock_connect(&s, &loop, (struct sockaddr *)&sa, sizeof(sa), on_connect),
                     0);
    s.data = &c;
    while (c.connects == 0)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(c.status, 0);
    fw__sock_tuning_t t = {true, 30, 10, 3, 12345};
    assert_int_equal(fw__sock_tune(&s, &t), 0);
    int v = 0;
    unsigned int uv = 0;
    socklen_t vl = sizeof(v);
    assert_int_equal(getsockopt(s.fd, IPPROTO_TCP, TCP_NODELAY, &v, &vl), 0);
    assert_int_equal(v, 1);
    assert_int_equal(getsockopt(s.fd, SOL_SOCKET, SO_KEEPALIVE, &v, &vl), 0);
    assert_int_equal(v, 1);
    assert_int_equal(getsockopt(s.fd, IPPROTO_TCP, TCP_KEEPIDLE, &v, &vl), 0);
    assert_int_equal(v, 30);
    assert_int_equal(getsockopt(s.fd, IPPROTO_TCP, TCP_KEEPINTVL, &v, &vl), 0);
    assert_int_equal(v, 10);
    assert_int_equal(getsockopt(s.fd, IPPROTO_TCP, TCP_KEEPCNT, &v, &vl), 0);
    assert_int_equal(v, 3);
    vl = sizeof(uv);
    assert_int_equal(getsockopt(s.fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &uv, &vl), 0);
    assert_int_equal(uv, 12345);
    /* keepalives off */
    fw__sock_tuning_t off = {false, -1, -1, -1, -1};
    assert_int_equal(fw__sock_tune(&s, &off), 0);
    vl = sizeof(v);
    assert_int_equal(getsockopt(s.fd, SOL_SOCKET, SO_KEEPALIVE, &v, &vl), 0);
    assert_int_equal(v, 0);
    fw__sock_close(&s, on_close);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    close(lfd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_to_a_vanished_peer_is_an_error_not_sigpipe),
        cmocka_unit_test(test_refused_connect_is_reported_from_the_loop),
        cmocka_unit_test(test_tcp_tuning_is_applied_to_the_socket),
    };
    return cmocka_run_group_tests_name("lib_sock", tests, NULL, NULL);
}
