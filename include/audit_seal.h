/* audit_seal: what keeps the audit log honest beyond its hash chain, kept outside the
 * database:
 *  - a secret key file (32 random bytes, mode 0600): every appended row's `mac` column is the
 *    hex HMAC-SHA256 of the row's hash under the key, so a chain recomputed by someone who can
 *    write the database but not read the key is found;
 *  - an anchor file (mode 0600) naming the newest committed entry (id and hash) and the first
 *    entry sealed with this key, MACed with the key, so a deleted tail or a rewritten chain is
 *    found even when the database's own bookkeeping (sqlite_sequence) was adjusted to match.
 * The anchor file has two fixed-size slots written alternately, each with a sequence number:
 * a torn write spoils only the slot being written, the other still holds the previous anchor.
 * Writers hold flock(LOCK_EX), so a server and a CLI can append at once, and the anchor never
 * moves backwards. File I/O and crypto only: no SQL (the store calls in after a commit). */
#ifndef CONSULATE_AUDIT_SEAL_H
#define CONSULATE_AUDIT_SEAL_H

#include <stddef.h>
#include <stdint.h>

#define AUDIT_KEY_BYTES 32

enum audit_file_state {
    AUDIT_FILE_OK = 0,
    AUDIT_FILE_MISSING = 1,    /* the file does not exist */
    AUDIT_FILE_UNREADABLE = 2, /* it exists but cannot be read (permissions, I/O) */
    AUDIT_FILE_INVALID = 3,    /* wrong size or format; for the anchor: no slot whose MAC
                                  verifies under the key */
};

/* One anchor: the state of the log when it was last written. */
struct audit_anchor {
    uint64_t seq;  /* raised by one at every write */
    int64_t since; /* the first entry sealed with this key (older ones are not MAC-checked) */
    int64_t id;    /* the newest committed entry (0: the log was empty) */
    char hash[65]; /* its hash (AUDIT_GENESIS when id is 0) */
    int verified;  /* 1 when the slot's MAC verified under the key; 0 when there is no key */
};

struct audit_seal;

/* Opens the seal of the key file and the anchor file at these paths (copied). With create, a
 * missing key file is made: 32 bytes of randombytes_buf written to a temporary file of mode
 * 0600 and linked into place, so two processes starting at once end up with the same key.
 * Does not fail on a key problem: the seal then has no key, audit_seal_key_state says why and
 * audit_seal_key_error holds the message. Returns a new seal the caller frees with
 * audit_seal_free (after every store using it is closed). */
struct audit_seal *audit_seal_open(const char *key_path, const char *anchor_path, int create);
void audit_seal_free(struct audit_seal *seal);

enum audit_file_state audit_seal_key_state(const struct audit_seal *seal);
/* The problem with the key file as a sentence naming it ("" when the key is loaded). Borrowed. */
const char *audit_seal_key_error(const struct audit_seal *seal);
/* The key file's state now (it may have gone or changed since the seal was opened); *changed
 * is 1 when it holds another key than the one the seal loaded. */
enum audit_file_state audit_seal_key_file(const struct audit_seal *seal, int *changed);
/* 1 when audit_seal_open created the key file. */
int audit_seal_key_created(const struct audit_seal *seal);
const char *audit_seal_key_path(const struct audit_seal *seal);
const char *audit_seal_anchor_path(const struct audit_seal *seal);

/* The MAC of a row: hex HMAC-SHA256(key, the row's 64-character hex hash) into out (65
 * bytes). Only with a loaded key. */
void audit_seal_row_mac(const struct audit_seal *seal, const char *hash, char out[65]);
/* 1 when mac is the row MAC of hash (compared in constant time); 0 otherwise or without key. */
int audit_seal_row_mac_ok(const struct audit_seal *seal, const char *hash, const char *mac);

/* Reads the anchor file into *a: the slot with the highest sequence number among those whose
 * MAC verifies under the key (without a key: among those that parse, with a->verified 0).
 * Returns its state; on a problem err (may be NULL) gets a sentence naming the file. A
 * sequence number lower than one this process has seen before marks the file as rolled back
 * (audit_seal_rolled_back). */
enum audit_file_state audit_anchor_read(struct audit_seal *seal, struct audit_anchor *a, char *err,
                                        size_t errlen);

/* Writes a new anchor file (since, id, hash) with sequence number seq: created atomically
 * (a temporary file linked into place) when absent; an existing file is only replaced (by
 * rename) with replace. Needs the key. Returns 0 when written, 1 when the file already
 * existed (and replace was 0), -1 on error with err set. */
int audit_anchor_create(struct audit_seal *seal, uint64_t seq, int64_t since, int64_t id,
                        const char *hash, int replace, char *err, size_t errlen);

/* Returns 1 when the entry id is in the log with exactly this hash, 0 when it is not, -1
 * when the log cannot be read. */
typedef int (*audit_row_check_fn)(void *ctx, int64_t id, const char *hash);

/* Moves the anchor to (id, hash) after a commit that appended entries up to id. Under the
 * seal's mutex and flock(LOCK_EX) on the file: reads the current anchor; when it is missing,
 * not valid under the key, or the entry it names is no longer in the log with that hash
 * (check), the file is left as it is (the evidence verify reports) and the problem is logged
 * once; an anchor already at or past id stays (another process got there first); otherwise
 * the other slot gets (id, hash) and the next sequence number. Not synced (the database
 * commits with synchronous=NORMAL: a power loss can lose the last transactions, and the
 * anchor then names an entry that is gone, which verify reports). Returns 0 when the anchor
 * is at or past id, -1 otherwise. */
int audit_seal_advance(struct audit_seal *seal, int64_t id, const char *hash,
                       audit_row_check_fn check, void *ctx);

/* 1 when this process saw the anchor file's sequence number go down (a copy put back): *seen
 * and *found (may be NULL) get the highest it had seen and the lower one found after. */
int audit_seal_rolled_back(struct audit_seal *seal, uint64_t *seen, uint64_t *found);

#endif
