/* SPDX-License-Identifier: MIT */
/* The public error vocabulary: names, messages, libuv pass-through, version. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "fwire.h"

static void test_every_library_code_has_a_distinct_name_and_a_message(void **state)
{
    (void)state;
    static const int codes[] = {
#define CODE(name, value, msg) (value),
        FW_ERRNO_MAP(CODE)
#undef CODE
    };
    static const char *const names[] = {
#define NAME(name, value, msg) "FW_" #name,
        FW_ERRNO_MAP(NAME)
#undef NAME
    };
    size_t n = sizeof(codes) / sizeof(codes[0]);
    for (size_t i = 0; i < n; i++) {
        assert_true(codes[i] <= -30000);
        assert_string_equal(fw_err_name(codes[i]), names[i]);
        assert_true(strlen(fw_strerror(codes[i])) > 0);
        for (size_t j = i + 1; j < n; j++)
            assert_int_not_equal(codes[i], codes[j]);
    }
}

static void test_libuv_codes_pass_through_unchanged(void **state)
{
    (void)state;
    assert_string_equal(fw_err_name(UV_ECONNREFUSED), "ECONNREFUSED");
    assert_string_equal(fw_strerror(UV_ECONNREFUSED), uv_strerror(UV_ECONNREFUSED));
    assert_string_equal(fw_err_name(UV_EOF), "EOF");
}

static void test_unknown_codes_get_a_fixed_answer(void **state)
{
    (void)state;
    assert_string_equal(fw_err_name(-30999), "FW_EUNKNOWN");
    assert_string_equal(fw_strerror(-30999), "unknown error code");
    assert_string_equal(fw_err_name(12345), "FW_EUNKNOWN");
    assert_string_equal(fw_err_name(3), "FW_EUNKNOWN");
}

/* 0, 1 and 2 are fw_stream_next's results, not unknown codes (issue 19). */
static void test_stream_results_have_their_names(void **state)
{
    (void)state;
    assert_string_equal(fw_err_name(FW_END), "FW_END");
    assert_string_equal(fw_err_name(FW_ROW), "FW_ROW");
    assert_string_equal(fw_err_name(FW_AGAIN), "FW_AGAIN");
    assert_string_equal(fw_strerror(FW_END), "end of stream: every row was delivered");
    assert_string_not_equal(fw_strerror(FW_AGAIN), "unknown error code");
    assert_string_not_equal(fw_strerror(FW_ROW), "unknown error code");
}

static void test_version_matches_the_header(void **state)
{
    (void)state;
    assert_int_equal(fw_version(), FW_VERSION_HEX);
    char expect[32];
    snprintf(expect, sizeof(expect), "%d.%d.%d", FW_VERSION_MAJOR, FW_VERSION_MINOR,
             FW_VERSION_PATCH);
    assert_string_equal(fw_version_string(), expect);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_library_code_has_a_distinct_name_and_a_message),
        cmocka_unit_test(test_libuv_codes_pass_through_unchanged),
        cmocka_unit_test(test_unknown_codes_get_a_fixed_answer),
        cmocka_unit_test(test_stream_results_have_their_names),
        cmocka_unit_test(test_version_matches_the_header),
    };
    return cmocka_run_group_tests_name("lib_errors", tests, NULL, NULL);
}
