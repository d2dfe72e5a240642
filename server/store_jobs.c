/* store_jobs: the SQL of the inventory and of jobs (see include/store_jobs.h).
 *
 * The job list picks one of a few constant statements by the filter given, so SQLite walks
 * the matching index in id order and stops after the page (an "?N IS NULL OR col = ?N"
 * predicate could not use an index):
 *   node given  → jobs_node (node, id)
 *   state given → jobs_state (state, id)
 *   type given  → jobs_type (type, id)
 *   otherwise   → the table in id order.
 * The other filters are then checked on the rows the index yields. Parameters:
 *   ?1 state  ?2 type  ?3 node  ?4 before_id (exclusive)  ?5 limit (-1 = none) */
#include "store_jobs.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_internal.h"
#include "util.h"

static int
exec_b(struct store *s, int must_change, const char *sql, const char *types, ...)
{
    va_list ap;
    va_start(ap, types);
    int rc = store_exec_v(s, must_change, sql, types, ap);
    va_end(ap);
    return rc;
}

/* A text column newly allocated, or NULL for NULL. */
static char *
col_dup(sqlite3_stmt *st, int c)
{
    const char *v = (const char *)sqlite3_column_text(st, c);
    return v ? xstrdup(v) : NULL;
}

static const char *
col_text(sqlite3_stmt *st, int c)
{
    const char *v = (const char *)sqlite3_column_text(st, c);
    return v ? v : "";
}

static void
col_copy(sqlite3_stmt *st, int c, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s", col_text(st, c));
}

/* Binds a time: 0 binds NULL. */
static void
bind_time(sqlite3_stmt *st, int idx, int64_t ms)
{
    if (ms) {
        sqlite3_bind_int64(st, idx, ms);
    } else {
        sqlite3_bind_null(st, idx);
    }
}

/* Steps a query statement, calling row(st, ctx) for each row until it returns non-zero.
 * Finishes st. Returns STORE_OK, STORE_STOP or STORE_ERROR. */
static int
rows_each(struct store *s, sqlite3_stmt *st, int (*row)(sqlite3_stmt *st, void *ctx), void *ctx)
{
    int rc, out = STORE_OK;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (row(st, ctx)) {
            out = STORE_STOP;
            break;
        }
    }
    if (out == STORE_OK && rc != SQLITE_DONE) {
        log_error("store: %s", sqlite3_errmsg(store_sqlite(s)));
        out = STORE_ERROR;
    }
    store_finish(s, st);
    return out;
}

/* ---- nodes ---- */

void
store_node_clear(struct store_node *n)
{
    if (!n) {
        return;
    }
    free(n->name);
    free(n->address);
    free(n->ssh_user);
    free(n->ssh_key_path);
    free(n->compose_dir);
    free(n->data_dir);
    free(n->server_state);
    free(n->host_key_type);
    free(n->host_key_fingerprint);
    free(n->host_key_pinned_by);
    memset(n, 0, sizeof(*n));
}

static char *
dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

void
store_node_copy(struct store_node *dst, const struct store_node *src)
{
    *dst = *src;
    dst->name = dup_or_null(src->name);
    dst->address = dup_or_null(src->address);
    dst->ssh_user = dup_or_null(src->ssh_user);
    dst->ssh_key_path = dup_or_null(src->ssh_key_path);
    dst->compose_dir = dup_or_null(src->compose_dir);
    dst->data_dir = dup_or_null(src->data_dir);
    dst->server_state = dup_or_null(src->server_state);
    dst->host_key_type = dup_or_null(src->host_key_type);
    dst->host_key_fingerprint = dup_or_null(src->host_key_fingerprint);
    dst->host_key_pinned_by = dup_or_null(src->host_key_pinned_by);
}

#define NODE_COLS                                                                                  \
    "id, name, address, ssh_port, ssh_user, ssh_key_path, compose_dir, data_dir, server_state, "   \
    "host_key_type, host_key_bits, host_key_fingerprint, host_key_pinned_at, host_key_pinned_by, " \
    "created_at, updated_at"

static void
node_from_row(sqlite3_stmt *st, struct store_node *n)
{
    memset(n, 0, sizeof(*n));
    n->id = sqlite3_column_int64(st, 0);
    n->name = col_dup(st, 1);
    n->address = col_dup(st, 2);
    n->ssh_port = sqlite3_column_int(st, 3);
    n->ssh_user = col_dup(st, 4);
    n->ssh_key_path = col_dup(st, 5);
    n->compose_dir = col_dup(st, 6);
    n->data_dir = col_dup(st, 7);
    n->server_state = col_dup(st, 8);
    n->host_key_type = col_dup(st, 9);
    n->host_key_bits = sqlite3_column_int(st, 10);
    n->host_key_fingerprint = col_dup(st, 11);
    n->host_key_pinned_at = sqlite3_column_int64(st, 12);
    n->host_key_pinned_by = col_dup(st, 13);
    n->created_at = sqlite3_column_int64(st, 14);
    n->updated_at = sqlite3_column_int64(st, 15);
}

int
store_node_get(struct store *s, const char *name, struct store_node *out)
{
    sqlite3_stmt *st;
    memset(out, 0, sizeof(*out));
    if (store_prepare(s, "SELECT " NODE_COLS " FROM nodes WHERE name = ?1", &st)) {
        return STORE_ERROR;
    }
    store_bind_text(st, 1, name);
    int rc = sqlite3_step(st), out_rc;
    if (rc == SQLITE_ROW) {
        node_from_row(st, out);
        out_rc = STORE_OK;
    } else {
        out_rc = rc == SQLITE_DONE ? STORE_NOT_FOUND : STORE_ERROR;
    }
    store_finish(s, st);
    return out_rc;
}

struct node_each {
    store_node_cb cb;
    void *ctx;
};

static int
node_row(sqlite3_stmt *st, void *ctx)
{
    struct node_each *e = ctx;
    struct store_node n;
    node_from_row(st, &n);
    int stop = e->cb(&n, e->ctx);
    store_node_clear(&n);
    return stop;
}

int
store_node_each(struct store *s, store_node_cb cb, void *ctx)
{
    sqlite3_stmt *st;
    if (store_prepare(s, "SELECT " NODE_COLS " FROM nodes ORDER BY name", &st)) {
        return STORE_ERROR;
    }
    struct node_each e = {cb, ctx};
    return rows_each(s, st, node_row, &e);
}

int
store_node_insert(struct store *s, const struct store_node *n, int64_t now)
{
    return exec_b(s, 0,
                  "INSERT INTO nodes (name, address, ssh_port, ssh_user, ssh_key_path, "
                  "compose_dir, data_dir, server_state, created_at, updated_at) "
                  "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
                  "ttnttttti", n->name, n->address, n->ssh_port, n->ssh_user, n->ssh_key_path,
                  n->compose_dir, n->data_dir, n->server_state ? n->server_state : "unknown", now);
}

int
store_node_update(struct store *s, const struct store_node *n, int unpin, int64_t now)
{
    return exec_b(s, 1,
                  "UPDATE nodes SET address = ?2, ssh_port = ?3, ssh_user = ?4, ssh_key_path = ?5, "
                  "compose_dir = ?6, data_dir = ?7, server_state = ?8, updated_at = ?9, "
                  "host_key_type = CASE WHEN ?10 THEN NULL ELSE host_key_type END, "
                  "host_key_bits = CASE WHEN ?10 THEN NULL ELSE host_key_bits END, "
                  "host_key_fingerprint = CASE WHEN ?10 THEN NULL ELSE host_key_fingerprint END, "
                  "host_key_pinned_at = CASE WHEN ?10 THEN NULL ELSE host_key_pinned_at END, "
                  "host_key_pinned_by = CASE WHEN ?10 THEN NULL ELSE host_key_pinned_by END "
                  "WHERE name = ?1",
                  "ttntttttin", n->name, n->address, n->ssh_port, n->ssh_user, n->ssh_key_path,
                  n->compose_dir, n->data_dir, n->server_state, now, unpin ? 1 : 0);
}

int
store_node_delete(struct store *s, const char *name)
{
    return exec_b(s, 1, "DELETE FROM nodes WHERE name = ?1", "t", name);
}

int
store_node_set_server_state(struct store *s, const char *name, const char *state, int64_t now)
{
    return exec_b(s, 1, "UPDATE nodes SET server_state = ?2, updated_at = ?3 WHERE name = ?1",
                  "tti", name, state, now);
}

int
store_node_pin(struct store *s, const char *name, const char *type, int bits,
               const char *fingerprint, const char *user, int64_t now)
{
    return exec_b(s, 1,
                  "UPDATE nodes SET host_key_type = ?2, host_key_bits = ?3, "
                  "host_key_fingerprint = ?4, host_key_pinned_at = ?5, host_key_pinned_by = ?6, "
                  "updated_at = ?5 WHERE name = ?1",
                  "ttntit", name, type, bits, fingerprint, now, user);
}

int
store_node_busy(struct store *s, const char *node, int64_t *job_id)
{
    *job_id = 0;
    return store_query_int(s,
                           "SELECT coalesce(max(j.id), 0) FROM job_nodes n JOIN jobs j "
                           "ON j.id = n.job_id WHERE n.node = ?1 AND j.state IN "
                           "('awaiting_approval', 'queued', 'running')",
                           node, job_id);
}

/* ---- jobs ---- */

void
store_job_clear(struct store_job *j)
{
    if (!j) {
        return;
    }
    free(j->node);
    free(j->reason);
    free(j->options);
    free(j->requested_by);
    free(j->approved_by);
    free(j->rejected_by);
    free(j->decision_comment);
    free(j->cancelled_by);
    free(j->plan);
    free(j->prechecks);
    free(j->result);
    memset(j, 0, sizeof(*j));
}

#define JOB_COLS                                                                                   \
    "id, type, node, strategy, state, reason, options, target_job, requested_by, requested_at, "   \
    "approved_by, approved_at, rejected_by, rejected_at, decision_comment, cancelled_by, "         \
    "cancel_requested, started_at, ended_at, plan, prechecks, result, log_lines"

static void
job_from_row(sqlite3_stmt *st, struct store_job *j)
{
    memset(j, 0, sizeof(*j));
    j->id = sqlite3_column_int64(st, 0);
    col_copy(st, 1, j->type, sizeof(j->type));
    j->node = col_dup(st, 2);
    col_copy(st, 3, j->strategy, sizeof(j->strategy));
    col_copy(st, 4, j->state, sizeof(j->state));
    j->reason = col_dup(st, 5);
    j->options = col_dup(st, 6);
    j->target_job = sqlite3_column_int64(st, 7);
    j->requested_by = col_dup(st, 8);
    j->requested_at = sqlite3_column_int64(st, 9);
    j->approved_by = col_dup(st, 10);
    j->approved_at = sqlite3_column_int64(st, 11);
    j->rejected_by = col_dup(st, 12);
    j->rejected_at = sqlite3_column_int64(st, 13);
    j->decision_comment = col_dup(st, 14);
    j->cancelled_by = col_dup(st, 15);
    j->cancel_requested = sqlite3_column_int(st, 16);
    j->started_at = sqlite3_column_int64(st, 17);
    j->ended_at = sqlite3_column_int64(st, 18);
    j->plan = col_dup(st, 19);
    j->prechecks = col_dup(st, 20);
    j->result = col_dup(st, 21);
    j->log_lines = sqlite3_column_int64(st, 22);
}

int
store_job_insert(struct store *s, const struct store_job *j, const char *const *nodes, size_t n,
                 int64_t *id_out)
{
    sqlite3_stmt *st;
    if (store_prepare(s,
                      "INSERT INTO jobs (type, node, strategy, state, reason, options, "
                      "target_job, requested_by, requested_at, plan, prechecks, result) VALUES "
                      "(?1, ?2, ?3, ?4, ?5, coalesce(?6, '{}'), ?7, ?8, ?9, coalesce(?10, '{}'), "
                      "coalesce(?11, '[]'), coalesce(?12, '{}'))",
                      &st)) {
        return STORE_ERROR;
    }
    store_bind_text(st, 1, j->type);
    store_bind_text(st, 2, j->node);
    store_bind_text(st, 3, j->strategy[0] ? j->strategy : NULL);
    store_bind_text(st, 4, j->state);
    store_bind_text(st, 5, j->reason ? j->reason : "");
    store_bind_text(st, 6, j->options);
    if (j->target_job) {
        sqlite3_bind_int64(st, 7, j->target_job);
    }
    store_bind_text(st, 8, j->requested_by);
    sqlite3_bind_int64(st, 9, j->requested_at);
    store_bind_text(st, 10, j->plan);
    store_bind_text(st, 11, j->prechecks);
    store_bind_text(st, 12, j->result);
    int rc = store_step_done(s, st);
    if (rc != STORE_OK) {
        return rc;
    }
    int64_t id = sqlite3_last_insert_rowid(store_sqlite(s));
    for (size_t i = 0; i < n && rc == STORE_OK; i++) {
        rc = store_job_add_node(s, id, nodes[i]);
    }
    if (rc == STORE_OK && id_out) {
        *id_out = id;
    }
    return rc;
}

int
store_job_get(struct store *s, int64_t id, struct store_job *out)
{
    sqlite3_stmt *st;
    memset(out, 0, sizeof(*out));
    if (store_prepare(s, "SELECT " JOB_COLS " FROM jobs WHERE id = ?1", &st)) {
        return STORE_ERROR;
    }
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st), out_rc;
    if (rc == SQLITE_ROW) {
        job_from_row(st, out);
        out_rc = STORE_OK;
    } else {
        out_rc = rc == SQLITE_DONE ? STORE_NOT_FOUND : STORE_ERROR;
    }
    store_finish(s, st);
    return out_rc;
}

int
store_job_update(struct store *s, int64_t id, const char *expect_state,
                 const struct store_job_change *c)
{
    sqlite3_stmt *st;
    if (store_prepare(s,
                      "UPDATE jobs SET state = coalesce(?3, state), "
                      "approved_by = coalesce(?4, approved_by), "
                      "approved_at = coalesce(?5, approved_at), "
                      "rejected_by = coalesce(?6, rejected_by), "
                      "rejected_at = coalesce(?7, rejected_at), "
                      "decision_comment = coalesce(?8, decision_comment), "
                      "cancelled_by = coalesce(?9, cancelled_by), "
                      "cancel_requested = CASE WHEN ?10 < 0 THEN cancel_requested ELSE ?10 END, "
                      "started_at = coalesce(?11, started_at), "
                      "ended_at = coalesce(?12, ended_at), plan = coalesce(?13, plan), "
                      "prechecks = coalesce(?14, prechecks), result = coalesce(?15, result) "
                      "WHERE id = ?1 AND (?2 IS NULL OR state = ?2)",
                      &st)) {
        return STORE_ERROR;
    }
    sqlite3_bind_int64(st, 1, id);
    store_bind_text(st, 2, expect_state);
    store_bind_text(st, 3, c->state);
    store_bind_text(st, 4, c->approved_by);
    bind_time(st, 5, c->approved_at);
    store_bind_text(st, 6, c->rejected_by);
    bind_time(st, 7, c->rejected_at);
    store_bind_text(st, 8, c->decision_comment);
    store_bind_text(st, 9, c->cancelled_by);
    sqlite3_bind_int(st, 10, c->cancel_requested);
    bind_time(st, 11, c->started_at);
    bind_time(st, 12, c->ended_at);
    store_bind_text(st, 13, c->plan);
    store_bind_text(st, 14, c->prechecks);
    store_bind_text(st, 15, c->result);
    int rc = store_step_done(s, st);
    if (rc == STORE_OK && sqlite3_changes(store_sqlite(s)) == 0) {
        rc = STORE_NOT_FOUND;
    }
    return rc;
}

#define JOB_PAGE " AND id < ?4 ORDER BY id DESC LIMIT ?5"
#define JOB_REST_STATE " AND (?1 IS NULL OR state = ?1)"
#define JOB_REST_TYPE " AND (?2 IS NULL OR type = ?2)"

enum job_plan { JP_NODE, JP_STATE, JP_TYPE, JP_ALL };

static const char *const job_list_sql[] = {
    [JP_NODE] =
        "SELECT " JOB_COLS
        " FROM jobs INDEXED BY jobs_node WHERE node = ?3" JOB_REST_STATE JOB_REST_TYPE JOB_PAGE,
    [JP_STATE] = "SELECT " JOB_COLS
                 " FROM jobs INDEXED BY jobs_state WHERE state = ?1" JOB_REST_TYPE JOB_PAGE,
    [JP_TYPE] = "SELECT " JOB_COLS " FROM jobs INDEXED BY jobs_type WHERE type = ?2" JOB_PAGE,
    [JP_ALL] = "SELECT " JOB_COLS " FROM jobs WHERE 1" JOB_PAGE,
};

static const char *
opt(const char *s)
{
    return s && *s ? s : NULL;
}

struct job_each {
    store_job_cb cb;
    void *ctx;
};

static int
job_row(sqlite3_stmt *st, void *ctx)
{
    struct job_each *e = ctx;
    struct store_job j;
    job_from_row(st, &j);
    int stop = e->cb(&j, e->ctx);
    store_job_clear(&j);
    return stop;
}

int
store_job_list(struct store *s, const struct store_job_filter *f, store_job_cb cb, void *ctx)
{
    enum job_plan p = opt(f->node)    ? JP_NODE
                      : opt(f->state) ? JP_STATE
                      : opt(f->type)  ? JP_TYPE
                                      : JP_ALL;
    sqlite3_stmt *st;
    if (store_prepare(s, job_list_sql[p], &st)) {
        return STORE_ERROR;
    }
    store_bind_text(st, 1, opt(f->state));
    store_bind_text(st, 2, opt(f->type));
    store_bind_text(st, 3, opt(f->node));
    sqlite3_bind_int64(st, 4, f->before_id > 0 ? f->before_id : INT64_MAX);
    sqlite3_bind_int64(st, 5, f->limit > 0 ? f->limit : -1);
    struct job_each e = {cb, ctx};
    return rows_each(s, st, job_row, &e);
}

int
store_job_next_queued(struct store *s, int diagnose, int64_t *id)
{
    *id = 0;
    return store_query_int(s,
                           diagnose ? "SELECT coalesce(min(id), 0) FROM jobs INDEXED BY jobs_state "
                                      "WHERE state = 'queued' AND type = 'diagnose'"
                                    : "SELECT coalesce(min(id), 0) FROM jobs INDEXED BY jobs_state "
                                      "WHERE state = 'queued' AND type <> 'diagnose'",
                           NULL, id);
}

int
store_job_rollback_of(struct store *s, int64_t target, int64_t *id)
{
    sqlite3_stmt *st;
    *id = 0;
    if (store_prepare(s,
                      "SELECT coalesce(max(id), 0) FROM jobs WHERE target_job = ?1 AND type = "
                      "'rollback' AND state NOT IN ('rejected', 'cancelled', 'failed')",
                      &st)) {
        return STORE_ERROR;
    }
    sqlite3_bind_int64(st, 1, target);
    int rc = STORE_ERROR;
    if (sqlite3_step(st) == SQLITE_ROW) {
        *id = sqlite3_column_int64(st, 0);
        rc = STORE_OK;
    }
    store_finish(s, st);
    return rc;
}

int
store_job_add_node(struct store *s, int64_t job, const char *node)
{
    return exec_b(s, 0, "INSERT OR IGNORE INTO job_nodes (node, job_id) VALUES (?1, ?2)", "ti",
                  node, job);
}

int
store_job_undo_count(struct store *s, int64_t job, const char *kind, int64_t *n)
{
    sqlite3_stmt *st;
    *n = 0;
    if (store_prepare(s,
                      "SELECT count(*) FROM job_undo WHERE job_id = ?1 AND (?2 IS NULL OR kind = "
                      "?2)",
                      &st)) {
        return STORE_ERROR;
    }
    sqlite3_bind_int64(st, 1, job);
    store_bind_text(st, 2, kind);
    int rc = STORE_ERROR;
    if (sqlite3_step(st) == SQLITE_ROW) {
        *n = sqlite3_column_int64(st, 0);
        rc = STORE_OK;
    }
    store_finish(s, st);
    return rc;
}

struct text_each {
    store_text_cb cb;
    void *ctx;
};

static int
text_row(sqlite3_stmt *st, void *ctx)
{
    struct text_each *e = ctx;
    return e->cb(col_text(st, 0), e->ctx);
}

int
store_job_nodes(struct store *s, int64_t job, store_text_cb cb, void *ctx)
{
    sqlite3_stmt *st;
    if (store_prepare(s, "SELECT node FROM job_nodes WHERE job_id = ?1 ORDER BY node", &st)) {
        return STORE_ERROR;
    }
    sqlite3_bind_int64(st, 1, job);
    struct text_each e = {cb, ctx};
    return rows_each(s, st, text_row, &e);
}

/* ---- steps ---- */

int
store_job_step_add(struct store *s, const struct store_job_step *sp)
{
    sqlite3_stmt *st;
    if (store_prepare(s,
                      "INSERT INTO job_steps (job_id, seq, node, title, command, state, "
                      "exit_status, started_at, ended_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
                      "?9)",
                      &st)) {
        return STORE_ERROR;
    }
    sqlite3_bind_int64(st, 1, sp->job_id);
    sqlite3_bind_int(st, 2, sp->seq);
    store_bind_text(st, 3, sp->node ? sp->node : "");
    store_bind_text(st, 4, sp->title);
    store_bind_text(st, 5, sp->command);
    store_bind_text(st, 6, sp->state ? sp->state : "pending");
    if (sp->has_exit) {
        sqlite3_bind_int(st, 7, sp->exit_status);
    }
    bind_time(st, 8, sp->started_at);
    bind_time(st, 9, sp->ended_at);
    return store_step_done(s, st);
}

int
store_job_step_update(struct store *s, int64_t job, int seq, const char *state, int has_exit,
                      int exit_status, int64_t started_at, int64_t ended_at)
{
    sqlite3_stmt *st;
    if (store_prepare(s,
                      "UPDATE job_steps SET state = ?3, "
                      "exit_status = CASE WHEN ?4 THEN ?5 ELSE exit_status END, "
                      "started_at = coalesce(?6, started_at), ended_at = coalesce(?7, ended_at) "
                      "WHERE job_id = ?1 AND seq = ?2",
                      &st)) {
        return STORE_ERROR;
    }
    sqlite3_bind_int64(st, 1, job);
    sqlite3_bind_int(st, 2, seq);
    store_bind_text(st, 3, state);
    sqlite3_bind_int(st, 4, has_exit ? 1 : 0);
    sqlite3_bind_int(st, 5, exit_status);
    bind_time(st, 6, started_at);
    bind_time(st, 7, ended_at);
    int rc = store_step_done(s, st);
    if (rc == STORE_OK && sqlite3_changes(store_sqlite(s)) == 0) {
        rc = STORE_NOT_FOUND;
    }
    return rc;
}

struct step_each {
    store_step_cb cb;
    void *ctx;
};

static int
step_row(sqlite3_stmt *st, void *ctx)
{
    struct step_each *e = ctx;
    struct store_job_step sp = {
        .job_id = sqlite3_column_int64(st, 0),
        .seq = sqlite3_column_int(st, 1),
        .node = col_text(st, 2),
        .title = col_text(st, 3),
        .command = (const char *)sqlite3_column_text(st, 4),
        .state = col_text(st, 5),
        .has_exit = sqlite3_column_type(st, 6) != SQLITE_NULL,
        .exit_status = sqlite3_column_int(st, 6),
        .started_at = sqlite3_column_int64(st, 7),
        .ended_at = sqlite3_column_int64(st, 8),
    };
    return e->cb(&sp, e->ctx);
}

int
store_job_steps(struct store *s, int64_t job, store_step_cb cb, void *ctx)
{
    sqlite3_stmt *st;
    if (store_prepare(s,
                      "SELECT job_id, seq, node, title, command, state, exit_status, started_at, "
                      "ended_at FROM job_steps WHERE job_id = ?1 ORDER BY seq",
                      &st)) {
        return STORE_ERROR;
    }
    sqlite3_bind_int64(st, 1, job);
    struct step_each e = {cb, ctx};
    return rows_each(s, st, step_row, &e);
}

/* ---- log ---- */

int
store_job_log_append(struct store *s, int64_t job, int64_t ts, const char *node, const char *stream,
                     const char *text, int64_t *line_out)
{
    int own_tx = sqlite3_get_autocommit(store_sqlite(s));
    if (own_tx && store_begin(s) != STORE_OK) {
        return STORE_ERROR;
    }
    int rc = STORE_ERROR;
    int64_t line = 0;
    sqlite3_stmt *st;
    if (store_prepare(s,
                      "UPDATE jobs SET log_lines = log_lines + 1 WHERE id = ?1 RETURNING log_lines",
                      &st) == STORE_OK) {
        sqlite3_bind_int64(st, 1, job);
        int src = sqlite3_step(st);
        if (src == SQLITE_ROW) {
            line = sqlite3_column_int64(st, 0);
            rc = sqlite3_step(st) == SQLITE_DONE ? STORE_OK : STORE_ERROR;
        } else {
            rc = src == SQLITE_DONE ? STORE_NOT_FOUND : STORE_ERROR;
        }
        store_finish(s, st);
    }
    if (rc == STORE_OK) {
        rc = exec_b(s, 0,
                    "INSERT INTO job_log (job_id, line, ts, node, stream, text) VALUES (?1, ?2, "
                    "?3, ?4, ?5, ?6)",
                    "iiittt", job, line, ts, node ? node : "", stream, text);
    }
    if (own_tx) {
        if (rc == STORE_OK) {
            rc = store_commit(s);
        }
        if (rc != STORE_OK) {
            store_rollback(s);
        }
    }
    if (rc == STORE_OK && line_out) {
        *line_out = line;
    }
    return rc;
}

struct log_each {
    store_log_cb cb;
    void *ctx;
};

static int
log_row(sqlite3_stmt *st, void *ctx)
{
    struct log_each *e = ctx;
    struct store_log_line l = {
        .job_id = sqlite3_column_int64(st, 0),
        .line = sqlite3_column_int64(st, 1),
        .ts = sqlite3_column_int64(st, 2),
        .node = col_text(st, 3),
        .stream = col_text(st, 4),
        .text = col_text(st, 5),
    };
    return e->cb(&l, e->ctx);
}

int
store_job_log_read(struct store *s, int64_t job, int64_t after, int limit, store_log_cb cb,
                   void *ctx)
{
    sqlite3_stmt *st;
    if (store_prepare(s,
                      "SELECT job_id, line, ts, node, stream, text FROM job_log WHERE job_id = ?1 "
                      "AND line > ?2 ORDER BY line LIMIT ?3",
                      &st)) {
        return STORE_ERROR;
    }
    sqlite3_bind_int64(st, 1, job);
    sqlite3_bind_int64(st, 2, after);
    sqlite3_bind_int64(st, 3, limit > 0 ? limit : -1);
    struct log_each e = {cb, ctx};
    return rows_each(s, st, log_row, &e);
}

/* ---- undo ---- */

int
store_job_undo_add(struct store *s, const struct store_undo *u, int *seq_out)
{
    sqlite3_stmt *st;
    if (store_prepare(s,
                      "INSERT INTO job_undo (job_id, seq, kind, node, path, path2, flag, content) "
                      "SELECT ?1, coalesce(max(seq), 0) + 1, ?2, ?3, ?4, ?5, ?6, ?7 FROM job_undo "
                      "WHERE job_id = ?1 RETURNING seq",
                      &st)) {
        return STORE_ERROR;
    }
    sqlite3_bind_int64(st, 1, u->job_id);
    store_bind_text(st, 2, u->kind);
    store_bind_text(st, 3, u->node);
    store_bind_text(st, 4, u->path ? u->path : "");
    store_bind_text(st, 5, u->path2 ? u->path2 : "");
    sqlite3_bind_int(st, 6, u->flag);
    if (u->content) {
        sqlite3_bind_blob(st, 7, u->content, (int)u->content_len, SQLITE_TRANSIENT);
    }
    int rc = sqlite3_step(st), out = STORE_ERROR;
    if (rc == SQLITE_ROW) {
        if (seq_out) {
            *seq_out = sqlite3_column_int(st, 0);
        }
        out = sqlite3_step(st) == SQLITE_DONE ? STORE_OK : STORE_ERROR;
    }
    if (out != STORE_OK) {
        log_error("store: undo record: %s", sqlite3_errmsg(store_sqlite(s)));
    }
    store_finish(s, st);
    return out;
}

struct undo_each {
    store_undo_cb cb;
    void *ctx;
};

static int
undo_row(sqlite3_stmt *st, void *ctx)
{
    struct undo_each *e = ctx;
    struct store_undo u = {
        .job_id = sqlite3_column_int64(st, 0),
        .seq = sqlite3_column_int(st, 1),
        .kind = col_text(st, 2),
        .node = col_text(st, 3),
        .path = col_text(st, 4),
        .path2 = col_text(st, 5),
        .flag = sqlite3_column_int(st, 6),
        .content = sqlite3_column_type(st, 7) == SQLITE_NULL
                       ? NULL
                       : (const char *)sqlite3_column_blob(st, 7),
        .content_len = (size_t)sqlite3_column_bytes(st, 7),
    };
    if (!u.content && sqlite3_column_type(st, 7) != SQLITE_NULL) {
        u.content = ""; /* an empty blob */
    }
    return e->cb(&u, e->ctx);
}

int
store_job_undo_each(struct store *s, int64_t job, store_undo_cb cb, void *ctx)
{
    sqlite3_stmt *st;
    if (store_prepare(s,
                      "SELECT job_id, seq, kind, node, path, path2, flag, content FROM job_undo "
                      "WHERE job_id = ?1 ORDER BY seq",
                      &st)) {
        return STORE_ERROR;
    }
    sqlite3_bind_int64(st, 1, job);
    struct undo_each e = {cb, ctx};
    return rows_each(s, st, undo_row, &e);
}
