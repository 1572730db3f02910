/* SPDX-License-Identifier: MIT */
/*
 * Frontend message encoders. Each encoder appends one whole message to a growable buffer and
 * back-patches the length field (STYLE 16). Every size sum is checked before memory is touched:
 * a message whose length would pass the frontend cap is refused whole, never written with a
 * wrapped length (CVE-2024-27304: a 4 GiB Bind whose length wrapped became attacker-chosen
 * messages). Errors are sticky, so a batch needs one check at the end.
 */
#include "alloc.h"
#include "proto.h"

#include <string.h>

#define SSL_REQUEST_CODE    80877103u /* 1234 << 16 | 5679 */
#define CANCEL_REQUEST_CODE 80877102u /* 1234 << 16 | 5678 */

void fw__pq_buf_init(fw__pq_buf_t *b, const fw_allocator_t *alloc)
{
    memset(b, 0, sizeof(*b));
    b->max_msg = FW__PQ_FRONTEND_MAX;
    fw__pq_alloc_set(&b->alloc, alloc);
}

void fw__pq_buf_free(fw__pq_buf_t *b)
{
    if (b->data != NULL) {
        /* Password, SASL and CancelRequest messages pass through here: leave no secret in
         * freed memory. */
        volatile uint8_t *p = b->data;
        for (size_t i = 0; i < b->cap; i++)
            p[i] = 0;
    }
    b->alloc.free_fn(b->alloc.ud, b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->err = 0;
}

void fw__pq_buf_reset(fw__pq_buf_t *b)
{
    if (b->data != NULL)
        memset(b->data, 0, b->len);
    b->len = 0;
    b->err = 0;
}

/* Rolls back the message being built and records the error. */
static int fail(fw__pq_buf_t *b, int err)
{
    b->len = b->msg_start;
    b->err = err;
    return err;
}

/* Room for n more bytes of the current message, checked against the per-message cap first. */
static int reserve(fw__pq_buf_t *b, size_t n)
{
    /* Bytes counted by the length field so far (the type byte is not counted). */
    size_t in_msg = b->len > b->len_at ? b->len - b->len_at : 0;
    if (n > b->max_msg || in_msg > b->max_msg - n || n > SIZE_MAX / 2 - b->len)
        return FW_ETOOBIG;
    size_t needed = b->len + n;
    if (needed <= b->cap)
        return 0;
    size_t cap = fw__grow_cap(b->cap, 256, needed);
    uint8_t *np = b->alloc.realloc_fn(b->alloc.ud, b->data, cap);
    if (np == NULL)
        return FW_ENOMEM;
    b->data = np;
    b->cap = cap;
    return 0;
}

static int put_raw(fw__pq_buf_t *b, const void *p, size_t n)
{
    int rc = reserve(b, n);
    if (rc < 0)
        return rc;
    if (n > 0)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

static int put_u8(fw__pq_buf_t *b, uint8_t v)
{
    return put_raw(b, &v, 1);
}

static int put_u16(fw__pq_buf_t *b, uint16_t v)
{
    uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    return put_raw(b, x, 2);
}

static int put_u32(fw__pq_buf_t *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    return put_raw(b, x, 4);
}

static int put_i32(fw__pq_buf_t *b, int32_t v)
{
    return put_u32(b, (uint32_t)v); /* two's complement on the wire */
}

/* A NUL-terminated string (the terminator included). NULL counts as "". */
static int put_str(fw__pq_buf_t *b, const char *s)
{
    if (s == NULL)
        s = "";
    return put_raw(b, s, strlen(s) + 1);
}

/* Starts a message: the type byte (0 for the untyped startup packets) and a length placeholder. */
static int begin(fw__pq_buf_t *b, uint8_t type)
{
    if (b->err < 0)
        return b->err;
    b->msg_start = b->len;
    b->len_at = b->len + (type != 0 ? 1 : 0);
    int rc = type != 0 ? put_u8(b, type) : 0;
    if (rc == 0)
        rc = put_u32(b, 0);
    return rc < 0 ? fail(b, rc) : 0;
}

/* Back-patches the length (which counts itself but not the type byte). */
static int end(fw__pq_buf_t *b, int rc)
{
    if (rc < 0)
        return fail(b, rc);
    size_t at = b->len_at;
    size_t n = b->len - at;
    if (n > FW__PQ_FRONTEND_MAX ||
        n > b->max_msg) /* reserve() already holds this; belt and braces */
        return fail(b, FW_ETOOBIG);
    b->data[at] = (uint8_t)(n >> 24);
    b->data[at + 1] = (uint8_t)(n >> 16);
    b->data[at + 2] = (uint8_t)(n >> 8);
    b->data[at + 3] = (uint8_t)n;
    b->msg_start = b->len;
    return 0;
}

int fw__pq_put_startup_version(fw__pq_buf_t *b, uint32_t version, const char *const *kv)
{
    int rc = begin(b, 0);
    if (rc < 0)
        return rc;
    /* Only major 3 is a StartupMessage: 1234.5679 and 1234.5678 are the SSL and cancel codes. */
    if (FW__PQ_VERSION_MAJOR(version) != 3)
        return end(b, FW_EINVAL);
    rc = put_u32(b, version);
    for (size_t i = 0; rc == 0 && kv != NULL && kv[i] != NULL; i += 2) {
        if (kv[i + 1] == NULL || kv[i][0] == '\0') {
            rc = FW_EINVAL; /* an odd list or an empty name would end the packet early */
            break;
        }
        rc = put_str(b, kv[i]);
        if (rc == 0)
            rc = put_str(b, kv[i + 1]);
    }
    if (rc == 0)
        rc = put_u8(b, 0);
    if (rc == 0 && b->len - b->msg_start > FW__PQ_STARTUP_PACKET_MAX)
        rc = FW_ETOOBIG; /* the server would drop it as an invalid startup packet */
    return end(b, rc);
}

int fw__pq_put_startup(fw__pq_buf_t *b, const char *const *kv)
{
    return fw__pq_put_startup_version(b, FW__PQ_PROTOCOL_3_0, kv);
}

int fw__pq_put_ssl_request(fw__pq_buf_t *b)
{
    int rc = begin(b, 0);
    return rc < 0 ? rc : end(b, put_u32(b, SSL_REQUEST_CODE));
}

int fw__pq_put_cancel_request(fw__pq_buf_t *b, const fw__pq_cancel_key_t *key)
{
    int rc = begin(b, 0);
    if (rc < 0)
        return rc;
    /* The key goes out whole: a 3.2 server compares every byte it handed out, so a cut key
     * would cancel nothing (and the server's limit is 256). */
    if (key == NULL || key->len < FW__PQ_CANCEL_KEY_MIN || key->len > FW__PQ_CANCEL_KEY_MAX)
        return end(b, FW_EINVAL);
    rc = put_u32(b, CANCEL_REQUEST_CODE);
    if (rc == 0)
        rc = put_i32(b, key->pid);
    if (rc == 0)
        rc = put_raw(b, key->secret, key->len);
    return end(b, rc);
}

int fw__pq_put_password(fw__pq_buf_t *b, const char *password)
{
    int rc = begin(b, 'p');
    return rc < 0 ? rc : end(b, put_str(b, password));
}

int fw__pq_put_sasl_initial(fw__pq_buf_t *b, const char *mechanism, const uint8_t *data, size_t len)
{
    int rc = begin(b, 'p');
    if (rc < 0)
        return rc;
    if (mechanism == NULL || mechanism[0] == '\0')
        return end(b, FW_EINVAL);
    rc = put_str(b, mechanism);
    if (rc == 0 && data == NULL) {
        rc = put_i32(b, -1);
    } else if (rc == 0) {
        if (len > (size_t)INT32_MAX)
            rc = FW_ETOOBIG;
        else if ((rc = put_i32(b, (int32_t)len)) == 0)
            rc = put_raw(b, data, len);
    }
    return end(b, rc);
}

int fw__pq_put_sasl_response(fw__pq_buf_t *b, const uint8_t *data, size_t len)
{
    int rc = begin(b, 'p');
    if (rc < 0)
        return rc;
    if (data == NULL && len != 0)
        return end(b, FW_EINVAL);
    return end(b, put_raw(b, data, len));
}

int fw__pq_put_query(fw__pq_buf_t *b, const char *sql)
{
    int rc = begin(b, 'Q');
    if (rc < 0)
        return rc;
    if (sql == NULL)
        return end(b, FW_EINVAL);
    return end(b, put_str(b, sql));
}

int fw__pq_put_parse(fw__pq_buf_t *b, const char *stmt, const char *sql, size_t nparams,
                     const uint32_t *oids)
{
    int rc = begin(b, 'P');
    if (rc < 0)
        return rc;
    if (sql == NULL || nparams > (size_t)UINT16_MAX || (nparams > 0 && oids == NULL))
        return end(b, FW_EINVAL);
    rc = put_str(b, stmt);
    if (rc == 0)
        rc = put_str(b, sql);
    if (rc == 0)
        rc = put_u16(b, (uint16_t)nparams);
    for (size_t i = 0; rc == 0 && i < nparams; i++)
        rc = put_u32(b, oids[i]);
    return end(b, rc);
}

static int put_formats(fw__pq_buf_t *b, size_t n, const int16_t *formats)
{
    if (n > (size_t)UINT16_MAX || (n > 0 && formats == NULL))
        return FW_EINVAL;
    int rc = put_u16(b, (uint16_t)n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (formats[i] != 0 && formats[i] != 1)
            return FW_EINVAL;
        rc = put_u16(b, (uint16_t)formats[i]);
    }
    return rc;
}

int fw__pq_put_bind(fw__pq_buf_t *b, const char *portal, const char *stmt, size_t nformats,
                    const int16_t *formats, size_t nparams, const fw__pq_param_t *params,
                    size_t nresult_formats, const int16_t *result_formats)
{
    int rc = begin(b, 'B');
    if (rc < 0)
        return rc;
    if (nparams > (size_t)UINT16_MAX || (nparams > 0 && params == NULL))
        return end(b, FW_EINVAL);
    rc = put_str(b, portal);
    if (rc == 0)
        rc = put_str(b, stmt);
    if (rc == 0)
        rc = put_formats(b, nformats, formats);
    if (rc == 0)
        rc = put_u16(b, (uint16_t)nparams);
    for (size_t i = 0; rc == 0 && i < nparams; i++) {
        const fw__pq_param_t *p = &params[i];
        if (p->is_null) {
            rc = put_i32(b, -1);
        } else if (p->ptr == NULL && p->len != 0) {
            rc = FW_EINVAL;
        } else if (p->len > (size_t)INT32_MAX) {
            rc = FW_ETOOBIG; /* checked before any byte of it is written */
        } else if ((rc = put_i32(b, (int32_t)p->len)) == 0) {
            rc = put_raw(b, p->ptr, p->len);
        }
    }
    if (rc == 0)
        rc = put_formats(b, nresult_formats, result_formats);
    return end(b, rc);
}

static int put_kind_name(fw__pq_buf_t *b, uint8_t type, uint8_t kind, const char *name)
{
    int rc = begin(b, type);
    if (rc < 0)
        return rc;
    if (kind != 'S' && kind != 'P')
        return end(b, FW_EINVAL);
    rc = put_u8(b, kind);
    if (rc == 0)
        rc = put_str(b, name);
    return end(b, rc);
}

int fw__pq_put_describe(fw__pq_buf_t *b, uint8_t kind, const char *name)
{
    return put_kind_name(b, 'D', kind, name);
}

int fw__pq_put_close(fw__pq_buf_t *b, uint8_t kind, const char *name)
{
    return put_kind_name(b, 'C', kind, name);
}

int fw__pq_put_execute(fw__pq_buf_t *b, const char *portal, uint32_t max_rows)
{
    int rc = begin(b, 'E');
    if (rc < 0)
        return rc;
    if (max_rows > (uint32_t)INT32_MAX)
        return end(b, FW_EINVAL);
    rc = put_str(b, portal);
    if (rc == 0)
        rc = put_u32(b, max_rows);
    return end(b, rc);
}

static int put_empty(fw__pq_buf_t *b, uint8_t type)
{
    int rc = begin(b, type);
    return rc < 0 ? rc : end(b, 0);
}

int fw__pq_put_sync(fw__pq_buf_t *b)
{
    return put_empty(b, 'S');
}

int fw__pq_put_flush(fw__pq_buf_t *b)
{
    return put_empty(b, 'H');
}

int fw__pq_put_terminate(fw__pq_buf_t *b)
{
    return put_empty(b, 'X');
}
