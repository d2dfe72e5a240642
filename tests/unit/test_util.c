/* Unit tests for server/util.c: bounded buffers, time parsing and formatting, UTF-8, hex. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util.h"

static void
test_buf_limit(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 10);
    assert_int_equal(buf_puts(&b, "hello"), BUF_OK);
    assert_int_equal(buf_puts(&b, "world"), BUF_OK);
    assert_int_equal(b.len, 10);
    assert_int_equal(buf_puts(&b, "!"), BUF_TOO_BIG);
    assert_int_equal(b.len, 10); /* unchanged */
    assert_string_equal(b.data, "helloworld");
    buf_reset(&b);
    assert_int_equal(buf_printf(&b, "%d-%s", 42, "x"), BUF_OK);
    assert_string_equal(b.data, "42-x");
    assert_int_equal(buf_printf(&b, "%s", "0123456789"), BUF_TOO_BIG);
    assert_string_equal(b.data, "42-x");
    char *s = buf_steal(&b);
    assert_string_equal(s, "42-x");
    free(s);
    assert_null(b.data);
    buf_free(&b);
    /* long formatted output goes through the slow path */
    buf_init(&b, 4096);
    char big[1000];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(buf_printf(&b, "[%s]", big), BUF_OK);
    assert_int_equal(b.len, 1001);
    buf_free(&b);
}

static void
test_time(void **state)
{
    (void)state;
    int64_t ms;
    assert_int_equal(time_parse("2026-11-24T19:54:35.123Z", &ms), 0);
    assert_int_equal(ms, 1795550075123LL);
    char out[40];
    time_format_rfc3339(ms, out, sizeof(out));
    assert_string_equal(out, "2026-11-24T19:54:35.123Z");
    assert_int_equal(time_parse("2026-11-24T21:54:35.123+02:00", &ms), 0);
    assert_int_equal(ms, 1795550075123LL);
    assert_int_equal(time_parse("2026-11-24", &ms), 0);
    assert_int_equal(ms, 1795478400000LL);
    assert_int_equal(time_parse("1795550075123", &ms), 0);
    assert_int_equal(ms, 1795550075123LL);
    assert_int_equal(time_parse("2026-13-01", &ms), -1);
    assert_int_equal(time_parse("yesterday", &ms), -1);
    assert_int_equal(time_parse("", &ms), -1);
    assert_int_equal(time_parse("2026-11-24T19:54:35Zjunk", &ms), -1);
}

static void
test_utf8(void **state)
{
    (void)state;
    assert_true(utf8_valid("plain", 5));
    assert_true(utf8_valid("状态检查", strlen("状态检查")));
    assert_false(utf8_valid("a\0b", 3));
    assert_false(utf8_valid("\xc3", 1));          /* truncated */
    assert_false(utf8_valid("\xc0\xaf", 2));      /* overlong */
    assert_false(utf8_valid("\xed\xa0\x80", 3));  /* surrogate */
    assert_false(utf8_valid("\xf5\x80\x80\x80", 4));
    assert_true(utf8_valid("\xf0\x9f\x98\x80", 4));
}

static void
test_hex_and_hash(void **state)
{
    (void)state;
    char out[65];
    sha256_hex("abc", 3, out);
    assert_string_equal(out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    char r1[33], r2[33];
    random_hex(16, r1);
    random_hex(16, r2);
    assert_int_equal(strlen(r1), 32);
    assert_string_not_equal(r1, r2);
    assert_true(str_ct_equal("abc", "abc"));
    assert_false(str_ct_equal("abc", "abd"));
    assert_false(str_ct_equal("abc", "abcd"));
}

/* json_parse: the nesting limit is checked before cJSON recurses, strings do not count,
 * and the error offset points at the first bracket too many. */
static void
test_json_parse_depth(void **state)
{
    (void)state;
    char text[4096];
    cJSON *j = (cJSON *)1;
    size_t at = 0;
    /* exactly the limit: fine */
    size_t n = 0;
    for (int i = 0; i < JSON_MAX_DEPTH; i++) {
        text[n++] = '[';
    }
    for (int i = 0; i < JSON_MAX_DEPTH; i++) {
        text[n++] = ']';
    }
    text[n] = '\0';
    assert_int_equal(json_parse(text, n, &j, &at), JSON_OK);
    assert_true(cJSON_IsArray(j));
    cJSON_Delete(j);
    /* one more: refused, at the bracket that opens level limit + 1 */
    n = (size_t)snprintf(text, sizeof(text), "{\"a\":");
    for (int i = 0; i < JSON_MAX_DEPTH; i++) {
        text[n++] = '[';
    }
    for (int i = 0; i < JSON_MAX_DEPTH; i++) {
        text[n++] = ']';
    }
    text[n++] = '}';
    text[n] = '\0';
    assert_int_equal(json_parse(text, n, &j, &at), JSON_TOO_DEEP);
    assert_null(j);
    assert_int_equal(at, 5 + JSON_MAX_DEPTH - 1);
    /* unbalanced and huge: refused by the scan, never parsed */
    static char deep[1 << 20];
    memset(deep, '[', sizeof(deep) - 1);
    deep[sizeof(deep) - 1] = '\0';
    assert_int_equal(json_parse(deep, sizeof(deep) - 1, &j, NULL), JSON_TOO_DEEP);
    assert_null(json_parse_str(deep));
    /* brackets in strings, escaped quotes included, are text */
    const char *s = "{\"k\":\"[[[[\\\"[[[[{{{{\"}";
    j = json_parse_str(s);
    assert_non_null(j);
    assert_string_equal(json_get_str(j, "k", ""), "[[[[\"[[[[{{{{");
    cJSON_Delete(j);
    /* syntax errors and trailing garbage */
    assert_int_equal(json_parse("{\"a\":}", 6, &j, &at), JSON_SYNTAX);
    assert_null(j);
    assert_int_equal(json_parse("{} x", 4, &j, &at), JSON_SYNTAX);
    assert_int_equal(json_parse("{} \n", 4, &j, &at), JSON_OK);
    cJSON_Delete(j);
    assert_null(json_parse_str(NULL));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_limit),
        cmocka_unit_test(test_time),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_hex_and_hash),
        cmocka_unit_test(test_json_parse_depth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
