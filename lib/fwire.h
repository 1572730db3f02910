/* SPDX-License-Identifier: MIT */
/*
 * fwire: stream the JSON `data` column of PostgreSQL views and tables into C programs.
 *
 * This is the one public header. It includes only <stddef.h>, <stdint.h> and <stdbool.h>,
 * forward-declares libuv's loop type and exposes no OpenSSL type.
 *
 * What this release contains (see README.md, "Status"): the error vocabulary, version queries,
 * an allocator hook, connections and streaming queries, in both run modes:
 *  - embedded: fwire lives on your libuv loop; you are told when rows are ready;
 *  - threaded: a runtime owns a loop thread; your threads block in fw_stream_next().
 *
 * Conventions used by every function in this header:
 *  - Errors are negative ints. Library codes are listed in FW_ERRNO_MAP (fwire_base.h) and live in their
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

#include "fwire_base.h" /* error codes, fw_slice_t, fw_allocator_t */

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
 * The symbolic name of an error code ("FW_EPROTO_SHORT", or libuv's "ECONNREFUSED").
 * Returns a static string, never NULL: "FW_END", "FW_ROW" and "FW_AGAIN" for the results of
 * fw_stream_next() (0, 1, 2), "FW_EUNKNOWN" for a code nobody defined. Thread: any thread.
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

/* ==== memory ============================================================================== */

/*
 * Installs `a` (copied) as fwire's allocator, or libc's malloc/realloc/free when `a` is NULL.
 * Call it before any other fwire function and never while fwire owns memory: memory is always
 * released through the allocator that made it. Returns 0, or FW_EINVAL when a function is
 * missing. Thread: any thread, before fwire is used.
 */
FW_EXTERN int fw_allocator_set(const fw_allocator_t *a);

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
    FW_PHASE_CLOSED,        /* the connection ended */
    FW_PHASE_ROUTE          /* connected, checking the server against target_session_attrs */
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
    /*
     * The largest message accepted from the server, its length field included: the maximum row
     * size (a row's JSON is the message less 11 bytes). A DataRow over it fails its stream with
     * FW_ETOOBIG; the query is cancelled, its bytes are skipped as they arrive, never buffered,
     * and the connection stays usable. Any other message over it is a protocol error that ends
     * the connection, and so is a DataRow longer than any one-column row can be (1 GiB + 10).
     * Default 256 MiB (the largest jsonb PostgreSQL stores); 0 means the default; at most
     * INT32_MAX.
     */
    size_t max_message;
    void *reserved[7]; /* zero; room to grow without breaking the ABI */
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
 * where), FW_EPROTOCOL_VERSION (the server offers a protocol version below the connection
 * string's min_protocol_version), FW_EPROTO_*, libuv codes such as UV_ECONNREFUSED or
 * UV_ENOENT. Returns 0, or FW_ESTATE when already started (then cb never runs).
 * Thread: the loop's thread.
 */
FW_EXTERN int fw_conn_connect(fw_conn_t *conn, fw_connect_cb cb, void *ud);

/*
 * Closes the connection: sends Terminate when connected, closes the socket and every handle,
 * ends a pending connect (its callback runs first, with FW_ECLOSED), then runs `cb` (may be
 * NULL) and frees the memory. Legal inside any fwire callback. Calling it twice is harmless.
 * Thread: the loop's thread.
 */
FW_EXTERN void fw_conn_close(fw_conn_t *conn, fw_close_cb cb, void *ud);

/* fw_conn_when_idle's callback: status 0 when the connection can take the next query, else
 * FW_ESTATE (it broke: close it) or FW_ECLOSED (it was closed first). */
typedef void (*fw_idle_cb)(fw_conn_t *conn, int status, void *ud);

/*
 * Embedded mode: tells you when `conn` can take the next query, so you never poll on
 * FW_EBUSY. After a stream ends on its own the connection is idle at once; after one is
 * cancelled or freed mid-way (fw_stream_cancel, fw_stream_free) the rest of its reply is drained
 * and the server must close the cancel connection first (a late cancel could otherwise hit the
 * next query). `cb` runs exactly once, later, on the loop thread (never inside this call): with
 * 0 once fw_stream_start will not say FW_EBUSY; with FW_ESTATE if the connection broke
 * meanwhile; with FW_ECLOSED, from inside fw_conn_close, if it is closed first. Any fwire call is
 * legal inside it, fw_stream_start included.
 * Returns 0, FW_EINVAL (conn or cb NULL, or a threaded-mode connection: fw_stream_start there
 * is a blocking call on your thread), FW_EBUSY (a callback is already waiting) or FW_ESTATE
 * (fw_conn_close was called); then cb never runs. Thread: the loop's thread.
 */
FW_EXTERN int fw_conn_when_idle(fw_conn_t *conn, fw_idle_cb cb, void *ud);

/*
 * The kind of server a connection is on. PostgreSQL 14 and later report in_hot_standby at
 * start-up and again when it changes (a promotion); for an older server the role is known only
 * when target_session_attrs made fwire ask (SELECT pg_is_in_recovery()).
 */
typedef enum fw_server_role_e {
    FW_ROLE_UNKNOWN = 0,
    FW_ROLE_PRIMARY = 1, /* not in recovery: accepts writes unless sessions are read-only */
    FW_ROLE_STANDBY = 2  /* a hot standby: read-only */
} fw_server_role_t;

/* "unknown", "primary" or "standby". Static. Thread: any. */
FW_EXTERN const char *fw_server_role_name(fw_server_role_t role);

/*
 * The role of the server `conn` is on now: it changes when the server reports a new
 * in_hot_standby (a standby promoted while connected). A pool compares it with the role at
 * connect (fw_conn_info_t.role) to retire a connection whose server changed. FW_ROLE_UNKNOWN
 * for NULL or a connection never connected. Thread: any (an atomic read).
 */
FW_EXTERN fw_server_role_t fw_conn_role(const fw_conn_t *conn);

/*
 * Whether a session on `conn` is read-only now: the server is a hot standby, its
 * default_transaction_read_only is on, or a query failed with SQLSTATE 25006 (read-only SQL
 * transaction; the error itself reaches the stream as FW_ESERVER with that SQLSTATE). false for
 * NULL. Thread: any (an atomic read).
 */
FW_EXTERN bool fw_conn_read_only(const fw_conn_t *conn);

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
    fw_server_role_t role;  /* at connect (fw_conn_role: now) */
    bool read_only;         /* at connect (fw_conn_read_only: now) */
    /* The protocol version in use, major * 10000 + minor, as libpq's PQfullProtocolVersion:
     * 30000 (3.0) or 30002 (3.2). What the StartupMessage asks for is max_protocol_version of
     * the connection string (default 3.0); a server that offers less says so
     * (NegotiateProtocolVersion) and the connection goes on at its version, unless that is
     * below min_protocol_version. Added in place of one reserved slot: the size is unchanged. */
    int protocol_version;
    /* Room for later fields: the three above took two of the eight reserved slots (LP64). */
    void *reserved[6];
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

/* ---- connection pool ------------------------------------------------------------------------
 *
 * A pool of connections to the servers of one connection string (a host list welcome), on
 * your loop (embedded: fw_pool_new) or on a runtime's loop (threaded: fw_pool_new_rt). It knows each server's role (primary or standby, from in_hot_standby), hands out
 * connections by what the caller wants to do, retires a connection whose server changed role,
 * and keeps a failing host from costing every request a timeout: per host, exponential
 * back-off with jitter after a failed connect and a circuit breaker (open after
 * `breaker_threshold` failures in a row; after `breaker_cooldown_ms` one probe connect decides
 * whether it closes again). When every host that could take a write has an open breaker (the
 * primary died), a standby is dialled again for a write once per cooldown, so a promotion is
 * found; writes wait for that rather than fail with FW_EROUTE. target_session_attrs and
 * load_balance_hosts of the connection string are not used: the pool routes each request
 * itself.
 * Thread: embedded mode, everything on the loop's thread. Threaded mode: the calls marked so
 * from any thread but the runtime's (the pool itself runs on the runtime's loop; its hooks,
 * log_cb and after_connect, run there too).
 */
typedef struct fw_pool_s fw_pool_t;

/* What an acquire wants. */
typedef enum fw_pool_want_e {
    FW_POOL_WRITE = 0,       /* a primary whose sessions are not read-only */
    FW_POOL_READ = 1,        /* a standby when one is usable, else the primary */
    FW_POOL_READ_STANDBY = 2 /* a standby only */
} fw_pool_want_t;

typedef struct fw_pool_opts_s {
    const char *conninfo;         /* borrowed for fw_pool_new */
    bool use_environment;         /* PG* variables and the passfile, as fw_conn_opts_t (true) */
    unsigned max_size;            /* connections open or opening at most (10) */
    unsigned acquire_timeout_ms;  /* an acquire waits this long at most (5,000; 0 is refused:
                                     FW_EINVAL, there is no "no limit") */
    unsigned max_lifetime_ms;     /* a connection is retired at release after this (1,800,000;
                                     0: never) */
    unsigned lifetime_jitter_ms;  /* minus up to this much, at random per connection (so a
                                     pool's connections do not all expire at once; 60,000) */
    unsigned idle_timeout_ms;     /* an idle connection is closed after this (600,000; 0: never) */
    unsigned breaker_threshold;   /* failed connects in a row that open a host's breaker (3) */
    unsigned breaker_cooldown_ms; /* how long it stays open before one probe (5,000) */
    unsigned backoff_base_ms;     /* first back-off after a failed connect, doubled each time
                                     up to the cooldown, with +-50 % jitter (100) */
    /* Connections kept open ahead of demand (0). They are opened in the background from
     * fw_pool_new on, to the least used hosts that are not backing off (a host's breaker and
     * back-off apply as for any connect), and opened again when one is retired; the idle
     * timeout closes none below this number. At most max_size (else fw_pool_new: FW_EINVAL). */
    unsigned min_size;
    /* A connection idle at least this long is checked before it is handed out: one empty
     * simple Query (EmptyQueryResponse and ReadyForQuery, the cheapest round trip). One that
     * fails it (an error, the server gone, no answer within health_check_timeout_ms: a
     * half-open peer) is closed (closed_health) and the waiter gets another connection, old or
     * new, without noticing. 0: every hand-out is checked; UINT_MAX: never (30,000). */
    unsigned health_check_after_ms;
    unsigned health_check_timeout_ms; /* the check's answer waits this long at most, and so
                                         does after_connect_sql's (5,000; 0: no limit, which
                                         lets a half-open peer hold a waiter until its
                                         acquire timeout) */
    /* SQL every new connection runs before it is usable (NULL: none): one simple Query, which
     * may hold several statements ("SET application_name = 'api'; SET search_path = app").
     * Copied by fw_pool_new. The pool waits for the server's answer, up to
     * health_check_timeout_ms; an error fails that connection as a failed connect would (the
     * host's back-off and breaker count it) and the server's SQLSTATE and message are what an
     * acquire that then times out or is refused reports. Run nothing that leaves a query
     * running; SQL that leaves a transaction block open (BEGIN without COMMIT) fails the
     * connection the same way. */
    const char *after_connect_sql;
    /* Called once per new connection, after after_connect_sql, before it is handed out
     * (nothing may be left running on the connection when it returns). Loop thread. */
    void (*after_connect)(fw_pool_t *pool, fw_conn_t *conn, void *ud);
    void *after_connect_ud;
    /* Hooks every connection gets (as fw_conn_opts_t; may be NULL). */
    void (*log_cb)(void *ud, fw_log_level_t level, const char *line);
    void *log_ud;
    /* The pool's name: the value of the label `pool` on its fraiseql_pool_* metrics (NULL:
     * "default"; 1 to 63 bytes, else fw_pool_new: FW_EINVAL). Copied by fw_pool_new. Pools of
     * the same name add into the same series; past 16 names, further ones are "other". */
    const char *name;
    /* Zero (fw_pool_opts_init sets it): room for later options without breaking the ABI; a
     * later field takes a slot's place and the size stays the same. */
    void *reserved[8];
} fw_pool_opts_t;

/* Fills *o (caller's storage) with the defaults above. Thread: any thread. */
FW_EXTERN void fw_pool_opts_init(fw_pool_opts_t *o);

/*
 * Creates a pool on `loop` (embedded mode). Nothing connects inside the call; connections open
 * on the first acquire, or from the loop at once up to min_size. opts and the strings in it
 * are borrowed for the call only (conninfo and after_connect_sql are copied). Returns 0 and
 * *out, or FW_EINVAL (a NULL argument, max_size 0, min_size > max_size, acquire_timeout_ms 0:
 * *err says which), FW_ENOMEM or FW_ECONFIG (the connection string is bad: *err says why);
 * *out NULL then. err may be NULL. The pool is the library's memory: free it with
 * fw_pool_close. Loop thread.
 */
FW_EXTERN int fw_pool_new(fw_pool_t **out, struct uv_loop_s *loop, const fw_pool_opts_t *opts,
                          fw_error_t *err);

/*
 * Called once with a connection that is READY and idle (status 0; it is yours until
 * fw_pool_release), or without one (conn NULL): FW_ETIMEDOUT (acquire_timeout_ms passed),
 * FW_EROUTE (no server of the kind wanted is usable: every candidate host's breaker is open
 * and nothing is coming back), FW_ECLOSED (the pool is closing). err is borrowed for the call.
 */
typedef void (*fw_pool_acquire_cb)(fw_pool_t *pool, fw_conn_t *conn, int status,
                                   const fw_error_t *err, void *ud);

/*
 * Asks for a connection; `cb` runs later on the loop thread, never inside this call. Returns 0
 * (cb will run exactly once), FW_EINVAL (also: a threaded pool, use fw_pool_acquire_wait) or
 * FW_ESTATE (the pool is closing); cb never runs then. The connection stays the pool's memory:
 * never fw_conn_close it, give it back with fw_pool_release. Loop thread.
 */
FW_EXTERN int fw_pool_acquire(fw_pool_t *pool, fw_pool_want_t want, fw_pool_acquire_cb cb,
                              void *ud);

/*
 * Gives a connection back. Free its stream first (fw_stream_free); a stream cancelled or freed
 * mid-way is drained before the connection is reused (fw_conn_when_idle). A connection that is
 * broken, past its lifetime, or whose server changed role since it was opened (a promotion
 * or demotion, or SQLSTATE 25006 on a primary) is closed instead. NULLs, and a connection the
 * pool did not hand out (or already has back), are ignored. Loop thread; threaded mode: any
 * thread but the runtime's (it waits for the loop to take it, not for the drain).
 */
FW_EXTERN void fw_pool_release(fw_pool_t *pool, fw_conn_t *conn);

/* Counters and gauges of a pool (the same figures, summed over every pool of the process, are
 * the fraiseql_pool_* metric families: docs/METRICS.md). */
typedef struct fw_pool_stats_s {
    unsigned size;    /* open or opening */
    unsigned idle;    /* ready in the pool (a health check running counts here) */
    unsigned in_use;  /* handed out */
    unsigned opening; /* connecting, or running after_connect_sql */
    unsigned waiting; /* acquires waiting */
    uint64_t acquires, acquire_timeouts, acquire_refused;
    double acquire_wait_seconds; /* total time acquires waited (÷ acquires: the mean) */
    double acquire_wait_max_seconds;
    uint64_t opened, connect_failures;
    /* closed, by reason */
    uint64_t closed_lifetime, closed_idle, closed_role, closed_error, closed_pool;
    uint64_t health_checks; /* round trips made before a hand-out */
    uint64_t closed_health; /* closed because one failed */
    uint64_t reserved[6];
} fw_pool_stats_t;

/* Fills *st (caller's storage). Returns 0 or FW_EINVAL. Loop thread; threaded mode: any
 * thread but the runtime's (read on the loop). */
FW_EXTERN int fw_pool_stats(const fw_pool_t *pool, fw_pool_stats_t *st);

/* One host of the pool's list, as the pool sees it. Strings borrowed until fw_pool_close. */
typedef struct fw_pool_host_s {
    const char *host; /* as in the connection string */
    int port;
    fw_server_role_t role; /* as last connected (FW_ROLE_UNKNOWN before) */
    const char *breaker;   /* "closed", "open" or "half-open" */
    unsigned failures;     /* failed connects in a row */
    unsigned connections;  /* open or opening to this host */
    uint64_t connects, probes;
} fw_pool_host_t;

/* Host i (0-based, in the order of the connection string) into *out (caller's storage; its
 * strings are the pool's, valid until the pool is closed). 0, or FW_EINVAL past the end.
 * Thread: as fw_pool_stats. */
FW_EXTERN int fw_pool_host(const fw_pool_t *pool, size_t i, fw_pool_host_t *out);

/* Called once when the pool is gone (its memory is freed right after). */
typedef void (*fw_pool_close_cb)(fw_pool_t *pool, void *ud);

/*
 * Drains and closes: every waiting acquire gets FW_ECLOSED, idle connections close now, a
 * connection still handed out closes when it is released. `cb` (may be NULL) runs once when
 * every connection is closed, then the pool's memory is freed. Later calls on the pool are
 * FW_ESTATE, except fw_pool_release. NULL, a second call, and a threaded pool (use
 * fw_pool_close_sync) are ignored. Loop thread.
 */
FW_EXTERN void fw_pool_close(fw_pool_t *pool, fw_pool_close_cb cb, void *ud);

/*
 * Threaded mode: creates a pool on the runtime's loop (as fw_pool_new; same options, same
 * returns). Its connections carry the runtime: fw_stream_start (no rows-ready callback) and
 * fw_stream_next work on them from the calling thread, as on fw_conn_connect_sync's. Close it
 * with fw_pool_close_sync before fw_runtime_free; a pool still open then is closed by
 * fw_runtime_free, connections handed out included. Thread: any thread but the runtime's.
 */
FW_EXTERN int fw_pool_new_rt(fw_pool_t **out, fw_runtime_t *rt, const fw_pool_opts_t *opts,
                             fw_error_t *err);

/*
 * Threaded mode: acquires and waits. timeout_ms bounds the wait (0: the pool's
 * acquire_timeout_ms). Returns 0 and *out (READY and idle, yours until fw_pool_release), or
 * *out NULL and FW_ETIMEDOUT, FW_EROUTE, FW_ECLOSED (as fw_pool_acquire_cb), FW_ESTATE (the
 * pool is closing), FW_EINVAL (NULL argument, a bad want, an embedded pool); *err (caller's
 * storage, may be NULL) says why, with the SQLSTATE of the last failed connect or
 * after_connect_sql when that is why nothing came. Thread: any thread but the runtime's.
 */
FW_EXTERN int fw_pool_acquire_wait(fw_pool_t *pool, fw_pool_want_t want, unsigned timeout_ms,
                                   fw_conn_t **out, fw_error_t *err);

/*
 * Threaded mode: closes the pool and waits until every connection is closed and the pool's
 * memory is freed. Returns 0, FW_EBUSY (a connection is still handed out: release it first;
 * nothing was done), FW_ESTATE (already closing) or FW_EINVAL (NULL, an embedded pool). Waiting
 * acquires get FW_ECLOSED. Thread: any thread but the runtime's.
 */
FW_EXTERN int fw_pool_close_sync(fw_pool_t *pool);

/*
 * Threaded mode: a runtime owns one loop thread that serves many connections. SIGPIPE is
 * blocked on that thread. After answering a connect or a call, while nothing else runs on it,
 * that thread stays awake for up to 300 us for the caller's next command (a query started right
 * after a connect goes out without a thread wake-up); a connect nothing follows costs that much
 * CPU. Likewise after sending a query on a connection whose last reply came within 300 us: it
 * watches for the reply for up to 300 us before it sleeps. Returns 0 or FW_ENOMEM / a libuv
 * code. Thread: any thread.
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

/* ==== queries ============================================================================= */

/*
 * A query: which relation to read, which rows (SQL and typed predicates), in which order, how
 * many, and how to stream them (chunk size, byte budget, client-side predicate, statement
 * timeout). fwire always runs
 *
 *     SELECT "data" FROM <relation> [WHERE ...] [ORDER BY ...] [LIMIT $n] [OFFSET $m]
 *
 * with the extended protocol (Parse/Bind/Describe/Execute/Sync, unnamed statement, text
 * results), so every typed value travels as a bind parameter and no fragment can stack a second
 * statement. The one exception is the query with nothing but its relation (no condition, order,
 * limit, offset or statement timeout): it has no value and no caller SQL, and goes out as one
 * simple-protocol Query, which a fresh backend answers sooner. The result must be exactly one
 * column named `data` of type json or jsonb.
 *
 * Setters record the first error in the query and return it; later setters do nothing and
 * return it again, and fw_stream_start() refuses the query with it. So a chain of setters can
 * be checked once. A query is not tied to a connection: build it once, run it many times.
 * Thread: a query may be used by one thread at a time; fw_stream_start() only reads it (and
 * copies what it needs), so one finished query may be started from several threads at once.
 */
typedef struct fw_query_s fw_query_t;

/* Comparison operators of typed predicates. See fw_query_where(). */
typedef enum fw_op_e {
    FW_OP_EQ = 0,
    FW_OP_NE,
    FW_OP_LT,
    FW_OP_LE,
    FW_OP_GT,
    FW_OP_GE,
    FW_OP_LIKE,        /* text LIKE pattern; the value must be FW_VALUE_TEXT */
    FW_OP_ILIKE,       /* text ILIKE pattern; the value must be FW_VALUE_TEXT */
    FW_OP_IS_NULL,     /* the path is missing or JSON null; no value */
    FW_OP_IS_NOT_NULL, /* the path holds a value other than JSON null; no value */
    FW_OP_CONTAINS,    /* jsonb containment: the value at the path @> the value */
    FW_OP_HAS_KEY      /* the object at the path has the key given as FW_VALUE_TEXT */
} fw_op_t;

/*
 * How a predicate's value (always passed as text) is understood by the server. TEXT, NUMBER
 * and BOOL compare as the JSON string, number or boolean the text denotes (the server parses
 * NUMBER as numeric and BOOL as boolean, and reports bad text as SQLSTATE 22P02); JSON is a
 * JSON document ("{\"a\":1}", "[1,2]", "\"s\"").
 */
typedef enum fw_value_type_e {
    FW_VALUE_TEXT = 0,
    FW_VALUE_NUMBER,
    FW_VALUE_BOOL,
    FW_VALUE_JSON
} fw_value_type_t;

/* fw_row_t, a row of a stream: see fwire_base.h. */

/*
 * A client-side predicate: runs on the loop thread for every row before it is queued; return
 * true to keep the row, false to drop it (counted in rows_filtered). `row` is borrowed for the
 * call. It must not block and must not call fwire functions on the stream.
 */
typedef bool (*fw_predicate_cb)(void *ud, const fw_row_t *row);

/* Creates an empty query. Returns 0 and *out, FW_EINVAL or FW_ENOMEM. Thread: any thread. */
FW_EXTERN int fw_query_new(fw_query_t **out);

/* Frees a query; NULL is a no-op. Streams started from it do not need it. Thread: its user. */
FW_EXTERN void fw_query_free(fw_query_t *q);

/*
 * The source as an entity: "user" reads the view v_user. The name is quoted as an identifier,
 * so it is used exactly as given (case and all). FW_EINVAL when empty, or when "v_" plus the
 * name exceeds PostgreSQL's 63-byte identifier limit (the server would truncate it silently).
 * Replaces an earlier source.
 */
FW_EXTERN int fw_query_entity(fw_query_t *q, const char *entity);

/*
 * The source as an explicit relation: "tv_user" or "schema.tv_user" (split at the first dot;
 * each part quoted as an identifier, so "a.b" is schema a, relation b). FW_EINVAL when a part
 * is empty or longer than 63 bytes. Replaces an earlier source.
 */
FW_EXTERN int fw_query_relation(fw_query_t *q, const char *relation);

/*
 * !!! TRUSTED SQL. !!! Adds `sql` as a WHERE condition, ANDed with the others, verbatim.
 * fwire cannot check it: never build it from user input. Use fw_query_where() for values.
 * (The fragment is wrapped in parentheses and newlines, so a trailing "--" comment cannot
 * swallow what follows; the extended protocol refuses a second statement.) It must not contain
 * $n placeholders: they would bind to fwire's own parameters. FW_EINVAL when empty. Copied.
 */
FW_EXTERN int fw_query_where_sql(fw_query_t *q, const char *sql);

/*
 * Adds a typed predicate on a JSON path of `data`, ANDed with the others. `path` is dotted
 * ("address.city"; "tags.0" takes the first array element); "" or NULL is the whole document
 * (for FW_OP_CONTAINS and FW_OP_HAS_KEY). The path elements and the value travel as bind
 * parameters: nothing is spliced into the SQL. `value` is ignored (may be NULL) for IS_NULL and
 * IS_NOT_NULL, and required otherwise. Comparisons are jsonb comparisons: numbers numerically,
 * strings by the database collation, values of different JSON types never equal. Across types,
 * jsonb orders null < string < number < boolean < array < object, so `age lt 10` (NUMBER) also
 * matches a string "30": add a type check in where_sql if your data mixes types.
 * FW_EINVAL: NULL value, LIKE/ILIKE/HAS_KEY with a type other than TEXT, an empty path element,
 * or more than 65,535 parameters in the query. Strings are copied.
 */
FW_EXTERN int fw_query_where(fw_query_t *q, const char *path, fw_op_t op, fw_value_type_t type,
                             const char *value);

/*
 * Adds `path IN (values...)`: the value at the path equals one of the n values, all of one
 * type. n == 0 matches no row. Strings are copied. Errors as fw_query_where().
 */
FW_EXTERN int fw_query_where_in(fw_query_t *q, const char *path, fw_value_type_t type,
                                const char *const *values, size_t n);

/*
 * !!! TRUSTED SQL. !!! Adds an ORDER BY key: `expression` is used verbatim (e.g.
 * "data->>'name'"); never build it from user input. `collation` (NULL for none) is quoted as an
 * identifier ("C", "en-US-x-icu"). Keys apply in the order added. Strings are copied.
 */
FW_EXTERN int fw_query_order_by(fw_query_t *q, const char *expression, const char *collation,
                                bool descending);

/* LIMIT n (n >= 0) and OFFSET n (n >= 0), sent as bind parameters. FW_EINVAL when n < 0. */
FW_EXTERN int fw_query_limit(fw_query_t *q, int64_t n);
FW_EXTERN int fw_query_offset(fw_query_t *q, int64_t n);

/*
 * A fixed number of rows per chunk handed to the consumer (1..65,536), instead of the adaptive
 * size that is the default (fw_query_chunk_adaptive). A chunk is also handed over at the end
 * of every socket read, so rows never wait for a chunk to fill.
 */
FW_EXTERN int fw_query_chunk_size(fw_query_t *q, size_t rows);

/*
 * Adaptive chunk sizes (docs/streaming.md, "Adaptive chunk sizes"). At every socket read that queued rows,
 * fwire observes how full the queue of chunks is; over each window of observations, a high
 * average (the consumer is slow) grows the chunks by the growth factor, fewer and bigger; a
 * low one (the consumer keeps up) shrinks them, down to twice the rows a socket read brings
 * (a read ends its chunk anyway, so smaller chunks would not be sooner). Sizes stay within
 * floor..ceiling, change at most once per window, and every change is counted (stats
 * chunk_grows and chunk_shrinks). Initialise with fw_chunk_policy_init().
 */
typedef struct fw_chunk_policy_s {
    uint32_t floor;           /* smallest chunk, rows; default 16 */
    uint32_t ceiling;         /* largest chunk, rows (at most 65,536); default 1024 */
    uint32_t start;           /* default 256 */
    uint32_t window;          /* observations per decision; default 50 */
    uint32_t high_permille;   /* average occupancy above which chunks grow; default 800 */
    uint32_t low_permille;    /* below which they shrink; default 200 */
    uint32_t growth_permille; /* the factor, 1500 = 1.5x (shrinking divides by it) */
    uint32_t reserved[5];
} fw_chunk_policy_t;

/* Fills *p with the defaults above. Thread: any thread. */
FW_EXTERN void fw_chunk_policy_init(fw_chunk_policy_t *p);

/*
 * Makes the query's chunk size adaptive under policy `p` (copied; NULL for the defaults).
 * FW_EINVAL unless 1 <= floor <= start <= ceiling <= 65,536, window >= 1,
 * low < high <= 1000 and growth > 1000. A new query is adaptive under the default policy;
 * fw_query_chunk_size() sets a fixed size instead. The stream's stats (chunk_size,
 * chunk_grows, chunk_shrinks) and the fraiseql_adaptive_chunk_* metrics show what it chose.
 */
FW_EXTERN int fw_query_chunk_adaptive(fw_query_t *q, const fw_chunk_policy_t *p);

/*
 * The byte budget of a stream: the receive memory holding rows not yet released by the
 * consumer, counted exactly (whole receive slabs). When it is reached, fwire stops reading the
 * socket until the consumer has released half of it; the server then waits in send. A single
 * row larger than the budget is still delivered: once the rows ahead of it are released it is
 * received alone into a buffer of its exact size, freed when the consumer moves past it, so
 * memory peaks at the larger of the budget and that one row. Only the connection's max_message
 * (fw_conn_opts_t) refuses a row. Default 4 MiB; at least 64 KiB.
 */
FW_EXTERN int fw_query_max_memory(fw_query_t *q, size_t bytes);

/* A client-side predicate (see fw_predicate_cb); NULL removes it. `ud` is borrowed while the
 * query's streams run. */
FW_EXTERN int fw_query_predicate(fw_query_t *q, fw_predicate_cb cb, void *ud);

/*
 * A server-side statement timeout for this query only, in milliseconds (0: the server's
 * setting). Set with set_config(..., is_local) in the same implicit transaction, in the same
 * round trip. A query that runs over it fails with SQLSTATE 57014 after the rows before it.
 */
FW_EXTERN int fw_query_statement_timeout(fw_query_t *q, uint32_t ms);

/*
 * How long a cancel may take, in milliseconds (default 5,000; 0 means the default): sending the
 * CancelRequest on its own connection and reading the rest of the reply to ReadyForQuery. Past
 * it, fwire closes the query's connection and the stream fails with FW_ETIMEDOUT saying so.
 */
FW_EXTERN int fw_query_cancel_timeout(fw_query_t *q, uint32_t ms);

/* What a pause timeout does: resume reading, or cancel the query. */
typedef enum fw_pause_action_e { FW_PAUSE_RESUME = 0, FW_PAUSE_CANCEL } fw_pause_action_t;

/*
 * Ends a forgotten pause: after `ms` milliseconds paused (0: never, the default) the stream
 * resumes or is cancelled, as `action` says.
 */
FW_EXTERN int fw_query_pause_timeout(fw_query_t *q, uint32_t ms, fw_pause_action_t action);

/*
 * A client-side idle timeout: when no byte arrives for `ms` milliseconds while the query runs
 * (and fwire is reading: not paused, not held back by the budget), the query is cancelled and
 * the stream fails with FW_ETIMEDOUT. 0 (the default): none. The server-side statement timeout
 * is fw_query_statement_timeout().
 */
FW_EXTERN int fw_query_idle_timeout(fw_query_t *q, uint32_t ms);

/*
 * Writes the SQL fwire will send (with $n placeholders) into buf as a NUL-terminated string.
 * Returns the length it needs (without the NUL) like snprintf, whatever cap is; or the query's
 * recorded error, or FW_EINVAL when no source was set. Thread: as the query.
 */
FW_EXTERN long fw_query_sql(const fw_query_t *q, char *buf, size_t cap);

/*
 * Turns the query into `EXPLAIN (FORMAT JSON) SELECT ...` (on) or back (off): the stream then
 * yields one row, the planner's plan as JSON text (`[{"Plan": {"Plan Rows": 1000, ...}}]`),
 * without running the query. What a gateway uses to estimate a result's size before it
 * streams it. Returns 0 or FW_EINVAL. Thread: the query's owner.
 */
FW_EXTERN int fw_query_explain(fw_query_t *q, bool on);

/*
 * Splits the read over `n` server backends (1..16; 0, the default, is an ordinary stream),
 * as pg_dump -j does (docs/streaming.md, "Parallel streams"). fw_stream_start() then opens n
 * connections of its own from the connection string of the connection it is given (that one
 * runs nothing and stays idle), exports a snapshot on the first (BEGIN ISOLATION LEVEL
 * REPEATABLE READ READ ONLY; SELECT pg_export_snapshot()) and imports it on the others (SET
 * TRANSACTION SNAPSHOT), so the parts together are exactly what one connection would read at
 * that snapshot. The stream it returns is one fw_stream_t: rows of different parts interleave,
 * rows of one part keep their order. Each part has its own queue and its own byte budget
 * (fw_query_max_memory applies per part: receive memory is at most n times it);
 * fw_stream_stats() adds the parts up, fw_stream_part_stats() shows each one. The n
 * connections are opened at the same time (their start-ups overlap) and belong to the stream:
 * fw_stream_free closes them (free the stream before fw_runtime_free; in embedded mode their
 * close completes on the loop: run it before uv_loop_close).
 * The split: without a partition key, ctid ranges of the relation's pages (a plain table or a
 * materialized view, PostgreSQL 14 or later: TID range scans); with fw_query_partition_ctid(),
 * the same ctid ranges through a view that shows its one table's ctid as a column; with
 * fw_query_partition_key(), ranges of that integer column. Anything else is refused by fw_stream_start() with FW_EINVAL
 * and a message naming both options, and so are LIMIT, OFFSET, EXPLAIN and an ORDER BY other
 * than the partition key ascending. Both modes: in threaded mode fw_stream_start() returns
 * once the parts run (its errors are the set-up's); in embedded mode it returns at once, the
 * set-up (the n connects, the snapshot, the parts' starts) runs on the caller's loop without
 * blocking it, and what only the server can tell (no such key, not a table, a connect that
 * failed) comes as the stream's failure, before any row, through the rows-ready callback;
 * fw_stream_snapshot() is NULL and fw_stream_part_stats() FW_ESTATE until the parts run.
 * Started with fw_pool_stream_start() instead, the parts run on the pool's connections: the
 * one given (part 0, which exports the snapshot) and n - 1 more the stream acquires (FW_POOL_READ;
 * threaded mode waits up to the pool's acquire_timeout_ms); fw_stream_free gives them back,
 * the pool rolls their transactions back before anyone else gets them. Backends that have read
 * before have their shared buffers mapped, which a split scan needs to beat one connection
 * (docs/streaming.md). The n - 1 are connections to the server the given one is on, whatever
 * the pool's other hosts (the parts import that server's snapshot).
 * Returns 0 or FW_EINVAL (n out of range). Thread: the query's owner.
 */
FW_EXTERN int fw_query_parallel(fw_query_t *q, int n);

/*
 * The integer column (smallint, integer, bigint) a parallel stream splits on: part i reads
 * `column >= lo_i AND column < hi_i` (lo and hi are bind parameters; the first range open
 * below, the last open above and holding the rows whose key is NULL). The bounds are n - 1
 * quantiles of the column's statistics histogram (pg_stats.histogram_bounds, left by ANALYZE:
 * parts of about equal rows even for a skewed key; a view borrows the statistics of the
 * same-named column of the one relation its rule reads), else they cut the range [min, max]
 * the first connection reads at the snapshot into n equal spans. Stale statistics cost balance
 * only, never rows. The column
 * must be one the relation shows (a view's "id"), and should be indexed: each part's range is
 * then an index range scan, not a scan of the whole relation. An ORDER BY of this column alone
 * (ascending) is allowed: the parts are then delivered one after another, in key order, which
 * costs most of the speed-up (the later parts wait, their budget full, while the first is
 * read). Replaces a ctid column set before (fw_query_partition_ctid). `column` is copied, used
 * as a quoted identifier; NULL removes the key (ctid ranges).
 * Returns 0 or FW_EINVAL (empty, or over 63 bytes), FW_ENOMEM. Thread: the query's owner.
 */
FW_EXTERN int fw_query_partition_key(fw_query_t *q, const char *column);

/*
 * Splits a parallel stream over a VIEW by its table's pages, like a table (ctid ranges, TID
 * range scans, PostgreSQL 14 or later): `column` is the view's column showing the ctid of the
 * one table it reads (`CREATE VIEW v AS SELECT t.ctid AS row_ctid, t.data FROM t WHERE ...`).
 * Part i reads `column >= '(a,0)' AND column < '(b,0)'`, which PostgreSQL pushes through the
 * view into a TID range scan of the table (no index, no key needed); the pages come from the
 * size of the table the view's rule reads. fw_stream_start() refuses with FW_EINVAL, before any
 * row, a relation that is not a view, a column that does not exist or is not of type tid, and a
 * view whose rule reads anything but exactly one table (or materialized view) or does not read
 * its ctid. The column must be that table's ctid itself (never NULL): rows whose column is
 * NULL are in no part. An ORDER BY of this column alone (ascending) is allowed, as for a key.
 * Replaces a partition key set before (and fw_query_partition_key replaces it); `column` is
 * copied, used as a quoted identifier; NULL removes it. Returns 0 or FW_EINVAL (empty, or over
 * 63 bytes), FW_ENOMEM. Thread: the query's owner.
 */
FW_EXTERN int fw_query_partition_ctid(fw_query_t *q, const char *column);

/* ==== streams ============================================================================= */

typedef struct fw_stream_s fw_stream_t;
typedef struct fw_chunk_s fw_chunk_t;

/* What fw_stream_next() and friends return when they do not fail (failures are negative). */
#define FW_ROW    1 /* *row holds the next row */
#define FW_END    0 /* every row was delivered and the query completed */
#define FW_AGAIN  2 /* no row yet: try later (try_next), or the timeout passed (next) */
#define FW_PAUSED 3 /* the stream is paused and every queued row was taken: resume it */

typedef enum fw_stream_state_e {
    FW_STREAM_RUNNING = 0, /* the query runs; rows may be queued */
    FW_STREAM_COMPLETED,   /* the server finished; queued rows may remain */
    FW_STREAM_FAILED,      /* ended with an error; queued rows before it may remain */
    FW_STREAM_PAUSED,      /* the query runs, but fwire does not read: the server waits */
    FW_STREAM_CANCELLED    /* cancelled by fw_stream_cancel (or free, or a timeout's action) */
} fw_stream_state_t;

/* "running", "completed", "failed", "paused", "cancelled". Thread: any thread. */
FW_EXTERN const char *fw_stream_state_name(fw_stream_state_t state);

/*
 * Embedded mode: called on the loop thread when rows were queued, and once more when the
 * stream ends (completed or failed). Drain with fw_stream_try_next() until FW_AGAIN (or the end);
 * if you stop earlier, you will not be called again for rows already queued. Any fwire call
 * is legal inside it, fw_stream_free() included.
 */
typedef void (*fw_rows_ready_cb)(fw_stream_t *stream, void *ud);

/*
 * Starts `q` on `conn`: the whole query goes out in one write. The query is copied; `q` may be
 * freed at once.
 *  - Embedded mode (conn from fw_conn_new): call on the loop thread; `ready` (may be NULL) is
 *    called as described at fw_rows_ready_cb, never inside this call.
 *  - Threaded mode (conn from fw_conn_connect_sync): call from any thread but the runtime's;
 *    `ready` must be NULL; consume with fw_stream_next().
 * One query at a time per connection: FW_EBUSY while another stream on it has not ended.
 * Returns 0 and *out; or FW_EINVAL, the query's recorded error, FW_EBUSY, FW_ESTATE (the
 * connection is not connected, or is bad), FW_ENOMEM, with *err filled (err may be NULL).
 * In embedded mode the query is sent before the stream's own memory is made, so an FW_ENOMEM
 * from that point also closes the connection (a reply is on its way that nothing would read):
 * close it and connect again, as for FW_ESTATE.
 * Errors the server reports (SQL errors, FW_ESCHEMA) arrive through the stream.
 */
FW_EXTERN int fw_stream_start(fw_conn_t *conn, const fw_query_t *q, fw_rows_ready_cb ready,
                              void *ud, fw_stream_t **out, fw_error_t *err);

/*
 * Threaded mode: the next row, waiting up to timeout_ms (-1: no limit; 0: do not wait).
 * Returns FW_ROW with *row filled, FW_END once every row was delivered and the query completed,
 * FW_AGAIN when the timeout passed, or a negative code when the stream failed (after every row
 * the server sent before the failure was delivered): FW_ESERVER (an SQL error: SQLSTATE and
 * the server's fields in fw_stream_error()), FW_ESCHEMA, FW_ETOOBIG, FW_ECLOSED,
 * FW_EPROTO_*, libuv codes. FW_END and failures are sticky. FW_ESTATE in embedded mode (it
 * would block the loop). The row's memory is valid until the next call on this stream
 * (next, try_next, next_chunk, free). Thread: the stream's one consumer thread.
 */
FW_EXTERN int fw_stream_next(fw_stream_t *s, fw_row_t *row, int timeout_ms);

/*
 * The next row if one is queued, never waiting: as fw_stream_next() with a zero timeout.
 * Both modes. Thread: the consumer (embedded mode: the loop thread).
 */
FW_EXTERN int fw_stream_try_next(fw_stream_t *s, fw_row_t *row);

/*
 * Takes the next whole chunk of rows: FW_ROW and *chunk (read it with fw_chunk_rows(), then
 * give it back with fw_chunk_release()), or FW_END / FW_AGAIN / a failure as fw_stream_next().
 * A chunk's rows stay valid until it is released, whatever else is called on the stream; the
 * memory of unreleased chunks counts against the byte budget. If a row from next/try_next is
 * current, the rest of its chunk comes first. timeout_ms as fw_stream_next() (embedded mode: 0).
 * Thread: the consumer.
 */
FW_EXTERN int fw_stream_next_chunk(fw_stream_t *s, fw_chunk_t **chunk, int timeout_ms);

/* The rows of a chunk (borrowed until fw_chunk_release) and their count in *n (>= 1). */
FW_EXTERN const fw_row_t *fw_chunk_rows(const fw_chunk_t *chunk, size_t *n);

/* Gives a chunk back; its memory may be reused at once. Thread: the consumer. */
FW_EXTERN void fw_chunk_release(fw_stream_t *s, fw_chunk_t *chunk);

/*
 * The error that failed the stream (code 0 while it has not failed). Borrowed until the stream
 * is freed. Thread: the consumer, after a negative return.
 */
FW_EXTERN const fw_error_t *fw_stream_error(const fw_stream_t *s);

/* A stream's counters: a snapshot of independent atomics (each exact, not taken together). */
typedef struct fw_stream_stats_s {
    uint64_t rows_buffered;   /* queued rows not yet yielded */
    uint64_t chunks_buffered; /* chunks queued and not yet taken */
    uint64_t bytes_buffered;  /* receive memory held: what the byte budget bounds */
    uint64_t rows_yielded;    /* rows handed to the consumer */
    uint64_t rows_filtered;   /* rows dropped by the client-side predicate */
    uint64_t bytes_received;  /* protocol bytes received for this query (after TLS) */
    uint64_t chunks_delivered;
    uint64_t read_stops;     /* times socket reading stopped for backpressure */
    uint64_t pauses;         /* fw_stream_pause calls that paused a running stream */
    uint64_t pause_timeouts; /* pauses ended by the pause timeout */
    uint64_t chunk_grows;    /* adaptive chunk size changes, up */
    uint64_t chunk_shrinks;  /* and down */
    uint32_t chunk_size;     /* current rows per chunk */
    fw_stream_state_t state;
    uint64_t max_memory; /* the byte budget */
    /* How the socket was read (system calls per byte: docs/benchmarks.md): times a readable
     * socket woke the reader (an epoll_wait and a recv or more each), and ticks of the timer
     * that reads it in bulk while the server sends fast (coalesced reads). */
    uint64_t read_wakeups;
    uint64_t read_ticks;
    uint64_t reserved[6];
} fw_stream_stats_t;

/* Fills *out. Reads atomics only: never blocks. Thread: any thread while the stream exists.
 * For a parallel stream, the parts' figures added up (max_memory too: the total budget;
 * chunk_size is the largest part's). */
FW_EXTERN void fw_stream_stats(const fw_stream_t *s, fw_stream_stats_t *out);

/* The number of parts of a parallel stream (fw_query_parallel), 1 for an ordinary stream, or
 * FW_EINVAL for NULL. Thread: any thread while the stream exists. */
FW_EXTERN int fw_stream_parts(const fw_stream_t *s);

/* Fills *out (caller-owned) with part `part`'s own figures (0 .. fw_stream_parts() - 1; an
 * ordinary stream's part 0 is itself). Returns 0, FW_EINVAL, or FW_ESTATE when the part has not
 * started (embedded mode's set-up) or never did (it failed). Thread: as fw_stream_stats. */
FW_EXTERN int fw_stream_part_stats(const fw_stream_t *s, int part, fw_stream_stats_t *out);

/* The id of the snapshot a parallel stream reads at ("00000003-0000001B-1"), or NULL for an
 * ordinary stream (and, in embedded mode, while the set-up has not exported it yet). Borrowed until fw_stream_free; valid (importable by SET TRANSACTION
 * SNAPSHOT in another session) until then, since the exporting transaction stays open as long
 * as the stream does. Thread: any thread while the stream exists. */
FW_EXTERN const char *fw_stream_snapshot(const fw_stream_t *s);

/*
 * Pauses the stream: fwire stops reading the socket (the kernel's buffers fill and the server
 * waits in send) and keeps the connection. Rows already queued stay available; once they are
 * taken, next/try_next return FW_PAUSED instead of waiting. Idempotent. Returns 0, or FW_ESTATE
 * when the stream has ended. Thread: the consumer (embedded: the loop thread, legal in the
 * rows-ready callback).
 */
FW_EXTERN int fw_stream_pause(fw_stream_t *s);

/*
 * Resumes a paused stream: bytes fwire already holds (in its buffers or inside OpenSSL) are
 * handled first, then the socket is read again. Idempotent. Returns 0 or FW_ESTATE (ended).
 * Thread: as fw_stream_pause.
 */
FW_EXTERN int fw_stream_resume(fw_stream_t *s);

/*
 * Cancels the query: queued rows are dropped, a CancelRequest goes to the server on a
 * connection of its own (the same address and TLS settings as the query's), a paused stream
 * resumes reading, and the rest of the reply is read and dropped up to ReadyForQuery, so the
 * connection can run the next query. The next query cannot start before the server has closed
 * the cancel connection, so a late cancel never hits it. Afterwards next/try_next return
 * FW_ECANCELED (sticky). Cancelling twice, or after the end, is harmless.
 *  - Threaded mode: waits until the cancel is complete (or its timeout, see
 *    fw_query_cancel_timeout). Returns 0, or FW_ETIMEDOUT when the connection had to be closed.
 *  - Embedded mode: returns 0 at once; the rows-ready callback runs once more when the cancel
 *    is complete, and try_next then returns FW_ECANCELED (or FW_ETIMEDOUT). When the stream
 *    had already ended (its last callback has run), there is nothing to wait for and no
 *    further callback: try_next returns FW_ECANCELED at once.
 * Thread: the consumer.
 */
FW_EXTERN int fw_stream_cancel(fw_stream_t *s);

/*
 * Releases the consumer's side of a stream: queued rows and chunks not yet released are
 * given back (chunks taken with next_chunk must not be used afterwards). If the query still
 * runs, it is cancelled as by fw_stream_cancel (without waiting), so the connection can run
 * the next query once the cancel is complete. NULL is a no-op. Thread: the consumer (embedded:
 * loop thread, legal inside the rows-ready callback).
 */
FW_EXTERN void fw_stream_free(fw_stream_t *s);

/* ---- streams on a pool's connections (the pool: see "connection pool" above) ------------- */

/*
 * Starts a stream (as fw_stream_start) on `conn`, a connection this pool handed out, and gives
 * the connection back to the pool when the stream is freed: fw_stream_free cancels and drains
 * an unfinished query, then releases (a connection that cannot be reused is closed, as at
 * fw_pool_release). Do not call fw_pool_release on it yourself. When the start fails, conn
 * is released at once and *out is NULL. A parallel query (fw_query_parallel) runs its parts on
 * this connection and n - 1 more from the pool, all given back at fw_stream_free. Returns as
 * fw_stream_start; FW_EINVAL for a NULL pool, conn or out. Thread: as fw_stream_start (embedded: the loop's, for example inside
 * the acquire callback; threaded: any thread but the runtime's).
 */
FW_EXTERN int fw_pool_stream_start(fw_pool_t *pool, fw_conn_t *conn, const fw_query_t *q,
                                   fw_rows_ready_cb ready, void *ud, fw_stream_t **out,
                                   fw_error_t *err);

/*
 * Threaded mode: fw_pool_acquire_wait, then fw_pool_stream_start: one call from a query to a
 * stream whose fw_stream_free gives the connection back. Returns 0 and *out, or a code of
 * either call with *err (caller's storage, may be NULL) saying why; *out NULL then.
 * Thread: any thread but the runtime's.
 */
FW_EXTERN int fw_pool_stream_start_wait(fw_pool_t *pool, fw_pool_want_t want,
                                        unsigned timeout_ms, const fw_query_t *q,
                                        fw_stream_t **out, fw_error_t *err);


/* ==== metrics ============================================================================= */

/*
 * fwire records fraiseql_* metrics (Prometheus conventions: seconds, bytes, `_total` counters)
 * for every connection and stream of the process into one process-wide registry:
 * docs/METRICS.md lists each one, when it is recorded and how to read it. Recording is a few
 * relaxed atomic adds per chunk (never per row), takes no lock and never allocates once an
 * entity's series exist. Entity label values are capped (64 distinct; later ones are counted
 * under "other"), so data cannot grow the registry without bound. Its memory is the one
 * exception to fw_allocator_set: it comes from libc's malloc, once, and lives until the process
 * exits (so that it never pins an allocator you may want to replace).
 */

/*
 * Writes the Prometheus text exposition (format 0.0.4) of every fraiseql_* metric into buf,
 * snprintf-style: at most cap - 1 bytes and a NUL (buf may be NULL when cap is 0), and returns
 * the length of the whole text without the NUL. A return value >= cap means the text was cut:
 * call again with at least return + 1 bytes. Returns FW_ENOMEM (negative) when the snapshot
 * could not be taken. Caller-owned: buf. Thread: any thread.
 */
FW_EXTERN long fw_metrics_render(char *buf, size_t cap);

/*
 * Switches recording on (the default) or off for connections and streams started from now on;
 * those already running keep their setting. Off, the library records nothing and the render
 * shows what was recorded before. The environment variable FWIRE_METRICS=0 sets the default to
 * off. Thread: any thread.
 */
FW_EXTERN void fw_metrics_set_enabled(bool on);

/* Whether connections and streams started now record metrics. Thread: any thread. */
FW_EXTERN bool fw_metrics_enabled(void);

/*
 * A tiny HTTP/1.1 server that answers `GET /metrics` with fw_metrics_render's text
 * (Content-Type: text/plain; version=0.0.4), 404 for other paths, 405 for other methods,
 * then closes the connection. Requests over 8 KiB or slower than 10 s are dropped; at most
 * 32 clients at once. It exposes counts, never data, but bind it to loopback unless the
 * network is trusted.
 */
typedef struct fw_metrics_listener_s fw_metrics_listener_t;

/*
 * Embedded mode: listens on host:port on the caller's loop. host NULL means "127.0.0.1";
 * port 0 picks a free port (see fw_metrics_listener_port). Returns 0 and *out, or FW_EINVAL,
 * FW_ENOMEM or a libuv code (UV_EADDRINUSE, UV_EINVAL for a bad address) with *err filled
 * (err may be NULL). Thread: the loop's thread.
 */
FW_EXTERN int fw_metrics_listen(struct uv_loop_s *loop, const char *host, int port,
                                fw_metrics_listener_t **out, fw_error_t *err);

/* Threaded mode: the same on the runtime's loop; waits until the socket listens.
 * Thread: any thread but the runtime's own. */
FW_EXTERN int fw_metrics_listen_rt(fw_runtime_t *rt, const char *host, int port,
                                   fw_metrics_listener_t **out, fw_error_t *err);

/* The port the listener is bound to. Thread: any thread. */
FW_EXTERN int fw_metrics_listener_port(const fw_metrics_listener_t *l);

/*
 * Stops listening, closes open client connections and frees the listener. Embedded: on the
 * loop's thread, the memory is released once the loop has run the close callbacks. Threaded
 * (made by fw_metrics_listen_rt): waits until it is freed; call it before fw_runtime_free.
 * NULL is a no-op.
 */
FW_EXTERN void fw_metrics_listener_close(fw_metrics_listener_t *l);

#ifdef __cplusplus
}
#endif

#endif /* FWIRE_H */
