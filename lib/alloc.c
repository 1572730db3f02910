/* SPDX-License-Identifier: MIT */
/* The allocator hook (fw_allocator_set), the internal wrappers every lib/ file uses, and the
 * hook as one fw_allocator_t for the leaves. */
#include "alloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void *libc_malloc(void *ud, size_t size)
{
    (void)ud;
    return malloc(size);
}

static void *libc_realloc(void *ud, void *ptr, size_t size)
{
    (void)ud;
    return realloc(ptr, size);
}

static void libc_free(void *ud, void *ptr)
{
    (void)ud;
    free(ptr);
}

/* Set before fwire is used (documented at fw_allocator_set), then only read: no atomics. */
static fw_allocator_t hook = {libc_malloc, libc_realloc, libc_free, NULL};

int fw_allocator_set(const fw_allocator_t *a)
{
    if (a == NULL) {
        hook = (fw_allocator_t){libc_malloc, libc_realloc, libc_free, NULL};
        return 0;
    }
    if (a->malloc_fn == NULL || a->realloc_fn == NULL || a->free_fn == NULL)
        return FW_EINVAL;
    hook = *a;
    return 0;
}

void *fw__malloc(size_t size)
{
    return hook.malloc_fn(hook.ud, size == 0 ? 1 : size);
}

void *fw__calloc(size_t n, size_t size)
{
    if (size != 0 && n > SIZE_MAX / size)
        return NULL;
    void *p = fw__malloc(n * size);
    if (p != NULL)
        memset(p, 0, n * size);
    return p;
}

void *fw__realloc(void *ptr, size_t size)
{
    return hook.realloc_fn(hook.ud, ptr, size == 0 ? 1 : size);
}

void fw__free(void *ptr)
{
    if (ptr != NULL)
        hook.free_fn(hook.ud, ptr);
}

char *fw__strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = fw__malloc(n);
    if (d != NULL)
        memcpy(d, s, n);
    return d;
}

/* Each call reads the hook installed at that moment, as the fw__ functions above do. */
static void *route_malloc(void *ud, size_t size)
{
    (void)ud;
    return fw__malloc(size);
}

static void *route_realloc(void *ud, void *ptr, size_t size)
{
    (void)ud;
    return fw__realloc(ptr, size);
}

static void route_free(void *ud, void *ptr)
{
    (void)ud;
    fw__free(ptr);
}

const fw_allocator_t fw__alloc = {route_malloc, route_realloc, route_free, NULL};
