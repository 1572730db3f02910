/* SPDX-License-Identifier: MIT */
/* The allocator hook (fw_allocator_set) and the internal wrappers every lib/ file uses. */
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

static void *pq_realloc(void *ud, void *ptr, size_t size)
{
    (void)ud;
    return fw__realloc(ptr, size);
}

static void pq_free(void *ud, void *ptr)
{
    (void)ud;
    fw__free(ptr);
}

const fw__pq_alloc_t fw__pq_alloc = {pq_realloc, pq_free, NULL};

/* The ring wants aligned memory: over-allocate and keep the original pointer just before the
 * aligned block. */
static void *ring_alloc(void *ud, size_t size, size_t align)
{
    (void)ud;
    if (size > SIZE_MAX - align - sizeof(void *))
        return NULL;
    uint8_t *raw = fw__malloc(size + align + sizeof(void *));
    if (raw == NULL)
        return NULL;
    uintptr_t p = ((uintptr_t)raw + sizeof(void *) + align - 1) & ~(uintptr_t)(align - 1);
    ((void **)p)[-1] = raw;
    return (void *)p;
}

static void ring_free(void *ud, void *p)
{
    (void)ud;
    if (p != NULL)
        fw__free(((void **)p)[-1]);
}

const fw__ring_alloc_t fw__ring_alloc = {ring_alloc, ring_free, NULL};
