/* SPDX-License-Identifier: MIT */
/*
 * pq_raw: proto/ alone over a blocking socket, for benchmarks, the fuzz corpus and the quick
 * start. Not the library's client: no TLS, no passwords, no libuv; it connects to the test
 * cluster's unix socket as the trust user (FW_TEST_* from test/with-pg.sh).
 *
 *   pq_raw capture SQL OUTFILE   records every byte the server sends for SQL, up to and
 *                                including ReadyForQuery (empty SQL: the startup reply)
 *   pq_raw stream SQL [--count]  prints each row's first column on its own line (NULL as an
 *                                empty line) and a summary on stderr; --count prints only that
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pq_plain.h"
#include "fwire.h"
#include "proto.h"

static const char *need_env(const char *name)
{
    const char *v = getenv(name);
    if (v == NULL || v[0] == '\0') {
        fprintf(stderr, "pq_raw: %s is not set (run it through test/with-pg.sh)\n", name);
        exit(2);
    }
    return v;
}

typedef struct stats_s {
    long rows, nulls;
    size_t bytes;
    char sqlstate[6];
    char message[256];
} stats_t;

/*
 * Reads messages until ReadyForQuery. Every byte read goes to `capture` when it is not NULL;
 * rows are printed to `print` when it is not NULL and counted into *st.
 */
static int read_until_ready(int fd, fw__pq_reader_t *r, FILE *capture, FILE *print, stats_t *st)
{
    static uint8_t buf[256 * 1024];
    fw__pq_msg_t m;
    for (;;) {
        int rc;
        while ((rc = fw__pq_reader_next(r, &m)) == 1) {
            if (m.type == 'Z')
                return 0;
            if (m.type == 'D' && st != NULL) {
                fw__pq_col_t c;
                fw__pq_iter_t it;
                fw__pq_datarow_iter_init(&it, &m);
                if (fw__pq_datarow_next(&it, &c) != 1)
                    continue; /* a row with no columns */
                st->rows++;
                st->nulls += c.is_null;
                st->bytes += c.value.len;
                if (print != NULL) {
                    fwrite(c.value.ptr, 1, c.value.len, print);
                    fputc('\n', print);
                }
            } else if (m.type == 'E' && st != NULL) {
                fw__pq_error_fields_t f;
                if (fw__pq_error_fields(&m, &f) == 0) {
                    snprintf(st->sqlstate, sizeof(st->sqlstate), "%.*s", (int)f.sqlstate.len,
                             (const char *)f.sqlstate.ptr);
                    snprintf(st->message, sizeof(st->message), "%.*s", (int)f.message.len,
                             (const char *)f.message.ptr);
                }
            }
        }
        if (rc < 0) {
            fprintf(stderr, "pq_raw: decode error %s: %s\n", fw_err_name(rc), fw_strerror(rc));
            return -1;
        }
        ssize_t n = plain_recv(fd, buf, sizeof(buf));
        if (n <= 0) {
            fprintf(stderr, "pq_raw: the server closed the connection\n");
            return -1;
        }
        if (capture != NULL && fwrite(buf, 1, (size_t)n, capture) != (size_t)n)
            return -1;
        if (fw__pq_reader_feed(r, buf, (size_t)n) < 0)
            return -1;
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    bool capture = argc == 4 && strcmp(argv[1], "capture") == 0;
    bool stream = (argc == 3 || (argc == 4 && strcmp(argv[3], "--count") == 0)) &&
                  strcmp(argv[1], "stream") == 0;
    if (!capture && !stream) {
        fprintf(stderr, "usage: %s capture SQL OUTFILE | stream SQL [--count]\n", argv[0]);
        return 2;
    }
    const char *sql = argv[2];
    int fd = plain_open_unix(need_env("FW_TEST_SOCKDIR"), need_env("FW_TEST_PORT"));
    if (fd < 0) {
        perror("pq_raw: connect");
        return 1;
    }
    FILE *cap = NULL, *print = NULL;
    if (capture && (cap = fopen(argv[3], "wb")) == NULL) {
        perror(argv[3]);
        close(fd);
        return 1;
    }
    if (stream && argc == 3)
        print = stdout;

    fw__pq_buf_t b;
    fw__pq_reader_t r;
    stats_t st;
    memset(&st, 0, sizeof(st));
    fw__pq_buf_init(&b, NULL);
    fw__pq_reader_init(&r, NULL, NULL);
    const char *kv[] = {"user",
                        need_env("FW_TEST_USER_TRUST"),
                        "database",
                        need_env("FW_TEST_DBNAME"),
                        "application_name",
                        "pq_raw",
                        NULL};
    bool startup_only = sql[0] == '\0';
    double t0 = now_s();
    int rc = fw__pq_put_startup(&b, kv);
    if (rc == 0)
        rc = plain_send_all(fd, b.data, b.len);
    if (rc == 0) /* trust: AuthenticationOk, ParameterStatus..., BackendKeyData, ReadyForQuery */
        rc = read_until_ready(fd, &r, startup_only ? cap : NULL, NULL, NULL);
    double t1 = now_s();
    fw__pq_buf_reset(&b);
    if (rc == 0 && !startup_only) {
        if ((rc = fw__pq_put_query(&b, sql)) == 0)
            rc = plain_send_all(fd, b.data, b.len);
        if (rc == 0)
            rc = read_until_ready(fd, &r, cap, print, &st);
    }
    double t2 = now_s();
    if (cap != NULL && fclose(cap) != 0)
        rc = -1;
    fw__pq_buf_reset(&b);
    if (fw__pq_put_terminate(&b) == 0)
        (void)plain_send_all(fd, b.data, b.len);
    close(fd);
    fw__pq_buf_free(&b);
    fw__pq_reader_free(&r);

    if (stream && rc == 0) {
        fflush(stdout);
        fprintf(stderr,
                "pq_raw: %ld rows (%ld NULL), %.1f MB of JSON in %.3f s (%.0f rows/s); "
                "connect %.1f ms\n",
                st.rows, st.nulls, (double)st.bytes / 1e6, t2 - t1,
                t2 > t1 ? (double)st.rows / (t2 - t1) : 0.0, (t1 - t0) * 1e3);
        if (st.sqlstate[0] != '\0') {
            fprintf(stderr, "pq_raw: the query failed after %ld rows: SQLSTATE %s: %s\n", st.rows,
                    st.sqlstate, st.message);
            return 1;
        }
    }
    return rc == 0 ? 0 : 1;
}
