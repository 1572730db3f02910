/* SPDX-License-Identifier: MIT */
/*
 * Prometheus text exposition format 0.0.4, rendered into a caller buffer (STYLE 20).
 *
 * Every writer makes one pass that both fills what fits and counts the whole, so a caller with
 * a small buffer learns the size it needs from the same call, as with snprintf. Nothing here
 * allocates or reads a global, so a scrape can run on any thread while recording goes on.
 * Label values are data (entity names from the database), so they are escaped and repaired to
 * well-formed UTF-8: one bad byte must not make a scraper reject the whole exposition.
 */
#include "metrics.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- output cursor --------------------------------------------------------------------- */

typedef struct out_s {
    char *dst;
    size_t cap; /* bytes at dst, NUL included */
    size_t len; /* length of the whole output so far; past cap - 1 it is counted, not written */
} out_t;

static void put(out_t *o, const char *s, size_t n)
{
    if (n == 0)
        return;
    if (o->cap > 0 && o->len < o->cap - 1) {
        size_t room = o->cap - 1 - o->len;
        memcpy(o->dst + o->len, s, n < room ? n : room);
    }
    /* Saturate: a wrapped length would tell the caller a small buffer is enough. */
    o->len = n > SIZE_MAX - o->len ? SIZE_MAX : o->len + n;
}

static void put_str(out_t *o, const char *s)
{
    put(o, s, strlen(s));
}

static void put_char(out_t *o, char c)
{
    put(o, &c, 1);
}

/* Terminates what was written and returns the whole length, as snprintf does. */
static size_t finish(const out_t *o)
{
    if (o->cap > 0)
        o->dst[o->len < o->cap - 1 ? o->len : o->cap - 1] = '\0';
    return o->len;
}

/* ---- escaping -------------------------------------------------------------------------- */

/* U+FFFD REPLACEMENT CHARACTER in UTF-8. */
static const char replacement[] = "\xEF\xBF\xBD";

/*
 * The length of the UTF-8 sequence at p[0..left), which starts with a byte >= 0x80. Sets *ok
 * when it is well-formed; otherwise the length returned is its maximal ill-formed subpart (the
 * lead and the continuation bytes that were still acceptable), replaced by one U+FFFD.
 * The ranges are the Unicode Standard's table of well-formed sequences: they rule out overlong
 * forms (C0, C1, E0 80..9F, F0 80..8F), UTF-16 surrogates (ED A0..BF) and code points above
 * U+10FFFF (F4 90.., F5..FF), each of which has been used to smuggle characters past filters.
 */
static size_t utf8_seq(const unsigned char *p, size_t left, bool *ok)
{
    unsigned char b = p[0];
    unsigned char lo = 0x80, hi = 0xBF; /* the range of the byte after the lead */
    size_t need;                        /* continuation bytes after the lead */
    if (b >= 0xC2 && b <= 0xDF) {
        need = 1;
    } else if (b >= 0xE0 && b <= 0xEF) {
        need = 2;
        if (b == 0xE0)
            lo = 0xA0;
        else if (b == 0xED)
            hi = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
        need = 3;
        if (b == 0xF0)
            lo = 0x90;
        else if (b == 0xF4)
            hi = 0x8F;
    } else {
        *ok = false; /* a continuation byte without a lead, C0, C1 or F5..FF */
        return 1;
    }
    for (size_t k = 1; k <= need; k++) {
        if (k >= left || p[k] < lo || p[k] > hi) {
            *ok = false;
            return k;
        }
        lo = 0x80;
        hi = 0xBF;
    }
    *ok = true;
    return need + 1;
}

/* Escapes src[0..len): backslash and newline always, double quote when `quote`. Bytes that need
 * no change are copied in runs, not one at a time. */
static void put_escaped(out_t *o, const char *src, size_t len, bool quote)
{
    const unsigned char *p = (const unsigned char *)src;
    size_t run = 0; /* start of the bytes not yet written, which pass through unchanged */
    size_t i = 0;
    while (i < len) {
        const char *esc = NULL;
        size_t n = 1;
        if (p[i] == '\\') {
            esc = "\\\\";
        } else if (p[i] == '\n') {
            esc = "\\n";
        } else if (p[i] == '"' && quote) {
            esc = "\\\"";
        } else if (p[i] >= 0x80) {
            bool ok;
            n = utf8_seq(p + i, len - i, &ok);
            if (!ok)
                esc = replacement;
        }
        if (esc != NULL) {
            put(o, src + run, i - run);
            put_str(o, esc);
            run = i + n;
        }
        i += n;
    }
    if (len > run)
        put(o, src + run, len - run);
}

size_t fw__prom_escape_label_value(char *dst, size_t cap, const char *src, size_t len)
{
    out_t o = {dst, cap, 0};
    put_escaped(&o, src, len, true);
    return finish(&o);
}

size_t fw__prom_escape_help(char *dst, size_t cap, const char *src, size_t len)
{
    out_t o = {dst, cap, 0};
    put_escaped(&o, src, len, false);
    return finish(&o);
}

/* ---- names ----------------------------------------------------------------------------- */

/* ASCII by hand: isalpha() and friends follow the locale, and the grammar does not. A letter
 * or underscore: what a name may start with. */
static bool is_name_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

bool fw__prom_valid_metric_name(const char *name)
{
    if (name == NULL || name[0] == '\0')
        return false;
    for (const char *p = name; *p != '\0'; p++) {
        if (!is_name_start(*p) && *p != ':' && !(p != name && is_digit(*p)))
            return false;
    }
    return true;
}

bool fw__prom_valid_label_name(const char *name)
{
    if (name == NULL || name[0] == '\0' || (name[0] == '_' && name[1] == '_'))
        return false;
    for (const char *p = name; *p != '\0'; p++) {
        if (!is_name_start(*p) && !(p != name && is_digit(*p)))
            return false;
    }
    return true;
}

bool fw__prom_valid_type(const char *type)
{
    static const char *const types[] = {"counter", "gauge", "histogram", "summary", "untyped"};
    if (type == NULL)
        return false;
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        if (strcmp(type, types[i]) == 0)
            return true;
    }
    return false;
}

/* ---- values ---------------------------------------------------------------------------- */

/* 2^53: every integer of smaller magnitude is exactly a double, so printing it as an integer
 * loses nothing. Past it, integral doubles are spaced apart and the exponent form is shorter. */
#define INTEGER_LIMIT 9007199254740992.0

static void put_value(out_t *o, double v)
{
    if (isnan(v)) {
        put_str(o, "NaN");
        return;
    }
    if (isinf(v)) {
        put_str(o, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    char buf[48];
    if (v > -INTEGER_LIMIT && v < INTEGER_LIMIT && v == (double)(int64_t)v) {
        int n = snprintf(buf, sizeof(buf), "%" PRId64, (int64_t)v);
        assert(n > 0 && (size_t)n < sizeof(buf));
        put(o, buf, (size_t)n);
        return;
    }
    /* The fewest digits that read back as the same double: 0.1 prints as "0.1", not as the
     * "0.10000000000000001" that %.17g alone would give. 17 always round-trips. */
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(buf, sizeof(buf), "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    assert(n > 0 && (size_t)n < sizeof(buf));
    /* printf uses LC_NUMERIC's decimal point, which an embedding program may have set to ','
     * (or to a multibyte character); the exposition format wants '.'. Anything that is not a
     * digit, sign or exponent marker is that decimal point. */
    char fixed[sizeof(buf)];
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        char c = buf[i];
        if (is_digit(c) || c == '-' || c == '+' || c == 'e' || c == 'E')
            fixed[len++] = c;
        else if (len == 0 || fixed[len - 1] != '.')
            fixed[len++] = '.';
    }
    put(o, fixed, len);
}

/* ---- lines ----------------------------------------------------------------------------- */

size_t fw__prom_write_sample(char *dst, size_t cap, const char *name,
                             const char *const *label_names, const char *const *label_values,
                             size_t nlabels, double value)
{
    assert(fw__prom_valid_metric_name(name));
    out_t o = {dst, cap, 0};
    put_str(&o, name);
    for (size_t i = 0; i < nlabels; i++) {
        assert(fw__prom_valid_label_name(label_names[i]));
        put_char(&o, i == 0 ? '{' : ',');
        put_str(&o, label_names[i]);
        put(&o, "=\"", 2);
        put_escaped(&o, label_values[i], strlen(label_values[i]), true);
        put_char(&o, '"');
    }
    if (nlabels > 0)
        put_char(&o, '}');
    put_char(&o, ' ');
    put_value(&o, value);
    put_char(&o, '\n');
    return finish(&o);
}

size_t fw__prom_write_header(char *dst, size_t cap, const char *name, const char *help,
                             const char *type)
{
    assert(fw__prom_valid_metric_name(name));
    assert(fw__prom_valid_type(type));
    out_t o = {dst, cap, 0};
    if (help != NULL) {
        put_str(&o, "# HELP ");
        put_str(&o, name);
        put_char(&o, ' ');
        put_escaped(&o, help, strlen(help), false);
        put_char(&o, '\n');
    }
    put_str(&o, "# TYPE ");
    put_str(&o, name);
    put_char(&o, ' ');
    put_str(&o, type);
    put_char(&o, '\n');
    return finish(&o);
}

size_t fw__prom_format_value(char *dst, size_t cap, double v)
{
    out_t o = {dst, cap, 0};
    put_value(&o, v);
    return finish(&o);
}
