/* procedures: the cluster changes of the seed document done as jobs: node-add and
 * node-remove (rolling or full-restart), node-remove of a dead server, rollback and
 * diagnose. Each works in three phases:
 *
 *   prepare   prechecks, all reported at once, and the plan: the exact steps per node and a
 *             unified diff of every compose file, computed by a dry run that reads the
 *             current files over SSH and changes nothing;
 *   execute   prepare again (the plan must still be the approved one), record each node's
 *             running state, then run the steps; every change is preceded by its undo record
 *             in the database;
 *   rollback  replay the undo records of a job: files restored byte for byte, moves undone,
 *             every node returned to its previous running state, then the gate.
 *
 * Everything that touches the world goes through struct proc_runner (SSH exec, file read
 * and write, host key probe, the live cluster model, the clock), so unit tests drive every
 * procedure with a scripted runner; the job engine passes one over server/ssh.c and the
 * watcher. Steps, log lines, undo records and the job.step audit entries are written to the
 * store given in struct proc_ctx. Remote commands are built with sh_cmd only (ssh_quote.h)
 * and are the ones listed in the README (Jobs: remote commands). */
#ifndef CONSULATE_PROCEDURES_H
#define CONSULATE_PROCEDURES_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "ssh.h"
#include "ssh_quote.h"

struct cluster_model;
struct store;
struct store_node;
struct store_log_line;

/* The file every server's membership lives in, under its compose_dir. */
#define PROC_COMPOSE_FILE "docker-compose.yaml"
/* Ports tested from a new node to every server (HTTP API, exporter, raft, serf LAN). */
#define PROC_PORTS                                                                                 \
    {                                                                                              \
        8500, 9107, 8300, 8301                                                                     \
    }
#define PROC_RAFT_PORT 8300
/* The oldest docker and docker-compose the seed document accepts on a new node. */
#define PROC_DOCKER_MIN "19.03"
#define PROC_COMPOSE_MIN "1.27"

/* Called for each line of a remote command's stdout/stderr as it arrives (line borrowed). */
typedef void (*proc_line_fn)(void *arg, enum ssh_stream stream, const char *line, size_t len);

/* The world as a procedure sees it. Every function returns an ssh_rc (SSH_OK or an error
 * with err filled: SSH_ERR_HOST_KEY_CHANGED when the node shows another key than its pin,
 * SSH_ERR_HOST_KEY_UNKNOWN when none is pinned, SSH_ERR_CANCELLED, …). A node is always an
 * inventory row (borrowed). The functions may be called from several threads at once for
 * different nodes. */
struct proc_runner {
    void *ctx;
    /* Runs cmd on n and waits. Each output line goes to line(arg, …) as it arrives; stdout
     * is also appended to out (may be NULL). *exit_status gets the exit status (-1 when it
     * was killed). timeout_ms 0 = the runner's default. cancel (may be NULL) ends the remote
     * command when raised. */
    int (*exec)(void *ctx, const struct store_node *n, const struct sh_cmd *cmd, int timeout_ms,
                const atomic_int *cancel, proc_line_fn line, void *arg, struct buf *out,
                int *exit_status, struct ssh_error *err);
    /* Reads the file at path (SSH_ERR_NOT_FOUND when absent); *data is the caller's. */
    int (*read_file)(void *ctx, const struct store_node *n, const char *path, char **data,
                     size_t *len, struct ssh_error *err);
    /* Replaces the file at path atomically with len bytes of data. */
    int (*write_file)(void *ctx, const struct store_node *n, const char *path, const char *data,
                      size_t len, struct ssh_error *err);
    /* The host key n presents now (without authenticating). */
    int (*host_key)(void *ctx, const struct store_node *n, struct ssh_host_key *out,
                    struct ssh_error *err);
    /* The live cluster model with a reference (*ref, released with model_put), or NULL when
     * there is none. *answered_ms (monotonic, the clock of now_ms) is when Consul last
     * answered the model source, 0 never. */
    const struct cluster_model *(*model_get)(void *ctx, void **ref, int64_t *answered_ms);
    void (*model_put)(void *ctx, void *ref);
    /* Asks the model source to refresh now (the gate polls). */
    void (*model_refresh)(void *ctx);
    /* Starts sampling the model's leader every 100 ms; leader_watch_stop ends it and gives
     * the seconds without a leader (an unreachable cluster counts as leaderless) and the
     * number of samples. */
    void (*leader_watch_start)(void *ctx);
    void (*leader_watch_stop)(void *ctx, double *leaderless_s, int *samples);
    /* A monotonic clock in ms, and a wait that returns early (1) when cancel is raised. */
    int64_t (*now_ms)(void *ctx);
    int (*sleep_ms)(void *ctx, int ms, const atomic_int *cancel);
};

/* Limits of a run. */
struct proc_limits {
    int command_timeout_ms; /* one remote command */
    int gate_timeout_ms;    /* the gate (and the wait for a server to leave raft) */
    int gate_poll_ms;       /* how often the gate looks at the model (100) */
    int leave_wait_ms;      /* node-remove of a dead server: how long force-leave may take to
                               drop it from raft before remove-peer (10000) */
};

#define PROC_ABORT_CANCEL 1
#define PROC_ABORT_STOP 2

/* Everything a procedure needs. db is the calling thread's connection; on_log and on_change
 * (may be NULL) are told of every new log line and every step change (for live events). */
struct proc_ctx {
    struct store *db;
    int64_t job_id;
    const struct proc_runner *run;
    struct proc_limits lim;
    const atomic_int *abort; /* PROC_ABORT_CANCEL: a person cancelled (stop, then roll back);
                                PROC_ABORT_STOP: consulate is shutting down (stop, the job is
                                left interrupted); 0: carry on. Raising it also ends a
                                running remote command. May be NULL. */
    const char *secret;      /* a value never to appear in a log line (the Consul token) */
    void (*on_log)(void *arg, const struct store_log_line *l);
    void (*on_change)(void *arg);
    void *arg;
    int next_seq; /* the next step number (execute and rollback continue it) */
};

/* What is asked. node is the inventory name; for a rollback, target is the job to undo. */
struct proc_request {
    const char *type; /* "node-add", "node-remove", "rollback", "diagnose" */
    const char *node;
    const char *strategy; /* "rolling" or "full-restart" (NULL = rolling) */
    int fix_trap;         /* the backslash trap is fixed as part of the change */
    int node_gone;        /* node-remove of a dead host: force-leave, remove-peer */
    int64_t target;       /* rollback: the job */
};

struct proc_plan;

/* The outcome of prepare: the prechecks (JSON array, every result) and, when none blocking
 * failed, the plan (JSON object: summary, warnings, steps, diffs) with the steps to run.
 * nodes are the inventory names involved (for job_nodes). */
struct proc_prep {
    cJSON *prechecks;
    cJSON *plan; /* always an object; steps empty when a precheck failed */
    int failed;  /* a blocking precheck failed: nothing may run */
    char *error; /* a sentence: why (the first blocking failure) */
    char **nodes;
    size_t n_nodes;
    struct proc_plan *steps; /* what execute runs; NULL when failed */
};

/* Runs the prechecks and computes the plan of req as job x->job_id (its id names the
 * backups), changing nothing anywhere (reads files, runs read-only commands). The nodes
 * are read from x->db. Returns 0 with *out filled (failed or not), or -1 on a database
 * error. Free with proc_prep_free. */
int proc_prepare(struct proc_ctx *x, const struct proc_request *req, struct proc_prep *out);
void proc_prep_free(struct proc_prep *p);

/* How a run ended. */
enum proc_end {
    PROC_SUCCEEDED = 0,
    PROC_FAILED = 1,      /* a step failed (changes made are in the undo records) */
    PROC_CANCELLED = 2,   /* x->abort was PROC_ABORT_CANCEL */
    PROC_STOPPED = 3,     /* x->abort was PROC_ABORT_STOP (shutdown): interrupted */
    PROC_PLAN_CHANGED = 4 /* prepare gave another plan than the approved one; nothing ran */
};

struct proc_outcome {
    int end;          /* enum proc_end */
    int changed;      /* some change was made (an undo record was written) */
    cJSON *result;    /* {"error"?, "leaderless_s"?, "gate"?, "findings"?} (owned) */
    cJSON *prechecks; /* the prechecks of the run (owned; NULL when none) */
};

/* Runs req as job x->job_id: prepare again (a blocking precheck fails the run before any
 * change), compare with approved_plan (the plan JSON text shown to the approver; NULL skips
 * the comparison: diagnose), record the running state of every node, then each step in
 * order (fan-out groups in parallel). Returns 0 with out filled, -1 on a database error.
 * The caller rolls back (proc_rollback) after PROC_FAILED or PROC_CANCELLED when
 * out->changed. */
int proc_execute(struct proc_ctx *x, const struct proc_request *req, const char *approved_plan,
                 struct proc_outcome *out);

/* Undoes the changes of job target (its undo records; target may be x->job_id itself):
 * restores files byte for byte, undoes moves, returns every node to its previous running
 * state, runs the gate. The steps are added to job x->job_id. Returns 0 with out filled
 * (PROC_SUCCEEDED when all was undone and the gate passed), -1 on a database error. */
int proc_rollback(struct proc_ctx *x, int64_t target, struct proc_outcome *out);

void proc_outcome_free(struct proc_outcome *o);

/* Writes a log line for the job (stream "info", "stdout", "stderr", "error"; node may be
 * NULL) and tells on_log. The secret, if any, is masked. */
void proc_log(struct proc_ctx *x, const char *node, const char *stream, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Pure helpers, exposed for tests. */
/* Compares dotted version strings numerically ("19.03.15" >= "19.03"); a leading 'v' and any
 * suffix after the numbers ("20.10.7-ce") are ignored. Returns <0, 0, >0; -2 when a is not a
 * version. */
int proc_version_cmp(const char *a, const char *b);
/* A copy of a compose file's text with secrets masked for display (values of -encrypt,
 * anything after a name containing "token", "secret" or "password" up to the end of the
 * value). The caller frees it. */
char *proc_redact(const char *text, size_t len);

#endif
