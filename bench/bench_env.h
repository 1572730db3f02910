/* SPDX-License-Identifier: MIT */
/*
 * Shared by the benchmarks that run libpq next to fwire: PG* variables would change what libpq
 * connects to (and how) behind the benchmark's back, so they are removed, each one named on
 * stderr, before the first connection. `who` prefixes the message.
 */
#ifndef FW_BENCH_ENV_H
#define FW_BENCH_ENV_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

static inline void bench_clear_pg_environment(const char *who, const char *why)
{
    for (;;) {
        char **e = environ;
        while (*e != NULL && strncmp(*e, "PG", 2) != 0)
            e++;
        if (*e == NULL)
            return;
        char name[256];
        size_t n = strcspn(*e, "=");
        if (n >= sizeof(name))
            n = sizeof(name) - 1;
        memcpy(name, *e, n);
        name[n] = '\0';
        fprintf(stderr, "%s: ignoring %s: %s\n", who, name, why);
        unsetenv(name);
    }
}

#endif /* FW_BENCH_ENV_H */
