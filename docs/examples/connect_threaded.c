/* SPDX-License-Identifier: MIT */
/* Threaded mode: a runtime thread owns the loop; your threads block. Build: cc connect_threaded.c $(pkg-config --cflags --libs libfwire) */
#include <fwire.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    fw_runtime_t *rt;
    if (fw_runtime_new(&rt) < 0)
        return 1;
    fw_conn_opts_t opts;
    fw_conn_opts_init(&opts);
    opts.conninfo = argc > 1 ? argv[1] : NULL;

    fw_conn_t *conn;
    fw_error_t err;
    int rc = fw_conn_connect_sync(rt, &opts, &conn, &err);
    if (rc < 0) {
        fprintf(stderr, "connect failed (%s): %s%s%s\n", fw_phase_name(err.phase), err.message,
                err.sqlstate[0] ? " SQLSTATE " : "", err.sqlstate);
    } else {
        fw_conn_info_t info;
        fw_conn_info(conn, &info);
        printf("connected: %s over %s, TLS %s\n", info.auth_method, info.transport,
               info.tls_version ? info.tls_version : "none");
        fw_conn_close_sync(conn);
    }
    fw_runtime_free(rt);
    return rc < 0 ? 2 : 0;
}
