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

/* Returns 1 when outcome is one of "ok", "denied", "error". */
int audit_outcome_valid(const char *outcome);

/* Returns 1 when action is a dotted lower-case name like "auth.login" (letters, digits, '_',
 * '.', 1..64 chars, no leading or trailing dot). */
int audit_action_valid(const char *action);

#endif
