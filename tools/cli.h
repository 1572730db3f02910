/* SPDX-License-Identifier: MIT */
/*
 * What the files of the fwire command share: exit codes, the subcommands' entry points and the
 * connection hooks and messages every subcommand prints the same way.
 */
#ifndef FWIRE_CLI_H
#define FWIRE_CLI_H

#include <fwire.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Exit codes, as psql's where they overlap (docs/cli.md, "Exit status", has the table against
 * psql and pg_isready): 0 success, 1 a fatal error of fwire's own (bad usage or options,
 * unwritable output), 2 the connection to the server failed, 3 the query failed (server error,
 * result of the wrong shape, ...). `fwire stream` stopped by a signal exits 128 + its number,
 * as a shell reports it: 130 for SIGINT, 143 for SIGTERM. */
enum { EXIT_OK = 0, EXIT_USAGE = 1, EXIT_CONNECT = 2, EXIT_QUERY = 3 };

/*
 * One option parser for every subcommand (cli.c). An option table lists each option once:
 * its long name (without "--"), its one-letter name (0: none) and whether it takes a value.
 * Accepted spellings: "--name VALUE", "--name=VALUE", "-x VALUE", "-xVALUE", "-abc" for flags,
 * "--" ends the options; options and arguments may come in any order. Every unknown option,
 * missing value or value given to a flag is reported naming the option as it was written.
 */
typedef struct cli_opt_s {
    const char *name; /* "limit" for --limit */
    char letter;      /* 'h' for -h; 0 when there is none */
    bool value;       /* takes a value */
    int id;           /* what cli_next() returns for it: >= 0 */
} cli_opt_t;

typedef struct cli_parser_s {
    const char *cmd;       /* "ping", for messages "fwire ping: ..." */
    const cli_opt_t *opts; /* ends with an entry whose name is NULL */
    int argc;
    char **argv;
    int i;               /* the next argv to look at */
    const char *cluster; /* the rest of a "-abc" group, or NULL */
    bool only_args;      /* after "--" */
    char written[64];    /* the current option as written: "--limit", "-h" */
} cli_parser_t;

enum {
    CLI_DONE = -1,  /* no more arguments */
    CLI_ERROR = -2, /* a bad option: already reported; exit EXIT_USAGE */
    CLI_ARG = -3,   /* an argument that is not an option: *value */
    CLI_HELP = -4,  /* --help or -? */
};

/* argv[0] is the subcommand's name; parsing starts at argv[1]. */
void cli_init(cli_parser_t *p, const char *cmd, const cli_opt_t *opts, int argc, char **argv);
/* The next option's id (its value in *value, NULL for a flag), or one of the CLI_ codes. */
int cli_next(cli_parser_t *p, const char **value);
/* The option cli_next() returned last, as written ("--limit", "-p"): for messages. */
const char *cli_written(const cli_parser_t *p);

/* "fwire CMD: MESSAGE", then where the help is, on stderr. Returns EXIT_USAGE. */
int cli_bad(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Decimal digits only, no sign, at most `max`. */
bool cli_parse_uint(const char *s, uint64_t max, uint64_t *out);
/* Bytes: "65536", "64K", "4M", "1G" (also "4MB", "4MiB", lower case), binary multiples. */
bool cli_parse_size(const char *s, uint64_t *out);

/*
 * The connection options every subcommand takes, as psql spells them: -h/--host, -p/--port,
 * -U/--username, -d/--dbname. Put CLI_CONN_OPTIONS in an option table, hand what cli_next()
 * returns to cli_conn_option(), then call cli_conn_apply() once the arguments are read.
 * Precedence is libpq's as psql uses it: a field of CONNINFO wins over the option, the option
 * over the PG* environment, which wins over the defaults. A -d value that is a connection string
 * or URI is the CONNINFO, as in psql.
 */
enum { CLI_OPT_HOST = 1000, CLI_OPT_PORT, CLI_OPT_USER, CLI_OPT_DBNAME };
#define CLI_CONN_OPTIONS                                                                       \
    {"host", 'h', true, CLI_OPT_HOST}, {"port", 'p', true, CLI_OPT_PORT},                      \
        {"username", 'U', true, CLI_OPT_USER}, {"dbname", 'd', true, CLI_OPT_DBNAME}

typedef struct cli_conn_s {
    const char *host, *port, *user, *dbname; /* borrowed from argv; NULL: not given */
    const char *conninfo;                    /* the CONNINFO argument; NULL: none */
} cli_conn_t;

/* Whether psql would read `s` as a connection string rather than a name: a URI prefix or '='. */
bool cli_is_conninfo(const char *s);
/* Records option `id` if it is one of CLI_CONN_OPTIONS: true then, false for other ids. */
bool cli_conn_option(cli_conn_t *c, int id, const char *value);
/* Sets CONNINFO (the positional argument); EXIT_USAGE, reported, when -d gave one already. */
int cli_conn_set(cli_conn_t *c, const char *cmd, const char *conninfo);
/* Checks the options and hands them to the library through PGHOST, PGPORT, PGUSER and
 * PGDATABASE, which a CONNINFO's fields override as libpq's order wants. Call before any
 * thread starts. Returns -1 to go on, or EXIT_USAGE after reporting the option at fault. */
int cli_conn_apply(cli_conn_t *c, const char *cmd);
/* The help lines of CLI_CONN_OPTIONS. */
void cli_conn_usage(FILE *f);

/* Subcommands: argv[0] is the subcommand's name, options follow. Return the exit code. */
int cli_ping(int argc, char **argv);
int cli_stream(int argc, char **argv);

/* fw_conn_opts_t hooks for -v and --trace: one line per event on stderr. Any thread. */
void cli_on_log(void *ud, fw_log_level_t level, const char *line);
void cli_on_trace(void *ud, const fw_trace_t *t);

/*
 * Prints a failure on stderr: "fwire: WHAT (TAG): message", then the SQLSTATE, DETAIL and HINT
 * lines the error has. `tag` names where it failed (a phase, an error code name).
 */
void cli_print_error(const char *what, const char *tag, int code, const fw_error_t *err);

/* docs/security.md, "Server identity": warns on stderr when a TCP connection to another machine was not
 * verified. `conninfo` may be NULL (the environment was used). */
void cli_warn_unverified(const fw_conn_info_t *info, const char *conninfo);

#endif /* FWIRE_CLI_H */
