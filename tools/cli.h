/* SPDX-License-Identifier: MIT */
/*
 * What the files of the fwire command share: exit codes, the subcommands' entry points and the
 * connection hooks and messages every subcommand prints the same way.
 */
#ifndef FWIRE_CLI_H
#define FWIRE_CLI_H

#include <fwire.h>

#include <stdbool.h>

/* Exit codes, as psql's where they overlap: 0 success, 1 a fatal error of fwire's own (bad
 * usage or options, unwritable output), 2 the connection to the server failed, 3 the query
 * failed (server error, result of the wrong shape, ...). `fwire stream` stopped by a signal
 * exits 128 + its number, as a shell reports it: 130 for SIGINT, 143 for SIGTERM. */
enum { EXIT_OK = 0, EXIT_USAGE = 1, EXIT_CONNECT = 2, EXIT_QUERY = 3 };

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

/* RELIABILITY.md decision 1: warns on stderr when a TCP connection to another machine was not
 * verified. `conninfo` may be NULL (the environment was used). */
void cli_warn_unverified(const fw_conn_info_t *info, const char *conninfo);

#endif /* FWIRE_CLI_H */
