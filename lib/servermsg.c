/* SPDX-License-Identifier: MIT */
/* Server messages that may arrive at any time, decoded once (see servermsg.h). */
#include "servermsg.h"

#include <stdio.h>
#include <string.h>

/* ---- text ---------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at p (1..4), or 0 when it is not one. */
static size_t utf8_len(const uint8_t *p, size_t left)
{
    uint8_t c = p[0];
    size_t n;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1fu;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0fu;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07u;
    } else {
        return 0;
    }
    if (left < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3fu);
    }
    /* overlong forms, surrogates and code points past U+10FFFF */
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

char *fw__escape_text(char *dst, size_t cap, const uint8_t *src, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    if (cap == 0)
        return dst;
    for (size_t i = 0; i < len;) {
        size_t n = utf8_len(src + i, len - i);
        bool printable = n > 1 || (n == 1 && src[i] >= 0x20 && src[i] != 0x7f);
        size_t need = printable ? n : 4;
        if (o + need >= cap)
            break; /* truncate at a character boundary */
        if (printable) {
            memcpy(dst + o, src + i, n);
            o += n;
            i += n;
        } else {
            dst[o++] = '\\';
            dst[o++] = 'x';
            dst[o++] = hex[src[i] >> 4];
            dst[o++] = hex[src[i] & 15];
            i++;
        }
    }
    dst[o] = '\0';
    return dst;
}

/* ---- ParameterStatus storage ----------------------------------------------------------- */

int fw__params_set(fw__params_t *p, fw_slice_t name, fw_slice_t value)
{
    /* Names and values are kept escaped: they are shown to users (fwire ping) and logged. An
     * update appends a fresh copy; the old bytes are dead space inside the bounded arena. */
    char n[128], v[512];
    fw__escape_text(n, sizeof(n), name.ptr, name.len);
    fw__escape_text(v, sizeof(v), value.ptr, value.len);
    size_t nl = strlen(n) + 1, vl = strlen(v) + 1;
    size_t slot = p->n;
    for (size_t i = 0; i < p->n; i++) {
        if (strcmp(p->bytes + p->name_at[i], n) == 0) {
            slot = i;
            break;
        }
    }
    size_t need = vl + (slot == p->n ? nl : 0);
    if ((slot == p->n && p->n == FW__PARAMS_MAX) || need > sizeof(p->bytes) - p->used)
        return FW_ETOOBIG;
    if (slot == p->n) {
        memcpy(p->bytes + p->used, n, nl);
        p->name_at[slot] = (uint16_t)p->used;
        p->used += nl;
        p->n++;
    }
    memcpy(p->bytes + p->used, v, vl);
    p->value_at[slot] = (uint16_t)p->used;
    p->used += vl;
    return 0;
}

const char *fw__params_get(const fw__params_t *p, const char *name)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->bytes + p->name_at[i], name) == 0)
            return p->bytes + p->value_at[i];
    return NULL;
}

bool fw__is_utf8_name(const char *name)
{
    static const char *const ok[] = {"utf8", "utf-8", "unicode"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        size_t k = 0;
        for (; ok[i][k] != '\0' && name[k] != '\0'; k++) {
            char c = name[k];
            if (c >= 'A' && c <= 'Z')
                c = (char)(c - 'A' + 'a');
            if (c != ok[i][k])
                break;
        }
        if (ok[i][k] == '\0' && name[k] == '\0')
            return true;
    }
    return false;
}

int fw__params_set_msg(fw__params_t *p, const fw__pq_msg_t *m)
{
    return fw__params_set(p, m->u.param.name, m->u.param.value);
}

/* ---- ErrorResponse, NoticeResponse, NotificationResponse -------------------------------- */

static void copy_field(char *dst, size_t cap, fw_slice_t s)
{
    fw__escape_text(dst, cap, s.ptr, s.len);
}

int fw__servermsg_error(const fw__pq_msg_t *m, fw_phase_t phase, fw_error_t *e)
{
    memset(e, 0, sizeof(*e));
    e->code = FW_ESERVER;
    e->phase = phase;
    fw__pq_error_fields_t f;
    int rc = fw__pq_error_fields(m, &f);
    if (rc < 0)
        return rc;
    copy_field(e->severity, sizeof(e->severity), f.severity_nl.ptr ? f.severity_nl : f.severity);
    copy_field(e->sqlstate, sizeof(e->sqlstate), f.sqlstate);
    copy_field(e->message, sizeof(e->message), f.message);
    copy_field(e->detail, sizeof(e->detail), f.detail);
    copy_field(e->hint, sizeof(e->hint), f.hint);
    return 0;
}

bool fw__servermsg_fatal(const fw_error_t *e)
{
    return strcmp(e->severity, "FATAL") == 0 || strcmp(e->severity, "PANIC") == 0;
}

int fw__servermsg_notice(const fw__pq_msg_t *m, fw__notice_buf_t *buf, fw_notice_t *n)
{
    /* A NoticeResponse has the ErrorResponse's fields: one decoder for both. */
    fw_error_t e;
    int rc = fw__servermsg_error(m, FW_PHASE_READY, &e);
    if (rc < 0)
        return rc;
    memcpy(buf->severity, e.severity, sizeof(buf->severity));
    memcpy(buf->sqlstate, e.sqlstate, sizeof(buf->sqlstate));
    memcpy(buf->message, e.message, sizeof(buf->message));
    n->severity = buf->severity;
    n->sqlstate = buf->sqlstate;
    n->message = buf->message;
    return 0;
}

void fw__servermsg_notify(const fw__pq_msg_t *m, fw__notify_buf_t *buf)
{
    buf->pid = m->u.notify.pid;
    copy_field(buf->channel, sizeof(buf->channel), m->u.notify.channel);
    copy_field(buf->payload, sizeof(buf->payload), m->u.notify.payload);
}
