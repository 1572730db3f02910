/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the backend decoder: framing, typed parsing, every iterator, and the
 * incremental reader with chunk boundaries chosen by the input; and, differentially, the
 * streaming DataRow fast path against the full parser.
 *
 * Input layout: byte 0 picks the limits and the startup flag, byte 1 seeds the chunk sizes;
 * the rest is the byte stream "from the server".
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile size_t sink; /* keeps the walks from being optimised away */

static void walk(const fw__pq_msg_t *m)
{
    fw__pq_iter_t it;
    switch (m->type) {
    case 'T': {
        fw__pq_field_t f;
        fw__pq_rowdesc_iter_init(&it, m);
        while (fw__pq_rowdesc_next(&it, &f) == 1)
            sink += f.name.len + f.type_oid;
        break;
    }
    case 'D': {
        fw__pq_col_t c;
        fw__pq_datarow_iter_init(&it, m);
        while (fw__pq_datarow_next(&it, &c) == 1)
            sink += c.value.len + (c.value.len ? c.value.ptr[c.value.len - 1] : 0);
        if (fw__pq_datarow_one(m, &c) == 0)
            sink += c.value.len;
        break;
    }
    case 'E':
    case 'N': {
        fw__pq_error_fields_t f;
        uint8_t code;
        fw_slice_t v;
        fw__pq_notice_iter_init(&it, m);
        while (fw__pq_notice_next(&it, &code, &v) == 1)
            sink += v.len + code;
        if (fw__pq_error_fields(m, &f) == 0)
            sink += f.message.len + f.sqlstate.len;
        break;
    }
    case 'R':
        if (m->u.auth.code == FW__PQ_AUTH_SASL) {
            fw_slice_t s;
            fw__pq_sasl_iter_init(&it, m);
            while (fw__pq_strlist_next(&it, &s) == 1)
                sink += s.len;
        }
        break;
    case 'K': /* 4..256 key bytes (3.0 or 3.2): every one must be readable */
        for (size_t i = 0; i < m->u.key.secret.len; i++)
            sink += m->u.key.secret.ptr[i];
        sink += (size_t)m->u.key.pid;
        break;
    case 'v': {
        fw_slice_t s;
        sink += m->u.negotiate.version;
        fw__pq_negotiate_iter_init(&it, m);
        while (fw__pq_strlist_next(&it, &s) == 1)
            sink += s.len;
        break;
    }
    case 't':
        for (uint16_t i = 0; i < m->u.paramdesc.nparams; i++)
            sink += fw__pq_paramdesc_oid(m, i);
        break;
    default:
        sink += m->body.len;
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    fw__pq_limits_t lim;
    fw__pq_limits_init(&lim);
    lim.startup = (data[0] & 1) != 0;
    if (data[0] & 2)
        lim.max_message = 4096; /* small caps make the limit paths reachable */
    if (data[0] & 4)
        lim.max_short = 64;
    unsigned seed = data[1];
    data += 2;
    size -= 2;

    /* 1. the pure framing + parse path over the whole input */
    size_t off = 0;
    while (off < size) {
        fw__pq_frame_t f;
        fw__pq_msg_t m;
        long n = fw__pq_frame(data + off, size - off, &lim, &f, NULL);
        if (n <= 0)
            break;
        int prc = fw__pq_parse(f.type, f.body, f.len, &m);
        if (prc == 0)
            walk(&m);
        if (f.type == 'D') {
            /* Differential: the streaming fast path must accept exactly what the full parser
             * plus fw__pq_datarow_one accept, with the same value. */
            fw__pq_col_t slow, fast;
            int src = prc == 0 ? fw__pq_datarow_one(&m, &slow) : prc;
            int frc = fw__pq_datarow_one_fast(f.body, f.len, &fast);
            if ((src == 0) != (frc == 0))
                __builtin_trap();
            if (src == 0 && (slow.is_null != fast.is_null || slow.value.len != fast.value.len ||
                             (slow.value.len > 0 && slow.value.ptr != fast.value.ptr)))
                __builtin_trap();
        }
        off += (size_t)n;
    }

    /* 2. the reader, chunked by a small generator seeded from the input */
    fw__pq_reader_t r;
    fw__pq_reader_init(&r, &lim, NULL);
    off = 0;
    int rc = 0;
    while (off < size && rc >= 0) {
        seed = seed * 1103515245u + 12345u;
        size_t chunk = 1 + (seed >> 16) % 64;
        if (chunk > size - off)
            chunk = size - off;
        rc = fw__pq_reader_feed(&r, data + off, chunk);
        fw__pq_msg_t m;
        while (rc >= 0 && (rc = fw__pq_reader_next(&r, &m)) == 1)
            walk(&m);
        off += chunk;
    }
    fw__pq_reader_free(&r);
    return 0;
}
