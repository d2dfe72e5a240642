/* procedures: prepare (prechecks and the plan) of every job type. See include/procedures.h.
 * Prepare reads: the inventory from the store, the live model from the runner, files and
 * the output of read-only commands from the nodes. It writes log lines only. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cluster.h"
#include "compose.h"
#include "gate.h"
#include "procedures_internal.h"
#include "store.h"
#include "util.h"

/* ---------------------------------------------------------------- plan helpers */

struct pstep *
plan_add(struct proc_plan *p, enum pstep_kind kind, const struct store_node *n,
         const char *title_fmt, ...)
{
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 16;
        p->v = xrealloc(p->v, p->cap * sizeof(*p->v));
    }
    struct pstep *s = &p->v[p->n++];
    memset(s, 0, sizeof(*s));
    s->kind = kind;
    s->node = n;
    va_list ap;
    va_start(ap, title_fmt);
    char title[512];
    vsnprintf(title, sizeof(title), title_fmt, ap);
    va_end(ap);
    s->title = xstrdup(title);
    sh_cmd_init(&s->cmd);
    return s;
}

static void
strv_free(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++) {
        free(v[i]);
    }
    free(v);
}

void
plan_free(struct proc_plan *p)
{
    if (!p) {
        return;
    }
    for (size_t i = 0; i < p->n; i++) {
        struct pstep *s = &p->v[i];
        free(s->title);
        sh_cmd_free(&s->cmd);
        free(s->path);
        free(s->path2);
        free(s->data);
        free(s->orig);
        strv_free(s->gate_addrs, s->gate_n);
        strv_free(s->gate_names, s->gate_n);
        free(s->raft_addr);
        free(s->path3);
        if (s->capture) {
            buf_free(s->capture);
            free(s->capture);
        }
    }
    free(p->v);
    for (size_t i = 0; i < p->n_inv; i++) {
        store_node_clear(&p->inv[i]);
    }
    free(p->inv);
    strv_free(p->involved, p->n_involved);
    free(p->running);
    memset(p, 0, sizeof(*p));
}

/* A remote step's command text for the plan, or NULL for SFTP writes, the gate and waits. */
static const char *
step_command(const struct pstep *s)
{
    return s->has_cmd ? sh_cmd_text(&s->cmd) : NULL;
}

cJSON *
plan_steps_json(const struct proc_plan *p)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < p->n; i++) {
        const struct pstep *s = &p->v[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "node", s->node ? s->node->name : "");
        cJSON_AddStringToObject(o, "title", s->title);
        const char *c = step_command(s);
        if (c) {
            cJSON_AddStringToObject(o, "command", c);
        } else {
            cJSON_AddNullToObject(o, "command");
        }
        cJSON_AddItemToArray(a, o);
    }
    return a;
}

const struct store_node *
plan_node(const struct proc_plan *p, const char *name)
{
    for (size_t i = 0; name && i < p->n_inv; i++) {
        if (strcmp(p->inv[i].name, name) == 0) {
            return &p->inv[i];
        }
    }
    return NULL;
}

/* The inventory node whose address is the host of addr ("IP:port" or a host). */
static const struct store_node *
plan_node_at(const struct proc_plan *p, const char *addr)
{
    for (size_t i = 0; addr && i < p->n_inv; i++) {
        if (cluster_host_equal(addr, p->inv[i].address)) {
            return &p->inv[i];
        }
    }
    return NULL;
}

char *
proc_compose_path(const struct store_node *n)
{
    return xasprintf("%s/%s", n->compose_dir, PROC_COMPOSE_FILE);
}

char *
proc_backup_path(const char *path, int64_t job, const char *what)
{
    return xasprintf("%s.%s-%lld", path, what, (long long)job);
}

/* n is involved in the plan; running: whether Consul runs on it as the prechecks saw it (1,
 * 0, or -1 when they did not look). */
static void
involve_seen(struct proc_plan *p, const struct store_node *n, int running)
{
    for (size_t i = 0; i < p->n_involved; i++) {
        if (strcmp(p->involved[i], n->name) == 0) {
            if (running >= 0) {
                p->running[i] = running;
            }
            return;
        }
    }
    p->involved = xrealloc(p->involved, (p->n_involved + 1) * sizeof(char *));
    p->running = xrealloc(p->running, (p->n_involved + 1) * sizeof(int));
    p->running[p->n_involved] = running;
    p->involved[p->n_involved++] = xstrdup(n->name);
}

static void
involve(struct proc_plan *p, const struct store_node *n)
{
    involve_seen(p, n, -1);
}

static int
inv_cb(const struct store_node *n, void *ctx)
{
    struct proc_plan *p = ctx;
    p->inv = xrealloc(p->inv, (p->n_inv + 1) * sizeof(*p->inv));
    store_node_copy(&p->inv[p->n_inv++], n);
    return 0;
}

/* ---------------------------------------------------------------- prepare state */

struct prep {
    struct proc_ctx *x;
    const struct proc_request *req;
    struct proc_prep *out;
    struct proc_plan *p;
    const struct cluster_model *m;
    void *mref;
    int64_t answered;
    cJSON *warnings;
    cJSON *diffs;
    char *summary;
    int in_chain; /* on a chain's thread: results are logged by run_chains, in order */
};

/* The log line of a precheck result (an item of prechecks). */
static void
pc_log(struct proc_ctx *x, const cJSON *o)
{
    int ok = json_get_bool(o, "ok", 0), blocking = json_get_bool(o, "blocking", 0);
    const cJSON *node = cJSON_GetObjectItemCaseSensitive(o, "node");
    proc_log(x, cJSON_IsString(node) ? node->valuestring : NULL, ok ? "info" : "error",
             "precheck %s: %s: %s", json_get_str(o, "name", ""),
             ok ? "ok" : (blocking ? "FAILED" : "warning"), json_get_str(o, "message", ""));
}

static void pc_add(struct prep *st, const char *name, const char *node, int ok, int blocking,
                   const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* Records one precheck result (and logs it); a blocking failure fails the job. */
static void
pc_add(struct prep *st, const char *name, const char *node, int ok, int blocking, const char *fmt,
       ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", name);
    if (node) {
        cJSON_AddStringToObject(o, "node", node);
    } else {
        cJSON_AddNullToObject(o, "node");
    }
    cJSON_AddBoolToObject(o, "ok", ok);
    cJSON_AddBoolToObject(o, "blocking", blocking);
    cJSON_AddStringToObject(o, "message", msg);
    cJSON_AddItemToArray(st->out->prechecks, o);
    if (!st->in_chain) {
        pc_log(st->x, o);
    }
    if (!ok && blocking) {
        if (!st->out->failed) {
            st->out->error = xstrdup(msg);
        }
        st->out->failed = 1;
    }
}

static void warn(struct prep *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
warn(struct prep *st, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cJSON_AddItemToArray(st->warnings, cJSON_CreateString(msg));
}

/* ---------------------------------------------------------------- facts about nodes */

/* What prepare learned about one node. */
struct facts {
    const struct store_node *n;
    int ssh_ok;
    int running; /* Consul's container is up */
    int ps_ok;   /* docker ps answered */
    char *compose_path;
    char *compose; /* the file as read, NULL when absent */
    size_t compose_len;
    int compose_ok; /* parsed, and usable (after the trap fix when asked) */
    char *fixed;    /* compose with the trap fixed (or a copy of compose) */
    size_t fixed_len;
    int trap;                    /* the file has the backslash trap */
    struct compose_command *cmd; /* of fixed */
    char *hostname;              /* what hostname printed in the ssh precheck (NULL: nothing) */
};

static void
facts_free(struct facts *f)
{
    free(f->compose_path);
    free(f->compose);
    free(f->fixed);
    free(f->hostname);
    compose_command_free(f->cmd);
    memset(f, 0, sizeof(*f));
}

/* Runs cmd on n for prepare, capturing stdout (not logging each line). Returns the ssh rc;
 * *exit_status, out as proc_exec. */
static int
run_quiet(struct prep *st, const struct store_node *n, const struct sh_cmd *cmd, struct buf *out,
          int *exit_status, struct ssh_error *err)
{
    return proc_exec(st->x, n, cmd, 0, 0, out, exit_status, err);
}

/* Trims trailing white space of b in place and returns its text. */
static const char *
trimmed(struct buf *b)
{
    while (b->len && (b->data[b->len - 1] == '\n' || b->data[b->len - 1] == '\r' ||
                      b->data[b->len - 1] == ' ' || b->data[b->len - 1] == '\t')) {
        b->data[--b->len] = '\0';
    }
    return b->data ? b->data : "";
}

/* The SSH precheck: the host key is pinned and the node answers with it. */
static int
check_ssh(struct prep *st, struct facts *f, int expect_dead)
{
    const struct store_node *n = f->n;
    const struct proc_runner *run = st->x->run;
    struct ssh_error err;
    memset(&err, 0, sizeof(err));
    if (!n->host_key_fingerprint) {
        struct ssh_host_key k;
        int rc = run->host_key(run->ctx, n, &k, &err);
        if (expect_dead && rc != SSH_OK) {
            pc_add(st, "ssh", n->name, 1, 0, "%s (%s port %d) does not answer: %s", n->name,
                   n->address, n->ssh_port, err.message);
            return 0;
        }
        pc_add(st, "ssh", n->name, 0, !expect_dead,
               rc == SSH_OK ? "the host key of %s is not pinned (it presents %s %s); check it and "
                              "trust it on the Nodes page"
                            : "the host key of %s is not pinned%s%s",
               n->name, rc == SSH_OK ? k.fingerprint : "", rc == SSH_OK ? k.type : "");
        return 0;
    }
    struct sh_cmd cmd;
    cmd_hostname(&cmd);
    struct buf out;
    buf_init(&out, 4096);
    int status = -1;
    int rc = run_quiet(st, n, &cmd, &out, &status, &err);
    sh_cmd_free(&cmd);
    if (rc == SSH_OK && status == 0 && trimmed(&out)[0]) {
        free(f->hostname);
        f->hostname = xstrdup(trimmed(&out));
    }
    buf_free(&out);
    if (rc == SSH_ERR_HOST_KEY_CHANGED) {
        pc_add(st, "ssh", n->name, 0, 1,
               "host key changed: %s (%s port %d) presents %s (%s), but %s (%s) is pinned; "
               "nothing was run on it",
               n->name, n->address, n->ssh_port, err.presented.fingerprint, err.presented.type,
               err.expected.fingerprint, err.expected.type);
        return 0;
    }
    if (rc != SSH_OK) {
        if (expect_dead) {
            pc_add(st, "ssh", n->name, 1, 0, "%s (%s port %d) does not answer: %s", n->name,
                   n->address, n->ssh_port, err.message);
        } else {
            pc_add(st, "ssh", n->name, 0, 1, "cannot run commands on %s (%s port %d): %s", n->name,
                   n->address, n->ssh_port, err.message);
        }
        return 0;
    }
    f->ssh_ok = 1;
    pc_add(st, "ssh", n->name, 1, 1, "%s answers over SSH with its pinned host key %s", n->name,
           n->host_key_fingerprint);
    return 1;
}

/* docker ps: is Consul's container running? Records nothing; returns -1 when docker did not
 * answer (message in why). */
static int
probe_running(struct prep *st, struct facts *f, char *why, size_t whylen)
{
    struct sh_cmd cmd;
    cmd_docker_ps(&cmd);
    struct buf out;
    buf_init(&out, 64 * 1024);
    int status = -1;
    struct ssh_error err;
    int rc = run_quiet(st, f->n, &cmd, &out, &status, &err);
    sh_cmd_free(&cmd);
    int result = -1;
    if (rc != SSH_OK) {
        snprintf(why, whylen, "%s", err.message);
    } else if (status != 0) {
        snprintf(why, whylen, "docker ps exited with status %d", status);
    } else {
        f->ps_ok = 1;
        f->running = proc_ps_running(out.data);
        result = f->running;
    }
    buf_free(&out);
    return result;
}

/* Reads and checks the node's compose file (the compose_file precheck when required). */
static void
check_compose(struct prep *st, struct facts *f, int required)
{
    const struct proc_runner *run = st->x->run;
    struct ssh_error err;
    f->compose_path = proc_compose_path(f->n);
    int rc = run->read_file(run->ctx, f->n, f->compose_path, &f->compose, &f->compose_len, &err);
    if (rc == SSH_ERR_NOT_FOUND) {
        f->compose = NULL;
        if (required) {
            pc_add(st, "compose_file", f->n->name, 0, 1, "%s has no %s", f->n->name,
                   f->compose_path);
        }
        return;
    }
    if (rc != SSH_OK) {
        f->compose = NULL;
        pc_add(st, "compose_file", f->n->name, 0, 1, "cannot read %s on %s: %s", f->compose_path,
               f->n->name, err.message);
        return;
    }
    if (!required) {
        return;
    }
    struct compose_error ce;
    struct compose_command *c = NULL;
    rc = compose_read(f->compose, f->compose_len, &c, &ce);
    if (rc != COMPOSE_OK) {
        pc_add(st, "compose_file", f->n->name, 0, 1, "%s on %s cannot be used (%s, line %d): %s",
               f->compose_path, f->n->name, compose_rc_name(rc), ce.line, ce.message);
        return;
    }
    for (size_t i = 0; i < c->n_diags; i++) {
        f->trap |= c->diags[i].kind == COMPOSE_DIAG_TRAP_BACKSLASH;
    }
    if (f->trap && st->req->fix_trap) {
        compose_command_free(c);
        c = NULL;
        rc = compose_fix_trap(f->compose, f->compose_len, &f->fixed, &f->fixed_len, &ce);
        if (rc != COMPOSE_OK && rc != COMPOSE_UNCHANGED) {
            pc_add(st, "compose_file", f->n->name, 0, 1,
                   "%s on %s has the backslash trap and cannot be fixed automatically (%s): %s",
                   f->compose_path, f->n->name, compose_rc_name(rc), ce.message);
            return;
        }
        rc = compose_read(f->fixed, f->fixed_len, &c, &ce);
        if (rc != COMPOSE_OK) {
            pc_add(st, "compose_file", f->n->name, 0, 1, "the fixed %s on %s does not read: %s",
                   f->compose_path, f->n->name, ce.message);
            return;
        }
    } else {
        f->fixed = xstrndup(f->compose, f->compose_len);
        f->fixed_len = f->compose_len;
    }
    f->cmd = c;
    if (c->blocking) {
        const char *what = "";
        int line = 0;
        for (size_t i = 0; i < c->n_diags; i++) {
            if (c->diags[i].blocking) {
                what = c->diags[i].message;
                line = c->diags[i].line;
                break;
            }
        }
        if (f->trap && !st->req->fix_trap) {
            pc_add(st, "compose_file", f->n->name, 0, 1,
                   "%s on %s falls into the backslash trap (line %d): %s. A change is refused "
                   "until it is fixed: diagnose shows the fix; request the change with "
                   "options.fix_trap to make the fix part of it",
                   f->compose_path, f->n->name, line, what);
        } else {
            pc_add(st, "compose_file", f->n->name, 0, 1,
                   "the agent does not read %s on %s as written (line %d): %s", f->compose_path,
                   f->n->name, line, what);
        }
        return;
    }
    for (size_t i = 0; i < c->n_diags; i++) {
        if (c->diags[i].kind != COMPOSE_DIAG_TRAP_BACKSLASH) {
            warn(st, "%s, %s line %d: %s", f->n->name, f->compose_path, c->diags[i].line,
                 c->diags[i].message);
        }
    }
    f->compose_ok = 1;
    if (f->trap) {
        pc_add(st, "compose_file", f->n->name, 1, 1,
               "%s on %s falls into the backslash trap; the change fixes it (see its diff)",
               f->compose_path, f->n->name);
    } else {
        pc_add(st, "compose_file", f->n->name, 1, 1, "%s on %s is valid (%zu retry-join)",
               f->compose_path, f->n->name, c->n_retry_join);
    }
}

/* ---------------------------------------------------------------- chains side by side */

/* The prechecks of several nodes run side by side: one chain of remote commands per node, each
 * on a thread of its own (ssh_fan_out), so they take as long as the slowest node's, not the
 * sum. A chain records into a prep of its own (prechecks, warnings; nothing logged), and
 * run_chains then records and logs those in the order of the chains: the prechecks, the log
 * and the first error read as if the chains had run one after another. A chain reads the shared model,
 * request and inventory, and never the database. */
typedef void (*chain_fn)(struct prep *st, size_t i, void *arg);

struct chains {
    struct prep *sub;
    chain_fn fn;
    void *arg;
};

static void
chain_main(void *arg, size_t i)
{
    struct chains *cs = arg;
    cs->fn(&cs->sub[i], i, cs->arg);
}

/* Moves every item of from to the end of to; with x, logs each precheck it moves. */
static void
move_items(cJSON *to, cJSON *from, struct proc_ctx *x)
{
    while (cJSON_GetArraySize(from) > 0) {
        cJSON *o = cJSON_DetachItemFromArray(from, 0);
        if (x) {
            pc_log(x, o);
        }
        cJSON_AddItemToArray(to, o);
    }
}

static void
run_chains(struct prep *st, size_t n, chain_fn fn, void *arg)
{
    if (n == 0) {
        return;
    }
    struct chains cs = {xcalloc(n, sizeof(struct prep)), fn, arg};
    struct proc_prep *out = xcalloc(n, sizeof(*out));
    for (size_t i = 0; i < n; i++) {
        cs.sub[i] = *st;
        out[i].prechecks = cJSON_CreateArray();
        cs.sub[i].out = &out[i];
        cs.sub[i].warnings = cJSON_CreateArray();
        cs.sub[i].diffs = NULL;
        cs.sub[i].summary = NULL;
        cs.sub[i].in_chain = 1;
    }
    ssh_fan_out(n, n, chain_main, &cs);
    for (size_t i = 0; i < n; i++) {
        move_items(st->out->prechecks, out[i].prechecks, st->x);
        move_items(st->warnings, cs.sub[i].warnings, NULL);
        if (out[i].failed && !st->out->failed) {
            st->out->error = out[i].error;
            out[i].error = NULL;
        }
        st->out->failed |= out[i].failed;
        free(out[i].error);
        cJSON_Delete(out[i].prechecks);
        cJSON_Delete(cs.sub[i].warnings);
    }
    free(out);
    free(cs.sub);
}

/* ---------------------------------------------------------------- the cluster */

/* The raft servers of the model as inventory nodes (borrowed from p), in the model's order
 * (by node name). Raft servers without an inventory node are listed in missing. */
static size_t
raft_servers(struct prep *st, const struct store_node **out, size_t max, struct buf *missing)
{
    size_t n = 0;
    for (size_t i = 0; st->m && i < st->m->n_servers; i++) {
        const struct cluster_server *s = &st->m->servers[i];
        if (!s->in_raft) {
            continue;
        }
        const struct store_node *node = plan_node_at(st->p, s->address);
        if (!node) {
            buf_printf(missing, "%s%s (%s)", missing->len ? ", " : "", s->node, s->address);
        } else if (n < max) {
            out[n++] = node;
        }
    }
    return n;
}

static const struct cluster_server *
model_server(const struct cluster_model *m, const char *address)
{
    for (size_t i = 0; m && i < m->n_servers; i++) {
        if (cluster_host_equal(m->servers[i].address, address)) {
            return &m->servers[i];
        }
    }
    return NULL;
}

/* The model is usable, and the cluster healthy now (the gate's conditions over the servers
 * raft lists). */
static int
check_cluster(struct prep *st, int need_healthy)
{
    const struct cluster_model *m = st->m;
    if (!m || !m->reachable || !m->raft_known) {
        pc_add(st, "cluster", NULL, 0, 1,
               "the live cluster model has no raft configuration (%s); nothing can be planned",
               !m              ? "the watchers are not running"
               : !m->reachable ? "Consul is unreachable"
                               : "no leader");
        return 0;
    }
    if (!need_healthy) {
        return 1;
    }
    const char *addrs[64], *names[64];
    size_t n = 0;
    for (size_t i = 0; i < m->n_servers && n < 64; i++) {
        if (m->servers[i].in_raft) {
            addrs[n] = m->servers[i].address;
            names[n++] = m->servers[i].node;
        }
    }
    struct gate_expect e = {addrs, names, n, NULL};
    char why[512];
    if (!gate_check_model(m, &e, why, sizeof(why))) {
        pc_add(st, "cluster_healthy", NULL, 0, 1, "the cluster must be healthy before a change: %s",
               why);
        return 0;
    }
    pc_add(st, "cluster_healthy", NULL, 1, 1, "%zu voters, leader %s%s", n,
           m->leader_index >= 0 ? m->servers[m->leader_index].node : "?",
           m->autopilot_known ? ", autopilot healthy" : "");
    return 1;
}

static void
add_diff(struct prep *st, const struct store_node *n, const char *path, const char *old,
         size_t old_len, const char *new_text, size_t new_len, int existed)
{
    char *ro = proc_redact(old ? old : "", old ? old_len : 0);
    char *rn = proc_redact(new_text ? new_text : "", new_text ? new_len : 0);
    char *d = NULL;
    struct compose_error ce;
    if (compose_diff(ro, strlen(ro), rn, strlen(rn), existed ? path : "/dev/null",
                     new_text ? path : "/dev/null", &d, &ce) != COMPOSE_OK) {
        d = xasprintf("(no diff: %s)", ce.message);
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "node", n->name);
    cJSON_AddStringToObject(o, "path", path);
    /* the file as read: a change of any byte since the approval changes the plan */
    if (existed && old) {
        char sum[65];
        sha256_hex(old, old_len, sum);
        cJSON_AddStringToObject(o, "sha256_before", sum);
    } else {
        cJSON_AddNullToObject(o, "sha256_before");
    }
    cJSON_AddStringToObject(o, "diff", d);
    cJSON_AddItemToArray(st->diffs, o);
    free(d);
    free(ro);
    free(rn);
}

static void
gate_step(struct proc_plan *p, const struct store_node *const *nodes, size_t n,
          const struct store_node *peer, const char *why)
{
    struct pstep *s = plan_add(p, PS_GATE, NULL,
                               "Gate: %zu servers in raft, all voters, one "
                               "leader, autopilot healthy, list-peers agrees (%s)",
                               n, why);
    s->gate_addrs = xcalloc(n ? n : 1, sizeof(char *));
    s->gate_names = xcalloc(n ? n : 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        s->gate_addrs[i] = xstrdup(nodes[i]->address);
        s->gate_names[i] = xstrdup(nodes[i]->name);
    }
    s->gate_n = n;
    s->gate_peer = peer;
}

static struct pstep *
cmd_step(struct proc_plan *p, const struct store_node *n, int group, struct sh_cmd *cmd,
         const char *title)
{
    struct pstep *s = plan_add(p, PS_CMD, n, "%s", title);
    s->group = group;
    s->cmd = *cmd;
    s->has_cmd = 1;
    sh_cmd_init(cmd);
    return s;
}

static void
backup_step(struct proc_plan *p, struct facts *f, int64_t job, int group)
{
    struct pstep *s = plan_add(p, PS_BACKUP, f->n, "Back up %s", f->compose_path);
    s->group = group;
    s->path = xstrdup(f->compose_path);
    s->path2 = proc_backup_path(f->compose_path, job, "bak");
    cmd_cp(&s->cmd, s->path, s->path2);
    s->has_cmd = 1;
}

static void
write_step(struct proc_plan *p, struct facts *f, char *text, size_t len, int group,
           const char *what)
{
    struct pstep *s = plan_add(p, PS_WRITE, f->n, "Write %s (%s)", f->compose_path, what);
    s->group = group;
    s->path = xstrdup(f->compose_path);
    s->data = text;
    s->len = len;
    s->existed = f->compose != NULL;
    if (f->compose) {
        s->orig = xstrndup(f->compose, f->compose_len);
        s->orig_len = f->compose_len;
    }
}

static void
compose_cmd_step(struct proc_plan *p, const struct store_node *n, int group, int up,
                 int starts_outage)
{
    char *path = proc_compose_path(n);
    struct sh_cmd cmd;
    if (up) {
        cmd_compose_up(&cmd, path);
    } else {
        cmd_compose_down(&cmd, path);
    }
    struct pstep *s =
        cmd_step(p, n, group, &cmd,
                 up ? "Start Consul (docker-compose up -d)" : "Stop Consul (docker-compose down)");
    s->starts_outage = starts_outage;
    free(path);
}

/* 1 when t (tlen bytes) is the original text: the edit changed nothing. */
static int
same_text(const char *t, size_t tlen, const char *orig, size_t olen)
{
    return t && orig && tlen == olen && memcmp(t, orig, olen) == 0;
}

/* The writes of the edited server files (n of them, new_text owned by the steps), side by side
 * when group > 0 (a write restarts nothing); a file the edit left as it was gets no step. */
static void
edit_steps(struct proc_plan *p, struct facts *sf, char **new_text, const size_t *new_len, size_t n,
           int group, const char *what)
{
    for (size_t i = 0; i < n; i++) {
        if (same_text(new_text[i], new_len[i], sf[i].compose, sf[i].compose_len)) {
            free(new_text[i]);
            continue;
        }
        write_step(p, &sf[i], new_text[i], new_len[i], group, what);
    }
}

/* ---------------------------------------------------------------- node-add */

static int
version_check(struct prep *st, struct facts *f, int docker)
{
    struct sh_cmd cmd;
    if (docker) {
        cmd_docker_version(&cmd);
    } else {
        cmd_compose_version(&cmd);
    }
    struct buf out;
    buf_init(&out, 4096);
    int status = -1;
    struct ssh_error err;
    int rc = run_quiet(st, f->n, &cmd, &out, &status, &err);
    sh_cmd_free(&cmd);
    const char *name = docker ? "docker_version" : "compose_version";
    const char *tool = docker ? "docker" : "docker-compose";
    const char *min = docker ? PROC_DOCKER_MIN : PROC_COMPOSE_MIN;
    const char *v = trimmed(&out);
    int ok = 0;
    if (rc != SSH_OK) {
        pc_add(st, name, f->n->name, 0, 1, "cannot ask %s its version: %s", tool, err.message);
    } else if (status != 0) {
        pc_add(st, name, f->n->name, 0, 1, "%s on %s does not answer (exit status %d)", tool,
               f->n->name, status);
    } else if (proc_version_cmp(v, min) < 0) {
        pc_add(st, name, f->n->name, 0, 1, "%s on %s is version '%.40s'; %s or newer is needed",
               tool, f->n->name, v, min);
    } else {
        pc_add(st, name, f->n->name, 1, 1, "%s %s (%s or newer needed)", tool, v, min);
        ok = 1;
    }
    buf_free(&out);
    return ok;
}

/* The hostname n prints (newly allocated), or NULL when it cannot be read. */
static char *
read_hostname(struct prep *st, const struct store_node *n)
{
    struct sh_cmd cmd;
    cmd_hostname(&cmd);
    struct buf out;
    buf_init(&out, 4096);
    int status = -1;
    struct ssh_error err;
    int rc = run_quiet(st, n, &cmd, &out, &status, &err);
    sh_cmd_free(&cmd);
    const char *h = trimmed(&out);
    char *name = rc == SSH_OK && status == 0 && h[0] ? xstrdup(h) : NULL;
    buf_free(&out);
    return name;
}

/* The new node's hostname must not already be a Consul node name (the seed's "Node name
 * conflicts"). *hostname gets it (newly allocated) when read. */
static void
check_hostname(struct prep *st, struct facts *f, char **hostname)
{
    /* the ssh precheck ran hostname already */
    char *h = f->hostname ? xstrdup(f->hostname) : read_hostname(st, f->n);
    if (!h) {
        pc_add(st, "hostname", f->n->name, 0, 1, "cannot read the hostname of %s", f->n->name);
    } else {
        const char *clash = NULL, *clash_addr = NULL;
        for (size_t i = 0; st->m && i < st->m->n_servers && !clash; i++) {
            if (strcmp(st->m->servers[i].node, h) == 0) {
                clash = st->m->servers[i].node;
                clash_addr = st->m->servers[i].address;
            }
        }
        for (size_t i = 0; st->m && i < st->m->n_clients && !clash; i++) {
            if (strcmp(st->m->clients[i].node, h) == 0) {
                clash = st->m->clients[i].node;
                clash_addr = st->m->clients[i].address;
            }
        }
        if (clash) {
            pc_add(st, "hostname", f->n->name, 0, 1,
                   "the hostname of %s is '%s', already the Consul node name of the member at "
                   "%s: Consul would refuse it (\"Node name conflicts … Names must be "
                   "unique!\"); give %s another hostname first",
                   f->n->name, h, clash_addr, f->n->name);
        } else {
            pc_add(st, "hostname", f->n->name, 1, 1, "hostname '%s' is not a Consul member name",
                   h);
            *hostname = h;
            h = NULL;
        }
    }
    free(h);
}

/* The data dir: absent or empty is fine; otherwise it is moved aside by a step. Returns 1
 * when it must be moved, 0 when not, -1 when it cannot be read. */
static int
check_data_dir(struct prep *st, struct facts *f)
{
    struct sh_cmd cmd;
    int status = -1, rc;
    struct ssh_error err;
    cmd_test(&cmd, "-d", f->n->data_dir);
    rc = run_quiet(st, f->n, &cmd, NULL, &status, &err);
    sh_cmd_free(&cmd);
    if (rc != SSH_OK) {
        pc_add(st, "data_dir", f->n->name, 0, 1, "cannot look at %s: %s", f->n->data_dir,
               err.message);
        return -1;
    }
    if (status != 0) {
        pc_add(st, "data_dir", f->n->name, 1, 1, "%s does not exist yet (it will be created)",
               f->n->data_dir);
        return 0;
    }
    struct buf out;
    buf_init(&out, 64 * 1024);
    cmd_ls(&cmd, f->n->data_dir);
    rc = run_quiet(st, f->n, &cmd, &out, &status, &err);
    sh_cmd_free(&cmd);
    int result;
    if (rc != SSH_OK || status != 0) {
        pc_add(st, "data_dir", f->n->name, 0, 1, "cannot list %s on %s", f->n->data_dir,
               f->n->name);
        result = -1;
    } else if (trimmed(&out)[0]) {
        pc_add(st, "data_dir", f->n->name, 1, 0,
               "%s is not empty (raft state of an earlier membership would make the server "
               "chase old peers): the plan moves it aside",
               f->n->data_dir);
        result = 1;
    } else {
        pc_add(st, "data_dir", f->n->name, 1, 1, "%s is empty", f->n->data_dir);
        result = 0;
    }
    buf_free(&out);
    return result;
}

#define MAX_SERVERS 64

/* 1 when every port of every host answers from n (one remote command), 0 when one does not,
 * -1 when that cannot be asked. */
static int
ports_answer(struct prep *st, const struct store_node *n, const char *const *hosts, size_t nh,
             const int *ports, size_t np)
{
    struct sh_cmd cmd;
    if (cmd_ports_of(&cmd, hosts, nh, ports, np) != 0) {
        return -1;
    }
    int status = -1;
    struct ssh_error err;
    int rc = run_quiet(st, n, &cmd, NULL, &status, &err);
    sh_cmd_free(&cmd);
    return rc != SSH_OK ? -1 : status == 0;
}

/* Ports 8500, 9107, 8300, 8301 of every server, tested from the new node: all of them in one
 * command; only when that fails, each server's in one, and each port of a server whose
 * command failed on its own, to name the ports that do not answer. */
static void
check_ports(struct prep *st, struct facts *nf, const struct store_node *const *servers, size_t n)
{
    static const int ports[] = PROC_PORTS;
    const char *hosts[MAX_SERVERS];
    size_t nh = 0;
    for (size_t i = 0; i < n && nh < MAX_SERVERS; i++) {
        hosts[nh++] = servers[i]->address;
    }
    int every = nh == n ? ports_answer(st, nf->n, hosts, nh, ports, ARRAY_LEN(ports)) : 0;
    for (size_t i = 0; i < n; i++) {
        char bad[128] = "";
        size_t o = 0;
        int fail = 0;
        const char *h = servers[i]->address;
        int all_ok = every == 1 || ports_answer(st, nf->n, &h, 1, ports, ARRAY_LEN(ports)) == 1;
        for (size_t k = 0; !all_ok && k < ARRAY_LEN(ports); k++) {
            int r = ports_answer(st, nf->n, &h, 1, &ports[k], 1);
            if (r < 0) {
                fail = 1;
                break;
            }
            if (r == 0) {
                o += (size_t)snprintf(bad + o, sizeof(bad) - o, "%s%d", o ? ", " : "", ports[k]);
            }
        }
        if (fail) {
            pc_add(st, "ports", servers[i]->name, 0, 1, "cannot test the ports of %s from %s",
                   servers[i]->name, nf->n->name);
        } else if (bad[0]) {
            pc_add(st, "ports", servers[i]->name, 0, 1,
                   "%s cannot reach %s (%s) on port %s (8500, 9107, 8300 and 8301 must be open "
                   "between the new node and every server)",
                   nf->n->name, servers[i]->name, servers[i]->address, bad);
        } else {
            pc_add(st, "ports", servers[i]->name, 1, 1,
                   "%s reaches %s (%s) on 8500, 9107, 8300 and 8301", nf->n->name, servers[i]->name,
                   servers[i]->address);
        }
    }
}

/* A server's chain: it answers over SSH, and its compose file is valid; whether Consul's
 * container runs there is noted for the state record before the first change (not a
 * precheck: when docker does not answer here, the record asks again and fails the job then). */
static void
server_chain(struct prep *st, struct facts *f)
{
    if (check_ssh(st, f, 0)) {
        check_compose(st, f, 1);
        char why[512];
        probe_running(st, f, why, sizeof(why));
    }
}

/* node-add's prechecks: a chain per server (ssh, its compose file) and one for the new node. */
struct add_chains {
    struct facts *sf; /* the servers' */
    size_t k;
    struct facts *nf; /* the new node's */
    const struct store_node *const *servers;
    char *hostname; /* the new node's, when the hostname precheck passed */
    int move_data;  /* check_data_dir */
};

static void
add_chain(struct prep *st, size_t i, void *arg)
{
    struct add_chains *a = arg;
    if (i < a->k) {
        server_chain(st, &a->sf[i]);
        return;
    }
    struct facts *nf = a->nf;
    const struct store_node *nn = nf->n;
    if (!check_ssh(st, nf, 0)) {
        return;
    }
    version_check(st, nf, 1);
    version_check(st, nf, 0);
    check_hostname(st, nf, &a->hostname);
    char why[512];
    int running = probe_running(st, nf, why, sizeof(why));
    if (running < 0) {
        pc_add(st, "consul_stopped", nn->name, 0, 1, "cannot ask docker on %s: %s", nn->name, why);
    } else if (running) {
        pc_add(st, "consul_stopped", nn->name, 0, 1,
               "a consul container already runs on %s; stop it first (it may belong to "
               "another cluster)",
               nn->name);
    } else {
        pc_add(st, "consul_stopped", nn->name, 1, 1, "no consul container runs on %s", nn->name);
    }
    a->move_data = check_data_dir(st, nf);
    check_compose(st, nf, 0);
    check_ports(st, nf, a->servers, a->k);
}

static void
prep_add(struct prep *st, const struct store_node *nn)
{
    struct proc_plan *p = st->p;
    int64_t job = st->x->job_id;
    int full = st->req->strategy && strcmp(st->req->strategy, "full-restart") == 0;
    if (!check_cluster(st, 1)) {
        return;
    }
    const struct store_node *servers[MAX_SERVERS];
    struct buf missing;
    buf_init(&missing, 4096);
    size_t k = raft_servers(st, servers, MAX_SERVERS, &missing);
    if (missing.len) {
        pc_add(st, "inventory", NULL, 0, 1,
               "raft servers without an inventory node: %s (import them on the Nodes page)",
               missing.data);
    }
    buf_free(&missing);
    struct cluster_match mt;
    if (cluster_model_match(st->m, nn->address, &mt) && (mt.server || mt.in_raft)) {
        pc_add(st, "new_node", nn->name, 0, 1, "%s (%s) is already a Consul server (%s)", nn->name,
               nn->address, mt.node ? mt.node : "?");
    } else {
        pc_add(st, "new_node", nn->name, 1, 1, "%s (%s) is not a Consul server yet", nn->name,
               nn->address);
    }
    struct facts sf[MAX_SERVERS], nf;
    memset(sf, 0, sizeof(sf));
    memset(&nf, 0, sizeof(nf));
    for (size_t i = 0; i < k; i++) {
        sf[i].n = servers[i];
    }
    nf.n = nn;
    struct add_chains a = {sf, k, &nf, servers, NULL, 0};
    run_chains(st, k + 1, add_chain, &a);
    char *hostname = a.hostname;
    int move_data = a.move_data;
    if ((k + 1) % 2 == 0) {
        warn(st,
             "the cluster will have %zu servers: an even number tolerates no more failures "
             "than %zu",
             k + 1, k);
    }
    if (full) {
        warn(st, "full-restart stops every server at once: the cluster has no leader (no "
                 "service discovery, no KV) until they are all up again; the job measures the "
                 "leaderless seconds");
    }
    if (st->out->failed || k == 0) {
        if (k == 0 && !st->out->failed) {
            pc_add(st, "servers", NULL, 0, 1, "no server to copy the compose file from");
        }
        goto out;
    }
    /* the new contents */
    struct compose_error ce;
    char *new_text[MAX_SERVERS] = {0};
    size_t new_len[MAX_SERVERS] = {0};
    for (size_t i = 0; i < k; i++) {
        int rc =
            compose_add(sf[i].fixed, sf[i].fixed_len, nn->address, &new_text[i], &new_len[i], &ce);
        if (rc != COMPOSE_OK && rc != COMPOSE_UNCHANGED) {
            pc_add(st, "compose_edit", servers[i]->name, 0, 1, "cannot add %s to %s on %s (%s): %s",
                   nn->address, sf[i].compose_path, servers[i]->name, compose_rc_name(rc),
                   ce.message);
        }
    }
    const struct facts *src = &sf[0];
    const char **join = xcalloc(src->cmd->n_retry_join + 1, sizeof(char *));
    size_t nj = 0;
    for (size_t i = 0; i < src->cmd->n_retry_join; i++) {
        join[nj++] = src->cmd->retry_join[i];
    }
    join[nj++] = nn->address;
    struct compose_node cn = {.source_addr = src->n->address,
                              .new_addr = nn->address,
                              .node_name = hostname,
                              .join = join,
                              .n_join = nj};
    char *nn_text = NULL;
    size_t nn_len = 0;
    int rc = compose_new_node(src->fixed, src->fixed_len, &cn, &nn_text, &nn_len, &ce);
    free(join);
    if (rc != COMPOSE_OK && rc != COMPOSE_UNCHANGED) {
        pc_add(st, "compose_edit", nn->name, 0, 1,
               "cannot make the new server's file from %s's (%s): %s", src->n->name,
               compose_rc_name(rc), ce.message);
    }
    if (st->out->failed) {
        for (size_t i = 0; i < k; i++) {
            free(new_text[i]);
        }
        free(nn_text);
        goto out;
    }
    nf.compose_path = nf.compose_path ? nf.compose_path : proc_compose_path(nn);
    /* the steps */
    for (size_t i = 0; i < k; i++) {
        backup_step(p, &sf[i], job, 1);
    }
    if (nf.compose) {
        backup_step(p, &nf, job, 1);
    }
    if (move_data == 1) {
        struct pstep *s = plan_add(p, PS_MOVE, nn, "Move the old data dir %s aside", nn->data_dir);
        s->path = xstrdup(nn->data_dir);
        s->path2 = proc_backup_path(nn->data_dir, job, "bak");
        cmd_mv(&s->cmd, s->path, s->path2);
        s->has_cmd = 1;
        struct sh_cmd mk;
        cmd_mkdir(&mk, nn->data_dir);
        cmd_step(p, nn, 0, &mk, "Create an empty data dir");
    }
    struct sh_cmd mk;
    cmd_mkdir(&mk, nn->compose_dir);
    cmd_step(p, nn, 0, &mk, "Create the compose dir");
    const struct store_node *all[MAX_SERVERS + 1];
    for (size_t i = 0; i < k; i++) {
        all[i] = servers[i];
    }
    all[k] = nn;
    if (!full) {
        write_step(p, &nf, nn_text, nn_len, 0, "the new server's file, from the first server's");
        compose_cmd_step(p, nn, 0, 1, 0);
        gate_step(p, all, k + 1, nn, "the new server is a voter");
        edit_steps(p, sf, new_text, new_len, k, 3, "add the retry-join entry");
        gate_step(p, all, k + 1, nn, "after the edits");
    } else {
        for (size_t i = 0; i < k; i++) {
            compose_cmd_step(p, servers[i], 2, 0, i == 0);
        }
        edit_steps(p, sf, new_text, new_len, k, 3, "add the retry-join entry");
        write_step(p, &nf, nn_text, nn_len, 0, "the new server's file, from the first server's");
        for (size_t i = 0; i <= k; i++) {
            compose_cmd_step(p, all[i], 4, 1, 0);
        }
        gate_step(p, all, k + 1, nn, "the cluster formed again");
        p->leader_watch = 1;
    }
    for (size_t i = 0; i < p->n; i++) {
        if (p->v[i].kind == PS_WRITE) {
            add_diff(st, p->v[i].node, p->v[i].path, p->v[i].orig, p->v[i].orig_len, p->v[i].data,
                     p->v[i].len, p->v[i].existed);
        }
    }
    for (size_t i = 0; i < k; i++) {
        involve_seen(p, servers[i], sf[i].ps_ok ? sf[i].running : -1);
    }
    involve_seen(p, nn, nf.ps_ok ? nf.running : -1);
    st->summary =
        xasprintf("Add %s (%s) as a server to the cluster of %zu (%s)%s", nn->name, nn->address, k,
                  full ? "full restart: every server stops and starts again"
                       : "rolling: the servers keep running",
                  st->req->fix_trap ? "; the backslash trap is fixed too" : "");
out:
    free(hostname);
    for (size_t i = 0; i < k; i++) {
        facts_free(&sf[i]);
    }
    facts_free(&nf);
}

/* ---------------------------------------------------------------- node-remove */

/* The steps that get the server at raft_addr (Consul node name) out of raft, run on h: when
 * wait_first, a wait for it to leave by itself (up to leave_wait_ms); force-leave while it is
 * still in raft; another wait; remove-peer while it is still there; then a wait that must end
 * with it gone. Returns 0, or -1 after a failed precheck (a value that cannot be given). */
static int
out_of_raft_steps(struct prep *st, const struct store_node *h, const char *name,
                  const char *raft_addr, int wait_first)
{
    struct proc_plan *p = st->p;
    int wait_s = st->x->lim.leave_wait_ms / 1000;
    if (wait_first) {
        struct pstep *w = plan_add(p, PS_WAIT_GONE, NULL,
                                   "Wait until %s leaves raft (at most %d s)", raft_addr, wait_s);
        w->raft_addr = xstrdup(raft_addr);
        w->wait_ms = st->x->lim.leave_wait_ms;
        w->any_exit = 1; /* still there: force-leave */
        w->end_if_failed = 1;
    }
    struct pstep *fl = plan_add(p, PS_CMD_IF_IN_RAFT, h,
                                wait_first ? "Force %s out when it is still in raft (force-leave)"
                                           : "Force the dead server %s out (force-leave)",
                                raft_addr);
    fl->raft_addr = xstrdup(raft_addr);
    fl->has_cmd = 1;
    struct pstep *w = plan_add(p, PS_WAIT_GONE, NULL, "Wait until %s leaves raft (at most %d s)",
                               raft_addr, wait_s);
    w->raft_addr = xstrdup(raft_addr);
    w->wait_ms = st->x->lim.leave_wait_ms;
    w->any_exit = 1; /* still there: remove-peer (this wait lets the force-leave act: the
                        server is failed, so it does not end early for that) */
    struct pstep *rp =
        plan_add(p, PS_CMD_IF_IN_RAFT, h,
                 "Remove %s from raft when it is still there (remove-peer)", raft_addr);
    rp->raft_addr = xstrdup(raft_addr);
    rp->has_cmd = 1;
    w = plan_add(p, PS_WAIT_GONE, NULL, "Wait until %s is out of raft", raft_addr);
    w->raft_addr = xstrdup(raft_addr);
    if (cmd_force_leave(&fl->cmd, name) != 0 || cmd_remove_peer(&rp->cmd, raft_addr) != 0) {
        pc_add(st, "remove_peer", NULL, 0, 1,
               "the node name '%s' or the raft address %s cannot be given to force-leave or "
               "remove-peer",
               name, raft_addr);
        return -1;
    }
    return 0;
}

/* Quorum after removing one of the k servers: the alive voters among the others must be a
 * majority of k - 1, and one server must remain. */
static void
check_quorum(struct prep *st, const struct cluster_server *gone, size_t k)
{
    size_t alive = 0;
    for (size_t i = 0; i < st->m->n_servers; i++) {
        const struct cluster_server *s = &st->m->servers[i];
        if (s != gone && s->in_raft && s->voter && s->serf_status == CLUSTER_SERF_ALIVE) {
            alive++;
        }
    }
    size_t left = k - 1, quorum = left / 2 + 1;
    if (left == 0) {
        pc_add(st, "quorum", NULL, 0, 1, "%s is the last server: removing it leaves no cluster",
               gone->node);
    } else if (alive < quorum) {
        pc_add(st, "quorum", NULL, 0, 1,
               "after the removal %zu servers remain, of which %zu alive voters: %zu are needed "
               "for quorum",
               left, alive, quorum);
    } else {
        pc_add(st, "quorum", NULL, 1, 1,
               "after the removal %zu servers remain (%zu alive voters, quorum %zu, failure "
               "tolerance %zu)",
               left, alive, quorum, alive - quorum);
    }
    if (left > 0 && left % 2 == 0) {
        warn(st,
             "the cluster will have %zu servers: an even number tolerates no more failures "
             "than %zu",
             left, left - 1);
    }
}

/* node-remove's prechecks: a chain per remaining server (ssh, its compose file) and one for
 * the node that goes. */
struct remove_chains {
    struct facts *sf; /* the remaining servers' */
    size_t nr;
    struct facts *rf; /* the leaving node's */
    int gone;
    int read; /* the leaving node's compose file was looked for */
};

static void
remove_chain(struct prep *st, size_t i, void *arg)
{
    struct remove_chains *a = arg;
    if (i < a->nr) {
        server_chain(st, &a->sf[i]);
        return;
    }
    struct facts *rf = a->rf;
    const struct store_node *rn = rf->n;
    char why[512];
    if (a->gone) {
        if (check_ssh(st, rf, 1)) {
            int running = probe_running(st, rf, why, sizeof(why));
            if (running != 0) {
                pc_add(st, "node_gone", rn->name, 0, 1,
                       "%s answers over SSH and %s: remove it with a normal node-remove instead",
                       rn->name, running > 0 ? "Consul runs there" : "docker cannot be asked");
            } else {
                pc_add(st, "node_gone", rn->name, 1, 1,
                       "%s answers over SSH but Consul does not run there", rn->name);
            }
        }
    } else if (check_ssh(st, rf, 0)) {
        int running = probe_running(st, rf, why, sizeof(why));
        if (running < 0) {
            pc_add(st, "consul_running", rn->name, 0, 1, "cannot ask docker on %s: %s", rn->name,
                   why);
        }
        check_compose(st, rf, 0);
        a->read = 1;
    }
}

static void
prep_remove(struct prep *st, const struct store_node *rn)
{
    struct proc_plan *p = st->p;
    int64_t job = st->x->job_id;
    int gone = st->req->node_gone;
    int full = !gone && st->req->strategy && strcmp(st->req->strategy, "full-restart") == 0;
    if (!check_cluster(st, !gone)) {
        return;
    }
    const struct cluster_server *rs = model_server(st->m, rn->address);
    if (!rs || (!rs->in_raft && !gone)) {
        pc_add(st, "server", rn->name, 0, 1,
               "%s (%s) is not a server in the raft configuration; nothing to remove", rn->name,
               rn->address);
        return;
    }
    pc_add(st, "server", rn->name, 1, 1, "%s is the Consul server %s (%s%s)", rn->name, rs->node,
           rs->address, rs->in_raft ? "" : ", no longer in raft");
    if (gone) {
        if (st->m->leader_index < 0) {
            pc_add(st, "leader", NULL, 0, 1,
                   "the cluster has no leader: force-leave and remove-peer need one (restore "
                   "quorum first)");
        } else {
            pc_add(st, "leader", NULL, 1, 1, "leader %s", st->m->servers[st->m->leader_index].node);
        }
    }
    const struct store_node *all[MAX_SERVERS], *rest[MAX_SERVERS];
    struct buf missing;
    buf_init(&missing, 4096);
    size_t k = raft_servers(st, all, MAX_SERVERS, &missing), nr = 0;
    if (missing.len) {
        pc_add(st, "inventory", NULL, 0, 1,
               "raft servers without an inventory node: %s (import them on the Nodes page)",
               missing.data);
    }
    buf_free(&missing);
    for (size_t i = 0; i < k; i++) {
        if (all[i] != rn) {
            rest[nr++] = all[i];
        }
    }
    check_quorum(st, rs, rs->in_raft ? k : k + 1);
    struct facts sf[MAX_SERVERS], rf;
    memset(sf, 0, sizeof(sf));
    memset(&rf, 0, sizeof(rf));
    for (size_t i = 0; i < nr; i++) {
        sf[i].n = rest[i];
    }
    rf.n = rn;
    struct remove_chains a = {sf, nr, &rf, gone, 0};
    run_chains(st, nr + 1, remove_chain, &a);
    if (gone) {
        warn(st,
             "%s is treated as gone for good: consulate runs force-leave and, when it stays "
             "in raft, remove-peer; its own files are not touched. Confirm the host will not "
             "come back with its old data",
             rn->name);
    } else if (a.read && !rf.compose && !st->out->failed) {
        warn(st, "%s has no %s to move aside", rn->name, rf.compose_path);
    }
    if (full) {
        warn(st, "full-restart stops every server at once: the cluster has no leader (no "
                 "service discovery, no KV) until they are all up again; the job measures the "
                 "leaderless seconds");
    }
    if (st->out->failed || nr == 0) {
        goto out;
    }
    struct compose_error ce;
    char *new_text[MAX_SERVERS] = {0};
    size_t new_len[MAX_SERVERS] = {0};
    for (size_t i = 0; i < nr; i++) {
        int rc = compose_remove(sf[i].fixed, sf[i].fixed_len, rn->address, &new_text[i],
                                &new_len[i], &ce);
        if (rc == COMPOSE_UNCHANGED) {
            warn(st, "%s on %s has no -retry-join entry for %s", sf[i].compose_path, rest[i]->name,
                 rn->address);
        } else if (rc != COMPOSE_OK) {
            pc_add(st, "compose_edit", rest[i]->name, 0, 1,
                   "cannot remove %s from %s on %s (%s): %s", rn->address, sf[i].compose_path,
                   rest[i]->name, compose_rc_name(rc), ce.message);
        }
    }
    if (st->out->failed) {
        for (size_t i = 0; i < nr; i++) {
            free(new_text[i]);
        }
        goto out;
    }
    for (size_t i = 0; i < nr; i++) {
        backup_step(p, &sf[i], job, 1);
    }
    /* who runs force-leave / remove-peer: the first remaining server that is alive */
    const struct store_node *h = NULL;
    for (size_t i = 0; i < nr && !h; i++) {
        const struct cluster_server *s = model_server(st->m, rest[i]->address);
        h = s && s->serf_status == CLUSTER_SERF_ALIVE ? rest[i] : NULL;
    }
    h = h ? h : rest[0];
    if (gone) {
        if (out_of_raft_steps(st, h, rs->node, rs->address, 0) != 0) {
            goto out;
        }
        edit_steps(p, sf, new_text, new_len, nr, 3, "remove the retry-join entry");
        gate_step(p, rest, nr, rest[0], "without the dead server");
        p->gone = rn->name;
    } else {
        /* down right after the leave: Docker's restart policy would start the agent again and
         * it would retry-join; should it slip back into raft meanwhile, it is forced out */
        struct sh_cmd c;
        cmd_consul_leave(&c);
        /* best effort: an agent that cannot leave gracefully (it does not answer, no
         * leader) is stopped by the next step and forced out of raft by the ones after */
        cmd_step(p, rn, 0, &c, "Leave the cluster gracefully (consul leave)")->any_exit = 1;
        compose_cmd_step(p, rn, 0, 0, 0);
        if (out_of_raft_steps(st, h, rs->node, rs->address, 1) != 0) {
            goto out;
        }
        if (!full) {
            gate_step(p, rest, nr, rest[0], "the others without it");
        } else {
            for (size_t i = 0; i < nr; i++) {
                compose_cmd_step(p, rest[i], 2, 0, i == 0);
            }
        }
        if (rf.compose) {
            struct pstep *mv =
                plan_add(p, PS_MOVE, rn, "Move %s aside (kept as its backup)", rf.compose_path);
            mv->path = xstrdup(rf.compose_path);
            mv->path2 = proc_backup_path(rf.compose_path, job, "bak");
            cmd_mv(&mv->cmd, mv->path, mv->path2);
            mv->has_cmd = 1;
        }
        edit_steps(p, sf, new_text, new_len, nr, 3, "remove the retry-join entry");
        if (full) {
            for (size_t i = 0; i < nr; i++) {
                compose_cmd_step(p, rest[i], 4, 1, 0);
            }
            p->leader_watch = 1;
        }
        gate_step(p, rest, nr, rest[0], full ? "the cluster formed again" : "after the edits");
        involve_seen(p, rn, rf.ps_ok ? rf.running : -1);
    }
    for (size_t i = 0; i < p->n; i++) {
        if (p->v[i].kind == PS_WRITE) {
            add_diff(st, p->v[i].node, p->v[i].path, p->v[i].orig, p->v[i].orig_len, p->v[i].data,
                     p->v[i].len, p->v[i].existed);
        }
    }
    for (size_t i = 0; i < nr; i++) {
        involve_seen(p, rest[i], sf[i].ps_ok ? sf[i].running : -1);
    }
    st->summary = xasprintf("Remove %s (%s) from the cluster of %zu (%s)%s", rn->name, rn->address,
                            rs->in_raft ? k : k + 1,
                            gone   ? "the host is gone: force-leave, then remove-peer if needed"
                            : full ? "full restart: every server stops and starts again"
                                   : "rolling: it leaves, the others keep running",
                            st->req->fix_trap ? "; the backslash trap is fixed too" : "");
out:
    for (size_t i = 0; i < nr; i++) {
        facts_free(&sf[i]);
    }
    facts_free(&rf);
}

/* ---------------------------------------------------------------- rollback */

struct undo_list {
    struct store_undo *v;
    size_t n;
};

static int
undo_collect(const struct store_undo *u, void *ctx)
{
    struct undo_list *l = ctx;
    l->v = xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
    struct store_undo *c = &l->v[l->n++];
    *c = *u;
    c->kind = xstrdup(u->kind);
    c->node = xstrdup(u->node);
    c->path = xstrdup(u->path);
    c->path2 = xstrdup(u->path2);
    if (u->content) {
        char *d = xmalloc(u->content_len + 1);
        memcpy(d, u->content, u->content_len);
        d[u->content_len] = '\0';
        c->content = d;
    }
    return 0;
}

static void
undo_list_free(struct undo_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free((char *)l->v[i].kind);
        free((char *)l->v[i].node);
        free((char *)l->v[i].path);
        free((char *)l->v[i].path2);
        free((char *)l->v[i].content);
    }
    free(l->v);
}

/* The Consul node name of n when the model does not know it: its hostname (as the seed's
 * agents take it), else its inventory name. Newly allocated. */
static char *
node_hostname(struct prep *st, const struct store_node *n)
{
    char *h = read_hostname(st, n);
    return h ? h : xstrdup(n->name);
}

/* Builds the rollback of job target from its undo records into st->p (no prechecks beyond
 * the nodes answering). Also used by proc_rollback after a failure. */
static void
prep_undo(struct prep *st, int64_t target)
{
    struct proc_plan *p = st->p;
    int64_t job = st->x->job_id;
    struct undo_list ul = {NULL, 0};
    if (store_job_undo_each(st->x->db, target, undo_collect, &ul) != STORE_OK) {
        pc_add(st, "undo_records", NULL, 0, 1, "cannot read the undo records of job %lld",
               (long long)target);
        return;
    }
    size_t changes = 0;
    for (size_t i = 0; i < ul.n; i++) {
        changes += strcmp(ul.v[i].kind, "state") != 0;
    }
    if (ul.n == 0) {
        pc_add(st, "undo_records", NULL, 0, 1,
               "job %lld changed nothing: there is nothing to "
               "roll back",
               (long long)target);
        goto out;
    }
    pc_add(st, "undo_records", NULL, 1, 1,
           "job %lld made %zu change%s to files, and the nodes return to their running state of "
           "before it",
           (long long)target, changes, changes == 1 ? "" : "s");
    /* every node with a record must answer (the gone one excepted) */
    const struct store_node *checked[MAX_SERVERS];
    size_t nc = 0;
    for (size_t i = 0; i < ul.n; i++) {
        const struct store_undo *u = &ul.v[i];
        const struct store_node *n = plan_node(p, u->node);
        if (strcmp(u->kind, "state") == 0 && (u->flag & PROC_STATE_GONE)) {
            continue;
        }
        if (!n) {
            pc_add(st, "inventory", u->node, 0, 1, "node %s is no longer in the inventory",
                   u->node);
            continue;
        }
        size_t k;
        for (k = 0; k < nc && checked[k] != n; k++) {
        }
        if (k < nc || nc == MAX_SERVERS) {
            continue;
        }
        checked[nc++] = n;
        struct facts f = {.n = n};
        check_ssh(st, &f, 0);
        facts_free(&f);
    }
    if (st->out->failed) {
        goto out;
    }
    /* the servers of before: the gate's expectation, and where force-leave runs */
    const struct store_node *expect[MAX_SERVERS];
    size_t ne = 0;
    for (size_t i = 0; i < ul.n && ne < MAX_SERVERS; i++) {
        const struct store_undo *u = &ul.v[i];
        if (strcmp(u->kind, "state") == 0 && !(u->flag & PROC_STATE_GONE) &&
            (u->flag & PROC_STATE_RUNNING) && (u->flag & PROC_STATE_IN_RAFT)) {
            expect[ne++] = plan_node(p, u->node);
        }
    }
    /* 1. nodes that did not run Consul before: leave and down, and out of raft should they
     * have joined it */
    for (size_t i = 0; i < ul.n; i++) {
        const struct store_undo *u = &ul.v[i];
        if (strcmp(u->kind, "state") == 0 && !(u->flag & (PROC_STATE_RUNNING | PROC_STATE_GONE))) {
            const struct store_node *n = plan_node(p, u->node);
            struct pstep *s =
                plan_add(p, PS_ENSURE_STOPPED, n,
                         "Return %s to stopped (leave and down if Consul runs)", u->node);
            s->path = proc_compose_path(n);
            involve(p, n);
            /* out of raft should it be there when the steps run: the model of now may not
             * show it yet (its up -d just ran, and a failed job is rolled back at once); each
             * of these steps is skipped when it is not needed */
            const struct cluster_server *cs = model_server(st->m, n->address);
            if (!(u->flag & PROC_STATE_IN_RAFT) && ne > 0) {
                char *name = cs && cs->node[0] ? xstrdup(cs->node) : node_hostname(st, n);
                char *ra = cs && cs->in_raft
                               ? xstrdup(cs->address)
                               : xasprintf(strchr(n->address, ':') ? "[%s]:%d" : "%s:%d",
                                           n->address, PROC_RAFT_PORT);
                int rc = out_of_raft_steps(st, expect[0], name, ra, 1);
                free(ra);
                free(name);
                if (rc != 0) {
                    goto out;
                }
            }
        }
    }

    /* 2. files and moves, newest first */
    for (size_t i = ul.n; i-- > 0;) {
        const struct store_undo *u = &ul.v[i];
        const struct store_node *n = plan_node(p, u->node);
        if (strcmp(u->kind, "file") == 0) {
            struct pstep *s;
            if (u->flag) {
                s = plan_add(p, PS_RESTORE_FILE, n, "Restore %s byte for byte (%zu bytes)", u->path,
                             u->content_len);
                s->data = xmalloc(u->content_len + 1);
                memcpy(s->data, u->content ? u->content : "", u->content_len);
                s->data[u->content_len] = '\0';
                s->len = u->content_len;
                s->existed = 1;
            } else {
                s = plan_add(p, PS_RESTORE_FILE, n, "Move %s (written by job %lld) aside", u->path,
                             (long long)target);
                s->path2 = proc_backup_path(u->path, job, "rolled-back");
            }
            s->path = xstrdup(u->path);
            /* the diff from what is there now */
            char *now = NULL;
            size_t now_len = 0;
            struct ssh_error err;
            int rc = st->x->run->read_file(st->x->run->ctx, n, u->path, &now, &now_len, &err);
            add_diff(st, n, u->path, rc == SSH_OK ? now : NULL, now_len, u->flag ? s->data : NULL,
                     s->len, rc == SSH_OK);
            free(now);
        } else if (strcmp(u->kind, "move") == 0) {
            struct pstep *s = plan_add(p, PS_UNDO_MOVE, n, "Move %s back to %s", u->path2, u->path);
            s->path = xstrdup(u->path);
            s->path2 = xstrdup(u->path2);
            s->path3 = proc_backup_path(u->path, job, "rolled-back");
        }
        involve(p, n);
    }
    /* 3. nodes that ran Consul before: up */
    for (size_t i = 0; i < ul.n; i++) {
        const struct store_undo *u = &ul.v[i];
        if (strcmp(u->kind, "state") == 0 && !(u->flag & PROC_STATE_GONE) &&
            (u->flag & PROC_STATE_RUNNING)) {
            const struct store_node *n = plan_node(p, u->node);
            char *compose = proc_compose_path(n);
            int restored = 0;
            for (size_t k = 0; k < ul.n; k++) {
                restored |= strcmp(ul.v[k].kind, "file") == 0 && ul.v[k].flag &&
                            strcmp(ul.v[k].node, u->node) == 0 &&
                            strcmp(ul.v[k].path, compose) == 0;
            }
            /* a container started from the job's edit (full-restart) still runs it after
             * its file is restored: up -d recreates it from the file (up to date otherwise) */
            struct pstep *s =
                plan_add(p, PS_ENSURE_RUNNING, n,
                         restored ? "Return %s to running from its restored file (up -d)"
                                  : "Return %s to running (up -d if Consul is stopped)",
                         u->node);
            s->path = compose;
            s->existed = restored;
            involve(p, n);
        }
    }
    if (ne) {
        gate_step(p, expect, ne, expect[0], "the servers of before");
    }
    st->summary =
        xasprintf("Roll back job %lld: %zu change%s undone, %zu server%s expected in "
                  "raft afterwards",
                  (long long)target, changes, changes == 1 ? "" : "s", ne, ne == 1 ? "" : "s");
out:
    undo_list_free(&ul);
}

/* ---------------------------------------------------------------- prepare */

static void prep_finish(struct prep *st);

static void
prep_rollback(struct prep *st)
{
    struct store_job t;
    int rc = store_job_get(st->x->db, st->req->target, &t);
    if (rc != STORE_OK) {
        pc_add(st, "target", NULL, 0, 1, "there is no job %lld", (long long)st->req->target);
        return;
    }
    if (strcmp(t.state, "failed") != 0 && strcmp(t.state, "interrupted") != 0) {
        pc_add(st, "target", NULL, 0, 1,
               "job %lld is %s: only a failed or interrupted job is rolled back", (long long)t.id,
               t.state);
    } else if (strcmp(t.type, "diagnose") == 0 || strcmp(t.type, "rollback") == 0) {
        pc_add(st, "target", NULL, 0, 1, "job %lld is a %s: it has nothing to roll back",
               (long long)t.id, t.type);
    } else {
        pc_add(st, "target", NULL, 1, 1, "job %lld (%s of %s) is %s", (long long)t.id, t.type,
               t.node, t.state);
        prep_undo(st, t.id);
    }
    store_job_clear(&t);
}

static void
prepare_in(struct prep *st)
{
    const struct proc_request *req = st->req;
    if (store_node_each(st->x->db, inv_cb, st->p) != STORE_OK) {
        pc_add(st, "inventory", NULL, 0, 1, "cannot read the inventory");
        return;
    }
    if (strcmp(req->type, "rollback") == 0) {
        prep_rollback(st);
        return;
    }
    const struct store_node *n = plan_node(st->p, req->node);
    if (!n) {
        pc_add(st, "node", req->node, 0, 1, "there is no node named '%s' in the inventory",
               req->node ? req->node : "");
        return;
    }
    if (strcmp(req->type, "diagnose") == 0) {
        struct facts f = {.n = n};
        if (check_ssh(st, &f, 0)) {
            proc_diag_plan(st->p, n);
            involve(st->p, n);
            st->summary = xasprintf("Diagnose %s (%s): read-only", n->name, n->address);
        }
        facts_free(&f);
    } else if (strcmp(req->type, "node-add") == 0) {
        prep_add(st, n);
    } else {
        prep_remove(st, n);
    }
}

static void
prep_begin(struct prep *st, struct proc_ctx *x, const struct proc_request *req,
           struct proc_prep *out)
{
    memset(out, 0, sizeof(*out));
    memset(st, 0, sizeof(*st));
    out->prechecks = cJSON_CreateArray();
    st->x = x;
    st->req = req;
    st->out = out;
    st->p = xcalloc(1, sizeof(*st->p));
    st->warnings = cJSON_CreateArray();
    st->diffs = cJSON_CreateArray();
    st->m = x->run->model_get(x->run->ctx, &st->mref, &st->answered);
}

/* Releases the model, assembles the plan JSON and hands the steps over. */
static void
prep_finish(struct prep *st)
{
    struct proc_prep *out = st->out;
    const struct proc_request *req = st->req;
    if (st->m) {
        st->x->run->model_put(st->x->run->ctx, st->mref);
        st->m = NULL;
    }
    out->plan = cJSON_CreateObject();
    cJSON_AddStringToObject(out->plan, "summary", st->summary ? st->summary : "");
    cJSON_AddItemToObject(out->plan, "warnings", st->warnings);
    cJSON_AddItemToObject(out->plan, "steps",
                          out->failed ? cJSON_CreateArray() : plan_steps_json(st->p));
    cJSON_AddItemToObject(out->plan, "diffs", out->failed ? cJSON_CreateArray() : st->diffs);
    if (out->failed) {
        cJSON_Delete(st->diffs);
    }
    free(st->summary);
    /* the involved nodes: the named one and every one the plan touches */
    out->nodes = xcalloc(st->p->n_involved + 1, sizeof(char *));
    if (req && req->node && req->node[0]) {
        out->nodes[out->n_nodes++] = xstrdup(req->node);
    }
    for (size_t i = 0; i < st->p->n_involved; i++) {
        if (!req || !req->node || strcmp(req->node, st->p->involved[i]) != 0) {
            out->nodes[out->n_nodes++] = xstrdup(st->p->involved[i]);
        }
    }
    if (out->failed) {
        plan_free(st->p);
        free(st->p);
    } else {
        out->steps = st->p;
    }
    st->p = NULL;
}

int
proc_prepare(struct proc_ctx *x, const struct proc_request *req, struct proc_prep *out)
{
    struct prep st;
    prep_begin(&st, x, req, out);
    prepare_in(&st);
    prep_finish(&st);
    return 0;
}

int
proc_prepare_undo(struct proc_ctx *x, int64_t target, struct proc_prep *out)
{
    struct prep st;
    struct proc_request req = {.type = "rollback", .target = target};
    prep_begin(&st, x, &req, out);
    if (store_node_each(x->db, inv_cb, st.p) != STORE_OK) {
        pc_add(&st, "inventory", NULL, 0, 1, "cannot read the inventory");
    } else {
        prep_undo(&st, target);
    }
    st.req = NULL;
    prep_finish(&st);
    return 0;
}

void
proc_prep_free(struct proc_prep *p)
{
    if (!p) {
        return;
    }
    cJSON_Delete(p->prechecks);
    cJSON_Delete(p->plan);
    free(p->error);
    strv_free(p->nodes, p->n_nodes);
    if (p->steps) {
        plan_free(p->steps);
        free(p->steps);
    }
    memset(p, 0, sizeof(*p));
}

/* ---------------------------------------------------------------- pure helpers */

int
proc_version_cmp(const char *a, const char *b)
{
    if (!a) {
        return -2;
    }
    if (*a == 'v' || *a == 'V') {
        a++;
    }
    if (*a < '0' || *a > '9') {
        return -2;
    }
    while (*a || *b) {
        long x = 0, y = 0;
        while (*a >= '0' && *a <= '9' && x < 1000000) {
            x = x * 10 + (*a++ - '0');
        }
        while (*b >= '0' && *b <= '9' && y < 1000000) {
            y = y * 10 + (*b++ - '0');
        }
        if (x != y) {
            return x < y ? -1 : 1;
        }
        int more_a = *a == '.' && a[1] >= '0' && a[1] <= '9';
        int more_b = *b == '.' && b[1] >= '0' && b[1] <= '9';
        if (!more_a && !more_b) {
            return 0;
        }
        a = more_a ? a + 1 : "";
        b = more_b ? b + 1 : "";
        if (!more_a && !*b) {
            return 0;
        }
    }
    return 0;
}

/* 1 when the len bytes at s spell word, case-insensitively. */
static int
ci_eq(const char *s, size_t len, const char *word)
{
    return strlen(word) == len && strncasecmp(s, word, len) == 0;
}

char *
proc_redact(const char *text, size_t len)
{
    static const char *const secret_words[] = {"token", "secret", "password", "passwd"};
    struct buf b;
    buf_init(&b, len * 2 + 64);
    size_t i = 0;
    while (i < len) {
        /* a name: letters, digits, '_', '-' */
        size_t j = i;
        while (j < len &&
               ((text[j] >= 'a' && text[j] <= 'z') || (text[j] >= 'A' && text[j] <= 'Z') ||
                (text[j] >= '0' && text[j] <= '9') || text[j] == '_' || text[j] == '-')) {
            j++;
        }
        if (j == i) {
            buf_append(&b, text + i, 1);
            i++;
            continue;
        }
        buf_append(&b, text + i, j - i);
        const char *w = text + i;
        size_t wl = j - i;
        while (wl && *w == '-') {
            w++;
            wl--;
        }
        int secret = ci_eq(w, wl, "encrypt");
        for (size_t k = 0; !secret && k < ARRAY_LEN(secret_words); k++) {
            for (size_t o = 0; o + strlen(secret_words[k]) <= wl && !secret; o++) {
                secret = ci_eq(w + o, strlen(secret_words[k]), secret_words[k]);
            }
        }
        i = j;
        if (!secret) {
            continue;
        }
        /* its value: after '=', ':' or spaces (and quotes), up to white space, a quote, a
         * backslash, a comma or the end of the line */
        size_t k = i;
        while (k < len &&
               (text[k] == ' ' || text[k] == '\t' || text[k] == '"' || text[k] == '\'')) {
            k++;
        }
        if (k < len && (text[k] == '=' || text[k] == ':')) {
            k++;
            while (k < len &&
                   (text[k] == ' ' || text[k] == '\t' || text[k] == '"' || text[k] == '\'')) {
                k++;
            }
        } else if (k == i) {
            continue; /* a name alone ("token_file:") with nothing after it */
        }
        size_t v = k;
        while (v < len && text[v] != ' ' && text[v] != '\t' && text[v] != '"' && text[v] != '\'' &&
               text[v] != '\\' && text[v] != ',' && text[v] != '\n' && text[v] != '\r' &&
               text[v] != '}' && text[v] != ']') {
            v++;
        }
        if (v == k) {
            continue;
        }
        buf_append(&b, text + i, k - i);
        buf_puts(&b, "***");
        i = v;
    }
    char *out = buf_steal(&b);
    return out ? out : xstrdup("");
}
