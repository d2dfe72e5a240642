/* procedures_internal: what the procedure files share (procedures.c prepares, procedures_run.c
 * executes and rolls back, procedures_diag.c diagnoses, procedures_cmd.c builds the remote
 * commands). Nothing outside them includes this. */
#ifndef CONSULATE_PROCEDURES_INTERNAL_H
#define CONSULATE_PROCEDURES_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "procedures.h"
#include "store_jobs.h"

enum pstep_kind {
    PS_CMD = 1,        /* run cmd on node; a non-zero exit fails (unless any_exit) */
    PS_BACKUP,         /* cmd = cp -p path path2 */
    PS_WRITE,          /* write data to path (file undo record first; checked against orig) */
    PS_MOVE,           /* cmd = mv path path2 (move undo record first) */
    PS_GATE,           /* the gate over gate_* */
    PS_WAIT_GONE,      /* wait until raft_addr is out of raft (up to wait_ms) */
    PS_CMD_IF_IN_RAFT, /* cmd on node only while raft_addr is still in raft (force-leave,
                          remove-peer), else skipped */
    PS_ENSURE_STOPPED, /* rollback: leave and down when Consul runs on node */
    PS_ENSURE_RUNNING, /* rollback: up -d when Consul does not run on node */
    PS_RESTORE_FILE,   /* rollback: data back into path (existed), or path moved aside */
    PS_UNDO_MOVE,      /* rollback: path2 moved back to path */
    PS_READ,           /* read path into capture (diagnose) */
};

struct pstep {
    enum pstep_kind kind;
    int group;                     /* > 0: runs in parallel with the neighbours of its group */
    const struct store_node *node; /* borrowed from the plan's inventory; NULL: no node */
    char *title;
    int has_cmd;
    struct sh_cmd cmd;
    int any_exit;        /* PS_CMD: every exit status is accepted */
    int end_if_failed;   /* PS_WAIT_GONE: ends (skipped) as soon as the server is in raft with
                            its agent failed: it will not leave by itself */
    int readonly;        /* changes nothing: no attempt entry before it, no rollback after it */
    struct buf *capture; /* when set, the output lines (or the file read) are kept here */
    int starts_outage;   /* full-restart: the leaderless window starts here */
    char *path, *path2;
    char *path3; /* PS_UNDO_MOVE: where what now occupies path is moved first */
    char *data;  /* PS_WRITE: the new content; PS_RESTORE_FILE: the old one */
    size_t len;
    int existed; /* PS_WRITE / PS_RESTORE_FILE: the file existed before; PS_ENSURE_RUNNING:
                    its compose file is restored (up -d also when Consul runs) */
    char *orig;  /* PS_WRITE: the content read by prepare (checked again before writing) */
    size_t orig_len;
    char **gate_addrs, **gate_names; /* PS_GATE */
    size_t gate_n;
    const struct store_node *gate_peer;
    char *raft_addr; /* PS_WAIT_GONE, PS_CMD_IF_IN_RAFT: "IP:8300" */
    int wait_ms;     /* PS_WAIT_GONE: 0 = the gate timeout */
};

/* One node's state before a run (a 'state' undo record). */
#define PROC_STATE_RUNNING 1
#define PROC_STATE_IN_RAFT 2
#define PROC_STATE_GONE 4

struct proc_plan {
    struct store_node *inv; /* the inventory, owned: steps point into it */
    size_t n_inv;
    struct pstep *v;
    size_t n, cap;
    int leader_watch; /* measure the leaderless seconds from the first starts_outage step */
    char **involved;  /* inventory names whose running state is recorded before the run */
    int *running;     /* per involved node, as the prechecks saw it: 1 Consul runs, 0 it does not,
                         -1 not known (then docker ps asks before the run) */
    size_t n_involved;
    const char *gone; /* node_gone: the dead node (borrowed from inv) */
};

/* ---- plan building (procedures.c) ---- */
struct pstep *plan_add(struct proc_plan *p, enum pstep_kind kind, const struct store_node *n,
                       const char *title_fmt, ...) __attribute__((format(printf, 4, 5)));
void plan_free(struct proc_plan *p);
/* The plan's steps as JSON: [{"node","title","command"}]. */
cJSON *plan_steps_json(const struct proc_plan *p);
const struct store_node *plan_node(const struct proc_plan *p, const char *name);
/* The path of a node's compose file, newly allocated. */
char *proc_compose_path(const struct store_node *n);
/* The backup name of path for job id, newly allocated. */
char *proc_backup_path(const char *path, int64_t job, const char *what);

/* ---- remote commands (procedures_cmd.c) ---- each initialises cmd and returns 0, or -1
 * when a value cannot be used (then cmd is empty and freed). */
int cmd_docker_version(struct sh_cmd *cmd);
int cmd_compose_version(struct sh_cmd *cmd);
int cmd_docker_ps(struct sh_cmd *cmd);
int cmd_docker_logs(struct sh_cmd *cmd);
int cmd_consul_leave(struct sh_cmd *cmd);
int cmd_list_peers(struct sh_cmd *cmd);
int cmd_members(struct sh_cmd *cmd);
int cmd_force_leave(struct sh_cmd *cmd, const char *node);
int cmd_remove_peer(struct sh_cmd *cmd, const char *raft_addr);
int cmd_compose_up(struct sh_cmd *cmd, const char *file);
int cmd_compose_down(struct sh_cmd *cmd, const char *file);
int cmd_hostname(struct sh_cmd *cmd);
int cmd_test(struct sh_cmd *cmd, const char *flag, const char *path); /* test -d|-e path */
int cmd_ls(struct sh_cmd *cmd, const char *path);                     /* ls -A path */
int cmd_mv(struct sh_cmd *cmd, const char *from, const char *to);
int cmd_cp(struct sh_cmd *cmd, const char *from, const char *to); /* cp -p */
int cmd_mkdir(struct sh_cmd *cmd, const char *dir);               /* mkdir -p */
/* Every port of every host reachable, as one remote command (timeout 3 bash … /dev/tcp). */
int cmd_ports_of(struct sh_cmd *cmd, const char *const *hosts, size_t nh, const int *ports,
                 size_t np);
/* 1 when `docker ps` output says the consul container is up. */
int proc_ps_running(const char *out);

/* ---- running commands for a job (procedures_run.c) ---- */
/* Runs cmd on n: every output line goes to the job log (stream stdout/stderr, the node's
 * name); stdout is also captured into out (may be NULL). timeout_ms 0 = the command limit.
 * Returns an ssh_rc; *exit_status the exit status. */
int proc_exec(struct proc_ctx *x, const struct store_node *n, const struct sh_cmd *cmd,
              int timeout_ms, int log_lines, struct buf *out, int *exit_status,
              struct ssh_error *err);
/* The abort flag's value (0, PROC_ABORT_CANCEL, PROC_ABORT_STOP). */
int proc_interrupted(const struct proc_ctx *x);
/* The undo of job target as a plan (prepare of a rollback without the target's state check:
 * also after a failure of the running job itself). */
int proc_prepare_undo(struct proc_ctx *x, int64_t target, struct proc_prep *out);
/* Adds the steps of p as pending rows of job x->job_id (numbering from x->next_seq). */
int proc_steps_store(struct proc_ctx *x, const struct proc_plan *p, int *first_seq);
/* Runs the steps of p whose rows begin at first_seq. *fail_msg (newly allocated) says why
 * a step failed; *gate collects gate reports (may be NULL). Returns an enum proc_end, or -1
 * on a database error. */
int proc_steps_run(struct proc_ctx *x, struct proc_plan *p, int first_seq, int *changed,
                   char **fail_msg, cJSON *gates, double *leaderless_s);

/* ---- diagnose (procedures_diag.c) ---- */
/* The read-only steps of a diagnose of n, each capturing its output. */
void proc_diag_plan(struct proc_plan *p, const struct store_node *n);
/* Runs the steps of p (a diagnose plan of n) and explains what they found in
 * out->result.findings. Returns 0, or -1 on a database error. */
int proc_diagnose(struct proc_ctx *x, struct proc_plan *p, const struct store_node *n,
                  struct proc_outcome *out);

#endif
