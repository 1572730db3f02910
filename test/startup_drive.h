/* SPDX-License-Identifier: MIT */
/*
 * Test helper: drives the sans-I/O startup machine (lib/startup.h) to its end over any byte
 * transport the test supplies (a plain socket, the TLS engine over a socket). Include after
 * <cmocka.h>.
 */
#ifndef FW_TEST_STARTUP_DRIVE_H
#define FW_TEST_STARTUP_DRIVE_H

#include "startup.h"

typedef struct drive_io_s {
    /* sends all of p[0..n), failing the test on error */
    void (*send)(void *ctx, const uint8_t *p, size_t n);
    /* receives at least one byte into buf[0..cap), failing the test at the end of the stream */
    size_t (*recv)(void *ctx, uint8_t *buf, size_t cap);
    void *ctx;
} drive_io_t;

/* Runs one startup exchange to READY or FAILED (derivations inline); returns the result. */
static inline fw__su_result_t drive_startup(fw__startup_t *su, const fw__startup_opts_t *o,
                                            const drive_io_t *io)
{
    fw__pq_buf_t out;
    static uint8_t buf[65536];
    fw__pq_buf_init(&out, NULL);
    assert_int_equal(fw__startup_init(su, o, &out), 0);
    fw__su_result_t r = fw__startup_begin(su);
    while (r == FW__SU_CONTINUE || r == FW__SU_DERIVE) {
        if (r == FW__SU_DERIVE) {
            r = fw__startup_derived(su, fw__startup_derive_work(su));
            continue;
        }
        if (out.len > 0) {
            io->send(io->ctx, out.data, out.len);
            fw__pq_buf_reset(&out);
        }
        size_t n = io->recv(io->ctx, buf, sizeof(buf));
        r = fw__startup_feed(su, buf, n);
    }
    fw__pq_buf_free(&out);
    return r;
}

#endif
