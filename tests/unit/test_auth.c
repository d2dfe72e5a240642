/* Unit tests for server/auth.c: roles, names, password rules and hashing, tokens. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth.h"

static void
test_roles(void **state)
{
    (void)state;
    assert_int_equal(role_parse("viewer"), ROLE_VIEWER);
    assert_int_equal(role_parse("operator"), ROLE_OPERATOR);
    assert_int_equal(role_parse("approver"), ROLE_APPROVER);
    assert_int_equal(role_parse("admin"), ROLE_ADMIN);
    assert_int_equal(role_parse("Admin"), ROLE_NONE);
    assert_int_equal(role_parse("root"), ROLE_NONE);
    assert_int_equal(role_parse(NULL), ROLE_NONE);
    assert_true(ROLE_VIEWER < ROLE_OPERATOR && ROLE_OPERATOR < ROLE_APPROVER &&
                ROLE_APPROVER < ROLE_ADMIN);
    assert_string_equal(role_name(ROLE_APPROVER), "approver");
}

static void
test_names(void **state)
{
    (void)state;
    assert_true(auth_name_valid("alice"));
    assert_true(auth_name_valid("ops.zhang-san_2"));
    assert_true(auth_name_valid("a@example.com"));
    assert_false(auth_name_valid(""));
    assert_false(auth_name_valid("-lead"));
    assert_false(auth_name_valid("a b"));
    assert_false(auth_name_valid("a/b"));
    assert_false(auth_name_valid("名字"));
    char long_name[70];
    memset(long_name, 'a', 65);
    long_name[65] = '\0';
    assert_false(auth_name_valid(long_name));
}

static void
test_password_rules(void **state)
{
    (void)state;
    assert_non_null(auth_password_problem(NULL));
    assert_non_null(auth_password_problem("short"));
    assert_non_null(auth_password_problem("123456789"));
    assert_null(auth_password_problem("1234567890"));
    /* ten characters, counted as characters not bytes */
    assert_null(auth_password_problem("密码密码密码密码密码"));
    assert_non_null(auth_password_problem("密码密码密码密码密"));
    assert_non_null(auth_password_problem("\xff\xfe invalid utf8"));
}

static void
test_hash_verify(void **state)
{
    (void)state;
    char h1[AUTH_HASH_MAX], h2[AUTH_HASH_MAX];
    assert_int_equal(auth_password_hash("correct horse battery", h1), 0);
    assert_int_equal(auth_password_hash("correct horse battery", h2), 0);
    assert_true(strncmp(h1, "$argon2id$", 10) == 0);
    assert_string_not_equal(h1, h2); /* salted */
    assert_true(auth_password_verify(h1, "correct horse battery"));
    assert_false(auth_password_verify(h1, "correct horse batterY"));
    assert_false(auth_password_verify(h1, ""));
    assert_false(auth_password_verify("garbage", "x"));
}

static void
test_tokens(void **state)
{
    (void)state;
    char a[65], b[65], ha[65], ha2[65];
    auth_token_new(a);
    auth_token_new(b);
    assert_int_equal(strlen(a), 64);
    assert_string_not_equal(a, b);
    for (int i = 0; i < 64; i++) {
        assert_true((a[i] >= '0' && a[i] <= '9') || (a[i] >= 'a' && a[i] <= 'f'));
    }
    auth_token_hash(a, ha);
    auth_token_hash(a, ha2);
    assert_string_equal(ha, ha2);
    assert_string_not_equal(ha, a);
    char pw[21];
    auth_password_generate(pw);
    assert_int_equal(strlen(pw), 20);
    assert_null(auth_password_problem(pw));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roles),     cmocka_unit_test(test_names),
        cmocka_unit_test(test_password_rules), cmocka_unit_test(test_hash_verify),
        cmocka_unit_test(test_tokens),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
