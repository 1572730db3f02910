/* SPDX-License-Identifier: MIT */
/*
 * Test helper: place bytes so they end flush against a PROT_NONE page (STYLE 24), so a parser
 * that reads one byte past its input faults at once instead of reading stale memory.
 */
#ifndef FW_TEST_GUARD_H
#define FW_TEST_GUARD_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct guard_buf_s {
    uint8_t *map;  /* whole mapping */
    size_t map_len;
    uint8_t *data; /* the copied bytes; data + len is the first byte of the guard page */
} guard_buf_t;

/* Copies src[0..len) to the end of a readable region followed by an inaccessible page.
 * Returns 0, or -1 if the mapping failed. */
static inline int guard_put(guard_buf_t *g, const void *src, size_t len)
{
    memset(g, 0, sizeof(*g));
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t data_pages = (len + page - 1) / page;
    if (data_pages == 0)
        data_pages = 1;
    g->map_len = (data_pages + 1) * page;
    void *m = mmap(NULL, g->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return -1;
    g->map = m;
    if (mprotect(g->map + data_pages * page, page, PROT_NONE) != 0) {
        munmap(g->map, g->map_len);
        return -1;
    }
    g->data = g->map + data_pages * page - len;
    if (len > 0)
        memcpy(g->data, src, len);
    return 0;
}

static inline void guard_release(guard_buf_t *g)
{
    munmap(g->map, g->map_len);
    g->map = NULL;
}

#endif
