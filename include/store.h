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
 * foreign_keys=ON and a busy timeout. A new file is created 0600 (its -wal and -shm follow)
 * and new directories 0700; an existing file readable by others is logged. Does not
 * migrate. On failure returns NULL and writes a message into err. The caller closes it with
 * store_close. */
struct store *store_open(const char *path, char *err, size_t errlen);
void store_close(struct store *s);
/* The last error message of this connection (borrowed). */
const char *store_errmsg(struct store *s);
sqlite3 *store_sqlite(struct store *s);
/* The path the connection was opened with (borrowed). */
const char *store_path(struct store *s);

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

/* Transactions: store_begin takes the write lock at once (BEGIN IMMEDIATE). A commit that
 * appended audit entries then moves the audit anchor (when a seal is attached) to the newest
 * of them; a rollback forgets them. */
int store_begin(struct store *s);
int store_commit(struct store *s);
void store_rollback(struct store *s);

/* ---- the audit seal (include/audit_seal.h) ---- */
struct audit_seal;
/* Every connection opened after this call to the database at path (store_open, store_thread)
 * gets seal attached: its audit rows are MACed and its commits advance the anchor. seal is
 * borrowed and must outlive those connections; NULL unregisters. Thread-safe. */
void store_audit_seal_register(const char *path, struct audit_seal *seal);
/* Attaches seal (borrowed; NULL detaches) to this connection only. */
void store_set_audit_seal(struct store *s, struct audit_seal *seal);
/* The seal attached to this connection, or NULL. Borrowed. */
struct audit_seal *store_audit_seal(struct store *s);

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

/* ---- login throttling ----
 * One row per failed (or still running) password check: the user name tried and the client
 * address. A name forgiven by a successful login keeps its rows under the name '' so they
 * still count for their addresses. */
/* Records a failure at now; *id_out (may be NULL) gets its id. */
int store_login_failure_add(struct store *s, const char *username, const char *ip, int64_t now,
                            int64_t *id_out);
/* Removes one failure by id (a check that did not happen, or that succeeded). */
int store_login_failure_delete(struct store *s, int64_t id);
/* Failures since a time, for one user name and for one client address. */
struct store_login_counts {
    int64_t by_user;     /* failures for the user name */
    int64_t user_newest; /* time (ms) of the newest of those, 0 when none */
    int64_t by_ip;       /* failures from the address, whatever the name */
    int64_t ip_oldest;   /* time of the oldest of those, 0 when none */
    int64_t ip_newest;   /* time of the newest of those, 0 when none */
};
int store_login_failure_count(struct store *s, const char *username, const char *ip,
                              int64_t since, struct store_login_counts *out);
/* After a successful login: deletes the name's failures from this address and detaches the
 * name from its other failures (they keep counting for their addresses). */
int store_login_failure_forgive(struct store *s, const char *username, const char *ip);
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
/* Appends one entry to the hash chain, with its MAC when a seal with a key is attached. Call
 * inside a transaction to record it atomically with the change it describes; outside one it
 * runs in its own. *id_out may be NULL. */
int store_audit_append(struct store *s, const struct audit_entry *e, int64_t *id_out);
/* The stored hash of entry id, newly allocated in *hash (the caller frees it); STORE_NOT_FOUND
 * when there is no such entry. */
int store_audit_row_hash(struct store *s, int64_t id, char **hash);
/* The newest entry: *id (0 when the log is empty) and its hash into hash (65 bytes;
 * AUDIT_GENESIS when empty). */
int store_audit_tail(struct store *s, int64_t *id, char hash[65]);
/* The id of the newest entry that has a MAC, or 0 when none has (read from the newest end:
 * instant for a sealed log). */
int store_audit_last_mac(struct store *s, int64_t *id);

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
/* One row as the verification walk hands it on: hash and mac are the stored text (NULL when
 * the column is NULL or not text), borrowed for the callback only. */
struct audit_seal_row {
    int64_t id;
    const char *hash;
    const char *mac;
};
typedef void (*audit_seal_row_cb)(const struct audit_seal_row *row, void *ctx);
/* store_audit_verify that also hands every row with an id of 1 or more to cb (may be NULL),
 * in id order, inside the same read transaction. */
int store_audit_verify_rows(struct store *s, int64_t *checked, int64_t *first_bad,
                            audit_seal_row_cb cb, void *ctx);
int store_audit_count(struct store *s, int64_t *n);

/* ---- settings ---- */
/* *value is newly allocated (caller frees) or NULL when absent. */
int store_setting_get(struct store *s, const char *key, char **value);
int store_setting_set(struct store *s, const char *key, const char *value);

#endif
