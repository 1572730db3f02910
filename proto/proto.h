/* SPDX-License-Identifier: MIT */
/*
 * proto/: the PostgreSQL frontend/backend protocol 3.0 and 3.2, encode and decode. Sans-I/O: no
 * sockets, no clocks, no globals. Every function is safe to call from any thread on distinct
 * objects. The two versions differ on the wire only in BackendKeyData and CancelRequest, whose
 * secret key is exactly 4 bytes in 3.0 and 4 to 256 bytes in 3.2; deciding which version is in
 * force (NegotiateProtocolVersion) is the caller's business (lib/startup.c).
 *
 * Decoding has three levels, each usable alone:
 *   fw__pq_frame()     finds one message in a byte range: "complete", "need more" or an error,
 *                      with per-type length caps applied from the 5-byte header alone, before any
 *                      body byte has to arrive (STYLE 14).
 *   fw__pq_parse()     turns a framed message into a typed view of zero-copy slices, checking
 *                      every declared length and count against the bytes present.
 *   fw__pq_reader_*    an incremental reader over arbitrary chunks: zero-copy when a message lies
 *                      inside one chunk, and a spill buffer grown only as bytes arrive when it
 *                      straddles chunks.
 * Errors are negative FW_E* codes from fwire.h; a reader error is sticky.
 */
#ifndef FW_PROTO_H
#define FW_PROTO_H

#include "fw_util.h"
#include "fwire_base.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- limits ---------------------------------------------------------------------------- */

/* libpq's cap for every message type that is not "long" (fe-protocol3.c uses 30000). */
#define FW__PQ_SHORT_MAX 30000u
/* Authentication requests and NegotiateProtocolVersion during startup: 8..2000 as libpq. */
#define FW__PQ_STARTUP_MAX 2000u
/* Default cap for long messages (RowDescription, DataRow, ErrorResponse, ...): 256 MiB. */
#define FW__PQ_DEFAULT_MAX_MESSAGE ((size_t)256 * 1024 * 1024)
/* The protocol's own ceiling: the length field is a signed int32 that counts itself. */
#define FW__PQ_PROTOCOL_MAX ((size_t)INT32_MAX)
/* The server refuses frontend messages above 1 GiB - 1 (PQ_LARGE_MESSAGE_LIMIT); we refuse
 * to build them, so an oversized Bind can never be split into attacker-shaped messages
 * (CVE-2024-27304). */
#define FW__PQ_FRONTEND_MAX ((size_t)0x3fffffff)
/* The server reads at most 10000 bytes of StartupMessage (MAX_STARTUP_PACKET_LENGTH). */
#define FW__PQ_STARTUP_PACKET_MAX 10000u

/* Protocol versions as StartupMessage and NegotiateProtocolVersion carry them: the major version
 * in the high 16 bits, the minor in the low. There never was a 3.1 (PostgreSQL 18 went from 3.0
 * to 3.2). */
#define FW__PQ_VERSION(major, minor) (((uint32_t)(major) << 16) | (uint32_t)(minor))
#define FW__PQ_PROTOCOL_3_0          FW__PQ_VERSION(3, 0) /* 196608 */
#define FW__PQ_PROTOCOL_3_2          FW__PQ_VERSION(3, 2) /* 196610 */
#define FW__PQ_PROTOCOL_LATEST       FW__PQ_PROTOCOL_3_2
#define FW__PQ_VERSION_MAJOR(v)      ((uint32_t)(v) >> 16)
#define FW__PQ_VERSION_MINOR(v)      ((uint32_t)((v)&0xffffu))

/* The secret key of BackendKeyData and CancelRequest: exactly 4 bytes in 3.0; 4 to 256 in 3.2
 * (the server's limit, which libpq 18 enforces too). */
#define FW__PQ_CANCEL_KEY_MIN 4u
#define FW__PQ_CANCEL_KEY_MAX 256u

/* A backend's cancel key, kept from BackendKeyData for a later CancelRequest. */
typedef struct fw__pq_cancel_key_s {
    int32_t pid;
    uint16_t len; /* bytes of `secret` in use: 0 while none was received, else 4..256 */
    uint8_t secret[FW__PQ_CANCEL_KEY_MAX];
} fw__pq_cancel_key_t;

typedef struct fw__pq_limits_s {
    /* Cap on the whole length field (which counts itself) of long messages: T D d V E N A.
     * Default FW__PQ_DEFAULT_MAX_MESSAGE; 0 means "only the protocol's INT32_MAX". */
    size_t max_message;
    /* Cap on every other message type. Default FW__PQ_SHORT_MAX. */
    size_t max_short;
    /* Startup rules: ErrorResponse and NoticeResponse fall under max_short too (a server that
     * is not yet authenticated gets no long messages). Default false. */
    bool startup;
} fw__pq_limits_t;

/* Fills *lim with the defaults above. */
void fw__pq_limits_init(fw__pq_limits_t *lim);

/* ---- allocator ------------------------------------------------------------------------- */

/*
 * proto/ gets memory (reader spill buffer, encoder buffer) through the public fw_allocator_t,
 * calling only its realloc_fn (size > 0 always) and free_fn (ptr may be NULL); malloc_fn may be
 * NULL. A NULL hook, or one missing either function, means libc.
 */

/* ---- framing --------------------------------------------------------------------------- */

typedef struct fw__pq_frame_s {
    uint8_t type;        /* backend message type byte, e.g. 'D' */
    const uint8_t *body; /* the bytes after the length field; borrowed from the input */
    size_t len;          /* body length = length field - 4 */
} fw__pq_frame_t;

/*
 * Finds the message at the start of buf[0..len).
 * Returns the size of the whole message (1 + length field) when it is complete, and fills *out;
 * 0 when more bytes are needed, setting *need (if not NULL) to the total message size once the
 * header is known, else to 5; or a negative error: FW_EPROTO_UNKNOWN_TYPE (checked from the
 * first byte), FW_EPROTO_SHORT, FW_EPROTO_TOO_LARGE (checked from the header alone).
 * `out->body` borrows from buf.
 */
long fw__pq_frame(const uint8_t *buf, size_t len, const fw__pq_limits_t *lim, fw__pq_frame_t *out,
                  size_t *need);

/* True for the type bytes of the backend messages of protocol 3.0 (3.2 adds none). */
bool fw__pq_is_backend_type(uint8_t type);

/* ---- typed messages -------------------------------------------------------------------- */

/* Authentication request codes ('R'). */
enum {
    FW__PQ_AUTH_OK = 0,
    FW__PQ_AUTH_KERBEROS_V5 = 2,
    FW__PQ_AUTH_CLEARTEXT = 3,
    FW__PQ_AUTH_MD5 = 5,
    FW__PQ_AUTH_SCM = 6,
    FW__PQ_AUTH_GSS = 7,
    FW__PQ_AUTH_GSS_CONTINUE = 8,
    FW__PQ_AUTH_SSPI = 9,
    FW__PQ_AUTH_SASL = 10,
    FW__PQ_AUTH_SASL_CONTINUE = 11,
    FW__PQ_AUTH_SASL_FINAL = 12
};

/* Type OIDs fwire cares about. */
#define FW__PQ_OID_JSON  114u
#define FW__PQ_OID_JSONB 3802u
#define FW__PQ_OID_TEXT  25u

typedef struct fw__pq_msg_s {
    uint8_t type;    /* the message type byte */
    fw_slice_t body; /* the whole body, borrowed like the frame it came from */
    union {
        struct {
            int32_t code;    /* FW__PQ_AUTH_* */
            fw_slice_t data; /* MD5: 4-byte salt; SASL: the mechanism list (iterate it);
                                SASLContinue/SASLFinal/GSSContinue: the payload; else empty */
        } auth;
        struct {
            int32_t pid;
            fw_slice_t secret; /* 4..256 bytes; the caller checks it against the version */
        } key;                 /* 'K' BackendKeyData */
        struct {
            fw_slice_t name, value; /* without the terminating NULs */
        } param;                    /* 'S' ParameterStatus */
        struct {
            uint8_t status; /* 'I' idle, 'T' in transaction, 'E' failed transaction */
        } ready;            /* 'Z' */
        struct {
            uint16_t nfields;
            fw_slice_t fields; /* iterate with fw__pq_rowdesc_iter_init */
        } rowdesc;             /* 'T' */
        struct {
            uint16_t ncols;
            fw_slice_t cols; /* iterate with fw__pq_datarow_iter_init */
        } datarow;           /* 'D' */
        struct {
            fw_slice_t tag; /* e.g. "SELECT 5", without NUL */
        } complete;         /* 'C' */
        struct {
            fw_slice_t fields; /* iterate or use fw__pq_error_fields */
        } notice;              /* 'E' ErrorResponse and 'N' NoticeResponse */
        struct {
            int32_t pid;
            fw_slice_t channel, payload;
        } notify; /* 'A' */
        struct {
            uint16_t nparams;
            fw_slice_t oids; /* nparams big-endian uint32 */
        } paramdesc;         /* 't' */
        struct {
            /* The newest version the server offers for the major version asked for, as the
             * server sends it: FW__PQ_VERSION(3, minor) (196608 for 3.0), not the bare minor
             * that the protocol documentation's wording suggests. Never negative. */
            uint32_t version;
            uint32_t nopts;
            fw_slice_t opts; /* nopts NUL-terminated names; iterate with fw__pq_strlist_* */
        } negotiate;         /* 'v' */
        struct {
            bool is_null;
            fw_slice_t value;
        } fncall; /* 'V' FunctionCallResponse */
    } u;
} fw__pq_msg_t;

/*
 * Parses one framed message into *out; every slice borrows from `body`.
 * Returns 0 or a negative error: FW_EPROTO_TRUNCATED, FW_EPROTO_TRAILING, FW_EPROTO_UNTERMINATED,
 * FW_EPROTO_NEG_LENGTH, FW_EPROTO_FIELD_COUNT, FW_EPROTO_BAD_VALUE, FW_EPROTO_UNKNOWN_TYPE,
 * FW_EPROTO_TOO_LARGE (a BackendKeyData key over 256 bytes), and
 * FW_EPROTO_UNSUPPORTED for the Copy messages (G H W d c), which fwire recognises and refuses
 * (out->type is still set). A successful parse has checked every length and count, so the
 * iterators below cannot fail on its slices.
 */
int fw__pq_parse(uint8_t type, const uint8_t *body, size_t len, fw__pq_msg_t *out);

/* A RowDescription field. `name` borrows from the message, without NUL. */
typedef struct fw__pq_field_s {
    fw_slice_t name;
    uint32_t table_oid;
    int16_t attnum;
    uint32_t type_oid;
    int16_t typlen;
    int32_t typmod;
    int16_t format; /* 0 text, 1 binary */
} fw__pq_field_t;

typedef struct fw__pq_iter_s {
    const uint8_t *p, *end;
    uint32_t left; /* items still declared */
} fw__pq_iter_t;

void fw__pq_rowdesc_iter_init(fw__pq_iter_t *it, const fw__pq_msg_t *msg);
/* 1 and *f filled; 0 at the end; negative error if the bytes disagree with the count. */
int fw__pq_rowdesc_next(fw__pq_iter_t *it, fw__pq_field_t *f);

typedef struct fw__pq_col_s {
    bool is_null;     /* SQL NULL (length -1), distinct from an empty value */
    fw_slice_t value; /* borrowed; empty for NULL */
} fw__pq_col_t;

void fw__pq_datarow_iter_init(fw__pq_iter_t *it, const fw__pq_msg_t *msg);
int fw__pq_datarow_next(fw__pq_iter_t *it, fw__pq_col_t *c);

/* The hot path: a DataRow that must hold exactly one column. FW_EPROTO_FIELD_COUNT otherwise. */
int fw__pq_datarow_one(const fw__pq_msg_t *msg, fw__pq_col_t *c);

/*
 * The streaming hot path: checks the body of a framed DataRow that must hold exactly one column
 * and fills *c, without building a fw__pq_msg_t. Accepts exactly what fw__pq_parse() followed
 * by fw__pq_datarow_one() accepts, with the same value (the fuzz target checks the two against
 * each other); the error codes it gives for a bad row may differ. Layout: int16 1, int32 n,
 * then n bytes and nothing else, or n = -1 (SQL NULL) and nothing else.
 */
static inline int fw__pq_datarow_one_fast(const uint8_t *body, size_t len, fw__pq_col_t *c)
{
    if (len < 6)
        return len < 2 ? FW_EPROTO_TRUNCATED : FW_EPROTO_FIELD_COUNT;
    if (body[0] != 0 || body[1] != 1)
        return FW_EPROTO_FIELD_COUNT;
    uint32_t u = fw__be32(body + 2);
    if (u == UINT32_MAX) { /* -1: SQL NULL */
        if (len != 6)
            return FW_EPROTO_TRAILING;
        c->is_null = true;
        c->value.ptr = NULL;
        c->value.len = 0;
        return 0;
    }
    if (u > (uint32_t)INT32_MAX)
        return FW_EPROTO_NEG_LENGTH;
    if ((size_t)u != len - 6)
        return (size_t)u > len - 6 ? FW_EPROTO_TRUNCATED : FW_EPROTO_TRAILING;
    c->is_null = false;
    c->value.ptr = body + 6;
    c->value.len = (size_t)u;
    return 0;
}

/* Error/notice fields. `code` is the field type byte ('S', 'C', 'M', ...). */
void fw__pq_notice_iter_init(fw__pq_iter_t *it, const fw__pq_msg_t *msg);
int fw__pq_notice_next(fw__pq_iter_t *it, uint8_t *code, fw_slice_t *value);

/* The fields of an ErrorResponse/NoticeResponse by name; absent ones are empty (ptr NULL). */
typedef struct fw__pq_error_fields_s {
    fw_slice_t severity;          /* S, localized */
    fw_slice_t severity_nl;       /* V, never localized */
    fw_slice_t sqlstate;          /* C */
    fw_slice_t message;           /* M */
    fw_slice_t detail;            /* D */
    fw_slice_t hint;              /* H */
    fw_slice_t position;          /* P */
    fw_slice_t internal_position; /* p */
    fw_slice_t internal_query;    /* q */
    fw_slice_t where;             /* W */
    fw_slice_t schema;            /* s */
    fw_slice_t table;             /* t */
    fw_slice_t column;            /* c */
    fw_slice_t datatype;          /* d */
    fw_slice_t constraint;        /* n */
    fw_slice_t file;              /* F */
    fw_slice_t line;              /* L */
    fw_slice_t routine;           /* R */
} fw__pq_error_fields_t;

/* Fills *f from an 'E' or 'N' message (later duplicates of a code win). Returns 0 or error. */
int fw__pq_error_fields(const fw__pq_msg_t *msg, fw__pq_error_fields_t *f);

/* A list of NUL-terminated strings: SASL mechanisms (ended by an empty string) or the option
 * names of NegotiateProtocolVersion (counted). */
void fw__pq_sasl_iter_init(fw__pq_iter_t *it, const fw__pq_msg_t *msg);
void fw__pq_negotiate_iter_init(fw__pq_iter_t *it, const fw__pq_msg_t *msg);
int fw__pq_strlist_next(fw__pq_iter_t *it, fw_slice_t *s);

/* The i-th parameter type OID of a ParameterDescription (i < nparams). */
uint32_t fw__pq_paramdesc_oid(const fw__pq_msg_t *msg, uint16_t i);

/* ---- incremental reader ---------------------------------------------------------------- */

typedef struct fw__pq_reader_s {
    fw__pq_limits_t lim;
    fw_allocator_t alloc; /* copied at init; see "allocator" above */
    const uint8_t *in; /* the current input chunk, borrowed until the next feed */
    size_t in_len;
    uint8_t *spill; /* a message that straddles chunks, assembled as bytes arrive */
    size_t spill_len;
    size_t spill_cap;
    bool spill_out;   /* the last message returned lives in spill: drop it on the next call */
    int err;          /* sticky */
    uint8_t err_type; /* the type byte of the message that failed to parse; 0 for a framing error */
} fw__pq_reader_t;

/* Initialises a reader; `lim` and `alloc` are copied (either may be NULL for defaults). */
void fw__pq_reader_init(fw__pq_reader_t *r, const fw__pq_limits_t *lim,
                        const fw_allocator_t *alloc);
/* Releases the spill buffer. The reader may be initialised again afterwards. */
void fw__pq_reader_free(fw__pq_reader_t *r);
/* Switches startup rules on or off (see fw__pq_limits_t.startup). */
void fw__pq_reader_set_startup(fw__pq_reader_t *r, bool startup);

/*
 * Hands the reader the next chunk of bytes. `buf` must stay valid and unchanged until
 * fw__pq_reader_next() has returned 0 (or an error) for it; call next() until then before
 * feeding again. Feeding while input is left is FW_ESTATE.
 */
int fw__pq_reader_feed(fw__pq_reader_t *r, const uint8_t *buf, size_t len);

/*
 * The next message: 1 with *msg filled (its slices valid until the next call on this reader),
 * 0 when the fed bytes are used up (a partial message is kept inside), or a negative error,
 * which is sticky: every later call returns it.
 */
int fw__pq_reader_next(fw__pq_reader_t *r, fw__pq_msg_t *msg);

/* Bytes held inside the reader: an incomplete message plus unread input. */
size_t fw__pq_reader_buffered(const fw__pq_reader_t *r);

/* ---- encoder --------------------------------------------------------------------------- */

/*
 * A growable output buffer. Every encoder appends whole messages: the length field is
 * back-patched, every size sum is overflow-checked, and a failure (FW_ENOMEM, FW_EINVAL,
 * FW_ETOOBIG) rolls the partial message back and is sticky in `err` until fw__pq_buf_reset().
 * So a batch such as Parse+Bind+Describe+Execute+Sync can be encoded with one check at the end.
 */
typedef struct fw__pq_buf_s {
    uint8_t *data;
    size_t len;
    size_t cap;
    size_t msg_start; /* where the message being built starts (its type byte, if any) */
    size_t len_at;    /* where its length field starts */
    size_t max_msg;   /* cap on one message's length field; default FW__PQ_FRONTEND_MAX */
    int err;
    fw_allocator_t alloc; /* copied at init; see "allocator" above */
} fw__pq_buf_t;

/* Initialises an empty buffer; `alloc` is copied (NULL for libc, see "allocator" above). */
void fw__pq_buf_init(fw__pq_buf_t *b, const fw_allocator_t *alloc);
void fw__pq_buf_free(fw__pq_buf_t *b);
/* Empties the buffer (keeping its memory) and clears the sticky error. */
void fw__pq_buf_reset(fw__pq_buf_t *b);

/* A Bind parameter; is_null sends SQL NULL (length -1) and ignores ptr/len. */
typedef struct fw__pq_param_s {
    const uint8_t *ptr;
    size_t len;
    bool is_null;
} fw__pq_param_t;

/* StartupMessage asking for protocol `version` (FW__PQ_VERSION(3, minor): FW__PQ_PROTOCOL_3_0 or
 * FW__PQ_PROTOCOL_3_2; another major is FW_EINVAL). `kv` is name, value, name, value, ..., NULL. */
int fw__pq_put_startup_version(fw__pq_buf_t *b, uint32_t version, const char *const *kv);
/* fw__pq_put_startup_version(b, FW__PQ_PROTOCOL_3_0, kv). */
int fw__pq_put_startup(fw__pq_buf_t *b, const char *const *kv);
int fw__pq_put_ssl_request(fw__pq_buf_t *b);
/* CancelRequest: length 12 + key->len, the code, the pid, then the whole secret key. A key of
 * fewer than 4 or more than 256 bytes (none received) is FW_EINVAL. */
int fw__pq_put_cancel_request(fw__pq_buf_t *b, const fw__pq_cancel_key_t *key);
/* PasswordMessage: cleartext password or "md5..." hash, as a NUL-terminated string. */
int fw__pq_put_password(fw__pq_buf_t *b, const char *password);
/* SASLInitialResponse; data NULL sends length -1 (no initial response). */
int fw__pq_put_sasl_initial(fw__pq_buf_t *b, const char *mechanism, const uint8_t *data,
                            size_t len);
int fw__pq_put_sasl_response(fw__pq_buf_t *b, const uint8_t *data, size_t len);
int fw__pq_put_query(fw__pq_buf_t *b, const char *sql);
/* Parse; `oids` may be NULL when nparams is 0 (0 in an entry lets the server infer). */
int fw__pq_put_parse(fw__pq_buf_t *b, const char *stmt, const char *sql, size_t nparams,
                     const uint32_t *oids);
/* Bind; formats are 0 (text) or 1 (binary). Counts are uint16 on the wire (the server and
 * libpq take up to 65,535); above UINT16_MAX they are FW_EINVAL. Parse likewise. */
int fw__pq_put_bind(fw__pq_buf_t *b, const char *portal, const char *stmt, size_t nformats,
                    const int16_t *formats, size_t nparams, const fw__pq_param_t *params,
                    size_t nresult_formats, const int16_t *result_formats);
/* Describe/Close: kind 'S' (statement) or 'P' (portal). */
int fw__pq_put_describe(fw__pq_buf_t *b, uint8_t kind, const char *name);
int fw__pq_put_close(fw__pq_buf_t *b, uint8_t kind, const char *name);
/* Execute; max_rows 0 means all rows. */
int fw__pq_put_execute(fw__pq_buf_t *b, const char *portal, uint32_t max_rows);
int fw__pq_put_sync(fw__pq_buf_t *b);
int fw__pq_put_flush(fw__pq_buf_t *b);
int fw__pq_put_terminate(fw__pq_buf_t *b);

#endif /* FW_PROTO_H */
