/* SPDX-License-Identifier: MIT */
/*
 * fwire serve, TLS of its own (--tls-cert, --tls-key, --tls-client-ca): https:// and wss://
 * without a proxy in front.
 *
 * OpenSSL sits between the socket and the HTTP/WebSocket layers through two memory BIOs, as
 * the library does for PostgreSQL (lib/tls.c): what libuv reads is written into `in`, and
 * SSL_read hands plaintext to the same dispatcher a plaintext read goes to; what the layers
 * write goes through SSL_write, and whatever OpenSSL put into `out` becomes one uv_write.
 * Nothing else in the gateway knows whether a client is encrypted: `inflight` and the
 * watermarks count ciphertext, which is what sits in memory.
 *
 * When the layer above stops reading (a complete HTTP request, backpressure, a full WebSocket
 * send queue), records already received stay inside OpenSSL, and gw_tls_pump() runs again as
 * soon as reading restarts: bytes already here never wait for another socket event.
 *
 * Settings: TLS 1.2 and 1.3 only; for 1.2, ECDHE with AES-GCM or ChaCha20-Poly1305 (forward
 * secrecy, AEAD); 1.3's suites are all AEAD. No compression (CRIME), no renegotiation (a
 * client-driven CPU sink), no session tickets (their key would live as long as the process).
 * SIGHUP loads the files again: new connections get the new certificate, running ones keep
 * theirs; a reload that fails keeps the old one and says why.
 */
#include "serve.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The largest TLS record's plaintext: one SSL_read at a time. */
#define PLAIN_CHUNK 16384

static void tls_errors(char *buf, size_t cap)
{
    unsigned long e = ERR_get_error();
    if (e == 0)
        snprintf(buf, cap, "unknown OpenSSL error");
    else
        ERR_error_string_n(e, buf, cap);
    ERR_clear_error();
}

int gw_tls_load(gw_server_t *srv)
{
    const gw_config_t *cfg = &srv->cfg;
    if (cfg->tls_cert == NULL)
        return 0;
    char why[256];
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        tls_errors(why, sizeof(why));
        fprintf(stderr, "fwire serve: TLS: %s\n", why);
        return -1;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET);
    /* idle connections do not keep 34 KB of record buffers each */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    const char *what = "cipher list";
    if (SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20") != 1)
        goto fail;
    what = cfg->tls_cert;
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert) != 1)
        goto fail;
    what = cfg->tls_key;
    if (SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1)
        goto fail;
    if (cfg->tls_client_ca != NULL) {
        what = cfg->tls_client_ca;
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->tls_client_ca);
        if (names == NULL || SSL_CTX_load_verify_locations(ctx, cfg->tls_client_ca, NULL) != 1) {
            sk_X509_NAME_pop_free(names, X509_NAME_free);
            goto fail;
        }
        SSL_CTX_set_client_CA_list(ctx, names);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    SSL_CTX_free(srv->tls_ctx); /* connections made with the old one hold their reference */
    srv->tls_ctx = ctx;
    return 0;
fail:
    tls_errors(why, sizeof(why));
    fprintf(stderr, "fwire serve: TLS: %s: %s\n", what, why);
    SSL_CTX_free(ctx);
    return -1;
}

void gw_tls_unload(gw_server_t *srv)
{
    SSL_CTX_free(srv->tls_ctx);
    srv->tls_ctx = NULL;
}

int gw_tls_client_init(gw_client_t *c)
{
    SSL *ssl = SSL_new(c->srv->tls_ctx);
    BIO *in = BIO_new(BIO_s_mem()), *out = BIO_new(BIO_s_mem());
    if (ssl == NULL || in == NULL || out == NULL) {
        SSL_free(ssl);
        BIO_free(in);
        BIO_free(out);
        ERR_clear_error();
        return -1;
    }
    /* an empty input BIO means "wait for more", not end of file */
    BIO_set_mem_eof_return(in, -1);
    BIO_set_mem_eof_return(out, -1);
    SSL_set_bio(ssl, in, out); /* the SSL owns both now */
    SSL_set_accept_state(ssl);
    c->tls.ssl = ssl;
    c->tls.in = in;
    c->tls.out = out;
    return 0;
}

void gw_tls_client_free(gw_client_t *c)
{
    SSL_free(c->tls.ssl);
    c->tls.ssl = NULL;
    c->tls.in = c->tls.out = NULL;
}

/* Whatever OpenSSL has written (records, alerts, handshake messages) onto the socket. */
static bool tls_flush(gw_client_t *c)
{
    size_t n = BIO_ctrl_pending(c->tls.out);
    while (n > 0 && !c->closed) {
        char *p = NULL;
        long have = BIO_get_mem_data(c->tls.out, &p);
        if (have <= 0)
            break;
        if (!gw_client_raw_write(c, p, (size_t)have))
            return false;
        (void)BIO_reset(c->tls.out);
        n = BIO_ctrl_pending(c->tls.out);
    }
    return !c->closed;
}

bool gw_tls_write(gw_client_t *c, const void *data, size_t len)
{
    if (!SSL_is_init_finished(c->tls.ssl)) {
        /* nothing to say to a client whose handshake is not done (an over-limit refusal,
         * a deadline): it is let go without a response */
        gw_client_close(c);
        return false;
    }
    size_t done = 0;
    ERR_clear_error();
    if (SSL_write_ex(c->tls.ssl, data, len, &done) != 1 || done != len) {
        ERR_clear_error();
        gw_client_close(c);
        return false;
    }
    return tls_flush(c);
}

void gw_tls_pump(gw_client_t *c)
{
    if (c->tls.ssl == NULL || c->tls.pumping)
        return; /* the outer pump goes on with whatever this call would have done */
    c->tls.pumping = true;
    uint8_t plain[PLAIN_CHUNK];
    while (!c->closed) {
        if (!SSL_is_init_finished(c->tls.ssl)) {
            ERR_clear_error();
            int r = SSL_do_handshake(c->tls.ssl);
            int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(c->tls.ssl, r);
            if (!tls_flush(c))
                break;
            if (r == 1)
                continue;
            if (e != SSL_ERROR_WANT_READ) {
                char why[256];
                tls_errors(why, sizeof(why));
                gw_log(c->srv, "client %llu: TLS handshake failed: %s", (unsigned long long)c->id,
                       why);
                /* the alert (if any) went out with the flush above */
                gw_client_close_when_flushed(c);
            }
            break;
        }
        if (!c->reading)
            break; /* the layer above is not reading: the rest waits inside OpenSSL */
        size_t n = 0;
        ERR_clear_error();
        int r = SSL_read_ex(c->tls.ssl, plain, sizeof(plain), &n);
        int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(c->tls.ssl, r);
        if (!tls_flush(c))
            break;
        if (r == 1) {
            gw_client_dispatch(c, plain, n);
            continue;
        }
        if (e == SSL_ERROR_WANT_READ)
            break;
        /* close_notify (a clean end of file), a fatal alert or a bad record */
        if (e != SSL_ERROR_ZERO_RETURN) {
            char why[256];
            tls_errors(why, sizeof(why));
            gw_log(c->srv, "client %llu: TLS: %s", (unsigned long long)c->id, why);
        }
        ERR_clear_error();
        gw_client_close(c);
        break;
    }
    c->tls.pumping = false;
}

void gw_tls_on_read(gw_client_t *c, const uint8_t *data, size_t len)
{
    /* at most one read (64 KiB) arrives while the layer above reads: the BIO never holds more
     * than that plus a partial record */
    if (BIO_write(c->tls.in, data, (int)len) != (int)len) {
        gw_client_close(c);
        return;
    }
    gw_tls_pump(c);
}

void gw_tls_shutdown(gw_client_t *c)
{
    /* close_notify, so the client can tell the end of a response from a truncation */
    if (c->tls.ssl != NULL && SSL_is_init_finished(c->tls.ssl) && !c->closed &&
        (SSL_get_shutdown(c->tls.ssl) & SSL_SENT_SHUTDOWN) == 0) {
        ERR_clear_error();
        (void)SSL_shutdown(c->tls.ssl);
        ERR_clear_error();
        tls_flush(c);
    }
}
