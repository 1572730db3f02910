/* SPDX-License-Identifier: MIT */
/*
 * fwire's shared vocabulary: the error codes, the borrowed-bytes slice and the allocator type.
 * Every layer speaks it: the pure leaves (proto/, auth/, stream/, metrics/) include this header
 * and never the public API above them; lib/fwire.h includes it, so users see one API. Not
 * installed itself: the installed fwire.h has it inlined (lib/install/single_header.py).
 */
#ifndef FWIRE_BASE_H
#define FWIRE_BASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * A borrowed run of bytes. Whoever hands you a slice says how long `ptr` stays valid.
 * A slice is not NUL-terminated.
 */
typedef struct fw_slice_s {
    const uint8_t *ptr;
    size_t len;
} fw_slice_t;

/* A row of a stream. `json` is the text of the `data` column, not NUL-terminated. */
typedef struct fw_row_s {
    const char *json; /* NULL when is_null */
    size_t len;
    bool is_null; /* SQL NULL in `data`: delivered as such, never as the text "null" */
} fw_row_t;

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
    XX(EBUSY, -30005, "another query is running on this connection")                             \
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
    XX(ETIMEDOUT, -30205, "timeout expired")                                                     \
    XX(EROUTE, -30206, "no server of the kind target_session_attrs asks for")                    \
    XX(EPROTOCOL_VERSION, -30207,                                                                \
       "the server does not offer the protocol version required (min_protocol_version)")         \
    /* streaming */                                                                              \
    XX(ESCHEMA, -30300, "the result is not one json or jsonb column named data")                 \
    XX(ECANCELED, -30301, "the stream was cancelled")

/* The enum the map generates: FW_EINVAL, FW_EPROTO_SHORT, ... */
typedef enum fw_errno_e {
#define FW__ERR_ENUM(name, value, msg) FW_##name = (value),
    FW_ERRNO_MAP(FW__ERR_ENUM)
#undef FW__ERR_ENUM
} fw_errno_t;

/*
 * Where fwire gets its memory: every allocation fwire itself makes (connections, receive slabs,
 * chunks, queries, streams) goes through these three functions, except the process-wide
 * metrics registry (see fw_metrics_render). libuv and OpenSSL keep their
 * own allocators. realloc_fn(ud, NULL, n) must behave as malloc; free_fn(ud, NULL) as a no-op.
 * The functions may be called from the loop thread and from consumer threads at once.
 */
typedef struct fw_allocator_s {
    void *(*malloc_fn)(void *ud, size_t size);
    void *(*realloc_fn)(void *ud, void *ptr, size_t size);
    void (*free_fn)(void *ud, void *ptr);
    void *ud;
} fw_allocator_t;

#ifdef __cplusplus
}
#endif

#endif /* FWIRE_BASE_H */
