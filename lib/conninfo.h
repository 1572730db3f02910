/* SPDX-License-Identifier: MIT */
/*
 * Connection strings, environment and passfile, the way libpq 15 reads them (internal to lib/).
 *
 * Four steps, each usable alone, so tests (and the libpq oracle) can look at every stage:
 *   fw__conninfo_parse()          the string only, both syntaxes (keyword=value and URI); like
 *                                 PQconninfoParse it sets only what the string names.
 *   fw__conninfo_apply_env()      fills what the string left unset: PG* variables from an
 *                                 injected getenv, then libpq's built-in defaults.
 *   fw__conninfo_finish()         validates every value and derives the typed fields below
 *                                 (host list, enums, integers, require_auth bitmask).
 *   fw__conninfo_apply_passfile() the only step that does I/O (lib/pgpass.c): per-host passwords
 *                                 from the passfile when no password was given.
 * fw__conninfo_from_string() runs the first three. Precedence is libpq's: string > environment >
 * defaults. Nothing here opens a file except the passfile step, which opens one path only.
 *
 * Errors: FW_EINVAL (bad input: the message says what and why), FW_ENOMEM. Messages go to a
 * caller buffer (err, errlen; err may be NULL), follow libpq's texts without the trailing newline,
 * escape control characters, and never contain a password or sslpassword value, nor any piece of
 * the input that could be one (see docs/connection-strings.md, "Errors").
 *
 * Thread: every function may run on any thread on distinct objects. fw__conninfo_env_system()
 * calls getenv(), which races with setenv() in other threads (POSIX): call it where the program
 * does not change its environment concurrently.
 */
#ifndef FW_LIB_CONNINFO_H
#define FW_LIB_CONNINFO_H

#include "fwire.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A message buffer of this size holds every message in full (long values are cut with "..."). */
#define FW__CONNINFO_ERRLEN 256

/* libpq's compiled-in defaults as Debian builds them (DEF_PGPORT, DEFAULT_PGSOCKET_DIR). */
#define FW__CONNINFO_DEFAULT_PORT       5432
#define FW__CONNINFO_DEFAULT_SOCKET_DIR "/var/run/postgresql"
#define FW__CONNINFO_DEFAULT_PASSFILE   ".pgpass" /* under the home directory */

/* Every keyword fwire accepts, libpq's names: XX(ID, keyword, environment variable, default). */
#define FW__CONNINFO_KEYWORDS(XX)                                                                  \
    XX(HOST, "host", "PGHOST", NULL)                                                               \
    XX(HOSTADDR, "hostaddr", "PGHOSTADDR", NULL)                                                   \
    XX(PORT, "port", "PGPORT", "5432")                                                             \
    XX(DBNAME, "dbname", "PGDATABASE", NULL)                                                       \
    XX(USER, "user", "PGUSER", NULL)                                                               \
    XX(PASSWORD, "password", "PGPASSWORD", NULL)                                                   \
    XX(PASSFILE, "passfile", "PGPASSFILE", NULL)                                                   \
    XX(CHANNEL_BINDING, "channel_binding", "PGCHANNELBINDING", "prefer")                           \
    XX(CONNECT_TIMEOUT, "connect_timeout", "PGCONNECT_TIMEOUT", NULL)                              \
    XX(CLIENT_ENCODING, "client_encoding", "PGCLIENTENCODING", NULL)                               \
    XX(OPTIONS, "options", "PGOPTIONS", "")                                                        \
    XX(APPLICATION_NAME, "application_name", "PGAPPNAME", NULL)                                    \
    XX(FALLBACK_APPLICATION_NAME, "fallback_application_name", NULL, NULL)                         \
    XX(KEEPALIVES, "keepalives", NULL, NULL)                                                       \
    XX(KEEPALIVES_IDLE, "keepalives_idle", NULL, NULL)                                             \
    XX(KEEPALIVES_INTERVAL, "keepalives_interval", NULL, NULL)                                     \
    XX(KEEPALIVES_COUNT, "keepalives_count", NULL, NULL)                                           \
    XX(TCP_USER_TIMEOUT, "tcp_user_timeout", NULL, NULL)                                           \
    XX(SSLMODE, "sslmode", "PGSSLMODE", "prefer")                                                  \
    XX(SSLCOMPRESSION, "sslcompression", "PGSSLCOMPRESSION", "0")                                  \
    XX(SSLCERT, "sslcert", "PGSSLCERT", NULL)                                                      \
    XX(SSLKEY, "sslkey", "PGSSLKEY", NULL)                                                         \
    XX(SSLPASSWORD, "sslpassword", NULL, NULL)                                                     \
    XX(SSLROOTCERT, "sslrootcert", "PGSSLROOTCERT", NULL)                                          \
    XX(SSLCRL, "sslcrl", "PGSSLCRL", NULL)                                                         \
    XX(SSLCRLDIR, "sslcrldir", "PGSSLCRLDIR", NULL)                                                \
    XX(SSLSNI, "sslsni", "PGSSLSNI", "1")                                                          \
    XX(REQUIREPEER, "requirepeer", "PGREQUIREPEER", NULL)                                          \
    XX(SSL_MIN_PROTOCOL_VERSION, "ssl_min_protocol_version", "PGSSLMINPROTOCOLVERSION", "TLSv1.2") \
    XX(SSL_MAX_PROTOCOL_VERSION, "ssl_max_protocol_version", "PGSSLMAXPROTOCOLVERSION", NULL)      \
    XX(GSSENCMODE, "gssencmode", "PGGSSENCMODE", "disable")                                        \
    XX(TARGET_SESSION_ATTRS, "target_session_attrs", "PGTARGETSESSIONATTRS", "any")                \
    XX(REQUIRE_AUTH, "require_auth", "PGREQUIREAUTH", NULL)                                        \
    XX(LOAD_BALANCE_HOSTS, "load_balance_hosts", "PGLOADBALANCEHOSTS", "disable")                  \
    XX(MIN_PROTOCOL_VERSION, "min_protocol_version", "PGMINPROTOCOLVERSION", NULL)                 \
    XX(MAX_PROTOCOL_VERSION, "max_protocol_version", "PGMAXPROTOCOLVERSION", NULL)

typedef enum fw__ci_key_e {
#define FW__CI_KEY_ENUM(id, kw, env, def) FW__CI_##id,
    FW__CONNINFO_KEYWORDS(FW__CI_KEY_ENUM)
#undef FW__CI_KEY_ENUM
        FW__CI_NKEYS
} fw__ci_key_t;

/* Where a value came from. */
typedef enum fw__ci_src_e {
    FW__CI_SRC_NONE = 0,
    FW__CI_SRC_STRING, /* the connection string, or fw__conninfo_set() */
    FW__CI_SRC_ENV,    /* a PG* variable (PGREQUIRESSL counts as the environment) */
    FW__CI_SRC_DEFAULT /* libpq's built-in default, or a value derived from the OS user */
} fw__ci_src_t;

typedef enum fw__sslmode_e {
    FW__SSLMODE_DISABLE,
    FW__SSLMODE_ALLOW,
    FW__SSLMODE_PREFER,
    FW__SSLMODE_REQUIRE,
    FW__SSLMODE_VERIFY_CA,
    FW__SSLMODE_VERIFY_FULL
} fw__sslmode_t;

typedef enum fw__chanbind_e {
    FW__CHANBIND_DISABLE,
    FW__CHANBIND_PREFER,
    FW__CHANBIND_REQUIRE
} fw__chanbind_t;

typedef enum fw__tsa_e {
    FW__TSA_ANY,
    FW__TSA_READ_WRITE,
    FW__TSA_READ_ONLY,
    FW__TSA_PRIMARY,
    FW__TSA_STANDBY,
    FW__TSA_PREFER_STANDBY
} fw__tsa_t;

typedef enum fw__lbhosts_e { FW__LB_DISABLE, FW__LB_RANDOM } fw__lbhosts_t;

typedef enum fw__host_type_e {
    FW__HOST_NAME,    /* resolve host by DNS */
    FW__HOST_ADDRESS, /* hostaddr given: connect there, host (if any) is for TLS and pgpass */
    FW__HOST_UNIX     /* host is a socket directory ("/..." or Linux abstract "@...") */
} fw__host_type_t;

/* TLS versions as the wire numbers, 0 = unset. */
#define FW__TLS_1_2 0x0303
#define FW__TLS_1_3 0x0304

/* The protocol's authentication request codes, as bits of fw__conninfo_t.allowed_auth. */
#define FW__AUTH_BIT(code)     (UINT32_C(1) << (code))
#define FW__AUTH_REQ_PASSWORD  3
#define FW__AUTH_REQ_MD5       5
#define FW__AUTH_REQ_GSS       7
#define FW__AUTH_REQ_GSS_CONT  8
#define FW__AUTH_REQ_SSPI      9
#define FW__AUTH_REQ_SASL      10
#define FW__AUTH_REQ_SASL_CONT 11
#define FW__AUTH_REQ_SASL_FIN  12

typedef struct fw__conninfo_host_s {
    char *host;     /* the name to resolve, for TLS and pgpass; "" when only hostaddr was given;
                     * the default socket directory when neither was */
    char *hostaddr; /* numeric address, or NULL */
    char *port;     /* the text as given ("" = default), for pgpass matching */
    uint16_t port_num;
    fw__host_type_t type;
    char *password; /* from the passfile for this host, or NULL; zeroed on free */
} fw__conninfo_host_t;

/*
 * The options. `val` holds each keyword's text (NULL = not set), owned; `src` says where it came
 * from. The fields after it are valid only after fw__conninfo_finish() returned 0.
 */
typedef struct fw__conninfo_s {
    char *val[FW__CI_NKEYS];
    uint8_t src[FW__CI_NKEYS]; /* fw__ci_src_t */
    char *os_user;             /* from the environment step, for user='' (libpq rule) */
    char *home_dir;            /* from the environment step, for the default passfile */

    bool finished;
    size_t nhosts;
    fw__conninfo_host_t *hosts;
    fw__sslmode_t sslmode;
    bool sslrootcert_system; /* sslrootcert=system: OpenSSL's default trust store */
    bool sslsni;
    int ssl_min_version, ssl_max_version; /* FW__TLS_*; 0 = unset */
    fw__chanbind_t channel_binding;
    fw__tsa_t target_session_attrs;   /* parsed now; routing by it comes with the connection */
    fw__lbhosts_t load_balance_hosts; /* parsed now; shuffling comes with the connection */
    bool require_auth_set;            /* require_auth given and non-empty */
    bool auth_required;               /* false: a server may skip authentication ("none" allowed) */
    uint32_t allowed_auth;            /* FW__AUTH_BIT() of each allowed request code */
    int connect_timeout;              /* seconds, 0 = none; 1 becomes 2 as in libpq */
    bool keepalives;                  /* default true */
    int keepalives_idle, keepalives_interval, keepalives_count; /* -1 = not set */
    int tcp_user_timeout;                                       /* ms; -1 = not set */
    /* PG18 min/max_protocol_version as 3 << 16 | minor (FW__PQ_PROTOCOL_3_0 or _3_2). The
     * minimum defaults to 3.0; the maximum to 3.0 too, unless the minimum is higher, then to
     * the latest (libpq 18). max_protocol is what the StartupMessage asks for. */
    uint32_t min_protocol, max_protocol;
} fw__conninfo_t;

/* The environment, injected so tests are hermetic. */
typedef struct fw__conninfo_env_s {
    /* Returns the variable's value or NULL; NULL getenv_fn means an empty environment. The
     * returned string must stay valid until the call that asked for it returns. */
    const char *(*getenv_fn)(void *ud, const char *name);
    void *ud;
    const char *os_user;  /* the OS user name (libpq: effective uid's passwd entry), or NULL */
    const char *home_dir; /* for ~/.pgpass ($HOME, else the passwd entry), or NULL */
} fw__conninfo_env_t;

/* The process's own environment: getenv(), geteuid()'s passwd entry, $HOME. */
typedef struct fw__conninfo_sysenv_s {
    fw__conninfo_env_t env;
    char buf[1024]; /* storage for os_user and home_dir */
} fw__conninfo_sysenv_t;

void fw__conninfo_env_system(fw__conninfo_sysenv_t *sys);

/* An empty options object (all unset). Returns NULL when out of memory. */
fw__conninfo_t *fw__conninfo_new(void);

/* Frees ci and everything it owns, zeroing every password first. NULL is a no-op. */
void fw__conninfo_free(fw__conninfo_t *ci);

/*
 * Parses a connection string (keyword=value list, or a postgresql:// / postgres:// URI) into a
 * new *out with only the keywords the string names, like PQconninfoParse. Returns 0, FW_EINVAL
 * or FW_ENOMEM; on error *out is NULL. `str` is borrowed for the call only.
 */
int fw__conninfo_parse(const char *str, fw__conninfo_t **out, char *err, size_t errlen);

/*
 * Sets one keyword as the string would (last wins; "requiressl" maps to sslmode as in libpq).
 * value NULL unsets it. Returns 0, FW_EINVAL (unknown or unsupported keyword) or FW_ENOMEM.
 */
int fw__conninfo_set(fw__conninfo_t *ci, const char *keyword, const char *value, char *err,
                     size_t errlen);

/* The value of a keyword (NULL: unset or unknown keyword); borrowed from ci. */
const char *fw__conninfo_get(const fw__conninfo_t *ci, const char *keyword);

/* The i-th supported keyword, NULL past the end (for iteration). */
const char *fw__conninfo_keyword(size_t i);

/*
 * Fills every unset keyword from the environment, then from the defaults, as libpq's
 * conninfo_add_defaults: PGREQUIRESSL=1 means sslmode=require when neither the string nor
 * PGSSLMODE set sslmode (CVE-2017-7485); sslrootcert=system makes the default sslmode verify-full.
 * PGSERVICE is an error (fwire reads no service file). env NULL means an empty environment with
 * unknown user and home. Returns 0, FW_EINVAL or FW_ENOMEM.
 */
int fw__conninfo_apply_env(fw__conninfo_t *ci, const fw__conninfo_env_t *env, char *err,
                           size_t errlen);

/*
 * Validates the values and fills the typed fields (libpq's pqConnectOptions2 plus the checks
 * libpq makes only when connecting, so a bad value fails before any socket exists). May run
 * again after a change. Returns 0, FW_EINVAL or FW_ENOMEM.
 */
int fw__conninfo_finish(fw__conninfo_t *ci, char *err, size_t errlen);

/* parse + apply_env + finish. */
int fw__conninfo_from_string(const char *str, const fw__conninfo_env_t *env, fw__conninfo_t **out,
                             char *err, size_t errlen);

/* ---- passfile (lib/pgpass.c) ------------------------------------------------------------ */

/*
 * Pure matcher over a passfile's bytes buf[0..len): the password of the first line matching
 * (host, port, dbname, user), with libpq's rules: '*' field wildcard, '\' escapes, '#' comment
 * lines, an empty host or the default socket directory matching "localhost", an empty port
 * meaning 5432, no lookup at all for an empty dbname or user. Returns 1 and a new string in *out
 * (free it with fw__pgpass_secret_free), 0 for no match, FW_ENOMEM.
 */
int fw__pgpass_lookup(const char *buf, size_t len, const char *host, const char *port,
                      const char *dbname, const char *user, char **out);

/*
 * Reads the passfile at path and looks up like fw__pgpass_lookup. A missing or unreadable file
 * gives 0 silently (libpq); a file that is not a regular file, or has any group/world permission
 * bit, gives 0 and a warning text in warn (never printed). The decision uses fstat on the opened
 * descriptor. Returns 1, 0, FW_ENOMEM.
 */
int fw__pgpass_read_file(const char *path, const char *host, const char *port, const char *dbname,
                         const char *user, char **out, char *warn, size_t warnlen);

/* Zeroes and frees a password from this unit. NULL is a no-op. */
void fw__pgpass_secret_free(char *s);

/*
 * After fw__conninfo_finish(): when no password (or an empty one) was given, sets each host's
 * password from the passfile (passfile, else <home>/.pgpass), keyed by host (hostaddr when host
 * is empty), port, dbname and user. A warning about the file goes to warn (first one only).
 * Returns 0 or FW_ENOMEM; a host with no match keeps password NULL.
 */
int fw__conninfo_apply_passfile(fw__conninfo_t *ci, char *warn, size_t warnlen);

#endif
