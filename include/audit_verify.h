/* audit_verify: the audit log's integrity as a whole — the hash chain, every row's MAC under
 * the audit key and the anchor kept outside the database (include/audit_seal.h) — and the
 * life of the seal: its start on first use (key and anchor created) and the operator's
 * reseal after a loss. Used by the server, the API and the CLI; knows nothing of HTTP. */
#ifndef CONSULATE_AUDIT_VERIFY_H
#define CONSULATE_AUDIT_VERIFY_H

#include <stddef.h>
#include <stdint.h>

#include "audit_seal.h"

struct store;
struct cJSON;
struct audit_actor;

enum audit_anchor_entry {
    AUDIT_ANCHOR_ENTRY_NA = 0, /* no valid anchor, or it names no entry */
    AUDIT_ANCHOR_ENTRY_OK,     /* the anchored entry is in the log with the anchored hash */
    AUDIT_ANCHOR_ENTRY_MISSING,
    AUDIT_ANCHOR_ENTRY_DIFFERS,
};

/* What verify found. Counts are entries (rows). */
struct audit_verify_report {
    int64_t checked;      /* rows read */
    int64_t last_id;      /* the newest entry's id (0: empty) */
    int64_t first_bad_id; /* the hash chain breaks here (0: intact) */
    /* MACs */
    int64_t sealed_from;      /* the first entry whose MAC is checked (0: none) */
    int64_t unsealed;         /* entries before it, not MAC-checked (older than the seal) */
    int64_t macs_ok;          /* MACs that verified */
    int64_t macs_bad;         /* MACs that do not match */
    int64_t macs_missing;     /* entries from sealed_from on without a MAC */
    int64_t first_bad_mac_id; /* the first of those two kinds (0: none) */
    int64_t last_bad_mac_id;  /* the last of them (0: none) */
    int64_t maced;            /* entries that carry a MAC at all */
    /* files */
    int has_seal;                 /* 0: verified without a seal (only the chain) */
    enum audit_file_state key;    /* the key file, as it is now */
    int key_changed;              /* it holds another key than the one this process uses */
    enum audit_file_state anchor; /* the anchor file */
    struct audit_anchor at;       /* the anchor read (when anchor is AUDIT_FILE_OK) */
    enum audit_anchor_entry entry;
    int64_t after_anchor; /* entries newer than the anchored one */
    int rolled_back;      /* this process saw the anchor file's sequence go down */
    uint64_t rb_seen, rb_found;
};

/* Verifies the log of s: reads the anchor first, then walks every row in one read
 * transaction (so the anchored entry, committed before the anchor was written, is in the
 * snapshot). seal may be NULL (the store's own, if any, is used). Returns STORE_OK with *r
 * filled, or STORE_ERROR when the log cannot be read. */
int audit_verify(struct store *s, struct audit_seal *seal, struct audit_verify_report *r);

/* Calls cb for each finding of r, problems (problem 1: the log failed verification) first,
 * then notes (problem 0: worth knowing, not a failure). code is stable (see README);
 * message a sentence without file paths. */
typedef void (*audit_finding_cb)(const char *code, const char *message, int problem, void *ctx);
void audit_verify_findings(const struct audit_verify_report *r, audit_finding_cb cb, void *ctx);
/* 1 when r has no problem. */
int audit_verify_ok(const struct audit_verify_report *r);
/* The report as the API returns it (a new object; the caller deletes it). */
struct cJSON *audit_verify_json(const struct audit_verify_report *r);

/* Starts the seal for a process that appends to the log of s (the server, a CLI command):
 * opens the key file, creating it when no entry has a MAC yet; creates the anchor file when
 * absent and no entry has a MAC (then records `audit.seal_start` as actor); attaches the seal
 * to s and registers it for every later connection to the same database. A missing or
 * unreadable key while entries carry MACs is an error (nothing could be sealed); a missing,
 * invalid or contradicted anchor is only logged (verify reports it; the anchor is left as
 * evidence). On success *out is the seal (the caller unregisters and frees it after closing
 * every store); on error returns -1 with err set. */
int audit_seal_start(struct store *s, const char *key_path, const char *anchor_path,
                     const struct audit_actor *actor, struct audit_seal **out, char *err,
                     size_t errlen);

/* Stops what audit_seal_start started: unregisters the seal for s's database and frees it. */
void audit_seal_stop(struct store *s, struct audit_seal *seal);

/* The operator's way out after a loss (key or anchor file gone, a database restored from a
 * backup): verifies with what is there (into *before), creates the key when it is missing,
 * records `audit.reseal` (detail: the problems found, the previous anchor, whether the key was
 * created) and writes a new anchor at that entry. Entries from then on are checked again;
 * older ones stay covered by the chain and, when the key kept verifying them, their MACs.
 * Returns 0, or -1 with err set (nothing recorded). */
int audit_reseal(struct store *s, const char *key_path, const char *anchor_path,
                 const struct audit_actor *actor, struct audit_verify_report *before,
                 int64_t *entry_id, char *err, size_t errlen);

#endif
