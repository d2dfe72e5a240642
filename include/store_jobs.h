/* store_jobs: every SQL statement of the inventory (nodes) and of jobs: their involved nodes,
 * steps, log lines and undo records (migrations/0003_jobs.sql). Like the rest of the store:
 * constant statements with bound parameters, one connection per thread, and the caller's
 * transaction (store_begin/store_commit) around a change and its audit entry. Times are UTC
 * milliseconds; 0 stands for NULL. */
#ifndef CONSULATE_STORE_JOBS_H
#define CONSULATE_STORE_JOBS_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* ---- nodes ---- */

/* One inventory node. Strings are owned (store_node_clear frees them); a NULL host key type
 * means no key is pinned. */
struct store_node {
    int64_t id;
    char *name;
    char *address;
    int ssh_port;
    char *ssh_user;
    char *ssh_key_path;
    char *compose_dir;
    char *data_dir;
    char *server_state; /* "unknown", "server", "spare", "removed" */
    char *host_key_type;
    int host_key_bits;
    char *host_key_fingerprint;
    int64_t host_key_pinned_at;
    char *host_key_pinned_by;
    int64_t created_at;
    int64_t updated_at;
};

/* Frees the strings of n and zeroes it. NULL is a no-op. */
void store_node_clear(struct store_node *n);
/* Copies src into dst (new strings, the caller clears dst). */
void store_node_copy(struct store_node *dst, const struct store_node *src);

/* The node called name (STORE_NOT_FOUND when none); out is the caller's to clear. */
int store_node_get(struct store *s, const char *name, struct store_node *out);
/* Calls cb for every node in name order; cb returning non-zero stops (STORE_STOP). n is
 * borrowed for the call. */
typedef int (*store_node_cb)(const struct store_node *n, void *ctx);
int store_node_each(struct store *s, store_node_cb cb, void *ctx);
/* Inserts n (id, times and the host key are ignored: a new node has none pinned).
 * STORE_CONFLICT when the name or the address is taken. */
int store_node_insert(struct store *s, const struct store_node *n, int64_t now);
/* Replaces the editable fields (address, ssh_*, compose_dir, data_dir, server_state) of the
 * node n->name; with unpin the pinned host key is cleared. STORE_NOT_FOUND, STORE_CONFLICT
 * (address taken). */
int store_node_update(struct store *s, const struct store_node *n, int unpin, int64_t now);
int store_node_delete(struct store *s, const char *name);
int store_node_set_server_state(struct store *s, const char *name, const char *state, int64_t now);
/* Pins the host key (type, bits, fingerprint) as confirmed by user at now. */
int store_node_pin(struct store *s, const char *name, const char *type, int bits,
                   const char *fingerprint, const char *user, int64_t now);
/* The newest unfinished job (awaiting_approval, queued, running) that involves node: *job_id
 * gets its id, 0 when none. */
int store_node_busy(struct store *s, const char *node, int64_t *job_id);

/* ---- jobs ---- */

struct store_job {
    int64_t id;
    char type[16]; /* node-add, node-remove, rollback, diagnose */
    char *node;
    char strategy[16]; /* rolling, full-restart, "" = none */
    char state[24];
    char *reason;
    char *options; /* JSON object */
    int64_t target_job;
    char *requested_by;
    int64_t requested_at;
    char *approved_by;
    int64_t approved_at;
    char *rejected_by;
    int64_t rejected_at;
    char *decision_comment;
    char *cancelled_by;
    int cancel_requested;
    int64_t started_at;
    int64_t ended_at;
    char *plan;      /* JSON object */
    char *prechecks; /* JSON array */
    char *result;    /* JSON object */
    int64_t log_lines;
};

void store_job_clear(struct store_job *j);

/* Inserts j (type, node, strategy, state, reason, options, target_job, requested_by,
 * requested_at, plan, prechecks, result; NULL JSON texts take their defaults) with the n
 * involved node names; *id_out gets the new id. */
int store_job_insert(struct store *s, const struct store_job *j, const char *const *nodes, size_t n,
                     int64_t *id_out);
int store_job_get(struct store *s, int64_t id, struct store_job *out);

/* A change of some columns. NULL strings and 0 times leave a column as it is;
 * cancel_requested -1 too. */
struct store_job_change {
    const char *state;
    const char *approved_by;
    int64_t approved_at;
    const char *rejected_by;
    int64_t rejected_at;
    const char *decision_comment;
    const char *cancelled_by;
    int cancel_requested;
    int64_t started_at;
    int64_t ended_at;
    const char *plan;
    const char *prechecks;
    const char *result;
};
/* Applies c to job id when its state is expect_state (NULL: any). STORE_NOT_FOUND when there
 * is no such job or its state differs (nothing changed): a compare-and-set, so two
 * approvers, or a cancel racing the worker, cannot both win. */
int store_job_update(struct store *s, int64_t id, const char *expect_state,
                     const struct store_job_change *c);

struct store_job_filter {
    const char *state; /* NULL or "" = any */
    const char *type;
    const char *node;
    int64_t before_id; /* id < before_id; 0 = from the newest */
    int limit;         /* 1..; 0 = no limit */
};
/* Calls cb for each matching job, newest first. j is borrowed for the call. */
typedef int (*store_job_cb)(const struct store_job *j, void *ctx);
int store_job_list(struct store *s, const struct store_job_filter *f, store_job_cb cb, void *ctx);

/* The oldest queued job of the class (diagnose: 1 for diagnose jobs, 0 for the others):
 * *id 0 when none. */
int store_job_next_queued(struct store *s, int diagnose, int64_t *id);
/* The id of the newest rollback job of target that is not rejected, cancelled or failed,
 * or 0. */
int store_job_rollback_of(struct store *s, int64_t target, int64_t *id);

/* Adds an involved node to a job (once). */
int store_job_add_node(struct store *s, int64_t job, const char *node);
/* The number of undo records of kind (NULL: any) of a job. */
int store_job_undo_count(struct store *s, int64_t job, const char *kind, int64_t *n);

/* The involved node names of a job in name order (cb gets each, borrowed). */
typedef int (*store_text_cb)(const char *text, void *ctx);
int store_job_nodes(struct store *s, int64_t job, store_text_cb cb, void *ctx);

/* ---- steps ---- */

struct store_job_step {
    int64_t job_id;
    int seq;
    const char *node; /* "" when the step is not on one node */
    const char *title;
    const char *command; /* NULL when not a remote command */
    const char *state;   /* pending, running, succeeded, failed, skipped, cancelled */
    int has_exit;
    int exit_status;
    int64_t started_at;
    int64_t ended_at;
};
int store_job_step_add(struct store *s, const struct store_job_step *st);
/* Sets state, the exit status (when has_exit) and the non-zero times of step (job, seq). */
int store_job_step_update(struct store *s, int64_t job, int seq, const char *state, int has_exit,
                          int exit_status, int64_t started_at, int64_t ended_at);
/* Steps of job in seq order; st is borrowed for the call. */
typedef int (*store_step_cb)(const struct store_job_step *st, void *ctx);
int store_job_steps(struct store *s, int64_t job, store_step_cb cb, void *ctx);

/* ---- log ---- */

struct store_log_line {
    int64_t job_id;
    int64_t line;
    int64_t ts;
    const char *node;   /* "" = not about one node */
    const char *stream; /* info, stdout, stderr, error */
    const char *text;
};
/* Appends a line (numbered after jobs.log_lines, which it advances); *line_out gets its
 * number. Runs in its own transaction when none is open. */
int store_job_log_append(struct store *s, int64_t job, int64_t ts, const char *node,
                         const char *stream, const char *text, int64_t *line_out);
/* Lines after `after`, at most limit (0 = all), in order; l is borrowed for the call. */
typedef int (*store_log_cb)(const struct store_log_line *l, void *ctx);
int store_job_log_read(struct store *s, int64_t job, int64_t after, int limit, store_log_cb cb,
                       void *ctx);

/* ---- undo records ---- */

struct store_undo {
    int64_t job_id;
    int seq;
    const char *kind; /* file, move, state */
    const char *node;
    const char *path;
    const char *path2;
    int flag;
    const char *content; /* file contents (may hold any bytes), NULL when none */
    size_t content_len;
};
/* Appends a record after the job's last (*seq_out, may be NULL, gets its number). */
int store_job_undo_add(struct store *s, const struct store_undo *u, int *seq_out);
/* Records of job in seq order; u is borrowed for the call. */
typedef int (*store_undo_cb)(const struct store_undo *u, void *ctx);
int store_job_undo_each(struct store *s, int64_t job, store_undo_cb cb, void *ctx);

#endif
