/* SPDX-License-Identifier: MIT */
/*
 * Threaded mode: a runtime thread runs fwire's loop; this thread blocks in fw_stream_next().
 *
 *   example_stream_threaded "host=/run/postgresql dbname=app" [RELATION]
 *
 * Prints every row of RELATION (default v_fixture) as one line, then the count on stderr.
 */
#include <fwire.h>

#include <stdio.h>

int main(int argc, char **argv)
{
    const char *relation = argc > 2 ? argv[2] : "v_fixture";
    fw_runtime_t *rt;
    int rc = fw_runtime_new(&rt);
    if (rc < 0) {
        fprintf(stderr, "runtime: %s\n", fw_strerror(rc));
        return 1;
    }
    fw_conn_opts_t opts;
    fw_conn_opts_init(&opts);
    opts.conninfo = argc > 1 ? argv[1] : NULL;
    fw_conn_t *conn;
    fw_error_t err;
    rc = fw_conn_connect_sync(rt, &opts, &conn, &err);
    if (rc < 0) {
        fprintf(stderr, "connect: %s\n", err.message);
        fw_runtime_free(rt);
        return 2;
    }

    /* The query: every row of the relation, 256 rows per chunk, at most 4 MiB in flight. */
    fw_query_t *q;
    rc = fw_query_new(&q);
    if (rc == 0)
        rc = fw_query_relation(q, relation);
    fw_stream_t *s = NULL;
    if (rc == 0)
        rc = fw_stream_start(conn, q, NULL, NULL, &s, &err); /* threaded: no callback */
    fw_query_free(q);                                        /* the stream copied it */
    if (rc < 0) {
        fprintf(stderr, "start: %s\n", fw_strerror(rc));
        fw_conn_close_sync(conn);
        fw_runtime_free(rt);
        return 3;
    }

    fw_row_t row;
    unsigned long rows = 0;
    /* A row's bytes are valid until the next call on the stream: use or copy them now. */
    while ((rc = fw_stream_next(s, &row, -1)) == FW_ROW) {
        if (row.is_null)
            puts("(SQL NULL)");
        else
            printf("%.*s\n", (int)row.len, row.json);
        rows++;
    }
    int status = 0;
    if (rc < 0) { /* a failure, after every row the server sent before it */
        const fw_error_t *e = fw_stream_error(s);
        fprintf(stderr, "query failed: %s [%s] %s\n", fw_err_name(e->code), e->sqlstate,
                e->message);
        status = 3;
    } else {
        fprintf(stderr, "%lu rows\n", rows); /* rc == FW_END */
    }
    fw_stream_free(s);
    fw_conn_close_sync(conn);
    fw_runtime_free(rt);
    return status;
}
