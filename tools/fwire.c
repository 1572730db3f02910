/* SPDX-License-Identifier: MIT */
/*
 * The fwire command. Subcommands:
 *   fwire ping [CONNINFO]   connect, print one line of facts, exit
 * More (stream, serve) arrive with their issues.
 */
#include <fwire.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

/* Exit codes, as psql's: 0 success, 1 a fatal error of fwire's own (bad usage or options),
 * 2 the connection to the server failed. */
enum { EXIT_OK = 0, EXIT_USAGE = 1, EXIT_CONNECT = 2 };

static void usage(FILE *f)
{
    fprintf(f, "usage: fwire ping [-v] [--trace] [CONNINFO]\n"
               "\n"
               "Connects to PostgreSQL and prints one line: server version, user, database,\n"
               "transport, TLS version and cipher (or none), authentication method, whether\n"
               "channel binding was used, and the connect time.\n"
               "\n"
               "CONNINFO is a libpq connection string (\"host=db1 dbname=app\") or URI\n"
               "(\"postgresql://app@db1/app\"); without it the PG* environment variables and\n"
               "defaults apply, as in psql. The passfile (~/.pgpass or PGPASSFILE) is read.\n"
               "\n"
               "  -v        log each step (attempts, TLS, authentication) on stderr\n"
               "  --trace   print every protocol message sent (>) and received (<) on stderr;\n"
               "            password and SASL message bodies are never shown\n"
               "\n"
               "Exit status: 0 connected; 1 bad usage or invalid connection options;\n"
               "2 the connection failed (the phase, the message and the SQLSTATE are printed).\n");
}

typedef struct ping_s {
    int status;
    fw_error_t err;
    bool tcp;
    bool loopback;
    char line[1024];
} ping_t;

static void on_closed(fw_conn_t *conn, void *ud)
{
    (void)conn;
    (void)ud;
}

static void on_connected(fw_conn_t *conn, int status, const fw_error_t *err, void *ud)
{
    ping_t *p = ud;
    fw_conn_info_t info;
    p->status = status;
    if (status < 0) {
        if (err != NULL)
            p->err = *err;
    } else if (fw_conn_info(conn, &info) == 0) {
        /* info's strings live only as long as the connection, which closes below */
        const fw_conn_info_t *i = &info;
        p->tcp = strcmp(i->transport, "tcp") == 0;
        p->loopback = strncmp(i->address, "127.", 4) == 0 || strcmp(i->address, "::1") == 0;
        char tls[128];
        if (i->tls_version != NULL)
            snprintf(tls, sizeof(tls), "%s %s", i->tls_version, i->tls_cipher);
        else
            snprintf(tls, sizeof(tls), "none");
        snprintf(p->line, sizeof(p->line),
                 "server %s, user %s, database %s, %s %s port %d, tls %s, auth %s, channel "
                 "binding %s, connected in %.1f ms",
                 i->server_version_str, i->user, i->database, i->transport, i->address, i->port,
                 tls, i->auth_method, i->channel_binding ? "used" : "not used",
                 i->connect_seconds * 1e3);
    }
    fw_conn_close(conn, on_closed, NULL);
}

/* Decision 1 of RELIABILITY.md: say so when a TCP connection to another machine is not
 * verified. */
static void warn_unverified(const ping_t *p, const char *conninfo)
{
    if (!p->tcp || p->loopback)
        return;
    const char *mode = getenv("PGSSLMODE");
    if (conninfo != NULL && (strstr(conninfo, "verify-full") || strstr(conninfo, "verify-ca")))
        return;
    if (conninfo == NULL && mode != NULL &&
        (strcmp(mode, "verify-full") == 0 || strcmp(mode, "verify-ca") == 0))
        return;
    fprintf(stderr, "fwire: warning: the server's identity was not verified (use "
                    "sslmode=verify-full with sslrootcert)\n");
}

static void on_log(void *ud, fw_log_level_t level, const char *line)
{
    static const char *const names[] = {"debug", "info", "warning"};
    (void)ud;
    fprintf(stderr, "fwire: %s: %s\n", names[level], line);
}

static void on_trace(void *ud, const fw_trace_t *t)
{
    (void)ud;
    fprintf(stderr, "fwire: %c %c %zu", t->direction, t->type ? (char)t->type : '-', t->length);
    if (t->body == NULL)
        fprintf(stderr, " (redacted)");
    fputc('\n', stderr);
}

static int ping(const char *conninfo, bool verbose, bool tracing)
{
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0) {
        fprintf(stderr, "fwire: cannot start an event loop\n");
        return EXIT_USAGE;
    }
    fw_conn_opts_t opts;
    fw_conn_opts_init(&opts);
    opts.conninfo = conninfo;
    if (verbose)
        opts.log_cb = on_log;
    if (tracing)
        opts.trace_cb = on_trace;
    fw_conn_t *conn = NULL;
    ping_t p;
    memset(&p, 0, sizeof(p));
    int rc = fw_conn_new(&conn, &loop, &opts, &p.err);
    if (rc < 0) {
        fprintf(stderr, "fwire: invalid connection options: %s\n",
                p.err.message[0] ? p.err.message : fw_strerror(rc));
        uv_loop_close(&loop);
        return EXIT_USAGE;
    }
    rc = fw_conn_connect(conn, on_connected, &p);
    if (rc < 0) {
        fw_conn_close(conn, NULL, NULL);
        p.status = rc;
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    if (p.status < 0) {
        fprintf(stderr, "fwire: connection failed (%s): %s\n", fw_phase_name(p.err.phase),
                p.err.message[0] ? p.err.message : fw_strerror(p.status));
        if (p.err.sqlstate[0] != '\0')
            fprintf(stderr, "fwire: SQLSTATE %s\n", p.err.sqlstate);
        if (p.err.detail[0] != '\0')
            fprintf(stderr, "fwire: DETAIL: %s\n", p.err.detail);
        if (p.err.hint[0] != '\0')
            fprintf(stderr, "fwire: HINT: %s\n", p.err.hint);
        return EXIT_CONNECT;
    }
    printf("%s\n", p.line);
    warn_unverified(&p, conninfo);
    return EXIT_OK;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        usage(stdout);
        return EXIT_OK;
    }
    if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
        printf("fwire %s\n", fw_version_string());
        return EXIT_OK;
    }
    if (argc < 2 || strcmp(argv[1], "ping") != 0) {
        usage(stderr);
        return EXIT_USAGE;
    }
    bool verbose = false, tracing = false;
    const char *conninfo = NULL;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return EXIT_OK;
        } else if (strcmp(argv[i], "-v") == 0) {
            verbose = true;
        } else if (strcmp(argv[i], "--trace") == 0) {
            tracing = true;
        } else if (argv[i][0] == '-' || conninfo != NULL) {
            usage(stderr);
            return EXIT_USAGE;
        } else {
            conninfo = argv[i];
        }
    }
    return ping(conninfo, verbose, tracing);
}
