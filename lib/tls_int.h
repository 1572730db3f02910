/* SPDX-License-Identifier: MIT */
/*
 * What the parts of the TLS unit share (private to tls.c, tls_config.c and tls_in.c): the
 * message helpers, the configuration half's two entry points that fw__tls_new calls, and the
 * ciphertext input. Unlike tls.h, this header names OpenSSL types; nothing outside those
 * files includes it.
 */
#ifndef FW_LIB_TLS_INT_H
#define FW_LIB_TLS_INT_H

#include "tls.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

/* Formats into err (errlen bytes; err may be NULL) and returns rc, so a failure is one line. */
#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
int fw__tls_msg_fail(char *err, size_t errlen, int rc, const char *fmt, ...);

/* s escaped for a message (see escape_name in tls.c), into dst (cap bytes). Returns dst. */
const char *fw__tls_escape_str(char *dst, size_t cap, const char *s);

/* The reason of the oldest error in OpenSSL's queue, into buf; clears the queue. Returns buf. */
const char *fw__tls_ssl_reason(char *buf, size_t cap);

/* A string setting is given: not NULL and not empty. */
bool fw__tls_is_set(const char *s);

/*
 * Everything about cfg that can be judged without touching a file. On success *host_is_ip says
 * whether cfg->host is an IP literal, and *minv and *maxv are the versions to give OpenSSL
 * (max 0: none). Returns 0, FW_EINVAL (mode disable) or FW_ECONFIG, with the message in err.
 */
int fw__tls_config_check(const fw__tls_config_t *cfg, bool *host_is_ip, int *minv, int *maxv,
                         char *err, size_t errlen);

/*
 * Builds the SSL_CTX of one attempt from a checked cfg and loads every file now: root
 * certificates and CRLs (verify-ca and verify-full, with verify_cb as the verify callback),
 * client certificate and key. On success *ctx is the caller's to free; on failure it is NULL.
 * Returns 0, FW_ECONFIG or FW_ENOMEM, with the message in err.
 */
int fw__tls_ctx_new(SSL_CTX **ctx, const fw__tls_config_t *cfg, int minv, int maxv,
                    SSL_verify_cb verify_cb, char *err, size_t errlen);

/* ---- the ciphertext input (tls_in.c) ---- */

/* What OpenSSL has still to read: a view of the caller's buffer, or the engine's own copy. */
typedef struct fw__tls_in_s {
    const uint8_t *p; /* unread bytes */
    size_t len;
    bool owned;   /* p points into own */
    uint8_t *own; /* the engine's buffer (malloc), for bytes that cannot stay lent */
    size_t cap;
} fw__tls_in_t;

/* A new BIO that reads `in` (reset here); NULL when out of memory. The SSL that it is given
 * to frees it; `in` must outlive it, and is freed with fw__tls_in_free after the SSL. */
BIO *fw__tls_in_bio(fw__tls_in_t *in);

/* Lends p[0..len) to OpenSSL: no copy, but the bytes must stay as they are until OpenSSL has
 * read them or fw__tls_in_keep has copied them. (If bytes are still unread, copies instead.)
 * false: out of memory. */
bool fw__tls_in_view(fw__tls_in_t *in, const uint8_t *p, size_t len);

/* Copies p[0..len) after the unread bytes. false: out of memory (nothing changed). */
bool fw__tls_in_append(fw__tls_in_t *in, const uint8_t *p, size_t len);

/* Copies unread lent bytes into the engine's own buffer, so the lender may reuse its buffer.
 * false: out of memory (nothing changed). */
bool fw__tls_in_keep(fw__tls_in_t *in);

/* Frees the engine's buffer. */
void fw__tls_in_free(fw__tls_in_t *in);

#endif
