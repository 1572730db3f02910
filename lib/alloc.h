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

/* The receive-slab cache across streams (fw__pipe_opts_t's slab_get / slab_put; alloc.c says
 * why): blocks from fw__aligned_alloc(&fw__alloc, bytes, 16). Any thread. */
void *fw__slab_cache_get(size_t bytes);
bool fw__slab_cache_put(void *block, size_t bytes);

#endif /* FW_ALLOC_H */
