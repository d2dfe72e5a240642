/* Unit tests for the store's connection plumbing (server/store.c): the prepared-statement
 * cache when it is full and when a statement is nested. Each test uses its own database in a
 * temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "store.h"
#include "store_internal.h"
#include "util.h"

struct fx {
    char dir[64];
    char path[128];
    struct store *s;
};

static int
fx_setup(void **state)
{
    struct fx *fx = xcalloc(1, sizeof(*fx));
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/consulate-test-store-XXXXXX");
    if (!mkdtemp(fx->dir)) {
        free(fx);
        return -1;
    }
    snprintf(fx->path, sizeof(fx->path), "%s/store.db", fx->dir);
    char err[256];
    fx->s = store_open(fx->path, err, sizeof(err));
    if (!fx->s || store_migrate(fx->s, NULL, NULL) != STORE_OK) {
        return -1;
    }
    *state = fx;
    return 0;
}

static int
fx_teardown(void **state)
{
    struct fx *fx = *state;
    store_close(fx->s);
    const char *suffix[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < ARRAY_LEN(suffix); i++) {
        char p[160];
        snprintf(p, sizeof(p), "%s%s", fx->path, suffix[i]);
        unlink(p);
    }
    rmdir(fx->dir);
    free(fx);
    return 0;
}

/* Runs "SELECT n" through store_prepare/store_finish and returns n as the row gave it. */
static int
select_value(struct store *s, const char *sql)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(store_prepare(s, sql, &st), STORE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int v = sqlite3_column_int(st, 0);
    store_finish(s, st);
    return v;
}

/* More distinct statements than the cache holds: the ones that do not fit are one-off
 * statements, finalized by store_finish (it used to call itself for them, forever). */
static void
test_more_statements_than_the_cache(void **state)
{
    struct fx *fx = *state;
    enum { N = 200 };
    char *sqls[N];
    for (int i = 0; i < N; i++) {
        sqls[i] = xasprintf("SELECT %d", i);
    }
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N; i++) {
            assert_int_equal(select_value(fx->s, sqls[i]), i);
        }
    }
    /* the connection still works for ordinary statements afterwards */
    int64_t n = -1;
    assert_int_equal(store_user_count(fx->s, &n), STORE_OK);
    assert_int_equal(n, 0);
    store_close(fx->s); /* finalizes the cached ones before their text is freed */
    fx->s = NULL;
    for (int i = 0; i < N; i++) {
        free(sqls[i]);
    }
    char err[256];
    fx->s = store_open(fx->path, err, sizeof(err));
    assert_non_null(fx->s);
}

/* The same statement prepared while its cached copy is in use (a nested query) gets a
 * private copy, which store_finish finalizes; the cached copy stays usable. */
static void
test_nested_use_of_one_statement(void **state)
{
    struct fx *fx = *state;
    static const char sql[] = "SELECT 7";
    sqlite3_stmt *outer = NULL, *inner = NULL;
    assert_int_equal(store_prepare(fx->s, sql, &outer), STORE_OK);
    assert_int_equal(sqlite3_step(outer), SQLITE_ROW);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(store_prepare(fx->s, sql, &inner), STORE_OK);
        assert_ptr_not_equal(inner, outer);
        assert_int_equal(sqlite3_step(inner), SQLITE_ROW);
        assert_int_equal(sqlite3_column_int(inner, 0), 7);
        store_finish(fx->s, inner);
    }
    assert_int_equal(sqlite3_column_int(outer, 0), 7);
    store_finish(fx->s, outer);
    assert_int_equal(select_value(fx->s, sql), 7);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_more_statements_than_the_cache, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_nested_use_of_one_statement, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
