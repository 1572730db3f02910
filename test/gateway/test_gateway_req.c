/* SPDX-License-Identifier: MIT */
/*
 * Client messages of fwire serve validated into queries (tools/serve_req.c): every field of
 * stream_query and the control messages, the refusals a browser developer will meet, and the
 * SQL the validated request becomes (fw_query_sql), where no client text may appear unchecked.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "serve_req.h"

static void parse_ok(const char *text, gw_request_t *req)
{
    gw_reqerr_t err;
    int rc = gw_request_parse(text, strlen(text), 65536, req, &err);
    if (rc != 0)
        fail_msg("refused %s: %s", text, err.message);
}

static void refused(const char *text, const char *why)
{
    gw_request_t req;
    gw_reqerr_t err;
    int rc = gw_request_parse(text, strlen(text), 65536, &req, &err);
    if (rc != -1)
        fail_msg("accepted %s", text);
    assert_string_equal(err.code, "bad_request");
    if (strstr(err.message, why) == NULL)
        fail_msg("%s: message '%s' does not say '%s'", text, err.message, why);
}

static char *sql_of(const gw_request_t *req)
{
    fw_query_t *q = NULL;
    char msg[256];
    int rc = gw_query_build(req, &q, msg, sizeof(msg));
    if (rc != 0)
        fail_msg("query refused: %s", msg);
    long n = fw_query_sql(q, NULL, 0);
    assert_true(n > 0);
    char *s = malloc((size_t)n + 1);
    assert_non_null(s);
    fw_query_sql(q, s, (size_t)n + 1);
    fw_query_free(q);
    return s;
}

static void test_req_stream_query_with_every_field(void **state)
{
    (void)state;
    gw_request_t req;
    parse_ok("{\"type\":\"stream_query\",\"request_id\":\"r1\",\"entity\":\"fixture\","
             "\"where\":[{\"path\":\"a.b\",\"op\":\"eq\",\"value\":42},"
             "{\"path\":\"name\",\"op\":\"ilike\",\"value\":\"al%\"},"
             "{\"path\":\"ok\",\"op\":\"ne\",\"value\":false},"
             "{\"path\":\"x\",\"op\":\"is_null\"},"
             "{\"path\":\"id\",\"op\":\"in\",\"value\":[1,2,3]}],"
             "\"order_by\":{\"path\":\"id\",\"desc\":true},\"limit\":1000,\"batch_size\":100}",
             &req);
    assert_int_equal(req.type, GW_MSG_STREAM_QUERY);
    assert_string_equal(req.request_id, "r1");
    assert_string_equal(req.entity, "fixture");
    assert_int_equal(req.npreds, 5);
    assert_int_equal(req.preds[0].type, FW_VALUE_NUMBER);
    assert_string_equal(req.preds[0].value, "42");
    assert_int_equal(req.preds[1].op, FW_OP_ILIKE);
    assert_int_equal(req.preds[1].type, FW_VALUE_TEXT);
    assert_int_equal(req.preds[2].type, FW_VALUE_BOOL);
    assert_string_equal(req.preds[2].value, "false");
    assert_int_equal(req.preds[3].op, FW_OP_IS_NULL);
    assert_true(req.preds[4].is_in);
    assert_int_equal(req.preds[4].nvalues, 3);
    assert_string_equal(req.order_path, "id");
    assert_true(req.order_desc);
    assert_int_equal(req.limit, 1000);
    assert_int_equal(req.batch_size, 100);
    char *sql = sql_of(&req);
    /* the order key is built from the validated path; values are bind parameters only */
    assert_non_null(strstr(sql, "ORDER BY\n(\"data\"::jsonb)#>'{\"id\"}'\n DESC"));
    assert_non_null(strstr(sql, "\"v_fixture\""));
    assert_null(strstr(sql, "42"));
    assert_null(strstr(sql, "al%"));
    free(sql);
    gw_request_free(&req);
}

static void test_req_minimal_and_control_messages(void **state)
{
    (void)state;
    gw_request_t req;
    parse_ok("{\"type\":\"stream_query\",\"entity\":\"e\"}", &req);
    assert_null(req.request_id);
    assert_int_equal(req.limit, -1);
    assert_int_equal(req.batch_size, 0);
    assert_null(req.order_path);
    gw_request_free(&req);
    parse_ok("{\"type\":\"cancel_query\",\"stream_id\":\"abc\"}", &req);
    assert_int_equal(req.type, GW_MSG_CANCEL_QUERY);
    assert_string_equal(req.stream_id, "abc");
    gw_request_free(&req);
    parse_ok("{\"type\":\"pause_query\",\"stream_id\":\"abc\"}", &req);
    assert_int_equal(req.type, GW_MSG_PAUSE_QUERY);
    gw_request_free(&req);
    parse_ok("{\"type\":\"resume_query\",\"stream_id\":\"abc\",\"request_id\":null}", &req);
    assert_int_equal(req.type, GW_MSG_RESUME_QUERY);
    gw_request_free(&req);
    parse_ok("{\"type\":\"stream_query\",\"entity\":\"e\",\"order_by\":{\"path\":\"a.b_2.C\"}}",
             &req);
    char *sql = sql_of(&req);
    assert_non_null(strstr(sql, "#>'{\"a\",\"b_2\",\"C\"}'"));
    free(sql);
    gw_request_free(&req);
}

static void test_req_refusals_name_the_problem(void **state)
{
    (void)state;
    refused("[]", "JSON object");
    refused("{\"entity\":\"e\"}", "\"type\"");
    refused("{\"type\":\"DROP\"}", "unknown message type");
    refused("{\"type\":\"stream_query\"}", "needs an entity");
    refused("{\"type\":\"stream_query\",\"entity\":\"\"}", "entity");
    refused("{\"type\":\"stream_query\",\"entity\":7}", "entity");
    refused("{\"type\":\"stream_query\",\"entity\":\"e\",\"sql\":\"select 1\"}", "unknown field");
    refused("{\"type\":\"stream_query\",\"entity\":\"e\",\"where\":{}}", "array");
    refused("{\"type\":\"stream_query\",\"entity\":\"e\",\"where\":[{\"path\":\"a;b\",\"op\":"
            "\"eq\",\"value\":1}]}",
            "[A-Za-z0-9_]");
    refused("{\"type\":\"stream_query\",\"entity\":\"e\",\"where\":[{\"path\":\"a..b\",\"op\":"
            "\"eq\",\"value\":1}]}",
            "dotted path");
    refused("{\"type\":\"stream_query\",\"entity\":\"e\",\"where\":[{\"path\":\"a\",\"op\":"
            "\"between\",\"value\":1}]}",
            "op must be");
    refused("{\"type\":\"stream_query\",\"entity\":\"e\",\"where\":[{\"path\":\"a\",\"op\":"
            "\"eq\",\"value\":null}]}",
            "is_null");
    refused("{\"type\":\"stream_query\",\"entity\":\"e\",\"where\":[{\"path\":\"a\",\"op\":"
            "\"eq\",\"value\":{\"x\":1}}]}",
            "string, number or boolean");
    refused("{\"type\":\"stream_query\",\"entity\":\"e\",\"where\":[{\"path\":\"a\",\"op\":"
            "\"is_null\",\"value\":1}]}",
            "takes no value");
    refused("{\"type\":\"stream_query\",\"entity\":\"e\",\"where\":[{\"path\":\"a\",\"op\":"
            "\"in\",\"value\":[1,\"2\"]}]}",
            "one JSON type");
    refused("{\"type\":\"stream_query\",\"entity\":\"e\",\"where\":[{\"path\":\"a\",\"op\":"
            "\"has_key\",\"value\":1}]}",
            "string value");
    refused("{\"type\":\"stream_query\",\"entity\":\"e\",\"where\":[{\"path\":\"a\",\"op\":"
            "\"eq\",\"value\":\"x\\u0000\"}]}",
            "NUL");
    refused("{\"type\":\"stream_query\",\"entity\":\"e\",\"order_by\":{\"path\":\"a'}\"}}",
            "order_by.path");
    refused("{\"type\":\"stream_query\",\"entity\":\"e\",\"order_by\":{\"path\":\"\"}}",
            "order_by.path");
    refused("{\"type\":\"stream_query\",\"entity\":\"e\",\"order_by\":{\"desc\":true}}",
            "needs a path");
    refused("{\"type\":\"stream_query\",\"entity\":\"e\",\"limit\":-1}", "limit");
    refused("{\"type\":\"stream_query\",\"entity\":\"e\",\"limit\":1.5}", "limit");
    refused("{\"type\":\"stream_query\",\"entity\":\"e\",\"limit\":\"10\"}", "limit");
    refused("{\"type\":\"stream_query\",\"entity\":\"e\",\"batch_size\":0}", "batch_size");
    refused("{\"type\":\"stream_query\",\"entity\":\"e\",\"batch_size\":10001}", "batch_size");
    refused("{\"type\":\"cancel_query\"}", "stream_id");
    refused("{\"type\":\"cancel_query\",\"stream_id\":5}", "stream_id");
}

static void test_req_limits_at_and_one_past(void **state)
{
    (void)state;
    char buf[8192];
    gw_request_t req;
    /* GW_MAX_PREDICATES predicates pass, one more is refused */
    for (int extra = 0; extra <= 1; extra++) {
        int n = snprintf(buf, sizeof(buf),
                         "{\"type\":\"stream_query\",\"entity\":\"e\","
                         "\"where\":[");
        for (int i = 0; i < GW_MAX_PREDICATES + extra; i++)
            n += snprintf(buf + n, sizeof(buf) - (size_t)n,
                          "%s{\"path\":\"p%d\",\"op\":\"eq\",\"value\":%d}", i ? "," : "", i, i);
        snprintf(buf + n, sizeof(buf) - (size_t)n, "]}");
        if (extra == 0) {
            parse_ok(buf, &req);
            assert_int_equal(req.npreds, GW_MAX_PREDICATES);
            gw_request_free(&req);
        } else {
            refused(buf, "more than");
        }
    }
    /* path depth 16 passes, 17 is refused */
    assert_true(gw_path_valid("a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p"));
    assert_false(gw_path_valid("a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q"));
    char elem[80];
    memset(elem, 'x', 63);
    elem[63] = '\0';
    assert_true(gw_path_valid(elem));
    elem[63] = 'x';
    elem[64] = '\0';
    assert_false(gw_path_valid(elem));
    assert_true(gw_path_valid(""));
    assert_false(gw_path_valid("."));
    assert_false(gw_path_valid("a."));
    assert_false(gw_path_valid("a b"));
    /* the byte limit of a message */
    gw_reqerr_t err;
    const char *m = "{\"type\":\"stream_query\",\"entity\":\"e\"}";
    assert_int_equal(gw_request_parse(m, strlen(m), strlen(m), &req, &err), 0);
    gw_request_free(&req);
    assert_int_equal(gw_request_parse(m, strlen(m), strlen(m) - 1, &req, &err), -1);
    assert_non_null(strstr(err.message, "exceeds"));
}

static void test_req_error_echoes_request_id(void **state)
{
    (void)state;
    gw_request_t req;
    gw_reqerr_t err;
    const char *m = "{\"type\":\"stream_query\",\"request_id\":\"r7\",\"entity\":\"e\",\"x\":1}";
    assert_int_equal(gw_request_parse(m, strlen(m), 4096, &req, &err), -1);
    assert_true(err.has_request_id);
    assert_string_equal(err.request_id, "r7");
}

static void test_req_url_form_of_get_stream(void **state)
{
    (void)state;
    gw_request_t req;
    gw_reqerr_t err;
    assert_int_equal(gw_request_from_url("fix%74ure",
                                         "limit=10&where=a.b:eq:42&where=name:like:al%25"
                                         "&where=code:eq:%2242%22&where=x:is_null"
                                         "&where=id:in:1,2,3&order_by=id&desc=true&token=t",
                                         &req, &err),
                     0);
    assert_string_equal(req.entity, "fixture");
    assert_int_equal(req.limit, 10);
    assert_int_equal(req.npreds, 5);
    assert_int_equal(req.preds[0].type, FW_VALUE_NUMBER);
    assert_int_equal(req.preds[1].type, FW_VALUE_TEXT);
    assert_string_equal(req.preds[1].value, "al%");
    assert_int_equal(req.preds[2].type, FW_VALUE_TEXT); /* "42" quoted: a string */
    assert_string_equal(req.preds[2].value, "42");
    assert_int_equal(req.preds[3].op, FW_OP_IS_NULL);
    assert_int_equal(req.preds[4].nvalues, 3);
    assert_true(req.order_desc);
    gw_request_free(&req);
    assert_int_equal(gw_request_from_url("e", "where=a;b:eq:1", &req, &err), -1);
    assert_int_equal(gw_request_from_url("e", "where=a:nope:1", &req, &err), -1);
    assert_int_equal(gw_request_from_url("e", "where=a:eq", &req, &err), -1);
    assert_int_equal(gw_request_from_url("e", "limit=-3", &req, &err), -1);
    assert_int_equal(gw_request_from_url("e", "limit=3x", &req, &err), -1);
    assert_int_equal(gw_request_from_url("e", "sql=select", &req, &err), -1);
    assert_int_equal(gw_request_from_url("e", "where=a:eq:%zz", &req, &err), -1);
    assert_int_equal(gw_request_from_url("e", "where=a:eq:%00", &req, &err), -1);
    assert_int_equal(gw_request_from_url("", NULL, &req, &err), -1);
    assert_int_equal(gw_request_from_url("e", NULL, &req, &err), 0);
    gw_request_free(&req);
}

static void test_req_order_by_element_null_is_a_key_not_sql_null(void **state)
{
    (void)state;
    gw_request_t req;
    /* '{a,null}' would be an array whose second element is SQL NULL: #> then yields NULL for
     * every row and the order is silently lost */
    parse_ok("{\"type\":\"stream_query\",\"entity\":\"e\",\"order_by\":{\"path\":\"a.null\"}}",
             &req);
    char *sql = sql_of(&req);
    assert_non_null(strstr(sql, "#>'{\"a\",\"null\"}'"));
    free(sql);
    gw_request_free(&req);
    parse_ok("{\"type\":\"stream_query\",\"entity\":\"e\",\"order_by\":{\"path\":\"NULL\"}}", &req);
    sql = sql_of(&req);
    assert_non_null(strstr(sql, "#>'{\"NULL\"}'"));
    free(sql);
    gw_request_free(&req);
    /* the longest path still fits */
    char m[2048];
    int n = snprintf(m, sizeof(m),
                     "{\"type\":\"stream_query\",\"entity\":\"e\",\"order_by\":"
                     "{\"path\":\"");
    for (int i = 0; i < 16; i++) {
        if (i > 0)
            m[n++] = '.';
        memset(m + n, 'k', 63);
        n += 63;
    }
    snprintf(m + n, sizeof(m) - (size_t)n, "\"}}");
    parse_ok(m, &req);
    sql = sql_of(&req);
    assert_non_null(strstr(sql, "\"kkk"));
    assert_non_null(strstr(sql, "kkk\"}'"));
    free(sql);
    gw_request_free(&req);
}

static void test_req_url_limit_out_of_range_and_bad_utf8_refused(void **state)
{
    (void)state;
    gw_request_t req;
    gw_reqerr_t err;
    /* strtoll saturates to LLONG_MAX: that is not what the client asked for */
    assert_int_equal(gw_request_from_url("e", "limit=99999999999999999999", &req, &err), -1);
    assert_non_null(strstr(err.message, "limit"));
    assert_int_equal(gw_request_from_url("e", "limit=9223372036854775808", &req, &err), -1);
    assert_int_equal(gw_request_from_url("e", "limit=9223372036854775807", &req, &err), 0);
    assert_int_equal(req.limit, INT64_MAX);
    gw_request_free(&req);
    /* bytes that are not UTF-8 never reach PostgreSQL: refused as a bad request */
    assert_int_equal(gw_request_from_url("e", "where=name:eq:%FF%FE", &req, &err), -1);
    assert_non_null(strstr(err.message, "UTF-8"));
    assert_int_equal(gw_request_from_url("e", "where=name:eq:%C0%AF", &req, &err), -1);
    assert_int_equal(gw_request_from_url("e", "where=name:in:a,%ED%A0%80", &req, &err), -1);
    assert_int_equal(gw_request_from_url("e%FF", NULL, &req, &err), -1);
    assert_int_equal(gw_request_from_url("e", "where=name:eq:%C3%A9t%C3%A9", &req, &err), 0);
    assert_string_equal(req.preds[0].value, "\xc3\xa9t\xc3\xa9");
    gw_request_free(&req);
}

static void test_req_url_limit_is_digits_only(void **state)
{
    (void)state;
    gw_request_t req;
    gw_reqerr_t err;
    /* strtoll skips leading white space and takes a sign: neither is a number here */
    const char *bad[] = {"limit=%205", "limit=%095", "limit=%0A5", "limit=+5", "limit=-0",
                         "limit=5%20", "limit=", "limit=0x10", "limit=%2B5"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(gw_request_from_url("e", bad[i], &req, &err), -1);
        assert_non_null(strstr(err.message, "limit"));
    }
    assert_int_equal(gw_request_from_url("e", "limit=05", &req, &err), 0);
    assert_int_equal(req.limit, 5);
    gw_request_free(&req);
}

static void test_req_host_header_names_this_server_only(void **state)
{
    (void)state;
    char *none[] = {NULL};
    /* loopback names on the listen port */
    assert_true(gw_host_allowed("127.0.0.1:8080", "127.0.0.1", 8080, none, 0));
    assert_true(gw_host_allowed("localhost:8080", "127.0.0.1", 8080, none, 0));
    assert_true(gw_host_allowed("LocalHost:8080", "127.0.0.1", 8080, none, 0));
    assert_true(gw_host_allowed("[::1]:8080", "127.0.0.1", 8080, none, 0));
    /* another port, no port (unless 80), another name: refused (DNS rebinding) */
    assert_false(gw_host_allowed("127.0.0.1:8081", "127.0.0.1", 8080, none, 0));
    assert_false(gw_host_allowed("127.0.0.1", "127.0.0.1", 8080, none, 0));
    assert_true(gw_host_allowed("localhost", "127.0.0.1", 80, none, 0));
    assert_false(gw_host_allowed("evil.example:8080", "127.0.0.1", 8080, none, 0));
    assert_false(gw_host_allowed("localhost.evil.example:8080", "127.0.0.1", 8080, none, 0));
    assert_false(gw_host_allowed("127.0.0.1.nip.io:8080", "127.0.0.1", 8080, none, 0));
    /* malformed or missing */
    assert_false(gw_host_allowed(NULL, "127.0.0.1", 8080, none, 0));
    assert_false(gw_host_allowed("", "127.0.0.1", 8080, none, 0));
    assert_false(gw_host_allowed(":8080", "127.0.0.1", 8080, none, 0));
    assert_false(gw_host_allowed("localhost:", "127.0.0.1", 8080, none, 0));
    assert_false(gw_host_allowed("localhost:80x", "127.0.0.1", 80, none, 0));
    assert_false(gw_host_allowed("localhost:99999999", "127.0.0.1", 8080, none, 0));
    assert_false(gw_host_allowed("[::1", "127.0.0.1", 8080, none, 0));
    assert_false(gw_host_allowed("local host:8080", "127.0.0.1", 8080, none, 0));
    /* the listen address itself, but a wildcard names no host */
    assert_true(gw_host_allowed("10.1.2.3:9000", "10.1.2.3", 9000, none, 0));
    assert_true(gw_host_allowed("[fd00::5]:9000", "fd00::5", 9000, none, 0));
    assert_false(gw_host_allowed("0.0.0.0:9000", "0.0.0.0", 9000, none, 0));
    assert_false(gw_host_allowed("10.1.2.3:9000", "0.0.0.0", 9000, none, 0));
    assert_true(gw_host_allowed("localhost:9000", "0.0.0.0", 9000, none, 0));
    /* --allow-host: a name for any port, or NAME:PORT exactly, or anything */
    char a0[] = "gw.example.com", a1[] = "proxy.internal:8443", a2[] = "[fd00::7]";
    char *allowed[] = {a0, a1, a2};
    assert_true(gw_host_allowed("gw.example.com", "127.0.0.1", 8080, allowed, 3));
    assert_true(gw_host_allowed("GW.example.com:443", "127.0.0.1", 8080, allowed, 3));
    assert_true(gw_host_allowed("proxy.internal:8443", "127.0.0.1", 8080, allowed, 3));
    assert_false(gw_host_allowed("proxy.internal:8080", "127.0.0.1", 8080, allowed, 3));
    assert_false(gw_host_allowed("proxy.internal", "127.0.0.1", 8080, allowed, 3));
    assert_true(gw_host_allowed("[fd00::7]:1", "127.0.0.1", 8080, allowed, 3));
    assert_false(gw_host_allowed("example.com:8080", "127.0.0.1", 8080, allowed, 3));
    char star[] = "*";
    char *any[] = {star};
    assert_true(gw_host_allowed("anything.example:1", "127.0.0.1", 8080, any, 1));
    /* what counts as loopback (--listen without --token) */
    assert_true(gw_host_is_loopback("127.0.0.1"));
    assert_true(gw_host_is_loopback("127.1.2.254"));
    assert_true(gw_host_is_loopback("::1"));
    assert_true(gw_host_is_loopback("localhost"));
    assert_false(gw_host_is_loopback("0.0.0.0"));
    assert_false(gw_host_is_loopback("::"));
    assert_false(gw_host_is_loopback("10.0.0.1"));
    assert_false(gw_host_is_loopback("127.0.0.256"));
    assert_false(gw_host_is_loopback("127.0.0"));
    assert_false(gw_host_is_loopback("127.0.0.1.2"));
    assert_false(gw_host_is_loopback("127.0.0.1x"));
    assert_false(gw_host_is_loopback("1270.0.0.1"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_req_stream_query_with_every_field),
        cmocka_unit_test(test_req_minimal_and_control_messages),
        cmocka_unit_test(test_req_refusals_name_the_problem),
        cmocka_unit_test(test_req_limits_at_and_one_past),
        cmocka_unit_test(test_req_error_echoes_request_id),
        cmocka_unit_test(test_req_url_form_of_get_stream),
        cmocka_unit_test(test_req_order_by_element_null_is_a_key_not_sql_null),
        cmocka_unit_test(test_req_url_limit_out_of_range_and_bad_utf8_refused),
        cmocka_unit_test(test_req_url_limit_is_digits_only),
        cmocka_unit_test(test_req_host_header_names_this_server_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
