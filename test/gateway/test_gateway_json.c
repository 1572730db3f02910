/* SPDX-License-Identifier: MIT */
/*
 * The strict JSON parser of fwire serve (tools/serve_json.c): what it accepts, what it refuses
 * and each limit at its default, at the limit and one past. Every input is parsed from memory
 * that ends flush against a PROT_NONE page (STYLE 24), so a read past the end faults.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../guard.h"
#include "serve_json.h"

static int parse_lim(const char *text, size_t len, const gwjson_limits_t *lim, gwjson_doc_t **doc,
                     char *err, size_t cap)
{
    guard_buf_t g;
    assert_int_equal(guard_put(&g, text, len), 0);
    int rc = gwjson_parse((const char *)g.data, len, lim, doc, err, cap);
    /* the tree must not point into the input: read it after the input is gone */
    guard_release(&g);
    return rc;
}

static gwjson_doc_t *parse_ok(const char *text)
{
    gwjson_doc_t *doc = NULL;
    char err[128];
    int rc = parse_lim(text, strlen(text), NULL, &doc, err, sizeof(err));
    if (rc != 0)
        fail_msg("refused %s: %s", text, err);
    return doc;
}

static void refused(const char *text, const char *why)
{
    gwjson_doc_t *doc = NULL;
    char err[128];
    int rc = parse_lim(text, strlen(text), NULL, &doc, err, sizeof(err));
    if (rc != -1)
        fail_msg("accepted %s", text);
    assert_null(doc);
    if (why != NULL && strstr(err, why) == NULL)
        fail_msg("%s: error '%s' does not say '%s'", text, err, why);
}

static void test_json_parses_a_stream_query(void **state)
{
    (void)state;
    gwjson_doc_t *d = parse_ok("{\"type\":\"stream_query\",\"where\":[{\"path\":\"a.b\",\"op\":"
                               "\"eq\",\"value\":42.5e1}],\"limit\":1000,\"x\":null,\"t\":true}");
    const gwjson_t *r = gwjson_root(d);
    assert_int_equal(r->type, GWJSON_OBJECT);
    assert_int_equal(r->count, 5);
    assert_string_equal(gwjson_cstr(gwjson_get(r, "type")), "stream_query");
    const gwjson_t *w = gwjson_get(r, "where");
    assert_int_equal(w->type, GWJSON_ARRAY);
    const gwjson_t *v = gwjson_get(w->child, "value");
    assert_int_equal(v->type, GWJSON_NUMBER);
    assert_string_equal(v->str, "42.5e1"); /* the literal, as sent */
    assert_true(v->num == 425.0);
    assert_int_equal(gwjson_get(r, "x")->type, GWJSON_NULL);
    assert_int_equal(gwjson_get(r, "t")->type, GWJSON_TRUE);
    assert_null(gwjson_get(r, "missing"));
    gwjson_free(d);
}

static void test_json_decodes_escapes_and_surrogate_pairs(void **state)
{
    (void)state;
    gwjson_doc_t *d = parse_ok("\"a\\\"b\\\\c\\/\\n\\u00e9\\ud83d\\ude00\"");
    const gwjson_t *s = gwjson_root(d);
    assert_int_equal(s->type, GWJSON_STRING);
    assert_string_equal(s->str, "a\"b\\c/\n\xc3\xa9\xf0\x9f\x98\x80");
    gwjson_free(d);
    d = parse_ok("\"x\\u0000y\"");
    assert_int_equal(gwjson_root(d)->len, 3);
    assert_null(gwjson_cstr(gwjson_root(d))); /* a NUL inside is not a C string */
    gwjson_free(d);
}

static void test_json_refuses_what_rfc_8259_does_not_allow(void **state)
{
    (void)state;
    refused("", "expected a value");
    refused("   ", "expected a value");
    refused("{\"a\":1,}", "string key");
    refused("[1,]", "unexpected");
    refused("{\"a\":1,\"a\":2}", "duplicate key");
    refused("01", "trailing");
    refused("1.", "fraction");
    refused("1e", "exponent");
    refused("-", "bad number");
    refused("+1", "unexpected");
    refused("NaN", "unexpected");
    refused("tru", "literal");
    refused("nul", "literal");
    refused("\"\\ud800\"", "surrogate");
    refused("\"\\udc00\"", "surrogate");
    refused("\"\\ud800\\u0041\"", "surrogate");
    refused("\"\\x41\"", "escape");
    refused("\"\\u12g4\"", "hex");
    refused("\"\\u12", "truncated");
    refused("\"a\tb\"", "control");
    refused("\"\xc3\"", "UTF-8");
    refused("\"\xc0\xaf\"", "UTF-8");         /* overlong */
    refused("\"\xed\xa0\x80\"", "UTF-8");     /* an encoded surrogate */
    refused("\"\xf4\x90\x80\x80\"", "UTF-8"); /* past U+10FFFF */
    refused("\"abc", "unterminated");
    refused("[1 2]", "expected ','");
    refused("{\"a\" 1}", "expected ':'");
    refused("{} {}", "trailing");
    refused("/* c */ 1", "unexpected");
}

static void test_json_depth_limit_at_and_one_past(void **state)
{
    (void)state;
    gwjson_limits_t lim = {.max_depth = 4};
    gwjson_doc_t *d = NULL;
    char err[128];
    assert_int_equal(parse_lim("[[[[1]]]]", 9, &lim, &d, err, sizeof(err)), 0);
    gwjson_free(d);
    assert_int_equal(parse_lim("[[[[[1]]]]]", 11, &lim, &d, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "deeply"));
    /* the default (32) stops a deep attack long before the stack could */
    char deep[100001];
    memset(deep, '[', 100000);
    deep[100000] = '\0';
    gwjson_limits_t big = {.max_bytes = 200000};
    assert_int_equal(parse_lim(deep, 100000, &big, &d, err, sizeof(err)), -1);
}

static void test_json_size_and_node_limits(void **state)
{
    (void)state;
    gwjson_doc_t *d = NULL;
    char err[128];
    gwjson_limits_t lim = {.max_bytes = 5};
    assert_int_equal(parse_lim("[1,2]", 5, &lim, &d, err, sizeof(err)), 0);
    gwjson_free(d);
    assert_int_equal(parse_lim("[1,22]", 6, &lim, &d, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "exceeds"));
    gwjson_limits_t nodes = {.max_nodes = 3};
    assert_int_equal(parse_lim("[1,2]", 5, &nodes, &d, err, sizeof(err)), 0);
    gwjson_free(d);
    assert_int_equal(parse_lim("[1,2,3]", 7, &nodes, &d, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "too many"));
    /* default max_bytes: 64 KiB */
    size_t n = 64 * 1024 + 1;
    char *big = malloc(n);
    assert_non_null(big);
    memset(big, ' ', n);
    big[0] = '1';
    assert_int_equal(parse_lim(big, n, NULL, &d, err, sizeof(err)), -1);
    assert_int_equal(parse_lim(big, n - 1, NULL, &d, err, sizeof(err)), 0);
    gwjson_free(d);
    free(big);
}

/* An object of n members {"k0":0,"k1":1,...} (a duplicate last key when dup). */
static char *object_of(size_t n, bool dup, size_t *len)
{
    size_t cap = 16 + n * 24;
    char *t = malloc(cap);
    assert_non_null(t);
    size_t k = 0;
    t[k++] = '{';
    for (size_t i = 0; i < n; i++)
        k += (size_t)snprintf(t + k, cap - k, "%s\"k%zu\":%zu", i > 0 ? "," : "",
                              dup && i == n - 1 ? (size_t)0 : i, i);
    t[k++] = '}';
    *len = k;
    return t;
}

static void test_json_object_member_limit_at_and_one_past(void **state)
{
    (void)state;
    gwjson_doc_t *d = NULL;
    char err[128];
    size_t len;
    /* default: 32 members (duplicate detection is quadratic in them) */
    char *t = object_of(32, false, &len);
    assert_int_equal(parse_lim(t, len, NULL, &d, err, sizeof(err)), 0);
    assert_int_equal(gwjson_root(d)->count, 32);
    gwjson_free(d);
    free(t);
    t = object_of(33, false, &len);
    assert_int_equal(parse_lim(t, len, NULL, &d, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "too many members"));
    free(t);
    /* a duplicate is still found at the limit */
    t = object_of(32, true, &len);
    assert_int_equal(parse_lim(t, len, NULL, &d, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "duplicate"));
    free(t);
    /* set: 4 and 5 */
    gwjson_limits_t lim = {.max_keys = 4};
    t = object_of(4, false, &len);
    assert_int_equal(parse_lim(t, len, &lim, &d, err, sizeof(err)), 0);
    gwjson_free(d);
    free(t);
    t = object_of(5, false, &len);
    assert_int_equal(parse_lim(t, len, &lim, &d, err, sizeof(err)), -1);
    free(t);
    /* the reviewer's 4150-key message is refused at the 33rd key, not compared 8.6M times */
    t = object_of(4150, false, &len);
    gwjson_limits_t big = {.max_bytes = len};
    assert_int_equal(parse_lim(t, len, &big, &d, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "too many members"));
    free(t);
    /* arrays are not capped by it: an `in` list of 1000 values parses */
    size_t cap = 8 + 1000 * 6;
    char *arr = malloc(cap);
    assert_non_null(arr);
    size_t k = 0;
    arr[k++] = '[';
    for (int i = 0; i < 1000; i++)
        k += (size_t)snprintf(arr + k, cap - k, "%s%d", i > 0 ? "," : "", i);
    arr[k++] = ']';
    assert_int_equal(parse_lim(arr, k, NULL, &d, err, sizeof(err)), 0);
    assert_int_equal(gwjson_root(d)->count, 1000);
    gwjson_free(d);
    free(arr);
}

static void test_json_writer_escapes_and_repairs_utf8(void **state)
{
    (void)state;
    gwbuf_t b = {0};
    gwbuf_json_str(&b, "a\"\\\n\x01\xc3\xa9\xff", 8);
    gwbuf_append(&b, "", 1);
    assert_string_equal(b.ptr, "\"a\\\"\\\\\\u000a\\u0001\xc3\xa9\xef\xbf\xbd\"");
    gwbuf_reset(&b);
    gwbuf_json_cstr(&b, NULL);
    gwbuf_json_num(&b, 12.34, true);
    gwbuf_append(&b, "", 1);
    assert_string_equal(b.ptr, "null12.3");
    assert_false(b.failed);
    gwbuf_free(&b);
    assert_true(gwjson_utf8_valid((const uint8_t *)"\xe2\x82\xac", 3));
    assert_false(gwjson_utf8_valid((const uint8_t *)"\xe2\x82", 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_parses_a_stream_query),
        cmocka_unit_test(test_json_decodes_escapes_and_surrogate_pairs),
        cmocka_unit_test(test_json_refuses_what_rfc_8259_does_not_allow),
        cmocka_unit_test(test_json_depth_limit_at_and_one_past),
        cmocka_unit_test(test_json_size_and_node_limits),
        cmocka_unit_test(test_json_object_member_limit_at_and_one_past),
        cmocka_unit_test(test_json_writer_escapes_and_repairs_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
