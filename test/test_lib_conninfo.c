/* SPDX-License-Identifier: MIT */
/*
 * Connection strings: both syntaxes, the environment, defaults and validation, against a table of
 * strings with the effective values (or the error text) libpq 15/16 gives. The same table feeds
 * test_lib_conninfo_oracle.c, which includes this file with FW_CONNINFO_CORPUS_ONLY defined and
 * checks the parse-level columns against libpq's own PQconninfoParse.
 */
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "conninfo.h"

/* The oracle cannot check these rows (it still runs them through fwire): */
#define ORA_PG16   1u       /* PG16 keywords or semantics: libpq 15 rejects or ignores them */
#define ORA_PG18   ORA_PG16 /* PG18 keywords (min/max_protocol_version): likewise */
#define ORA_FWIRE  2u /* fwire refuses on purpose what libpq 15 accepts (docs: "Differences") */
#define ORA_NOTEXT 4u /* same decision, different text (a withheld secret, a fwire-only check) */

typedef struct ci_case_s {
    const char *str;
    const char *err;    /* NULL: must succeed; else a substring of the error message */
    const char *kv[20]; /* keyword, effective value, ...; NULL-terminated */
    unsigned flags;
} ci_case_t;

/* Effective values with the hermetic environment of run_case(): no PG* variables, OS user
 * "alice", home "/home/alice". */
static const ci_case_t ci_cases[] = {
    /* ---- keyword=value: quoting, escapes, blanks ---- */
    {"host=a port=5432 dbname='my db' password='it\\'s'",
     NULL,
     {"host", "a", "port", "5432", "dbname", "my db", "password", "it's"},
     0},
    {"host = a  port =5433", NULL, {"host", "a", "port", "5433"}, 0},
    {"  host=a\tport=1\n", NULL, {"host", "a", "port", "1"}, 0},
    {"dbname=''", NULL, {"dbname", "alice"}, 0},
    {"host=", NULL, {"host", ""}, 0},
    {"host= port=5", NULL, {"host", "port=5", "port", "5432"}, 0},
    {"application_name=a\\ b", NULL, {"application_name", "a b"}, 0},
    {"application_name='a\\\\b'", NULL, {"application_name", "a\\b"}, 0},
    {"application_name=x'y", NULL, {"application_name", "x'y"}, 0},
    {"host='a'port=7", NULL, {"host", "a", "port", "7"}, 0},
    {"application_name='unterminated",
     "unterminated quoted string in connection info string",
     {NULL},
     0},
    {"application_name='ends in backslash\\", "unterminated quoted string", {NULL}, 0},
    {"application_name=trailing\\", NULL, {"application_name", "trailing"}, 0},
    {"application_name='' user=bob", NULL, {"application_name", "", "user", "bob"}, 0},
    {"host", "missing \"=\" after \"host\" in connection info string", {NULL}, 0},
    {"host x=1", "missing \"=\" after \"host\" in connection info string", {NULL}, 0},
    {"=x", "invalid connection option \"\"", {NULL}, 0},
    {"foo=bar", "invalid connection option \"foo\"", {NULL}, 0},
    {"HOST=a", "invalid connection option \"HOST\"", {NULL}, 0},
    {"tty=x", "invalid connection option \"tty\"", {NULL}, 0},
    {"host=a host=b", NULL, {"host", "b"}, 0},
    {"requiressl=1", NULL, {"sslmode", "require"}, 0},
    {"requiressl=0 sslmode=disable requiressl=yes", NULL, {"sslmode", "prefer"}, 0},
    {"",
     NULL,
     {"host", NULL, "port", "5432", "user", "alice", "dbname", "alice", "sslmode", "prefer",
      "channel_binding", "prefer", "sslsni", "1", "gssencmode", "disable", "options", ""},
     0},
    {"   ", NULL, {"user", "alice", "ssl_min_protocol_version", "TLSv1.2"}, 0},
    {"application_name=\"quoted\"", NULL, {"application_name", "\"quoted\""}, 0},
    {"application_name=\xc3\xa9t\xc3\xa9", NULL, {"application_name", "\xc3\xa9t\xc3\xa9"}, 0},
    {"options='-c search_path=x'", NULL, {"options", "-c search_path=x"}, 0},
    {"service=foo", "connection option \"service\" is not supported", {NULL}, ORA_FWIRE},
    {"krbsrvname=postgres", "connection option \"krbsrvname\" is not supported", {NULL}, ORA_FWIRE},
    {"gsslib=gssapi", "not supported: fwire has no GSSAPI", {NULL}, ORA_FWIRE},
    {"replication=database",
     "connection option \"replication\" is not supported",
     {NULL},
     ORA_FWIRE},
    {"sslcertmode=require", "invalid connection option \"sslcertmode\"", {NULL}, 0},

    /* ---- URIs ---- */
    {"postgresql://", NULL, {"host", NULL, "user", "alice", "dbname", "alice"}, 0},
    {"postgres://h", NULL, {"host", "h"}, 0},
    {"postgresql://u:secret@h:5433/db",
     NULL,
     {"user", "u", "password", "secret", "host", "h", "port", "5433", "dbname", "db"},
     0},
    {"postgresql://u@h", NULL, {"user", "u", "password", NULL}, 0},
    {"postgresql://:pw@h", NULL, {"user", "alice", "password", "pw"}, 0},
    {"postgresql://h1:5432,h2,[::1]:6000/db",
     NULL,
     {"host", "h1,h2,::1", "port", "5432,,6000", "dbname", "db"},
     0},
    {"postgresql://[::1]/db", NULL, {"host", "::1"}, 0},
    {"postgresql://[fe80::1%25eth0]:5/db", NULL, {"host", "fe80::1%eth0", "port", "5"}, ORA_NOTEXT},
    {"postgresql://[::1",
     "end of string reached when looking for matching \"]\" in IPv6 host address in URI: "
     "\"postgresql://[::1\"",
     {NULL},
     0},
    {"postgresql://[]/db",
     "IPv6 host address may not be empty in URI: \"postgresql://[]/db\"",
     {NULL},
     0},
    {"postgresql://[::1]x/db",
     "unexpected character \"x\" at position 19 in URI (expected \":\" or \"/\"): "
     "\"postgresql://[::1]x/db\"",
     {NULL},
     0},
    {"postgresql://%2Fvar%2Frun%2Fpostgresql/db",
     NULL,
     {"host", "/var/run/postgresql", "dbname", "db"},
     0},
    {"postgresql:///db?host=/tmp/sock", NULL, {"host", "/tmp/sock", "dbname", "db"}, 0},
    {"postgresql://h/db?sslmode=require&application_name=a%20b",
     NULL,
     {"sslmode", "require", "application_name", "a b"},
     0},
    {"postgresql://h/?ssl=true", NULL, {"sslmode", "require", "dbname", "alice"}, 0},
    {"postgresql://h/?ssl=false", "invalid URI query parameter: \"ssl\"", {NULL}, 0},
    {"postgresql://h/db?foo=bar", "invalid URI query parameter: \"foo\"", {NULL}, 0},
    {"postgresql://h/db?sslmode",
     "missing key/value separator \"=\" in URI query parameter: \"sslmode\"",
     {NULL},
     0},
    {"postgresql://h/db?a=b=c",
     "extra key/value separator \"=\" in URI query parameter: \"a\"",
     {NULL},
     0},
    {"postgresql://h/d%zzb", "invalid percent-encoded token", {NULL}, ORA_NOTEXT},
    {"postgresql://h/d%2", "invalid percent-encoded token", {NULL}, ORA_NOTEXT},
    {"postgresql://h/d%00b", "forbidden value %00 in percent-encoded value", {NULL}, ORA_NOTEXT},
    {"postgresql://h/db?application_name=%41%62", NULL, {"application_name", "Ab"}, 0},
    {"postgresql://h/db?%73slmode=require", NULL, {"sslmode", "require"}, 0},
    {"postgresql://h/db?", NULL, {"dbname", "db"}, 0},
    {"postgresql://h/db?&",
     "missing key/value separator \"=\" in URI query parameter: \"\"",
     {NULL},
     0},
    {"postgresql://h/db?sslmode=require&", NULL, {"sslmode", "require"}, 0},
    {"postgresql://h:5432/", NULL, {"port", "5432", "dbname", "alice"}, 0},
    {"postgresql://a%2Cb/db", NULL, {"host", "a,b"}, 0},
    {"postgresql://h/db?host=x&host=y", NULL, {"host", "y"}, 0},
    {"postgresql://h/db?dbname=other", NULL, {"dbname", "other"}, 0},
    {"postgresql://u@h/db?user=u2", NULL, {"user", "u2"}, 0},
    {"postgresql://h/db?requiressl=1", NULL, {"sslmode", "require"}, 0},
    {"postgresql://us%40er:p%40ss@h/db", NULL, {"user", "us@er", "password", "p@ss"}, 0},
    {"postgresql://h/db?password=s%3Dcret", NULL, {"password", "s=cret"}, 0},
    {"postgresql://h/db?service=x",
     "connection option \"service\" is not supported",
     {NULL},
     ORA_FWIRE},
    {"postgresql://h,/db", NULL, {"host", "h,"}, 0},
    {"postgresql://h?user=a@b", NULL, {"user", "h?user=a", "host", "b"}, ORA_NOTEXT},
    {"postgresql://h/db#frag", NULL, {"dbname", "db#frag"}, 0},
    {"postgresql://h:abc/db",
     "invalid integer value \"abc\" for connection option \"port\"",
     {NULL},
     0},
    {"postgresql://h:0/db", "invalid port number: \"0\"", {NULL}, 0},
    {"postgresql://h:70000/db", "invalid port number: \"70000\"", {NULL}, 0},
    {"postgresql://h/db?connect_timeout=10&keepalives=0",
     NULL,
     {"connect_timeout", "10", "keepalives", "0"},
     0},
    {"postgresql://h/db?require_auth=scram-sha-256",
     NULL,
     {"require_auth", "scram-sha-256"},
     ORA_PG16},

    /* ---- host, hostaddr and port lists ---- */
    {"host=a,b,c port=1,2,3", NULL, {"host", "a,b,c", "port", "1,2,3"}, 0},
    {"host=a,b port=1,2,3", "could not match 3 port numbers to 2 hosts", {NULL}, 0},
    {"host=a,b port=5", NULL, {"port", "5"}, 0},
    {"host=a,b port=5,", NULL, {"port", "5,"}, 0},
    {"hostaddr=127.0.0.1,::1 host=a",
     "could not match 1 host names to 2 hostaddr values",
     {NULL},
     0},
    {"hostaddr=127.0.0.1 host=a", NULL, {"hostaddr", "127.0.0.1", "host", "a"}, 0},
    {"hostaddr=not-an-ip", "could not parse network address \"not-an-ip\"", {NULL}, 0},
    {"hostaddr=127.1", "could not parse network address \"127.1\"", {NULL}, ORA_FWIRE},
    {"hostaddr=127.0.0.1,,::1 host=a,b,c", NULL, {"hostaddr", "127.0.0.1,,::1"}, 0},
    {"host=/tmp,@abstract,db", NULL, {"host", "/tmp,@abstract,db"}, 0},

    /* ---- enumerations ---- */
    {"sslmode=verify-full", NULL, {"sslmode", "verify-full"}, 0},
    {"sslmode=bogus", "invalid sslmode value: \"bogus\"", {NULL}, 0},
    {"sslmode=''", "invalid sslmode value: \"\"", {NULL}, 0},
    {"sslmode=Require", "invalid sslmode value: \"Require\"", {NULL}, 0},
    {"channel_binding=require", NULL, {"channel_binding", "require"}, 0},
    {"channel_binding=maybe", "invalid channel_binding value: \"maybe\"", {NULL}, 0},
    {"target_session_attrs=prefer-standby", NULL, {"target_session_attrs", "prefer-standby"}, 0},
    {"target_session_attrs=primaryx",
     "invalid target_session_attrs value: \"primaryx\"",
     {NULL},
     0},
    {"load_balance_hosts=random", NULL, {"load_balance_hosts", "random"}, ORA_PG16},
    {"load_balance_hosts=yes", "invalid load_balance_hosts value: \"yes\"", {NULL}, ORA_PG16},
    {"gssencmode=disable", NULL, {"gssencmode", "disable"}, 0},
    {"gssencmode=prefer", "gssencmode value \"prefer\" is not supported", {NULL}, 0},
    {"gssencmode=x", "invalid gssencmode value: \"x\"", {NULL}, 0},
    {"sslcompression=1", "TLS compression is insecure", {NULL}, 0},
    {"sslcompression=0", NULL, {"sslcompression", "0"}, 0},
    {"sslcompression=maybe", "invalid sslcompression value: \"maybe\"", {NULL}, 0},
    {"sslsni=0", NULL, {"sslsni", "0"}, 0},
    {"ssl_min_protocol_version=TLSv1.3 ssl_max_protocol_version=TLSv1.2",
     "invalid SSL protocol version range",
     {NULL},
     0},
    {"ssl_min_protocol_version=tlsv1.3", NULL, {"ssl_min_protocol_version", "tlsv1.3"}, 0},
    {"ssl_min_protocol_version=TLSv1",
     "is not supported: fwire requires TLSv1.2 or later",
     {NULL},
     0},
    {"ssl_max_protocol_version=SSLv3",
     "invalid ssl_max_protocol_version value: \"SSLv3\"",
     {NULL},
     0},
    {"ssl_min_protocol_version=''", NULL, {"ssl_min_protocol_version", ""}, 0},
    {"client_encoding=utf-8", NULL, {"client_encoding", "utf-8"}, 0},
    {"client_encoding=UNICODE", NULL, {"client_encoding", "UNICODE"}, 0},
    {"client_encoding=LATIN1", "client_encoding \"LATIN1\" is not supported", {NULL}, 0},
    {"client_encoding=auto", "client_encoding \"auto\" is not supported", {NULL}, 0},

    /* ---- min/max_protocol_version (PG18: 3.0, 3.2, latest; libpq 18's defaults) ---- */
    {"", NULL, {"min_protocol_version", NULL, "max_protocol_version", NULL}, ORA_PG18},
    {"max_protocol_version=3.2", NULL, {"max_protocol_version", "3.2"}, ORA_PG18},
    {"max_protocol_version=latest min_protocol_version=3.0",
     NULL,
     {"max_protocol_version", "latest", "min_protocol_version", "3.0"},
     ORA_PG18},
    {"min_protocol_version=3.2", NULL, {"min_protocol_version", "3.2"}, ORA_PG18},
    {"min_protocol_version=latest max_protocol_version=3.2", NULL, {NULL}, ORA_PG18},
    {"postgresql://h/db?max_protocol_version=3.2", NULL, {"max_protocol_version", "3.2"}, ORA_PG18},
    {"max_protocol_version=3.1",
     "invalid max_protocol_version value: \"3.1\" (accepted: 3.0, 3.2, latest)",
     {NULL},
     ORA_PG18},
    {"min_protocol_version=3", "invalid min_protocol_version value: \"3\"", {NULL}, ORA_PG18},
    {"min_protocol_version=Latest",
     "invalid min_protocol_version value: \"Latest\"",
     {NULL},
     ORA_PG18},
    {"max_protocol_version=''",
     "invalid max_protocol_version value: \"\" (accepted: 3.0, 3.2, latest)",
     {NULL},
     ORA_PG18},
    {"min_protocol_version=3.2 max_protocol_version=3.0",
     "min_protocol_version \"3.2\" is greater than max_protocol_version \"3.0\"",
     {NULL},
     ORA_PG18},
    {"min_protocol_version=latest max_protocol_version=3.0",
     "min_protocol_version \"latest\" is greater than max_protocol_version \"3.0\"",
     {NULL},
     ORA_PG18},

    /* ---- require_auth (PG16 grammar and messages) ---- */
    {"require_auth=password,md5", NULL, {"require_auth", "password,md5"}, ORA_PG16},
    {"require_auth=!password,!md5", NULL, {"require_auth", "!password,!md5"}, ORA_PG16},
    {"require_auth=password,!md5",
     "negative require_auth method \"!md5\" cannot be mixed with non-negative methods",
     {NULL},
     ORA_PG16},
    {"require_auth=!password,md5",
     "require_auth method \"md5\" cannot be mixed with negative methods",
     {NULL},
     ORA_PG16},
    {"require_auth=password,password",
     "require_auth method \"password\" is specified more than once",
     {NULL},
     ORA_PG16},
    {"require_auth=!none,!none",
     "require_auth method \"!none\" is specified more than once",
     {NULL},
     ORA_PG16},
    {"require_auth=none,none",
     "require_auth method \"none\" is specified more than once",
     {NULL},
     ORA_PG16},
    {"require_auth=kerberos", "invalid require_auth value: \"kerberos\"", {NULL}, ORA_PG16},
    {"require_auth=scram-sha-256,none", NULL, {NULL}, ORA_PG16},
    {"require_auth=", NULL, {"require_auth", ""}, ORA_PG16},
    {"require_auth=password,", "invalid require_auth value: \"\"", {NULL}, ORA_PG16},
    {"require_auth=gss,sspi", NULL, {NULL}, ORA_PG16},
    {"require_auth=!gss,!sspi", NULL, {NULL}, ORA_PG16},
    {"require_auth=SCRAM-SHA-256",
     "invalid require_auth value: \"SCRAM-SHA-256\"",
     {NULL},
     ORA_PG16},

    /* ---- sslrootcert=system (PG16): forces verify-full ---- */
    {"sslrootcert=system", NULL, {"sslmode", "verify-full", "sslrootcert", "system"}, 0},
    {"sslrootcert=system sslmode=require",
     "weak sslmode \"require\" may not be used with sslrootcert=system (use \"verify-full\")",
     {NULL},
     0},
    {"sslrootcert=system sslmode=verify-ca", "weak sslmode \"verify-ca\"", {NULL}, 0},
    {"sslrootcert=system sslmode=verify-full", NULL, {"sslmode", "verify-full"}, 0},
    {"sslrootcert=/etc/ca.pem", NULL, {"sslmode", "prefer"}, 0},

    /* ---- integers (libpq's parse_int_param) ---- */
    {"connect_timeout=10", NULL, {"connect_timeout", "10"}, 0},
    {"connect_timeout=' 10 '", NULL, {"connect_timeout", " 10 "}, 0},
    {"connect_timeout=+7", NULL, {"connect_timeout", "+7"}, 0},
    {"connect_timeout=10s",
     "invalid integer value \"10s\" for connection option \"connect_timeout\"",
     {NULL},
     0},
    {"connect_timeout=''",
     "invalid integer value \"\" for connection option \"connect_timeout\"",
     {NULL},
     0},
    {"connect_timeout=99999999999", "invalid integer value \"99999999999\"", {NULL}, 0},
    {"keepalives_idle=-3 keepalives_count=2147483647", NULL, {"keepalives_idle", "-3"}, 0},
    {"keepalives_count=2147483648", "invalid integer value \"2147483648\"", {NULL}, 0},
    {"tcp_user_timeout=abc", "for connection option \"tcp_user_timeout\"", {NULL}, 0},
    {"keepalives=0x1", "for connection option \"keepalives\"", {NULL}, 0},
    {"port=' 6543 '", NULL, {"port", " 6543 "}, 0},

    /* ---- messages escape control characters ---- */
    {"sslmode='bad\x01\n'", "invalid sslmode value: \"bad\\x01\\n\"", {NULL}, 0},
    {"x\x1b[31m=1", "invalid connection option \"x\\x1b[31m\"", {NULL}, ORA_NOTEXT},
};
#define CI_NCASES (sizeof(ci_cases) / sizeof(ci_cases[0]))

#ifndef FW_CONNINFO_CORPUS_ONLY

#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "guard.h"
#include "proto.h"

/* ---- hermetic environment ---- */

typedef struct fake_env_s {
    const char *vars[32]; /* "NAME=value" */
} fake_env_t;

static const char *fake_getenv(void *ud, const char *name)
{
    const fake_env_t *fe = ud;
    size_t n = strlen(name);
    for (size_t i = 0; i < 32 && fe->vars[i] != NULL; i++)
        if (strncmp(fe->vars[i], name, n) == 0 && fe->vars[i][n] == '=')
            return fe->vars[i] + n + 1;
    return NULL;
}

static fw__conninfo_env_t make_env(fake_env_t *fe)
{
    fw__conninfo_env_t env = {fake_getenv, fe, "alice", "/home/alice"};
    return env;
}

static fw__conninfo_t *must_parse(const char *str, fake_env_t *fe)
{
    fw__conninfo_env_t env = make_env(fe);
    char err[FW__CONNINFO_ERRLEN];
    fw__conninfo_t *ci = NULL;
    int rc = fw__conninfo_from_string(str, &env, &ci, err, sizeof(err));
    if (rc != 0)
        fail_msg("\"%s\" failed: %s", str, err);
    return ci;
}

static void expect_error(const char *str, fake_env_t *fe, const char *want)
{
    fw__conninfo_env_t env = make_env(fe);
    char err[FW__CONNINFO_ERRLEN];
    fw__conninfo_t *ci = NULL;
    int rc = fw__conninfo_from_string(str, &env, &ci, err, sizeof(err));
    if (rc == 0)
        fail_msg("\"%s\" was accepted, expected \"%s\"", str, want);
    assert_int_equal(rc, FW_EINVAL);
    assert_null(ci);
    if (strstr(err, want) == NULL)
        fail_msg("\"%s\": got \"%s\", expected \"%s\"", str, err, want);
}

static void run_case(const ci_case_t *c)
{
    fake_env_t fe = {{NULL}};
    if (c->err != NULL) {
        expect_error(c->str, &fe, c->err);
        return;
    }
    fw__conninfo_t *ci = must_parse(c->str, &fe);
    for (size_t i = 0; c->kv[i] != NULL; i += 2) {
        const char *got = fw__conninfo_get(ci, c->kv[i]);
        const char *want = c->kv[i + 1];
        if (want == NULL ? got != NULL : got == NULL || strcmp(got, want) != 0)
            fail_msg("\"%s\": %s = \"%s\", expected \"%s\"", c->str, c->kv[i],
                     got ? got : "(unset)", want ? want : "(unset)");
    }
    fw__conninfo_free(ci);
}

static void test_corpus_gives_libpq_values_or_errors(void **state)
{
    (void)state;
    assert_true(CI_NCASES >= 80);
    for (size_t i = 0; i < CI_NCASES; i++)
        run_case(&ci_cases[i]);
}

/* Each row again with the string ending flush against a PROT_NONE page (its NUL is the last
 * readable byte): any read past the terminator faults at once (STYLE 24). */
static void test_corpus_reads_nothing_past_the_terminating_nul(void **state)
{
    (void)state;
    for (size_t i = 0; i < CI_NCASES; i++) {
        guard_buf_t g;
        size_t n = strlen(ci_cases[i].str) + 1;
        assert_int_equal(guard_put(&g, ci_cases[i].str, n), 0);
        char err[FW__CONNINFO_ERRLEN];
        fw__conninfo_t *ci = NULL;
        fw__conninfo_env_t env = {NULL, NULL, "alice", NULL};
        int rc = fw__conninfo_from_string((const char *)g.data, &env, &ci, err, sizeof(err));
        assert_int_equal(rc == 0, ci_cases[i].err == NULL);
        fw__conninfo_free(ci);
        guard_release(&g);
    }
}

/* ---- derived fields ---- */

static void test_host_list_yields_one_entry_per_host_with_types_and_ports(void **state)
{
    (void)state;
    fake_env_t fe = {{NULL}};
    fw__conninfo_t *ci =
        must_parse("postgresql://h1:5433,[::1],%2Ftmp%2Fsock:6000,%40abstract/db", &fe);
    assert_int_equal(ci->nhosts, 4);
    assert_string_equal(ci->hosts[0].host, "h1");
    assert_int_equal(ci->hosts[0].type, FW__HOST_NAME);
    assert_int_equal(ci->hosts[0].port_num, 5433);
    assert_string_equal(ci->hosts[1].host, "::1");
    assert_int_equal(ci->hosts[1].type, FW__HOST_NAME); /* a literal to resolve, as libpq */
    assert_int_equal(ci->hosts[1].port_num, 5432);
    assert_string_equal(ci->hosts[1].port, "");
    assert_string_equal(ci->hosts[2].host, "/tmp/sock");
    assert_int_equal(ci->hosts[2].type, FW__HOST_UNIX);
    assert_int_equal(ci->hosts[2].port_num, 6000);
    assert_int_equal(ci->hosts[3].type, FW__HOST_UNIX);
    fw__conninfo_free(ci);

    ci = must_parse("hostaddr=127.0.0.1,,::1 host=a,,c port=1", &fe);
    assert_int_equal(ci->nhosts, 3);
    assert_int_equal(ci->hosts[0].type, FW__HOST_ADDRESS);
    assert_string_equal(ci->hosts[0].hostaddr, "127.0.0.1");
    assert_string_equal(ci->hosts[0].host, "a");
    assert_int_equal(ci->hosts[1].type, FW__HOST_UNIX);
    assert_string_equal(ci->hosts[1].host, FW__CONNINFO_DEFAULT_SOCKET_DIR);
    assert_null(ci->hosts[1].hostaddr);
    assert_int_equal(ci->hosts[2].type, FW__HOST_ADDRESS);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(ci->hosts[i].port_num, 1);
    fw__conninfo_free(ci);

    ci = must_parse("", &fe);
    assert_int_equal(ci->nhosts, 1);
    assert_string_equal(ci->hosts[0].host, FW__CONNINFO_DEFAULT_SOCKET_DIR);
    assert_int_equal(ci->hosts[0].type, FW__HOST_UNIX);
    fw__conninfo_free(ci);
}

static void test_enums_integers_and_auth_bits_are_derived(void **state)
{
    (void)state;
    fake_env_t fe = {{NULL}};
    fw__conninfo_t *ci = must_parse(
        "sslmode=verify-ca channel_binding=require target_session_attrs=standby "
        "load_balance_hosts=random connect_timeout=1 keepalives=0 keepalives_idle=-3 "
        "tcp_user_timeout=250 sslsni=0 ssl_max_protocol_version=TLSv1.3 require_auth=!password",
        &fe);
    assert_int_equal(ci->sslmode, FW__SSLMODE_VERIFY_CA);
    assert_int_equal(ci->channel_binding, FW__CHANBIND_REQUIRE);
    assert_int_equal(ci->target_session_attrs, FW__TSA_STANDBY);
    assert_int_equal(ci->load_balance_hosts, FW__LB_RANDOM);
    assert_int_equal(ci->connect_timeout, 2); /* libpq raises 1 to 2 */
    assert_false(ci->keepalives);
    assert_int_equal(ci->keepalives_idle, 0); /* negative means 0 */
    assert_int_equal(ci->keepalives_interval, -1);
    assert_int_equal(ci->tcp_user_timeout, 250);
    assert_false(ci->sslsni);
    assert_int_equal(ci->ssl_min_version, FW__TLS_1_2);
    assert_int_equal(ci->ssl_max_version, FW__TLS_1_3);
    assert_true(ci->require_auth_set);
    assert_false(ci->auth_required); /* a negated list allows "none" */
    assert_int_equal(ci->allowed_auth & FW__AUTH_BIT(FW__AUTH_REQ_PASSWORD), 0);
    assert_true((ci->allowed_auth & FW__AUTH_BIT(FW__AUTH_REQ_SASL)) != 0);
    fw__conninfo_free(ci);

    ci = must_parse("require_auth=scram-sha-256", &fe);
    assert_true(ci->auth_required);
    assert_int_equal(ci->allowed_auth, FW__AUTH_BIT(FW__AUTH_REQ_SASL) |
                                           FW__AUTH_BIT(FW__AUTH_REQ_SASL_CONT) |
                                           FW__AUTH_BIT(FW__AUTH_REQ_SASL_FIN));
    fw__conninfo_free(ci);

    ci = must_parse("require_auth=md5,none", &fe);
    assert_false(ci->auth_required);
    assert_int_equal(ci->allowed_auth, FW__AUTH_BIT(FW__AUTH_REQ_MD5));
    fw__conninfo_free(ci);

    ci = must_parse("", &fe);
    assert_false(ci->require_auth_set);
    assert_int_equal(ci->sslmode, FW__SSLMODE_PREFER);
    assert_int_equal(ci->channel_binding, FW__CHANBIND_PREFER);
    assert_true(ci->keepalives);
    assert_true(ci->sslsni);
    assert_int_equal(ci->connect_timeout, 0);
    assert_int_equal(ci->tcp_user_timeout, -1);
    fw__conninfo_free(ci);
}

/* libpq 18's defaults: minimum 3.0; maximum 3.0, or the latest when the minimum is above 3.0. */
static void test_protocol_versions_take_libpq_18_defaults(void **state)
{
    (void)state;
    static const struct {
        const char *str;
        uint32_t min, max;
    } rows[] = {
        {"", FW__PQ_PROTOCOL_3_0, FW__PQ_PROTOCOL_3_0},
        {"max_protocol_version=3.2", FW__PQ_PROTOCOL_3_0, FW__PQ_PROTOCOL_3_2},
        {"max_protocol_version=latest", FW__PQ_PROTOCOL_3_0, FW__PQ_PROTOCOL_LATEST},
        {"max_protocol_version=3.0", FW__PQ_PROTOCOL_3_0, FW__PQ_PROTOCOL_3_0},
        {"min_protocol_version=3.0", FW__PQ_PROTOCOL_3_0, FW__PQ_PROTOCOL_3_0},
        {"min_protocol_version=3.2", FW__PQ_PROTOCOL_3_2, FW__PQ_PROTOCOL_LATEST},
        {"min_protocol_version=latest", FW__PQ_PROTOCOL_LATEST, FW__PQ_PROTOCOL_LATEST},
        {"min_protocol_version=3.2 max_protocol_version=3.2", FW__PQ_PROTOCOL_3_2,
         FW__PQ_PROTOCOL_3_2},
    };
    fake_env_t fe = {{NULL}};
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        fw__conninfo_t *ci = must_parse(rows[i].str, &fe);
        if (ci->min_protocol != rows[i].min || ci->max_protocol != rows[i].max)
            fail_msg("\"%s\": min 0x%x max 0x%x, expected 0x%x 0x%x", rows[i].str,
                     (unsigned)ci->min_protocol, (unsigned)ci->max_protocol, (unsigned)rows[i].min,
                     (unsigned)rows[i].max);
        fw__conninfo_free(ci);
    }
    assert_int_equal(FW__PQ_PROTOCOL_LATEST, FW__PQ_PROTOCOL_3_2);
}

/* PGMINPROTOCOLVERSION and PGMAXPROTOCOLVERSION (libpq 18): below the string, validated alike,
 * and the derived default of the maximum follows a minimum from the environment. */
static void test_protocol_versions_come_from_the_environment(void **state)
{
    (void)state;
    fake_env_t fe = {{"PGMINPROTOCOLVERSION=3.2"}};
    fw__conninfo_t *ci = must_parse("", &fe);
    assert_int_equal(ci->src[FW__CI_MIN_PROTOCOL_VERSION], FW__CI_SRC_ENV);
    assert_int_equal(ci->min_protocol, FW__PQ_PROTOCOL_3_2);
    assert_int_equal(ci->max_protocol, FW__PQ_PROTOCOL_3_2);
    fw__conninfo_free(ci);
    fake_env_t both = {{"PGMINPROTOCOLVERSION=3.2", "PGMAXPROTOCOLVERSION=latest"}};
    ci = must_parse("min_protocol_version=3.0 max_protocol_version=3.0", &both);
    assert_int_equal(ci->min_protocol, FW__PQ_PROTOCOL_3_0); /* the string wins */
    assert_int_equal(ci->max_protocol, FW__PQ_PROTOCOL_3_0);
    fw__conninfo_free(ci);
    fake_env_t bad = {{"PGMAXPROTOCOLVERSION=3.1"}};
    expect_error("", &bad,
                 "invalid max_protocol_version value: \"3.1\" (accepted: 3.0, 3.2, "
                 "latest)");
    fake_env_t crossed = {{"PGMAXPROTOCOLVERSION=3.0"}};
    expect_error("min_protocol_version=3.2", &crossed,
                 "min_protocol_version \"3.2\" is greater than max_protocol_version \"3.0\"");
}

/* ---- environment and precedence ---- */

static void test_string_beats_environment_beats_defaults(void **state)
{
    (void)state;
    fake_env_t fe = {{"PGHOST=envhost", "PGPORT=6000", "PGUSER=envuser", "PGDATABASE=envdb",
                      "PGSSLMODE=verify-full", "PGAPPNAME=envapp", "PGCONNECT_TIMEOUT=9",
                      "PGCHANNELBINDING=require", "PGTARGETSESSIONATTRS=read-only",
                      "PGLOADBALANCEHOSTS=random", "PGREQUIREAUTH=scram-sha-256", "PGSSLSNI=0",
                      "PGPASSWORD=envpw", "PGOPTIONS=-c x=1"}};
    fw__conninfo_t *ci = must_parse("host=strhost sslmode=disable user=''", &fe);
    assert_string_equal(fw__conninfo_get(ci, "host"), "strhost");
    assert_int_equal(ci->src[FW__CI_HOST], FW__CI_SRC_STRING);
    assert_string_equal(fw__conninfo_get(ci, "sslmode"), "disable");
    assert_string_equal(fw__conninfo_get(ci, "port"), "6000");
    assert_int_equal(ci->src[FW__CI_PORT], FW__CI_SRC_ENV);
    /* an explicit empty user is kept over PGUSER, then replaced by the OS user (libpq) */
    assert_string_equal(fw__conninfo_get(ci, "user"), "alice");
    assert_string_equal(fw__conninfo_get(ci, "dbname"), "envdb");
    assert_string_equal(fw__conninfo_get(ci, "application_name"), "envapp");
    assert_string_equal(fw__conninfo_get(ci, "password"), "envpw");
    assert_string_equal(fw__conninfo_get(ci, "options"), "-c x=1");
    assert_int_equal(ci->connect_timeout, 9);
    assert_int_equal(ci->channel_binding, FW__CHANBIND_REQUIRE);
    assert_int_equal(ci->target_session_attrs, FW__TSA_READ_ONLY);
    assert_int_equal(ci->load_balance_hosts, FW__LB_RANDOM);
    assert_true(ci->auth_required);
    assert_false(ci->sslsni);
    fw__conninfo_free(ci);

    fake_env_t none = {{NULL}};
    ci = must_parse("", &none);
    assert_int_equal(ci->src[FW__CI_PORT], FW__CI_SRC_DEFAULT);
    assert_int_equal(ci->src[FW__CI_USER], FW__CI_SRC_DEFAULT);
    assert_int_equal(ci->src[FW__CI_HOST], FW__CI_SRC_NONE);
    assert_null(fw__conninfo_get(ci, "password"));
    fw__conninfo_free(ci);
}

static void test_environment_values_are_validated_like_string_values(void **state)
{
    (void)state;
    fake_env_t a = {{"PGSSLMODE="}};
    expect_error("", &a, "invalid sslmode value: \"\"");
    fake_env_t b = {{"PGPORT=1,2"}};
    expect_error("host=a", &b, "could not match 2 port numbers to 1 hosts");
    fake_env_t c = {{"PGGSSENCMODE=prefer"}};
    expect_error("", &c, "gssencmode value \"prefer\" is not supported");
    fake_env_t d = {{"PGSERVICE=prod"}};
    expect_error("host=a", &d, "PGSERVICE is set, but fwire reads no service file");
    fake_env_t e = {{"PGCLIENTENCODING=SQL_ASCII"}};
    expect_error("", &e, "client_encoding \"SQL_ASCII\" is not supported");
}

/* CVE-2017-7485: PGREQUIRESSL must be honoured when nothing else sets sslmode. */
static void test_pgrequiressl_means_require_unless_sslmode_is_set(void **state)
{
    (void)state;
    fake_env_t one = {{"PGREQUIRESSL=1"}};
    fw__conninfo_t *ci = must_parse("", &one);
    assert_int_equal(ci->sslmode, FW__SSLMODE_REQUIRE);
    assert_int_equal(ci->src[FW__CI_SSLMODE], FW__CI_SRC_ENV);
    fw__conninfo_free(ci);

    fake_env_t yes = {{"PGREQUIRESSL=1yes"}}; /* libpq: any value starting with '1' */
    ci = must_parse("", &yes);
    assert_int_equal(ci->sslmode, FW__SSLMODE_REQUIRE);
    fw__conninfo_free(ci);

    fake_env_t zero = {{"PGREQUIRESSL=0"}};
    ci = must_parse("", &zero);
    assert_int_equal(ci->sslmode, FW__SSLMODE_PREFER);
    fw__conninfo_free(ci);

    fake_env_t both = {{"PGREQUIRESSL=1", "PGSSLMODE=verify-full"}}; /* PGSSLMODE wins */
    ci = must_parse("", &both);
    assert_int_equal(ci->sslmode, FW__SSLMODE_VERIFY_FULL);
    fw__conninfo_free(ci);

    fake_env_t weak = {{"PGREQUIRESSL=1", "PGSSLMODE=allow"}};
    ci = must_parse("", &weak);
    assert_int_equal(ci->sslmode, FW__SSLMODE_ALLOW);
    fw__conninfo_free(ci);

    ci = must_parse("sslmode=disable", &one); /* the string wins */
    assert_int_equal(ci->sslmode, FW__SSLMODE_DISABLE);
    fw__conninfo_free(ci);

    ci = must_parse("requiressl=0", &one); /* requiressl=0 in the string is sslmode=prefer */
    assert_int_equal(ci->sslmode, FW__SSLMODE_PREFER);
    fw__conninfo_free(ci);

    /* sslrootcert=system with only PGREQUIRESSL: require is weaker than verify-full */
    expect_error("sslrootcert=system", &one, "weak sslmode \"require\"");
    fake_env_t sys = {{"PGSSLROOTCERT=system"}};
    ci = must_parse("", &sys);
    assert_int_equal(ci->sslmode, FW__SSLMODE_VERIFY_FULL);
    assert_true(ci->sslrootcert_system);
    fw__conninfo_free(ci);
}

static void test_unknown_user_without_user_option_is_an_error(void **state)
{
    (void)state;
    fw__conninfo_env_t env = {NULL, NULL, NULL, NULL};
    char err[FW__CONNINFO_ERRLEN];
    fw__conninfo_t *ci = NULL;
    assert_int_equal(fw__conninfo_from_string("host=a", &env, &ci, err, sizeof(err)), FW_EINVAL);
    assert_non_null(strstr(err, "set user or PGUSER"));
    assert_int_equal(fw__conninfo_from_string("user=u", NULL, &ci, err, sizeof(err)), 0);
    assert_string_equal(fw__conninfo_get(ci, "dbname"), "u");
    fw__conninfo_free(ci);
}

static void test_set_overrides_and_unsets_like_the_string(void **state)
{
    (void)state;
    char err[FW__CONNINFO_ERRLEN];
    fw__conninfo_t *ci = NULL;
    assert_int_equal(fw__conninfo_parse("host=a sslmode=require", &ci, err, sizeof(err)), 0);
    assert_int_equal(fw__conninfo_set(ci, "host", "b", err, sizeof(err)), 0);
    assert_string_equal(fw__conninfo_get(ci, "host"), "b");
    assert_int_equal(fw__conninfo_set(ci, "sslmode", NULL, err, sizeof(err)), 0);
    assert_null(fw__conninfo_get(ci, "sslmode"));
    assert_int_equal(fw__conninfo_set(ci, "requiressl", "1", err, sizeof(err)), 0);
    assert_string_equal(fw__conninfo_get(ci, "sslmode"), "require");
    assert_int_equal(fw__conninfo_set(ci, "requiressl", NULL, err, sizeof(err)), 0);
    assert_null(fw__conninfo_get(ci, "sslmode"));
    assert_int_equal(fw__conninfo_set(ci, "bogus", "1", err, sizeof(err)), FW_EINVAL);
    assert_string_equal(err, "invalid connection option \"bogus\"");
    assert_int_equal(fw__conninfo_set(ci, "service", NULL, err, sizeof(err)), FW_EINVAL);
    assert_null(fw__conninfo_get(ci, "nonexistent"));
    assert_string_equal(fw__conninfo_keyword(0), "host");
    assert_null(fw__conninfo_keyword(FW__CI_NKEYS));
    fw__conninfo_free(ci);
    fw__conninfo_free(NULL);
}

/* ---- secrets never reach a message ---- */

static void test_no_error_message_contains_the_password(void **state)
{
    (void)state;
    /* Each string fails; none of the listed fragments may appear in the message. */
    static const char *const bad[] = {
        "password=Sup3rS3cret sslmode=bogus",
        "password=Sup3rS3cret host",
        "password=Sup3r S3cret",
        "password=Sup3r S3cret=x",
        "password='Sup3rS3cret",
        "sslpassword=Sup3r S3cret",
        "user=u password=Sup3r\\ S3cret port=1,2 host=a",
        "postgresql://u:Sup3rS3cret@[::1",
        "postgresql://u:Sup3rS3cret@[]/db",
        "postgresql://u:Sup3rS3cret@[::1]x/db",
        "postgresql://u:Sup3r%zzS3cret@h/db",
        "postgresql://u:Sup3r%00S3cret@h/db",
        "postgresql://h/db?password=Sup3r&S3cret",
        "postgresql://h/db?password=Sup3r&S3cret=1",
        "postgresql://h/db?password=Sup3r%zzS3cret",
        "postgresql://h/db?password=Sup3r=S3cret",
        "postgresql://h/db?sslpassword=Sup3r%00S3cret",
        "postgresql://h/db?pass%77ord=Sup3r&S3cret",
        "postgresql://[::1]x/db?password=Sup3rS3cret",
        "postgresql://u:Sup3rS3cret@h:0/db",
        "postgresql://u:Sup3rS3cret@h/db?sslmode=x",
        /* found by fuzz_conninfo: "password" outside the query of a URI quoted whole */
        "postgresql://u@[::1 password=Sup3rS3cret",
        "postgresql://[::1]x password=Sup3r S3cret",
    };
    static const char *const fragments[] = {"Sup3r", "S3cret"};
    fake_env_t fe = {{NULL}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        fw__conninfo_env_t env = make_env(&fe);
        char err[FW__CONNINFO_ERRLEN];
        fw__conninfo_t *ci = NULL;
        int rc = fw__conninfo_from_string(bad[i], &env, &ci, err, sizeof(err));
        if (rc == 0)
            fail_msg("\"%s\" was accepted", bad[i]);
        assert_true(err[0] != '\0');
        for (size_t f = 0; f < 2; f++)
            if (strstr(err, fragments[f]) != NULL)
                fail_msg("\"%s\" leaked into \"%s\"", fragments[f], err);
    }
    /* The environment's password never shows either. */
    fake_env_t pw = {{"PGPASSWORD=Sup3rS3cret", "PGSSLMODE=nope"}};
    expect_error("", &pw, "invalid sslmode value");
}

/* A '%' that spells nothing hides nothing: libpq's URI test inputs keep their text in the
 * message when there is no password; with one, the text is withheld (issue 19). */
static void test_invalid_percent_shows_the_text_only_without_a_password(void **state)
{
    (void)state;
    static const struct {
        const char *str, *want;
    } shown[] = {
        {"postgresql://host/db%zz", "\"db%zz\""},
        {"postgresql://host/db%1", "\"db%1\""},
        {"postgresql://host/db%", "\"db%\""},
        {"postgresql://us%zzer@host/db", "\"us%zzer\""},
        {"postgresql://host/db?application_name=a%1", "\"a%1\""},
    };
    fake_env_t fe = {{NULL}};
    for (size_t i = 0; i < sizeof(shown) / sizeof(shown[0]); i++) {
        expect_error(shown[i].str, &fe, shown[i].want);
        expect_error(shown[i].str, &fe, "invalid percent-encoded token");
    }
    /* the same mistakes next to a password, plain or percent-encoded, are withheld */
    static const char *const hidden[] = {
        "postgresql://u:Sup3r@host/db%zz",
        "postgresql://host/db%1?password=Sup3r",
        "postgresql://host/db%?pass%77ord=Sup3r",
    };
    for (size_t i = 0; i < sizeof(hidden) / sizeof(hidden[0]); i++) {
        fw__conninfo_env_t env = make_env(&fe);
        char err[FW__CONNINFO_ERRLEN];
        fw__conninfo_t *ci = NULL;
        assert_int_equal(fw__conninfo_from_string(hidden[i], &env, &ci, err, sizeof(err)),
                         FW_EINVAL);
        if (strstr(err, "withheld") == NULL || strstr(err, "Sup3r") != NULL)
            fail_msg("\"%s\": \"%s\" (want the text withheld)", hidden[i], err);
    }
}

static void test_messages_fit_the_buffer_and_long_values_are_cut(void **state)
{
    (void)state;
    char str[2048] = "sslmode=";
    memset(str + 8, 'x', 1500);
    str[1508] = '\0';
    char err[FW__CONNINFO_ERRLEN];
    fw__conninfo_t *ci = NULL;
    fw__conninfo_env_t env = {NULL, NULL, "alice", NULL};
    assert_int_equal(fw__conninfo_from_string(str, &env, &ci, err, sizeof(err)), FW_EINVAL);
    assert_non_null(strstr(err, "...\""));
    assert_true(strlen(err) < 200);
    /* a tiny or absent buffer is fine too */
    char tiny[4];
    assert_int_equal(fw__conninfo_from_string("foo=1", &env, &ci, tiny, sizeof(tiny)), FW_EINVAL);
    assert_string_equal(tiny, "inv");
    assert_int_equal(fw__conninfo_from_string("foo=1", &env, &ci, NULL, 0), FW_EINVAL);
}

static void test_finish_runs_again_after_a_change(void **state)
{
    (void)state;
    fake_env_t fe = {{NULL}};
    fw__conninfo_t *ci = must_parse("host=a,b", &fe);
    assert_int_equal(ci->nhosts, 2);
    char err[FW__CONNINFO_ERRLEN];
    assert_int_equal(fw__conninfo_set(ci, "host", "x,y,z", err, sizeof(err)), 0);
    assert_false(ci->finished);
    assert_int_equal(fw__conninfo_finish(ci, err, sizeof(err)), 0);
    assert_int_equal(ci->nhosts, 3);
    assert_int_equal(fw__conninfo_set(ci, "port", "1,2", err, sizeof(err)), 0);
    assert_int_equal(fw__conninfo_finish(ci, err, sizeof(err)), FW_EINVAL);
    assert_int_equal(ci->nhosts, 0);
    assert_null(ci->hosts);
    fw__conninfo_free(ci);
}

static void test_system_environment_finds_a_user(void **state)
{
    (void)state;
    fw__conninfo_sysenv_t sys;
    fw__conninfo_env_system(&sys);
    assert_non_null(sys.env.getenv_fn);
    assert_non_null(sys.env.os_user); /* every test machine has a passwd entry for us */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_corpus_gives_libpq_values_or_errors),
        cmocka_unit_test(test_corpus_reads_nothing_past_the_terminating_nul),
        cmocka_unit_test(test_host_list_yields_one_entry_per_host_with_types_and_ports),
        cmocka_unit_test(test_enums_integers_and_auth_bits_are_derived),
        cmocka_unit_test(test_protocol_versions_take_libpq_18_defaults),
        cmocka_unit_test(test_protocol_versions_come_from_the_environment),
        cmocka_unit_test(test_string_beats_environment_beats_defaults),
        cmocka_unit_test(test_environment_values_are_validated_like_string_values),
        cmocka_unit_test(test_pgrequiressl_means_require_unless_sslmode_is_set),
        cmocka_unit_test(test_unknown_user_without_user_option_is_an_error),
        cmocka_unit_test(test_set_overrides_and_unsets_like_the_string),
        cmocka_unit_test(test_no_error_message_contains_the_password),
        cmocka_unit_test(test_invalid_percent_shows_the_text_only_without_a_password),
        cmocka_unit_test(test_messages_fit_the_buffer_and_long_values_are_cut),
        cmocka_unit_test(test_finish_runs_again_after_a_change),
        cmocka_unit_test(test_system_environment_finds_a_user),
    };
    return cmocka_run_group_tests_name("lib_conninfo", tests, NULL, NULL);
}

#endif /* FW_CONNINFO_CORPUS_ONLY */
