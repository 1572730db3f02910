/* SPDX-License-Identifier: MIT */
/*
 * The startup and authentication exchange of one connection attempt, sans-I/O (STYLE 2): it is
 * fed the bytes the server sent (after TLS, if any) and appends what to send to an output
 * buffer. The transport, TLS and timers live elsewhere; this file decides everything about
 * authentication, so tests drive it with byte vectors alone.
 *
 *   fw__startup_init -> fw__startup_begin (StartupMessage) -> fw__startup_feed ... ->
 *   [FW__SU_DERIVE: run fw__startup_derive_work_cancellable(), maybe on a worker thread,
 *    then fw__startup_derived] -> ... -> FW__SU_READY or FW__SU_FAILED -> fw__startup_free
 *
 * Policy enforced here, before any secret leaves (RELIABILITY.md "bar" 1):
 *   - require_auth (libpq grammar, parsed by conninfo into a bitmask): a request for a method
 *     not allowed ends the attempt without answering it, and AuthenticationOk is checked again
 *     ("server did not complete authentication").
 *   - channel_binding=require: any non-SASL request, a SASL offer without -PLUS, no TLS, or no
 *     usable binding data ends the attempt before a password is sent; AuthenticationOk after
 *     an exchange without binding is refused.
 *   - SCRAM: the server signature must be verified (SASLFinal) before AuthenticationOk.
 *   - GSS, SSPI, Kerberos and SCM are refused as unsupported.
 *   - Protocol version (PG18, libpq 18's rules): the StartupMessage asks for max_protocol and no
 *     `_pq_.` options. NegotiateProtocolVersion is accepted only as the server's first message,
 *     once, naming a version from 3.0 up to the one asked for (never 3.1) with no options
 *     (we asked for none) and some change; a version below min_protocol ends the attempt
 *     (FW_EPROTOCOL_VERSION). Anything else about it is a protocol error: a hostile or broken
 *     server. BackendKeyData's key must be exactly 4 bytes under 3.0, 4 to 256 under 3.2.
 */
#ifndef FW_STARTUP_H
#define FW_STARTUP_H

#include "auth.h"
#include "fwire.h"
#include "proto.h"
#include "servermsg.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* channel_binding */
typedef enum fw__cb_mode_e { FW__CB_DISABLE, FW__CB_PREFER, FW__CB_REQUIRE } fw__cb_mode_t;

/* The authentication method a connection ended up using. */
typedef enum fw__auth_method_e {
    FW__AUTH_NONE = 0, /* the server asked for nothing (trust, peer, cert) */
    FW__AUTH_PASSWORD, /* cleartext */
    FW__AUTH_MD5,
    FW__AUTH_SCRAM,
    FW__AUTH_SCRAM_PLUS
} fw__auth_method_t;

/* Bits of fw__startup_opts_t.allowed: the request codes of the protocol, as in conninfo.h. */
#define FW__SU_ALLOW(code) (UINT32_C(1) << (code))

typedef struct fw__startup_opts_s {
    /* Startup parameters; borrowed for the life of the exchange. user and database required. */
    const char *user;
    const char *database;
    const char *application_name; /* NULL: not sent */
    const char *options;          /* the "options" startup parameter; NULL: not sent */
    /* The password (NUL-terminated) or NULL; borrowed. */
    const char *password;
    /* The transport below is TLS. With binding data, SCRAM-SHA-256-PLUS can be used. */
    bool tls;
    const uint8_t *cb_data; /* tls-server-end-point data, or NULL */
    size_t cb_data_len;
    const char *cb_why; /* why there is none on TLS (e.g. an Ed25519 certificate), or NULL */
    fw__cb_mode_t channel_binding;
    /* require_auth: when `restrict_auth` is set, only the request codes in `allowed` may be
     * answered, and `auth_required` says whether the server must authenticate at all. */
    bool restrict_auth;
    bool auth_required;
    uint32_t allowed;
    uint32_t scram_max_iterations; /* 0: FW__SCRAM_MAX_ITERATIONS_DEFAULT */
    /* Protocol versions (FW__PQ_PROTOCOL_3_0, FW__PQ_PROTOCOL_3_2): the StartupMessage asks for
     * max_protocol, and the server may not settle below min_protocol. 0 means 3.0. */
    uint32_t min_protocol, max_protocol;
    size_t max_message; /* 0: proto's default */
    /* NoticeResponse during startup, handed over parsed; NULL to drop them. */
    void (*notice_fn)(void *ud, const fw__pq_msg_t *notice);
    void *notice_ud;
    /* Every message received, before it is acted on (the protocol trace); NULL for none. */
    void (*msg_fn)(void *ud, const fw__pq_msg_t *msg);
    void *msg_ud;
} fw__startup_opts_t;

typedef enum fw__su_result_e {
    FW__SU_CONTINUE = 0, /* flush `out` (it may be empty) and feed more bytes */
    FW__SU_DERIVE,       /* call fw__startup_derive_work (any thread), then fw__startup_derived */
    FW__SU_READY,        /* the first ReadyForQuery arrived: the connection is usable */
    FW__SU_FAILED        /* see fw__startup_error */
} fw__su_result_t;

typedef enum fw__su_state_e {
    FW__SU_S_INIT,
    FW__SU_S_AUTH,        /* StartupMessage sent: waiting for an authentication request */
    FW__SU_S_SASL_FIRST,  /* SASLInitialResponse sent: waiting for SASLContinue */
    FW__SU_S_SASL_DERIVE, /* waiting for the caller to run the key derivation */
    FW__SU_S_SASL_FINAL,  /* SASLResponse sent: waiting for SASLFinal */
    FW__SU_S_SASL_DONE,   /* signature verified: waiting for AuthenticationOk */
    FW__SU_S_PASSWORD,    /* a password message sent: waiting for AuthenticationOk */
    FW__SU_S_AUTH_OK,     /* authenticated: waiting for BackendKeyData, params, ReadyForQuery */
    FW__SU_S_READY,
    FW__SU_S_FAILED
} fw__su_state_t;

typedef struct fw__startup_s {
    fw__startup_opts_t o;
    fw__su_state_t state;
    fw__pq_reader_t reader;
    fw__pq_buf_t *out; /* borrowed: where messages to send are appended */
    fw__scram_t scram;
    bool scram_used;
    bool password_sent; /* any secret (password, md5 hash, SCRAM proof) left this client */
    fw__auth_method_t method;
    uint32_t protocol;       /* asked for, then as the server negotiated it */
    bool negotiated;         /* a NegotiateProtocolVersion arrived */
    unsigned long nmsgs;     /* messages received so far */
    fw__pq_cancel_key_t key; /* BackendKeyData; key.len 0 until it arrives */
    fw__params_t params;
    /* The failure: an FW_E* / libuv code, a message, and the server's fields when it sent an
     * ErrorResponse. */
    int err;
    char errmsg[512];
    bool have_server_error;
    fw_error_t server_error; /* code FW_ESERVER, phase FW_PHASE_AUTH */
} fw__startup_t;

/*
 * Prepares an exchange. `o` is copied (its strings stay borrowed); `out` is borrowed for the
 * life of the exchange. Returns 0 or FW_EINVAL (no user or database).
 */
int fw__startup_init(fw__startup_t *su, const fw__startup_opts_t *o, fw__pq_buf_t *out);

/* Appends the StartupMessage. Returns FW__SU_CONTINUE or FW__SU_FAILED. */
fw__su_result_t fw__startup_begin(fw__startup_t *su);

/*
 * Feeds bytes from the server (borrowed for the call only; anything not consumed is copied
 * into the reader). Returns what to do next. After FW__SU_READY, bytes that came after the
 * ReadyForQuery stay in su->reader for the connection to take over.
 */
fw__su_result_t fw__startup_feed(fw__startup_t *su, const uint8_t *buf, size_t len);

/*
 * The expensive SCRAM step; touches only su->scram (safe on a worker thread). Returns 0 or an
 * error, which fw__startup_derived reports. cancel: NULL, or a flag any thread may set to stop
 * the derivation within about a millisecond (a timed-out or closed attempt must not keep a core
 * busy, CVE-2026-42198); it is only read, and must outlive the call. Cancelled: FW_ECLOSED,
 * and the SCRAM state is failed and wiped (fw__startup_derived then fails the attempt).
 * Thread: whichever thread owns su for the duration; the flag's writer may be any thread.
 */
int fw__startup_derive_work_cancellable(fw__startup_t *su, const _Atomic bool *cancel);

/* fw__startup_derive_work_cancellable(su, NULL). */
int fw__startup_derive_work(fw__startup_t *su);

/* After fw__startup_derive_work returned `rc` on whatever thread: continue the exchange. */
fw__su_result_t fw__startup_derived(fw__startup_t *su, int rc);

/* The failure message (empty while none), NUL-terminated, borrowed from su. */
const char *fw__startup_error(const fw__startup_t *su);

/* Wipes every secret (the cancel key too) and releases the reader. su may be reused after
 * fw__startup_init. */
void fw__startup_free(fw__startup_t *su);

#endif /* FW_STARTUP_H */
