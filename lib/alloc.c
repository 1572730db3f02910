/* SPDX-License-Identifier: MIT */
/* The allocator hook (fw_allocator_set), the internal wrappers every lib/ file uses, and the
 * hook as one fw_allocator_t for the leaves. */
#include "alloc.h"
#include "stream.h" /* fw__aligned_free */

#include <pthread.h>
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

/* ---- the slab cache ---------------------------------------------------------------------
 * Standard receive slabs (64 KiB) kept across streams, so that the next stream writes into pages
 * already faulted in: on the VMs measured a fresh page costs 6-12 us of page fault, and a small
 * query in threaded mode wrote ~40-70 of them (its producer reads ahead of the consumer into new
 * slabs), about 0.5 ms of CPU per 260 KB query, even on a warm connection, since malloc gives
 * freed heap tops back to the kernel. At most SLAB_CACHE_MAX blocks of one size (512 KiB), only
 * under the default allocator: a hook installed with fw_allocator_set sees every block come and
 * go as before (the cache is emptied first). The lock is taken once per 64 KiB slab. */
#define SLAB_CACHE_MAX 8
static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;
static void *cache[SLAB_CACHE_MAX];
static size_t cache_n, cache_bytes;

static bool hook_is_libc(void)
{
    return hook.malloc_fn == libc_malloc && hook.free_fn == libc_free;
}

void *fw__slab_cache_get(size_t bytes)
{
    if (!hook_is_libc())
        return NULL;
    void *b = NULL;
    pthread_mutex_lock(&cache_mu);
    if (cache_n > 0 && cache_bytes == bytes)
        b = cache[--cache_n];
    pthread_mutex_unlock(&cache_mu);
    return b;
}

bool fw__slab_cache_put(void *block, size_t bytes)
{
    if (!hook_is_libc())
        return false;
    bool kept = false;
    pthread_mutex_lock(&cache_mu);
    if (cache_n == 0)
        cache_bytes = bytes;
    if (cache_n < SLAB_CACHE_MAX && cache_bytes == bytes) {
        cache[cache_n++] = block;
        kept = true;
    }
    pthread_mutex_unlock(&cache_mu);
    return kept;
}

static void slab_cache_empty(void)
{
    pthread_mutex_lock(&cache_mu);
    while (cache_n > 0)
        fw__aligned_free(&fw__alloc, cache[--cache_n]); /* the hook they came from: still in */
    pthread_mutex_unlock(&cache_mu);
}

/* At exit the cached slabs go back to libc, so that a leak checker (valgrind, LeakSanitizer)
 * that sees only their aligned interior pointers does not report them as possibly lost. */
__attribute__((destructor)) static void slab_cache_at_exit(void)
{
    slab_cache_empty();
}

int fw_allocator_set(const fw_allocator_t *a)
{
    slab_cache_empty();
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
