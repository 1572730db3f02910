/* SPDX-License-Identifier: MIT */
/* auth/ foundations: strict base64 (RFC 4648 vectors), constant-time compare, MD5 answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "auth.h"

static void test_base64_encodes_rfc4648_vectors(void **state)
{
    (void)state;
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const enc[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=",
                                      "Zm9vYmFy"};
    for (size_t i = 0; i < 7; i++) {
        char out[16];
        uint8_t back[16];
        long n = fw__b64_encode(out, sizeof(out), (const uint8_t *)plain[i], strlen(plain[i]));
        assert_int_equal(n, (long)strlen(enc[i]));
        assert_string_equal(out, enc[i]);
        n = fw__b64_decode(back, sizeof(back), enc[i], strlen(enc[i]));
        assert_int_equal(n, (long)strlen(plain[i]));
        assert_memory_equal(back, plain[i], (size_t)n);
    }
}

static void test_base64_encode_checks_the_output_size(void **state)
{
    (void)state;
    char out[9];
    assert_int_equal(fw__b64_encode(out, 8, (const uint8_t *)"foobar", 6), FW_ETOOBIG);
    assert_int_equal(fw__b64_encode(out, 9, (const uint8_t *)"foobar", 6), 8);
    assert_int_equal(fw__b64_encoded_len(SIZE_MAX), SIZE_MAX);
}

static void test_base64_decode_is_strict(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "Zg=",      /* length not a multiple of 4 */
        "Zg==Zg==", /* padding before the end */
        "Zh==",     /* non-zero bits thrown away by padding: non-canonical */
        "Zm9=",     /* likewise for one '=' */
        "Z===",     /* too much padding */
        "Zm 9",     /* whitespace */
        "Zm9v\n",   /* newline */
        "Zm-_",     /* the URL alphabet is not base64 */
        "=Zm9",
    };
    uint8_t out[16];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(fw__b64_decode(out, sizeof(out), bad[i], strlen(bad[i])), FW_EINVAL);
}

static void test_base64_decode_checks_the_output_size(void **state)
{
    (void)state;
    uint8_t out[6];
    assert_int_equal(fw__b64_decode(out, 5, "Zm9vYmFy", 8), FW_ETOOBIG);
    assert_int_equal(fw__b64_decode(out, 6, "Zm9vYmFy", 8), 6);
    assert_int_equal(fw__b64_decode(out, 0, "", 0), 0);
}

static void test_constant_time_equal_compares_all_bytes(void **state)
{
    (void)state;
    assert_true(fw__ct_equal("abcd", "abcd", 4));
    assert_false(fw__ct_equal("abcd", "abce", 4));
    assert_false(fw__ct_equal("xbcd", "abcd", 4));
    assert_true(fw__ct_equal("a", "b", 0));
}

static void test_wipe_zeroes_the_buffer(void **state)
{
    (void)state;
    char secret[8] = "hunter2";
    fw__wipe(secret, sizeof(secret));
    for (size_t i = 0; i < sizeof(secret); i++)
        assert_int_equal(secret[i], 0);
    fw__wipe(NULL, 4); /* a no-op */
}

/* Known answer: computed independently with
 *   printf 'md5%s' $(printf '%s%s' "$(printf 'secretfw_md5' | md5sum | cut -c1-32)" \
 *          "$(printf '\x01\x02\x03\x04')" | md5sum | cut -c1-32)
 * and cross-checked against PostgreSQL itself by the integration tests of the connect issue. */
static void test_md5_password_matches_known_answer(void **state)
{
    (void)state;
    char out[FW__MD5_PASSWORD_LEN + 1];
    const uint8_t salt[4] = {1, 2, 3, 4};
    assert_int_equal(fw__md5_password(out, "fw_md5", "secret", salt), 0);
    assert_int_equal(strlen(out), FW__MD5_PASSWORD_LEN);
    assert_string_equal(out, "md57bf03070ef3d33b7e4958b52704058f2");
    assert_int_equal(fw__md5_password(out, NULL, "x", salt), FW_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64_encodes_rfc4648_vectors),
        cmocka_unit_test(test_base64_encode_checks_the_output_size),
        cmocka_unit_test(test_base64_decode_is_strict),
        cmocka_unit_test(test_base64_decode_checks_the_output_size),
        cmocka_unit_test(test_constant_time_equal_compares_all_bytes),
        cmocka_unit_test(test_wipe_zeroes_the_buffer),
        cmocka_unit_test(test_md5_password_matches_known_answer),
    };
    return cmocka_run_group_tests_name("auth_basics", tests, NULL, NULL);
}
