/* SPDX-License-Identifier: MIT */
/*
 * The password file: libpq 15's matching rules on bytes (each input ends flush against a
 * PROT_NONE page), the permission and file-type rules on real temporary files, lines of any
 * length, and the per-host lookup from a parsed connection string.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "conninfo.h"
#include "guard.h"

/* Looks up in `file` (copied against a guard page); returns the password or NULL. The result
 * is a static copy valid until the next call. */
static const char *lookup_n(const char *file, size_t len, const char *host, const char *port,
                            const char *db, const char *user)
{
    static char result[256];
    guard_buf_t g;
    assert_int_equal(guard_put(&g, file, len), 0);
    char *pw = NULL;
    int rc = fw__pgpass_lookup((const char *)g.data, len, host, port, db, user, &pw);
    guard_release(&g);
    assert_true(rc == 0 || rc == 1);
    assert_int_equal(rc == 1, pw != NULL);
    if (pw == NULL)
        return NULL;
    snprintf(result, sizeof(result), "%s", pw);
    fw__pgpass_secret_free(pw);
    return result;
}

static const char *lookup(const char *file, const char *host, const char *port, const char *db,
                          const char *user)
{
    return lookup_n(file, strlen(file), host, port, db, user);
}

#define assert_pw(got, want)               \
    do {                                   \
        const char *got_ = (got);          \
        assert_non_null(got_);             \
        assert_string_equal(got_, (want)); \
    } while (0)

static void test_exact_fields_and_wildcards_match(void **state)
{
    (void)state;
    assert_pw(lookup("h:5432:db:u:pw\n", "h", "5432", "db", "u"), "pw");
    assert_pw(lookup("*:*:*:*:star", "anything", "1", "x", "y"), "star");
    assert_pw(lookup("h:*:db:*:mixed\n", "h", "7", "db", "zed"), "mixed");
    assert_null(lookup("h:5432:db:u:pw\n", "H", "5432", "db", "u"));  /* case matters */
    assert_null(lookup("h:5432:db:u:pw\n", "h", "05432", "db", "u")); /* text, not numbers */
    assert_null(lookup("*h:1:db:u:x\n", "h", "1", "db", "u"));        /* '*' only as a field */
    assert_null(lookup("h*:1:db:u:x\n", "hh", "1", "db", "u"));
    assert_null(lookup("hx:1:db:u:x\n", "h", "1", "db", "u"));
    assert_null(lookup("h:1:db:u:x\n", "hx", "1", "db", "u"));
    assert_null(lookup("", "h", "1", "db", "u"));
}

static void test_backslash_escapes_colon_and_backslash(void **state)
{
    (void)state;
    assert_pw(lookup("h\\:x:1:db:u:esc\n", "h:x", "1", "db", "u"), "esc");
    assert_pw(lookup("h\\\\x:1:db:u:bs\n", "h\\x", "1", "db", "u"), "bs");
    assert_pw(lookup("h:1:d\\b:u:any\n", "h", "1", "db", "u"), "any"); /* \b is just b */
    assert_pw(lookup("\\*:1:db:u:lit\n", "*", "1", "db", "u"), "lit");
    assert_null(lookup("\\*:1:db:u:lit\n", "h", "1", "db", "u")); /* escaped: no wildcard */
    /* the password: escapes removed, ends at an unescaped ':' */
    assert_pw(lookup("h:1:db:u:p\\:w\\\\d:extra\n", "h", "1", "db", "u"), "p:w\\d");
    /* a final lone backslash stays (libpq), with or without a newline */
    assert_pw(lookup("h:1:db:u:trail\\", "h", "1", "db", "u"), "trail\\");
    assert_pw(lookup("h:1:db:u:trail\\\n", "h", "1", "db", "u"), "trail\\");
    /* a field ending in a backslash escapes its own ':' and so swallows the next field */
    assert_null(lookup("h\\:1:db:u:x\n", "h", "1", "db", "u"));
    assert_pw(lookup("h:1:db:u:\n", "h", "1", "db", "u"), "");
}

static void test_first_match_wins_and_comments_and_blanks_are_skipped(void **state)
{
    (void)state;
    const char *f = "# comment h:1:db:u:no\n"
                    "\n"
                    "\r\n"
                    "h:1:db:u:first\n"
                    "h:1:db:u:second\n";
    assert_pw(lookup(f, "h", "1", "db", "u"), "first");
    assert_pw(lookup("h:1:*:*:wild\nh:1:db:u:exact\n", "h", "1", "db", "u"), "wild");
    assert_null(lookup("#h:1:db:u:c\n", "h", "1", "db", "u"));
    assert_null(lookup(" #h:1:db:u:c\n", "h", "1", "db", "u")); /* " #h" is a host name */
    assert_null(lookup(" h:1:db:u:sp\n", "h", "1", "db", "u")); /* blanks are data */
    assert_pw(lookup("h:1:db:u:crlf\r\n", "h", "1", "db", "u"), "crlf");
    assert_pw(lookup("h:1:db:u:cr\r\r\n", "h", "1", "db", "u"), "cr");
    assert_pw(lookup("h:1:db:u:mid\rdle\n", "h", "1", "db", "u"), "mid\rdle");
}

static void test_lines_with_fewer_fields_never_match(void **state)
{
    (void)state;
    assert_null(lookup("h:1:db:u\n", "h", "1", "db", "u"));
    assert_null(lookup("h:1:db\n", "h", "1", "db", "u"));
    assert_null(lookup("h\n", "h", "1", "db", "u"));
    assert_null(lookup("*:*:*:*", "h", "1", "db", "u"));
    assert_pw(lookup("h:1:db:u\nh:1:db:u:next\n", "h", "1", "db", "u"), "next");
}

static void test_localhost_stands_for_empty_host_and_default_socket_dir(void **state)
{
    (void)state;
    const char *f = "localhost:5432:db:u:loc\n";
    assert_pw(lookup(f, "", "5432", "db", "u"), "loc");
    assert_pw(lookup(f, NULL, "5432", "db", "u"), "loc");
    assert_pw(lookup(f, FW__CONNINFO_DEFAULT_SOCKET_DIR, "5432", "db", "u"), "loc");
    assert_null(lookup(f, "/var/run/postgresql/", "5432", "db", "u")); /* compared as text */
    assert_null(lookup(f, "/tmp", "5432", "db", "u"));
    assert_pw(lookup("/tmp:5432:db:u:tmp\n", "/tmp", "5432", "db", "u"), "tmp");
    /* an empty port is the default port */
    assert_pw(lookup(f, "localhost", "", "db", "u"), "loc");
    assert_pw(lookup(f, "localhost", NULL, "db", "u"), "loc");
    /* no lookup at all without a dbname or user, even for a wildcard line */
    assert_null(lookup("*:*:*:*:star\n", "h", "1", "", "u"));
    assert_null(lookup("*:*:*:*:star\n", "h", "1", "db", NULL));
}

static void test_nul_byte_ends_the_line_for_matching(void **state)
{
    (void)state;
    static const char f[] = "h:1:db:u:pw\0junk\nh:1:db:v:x\0y\n";
    assert_pw(lookup_n(f, sizeof(f) - 1, "h", "1", "db", "u"), "pw");
    assert_pw(lookup_n(f, sizeof(f) - 1, "h", "1", "db", "v"), "x");
    static const char g[] = "h:1\0:db:u:pw\n";
    assert_null(lookup_n(g, sizeof(g) - 1, "h", "1", "db", "u"));
}

static void test_very_long_lines_are_read_whole(void **state)
{
    (void)state;
    size_t n = 1 << 20;
    char *f = malloc(n + 64);
    assert_non_null(f);
    /* a long non-matching line first, then a long password */
    memset(f, 'x', 300000);
    memcpy(f + 300000, ":1:db:u:no\nh:1:db:u:", 20);
    size_t pwlen = n - 300020 - 1;
    memset(f + 300020, 'P', pwlen);
    f[n - 1] = '\n';
    char *pw = NULL;
    assert_int_equal(fw__pgpass_lookup(f, n, "h", "1", "db", "u", &pw), 1);
    assert_int_equal(strlen(pw), pwlen);
    fw__pgpass_secret_free(pw);
    /* a host name longer than any fixed buffer must match in full, not by a prefix */
    assert_int_equal(fw__pgpass_lookup(f, n, "xxxx", "1", "db", "u", &pw), 0);
    free(f);
}

/* ---- files ---- */

static char tmpdir[64];

static int make_dir(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/fw-pgpass-XXXXXX");
    return mkdtemp(tmpdir) != NULL ? 0 : -1;
}

static int remove_dir(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *write_file(const char *name, const char *content, size_t len, mode_t mode)
{
    static char path[128];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    unlink(path);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(content, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(path, mode), 0);
    return path;
}

/* Reads with the standard key; returns 1/0 and the warning. */
static int read_key(const char *path, char **pw, char *warn, size_t warnlen)
{
    return fw__pgpass_read_file(path, "h", "1", "db", "u", pw, warn, warnlen);
}

static void test_file_with_owner_only_bits_is_used(void **state)
{
    (void)state;
    static const mode_t ok[] = {0600, 0400, 0700, 0200};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        const char *path = write_file("ok", "h:1:db:u:good\n", 14, ok[i]);
        char *pw = NULL;
        char warn[256];
        int rc = read_key(path, &pw, warn, sizeof(warn));
        if (ok[i] == 0200 && geteuid() != 0) { /* write-only: unreadable, silently ignored */
            assert_int_equal(rc, 0);
            assert_string_equal(warn, "");
            continue;
        }
        assert_int_equal(rc, 1);
        assert_string_equal(pw, "good");
        assert_string_equal(warn, "");
        fw__pgpass_secret_free(pw);
    }
}

static void test_group_or_world_bits_ignore_the_file_with_a_warning(void **state)
{
    (void)state;
    static const mode_t bad[] = {0640, 0604, 0660, 0606, 0610, 0601, 0644, 0666, 0777};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *path = write_file("bad", "h:1:db:u:good\n", 14, bad[i]);
        char *pw = NULL;
        char warn[256];
        assert_int_equal(read_key(path, &pw, warn, sizeof(warn)), 0);
        assert_null(pw);
        assert_non_null(strstr(warn, "has group or world access; permissions should be u=rw "
                                     "(0600) or less"));
        assert_non_null(strstr(warn, path));
    }
}

static void test_non_regular_files_are_ignored_with_a_warning(void **state)
{
    (void)state;
    char path[128], warn[256];
    char *pw = NULL;
    snprintf(path, sizeof(path), "%s/dir", tmpdir);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(read_key(path, &pw, warn, sizeof(warn)), 0);
    assert_non_null(strstr(warn, "is not a plain file"));
    /* a FIFO must neither block nor be read */
    snprintf(path, sizeof(path), "%s/fifo", tmpdir);
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_int_equal(read_key(path, &pw, warn, sizeof(warn)), 0);
    assert_non_null(strstr(warn, "is not a plain file"));
    assert_int_equal(read_key("/dev/null", &pw, warn, sizeof(warn)), 0);
    assert_non_null(strstr(warn, "is not a plain file"));
    /* missing: no password, no warning (libpq) */
    snprintf(path, sizeof(path), "%s/missing", tmpdir);
    assert_int_equal(read_key(path, &pw, warn, sizeof(warn)), 0);
    assert_string_equal(warn, "");
    assert_null(pw);
}

/* libpq checks with stat(), which follows symlinks: a link to a 0600 file is used, a link to a
 * 0644 file is refused; the link's own mode does not matter. fwire does the same. */
static void test_symlink_is_followed_like_libpq(void **state)
{
    (void)state;
    char target[128], link[128], warn[256];
    char *pw = NULL;
    snprintf(target, sizeof(target), "%s", write_file("target", "h:1:db:u:vialink\n", 17, 0600));
    snprintf(link, sizeof(link), "%s/link", tmpdir);
    assert_int_equal(symlink(target, link), 0);
    assert_int_equal(read_key(link, &pw, warn, sizeof(warn)), 1);
    assert_string_equal(pw, "vialink");
    fw__pgpass_secret_free(pw);
    pw = NULL;
    assert_int_equal(chmod(target, 0644), 0);
    assert_int_equal(read_key(link, &pw, warn, sizeof(warn)), 0);
    assert_non_null(strstr(warn, "group or world access"));
    unlink(link);
}

static void test_warning_escapes_control_characters_in_the_path(void **state)
{
    (void)state;
    char warn[512];
    char *pw = NULL;
    char name[32] = "bad\nname";
    const char *path = write_file(name, "x", 1, 0644);
    assert_int_equal(read_key(path, &pw, warn, sizeof(warn)), 0);
    assert_null(strchr(warn, '\n'));
    assert_non_null(strstr(warn, "bad\\nname")); /* the shared quoting of conninfo_int.h */
}

/* The file reader streams in 4 KiB reads: lines across every read boundary must give what the
 * in-memory matcher gives. */
static void test_streamed_file_agrees_with_memory_lookup(void **state)
{
    (void)state;
    size_t cap = 200000, len = 0;
    char *f = malloc(cap);
    assert_non_null(f);
    unsigned seed = 12345;
    int line = 0;
    while (len + 200 < cap) {
        seed = seed * 1103515245u + 12345u;
        int pad = (int)((seed >> 16) % 150);
        len += (size_t)snprintf(f + len, cap - len, "h%d:1:db:u:%.*s%d\n", line, pad,
                                "ppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp"
                                "ppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp"
                                "pppppppppppppppppppppppppppppp",
                                line);
        line++;
    }
    const char *path = write_file("many", f, len - 1, 0600); /* last line without '\n' */
    for (int i = 0; i < line; i += 7) {
        char host[32];
        snprintf(host, sizeof(host), "h%d", i == 0 ? line - 1 : i);
        char *a = NULL, *b = NULL;
        assert_int_equal(fw__pgpass_lookup(f, len - 1, host, "1", "db", "u", &a), 1);
        assert_int_equal(fw__pgpass_read_file(path, host, "1", "db", "u", &b, NULL, 0), 1);
        assert_string_equal(a, b);
        fw__pgpass_secret_free(a);
        fw__pgpass_secret_free(b);
    }
    char *none = NULL;
    assert_int_equal(fw__pgpass_read_file(path, "nohost", "1", "db", "u", &none, NULL, 0), 0);
    free(f);
}

static void test_long_line_in_a_file_is_not_truncated(void **state)
{
    (void)state;
    size_t n = 100000;
    char *f = malloc(n + 32);
    assert_non_null(f);
    memcpy(f, "h:1:db:u:", 9);
    memset(f + 9, 'Q', n);
    memcpy(f + 9 + n, "\n", 1);
    const char *path = write_file("long", f, n + 10, 0600);
    char *pw = NULL;
    assert_int_equal(read_key(path, &pw, NULL, 0), 1);
    assert_int_equal(strlen(pw), n);
    fw__pgpass_secret_free(pw);
    /* a 5000-byte host that shares a 4096-byte prefix with ours must not match */
    memset(f, 'h', 5000);
    memcpy(f + 5000, ":1:db:u:no\n", 11);
    path = write_file("prefix", f, 5011, 0600);
    char key[4097];
    memset(key, 'h', 4096);
    key[4096] = '\0';
    assert_int_equal(fw__pgpass_read_file(path, key, "1", "db", "u", &pw, NULL, 0), 0);
    free(f);
}

/* ---- per-host lookup from a connection string ---- */

static fw__conninfo_t *finished(const char *str, const char *home)
{
    fw__conninfo_env_t env = {NULL, NULL, "alice", home};
    char err[FW__CONNINFO_ERRLEN];
    fw__conninfo_t *ci = NULL;
    if (fw__conninfo_from_string(str, &env, &ci, err, sizeof(err)) != 0)
        fail_msg("%s: %s", str, err);
    return ci;
}

static void test_conninfo_gets_a_password_per_host(void **state)
{
    (void)state;
    const char *path = write_file("hosts",
                                  "a:5432:db:alice:pa\n"
                                  "127.0.0.1:7:db:alice:paddr\n"
                                  "localhost:5432:db:alice:plocal\n"
                                  "c:6:*:*:pc\n",
                                  88, 0600);
    char str[512], warn[256];
    /* the host list and the hostaddr list have the same length: one host each */
    snprintf(str, sizeof(str),
             "host=a,b,c,, hostaddr=,,,,127.0.0.1 port=,,6,,7 dbname=db "
             "passfile='%s'",
             path);
    fw__conninfo_t *ci = finished(str, NULL);
    assert_int_equal(fw__conninfo_apply_passfile(ci, warn, sizeof(warn)), 0);
    assert_string_equal(warn, "");
    assert_string_equal(ci->hosts[0].password, "pa");
    assert_null(ci->hosts[1].password);
    assert_string_equal(ci->hosts[2].password, "pc");
    assert_string_equal(ci->hosts[3].password, "plocal"); /* default socket dir = localhost */
    assert_string_equal(ci->hosts[4].password, "paddr");  /* keyed by hostaddr */
    fw__conninfo_free(ci);

    /* a given password wins: the file is not consulted */
    snprintf(str, sizeof(str), "host=a dbname=db password=given passfile='%s'", path);
    ci = finished(str, NULL);
    assert_int_equal(fw__conninfo_apply_passfile(ci, warn, sizeof(warn)), 0);
    assert_null(ci->hosts[0].password);
    fw__conninfo_free(ci);

    /* an empty password does not count as given (libpq) */
    snprintf(str, sizeof(str), "host=a dbname=db password='' passfile='%s'", path);
    ci = finished(str, NULL);
    assert_int_equal(fw__conninfo_apply_passfile(ci, warn, sizeof(warn)), 0);
    assert_string_equal(ci->hosts[0].password, "pa");
    fw__conninfo_free(ci);
}

static void test_conninfo_defaults_to_home_pgpass_and_reports_one_warning(void **state)
{
    (void)state;
    write_file(".pgpass", "*:*:*:*:fromhome\n", 17, 0600);
    char warn[256];
    fw__conninfo_t *ci = finished("host=a,b", tmpdir);
    assert_int_equal(fw__conninfo_apply_passfile(ci, warn, sizeof(warn)), 0);
    assert_string_equal(ci->hosts[0].password, "fromhome");
    assert_string_equal(ci->hosts[1].password, "fromhome");
    fw__conninfo_free(ci);

    write_file(".pgpass", "*:*:*:*:fromhome\n", 17, 0644);
    ci = finished("host=a,b", tmpdir);
    assert_int_equal(fw__conninfo_apply_passfile(ci, warn, sizeof(warn)), 0);
    assert_null(ci->hosts[0].password);
    assert_non_null(strstr(warn, "/.pgpass\" has group or world access"));
    fw__conninfo_free(ci);

    ci = finished("host=a", NULL); /* no home, no passfile: nothing to read */
    assert_int_equal(fw__conninfo_apply_passfile(ci, warn, sizeof(warn)), 0);
    assert_null(ci->hosts[0].password);
    ci->finished = false;
    assert_int_equal(fw__conninfo_apply_passfile(ci, warn, sizeof(warn)), FW_EINVAL);
    fw__conninfo_free(ci);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_fields_and_wildcards_match),
        cmocka_unit_test(test_backslash_escapes_colon_and_backslash),
        cmocka_unit_test(test_first_match_wins_and_comments_and_blanks_are_skipped),
        cmocka_unit_test(test_lines_with_fewer_fields_never_match),
        cmocka_unit_test(test_localhost_stands_for_empty_host_and_default_socket_dir),
        cmocka_unit_test(test_nul_byte_ends_the_line_for_matching),
        cmocka_unit_test(test_very_long_lines_are_read_whole),
        cmocka_unit_test(test_file_with_owner_only_bits_is_used),
        cmocka_unit_test(test_group_or_world_bits_ignore_the_file_with_a_warning),
        cmocka_unit_test(test_non_regular_files_are_ignored_with_a_warning),
        cmocka_unit_test(test_symlink_is_followed_like_libpq),
        cmocka_unit_test(test_warning_escapes_control_characters_in_the_path),
        cmocka_unit_test(test_streamed_file_agrees_with_memory_lookup),
        cmocka_unit_test(test_long_line_in_a_file_is_not_truncated),
        cmocka_unit_test(test_conninfo_gets_a_password_per_host),
        cmocka_unit_test(test_conninfo_defaults_to_home_pgpass_and_reports_one_warning),
    };
    return cmocka_run_group_tests_name("lib_pgpass", tests, make_dir, remove_dir);
}
