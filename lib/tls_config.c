/* SPDX-License-Identifier: MIT */
/*
 * The configuration half of the TLS engine (see tls.h for the contract and the policy): judging
 * the settings, then building one attempt's SSL_CTX from them: protocol versions, root
 * certificates (a CA file or the system store), CRL file and directory, client certificate and
 * key (with the key file's permission check). The engine itself is in tls.c.
 *
 * Both of fwire's choices against libpq (see tls.c) are made here, toward failing closed:
 * verification is decided by sslmode alone (no implicit root.crt), and every file the user
 * names must load (libpq silently skips a missing sslcrl or sslcert).
 */
#include "tls.h"
#include "tls_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

/* ---- messages -------------------------------------------------------------------------- */

static const char *errno_text(int e, char *buf, size_t cap)
{
    if (strerror_r(e, buf, cap) != 0)
        snprintf(buf, cap, "errno %d", e);
    return buf;
}

static const char *mode_name(fw__tls_mode_t m)
{
    switch (m) {
    case FW__TLS_MODE_DISABLE:
        return "disable";
    case FW__TLS_MODE_ALLOW:
        return "allow";
    case FW__TLS_MODE_PREFER:
        return "prefer";
    case FW__TLS_MODE_REQUIRE:
        return "require";
    case FW__TLS_MODE_VERIFY_CA:
        return "verify-ca";
    case FW__TLS_MODE_VERIFY_FULL:
        return "verify-full";
    }
    return "unknown";
}

static const char *version_name(int v, char *buf, size_t cap)
{
    switch (v) {
    case 0x0301:
        return "TLSv1";
    case 0x0302:
        return "TLSv1.1";
    case FW__TLS_PROTO_1_2:
        return "TLSv1.2";
    case FW__TLS_PROTO_1_3:
        return "TLSv1.3";
    default:
        snprintf(buf, cap, "0x%04x", (unsigned)v & 0xffffu);
        return buf;
    }
}

/* ---- host names ------------------------------------------------------------------------ */

static bool is_ip_literal(const char *host)
{
    unsigned char a[16];
    return inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;
}

/*
 * A DNS name we can verify: letters, digits, '-', '_' and '.', not starting with '.'.
 * OpenSSL reads a leading '.' as "any subdomain of" and a '*' would be compared literally
 * with a certificate's wildcard, so neither may come from a host setting. 253 is DNS's limit.
 */
static bool verifiable_dns_name(const char *host)
{
    size_t n = strlen(host);
    if (n == 0 || n > 253 || host[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)host[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_' || c == '.';
        if (!ok)
            return false;
    }
    return true;
}

/* ---- configuration --------------------------------------------------------------------- */

void fw__tls_config_init(fw__tls_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->mode = FW__TLS_MODE_PREFER;
    cfg->sni = true;
}

bool fw__tls_is_set(const char *s)
{
    return s != NULL && s[0] != '\0';
}

/* Checks the protocol range; *min and *max get the values to give OpenSSL (max 0: none). */
static int check_versions(const fw__tls_config_t *cfg, int *min, int *max, char *err, size_t errlen)
{
    char b1[16], b2[16];
    *min = cfg->min_version != 0 ? cfg->min_version : FW__TLS_PROTO_1_2;
    *max = cfg->max_version;
    /* TLS 1.0 and 1.1 have no secure cipher suites left (RFC 8996); PostgreSQL 13+ and
     * libpq default to 1.2 as well. There is no way to go lower. */
    if (*min < FW__TLS_PROTO_1_2)
        return fw__tls_msg_fail(
            err, errlen, FW_ECONFIG,
            "ssl_min_protocol_version %s is not allowed: fwire requires TLSv1.2 or "
            "later",
            version_name(*min, b1, sizeof(b1)));
    if (*min > FW__TLS_PROTO_1_3)
        return fw__tls_msg_fail(err, errlen, FW_ECONFIG, "invalid ssl_min_protocol_version %s",
                                version_name(*min, b1, sizeof(b1)));
    if (*max != 0 && (*max < FW__TLS_PROTO_1_2 || *max > FW__TLS_PROTO_1_3))
        return fw__tls_msg_fail(
            err, errlen, FW_ECONFIG,
            "invalid ssl_max_protocol_version %s: fwire supports TLSv1.2 and TLSv1.3",
            version_name(*max, b1, sizeof(b1)));
    if (*max != 0 && *max < *min)
        return fw__tls_msg_fail(
            err, errlen, FW_ECONFIG, "invalid SSL protocol version range: %s to %s",
            version_name(*min, b1, sizeof(b1)), version_name(*max, b2, sizeof(b2)));
    return 0;
}

/* Everything about the settings that can be judged without touching a file. */
static int check_config(const fw__tls_config_t *cfg, bool *host_is_ip, char *err, size_t errlen)
{
    char h[300];
    if (cfg->mode < FW__TLS_MODE_ALLOW || cfg->mode > FW__TLS_MODE_VERIFY_FULL)
        return fw__tls_msg_fail(err, errlen, FW_EINVAL, "sslmode %s does not use TLS",
                                mode_name(cfg->mode));
    bool verify = cfg->mode >= FW__TLS_MODE_VERIFY_CA;
    bool system = fw__tls_is_set(cfg->rootcert) && strcmp(cfg->rootcert, "system") == 0;
    /* With the system store, anyone who can get a public certificate for some name passes
     * chain verification, so only verify-full means anything (libpq 16). */
    if (system && cfg->mode != FW__TLS_MODE_VERIFY_FULL)
        return fw__tls_msg_fail(err, errlen, FW_ECONFIG,
                                "weak sslmode \"%s\" may not be used with sslrootcert=system (use "
                                "\"verify-full\")",
                                mode_name(cfg->mode));
    if (verify && !fw__tls_is_set(cfg->rootcert))
        return fw__tls_msg_fail(
            err, errlen, FW_ECONFIG,
            "sslmode %s requires sslrootcert (a CA file, or \"system\" for the "
            "system's trusted roots); fwire does not read ~/.postgresql/root.crt",
            mode_name(cfg->mode));
    *host_is_ip = fw__tls_is_set(cfg->host) && is_ip_literal(cfg->host);
    if (cfg->mode == FW__TLS_MODE_VERIFY_FULL) {
        if (!fw__tls_is_set(cfg->host))
            return fw__tls_msg_fail(err, errlen, FW_ECONFIG,
                                    "host name must be specified for a verified SSL connection");
        if (!*host_is_ip && !verifiable_dns_name(cfg->host))
            return fw__tls_msg_fail(
                err, errlen, FW_ECONFIG,
                "host name \"%s\" cannot be verified against a certificate: it is "
                "neither an IP address nor a DNS name",
                fw__tls_escape_str(h, sizeof(h), cfg->host));
    }
    if (fw__tls_is_set(cfg->cert) != fw__tls_is_set(cfg->key))
        return fw__tls_msg_fail(err, errlen, FW_ECONFIG,
                                "sslcert and sslkey must be given together (%s is missing)",
                                fw__tls_is_set(cfg->cert) ? "sslkey" : "sslcert");
    return 0;
}

/* Root certificates, then CRLs (only when the chain is verified: a CRL means nothing when
 * nothing is checked, and libpq ignores it there too). */
static int load_trust(SSL_CTX *ctx, const fw__tls_config_t *cfg, char *err, size_t errlen)
{
    char why[256];
    struct stat st;
    if (strcmp(cfg->rootcert, "system") == 0) {
        /* OpenSSL's compiled-in paths, overridden by SSL_CERT_FILE / SSL_CERT_DIR. */
        if (SSL_CTX_set_default_verify_paths(ctx) != 1)
            return fw__tls_msg_fail(err, errlen, FW_ECONFIG,
                                    "could not load the system root certificates: %s",
                                    fw__tls_ssl_reason(why, sizeof(why)));
    } else {
        if (stat(cfg->rootcert, &st) != 0)
            return fw__tls_msg_fail(
                err, errlen, FW_ECONFIG,
                "root certificate file \"%s\" does not exist (%s); provide the "
                "file or change sslmode to disable server certificate verification",
                cfg->rootcert, errno_text(errno, why, sizeof(why)));
        if (SSL_CTX_load_verify_file(ctx, cfg->rootcert) != 1)
            return fw__tls_msg_fail(err, errlen, FW_ECONFIG,
                                    "could not read root certificate file \"%s\": %s",
                                    cfg->rootcert, fw__tls_ssl_reason(why, sizeof(why)));
    }

    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    bool crl = false;
    if (fw__tls_is_set(cfg->crl)) {
        /* Only CRLs are taken from the file: X509_STORE_load_file would also trust any
         * certificate in it, and a revocation list must never add trust. */
        BIO *b = BIO_new_file(cfg->crl, "r");
        if (b == NULL)
            return fw__tls_msg_fail(
                err, errlen, FW_ECONFIG,
                "could not open SSL certificate revocation list file \"%s\": %s", cfg->crl,
                fw__tls_ssl_reason(why, sizeof(why)));
        int n = 0;
        X509_CRL *c;
        while ((c = PEM_read_bio_X509_CRL(b, NULL, NULL, NULL)) != NULL) {
            int ok = X509_STORE_add_crl(store, c);
            X509_CRL_free(c);
            if (ok != 1) {
                BIO_free(b);
                return fw__tls_msg_fail(
                    err, errlen, FW_ECONFIG,
                    "could not use SSL certificate revocation list file \"%s\": %s", cfg->crl,
                    fw__tls_ssl_reason(why, sizeof(why)));
            }
            n++;
        }
        BIO_free(b);
        ERR_clear_error(); /* the end of the file reads as "no start line" */
        if (n == 0)
            return fw__tls_msg_fail(
                err, errlen, FW_ECONFIG,
                "SSL certificate revocation list file \"%s\" contains no PEM CRL", cfg->crl);
        crl = true;
    }
    if (fw__tls_is_set(cfg->crldir)) {
        if (stat(cfg->crldir, &st) != 0 || !S_ISDIR(st.st_mode))
            return fw__tls_msg_fail(
                err, errlen, FW_ECONFIG,
                "SSL certificate revocation list directory \"%s\" is not a directory", cfg->crldir);
        /* A hashed directory: OpenSSL looks CRLs up by issuer when it needs them. */
        if (X509_STORE_load_path(store, cfg->crldir) != 1)
            return fw__tls_msg_fail(
                err, errlen, FW_ECONFIG,
                "could not use SSL certificate revocation list directory \"%s\": %s", cfg->crldir,
                fw__tls_ssl_reason(why, sizeof(why)));
        crl = true;
    }
    /* As libpq: every certificate of the chain must have a CRL from its issuer. */
    if (crl && X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL) != 1)
        return fw__tls_msg_fail(err, errlen, FW_ENOMEM, "could not enable CRL checks");
    return 0;
}

typedef struct key_pass_s {
    const char *password;
    bool asked;
} key_pass_t;

/* OpenSSL's passphrase callback: the configured sslpassword or failure. Never a prompt: the
 * default callback would read the terminal of whatever process embeds fwire. */
static int key_pass_cb(char *buf, int size, int rwflag, void *u)
{
    (void)rwflag;
    key_pass_t *kp = u;
    kp->asked = true;
    if (kp->password == NULL || size <= 0)
        return -1;
    size_t n = strlen(kp->password);
    if (n > (size_t)size) /* a truncated password would only fail later, more obscurely */
        return -1;
    memcpy(buf, kp->password, n);
    return (int)n;
}

/*
 * The client key: opened once, its permissions checked on that descriptor (fstat), and the
 * bytes parsed from the same descriptor, so the file checked is the file read. O_NONBLOCK so
 * a FIFO cannot hang the open; it is refused as not regular anyway.
 */
static int load_key(SSL_CTX *ctx, const fw__tls_config_t *cfg, char *err, size_t errlen)
{
    const char *path = cfg->key;
    char why[256];
    int fd;
    do
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return fw__tls_msg_fail(err, errlen, FW_ECONFIG,
                                "could not open private key file \"%s\": %s", path,
                                errno_text(errno, why, sizeof(why)));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return fw__tls_msg_fail(err, errlen, FW_ECONFIG,
                                "could not stat private key file \"%s\": %s", path,
                                errno_text(e, why, sizeof(why)));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return fw__tls_msg_fail(err, errlen, FW_ECONFIG,
                                "private key file \"%s\" is not a regular file", path);
    }
    /* libpq's rule: others may never read a key; the group may read one owned by root (a
     * system-managed key shared through a group such as ssl-cert). */
    if (st.st_uid == 0 ? (st.st_mode & (S_IWGRP | S_IXGRP | S_IRWXO)) != 0
                       : (st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
        close(fd);
        return fw__tls_msg_fail(err, errlen, FW_ECONFIG,
                                "private key file \"%s\" has group or world access; file must have "
                                "permissions u=rw (0600) or less if owned by the current user, or "
                                "permissions u=rw,g=r (0640) or less if owned by root",
                                path);
    }
    if (st.st_size < 0 || (uint64_t)st.st_size > FW__TLS_KEY_FILE_MAX) {
        close(fd);
        return fw__tls_msg_fail(err, errlen, FW_ECONFIG,
                                "private key file \"%s\" is larger than %u bytes", path,
                                FW__TLS_KEY_FILE_MAX);
    }
    /* One byte more than the size, to notice a file that grew since fstat. */
    size_t cap = (size_t)st.st_size + 1, n = 0;
    uint8_t *buf = OPENSSL_malloc(cap);
    if (buf == NULL) {
        close(fd);
        return fw__tls_msg_fail(err, errlen, FW_ENOMEM, "out of memory reading \"%s\"", path);
    }
    int rerr = 0;
    while (n < cap) {
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            rerr = errno;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (rerr != 0 || n == cap) {
        OPENSSL_clear_free(buf, cap);
        return fw__tls_msg_fail(
            err, errlen, FW_ECONFIG, "could not read private key file \"%s\": %s", path,
            rerr != 0 ? errno_text(rerr, why, sizeof(why)) : "file changed while read");
    }

    key_pass_t kp = {cfg->password, false};
    EVP_PKEY *pk = NULL;
    BIO *b = BIO_new_mem_buf(buf, (int)n);
    if (b != NULL) {
        pk = PEM_read_bio_PrivateKey(b, NULL, key_pass_cb, &kp);
        BIO_free(b);
    }
    OPENSSL_clear_free(buf, cap); /* the key's bytes (maybe unencrypted) */
    if (pk == NULL) {
        fw__tls_ssl_reason(why, sizeof(why));
        if (kp.asked && cfg->password == NULL)
            return fw__tls_msg_fail(
                err, errlen, FW_ECONFIG,
                "private key file \"%s\" is encrypted and no sslpassword was given", path);
        if (kp.asked)
            return fw__tls_msg_fail(
                err, errlen, FW_ECONFIG,
                "could not decrypt private key file \"%s\" with sslpassword: %s", path, why);
        return fw__tls_msg_fail(err, errlen, FW_ECONFIG,
                                "could not load private key file \"%s\": %s", path, why);
    }
    int ok = SSL_CTX_use_PrivateKey(ctx, pk);
    EVP_PKEY_free(pk);
    if (ok != 1 || SSL_CTX_check_private_key(ctx) != 1)
        return fw__tls_msg_fail(
            err, errlen, FW_ECONFIG,
            "certificate file \"%s\" does not match private key file \"%s\": %s", cfg->cert, path,
            fw__tls_ssl_reason(why, sizeof(why)));
    return 0;
}

static int load_client_cert(SSL_CTX *ctx, const fw__tls_config_t *cfg, char *err, size_t errlen)
{
    char why[256];
    struct stat st;
    /* libpq silently goes on without a certificate it cannot find; a certificate the user
     * named and we cannot use is an error here, so a typo is not discovered as "password
     * authentication failed" later. */
    if (stat(cfg->cert, &st) != 0)
        return fw__tls_msg_fail(err, errlen, FW_ECONFIG,
                                "could not open certificate file \"%s\": %s", cfg->cert,
                                errno_text(errno, why, sizeof(why)));
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->cert) != 1)
        return fw__tls_msg_fail(err, errlen, FW_ECONFIG,
                                "could not read certificate file \"%s\": %s", cfg->cert,
                                fw__tls_ssl_reason(why, sizeof(why)));
    return load_key(ctx, cfg, err, errlen);
}

/* ---- the SSL_CTX ----------------------------------------------------------------------- */

int fw__tls_config_check(const fw__tls_config_t *cfg, bool *host_is_ip, int *minv, int *maxv,
                         char *err, size_t errlen)
{
    int rc = check_config(cfg, host_is_ip, err, errlen);
    if (rc == 0)
        rc = check_versions(cfg, minv, maxv, err, errlen);
    return rc;
}

int fw__tls_ctx_new(SSL_CTX **ctxp, const fw__tls_config_t *cfg, int minv, int maxv,
                    SSL_verify_cb verify_cb, char *err, size_t errlen)
{
    int rc;
    *ctxp = NULL;
    /* One SSL_CTX per attempt, as libpq: each connection may name its own files. */
    ERR_clear_error();
    char why[256];
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL)
        return fw__tls_msg_fail(err, errlen, FW_ENOMEM, "could not create SSL context: %s",
                                fw__tls_ssl_reason(why, sizeof(why)));
    /* No compression (CRIME), no renegotiation (a server-initiated renegotiation is an
     * attack surface with no use here), no session cache (one handshake per context). */
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    /* No partial writes: the output BIO takes everything, so SSL_write encrypts all it is
     * given (fw__tls_write bounds that by FW__TLS_OUT_MAX) instead of one record per call. A
     * moving buffer is fine because every byte is copied into the output BIO at once. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (SSL_CTX_set_min_proto_version(ctx, minv) != 1 ||
        (maxv != 0 && SSL_CTX_set_max_proto_version(ctx, maxv) != 1)) {
        rc =
            fw__tls_msg_fail(err, errlen, FW_ECONFIG, "could not set the SSL protocol versions: %s",
                             fw__tls_ssl_reason(why, sizeof(why)));
        goto fail;
    }
    if (cfg->mode >= FW__TLS_MODE_VERIFY_CA) {
        if ((rc = load_trust(ctx, cfg, err, errlen)) != 0)
            goto fail;
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, verify_cb);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    if (fw__tls_is_set(cfg->cert) && (rc = load_client_cert(ctx, cfg, err, errlen)) != 0)
        goto fail;
    *ctxp = ctx;
    return 0;

fail:
    SSL_CTX_free(ctx);
    return rc;
}
