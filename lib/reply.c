/* SPDX-License-Identifier: MIT */
/* The reply machine of a streaming query, sans-I/O: see reply.h. */
#include "reply.h"
#include "servermsg.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* A readable name for the types a misdirected query most often returns. */
static const char *type_name(uint32_t oid)
{
    switch (oid) {
    case 16:
        return "boolean";
    case 20:
        return "bigint";
    case 21:
        return "smallint";
    case 23:
        return "integer";
    case 25:
        return "text";
    case 114:
        return "json";
    case 700:
        return "real";
    case 701:
        return "double precision";
    case 1043:
        return "character varying";
    case 1700:
        return "numeric";
    case 3802:
        return "jsonb";
    default:
        return NULL;
    }
}

/* Records a failure of ours (the first one wins) and drops the rows still to come. Returns the
 * event: FW__RE_FAILED when this failure is the one reported, else FW__RE_NONE. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static fw__reply_event_kind_t
fail(fw__reply_t *r, int code, const char *fmt, ...)
{
    r->discard = true;
    if (r->err->code != 0)
        return FW__RE_NONE;
    memset(r->err, 0, sizeof(*r->err));
    r->err->code = code;
    r->err->phase = FW_PHASE_READY;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err->message, sizeof(r->err->message), fmt, ap);
    va_end(ap);
    return FW__RE_FAILED;
}

/* RowDescription: exactly one column named data, json or jsonb, text format. */
static fw__reply_event_kind_t check_schema(fw__reply_t *r, const fw__pq_msg_t *m)
{
    fw__pq_iter_t it;
    fw__pq_field_t f;
    fw__pq_rowdesc_iter_init(&it, m);
    bool ok = m->u.rowdesc.nfields == 1;
    char got[512] = "";
    size_t at = 0;
    for (unsigned i = 0; fw__pq_rowdesc_next(&it, &f) == 1; i++) {
        if (r->explain) /* EXPLAIN (FORMAT JSON): one json column named "QUERY PLAN" */
            ok = ok && f.name.len == 10 && memcmp(f.name.ptr, "QUERY PLAN", 10) == 0 &&
                 f.format == 0 && f.type_oid == FW__PQ_OID_JSON;
        else
            ok = ok && f.name.len == 4 && memcmp(f.name.ptr, "data", 4) == 0 &&
                 f.format == 0 && (f.type_oid == FW__PQ_OID_JSON || f.type_oid == FW__PQ_OID_JSONB);
        if (i < 8 && at < sizeof(got) - 1) {
            char name[80];
            fw__escape_text(name, sizeof(name), f.name.ptr, f.name.len);
            const char *tn = type_name(f.type_oid);
            char oid[32];
            snprintf(oid, sizeof(oid), "type oid %u", (unsigned)f.type_oid);
            int k = snprintf(got + at, sizeof(got) - at, "%s\"%s\" (%s%s)", i ? ", " : "", name,
                             tn ? tn : oid, f.format != 0 ? ", binary format" : "");
            at += k > 0 ? (size_t)k : 0;
            if (at >= sizeof(got))
                at = sizeof(got) - 1;
        }
    }
    if (ok)
        return FW__RE_DESCRIBED;
    return fail(r, FW_ESCHEMA,
                "the query must return one column named \"data\" of type json or jsonb; it "
                "returned %u column%s: %s%s",
                (unsigned)m->u.rowdesc.nfields, m->u.rowdesc.nfields == 1 ? "" : "s", got,
                m->u.rowdesc.nfields > 8 ? ", ..." : "");
}

void fw__reply_init(fw__reply_t *r, int npre, bool simple, bool explain, size_t max_message,
                    size_t max_memory, fw_error_t *err)
{
    memset(r, 0, sizeof(*r));
    r->phase = simple ? FW__RP_DESC : npre > 0 ? FW__RP_PRE_PARSE : FW__RP_PARSE;
    if (simple)
        npre = 0;
    r->pre_left = npre;
    r->explain = explain;
    r->max_message = max_message;
    r->max_memory = max_memory;
    /* A row over the byte budget is still delivered (alone, in a buffer of its own: the
     * pipe's oversize slab); only the row-size limit, max_message, refuses one. */
    r->row_cap = max_message;
    fw__pq_limits_init(&r->lim);
    r->lim.max_message = max_message;
    r->err = err;
}

/* A DataRow that is not a plain row of the result: the length is impossible or over a limit,
 * the row is out of place, or rows are being dropped. */
static long data_row(fw__reply_t *r, const uint8_t *p, size_t avail, fw__reply_event_t *ev)
{
    uint32_t len = fw__be32(p + 1);
    if (len < 4) {
        r->why = NULL;
        return FW_EPROTO_SHORT;
    }
    if (len > FW__REPLY_ROW_MESSAGE_MAX) {
        /* No one-column row is this long (PostgreSQL caps a field at 1 GiB; 0xFFFFFFFF is a
         * negative length): the stream is out of sync and cannot be skipped. Closing at once
         * beats cancelling and waiting for a drain that a broken server may never send. */
        r->why = "a DataRow longer than any one-column row can be (lost synchronization)";
        return FW_EPROTO_TOO_LARGE;
    }
    size_t total = (size_t)len + 1;
    if (len > r->row_cap) {
        /* RELIABILITY decision 4: fail the stream, skip the bytes as they arrive. */
        ev->kind = fail(r, FW_ETOOBIG,
                        "a row arrived as a message of %zu bytes, over the connection's "
                        "max_message of %zu bytes; raise max_message to read it",
                        (size_t)len, r->max_message);
        size_t k = avail < total ? avail : total;
        r->skip = total - k;
        return (long)k;
    }
    if (avail < total)
        return 0;
    if (r->phase != FW__RP_ROWS && r->phase != FW__RP_PRE_ROWS) {
        r->why = "a DataRow arrived out of place";
        return FW_EPROTO_UNEXPECTED;
    }
    if (r->phase == FW__RP_ROWS && !r->discard) {
        /* A row fw__reply_row did not take: a malformed one (or a caller that came here
         * first). */
        fw__pq_col_t col;
        int err = fw__pq_datarow_one_fast(p + 5, len - 4, &col);
        if (err < 0)
            return err;
        ev->kind = FW__RE_ROW;
        ev->row.json = (const char *)col.value.ptr;
        ev->row.len = col.value.len;
        ev->row.is_null = col.is_null;
        return (long)total;
    }
    /* The statement-timeout statement's one row; or rows after a failure of ours (schema, too
     * big) or after the consumer left, dropped unread: after a schema error they may well have
     * two fields. */
    return (long)total;
}

long fw__reply_other(fw__reply_t *r, const uint8_t *p, size_t avail, fw__reply_event_t *ev)
{
    ev->kind = FW__RE_NONE;
    ev->has_msg = false;
    ev->fatal = false;
    if (r->skip > 0) { /* the rest of an oversized DataRow, dropped as it arrives */
        size_t k = avail < r->skip ? avail : r->skip;
        r->skip -= k;
        return (long)k;
    }
    if (avail < 5)
        return 0;
    if (p[0] == 'D')
        return data_row(r, p, avail, ev);
    /* Every other message: framed by proto/ with its per-type caps. */
    fw__pq_frame_t f;
    size_t need = 0;
    r->why = NULL;
    long n = fw__pq_frame(p, avail, &r->lim, &f, &need);
    if (n <= 0)
        return n;
    fw__pq_msg_t *m = &ev->msg;
    int rc = fw__pq_parse(f.type, f.body, f.len, m);
    if (rc < 0)
        return rc;
    ev->has_msg = true;
    switch (f.type) {
    case '1':
        if (r->phase != FW__RP_PRE_PARSE && r->phase != FW__RP_PARSE)
            break;
        r->phase = r->phase == FW__RP_PRE_PARSE ? FW__RP_PRE_BIND : FW__RP_BIND;
        return n;
    case '2':
        if (r->phase != FW__RP_PRE_BIND && r->phase != FW__RP_BIND)
            break;
        r->phase = r->phase == FW__RP_PRE_BIND ? FW__RP_PRE_ROWS : FW__RP_DESC;
        return n;
    case 'T':
        if (r->phase != FW__RP_DESC)
            break;
        ev->kind = check_schema(r, m);
        r->phase = FW__RP_ROWS;
        return n;
    case 'n':
        if (r->phase != FW__RP_DESC)
            break;
        ev->kind = fail(r, FW_ESCHEMA, "the query returns no rows at all (NoData): not a SELECT");
        r->phase = FW__RP_ROWS;
        return n;
    case 'C':
        if (r->phase != FW__RP_PRE_ROWS && r->phase != FW__RP_ROWS)
            break;
        if (r->phase == FW__RP_PRE_ROWS)
            r->phase = --r->pre_left > 0 ? FW__RP_PRE_PARSE : FW__RP_PARSE;
        else
            r->phase = FW__RP_DONE;
        return n;
    case 'E': {
        fw_error_t e;
        (void)fw__servermsg_error(m, FW_PHASE_READY, &e);
        ev->kind = FW__RE_SERVER_ERROR;
        ev->fatal = fw__servermsg_fatal(&e);
        r->discard = true;
        /* Our own failure (schema, too big) came first and stays the reported one, unless
         * the session itself ends. */
        if (r->err->code == 0 || ev->fatal)
            *r->err = e;
        r->phase = FW__RP_DONE;
        return n;
    }
    case 'Z':
        if (r->phase != FW__RP_DONE)
            break;
        ev->kind = FW__RE_READY;
        return n;
    case 'N':
        ev->kind = FW__RE_NOTICE;
        return n;
    case 'A':
        ev->kind = FW__RE_NOTIFY;
        return n;
    case 'S': {
        /* a setting changed mid-query; fw_conn_parameter keeps the connect-time view. But the
         * encoding is not a setting fwire can live with changing: the rows after it would not
         * be UTF-8 (set_config('client_encoding', ...) inside the query does this). */
        fw_slice_t name = m->u.param.name, value = m->u.param.value;
        if (name.len == 15 && memcmp(name.ptr, "client_encoding", 15) == 0) {
            char enc[64];
            fw__escape_text(enc, sizeof(enc), value.ptr, value.len);
            if (!fw__is_utf8_name(enc)) {
                snprintf(r->why_buf, sizeof(r->why_buf),
                         "server switched client_encoding to \"%s\" during the query; fwire "
                         "needs UTF8 (the rows after it would not be UTF-8 JSON)",
                         enc);
                r->why = r->why_buf;
                return FW_EPROTO_BAD_VALUE;
            }
        }
        ev->kind = FW__RE_PARAM;
        return n;
    }
    default:
        break;
    }
    return FW_EPROTO_UNEXPECTED; /* a message that has no place here, or no place now */
}
