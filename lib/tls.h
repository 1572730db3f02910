/* SPDX-License-Identifier: MIT */
/*
 * TLS for one connection attempt, sans-I/O (STYLE 2): an OpenSSL 3 client between a BIO that
 * reads the ciphertext the channel lends or gives it (tls_in.c) and a memory BIO for what it
 * sends. The channel (channel.c, the only caller of the record functions) moves the bytes;
 * this unit never touches a socket or a clock (its one global: the input BIO's method, made
 * once).
 *
 *   fw__tls_new (all files loaded: configuration errors come before any socket)
 *   -> SSLRequest sent, answer judged by fw__tls_ssl_response
 *   -> loop { fw__tls_handshake; flush fw__tls_out; feed the socket's bytes } until DONE
 *   -> fw__tls_write / fw__tls_read (see the read rule below) ... fw__tls_shutdown
 *   -> fw__tls_free
 *
 * sslmode, as in libpq, with one deliberate difference (RELIABILITY.md, decision 1):
 *   allow, prefer, require: encrypted, the server certificate is NOT verified, even when a
 *       root certificate is configured (libpq upgrades require to verify-ca when a root file
 *       exists; fwire never verifies implicitly, so the mode alone says what is checked).
 *   verify-ca: the chain must lead to sslrootcert (and pass the CRLs, when given).
 *   verify-full: verify-ca plus the host name (below).
 *   Under verify-* without sslrootcert, fw__tls_new fails with FW_ECONFIG: there is no default
 *   ~/.postgresql/root.crt. sslrootcert=system (OpenSSL's default store; SSL_CERT_FILE and
 *   SSL_CERT_DIR are honoured) is accepted only with verify-full, because anyone can get a
 *   publicly trusted certificate for a name they own, which makes verify-ca meaningless.
 *
 * Host name check (verify-full), by OpenSSL's X509_check_host / X509_check_ip_asc:
 *   - a DNS host is compared with the dNSName SANs, case-insensitively; a wildcard counts only
 *     as the whole leftmost label ("*.example.test" covers "a.example.test", never
 *     "a.b.example.test" nor "example.test"; "f*.example.test" covers nothing:
 *     X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
 *   - the subject CN is used only when the certificate has no dNSName SAN at all (libpq's rule
 *     "CN only when no SAN of the host's type exists");
 *   - an IP host (IPv4 or IPv6 literal) is compared with the iPAddress SANs only, as bytes. It
 *     never matches a dNSName "127.0.0.1" nor the CN. libpq accepts both; fwire is stricter
 *     (RFC 6125: an IP reference identity is matched against iPAddress only);
 *   - a name with an embedded NUL never matches (CVE-2009-4034), and names are compared over
 *     their full length (CVE-2012-0867).
 *   The error names the first certificate name and the host, with libpq's wording.
 *
 * Always: TLS 1.2 or later, no compression, no renegotiation, SNI with the host name unless
 * the host is an IP literal or sni is off. A client key must be a regular file with mode 0600
 * or less (0640 or less when owned by root), checked on the opened file (libpq's rule).
 *
 * THE READ RULE: OpenSSL decrypts one record per read and keeps whatever else it was fed.
 * Those bytes are invisible to the socket's readiness (libpq's "async API deadlock with SSL
 * records > 8 kB"), so after every fw__tls_feed (and after resuming a paused reader) the
 * caller must call fw__tls_read until it returns 0 (or CLOSED, or an error). A caller that
 * reads once per socket event hangs when the server has already sent everything.
 *
 * OUTPUT: every call may queue ciphertext (handshake messages, alerts, key-update answers,
 * close_notify). After each call, write what fw__tls_out shows to the socket.
 *
 * Thread rule: one engine per channel (a connection attempt, kept by the connection it becomes,
 * or a cancel connection), used by one thread at a time (the loop thread). Different engines
 * share nothing.
 */
#ifndef FW_TLS_H
#define FW_TLS_H

#include "fwire.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* sslmode. Same order as conninfo's fw__sslmode_t; this unit keeps its own copy so it
 * depends on nothing but OpenSSL. */
typedef enum fw__tls_mode_e {
    FW__TLS_MODE_DISABLE,
    FW__TLS_MODE_ALLOW,
    FW__TLS_MODE_PREFER,
    FW__TLS_MODE_REQUIRE,
    FW__TLS_MODE_VERIFY_CA,
    FW__TLS_MODE_VERIFY_FULL
} fw__tls_mode_t;

/* Protocol versions as the wire numbers (as conninfo stores them). */
#define FW__TLS_PROTO_1_2 0x0303
#define FW__TLS_PROTO_1_3 0x0304

/* Cap on ciphertext queued for the socket: fw__tls_write accepts no more plaintext while this
 * much waits to be flushed, so a caller that never flushes cannot grow memory without bound. */
#define FW__TLS_OUT_MAX (256u * 1024u)

/* The largest client key file read (a PEM RSA-16384 key is about 13 kB). */
#define FW__TLS_KEY_FILE_MAX (1024u * 1024u)

/*
 * Options of one engine. Plain fields; every string is borrowed for the fw__tls_new call
 * only (nothing is kept: files are loaded and the password used inside fw__tls_new).
 */
typedef struct fw__tls_config_s {
    fw__tls_mode_t mode; /* FW__TLS_MODE_ALLOW and above; DISABLE is FW_EINVAL */
    /* The host the user gave (not a resolved address): the name verify-full checks and the
     * SNI name. A DNS name or an IPv4/IPv6 literal (no brackets). Required by verify-full. */
    const char *host;
    /* sslrootcert: a PEM file, or "system" for OpenSSL's default paths. NULL or "": none. */
    const char *rootcert;
    const char *crl;    /* sslcrl: a PEM file of CRLs; NULL or "": none */
    const char *crldir; /* sslcrldir: a directory prepared by `openssl rehash`; NULL: none */
    /* sslcert + sslkey: the client certificate (PEM, may hold the chain) and its PEM key.
     * Both or neither. */
    const char *cert;
    const char *key;
    /* sslpassword for an encrypted key. NULL: an encrypted key is an error (never a prompt). */
    const char *password;
    /* FW__TLS_PROTO_*; 0 = default (min TLS 1.2, no max). Lower than TLS 1.2 is FW_ECONFIG. */
    int min_version;
    int max_version;
    bool sni; /* sslsni; default true */
} fw__tls_config_t;

/* Defaults: mode prefer, sni on, TLS 1.2 minimum, no files. */
void fw__tls_config_init(fw__tls_config_t *cfg);

/* Results of fw__tls_handshake (errors are negative). */
#define FW__TLS_DONE     0 /* handshake complete: flush fw__tls_out, then read/write */
#define FW__TLS_CONTINUE 1 /* flush fw__tls_out, feed more bytes from the socket, call again */

/*
 * fw__tls_read's answer to the server's close_notify: a clean end of the TLS stream. Outside
 * the library's error block and libuv's codes on purpose: it is an event, not an error, and
 * the connection unit decides what it means. Sticky.
 */
#define FW__TLS_CLOSED (-29999)

typedef struct fw__tls_s fw__tls_t;

/*
 * Builds the SSL_CTX and SSL of one connection attempt and loads every file now: root
 * certificates, CRLs, client certificate and key (with the permission check), so a bad
 * configuration fails before any socket is opened. cfg and its strings are borrowed for the
 * call only. On failure *t is NULL and err (errlen bytes, always NUL-terminated when
 * errlen > 0) says why, naming the file and the rule.
 * Returns 0, FW_EINVAL (NULL argument, mode disable), FW_ECONFIG, or FW_ENOMEM.
 */
int fw__tls_new(fw__tls_t **t, const fw__tls_config_t *cfg, char *err, size_t errlen);

/* Bytes read from the socket (borrowed for the call; copied). Then call fw__tls_handshake or
 * loop fw__tls_read. Returns 0, FW_ENOMEM, or the engine's sticky error. */
int fw__tls_feed(fw__tls_t *t, const uint8_t *cipher, size_t len);

/*
 * As fw__tls_feed, but lent, not copied (the bulk path: one copy of every byte less): the
 * caller must leave cipher[0..len) as it is until fw__tls_read has returned 0 (OpenSSL has
 * read all of it), or until fw__tls_unlend. (Bytes fed before and still unread: copied.)
 */
int fw__tls_feed_view(fw__tls_t *t, const uint8_t *cipher, size_t len);

/* Copies what is still lent (fw__tls_feed_view) and unread into the engine, so the caller may
 * reuse its buffer. Returns 0 (also on an engine that has already failed) or FW_ENOMEM (the
 * engine fails with it). */
int fw__tls_unlend(fw__tls_t *t);

/*
 * Advances the handshake with the bytes fed so far. Returns FW__TLS_DONE, FW__TLS_CONTINUE, or
 * a sticky error with fw__tls_error() set: FW_ETLS (the handshake failed, the certificate did
 * not verify, or the host name did not match), FW_ENOMEM. After DONE, bytes fed together with
 * the last handshake message are application data: loop fw__tls_read.
 * Under TLS 1.3 the client is done before the server has judged our certificate: a server
 * that refuses it (or its absence) says so with an alert that fw__tls_read reports.
 */
int fw__tls_handshake(fw__tls_t *t);

/* The failure message (empty while none), NUL-terminated, borrowed from t. */
const char *fw__tls_error(const fw__tls_t *t);

/*
 * Ciphertext waiting for the socket: *ptr and *len (len 0: nothing). *ptr is borrowed from t and
 * valid until the next call on t other than fw__tls_out; copy it (or finish the write) first.
 */
void fw__tls_out(fw__tls_t *t, const uint8_t **ptr, size_t *len);

/* Drops the first n bytes that fw__tls_out showed (they were written). n is clamped. */
void fw__tls_out_consumed(fw__tls_t *t, size_t n);

/*
 * Decrypts into buf (cap bytes). Returns n > 0 plaintext bytes; 0 when OpenSSL needs more
 * ciphertext (everything fed so far is consumed); FW__TLS_CLOSED after the server's
 * close_notify; FW_ESTATE before the handshake is done; or a sticky error (FW_ETLS: a bad
 * record or a fatal alert, message in fw__tls_error). See THE READ RULE at the top.
 * An end of the socket without close_notify is the transport's to report (a truncation).
 */
long fw__tls_read(fw__tls_t *t, uint8_t *buf, size_t cap);

/*
 * Encrypts plaintext (borrowed for the call). Returns the bytes accepted (then flush
 * fw__tls_out): all of them unless FW__TLS_OUT_MAX bytes of ciphertext are already waiting,
 * in which case fewer or 0; FW_ESTATE before the handshake or after fw__tls_shutdown; or a
 * sticky error.
 */
long fw__tls_write(fw__tls_t *t, const uint8_t *plain, size_t len);

/* Plaintext already decrypted inside OpenSSL and not yet read (SSL_pending). */
size_t fw__tls_pending(const fw__tls_t *t);

/* Whether any byte fed is not yet returned by fw__tls_read (decrypted or not): true means a
 * reader resumed from a pause must call fw__tls_read before waiting for the socket. */
bool fw__tls_has_buffered(const fw__tls_t *t);

/*
 * tls-server-end-point channel binding data of the server certificate (fw__scram_cert_hash):
 * into out (cap bytes; EVP_MAX_MD_SIZE suffices), *len set. On failure *why (when not NULL) is
 * a static sentence, e.g. naming an Ed25519 signature, which has no binding (CVE-2026-54291).
 * Returns 0, FW_ESTATE (handshake not done), FW_EINVAL, FW_ETOOBIG or FW_ENOMEM.
 */
int fw__tls_cb_data(fw__tls_t *t, uint8_t *out, size_t cap, size_t *len, const char **why);

/* The negotiated protocol ("TLSv1.3") and cipher suite; static strings, NULL before the
 * handshake is done. */
const char *fw__tls_version(const fw__tls_t *t);
const char *fw__tls_cipher(const fw__tls_t *t);

/* Queues close_notify (then flush fw__tls_out). Later writes are FW_ESTATE. Returns 0,
 * FW_ESTATE (handshake not done) or the sticky error. */
int fw__tls_shutdown(fw__tls_t *t);

/* Frees everything. t may be NULL. */
void fw__tls_free(fw__tls_t *t);

/* Results of fw__tls_ssl_response. */
#define FW__TLS_RESP_TLS   1 /* 'S': start the TLS handshake on this socket */
#define FW__TLS_RESP_PLAIN 2 /* 'N' under allow/prefer: continue in plaintext on this socket */

/*
 * Judges the server's answer to SSLRequest: buf/len are ALL the bytes read so far after the
 * request (borrowed for the call). Pure; any thread.
 *   len 0              -> 0: read more.
 *   'S' alone          -> FW__TLS_RESP_TLS.
 *   'S' + more bytes   -> FW_EPROTO_TRAILING "received unencrypted data after SSL response": a
 *                         man in the middle queued plaintext to be read as if it came over TLS
 *                         (CVE-2021-23222).
 *   'N' alone          -> FW__TLS_RESP_PLAIN under allow/prefer; FW_ETLS "server does not
 *                         support SSL, but SSL was required" under require and above.
 *   'N' + more bytes   -> FW_EPROTO_TRAILING: the server waits for our next message, so
 *                         anything after the 'N' was not sent by it.
 *   'E'                -> FW_ETLS "server sent an error response during SSL exchange": fixed
 *                         text, none of the server's bytes (CVE-2024-10977); no fallback.
 *   anything else      -> FW_EPROTO_BAD_VALUE "received invalid response to SSL negotiation:
 *                         0xNN".
 * mode disable (no SSLRequest is sent) -> FW_ESTATE. err/errlen as for fw__tls_new.
 */
int fw__tls_ssl_response(const uint8_t *buf, size_t len, fw__tls_mode_t mode, char *err,
                         size_t errlen);

#endif /* FW_TLS_H */
