/* SPDX-License-Identifier: MIT */
/*
 * SCRAM-SHA-256 and SCRAM-SHA-256-PLUS, client side (RFC 5802, RFC 7677), as PostgreSQL speaks
 * it: empty username, GS2 header without authzid, tls-server-end-point channel binding.
 *
 * Everything the server sends here arrives before it has proved anything: a man in the middle
 * (or a hostile server) chooses every byte. So the parser accepts exactly the shape PostgreSQL
 * sends and nothing around it, the iteration count is capped before any key work, the server's
 * signature is compared in constant time, and the secrets are wiped the moment they are no
 * longer needed or anything goes wrong.
 */
#include "auth.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

/* HMAC-SHA-256 hashes a key longer than its 64-byte block before use (RFC 2104, section 2). */
#define HMAC_BLOCK 64

_Static_assert(sizeof(((fw__scram_t *)0)->password) == HMAC_BLOCK, "password holds one block");
_Static_assert(FW__SCRAM_B64(FW__SCRAM_NONCE_RANDOM) <= FW__SCRAM_NONCE_MAX, "nonce fits");
_Static_assert(24 + FW__SCRAM_FIRST_BARE_MAX + 1 <= FW__SCRAM_OUT_MAX, "client-first fits");

static const char gs2_none[] = "n,,";
static const char gs2_not_offered[] = "y,,";
static const char gs2_end_point[] = "p=tls-server-end-point,,";

static const char *gs2_header(fw__scram_cb_t cb)
{
    switch (cb) {
    case FW__SCRAM_CB_NONE:
        return gs2_none;
    case FW__SCRAM_CB_NOT_OFFERED:
        return gs2_not_offered;
    case FW__SCRAM_CB_SERVER_END_POINT:
        return gs2_end_point;
    default:
        return gs2_none;
    }
}

/* ---- small helpers ---- */

/* A bounded string builder over a fixed array; once anything does not fit it stays failed. */
typedef struct sbuf_s {
    char *buf;
    size_t cap; /* NUL included */
    size_t len;
    bool bad;
} sbuf_t;

static void put(sbuf_t *b, const void *p, size_t n)
{
    if (b->bad || n >= b->cap - b->len) { /* len < cap always, so this cannot wrap */
        b->bad = true;
        return;
    }
    memcpy(b->buf + b->len, p, n);
    b->len += n;
    b->buf[b->len] = '\0';
}

static void put_str(sbuf_t *b, const char *str)
{
    put(b, str, strlen(str));
}

static void put_b64(sbuf_t *b, const uint8_t *p, size_t n)
{
    if (b->bad)
        return;
    long rc = fw__b64_encode(b->buf + b->len, b->cap - b->len, p, n);
    if (rc < 0) {
        b->bad = true;
        return;
    }
    b->len += (size_t)rc;
}

/* A nonce character (RFC 5802 "printable"): 0x21..0x7E except ','. */
static bool nonce_char(uint8_t c)
{
    return c >= 0x21 && c <= 0x7e && c != ',';
}

static bool b64_char(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/' || c == '=';
}

/* HMAC-SHA-256 over the concatenation of parts, so the AuthMessage needs no buffer of its own. */
static int hmac_sha256(uint8_t out[FW__SCRAM_KEY_LEN], const uint8_t *key, size_t keylen,
                       const fw_slice_t *parts, size_t nparts)
{
    static char digest[] = "SHA256"; /* OSSL_PARAM wants a mutable pointer */
    OSSL_PARAM params[2];
    size_t olen = 0;
    int ok;

    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0);
    params[1] = OSSL_PARAM_construct_end();
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
    ok = ctx != NULL && EVP_MAC_init(ctx, key, keylen, params) == 1;
    for (size_t i = 0; ok && i < nparts; i++)
        ok = EVP_MAC_update(ctx, parts[i].ptr, parts[i].len) == 1;
    ok = ok && EVP_MAC_final(ctx, out, &olen, FW__SCRAM_KEY_LEN) == 1 && olen == FW__SCRAM_KEY_LEN;
    EVP_MAC_CTX_free(ctx); /* frees (and cleanses) the key schedule */
    EVP_MAC_free(mac);
    return ok ? 0 : FW_ENOMEM;
}

static fw_slice_t slice(const void *p, size_t n)
{
    fw_slice_t sl = {(const uint8_t *)p, n};
    return sl;
}

/* ---- state handling ---- */

/* Secrets never outlive the step that needed them, nor any failure. */
static void wipe_secrets(fw__scram_t *s)
{
    fw__wipe(s->password, sizeof(s->password));
    s->password_len = 0;
    fw__wipe(s->salted_password, sizeof(s->salted_password));
    fw__wipe(s->client_key, sizeof(s->client_key));
    fw__wipe(s->stored_key, sizeof(s->stored_key));
    fw__wipe(s->server_key, sizeof(s->server_key));
    fw__wipe(s->server_signature, sizeof(s->server_signature));
}

/* Every failure goes through here: sticky, secrets gone, reason kept. */
static int fail(fw__scram_t *s, fw__scram_fail_t why, int rc)
{
    wipe_secrets(s);
    s->state = FW__SCRAM_S_FAILED;
    s->fail = why;
    return rc;
}

/*
 * A step in the wrong state is a caller bug or a server that skipped a message (a SASLFinal
 * before SASLContinue): either way the exchange cannot be trusted any more. A failed exchange
 * keeps its first reason; an unused (freed) state has nothing to record.
 */
static int expect(fw__scram_t *s, fw__scram_state_t want)
{
    if (s == NULL)
        return FW_EINVAL;
    if (s->state == want)
        return 0;
    if (s->state == FW__SCRAM_S_FAILED || s->state == FW__SCRAM_S_UNUSED)
        return FW_ESTATE;
    return fail(s, FW__SCRAM_FAIL_OUT_OF_ORDER, FW_ESTATE);
}

void fw__scram_opts_init(fw__scram_opts_t *o)
{
    if (o == NULL)
        return;
    memset(o, 0, sizeof(*o));
    o->channel_binding = FW__SCRAM_CB_NONE;
    o->max_iterations = FW__SCRAM_MAX_ITERATIONS_DEFAULT;
}

static int init_binding(fw__scram_t *s, const fw__scram_opts_t *o)
{
    switch (o->channel_binding) {
    case FW__SCRAM_CB_NONE:
    case FW__SCRAM_CB_NOT_OFFERED:
        /* Binding data without the mode that sends it is a caller mix-up: refuse, do not guess. */
        if (o->cb_data != NULL || o->cb_data_len != 0)
            return fail(s, FW__SCRAM_FAIL_BAD_OPTIONS, FW_EINVAL);
        break;
    case FW__SCRAM_CB_SERVER_END_POINT:
        /* Empty binding data would bind to nothing: the silent downgrade of CVE-2026-54291. */
        if (o->cb_data == NULL || o->cb_data_len == 0)
            return fail(s, FW__SCRAM_FAIL_NO_BINDING_DATA, FW_EINVAL);
        if (o->cb_data_len > sizeof(s->cb_data))
            return fail(s, FW__SCRAM_FAIL_BAD_OPTIONS, FW_ETOOBIG);
        memcpy(s->cb_data, o->cb_data, o->cb_data_len);
        s->cb_data_len = o->cb_data_len;
        break;
    default:
        return fail(s, FW__SCRAM_FAIL_BAD_OPTIONS, FW_EINVAL);
    }
    s->cb = o->channel_binding;
    return 0;
}

static int init_nonce(fw__scram_t *s, const fw__scram_opts_t *o)
{
    if (o->nonce != NULL) {
        if (o->nonce_len == 0)
            return fail(s, FW__SCRAM_FAIL_BAD_OPTIONS, FW_EINVAL);
        if (o->nonce_len > FW__SCRAM_NONCE_MAX)
            return fail(s, FW__SCRAM_FAIL_BAD_OPTIONS, FW_ETOOBIG);
        for (size_t i = 0; i < o->nonce_len; i++)
            if (!nonce_char((uint8_t)o->nonce[i]))
                return fail(s, FW__SCRAM_FAIL_BAD_OPTIONS, FW_EINVAL);
        memcpy(s->client_nonce, o->nonce, o->nonce_len);
        s->client_nonce_len = o->nonce_len;
        return 0;
    }
    /* 18 random bytes (144 bits) as libpq sends: the nonce only has to be unpredictable and
     * fresh, its base64 form keeps it within the nonce alphabet. */
    uint8_t raw[FW__SCRAM_NONCE_RANDOM];
    int ok = o->random_fn != NULL ? o->random_fn(o->random_ctx, raw, sizeof(raw)) == 0
                                  : RAND_bytes(raw, (int)sizeof(raw)) == 1;
    long n = ok ? fw__b64_encode(s->client_nonce, sizeof(s->client_nonce), raw, sizeof(raw)) : -1;
    fw__wipe(raw, sizeof(raw));
    if (n <= 0)
        return fail(s, FW__SCRAM_FAIL_CRYPTO, FW_ENOMEM);
    s->client_nonce_len = (size_t)n;
    return 0;
}

/*
 * The password is kept as the HMAC key PBKDF2 will use. HMAC replaces a key longer than its
 * block by the key's SHA-256 digest, so storing that digest gives the same SaltedPassword while
 * the state needs no allocation and sets no limit on the password's length.
 */
static int init_password(fw__scram_t *s, const fw__scram_opts_t *o)
{
    if (o->password == NULL && o->password_len != 0)
        return fail(s, FW__SCRAM_FAIL_BAD_OPTIONS, FW_EINVAL);
    if (o->password_len <= sizeof(s->password)) {
        if (o->password_len > 0)
            memcpy(s->password, o->password, o->password_len);
        s->password_len = o->password_len;
        return 0;
    }
    unsigned int n = 0;
    if (EVP_Digest(o->password, o->password_len, s->password, &n, EVP_sha256(), NULL) != 1 ||
        n != FW__SCRAM_KEY_LEN)
        return fail(s, FW__SCRAM_FAIL_CRYPTO, FW_ENOMEM);
    s->password_len = n;
    return 0;
}

/* "n=" + saslname + ",r=" + nonce, with ',' and '=' escaped in the name as RFC 5802 says. */
static int init_first_bare(fw__scram_t *s, const fw__scram_opts_t *o)
{
    sbuf_t b = {s->first_bare, sizeof(s->first_bare), 0, false};
    size_t ulen = o->username != NULL ? strlen(o->username) : 0;

    if (ulen > FW__SCRAM_USER_MAX)
        return fail(s, FW__SCRAM_FAIL_BAD_OPTIONS, FW_ETOOBIG);
    put_str(&b, "n=");
    for (size_t i = 0; i < ulen; i++) {
        char c = o->username[i];
        if (c == ',')
            put_str(&b, "=2C");
        else if (c == '=')
            put_str(&b, "=3D");
        else
            put(&b, &c, 1);
    }
    put_str(&b, ",r=");
    put(&b, s->client_nonce, s->client_nonce_len);
    if (b.bad) /* cannot happen with the sizes above; checked all the same */
        return fail(s, FW__SCRAM_FAIL_BAD_OPTIONS, FW_ETOOBIG);
    s->first_bare_len = b.len;
    return 0;
}

int fw__scram_init(fw__scram_t *s, const fw__scram_opts_t *o)
{
    int rc;

    if (s == NULL)
        return FW_EINVAL;
    memset(s, 0, sizeof(*s));
    if (o == NULL)
        return fail(s, FW__SCRAM_FAIL_BAD_OPTIONS, FW_EINVAL);
    s->max_iterations =
        o->max_iterations == 0 ? FW__SCRAM_MAX_ITERATIONS_DEFAULT : o->max_iterations;
    /* PostgreSQL's scram_iterations is an int: no honest server asks for more. */
    if (s->max_iterations > (uint32_t)INT_MAX)
        return fail(s, FW__SCRAM_FAIL_BAD_OPTIONS, FW_EINVAL);
    if ((rc = init_binding(s, o)) != 0 || (rc = init_nonce(s, o)) != 0 ||
        (rc = init_first_bare(s, o)) != 0 || (rc = init_password(s, o)) != 0)
        return rc;
    s->state = FW__SCRAM_S_READY;
    return 0;
}

const char *fw__scram_mechanism(const fw__scram_t *s)
{
    return s != NULL && s->cb == FW__SCRAM_CB_SERVER_END_POINT ? FW__SCRAM_MECH_PLUS
                                                               : FW__SCRAM_MECH;
}

int fw__scram_client_first(fw__scram_t *s, fw_slice_t *out)
{
    int rc = expect(s, FW__SCRAM_S_READY);
    if (rc != 0)
        return rc;
    if (out == NULL)
        return fail(s, FW__SCRAM_FAIL_BAD_OPTIONS, FW_EINVAL);
    sbuf_t b = {s->out, sizeof(s->out), 0, false};
    put_str(&b, gs2_header(s->cb));
    put(&b, s->first_bare, s->first_bare_len);
    if (b.bad)
        return fail(s, FW__SCRAM_FAIL_BAD_OPTIONS, FW_ETOOBIG);
    s->out_len = b.len;
    s->state = FW__SCRAM_S_SENT_FIRST;
    *out = slice(s->out, s->out_len);
    return 0;
}

/* ---- server-first-message ---- */

/*
 * Reads one "x=value" attribute at *pos, expecting the letter want; the value runs to the next
 * ',' or the end, so a ',' can never be part of a value. Each way of getting it wrong has its
 * own reason, because "the server asked for an extension" and "the server sent garbage" lead a
 * user to different places.
 */
static int attribute(fw__scram_t *s, const uint8_t *msg, size_t len, size_t *pos, char want,
                     fw_slice_t *value)
{
    size_t p = *pos;
    if (len - p < 2 || msg[p + 1] != '=')
        return fail(s, FW__SCRAM_FAIL_MALFORMED, FW_EPROTO_BAD_VALUE);
    uint8_t letter = msg[p];
    if (letter == 'm')
        return fail(s, FW__SCRAM_FAIL_EXTENSION, FW_EPROTO_BAD_VALUE);
    if (letter == 'e')
        return fail(s, FW__SCRAM_FAIL_FIRST_HAS_ERROR, FW_EPROTO_BAD_VALUE);
    if (letter != (uint8_t)want) {
        bool known = letter == 'r' || letter == 's' || letter == 'i';
        return fail(s, known ? FW__SCRAM_FAIL_ATTR_ORDER : FW__SCRAM_FAIL_MALFORMED,
                    FW_EPROTO_BAD_VALUE);
    }
    size_t start = p + 2, end = start;
    while (end < len && msg[end] != ',')
        end++;
    *value = slice(msg + start, end - start);
    *pos = end;
    return 0;
}

/*
 * The combined nonce must be our nonce plus at least one character of the server's: an equal
 * nonce means the server contributed no freshness (a replayed or reflected exchange).
 */
static int check_nonce(fw__scram_t *s, fw_slice_t r)
{
    for (size_t i = 0; i < r.len; i++)
        if (!nonce_char(r.ptr[i]))
            return fail(s, FW__SCRAM_FAIL_NONCE_CHARS, FW_EPROTO_BAD_VALUE);
    if (r.len < s->client_nonce_len || !fw__ct_equal(r.ptr, s->client_nonce, s->client_nonce_len))
        return fail(s, FW__SCRAM_FAIL_NONCE_MISMATCH, FW_EPROTO_BAD_VALUE);
    if (r.len == s->client_nonce_len)
        return fail(s, FW__SCRAM_FAIL_NONCE_NOT_LONGER, FW_EPROTO_BAD_VALUE);
    return 0;
}

static int check_salt(fw__scram_t *s, fw_slice_t v)
{
    long n = fw__b64_decode(s->salt, sizeof(s->salt), (const char *)v.ptr, v.len);
    if (n == FW_ETOOBIG) /* cannot happen: the message cap bounds the salt */
        return fail(s, FW__SCRAM_FAIL_TOO_LONG, FW_ETOOBIG);
    if (n < 0)
        return fail(s, FW__SCRAM_FAIL_SALT_ENCODING, FW_EPROTO_BAD_VALUE);
    if (n == 0)
        return fail(s, FW__SCRAM_FAIL_SALT_EMPTY, FW_EPROTO_BAD_VALUE);
    s->salt_len = (size_t)n;
    return 0;
}

/*
 * i= is a plain decimal integer >= 1: no sign, no leading zero (so "0" and "007" are refused;
 * PostgreSQL never sends them and one spelling per number leaves nothing to interpret), no
 * space, nothing after it. The cap is checked digit by digit, so a count of any length is
 * refused in time linear in its (capped) length, before any PBKDF2 work.
 */
static int check_iterations(fw__scram_t *s, fw_slice_t v)
{
    if (v.len == 0 || v.ptr[0] == '0')
        return fail(s, FW__SCRAM_FAIL_ITERATIONS, FW_EPROTO_BAD_VALUE);
    for (size_t i = 0; i < v.len; i++)
        if (v.ptr[i] < '0' || v.ptr[i] > '9')
            return fail(s, FW__SCRAM_FAIL_ITERATIONS, FW_EPROTO_BAD_VALUE);
    uint64_t n = 0; /* stays <= INT_MAX * 10 + 9: no overflow */
    for (size_t i = 0; i < v.len; i++) {
        n = n * 10 + (uint64_t)(v.ptr[i] - '0');
        if (n > s->max_iterations) {
            /* Keep the digits for the message; a huge count is shortened with "...". */
            size_t keep = v.len < 20 ? v.len : 17;
            memcpy(s->refused_iterations, v.ptr, keep);
            memcpy(s->refused_iterations + keep, v.len < 20 ? "" : "...", v.len < 20 ? 1 : 4);
            return fail(s, FW__SCRAM_FAIL_ITERATION_CAP, FW_ETOOBIG);
        }
    }
    s->iterations = (uint32_t)n;
    return 0;
}

int fw__scram_server_first(fw__scram_t *s, const uint8_t *msg, size_t len)
{
    static const char order[3] = {'r', 's', 'i'};
    fw_slice_t v[3];
    size_t pos = 0;
    int rc = expect(s, FW__SCRAM_S_SENT_FIRST);

    if (rc != 0)
        return rc;
    if (msg == NULL || len == 0)
        return fail(s, FW__SCRAM_FAIL_MALFORMED, FW_EPROTO_BAD_VALUE);
    if (len > sizeof(s->server_first))
        return fail(s, FW__SCRAM_FAIL_TOO_LONG, FW_ETOOBIG);
    for (size_t k = 0; k < 3; k++) {
        if (k > 0) {
            if (pos == len) /* an attribute is missing */
                return fail(s, FW__SCRAM_FAIL_MALFORMED, FW_EPROTO_BAD_VALUE);
            pos++; /* the ',' that ended the previous value */
        }
        if ((rc = attribute(s, msg, len, &pos, order[k], &v[k])) != 0)
            return rc;
    }
    if (pos != len)
        return fail(s, FW__SCRAM_FAIL_TRAILING, FW_EPROTO_TRAILING);
    if ((rc = check_nonce(s, v[0])) != 0 || (rc = check_salt(s, v[1])) != 0 ||
        (rc = check_iterations(s, v[2])) != 0)
        return rc;
    memcpy(s->server_first, msg, len);
    s->server_first_len = len;
    s->server_nonce_len = v[0].len; /* r= is first, so the nonce starts at offset 2 */
    s->state = FW__SCRAM_S_GOT_SERVER_FIRST;
    return 0;
}

/* ---- keys and proofs ---- */

/*
 * How many iterations run between two looks at the cancel flag. One iteration (two SHA-256
 * compressions and the context copies around them) costs about 130 ns on the reference machine,
 * so 1024 of them take about 0.13 ms: a cancelled derivation stops in well under 10 ms even on a
 * machine 50 times slower (or under valgrind), while one relaxed load per 1024 iterations is
 * lost in the noise (under 0.01 %). A power of two, so the test is a mask.
 */
#define CANCEL_EVERY 1024u
_Static_assert((CANCEL_EVERY & (CANCEL_EVERY - 1)) == 0, "CANCEL_EVERY is a power of two");

/*
 * One HMAC-SHA-256 from the precomputed key states: H((K ^ opad) || H((K ^ ipad) || a || b)).
 * work is overwritten; out may alias a (the input is consumed before the digest is written).
 */
static bool hmac_from_states(EVP_MD_CTX *work, const EVP_MD_CTX *inner, const EVP_MD_CTX *outer,
                             const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
                             uint8_t out[FW__SCRAM_KEY_LEN])
{
    unsigned int n = 0, m = 0;
    return EVP_MD_CTX_copy_ex(work, inner) == 1 && EVP_DigestUpdate(work, a, alen) == 1 &&
           (blen == 0 || EVP_DigestUpdate(work, b, blen) == 1) &&
           EVP_DigestFinal_ex(work, out, &n) == 1 && n == FW__SCRAM_KEY_LEN &&
           EVP_MD_CTX_copy_ex(work, outer) == 1 &&
           EVP_DigestUpdate(work, out, FW__SCRAM_KEY_LEN) == 1 &&
           EVP_DigestFinal_ex(work, out, &m) == 1 && m == FW__SCRAM_KEY_LEN;
}

/*
 * SaltedPassword = Hi(password, salt, i) (RFC 5802 section 2.2): PBKDF2-HMAC-SHA-256 for one
 * 32-byte block, U1 = HMAC(password, salt || INT(1)), Uk = HMAC(password, U(k-1)), the result
 * U1 xor ... xor Ui, byte for byte what PKCS5_PBKDF2_HMAC gives. It is written out here rather
 * than left to that call because a call cannot be stopped: the iteration count is the server's
 * choice, and an attempt that timed out or was closed must not keep a core busy for seconds
 * (CVE-2026-42198). So the loop looks at *cancel every CANCEL_EVERY iterations.
 *
 * The HMAC key never changes, so the SHA-256 states after the 64-byte blocks K ^ ipad and
 * K ^ opad are computed once and each iteration starts from copies of them (RFC 2104 section 4
 * suggests exactly this): two compressions and two digest-context copies per iteration, no HMAC
 * context. OpenSSL 3.0's PBKDF2 copies four digest contexts per iteration (HMAC_CTX_copy, then
 * the outer state in HMAC_Final), and every copy allocates. Measured at 10^6 iterations, median
 * of 5: this loop is about 30 % faster than PKCS5_PBKDF2_HMAC; re-initialising one keyed
 * EVP_MAC context (EVP_MAC_init with a NULL key) about 18 % faster; EVP_MAC_CTX_dup of a keyed
 * context per iteration twice as slow. Copying raw SHA256_CTX structs would gain another ~25 %,
 * but those functions are deprecated in OpenSSL 3.
 *
 * s->password already is the HMAC key form (at most one block, see init_password). Returns 0,
 * FW_ECLOSED (cancelled; s->salted_password is then garbage for the caller to wipe) or
 * FW_ENOMEM. Every intermediate is wiped; the digest contexts hold the keyed states and are
 * cleansed when freed (OpenSSL's SHA-256 freectx is OPENSSL_clear_free).
 */
static int salted_password(fw__scram_t *s, const _Atomic bool *cancel)
{
    static const uint8_t int1[4] = {0, 0, 0, 1}; /* INT(1): the first and only block */
    uint8_t ipad[HMAC_BLOCK], opad[HMAC_BLOCK], u[FW__SCRAM_KEY_LEN];
    EVP_MD_CTX *inner = EVP_MD_CTX_new(), *outer = EVP_MD_CTX_new(), *work = EVP_MD_CTX_new();
    const EVP_MD *md = EVP_sha256();
    int rc = 0;

    for (size_t k = 0; k < HMAC_BLOCK; k++) {
        uint8_t key = k < s->password_len ? s->password[k] : 0;
        ipad[k] = (uint8_t)(key ^ 0x36);
        opad[k] = (uint8_t)(key ^ 0x5c);
    }
    bool ok = inner != NULL && outer != NULL && work != NULL && md != NULL &&
              EVP_DigestInit_ex(inner, md, NULL) == 1 &&
              EVP_DigestUpdate(inner, ipad, sizeof(ipad)) == 1 &&
              EVP_DigestInit_ex(outer, md, NULL) == 1 &&
              EVP_DigestUpdate(outer, opad, sizeof(opad)) == 1;
    fw__wipe(ipad, sizeof(ipad));
    fw__wipe(opad, sizeof(opad));

    ok = ok && hmac_from_states(work, inner, outer, s->salt, s->salt_len, int1, sizeof(int1), u);
    if (ok)
        memcpy(s->salted_password, u, sizeof(u));
    for (uint32_t i = 1; ok && i < s->iterations; i++) {
        /*
         * Relaxed is enough: the flag publishes nothing, it only asks the loop to stop, and
         * any store becomes visible to this load in bounded time (coherence). Whoever set it
         * throws the state away; handing the state back to its owner is ordered by something
         * else (libuv's work queue in lib/conn_attempt.c), never by this flag.
         */
        if ((i & (CANCEL_EVERY - 1)) == 0 && cancel != NULL &&
            atomic_load_explicit(cancel, memory_order_relaxed)) {
            rc = FW_ECLOSED;
            break;
        }
        ok = hmac_from_states(work, inner, outer, u, sizeof(u), NULL, 0, u);
        for (size_t k = 0; k < sizeof(u); k++)
            s->salted_password[k] ^= u[k];
    }
    fw__wipe(u, sizeof(u));
    EVP_MD_CTX_free(work);
    EVP_MD_CTX_free(outer);
    EVP_MD_CTX_free(inner);
    if (rc == 0 && !ok)
        rc = FW_ENOMEM;
    return rc;
}

int fw__scram_derive_cancellable(fw__scram_t *s, const _Atomic bool *cancel)
{
    static const char client_key[] = "Client Key", server_key[] = "Server Key";
    int rc = expect(s, FW__SCRAM_S_GOT_SERVER_FIRST);
    if (rc != 0)
        return rc;
    /* Asked to stop before it started (the attempt gave up while the job waited for a
     * thread): no key work at all. */
    if (cancel != NULL && atomic_load_explicit(cancel, memory_order_relaxed))
        return fail(s, FW__SCRAM_FAIL_CANCELLED, FW_ECLOSED);

    fw_slice_t ck = slice(client_key, sizeof(client_key) - 1);
    fw_slice_t sk = slice(server_key, sizeof(server_key) - 1);
    unsigned int n = 0;
    rc = salted_password(s, cancel);
    if (rc == FW_ECLOSED)
        return fail(s, FW__SCRAM_FAIL_CANCELLED, FW_ECLOSED); /* wipes the partial result */
    bool ok = rc == 0;
    ok = ok && hmac_sha256(s->client_key, s->salted_password, FW__SCRAM_KEY_LEN, &ck, 1) == 0;
    ok = ok && hmac_sha256(s->server_key, s->salted_password, FW__SCRAM_KEY_LEN, &sk, 1) == 0;
    ok = ok &&
         EVP_Digest(s->client_key, FW__SCRAM_KEY_LEN, s->stored_key, &n, EVP_sha256(), NULL) == 1 &&
         n == FW__SCRAM_KEY_LEN;
    /* The password and SaltedPassword are done with: the keys are all that is needed now. */
    fw__wipe(s->salted_password, sizeof(s->salted_password));
    fw__wipe(s->password, sizeof(s->password));
    s->password_len = 0;
    if (!ok)
        return fail(s, FW__SCRAM_FAIL_CRYPTO, FW_ENOMEM);
    s->state = FW__SCRAM_S_DERIVED;
    return 0;
}

int fw__scram_derive(fw__scram_t *s)
{
    return fw__scram_derive_cancellable(s, NULL);
}

int fw__scram_client_final(fw__scram_t *s, fw_slice_t *out)
{
    uint8_t cbind[sizeof(gs2_end_point) - 1 + FW__SCRAM_CB_DATA_MAX];
    uint8_t signature[FW__SCRAM_KEY_LEN], proof[FW__SCRAM_KEY_LEN];
    int rc = expect(s, FW__SCRAM_S_DERIVED);

    if (rc != 0)
        return rc;
    if (out == NULL)
        return fail(s, FW__SCRAM_FAIL_BAD_OPTIONS, FW_EINVAL);

    /* c= is base64(GS2 header + binding data) and the proof covers it. With p= the data ties
     * the proof to this TLS session, so a man in the middle cannot relay it over its own; with
     * y the server learns that we could have bound, so it detects SCRAM-SHA-256-PLUS having
     * been stripped from its offer. */
    const char *gs2 = gs2_header(s->cb);
    size_t glen = strlen(gs2);
    memcpy(cbind, gs2, glen);
    memcpy(cbind + glen, s->cb_data, s->cb_data_len);

    sbuf_t b = {s->out, sizeof(s->out), 0, false};
    put_str(&b, "c=");
    put_b64(&b, cbind, glen + s->cb_data_len);
    put_str(&b, ",r=");
    put(&b, s->server_first + 2, s->server_nonce_len);
    if (b.bad)
        return fail(s, FW__SCRAM_FAIL_BAD_OPTIONS, FW_ETOOBIG);
    s->final_bare_len = b.len;

    /* AuthMessage = client-first-bare "," server-first "," client-final-without-proof */
    const fw_slice_t auth[5] = {
        slice(s->first_bare, s->first_bare_len),
        slice(",", 1),
        slice(s->server_first, s->server_first_len),
        slice(",", 1),
        slice(s->out, s->final_bare_len),
    };
    bool ok = hmac_sha256(signature, s->stored_key, FW__SCRAM_KEY_LEN, auth, 5) == 0 &&
              hmac_sha256(s->server_signature, s->server_key, FW__SCRAM_KEY_LEN, auth, 5) == 0;
    for (size_t i = 0; i < FW__SCRAM_KEY_LEN; i++)
        proof[i] = (uint8_t)(s->client_key[i] ^ signature[i]);
    put_str(&b, ",p=");
    put_b64(&b, proof, sizeof(proof));
    /* ClientSignature with the proof gives ClientKey back: wipe it with the keys. Only the
     * expected ServerSignature is needed from here on. */
    fw__wipe(signature, sizeof(signature));
    fw__wipe(proof, sizeof(proof));
    fw__wipe(s->client_key, sizeof(s->client_key));
    fw__wipe(s->stored_key, sizeof(s->stored_key));
    fw__wipe(s->server_key, sizeof(s->server_key));
    if (!ok)
        return fail(s, FW__SCRAM_FAIL_CRYPTO, FW_ENOMEM);
    if (b.bad)
        return fail(s, FW__SCRAM_FAIL_BAD_OPTIONS, FW_ETOOBIG);
    s->out_len = b.len;
    s->state = FW__SCRAM_S_SENT_FINAL;
    *out = slice(s->out, s->out_len);
    return 0;
}

/* ---- server-final-message ---- */

int fw__scram_server_final(fw__scram_t *s, const uint8_t *msg, size_t len)
{
    int rc = expect(s, FW__SCRAM_S_SENT_FINAL);
    if (rc != 0)
        return rc;
    if (len > FW__SCRAM_SERVER_MSG_MAX)
        return fail(s, FW__SCRAM_FAIL_TOO_LONG, FW_ETOOBIG);
    if (msg == NULL || len < 2 || msg[1] != '=')
        return fail(s, FW__SCRAM_FAIL_MALFORMED, FW_EPROTO_BAD_VALUE);

    switch (msg[0]) {
    case 'e': {
        /* The server's reason (e.g. "invalid-proof"), kept raw and capped: it is untrusted, the
         * caller escapes it before anyone sees it. */
        size_t n = len - 2 < sizeof(s->server_error) ? len - 2 : sizeof(s->server_error);
        memcpy(s->server_error, msg + 2, n);
        s->server_error_len = n;
        s->server_error_truncated = n < len - 2;
        return fail(s, FW__SCRAM_FAIL_SERVER_ERROR, FW_EPROTO_BAD_VALUE);
    }
    case 'm':
        return fail(s, FW__SCRAM_FAIL_EXTENSION, FW_EPROTO_BAD_VALUE);
    case 'v':
        break;
    default:
        return fail(s, FW__SCRAM_FAIL_MALFORMED, FW_EPROTO_BAD_VALUE);
    }

    /* The signature is the run of base64 characters after "v="; anything after it (another
     * attribute, a NUL, a newline) is trailing and fatal. */
    size_t end = 2;
    while (end < len && b64_char(msg[end]))
        end++;
    if (end != len)
        return fail(s, FW__SCRAM_FAIL_TRAILING, FW_EPROTO_TRAILING);
    uint8_t sig[FW__SCRAM_KEY_LEN + 3]; /* room to see a 33-byte signature as too long */
    long n = fw__b64_decode(sig, sizeof(sig), (const char *)msg + 2, len - 2);
    if (n != FW__SCRAM_KEY_LEN)
        return fail(s, FW__SCRAM_FAIL_SIGNATURE_FORMAT, FW_EPROTO_BAD_VALUE);
    bool match = fw__ct_equal(sig, s->server_signature, FW__SCRAM_KEY_LEN);
    if (!match)
        return fail(s, FW__SCRAM_FAIL_SIGNATURE, FW_EPROTO_BAD_VALUE);
    wipe_secrets(s);
    s->state = FW__SCRAM_S_VERIFIED;
    return 0;
}

bool fw__scram_verified(const fw__scram_t *s)
{
    return s != NULL && s->state == FW__SCRAM_S_VERIFIED;
}

fw__scram_fail_t fw__scram_fail(const fw__scram_t *s)
{
    return s != NULL ? s->fail : FW__SCRAM_FAIL_NONE;
}

const char *fw__scram_fail_str(fw__scram_fail_t fail_)
{
    switch (fail_) {
    case FW__SCRAM_FAIL_NONE:
        return "no SCRAM failure";
    case FW__SCRAM_FAIL_BAD_OPTIONS:
        return "invalid SCRAM options";
    case FW__SCRAM_FAIL_NO_BINDING_DATA:
        return "channel binding tls-server-end-point requested without binding data";
    case FW__SCRAM_FAIL_OUT_OF_ORDER:
        return "SCRAM message out of order";
    case FW__SCRAM_FAIL_CRYPTO:
        return "OpenSSL failed during SCRAM authentication";
    case FW__SCRAM_FAIL_TOO_LONG:
        return "SCRAM server message is too long";
    case FW__SCRAM_FAIL_MALFORMED:
        return "malformed SCRAM server message";
    case FW__SCRAM_FAIL_ATTR_ORDER:
        return "SCRAM server-first-message attributes are not in the order r, s, i";
    case FW__SCRAM_FAIL_EXTENSION:
        return "SCRAM server requires an extension (m=), which is not supported";
    case FW__SCRAM_FAIL_TRAILING:
        return "trailing data after the last attribute of a SCRAM server message";
    case FW__SCRAM_FAIL_FIRST_HAS_ERROR:
        return "SCRAM server-first-message carries an error attribute (e=)";
    case FW__SCRAM_FAIL_NONCE_MISMATCH:
        return "server nonce does not extend the client nonce";
    case FW__SCRAM_FAIL_NONCE_NOT_LONGER:
        return "server nonce is not longer than the client nonce";
    case FW__SCRAM_FAIL_NONCE_CHARS:
        return "server nonce contains a byte that is not printable ASCII";
    case FW__SCRAM_FAIL_SALT_ENCODING:
        return "SCRAM salt is not valid base64";
    case FW__SCRAM_FAIL_SALT_EMPTY:
        return "SCRAM salt is empty";
    case FW__SCRAM_FAIL_ITERATIONS:
        return "SCRAM iteration count is not a decimal integer of at least 1";
    case FW__SCRAM_FAIL_ITERATION_CAP:
        return "SCRAM iteration count exceeds the limit (scram_max_iterations)";
    case FW__SCRAM_FAIL_SIGNATURE_FORMAT:
        return "SCRAM server signature is not 32 bytes of base64";
    case FW__SCRAM_FAIL_SIGNATURE:
        return "SCRAM server signature does not match: the server does not know the password";
    case FW__SCRAM_FAIL_SERVER_ERROR:
        return "server reported a SCRAM error";
    case FW__SCRAM_FAIL_CANCELLED:
        return "SCRAM key derivation cancelled";
    default:
        return "unknown SCRAM failure";
    }
}

/* snprintf-like sink: writes what fits, counts everything. */
typedef struct sink_s {
    char *buf;
    size_t cap;
    size_t need;
} sink_t;

static void emit(sink_t *k, const char *p, size_t n)
{
    if (k->need < k->cap) {
        size_t room = k->cap - 1 - k->need;
        memcpy(k->buf + k->need, p, n < room ? n : room);
    }
    k->need += n;
}

size_t fw__scram_describe(const fw__scram_t *s, char *buf, size_t cap)
{
    sink_t k = {buf, buf != NULL ? cap : 0, 0};
    fw__scram_fail_t f = fw__scram_fail(s);
    char tmp[96];

    if (f == FW__SCRAM_FAIL_ITERATION_CAP) {
        int n = snprintf(tmp, sizeof(tmp), "SCRAM iteration count %s exceeds the limit %u",
                         s->refused_iterations, (unsigned)s->max_iterations);
        emit(&k, tmp, n > 0 ? (size_t)n : 0);
        emit(&k, " (scram_max_iterations)", 23);
    } else if (f == FW__SCRAM_FAIL_SERVER_ERROR) {
        static const char hex[] = "0123456789abcdef";
        const char *base = fw__scram_fail_str(f);
        emit(&k, base, strlen(base));
        emit(&k, ": ", 2);
        /* Untrusted text: anything but printable ASCII becomes \xNN, so it cannot paint the
         * terminal or forge a log line. */
        for (size_t i = 0; i < s->server_error_len; i++) {
            uint8_t c = s->server_error[i];
            char e[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
            if (c >= 0x20 && c <= 0x7e && c != '\\')
                emit(&k, (const char *)&c, 1);
            else
                emit(&k, e, 4);
        }
        if (s->server_error_truncated)
            emit(&k, "...", 3);
    } else {
        const char *base = fw__scram_fail_str(f);
        emit(&k, base, strlen(base));
    }
    if (k.cap > 0)
        k.buf[k.need < k.cap ? k.need : k.cap - 1] = '\0';
    return k.need;
}

fw_slice_t fw__scram_server_error(const fw__scram_t *s, bool *truncated)
{
    if (truncated != NULL)
        *truncated = s != NULL && s->server_error_truncated;
    if (s == NULL)
        return slice(NULL, 0);
    return slice(s->server_error, s->server_error_len);
}

void fw__scram_free(fw__scram_t *s)
{
    /* Everything goes: secrets, nonces, and the messages that carry them. */
    if (s != NULL)
        fw__wipe(s, sizeof(*s));
}

/* ---- tls-server-end-point (RFC 5929 section 4.1) ---- */

/* Why there is no hash, naming the algorithm (a static string for each one we can name). */
static const char *no_digest_why(int pknid)
{
    switch (pknid) {
    case NID_ED25519:
        return "server certificate is signed with ED25519, which has no hash for "
               "tls-server-end-point channel binding";
    case NID_ED448:
        return "server certificate is signed with ED448, which has no hash for "
               "tls-server-end-point channel binding";
    default:
        return "server certificate signature algorithm has no single hash for "
               "tls-server-end-point channel binding";
    }
}

int fw__scram_cert_hash(const uint8_t *der, size_t len, uint8_t *out, size_t cap, size_t *outlen,
                        const char **why)
{
    const char *ignored;
    int mdnid = NID_undef, pknid = NID_undef;
    int rc = 0;

    if (why == NULL)
        why = &ignored;
    *why = NULL;
    if (outlen != NULL)
        *outlen = 0;
    if (der == NULL || len == 0 || len > (size_t)LONG_MAX || out == NULL || outlen == NULL) {
        *why = "invalid argument to the certificate hash";
        return FW_EINVAL;
    }
    const unsigned char *p = der;
    X509 *x = d2i_X509(NULL, &p, (long)len);
    if (x == NULL) {
        *why = "server certificate is not a valid DER X.509 certificate";
        return FW_EINVAL;
    }
    /* The hash covers the bytes given; bytes after the certificate would be hashed too, yet
     * are not part of it, so refuse them rather than guess. */
    if (p != der + len) {
        *why = "server certificate has trailing bytes after its DER encoding";
        rc = FW_EINVAL;
    } else if (X509_get_signature_info(x, &mdnid, &pknid, NULL, NULL) != 1) {
        /* OpenSSL does not know the algorithm (e.g. a post-quantum one on an old OpenSSL). */
        *why = "server certificate signature algorithm is unknown to OpenSSL; no hash for "
               "tls-server-end-point channel binding";
        rc = FW_EINVAL;
    } else if (mdnid == NID_undef) {
        /* Ed25519 and Ed448 sign the message itself: RFC 5929 defines no binding for them.
         * Failing here is the point: empty binding data would downgrade silently. */
        *why = no_digest_why(pknid);
        rc = FW_EINVAL;
    }
    X509_free(x);
    if (rc != 0)
        return rc;

    /* RFC 5929: MD5 and SHA-1 are replaced by SHA-256; any other single hash is used as is. */
    const EVP_MD *md =
        mdnid == NID_md5 || mdnid == NID_sha1 ? EVP_sha256() : EVP_get_digestbynid(mdnid);
    if (md == NULL) {
        *why = "the hash of the server certificate's signature algorithm is not available";
        return FW_EINVAL;
    }
    int size = EVP_MD_get_size(md);
    if (size <= 0 || (size_t)size > cap) {
        *why = "channel binding buffer is too small for the certificate hash";
        return FW_ETOOBIG;
    }
    unsigned int n = 0;
    if (EVP_Digest(der, len, out, &n, md, NULL) != 1 || n != (unsigned int)size) {
        *why = "OpenSSL failed to hash the server certificate";
        return FW_ENOMEM;
    }
    *outlen = n;
    return 0;
}
