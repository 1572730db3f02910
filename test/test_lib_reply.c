/* SPDX-License-Identifier: MIT */
/*
 * The reply machine (lib/reply.c) driven by byte vectors, no socket: every reply is fed whole,
 * split in two at every offset, and byte by byte, and must give the same events each way
 * (STYLE 24). Covers rows, rows then an error, asynchronous messages between rows, every wrong
 * result shape, the limits, and every protocol violation the fake server can produce.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "reply.h"

/* ---- building server messages ----------------------------------------------------------- */

typedef struct bytes_s {
    uint8_t d[65536];
    size_t n;
} bytes_t;

static void put(bytes_t *b, const void *p, size_t n)
{
    assert_true(b->n + n <= sizeof(b->d));
    memcpy(b->d + b->n, p, n);
    b->n += n;
}

static void put8(bytes_t *b, uint8_t v)
{
    put(b, &v, 1);
}

static void put16(bytes_t *b, uint16_t v)
{
    uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    put(b, x, 2);
}

static void put32(bytes_t *b, uint32_t v)
{
    uint8_t x[4];
    fw__put_be32(x, v);
    put(b, x, 4);
}

static void put_str(bytes_t *b, const char *s)
{
    put(b, s, strlen(s) + 1);
}

/* A message with the body given: type, length, body. */
static void msg(bytes_t *b, uint8_t type, const bytes_t *body)
{
    put8(b, type);
    put32(b, (uint32_t)(body->n + 4));
    put(b, body->d, body->n);
}

static void empty(bytes_t *b, uint8_t type)
{
    put8(b, type);
    put32(b, 4);
}

static void row(bytes_t *b, const char *json)
{
    bytes_t body = {.n = 0};
    put16(&body, 1);
    if (json == NULL) {
        put32(&body, UINT32_MAX);
    } else {
        put32(&body, (uint32_t)strlen(json));
        put(&body, json, strlen(json));
    }
    msg(b, 'D', &body);
}

/* RowDescription of n columns, each (name, oid, format). */
static void desc(bytes_t *b, int n, ...)
{
    bytes_t body = {.n = 0};
    put16(&body, (uint16_t)n);
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++) {
        const char *name = va_arg(ap, const char *);
        uint32_t oid = va_arg(ap, uint32_t);
        int format = va_arg(ap, int);
        put_str(&body, name);
        put32(&body, 0);
        put16(&body, 0);
        put32(&body, oid);
        put16(&body, (uint16_t)-1);
        put32(&body, (uint32_t)-1);
        put16(&body, (uint16_t)format);
    }
    va_end(ap);
    msg(b, 'T', &body);
}

static void complete(bytes_t *b, const char *tag)
{
    bytes_t body = {.n = 0};
    put_str(&body, tag);
    msg(b, 'C', &body);
}

static void ready(bytes_t *b)
{
    bytes_t body = {.n = 0};
    put8(&body, 'I');
    msg(b, 'Z', &body);
}

/* ErrorResponse or NoticeResponse. */
static void error_msg(bytes_t *b, uint8_t type, const char *sev, const char *state,
                      const char *text)
{
    bytes_t body = {.n = 0};
    put8(&body, 'S');
    put_str(&body, sev);
    put8(&body, 'V');
    put_str(&body, sev);
    put8(&body, 'C');
    put_str(&body, state);
    put8(&body, 'M');
    put_str(&body, text);
    put8(&body, 'D');
    put_str(&body, "some detail");
    put8(&body, 'H');
    put_str(&body, "a hint");
    put8(&body, 0);
    msg(b, type, &body);
}

static void param(bytes_t *b, const char *name, const char *value)
{
    bytes_t body = {.n = 0};
    put_str(&body, name);
    put_str(&body, value);
    msg(b, 'S', &body);
}

static void notify(bytes_t *b, const char *channel, const char *payload)
{
    bytes_t body = {.n = 0};
    put32(&body, 4242);
    put_str(&body, channel);
    put_str(&body, payload);
    msg(b, 'A', &body);
}

/* ParseComplete, BindComplete, RowDescription (data jsonb): the start of every plain reply. */
static void head(bytes_t *b)
{
    empty(b, '1');
    empty(b, '2');
    desc(b, 1, "data", (uint32_t)3802, 0);
}

/* ---- driving the machine ----------------------------------------------------------------- */

typedef struct run_s {
    char log[8192]; /* the events, one word each */
    int rc;         /* 0, or the protocol error that ended the run */
    char why[256];  /* its text, copied: the machine's why may point into the machine */
    fw_error_t err;
    int events;
} run_t;

typedef struct cfg_s {
    bool preamble;
    bool explain;
    size_t max_message;
    size_t max_memory;
    bool simple; /* the query went out as a simple Query: no ParseComplete, BindComplete */
} cfg_t;

static const cfg_t plain = {false, false, 1u << 20, 1u << 22, false};
static const cfg_t simple_q = {false, false, 1u << 20, 1u << 22, true};

static void logf_(run_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(run_t *r, const char *fmt, ...)
{
    size_t at = strlen(r->log);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->log + at, sizeof(r->log) - at, fmt, ap);
    va_end(ap);
}

/*
 * Feeds the reply in pieces of `step` bytes (0: whole), the way the stream does: the bytes
 * received so far stay in one buffer, and the machine is called until it needs more. A READY
 * ends the run (what follows belongs to the idle connection).
 */
static void drive(const cfg_t *c, const bytes_t *in, size_t first, size_t step, run_t *r)
{
    memset(r, 0, sizeof(*r));
    fw__reply_t rp;
    fw__reply_init(&rp, c->preamble, c->simple, c->explain, c->max_message, c->max_memory,
                   &r->err);
    size_t have = 0, pos = 0;
    while (have < in->n || pos < have) {
        size_t want = have == 0 && first > 0 ? first : step == 0 ? in->n : step;
        if (have < in->n)
            have = have + want > in->n ? in->n : have + want;
        bool progress = false;
        for (;;) {
            fw__reply_event_t ev;
            long n = fw__reply_next(&rp, in->d + pos, have - pos, &ev);
            if (n == 0)
                break;
            if (n < 0) {
                r->rc = (int)n;
                snprintf(r->why, sizeof(r->why), "%s", rp.why != NULL ? rp.why : "");
                logf_(r, "PROTO ");
                return;
            }
            progress = true;
            r->events++;
            switch (ev.kind) {
            case FW__RE_NONE:
                break;
            case FW__RE_ROW:
                if (ev.row.is_null)
                    logf_(r, "NULL ");
                else
                    logf_(r, "ROW:%.*s ", (int)ev.row.len, ev.row.json);
                break;
            case FW__RE_DESCRIBED:
                logf_(r, "DESC ");
                break;
            case FW__RE_FAILED:
                logf_(r, "FAILED ");
                break;
            case FW__RE_SERVER_ERROR:
                logf_(r, "SERR%s ", ev.fatal ? "(fatal)" : "");
                break;
            case FW__RE_NOTICE:
                assert_true(ev.has_msg);
                assert_int_equal(ev.msg.type, 'N');
                logf_(r, "NOTICE ");
                break;
            case FW__RE_NOTIFY:
                assert_true(ev.has_msg);
                logf_(r, "NOTIFY:%.*s ", (int)ev.msg.u.notify.payload.len,
                      (const char *)ev.msg.u.notify.payload.ptr);
                break;
            case FW__RE_PARAM:
                logf_(r, "PARAM ");
                break;
            case FW__RE_READY: {
                /* READY does not move the state: the same bytes say it again. */
                fw__reply_event_t again;
                assert_int_equal(fw__reply_next(&rp, in->d + pos, have - pos, &again), n);
                assert_int_equal(again.kind, FW__RE_READY);
                logf_(r, "READY");
                assert_int_equal(pos + (size_t)n, in->n); /* tests end with the Z */
                return;
            }
            }
            pos += (size_t)n;
        }
        if (!progress && have == in->n)
            break;
    }
    logf_(r, "INCOMPLETE");
}

/* Runs the reply whole, split in two at every offset, and byte by byte; every way must give
 * the same events and the same error. Returns the whole run. */
static run_t check_all_ways(const cfg_t *c, const bytes_t *in)
{
    run_t whole, part;
    drive(c, in, 0, 0, &whole);
    for (size_t cut = 1; cut < in->n; cut++) {
        drive(c, in, cut, 0, &part);
        if (strcmp(part.log, whole.log) != 0)
            fail_msg("split at %zu: \"%s\" vs whole \"%s\"", cut, part.log, whole.log);
        assert_int_equal(part.rc, whole.rc);
        assert_int_equal(part.err.code, whole.err.code);
        assert_string_equal(part.err.message, whole.err.message);
    }
    drive(c, in, 0, 1, &part);
    assert_string_equal(part.log, whole.log);
    assert_int_equal(part.rc, whole.rc);
    assert_int_equal(part.err.code, whole.err.code);
    return whole;
}

/* ---- rows --------------------------------------------------------------------------------- */

static void test_rows_then_ready(void **state)
{
    (void)state;
    bytes_t b = {.n = 0};
    head(&b);
    row(&b, "{\"a\":1}");
    row(&b, "[2]");
    row(&b, NULL);
    row(&b, "");
    complete(&b, "SELECT 4");
    ready(&b);
    run_t r = check_all_ways(&plain, &b);
    assert_string_equal(r.log, "DESC ROW:{\"a\":1} ROW:[2] NULL ROW: READY");
    assert_int_equal(r.err.code, 0);
    assert_int_equal(r.rc, 0);
}

static void test_json_column_and_explain_plan_are_accepted(void **state)
{
    (void)state;
    bytes_t b = {.n = 0};
    empty(&b, '1');
    empty(&b, '2');
    desc(&b, 1, "data", (uint32_t)114, 0);
    row(&b, "1");
    complete(&b, "SELECT 1");
    ready(&b);
    assert_string_equal(check_all_ways(&plain, &b).log, "DESC ROW:1 READY");

    bytes_t e = {.n = 0};
    empty(&e, '1');
    empty(&e, '2');
    desc(&e, 1, "QUERY PLAN", (uint32_t)114, 0);
    row(&e, "[{\"Plan\":{}}]");
    complete(&e, "EXPLAIN");
    ready(&e);
    cfg_t c = plain;
    c.explain = true;
    assert_string_equal(check_all_ways(&c, &e).log, "DESC ROW:[{\"Plan\":{}}] READY");
    /* and a plain query refuses the plan's shape */
    run_t r = check_all_ways(&plain, &e);
    assert_string_equal(r.log, "FAILED READY");
    assert_int_equal(r.err.code, FW_ESCHEMA);
}

/* The simple protocol (query.h, fw__query_simple): RowDescription first, the rest the same. */
static void test_a_simple_query_reply_starts_at_the_row_description(void **state)
{
    (void)state;
    bytes_t b = {.n = 0};
    desc(&b, 1, "data", (uint32_t)3802, 0);
    row(&b, "{\"a\":1}");
    row(&b, NULL);
    complete(&b, "SELECT 2");
    ready(&b);
    run_t r = check_all_ways(&simple_q, &b);
    assert_string_equal(r.log, "DESC ROW:{\"a\":1} NULL READY");
    assert_int_equal(r.rc, 0);
    /* an error before any row, and one after rows: the server's, kept whole */
    bytes_t e = {.n = 0};
    error_msg(&e, 'E', "ERROR", "42P01", "relation \"v_x\" does not exist");
    ready(&e);
    r = check_all_ways(&simple_q, &e);
    assert_string_equal(r.log, "SERR READY");
    assert_string_equal(r.err.sqlstate, "42P01");
    e.n = 0;
    desc(&e, 1, "data", (uint32_t)114, 0);
    row(&e, "1");
    error_msg(&e, 'E', "ERROR", "22012", "division by zero");
    ready(&e);
    r = check_all_ways(&simple_q, &e);
    assert_string_equal(r.log, "DESC ROW:1 SERR READY");
    /* the wrong shape is refused as on the extended protocol */
    e.n = 0;
    desc(&e, 2, "data", (uint32_t)3802, 0, "id", (uint32_t)23, 0);
    row(&e, "1");
    complete(&e, "SELECT 1");
    ready(&e);
    r = check_all_ways(&simple_q, &e);
    assert_string_equal(r.log, "FAILED READY");
    assert_int_equal(r.err.code, FW_ESCHEMA);
    /* an extended-protocol reply is out of place here, and the other way round */
    bytes_t x = {.n = 0};
    head(&x);
    row(&x, "1");
    complete(&x, "SELECT 1");
    ready(&x);
    assert_int_equal(check_all_ways(&simple_q, &x).rc, FW_EPROTO_UNEXPECTED);
    assert_int_equal(check_all_ways(&plain, &b).rc, FW_EPROTO_UNEXPECTED);
    /* no RowDescription (not a SELECT), a row first, ReadyForQuery first, an empty query */
    static const char *const bad[] = {"C", "D", "Z", "I"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        x.n = 0;
        if (bad[i][0] == 'C')
            complete(&x, "INSERT 0 1");
        else if (bad[i][0] == 'D')
            row(&x, "1");
        else if (bad[i][0] == 'Z')
            ready(&x);
        else
            empty(&x, 'I');
        run_t v = check_all_ways(&simple_q, &x);
        if (v.rc != FW_EPROTO_UNEXPECTED)
            fail_msg("%s first: expected FW_EPROTO_UNEXPECTED, got %s (log \"%s\")", bad[i],
                     fw_err_name(v.rc), v.log);
    }
}

static void test_statement_timeout_preamble_row_is_not_delivered(void **state)
{
    (void)state;
    bytes_t b = {.n = 0};
    empty(&b, '1');
    empty(&b, '2');
    row(&b, "5s"); /* set_config's one row */
    complete(&b, "SELECT 1");
    head(&b);
    row(&b, "{}");
    complete(&b, "SELECT 1");
    ready(&b);
    cfg_t c = plain;
    c.preamble = true;
    assert_string_equal(check_all_ways(&c, &b).log, "DESC ROW:{} READY");
    /* without the preamble the same bytes break the protocol (a DataRow before the query) */
    run_t r = check_all_ways(&plain, &b);
    assert_int_equal(r.rc, FW_EPROTO_UNEXPECTED);
    assert_string_equal(r.why, "a DataRow arrived out of place");
}

static void test_rows_then_error_keep_every_field(void **state)
{
    (void)state;
    bytes_t b = {.n = 0};
    head(&b);
    row(&b, "1");
    row(&b, "2");
    error_msg(&b, 'E', "ERROR", "22012", "division by zero");
    ready(&b);
    run_t r = check_all_ways(&plain, &b);
    assert_string_equal(r.log, "DESC ROW:1 ROW:2 SERR READY");
    assert_int_equal(r.err.code, FW_ESERVER);
    assert_string_equal(r.err.sqlstate, "22012");
    assert_string_equal(r.err.severity, "ERROR");
    assert_string_equal(r.err.message, "division by zero");
    assert_string_equal(r.err.detail, "some detail");
    assert_string_equal(r.err.hint, "a hint");
}

static void test_fatal_error_is_flagged(void **state)
{
    (void)state;
    bytes_t b = {.n = 0};
    head(&b);
    row(&b, "1");
    error_msg(&b, 'E', "FATAL", "57P01", "terminating connection due to administrator command");
    ready(&b); /* a real server closes instead; the machine still ends cleanly */
    run_t r = check_all_ways(&plain, &b);
    assert_string_equal(r.log, "DESC ROW:1 SERR(fatal) READY");
    assert_string_equal(r.err.sqlstate, "57P01");
}

static void test_async_messages_between_rows(void **state)
{
    (void)state;
    bytes_t b = {.n = 0};
    head(&b);
    row(&b, "1");
    error_msg(&b, 'N', "NOTICE", "00000", "hello");
    row(&b, "2");
    param(&b, "application_name", "x");
    row(&b, "3");
    notify(&b, "ch", "payload");
    complete(&b, "SELECT 3");
    error_msg(&b, 'N', "WARNING", "01000", "late");
    ready(&b);
    run_t r = check_all_ways(&plain, &b);
    assert_string_equal(r.log,
                        "DESC ROW:1 NOTICE ROW:2 PARAM ROW:3 NOTIFY:payload NOTICE READY");
    assert_int_equal(r.err.code, 0);
}

static void test_a_switch_of_client_encoding_mid_stream_is_refused(void **state)
{
    (void)state;
    bytes_t b = {.n = 0};
    head(&b);
    row(&b, "1");
    param(&b, "client_encoding", "UTF8"); /* the same: fine */
    row(&b, "2");
    param(&b, "client_encoding", "LATIN1");
    row(&b, "3");
    run_t r = check_all_ways(&plain, &b);
    assert_string_equal(r.log, "DESC ROW:1 PARAM ROW:2 PROTO ");
    assert_int_equal(r.rc, FW_EPROTO_BAD_VALUE);
    assert_non_null(strstr(r.why, "switched client_encoding to \"LATIN1\""));
}

/* ---- the result's shape ---------------------------------------------------------------- */

static void expect_schema_error(bytes_t *b, const char *needle)
{
    /* rows of the wrong shape follow (two fields): dropped unread */
    bytes_t body = {.n = 0};
    put16(&body, 2);
    put32(&body, 1);
    put8(&body, 'x');
    put32(&body, 1);
    put8(&body, 'y');
    msg(b, 'D', &body);
    complete(b, "SELECT 1");
    ready(b);
    run_t r = check_all_ways(&plain, b);
    assert_string_equal(r.log, "FAILED READY");
    assert_int_equal(r.err.code, FW_ESCHEMA);
    if (strstr(r.err.message, needle) == NULL)
        fail_msg("\"%s\" not in \"%s\"", needle, r.err.message);
}

static void test_wrong_shapes_fail_with_what_came_back(void **state)
{
    (void)state;
    bytes_t b = {.n = 0};
    empty(&b, '1');
    empty(&b, '2');
    desc(&b, 2, "data", (uint32_t)3802, 0, "id", (uint32_t)23, 0);
    expect_schema_error(&b, "returned 2 columns: \"data\" (jsonb), \"id\" (integer)");

    b.n = 0;
    empty(&b, '1');
    empty(&b, '2');
    desc(&b, 1, "data", (uint32_t)25, 0);
    expect_schema_error(&b, "returned 1 column: \"data\" (text)");

    b.n = 0;
    empty(&b, '1');
    empty(&b, '2');
    desc(&b, 1, "data", (uint32_t)3802, 1);
    expect_schema_error(&b, "(jsonb, binary format)");

    b.n = 0;
    empty(&b, '1');
    empty(&b, '2');
    desc(&b, 1, "doc", (uint32_t)3802, 0);
    expect_schema_error(&b, "\"doc\" (jsonb)");

    b.n = 0;
    empty(&b, '1');
    empty(&b, '2');
    desc(&b, 1, "da\x1bta", (uint32_t)99999, 0); /* escape codes and unknown types shown safely */
    expect_schema_error(&b, "\"da\\x1bta\" (type oid 99999)");

    b.n = 0;
    empty(&b, '1');
    empty(&b, '2');
    empty(&b, 'n'); /* NoData: not a SELECT */
    complete(&b, "INSERT 0 1");
    ready(&b);
    run_t r = check_all_ways(&plain, &b);
    assert_string_equal(r.log, "FAILED READY");
    assert_non_null(strstr(r.err.message, "NoData"));
}

static void test_our_failure_stays_unless_the_server_error_is_fatal(void **state)
{
    (void)state;
    bytes_t b = {.n = 0};
    empty(&b, '1');
    empty(&b, '2');
    desc(&b, 1, "data", (uint32_t)25, 0);
    error_msg(&b, 'E', "ERROR", "57014", "canceling statement due to user request");
    ready(&b);
    run_t r = check_all_ways(&plain, &b);
    assert_string_equal(r.log, "FAILED SERR READY");
    assert_int_equal(r.err.code, FW_ESCHEMA);

    b.n = 0;
    empty(&b, '1');
    empty(&b, '2');
    desc(&b, 1, "data", (uint32_t)25, 0);
    error_msg(&b, 'E', "FATAL", "57P01", "terminating connection");
    ready(&b);
    r = check_all_ways(&plain, &b);
    assert_string_equal(r.log, "FAILED SERR(fatal) READY");
    assert_int_equal(r.err.code, FW_ESERVER);
    assert_string_equal(r.err.sqlstate, "57P01");
}

/* ---- limits ------------------------------------------------------------------------------ */

static void test_a_row_over_the_budget_is_delivered(void **state)
{
    (void)state;
    char big[300];
    memset(big, 'x', sizeof(big) - 1);
    big[0] = '"';
    big[sizeof(big) - 2] = '"';
    big[sizeof(big) - 1] = '\0';
    bytes_t b = {.n = 0};
    head(&b);
    row(&b, "1");
    row(&b, big); /* 299 bytes of JSON: a 310-byte message, over a 256-byte budget */
    row(&b, "3");
    complete(&b, "SELECT 3");
    ready(&b);
    cfg_t c = plain;
    c.max_memory = 256; /* the budget bounds what is queued, not one row (issue 17) */
    run_t r = check_all_ways(&c, &b);
    char want[512];
    snprintf(want, sizeof(want), "DESC ROW:1 ROW:%s ROW:3 READY", big);
    assert_string_equal(r.log, want);
    assert_int_equal(r.err.code, 0);
}

static void test_row_over_max_message_names_the_setting(void **state)
{
    (void)state;
    bytes_t b = {.n = 0};
    head(&b);
    row(&b, "1");
    row(&b, "\"0123456789012345678901234567890123456789\""); /* skipped as it arrives */
    row(&b, "3"); /* dropped: the stream has failed */
    complete(&b, "SELECT 1");
    ready(&b);
    cfg_t c = plain;
    c.max_message = 40;
    run_t r = check_all_ways(&c, &b);
    assert_string_equal(r.log, "DESC ROW:1 FAILED READY");
    assert_int_equal(r.err.code, FW_ETOOBIG);
    assert_non_null(strstr(r.err.message, "over the connection's max_message of 40 bytes"));
}

/* ---- protocol violations ------------------------------------------------------------------ */

static void expect_violation(const bytes_t *b, int code)
{
    run_t r = check_all_ways(&plain, b);
    if (r.rc != code)
        fail_msg("expected %s, got %s (log \"%s\")", fw_err_name(code), fw_err_name(r.rc),
                 r.log);
}

static void test_every_protocol_violation_is_an_error(void **state)
{
    (void)state;
    bytes_t b;

    b.n = 0; /* a DataRow before the RowDescription */
    empty(&b, '1');
    empty(&b, '2');
    row(&b, "1");
    expect_violation(&b, FW_EPROTO_UNEXPECTED);

    b.n = 0; /* ParseComplete twice */
    empty(&b, '1');
    empty(&b, '1');
    expect_violation(&b, FW_EPROTO_UNEXPECTED);

    b.n = 0; /* BindComplete first */
    empty(&b, '2');
    expect_violation(&b, FW_EPROTO_UNEXPECTED);

    b.n = 0; /* ReadyForQuery before CommandComplete */
    head(&b);
    row(&b, "1");
    ready(&b);
    expect_violation(&b, FW_EPROTO_UNEXPECTED);

    b.n = 0; /* CommandComplete instead of the RowDescription */
    empty(&b, '1');
    empty(&b, '2');
    complete(&b, "SELECT 0");
    expect_violation(&b, FW_EPROTO_UNEXPECTED);

    b.n = 0; /* a second RowDescription */
    head(&b);
    desc(&b, 1, "data", (uint32_t)3802, 0);
    expect_violation(&b, FW_EPROTO_UNEXPECTED);

    b.n = 0; /* a row after the error */
    head(&b);
    error_msg(&b, 'E', "ERROR", "22012", "x");
    row(&b, "1");
    expect_violation(&b, FW_EPROTO_UNEXPECTED);

    b.n = 0; /* messages that belong to other exchanges */
    head(&b);
    put8(&b, 'K');
    put32(&b, 12);
    put32(&b, 1);
    put32(&b, 2);
    expect_violation(&b, FW_EPROTO_UNEXPECTED);
    b.n = 0;
    head(&b);
    put8(&b, 'R');
    put32(&b, 8);
    put32(&b, 0);
    expect_violation(&b, FW_EPROTO_UNEXPECTED);
    b.n = 0;
    head(&b);
    empty(&b, 'I'); /* EmptyQueryResponse */
    expect_violation(&b, FW_EPROTO_UNEXPECTED);

    b.n = 0; /* an unknown type byte */
    head(&b);
    empty(&b, 'x');
    expect_violation(&b, FW_EPROTO_UNKNOWN_TYPE);

    b.n = 0; /* lengths below 4 */
    head(&b);
    put8(&b, 'D');
    put32(&b, 3);
    expect_violation(&b, FW_EPROTO_SHORT);
    b.n = 0;
    head(&b);
    put8(&b, 'C');
    put32(&b, 2);
    expect_violation(&b, FW_EPROTO_SHORT);

    b.n = 0; /* a DataRow no one-column row can be: closed at once, not skipped */
    head(&b);
    row(&b, "1");
    put8(&b, 'D');
    put32(&b, 0xffffffffu);
    expect_violation(&b, FW_EPROTO_TOO_LARGE);
    b.n = 0;
    head(&b);
    put8(&b, 'D');
    put32(&b, (uint32_t)(FW__REPLY_ROW_MESSAGE_MAX + 1));
    expect_violation(&b, FW_EPROTO_TOO_LARGE);
    b.n = 0; /* at the cap it is a row over the limits: skipped, the stream failed */
    head(&b);
    put8(&b, 'D');
    put32(&b, (uint32_t)FW__REPLY_ROW_MESSAGE_MAX);
    run_t big = check_all_ways(&plain, &b);
    assert_string_equal(big.log, "DESC FAILED INCOMPLETE");
    assert_int_equal(big.err.code, FW_ETOOBIG);

    b.n = 0; /* a short message type over its cap */
    head(&b);
    put8(&b, 'C');
    put32(&b, 1u << 20);
    expect_violation(&b, FW_EPROTO_TOO_LARGE);

    bytes_t body;
    body.n = 0; /* two fields in a one-column result */
    put16(&body, 2);
    put32(&body, 1);
    put8(&body, '1');
    put32(&body, 1);
    put8(&body, '2');
    b.n = 0;
    head(&b);
    msg(&b, 'D', &body);
    expect_violation(&b, FW_EPROTO_FIELD_COUNT);

    body.n = 0; /* zero fields */
    put16(&body, 0);
    b.n = 0;
    head(&b);
    msg(&b, 'D', &body);
    expect_violation(&b, FW_EPROTO_FIELD_COUNT);

    body.n = 0; /* 65535 fields */
    put16(&body, 65535);
    put32(&body, 1);
    put8(&body, '1');
    b.n = 0;
    head(&b);
    msg(&b, 'D', &body);
    expect_violation(&b, FW_EPROTO_FIELD_COUNT);

    body.n = 0; /* a negative length that is not -1 */
    put16(&body, 1);
    put32(&body, (uint32_t)-2);
    b.n = 0;
    head(&b);
    msg(&b, 'D', &body);
    expect_violation(&b, FW_EPROTO_NEG_LENGTH);

    body.n = 0; /* INT32_MIN */
    put16(&body, 1);
    put32(&body, 0x80000000u);
    b.n = 0;
    head(&b);
    msg(&b, 'D', &body);
    expect_violation(&b, FW_EPROTO_NEG_LENGTH);

    body.n = 0; /* a field longer than its message */
    put16(&body, 1);
    put32(&body, 10);
    put(&body, "abc", 3);
    b.n = 0;
    head(&b);
    msg(&b, 'D', &body);
    expect_violation(&b, FW_EPROTO_TRUNCATED);

    body.n = 0; /* bytes after the field */
    put16(&body, 1);
    put32(&body, 1);
    put(&body, "12", 2);
    b.n = 0;
    head(&b);
    msg(&b, 'D', &body);
    expect_violation(&b, FW_EPROTO_TRAILING);

    body.n = 0; /* NULL with bytes after it */
    put16(&body, 1);
    put32(&body, UINT32_MAX);
    put8(&body, 0);
    b.n = 0;
    head(&b);
    msg(&b, 'D', &body);
    expect_violation(&b, FW_EPROTO_TRAILING);

    body.n = 0; /* a CommandComplete tag without its NUL */
    put(&body, "SELECT 1", 8);
    b.n = 0;
    head(&b);
    msg(&b, 'C', &body);
    expect_violation(&b, FW_EPROTO_UNTERMINATED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows_then_ready),
        cmocka_unit_test(test_json_column_and_explain_plan_are_accepted),
        cmocka_unit_test(test_a_simple_query_reply_starts_at_the_row_description),
        cmocka_unit_test(test_statement_timeout_preamble_row_is_not_delivered),
        cmocka_unit_test(test_rows_then_error_keep_every_field),
        cmocka_unit_test(test_fatal_error_is_flagged),
        cmocka_unit_test(test_async_messages_between_rows),
        cmocka_unit_test(test_a_switch_of_client_encoding_mid_stream_is_refused),
        cmocka_unit_test(test_wrong_shapes_fail_with_what_came_back),
        cmocka_unit_test(test_our_failure_stays_unless_the_server_error_is_fatal),
        cmocka_unit_test(test_a_row_over_the_budget_is_delivered),
        cmocka_unit_test(test_row_over_max_message_names_the_setting),
        cmocka_unit_test(test_every_protocol_violation_is_an_error),
    };
    return cmocka_run_group_tests_name("lib_reply", tests, NULL, NULL);
}
