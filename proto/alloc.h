/* SPDX-License-Identifier: MIT */
/* Private to proto/: the allocator hook with libc as the default. */
#ifndef FW_PROTO_ALLOC_H
#define FW_PROTO_ALLOC_H

#include "proto.h"

/* Copies *src, or installs libc's realloc/free when src is NULL or incomplete. */
void fw__pq_alloc_set(fw__pq_alloc_t *dst, const fw__pq_alloc_t *src);

#endif
