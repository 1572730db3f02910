/* SPDX-License-Identifier: MIT */
/*
 * Multi-host routing against scripted fake servers (test/fakepg.h), for what a real PostgreSQL
 * cannot be made to do: a server older than 14 that reports neither in_hot_standby nor
 * default_transaction_read_only and answers the check query (SHOW transaction_read_only,
 * SELECT pg_catalog.pg_is_in_recovery()) with a value, a NULL, an empty string, two rows or an
 * error; a host that accepts TCP and never answers; a server that answers SASL with garbage; a
 * host list of primaries only under prefer-standby.
 *
 * What must hold (libpq 16/17, RELIABILITY.md "Multi-host" and CVE-2018-10915): a server of the
 * wrong kind is told Terminate ('X') before its socket closes and the next host is tried, each
 * judged from scratch; an answer that does not prove the server is right refuses it with libpq's
 * sentence, never accepts it; the failure of the whole connect lists every host tried;
 * connect_timeout runs again for each address; an authentication failure ends the whole
 * connect (libpq), and require_auth is applied to every host. Every test runs fwire in embedded
 * mode on its own loop and ends with uv_loop_close() == 0.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "fakepg.h"
#include "fwire.h"

/* ---- building backend messages ----------------------------------------------------------- */

/* RowDescription of one text-format column. */
static void m_rowdesc(bb_t *b, const char *name, uint32_t oid)
{
    size_t at = msg_begin(b, 'T');
    bb_u16(b, 1);
    bb_str(b, name);
    bb_u32(b, 0);
    bb_u16(b, 0);
    bb_u32(b, oid);
    bb_u16(b, oid == 16 ? 1 : 0xffff);
    bb_u32(b, 0xffffffff);
    bb_u16(b, 0);
    msg_end(b, at);
}

/* What a PostgreSQL 13 reports at start-up: no in_hot_standby, no
 * default_transaction_read_only. Trust authentication. */
static void startup_pre14(bb_t *b)
{
    m_auth(b, 0);
    m_param(b, "server_version", "13.14");
    m_param(b, "server_encoding", "UTF8");
    m_param(b, "client_encoding", "UTF8");
    m_param(b, "standard_conforming_strings", "on");
    m_key(b);
    m_ready(b);
}

/* A PostgreSQL 16 that reports both settings ("on"/"off"). Trust authentication. */
static void startup_v16(bb_t *b, const char *in_hot_standby, const char *default_read_only)
{
    m_auth(b, 0);
    m_param(b, "server_version", "16.2");
    m_param(b, "client_encoding", "UTF8");
    m_param(b, "in_hot_standby", in_hot_standby);
    m_param(b, "default_transaction_read_only", default_read_only);
    m_key(b);
    m_ready(b);
}

/* The kinds of answer a fake server gives to the check query. */
typedef enum answer_e {
    ANS_VALUE, /* one row: value */
    ANS_NULL,  /* one row: SQL NULL */
    ANS_EMPTY, /* one row: "" */
    ANS_TWO,   /* two rows: value, value */
    ANS_ERROR, /* ErrorResponse, then ReadyForQuery */
    ANS_ZERO   /* no row */
} answer_t;

static const char Q_SHOW[] = "SHOW transaction_read_only";
static const char Q_RECOVERY[] = "SELECT pg_catalog.pg_is_in_recovery()";

/* The reply to the check query `q`, as a server would send it. */
static void check_answer(bb_t *b, const char *q, answer_t kind, const char *value)
{
    bool show = strcmp(q, Q_SHOW) == 0;
    if (kind == ANS_ERROR) {
        if (show)
            m_error(b, "ERROR", "42704", "unrecognized configuration parameter");
        else
            m_error(b, "ERROR", "42883", "function pg_catalog.pg_is_in_recovery() does not exist");
        m_ready(b);
        return;
    }
    if (show)
        m_rowdesc(b, "transaction_read_only", 25);
    else
        m_rowdesc(b, "pg_is_in_recovery", 16);
    int rows = 1;
    switch (kind) {
    case ANS_VALUE:
        m_row(b, value);
        break;
    case ANS_NULL:
        m_row(b, NULL);
        break;
    case ANS_EMPTY:
        m_row(b, "");
        break;
    case ANS_TWO:
        m_row(b, value);
        m_row(b, value);
        rows = 2;
        break;
    case ANS_ZERO:
        rows = 0;
        break;
    case ANS_ERROR:
        break;
    }
    char tag[32];
    if (show)
        snprintf(tag, sizeof(tag), "SHOW");
    else
        snprintf(tag, sizeof(tag), "SELECT %d", rows);
    m_complete(b, tag);
    m_ready(b);
}

static const uint8_t TERMINATE[] = {'X', 0, 0, 0, 4};

/* ---- fake servers ---------------------------------------------------------------------- */

#define NFAKE 3

/* Static: a failed assertion longjmps out while the fake servers' threads may still run. */
static fakepg_t g_fake[NFAKE];
static bb_t g_startup[NFAKE], g_answer[NFAKE];
static bool g_started[NFAKE];

static fakepg_t *fake(int i)
{
    fakepg_t *f = &g_fake[i];
    memset(f, 0, sizeof(*f));
    bb_free(&g_startup[i]);
    bb_free(&g_answer[i]);
    f->io_timeout_ms = (unsigned)(20000 * time_scale());
    return f;
}

/* A server older than 14 that answers the check query q as told. */
static fakepg_t *fake_pre14(int i, const char *q, answer_t kind, const char *value)
{
    fakepg_t *f = fake(i);
    startup_pre14(&g_startup[i]);
    check_answer(&g_answer[i], q, kind, value);
    f->startup_reply = g_startup[i].p;
    f->startup_reply_len = g_startup[i].len;
    f->query_reply = g_answer[i].p;
    f->query_reply_len = g_answer[i].len;
    f->query_simple = true;
    return f;
}

static fakepg_t *fake_v16(int i, const char *in_hot_standby, const char *default_read_only)
{
    fakepg_t *f = fake(i);
    startup_v16(&g_startup[i], in_hot_standby, default_read_only);
    f->startup_reply = g_startup[i].p;
    f->startup_reply_len = g_startup[i].len;
    return f;
}

/* A server starting up: it answers the start-up with FATAL 57P03. */
static void fake_starting_up(int i)
{
    fakepg_t *f = fake(i);
    m_error(&g_startup[i], "FATAL", "57P03", "the database system is starting up");
    f->startup_reply = g_startup[i].p;
    f->startup_reply_len = g_startup[i].len;
}

static void fake_start(int i)
{
    assert_int_equal(fakepg_start(&g_fake[i]), 0);
    g_started[i] = true;
}

static void fake_stop(int i)
{
    if (g_started[i])
        fakepg_stop(&g_fake[i]);
    g_started[i] = false;
}

/* Stops every fake server still running (a test that failed half-way leaves some). */
static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < NFAKE; i++) {
        fake_stop(i);
        bb_free(&g_startup[i]);
        bb_free(&g_answer[i]);
    }
    return 0;
}

/* Connection `conn` of fake i sent exactly Terminate after its script, then closed in order. */
static void expect_terminate_then_close(int i, unsigned conn)
{
    size_t n = 0;
    const uint8_t *p = fakepg_conn_got(&g_fake[i], conn, &n);
    if (n != sizeof(TERMINATE) || memcmp(p, TERMINATE, n) != 0)
        fail_msg("fake %d, connection %u: %zu bytes after the script, not exactly Terminate "
                 "(first byte 0x%02x)",
                 i, conn, n, n > 0 ? p[0] : 0);
    if (!g_fake[i].conn_eof[conn])
        fail_msg("fake %d, connection %u: the client did not close the socket in order", i, conn);
}

/* Fake i read exactly one simple Query, the text q, on its first connection. */
static void expect_one_query(int i, const char *q)
{
    const fakepg_t *f = &g_fake[i];
    assert_int_equal(f->nqueries, 1);
    assert_string_equal(f->queries[0].types, "Q");
    size_t n = f->queries[0].sent_len;
    assert_int_equal(n, 5 + strlen(q) + 1);
    assert_memory_equal(f->queries[0].sent + 5, q, strlen(q) + 1);
}

/* ---- the embedded-mode harness ------------------------------------------------------------ */

typedef struct h_s {
    uv_loop_t loop;
    fw_conn_t *conn;
    bool done;
    int status;
    fw_error_t err;
    uint64_t t0, t_done;
    int closed;
    char log[64][256];
    int nlog;
} h_t;

static h_t g_h;

static void on_log(void *ud, fw_log_level_t level, const char *line)
{
    (void)level;
    h_t *h = ud;
    if (h->nlog < (int)(sizeof(h->log) / sizeof(h->log[0])))
        snprintf(h->log[h->nlog++], sizeof(h->log[0]), "%s", line);
}

static void on_connect(fw_conn_t *c, int status, const fw_error_t *err, void *ud)
{
    (void)c;
    h_t *h = ud;
    h->done = true;
    h->t_done = uv_hrtime();
    h->status = status;
    if (err != NULL)
        h->err = *err;
}

static void on_closed(fw_conn_t *c, void *ud)
{
    (void)c;
    h_t *h = ud;
    h->closed++;
}

/* Connects with `dsn` (printf-style) and runs the loop until the connect callback ran (or the
 * bound passed: a failure). Returns the status. */
#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
static int
h_connect(const char *fmt, ...)
{
    h_t *h = &g_h;
    memset(h, 0, sizeof(*h));
    char dsn[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dsn, sizeof(dsn), fmt, ap);
    va_end(ap);
    assert_int_equal(uv_loop_init(&h->loop), 0);
    fw_conn_opts_t o;
    fw_conn_opts_init(&o);
    o.conninfo = dsn;
    o.use_environment = false;
    o.log_cb = on_log;
    o.log_ud = h;
    fw_error_t err;
    if (fw_conn_new(&h->conn, &h->loop, &o, &err) != 0)
        fail_msg("fw_conn_new: %s", err.message);
    h->t0 = uv_hrtime();
    assert_int_equal(fw_conn_connect(h->conn, on_connect, h), 0);
    uint64_t deadline = h->t0 + (uint64_t)(30e9 * time_scale());
    while (!h->done && uv_hrtime() < deadline)
        uv_run(&h->loop, UV_RUN_ONCE);
    if (!h->done)
        fail_msg("no connect callback within the bound");
    return h->status;
}

static double h_seconds(void)
{
    return (double)(g_h.t_done - g_h.t0) / 1e9;
}

/* Closes the connection and the loop, which must end clean. */
static void h_close(void)
{
    h_t *h = &g_h;
    fw_conn_close(h->conn, on_closed, h);
    h->conn = NULL;
    assert_int_equal(uv_run(&h->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(h->closed, 1);
    assert_int_equal(uv_loop_close(&h->loop), 0);
}

static bool h_logged(const char *needle)
{
    for (int i = 0; i < g_h.nlog; i++)
        if (strstr(g_h.log[i], needle) != NULL)
            return true;
    return false;
}

/* The connect succeeded, to fake i, and the facts are these. */
static void expect_connected_to(int i, fw_server_role_t role, bool read_only)
{
    h_t *h = &g_h;
    if (h->status != 0)
        fail_msg("connect failed (%s): %s", fw_err_name(h->status), h->err.message);
    fw_conn_info_t info;
    assert_int_equal(fw_conn_info(h->conn, &info), 0);
    assert_int_equal(info.port, g_fake[i].port);
    assert_string_equal(info.address, "127.0.0.1");
    assert_string_equal(info.auth_method, "trust");
    assert_int_equal(info.backend_pid, 4242);
    if (info.role != role)
        fail_msg("role %s, want %s", fw_server_role_name(info.role), fw_server_role_name(role));
    assert_int_equal(info.read_only, read_only);
    assert_int_equal(fw_conn_role(h->conn), role);
    assert_int_equal(fw_conn_read_only(h->conn), read_only);
}

/* "connection to server at "127.0.0.1", port N failed: why" for fake i. */
static void attempt_line(char *buf, size_t cap, int i, const char *why)
{
    snprintf(buf, cap, "connection to server at \"127.0.0.1\", port %d failed: %s", g_fake[i].port,
             why);
}

/* The connect failed with exactly this code, phase and message (one line per host). */
static void expect_failure(int code, fw_phase_t phase, const char *message)
{
    h_t *h = &g_h;
    if (h->status != code)
        fail_msg("status %s, want %s; message: %s", fw_err_name(h->status), fw_err_name(code),
                 h->err.message);
    assert_int_equal(h->err.code, code);
    if (h->err.phase != phase)
        fail_msg("phase %s, want %s", fw_phase_name(h->err.phase), fw_phase_name(phase));
    assert_string_equal(h->err.message, message);
}

/* ---- 1. a server that does not report what decides: the check query ------------------- */

typedef struct ask_row_s {
    const char *target;
    const char *a_value;   /* fake 0's answer */
    const char *a_why;     /* NULL: fake 0 is accepted; else libpq's reason for refusing it */
    const char *b_value;   /* fake 1's answer (used only when fake 0 is refused) */
    fw_server_role_t role; /* of the server connected to */
    bool read_only;
} ask_row_t;

static void test_a_pre14_server_is_asked_once_and_judged_by_its_answer(void **state)
{
    (void)state;
    static const ask_row_t rows[] = {
        {"read-write", "off", NULL, NULL, FW_ROLE_UNKNOWN, false},
        {"read-write", "on", "session is read-only", "off", FW_ROLE_UNKNOWN, false},
        {"read-only", "on", NULL, NULL, FW_ROLE_UNKNOWN, true},
        {"read-only", "off", "session is not read-only", "on", FW_ROLE_UNKNOWN, true},
        {"primary", "f", NULL, NULL, FW_ROLE_PRIMARY, false},
        {"primary", "t", "server is in hot standby mode", "f", FW_ROLE_PRIMARY, false},
        {"standby", "t", NULL, NULL, FW_ROLE_STANDBY, true},
        {"standby", "f", "server is not in hot standby mode", "t", FW_ROLE_STANDBY, true},
        {"prefer-standby", "t", NULL, NULL, FW_ROLE_STANDBY, true},
        {"prefer-standby", "f", "server is not in hot standby mode", "t", FW_ROLE_STANDBY, true},
    };
    for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
        const ask_row_t *row = &rows[r];
        print_message("target_session_attrs=%s, answers %s then %s\n", row->target, row->a_value,
                      row->b_value != NULL ? row->b_value : "-");
        bool rw = strcmp(row->target, "read-write") == 0 || strcmp(row->target, "read-only") == 0;
        const char *q = rw ? Q_SHOW : Q_RECOVERY;
        fake_pre14(0, q, ANS_VALUE, row->a_value);
        /* fake 1 answers right; it must not be reached when fake 0 is accepted */
        fake_pre14(1, q, ANS_VALUE, row->b_value != NULL ? row->b_value : "x");
        fake_start(0);
        fake_start(1);
        h_connect("host=127.0.0.1,127.0.0.1 port=%d,%d user=u dbname=d sslmode=disable "
                  "target_session_attrs=%s load_balance_hosts=disable connect_timeout=10",
                  g_fake[0].port, g_fake[1].port, row->target);
        int used = row->a_why == NULL ? 0 : 1;
        expect_connected_to(used, row->role, row->read_only);
        assert_string_equal(g_h.err.message, "");
        if (row->a_why != NULL) {
            /* Refused: Terminate, then the socket closed, before the connect went on. */
            fake_stop(0);
            expect_terminate_then_close(0, 0);
            expect_one_query(0, q);
            char line[256];
            attempt_line(line, sizeof(line), 0, row->a_why);
            assert_true(h_logged(line));
        }
        h_close();
        fake_stop(0);
        fake_stop(1);
        expect_one_query(used, q);
        expect_terminate_then_close(used, 0); /* the Terminate of fw_conn_close */
        assert_int_equal(atomic_load(&g_fake[used].accepted), 1);
        if (row->a_why == NULL)
            assert_int_equal(atomic_load(&g_fake[1].accepted), 0);
        else
            assert_int_equal(atomic_load(&g_fake[0].accepted), 1);
    }
}

typedef struct bad_row_s {
    answer_t kind;
    const char *value; /* for ANS_VALUE and ANS_TWO */
    const char *name;
} bad_row_t;

static void test_an_answer_that_proves_nothing_refuses_the_server_with_libpq_wording(void **state)
{
    (void)state;
    static const bad_row_t show_rows[] = {
        {ANS_NULL, NULL, "NULL"},        {ANS_EMPTY, NULL, "empty"},
        {ANS_TWO, "off", "two rows"},    {ANS_ERROR, NULL, "ErrorResponse"},
        {ANS_ZERO, NULL, "no row"},      {ANS_VALUE, "true", "\"true\""},
        {ANS_VALUE, "offf", "\"offf\""},
    };
    static const bad_row_t recovery_rows[] = {
        {ANS_NULL, NULL, "NULL"},   {ANS_EMPTY, NULL, "empty"},
        {ANS_TWO, "f", "two rows"}, {ANS_ERROR, NULL, "ErrorResponse"},
        {ANS_ZERO, NULL, "no row"}, {ANS_VALUE, "false", "\"false\""},
    };
    static const struct {
        const char *target;
        const char *query;
        const char *failed; /* libpq's sentence */
        const char *b_value;
        const char *b_why;
        const bad_row_t *rows;
        size_t nrows;
    } targets[] = {
        {"read-write", Q_SHOW, "\"SHOW transaction_read_only\" failed", "on",
         "session is read-only", show_rows, sizeof(show_rows) / sizeof(show_rows[0])},
        {"primary", Q_RECOVERY, "\"SELECT pg_is_in_recovery()\" failed", "t",
         "server is in hot standby mode", recovery_rows,
         sizeof(recovery_rows) / sizeof(recovery_rows[0])},
    };
    for (size_t t = 0; t < sizeof(targets) / sizeof(targets[0]); t++) {
        for (size_t r = 0; r < targets[t].nrows; r++) {
            const bad_row_t *row = &targets[t].rows[r];
            print_message("target_session_attrs=%s, first answer: %s\n", targets[t].target,
                          row->name);
            fake_pre14(0, targets[t].query, row->kind, row->value);
            /* the second server answers well but is of the wrong kind: nothing is accepted */
            fake_pre14(1, targets[t].query, ANS_VALUE, targets[t].b_value);
            fake_start(0);
            fake_start(1);
            h_connect("host=127.0.0.1,127.0.0.1 port=%d,%d user=u dbname=d sslmode=disable "
                      "target_session_attrs=%s connect_timeout=10",
                      g_fake[0].port, g_fake[1].port, targets[t].target);
            char a[256], b[256], want[600];
            attempt_line(a, sizeof(a), 0, targets[t].failed);
            attempt_line(b, sizeof(b), 1, targets[t].b_why);
            snprintf(want, sizeof(want), "%s\n%s", a, b);
            expect_failure(FW_EROUTE, FW_PHASE_ROUTE, want);
            assert_string_equal(g_h.err.sqlstate, ""); /* the query's error is not the connect's */
            h_close();
            fake_stop(0);
            fake_stop(1);
            for (int i = 0; i < 2; i++) {
                expect_one_query(i, targets[t].query);
                expect_terminate_then_close(i, 0);
                assert_int_equal(atomic_load(&g_fake[i].accepted), 1);
            }
        }
    }
}

/* ---- 2. silent hosts and connect_timeout ------------------------------------------------ */

/* A silent fake accepts, records the StartupMessage and never answers. */
static void expect_startup_only(int i)
{
    const fakepg_t *f = &g_fake[i];
    assert_int_equal(atomic_load(&f->accepted), 1);
    assert_true(f->got_len >= 8);
    uint32_t n = fakepg_be32(f->got);
    assert_int_equal(f->got_len, n); /* the StartupMessage and nothing after it */
    assert_int_equal(fakepg_be32(f->got + 4), 196608u); /* protocol 3.0 */
    assert_true(f->conn_eof[0]);                        /* closed by the client */
}

static void test_a_silent_host_costs_one_connect_timeout_then_the_next_host_is_used(void **state)
{
    (void)state;
    fake(0); /* nothing scripted: silent */
    fake_v16(1, "off", "off");
    fake_start(0);
    fake_start(1);
    h_connect("host=127.0.0.1,127.0.0.1 port=%d,%d user=u dbname=d sslmode=disable "
              "connect_timeout=2",
              g_fake[0].port, g_fake[1].port);
    double secs = h_seconds();
    expect_connected_to(1, FW_ROLE_PRIMARY, false);
    if (secs < 1.99 || secs > 3.0)
        fail_msg("connected after %.3f s, want 2 s (the first host's connect_timeout) + < 1 s",
                 secs);
    char line[256];
    attempt_line(line, sizeof(line), 0,
                 "timeout expired during the authentication phase (connect_timeout=2 s)");
    assert_true(h_logged(line));
    fake_stop(0); /* the client closed the silent host's socket when it gave up */
    expect_startup_only(0);
    h_close();
    fake_stop(1);
}

static void test_two_silent_hosts_fail_after_two_timeouts_listing_both(void **state)
{
    (void)state;
    fake(0);
    fake(1);
    fake_start(0);
    fake_start(1);
    /* connect_timeout=1 is raised to 2, as libpq does */
    h_connect("host=127.0.0.1,127.0.0.1 port=%d,%d user=u dbname=d sslmode=disable "
              "connect_timeout=1",
              g_fake[0].port, g_fake[1].port);
    double secs = h_seconds();
    char a[256], b[256], want[600];
    const char *why = "timeout expired during the authentication phase (connect_timeout=2 s)";
    attempt_line(a, sizeof(a), 0, why);
    attempt_line(b, sizeof(b), 1, why);
    snprintf(want, sizeof(want), "%s\n%s", a, b);
    expect_failure(FW_ETIMEDOUT, FW_PHASE_AUTH, want);
    if (secs < 3.98 || secs > 5.0)
        fail_msg("failed after %.3f s, want 2 x 2 s + < 1 s", secs);
    h_close();
    fake_stop(0);
    fake_stop(1);
    expect_startup_only(0);
    expect_startup_only(1);
}

/* ---- 3. require_auth over a host list --------------------------------------------------- */

static bool contains(const uint8_t *p, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; k <= n && i <= n - k; i++)
        if (memcmp(p + i, needle, k) == 0)
            return true;
    return false;
}

/* The SASLInitialResponse holds the client-first-message and nothing derived from the
 * password: no proof (p=), no channel-binding data (c=), not the password itself. */
static void expect_client_first_only(const fakepg_t *f, const char *password)
{
    assert_true(f->sasl_initial_len > 5 + 14 + 4);
    assert_int_equal(f->sasl_initial[0], 'p');
    const uint8_t *body = f->sasl_initial + 5;
    size_t n = f->sasl_initial_len - 5;
    assert_memory_equal(body, "SCRAM-SHA-256\0", 14);
    uint32_t first_len = fakepg_be32(body + 14);
    assert_int_equal(first_len, n - 18);
    char first[256];
    assert_true(first_len < sizeof(first));
    memcpy(first, body + 18, first_len);
    first[first_len] = '\0';
    if (strncmp(first, "n,,n=,r=", 8) != 0)
        fail_msg("client-first-message \"%s\"", first);
    assert_null(strstr(first, ",p="));
    assert_null(strstr(first, "c="));
    assert_false(contains(f->sasl_initial, f->sasl_initial_len, password));
}

static void
test_require_auth_ends_the_connect_at_a_sasl_error_and_never_tries_the_trust_host(void **state)
{
    (void)state;
    fakepg_t *a = fake(0);
    a->scram_iterations = 4096;
    a->scram_garbage = true;
    fake_v16(1, "off", "off"); /* trust: AuthenticationOk at once */
    fake_start(0);
    fake_start(1);
    h_connect("host=127.0.0.1,127.0.0.1 port=%d,%d user=u password=secretpw dbname=d "
              "sslmode=disable require_auth=scram-sha-256 connect_timeout=10",
              g_fake[0].port, g_fake[1].port);
    /* libpq: a failed authentication exchange ends the whole connect (error_return), no
     * other host is tried; fwire the same (conn_attempt.c connect_failed). */
    char want[256];
    attempt_line(want, sizeof(want), 0,
                 "SCRAM authentication failed: malformed SCRAM server message");
    expect_failure(FW_EAUTH, FW_PHASE_AUTH, want); /* one line: the trust host was not tried */
    assert_string_equal(g_h.err.sqlstate, "");
    h_close();
    fake_stop(0);
    fake_stop(1);
    /* The SCRAM server got the client-first-message and then nothing: no SASLResponse. */
    assert_true(a->got_startup);
    expect_client_first_only(a, "secretpw");
    assert_int_equal(a->got_len, 0);
    assert_true(a->conn_eof[0]);
    /* The trust server was never reached. */
    assert_int_equal(atomic_load(&g_fake[1].accepted), 0);
    assert_false(g_fake[1].got_startup);
}

static void test_require_auth_refuses_a_trust_host_reached_by_failover(void **state)
{
    (void)state;
    /* The first host is starting up (57P03: libpq tries the next host); the second is a
     * trust server. require_auth holds for it too (CVE-2018-10915: judged from scratch). */
    fake_starting_up(0);
    fake_v16(1, "off", "off");
    fake_start(0);
    fake_start(1);
    h_connect("host=127.0.0.1,127.0.0.1 port=%d,%d user=u password=secretpw dbname=d "
              "sslmode=disable require_auth=scram-sha-256 connect_timeout=10",
              g_fake[0].port, g_fake[1].port);
    char a1[256], b1[256], want[600];
    attempt_line(a1, sizeof(a1), 0, "FATAL:  the database system is starting up");
    attempt_line(b1, sizeof(b1), 1,
                 "authentication method requirement \"scram-sha-256\" failed: server did not "
                 "complete authentication");
    snprintf(want, sizeof(want), "%s\n%s", a1, b1);
    expect_failure(FW_EAUTH, FW_PHASE_AUTH, want);
    /* The structured fields are the last failure's (fwire's own refusal), not the first
     * host's FATAL. */
    assert_string_equal(g_h.err.sqlstate, "");
    assert_string_equal(g_h.err.severity, "");
    h_close();
    fake_stop(0);
    fake_stop(1);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(atomic_load(&g_fake[i].accepted), 1);
        assert_true(g_fake[i].got_startup);
        assert_int_equal(g_fake[i].got_len, 0); /* no password, no Terminate in start-up */
    }

    /* When the last host fails with a server error too, its fields are the connect's. */
    for (int i = 0; i < 2; i++) {
        fake_starting_up(i);
        fake_start(i);
    }
    h_connect("host=127.0.0.1,127.0.0.1 port=%d,%d user=u password=secretpw dbname=d "
              "sslmode=disable require_auth=scram-sha-256 connect_timeout=10",
              g_fake[0].port, g_fake[1].port);
    attempt_line(a1, sizeof(a1), 0, "FATAL:  the database system is starting up");
    attempt_line(b1, sizeof(b1), 1, "FATAL:  the database system is starting up");
    snprintf(want, sizeof(want), "%s\n%s", a1, b1);
    expect_failure(FW_ESERVER, FW_PHASE_AUTH, want);
    assert_string_equal(g_h.err.sqlstate, "57P03");
    assert_string_equal(g_h.err.severity, "FATAL");
    h_close();
    fake_stop(0);
    fake_stop(1);
}

/* ---- 4. the wrong server is told Terminate ---------------------------------------------- */

static void test_a_wrong_server_gets_terminate_before_its_socket_closes(void **state)
{
    (void)state;
    /* PostgreSQL 14+: the start-up parameters decide, nothing is asked. */
    fake_v16(0, "on", "on");
    fake_v16(1, "off", "off");
    fake_start(0);
    fake_start(1);
    h_connect("host=127.0.0.1,127.0.0.1 port=%d,%d user=u dbname=d sslmode=disable "
              "target_session_attrs=primary connect_timeout=10",
              g_fake[0].port, g_fake[1].port);
    expect_connected_to(1, FW_ROLE_PRIMARY, false);
    fake_stop(0); /* ends only once the client closed its socket */
    expect_terminate_then_close(0, 0);
    assert_int_equal(g_fake[0].nqueries, 0);
    h_close();
    fake_stop(1);
    expect_terminate_then_close(1, 0);

    /* Alone, the wrong server fails the connect in the routing phase. */
    fake_v16(0, "on", "on");
    fake_start(0);
    h_connect("host=127.0.0.1 port=%d user=u dbname=d sslmode=disable "
              "target_session_attrs=read-write connect_timeout=10",
              g_fake[0].port);
    char want[256];
    attempt_line(want, sizeof(want), 0, "session is read-only");
    expect_failure(FW_EROUTE, FW_PHASE_ROUTE, want);
    fake_stop(0);
    expect_terminate_then_close(0, 0);
    h_close();
}

/* ---- 5. prefer-standby ------------------------------------------------------------------ */

/* The ports of the "connecting to" lines of the log, in order. */
static int logged_ports(int *ports, int cap)
{
    int n = 0;
    for (int i = 0; i < g_h.nlog && n < cap; i++) {
        const char *p = strstr(g_h.log[i], "connecting to 127.0.0.1");
        const char *q = p != NULL ? strstr(p, "(port ") : NULL;
        if (q != NULL)
            ports[n++] = atoi(q + 6);
    }
    return n;
}

static void test_prefer_standby_with_only_primaries_takes_the_first_on_a_second_pass(void **state)
{
    (void)state;
    fakepg_t *a = fake_v16(0, "off", "off");
    a->conns = 2; /* refused in the first pass, taken in the second */
    fake_v16(1, "off", "off");
    fake_start(0);
    fake_start(1);
    h_connect("host=127.0.0.1,127.0.0.1 port=%d,%d user=u dbname=d sslmode=disable "
              "target_session_attrs=prefer-standby load_balance_hosts=disable "
              "connect_timeout=10",
              g_fake[0].port, g_fake[1].port);
    expect_connected_to(0, FW_ROLE_PRIMARY, false);
    assert_true(h_logged("no standby found; trying every host again for any server"));
    int ports[8];
    int n = logged_ports(ports, 8);
    assert_int_equal(n, 3);
    assert_int_equal(ports[0], g_fake[0].port);
    assert_int_equal(ports[1], g_fake[1].port);
    assert_int_equal(ports[2], g_fake[0].port);
    char line[256];
    attempt_line(line, sizeof(line), 0, "server is not in hot standby mode");
    assert_true(h_logged(line));
    attempt_line(line, sizeof(line), 1, "server is not in hot standby mode");
    assert_true(h_logged(line));
    fake_stop(1); /* refused once: Terminate, closed */
    expect_terminate_then_close(1, 0);
    assert_int_equal(atomic_load(&g_fake[1].accepted), 1);
    h_close();
    fake_stop(0);
    assert_int_equal(atomic_load(&g_fake[0].accepted), 2);
    expect_terminate_then_close(0, 0); /* first pass: refused */
    expect_terminate_then_close(0, 1); /* second pass: taken, then fw_conn_close */
}

static void test_prefer_standby_takes_a_later_standby_over_an_earlier_primary(void **state)
{
    (void)state;
    fake_v16(0, "off", "off");
    fake_v16(1, "on", "off");
    fake_start(0);
    fake_start(1);
    h_connect("host=127.0.0.1,127.0.0.1 port=%d,%d user=u dbname=d sslmode=disable "
              "target_session_attrs=prefer-standby load_balance_hosts=disable "
              "connect_timeout=10",
              g_fake[0].port, g_fake[1].port);
    expect_connected_to(1, FW_ROLE_STANDBY, true);
    assert_false(h_logged("no standby found"));
    fake_stop(0);
    expect_terminate_then_close(0, 0);
    assert_int_equal(atomic_load(&g_fake[0].accepted), 1);
    h_close();
    fake_stop(1);
    assert_int_equal(atomic_load(&g_fake[1].accepted), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_a_pre14_server_is_asked_once_and_judged_by_its_answer,
                                  teardown),
        cmocka_unit_test_teardown(
            test_an_answer_that_proves_nothing_refuses_the_server_with_libpq_wording, teardown),
        cmocka_unit_test_teardown(
            test_a_silent_host_costs_one_connect_timeout_then_the_next_host_is_used, teardown),
        cmocka_unit_test_teardown(test_two_silent_hosts_fail_after_two_timeouts_listing_both,
                                  teardown),
        cmocka_unit_test_teardown(
            test_require_auth_ends_the_connect_at_a_sasl_error_and_never_tries_the_trust_host,
            teardown),
        cmocka_unit_test_teardown(test_require_auth_refuses_a_trust_host_reached_by_failover,
                                  teardown),
        cmocka_unit_test_teardown(test_a_wrong_server_gets_terminate_before_its_socket_closes,
                                  teardown),
        cmocka_unit_test_teardown(
            test_prefer_standby_with_only_primaries_takes_the_first_on_a_second_pass, teardown),
        cmocka_unit_test_teardown(test_prefer_standby_takes_a_later_standby_over_an_earlier_primary,
                                  teardown),
    };
    return cmocka_run_group_tests_name("lib_route_fake", tests, NULL, NULL);
}
