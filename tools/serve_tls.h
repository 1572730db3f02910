/* SPDX-License-Identifier: MIT */
/* fwire serve: TLS of its own (serve_tls.c: OpenSSL memory BIOs under the HTTP/WebSocket layers).
 */
#ifndef FWIRE_SERVE_TLS_H
#define FWIRE_SERVE_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct gw_server_s gw_server_t;
typedef struct gw_client_s gw_client_t;

/* The TLS state of a client (gw_client_t.tls); ssl is NULL for a plaintext client. */
typedef struct gw_tls_s {
    struct ssl_st *ssl;
    struct bio_st *in, *out; /* memory BIOs, owned by ssl */
    bool pumping;            /* gw_tls_pump is running (it does not nest) */
} gw_tls_t;

/* Loads --tls-cert/--tls-key (and --tls-client-ca) into a new context; the old one is kept
 * when this fails (-1, the reason on stderr). Nothing to do without --tls-cert. */
int gw_tls_load(gw_server_t *srv);
void gw_tls_unload(gw_server_t *srv);
int gw_tls_client_init(gw_client_t *c);
void gw_tls_client_free(gw_client_t *c);
/* Ciphertext read from the socket. */
void gw_tls_on_read(gw_client_t *c, const uint8_t *data, size_t len);
/* Handles records already inside OpenSSL (call when reading restarts). */
void gw_tls_pump(gw_client_t *c);
/* Encrypts and writes; false when the client was closed. */
bool gw_tls_write(gw_client_t *c, const void *data, size_t len);
/* Queues close_notify (once). */
void gw_tls_shutdown(gw_client_t *c);

#endif /* FWIRE_SERVE_TLS_H */
