/* Unit tests for the store's connection plumbing (server/store.c): the prepared-statement
 * cache when it is full and when a statement is nested, the modes of the files it creates,
 * and the login-failure records. Each test uses its own database in a temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

static int
file_mode(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (int)(st.st_mode & 07777) : -1;
}

/* Under the usual umask 022 a new database is 0600 in new 0700 directories, and SQLite's
 * -wal and -shm files take the database file's mode; a directory that exists keeps its. */
static void
test_new_database_is_private(void **state)
{
    struct fx *fx = *state;
    mode_t old = umask(022);
    char path[200], dir[200], wal[220], shm[220], err[256];
    snprintf(dir, sizeof(dir), "%s/a", fx->dir);
    snprintf(path, sizeof(path), "%s/a/b/private.db", fx->dir);
    struct store *s = store_open(path, err, sizeof(err));
    assert_non_null(s);
    assert_int_equal(store_migrate(s, NULL, NULL), STORE_OK);
    assert_int_equal(store_setting_set(s, "k", "v"), STORE_OK);
    snprintf(wal, sizeof(wal), "%s-wal", path);
    snprintf(shm, sizeof(shm), "%s-shm", path);
    assert_int_equal(file_mode(path), 0600);
    assert_int_equal(file_mode(wal), 0600);
    assert_int_equal(file_mode(shm), 0600);
    assert_int_equal(file_mode(dir), 0700);
    snprintf(dir, sizeof(dir), "%s/a/b", fx->dir);
    assert_int_equal(file_mode(dir), 0700);
    store_close(s);

    /* an existing directory with a looser mode is not changed; the file is still 0600 */
    snprintf(dir, sizeof(dir), "%s/open", fx->dir);
    assert_int_equal(mkdir(dir, 0755), 0);
    snprintf(path, sizeof(path), "%s/open/x.db", fx->dir);
    s = store_open(path, err, sizeof(err));
    assert_non_null(s);
    assert_int_equal(file_mode(dir), 0755);
    assert_int_equal(file_mode(path), 0600);
    store_close(s);
    /* a file the operator loosened is opened as it is (a warning is logged) */
    assert_int_equal(chmod(path, 0640), 0);
    s = store_open(path, err, sizeof(err));
    assert_non_null(s);
    assert_int_equal(file_mode(path), 0640);
    store_close(s);
    umask(old);
    const char *rm[] = {"a/b/private.db", "a/b/private.db-wal", "a/b/private.db-shm", "a/b",
                        "a", "open/x.db", "open/x.db-wal", "open/x.db-shm", "open"};
    for (size_t i = 0; i < ARRAY_LEN(rm); i++) {
        char p[300];
        snprintf(p, sizeof(p), "%s/%s", fx->dir, rm[i]);
        remove(p);
    }
}

/* Failures count per name and per address; a success deletes the name's failures from its
 * address and detaches the name from the rest, which keep counting for their addresses. */
static void
test_login_failures(void **state)
{
    struct fx *fx = *state;
    struct store *s = fx->s;
    int64_t id = 0;
    assert_int_equal(store_login_failure_add(s, "ann", "10.0.0.1", 1000, NULL), STORE_OK);
    assert_int_equal(store_login_failure_add(s, "ann", "10.0.0.1", 2000, NULL), STORE_OK);
    assert_int_equal(store_login_failure_add(s, "ann", "10.0.0.2", 3000, NULL), STORE_OK);
    assert_int_equal(store_login_failure_add(s, "bob", "10.0.0.2", 4000, &id), STORE_OK);
    assert_true(id > 0);
    struct store_login_counts c;
    assert_int_equal(store_login_failure_count(s, "ann", "10.0.0.2", 0, &c), STORE_OK);
    assert_int_equal(c.by_user, 3);
    assert_int_equal(c.user_newest, 3000);
    assert_int_equal(c.by_ip, 2);
    assert_int_equal(c.ip_oldest, 3000);
    assert_int_equal(c.ip_newest, 4000);
    assert_int_equal(store_login_failure_count(s, "ann", "10.0.0.2", 2500, &c), STORE_OK);
    assert_int_equal(c.by_user, 1);
    assert_int_equal(store_login_failure_count(s, "nobody", "10.9.9.9", 0, &c), STORE_OK);
    assert_true(c.by_user == 0 && c.user_newest == 0 && c.by_ip == 0 && c.ip_oldest == 0);

    assert_int_equal(store_login_failure_delete(s, id), STORE_OK);
    assert_int_equal(store_login_failure_count(s, "bob", "10.0.0.2", 0, &c), STORE_OK);
    assert_int_equal(c.by_user, 0);
    assert_int_equal(c.by_ip, 1);

    assert_int_equal(store_login_failure_forgive(s, "ann", "10.0.0.1"), STORE_OK);
    assert_int_equal(store_login_failure_count(s, "ann", "10.0.0.1", 0, &c), STORE_OK);
    assert_int_equal(c.by_user, 0);
    assert_int_equal(c.by_ip, 0);
    assert_int_equal(store_login_failure_count(s, "ann", "10.0.0.2", 0, &c), STORE_OK);
    assert_int_equal(c.by_ip, 1); /* the failure from the other address still counts there */
    assert_int_equal(store_login_failure_purge(s, 3500), STORE_OK);
    assert_int_equal(store_login_failure_count(s, "", "10.0.0.2", 0, &c), STORE_OK);
    assert_int_equal(c.by_ip, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_more_statements_than_the_cache, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_nested_use_of_one_statement, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_new_database_is_private, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_login_failures, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
