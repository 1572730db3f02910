/* SPDX-License-Identifier: MIT */
/* The entry point of `fwire serve` (serve.c), for the dispatch in fwire.c. */
#ifndef FWIRE_SERVE_CLI_H
#define FWIRE_SERVE_CLI_H

/* fwire serve [OPTIONS]: argv[0] is "serve". Returns the exit code. */
int cli_serve(int argc, char **argv);

#endif /* FWIRE_SERVE_CLI_H */
