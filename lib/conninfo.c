/* SPDX-License-Identifier: MIT */
/*
 * Connection strings the way libpq 15 reads them (fe-connect.c: conninfo_parse,
 * conninfo_uri_parse_options, conninfo_add_defaults, pqConnectOptions2), written from libpq's
 * documented and observed behaviour; the libpq oracle test holds us to it. Where fwire differs on
 * purpose, the comment says so and docs/connection-strings.md lists it.
 *
 * No I/O here: the environment is injected, and the passfile lives in pgpass.c.
 */
#include "conninfo.h"

#include <arpa/inet.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static const struct {
    const char *kw, *env, *def;
} keys[FW__CI_NKEYS] = {
#define FW__CI_KEY_ROW(id, kw, env, def) {kw, env, def},
    FW__CONNINFO_KEYWORDS(FW__CI_KEY_ROW)
#undef FW__CI_KEY_ROW
};

/*
 * Keywords libpq 15 accepts that fwire refuses by name, so the user learns why instead of
 * reading "invalid connection option". Each would need a feature fwire does not have, and
 * accepting it silently could change where or how we connect (a service file can set sslmode).
 */
static const struct {
    const char *kw, *why;
} unsupported[] = {
    {"service", "fwire reads no service file (pg_service.conf); give the settings directly"},
    {"krbsrvname", "fwire has no GSSAPI"},
    {"gsslib", "fwire has no GSSAPI"},
    {"replication", "fwire opens no replication connections"},
};

/* ---- error messages ------------------------------------------------------------------- */

static void err_set(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void err_set(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Room for a quoted value: QMAX input bytes (UMAX for a whole URI), each escaped to at most 4,
 * plus "..." and NUL. */
#define QMAX 64
#define QBUF (4 * QMAX + 8)
#define UMAX 120
#define UBUF (4 * UMAX + 8)

/*
 * Renders s[0..n) for a message: control bytes become \n, \t, \r or \xNN (a DSN that reaches a
 * log must not forge log lines), and more than max bytes end in "..." so every message fits
 * FW__CONNINFO_ERRLEN with its fixed text. out must hold 4 * max + 8 bytes.
 */
static const char *qmax(char *out, const char *s, size_t n, size_t max)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < n && i < max; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n' || c == '\t' || c == '\r') {
            out[o++] = '\\';
            out[o++] = c == '\n' ? 'n' : c == '\t' ? 't' : 'r';
        } else if (c < 0x20 || c == 0x7f) {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        } else {
            out[o++] = (char)c;
        }
    }
    if (n > max) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return out;
}

static const char *qn(char *out, const char *s, size_t n)
{
    return qmax(out, s, n, QMAX);
}

static const char *q(char *out, const char *s)
{
    return qn(out, s, strlen(s));
}

/* ---- small helpers ---------------------------------------------------------------------- */

/* isspace() in the C locale, which is what libpq sees in practice; never locale-dependent. */
static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static bool is_secret(fw__ci_key_t k)
{
    return k == FW__CI_PASSWORD || k == FW__CI_SSLPASSWORD;
}

/* Zeroes a string that may hold a secret, then frees it: freed memory is not wiped by malloc. */
static void zfree(char *s)
{
    if (s != NULL) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

static char *dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d != NULL) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static int store(fw__conninfo_t *ci, fw__ci_key_t k, const char *v, size_t n, fw__ci_src_t src)
{
    char *d = dup_n(v, n);
    if (d == NULL)
        return FW_ENOMEM;
    zfree(ci->val[k]);
    ci->val[k] = d;
    ci->src[k] = (uint8_t)src;
    ci->finished = false;
    return 0;
}

static int find_key(const char *name, size_t n)
{
    for (int k = 0; k < FW__CI_NKEYS; k++)
        if (strlen(keys[k].kw) == n && memcmp(keys[k].kw, name, n) == 0)
            return k;
    return -1;
}

/*
 * Stores name=value as libpq's conninfo_storeval: "requiressl" is the old spelling of sslmode
 * (a value starting with '1' means require, anything else prefer). `uri` picks libpq's message
 * for an unknown query parameter; `withhold` hides the unknown name, which could be a piece of
 * a password that held an unquoted delimiter.
 */
static int set_kv(fw__conninfo_t *ci, const char *name, size_t nlen, const char *val, size_t vlen,
                  bool uri, bool withhold, char *err, size_t errlen)
{
    char qb[QBUF];
    if (nlen == 10 && memcmp(name, "requiressl", 10) == 0) {
        const char *mode = vlen > 0 && val[0] == '1' ? "require" : "prefer";
        return store(ci, FW__CI_SSLMODE, mode, strlen(mode), FW__CI_SRC_STRING);
    }
    int k = find_key(name, nlen);
    if (k >= 0)
        return store(ci, (fw__ci_key_t)k, val, vlen, FW__CI_SRC_STRING);
    for (size_t i = 0; i < sizeof(unsupported) / sizeof(unsupported[0]); i++) {
        if (strlen(unsupported[i].kw) == nlen && memcmp(unsupported[i].kw, name, nlen) == 0) {
            err_set(err, errlen, "connection option \"%s\" is not supported: %s", unsupported[i].kw,
                    unsupported[i].why);
            return FW_EINVAL;
        }
    }
    const char *shown = withhold ? "***" : qn(qb, name, nlen);
    const char *tail = withhold ? " (text withheld: the string contains a password)" : "";
    if (uri)
        err_set(err, errlen, "invalid URI query parameter: \"%s\"%s", shown, tail);
    else
        err_set(err, errlen, "invalid connection option \"%s\"%s", shown, tail);
    return FW_EINVAL;
}

/* ---- object ------------------------------------------------------------------------------ */

fw__conninfo_t *fw__conninfo_new(void)
{
    return calloc(1, sizeof(fw__conninfo_t));
}

static void free_hosts(fw__conninfo_t *ci)
{
    for (size_t i = 0; i < ci->nhosts; i++) {
        free(ci->hosts[i].host);
        free(ci->hosts[i].hostaddr);
        free(ci->hosts[i].port);
        zfree(ci->hosts[i].password);
    }
    free(ci->hosts);
    ci->hosts = NULL;
    ci->nhosts = 0;
}

void fw__conninfo_free(fw__conninfo_t *ci)
{
    if (ci == NULL)
        return;
    for (int k = 0; k < FW__CI_NKEYS; k++)
        zfree(ci->val[k]);
    free(ci->os_user);
    free(ci->home_dir);
    free_hosts(ci);
    explicit_bzero(ci, sizeof(*ci));
    free(ci);
}

const char *fw__conninfo_get(const fw__conninfo_t *ci, const char *keyword)
{
    int k = find_key(keyword, strlen(keyword));
    return k < 0 ? NULL : ci->val[k];
}

const char *fw__conninfo_keyword(size_t i)
{
    return i < FW__CI_NKEYS ? keys[i].kw : NULL;
}

int fw__conninfo_set(fw__conninfo_t *ci, const char *keyword, const char *value, char *err,
                     size_t errlen)
{
    if (value == NULL) {
        int k = strcmp(keyword, "requiressl") == 0 ? FW__CI_SSLMODE
                                                   : find_key(keyword, strlen(keyword));
        if (k >= 0) {
            zfree(ci->val[k]);
            ci->val[k] = NULL;
            ci->src[k] = FW__CI_SRC_NONE;
            ci->finished = false;
            return 0;
        }
        value = ""; /* let set_kv name the problem */
    }
    return set_kv(ci, keyword, strlen(keyword), value, strlen(value), false, false, err, errlen);
}

/* ---- keyword=value syntax --------------------------------------------------------------- */

/*
 * libpq's rules: blanks separate pairs and may surround '='; a value is either bare (ends at a
 * blank) or single-quoted; in both, a backslash takes the next byte literally (a backslash at
 * the very end vanishes in a bare value and leaves a quoted one unterminated). A quoted value
 * needs no blank after its closing quote. "host=" followed by blanks takes the next word as the
 * value, exactly as libpq does.
 */
static int parse_kv(fw__conninfo_t *ci, const char *s, bool withhold, char *err, size_t errlen)
{
    char qb[QBUF];
    size_t n = strlen(s);
    char *buf = malloc(n + 1); /* the value being unescaped; may be a password: wiped below */
    if (buf == NULL)
        return FW_ENOMEM;
    int rc = 0;
    const char *p = s;
    while (*p != '\0') {
        if (is_space(*p)) {
            p++;
            continue;
        }
        const char *name = p;
        while (*p != '\0' && *p != '=' && !is_space(*p))
            p++;
        size_t nlen = (size_t)(p - name);
        while (is_space(*p))
            p++;
        if (*p != '=') {
            if (withhold)
                err_set(err, errlen,
                        "missing \"=\" after \"***\" in connection info string (text withheld: "
                        "the string contains a password)");
            else
                err_set(err, errlen, "missing \"=\" after \"%s\" in connection info string",
                        qn(qb, name, nlen));
            rc = FW_EINVAL;
            break;
        }
        p++;
        while (is_space(*p))
            p++;
        size_t v = 0;
        if (*p != '\'') {
            while (*p != '\0' && !is_space(*p)) {
                if (*p == '\\') {
                    p++;
                    if (*p != '\0')
                        buf[v++] = *p++;
                } else {
                    buf[v++] = *p++;
                }
            }
        } else {
            p++;
            for (;;) {
                if (*p == '\0') {
                    err_set(err, errlen, "unterminated quoted string in connection info string");
                    rc = FW_EINVAL;
                    goto out;
                }
                if (*p == '\\') {
                    p++;
                    if (*p != '\0')
                        buf[v++] = *p++;
                    continue;
                }
                if (*p == '\'') {
                    p++;
                    break;
                }
                buf[v++] = *p++;
            }
        }
        rc = set_kv(ci, name, nlen, buf, v, false, withhold, err, errlen);
        if (rc != 0)
            break;
    }
out:
    explicit_bzero(buf, n + 1);
    free(buf);
    return rc;
}

/* ---- URI syntax ------------------------------------------------------------------------- */

static const char uri_long[] = "postgresql://";
static const char uri_short[] = "postgres://";

static size_t uri_prefix(const char *s)
{
    if (strncmp(s, uri_long, sizeof(uri_long) - 1) == 0)
        return sizeof(uri_long) - 1;
    if (strncmp(s, uri_short, sizeof(uri_short) - 1) == 0)
        return sizeof(uri_short) - 1;
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/*
 * Percent-decodes s[0..n) into a new string (*out, length *outlen). As libpq: '%' must be
 * followed by two hex digits, and %00 is refused (it would cut the value short in C and let
 * "user%00evil" mean something else to different readers). `hide` keeps the text out of the
 * message (a password or a string that contains one).
 */
static int uri_decode(const char *s, size_t n, bool hide, char **out, size_t *outlen, char *err,
                      size_t errlen)
{
    char qb[QBUF];
    char *d = malloc(n + 1);
    if (d == NULL)
        return FW_ENOMEM;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            d[o++] = s[i];
            continue;
        }
        int hi = i + 1 < n ? hexval(s[i + 1]) : -1;
        int lo = hi >= 0 && i + 2 < n ? hexval(s[i + 2]) : -1;
        const char *shown = hide ? "***" : qn(qb, s, n);
        const char *tail = hide ? " (text withheld: the string contains a password)" : "";
        if (hi < 0 || lo < 0) {
            err_set(err, errlen, "invalid percent-encoded token: \"%s\"%s", shown, tail);
            goto fail;
        }
        if (hi == 0 && lo == 0) {
            err_set(err, errlen, "forbidden value %%00 in percent-encoded value: \"%s\"%s", shown,
                    tail);
            goto fail;
        }
        d[o++] = (char)(hi << 4 | lo);
        i += 2;
    }
    d[o] = '\0';
    *out = d;
    *outlen = o;
    return 0;
fail:
    explicit_bzero(d, n + 1);
    free(d);
    return FW_EINVAL;
}

static int store_decoded(fw__conninfo_t *ci, fw__ci_key_t k, const char *s, size_t n, bool withhold,
                         char *err, size_t errlen)
{
    char *d;
    size_t dn;
    int rc = uri_decode(s, n, withhold || is_secret(k), &d, &dn, err, errlen);
    if (rc != 0)
        return rc;
    rc = store(ci, k, d, dn, FW__CI_SRC_STRING);
    zfree(d);
    return rc;
}

/*
 * The URI for a message: libpq quotes it whole. When it may hold a password (see
 * may_hold_secret), only the scheme is shown: a password with a stray '[' or '@' can land in
 * any part. out holds UBUF bytes.
 */
static const char *uri_shown(char *out, const char *s, bool withhold)
{
    if (withhold) {
        size_t p = uri_prefix(s);
        memcpy(out, s, p);
        memcpy(out + p, "***", 4);
        return out;
    }
    return qmax(out, s, strlen(s), UMAX);
}

static int parse_query(fw__conninfo_t *ci, const char *s, size_t p, bool withhold, char *err,
                       size_t errlen)
{
    char qb[QBUF];
    const char *tail = withhold ? " (text withheld: the string contains a password)" : "";
    while (s[p] != '\0') {
        size_t k = p, eq = 0, end;
        bool have_eq = false;
        for (;;) {
            if (s[p] == '=') {
                if (have_eq) {
                    err_set(err, errlen,
                            "extra key/value separator \"=\" in URI query parameter: \"%s\"%s",
                            withhold ? "***" : qn(qb, s + k, eq - k), tail);
                    return FW_EINVAL;
                }
                have_eq = true;
                eq = p++;
            } else if (s[p] == '&' || s[p] == '\0') {
                end = p;
                if (s[p] != '\0')
                    p++;
                if (!have_eq) {
                    err_set(err, errlen,
                            "missing key/value separator \"=\" in URI query parameter: \"%s\"%s",
                            withhold ? "***" : qn(qb, s + k, end - k), tail);
                    return FW_EINVAL;
                }
                break;
            } else {
                p++;
            }
        }
        char *key, *val;
        size_t klen, vlen;
        int rc = uri_decode(s + k, eq - k, withhold, &key, &klen, err, errlen);
        if (rc != 0)
            return rc;
        bool secret = strcmp(key, "password") == 0 || strcmp(key, "sslpassword") == 0;
        rc = uri_decode(s + eq + 1, end - eq - 1, withhold || secret, &val, &vlen, err, errlen);
        if (rc != 0) {
            free(key);
            return rc;
        }
        /* libpq's JDBC courtesy: ssl=true means sslmode=require (any other ssl= is refused). */
        if (strcmp(key, "ssl") == 0 && strcmp(val, "true") == 0)
            rc = set_kv(ci, "sslmode", 7, "require", 7, true, withhold, err, errlen);
        else
            rc = set_kv(ci, key, klen, val, vlen, true, withhold, err, errlen);
        free(key);
        zfree(val);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/*
 * postgresql://[user[:password]@][netloc][:port][,...][/dbname][?param1=value1&...] as libpq's
 * conninfo_uri_parse_options, including its quirks: the user part is found by looking for '@'
 * before the first '/', the host and port lists are percent-decoded as a whole (so "%2C" splits
 * hosts), empty user, password and dbname are not set at all.
 */
static int parse_uri(fw__conninfo_t *ci, const char *s, bool withhold, char *err, size_t errlen)
{
    char ub[UBUF];
    size_t n = strlen(s);
    size_t p = uri_prefix(s);
    int rc = FW_ENOMEM;
    char *hosts = malloc(n + 1), *ports = malloc(n + 1);
    size_t hn = 0, pn = 0;
    if (hosts == NULL || ports == NULL)
        goto out;

    size_t look = p;
    while (s[look] != '\0' && s[look] != '@' && s[look] != '/')
        look++;
    if (s[look] == '@') {
        size_t u = p;
        while (s[u] != ':' && s[u] != '@')
            u++;
        if (u > p &&
            (rc = store_decoded(ci, FW__CI_USER, s + p, u - p, withhold, err, errlen)) != 0)
            goto out;
        if (s[u] == ':') {
            size_t e = u + 1;
            while (s[e] != '@')
                e++;
            if (e > u + 1 && (rc = store_decoded(ci, FW__CI_PASSWORD, s + u + 1, e - u - 1,
                                                 withhold, err, errlen)) != 0)
                goto out;
            u = e;
        }
        p = u + 1;
    }

    char prev;
    for (;;) {
        size_t h, hl;
        if (s[p] == '[') {
            h = ++p;
            while (s[p] != '\0' && s[p] != ']')
                p++;
            if (s[p] == '\0') {
                err_set(err, errlen,
                        "end of string reached when looking for matching \"]\" in IPv6 host "
                        "address in URI: \"%s\"",
                        uri_shown(ub, s, withhold));
                rc = FW_EINVAL;
                goto out;
            }
            if (p == h) {
                err_set(err, errlen, "IPv6 host address may not be empty in URI: \"%s\"",
                        uri_shown(ub, s, withhold));
                rc = FW_EINVAL;
                goto out;
            }
            hl = p - h;
            p++;
            if (s[p] != '\0' && !strchr(":/?,", s[p])) {
                char cb[QBUF];
                err_set(err, errlen,
                        "unexpected character \"%s\" at position %zu in URI (expected \":\" or "
                        "\"/\"): \"%s\"",
                        qn(cb, s + p, 1), p + 1, uri_shown(ub, s, withhold));
                rc = FW_EINVAL;
                goto out;
            }
        } else {
            h = p;
            while (s[p] != '\0' && !strchr(":/?,", s[p]))
                p++;
            hl = p - h;
        }
        memcpy(hosts + hn, s + h, hl);
        hn += hl;
        prev = s[p];
        if (prev == ':') {
            size_t pt = ++p;
            while (s[p] != '\0' && !strchr("/?,", s[p]))
                p++;
            memcpy(ports + pn, s + pt, p - pt);
            pn += p - pt;
            prev = s[p];
        }
        if (prev != ',')
            break;
        p++;
        hosts[hn++] = ',';
        ports[pn++] = ',';
    }
    if (hn > 0 && (rc = store_decoded(ci, FW__CI_HOST, hosts, hn, withhold, err, errlen)) != 0)
        goto out;
    if (pn > 0 && (rc = store_decoded(ci, FW__CI_PORT, ports, pn, withhold, err, errlen)) != 0)
        goto out;

    if (prev != '\0' && prev != '?') {
        size_t d = ++p;
        while (s[p] != '\0' && s[p] != '?')
            p++;
        prev = s[p];
        if (p > d &&
            (rc = store_decoded(ci, FW__CI_DBNAME, s + d, p - d, withhold, err, errlen)) != 0)
            goto out;
    }
    rc = prev != '\0' ? parse_query(ci, s, p + 1, withhold, err, errlen) : 0;
out:
    if (rc == FW_ENOMEM)
        err_set(err, errlen, "out of memory");
    free(hosts);
    free(ports);
    return rc;
}

/*
 * Whether pieces of the input may be secret. A password holding an unquoted blank (or '&' in a
 * URI) splits into words that the parser then reports as bad keywords; pgx leaked passwords that
 * way. So when the string contains "password" at all (also sslpassword, ?password=), has a
 * user:password@ part, or percent-escapes that could spell either, no raw piece of it is quoted.
 */
static bool may_hold_secret(const char *s, bool uri)
{
    if (strstr(s, "password") != NULL)
        return true;
    if (!uri)
        return false;
    if (strchr(s, '%') != NULL)
        return true;
    const char *p = s + uri_prefix(s);
    size_t look = strcspn(p, "@/");
    return p[look] == '@' && memchr(p, ':', look) != NULL;
}

int fw__conninfo_parse(const char *str, fw__conninfo_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    fw__conninfo_t *ci = fw__conninfo_new();
    if (ci == NULL) {
        err_set(err, errlen, "out of memory");
        return FW_ENOMEM;
    }
    bool uri = uri_prefix(str) != 0;
    bool withhold = may_hold_secret(str, uri);
    int rc =
        uri ? parse_uri(ci, str, withhold, err, errlen) : parse_kv(ci, str, withhold, err, errlen);
    if (rc != 0) {
        if (rc == FW_ENOMEM)
            err_set(err, errlen, "out of memory");
        fw__conninfo_free(ci);
        return rc;
    }
    *out = ci;
    return 0;
}

/* ---- environment and defaults ------------------------------------------------------------ */

static const char *env_get(const fw__conninfo_env_t *env, const char *name)
{
    return env != NULL && env->getenv_fn != NULL ? env->getenv_fn(env->ud, name) : NULL;
}

static int dup_opt(char **dst, const char *s)
{
    free(*dst);
    *dst = NULL;
    if (s != NULL && (*dst = strdup(s)) == NULL)
        return FW_ENOMEM;
    return 0;
}

int fw__conninfo_apply_env(fw__conninfo_t *ci, const fw__conninfo_env_t *env, char *err,
                           size_t errlen)
{
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    /* libpq would read pg_service.conf here. Ignoring PGSERVICE could silently drop settings
     * the service holds (sslmode among them), so we refuse it instead (fail closed). */
    if (env_get(env, "PGSERVICE") != NULL) {
        err_set(err, errlen,
                "PGSERVICE is set, but fwire reads no service file (pg_service.conf): unset it "
                "and give the settings directly");
        return FW_EINVAL;
    }
    bool sslmode_defaulted = false;
    for (int k = 0; k < FW__CI_NKEYS; k++) {
        if (ci->val[k] != NULL)
            continue; /* the string wins, even with an empty value (libpq) */
        const char *v = keys[k].env != NULL ? env_get(env, keys[k].env) : NULL;
        if (v != NULL) {
            if (store(ci, (fw__ci_key_t)k, v, strlen(v), FW__CI_SRC_ENV) != 0)
                goto oom;
            continue;
        }
        if (k == FW__CI_SSLMODE) {
            /* The deprecated PGREQUIRESSL: a value starting with '1' means require, but only
             * when PGSSLMODE is unset (libpq >= 9.3). CVE-2017-7485 was libpq forgetting it. */
            const char *r = env_get(env, "PGREQUIRESSL");
            if (r != NULL && r[0] == '1') {
                if (store(ci, FW__CI_SSLMODE, "require", 7, FW__CI_SRC_ENV) != 0)
                    goto oom;
                continue;
            }
            sslmode_defaulted = true;
        }
        if (keys[k].def != NULL) {
            if (store(ci, (fw__ci_key_t)k, keys[k].def, strlen(keys[k].def), FW__CI_SRC_DEFAULT) !=
                0)
                goto oom;
        } else if (k == FW__CI_USER && env != NULL && env->os_user != NULL) {
            if (store(ci, FW__CI_USER, env->os_user, strlen(env->os_user), FW__CI_SRC_DEFAULT) != 0)
                goto oom;
        }
    }
    /* PG16: sslrootcert=system trusts every public CA, so only a full host name check makes it
     * safe; it becomes the default (a weaker explicit mode fails in finish). */
    if (sslmode_defaulted && ci->val[FW__CI_SSLROOTCERT] != NULL &&
        strcmp(ci->val[FW__CI_SSLROOTCERT], "system") == 0) {
        if (store(ci, FW__CI_SSLMODE, "verify-full", 11, FW__CI_SRC_DEFAULT) != 0)
            goto oom;
    }
    if (dup_opt(&ci->os_user, env != NULL ? env->os_user : NULL) != 0 ||
        dup_opt(&ci->home_dir, env != NULL ? env->home_dir : NULL) != 0)
        goto oom;
    return 0;
oom:
    err_set(err, errlen, "out of memory");
    return FW_ENOMEM;
}

static const char *sys_getenv(void *ud, const char *name)
{
    (void)ud;
    return getenv(name);
}

void fw__conninfo_env_system(fw__conninfo_sysenv_t *sys)
{
    memset(sys, 0, sizeof(*sys));
    sys->env.getenv_fn = sys_getenv;
    /* libpq: the user name from the effective uid's passwd entry; the home directory from $HOME
     * first (libpq 15 reads ~/.pgpass there), else the passwd entry. */
    struct passwd pw, *res = NULL;
    char pwbuf[1024];
    size_t used = 0;
    if (getpwuid_r(geteuid(), &pw, pwbuf, sizeof(pwbuf), &res) == 0 && res != NULL) {
        size_t n = strlen(pw.pw_name);
        if (n + 1 < sizeof(sys->buf)) {
            memcpy(sys->buf, pw.pw_name, n + 1);
            sys->env.os_user = sys->buf;
            used = n + 1;
        }
    }
    const char *home = getenv("HOME");
    if ((home == NULL || home[0] == '\0') && res != NULL)
        home = pw.pw_dir;
    if (home != NULL && home[0] != '\0' && strlen(home) + 1 <= sizeof(sys->buf) - used) {
        memcpy(sys->buf + used, home, strlen(home) + 1);
        sys->env.home_dir = sys->buf + used;
    }
}

/* ---- validation ------------------------------------------------------------------------- */

/*
 * libpq's parse_int_param: leading and trailing blanks allowed, an optional sign, decimal
 * digits, the value within int. "" and "12abc" are errors.
 */
static bool parse_int(const char *s, int *out)
{
    while (is_space(*s))
        s++;
    bool neg = false;
    if (*s == '+' || *s == '-')
        neg = *s++ == '-';
    if (*s < '0' || *s > '9')
        return false;
    long long v = 0;
    while (*s >= '0' && *s <= '9') {
        v = v * 10 + (*s++ - '0');
        if (v > (long long)INT32_MAX + 1)
            return false;
    }
    while (is_space(*s))
        s++;
    if (*s != '\0')
        return false;
    v = neg ? -v : v;
    if (v > INT32_MAX || v < INT32_MIN)
        return false;
    *out = (int)v;
    return true;
}

static int int_opt(const fw__conninfo_t *ci, fw__ci_key_t k, int unset, int *out, char *err,
                   size_t errlen)
{
    char qb[QBUF];
    *out = unset;
    if (ci->val[k] == NULL)
        return 0;
    if (!parse_int(ci->val[k], out)) {
        err_set(err, errlen, "invalid integer value \"%s\" for connection option \"%s\"",
                q(qb, ci->val[k]), keys[k].kw);
        return FW_EINVAL;
    }
    return 0;
}

/* Looks s up in a NULL-terminated list; returns the index or -1. */
static int pick(const char *s, const char *const *list)
{
    for (int i = 0; list[i] != NULL; i++)
        if (strcmp(s, list[i]) == 0)
            return i;
    return -1;
}

static int enum_opt(const fw__conninfo_t *ci, fw__ci_key_t k, const char *const *list, int def,
                    int *out, char *err, size_t errlen)
{
    char qb[QBUF];
    *out = def;
    if (ci->val[k] == NULL)
        return 0;
    if ((*out = pick(ci->val[k], list)) < 0) {
        err_set(err, errlen, "invalid %s value: \"%s\"", keys[k].kw, q(qb, ci->val[k]));
        return FW_EINVAL;
    }
    return 0;
}

static size_t count_items(const char *s)
{
    size_t n = 1;
    for (; *s != '\0'; s++)
        n += *s == ',';
    return n;
}

/* The i-th comma-separated item of s, as a new string. */
static char *item(const char *s, size_t i)
{
    for (; i > 0; i--)
        s = strchr(s, ',') + 1;
    return dup_n(s, strcspn(s, ","));
}

static bool nonempty(const char *s)
{
    return s != NULL && s[0] != '\0';
}

/* libpq checks hostaddr with getaddrinfo(AI_NUMERICHOST) when connecting; we check now, with
 * inet_pton, which also refuses the old inet_aton forms ("127.1") and accepts an IPv6 zone. */
static bool numeric_address(const char *s)
{
    unsigned char a[16];
    char tmp[64];
    if (inet_pton(AF_INET, s, a) == 1)
        return true;
    size_t n = strcspn(s, "%");
    if (n >= sizeof(tmp) || (s[n] == '%' && s[n + 1] == '\0'))
        return false;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    return inet_pton(AF_INET6, tmp, a) == 1;
}

static int build_hosts(fw__conninfo_t *ci, char *err, size_t errlen)
{
    char qb[QBUF];
    const char *hs = ci->val[FW__CI_HOST], *as = ci->val[FW__CI_HOSTADDR],
               *ps = ci->val[FW__CI_PORT];
    size_t n = nonempty(as) ? count_items(as) : nonempty(hs) ? count_items(hs) : 1;
    if (nonempty(as) && nonempty(hs) && count_items(hs) != n) {
        err_set(err, errlen, "could not match %zu host names to %zu hostaddr values",
                count_items(hs), n);
        return FW_EINVAL;
    }
    size_t np = nonempty(ps) ? count_items(ps) : 0;
    if (np > 1 && np != n) {
        err_set(err, errlen, "could not match %zu port numbers to %zu hosts", np, n);
        return FW_EINVAL;
    }
    if ((ci->hosts = calloc(n, sizeof(*ci->hosts))) == NULL)
        return FW_ENOMEM;
    ci->nhosts = n;
    for (size_t i = 0; i < n; i++) {
        fw__conninfo_host_t *h = &ci->hosts[i];
        char *addr = nonempty(as) ? item(as, i) : strdup("");
        h->host = nonempty(hs) ? item(hs, i) : strdup("");
        h->port = np == 0 ? strdup("") : item(ps, np == 1 ? 0 : i);
        if (addr == NULL || h->host == NULL || h->port == NULL) {
            free(addr);
            return FW_ENOMEM;
        }
        if (addr[0] != '\0') {
            h->hostaddr = addr;
            h->type = FW__HOST_ADDRESS;
            if (!numeric_address(addr)) {
                err_set(err, errlen,
                        "could not parse network address \"%s\": not a numeric IPv4 or IPv6 "
                        "address",
                        q(qb, addr));
                return FW_EINVAL;
            }
        } else {
            free(addr);
            if (h->host[0] == '\0') {
                free(h->host);
                if ((h->host = strdup(FW__CONNINFO_DEFAULT_SOCKET_DIR)) == NULL)
                    return FW_ENOMEM;
            }
            /* libpq's is_unixsock_path: an absolute path, or '@' for Linux's abstract names */
            h->type = h->host[0] == '/' || h->host[0] == '@' ? FW__HOST_UNIX : FW__HOST_NAME;
        }
        int port = FW__CONNINFO_DEFAULT_PORT;
        if (h->port[0] != '\0') {
            if (!parse_int(h->port, &port)) {
                err_set(err, errlen, "invalid integer value \"%s\" for connection option \"port\"",
                        q(qb, h->port));
                return FW_EINVAL;
            }
            if (port < 1 || port > 65535) {
                err_set(err, errlen, "invalid port number: \"%s\"", q(qb, h->port));
                return FW_EINVAL;
            }
        }
        h->port_num = (uint16_t)port;
    }
    return 0;
}

/* PG16 require_auth: all methods plain (the allowed set) or all negated (the refused set). */
static int parse_require_auth(fw__conninfo_t *ci, char *err, size_t errlen)
{
    static const char *const names[] = {"password",      "md5",  "gss", "sspi",
                                        "scram-sha-256", "none", NULL};
    static const uint32_t bits[] = {
        FW__AUTH_BIT(FW__AUTH_REQ_PASSWORD),
        FW__AUTH_BIT(FW__AUTH_REQ_MD5),
        FW__AUTH_BIT(FW__AUTH_REQ_GSS) | FW__AUTH_BIT(FW__AUTH_REQ_GSS_CONT),
        FW__AUTH_BIT(FW__AUTH_REQ_SSPI) | FW__AUTH_BIT(FW__AUTH_REQ_GSS_CONT),
        FW__AUTH_BIT(FW__AUTH_REQ_SASL) | FW__AUTH_BIT(FW__AUTH_REQ_SASL_CONT) |
            FW__AUTH_BIT(FW__AUTH_REQ_SASL_FIN),
        0,
    };
    char qb[QBUF];
    const char *s = ci->val[FW__CI_REQUIRE_AUTH];
    ci->require_auth_set = nonempty(s);
    ci->auth_required = false;
    ci->allowed_auth = UINT32_MAX;
    if (!ci->require_auth_set)
        return 0;
    ci->auth_required = true;
    ci->allowed_auth = 0;
    bool negated = false;
    for (size_t i = 0, n = count_items(s); i < n; i++) {
        char *part = item(s, i);
        if (part == NULL)
            return FW_ENOMEM;
        const char *m = part;
        if (*m == '!') {
            if (i == 0) {
                ci->auth_required = false;
                ci->allowed_auth = UINT32_MAX;
            } else if (!negated) {
                err_set(err, errlen,
                        "negative require_auth method \"%s\" cannot be mixed with non-negative "
                        "methods",
                        q(qb, m));
                goto fail;
            }
            negated = true;
            m++;
        } else if (negated) {
            err_set(err, errlen, "require_auth method \"%s\" cannot be mixed with negative methods",
                    q(qb, m));
            goto fail;
        }
        int which = pick(m, names);
        if (which < 0) {
            err_set(err, errlen, "invalid require_auth value: \"%s\"", q(qb, m));
            goto fail;
        }
        bool dup;
        if (bits[which] == 0) { /* "none": may the server skip authentication? */
            dup = negated ? ci->auth_required : !ci->auth_required;
            ci->auth_required = negated;
        } else if (negated) {
            dup = (ci->allowed_auth & bits[which]) == 0;
            ci->allowed_auth &= ~bits[which];
        } else {
            dup = (ci->allowed_auth & bits[which]) == bits[which];
            ci->allowed_auth |= bits[which];
        }
        if (dup) {
            /* A repeated method is most likely a typo in a setting where typos are risky. */
            err_set(err, errlen, "require_auth method \"%s\" is specified more than once",
                    q(qb, part));
            goto fail;
        }
        free(part);
        continue;
    fail:
        free(part);
        return FW_EINVAL;
    }
    return 0;
}

/* "TLSv1".."TLSv1.3" without regard to case as libpq; 0 for unset or empty, -1 for invalid. */
static int tls_version(const char *s)
{
    static const char *const names[] = {"tlsv1", "tlsv1.1", "tlsv1.2", "tlsv1.3", NULL};
    char low[16];
    if (s == NULL || s[0] == '\0')
        return 0;
    size_t n = strlen(s);
    if (n >= sizeof(low))
        return -1;
    for (size_t i = 0; i <= n; i++)
        low[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] - 'A' + 'a' : s[i]);
    int i = pick(low, names);
    return i < 0 ? -1 : 0x0301 + i;
}

static int check_tls(fw__conninfo_t *ci, char *err, size_t errlen)
{
    char qb[QBUF];
    const char *mins = ci->val[FW__CI_SSL_MIN_PROTOCOL_VERSION];
    const char *maxs = ci->val[FW__CI_SSL_MAX_PROTOCOL_VERSION];
    int lo = tls_version(mins), hi = tls_version(maxs);
    if (lo < 0 || hi < 0) {
        fw__ci_key_t k = lo < 0 ? FW__CI_SSL_MIN_PROTOCOL_VERSION : FW__CI_SSL_MAX_PROTOCOL_VERSION;
        err_set(err, errlen, "invalid %s value: \"%s\"", keys[k].kw, q(qb, ci->val[k]));
        return FW_EINVAL;
    }
    if (lo != 0 && hi != 0 && lo > hi) {
        err_set(err, errlen, "invalid SSL protocol version range");
        return FW_EINVAL;
    }
    /* fwire never speaks TLS below 1.2 (RELIABILITY "TLS details"): say so rather than raise
     * the floor behind the user's back. */
    if ((lo != 0 && lo < FW__TLS_1_2) || (hi != 0 && hi < FW__TLS_1_2)) {
        fw__ci_key_t k = lo != 0 && lo < FW__TLS_1_2 ? FW__CI_SSL_MIN_PROTOCOL_VERSION
                                                     : FW__CI_SSL_MAX_PROTOCOL_VERSION;
        err_set(err, errlen, "%s value \"%s\" is not supported: fwire requires TLSv1.2 or later",
                keys[k].kw, q(qb, ci->val[k]));
        return FW_EINVAL;
    }
    ci->ssl_min_version = lo;
    ci->ssl_max_version = hi;
    return 0;
}

/* fwire speaks UTF8 only. The server folds case and drops non-alphanumerics in encoding names,
 * and knows UTF8 as "utf8" and "unicode"; "auto" (the locale's) is refused. */
static bool utf8_name(const char *s)
{
    char norm[16];
    size_t o = 0;
    for (; *s != '\0'; s++) {
        char c = *s >= 'A' && *s <= 'Z' ? (char)(*s - 'A' + 'a') : *s;
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
            if (o + 1 >= sizeof(norm))
                return false;
            norm[o++] = c;
        }
    }
    norm[o] = '\0';
    return strcmp(norm, "utf8") == 0 || strcmp(norm, "unicode") == 0;
}

static int check_misc(fw__conninfo_t *ci, char *err, size_t errlen)
{
    static const char *const off[] = {"0", "off", "false", "no", "", NULL};
    static const char *const on[] = {"on", "true", "yes", NULL};
    static const char *const gss[] = {"disable", "prefer", "require", NULL};
    char qb[QBUF];
    const char *v = ci->val[FW__CI_GSSENCMODE];
    int g;
    if (enum_opt(ci, FW__CI_GSSENCMODE, gss, 0, &g, err, errlen) != 0)
        return FW_EINVAL;
    if (g != 0) {
        err_set(err, errlen,
                "gssencmode value \"%s\" is not supported: fwire has no GSSAPI encryption (use "
                "\"disable\")",
                q(qb, v));
        return FW_EINVAL;
    }
    /* libpq turns compression on for a value starting with '1'. TLS compression leaks secrets
     * (CRIME), so fwire refuses every "on" spelling and any value it cannot read as off. */
    v = ci->val[FW__CI_SSLCOMPRESSION];
    if (v != NULL && pick(v, off) < 0) {
        if (v[0] == '1' || pick(v, on) >= 0)
            err_set(err, errlen,
                    "sslcompression value \"%s\" is not supported: TLS compression is insecure "
                    "(CRIME) and fwire never enables it",
                    q(qb, v));
        else
            err_set(err, errlen, "invalid sslcompression value: \"%s\"", q(qb, v));
        return FW_EINVAL;
    }
    v = ci->val[FW__CI_CLIENT_ENCODING];
    if (nonempty(v) && !utf8_name(v)) {
        err_set(err, errlen,
                "client_encoding \"%s\" is not supported: fwire exchanges text in UTF8 only",
                q(qb, v));
        return FW_EINVAL;
    }
    /* libpq: SNI is on when the value starts with '1' (its default), off otherwise. */
    v = ci->val[FW__CI_SSLSNI];
    ci->sslsni = v == NULL || v[0] == '1';

    int t;
    if (int_opt(ci, FW__CI_CONNECT_TIMEOUT, 0, &t, err, errlen) != 0)
        return FW_EINVAL;
    ci->connect_timeout = t <= 0 ? 0 : t < 2 ? 2 : t; /* libpq >= 13: at least 2 s */
    if (int_opt(ci, FW__CI_KEEPALIVES, 1, &t, err, errlen) != 0)
        return FW_EINVAL;
    ci->keepalives = t != 0;
    static const fw__ci_key_t ka[] = {FW__CI_KEEPALIVES_IDLE, FW__CI_KEEPALIVES_INTERVAL,
                                      FW__CI_KEEPALIVES_COUNT, FW__CI_TCP_USER_TIMEOUT};
    int *dst[] = {&ci->keepalives_idle, &ci->keepalives_interval, &ci->keepalives_count,
                  &ci->tcp_user_timeout};
    for (size_t i = 0; i < 4; i++) {
        if (int_opt(ci, ka[i], -1, &t, err, errlen) != 0)
            return FW_EINVAL;
        *dst[i] = ci->val[ka[i]] != NULL && t < 0 ? 0 : t; /* libpq: negative means 0 */
    }
    return 0;
}

int fw__conninfo_finish(fw__conninfo_t *ci, char *err, size_t errlen)
{
    static const char *const sslmodes[] = {"disable",   "allow",       "prefer", "require",
                                           "verify-ca", "verify-full", NULL};
    static const char *const cbs[] = {"disable", "prefer", "require", NULL};
    static const char *const tsas[] = {"any",     "read-write",     "read-only", "primary",
                                       "standby", "prefer-standby", NULL};
    static const char *const lbs[] = {"disable", "random", NULL};
    char qb[QBUF];
    int rc, e;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    ci->finished = false;
    free_hosts(ci);
    if ((rc = build_hosts(ci, err, errlen)) != 0)
        goto out;
    /* libpq: an empty user means the OS user, an empty dbname the user. */
    if (!nonempty(ci->val[FW__CI_USER])) {
        if (ci->os_user == NULL) {
            err_set(err, errlen, "could not determine the local user name: set user or PGUSER");
            rc = FW_EINVAL;
            goto out;
        }
        if ((rc = store(ci, FW__CI_USER, ci->os_user, strlen(ci->os_user), FW__CI_SRC_DEFAULT)) !=
            0)
            goto out;
    }
    if (!nonempty(ci->val[FW__CI_DBNAME]) &&
        (rc = store(ci, FW__CI_DBNAME, ci->val[FW__CI_USER], strlen(ci->val[FW__CI_USER]),
                    FW__CI_SRC_DEFAULT)) != 0)
        goto out;
    if ((rc = parse_require_auth(ci, err, errlen)) != 0)
        goto out;
    rc = FW_EINVAL;
    if (enum_opt(ci, FW__CI_CHANNEL_BINDING, cbs, FW__CHANBIND_PREFER, &e, err, errlen) != 0)
        goto out;
    ci->channel_binding = (fw__chanbind_t)e;
    const char *root = ci->val[FW__CI_SSLROOTCERT];
    ci->sslrootcert_system = root != NULL && strcmp(root, "system") == 0;
    if (enum_opt(ci, FW__CI_SSLMODE, sslmodes,
                 ci->sslrootcert_system ? FW__SSLMODE_VERIFY_FULL : FW__SSLMODE_PREFER, &e, err,
                 errlen) != 0)
        goto out;
    ci->sslmode = (fw__sslmode_t)e;
    if (ci->sslrootcert_system && ci->sslmode != FW__SSLMODE_VERIFY_FULL) {
        err_set(err, errlen,
                "weak sslmode \"%s\" may not be used with sslrootcert=system (use "
                "\"verify-full\")",
                q(qb, ci->val[FW__CI_SSLMODE]));
        goto out;
    }
    if (check_tls(ci, err, errlen) != 0 || check_misc(ci, err, errlen) != 0)
        goto out;
    if (enum_opt(ci, FW__CI_TARGET_SESSION_ATTRS, tsas, FW__TSA_ANY, &e, err, errlen) != 0)
        goto out;
    ci->target_session_attrs = (fw__tsa_t)e;
    if (enum_opt(ci, FW__CI_LOAD_BALANCE_HOSTS, lbs, FW__LB_DISABLE, &e, err, errlen) != 0)
        goto out;
    ci->load_balance_hosts = (fw__lbhosts_t)e;
    ci->finished = true;
    rc = 0;
out:
    if (rc == FW_ENOMEM)
        err_set(err, errlen, "out of memory");
    if (rc != 0)
        free_hosts(ci);
    return rc;
}

int fw__conninfo_from_string(const char *str, const fw__conninfo_env_t *env, fw__conninfo_t **out,
                             char *err, size_t errlen)
{
    int rc = fw__conninfo_parse(str, out, err, errlen);
    if (rc == 0 && (rc = fw__conninfo_apply_env(*out, env, err, errlen)) == 0)
        rc = fw__conninfo_finish(*out, err, errlen);
    if (rc != 0 && *out != NULL) {
        fw__conninfo_free(*out);
        *out = NULL;
    }
    return rc;
}
