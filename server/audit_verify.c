/* audit_verify: see include/audit_verify.h. */
#include "audit_verify.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "audit.h"
#include "store.h"
#include "util.h"

/* ---- verify ---- */

struct walk {
    struct audit_verify_report *r;
    struct audit_seal *seal; /* NULL or without key: MACs are counted, not checked */
    int anchored;            /* r->at names an entry to look for */
};

static void
bad_mac(struct audit_verify_report *r, int64_t id)
{
    if (r->first_bad_mac_id == 0) {
        r->first_bad_mac_id = id;
    }
    r->last_bad_mac_id = id;
}

/* Judges one row's MAC and its place relative to the anchor. */
static void
walk_row(const struct audit_seal_row *row, void *ctx)
{
    struct walk *w = ctx;
    struct audit_verify_report *r = w->r;
    r->last_id = row->id;
    if (row->mac) {
        r->maced++;
        if (r->sealed_from == 0) {
            r->sealed_from = row->id; /* no anchor to say where the seal starts */
        }
    }
    if (r->sealed_from == 0 || row->id < r->sealed_from) {
        r->unsealed++;
    } else if (!row->mac) {
        r->macs_missing++;
        bad_mac(r, row->id);
    } else if (w->seal && audit_seal_key_state(w->seal) == AUDIT_FILE_OK) {
        if (row->hash && audit_seal_row_mac_ok(w->seal, row->hash, row->mac)) {
            r->macs_ok++;
        } else {
            r->macs_bad++;
            bad_mac(r, row->id);
        }
    }
    if (w->anchored) {
        if (row->id == r->at.id) {
            r->entry = row->hash && strcmp(row->hash, r->at.hash) == 0 ? AUDIT_ANCHOR_ENTRY_OK
                                                                       : AUDIT_ANCHOR_ENTRY_DIFFERS;
        } else if (row->id > r->at.id) {
            r->after_anchor++;
        }
    }
}

int
audit_verify(struct store *s, struct audit_seal *seal, struct audit_verify_report *r)
{
    memset(r, 0, sizeof(*r));
    if (!seal) {
        seal = store_audit_seal(s);
    }
    struct walk w = {.r = r, .seal = seal};
    r->key = AUDIT_FILE_MISSING;
    r->anchor = AUDIT_FILE_MISSING;
    if (seal) {
        r->has_seal = 1;
        /* The file as it is now: a server keeps the key it started with, and says so when
         * the file has gone or changed since. */
        r->key = audit_seal_key_file(seal, &r->key_changed);
        /* The anchor before the snapshot: what it names was committed before it was written. */
        r->anchor = audit_anchor_read(seal, &r->at, NULL, 0);
        r->rolled_back = audit_seal_rolled_back(seal, &r->rb_seen, &r->rb_found);
    }
    if (r->anchor == AUDIT_FILE_OK) {
        r->sealed_from = r->at.since;
        w.anchored = 1;
        if (r->at.id > 0) {
            r->entry = AUDIT_ANCHOR_ENTRY_MISSING; /* until the walk finds it */
        }
    }
    return store_audit_verify_rows(s, &r->checked, &r->first_bad_id, walk_row, &w);
}

/* The log counts as sealed when anything says so: a key, an anchor or an entry with a MAC. */
static int
is_sealed(const struct audit_verify_report *r)
{
    return r->maced > 0 || r->anchor != AUDIT_FILE_MISSING || r->key != AUDIT_FILE_MISSING;
}

static const char *
file_problem(enum audit_file_state st)
{
    switch (st) {
    case AUDIT_FILE_MISSING:
        return "missing";
    case AUDIT_FILE_UNREADABLE:
        return "unreadable";
    case AUDIT_FILE_INVALID:
        return "invalid";
    default:
        return "ok";
    }
}

/* Formats a finding and hands it to cb. */
static void finding(audit_finding_cb cb, void *ctx, int problem, const char *code, const char *fmt,
                    ...) __attribute__((format(printf, 5, 6)));

static void
finding(audit_finding_cb cb, void *ctx, int problem, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cb(code, msg, problem, ctx);
}

void
audit_verify_findings(const struct audit_verify_report *r, audit_finding_cb cb, void *ctx)
{
    if (r->first_bad_id) {
        finding(cb, ctx, 1, "chain_broken",
                "the hash chain is broken at entry %" PRId64
                ": that entry was changed, removed or inserted",
                r->first_bad_id);
    }
    if (r->macs_bad) {
        finding(cb, ctx, 1, "mac_invalid",
                "%" PRId64 " entries have a MAC that does not match (the first is entry %" PRId64
                "): rewritten without the audit key, or the key file was replaced",
                r->macs_bad, r->first_bad_mac_id);
    }
    if (r->macs_missing) {
        finding(cb, ctx, 1, "mac_missing",
                "%" PRId64 " entries from entry %" PRId64 " on have no MAC although the log is "
                "sealed from entry %" PRId64 " (the first is entry %" PRId64 ")",
                r->macs_missing, r->sealed_from, r->sealed_from, r->first_bad_mac_id);
    }
    int sealed = is_sealed(r);
    if (sealed && r->key != AUDIT_FILE_OK) {
        finding(cb, ctx, 1, r->key == AUDIT_FILE_MISSING ? "key_missing" : "key_unreadable",
                "the audit key file is %s while the log is sealed (%" PRId64
                " entries carry a MAC): the MACs and the anchor cannot be checked",
                file_problem(r->key), r->maced);
    }
    if (r->key_changed) {
        finding(cb, ctx, 1, "key_changed",
                "the audit key file no longer holds the key this server started with (it was "
                "replaced while the server ran)");
    }
    if (sealed && r->anchor != AUDIT_FILE_OK) {
        const char *code = r->anchor == AUDIT_FILE_MISSING      ? "anchor_missing"
                           : r->anchor == AUDIT_FILE_UNREADABLE ? "anchor_unreadable"
                                                                : "anchor_invalid";
        finding(cb, ctx, 1, code,
                "the audit anchor file is %s%s while the log is sealed (%" PRId64
                " entries carry a MAC): a deleted tail or a rewritten log cannot be ruled out",
                file_problem(r->anchor),
                r->anchor == AUDIT_FILE_INVALID ? " (no anchor in it verifies under the key)" : "",
                r->maced);
    }
    if (r->entry == AUDIT_ANCHOR_ENTRY_MISSING) {
        finding(cb, ctx, 1, "anchor_entry_missing",
                "the anchor names entry %" PRId64 " but the log ends at entry %" PRId64
                ": entries were deleted from the end (or the database was restored from an "
                "older copy, or lost its last transactions in a power failure)",
                r->at.id, r->last_id);
    } else if (r->entry == AUDIT_ANCHOR_ENTRY_DIFFERS) {
        finding(cb, ctx, 1, "anchor_entry_differs",
                "entry %" PRId64 " is not the one anchored (hash %.12s…): the log was rewritten, "
                "or truncated and appended to",
                r->at.id, r->at.hash);
    }
    if (r->rolled_back) {
        finding(cb, ctx, 1, "anchor_rolled_back",
                "the anchor file went back from sequence %" PRIu64 " to %" PRIu64
                " while this process ran: an older copy was put in its place",
                r->rb_seen, r->rb_found);
    }
    if (!sealed) {
        finding(cb, ctx, 0, "not_sealed",
                "the log is not sealed (no audit key, no anchor, no entry with a MAC): only "
                "the hash chain was checked");
    }
    if (r->after_anchor) {
        finding(cb, ctx, 0, "entries_after_anchor",
                "%" PRId64 " entries are newer than the anchored entry %" PRId64
                " (committed while verify ran, or just before a crash; the next commit moves "
                "the anchor)",
                r->after_anchor, r->at.id);
    }
    if (r->unsealed) {
        finding(cb, ctx, 0, "unsealed_entries",
                "%" PRId64 " entries %s carry no MAC under the current key (written before "
                "the log was sealed, or under a previous key): only the hash chain covers them",
                r->unsealed, r->sealed_from ? "before the seal" : "");
    }
}

static void
count_problem(const char *code, const char *message, int problem, void *ctx)
{
    (void)code;
    (void)message;
    *(int *)ctx += problem;
}

int
audit_verify_ok(const struct audit_verify_report *r)
{
    int problems = 0;
    audit_verify_findings(r, count_problem, &problems);
    return problems == 0;
}

struct json_lists {
    cJSON *problems, *notes;
};

static void
add_finding(const char *code, const char *message, int problem, void *ctx)
{
    struct json_lists *l = ctx;
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "code", code);
    cJSON_AddStringToObject(f, "message", message);
    cJSON_AddItemToArray(problem ? l->problems : l->notes, f);
}

static void
add_id_or_null(cJSON *j, const char *name, int64_t id)
{
    if (id > 0) {
        cJSON_AddNumberToObject(j, name, (double)id);
    } else {
        cJSON_AddNullToObject(j, name);
    }
}

cJSON *
audit_verify_json(const struct audit_verify_report *r)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddBoolToObject(j, "ok", audit_verify_ok(r));
    cJSON_AddNumberToObject(j, "checked", (double)r->checked);
    if (r->first_bad_id) {
        cJSON_AddNumberToObject(j, "first_bad_id", (double)r->first_bad_id);
    }
    add_id_or_null(j, "last_id", r->last_id);
    cJSON *mac = cJSON_AddObjectToObject(j, "mac");
    add_id_or_null(mac, "sealed_from", r->sealed_from);
    cJSON_AddNumberToObject(mac, "verified", (double)r->macs_ok);
    cJSON_AddNumberToObject(mac, "invalid", (double)r->macs_bad);
    cJSON_AddNumberToObject(mac, "missing", (double)r->macs_missing);
    cJSON_AddNumberToObject(mac, "unsealed", (double)r->unsealed);
    add_id_or_null(mac, "first_bad_id", r->first_bad_mac_id);
    cJSON_AddStringToObject(j, "key", r->key_changed ? "changed" : file_problem(r->key));
    cJSON *an = cJSON_AddObjectToObject(j, "anchor");
    cJSON_AddStringToObject(an, "status", file_problem(r->anchor));
    static const char *const entry_names[] = {
        [AUDIT_ANCHOR_ENTRY_NA] = NULL,
        [AUDIT_ANCHOR_ENTRY_OK] = "ok",
        [AUDIT_ANCHOR_ENTRY_MISSING] = "missing",
        [AUDIT_ANCHOR_ENTRY_DIFFERS] = "differs",
    };
    if (r->anchor == AUDIT_FILE_OK) {
        cJSON_AddNumberToObject(an, "id", (double)r->at.id);
    } else {
        cJSON_AddNullToObject(an, "id");
    }
    if (entry_names[r->entry]) {
        cJSON_AddStringToObject(an, "entry", entry_names[r->entry]);
    } else {
        cJSON_AddNullToObject(an, "entry");
    }
    cJSON_AddNumberToObject(an, "entries_after", (double)r->after_anchor);
    cJSON_AddBoolToObject(an, "rolled_back", r->rolled_back);
    struct json_lists l = {
        .problems = cJSON_AddArrayToObject(j, "problems"),
        .notes = cJSON_AddArrayToObject(j, "notes"),
    };
    audit_verify_findings(r, add_finding, &l);
    return j;
}

/* ---- the seal's start ---- */

int
audit_seal_start(struct store *s, const char *key_path, const char *anchor_path,
                 const struct audit_actor *actor, struct audit_seal **out, char *err, size_t errlen)
{
    *out = NULL;
    int64_t last_mac = 0, tail_id = 0;
    char tail_hash[65];
    if (store_audit_last_mac(s, &last_mac) != STORE_OK ||
        store_audit_tail(s, &tail_id, tail_hash) != STORE_OK) {
        snprintf(err, errlen, "cannot read the audit log: %s", store_errmsg(s));
        return -1;
    }
    /* A key is made only for a log nothing was sealed in yet: a lost key is not replaced
     * silently (audit_reseal does it, on the record). */
    struct audit_seal *seal = audit_seal_open(key_path, anchor_path, last_mac == 0);
    if (audit_seal_key_state(seal) != AUDIT_FILE_OK) {
        snprintf(err, errlen, "%s%s", audit_seal_key_error(seal),
                 last_mac ? " while the audit log has entries sealed with it: restore the "
                            "key file, or run `consulate audit reseal` to start a new key "
                            "(recorded in the log)"
                          : "");
        audit_seal_free(seal);
        return -1;
    }
    struct audit_anchor a;
    char why[600];
    enum audit_file_state st = audit_anchor_read(seal, &a, why, sizeof(why));
    int created = 0;
    if (st == AUDIT_FILE_MISSING && last_mac == 0) {
        int rc = audit_anchor_create(seal, 1, tail_id + 1, tail_id, tail_hash, 0, err, errlen);
        if (rc < 0) {
            audit_seal_free(seal);
            return -1;
        }
        created = rc == 0;
    } else if (st != AUDIT_FILE_OK) {
        log_error("audit: %s; `consulate audit verify` reports it; after investigating, "
                  "`consulate audit reseal` starts a new anchor",
                  why);
    } else if (a.id > 0) {
        char *have = NULL;
        int rc = store_audit_row_hash(s, a.id, &have);
        if (rc == STORE_NOT_FOUND || (rc == STORE_OK && strcmp(have, a.hash) != 0)) {
            log_error("audit: the anchored entry %" PRId64 " is %s: the log was truncated or "
                      "rewritten; `consulate audit verify` reports it",
                      a.id, rc == STORE_NOT_FOUND ? "missing" : "not the one anchored");
        }
        free(have);
    }
    store_set_audit_seal(s, seal);
    store_audit_seal_register(store_path(s), seal);
    if (created) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddBoolToObject(d, "key_created", audit_seal_key_created(seal));
        cJSON_AddNumberToObject(d, "unsealed_entries", (double)tail_id);
        if (audit_record(s, actor, "audit.seal_start", "", d, "ok", NULL) != STORE_OK) {
            snprintf(err, errlen, "cannot record the start of the audit seal: %s", store_errmsg(s));
            audit_seal_stop(s, seal);
            return -1;
        }
        log_info("audit: sealed the audit log from entry %" PRId64 " (key %s, anchor %s)",
                 tail_id + 1, key_path, anchor_path);
    }
    *out = seal;
    return 0;
}

void
audit_seal_stop(struct store *s, struct audit_seal *seal)
{
    if (!seal) {
        return;
    }
    store_audit_seal_register(store_path(s), NULL);
    if (store_audit_seal(s) == seal) {
        store_set_audit_seal(s, NULL);
    }
    audit_seal_free(seal);
}

/* ---- reseal ---- */

static void
add_code(const char *code, const char *message, int problem, void *ctx)
{
    (void)message;
    if (problem) {
        cJSON_AddItemToArray(ctx, cJSON_CreateString(code));
    }
}

int
audit_reseal(struct store *s, const char *key_path, const char *anchor_path,
             const struct audit_actor *actor, struct audit_verify_report *before, int64_t *entry_id,
             char *err, size_t errlen)
{
    int rc = -1;
    struct audit_seal *seal = audit_seal_open(key_path, anchor_path, 0);
    struct audit_seal *prev = store_audit_seal(s);
    if (audit_verify(s, seal, before) != STORE_OK) {
        snprintf(err, errlen, "cannot read the audit log: %s", store_errmsg(s));
        goto out;
    }
    int key_created = 0;
    if (audit_seal_key_state(seal) == AUDIT_FILE_MISSING) {
        audit_seal_free(seal);
        seal = audit_seal_open(key_path, anchor_path, 1);
        key_created = audit_seal_key_created(seal);
    }
    if (audit_seal_key_state(seal) != AUDIT_FILE_OK) {
        snprintf(err, errlen, "%s: move it away to have a new key made",
                 audit_seal_key_error(seal));
        goto out;
    }
    cJSON *d = cJSON_CreateObject();
    cJSON_AddBoolToObject(d, "key_created", key_created);
    audit_verify_findings(before, add_code, cJSON_AddArrayToObject(d, "problems"));
    if (before->anchor == AUDIT_FILE_OK) {
        cJSON *pa = cJSON_AddObjectToObject(d, "previous_anchor");
        cJSON_AddNumberToObject(pa, "id", (double)before->at.id);
        cJSON_AddStringToObject(pa, "hash", before->at.hash);
    } else {
        cJSON_AddNullToObject(d, "previous_anchor");
    }
    store_set_audit_seal(s, seal);
    if (store_begin(s) != STORE_OK) {
        cJSON_Delete(d);
        snprintf(err, errlen, "cannot write the audit log: %s", store_errmsg(s));
        goto out;
    }
    int64_t id = 0;
    char *hash = NULL;
    if (audit_record(s, actor, "audit.reseal", "", d, "ok", &id) != STORE_OK ||
        store_audit_row_hash(s, id, &hash) != STORE_OK) {
        store_rollback(s);
        snprintf(err, errlen, "cannot record the reseal: %s", store_errmsg(s));
        goto out;
    }
    /* The entries after the last bad MAC, whose MACs this key verified, stay checked;
     * checking starts at this entry when there are none (its detail records what was wrong
     * before). */
    int64_t since = id;
    if (!key_created && before->key == AUDIT_FILE_OK && before->sealed_from > 0) {
        int64_t from = before->last_bad_mac_id ? before->last_bad_mac_id + 1 : before->sealed_from;
        if (from < id) {
            since = from;
        }
    }
    /* The sequence number is at least the time in ms, above any earlier count of commits,
     * so a server still holding the previous file never reads the new one as a rollback. */
    uint64_t seq = before->anchor == AUDIT_FILE_OK ? before->at.seq + 1 : 1;
    if (seq < (uint64_t)time_now_ms()) {
        seq = (uint64_t)time_now_ms();
    }
    /* Written while this transaction holds the write lock, so no other entry comes between;
     * the commit's own advance then finds the anchor already there. */
    int arc = audit_anchor_create(seal, seq, since, id, hash, 1, err, errlen);
    free(hash);
    if (arc != 0) {
        store_rollback(s);
        goto out;
    }
    if (store_commit(s) != STORE_OK) {
        store_rollback(s);
        snprintf(err, errlen, "cannot commit the reseal: %s (run it again)", store_errmsg(s));
        goto out;
    }
    *entry_id = id;
    rc = 0;
out:
    store_set_audit_seal(s, prev);
    audit_seal_free(seal);
    return rc;
}
