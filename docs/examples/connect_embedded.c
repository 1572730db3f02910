/* SPDX-License-Identifier: MIT */
/* Embedded mode: fwire on your own libuv loop. Build: cc connect_embedded.c $(pkg-config --cflags --libs libfwire libuv) */
#include <fwire.h>
#include <stdio.h>
#include <uv.h>

static void on_connected(fw_conn_t *conn, int status, const fw_error_t *err, void *ud)
{
    (void)ud;
    if (status < 0) {
        fprintf(stderr, "connect failed (%s): %s\n", fw_phase_name(err->phase), err->message);
    } else {
        fw_conn_info_t info;
        fw_conn_info(conn, &info);
        printf("connected to PostgreSQL %s as %s with %s\n", info.server_version_str, info.user,
               info.auth_method);
    }
    fw_conn_close(conn, NULL, NULL); /* legal inside the callback */
}

int main(int argc, char **argv)
{
    uv_loop_t *loop = uv_default_loop();
    fw_conn_opts_t opts;
    fw_conn_opts_init(&opts);
    opts.conninfo = argc > 1 ? argv[1] : NULL; /* NULL: PG* environment and defaults */

    fw_conn_t *conn;
    fw_error_t err;
    if (fw_conn_new(&conn, loop, &opts, &err) < 0) {
        fprintf(stderr, "bad options: %s\n", err.message);
        return 1;
    }
    fw_conn_connect(conn, on_connected, NULL);
    uv_run(loop, UV_RUN_DEFAULT); /* returns once the connection is closed */
    return uv_loop_close(loop) == 0 ? 0 : 1;
}
