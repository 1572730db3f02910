/* SPDX-License-Identifier: MIT */
/* Framing and typed parsing of backend messages: every type, every limit, every hostile shape
 * named in RELIABILITY.md. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "guard.h"
#include "pq_samples.h"
#include "proto.h"

/*
 * Frames exactly one message from t and parses it; returns the parse result. The message is
 * copied to end flush against a PROT_NONE page, so any read past it faults. The guard mapping
 * is released by the next call (the slices in *m stay readable until then).
 */
static guard_buf_t last_guard;

static int frame_and_parse(const tb_t *t, fw__pq_msg_t *m)
{
    fw__pq_limits_t lim;
    fw__pq_frame_t f;
    fw__pq_limits_init(&lim);
    if (last_guard.map != NULL)
        guard_release(&last_guard);
    assert_int_equal(guard_put(&last_guard, t->b, t->len), 0);
    long n = fw__pq_frame(last_guard.data, t->len, &lim, &f, NULL);
    if (n < 0)
        return (int)n;
    assert_int_equal(n, (long)t->len);
    return fw__pq_parse(f.type, f.body, f.len, m);
}

static int slice_eq(fw_slice_t s, const char *str)
{
    return s.len == strlen(str) && memcmp(s.ptr, str, s.len) == 0;
}

static void test_every_valid_sample_parses_and_the_stream_tiles_exactly(void **state)
{
    (void)state;
    tb_t t = {.len = 0};
    int count = tb_valid_stream(&t);
    fw__pq_limits_t lim;
    fw__pq_limits_init(&lim);
    size_t off = 0;
    int seen = 0;
    while (off < t.len) {
        fw__pq_frame_t f;
        fw__pq_msg_t m;
        long n = fw__pq_frame(t.b + off, t.len - off, &lim, &f, NULL);
        assert_true(n > 0);
        assert_int_equal(fw__pq_parse(f.type, f.body, f.len, &m), 0);
        assert_int_equal(m.type, t.b[off]);
        off += (size_t)n;
        seen++;
    }
    assert_int_equal(seen, count);
}

static void test_authentication_sasl_lists_mechanisms_in_order(void **state)
{
    (void)state;
    tb_t t = {.len = 0};
    fw__pq_msg_t m;
    fw__pq_iter_t it;
    fw_slice_t s;
    tb_begin(&t, 'R');
    tb_u32(&t, 10);
    tb_str(&t, "SCRAM-SHA-256-PLUS");
    tb_str(&t, "SCRAM-SHA-256");
    tb_u8(&t, 0);
    tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), 0);
    assert_int_equal(m.u.auth.code, FW__PQ_AUTH_SASL);
    fw__pq_sasl_iter_init(&it, &m);
    assert_int_equal(fw__pq_strlist_next(&it, &s), 1);
    assert_true(slice_eq(s, "SCRAM-SHA-256-PLUS"));
    assert_int_equal(fw__pq_strlist_next(&it, &s), 1);
    assert_true(slice_eq(s, "SCRAM-SHA-256"));
    assert_int_equal(fw__pq_strlist_next(&it, &s), 0);
    assert_int_equal(fw__pq_strlist_next(&it, &s), 0);
}

static void test_authentication_sasl_without_list_terminator_is_unterminated(void **state)
{
    (void)state;
    tb_t t = {.len = 0};
    fw__pq_msg_t m;
    tb_begin(&t, 'R');
    tb_u32(&t, 10);
    tb_str(&t, "SCRAM-SHA-256");
    tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), FW_EPROTO_UNTERMINATED);
    t.len = 0;
    tb_begin(&t, 'R'); /* name without NUL: the pgx endless-loop shape */
    tb_u32(&t, 10);
    tb_mem(&t, "SCRAM", 5);
    tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), FW_EPROTO_UNTERMINATED);
}

static void test_authentication_codes_check_exact_lengths(void **state)
{
    (void)state;
    tb_t t = {.len = 0};
    fw__pq_msg_t m;
    /* MD5 with a 3-byte salt, then with 5 bytes */
    tb_begin(&t, 'R'); tb_u32(&t, 5); tb_mem(&t, "abc", 3); tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), FW_EPROTO_TRUNCATED);
    t.len = 0;
    tb_begin(&t, 'R'); tb_u32(&t, 5); tb_mem(&t, "abcde", 5); tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), FW_EPROTO_TRAILING);
    /* AuthOk with an odd trailing byte (pgx corpus: 'R' of odd length) */
    t.len = 0;
    tb_begin(&t, 'R'); tb_u32(&t, 0); tb_u8(&t, 1); tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), FW_EPROTO_TRAILING);
    /* a body too short for the code */
    t.len = 0;
    tb_begin(&t, 'R'); tb_u16(&t, 0); tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), FW_EPROTO_TRUNCATED);
    /* unknown code */
    t.len = 0;
    tb_begin(&t, 'R'); tb_u32(&t, 99); tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), FW_EPROTO_BAD_VALUE);
    /* GSS and SSPI are recognised (the connection refuses them as unsupported) */
    t.len = 0;
    tb_begin(&t, 'R'); tb_u32(&t, 7); tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), 0);
    assert_int_equal(m.u.auth.code, FW__PQ_AUTH_GSS);
    /* MD5 salt comes out intact */
    t.len = 0;
    tb_begin(&t, 'R'); tb_u32(&t, 5); tb_mem(&t, "\xff\x00\x01\x80", 4); tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), 0);
    assert_int_equal(m.u.auth.data.len, 4);
    assert_memory_equal(m.u.auth.data.ptr, "\xff\x00\x01\x80", 4);
}

/* BackendKeyData: pid, then a key of 4 bytes (3.0) to 256 (3.2); the version check is the
 * startup machine's, the bounds of both versions are the parser's. */
static void test_backend_key_data_takes_keys_of_4_to_256_bytes(void **state)
{
    (void)state;
    tb_t t = {.len = 0};
    fw__pq_msg_t m;
    uint8_t key[300];
    for (size_t i = 0; i < sizeof(key); i++)
        key[i] = (uint8_t)(0xa5 ^ i);
    tb_begin(&t, 'K'); tb_u32(&t, 0x80000000u); tb_u32(&t, 7); tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), 0);
    assert_int_equal(m.u.key.pid, INT32_MIN);
    assert_int_equal(m.u.key.secret.len, 4);
    assert_memory_equal(m.u.key.secret.ptr, "\0\0\0\7", 4);
    /* 32 (what PostgreSQL 18 sends) and 256 (the most): whole, in place */
    const size_t ok[] = {4, 5, 32, 255, 256};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        t.len = 0;
        tb_begin(&t, 'K'); tb_u32(&t, 42); tb_mem(&t, key, ok[i]); tb_end(&t);
        assert_int_equal(frame_and_parse(&t, &m), 0);
        assert_int_equal(m.u.key.pid, 42);
        assert_int_equal(m.u.key.secret.len, ok[i]);
        assert_memory_equal(m.u.key.secret.ptr, key, ok[i]);
    }
    /* 257 bytes: more than any server may send (and than fwire stores) */
    t.len = 0;
    tb_begin(&t, 'K'); tb_u32(&t, 42); tb_mem(&t, key, 257); tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), FW_EPROTO_TOO_LARGE);
    t.len = 0;
    tb_begin(&t, 'K'); tb_u32(&t, 42); tb_mem(&t, key, 300); tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), FW_EPROTO_TOO_LARGE);
    /* 0 and 3 bytes of key, and no room for the pid */
    t.len = 0;
    tb_begin(&t, 'K'); tb_u32(&t, 42); tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), FW_EPROTO_TRUNCATED);
    t.len = 0;
    tb_begin(&t, 'K'); tb_u32(&t, 42); tb_mem(&t, key, 3); tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), FW_EPROTO_TRUNCATED);
    t.len = 0;
    tb_begin(&t, 'K'); tb_u16(&t, 2); tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), FW_EPROTO_TRUNCATED);
    t.len = 0;
    tb_begin(&t, 'K'); tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), FW_EPROTO_TRUNCATED);
}

static void test_parameter_status_needs_two_terminated_strings(void **state)
{
    (void)state;
    tb_t t = {.len = 0};
    fw__pq_msg_t m;
    tb_begin(&t, 'S'); tb_str(&t, "client_encoding"); tb_str(&t, "UTF8"); tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), 0);
    assert_true(slice_eq(m.u.param.name, "client_encoding"));
    assert_true(slice_eq(m.u.param.value, "UTF8"));
    t.len = 0;
    tb_begin(&t, 'S'); tb_str(&t, "client_encoding"); tb_mem(&t, "UTF8", 4); tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), FW_EPROTO_UNTERMINATED);
    t.len = 0;
    tb_begin(&t, 'S'); tb_str(&t, "a"); tb_str(&t, "b"); tb_u8(&t, 'x'); tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), FW_EPROTO_TRAILING);
}

static void test_ready_for_query_accepts_only_i_t_e(void **state)
{
    (void)state;
    const char ok[] = "ITE";
    for (int i = 0; i < 3; i++) {
        tb_t t = {.len = 0};
        fw__pq_msg_t m;
        tb_begin(&t, 'Z'); tb_u8(&t, (uint8_t)ok[i]); tb_end(&t);
        assert_int_equal(frame_and_parse(&t, &m), 0);
        assert_int_equal(m.u.ready.status, ok[i]);
    }
    tb_t t = {.len = 0};
    fw__pq_msg_t m;
    tb_begin(&t, 'Z'); tb_u8(&t, 'X'); tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), FW_EPROTO_BAD_VALUE);
    t.len = 0;
    tb_begin(&t, 'Z'); tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), FW_EPROTO_TRUNCATED);
    t.len = 0;
    tb_begin(&t, 'Z'); tb_u8(&t, 'I'); tb_u8(&t, 'I'); tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), FW_EPROTO_TRAILING);
}

static void add_field(tb_t *t, const char *name, uint32_t type_oid, uint16_t format)
{
    tb_str(t, name);
    tb_u32(t, 16384);
    tb_u16(t, 1);
    tb_u32(t, type_oid);
    tb_u16(t, 0xffff);
    tb_u32(t, 0xffffffff);
    tb_u16(t, format);
}

static void test_row_description_iterates_every_field(void **state)
{
    (void)state;
    tb_t t = {.len = 0};
    fw__pq_msg_t m;
    fw__pq_iter_t it;
    fw__pq_field_t f;
    tb_begin(&t, 'T');
    tb_u16(&t, 2);
    add_field(&t, "data", FW__PQ_OID_JSONB, 0);
    add_field(&t, "extra %s%n\x1b[31m", 23, 1); /* server names are data, never a format */
    tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), 0);
    assert_int_equal(m.u.rowdesc.nfields, 2);
    fw__pq_rowdesc_iter_init(&it, &m);
    assert_int_equal(fw__pq_rowdesc_next(&it, &f), 1);
    assert_true(slice_eq(f.name, "data"));
    assert_int_equal(f.type_oid, FW__PQ_OID_JSONB);
    assert_int_equal(f.table_oid, 16384);
    assert_int_equal(f.attnum, 1);
    assert_int_equal(f.typlen, -1);
    assert_int_equal(f.typmod, -1);
    assert_int_equal(f.format, 0);
    assert_int_equal(fw__pq_rowdesc_next(&it, &f), 1);
    assert_true(slice_eq(f.name, "extra %s%n\x1b[31m"));
    assert_int_equal(f.format, 1);
    assert_int_equal(fw__pq_rowdesc_next(&it, &f), 0);
}

static void test_row_description_rejects_count_mismatch_and_bad_format(void **state)
{
    (void)state;
    const uint16_t counts[] = {0, 2, 65535};
    for (size_t i = 0; i < 3; i++) {
        tb_t t = {.len = 0};
        fw__pq_msg_t m;
        tb_begin(&t, 'T');
        tb_u16(&t, counts[i]);
        add_field(&t, "data", FW__PQ_OID_JSONB, 0);
        tb_end(&t);
        assert_int_equal(frame_and_parse(&t, &m), counts[i] == 65535 ? FW_EPROTO_BAD_VALUE
                                                                      : FW_EPROTO_FIELD_COUNT);
    }
    tb_t t = {.len = 0};
    fw__pq_msg_t m;
    tb_begin(&t, 'T'); tb_u16(&t, 1); add_field(&t, "data", 25, 2); tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), FW_EPROTO_BAD_VALUE);
    t.len = 0;
    tb_begin(&t, 'T'); tb_u16(&t, 1); tb_mem(&t, "data", 4); tb_end(&t); /* name runs off */
    assert_int_equal(frame_and_parse(&t, &m), FW_EPROTO_UNTERMINATED);
    t.len = 0;
    tb_begin(&t, 'T'); tb_u16(&t, 1); tb_str(&t, "data"); tb_u32(&t, 1); tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), FW_EPROTO_FIELD_COUNT);
}

static void test_data_row_distinguishes_null_from_empty(void **state)
{
    (void)state;
    tb_t t = {.len = 0};
    fw__pq_msg_t m;
    fw__pq_iter_t it;
    fw__pq_col_t c;
    tb_begin(&t, 'D');
    tb_u16(&t, 3);
    tb_u32(&t, 0xffffffff);
    tb_u32(&t, 0);
    tb_u32(&t, 2);
    tb_mem(&t, "{}", 2);
    tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), 0);
    fw__pq_datarow_iter_init(&it, &m);
    assert_int_equal(fw__pq_datarow_next(&it, &c), 1);
    assert_true(c.is_null);
    assert_int_equal(fw__pq_datarow_next(&it, &c), 1);
    assert_false(c.is_null);
    assert_int_equal(c.value.len, 0);
    assert_int_equal(fw__pq_datarow_next(&it, &c), 1);
    assert_true(slice_eq(c.value, "{}"));
    assert_int_equal(fw__pq_datarow_next(&it, &c), 0);
    /* the one-column fast path refuses three columns */
    assert_int_equal(fw__pq_datarow_one(&m, &c), FW_EPROTO_FIELD_COUNT);
}

static void test_data_row_single_column_fast_path(void **state)
{
    (void)state;
    tb_t t = {.len = 0};
    fw__pq_msg_t m;
    fw__pq_col_t c;
    tb_begin(&t, 'D'); tb_u16(&t, 1); tb_u32(&t, 5); tb_mem(&t, "[1,2]", 5); tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), 0);
    assert_int_equal(fw__pq_datarow_one(&m, &c), 0);
    assert_false(c.is_null);
    assert_true(slice_eq(c.value, "[1,2]"));
    t.len = 0;
    tb_begin(&t, 'D'); tb_u16(&t, 1); tb_u32(&t, 0xffffffff); tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), 0);
    assert_int_equal(fw__pq_datarow_one(&m, &c), 0);
    assert_true(c.is_null);
}

/* CVE-2026-32286: negative lengths other than -1 must never pass the bounds check. */
static void test_data_row_rejects_negative_lengths_other_than_minus_one(void **state)
{
    (void)state;
    const uint32_t bad[] = {0xfffffffeu, 0x80000000u, 0x80000001u};
    for (size_t i = 0; i < 3; i++) {
        tb_t t = {.len = 0};
        fw__pq_msg_t m;
        tb_begin(&t, 'D'); tb_u16(&t, 1); tb_u32(&t, bad[i]); tb_mem(&t, "xx", 2); tb_end(&t);
        assert_int_equal(frame_and_parse(&t, &m), FW_EPROTO_NEG_LENGTH);
    }
}

/* RUSTSEC-2026-0178 and the pgx 'D' shape: counts and lengths that disagree with the bytes. */
static void test_data_row_rejects_counts_and_lengths_that_disagree(void **state)
{
    (void)state;
    tb_t t = {.len = 0};
    fw__pq_msg_t m;
    /* declared 2 columns, 1 present */
    tb_begin(&t, 'D'); tb_u16(&t, 2); tb_u32(&t, 1); tb_u8(&t, '1'); tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), FW_EPROTO_FIELD_COUNT);
    /* declared 65535 */
    t.len = 0;
    tb_begin(&t, 'D'); tb_u16(&t, 65535); tb_u32(&t, 1); tb_u8(&t, '1'); tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), FW_EPROTO_BAD_VALUE);
    /* declared 0, one present */
    t.len = 0;
    tb_begin(&t, 'D'); tb_u16(&t, 0); tb_u32(&t, 1); tb_u8(&t, '1'); tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), FW_EPROTO_FIELD_COUNT);
    /* field length runs past the end */
    t.len = 0;
    tb_begin(&t, 'D'); tb_u16(&t, 1); tb_u32(&t, 100); tb_mem(&t, "short", 5); tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), FW_EPROTO_TRUNCATED);
    /* INT32_MAX length with nothing behind it */
    t.len = 0;
    tb_begin(&t, 'D'); tb_u16(&t, 1); tb_u32(&t, 0x7fffffff); tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), FW_EPROTO_TRUNCATED);
    /* bytes after the last column */
    t.len = 0;
    tb_begin(&t, 'D'); tb_u16(&t, 1); tb_u32(&t, 1); tb_mem(&t, "12", 2); tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), FW_EPROTO_FIELD_COUNT);
    /* no count at all */
    t.len = 0;
    tb_begin(&t, 'D'); tb_u8(&t, 0); tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), FW_EPROTO_TRUNCATED);
}

static void test_error_response_fields_by_name(void **state)
{
    (void)state;
    tb_t t = {.len = 0};
    fw__pq_msg_t m;
    fw__pq_error_fields_t f;
    tb_begin(&t, 'E');
    tb_u8(&t, 'S'); tb_str(&t, "ERROR");
    tb_u8(&t, 'V'); tb_str(&t, "ERROR");
    tb_u8(&t, 'C'); tb_str(&t, "57014");
    tb_u8(&t, 'M'); tb_str(&t, "canceling statement due to statement timeout");
    tb_u8(&t, 'D'); tb_str(&t, "detail");
    tb_u8(&t, 'H'); tb_str(&t, "hint");
    tb_u8(&t, 'P'); tb_str(&t, "8");
    tb_u8(&t, 'Q'); tb_str(&t, "unknown field type, ignored");
    tb_u8(&t, 0);
    tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), 0);
    assert_int_equal(fw__pq_error_fields(&m, &f), 0);
    assert_true(slice_eq(f.severity, "ERROR"));
    assert_true(slice_eq(f.severity_nl, "ERROR"));
    assert_true(slice_eq(f.sqlstate, "57014"));
    assert_true(slice_eq(f.message, "canceling statement due to statement timeout"));
    assert_true(slice_eq(f.detail, "detail"));
    assert_true(slice_eq(f.hint, "hint"));
    assert_true(slice_eq(f.position, "8"));
    assert_null(f.where.ptr);
}

static void test_error_and_notice_must_end_with_a_zero_code(void **state)
{
    (void)state;
    const uint8_t types[] = {'E', 'N'};
    for (int i = 0; i < 2; i++) {
        tb_t t = {.len = 0};
        fw__pq_msg_t m;
        tb_begin(&t, types[i]); tb_u8(&t, 'M'); tb_str(&t, "no terminator"); tb_end(&t);
        assert_int_equal(frame_and_parse(&t, &m), FW_EPROTO_UNTERMINATED);
        t.len = 0;
        tb_begin(&t, types[i]); tb_u8(&t, 'M'); tb_mem(&t, "cut", 3); tb_end(&t);
        assert_int_equal(frame_and_parse(&t, &m), FW_EPROTO_UNTERMINATED);
        t.len = 0;
        tb_begin(&t, types[i]); tb_u8(&t, 0); tb_u8(&t, 'x'); tb_end(&t);
        assert_int_equal(frame_and_parse(&t, &m), FW_EPROTO_TRAILING);
        t.len = 0;
        tb_begin(&t, types[i]); tb_end(&t);
        assert_int_equal(frame_and_parse(&t, &m), FW_EPROTO_UNTERMINATED);
    }
}

static void test_notification_response_parses_and_rejects_short_shapes(void **state)
{
    (void)state;
    tb_t t = {.len = 0};
    fw__pq_msg_t m;
    tb_begin(&t, 'A'); tb_u32(&t, 99); tb_str(&t, "ch"); tb_str(&t, "{\"x\":1}"); tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), 0);
    assert_int_equal(m.u.notify.pid, 99);
    assert_true(slice_eq(m.u.notify.channel, "ch"));
    assert_true(slice_eq(m.u.notify.payload, "{\"x\":1}"));
    /* pgx corpus: 'A' of length 5 with body "0" */
    t.len = 0;
    tb_begin(&t, 'A'); tb_u8(&t, '0'); tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), FW_EPROTO_TRUNCATED);
    t.len = 0;
    tb_begin(&t, 'A'); tb_u32(&t, 1); tb_str(&t, "ch"); tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), FW_EPROTO_UNTERMINATED);
}

static void test_command_complete_of_length_4_is_unterminated(void **state)
{
    (void)state;
    tb_t t = {.len = 0};
    fw__pq_msg_t m;
    tb_begin(&t, 'C'); tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), FW_EPROTO_UNTERMINATED);
    t.len = 0;
    tb_begin(&t, 'C'); tb_str(&t, "SELECT 1000000"); tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), 0);
    assert_true(slice_eq(m.u.complete.tag, "SELECT 1000000"));
    t.len = 0;
    tb_begin(&t, 'C'); tb_str(&t, "SELECT 1"); tb_u8(&t, 0); tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), FW_EPROTO_TRAILING);
}

static void test_empty_messages_refuse_any_body(void **state)
{
    (void)state;
    const uint8_t types[] = {'I', '1', '2', '3', 'n', 's'};
    for (size_t i = 0; i < sizeof(types); i++) {
        tb_t t = {.len = 0};
        fw__pq_msg_t m;
        tb_begin(&t, types[i]); tb_end(&t);
        assert_int_equal(frame_and_parse(&t, &m), 0);
        t.len = 0;
        tb_begin(&t, types[i]); tb_u8(&t, 0); tb_end(&t);
        assert_int_equal(frame_and_parse(&t, &m), FW_EPROTO_TRAILING);
    }
}

static void test_parameter_description_count_must_match(void **state)
{
    (void)state;
    tb_t t = {.len = 0};
    fw__pq_msg_t m;
    tb_begin(&t, 't'); tb_u16(&t, 2); tb_u32(&t, 25); tb_u32(&t, 3802); tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), 0);
    assert_int_equal(fw__pq_paramdesc_oid(&m, 0), 25);
    assert_int_equal(fw__pq_paramdesc_oid(&m, 1), 3802);
    assert_int_equal(fw__pq_paramdesc_oid(&m, 2), 0);
    t.len = 0;
    tb_begin(&t, 't'); tb_u16(&t, 3); tb_u32(&t, 25); tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), FW_EPROTO_FIELD_COUNT);
    t.len = 0;
    tb_begin(&t, 't'); tb_u16(&t, 0x8000); tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), FW_EPROTO_BAD_VALUE);
}

static void test_negotiate_protocol_version_checks_count_before_walking(void **state)
{
    (void)state;
    tb_t t = {.len = 0};
    fw__pq_msg_t m;
    fw__pq_iter_t it;
    fw_slice_t s;
    tb_begin(&t, 'v'); tb_u32(&t, 0); tb_u32(&t, 2); tb_str(&t, "_pq_.a"); tb_str(&t, "_pq_.b");
    tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), 0);
    assert_int_equal(m.u.negotiate.nopts, 2);
    fw__pq_negotiate_iter_init(&it, &m);
    assert_int_equal(fw__pq_strlist_next(&it, &s), 1);
    assert_true(slice_eq(s, "_pq_.a"));
    assert_int_equal(fw__pq_strlist_next(&it, &s), 1);
    assert_true(slice_eq(s, "_pq_.b"));
    assert_int_equal(fw__pq_strlist_next(&it, &s), 0);
    /* an untrusted huge count is refused at once (pgx OOM shape) */
    t.len = 0;
    tb_begin(&t, 'v'); tb_u32(&t, 0); tb_u32(&t, 0x7fffffff); tb_str(&t, "x"); tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), FW_EPROTO_FIELD_COUNT);
    t.len = 0;
    tb_begin(&t, 'v'); tb_u32(&t, 0); tb_u32(&t, 0xffffffff); tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), FW_EPROTO_BAD_VALUE);
    t.len = 0;
    tb_begin(&t, 'v'); tb_u32(&t, 0); tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), FW_EPROTO_TRUNCATED);
}

/* The version field holds what the server sends (PostgreSQL: major << 16 | minor), so the
 * caller can compare it with what it asked for; malformed shapes never reach the caller. */
static void test_negotiate_protocol_version_gives_the_version_and_refuses_malformed(void **state)
{
    (void)state;
    tb_t t = {.len = 0};
    fw__pq_msg_t m;
    /* PostgreSQL 15's answer to a StartupMessage for 3.2 */
    tb_begin(&t, 'v'); tb_u32(&t, 196608); tb_u32(&t, 0); tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), 0);
    assert_int_equal(m.u.negotiate.version, FW__PQ_PROTOCOL_3_0);
    assert_int_equal(m.u.negotiate.nopts, 0);
    assert_int_equal(m.u.negotiate.opts.len, 0);
    /* one unrecognised option, listed */
    t.len = 0;
    tb_begin(&t, 'v'); tb_u32(&t, 196610); tb_u32(&t, 1); tb_str(&t, "_pq_.protocol_managed_params");
    tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), 0);
    assert_int_equal(m.u.negotiate.version, FW__PQ_PROTOCOL_3_2);
    assert_int_equal(m.u.negotiate.nopts, 1);
    /* a negative version */
    t.len = 0;
    tb_begin(&t, 'v'); tb_u32(&t, 0x80000000u); tb_u32(&t, 0); tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), FW_EPROTO_BAD_VALUE);
    /* fewer options than counted; an option without its NUL; bytes after the last option */
    t.len = 0;
    tb_begin(&t, 'v'); tb_u32(&t, 196608); tb_u32(&t, 2); tb_str(&t, "_pq_.a"); tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), FW_EPROTO_UNTERMINATED);
    t.len = 0;
    tb_begin(&t, 'v'); tb_u32(&t, 196608); tb_u32(&t, 1); tb_mem(&t, "_pq_.a", 6); tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), FW_EPROTO_UNTERMINATED);
    t.len = 0;
    tb_begin(&t, 'v'); tb_u32(&t, 196608); tb_u32(&t, 0); tb_u8(&t, 0); tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), FW_EPROTO_TRAILING);
    /* no count at all; an empty body */
    t.len = 0;
    tb_begin(&t, 'v'); tb_u32(&t, 196608); tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), FW_EPROTO_TRUNCATED);
    t.len = 0;
    tb_begin(&t, 'v'); tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), FW_EPROTO_TRUNCATED);
}

static void test_function_call_response_null_and_value(void **state)
{
    (void)state;
    tb_t t = {.len = 0};
    fw__pq_msg_t m;
    tb_begin(&t, 'V'); tb_u32(&t, 0xffffffff); tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), 0);
    assert_true(m.u.fncall.is_null);
    t.len = 0;
    tb_begin(&t, 'V'); tb_u32(&t, 0xfffffffe); tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), FW_EPROTO_NEG_LENGTH);
    t.len = 0;
    tb_begin(&t, 'V'); tb_u32(&t, 3); tb_mem(&t, "ab", 2); tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), FW_EPROTO_TRUNCATED);
}

static void test_copy_messages_are_recognised_and_unsupported(void **state)
{
    (void)state;
    const uint8_t resp[] = {'G', 'H', 'W'};
    for (size_t i = 0; i < 3; i++) {
        tb_t t = {.len = 0};
        fw__pq_msg_t m;
        tb_begin(&t, resp[i]); tb_u8(&t, 0); tb_u16(&t, 1); tb_u16(&t, 0); tb_end(&t);
        assert_int_equal(frame_and_parse(&t, &m), FW_EPROTO_UNSUPPORTED);
        assert_int_equal(m.type, resp[i]);
        t.len = 0;
        tb_begin(&t, resp[i]); tb_u8(&t, 0); tb_u16(&t, 2); tb_u16(&t, 0); tb_end(&t);
        assert_int_equal(frame_and_parse(&t, &m), FW_EPROTO_FIELD_COUNT);
    }
    tb_t t = {.len = 0};
    fw__pq_msg_t m;
    tb_begin(&t, 'd'); tb_mem(&t, "row\n", 4); tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), FW_EPROTO_UNSUPPORTED);
    t.len = 0;
    tb_begin(&t, 'c'); tb_end(&t);
    assert_int_equal(frame_and_parse(&t, &m), FW_EPROTO_UNSUPPORTED);
}

static void test_frame_rejects_length_below_4(void **state)
{
    (void)state;
    fw__pq_limits_t lim;
    fw__pq_frame_t f;
    fw__pq_limits_init(&lim);
    for (uint8_t n = 0; n < 4; n++) {
        const uint8_t b[5] = {'Z', 0, 0, 0, n};
        assert_int_equal(fw__pq_frame(b, 5, &lim, &f, NULL), FW_EPROTO_SHORT);
    }
}

static void test_frame_rejects_unknown_type_from_the_first_byte(void **state)
{
    (void)state;
    fw__pq_limits_t lim;
    fw__pq_frame_t f;
    fw__pq_limits_init(&lim);
    for (unsigned c = 0; c < 256; c++) {
        const uint8_t b[1] = {(uint8_t)c};
        long rc = fw__pq_frame(b, 1, &lim, &f, NULL);
        if (fw__pq_is_backend_type((uint8_t)c))
            assert_int_equal(rc, 0);
        else
            assert_int_equal(rc, FW_EPROTO_UNKNOWN_TYPE);
    }
    /* frontend-only types such as 'Q', 'P', 'X' and 'p' are not backend messages */
    assert_false(fw__pq_is_backend_type('Q'));
    assert_false(fw__pq_is_backend_type('X'));
    assert_false(fw__pq_is_backend_type('p'));
}

static void test_frame_reports_bytes_needed(void **state)
{
    (void)state;
    fw__pq_limits_t lim;
    fw__pq_frame_t f;
    size_t need = 0;
    fw__pq_limits_init(&lim);
    const uint8_t b[] = {'D', 0, 0, 0, 10, 0, 1, 0, 0};
    assert_int_equal(fw__pq_frame(b, 0, &lim, &f, &need), 0);
    assert_int_equal(need, 5);
    assert_int_equal(fw__pq_frame(b, 3, &lim, &f, &need), 0);
    assert_int_equal(need, 5);
    assert_int_equal(fw__pq_frame(b, sizeof(b), &lim, &f, &need), 0);
    assert_int_equal(need, 11);
}

/* Writes a header declaring `length` for `type` and frames it with only the header present. */
static long frame_header(uint8_t type, uint32_t length, const fw__pq_limits_t *lim)
{
    const uint8_t b[5] = {type, (uint8_t)(length >> 24), (uint8_t)(length >> 16),
                          (uint8_t)(length >> 8), (uint8_t)length};
    fw__pq_frame_t f;
    return fw__pq_frame(b, 5, lim, &f, NULL);
}

static void test_long_message_cap_four_ways(void **state)
{
    (void)state;
    fw__pq_limits_t lim;
    fw__pq_limits_init(&lim);
    uint32_t def = (uint32_t)FW__PQ_DEFAULT_MAX_MESSAGE;
    /* default: 256 MiB is accepted from the header (waits for the body), one past is not */
    assert_int_equal(frame_header('D', def, &lim), 0);
    assert_int_equal(frame_header('D', def + 1, &lim), FW_EPROTO_TOO_LARGE);
    /* at a configured limit, and one past it */
    lim.max_message = 1000;
    assert_int_equal(frame_header('D', 1000, &lim), 0);
    assert_int_equal(frame_header('T', 1001, &lim), FW_EPROTO_TOO_LARGE);
    assert_int_equal(frame_header('E', 1001, &lim), FW_EPROTO_TOO_LARGE);
    /* disabled: only the protocol's INT32_MAX remains */
    lim.max_message = 0;
    assert_int_equal(frame_header('D', 0x7fffffffu, &lim), 0);
    assert_int_equal(frame_header('D', 0x80000000u, &lim), FW_EPROTO_TOO_LARGE);
    assert_int_equal(frame_header('D', 0xffffffffu, &lim), FW_EPROTO_TOO_LARGE);
}

static void test_short_message_cap_four_ways(void **state)
{
    (void)state;
    fw__pq_limits_t lim;
    fw__pq_limits_init(&lim);
    assert_int_equal(frame_header('C', 30000, &lim), 0);
    assert_int_equal(frame_header('C', 30001, &lim), FW_EPROTO_TOO_LARGE);
    assert_int_equal(frame_header('S', 0x7fffffff, &lim), FW_EPROTO_TOO_LARGE);
    lim.max_short = 100;
    assert_int_equal(frame_header('K', 100, &lim), 0);
    assert_int_equal(frame_header('K', 101, &lim), FW_EPROTO_TOO_LARGE);
    lim.max_short = 0x7fffffff; /* "disabled": the protocol ceiling */
    assert_int_equal(frame_header('C', 0x7fffffff, &lim), 0);
    assert_int_equal(frame_header('C', 0x80000000u, &lim), FW_EPROTO_TOO_LARGE);
}

static void test_startup_caps_apply_to_auth_negotiate_and_errors(void **state)
{
    (void)state;
    fw__pq_limits_t lim;
    fw__pq_limits_init(&lim);
    assert_int_equal(frame_header('R', 2000, &lim), 0);
    assert_int_equal(frame_header('R', 2001, &lim), FW_EPROTO_TOO_LARGE);
    assert_int_equal(frame_header('v', 2000, &lim), 0);
    assert_int_equal(frame_header('v', 2001, &lim), FW_EPROTO_TOO_LARGE);
    assert_int_equal(frame_header('E', 30001, &lim), 0); /* after startup: a long type */
    lim.startup = true;
    assert_int_equal(frame_header('E', 30000, &lim), 0);
    assert_int_equal(frame_header('E', 30001, &lim), FW_EPROTO_TOO_LARGE);
    assert_int_equal(frame_header('N', 30001, &lim), FW_EPROTO_TOO_LARGE);
}

static void test_parse_of_unknown_type_and_null_body(void **state)
{
    (void)state;
    fw__pq_msg_t m;
    assert_int_equal(fw__pq_parse('Q', NULL, 0, &m), FW_EPROTO_UNKNOWN_TYPE);
    assert_int_equal(fw__pq_parse('1', NULL, 0, &m), 0);
    assert_int_equal(fw__pq_parse('1', NULL, 3, &m), FW_EINVAL);
    assert_int_equal(fw__pq_parse('C', NULL, 0, &m), FW_EPROTO_UNTERMINATED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_valid_sample_parses_and_the_stream_tiles_exactly),
        cmocka_unit_test(test_authentication_sasl_lists_mechanisms_in_order),
        cmocka_unit_test(test_authentication_sasl_without_list_terminator_is_unterminated),
        cmocka_unit_test(test_authentication_codes_check_exact_lengths),
        cmocka_unit_test(test_backend_key_data_takes_keys_of_4_to_256_bytes),
        cmocka_unit_test(test_parameter_status_needs_two_terminated_strings),
        cmocka_unit_test(test_ready_for_query_accepts_only_i_t_e),
        cmocka_unit_test(test_row_description_iterates_every_field),
        cmocka_unit_test(test_row_description_rejects_count_mismatch_and_bad_format),
        cmocka_unit_test(test_data_row_distinguishes_null_from_empty),
        cmocka_unit_test(test_data_row_single_column_fast_path),
        cmocka_unit_test(test_data_row_rejects_negative_lengths_other_than_minus_one),
        cmocka_unit_test(test_data_row_rejects_counts_and_lengths_that_disagree),
        cmocka_unit_test(test_error_response_fields_by_name),
        cmocka_unit_test(test_error_and_notice_must_end_with_a_zero_code),
        cmocka_unit_test(test_notification_response_parses_and_rejects_short_shapes),
        cmocka_unit_test(test_command_complete_of_length_4_is_unterminated),
        cmocka_unit_test(test_empty_messages_refuse_any_body),
        cmocka_unit_test(test_parameter_description_count_must_match),
        cmocka_unit_test(test_negotiate_protocol_version_checks_count_before_walking),
        cmocka_unit_test(test_negotiate_protocol_version_gives_the_version_and_refuses_malformed),
        cmocka_unit_test(test_function_call_response_null_and_value),
        cmocka_unit_test(test_copy_messages_are_recognised_and_unsupported),
        cmocka_unit_test(test_frame_rejects_length_below_4),
        cmocka_unit_test(test_frame_rejects_unknown_type_from_the_first_byte),
        cmocka_unit_test(test_frame_reports_bytes_needed),
        cmocka_unit_test(test_long_message_cap_four_ways),
        cmocka_unit_test(test_short_message_cap_four_ways),
        cmocka_unit_test(test_startup_caps_apply_to_auth_negotiate_and_errors),
        cmocka_unit_test(test_parse_of_unknown_type_and_null_body),
    };
    return cmocka_run_group_tests_name("proto_decode", tests, NULL, NULL);
}
