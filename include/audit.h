/* audit: the pure part of the tamper-evident audit log: the canonical serialisation of a
 * stored row and its SHA-256 chain hash. No SQL here (the store reads and writes rows). */
#ifndef CONSULATE_AUDIT_H
#define CONSULATE_AUDIT_H

#include <stddef.h>
#include <stdint.h>

/* The hashed columns, in this order: id, ts, actor, role, ip, action, target, detail,
 * outcome, prev_hash. */
#define AUDIT_NCOLS 10

enum audit_vtype { AUDIT_NULL = 0, AUDIT_INT, AUDIT_FLOAT, AUDIT_TEXT, AUDIT_BLOB };

/* One column exactly as stored: its storage class and its bytes (for AUDIT_INT the value). */
struct audit_value {
    enum audit_vtype type;
    int64_t i;
    double f;
    const void *data;
    size_t len;
};

#define AUDIT_GENESIS "0000000000000000000000000000000000000000000000000000000000000000"

/* Computes the chain hash of one row into out (64 hex characters + NUL). The serialisation
 * is, per column: a type byte, the length as 8 big-endian bytes, then the bytes (integers as
 * their decimal text, floats as %.17g), so any change of type or of a single byte changes
 * the hash. */
void audit_hash_row(const struct audit_value cols[AUDIT_NCOLS], char out[65]);

/* Returns 1 when outcome is one of "ok", "denied", "error", "pending". "pending" marks an
 * attempt recorded before a change is sent; its result follows in an entry of its own whose
 * detail names the attempt ("attempt_id"). */
int audit_outcome_valid(const char *outcome);

/* ---- recording (no HTTP request needed: the API, the CLI and the job runner use it) ---- */

struct store;
struct cJSON;

/* Who did it: a user name (or "" when anonymous, "cli", "system", "jobs"), the role at the
 * time (or ""), the client address (or "local"). Borrowed. */
struct audit_actor {
    const char *name;
    const char *role;
    const char *ip;
};

/* Appends one entry to the audit log: action (dotted, e.g. "consul.kv.put"), target (may be
 * NULL for ""), detail (a JSON object, consumed; NULL = {}), outcome as audit_outcome_valid.
 * Inside a transaction the entry commits or rolls back with the change it records; outside
 * one it is written at once. *id_out (may be NULL) gets the entry's id. Returns a store_rc
 * (STORE_OK, or STORE_ERROR after logging why: the caller must not make the change). */
int audit_record(struct store *s, const struct audit_actor *actor, const char *action,
                 const char *target, struct cJSON *detail, const char *outcome, int64_t *id_out);

/* Returns 1 when action is a dotted lower-case name like "auth.login" (letters, digits, '_',
 * '.', 1..64 chars, no leading or trailing dot). */
int audit_action_valid(const char *action);

/* Returns 1 when prefix can start an action name: 1..64 of lower-case letters, digits, '_'
 * and '.' (a trailing dot allowed, so "auth." selects "auth.login" but not "authx"). */
int audit_action_prefix_valid(const char *prefix);

/* ---- row formatting for the API and exports (pure; struct audit_row is in store.h) ---- */

struct audit_row;
struct buf;
struct cJSON;

/* Appends the CSV header record "id,time,actor,role,ip,action,target,outcome,detail,hash"
 * and CRLF to b. Returns BUF_OK or BUF_TOO_BIG. */
int audit_csv_header(struct buf *b);
/* Appends one row as an RFC 4180 CSV record (CRLF-terminated; fields with a comma, quote,
 * CR or LF quoted, quotes doubled; time as RFC 3339 UTC with ms). A text field starting with
 * = + - @ tab or CR gets a leading ' so spreadsheets do not read it as a formula. Returns
 * BUF_OK, or BUF_TOO_BIG leaving b unchanged. */
int audit_csv_row(struct buf *b, const struct audit_row *row);
/* Returns a new JSON object for the row (the caller deletes it): id, time, actor, role, ip,
 * action, target, detail (the parsed object, or the raw text when it is not a JSON object),
 * outcome, prev_hash, hash. */
struct cJSON *audit_row_json(const struct audit_row *row);
/* Appends the row's JSON object and a newline (one line of JSON Lines) to b. Returns BUF_OK,
 * or BUF_TOO_BIG leaving b unchanged. */
int audit_jsonl_row(struct buf *b, const struct audit_row *row);

#endif
