/* SPDX-License-Identifier: MIT */
/*
 * The fwire command. Subcommands (docs/cli.md):
 *   fwire ping [CONNINFO]              connect, print one line of facts, exit  (cmd_ping.c)
 *   fwire stream RELATION [CONNINFO]   stream a view's data column as NDJSON   (cmd_stream.c)
 *   fwire serve [OPTIONS]              WebSocket/HTTP gateway for browsers     (serve*.c)
 * This file holds main() and what the subcommands print the same way.
 */
#include "cli.h"
#include "serve_cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: fwire ping [OPTIONS] [CONNINFO]\n"
               "       fwire stream [OPTIONS] RELATION [CONNINFO]\n"
               "       fwire stream [OPTIONS] -e ENTITY [CONNINFO]\n"
               "       fwire serve [OPTIONS] --allow ENTITY[,ENTITY...]\n"
               "       fwire --version | --help | -?\n"
               "\n"
               "  ping     connect and print one line of facts about the connection\n"
               "  stream   print the data column of a view as NDJSON, one row per line\n"
               "  serve    stream allowlisted views to browsers over WebSocket (and NDJSON)\n"
               "\n"
               "`fwire ping --help`, `fwire stream --help` and `fwire serve --help` describe each\n"
               "command.\n"
               "Connection options are psql's: -h/--host, -p/--port, -U/--username, -d/--dbname.\n"
               "Exit status (as psql's): 0 success; 1 bad usage or options; 2 the connection\n"
               "failed; 3 the query failed (stream); docs/cli.md compares them with pg_isready.\n");
}

void cli_on_log(void *ud, fw_log_level_t level, const char *line)
{
    static const char *const names[] = {"debug", "info", "warning"};
    (void)ud;
    fprintf(stderr, "fwire: %s: %s\n", names[level], line);
}

void cli_on_trace(void *ud, const fw_trace_t *t)
{
    (void)ud;
    /* One fprintf per message: the trace runs on the loop thread of a threaded-mode command,
     * and stdio locks per call, so lines from two threads never interleave mid-line. */
    fprintf(stderr, "fwire: %c %c %zu%s\n", t->direction, t->type ? (char)t->type : '-', t->length,
            t->body == NULL ? " (redacted)" : "");
}

void cli_print_error(const char *what, const char *tag, int code, const fw_error_t *err)
{
    const char *msg = err != NULL && err->message[0] != '\0' ? err->message : fw_strerror(code);
    fprintf(stderr, "fwire: %s (%s): %s\n", what, tag, msg);
    if (err == NULL)
        return;
    if (err->sqlstate[0] != '\0')
        fprintf(stderr, "fwire: SQLSTATE %s\n", err->sqlstate);
    if (err->detail[0] != '\0')
        fprintf(stderr, "fwire: DETAIL: %s\n", err->detail);
    if (err->hint[0] != '\0')
        fprintf(stderr, "fwire: HINT: %s\n", err->hint);
}

void cli_warn_unverified(const fw_conn_info_t *info, const char *conninfo)
{
    if (strcmp(info->transport, "tcp") != 0)
        return;
    if (strncmp(info->address, "127.", 4) == 0 || strcmp(info->address, "::1") == 0)
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

int main(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "-?") == 0 || strcmp(argv[1], "--help") == 0)) {
        usage(stdout);
        return EXIT_OK;
    }
    if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
        printf("fwire %s\n", fw_version_string());
        return EXIT_OK;
    }
    if (argc >= 2 && strcmp(argv[1], "ping") == 0)
        return cli_ping(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "stream") == 0)
        return cli_stream(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "serve") == 0)
        return cli_serve(argc - 1, argv + 1);
    if (argc >= 2)
        fprintf(stderr, "fwire: unknown %s '%s'\n", argv[1][0] == '-' ? "option" : "command",
                argv[1]);
    usage(stderr);
    return EXIT_USAGE;
}
