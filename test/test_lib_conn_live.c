/* SPDX-License-Identifier: MIT */
/*
 * Connections through the public API, in both run modes, against the harness's real
 * PostgreSQL 15 (every auth method over unix, TCP and TCP+TLS) and against a scripted fake
 * server for what a real one cannot do (test/fakepg.h). Every embedded-mode test ends with
 * uv_loop_close() == 0: no handle left behind.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <uv.h>

#include "fakepg.h"
#include "fwire.h"
#include "pq_plain.h"
#include "proto.h"

#include "live.h"

typedef struct idle_notify_s {
    int count;
    int32_t pid;
    char channel[32], payload[32];
    bool connected;
} idle_notify_t;

typedef struct result_s {
    int calls;
    int status;
    fw_error_t err;
    fw_conn_info_t info;
    char version[64], method[32], transport[8], tls[32];
    bool close_in_cb;
    int closed;
    int notices;
    bool have_server_version;
} result_t;

static void on_closed(fw_conn_t *c, void *ud)
{
    (void)c;
    result_t *r = ud;
    r->closed++;
}

static void on_connect(fw_conn_t *c, int status, const fw_error_t *err, void *ud)
{
    result_t *r = ud;
    r->calls++;
    r->status = status;
    if (err != NULL)
        r->err = *err;
    if (status == 0) {
        assert_int_equal(fw_conn_info(c, &r->info), 0);
        snprintf(r->version, sizeof(r->version), "%s", r->info.server_version_str);
        snprintf(r->method, sizeof(r->method), "%s", r->info.auth_method);
        snprintf(r->transport, sizeof(r->transport), "%s", r->info.transport);
        snprintf(r->tls, sizeof(r->tls), "%s", r->info.tls_version ? r->info.tls_version : "");
        r->have_server_version = fw_conn_parameter(c, "server_version") != NULL;
    }
    if (r->close_in_cb)
        fw_conn_close(c, on_closed, r); /* legal inside a callback */
}

static void on_notification(void *ud, int32_t pid, const char *channel, const char *payload)
{
    idle_notify_t *n = ud;
    n->pid = pid;
    snprintf(n->channel, sizeof(n->channel), "%s", channel);
    snprintf(n->payload, sizeof(n->payload), "%s", payload);
    n->count++;
}

static void on_notice(void *ud, const fw_notice_t *n)
{
    result_t *r = ud;
    assert_string_equal(n->message, "hello from a fake server");
    r->notices++;
}

/* Connects on a fresh loop, closes, and checks the loop ends clean. */
static void run(const char *conninfo, result_t *r)
{
    uv_loop_t loop;
    fw_conn_t *c;
    fw_conn_opts_t o;
    fw_error_t err;
    memset(r, 0, sizeof(*r));
    r->close_in_cb = true;
    assert_int_equal(uv_loop_init(&loop), 0);
    fw_conn_opts_init(&o);
    o.conninfo = conninfo;
    o.use_environment = false; /* hermetic: no PG* variables, no ~/.pgpass */
    o.notice_cb = on_notice;
    o.notice_ud = r;
    int rc = fw_conn_new(&c, &loop, &o, &err);
    if (rc < 0)
        fail_msg("fw_conn_new: %s", err.message);
    assert_int_equal(fw_conn_connect(c, on_connect, r), 0);
    assert_int_equal(r->calls, 0); /* never inside the call */
    assert_int_equal(fw_conn_connect(c, on_connect, r), FW_ESTATE);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(r->calls, 1);
    assert_int_equal(r->closed, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static char *
dsn(char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
    return buf;
}

static void fake_run(fakepg_t *f, const char *extra, result_t *r);

static void test_every_method_over_the_unix_socket(void **state)
{
    (void)state;
    static const struct {
        const char *user, *pass, *method;
    } cases[] = {{"FW_TEST_USER_TRUST", NULL, "trust"},
                 {"FW_TEST_USER_PASSWORD", "FW_TEST_PASS_PASSWORD", "password"},
                 {"FW_TEST_USER_MD5", "FW_TEST_PASS_MD5", "md5"},
                 {"FW_TEST_USER_SCRAM", "FW_TEST_PASS_SCRAM", "SCRAM-SHA-256"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char d[512];
        result_t r;
        run(dsn(d, sizeof(d), "host=%s port=%s dbname=%s user=%s password='%s'",
                env("FW_TEST_SOCKDIR"), env("FW_TEST_PORT"), env("FW_TEST_DBNAME"),
                env(cases[i].user), cases[i].pass ? env(cases[i].pass) : ""),
            &r);
        if (r.status != 0)
            fail_msg("%s: %s", cases[i].method, r.err.message);
        assert_string_equal(r.method, cases[i].method);
        assert_string_equal(r.transport, "unix");
        assert_string_equal(r.tls, "");
        assert_true(r.info.backend_pid > 0);
        assert_true(r.info.server_version >= 150000 && r.info.server_version < 160000);
        assert_true(r.have_server_version);
    }
}

static void test_tcp_without_tls_and_with_tls_modes(void **state)
{
    (void)state;
    char d[1024];
    result_t r;
    run(dsn(d, sizeof(d), "host=127.0.0.1 port=%s dbname=%s user=%s password=%s sslmode=disable",
            env("FW_TEST_PORT"), env("FW_TEST_DBNAME"), env("FW_TEST_USER_SCRAM"),
            env("FW_TEST_PASS_SCRAM")),
        &r);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.tls, "");
    assert_string_equal(r.method, "SCRAM-SHA-256");

    /* prefer (the default): TLS when the server offers it, and then SCRAM-SHA-256-PLUS */
    run(dsn(d, sizeof(d), "host=127.0.0.1 port=%s dbname=%s user=%s password=%s",
            env("FW_TEST_PORT"), env("FW_TEST_DBNAME"), env("FW_TEST_USER_SCRAM"),
            env("FW_TEST_PASS_SCRAM")),
        &r);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.tls, "TLSv1.3");
    assert_string_equal(r.method, "SCRAM-SHA-256-PLUS");
    assert_true(r.info.channel_binding);

    /* verify-full by name and by IP address (both are in the server certificate) */
    const char *hosts[] = {"localhost", "127.0.0.1"};
    for (int i = 0; i < 2; i++) {
        run(dsn(d, sizeof(d),
                "host=%s port=%s dbname=%s user=%s password=%s sslmode=verify-full "
                "sslrootcert=%s channel_binding=require",
                hosts[i], env("FW_TEST_PORT"), env("FW_TEST_DBNAME"), env("FW_TEST_USER_SCRAM"),
                env("FW_TEST_PASS_SCRAM"), env("FW_TEST_CA")),
            &r);
        if (r.status != 0)
            fail_msg("%s: %s", hosts[i], r.err.message);
        assert_string_equal(r.method, "SCRAM-SHA-256-PLUS");
    }

    /* the client certificate user authenticates without a password */
    run(dsn(d, sizeof(d),
            "host=localhost port=%s dbname=%s user=%s sslmode=verify-full sslrootcert=%s "
            "sslcert=%s sslkey=%s",
            env("FW_TEST_PORT"), env("FW_TEST_DBNAME"), env("FW_TEST_USER_CERT"), env("FW_TEST_CA"),
            env("FW_TEST_CLIENT_CERT"), env("FW_TEST_CLIENT_KEY")),
        &r);
    if (r.status != 0)
        fail_msg("cert: %s", r.err.message);
    assert_string_equal(r.method, "trust");
}

static void test_failures_carry_phase_code_and_sqlstate(void **state)
{
    (void)state;
    char d[1024];
    result_t r;
    /* a wrong password: 28P01 from the server */
    run(dsn(d, sizeof(d), "host=127.0.0.1 port=%s dbname=%s user=%s password=nope sslmode=disable",
            env("FW_TEST_PORT"), env("FW_TEST_DBNAME"), env("FW_TEST_USER_SCRAM")),
        &r);
    assert_int_equal(r.status, FW_EAUTH);
    assert_int_equal(r.err.phase, FW_PHASE_AUTH);
    assert_string_equal(r.err.sqlstate, "28P01");
    assert_non_null(strstr(r.err.message, "password authentication failed"));
    assert_null(strstr(r.err.message, "nope"));

    /* verify-full against a name the certificate lacks: the message names both */
    run(dsn(d, sizeof(d),
            "hostaddr=127.0.0.1 host=db.invalid port=%s dbname=%s user=%s password=x "
            "sslmode=verify-full sslrootcert=%s",
            env("FW_TEST_PORT"), env("FW_TEST_DBNAME"), env("FW_TEST_USER_SCRAM"),
            env("FW_TEST_CA")),
        &r);
    assert_int_equal(r.status, FW_ETLS);
    assert_int_equal(r.err.phase, FW_PHASE_TLS_HANDSHAKE);
    assert_non_null(strstr(r.err.message, "db.invalid"));
    assert_non_null(strstr(r.err.message, "localhost"));

    /* a CA that did not sign the server certificate */
    run(dsn(d, sizeof(d),
            "host=localhost port=%s dbname=%s user=%s password=x sslmode=verify-ca sslrootcert=%s",
            env("FW_TEST_PORT"), env("FW_TEST_DBNAME"), env("FW_TEST_USER_SCRAM"),
            env("FW_TEST_OTHER_CA")),
        &r);
    assert_int_equal(r.status, FW_ETLS);

    /* channel_binding=require without TLS fails before a password leaves */
    run(dsn(d, sizeof(d),
            "host=127.0.0.1 port=%s dbname=%s user=%s password=%s sslmode=disable "
            "channel_binding=require",
            env("FW_TEST_PORT"), env("FW_TEST_DBNAME"), env("FW_TEST_USER_SCRAM"),
            env("FW_TEST_PASS_SCRAM")),
        &r);
    assert_int_equal(r.status, FW_EAUTH);
    assert_non_null(strstr(r.err.message, "channel binding required"));

    /* nothing listens on port 1 */
    run("host=127.0.0.1 port=1 dbname=x user=x sslmode=disable", &r);
    assert_int_equal(r.status, UV_ECONNREFUSED);
    assert_int_equal(r.err.phase, FW_PHASE_CONNECT);
    assert_non_null(strstr(r.err.message, "connection refused"));
}

static void test_hosts_are_tried_in_order_and_every_failure_is_kept(void **state)
{
    (void)state;
    char d[1024];
    result_t r;
    run(dsn(d, sizeof(d), "host=127.0.0.1,/nonexistent,%s port=1,2,%s dbname=%s user=%s",
            env("FW_TEST_SOCKDIR"), env("FW_TEST_PORT"), env("FW_TEST_DBNAME"),
            env("FW_TEST_USER_TRUST")),
        &r);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.transport, "unix");
    run("host=127.0.0.1,/nonexistent port=1,2 dbname=x user=x", &r);
    assert_int_not_equal(r.status, 0);
    assert_non_null(strstr(r.err.message, "port 1 failed"));
    assert_non_null(strstr(r.err.message, "/nonexistent/.s.PGSQL.2"));
}

static void test_invalid_options_fail_before_any_socket(void **state)
{
    (void)state;
    uv_loop_t loop;
    fw_error_t err;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_null(live_conn_new_econfig(&loop, "host=x bogus=1", &err));
    assert_int_equal(err.phase, FW_PHASE_CONFIG);
    assert_non_null(strstr(err.message, "bogus"));
    /* a string holding a password is never quoted back */
    live_conn_new_econfig(&loop, "host=x bogus=1 password=hunter2", &err);
    assert_true(err.message[0] != '\0');
    assert_null(strstr(err.message, "hunter2"));
    live_conn_new_econfig(&loop, "sslmode=verify-full host=x", &err);
    fw_conn_opts_t o;
    fw_conn_opts_init(&o);
    o.use_environment = false;
    o.conninfo = "sslmode=verify-full host=x";
    assert_int_equal(fw_conn_new(NULL, &loop, &o, &err), FW_EINVAL);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* Each password method x (unix, TCP, TCP+TLS in every sslmode that applies). */
static void test_method_transport_and_sslmode_matrix(void **state)
{
    (void)state;
    static const struct {
        const char *user, *pass, *method, *plus_method;
    } users[] = {
        {"FW_TEST_USER_TRUST", NULL, "trust", "trust"},
        {"FW_TEST_USER_PASSWORD", "FW_TEST_PASS_PASSWORD", "password", "password"},
        {"FW_TEST_USER_MD5", "FW_TEST_PASS_MD5", "md5", "md5"},
        {"FW_TEST_USER_SCRAM", "FW_TEST_PASS_SCRAM", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"}};
    static const struct {
        const char *host, *mode;
        bool tls;
    } ways[] = {{"SOCKDIR", "disable", false},    {"SOCKDIR", "require", false},
                {"127.0.0.1", "disable", false},  {"127.0.0.1", "allow", false},
                {"127.0.0.1", "prefer", true},    {"127.0.0.1", "require", true},
                {"localhost", "verify-ca", true}, {"localhost", "verify-full", true},
                {"::1", "verify-full", true}};
    for (size_t u = 0; u < sizeof(users) / sizeof(users[0]); u++) {
        for (size_t w = 0; w < sizeof(ways) / sizeof(ways[0]); w++) {
            const char *host =
                strcmp(ways[w].host, "SOCKDIR") == 0 ? env("FW_TEST_SOCKDIR") : ways[w].host;
            const char *h6 = getenv("FW_TEST_HOST6");
            if (strcmp(host, "::1") == 0 && (h6 == NULL || h6[0] == '\0'))
                continue; /* no IPv6 on this machine */
            char d[1024];
            result_t r;
            run(dsn(d, sizeof(d),
                    "host=%s port=%s dbname=%s user=%s password='%s' sslmode=%s sslrootcert=%s",
                    host, env("FW_TEST_PORT"), env("FW_TEST_DBNAME"), env(users[u].user),
                    users[u].pass ? env(users[u].pass) : "", ways[w].mode, env("FW_TEST_CA")),
                &r);
            if (r.status != 0)
                fail_msg("%s over %s sslmode=%s: %s", users[u].method, host, ways[w].mode,
                         r.err.message);
            assert_string_equal(r.tls, ways[w].tls ? "TLSv1.3" : "");
            assert_string_equal(r.method, ways[w].tls ? users[u].plus_method : users[u].method);
        }
    }
}

/* pg_hba.conf accepts fw_sslonly over hostssl only: disable fails with 28000, allow retries
 * over TLS, require succeeds. */
static void test_ssl_only_user_and_the_allow_retry(void **state)
{
    (void)state;
    const char *modes[] = {"disable", "allow", "require"};
    for (int i = 0; i < 3; i++) {
        char d[1024];
        result_t r;
        run(dsn(d, sizeof(d), "host=127.0.0.1 port=%s dbname=%s user=%s password=%s sslmode=%s",
                env("FW_TEST_PORT"), env("FW_TEST_DBNAME"), env("FW_TEST_USER_SSLONLY"),
                env("FW_TEST_PASS_SSLONLY"), modes[i]),
            &r);
        if (i == 0) {
            assert_int_equal(r.status, FW_EAUTH);
            assert_string_equal(r.err.sqlstate, "28000");
        } else {
            if (r.status != 0)
                fail_msg("sslmode=%s: %s", modes[i], r.err.message);
            assert_string_equal(r.tls, "TLSv1.3");
        }
    }
}

typedef struct hooks_s {
    char types[64];
    size_t ntypes;
    bool saw_ssl_request, saw_startup, password_redacted, leaked;
    int logs;
    bool log_connected, log_tls;
    const char *password;
} hooks_t;

static void on_trace(void *ud, const fw_trace_t *t)
{
    hooks_t *h = ud;
    if (h->ntypes + 2 < sizeof(h->types)) {
        h->types[h->ntypes++] = t->direction;
        h->types[h->ntypes++] = t->type ? (char)t->type : '0';
        h->types[h->ntypes] = '\0';
    }
    if (t->direction == '>' && t->type == 0 && t->length == 8)
        h->saw_ssl_request = true;
    if (t->direction == '>' && t->type == 0 && t->length > 8)
        h->saw_startup = true;
    if (t->type == 'p')
        h->password_redacted = t->body == NULL;
    if (t->body != NULL && t->length > 4 && h->password != NULL) {
        size_t pl = strlen(h->password);
        for (size_t i = 0; i + pl <= t->length - 4; i++)
            if (memcmp(t->body + i, h->password, pl) == 0)
                h->leaked = true;
    }
}

static void on_log(void *ud, fw_log_level_t level, const char *line)
{
    hooks_t *h = ud;
    (void)level;
    h->logs++;
    if (strstr(line, "connected to") != NULL)
        h->log_connected = true;
    if (strstr(line, "TLS established") != NULL)
        h->log_tls = true;
}

/* The log and trace hooks see every step and message, with secrets redacted. */
static void test_log_and_trace_hooks_see_every_message_without_secrets(void **state)
{
    (void)state;
    const char *modes[] = {"sslmode=verify-full", "sslmode=disable"};
    for (int i = 0; i < 2; i++) {
        uv_loop_t loop;
        fw_conn_t *c;
        fw_conn_opts_t o;
        result_t r;
        hooks_t h;
        char d[1024];
        memset(&r, 0, sizeof(r));
        memset(&h, 0, sizeof(h));
        r.close_in_cb = true;
        h.password = env("FW_TEST_PASS_PASSWORD");
        assert_int_equal(uv_loop_init(&loop), 0);
        fw_conn_opts_init(&o);
        o.use_environment = false;
        o.trace_cb = on_trace;
        o.trace_ud = &h;
        o.log_cb = on_log;
        o.log_ud = &h;
        o.conninfo = dsn(d, sizeof(d),
                         "host=localhost port=%s dbname=%s user=%s password=%s sslrootcert=%s %s",
                         env("FW_TEST_PORT"), env("FW_TEST_DBNAME"), env("FW_TEST_USER_PASSWORD"),
                         h.password, env("FW_TEST_CA"), modes[i]);
        assert_int_equal(fw_conn_new(&c, &loop, &o, NULL), 0);
        assert_int_equal(fw_conn_connect(c, on_connect, &r), 0);
        assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
        assert_int_equal(uv_loop_close(&loop), 0);
        if (r.status != 0)
            fail_msg("%s", r.err.message);
        assert_true(h.saw_startup);
        assert_int_equal(h.saw_ssl_request, i == 0);
        assert_true(h.password_redacted); /* the cleartext password message, body hidden */
        assert_false(h.leaked);
        assert_true(h.log_connected);
        assert_int_equal(h.log_tls, i == 0);
        /* ... StartupMessage, cleartext request, password, AuthenticationOk, ..., Terminate */
        assert_non_null(strstr(h.types, ">0<R>p<R"));
        assert_non_null(strstr(h.types, "<Z>X"));
    }
}

/* Runs one statement as the cluster's superuser over a plain socket (test code, with proto/). */
static void admin_query(const char *sql)
{
    fw__pq_buf_t b;
    fw__pq_reader_t r;
    fw__pq_msg_t m;
    uint8_t buf[8192];
    int fd = plain_open_unix(env("FW_TEST_SOCKDIR"), env("FW_TEST_PORT"));
    assert_true(fd >= 0);
    fw__pq_buf_init(&b, NULL);
    fw__pq_reader_init(&r, NULL, NULL);
    const char *kv[] = {"user", env("FW_TEST_ADMIN"), "database", env("FW_TEST_DBNAME"), NULL};
    assert_int_equal(fw__pq_put_startup(&b, kv), 0);
    assert_int_equal(fw__pq_put_query(&b, sql), 0);
    assert_int_equal(plain_send_all(fd, b.data, b.len), 0);
    int zs = 0;
    while (zs < 2) { /* one ReadyForQuery after startup, one after the query */
        int rc = fw__pq_reader_next(&r, &m);
        assert_true(rc >= 0);
        if (rc == 1) {
            zs += m.type == 'Z';
            continue;
        }
        ssize_t n = plain_recv(fd, buf, sizeof(buf));
        assert_true(n > 0);
        assert_int_equal(fw__pq_reader_feed(&r, buf, (size_t)n), 0);
    }
    fw__pq_buf_free(&b);
    fw__pq_reader_free(&r);
    close(fd);
}

typedef struct idle_s {
    bool connected, ended, notified;
    int32_t pid;
    char channel[64], payload[64];
} idle_t;

static void idle_log(void *ud, fw_log_level_t level, const char *line)
{
    idle_t *i = ud;
    if (level == FW_LOG_WARNING && strstr(line, "ended the idle connection") != NULL &&
        strstr(line, "terminating connection due to administrator command") != NULL)
        i->ended = true;
}

static void idle_connected(fw_conn_t *c, int status, const fw_error_t *err, void *ud)
{
    idle_t *i = ud;
    fw_conn_info_t info;
    if (status != 0)
        fail_msg("%s", err->message);
    assert_int_equal(fw_conn_info(c, &info), 0);
    i->pid = info.backend_pid;
    i->connected = true;
}

static void idle_tick(uv_timer_t *t)
{
    idle_t *i = t->data;
    if (i->ended)
        uv_stop(t->loop);
}

/* Reading while idle: an administrator's pg_terminate_backend reaches the connection at once as
 * an asynchronous FATAL, without any query being sent. */
static void test_an_asynchronous_fatal_while_idle_is_seen_at_once(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_timer_t timer;
    fw_conn_t *c;
    fw_conn_opts_t o;
    idle_t i;
    char d[512], sql[128];
    memset(&i, 0, sizeof(i));
    assert_int_equal(uv_loop_init(&loop), 0);
    fw_conn_opts_init(&o);
    o.use_environment = false;
    o.log_cb = idle_log;
    o.log_ud = &i;
    o.conninfo = dsn(d, sizeof(d), "host=%s port=%s dbname=%s user=%s", env("FW_TEST_SOCKDIR"),
                     env("FW_TEST_PORT"), env("FW_TEST_DBNAME"), env("FW_TEST_USER_TRUST"));
    assert_int_equal(fw_conn_new(&c, &loop, &o, NULL), 0);
    assert_int_equal(fw_conn_connect(c, idle_connected, &i), 0);
    while (!i.connected)
        assert_int_not_equal(uv_run(&loop, UV_RUN_ONCE), 0);
    snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%d)", (int)i.pid);
    uint64_t t0 = uv_hrtime();
    admin_query(sql);
    uv_timer_init(&loop, &timer);
    timer.data = &i;
    uv_timer_start(&timer, idle_tick, 1, 1);
    while (!i.ended && uv_hrtime() - t0 < 5000000000ull)
        uv_run(&loop, UV_RUN_ONCE);
    assert_true(i.ended);
    assert_true((double)(uv_hrtime() - t0) / 1e9 < 2.0);
    uv_close((uv_handle_t *)&timer, NULL);
    fw_conn_close(c, NULL, NULL);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- hostile servers ---------------------------------------------------------------------- */

static void fake_run(fakepg_t *f, const char *extra, result_t *r)
{
    char d[512];
    assert_int_equal(fakepg_start(f), 0);
    run(dsn(d, sizeof(d), "host=127.0.0.1 port=%d dbname=x user=u password=pw %s", f->port, extra),
        r);
    fakepg_stop(f);
}

/* CVE-2021-23222: bytes queued behind the 'S' must not be read as server messages. */
static void test_plaintext_injected_after_s_is_refused(void **state)
{
    (void)state;
    static const uint8_t reply[] = {'S', 'R', 0, 0, 0, 8, 0, 0, 0, 0, 'Z', 0, 0, 0, 5, 'I'};
    fakepg_t f;
    result_t r;
    memset(&f, 0, sizeof(f));
    f.ssl_reply = reply;
    f.ssl_reply_len = sizeof(reply);
    fake_run(&f, "sslmode=require", &r);
    assert_int_equal(r.err.phase, FW_PHASE_SSL_RESPONSE);
    assert_non_null(strstr(r.err.message, "unencrypted data after SSL response"));
}

/* CVE-2024-10977: the server's text in an 'E' answer to SSLRequest is never shown. */
static void test_error_reply_to_ssl_request_is_never_echoed(void **state)
{
    (void)state;
    uint8_t reply[300];
    const char *lie = "Mnothing to see here, your balance is 1000000";
    reply[0] = 'E';
    size_t n = strlen(lie) + 1;
    reply[1] = 0;
    reply[2] = 0;
    reply[3] = 0;
    reply[4] = (uint8_t)(n + 5);
    memcpy(reply + 5, lie, n);
    reply[5 + n] = 0;
    fakepg_t f;
    result_t r;
    memset(&f, 0, sizeof(f));
    f.ssl_reply = reply;
    f.ssl_reply_len = 6 + n;
    f.close_after = true;
    fake_run(&f, "sslmode=prefer", &r);
    assert_int_not_equal(r.status, 0);
    assert_non_null(strstr(r.err.message, "server sent an error response during SSL exchange"));
    assert_null(strstr(r.err.message, "balance"));
}

static void test_n_reply_under_require_fails(void **state)
{
    (void)state;
    static const uint8_t reply[] = {'N'};
    fakepg_t f;
    result_t r;
    memset(&f, 0, sizeof(f));
    f.ssl_reply = reply;
    f.ssl_reply_len = 1;
    fake_run(&f, "sslmode=require", &r);
    assert_int_not_equal(r.status, 0);
    assert_non_null(strstr(r.err.message, "SSL"));
}

/* The fake server asks for a cleartext password; with SCRAM required no 'p' may be sent. */
static void test_cleartext_request_under_require_auth_sends_no_password(void **state)
{
    (void)state;
    static const uint8_t reply[] = {'R', 0, 0, 0, 8, 0, 0, 0, 3};
    const char *policies[] = {"sslmode=disable require_auth=scram-sha-256",
                              "sslmode=disable channel_binding=require"};
    for (int i = 0; i < 2; i++) {
        fakepg_t f;
        result_t r;
        memset(&f, 0, sizeof(f));
        f.startup_reply = reply;
        f.startup_reply_len = sizeof(reply);
        fake_run(&f, policies[i], &r);
        assert_int_equal(r.status, FW_EAUTH);
        assert_true(f.got_startup);
        assert_false(fakepg_client_sent(&f, 'p'));
    }
}

static void test_a_notice_during_startup_reaches_the_hook(void **state)
{
    (void)state;
    static const uint8_t reply[] = {
        'N', 0,   0,   0,   39,  'S', 'N', 'O', 'T', 'I', 'C', 'E', 0,   'M', 'h', 'e', 'l',
        'l', 'o', ' ', 'f', 'r', 'o', 'm', ' ', 'a', ' ', 'f', 'a', 'k', 'e', ' ', 's', 'e',
        'r', 'v', 'e', 'r', 0,   0,   'R', 0,   0,   0,   8,   0,   0,   0,   0,   'K', 0,
        0,   0,   12,  0,   0,   0,   7,   0,   0,   0,   9,   'Z', 0,   0,   0,   5,   'I'};
    fakepg_t f;
    result_t r;
    memset(&f, 0, sizeof(f));
    f.startup_reply = reply;
    f.startup_reply_len = sizeof(reply);
    fake_run(&f, "sslmode=disable", &r);
    if (r.status != 0)
        fail_msg("%s", r.err.message);
    assert_int_equal(r.notices, 1);
    assert_int_equal(r.info.backend_pid, 7);
    assert_true(fakepg_client_sent(&f, 'X')); /* Terminate on close */
}

static void notify_connected(fw_conn_t *c, int status, const fw_error_t *err, void *ud)
{
    idle_notify_t *n = ud;
    (void)c;
    if (status != 0)
        fail_msg("%s", err->message);
    n->connected = true;
}

/* A NotificationResponse on an idle connection reaches the hook, escaped. */
static void test_a_notification_while_idle_reaches_the_hook(void **state)
{
    (void)state;
    static const uint8_t ready[] = {'R', 0, 0, 0, 8, 0, 0, 0, 0,   'K', 0, 0, 0, 12,
                                    0,   0, 0, 7, 0, 0, 0, 9, 'Z', 0,   0, 0, 5, 'I'};
    static const uint8_t note[] = {'A', 0,   0,   0, 18,  0,   0,    0,   42, 'c',
                                   'h', 'a', 'n', 0, 'h', 'i', '\n', '!', 0};
    fakepg_t f;
    uv_loop_t loop;
    fw_conn_t *c;
    fw_conn_opts_t o;
    idle_notify_t n;
    char d[256];
    memset(&f, 0, sizeof(f));
    memset(&n, 0, sizeof(n));
    f.startup_reply = ready;
    f.startup_reply_len = sizeof(ready);
    f.late_reply = note;
    f.late_reply_len = sizeof(note);
    assert_int_equal(fakepg_start(&f), 0);
    assert_int_equal(uv_loop_init(&loop), 0);
    fw_conn_opts_init(&o);
    o.use_environment = false;
    o.notification_cb = on_notification;
    o.notification_ud = &n;
    o.conninfo =
        dsn(d, sizeof(d), "host=127.0.0.1 port=%d dbname=x user=u sslmode=disable", f.port);
    assert_int_equal(fw_conn_new(&c, &loop, &o, NULL), 0);
    assert_int_equal(fw_conn_connect(c, notify_connected, &n), 0);
    uint64_t t0 = uv_hrtime();
    while (n.count == 0 && uv_hrtime() - t0 < 5000000000ull)
        uv_run(&loop, UV_RUN_ONCE);
    assert_true(n.connected);
    assert_int_equal(n.count, 1);
    assert_int_equal(n.pid, 42);
    assert_string_equal(n.channel, "chan");
    assert_string_equal(n.payload, "hi\\x0a!");
    fw_conn_close(c, NULL, NULL);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
    fakepg_stop(&f);
}

static void idle_status_cb(fw_conn_t *c, int status, void *ud)
{
    (void)c;
    int *st = ud;
    *st = status;
}

static void encoding_log(void *ud, fw_log_level_t level, const char *line)
{
    if (level == FW_LOG_WARNING && strstr(line, "client_encoding") != NULL)
        snprintf(ud, 256, "%s", line);
}

/* A ParameterStatus switching client_encoding away from UTF8 while the connection is idle
 * breaks it at once (issue 17): the next query would read text that is not UTF-8 JSON. A
 * change to another spelling of UTF-8 is harmless. */
static void test_client_encoding_change_while_idle_breaks_the_connection(void **state)
{
    (void)state;
    static const uint8_t ready[] = {'R', 0, 0, 0, 8, 0, 0, 0, 0,   'K', 0, 0, 0, 12,
                                    0,   0, 0, 7, 0, 0, 0, 9, 'Z', 0,   0, 0, 5, 'I'};
    static const uint8_t latin1[] = {'S', 0,   0,   0,   27,  'c', 'l', 'i', 'e', 'n',
                                     't', '_', 'e', 'n', 'c', 'o', 'd', 'i', 'n', 'g',
                                     0,   'L', 'A', 'T', 'I', 'N', '1', 0};
    static const uint8_t utf8[] = {'S', 0,   0,   0,   25,  'c', 'l', 'i', 'e', 'n',
                                   't', '_', 'e', 'n', 'c', 'o', 'd', 'i', 'n', 'g',
                                   0,   'u', 't', 'f', '8', 0};
    for (int round = 0; round < 2; round++) {
        fakepg_t f;
        uv_loop_t loop;
        fw_conn_t *c;
        fw_conn_opts_t o;
        idle_notify_t n;
        char d[256], warning[256] = "";
        memset(&f, 0, sizeof(f));
        memset(&n, 0, sizeof(n));
        f.startup_reply = ready;
        f.startup_reply_len = sizeof(ready);
        f.late_reply = round == 0 ? latin1 : utf8;
        f.late_reply_len = round == 0 ? sizeof(latin1) : sizeof(utf8);
        assert_int_equal(fakepg_start(&f), 0);
        assert_int_equal(uv_loop_init(&loop), 0);
        fw_conn_opts_init(&o);
        o.use_environment = false;
        o.log_cb = encoding_log;
        o.log_ud = warning;
        o.conninfo =
            dsn(d, sizeof(d), "host=127.0.0.1 port=%d dbname=x user=u sslmode=disable", f.port);
        assert_int_equal(fw_conn_new(&c, &loop, &o, NULL), 0);
        assert_int_equal(fw_conn_connect(c, notify_connected, &n), 0);
        uint64_t t0 = uv_hrtime();
        while (uv_hrtime() - t0 < 400000000ull) /* the late reply comes 100 ms after */
            uv_run(&loop, UV_RUN_NOWAIT);
        assert_true(n.connected);
        int st = 1;
        assert_int_equal(fw_conn_when_idle(c, idle_status_cb, &st), 0);
        t0 = uv_hrtime();
        while (st == 1 && uv_hrtime() - t0 < 5000000000ull)
            uv_run(&loop, UV_RUN_NOWAIT); /* ONCE would block in the poll after the timer */
        if (round == 0) {
            assert_int_equal(st, FW_ESTATE);
            assert_non_null(strstr(warning, "\"LATIN1\""));
        } else {
            assert_int_equal(st, 0);
            assert_string_equal(warning, "");
        }
        fw_conn_close(c, NULL, NULL);
        assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
        assert_int_equal(uv_loop_close(&loop), 0);
        fakepg_stop(&f);
    }
}

/* A server that accepts and then says nothing: connect_timeout names the phase. */
static void test_silent_server_times_out_naming_the_phase(void **state)
{
    (void)state;
    const char *modes[] = {"sslmode=prefer connect_timeout=2", "sslmode=disable connect_timeout=2"};
    const fw_phase_t phases[] = {FW_PHASE_SSL_RESPONSE, FW_PHASE_AUTH};
    for (int i = 0; i < 2; i++) {
        fakepg_t f;
        result_t r;
        memset(&f, 0, sizeof(f));
        uint64_t t0 = uv_hrtime();
        fake_run(&f, modes[i], &r);
        double secs = (double)(uv_hrtime() - t0) / 1e9;
        assert_int_equal(r.status, FW_ETIMEDOUT);
        assert_int_equal(r.err.phase, phases[i]);
        assert_non_null(strstr(r.err.message, "timeout expired"));
        assert_true(secs >= 1.9 && secs < 10);
    }
}

/* CVE-2026-42198: a connect that times out during the key derivation must stop burning CPU.
 * The fake server demands 50,000,000 iterations (seconds of PBKDF2; the cap is raised to allow
 * it); connect_timeout=2 ends the attempt and the derivation stops within milliseconds. */
static void test_timeout_during_key_derivation_stops_the_cpu_work(void **state)
{
    (void)state;
    fakepg_t f;
    uv_loop_t loop;
    fw_conn_t *c;
    fw_conn_opts_t o;
    result_t r;
    char d[256];
    memset(&f, 0, sizeof(f));
    memset(&r, 0, sizeof(r));
    r.close_in_cb = true;
    f.scram_iterations = 50000000;
    assert_int_equal(fakepg_start(&f), 0);
    assert_int_equal(uv_loop_init(&loop), 0);
    fw_conn_opts_init(&o);
    o.use_environment = false;
    o.scram_max_iterations = 100000000;
    o.conninfo = dsn(d, sizeof(d),
                     "host=127.0.0.1 port=%d dbname=x user=u password=pw sslmode=disable "
                     "connect_timeout=2",
                     f.port);
    assert_int_equal(fw_conn_new(&c, &loop, &o, NULL), 0);
    uv_rusage_t ru0, ru1;
    uv_getrusage(&ru0);
    uint64_t t0 = uv_hrtime();
    assert_int_equal(fw_conn_connect(c, on_connect, &r), 0);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    double wall = (double)(uv_hrtime() - t0) / 1e9;
    uv_getrusage(&ru1);
    double cpu = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) +
                 (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e6;
    assert_int_equal(uv_loop_close(&loop), 0);
    fakepg_stop(&f);
    assert_int_equal(r.status, FW_ETIMEDOUT);
    assert_int_equal(r.err.phase, FW_PHASE_AUTH);
    /* the loop ends right after the timeout: it waited for the stopped job, not the full
     * derivation, and the CPU spent is the 2 s of derivation before the timeout, not ~6 s */
    assert_true(wall < 3.0);
    assert_true(cpu < 2.8);
}

/* Hostile SCRAM servers over a real socket: each ends the attempt with FW_EAUTH before the
 * client sends a proof. */
static void test_hostile_scram_servers_are_refused(void **state)
{
    (void)state;
    static const struct {
        unsigned long iterations;
        bool foreign, ok_early;
        const char *words;
    } cases[] = {{2147483647ul, false, false, "2147483647"},
                 {4096, true, false, "nonce"},
                 {4096, false, true, "before completing SCRAM"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fakepg_t f;
        result_t r;
        memset(&f, 0, sizeof(f));
        f.scram_iterations = cases[i].iterations;
        f.scram_foreign_nonce = cases[i].foreign;
        f.scram_ok_early = cases[i].ok_early;
        uint64_t t0 = uv_hrtime();
        fake_run(&f, "sslmode=disable", &r);
        assert_int_equal(r.status, FW_EAUTH);
        if (strstr(r.err.message, cases[i].words) == NULL)
            fail_msg("case %zu: %s", i, r.err.message);
        assert_false(fakepg_client_sent(&f, 'p'));           /* no SASLResponse with a proof */
        assert_true((double)(uv_hrtime() - t0) / 1e9 < 1.0); /* i=2^31-1 refused at once */
    }
}

/* MD5 requested under require_auth=scram-sha-256: no password message leaves. */
static void test_md5_request_under_require_auth_sends_no_password(void **state)
{
    (void)state;
    static const uint8_t reply[] = {'R', 0, 0, 0, 12, 0, 0, 0, 5, 1, 2, 3, 4};
    fakepg_t f;
    result_t r;
    memset(&f, 0, sizeof(f));
    f.startup_reply = reply;
    f.startup_reply_len = sizeof(reply);
    fake_run(&f, "sslmode=disable require_auth=scram-sha-256", &r);
    assert_int_equal(r.status, FW_EAUTH);
    assert_non_null(strstr(r.err.message, "hashed password"));
    assert_false(fakepg_client_sent(&f, 'p'));
}

/* ---- lifetime ------------------------------------------------------------------------------- */

static void test_close_before_the_connect_finishes_runs_both_callbacks_once(void **state)
{
    (void)state;
    uv_loop_t loop;
    fw_conn_t *c;
    fw_conn_opts_t o;
    result_t r;
    char d[512];
    memset(&r, 0, sizeof(r));
    assert_int_equal(uv_loop_init(&loop), 0);
    fw_conn_opts_init(&o);
    o.use_environment = false;
    o.conninfo = dsn(d, sizeof(d), "host=%s port=%s dbname=%s user=%s", env("FW_TEST_SOCKDIR"),
                     env("FW_TEST_PORT"), env("FW_TEST_DBNAME"), env("FW_TEST_USER_TRUST"));
    assert_int_equal(fw_conn_new(&c, &loop, &o, NULL), 0);
    assert_int_equal(fw_conn_connect(c, on_connect, &r), 0);
    fw_conn_close(c, on_closed, &r);
    assert_int_equal(r.calls, 1); /* the connect callback ran first, with FW_ECLOSED */
    assert_int_equal(r.status, FW_ECLOSED);
    fw_conn_close(c, on_closed, &r); /* harmless */
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.closed, 1);
    assert_int_equal(uv_loop_close(&loop), 0);

    /* a connection never started closes too */
    assert_int_equal(uv_loop_init(&loop), 0);
    memset(&r, 0, sizeof(r));
    assert_int_equal(fw_conn_new(&c, &loop, &o, NULL), 0);
    fw_conn_close(c, on_closed, &r);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(r.calls, 0);
    assert_int_equal(r.closed, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- threaded mode -------------------------------------------------------------------------- */

static void test_threaded_runtime_connects_and_closes(void **state)
{
    (void)state;
    fw_runtime_t *rt;
    fw_conn_t *c[3];
    fw_conn_opts_t o;
    fw_error_t err;
    char d[1024];
    assert_int_equal(fw_runtime_new(&rt), 0);
    fw_conn_opts_init(&o);
    o.use_environment = false;
    o.conninfo = dsn(d, sizeof(d),
                     "host=localhost port=%s dbname=%s user=%s password=%s sslmode=verify-full "
                     "sslrootcert=%s",
                     env("FW_TEST_PORT"), env("FW_TEST_DBNAME"), env("FW_TEST_USER_SCRAM"),
                     env("FW_TEST_PASS_SCRAM"), env("FW_TEST_CA"));
    for (int i = 0; i < 3; i++) {
        int rc = fw_conn_connect_sync(rt, &o, &c[i], &err);
        if (rc != 0)
            fail_msg("connect_sync: %s", err.message);
        fw_conn_info_t info;
        assert_int_equal(fw_conn_info(c[i], &info), 0);
        assert_string_equal(info.auth_method, "SCRAM-SHA-256-PLUS");
    }
    fw_conn_close_sync(c[0]);
    /* a failing connect answers with the error and leaks nothing */
    o.conninfo = "host=127.0.0.1 port=1 dbname=x user=x";
    fw_conn_t *bad = (fw_conn_t *)&err;
    assert_int_equal(fw_conn_connect_sync(rt, &o, &bad, &err), UV_ECONNREFUSED);
    assert_null(bad);
    o.conninfo = "bogus=1";
    assert_int_equal(fw_conn_connect_sync(rt, &o, &bad, &err), FW_ECONFIG);
    /* c[1] and c[2] are left open: fw_runtime_free closes them */
    fw_runtime_free(rt);
}

/* CPU time of this process (every thread), ns. */
static int64_t process_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* After a connect the loop thread polls for the caller's next command for a moment (runtime.c,
 * on_linger), then sleeps: an idle runtime costs no CPU. A linger that never ended would burn
 * a core here. */
/* A runtime and options for the trust user over the unix socket; the connection string is
 * written into d. */
static fw_runtime_t *trust_runtime(fw_conn_opts_t *o, char *d, size_t cap)
{
    fw_runtime_t *rt;
    assert_int_equal(fw_runtime_new(&rt), 0);
    fw_conn_opts_init(o);
    o->use_environment = false;
    o->conninfo = dsn(d, cap, "host=%s port=%s dbname=%s user=%s", env("FW_TEST_SOCKDIR"),
                      env("FW_TEST_PORT"), env("FW_TEST_DBNAME"), env("FW_TEST_USER_TRUST"));
    return rt;
}

static void test_an_idle_threaded_connection_costs_no_cpu_after_the_connect(void **state)
{
    (void)state;
    fw_conn_t *c = NULL;
    fw_conn_opts_t o;
    fw_error_t err;
    char d[1024];
    fw_runtime_t *rt = trust_runtime(&o, d, sizeof(d));
    for (int round = 0; round < 3; round++) {
        if (fw_conn_connect_sync(rt, &o, &c, &err) != 0)
            fail_msg("connect_sync: %s", err.message);
        struct timespec nap = {0, 20 * 1000000L}; /* the linger is 300 us at most */
        nanosleep(&nap, NULL);
        int64_t cpu0 = process_cpu_ns();
        struct timespec idle = {0, 300 * 1000000L};
        nanosleep(&idle, NULL);
        int64_t used = process_cpu_ns() - cpu0;
        fw_conn_close_sync(c);
        if (used > 60 * 1000000L)
            fail_msg("round %d: %lld ms of CPU in 300 ms of idleness", round,
                     (long long)(used / 1000000));
    }
    fw_runtime_free(rt);
}

/* Streams `relation` to the end on c (threaded); returns the rows, and in *first_cpu the process
 * CPU spent between the start and the first row. */
static int stream_all(fw_conn_t *c, const char *relation, int64_t *first_cpu)
{
    fw_query_t *q;
    assert_int_equal(fw_query_new(&q), 0);
    assert_int_equal(fw_query_relation(q, relation), 0);
    fw_stream_t *s = NULL;
    fw_error_t err;
    int64_t cpu0 = process_cpu_ns();
    if (fw_stream_start(c, q, NULL, NULL, &s, &err) != 0)
        fail_msg("start on %s: %s", relation, err.message);
    fw_query_free(q);
    fw_row_t row;
    int rc, rows = 0;
    while ((rc = fw_stream_next(s, &row, 10000)) == FW_ROW)
        if (rows++ == 0 && first_cpu != NULL)
            *first_cpu = process_cpu_ns() - cpu0;
    if (rc != FW_END)
        fail_msg("%s: %s (%s)", relation, fw_err_name(rc), fw_stream_error(s)->message);
    fw_stream_free(s);
    return rows;
}

/* After a query's send the loop thread watches the socket for a moment when the connection's
 * replies come fast (runtime.c, spin_reply): a reply that takes longer must not keep it
 * spinning. v_fixture_sleepy's reply comes after about a second (ten rows 100 ms apart, which
 * the server sends at the end); the spin is 300 us at most. With a spin that ran until the
 * reply came this failed (1,012 ms of CPU). */
static void test_a_slow_reply_on_a_warm_threaded_connection_costs_no_cpu(void **state)
{
    (void)state;
    fw_conn_t *c = NULL;
    fw_conn_opts_t o;
    fw_error_t err;
    char d[1024];
    fw_runtime_t *rt = trust_runtime(&o, d, sizeof(d));
    if (fw_conn_connect_sync(rt, &o, &c, &err) != 0)
        fail_msg("connect_sync: %s", err.message);
    /* the first query (not watched: a fresh backend), then two fast ones: the loop watches */
    for (int i = 0; i < 3; i++)
        assert_int_equal(stream_all(c, "v_fixture", NULL), 5);
    /* then slow ones: the first is watched (the last reply was fast) for 300 us, no longer */
    for (int i = 0; i < 2; i++) {
        int64_t used = -1;
        assert_int_equal(stream_all(c, "v_fixture_sleepy", &used), 10);
        if (used > 40 * 1000000L)
            fail_msg("slow query %d: %lld ms of CPU before a first row a second away", i,
                     (long long)(used / 1000000));
    }
    fw_conn_close_sync(c);
    fw_runtime_free(rt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_method_over_the_unix_socket),
        cmocka_unit_test(test_tcp_without_tls_and_with_tls_modes),
        cmocka_unit_test(test_failures_carry_phase_code_and_sqlstate),
        cmocka_unit_test(test_hosts_are_tried_in_order_and_every_failure_is_kept),
        cmocka_unit_test(test_invalid_options_fail_before_any_socket),
        cmocka_unit_test(test_method_transport_and_sslmode_matrix),
        cmocka_unit_test(test_log_and_trace_hooks_see_every_message_without_secrets),
        cmocka_unit_test(test_an_asynchronous_fatal_while_idle_is_seen_at_once),
        cmocka_unit_test(test_ssl_only_user_and_the_allow_retry),
        cmocka_unit_test(test_plaintext_injected_after_s_is_refused),
        cmocka_unit_test(test_error_reply_to_ssl_request_is_never_echoed),
        cmocka_unit_test(test_n_reply_under_require_fails),
        cmocka_unit_test(test_cleartext_request_under_require_auth_sends_no_password),
        cmocka_unit_test(test_a_notice_during_startup_reaches_the_hook),
        cmocka_unit_test(test_a_notification_while_idle_reaches_the_hook),
        cmocka_unit_test(test_client_encoding_change_while_idle_breaks_the_connection),
        cmocka_unit_test(test_hostile_scram_servers_are_refused),
        cmocka_unit_test(test_md5_request_under_require_auth_sends_no_password),
        cmocka_unit_test(test_silent_server_times_out_naming_the_phase),
        cmocka_unit_test(test_timeout_during_key_derivation_stops_the_cpu_work),
        cmocka_unit_test(test_close_before_the_connect_finishes_runs_both_callbacks_once),
        cmocka_unit_test(test_threaded_runtime_connects_and_closes),
        cmocka_unit_test(test_an_idle_threaded_connection_costs_no_cpu_after_the_connect),
        cmocka_unit_test(test_a_slow_reply_on_a_warm_threaded_connection_costs_no_cpu),
    };
    return cmocka_run_group_tests_name("lib_conn_live", tests, NULL, NULL);
}
