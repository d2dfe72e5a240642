/* store: the SQLite database. Every SQL statement of consulate lives in server/store*.c, as a
 * constant string prepared with bound parameters. One connection per thread. */
#ifndef CONSULATE_STORE_H
#define CONSULATE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

struct store;

enum store_rc {
    STORE_OK = 0,
    STORE_NOT_FOUND = 1,
    STORE_CONFLICT = 2, /* unique constraint, or a rule such as "last admin" */
    STORE_ERROR = 3,    /* SQLite error; store_errmsg tells */
    STORE_TOO_NEW = 4,  /* the database was written by a newer consulate */
    STORE_STOP = 5,     /* an iteration callback asked to stop */
};

/* An embedded migration (generated from migrations/NNNN_name.sql). */
struct store_migration {
    int version;
    const char *name;
    const char *sql;
};
extern const struct store_migration store_migrations[];

/* Opens (creating when absent, with its directory) the database at path with WAL,
 * foreign_keys=ON and a busy timeout. Does not migrate. On failure returns NULL and writes a
 * message into err. The caller closes it with store_close. */
struct store *store_open(const char *path, char *err, size_t errlen);
void store_close(struct store *s);
/* The last error message of this connection (borrowed). */
const char *store_errmsg(struct store *s);
sqlite3 *store_sqlite(struct store *s);

/* Applies every embedded migration newer than PRAGMA user_version, each in its own
 * transaction. *from and *to (may be NULL) receive the versions before and after. Returns
 * STORE_TOO_NEW when the database is newer than this binary. */
int store_migrate(struct store *s, int *from, int *to);
int store_schema_version(struct store *s, int *version);
int store_latest_version(void);

/* The connection of the calling thread for the database at path, opened on first use and
 * closed when the thread exits. Returns NULL when it cannot be opened (logged). */
struct store *store_thread(const char *path);
/* Closes the calling thread's connection, if any (store_thread opens a new one when next
 * asked): a thread about to wait for a long time — a live-update stream — gives back the
 * connection's page cache and statements. Pointers from store_thread become invalid. */
void store_thread_release(void);

/* Transactions: store_begin takes the write lock at once (BEGIN IMMEDIATE). */
int store_begin(struct store *s);
int store_commit(struct store *s);
void store_rollback(struct store *s);

/* ---- users ---- */
struct store_user {
    int64_t id;
    char name[65];
    char role[16];
    char *password_hash; /* owned; freed by store_user_clear */
    int disabled;
    int64_t created_at;
    int64_t last_login_at; /* 0 = never */
};
void store_user_clear(struct store_user *u);
int store_user_get(struct store *s, const char *name, struct store_user *out);
int store_user_get_by_id(struct store *s, int64_t id, struct store_user *out);
typedef int (*store_user_cb)(const struct store_user *u, void *ctx);
int store_user_each(struct store *s, store_user_cb cb, void *ctx);
int store_user_count(struct store *s, int64_t *n);
/* Counts enabled admins. */
int store_user_count_admins(struct store *s, int64_t *n);
int store_user_insert(struct store *s, const char *name, const char *role, const char *pwhash,
                      int64_t now, int64_t *id_out);
/* Updates the given fields (NULL / -1 leaves one unchanged). STORE_NOT_FOUND if absent. */
int store_user_update(struct store *s, const char *name, const char *role, const char *pwhash,
                      int disabled, int64_t now);
int store_user_delete(struct store *s, const char *name);
int store_user_touch_login(struct store *s, int64_t id, int64_t now);

/* ---- sessions ---- */
/* A session joined with its user (one query per request). */
struct store_session {
    int64_t user_id;
    char csrf_token[65];
    int64_t created_at;
    int64_t last_seen_at;
    char user_name[65];
    char user_role[16];
    int user_disabled;
};
int store_session_insert(struct store *s, const char *token_hash, int64_t user_id,
                         const char *csrf, int64_t now, const char *ip, const char *ua);
int store_session_get(struct store *s, const char *token_hash, struct store_session *out);
int store_session_touch(struct store *s, const char *token_hash, int64_t now);
int store_session_delete(struct store *s, const char *token_hash);
int store_session_delete_user(struct store *s, int64_t user_id);
/* Deletes sessions idle since before idle_before or created before created_before. */
int store_session_purge(struct store *s, int64_t idle_before, int64_t created_before);

/* ---- login throttling ---- */
int store_login_failure_add(struct store *s, const char *username, const char *ip, int64_t now);
/* Counts failures since `since` for the username and for the ip; the newest failure time of
 * the larger group is returned in *newest (0 when none). */
int store_login_failure_count(struct store *s, const char *username, const char *ip,
                              int64_t since, int64_t *by_user, int64_t *by_ip);
int store_login_failure_clear_user(struct store *s, const char *username);
int store_login_failure_purge(struct store *s, int64_t before);

/* ---- audit log ---- */
struct audit_entry {
    const char *actor;   /* user name, or "" when anonymous */
    const char *role;    /* role at the time, or "" */
    const char *ip;
    const char *action;  /* dotted, e.g. "auth.login" */
    const char *target;  /* object acted on, or "" */
    const char *detail;  /* a JSON object as text; NULL = "{}" */
    const char *outcome; /* "ok", "denied", "error" */
};
/* Appends one entry to the hash chain. Call inside a transaction to record it atomically
 * with the change it describes; outside one it runs in its own. *id_out may be NULL. */
int store_audit_append(struct store *s, const struct audit_entry *e, int64_t *id_out);

/* One stored audit row; strings are borrowed for the duration of the callback only. */
struct audit_row {
    int64_t id;
    int64_t ts;
    const char *actor, *role, *ip, *action, *target, *detail, *outcome, *prev_hash, *hash;
};
struct audit_filter {
    const char *actor;         /* exact, NULL = any */
    const char *action_prefix; /* NULL = any */
    const char *outcome;       /* NULL = any */
    const char *target;        /* exact, NULL = any */
    int64_t since, until;      /* ms, inclusive; 0 = unbounded */
    const char *q;             /* substring of target or detail, NULL = any */
    int64_t before_id;         /* keyset paging: id < before_id; 0 = from the newest */
    int limit;                 /* 0 = no limit (export) */
};
typedef int (*audit_row_cb)(const struct audit_row *row, void *ctx);
/* Calls cb for each matching row, newest first, streaming (no full materialisation).
 * A callback returning non-zero stops the walk (STORE_STOP is then returned). */
int store_audit_query(struct store *s, const struct audit_filter *f, audit_row_cb cb, void *ctx);
/* Walks the whole chain in id order. *checked = rows checked; *first_bad = id of the first
 * row whose prev_hash or hash does not match (0 when the chain is intact). */
int store_audit_verify(struct store *s, int64_t *checked, int64_t *first_bad);
int store_audit_count(struct store *s, int64_t *n);

/* ---- settings ---- */
/* *value is newly allocated (caller frees) or NULL when absent. */
int store_setting_get(struct store *s, const char *key, char **value);
int store_setting_set(struct store *s, const char *key, const char *value);

#endif
