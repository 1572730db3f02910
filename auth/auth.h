/* SPDX-License-Identifier: MIT */
/*
 * auth/: the password mechanisms of PostgreSQL, pure (no I/O, no libuv, OpenSSL crypto only):
 * strict base64 (SCRAM's encoding), constant-time comparison, secret wiping, MD5 password
 * answers, and SCRAM-SHA-256 / SCRAM-SHA-256-PLUS with the tls-server-end-point hash below.
 * SASLprep has its own header, saslprep.h.
 */
#ifndef FW_AUTH_H
#define FW_AUTH_H

#include "fwire_base.h"
#include "fw_util.h" /* fw__wipe, fw__ct_equal */

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes base64 needs for n input bytes, NUL excluded; SIZE_MAX when that would overflow. */
size_t fw__b64_encoded_len(size_t n);

/*
 * Encodes src[0..n) as padded base64 (RFC 4648 section 4) into dst, NUL-terminated.
 * Returns the encoded length, or FW_ETOOBIG if cap < fw__b64_encoded_len(n) + 1.
 */
long fw__b64_encode(char *dst, size_t cap, const uint8_t *src, size_t n);

/*
 * Decodes padded base64 strictly: only the RFC 4648 alphabet, length a multiple of 4, '='
 * only as the final one or two characters, and zero bits in the unused part of the last
 * quantum (so each byte string has exactly one accepted encoding). No whitespace.
 * Returns the decoded length, FW_EINVAL for malformed input, FW_ETOOBIG if cap is short.
 */
long fw__b64_decode(uint8_t *dst, size_t cap, const char *src, size_t n);

/* Length of an MD5 password answer: "md5" + 32 hex digits, NUL excluded. */
#define FW__MD5_PASSWORD_LEN 35

/*
 * The answer to AuthenticationMD5Password: "md5" + hex(md5(hex(md5(password + user)) + salt)),
 * NUL-terminated, into out[FW__MD5_PASSWORD_LEN + 1]. Intermediate digests are wiped.
 * Returns 0, or FW_EINVAL (NULL argument) / FW_ENOMEM (OpenSSL failure).
 */
int fw__md5_password(char out[FW__MD5_PASSWORD_LEN + 1], const char *user, const char *password,
                     const uint8_t salt[4]);

/* ---- SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (RFC 5802, RFC 7677, RFC 5929) ---- */

/*
 * A pure client mechanism: fed the server's SASL data, it produces the client's. No I/O, no
 * allocation; the state lives in caller-owned storage and holds every buffer it needs.
 *
 *   fw__scram_init -> fw__scram_client_first -> fw__scram_server_first -> fw__scram_derive
 *   (or fw__scram_derive_cancellable) -> fw__scram_client_final -> fw__scram_server_final
 *   -> fw__scram_verified() -> fw__scram_free
 *
 * Each step checks that it comes in order (FW_ESTATE otherwise). The first failure of any kind
 * is sticky: the secrets are wiped at once, fw__scram_fail() keeps the reason, and every later
 * step returns FW_ESTATE. Thread rule: one state object is used by one thread at a time;
 * fw__scram_derive (the expensive step) may run on a worker thread because it touches nothing
 * but its state, and fw__scram_derive_cancellable lets another thread stop it. Different state
 * objects are independent.
 *
 * Return codes of the steps:
 *   FW_EINVAL          bad argument or option (init)
 *   FW_ESTATE          step out of order, or the exchange already failed
 *   FW_ETOOBIG         iteration count over the cap; server message over FW__SCRAM_SERVER_MSG_MAX
 *   FW_ENOMEM          OpenSSL failed (random bytes, PBKDF2, HMAC, digest)
 *   FW_ECLOSED         the key derivation was cancelled (fw__scram_derive_cancellable)
 *   FW_EPROTO_TRAILING bytes after the last attribute of a server message
 *   FW_EPROTO_BAD_VALUE anything else the server got wrong, including a wrong server signature
 *                      and a server-reported error (e=)
 * fw__scram_fail() tells which check failed.
 */

#define FW__SCRAM_MECH         "SCRAM-SHA-256"
#define FW__SCRAM_MECH_PLUS    "SCRAM-SHA-256-PLUS"
#define FW__SCRAM_KEY_LEN      32 /* SHA-256 output: keys, proofs and signatures */
#define FW__SCRAM_NONCE_RANDOM 18 /* random bytes in the client nonce, as libpq sends */
#define FW__SCRAM_NONCE_MAX    64 /* longest client nonce text (fixed nonces for tests) */
#define FW__SCRAM_USER_MAX     64 /* longest username before escaping (tests; PostgreSQL: n=) */
#define FW__SCRAM_CB_DATA_MAX  64 /* longest channel binding data: a SHA-512 digest */
/* The default cap on the server's iteration count (scram_max_iterations), see fw__scram_opts_t. */
#define FW__SCRAM_MAX_ITERATIONS_DEFAULT 1000000u
/*
 * Longest server-first or server-final message accepted. PostgreSQL sends about 90 bytes and
 * libpq bounds any authentication message to 2000; the server-first message is copied into the
 * state (it is part of the AuthMessage), so an unauthenticated peer must not choose its size.
 */
#define FW__SCRAM_SERVER_MSG_MAX 2048
#define FW__SCRAM_SALT_MAX       (FW__SCRAM_SERVER_MSG_MAX / 4 * 3)
#define FW__SCRAM_ERROR_MAX      256 /* bytes of a server e= text kept for the caller */

/* Base64 length of n bytes (n small and constant). */
#define FW__SCRAM_B64(n) (((n) + 2) / 3 * 4)
/* "n=" + escaped user + ",r=" + nonce: the client-first-message-bare. */
#define FW__SCRAM_FIRST_BARE_MAX (2 + 3 * FW__SCRAM_USER_MAX + 3 + FW__SCRAM_NONCE_MAX)
/* The longest message the client produces (client-final), NUL included. */
#define FW__SCRAM_OUT_MAX                                                               \
    (2 + FW__SCRAM_B64(24 + FW__SCRAM_CB_DATA_MAX) + 3 + FW__SCRAM_SERVER_MSG_MAX + 3 + \
     FW__SCRAM_B64(FW__SCRAM_KEY_LEN) + 1)

/* Channel binding for this exchange: decides the GS2 header and the mechanism name. */
typedef enum fw__scram_cb_e {
    FW__SCRAM_CB_NONE = 0,        /* "n,,": no TLS, the client cannot bind (SCRAM-SHA-256) */
    FW__SCRAM_CB_NOT_OFFERED,     /* "y,,": on TLS, but the server did not offer -PLUS */
    FW__SCRAM_CB_SERVER_END_POINT /* "p=tls-server-end-point,,": SCRAM-SHA-256-PLUS */
} fw__scram_cb_t;

/* Why an exchange failed; fw__scram_fail_str() gives the sentence. */
typedef enum fw__scram_fail_e {
    FW__SCRAM_FAIL_NONE = 0,
    FW__SCRAM_FAIL_BAD_OPTIONS,      /* init: an option is out of range or inconsistent */
    FW__SCRAM_FAIL_NO_BINDING_DATA,  /* init: tls-server-end-point without binding data */
    FW__SCRAM_FAIL_OUT_OF_ORDER,     /* a step called in the wrong state */
    FW__SCRAM_FAIL_CRYPTO,           /* OpenSSL failed */
    FW__SCRAM_FAIL_TOO_LONG,         /* server message over FW__SCRAM_SERVER_MSG_MAX */
    FW__SCRAM_FAIL_MALFORMED,        /* not a sequence of attr=value, unknown attribute, empty */
    FW__SCRAM_FAIL_ATTR_ORDER,       /* server-first attributes not r, s, i */
    FW__SCRAM_FAIL_EXTENSION,        /* m= (mandatory extension) */
    FW__SCRAM_FAIL_TRAILING,         /* anything after the last attribute */
    FW__SCRAM_FAIL_FIRST_HAS_ERROR,  /* e= in the server-first message */
    FW__SCRAM_FAIL_NONCE_MISMATCH,   /* server nonce does not start with ours */
    FW__SCRAM_FAIL_NONCE_NOT_LONGER, /* server nonce equals ours: the server added nothing */
    FW__SCRAM_FAIL_NONCE_CHARS,      /* server nonce has a byte outside 0x21..0x7E */
    FW__SCRAM_FAIL_SALT_ENCODING,    /* salt is not strict base64 */
    FW__SCRAM_FAIL_SALT_EMPTY,       /* salt decodes to nothing */
    FW__SCRAM_FAIL_ITERATIONS,       /* i= is not a decimal integer >= 1 without sign/zeros */
    FW__SCRAM_FAIL_ITERATION_CAP,    /* i= over max_iterations (refused before any PBKDF2) */
    FW__SCRAM_FAIL_SIGNATURE_FORMAT, /* v= is not base64 of exactly 32 bytes */
    FW__SCRAM_FAIL_SIGNATURE,        /* v= does not match: the server does not know the key */
    FW__SCRAM_FAIL_SERVER_ERROR,     /* the server-final message is e=<error> */
    FW__SCRAM_FAIL_CANCELLED         /* the caller cancelled the key derivation */
} fw__scram_fail_t;

/*
 * Options for one exchange; fw__scram_opts_init() sets the defaults. Every pointer is borrowed
 * for the duration of fw__scram_init only: the state keeps its own copies.
 */
typedef struct fw__scram_opts_s {
    /* The password, already SASLprep'ed (or the raw bytes when SASLprep does not apply). */
    const uint8_t *password;
    size_t password_len;
    fw__scram_cb_t channel_binding; /* default FW__SCRAM_CB_NONE */
    /* tls-server-end-point data (fw__scram_cert_hash of the server certificate): required,
     * 1..FW__SCRAM_CB_DATA_MAX bytes, with FW__SCRAM_CB_SERVER_END_POINT; NULL/0 otherwise. */
    const uint8_t *cb_data;
    size_t cb_data_len;
    /*
     * The largest iteration count accepted from the server (scram_max_iterations). Every
     * iteration is an HMAC, so an unbounded count lets any server (or a man in the middle,
     * before it has proved anything) burn the client's CPU (RUSTSEC-2026-0179, CVE-2026-42198).
     * Default FW__SCRAM_MAX_ITERATIONS_DEFAULT; 0 also means the default (a zeroed options struct
     * stays safe); there is no "unlimited"; at most INT_MAX (PostgreSQL's count is an int).
     * The cap bounds the work; cancelling the derivation (fw__scram_derive_cancellable) stops
     * it early when the caller gives up first.
     */
    uint32_t max_iterations;
    /* Tests only. A fixed client nonce, used verbatim: 1..FW__SCRAM_NONCE_MAX bytes of
     * 0x21..0x7E except ','. NULL (default): FW__SCRAM_NONCE_RANDOM random bytes, base64. */
    const char *nonce;
    size_t nonce_len;
    /* Tests only. The random source for the nonce, returning 0 on success; NULL: RAND_bytes. */
    int (*random_fn)(void *ctx, uint8_t *buf, size_t len);
    void *random_ctx;
    /* Tests only (RFC 7677 vectors). NUL-terminated, at most FW__SCRAM_USER_MAX bytes, escaped
     * as RFC 5802 says. NULL (default): the empty name; PostgreSQL uses the startup user. */
    const char *username;
} fw__scram_opts_t;

/* Internal: where an exchange stands. */
typedef enum fw__scram_state_e {
    FW__SCRAM_S_UNUSED = 0,       /* zeroed or freed */
    FW__SCRAM_S_READY,            /* init done: client_first next */
    FW__SCRAM_S_SENT_FIRST,       /* server_first next */
    FW__SCRAM_S_GOT_SERVER_FIRST, /* derive next */
    FW__SCRAM_S_DERIVED,          /* client_final next */
    FW__SCRAM_S_SENT_FINAL,       /* server_final next */
    FW__SCRAM_S_VERIFIED,         /* server signature verified: the exchange succeeded */
    FW__SCRAM_S_FAILED            /* sticky, also after a failed init; see fail */
} fw__scram_state_t;

/*
 * One exchange. Callers treat the fields as private (tests inspect them). Fields marked secret
 * are wiped as soon as they are no longer needed, on any failure, and by fw__scram_free.
 */
typedef struct fw__scram_s {
    fw__scram_state_t state;
    fw__scram_fail_t fail;
    fw__scram_cb_t cb;
    uint32_t max_iterations;
    uint32_t iterations;
    /* secret: the HMAC key form of the password (see scram.c) */
    uint8_t password[64];
    size_t password_len;
    uint8_t salted_password[FW__SCRAM_KEY_LEN];  /* secret */
    uint8_t client_key[FW__SCRAM_KEY_LEN];       /* secret */
    uint8_t stored_key[FW__SCRAM_KEY_LEN];       /* secret */
    uint8_t server_key[FW__SCRAM_KEY_LEN];       /* secret */
    uint8_t server_signature[FW__SCRAM_KEY_LEN]; /* secret: the expected v= */
    uint8_t cb_data[FW__SCRAM_CB_DATA_MAX];
    size_t cb_data_len;
    char client_nonce[FW__SCRAM_NONCE_MAX + 1];
    size_t client_nonce_len;
    char first_bare[FW__SCRAM_FIRST_BARE_MAX + 1];
    size_t first_bare_len;
    uint8_t server_first[FW__SCRAM_SERVER_MSG_MAX]; /* kept for the AuthMessage */
    size_t server_first_len;
    size_t server_nonce_len; /* the r= value starts at server_first + 2 */
    uint8_t salt[FW__SCRAM_SALT_MAX];
    size_t salt_len;
    char out[FW__SCRAM_OUT_MAX]; /* the last client message, NUL-terminated */
    size_t out_len;
    size_t final_bare_len;       /* client-final-message-without-proof: out[0..final_bare_len) */
    char refused_iterations[24]; /* digits of a refused i= (for the message), NUL-terminated */
    uint8_t server_error[FW__SCRAM_ERROR_MAX]; /* untrusted: escape before showing */
    size_t server_error_len;
    bool server_error_truncated;
} fw__scram_t;

/* Sets the defaults: no password, no channel binding, the default iteration cap. */
void fw__scram_opts_init(fw__scram_opts_t *o);

/*
 * Prepares an exchange in *s (caller-owned; any previous contents are overwritten, not freed).
 * Copies the password, binding data and nonce; draws the nonce when none is fixed.
 * Returns 0, FW_EINVAL (fail BAD_OPTIONS or NO_BINDING_DATA), FW_ETOOBIG (binding data, nonce or
 * username too long), FW_ENOMEM (no random bytes). On failure s needs no fw__scram_free but
 * accepts one. Empty binding data is refused, never sent (CVE-2026-54291).
 */
int fw__scram_init(fw__scram_t *s, const fw__scram_opts_t *o);

/* The SASL mechanism name to send for this exchange: FW__SCRAM_MECH or FW__SCRAM_MECH_PLUS. */
const char *fw__scram_mechanism(const fw__scram_t *s);

/*
 * The client-first-message ("n,,n=,r=<nonce>", or with "y,," / "p=tls-server-end-point,,"):
 * *out points into s, valid until the next call on s. Returns 0 or FW_ESTATE.
 */
int fw__scram_client_first(fw__scram_t *s, fw_slice_t *out);

/*
 * Parses the server-first-message (the SASLContinue data; msg is borrowed for the call) strictly:
 * exactly "r=<nonce>,s=<salt>,i=<count>". Refuses an over-cap count before any key work.
 * Returns 0 or an error (see the list above).
 */
int fw__scram_server_first(fw__scram_t *s, const uint8_t *msg, size_t len);

/*
 * The expensive step: SaltedPassword = Hi(password, salt, i), i.e. PBKDF2-HMAC-SHA-256 (byte for
 * byte what PKCS5_PBKDF2_HMAC gives), and the keys. Touches only *s, so lib/ may run it on a
 * worker thread. The password is wiped afterwards.
 *
 * cancel: NULL (not cancellable), or a flag that any thread may set to make the call give up;
 * borrowed for the call, so it must outlive it. It is read with relaxed loads before any work
 * and every 1024 iterations, so the call returns within about a millisecond of the store
 * (0.13 ms per 1024 iterations on the reference machine). Once cancelled the exchange has
 * failed like any other: state FAILED, fail reason FW__SCRAM_FAIL_CANCELLED, every secret
 * wiped; the flag is never written here. Thread: the thread that owns *s (see above); the
 * flag's writer may be any thread.
 * Returns 0, FW_ESTATE, FW_ENOMEM or FW_ECLOSED (cancelled).
 */
int fw__scram_derive_cancellable(fw__scram_t *s, const _Atomic bool *cancel);

/* fw__scram_derive_cancellable(s, NULL): runs to the end (the iteration cap bounds it). */
int fw__scram_derive(fw__scram_t *s);

/*
 * The client-final-message "c=<binding>,r=<nonce>,p=<proof>"; *out points into s, valid until
 * the next call on s. Returns 0, FW_ESTATE or FW_ENOMEM.
 */
int fw__scram_client_final(fw__scram_t *s, fw_slice_t *out);

/*
 * Checks the server-final-message (the SASLFinal data): "v=<signature>" must match in constant
 * time; "e=<text>" fails with FW__SCRAM_FAIL_SERVER_ERROR and keeps the text (see
 * fw__scram_server_error). Returns 0 only for a verified signature.
 */
int fw__scram_server_final(fw__scram_t *s, const uint8_t *msg, size_t len);

/*
 * True only when the server's signature was verified. lib/ must require it before accepting
 * AuthenticationOk ("SASLFinal required before AuthenticationOk").
 */
bool fw__scram_verified(const fw__scram_t *s);

/* Why the exchange failed (FW__SCRAM_FAIL_NONE while it has not). */
fw__scram_fail_t fw__scram_fail(const fw__scram_t *s);

/* A static sentence for a fail reason; never NULL. */
const char *fw__scram_fail_str(fw__scram_fail_t fail);

/*
 * The fail reason as a sentence with its details (the refused iteration count and the limit;
 * the server's e= text with bytes outside printable ASCII escaped as \xNN), written like
 * snprintf: at most cap bytes, NUL-terminated when cap > 0; returns the length it needed.
 */
size_t fw__scram_describe(const fw__scram_t *s, char *buf, size_t cap);

/*
 * The raw e= text of a server-final error (at most FW__SCRAM_ERROR_MAX bytes; *truncated says
 * whether it was longer), borrowed from s. Untrusted: escape it before logging or showing.
 */
fw_slice_t fw__scram_server_error(const fw__scram_t *s, bool *truncated);

/* Wipes every secret, nonce and message in *s. s may be NULL; calling it twice is harmless. */
void fw__scram_free(fw__scram_t *s);

/*
 * tls-server-end-point channel binding data (RFC 5929 section 4.1): the hash of the server's
 * DER certificate, with the digest of its signature algorithm (RSA-PSS: the PSS hash), MD5 and
 * SHA-1 replaced by SHA-256. A signature algorithm without a digest (Ed25519, Ed448) fails with
 * *why naming it: empty binding data would be a silent downgrade (CVE-2026-54291).
 * der/len: the certificate exactly (trailing bytes refused). out/cap: at least the digest size
 * (EVP_MAX_MD_SIZE always suffices). On success *outlen is set and *why is NULL; on failure *why
 * is a static sentence. Returns 0, FW_EINVAL (bad argument, unparsable certificate, no digest),
 * FW_ETOOBIG (cap too small) or FW_ENOMEM. Thread: any thread.
 */
int fw__scram_cert_hash(const uint8_t *der, size_t len, uint8_t *out, size_t cap, size_t *outlen,
                        const char **why);

#endif /* FW_AUTH_H */
