/* SPDX-License-Identifier: MIT */
/*
 * MD5 password answers.
 * MD5 authentication is weak (the stored verifier is a password equivalent); fwire supports it
 * because servers still ask for it, and `require_auth` lets a user refuse it.
 */
#include "auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <string.h>

static void hex32(char out[33], const uint8_t d[16])
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < 16; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
    out[32] = '\0';
}

/* md5 over the concatenation of two byte strings. */
static int md5_two(uint8_t out[16], const void *a, size_t alen, const void *b, size_t blen)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int olen = 0;
    int ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_md5(), NULL) == 1 &&
             EVP_DigestUpdate(ctx, a, alen) == 1 && EVP_DigestUpdate(ctx, b, blen) == 1 &&
             EVP_DigestFinal_ex(ctx, out, &olen) == 1 && olen == 16;
    EVP_MD_CTX_free(ctx);
    return ok ? 0 : FW_ENOMEM;
}

int fw__md5_password(char out[FW__MD5_PASSWORD_LEN + 1], const char *user, const char *password,
                     const uint8_t salt[4])
{
    uint8_t digest[16];
    char inner[33];
    int rc;

    if (out == NULL || user == NULL || password == NULL || salt == NULL)
        return FW_EINVAL;
    rc = md5_two(digest, password, strlen(password), user, strlen(user));
    if (rc == 0) {
        hex32(inner, digest);
        rc = md5_two(digest, inner, 32, salt, 4);
    }
    if (rc == 0) {
        memcpy(out, "md5", 3);
        hex32(out + 3, digest);
    }
    fw__wipe(digest, sizeof(digest));
    fw__wipe(inner, sizeof(inner));
    return rc;
}
