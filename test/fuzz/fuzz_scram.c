/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the SCRAM client: hostile server-first and server-final messages, in
 * every channel binding mode, through the whole exchange.
 *
 * Input layout: byte 0 picks the mode (bits 0-1: n / y / p / p with 64-byte data; bit 7 also
 * feeds the rest to the certificate hash), bytes 1-2 (little-endian) choose where the rest is
 * split: server-first = rest[0..split), server-final = rest[split..). The state has a fixed
 * nonce, password "pencil", empty username and an iteration cap of 16, so derive stays cheap.
 * The seeds in corpus/scram/ were computed with an independent SCRAM implementation (Python
 * hashlib) for these parameters: salt "c2FsdHNhbHQ=" (b"saltsalt"), i=16, server nonce suffix
 * "srvNONCE", binding data 32 bytes of 0xab (or 64 of 0xcd).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile size_t sink; /* keeps results from being optimised away */

#define FUZZ_NONCE "rOprNGfwEbeRWgbNEkqO"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t cb32[32], cb64[64];
    fw__scram_opts_t o;
    fw__scram_t s;
    fw_slice_t out;
    char text[512];

    if (size < 3)
        return 0;
    memset(cb32, 0xab, sizeof(cb32));
    memset(cb64, 0xcd, sizeof(cb64));
    uint8_t flags = data[0];
    size_t split = (size_t)data[1] | (size_t)data[2] << 8;
    data += 3;
    size -= 3;
    if (split > size)
        split = size;

    if (flags & 0x80) {
        uint8_t hash[64];
        size_t hlen = 0;
        const char *why = NULL;
        if (fw__scram_cert_hash(data, size, hash, sizeof(hash), &hlen, &why) == 0)
            sink += hlen + hash[0];
        else
            sink += strlen(why);
    }

    fw__scram_opts_init(&o);
    o.password = (const uint8_t *)"pencil";
    o.password_len = 6;
    o.nonce = FUZZ_NONCE;
    o.nonce_len = sizeof(FUZZ_NONCE) - 1;
    o.max_iterations = 16;
    switch (flags & 3) {
    case 0:
        o.channel_binding = FW__SCRAM_CB_NONE;
        break;
    case 1:
        o.channel_binding = FW__SCRAM_CB_NOT_OFFERED;
        break;
    case 2:
        o.channel_binding = FW__SCRAM_CB_SERVER_END_POINT;
        o.cb_data = cb32;
        o.cb_data_len = sizeof(cb32);
        break;
    default:
        o.channel_binding = FW__SCRAM_CB_SERVER_END_POINT;
        o.cb_data = cb64;
        o.cb_data_len = sizeof(cb64);
        break;
    }
    if (fw__scram_init(&s, &o) != 0 || fw__scram_client_first(&s, &out) != 0)
        __builtin_trap(); /* fixed, valid options: cannot fail */
    sink += out.len;

    int rc = fw__scram_server_first(&s, data, split);
    if (rc == 0) {
        if (fw__scram_derive(&s) != 0 || fw__scram_client_final(&s, &out) != 0)
            __builtin_trap(); /* after a parsed server-first these cannot fail */
        sink += out.len + out.ptr[out.len - 1];
        rc = fw__scram_server_final(&s, data + split, size - split);
        if (rc == 0 && !fw__scram_verified(&s))
            __builtin_trap();
    }
    if (rc != 0 && (fw__scram_verified(&s) || fw__scram_fail(&s) == FW__SCRAM_FAIL_NONE))
        __builtin_trap(); /* a failure always has a reason and never verifies */

    bool truncated = false;
    fw_slice_t e = fw__scram_server_error(&s, &truncated);
    sink += e.len + truncated;
    sink += fw__scram_describe(&s, text, sizeof(text));
    sink += fw__scram_describe(&s, text, 7); /* truncating path */
    sink += strlen(fw__scram_fail_str(fw__scram_fail(&s)));
    fw__scram_free(&s);
    return 0;
}
