/* SPDX-License-Identifier: MIT */
/*
 * The TLS client engine on memory BIOs (see tls.h for the contract and the policy). Judging
 * the settings and building the SSL_CTX from them is in tls_config.c.
 *
 * The checks follow libpq's fe-secure-openssl.c, with two choices of our own, both toward
 * failing closed: verification is decided by sslmode alone (no implicit root.crt), and every
 * file the user names must load (libpq silently skips a missing sslcrl or sslcert).
 * Every message fwire writes comes from a format string in this file or tls_config.c; anything
 * taken from a certificate or from the user's host name is escaped before it is shown.
 */
#include "tls.h"
#include "tls_int.h"

#include "auth.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

typedef enum tls_state_e {
    ST_HANDSHAKE, /* fw__tls_handshake not yet DONE */
    ST_OPEN,      /* application data both ways */
    ST_CLOSED,    /* the server's close_notify arrived: reads say FW__TLS_CLOSED */
    ST_FAILED     /* sticky: every call returns t->err */
} tls_state_t;

struct fw__tls_s {
    SSL_CTX *ctx;
    SSL *ssl;
    BIO *in;  /* socket -> OpenSSL: reads inq (tls_in.c; the BIO is owned by ssl) */
    fw__tls_in_t inq; /* what fw__tls_feed and fw__tls_feed_view gave, not yet read */
    BIO *out; /* OpenSSL -> socket: fw__tls_out shows this (owned by ssl) */
    tls_state_t state;
    int err;
    bool verify;        /* verify-ca or verify-full: the chain is checked */
    bool check_name;    /* verify-full: the host name is checked */
    bool host_is_ip;    /* the host is an IPv4/IPv6 literal */
    bool shutdown_sent; /* fw__tls_shutdown was called: no more writes */
    char *host;         /* copy of cfg->host (for messages), or NULL */
    /* Captured by the verify callback, for messages: OpenSSL does not keep the server's
     * certificate on the SSL object when its verification fails. */
    X509 *leaf;
    int verify_depth;
    char verify_subject[256];
    char errmsg[512];
};

/* ---- messages -------------------------------------------------------------------------- */

int fw__tls_msg_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* Sticky failure of an engine: every later call returns rc. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int
engine_fail(fw__tls_t *t, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->errmsg, sizeof(t->errmsg), fmt, ap);
    va_end(ap);
    t->err = rc;
    t->state = ST_FAILED;
    return rc;
}

/*
 * Copies bytes from a certificate or the user into dst for a message: printable ASCII stays,
 * anything else (NUL, control bytes, non-ASCII, quote, backslash) becomes \xNN, so a
 * certificate cannot steer a terminal or hide part of its name. Truncated with "..." to cap.
 */
static const char *escape_name(char *dst, size_t cap, const uint8_t *src, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = src[i];
        bool plain = c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
        size_t need = plain ? 1 : 4;
        if (o + need + 4 > cap) { /* room for "..." and the NUL */
            memcpy(dst + o, "...", 3);
            o += 3;
            break;
        }
        if (plain) {
            dst[o++] = (char)c;
        } else {
            dst[o++] = '\\';
            dst[o++] = 'x';
            dst[o++] = hex[c >> 4];
            dst[o++] = hex[c & 15];
        }
    }
    dst[o] = '\0';
    return dst;
}

const char *fw__tls_escape_str(char *dst, size_t cap, const char *s)
{
    return escape_name(dst, cap, (const uint8_t *)s, strlen(s));
}

/* The reason of the oldest error in OpenSSL's queue (the cause rather than its echoes), then
 * clears the queue so it cannot leak into the next connection on this thread. */
const char *fw__tls_ssl_reason(char *buf, size_t cap)
{
    unsigned long e = ERR_get_error();
    ERR_clear_error();
    if (e == 0) {
        snprintf(buf, cap, "no error reported by OpenSSL");
    } else if (ERR_SYSTEM_ERROR(e)) {
        char sys[128];
        if (strerror_r(ERR_GET_REASON(e), sys, sizeof(sys)) != 0)
            snprintf(sys, sizeof(sys), "errno %d", ERR_GET_REASON(e));
        snprintf(buf, cap, "%s", sys);
    } else {
        const char *r = ERR_reason_error_string(e);
        if (r != NULL)
            snprintf(buf, cap, "%s", r);
        else
            snprintf(buf, cap, "OpenSSL error 0x%lx", e);
    }
    return buf;
}

/* ---- the engine ------------------------------------------------------------------------ */

/*
 * Called by OpenSSL for every certificate of the chain. It changes no decision (returns
 * `ok`); it keeps the server's certificate and the first failure for the error message.
 */
static int verify_cb(int ok, X509_STORE_CTX *xs)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
    fw__tls_t *t = ssl != NULL ? SSL_get_app_data(ssl) : NULL;
    if (t == NULL)
        return ok;
    X509 *leaf = X509_STORE_CTX_get0_cert(xs);
    if (t->leaf == NULL && leaf != NULL && X509_up_ref(leaf) == 1)
        t->leaf = leaf;
    if (!ok && t->verify_subject[0] == '\0') {
        X509 *cur = X509_STORE_CTX_get_current_cert(xs);
        char s[256];
        if (cur != NULL && X509_NAME_oneline(X509_get_subject_name(cur), s, sizeof(s)) != NULL)
            fw__tls_escape_str(t->verify_subject, sizeof(t->verify_subject), s);
        else
            snprintf(t->verify_subject, sizeof(t->verify_subject), "(unknown)");
        t->verify_depth = X509_STORE_CTX_get_error_depth(xs);
    }
    return ok;
}

int fw__tls_new(fw__tls_t **tp, const fw__tls_config_t *cfg, char *err, size_t errlen)
{
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (tp == NULL || cfg == NULL)
        return fw__tls_msg_fail(err, errlen, FW_EINVAL, "invalid argument");
    *tp = NULL;

    bool host_is_ip = false;
    int minv, maxv;
    int rc = fw__tls_config_check(cfg, &host_is_ip, &minv, &maxv, err, errlen);
    if (rc != 0)
        return rc;

    fw__tls_t *t = OPENSSL_zalloc(sizeof(*t));
    if (t == NULL)
        return fw__tls_msg_fail(err, errlen, FW_ENOMEM, "out of memory");
    t->verify = cfg->mode >= FW__TLS_MODE_VERIFY_CA;
    t->check_name = cfg->mode == FW__TLS_MODE_VERIFY_FULL;
    t->host_is_ip = host_is_ip;
    t->state = ST_HANDSHAKE;
    if (fw__tls_is_set(cfg->host) && (t->host = OPENSSL_strdup(cfg->host)) == NULL) {
        fw__tls_free(t);
        return fw__tls_msg_fail(err, errlen, FW_ENOMEM, "out of memory");
    }

    char why[256];
    if ((rc = fw__tls_ctx_new(&t->ctx, cfg, minv, maxv, verify_cb, err, errlen)) != 0)
        goto fail;

    t->ssl = SSL_new(t->ctx);
    t->in = fw__tls_in_bio(&t->inq);
    t->out = BIO_new(BIO_s_mem());
    if (t->ssl == NULL || t->in == NULL || t->out == NULL) {
        BIO_free(t->in);
        BIO_free(t->out);
        t->in = t->out = NULL;
        rc = fw__tls_msg_fail(err, errlen, FW_ENOMEM, "out of memory");
        goto fail;
    }
    SSL_set_bio(t->ssl, t->in, t->out); /* the SSL owns both BIOs from here */
    SSL_set_connect_state(t->ssl);
    SSL_set_app_data(t->ssl, t);

    if (t->check_name) {
        int ok;
        if (host_is_ip) {
            ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), cfg->host);
        } else {
            /* NO_PARTIAL_WILDCARDS: "f*.example.test" is no wildcard. The subject CN is
             * consulted only when there is no dNSName SAN (OpenSSL's default). */
            SSL_set_hostflags(t->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            ok = SSL_set1_host(t->ssl, cfg->host);
        }
        if (ok != 1) {
            rc = fw__tls_msg_fail(err, errlen, FW_ECONFIG,
                                  "could not set the host name to verify: %s",
                                  fw__tls_ssl_reason(why, sizeof(why)));
            goto fail;
        }
    }
    /* SNI names a host; an IP literal is not allowed there (RFC 6066), and a socket path or
     * an over-long name is not a host name at all. */
    if (cfg->sni && fw__tls_is_set(cfg->host) && !host_is_ip && cfg->host[0] != '/' &&
        cfg->host[0] != '@' && strlen(cfg->host) <= 255 &&
        SSL_set_tlsext_host_name(t->ssl, t->host) != 1) {
        rc = fw__tls_msg_fail(err, errlen, FW_ECONFIG,
                              "could not set SSL Server Name Indication: %s",
                              fw__tls_ssl_reason(why, sizeof(why)));
        goto fail;
    }
    *tp = t;
    return 0;

fail:
    ERR_clear_error();
    fw__tls_free(t);
    return rc;
}

int fw__tls_feed(fw__tls_t *t, const uint8_t *cipher, size_t len)
{
    if (t == NULL || (cipher == NULL && len > 0))
        return FW_EINVAL;
    if (t->state == ST_FAILED)
        return t->err;
    if (!fw__tls_in_append(&t->inq, cipher, len))
        return engine_fail(t, FW_ENOMEM, "out of memory buffering TLS input");
    return 0;
}

int fw__tls_feed_view(fw__tls_t *t, const uint8_t *cipher, size_t len)
{
    if (t == NULL || (cipher == NULL && len > 0))
        return FW_EINVAL;
    if (t->state == ST_FAILED)
        return t->err;
    if (!fw__tls_in_view(&t->inq, cipher, len))
        return engine_fail(t, FW_ENOMEM, "out of memory buffering TLS input");
    return 0;
}

int fw__tls_unlend(fw__tls_t *t)
{
    if (t == NULL || t->state == ST_FAILED)
        return 0;
    if (!fw__tls_in_keep(&t->inq))
        return engine_fail(t, FW_ENOMEM, "out of memory buffering TLS input");
    return 0;
}

/* Names of the certificate for the "does not match" message, like libpq: the first name and
 * how many others were considered. */
static int name_mismatch(fw__tls_t *t)
{
    char host[300], first[200] = "";
    int count = 0;
    bool nul = false, dns_san = false, ip_san = false;
    fw__tls_escape_str(host, sizeof(host), t->host != NULL ? t->host : "");
    if (t->leaf == NULL)
        return engine_fail(t, FW_ETLS, "server certificate does not match host name \"%s\"", host);

    GENERAL_NAMES *gens = X509_get_ext_d2i(t->leaf, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        if (g->type == GEN_DNS) {
            const uint8_t *d = ASN1_STRING_get0_data(g->d.dNSName);
            size_t n = (size_t)ASN1_STRING_length(g->d.dNSName);
            dns_san = true;
            nul = nul || memchr(d, 0, n) != NULL;
            if (count++ == 0)
                escape_name(first, sizeof(first), d, n);
        } else if (g->type == GEN_IPADD) {
            const uint8_t *d = ASN1_STRING_get0_data(g->d.iPAddress);
            ip_san = true;
            int n = ASN1_STRING_length(g->d.iPAddress);
            if (count++ == 0) {
                char a[INET6_ADDRSTRLEN];
                if ((n == 4 && inet_ntop(AF_INET, d, a, sizeof(a)) != NULL) ||
                    (n == 16 && inet_ntop(AF_INET6, d, a, sizeof(a)) != NULL))
                    snprintf(first, sizeof(first), "%s", a);
                else
                    snprintf(first, sizeof(first), "(invalid IP address of %d bytes)", n);
            }
        }
    }
    GENERAL_NAMES_free(gens);
    /* The CN took part for a DNS host on a certificate without dNSName SANs. For an IP host it
     * never does, but it is still the best name to show when there is no SAN at all. */
    if ((!t->host_is_ip && !dns_san) || (t->host_is_ip && count == 0)) {
        X509_NAME *subj = X509_get_subject_name(t->leaf);
        for (int i = -1; (i = X509_NAME_get_index_by_NID(subj, NID_commonName, i)) >= 0;) {
            const ASN1_STRING *cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, i));
            const uint8_t *d = ASN1_STRING_get0_data(cn);
            size_t n = (size_t)ASN1_STRING_length(cn);
            nul = nul || memchr(d, 0, n) != NULL;
            if (count++ == 0)
                escape_name(first, sizeof(first), d, n);
        }
    }
    const char *nul_note = nul ? " (a certificate name contains an embedded null)"
                           : t->host_is_ip && !ip_san
                               ? " (an IP address matches only the certificate's IP address "
                                 "names, and it has none)"
                               : "";
    if (count > 1)
        return engine_fail(t, FW_ETLS,
                           "server certificate for \"%s\" (and %d other name%s) does not match "
                           "host name \"%s\"%s",
                           first, count - 1, count == 2 ? "" : "s", host, nul_note);
    if (count == 1)
        return engine_fail(t, FW_ETLS,
                           "server certificate for \"%s\" does not match host name \"%s\"%s", first,
                           host, nul_note);
    return engine_fail(t, FW_ETLS,
                       "could not get server's host name from server certificate (host name "
                       "\"%s\")",
                       host);
}

static int handshake_failed(fw__tls_t *t)
{
    char why[256];
    /* The verify result is recorded even under SSL_VERIFY_NONE; it decides nothing there. */
    long vr = t->verify ? SSL_get_verify_result(t->ssl) : X509_V_OK;
    if (vr == X509_V_ERR_HOSTNAME_MISMATCH || vr == X509_V_ERR_IP_ADDRESS_MISMATCH) {
        ERR_clear_error();
        return name_mismatch(t);
    }
    if (vr != X509_V_OK) {
        ERR_clear_error();
        return engine_fail(t, FW_ETLS,
                           "server certificate verification failed (sslmode %s): %s (depth %d, "
                           "subject \"%s\")",
                           t->check_name ? "verify-full" : "verify-ca",
                           X509_verify_cert_error_string(vr), t->verify_depth, t->verify_subject);
    }
    return engine_fail(t, FW_ETLS, "SSL handshake failed: %s",
                       fw__tls_ssl_reason(why, sizeof(why)));
}

int fw__tls_handshake(fw__tls_t *t)
{
    if (t == NULL)
        return FW_EINVAL;
    switch (t->state) {
    case ST_HANDSHAKE:
        break;
    case ST_OPEN:
    case ST_CLOSED:
        return FW__TLS_DONE;
    case ST_FAILED:
        return t->err;
    }
    ERR_clear_error(); /* SSL_get_error reads the thread's queue: start it empty */
    int r = SSL_do_handshake(t->ssl);
    if (r == 1) {
        t->state = ST_OPEN;
        return FW__TLS_DONE;
    }
    switch (SSL_get_error(t->ssl, r)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        return FW__TLS_CONTINUE;
    default:
        return handshake_failed(t);
    }
}

const char *fw__tls_error(const fw__tls_t *t)
{
    return t != NULL ? t->errmsg : "";
}

void fw__tls_out(fw__tls_t *t, const uint8_t **ptr, size_t *len)
{
    char *p = NULL;
    long n = t != NULL && t->out != NULL ? BIO_get_mem_data(t->out, &p) : 0;
    *ptr = n > 0 ? (const uint8_t *)p : NULL;
    *len = n > 0 ? (size_t)n : 0;
}

void fw__tls_out_consumed(fw__tls_t *t, size_t n)
{
    /* A memory BIO has no "skip"; reading into scratch space advances it. */
    uint8_t scratch[4096];
    while (t != NULL && t->out != NULL && n > 0) {
        int k = BIO_read(t->out, scratch, n > sizeof(scratch) ? (int)sizeof(scratch) : (int)n);
        if (k <= 0)
            break;
        n -= (size_t)k;
    }
}

/* A failed SSL_read/SSL_write: a fatal alert or a bad record ends the connection. */
static int io_failed(fw__tls_t *t, const char *what)
{
    char why[256];
    return engine_fail(t, FW_ETLS, "SSL error during %s: %s", what,
                       fw__tls_ssl_reason(why, sizeof(why)));
}

long fw__tls_read(fw__tls_t *t, uint8_t *buf, size_t cap)
{
    if (t == NULL || buf == NULL || cap == 0)
        return FW_EINVAL;
    switch (t->state) {
    case ST_HANDSHAKE:
        return FW_ESTATE;
    case ST_CLOSED:
        return FW__TLS_CLOSED;
    case ST_FAILED:
        return t->err;
    case ST_OPEN:
        break;
    }
    size_t n = 0;
    ERR_clear_error();
    if (SSL_read_ex(t->ssl, buf, cap, &n) == 1)
        return (long)n;
    switch (SSL_get_error(t->ssl, 0)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE: /* cannot happen on a memory BIO, which always takes more */
        return 0;
    case SSL_ERROR_ZERO_RETURN:
        t->state = ST_CLOSED;
        return FW__TLS_CLOSED;
    default:
        return io_failed(t, "read");
    }
}

long fw__tls_write(fw__tls_t *t, const uint8_t *plain, size_t len)
{
    if (t == NULL || (plain == NULL && len > 0))
        return FW_EINVAL;
    if (t->state == ST_FAILED)
        return t->err;
    if (t->state != ST_OPEN || t->shutdown_sent)
        return FW_ESTATE;
    size_t queued = BIO_ctrl_pending(t->out);
    if (len == 0 || queued >= FW__TLS_OUT_MAX)
        return 0;
    if (len > FW__TLS_OUT_MAX - queued)
        len = FW__TLS_OUT_MAX - queued;
    size_t n = 0;
    ERR_clear_error();
    if (SSL_write_ex(t->ssl, plain, len, &n) == 1)
        return (long)n;
    switch (SSL_get_error(t->ssl, 0)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        return 0;
    default:
        return io_failed(t, "write");
    }
}

size_t fw__tls_pending(const fw__tls_t *t)
{
    if (t == NULL || t->ssl == NULL)
        return 0;
    int n = SSL_pending(t->ssl);
    return n > 0 ? (size_t)n : 0;
}

bool fw__tls_has_buffered(const fw__tls_t *t)
{
    if (t == NULL || t->ssl == NULL || t->state == ST_FAILED)
        return false;
    return SSL_has_pending(t->ssl) == 1 || t->inq.len > 0;
}

int fw__tls_cb_data(fw__tls_t *t, uint8_t *out, size_t cap, size_t *len, const char **why)
{
    const char *ignored;
    if (why == NULL)
        why = &ignored;
    *why = NULL;
    if (len != NULL)
        *len = 0;
    if (t == NULL || out == NULL || len == NULL) {
        *why = "invalid argument";
        return FW_EINVAL;
    }
    if (t->state != ST_OPEN && t->state != ST_CLOSED) {
        *why = "the TLS handshake is not complete";
        return FW_ESTATE;
    }
    X509 *peer = SSL_get0_peer_certificate(t->ssl);
    if (peer == NULL) {
        *why = "the server sent no certificate";
        return FW_EINVAL;
    }
    int n = i2d_X509(peer, NULL);
    if (n <= 0) {
        *why = "could not encode the server certificate";
        return FW_ENOMEM;
    }
    uint8_t *der = OPENSSL_malloc((size_t)n);
    if (der == NULL) {
        *why = "out of memory";
        return FW_ENOMEM;
    }
    uint8_t *p = der;
    int rc = i2d_X509(peer, &p) == n ? fw__scram_cert_hash(der, (size_t)n, out, cap, len, why)
                                     : FW_ENOMEM;
    if (rc == FW_ENOMEM && *why == NULL)
        *why = "could not encode the server certificate";
    OPENSSL_free(der);
    return rc;
}

const char *fw__tls_version(const fw__tls_t *t)
{
    if (t == NULL || (t->state != ST_OPEN && t->state != ST_CLOSED))
        return NULL;
    return SSL_get_version(t->ssl);
}

const char *fw__tls_cipher(const fw__tls_t *t)
{
    if (t == NULL || (t->state != ST_OPEN && t->state != ST_CLOSED))
        return NULL;
    return SSL_CIPHER_get_name(SSL_get_current_cipher(t->ssl));
}

int fw__tls_shutdown(fw__tls_t *t)
{
    if (t == NULL)
        return FW_EINVAL;
    if (t->state == ST_FAILED)
        return t->err;
    if (t->state == ST_HANDSHAKE)
        return FW_ESTATE;
    if (t->shutdown_sent)
        return 0;
    ERR_clear_error();
    /* 0: our close_notify is queued, the server's has not come; 1: both. Either is done for
     * us: the connection closes the socket after flushing. */
    if (SSL_shutdown(t->ssl) < 0)
        return io_failed(t, "shutdown");
    t->shutdown_sent = true;
    return 0;
}

void fw__tls_free(fw__tls_t *t)
{
    if (t == NULL)
        return;
    SSL_free(t->ssl); /* frees both BIOs */
    fw__tls_in_free(&t->inq);
    SSL_CTX_free(t->ctx);
    X509_free(t->leaf);
    OPENSSL_free(t->host);
    /* The error text may quote names; nothing secret is kept (the key password was used
     * only inside fw__tls_new), but wipe the struct so no pointer outlives it. */
    fw__wipe(t, sizeof(*t));
    OPENSSL_free(t);
}

/* ---- the SSLRequest answer ------------------------------------------------------------- */

int fw__tls_ssl_response(const uint8_t *buf, size_t len, fw__tls_mode_t mode, char *err,
                         size_t errlen)
{
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (mode == FW__TLS_MODE_DISABLE)
        return fw__tls_msg_fail(err, errlen, FW_ESTATE, "sslmode disable sends no SSLRequest");
    if (len == 0)
        return 0;
    if (buf == NULL)
        return fw__tls_msg_fail(err, errlen, FW_EINVAL, "invalid argument");
    switch (buf[0]) {
    case 'S':
        /* Anything after the 'S' arrived before the handshake: it is not protected by TLS,
         * and reading it later as server messages is CVE-2021-23222. */
        if (len > 1)
            return fw__tls_msg_fail(err, errlen, FW_EPROTO_TRAILING,
                                    "received unencrypted data after SSL response");
        return FW__TLS_RESP_TLS;
    case 'N':
        if (mode >= FW__TLS_MODE_REQUIRE)
            return fw__tls_msg_fail(err, errlen, FW_ETLS,
                                    "server does not support SSL, but SSL was required");
        /* The server now waits for our StartupMessage: it cannot have sent more. */
        if (len > 1)
            return fw__tls_msg_fail(err, errlen, FW_EPROTO_TRAILING,
                                    "received unexpected data after SSL response");
        return FW__TLS_RESP_PLAIN;
    case 'E':
        /* Not a word of the server's text: it comes before anything is verified, so a man in
         * the middle could make us show anything (CVE-2024-10977). No fallback either. */
        return fw__tls_msg_fail(err, errlen, FW_ETLS,
                                "server sent an error response during SSL exchange");
    default:
        return fw__tls_msg_fail(err, errlen, FW_EPROTO_BAD_VALUE,
                                "received invalid response to SSL negotiation: 0x%02x", buf[0]);
    }
}
