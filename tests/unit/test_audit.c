/* Unit tests for the audit log: the row hash (server/audit.c), append + verify and tamper
 * detection, the query filters and keyset paging (server/store_audit.c), and the CSV / JSON
 * row formatting. Each test uses its own database in a temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "audit.h"
#include "audit_export.h"
#include "audit_seal.h"
#include "audit_verify.h"
#include "store.h"
#include "store_internal.h"
#include "util.h"

/* ---- fixtures ---- */

struct fx {
    char dir[64];
    char path[128];
    struct store *s;
};

static int
fx_setup(void **state)
{
    struct fx *fx = xcalloc(1, sizeof(*fx));
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/consulate-test-audit-XXXXXX");
    if (!mkdtemp(fx->dir)) {
        free(fx);
        return -1;
    }
    snprintf(fx->path, sizeof(fx->path), "%s/audit.db", fx->dir);
    char err[256];
    fx->s = store_open(fx->path, err, sizeof(err));
    if (!fx->s || store_migrate(fx->s, NULL, NULL) != STORE_OK) {
        return -1;
    }
    *state = fx;
    return 0;
}

static int
fx_teardown(void **state)
{
    struct fx *fx = *state;
    store_close(fx->s);
    const char *suffix[] = {"", "-wal", "-shm", ".audit-anchor", ".anchor-copy"};
    for (size_t i = 0; i < ARRAY_LEN(suffix); i++) {
        char p[160];
        snprintf(p, sizeof(p), "%s%s", fx->path, suffix[i]);
        unlink(p);
    }
    char key[160];
    snprintf(key, sizeof(key), "%s/audit.key", fx->dir);
    unlink(key);
    rmdir(fx->dir);
    free(fx);
    return 0;
}

/* A second, raw connection, as someone with the sqlite3 CLI would have. */
static void
raw_exec(struct fx *fx, const char *sql)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
        fail_msg("sql %s: %s", sql, err);
    }
    sqlite3_close(db);
}

static void
append_n(struct store *s, int n)
{
    static const char *actors[] = {"alice", "bob", "", "carol"};
    static const char *actions[] = {"auth.login", "user.create", "cluster.kv.put"};
    static const char *outcomes[] = {"ok", "denied", "error"};
    assert_int_equal(store_begin(s), STORE_OK);
    for (int i = 0; i < n; i++) {
        char detail[64];
        snprintf(detail, sizeof(detail), "{\"i\":%d,\"note\":\"abc\"}", i);
        struct audit_entry e = {actors[i % 4], "admin", "10.0.0.1",     actions[i % 3],
                                "target-x",    detail,  outcomes[i % 3]};
        int64_t id;
        assert_int_equal(store_audit_append(s, &e, &id), STORE_OK);
    }
    assert_int_equal(store_commit(s), STORE_OK);
}

static void
expect_verify(struct store *s, int64_t checked, int64_t first_bad)
{
    int64_t c = -1, b = -1;
    assert_int_equal(store_audit_verify(s, &c, &b), STORE_OK);
    assert_int_equal(c, checked);
    assert_int_equal(b, first_bad);
}

/* ---- the hash ---- */

static void
values_sample(struct audit_value v[AUDIT_NCOLS], char text[AUDIT_NCOLS][24])
{
    memset(v, 0, sizeof(struct audit_value) * AUDIT_NCOLS);
    v[0].type = AUDIT_INT;
    v[0].i = 7;
    v[1].type = AUDIT_INT;
    v[1].i = 1700000000123;
    for (int c = 2; c < AUDIT_NCOLS; c++) {
        snprintf(text[c], 24, "col%d-value", c);
        v[c].type = AUDIT_TEXT;
        v[c].data = text[c];
        v[c].len = strlen(text[c]);
    }
}

static void
test_hash(void **state)
{
    (void)state;
    struct audit_value v[AUDIT_NCOLS];
    char text[AUDIT_NCOLS][24];
    char base[65], again[65], h[65];
    values_sample(v, text);
    audit_hash_row(v, base);
    audit_hash_row(v, again);
    assert_string_equal(base, again);
    assert_int_equal(strlen(base), 64);

    /* Any byte of any text column. */
    for (int c = 2; c < AUDIT_NCOLS; c++) {
        for (size_t k = 0; k < v[c].len; k++) {
            text[c][k] ^= 1;
            audit_hash_row(v, h);
            assert_string_not_equal(h, base);
            text[c][k] ^= 1;
        }
    }
    audit_hash_row(v, h);
    assert_string_equal(h, base);
    /* Integers. */
    v[0].i = 8;
    audit_hash_row(v, h);
    assert_string_not_equal(h, base);
    v[0].i = 7;
    v[1].i++;
    audit_hash_row(v, h);
    assert_string_not_equal(h, base);
    v[1].i--;
    /* Type only: ts as text "1700000000123", as float, as NULL; a text column as a blob. */
    char tstext[] = "1700000000123";
    v[1].type = AUDIT_TEXT;
    v[1].data = tstext;
    v[1].len = strlen(tstext);
    audit_hash_row(v, h);
    assert_string_not_equal(h, base);
    v[1].type = AUDIT_FLOAT;
    v[1].f = 1700000000123.0;
    audit_hash_row(v, h);
    assert_string_not_equal(h, base);
    v[1].type = AUDIT_NULL;
    audit_hash_row(v, h);
    assert_string_not_equal(h, base);
    v[1].type = AUDIT_INT;
    v[1].i = 1700000000123;
    v[4].type = AUDIT_BLOB;
    audit_hash_row(v, h);
    assert_string_not_equal(h, base);
    v[4].type = AUDIT_TEXT;
    /* Moving a byte from one column to the next changes the hash (lengths are hashed). */
    char a[] = "ab", b[] = "c";
    v[2].data = a;
    v[2].len = 2;
    v[3].data = b;
    v[3].len = 1;
    audit_hash_row(v, base);
    char a2[] = "a", b2[] = "bc";
    v[2].data = a2;
    v[2].len = 1;
    v[3].data = b2;
    v[3].len = 2;
    audit_hash_row(v, h);
    assert_string_not_equal(h, base);
}

/* ---- append and verify ---- */

static void
test_verify_intact(void **state)
{
    struct fx *fx = *state;
    expect_verify(fx->s, 0, 0);
    append_n(fx->s, 500);
    struct audit_entry e = {"dave", "viewer", "::1", "auth.logout", "", NULL, "ok"};
    assert_int_equal(store_audit_append(fx->s, &e, NULL), STORE_OK); /* own transaction */
    expect_verify(fx->s, 501, 0);
    int64_t n = 0;
    assert_int_equal(store_audit_count(fx->s, &n), STORE_OK);
    assert_int_equal(n, 501);
}

static void raw_append(sqlite3 *db, int64_t id, int64_t ts, const char *actor, const char *action,
                       const char *target, const char *detail, const char *outcome, char prev[65]);

/* Migration 2 rebuilds the audit table (outcome 'pending', a mac column): every row, hash and
 * the AUTOINCREMENT high-water mark survive, the chain still verifies, the triggers are back,
 * and the new outcome is accepted. */
static void
test_migration_2_keeps_the_chain(void **state)
{
    (void)state;
    char dir[] = "/tmp/consulate-test-mig-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/old.db", dir);
    char err[256];
    struct store *s = store_open(path, err, sizeof(err));
    assert_non_null(s);
    sqlite3 *db = store_sqlite(s);
    assert_int_equal(store_migrations[0].version, 1);
    assert_int_equal(sqlite3_exec(db, store_migrations[0].sql, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version=1", NULL, NULL, NULL), SQLITE_OK);
    /* 40 entries as version 1 wrote them (no mac column) */
    char prev[65] = AUDIT_GENESIS;
    for (int i = 1; i <= 40; i++) {
        raw_append(db, i, 1700000000000LL + i, "alice", "auth.login", "", "{}", "ok", prev);
    }
    /* a rolled-back append leaves no gap; a high-water mark above the last row is kept */
    assert_int_equal(sqlite3_exec(db,
                                  "DROP TRIGGER audit_log_no_delete; "
                                  "DELETE FROM audit_log WHERE id = 40",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    int from = 0, to = 0;
    assert_int_equal(store_migrate(s, &from, &to), STORE_OK);
    assert_int_equal(from, 1);
    assert_true(to >= 2);
    int64_t n = 0;
    assert_int_equal(store_query_int(s, "SELECT seq FROM sqlite_sequence WHERE name = 'audit_log'",
                                     NULL, &n),
                     STORE_OK);
    assert_int_equal(n, 40);
    expect_verify(s, 39, 40); /* the deleted tail is still found through the sequence */
    assert_int_not_equal(sqlite3_exec(db, "DELETE FROM audit_log WHERE id = 1", NULL, NULL, NULL),
                         SQLITE_OK);
    assert_int_not_equal(sqlite3_exec(db, "UPDATE audit_log SET actor = 'x'", NULL, NULL, NULL),
                         SQLITE_OK);
    struct audit_entry e = {"dave", "operator", "::1", "consul.kv.put", "/v1/kv/a", NULL,
                            "pending"};
    assert_int_equal(store_audit_append(s, &e, NULL), STORE_OK);
    assert_int_equal(store_query_int(s, "SELECT count(*) FROM audit_log WHERE mac IS NULL", NULL,
                                     &n),
                     STORE_OK);
    assert_true(n >= 39);
    store_close(s);
    char p[160];
    const char *suffix[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < ARRAY_LEN(suffix); i++) {
        snprintf(p, sizeof(p), "%s%s", path, suffix[i]);
        unlink(p);
    }
    rmdir(dir);
}

static void
test_triggers_refuse(void **state)
{
    struct fx *fx = *state;
    append_n(fx->s, 3);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
    assert_int_not_equal(sqlite3_exec(db, "UPDATE audit_log SET actor = 'x'", NULL, NULL, NULL),
                         SQLITE_OK);
    assert_int_not_equal(sqlite3_exec(db, "DELETE FROM audit_log", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    expect_verify(fx->s, 3, 0);
}

struct tamper {
    const char *what;
    const char *set; /* the SET clause applied to row K */
};

/* Each tampering runs on a fresh chain of 40 rows, on row 17. */
static const struct tamper tampers[] = {
    {"ts +1", "ts = ts + 1"},
    {"ts as float", "ts = ts + 0.5"},
    {"ts as text", "ts = 'x' || ts"},
    {"actor", "actor = 'mallory'"},
    {"actor as blob", "actor = CAST(actor AS BLOB)"},
    {"role", "role = 'viewer'"},
    {"ip", "ip = '10.0.0.2'"},
    {"action", "action = 'auth.logout'"},
    {"target", "target = 'target-y'"},
    {"detail one byte", "detail = replace(detail, 'abc', 'abd')"},
    {"detail as blob", "detail = CAST(detail AS BLOB)"},
    {"outcome", "outcome = CASE outcome WHEN 'ok' THEN 'denied' ELSE 'ok' END"},
    {"prev_hash", "prev_hash = CASE substr(prev_hash, 1, 1) WHEN '0' THEN '1' ELSE '0' END || "
                  "substr(prev_hash, 2)"},
    {"hash one byte", "hash = substr(hash, 1, 63) || "
                      "CASE substr(hash, 64) WHEN '0' THEN '1' ELSE '0' END"},
    {"hash upper case", "hash = upper(hash)"},
    {"hash as blob", "hash = CAST(hash AS BLOB)"},
    {"id moved past the end", "id = 1000"},
};

static void
test_verify_tamper_each_column(void **state)
{
    (void)state;
    for (size_t t = 0; t < ARRAY_LEN(tampers); t++) {
        void *st;
        assert_int_equal(fx_setup(&st), 0);
        struct fx *fx = st;
        append_n(fx->s, 40);
        expect_verify(fx->s, 40, 0);
        char *sql = xasprintf("DROP TRIGGER audit_log_no_update; UPDATE audit_log SET %s "
                              "WHERE id = 17",
                              tampers[t].set);
        raw_exec(fx, sql);
        free(sql);
        int64_t c = 0, b = 0;
        assert_int_equal(store_audit_verify(fx->s, &c, &b), STORE_OK);
        if (b != 17 || c != 40) {
            fail_msg("tampering '%s': first bad %lld, checked %lld", tampers[t].what, (long long)b,
                     (long long)c);
        }
        fx_teardown(&st);
    }
}

static void
test_verify_deletions(void **state)
{
    struct {
        const char *what;
        const char *sql;
        int64_t checked, first_bad;
    } cases[] = {
        {"middle", "DELETE FROM audit_log WHERE id = 9", 19, 9},
        {"first", "DELETE FROM audit_log WHERE id = 1", 19, 1},
        {"last", "DELETE FROM audit_log WHERE id = 20", 19, 20},
        {"tail of 5", "DELETE FROM audit_log WHERE id > 15", 15, 16},
        {"all", "DELETE FROM audit_log", 0, 1},
        {"stray row before the chain",
         "INSERT INTO audit_log (id, ts, actor, role, ip, action, target, detail, outcome, "
         "prev_hash, hash) SELECT 0, ts, actor, role, ip, action, target, detail, outcome,"
         " prev_hash, hash FROM audit_log WHERE id = 1",
         21, 1},
        {"forged row after the end",
         "INSERT INTO audit_log (ts, actor, role, ip, action, target, detail, outcome, "
         "prev_hash, hash) SELECT ts, actor, role, ip, action, target, detail, outcome, hash, "
         "hash FROM audit_log WHERE id = 20",
         21, 21},
        {"sequence lowered", "UPDATE sqlite_sequence SET seq = 18 WHERE name = 'audit_log'", 20,
         19},
    };
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        void *st;
        assert_int_equal(fx_setup(&st), 0);
        struct fx *fx = st;
        append_n(fx->s, 20);
        char *sql = xasprintf("DROP TRIGGER audit_log_no_delete; %s", cases[i].sql);
        raw_exec(fx, sql);
        free(sql);
        int64_t c = 0, b = 0;
        assert_int_equal(store_audit_verify(fx->s, &c, &b), STORE_OK);
        if (b != cases[i].first_bad || c != cases[i].checked) {
            fail_msg("deletion '%s': first bad %lld, checked %lld", cases[i].what, (long long)b,
                     (long long)c);
        }
        fx_teardown(&st);
    }
}

/* ---- queries ---- */

/* A copy of a stored row, for the reference filter. */
struct rrow {
    int64_t id, ts;
    char *actor, *action, *outcome, *target, *detail;
};

struct rows {
    struct rrow *v;
    size_t n, cap;
};

static int
collect_row(const struct audit_row *row, void *ctx)
{
    struct rows *rs = ctx;
    if (rs->n == rs->cap) {
        rs->cap = rs->cap ? rs->cap * 2 : 64;
        rs->v = xrealloc(rs->v, rs->cap * sizeof(*rs->v));
    }
    struct rrow *r = &rs->v[rs->n++];
    r->id = row->id;
    r->ts = row->ts;
    r->actor = xstrdup(row->actor);
    r->action = xstrdup(row->action);
    r->outcome = xstrdup(row->outcome);
    r->target = xstrdup(row->target);
    r->detail = xstrdup(row->detail);
    return 0;
}

static void
rows_free(struct rows *rs)
{
    for (size_t i = 0; i < rs->n; i++) {
        free(rs->v[i].actor);
        free(rs->v[i].action);
        free(rs->v[i].outcome);
        free(rs->v[i].target);
        free(rs->v[i].detail);
    }
    free(rs->v);
    memset(rs, 0, sizeof(*rs));
}

static int
ref_match(const struct rrow *r, const struct audit_filter *f)
{
    if (f->actor && *f->actor && strcmp(r->actor, f->actor) != 0) {
        return 0;
    }
    if (f->action_prefix && *f->action_prefix &&
        strncmp(r->action, f->action_prefix, strlen(f->action_prefix)) != 0) {
        return 0;
    }
    if (f->outcome && *f->outcome && strcmp(r->outcome, f->outcome) != 0) {
        return 0;
    }
    if (f->target && *f->target && strcmp(r->target, f->target) != 0) {
        return 0;
    }
    if ((f->since && r->ts < f->since) || (f->until && r->ts > f->until)) {
        return 0;
    }
    if (f->q && *f->q && !strstr(r->target, f->q) && !strstr(r->detail, f->q)) {
        return 0;
    }
    return f->before_id <= 0 || r->id < f->before_id;
}

/* Runs the query and the reference (all rows, newest first) and compares the ids. */
static void
check_filter(struct store *s, const struct rows *all, const struct audit_filter *f)
{
    struct rows got = {0};
    assert_int_equal(store_audit_query(s, f, collect_row, &got), STORE_OK);
    size_t k = 0;
    for (size_t i = 0; i < all->n && (f->limit <= 0 || k < (size_t)f->limit); i++) {
        const struct rrow *r = &all->v[i];
        if (!ref_match(r, f)) {
            continue;
        }
        if (k >= got.n || got.v[k].id != r->id) {
            fail_msg("filter actor=%s action=%s outcome=%s target=%s since=%lld until=%lld "
                     "q=%s before=%lld limit=%d: expected id %lld at %zu, got %lld",
                     f->actor ? f->actor : "-", f->action_prefix ? f->action_prefix : "-",
                     f->outcome ? f->outcome : "-", f->target ? f->target : "-",
                     (long long)f->since, (long long)f->until, f->q ? f->q : "-",
                     (long long)f->before_id, f->limit, (long long)r->id, k,
                     k < got.n ? (long long)got.v[k].id : -1LL);
        }
        k++;
    }
    if (k != got.n) {
        fail_msg("expected %zu rows, got %zu", k, got.n);
    }
    rows_free(&got);
}

static uint64_t
lcg(uint64_t *x)
{
    *x = *x * 6364136223846793005ULL + 1442695040888963407ULL;
    return *x >> 33;
}

/* Appends a row with a chosen ts through SQL, with the real chain hash, as the benchmark
 * does. */
static void
raw_append(sqlite3 *db, int64_t id, int64_t ts, const char *actor, const char *action,
           const char *target, const char *detail, const char *outcome, char prev[65])
{
    const char *role = "operator", *ip = "192.0.2.7";
    const char *text[AUDIT_NCOLS] = {NULL,   NULL,   actor,  role,    ip,
                                     action, target, detail, outcome, prev};
    struct audit_value v[AUDIT_NCOLS] = {{0}};
    v[0].type = AUDIT_INT;
    v[0].i = id;
    v[1].type = AUDIT_INT;
    v[1].i = ts;
    for (int c = 2; c < AUDIT_NCOLS; c++) {
        v[c].type = AUDIT_TEXT;
        v[c].data = text[c];
        v[c].len = strlen(text[c]);
    }
    char hash[65];
    audit_hash_row(v, hash);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "INSERT INTO audit_log (id, ts, actor, role, ip, action, "
                                        "target, detail, outcome, prev_hash, hash) VALUES "
                                        "(?1, ?2, ?3, ?4, ?5, ?6, "
                                        "?7, ?8, ?9, ?10, ?11)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, ts);
    for (int c = 2; c < AUDIT_NCOLS; c++) {
        sqlite3_bind_text(st, c + 1, text[c], -1, SQLITE_STATIC);
    }
    sqlite3_bind_text(st, 11, hash, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    memcpy(prev, hash, 65);
}

static const char *q_actors[] = {"alice", "bob", "carol", "", "svc.deploy"};
static const char *q_actions[] = {
    "auth",        "auth.login",     "auth.logout",      "authx.probe",
    "user.create", "cluster.kv.put", "cluster.kv.delete"};
static const char *q_outcomes[] = {"ok", "denied", "error"};
static const char *q_targets[] = {"", "alice", "kv/app/config", "node-1", "a%b_c"};
#define Q_BASE_TS 1700000000000LL

/* Q_ROWS rows with controlled timestamps (not monotonic in id) and varied columns: enough
 * that pages go both through the probe of the newest ids and through the indexes. */
#define Q_ROWS 5000
static void
populate(struct fx *fx)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    uint64_t x = 42;
    char prev[65] = AUDIT_GENESIS;
    for (int i = 1; i <= Q_ROWS; i++) {
        int64_t ts = Q_BASE_TS + (int64_t)i * 1000 - (i % 7 == 0 ? 5500 : 0);
        char detail[96];
        snprintf(detail, sizeof(detail), "{\"i\":%d,\"note\":\"%s\"}", i,
                 i % 11 == 0 ? "needle 100%_done" : "hay");
        raw_append(db, i, ts, q_actors[lcg(&x) % ARRAY_LEN(q_actors)],
                   q_actions[lcg(&x) % ARRAY_LEN(q_actions)],
                   q_targets[lcg(&x) % ARRAY_LEN(q_targets)], detail,
                   q_outcomes[lcg(&x) % ARRAY_LEN(q_outcomes)], prev);
    }
    assert_int_equal(sqlite3_exec(db,
                                  "UPDATE sqlite_sequence SET seq = 5000 WHERE name = 'audit_log'",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    expect_verify(fx->s, Q_ROWS, 0);
}

static void
load_all(struct store *s, struct rows *all)
{
    struct audit_filter none = {0};
    assert_int_equal(store_audit_query(s, &none, collect_row, all), STORE_OK);
    assert_int_equal(all->n, Q_ROWS);
    for (size_t i = 0; i < all->n; i++) {
        assert_int_equal(all->v[i].id, Q_ROWS - (int64_t)i); /* newest first */
    }
}

static void
test_query_filters(void **state)
{
    struct fx *fx = *state;
    populate(fx);
    struct rows all = {0};
    load_all(fx->s, &all);

    /* Each filter alone. */
    for (size_t i = 0; i < ARRAY_LEN(q_actors); i++) {
        struct audit_filter f = {.actor = q_actors[i]};
        check_filter(fx->s, &all, &f);
    }
    const char *prefixes[] = {"auth", "auth.", "authx",       "auth.log",        "cluster.kv.",
                              "c",    "zzz",   "user.create", "user.create.more"};
    for (size_t i = 0; i < ARRAY_LEN(prefixes); i++) {
        struct audit_filter f = {.action_prefix = prefixes[i]};
        check_filter(fx->s, &all, &f);
        f.limit = 10;
        check_filter(fx->s, &all, &f);
    }
    for (size_t i = 0; i < ARRAY_LEN(q_outcomes); i++) {
        struct audit_filter f = {.outcome = q_outcomes[i]};
        check_filter(fx->s, &all, &f);
    }
    for (size_t i = 1; i < ARRAY_LEN(q_targets); i++) {
        struct audit_filter f = {.target = q_targets[i]};
        check_filter(fx->s, &all, &f);
    }
    struct audit_filter ts1 = {.since = Q_BASE_TS + 4100500};
    check_filter(fx->s, &all, &ts1);
    struct audit_filter ts2 = {.until = Q_BASE_TS + 100500, .limit = 20};
    check_filter(fx->s, &all, &ts2);
    struct audit_filter ts3 = {.since = Q_BASE_TS + 7000, .until = Q_BASE_TS + 7000};
    check_filter(fx->s, &all, &ts3);
    const char *qs[] = {"needle", "100%_", "%", "_", "a%b", "\"i\":7}", "nothing-like-it"};
    for (size_t i = 0; i < ARRAY_LEN(qs); i++) {
        struct audit_filter f = {.q = qs[i]};
        check_filter(fx->s, &all, &f);
    }
    struct audit_filter lim = {.limit = 1};
    check_filter(fx->s, &all, &lim);
    lim.limit = 499;
    check_filter(fx->s, &all, &lim);
    struct audit_filter before = {.before_id = 100, .limit = 5};
    check_filter(fx->s, &all, &before);

    /* The action prefix is a byte prefix: "auth" also selects "authx.probe", "auth." not. */
    struct rows got = {0};
    struct audit_filter f = {.action_prefix = "auth."};
    assert_int_equal(store_audit_query(fx->s, &f, collect_row, &got), STORE_OK);
    assert_true(got.n > 0);
    for (size_t i = 0; i < got.n; i++) {
        assert_true(str_starts_with(got.v[i].action, "auth."));
    }
    rows_free(&got);
    f.action_prefix = "authx";
    assert_int_equal(store_audit_query(fx->s, &f, collect_row, &got), STORE_OK);
    assert_true(got.n > 0);
    for (size_t i = 0; i < got.n; i++) {
        assert_string_equal(got.v[i].action, "authx.probe");
    }
    rows_free(&got);

    /* Random combinations of every filter, with and without a limit and before_id. */
    uint64_t x = 7;
    for (int n = 0; n < 3000; n++) {
        struct audit_filter c = {0};
        if (lcg(&x) % 2) {
            c.actor = q_actors[lcg(&x) % ARRAY_LEN(q_actors)];
        }
        if (lcg(&x) % 2) {
            c.action_prefix = prefixes[lcg(&x) % ARRAY_LEN(prefixes)];
        }
        if (lcg(&x) % 3 == 0) {
            c.outcome = q_outcomes[lcg(&x) % ARRAY_LEN(q_outcomes)];
        }
        if (lcg(&x) % 4 == 0) {
            c.target = q_targets[lcg(&x) % ARRAY_LEN(q_targets)];
        }
        if (lcg(&x) % 2) {
            c.since = Q_BASE_TS + (int64_t)(lcg(&x) % (Q_ROWS * 1000));
        }
        if (lcg(&x) % 2) {
            c.until = Q_BASE_TS + (int64_t)(lcg(&x) % (Q_ROWS * 1000));
        }
        if (lcg(&x) % 4 == 0) {
            c.q = qs[lcg(&x) % ARRAY_LEN(qs)];
        }
        if (lcg(&x) % 3 == 0) {
            c.before_id = (int64_t)(lcg(&x) % (Q_ROWS + 20));
        }
        static const int limits[] = {0, 1, 3, 10, 100, 500};
        c.limit = limits[lcg(&x) % ARRAY_LEN(limits)];
        check_filter(fx->s, &all, &c);
    }
    rows_free(&all);
}

static int
stop_after_3(const struct audit_row *row, void *ctx)
{
    (void)row;
    return ++*(int *)ctx == 3;
}

static void
test_query_paging(void **state)
{
    struct fx *fx = *state;
    populate(fx);
    struct rows all = {0};
    load_all(fx->s, &all);
    struct audit_filter filters[] = {
        {.limit = 7},
        {.actor = "alice", .limit = 7},
        {.action_prefix = "auth", .limit = 7},
        {.actor = "bob", .action_prefix = "cluster.", .since = Q_BASE_TS + 50000, .limit = 3},
        {.target = "node-1", .limit = 7},
        {.since = Q_BASE_TS + 20000, .until = Q_BASE_TS + 300000, .limit = 7},
        {.actor = "alice",
         .action_prefix = "auth.",
         .since = Q_BASE_TS + 100000,
         .until = Q_BASE_TS + 2000000,
         .limit = 9},
        {.q = "needle", .outcome = "ok", .limit = 2},
        {.actor = "carol", .action_prefix = "user.create", .limit = 50},
        {.action_prefix = "auth.", .until = Q_BASE_TS + 1500000, .limit = 100},
        {.until = Q_BASE_TS + 30000, .limit = 500},
        {.limit = 500},
    };
    for (size_t i = 0; i < ARRAY_LEN(filters); i++) {
        struct audit_filter f = filters[i];
        size_t expected = 0;
        for (size_t k = 0; k < all.n; k++) {
            expected += (size_t)ref_match(&all.v[k], &f);
        }
        /* Page with before_id = the last id of the previous page, as the API does. */
        struct rows seen = {0};
        int pages = 0;
        for (;;) {
            size_t before = seen.n;
            assert_int_equal(store_audit_query(fx->s, &f, collect_row, &seen), STORE_OK);
            pages++;
            assert_true(seen.n - before <= (size_t)f.limit);
            if (seen.n - before < (size_t)f.limit) {
                break;
            }
            f.before_id = seen.v[seen.n - 1].id;
        }
        assert_int_equal(seen.n, expected);
        for (size_t k = 1; k < seen.n; k++) {
            assert_true(seen.v[k].id < seen.v[k - 1].id); /* every row once, in order */
        }
        for (size_t k = 0; k < seen.n; k++) {
            struct rrow *r = &seen.v[k];
            struct audit_filter nf = filters[i];
            nf.before_id = 0;
            assert_true(ref_match(r, &nf));
        }
        assert_true(pages >= 1);
        rows_free(&seen);
    }
    /* A callback can stop the walk. */
    int n = 0;
    struct audit_filter none = {0};
    assert_int_equal(store_audit_query(fx->s, &none, stop_after_3, &n), STORE_STOP);
    assert_int_equal(n, 3);
    rows_free(&all);
}

/* ---- formatting ---- */

static void
test_csv(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 4096);
    assert_int_equal(audit_csv_header(&b), BUF_OK);
    assert_string_equal(b.data, "id,time,actor,role,ip,action,target,outcome,detail,hash\r\n");
    buf_reset(&b);
    struct audit_row row = {
        .id = 42,
        .ts = 1764014075123,
        .actor = "alice",
        .role = "admin",
        .ip = "10.0.0.1",
        .action = "user.create",
        .target = "bob",
        .detail = "{\"k\":\"v\"}",
        .outcome = "ok",
        .prev_hash = "p",
        .hash = "abc",
    };
    assert_int_equal(audit_csv_row(&b, &row), BUF_OK);
    assert_string_equal(b.data, "42,2025-11-24T19:54:35.123Z,alice,admin,10.0.0.1,user.create,"
                                "bob,ok,\"{\"\"k\"\":\"\"v\"\"}\",abc\r\n");
    buf_reset(&b);
    /* Quoting: comma, CR, LF; the formula guard on = + - @ tab CR, inside the quotes. */
    row.actor = "=HYPERLINK(\"x\")";
    row.role = "+1";
    row.ip = "-2";
    row.action = "@sum";
    row.target = "a,b";
    row.outcome = "\tx";
    row.detail = "line1\nline2";
    row.hash = "\rz";
    assert_int_equal(audit_csv_row(&b, &row), BUF_OK);
    assert_string_equal(b.data, "42,2025-11-24T19:54:35.123Z,\"'=HYPERLINK(\"\"x\"\")\",'+1,'-2,"
                                "'@sum,\"a,b\",'\tx,\"line1\nline2\",\"'\rz\"\r\n");
    buf_reset(&b);
    row.actor = "";
    row.role = "a=b";
    row.ip = NULL; /* defensive: NULL is empty */
    assert_int_equal(audit_csv_row(&b, &row), BUF_OK);
    assert_true(str_starts_with(b.data, "42,2025-11-24T19:54:35.123Z,,a=b,,'@sum,"));
    buf_free(&b);

    /* A record that does not fit leaves the buffer as it was. */
    buf_init(&b, 64);
    buf_puts(&b, "kept");
    row.detail = "a detail long enough to overflow the small buffer limit of sixty-four";
    assert_int_equal(audit_csv_row(&b, &row), BUF_TOO_BIG);
    assert_string_equal(b.data, "kept");
    assert_int_equal(b.len, 4);
    buf_free(&b);
}

static void
test_json(void **state)
{
    (void)state;
    struct audit_row row = {
        .id = 7,
        .ts = 1764014075123,
        .actor = "alice",
        .role = "admin",
        .ip = "::1",
        .action = "auth.login",
        .target = "",
        .detail = "{\"n\":1,\"s\":\"x\"}",
        .outcome = "ok",
        .prev_hash = AUDIT_GENESIS,
        .hash = "h",
    };
    cJSON *j = audit_row_json(&row);
    assert_int_equal((int)json_get_num(j, "id", 0), 7);
    assert_string_equal(json_get_str(j, "time", ""), "2025-11-24T19:54:35.123Z");
    assert_string_equal(json_get_str(j, "actor", ""), "alice");
    assert_string_equal(json_get_str(j, "role", ""), "admin");
    assert_string_equal(json_get_str(j, "ip", ""), "::1");
    assert_string_equal(json_get_str(j, "action", ""), "auth.login");
    assert_string_equal(json_get_str(j, "target", "x"), "");
    assert_string_equal(json_get_str(j, "outcome", ""), "ok");
    assert_string_equal(json_get_str(j, "prev_hash", ""), AUDIT_GENESIS);
    assert_string_equal(json_get_str(j, "hash", ""), "h");
    cJSON *d = cJSON_GetObjectItem(j, "detail");
    assert_true(cJSON_IsObject(d));
    assert_int_equal((int)json_get_num(d, "n", 0), 1);
    char *text = json_print(j);
    assert_string_equal(text,
                        "{\"id\":7,\"time\":\"2025-11-24T19:54:35.123Z\",\"actor\":"
                        "\"alice\",\"role\":\"admin\",\"ip\":\"::1\",\"action\":"
                        "\"auth.login\",\"target\":\"\",\"detail\":{\"n\":1,\"s\":\"x\"},"
                        "\"outcome\":\"ok\",\"prev_hash\":\"" AUDIT_GENESIS "\",\"hash\":\"h\"}");
    free(text);
    cJSON_Delete(j);

    /* Not a JSON object: the raw text. */
    const char *raw[] = {"not json", "[1,2]", "{\"a\":1} trailing", ""};
    for (size_t i = 0; i < ARRAY_LEN(raw); i++) {
        row.detail = raw[i];
        j = audit_row_json(&row);
        d = cJSON_GetObjectItem(j, "detail");
        assert_true(cJSON_IsString(d));
        assert_string_equal(d->valuestring, raw[i]);
        cJSON_Delete(j);
    }

    /* JSON Lines: one object and a newline. */
    struct buf b;
    buf_init(&b, 4096);
    row.detail = "{}";
    assert_int_equal(audit_jsonl_row(&b, &row), BUF_OK);
    assert_int_equal(audit_jsonl_row(&b, &row), BUF_OK);
    char *nl = strchr(b.data, '\n');
    assert_non_null(nl);
    assert_ptr_equal(strchr(nl + 1, '\n'), b.data + b.len - 1);
    *nl = '\0';
    j = cJSON_Parse(b.data);
    assert_non_null(j);
    assert_true(cJSON_IsObject(cJSON_GetObjectItem(j, "detail")));
    cJSON_Delete(j);
    buf_free(&b);
}

static void
test_action_prefix_valid(void **state)
{
    (void)state;
    assert_true(audit_action_prefix_valid("auth"));
    assert_true(audit_action_prefix_valid("auth."));
    assert_true(audit_action_prefix_valid("cluster.kv_put"));
    assert_false(audit_action_prefix_valid(""));
    assert_false(audit_action_prefix_valid(NULL));
    assert_false(audit_action_prefix_valid("Auth"));
    assert_false(audit_action_prefix_valid("auth%"));
    assert_false(audit_action_prefix_valid("a b"));
}

/* ---- the seal: key, row MACs, anchor ---- */

static const struct audit_actor sys_actor = {.name = "system", .role = "", .ip = "local"};

static void
seal_paths(const struct fx *fx, char key[160], char anchor[160])
{
    snprintf(key, 160, "%s/audit.key", fx->dir);
    snprintf(anchor, 160, "%s.audit-anchor", fx->path);
}

/* Starts the seal on fx's store as the server does; the caller stops it. */
static struct audit_seal *
seal_on(struct fx *fx)
{
    char key[160], anchor[160], err[1024];
    seal_paths(fx, key, anchor);
    struct audit_seal *seal = NULL;
    if (audit_seal_start(fx->s, key, anchor, &sys_actor, &seal, err, sizeof(err)) != 0) {
        fail_msg("seal start: %s", err);
    }
    return seal;
}

/* The findings of a report as ",code,code," (problems) and notes into *notes. */
struct codes {
    char problems[512], notes[512];
};

static void
collect_code(const char *code, const char *message, int problem, void *ctx)
{
    struct codes *c = ctx;
    char *to = problem ? c->problems : c->notes;
    size_t len = strlen(to);
    snprintf(to + len, 512 - len, "%s%s,", len ? "" : ",", code);
    assert_true(strlen(message) > 10);
}

/* Verifies as another process (the CLI) would: a fresh seal of the same files, read-only. */
static void
verify_fresh(struct fx *fx, struct audit_verify_report *r, struct codes *c)
{
    char key[160], anchor[160];
    seal_paths(fx, key, anchor);
    struct audit_seal *seal = audit_seal_open(key, anchor, 0);
    assert_int_equal(audit_verify(fx->s, seal, r), STORE_OK);
    audit_seal_free(seal);
    memset(c, 0, sizeof(*c));
    audit_verify_findings(r, collect_code, c);
    assert_int_equal(audit_verify_ok(r), c->problems[0] == '\0');
}

static void
expect_codes(const struct codes *c, const char *problems, const char *notes)
{
    if (strcmp(c->problems, problems) != 0 || strcmp(c->notes, notes) != 0) {
        fail_msg("problems '%s' (expected '%s'), notes '%s' (expected '%s')", c->problems, problems,
                 c->notes, notes);
    }
}

/* Appends n entries, each in its own transaction (the server's usual way). */
static void
append_own(struct store *s, int n)
{
    for (int i = 0; i < n; i++) {
        struct audit_entry e = {"alice", "admin", "10.0.0.1", "user.create", "bob", NULL, "ok"};
        assert_int_equal(store_audit_append(s, &e, NULL), STORE_OK);
    }
}

static int64_t
raw_int(struct fx *fx, const char *sql)
{
    int64_t n = -1;
    assert_int_equal(store_query_int(fx->s, sql, NULL, &n), STORE_OK);
    return n;
}

static void
file_mode_is(const char *path, unsigned mode, off_t size)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, mode);
    if (size >= 0) {
        assert_int_equal(st.st_size, size);
    }
}

static void
write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void
test_seal_start_and_verify(void **state)
{
    struct fx *fx = *state;
    char key[160], anchor[160];
    seal_paths(fx, key, anchor);
    assert_int_not_equal(access(key, F_OK), 0);
    struct audit_seal *seal = seal_on(fx);
    assert_true(audit_seal_key_created(seal));
    file_mode_is(key, 0600, AUDIT_KEY_BYTES);
    file_mode_is(anchor, 0600, -1);
    /* the start of the seal is on the record, as entry 1 */
    assert_int_equal(raw_int(fx, "SELECT count(*) FROM audit_log WHERE id = 1 AND "
                                 "action = 'audit.seal_start'"),
                     1);
    append_own(fx->s, 20);
    append_n(fx->s, 10); /* one transaction */
    /* every row has the HMAC of its hash */
    assert_int_equal(raw_int(fx, "SELECT count(*) FROM audit_log WHERE mac IS NULL"), 0);
    struct audit_verify_report r;
    struct codes c;
    verify_fresh(fx, &r, &c);
    expect_codes(&c, "", "");
    assert_int_equal(r.checked, 31);
    assert_int_equal(r.macs_ok, 31);
    assert_int_equal(r.unsealed, 0);
    assert_int_equal(r.sealed_from, 1);
    assert_int_equal(r.at.id, 31);
    assert_int_equal(r.entry, AUDIT_ANCHOR_ENTRY_OK);
    assert_int_equal(r.after_anchor, 0);
    /* the API's shape */
    cJSON *j = audit_verify_json(&r);
    assert_true(json_get_bool(j, "ok", 0));
    assert_string_equal(json_get_str(j, "key", ""), "ok");
    cJSON *an = cJSON_GetObjectItem(j, "anchor");
    assert_string_equal(json_get_str(an, "status", ""), "ok");
    assert_string_equal(json_get_str(an, "entry", ""), "ok");
    assert_int_equal((int)json_get_num(an, "id", 0), 31);
    assert_int_equal((int)json_get_num(cJSON_GetObjectItem(j, "mac"), "verified", 0), 31);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "problems")), 0);
    cJSON_Delete(j);
    /* a rolled-back transaction leaves the anchor where it was */
    assert_int_equal(store_begin(fx->s), STORE_OK);
    append_own(fx->s, 2);
    store_rollback(fx->s);
    verify_fresh(fx, &r, &c);
    expect_codes(&c, "", "");
    assert_int_equal(r.at.id, 31);
    /* the key file replaced under this process, which keeps the key it loaded */
    unsigned char other[AUDIT_KEY_BYTES];
    memset(other, 7, sizeof(other));
    size_t klen = 0;
    char *kept = file_read_all(key, 64, &klen);
    write_file(key, other, sizeof(other));
    assert_int_equal(audit_verify(fx->s, seal, &r), STORE_OK);
    memset(&c, 0, sizeof(c));
    audit_verify_findings(&r, collect_code, &c);
    expect_codes(&c, ",key_changed,", "");
    write_file(key, kept, klen);
    free(kept);
    /* a second start finds both files and records nothing */
    audit_seal_stop(fx->s, seal);
    seal = seal_on(fx);
    assert_false(audit_seal_key_created(seal));
    assert_int_equal(raw_int(fx, "SELECT count(*) FROM audit_log"), 31);
    audit_seal_stop(fx->s, seal);
}

/* Entries written before the seal (older than migration 2, or by an older consulate) have no
 * MAC: counted, not a failure. */
static void
test_seal_legacy_entries(void **state)
{
    struct fx *fx = *state;
    append_own(fx->s, 15);
    struct audit_seal *seal = seal_on(fx);
    append_own(fx->s, 5);
    struct audit_verify_report r;
    struct codes c;
    verify_fresh(fx, &r, &c);
    expect_codes(&c, "", ",unsealed_entries,");
    assert_int_equal(r.unsealed, 15);
    assert_int_equal(r.sealed_from, 16);
    assert_int_equal(r.macs_ok, 6);
    assert_int_equal(raw_int(fx, "SELECT count(*) FROM audit_log WHERE id = 16 AND "
                                 "action = 'audit.seal_start' AND detail LIKE "
                                 "'%\"unsealed_entries\":15%'"),
                     1);
    audit_seal_stop(fx->s, seal);
}

/* Recomputes the chain from row `from` on after changing its actor, as someone who can write
 * the database but not read the key would: correct SHA-256 hashes; the MACs kept as they
 * were, or removed. */
static void
rechain_from(struct fx *fx, int64_t from, int keep_mac)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "BEGIN; DROP TRIGGER audit_log_no_update; "
                                  "UPDATE audit_log SET actor = 'mallory' WHERE id = 10",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_stmt *sel, *upd;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT id, ts, actor, role, ip, action, target, "
                                        "detail, outcome FROM audit_log WHERE id >= ?1 "
                                        "ORDER BY id",
                                        -1, &sel, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "UPDATE audit_log SET prev_hash = ?2, hash = ?3, "
                                        "mac = CASE WHEN ?4 THEN mac END WHERE id = ?1",
                                        -1, &upd, NULL),
                     SQLITE_OK);
    char prev[65];
    sqlite3_stmt *ph;
    assert_int_equal(
        sqlite3_prepare_v2(db, "SELECT hash FROM audit_log WHERE id = ?1", -1, &ph, NULL),
        SQLITE_OK);
    sqlite3_bind_int64(ph, 1, from - 1);
    assert_int_equal(sqlite3_step(ph), SQLITE_ROW);
    snprintf(prev, sizeof(prev), "%s", (const char *)sqlite3_column_text(ph, 0));
    sqlite3_finalize(ph);
    sqlite3_bind_int64(sel, 1, from);
    while (sqlite3_step(sel) == SQLITE_ROW) {
        struct audit_value v[AUDIT_NCOLS] = {{0}};
        v[0].type = AUDIT_INT;
        v[0].i = sqlite3_column_int64(sel, 0);
        v[1].type = AUDIT_INT;
        v[1].i = sqlite3_column_int64(sel, 1);
        for (int c = 2; c < AUDIT_NCOLS - 1; c++) {
            v[c].type = AUDIT_TEXT;
            v[c].data = sqlite3_column_text(sel, c);
            v[c].len = (size_t)sqlite3_column_bytes(sel, c);
        }
        v[9].type = AUDIT_TEXT;
        v[9].data = prev;
        v[9].len = 64;
        char hash[65];
        audit_hash_row(v, hash);
        sqlite3_bind_int64(upd, 1, v[0].i);
        sqlite3_bind_text(upd, 2, prev, 64, SQLITE_TRANSIENT);
        sqlite3_bind_text(upd, 3, hash, 64, SQLITE_TRANSIENT);
        sqlite3_bind_int(upd, 4, keep_mac);
        assert_int_equal(sqlite3_step(upd), SQLITE_DONE);
        sqlite3_reset(upd);
        memcpy(prev, hash, sizeof(prev));
    }
    sqlite3_finalize(sel);
    sqlite3_finalize(upd);
    assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

/* Each tampering on a fresh sealed log of 30 entries (entry 1 is audit.seal_start), verified
 * as the CLI would (a fresh seal of the same files). */
static void
t_tail_deleted(struct fx *fx)
{
    raw_exec(fx, "DROP TRIGGER audit_log_no_delete; DELETE FROM audit_log WHERE id > 27; "
                 "UPDATE sqlite_sequence SET seq = 27 WHERE name = 'audit_log'");
}
static void
t_tail_replaced(struct fx *fx)
{
    t_tail_deleted(fx);
    append_own(fx->s, 5); /* new entries with the old ids, appended with the key */
}
static void
t_rechained(struct fx *fx)
{
    rechain_from(fx, 10, 1);
}
static void
t_rechained_no_macs(struct fx *fx)
{
    rechain_from(fx, 10, 0);
}
static void
t_mac_altered(struct fx *fx)
{
    raw_exec(fx, "DROP TRIGGER audit_log_no_update; UPDATE audit_log SET mac = "
                 "CASE substr(mac, 1, 1) WHEN 'a' THEN 'b' ELSE 'a' END || substr(mac, 2) "
                 "WHERE id = 7");
}
static void
t_forged_tail(struct fx *fx)
{
    /* a row appended with the right chain hash but no key: no MAC */
    sqlite3 *db;
    assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
    char prev[65];
    char *hash = NULL;
    assert_int_equal(store_audit_row_hash(fx->s, 30, &hash), STORE_OK);
    snprintf(prev, sizeof(prev), "%s", hash);
    free(hash);
    raw_append(db, 31, 1700000000000LL, "mallory", "user.create", "eve", "{}", "ok", prev);
    sqlite3_close(db);
}
static void
t_anchor_deleted(struct fx *fx)
{
    char key[160], anchor[160];
    seal_paths(fx, key, anchor);
    assert_int_equal(unlink(anchor), 0);
}
static void
t_key_replaced(struct fx *fx)
{
    char key[160], anchor[160];
    seal_paths(fx, key, anchor);
    unsigned char other[AUDIT_KEY_BYTES];
    memset(other, 0x42, sizeof(other));
    write_file(key, other, sizeof(other));
}
static void
t_key_deleted(struct fx *fx)
{
    char key[160], anchor[160];
    seal_paths(fx, key, anchor);
    assert_int_equal(unlink(key), 0);
}
static void
t_both_deleted(struct fx *fx)
{
    t_key_deleted(fx);
    t_anchor_deleted(fx);
}
static void
t_anchor_garbage(struct fx *fx)
{
    char key[160], anchor[160];
    seal_paths(fx, key, anchor);
    write_file(anchor, "not an anchor\n", 14);
}

static void
test_seal_tampering(void **state)
{
    (void)state;
    static const struct {
        const char *what;
        void (*tamper)(struct fx *);
        const char *problems, *notes;
        int64_t first_bad_mac, macs_bad, macs_missing;
    } cases[] = {
        {"tail deleted, sequence lowered", t_tail_deleted, ",anchor_entry_missing,", "", 0, 0, 0},
        {"tail deleted, new entries in its place", t_tail_replaced, ",anchor_entry_differs,",
         ",entries_after_anchor,", 0, 0, 0},
        {"chain recomputed without the key", t_rechained, ",mac_invalid,anchor_entry_differs,", "",
         10, 21, 0},
        {"chain recomputed, MACs removed", t_rechained_no_macs,
         ",mac_missing,anchor_entry_differs,", "", 10, 0, 21},
        {"one MAC altered", t_mac_altered, ",mac_invalid,", "", 7, 1, 0},
        {"forged entry without a MAC", t_forged_tail, ",mac_missing,", ",entries_after_anchor,", 31,
         0, 1},
        {"anchor deleted", t_anchor_deleted, ",anchor_missing,", "", 0, 0, 0},
        {"anchor not an anchor", t_anchor_garbage, ",anchor_invalid,", "", 0, 0, 0},
        {"key replaced", t_key_replaced, ",mac_invalid,anchor_invalid,", "", 1, 30, 0},
        {"key deleted", t_key_deleted, ",key_missing,", "", 0, 0, 0},
        {"key and anchor deleted", t_both_deleted, ",key_missing,anchor_missing,", "", 0, 0, 0},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        void *st;
        assert_int_equal(fx_setup(&st), 0);
        struct fx *fx = st;
        struct audit_seal *seal = seal_on(fx);
        append_own(fx->s, 29);
        struct audit_verify_report r;
        struct codes c;
        verify_fresh(fx, &r, &c);
        expect_codes(&c, "", "");
        cases[i].tamper(fx);
        verify_fresh(fx, &r, &c);
        if (strcmp(c.problems, cases[i].problems) != 0 || strcmp(c.notes, cases[i].notes) != 0 ||
            r.first_bad_mac_id != cases[i].first_bad_mac || r.macs_bad != cases[i].macs_bad ||
            r.macs_missing != cases[i].macs_missing || r.first_bad_id != 0) {
            fail_msg("%s: problems '%s' notes '%s' first bad MAC %lld, %lld invalid, %lld "
                     "missing, chain broken at %lld",
                     cases[i].what, c.problems, c.notes, (long long)r.first_bad_mac_id,
                     (long long)r.macs_bad, (long long)r.macs_missing, (long long)r.first_bad_id);
        }
        audit_seal_stop(fx->s, seal);
        fx_teardown(&st);
    }
}

static void
copy_file(const char *from, const char *to)
{
    size_t len = 0;
    char *data = file_read_all(from, 1 << 20, &len);
    assert_non_null(data);
    write_file(to, data, len);
    free(data);
}

/* An older copy of the anchor put back: the process that wrote the newer one says so; a
 * fresh process sees entries after the anchor (what a crash leaves too); with the tail also
 * cut back to that copy nothing is left to see (the README says so). */
static void
test_seal_anchor_rolled_back(void **state)
{
    struct fx *fx = *state;
    struct audit_seal *seal = seal_on(fx);
    append_own(fx->s, 9);
    char key[160], anchor[160], copy[170];
    seal_paths(fx, key, anchor);
    snprintf(copy, sizeof(copy), "%s.anchor-copy", fx->path);
    copy_file(anchor, copy);
    append_own(fx->s, 10);
    copy_file(copy, anchor);

    struct audit_verify_report r;
    struct codes c;
    assert_int_equal(audit_verify(fx->s, seal, &r), STORE_OK); /* this process */
    memset(&c, 0, sizeof(c));
    audit_verify_findings(&r, collect_code, &c);
    expect_codes(&c, ",anchor_rolled_back,", ",entries_after_anchor,");
    assert_false(audit_verify_ok(&r));

    verify_fresh(fx, &r, &c); /* another process */
    expect_codes(&c, "", ",entries_after_anchor,");
    assert_int_equal(r.after_anchor, 10);
    assert_int_equal(r.at.id, 10);

    raw_exec(fx, "DROP TRIGGER audit_log_no_delete; DELETE FROM audit_log WHERE id > 10; "
                 "UPDATE sqlite_sequence SET seq = 10 WHERE name = 'audit_log'");
    verify_fresh(fx, &r, &c);
    expect_codes(&c, "", ""); /* not detectable without a copy of the anchor kept elsewhere */
    audit_seal_stop(fx->s, seal);
}

/* A torn write spoils one slot: the other still holds the previous anchor, and the next
 * commit writes over the spoiled one. */
static void
test_seal_torn_slot(void **state)
{
    struct fx *fx = *state;
    struct audit_seal *seal = seal_on(fx);
    append_own(fx->s, 4);
    char key[160], anchor[160];
    seal_paths(fx, key, anchor);
    size_t len = 0;
    char *img = file_read_all(anchor, 4096, &len);
    assert_int_equal(len, 768);
    /* the newest slot is the one with the higher seq: spoil it halfway */
    int newest = strtoull(strstr(img, "seq=") + 4, NULL, 10) >
                         strtoull(strstr(img + 512, "seq=") + 4, NULL, 10)
                     ? 0
                     : 1;
    memset(img + newest * 512 + 100, 0, 100);
    write_file(anchor, img, len);
    free(img);
    struct audit_verify_report r;
    struct codes c;
    verify_fresh(fx, &r, &c);
    expect_codes(&c, "", ",entries_after_anchor,");
    assert_int_equal(r.at.id, 4);
    append_own(fx->s, 1);
    verify_fresh(fx, &r, &c);
    expect_codes(&c, "", "");
    assert_int_equal(r.at.id, 6);
    audit_seal_stop(fx->s, seal);
}

/* Two processes appending at once (the server and a CLI command): the anchor never goes
 * back and ends at the newest entry. */
static void
test_seal_two_processes(void **state)
{
    struct fx *fx = *state;
    struct audit_seal *seal = seal_on(fx);
    pid_t kids[2];
    for (int k = 0; k < 2; k++) {
        kids[k] = fork();
        if (kids[k] == 0) {
            char err[256];
            struct store *s = store_open(fx->path, err, sizeof(err));
            struct audit_seal *own = NULL;
            char key[160], anchor[160], msg[1024];
            seal_paths(fx, key, anchor);
            int bad =
                !s || audit_seal_start(s, key, anchor, &sys_actor, &own, msg, sizeof(msg)) != 0;
            for (int i = 0; !bad && i < 150; i++) {
                struct audit_entry e = {"cli", "", "local", "user.update", "x", NULL, "ok"};
                bad = store_audit_append(s, &e, NULL) != STORE_OK;
            }
            audit_seal_stop(s, own);
            store_close(s);
            _exit(bad);
        }
    }
    append_own(fx->s, 150);
    for (int k = 0; k < 2; k++) {
        int status = 0;
        assert_int_equal(waitpid(kids[k], &status, 0), kids[k]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    struct audit_verify_report r;
    struct codes c;
    verify_fresh(fx, &r, &c);
    expect_codes(&c, "", "");
    assert_int_equal(r.checked, 451);
    assert_int_equal(r.at.id, 451);
    assert_int_equal(r.macs_ok, 451);
    audit_seal_stop(fx->s, seal);
}

/* A lost key: nothing appends without it; `audit reseal` makes a new one on the record. */
static void
test_seal_lost_key_and_reseal(void **state)
{
    struct fx *fx = *state;
    struct audit_seal *seal = seal_on(fx);
    append_own(fx->s, 9);
    audit_seal_stop(fx->s, seal);
    char key[160], anchor[160], err[1024];
    seal_paths(fx, key, anchor);
    assert_int_equal(unlink(key), 0);
    assert_int_equal(audit_seal_start(fx->s, key, anchor, &sys_actor, &seal, err, sizeof(err)), -1);
    assert_non_null(strstr(err, key));
    assert_non_null(strstr(err, "is missing"));
    assert_non_null(strstr(err, "consulate audit reseal"));
    assert_int_not_equal(access(key, F_OK), 0); /* not replaced silently */

    struct audit_verify_report before, r;
    int64_t id = 0;
    assert_int_equal(audit_reseal(fx->s, key, anchor, &sys_actor, &before, &id, err, sizeof(err)),
                     0);
    assert_false(audit_verify_ok(&before));
    assert_int_equal(id, 11);
    file_mode_is(key, 0600, AUDIT_KEY_BYTES);
    assert_int_equal(raw_int(fx, "SELECT count(*) FROM audit_log WHERE id = 11 AND action = "
                                 "'audit.reseal' AND detail LIKE '%key_missing%' AND detail "
                                 "LIKE '%\"key_created\":true%'"),
                     1);
    seal = seal_on(fx);
    append_own(fx->s, 3);
    struct codes c;
    verify_fresh(fx, &r, &c);
    expect_codes(&c, "", ",unsealed_entries,");
    assert_int_equal(r.sealed_from, 11);
    assert_int_equal(r.unsealed, 10);
    assert_int_equal(r.macs_ok, 4);
    audit_seal_stop(fx->s, seal);

    /* a lost anchor with the key kept: nothing says where this key's MACs start, so the
     * older key's count as invalid; after the reseal the MACs this key made stay checked */
    assert_int_equal(unlink(anchor), 0);
    verify_fresh(fx, &r, &c);
    expect_codes(&c, ",mac_invalid,anchor_missing,", "");
    assert_int_equal(r.macs_bad, 10);
    assert_int_equal(audit_reseal(fx->s, key, anchor, &sys_actor, &before, &id, err, sizeof(err)),
                     0);
    verify_fresh(fx, &r, &c);
    expect_codes(&c, "", ",unsealed_entries,");
    assert_int_equal(r.sealed_from, 11);
    assert_int_equal(r.macs_ok, 5);
}

/* ---- the export writer ---- */

struct sink {
    struct buf b;
    int calls, fail_at;
};

static int
sink_take(void *ctx, const void *data, size_t len)
{
    struct sink *k = ctx;
    assert_true(len > 0);
    if (++k->calls == k->fail_at) {
        return -1;
    }
    return buf_append(&k->b, data, len) == BUF_OK ? 0 : -1;
}

static void
test_export_writer(void **state)
{
    struct fx *fx = *state;
    append_n(fx->s, 3000);
    struct audit_filter all = {0};
    struct sink k = {.fail_at = -1};
    buf_init(&k.b, 64 << 20);
    int64_t rows = 0;
    assert_int_equal(audit_export(fx->s, &all, AUDIT_EXPORT_CSV, sink_take, &k, &rows),
                     AUDIT_EXPORT_OK);
    assert_int_equal(rows, 3000);
    assert_true(k.calls >= 3); /* in chunks of about 64 KiB */
    assert_true(str_starts_with(k.b.data, "id,time,actor,role,ip,action,target,outcome,"));
    assert_true(str_starts_with(strchr(k.b.data, '\n') + 1, "3000,"));
    assert_true(str_ends_with(k.b.data, "\r\n"));
    buf_reset(&k.b);
    k.calls = 0;
    struct audit_filter some = {.outcome = "denied"};
    assert_int_equal(audit_export(fx->s, &some, AUDIT_EXPORT_JSONL, sink_take, &k, &rows),
                     AUDIT_EXPORT_OK);
    assert_int_equal(rows, 1000);
    cJSON *first = json_parse_str(strtok(k.b.data, "\n"));
    assert_string_equal(json_get_str(first, "outcome", ""), "denied");
    cJSON_Delete(first);
    /* a sink that fails stops the walk */
    buf_reset(&k.b);
    k.calls = 0;
    k.fail_at = 2;
    assert_int_equal(audit_export(fx->s, &all, AUDIT_EXPORT_CSV, sink_take, &k, &rows),
                     AUDIT_EXPORT_SINK);
    assert_int_equal(k.calls, 2);
    assert_true(rows < 3000);
    /* a row that does not fit the 16 MiB buffer stops it too */
    raw_exec(fx, "INSERT INTO audit_log (id, ts, actor, role, ip, action, target, detail, "
                 "outcome, prev_hash, hash) VALUES (-1, 0, 'x', '', '', 'a.b', '', "
                 "hex(zeroblob(8500000)), 'ok', '', '')");
    buf_reset(&k.b);
    k.calls = 0;
    k.fail_at = -1;
    assert_int_equal(audit_export(fx->s, &all, AUDIT_EXPORT_CSV, sink_take, &k, &rows),
                     AUDIT_EXPORT_TOO_BIG);
    assert_int_equal(rows, 3000);
    buf_free(&k.b);
    enum audit_export_format fmt;
    assert_int_equal(audit_export_format_parse("jsonl", &fmt), 0);
    assert_int_equal(fmt, AUDIT_EXPORT_JSONL);
    assert_int_equal(audit_export_format_parse("xml", &fmt), -1);
    assert_int_equal(audit_export_format_parse(NULL, &fmt), -1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash),
        cmocka_unit_test_setup_teardown(test_verify_intact, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_triggers_refuse, fx_setup, fx_teardown),
        cmocka_unit_test(test_migration_2_keeps_the_chain),
        cmocka_unit_test(test_verify_tamper_each_column),
        cmocka_unit_test(test_verify_deletions),
        cmocka_unit_test_setup_teardown(test_query_filters, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_query_paging, fx_setup, fx_teardown),
        cmocka_unit_test(test_csv),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_action_prefix_valid),
        cmocka_unit_test_setup_teardown(test_seal_start_and_verify, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_seal_legacy_entries, fx_setup, fx_teardown),
        cmocka_unit_test(test_seal_tampering),
        cmocka_unit_test_setup_teardown(test_seal_anchor_rolled_back, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_seal_torn_slot, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_seal_two_processes, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_seal_lost_key_and_reseal, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_export_writer, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
