/* SPDX-License-Identifier: MIT */
/*
 * The password file (~/.pgpass), read as libpq 15's passwordFromFile: a pure matcher over bytes
 * (fuzzed, table-tested) and a small reader that streams the file line by line. Every buffer that
 * held file bytes is zeroed before it is freed: the file is full of passwords.
 */
#include "alloc.h"
#include "conninfo.h"
#include "conninfo_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct pgpass_key_s {
    const char *host, *port, *dbname, *user;
} pgpass_key_t;

void fw__pgpass_secret_free(char *s)
{
    if (s != NULL) {
        explicit_bzero(s, strlen(s));
        fw__free(s);
    }
}

/*
 * libpq's key rules: "localhost" stands for an empty host and for the default socket directory
 * (compared as text, so "/var/run/postgresql/" does not match); an empty port is the default.
 * Returns false when no lookup should happen at all (empty dbname or user, as libpq).
 */
static bool make_key(pgpass_key_t *k, const char *host, const char *port, const char *dbname,
                     const char *user)
{
    if (dbname == NULL || dbname[0] == '\0' || user == NULL || user[0] == '\0')
        return false;
    if (host == NULL || host[0] == '\0' || strcmp(host, FW__CONNINFO_DEFAULT_SOCKET_DIR) == 0)
        host = "localhost";
    if (port == NULL || port[0] == '\0')
        port = "5432";
    *k = (pgpass_key_t){host, port, dbname, user};
    return true;
}

/*
 * One field against one token, as libpq's pwdfMatchesString: "*" alone matches anything; '\'
 * makes the next byte literal (so "\:" is a colon inside the field); the field must end in an
 * unescaped ':' right where the token ends. Advances *pp past that ':' on a match.
 */
static bool field_matches(const char **pp, const char *end, const char *tok)
{
    const char *p = *pp;
    if (end - p >= 2 && p[0] == '*' && p[1] == ':') {
        *pp = p + 2;
        return true;
    }
    bool escaped = false;
    while (p < end) {
        if (*p == '\\' && !escaped) {
            p++;
            escaped = true;
        }
        if (p < end && *p == ':' && *tok == '\0' && !escaped) {
            *pp = p + 1;
            return true;
        }
        escaped = false;
        if (*tok == '\0' || p >= end || *p != *tok)
            return false;
        p++;
        tok++;
    }
    return false; /* a line with fewer than five fields never matches */
}

/*
 * One line (without its '\n'). Returns 1 with the de-escaped password in *out, 0, FW_ENOMEM.
 * The password runs to the end of the line or the first unescaped ':'; a final lone backslash
 * stays literal (libpq).
 */
static int match_line(const char *line, size_t n, const pgpass_key_t *k, char **out)
{
    /* Bytes after a NUL are not part of the line for matching: libpq sees C strings. */
    const char *nul = memchr(line, '\0', n);
    if (nul != NULL)
        n = (size_t)(nul - line);
    if (n > 0 && line[0] == '#')
        return 0;
    while (n > 0 && (line[n - 1] == '\r' || line[n - 1] == '\n'))
        n--;
    if (n == 0)
        return 0;
    const char *p = line, *end = line + n;
    if (!field_matches(&p, end, k->host) || !field_matches(&p, end, k->port) ||
        !field_matches(&p, end, k->dbname) || !field_matches(&p, end, k->user))
        return 0;
    char *pw = fw__malloc((size_t)(end - p) + 1);
    if (pw == NULL)
        return FW_ENOMEM;
    size_t o = 0;
    while (p < end && *p != ':') {
        if (*p == '\\' && p + 1 < end)
            p++;
        pw[o++] = *p++;
    }
    pw[o] = '\0';
    *out = pw;
    return 1;
}

int fw__pgpass_lookup(const char *buf, size_t len, const char *host, const char *port,
                      const char *dbname, const char *user, char **out)
{
    pgpass_key_t k;
    *out = NULL;
    if (!make_key(&k, host, port, dbname, user))
        return 0;
    size_t off = 0;
    while (off < len) {
        const char *nl = memchr(buf + off, '\n', len - off);
        size_t n = nl != NULL ? (size_t)(nl - (buf + off)) : len - off;
        int rc = match_line(buf + off, n, &k, out);
        if (rc != 0)
            return rc; /* first match wins */
        off += n + 1;
    }
    return 0;
}

/* The path for a warning: control bytes escaped so a crafted path cannot forge log lines, cut
 * at 160 bytes. out holds PATHBUF bytes. */
#define PATHMAX 160
#define PATHBUF (4 * PATHMAX + 8)

static const char *shown_path(char *out, const char *path)
{
    return fw__ci_quote_max(out, path, strlen(path), PATHMAX);
}

/* Grows a buffer that holds passwords: realloc would leave the old copy unwiped. */
static char *grow_secret(char *buf, size_t used, size_t *cap)
{
    size_t ncap = *cap * 2;
    char *n = fw__malloc(ncap);
    if (n == NULL)
        return NULL;
    memcpy(n, buf, used);
    explicit_bzero(buf, *cap);
    fw__free(buf);
    *cap = ncap;
    return n;
}

int fw__pgpass_read_file(const char *path, const char *host, const char *port, const char *dbname,
                         const char *user, char **out, char *warn, size_t warnlen)
{
    pgpass_key_t k;
    struct stat st;
    char pb[PATHBUF];
    *out = NULL;
    if (warn != NULL && warnlen > 0)
        warn[0] = '\0';
    if (!make_key(&k, host, port, dbname, user))
        return 0;
    /* libpq never opens anything but a regular file (opening a device or FIFO can block or have
     * side effects), so look first; the decision that counts is the fstat below, on what was
     * actually opened, so a file swapped in between cannot slip through. Like libpq's stat(),
     * both follow symlinks: a link to a 0600 file is used. */
    if (stat(path, &st) != 0)
        return 0; /* missing: silently no password file, as libpq */
    int fd = -1;
    if (S_ISREG(st.st_mode)) {
        do
            fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        while (fd < 0 && errno == EINTR);
        if (fd < 0)
            return 0; /* unreadable: libpq ignores it too */
        if (fstat(fd, &st) != 0) {
            close(fd);
            return 0;
        }
    }
    if (!S_ISREG(st.st_mode)) {
        if (warn != NULL && warnlen > 0)
            snprintf(warn, warnlen, "password file \"%s\" is not a plain file",
                     shown_path(pb, path));
        if (fd >= 0)
            close(fd);
        return 0;
    }
    if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
        if (warn != NULL && warnlen > 0)
            snprintf(warn, warnlen,
                     "password file \"%s\" has group or world access; permissions should be "
                     "u=rw (0600) or less",
                     shown_path(pb, path));
        close(fd);
        return 0;
    }

    /* Lines of any length, as libpq since PG13: the buffer grows to the longest line, never
     * cuts one (a cut line could match on its first 1000 bytes and yield a wrong password). */
    size_t cap = 4096, len = 0, scanned = 0;
    char *buf = fw__malloc(cap);
    int rc = 0;
    bool eof = false;
    if (buf == NULL) {
        close(fd);
        return FW_ENOMEM;
    }
    while (rc == 0) {
        char *nl = memchr(buf + scanned, '\n', len - scanned);
        if (nl != NULL || (eof && len > 0)) {
            size_t n = nl != NULL ? (size_t)(nl - buf) : len;
            rc = match_line(buf, n, &k, out);
            size_t next = nl != NULL ? n + 1 : len;
            memmove(buf, buf + next, len - next);
            explicit_bzero(buf + len - next, next);
            len -= next;
            scanned = 0;
            continue;
        }
        scanned = len;
        if (eof)
            break;
        if (len == cap) {
            char *g = grow_secret(buf, len, &cap);
            if (g == NULL) {
                rc = FW_ENOMEM;
                break;
            }
            buf = g;
        }
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            eof = true; /* a read error ends the file, as fgets() does for libpq */
        else
            len += (size_t)r;
    }
    explicit_bzero(buf, cap);
    fw__free(buf);
    close(fd);
    return rc;
}

int fw__conninfo_apply_passfile(fw__conninfo_t *ci, char *warn, size_t warnlen)
{
    if (warn != NULL && warnlen > 0)
        warn[0] = '\0';
    if (!ci->finished)
        return FW_EINVAL;
    const char *pw = ci->val[FW__CI_PASSWORD];
    if (pw != NULL && pw[0] != '\0')
        return 0; /* a given password always wins; the file is not even opened */
    char *path = NULL;
    const char *pf = ci->val[FW__CI_PASSFILE];
    if (pf != NULL && pf[0] != '\0') {
        path = fw__strdup(pf);
    } else if (ci->home_dir != NULL && ci->home_dir[0] != '\0') {
        size_t n = strlen(ci->home_dir) + sizeof(FW__CONNINFO_DEFAULT_PASSFILE) + 1;
        if ((path = fw__malloc(n)) != NULL)
            snprintf(path, n, "%s/%s", ci->home_dir, FW__CONNINFO_DEFAULT_PASSFILE);
    } else {
        return 0;
    }
    if (path == NULL)
        return FW_ENOMEM;
    int rc = 0;
    for (size_t i = 0; i < ci->nhosts && rc >= 0; i++) {
        fw__conninfo_host_t *h = &ci->hosts[i];
        /* libpq keys the lookup by host, or by hostaddr when no host name was given */
        const char *key = h->host[0] != '\0' ? h->host : h->hostaddr;
        bool first_warning = warn != NULL && warnlen > 0 && warn[0] == '\0';
        fw__pgpass_secret_free(h->password);
        h->password = NULL;
        rc = fw__pgpass_read_file(path, key, h->port, ci->val[FW__CI_DBNAME], ci->val[FW__CI_USER],
                                  &h->password, first_warning ? warn : NULL,
                                  first_warning ? warnlen : 0);
    }
    fw__free(path);
    return rc < 0 ? rc : 0;
}
