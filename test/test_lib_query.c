/* SPDX-License-Identifier: MIT */
/*
 * The query builder: golden SQL for every source form, operator, value type and clause; the
 * bytes of one run decoded back message by message (and once against hand-built bytes); every
 * refusal; sticky errors; every limit four ways; and memory only through the allocator hook,
 * including a failure at every allocation in turn.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "alloc.h"
#include "query.h"

/* ---- helpers ------------------------------------------------------------------------------ */

/* The SQL of q; a static copy valid until the next call. */
static const char *sql_of(const fw_query_t *q)
{
    static char buf[1 << 16];
    long n = fw_query_sql(q, buf, sizeof(buf));
    assert_true(n >= 0);
    assert_true((size_t)n < sizeof(buf));
    assert_int_equal(strlen(buf), (size_t)n);
    return buf;
}

/* A new query reading v_<entity>. */
static fw_query_t *on_entity(const char *entity)
{
    fw_query_t *q = NULL;
    assert_int_equal(fw_query_new(&q), 0);
    assert_non_null(q);
    assert_int_equal(fw_query_entity(q, entity), 0);
    return q;
}

/* The SQL of `SELECT ... FROM "v_t" WHERE <one typed predicate>`. */
static const char *where_sql_of(const char *path, fw_op_t op, fw_value_type_t type,
                                const char *value)
{
    fw_query_t *q = on_entity("t");
    assert_int_equal(fw_query_where(q, path, op, type, value), 0);
    const char *s = sql_of(q);
    fw_query_free(q);
    return s;
}

#define FROM_T "SELECT \"data\" FROM \"v_t\""

/* FRESH(call): runs a setter on a new query `fq` and returns what it returned, after checking
 * that a failure stuck (a later valid setter returns it too). */
static fw_query_t *fq;

static void fresh_begin(void)
{
    fq = NULL;
    assert_int_equal(fw_query_new(&fq), 0);
}

static int fresh_end(int rc)
{
    if (rc != 0)
        assert_int_equal(fw_query_limit(fq, 1), rc);
    fw_query_free(fq);
    fq = NULL;
    return rc;
}

#define FRESH(call) (fresh_begin(), fresh_end(call))

/* ---- decoding frontend messages (proto/ decodes only backend ones) ------------------------ */

typedef struct fmsg_s {
    uint8_t type;
    const uint8_t *p, *end; /* the body, consumed by the readers below */
} fmsg_t;

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Splits buf into messages; returns how many (at most max), checking every length. */
static size_t split(const uint8_t *buf, size_t len, fmsg_t *out, size_t max)
{
    size_t n = 0, at = 0;
    while (at < len) {
        assert_true(n < max);
        assert_true(len - at >= 5);
        uint32_t mlen = be32(buf + at + 1);
        assert_true(mlen >= 4);
        assert_true(mlen - 4 <= len - at - 5);
        out[n].type = buf[at];
        out[n].p = buf + at + 5;
        out[n].end = buf + at + 1 + mlen;
        at += 1 + (size_t)mlen;
        n++;
    }
    return n;
}

static uint16_t rd16(fmsg_t *m)
{
    assert_true(m->end - m->p >= 2);
    uint16_t v = (uint16_t)(m->p[0] << 8 | m->p[1]);
    m->p += 2;
    return v;
}

static int32_t rd32(fmsg_t *m)
{
    assert_true(m->end - m->p >= 4);
    uint32_t v = be32(m->p);
    m->p += 4;
    return (int32_t)v;
}

static const char *rdstr(fmsg_t *m)
{
    const uint8_t *nul = memchr(m->p, 0, (size_t)(m->end - m->p));
    assert_non_null(nul);
    const char *s = (const char *)m->p;
    m->p = nul + 1;
    return s;
}

static void expect_parse(fmsg_t m, const char *sql, uint16_t nparams)
{
    assert_int_equal(m.type, 'P');
    assert_string_equal(rdstr(&m), "");
    assert_string_equal(rdstr(&m), sql);
    assert_int_equal(rd16(&m), nparams);
    for (uint16_t i = 0; i < nparams; i++)
        assert_int_equal(rd32(&m), 0); /* the server infers every type from the casts */
    assert_ptr_equal(m.p, m.end);
}

/* A Bind of the unnamed portal and statement with text parameters `values` and text results. */
static void expect_bind(fmsg_t m, const char *const *values, uint16_t nparams)
{
    assert_int_equal(m.type, 'B');
    assert_string_equal(rdstr(&m), "");
    assert_string_equal(rdstr(&m), "");
    assert_int_equal(rd16(&m), 0); /* parameter formats: all text */
    assert_int_equal(rd16(&m), nparams);
    for (uint16_t i = 0; i < nparams; i++) {
        int32_t len = rd32(&m);
        assert_true(len >= 0);
        assert_int_equal((size_t)len, strlen(values[i]));
        assert_true(m.end - m.p >= len);
        assert_memory_equal(m.p, values[i], (size_t)len);
        m.p += len;
    }
    assert_int_equal(rd16(&m), 0); /* result formats: all text */
    assert_ptr_equal(m.p, m.end);
}

static void expect_describe_portal(fmsg_t m)
{
    assert_int_equal(m.type, 'D');
    assert_true(m.end - m.p >= 1);
    assert_int_equal(*m.p++, 'P');
    assert_string_equal(rdstr(&m), "");
    assert_ptr_equal(m.p, m.end);
}

static void expect_execute_all(fmsg_t m)
{
    assert_int_equal(m.type, 'E');
    assert_string_equal(rdstr(&m), "");
    assert_int_equal(rd32(&m), 0);
    assert_ptr_equal(m.p, m.end);
}

static void expect_sync(fmsg_t m)
{
    assert_int_equal(m.type, 'S');
    assert_ptr_equal(m.p, m.end);
}

/* ---- sources ------------------------------------------------------------------------------ */

static void test_entity_becomes_quoted_v_prefixed_view(void **state)
{
    (void)state;
    static const struct {
        const char *entity, *sql;
    } cases[] = {
        {"user", "SELECT \"data\" FROM \"v_user\""},
        {"UserAccount", "SELECT \"data\" FROM \"v_UserAccount\""}, /* case kept */
        {"order item", "SELECT \"data\" FROM \"v_order item\""},
        {"we\"ird", "SELECT \"data\" FROM \"v_we\"\"ird\""},
        {"\"", "SELECT \"data\" FROM \"v_\"\"\""},
        {"a.b", "SELECT \"data\" FROM \"v_a.b\""}, /* an entity has no schema part */
        {"x; DROP TABLE t --", "SELECT \"data\" FROM \"v_x; DROP TABLE t --\""},
        {"caf\xc3\xa9", "SELECT \"data\" FROM \"v_caf\xc3\xa9\""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fw_query_t *q = on_entity(cases[i].entity);
        assert_string_equal(sql_of(q), cases[i].sql);
        fw_query_free(q);
    }
}

static void test_relation_is_split_at_the_first_dot_and_each_part_quoted(void **state)
{
    (void)state;
    static const struct {
        const char *relation, *sql;
    } cases[] = {
        {"tv_user", "SELECT \"data\" FROM \"tv_user\""},
        {"public.tv_user", "SELECT \"data\" FROM \"public\".\"tv_user\""},
        {"My Schema.Tv User", "SELECT \"data\" FROM \"My Schema\".\"Tv User\""},
        {"a.b.c", "SELECT \"data\" FROM \"a\".\"b.c\""},
        {"s\"q.r\"\"q", "SELECT \"data\" FROM \"s\"\"q\".\"r\"\"\"\"q\""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fw_query_t *q = NULL;
        assert_int_equal(fw_query_new(&q), 0);
        assert_int_equal(fw_query_relation(q, cases[i].relation), 0);
        assert_string_equal(sql_of(q), cases[i].sql);
        fw_query_free(q);
    }
}

static void test_a_later_source_replaces_the_earlier_one(void **state)
{
    (void)state;
    fw_query_t *q = on_entity("a");
    assert_int_equal(fw_query_relation(q, "s.r"), 0);
    assert_string_equal(sql_of(q), "SELECT \"data\" FROM \"s\".\"r\"");
    assert_int_equal(fw_query_entity(q, "b"), 0);
    assert_string_equal(sql_of(q), "SELECT \"data\" FROM \"v_b\"");
    fw_query_free(q);
}

static void test_source_names_are_refused_when_empty_or_over_63_bytes(void **state)
{
    (void)state;
    char name[80];
    /* entity: "v_" + 61 bytes is 63, the limit; one more is refused */
    memset(name, 'e', sizeof(name));
    name[61] = '\0';
    assert_int_equal(FRESH(fw_query_entity(fq, name)), 0);
    name[61] = 'e';
    name[62] = '\0';
    assert_int_equal(FRESH(fw_query_entity(fq, name)), FW_EINVAL);
    assert_int_equal(FRESH(fw_query_entity(fq, "")), FW_EINVAL);
    assert_int_equal(FRESH(fw_query_entity(fq, NULL)), FW_EINVAL);

    /* relation: each part up to 63 bytes */
    memset(name, 'r', sizeof(name));
    name[63] = '\0';
    assert_int_equal(FRESH(fw_query_relation(fq, name)), 0);
    name[63] = 'r';
    name[64] = '\0';
    assert_int_equal(FRESH(fw_query_relation(fq, name)), FW_EINVAL);
    memset(name, 's', sizeof(name));
    name[63] = '.';
    name[64] = 'r';
    name[65] = '\0';
    assert_int_equal(FRESH(fw_query_relation(fq, name)), 0); /* 63-byte schema */
    memset(name, 's', sizeof(name));
    name[64] = '.';
    name[65] = 'r';
    name[66] = '\0';
    assert_int_equal(FRESH(fw_query_relation(fq, name)), FW_EINVAL); /* 64-byte schema */
    /* quotes count once: 63 quotes are 63 bytes of name, though 126 of SQL */
    memset(name, '"', sizeof(name));
    name[63] = '\0';
    assert_int_equal(FRESH(fw_query_relation(fq, name)), 0);
    assert_int_equal(FRESH(fw_query_relation(fq, "")), FW_EINVAL);
    assert_int_equal(FRESH(fw_query_relation(fq, NULL)), FW_EINVAL);
    assert_int_equal(FRESH(fw_query_relation(fq, ".")), FW_EINVAL);
    assert_int_equal(FRESH(fw_query_relation(fq, ".r")), FW_EINVAL);
    assert_int_equal(FRESH(fw_query_relation(fq, "s.")), FW_EINVAL);
}

static void test_sql_and_encode_refuse_a_query_without_source(void **state)
{
    (void)state;
    fw_query_t *q = NULL;
    assert_int_equal(fw_query_new(&q), 0);
    assert_int_equal(fw_query_where(q, "a", FW_OP_EQ, FW_VALUE_TEXT, "x"), 0);
    char buf[8];
    assert_int_equal(fw_query_sql(q, buf, sizeof(buf)), FW_EINVAL);
    fw__pq_buf_t b;
    fw__pq_buf_init(&b, &fw__alloc);
    assert_int_equal(fw__query_encode(q, &b), FW_EINVAL);
    assert_int_equal(b.len, 0);
    fw__pq_buf_free(&b);
    fw_query_free(q);
}

/* ---- WHERE -------------------------------------------------------------------------------- */

static void test_where_sql_is_wrapped_in_parentheses_and_newlines(void **state)
{
    (void)state;
    fw_query_t *q = on_entity("t");
    assert_int_equal(fw_query_where_sql(q, "data->>'a' = 'x' -- trailing comment"), 0);
    assert_string_equal(sql_of(q), FROM_T " WHERE (\ndata->>'a' = 'x' -- trailing comment\n)");
    assert_int_equal(fw_query_where_sql(q, "true OR true"), 0);
    assert_int_equal(fw_query_limit(q, 5), 0);
    assert_string_equal(sql_of(q), FROM_T " WHERE (\ndata->>'a' = 'x' -- trailing comment\n)"
                                          " AND (\ntrue OR true\n) LIMIT $1::bigint");
    fw_query_free(q);
}

static void test_every_comparison_operator_renders_its_golden_sql(void **state)
{
    (void)state;
    static const struct {
        fw_op_t op;
        const char *sql;
    } cases[] = {
        {FW_OP_EQ, FROM_T " WHERE ((\"data\"::jsonb #> ARRAY[$1::text]) = to_jsonb($2::text))"},
        {FW_OP_NE, FROM_T " WHERE ((\"data\"::jsonb #> ARRAY[$1::text]) <> to_jsonb($2::text))"},
        {FW_OP_LT, FROM_T " WHERE ((\"data\"::jsonb #> ARRAY[$1::text]) < to_jsonb($2::text))"},
        {FW_OP_LE, FROM_T " WHERE ((\"data\"::jsonb #> ARRAY[$1::text]) <= to_jsonb($2::text))"},
        {FW_OP_GT, FROM_T " WHERE ((\"data\"::jsonb #> ARRAY[$1::text]) > to_jsonb($2::text))"},
        {FW_OP_GE, FROM_T " WHERE ((\"data\"::jsonb #> ARRAY[$1::text]) >= to_jsonb($2::text))"},
        {FW_OP_CONTAINS,
         FROM_T " WHERE ((\"data\"::jsonb #> ARRAY[$1::text]) @> to_jsonb($2::text))"},
        {FW_OP_HAS_KEY, FROM_T " WHERE ((\"data\"::jsonb #> ARRAY[$1::text]) ? $2::text)"},
        {FW_OP_LIKE, FROM_T " WHERE ((\"data\"::jsonb #>> ARRAY[$1::text]) LIKE $2::text)"},
        {FW_OP_ILIKE, FROM_T " WHERE ((\"data\"::jsonb #>> ARRAY[$1::text]) ILIKE $2::text)"},
        {FW_OP_IS_NULL, FROM_T " WHERE ((\"data\"::jsonb #>> ARRAY[$1::text]) IS NULL)"},
        {FW_OP_IS_NOT_NULL, FROM_T " WHERE ((\"data\"::jsonb #>> ARRAY[$1::text]) IS NOT NULL)"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_string_equal(where_sql_of("k", cases[i].op, FW_VALUE_TEXT, "v"), cases[i].sql);
}

static void test_every_value_type_renders_its_cast(void **state)
{
    (void)state;
    static const struct {
        fw_value_type_t type;
        const char *value, *sql;
    } cases[] = {
        {FW_VALUE_TEXT, "x", FROM_T " WHERE (\"data\"::jsonb = to_jsonb($1::text))"},
        {FW_VALUE_NUMBER, "1.5", FROM_T " WHERE (\"data\"::jsonb = to_jsonb($1::numeric))"},
        {FW_VALUE_BOOL, "true", FROM_T " WHERE (\"data\"::jsonb = to_jsonb($1::boolean))"},
        {FW_VALUE_JSON, "{\"a\":1}", FROM_T " WHERE (\"data\"::jsonb = $1::jsonb)"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_string_equal(where_sql_of(NULL, FW_OP_EQ, cases[i].type, cases[i].value),
                            cases[i].sql);
    assert_string_equal(where_sql_of("n", FW_OP_CONTAINS, FW_VALUE_JSON, "[1]"),
                        FROM_T " WHERE ((\"data\"::jsonb #> ARRAY[$1::text]) @> $2::jsonb)");
    assert_string_equal(where_sql_of("n", FW_OP_GE, FW_VALUE_NUMBER, "3"), FROM_T
                        " WHERE ((\"data\"::jsonb #> ARRAY[$1::text]) >= to_jsonb($2::numeric))");
}

static void test_paths_bind_one_text_parameter_per_element(void **state)
{
    (void)state;
    /* NULL and "" are the whole document */
    assert_string_equal(where_sql_of(NULL, FW_OP_CONTAINS, FW_VALUE_JSON, "{}"),
                        FROM_T " WHERE (\"data\"::jsonb @> $1::jsonb)");
    assert_string_equal(where_sql_of("", FW_OP_HAS_KEY, FW_VALUE_TEXT, "k"),
                        FROM_T " WHERE (\"data\"::jsonb ? $1::text)");
    assert_string_equal(
        where_sql_of("address.city", FW_OP_EQ, FW_VALUE_TEXT, "Paris"),
        FROM_T " WHERE ((\"data\"::jsonb #> ARRAY[$1::text,$2::text]) = to_jsonb($3::text))");
    assert_string_equal(where_sql_of("a.b.c.d", FW_OP_IS_NULL, FW_VALUE_TEXT, NULL),
                        FROM_T " WHERE ((\"data\"::jsonb #>> "
                               "ARRAY[$1::text,$2::text,$3::text,$4::text]) IS NULL)");
    assert_string_equal(
        where_sql_of("tags.0", FW_OP_EQ, FW_VALUE_TEXT, "red"),
        FROM_T " WHERE ((\"data\"::jsonb #> ARRAY[$1::text,$2::text]) = to_jsonb($3::text))");
    /* the whole document as text, for IS [NOT] NULL */
    assert_string_equal(where_sql_of(NULL, FW_OP_IS_NULL, FW_VALUE_TEXT, NULL),
                        FROM_T " WHERE ((\"data\"::jsonb #>> '{}'::text[]) IS NULL)");
    assert_string_equal(where_sql_of("", FW_OP_IS_NOT_NULL, FW_VALUE_TEXT, NULL),
                        FROM_T " WHERE ((\"data\"::jsonb #>> '{}'::text[]) IS NOT NULL)");
    /* path elements are parameters, not SQL: any bytes are fine */
    assert_string_equal(where_sql_of("it's \"x\"", FW_OP_EQ, FW_VALUE_TEXT, "'; --"), FROM_T
                        " WHERE ((\"data\"::jsonb #> ARRAY[$1::text]) = to_jsonb($2::text))");
}

static void test_in_lists_every_value_and_empty_in_is_false(void **state)
{
    (void)state;
    fw_query_t *q = on_entity("t");
    const char *vals[] = {"1", "2", "3"};
    assert_int_equal(fw_query_where_in(q, "n", FW_VALUE_NUMBER, vals, 3), 0);
    assert_string_equal(sql_of(q), FROM_T " WHERE ((\"data\"::jsonb #> ARRAY[$1::text]) IN "
                                          "(to_jsonb($2::numeric), to_jsonb($3::numeric), "
                                          "to_jsonb($4::numeric)))");
    fw_query_free(q);

    q = on_entity("t");
    assert_int_equal(fw_query_where_in(q, "a.b", FW_VALUE_JSON, vals, 1), 0);
    assert_int_equal(fw_query_where_in(q, NULL, FW_VALUE_TEXT, vals, 2), 0);
    assert_string_equal(sql_of(q),
                        FROM_T " WHERE ((\"data\"::jsonb #> ARRAY[$1::text,$2::text]) IN "
                               "($3::jsonb)) AND (\"data\"::jsonb IN (to_jsonb($4::text), "
                               "to_jsonb($5::text)))");
    fw_query_free(q);

    /* n == 0 matches nothing and binds nothing, not even its path */
    q = on_entity("t");
    assert_int_equal(fw_query_where_in(q, "a.b", FW_VALUE_TEXT, NULL, 0), 0);
    assert_int_equal(fw_query_where(q, "c", FW_OP_EQ, FW_VALUE_BOOL, "true"), 0);
    assert_string_equal(sql_of(q), FROM_T " WHERE (false) AND ((\"data\"::jsonb #> "
                                          "ARRAY[$1::text]) = to_jsonb($2::boolean))");
    fw_query_free(q);
}

/* ---- ORDER BY, LIMIT, OFFSET, numbering ----------------------------------------------------- */

static void test_order_by_keys_keep_their_order_collation_and_direction(void **state)
{
    (void)state;
    fw_query_t *q = on_entity("t");
    assert_int_equal(fw_query_order_by(q, "data->>'name'", "C", false), 0);
    assert_string_equal(sql_of(q), FROM_T " ORDER BY\ndata->>'name'\n COLLATE \"C\"");
    assert_int_equal(fw_query_order_by(q, "(data->>'n')::int -- why", NULL, true), 0);
    assert_int_equal(fw_query_order_by(q, "data->>'x'", "en-US-x-\"icu", true), 0);
    assert_int_equal(fw_query_order_by(q, "1", NULL, false), 0);
    assert_string_equal(sql_of(q), FROM_T " ORDER BY\ndata->>'name'\n COLLATE \"C\","
                                          "\n(data->>'n')::int -- why\n DESC,"
                                          "\ndata->>'x'\n COLLATE \"en-US-x-\"\"icu\" DESC,"
                                          "\n1\n");
    fw_query_free(q);
}

static void test_limit_and_offset_are_bigint_parameters_set_once(void **state)
{
    (void)state;
    fw_query_t *q = on_entity("t");
    assert_int_equal(fw_query_offset(q, 20), 0);
    assert_string_equal(sql_of(q), FROM_T " OFFSET $1::bigint");
    assert_int_equal(fw_query_limit(q, 10), 0);
    assert_int_equal(fw_query_limit(q, 11), 0); /* replaces: still one parameter */
    assert_int_equal(fw_query_offset(q, 0), 0);
    assert_string_equal(sql_of(q), FROM_T " LIMIT $1::bigint OFFSET $2::bigint");
    assert_int_equal(q->nparams, 2);
    fw_query_free(q);

    assert_int_equal(FRESH(fw_query_limit(fq, 0)), 0);
    assert_int_equal(FRESH(fw_query_limit(fq, INT64_MAX)), 0);
    assert_int_equal(FRESH(fw_query_limit(fq, -1)), FW_EINVAL);
    assert_int_equal(FRESH(fw_query_limit(fq, INT64_MIN)), FW_EINVAL);
    assert_int_equal(FRESH(fw_query_offset(fq, 0)), 0);
    assert_int_equal(FRESH(fw_query_offset(fq, INT64_MAX)), 0);
    assert_int_equal(FRESH(fw_query_offset(fq, -1)), FW_EINVAL);
}

static void test_parameters_are_numbered_in_the_order_of_the_text(void **state)
{
    (void)state;
    fw_query_t *q = on_entity("t");
    const char *in[] = {"a", "b"};
    /* setters called in any order; numbering follows the text */
    assert_int_equal(fw_query_offset(q, 7), 0);
    assert_int_equal(fw_query_order_by(q, "data->>'k'", NULL, false), 0);
    assert_int_equal(fw_query_where(q, "x.y", FW_OP_GT, FW_VALUE_NUMBER, "5"), 0);
    assert_int_equal(fw_query_where_sql(q, "true"), 0);
    assert_int_equal(fw_query_where_in(q, "s", FW_VALUE_TEXT, in, 2), 0);
    assert_int_equal(fw_query_limit(q, 3), 0);
    assert_int_equal(fw_query_where(q, "z", FW_OP_IS_NOT_NULL, FW_VALUE_TEXT, NULL), 0);
    assert_string_equal(sql_of(q),
                        FROM_T " WHERE ((\"data\"::jsonb #> ARRAY[$1::text,$2::text]) > "
                               "to_jsonb($3::numeric)) AND (\ntrue\n) AND ((\"data\"::jsonb #> "
                               "ARRAY[$4::text]) IN (to_jsonb($5::text), to_jsonb($6::text))) "
                               "AND ((\"data\"::jsonb #>> ARRAY[$7::text]) IS NOT NULL) "
                               "ORDER BY\ndata->>'k'\n LIMIT $8::bigint OFFSET $9::bigint");
    assert_int_equal(q->nparams, 9);

    fw__pq_buf_t b;
    fw__pq_buf_init(&b, &fw__alloc);
    assert_int_equal(fw__query_encode(q, &b), 0);
    fmsg_t m[8];
    assert_int_equal(split(b.data, b.len, m, 8), 5);
    const char *values[] = {"x", "y", "5", "s", "a", "b", "z", "3", "7"};
    expect_parse(m[0], sql_of(q), 9);
    expect_bind(m[1], values, 9);
    fw__pq_buf_free(&b);
    fw_query_free(q);
}

/* ---- the encoded run ---------------------------------------------------------------------- */

/* A parallel part's run (lib/parallel.c): BEGIN and SET TRANSACTION SNAPSHOT first, without
 * parameters or Describe; the key range's bounds bind after the query's own parameters; the
 * last part takes the NULL keys; a ctid range is one more condition. */
static void test_parallel_part_runs_put_snapshot_first_and_bind_key_bounds_last(void **state)
{
    (void)state;
    fw_query_t *q = on_entity("u");
    assert_int_equal(fw_query_where(q, "a", FW_OP_EQ, FW_VALUE_TEXT, "x"), 0);
    assert_int_equal(fw_query_partition_key(q, "id"), 0);
    fw__query_run_t run = {
        .pre = {"BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "SET TRANSACTION SNAPSHOT 'S'"},
        .npre = 2,
        .key_range = true,
        .key_lo = "10",
        .key_hi = "20",
    };
    fw__pq_buf_t b;
    fw__pq_buf_init(&b, &fw__alloc);
    assert_int_equal(fw__query_encode_run(q, &run, &b), 0);
    fmsg_t m[16];
    assert_int_equal(split(b.data, b.len, m, 16), 11);
    expect_parse(m[0], "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0);
    expect_bind(m[1], NULL, 0);
    expect_execute_all(m[2]);
    expect_parse(m[3], "SET TRANSACTION SNAPSHOT 'S'", 0);
    expect_bind(m[4], NULL, 0);
    expect_execute_all(m[5]);
    expect_parse(m[6],
                 "SELECT \"data\" FROM \"v_u\" WHERE ((\"data\"::jsonb #> ARRAY[$1::text]) = "
                 "to_jsonb($2::text)) AND ((\"id\" >= $3 AND \"id\" < $4))",
                 4);
    const char *values[] = {"a", "x", "10", "20"};
    expect_bind(m[7], values, 4);
    expect_describe_portal(m[8]);
    expect_execute_all(m[9]);
    expect_sync(m[10]);
    fw__pq_buf_free(&b);

    /* the last part: open above, with the NULL keys; no preamble (connection 0) */
    run = (fw__query_run_t){.key_range = true, .key_lo = "20", .key_nulls = true};
    fw__pq_buf_init(&b, &fw__alloc);
    assert_int_equal(fw__query_encode_run(q, &run, &b), 0);
    assert_int_equal(split(b.data, b.len, m, 16), 5);
    expect_parse(m[0],
                 "SELECT \"data\" FROM \"v_u\" WHERE ((\"data\"::jsonb #> ARRAY[$1::text]) = "
                 "to_jsonb($2::text)) AND ((\"id\" >= $3) OR \"id\" IS NULL)",
                 3);
    fw__pq_buf_free(&b);

    /* a ctid range, and fwire's own statement with its two parameters */
    fw_query_t *t;
    assert_int_equal(fw_query_new(&t), 0);
    assert_int_equal(fw_query_relation(t, "bench_1m"), 0);
    run = (fw__query_run_t){.cond = "ctid >= '(5,0)'::pg_catalog.tid"};
    fw__pq_buf_init(&b, &fw__alloc);
    assert_int_equal(fw__query_encode_run(t, &run, &b), 0);
    assert_int_equal(split(b.data, b.len, m, 16), 5);
    expect_parse(m[0], "SELECT \"data\" FROM \"bench_1m\" WHERE (ctid >= '(5,0)'::pg_catalog.tid)",
                 0);
    fw__pq_buf_free(&b);
    run = (fw__query_run_t){.raw = "SELECT $1::text, $2::text", .raw_param = {"p", "q"}};
    fw__pq_buf_init(&b, &fw__alloc);
    assert_int_equal(fw__query_encode_run(t, &run, &b), 0);
    assert_int_equal(split(b.data, b.len, m, 16), 5);
    expect_parse(m[0], "SELECT $1::text, $2::text", 2);
    const char *two[] = {"p", "q"};
    expect_bind(m[1], two, 2);
    fw__pq_buf_free(&b);
    fw_query_free(t);
    fw_query_free(q);

    /* the setters' limits */
    assert_int_equal(fw_query_new(&t), 0);
    assert_int_equal(fw_query_parallel(t, 16), 0);
    assert_int_equal(fw_query_parallel(t, 17), FW_EINVAL);
    fw_query_free(t);
    assert_int_equal(fw_query_new(&t), 0);
    char k64[65];
    memset(k64, 'k', 64);
    k64[64] = '\0';
    assert_int_equal(fw_query_partition_key(t, k64), FW_EINVAL);
    fw_query_free(t);
    assert_int_equal(fw_query_new(&t), 0);
    k64[63] = '\0';
    assert_int_equal(fw_query_partition_key(t, k64), 0);
    assert_int_equal(fw_query_partition_key(t, NULL), 0);
    fw_query_free(t);
    /* a view's ctid column: the same limits; the last of the two setters wins */
    assert_int_equal(fw_query_new(&t), 0);
    assert_int_equal(fw_query_partition_ctid(t, k64), 0);
    assert_true(t->pkey_ctid);
    assert_string_equal(t->pkey, k64);
    assert_int_equal(fw_query_partition_key(t, "id"), 0);
    assert_false(t->pkey_ctid);
    assert_int_equal(fw_query_partition_ctid(t, "row_ctid"), 0);
    assert_true(t->pkey_ctid);
    assert_string_equal(t->pkey, "row_ctid");
    assert_int_equal(fw_query_partition_ctid(t, NULL), 0);
    assert_null(t->pkey);
    assert_false(t->pkey_ctid);
    fw_query_free(t);
    assert_int_equal(fw_query_new(&t), 0);
    k64[63] = 'k';
    assert_int_equal(fw_query_partition_ctid(t, k64), FW_EINVAL);
    fw_query_free(t);
}


/* The query with nothing but its source: one simple Query (query.h, fw__query_simple). */
static void test_the_plain_query_is_one_simple_query(void **state)
{
    (void)state;
    fw_query_t *q = on_entity("u");
    fw__pq_buf_t b;
    fw__pq_buf_init(&b, &fw__alloc);
    assert_true(fw__query_simple(q, NULL));
    assert_int_equal(fw__query_encode(q, &b), 0);
    static const char sql[] = "SELECT \"data\" FROM \"v_u\"";
    uint8_t want[64];
    size_t n = 0;
    want[n++] = 'Q';
    want[n++] = 0, want[n++] = 0, want[n++] = 0, want[n++] = (uint8_t)(4 + sizeof(sql));
    memcpy(want + n, sql, sizeof(sql)); /* with its NUL */
    n += sizeof(sql);
    assert_int_equal(b.len, n);
    assert_memory_equal(b.data, want, n);
    assert_int_equal(fw__query_preamble(q), 0);
    /* EXPLAIN of it too */
    assert_int_equal(fw_query_explain(q, true), 0);
    assert_true(fw__query_simple(q, NULL));
    fw__pq_buf_reset(&b);
    assert_int_equal(fw__query_encode(q, &b), 0);
    assert_int_equal(b.data[0], 'Q');
    fw__pq_buf_free(&b);
    fw_query_free(q);
}

/* Anything more than the source stays on the extended protocol: values as parameters, and a
 * caller's SQL fragment where Parse refuses a second statement. */
static void test_anything_but_the_source_keeps_the_extended_protocol(void **state)
{
    (void)state;
    for (int k = 0; k < 7; k++) {
        fw_query_t *q = on_entity("u");
        int rc = 0;
        if (k == 0)
            rc = fw_query_where(q, "a", FW_OP_EQ, FW_VALUE_NUMBER, "1");
        else if (k == 1)
            rc = fw_query_where_sql(q, "true; DROP TABLE x");
        else if (k == 2)
            rc = fw_query_order_by(q, "a", NULL, false);
        else if (k == 3)
            rc = fw_query_limit(q, 10);
        else if (k == 4)
            rc = fw_query_offset(q, 10);
        else if (k == 5)
            rc = fw_query_statement_timeout(q, 5000);
        else
            rc = fw_query_limit(q, 0);
        assert_int_equal(rc, 0);
        assert_false(fw__query_simple(q, NULL));
        fw__pq_buf_t b;
        fw__pq_buf_init(&b, &fw__alloc);
        assert_int_equal(fw__query_encode(q, &b), 0);
        assert_int_equal(b.data[0], 'P');
        assert_int_equal(b.data[b.len - 5], 'S'); /* ends with Sync */
        fw__pq_buf_free(&b);
        fw_query_free(q);
    }
    /* a run's additions too: a parallel part's BEGIN, its ctid range, a key range, fwire's own
     * statement */
    fw_query_t *q = on_entity("u");
    fw__query_run_t pre = {.pre = {"BEGIN"}, .npre = 1};
    fw__query_run_t cond = {.cond = "ctid >= '(0,0)'"};
    fw__query_run_t raw = {.raw = "SELECT '1'::json AS data"};
    assert_true(fw__query_simple(q, NULL));
    assert_false(fw__query_simple(q, &pre));
    assert_false(fw__query_simple(q, &cond));
    assert_false(fw__query_simple(q, &raw));
    assert_false(fw__query_simple(NULL, NULL));
    fw_query_free(q);
}

static void test_encoded_run_matches_hand_built_bytes(void **state)
{
    (void)state;
    fw_query_t *q = on_entity("u");
    assert_int_equal(fw_query_where_sql(q, "true"), 0); /* not the plain query: extended */
    fw__pq_buf_t b;
    fw__pq_buf_init(&b, &fw__alloc);
    assert_int_equal(fw__query_encode(q, &b), 0);
    static const char sql[] = "SELECT \"data\" FROM \"v_u\" WHERE (\ntrue\n)";
    uint8_t want[128];
    size_t n = 0;
    size_t plen = 4 + 1 + sizeof(sql) + 2;
    want[n++] = 'P';
    want[n++] = 0, want[n++] = 0, want[n++] = 0, want[n++] = (uint8_t)plen;
    want[n++] = 0;                      /* unnamed statement */
    memcpy(want + n, sql, sizeof(sql)); /* with its NUL */
    n += sizeof(sql);
    want[n++] = 0, want[n++] = 0; /* no parameter types */
    static const uint8_t rest[] = {
        'B', 0, 0, 0, 12, 0,   0, 0, 0, 0, 0, 0, 0, /* portal, stmt, 0 formats, 0 params, 0 */
        'D', 0, 0, 0, 6,  'P', 0,                   /* Describe portal "" */
        'E', 0, 0, 0, 9,  0,   0, 0, 0, 0,          /* Execute "" all rows */
        'S', 0, 0, 0, 4,                            /* Sync */
    };
    memcpy(want + n, rest, sizeof(rest));
    n += sizeof(rest);
    assert_int_equal(b.len, n);
    assert_memory_equal(b.data, want, n);
    assert_int_equal(fw__query_preamble(q), 0);
    fw__pq_buf_free(&b);
    fw_query_free(q);
}

static void test_encoded_run_is_parse_bind_describe_execute_sync(void **state)
{
    (void)state;
    fw_query_t *q = on_entity("t");
    assert_int_equal(fw_query_where(q, "a.b", FW_OP_EQ, FW_VALUE_TEXT, "caf\xc3\xa9"), 0);
    assert_int_equal(fw_query_where(q, "", FW_OP_HAS_KEY, FW_VALUE_TEXT, ""), 0);
    assert_int_equal(fw_query_limit(q, 9223372036854775807), 0);
    fw__pq_buf_t b;
    fw__pq_buf_init(&b, &fw__alloc);
    assert_int_equal(fw__pq_put_flush(&b), 0); /* encode appends after what is there */
    size_t before = b.len;
    assert_int_equal(fw__query_encode(q, &b), 0);
    fmsg_t m[8];
    assert_int_equal(split(b.data + before, b.len - before, m, 8), 5);
    expect_parse(m[0],
                 FROM_T " WHERE ((\"data\"::jsonb #> ARRAY[$1::text,$2::text]) = "
                        "to_jsonb($3::text)) AND (\"data\"::jsonb ? $4::text) LIMIT $5::bigint",
                 5);
    const char *values[] = {"a", "b", "caf\xc3\xa9", "", "9223372036854775807"};
    expect_bind(m[1], values, 5);
    expect_describe_portal(m[2]);
    expect_execute_all(m[3]);
    expect_sync(m[4]);
    fw__pq_buf_free(&b);
    fw_query_free(q);
}

static void test_statement_timeout_sends_set_config_first_in_the_same_sync(void **state)
{
    (void)state;
    fw_query_t *q = on_entity("t");
    assert_int_equal(fw_query_statement_timeout(q, 1500), 0);
    assert_int_equal(fw_query_offset(q, 0), 0);
    assert_int_equal(fw__query_preamble(q), 1);
    /* fw_query_sql shows the main statement only */
    assert_string_equal(sql_of(q), FROM_T " OFFSET $1::bigint");
    fw__pq_buf_t b;
    fw__pq_buf_init(&b, &fw__alloc);
    assert_int_equal(fw__query_encode(q, &b), 0);
    fmsg_t m[10];
    assert_int_equal(split(b.data, b.len, m, 10), 8);
    expect_parse(m[0], "SELECT pg_catalog.set_config('statement_timeout', $1, true)", 1);
    const char *ms[] = {"1500"};
    expect_bind(m[1], ms, 1);
    expect_execute_all(m[2]);
    expect_parse(m[3], FROM_T " OFFSET $1::bigint", 1);
    const char *zero[] = {"0"};
    expect_bind(m[4], zero, 1);
    expect_describe_portal(m[5]);
    expect_execute_all(m[6]);
    expect_sync(m[7]);

    /* back to 0: no preamble */
    assert_int_equal(fw_query_statement_timeout(q, 0), 0);
    assert_int_equal(fw__query_preamble(q), 0);
    fw__pq_buf_reset(&b);
    assert_int_equal(fw__query_encode(q, &b), 0);
    assert_int_equal(split(b.data, b.len, m, 10), 5);
    assert_int_equal(m[0].type, 'P');
    fw__pq_buf_free(&b);
    fw_query_free(q);
}

static void test_encode_returns_the_buffer_sticky_error_and_the_query_error(void **state)
{
    (void)state;
    fw_query_t *q = on_entity("t");
    fw__pq_buf_t b;
    fw__pq_buf_init(&b, &fw__alloc);
    b.err = FW_ETOOBIG;
    assert_int_equal(fw__query_encode(q, &b), FW_ETOOBIG);
    assert_int_equal(b.len, 0);
    fw__pq_buf_reset(&b);
    /* a statement over the frontend message cap is FW_ETOOBIG, from proto's Parse */
    b.max_msg = 64;
    assert_int_equal(fw_query_where_sql(q, "true AND true AND true AND true AND true"), 0);
    assert_int_equal(fw__query_encode(q, &b), FW_ETOOBIG);
    fw__pq_buf_reset(&b);
    assert_int_equal(fw_query_chunk_size(q, 0), FW_EINVAL);
    assert_int_equal(fw__query_encode(q, &b), FW_EINVAL);
    assert_int_equal(fw__query_encode(NULL, &b), FW_EINVAL);
    assert_int_equal(fw__query_encode(q, NULL), FW_EINVAL);
    assert_int_equal(b.len, 0);
    fw__pq_buf_free(&b);
    fw_query_free(q);
}

/* ---- refusals and sticky errors ----------------------------------------------------------- */

static void test_invalid_predicates_are_refused_with_einval(void **state)
{
    (void)state;
    const char *one[] = {"1"};
    const char *with_null[] = {"1", NULL};
    /* a value is required except for IS [NOT] NULL */
    assert_int_equal(FRESH(fw_query_where(fq, "a", FW_OP_EQ, FW_VALUE_TEXT, NULL)), FW_EINVAL);
    assert_int_equal(FRESH(fw_query_where(fq, "a", FW_OP_CONTAINS, FW_VALUE_JSON, NULL)),
                     FW_EINVAL);
    assert_int_equal(FRESH(fw_query_where(fq, "a", FW_OP_IS_NULL, FW_VALUE_TEXT, NULL)), 0);
    assert_int_equal(FRESH(fw_query_where(fq, "a", FW_OP_IS_NOT_NULL, FW_VALUE_JSON, "x")), 0);
    /* LIKE, ILIKE, HAS_KEY take text only */
    static const fw_op_t text_ops[] = {FW_OP_LIKE, FW_OP_ILIKE, FW_OP_HAS_KEY};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(FRESH(fw_query_where(fq, "a", text_ops[i], FW_VALUE_TEXT, "x")), 0);
        assert_int_equal(FRESH(fw_query_where(fq, "a", text_ops[i], FW_VALUE_NUMBER, "1")),
                         FW_EINVAL);
        assert_int_equal(FRESH(fw_query_where(fq, "a", text_ops[i], FW_VALUE_BOOL, "true")),
                         FW_EINVAL);
        assert_int_equal(FRESH(fw_query_where(fq, "a", text_ops[i], FW_VALUE_JSON, "\"x\"")),
                         FW_EINVAL);
    }
    /* LIKE needs a path */
    assert_int_equal(FRESH(fw_query_where(fq, "", FW_OP_LIKE, FW_VALUE_TEXT, "x%")), FW_EINVAL);
    assert_int_equal(FRESH(fw_query_where(fq, NULL, FW_OP_ILIKE, FW_VALUE_TEXT, "x%")), FW_EINVAL);
    /* empty path elements */
    static const char *const bad_paths[] = {".", "..", ".a", "a.", "a..b", "a.b.", "a.b..c"};
    for (size_t i = 0; i < sizeof(bad_paths) / sizeof(bad_paths[0]); i++) {
        assert_int_equal(FRESH(fw_query_where(fq, bad_paths[i], FW_OP_EQ, FW_VALUE_TEXT, "x")),
                         FW_EINVAL);
        assert_int_equal(FRESH(fw_query_where(fq, bad_paths[i], FW_OP_IS_NULL, 0, NULL)),
                         FW_EINVAL);
        assert_int_equal(FRESH(fw_query_where_in(fq, bad_paths[i], FW_VALUE_TEXT, one, 1)),
                         FW_EINVAL);
        assert_int_equal(FRESH(fw_query_where_in(fq, bad_paths[i], FW_VALUE_TEXT, NULL, 0)),
                         FW_EINVAL);
    }
    /* out-of-range enums */
    assert_int_equal(FRESH(fw_query_where(fq, "a", (fw_op_t)(FW_OP_HAS_KEY + 1), 0, "x")),
                     FW_EINVAL);
    assert_int_equal(FRESH(fw_query_where(fq, "a", (fw_op_t)-1, 0, "x")), FW_EINVAL);
    assert_int_equal(FRESH(fw_query_where(fq, "a", 0, (fw_value_type_t)(FW_VALUE_JSON + 1), "x")),
                     FW_EINVAL);
    assert_int_equal(FRESH(fw_query_where_in(fq, "a", (fw_value_type_t)9, one, 1)), FW_EINVAL);
    /* IN: values missing */
    assert_int_equal(FRESH(fw_query_where_in(fq, "a", FW_VALUE_TEXT, NULL, 1)), FW_EINVAL);
    assert_int_equal(FRESH(fw_query_where_in(fq, "a", FW_VALUE_TEXT, with_null, 2)), FW_EINVAL);
    assert_int_equal(FRESH(fw_query_where_in(fq, "a", FW_VALUE_TEXT, with_null, 1)), 0);
    assert_int_equal(FRESH(fw_query_where_in(fq, "a", FW_VALUE_TEXT, one, SIZE_MAX)), FW_EINVAL);
    /* trusted SQL must say something */
    assert_int_equal(FRESH(fw_query_where_sql(fq, NULL)), FW_EINVAL);
    assert_int_equal(FRESH(fw_query_where_sql(fq, "")), FW_EINVAL);
    assert_int_equal(FRESH(fw_query_order_by(fq, NULL, NULL, false)), FW_EINVAL);
    assert_int_equal(FRESH(fw_query_order_by(fq, "", NULL, false)), FW_EINVAL);
    assert_int_equal(FRESH(fw_query_order_by(fq, "1", "", false)), FW_EINVAL);
    char coll[80];
    memset(coll, 'c', sizeof(coll));
    coll[63] = '\0';
    assert_int_equal(FRESH(fw_query_order_by(fq, "1", coll, false)), 0);
    coll[63] = 'c';
    coll[64] = '\0';
    assert_int_equal(FRESH(fw_query_order_by(fq, "1", coll, false)), FW_EINVAL);
}

static void test_null_query_and_bad_buffers_are_refused(void **state)
{
    (void)state;
    assert_int_equal(fw_query_new(NULL), FW_EINVAL);
    fw_query_free(NULL);
    const char *one[] = {"1"};
    assert_int_equal(fw_query_entity(NULL, "a"), FW_EINVAL);
    assert_int_equal(fw_query_relation(NULL, "a"), FW_EINVAL);
    assert_int_equal(fw_query_where_sql(NULL, "true"), FW_EINVAL);
    assert_int_equal(fw_query_where(NULL, "a", FW_OP_EQ, FW_VALUE_TEXT, "x"), FW_EINVAL);
    assert_int_equal(fw_query_where_in(NULL, "a", FW_VALUE_TEXT, one, 1), FW_EINVAL);
    assert_int_equal(fw_query_order_by(NULL, "1", NULL, false), FW_EINVAL);
    assert_int_equal(fw_query_limit(NULL, 1), FW_EINVAL);
    assert_int_equal(fw_query_offset(NULL, 1), FW_EINVAL);
    assert_int_equal(fw_query_chunk_size(NULL, 1), FW_EINVAL);
    assert_int_equal(fw_query_max_memory(NULL, 1 << 20), FW_EINVAL);
    assert_int_equal(fw_query_predicate(NULL, NULL, NULL), FW_EINVAL);
    assert_int_equal(fw_query_statement_timeout(NULL, 1), FW_EINVAL);
    char buf[4];
    assert_int_equal(fw_query_sql(NULL, buf, sizeof(buf)), FW_EINVAL);
    fw_query_t *q = on_entity("t");
    assert_int_equal(fw_query_sql(q, NULL, 1), FW_EINVAL);
    fw_query_free(q);
}

static void test_first_error_is_sticky_and_later_setters_do_nothing(void **state)
{
    (void)state;
    fw_query_t *q = on_entity("t");
    assert_int_equal(fw_query_where(q, "a..b", FW_OP_EQ, FW_VALUE_TEXT, "x"), FW_EINVAL);
    const char *one[] = {"1"};
    /* valid calls now fail with the first error and change nothing */
    assert_int_equal(fw_query_entity(q, "other"), FW_EINVAL);
    assert_int_equal(fw_query_relation(q, "s.r"), FW_EINVAL);
    assert_int_equal(fw_query_where_sql(q, "true"), FW_EINVAL);
    assert_int_equal(fw_query_where(q, "a", FW_OP_EQ, FW_VALUE_TEXT, "x"), FW_EINVAL);
    assert_int_equal(fw_query_where_in(q, "a", FW_VALUE_TEXT, one, 1), FW_EINVAL);
    assert_int_equal(fw_query_order_by(q, "1", NULL, false), FW_EINVAL);
    assert_int_equal(fw_query_limit(q, 1), FW_EINVAL);
    assert_int_equal(fw_query_offset(q, 1), FW_EINVAL);
    assert_int_equal(fw_query_chunk_size(q, 10), FW_EINVAL);
    assert_int_equal(fw_query_max_memory(q, 1 << 20), FW_EINVAL);
    assert_int_equal(fw_query_predicate(q, NULL, NULL), FW_EINVAL);
    assert_int_equal(fw_query_statement_timeout(q, 10), FW_EINVAL);
    assert_string_equal(q->source, "\"v_t\"");
    assert_int_equal(q->nconds, 0);
    assert_int_equal(q->norders, 0);
    assert_int_equal(q->nparams, 0);
    assert_int_equal(q->limit, -1);
    assert_int_equal(q->offset, -1);
    assert_int_equal(fw__query_chunk_size(q), FW__QUERY_DEFAULT_CHUNK_SIZE);
    assert_int_equal(fw__query_max_memory(q), FW__QUERY_DEFAULT_MAX_MEMORY);
    assert_int_equal(fw__query_preamble(q), 0);
    char buf[64] = "untouched";
    assert_int_equal(fw_query_sql(q, buf, sizeof(buf)), FW_EINVAL);
    assert_string_equal(buf, "untouched");
    fw__pq_buf_t b;
    fw__pq_buf_init(&b, &fw__alloc);
    assert_int_equal(fw__query_encode(q, &b), FW_EINVAL);
    assert_int_equal(b.len, 0);
    fw__pq_buf_free(&b);
    fw_query_free(q);
}

/* ---- limits four ways --------------------------------------------------------------------- */

static void test_chunk_size_defaults_to_256_and_takes_1_to_65536(void **state)
{
    (void)state;
    fw_query_t *q = on_entity("t");
    assert_int_equal(fw__query_chunk_size(q), 256);
    assert_int_equal(fw_query_chunk_size(q, 65536), 0);
    assert_int_equal(fw__query_chunk_size(q), 65536);
    assert_int_equal(fw_query_chunk_size(q, 1), 0);
    assert_int_equal(fw__query_chunk_size(q), 1);
    fw_query_free(q);
    assert_int_equal(FRESH(fw_query_chunk_size(fq, 65537)), FW_EINVAL);
    assert_int_equal(FRESH(fw_query_chunk_size(fq, 0)), FW_EINVAL);
    assert_int_equal(FRESH(fw_query_chunk_size(fq, SIZE_MAX)), FW_EINVAL);
}

static void test_max_memory_defaults_to_4_mib_and_takes_at_least_64_kib(void **state)
{
    (void)state;
    fw_query_t *q = on_entity("t");
    assert_int_equal(fw__query_max_memory(q), 4194304);
    assert_int_equal(fw_query_max_memory(q, 65536), 0);
    assert_int_equal(fw__query_max_memory(q), 65536);
    assert_int_equal(fw_query_max_memory(q, SIZE_MAX), 0); /* no upper bound */
    assert_int_equal(fw__query_max_memory(q), SIZE_MAX);
    fw_query_free(q);
    assert_int_equal(FRESH(fw_query_max_memory(fq, 65535)), FW_EINVAL);
    assert_int_equal(FRESH(fw_query_max_memory(fq, 0)), FW_EINVAL);
}

static void test_statement_timeout_defaults_to_none_and_takes_up_to_int32_max(void **state)
{
    (void)state;
    fw_query_t *q = on_entity("t");
    assert_int_equal(fw__query_preamble(q), 0);
    assert_int_equal(fw_query_statement_timeout(q, 1), 0);
    assert_int_equal(fw__query_preamble(q), 1);
    assert_int_equal(fw_query_statement_timeout(q, INT32_MAX), 0);
    fw__pq_buf_t b;
    fw__pq_buf_init(&b, &fw__alloc);
    assert_int_equal(fw__query_encode(q, &b), 0);
    fmsg_t m[10];
    assert_int_equal(split(b.data, b.len, m, 10), 8);
    const char *ms[] = {"2147483647"};
    expect_bind(m[1], ms, 1);
    fw__pq_buf_free(&b);
    assert_int_equal(fw_query_statement_timeout(q, 0), 0); /* disabled */
    assert_int_equal(fw__query_preamble(q), 0);
    fw_query_free(q);
    assert_int_equal(FRESH(fw_query_statement_timeout(fq, (uint32_t)INT32_MAX + 1)), FW_EINVAL);
    assert_int_equal(FRESH(fw_query_statement_timeout(fq, UINT32_MAX)), FW_EINVAL);
}

static bool keep_all(void *ud, const fw_row_t *row)
{
    (void)ud;
    (void)row;
    return true;
}

static void test_predicate_is_kept_with_its_user_data_and_null_removes_it(void **state)
{
    (void)state;
    fw_query_t *q = on_entity("t");
    void *ud = (void *)1;
    assert_null(fw__query_predicate(q, &ud));
    assert_null(ud);
    int marker;
    assert_int_equal(fw_query_predicate(q, keep_all, &marker), 0);
    assert_ptr_equal(fw__query_predicate(q, &ud), keep_all);
    assert_ptr_equal(ud, &marker);
    assert_ptr_equal(fw__query_predicate(q, NULL), keep_all);
    assert_int_equal(fw_query_predicate(q, NULL, &marker), 0);
    assert_null(fw__query_predicate(q, &ud));
    assert_null(ud);
    fw_query_free(q);
}

/* n values "1" for an IN list (static storage, reused). */
static const char *const *many_values(size_t n)
{
    static const char **v;
    static size_t have;
    if (n > have) {
        v = realloc(v, n * sizeof(*v));
        assert_non_null(v);
        for (size_t i = have; i < n; i++)
            v[i] = "1";
        have = n;
    }
    return v;
}

static void test_parameters_stop_at_65535_in_the_whole_query(void **state)
{
    (void)state;
    const char *const *v = many_values(65536);
    /* one IN list: 1 path element + 65,534 values = 65,535 */
    fw_query_t *q = on_entity("t");
    assert_int_equal(fw_query_where_in(q, "k", FW_VALUE_NUMBER, v, 65534), 0);
    assert_int_equal(q->nparams, 65535);
    static char big[1 << 22];
    long n = fw_query_sql(q, big, sizeof(big));
    assert_true(n > 0 && (size_t)n < sizeof(big));
    assert_non_null(strstr(big, "to_jsonb($65535::numeric)))"));
    assert_null(strstr(big, "$65536"));
    /* full: one more parameter anywhere is refused */
    assert_int_equal(fw_query_limit(q, 1), FW_EINVAL);
    fw_query_free(q);
    assert_int_equal(FRESH(fw_query_where_in(fq, "k", FW_VALUE_NUMBER, v, 65535)), FW_EINVAL);
    assert_int_equal(FRESH(fw_query_where_in(fq, NULL, FW_VALUE_NUMBER, v, 65535)), 0);
    assert_int_equal(FRESH(fw_query_where_in(fq, NULL, FW_VALUE_NUMBER, v, 65536)), FW_EINVAL);

    /* spread over several setters: 65,533 + limit + offset, then nothing more */
    q = on_entity("t");
    assert_int_equal(fw_query_where_in(q, NULL, FW_VALUE_TEXT, v, 65532), 0);
    assert_int_equal(fw_query_where(q, "a", FW_OP_IS_NULL, FW_VALUE_TEXT, NULL), 0);
    assert_int_equal(fw_query_limit(q, 1), 0);
    assert_int_equal(fw_query_offset(q, 1), 0);
    assert_int_equal(q->nparams, 65535);
    assert_int_equal(fw_query_limit(q, 2), 0); /* replacing adds no parameter */
    assert_int_equal(fw_query_where_in(q, "a", FW_VALUE_TEXT, NULL, 0), 0); /* binds none */
    assert_int_equal(fw_query_where_sql(q, "true"), 0);
    assert_int_equal(fw_query_where(q, NULL, FW_OP_IS_NULL, FW_VALUE_TEXT, NULL), 0);
    assert_int_equal(fw_query_where(q, NULL, FW_OP_EQ, FW_VALUE_TEXT, "x"), FW_EINVAL);
    fw_query_free(q);
    q = on_entity("t");
    assert_int_equal(fw_query_where_in(q, NULL, FW_VALUE_TEXT, v, 65534), 0);
    assert_int_equal(fw_query_offset(q, 1), 0);
    assert_int_equal(fw_query_where(q, "p", FW_OP_IS_NOT_NULL, FW_VALUE_TEXT, NULL), FW_EINVAL);
    fw_query_free(q);
}

static void test_encode_binds_all_65535_parameters(void **state)
{
    (void)state;
    fw_query_t *q = on_entity("t");
    assert_int_equal(fw_query_where_in(q, NULL, FW_VALUE_NUMBER, many_values(65534), 65534), 0);
    assert_int_equal(fw_query_limit(q, 42), 0);
    fw__pq_buf_t b;
    fw__pq_buf_init(&b, &fw__alloc);
    int rc = fw__query_encode(q, &b);
    if (rc == FW_EINVAL) {
        /* proto/encode.c caps Parse and Bind counts at INT16_MAX, while the server reads them
         * as uint16 (and libpq sends up to 65,535). Until proto takes 65,535, say so. */
        print_message("proto/ refuses more than 32,767 Bind parameters (FW_EINVAL)\n");
        fw__pq_buf_free(&b);
        fw_query_free(q);
        skip();
    }
    assert_int_equal(rc, 0);
    fmsg_t m[6];
    assert_int_equal(split(b.data, b.len, m, 6), 5);
    fmsg_t p = m[0];
    rdstr(&p);
    rdstr(&p);
    assert_int_equal(rd16(&p), 65535);
    fmsg_t bind = m[1];
    rdstr(&bind);
    rdstr(&bind);
    assert_int_equal(rd16(&bind), 0);
    assert_int_equal(rd16(&bind), 65535);
    fw__pq_buf_free(&b);
    fw_query_free(q);
}

/* ---- fw_query_sql and copies -------------------------------------------------------------- */

static void test_sql_output_follows_snprintf(void **state)
{
    (void)state;
    fw_query_t *q = on_entity("t");
    const char *full = FROM_T;
    long len = (long)strlen(full);
    assert_int_equal(fw_query_sql(q, NULL, 0), len);
    char buf[64];
    memset(buf, 'x', sizeof(buf));
    assert_int_equal(fw_query_sql(q, buf, 0), len);
    assert_int_equal(buf[0], 'x'); /* cap 0: nothing written */
    assert_int_equal(fw_query_sql(q, buf, 1), len);
    assert_string_equal(buf, "");
    assert_int_equal(fw_query_sql(q, buf, 7), len);
    assert_string_equal(buf, "SELECT");
    assert_int_equal(fw_query_sql(q, buf, (size_t)len), len); /* one short: last byte cut */
    assert_int_equal(strlen(buf), (size_t)len - 1);
    assert_memory_equal(buf, full, (size_t)len - 1);
    assert_int_equal(fw_query_sql(q, buf, (size_t)len + 1), len); /* exact */
    assert_string_equal(buf, full);
    fw_query_free(q);
}

static void test_strings_are_copied(void **state)
{
    (void)state;
    char entity[] = "e", path[] = "a.b", value[] = "v", frag[] = "true", expr[] = "1", coll[] = "C",
         inv[] = "w";
    const char *in[] = {inv};
    fw_query_t *q = on_entity(entity);
    assert_int_equal(fw_query_where(q, path, FW_OP_EQ, FW_VALUE_TEXT, value), 0);
    assert_int_equal(fw_query_where_in(q, path, FW_VALUE_TEXT, in, 1), 0);
    assert_int_equal(fw_query_where_sql(q, frag), 0);
    assert_int_equal(fw_query_order_by(q, expr, coll, false), 0);
    char before[512];
    snprintf(before, sizeof(before), "%s", sql_of(q));
    memset(entity, 'X', 1);
    memset(path, 'X', 3);
    memset(value, 'X', 1);
    memset(frag, 'X', 4);
    memset(expr, 'X', 1);
    memset(coll, 'X', 1);
    memset(inv, 'X', 1);
    assert_string_equal(sql_of(q), before);
    fw__pq_buf_t b;
    fw__pq_buf_init(&b, &fw__alloc);
    assert_int_equal(fw__query_encode(q, &b), 0);
    fmsg_t m[6];
    assert_int_equal(split(b.data, b.len, m, 6), 5);
    const char *values[] = {"a", "b", "v", "a", "b", "w"};
    expect_bind(m[1], values, 6);
    fw__pq_buf_free(&b);
    fw_query_free(q);
}

/* fw__query_clone: a deep copy that encodes to the same bytes once the original is gone. */
static void test_clone_is_deep_and_encodes_the_same_bytes(void **state)
{
    (void)state;
    const char *in[] = {"1", "2", "3"};
    fw_query_t *q = on_entity("e");
    assert_int_equal(fw_query_where(q, "a.b.c", FW_OP_EQ, FW_VALUE_TEXT, "x"), 0);
    assert_int_equal(fw_query_where(q, NULL, FW_OP_IS_NULL, FW_VALUE_TEXT, NULL), 0);
    assert_int_equal(fw_query_where_in(q, "n", FW_VALUE_NUMBER, in, 3), 0);
    assert_int_equal(fw_query_where_in(q, "n", FW_VALUE_NUMBER, in, 0), 0);
    assert_int_equal(fw_query_where_sql(q, "true"), 0);
    assert_int_equal(fw_query_order_by(q, "id", "C", true), 0);
    assert_int_equal(fw_query_order_by(q, "data->>'a'", NULL, false), 0);
    assert_int_equal(fw_query_parallel(q, 3), 0);
    assert_int_equal(fw_query_partition_key(q, "id"), 0);
    assert_int_equal(fw_query_statement_timeout(q, 100), 0);
    fw__pq_buf_t a, b;
    fw__pq_buf_init(&a, &fw__alloc);
    fw__pq_buf_init(&b, &fw__alloc);
    assert_int_equal(fw__query_encode(q, &a), 0);
    fw_query_t *c = fw__query_clone(q);
    assert_non_null(c);
    assert_ptr_not_equal(c->source, q->source);
    assert_ptr_not_equal(c->pkey, q->pkey);
    assert_ptr_not_equal(c->conds[0].strs, q->conds[0].strs);
    fw_query_free(q); /* ASan: the copy shares nothing with it */
    assert_int_equal(fw__query_encode(c, &b), 0);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.data, b.data, a.len);
    assert_int_equal(c->parallel, 3);
    assert_string_equal(c->pkey, "id");
    fw__pq_buf_free(&a);
    fw__pq_buf_free(&b);
    fw_query_free(c);
}

/* ---- memory through the allocator hook ---------------------------------------------------- */

typedef struct counting_s {
    long calls;   /* malloc_fn and realloc_fn calls */
    long fail_at; /* the call that returns NULL (1-based); 0: never */
    long allocs;  /* blocks handed out */
    long frees;   /* blocks given back */
} counting_t;

static counting_t counts;

static bool should_fail(void)
{
    counts.calls++;
    return counts.fail_at != 0 && counts.calls == counts.fail_at;
}

static void *count_malloc(void *ud, size_t size)
{
    (void)ud;
    if (should_fail())
        return NULL;
    void *p = malloc(size);
    if (p != NULL)
        counts.allocs++;
    return p;
}

static void *count_realloc(void *ud, void *ptr, size_t size)
{
    (void)ud;
    if (should_fail())
        return NULL;
    void *p = realloc(ptr, size);
    if (p != NULL && ptr == NULL)
        counts.allocs++;
    return p;
}

static void count_free(void *ud, void *ptr)
{
    (void)ud;
    if (ptr != NULL)
        counts.frees++;
    free(ptr);
}

static int install_counting(void **state)
{
    (void)state;
    memset(&counts, 0, sizeof(counts));
    static const fw_allocator_t a = {count_malloc, count_realloc, count_free, NULL};
    return fw_allocator_set(&a);
}

static int restore_allocator(void **state)
{
    (void)state;
    return fw_allocator_set(NULL);
}

/* Builds, renders and encodes a query that uses every kind of allocation the builder makes.
 * Returns 0 or the first error; everything is freed either way. */
static int build_everything(void)
{
    fw_query_t *q = NULL;
    int rc = fw_query_new(&q);
    if (rc != 0) {
        assert_null(q);
        return rc;
    }
    const char *in[] = {"1", "2", "3"};
    fw_query_entity(q, "first");
    fw_query_relation(q, "s.second"); /* replaces: frees the first */
    for (int i = 0; i < 6; i++) {     /* enough to grow the arrays */
        fw_query_where_sql(q, "true");
        fw_query_where(q, "a.b", FW_OP_EQ, FW_VALUE_TEXT, "x");
        fw_query_where(q, NULL, FW_OP_IS_NULL, FW_VALUE_TEXT, NULL);
        fw_query_order_by(q, "data->>'a'", i % 2 ? "C" : NULL, i % 2);
    }
    fw_query_where_in(q, "n", FW_VALUE_NUMBER, in, 3);
    fw_query_where_in(q, "n", FW_VALUE_NUMBER, in, 0);
    fw_query_limit(q, 10);
    fw_query_offset(q, 5);
    fw_query_statement_timeout(q, 100);
    rc = fw_query_chunk_size(q, 100); /* the sticky error, if any setter failed */
    if (rc == 0) {
        char sql[16];
        assert_true(fw_query_sql(q, sql, sizeof(sql)) > 0);
        fw__pq_buf_t b;
        fw__pq_buf_init(&b, &fw__alloc);
        rc = fw__query_encode(q, &b);
        if (rc == 0)
            assert_true(b.len > 0);
        else /* nothing usable appended: the buffer is untouched or holds the error */
            assert_true(b.err == rc || (b.err == 0 && b.len == 0));
        fw__pq_buf_free(&b);
    }
    if (rc == 0) { /* the copy an embedded parallel stream keeps */
        fw_query_t *c = fw__query_clone(q);
        if (c == NULL)
            rc = FW_ENOMEM;
        fw_query_free(c);
    }
    fw_query_free(q);
    return rc;
}

static void test_every_allocation_goes_through_the_allocator_hook(void **state)
{
    (void)state;
    assert_int_equal(build_everything(), 0);
    assert_true(counts.allocs > 0);
    assert_int_equal(counts.allocs, counts.frees);
}

static void test_allocation_failure_at_every_call_gives_enomem_without_leaks(void **state)
{
    (void)state;
    assert_int_equal(build_everything(), 0);
    long total = counts.calls;
    assert_true(total > 5);
    for (long k = 1; k <= total; k++) {
        memset(&counts, 0, sizeof(counts));
        counts.fail_at = k;
        int rc = build_everything();
        assert_int_equal(rc, FW_ENOMEM);
        assert_true(counts.calls >= k);
        assert_int_equal(counts.allocs, counts.frees);
    }
    memset(&counts, 0, sizeof(counts));
    counts.fail_at = total + 1; /* past the last call: all succeed */
    assert_int_equal(build_everything(), 0);
    assert_int_equal(counts.calls, total);
    assert_int_equal(counts.allocs, counts.frees);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_entity_becomes_quoted_v_prefixed_view),
        cmocka_unit_test(test_relation_is_split_at_the_first_dot_and_each_part_quoted),
        cmocka_unit_test(test_a_later_source_replaces_the_earlier_one),
        cmocka_unit_test(test_source_names_are_refused_when_empty_or_over_63_bytes),
        cmocka_unit_test(test_sql_and_encode_refuse_a_query_without_source),
        cmocka_unit_test(test_where_sql_is_wrapped_in_parentheses_and_newlines),
        cmocka_unit_test(test_every_comparison_operator_renders_its_golden_sql),
        cmocka_unit_test(test_every_value_type_renders_its_cast),
        cmocka_unit_test(test_paths_bind_one_text_parameter_per_element),
        cmocka_unit_test(test_in_lists_every_value_and_empty_in_is_false),
        cmocka_unit_test(test_order_by_keys_keep_their_order_collation_and_direction),
        cmocka_unit_test(test_limit_and_offset_are_bigint_parameters_set_once),
        cmocka_unit_test(test_parameters_are_numbered_in_the_order_of_the_text),
        cmocka_unit_test(test_the_plain_query_is_one_simple_query),
        cmocka_unit_test(test_anything_but_the_source_keeps_the_extended_protocol),
        cmocka_unit_test(test_encoded_run_matches_hand_built_bytes),
        cmocka_unit_test(test_encoded_run_is_parse_bind_describe_execute_sync),
        cmocka_unit_test(test_statement_timeout_sends_set_config_first_in_the_same_sync),
        cmocka_unit_test(test_encode_returns_the_buffer_sticky_error_and_the_query_error),
        cmocka_unit_test(test_invalid_predicates_are_refused_with_einval),
        cmocka_unit_test(test_null_query_and_bad_buffers_are_refused),
        cmocka_unit_test(test_first_error_is_sticky_and_later_setters_do_nothing),
        cmocka_unit_test(test_chunk_size_defaults_to_256_and_takes_1_to_65536),
        cmocka_unit_test(test_max_memory_defaults_to_4_mib_and_takes_at_least_64_kib),
        cmocka_unit_test(test_statement_timeout_defaults_to_none_and_takes_up_to_int32_max),
        cmocka_unit_test(test_predicate_is_kept_with_its_user_data_and_null_removes_it),
        cmocka_unit_test(test_parameters_stop_at_65535_in_the_whole_query),
        cmocka_unit_test(test_encode_binds_all_65535_parameters),
        cmocka_unit_test(test_sql_output_follows_snprintf),
        cmocka_unit_test(test_strings_are_copied),
        cmocka_unit_test(test_clone_is_deep_and_encodes_the_same_bytes),
        cmocka_unit_test(test_parallel_part_runs_put_snapshot_first_and_bind_key_bounds_last),
        cmocka_unit_test_setup_teardown(test_every_allocation_goes_through_the_allocator_hook,
                                        install_counting, restore_allocator),
        cmocka_unit_test_setup_teardown(
            test_allocation_failure_at_every_call_gives_enomem_without_leaks, install_counting,
            restore_allocator),
    };
    return cmocka_run_group_tests_name("lib_query", tests, NULL, NULL);
}
