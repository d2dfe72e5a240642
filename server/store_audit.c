/* store_audit: the read side of the audit log: filtered queries with keyset paging, the
 * chain verification and the count. See include/store.h. Appending lives in store.c.
 *
 * Queries choose one of a few constant statements by the filters present, so that SQLite can
 * drive each through the right index (an "?N IS NULL OR col = ?N" predicate cannot use one):
 *   target given        → audit_target (target, id): already in id order, streams.
 *   actor given         → audit_actor_action (actor, action, ts): the ids are picked from the
 *                         index alone (covering) and only the page's rows are read.
 *   action prefix given → audit_action (action, ts), likewise.
 *   since/until given   → audit_ts (ts), likewise.
 *   otherwise, and for unlimited walks (export) → the table in id order, streaming.
 * A page driven by an index first probes the newest ids in id order (AUDIT_PROBE_ROWS, and
 * more while the matches found promise a full page within AUDIT_PROBE_MAX rows): broad
 * filters (one actor of twenty, a busy action, a recent time range) fill the page there
 * without the index, whose query then only runs for what is left, below the probed ids.
 * Parameters are numbered the same in every statement:
 *   ?1 actor  ?2 action lower bound  ?3 action upper bound (exclusive)  ?4 since  ?5 until
 *   ?6 before_id (exclusive)  ?7 outcome  ?8 target  ?9 q  ?10 limit (-1 = none)
 *   ?11 lowest id of the probe window */
#include "store.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "store_internal.h"
#include "util.h"

#define AUDIT_COLS "id, ts, actor, role, ip, action, target, detail, outcome, prev_hash, hash"

#define W_TS_ID " AND ts >= ?4 AND ts <= ?5 AND id < ?6"
#define W_OPT_ACTOR " AND (?1 IS NULL OR actor = ?1)"
#define W_OPT_ACTION " AND (?2 IS NULL OR (action >= ?2 AND action < ?3))"
#define W_OPT_REST                                                                                 \
    " AND (?7 IS NULL OR outcome = ?7) AND (?8 IS NULL OR target = ?8)"                            \
    " AND (?9 IS NULL OR instr(target, ?9) > 0 OR instr(detail, ?9) > 0)"
#define W_PAGE " ORDER BY id DESC LIMIT ?10"
/* The page's ids come from an index alone; only those rows are then read. */
#define BY_IDS(inner)                                                                              \
    "SELECT " AUDIT_COLS " FROM audit_log WHERE id IN (" inner ") ORDER BY id DESC"

#define IDX_ACTOR "SELECT id FROM audit_log INDEXED BY audit_actor_action WHERE actor = ?1"
#define IDX_ACTION                                                                                 \
    "SELECT id FROM audit_log INDEXED BY audit_action WHERE action >= ?2 AND action < ?3"
#define IDX_TS "SELECT id FROM audit_log INDEXED BY audit_ts WHERE 1"

#define AUDIT_PROBE_ROWS 1000 /* the first probe window */
#define AUDIT_PROBE_MAX 12000 /* rows probed at most before the index takes over */

enum plan {
    PLAN_PROBE,
    PLAN_SCAN,
    PLAN_TARGET,
    PLAN_ACTOR_ACTION,
    PLAN_ACTOR_ACTION_REST,
    PLAN_ACTOR,
    PLAN_ACTOR_REST,
    PLAN_ACTION,
    PLAN_ACTION_REST,
    PLAN_TS,
    PLAN_TS_REST,
};

static const char *const plan_sql[] = {
    [PLAN_PROBE] =
        "SELECT " AUDIT_COLS " FROM audit_log NOT INDEXED WHERE id >= ?11" W_TS_ID W_OPT_ACTOR
            W_OPT_ACTION W_OPT_REST W_PAGE,
    [PLAN_SCAN] =
        "SELECT " AUDIT_COLS
        " FROM audit_log NOT INDEXED WHERE 1" W_TS_ID W_OPT_ACTOR W_OPT_ACTION W_OPT_REST W_PAGE,
    [PLAN_TARGET] = "SELECT " AUDIT_COLS " FROM audit_log INDEXED BY audit_target "
                    "WHERE target = ?8" W_TS_ID W_OPT_ACTOR W_OPT_ACTION W_OPT_REST W_PAGE,
    [PLAN_ACTOR_ACTION] = BY_IDS(IDX_ACTOR " AND action >= ?2 AND action < ?3" W_TS_ID W_PAGE),
    [PLAN_ACTOR_ACTION_REST] =
        BY_IDS(IDX_ACTOR " AND action >= ?2 AND action < ?3" W_TS_ID W_OPT_REST W_PAGE),
    [PLAN_ACTOR] = BY_IDS(IDX_ACTOR W_TS_ID W_PAGE),
    [PLAN_ACTOR_REST] = BY_IDS(IDX_ACTOR W_TS_ID W_OPT_REST W_PAGE),
    [PLAN_ACTION] = BY_IDS(IDX_ACTION W_TS_ID W_PAGE),
    [PLAN_ACTION_REST] = BY_IDS(IDX_ACTION W_TS_ID W_OPT_REST W_PAGE),
    [PLAN_TS] = BY_IDS(IDX_TS W_TS_ID W_PAGE),
    [PLAN_TS_REST] = BY_IDS(IDX_TS W_TS_ID W_OPT_REST W_PAGE),
};

static int
nonempty(const char *s)
{
    return s && *s;
}

/* Picks the statement for a filter (see the comment at the top of the file). */
static enum plan
plan_choose(const struct audit_filter *f)
{
    int rest = nonempty(f->outcome) || nonempty(f->target) || nonempty(f->q);
    if (nonempty(f->target)) {
        return PLAN_TARGET;
    }
    if (f->limit <= 0) {
        return PLAN_SCAN; /* unlimited: stream in id order, memory independent of the rows */
    }
    if (nonempty(f->actor)) {
        if (nonempty(f->action_prefix)) {
            return rest ? PLAN_ACTOR_ACTION_REST : PLAN_ACTOR_ACTION;
        }
        return rest ? PLAN_ACTOR_REST : PLAN_ACTOR;
    }
    if (nonempty(f->action_prefix)) {
        return rest ? PLAN_ACTION_REST : PLAN_ACTION;
    }
    if (f->since != 0 || f->until != 0) {
        return rest ? PLAN_TS_REST : PLAN_TS;
    }
    return PLAN_SCAN;
}

/* Binds the exclusive upper bound of the strings starting with prefix: the prefix with its
 * last byte below 0xff incremented (and the 0xff bytes after it dropped). When every byte is
 * 0xff there is no such string, and an empty blob is bound instead: SQLite orders every text
 * value before every blob. */
static void
bind_prefix_end(sqlite3_stmt *st, int idx, const char *prefix)
{
    size_t n = strlen(prefix);
    while (n > 0 && (unsigned char)prefix[n - 1] == 0xff) {
        n--;
    }
    if (n == 0) {
        sqlite3_bind_zeroblob(st, idx, 0);
        return;
    }
    char *end = xstrndup(prefix, n);
    end[n - 1] = (char)((unsigned char)end[n - 1] + 1);
    sqlite3_bind_text(st, idx, end, (int)n, SQLITE_TRANSIENT);
    free(end);
}

static void
bind_opt_text(sqlite3_stmt *st, int idx, const char *v)
{
    store_bind_text(st, idx, nonempty(v) ? v : NULL);
}

/* Binds every parameter; a statement without some of them ignores the SQLITE_RANGE. */
static void
filter_bind(sqlite3_stmt *st, const struct audit_filter *f)
{
    bind_opt_text(st, 1, f->actor);
    if (nonempty(f->action_prefix)) {
        sqlite3_bind_text(st, 2, f->action_prefix, -1, SQLITE_TRANSIENT);
        bind_prefix_end(st, 3, f->action_prefix);
    } else {
        sqlite3_bind_null(st, 2);
        sqlite3_bind_null(st, 3);
    }
    sqlite3_bind_int64(st, 4, f->since != 0 ? f->since : INT64_MIN);
    sqlite3_bind_int64(st, 5, f->until != 0 ? f->until : INT64_MAX);
    sqlite3_bind_int64(st, 6, f->before_id > 0 ? f->before_id : INT64_MAX);
    bind_opt_text(st, 7, f->outcome);
    bind_opt_text(st, 8, f->target);
    bind_opt_text(st, 9, f->q);
    sqlite3_bind_int64(st, 10, f->limit > 0 ? f->limit : -1);
}

static const char *
col_text(sqlite3_stmt *st, int c)
{
    const char *v = (const char *)sqlite3_column_text(st, c);
    return v ? v : "";
}

static void
row_read(sqlite3_stmt *st, struct audit_row *row)
{
    row->id = sqlite3_column_int64(st, 0);
    row->ts = sqlite3_column_int64(st, 1);
    row->actor = col_text(st, 2);
    row->role = col_text(st, 3);
    row->ip = col_text(st, 4);
    row->action = col_text(st, 5);
    row->target = col_text(st, 6);
    row->detail = col_text(st, 7);
    row->outcome = col_text(st, 8);
    row->prev_hash = col_text(st, 9);
    row->hash = col_text(st, 10);
}

/* Counts the rows handed on, for the probe. */
struct counted {
    audit_row_cb cb;
    void *ctx;
    int n;
};

/* Runs one statement of the plan table for f, streaming rows to cb (through cc, which
 * counts them). Returns STORE_OK, STORE_STOP or STORE_ERROR. */
static int
plan_run(struct store *s, enum plan p, const struct audit_filter *f, int64_t probe_lo,
         struct counted *cc)
{
    sqlite3_stmt *st = NULL;
    if (store_prepare(s, plan_sql[p], &st)) {
        return STORE_ERROR;
    }
    filter_bind(st, f);
    sqlite3_bind_int64(st, 11, probe_lo);
    int rc, out = STORE_OK;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct audit_row row;
        row_read(st, &row);
        cc->n++;
        if (cc->cb(&row, cc->ctx)) {
            out = STORE_STOP;
            break;
        }
    }
    if (out == STORE_OK && rc != SQLITE_DONE) {
        log_error("store: audit query: %s", store_errmsg(s));
        out = STORE_ERROR;
    }
    store_finish(s, st);
    return out;
}

/* Streams the matching rows, newest first, to cb; the row's strings live until cb returns.
 * Returns STORE_OK, STORE_STOP when cb asked to stop, or STORE_ERROR. */
int
store_audit_query(struct store *s, const struct audit_filter *f, audit_row_cb cb, void *ctx)
{
    enum plan p = plan_choose(f);
    struct counted cc = {cb, ctx, 0};
    if (p == PLAN_SCAN || p == PLAN_TARGET) {
        return plan_run(s, p, f, 0, &cc);
    }
    int64_t hi = f->before_id;
    if (hi <= 0) {
        if (store_query_int(s, "SELECT coalesce(max(id), 0) + 1 FROM audit_log", NULL, &hi)) {
            return STORE_ERROR;
        }
    }
    /* Probe windows of ids below hi, newest first, while the matches seen so far promise to
     * fill the page within AUDIT_PROBE_MAX rows; then hand the rest to the index. */
    struct audit_filter rest = *f;
    int64_t window = AUDIT_PROBE_ROWS, scanned = 0, lo;
    for (;;) {
        lo = hi > window + 1 ? hi - window : INT64_MIN;
        rest.before_id = hi;
        rest.limit = f->limit - cc.n;
        int rc = plan_run(s, PLAN_PROBE, &rest, lo, &cc);
        if (rc != STORE_OK || cc.n >= f->limit || lo == INT64_MIN) {
            return rc;
        }
        scanned += window;
        if (cc.n == 0) {
            break;
        }
        int64_t more = (int64_t)(f->limit - cc.n) * scanned / cc.n;
        if (scanned + more > AUDIT_PROBE_MAX) {
            break;
        }
        window = more + more / 4 + 100;
        hi = lo;
    }
    rest.before_id = lo;
    rest.limit = f->limit - cc.n;
    return plan_run(s, p, &rest, 0, &cc);
}

int
store_audit_count(struct store *s, int64_t *n)
{
    return store_query_int(s, "SELECT count(*) FROM audit_log", NULL, n);
}

/* ---- what the seal needs ---- */

int
store_audit_row_hash(struct store *s, int64_t id, char **hash)
{
    return store_query_text(s, "SELECT hash FROM audit_log WHERE id = ?1", NULL, id, hash);
}

int
store_audit_tail(struct store *s, int64_t *id, char hash[65])
{
    sqlite3_stmt *st;
    *id = 0;
    snprintf(hash, 65, "%s", AUDIT_GENESIS);
    if (store_prepare(s, "SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1", &st)) {
        return STORE_ERROR;
    }
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *id = sqlite3_column_int64(st, 0);
        snprintf(hash, 65, "%s", col_text(st, 1));
    }
    store_finish(s, st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? STORE_OK : STORE_ERROR;
}

int
store_audit_last_mac(struct store *s, int64_t *id)
{
    *id = 0;
    return store_query_int(s,
                           "SELECT coalesce((SELECT id FROM audit_log WHERE mac IS NOT NULL "
                           "ORDER BY id DESC LIMIT 1), 0)",
                           NULL, id);
}

/* ---- verification ---- */

/* Reads column c exactly as stored: its storage class and its bytes. The pointers stay valid
 * until the statement steps again. */
static void
value_read(sqlite3_stmt *st, int c, struct audit_value *v)
{
    memset(v, 0, sizeof(*v));
    switch (sqlite3_column_type(st, c)) {
    case SQLITE_INTEGER:
        v->type = AUDIT_INT;
        v->i = sqlite3_column_int64(st, c);
        break;
    case SQLITE_FLOAT:
        v->type = AUDIT_FLOAT;
        v->f = sqlite3_column_double(st, c);
        break;
    case SQLITE_TEXT:
        v->type = AUDIT_TEXT;
        v->data = sqlite3_column_text(st, c);
        v->len = (size_t)sqlite3_column_bytes(st, c);
        break;
    case SQLITE_BLOB:
        v->type = AUDIT_BLOB;
        v->data = sqlite3_column_blob(st, c);
        v->len = (size_t)sqlite3_column_bytes(st, c);
        break;
    default:
        v->type = AUDIT_NULL;
        break;
    }
}

/* 1 when v is text of exactly the 64 characters of hash. */
static int
value_is_hash(const struct audit_value *v, const char *hash)
{
    return v->type == AUDIT_TEXT && v->len == 64 && memcmp(v->data, hash, 64) == 0;
}

/* The chain state carried from one row to the next. */
struct chain {
    int64_t expect_id; /* ids run 1, 2, 3, … without gaps */
    char prev[65];     /* stored hash of the previous row ("" when it was not a hash) */
    int64_t checked;
    int64_t last_id;
    int64_t first_bad;
    int stray; /* a row with an id below 1, which append never writes */
    audit_seal_row_cb cb;
    void *ctx;
};

/* The text of column c, or NULL when it is not text. */
static const char *
text_or_null(sqlite3_stmt *st, int c)
{
    return sqlite3_column_type(st, c) == SQLITE_TEXT ? (const char *)sqlite3_column_text(st, c)
                                                     : NULL;
}

/* Checks one row of the walk against the chain and advances it. */
static void
chain_check_row(struct chain *c, sqlite3_stmt *st)
{
    struct audit_value cols[AUDIT_NCOLS + 1];
    for (int i = 0; i <= AUDIT_NCOLS; i++) {
        value_read(st, i, &cols[i]);
    }
    int64_t id = cols[0].i; /* the rowid: always an integer */
    c->checked++;
    if (id < 1) {
        c->stray = 1; /* outside the chain; reported only when nothing else is wrong */
        return;
    }
    c->last_id = id;
    if (c->first_bad == 0) {
        if (id != c->expect_id) {
            c->first_bad = c->expect_id; /* a gap: the first missing id */
        } else {
            char hash[65];
            audit_hash_row(cols, hash);
            if (!value_is_hash(&cols[9], c->prev) || !value_is_hash(&cols[AUDIT_NCOLS], hash)) {
                c->first_bad = id;
            }
        }
    }
    if (c->cb) {
        struct audit_seal_row row = {
            .id = id,
            .hash = text_or_null(st, AUDIT_NCOLS),
            .mac = text_or_null(st, AUDIT_NCOLS + 1),
        };
        c->cb(&row, c->ctx);
    }
    const struct audit_value *h = &cols[AUDIT_NCOLS];
    if (h->type == AUDIT_TEXT && h->len == 64) {
        memcpy(c->prev, h->data, 64);
        c->prev[64] = '\0';
    } else {
        c->prev[0] = '\0';
    }
    c->expect_id = id + 1;
}

static int
verify_walk(struct store *s, struct chain *c)
{
    int64_t seq = 0;
    sqlite3_stmt *st = NULL;
    if (store_prepare(s, "SELECT seq FROM sqlite_sequence WHERE name = 'audit_log'", &st)) {
        return STORE_ERROR;
    }
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        seq = sqlite3_column_int64(st, 0);
    }
    store_finish(s, st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        return STORE_ERROR;
    }
    if (store_prepare(s, "SELECT " AUDIT_COLS ", mac FROM audit_log ORDER BY id", &st)) {
        return STORE_ERROR;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        chain_check_row(c, st);
    }
    store_finish(s, st);
    if (rc != SQLITE_DONE) {
        log_error("store: audit verify: %s", store_errmsg(s));
        return STORE_ERROR;
    }
    /* AUTOINCREMENT remembers the largest id ever used: a deleted tail leaves it ahead of the
     * last row, and rows beyond it were not written by store_audit_append. */
    if (c->first_bad == 0 && seq != c->last_id) {
        c->first_bad = seq > c->last_id ? c->last_id + 1 : seq + 1;
    }
    if (c->first_bad == 0 && c->stray) {
        c->first_bad = 1; /* something precedes the chain's first entry */
    }
    return STORE_OK;
}

/* Walks the whole chain in id order inside one read transaction (so the rows and the
 * sequence are one snapshot). Sets *checked to the rows read and *first_bad to the first id
 * that is wrong, missing or unexpected (0 when intact). */
int
store_audit_verify(struct store *s, int64_t *checked, int64_t *first_bad)
{
    return store_audit_verify_rows(s, checked, first_bad, NULL, NULL);
}

int
store_audit_verify_rows(struct store *s, int64_t *checked, int64_t *first_bad, audit_seal_row_cb cb,
                        void *ctx)
{
    struct chain c = {.expect_id = 1, .prev = AUDIT_GENESIS, .cb = cb, .ctx = ctx};
    int own_tx = sqlite3_get_autocommit(store_sqlite(s));
    sqlite3_stmt *st = NULL;
    int rc = STORE_ERROR;
    if (own_tx) {
        if (store_prepare(s, "BEGIN DEFERRED", &st) || store_step_done(s, st)) {
            goto out;
        }
    }
    rc = verify_walk(s, &c);
out:
    if (own_tx && !sqlite3_get_autocommit(store_sqlite(s))) {
        if (store_prepare(s, "COMMIT", &st) == STORE_OK) {
            store_step_done(s, st);
        }
    }
    *checked = c.checked;
    *first_bad = c.first_bad;
    return rc;
}
