/* SPDX-License-Identifier: MIT */
/*
 * Private to lib/: every allocation fwire makes goes through the hook of fw_allocator_set(), so
 * an embedder can account for it (and a test can count calls on the hot path). The leaves take
 * the same hook through their own allocator structs, built here.
 */
#ifndef FW_ALLOC_H
#define FW_ALLOC_H

#include "fwire.h"
#include "proto.h"
#include "stream.h"

#include <stddef.h>

void *fw__malloc(size_t size);
void *fw__calloc(size_t n, size_t size);
void *fw__realloc(void *ptr, size_t size);
void fw__free(void *ptr);
char *fw__strdup(const char *s);

/* The hook in the shape proto/ and stream/ take it. */
extern const fw__pq_alloc_t fw__pq_alloc;
extern const fw__ring_alloc_t fw__ring_alloc;

#endif /* FW_ALLOC_H */
