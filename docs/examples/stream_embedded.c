/* SPDX-License-Identifier: MIT */
/*
 * Embedded mode: fwire runs on your libuv loop. When rows are ready, fwire calls you; you drain
 * them with fw_stream_try_next() without ever blocking the loop.
 *
 *   example_stream_embedded "host=/run/postgresql dbname=app" [RELATION]
 */
#include <fwire.h>

#include <stdio.h>
#include <uv.h>

typedef struct app_s {
    fw_conn_t *conn;
    const char *relation;
    unsigned long rows;
    int status;
} app_t;

static void on_rows(fw_stream_t *s, void *ud)
{
    app_t *app = ud;
    fw_row_t row;
    int rc;
    while ((rc = fw_stream_try_next(s, &row)) == FW_ROW) {
        if (row.is_null)
            puts("(SQL NULL)");
        else
            printf("%.*s\n", (int)row.len, row.json);
        app->rows++;
    }
    if (rc == FW_AGAIN)
        return; /* more later: fwire calls again when rows arrive */
    if (rc < 0) {
        const fw_error_t *e = fw_stream_error(s);
        fprintf(stderr, "query failed: %s [%s] %s\n", fw_err_name(e->code), e->sqlstate,
                e->message);
        app->status = 3;
    } else {
        fprintf(stderr, "%lu rows\n", app->rows); /* rc == FW_END */
    }
    fw_stream_free(s); /* legal inside the callback */
    /* One query was all we wanted: close; uv_run returns once the connection is gone. */
    fw_conn_close(app->conn, NULL, NULL);
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
    fw_error_t serr;
    int rc = fw_query_new(&q);
    if (rc == 0)
        rc = fw_query_relation(q, app->relation);
    if (rc == 0)
        rc = fw_stream_start(conn, q, on_rows, app, &s, &serr);
    fw_query_free(q);
    if (rc < 0) {
        fprintf(stderr, "start: %s\n", fw_strerror(rc));
        app->status = 3;
        fw_conn_close(conn, NULL, NULL);
    }
}

int main(int argc, char **argv)
{
    app_t app = {NULL, argc > 2 ? argv[2] : "v_fixture", 0, 0};
    uv_loop_t loop;
    uv_loop_init(&loop);
    fw_conn_opts_t opts;
    fw_conn_opts_init(&opts);
    opts.conninfo = argc > 1 ? argv[1] : NULL;
    fw_error_t err;
    if (fw_conn_new(&app.conn, &loop, &opts, &err) < 0) {
        fprintf(stderr, "options: %s\n", err.message);
        return 1;
    }
    fw_conn_connect(app.conn, on_connected, &app);
    uv_run(&loop, UV_RUN_DEFAULT); /* your server's loop would keep running other work here */
    return uv_loop_close(&loop) == 0 ? app.status : 4;
}
