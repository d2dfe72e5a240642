/* jobs: see include/jobs.h.
 *
 * Threads: the worker (cluster-changing jobs, one at a time, oldest queued first) and
 * JOBS_DIAG_THREADS diagnose threads; each has its own database connection (store_thread) and
 * a run slot holding the id of the job it runs and that job's abort flag, which a cancel
 * (PROC_ABORT_CANCEL) or the shutdown (PROC_ABORT_STOP) raises. Requests, approvals and
 * cancels run in the HTTP threads and only wake the workers.
 *
 * Every state change is one transaction with its audit entry: job.request (pending, then its
 * outcome once the prechecks ran), job.approve, job.reject, job.cancel, job.start, job.finish;
 * job.step entries are written by the procedures. */
#include "jobs.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "audit.h"
#include "config.h"
#include "events.h"
#include "inventory.h"
#include "jobs_runner.h"
#include "procedures.h"
#include "slots.h"
#include "store.h"
#include "store_jobs.h"
#include "util.h"
#include "watch.h"

#define N_SLOTS (1 + JOBS_DIAG_THREADS)
#define IDLE_WAKE_MS 1000

struct slot {
    int64_t id; /* the job running on this thread, 0 none */
    atomic_int abort;
};

struct worker_arg {
    struct jobs *j;
    int index; /* 0: the worker; 1..: diagnose */
};

struct jobs {
    struct app *app;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int stopping;
    uint64_t wakes;
    struct slot slots[N_SLOTS];
    struct worker_arg args[N_SLOTS];
    pthread_t threads[N_SLOTS];
    int n_threads;
    struct slots *preparing; /* requests in jobs_create's prepare */
};

static const struct audit_actor engine_actor = {.name = "jobs", .role = "", .ip = "local"};

int
jobs_type_changes(const char *type)
{
    return type && strcmp(type, "diagnose") != 0;
}

static void set_err(struct jobs_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
set_err(struct jobs_error *err, int code, const char *fmt, ...)
{
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
}

static void
actor_of(const struct jobs_user *u, struct audit_actor *a)
{
    a->name = u->name;
    a->role = role_name(u->role);
    a->ip = u->ip ? u->ip : "";
}

static void
target_of(int64_t id, char out[32])
{
    snprintf(out, 32, "%lld", (long long)id);
}

/* ---------------------------------------------------------------- JSON */

static void
add_str(cJSON *o, const char *key, const char *v)
{
    if (v && *v) {
        cJSON_AddStringToObject(o, key, v);
    } else {
        cJSON_AddNullToObject(o, key);
    }
}

/* A stored JSON text as a value (NULL / unparsable: fallback). */
static cJSON *
parsed_or(const char *text, cJSON *fallback)
{
    cJSON *j = text ? json_parse_str(text) : NULL;
    if (!j) {
        return fallback;
    }
    cJSON_Delete(fallback);
    return j;
}

static int
step_json_cb(const struct store_job_step *st, void *ctx)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "seq", st->seq);
    add_str(o, "node", st->node);
    cJSON_AddStringToObject(o, "title", st->title);
    add_str(o, "command", st->command);
    cJSON_AddStringToObject(o, "state", st->state);
    if (st->has_exit) {
        cJSON_AddNumberToObject(o, "exit_status", st->exit_status);
    } else {
        cJSON_AddNullToObject(o, "exit_status");
    }
    json_add_time(o, "started_at", st->started_at);
    json_add_time(o, "ended_at", st->ended_at);
    cJSON_AddItemToArray(ctx, o);
    return 0;
}

static int
in_list(const char *s, const char *const *list)
{
    for (; *list; list++) {
        if (strcmp(s, *list) == 0) {
            return 1;
        }
    }
    return 0;
}

/* The actions u may take on job now. */
static cJSON *
can_json(struct store *db, const struct store_job *job, const struct jobs_user *u)
{
    static const char *const open[] = {"awaiting_approval", "queued", "running", NULL};
    static const char *const undoable[] = {"failed", "interrupted", NULL};
    int waiting = strcmp(job->state, "awaiting_approval") == 0;
    int mine = strcmp(job->requested_by, u->name) == 0;
    int decide = waiting && u->role >= ROLE_APPROVER && !mine;
    int cancel = in_list(job->state, open) && !job->cancel_requested &&
                 ((mine && u->role >= ROLE_OPERATOR) || u->role >= ROLE_APPROVER);
    int rollback = 0;
    if (u->role >= ROLE_OPERATOR && in_list(job->state, undoable) && jobs_type_changes(job->type) &&
        strcmp(job->type, "rollback") != 0) {
        int64_t n = 0, other = 0;
        rollback = store_job_undo_count(db, job->id, NULL, &n) == STORE_OK && n > 0 &&
                   store_job_rollback_of(db, job->id, &other) == STORE_OK && other == 0;
    }
    cJSON *c = cJSON_CreateObject();
    cJSON_AddBoolToObject(c, "approve", decide);
    cJSON_AddBoolToObject(c, "reject", decide);
    cJSON_AddBoolToObject(c, "cancel", cancel);
    cJSON_AddBoolToObject(c, "rollback", rollback);
    return c;
}

cJSON *
jobs_json(struct store *db, const struct store_job *job, enum jobs_view view,
          const struct jobs_user *u, int approval_required)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)job->id);
    cJSON_AddStringToObject(o, "type", job->type);
    cJSON_AddStringToObject(o, "node", job->node);
    add_str(o, "strategy", job->strategy);
    cJSON_AddStringToObject(o, "state", job->state);
    cJSON_AddStringToObject(o, "reason", job->reason ? job->reason : "");
    cJSON_AddStringToObject(o, "requested_by", job->requested_by);
    json_add_time(o, "requested_at", job->requested_at);
    add_str(o, "approved_by", job->approved_by);
    json_add_time(o, "approved_at", job->approved_at);
    add_str(o, "rejected_by", job->rejected_by);
    json_add_time(o, "rejected_at", job->rejected_at);
    add_str(o, "decision_comment", job->decision_comment);
    add_str(o, "cancelled_by", job->cancelled_by);
    cJSON_AddBoolToObject(o, "cancel_requested", job->cancel_requested);
    json_add_time(o, "started_at", job->started_at);
    json_add_time(o, "ended_at", job->ended_at);
    if (job->target_job) {
        cJSON_AddNumberToObject(o, "target_job", (double)job->target_job);
    } else {
        cJSON_AddNullToObject(o, "target_job");
    }
    cJSON *opts = parsed_or(job->options, cJSON_CreateObject());
    cJSON *o2 = cJSON_CreateObject();
    cJSON_AddBoolToObject(o2, "fix_trap", json_get_bool(opts, "fix_trap", 0));
    cJSON_AddBoolToObject(o2, "node_gone", json_get_bool(opts, "node_gone", 0));
    cJSON_Delete(opts);
    cJSON_AddItemToObject(o, "options", o2);
    cJSON_AddBoolToObject(o, "approval_required", approval_required);
    if (view == JOBS_VIEW_FULL) {
        cJSON_AddItemToObject(o, "plan", parsed_or(job->plan, cJSON_CreateObject()));
        cJSON_AddItemToObject(o, "prechecks", parsed_or(job->prechecks, cJSON_CreateArray()));
        cJSON *steps = cJSON_AddArrayToObject(o, "steps");
        store_job_steps(db, job->id, step_json_cb, steps);
    }
    cJSON_AddItemToObject(o, "result", parsed_or(job->result, cJSON_CreateObject()));
    cJSON_AddNumberToObject(o, "log_lines", (double)job->log_lines);
    if (view != JOBS_VIEW_EVENT && u) {
        cJSON_AddItemToObject(o, "can", can_json(db, job, u));
    }
    return o;
}

/* ---------------------------------------------------------------- events */

static struct store *
thread_db(struct jobs *j)
{
    return store_thread(j->app->cfg->database);
}

/* Publishes the job's state as the "job" event (the last value kept). */
static void
publish_job(struct jobs *j, int64_t id)
{
    if (!j->app->events) {
        return;
    }
    struct store *db = thread_db(j);
    struct store_job job;
    if (!db || store_job_get(db, id, &job) != STORE_OK) {
        return;
    }
    cJSON *o = jobs_json(db, &job, JOBS_VIEW_EVENT, NULL, j->app->cfg->approval_required);
    char *text = json_print(o);
    events_publish(j->app->events, "job", text);
    free(text);
    cJSON_Delete(o);
    store_job_clear(&job);
}

struct change_arg {
    struct jobs *j;
    int64_t id;
};

/* proc_ctx.on_log: each log line as a transient "job_log" event. */
static void
on_log(void *arg, const struct store_log_line *l)
{
    struct jobs *j = ((struct change_arg *)arg)->j;
    if (!j->app->events) {
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "job", (double)l->job_id);
    cJSON_AddNumberToObject(o, "line", (double)l->line);
    json_add_time(o, "time", l->ts);
    add_str(o, "node", l->node);
    cJSON_AddStringToObject(o, "stream", l->stream);
    cJSON_AddStringToObject(o, "text", l->text);
    char *text = json_print(o);
    events_publish_transient(j->app->events, "job_log", text);
    free(text);
    cJSON_Delete(o);
}

static void
on_change(void *arg)
{
    struct change_arg *c = arg;
    publish_job(c->j, c->id);
}

static void
wake(struct jobs *j)
{
    pthread_mutex_lock(&j->mu);
    j->wakes++;
    pthread_cond_broadcast(&j->cond);
    pthread_mutex_unlock(&j->mu);
}

/* ---------------------------------------------------------------- the procedures' context */

static struct proc_limits
limits_of(const struct config *cfg)
{
    struct proc_limits l = {
        .command_timeout_ms = cfg->jobs_command_timeout_s * 1000,
        .gate_timeout_ms = cfg->jobs_gate_timeout_s * 1000,
        .gate_poll_ms = 100, /* the watcher answers a poke at most every 100 ms */
        .leave_wait_ms = 10000,
    };
    if (l.leave_wait_ms > l.gate_timeout_ms) {
        l.leave_wait_ms = l.gate_timeout_ms;
    }
    return l;
}

/* The procedures' request of a stored job (strings borrowed from job). */
static struct proc_request
request_of(const struct store_job *job)
{
    cJSON *opts = job->options ? json_parse_str(job->options) : NULL;
    struct proc_request r = {
        .type = job->type,
        .node = job->node,
        .strategy = job->strategy[0] ? job->strategy : NULL,
        .fix_trap = json_get_bool(opts, "fix_trap", 0),
        .node_gone = json_get_bool(opts, "node_gone", 0),
        .target = job->target_job,
    };
    cJSON_Delete(opts);
    return r;
}

/* ---------------------------------------------------------------- create */

static char *
options_text(const struct jobs_request *req)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "fix_trap", req->fix_trap);
    cJSON_AddBoolToObject(o, "node_gone", req->node_gone);
    char *t = json_print(o);
    cJSON_Delete(o);
    return t;
}

/* Inserts the job (state failed until its prechecks ran) with its job.request attempt.
 * Returns 0 with *id and *attempt, or -1 (err set). */
static int
create_begin(struct store *db, const struct jobs_request *req, const char *node,
             const struct jobs_user *u, int64_t *id, int64_t *attempt, struct jobs_error *err)
{
    char *opts = options_text(req);
    cJSON *pending = cJSON_CreateObject();
    cJSON_AddStringToObject(pending, "error", "the prechecks did not finish");
    char *result = json_print(pending);
    cJSON_Delete(pending);
    struct store_job row = {0};
    snprintf(row.type, sizeof(row.type), "%s", req->type);
    snprintf(row.state, sizeof(row.state), "failed");
    if (req->strategy) {
        snprintf(row.strategy, sizeof(row.strategy), "%s", req->strategy);
    } else if (jobs_type_changes(req->type) && strcmp(req->type, "rollback") != 0) {
        snprintf(row.strategy, sizeof(row.strategy), "%s", req->node_gone ? "" : "rolling");
    }
    row.node = (char *)node;
    row.reason = (char *)(req->reason ? req->reason : "");
    row.options = opts;
    row.target_job = req->target;
    row.requested_by = (char *)u->name;
    row.requested_at = time_now_ms();
    row.result = result;
    int rc = -1;
    const char *nodes[] = {node};
    if (store_begin(db) != STORE_OK) {
        set_err(err, JOBS_DB, "database busy; nothing was requested");
        goto out;
    }
    if (store_job_insert(db, &row, nodes, 1, id) != STORE_OK) {
        store_rollback(db);
        set_err(err, JOBS_DB, "database error; nothing was requested");
        goto out;
    }
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "type", req->type);
    cJSON_AddStringToObject(d, "node", node);
    add_str(d, "strategy", row.strategy);
    cJSON_AddStringToObject(d, "reason", row.reason);
    cJSON_AddItemToObject(d, "options", json_parse_str(opts));
    if (req->target) {
        cJSON_AddNumberToObject(d, "target_job", (double)req->target);
    }
    struct audit_actor a;
    actor_of(u, &a);
    char target[32];
    target_of(*id, target);
    if (audit_record(db, &a, "job.request", target, d, "pending", attempt) != STORE_OK ||
        store_commit(db) != STORE_OK) {
        store_rollback(db);
        set_err(err, JOBS_DB, "the request could not be recorded; nothing was requested");
        goto out;
    }
    rc = 0;
out:
    free(opts);
    free(result);
    return rc;
}

int
jobs_create(struct jobs *j, struct store *db, const struct jobs_request *req,
            const struct jobs_user *u, int64_t *id, struct jobs_error *err)
{
    const struct config *cfg = j->app->cfg;
    struct store_job target = {0};
    char *node = NULL;
    int rc = JOBS_OK;
    *id = 0;
    if (strcmp(req->type, "rollback") == 0) {
        int grc = store_job_get(db, req->target, &target);
        if (grc == STORE_NOT_FOUND) {
            set_err(err, JOBS_NOT_FOUND, "there is no job %lld to roll back",
                    (long long)req->target);
            return err->code;
        }
        if (grc != STORE_OK) {
            set_err(err, JOBS_DB, "database error");
            return err->code;
        }
        int64_t other = 0;
        if (store_job_rollback_of(db, target.id, &other) != STORE_OK || other) {
            set_err(err, JOBS_CONFLICT, "job %lld already has a rollback: job %lld",
                    (long long)target.id, (long long)other);
            store_job_clear(&target);
            return err->code;
        }
        /* what can never be rolled back is refused, not recorded as a failed job */
        int nothing = strcmp(target.type, "diagnose") == 0 || strcmp(target.type, "rollback") == 0;
        if (nothing || (strcmp(target.state, "failed") != 0 &&
                        strcmp(target.state, "interrupted") != 0)) {
            set_err(err, JOBS_INVALID_STATE,
                    nothing ? "job %lld is a %s: it has nothing to roll back"
                            : "job %lld is %s: only a failed or interrupted job is rolled back",
                    (long long)target.id, nothing ? target.type : target.state);
            store_job_clear(&target);
            return err->code;
        }
        node = xstrdup(target.node);
        store_job_clear(&target);
    } else {
        node = xstrdup(req->node);
    }
    struct store_node inv;
    int nrc = store_node_get(db, node, &inv);
    if (nrc == STORE_OK) {
        store_node_clear(&inv);
    } else {
        if (nrc != STORE_NOT_FOUND) {
            set_err(err, JOBS_DB, "database error");
        } else if (strcmp(req->type, "rollback") == 0) {
            set_err(err, JOBS_INVALID_STATE,
                    "job %lld was on node '%s', which is no longer in the inventory: it cannot "
                    "be rolled back",
                    (long long)req->target, node);
        } else {
            set_err(err, JOBS_INVALID, "field 'node': there is no node named '%s' in the inventory",
                    node);
        }
        free(node);
        return err->code;
    }
    int taken = slots_take(j->preparing, u->id);
    if (taken != SLOTS_OK) {
        set_err(err, taken == SLOTS_USER_FULL ? JOBS_BUSY_USER : JOBS_BUSY,
                taken == SLOTS_USER_FULL
                    ? "you already have %d requests being prepared (prechecks and plan over "
                      "SSH); wait for them to be answered"
                    : "%d requests are being prepared (prechecks and plan over SSH) already; "
                      "try again in a moment",
                taken == SLOTS_USER_FULL ? JOBS_PREPARE_PER_USER : JOBS_PREPARE_TOTAL);
        free(node);
        return err->code;
    }
    int64_t attempt = 0;
    if (create_begin(db, req, node, u, id, &attempt, err) != 0) {
        slots_give(j->preparing, u->id);
        free(node);
        return err->code;
    }
    /* the prechecks and the dry run */
    struct proc_runner run;
    struct jobs_runner *jr = jobs_runner_new(cfg, j->app->watch, &run);
    struct change_arg ca = {j, *id};
    struct proc_ctx x = {.db = db,
                         .job_id = *id,
                         .run = &run,
                         .lim = limits_of(cfg),
                         .secret = cfg->consul_token,
                         .on_log = on_log,
                         .arg = &ca,
                         .next_seq = 1};
    struct proc_request preq = {.type = req->type,
                                .node = node,
                                .strategy = req->strategy,
                                .fix_trap = req->fix_trap,
                                .node_gone = req->node_gone,
                                .target = req->target};
    struct proc_prep prep;
    proc_prepare(&x, &preq, &prep);
    jobs_runner_free(jr);
    slots_give(j->preparing, u->id);
    const char *state = prep.failed                     ? "failed"
                        : !jobs_type_changes(req->type) ? "queued"
                        : cfg->approval_required        ? "awaiting_approval"
                                                        : "queued";
    char *plan = json_print(prep.plan);
    char *pcs = json_print(prep.prechecks);
    cJSON *res = cJSON_CreateObject();
    if (prep.failed) {
        char *e = xasprintf("a precheck failed; nothing was changed: %s", prep.error);
        cJSON_AddStringToObject(res, "error", e);
        free(e);
    }
    char *result = json_print(res);
    cJSON_Delete(res);
    struct store_job_change ch = {.state = state,
                                  .plan = plan,
                                  .prechecks = pcs,
                                  .result = result,
                                  .ended_at = prep.failed ? time_now_ms() : 0,
                                  .cancel_requested = -1};
    struct audit_actor a;
    actor_of(u, &a);
    char tgt[32];
    target_of(*id, tgt);
    cJSON *d = cJSON_CreateObject();
    cJSON_AddNumberToObject(d, "attempt_id", (double)attempt);
    cJSON_AddStringToObject(d, "state", state);
    if (prep.failed) {
        cJSON_AddStringToObject(d, "error", prep.error);
    }
    if (!cfg->approval_required && jobs_type_changes(req->type)) {
        cJSON_AddBoolToObject(d, "approval_required", 0);
    }
    int ok = store_begin(db) == STORE_OK;
    ok = ok && store_job_update(db, *id, "failed", &ch) == STORE_OK;
    for (size_t i = 0; ok && i < prep.n_nodes; i++) {
        ok = store_job_add_node(db, *id, prep.nodes[i]) == STORE_OK;
    }
    ok = ok && audit_record(db, &a, "job.request", tgt, d, prep.failed ? "error" : "ok", NULL) ==
                   STORE_OK;
    ok = ok && store_commit(db) == STORE_OK;
    if (!ok) {
        store_rollback(db);
        set_err(err, JOBS_DB, "the plan of job %lld could not be stored; it stays failed",
                (long long)*id);
        rc = JOBS_DB;
    }
    free(plan);
    free(pcs);
    free(result);
    free(node);
    proc_prep_free(&prep);
    publish_job(j, *id);
    wake(j);
    return rc;
}

/* ---------------------------------------------------------------- approve, reject, cancel */

int
jobs_decide(struct jobs *j, struct store *db, int64_t id, int approve, const struct jobs_user *u,
            const char *comment, struct jobs_error *err)
{
    struct store_job job;
    int grc = store_job_get(db, id, &job);
    if (grc != STORE_OK) {
        set_err(err, grc == STORE_NOT_FOUND ? JOBS_NOT_FOUND : JOBS_DB, "no job %lld",
                (long long)id);
        return err->code;
    }
    int rc = JOBS_OK;
    if (strcmp(job.requested_by, u->name) == 0) {
        set_err(err, JOBS_SELF_APPROVAL,
                "job %lld was requested by %s: a second person must %s it (four-eyes)",
                (long long)id, u->name, approve ? "approve" : "reject");
        rc = err->code;
        goto out;
    }
    if (strcmp(job.state, "awaiting_approval") != 0) {
        set_err(err, JOBS_INVALID_STATE, "job %lld is %s, not awaiting approval", (long long)id,
                job.state);
        rc = err->code;
        goto out;
    }
    int64_t now = time_now_ms();
    struct store_job_change ch = {.cancel_requested = -1, .decision_comment = comment};
    if (approve) {
        ch.state = "queued";
        ch.approved_by = u->name;
        ch.approved_at = now;
    } else {
        ch.state = "rejected";
        ch.rejected_by = u->name;
        ch.rejected_at = now;
        ch.ended_at = now;
    }
    if (store_begin(db) != STORE_OK) {
        set_err(err, JOBS_DB, "database busy");
        rc = err->code;
        goto out;
    }
    int urc = store_job_update(db, id, "awaiting_approval", &ch);
    if (urc == STORE_NOT_FOUND) {
        store_rollback(db);
        set_err(err, JOBS_INVALID_STATE, "job %lld was decided meanwhile", (long long)id);
        rc = err->code;
        goto out;
    }
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "type", job.type);
    cJSON_AddStringToObject(d, "node", job.node);
    cJSON_AddStringToObject(d, "requested_by", job.requested_by);
    add_str(d, "comment", comment);
    struct audit_actor a;
    actor_of(u, &a);
    char tgt[32];
    target_of(id, tgt);
    if (urc != STORE_OK ||
        audit_record(db, &a, approve ? "job.approve" : "job.reject", tgt, d, "ok", NULL) !=
            STORE_OK ||
        store_commit(db) != STORE_OK) {
        store_rollback(db);
        set_err(err, JOBS_DB, "database error; nothing was changed");
        rc = err->code;
        goto out;
    }
    publish_job(j, id);
    wake(j);
out:
    store_job_clear(&job);
    return rc;
}

int
jobs_cancel(struct jobs *j, struct store *db, int64_t id, const struct jobs_user *u,
            struct jobs_error *err)
{
    struct store_job job;
    int grc = store_job_get(db, id, &job);
    if (grc != STORE_OK) {
        set_err(err, grc == STORE_NOT_FOUND ? JOBS_NOT_FOUND : JOBS_DB, "no job %lld",
                (long long)id);
        return err->code;
    }
    int rc = JOBS_OK;
    int mine = strcmp(job.requested_by, u->name) == 0;
    if (!mine && u->role < ROLE_APPROVER) {
        set_err(err, JOBS_FORBIDDEN,
                "job %lld was requested by %s: only they, an approver or an admin may cancel it",
                (long long)id, job.requested_by);
        rc = err->code;
        goto out;
    }
    int running = strcmp(job.state, "running") == 0;
    if (!running && strcmp(job.state, "queued") != 0 &&
        strcmp(job.state, "awaiting_approval") != 0) {
        set_err(err, JOBS_INVALID_STATE, "job %lld is %s: it cannot be cancelled", (long long)id,
                job.state);
        rc = err->code;
        goto out;
    }
    if (running && job.cancel_requested) {
        set_err(err, JOBS_INVALID_STATE, "job %lld is being cancelled already", (long long)id);
        rc = err->code;
        goto out;
    }
    int64_t now = time_now_ms();
    struct store_job_change ch = {.cancelled_by = u->name, .cancel_requested = 1};
    if (!running) {
        ch.state = "cancelled";
        ch.ended_at = now;
    }
    if (store_begin(db) != STORE_OK) {
        set_err(err, JOBS_DB, "database busy");
        rc = err->code;
        goto out;
    }
    int urc = store_job_update(db, id, job.state, &ch);
    if (urc == STORE_NOT_FOUND) {
        store_rollback(db);
        set_err(err, JOBS_INVALID_STATE, "job %lld changed state meanwhile; try again",
                (long long)id);
        rc = err->code;
        goto out;
    }
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "type", job.type);
    cJSON_AddStringToObject(d, "node", job.node);
    cJSON_AddStringToObject(d, "state_was", job.state);
    cJSON_AddStringToObject(d, "effect",
                            running ? "the job stops at its next step, its running "
                                      "remote command is ended, and what it "
                                      "changed is rolled back"
                                    : "the job never ran");
    struct audit_actor a;
    actor_of(u, &a);
    char tgt[32];
    target_of(id, tgt);
    if (urc != STORE_OK || audit_record(db, &a, "job.cancel", tgt, d, "ok", NULL) != STORE_OK ||
        store_commit(db) != STORE_OK) {
        store_rollback(db);
        set_err(err, JOBS_DB, "database error; nothing was changed");
        rc = err->code;
        goto out;
    }
    if (running) {
        pthread_mutex_lock(&j->mu);
        for (int i = 0; i < N_SLOTS; i++) {
            if (j->slots[i].id == id) {
                atomic_store(&j->slots[i].abort, PROC_ABORT_CANCEL);
            }
        }
        pthread_mutex_unlock(&j->mu);
    }
    publish_job(j, id);
out:
    store_job_clear(&job);
    return rc;
}

/* ---------------------------------------------------------------- running a job */

/* The final state change of a job with its job.finish entry; on success the inventory learns
 * the node's new server state. */
static void
finish(struct jobs *j, struct store *db, const struct store_job *job, const char *state,
       cJSON *result, cJSON *prechecks)
{
    char *res = json_print(result);
    char *pcs = prechecks ? json_print(prechecks) : NULL;
    struct store_job_change ch = {.state = state,
                                  .ended_at = time_now_ms(),
                                  .result = res,
                                  .prechecks = pcs,
                                  .cancel_requested = -1};
    int success = strcmp(state, "succeeded") == 0;
    const char *server_state = NULL;
    if (success && strcmp(job->type, "node-add") == 0) {
        server_state = "server";
    } else if (success && strcmp(job->type, "node-remove") == 0) {
        server_state = "removed";
    }
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "type", job->type);
    cJSON_AddStringToObject(d, "node", job->node);
    cJSON_AddStringToObject(d, "state", state);
    const char *e = json_get_str(result, "error", NULL);
    if (e) {
        cJSON_AddStringToObject(d, "error", e);
    }
    if (server_state) {
        cJSON_AddStringToObject(d, "server_state", server_state);
    }
    char tgt[32];
    target_of(job->id, tgt);
    int ok = store_begin(db) == STORE_OK;
    ok = ok && store_job_update(db, job->id, "running", &ch) == STORE_OK;
    if (ok && server_state) {
        int src = store_node_set_server_state(db, job->node, server_state, time_now_ms());
        ok = src == STORE_OK || src == STORE_NOT_FOUND;
    }
    ok = ok && audit_record(db, &engine_actor, "job.finish", tgt, d, success ? "ok" : "error",
                            NULL) == STORE_OK;
    ok = ok && store_commit(db) == STORE_OK;
    if (!ok) {
        store_rollback(db);
        log_error("jobs: job %lld ended %s but that could not be stored: %s", (long long)job->id,
                  state, store_errmsg(db));
    }
    free(res);
    free(pcs);
    if (server_state) {
        inventory_publish_expected(db, j->app->watch);
    }
    publish_job(j, job->id);
}

/* queued → running with job.start. Returns 1 when this thread won the job. */
static int
start(struct store *db, const struct store_job *job)
{
    struct store_job_change ch = {
        .state = "running", .started_at = time_now_ms(), .cancel_requested = -1};
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "type", job->type);
    cJSON_AddStringToObject(d, "node", job->node);
    char tgt[32];
    target_of(job->id, tgt);
    if (store_begin(db) != STORE_OK) {
        cJSON_Delete(d);
        return 0;
    }
    if (store_job_update(db, job->id, "queued", &ch) != STORE_OK) {
        cJSON_Delete(d);
        store_rollback(db);
        return 0;
    }
    if (audit_record(db, &engine_actor, "job.start", tgt, d, "ok", NULL) != STORE_OK ||
        store_commit(db) != STORE_OK) {
        store_rollback(db);
        return 0;
    }
    return 1;
}

static void
run_job(struct jobs *j, struct store *db, struct slot *slot, int64_t id)
{
    const struct config *cfg = j->app->cfg;
    struct store_job job;
    if (store_job_get(db, id, &job) != STORE_OK) {
        return;
    }
    pthread_mutex_lock(&j->mu);
    slot->id = id;
    atomic_store(&slot->abort, j->stopping ? PROC_ABORT_STOP : 0);
    pthread_mutex_unlock(&j->mu);
    if (!start(db, &job)) {
        goto out;
    }
    publish_job(j, id);
    struct proc_runner run;
    struct jobs_runner *jr = jobs_runner_new(cfg, j->app->watch, &run);
    struct change_arg ca = {j, id};
    struct proc_ctx x = {.db = db,
                         .job_id = id,
                         .run = &run,
                         .lim = limits_of(cfg),
                         .abort = &slot->abort,
                         .secret = cfg->consul_token,
                         .on_log = on_log,
                         .on_change = on_change,
                         .arg = &ca,
                         .next_seq = 1};
    struct proc_request req = request_of(&job);
    proc_log(&x, NULL, "info", "job %lld started (%s of %s%s%s), requested by %s%s%s",
             (long long)id, job.type, job.node, job.strategy[0] ? ", " : "", job.strategy,
             job.requested_by, job.approved_by ? ", approved by " : "",
             job.approved_by ? job.approved_by : "");
    struct proc_outcome o;
    int rc = proc_execute(&x, &req, jobs_type_changes(job.type) ? job.plan : NULL, &o);
    const char *state;
    if (rc != 0) {
        state = "failed";
        cJSON_AddStringToObject(o.result, "error", "a database error stopped the job");
    } else if (o.end == PROC_SUCCEEDED) {
        state = "succeeded";
    } else if (o.end == PROC_STOPPED) {
        state = "interrupted";
        proc_log(&x, NULL, "info",
                 "consulate is stopping: the job is interrupted; a rollback "
                 "is offered once it runs again");
    } else if ((o.end == PROC_FAILED || o.end == PROC_CANCELLED) && o.changed &&
               jobs_type_changes(job.type) && strcmp(job.type, "rollback") != 0) {
        int cancelled = o.end == PROC_CANCELLED;
        /* a cancel must not stop the rollback it asks for; a shutdown does */
        int expected = PROC_ABORT_CANCEL;
        atomic_compare_exchange_strong(&slot->abort, &expected, 0);
        proc_log(&x, NULL, "info", "%s: rolling back what changed",
                 cancelled ? "cancelled" : "the job failed");
        struct proc_outcome rb;
        int rrc = proc_rollback(&x, id, &rb);
        cJSON *r = cJSON_AddObjectToObject(o.result, "rollback");
        cJSON_AddBoolToObject(r, "succeeded", rrc == 0 && rb.end == PROC_SUCCEEDED);
        const char *re = rrc == 0 ? json_get_str(rb.result, "error", NULL) : "database error";
        if (re) {
            cJSON_AddStringToObject(r, "error", re);
        }
        cJSON *g = cJSON_DetachItemFromObject(rb.result, "gate");
        if (g) {
            cJSON_AddItemToObject(r, "gate", g);
        }
        if (rrc == 0 && rb.end == PROC_SUCCEEDED) {
            state = cancelled ? "cancelled" : "rolled_back";
        } else if (rrc == 0 && rb.end == PROC_STOPPED) {
            state = "interrupted";
        } else {
            state = "failed";
        }
        proc_outcome_free(&rb);
    } else {
        state = o.end == PROC_CANCELLED ? "cancelled" : "failed";
    }
    proc_log(&x, NULL, strcmp(state, "succeeded") == 0 ? "info" : "error", "job %lld ended %s%s%s",
             (long long)id, state, json_get_str(o.result, "error", NULL) ? ": " : "",
             json_get_str(o.result, "error", ""));
    jobs_runner_free(jr);
    finish(j, db, &job, state, o.result, o.prechecks);
    proc_outcome_free(&o);
out:
    pthread_mutex_lock(&j->mu);
    slot->id = 0;
    pthread_mutex_unlock(&j->mu);
    store_job_clear(&job);
}

static void *
worker_main(void *arg)
{
    struct worker_arg *wa = arg;
    struct jobs *j = wa->j;
    struct slot *slot = &j->slots[wa->index];
    int diagnose = wa->index > 0;
    uint64_t seen = 0;
    for (;;) {
        pthread_mutex_lock(&j->mu);
        while (!j->stopping && j->wakes == seen) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_sec += IDLE_WAKE_MS / 1000;
            if (pthread_cond_timedwait(&j->cond, &j->mu, &ts) == ETIMEDOUT) {
                break;
            }
        }
        seen = j->wakes;
        int stop = j->stopping;
        pthread_mutex_unlock(&j->mu);
        if (stop) {
            break;
        }
        struct store *db = thread_db(j);
        if (!db) {
            continue;
        }
        for (;;) {
            int64_t id = 0;
            if (store_job_next_queued(db, diagnose, &id) != STORE_OK || !id) {
                break;
            }
            run_job(j, db, slot, id);
            pthread_mutex_lock(&j->mu);
            stop = j->stopping;
            pthread_mutex_unlock(&j->mu);
            if (stop) {
                break;
            }
        }
    }
    return NULL;
}

/* ---------------------------------------------------------------- start and stop */

static int
running_cb(const struct store_job *job, void *ctx)
{
    int64_t **ids = ctx;
    int64_t *v = *ids;
    size_t n = (size_t)v[0];
    v = xrealloc(v, (n + 2) * sizeof(int64_t));
    v[n + 1] = job->id;
    v[0] = (int64_t)(n + 1);
    *ids = v;
    return 0;
}

/* Jobs found running at start-up were cut off: they become interrupted, on the record. */
static void
mark_interrupted(struct store *db)
{
    int64_t *ids = xcalloc(1, sizeof(int64_t));
    struct store_job_filter f = {.state = "running"};
    store_job_list(db, &f, running_cb, &ids);
    for (int64_t i = 1; i <= ids[0]; i++) {
        int64_t id = ids[i];
        const char *why = "consulate stopped while the job ran; its log is kept and what it "
                          "changed can be rolled back with a rollback job";
        cJSON *res = cJSON_CreateObject();
        cJSON_AddStringToObject(res, "error", why);
        char *rt = json_print(res);
        cJSON_Delete(res);
        struct store_job_change ch = {.state = "interrupted",
                                      .ended_at = time_now_ms(),
                                      .result = rt,
                                      .cancel_requested = -1};
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "state", "interrupted");
        cJSON_AddStringToObject(d, "error", why);
        char tgt[32];
        target_of(id, tgt);
        int ok = store_begin(db) == STORE_OK;
        ok = ok && store_job_update(db, id, "running", &ch) == STORE_OK;
        ok =
            ok && store_job_log_append(db, id, time_now_ms(), NULL, "error", why, NULL) == STORE_OK;
        ok = ok && audit_record(db, &engine_actor, "job.finish", tgt, d, "error", NULL) == STORE_OK;
        ok = ok && store_commit(db) == STORE_OK;
        if (!ok) {
            store_rollback(db);
            log_error("jobs: cannot mark job %lld interrupted: %s", (long long)id,
                      store_errmsg(db));
        } else {
            log_warn("jobs: job %lld was running when consulate stopped: now interrupted",
                     (long long)id);
        }
        free(rt);
    }
    free(ids);
}

static void
stop_threads(struct jobs *j)
{
    pthread_mutex_lock(&j->mu);
    j->stopping = 1;
    for (int i = 0; i < N_SLOTS; i++) {
        atomic_store(&j->slots[i].abort, PROC_ABORT_STOP);
    }
    pthread_cond_broadcast(&j->cond);
    pthread_mutex_unlock(&j->mu);
    for (int i = 0; i < j->n_threads; i++) {
        pthread_join(j->threads[i], NULL);
    }
    j->n_threads = 0;
}

struct jobs *
jobs_start(struct app *app)
{
    struct store *db = store_thread(app->cfg->database);
    if (!db) {
        return NULL;
    }
    mark_interrupted(db);
    inventory_canonicalize_stored(db);
    if (!app->cfg->approval_required) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddBoolToObject(d, "approval_required", 0);
        cJSON_AddStringToObject(d, "effect",
                                "cluster-changing jobs run without a second "
                                "person's approval");
        if (audit_record(db, &engine_actor, "settings.approval_disabled", "approval.required", d,
                         "ok", NULL) != STORE_OK) {
            log_error("jobs: cannot record that approval is disabled; not starting the jobs");
            return NULL;
        }
        log_warn("jobs: approval.required is false: changes run without a second approval");
    }
    struct jobs *j = xcalloc(1, sizeof(*j));
    j->app = app;
    j->preparing = slots_new(JOBS_PREPARE_PER_USER, JOBS_PREPARE_TOTAL);
    pthread_mutex_init(&j->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&j->cond, &ca);
    pthread_condattr_destroy(&ca);
    for (int i = 0; i < N_SLOTS; i++) {
        j->args[i] = (struct worker_arg){j, i};
        if (pthread_create(&j->threads[i], NULL, worker_main, &j->args[i]) != 0) {
            log_error("jobs: cannot start a worker thread");
            stop_threads(j);
            pthread_cond_destroy(&j->cond);
            pthread_mutex_destroy(&j->mu);
            slots_free(j->preparing);
            free(j);
            return NULL;
        }
        j->n_threads++;
    }
    wake(j);
    return j;
}

void
jobs_stop(struct jobs *j)
{
    if (!j) {
        return;
    }
    stop_threads(j);
    pthread_cond_destroy(&j->cond);
    pthread_mutex_destroy(&j->mu);
    slots_free(j->preparing);
    free(j);
}
