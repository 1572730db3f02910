/* SPDX-License-Identifier: MIT */
/*
 * target_session_attrs as libpq 16/17 decides it (lib/route.c), table-driven: every target
 * against every combination of the two ParameterStatus values a PostgreSQL 14+ server reports
 * (and their absence), the fallback queries and their answers, role changes during a session;
 * and load_balance_hosts=random's host shuffle (a permutation; every host first about equally
 * often).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dialer.h"
#include "route.h"

#define U FW__TRI_UNKNOWN
#define N FW__TRI_NO
#define Y FW__TRI_YES

static fw__route_facts_t facts(fw__tri_t hot, fw__tri_t dro, int version)
{
    fw__route_facts_t f = {hot, dro, FW__TRI_UNKNOWN, version};
    return f;
}

typedef struct row_s {
    fw__tsa_t target;
    fw__tri_t hot, dro;
    fw__route_verdict_t want;
    const char *why_or_query; /* WRONG: the reason; ASK: the query; OK: NULL */
} row_t;


static void test_judge_table(void **state)
{
    (void)state;
    static const row_t rows[] = {
        /* any: never asks, never refuses */
        {FW__TSA_ANY, U, U, FW__ROUTE_OK, NULL},
        {FW__TSA_ANY, Y, Y, FW__ROUTE_OK, NULL},
        /* read-write: read-only when either is on; both must be known or it asks */
        {FW__TSA_READ_WRITE, N, N, FW__ROUTE_OK, NULL},
        {FW__TSA_READ_WRITE, Y, N, FW__ROUTE_WRONG, "session is read-only"},
        {FW__TSA_READ_WRITE, N, Y, FW__ROUTE_WRONG, "session is read-only"},
        {FW__TSA_READ_WRITE, Y, Y, FW__ROUTE_WRONG, "session is read-only"},
        {FW__TSA_READ_WRITE, U, N, FW__ROUTE_ASK, "SHOW transaction_read_only"},
        {FW__TSA_READ_WRITE, N, U, FW__ROUTE_ASK, "SHOW transaction_read_only"},
        {FW__TSA_READ_WRITE, U, U, FW__ROUTE_ASK, "SHOW transaction_read_only"},
        /* read-only */
        {FW__TSA_READ_ONLY, N, N, FW__ROUTE_WRONG, "session is not read-only"},
        {FW__TSA_READ_ONLY, Y, N, FW__ROUTE_OK, NULL},
        {FW__TSA_READ_ONLY, N, Y, FW__ROUTE_OK, NULL},
        {FW__TSA_READ_ONLY, U, Y, FW__ROUTE_ASK, "SHOW transaction_read_only"},
        /* primary: in_hot_standby alone decides (a primary with default read-only is a primary) */
        {FW__TSA_PRIMARY, N, N, FW__ROUTE_OK, NULL},
        {FW__TSA_PRIMARY, N, Y, FW__ROUTE_OK, NULL},
        {FW__TSA_PRIMARY, Y, N, FW__ROUTE_WRONG, "server is in hot standby mode"},
        {FW__TSA_PRIMARY, U, N, FW__ROUTE_ASK, "SELECT pg_catalog.pg_is_in_recovery()"},
        /* standby and prefer-standby (first pass) */
        {FW__TSA_STANDBY, Y, U, FW__ROUTE_OK, NULL},
        {FW__TSA_STANDBY, N, Y, FW__ROUTE_WRONG, "server is not in hot standby mode"},
        {FW__TSA_STANDBY, U, U, FW__ROUTE_ASK, "SELECT pg_catalog.pg_is_in_recovery()"},
        {FW__TSA_PREFER_STANDBY, Y, N, FW__ROUTE_OK, NULL},
        {FW__TSA_PREFER_STANDBY, N, N, FW__ROUTE_WRONG, "server is not in hot standby mode"},
        {FW__TSA_PREFER_STANDBY, U, N, FW__ROUTE_ASK, "SELECT pg_catalog.pg_is_in_recovery()"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const row_t *r = &rows[i];
        fw__route_facts_t f = facts(r->hot, r->dro, 150000);
        const char *query = "unset", *why = "unset";
        fw__route_verdict_t v = fw__route_judge(r->target, &f, &query, &why);
        if (v != r->want)
            fail_msg("row %zu (%s): verdict %d, want %d", i, fw__route_target_name(r->target),
                     (int)v, (int)r->want);
        if (r->want == FW__ROUTE_OK) {
            assert_null(query);
            assert_null(why);
        } else if (r->want == FW__ROUTE_WRONG) {
            assert_null(query);
            assert_string_equal(why, r->why_or_query);
        } else {
            assert_null(why);
            assert_string_equal(query, r->why_or_query);
        }
    }
}

/* Before 9.0 there was no hot standby: libpq takes such a server as a primary unasked. */
static void test_judge_old_server(void **state)
{
    (void)state;
    fw__route_facts_t f = facts(U, U, 80400);
    assert_int_equal(fw__route_judge(FW__TSA_PRIMARY, &f, NULL, NULL), FW__ROUTE_OK);
    const char *why = NULL;
    assert_int_equal(fw__route_judge(FW__TSA_STANDBY, &f, NULL, &why), FW__ROUTE_WRONG);
    assert_string_equal(why, "server is not in hot standby mode");
    /* but read-write still asks: an 8.4 server may have default_transaction_read_only on */
    assert_int_equal(fw__route_judge(FW__TSA_READ_WRITE, &f, NULL, NULL), FW__ROUTE_ASK);
}

static void test_answers(void **state)
{
    (void)state;
    const char *why = NULL;
    fw__route_facts_t f = facts(U, U, 130000);
    assert_int_equal(fw__route_answer(FW__TSA_READ_WRITE, &f, "off", 3, &why), FW__ROUTE_OK);
    assert_int_equal(f.session_read_only, N);
    f = facts(U, U, 130000);
    assert_int_equal(fw__route_answer(FW__TSA_READ_WRITE, &f, "on", 2, &why), FW__ROUTE_WRONG);
    assert_string_equal(why, "session is read-only");
    assert_true(fw__route_read_only(&f));
    f = facts(U, U, 130000);
    assert_int_equal(fw__route_answer(FW__TSA_READ_ONLY, &f, "on", 2, &why), FW__ROUTE_OK);
    f = facts(U, U, 130000);
    assert_int_equal(fw__route_answer(FW__TSA_STANDBY, &f, "t", 1, &why), FW__ROUTE_OK);
    assert_int_equal(fw__route_role(&f), FW_ROLE_STANDBY);
    f = facts(U, U, 130000);
    assert_int_equal(fw__route_answer(FW__TSA_PRIMARY, &f, "t", 1, &why), FW__ROUTE_WRONG);
    assert_string_equal(why, "server is in hot standby mode");
    f = facts(U, U, 130000);
    assert_int_equal(fw__route_answer(FW__TSA_PREFER_STANDBY, &f, "f", 1, &why),
                     FW__ROUTE_WRONG);
    assert_int_equal(fw__route_role(&f), FW_ROLE_PRIMARY);
    /* a NULL, an empty or a strange answer judges nothing: refused, naming the query */
    static const struct {
        fw__tsa_t t;
        const char *v;
        const char *why;
    } bad[] = {
        {FW__TSA_READ_WRITE, NULL, "\"SHOW transaction_read_only\" failed"},
        {FW__TSA_READ_WRITE, "", "\"SHOW transaction_read_only\" failed"},
        {FW__TSA_READ_WRITE, "yes", "\"SHOW transaction_read_only\" failed"},
        {FW__TSA_READ_WRITE, "onn", "\"SHOW transaction_read_only\" failed"},
        {FW__TSA_STANDBY, NULL, "\"SELECT pg_is_in_recovery()\" failed"},
        {FW__TSA_STANDBY, "true", "\"SELECT pg_is_in_recovery()\" failed"},
        {FW__TSA_PRIMARY, "", "\"SELECT pg_is_in_recovery()\" failed"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        f = facts(U, U, 130000);
        why = NULL;
        size_t len = bad[i].v != NULL ? strlen(bad[i].v) : 0;
        assert_int_equal(fw__route_answer(bad[i].t, &f, bad[i].v, len, &why), FW__ROUTE_WRONG);
        assert_string_equal(why, bad[i].why);
    }
}

/* The start-up parameters: "on"/"off" only; a promotion's ParameterStatus changes the role. */
static void test_facts(void **state)
{
    (void)state;
    fw__params_t p;
    memset(&p, 0, sizeof(p));
    fw_slice_t n1 = {(const uint8_t *)"in_hot_standby", 14}, v1 = {(const uint8_t *)"on", 2};
    fw_slice_t n2 = {(const uint8_t *)"default_transaction_read_only", 29},
               v2 = {(const uint8_t *)"off", 3};
    fw_slice_t n3 = {(const uint8_t *)"server_version_num", 18},
               v3 = {(const uint8_t *)"150020", 6};
    assert_int_equal(fw__params_set(&p, n1, v1), 0);
    assert_int_equal(fw__params_set(&p, n2, v2), 0);
    assert_int_equal(fw__params_set(&p, n3, v3), 0);
    fw__route_facts_t f;
    fw__route_facts_from_params(&p, &f);
    assert_int_equal(f.in_hot_standby, Y);
    assert_int_equal(f.default_read_only, N);
    assert_int_equal(f.server_version_num, 150020);
    assert_int_equal(fw__route_role(&f), FW_ROLE_STANDBY);
    assert_true(fw__route_read_only(&f));
    /* promotion */
    assert_int_equal(fw__route_facts_update(&f, "in_hot_standby", 14, "off", 3), 1);
    assert_int_equal(fw__route_role(&f), FW_ROLE_PRIMARY);
    assert_false(fw__route_read_only(&f));
    assert_int_equal(fw__route_facts_update(&f, "in_hot_standby", 14, "off", 3), 0); /* same */
    assert_int_equal(fw__route_facts_update(&f, "TimeZone", 8, "UTC", 3), 0);
    assert_int_equal(fw__route_facts_update(&f, "default_transaction_read_only", 29, "on", 2), 1);
    assert_true(fw__route_read_only(&f));
    assert_int_equal(fw__route_role(&f), FW_ROLE_PRIMARY);
    /* anything but on/off is unknown, never a guess */
    assert_int_equal(fw__route_facts_update(&f, "in_hot_standby", 14, "ON", 2), 1);
    assert_int_equal(fw__route_role(&f), FW_ROLE_UNKNOWN);
    /* no parameters at all: an old server, every fact unknown */
    fw__params_t none;
    memset(&none, 0, sizeof(none));
    fw__route_facts_from_params(&none, &f);
    assert_int_equal(f.in_hot_standby, U);
    assert_int_equal(f.default_read_only, U);
    assert_int_equal(f.server_version_num, 0);
}

/* The shuffle is a permutation, and over many draws each of 3 hosts comes first about a third
 * of the time (the bound is 8 standard deviations wide: it fails for a broken shuffle, not for
 * an unlucky seed). */
static void test_shuffle(void **state)
{
    (void)state;
    enum { HOSTS = 3, DRAWS = 30000 };
    char names[HOSTS][4] = {"h0", "h1", "h2"};
    unsigned first[HOSTS] = {0};
    for (int d = 0; d < DRAWS; d++) {
        fw__conninfo_host_t h[HOSTS];
        memset(h, 0, sizeof(h));
        for (int i = 0; i < HOSTS; i++)
            h[i].host = names[i];
        fw__dial_shuffle_hosts(h, HOSTS);
        unsigned seen = 0;
        for (int i = 0; i < HOSTS; i++)
            seen |= 1u << (h[i].host[1] - '0');
        assert_int_equal(seen, 7u);
        first[h[0].host[1] - '0']++;
    }
    /* mean 10000, sd = sqrt(30000 * 1/3 * 2/3) = 81.6 */
    for (int i = 0; i < HOSTS; i++) {
        if (first[i] < 10000 - 653 || first[i] > 10000 + 653)
            fail_msg("host %d first %u times of %d", i, first[i], DRAWS);
    }
    /* one host and none: nothing to do, nothing touched */
    fw__conninfo_host_t one = {0};
    one.host = names[0];
    fw__dial_shuffle_hosts(&one, 1);
    assert_string_equal(one.host, "h0");
    fw__dial_shuffle_hosts(NULL, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_judge_table), cmocka_unit_test(test_judge_old_server),
        cmocka_unit_test(test_answers),     cmocka_unit_test(test_facts),
        cmocka_unit_test(test_shuffle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
