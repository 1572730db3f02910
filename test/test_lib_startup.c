/* SPDX-License-Identifier: MIT */
/*
 * The startup/authentication state machine driven with byte vectors: every method, the
 * require_auth and channel_binding policy (nothing secret may leave when the policy refuses),
 * SCRAM against a server emulated here with OpenSSL, and hostile orderings.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

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
    opts.user = "alice";
    opts.database = "db";
    opts.application_name = "fwire-test";
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fw__startup_free(&su);
    fw__pq_buf_free(&out);
    return 0;
}

static void begin(void)
{
    fw__pq_buf_reset(&out);
    assert_int_equal(fw__startup_init(&su, &opts, &out), 0);
    assert_int_equal(fw__startup_begin(&su), FW__SU_CONTINUE);
    assert_true(out.len > 0);
    assert_int_equal(out.data[4], 0); /* protocol 3.0: 00 03 00 00 */
    assert_int_equal(out.data[5], 3);
    fw__pq_buf_reset(&out); /* from here on `out` holds only what answers the server */
}

static fw__su_result_t feed(const tb_t *t)
{
    return fw__startup_feed(&su, t->b, t->len);
}

static void auth_req(tb_t *t, uint32_t code)
{
    tb_begin(t, 'R');
    tb_u32(t, code);
    tb_end(t);
}

/* AuthenticationOk, two ParameterStatus, BackendKeyData, ReadyForQuery. */
static void after_ok(tb_t *t)
{
    auth_req(t, 0);
    tb_begin(t, 'S');
    tb_str(t, "server_version");
    tb_str(t, "15.18");
    tb_end(t);
    tb_begin(t, 'S');
    tb_str(t, "application_name");
    tb_str(t, "x\x1b[31m");
    tb_end(t);
    tb_begin(t, 'K');
    tb_u32(t, 1234);
    tb_u32(t, 0xcafe);
    tb_end(t);
    tb_begin(t, 'Z');
    tb_u8(t, 'I');
    tb_end(t);
}

static void test_trust_reaches_ready_and_keeps_parameters_and_key(void **state)
{
    (void)state;
    tb_t t = {.len = 0};
    begin();
    after_ok(&t);
    assert_int_equal(feed(&t), FW__SU_READY);
    assert_int_equal(su.method, FW__AUTH_NONE);
    assert_int_equal(out.len, 0);
    assert_false(su.password_sent);
    assert_int_equal(su.key.len, 4);
    assert_int_equal(su.key.pid, 1234);
    assert_memory_equal(su.key.secret, "\0\0\xca\xfe", 4);
    assert_int_equal(su.protocol, FW__PQ_PROTOCOL_3_0);
    assert_string_equal(fw__params_get(&su.params, "server_version"), "15.18");
    /* a server-sent escape sequence is kept as data, escaped */
    assert_string_equal(fw__params_get(&su.params, "application_name"), "x\\x1b[31m");
}

static void test_trust_reply_fed_byte_by_byte(void **state)
{
    (void)state;
    tb_t t = {.len = 0};
    begin();
    after_ok(&t);
    for (size_t i = 0; i + 1 < t.len; i++)
        assert_int_equal(fw__startup_feed(&su, t.b + i, 1), FW__SU_CONTINUE);
    assert_int_equal(fw__startup_feed(&su, t.b + t.len - 1, 1), FW__SU_READY);
}

static void test_cleartext_password_is_sent_when_asked(void **state)
{
    (void)state;
    tb_t t = {.len = 0};
    opts.password = "s3cret";
    begin();
    auth_req(&t, 3);
    assert_int_equal(feed(&t), FW__SU_CONTINUE);
    static const uint8_t expect[] = {'p', 0, 0, 0, 11, 's', '3', 'c', 'r', 'e', 't', 0};
    assert_int_equal(out.len, sizeof(expect));
    assert_memory_equal(out.data, expect, sizeof(expect));
    t.len = 0;
    after_ok(&t);
    assert_int_equal(feed(&t), FW__SU_READY);
    assert_int_equal(su.method, FW__AUTH_PASSWORD);
}

static void test_md5_answer_uses_user_and_salt(void **state)
{
    (void)state;
    tb_t t = {.len = 0};
    opts.user = "fw_md5";
    opts.password = "secret";
    begin();
    tb_begin(&t, 'R');
    tb_u32(&t, 5);
    tb_mem(&t, "\x01\x02\x03\x04", 4);
    tb_end(&t);
    assert_int_equal(feed(&t), FW__SU_CONTINUE);
    /* the known answer of test_auth_basics.c */
    assert_int_equal(out.len, 5 + 36);
    assert_memory_equal(out.data + 5, "md57bf03070ef3d33b7e4958b52704058f2", 36);
    assert_int_equal(su.method, FW__AUTH_MD5);
}

static void test_no_password_fails_without_sending_anything(void **state)
{
    (void)state;
    tb_t t = {.len = 0};
    begin();
    auth_req(&t, 3);
    assert_int_equal(feed(&t), FW__SU_FAILED);
    assert_int_equal(su.err, FW_EAUTH);
    assert_int_equal(out.len, 0);
    assert_non_null(strstr(fw__startup_error(&su), "no password supplied"));
}

/* The fake-server rule of RELIABILITY.md: with SCRAM required, a cleartext or MD5 request ends
 * the attempt and zero password messages are sent. */
static void test_require_auth_scram_refuses_cleartext_and_md5_before_sending(void **state)
{
    (void)state;
    const uint32_t codes[] = {3, 5};
    for (int i = 0; i < 2; i++) {
        tb_t t = {.len = 0};
        opts.password = "s3cret";
        opts.restrict_auth = true;
        opts.auth_required = true;
        opts.allowed = FW__SU_ALLOW(FW__PQ_AUTH_SASL);
        begin();
        tb_begin(&t, 'R');
        tb_u32(&t, codes[i]);
        if (codes[i] == 5)
            tb_mem(&t, "salt", 4);
        tb_end(&t);
        assert_int_equal(feed(&t), FW__SU_FAILED);
        assert_int_equal(su.err, FW_EAUTH);
        assert_int_equal(out.len, 0);
        assert_false(su.password_sent);
        assert_non_null(strstr(fw__startup_error(&su),
                               "authentication method requirement \"scram-sha-256\" failed"));
        fw__startup_free(&su);
    }
}

static void test_require_auth_fails_when_server_skips_authentication(void **state)
{
    (void)state;
    tb_t t = {.len = 0};
    opts.restrict_auth = true;
    opts.auth_required = true;
    opts.allowed = FW__SU_ALLOW(FW__PQ_AUTH_SASL);
    begin();
    after_ok(&t);
    assert_int_equal(feed(&t), FW__SU_FAILED);
    assert_non_null(strstr(fw__startup_error(&su), "server did not complete authentication"));
}

static void test_require_auth_none_accepts_trust(void **state)
{
    (void)state;
    tb_t t = {.len = 0};
    opts.restrict_auth = true;
    opts.auth_required = false;
    opts.allowed = 0;
    begin();
    after_ok(&t);
    assert_int_equal(feed(&t), FW__SU_READY);
}

static void test_channel_binding_require_refuses_non_sasl_before_sending(void **state)
{
    (void)state;
    const uint32_t codes[] = {3, 5, 0};
    for (int i = 0; i < 3; i++) {
        tb_t t = {.len = 0};
        opts.password = "s3cret";
        opts.channel_binding = FW__CB_REQUIRE;
        opts.tls = true;
        begin();
        tb_begin(&t, 'R');
        tb_u32(&t, codes[i]);
        if (codes[i] == 5)
            tb_mem(&t, "salt", 4);
        tb_end(&t);
        assert_int_equal(feed(&t), FW__SU_FAILED);
        assert_int_equal(out.len, 0);
        assert_non_null(strstr(fw__startup_error(&su), "channel binding required"));
        fw__startup_free(&su);
    }
}

static void sasl_offer(tb_t *t, bool scram, bool plus)
{
    tb_begin(t, 'R');
    tb_u32(t, 10);
    if (plus)
        tb_str(t, "SCRAM-SHA-256-PLUS");
    if (scram)
        tb_str(t, "SCRAM-SHA-256");
    tb_u8(t, 0);
    tb_end(t);
}

static void test_plus_offered_without_tls_is_a_stripped_tls_attack(void **state)
{
    (void)state;
    tb_t t = {.len = 0};
    opts.password = "pw";
    begin();
    sasl_offer(&t, true, true);
    assert_int_equal(feed(&t), FW__SU_FAILED);
    assert_non_null(strstr(fw__startup_error(&su), "over a non-SSL connection"));
    assert_int_equal(out.len, 0);
}

static void test_channel_binding_require_without_plus_offer_or_data_fails(void **state)
{
    (void)state;
    tb_t t = {.len = 0};
    opts.password = "pw";
    opts.channel_binding = FW__CB_REQUIRE;
    opts.tls = true;
    opts.cb_data = (const uint8_t *)"0123456789abcdef0123456789abcdef";
    opts.cb_data_len = 32;
    begin();
    sasl_offer(&t, true, false);
    assert_int_equal(feed(&t), FW__SU_FAILED);
    assert_non_null(strstr(fw__startup_error(&su), "did not offer"));
    fw__startup_free(&su);

    /* PLUS offered, but the certificate gave no binding data (Ed25519) */
    t.len = 0;
    opts.cb_data = NULL;
    opts.cb_data_len = 0;
    opts.cb_why = "the server certificate's signature algorithm ED25519 has no digest";
    begin();
    sasl_offer(&t, true, true);
    assert_int_equal(feed(&t), FW__SU_FAILED);
    assert_non_null(strstr(fw__startup_error(&su), "ED25519"));
    assert_int_equal(out.len, 0);
}

/* ---- a SCRAM server, emulated with OpenSSL ----------------------------------------------- */

typedef struct scram_srv_s {
    char client_first_bare[256];
    char server_first[256];
    char nonce[128];
    uint8_t salted[32];
} scram_srv_t;

static void hmac(const uint8_t *key, size_t klen, const void *msg, size_t mlen, uint8_t out32[32])
{
    unsigned int n = 32;
    assert_non_null(HMAC(EVP_sha256(), key, (int)klen, msg, mlen, out32, &n));
}

static void b64(char *dst, const uint8_t *src, size_t n)
{
    EVP_EncodeBlock((unsigned char *)dst, src, (int)n);
}

/* Reads the SASLInitialResponse in `out`, answers with server-first. */
static void srv_first(scram_srv_t *s, const char *password, tb_t *t, const char *mech_expect)
{
    assert_true(out.len > 5);
    assert_int_equal(out.data[0], 'p');
    const char *mech = (const char *)out.data + 5;
    assert_string_equal(mech, mech_expect);
    const uint8_t *p = out.data + 5 + strlen(mech) + 1;
    uint32_t n = ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
    char first[256];
    assert_true(n < sizeof(first));
    memcpy(first, p + 4, n);
    first[n] = '\0';
    /* skip the GS2 header: two commas */
    const char *bare = strchr(strchr(first, ',') + 1, ',') + 1;
    snprintf(s->client_first_bare, sizeof(s->client_first_bare), "%s", bare);
    const char *r = strstr(bare, "r=");
    assert_non_null(r);
    snprintf(s->nonce, sizeof(s->nonce), "%sSERVERPART", r + 2);
    static const uint8_t salt[] = "0123456789abcdef";
    char salt64[64];
    b64(salt64, salt, 16);
    snprintf(s->server_first, sizeof(s->server_first), "r=%s,s=%s,i=4096", s->nonce, salt64);
    assert_int_equal(PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, 16, 4096,
                                       EVP_sha256(), 32, s->salted),
                     1);
    fw__pq_buf_reset(&out);
    tb_begin(t, 'R');
    tb_u32(t, 11);
    tb_mem(t, s->server_first, strlen(s->server_first));
    tb_end(t);
}

/* Checks the client proof in `out` and answers with server-final (optionally corrupted). */
static void srv_final(scram_srv_t *s, tb_t *t, bool corrupt)
{
    assert_int_equal(out.data[0], 'p');
    char final[512];
    size_t n = out.len - 5;
    assert_true(n < sizeof(final));
    memcpy(final, out.data + 5, n);
    final[n] = '\0';
    char *proof = strstr(final, ",p=");
    assert_non_null(proof);
    *proof = '\0';
    char auth[1024];
    snprintf(auth, sizeof(auth), "%s,%s,%s", s->client_first_bare, s->server_first, final);
    uint8_t client_key[32], stored[32], sig[32], server_key[32], server_sig[32], expect[32];
    hmac(s->salted, 32, "Client Key", 10, client_key);
    unsigned int dl = 32;
    EVP_Digest(client_key, 32, stored, &dl, EVP_sha256(), NULL);
    hmac(stored, 32, auth, strlen(auth), sig);
    for (int i = 0; i < 32; i++)
        expect[i] = (uint8_t)(client_key[i] ^ sig[i]);
    char expect64[64];
    b64(expect64, expect, 32);
    assert_string_equal(proof + 3, expect64); /* the client proved it knows the password */
    hmac(s->salted, 32, "Server Key", 10, server_key);
    hmac(server_key, 32, auth, strlen(auth), server_sig);
    if (corrupt)
        server_sig[0] ^= 1;
    char v[80] = "v=";
    b64(v + 2, server_sig, 32);
    fw__pq_buf_reset(&out);
    tb_begin(t, 'R');
    tb_u32(t, 12);
    tb_mem(t, v, strlen(v));
    tb_end(t);
}

/* Begins a start-up with `password` and offers SASL (SCRAM-SHA-256, and -PLUS when `plus`) in
 * t: the client answers it. */
static void scram_offered(const char *password, bool plus, tb_t *t)
{
    opts.password = password;
    begin();
    t->len = 0;
    sasl_offer(t, true, plus);
    assert_int_equal(feed(t), FW__SU_CONTINUE);
}

/*
 * Runs an exchange up to the client's proof: offer SCRAM-SHA-256, answer the client-first with
 * a server-first derived from `server_password`, derive, and leave the SASLResponse in `out`.
 * *t is left empty for the caller's next server message.
 */
static void scram_to_proof(const char *client_password, const char *server_password, scram_srv_t *s,
                           tb_t *t)
{
    scram_offered(client_password, false, t);
    t->len = 0;
    srv_first(s, server_password, t, "SCRAM-SHA-256");
    assert_int_equal(feed(t), FW__SU_DERIVE);
    assert_int_equal(fw__startup_derived(&su, fw__startup_derive_work(&su)), FW__SU_CONTINUE);
    t->len = 0;
}

static void scram_exchange(const char *password, const char *mech, fw__auth_method_t method)
{
    tb_t t = {.len = 0};
    scram_srv_t s;
    scram_offered(password, opts.tls, &t);
    t.len = 0;
    srv_first(&s, password, &t, mech);
    assert_int_equal(feed(&t), FW__SU_DERIVE);
    _Atomic bool never = false; /* what lib/conn.c passes: a flag that stays clear */
    assert_int_equal(fw__startup_derived(&su, fw__startup_derive_work_cancellable(&su, &never)),
                     FW__SU_CONTINUE);
    assert_true(su.password_sent);
    t.len = 0;
    srv_final(&s, &t, false);
    after_ok(&t); /* SASLFinal, AuthenticationOk ... ReadyForQuery in one read */
    assert_int_equal(feed(&t), FW__SU_READY);
    assert_int_equal(su.method, method);
}

static void test_scram_exchange_against_an_emulated_server(void **state)
{
    (void)state;
    scram_exchange("pencil", "SCRAM-SHA-256", FW__AUTH_SCRAM);
}

static void test_scram_plus_when_tls_and_binding_data(void **state)
{
    (void)state;
    opts.tls = true;
    opts.cb_data = (const uint8_t *)"0123456789abcdef0123456789abcdef";
    opts.cb_data_len = 32;
    opts.channel_binding = FW__CB_REQUIRE;
    scram_exchange("pencil", "SCRAM-SHA-256-PLUS", FW__AUTH_SCRAM_PLUS);
}

static void test_scram_password_goes_through_saslprep(void **state)
{
    (void)state;
    /* "I<U+00AD>X" prepares to "IX": the emulated server derives its key from "IX", as
     * PostgreSQL does when it stores the verifier. */
    tb_t t = {.len = 0};
    scram_srv_t s;
    scram_to_proof("I\xc2\xadX", "IX", &s, &t);
    srv_final(&s, &t, false); /* asserts the proof was made from "IX" */
    assert_int_equal(feed(&t), FW__SU_CONTINUE);
}

static void test_scram_wrong_server_signature_fails(void **state)
{
    (void)state;
    tb_t t = {.len = 0};
    scram_srv_t s;
    scram_to_proof("pencil", "pencil", &s, &t);
    srv_final(&s, &t, true);
    assert_int_equal(feed(&t), FW__SU_FAILED);
    assert_int_equal(su.err, FW_EAUTH);
    assert_non_null(strstr(fw__startup_error(&su), "SCRAM authentication failed"));
}

static void test_authentication_ok_in_the_middle_of_scram_is_refused(void **state)
{
    (void)state;
    tb_t t = {.len = 0};
    scram_srv_t s;
    scram_offered("pencil", false, &t);
    t.len = 0;
    after_ok(&t); /* AuthenticationOk instead of SASLContinue */
    assert_int_equal(feed(&t), FW__SU_FAILED);
    assert_non_null(strstr(fw__startup_error(&su), "before completing SCRAM"));
    fw__startup_free(&su);

    /* and after the proof, instead of SASLFinal */
    scram_to_proof("pencil", "pencil", &s, &t);
    after_ok(&t);
    assert_int_equal(feed(&t), FW__SU_FAILED);
    assert_non_null(strstr(fw__startup_error(&su), "before completing SCRAM"));
}

/*
 * A cancelled derivation (lib/conn.c sets the flag when connect_timeout fires or the connection
 * closes) ends the attempt: FW_ECLOSED from the work, then a failed exchange, no proof sent and
 * the SCRAM secrets wiped.
 */
static void test_cancelled_derivation_fails_the_attempt_without_sending_a_proof(void **state)
{
    (void)state;
    tb_t t = {.len = 0};
    scram_srv_t s;
    scram_offered("pencil", false, &t);
    t.len = 0;
    srv_first(&s, "pencil", &t, "SCRAM-SHA-256");
    assert_int_equal(feed(&t), FW__SU_DERIVE);
    _Atomic bool cancel = true;
    int rc = fw__startup_derive_work_cancellable(&su, &cancel);
    assert_int_equal(rc, FW_ECLOSED);
    assert_int_equal(fw__scram_fail(&su.scram), FW__SCRAM_FAIL_CANCELLED);
    for (size_t i = 0; i < sizeof(su.scram.password); i++)
        assert_int_equal(su.scram.password[i], 0);
    assert_int_equal(fw__startup_derived(&su, rc), FW__SU_FAILED);
    assert_int_equal(su.err, FW_EAUTH);
    assert_non_null(strstr(fw__startup_error(&su), "key derivation cancelled"));
    assert_false(su.password_sent);
    assert_int_equal(out.len, 0); /* no SASLResponse */
}

static void test_scram_iteration_cap_refuses_before_any_work(void **state)
{
    (void)state;
    tb_t t = {.len = 0};
    scram_offered("pencil", false, &t);
    const char *first = (const char *)out.data + 5 + strlen("SCRAM-SHA-256") + 1 + 4;
    const char *r = strstr(first, "r=");
    assert_non_null(r);
    char sf[256];
    snprintf(sf, sizeof(sf), "r=%.24sX,s=c2FsdA==,i=2147483647", r + 2);
    t.len = 0;
    tb_begin(&t, 'R');
    tb_u32(&t, 11);
    tb_mem(&t, sf, strlen(sf));
    tb_end(&t);
    assert_int_equal(feed(&t), FW__SU_FAILED);
    assert_non_null(strstr(fw__startup_error(&su), "2147483647"));
}

static void test_server_error_keeps_sqlstate_and_escapes_text(void **state)
{
    (void)state;
    tb_t t = {.len = 0};
    opts.password = "wrong";
    begin();
    auth_req(&t, 3);
    assert_int_equal(feed(&t), FW__SU_CONTINUE);
    t.len = 0;
    tb_begin(&t, 'E');
    tb_u8(&t, 'S');
    tb_str(&t, "FATAL");
    tb_u8(&t, 'V');
    tb_str(&t, "FATAL");
    tb_u8(&t, 'C');
    tb_str(&t, "28P01");
    tb_u8(&t, 'M');
    tb_str(&t, "password authentication failed for user \"alice\"\x07");
    tb_u8(&t, 0);
    tb_end(&t);
    assert_int_equal(feed(&t), FW__SU_FAILED);
    assert_int_equal(su.err, FW_EAUTH);
    assert_true(su.have_server_error);
    assert_string_equal(su.server_error.sqlstate, "28P01");
    assert_string_equal(su.server_error.severity, "FATAL");
    assert_string_equal(fw__startup_error(&su),
                        "FATAL:  password authentication failed for user \"alice\"\\x07");
}

static void test_a_client_encoding_other_than_utf8_fails_before_ready(void **state)
{
    (void)state;
    static const struct {
        const char *value;
        bool ok;
    } cases[] = {{"UTF8", true},   {"utf8", true},  {"UTF-8", true},
                 {"LATIN1", false}, {"SQL_ASCII", false}, {"UTF8X", false}, {"", false}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tb_t t = {.len = 0};
        begin();
        auth_req(&t, 0);
        tb_begin(&t, 'S');
        tb_str(&t, "client_encoding");
        tb_str(&t, cases[i].value);
        tb_end(&t);
        tb_begin(&t, 'Z');
        tb_u8(&t, 'I');
        tb_end(&t);
        fw__su_result_t r = feed(&t);
        if (cases[i].ok) {
            assert_int_equal(r, FW__SU_READY);
            continue;
        }
        assert_int_equal(r, FW__SU_FAILED);
        assert_int_equal(su.err, FW_EPROTO_BAD_VALUE);
        char want[128];
        snprintf(want, sizeof(want), "server reports client_encoding \"%s\"", cases[i].value);
        if (strstr(fw__startup_error(&su), want) == NULL)
            fail_msg("\"%s\" not in \"%s\"", want, fw__startup_error(&su));
    }
}

static void test_unsupported_and_out_of_place_messages_fail(void **state)
{
    (void)state;
    const uint32_t unsupported[] = {2, 6, 7, 9};
    for (size_t i = 0; i < 4; i++) {
        tb_t t = {.len = 0};
        begin();
        auth_req(&t, unsupported[i]);
        assert_int_equal(feed(&t), FW__SU_FAILED);
        assert_non_null(strstr(fw__startup_error(&su), "does not support"));
        fw__startup_free(&su);
    }
    tb_t t = {.len = 0};
    begin();
    tb_begin(&t, 'Z');
    tb_u8(&t, 'I');
    tb_end(&t); /* ReadyForQuery before authentication */
    assert_int_equal(feed(&t), FW__SU_FAILED);
    fw__startup_free(&su);
    t.len = 0;
    begin();
    tb_begin(&t, 'v');
    tb_u32(&t, 0);
    tb_u32(&t, 0);
    tb_end(&t);
    assert_int_equal(feed(&t), FW__SU_FAILED);
    assert_non_null(strstr(fw__startup_error(&su), "invalid protocol negotiation message"));
    fw__startup_free(&su);
    t.len = 0;
    begin();
    tb_begin(&t, 'D');
    tb_u16(&t, 0);
    tb_end(&t);
    assert_int_equal(feed(&t), FW__SU_FAILED);
    assert_int_equal(su.err, FW_EPROTO_UNEXPECTED);
    fw__startup_free(&su);
    t.len = 0;
    begin();
    tb_begin(&t, 'R');
    tb_u32(&t, 0);
    tb_end(&t);
    tb_begin(&t, 'K');
    tb_u32(&t, 1);
    tb_u32(&t, 2);
    tb_end(&t);
    tb_begin(&t, 'K');
    tb_u32(&t, 1);
    tb_u32(&t, 2);
    tb_end(&t); /* twice */
    assert_int_equal(feed(&t), FW__SU_FAILED);
}

static void test_parameter_storage_is_bounded(void **state)
{
    (void)state;
    fw__params_t p;
    memset(&p, 0, sizeof(p));
    char name[32];
    int rc = 0, i;
    for (i = 0; i < 1000 && rc == 0; i++) {
        snprintf(name, sizeof(name), "p%d", i);
        fw_slice_t n = {(const uint8_t *)name, strlen(name)}, v = {(const uint8_t *)"v", 1};
        rc = fw__params_set(&p, n, v);
    }
    assert_int_equal(rc, FW_ETOOBIG);
    assert_int_equal(i - 1, FW__PARAMS_MAX);
    /* updating an existing name still works while there is room */
    memset(&p, 0, sizeof(p));
    fw_slice_t n = {(const uint8_t *)"a", 1}, v1 = {(const uint8_t *)"1", 1},
               v2 = {(const uint8_t *)"2", 1};
    assert_int_equal(fw__params_set(&p, n, v1), 0);
    assert_int_equal(fw__params_set(&p, n, v2), 0);
    assert_string_equal(fw__params_get(&p, "a"), "2");
    assert_int_equal(p.n, 1);
    assert_null(fw__params_get(&p, "b"));
}

static void test_escape_text_keeps_utf8_and_escapes_controls_and_bad_bytes(void **state)
{
    (void)state;
    char buf[64];
    assert_string_equal(fw__escape_text(buf, sizeof(buf), (const uint8_t *)"Zo\xc3\xab", 4),
                        "Zo\xc3\xab");
    assert_string_equal(fw__escape_text(buf, sizeof(buf), (const uint8_t *)"a\nb\x7f", 4),
                        "a\\x0ab\\x7f");
    assert_string_equal(fw__escape_text(buf, sizeof(buf), (const uint8_t *)"\xc0\xaf\xff", 3),
                        "\\xc0\\xaf\\xff");
    /* truncation never splits a character or an escape */
    assert_string_equal(fw__escape_text(buf, 4, (const uint8_t *)"ab\xc3\xab", 4), "ab");
    assert_string_equal(fw__escape_text(buf, 5, (const uint8_t *)"a\n", 2), "a");
    assert_string_equal(fw__escape_text(buf, 6, (const uint8_t *)"a\n", 2), "a\\x0a");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_trust_reaches_ready_and_keeps_parameters_and_key),
        T(test_trust_reply_fed_byte_by_byte),
        T(test_cleartext_password_is_sent_when_asked),
        T(test_md5_answer_uses_user_and_salt),
        T(test_no_password_fails_without_sending_anything),
        T(test_require_auth_scram_refuses_cleartext_and_md5_before_sending),
        T(test_require_auth_fails_when_server_skips_authentication),
        T(test_require_auth_none_accepts_trust),
        T(test_channel_binding_require_refuses_non_sasl_before_sending),
        T(test_plus_offered_without_tls_is_a_stripped_tls_attack),
        T(test_channel_binding_require_without_plus_offer_or_data_fails),
        T(test_scram_exchange_against_an_emulated_server),
        T(test_scram_plus_when_tls_and_binding_data),
        T(test_scram_password_goes_through_saslprep),
        T(test_scram_wrong_server_signature_fails),
        T(test_authentication_ok_in_the_middle_of_scram_is_refused),
        T(test_cancelled_derivation_fails_the_attempt_without_sending_a_proof),
        T(test_scram_iteration_cap_refuses_before_any_work),
        T(test_server_error_keeps_sqlstate_and_escapes_text),
        T(test_a_client_encoding_other_than_utf8_fails_before_ready),
        T(test_unsupported_and_out_of_place_messages_fail),
        T(test_parameter_storage_is_bounded),
        T(test_escape_text_keeps_utf8_and_escapes_controls_and_bad_bytes),
#undef T
    };
    return cmocka_run_group_tests_name("lib_startup", tests, NULL, NULL);
}
