/* SPDX-License-Identifier: MIT */
/*
 * Connection strings the way libpq 15 reads them (fe-connect.c: conninfo_parse,
 * conninfo_uri_parse_options, conninfo_add_defaults, pqConnectOptions2), written from libpq's
 * documented and observed behaviour; the libpq oracle test holds us to it. Where fwire differs on
 * purpose, the comment says so and docs/connection-strings.md lists it.
 *
 * This file: the options object, the keyword table and the two syntaxes (keyword=value, URI).
 * The environment and defaults step and the validation live in conninfo_check.c.
 *
 * No I/O here: the environment is injected, and the passfile lives in pgpass.c.
 */
#include "alloc.h"
#include "conninfo.h"
#include "conninfo_int.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const fw__ci_keydef_t fw__ci_keys[FW__CI_NKEYS] = {
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

void fw__ci_err_set(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Room for a quoted URI: UMAX input bytes, each escaped to at most 4, plus "..." and NUL (a
 * single value gets FW__CI_QMAX, conninfo_int.h). */
#define UMAX 120
#define UBUF (4 * UMAX + 8)

/*
 * Renders s[0..n) for a message: control bytes become \n, \t, \r or \xNN (a DSN that reaches a
 * log must not forge log lines), and more than max bytes end in "..." so every message fits
 * FW__CONNINFO_ERRLEN with its fixed text. out must hold 4 * max + 8 bytes.
 */
const char *fw__ci_quote_max(char *out, const char *s, size_t n, size_t max)
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
    return fw__ci_quote_max(out, s, n, FW__CI_QMAX);
}

const char *fw__ci_quote(char *out, const char *s)
{
    return qn(out, s, strlen(s));
}

/* ---- small helpers ---------------------------------------------------------------------- */

/* isspace() in the C locale, which is what libpq sees in practice; never locale-dependent. */
bool fw__ci_is_space(char c)
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
        fw__free(s);
    }
}

char *fw__ci_dup_n(const char *s, size_t n)
{
    char *d = fw__malloc(n + 1);
    if (d != NULL) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

int fw__ci_store(fw__conninfo_t *ci, fw__ci_key_t k, const char *v, size_t n, fw__ci_src_t src)
{
    char *d = fw__ci_dup_n(v, n);
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
        if (strlen(fw__ci_keys[k].kw) == n && memcmp(fw__ci_keys[k].kw, name, n) == 0)
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
    char qb[FW__CI_QBUF];
    if (nlen == 10 && memcmp(name, "requiressl", 10) == 0) {
        const char *mode = vlen > 0 && val[0] == '1' ? "require" : "prefer";
        return fw__ci_store(ci, FW__CI_SSLMODE, mode, strlen(mode), FW__CI_SRC_STRING);
    }
    int k = find_key(name, nlen);
    if (k >= 0)
        return fw__ci_store(ci, (fw__ci_key_t)k, val, vlen, FW__CI_SRC_STRING);
    for (size_t i = 0; i < sizeof(unsupported) / sizeof(unsupported[0]); i++) {
        if (strlen(unsupported[i].kw) == nlen && memcmp(unsupported[i].kw, name, nlen) == 0) {
            fw__ci_err_set(err, errlen, "connection option \"%s\" is not supported: %s",
                           unsupported[i].kw, unsupported[i].why);
            return FW_EINVAL;
        }
    }
    const char *shown = withhold ? "***" : qn(qb, name, nlen);
    const char *tail = withhold ? " (text withheld: the string contains a password)" : "";
    if (uri)
        fw__ci_err_set(err, errlen, "invalid URI query parameter: \"%s\"%s", shown, tail);
    else
        fw__ci_err_set(err, errlen, "invalid connection option \"%s\"%s", shown, tail);
    return FW_EINVAL;
}

/* ---- object ------------------------------------------------------------------------------ */

fw__conninfo_t *fw__conninfo_new(void)
{
    return fw__calloc(1, sizeof(fw__conninfo_t));
}

void fw__ci_free_hosts(fw__conninfo_t *ci)
{
    for (size_t i = 0; i < ci->nhosts; i++) {
        fw__free(ci->hosts[i].host);
        fw__free(ci->hosts[i].hostaddr);
        fw__free(ci->hosts[i].port);
        zfree(ci->hosts[i].password);
    }
    fw__free(ci->hosts);
    ci->hosts = NULL;
    ci->nhosts = 0;
}

void fw__conninfo_free(fw__conninfo_t *ci)
{
    if (ci == NULL)
        return;
    for (int k = 0; k < FW__CI_NKEYS; k++)
        zfree(ci->val[k]);
    fw__free(ci->os_user);
    fw__free(ci->home_dir);
    fw__ci_free_hosts(ci);
    explicit_bzero(ci, sizeof(*ci));
    fw__free(ci);
}

const char *fw__conninfo_get(const fw__conninfo_t *ci, const char *keyword)
{
    int k = find_key(keyword, strlen(keyword));
    return k < 0 ? NULL : ci->val[k];
}

const char *fw__conninfo_keyword(size_t i)
{
    return i < FW__CI_NKEYS ? fw__ci_keys[i].kw : NULL;
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
    char qb[FW__CI_QBUF];
    size_t n = strlen(s);
    char *buf = fw__malloc(n + 1); /* the value being unescaped; may be a password: wiped below */
    if (buf == NULL)
        return FW_ENOMEM;
    int rc = 0;
    const char *p = s;
    while (*p != '\0') {
        if (fw__ci_is_space(*p)) {
            p++;
            continue;
        }
        const char *name = p;
        while (*p != '\0' && *p != '=' && !fw__ci_is_space(*p))
            p++;
        size_t nlen = (size_t)(p - name);
        while (fw__ci_is_space(*p))
            p++;
        if (*p != '=') {
            if (withhold)
                fw__ci_err_set(
                    err, errlen,
                    "missing \"=\" after \"***\" in connection info string (text withheld: "
                    "the string contains a password)");
            else
                fw__ci_err_set(err, errlen, "missing \"=\" after \"%s\" in connection info string",
                               qn(qb, name, nlen));
            rc = FW_EINVAL;
            break;
        }
        p++;
        while (fw__ci_is_space(*p))
            p++;
        size_t v = 0;
        if (*p != '\'') {
            while (*p != '\0' && !fw__ci_is_space(*p)) {
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
                    fw__ci_err_set(err, errlen,
                                   "unterminated quoted string in connection info string");
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
    fw__free(buf);
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
    char qb[FW__CI_QBUF];
    char *d = fw__malloc(n + 1);
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
            fw__ci_err_set(err, errlen, "invalid percent-encoded token: \"%s\"%s", shown, tail);
            goto fail;
        }
        if (hi == 0 && lo == 0) {
            fw__ci_err_set(err, errlen, "forbidden value %%00 in percent-encoded value: \"%s\"%s",
                           shown, tail);
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
    fw__free(d);
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
    rc = fw__ci_store(ci, k, d, dn, FW__CI_SRC_STRING);
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
    return fw__ci_quote_max(out, s, strlen(s), UMAX);
}

static int parse_query(fw__conninfo_t *ci, const char *s, size_t p, bool withhold, char *err,
                       size_t errlen)
{
    char qb[FW__CI_QBUF];
    const char *tail = withhold ? " (text withheld: the string contains a password)" : "";
    while (s[p] != '\0') {
        size_t k = p, eq = 0, end;
        bool have_eq = false;
        for (;;) {
            if (s[p] == '=') {
                if (have_eq) {
                    fw__ci_err_set(
                        err, errlen,
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
                    fw__ci_err_set(
                        err, errlen,
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
            fw__free(key);
            return rc;
        }
        /* libpq's JDBC courtesy: ssl=true means sslmode=require (any other ssl= is refused). */
        if (strcmp(key, "ssl") == 0 && strcmp(val, "true") == 0)
            rc = set_kv(ci, "sslmode", 7, "require", 7, true, withhold, err, errlen);
        else
            rc = set_kv(ci, key, klen, val, vlen, true, withhold, err, errlen);
        fw__free(key);
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
    char *hosts = fw__malloc(n + 1), *ports = fw__malloc(n + 1);
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
                fw__ci_err_set(err, errlen,
                               "end of string reached when looking for matching \"]\" in IPv6 host "
                               "address in URI: \"%s\"",
                               uri_shown(ub, s, withhold));
                rc = FW_EINVAL;
                goto out;
            }
            if (p == h) {
                fw__ci_err_set(err, errlen, "IPv6 host address may not be empty in URI: \"%s\"",
                               uri_shown(ub, s, withhold));
                rc = FW_EINVAL;
                goto out;
            }
            hl = p - h;
            p++;
            if (s[p] != '\0' && !strchr(":/?,", s[p])) {
                char cb[FW__CI_QBUF];
                fw__ci_err_set(
                    err, errlen,
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
        fw__ci_err_set(err, errlen, "out of memory");
    fw__free(hosts);
    fw__free(ports);
    return rc;
}

/*
 * Whether pieces of the input may be secret. A password holding an unquoted blank (or '&' in a
 * URI) splits into words that the parser then reports as bad keywords; pgx leaked passwords that
 * way. So when the string contains "password" at all (also sslpassword, ?password=), has a
 * user:password@ part, or percent-escapes that spell "password", no raw piece of it is quoted.
 */
/*
 * Whether "password" appears once the URI's valid percent-escapes are decoded ("pass%77ord=").
 * A '%' alone, or one not followed by two hex digits ("%zz", "%1", "%"), stays as it is: it
 * cannot spell anything, so an invalid URI without a password keeps its text in the message.
 */
static bool decoded_has_password(const char *s)
{
    static const char want[] = "password";
    size_t matched = 0;
    while (*s != '\0') {
        char c = *s++;
        if (c == '%' && isxdigit((unsigned char)s[0]) && isxdigit((unsigned char)s[1])) {
            char hex[3] = {s[0], s[1], '\0'};
            c = (char)strtol(hex, NULL, 16);
            s += 2;
        }
        /* the needle has no repeated prefix, so a mismatch restarts at this character */
        matched = c == want[matched] ? matched + 1 : c == want[0] ? 1 : 0;
        if (matched == sizeof(want) - 1)
            return true;
    }
    return false;
}

static bool may_hold_secret(const char *s, bool uri)
{
    if (strstr(s, "password") != NULL)
        return true;
    if (!uri)
        return false;
    if (strchr(s, '%') != NULL && decoded_has_password(s))
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
        fw__ci_err_set(err, errlen, "out of memory");
        return FW_ENOMEM;
    }
    bool uri = uri_prefix(str) != 0;
    bool withhold = may_hold_secret(str, uri);
    int rc =
        uri ? parse_uri(ci, str, withhold, err, errlen) : parse_kv(ci, str, withhold, err, errlen);
    if (rc != 0) {
        if (rc == FW_ENOMEM)
            fw__ci_err_set(err, errlen, "out of memory");
        fw__conninfo_free(ci);
        return rc;
    }
    *out = ci;
    return 0;
}
