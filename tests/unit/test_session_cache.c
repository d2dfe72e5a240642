/* Unit tests for server/session_cache.c: time to live, invalidation (one token, one user,
 * everything), a load that raced with an invalidation, and the bound on its size. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "session_cache.h"
#include "util.h"

/* An entry for token number n of user uid (the token hash is n as 64 hex digits, spread over
 * the sets like a SHA-256 would be). */
static struct session_entry
entry(unsigned n, int64_t uid)
{
    struct session_entry e = {.user_id = uid, .created_at = 1000, .last_seen_at = 2000};
    char seed[32];
    snprintf(seed, sizeof(seed), "token-%u", n);
    sha256_hex(seed, strlen(seed), e.token_hash);
    snprintf(e.user_name, sizeof(e.user_name), "user%lld", (long long)uid);
    snprintf(e.user_role, sizeof(e.user_role), "viewer");
    snprintf(e.csrf_token, sizeof(e.csrf_token), "csrf-%u", n);
    return e;
}

static int
reset(void **state)
{
    (void)state;
    session_cache_clear();
    return 0;
}

static void
test_put_get_and_ttl(void **state)
{
    (void)state;
    struct session_entry e = entry(1, 7), got;
    assert_int_equal(session_cache_get(e.token_hash, 100, 1000, &got), 0);
    session_cache_put(&e, session_cache_generation(), 100);
    assert_int_equal(session_cache_get(e.token_hash, 100, 1000, &got), 1);
    assert_string_equal(got.user_name, "user7");
    assert_string_equal(got.csrf_token, "csrf-1");
    assert_int_equal(got.last_seen_at, 2000);
    assert_int_equal(session_cache_get(e.token_hash, 1100, 1000, &got), 1);
    assert_int_equal(session_cache_get(e.token_hash, 1101, 1000, &got), 0); /* too old */
    /* last-seen moves forward only */
    session_cache_set_last_seen(e.token_hash, 5000);
    session_cache_set_last_seen(e.token_hash, 3000);
    assert_int_equal(session_cache_get(e.token_hash, 200, 1000, &got), 1);
    assert_int_equal(got.last_seen_at, 5000);
    /* a token that is not cached, or malformed, is simply absent */
    struct session_entry other = entry(2, 7);
    assert_int_equal(session_cache_get(other.token_hash, 200, 1000, &got), 0);
    assert_int_equal(session_cache_get("abc", 200, 1000, &got), 0);
}

static void
test_invalidation(void **state)
{
    (void)state;
    struct session_entry a1 = entry(1, 1), a2 = entry(2, 1), b = entry(3, 2), got;
    uint64_t g = session_cache_generation();
    session_cache_put(&a1, g, 10);
    session_cache_put(&a2, g, 10);
    session_cache_put(&b, g, 10);
    session_cache_forget_user(1); /* password, role, disabled, deleted */
    assert_int_equal(session_cache_get(a1.token_hash, 10, 1000, &got), 0);
    assert_int_equal(session_cache_get(a2.token_hash, 10, 1000, &got), 0);
    assert_int_equal(session_cache_get(b.token_hash, 10, 1000, &got), 1);
    session_cache_forget_token(b.token_hash); /* logout, expiry */
    assert_int_equal(session_cache_get(b.token_hash, 10, 1000, &got), 0);
    g = session_cache_generation();
    session_cache_put(&b, g, 10);
    session_cache_clear(); /* purge */
    assert_int_equal(session_cache_get(b.token_hash, 10, 1000, &got), 0);
}

/* A lookup that read the database before an invalidation must not cache what it read: the
 * change it missed would otherwise live on for the TTL. */
static void
test_load_racing_an_invalidation_is_dropped(void **state)
{
    (void)state;
    struct session_entry e = entry(5, 9), got;
    uint64_t before_read = session_cache_generation();
    session_cache_forget_user(9); /* committed by another thread meanwhile */
    session_cache_put(&e, before_read, 10);
    assert_int_equal(session_cache_get(e.token_hash, 10, 1000, &got), 0);
    session_cache_put(&e, session_cache_generation(), 10);
    assert_int_equal(session_cache_get(e.token_hash, 10, 1000, &got), 1);
}

/* More sessions than it holds: memory stays bounded, the newest of each set are kept and a
 * replaced token is not found (it is read from the database again). */
static void
test_bounded(void **state)
{
    (void)state;
    enum { N = SESSION_CACHE_SETS * SESSION_CACHE_WAYS * 4 };
    uint64_t g = session_cache_generation();
    for (unsigned i = 0; i < N; i++) {
        struct session_entry e = entry(i, i);
        session_cache_put(&e, g, 1 + i);
    }
    int found = 0;
    struct session_entry got;
    for (unsigned i = 0; i < N; i++) {
        struct session_entry e = entry(i, i);
        if (session_cache_get(e.token_hash, N, N + 10, &got)) {
            assert_int_equal(got.user_id, (int64_t)i);
            found++;
        }
    }
    assert_true(found <= SESSION_CACHE_SETS * SESSION_CACHE_WAYS);
    assert_true(found >= SESSION_CACHE_SETS * SESSION_CACHE_WAYS / 2);
    /* the last one put is always there */
    struct session_entry last = entry(N - 1, N - 1);
    assert_int_equal(session_cache_get(last.token_hash, N, N + 10, &got), 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_put_get_and_ttl, reset),
        cmocka_unit_test_setup(test_invalidation, reset),
        cmocka_unit_test_setup(test_load_racing_an_invalidation_is_dropped, reset),
        cmocka_unit_test_setup(test_bounded, reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
