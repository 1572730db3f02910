/* SPDX-License-Identifier: MIT */
/*
 * fwire: stream the JSON `data` column of PostgreSQL views and tables into C programs.
 *
 * This is the one public header. It includes only <stddef.h>, <stdint.h> and <stdbool.h>,
 * forward-declares libuv's loop type and exposes no OpenSSL type.
 *
 * What this release contains (see README.md, "Status"): the error vocabulary and version
 * queries. The connection, stream and metrics APIs arrive with later releases and are not
 * declared here until they work.
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
    XX(EPROTO_UNEXPECTED, -30110, "protocol: message not allowed in the current state")        \
    /* connecting */                                                                             \
    XX(EAUTH, -30200, "authentication failed or refused")                                        \
    XX(ESERVER, -30201, "the server reported an error")                                          \
    XX(ECONFIG, -30202, "invalid connection options")                                            \
    XX(ETLS, -30203, "TLS negotiation or verification failed")

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

#ifdef __cplusplus
}
#endif

#endif /* FWIRE_H */
