/* SPDX-License-Identifier: MIT */
/*
 * Test helper shared by the tests that run against the replicated cluster of test/pgrepl.sh
 * (through test/with-repl.sh: node 0 the primary, nodes 1 and 2 streaming standbys): the
 * environment the wrapper exports, a node's port, the conninfo of the nodes, which node and
 * which backend a connection reached, a shell command and a monotonic clock.
 * Everything is static inline: each test takes what it needs. Not for tests that include
 * test/live.h (the single server of test/with-pg.sh): both define env().
 */
#ifndef FW_TEST_REPL_ENV_H
#define FW_TEST_REPL_ENV_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>

#include <cmocka.h>

#include "fwire.h"

/* A variable test/with-repl.sh exports; the test fails when it is missing. */
static inline const char *env(const char *name)
{
    const char *v = getenv(name);
    if (v == NULL || v[0] == '\0')
        fail_msg("%s is not set (run through test/with-repl.sh)", name);
    return v;
}

/* Node n's port (FW_REPL_N<n>_PORT): the same through restarts, promotions and rejoins. */
static inline int node_port(int n)
{
    char name[32];
    snprintf(name, sizeof(name), "FW_REPL_N%d_PORT", n);
    return atoi(env(name));
}

/* The conninfo of the three nodes in node order (or of the one node on `port`, when port > 0):
 * SCRAM over TCP without TLS, connect_timeout=2, then `extra` (more keywords) unless NULL. */
static inline void make_conninfo(char *buf, size_t cap, int port, const char *extra)
{
    const char *sep = extra != NULL ? " " : "", *more = extra != NULL ? extra : "";
    if (port > 0)
        snprintf(buf, cap,
                 "host=%s port=%d dbname=%s user=%s password=%s sslmode=disable "
                 "connect_timeout=2%s%s",
                 env("FW_REPL_HOST4"), port, env("FW_REPL_DBNAME"), env("FW_REPL_USER_SCRAM"),
                 env("FW_REPL_PASS_SCRAM"), sep, more);
    else
        snprintf(buf, cap,
                 "host=%s,%s,%s port=%d,%d,%d dbname=%s user=%s password=%s sslmode=disable "
                 "connect_timeout=2%s%s",
                 env("FW_REPL_HOST4"), env("FW_REPL_HOST4"), env("FW_REPL_HOST4"), node_port(0),
                 node_port(1), node_port(2), env("FW_REPL_DBNAME"), env("FW_REPL_USER_SCRAM"),
                 env("FW_REPL_PASS_SCRAM"), sep, more);
}

/* The node a connection reached (by port), or -1. */
static inline int node_of(fw_conn_t *c)
{
    fw_conn_info_t info;
    assert_int_equal(fw_conn_info(c, &info), 0);
    for (int n = 0; n < 3; n++)
        if (info.port == node_port(n))
            return n;
    return -1;
}

static inline int backend_pid(fw_conn_t *c)
{
    fw_conn_info_t info;
    assert_int_equal(fw_conn_info(c, &info), 0);
    return info.backend_pid;
}

/* Runs a shell command (printf-style, up to 2 KiB); its exit status, or -1. */
#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
static inline int
sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    return rc == -1 ? -1 : WEXITSTATUS(rc);
}

static inline double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#endif
