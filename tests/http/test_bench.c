/* test_bench: a benchmark's verdict is honest. scripts/bench.sh prints a missed target as
 * MISSED without failing and exits 1 when a benchmark exits non-zero; bench_audit exits 1
 * (and says FAILED) when the audit chain it verifies is broken, and 0 on an intact one.
 * Needs CONSULATE_BIN (bench_audit is $(dirname CONSULATE_BIN)/tests/bench/bench_audit, or
 * BENCH_AUDIT_BIN) and CONSULATE_SRC. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store.h"
#include "util.h"

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void
rm_tree(const char *dir)
{
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Runs argv with the extra environment (NAME=value strings, NULL-terminated) and returns
 * the exit status (-1 when it did not exit); *out gets stdout and stderr (caller frees). */
static int
run(char *const *argv, const char *const *env, char **out)
{
    char tmpl[] = "/tmp/consulate-test-bench-out.XXXXXX";
    int fd = mkstemp(tmpl);
    assert_true(fd >= 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        for (size_t i = 0; env && env[i]; i++) {
            putenv((char *)env[i]);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    *out = file_read_all(tmpl, 16 << 20, NULL);
    close(fd);
    unlink(tmpl);
    assert_non_null(*out);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void
write_script(const char *path, const char *body)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "#!/bin/sh\n%s\n", body);
    fclose(f);
    assert_int_equal(chmod(path, 0755), 0);
}

static void
test_bench_sh_verdicts(void **state)
{
    (void)state;
    char dir[] = "/tmp/consulate-test-bench.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *ok = xasprintf("%s/bench_ok", dir);
    char *missed = xasprintf("%s/bench_missed", dir);
    char *wrong = xasprintf("%s/bench_wrong", dir);
    write_script(ok, "echo '  fast enough      1 ms   <= 2 ms  ok'");
    write_script(missed, "echo '  fast enough      9 ms   <= 2 ms  MISSED'");
    write_script(wrong, "echo '  rows exported    9      all      FAILED'; exit 1");
    const char *src = getenv("CONSULATE_SRC");
    char *script = xasprintf("%s/scripts/bench.sh", src && *src ? src : ".");
    /* No server binary: the idle-memory row is left out, only the benchmarks given count. */
    const char *const env[] = {"CONSULATE_BIN=/nonexistent/consulate", NULL};

    char *out = NULL;
    char *argv1[] = {script, ok, missed, NULL};
    assert_int_equal(run(argv1, env, &out), 0); /* a missed target does not fail the run */
    assert_non_null(strstr(out, "MISSED"));
    assert_non_null(strstr(out, "bench: 2 benchmark(s), 1 target(s) MISSED, failed: none"));
    free(out);

    char *argv2[] = {script, ok, wrong, missed, NULL};
    assert_int_equal(run(argv2, env, &out), 1); /* a wrong answer does */
    assert_non_null(strstr(out, "bench_wrong failed (exit 1)"));
    assert_non_null(strstr(out, "bench: 3 benchmark(s), 1 target(s) MISSED, failed: bench_wrong"));
    free(out);
    free(script);
    free(ok);
    free(missed);
    free(wrong);
    rm_tree(dir);
}

/* A small audit database where bench_audit looks for its cached one ($BUILD/bench/
 * audit-1m.db), with n chained entries written by the store, as the server writes them. */
static char *
small_audit_db(const char *build, int n)
{
    char *bench_dir = xasprintf("%s/bench", build);
    assert_int_equal(mkdir(bench_dir, 0755), 0);
    char *path = xasprintf("%s/audit-1m.db", bench_dir);
    free(bench_dir);
    char err[256];
    struct store *s = store_open(path, err, sizeof(err));
    assert_non_null(s);
    assert_int_equal(store_migrate(s, NULL, NULL), STORE_OK);
    for (int i = 0; i < n; i++) {
        char target[32];
        snprintf(target, sizeof(target), "kv/app/%d", i);
        struct audit_entry e = {"alice", "operator",  "127.0.0.1", "consul.kv.put",
                                target,  "{\"n\":1}", "ok"};
        assert_int_equal(store_audit_append(s, &e, NULL), STORE_OK);
    }
    store_close(s);
    return path;
}

/* Changes one stored byte of entry id behind the log's back (its triggers dropped first). */
static void
tamper(const char *path, int id)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT name FROM sqlite_master WHERE type = 'trigger' "
                                        "AND tbl_name = 'audit_log'",
                                        -1, &st, NULL),
                     SQLITE_OK);
    char *drops = xstrdup("");
    while (sqlite3_step(st) == SQLITE_ROW) {
        char *more = xasprintf("%sDROP TRIGGER \"%s\";", drops, sqlite3_column_text(st, 0));
        free(drops);
        drops = more;
    }
    sqlite3_finalize(st);
    char *sql = xasprintf("%s UPDATE audit_log SET detail = '{\"n\":2}' WHERE id = %d;", drops, id);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_changes(db), 1);
    free(sql);
    free(drops);
    sqlite3_close(db);
}

static char *
bench_audit_bin(void)
{
    const char *b = getenv("BENCH_AUDIT_BIN");
    if (b && *b) {
        return xstrdup(b);
    }
    const char *srv = getenv("CONSULATE_BIN");
    char *copy = xstrdup(srv && *srv ? srv : "build/consulate");
    char *out = xasprintf("%s/tests/bench/bench_audit", dirname(copy));
    free(copy);
    return out;
}

static void
test_bench_audit_broken_chain(void **state)
{
    (void)state;
    char *bin = bench_audit_bin();
    if (access(bin, X_OK) != 0) {
        fail_msg("%s is missing (make builds it with the tests)", bin);
    }
    char build[] = "/tmp/consulate-test-bench-audit.XXXXXX";
    assert_non_null(mkdtemp(build));
    char *db = small_audit_db(build, 60);
    char *env_build = xasprintf("BUILD=%s", build);
    const char *const env[] = {env_build, NULL};
    char *argv[] = {bin, NULL};

    /* Intact: every check passes, exit 0. */
    char *out = NULL;
    int rc = run(argv, env, &out);
    if (rc != 0) {
        fail_msg("bench_audit on an intact chain: exit %d\n%s", rc, out);
    }
    assert_null(strstr(out, "FAILED"));
    assert_non_null(strstr(out, "2060 of 2060")); /* 60 entries + its 2,000 writes, verified */
    free(out);

    /* One byte changed in entry 25: the verification finds it and the benchmark fails. */
    tamper(db, 25);
    rc = run(argv, env, &out);
    if (rc != 1) {
        fail_msg("bench_audit on a broken chain: exit %d (want 1)\n%s", rc, out);
    }
    assert_non_null(strstr(out, "FAILED"));
    assert_non_null(strstr(out, "the audit chain is broken (first bad entry 25)"));
    free(out);
    free(env_build);
    free(db);
    free(bin);
    rm_tree(build);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bench_sh_verdicts),
        cmocka_unit_test(test_bench_audit_broken_chain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
