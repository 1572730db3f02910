/* SPDX-License-Identifier: MIT */
/*
 * The TLS engine against a server emulated here with OpenSSL on memory BIOs. Hermetic: every
 * certificate, key and CRL is made with libcrypto when the binary starts and written to a
 * private temporary directory, and no byte touches a socket. Covers sslmode semantics, host
 * name rules (wildcards, IP SANs, CN fallback, CVE-2009-4034, CVE-2012-0867), chain, expiry and
 * CRL failures, client certificates and libpq's key-permission rule, protocol floor, the read
 * rule (records OpenSSL holds after a feed), close_notify, channel binding data and the
 * SSLRequest answer guard (CVE-2021-23222, CVE-2024-10977).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <sys/stat.h>
#include <unistd.h>

#include "tls.h"

/* ---- temporary files ----------------------------------------------------------------- */

static char tmpdir[64];
static char made[64][160]; /* every file and directory created, removed in reverse */
static size_t nmade;

static const char *path_of(const char *name)
{
    static char buf[8][160];
    static unsigned next;
    char *p = buf[next++ % 8];
    snprintf(p, 160, "%s/%s", tmpdir, name);
    return p;
}

static void remember(const char *path)
{
    assert_true(nmade < sizeof(made) / sizeof(made[0]));
    snprintf(made[nmade++], sizeof(made[0]), "%s", path);
}

static void write_pem_x509(const char *name, X509 *const *certs, size_t n)
{
    const char *p = path_of(name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(PEM_write_X509(f, certs[i]), 1);
    assert_int_equal(fclose(f), 0);
    remember(p);
}

static void write_key(const char *name, EVP_PKEY *key, const char *password, mode_t mode)
{
    const char *p = path_of(name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    if (password != NULL)
        assert_int_equal(PEM_write_PrivateKey(f, key, EVP_aes_256_cbc(), NULL, 0, NULL,
                                              (void *)(uintptr_t)password),
                         1);
    else
        assert_int_equal(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(p, mode), 0);
    remember(p);
}

/* ---- a small PKI, made with libcrypto ------------------------------------------------ */

typedef struct cert_opts_s {
    const char *cn;
    size_t cn_len;       /* 0: strlen(cn) */
    const char *san;     /* X509v3 config syntax: "DNS:a,IP:127.0.0.1" */
    const char *raw_dns; /* one dNSName with exactly raw_dns_len bytes (NUL allowed) */
    size_t raw_dns_len;
    long serial;
    long not_before, not_after; /* seconds from now; both 0: -1 h .. +1 day */
    bool is_ca;
    const char *eku;
} cert_opts_t;

static void add_ext(X509 *x, X509V3_CTX *v, int nid, const char *value)
{
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, v, nid, value);
    assert_non_null(e);
    assert_int_equal(X509_add_ext(x, e, -1), 1);
    X509_EXTENSION_free(e);
}

/* A certificate for `key`, signed by issuer/issuer_key (NULL issuer: self-signed). */
static X509 *make_cert(EVP_PKEY *key, const cert_opts_t *o, X509 *issuer, EVP_PKEY *issuer_key)
{
    X509 *x = X509_new();
    assert_non_null(x);
    assert_int_equal(X509_set_version(x, 2), 1);
    assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), o->serial ? o->serial : 1), 1);
    long nb = o->not_before, na = o->not_after;
    if (nb == 0 && na == 0) {
        nb = -3600;
        na = 86400;
    }
    assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), nb));
    assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), na));
    assert_int_equal(X509_set_pubkey(x, key), 1);
    X509_NAME *name = X509_get_subject_name(x);
    if (o->cn != NULL)
        assert_int_equal(X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_ASC,
                                                    (const unsigned char *)o->cn,
                                                    o->cn_len ? (int)o->cn_len : -1, -1, 0),
                         1);
    assert_int_equal(X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name), 1);
    X509V3_CTX v;
    X509V3_set_ctx(&v, issuer ? issuer : x, x, NULL, NULL, 0);
    add_ext(x, &v, NID_basic_constraints, o->is_ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
    if (o->is_ca)
        add_ext(x, &v, NID_key_usage, "critical,keyCertSign,cRLSign");
    if (o->san != NULL)
        add_ext(x, &v, NID_subject_alt_name, o->san);
    if (o->raw_dns != NULL) {
        /* Built by hand: the config syntax cannot carry a NUL (CVE-2009-4034's shape). */
        GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
        GENERAL_NAME *g = GENERAL_NAME_new();
        ASN1_IA5STRING *s = ASN1_IA5STRING_new();
        assert_true(gens && g && s);
        assert_int_equal(ASN1_STRING_set(s, o->raw_dns, (int)o->raw_dns_len), 1);
        GENERAL_NAME_set0_value(g, GEN_DNS, s);
        assert_true(sk_GENERAL_NAME_push(gens, g) > 0);
        assert_int_equal(X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, 0), 1);
        GENERAL_NAMES_free(gens);
    }
    if (o->eku != NULL)
        add_ext(x, &v, NID_ext_key_usage, o->eku);
    const EVP_MD *md = EVP_PKEY_get_id(issuer_key) == EVP_PKEY_ED25519 ? NULL : EVP_sha256();
    assert_true(X509_sign(x, issuer_key, md) > 0);
    return x;
}

static EVP_PKEY *ca_key, *other_ca_key, *leaf_key, *rsa_key, *ed_key, *client_key;
static X509 *ca, *other_ca, *srv_main, *srv_partial, *srv_ip_in_dns, *srv_cn_only, *srv_cn_and_dns,
    *srv_cn_and_ip, *srv_cn_ip_only, *srv_nul_san, *srv_nul_cn, *srv_expired, *srv_revoked,
    *srv_rsa, *srv_ed, *client_crt, *srv_other;

#define SERIAL_REVOKED 666

static void write_crl(const char *name, const long *serials, size_t n)
{
    X509_CRL *crl = X509_CRL_new();
    assert_non_null(crl);
    assert_int_equal(X509_CRL_set_version(crl, 1), 1);
    assert_int_equal(X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca)), 1);
    ASN1_TIME *now = X509_gmtime_adj(NULL, -60), *next = X509_gmtime_adj(NULL, 86400);
    assert_int_equal(X509_CRL_set1_lastUpdate(crl, now), 1);
    assert_int_equal(X509_CRL_set1_nextUpdate(crl, next), 1);
    for (size_t i = 0; i < n; i++) {
        X509_REVOKED *r = X509_REVOKED_new();
        ASN1_INTEGER *s = ASN1_INTEGER_new();
        assert_true(r && s);
        assert_int_equal(ASN1_INTEGER_set(s, serials[i]), 1);
        assert_int_equal(X509_REVOKED_set_serialNumber(r, s), 1);
        assert_int_equal(X509_REVOKED_set_revocationDate(r, now), 1);
        assert_int_equal(X509_CRL_add0_revoked(crl, r), 1);
        ASN1_INTEGER_free(s);
    }
    ASN1_TIME_free(now);
    ASN1_TIME_free(next);
    assert_int_equal(X509_CRL_sort(crl), 1);
    assert_true(X509_CRL_sign(crl, ca_key, EVP_sha256()) > 0);
    const char *p = path_of(name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_X509_CRL(f, crl), 1);
    assert_int_equal(fclose(f), 0);
    remember(p);
    X509_CRL_free(crl);
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/fwire-tls-XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    remember(tmpdir);

    ca_key = EVP_EC_gen("P-256");
    other_ca_key = EVP_EC_gen("P-256");
    leaf_key = EVP_EC_gen("P-256");
    client_key = EVP_EC_gen("P-256");
    rsa_key = EVP_RSA_gen(2048);
    ed_key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    assert_true(ca_key && other_ca_key && leaf_key && client_key && rsa_key && ed_key);

    ca = make_cert(ca_key, &(cert_opts_t){.cn = "fwire unit CA", .is_ca = true}, NULL, ca_key);
    other_ca = make_cert(other_ca_key, &(cert_opts_t){.cn = "fwire other CA", .is_ca = true}, NULL,
                         other_ca_key);
    srv_main = make_cert(leaf_key,
                         &(cert_opts_t){.cn = "localhost",
                                        .san = "DNS:localhost,DNS:*.example.test,"
                                               "IP:127.0.0.1,IP:::1",
                                        .serial = 100,
                                        .eku = "serverAuth"},
                         ca, ca_key);
    srv_partial = make_cert(
        leaf_key, &(cert_opts_t){.cn = "partial", .san = "DNS:f*.example.test", .serial = 101}, ca,
        ca_key);
    srv_ip_in_dns = make_cert(
        leaf_key, &(cert_opts_t){.cn = "ip-in-dns", .san = "DNS:127.0.0.1", .serial = 102}, ca,
        ca_key);
    srv_cn_only = make_cert(leaf_key, &(cert_opts_t){.cn = "localhost", .serial = 103}, ca, ca_key);
    srv_cn_and_dns = make_cert(
        leaf_key, &(cert_opts_t){.cn = "localhost", .san = "DNS:other.test", .serial = 104}, ca,
        ca_key);
    srv_cn_and_ip =
        make_cert(leaf_key, &(cert_opts_t){.cn = "localhost", .san = "IP:127.0.0.1", .serial = 105},
                  ca, ca_key);
    srv_cn_ip_only =
        make_cert(leaf_key, &(cert_opts_t){.cn = "127.0.0.1", .serial = 106}, ca, ca_key);
    static const char nul_name[] = "evil.test\0.example.test";
    srv_nul_san = make_cert(leaf_key,
                            &(cert_opts_t){.cn = "nul-san",
                                           .raw_dns = nul_name,
                                           .raw_dns_len = sizeof(nul_name) - 1,
                                           .serial = 107},
                            ca, ca_key);
    srv_nul_cn = make_cert(
        leaf_key, &(cert_opts_t){.cn = nul_name, .cn_len = sizeof(nul_name) - 1, .serial = 108}, ca,
        ca_key);
    srv_expired = make_cert(leaf_key,
                            &(cert_opts_t){.cn = "localhost",
                                           .san = "DNS:localhost",
                                           .serial = 109,
                                           .not_before = -10 * 86400,
                                           .not_after = -86400},
                            ca, ca_key);
    srv_revoked = make_cert(
        leaf_key,
        &(cert_opts_t){.cn = "localhost", .san = "DNS:localhost", .serial = SERIAL_REVOKED}, ca,
        ca_key);
    srv_other =
        make_cert(leaf_key, &(cert_opts_t){.cn = "localhost", .san = "DNS:localhost", .serial = 5},
                  other_ca, other_ca_key);
    srv_rsa =
        make_cert(rsa_key, &(cert_opts_t){.cn = "rsa", .san = "DNS:localhost"}, NULL, rsa_key);
    srv_ed =
        make_cert(ed_key, &(cert_opts_t){.cn = "ed25519", .san = "DNS:localhost"}, NULL, ed_key);
    client_crt =
        make_cert(client_key, &(cert_opts_t){.cn = "fw_cert", .serial = 200, .eku = "clientAuth"},
                  ca, ca_key);

    write_pem_x509("ca.pem", &ca, 1);
    write_pem_x509("other-ca.pem", &other_ca, 1);
    write_pem_x509("client.crt", &client_crt, 1);
    write_key("client.key", client_key, NULL, 0600);
    write_key("client-0644.key", client_key, NULL, 0644);
    write_key("client-0640.key", client_key, NULL, 0640);
    write_key("client-0604.key", client_key, NULL, 0604);
    write_key("client-enc.key", client_key, "hunter2", 0600);
    write_key("wrong.key", leaf_key, NULL, 0600);
    const long revoked[] = {SERIAL_REVOKED};
    write_crl("crl.pem", revoked, 1);
    /* A hashed CRL directory, as `openssl rehash` makes it: <issuer hash>.r0 */
    const char *d = path_of("crldir");
    assert_int_equal(mkdir(d, 0700), 0);
    remember(d);
    char hname[64];
    snprintf(hname, sizeof(hname), "crldir/%08lx.r0",
             X509_NAME_hash_ex(X509_get_subject_name(ca), NULL, NULL, NULL));
    write_crl(hname, revoked, 1);
    const char *e = path_of("empty");
    assert_int_equal(mkdir(e, 0700), 0);
    remember(e);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    while (nmade > 0) {
        const char *p = made[--nmade];
        if (unlink(p) != 0)
            rmdir(p);
    }
    X509 *certs[] = {ca,          other_ca,       srv_main,      srv_partial,    srv_ip_in_dns,
                     srv_cn_only, srv_cn_and_dns, srv_cn_and_ip, srv_cn_ip_only, srv_nul_san,
                     srv_nul_cn,  srv_expired,    srv_revoked,   srv_rsa,        srv_ed,
                     client_crt,  srv_other};
    for (size_t i = 0; i < sizeof(certs) / sizeof(certs[0]); i++)
        X509_free(certs[i]);
    EVP_PKEY *keys[] = {ca_key, other_ca_key, leaf_key, rsa_key, ed_key, client_key};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        EVP_PKEY_free(keys[i]);
    return 0;
}

/* ---- the emulated server -------------------------------------------------------------- */

typedef struct srv_opts_s {
    int min_version, max_version; /* 0: OpenSSL's defaults */
    bool old_protocols;           /* security level 0, so TLS 1.0/1.1 can be offered */
    bool want_client_cert;        /* require a client certificate from `ca` */
} srv_opts_t;

typedef struct srv_s {
    SSL_CTX *ctx;
    SSL *ssl;
    BIO *in, *out;
    bool done, failed;
} srv_t;

static void srv_start(srv_t *s, X509 *crt, EVP_PKEY *key, const srv_opts_t *o)
{
    memset(s, 0, sizeof(*s));
    s->ctx = SSL_CTX_new(TLS_server_method());
    assert_non_null(s->ctx);
    assert_int_equal(SSL_CTX_use_certificate(s->ctx, crt), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(s->ctx, key), 1);
    if (o != NULL && o->old_protocols)
        SSL_CTX_set_security_level(s->ctx, 0);
    if (o != NULL && o->min_version)
        assert_int_equal(SSL_CTX_set_min_proto_version(s->ctx, o->min_version), 1);
    if (o != NULL && o->max_version)
        assert_int_equal(SSL_CTX_set_max_proto_version(s->ctx, o->max_version), 1);
    if (o != NULL && o->want_client_cert) {
        assert_int_equal(X509_STORE_add_cert(SSL_CTX_get_cert_store(s->ctx), ca), 1);
        SSL_CTX_set_verify(s->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    s->ssl = SSL_new(s->ctx);
    s->in = BIO_new(BIO_s_mem());
    s->out = BIO_new(BIO_s_mem());
    assert_true(s->ssl && s->in && s->out);
    BIO_set_mem_eof_return(s->in, -1);
    SSL_set_bio(s->ssl, s->in, s->out);
    SSL_set_accept_state(s->ssl);
}

static void srv_free(srv_t *s)
{
    SSL_free(s->ssl);
    SSL_CTX_free(s->ctx);
    ERR_clear_error();
}

/* Everything the server queued, taken out: *len bytes at the returned malloc'd pointer. */
static uint8_t *srv_take(srv_t *s, size_t *len)
{
    size_t n = BIO_ctrl_pending(s->out);
    uint8_t *p = malloc(n + 1);
    assert_non_null(p);
    *len = n > 0 ? (size_t)BIO_read(s->out, p, (int)n) : 0;
    assert_int_equal(*len, n);
    return p;
}

static void to_server(fw__tls_t *t, srv_t *s)
{
    const uint8_t *p;
    size_t n;
    fw__tls_out(t, &p, &n);
    if (n > 0) {
        assert_int_equal(BIO_write(s->in, p, (int)n), (int)n);
        fw__tls_out_consumed(t, n);
    }
    fw__tls_out(t, &p, &n);
    assert_int_equal(n, 0);
}

static void to_engine(srv_t *s, fw__tls_t *t)
{
    size_t n;
    uint8_t *p = srv_take(s, &n);
    if (n > 0)
        assert_int_equal(fw__tls_feed(t, p, n), 0);
    free(p);
}

static void srv_step(srv_t *s)
{
    if (s->done || s->failed)
        return;
    ERR_clear_error();
    int r = SSL_do_handshake(s->ssl);
    if (r == 1)
        s->done = true;
    else if (SSL_get_error(s->ssl, r) != SSL_ERROR_WANT_READ)
        s->failed = true;
    ERR_clear_error();
}

/* Runs the handshake to its end; returns what fw__tls_handshake returned last. */
static int pump_handshake(fw__tls_t *t, srv_t *s)
{
    int r = FW__TLS_CONTINUE;
    for (int i = 0; i < 20 && r == FW__TLS_CONTINUE; i++) {
        r = fw__tls_handshake(t);
        to_server(t, s);
        srv_step(s);
        to_engine(s, t);
    }
    assert_int_not_equal(r, FW__TLS_CONTINUE);
    return r;
}

static fw__tls_t *engine(const fw__tls_config_t *c)
{
    fw__tls_t *t = NULL;
    char err[512];
    int rc = fw__tls_new(&t, c, err, sizeof(err));
    if (rc != 0)
        fail_msg("fw__tls_new: %s: %s", fw_err_name(rc), err);
    return t;
}

/*
 * One connection attempt: fw__tls_new, then the handshake against crt/key. Returns the
 * fw__tls_new error, or the handshake result; msg gets the message.
 */
static int attempt(const fw__tls_config_t *c, X509 *crt, EVP_PKEY *key, const srv_opts_t *so,
                   char *msg, size_t cap)
{
    fw__tls_t *t = NULL;
    msg[0] = '\0';
    int rc = fw__tls_new(&t, c, msg, cap);
    if (rc != 0) {
        assert_null(t);
        return rc;
    }
    srv_t s;
    srv_start(&s, crt, key, so);
    rc = pump_handshake(t, &s);
    if (rc == FW__TLS_DONE)
        assert_true(s.done);
    else
        assert_int_equal(rc, FW_ETLS);
    snprintf(msg, cap, "%s", fw__tls_error(t));
    fw__tls_free(t);
    srv_free(&s);
    return rc;
}

static fw__tls_config_t cfg_mode(fw__tls_mode_t mode, const char *host)
{
    fw__tls_config_t c;
    fw__tls_config_init(&c);
    c.mode = mode;
    c.host = host;
    if (mode >= FW__TLS_MODE_VERIFY_CA)
        c.rootcert = path_of("ca.pem");
    return c;
}

/* verify-full against `crt` for `host`: FW__TLS_DONE or the error, message in msg. */
static int full(const char *host, X509 *crt, char *msg, size_t cap)
{
    fw__tls_config_t c = cfg_mode(FW__TLS_MODE_VERIFY_FULL, host);
    return attempt(&c, crt, leaf_key, NULL, msg, cap);
}

#define assert_contains(hay, needle)                                     \
    do {                                                                 \
        if (strstr((hay), (needle)) == NULL)                             \
            fail_msg("\"%s\" does not contain \"%s\"", (hay), (needle)); \
    } while (0)

#define assert_full_ok(host, crt)                                                           \
    do {                                                                                    \
        char m_[512];                                                                       \
        int r_ = full((host), (crt), m_, sizeof(m_));                                       \
        if (r_ != FW__TLS_DONE)                                                             \
            fail_msg("host %s: expected success, got %s: %s", (host), fw_err_name(r_), m_); \
    } while (0)

#define assert_full_fails(host, crt)                                                \
    do {                                                                            \
        char m_[512];                                                               \
        int r_ = full((host), (crt), m_, sizeof(m_));                               \
        if (r_ != FW_ETLS)                                                          \
            fail_msg("host %s: expected FW_ETLS, got %s", (host), fw_err_name(r_)); \
        assert_contains(m_, "does not match host name");                            \
    } while (0)

/* ---- sslmode and verification ---------------------------------------------------------- */

static void test_require_encrypts_without_verifying_the_chain(void **state)
{
    (void)state;
    /* A certificate from a CA we do not know, for a name we did not ask for: require
     * accepts it (libpq without root.crt), and so do prefer and allow. */
    const fw__tls_mode_t modes[] = {FW__TLS_MODE_ALLOW, FW__TLS_MODE_PREFER, FW__TLS_MODE_REQUIRE};
    for (size_t i = 0; i < 3; i++) {
        fw__tls_config_t c = cfg_mode(modes[i], "db.invalid");
        fw__tls_t *t = engine(&c);
        assert_null(fw__tls_version(t));
        srv_t s;
        srv_start(&s, srv_other, leaf_key, NULL);
        assert_int_equal(pump_handshake(t, &s), FW__TLS_DONE);
        assert_string_equal(fw__tls_version(t), "TLSv1.3");
        assert_non_null(fw__tls_cipher(t));
        assert_string_equal(fw__tls_error(t), "");
        fw__tls_free(t);
        srv_free(&s);
    }
}

static void test_require_ignores_a_configured_root_certificate(void **state)
{
    (void)state;
    /* Decision 1: only verify-* verifies. libpq would act as verify-ca here. */
    fw__tls_config_t c = cfg_mode(FW__TLS_MODE_REQUIRE, "localhost");
    c.rootcert = path_of("other-ca.pem");
    char m[512];
    assert_int_equal(attempt(&c, srv_main, leaf_key, NULL, m, sizeof(m)), FW__TLS_DONE);
}

static void test_verify_full_accepts_every_name_in_the_certificate(void **state)
{
    (void)state;
    assert_full_ok("localhost", srv_main);
    assert_full_ok("LocalHost", srv_main); /* DNS names compare case-insensitively */
    assert_full_ok("127.0.0.1", srv_main);
    assert_full_ok("::1", srv_main);
    assert_full_ok("0:0:0:0:0:0:0:1", srv_main); /* compared as bytes, not text */
}

static void test_verify_full_with_a_wrong_name_names_the_certificate_and_the_host(void **state)
{
    (void)state;
    char m[512];
    assert_int_equal(full("db1", srv_main, m, sizeof(m)), FW_ETLS);
    assert_string_equal(m, "server certificate for \"localhost\" (and 3 other names) does not "
                           "match host name \"db1\"");
    assert_int_equal(full("other.test", srv_cn_only, m, sizeof(m)), FW_ETLS);
    assert_string_equal(m, "server certificate for \"localhost\" does not match host name "
                           "\"other.test\"");
    assert_int_equal(full("127.0.0.2", srv_main, m, sizeof(m)), FW_ETLS);
    assert_string_equal(m, "server certificate for \"localhost\" (and 3 other names) does not "
                           "match host name \"127.0.0.2\"");
}

static void test_wildcard_covers_exactly_one_leftmost_label(void **state)
{
    (void)state;
    assert_full_ok("a.example.test", srv_main);
    assert_full_ok("DB-1.Example.Test", srv_main);
    assert_full_fails("a.b.example.test", srv_main);
    assert_full_fails("example.test", srv_main);
    assert_full_fails("aexample.test", srv_main);
}

static void test_partial_wildcard_never_matches(void **state)
{
    (void)state;
    assert_full_fails("foo.example.test", srv_partial);
    assert_full_fails("f.example.test", srv_partial);
    /* A host that spells the pattern cannot be configured for verification at all. */
    char m[512];
    assert_int_equal(full("f*.example.test", srv_partial, m, sizeof(m)), FW_ECONFIG);
    assert_contains(m, "cannot be verified");
}

static void test_ip_host_matches_only_an_ip_san(void **state)
{
    (void)state;
    char m[512];
    /* A dNSName "127.0.0.1" is not an IP identity (libpq accepts it; fwire does not). */
    assert_int_equal(full("127.0.0.1", srv_ip_in_dns, m, sizeof(m)), FW_ETLS);
    assert_string_equal(m, "server certificate for \"127.0.0.1\" does not match host name "
                           "\"127.0.0.1\" (an IP address matches only the certificate's IP "
                           "address names, and it has none)");
    /* Nor is a CN "127.0.0.1": OpenSSL never consults the CN for an IP host (libpq would). */
    assert_int_equal(full("127.0.0.1", srv_cn_ip_only, m, sizeof(m)), FW_ETLS);
    assert_contains(m, "server certificate for \"127.0.0.1\" does not match host name "
                       "\"127.0.0.1\" (an IP address matches only");
}

static void test_cn_is_used_only_when_no_dns_san_exists(void **state)
{
    (void)state;
    assert_full_ok("localhost", srv_cn_only);
    /* A dNSName SAN exists: the CN "localhost" is ignored (RFC 6125). */
    char m[512];
    assert_int_equal(full("localhost", srv_cn_and_dns, m, sizeof(m)), FW_ETLS);
    assert_string_equal(m, "server certificate for \"other.test\" does not match host name "
                           "\"localhost\"");
    /* Only an IP SAN: none of the host's type, so the CN counts (libpq's rule). */
    assert_full_ok("localhost", srv_cn_and_ip);
}

static void test_embedded_nul_in_a_name_never_matches_cve_2009_4034(void **state)
{
    (void)state;
    char m[512];
    X509 *certs[] = {srv_nul_san, srv_nul_cn};
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(full("evil.test", certs[i], m, sizeof(m)), FW_ETLS);
        assert_string_equal(m, "server certificate for \"evil.test\\x00.example.test\" does not "
                               "match host name \"evil.test\" (a certificate name contains an "
                               "embedded null)");
        assert_full_fails("example.test", certs[i]);
    }
}

/* A DNS name of exactly len characters, labels of 15 letters; `tweak` changes the character
 * at index 32 (the 33rd), the first one a 32-byte truncation would not see. */
static void long_name(char *out, size_t len, bool tweak)
{
    for (size_t i = 0; i < len; i++)
        out[i] = i % 16 == 15 ? '.' : (char)('a' + (i % 16));
    out[len - 1] = 'z';
    if (tweak)
        out[32] = out[32] == 'q' ? 'r' : 'q';
    out[len] = '\0';
}

static void test_long_names_compare_in_full_cve_2012_0867(void **state)
{
    (void)state;
    const size_t lens[] = {31, 32, 33, 64, 253, 255};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        size_t len = lens[i];
        char name[300], other[300], san[310];
        long_name(name, len, false);
        snprintf(san, sizeof(san), "DNS:%s", name);
        /* A name of 32 or fewer: the host is the name plus more; else differs at index 32. */
        if (len <= 32)
            snprintf(other, sizeof(other), "%.64s.evil.test", name);
        else
            long_name(other, len, true);
        X509 *by_san = make_cert(leaf_key, &(cert_opts_t){.cn = "x", .san = san}, ca, ca_key);
        /* The CN is capped at 64 characters by X.520 (OpenSSL refuses longer). */
        X509 *by_cn =
            len <= 64 ? make_cert(leaf_key, &(cert_opts_t){.cn = name}, ca, ca_key) : NULL;
        char m[512];
        if (len <= 253) {
            assert_full_ok(name, by_san);
            assert_full_fails(other, by_san);
            if (by_cn != NULL) {
                assert_full_ok(name, by_cn);
                assert_full_fails(other, by_cn);
            }
        } else {
            /* Longer than DNS allows: refused before connecting, never compared. */
            assert_int_equal(full(name, by_san, m, sizeof(m)), FW_ECONFIG);
            char prefix[300];
            snprintf(prefix, sizeof(prefix), "%.253s", name);
            assert_full_fails(prefix, by_san);
        }
        X509_free(by_san);
        X509_free(by_cn);
    }
}

static void test_verify_ca_checks_the_chain_but_not_the_name(void **state)
{
    (void)state;
    char m[512];
    fw__tls_config_t c = cfg_mode(FW__TLS_MODE_VERIFY_CA, "db.invalid");
    assert_int_equal(attempt(&c, srv_main, leaf_key, NULL, m, sizeof(m)), FW__TLS_DONE);
    c.rootcert = path_of("other-ca.pem");
    assert_int_equal(attempt(&c, srv_main, leaf_key, NULL, m, sizeof(m)), FW_ETLS);
    assert_contains(m, "server certificate verification failed (sslmode verify-ca): unable to "
                       "get local issuer certificate (depth 0, subject \"/CN=localhost\")");
    /* verify-full with the wrong CA fails on the chain first. */
    c = cfg_mode(FW__TLS_MODE_VERIFY_FULL, "localhost");
    c.rootcert = path_of("other-ca.pem");
    assert_int_equal(attempt(&c, srv_main, leaf_key, NULL, m, sizeof(m)), FW_ETLS);
    assert_contains(m, "(sslmode verify-full): unable to get local issuer certificate");
}

static void test_expired_certificate_fails_verify_ca(void **state)
{
    (void)state;
    char m[512];
    fw__tls_config_t c = cfg_mode(FW__TLS_MODE_VERIFY_CA, "localhost");
    assert_int_equal(attempt(&c, srv_expired, leaf_key, NULL, m, sizeof(m)), FW_ETLS);
    assert_contains(m, "certificate has expired");
    /* require does not look. */
    c = cfg_mode(FW__TLS_MODE_REQUIRE, "localhost");
    assert_int_equal(attempt(&c, srv_expired, leaf_key, NULL, m, sizeof(m)), FW__TLS_DONE);
}

static void test_crl_revoking_the_server_certificate_fails(void **state)
{
    (void)state;
    char m[512];
    for (int dir = 0; dir < 2; dir++) {
        fw__tls_config_t c = cfg_mode(FW__TLS_MODE_VERIFY_FULL, "localhost");
        if (dir)
            c.crldir = path_of("crldir");
        else
            c.crl = path_of("crl.pem");
        assert_int_equal(attempt(&c, srv_revoked, leaf_key, NULL, m, sizeof(m)), FW_ETLS);
        assert_contains(m, "certificate revoked");
        /* The same CRL lets an unrevoked certificate through (the CA itself, a trust anchor,
         * needs no CRL). */
        assert_int_equal(attempt(&c, srv_main, leaf_key, NULL, m, sizeof(m)), FW__TLS_DONE);
    }
    /* Without the CRL the revoked certificate passes: the test above is the CRL's doing. */
    fw__tls_config_t c = cfg_mode(FW__TLS_MODE_VERIFY_FULL, "localhost");
    assert_int_equal(attempt(&c, srv_revoked, leaf_key, NULL, m, sizeof(m)), FW__TLS_DONE);
}

static void test_sslrootcert_system_uses_ssl_cert_file(void **state)
{
    (void)state;
    char m[512];
    const char *old_file = getenv("SSL_CERT_FILE"), *old_dir = getenv("SSL_CERT_DIR");
    char keep_file[256] = "", keep_dir[256] = "";
    if (old_file)
        snprintf(keep_file, sizeof(keep_file), "%s", old_file);
    if (old_dir)
        snprintf(keep_dir, sizeof(keep_dir), "%s", old_dir);
    assert_int_equal(setenv("SSL_CERT_DIR", path_of("empty"), 1), 0);

    fw__tls_config_t c = cfg_mode(FW__TLS_MODE_VERIFY_FULL, "localhost");
    c.rootcert = "system";
    assert_int_equal(setenv("SSL_CERT_FILE", path_of("ca.pem"), 1), 0);
    assert_int_equal(attempt(&c, srv_main, leaf_key, NULL, m, sizeof(m)), FW__TLS_DONE);
    assert_int_equal(setenv("SSL_CERT_FILE", path_of("other-ca.pem"), 1), 0);
    assert_int_equal(attempt(&c, srv_main, leaf_key, NULL, m, sizeof(m)), FW_ETLS);
    assert_contains(m, "unable to get local issuer certificate");
    /* Anything weaker than verify-full is refused with the system store (libpq 16). */
    const fw__tls_mode_t weak[] = {FW__TLS_MODE_PREFER, FW__TLS_MODE_REQUIRE,
                                   FW__TLS_MODE_VERIFY_CA};
    for (size_t i = 0; i < 3; i++) {
        c.mode = weak[i];
        assert_int_equal(attempt(&c, srv_main, leaf_key, NULL, m, sizeof(m)), FW_ECONFIG);
        assert_contains(m, "may not be used with sslrootcert=system");
    }

    if (old_file)
        setenv("SSL_CERT_FILE", keep_file, 1);
    else
        unsetenv("SSL_CERT_FILE");
    if (old_dir)
        setenv("SSL_CERT_DIR", keep_dir, 1);
    else
        unsetenv("SSL_CERT_DIR");
}

static void test_configuration_errors_come_before_any_connection(void **state)
{
    (void)state;
    static const struct {
        fw__tls_mode_t mode;
        const char *host, *root, *crl, *crldir, *cert, *key;
        int minv, maxv, rc;
        const char *msg;
    } cases[] = {
        {FW__TLS_MODE_VERIFY_FULL, "localhost", NULL, NULL, NULL, NULL, NULL, 0, 0, FW_ECONFIG,
         "sslmode verify-full requires sslrootcert"},
        {FW__TLS_MODE_VERIFY_CA, "localhost", "", NULL, NULL, NULL, NULL, 0, 0, FW_ECONFIG,
         "sslmode verify-ca requires sslrootcert"},
        {FW__TLS_MODE_VERIFY_FULL, NULL, "ca.pem", NULL, NULL, NULL, NULL, 0, 0, FW_ECONFIG,
         "host name must be specified for a verified SSL connection"},
        {FW__TLS_MODE_VERIFY_FULL, ".example.test", "ca.pem", NULL, NULL, NULL, NULL, 0, 0,
         FW_ECONFIG, "cannot be verified"},
        {FW__TLS_MODE_VERIFY_CA, "x", "missing.pem", NULL, NULL, NULL, NULL, 0, 0, FW_ECONFIG,
         "root certificate file \"/"},
        {FW__TLS_MODE_VERIFY_CA, "x", "client.key", NULL, NULL, NULL, NULL, 0, 0, FW_ECONFIG,
         "could not read root certificate file"},
        {FW__TLS_MODE_VERIFY_CA, "x", "ca.pem", "missing.crl", NULL, NULL, NULL, 0, 0, FW_ECONFIG,
         "could not open SSL certificate revocation list file"},
        {FW__TLS_MODE_VERIFY_CA, "x", "ca.pem", "ca.pem", NULL, NULL, NULL, 0, 0, FW_ECONFIG,
         "contains no PEM CRL"},
        {FW__TLS_MODE_VERIFY_CA, "x", "ca.pem", NULL, "crl.pem", NULL, NULL, 0, 0, FW_ECONFIG,
         "is not a directory"},
        {FW__TLS_MODE_REQUIRE, "x", NULL, NULL, NULL, "client.crt", NULL, 0, 0, FW_ECONFIG,
         "sslcert and sslkey must be given together (sslkey is missing)"},
        {FW__TLS_MODE_REQUIRE, "x", NULL, NULL, NULL, "missing.crt", "client.key", 0, 0, FW_ECONFIG,
         "could not open certificate file"},
        {FW__TLS_MODE_REQUIRE, "x", NULL, NULL, NULL, "client.key", "client.key", 0, 0, FW_ECONFIG,
         "could not read certificate file"},
        {FW__TLS_MODE_REQUIRE, "x", NULL, NULL, NULL, "client.crt", "wrong.key", 0, 0, FW_ECONFIG,
         "does not match private key file"},
        {FW__TLS_MODE_REQUIRE, "x", NULL, NULL, NULL, "client.crt", "ca.pem", 0, 0, FW_ECONFIG,
         "has group or world access"},
        {FW__TLS_MODE_REQUIRE, "x", NULL, NULL, NULL, NULL, NULL, 0x0302, 0, FW_ECONFIG,
         "ssl_min_protocol_version TLSv1.1 is not allowed"},
        {FW__TLS_MODE_REQUIRE, "x", NULL, NULL, NULL, NULL, NULL, 0x0301, 0, FW_ECONFIG,
         "TLSv1 is not allowed"},
        {FW__TLS_MODE_REQUIRE, "x", NULL, NULL, NULL, NULL, NULL, 0x0304, 0x0303, FW_ECONFIG,
         "invalid SSL protocol version range: TLSv1.3 to TLSv1.2"},
        {FW__TLS_MODE_REQUIRE, "x", NULL, NULL, NULL, NULL, NULL, 0, 0x0302, FW_ECONFIG,
         "invalid ssl_max_protocol_version TLSv1.1"},
        {FW__TLS_MODE_DISABLE, "x", NULL, NULL, NULL, NULL, NULL, 0, 0, FW_EINVAL,
         "sslmode disable does not use TLS"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fw__tls_config_t c;
        fw__tls_config_init(&c);
        char root[160] = "", crl[160] = "", crldir[160] = "", cert[160] = "", key[160] = "";
        c.mode = cases[i].mode;
        c.host = cases[i].host;
        if (cases[i].root != NULL) {
            snprintf(root, sizeof(root), "%s", cases[i].root[0] ? path_of(cases[i].root) : "");
            c.rootcert = root;
        }
        if (cases[i].crl != NULL) {
            snprintf(crl, sizeof(crl), "%s", path_of(cases[i].crl));
            c.crl = crl;
        }
        if (cases[i].crldir != NULL) {
            snprintf(crldir, sizeof(crldir), "%s", path_of(cases[i].crldir));
            c.crldir = crldir;
        }
        if (cases[i].cert != NULL) {
            snprintf(cert, sizeof(cert), "%s", path_of(cases[i].cert));
            c.cert = cert;
        }
        if (cases[i].key != NULL) {
            snprintf(key, sizeof(key), "%s", path_of(cases[i].key));
            c.key = key;
        }
        c.min_version = cases[i].minv;
        c.max_version = cases[i].maxv;
        fw__tls_t *t = (fw__tls_t *)&c; /* must be reset to NULL on failure */
        char m[512];
        int rc = fw__tls_new(&t, &c, m, sizeof(m));
        if (rc != cases[i].rc)
            fail_msg("case %zu: expected %s, got %s: %s", i, fw_err_name(cases[i].rc),
                     fw_err_name(rc), m);
        assert_null(t);
        assert_contains(m, cases[i].msg);
    }
    /* NULL arguments */
    fw__tls_config_t c = cfg_mode(FW__TLS_MODE_REQUIRE, "x");
    fw__tls_t *t;
    assert_int_equal(fw__tls_new(NULL, &c, NULL, 0), FW_EINVAL);
    assert_int_equal(fw__tls_new(&t, NULL, NULL, 0), FW_EINVAL);
    /* the message buffer is optional, and always terminated when given */
    c.min_version = 0x0300;
    assert_int_equal(fw__tls_new(&t, &c, NULL, 0), FW_ECONFIG);
    char tiny[8];
    assert_int_equal(fw__tls_new(&t, &c, tiny, sizeof(tiny)), FW_ECONFIG);
    assert_int_equal(strlen(tiny), sizeof(tiny) - 1);
}

/* ---- client certificates and keys ----------------------------------------------------- */

static fw__tls_config_t cfg_client(const char *key)
{
    fw__tls_config_t c = cfg_mode(FW__TLS_MODE_VERIFY_FULL, "localhost");
    static char cert[160], keyp[160];
    snprintf(cert, sizeof(cert), "%s", path_of("client.crt"));
    snprintf(keyp, sizeof(keyp), "%s", path_of(key));
    c.cert = cert;
    c.key = keyp;
    return c;
}

static void test_client_certificate_and_key_are_presented(void **state)
{
    (void)state;
    fw__tls_config_t c = cfg_client("client.key");
    fw__tls_t *t = engine(&c);
    srv_t s;
    srv_start(&s, srv_main, leaf_key, &(srv_opts_t){.want_client_cert = true});
    assert_int_equal(pump_handshake(t, &s), FW__TLS_DONE);
    assert_true(s.done);
    X509 *peer = SSL_get0_peer_certificate(s.ssl);
    assert_non_null(peer);
    char cn[64];
    assert_true(
        X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn, sizeof(cn)) > 0);
    assert_string_equal(cn, "fw_cert");
    fw__tls_free(t);
    srv_free(&s);

    /* Without one, that server refuses us. Under TLS 1.3 the client's handshake is complete
     * before the server has looked at our (empty) certificate: the refusal is an alert that
     * surfaces on the first read. */
    c = cfg_mode(FW__TLS_MODE_VERIFY_FULL, "localhost");
    t = engine(&c);
    srv_start(&s, srv_main, leaf_key, &(srv_opts_t){.want_client_cert = true});
    assert_int_equal(pump_handshake(t, &s), FW__TLS_DONE);
    assert_true(s.failed);
    uint8_t b[16];
    assert_int_equal(fw__tls_read(t, b, sizeof(b)), FW_ETLS);
    assert_contains(fw__tls_error(t), "certificate required");
    fw__tls_free(t);
    srv_free(&s);
}

static void test_key_file_permissions_follow_libpq(void **state)
{
    (void)state;
    char m[512];
    fw__tls_t *t = NULL;
    fw__tls_config_t c = cfg_client("client-0644.key");
    assert_int_equal(fw__tls_new(&t, &c, m, sizeof(m)), FW_ECONFIG);
    assert_null(t);
    char expect[400];
    snprintf(expect, sizeof(expect),
             "private key file \"%s\" has group or world access; file must have permissions "
             "u=rw (0600) or less if owned by the current user, or permissions u=rw,g=r (0640) "
             "or less if owned by root",
             c.key);
    assert_string_equal(m, expect);

    c = cfg_client("client.key"); /* 0600 */
    assert_int_equal(fw__tls_new(&t, &c, m, sizeof(m)), 0);
    fw__tls_free(t);

    c = cfg_client("client-0604.key"); /* others may never read, whoever owns it */
    assert_int_equal(fw__tls_new(&t, &c, m, sizeof(m)), FW_ECONFIG);
    assert_contains(m, "has group or world access");

    c = cfg_client("empty"); /* a directory */
    assert_int_equal(fw__tls_new(&t, &c, m, sizeof(m)), FW_ECONFIG);
    assert_contains(m, "is not a regular file");
    assert_contains(m, path_of("empty"));

    c = cfg_client("missing.key");
    assert_int_equal(fw__tls_new(&t, &c, m, sizeof(m)), FW_ECONFIG);
    assert_contains(m, "could not open private key file");

    /* 0640: only for a root-owned key. Changing the owner needs root. */
    c = cfg_client("client-0640.key");
    if (geteuid() == 0) {
        assert_int_equal(chown(c.key, 0, 0), 0);
        assert_int_equal(fw__tls_new(&t, &c, m, sizeof(m)), 0);
        fw__tls_free(t);
        assert_int_equal(chown(c.key, 65534, 65534), 0);
        assert_int_equal(fw__tls_new(&t, &c, m, sizeof(m)), FW_ECONFIG);
        assert_contains(m, "has group or world access");
        assert_int_equal(chown(c.key, 0, 0), 0);
    } else {
        assert_int_equal(fw__tls_new(&t, &c, m, sizeof(m)), FW_ECONFIG);
        assert_contains(m, "has group or world access");
    }
}

static void test_encrypted_key_needs_sslpassword_and_never_prompts(void **state)
{
    (void)state;
    char m[512];
    fw__tls_t *t = NULL;
    fw__tls_config_t c = cfg_client("client-enc.key");
    assert_int_equal(fw__tls_new(&t, &c, m, sizeof(m)), FW_ECONFIG);
    assert_contains(m, "is encrypted and no sslpassword was given");
    c.password = "wrong";
    assert_int_equal(fw__tls_new(&t, &c, m, sizeof(m)), FW_ECONFIG);
    assert_contains(m, "could not decrypt private key file");
    c.password = "hunter2";
    assert_int_equal(fw__tls_new(&t, &c, m, sizeof(m)), 0);
    srv_t s;
    srv_start(&s, srv_main, leaf_key, &(srv_opts_t){.want_client_cert = true});
    assert_int_equal(pump_handshake(t, &s), FW__TLS_DONE);
    fw__tls_free(t);
    srv_free(&s);
}

/* ---- protocol versions and SNI ---------------------------------------------------------- */

static void test_tls_1_1_server_is_refused(void **state)
{
    (void)state;
    /* OpenSSL 3 refuses TLS 1.0/1.1 at security level 1 and above, so the emulated server
     * drops to level 0 to offer them; the engine's floor of TLS 1.2 must still refuse. */
    char m[512];
    fw__tls_config_t c = cfg_mode(FW__TLS_MODE_REQUIRE, "localhost");
    int rc = attempt(&c, srv_main, leaf_key,
                     &(srv_opts_t){.old_protocols = true,
                                   .min_version = TLS1_VERSION,
                                   .max_version = TLS1_1_VERSION},
                     m, sizeof(m));
    assert_int_equal(rc, FW_ETLS);
    assert_contains(m, "SSL handshake failed: ");
    assert_contains(m, "protocol version");
}

static void test_protocol_range_is_honoured(void **state)
{
    (void)state;
    fw__tls_config_t c = cfg_mode(FW__TLS_MODE_VERIFY_FULL, "localhost");
    c.max_version = FW__TLS_PROTO_1_2;
    fw__tls_t *t = engine(&c);
    srv_t s;
    srv_start(&s, srv_main, leaf_key, NULL);
    assert_int_equal(pump_handshake(t, &s), FW__TLS_DONE);
    assert_string_equal(fw__tls_version(t), "TLSv1.2");
    fw__tls_free(t);
    srv_free(&s);

    /* A client that wants 1.3 and a server capped at 1.2 do not agree. */
    c.max_version = 0;
    c.min_version = FW__TLS_PROTO_1_3;
    char m[512];
    assert_int_equal(
        attempt(&c, srv_main, leaf_key, &(srv_opts_t){.max_version = TLS1_2_VERSION}, m, sizeof(m)),
        FW_ETLS);
}

/* The name the server saw in SNI, or "" */
static void sni_seen(const fw__tls_config_t *c, char *out, size_t cap)
{
    fw__tls_t *t = engine(c);
    srv_t s;
    srv_start(&s, srv_main, leaf_key, NULL);
    assert_int_equal(pump_handshake(t, &s), FW__TLS_DONE);
    const char *n = SSL_get_servername(s.ssl, TLSEXT_NAMETYPE_host_name);
    snprintf(out, cap, "%s", n ? n : "");
    fw__tls_free(t);
    srv_free(&s);
}

static void test_sni_carries_host_names_only(void **state)
{
    (void)state;
    char n[300];
    fw__tls_config_t c = cfg_mode(FW__TLS_MODE_VERIFY_FULL, "localhost");
    sni_seen(&c, n, sizeof(n));
    assert_string_equal(n, "localhost");
    c.host = "127.0.0.1";
    sni_seen(&c, n, sizeof(n));
    assert_string_equal(n, "");
    c.host = "::1";
    sni_seen(&c, n, sizeof(n));
    assert_string_equal(n, "");
    c.host = "localhost";
    c.sni = false;
    sni_seen(&c, n, sizeof(n));
    assert_string_equal(n, "");
}

/* ---- data ------------------------------------------------------------------------------ */

/* A finished handshake under verify-full, for the data tests. */
static fw__tls_t *open_pair(srv_t *s)
{
    fw__tls_config_t c = cfg_mode(FW__TLS_MODE_VERIFY_FULL, "localhost");
    fw__tls_t *t = engine(&c);
    srv_start(s, srv_main, leaf_key, NULL);
    assert_int_equal(pump_handshake(t, s), FW__TLS_DONE);
    assert_true(s->done);
    /* Whatever the server sent after its handshake (TLS 1.3 session tickets) is not data. */
    uint8_t b[64];
    assert_int_equal(fw__tls_read(t, b, sizeof(b)), 0);
    assert_false(fw__tls_has_buffered(t));
    return t;
}

static void srv_write_records(srv_t *s, const uint8_t *p, size_t n, size_t record)
{
    for (size_t off = 0; off < n; off += record) {
        size_t k = n - off < record ? n - off : record;
        assert_int_equal(SSL_write(s->ssl, p + off, (int)k), (int)k);
    }
}

/* n bytes of a pattern that repeats only over long stretches (the caller frees). */
static uint8_t *pattern(size_t n, size_t mul, size_t div)
{
    uint8_t *p = malloc(n);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * mul + i / div);
    return p;
}

static void test_large_payload_in_many_records_is_drained_by_the_read_loop(void **state)
{
    (void)state;
    srv_t s;
    fw__tls_t *t = open_pair(&s);
    const size_t total = 200 * 1024;
    uint8_t *payload = pattern(total, 7, 251), *got = malloc(total + 1);
    assert_non_null(got);
    srv_write_records(&s, payload, total, 3000); /* 69 records */
    size_t n;
    uint8_t *wire = srv_take(&s, &n);
    assert_true(n > total);
    assert_int_equal(fw__tls_feed(t, wire, n), 0); /* everything in one feed */
    free(wire);

    /* The first read returns one record only: a reader that stopped here and waited for the
     * socket would hang, since the socket has nothing more to say. */
    size_t have = 0;
    long r = fw__tls_read(t, got, total + 1);
    assert_int_equal(r, 3000);
    have += (size_t)r;
    assert_true(fw__tls_has_buffered(t));
    int calls = 1;
    while ((r = fw__tls_read(t, got + have, total + 1 - have)) > 0) {
        have += (size_t)r;
        calls++;
    }
    assert_int_equal(r, 0);
    assert_int_equal(have, total);
    assert_int_equal(calls, 69);
    assert_memory_equal(got, payload, total);
    assert_false(fw__tls_has_buffered(t));
    assert_int_equal(fw__tls_pending(t), 0);
    free(payload);
    free(got);
    fw__tls_free(t);
    srv_free(&s);
}

/* fw__tls_feed_view lends the buffer (no copy: the channel's bulk path); fw__tls_unlend copies
 * what OpenSSL has not read, so the lender may overwrite its buffer; a second feed while bytes
 * are unread keeps them in order. Garbage in the reused buffers would fail the records' MACs. */
static void test_lent_ciphertext_survives_the_lender_reusing_its_buffer(void **state)
{
    (void)state;
    srv_t s;
    fw__tls_t *t = open_pair(&s);
    const size_t total = 40000;
    uint8_t *payload = pattern(total, 13, 97), *got = malloc(total + 1);
    assert_non_null(got);

    srv_write_records(&s, payload, total, 4000); /* 10 records */
    size_t n;
    uint8_t *wire = srv_take(&s, &n);
    assert_int_equal(fw__tls_feed_view(t, wire, n), 0);
    assert_int_equal(fw__tls_read(t, got, total + 1), 4000);
    assert_true(fw__tls_has_buffered(t));
    assert_int_equal(fw__tls_unlend(t), 0);
    memset(wire, 0xA5, n); /* the lender receives into its buffer again */
    size_t have = 4000;
    long r;
    while ((r = fw__tls_read(t, got + have, total + 1 - have)) > 0)
        have += (size_t)r;
    assert_int_equal(r, 0);
    assert_int_equal(have, total);
    assert_memory_equal(got, payload, total);
    assert_int_equal(fw__tls_unlend(t), 0); /* nothing lent: nothing to do */
    free(wire);

    /* Two lent pieces, the first not yet read when the second comes: both kept, in order. */
    srv_write_records(&s, payload, total, 5000);
    wire = srv_take(&s, &n);
    size_t half = n / 2 + 7;
    uint8_t *a = malloc(half), *b = malloc(n - half);
    assert_true(a && b);
    memcpy(a, wire, half);
    memcpy(b, wire + half, n - half);
    assert_int_equal(fw__tls_feed_view(t, a, half), 0);
    assert_int_equal(fw__tls_feed_view(t, b, n - half), 0);
    memset(a, 0x5A, half);
    memset(b, 0x5A, n - half);
    have = 0;
    while ((r = fw__tls_read(t, got + have, total + 1 - have)) > 0)
        have += (size_t)r;
    assert_int_equal(r, 0);
    assert_int_equal(have, total);
    assert_memory_equal(got, payload, total);
    assert_false(fw__tls_has_buffered(t));
    free(a);
    free(b);
    free(wire);
    free(payload);
    free(got);
    fw__tls_free(t);
    srv_free(&s);
}

static void test_one_big_record_read_in_small_pieces_reports_pending_plaintext(void **state)
{
    (void)state;
    srv_t s;
    fw__tls_t *t = open_pair(&s);
    uint8_t payload[16384], got[16384];
    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)i;
    srv_write_records(&s, payload, sizeof(payload), sizeof(payload)); /* one full record */
    to_engine(&s, t);
    assert_int_equal(fw__tls_read(t, got, 1000), 1000);
    /* The rest of the record is decrypted plaintext inside OpenSSL: no socket event will
     * ever announce it (the "> 8 kB records" deadlock). */
    assert_int_equal(fw__tls_pending(t), sizeof(payload) - 1000);
    assert_true(fw__tls_has_buffered(t));
    size_t have = 1000;
    long r;
    while ((r = fw__tls_read(t, got + have, 1000)) > 0)
        have += (size_t)r;
    assert_int_equal(r, 0);
    assert_int_equal(have, sizeof(payload));
    assert_memory_equal(got, payload, sizeof(payload));
    assert_int_equal(fw__tls_pending(t), 0);
    fw__tls_free(t);
    srv_free(&s);
}

static void test_records_split_at_every_byte_arrive_whole(void **state)
{
    (void)state;
    srv_t s;
    fw__tls_t *t = open_pair(&s);
    const char msg[] = "SELECT data FROM v";
    srv_write_records(&s, (const uint8_t *)msg, sizeof(msg) - 1, 5);
    size_t n;
    uint8_t *wire = srv_take(&s, &n);
    char got[64];
    size_t have = 0;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(fw__tls_feed(t, wire + i, 1), 0);
        long r;
        while ((r = fw__tls_read(t, (uint8_t *)got + have, sizeof(got) - have)) > 0)
            have += (size_t)r;
        assert_int_equal(r, 0);
    }
    assert_int_equal(have, sizeof(msg) - 1);
    assert_memory_equal(got, msg, have);
    free(wire);
    fw__tls_free(t);
    srv_free(&s);
}

static void test_write_reaches_the_server_and_is_capped_when_not_flushed(void **state)
{
    (void)state;
    srv_t s;
    fw__tls_t *t = open_pair(&s);
    assert_int_equal(fw__tls_write(t, (const uint8_t *)"Q1", 2), 2);
    assert_int_equal(fw__tls_write(t, (const uint8_t *)"x", 0), 0);
    to_server(t, &s);
    char got[8];
    assert_int_equal(SSL_read(s.ssl, got, sizeof(got)), 2);
    assert_memory_equal(got, "Q1", 2);

    /* A caller that never flushes: at most FW__TLS_OUT_MAX of plaintext, then 0. */
    size_t big = 2 * FW__TLS_OUT_MAX;
    uint8_t *p = calloc(1, big);
    assert_non_null(p);
    long a = fw__tls_write(t, p, big);
    assert_int_equal(a, FW__TLS_OUT_MAX);
    assert_int_equal(fw__tls_write(t, p, big), 0);
    const uint8_t *o;
    size_t on;
    fw__tls_out(t, &o, &on);
    assert_true(on >= FW__TLS_OUT_MAX);
    /* Flushing part of it is enough to go on. */
    fw__tls_out_consumed(t, on / 2);
    size_t left;
    fw__tls_out(t, &o, &left);
    assert_int_equal(left, on - on / 2);
    assert_true(fw__tls_write(t, p, big) > 0);
    free(p);
    fw__tls_free(t);
    srv_free(&s);
}

static void test_close_notify_follows_the_data_before_it(void **state)
{
    (void)state;
    srv_t s;
    fw__tls_t *t = open_pair(&s);
    assert_int_equal(SSL_write(s.ssl, "bye", 3), 3);
    assert_true(SSL_shutdown(s.ssl) >= 0);
    to_engine(&s, t); /* data and close_notify in one feed */
    uint8_t b[16];
    assert_int_equal(fw__tls_read(t, b, sizeof(b)), 3);
    assert_memory_equal(b, "bye", 3);
    assert_int_equal(fw__tls_read(t, b, sizeof(b)), FW__TLS_CLOSED);
    assert_int_equal(fw__tls_read(t, b, sizeof(b)), FW__TLS_CLOSED); /* sticky */
    assert_string_equal(fw__tls_error(t), "");
    /* The binding data stays available for a closed connection's diagnostics. */
    uint8_t cb[64];
    size_t cbl;
    assert_int_equal(fw__tls_cb_data(t, cb, sizeof(cb), &cbl, NULL), 0);
    fw__tls_free(t);
    srv_free(&s);
}

static void test_our_shutdown_sends_close_notify_and_stops_writes(void **state)
{
    (void)state;
    srv_t s;
    fw__tls_t *t = open_pair(&s);
    assert_int_equal(fw__tls_shutdown(t), 0);
    assert_int_equal(fw__tls_shutdown(t), 0); /* idempotent */
    to_server(t, &s);
    char b[8];
    assert_int_equal(SSL_read(s.ssl, b, sizeof(b)), 0);
    assert_int_equal(SSL_get_error(s.ssl, 0), SSL_ERROR_ZERO_RETURN);
    assert_int_equal(fw__tls_write(t, (const uint8_t *)"x", 1), FW_ESTATE);
    ERR_clear_error();
    fw__tls_free(t);
    srv_free(&s);
}

static void test_tampered_record_fails_and_the_failure_is_sticky(void **state)
{
    (void)state;
    srv_t s;
    fw__tls_t *t = open_pair(&s);
    assert_int_equal(SSL_write(s.ssl, "secret", 6), 6);
    size_t n;
    uint8_t *wire = srv_take(&s, &n);
    wire[n - 1] ^= 1;
    assert_int_equal(fw__tls_feed(t, wire, n), 0);
    free(wire);
    uint8_t b[16];
    assert_int_equal(fw__tls_read(t, b, sizeof(b)), FW_ETLS);
    assert_contains(fw__tls_error(t), "SSL error during read: ");
    assert_int_equal(fw__tls_read(t, b, sizeof(b)), FW_ETLS);
    assert_int_equal(fw__tls_write(t, b, 1), FW_ETLS);
    assert_int_equal(fw__tls_feed(t, b, 1), FW_ETLS);
    assert_int_equal(fw__tls_handshake(t), FW_ETLS);
    assert_int_equal(fw__tls_shutdown(t), FW_ETLS);
    assert_false(fw__tls_has_buffered(t));
    fw__tls_free(t);
    srv_free(&s);
}

static void test_plaintext_instead_of_server_hello_fails_the_handshake(void **state)
{
    (void)state;
    fw__tls_config_t c = cfg_mode(FW__TLS_MODE_VERIFY_FULL, "localhost");
    fw__tls_t *t = engine(&c);
    assert_int_equal(fw__tls_handshake(t), FW__TLS_CONTINUE);
    const uint8_t *o;
    size_t on;
    fw__tls_out(t, &o, &on);
    assert_true(on > 0); /* the ClientHello */
    assert_int_equal(o[0], 0x16);
    fw__tls_out_consumed(t, on);
    /* What a man in the middle would inject: AuthenticationOk, ReadyForQuery. */
    static const uint8_t fake[] = {'R', 0, 0, 0, 8, 0, 0, 0, 0, 'Z', 0, 0, 0, 5, 'I'};
    assert_int_equal(fw__tls_feed(t, fake, sizeof(fake)), 0);
    assert_int_equal(fw__tls_handshake(t), FW_ETLS);
    assert_contains(fw__tls_error(t), "SSL handshake failed: ");
    fw__tls_free(t);
}

static void test_calls_out_of_order_are_state_errors(void **state)
{
    (void)state;
    fw__tls_config_t c = cfg_mode(FW__TLS_MODE_REQUIRE, "localhost");
    fw__tls_t *t = engine(&c);
    uint8_t b[8], cb[64];
    size_t cbl = 99;
    const char *why;
    assert_int_equal(fw__tls_read(t, b, sizeof(b)), FW_ESTATE);
    assert_int_equal(fw__tls_write(t, b, 1), FW_ESTATE);
    assert_int_equal(fw__tls_shutdown(t), FW_ESTATE);
    assert_int_equal(fw__tls_cb_data(t, cb, sizeof(cb), &cbl, &why), FW_ESTATE);
    assert_int_equal(cbl, 0);
    assert_non_null(why);
    assert_null(fw__tls_cipher(t));
    assert_int_equal(fw__tls_read(t, b, 0), FW_EINVAL);
    assert_int_equal(fw__tls_feed(NULL, b, 1), FW_EINVAL);
    assert_int_equal(fw__tls_feed(t, NULL, 1), FW_EINVAL);
    assert_int_equal(fw__tls_feed(t, NULL, 0), 0);
    fw__tls_free(t);
    fw__tls_free(NULL);
}

/* ---- channel binding data --------------------------------------------------------------- */

static void cb_data_of(X509 *crt, EVP_PKEY *key, int *rc, uint8_t *out, size_t *len,
                       const char **why)
{
    fw__tls_config_t c = cfg_mode(FW__TLS_MODE_REQUIRE, "localhost");
    fw__tls_t *t = engine(&c);
    srv_t s;
    srv_start(&s, crt, key, NULL);
    assert_int_equal(pump_handshake(t, &s), FW__TLS_DONE);
    *rc = fw__tls_cb_data(t, out, EVP_MAX_MD_SIZE, len, why);
    fw__tls_free(t);
    srv_free(&s);
}

static void test_cb_data_is_the_certificate_hash(void **state)
{
    (void)state;
    X509 *certs[] = {srv_rsa, srv_main};
    EVP_PKEY *keys[] = {rsa_key, leaf_key};
    for (size_t i = 0; i < 2; i++) {
        uint8_t got[EVP_MAX_MD_SIZE], want[EVP_MAX_MD_SIZE];
        size_t len;
        unsigned int wl;
        const char *why = "unset";
        int rc;
        cb_data_of(certs[i], keys[i], &rc, got, &len, &why);
        assert_int_equal(rc, 0);
        assert_null(why);
        /* sha256WithRSAEncryption and ecdsa-with-SHA256: SHA-256 of the DER */
        assert_int_equal(X509_digest(certs[i], EVP_sha256(), want, &wl), 1);
        assert_int_equal(len, 32);
        assert_int_equal(wl, 32);
        assert_memory_equal(got, want, 32);
    }
}

static void test_cb_data_fails_for_ed25519_naming_it(void **state)
{
    (void)state;
    uint8_t got[EVP_MAX_MD_SIZE];
    size_t len = 99;
    const char *why = NULL;
    int rc;
    cb_data_of(srv_ed, ed_key, &rc, got, &len, &why);
    assert_int_equal(rc, FW_EINVAL);
    assert_int_equal(len, 0);
    assert_non_null(why);
    assert_contains(why, "ED25519");
}

/* ---- the SSLRequest answer -------------------------------------------------------------- */

static void test_ssl_response_s_starts_tls_in_every_mode(void **state)
{
    (void)state;
    char m[128];
    for (int mode = FW__TLS_MODE_ALLOW; mode <= FW__TLS_MODE_VERIFY_FULL; mode++)
        assert_int_equal(
            fw__tls_ssl_response((const uint8_t *)"S", 1, (fw__tls_mode_t)mode, m, sizeof(m)),
            FW__TLS_RESP_TLS);
    assert_int_equal(fw__tls_ssl_response(NULL, 0, FW__TLS_MODE_PREFER, m, sizeof(m)), 0);
    assert_int_equal(
        fw__tls_ssl_response((const uint8_t *)"S", 1, FW__TLS_MODE_DISABLE, m, sizeof(m)),
        FW_ESTATE);
}

static void test_ssl_response_s_followed_by_bytes_is_refused_cve_2021_23222(void **state)
{
    (void)state;
    char m[128];
    /* 'S' then a forged AuthenticationOk + ReadyForQuery in the same read */
    static const uint8_t inj[] = {'S', 'R', 0, 0, 0, 8, 0, 0, 0, 0, 'Z', 0, 0, 0, 5, 'I'};
    for (size_t n = 2; n <= sizeof(inj); n++) {
        assert_int_equal(fw__tls_ssl_response(inj, n, FW__TLS_MODE_VERIFY_FULL, m, sizeof(m)),
                         FW_EPROTO_TRAILING);
        assert_string_equal(m, "received unencrypted data after SSL response");
    }
}

static void test_ssl_response_n_is_plaintext_only_when_allowed(void **state)
{
    (void)state;
    char m[128];
    const uint8_t n[] = {'N'};
    assert_int_equal(fw__tls_ssl_response(n, 1, FW__TLS_MODE_ALLOW, m, sizeof(m)),
                     FW__TLS_RESP_PLAIN);
    assert_int_equal(fw__tls_ssl_response(n, 1, FW__TLS_MODE_PREFER, m, sizeof(m)),
                     FW__TLS_RESP_PLAIN);
    for (int mode = FW__TLS_MODE_REQUIRE; mode <= FW__TLS_MODE_VERIFY_FULL; mode++) {
        assert_int_equal(fw__tls_ssl_response(n, 1, (fw__tls_mode_t)mode, m, sizeof(m)), FW_ETLS);
        assert_string_equal(m, "server does not support SSL, but SSL was required");
    }
    static const uint8_t extra[] = {'N', 'R', 0, 0, 0, 8, 0, 0, 0, 0};
    assert_int_equal(fw__tls_ssl_response(extra, sizeof(extra), FW__TLS_MODE_PREFER, m, sizeof(m)),
                     FW_EPROTO_TRAILING);
    assert_string_equal(m, "received unexpected data after SSL response");
}

static void test_ssl_response_error_text_is_never_shown_cve_2024_10977(void **state)
{
    (void)state;
    char m[256];
    static const char e[] = "E\0\0\0\x40SFATAL\0C28000\0M (1 row)\n fake query output 4242\0\0";
    for (int mode = FW__TLS_MODE_ALLOW; mode <= FW__TLS_MODE_VERIFY_FULL; mode++) {
        for (size_t n = 1; n <= sizeof(e) - 1; n += 7) {
            assert_int_equal(
                fw__tls_ssl_response((const uint8_t *)e, n, (fw__tls_mode_t)mode, m, sizeof(m)),
                FW_ETLS);
            assert_string_equal(m, "server sent an error response during SSL exchange");
        }
    }
}

static void test_ssl_response_anything_else_is_invalid(void **state)
{
    (void)state;
    char m[128];
    assert_int_equal(
        fw__tls_ssl_response((const uint8_t *)"X", 1, FW__TLS_MODE_PREFER, m, sizeof(m)),
        FW_EPROTO_BAD_VALUE);
    assert_string_equal(m, "received invalid response to SSL negotiation: 0x58");
    const uint8_t zero[] = {0, 'S'};
    assert_int_equal(fw__tls_ssl_response(zero, 2, FW__TLS_MODE_REQUIRE, m, sizeof(m)),
                     FW_EPROTO_BAD_VALUE);
    assert_string_equal(m, "received invalid response to SSL negotiation: 0x00");
    /* A TLS record (a server that expects direct TLS) is not an answer either. */
    const uint8_t rec[] = {0x16, 0x03, 0x01};
    assert_int_equal(fw__tls_ssl_response(rec, 3, FW__TLS_MODE_REQUIRE, NULL, 0),
                     FW_EPROTO_BAD_VALUE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_require_encrypts_without_verifying_the_chain),
        cmocka_unit_test(test_require_ignores_a_configured_root_certificate),
        cmocka_unit_test(test_verify_full_accepts_every_name_in_the_certificate),
        cmocka_unit_test(test_verify_full_with_a_wrong_name_names_the_certificate_and_the_host),
        cmocka_unit_test(test_wildcard_covers_exactly_one_leftmost_label),
        cmocka_unit_test(test_partial_wildcard_never_matches),
        cmocka_unit_test(test_ip_host_matches_only_an_ip_san),
        cmocka_unit_test(test_cn_is_used_only_when_no_dns_san_exists),
        cmocka_unit_test(test_embedded_nul_in_a_name_never_matches_cve_2009_4034),
        cmocka_unit_test(test_long_names_compare_in_full_cve_2012_0867),
        cmocka_unit_test(test_verify_ca_checks_the_chain_but_not_the_name),
        cmocka_unit_test(test_expired_certificate_fails_verify_ca),
        cmocka_unit_test(test_crl_revoking_the_server_certificate_fails),
        cmocka_unit_test(test_sslrootcert_system_uses_ssl_cert_file),
        cmocka_unit_test(test_configuration_errors_come_before_any_connection),
        cmocka_unit_test(test_client_certificate_and_key_are_presented),
        cmocka_unit_test(test_key_file_permissions_follow_libpq),
        cmocka_unit_test(test_encrypted_key_needs_sslpassword_and_never_prompts),
        cmocka_unit_test(test_tls_1_1_server_is_refused),
        cmocka_unit_test(test_protocol_range_is_honoured),
        cmocka_unit_test(test_sni_carries_host_names_only),
        cmocka_unit_test(test_large_payload_in_many_records_is_drained_by_the_read_loop),
        cmocka_unit_test(test_lent_ciphertext_survives_the_lender_reusing_its_buffer),
        cmocka_unit_test(test_one_big_record_read_in_small_pieces_reports_pending_plaintext),
        cmocka_unit_test(test_records_split_at_every_byte_arrive_whole),
        cmocka_unit_test(test_write_reaches_the_server_and_is_capped_when_not_flushed),
        cmocka_unit_test(test_close_notify_follows_the_data_before_it),
        cmocka_unit_test(test_our_shutdown_sends_close_notify_and_stops_writes),
        cmocka_unit_test(test_tampered_record_fails_and_the_failure_is_sticky),
        cmocka_unit_test(test_plaintext_instead_of_server_hello_fails_the_handshake),
        cmocka_unit_test(test_calls_out_of_order_are_state_errors),
        cmocka_unit_test(test_cb_data_is_the_certificate_hash),
        cmocka_unit_test(test_cb_data_fails_for_ed25519_naming_it),
        cmocka_unit_test(test_ssl_response_s_starts_tls_in_every_mode),
        cmocka_unit_test(test_ssl_response_s_followed_by_bytes_is_refused_cve_2021_23222),
        cmocka_unit_test(test_ssl_response_n_is_plaintext_only_when_allowed),
        cmocka_unit_test(test_ssl_response_error_text_is_never_shown_cve_2024_10977),
        cmocka_unit_test(test_ssl_response_anything_else_is_invalid),
    };
    return cmocka_run_group_tests_name("lib_tls", tests, group_setup, group_teardown);
}
