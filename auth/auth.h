/* SPDX-License-Identifier: MIT */
/*
 * auth/: the password mechanisms of PostgreSQL, pure (no I/O, no libuv, OpenSSL crypto only).
 * This release has the pieces every mechanism stands on: strict base64 (SCRAM's encoding),
 * constant-time comparison, secret wiping, and MD5 password hashing. SCRAM-SHA-256(-PLUS) and
 * SASLprep arrive with the connect issue.
 */
#ifndef FW_AUTH_H
#define FW_AUTH_H

#include "fwire.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes base64 needs for n input bytes, NUL excluded; SIZE_MAX when that would overflow. */
size_t fw__b64_encoded_len(size_t n);

/*
 * Encodes src[0..n) as padded base64 (RFC 4648 section 4) into dst, NUL-terminated.
 * Returns the encoded length, or FW_ETOOBIG if cap < fw__b64_encoded_len(n) + 1.
 */
long fw__b64_encode(char *dst, size_t cap, const uint8_t *src, size_t n);

/*
 * Decodes padded base64 strictly: only the RFC 4648 alphabet, length a multiple of 4, '='
 * only as the final one or two characters, and zero bits in the unused part of the last
 * quantum (so each byte string has exactly one accepted encoding). No whitespace.
 * Returns the decoded length, FW_EINVAL for malformed input, FW_ETOOBIG if cap is short.
 */
long fw__b64_decode(uint8_t *dst, size_t cap, const char *src, size_t n);

/* Constant-time equality of two n-byte buffers (time depends on n only). */
bool fw__ct_equal(const void *a, const void *b, size_t n);

/* Overwrites n bytes with zeros in a way the compiler may not elide. */
void fw__wipe(void *p, size_t n);

/* Length of an MD5 password answer: "md5" + 32 hex digits, NUL excluded. */
#define FW__MD5_PASSWORD_LEN 35

/*
 * The answer to AuthenticationMD5Password: "md5" + hex(md5(hex(md5(password + user)) + salt)),
 * NUL-terminated, into out[FW__MD5_PASSWORD_LEN + 1]. Intermediate digests are wiped.
 * Returns 0, or FW_EINVAL (NULL argument) / FW_ENOMEM (OpenSSL failure).
 */
int fw__md5_password(char out[FW__MD5_PASSWORD_LEN + 1], const char *user, const char *password,
                     const uint8_t salt[4]);

#endif /* FW_AUTH_H */
