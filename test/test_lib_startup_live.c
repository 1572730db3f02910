/* SPDX-License-Identifier: MIT */
/*
 * The startup state machine against the real PostgreSQL 15 of the test harness, over a plain
 * blocking socket (the libuv transport is separate): every password method the cluster has,
 * a wrong password, require_auth refusing a method the server asks for, and protocol 3.2 asked
 * of a server that has 3.0 only.
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

static const char *env_or_fail(const char *name)
{
    const char *v = getenv(name);
    if (v == NULL || v[0] == '\0')
        fail_msg("%s is not set: run through test/with-pg.sh (meson test does)", name);
    return v;
}

static void plain_send(void *ctx, const uint8_t *p, size_t n)
{
    assert_int_equal(plain_send_all(*(int *)ctx, p, n), 0);
}

static size_t plain_recv_some(void *ctx, uint8_t *buf, size_t cap)
{
    ssize_t n = plain_recv(*(int *)ctx, buf, cap);
    if (n <= 0)
        fail_msg("server closed the connection during startup");
    return (size_t)n;
}

/* Runs one startup over the plain socket `fd` to the end; returns the final result. */
static fw__su_result_t run_startup(int fd, fw__startup_t *su, const fw__startup_opts_t *o)
{
    drive_io_t io = {plain_send, plain_recv_some, &fd};
    return drive_startup(su, o, &io);
}

static fw__startup_opts_t opts_for(const char *user_var, const char *pass_var)
{
    fw__startup_opts_t o;
    memset(&o, 0, sizeof(o));
    o.user = env_or_fail(user_var);
    o.database = env_or_fail("FW_TEST_DBNAME");
    o.application_name = "fwire-startup-live";
    o.password = pass_var ? env_or_fail(pass_var) : NULL;
    return o;
}

static int unix_fd(void)
{
    int fd = plain_open_unix(env_or_fail("FW_TEST_SOCKDIR"), env_or_fail("FW_TEST_PORT"));
    assert_true(fd >= 0);
    return fd;
}

static void connect_ok(const char *user_var, const char *pass_var, fw__auth_method_t method,
                       bool tcp)
{
    fw__startup_t su;
    fw__startup_opts_t o = opts_for(user_var, pass_var);
    int fd = tcp ? plain_open_tcp4(env_or_fail("FW_TEST_HOST4"), env_or_fail("FW_TEST_PORT"))
                 : unix_fd();
    assert_true(fd >= 0);
    fw__su_result_t r = run_startup(fd, &su, &o);
    if (r != FW__SU_READY)
        fail_msg("%s: %s", o.user, fw__startup_error(&su));
    assert_int_equal(su.method, method);
    assert_int_equal(su.key.len, 4);
    assert_true(su.key.pid > 0);
    assert_int_equal(su.protocol, FW__PQ_PROTOCOL_3_0);
    assert_false(su.negotiated);
    assert_non_null(fw__params_get(&su.params, "server_version"));
    assert_string_equal(fw__params_get(&su.params, "client_encoding"), "UTF8");
    assert_string_equal(fw__params_get(&su.params, "application_name"), "fwire-startup-live");
    fw__startup_free(&su);
    close(fd);
}

static void test_trust_user_over_unix_socket(void **state)
{
    (void)state;
    connect_ok("FW_TEST_USER_TRUST", NULL, FW__AUTH_NONE, false);
}

static void test_cleartext_password_user(void **state)
{
    (void)state;
    connect_ok("FW_TEST_USER_PASSWORD", "FW_TEST_PASS_PASSWORD", FW__AUTH_PASSWORD, false);
}

static void test_md5_user(void **state)
{
    (void)state;
    connect_ok("FW_TEST_USER_MD5", "FW_TEST_PASS_MD5", FW__AUTH_MD5, false);
}

static void test_scram_user_over_unix_and_tcp(void **state)
{
    (void)state;
    connect_ok("FW_TEST_USER_SCRAM", "FW_TEST_PASS_SCRAM", FW__AUTH_SCRAM, false);
    connect_ok("FW_TEST_USER_SCRAM", "FW_TEST_PASS_SCRAM", FW__AUTH_SCRAM, true);
}

static void test_wrong_password_gives_28p01(void **state)
{
    (void)state;
    const char *users[] = {"FW_TEST_USER_PASSWORD", "FW_TEST_USER_MD5", "FW_TEST_USER_SCRAM"};
    for (int i = 0; i < 3; i++) {
        fw__startup_t su;
        fw__startup_opts_t o = opts_for(users[i], NULL);
        o.password = "definitely-not-the-password";
        int fd = unix_fd();
        assert_int_equal(run_startup(fd, &su, &o), FW__SU_FAILED);
        assert_int_equal(su.err, FW_EAUTH);
        assert_true(su.have_server_error);
        assert_string_equal(su.server_error.sqlstate, "28P01");
        assert_non_null(strstr(fw__startup_error(&su), "password authentication failed"));
        fw__startup_free(&su);
        close(fd);
    }
}

static void test_require_auth_scram_refuses_the_md5_user_without_sending_a_password(void **state)
{
    (void)state;
    fw__startup_t su;
    fw__startup_opts_t o = opts_for("FW_TEST_USER_MD5", "FW_TEST_PASS_MD5");
    o.restrict_auth = true;
    o.auth_required = true;
    o.allowed = FW__SU_ALLOW(FW__PQ_AUTH_SASL);
    int fd = unix_fd();
    assert_int_equal(run_startup(fd, &su, &o), FW__SU_FAILED);
    assert_false(su.password_sent);
    assert_non_null(strstr(fw__startup_error(&su), "server requested a hashed password"));
    fw__startup_free(&su);
    close(fd);
}

static void test_channel_binding_require_fails_without_tls(void **state)
{
    (void)state;
    fw__startup_t su;
    fw__startup_opts_t o = opts_for("FW_TEST_USER_SCRAM", "FW_TEST_PASS_SCRAM");
    o.channel_binding = FW__CB_REQUIRE;
    int fd = unix_fd();
    assert_int_equal(run_startup(fd, &su, &o), FW__SU_FAILED);
    assert_false(su.password_sent);
    assert_non_null(strstr(fw__startup_error(&su), "SSL not in use"));
    fw__startup_free(&su);
    close(fd);
}

/* PostgreSQL 15 asked for 3.2: it negotiates down to 3.0 before authentication, and the
 * machine goes on at 3.0 (with a 4-byte key) through trust and through SCRAM. */
static void test_max_protocol_3_2_settles_on_3_0_with_postgresql_15(void **state)
{
    (void)state;
    const char *users[][2] = {{"FW_TEST_USER_TRUST", NULL},
                              {"FW_TEST_USER_SCRAM", "FW_TEST_PASS_SCRAM"}};
    for (int i = 0; i < 2; i++) {
        fw__startup_t su;
        fw__startup_opts_t o = opts_for(users[i][0], users[i][1]);
        o.max_protocol = FW__PQ_PROTOCOL_3_2;
        int fd = unix_fd();
        fw__su_result_t r = run_startup(fd, &su, &o);
        if (r != FW__SU_READY)
            fail_msg("%s: %s", o.user, fw__startup_error(&su));
        assert_true(su.negotiated);
        assert_int_equal(su.protocol, FW__PQ_PROTOCOL_3_0);
        assert_int_equal(su.key.len, 4);
        fw__startup_free(&su);
        close(fd);
    }
}

/* min_protocol_version=3.2 against a server that has 3.0 only: a clear failure, and the
 * attempt ends before any password is sent (negotiation comes first). */
static void test_min_protocol_3_2_fails_with_postgresql_15_before_any_password(void **state)
{
    (void)state;
    fw__startup_t su;
    fw__startup_opts_t o = opts_for("FW_TEST_USER_SCRAM", "FW_TEST_PASS_SCRAM");
    o.min_protocol = FW__PQ_PROTOCOL_3_2;
    o.max_protocol = FW__PQ_PROTOCOL_3_2;
    int fd = unix_fd();
    assert_int_equal(run_startup(fd, &su, &o), FW__SU_FAILED);
    assert_int_equal(su.err, FW_EPROTOCOL_VERSION);
    assert_false(su.password_sent);
    assert_string_equal(fw__startup_error(&su), "server only supports protocol version 3.0, but "
                                                "min_protocol_version was set to 3.2");
    fw__startup_free(&su);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trust_user_over_unix_socket),
        cmocka_unit_test(test_cleartext_password_user),
        cmocka_unit_test(test_md5_user),
        cmocka_unit_test(test_scram_user_over_unix_and_tcp),
        cmocka_unit_test(test_wrong_password_gives_28p01),
        cmocka_unit_test(test_require_auth_scram_refuses_the_md5_user_without_sending_a_password),
        cmocka_unit_test(test_channel_binding_require_fails_without_tls),
        cmocka_unit_test(test_max_protocol_3_2_settles_on_3_0_with_postgresql_15),
        cmocka_unit_test(test_min_protocol_3_2_fails_with_postgresql_15_before_any_password),
    };
    return cmocka_run_group_tests_name("lib_startup_live", tests, NULL, NULL);
}
