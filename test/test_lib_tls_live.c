/* SPDX-License-Identifier: MIT */
/*
 * The TLS engine against the real PostgreSQL 15 of the test harness, over a plain blocking TCP
 * socket (the libuv transport is separate): SSLRequest, the 'S' answer judged by
 * fw__tls_ssl_response, the handshake, then the sans-I/O startup through the engine. Covers
 * verify-full by name and by IP, SCRAM-SHA-256-PLUS with the engine's binding data, a wrong CA,
 * a host the certificate lacks, the cert-authenticated user and the hostssl-only user.
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
#include "startup.h"
#include "startup_drive.h"
#include "tls.h"

static const char *env_or_fail(const char *name)
{
    const char *v = getenv(name);
    if (v == NULL || v[0] == '\0')
        fail_msg("%s is not set: run through test/with-pg.sh (meson test does)", name);
    return v;
}

static int tcp_fd(void)
{
    int fd = plain_open_tcp4(env_or_fail("FW_TEST_HOST4"), env_or_fail("FW_TEST_PORT"));
    assert_true(fd >= 0);
    return fd;
}

/* Writes everything the engine queued for the socket. */
static void flush_out(int fd, fw__tls_t *t)
{
    const uint8_t *p;
    size_t n;
    fw__tls_out(t, &p, &n);
    if (n > 0) {
        assert_int_equal(plain_send_all(fd, p, n), 0);
        fw__tls_out_consumed(t, n);
    }
}

/*
 * SSLRequest, the answer, the handshake. Returns FW__TLS_DONE with *tp set, or the error of
 * fw__tls_new or of the handshake with msg filled (and *tp NULL).
 */
static int tls_open(int fd, const fw__tls_config_t *cfg, fw__tls_t **tp, char *msg, size_t cap)
{
    *tp = NULL;
    fw__tls_t *t = NULL;
    /* Configuration errors come first: nothing is sent for a bad configuration. */
    int rc = fw__tls_new(&t, cfg, msg, cap);
    if (rc != 0)
        return rc;

    fw__pq_buf_t req;
    fw__pq_buf_init(&req, NULL);
    assert_int_equal(fw__pq_put_ssl_request(&req), 0);
    assert_int_equal(plain_send_all(fd, req.data, req.len), 0);
    fw__pq_buf_free(&req);
    uint8_t ans[64];
    ssize_t n = plain_recv(fd, ans, sizeof(ans));
    assert_true(n > 0);
    assert_int_equal(fw__tls_ssl_response(ans, (size_t)n, cfg->mode, msg, cap), FW__TLS_RESP_TLS);

    uint8_t buf[16384];
    for (;;) {
        rc = fw__tls_handshake(t);
        flush_out(fd, t); /* the ClientHello, our Finished, or an alert */
        if (rc != FW__TLS_CONTINUE)
            break;
        n = plain_recv(fd, buf, sizeof(buf));
        if (n <= 0)
            fail_msg("server closed the connection during the TLS handshake");
        assert_int_equal(fw__tls_feed(t, buf, (size_t)n), 0);
    }
    if (rc != FW__TLS_DONE) {
        snprintf(msg, cap, "%s", fw__tls_error(t));
        fw__tls_free(t);
        return rc;
    }
    *tp = t;
    return FW__TLS_DONE;
}

/*
 * Plaintext from the server: feeds socket reads, draining the engine after each (the read
 * rule), until some plaintext came. The server's close_notify (it sends one after a FATAL)
 * ends the reading; data before it is still returned.
 */
static size_t tls_recv(int fd, fw__tls_t *t, uint8_t *out, size_t cap)
{
    size_t have = 0;
    while (have == 0) {
        uint8_t buf[16384];
        ssize_t n = plain_recv(fd, buf, sizeof(buf));
        if (n <= 0)
            fail_msg("server closed the connection");
        assert_int_equal(fw__tls_feed(t, buf, (size_t)n), 0);
        long r = 0;
        while (have < cap && (r = fw__tls_read(t, out + have, cap - have)) > 0)
            have += (size_t)r;
        if (r < 0 && r != FW__TLS_CLOSED)
            fail_msg("TLS read: %s: %s", fw_err_name((int)r), fw__tls_error(t));
        if (r == FW__TLS_CLOSED && have == 0)
            fail_msg("server closed the TLS stream");
        flush_out(fd, t); /* e.g. an answer to a TLS 1.3 KeyUpdate */
    }
    return have;
}

static void tls_send(int fd, fw__tls_t *t, const uint8_t *p, size_t n)
{
    while (n > 0) {
        long k = fw__tls_write(t, p, n);
        assert_true(k >= 0);
        flush_out(fd, t);
        p += k;
        n -= (size_t)k;
    }
}

typedef struct tls_io_s {
    int fd;
    fw__tls_t *t;
} tls_io_t;

static void tls_io_send(void *ctx, const uint8_t *p, size_t n)
{
    tls_io_t *x = ctx;
    tls_send(x->fd, x->t, p, n);
}

static size_t tls_io_recv(void *ctx, uint8_t *buf, size_t cap)
{
    tls_io_t *x = ctx;
    return tls_recv(x->fd, x->t, buf, cap);
}

/* The startup exchange through the engine; returns its last result. */
static fw__su_result_t run_startup(int fd, fw__tls_t *t, fw__startup_t *su,
                                   const fw__startup_opts_t *o)
{
    tls_io_t x = {fd, t};
    drive_io_t io = {tls_io_send, tls_io_recv, &x};
    return drive_startup(su, o, &io);
}

static fw__tls_config_t verify_full(const char *host)
{
    fw__tls_config_t c;
    fw__tls_config_init(&c);
    c.mode = FW__TLS_MODE_VERIFY_FULL;
    c.rootcert = env_or_fail("FW_TEST_CA");
    c.host = host;
    return c;
}

static fw__startup_opts_t opts_for(const char *user_var, const char *pass_var)
{
    fw__startup_opts_t o;
    memset(&o, 0, sizeof(o));
    o.user = env_or_fail(user_var);
    o.database = env_or_fail("FW_TEST_DBNAME");
    o.application_name = "fwire-tls-live";
    o.password = pass_var ? env_or_fail(pass_var) : NULL;
    o.tls = true;
    return o;
}

/* Connects over TLS with `cfg`, authenticates with `o` (cb_data added when asked), and checks
 * the result. Returns the method used. */
static fw__auth_method_t connect_ok(const fw__tls_config_t *cfg, fw__startup_opts_t o,
                                    bool with_cb_data)
{
    char msg[512];
    int fd = tcp_fd();
    fw__tls_t *t;
    int rc = tls_open(fd, cfg, &t, msg, sizeof(msg));
    if (rc != FW__TLS_DONE)
        fail_msg("TLS to %s: %s: %s", cfg->host, fw_err_name(rc), msg);
    assert_string_equal(fw__tls_version(t), "TLSv1.3");
    uint8_t cb[64];
    size_t cbl = 0;
    if (with_cb_data) {
        const char *why = NULL;
        assert_int_equal(fw__tls_cb_data(t, cb, sizeof(cb), &cbl, &why), 0);
        assert_int_equal(cbl, 32); /* the cluster's certificates are ecdsa-with-SHA256 */
        o.cb_data = cb;
        o.cb_data_len = cbl;
    }
    fw__startup_t su;
    fw__su_result_t r = run_startup(fd, t, &su, &o);
    if (r != FW__SU_READY)
        fail_msg("%s: %s", o.user, fw__startup_error(&su));
    assert_int_equal(su.key.len, 4);
    assert_string_equal(fw__params_get(&su.params, "application_name"), "fwire-tls-live");
    fw__auth_method_t m = su.method;
    fw__startup_free(&su);

    /* A clean end: our close_notify, then the server's EOF. */
    static const uint8_t terminate[] = {'X', 0, 0, 0, 4};
    tls_send(fd, t, terminate, sizeof(terminate));
    assert_int_equal(fw__tls_shutdown(t), 0);
    flush_out(fd, t);
    fw__tls_free(t);
    close(fd);
    return m;
}

static void test_scram_over_verify_full_by_name_and_by_ip(void **state)
{
    (void)state;
    const char *hosts[] = {"localhost", env_or_fail("FW_TEST_HOST4")};
    for (size_t i = 0; i < 2; i++) {
        fw__tls_config_t c = verify_full(hosts[i]);
        fw__startup_opts_t o = opts_for("FW_TEST_USER_SCRAM", "FW_TEST_PASS_SCRAM");
        o.channel_binding = FW__CB_DISABLE;
        assert_int_equal(connect_ok(&c, o, false), FW__AUTH_SCRAM);
    }
}

static void test_channel_binding_require_uses_scram_plus_with_the_engine_data(void **state)
{
    (void)state;
    fw__tls_config_t c = verify_full("localhost");
    fw__startup_opts_t o = opts_for("FW_TEST_USER_SCRAM", "FW_TEST_PASS_SCRAM");
    o.channel_binding = FW__CB_REQUIRE;
    assert_int_equal(connect_ok(&c, o, true), FW__AUTH_SCRAM_PLUS);
}

static void test_verify_full_with_the_other_ca_fails(void **state)
{
    (void)state;
    fw__tls_config_t c = verify_full("localhost");
    c.rootcert = env_or_fail("FW_TEST_OTHER_CA");
    char msg[512];
    fw__tls_t *t;
    int fd = tcp_fd();
    assert_int_equal(tls_open(fd, &c, &t, msg, sizeof(msg)), FW_ETLS);
    assert_null(t);
    /* The server sends its CA along, so OpenSSL reports the untrusted root of that chain. */
    if (strstr(msg, "server certificate verification failed (sslmode verify-full): ") == NULL ||
        (strstr(msg, "self-signed certificate in certificate chain") == NULL &&
         strstr(msg, "unable to get local issuer certificate") == NULL))
        fail_msg("unexpected message: %s", msg);
    close(fd);
}

static void test_verify_full_against_a_name_the_certificate_lacks_names_both(void **state)
{
    (void)state;
    fw__tls_config_t c = verify_full("db.invalid");
    char msg[512];
    fw__tls_t *t;
    int fd = tcp_fd(); /* connected to 127.0.0.1, verifying another name */
    assert_int_equal(tls_open(fd, &c, &t, msg, sizeof(msg)), FW_ETLS);
    assert_string_equal(msg, "server certificate for \"localhost\" (and 2 other names) does not "
                             "match host name \"db.invalid\"");
    close(fd);
}

static void test_cert_user_authenticates_with_the_client_certificate(void **state)
{
    (void)state;
    fw__tls_config_t c = verify_full("localhost");
    c.cert = env_or_fail("FW_TEST_CLIENT_CERT");
    c.key = env_or_fail("FW_TEST_CLIENT_KEY");
    fw__startup_opts_t o = opts_for("FW_TEST_USER_CERT", NULL);
    assert_int_equal(connect_ok(&c, o, true), FW__AUTH_NONE);
}

static void test_cert_user_without_a_certificate_is_refused_by_the_server(void **state)
{
    (void)state;
    fw__tls_config_t c = verify_full("localhost");
    char msg[512];
    fw__tls_t *t;
    int fd = tcp_fd();
    assert_int_equal(tls_open(fd, &c, &t, msg, sizeof(msg)), FW__TLS_DONE);
    fw__startup_t su;
    fw__startup_opts_t o = opts_for("FW_TEST_USER_CERT", NULL);
    assert_int_equal(run_startup(fd, t, &su, &o), FW__SU_FAILED);
    assert_true(su.have_server_error);
    assert_string_equal(su.server_error.sqlstate, "28000");
    fw__startup_free(&su);
    fw__tls_free(t);
    close(fd);
}

static void test_client_key_with_loose_permissions_is_refused_before_connecting(void **state)
{
    (void)state;
    fw__tls_config_t c = verify_full("localhost");
    c.cert = env_or_fail("FW_TEST_CLIENT_CERT");
    c.key = env_or_fail("FW_TEST_CLIENT_KEY_BADPERM");
    char msg[512];
    fw__tls_t *t = NULL;
    assert_int_equal(fw__tls_new(&t, &c, msg, sizeof(msg)), FW_ECONFIG);
    assert_null(t);
    assert_non_null(strstr(msg, c.key));
    assert_non_null(strstr(msg, "has group or world access"));
}

static void test_sslonly_user_works_over_tls(void **state)
{
    (void)state;
    fw__tls_config_t c = verify_full("localhost");
    fw__startup_opts_t o = opts_for("FW_TEST_USER_SSLONLY", "FW_TEST_PASS_SSLONLY");
    o.channel_binding = FW__CB_PREFER;
    assert_int_equal(connect_ok(&c, o, true), FW__AUTH_SCRAM_PLUS);
}

static void test_require_without_a_root_certificate_still_encrypts(void **state)
{
    (void)state;
    fw__tls_config_t c;
    fw__tls_config_init(&c);
    c.mode = FW__TLS_MODE_REQUIRE;
    c.host = env_or_fail("FW_TEST_HOST4");
    fw__startup_opts_t o = opts_for("FW_TEST_USER_SSLONLY", "FW_TEST_PASS_SSLONLY");
    o.channel_binding = FW__CB_PREFER;
    assert_int_equal(connect_ok(&c, o, true), FW__AUTH_SCRAM_PLUS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scram_over_verify_full_by_name_and_by_ip),
        cmocka_unit_test(test_channel_binding_require_uses_scram_plus_with_the_engine_data),
        cmocka_unit_test(test_verify_full_with_the_other_ca_fails),
        cmocka_unit_test(test_verify_full_against_a_name_the_certificate_lacks_names_both),
        cmocka_unit_test(test_cert_user_authenticates_with_the_client_certificate),
        cmocka_unit_test(test_cert_user_without_a_certificate_is_refused_by_the_server),
        cmocka_unit_test(test_client_key_with_loose_permissions_is_refused_before_connecting),
        cmocka_unit_test(test_sslonly_user_works_over_tls),
        cmocka_unit_test(test_require_without_a_root_certificate_still_encrypts),
    };
    return cmocka_run_group_tests_name("lib_tls_live", tests, NULL, NULL);
}
