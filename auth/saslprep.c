/* SPDX-License-Identifier: MIT */
/*
 * SASLprep (RFC 4013) as PostgreSQL's pg_saslprep does it, without allocating.
 *
 * SCRAM hashes the prepared password, and the server hashed the same password with pg_saslprep
 * when it was set (CREATE ROLE ... PASSWORD, or libpq's PQencryptPasswordConn). Matching the RFC
 * is not the goal; matching that function byte for byte is, so this file copies its choices:
 *
 *   1. Printable ASCII is already prepared: no mapping, no NFKC, no check can change it.
 *   2. Input that is not well-formed UTF-8 is not a Unicode string at all: use the raw bytes.
 *   3. Map C.1.2 spaces to U+0020 (first, so U+200B, listed in both C.1.2 and B.1, becomes a
 *      space) and drop B.1 characters. A non-empty password that maps to nothing is refused.
 *   4. Check the MAPPED string, before normalisation, against the prohibited tables and A.1
 *      and against the bidi rule. RFC 4013 says to check the normalised output; pg_saslprep
 *      loops over its mapped input instead, in every release from 10 to 18. So "a" U+0340 is
 *      prohibited here (the RFC would accept it as U+00E0), and U+FB1D passes the bidi rule
 *      (the RFC would refuse its NFKC form, which ends in a non-spacing mark).
 *   5. NFKC with current Unicode data (15.0 here; each PostgreSQL release ships its own).
 *      Step 4 already refused everything not assigned in Unicode 3.2, and normalisation of
 *      those code points has been stable since, so the version does not change any result.
 *
 * Any refusal means "use the raw bytes", which is what libpq sends, so a refusal can never
 * lock a user out. The work happens in one bounded stack buffer of code points, wiped after.
 */
#include "saslprep.h"

#include <stdbool.h>
#include <string.h>

#include "saslprep_tables.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* The tables' own bound must fit the one the header promises callers. */
_Static_assert(SP_BYTES_PER_BYTE <= FW__SASLPREP_GROWTH, "regenerated tables grow more");

/*
 * A code point in the work buffer carries its canonical combining class in the top byte, so
 * reordering and composition compare classes without looking them up again.
 */
#define CP(x)  ((x)&0xFFFFFFu)
#define CCC(x) ((x) >> 24)

/* Hangul syllables decompose and compose by arithmetic (Unicode 15, section 3.12). */
#define HANGUL_S_BASE  0xAC00u
#define HANGUL_L_BASE  0x1100u
#define HANGUL_V_BASE  0x1161u
#define HANGUL_T_BASE  0x11A7u
#define HANGUL_L_COUNT 19u
#define HANGUL_V_COUNT 21u
#define HANGUL_T_COUNT 28u
#define HANGUL_N_COUNT (HANGUL_V_COUNT * HANGUL_T_COUNT)
#define HANGUL_S_COUNT (HANGUL_L_COUNT * HANGUL_N_COUNT)

static bool in_table(const struct sp_range *t, size_t n, uint32_t cp)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp < t[mid].lo)
            hi = mid;
        else if (cp > t[mid].hi)
            lo = mid + 1;
        else
            return true;
    }
    return false;
}

#define IN_TABLE(t, cp) in_table((t), ARRAY_LEN(t), (cp))

static uint32_t ccc_of(uint32_t cp)
{
    size_t lo = 0, hi = ARRAY_LEN(sp_ccc);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp < sp_ccc[mid].lo)
            hi = mid;
        else if (cp > sp_ccc[mid].hi)
            lo = mid + 1;
        else
            return sp_ccc[mid].ccc;
    }
    return 0;
}

static const struct sp_decomp *decomp_of(uint32_t cp)
{
    size_t lo = 0, hi = ARRAY_LEN(sp_decomp);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp < sp_decomp[mid].cp)
            hi = mid;
        else if (cp > sp_decomp[mid].cp)
            lo = mid + 1;
        else
            return &sp_decomp[mid];
    }
    return NULL;
}

/* The primary composite of a + b, or 0 if they do not compose. */
static uint32_t compose_pair(uint32_t a, uint32_t b)
{
    if (a - HANGUL_L_BASE < HANGUL_L_COUNT && b - HANGUL_V_BASE < HANGUL_V_COUNT)
        return HANGUL_S_BASE +
               ((a - HANGUL_L_BASE) * HANGUL_V_COUNT + (b - HANGUL_V_BASE)) * HANGUL_T_COUNT;
    if (a - HANGUL_S_BASE < HANGUL_S_COUNT && (a - HANGUL_S_BASE) % HANGUL_T_COUNT == 0 &&
        b - HANGUL_T_BASE - 1 < HANGUL_T_COUNT - 1)
        return a + (b - HANGUL_T_BASE);
    size_t lo = 0, hi = ARRAY_LEN(sp_comp);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct sp_comp *c = &sp_comp[mid];
        if (a < c->first || (a == c->first && b < c->second))
            hi = mid;
        else if (a > c->first || b > c->second)
            lo = mid + 1;
        else
            return c->composite;
    }
    return 0;
}

/*
 * Decodes one code point of well-formed UTF-8 (RFC 3629, Unicode table 3-7) from s[0..n), n > 0.
 * Returns the bytes used, or 0 for anything else: a stray continuation byte, an overlong form
 * (C0, C1, E0 80-9F, F0 80-8F), a surrogate (ED A0-BF), a value past U+10FFFF (F4 90-, F5-FF) or
 * a sequence cut short. These are exactly the sequences pg_utf8_islegal refuses.
 */
static size_t utf8_decode(const uint8_t *s, size_t n, uint32_t *cp)
{
    uint8_t b0 = s[0], lo = 0x80, hi = 0xBF;
    size_t need;
    uint32_t v;
    if (b0 < 0x80) {
        *cp = b0;
        return 1;
    }
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        need = 2;
        v = b0 & 0x1Fu;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        need = 3;
        v = b0 & 0x0Fu;
        lo = b0 == 0xE0 ? 0xA0 : 0x80;
        hi = b0 == 0xED ? 0x9F : 0xBF;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        need = 4;
        v = b0 & 0x07u;
        lo = b0 == 0xF0 ? 0x90 : 0x80;
        hi = b0 == 0xF4 ? 0x8F : 0xBF;
    } else {
        return 0;
    }
    if (n < need)
        return 0;
    for (size_t i = 1; i < need; i++) {
        if (s[i] < lo || s[i] > hi)
            return 0;
        lo = 0x80; /* only the second byte has a narrower range */
        hi = 0xBF;
        v = (v << 6) | (s[i] & 0x3Fu);
    }
    *cp = v;
    return need;
}

static size_t utf8_len(uint32_t cp)
{
    return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

static size_t utf8_put(uint8_t *out, uint32_t cp)
{
    switch (utf8_len(cp)) {
    case 1:
        out[0] = (uint8_t)cp;
        return 1;
    case 2:
        out[0] = (uint8_t)(0xC0 | (cp >> 6));
        out[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    case 3:
        out[0] = (uint8_t)(0xE0 | (cp >> 12));
        out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    default:
        out[0] = (uint8_t)(0xF0 | (cp >> 18));
        out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
        out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        out[3] = (uint8_t)(0x80 | (cp & 0x3F));
        return 4;
    }
}

/* RFC 4013 section 2.1. Returns false when the code point maps to nothing. */
static bool map_cp(uint32_t *cp)
{
    if (*cp < 0xA0) /* below the first entry of both tables: the common case costs nothing */
        return true;
    if (IN_TABLE(sp_map_to_space, *cp)) {
        *cp = 0x20;
        return true;
    }
    return !IN_TABLE(sp_map_to_nothing, *cp);
}

static bool printable_ascii(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] > 0x7E)
            return false;
    return true;
}

/*
 * Steps 2-4 of the list at the top: decode, map and check, without storing anything. A
 * malformed byte anywhere wins over a prohibited character before it, as in pg_saslprep,
 * which validates the whole string first.
 */
static int check(const uint8_t *in, size_t len)
{
    bool prohibited = false, randal = false, lcat = false, first_randal = false;
    bool last_randal = false;
    size_t mapped = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t used = utf8_decode(in + i, len - i, &cp);
        if (used == 0)
            return FW__SASLPREP_INVALID_UTF8;
        i += used;
        if (!map_cp(&cp))
            continue;
        bool r = IN_TABLE(sp_randalcat, cp);
        if (mapped++ == 0)
            first_randal = r;
        last_randal = r;
        randal = randal || r;
        prohibited = prohibited || IN_TABLE(sp_prohibited, cp);
        lcat = lcat || IN_TABLE(sp_lcat, cp);
    }
    if (mapped == 0 || prohibited)
        return FW__SASLPREP_PROHIBITED;
    /* RFC 3454 section 6: with any RandALCat, no LCat, and RandALCat at both ends. */
    if (randal && (lcat || !first_randal || !last_randal))
        return FW__SASLPREP_BIDI;
    return FW__SASLPREP_OK;
}

static uint32_t with_ccc(uint32_t cp)
{
    return cp | ccc_of(cp) << 24;
}

/*
 * Maps and fully decomposes the (already checked) input into buf. Returns the number of code
 * points, or SIZE_MAX if buf is too small, which SP_CPS_PER_BYTE (computed by the generator
 * over every code point that gets this far) rules out; the check keeps a wrong table from
 * becoming a stack overflow.
 */
static size_t decompose(const uint8_t *in, size_t len, uint32_t *buf, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        i += utf8_decode(in + i, len - i, &cp);
        if (!map_cp(&cp))
            continue;
        if (cap - n < 3)
            return SIZE_MAX;
        uint32_t s = cp - HANGUL_S_BASE;
        if (s < HANGUL_S_COUNT) {
            /* Jamo have class 0. */
            buf[n++] = HANGUL_L_BASE + s / HANGUL_N_COUNT;
            buf[n++] = HANGUL_V_BASE + s % HANGUL_N_COUNT / HANGUL_T_COUNT;
            if (s % HANGUL_T_COUNT != 0)
                buf[n++] = HANGUL_T_BASE + s % HANGUL_T_COUNT;
            continue;
        }
        const struct sp_decomp *d = decomp_of(cp);
        if (d == NULL) {
            buf[n++] = with_ccc(cp);
            continue;
        }
        if (cap - n < d->len)
            return SIZE_MAX;
        for (size_t k = 0; k < d->len; k++)
            buf[n++] = with_ccc(sp_decomp_data[d->start + k]);
    }
    return n;
}

/*
 * Canonical ordering: a stable sort of each run of non-starters by class. Insertion sort, as
 * runs are short in real text; a hostile run costs O(n^2), but the input limit caps a run at
 * about 700 marks (a whole password of them costs under 0.1 ms on a laptop-class core).
 */
static void reorder(uint32_t *buf, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        uint32_t x = buf[i], c = CCC(x);
        if (c == 0)
            continue;
        size_t j = i;
        for (; j > 0 && CCC(buf[j - 1]) > c; j--) /* never passes a starter: class 0 < c */
            buf[j] = buf[j - 1];
        buf[j] = x;
    }
}

/*
 * Canonical composition (UAX #15): each character joins the last starter unless something
 * between them blocks it (a starter, or a mark of the same or a higher class). Composites are
 * starters (the generator checks), so they keep class 0. Returns the new length.
 */
static size_t compose(uint32_t *buf, size_t n)
{
    if (n == 0)
        return 0;
    size_t starter = 0, w = 1;
    /* Class of the last character kept; 256 when the string opens with a mark, which has no
     * starter to join. 0 means the last character kept is the starter itself. */
    uint32_t last = CCC(buf[0]) != 0 ? 256 : 0;
    for (size_t r = 1; r < n; r++) {
        uint32_t x = buf[r], c = CCC(x);
        if (last == 0 || last < c) {
            uint32_t composite = compose_pair(CP(buf[starter]), CP(x));
            if (composite != 0) {
                buf[starter] = composite;
                continue;
            }
        }
        if (c == 0)
            starter = w;
        last = c;
        buf[w++] = x;
    }
    return w;
}

/* Zeroes memory the compiler cannot prove dead, so the password does not linger on the stack. */
static void wipe(void *p, size_t n)
{
    volatile uint8_t *v = p;
    while (n-- > 0)
        *v++ = 0;
}

int fw__saslprep(const uint8_t *in, size_t len, uint8_t *out, size_t cap, size_t *outlen)
{
    if (outlen == NULL)
        return FW_EINVAL;
    *outlen = 0;
    if ((in == NULL && len != 0) || (out == NULL && cap != 0) || len > FW__SASLPREP_MAX_INPUT)
        return FW_EINVAL;

    if (printable_ascii(in, len)) {
        if (cap < len) {
            *outlen = len;
            return FW_ETOOBIG;
        }
        if (len != 0)
            memmove(out, in, len);
        *outlen = len;
        return FW__SASLPREP_OK;
    }

    int rc = check(in, len);
    if (rc != FW__SASLPREP_OK)
        return rc;

    uint32_t buf[FW__SASLPREP_MAX_INPUT * SP_CPS_PER_BYTE];
    size_t used = decompose(in, len, buf, ARRAY_LEN(buf));
    if (used == SIZE_MAX) {
        wipe(buf, sizeof(buf));
        return FW_ETOOBIG;
    }
    reorder(buf, used);
    size_t n = compose(buf, used), need = 0;
    for (size_t i = 0; i < n; i++)
        need += utf8_len(CP(buf[i]));
    if (need > cap) {
        *outlen = need;
        rc = FW_ETOOBIG;
    } else {
        size_t o = 0;
        for (size_t i = 0; i < n; i++)
            o += utf8_put(out + o, CP(buf[i]));
        *outlen = o;
    }
    wipe(buf, used * sizeof(buf[0]));
    return rc;
}
