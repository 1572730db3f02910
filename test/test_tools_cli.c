/* SPDX-License-Identifier: MIT */
/*
 * The fwire command's shared option parser (tools/cli.c): every spelling it accepts, every
 * mistake it reports, the number and size parsers, and how psql's connection options reach the
 * library (the PG* variables). The shell tests (check-ping.sh, check-stream.sh) run the same
 * code through the command against the server.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cli.h"

enum { T_FLAG, T_VALUE, T_OTHER };

static const cli_opt_t opts[] = {
    CLI_CONN_OPTIONS,
    {"flag", 'f', false, T_FLAG},
    {"value", 'x', true, T_VALUE},
    {"other", 'o', false, T_OTHER},
    {NULL, 0, false, 0},
};

typedef struct seen_s {
    int ids[16];
    const char *values[16]; /* point into argv */
    char *written[16];
    char *argv[16];
    int n;
    int last; /* the code that ended the parse */
} seen_t;

/* Parses args (args[0] is the subcommand, NULL-terminated) to the end or the first error. The
 * arguments are copied: argv of a real program is writable, string literals are not. */
static seen_t parse(const char *const *args)
{
    seen_t s;
    memset(&s, 0, sizeof(s));
    int argc = 0;
    while (args[argc] != NULL && argc < 15) {
        s.argv[argc] = strdup(args[argc]);
        argc++;
    }
    char **argv = s.argv;
    cli_parser_t p;
    cli_init(&p, "test", opts, argc, argv);
    const char *v;
    int c;
    while ((c = cli_next(&p, &v)) != CLI_DONE && c != CLI_ERROR && c != CLI_HELP && s.n < 16) {
        s.ids[s.n] = c;
        s.values[s.n] = v;
        s.written[s.n] = strdup(cli_written(&p));
        s.n++;
    }
    s.last = c;
    return s;
}

static void seen_free(seen_t *s)
{
    for (int i = 0; i < s->n; i++)
        free(s->written[i]);
    for (int i = 0; i < 16; i++)
        free(s->argv[i]);
}

static void test_every_spelling_of_a_value(void **state)
{
    (void)state;
    static const char *const argv[] = {"test", "--value", "a", "--value=b", "-x", "c", "-xd", "--value=", NULL};
    seen_t s = parse(argv);
    assert_int_equal(s.last, CLI_DONE);
    assert_int_equal(s.n, 5);
    const char *want[] = {"a", "b", "c", "d", ""};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(s.ids[i], T_VALUE);
        assert_string_equal(s.values[i], want[i]);
    }
    assert_string_equal(s.written[0], "--value");
    assert_string_equal(s.written[2], "-x");
    seen_free(&s);
}

static void test_flags_group_and_arguments_keep_their_order(void **state)
{
    (void)state;
    static const char *const argv[] = {"test", "one", "-fo", "two", "-fxv", "--", "-f", "-", NULL};
    seen_t s = parse(argv);
    assert_int_equal(s.last, CLI_DONE);
    int ids[] = {CLI_ARG, T_FLAG, T_OTHER, CLI_ARG, T_FLAG, T_VALUE, CLI_ARG, CLI_ARG};
    assert_int_equal(s.n, 8);
    for (int i = 0; i < 8; i++)
        assert_int_equal(s.ids[i], ids[i]);
    assert_string_equal(s.values[0], "one");
    assert_null(s.values[1]);
    assert_string_equal(s.values[3], "two");
    assert_string_equal(s.values[5], "v"); /* -fxv: flag f, then x takes the rest */
    assert_string_equal(s.values[6], "-f"); /* after "--" an option is an argument */
    assert_string_equal(s.values[7], "-");  /* "-" alone is an argument (stdin, by custom) */
    seen_free(&s);
}

static void test_help_is_long_help_and_question_mark(void **state)
{
    (void)state;
    static const char *const a1[] = {"test", "--help", NULL};
    static const char *const a2[] = {"test", "-?", NULL};
    static const char *const a3[] = {"test", "-f?", NULL};
    seen_t s1 = parse(a1), s2 = parse(a2), s3 = parse(a3);
    assert_int_equal(s1.last, CLI_HELP);
    assert_int_equal(s2.last, CLI_HELP);
    assert_int_equal(s3.last, CLI_HELP);
    assert_int_equal(s3.n, 1);
    seen_free(&s1);
    seen_free(&s2);
    seen_free(&s3);
}

static void test_each_mistake_is_an_error(void **state)
{
    (void)state;
    static const char *const cases[][3] = {
        {"test", "--bogus", NULL}, /* unknown long */
        {"test", "-z", NULL},      /* unknown short */
        {"test", "--value", NULL}, /* missing value, long */
        {"test", "-x", NULL},      /* missing value, short */
        {"test", "--flag=1", NULL}, /* a value for a flag */
        {"test", "--fla", NULL},   /* no abbreviations: they break when an option is added */
        {"test", "--help=me", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        seen_t s = parse(cases[i]);
        assert_int_equal(s.last, CLI_ERROR);
        assert_int_equal(s.n, 0);
        seen_free(&s);
    }
    /* the parse stops at the mistake: what came before it was seen */
    static const char *const argv[] = {"test", "-f", "--nope", "-o", NULL};
    seen_t s = parse(argv);
    assert_int_equal(s.last, CLI_ERROR);
    assert_int_equal(s.n, 1);
    seen_free(&s);
}

static void test_numbers_and_sizes(void **state)
{
    (void)state;
    uint64_t v;
    assert_true(cli_parse_uint("0", 10, &v) && v == 0);
    assert_true(cli_parse_uint("18446744073709551615", UINT64_MAX, &v) && v == UINT64_MAX);
    assert_false(cli_parse_uint("18446744073709551616", UINT64_MAX, &v));
    assert_false(cli_parse_uint("11", 10, &v));
    assert_false(cli_parse_uint("", 10, &v));
    assert_false(cli_parse_uint("-1", 10, &v));
    assert_false(cli_parse_uint("+1", 10, &v));
    assert_false(cli_parse_uint("1x", 10, &v));
    static const struct {
        const char *s;
        uint64_t v;
    } ok[] = {{"65536", 65536},       {"64K", 64u << 10},  {"64k", 64u << 10},
              {"4M", 4u << 20},       {"4MB", 4u << 20},   {"4MiB", 4u << 20},
              {"1G", 1ull << 30},     {"7B", 7},           {"0", 0}};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        assert_true(cli_parse_size(ok[i].s, &v));
        assert_int_equal(v, ok[i].v);
    }
    static const char *const bad[] = {"", "M", "4X", "4iB", "4 M", "-4M", "4MM",
                                      "17179869184G", "99999999999999999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(cli_parse_size(bad[i], &v));
}

static void test_connection_options_become_the_environment(void **state)
{
    (void)state;
    setenv("PGHOST", "from-env", 1);
    setenv("PGPORT", "1111", 1);
    unsetenv("PGUSER");
    unsetenv("PGDATABASE");
    char a0[] = "test", a1[] = "-h", a2[] = "db1", a3[] = "--port=5433", a4[] = "-U", a5[] = "app";
    char *argv[] = {a0, a1, a2, a3, a4, a5, NULL};
    cli_parser_t p;
    cli_init(&p, "test", opts, 6, argv);
    cli_conn_t c = {NULL, NULL, NULL, NULL, NULL};
    const char *v;
    int id;
    while ((id = cli_next(&p, &v)) >= 0)
        assert_true(cli_conn_option(&c, id, v));
    assert_int_equal(id, CLI_DONE);
    assert_int_equal(cli_conn_apply(&c, "test"), -1);
    /* the options replace the environment; what was not given stays as it was */
    assert_string_equal(getenv("PGHOST"), "db1");
    assert_string_equal(getenv("PGPORT"), "5433");
    assert_string_equal(getenv("PGUSER"), "app");
    assert_null(getenv("PGDATABASE"));
    assert_null(c.conninfo);
    assert_false(cli_conn_option(&c, T_FLAG, NULL));
}

static void test_dbname_may_be_the_conninfo(void **state)
{
    (void)state;
    unsetenv("PGDATABASE");
    cli_conn_t c = {NULL, NULL, NULL, "host=db1 dbname=app", NULL};
    assert_int_equal(cli_conn_apply(&c, "test"), -1);
    assert_string_equal(c.conninfo, "host=db1 dbname=app");
    assert_null(c.dbname);
    assert_null(getenv("PGDATABASE"));
    /* as a URI too; a plain name is a database name */
    cli_conn_t u = {NULL, NULL, NULL, "postgresql://db1/app", NULL};
    assert_int_equal(cli_conn_apply(&u, "test"), -1);
    assert_string_equal(u.conninfo, "postgresql://db1/app");
    cli_conn_t n = {NULL, NULL, NULL, "app", NULL};
    assert_int_equal(cli_conn_apply(&n, "test"), -1);
    assert_null(n.conninfo);
    assert_string_equal(getenv("PGDATABASE"), "app");
    /* -d with a connection string and a CONNINFO argument: one too many */
    cli_conn_t two = {NULL, NULL, NULL, "host=db1", NULL};
    assert_int_equal(cli_conn_set(&two, "test", "host=db2"), EXIT_USAGE);
    cli_conn_t twice = {NULL, NULL, NULL, NULL, NULL};
    assert_int_equal(cli_conn_set(&twice, "test", "host=db1"), -1);
    assert_int_equal(cli_conn_set(&twice, "test", "host=db2"), EXIT_USAGE);
}

static void test_bad_ports_and_empty_values_are_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {"0", "65536", "abc", "54 32", "5432,x", "-1", "123456789"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cli_conn_t c = {NULL, bad[i], NULL, NULL, NULL};
        assert_int_equal(cli_conn_apply(&c, "test"), EXIT_USAGE);
    }
    cli_conn_t list = {NULL, "5432,5433", NULL, NULL, NULL};
    assert_int_equal(cli_conn_apply(&list, "test"), -1);
    assert_string_equal(getenv("PGPORT"), "5432,5433");
    /* an empty entry is the default port, as in libpq's lists */
    cli_conn_t gap = {NULL, "5432,,5433", NULL, NULL, NULL};
    assert_int_equal(cli_conn_apply(&gap, "test"), -1);
    cli_conn_t empty = {"", NULL, NULL, NULL, NULL};
    assert_int_equal(cli_conn_apply(&empty, "test"), EXIT_USAGE);
    assert_true(cli_is_conninfo("a=b"));
    assert_true(cli_is_conninfo("postgres://x"));
    assert_false(cli_is_conninfo("v_user"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_spelling_of_a_value),
        cmocka_unit_test(test_flags_group_and_arguments_keep_their_order),
        cmocka_unit_test(test_help_is_long_help_and_question_mark),
        cmocka_unit_test(test_each_mistake_is_an_error),
        cmocka_unit_test(test_numbers_and_sizes),
        cmocka_unit_test(test_connection_options_become_the_environment),
        cmocka_unit_test(test_dbname_may_be_the_conninfo),
        cmocka_unit_test(test_bad_ports_and_empty_values_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
