/* store: connection, migrations, transactions, users, sessions, login throttling, audit
 * append and settings. See include/store.h. Audit queries live in store_audit.c. */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit.h"
#include "audit_seal.h"
#include "store_internal.h"
#include "util.h"

/* Prepared statements are kept per connection, keyed by the address of their constant SQL
 * text, so a hot path (the session lookup of every request) does not parse SQL again. A
 * statement in use (a nested query with the same text) gets a private one-off copy. */
#define STMT_CACHE 64

struct cached_stmt {
    const char *sql;
    sqlite3_stmt *st;
    int busy;
};

struct store {
    sqlite3 *db;
    char *path;
    struct cached_stmt cache[STMT_CACHE];
    struct audit_seal *seal; /* borrowed; NULL: rows get no MAC, no anchor */
    int64_t pend_id;         /* newest audit entry appended in the open transaction, 0 = none */
    char pend_hash[65];
};

/* ---- the audit seals of databases (see store_audit_seal_register) ---- */

struct seal_reg {
    char *path;
    struct audit_seal *seal;
    struct seal_reg *next;
};
static struct seal_reg *seal_regs;
static pthread_mutex_t seal_regs_lock = PTHREAD_MUTEX_INITIALIZER;

void
store_audit_seal_register(const char *path, struct audit_seal *seal)
{
    pthread_mutex_lock(&seal_regs_lock);
    struct seal_reg **pp = &seal_regs;
    while (*pp && strcmp((*pp)->path, path) != 0) {
        pp = &(*pp)->next;
    }
    if (*pp && !seal) {
        struct seal_reg *gone = *pp;
        *pp = gone->next;
        free(gone->path);
        free(gone);
    } else if (*pp) {
        (*pp)->seal = seal;
    } else if (seal) {
        struct seal_reg *r = xcalloc(1, sizeof(*r));
        r->path = xstrdup(path);
        r->seal = seal;
        *pp = r;
    }
    pthread_mutex_unlock(&seal_regs_lock);
}

static struct audit_seal *
seal_lookup(const char *path)
{
    pthread_mutex_lock(&seal_regs_lock);
    struct seal_reg *r = seal_regs;
    while (r && strcmp(r->path, path) != 0) {
        r = r->next;
    }
    struct audit_seal *seal = r ? r->seal : NULL;
    pthread_mutex_unlock(&seal_regs_lock);
    return seal;
}

void
store_set_audit_seal(struct store *s, struct audit_seal *seal)
{
    s->seal = seal;
}

struct audit_seal *
store_audit_seal(struct store *s)
{
    return s->seal;
}

sqlite3 *
store_sqlite(struct store *s)
{
    return s->db;
}

const char *
store_path(struct store *s)
{
    return s->path;
}

const char *
store_errmsg(struct store *s)
{
    return s && s->db ? sqlite3_errmsg(s->db) : "no database";
}

/* Creates every missing directory of path's parent, like mkdir -p, each new one with mode
 * 0700; directories that exist keep the mode their owner chose. */
static int
mkdir_parents(const char *path)
{
    char *copy = xstrdup(path);
    char *dir = dirname(copy);
    int rc = 0;
    for (char *p = dir + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
                rc = -1;
            }
            *p = '/';
        }
    }
    if (rc == 0 && mkdir(dir, 0700) != 0 && errno != EEXIST) {
        rc = -1;
    }
    free(copy);
    return rc;
}

/* Creates the database file with mode 0600 when it does not exist yet: SQLite would create
 * it 0644 (less the umask), and it holds password hashes and the values recorded in audit
 * details. SQLite gives the -wal and -shm files it creates the mode of the database file.
 * An existing file is left as its owner set it, with a warning (once per process) when
 * group or others may read it. Returns 0, or -1 with a message in err. */
static int
db_file_create(const char *path, char *err, size_t errlen)
{
    static pthread_mutex_t warn_lock = PTHREAD_MUTEX_INITIALIZER;
    static int warned;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd >= 0) {
        close(fd);
        return 0;
    }
    if (errno != EEXIST) {
        snprintf(err, errlen, "cannot create database %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 077)) {
        pthread_mutex_lock(&warn_lock);
        if (!warned) {
            warned = 1;
            log_warn("store: database %s has mode %04o: group or others may read it, and it "
                     "holds password hashes and audited values; chmod 600 it",
                     path, (unsigned)(st.st_mode & 07777));
        }
        pthread_mutex_unlock(&warn_lock);
    }
    return 0;
}

struct store *
store_open(const char *path, char *err, size_t errlen)
{
    int is_file = strcmp(path, ":memory:") != 0 && !str_starts_with(path, "file:");
    if (is_file && mkdir_parents(path) != 0) {
        snprintf(err, errlen, "cannot create the directory of %s: %s", path, strerror(errno));
        return NULL;
    }
    if (is_file && db_file_create(path, err, errlen) != 0) {
        return NULL;
    }
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot open database %s: %s", path,
                 db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, 5000);
    static const char pragmas[] = "PRAGMA journal_mode=WAL;"
                                  "PRAGMA synchronous=NORMAL;"
                                  "PRAGMA foreign_keys=ON;"
                                  "PRAGMA temp_store=MEMORY;";
    char *msg = NULL;
    if (sqlite3_exec(db, pragmas, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errlen, "cannot configure database %s: %s", path, msg ? msg : "?");
        sqlite3_free(msg);
        sqlite3_close(db);
        return NULL;
    }
    struct store *s = xcalloc(1, sizeof(*s));
    s->db = db;
    s->path = xstrdup(path);
    s->seal = seal_lookup(path);
    return s;
}

void
store_close(struct store *s)
{
    if (!s) {
        return;
    }
    for (int i = 0; i < STMT_CACHE; i++) {
        sqlite3_finalize(s->cache[i].st);
    }
    sqlite3_close_v2(s->db);
    free(s->path);
    free(s);
}

/* ---- per-thread connections ---- */

static pthread_key_t thread_key;
static pthread_once_t thread_once = PTHREAD_ONCE_INIT;

static void
thread_store_free(void *p)
{
    store_close(p);
}

static void
thread_key_make(void)
{
    pthread_key_create(&thread_key, thread_store_free);
}

struct store *
store_thread(const char *path)
{
    pthread_once(&thread_once, thread_key_make);
    struct store *s = pthread_getspecific(thread_key);
    if (s && strcmp(s->path, path) == 0) {
        return s;
    }
    if (s) {
        store_close(s);
        pthread_setspecific(thread_key, NULL);
    }
    char err[512];
    s = store_open(path, err, sizeof(err));
    if (!s) {
        log_error("store: %s", err);
        return NULL;
    }
    pthread_setspecific(thread_key, s);
    return s;
}

void
store_thread_release(void)
{
    pthread_once(&thread_once, thread_key_make);
    struct store *s = pthread_getspecific(thread_key);
    if (s) {
        pthread_setspecific(thread_key, NULL);
        store_close(s);
    }
}

/* ---- statements ---- */

int
store_prepare(struct store *s, const char *sql, sqlite3_stmt **st)
{
    struct cached_stmt *free_slot = NULL;
    for (int i = 0; i < STMT_CACHE; i++) {
        struct cached_stmt *c = &s->cache[i];
        if (c->sql == sql) {
            if (!c->busy) {
                c->busy = 1;
                *st = c->st;
                return STORE_OK;
            }
            free_slot = NULL;
            break;
        }
        if (!c->sql && !free_slot) {
            free_slot = c;
        }
    }
    unsigned flags = free_slot ? SQLITE_PREPARE_PERSISTENT : 0;
    if (sqlite3_prepare_v3(s->db, sql, -1, flags, st, NULL) != SQLITE_OK) {
        log_error("store: prepare failed: %s", sqlite3_errmsg(s->db));
        sqlite3_finalize(*st);
        *st = NULL;
        return STORE_ERROR;
    }
    if (free_slot) {
        free_slot->sql = sql;
        free_slot->st = *st;
        free_slot->busy = 1;
    }
    return STORE_OK;
}

void
store_finish(struct store *s, sqlite3_stmt *st)
{
    if (!st) {
        return;
    }
    for (int i = 0; i < STMT_CACHE; i++) {
        if (s->cache[i].st == st) {
            sqlite3_reset(st);
            sqlite3_clear_bindings(st);
            s->cache[i].busy = 0;
            return;
        }
    }
    sqlite3_finalize(st); /* a one-off statement (cache full, or its cached copy was busy) */
}

void
store_bind_text(sqlite3_stmt *st, int idx, const char *v)
{
    if (v) {
        sqlite3_bind_text(st, idx, v, -1, SQLITE_TRANSIENT);
    } else {
        sqlite3_bind_null(st, idx);
    }
}

/* Runs a statement that returns no rows and finalizes it. */
int
store_step_done(struct store *s, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    int out = STORE_OK;
    if (rc == SQLITE_CONSTRAINT) {
        out = STORE_CONFLICT;
    } else if (rc == SQLITE_BUSY) {
        out = STORE_ERROR; /* the caller decides whether a busy database is worth a message */
    } else if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        log_error("store: %s", sqlite3_errmsg(s->db));
        out = STORE_ERROR;
    }
    store_finish(s, st);
    return out;
}

static int
exec_sql(struct store *s, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        log_error("store: %s", msg ? msg : sqlite3_errmsg(s->db));
        sqlite3_free(msg);
        return STORE_ERROR;
    }
    return STORE_OK;
}

int
store_exec_v(struct store *s, int must_change, const char *sql, const char *types, va_list ap)
{
    sqlite3_stmt *st;
    if (store_prepare(s, sql, &st)) {
        return STORE_ERROR;
    }
    for (int i = 0; types[i]; i++) {
        switch (types[i]) {
        case 't':
            store_bind_text(st, i + 1, va_arg(ap, const char *));
            break;
        case 'i':
            sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t));
            break;
        default:
            sqlite3_bind_int(st, i + 1, va_arg(ap, int));
            break;
        }
    }
    int rc = store_step_done(s, st);
    if (rc == STORE_OK && must_change && sqlite3_changes(s->db) == 0) {
        rc = STORE_NOT_FOUND;
    }
    return rc;
}

/* store_exec_v with the arguments inline. */
static int
exec_bound(struct store *s, int must_change, const char *sql, const char *types, ...)
{
    va_list ap;
    va_start(ap, types);
    int rc = store_exec_v(s, must_change, sql, types, ap);
    va_end(ap);
    return rc;
}

int
store_begin(struct store *s)
{
    int rc = exec_sql(s, "BEGIN IMMEDIATE");
    if (rc == STORE_OK) {
        s->pend_id = 0;
    }
    return rc;
}

/* The anchor's check that the entry it names is still in the log as anchored (see
 * audit_seal_advance). */
static int
anchor_row_check(void *ctx, int64_t id, const char *hash)
{
    char *have = NULL;
    int rc = store_audit_row_hash((struct store *)ctx, id, &have);
    int out = rc == STORE_OK ? strcmp(have, hash) == 0 : rc == STORE_NOT_FOUND ? 0 : -1;
    free(have);
    return out;
}

/* After a commit (or a rollback: ok 0) forgets the appended entry; after a commit that
 * appended entries, moves the audit anchor to the newest of them. */
static void
anchor_after_tx(struct store *s, int ok)
{
    int64_t id = s->pend_id;
    s->pend_id = 0;
    if (ok && id > 0 && s->seal) {
        audit_seal_advance(s->seal, id, s->pend_hash, anchor_row_check, s);
    }
}

int
store_commit(struct store *s)
{
    int rc = exec_sql(s, "COMMIT");
    if (rc == STORE_OK || sqlite3_get_autocommit(s->db)) {
        anchor_after_tx(s, rc == STORE_OK); /* committed, or rolled back by SQLite */
    }
    return rc;
}

void
store_rollback(struct store *s)
{
    if (!sqlite3_get_autocommit(s->db)) {
        exec_sql(s, "ROLLBACK");
    }
    anchor_after_tx(s, 0);
}

/* ---- migrations ---- */

int
store_latest_version(void)
{
    int v = 0;
    for (const struct store_migration *m = store_migrations; m->sql; m++) {
        if (m->version > v) {
            v = m->version;
        }
    }
    return v;
}

int
store_schema_version(struct store *s, int *version)
{
    sqlite3_stmt *st;
    if (store_prepare(s, "PRAGMA user_version", &st)) {
        return STORE_ERROR;
    }
    int rc = STORE_ERROR;
    if (sqlite3_step(st) == SQLITE_ROW) {
        *version = sqlite3_column_int(st, 0);
        rc = STORE_OK;
    }
    store_finish(s, st);
    return rc;
}

int
store_migrate(struct store *s, int *from, int *to)
{
    int cur;
    if (store_schema_version(s, &cur)) {
        return STORE_ERROR;
    }
    if (from) {
        *from = cur;
    }
    if (to) {
        *to = cur;
    }
    if (cur > store_latest_version()) {
        return STORE_TOO_NEW;
    }
    for (const struct store_migration *m = store_migrations; m->sql; m++) {
        if (m->version <= cur) {
            continue;
        }
        if (store_begin(s)) {
            return STORE_ERROR;
        }
        /* PRAGMA user_version takes no bound parameter; the number is ours, not input. */
        char pragma[64];
        snprintf(pragma, sizeof(pragma), "PRAGMA user_version=%d", m->version);
        if (exec_sql(s, m->sql) || exec_sql(s, pragma)) {
            log_error("store: migration %s failed", m->name);
            store_rollback(s);
            return STORE_ERROR;
        }
        if (store_commit(s)) {
            store_rollback(s);
            return STORE_ERROR;
        }
        cur = m->version;
        if (to) {
            *to = cur;
        }
    }
    return STORE_OK;
}

/* ---- users ---- */

void
store_user_clear(struct store_user *u)
{
    if (u) {
        secret_free_str(u->password_hash);
        memset(u, 0, sizeof(*u));
    }
}

static void
user_from_row(sqlite3_stmt *st, struct store_user *u)
{
    memset(u, 0, sizeof(*u));
    u->id = sqlite3_column_int64(st, 0);
    snprintf(u->name, sizeof(u->name), "%s", (const char *)sqlite3_column_text(st, 1));
    snprintf(u->role, sizeof(u->role), "%s", (const char *)sqlite3_column_text(st, 2));
    u->password_hash = xstrdup((const char *)sqlite3_column_text(st, 3));
    u->disabled = sqlite3_column_int(st, 4);
    u->created_at = sqlite3_column_int64(st, 5);
    u->last_login_at = sqlite3_column_int64(st, 6);
}

#define USER_COLS "id, name, role, password_hash, disabled, created_at, last_login_at"

static int
user_get(struct store *s, const char *sql, const char *name, int64_t id, struct store_user *out)
{
    sqlite3_stmt *st;
    memset(out, 0, sizeof(*out));
    if (store_prepare(s, sql, &st)) {
        return STORE_ERROR;
    }
    if (name) {
        store_bind_text(st, 1, name);
    } else {
        sqlite3_bind_int64(st, 1, id);
    }
    int rc = sqlite3_step(st);
    int out_rc;
    if (rc == SQLITE_ROW) {
        user_from_row(st, out);
        out_rc = STORE_OK;
    } else if (rc == SQLITE_DONE) {
        out_rc = STORE_NOT_FOUND;
    } else {
        out_rc = STORE_ERROR;
    }
    store_finish(s, st);
    return out_rc;
}

int
store_user_get(struct store *s, const char *name, struct store_user *out)
{
    return user_get(s, "SELECT " USER_COLS " FROM users WHERE name = ?1", name, 0, out);
}

int
store_user_get_by_id(struct store *s, int64_t id, struct store_user *out)
{
    return user_get(s, "SELECT " USER_COLS " FROM users WHERE id = ?1", NULL, id, out);
}

int
store_user_each(struct store *s, store_user_cb cb, void *ctx)
{
    sqlite3_stmt *st;
    if (store_prepare(s, "SELECT " USER_COLS " FROM users ORDER BY name", &st)) {
        return STORE_ERROR;
    }
    int rc, out = STORE_OK;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct store_user u;
        user_from_row(st, &u);
        int stop = cb(&u, ctx);
        store_user_clear(&u);
        if (stop) {
            out = STORE_STOP;
            break;
        }
    }
    if (out == STORE_OK && rc != SQLITE_DONE) {
        out = STORE_ERROR;
    }
    store_finish(s, st);
    return out;
}

/* Runs a one-row, one-integer query with an optional text parameter. */
int
store_query_int(struct store *s, const char *sql, const char *param, int64_t *n)
{
    sqlite3_stmt *st;
    if (store_prepare(s, sql, &st)) {
        return STORE_ERROR;
    }
    if (param) {
        store_bind_text(st, 1, param);
    }
    int out = STORE_ERROR;
    if (sqlite3_step(st) == SQLITE_ROW) {
        *n = sqlite3_column_int64(st, 0);
        out = STORE_OK;
    }
    store_finish(s, st);
    return out;
}

int
store_query_text(struct store *s, const char *sql, const char *tparam, int64_t iparam, char **out)
{
    sqlite3_stmt *st;
    *out = NULL;
    if (store_prepare(s, sql, &st)) {
        return STORE_ERROR;
    }
    if (tparam) {
        store_bind_text(st, 1, tparam);
    } else {
        sqlite3_bind_int64(st, 1, iparam);
    }
    int rc = sqlite3_step(st), out_rc;
    if (rc == SQLITE_ROW) {
        const char *v = (const char *)sqlite3_column_text(st, 0);
        *out = xstrdup(v ? v : "");
        out_rc = STORE_OK;
    } else {
        out_rc = rc == SQLITE_DONE ? STORE_NOT_FOUND : STORE_ERROR;
    }
    store_finish(s, st);
    return out_rc;
}

int
store_user_count(struct store *s, int64_t *n)
{
    return store_query_int(s, "SELECT count(*) FROM users", NULL, n);
}

int
store_user_count_admins(struct store *s, int64_t *n)
{
    return store_query_int(s, "SELECT count(*) FROM users WHERE role = 'admin' AND disabled = 0",
                           NULL, n);
}

int
store_user_insert(struct store *s, const char *name, const char *role, const char *pwhash,
                  int64_t now, int64_t *id_out)
{
    /* names are unique without case: "Admin" beside "admin" would read as the same person in
     * the user list and the audit log */
    int rc = exec_bound(s, 1,
                        "INSERT INTO users (name, role, password_hash, created_at, updated_at) "
                        "SELECT ?1, ?2, ?3, ?4, ?4 WHERE NOT EXISTS "
                        "(SELECT 1 FROM users WHERE name = ?1 COLLATE NOCASE)",
                        "ttti", name, role, pwhash, now);
    if (rc == STORE_NOT_FOUND) {
        rc = STORE_CONFLICT;
    }
    if (rc == STORE_OK && id_out) {
        *id_out = sqlite3_last_insert_rowid(s->db);
    }
    return rc;
}

int
store_user_update(struct store *s, const char *name, const char *role, const char *pwhash,
                  int disabled, int64_t now)
{
    return exec_bound(s, 1,
                      "UPDATE users SET role = coalesce(?2, role), "
                      "password_hash = coalesce(?3, password_hash), "
                      "disabled = CASE WHEN ?4 < 0 THEN disabled ELSE ?4 END, updated_at = ?5 "
                      "WHERE name = ?1",
                      "tttni", name, role, pwhash, disabled, now);
}

int
store_user_delete(struct store *s, const char *name)
{
    return exec_bound(s, 1, "DELETE FROM users WHERE name = ?1", "t", name);
}

int
store_user_touch_login(struct store *s, int64_t id, int64_t now)
{
    return exec_bound(s, 0, "UPDATE users SET last_login_at = ?2 WHERE id = ?1", "ii", id, now);
}

/* ---- sessions ---- */

int
store_session_insert(struct store *s, const char *token_hash, int64_t user_id, const char *csrf,
                     int64_t now, const char *ip, const char *ua)
{
    return exec_bound(s, 0,
                      "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, "
                      "last_seen_at, ip, user_agent) VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6)",
                      "tititt", token_hash, user_id, csrf, now, ip, ua ? ua : "");
}

int
store_session_get(struct store *s, const char *token_hash, struct store_session *out)
{
    sqlite3_stmt *st;
    if (store_prepare(s,
                      "SELECT s.user_id, s.csrf_token, s.created_at, s.last_seen_at, u.name, "
                      "u.role, u.disabled FROM sessions s JOIN users u ON u.id = s.user_id "
                      "WHERE s.token_hash = ?1",
                      &st)) {
        return STORE_ERROR;
    }
    store_bind_text(st, 1, token_hash);
    int rc = sqlite3_step(st), out_rc;
    if (rc == SQLITE_ROW) {
        out->user_id = sqlite3_column_int64(st, 0);
        snprintf(out->csrf_token, sizeof(out->csrf_token), "%s",
                 (const char *)sqlite3_column_text(st, 1));
        out->created_at = sqlite3_column_int64(st, 2);
        out->last_seen_at = sqlite3_column_int64(st, 3);
        snprintf(out->user_name, sizeof(out->user_name), "%s",
                 (const char *)sqlite3_column_text(st, 4));
        snprintf(out->user_role, sizeof(out->user_role), "%s",
                 (const char *)sqlite3_column_text(st, 5));
        out->user_disabled = sqlite3_column_int(st, 6);
        out_rc = STORE_OK;
    } else {
        out_rc = rc == SQLITE_DONE ? STORE_NOT_FOUND : STORE_ERROR;
    }
    store_finish(s, st);
    return out_rc;
}

int
store_session_touch(struct store *s, const char *token_hash, int64_t now)
{
    /* Only a refresh: when another thread holds the write lock, skip it rather than queue
     * behind it (SQLite's busy handler sleeps, which stalls the request). The next request
     * of the session tries again. */
    sqlite3_busy_timeout(s->db, 0);
    int rc = exec_bound(s, 0, "UPDATE sessions SET last_seen_at = ?2 WHERE token_hash = ?1", "ti",
                        token_hash, now);
    sqlite3_busy_timeout(s->db, 5000);
    return rc;
}

int
store_session_delete(struct store *s, const char *token_hash)
{
    return exec_bound(s, 0, "DELETE FROM sessions WHERE token_hash = ?1", "t", token_hash);
}

int
store_session_delete_user(struct store *s, int64_t user_id)
{
    return exec_bound(s, 0, "DELETE FROM sessions WHERE user_id = ?1", "i", user_id);
}

int
store_session_purge(struct store *s, int64_t idle_before, int64_t created_before)
{
    return exec_bound(s, 0, "DELETE FROM sessions WHERE last_seen_at < ?1 OR created_at < ?2", "ii",
                      idle_before, created_before);
}

/* ---- login throttling ---- */

int
store_login_failure_add(struct store *s, const char *username, const char *ip, int64_t now,
                        int64_t *id_out)
{
    int rc = exec_bound(s, 0, "INSERT INTO login_failures (username, ip, at) VALUES (?1, ?2, ?3)",
                        "tti", username, ip, now);
    if (rc == STORE_OK && id_out) {
        *id_out = sqlite3_last_insert_rowid(s->db);
    }
    return rc;
}

int
store_login_failure_delete(struct store *s, int64_t id)
{
    return exec_bound(s, 0, "DELETE FROM login_failures WHERE id = ?1", "i", id);
}

int
store_login_failure_count(struct store *s, const char *username, const char *ip, int64_t since,
                          struct store_login_counts *out)
{
    sqlite3_stmt *st;
    /* Each sub-select walks one of the (username, at) and (ip, at) indexes. */
    if (store_prepare(s,
                      "SELECT (SELECT count(*) FROM login_failures WHERE username = ?1 AND at >= "
                      "?3), (SELECT coalesce(max(at), 0) FROM login_failures WHERE username = ?1 "
                      "AND at >= ?3), (SELECT count(*) FROM login_failures WHERE ip = ?2 AND at "
                      ">= ?3), (SELECT coalesce(min(at), 0) FROM login_failures WHERE ip = ?2 AND "
                      "at >= ?3), (SELECT coalesce(max(at), 0) FROM login_failures WHERE ip = ?2 "
                      "AND at >= ?3)",
                      &st)) {
        return STORE_ERROR;
    }
    store_bind_text(st, 1, username);
    store_bind_text(st, 2, ip);
    sqlite3_bind_int64(st, 3, since);
    int rc = STORE_ERROR;
    memset(out, 0, sizeof(*out));
    if (sqlite3_step(st) == SQLITE_ROW) {
        out->by_user = sqlite3_column_int64(st, 0);
        out->user_newest = sqlite3_column_int64(st, 1);
        out->by_ip = sqlite3_column_int64(st, 2);
        out->ip_oldest = sqlite3_column_int64(st, 3);
        out->ip_newest = sqlite3_column_int64(st, 4);
        rc = STORE_OK;
    }
    store_finish(s, st);
    return rc;
}

int
store_login_failure_forgive(struct store *s, const char *username, const char *ip)
{
    int rc = exec_bound(s, 0, "DELETE FROM login_failures WHERE username = ?1 AND ip = ?2", "tt",
                        username, ip);
    if (rc == STORE_OK) {
        rc = exec_bound(s, 0, "UPDATE login_failures SET username = '' WHERE username = ?1", "t",
                        username);
    }
    return rc;
}

int
store_login_failure_purge(struct store *s, int64_t before)
{
    return exec_bound(s, 0, "DELETE FROM login_failures WHERE at < ?1", "i", before);
}

/* ---- audit append ---- */

static void
text_value(struct audit_value *v, const char *s)
{
    v->type = AUDIT_TEXT;
    v->data = s;
    v->len = strlen(s);
}

int
store_audit_append(struct store *s, const struct audit_entry *e, int64_t *id_out)
{
    int own_tx = sqlite3_get_autocommit(s->db);
    if (own_tx && store_begin(s)) {
        return STORE_ERROR;
    }
    int rc = STORE_ERROR;
    sqlite3_stmt *st = NULL;
    char prev[65] = AUDIT_GENESIS;
    int64_t next_id = 1;
    /* The next id is taken from sqlite_sequence, as AUTOINCREMENT would assign it, so the
     * hash can cover the id before the row is written. We hold the write lock. */
    if (store_prepare(s,
                      "SELECT (SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1), "
                      "(SELECT seq FROM sqlite_sequence WHERE name = 'audit_log')",
                      &st)) {
        goto out;
    }
    if (sqlite3_step(st) != SQLITE_ROW) {
        goto out;
    }
    if (sqlite3_column_type(st, 0) == SQLITE_TEXT) {
        snprintf(prev, sizeof(prev), "%s", (const char *)sqlite3_column_text(st, 0));
    }
    next_id = sqlite3_column_int64(st, 1) + 1;
    store_finish(s, st);
    st = NULL;

    int64_t ts = time_now_ms();
    const char *detail = e->detail ? e->detail : "{}";
    struct audit_value cols[AUDIT_NCOLS] = {0};
    cols[0].type = AUDIT_INT;
    cols[0].i = next_id;
    cols[1].type = AUDIT_INT;
    cols[1].i = ts;
    text_value(&cols[2], e->actor ? e->actor : "");
    text_value(&cols[3], e->role ? e->role : "");
    text_value(&cols[4], e->ip ? e->ip : "");
    text_value(&cols[5], e->action);
    text_value(&cols[6], e->target ? e->target : "");
    text_value(&cols[7], detail);
    text_value(&cols[8], e->outcome);
    text_value(&cols[9], prev);
    char hash[65];
    audit_hash_row(cols, hash);
    /* The row's MAC under the audit key, in the same INSERT: a row is never without it. */
    char mac[65];
    int sealed = s->seal && audit_seal_key_state(s->seal) == AUDIT_FILE_OK;
    if (sealed) {
        audit_seal_row_mac(s->seal, hash, mac);
    }

    if (store_prepare(s,
                      "INSERT INTO audit_log (id, ts, actor, role, ip, action, target, detail, "
                      "outcome, prev_hash, hash, mac) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
                      "?9, ?10, ?11, ?12)",
                      &st)) {
        goto out;
    }
    sqlite3_bind_int64(st, 1, next_id);
    sqlite3_bind_int64(st, 2, ts);
    for (int c = 2; c < AUDIT_NCOLS; c++) {
        sqlite3_bind_text(st, c + 1, cols[c].data, (int)cols[c].len, SQLITE_TRANSIENT);
    }
    sqlite3_bind_text(st, 11, hash, -1, SQLITE_TRANSIENT);
    store_bind_text(st, 12, sealed ? mac : NULL);
    if (sqlite3_step(st) != SQLITE_DONE) {
        log_error("store: audit append: %s", sqlite3_errmsg(s->db));
        goto out;
    }
    if (id_out) {
        *id_out = next_id;
    }
    s->pend_id = next_id;
    memcpy(s->pend_hash, hash, sizeof(s->pend_hash));
    rc = STORE_OK;
out:
    store_finish(s, st);
    if (own_tx) {
        if (rc == STORE_OK && store_commit(s) != STORE_OK) {
            rc = STORE_ERROR;
        }
        if (rc != STORE_OK) {
            store_rollback(s);
        }
    }
    return rc;
}

/* ---- settings ---- */

int
store_setting_get(struct store *s, const char *key, char **value)
{
    return store_query_text(s, "SELECT value FROM settings WHERE key = ?1", key, 0, value);
}

int
store_setting_set(struct store *s, const char *key, const char *value)
{
    return exec_bound(s, 0,
                      "INSERT INTO settings (key, value) VALUES (?1, ?2) "
                      "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                      "tt", key, value);
}
