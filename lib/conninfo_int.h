/* SPDX-License-Identifier: MIT */
/*
 * What the two halves of the conninfo unit share (private to conninfo.c and conninfo_check.c):
 * the keyword table and the helpers both use. Everything else is in conninfo.h.
 */
#ifndef FW_LIB_CONNINFO_INT_H
#define FW_LIB_CONNINFO_INT_H

#include "conninfo.h"

#include <stdbool.h>
#include <stddef.h>

/* One row of FW__CONNINFO_KEYWORDS: keyword, environment variable (or NULL), default (or NULL). */
typedef struct fw__ci_keydef_s {
    const char *kw, *env, *def;
} fw__ci_keydef_t;

/* Indexed by fw__ci_key_t. */
extern const fw__ci_keydef_t fw__ci_keys[FW__CI_NKEYS];

/* Formats into the caller's message buffer; err NULL or errlen 0: nothing. */
void fw__ci_err_set(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Room for a quoted value: FW__CI_QMAX input bytes, each escaped to at most 4, plus "..." and
 * NUL. */
#define FW__CI_QMAX 64
#define FW__CI_QBUF (4 * FW__CI_QMAX + 8)

/* s[0..n) for a message: control bytes escaped (\n \t \r, else \xNN) so no value can forge
 * log lines, cut at `max` bytes with "..." appended. out holds 4 * max + 8 bytes. Returns out. */
const char *fw__ci_quote_max(char *out, const char *s, size_t n, size_t max);

/* s for a message, escaped and cut to FW__CI_QMAX bytes (see fw__ci_quote_max); out holds
 * FW__CI_QBUF bytes. Returns out. */
const char *fw__ci_quote(char *out, const char *s);

/* isspace() in the C locale. */
bool fw__ci_is_space(char c);

/* A new copy of s[0..n), NUL-terminated; NULL when out of memory. */
char *fw__ci_dup_n(const char *s, size_t n);

/* Sets keyword k to a copy of v[0..n) from src, wiping the old value. 0 or FW_ENOMEM. */
int fw__ci_store(fw__conninfo_t *ci, fw__ci_key_t k, const char *v, size_t n, fw__ci_src_t src);

/* Frees the host list (wiping the passfile passwords) and leaves it empty. */
void fw__ci_free_hosts(fw__conninfo_t *ci);

#endif
