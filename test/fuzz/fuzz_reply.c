/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the reply machine (lib/reply.c), the whole per-message state machine of a
 * streaming query, fed hostile server bytes. Byte 0 picks the options (preamble, explain, small
 * limits, the simple protocol's reply), byte 1 the piece size; the rest is what the server sends. Every input runs twice,
 * whole and in pieces, and the two runs must give the same events, the same end and the same
 * error (a difference is a bug in how partial messages are handled). Rows must point inside the
 * input; every call must consume something, need more, or fail.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "reply.h"

typedef struct run_s {
    uint64_t hash; /* of the event kinds and row bytes, in order */
    long end;      /* the protocol error, 1 for READY, 0 for input exhausted */
    fw_error_t err;
} run_t;

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return h;
}

static void drive(const uint8_t *opt, const uint8_t *in, size_t n, size_t step, run_t *r)
{
    memset(r, 0, sizeof(*r));
    fw__reply_t rp;
    size_t max_message = (opt[0] & 4) ? 64 : FW__PQ_DEFAULT_MAX_MESSAGE;
    size_t max_memory = (opt[0] & 8) ? 256 : (size_t)4 << 20;
    fw__reply_init(&rp, (opt[0] & 1) != 0, (opt[0] & 16) != 0, (opt[0] & 2) != 0, max_message,
                   max_memory, &r->err);
    size_t have = 0, pos = 0;
    for (;;) {
        bool more = have < n;
        if (more)
            have = step == 0 || have + step > n ? n : have + step;
        for (;;) {
            fw__reply_event_t ev;
            long k = fw__reply_next(&rp, in + pos, have - pos, &ev);
            if (k == 0)
                break;
            if (k < 0) {
                r->end = k;
                return;
            }
            if ((size_t)k > have - pos)
                abort(); /* consumed more than it was given */
            /* NONE is how skipped bytes are taken: their count depends on the pieces */
            if (ev.kind != FW__RE_NONE)
                r->hash = mix(r->hash, (uint64_t)ev.kind);
            if (ev.kind == FW__RE_ROW) {
                if (!ev.row.is_null) {
                    const uint8_t *p = (const uint8_t *)ev.row.json;
                    if (p < in + pos || p + ev.row.len > in + pos + (size_t)k)
                        abort(); /* a row outside its message */
                    for (size_t i = 0; i < ev.row.len; i++)
                        r->hash = mix(r->hash, p[i]);
                }
                r->hash = mix(r->hash, ev.row.len + (ev.row.is_null ? 1u << 31 : 0));
            }
            if (ev.kind == FW__RE_READY) {
                r->end = 1;
                return;
            }
            pos += (size_t)k;
        }
        if (!more)
            return;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    const uint8_t *opt = data;
    size_t step = (size_t)data[1] % 17 + 1;
    const uint8_t *in = data + 2;
    size_t n = size - 2;
    run_t whole, parts;
    drive(opt, in, n, 0, &whole);
    drive(opt, in, n, step, &parts);
    if (whole.hash != parts.hash || whole.end != parts.end || whole.err.code != parts.err.code ||
        strcmp(whole.err.message, parts.err.message) != 0)
        abort(); /* the same bytes in pieces must mean the same */
    return 0;
}
