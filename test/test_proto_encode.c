/* SPDX-License-Identifier: MIT */
/* Frontend encoders against golden bytes, size limits and allocation failure (STYLE 25). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto.h"

#define GOLDEN(buf, ...)                                                         \
    do {                                                                         \
        static const uint8_t expect_[] = {__VA_ARGS__};                          \
        assert_int_equal((buf)->err, 0);                                         \
        assert_int_equal((buf)->len, sizeof(expect_));                           \
        assert_memory_equal((buf)->data, expect_, sizeof(expect_));              \
    } while (0)

static fw__pq_buf_t buf;

static int setup(void **state)
{
    (void)state;
    fw__pq_buf_init(&buf, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fw__pq_buf_free(&buf);
    return 0;
}

static void test_startup_message_matches_golden_bytes(void **state)
{
    (void)state;
    const char *kv[] = {"user", "u", "database", "d", NULL};
    assert_int_equal(fw__pq_put_startup(&buf, kv), 0);
    GOLDEN(&buf, 0, 0, 0, 27, 0, 3, 0, 0, 'u', 's', 'e', 'r', 0, 'u', 0, 'd', 'a', 't', 'a', 'b',
           'a', 's', 'e', 0, 'd', 0, 0);
}

static void test_startup_message_carries_the_requested_protocol_version(void **state)
{
    (void)state;
    const char *kv[] = {"user", "u", NULL};
    /* 3.2 is 196610: 00 03 00 02 */
    assert_int_equal(fw__pq_put_startup_version(&buf, FW__PQ_PROTOCOL_3_2, kv), 0);
    GOLDEN(&buf, 0, 0, 0, 16, 0, 3, 0, 2, 'u', 's', 'e', 'r', 0, 'u', 0, 0);
    assert_int_equal(FW__PQ_PROTOCOL_3_2, 196610);
    fw__pq_buf_reset(&buf);
    assert_int_equal(fw__pq_put_startup_version(&buf, FW__PQ_PROTOCOL_3_0, kv), 0);
    GOLDEN(&buf, 0, 0, 0, 16, 0, 3, 0, 0, 'u', 's', 'e', 'r', 0, 'u', 0, 0);
    /* another major would be a different request (1234.5679 is SSLRequest): refused */
    fw__pq_buf_reset(&buf);
    assert_int_equal(fw__pq_put_startup_version(&buf, FW__PQ_VERSION(1234, 5679), kv), FW_EINVAL);
    assert_int_equal(buf.len, 0);
    fw__pq_buf_reset(&buf);
    assert_int_equal(fw__pq_put_startup_version(&buf, FW__PQ_VERSION(2, 0), kv), FW_EINVAL);
    assert_int_equal(buf.len, 0);
}

static void test_startup_message_refuses_odd_list_and_empty_name(void **state)
{
    (void)state;
    const char *odd[] = {"user", NULL, NULL};
    const char *empty[] = {"", "x", NULL};
    assert_int_equal(fw__pq_put_startup(&buf, odd), FW_EINVAL);
    assert_int_equal(buf.len, 0);
    fw__pq_buf_reset(&buf);
    assert_int_equal(fw__pq_put_startup(&buf, empty), FW_EINVAL);
    assert_int_equal(buf.len, 0);
}

static void test_startup_message_refuses_more_than_the_server_reads(void **state)
{
    (void)state;
    /* The server drops startup packets over 10000 bytes: refuse to send one. */
    char *big = malloc(10001);
    assert_non_null(big);
    memset(big, 'x', 10000);
    big[10000] = '\0';
    const char *kv[] = {"application_name", big, NULL};
    assert_int_equal(fw__pq_put_startup(&buf, kv), FW_ETOOBIG);
    assert_int_equal(buf.len, 0);
    free(big);
}

static void test_ssl_request_matches_golden_bytes(void **state)
{
    (void)state;
    assert_int_equal(fw__pq_put_ssl_request(&buf), 0);
    GOLDEN(&buf, 0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f);
}

static void test_cancel_request_matches_golden_bytes(void **state)
{
    (void)state;
    fw__pq_cancel_key_t key = {.pid = 0x01020304, .len = 4, .secret = {0xff, 0xff, 0xff, 0xff}};
    assert_int_equal(fw__pq_put_cancel_request(&buf, &key), 0);
    GOLDEN(&buf, 0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2e, 1, 2, 3, 4, 0xff, 0xff, 0xff, 0xff);
}

/* Protocol 3.2: the length is 12 + the key's, and every key byte goes out (4, 32, 256). */
static void test_cancel_request_carries_a_3_2_key_whole(void **state)
{
    (void)state;
    fw__pq_cancel_key_t key = {.pid = 7};
    for (size_t i = 0; i < FW__PQ_CANCEL_KEY_MAX; i++)
        key.secret[i] = (uint8_t)(i * 7 + 1);
    const uint16_t lens[] = {4, 32, 256};
    for (size_t j = 0; j < 3; j++) {
        fw__pq_buf_reset(&buf);
        key.len = lens[j];
        assert_int_equal(fw__pq_put_cancel_request(&buf, &key), 0);
        size_t total = 12u + key.len;
        assert_int_equal(buf.len, total);
        const uint8_t head[] = {(uint8_t)(total >> 24), (uint8_t)(total >> 16),
                                (uint8_t)(total >> 8),  (uint8_t)total,
                                0x04, 0xd2, 0x16, 0x2e, 0, 0, 0, 7};
        assert_memory_equal(buf.data, head, sizeof(head));
        assert_memory_equal(buf.data + 12, key.secret, key.len);
    }
    /* no key (0 bytes: BackendKeyData never came), 3 bytes, 257 bytes: nothing is written */
    const uint16_t bad[] = {0, 3, 257};
    for (size_t j = 0; j < 3; j++) {
        fw__pq_buf_reset(&buf);
        key.len = bad[j];
        assert_int_equal(fw__pq_put_cancel_request(&buf, &key), FW_EINVAL);
        assert_int_equal(buf.len, 0);
    }
    fw__pq_buf_reset(&buf);
    assert_int_equal(fw__pq_put_cancel_request(&buf, NULL), FW_EINVAL);
}

static void test_password_message_matches_golden_bytes(void **state)
{
    (void)state;
    assert_int_equal(fw__pq_put_password(&buf, "pw"), 0);
    GOLDEN(&buf, 'p', 0, 0, 0, 7, 'p', 'w', 0);
}

static void test_sasl_initial_response_matches_golden_bytes(void **state)
{
    (void)state;
    const char *first = "n,,n=,r=abc";
    assert_int_equal(fw__pq_put_sasl_initial(&buf, "SCRAM-SHA-256", (const uint8_t *)first, 11),
                     0);
    GOLDEN(&buf, 'p', 0, 0, 0, 33, 'S', 'C', 'R', 'A', 'M', '-', 'S', 'H', 'A', '-', '2', '5', '6',
           0, 0, 0, 0, 11, 'n', ',', ',', 'n', '=', ',', 'r', '=', 'a', 'b', 'c');
}

static void test_sasl_initial_response_without_data_sends_minus_one(void **state)
{
    (void)state;
    assert_int_equal(fw__pq_put_sasl_initial(&buf, "X", NULL, 0), 0);
    GOLDEN(&buf, 'p', 0, 0, 0, 10, 'X', 0, 0xff, 0xff, 0xff, 0xff);
    fw__pq_buf_reset(&buf);
    assert_int_equal(fw__pq_put_sasl_initial(&buf, "", NULL, 0), FW_EINVAL);
    assert_int_equal(buf.len, 0);
}

static void test_sasl_response_matches_golden_bytes(void **state)
{
    (void)state;
    assert_int_equal(fw__pq_put_sasl_response(&buf, (const uint8_t *)"c=biws", 6), 0);
    GOLDEN(&buf, 'p', 0, 0, 0, 10, 'c', '=', 'b', 'i', 'w', 's');
}

static void test_query_matches_golden_bytes(void **state)
{
    (void)state;
    assert_int_equal(fw__pq_put_query(&buf, "SELECT 1"), 0);
    GOLDEN(&buf, 'Q', 0, 0, 0, 13, 'S', 'E', 'L', 'E', 'C', 'T', ' ', '1', 0);
}

static void test_parse_matches_golden_bytes(void **state)
{
    (void)state;
    const uint32_t oids[] = {25};
    assert_int_equal(fw__pq_put_parse(&buf, "", "SELECT $1", 1, oids), 0);
    GOLDEN(&buf, 'P', 0, 0, 0, 21, 0, 'S', 'E', 'L', 'E', 'C', 'T', ' ', '$', '1', 0, 0, 1, 0, 0, 0,
           25);
}

static void test_bind_matches_golden_bytes_with_null_parameter(void **state)
{
    (void)state;
    const fw__pq_param_t params[] = {{(const uint8_t *)"ab", 2, false}, {NULL, 0, true}};
    const int16_t resfmt[] = {0};
    assert_int_equal(fw__pq_put_bind(&buf, "", "", 0, NULL, 2, params, 1, resfmt), 0);
    GOLDEN(&buf, 'B', 0, 0, 0, 24, 0, 0, 0, 0, 0, 2, 0, 0, 0, 2, 'a', 'b', 0xff, 0xff, 0xff, 0xff, 0,
           1, 0, 0);
}

static void test_bind_refuses_bad_format_codes_and_counts(void **state)
{
    (void)state;
    const int16_t bad[] = {2};
    assert_int_equal(fw__pq_put_bind(&buf, "", "", 1, bad, 0, NULL, 0, NULL), FW_EINVAL);
    assert_int_equal(buf.len, 0);
    fw__pq_buf_reset(&buf);
    assert_int_equal(fw__pq_put_bind(&buf, "", "", 0, NULL, 65536, NULL, 0, NULL), FW_EINVAL);
    assert_int_equal(buf.len, 0);
}

static void test_describe_close_execute_and_empty_messages_match_golden_bytes(void **state)
{
    (void)state;
    assert_int_equal(fw__pq_put_describe(&buf, 'P', ""), 0);
    assert_int_equal(fw__pq_put_execute(&buf, "", 0), 0);
    assert_int_equal(fw__pq_put_close(&buf, 'S', "s1"), 0);
    assert_int_equal(fw__pq_put_sync(&buf), 0);
    assert_int_equal(fw__pq_put_flush(&buf), 0);
    assert_int_equal(fw__pq_put_terminate(&buf), 0);
    GOLDEN(&buf, 'D', 0, 0, 0, 6, 'P', 0, 'E', 0, 0, 0, 9, 0, 0, 0, 0, 0, 'C', 0, 0, 0, 8, 'S', 's',
           '1', 0, 'S', 0, 0, 0, 4, 'H', 0, 0, 0, 4, 'X', 0, 0, 0, 4);
}

static void test_describe_refuses_unknown_kind(void **state)
{
    (void)state;
    assert_int_equal(fw__pq_put_describe(&buf, 'X', ""), FW_EINVAL);
    assert_int_equal(buf.len, 0);
}

static void test_errors_are_sticky_and_roll_back_only_the_failed_message(void **state)
{
    (void)state;
    assert_int_equal(fw__pq_put_sync(&buf), 0);
    assert_int_equal(fw__pq_put_describe(&buf, 'Z', ""), FW_EINVAL);
    assert_int_equal(buf.len, 5); /* the Sync stays, nothing of the Describe */
    assert_int_equal(fw__pq_put_sync(&buf), FW_EINVAL);
    assert_int_equal(buf.len, 5);
    fw__pq_buf_reset(&buf);
    assert_int_equal(fw__pq_put_sync(&buf), 0);
    assert_int_equal(buf.len, 5);
}

/* CVE-2024-27304: sizes near 2^31 and 2^32 must be refused before anything is written; the
 * pointer is never read because the check comes first. */
static void test_bind_refuses_parameters_near_2_pow_31_and_2_pow_32(void **state)
{
    (void)state;
    static const uint8_t one = 1;
    const size_t sizes[] = {(size_t)INT32_MAX + 1, (size_t)UINT32_MAX, (size_t)UINT32_MAX + 1,
                            (size_t)UINT32_MAX + 6, FW__PQ_FRONTEND_MAX + 1, SIZE_MAX};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        fw__pq_param_t p = {&one, sizes[i], false};
        fw__pq_buf_reset(&buf);
        assert_int_equal(fw__pq_put_bind(&buf, "", "", 0, NULL, 1, &p, 0, NULL), FW_ETOOBIG);
        assert_int_equal(buf.len, 0);
        fw__pq_buf_reset(&buf);
        assert_int_equal(fw__pq_put_sasl_response(&buf, &one, sizes[i]), FW_ETOOBIG);
        assert_int_equal(buf.len, 0);
    }
}

/* The per-message cap: default, at the limit, one past (no "disabled": the server's cap holds). */
static void test_message_cap_four_ways(void **state)
{
    (void)state;
    assert_int_equal(buf.max_msg, FW__PQ_FRONTEND_MAX);      /* default */
    buf.max_msg = 13;                                         /* "SELECT 1" has length 13 */
    assert_int_equal(fw__pq_put_query(&buf, "SELECT 1"), 0); /* at the limit */
    assert_int_equal(fw__pq_put_query(&buf, "SELECT 12"), FW_ETOOBIG); /* one past */
    assert_int_equal(buf.len, 14);
    fw__pq_buf_reset(&buf);
    buf.max_msg = 8; /* untyped: SSLRequest's length is 8 */
    assert_int_equal(fw__pq_put_ssl_request(&buf), 0);
    buf.max_msg = 7;
    assert_int_equal(fw__pq_put_ssl_request(&buf), FW_ETOOBIG);
}

static int fail_after;
static void *failing_realloc(void *ud, void *ptr, size_t size)
{
    (void)ud;
    if (fail_after-- <= 0)
        return NULL;
    return realloc(ptr, size);
}
static void plain_free(void *ud, void *ptr)
{
    (void)ud;
    free(ptr);
}

static void test_allocation_failure_is_reported_and_leaves_no_partial_message(void **state)
{
    (void)state;
    fw_allocator_t a = {NULL, failing_realloc, plain_free, NULL};
    fw__pq_buf_t b;
    fail_after = 0;
    fw__pq_buf_init(&b, &a);
    assert_int_equal(fw__pq_put_query(&b, "SELECT 1"), FW_ENOMEM);
    assert_int_equal(b.len, 0);
    fw__pq_buf_free(&b);

    /* The first grow works, the second fails mid-message. */
    fail_after = 1;
    fw__pq_buf_init(&b, &a);
    assert_int_equal(fw__pq_put_sync(&b), 0);
    char big[600];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(fw__pq_put_query(&b, big), FW_ENOMEM);
    assert_int_equal(b.len, 5);
    fw__pq_buf_free(&b);
}

static void test_a_whole_extended_query_batch_round_trips_through_the_frame_walker(void **state)
{
    (void)state;
    const fw__pq_param_t p = {(const uint8_t *)"42", 2, false};
    assert_int_equal(fw__pq_put_parse(&buf, "", "SELECT $1::int", 0, NULL), 0);
    assert_int_equal(fw__pq_put_bind(&buf, "", "", 0, NULL, 1, &p, 0, NULL), 0);
    assert_int_equal(fw__pq_put_describe(&buf, 'P', ""), 0);
    assert_int_equal(fw__pq_put_execute(&buf, "", 0), 0);
    assert_int_equal(fw__pq_put_sync(&buf), 0);
    /* Walk the frontend frames by their length fields: they must tile the buffer exactly. */
    const char types[] = "PBDES";
    size_t off = 0, i = 0;
    while (off < buf.len) {
        assert_true(buf.len - off >= 5);
        assert_int_equal(buf.data[off], (uint8_t)types[i]);
        uint32_t n = ((uint32_t)buf.data[off + 1] << 24) | ((uint32_t)buf.data[off + 2] << 16) |
                     ((uint32_t)buf.data[off + 3] << 8) | buf.data[off + 4];
        off += 1 + n;
        i++;
    }
    assert_int_equal(off, buf.len);
    assert_int_equal(i, 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_startup_message_matches_golden_bytes),
        T(test_startup_message_carries_the_requested_protocol_version),
        T(test_startup_message_refuses_odd_list_and_empty_name),
        T(test_startup_message_refuses_more_than_the_server_reads),
        T(test_ssl_request_matches_golden_bytes),
        T(test_cancel_request_matches_golden_bytes),
        T(test_cancel_request_carries_a_3_2_key_whole),
        T(test_password_message_matches_golden_bytes),
        T(test_sasl_initial_response_matches_golden_bytes),
        T(test_sasl_initial_response_without_data_sends_minus_one),
        T(test_sasl_response_matches_golden_bytes),
        T(test_query_matches_golden_bytes),
        T(test_parse_matches_golden_bytes),
        T(test_bind_matches_golden_bytes_with_null_parameter),
        T(test_bind_refuses_bad_format_codes_and_counts),
        T(test_describe_close_execute_and_empty_messages_match_golden_bytes),
        T(test_describe_refuses_unknown_kind),
        T(test_errors_are_sticky_and_roll_back_only_the_failed_message),
        T(test_bind_refuses_parameters_near_2_pow_31_and_2_pow_32),
        T(test_message_cap_four_ways),
        T(test_allocation_failure_is_reported_and_leaves_no_partial_message),
        T(test_a_whole_extended_query_batch_round_trips_through_the_frame_walker),
#undef T
    };
    return cmocka_run_group_tests_name("proto_encode", tests, NULL, NULL);
}
