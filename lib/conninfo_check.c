/* SPDX-License-Identifier: MIT */
/*
 * After the string is parsed (conninfo.c): the environment and defaults step (libpq 15's
 * conninfo_add_defaults) and the validation that derives the typed fields (pqConnectOptions2,
 * plus the checks libpq makes only when connecting). Where fwire differs on purpose, the comment
 * says so and docs/connection-strings.md lists it.
 *
 * The only I/O is fw__conninfo_env_system() reading the process's own environment and passwd
 * entry; everything else takes the environment injected.
 */
#include "alloc.h"
#include "conninfo.h"
#include "conninfo_int.h"
#include "proto.h"

#include <arpa/inet.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

/* ---- environment and defaults ------------------------------------------------------------ */

static const char *env_get(const fw__conninfo_env_t *env, const char *name)
{
    return env != NULL && env->getenv_fn != NULL ? env->getenv_fn(env->ud, name) : NULL;
}

static int dup_opt(char **dst, const char *s)
{
    fw__free(*dst);
    *dst = NULL;
    if (s != NULL && (*dst = fw__strdup(s)) == NULL)
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
        fw__ci_err_set(
            err, errlen,
            "PGSERVICE is set, but fwire reads no service file (pg_service.conf): unset it "
            "and give the settings directly");
        return FW_EINVAL;
    }
    bool sslmode_defaulted = false;
    for (int k = 0; k < FW__CI_NKEYS; k++) {
        if (ci->val[k] != NULL)
            continue; /* the string wins, even with an empty value (libpq) */
        const char *v = fw__ci_keys[k].env != NULL ? env_get(env, fw__ci_keys[k].env) : NULL;
        if (v != NULL) {
            if (fw__ci_store(ci, (fw__ci_key_t)k, v, strlen(v), FW__CI_SRC_ENV) != 0)
                goto oom;
            continue;
        }
        if (k == FW__CI_SSLMODE) {
            /* The deprecated PGREQUIRESSL: a value starting with '1' means require, but only
             * when PGSSLMODE is unset (libpq >= 9.3). CVE-2017-7485 was libpq forgetting it. */
            const char *r = env_get(env, "PGREQUIRESSL");
            if (r != NULL && r[0] == '1') {
                if (fw__ci_store(ci, FW__CI_SSLMODE, "require", 7, FW__CI_SRC_ENV) != 0)
                    goto oom;
                continue;
            }
            sslmode_defaulted = true;
        }
        if (fw__ci_keys[k].def != NULL) {
            if (fw__ci_store(ci, (fw__ci_key_t)k, fw__ci_keys[k].def, strlen(fw__ci_keys[k].def),
                             FW__CI_SRC_DEFAULT) != 0)
                goto oom;
        } else if (k == FW__CI_USER && env != NULL && env->os_user != NULL) {
            if (fw__ci_store(ci, FW__CI_USER, env->os_user, strlen(env->os_user),
                             FW__CI_SRC_DEFAULT) != 0)
                goto oom;
        }
    }
    /* PG16: sslrootcert=system trusts every public CA, so only a full host name check makes it
     * safe; it becomes the default (a weaker explicit mode fails in finish). */
    if (sslmode_defaulted && ci->val[FW__CI_SSLROOTCERT] != NULL &&
        strcmp(ci->val[FW__CI_SSLROOTCERT], "system") == 0) {
        if (fw__ci_store(ci, FW__CI_SSLMODE, "verify-full", 11, FW__CI_SRC_DEFAULT) != 0)
            goto oom;
    }
    if (dup_opt(&ci->os_user, env != NULL ? env->os_user : NULL) != 0 ||
        dup_opt(&ci->home_dir, env != NULL ? env->home_dir : NULL) != 0)
        goto oom;
    return 0;
oom:
    fw__ci_err_set(err, errlen, "out of memory");
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
    while (fw__ci_is_space(*s))
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
    while (fw__ci_is_space(*s))
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
    char qb[FW__CI_QBUF];
    *out = unset;
    if (ci->val[k] == NULL)
        return 0;
    if (!parse_int(ci->val[k], out)) {
        fw__ci_err_set(err, errlen, "invalid integer value \"%s\" for connection option \"%s\"",
                       fw__ci_quote(qb, ci->val[k]), fw__ci_keys[k].kw);
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
    char qb[FW__CI_QBUF];
    *out = def;
    if (ci->val[k] == NULL)
        return 0;
    if ((*out = pick(ci->val[k], list)) < 0) {
        fw__ci_err_set(err, errlen, "invalid %s value: \"%s\"", fw__ci_keys[k].kw,
                       fw__ci_quote(qb, ci->val[k]));
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
    return fw__ci_dup_n(s, strcspn(s, ","));
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
    char qb[FW__CI_QBUF];
    const char *hs = ci->val[FW__CI_HOST], *as = ci->val[FW__CI_HOSTADDR],
               *ps = ci->val[FW__CI_PORT];
    size_t n = nonempty(as) ? count_items(as) : nonempty(hs) ? count_items(hs) : 1;
    if (nonempty(as) && nonempty(hs) && count_items(hs) != n) {
        fw__ci_err_set(err, errlen, "could not match %zu host names to %zu hostaddr values",
                       count_items(hs), n);
        return FW_EINVAL;
    }
    size_t np = nonempty(ps) ? count_items(ps) : 0;
    if (np > 1 && np != n) {
        fw__ci_err_set(err, errlen, "could not match %zu port numbers to %zu hosts", np, n);
        return FW_EINVAL;
    }
    if ((ci->hosts = fw__calloc(n, sizeof(*ci->hosts))) == NULL)
        return FW_ENOMEM;
    ci->nhosts = n;
    for (size_t i = 0; i < n; i++) {
        fw__conninfo_host_t *h = &ci->hosts[i];
        char *addr = nonempty(as) ? item(as, i) : fw__strdup("");
        h->host = nonempty(hs) ? item(hs, i) : fw__strdup("");
        h->port = np == 0 ? fw__strdup("") : item(ps, np == 1 ? 0 : i);
        if (addr == NULL || h->host == NULL || h->port == NULL) {
            fw__free(addr);
            return FW_ENOMEM;
        }
        if (addr[0] != '\0') {
            h->hostaddr = addr;
            h->type = FW__HOST_ADDRESS;
            if (!numeric_address(addr)) {
                fw__ci_err_set(err, errlen,
                               "could not parse network address \"%s\": not a numeric IPv4 or IPv6 "
                               "address",
                               fw__ci_quote(qb, addr));
                return FW_EINVAL;
            }
        } else {
            fw__free(addr);
            if (h->host[0] == '\0') {
                fw__free(h->host);
                if ((h->host = fw__strdup(FW__CONNINFO_DEFAULT_SOCKET_DIR)) == NULL)
                    return FW_ENOMEM;
            }
            /* libpq's is_unixsock_path: an absolute path, or '@' for Linux's abstract names */
            h->type = h->host[0] == '/' || h->host[0] == '@' ? FW__HOST_UNIX : FW__HOST_NAME;
        }
        int port = FW__CONNINFO_DEFAULT_PORT;
        if (h->port[0] != '\0') {
            if (!parse_int(h->port, &port)) {
                fw__ci_err_set(err, errlen,
                               "invalid integer value \"%s\" for connection option \"port\"",
                               fw__ci_quote(qb, h->port));
                return FW_EINVAL;
            }
            if (port < 1 || port > 65535) {
                fw__ci_err_set(err, errlen, "invalid port number: \"%s\"",
                               fw__ci_quote(qb, h->port));
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
    char qb[FW__CI_QBUF];
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
                fw__ci_err_set(
                    err, errlen,
                    "negative require_auth method \"%s\" cannot be mixed with non-negative "
                    "methods",
                    fw__ci_quote(qb, m));
                goto fail;
            }
            negated = true;
            m++;
        } else if (negated) {
            fw__ci_err_set(err, errlen,
                           "require_auth method \"%s\" cannot be mixed with negative methods",
                           fw__ci_quote(qb, m));
            goto fail;
        }
        int which = pick(m, names);
        if (which < 0) {
            fw__ci_err_set(err, errlen, "invalid require_auth value: \"%s\"", fw__ci_quote(qb, m));
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
            fw__ci_err_set(err, errlen, "require_auth method \"%s\" is specified more than once",
                           fw__ci_quote(qb, part));
            goto fail;
        }
        fw__free(part);
        continue;
    fail:
        fw__free(part);
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
    char qb[FW__CI_QBUF];
    const char *mins = ci->val[FW__CI_SSL_MIN_PROTOCOL_VERSION];
    const char *maxs = ci->val[FW__CI_SSL_MAX_PROTOCOL_VERSION];
    int lo = tls_version(mins), hi = tls_version(maxs);
    if (lo < 0 || hi < 0) {
        fw__ci_key_t k = lo < 0 ? FW__CI_SSL_MIN_PROTOCOL_VERSION : FW__CI_SSL_MAX_PROTOCOL_VERSION;
        fw__ci_err_set(err, errlen, "invalid %s value: \"%s\"", fw__ci_keys[k].kw,
                       fw__ci_quote(qb, ci->val[k]));
        return FW_EINVAL;
    }
    if (lo != 0 && hi != 0 && lo > hi) {
        fw__ci_err_set(err, errlen, "invalid SSL protocol version range");
        return FW_EINVAL;
    }
    /* fwire never speaks TLS below 1.2 (RELIABILITY "TLS details"): say so rather than raise
     * the floor behind the user's back. */
    if ((lo != 0 && lo < FW__TLS_1_2) || (hi != 0 && hi < FW__TLS_1_2)) {
        fw__ci_key_t k = lo != 0 && lo < FW__TLS_1_2 ? FW__CI_SSL_MIN_PROTOCOL_VERSION
                                                     : FW__CI_SSL_MAX_PROTOCOL_VERSION;
        fw__ci_err_set(err, errlen,
                       "%s value \"%s\" is not supported: fwire requires TLSv1.2 or later",
                       fw__ci_keys[k].kw, fw__ci_quote(qb, ci->val[k]));
        return FW_EINVAL;
    }
    ci->ssl_min_version = lo;
    ci->ssl_max_version = hi;
    return 0;
}

/*
 * PG18's min_protocol_version and max_protocol_version, with libpq 18's values ("3.0", "3.2",
 * "latest"; exact spelling, no "3.1": that version never existed) and defaults: the minimum is
 * 3.0; the maximum is 3.0 as well, so a pooler or an old server that does not know
 * NegotiateProtocolVersion still works, unless the minimum asks for more, when it is the latest.
 * libpq checks these when it connects; here a bad value fails before any socket, and the
 * message lists what is accepted.
 */
static int protocol_version(const fw__conninfo_t *ci, fw__ci_key_t k, uint32_t *out, char *err,
                            size_t errlen)
{
    static const char *const names[] = {"3.0", "3.2", "latest", NULL};
    static const uint32_t versions[] = {FW__PQ_PROTOCOL_3_0, FW__PQ_PROTOCOL_3_2,
                                        FW__PQ_PROTOCOL_LATEST};
    char qb[FW__CI_QBUF];
    int i = pick(ci->val[k], names);
    if (i < 0) {
        fw__ci_err_set(err, errlen, "invalid %s value: \"%s\" (accepted: 3.0, 3.2, latest)",
                       fw__ci_keys[k].kw, fw__ci_quote(qb, ci->val[k]));
        return FW_EINVAL;
    }
    *out = versions[i];
    return 0;
}

static int check_protocol(fw__conninfo_t *ci, char *err, size_t errlen)
{
    ci->min_protocol = FW__PQ_PROTOCOL_3_0;
    if (ci->val[FW__CI_MIN_PROTOCOL_VERSION] != NULL &&
        protocol_version(ci, FW__CI_MIN_PROTOCOL_VERSION, &ci->min_protocol, err, errlen) != 0)
        return FW_EINVAL;
    if (ci->val[FW__CI_MAX_PROTOCOL_VERSION] != NULL) {
        if (protocol_version(ci, FW__CI_MAX_PROTOCOL_VERSION, &ci->max_protocol, err, errlen) != 0)
            return FW_EINVAL;
    } else {
        ci->max_protocol =
            ci->min_protocol > FW__PQ_PROTOCOL_3_0 ? FW__PQ_PROTOCOL_LATEST : FW__PQ_PROTOCOL_3_0;
    }
    if (ci->min_protocol > ci->max_protocol) {
        char qa[FW__CI_QBUF], qb[FW__CI_QBUF];
        fw__ci_err_set(err, errlen,
                       "min_protocol_version \"%s\" is greater than max_protocol_version \"%s\"",
                       fw__ci_quote(qa, ci->val[FW__CI_MIN_PROTOCOL_VERSION]),
                       fw__ci_quote(qb, ci->val[FW__CI_MAX_PROTOCOL_VERSION]));
        return FW_EINVAL;
    }
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
    char qb[FW__CI_QBUF];
    const char *v = ci->val[FW__CI_GSSENCMODE];
    int g;
    if (enum_opt(ci, FW__CI_GSSENCMODE, gss, 0, &g, err, errlen) != 0)
        return FW_EINVAL;
    if (g != 0) {
        fw__ci_err_set(
            err, errlen,
            "gssencmode value \"%s\" is not supported: fwire has no GSSAPI encryption (use "
            "\"disable\")",
            fw__ci_quote(qb, v));
        return FW_EINVAL;
    }
    /* libpq turns compression on for a value starting with '1'. TLS compression leaks secrets
     * (CRIME), so fwire refuses every "on" spelling and any value it cannot read as off. */
    v = ci->val[FW__CI_SSLCOMPRESSION];
    if (v != NULL && pick(v, off) < 0) {
        if (v[0] == '1' || pick(v, on) >= 0)
            fw__ci_err_set(
                err, errlen,
                "sslcompression value \"%s\" is not supported: TLS compression is insecure "
                "(CRIME) and fwire never enables it",
                fw__ci_quote(qb, v));
        else
            fw__ci_err_set(err, errlen, "invalid sslcompression value: \"%s\"",
                           fw__ci_quote(qb, v));
        return FW_EINVAL;
    }
    v = ci->val[FW__CI_CLIENT_ENCODING];
    if (nonempty(v) && !utf8_name(v)) {
        fw__ci_err_set(err, errlen,
                       "client_encoding \"%s\" is not supported: fwire exchanges text in UTF8 only",
                       fw__ci_quote(qb, v));
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
    char qb[FW__CI_QBUF];
    int rc, e;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    ci->finished = false;
    fw__ci_free_hosts(ci);
    if ((rc = build_hosts(ci, err, errlen)) != 0)
        goto out;
    /* libpq: an empty user means the OS user, an empty dbname the user. */
    if (!nonempty(ci->val[FW__CI_USER])) {
        if (ci->os_user == NULL) {
            fw__ci_err_set(err, errlen,
                           "could not determine the local user name: set user or PGUSER");
            rc = FW_EINVAL;
            goto out;
        }
        if ((rc = fw__ci_store(ci, FW__CI_USER, ci->os_user, strlen(ci->os_user),
                               FW__CI_SRC_DEFAULT)) != 0)
            goto out;
    }
    if (!nonempty(ci->val[FW__CI_DBNAME]) &&
        (rc = fw__ci_store(ci, FW__CI_DBNAME, ci->val[FW__CI_USER], strlen(ci->val[FW__CI_USER]),
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
        fw__ci_err_set(err, errlen,
                       "weak sslmode \"%s\" may not be used with sslrootcert=system (use "
                       "\"verify-full\")",
                       fw__ci_quote(qb, ci->val[FW__CI_SSLMODE]));
        goto out;
    }
    if (check_tls(ci, err, errlen) != 0 || check_misc(ci, err, errlen) != 0 ||
        check_protocol(ci, err, errlen) != 0)
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
        fw__ci_err_set(err, errlen, "out of memory");
    if (rc != 0)
        fw__ci_free_hosts(ci);
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
