/* procedures_run: running a plan as job steps, and the rollback of a job (see
 * include/procedures.h). Each step is a row of job_steps moved pending → running →
 * succeeded / failed / skipped / cancelled; a remote step that changes something is recorded
 * in the audit log before it runs (job.step, outcome pending) and after (ok or error, with
 * its exit status), each with its step row in one transaction; every change is preceded by
 * its undo record. Steps of one fan-out group run in parallel, one thread per node, each
 * with its own database connection. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "cluster.h"
#include "gate.h"
#include "procedures_internal.h"
#include "store.h"
#include "util.h"

#define LOG_LINE_MAX 8192

/* ---------------------------------------------------------------- logging */

int
proc_interrupted(const struct proc_ctx *x)
{
    return x->abort ? atomic_load(x->abort) : 0;
}

/* Makes text fit for the log: valid UTF-8 (other bytes become '?'), no control characters
 * but tab, the secret masked, at most LOG_LINE_MAX bytes. Returns a new string. */
static char *
log_clean(const char *text, const char *secret)
{
    size_t n = strlen(text);
    struct buf b;
    buf_init(&b, LOG_LINE_MAX + 64);
    size_t slen = secret ? strlen(secret) : 0;
    for (size_t i = 0; i < n && b.len < LOG_LINE_MAX;) {
        if (slen >= 4 && strncmp(text + i, secret, slen) == 0) {
            buf_puts(&b, "***");
            i += slen;
            continue;
        }
        unsigned char c = (unsigned char)text[i];
        size_t k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (k > 1 && i + k <= n && utf8_valid(text + i, k)) {
            buf_append(&b, text + i, k);
            i += k;
        } else if (k == 1 && (c >= 0x20 || c == '\t') && c != 0x7f) {
            buf_append(&b, text + i, 1);
            i++;
        } else {
            buf_puts(&b, "?");
            i++;
        }
    }
    return buf_steal(&b);
}

void
proc_log(struct proc_ctx *x, const char *node, const char *stream, const char *fmt, ...)
{
    char raw[LOG_LINE_MAX + 1];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof(raw), fmt, ap);
    va_end(ap);
    char *text = log_clean(raw, x->secret);
    int64_t line = 0, ts = time_now_ms();
    if (store_job_log_append(x->db, x->job_id, ts, node, stream, text, &line) != STORE_OK) {
        log_warn("jobs: job %lld: a log line could not be stored: %s", (long long)x->job_id, text);
    } else if (x->on_log) {
        struct store_log_line l = {.job_id = x->job_id,
                                   .line = line,
                                   .ts = ts,
                                   .node = node ? node : "",
                                   .stream = stream,
                                   .text = text};
        x->on_log(x->arg, &l);
    }
    free(text);
}

struct line_arg {
    struct proc_ctx *x;
    const char *node;
    struct buf *capture; /* may be NULL */
};

static void
line_to_log(void *arg, enum ssh_stream stream, const char *line, size_t len)
{
    struct line_arg *la = arg;
    proc_log(la->x, la->node, stream == SSH_STDERR ? "stderr" : "stdout", "%.*s", (int)len, line);
    if (la->capture) {
        buf_append(la->capture, line, len);
        buf_puts(la->capture, "\n");
    }
}

/* proc_exec that logs every line and also keeps them (both streams) in capture. */
static int
exec_capture(struct proc_ctx *x, const struct store_node *n, const struct sh_cmd *cmd,
             struct buf *capture, int *exit_status, struct ssh_error *err)
{
    struct line_arg la = {x, n->name, capture};
    *exit_status = -1;
    memset(err, 0, sizeof(*err));
    return x->run->exec(x->run->ctx, n, cmd, x->lim.command_timeout_ms, x->abort, line_to_log, &la,
                        NULL, exit_status, err);
}

int
proc_exec(struct proc_ctx *x, const struct store_node *n, const struct sh_cmd *cmd, int timeout_ms,
          int log_lines, struct buf *out, int *exit_status, struct ssh_error *err)
{
    struct line_arg la = {x, n->name, NULL};
    *exit_status = -1;
    memset(err, 0, sizeof(*err));
    return x->run->exec(x->run->ctx, n, cmd, timeout_ms ? timeout_ms : x->lim.command_timeout_ms,
                        x->abort, log_lines ? line_to_log : NULL, &la, out, exit_status, err);
}

/* ---------------------------------------------------------------- steps and audit */

static const struct audit_actor jobs_actor = {.name = "jobs", .role = "", .ip = "local"};

static int
is_remote(const struct pstep *s)
{
    return s->node && s->kind != PS_GATE && s->kind != PS_WAIT_GONE;
}

/* A remote step that may change something: its attempt is recorded before it runs. */
static int
is_change(const struct pstep *s)
{
    return is_remote(s) && !s->readonly;
}

int
proc_steps_store(struct proc_ctx *x, const struct proc_plan *p, int *first_seq)
{
    if (x->next_seq < 1) {
        x->next_seq = 1;
    }
    *first_seq = x->next_seq;
    if (store_begin(x->db) != STORE_OK) {
        return -1;
    }
    for (size_t i = 0; i < p->n; i++) {
        const struct pstep *s = &p->v[i];
        struct store_job_step row = {.job_id = x->job_id,
                                     .seq = x->next_seq + (int)i,
                                     .node = s->node ? s->node->name : "",
                                     .title = s->title,
                                     .command = s->has_cmd ? sh_cmd_text(&s->cmd) : NULL,
                                     .state = "pending"};
        if (store_job_step_add(x->db, &row) != STORE_OK) {
            store_rollback(x->db);
            return -1;
        }
    }
    if (store_commit(x->db) != STORE_OK) {
        store_rollback(x->db);
        return -1;
    }
    x->next_seq += (int)p->n;
    return 0;
}

static cJSON *
step_detail(const struct proc_ctx *x, const struct pstep *s, int seq)
{
    cJSON *d = cJSON_CreateObject();
    cJSON_AddNumberToObject(d, "job", (double)x->job_id);
    cJSON_AddNumberToObject(d, "seq", seq);
    cJSON_AddStringToObject(d, "node", s->node ? s->node->name : "");
    cJSON_AddStringToObject(d, "title", s->title);
    if (s->has_cmd) {
        cJSON_AddStringToObject(d, "command", sh_cmd_text(&s->cmd));
    } else if (s->path) {
        cJSON_AddStringToObject(d, "path", s->path);
    }
    return d;
}

static void
job_target(const struct proc_ctx *x, char out[32])
{
    snprintf(out, 32, "%lld", (long long)x->job_id);
}

/* Marks the step running (and records the attempt of a remote step) in one transaction.
 * *attempt gets the pending entry's id (0 for local steps). */
static int
step_begin(struct proc_ctx *x, const struct pstep *s, int seq, int64_t *attempt)
{
    *attempt = 0;
    if (store_begin(x->db) != STORE_OK) {
        return -1;
    }
    char target[32];
    job_target(x, target);
    int rc = store_job_step_update(x->db, x->job_id, seq, "running", 0, 0, time_now_ms(), 0);
    if (rc == STORE_OK && is_change(s)) {
        rc = audit_record(x->db, &jobs_actor, "job.step", target, step_detail(x, s, seq), "pending",
                          attempt);
    }
    if (rc != STORE_OK || store_commit(x->db) != STORE_OK) {
        store_rollback(x->db);
        return -1;
    }
    if (x->on_change) {
        x->on_change(x->arg);
    }
    return 0;
}

/* Ends the step (state, exit status) with its job.step outcome entry. */
static int
step_end(struct proc_ctx *x, const struct pstep *s, int seq, int64_t attempt, const char *state,
         int has_exit, int exit_status, const char *error)
{
    if (store_begin(x->db) != STORE_OK) {
        return -1;
    }
    char target[32];
    job_target(x, target);
    int rc = store_job_step_update(x->db, x->job_id, seq, state, has_exit, exit_status, 0,
                                   time_now_ms());
    if (rc == STORE_OK && is_remote(s)) {
        cJSON *d = step_detail(x, s, seq);
        if (attempt) {
            cJSON_AddNumberToObject(d, "attempt_id", (double)attempt);
        }
        cJSON_AddStringToObject(d, "state", state);
        if (has_exit) {
            cJSON_AddNumberToObject(d, "exit_status", exit_status);
        } else {
            cJSON_AddNullToObject(d, "exit_status");
        }
        if (error) {
            cJSON_AddStringToObject(d, "error", error);
        }
        rc = audit_record(x->db, &jobs_actor, "job.step", target, d,
                          strcmp(state, "failed") == 0 ? "error" : "ok", NULL);
    }
    if (rc != STORE_OK || store_commit(x->db) != STORE_OK) {
        store_rollback(x->db);
        return -1;
    }
    if (x->on_change) {
        x->on_change(x->arg);
    }
    return 0;
}

static int
undo_add(struct proc_ctx *x, const char *kind, const char *node, const char *path,
         const char *path2, int flag, const char *content, size_t len)
{
    struct store_undo u = {.job_id = x->job_id,
                           .kind = kind,
                           .node = node,
                           .path = path,
                           .path2 = path2,
                           .flag = flag,
                           .content = content,
                           .content_len = len};
    return store_job_undo_add(x->db, &u, NULL) == STORE_OK ? 0 : -1;
}

/* ---------------------------------------------------------------- running one step */

/* How a step ended. */
struct step_res {
    int failed;  /* 1 failed, 2 interrupted */
    int skipped; /* done but nothing was needed */
    int has_exit;
    int exit_status;
    int changed;    /* something on a node may have changed */
    char msg[1024]; /* why it failed */
    cJSON *gate;    /* a gate's report */
};

static void res_fail(struct step_res *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
res_fail(struct step_res *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->msg, sizeof(r->msg), fmt, ap);
    va_end(ap);
    r->failed = 1;
}

/* An ssh failure of a step: interrupted when the job was aborted. */
static void
res_ssh(struct proc_ctx *x, struct step_res *r, int rc, const struct ssh_error *err)
{
    if (rc == SSH_ERR_CANCELLED || proc_interrupted(x)) {
        snprintf(r->msg, sizeof(r->msg), "stopped: %s", err->message);
        r->failed = 2;
    } else if (rc == SSH_ERR_HOST_KEY_CHANGED) {
        res_fail(r, "host key changed: %s presents %s, but %s is pinned; nothing was run on it",
                 err->message, err->presented.fingerprint, err->expected.fingerprint);
    } else {
        res_fail(r, "%s", err->message);
    }
}

/* Runs a command step: the exit status must be 0 unless any_exit. */
static void
run_cmd_into(struct proc_ctx *x, const struct store_node *n, const struct sh_cmd *cmd, int any_exit,
             int readonly, struct buf *capture, struct step_res *r)
{
    struct ssh_error err;
    int status = -1;
    proc_log(x, n->name, "info", "$ %s", sh_cmd_text(cmd));
    int rc = exec_capture(x, n, cmd, capture, &status, &err);
    r->changed = !readonly;
    if (rc != SSH_OK) {
        res_ssh(x, r, rc, &err);
        return;
    }
    r->has_exit = 1;
    r->exit_status = status;
    if (status != 0 && !any_exit) {
        res_fail(r, "'%s' on %s exited with status %d", sh_cmd_text(cmd), n->name, status);
    } else if (status != 0 && !readonly) {
        proc_log(x, n->name, "info",
                 "'%s' exited with status %d; the job goes on: the steps after it do not "
                 "depend on it",
                 sh_cmd_text(cmd), status);
    }
}

static void
run_cmd(struct proc_ctx *x, const struct store_node *n, const struct sh_cmd *cmd, int any_exit,
        struct step_res *r)
{
    run_cmd_into(x, n, cmd, any_exit, 0, NULL, r);
}

/* PS_READ: the file into the capture, and into the log with secrets masked. */
static void
run_read(struct proc_ctx *x, const struct pstep *s, struct step_res *r)
{
    char *data = NULL;
    size_t len = 0;
    struct ssh_error err;
    int rc = x->run->read_file(x->run->ctx, s->node, s->path, &data, &len, &err);
    if (rc == SSH_ERR_NOT_FOUND) {
        proc_log(x, s->node->name, "info", "%s does not exist", s->path);
        r->skipped = 1;
        return;
    }
    if (rc != SSH_OK) {
        res_ssh(x, r, rc, &err);
        return;
    }
    buf_append(s->capture, data, len);
    char *shown = proc_redact(data, len);
    char *save = NULL;
    proc_log(x, s->node->name, "info", "%s (%zu bytes, secrets masked):", s->path, len);
    for (char *line = strtok_r(shown, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        proc_log(x, s->node->name, "stdout", "%s", line);
    }
    free(shown);
    free(data);
}

/* Runs one of the small built commands (freeing it). */
static void
run_built(struct proc_ctx *x, const struct store_node *n, struct sh_cmd *cmd, int any_exit,
          struct step_res *r)
{
    run_cmd(x, n, cmd, any_exit, r);
    sh_cmd_free(cmd);
}

/* `test -e path` on n: 1 exists, 0 not, -1 error (r filled). */
static int
remote_exists(struct proc_ctx *x, const struct store_node *n, const char *path, struct step_res *r)
{
    struct sh_cmd cmd;
    cmd_test(&cmd, "-e", path);
    struct ssh_error err;
    int status = -1;
    int rc = proc_exec(x, n, &cmd, 0, 0, NULL, &status, &err);
    sh_cmd_free(&cmd);
    if (rc != SSH_OK) {
        res_ssh(x, r, rc, &err);
        return -1;
    }
    return status == 0;
}

/* docker ps on n: 1 running, 0 not, -1 error (r filled). */
static int
remote_running(struct proc_ctx *x, const struct store_node *n, struct step_res *r)
{
    struct sh_cmd cmd;
    cmd_docker_ps(&cmd);
    struct buf out;
    buf_init(&out, 64 * 1024);
    struct ssh_error err;
    int status = -1;
    int rc = proc_exec(x, n, &cmd, 0, 0, &out, &status, &err);
    sh_cmd_free(&cmd);
    int result = -1;
    if (rc != SSH_OK) {
        res_ssh(x, r, rc, &err);
    } else if (status != 0) {
        res_fail(r, "docker ps on %s exited with status %d", n->name, status);
    } else {
        result = proc_ps_running(out.data);
    }
    buf_free(&out);
    return result;
}

/* Writes data to path on n and reads it back: 0 when the bytes are there. */
static int
write_verified(struct proc_ctx *x, const struct store_node *n, const char *path, const char *data,
               size_t len, struct step_res *r)
{
    struct ssh_error err;
    const struct proc_runner *run = x->run;
    r->changed = 1;
    int rc = run->write_file(run->ctx, n, path, data, len, &err);
    if (rc != SSH_OK) {
        res_ssh(x, r, rc, &err);
        return -1;
    }
    char *back = NULL;
    size_t blen = 0;
    rc = run->read_file(run->ctx, n, path, &back, &blen, &err);
    int same = rc == SSH_OK && blen == len && memcmp(back, data, len) == 0;
    free(back);
    if (rc != SSH_OK) {
        res_ssh(x, r, rc, &err);
        return -1;
    }
    if (!same) {
        res_fail(r, "%s on %s does not hold what was written (%zu bytes read back, %zu written)",
                 path, n->name, blen, len);
        return -1;
    }
    proc_log(x, n->name, "info", "wrote %s (%zu bytes, read back identical)", path, len);
    return 0;
}

/* 1 while the model lists raft_addr in raft; -1 without a model, or with one Consul answered
 * before since (a model older than the step could still show what the step changed). */
static int
in_raft(struct proc_ctx *x, const char *raft_addr, int64_t since)
{
    void *ref = NULL;
    int64_t answered = 0;
    const struct cluster_model *m = x->run->model_get(x->run->ctx, &ref, &answered);
    if (!m) {
        return -1;
    }
    if (answered < since) {
        x->run->model_put(x->run->ctx, ref);
        return -1;
    }
    int yes = 0;
    for (size_t i = 0; i < m->n_servers; i++) {
        yes |= m->servers[i].in_raft && cluster_host_equal(m->servers[i].address, raft_addr);
    }
    if (!m->raft_known) {
        yes = -1;
    }
    x->run->model_put(x->run->ctx, ref);
    return yes;
}

/* 1 when the server at raft_addr is in raft and its serf member has failed (stopped: it
 * will not leave raft by itself), 0 otherwise or when unknown. */
static int
in_raft_failed(struct proc_ctx *x, const char *raft_addr, int64_t since)
{
    void *ref = NULL;
    int64_t answered = 0;
    const struct cluster_model *m = x->run->model_get(x->run->ctx, &ref, &answered);
    if (!m) {
        return 0;
    }
    if (answered < since) {
        x->run->model_put(x->run->ctx, ref);
        return 0;
    }
    int yes = 0;
    for (size_t i = 0; m->raft_known && i < m->n_servers; i++) {
        yes |= m->servers[i].in_raft && m->servers[i].serf_status == CLUSTER_SERF_FAILED &&
               cluster_host_equal(m->servers[i].address, raft_addr);
    }
    x->run->model_put(x->run->ctx, ref);
    return yes;
}

/* in_raft from a model Consul answered after this call began (the watcher is poked and
 * polled, at most FRESH_MS); -1 when none came. */
#define FRESH_MS 3000
static int
in_raft_fresh(struct proc_ctx *x, const char *raft_addr)
{
    const struct proc_runner *run = x->run;
    int64_t t0 = run->now_ms(run->ctx);
    for (;;) {
        run->model_refresh(run->ctx);
        int yes = in_raft(x, raft_addr, t0);
        if (yes >= 0 || run->now_ms(run->ctx) - t0 >= FRESH_MS ||
            run->sleep_ms(run->ctx, x->lim.gate_poll_ms, x->abort)) {
            return yes;
        }
    }
}

static void
wait_gone(struct proc_ctx *x, const struct pstep *s, struct step_res *r)
{
    const struct proc_runner *run = x->run;
    int limit = s->wait_ms ? s->wait_ms : x->lim.gate_timeout_ms;
    int64_t t0 = run->now_ms(run->ctx);
    for (;;) {
        run->model_refresh(run->ctx);
        int yes = in_raft(x, s->raft_addr, t0);
        int64_t el = run->now_ms(run->ctx) - t0;
        if (yes == 0) {
            proc_log(x, NULL, "info", "%s is out of raft (after %.1f s)", s->raft_addr,
                     (double)el / 1000);
            return;
        }
        /* the wait before force-leave ends early for a server that stopped while still in
         * raft (its agent came back under the restart policy after the leave and rejoined
         * before the down): a failed member never leaves raft by itself */
        if (s->end_if_failed && yes > 0 && in_raft_failed(x, s->raft_addr, t0)) {
            proc_log(x, NULL, "info",
                     "%s is still in raft and its agent has failed (stopped): it will not leave "
                     "by itself (after %.1f s)",
                     s->raft_addr, (double)el / 1000);
            r->skipped = 1;
            return;
        }
        if (el >= limit) {
            if (s->any_exit) {
                proc_log(x, NULL, "info", "%s is still in raft after %.1f s", s->raft_addr,
                         (double)el / 1000);
                r->skipped = 1;
            } else {
                res_fail(r, "%s is still in raft after %.1f s", s->raft_addr, (double)el / 1000);
            }
            return;
        }
        if (run->sleep_ms(run->ctx, x->lim.gate_poll_ms, x->abort)) {
            snprintf(r->msg, sizeof(r->msg), "stopped while waiting for %s to leave raft",
                     s->raft_addr);
            r->failed = 2;
            return;
        }
    }
}

static void
run_gate(struct proc_ctx *x, const struct pstep *s, struct step_res *r)
{
    struct gate_expect e = {(const char *const *)s->gate_addrs, (const char *const *)s->gate_names,
                            s->gate_n, s->gate_peer};
    int rc = gate_wait(x, &e, x->lim.gate_timeout_ms, &r->gate);
    if (rc == GATE_CANCELLED) {
        snprintf(r->msg, sizeof(r->msg), "stopped while waiting for the gate");
        r->failed = 2;
    } else if (rc != GATE_PASSED) {
        res_fail(r, "the gate did not pass within %d s: %s", x->lim.gate_timeout_ms / 1000,
                 json_get_str(r->gate, "reason", "?"));
    }
}

/* PS_WRITE: the file must still be as prepare read it; its undo record goes first. */
static void
run_write(struct proc_ctx *x, const struct pstep *s, struct step_res *r)
{
    const struct proc_runner *run = x->run;
    const struct store_node *n = s->node;
    char *now = NULL;
    size_t now_len = 0;
    struct ssh_error err;
    int rc = run->read_file(run->ctx, n, s->path, &now, &now_len, &err);
    if (rc != SSH_OK && rc != SSH_ERR_NOT_FOUND) {
        res_ssh(x, r, rc, &err);
        return;
    }
    int same = s->existed
                   ? rc == SSH_OK && now_len == s->orig_len && memcmp(now, s->orig, now_len) == 0
                   : rc == SSH_ERR_NOT_FOUND;
    free(now);
    if (!same) {
        res_fail(r, "%s on %s changed since the plan was made; nothing was written", s->path,
                 n->name);
        return;
    }
    if (undo_add(x, "file", n->name, s->path, "", s->existed, s->existed ? s->orig : NULL,
                 s->existed ? s->orig_len : 0) != 0) {
        res_fail(r, "the undo record of %s could not be stored; nothing was written", s->path);
        return;
    }
    write_verified(x, n, s->path, s->data, s->len, r);
}

static void
run_restore(struct proc_ctx *x, const struct pstep *s, struct step_res *r)
{
    const struct store_node *n = s->node;
    if (s->existed) {
        write_verified(x, n, s->path, s->data, s->len, r);
        return;
    }
    int e = remote_exists(x, n, s->path, r);
    if (e < 0) {
        return;
    }
    if (!e) {
        proc_log(x, n->name, "info", "%s is not there: nothing to move", s->path);
        r->skipped = 1;
        return;
    }
    struct sh_cmd cmd;
    cmd_mv(&cmd, s->path, s->path2);
    run_built(x, n, &cmd, 0, r);
}

static void
run_undo_move(struct proc_ctx *x, const struct pstep *s, struct step_res *r)
{
    const struct store_node *n = s->node;
    int e = remote_exists(x, n, s->path2, r);
    if (e < 0) {
        return;
    }
    if (!e) {
        proc_log(x, n->name, "info", "%s is not there: the move did not happen", s->path2);
        r->skipped = 1;
        return;
    }
    struct sh_cmd cmd;
    if ((e = remote_exists(x, n, s->path, r)) < 0) {
        return;
    }
    if (e) {
        cmd_mv(&cmd, s->path, s->path3);
        run_built(x, n, &cmd, 0, r);
        if (r->failed) {
            return;
        }
    }
    cmd_mv(&cmd, s->path2, s->path);
    run_built(x, n, &cmd, 0, r);
}

static void
run_ensure(struct proc_ctx *x, const struct pstep *s, int running_wanted, struct step_res *r)
{
    const struct store_node *n = s->node;
    int running = remote_running(x, n, r);
    if (running < 0) {
        return;
    }
    if (running == running_wanted && !(running && s->existed)) {
        proc_log(x, n->name, "info", "Consul is %s on %s, as before",
                 running ? "running" : "stopped", n->name);
        r->skipped = 1;
        return;
    }
    struct sh_cmd cmd;
    if (running_wanted) {
        cmd_compose_up(&cmd, s->path);
        run_built(x, n, &cmd, 0, r);
        return;
    }
    cmd_consul_leave(&cmd);
    run_built(x, n, &cmd, 1, r); /* a leave that fails still allows the down */
    if (r->failed) {
        return;
    }
    cmd_compose_down(&cmd, s->path);
    run_built(x, n, &cmd, 0, r);
}

static void
run_one(struct proc_ctx *x, struct pstep *s, struct step_res *r)
{
    switch (s->kind) {
    case PS_CMD:
    case PS_BACKUP:
        run_cmd_into(x, s->node, &s->cmd, s->any_exit, s->readonly, s->capture, r);
        break;
    case PS_READ:
        run_read(x, s, r);
        break;
    case PS_MOVE:
        if (undo_add(x, "move", s->node->name, s->path, s->path2, 0, NULL, 0) != 0) {
            res_fail(r, "the undo record of the move could not be stored; nothing was moved");
            break;
        }
        run_cmd(x, s->node, &s->cmd, 0, r);
        break;
    case PS_WRITE:
        run_write(x, s, r);
        break;
    case PS_GATE:
        run_gate(x, s, r);
        break;
    case PS_WAIT_GONE:
        wait_gone(x, s, r);
        break;
    case PS_CMD_IF_IN_RAFT: {
        int yes = in_raft_fresh(x, s->raft_addr);
        if (yes == 0) {
            proc_log(x, s->node->name, "info", "%s is out of raft: '%s' is not needed",
                     s->raft_addr, sh_cmd_text(&s->cmd));
            r->skipped = 1;
        } else {
            run_cmd(x, s->node, &s->cmd, 0, r);
            /* It may have left between the look and the command (the leader removes a
             * force-left server on its own time): then the command's failure ("not found in
             * the Raft configuration") is the state it was run for. */
            if (r->failed == 1 && r->has_exit) {
                if (in_raft_fresh(x, s->raft_addr) == 0) {
                    proc_log(x, s->node->name, "info",
                             "%s left raft while '%s' ran: its exit status %d does not matter",
                             s->raft_addr, sh_cmd_text(&s->cmd), r->exit_status);
                    r->failed = 0;
                    r->msg[0] = '\0';
                }
            }
        }
        break;
    }
    case PS_ENSURE_STOPPED:
        run_ensure(x, s, 0, r);
        break;
    case PS_ENSURE_RUNNING:
        run_ensure(x, s, 1, r);
        break;
    case PS_RESTORE_FILE:
        run_restore(x, s, r);
        break;
    case PS_UNDO_MOVE:
        run_undo_move(x, s, r);
        break;
    }
}

/* Runs step s (row seq) with its rows and audit entries. Returns 0, or -1 on a database
 * error (then r says failed). */
static int
run_step(struct proc_ctx *x, struct pstep *s, int seq, struct step_res *r)
{
    memset(r, 0, sizeof(*r));
    int64_t attempt = 0;
    if (step_begin(x, s, seq, &attempt) != 0) {
        res_fail(r, "the database refused the step record; the step did not run");
        return -1;
    }
    proc_log(x, s->node ? s->node->name : NULL, "info", "step %d: %s", seq, s->title);
    run_one(x, s, r);
    const char *state = r->failed == 2 ? "cancelled"
                        : r->failed    ? "failed"
                        : r->skipped   ? "skipped"
                                       : "succeeded";
    if (r->failed) {
        proc_log(x, s->node ? s->node->name : NULL, "error", "step %d %s: %s", seq, state, r->msg);
    }
    if (step_end(x, s, seq, attempt, state, r->has_exit, r->exit_status,
                 r->failed ? r->msg : NULL) != 0) {
        if (!r->failed) {
            res_fail(r, "the database refused the end of step %d", seq);
        }
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- fan-out */

struct fan {
    struct proc_ctx *x;
    struct pstep *steps;
    int first_seq;
    struct step_res *res;
};

static void
fan_one(void *arg, size_t i)
{
    struct fan *f = arg;
    struct proc_ctx tx = *f->x;
    tx.db = store_thread(store_path(f->x->db));
    if (!tx.db) {
        res_fail(&f->res[i], "no database connection for a parallel step");
        return;
    }
    run_step(&tx, &f->steps[i], f->first_seq + (int)i, &f->res[i]);
}

/* Marks the step rows from seq on (up to count) with state (cancelled or skipped). */
static void
rest_mark(struct proc_ctx *x, int seq, size_t count, const char *state)
{
    for (size_t k = 0; k < count; k++) {
        store_job_step_update(x->db, x->job_id, seq + (int)k, state, 0, 0, 0, 0);
    }
    if (count && x->on_change) {
        x->on_change(x->arg);
    }
}

int
proc_steps_run(struct proc_ctx *x, struct proc_plan *p, int first_seq, int *changed,
               char **fail_msg, cJSON *gates, double *leaderless_s)
{
    const struct proc_runner *run = x->run;
    int end = PROC_SUCCEEDED, watching = 0;
    *fail_msg = NULL;
    size_t i = 0;
    while (i < p->n) {
        int ab = proc_interrupted(x);
        if (ab) {
            end = ab == PROC_ABORT_STOP ? PROC_STOPPED : PROC_CANCELLED;
            proc_log(x, NULL, "info", "%s before step %d",
                     ab == PROC_ABORT_STOP ? "consulate is stopping" : "cancelled",
                     first_seq + (int)i);
            break;
        }
        size_t j = i + 1;
        if (p->v[i].group > 0) {
            while (j < p->n && p->v[j].group == p->v[i].group) {
                j++;
            }
        }
        if (p->leader_watch && !watching) {
            for (size_t k = i; k < j; k++) {
                if (p->v[k].starts_outage) {
                    run->leader_watch_start(run->ctx);
                    watching = 1;
                    break;
                }
            }
        }
        struct step_res *res = xcalloc(j - i, sizeof(*res));
        int dberr = 0;
        if (j - i == 1) {
            dberr = run_step(x, &p->v[i], first_seq + (int)i, &res[0]);
        } else {
            proc_log(x, NULL, "info", "steps %d-%d run in parallel on %zu nodes",
                     first_seq + (int)i, first_seq + (int)j - 1, j - i);
            struct fan f = {x, &p->v[i], first_seq + (int)i, res};
            ssh_fan_out(j - i, j - i, fan_one, &f);
        }
        int failed = 0;
        for (size_t k = 0; k < j - i; k++) {
            *changed |= res[k].changed;
            if (res[k].gate && gates) {
                cJSON_AddItemToArray(gates, res[k].gate);
                res[k].gate = NULL;
            }
            cJSON_Delete(res[k].gate);
            if (res[k].failed && !failed) {
                failed = res[k].failed;
                *fail_msg = xstrdup(res[k].msg);
            }
        }
        free(res);
        if (dberr) {
            end = -1;
            break;
        }
        i = j;
        if (failed) {
            int ab2 = proc_interrupted(x);
            end = failed == 2 ? (ab2 == PROC_ABORT_STOP ? PROC_STOPPED : PROC_CANCELLED)
                              : PROC_FAILED;
            break;
        }
    }
    if (i < p->n) {
        rest_mark(x, first_seq + (int)i, p->n - i, end == PROC_FAILED ? "skipped" : "cancelled");
    }
    if (watching) {
        int samples = 0;
        run->leader_watch_stop(run->ctx, leaderless_s, &samples);
        proc_log(x, NULL, "info", "the cluster had no leader for %.1f s (%d samples, every 100 ms)",
                 *leaderless_s, samples);
    }
    return end;
}

/* ---------------------------------------------------------------- execute and rollback */

void
proc_outcome_free(struct proc_outcome *o)
{
    if (o) {
        cJSON_Delete(o->result);
        cJSON_Delete(o->prechecks);
        memset(o, 0, sizeof(*o));
    }
}

/* The steps and diffs of a plan as one text, for comparing two plans. */
static char *
plan_fingerprint(const cJSON *plan)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemReferenceToObject(o, "steps", cJSON_GetObjectItemCaseSensitive(plan, "steps"));
    cJSON_AddItemReferenceToObject(o, "diffs", cJSON_GetObjectItemCaseSensitive(plan, "diffs"));
    char *t = json_print(o);
    cJSON_Delete(o);
    return t;
}

/* Says where two plans differ first (steps, then diffs), into why. */
static void
plan_difference(const cJSON *a, const cJSON *b, char *why, size_t whylen)
{
    static const char *const keys[] = {"diffs", "steps"};
    for (size_t k = 0; k < ARRAY_LEN(keys); k++) {
        const cJSON *la = cJSON_GetObjectItemCaseSensitive(a, keys[k]);
        const cJSON *lb = cJSON_GetObjectItemCaseSensitive(b, keys[k]);
        int na = cJSON_GetArraySize(la), nb = cJSON_GetArraySize(lb);
        for (int i = 0; i < na || i < nb; i++) {
            const cJSON *ia = cJSON_GetArrayItem(la, i), *ib = cJSON_GetArrayItem(lb, i);
            if (!ia || !ib || !cJSON_Compare(ia, ib, 1)) {
                const cJSON *any = ia ? ia : ib;
                snprintf(why, whylen, "%s %d (%s, %s) is not the approved one",
                         k == 0 ? "the compose diff" : "step", i + 1, json_get_str(any, "node", ""),
                         k == 0 ? json_get_str(any, "path", "") : json_get_str(any, "title", ""));
                return;
            }
        }
    }
    snprintf(why, whylen, "the plan is not the approved one");
}

/* record_states's docker ps on the involved nodes listed in ask (remote_running uses no
 * database). */
struct states {
    struct proc_ctx *x;
    const struct store_node **n;
    int *running;
    struct step_res *r;
    size_t *ask; /* indexes into the above */
};

static void
state_one(void *arg, size_t k)
{
    struct states *st = arg;
    size_t i = st->ask[k];
    st->running[i] = remote_running(st->x, st->n[i], &st->r[i]);
}

/* Records each involved node's running state (and raft membership) before the first change. */
static int
record_states(struct proc_ctx *x, const struct proc_plan *p, char *why, size_t whylen)
{
    void *ref = NULL;
    int64_t answered = 0;
    const struct cluster_model *m = x->run->model_get(x->run->ctx, &ref, &answered);
    size_t n = p->n_involved, na = 0;
    struct states st = {x, xcalloc(n + 1, sizeof(*st.n)), xcalloc(n + 1, sizeof(int)),
                        xcalloc(n + 1, sizeof(struct step_res)), xcalloc(n + 1, sizeof(size_t))};
    /* what docker ps said in the prechecks; asked again, side by side, where it did not answer */
    for (size_t i = 0; i < n; i++) {
        st.n[i] = plan_node(p, p->involved[i]);
        st.running[i] = p->running ? p->running[i] : -1;
        if (st.running[i] < 0) {
            st.ask[na++] = i;
        }
    }
    ssh_fan_out(na, na, state_one, &st);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const struct store_node *nd = st.n[i];
        struct cluster_match mt;
        int flag =
            m && cluster_model_match(m, nd->address, &mt) && mt.in_raft ? PROC_STATE_IN_RAFT : 0;
        if (st.running[i] < 0) {
            snprintf(why, whylen, "cannot learn whether Consul runs on %s: %.400s", nd->name,
                     st.r[i].msg);
            rc = -1;
            break;
        }
        flag |= st.running[i] ? PROC_STATE_RUNNING : 0;
        rc = undo_add(x, "state", nd->name, "", "", flag, NULL, 0);
        if (rc) {
            snprintf(why, whylen, "the database refused the state record of %s", nd->name);
        }
    }
    if (rc == 0 && p->gone) {
        rc = undo_add(x, "state", p->gone, "", "", PROC_STATE_GONE | PROC_STATE_IN_RAFT, NULL, 0);
    }
    if (m) {
        x->run->model_put(x->run->ctx, ref);
    }
    free(st.n);
    free(st.running);
    free(st.r);
    free(st.ask);
    return rc;
}

/* Runs the prepared plan of prep and fills out (result, end). */
static int
run_prepared(struct proc_ctx *x, struct proc_prep *prep, struct proc_outcome *out)
{
    int first = 0;
    if (proc_steps_store(x, prep->steps, &first) != 0) {
        return -1;
    }
    char *fail = NULL;
    double leaderless = 0;
    cJSON *gates = cJSON_CreateArray();
    int end = proc_steps_run(x, prep->steps, first, &out->changed, &fail, gates, &leaderless);
    if (end < 0) {
        cJSON_Delete(gates);
        free(fail);
        return -1;
    }
    out->end = end;
    if (fail) {
        cJSON_AddStringToObject(out->result, "error", fail);
    }
    if (prep->steps->leader_watch) {
        cJSON_AddNumberToObject(out->result, "leaderless_s",
                                (double)(int64_t)(leaderless * 10 + 0.5) / 10);
    }
    if (cJSON_GetArraySize(gates) > 0) {
        cJSON_AddItemToObject(out->result, "gate",
                              cJSON_DetachItemFromArray(gates, cJSON_GetArraySize(gates) - 1));
    }
    if (cJSON_GetArraySize(gates) > 0) {
        cJSON_AddItemToObject(out->result, "gates", gates);
    } else {
        cJSON_Delete(gates);
    }
    free(fail);
    return 0;
}

int
proc_execute(struct proc_ctx *x, const struct proc_request *req, const char *approved_plan,
             struct proc_outcome *out)
{
    memset(out, 0, sizeof(*out));
    out->result = cJSON_CreateObject();
    if (strcmp(req->type, "diagnose") == 0) {
        struct proc_prep prep;
        proc_prepare(x, req, &prep);
        out->prechecks = cJSON_Duplicate(prep.prechecks, 1);
        int rc = 0;
        if (prep.failed) {
            out->end = PROC_FAILED;
            cJSON_AddStringToObject(out->result, "error", prep.error);
        } else {
            rc = proc_diagnose(x, prep.steps, plan_node(prep.steps, req->node), out);
        }
        proc_prep_free(&prep);
        return rc;
    }
    proc_log(x, NULL, "info", "running the prechecks again before any change");
    struct proc_prep prep;
    proc_prepare(x, req, &prep);
    out->prechecks = cJSON_Duplicate(prep.prechecks, 1);
    int rc = 0;
    if (prep.failed) {
        /* a cancel or a stop during the prechecks ends their SSH work, which then reads as a
         * failed precheck: the job ends as what it is (cancelled, interrupted), not failed */
        int ab = proc_interrupted(x);
        out->end = ab == PROC_ABORT_STOP     ? PROC_STOPPED
                   : ab == PROC_ABORT_CANCEL ? PROC_CANCELLED
                                             : PROC_FAILED;
        char *e = ab ? xasprintf("%s during the prechecks; nothing was changed",
                                 ab == PROC_ABORT_STOP ? "consulate stopped" : "cancelled")
                     : xasprintf("a precheck failed; nothing was changed: %s", prep.error);
        if (ab) {
            proc_log(x, NULL, "info", "%s", e);
        }
        cJSON_AddStringToObject(out->result, "error", e);
        free(e);
        goto done;
    }
    if (approved_plan) {
        cJSON *ap = json_parse_str(approved_plan);
        char *fa = ap ? plan_fingerprint(ap) : xstrdup("");
        char *fb = plan_fingerprint(prep.plan);
        if (strcmp(fa, fb) != 0) {
            char why[600];
            plan_difference(ap, prep.plan, why, sizeof(why));
            char *e = xasprintf("the plan changed since it was approved (%s); nothing was changed: "
                                "request the change again",
                                why);
            proc_log(x, NULL, "error", "%s", e);
            cJSON_AddStringToObject(out->result, "error", e);
            cJSON_AddItemToObject(out->result, "plan_now", cJSON_Duplicate(prep.plan, 1));
            free(e);
            out->end = PROC_PLAN_CHANGED;
        }
        cJSON_Delete(ap);
        free(fa);
        free(fb);
        if (out->end == PROC_PLAN_CHANGED) {
            goto done;
        }
    }
    char why[600];
    if (record_states(x, prep.steps, why, sizeof(why)) != 0) {
        out->end = PROC_FAILED;
        cJSON_AddStringToObject(out->result, "error", why);
        goto done;
    }
    rc = run_prepared(x, &prep, out);
done:
    proc_prep_free(&prep);
    return rc;
}

int
proc_rollback(struct proc_ctx *x, int64_t target, struct proc_outcome *out)
{
    memset(out, 0, sizeof(*out));
    out->result = cJSON_CreateObject();
    proc_log(x, NULL, "info", "rolling back the changes of job %lld", (long long)target);
    struct proc_prep prep;
    proc_prepare_undo(x, target, &prep);
    out->prechecks = cJSON_Duplicate(prep.prechecks, 1);
    int rc = 0;
    if (prep.failed) {
        out->end = PROC_FAILED;
        char *e = xasprintf("the rollback cannot run: %s", prep.error);
        cJSON_AddStringToObject(out->result, "error", e);
        free(e);
    } else {
        cJSON_AddItemToObject(out->result, "plan", cJSON_Duplicate(prep.plan, 1));
        rc = run_prepared(x, &prep, out);
    }
    proc_prep_free(&prep);
    return rc;
}
