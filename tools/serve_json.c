/* SPDX-License-Identifier: MIT */
/*
 * The strict JSON parser of fwire serve (serve_json.h) and the JSON writing helpers.
 *
 * Memory: one block for the decoded strings, sized from the input before parsing (a decoded
 * string or number is never longer than its text plus its NUL, and tokens are separated, so
 * len + 2 bytes always suffice), and the nodes in blocks of NODE_BLOCK, at most max_nodes.
 * Recursion depth is capped by max_depth, so a "[[[[..." message cannot exhaust the stack.
 */
#include "serve_json.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX_BYTES (64u * 1024u)
#define DEFAULT_MAX_DEPTH 32u
#define DEFAULT_MAX_NODES 8192u
/* Duplicate keys are found by comparing each key with the object's earlier ones: quadratic in
 * the members, so they are capped (4150 keys in one message took 29 ms of the loop's time).
 * The protocol's objects have at most 8 members; arrays, checked for nothing, are linear. */
#define DEFAULT_MAX_KEYS 32u
#define NODE_BLOCK       64u

typedef struct node_block_s {
    struct node_block_s *next;
    size_t used;
    gwjson_t nodes[NODE_BLOCK];
} node_block_t;

struct gwjson_doc_s {
    gwjson_t *root;
    char *strings;
    size_t strings_used;
    node_block_t *blocks;
    size_t nodes;
};

typedef struct parser_s {
    const uint8_t *p;
    size_t len;
    size_t pos;
    gwjson_limits_t lim;
    gwjson_doc_t *doc;
    char *err;
    size_t errcap;
    bool oom;
} parser_t;

static int fail(parser_t *ps, const char *what)
{
    if (ps->errcap > 0)
        snprintf(ps->err, ps->errcap, "invalid JSON at byte %zu: %s", ps->pos, what);
    return -1;
}

static gwjson_t *new_node(parser_t *ps, gwjson_type_t type)
{
    gwjson_doc_t *d = ps->doc;
    if (d->nodes >= ps->lim.max_nodes) {
        fail(ps, "too many values");
        return NULL;
    }
    node_block_t *b = d->blocks;
    if (b == NULL || b->used == NODE_BLOCK) {
        b = malloc(sizeof(*b));
        if (b == NULL) {
            ps->oom = true;
            return NULL;
        }
        b->next = d->blocks;
        b->used = 0;
        d->blocks = b;
    }
    gwjson_t *n = &b->nodes[b->used++];
    memset(n, 0, sizeof(*n));
    n->type = type;
    d->nodes++;
    return n;
}

static void skip_ws(parser_t *ps)
{
    while (ps->pos < ps->len) {
        uint8_t c = ps->p[ps->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        ps->pos++;
    }
}

/* Length of the UTF-8 sequence at p (1..4) when valid, else 0. */
static size_t utf8_seq(const uint8_t *p, size_t avail)
{
    uint8_t c = p[0];
    if (c < 0x80)
        return 1;
    size_t n;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        cp = c & 0x1Fu;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        cp = c & 0x0Fu;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        cp = c & 0x07u;
    } else {
        return 0;
    }
    if (avail < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0u) != 0x80u)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3Fu);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

bool gwjson_utf8_valid(const uint8_t *p, size_t len)
{
    size_t i = 0;
    while (i < len) {
        size_t n = utf8_seq(p + i, len - i);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

static int hex4(parser_t *ps, uint32_t *out)
{
    if (ps->len - ps->pos < 4)
        return fail(ps, "truncated \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        uint8_t c = ps->p[ps->pos++];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (uint32_t)(c - 'A' + 10);
        else
            return fail(ps, "bad hex digit in \\u escape");
    }
    *out = v;
    return 0;
}

static void put_utf8(char *o, size_t *n, uint32_t cp)
{
    if (cp < 0x80) {
        o[(*n)++] = (char)cp;
    } else if (cp < 0x800) {
        o[(*n)++] = (char)(0xC0 | (cp >> 6));
        o[(*n)++] = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        o[(*n)++] = (char)(0xE0 | (cp >> 12));
        o[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[(*n)++] = (char)(0x80 | (cp & 0x3F));
    } else {
        o[(*n)++] = (char)(0xF0 | (cp >> 18));
        o[(*n)++] = (char)(0x80 | ((cp >> 12) & 0x3F));
        o[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[(*n)++] = (char)(0x80 | (cp & 0x3F));
    }
}

/* A string literal at ps->pos (the opening quote); decoded into the doc's string block. */
static int parse_string(parser_t *ps, const char **out, size_t *outlen)
{
    ps->pos++; /* the quote */
    char *o = ps->doc->strings + ps->doc->strings_used;
    size_t n = 0;
    for (;;) {
        if (ps->pos >= ps->len)
            return fail(ps, "unterminated string");
        uint8_t c = ps->p[ps->pos];
        if (c == '"') {
            ps->pos++;
            break;
        }
        if (c < 0x20)
            return fail(ps, "control character in string");
        if (c != '\\') {
            size_t k = utf8_seq(ps->p + ps->pos, ps->len - ps->pos);
            if (k == 0)
                return fail(ps, "invalid UTF-8");
            memcpy(o + n, ps->p + ps->pos, k);
            n += k;
            ps->pos += k;
            continue;
        }
        ps->pos++;
        if (ps->pos >= ps->len)
            return fail(ps, "unterminated escape");
        c = ps->p[ps->pos++];
        switch (c) {
        case '"':
        case '\\':
        case '/':
            o[n++] = (char)c;
            break;
        case 'b':
            o[n++] = '\b';
            break;
        case 'f':
            o[n++] = '\f';
            break;
        case 'n':
            o[n++] = '\n';
            break;
        case 'r':
            o[n++] = '\r';
            break;
        case 't':
            o[n++] = '\t';
            break;
        case 'u': {
            uint32_t cp;
            if (hex4(ps, &cp) < 0)
                return -1;
            if (cp >= 0xDC00 && cp <= 0xDFFF)
                return fail(ps, "lone low surrogate");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                uint32_t lo;
                if (ps->len - ps->pos < 2 || ps->p[ps->pos] != '\\' || ps->p[ps->pos + 1] != 'u')
                    return fail(ps, "lone high surrogate");
                ps->pos += 2;
                if (hex4(ps, &lo) < 0)
                    return -1;
                if (lo < 0xDC00 || lo > 0xDFFF)
                    return fail(ps, "bad surrogate pair");
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            /* a \uXXXX escape is 6 bytes of input and at most 3 of output; a pair is 12 and 4 */
            put_utf8(o, &n, cp);
            break;
        }
        default:
            return fail(ps, "unknown escape");
        }
    }
    o[n] = '\0';
    ps->doc->strings_used += n + 1;
    *out = o;
    *outlen = n;
    return 0;
}

static int parse_number(parser_t *ps, gwjson_t *v)
{
    size_t start = ps->pos;
    const uint8_t *p = ps->p;
    size_t len = ps->len;
    size_t i = ps->pos;
    if (i < len && p[i] == '-')
        i++;
    if (i >= len)
        return fail(ps, "bad number");
    if (p[i] == '0') {
        i++;
    } else if (p[i] >= '1' && p[i] <= '9') {
        while (i < len && p[i] >= '0' && p[i] <= '9')
            i++;
    } else {
        return fail(ps, "bad number");
    }
    if (i < len && p[i] == '.') {
        i++;
        if (i >= len || p[i] < '0' || p[i] > '9')
            return fail(ps, "bad fraction");
        while (i < len && p[i] >= '0' && p[i] <= '9')
            i++;
    }
    if (i < len && (p[i] == 'e' || p[i] == 'E')) {
        i++;
        if (i < len && (p[i] == '+' || p[i] == '-'))
            i++;
        if (i >= len || p[i] < '0' || p[i] > '9')
            return fail(ps, "bad exponent");
        while (i < len && p[i] >= '0' && p[i] <= '9')
            i++;
    }
    size_t n = i - start;
    char *o = ps->doc->strings + ps->doc->strings_used;
    memcpy(o, p + start, n);
    o[n] = '\0';
    ps->doc->strings_used += n + 1;
    v->str = o;
    v->len = n;
    v->num = strtod(o, NULL);
    ps->pos = i;
    return 0;
}

static int parse_value(parser_t *ps, gwjson_t **out, size_t depth);

static bool key_seen(const gwjson_t *obj, const char *key, size_t n)
{
    for (const gwjson_t *m = obj->child; m != NULL; m = m->next)
        if (m->key_len == n && memcmp(m->key, key, n) == 0)
            return true;
    return false;
}

static int parse_container(parser_t *ps, gwjson_t *v, size_t depth)
{
    bool is_obj = v->type == GWJSON_OBJECT;
    uint8_t close = is_obj ? '}' : ']';
    if (depth >= ps->lim.max_depth)
        return fail(ps, "nested too deeply");
    ps->pos++;
    skip_ws(ps);
    if (ps->pos < ps->len && ps->p[ps->pos] == close) {
        ps->pos++;
        return 0;
    }
    gwjson_t *last = NULL;
    for (;;) {
        const char *key = NULL;
        size_t key_len = 0;
        if (is_obj) {
            skip_ws(ps);
            if (ps->pos >= ps->len || ps->p[ps->pos] != '"')
                return fail(ps, "expected a string key");
            if (v->count >= ps->lim.max_keys)
                return fail(ps, "too many members in one object");
            if (parse_string(ps, &key, &key_len) < 0)
                return -1;
            if (key_seen(v, key, key_len))
                return fail(ps, "duplicate key");
            skip_ws(ps);
            if (ps->pos >= ps->len || ps->p[ps->pos] != ':')
                return fail(ps, "expected ':'");
            ps->pos++;
        }
        gwjson_t *m;
        if (parse_value(ps, &m, depth + 1) < 0)
            return -1;
        m->key = key;
        m->key_len = key_len;
        if (last == NULL)
            v->child = m;
        else
            last->next = m;
        last = m;
        v->count++;
        skip_ws(ps);
        if (ps->pos >= ps->len)
            return fail(ps, is_obj ? "unterminated object" : "unterminated array");
        if (ps->p[ps->pos] == ',') {
            ps->pos++;
            continue;
        }
        if (ps->p[ps->pos] == close) {
            ps->pos++;
            return 0;
        }
        return fail(ps, is_obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static bool literal(parser_t *ps, const char *word)
{
    size_t n = strlen(word);
    if (ps->len - ps->pos < n || memcmp(ps->p + ps->pos, word, n) != 0)
        return false;
    ps->pos += n;
    return true;
}

static int parse_value(parser_t *ps, gwjson_t **out, size_t depth)
{
    skip_ws(ps);
    if (ps->pos >= ps->len)
        return fail(ps, "expected a value");
    uint8_t c = ps->p[ps->pos];
    gwjson_type_t type;
    switch (c) {
    case '{':
        type = GWJSON_OBJECT;
        break;
    case '[':
        type = GWJSON_ARRAY;
        break;
    case '"':
        type = GWJSON_STRING;
        break;
    case 't':
        type = GWJSON_TRUE;
        break;
    case 'f':
        type = GWJSON_FALSE;
        break;
    case 'n':
        type = GWJSON_NULL;
        break;
    default:
        if (c == '-' || (c >= '0' && c <= '9')) {
            type = GWJSON_NUMBER;
            break;
        }
        return fail(ps, "unexpected character");
    }
    gwjson_t *v = new_node(ps, type);
    if (v == NULL)
        return -1;
    *out = v;
    switch (type) {
    case GWJSON_OBJECT:
    case GWJSON_ARRAY:
        return parse_container(ps, v, depth);
    case GWJSON_STRING:
        return parse_string(ps, &v->str, &v->len);
    case GWJSON_NUMBER:
        return parse_number(ps, v);
    case GWJSON_TRUE:
        return literal(ps, "true") ? 0 : fail(ps, "bad literal");
    case GWJSON_FALSE:
        return literal(ps, "false") ? 0 : fail(ps, "bad literal");
    case GWJSON_NULL:
        return literal(ps, "null") ? 0 : fail(ps, "bad literal");
    }
    return fail(ps, "unexpected character");
}

void gwjson_free(gwjson_doc_t *doc)
{
    if (doc == NULL)
        return;
    node_block_t *b = doc->blocks;
    while (b != NULL) {
        node_block_t *next = b->next;
        free(b);
        b = next;
    }
    free(doc->strings);
    free(doc);
}

int gwjson_parse(const char *text, size_t len, const gwjson_limits_t *lim, gwjson_doc_t **out,
                 char *errbuf, size_t errcap)
{
    parser_t ps = {.p = (const uint8_t *)text, .len = len, .err = errbuf, .errcap = errcap};
    *out = NULL;
    if (errcap > 0)
        errbuf[0] = '\0';
    if (lim != NULL)
        ps.lim = *lim;
    if (ps.lim.max_bytes == 0)
        ps.lim.max_bytes = DEFAULT_MAX_BYTES;
    if (ps.lim.max_depth == 0)
        ps.lim.max_depth = DEFAULT_MAX_DEPTH;
    if (ps.lim.max_nodes == 0)
        ps.lim.max_nodes = DEFAULT_MAX_NODES;
    if (ps.lim.max_keys == 0)
        ps.lim.max_keys = DEFAULT_MAX_KEYS;
    if (len > ps.lim.max_bytes) {
        if (errcap > 0)
            snprintf(errbuf, errcap, "message of %zu bytes exceeds the limit of %zu", len,
                     ps.lim.max_bytes);
        return -1;
    }
    if (text == NULL && len > 0)
        return fail(&ps, "no text");
    gwjson_doc_t *doc = calloc(1, sizeof(*doc));
    if (doc == NULL)
        return -2;
    doc->strings = malloc(len + 2);
    if (doc->strings == NULL) {
        free(doc);
        return -2;
    }
    ps.doc = doc;
    int rc = parse_value(&ps, &doc->root, 0);
    if (rc == 0) {
        skip_ws(&ps);
        if (ps.pos != ps.len)
            rc = fail(&ps, "trailing bytes after the value");
    }
    if (rc < 0 || ps.oom) {
        gwjson_free(doc);
        return ps.oom ? -2 : -1;
    }
    *out = doc;
    return 0;
}

const gwjson_t *gwjson_root(const gwjson_doc_t *doc)
{
    return doc->root;
}

const gwjson_t *gwjson_get(const gwjson_t *obj, const char *key)
{
    if (obj == NULL || obj->type != GWJSON_OBJECT)
        return NULL;
    size_t n = strlen(key);
    for (const gwjson_t *m = obj->child; m != NULL; m = m->next)
        if (m->key_len == n && memcmp(m->key, key, n) == 0)
            return m;
    return NULL;
}

const char *gwjson_cstr(const gwjson_t *v)
{
    if (v == NULL || v->type != GWJSON_STRING || strlen(v->str) != v->len)
        return NULL;
    return v->str;
}

/* ---- writing ---- */

static bool reserve(gwbuf_t *b, size_t n)
{
    if (b->failed)
        return false;
    if (n <= b->cap - b->len)
        return true;
    if (n > SIZE_MAX / 2 - b->len) {
        b->failed = true;
        return false;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < n)
        cap *= 2;
    char *p = realloc(b->ptr, cap);
    if (p == NULL) {
        b->failed = true;
        return false;
    }
    b->ptr = p;
    b->cap = cap;
    return true;
}

void gwbuf_append(gwbuf_t *b, const void *p, size_t n)
{
    if (n == 0 || !reserve(b, n))
        return;
    memcpy(b->ptr + b->len, p, n);
    b->len += n;
}

void gwbuf_puts(gwbuf_t *b, const char *s)
{
    gwbuf_append(b, s, strlen(s));
}

void gwbuf_printf(gwbuf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = true;
        return;
    }
    if ((size_t)n < sizeof(small)) {
        gwbuf_append(b, small, (size_t)n);
        return;
    }
    if (!reserve(b, (size_t)n + 1))
        return;
    va_start(ap, fmt);
    vsnprintf(b->ptr + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void gwbuf_json_str(gwbuf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *p = (const uint8_t *)s;
    gwbuf_append(b, "\"", 1);
    size_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            gwbuf_append(b, e, 2);
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            gwbuf_append(b, e, 6);
            i++;
        } else if (c < 0x80) {
            gwbuf_append(b, &p[i], 1);
            i++;
        } else {
            size_t k = utf8_seq(p + i, n - i);
            if (k == 0) {
                gwbuf_append(b, "\xEF\xBF\xBD", 3); /* U+FFFD */
                i++;
            } else {
                gwbuf_append(b, p + i, k);
                i += k;
            }
        }
    }
    gwbuf_append(b, "\"", 1);
}

void gwbuf_json_cstr(gwbuf_t *b, const char *s)
{
    if (s == NULL)
        gwbuf_puts(b, "null");
    else
        gwbuf_json_str(b, s, strlen(s));
}

void gwbuf_json_num(gwbuf_t *b, double v, bool round1)
{
    if (!isfinite(v)) {
        gwbuf_puts(b, "null");
        return;
    }
    if (round1)
        gwbuf_printf(b, "%.1f", v);
    else
        gwbuf_printf(b, "%.17g", v);
}

void gwbuf_reset(gwbuf_t *b)
{
    b->len = 0;
    b->failed = false;
}

void gwbuf_free(gwbuf_t *b)
{
    free(b->ptr);
    memset(b, 0, sizeof(*b));
}
