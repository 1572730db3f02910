/* SPDX-License-Identifier: MIT */
/*
 * libpq 15 as the oracle (this test only; libpq is never linked into fwire).
 *
 * 1. Every row of the corpus in test_lib_conninfo.c goes through libpq's PQconninfoParse and
 *    through fw__conninfo_parse: both must accept or both reject; when both accept, every keyword
 *    fwire supports must have the same value (PQconninfoParse applies no environment or default,
 *    so neither does this side); when both reject, the messages must be equal (libpq's without
 *    its trailing newline). Rows marked ORA_PG16 are skipped: libpq 15 does not know
 *    require_auth or load_balance_hosts (PG16), and sslrootcert=system is a plain file name to
 *    it. Rows marked ORA_FWIRE are fwire's deliberate refusals; ORA_NOTEXT rows compare the
 *    decision and values but not the text.
 * 2. Passfile matching: libpq computes a host's password from the passfile in PQconnectStart
 *    (before any network I/O that matters here) and PQpass shows it, so the same files and keys
 *    go through libpq and through fw__pgpass_lookup. Connections go to 127.0.0.1 port 1 via
 *    hostaddr (refused at once, no DNS) or to a socket directory.
 */
#define FW_CONNINFO_CORPUS_ONLY
#include "test_lib_conninfo.c"
#undef FW_CONNINFO_CORPUS_ONLY

#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

static const char *libpq_val(const PQconninfoOption *opts, const char *kw, bool *known)
{
    for (const PQconninfoOption *o = opts; o->keyword != NULL; o++) {
        if (strcmp(o->keyword, kw) == 0) {
            *known = true;
            return o->val;
        }
    }
    *known = false;
    return NULL;
}

static void test_corpus_parses_like_libpq(void **state)
{
    (void)state;
    size_t compared = 0, texts = 0;
    for (size_t i = 0; i < CI_NCASES; i++) {
        const ci_case_t *c = &ci_cases[i];
        if (c->flags & (ORA_PG16 | ORA_FWIRE))
            continue;
        char *pqerr = NULL;
        PQconninfoOption *opts = PQconninfoParse(c->str, &pqerr);
        char err[FW__CONNINFO_ERRLEN];
        fw__conninfo_t *ci = NULL;
        int rc = fw__conninfo_parse(c->str, &ci, err, sizeof(err));
        if ((opts != NULL) != (rc == 0))
            fail_msg("\"%s\": libpq %s (%s), fwire %s (%s)", c->str, opts ? "accepts" : "rejects",
                     pqerr ? pqerr : "", rc == 0 ? "accepts" : "rejects", rc == 0 ? "" : err);
        if (opts != NULL) {
            for (size_t k = 0; fw__conninfo_keyword(k) != NULL; k++) {
                const char *kw = fw__conninfo_keyword(k);
                bool known;
                const char *want = libpq_val(opts, kw, &known);
                const char *got = fw__conninfo_get(ci, kw);
                if (!known)
                    continue; /* require_auth, load_balance_hosts: PG16 */
                if (want == NULL ? got != NULL : got == NULL || strcmp(want, got) != 0)
                    fail_msg("\"%s\": %s: libpq \"%s\", fwire \"%s\"", c->str, kw,
                             want ? want : "(unset)", got ? got : "(unset)");
            }
            PQconninfoFree(opts);
            fw__conninfo_free(ci);
        } else if (!(c->flags & ORA_NOTEXT)) {
            size_t n = strlen(pqerr);
            while (n > 0 && pqerr[n - 1] == '\n')
                pqerr[--n] = '\0';
            if (strcmp(pqerr, err) != 0)
                fail_msg("\"%s\": libpq says \"%s\", fwire \"%s\"", c->str, pqerr, err);
            texts++;
        }
        PQfreemem(pqerr);
        compared++;
    }
    print_message("compared %zu of %zu corpus rows with libpq %d (%zu error texts)\n", compared,
                  (size_t)CI_NCASES, PQlibVersion(), texts);
    assert_true(compared >= 80);
}

/* ---- passfile ---- */

typedef struct pp_case_s {
    const char *file; /* contents */
    const char *host; /* NULL: no host at all (the default socket directory) */
    const char *port, *dbname, *user;
} pp_case_t;

static char *libpq_password(const char *path, const pp_case_t *c)
{
    char conninfo[512];
    if (c->host == NULL)
        snprintf(conninfo, sizeof(conninfo), "port='%s' dbname='%s' user='%s' passfile='%s'",
                 c->port, c->dbname, c->user, path);
    else
        snprintf(conninfo, sizeof(conninfo),
                 "hostaddr=127.0.0.1 host='%s' port='%s' dbname='%s' user='%s' passfile='%s' "
                 "connect_timeout=2",
                 c->host, c->port, c->dbname, c->user, path);
    PGconn *conn = PQconnectStart(conninfo);
    assert_non_null(conn);
    char *pw = PQpass(conn);
    char *copy = pw != NULL && pw[0] != '\0' ? strdup(pw) : NULL;
    PQfinish(conn);
    return copy;
}

static void test_passfile_matching_agrees_with_libpq(void **state)
{
    (void)state;
    static char longline[70000];
    memcpy(longline, "h:1:db:u:", 9);
    memset(longline + 9, 'L', sizeof(longline) - 11);
    longline[sizeof(longline) - 2] = '\n';
    longline[sizeof(longline) - 1] = '\0';
    static const pp_case_t cases[] = {
        {"h:1:db:u:pw1\n", "h", "1", "db", "u"},
        {"*:*:*:*:star\n", "h", "1", "db", "u"},
        {"h\\:x:1:db:u:esc\n", "h:x", "1", "db", "u"},
        {"localhost:5432:db:u:loc\n", NULL, "5432", "db", "u"},
        {"localhost:1:db:u:loc\n", "/var/run/postgresql", "1", "db", "u"},
        {"localhost:1:db:u:loc\n", "/var/run/postgresql/", "1", "db", "u"},
        {"/var/run/postgresql:1:db:u:dir\n", "/var/run/postgresql", "1", "db", "u"},
        {"h:1:db:u:p\\:w\\\\d:extra\n", "h", "1", "db", "u"},
        {"h:1:db:u\n", "h", "1", "db", "u"},
        {"#h:1:db:u:c\nh:1:db:u:real\n", "h", "1", "db", "u"},
        {" h:1:db:u:sp\n", "h", "1", "db", "u"},
        {"h:1:db:u:first\nh:1:db:u:second\n", "h", "1", "db", "u"},
        {"h:1:db:u:trail\\", "h", "1", "db", "u"},
        {"h:*:db:u:x\r\n", "h", "1", "db", "u"},
        {"H:1:db:u:case\n", "h", "1", "db", "u"},
        {"*h:1:db:u:x\n", "h", "1", "db", "u"},
        {"h:01:db:u:x\n", "h", "1", "db", "u"},
        {"\\*:1:db:u:lit\n", "*", "1", "db", "u"},
        {"\\*:1:db:u:lit\n", "h", "1", "db", "u"},
        {"h:1:d\\b:u:bs\n", "h", "1", "db", "u"},
        {"h:1:db:u:a\\", "h", "1", "db", "u"},
        {"\n\n#\nh:1:db:u:after-blank", "h", "1", "db", "u"},
        {"h:1:*:*:wild\nh:1:db:u:exact\n", "h", "1", "db", "u"},
        {"h:1:db:u:x\\\n", "h", "1", "db", "u"},
        {"127.0.0.1:1:db:u:byaddr\n", "", "1", "db", "u"},
        {longline, "h", "1", "db", "u"},
    };
    char dir[] = "/tmp/fw-pgpass-oracle-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof(path), "%s/pgpass", dir);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const pp_case_t *c = &cases[i];
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(c->file, f);
        fclose(f);
        assert_int_equal(chmod(path, 0600), 0);
        char *want = libpq_password(path, c);
        /* the key fwire builds: host, or hostaddr when host is empty (libpq) */
        const char *key = c->host == NULL ? "" : c->host[0] != '\0' ? c->host : "127.0.0.1";
        char *got = NULL;
        int rc =
            fw__pgpass_lookup(c->file, strlen(c->file), key, c->port, c->dbname, c->user, &got);
        assert_true(rc >= 0);
        if (want == NULL ? got != NULL : got == NULL || strcmp(want, got) != 0)
            fail_msg("case %zu: libpq \"%.40s\", fwire \"%.40s\"", i, want ? want : "(none)",
                     got ? got : "(none)");
        char *fromfile = NULL;
        assert_int_equal(
            fw__pgpass_read_file(path, key, c->port, c->dbname, c->user, &fromfile, NULL, 0),
            got != NULL);
        if (got != NULL)
            assert_string_equal(fromfile, got);
        free(want);
        fw__pgpass_secret_free(got);
        fw__pgpass_secret_free(fromfile);
    }
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    /* libpq reads the environment: keep it from changing what the oracle says. */
    static const char *const vars[] = {"PGHOST",
                                       "PGHOSTADDR",
                                       "PGPORT",
                                       "PGDATABASE",
                                       "PGUSER",
                                       "PGPASSWORD",
                                       "PGPASSFILE",
                                       "PGSERVICE",
                                       "PGSSLMODE",
                                       "PGREQUIRESSL",
                                       "PGCONNECT_TIMEOUT",
                                       "PGOPTIONS"};
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        unsetenv(vars[i]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_corpus_parses_like_libpq),
        cmocka_unit_test(test_passfile_matching_agrees_with_libpq),
    };
    return cmocka_run_group_tests_name("lib_conninfo_oracle", tests, NULL, NULL);
}
