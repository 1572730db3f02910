/* SPDX-License-Identifier: MIT */
/*
 * Strict base64 for SCRAM. The server's nonce, salt and signature arrive base64-encoded before
 * the server has proved anything, so decoding accepts exactly one spelling of each byte string
 * and never writes past the caller's buffer.
 */
#include "auth.h"

#include <limits.h>
#include <string.h>

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t fw__b64_encoded_len(size_t n)
{
    size_t quanta = n / 3 + (n % 3 != 0);
    return quanta > SIZE_MAX / 4 ? SIZE_MAX : quanta * 4;
}

long fw__b64_encode(char *dst, size_t cap, const uint8_t *src, size_t n)
{
    size_t need = fw__b64_encoded_len(n);
    if (need == SIZE_MAX || need > (size_t)LONG_MAX || cap <= need)
        return FW_ETOOBIG;
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = ((uint32_t)src[i] << 16) | ((uint32_t)src[i + 1] << 8) | src[i + 2];
        dst[o++] = alphabet[(v >> 18) & 63];
        dst[o++] = alphabet[(v >> 12) & 63];
        dst[o++] = alphabet[(v >> 6) & 63];
        dst[o++] = alphabet[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)src[i] << 16;
        dst[o++] = alphabet[(v >> 18) & 63];
        dst[o++] = alphabet[(v >> 12) & 63];
        dst[o++] = '=';
        dst[o++] = '=';
    } else if (n - i == 2) {
        uint32_t v = ((uint32_t)src[i] << 16) | ((uint32_t)src[i + 1] << 8);
        dst[o++] = alphabet[(v >> 18) & 63];
        dst[o++] = alphabet[(v >> 12) & 63];
        dst[o++] = alphabet[(v >> 6) & 63];
        dst[o++] = '=';
    }
    dst[o] = '\0';
    return (long)o;
}

/* The 6-bit value of a base64 character, or -1. */
static int sextet(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

long fw__b64_decode(uint8_t *dst, size_t cap, const char *src, size_t n)
{
    if ((src == NULL && n != 0) || n % 4 != 0 || n / 4 * 3 > (size_t)LONG_MAX)
        return FW_EINVAL;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        bool last = i + 4 == n;
        int a = sextet(src[i]), b = sextet(src[i + 1]);
        int c = sextet(src[i + 2]), d = sextet(src[i + 3]);
        size_t out = 3;
        if (a < 0 || b < 0)
            return FW_EINVAL;
        if (last && src[i + 2] == '=' && src[i + 3] == '=') {
            if ((b & 15) != 0) /* non-zero bits that padding would throw away */
                return FW_EINVAL;
            out = 1;
            c = d = 0;
        } else if (last && src[i + 3] == '=') {
            if (c < 0 || (c & 3) != 0)
                return FW_EINVAL;
            out = 2;
            d = 0;
        } else if (c < 0 || d < 0) {
            return FW_EINVAL;
        }
        if (cap - o < out)
            return FW_ETOOBIG;
        uint32_t v = ((uint32_t)a << 18) | ((uint32_t)b << 12) | ((uint32_t)c << 6) | (uint32_t)d;
        dst[o++] = (uint8_t)(v >> 16);
        if (out > 1)
            dst[o++] = (uint8_t)(v >> 8);
        if (out > 2)
            dst[o++] = (uint8_t)v;
    }
    return (long)o;
}
