/* SPDX-License-Identifier: MIT */
/*
 * fwire ping [OPTIONS] [CONNINFO]: connect on a libuv loop of its own (embedded mode),
 * print one line of facts about the connection, exit.
 */
#include "cli.h"

#include <stdio.h>
#include <string.h>

#include <uv.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: fwire ping [OPTIONS] [CONNINFO]\n"
               "\n"
               "Connects to PostgreSQL and prints one line: server version, user, database,\n"
               "transport, TLS version and cipher (or none), authentication method, whether\n"
               "channel binding was used, and the connect time.\n"
               "\n"
               "CONNINFO is a libpq connection string (\"host=db1 dbname=app\") or URI\n"
               "(\"postgresql://app@db1/app\"); without it the PG* environment variables and\n"
               "defaults apply, as in psql. The passfile (~/.pgpass or PGPASSFILE) is read.\n"
               "\n");
    cli_conn_usage(f);
    fprintf(f, "\n"
               "  -v, --verbose             log each step (attempts, TLS, authentication)\n"
               "  --trace                   print every protocol message sent (>) and received\n"
               "                            (<) on stderr; password and SASL bodies never shown\n"
               "  -?, --help                this help\n"
               "\n"
               "Exit status (pg_isready's and psql's where they mean the same): 0 connected;\n"
               "1 bad usage or invalid connection options; 2 the connection failed (the phase,\n"
               "the message and the SQLSTATE are printed).\n");
}

typedef struct ping_s {
    int status;
    fw_error_t err;
    bool have_info;
    fw_conn_info_t info; /* strings valid until the connection closes: copied into line */
    char transport[8];
    char address[128];
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
    p->status = status;
    if (status < 0) {
        if (err != NULL)
            p->err = *err;
    } else if (fw_conn_info(conn, &p->info) == 0) {
        /* info's strings live only as long as the connection, which closes below: keep
         * copies of what cli_warn_unverified() reads later */
        const fw_conn_info_t *i = &p->info;
        snprintf(p->transport, sizeof(p->transport), "%s", i->transport);
        snprintf(p->address, sizeof(p->address), "%s", i->address);
        p->info.transport = p->transport;
        p->info.address = p->address;
        p->have_info = true;
        char tls[128];
        if (i->tls_version != NULL)
            snprintf(tls, sizeof(tls), "%s %s", i->tls_version, i->tls_cipher);
        else
            snprintf(tls, sizeof(tls), "none");
        snprintf(p->line, sizeof(p->line),
                 "server %s, role %s%s, host %s, user %s, database %s, %s %s port %d, tls %s, auth "
                 "%s, channel binding %s, protocol %d.%d, connected in %.1f ms",
                 i->server_version_str, fw_server_role_name(i->role),
                 i->read_only && i->role != FW_ROLE_STANDBY ? ", read-only" : "", i->host,
                 i->user, i->database, i->transport, i->address, i->port, tls, i->auth_method,
                 i->channel_binding ? "used" : "not used", i->protocol_version / 10000,
                 i->protocol_version % 10000, i->connect_seconds * 1e3);
    }
    fw_conn_close(conn, on_closed, NULL);
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
        opts.log_cb = cli_on_log;
    if (tracing)
        opts.trace_cb = cli_on_trace;
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
        cli_print_error("connection failed", fw_phase_name(p.err.phase), p.status, &p.err);
        return EXIT_CONNECT;
    }
    printf("%s\n", p.line);
    if (p.have_info)
        cli_warn_unverified(&p.info, conninfo);
    return EXIT_OK;
}

enum { OPT_VERBOSE, OPT_TRACE };

static const cli_opt_t ping_opts[] = {
    CLI_CONN_OPTIONS,
    {"verbose", 'v', false, OPT_VERBOSE},
    {"trace", 0, false, OPT_TRACE},
    {NULL, 0, false, 0},
};

int cli_ping(int argc, char **argv)
{
    bool verbose = false, tracing = false;
    cli_conn_t conn = {NULL, NULL, NULL, NULL, NULL};
    cli_parser_t p;
    cli_init(&p, "ping", ping_opts, argc, argv);
    const char *value;
    int c, rc;
    while ((c = cli_next(&p, &value)) != CLI_DONE) {
        if (c == CLI_ERROR)
            return EXIT_USAGE;
        if (c == CLI_HELP) {
            usage(stdout);
            return EXIT_OK;
        }
        if (c == CLI_ARG) {
            if ((rc = cli_conn_set(&conn, "ping", value)) >= 0)
                return rc;
        } else if (c == OPT_VERBOSE) {
            verbose = true;
        } else if (c == OPT_TRACE) {
            tracing = true;
        } else {
            (void)cli_conn_option(&conn, c, value);
        }
    }
    if ((rc = cli_conn_apply(&conn, "ping")) >= 0)
        return rc;
    return ping(conn.conninfo, verbose, tracing);
}
