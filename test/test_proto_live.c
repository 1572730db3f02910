/* SPDX-License-Identifier: MIT */
/*
 * The codec against a real PostgreSQL 15: a plain blocking socket (test code only; the library's
 * transport is libuv), startup as the trust user with proto/ encoders, simple and extended
 * queries, a server error, and result sets read in small chunks so messages straddle reads.
 * Connection facts come from test/with-pg.sh (FW_TEST_* variables).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pq_plain.h"
#include "fwire.h"
#include "proto.h"

typedef struct conn_s {
    int fd;
    fw__pq_reader_t reader;
    fw__pq_buf_t out;
    uint8_t *in;      /* receive buffer */
    size_t chunk;     /* bytes asked of each recv(): small values force straddling */
    int32_t pid;
    size_t key_len;      /* BackendKeyData's key */
    uint32_t negotiated; /* the version of a NegotiateProtocolVersion, 0 without one */
    int params_seen;
} conn_t;

static const char *env_or_fail(const char *name)
{
    const char *v = getenv(name);
    if (v == NULL || v[0] == '\0')
        fail_msg("%s is not set: run through test/with-pg.sh (meson test does)", name);
    return v;
}

static int open_unix(void)
{
    int fd = plain_open_unix(env_or_fail("FW_TEST_SOCKDIR"), env_or_fail("FW_TEST_PORT"));
    assert_true(fd >= 0);
    return fd;
}

static int open_tcp4(void)
{
    int fd = plain_open_tcp4(env_or_fail("FW_TEST_HOST4"), env_or_fail("FW_TEST_PORT"));
    assert_true(fd >= 0);
    return fd;
}

static void send_out(conn_t *c)
{
    assert_int_equal(c->out.err, 0);
    assert_int_equal(plain_send_all(c->fd, c->out.data, c->out.len), 0);
    fw__pq_buf_reset(&c->out);
}

/* The next backend message, reading the socket as needed; fails the test on EOF or error. */
static void next_msg(conn_t *c, fw__pq_msg_t *m)
{
    for (;;) {
        int rc = fw__pq_reader_next(&c->reader, m);
        if (rc == 1)
            return;
        if (rc < 0)
            fail_msg("decoder error %s", fw_err_name(rc));
        ssize_t n = plain_recv(c->fd, c->in, c->chunk);
        if (n <= 0)
            fail_msg("server closed the connection (recv %zd)", n);
        assert_int_equal(fw__pq_reader_feed(&c->reader, c->in, (size_t)n), 0);
    }
}

/* Opens a session asking for protocol `version`; PostgreSQL 15 knows 3.0 only. */
static void conn_open_version(conn_t *c, int fd, const char *user, size_t chunk, uint32_t version)
{
    fw__pq_msg_t m;
    memset(c, 0, sizeof(*c));
    c->fd = fd;
    c->chunk = chunk;
    c->in = malloc(chunk);
    assert_non_null(c->in);
    fw__pq_reader_init(&c->reader, NULL, NULL);
    fw__pq_reader_set_startup(&c->reader, true);
    fw__pq_buf_init(&c->out, NULL);

    const char *kv[] = {"user", user, "database", env_or_fail("FW_TEST_DBNAME"),
                        "application_name", "fwire-proto-live", "client_encoding", "UTF8", NULL};
    assert_int_equal(fw__pq_put_startup_version(&c->out, version, kv), 0);
    send_out(c);

    next_msg(c, &m);
    if (m.type == 'v') {
        c->negotiated = m.u.negotiate.version;
        assert_int_equal(m.u.negotiate.nopts, 0);
        next_msg(c, &m);
    }
    if (m.type == 'E') {
        fw__pq_error_fields_t f;
        assert_int_equal(fw__pq_error_fields(&m, &f), 0);
        fail_msg("startup refused: %.*s", (int)f.message.len, (const char *)f.message.ptr);
    }
    assert_int_equal(m.type, 'R');
    assert_int_equal(m.u.auth.code, FW__PQ_AUTH_OK); /* trust */
    for (;;) {
        next_msg(c, &m);
        if (m.type == 'S') {
            c->params_seen++;
        } else if (m.type == 'K') {
            c->pid = m.u.key.pid;
            c->key_len = m.u.key.secret.len;
        } else if (m.type == 'Z') {
            assert_int_equal(m.u.ready.status, 'I');
            break;
        } else if (m.type != 'N') {
            fail_msg("unexpected message '%c' during startup", m.type);
        }
    }
    fw__pq_reader_set_startup(&c->reader, false);
    assert_true(c->pid > 0);
    assert_int_equal(c->key_len, 4); /* a 3.0 session */
    assert_true(c->params_seen >= 10); /* server_version, client_encoding, DateStyle, ... */
}

static void conn_open(conn_t *c, int fd, const char *user, size_t chunk)
{
    conn_open_version(c, fd, user, chunk, FW__PQ_PROTOCOL_3_0);
    assert_int_equal(c->negotiated, 0); /* asked for what it has: nothing to negotiate */
}

static void conn_close(conn_t *c)
{
    assert_int_equal(fw__pq_put_terminate(&c->out), 0);
    send_out(c);
    /* After Terminate the server closes: recv sees EOF, never more messages. */
    uint8_t b[64];
    assert_int_equal(plain_recv(c->fd, b, sizeof(b)), 0);
    close(c->fd);
    fw__pq_reader_free(&c->reader);
    fw__pq_buf_free(&c->out);
    free(c->in);
}

typedef struct result_s {
    long rows;
    long nulls;
    size_t bytes;
    uint64_t sum; /* FNV-1a over every value, to compare two ways of reading */
    char tag[64];
    char sqlstate[6];
    uint8_t ready;
    uint32_t type_oid;
    int nfields;
} result_t;

static void fnv(uint64_t *h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        *h ^= p[i];
        *h *= 1099511628211ull;
    }
}

/* Reads one result up to ReadyForQuery, checking each message as it comes. */
static void read_result(conn_t *c, result_t *r, const char *first_row)
{
    fw__pq_msg_t m;
    memset(r, 0, sizeof(*r));
    r->sum = 14695981039346656037ull;
    for (;;) {
        next_msg(c, &m);
        switch (m.type) {
        case '1': case '2': case 'N': case 'S':
            break;
        case 'T': {
            fw__pq_iter_t it;
            fw__pq_field_t f;
            fw__pq_rowdesc_iter_init(&it, &m);
            while (fw__pq_rowdesc_next(&it, &f) == 1) {
                if (r->nfields++ == 0)
                    r->type_oid = f.type_oid;
            }
            break;
        }
        case 'D': {
            fw__pq_col_t col;
            assert_int_equal(fw__pq_datarow_one(&m, &col), 0);
            if (col.is_null) {
                r->nulls++;
            } else {
                if (r->rows - r->nulls == 0 && first_row != NULL) {
                    assert_int_equal(col.value.len, strlen(first_row));
                    assert_memory_equal(col.value.ptr, first_row, col.value.len);
                }
                r->bytes += col.value.len;
                fnv(&r->sum, col.value.ptr, col.value.len);
            }
            r->rows++;
            break;
        }
        case 'C':
            snprintf(r->tag, sizeof(r->tag), "%.*s", (int)m.u.complete.tag.len,
                     (const char *)m.u.complete.tag.ptr);
            break;
        case 'E': {
            fw__pq_error_fields_t f;
            assert_int_equal(fw__pq_error_fields(&m, &f), 0);
            assert_int_equal(f.sqlstate.len, 5);
            memcpy(r->sqlstate, f.sqlstate.ptr, 5);
            break;
        }
        case 'Z':
            r->ready = m.u.ready.status;
            return;
        default:
            fail_msg("unexpected message '%c' in a result", m.type);
        }
    }
}

static void simple_query(conn_t *c, const char *sql, result_t *r, const char *first_row)
{
    assert_int_equal(fw__pq_put_query(&c->out, sql), 0);
    send_out(c);
    read_result(c, r, first_row);
}

static void test_startup_and_simple_query_over_the_unix_socket(void **state)
{
    (void)state;
    conn_t c;
    result_t r;
    conn_open(&c, open_unix(), env_or_fail("FW_TEST_USER_TRUST"), 65536);
    simple_query(&c, "SELECT jsonb_build_object('i', g) FROM generate_series(1, 1000) g", &r,
                 "{\"i\": 1}");
    assert_int_equal(r.rows, 1000);
    assert_int_equal(r.nfields, 1);
    assert_int_equal(r.type_oid, FW__PQ_OID_JSONB);
    assert_string_equal(r.tag, "SELECT 1000");
    assert_int_equal(r.ready, 'I');
    conn_close(&c);
}

static void test_startup_over_loopback_tcp(void **state)
{
    (void)state;
    conn_t c;
    result_t r;
    conn_open(&c, open_tcp4(), env_or_fail("FW_TEST_USER_TRUST"), 65536);
    simple_query(&c, "SELECT to_json('tcp'::text)", &r, "\"tcp\"");
    assert_int_equal(r.rows, 1);
    assert_int_equal(r.type_oid, 114); /* json */
    conn_close(&c);
}

/*
 * What PostgreSQL 15 really answers a StartupMessage for protocol 3.2, byte for byte as fwire's
 * startup machine relies on: NegotiateProtocolVersion first, carrying the whole version number
 * 196608 (3 << 16 | 0, not a bare minor 0) and no options, then the session goes on at 3.0
 * with a 4-byte cancel key.
 */
static void test_a_3_2_startup_is_answered_with_negotiate_protocol_version_3_0(void **state)
{
    (void)state;
    conn_t c;
    result_t r;
    conn_open_version(&c, open_unix(), env_or_fail("FW_TEST_USER_TRUST"), 65536,
                      FW__PQ_PROTOCOL_3_2);
    assert_int_equal(c.negotiated, 196608);
    simple_query(&c, "SELECT to_json(32)", &r, "32");
    assert_int_equal(r.rows, 1);
    conn_close(&c);
}

static void test_extended_protocol_with_a_bind_parameter(void **state)
{
    (void)state;
    conn_t c;
    result_t r;
    conn_open(&c, open_unix(), env_or_fail("FW_TEST_USER_TRUST"), 65536);
    const uint32_t oids[] = {23}; /* int4 */
    const fw__pq_param_t p = {(const uint8_t *)"997", 3, false};
    assert_int_equal(fw__pq_put_parse(&c.out, "",
                                      "SELECT jsonb_build_object('i', g) FROM "
                                      "generate_series(1, 1000) g WHERE g > $1",
                                      1, oids), 0);
    assert_int_equal(fw__pq_put_bind(&c.out, "", "", 0, NULL, 1, &p, 0, NULL), 0);
    assert_int_equal(fw__pq_put_describe(&c.out, 'P', ""), 0);
    assert_int_equal(fw__pq_put_execute(&c.out, "", 0), 0);
    assert_int_equal(fw__pq_put_sync(&c.out), 0);
    send_out(&c);
    read_result(&c, &r, "{\"i\": 998}");
    assert_int_equal(r.rows, 3);
    assert_string_equal(r.tag, "SELECT 3");
    assert_int_equal(r.ready, 'I');

    /* A NULL parameter travels as length -1: no row matches g > NULL. */
    const fw__pq_param_t null_param = {NULL, 0, true};
    assert_int_equal(fw__pq_put_parse(&c.out, "", "SELECT to_jsonb($1::int)", 0, NULL), 0);
    assert_int_equal(fw__pq_put_bind(&c.out, "", "", 0, NULL, 1, &null_param, 0, NULL), 0);
    assert_int_equal(fw__pq_put_execute(&c.out, "", 0), 0);
    assert_int_equal(fw__pq_put_sync(&c.out), 0);
    send_out(&c);
    read_result(&c, &r, NULL);
    assert_int_equal(r.rows, 1);
    assert_int_equal(r.nulls, 1);
    conn_close(&c);
}

static void test_server_error_carries_sqlstate_and_the_connection_stays_usable(void **state)
{
    (void)state;
    conn_t c;
    result_t r;
    conn_open(&c, open_unix(), env_or_fail("FW_TEST_USER_TRUST"), 65536);
    simple_query(&c, "SELECT data FROM v_does_not_exist", &r, NULL);
    assert_string_equal(r.sqlstate, "42P01");
    assert_int_equal(r.ready, 'I');
    /* rows before a mid-stream error arrive first, then the error */
    simple_query(&c, "SELECT to_jsonb(1 / (3 - g)) FROM generate_series(0, 5) g", &r, "0");
    assert_int_equal(r.rows, 3);
    assert_string_equal(r.sqlstate, "22012");
    assert_int_equal(r.ready, 'I');
    simple_query(&c, "SELECT to_jsonb(1)", &r, "1");
    assert_int_equal(r.rows, 1);
    conn_close(&c);
}

/* The same view read with a 64 KiB and a 97-byte receive size: messages straddle reads in the
 * second, and both must see the same bytes. */
static void test_bench_view_read_in_small_chunks_matches_large_chunks(void **state)
{
    (void)state;
    conn_t c;
    result_t big, small;
    conn_open(&c, open_unix(), env_or_fail("FW_TEST_USER_TRUST"), 65536);
    simple_query(&c, "SELECT data FROM v_bench_1k", &big, NULL);
    conn_close(&c);
    conn_open(&c, open_unix(), env_or_fail("FW_TEST_USER_TRUST"), 97);
    simple_query(&c, "SELECT data FROM v_bench_1k", &small, NULL);
    conn_close(&c);
    assert_int_equal(big.rows, 1000);
    assert_int_equal(small.rows, 1000);
    assert_int_equal(big.bytes, small.bytes);
    assert_true(big.sum == small.sum);
    assert_true(big.bytes / 1000 >= 200 && big.bytes / 1000 <= 350); /* ~250-300 bytes a row */
}

static void test_fixture_views_null_rows_json_type_and_a_large_row(void **state)
{
    (void)state;
    conn_t c;
    result_t r;
    conn_open(&c, open_unix(), env_or_fail("FW_TEST_USER_TRUST"), 4096);
    simple_query(&c, "SELECT data FROM v_fixture_nulls", &r, NULL);
    assert_int_equal(r.rows, 6);
    assert_int_equal(r.nulls, 2);
    simple_query(&c, "SELECT data FROM v_fixture_json", &r, NULL);
    assert_int_equal(r.type_oid, 114);
    assert_true(r.rows >= 4);
    simple_query(&c, "SELECT data FROM v_fixture_big_row", &r, NULL);
    assert_int_equal(r.rows, 1);
    assert_true(r.bytes >= 2 * 1000 * 1000);
    simple_query(&c, "SELECT data FROM v_fixture_empty", &r, NULL);
    assert_int_equal(r.rows, 0);
    assert_string_equal(r.tag, "SELECT 0");
    conn_close(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_startup_and_simple_query_over_the_unix_socket),
        cmocka_unit_test(test_startup_over_loopback_tcp),
        cmocka_unit_test(test_a_3_2_startup_is_answered_with_negotiate_protocol_version_3_0),
        cmocka_unit_test(test_extended_protocol_with_a_bind_parameter),
        cmocka_unit_test(test_server_error_carries_sqlstate_and_the_connection_stays_usable),
        cmocka_unit_test(test_bench_view_read_in_small_chunks_matches_large_chunks),
        cmocka_unit_test(test_fixture_views_null_rows_json_type_and_a_large_row),
    };
    return cmocka_run_group_tests_name("proto_live", tests, NULL, NULL);
}
