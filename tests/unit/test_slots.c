/* Unit tests for the per-user and total slot counter (server/slots.c), including many threads
 * taking and giving at once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>

#include <cmocka.h>

#include "slots.h"

static void
test_limits(void **state)
{
    (void)state;
    struct slots *s = slots_new(2, 3);
    assert_int_equal(slots_take(s, 1), SLOTS_OK);
    assert_int_equal(slots_take(s, 1), SLOTS_OK);
    assert_int_equal(slots_take(s, 1), SLOTS_USER_FULL);
    assert_int_equal(slots_held(s, 1), 2);
    assert_int_equal(slots_take(s, 2), SLOTS_OK);
    assert_int_equal(slots_take(s, 3), SLOTS_TOTAL_FULL);
    assert_int_equal(slots_total(s), 3);
    slots_give(s, 1);
    assert_int_equal(slots_take(s, 3), SLOTS_OK);
    assert_int_equal(slots_take(s, 1), SLOTS_TOTAL_FULL);
    slots_give(s, 1);
    slots_give(s, 2);
    slots_give(s, 3);
    assert_int_equal(slots_total(s), 0);
    assert_int_equal(slots_held(s, 1), 0);
    /* a user's entry is reused after it emptied */
    for (int64_t u = 0; u < 100; u++) {
        assert_int_equal(slots_take(s, u), SLOTS_OK);
        slots_give(s, u);
    }
    assert_int_equal(slots_total(s), 0);
    slots_free(s);
}

static struct slots *shared;

static void *
churn(void *arg)
{
    int64_t user = (int64_t)(intptr_t)arg;
    for (int i = 0; i < 20000; i++) {
        if (slots_take(shared, user) == SLOTS_OK) {
            slots_give(shared, user);
        }
    }
    return NULL;
}

static void
test_threads(void **state)
{
    (void)state;
    shared = slots_new(3, 8);
    pthread_t t[16];
    for (int i = 0; i < 16; i++) {
        pthread_create(&t[i], NULL, churn, (void *)(intptr_t)(i % 5));
    }
    for (int i = 0; i < 16; i++) {
        pthread_join(t[i], NULL);
    }
    assert_int_equal(slots_total(shared), 0);
    for (int64_t u = 0; u < 5; u++) {
        assert_int_equal(slots_held(shared, u), 0);
    }
    slots_free(shared);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
