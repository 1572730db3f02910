/* SPDX-License-Identifier: MIT */
/*
 * fwire: stream the JSON `data` column of PostgreSQL views and tables into C programs.
 *
 * This is the one public header. It includes only <stddef.h>, <stdint.h> and <stdbool.h>,
 * forward-declares libuv's loop type and exposes no OpenSSL type.
 *
 * What this release contains (see README.md, "Status"): the error vocabulary, version queries,
 * and connections (both run modes). The stream and metrics APIs arrive with later releases and
 * are not declared here until they work.
 *
 * Conventions used by every function in this header:
 *  - Errors are negative ints. Library codes are listed in FW_ERRNO_MAP below and live in their
 *    own block (-30000 and below); libuv codes (negative errno values, UV_EOF, ...) pass through
 *    unchanged. Callers never read errno.
 *  - Thread rule: stated at each function ("any thread" means no shared mutable state).
 *  - Every borrowed pointer states how long it lives.
 */
#ifndef FWIRE_H
#define FWIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(FW_BUILDING_LIBRARY) && defined(__GNUC__)
#define FW_EXTERN __attribute__((visibility("default")))
#else
#define FW_EXTERN /* nothing */
#endif

#define FW_VERSION_MAJOR 0
#define FW_VERSION_MINOR 1
#define FW_VERSION_PATCH 0
/* One integer that sorts: 0xMMmmpp. */
#define FW_VERSION_HEX ((FW_VERSION_MAJOR << 16) | (FW_VERSION_MINOR << 8) | FW_VERSION_PATCH)

struct uv_loop_s; /* libuv's loop; fwire never requires you to include uv.h */

/*
 * A borrowed run of bytes. Whoever hands you a slice says how long `ptr` stays valid.
 * A slice is not NUL-terminated.
 */
typedef struct fw_slice_s {
    const uint8_t *ptr;
    size_t len;
} fw_slice_t;

/*
 * The library's error codes: XX(name, value, message). Values are stable across releases;
 * new codes are only appended. The block starts at -30000 so it can never collide with
 * libuv's codes (negative errno values and UV_EOF = -4095).
 */
#define FW_ERRNO_MAP(XX)                                                                         \
    /* generic */                                                                                \
    XX(EINVAL, -30001, "invalid argument")                                                       \
    XX(ENOMEM, -30002, "out of memory")                                                          \
    XX(ESTATE, -30003, "operation not allowed in the current state")                             \
    XX(ETOOBIG, -30004, "value exceeds a configured or protocol limit")                          \
    /* protocol: the server's bytes broke the PostgreSQL v3 protocol; the connection is bad */   \
    XX(EPROTO_SHORT, -30100, "protocol: message length below 4 (lost synchronization)")          \
    XX(EPROTO_TOO_LARGE, -30101, "protocol: message length exceeds the limit for its type")      \
    XX(EPROTO_UNKNOWN_TYPE, -30102, "protocol: unknown backend message type")                    \
    XX(EPROTO_NEG_LENGTH, -30103, "protocol: negative field length other than -1 (NULL)")        \
    XX(EPROTO_FIELD_COUNT, -30104, "protocol: field count disagrees with the message contents")  \
    XX(EPROTO_UNTERMINATED, -30105, "protocol: string not terminated within its message")        \
    XX(EPROTO_TRAILING, -30106, "protocol: trailing bytes after the message contents")           \
    XX(EPROTO_TRUNCATED, -30107, "protocol: message contents end before a declared field")       \
    XX(EPROTO_BAD_VALUE, -30108, "protocol: field holds a value the protocol does not allow")    \
    XX(EPROTO_UNSUPPORTED, -30109, "protocol: message type is valid but not supported by fwire") \
    XX(EPROTO_UNEXPECTED, -30110, "protocol: message not allowed in the current state")          \
    /* connecting */                                                                             \
    XX(EAUTH, -30200, "authentication failed or refused")                                        \
    XX(ESERVER, -30201, "the server reported an error")                                          \
    XX(ECONFIG, -30202, "invalid connection options")                                            \
    XX(ETLS, -30203, "TLS negotiation or verification failed")                                   \
    XX(ECLOSED, -30204, "the connection was closed")                                             \
    XX(ETIMEDOUT, -30205, "timeout expired")

/* The enum the map generates: FW_EINVAL, FW_EPROTO_SHORT, ... */
typedef enum fw_errno_e {
#define FW__ERR_ENUM(name, value, msg) FW_##name = (value),
    FW_ERRNO_MAP(FW__ERR_ENUM)
#undef FW__ERR_ENUM
} fw_errno_t;

/*
 * The symbolic name of an error code ("FW_EPROTO_SHORT", or libuv's "ECONNREFUSED").
 * Returns a static string, never NULL: "FW_EUNKNOWN" for a code nobody defined.
 * Thread: any thread.
 */
FW_EXTERN const char *fw_err_name(int err);

/*
 * A one-line English description of an error code. Returns a static string, never NULL.
 * libuv codes are described by libuv. Thread: any thread.
 */
FW_EXTERN const char *fw_strerror(int err);

/* The library's version as FW_VERSION_HEX would be at its build. Thread: any thread. */
FW_EXTERN unsigned int fw_version(void);

/* The library's version as "MAJOR.MINOR.PATCH"; a static string. Thread: any thread. */
FW_EXTERN const char *fw_version_string(void);

/* ==== connections ========================================================================= */

/*
 * Where a connection attempt was when something happened. A timeout names its phase
 * ("timeout expired during the TLS handshake phase").
 */
typedef enum fw_phase_e {
    FW_PHASE_NONE = 0,
    FW_PHASE_CONFIG,        /* reading the connection string, environment and passfile */
    FW_PHASE_DNS,           /* resolving the host name */
    FW_PHASE_CONNECT,       /* TCP or unix-socket connect */
    FW_PHASE_SSL_RESPONSE,  /* waiting for the answer to SSLRequest */
    FW_PHASE_TLS_HANDSHAKE, /* TLS handshake and certificate verification */
    FW_PHASE_AUTH,          /* startup message sent, authenticating */
    FW_PHASE_STARTUP,       /* authenticated, waiting for the first ReadyForQuery */
    FW_PHASE_READY,         /* connected */
    FW_PHASE_CLOSED         /* the connection ended */
} fw_phase_t;

/* "DNS lookup", "TLS handshake", ...: a static string. Thread: any thread. */
FW_EXTERN const char *fw_phase_name(fw_phase_t phase);

/*
 * One error, caller-owned: no pointer inside, so it can be copied and kept. Every text is
 * NUL-terminated; text the server sent is escaped (control characters as \xNN) and never
 * contains a password.
 */
typedef struct fw_error_s {
    int code;           /* 0: no error; else an FW_E* or libuv code */
    fw_phase_t phase;   /* where it happened */
    char sqlstate[6];   /* the server's SQLSTATE ("28P01"), or "" */
    char severity[16];  /* the server's severity ("FATAL"), or "" */
    char message[1024]; /* what happened; with several hosts, every attempt's failure */
    char detail[256];   /* the server's DETAIL, or "" */
    char hint[256];     /* the server's HINT, or "" */
} fw_error_t;

/* A NoticeResponse, borrowed for the duration of the callback only. */
typedef struct fw_notice_s {
    const char *severity; /* "NOTICE", "WARNING", ... */
    const char *sqlstate;
    const char *message; /* escaped */
} fw_notice_t;

/* Levels of the log hook. */
typedef enum fw_log_level_e { FW_LOG_DEBUG = 0, FW_LOG_INFO, FW_LOG_WARNING } fw_log_level_t;

/* One protocol message for the trace hook; every pointer is borrowed for the call only. */
typedef struct fw_trace_s {
    char direction;      /* '>' sent by fwire, '<' received from the server */
    uint8_t type;        /* the type byte; 0 for the untyped StartupMessage and SSLRequest */
    size_t length;       /* the message's length field (it counts itself, not the type byte) */
    const uint8_t *body; /* length - 4 bytes; NULL when redacted: password and SASL messages */
} fw_trace_t;

typedef struct fw_conn_s fw_conn_t;
typedef struct fw_runtime_s fw_runtime_t;

/*
 * Options of a connection. Initialise with fw_conn_opts_init(), then set what you need.
 * Every pointer is borrowed until fw_conn_new() / fw_conn_connect_sync() returns (they copy).
 */
typedef struct fw_conn_opts_s {
    /*
     * A libpq connection string, keyword/value ("host=db1 dbname=app sslmode=verify-full") or
     * URI ("postgresql://app@db1/app?sslmode=verify-full"); NULL or "" for the environment and
     * defaults alone. Supported keywords and what fwire refuses: docs/connection-strings.md.
     */
    const char *conninfo;
    /* Read PG* environment variables and the passfile as libpq does. Default true. */
    bool use_environment;
    /*
     * The largest SCRAM iteration count accepted from a server. Each iteration costs an HMAC,
     * so an unbounded count lets a hostile server burn the client's CPU. Default 1,000,000;
     * 0 means the default.
     */
    uint32_t scram_max_iterations;
    /* Called on the loop thread for each NoticeResponse; NULL to drop notices. */
    void (*notice_cb)(void *ud, const fw_notice_t *notice);
    void *notice_ud;
    /* Called on the loop thread for each NotificationResponse (LISTEN/NOTIFY): the sending
     * backend's pid, the channel and the payload, escaped, borrowed for the call. NULL to drop. */
    void (*notification_cb)(void *ud, int32_t pid, const char *channel, const char *payload);
    void *notification_ud;
    /* Called on the loop thread with one line about what the connection does (attempts, TLS,
     * authentication, failures, passfile warnings); the line is borrowed for the call and never
     * contains a password. NULL: no log. */
    void (*log_cb)(void *ud, fw_log_level_t level, const char *line);
    void *log_ud;
    /* Called on the loop thread for every protocol message sent and received (after TLS),
     * in order. Password and SASL message bodies are never shown. NULL: no trace. */
    void (*trace_cb)(void *ud, const fw_trace_t *msg);
    void *trace_ud;
    void *reserved[8]; /* zero; room to grow without breaking the ABI */
} fw_conn_opts_t;

/* Fills *opts with the defaults above. Thread: any thread. */
FW_EXTERN void fw_conn_opts_init(fw_conn_opts_t *opts);

/*
 * Called once when a connection attempt ends: status 0 and err NULL on success, else a
 * negative code with *err describing it (borrowed for the call). Runs on the loop thread.
 */
typedef void (*fw_connect_cb)(fw_conn_t *conn, int status, const fw_error_t *err, void *ud);
/* Called once when a connection is closed; its memory is released right after it returns. */
typedef void (*fw_close_cb)(fw_conn_t *conn, void *ud);

/*
 * Embedded mode: creates a connection that will live on the caller's libuv loop. Parses and
 * validates every option now, so configuration errors come back here, before any socket:
 * FW_ECONFIG with *err filled (err may be NULL). Returns 0 and *out, FW_EINVAL or FW_ENOMEM.
 * Thread: the loop's thread.
 */
FW_EXTERN int fw_conn_new(fw_conn_t **out, struct uv_loop_s *loop, const fw_conn_opts_t *opts,
                          fw_error_t *err);

/*
 * Starts connecting: every host of the connection string in order, every address of each host,
 * with TLS and authentication as configured, within connect_timeout per host. `cb` runs exactly
 * once, later, on the loop thread (never inside this call), also when the connection is closed
 * before it finished (status FW_ECLOSED). Errors: FW_EAUTH (refused or failed authentication,
 * SQLSTATE in err when the server sent one), FW_ESERVER, FW_ETLS, FW_ETIMEDOUT (err->phase names
 * where), FW_EPROTO_*, libuv codes such as UV_ECONNREFUSED or UV_ENOENT. Returns 0, or FW_ESTATE
 * when already started (then cb never runs). Thread: the loop's thread.
 */
FW_EXTERN int fw_conn_connect(fw_conn_t *conn, fw_connect_cb cb, void *ud);

/*
 * Closes the connection: sends Terminate when connected, closes the socket and every handle,
 * ends a pending connect (its callback runs first, with FW_ECLOSED), then runs `cb` (may be
 * NULL) and frees the memory. Legal inside any fwire callback. Calling it twice is harmless.
 * Thread: the loop's thread.
 */
FW_EXTERN void fw_conn_close(fw_conn_t *conn, fw_close_cb cb, void *ud);

/* Facts about a connected connection. Strings are borrowed until the connection is closed. */
typedef struct fw_conn_info_s {
    int server_version; /* server_version_num, e.g. 150018 */
    const char *server_version_str;
    const char *user;
    const char *database;
    const char *host;    /* the host (or socket directory) connected to */
    const char *address; /* the numeric address ("127.0.0.1", "/run/postgresql/.s.PGSQL.5432") */
    int port;
    const char *transport;   /* "unix" or "tcp" */
    const char *tls_version; /* "TLSv1.3", or NULL without TLS */
    const char *tls_cipher;  /* or NULL */
    const char *auth_method; /* "trust" (none asked), "password", "md5", "SCRAM-SHA-256",
                                "SCRAM-SHA-256-PLUS" */
    bool channel_binding;    /* SCRAM-SHA-256-PLUS was used */
    int32_t backend_pid;
    double connect_seconds; /* from fw_conn_connect to the first ReadyForQuery */
    void *reserved[8];
} fw_conn_info_t;

/*
 * Fills *info for a connected connection. Returns 0 or FW_ESTATE (not connected).
 * Thread: the loop's thread, or in threaded mode any thread (the facts do not change).
 */
FW_EXTERN int fw_conn_info(const fw_conn_t *conn, fw_conn_info_t *info);

/*
 * A ParameterStatus value as the server reported it by the end of the connect
 * ("server_version", "TimeZone", ...), or NULL. Borrowed until the connection is closed.
 * Thread: as fw_conn_info.
 */
FW_EXTERN const char *fw_conn_parameter(const fw_conn_t *conn, const char *name);

/*
 * Threaded mode: a runtime owns one loop thread that serves many connections. SIGPIPE is
 * blocked on that thread. Returns 0 or FW_ENOMEM / a libuv code. Thread: any thread.
 */
FW_EXTERN int fw_runtime_new(fw_runtime_t **out);

/*
 * Closes every connection still open on the runtime, stops its thread and frees it.
 * NULL is a no-op. Thread: any thread but the runtime's own.
 */
FW_EXTERN void fw_runtime_free(fw_runtime_t *rt);

/*
 * Threaded mode: connects on the runtime's loop and waits for the outcome (connect_timeout of
 * the connection string bounds each host; without it the wait is unbounded, as in libpq).
 * Returns 0 and *out, or a negative code with *err filled (err may be NULL) and *out NULL.
 * Thread: any thread but the runtime's own.
 */
FW_EXTERN int fw_conn_connect_sync(fw_runtime_t *rt, const fw_conn_opts_t *opts, fw_conn_t **out,
                                   fw_error_t *err);

/* Threaded mode: closes a connection made by fw_conn_connect_sync and waits until it is freed.
 * NULL is a no-op. Thread: any thread but the runtime's own. */
FW_EXTERN void fw_conn_close_sync(fw_conn_t *conn);

#ifdef __cplusplus
}
#endif

#endif /* FWIRE_H */
