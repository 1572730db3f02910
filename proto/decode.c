/* SPDX-License-Identifier: MIT */
/*
 * Backend message framing and parsing (protocols 3.0 and 3.2). Every byte here comes from a server
 * we may not trust yet: each length is checked against the bytes present before it is used, each
 * count against what the remaining bytes can hold, and nothing is allocated (STYLE 12-15).
 */
#include "proto.h"

#include <string.h>

/* ---- big-endian readers: explicit, so the signedness the protocol states is visible ---- */

static uint32_t rd_u32(const uint8_t *p)
{
    return fw__be32(p);
}

static int32_t rd_i32(const uint8_t *p)
{
    /* Two's complement conversion without implementation-defined behaviour. */
    uint32_t u = rd_u32(p);
    return u <= (uint32_t)INT32_MAX ? (int32_t)u : -(int32_t)(~u) - 1;
}

static uint16_t rd_u16(const uint8_t *p)
{
    return fw__be16(p);
}

static int16_t rd_i16(const uint8_t *p)
{
    uint16_t u = rd_u16(p);
    return u <= (uint16_t)INT16_MAX ? (int16_t)u : (int16_t)(-(int16_t)(uint16_t)~u - 1);
}

/* ---- limits and framing ---------------------------------------------------------------- */

void fw__pq_limits_init(fw__pq_limits_t *lim)
{
    lim->max_message = FW__PQ_DEFAULT_MAX_MESSAGE;
    lim->max_short = FW__PQ_SHORT_MAX;
    lim->startup = false;
}

bool fw__pq_is_backend_type(uint8_t type)
{
    switch (type) {
    case 'R':
    case 'K':
    case 'S':
    case 'Z':
    case 'T':
    case 'D':
    case 'C':
    case 'I':
    case 'E':
    case 'N':
    case 'A':
    case '1':
    case '2':
    case '3':
    case 'n':
    case 's':
    case 't':
    case 'v':
    case 'G':
    case 'H':
    case 'W':
    case 'd':
    case 'c':
    case 'V':
        return true;
    default:
        return false;
    }
}

/* The largest length field a message of this type may declare. */
static size_t type_cap(uint8_t type, const fw__pq_limits_t *lim)
{
    size_t long_cap = lim->max_message == 0 || lim->max_message > FW__PQ_PROTOCOL_MAX
                          ? FW__PQ_PROTOCOL_MAX
                          : lim->max_message;
    size_t short_cap = lim->max_short > FW__PQ_PROTOCOL_MAX ? FW__PQ_PROTOCOL_MAX : lim->max_short;

    switch (type) {
    case 'R': /* authentication exchanges are small; a huge one is an attack (libpq: 2000) */
    case 'v':
        return FW__PQ_STARTUP_MAX < short_cap ? FW__PQ_STARTUP_MAX : short_cap;
    case 'E':
    case 'N':
        /* Before authentication the server has no business sending long text. */
        return lim->startup ? short_cap : long_cap;
    case 'T':
    case 'D':
    case 'd':
    case 'V':
    case 'A':
        return long_cap;
    default:
        return short_cap;
    }
}

long fw__pq_frame(const uint8_t *buf, size_t len, const fw__pq_limits_t *lim, fw__pq_frame_t *out,
                  size_t *need)
{
    if (len == 0) {
        if (need != NULL)
            *need = 5;
        return 0;
    }
    /* Judge the type from the first byte: an unknown type is a lost sync, and waiting for a
     * length that is garbage could make us wait (and buffer) forever. */
    if (!fw__pq_is_backend_type(buf[0]))
        return FW_EPROTO_UNKNOWN_TYPE;
    if (len < 5) {
        if (need != NULL)
            *need = 5;
        return 0;
    }
    uint32_t declared = rd_u32(buf + 1);
    if (declared < 4)
        return FW_EPROTO_SHORT;
    if (declared > FW__PQ_PROTOCOL_MAX || declared > type_cap(buf[0], lim))
        return FW_EPROTO_TOO_LARGE;
    size_t total = (size_t)declared + 1;
    if (len < total) {
        if (need != NULL)
            *need = total;
        return 0;
    }
    out->type = buf[0];
    out->body = buf + 5;
    out->len = (size_t)declared - 4;
    return (long)total;
}

/* ---- a cursor over one message body ---------------------------------------------------- */

typedef struct cur_s {
    const uint8_t *p, *end;
} cur_t;

static size_t left(const cur_t *c)
{
    return (size_t)(c->end - c->p);
}

static int take_i32(cur_t *c, int32_t *v)
{
    if (left(c) < 4)
        return FW_EPROTO_TRUNCATED;
    *v = rd_i32(c->p);
    c->p += 4;
    return 0;
}

static int take_i16(cur_t *c, int16_t *v)
{
    if (left(c) < 2)
        return FW_EPROTO_TRUNCATED;
    *v = rd_i16(c->p);
    c->p += 2;
    return 0;
}

/* A NUL-terminated string that must end inside the message (CVE-2022-41862). */
static int take_str(cur_t *c, fw_slice_t *s)
{
    const uint8_t *nul = memchr(c->p, 0, left(c));
    if (nul == NULL)
        return FW_EPROTO_UNTERMINATED;
    s->ptr = c->p;
    s->len = (size_t)(nul - c->p);
    c->p = nul + 1;
    return 0;
}

static int take_bytes(cur_t *c, size_t n, fw_slice_t *s)
{
    if (left(c) < n)
        return FW_EPROTO_TRUNCATED;
    s->ptr = c->p;
    s->len = n;
    c->p += n;
    return 0;
}

static int done(const cur_t *c)
{
    return c->p == c->end ? 0 : FW_EPROTO_TRAILING;
}

static fw_slice_t rest(const cur_t *c)
{
    fw_slice_t s = {c->p, left(c)};
    return s;
}

/* A count field: int16 that must not be negative. */
static int take_count16(cur_t *c, uint16_t *n)
{
    int16_t v;
    int rc = take_i16(c, &v);
    if (rc < 0)
        return rc;
    if (v < 0)
        return FW_EPROTO_BAD_VALUE;
    *n = (uint16_t)v;
    return 0;
}

/* ---- per-message validators ------------------------------------------------------------ */

static int parse_auth(cur_t *c, fw__pq_msg_t *m)
{
    int rc = take_i32(c, &m->u.auth.code);
    if (rc < 0)
        return rc;
    m->u.auth.data.ptr = c->p;
    m->u.auth.data.len = 0;
    switch (m->u.auth.code) {
    case FW__PQ_AUTH_OK:
    case FW__PQ_AUTH_KERBEROS_V5:
    case FW__PQ_AUTH_CLEARTEXT:
    case FW__PQ_AUTH_SCM:
    case FW__PQ_AUTH_GSS:
    case FW__PQ_AUTH_SSPI:
        return done(c);
    case FW__PQ_AUTH_MD5:
        rc = take_bytes(c, 4, &m->u.auth.data);
        return rc < 0 ? rc : done(c);
    case FW__PQ_AUTH_SASL: {
        /* A list of mechanism names ended by an empty one; nothing may follow it.
         * Walk it once here so the iterator can trust it (the pgx endless-loop class). */
        const uint8_t *start = c->p;
        for (;;) {
            fw_slice_t s;
            rc = take_str(c, &s);
            if (rc < 0)
                return rc;
            if (s.len == 0)
                break;
        }
        m->u.auth.data.ptr = start;
        m->u.auth.data.len = (size_t)(c->p - start);
        return done(c);
    }
    case FW__PQ_AUTH_SASL_CONTINUE:
    case FW__PQ_AUTH_SASL_FINAL:
    case FW__PQ_AUTH_GSS_CONTINUE:
        m->u.auth.data = rest(c);
        return 0;
    default:
        return FW_EPROTO_BAD_VALUE;
    }
}

static int parse_rowdesc(cur_t *c, fw__pq_msg_t *m)
{
    int rc = take_count16(c, &m->u.rowdesc.nfields);
    if (rc < 0)
        return rc;
    m->u.rowdesc.fields = rest(c);
    for (uint16_t i = 0; i < m->u.rowdesc.nfields; i++) {
        fw_slice_t name;
        if (left(c) == 0)
            return FW_EPROTO_FIELD_COUNT; /* fewer fields present than declared */
        rc = take_str(c, &name);
        if (rc < 0)
            return rc;
        /* table oid 4, attnum 2, type oid 4, typlen 2, typmod 4, format 2 */
        if (left(c) < 18)
            return FW_EPROTO_FIELD_COUNT;
        int16_t format = rd_i16(c->p + 16);
        if (format != 0 && format != 1)
            return FW_EPROTO_BAD_VALUE;
        c->p += 18;
    }
    return done(c) < 0 ? FW_EPROTO_FIELD_COUNT : 0;
}

static int parse_datarow(cur_t *c, fw__pq_msg_t *m)
{
    int rc = take_count16(c, &m->u.datarow.ncols);
    if (rc < 0)
        return rc;
    m->u.datarow.cols = rest(c);
    for (uint16_t i = 0; i < m->u.datarow.ncols; i++) {
        int32_t n;
        if (left(c) < 4)
            return FW_EPROTO_FIELD_COUNT; /* fewer columns present than declared */
        n = rd_i32(c->p);
        c->p += 4;
        if (n == -1)
            continue;
        if (n < 0)
            return FW_EPROTO_NEG_LENGTH; /* CVE-2026-32286: -2, INT32_MIN, ... */
        if ((size_t)n > left(c))
            return FW_EPROTO_TRUNCATED;
        c->p += n;
    }
    return done(c) < 0 ? FW_EPROTO_FIELD_COUNT : 0; /* more bytes than declared columns */
}

static int parse_notice(cur_t *c, fw__pq_msg_t *m)
{
    m->u.notice.fields = rest(c);
    for (;;) {
        if (left(c) == 0)
            return FW_EPROTO_UNTERMINATED; /* the list must end with a zero byte */
        uint8_t code = *c->p++;
        if (code == 0)
            return done(c);
        fw_slice_t s;
        int rc = take_str(c, &s);
        if (rc < 0)
            return rc;
    }
}

static int parse_negotiate(cur_t *c, fw__pq_msg_t *m)
{
    int32_t version, n;
    int rc = take_i32(c, &version);
    if (rc == 0)
        rc = take_i32(c, &n);
    if (rc < 0)
        return rc;
    if (version < 0 || n < 0)
        return FW_EPROTO_BAD_VALUE;
    /* Each option needs at least its NUL: a count the bytes cannot hold is refused before any
     * loop runs on it (the pgx OOM from an untrusted option count). */
    if ((size_t)n > left(c))
        return FW_EPROTO_FIELD_COUNT;
    m->u.negotiate.version = (uint32_t)version;
    m->u.negotiate.nopts = (uint32_t)n;
    m->u.negotiate.opts = rest(c);
    for (int32_t i = 0; i < n; i++) {
        fw_slice_t s;
        rc = take_str(c, &s);
        if (rc < 0)
            return rc;
    }
    return done(c);
}

/* CopyIn/CopyOut/CopyBothResponse: int8 format, int16 n, n int16 formats. */
static int parse_copy_response(cur_t *c)
{
    uint16_t n;
    if (left(c) < 1)
        return FW_EPROTO_TRUNCATED;
    if (*c->p > 1)
        return FW_EPROTO_BAD_VALUE;
    c->p++;
    int rc = take_count16(c, &n);
    if (rc < 0)
        return rc;
    if (left(c) != (size_t)n * 2)
        return FW_EPROTO_FIELD_COUNT;
    return 0;
}

int fw__pq_parse(uint8_t type, const uint8_t *body, size_t len, fw__pq_msg_t *m)
{
    static const uint8_t empty[1];
    int rc;

    if (body == NULL) {
        if (len != 0)
            return FW_EINVAL;
        body = empty; /* pointer arithmetic on NULL is undefined, even by zero */
    }
    cur_t c = {body, body + len};

    memset(&m->u, 0, sizeof(m->u));
    m->type = type;
    m->body.ptr = body;
    m->body.len = len;

    switch (type) {
    case 'R':
        return parse_auth(&c, m);
    case 'K':
        /* pid, then the secret key: the rest of the message. 3.0 keys are exactly 4 bytes, 3.2
         * keys 4 to 256; only the caller knows the version, so here the bounds of both. A key
         * is copied into fixed storage later: never more than 256 bytes, whatever the frame. */
        rc = take_i32(&c, &m->u.key.pid);
        if (rc < 0)
            return rc;
        if (left(&c) < FW__PQ_CANCEL_KEY_MIN)
            return FW_EPROTO_TRUNCATED;
        if (left(&c) > FW__PQ_CANCEL_KEY_MAX)
            return FW_EPROTO_TOO_LARGE;
        m->u.key.secret = rest(&c);
        return 0;
    case 'S':
        rc = take_str(&c, &m->u.param.name);
        if (rc == 0)
            rc = take_str(&c, &m->u.param.value);
        return rc < 0 ? rc : done(&c);
    case 'Z':
        if (len != 1)
            return len == 0 ? FW_EPROTO_TRUNCATED : FW_EPROTO_TRAILING;
        if (body[0] != 'I' && body[0] != 'T' && body[0] != 'E')
            return FW_EPROTO_BAD_VALUE;
        m->u.ready.status = body[0];
        return 0;
    case 'T':
        return parse_rowdesc(&c, m);
    case 'D':
        return parse_datarow(&c, m);
    case 'C':
        rc = take_str(&c, &m->u.complete.tag);
        return rc < 0 ? rc : done(&c);
    case 'E':
    case 'N':
        return parse_notice(&c, m);
    case 'A':
        rc = take_i32(&c, &m->u.notify.pid);
        if (rc == 0)
            rc = take_str(&c, &m->u.notify.channel);
        if (rc == 0)
            rc = take_str(&c, &m->u.notify.payload);
        return rc < 0 ? rc : done(&c);
    case 'I':
    case '1':
    case '2':
    case '3':
    case 'n':
    case 's':
        return done(&c); /* these carry no body at all */
    case 't':
        rc = take_count16(&c, &m->u.paramdesc.nparams);
        if (rc < 0)
            return rc;
        m->u.paramdesc.oids = rest(&c);
        return left(&c) == (size_t)m->u.paramdesc.nparams * 4 ? 0 : FW_EPROTO_FIELD_COUNT;
    case 'v':
        return parse_negotiate(&c, m);
    case 'V': {
        int32_t n;
        rc = take_i32(&c, &n);
        if (rc < 0)
            return rc;
        if (n == -1) {
            m->u.fncall.is_null = true;
            return done(&c);
        }
        if (n < 0)
            return FW_EPROTO_NEG_LENGTH;
        rc = take_bytes(&c, (size_t)n, &m->u.fncall.value);
        return rc < 0 ? rc : done(&c);
    }
    case 'G':
    case 'H':
    case 'W':
        rc = parse_copy_response(&c);
        return rc < 0 ? rc : FW_EPROTO_UNSUPPORTED;
    case 'd':
        return FW_EPROTO_UNSUPPORTED;
    case 'c':
        rc = done(&c);
        return rc < 0 ? rc : FW_EPROTO_UNSUPPORTED;
    default:
        return FW_EPROTO_UNKNOWN_TYPE;
    }
}

/* ---- iterators: they re-check everything, so they are safe on any slice ---------------- */

void fw__pq_rowdesc_iter_init(fw__pq_iter_t *it, const fw__pq_msg_t *msg)
{
    it->p = msg->u.rowdesc.fields.ptr;
    it->end = it->p + msg->u.rowdesc.fields.len;
    it->left = msg->u.rowdesc.nfields;
}

int fw__pq_rowdesc_next(fw__pq_iter_t *it, fw__pq_field_t *f)
{
    if (it->left == 0)
        return 0;
    cur_t c = {it->p, it->end};
    int rc = take_str(&c, &f->name);
    if (rc < 0)
        return rc;
    if (left(&c) < 18)
        return FW_EPROTO_FIELD_COUNT;
    f->table_oid = rd_u32(c.p);
    f->attnum = rd_i16(c.p + 4);
    f->type_oid = rd_u32(c.p + 6);
    f->typlen = rd_i16(c.p + 10);
    f->typmod = rd_i32(c.p + 12);
    f->format = rd_i16(c.p + 16);
    it->p = c.p + 18;
    it->left--;
    return 1;
}

void fw__pq_datarow_iter_init(fw__pq_iter_t *it, const fw__pq_msg_t *msg)
{
    it->p = msg->u.datarow.cols.ptr;
    it->end = it->p + msg->u.datarow.cols.len;
    it->left = msg->u.datarow.ncols;
}

int fw__pq_datarow_next(fw__pq_iter_t *it, fw__pq_col_t *col)
{
    if (it->left == 0)
        return 0;
    if ((size_t)(it->end - it->p) < 4)
        return FW_EPROTO_FIELD_COUNT;
    int32_t n = rd_i32(it->p);
    it->p += 4;
    if (n == -1) {
        col->is_null = true;
        col->value.ptr = NULL;
        col->value.len = 0;
    } else if (n < 0) {
        return FW_EPROTO_NEG_LENGTH;
    } else if ((size_t)n > (size_t)(it->end - it->p)) {
        return FW_EPROTO_TRUNCATED;
    } else {
        col->is_null = false;
        col->value.ptr = it->p;
        col->value.len = (size_t)n;
        it->p += n;
    }
    it->left--;
    return 1;
}

int fw__pq_datarow_one(const fw__pq_msg_t *msg, fw__pq_col_t *col)
{
    if (msg->type != 'D')
        return FW_EINVAL;
    if (msg->u.datarow.ncols != 1)
        return FW_EPROTO_FIELD_COUNT;
    fw__pq_iter_t it;
    fw__pq_datarow_iter_init(&it, msg);
    int rc = fw__pq_datarow_next(&it, col);
    if (rc < 0)
        return rc;
    return it.p == it.end ? 0 : FW_EPROTO_FIELD_COUNT;
}

void fw__pq_notice_iter_init(fw__pq_iter_t *it, const fw__pq_msg_t *msg)
{
    it->p = msg->u.notice.fields.ptr;
    it->end = it->p + msg->u.notice.fields.len;
    it->left = 1; /* unknown count: ends at the zero code */
}

int fw__pq_notice_next(fw__pq_iter_t *it, uint8_t *code, fw_slice_t *value)
{
    if (it->left == 0)
        return 0;
    if (it->p == it->end)
        return FW_EPROTO_UNTERMINATED;
    uint8_t k = *it->p;
    if (k == 0) {
        it->p++;
        it->left = 0;
        return 0;
    }
    cur_t c = {it->p + 1, it->end};
    int rc = take_str(&c, value);
    if (rc < 0)
        return rc;
    *code = k;
    it->p = c.p;
    return 1;
}

int fw__pq_error_fields(const fw__pq_msg_t *msg, fw__pq_error_fields_t *f)
{
    fw__pq_iter_t it;
    uint8_t code;
    fw_slice_t v;
    int rc;

    memset(f, 0, sizeof(*f));
    if (msg->type != 'E' && msg->type != 'N')
        return FW_EINVAL;
    fw__pq_notice_iter_init(&it, msg);
    while ((rc = fw__pq_notice_next(&it, &code, &v)) > 0) {
        fw_slice_t *dst = NULL;
        switch (code) {
        case 'S':
            dst = &f->severity;
            break;
        case 'V':
            dst = &f->severity_nl;
            break;
        case 'C':
            dst = &f->sqlstate;
            break;
        case 'M':
            dst = &f->message;
            break;
        case 'D':
            dst = &f->detail;
            break;
        case 'H':
            dst = &f->hint;
            break;
        case 'P':
            dst = &f->position;
            break;
        case 'p':
            dst = &f->internal_position;
            break;
        case 'q':
            dst = &f->internal_query;
            break;
        case 'W':
            dst = &f->where;
            break;
        case 's':
            dst = &f->schema;
            break;
        case 't':
            dst = &f->table;
            break;
        case 'c':
            dst = &f->column;
            break;
        case 'd':
            dst = &f->datatype;
            break;
        case 'n':
            dst = &f->constraint;
            break;
        case 'F':
            dst = &f->file;
            break;
        case 'L':
            dst = &f->line;
            break;
        case 'R':
            dst = &f->routine;
            break;
        default:
            break; /* the protocol says: ignore field types you do not know */
        }
        if (dst != NULL)
            *dst = v;
    }
    return rc;
}

void fw__pq_sasl_iter_init(fw__pq_iter_t *it, const fw__pq_msg_t *msg)
{
    it->p = msg->u.auth.data.ptr;
    it->end = it->p + msg->u.auth.data.len;
    it->left = UINT32_MAX; /* ends at the empty name */
}

void fw__pq_negotiate_iter_init(fw__pq_iter_t *it, const fw__pq_msg_t *msg)
{
    it->p = msg->u.negotiate.opts.ptr;
    it->end = it->p + msg->u.negotiate.opts.len;
    it->left = msg->u.negotiate.nopts;
}

int fw__pq_strlist_next(fw__pq_iter_t *it, fw_slice_t *s)
{
    if (it->left == 0)
        return 0;
    cur_t c = {it->p, it->end};
    int rc = take_str(&c, s);
    if (rc < 0)
        return rc;
    it->p = c.p;
    if (it->left == UINT32_MAX && s->len == 0) { /* SASL list terminator */
        it->left = 0;
        return 0;
    }
    if (it->left != UINT32_MAX)
        it->left--;
    return 1;
}

uint32_t fw__pq_paramdesc_oid(const fw__pq_msg_t *msg, uint16_t i)
{
    if (i >= msg->u.paramdesc.nparams || (size_t)i * 4 + 4 > msg->u.paramdesc.oids.len)
        return 0;
    return rd_u32(msg->u.paramdesc.oids.ptr + (size_t)i * 4);
}
