/* SPDX-License-Identifier: MIT */
/*
 * Private to lib/: every allocation fwire makes goes through the hook of fw_allocator_set(), so
 * an embedder can account for it (and a test can count calls on the hot path). The leaves take
 * the same hook as fw__alloc.
 */
#ifndef FW_ALLOC_H
#define FW_ALLOC_H

#include "fwire.h"

#include <stddef.h>

void *fw__malloc(size_t size);
void *fw__calloc(size_t n, size_t size);
void *fw__realloc(void *ptr, size_t size);
void fw__free(void *ptr);
char *fw__strdup(const char *s);

/*
 * The hook for proto/ and stream/, which take the public fw_allocator_t: its functions call
 * fw__malloc/fw__realloc/fw__free, so they reach whatever fw_allocator_set() installed. Memory
 * aligned past malloc's comes from stream/'s fw__aligned_alloc() on top of it.
 */
extern const fw_allocator_t fw__alloc;

#endif /* FW_ALLOC_H */
