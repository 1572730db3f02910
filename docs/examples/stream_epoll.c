/* SPDX-License-Identifier: MIT */
/*
 * Embedding fwire in a program whose event loop is not libuv: here a hand-written epoll loop
 * (the same works from libev, libevent or any loop that can watch a file descriptor and run a
 * timer). fwire runs on a libuv loop as in embedded mode; the host loop drives that loop:
 *
 *   - uv_backend_fd(loop) is a file descriptor (on Linux, libuv's own epoll instance) that
 *     becomes readable whenever libuv has something to do: watch it for reading;
 *   - uv_backend_timeout(loop) is how long the host may sleep before libuv's next timer
 *     (-1: no timer, 0: work is pending now): use it as (or as a cap on) the host's timeout;
 *   - uv_run(loop, UV_RUN_NOWAIT) runs whatever is ready and returns at once: call it after
 *     every wakeup of the host loop.
 *
 * Every fwire callback then runs inside that uv_run call, on the host's thread, so the rules of
 * embedded mode apply unchanged (docs/streaming.md). This program also has work of its own on
 * the same loop, a timerfd ticking every 10 ms, to show that neither side starves the other.
 *
 *   example_stream_epoll "host=/run/postgresql dbname=app" [RELATION]
 */
#include <fwire.h>

#include <stdint.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>
#include <uv.h>

typedef struct app_s {
    fw_conn_t *conn;
    const char *relation;
    unsigned long rows;
    int status; /* 0 once the stream has ended with FW_END; exit status otherwise */
} app_t;

static void on_rows(fw_stream_t *s, void *ud)
{
    app_t *app = ud;
    fw_row_t row;
    int rc;
    while ((rc = fw_stream_try_next(s, &row)) == FW_ROW) {
        if (!row.is_null)
            printf("%.*s\n", (int)row.len, row.json);
        app->rows++;
    }
    if (rc == FW_AGAIN)
        return;
    if (rc < 0) {
        const fw_error_t *e = fw_stream_error(s);
        fprintf(stderr, "query failed: %s [%s] %s\n", fw_err_name(e->code), e->sqlstate,
                e->message);
        app->status = 3;
    } else {
        app->status = 0;
    }
    fw_stream_free(s);
    fw_conn_close(app->conn, NULL, NULL); /* the uv loop then has nothing left: the host ends */
}

static void on_connected(fw_conn_t *conn, int status, const fw_error_t *err, void *ud)
{
    app_t *app = ud;
    if (status < 0) {
        fprintf(stderr, "connect: %s\n", err->message);
        app->status = 2;
        fw_conn_close(conn, NULL, NULL);
        return;
    }
    fw_query_t *q;
    fw_stream_t *s;
    int rc = fw_query_new(&q);
    if (rc == 0)
        rc = fw_query_relation(q, app->relation);
    if (rc == 0)
        rc = fw_stream_start(conn, q, on_rows, app, &s, NULL);
    fw_query_free(q);
    if (rc < 0) {
        fprintf(stderr, "start: %s\n", fw_strerror(rc));
        app->status = 3;
        fw_conn_close(conn, NULL, NULL);
    }
}

int main(int argc, char **argv)
{
    app_t app = {NULL, argc > 2 ? argv[2] : "v_fixture", 0, 1};
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0)
        return 4;
    fw_conn_opts_t opts;
    fw_conn_opts_init(&opts);
    opts.conninfo = argc > 1 ? argv[1] : NULL;
    fw_error_t err;
    if (fw_conn_new(&app.conn, &loop, &opts, &err) < 0) {
        fprintf(stderr, "options: %s\n", err.message);
        return 1;
    }
    if (fw_conn_connect(app.conn, on_connected, &app) < 0) {
        fw_conn_close(app.conn, NULL, NULL);
        app.status = 2;
    }

    /* The host loop: its own epoll instance, watching libuv's backend fd and a timer of its own. */
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int tick = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    struct itimerspec every10ms = {{0, 10 * 1000 * 1000}, {0, 10 * 1000 * 1000}};
    struct epoll_event uv_ev = {.events = EPOLLIN, .data.fd = uv_backend_fd(&loop)};
    struct epoll_event tick_ev = {.events = EPOLLIN, .data.fd = tick};
    if (ep < 0 || tick < 0 || timerfd_settime(tick, 0, &every10ms, NULL) < 0 ||
        epoll_ctl(ep, EPOLL_CTL_ADD, uv_ev.data.fd, &uv_ev) < 0 ||
        epoll_ctl(ep, EPOLL_CTL_ADD, tick, &tick_ev) < 0) {
        perror("epoll");
        return 4;
    }
    unsigned long ticks = 0;
    /* Run libuv once first: fw_conn_connect queued work that no file descriptor announces yet. */
    int alive = uv_run(&loop, UV_RUN_NOWAIT);
    while (alive) {
        struct epoll_event evs[8];
        int n = epoll_wait(ep, evs, 8, uv_backend_timeout(&loop));
        for (int i = 0; i < n; i++) {
            if (evs[i].data.fd == tick) {
                uint64_t expirations;
                if (read(tick, &expirations, sizeof(expirations)) == sizeof(expirations))
                    ticks += expirations; /* the host's own work */
            }
            /* libuv's fd needs nothing here: uv_run below reads what it announced */
        }
        alive = uv_run(&loop, UV_RUN_NOWAIT);
    }
    close(tick);
    close(ep);
    fprintf(stderr, "%lu rows; the host loop ticked %lu times meanwhile\n", app.rows, ticks);
    return uv_loop_close(&loop) == 0 ? app.status : 4;
}
