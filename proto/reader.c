/* SPDX-License-Identifier: MIT */
/*
 * The incremental reader: messages out of arbitrary chunks. A message wholly inside the fed
 * chunk is returned in place (zero copy). Only a message that straddles chunks is copied, into a
 * spill buffer that grows with the bytes that have actually arrived, never with the length the
 * server declared (a hostile 2 GiB length costs us nothing until 2 GiB arrive, and the type cap
 * refuses it long before that).
 */
#include "alloc.h"
#include "proto.h"

#include <stdlib.h>
#include <string.h>

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

void fw__pq_alloc_set(fw_allocator_t *dst, const fw_allocator_t *src)
{
    if (src != NULL && src->realloc_fn != NULL && src->free_fn != NULL) {
        *dst = *src;
    } else {
        dst->malloc_fn = NULL; /* proto/ never calls it */
        dst->realloc_fn = libc_realloc;
        dst->free_fn = libc_free;
        dst->ud = NULL;
    }
}

void fw__pq_reader_init(fw__pq_reader_t *r, const fw__pq_limits_t *lim, const fw_allocator_t *alloc)
{
    memset(r, 0, sizeof(*r));
    if (lim != NULL)
        r->lim = *lim;
    else
        fw__pq_limits_init(&r->lim);
    fw__pq_alloc_set(&r->alloc, alloc);
}

void fw__pq_reader_free(fw__pq_reader_t *r)
{
    r->alloc.free_fn(r->alloc.ud, r->spill);
    r->spill = NULL;
    r->spill_len = r->spill_cap = 0;
    r->spill_out = false;
    r->in = NULL;
    r->in_len = 0;
}

void fw__pq_reader_set_startup(fw__pq_reader_t *r, bool startup)
{
    r->lim.startup = startup;
}

static int fail(fw__pq_reader_t *r, int err)
{
    r->err = err;
    r->in = NULL;
    r->in_len = 0;
    return err;
}

/* Appends to the spill buffer, growing by doubling what is held (bounded by what arrived). */
static int spill_append(fw__pq_reader_t *r, const uint8_t *p, size_t n)
{
    if (n > SIZE_MAX - r->spill_len)
        return FW_ENOMEM;
    size_t needed = r->spill_len + n;
    if (needed > r->spill_cap) {
        size_t cap = fw__grow_cap(r->spill_cap, 256, needed);
        uint8_t *np = r->alloc.realloc_fn(r->alloc.ud, r->spill, cap);
        if (np == NULL)
            return FW_ENOMEM;
        r->spill = np;
        r->spill_cap = cap;
    }
    memcpy(r->spill + r->spill_len, p, n);
    r->spill_len = needed;
    return 0;
}

int fw__pq_reader_feed(fw__pq_reader_t *r, const uint8_t *buf, size_t len)
{
    if (r->err < 0)
        return r->err;
    if (r->in_len != 0)
        return FW_ESTATE;
    if (buf == NULL && len != 0)
        return FW_EINVAL;
    r->in = buf;
    r->in_len = len;
    return 0;
}

static int deliver(fw__pq_reader_t *r, const fw__pq_frame_t *f, fw__pq_msg_t *msg)
{
    int rc = fw__pq_parse(f->type, f->body, f->len, msg);
    if (rc < 0) {
        r->err_type = f->type; /* so the error can name the message ("invalid BackendKeyData") */
        return fail(r, rc);
    }
    return 1;
}

int fw__pq_reader_next(fw__pq_reader_t *r, fw__pq_msg_t *msg)
{
    fw__pq_frame_t f;
    size_t need;
    long n;

    if (r->err < 0)
        return r->err;
    if (r->spill_out) { /* the caller is done with the message we lent from the spill buffer */
        r->spill_len = 0;
        r->spill_out = false;
    }

    if (r->spill_len > 0) {
        /* Finish the straddling message: header first, so its caps apply before the body. */
        for (;;) {
            n = fw__pq_frame(r->spill, r->spill_len, &r->lim, &f, &need);
            if (n < 0)
                return fail(r, (int)n);
            if (n > 0)
                break;
            if (r->in_len == 0) {
                r->in = NULL;
                return 0;
            }
            size_t take = need - r->spill_len;
            if (take > r->in_len)
                take = r->in_len;
            int rc = spill_append(r, r->in, take);
            if (rc < 0)
                return fail(r, rc);
            r->in += take;
            r->in_len -= take;
        }
        r->spill_out = true;
        return deliver(r, &f, msg);
    }

    if (r->in_len == 0) {
        r->in = NULL;
        return 0;
    }
    n = fw__pq_frame(r->in, r->in_len, &r->lim, &f, &need);
    if (n < 0)
        return fail(r, (int)n);
    if (n == 0) {
        int rc = spill_append(r, r->in, r->in_len);
        if (rc < 0)
            return fail(r, rc);
        r->in = NULL;
        r->in_len = 0;
        return 0;
    }
    r->in += n;
    r->in_len -= (size_t)n;
    return deliver(r, &f, msg);
}

size_t fw__pq_reader_buffered(const fw__pq_reader_t *r)
{
    return (r->spill_out ? 0 : r->spill_len) + r->in_len;
}
