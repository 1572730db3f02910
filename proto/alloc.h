/* SPDX-License-Identifier: MIT */
/* Private to proto/: the allocator hook with libc as the default. */
#ifndef FW_PROTO_ALLOC_H
#define FW_PROTO_ALLOC_H

#include "proto.h"

/* Copies *src, or installs libc's realloc/free (and a NULL malloc_fn, which proto/ never calls)
 * when src is NULL or lacks realloc_fn or free_fn. */
void fw__pq_alloc_set(fw_allocator_t *dst, const fw_allocator_t *src);

#endif
