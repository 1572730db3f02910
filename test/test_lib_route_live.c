/* SPDX-License-Identifier: MIT */
/*
 * Multi-host routing against a real replicated cluster (test/pgrepl.sh through with-repl.sh:
 * node 0 the primary, nodes 1 and 2 streaming hot standbys, each on its own port): every
 * target_session_attrs value over host lists in different orders, default_transaction_read_only
 * telling read-write from primary, a standby that answers 57P03, load_balance_hosts=random
 * over the two standbys, a first host that refuses the password (the second never sees a
 * connection: its server log says so), the cancel of a query reaching the standby it runs on,
 * and a failover: the primary stopped, a standby promoted while a stream runs on it (the
 * stream completes, the connection reports its new role), read-write finding the new primary
 * with one attempt per host. The destructive steps run last, in order.
 */
#include <fwire.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "repl_env.h"

static fw_runtime_t *rt;

/* "host=127.0.0.1,127.0.0.1 port=P1,P0 ..." for the nodes in `order` (a string of digits). */
static void dsn(char *out, size_t cap, const char *order, const char *extra)
{
    char hosts[128] = "", ports[128] = "";
    for (const char *p = order; *p != '\0'; p++) {
        size_t h = strlen(hosts), q = strlen(ports);
        snprintf(hosts + h, sizeof(hosts) - h, "%s%s", h ? "," : "", env("FW_REPL_HOST4"));
        snprintf(ports + q, sizeof(ports) - q, "%s%d", q ? "," : "", node_port(*p - '0'));
    }
    snprintf(out, cap,
             "host=%s port=%s dbname=%s user=%s password=%s sslmode=disable connect_timeout=5 %s",
             hosts, ports, env("FW_REPL_DBNAME"), env("FW_REPL_USER_SCRAM"),
             env("FW_REPL_PASS_SCRAM"), extra != NULL ? extra : "");
}

typedef struct logbuf_s {
    char text[8192];
} logbuf_t;

static void on_log(void *ud, fw_log_level_t level, const char *line)
{
    (void)level;
    logbuf_t *b = ud;
    size_t n = strlen(b->text);
    snprintf(b->text + n, sizeof(b->text) - n, "%s\n", line);
}

/* Connects; returns the rc, with *port and *role of the server reached. */
static int connect_to(const char *conninfo, fw_conn_t **out, fw_error_t *err, logbuf_t *log)
{
    fw_conn_opts_t o;
    fw_conn_opts_init(&o);
    o.conninfo = conninfo;
    o.use_environment = false;
    if (log != NULL) {
        o.log_cb = on_log;
        o.log_ud = log;
    }
    return fw_conn_connect_sync(rt, &o, out, err);
}

static void expect_node(const char *order, const char *extra, int want_node,
                        fw_server_role_t want_role)
{
    char conninfo[1024];
    dsn(conninfo, sizeof(conninfo), order, extra);
    fw_conn_t *c = NULL;
    fw_error_t err;
    int rc = connect_to(conninfo, &c, &err, NULL);
    if (rc != 0)
        fail_msg("order %s %s: connect failed: %s", order, extra, err.message);
    int n = node_of(c);
    if (n != want_node)
        fail_msg("order %s %s: reached node %d, want %d", order, extra, n, want_node);
    fw_conn_info_t info;
    assert_int_equal(fw_conn_info(c, &info), 0);
    assert_int_equal(info.role, want_role);
    assert_int_equal(fw_conn_role(c), want_role);
    bool want_ro = want_role == FW_ROLE_STANDBY ||
                   (extra != NULL && strstr(extra, "default_transaction_read_only=on") != NULL);
    assert_int_equal(fw_conn_read_only(c), want_ro);
    fw_conn_close_sync(c);
}

static void expect_refused(const char *order, const char *extra, const char *why, int lines)
{
    char conninfo[1024];
    dsn(conninfo, sizeof(conninfo), order, extra);
    fw_conn_t *c = NULL;
    fw_error_t err;
    int rc = connect_to(conninfo, &c, &err, NULL);
    if (rc != FW_EROUTE)
        fail_msg("order %s %s: rc %s, want FW_EROUTE (%s)", order, extra, fw_err_name(rc),
                 err.message);
    assert_int_equal(err.phase, FW_PHASE_ROUTE);
    /* one line per host tried, each naming its port and the reason */
    int got = 0;
    for (const char *p = err.message; (p = strstr(p, why)) != NULL; p++)
        got++;
    if (got != lines)
        fail_msg("order %s: %d lines with \"%s\", want %d:\n%s", order, got, why, lines,
                 err.message);
    for (const char *p = order; *p != '\0'; p++) {
        char port[16];
        snprintf(port, sizeof(port), "port %d", node_port(*p - '0'));
        if (strstr(err.message, port) == NULL)
            fail_msg("the error does not name %s:\n%s", port, err.message);
    }
}

/* ---- every value, host lists in different orders ---------------------------------------- */

static void test_targets(void **state)
{
    (void)state;
    static const char *const orders[] = {"012", "120", "210", "201"};
    for (size_t i = 0; i < 4; i++) {
        const char *o = orders[i];
        int first_standby = o[0] != '0' ? o[0] - '0' : o[1] - '0';
        expect_node(o, "target_session_attrs=any", o[0] - '0',
                    o[0] == '0' ? FW_ROLE_PRIMARY : FW_ROLE_STANDBY);
        expect_node(o, "target_session_attrs=read-write", 0, FW_ROLE_PRIMARY);
        expect_node(o, "target_session_attrs=primary", 0, FW_ROLE_PRIMARY);
        expect_node(o, "target_session_attrs=read-only", first_standby, FW_ROLE_STANDBY);
        expect_node(o, "target_session_attrs=standby", first_standby, FW_ROLE_STANDBY);
        expect_node(o, "target_session_attrs=prefer-standby", first_standby, FW_ROLE_STANDBY);
    }
    /* only standbys listed */
    expect_refused("12", "target_session_attrs=read-write", "session is read-only", 2);
    expect_refused("21", "target_session_attrs=primary", "server is in hot standby mode", 2);
    /* only the primary listed */
    expect_refused("0", "target_session_attrs=standby", "server is not in hot standby mode", 1);
    expect_refused("0", "target_session_attrs=read-only", "session is not read-only", 1);
    /* prefer-standby without a standby: the second pass takes the primary */
    expect_node("0", "target_session_attrs=prefer-standby", 0, FW_ROLE_PRIMARY);
}

/* default_transaction_read_only=on (here through `options`, which the server reports back as
 * a ParameterStatus): the primary is still a primary, but not read-write. */
static void test_read_only_primary(void **state)
{
    (void)state;
    const char *ro = "options='-c default_transaction_read_only=on' ";
    char extra[256];
    snprintf(extra, sizeof(extra), "%s target_session_attrs=read-write", ro);
    expect_refused("012", extra, "session is read-only", 3);
    snprintf(extra, sizeof(extra), "%s target_session_attrs=primary", ro);
    char conninfo[1024];
    dsn(conninfo, sizeof(conninfo), "120", extra);
    fw_conn_t *c = NULL;
    fw_error_t err;
    assert_int_equal(connect_to(conninfo, &c, &err, NULL), 0);
    assert_int_equal(node_of(c), 0);
    assert_int_equal(fw_conn_role(c), FW_ROLE_PRIMARY);
    assert_true(fw_conn_read_only(c)); /* a primary whose sessions are read-only */
    fw_conn_close_sync(c);
    snprintf(extra, sizeof(extra), "%s target_session_attrs=read-only", ro);
    expect_node("0", extra, 0, FW_ROLE_PRIMARY);
}

/* ---- load_balance_hosts=random over the two standbys ------------------------------------ */

static void test_load_balance(void **state)
{
    (void)state;
    enum { CONNECTS = 300 }; /* 35-65 % each: 5.2 standard deviations from a fair split */
    char conninfo[1024];
    snprintf(conninfo, sizeof(conninfo),
             "host=%s,%s port=%d,%d dbname=%s user=%s load_balance_hosts=random",
             env("FW_REPL_N1_SOCKDIR"), env("FW_REPL_N2_SOCKDIR"), node_port(1), node_port(2),
             env("FW_REPL_DBNAME"), env("FW_REPL_USER_TRUST"));
    int hits[3] = {0, 0, 0};
    for (int i = 0; i < CONNECTS; i++) {
        fw_conn_t *c = NULL;
        fw_error_t err;
        if (connect_to(conninfo, &c, &err, NULL) != 0)
            fail_msg("connect %d: %s", i, err.message);
        int n = node_of(c);
        assert_true(n == 1 || n == 2);
        hits[n]++;
        fw_conn_close_sync(c);
    }
    printf("load_balance_hosts=random, %d connects: node 1 %d, node 2 %d\n", CONNECTS, hits[1],
           hits[2]);
    assert_in_range(hits[1], CONNECTS * 35 / 100, CONNECTS * 65 / 100);
    assert_in_range(hits[2], CONNECTS * 35 / 100, CONNECTS * 65 / 100);
    /* disable: always the first */
    snprintf(conninfo, sizeof(conninfo), "host=%s,%s port=%d,%d dbname=%s user=%s",
             env("FW_REPL_N1_SOCKDIR"), env("FW_REPL_N2_SOCKDIR"), node_port(1), node_port(2),
             env("FW_REPL_DBNAME"), env("FW_REPL_USER_TRUST"));
    for (int i = 0; i < 20; i++) {
        fw_conn_t *c = NULL;
        fw_error_t err;
        assert_int_equal(connect_to(conninfo, &c, &err, NULL), 0);
        assert_int_equal(node_of(c), 1);
        fw_conn_close_sync(c);
    }
}

/* ---- a password refused by the first host: the second is never contacted ----------------- */

/* Lines of a server log that contain `what`. */
static int log_count(int node, const char *what)
{
    char name[32];
    snprintf(name, sizeof(name), "FW_REPL_N%d_LOG", node);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "grep -c -- '%s' '%s' 2>/dev/null", what, env(name));
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    int n = 0;
    if (fscanf(f, "%d", &n) != 1)
        n = 0;
    pclose(f);
    return n;
}

static void admin_sql(int node, const char *sql)
{
    char name[32];
    snprintf(name, sizeof(name), "FW_REPL_N%d_SOCKDIR", node);
    int rc = sh("psql -X -q -At -v ON_ERROR_STOP=1 -h '%s' -p %d -U '%s' -d '%s' -c \"%s\" "
                ">/dev/null",
                env(name), node_port(node), env("FW_REPL_ADMIN"), env("FW_REPL_DBNAME"), sql);
    if (rc != 0)
        fail_msg("psql on node %d failed (%d): %s", node, rc, sql);
}

static void test_password_refused_stops(void **state)
{
    (void)state;
    /* node 2 logs every connection from now on */
    admin_sql(2, "ALTER SYSTEM SET log_connections = on");
    admin_sql(2, "SELECT pg_reload_conf()");
    struct timespec pause = {0, 300 * 1000 * 1000};
    nanosleep(&pause, NULL);
    /* the check itself can fail: a good connection to node 2 is logged */
    int before = log_count(2, "connection received");
    expect_node("2", "target_session_attrs=any", 2, FW_ROLE_STANDBY);
    nanosleep(&pause, NULL);
    int after_good = log_count(2, "connection received");
    assert_true(after_good > before);
    int refused_before = log_count(1, "password authentication failed for user");
    char conninfo[1024];
    snprintf(conninfo, sizeof(conninfo),
             "host=%s,%s port=%d,%d dbname=%s user=%s password=wrong-password sslmode=disable",
             env("FW_REPL_HOST4"), env("FW_REPL_HOST4"), node_port(1), node_port(2),
             env("FW_REPL_DBNAME"), env("FW_REPL_USER_SCRAM"));
    fw_conn_t *c = NULL;
    fw_error_t err;
    int rc = connect_to(conninfo, &c, &err, NULL);
    assert_int_not_equal(rc, 0);
    assert_string_equal(err.sqlstate, "28P01");
    assert_non_null(strstr(err.message, "password authentication failed"));
    nanosleep(&pause, NULL);
    assert_int_equal(log_count(1, "password authentication failed for user"),
                     refused_before + 1);
    assert_int_equal(log_count(2, "connection received"), after_good); /* never contacted */
    admin_sql(2, "ALTER SYSTEM RESET log_connections");
    admin_sql(2, "SELECT pg_reload_conf()");
}

/* ---- the cancel reaches the standby the query runs on ------------------------------------- */

static fw_stream_t *start_stream(fw_conn_t *c, const char *relation)
{
    fw_query_t *q;
    assert_int_equal(fw_query_new(&q), 0);
    assert_int_equal(fw_query_relation(q, relation), 0);
    fw_stream_t *s = NULL;
    fw_error_t err;
    int rc = fw_stream_start(c, q, NULL, NULL, &s, &err);
    fw_query_free(q);
    if (rc != 0)
        fail_msg("stream on %s: %s", relation, err.message);
    return s;
}

static void test_cancel_on_standby(void **state)
{
    (void)state;
    char conninfo[1024];
    dsn(conninfo, sizeof(conninfo), "012", "target_session_attrs=standby");
    fw_conn_t *c = NULL;
    fw_error_t err;
    assert_int_equal(connect_to(conninfo, &c, &err, NULL), 0);
    assert_int_equal(node_of(c), 1);
    double t0 = now_s();
    fw_stream_t *s = start_stream(c, "v_route_slow"); /* 10 s of rows */
    fw_row_t row;
    assert_int_equal(fw_stream_next(s, &row, 5000), FW_ROW);
    assert_int_equal(fw_stream_cancel(s), 0);
    int rc;
    while ((rc = fw_stream_next(s, &row, 10000)) == FW_ROW)
        ;
    assert_int_equal(rc, FW_ECANCELED);
    double took = now_s() - t0;
    printf("cancel on the standby ended the stream after %.2f s\n", took);
    assert_true(took < 5.0); /* a cancel sent elsewhere would leave the 10 s query running */
    fw_stream_free(s);
    fw_conn_close_sync(c);
}

/* ---- 57P03: a standby that does not accept connections is skipped ------------------------ */

static void test_hot_standby_off(void **state)
{
    (void)state;
    assert_int_equal(sh("'%s' start-node '%s' 2 -c hot_standby=off >/dev/null 2>&1",
                        env("FW_REPL_CTL"), env("FW_REPL_DIR")),
                     0);
    char conninfo[1024];
    dsn(conninfo, sizeof(conninfo), "21", "target_session_attrs=any");
    fw_conn_t *c = NULL;
    fw_error_t err;
    logbuf_t log = {""};
    int rc = connect_to(conninfo, &c, &err, &log);
    if (rc != 0)
        fail_msg("connect: %s", err.message);
    assert_int_equal(node_of(c), 1);
    if (strstr(log.text, "not accepting connections") == NULL)
        fail_msg("node 2's 57P03 is not in the log:\n%s", log.text);
    fw_conn_close_sync(c);
    /* only that node listed: the server's error, not a routing one */
    dsn(conninfo, sizeof(conninfo), "2", "target_session_attrs=any");
    rc = connect_to(conninfo, &c, &err, NULL);
    assert_int_not_equal(rc, 0);
    assert_string_equal(err.sqlstate, "57P03");
    assert_int_equal(sh("'%s' start-node '%s' 2 >/dev/null 2>&1 && '%s' wait-streaming '%s' "
                        ">/dev/null 2>&1",
                        env("FW_REPL_CTL"), env("FW_REPL_DIR"), env("FW_REPL_CTL"),
                        env("FW_REPL_DIR")),
                     0);
}

/* ---- failover --------------------------------------------------------------------------- */

static void test_failover(void **state)
{
    (void)state;
    /* A stream on node 1, a standby, while node 0 goes away and node 1 is promoted. */
    char conninfo[1024];
    dsn(conninfo, sizeof(conninfo), "1", "target_session_attrs=standby");
    fw_conn_t *c = NULL;
    fw_error_t err;
    assert_int_equal(connect_to(conninfo, &c, &err, NULL), 0);
    assert_int_equal(fw_conn_role(c), FW_ROLE_STANDBY);
    fw_stream_t *s = start_stream(c, "v_route_slow");
    fw_row_t row;
    long rows = 0;
    assert_int_equal(fw_stream_next(s, &row, 5000), FW_ROW);
    rows++;
    double t0 = now_s();
    assert_int_equal(sh("'%s' stop-node '%s' 0 fast >/dev/null 2>&1 && '%s' promote '%s' 1 "
                        ">/dev/null 2>&1",
                        env("FW_REPL_CTL"), env("FW_REPL_DIR"), env("FW_REPL_CTL"),
                        env("FW_REPL_DIR")),
                     0);
    printf("failover (stop node 0, promote node 1) took %.2f s\n", now_s() - t0);
    int rc;
    while ((rc = fw_stream_next(s, &row, 20000)) == FW_ROW)
        rows++;
    if (rc != FW_END)
        fail_msg("the stream on the promoted standby ended with %s: %s", fw_err_name(rc),
                 fw_stream_error(s)->message);
    assert_int_equal(rows, 400);
    fw_stream_free(s);
    /* The server reports in_hot_standby=off with the next ReadyForQuery after it noticed the
     * promotion: the end of that query, or of the next one. */
    if (fw_conn_role(c) != FW_ROLE_PRIMARY) {
        s = start_stream(c, "v_fixture");
        while ((rc = fw_stream_next(s, &row, 5000)) == FW_ROW)
            ;
        assert_int_equal(rc, FW_END);
        fw_stream_free(s);
    }
    assert_int_equal(fw_conn_role(c), FW_ROLE_PRIMARY);
    assert_false(fw_conn_read_only(c));
    fw_conn_info_t info;
    assert_int_equal(fw_conn_info(c, &info), 0);
    assert_int_equal(info.role, FW_ROLE_STANDBY); /* what it was at connect */
    fw_conn_close_sync(c);

    /* read-write over the old list finds the new primary: one attempt per host before it */
    dsn(conninfo, sizeof(conninfo), "012", "target_session_attrs=read-write");
    logbuf_t log = {""};
    assert_int_equal(connect_to(conninfo, &c, &err, &log), 0);
    assert_int_equal(node_of(c), 1);
    assert_int_equal(fw_conn_role(c), FW_ROLE_PRIMARY);
    fw_conn_close_sync(c);
    char port0[32];
    snprintf(port0, sizeof(port0), "port %d failed", node_port(0));
    int attempts0 = 0;
    for (const char *p = log.text; (p = strstr(p, port0)) != NULL; p++)
        attempts0++;
    if (attempts0 != 1)
        fail_msg("%d attempts on the stopped node 0, want 1:\n%s", attempts0, log.text);
    char port1[32];
    snprintf(port1, sizeof(port1), "port %d failed", node_port(1));
    assert_null(strstr(log.text, port1));
    /* node 2 follows the new primary and is still a standby */
    expect_node("21", "target_session_attrs=standby", 2, FW_ROLE_STANDBY);
}

static int setup(void **state)
{
    (void)state;
    /* 400 rows, 25 ms apart: a query that runs for 10 s (created on the primary, replayed).
     * Each row is past the server's 8 KiB output buffer, so it leaves the server at once. */
    admin_sql(0, "CREATE OR REPLACE VIEW v_route_slow AS SELECT jsonb_build_object('i', i, "
                 "'pad', repeat('x', 9000)) AS data FROM generate_series(1, 400) AS i, LATERAL "
                 "(SELECT pg_sleep(0.025 + 0 * i)) AS z");
    assert_int_equal(sh("'%s' wait-streaming '%s' >/dev/null 2>&1", env("FW_REPL_CTL"),
                        env("FW_REPL_DIR")),
                     0);
    return fw_runtime_new(&rt) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    fw_runtime_free(rt);
    return 0;
}

int main(void)
{
    if (getenv("FW_REPL_DIR") == NULL) {
        printf("no replicated cluster (run through test/with-repl.sh)\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_targets),
        cmocka_unit_test(test_read_only_primary),
        cmocka_unit_test(test_load_balance),
        cmocka_unit_test(test_password_refused_stops),
        cmocka_unit_test(test_cancel_on_standby),
        cmocka_unit_test(test_hot_standby_off),
        cmocka_unit_test(test_failover), /* last: it changes the cluster for good */
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
