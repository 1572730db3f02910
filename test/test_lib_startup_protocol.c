/* SPDX-License-Identifier: MIT */
/*
 * The startup machine and protocol 3.2 (PostgreSQL 18), driven with byte vectors: the version
 * the StartupMessage asks for, NegotiateProtocolVersion in every legal and hostile shape (libpq
 * 18's checks, plus "only as the first message"), min_protocol_version, and BackendKeyData keys
 * of the right and the wrong length for the version in force. test_lib_startup.c covers
 * authentication; test_lib_startup_live.c the same rules against PostgreSQL 15.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "guard.h"
#include "pq_samples.h"
#include "startup.h"

static fw__pq_buf_t out;
static fw__startup_t su;
static fw__startup_opts_t opts;

static int setup(void **state)
{
    (void)state;
    fw__pq_buf_init(&out, NULL);
    memset(&opts, 0, sizeof(opts));
    memset(&su, 0, sizeof(su));
    opts.user = "alice";
    opts.database = "db";
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fw__startup_free(&su);
    fw__pq_buf_free(&out);
    return 0;
}

/* Starts an exchange with opts; checks the version the StartupMessage asks for. */
static void begin_asking(uint32_t version)
{
    fw__pq_buf_reset(&out);
    assert_int_equal(fw__startup_init(&su, &opts, &out), 0);
    assert_int_equal(fw__startup_begin(&su), FW__SU_CONTINUE);
    assert_true(out.len > 8);
    const uint8_t v[4] = {(uint8_t)(version >> 24), (uint8_t)(version >> 16),
                          (uint8_t)(version >> 8), (uint8_t)version};
    assert_memory_equal(out.data + 4, v, 4);
    fw__pq_buf_reset(&out); /* from here on `out` holds only what answers the server */
}

static fw__su_result_t feed(const tb_t *t)
{
    return fw__startup_feed(&su, t->b, t->len);
}

static void negotiate(tb_t *t, uint32_t version, const char *opt)
{
    tb_begin(t, 'v');
    tb_u32(t, version);
    tb_u32(t, opt != NULL ? 1 : 0);
    if (opt != NULL)
        tb_str(t, opt);
    tb_end(t);
}

static void auth_ok(tb_t *t)
{
    tb_begin(t, 'R');
    tb_u32(t, 0);
    tb_end(t);
}

static void key_data(tb_t *t, int32_t pid, const uint8_t *key, size_t len)
{
    tb_begin(t, 'K');
    tb_u32(t, (uint32_t)pid);
    tb_mem(t, key, len);
    tb_end(t);
}

static void ready(tb_t *t)
{
    tb_begin(t, 'Z');
    tb_u8(t, 'I');
    tb_end(t);
}

static uint8_t g_key[300];

static void fill_key(void)
{
    for (size_t i = 0; i < sizeof(g_key); i++)
        g_key[i] = (uint8_t)(0x5a ^ (i * 13));
}

/* The failure and its message, with the message in the test's output when it differs. */
static void expect_failure(fw__su_result_t r, int code, const char *text)
{
    assert_int_equal(r, FW__SU_FAILED);
    if (su.err != code || strstr(fw__startup_error(&su), text) == NULL)
        fail_msg("got %s \"%s\", expected %s \"...%s...\"", fw_err_name(su.err),
                 fw__startup_error(&su), fw_err_name(code), text);
    assert_int_equal(out.len, 0); /* nothing was answered */
}

/* ---- the version asked for ------------------------------------------------------------ */

static void test_the_startup_message_asks_for_3_0_by_default_and_for_max_protocol(void **state)
{
    (void)state;
    begin_asking(196608);
    fw__startup_free(&su);
    opts.max_protocol = FW__PQ_PROTOCOL_3_2;
    begin_asking(196610);
    assert_int_equal(su.protocol, FW__PQ_PROTOCOL_3_2);
}

static void test_init_refuses_versions_conninfo_would_refuse(void **state)
{
    (void)state;
    opts.min_protocol = FW__PQ_PROTOCOL_3_2;
    opts.max_protocol = FW__PQ_PROTOCOL_3_0;
    assert_int_equal(fw__startup_init(&su, &opts, &out), FW_EINVAL);
    opts.min_protocol = 0;
    opts.max_protocol = FW__PQ_VERSION(3, 1);
    assert_int_equal(fw__startup_init(&su, &opts, &out), FW_EINVAL);
    opts.max_protocol = FW__PQ_VERSION(4, 0);
    assert_int_equal(fw__startup_init(&su, &opts, &out), FW_EINVAL);
    opts.max_protocol = 0;
    assert_int_equal(fw__startup_init(&su, &opts, &out), 0);
}

/* ---- a server that speaks 3.2 --------------------------------------------------------- */

static void test_a_3_2_server_hands_a_32_byte_key_that_is_kept_whole(void **state)
{
    (void)state;
    tb_t t = {.len = 0};
    fill_key();
    opts.max_protocol = FW__PQ_PROTOCOL_3_2;
    begin_asking(FW__PQ_PROTOCOL_3_2);
    auth_ok(&t);
    key_data(&t, 4321, g_key, 32);
    ready(&t);
    assert_int_equal(feed(&t), FW__SU_READY);
    assert_false(su.negotiated);
    assert_int_equal(su.protocol, FW__PQ_PROTOCOL_3_2);
    assert_int_equal(su.key.pid, 4321);
    assert_int_equal(su.key.len, 32);
    assert_memory_equal(su.key.secret, g_key, 32);
    /* the key is a secret: gone from the machine once it is freed */
    fw__startup_free(&su);
    static const uint8_t zero[FW__PQ_CANCEL_KEY_MAX];
    assert_memory_equal(su.key.secret, zero, sizeof(zero));
    assert_int_equal(su.key.len, 0);
}

/* Under 3.2 every length from 4 to 256 is valid; 257 never reaches the machine's storage. */
static void test_3_2_keys_of_4_and_256_bytes_are_accepted_and_257_is_refused(void **state)
{
    (void)state;
    fill_key();
    const size_t lens[] = {4, 256};
    for (size_t i = 0; i < 2; i++) {
        tb_t t = {.len = 0};
        opts.max_protocol = FW__PQ_PROTOCOL_3_2;
        begin_asking(FW__PQ_PROTOCOL_3_2);
        auth_ok(&t);
        key_data(&t, 1, g_key, lens[i]);
        ready(&t);
        assert_int_equal(feed(&t), FW__SU_READY);
        assert_int_equal(su.key.len, lens[i]);
        assert_memory_equal(su.key.secret, g_key, lens[i]);
        fw__startup_free(&su);
    }
    tb_t t = {.len = 0};
    begin_asking(FW__PQ_PROTOCOL_3_2);
    auth_ok(&t);
    key_data(&t, 1, g_key, 257);
    expect_failure(feed(&t), FW_EPROTO_TOO_LARGE, "received invalid BackendKeyData message");
    fw__startup_free(&su);
    t.len = 0;
    begin_asking(FW__PQ_PROTOCOL_3_2);
    auth_ok(&t);
    key_data(&t, 1, g_key, 0);
    expect_failure(feed(&t), FW_EPROTO_TRUNCATED, "received invalid BackendKeyData message");
}

/* libpq 18: "cancel key with length %d not allowed in protocol version 3.0 (must be 4 bytes)" */
static void test_a_long_key_under_3_0_is_a_protocol_error(void **state)
{
    (void)state;
    tb_t t = {.len = 0};
    fill_key();
    begin_asking(FW__PQ_PROTOCOL_3_0);
    auth_ok(&t);
    key_data(&t, 1, g_key, 32);
    ready(&t);
    expect_failure(feed(&t), FW_EPROTO_BAD_VALUE,
                   "cancel key with length 32 not allowed in protocol version 3.0 (must be 4 "
                   "bytes)");
    assert_int_equal(su.key.len, 0);
    fw__startup_free(&su);
    /* ... and after a negotiation down to 3.0 the same */
    t.len = 0;
    opts.max_protocol = FW__PQ_PROTOCOL_3_2;
    begin_asking(FW__PQ_PROTOCOL_3_2);
    negotiate(&t, FW__PQ_PROTOCOL_3_0, NULL);
    auth_ok(&t);
    key_data(&t, 1, g_key, 5);
    expect_failure(feed(&t), FW_EPROTO_BAD_VALUE, "not allowed in protocol version 3.0");
}

/* ---- NegotiateProtocolVersion --------------------------------------------------------- */

/* What PostgreSQL 15 (and 9.3 to 17) does when asked for 3.2: 3.0, no options. */
static void test_a_3_0_server_negotiates_down_and_the_session_goes_on_at_3_0(void **state)
{
    (void)state;
    tb_t t = {.len = 0};
    fill_key();
    opts.max_protocol = FW__PQ_PROTOCOL_3_2;
    begin_asking(FW__PQ_PROTOCOL_3_2);
    negotiate(&t, 196608, NULL);
    auth_ok(&t);
    key_data(&t, 77, g_key, 4);
    ready(&t);
    assert_int_equal(feed(&t), FW__SU_READY);
    assert_true(su.negotiated);
    assert_int_equal(su.protocol, FW__PQ_PROTOCOL_3_0);
    assert_int_equal(su.key.len, 4);
    assert_memory_equal(su.key.secret, g_key, 4);
}

/* The same exchange byte by byte and at every split in two: the negotiation is state, not an
 * accident of how the bytes arrived (STYLE 24). */
static void test_negotiation_holds_for_every_split_of_the_reply(void **state)
{
    (void)state;
    tb_t t = {.len = 0};
    fill_key();
    opts.max_protocol = FW__PQ_PROTOCOL_3_2;
    negotiate(&t, 196608, NULL);
    auth_ok(&t);
    key_data(&t, 77, g_key, 4);
    ready(&t);
    for (size_t cut = 0; cut <= t.len; cut++) {
        begin_asking(FW__PQ_PROTOCOL_3_2);
        guard_buf_t a, b;
        assert_int_equal(guard_put(&a, t.b, cut), 0);
        assert_int_equal(guard_put(&b, t.b + cut, t.len - cut), 0);
        fw__su_result_t r1 = fw__startup_feed(&su, a.data, cut);
        fw__su_result_t r2 = fw__startup_feed(&su, b.data, t.len - cut);
        guard_release(&a);
        guard_release(&b);
        assert_int_equal(r1, cut == t.len ? FW__SU_READY : FW__SU_CONTINUE);
        assert_int_equal(r2, FW__SU_READY);
        assert_int_equal(su.protocol, FW__PQ_PROTOCOL_3_0);
        fw__startup_free(&su);
    }
    begin_asking(FW__PQ_PROTOCOL_3_2);
    for (size_t i = 0; i + 1 < t.len; i++)
        assert_int_equal(fw__startup_feed(&su, t.b + i, 1), FW__SU_CONTINUE);
    assert_int_equal(fw__startup_feed(&su, t.b + t.len - 1, 1), FW__SU_READY);
    assert_int_equal(su.protocol, FW__PQ_PROTOCOL_3_0);
}

/* min_protocol_version=3.2 against a 3.0 server: a clear error before anything is answered. */
static void test_a_version_below_min_protocol_ends_the_attempt(void **state)
{
    (void)state;
    tb_t t = {.len = 0};
    opts.min_protocol = FW__PQ_PROTOCOL_3_2;
    opts.max_protocol = FW__PQ_PROTOCOL_3_2;
    opts.password = "secret";
    begin_asking(FW__PQ_PROTOCOL_3_2);
    negotiate(&t, FW__PQ_PROTOCOL_3_0, NULL);
    tb_begin(&t, 'R'); /* a password request in the same read: never answered */
    tb_u32(&t, 3);
    tb_end(&t);
    expect_failure(feed(&t), FW_EPROTOCOL_VERSION,
                   "server only supports protocol version 3.0, but min_protocol_version was set "
                   "to 3.2");
    assert_false(su.password_sent);
}

static void test_a_version_higher_than_asked_is_a_protocol_error(void **state)
{
    (void)state;
    const struct {
        uint32_t asked, offered;
    } rows[] = {
        {FW__PQ_PROTOCOL_3_0, FW__PQ_PROTOCOL_3_2},  {FW__PQ_PROTOCOL_3_0, FW__PQ_VERSION(3, 1)},
        {FW__PQ_PROTOCOL_3_2, FW__PQ_VERSION(3, 3)}, {FW__PQ_PROTOCOL_3_2, FW__PQ_VERSION(4, 0)},
        {FW__PQ_PROTOCOL_3_2, 0x7fffffffu},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        tb_t t = {.len = 0};
        opts.max_protocol = rows[i].asked;
        begin_asking(rows[i].asked);
        negotiate(&t, rows[i].offered, NULL);
        expect_failure(feed(&t), FW_EPROTO_BAD_VALUE,
                       "received invalid protocol negotiation message: server requested "
                       "downgrade to a higher-numbered version");
        fw__startup_free(&su);
    }
}

static void test_versions_below_3_0_and_the_never_released_3_1_are_refused(void **state)
{
    (void)state;
    const uint32_t low[] = {0, 2, FW__PQ_VERSION(2, 0), FW__PQ_VERSION(2, 0xffff)};
    opts.max_protocol = FW__PQ_PROTOCOL_3_2;
    for (size_t i = 0; i < sizeof(low) / sizeof(low[0]); i++) {
        tb_t t = {.len = 0};
        begin_asking(FW__PQ_PROTOCOL_3_2);
        negotiate(&t, low[i], NULL);
        expect_failure(feed(&t), FW_EPROTO_BAD_VALUE, "downgrade to pre-3.0 protocol version");
        fw__startup_free(&su);
    }
    tb_t t = {.len = 0};
    begin_asking(FW__PQ_PROTOCOL_3_2);
    negotiate(&t, FW__PQ_VERSION(3, 1), NULL);
    expect_failure(feed(&t), FW_EPROTO_BAD_VALUE, "non-existent 3.1 protocol version");
}

/* fwire sends no `_pq_.` option, so a server cannot have failed to recognise one. */
static void test_an_option_fwire_never_sent_is_a_protocol_error(void **state)
{
    (void)state;
    tb_t t = {.len = 0};
    opts.max_protocol = FW__PQ_PROTOCOL_3_2;
    begin_asking(FW__PQ_PROTOCOL_3_2);
    negotiate(&t, FW__PQ_PROTOCOL_3_0, "_pq_.compression");
    expect_failure(feed(&t), FW_EPROTO_BAD_VALUE,
                   "server reported an unsupported parameter that was not requested "
                   "(\"_pq_.compression\")");
    fw__startup_free(&su);
    /* same version as asked, with an option: still not ours */
    t.len = 0;
    begin_asking(FW__PQ_PROTOCOL_3_2);
    negotiate(&t, FW__PQ_PROTOCOL_3_2, "_pq_.x");
    expect_failure(feed(&t), FW_EPROTO_BAD_VALUE, "not requested (\"_pq_.x\")");
    fw__startup_free(&su);
    /* no _pq_. prefix, and a name that would forge a log line: escaped */
    t.len = 0;
    begin_asking(FW__PQ_PROTOCOL_3_2);
    negotiate(&t, FW__PQ_PROTOCOL_3_0, "client_encoding\nFATAL: x");
    expect_failure(feed(&t), FW_EPROTO_BAD_VALUE,
                   "without a \"_pq_.\" prefix (\"client_encoding\\x0aFATAL: x\")");
    assert_null(strchr(fw__startup_error(&su), '\n'));
}

static void test_a_negotiation_that_changes_nothing_is_a_protocol_error(void **state)
{
    (void)state;
    const uint32_t versions[] = {FW__PQ_PROTOCOL_3_0, FW__PQ_PROTOCOL_3_2};
    for (size_t i = 0; i < 2; i++) {
        tb_t t = {.len = 0};
        opts.max_protocol = versions[i];
        begin_asking(versions[i]);
        negotiate(&t, versions[i], NULL);
        expect_failure(feed(&t), FW_EPROTO_BAD_VALUE, "server negotiated but asks for no changes");
        fw__startup_free(&su);
    }
}

static void test_a_second_negotiation_is_a_protocol_error(void **state)
{
    (void)state;
    tb_t t = {.len = 0};
    opts.max_protocol = FW__PQ_PROTOCOL_3_2;
    begin_asking(FW__PQ_PROTOCOL_3_2);
    negotiate(&t, FW__PQ_PROTOCOL_3_0, NULL);
    assert_int_equal(feed(&t), FW__SU_CONTINUE);
    t.len = 0;
    negotiate(&t, FW__PQ_PROTOCOL_3_0, NULL);
    expect_failure(feed(&t), FW_EPROTO_UNEXPECTED,
                   "received invalid protocol negotiation message: server sent it twice");
}

/* The server negotiates while it reads the StartupMessage; once authentication has begun (a
 * request, or AuthenticationOk, or a notice) it is too late: a man in the middle trying to
 * change the version after the fact. */
static void test_a_negotiation_after_authentication_began_is_a_protocol_error(void **state)
{
    (void)state;
    tb_t before[4];
    memset(before, 0, sizeof(before));
    tb_begin(&before[0], 'R'); /* a cleartext password request */
    tb_u32(&before[0], 3);
    tb_end(&before[0]);
    auth_ok(&before[1]);
    auth_ok(&before[2]); /* after AuthenticationOk and a ParameterStatus */
    tb_begin(&before[2], 'S');
    tb_str(&before[2], "server_version");
    tb_str(&before[2], "18.0");
    tb_end(&before[2]);
    tb_begin(&before[3], 'N'); /* a notice first */
    tb_u8(&before[3], 'S');
    tb_str(&before[3], "NOTICE");
    tb_u8(&before[3], 'M');
    tb_str(&before[3], "hi");
    tb_u8(&before[3], 0);
    tb_end(&before[3]);
    opts.max_protocol = FW__PQ_PROTOCOL_3_2;
    opts.password = "pw";
    for (size_t i = 0; i < 4; i++) {
        tb_t t = before[i];
        begin_asking(FW__PQ_PROTOCOL_3_2);
        negotiate(&t, FW__PQ_PROTOCOL_3_0, NULL);
        fw__su_result_t r = feed(&t);
        fw__pq_buf_reset(&out); /* the password answer of row 0 is not what is checked */
        expect_failure(r, FW_EPROTO_UNEXPECTED, "after the server had begun authentication");
        fw__startup_free(&su);
    }
}

/* Malformed messages never reach the rules above; the error names the message. */
static void test_a_malformed_negotiation_is_a_protocol_error_naming_the_message(void **state)
{
    (void)state;
    tb_t shapes[5];
    memset(shapes, 0, sizeof(shapes));
    tb_begin(&shapes[0], 'v'); /* no option count */
    tb_u32(&shapes[0], FW__PQ_PROTOCOL_3_0);
    tb_end(&shapes[0]);
    tb_begin(&shapes[1], 'v'); /* a count the bytes cannot hold (pgx OOM shape) */
    tb_u32(&shapes[1], FW__PQ_PROTOCOL_3_0);
    tb_u32(&shapes[1], 0x7fffffff);
    tb_end(&shapes[1]);
    tb_begin(&shapes[2], 'v'); /* negative count */
    tb_u32(&shapes[2], FW__PQ_PROTOCOL_3_0);
    tb_u32(&shapes[2], 0xffffffff);
    tb_end(&shapes[2]);
    tb_begin(&shapes[3], 'v'); /* an option name without its NUL */
    tb_u32(&shapes[3], FW__PQ_PROTOCOL_3_0);
    tb_u32(&shapes[3], 1);
    tb_mem(&shapes[3], "_pq_.x", 6);
    tb_end(&shapes[3]);
    tb_begin(&shapes[4], 'v'); /* a length over the startup cap (2000) */
    tb_u32(&shapes[4], FW__PQ_PROTOCOL_3_0);
    tb_u32(&shapes[4], 0);
    shapes[4].b[1] = 0;
    shapes[4].b[2] = 0;
    shapes[4].b[3] = 0x07;
    shapes[4].b[4] = 0xd1; /* 2001 */
    const int codes[] = {FW_EPROTO_TRUNCATED, FW_EPROTO_FIELD_COUNT, FW_EPROTO_BAD_VALUE,
                         FW_EPROTO_UNTERMINATED, FW_EPROTO_TOO_LARGE};
    opts.max_protocol = FW__PQ_PROTOCOL_3_2;
    for (size_t i = 0; i < 5; i++) {
        begin_asking(FW__PQ_PROTOCOL_3_2);
        fw__su_result_t r = feed(&shapes[i]);
        expect_failure(r, codes[i],
                       i < 4 ? "received invalid protocol negotiation message: protocol:"
                             : "protocol violation during startup"); /* refused from the header */
        fw__startup_free(&su);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_the_startup_message_asks_for_3_0_by_default_and_for_max_protocol),
        T(test_init_refuses_versions_conninfo_would_refuse),
        T(test_a_3_2_server_hands_a_32_byte_key_that_is_kept_whole),
        T(test_3_2_keys_of_4_and_256_bytes_are_accepted_and_257_is_refused),
        T(test_a_long_key_under_3_0_is_a_protocol_error),
        T(test_a_3_0_server_negotiates_down_and_the_session_goes_on_at_3_0),
        T(test_negotiation_holds_for_every_split_of_the_reply),
        T(test_a_version_below_min_protocol_ends_the_attempt),
        T(test_a_version_higher_than_asked_is_a_protocol_error),
        T(test_versions_below_3_0_and_the_never_released_3_1_are_refused),
        T(test_an_option_fwire_never_sent_is_a_protocol_error),
        T(test_a_negotiation_that_changes_nothing_is_a_protocol_error),
        T(test_a_second_negotiation_is_a_protocol_error),
        T(test_a_negotiation_after_authentication_began_is_a_protocol_error),
        T(test_a_malformed_negotiation_is_a_protocol_error_naming_the_message),
#undef T
    };
    return cmocka_run_group_tests_name("lib_startup_protocol", tests, NULL, NULL);
}
