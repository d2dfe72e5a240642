/* jobs: the job engine. Requests become jobs (prechecks and a plan first), approvals move
 * them on (four-eyes unless approval.required is false), one worker thread runs the
 * cluster-changing jobs one at a time in request order, a small pool runs diagnose jobs
 * beside it. A failed or cancelled run is rolled back from its undo records. Every state
 * change commits with its audit entry; the job's state goes out on the event bus as a "job"
 * event (last value kept) and each log line as a "job_log" event (never replayed: the log is
 * read from /api/jobs/{id}/log after a resync).
 *
 * States: awaiting_approval → queued → running → succeeded | failed | cancelled |
 * rolled_back; rejected (from awaiting_approval); interrupted (running when consulate
 * stopped or died). A request whose prechecks fail is created failed, with every result. */
#ifndef CONSULATE_JOBS_H
#define CONSULATE_JOBS_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "auth.h"

struct app;
struct store;
struct store_job;
struct jobs;

/* Diagnose jobs run on this many threads beside the worker. */
#define JOBS_DIAG_THREADS 2
#define JOBS_REASON_MAX 1000
/* Requests prepared at once (each runs its prechecks and dry run over SSH to every node it
 * involves, in the request's thread): per user, and by everyone together. Beyond, a request
 * is refused at once and changes nothing, so that a runaway script cannot open hundreds of
 * SSH sessions to the production servers or hold every worker thread. */
#define JOBS_PREPARE_PER_USER 2
#define JOBS_PREPARE_TOTAL 4

enum jobs_rc {
    JOBS_OK = 0,
    JOBS_NOT_FOUND = 1,
    JOBS_INVALID_STATE = 2, /* the job is not in a state that allows it (409 invalid_state) */
    JOBS_SELF_APPROVAL = 3, /* the approver requested the job (403 self_approval) */
    JOBS_FORBIDDEN = 4,     /* the role or the person may not (403 forbidden) */
    JOBS_CONFLICT = 5,      /* a rollback of that job is already requested (409) */
    JOBS_INVALID = 6,       /* a bad request (400 invalid_field) */
    JOBS_DB = 7,            /* database error; nothing changed (500) */
    JOBS_BUSY_USER = 8,     /* this user's requests already being prepared (429) */
    JOBS_BUSY = 9,          /* everyone's requests already being prepared (503) */
};

struct jobs_error {
    int code;
    char message[512];
};

/* Who asks (borrowed). */
struct jobs_user {
    int64_t id; /* the user's id (counts the requests being prepared) */
    const char *name;
    enum role role;
    const char *ip;
};

/* A request (borrowed). target: the job a rollback undoes. */
struct jobs_request {
    const char *type;     /* node-add, node-remove, rollback, diagnose */
    const char *node;     /* the inventory node (NULL for a rollback: the target's node) */
    const char *strategy; /* rolling (default) or full-restart; NULL for the others */
    const char *reason;
    int fix_trap;
    int node_gone;
    int64_t target;
};

/* Starts the engine: jobs found running are marked interrupted (each on the record, its log
 * kept), approval.required false is recorded as settings.approval_disabled, then the worker
 * and the diagnose pool start and pick up queued jobs. app is borrowed (configuration,
 * watcher, event bus) and must outlive jobs_stop. NULL when a thread cannot start. */
struct jobs *jobs_start(struct app *app);
/* Stops the threads: a running job's remote command is killed and the job is left
 * interrupted (no rollback during a shutdown; it is offered afterwards). Waits for them.
 * NULL is a no-op. */
void jobs_stop(struct jobs *j);

/* Creates a job from req: records the request (job.request, pending), runs the prechecks and
 * the dry run over SSH in the calling thread, then stores the plan and the state —
 * awaiting_approval, queued (diagnose, or approval not required), or failed with the precheck
 * results — with the outcome entry. *id gets the job's id (also when it failed its prechecks).
 * Returns JOBS_OK, JOBS_NOT_FOUND (the target of a rollback), JOBS_CONFLICT, JOBS_INVALID,
 * JOBS_DB, or JOBS_BUSY_USER / JOBS_BUSY when JOBS_PREPARE_PER_USER / JOBS_PREPARE_TOTAL
 * requests are being prepared already (nothing recorded) (err says why). db is the calling
 * thread's connection. */
int jobs_create(struct jobs *j, struct store *db, const struct jobs_request *req,
                const struct jobs_user *u, int64_t *id, struct jobs_error *err);

/* Approves (→ queued) or rejects (→ rejected) a job awaiting approval, recording job.approve /
 * job.reject with the comment (may be NULL). JOBS_SELF_APPROVAL when u requested it (nothing
 * is recorded: the caller records the denial), JOBS_INVALID_STATE, JOBS_NOT_FOUND. */
int jobs_decide(struct jobs *j, struct store *db, int64_t id, int approve,
                const struct jobs_user *u, const char *comment, struct jobs_error *err);

/* Cancels a job: one that has not started ends cancelled at once; a running one stops at its
 * next step, its running remote command is killed, and what it changed is rolled back (it
 * ends cancelled, or failed when the rollback fails). Allowed to the requester and to
 * approvers and admins (JOBS_FORBIDDEN otherwise). Records job.cancel. */
int jobs_cancel(struct jobs *j, struct store *db, int64_t id, const struct jobs_user *u,
                struct jobs_error *err);

enum jobs_view {
    JOBS_VIEW_LIST = 0, /* without plan, prechecks, steps */
    JOBS_VIEW_FULL = 1, /* everything */
    JOBS_VIEW_EVENT = 2 /* like the list, without "can" (it depends on who reads) */
};

/* The API's job object (the caller owns it); u (NULL for events) decides "can". */
cJSON *jobs_json(struct store *db, const struct store_job *job, enum jobs_view view,
                 const struct jobs_user *u, int approval_required);

/* 1 for the types that change the cluster (everything but diagnose). */
int jobs_type_changes(const char *type);

#endif
