/* SPDX-License-Identifier: MIT */
/*
 * Test helper: a tiny builder for backend messages and a set of valid samples covering every
 * backend message type of protocol 3.0, plus the shapes 3.2 adds (a 32-byte cancel key, and
 * NegotiateProtocolVersion as PostgreSQL 15 sends it). Used by the decoder and reader tests and
 * to seed the fuzz corpus.
 */
#ifndef FW_TEST_PQ_SAMPLES_H
#define FW_TEST_PQ_SAMPLES_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct tb_s {
    uint8_t b[4096];
    size_t len;
    size_t start;
} tb_t;

static inline void tb_u8(tb_t *t, uint8_t v)
{
    t->b[t->len++] = v;
}
static inline void tb_u16(tb_t *t, uint16_t v)
{
    tb_u8(t, (uint8_t)(v >> 8));
    tb_u8(t, (uint8_t)v);
}
static inline void tb_u32(tb_t *t, uint32_t v)
{
    tb_u8(t, (uint8_t)(v >> 24));
    tb_u8(t, (uint8_t)(v >> 16));
    tb_u8(t, (uint8_t)(v >> 8));
    tb_u8(t, (uint8_t)v);
}
static inline void tb_mem(tb_t *t, const void *p, size_t n)
{
    memcpy(t->b + t->len, p, n);
    t->len += n;
}
static inline void tb_str(tb_t *t, const char *s)
{
    tb_mem(t, s, strlen(s) + 1);
}
/* Starts a message: type byte and a length placeholder. */
static inline void tb_begin(tb_t *t, uint8_t type)
{
    t->start = t->len;
    tb_u8(t, type);
    tb_u32(t, 0);
}
/* Back-patches the length of the message begun last. */
static inline void tb_end(tb_t *t)
{
    uint32_t n = (uint32_t)(t->len - t->start - 1);
    t->b[t->start + 1] = (uint8_t)(n >> 24);
    t->b[t->start + 2] = (uint8_t)(n >> 16);
    t->b[t->start + 3] = (uint8_t)(n >> 8);
    t->b[t->start + 4] = (uint8_t)n;
}

/* Appends one valid message of each backend type (Copy ones excluded); returns how many. */
static inline int tb_valid_stream(tb_t *t)
{
    int n = 0;
    tb_begin(t, 'R'); tb_u32(t, 10); tb_str(t, "SCRAM-SHA-256-PLUS"); tb_str(t, "SCRAM-SHA-256");
    tb_u8(t, 0); tb_end(t); n++;
    tb_begin(t, 'R'); tb_u32(t, 11); tb_mem(t, "r=abc,s=c2FsdA==,i=4096", 23); tb_end(t); n++;
    tb_begin(t, 'R'); tb_u32(t, 12); tb_mem(t, "v=c2lnbmF0dXJl", 14); tb_end(t); n++;
    tb_begin(t, 'R'); tb_u32(t, 5); tb_mem(t, "\x01\x02\x03\x04", 4); tb_end(t); n++;
    tb_begin(t, 'R'); tb_u32(t, 0); tb_end(t); n++;
    tb_begin(t, 'S'); tb_str(t, "server_version"); tb_str(t, "15.18"); tb_end(t); n++;
    tb_begin(t, 'K'); tb_u32(t, 4242); tb_u32(t, 0xdeadbeef); tb_end(t); n++;
    /* protocol 3.2: a 32-byte key */
    tb_begin(t, 'K'); tb_u32(t, 4243); tb_mem(t, "0123456789abcdef0123456789ABCDEF", 32); tb_end(t);
    n++;
    tb_begin(t, 'N'); tb_u8(t, 'S'); tb_str(t, "NOTICE"); tb_u8(t, 'C'); tb_str(t, "00000");
    tb_u8(t, 'M'); tb_str(t, "hello"); tb_u8(t, 0); tb_end(t); n++;
    tb_begin(t, 'Z'); tb_u8(t, 'I'); tb_end(t); n++;
    tb_begin(t, '1'); tb_end(t); n++;
    tb_begin(t, '2'); tb_end(t); n++;
    tb_begin(t, 't'); tb_u16(t, 2); tb_u32(t, 25); tb_u32(t, 3802); tb_end(t); n++;
    tb_begin(t, 'T'); tb_u16(t, 1); tb_str(t, "data"); tb_u32(t, 16384); tb_u16(t, 1);
    tb_u32(t, 3802); tb_u16(t, 0xffff); tb_u32(t, 0xffffffff); tb_u16(t, 0); tb_end(t); n++;
    tb_begin(t, 'D'); tb_u16(t, 1); tb_u32(t, 9); tb_mem(t, "{\"a\": 1}", 8); tb_u8(t, '\n');
    tb_end(t); n++;
    tb_begin(t, 'D'); tb_u16(t, 1); tb_u32(t, 0xffffffff); tb_end(t); n++;
    tb_begin(t, 'D'); tb_u16(t, 1); tb_u32(t, 0); tb_end(t); n++;
    tb_begin(t, 'A'); tb_u32(t, 77); tb_str(t, "chan"); tb_str(t, "payload"); tb_end(t); n++;
    tb_begin(t, 's'); tb_end(t); n++;
    tb_begin(t, 'C'); tb_str(t, "SELECT 3"); tb_end(t); n++;
    tb_begin(t, 'I'); tb_end(t); n++;
    tb_begin(t, 'n'); tb_end(t); n++;
    tb_begin(t, '3'); tb_end(t); n++;
    tb_begin(t, 'V'); tb_u32(t, 2); tb_mem(t, "ok", 2); tb_end(t); n++;
    tb_begin(t, 'V'); tb_u32(t, 0xffffffff); tb_end(t); n++;
    tb_begin(t, 'v'); tb_u32(t, 0); tb_u32(t, 1); tb_str(t, "_pq_.x"); tb_end(t); n++;
    /* what PostgreSQL 15 answers a StartupMessage for 3.2: "3.0, no options" */
    tb_begin(t, 'v'); tb_u32(t, 196608); tb_u32(t, 0); tb_end(t); n++;
    tb_begin(t, 'E'); tb_u8(t, 'S'); tb_str(t, "ERROR"); tb_u8(t, 'V'); tb_str(t, "ERROR");
    tb_u8(t, 'C'); tb_str(t, "42P01"); tb_u8(t, 'M'); tb_str(t, "relation does not exist");
    tb_u8(t, 'P'); tb_str(t, "15"); tb_u8(t, 'X'); tb_str(t, "unknown code is skipped");
    tb_u8(t, 0); tb_end(t); n++;
    tb_begin(t, 'Z'); tb_u8(t, 'E'); tb_end(t); n++;
    return n;
}

#endif
