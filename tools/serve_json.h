/* SPDX-License-Identifier: MIT */
/*
 * fwire serve: a small strict JSON parser for the messages browsers send (RFC 8259, nothing
 * more: no comments, no trailing commas, no NaN, no duplicate keys, valid UTF-8 only), and the
 * helpers that write JSON text. The parser builds a read-only tree in memory it owns; every
 * input is bounded by the limits below, so a hostile message costs at most
 * O(max_bytes + max_nodes) memory and O(max_bytes * max_keys) time (each key is compared with
 * the object's earlier keys to refuse duplicates).
 */
#ifndef FWIRE_SERVE_JSON_H
#define FWIRE_SERVE_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum gwjson_type_e {
    GWJSON_NULL = 0,
    GWJSON_FALSE,
    GWJSON_TRUE,
    GWJSON_NUMBER,
    GWJSON_STRING,
    GWJSON_ARRAY,
    GWJSON_OBJECT
} gwjson_type_t;

/*
 * One value. Strings are decoded (escapes resolved), NUL-terminated and may contain NUL bytes
 * (\u0000): `len` is exact. A number keeps its text exactly as sent (`str`, `len`) and its
 * value as a double (`num`). Members of arrays and objects are linked through `next`; an
 * object member's key is in `key`/`key_len`.
 */
typedef struct gwjson_s {
    gwjson_type_t type;
    const char *str; /* STRING: decoded text; NUMBER: the literal; else NULL */
    size_t len;
    double num;
    const char *key; /* the member's key when the parent is an object, else NULL */
    size_t key_len;
    struct gwjson_s *child; /* ARRAY/OBJECT: first member */
    struct gwjson_s *next;  /* next sibling */
    size_t count;           /* ARRAY/OBJECT: number of members */
} gwjson_t;

/* Limits; 0 in a field means its default. */
typedef struct gwjson_limits_s {
    size_t max_bytes; /* input length; default 64 KiB */
    size_t max_depth; /* nesting of arrays and objects; default 32 */
    size_t max_nodes; /* values in the document; default 8192 */
    size_t max_keys;  /* members of one object; default 32 */
} gwjson_limits_t;

typedef struct gwjson_doc_s gwjson_doc_t;

/*
 * Parses `len` bytes of `text` (not NUL-terminated; borrowed for the call only). Returns the
 * document in *out (free it with gwjson_free) and 0; or -1 with a one-line reason in
 * errbuf ("invalid JSON at byte 12: expected ':'"); or -2 when memory ran out.
 */
int gwjson_parse(const char *text, size_t len, const gwjson_limits_t *lim, gwjson_doc_t **out,
                 char *errbuf, size_t errcap);

/* The root value; borrowed until gwjson_free. */
const gwjson_t *gwjson_root(const gwjson_doc_t *doc);

/* Frees a document; NULL is a no-op. */
void gwjson_free(gwjson_doc_t *doc);

/* The member named `key` of an object, or NULL (also when `obj` is not an object). */
const gwjson_t *gwjson_get(const gwjson_t *obj, const char *key);

/* A string value without NUL bytes inside, as a C string; NULL for anything else. */
const char *gwjson_cstr(const gwjson_t *v);

/* True when `p[0..len)` is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
bool gwjson_utf8_valid(const uint8_t *p, size_t len);

/* ---- writing ---- */

/* A growable byte buffer. Zero-initialise it; `failed` becomes true when memory ran out and
 * every later append is ignored, so a chain of appends is checked once. */
typedef struct gwbuf_s {
    char *ptr;
    size_t len;
    size_t cap;
    bool failed;
} gwbuf_t;

void gwbuf_append(gwbuf_t *b, const void *p, size_t n);
void gwbuf_puts(gwbuf_t *b, const char *s);
void gwbuf_printf(gwbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends `s` as a JSON string literal, quotes included. Bytes that are not valid UTF-8 become
 * U+FFFD, so the output is always valid UTF-8 (a WebSocket text frame must be). */
void gwbuf_json_str(gwbuf_t *b, const char *s, size_t n);
/* As gwbuf_json_str for a C string, or `null` when s is NULL. */
void gwbuf_json_cstr(gwbuf_t *b, const char *s);
/* A double as JSON (finite; rounded to 0.1 for readability when `round1`), or null if not finite.
 */
void gwbuf_json_num(gwbuf_t *b, double v, bool round1);
void gwbuf_reset(gwbuf_t *b);
void gwbuf_free(gwbuf_t *b);

#endif /* FWIRE_SERVE_JSON_H */
