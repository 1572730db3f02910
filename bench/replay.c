/* SPDX-License-Identifier: MIT */
/*
 * replay: a PostgreSQL server that costs (almost) nothing. It records, once, every byte a real
 * server sends for one query, then answers every client that connects with those bytes, as fast
 * as the socket takes them, so that a benchmark against it shows the client's own costs without
 * the server's CPU (on a 2-core machine the real server is the bottleneck of every streaming
 * client: docs/benchmarks.md).
 *
 *   replay --sql SQL [--save FILE] --listen SOCKDIR --port PORT      record from the test cluster
 *   replay --load FILE --listen SOCKDIR --port PORT                  serve a recording
 *
 * Recording connects to the test cluster's unix socket as its trust user (the FW_TEST_*
 * variables of test/with-pg.sh), sends SQL as a simple Query and keeps what comes back up to and
 * including ReadyForQuery: RowDescription, the DataRows, CommandComplete, ReadyForQuery.
 * --save writes it to FILE (the format of `pq_raw capture`); --load serves such a file.
 *
 * Serving: a unix socket SOCKDIR/.s.PGSQL.PORT, one forked process per connection (the
 * recording is shared copy-on-write). The startup is trust: SSLRequest and GSSENCRequest get
 * 'N'; the StartupMessage gets AuthenticationOk, the ParameterStatus values a PostgreSQL 15
 * sends, BackendKeyData and ReadyForQuery. A CancelRequest connection is closed. Then every
 * query gets the recording, whatever it asks:
 *  - a simple Query ('Q'): the recorded reply as it is;
 *  - the extended protocol: the client's messages are read up to Sync; the answer is
 *    ParseComplete if there was a Parse, BindComplete if there was a Bind, then the recorded
 *    reply (RowDescription answers a Describe of the portal; DataRows and CommandComplete the
 *    Execute; ReadyForQuery the Sync). fwire sends Parse/Bind/Describe(portal)/Execute/Sync.
 * Terminate or EOF ends the connection. Nothing the client sends is checked beyond framing: this
 * is a benchmark fixture, never a test oracle.
 *
 * It prints "replay: ready ROWS BYTES" on stdout once it listens (ROWS DataRows, BYTES of
 * recording) and serves until it is killed (SIGTERM/SIGINT remove the socket file).
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pq_plain.h"
#include "proto.h"

#define SSL_REQUEST_CODE    80877103
#define GSSENC_REQUEST_CODE 80877104
#define CANCEL_REQUEST_CODE 80877102
#define PROTOCOL_3_0        196608
#define MAX_CLIENT_MSG      (64 * 1024 * 1024) /* a client's message: a Parse of a long query */

static uint8_t *rec;    /* the recorded reply */
static size_t rec_len;  /* its length */
static size_t rec_rows; /* DataRows in it */
static char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Reads exactly n bytes; 0, or -1 on EOF or error. */
static int read_full(int fd, uint8_t *p, size_t n)
{
    size_t off = 0;
    while (off < n) {
        ssize_t k = plain_recv(fd, p + off, n - off);
        if (k <= 0)
            return -1;
        off += (size_t)k;
    }
    return 0;
}

/* Appends bytes to a growable buffer; 0 or -1. */
typedef struct gbuf_s {
    uint8_t *p;
    size_t len, cap;
} gbuf_t;

static int gput(gbuf_t *b, const void *src, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *q = realloc(b->p, cap);
        if (q == NULL)
            return -1;
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
    return 0;
}

/* Walks the messages of the recording: counts DataRows, checks that it frames and ends with
 * ReadyForQuery. 0, or -1 with a message. */
static int check_recording(void)
{
    size_t off = 0;
    uint8_t last = 0;
    rec_rows = 0;
    while (off < rec_len) {
        if (rec_len - off < 5)
            break;
        uint32_t len = be32(rec + off + 1);
        if (len < 4 || len > rec_len - off - 1)
            break;
        last = rec[off];
        rec_rows += last == 'D';
        if (last == 'E') {
            fprintf(stderr, "replay: the server answered the query with an error\n");
            return -1;
        }
        off += 1 + (size_t)len;
    }
    if (off != rec_len || last != 'Z') {
        fprintf(stderr, "replay: the recording does not end with a whole ReadyForQuery\n");
        return -1;
    }
    return 0;
}

/* ---- recording -------------------------------------------------------------------------- */

static const char *need_env(const char *name)
{
    const char *v = getenv(name);
    if (v == NULL || v[0] == '\0') {
        fprintf(stderr, "replay: %s is not set (run it through test/with-pg.sh)\n", name);
        exit(2);
    }
    return v;
}

/* Reads whole messages until ReadyForQuery; with `keep`, every byte goes there. */
static int until_ready(int fd, gbuf_t *keep)
{
    uint8_t hdr[5];
    gbuf_t body = {0};
    for (;;) {
        if (read_full(fd, hdr, 5) < 0)
            goto fail;
        uint32_t len = be32(hdr + 1);
        if (len < 4)
            goto fail;
        body.len = 0;
        if (len > 4) {
            if (body.cap < len - 4) {
                uint8_t *q = realloc(body.p, len - 4);
                if (q == NULL)
                    goto fail;
                body.p = q;
                body.cap = len - 4;
            }
            if (read_full(fd, body.p, len - 4) < 0)
                goto fail;
        }
        if (hdr[0] == 'R' && (len < 8 || be32(body.p) != 0)) {
            fprintf(stderr, "replay: the server asks for a password (trust only)\n");
            goto fail;
        }
        if (keep != NULL && (gput(keep, hdr, 5) < 0 || gput(keep, body.p, len - 4) < 0))
            goto fail;
        if (hdr[0] == 'E' && keep == NULL) {
            fprintf(stderr, "replay: the server refused the connection\n");
            goto fail;
        }
        if (hdr[0] == 'Z') {
            free(body.p);
            return 0;
        }
    }
fail:
    free(body.p);
    return -1;
}

static int record(const char *sql)
{
    int fd = plain_open_unix(need_env("FW_TEST_SOCKDIR"), need_env("FW_TEST_PORT"));
    if (fd < 0) {
        fprintf(stderr, "replay: connect to the test cluster: %s\n", strerror(errno));
        return -1;
    }
    fw__pq_buf_t b;
    fw__pq_buf_init(&b, NULL);
    const char *kv[] = {"user", need_env("FW_TEST_USER_TRUST"), "database",
                        need_env("FW_TEST_DBNAME"), NULL};
    gbuf_t keep = {0};
    int rc = fw__pq_put_startup(&b, kv);
    if (rc == 0)
        rc = plain_send_all(fd, b.data, b.len);
    if (rc == 0)
        rc = until_ready(fd, NULL);
    fw__pq_buf_reset(&b);
    if (rc == 0)
        rc = fw__pq_put_query(&b, sql);
    if (rc == 0)
        rc = plain_send_all(fd, b.data, b.len);
    if (rc == 0)
        rc = until_ready(fd, &keep);
    fw__pq_buf_reset(&b);
    if (fw__pq_put_terminate(&b) == 0)
        (void)plain_send_all(fd, b.data, b.len);
    fw__pq_buf_free(&b);
    close(fd);
    if (rc != 0) {
        fprintf(stderr, "replay: recording failed\n");
        free(keep.p);
        return -1;
    }
    rec = keep.p;
    rec_len = keep.len;
    return 0;
}

static int load(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    gbuf_t b = {0};
    uint8_t tmp[1 << 16];
    size_t n;
    while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
        if (gput(&b, tmp, n) < 0) {
            fclose(f);
            free(b.p);
            return -1;
        }
    fclose(f);
    rec = b.p;
    rec_len = b.len;
    return 0;
}

static int save(const char *path)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(rec, 1, rec_len, f) != rec_len || fclose(f) != 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- serving ---------------------------------------------------------------------------- */

static void put_msg(gbuf_t *b, uint8_t type, const void *body, size_t len)
{
    uint8_t hdr[5];
    hdr[0] = type;
    put32(hdr + 1, (uint32_t)(len + 4));
    (void)gput(b, hdr, 5);
    (void)gput(b, body, len);
}

static void put_param(gbuf_t *b, const char *name, const char *value)
{
    char body[256];
    size_t n = strlen(name) + 1, m = strlen(value) + 1;
    memcpy(body, name, n);
    memcpy(body + n, value, m);
    put_msg(b, 'S', body, n + m);
}

/* One client, in its own process. Returns when the client leaves. */
static void serve_one(int fd)
{
    uint8_t hdr[8];
    /* Startup: SSLRequest / GSSENCRequest first, maybe; a CancelRequest; the StartupMessage. */
    for (;;) {
        if (read_full(fd, hdr, 8) < 0)
            return;
        uint32_t len = be32(hdr), code = be32(hdr + 4);
        if (len < 8 || len > 10000)
            return;
        uint8_t rest[10000];
        if (read_full(fd, rest, len - 8) < 0)
            return;
        if (code == SSL_REQUEST_CODE || code == GSSENC_REQUEST_CODE) {
            if (plain_send_all(fd, (const uint8_t *)"N", 1) < 0)
                return;
            continue;
        }
        if (code == CANCEL_REQUEST_CODE)
            return; /* nothing runs long enough to cancel: the reply is already on its way */
        if (code != PROTOCOL_3_0)
            return;
        break;
    }
    gbuf_t hello = {0};
    uint8_t zero[4] = {0, 0, 0, 0};
    put_msg(&hello, 'R', zero, 4);
    put_param(&hello, "application_name", "");
    put_param(&hello, "client_encoding", "UTF8");
    put_param(&hello, "DateStyle", "ISO, MDY");
    put_param(&hello, "default_transaction_read_only", "off");
    put_param(&hello, "in_hot_standby", "off");
    put_param(&hello, "integer_datetimes", "on");
    put_param(&hello, "IntervalStyle", "postgres");
    put_param(&hello, "is_superuser", "off");
    put_param(&hello, "server_encoding", "UTF8");
    put_param(&hello, "server_version", "15.20");
    put_param(&hello, "session_authorization", "replay");
    put_param(&hello, "standard_conforming_strings", "on");
    put_param(&hello, "TimeZone", "UTC");
    uint8_t key[8];
    put32(key, (uint32_t)getpid());
    put32(key + 4, 0x5eed5eedu);
    put_msg(&hello, 'K', key, 8);
    put_msg(&hello, 'Z', "I", 1);
    int rc = hello.p == NULL ? -1 : plain_send_all(fd, hello.p, hello.len);
    free(hello.p);
    if (rc < 0)
        return;

    uint8_t *body = NULL;
    size_t body_cap = 0;
    bool parse = false, bind = false;
    for (;;) {
        if (read_full(fd, hdr, 5) < 0)
            break;
        uint32_t len = be32(hdr + 1);
        if (len < 4 || len > MAX_CLIENT_MSG)
            break;
        if (len - 4 > body_cap) {
            uint8_t *q = realloc(body, len - 4);
            if (q == NULL)
                break;
            body = q;
            body_cap = len - 4;
        }
        if (read_full(fd, body, len - 4) < 0)
            break;
        uint8_t t = hdr[0];
        if (t == 'X')
            break;
        if (t == 'P')
            parse = true;
        else if (t == 'B')
            bind = true;
        else if (t == 'Q' || t == 'S') {
            uint8_t pre[10];
            size_t n = 0;
            if (t == 'S' && parse) {
                pre[n++] = '1';
                put32(pre + n, 4);
                n += 4;
            }
            if (t == 'S' && bind) {
                pre[n++] = '2';
                put32(pre + n, 4);
                n += 4;
            }
            parse = bind = false;
            if ((n > 0 && plain_send_all(fd, pre, n) < 0) || plain_send_all(fd, rec, rec_len) < 0)
                break;
        }
    }
    free(body);
}

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int serve(const char *dir, const char *port)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    int n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/.s.PGSQL.%s", dir, port);
    if (n < 0 || (size_t)n >= sizeof(sa.sun_path)) {
        fprintf(stderr, "replay: socket path too long\n");
        return -1;
    }
    memcpy(sock_path, sa.sun_path, sizeof(sock_path));
    unlink(sock_path);
    int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(lfd, 64) != 0) {
        fprintf(stderr, "replay: listen on %s: %s\n", sock_path, strerror(errno));
        return -1;
    }
    struct sigaction act;
    memset(&act, 0, sizeof(act));
    act.sa_handler = SIG_IGN;
    act.sa_flags = SA_NOCLDWAIT; /* children reap themselves */
    sigaction(SIGCHLD, &act, NULL);
    act.sa_handler = on_signal;
    act.sa_flags = 0; /* no SA_RESTART: accept() returns EINTR */
    sigaction(SIGTERM, &act, NULL);
    sigaction(SIGINT, &act, NULL);
    signal(SIGPIPE, SIG_IGN);
    printf("replay: ready %zu %zu\n", rec_rows, rec_len);
    fflush(stdout);
    while (!stop) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            fprintf(stderr, "replay: accept: %s\n", strerror(errno));
            break;
        }
        pid_t pid = fork();
        if (pid == 0) {
            close(lfd);
            signal(SIGTERM, SIG_DFL);
            serve_one(fd);
            close(fd);
            _exit(0);
        }
        close(fd);
    }
    close(lfd);
    unlink(sock_path);
    return 0;
}

int main(int argc, char **argv)
{
    const char *sql = NULL, *save_path = NULL, *load_path = NULL, *dir = NULL, *port = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--sql") == 0 && i + 1 < argc)
            sql = argv[++i];
        else if (strcmp(argv[i], "--save") == 0 && i + 1 < argc)
            save_path = argv[++i];
        else if (strcmp(argv[i], "--load") == 0 && i + 1 < argc)
            load_path = argv[++i];
        else if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc)
            dir = argv[++i];
        else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = argv[++i];
        else {
            sql = load_path = NULL;
            break;
        }
    }
    if ((sql == NULL) == (load_path == NULL) || (dir == NULL) != (port == NULL) ||
        (dir == NULL && save_path == NULL)) {
        fprintf(stderr, "usage: replay --sql SQL [--save FILE] [--listen SOCKDIR --port PORT]\n"
                        "       replay --load FILE --listen SOCKDIR --port PORT\n");
        return 2;
    }
    if ((sql != NULL ? record(sql) : load(load_path)) < 0 || check_recording() < 0)
        return 1;
    if (save_path != NULL && save(save_path) < 0)
        return 1;
    if (dir == NULL) {
        printf("replay: recorded %zu %zu\n", rec_rows, rec_len);
        return 0;
    }
    return serve(dir, port) < 0 ? 1 : 0;
}
