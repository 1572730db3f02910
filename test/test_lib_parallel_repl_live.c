/* SPDX-License-Identifier: MIT */
/*
 * Parallel streams (fw_query_parallel, issue 16) on a hot standby of the replicated cluster
 * (test/pgrepl.sh through with-repl.sh: node 0 the primary, nodes 1 and 2 streaming standbys),
 * threaded mode. PostgreSQL exports snapshots on a standby too (10 and later); the parts of a
 * parallel stream on node 1 import the snapshot the first part exported there.
 *
 * The table is made on the primary and read on the standby once replayed. The oracle is psql
 * on the standby importing the stream's snapshot (fw_stream_snapshot) while the stream is open:
 * count, bytes and the sum of each row's MD5 prefix. Meanwhile the primary deletes and inserts
 * rows; the standby replays them, and the parallel stream must still give the snapshot's rows
 * (checked: the standby's answer after the stream differs from the snapshot's).
 */
#define OPENSSL_SUPPRESS_DEPRECATED

#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/md5.h>

#include "fwire.h"

#include "repl_env.h"

#define ROWS 30000
#define FW_STR_(x) #x
#define FW_STR(x)  FW_STR_(x)

/* psql as the superuser on node n over its socket: the output (-At) without the last newline. */
static void node_sql(int n, const char *sql, char *out, size_t cap)
{
    char path[] = "/tmp/fw-par-repl-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t len = strlen(sql);
    assert_int_equal(write(fd, sql, len), (ssize_t)len);
    close(fd);
    char sock[32], cmd[2048];
    snprintf(sock, sizeof(sock), "FW_REPL_N%d_SOCKDIR", n);
    snprintf(cmd, sizeof(cmd),
             "'%s/psql' -X -At -q -v ON_ERROR_STOP=1 -h '%s' -p %d -U '%s' -d '%s' -f '%s' "
             "2>&1",
             env("FW_REPL_BINDIR"), env(sock), node_port(n), env("FW_REPL_ADMIN"),
             env("FW_REPL_DBNAME"), path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t got = fread(out, 1, cap - 1, p);
    out[got] = '\0';
    int rc = pclose(p);
    unlink(path);
    while (got > 0 && out[got - 1] == '\n')
        out[--got] = '\0';
    if (rc != 0)
        fail_msg("psql on node %d failed: %s\n%s", n, sql, out);
}

typedef struct digest_s {
    uint64_t rows, bytes, sum;
} digest_t;

/* count, bytes, sum of the MD5 prefixes of `select`'s data, at `snapshot` (NULL: now). */
static digest_t server_digest(int n, const char *snapshot, const char *select)
{
    char q[2048], out[1024], snap[160] = "";
    if (snapshot != NULL)
        snprintf(snap, sizeof(snap),
                 "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;\n"
                 "SET TRANSACTION SNAPSHOT '%s';\n",
                 snapshot);
    snprintf(q, sizeof(q),
             "%sSELECT count(*) || ' ' || coalesce(sum(octet_length(data::text)), 0) || ' ' ||\n"
             "  coalesce(sum(('x' || substr(md5(data::text), 1, 15))::bit(60)::bigint)"
             " %% 18446744073709551616, 0)\n"
             "FROM (%s) AS s;\n%s",
             snap, select, snapshot != NULL ? "COMMIT;\n" : "");
    node_sql(n, q, out, sizeof(out));
    digest_t d;
    if (sscanf(out, "%" SCNu64 " %" SCNu64 " %" SCNu64, &d.rows, &d.bytes, &d.sum) != 3)
        fail_msg("unexpected psql output: %s", out);
    return d;
}

/* The primary's table, and its keyed view; then wait until node 1 has replayed them. */
static int setup(void **state)
{
    (void)state;
    char out[256];
    node_sql(0,
             "CREATE TABLE par_repl AS SELECT i AS id, jsonb_build_object('id', i, 'pad', "
             "repeat(md5(i::text), 3)) AS data FROM generate_series(1, " FW_STR(ROWS) ") AS i;\n"
             "CREATE INDEX ON par_repl (id);\nANALYZE par_repl;\n"
             "CREATE VIEW v_par_repl AS SELECT id, data FROM par_repl;\n",
             out, sizeof(out));
    for (int i = 0; i < 300; i++) {
        node_sql(1, "SELECT count(*) FROM pg_class WHERE relname = 'v_par_repl'", out,
                 sizeof(out));
        if (strcmp(out, "1") == 0)
            return 0;
        usleep(100000);
    }
    fail_msg("node 1 did not replay the table in 30 s");
    return -1;
}

/* Drains s into a digest: FW_END expected. */
static digest_t drain_digest(fw_stream_t *s, const char *what)
{
    digest_t got = {0, 0, 0};
    fw_row_t row;
    int rc;
    while ((rc = fw_stream_next(s, &row, 60000)) == FW_ROW) {
        unsigned char d[16];
        assert_false(row.is_null);
        MD5((const unsigned char *)row.json, row.len, d);
        uint64_t v = 0;
        for (int i = 0; i < 8; i++)
            v = v << 8 | d[i];
        got.rows++;
        got.bytes += row.len;
        got.sum += v >> 4;
    }
    if (rc != FW_END)
        fail_msg("%s: %s: %s", what, fw_err_name(rc), fw_stream_error(s)->message);
    return got;
}

static void test_a_parallel_stream_on_a_standby_reads_its_snapshot(void **state)
{
    (void)state;
    char ci[1024], out[256];
    make_conninfo(ci, sizeof(ci), node_port(1), "application_name=fw_par_repl");
    fw_conn_opts_t o;
    fw_conn_opts_init(&o);
    o.conninfo = ci;
    o.use_environment = false;
    fw_runtime_t *rt;
    assert_int_equal(fw_runtime_new(&rt), 0);
    fw_conn_t *c = NULL;
    fw_error_t err;
    if (fw_conn_connect_sync(rt, &o, &c, &err) != 0)
        fail_msg("connect to node 1: %s", err.message);
    assert_int_equal(fw_conn_role(c), FW_ROLE_STANDBY);
    static const struct {
        const char *relation, *key, *select;
    } cases[] = {
        {"par_repl", NULL, "SELECT data FROM par_repl"},
        {"v_par_repl", "id", "SELECT data FROM v_par_repl"},
    };
    int round = 0;
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        for (int n = 1; n <= 3; n++, round++) {
            fw_query_t *q;
            assert_int_equal(fw_query_new(&q), 0);
            assert_int_equal(fw_query_relation(q, cases[k].relation), 0);
            assert_int_equal(fw_query_parallel(q, n), 0);
            if (cases[k].key != NULL)
                assert_int_equal(fw_query_partition_key(q, cases[k].key), 0);
            fw_stream_t *s = NULL;
            if (fw_stream_start(c, q, NULL, NULL, &s, &err) != 0)
                fail_msg("%s, %d parts on the standby: %s", cases[k].relation, n, err.message);
            fw_query_free(q);
            assert_int_equal(fw_stream_parts(s), n);
            char snap[64];
            snprintf(snap, sizeof(snap), "%s", fw_stream_snapshot(s));
            digest_t at = server_digest(1, snap, cases[k].select);
            /* the primary writes; the standby replays it while the parts read */
            char w[256];
            snprintf(w, sizeof(w),
                     "DELETE FROM par_repl WHERE id %% 7 = %d;\n"
                     "INSERT INTO par_repl SELECT %d + i, jsonb_build_object('id', %d + i) "
                     "FROM generate_series(1, 500) AS i;\n",
                     round % 7, 1000000 * (round + 1), 1000000 * (round + 1));
            node_sql(0, w, out, sizeof(out));
            char what[96];
            snprintf(what, sizeof(what), "%s, %d parts", cases[k].relation, n);
            digest_t got = drain_digest(s, what);
            fw_stream_free(s);
            print_message("standby, %s %s N=%d: %" PRIu64 " rows, at snapshot %s %" PRIu64 "\n",
                          cases[k].relation, cases[k].key != NULL ? "by key" : "by ctid", n,
                          got.rows, snap, at.rows);
            assert_int_equal(got.rows, at.rows);
            assert_int_equal(got.bytes, at.bytes);
            assert_int_equal(got.sum, at.sum);
            /* the writes reached the standby: its answer now is not the snapshot's */
            digest_t now = at;
            for (int i = 0; i < 300 && now.sum == at.sum; i++) {
                now = server_digest(1, NULL, cases[k].select);
                if (now.sum == at.sum)
                    usleep(100000);
            }
            assert_true(now.sum != at.sum);
        }
    }
    fw_conn_close_sync(c);
    fw_runtime_free(rt);
}

/* A pool over the primary and both standbys, with idle connections on every node: a parallel
 * stream's parts are taken from the node of the connection it starts on (they import that
 * server's snapshot; a part on the other standby would fail with "invalid snapshot
 * identifier"), on a standby and on the primary. */
static void test_a_parallel_stream_from_a_routing_pool_keeps_its_parts_on_one_server(void **state)
{
    (void)state;
    char ci[1024];
    make_conninfo(ci, sizeof(ci), 0, "application_name=fw_par_repl_pool");
    fw_runtime_t *rt;
    assert_int_equal(fw_runtime_new(&rt), 0);
    fw_pool_opts_t po;
    fw_pool_opts_init(&po);
    po.conninfo = ci;
    po.use_environment = false;
    po.max_size = 12;
    fw_pool_t *pool = NULL;
    fw_error_t err;
    if (fw_pool_new_rt(&pool, rt, &po, &err) != 0)
        fail_msg("pool: %s", err.message);
    /* Idle connections on every node: four reads (standbys, least used first) and a write. */
    fw_conn_t *warm[5];
    for (int i = 0; i < 5; i++)
        if (fw_pool_acquire_wait(pool, i < 4 ? FW_POOL_READ : FW_POOL_WRITE, 0, &warm[i], &err) !=
            0)
            fail_msg("warm-up acquire %d: %s", i, err.message);
    int on[3] = {0, 0, 0};
    for (int i = 0; i < 5; i++)
        on[node_of(warm[i])]++;
    assert_int_equal(on[0], 1);
    assert_int_equal(on[1], 2);
    assert_int_equal(on[2], 2);
    for (int i = 0; i < 5; i++)
        fw_pool_release(pool, warm[i]);
    int seen[3] = {0, 0, 0};
    for (int round = 0; round < 6; round++) {
        fw_conn_t *c = NULL;
        fw_pool_want_t want = round == 5 ? FW_POOL_WRITE : FW_POOL_READ;
        if (fw_pool_acquire_wait(pool, want, 0, &c, &err) != 0)
            fail_msg("acquire: %s", err.message);
        int n = node_of(c);
        seen[n]++;
        fw_query_t *q;
        assert_int_equal(fw_query_new(&q), 0);
        assert_int_equal(fw_query_relation(q, "par_repl"), 0);
        assert_int_equal(fw_query_parallel(q, 3), 0);
        fw_stream_t *s = NULL;
        if (fw_pool_stream_start(pool, c, q, NULL, NULL, &s, &err) != 0)
            fail_msg("round %d, node %d: %s", round, n, err.message);
        fw_query_free(q);
        char snap[64], what[64];
        snprintf(snap, sizeof(snap), "%s", fw_stream_snapshot(s));
        digest_t at = server_digest(n, snap, "SELECT data FROM par_repl");
        snprintf(what, sizeof(what), "round %d on node %d", round, n);
        digest_t got = drain_digest(s, what);
        fw_stream_free(s);
        print_message("pool, %s: %" PRIu64 " rows, at snapshot %s %" PRIu64 "\n", what,
                      got.rows, snap, at.rows);
        assert_int_equal(got.rows, at.rows);
        assert_int_equal(got.bytes, at.bytes);
        assert_int_equal(got.sum, at.sum);
    }
    assert_int_equal(seen[0], 1); /* the write round on the primary */
    assert_int_equal(seen[1] + seen[2], 5);
    fw_pool_stats_t st;
    assert_int_equal(fw_pool_stats(pool, &st), 0);
    assert_int_equal(st.closed_error, 0);
    assert_int_equal(st.acquire_refused, 0);
    assert_int_equal(fw_pool_close_sync(pool), 0);
    fw_runtime_free(rt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_parallel_stream_on_a_standby_reads_its_snapshot),
        cmocka_unit_test(test_a_parallel_stream_from_a_routing_pool_keeps_its_parts_on_one_server),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
