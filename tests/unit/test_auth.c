/* Unit tests for server/auth.c: roles, names, password rules and hashing (and its bound on
 * concurrency), tokens, the login throttle policy. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth.h"
#include "store.h"
#include "util.h"

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

/* ---- the hashing bound ---- */

static void *
hash_one(void *p)
{
    char h[AUTH_HASH_MAX];
    *(int *)p = auth_password_hash("a password of some length", h);
    return NULL;
}

/* Hashes started together run at most AUTH_HASH_CONCURRENCY at a time; the others wait for
 * a slot and then succeed. */
static void
test_hash_concurrency_is_bounded(void **state)
{
    (void)state;
    enum { N = 6 };
    pthread_t th[N];
    int rc[N];
    for (int i = 0; i < N; i++) {
        rc[i] = -99;
        assert_int_equal(pthread_create(&th[i], NULL, hash_one, &rc[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(rc[i], AUTH_HASH_OK);
    }
    assert_true(auth_hash_slots_peak() >= 1);
    assert_true(auth_hash_slots_peak() <= AUTH_HASH_CONCURRENCY);
}

/* With every slot taken, a check waits AUTH_HASH_WAIT_MS and gives up with AUTH_HASH_BUSY
 * (the API's 503) instead of queueing without end; a freed slot is used at once. */
static void
test_hash_busy(void **state)
{
    (void)state;
    char h[AUTH_HASH_MAX];
    assert_int_equal(auth_password_hash("correct horse battery", h), AUTH_HASH_OK);
    for (int i = 0; i < AUTH_HASH_CONCURRENCY; i++) {
        assert_int_equal(auth_hash_slot_take(0), AUTH_HASH_OK);
    }
    assert_int_equal(auth_hash_slot_take(50), AUTH_HASH_BUSY);
    int64_t t0 = time_mono_ms();
    assert_int_equal(auth_password_verify(h, "correct horse battery"), AUTH_HASH_BUSY);
    int64_t waited = time_mono_ms() - t0;
    assert_true(waited >= AUTH_HASH_WAIT_MS - 50 && waited < AUTH_HASH_WAIT_MS + 2000);
    auth_hash_slot_give();
    assert_int_equal(auth_password_verify(h, "correct horse battery"), 1);
    for (int i = 1; i < AUTH_HASH_CONCURRENCY; i++) {
        auth_hash_slot_give();
    }
    assert_true(auth_hash_slots_peak() <= AUTH_HASH_CONCURRENCY);
}

/* ---- the login throttle policy (max 5 failures in 900 s) ---- */

#define NOW 1000000000000LL

static int
policy(int64_t by_user, int64_t user_newest, int64_t by_ip, int64_t ip_oldest,
       int64_t ip_newest, struct auth_refusal *why)
{
    struct store_login_counts c = {.by_user = by_user, .user_newest = user_newest,
                                   .by_ip = by_ip, .ip_oldest = ip_oldest,
                                   .ip_newest = ip_newest};
    return auth_login_policy(&c, 5, 900, NOW, why);
}

static void
test_policy_below_the_limits(void **state)
{
    (void)state;
    struct auth_refusal why;
    assert_int_equal(policy(0, 0, 0, 0, 0, &why), AUTH_OK);
    assert_int_equal(policy(4, NOW, 4, NOW - 10, NOW, &why), AUTH_OK);
    assert_null(why.reason);
}

static void
test_policy_per_address(void **state)
{
    (void)state;
    struct auth_refusal why;
    /* five failures from this address, whatever the names: refused until the oldest ages */
    assert_int_equal(policy(0, 0, 5, NOW - 100000, NOW - 1000, &why), AUTH_THROTTLED);
    assert_non_null(strstr(why.reason, "from this address"));
    assert_int_equal(why.retry_after_s, 800);
}

static void
test_policy_locked_name(void **state)
{
    (void)state;
    struct auth_refusal why;
    /* the name is locked; an address with a failure of its own is refused */
    assert_int_equal(policy(5, NOW - 30000, 1, NOW - 60000, NOW - 60000, &why), AUTH_THROTTLED);
    assert_non_null(strstr(why.reason, "this address has failed too"));
    assert_int_equal(why.retry_after_s, 840);
    /* a clean address: one check per 1 s after the newest failure, then 2, 4, … 60 s */
    static const struct {
        int64_t by_user, delay_s;
    } steps[] = {{5, 1}, {6, 2}, {7, 4}, {8, 8}, {9, 16}, {10, 32}, {11, 60}, {12, 60},
                 {40, 60}};
    for (size_t i = 0; i < ARRAY_LEN(steps); i++) {
        int64_t d = steps[i].delay_s * 1000;
        assert_int_equal(policy(steps[i].by_user, NOW - d + 1, 0, 0, 0, &why), AUTH_THROTTLED);
        char want[64];
        snprintf(want, sizeof(want), "one password check every %d s", (int)steps[i].delay_s);
        assert_string_equal(strstr(why.reason, "one password check"), want);
        assert_int_equal(why.retry_after_s, 1);
        assert_int_equal(policy(steps[i].by_user, NOW - d, 0, 0, 0, &why), AUTH_OK);
    }
    /* a failure in the future (clock step) waits it out rather than letting every try in */
    assert_int_equal(policy(5, NOW + 5000, 0, 0, 0, &why), AUTH_THROTTLED);
    assert_int_equal(why.retry_after_s, 6);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roles),     cmocka_unit_test(test_names),
        cmocka_unit_test(test_password_rules), cmocka_unit_test(test_hash_verify),
        cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_hash_concurrency_is_bounded),
        cmocka_unit_test(test_hash_busy),
        cmocka_unit_test(test_policy_below_the_limits),
        cmocka_unit_test(test_policy_per_address),
        cmocka_unit_test(test_policy_locked_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
