/* cli_backup: `consulate backup FILE` and `consulate restore FILE`. */
#include "cli_backup.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "audit.h"
#include "audit_verify.h"
#include "db_lock.h"
#include "store.h"
#include "util.h"

/* Creates path (mode 0600), failing when it exists. Returns 0 or -1 with errno set. */
static int
create_exclusive(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        return -1;
    }
    int rc = fchmod(fd, 0600);
    close(fd);
    return rc;
}

/* fsync of a file, or of the directory holding path (dir). Returns 0 or -1. */
static int
sync_path(const char *path, int dir)
{
    char *copy = xstrdup(path);
    int fd = open(dir ? dirname(copy) : path, O_RDONLY | O_CLOEXEC | (dir ? O_DIRECTORY : 0));
    free(copy);
    if (fd < 0) {
        return -1;
    }
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* Removes path and the files SQLite may have made beside it. */
static void
unlink_db(const char *path)
{
    static const char *const ext[] = {"", "-journal", "-wal", "-shm"};
    for (size_t i = 0; i < sizeof(ext) / sizeof(ext[0]); i++) {
        char *p = xasprintf("%s%s", path, ext[i]);
        unlink(p);
        free(p);
    }
}

/* Opens an existing database (never creating one). */
static int
open_existing(const char *path, int readonly, sqlite3 **db, char *err, size_t errlen)
{
    int rc =
        sqlite3_open_v2(path, db, readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot open %s: %s", path, *db ? sqlite3_errmsg(*db) : "?");
        sqlite3_close(*db);
        *db = NULL;
        return -1;
    }
    sqlite3_busy_timeout(*db, 10000);
    return 0;
}

/* One integer from sql on db, or -1. */
static long long
query_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    long long v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
        v = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return v;
}

/* Copies the whole of src into the database file dest (existing and empty, or absent) in one
 * read transaction on src (a consistent snapshot while others write), leaves it in rollback
 * journal mode (one self-contained file) and syncs it. Returns 0 or -1 with err set. */
static int
copy_db(sqlite3 *src, const char *dest, char *err, size_t errlen)
{
    sqlite3 *d = NULL;
    if (open_existing(dest, 0, &d, err, errlen) != 0) {
        return -1;
    }
    int rc = SQLITE_ERROR;
    sqlite3_backup *b = sqlite3_backup_init(d, "main", src, "main");
    if (b) {
        /* all pages in one step: one read transaction, so one point in time */
        for (int tries = 0; tries < 200; tries++) {
            rc = sqlite3_backup_step(b, -1);
            if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED) {
                break;
            }
            sqlite3_sleep(50);
        }
        sqlite3_backup_finish(b);
    }
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "copying the database failed: %s",
                 b ? sqlite3_errstr(rc) : sqlite3_errmsg(d));
        sqlite3_close(d);
        return -1;
    }
    char *msg = NULL;
    if (sqlite3_exec(d, "PRAGMA journal_mode=DELETE", NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errlen, "cannot finish the copy: %s", msg ? msg : "?");
        sqlite3_free(msg);
        sqlite3_close(d);
        return -1;
    }
    if (sqlite3_close(d) != SQLITE_OK || sync_path(dest, 0) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", dest, strerror(errno));
        return -1;
    }
    return 0;
}

/* "20261201T230501Z": for the names of the copies kept. */
static void
stamp_now(char *out, size_t len)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, len, "%Y%m%dT%H%M%SZ", &tm);
}

char *
backup_before_migration(const char *db_path, int from, int to, char *err, size_t errlen)
{
    char stamp[32];
    stamp_now(stamp, sizeof(stamp));
    char *copy = xasprintf("%s.pre-migration-%d-%d-%s", db_path, from, to, stamp);
    sqlite3 *src = NULL;
    if (create_exclusive(copy) != 0) {
        snprintf(err, errlen, "cannot create %s: %s", copy, strerror(errno));
        free(copy);
        return NULL;
    }
    if (open_existing(db_path, 0, &src, err, errlen) != 0 || copy_db(src, copy, err, errlen) != 0) {
        sqlite3_close(src);
        unlink_db(copy);
        free(copy);
        return NULL;
    }
    sqlite3_close(src);
    return copy;
}

int
cli_backup_main(const char *db_path, int argc, char **argv)
{
    if (argc != 2 || argv[1][0] == '-') {
        fputs("usage: consulate backup FILE\n", stderr);
        return 2;
    }
    const char *file = argv[1];
    struct stat st;
    if (stat(db_path, &st) != 0 || !S_ISREG(st.st_mode)) {
        fprintf(stderr, "consulate: no database at %s\n", db_path);
        return 1;
    }
    if (create_exclusive(file) != 0) {
        fprintf(stderr, "consulate: cannot create %s: %s%s\n", file, strerror(errno),
                errno == EEXIST ? " (a backup never overwrites a file)" : "");
        return 1;
    }
    char err[1024];
    int fd, serving;
    pid_t holder;
    int lrc = db_lock_take(db_path, DB_LOCK_USE, &fd, &holder, &serving, err, sizeof(err));
    if (lrc == DB_LOCK_HELD) {
        snprintf(err, sizeof(err), "a restore (pid %ld) is replacing the database", (long)holder);
    }
    sqlite3 *src = NULL;
    if (lrc != DB_LOCK_OK || open_existing(db_path, 0, &src, err, sizeof(err)) != 0 ||
        copy_db(src, file, err, sizeof(err)) != 0) {
        sqlite3_close(src);
        db_lock_release(fd);
        unlink_db(file);
        fprintf(stderr, "consulate: backup failed: %s; nothing was written\n", err);
        return 1;
    }
    sqlite3_close(src);
    db_lock_release(fd);
    sqlite3 *d = NULL;
    long long version = -1, entries = -1;
    if (open_existing(file, 1, &d, err, sizeof(err)) == 0) {
        version = query_int(d, "PRAGMA user_version");
        entries = query_int(d, "SELECT count(*) FROM audit_log");
    }
    sqlite3_close(d);
    printf("consulate: backed up %s to %s (schema version %lld, %lld audit entries)\n", db_path,
           file, version, entries);
    printf("consulate: the audit key is not in the backup: keep it apart, and restore both\n");
    return 0;
}

static void
print_problem(const char *code, const char *message, int problem, void *ctx)
{
    (void)ctx;
    if (problem && strncmp(code, "anchor_", 7) != 0) {
        fprintf(stderr, "consulate:   %s (%s)\n", message, code);
    }
}

/* Checks the copy at path: a sound SQLite database, a schema this binary knows, an audit log
 * whose chain and MACs verify under the key. The anchor belongs to the database being
 * replaced, so what verify says of it does not count (the reseal after the restore records
 * it). Returns 0, or 1 after printing why; *entries gets the number of entries. */
static int
check_copy(const char *path, const char *file, const char *key_path, const char *anchor_path,
           long long *entries)
{
    char err[1024];
    struct store *s = store_open(path, err, sizeof(err));
    if (!s) {
        fprintf(stderr, "consulate: %s\n", err);
        return 1;
    }
    int rc = 1;
    struct audit_seal *seal = NULL;
    sqlite3 *db = store_sqlite(s);
    sqlite3_stmt *st = NULL;
    const char *check = NULL;
    if (sqlite3_prepare_v2(db, "PRAGMA quick_check", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        check = (const char *)sqlite3_column_text(st, 0);
    }
    if (!check || strcmp(check, "ok") != 0) {
        fprintf(stderr, "consulate: %s is not a sound consulate database: %s\n", file,
                check ? check : sqlite3_errmsg(db));
        goto out;
    }
    long long version = query_int(db, "PRAGMA user_version");
    if (version > store_latest_version()) {
        fprintf(stderr,
                "consulate: %s has schema version %lld, newer than this consulate (%d): restore "
                "it with the consulate that made it\n",
                file, version, store_latest_version());
        goto out;
    }
    if (version < 1) {
        fprintf(stderr, "consulate: %s is not a consulate database (no schema)\n", file);
        goto out;
    }
    /* an older schema is brought up to date first (this is a private copy), so the log is
     * read as this binary reads it */
    if (store_migrate(s, NULL, NULL) != STORE_OK) {
        fprintf(stderr, "consulate: %s cannot be migrated to schema version %d: %s\n", file,
                store_latest_version(), store_errmsg(s));
        goto out;
    }
    seal = audit_seal_open(key_path, anchor_path, 0);
    struct audit_verify_report r;
    if (audit_verify(s, seal, &r) != STORE_OK) {
        fprintf(stderr, "consulate: cannot read the audit log of %s: %s\n", file, store_errmsg(s));
        goto out;
    }
    int key_problem = r.maced > 0 && r.key != AUDIT_FILE_OK;
    if (r.first_bad_id || r.macs_bad || r.macs_missing || key_problem) {
        fprintf(stderr, "consulate: the audit log of %s does not verify; not restoring it:\n",
                file);
        audit_verify_findings(&r, print_problem, NULL);
        goto out;
    }
    *entries = r.checked;
    rc = 0;
out:
    sqlite3_finalize(st);
    store_close(s);
    audit_seal_free(seal);
    return rc;
}

/* Copies the file at from to a new file to (mode 0600). Returns 0 or -1. */
static int
copy_file(const char *from, const char *to)
{
    size_t len = 0;
    char *data = file_read_all(from, 1 << 20, &len);
    if (!data) {
        return -1;
    }
    int fd = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    int rc = -1;
    if (fd >= 0) {
        rc = write(fd, data, len) == (ssize_t)len && fsync(fd) == 0 ? 0 : -1;
        close(fd);
    }
    free(data);
    return rc;
}

/* Keeps the database being replaced as <db>.pre-restore-<stamp> (a consistent copy, WAL
 * included), then folds its WAL in and removes it, so nothing of it can be replayed onto the
 * restored file. *kept gets the copy's name (NULL: there was no database). Returns 0 or -1. */
static int
keep_previous(const char *db_path, const char *stamp, char **kept, char *err, size_t errlen)
{
    *kept = NULL;
    struct stat st;
    if (stat(db_path, &st) != 0) {
        return 0;
    }
    char *copy = xasprintf("%s.pre-restore-%s", db_path, stamp);
    sqlite3 *cur = NULL;
    if (create_exclusive(copy) != 0) {
        snprintf(err, errlen, "cannot create %s: %s", copy, strerror(errno));
        free(copy);
        return -1;
    }
    if (open_existing(db_path, 0, &cur, err, errlen) != 0 || copy_db(cur, copy, err, errlen) != 0) {
        sqlite3_close(cur);
        unlink_db(copy);
        free(copy);
        return -1;
    }
    sqlite3_exec(cur, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
    sqlite3_close(cur);
    char *wal = xasprintf("%s-wal", db_path);
    char *shm = xasprintf("%s-shm", db_path);
    unlink(wal);
    unlink(shm);
    free(wal);
    free(shm);
    *kept = copy;
    return 0;
}

static int restore_locked(const char *db_path, const char *key_path, const char *anchor_path,
                          const char *file);

int
cli_restore_main(const char *db_path, const char *key_path, const char *anchor_path, int argc,
                 char **argv)
{
    if (argc != 2 || argv[1][0] == '-') {
        fputs("usage: consulate restore FILE\n", stderr);
        return 2;
    }
    const char *file = argv[1];
    struct stat st;
    errno = 0;
    if (stat(file, &st) != 0 || !S_ISREG(st.st_mode)) {
        fprintf(stderr, "consulate: %s: %s\n", file,
                errno ? strerror(errno) : "not a regular file");
        return 1;
    }
    char err[1024];
    int fd, serving;
    pid_t holder;
    int lrc = db_lock_take(db_path, DB_LOCK_REPLACE, &fd, &holder, &serving, err, sizeof(err));
    if (lrc == DB_LOCK_HELD) {
        fprintf(stderr,
                "consulate: %s (pid %ld) %s %s: stop it before restoring; nothing was changed\n",
                serving ? "a consulate server" : "a consulate process", (long)holder,
                serving ? "is serving" : "has open", db_path);
        return 1;
    }
    if (lrc != DB_LOCK_OK) {
        fprintf(stderr, "consulate: %s\n", err);
        return 1;
    }
    int rc = restore_locked(db_path, key_path, anchor_path, file);
    db_lock_release(fd);
    return rc;
}

/* The restore, under the lock: the copy is made beside the database and checked there, so
 * what is checked is what gets renamed into place. */
static int
restore_locked(const char *db_path, const char *key_path, const char *anchor_path, const char *file)
{
    char err[1024];
    char *tmp = xasprintf("%s.restoring", db_path);
    char *kept = NULL, *anchor_kept = NULL;
    int rc = 1;
    unlink_db(tmp); /* a restore cut short before; the lock says nobody else is at it */
    sqlite3 *src = NULL;
    if (create_exclusive(tmp) != 0) {
        fprintf(stderr, "consulate: cannot create %s: %s\n", tmp, strerror(errno));
        goto out;
    }
    if (open_existing(file, 1, &src, err, sizeof(err)) != 0 ||
        copy_db(src, tmp, err, sizeof(err)) != 0) {
        sqlite3_close(src);
        fprintf(stderr, "consulate: %s; nothing was changed\n", err);
        goto fail;
    }
    sqlite3_close(src);
    long long entries = 0;
    if (check_copy(tmp, file, key_path, anchor_path, &entries) != 0) {
        fprintf(stderr, "consulate: nothing was changed\n");
        goto fail;
    }
    /* check_copy's connection put it in WAL mode: back to one file before the rename */
    sqlite3 *t = NULL;
    if (open_existing(tmp, 0, &t, err, sizeof(err)) != 0 ||
        sqlite3_exec(t, "PRAGMA journal_mode=DELETE", NULL, NULL, NULL) != SQLITE_OK) {
        sqlite3_close(t);
        fprintf(stderr, "consulate: %s; nothing was changed\n", err);
        goto fail;
    }
    sqlite3_close(t);
    if (sync_path(tmp, 0) != 0) {
        fprintf(stderr, "consulate: cannot sync %s: %s; nothing was changed\n", tmp,
                strerror(errno));
        goto fail;
    }
    char stamp[32];
    stamp_now(stamp, sizeof(stamp));
    if (keep_previous(db_path, stamp, &kept, err, sizeof(err)) != 0) {
        fprintf(stderr, "consulate: cannot keep the current database: %s; nothing was changed\n",
                err);
        goto fail;
    }
    /* the anchor kept where `audit verify --db <kept copy>` looks for it by default */
    struct stat st;
    char *default_anchor = xasprintf("%s.audit-anchor", db_path);
    if (stat(anchor_path, &st) == 0) {
        anchor_kept = kept && strcmp(anchor_path, default_anchor) == 0
                          ? xasprintf("%s.audit-anchor", kept)
                          : xasprintf("%s.pre-restore-%s", anchor_path, stamp);
        if (copy_file(anchor_path, anchor_kept) != 0) {
            fprintf(stderr,
                    "consulate: cannot keep the audit anchor as %s: %s; nothing was "
                    "changed\n",
                    anchor_kept, strerror(errno));
            free(default_anchor);
            goto fail;
        }
    }
    free(default_anchor);
    if (rename(tmp, db_path) != 0) {
        fprintf(stderr, "consulate: cannot move %s into place: %s; nothing was changed\n", tmp,
                strerror(errno));
        goto fail;
    }
    sync_path(db_path, 1);
    printf("consulate: restored %s from %s (%lld audit entries, chain and MACs verified)\n",
           db_path, file, entries);
    if (kept) {
        printf("consulate: the previous database is kept as %s\n", kept);
    }
    if (anchor_kept) {
        printf("consulate: the previous audit anchor is kept as %s\n", anchor_kept);
    }
    /* the restored log's schema brought up to date, then resealed on the record: the anchor
     * named the replaced log's newest entry, which the restored one may not have */
    struct store *s = store_open(db_path, err, sizeof(err));
    int from = 0, to = 0;
    if (!s || store_migrate(s, &from, &to) != STORE_OK) {
        fprintf(stderr, "consulate: the database is restored but cannot be migrated: %s\n",
                s ? store_errmsg(s) : err);
        store_close(s);
        goto out;
    }
    struct audit_actor cli = {.name = "cli", .role = "", .ip = "local"};
    struct audit_verify_report before;
    int64_t id = 0;
    if (audit_reseal(s, key_path, anchor_path, &cli, &before, &id, err, sizeof(err)) != 0) {
        fprintf(stderr,
                "consulate: the database is restored but its audit log is not resealed: %s "
                "(run consulate audit reseal)\n",
                err);
        store_close(s);
        goto out;
    }
    store_close(s);
    printf("consulate: resealed the audit log: entry %lld (audit.reseal) records the restore "
           "and the anchor names it\n",
           (long long)id);
    rc = 0;
    goto out;
fail:
    unlink_db(tmp);
    if (anchor_kept) {
        unlink(anchor_kept);
    }
    if (kept) {
        unlink_db(kept);
    }
out:
    free(tmp);
    free(kept);
    free(anchor_kept);
    return rc;
}
