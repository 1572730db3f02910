/* SPDX-License-Identifier: MIT */
/*
 * The incremental reader fed a stream whole, split at every offset, and byte by byte, with every
 * chunk ending flush against a PROT_NONE page (STYLE 24), plus its memory rules.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "guard.h"
#include "pq_samples.h"
#include "proto.h"

typedef struct seen_s {
    uint8_t type[64];
    size_t off[64]; /* offset of each body in the original stream, for comparison */
    size_t len[64];
    int n;
} seen_t;

static const uint8_t *g_stream; /* the original stream, to compare bodies against */

static void record(seen_t *s, const fw__pq_msg_t *m, size_t expect_off)
{
    assert_true(s->n < 64);
    s->type[s->n] = m->type;
    s->off[s->n] = expect_off;
    s->len[s->n] = m->body.len;
    /* the body bytes equal the original's, wherever the reader keeps them */
    assert_memory_equal(m->body.ptr, g_stream + expect_off, m->body.len);
    s->n++;
}

/* Feeds `len` bytes of `stream` in chunks cut at the offsets in cuts[] (ascending), each chunk
 * copied to its own guard page. Collects every message. Returns the last rc of next(). */
static int feed_cuts(const uint8_t *stream, size_t len, const size_t *cuts, size_t ncuts,
                     seen_t *seen, size_t *expect_offs)
{
    fw__pq_reader_t r;
    fw__pq_msg_t m;
    size_t from = 0;
    int rc = 0;
    int idx = 0;

    fw__pq_reader_init(&r, NULL, NULL);
    for (size_t c = 0; c <= ncuts; c++) {
        size_t to = c < ncuts ? cuts[c] : len;
        guard_buf_t g = {0};
        assert_int_equal(guard_put(&g, stream + from, to - from), 0);
        assert_int_equal(fw__pq_reader_feed(&r, g.data, to - from), 0);
        while ((rc = fw__pq_reader_next(&r, &m)) == 1) {
            record(seen, &m, expect_offs[idx]);
            idx++;
        }
        guard_release(&g); /* the reader must not keep pointers into a used-up chunk */
        from = to;
        if (rc < 0)
            break;
    }
    assert_int_equal(fw__pq_reader_buffered(&r), 0);
    fw__pq_reader_free(&r);
    return rc;
}

static tb_t stream;
static size_t body_offs[64];
static int nmsgs;

static int setup(void **state)
{
    (void)state;
    stream.len = 0;
    nmsgs = tb_valid_stream(&stream);
    g_stream = stream.b;
    /* the offsets of each body, found by walking the lengths */
    size_t off = 0;
    for (int i = 0; i < nmsgs; i++) {
        uint32_t n = ((uint32_t)stream.b[off + 1] << 24) | ((uint32_t)stream.b[off + 2] << 16) |
                     ((uint32_t)stream.b[off + 3] << 8) | stream.b[off + 4];
        body_offs[i] = off + 5;
        off += 1 + n;
    }
    assert_int_equal(off, stream.len);
    return 0;
}

static void check_all_seen(const seen_t *s)
{
    assert_int_equal(s->n, nmsgs);
    for (int i = 0; i < nmsgs; i++)
        assert_int_equal(s->type[i], stream.b[body_offs[i] - 5]);
}

static void test_reader_whole_stream_in_one_chunk(void **state)
{
    (void)state;
    seen_t s = {.n = 0};
    assert_int_equal(feed_cuts(stream.b, stream.len, NULL, 0, &s, body_offs), 0);
    check_all_seen(&s);
}

static void test_reader_every_two_part_split(void **state)
{
    (void)state;
    for (size_t cut = 0; cut <= stream.len; cut++) {
        seen_t s = {.n = 0};
        assert_int_equal(feed_cuts(stream.b, stream.len, &cut, 1, &s, body_offs), 0);
        check_all_seen(&s);
    }
}

static void test_reader_byte_by_byte(void **state)
{
    (void)state;
    size_t *cuts = malloc(stream.len * sizeof(size_t));
    assert_non_null(cuts);
    for (size_t i = 0; i < stream.len; i++)
        cuts[i] = i + 1;
    seen_t s = {.n = 0};
    assert_int_equal(feed_cuts(stream.b, stream.len, cuts, stream.len - 1, &s, body_offs), 0);
    check_all_seen(&s);
    free(cuts);
}

static void test_reader_zero_copy_when_the_message_is_inside_the_chunk(void **state)
{
    (void)state;
    fw__pq_reader_t r;
    fw__pq_msg_t m;
    fw__pq_reader_init(&r, NULL, NULL);
    assert_int_equal(fw__pq_reader_feed(&r, stream.b, stream.len), 0);
    assert_int_equal(fw__pq_reader_next(&r, &m), 1);
    assert_ptr_equal(m.body.ptr, stream.b + 5);
    assert_null(r.spill); /* nothing was copied */
    fw__pq_reader_free(&r);
}

static void test_reader_refuses_feed_while_input_is_left(void **state)
{
    (void)state;
    fw__pq_reader_t r;
    fw__pq_msg_t m;
    fw__pq_reader_init(&r, NULL, NULL);
    assert_int_equal(fw__pq_reader_feed(&r, stream.b, stream.len), 0);
    assert_int_equal(fw__pq_reader_next(&r, &m), 1);
    assert_true(fw__pq_reader_buffered(&r) > 0);
    assert_int_equal(fw__pq_reader_feed(&r, stream.b, 1), FW_ESTATE);
    assert_int_equal(fw__pq_reader_feed(&r, NULL, 1), FW_ESTATE);
    fw__pq_reader_free(&r);
}

/* A message announcing 256 MiB must not make the reader allocate 256 MiB up front. */
static void test_reader_grows_the_spill_buffer_only_as_bytes_arrive(void **state)
{
    (void)state;
    fw__pq_reader_t r;
    fw__pq_msg_t m;
    const uint32_t declared = (uint32_t)FW__PQ_DEFAULT_MAX_MESSAGE;
    uint8_t head[16] = {'D', (uint8_t)(declared >> 24), (uint8_t)(declared >> 16),
                        (uint8_t)(declared >> 8), (uint8_t)declared, 0, 1};
    fw__pq_reader_init(&r, NULL, NULL);
    assert_int_equal(fw__pq_reader_feed(&r, head, sizeof(head)), 0);
    assert_int_equal(fw__pq_reader_next(&r, &m), 0);
    assert_int_equal(fw__pq_reader_buffered(&r), sizeof(head));
    assert_true(r.spill_cap <= 256);
    uint8_t chunk[4096];
    memset(chunk, 'x', sizeof(chunk));
    for (int i = 0; i < 64; i++) {
        assert_int_equal(fw__pq_reader_feed(&r, chunk, sizeof(chunk)), 0);
        assert_int_equal(fw__pq_reader_next(&r, &m), 0);
    }
    size_t held = sizeof(head) + 64 * sizeof(chunk);
    assert_int_equal(fw__pq_reader_buffered(&r), held);
    assert_true(r.spill_cap < 2 * held + 256);
    fw__pq_reader_free(&r);
}

static void test_reader_errors_are_sticky_and_earlier_messages_stay_delivered(void **state)
{
    (void)state;
    tb_t t = {.len = 0};
    fw__pq_reader_t r;
    fw__pq_msg_t m;
    tb_begin(&t, 'D'); tb_u16(&t, 1); tb_u32(&t, 2); tb_mem(&t, "{}", 2); tb_end(&t);
    tb_begin(&t, 'D'); tb_u16(&t, 1); tb_u32(&t, 0xfffffffe); tb_end(&t);
    tb_begin(&t, 'Z'); tb_u8(&t, 'I'); tb_end(&t);
    fw__pq_reader_init(&r, NULL, NULL);
    assert_int_equal(fw__pq_reader_feed(&r, t.b, t.len), 0);
    assert_int_equal(fw__pq_reader_next(&r, &m), 1);
    assert_memory_equal(m.u.datarow.cols.ptr + 4, "{}", 2);
    assert_int_equal(fw__pq_reader_next(&r, &m), FW_EPROTO_NEG_LENGTH);
    assert_int_equal(fw__pq_reader_next(&r, &m), FW_EPROTO_NEG_LENGTH);
    assert_int_equal(fw__pq_reader_feed(&r, t.b, t.len), FW_EPROTO_NEG_LENGTH);
    fw__pq_reader_free(&r);
}

static void test_reader_rejects_a_short_length_split_across_chunks(void **state)
{
    (void)state;
    const uint8_t b[] = {'Z', 0, 0, 0, 3};
    fw__pq_reader_t r;
    fw__pq_msg_t m;
    fw__pq_reader_init(&r, NULL, NULL);
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(fw__pq_reader_feed(&r, b + i, 1), 0);
        assert_int_equal(fw__pq_reader_next(&r, &m), 0);
    }
    assert_int_equal(fw__pq_reader_feed(&r, b + 4, 1), 0);
    assert_int_equal(fw__pq_reader_next(&r, &m), FW_EPROTO_SHORT);
    fw__pq_reader_free(&r);
}

static void test_reader_applies_startup_limits_when_asked(void **state)
{
    (void)state;
    const uint8_t b[] = {'E', 0, 0, 0x75, 0x31}; /* 30001 */
    fw__pq_reader_t r;
    fw__pq_msg_t m;
    fw__pq_reader_init(&r, NULL, NULL);
    assert_int_equal(fw__pq_reader_feed(&r, b, sizeof(b)), 0);
    assert_int_equal(fw__pq_reader_next(&r, &m), 0);
    fw__pq_reader_free(&r);
    fw__pq_reader_init(&r, NULL, NULL);
    fw__pq_reader_set_startup(&r, true);
    assert_int_equal(fw__pq_reader_feed(&r, b, sizeof(b)), 0);
    assert_int_equal(fw__pq_reader_next(&r, &m), FW_EPROTO_TOO_LARGE);
    fw__pq_reader_free(&r);
}

static int fail_next;
static void *maybe_realloc(void *ud, void *ptr, size_t size)
{
    (void)ud;
    if (fail_next)
        return NULL;
    return realloc(ptr, size);
}
static void plain_free(void *ud, void *ptr)
{
    (void)ud;
    free(ptr);
}

static void test_reader_reports_allocation_failure_through_the_hook(void **state)
{
    (void)state;
    fw_allocator_t a = {NULL, maybe_realloc, plain_free, NULL};
    fw__pq_reader_t r;
    fw__pq_msg_t m;
    fail_next = 1;
    fw__pq_reader_init(&r, NULL, &a);
    assert_int_equal(fw__pq_reader_feed(&r, stream.b, 3), 0); /* a partial header: must spill */
    assert_int_equal(fw__pq_reader_next(&r, &m), FW_ENOMEM);
    assert_int_equal(fw__pq_reader_next(&r, &m), FW_ENOMEM);
    fw__pq_reader_free(&r);
    fail_next = 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reader_whole_stream_in_one_chunk),
        cmocka_unit_test(test_reader_every_two_part_split),
        cmocka_unit_test(test_reader_byte_by_byte),
        cmocka_unit_test(test_reader_zero_copy_when_the_message_is_inside_the_chunk),
        cmocka_unit_test(test_reader_refuses_feed_while_input_is_left),
        cmocka_unit_test(test_reader_grows_the_spill_buffer_only_as_bytes_arrive),
        cmocka_unit_test(test_reader_errors_are_sticky_and_earlier_messages_stay_delivered),
        cmocka_unit_test(test_reader_rejects_a_short_length_split_across_chunks),
        cmocka_unit_test(test_reader_applies_startup_limits_when_asked),
        cmocka_unit_test(test_reader_reports_allocation_failure_through_the_hook),
    };
    return cmocka_run_group_tests_name("proto_reader", tests, setup, NULL);
}
