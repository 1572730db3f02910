/* SPDX-License-Identifier: MIT */
/* The options of `fwire stream`, parsed into a query (stream_args.c). */
#ifndef FWIRE_STREAM_ARGS_H
#define FWIRE_STREAM_ARGS_H

#include "cli.h"

#include <fwire.h>

#include <stdbool.h>

/* What to print for a row whose data is SQL NULL (--nulls). */
typedef enum nulls_mode_e {
    NULLS_SKIP = 0, /* nothing; counted, and a note on stderr unless --nulls was given */
    NULLS_EMPTY,    /* an empty line: a JSON value is never empty, so readers can tell */
    NULLS_JSON      /* the text null: indistinguishable from a JSON null */
} nulls_mode_t;

typedef struct stream_args_s {
    fw_query_t *q;        /* source, predicates, order, limits, streaming settings */
    cli_conn_t conn;      /* -h, -p, -U, -d and CONNINFO as given */
    const char *conninfo; /* borrowed from argv; NULL: the PG* environment */
    nulls_mode_t nulls;
    bool nulls_given;
    bool count;
    bool stats;
    bool print_sql;
    bool verbose;
    bool tracing;
    int progress; /* -1: when stderr is a terminal; 0 off; 1 on */
    const char *metrics_out; /* --metrics-out FILE, borrowed from argv; NULL: none */
    size_t max_row_size;     /* --max-row-size: the connection's max_message; 0: the default */
} stream_args_t;

/*
 * Parses argv (argv[0] is "stream") into *a. Returns -1 to go on and run the query, or the exit
 * code to end with: EXIT_OK after --help, EXIT_USAGE after printing what is wrong. The
 * connection options are applied (cli_conn_apply) when it returns -1. Always call
 * stream_args_free() afterwards.
 */
int stream_args_parse(stream_args_t *a, int argc, char **argv);

/* --print-sql: prints the query's SQL on stdout. Returns the exit code. */
int stream_args_print_sql(const stream_args_t *a);

void stream_args_free(stream_args_t *a);

#endif /* FWIRE_STREAM_ARGS_H */
