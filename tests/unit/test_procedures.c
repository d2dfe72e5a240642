/* Unit tests of the procedures (server/procedures*.c, server/gate.c) driven by a scripted
 * runner (tests/unit/world.h): node-add and node-remove, rolling and full-restart, the
 * removal of a dead server, the gate, rollback (automatic after a failure or a cancel, and
 * as a job of its own after an interruption), diagnose, and every precheck failure — each
 * asserting the exact steps and files, and that a failed precheck wrote nothing and ran no
 * changing command. Each test has its own database in a temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "compose.h"
#include "gate.h"
#include "procedures.h"
#include "procedures_internal.h"
#include "store.h"
#include "store_internal.h"
#include "store_jobs.h"
#include "util.h"
#include "world.h"

struct fx {
    char dir[64];
    char path[128];
    struct store *s;
    struct world w;
    struct proc_runner run;
    atomic_int abort;
    char *orig[W_HOSTS]; /* each host's compose file at the start (NULL: none) */
};

static void
inv_add(struct fx *fx, const struct w_host *h, const char *state)
{
    struct store_node n = {
        .name = (char *)h->name,
        .address = (char *)h->ip,
        .ssh_port = 22,
        .ssh_user = "root",
        .ssh_key_path = "/etc/consulate/id",
        .compose_dir = "/mnt/opt/docker-compose/consul",
        .data_dir = W_DATA,
        .server_state = (char *)state,
    };
    assert_int_equal(store_node_insert(fx->s, &n, 1), STORE_OK);
    assert_int_equal(store_node_pin(fx->s, h->name, "ED25519", 256, h->fp, "admin", 2), STORE_OK);
}

/* Three servers s1..s3 (10.0.0.1-3) and a spare n4 (10.0.0.4). */
static int
fx_setup(void **state)
{
    struct fx *fx = xcalloc(1, sizeof(*fx));
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/consulate-test-proc-XXXXXX");
    if (!mkdtemp(fx->dir)) {
        return -1;
    }
    snprintf(fx->path, sizeof(fx->path), "%s/store.db", fx->dir);
    char err[256];
    fx->s = store_open(fx->path, err, sizeof(err));
    if (!fx->s || store_migrate(fx->s, NULL, NULL) != STORE_OK) {
        return -1;
    }
    world_init(&fx->w);
    fx->w.abort = &fx->abort;
    world_add(&fx->w, "s1", "10.0.0.1", 1);
    world_add(&fx->w, "s2", "10.0.0.2", 1);
    world_add(&fx->w, "s3", "10.0.0.3", 1);
    world_add(&fx->w, "n4", "10.0.0.4", 0);
    world_servers_compose(&fx->w);
    for (size_t i = 0; i < fx->w.nh; i++) {
        inv_add(fx, &fx->w.h[i], i < 3 ? "server" : "spare");
        const char *t = world_file(&fx->w, fx->w.h[i].name, W_COMPOSE);
        fx->orig[i] = t ? xstrdup(t) : NULL;
    }
    fx->run = world_runner(&fx->w);
    *state = fx;
    return 0;
}

static int
fx_teardown(void **state)
{
    struct fx *fx = *state;
    store_close(fx->s);
    const char *suffix[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < ARRAY_LEN(suffix); i++) {
        char p[160];
        snprintf(p, sizeof(p), "%s%s", fx->path, suffix[i]);
        unlink(p);
    }
    rmdir(fx->dir);
    for (size_t i = 0; i < W_HOSTS; i++) {
        free(fx->orig[i]);
    }
    world_free(&fx->w);
    free(fx);
    return 0;
}

static int64_t
new_job(struct fx *fx, const char *type, const char *node, const char *state)
{
    struct store_job j = {0};
    snprintf(j.type, sizeof(j.type), "%s", type);
    snprintf(j.state, sizeof(j.state), "%s", state);
    j.node = (char *)node;
    j.reason = "test";
    j.requested_by = "olga";
    j.requested_at = 1;
    int64_t id = 0;
    assert_int_equal(store_job_insert(fx->s, &j, NULL, 0, &id), STORE_OK);
    return id;
}

static struct proc_ctx
ctx_of(struct fx *fx, int64_t job)
{
    return (struct proc_ctx){
        .db = fx->s,
        .job_id = job,
        .run = &fx->run,
        .lim = {.command_timeout_ms = 120000,
                .gate_timeout_ms = 60000,
                .gate_poll_ms = 250,
                .leave_wait_ms = 3000},
        .abort = &fx->abort,
        .next_seq = 1,
    };
}

/* The files of every host are those at the start (servers) and absent (the spare). */
static void
assert_files_unchanged(struct fx *fx)
{
    for (size_t i = 0; i < fx->w.nh; i++) {
        const char *now = world_file(&fx->w, fx->w.h[i].name, W_COMPOSE);
        if (!fx->orig[i]) {
            assert_null(now);
        } else {
            assert_non_null(now);
            assert_string_equal(now, fx->orig[i]);
        }
    }
}

/* The precheck called name (for node, when not NULL) in the prechecks array. */
static const cJSON *
precheck(const cJSON *pcs, const char *name, const char *node)
{
    const cJSON *p;
    cJSON_ArrayForEach(p, pcs)
    {
        if (strcmp(json_get_str(p, "name", ""), name) == 0 &&
            (!node || strcmp(json_get_str(p, "node", ""), node) == 0)) {
            return p;
        }
    }
    return NULL;
}

/* Asserts a precheck failed, blocking, with a message containing what. */
static void
assert_failed_check(const cJSON *pcs, const char *name, const char *node, const char *what)
{
    const cJSON *p = precheck(pcs, name, node);
    if (!p) {
        char *t = json_print(pcs);
        fail_msg("no precheck %s for %s in %s", name, node ? node : "-", t);
    }
    if (json_get_bool(p, "ok", 1) || !json_get_bool(p, "blocking", 0)) {
        fail_msg("precheck %s of %s did not fail as a blocking one: %s", name, node ? node : "-",
                 json_get_str(p, "message", ""));
    }
    if (what && !strstr(json_get_str(p, "message", ""), what)) {
        fail_msg("precheck %s: '%s' does not mention '%s'", name, json_get_str(p, "message", ""),
                 what);
    }
}

/* Prepares req as a new job and asserts that it failed before anything changed. Returns
 * the prechecks (the caller deletes them). */
static cJSON *
prepare_fails(struct fx *fx, const struct proc_request *req)
{
    int64_t job = new_job(fx, req->type, req->node ? req->node : "-", "failed");
    struct proc_ctx x = ctx_of(fx, job);
    struct proc_prep prep;
    assert_int_equal(proc_prepare(&x, req, &prep), 0);
    assert_true(prep.failed);
    assert_non_null(prep.error);
    assert_null(prep.steps);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(prep.plan, "steps")), 0);
    assert_int_equal(fx->w.mutations, 0);
    assert_files_unchanged(fx);
    cJSON *pcs = cJSON_Duplicate(prep.prechecks, 1);
    proc_prep_free(&prep);
    /* executing it fails the same way, still without a change */
    struct proc_outcome o;
    assert_int_equal(proc_execute(&x, req, NULL, &o), 0);
    assert_int_equal(o.end, PROC_FAILED);
    assert_false(o.changed);
    assert_non_null(strstr(json_get_str(o.result, "error", ""), "nothing was changed"));
    proc_outcome_free(&o);
    assert_int_equal(fx->w.mutations, 0);
    assert_files_unchanged(fx);
    return pcs;
}

struct step_row {
    char node[32];
    char title[256];
    char command[512];
    char state[16];
    int exit_status;
};

struct steps {
    struct step_row v[64];
    int n;
};

static int
steps_cb(const struct store_job_step *st, void *ctx)
{
    struct steps *s = ctx;
    struct step_row *r = &s->v[s->n++];
    snprintf(r->node, sizeof(r->node), "%s", st->node);
    snprintf(r->title, sizeof(r->title), "%s", st->title);
    snprintf(r->command, sizeof(r->command), "%s", st->command ? st->command : "-");
    snprintf(r->state, sizeof(r->state), "%s", st->state);
    r->exit_status = st->has_exit ? st->exit_status : -999;
    return 0;
}

static struct steps
steps_of(struct fx *fx, int64_t job)
{
    struct steps s;
    memset(&s, 0, sizeof(s));
    assert_int_equal(store_job_steps(fx->s, job, steps_cb, &s), STORE_OK);
    return s;
}

static long long
sql_int(struct fx *fx, const char *sql)
{
    int64_t n = -1;
    assert_int_equal(store_query_int(fx->s, sql, NULL, &n), STORE_OK);
    return n;
}

/* The world's host name (the test fails when there is none). */
static struct w_host *
H(struct fx *fx, const char *name)
{
    struct w_host *h = world_host(&fx->w, name);
    if (!h) {
        abort();
    }
    return h;
}

/* Clears the pinned host key of an inventory node. */
static void
unpin(struct fx *fx, const char *name)
{
    struct store_node n;
    assert_int_equal(store_node_get(fx->s, name, &n), STORE_OK);
    assert_int_equal(store_node_update(fx->s, &n, 1, 3), STORE_OK);
    store_node_clear(&n);
}

/* The expected file of a server after adding addr: the editor's own result. */
static char *
added(const char *text, const char *addr)
{
    char *out = NULL;
    size_t len;
    struct compose_error ce;
    assert_int_equal(compose_add(text, strlen(text), addr, &out, &len, &ce), COMPOSE_OK);
    return out;
}

/* tmpl with every "%lld" replaced by the job id. */
static void
subst_job(const char *tmpl, int64_t job, char *out, size_t outlen)
{
    size_t o = 0;
    for (const char *p = tmpl; *p && o + 24 < outlen;) {
        if (strncmp(p, "%lld", 4) == 0) {
            o += (size_t)snprintf(out + o, outlen - o, "%lld", (long long)job);
            p += 4;
        } else {
            out[o++] = *p++;
        }
    }
    out[o] = '\0';
}

static const char *const ROLLING_ADD_TITLES[] = {
    "s1|Back up /mnt/opt/docker-compose/consul/docker-compose.yaml|cp -p "
    "'/mnt/opt/docker-compose/consul/docker-compose.yaml' "
    "'/mnt/opt/docker-compose/consul/docker-compose.yaml.bak-%lld'",
    "s2|Back up /mnt/opt/docker-compose/consul/docker-compose.yaml|cp -p "
    "'/mnt/opt/docker-compose/consul/docker-compose.yaml' "
    "'/mnt/opt/docker-compose/consul/docker-compose.yaml.bak-%lld'",
    "s3|Back up /mnt/opt/docker-compose/consul/docker-compose.yaml|cp -p "
    "'/mnt/opt/docker-compose/consul/docker-compose.yaml' "
    "'/mnt/opt/docker-compose/consul/docker-compose.yaml.bak-%lld'",
    "n4|Create the compose dir|mkdir -p '/mnt/opt/docker-compose/consul'",
    "n4|Write /mnt/opt/docker-compose/consul/docker-compose.yaml (the new server's file, from "
    "the first server's)|-",
    "n4|Start Consul (docker-compose up -d)|docker-compose -f "
    "'/mnt/opt/docker-compose/consul/docker-compose.yaml' up -d",
    "|Gate: 4 servers in raft, all voters, one leader, autopilot healthy, list-peers agrees (the "
    "new server is a voter)|-",
    "s1|Write /mnt/opt/docker-compose/consul/docker-compose.yaml (add the retry-join entry)|-",
    "s2|Write /mnt/opt/docker-compose/consul/docker-compose.yaml (add the retry-join entry)|-",
    "s3|Write /mnt/opt/docker-compose/consul/docker-compose.yaml (add the retry-join entry)|-",
    "|Gate: 4 servers in raft, all voters, one leader, autopilot healthy, list-peers agrees "
    "(after the edits)|-",
};

static void
test_add_rolling(void **state)
{
    struct fx *fx = *state;
    struct proc_request req = {.type = "node-add", .node = "n4", .strategy = "rolling"};
    int64_t job = new_job(fx, "node-add", "n4", "awaiting_approval");
    struct proc_ctx x = ctx_of(fx, job);
    struct proc_prep prep;
    assert_int_equal(proc_prepare(&x, &req, &prep), 0);
    if (prep.failed) {
        fail_msg("prepare failed: %s", prep.error);
    }
    /* the dry run changed nothing and ran only reading commands */
    assert_int_equal(fx->w.mutations, 0);
    assert_files_unchanged(fx);
    const cJSON *steps = cJSON_GetObjectItem(prep.plan, "steps");
    assert_int_equal(cJSON_GetArraySize(steps), (int)ARRAY_LEN(ROLLING_ADD_TITLES));
    for (size_t i = 0; i < ARRAY_LEN(ROLLING_ADD_TITLES); i++) {
        const cJSON *s = cJSON_GetArrayItem(steps, (int)i);
        char want[1024], got[1024];
        subst_job(ROLLING_ADD_TITLES[i], job, want, sizeof(want));
        const cJSON *cmd = cJSON_GetObjectItem(s, "command");
        snprintf(got, sizeof(got), "%s|%s|%s", json_get_str(s, "node", ""),
                 json_get_str(s, "title", ""), cJSON_IsString(cmd) ? cmd->valuestring : "-");
        assert_string_equal(got, want);
    }
    /* a diff per written file; secrets masked; the new address added */
    const cJSON *diffs = cJSON_GetObjectItem(prep.plan, "diffs");
    assert_int_equal(cJSON_GetArraySize(diffs), 4);
    const cJSON *d0 = cJSON_GetArrayItem(diffs, 0);
    assert_string_equal(json_get_str(d0, "node", ""), "n4");
    assert_non_null(strstr(json_get_str(d0, "diff", ""), "--- /dev/null"));
    assert_non_null(strstr(json_get_str(d0, "diff", ""), "+      -retry-join=10.0.0.4\""));
    assert_non_null(strstr(json_get_str(d0, "diff", ""), "-bind=10.0.0.4"));
    const cJSON *d1 = cJSON_GetArrayItem(diffs, 1);
    assert_string_equal(json_get_str(d1, "node", ""), "s1");
    assert_non_null(strstr(json_get_str(d1, "diff", ""), "+      -retry-join=10.0.0.4\""));
    char *all = json_print(prep.plan);
    assert_null(strstr(all, "c2VjcmV0LWtleS0xMjM0NTY="));
    assert_non_null(strstr(all, "-encrypt=***"));
    free(all);
    /* three servers plus one: an even count is warned about */
    char *warnings = json_print(cJSON_GetObjectItem(prep.plan, "warnings"));
    assert_non_null(strstr(warnings, "even"));
    free(warnings);
    /* involved: the new node first, then the servers */
    assert_int_equal(prep.n_nodes, 4);
    assert_string_equal(prep.nodes[0], "n4");
    char *approved = json_print(prep.plan);
    proc_prep_free(&prep);

    struct proc_outcome o;
    assert_int_equal(proc_execute(&x, &req, approved, &o), 0);
    free(approved);
    if (o.end != PROC_SUCCEEDED) {
        fail_msg("run failed: %s", json_get_str(o.result, "error", "?"));
    }
    assert_true(o.changed);
    const cJSON *gate = cJSON_GetObjectItem(o.result, "gate");
    assert_true(json_get_bool(gate, "passed", 0));
    assert_int_equal((int)json_get_num(gate, "servers", 0), 4);
    assert_null(cJSON_GetObjectItem(o.result, "leaderless_s"));
    proc_outcome_free(&o);

    /* every server file is the editor's add of 10.0.0.4, the backups the originals */
    char bak[300];
    snprintf(bak, sizeof(bak), "%s.bak-%lld", W_COMPOSE, (long long)job);
    for (size_t i = 0; i < 3; i++) {
        char *want = added(fx->orig[i], "10.0.0.4");
        assert_string_equal(world_file(&fx->w, fx->w.h[i].name, W_COMPOSE), want);
        free(want);
        assert_string_equal(world_file(&fx->w, fx->w.h[i].name, bak), fx->orig[i]);
    }
    const char *nf = world_file(&fx->w, "n4", W_COMPOSE);
    assert_non_null(nf);
    assert_non_null(strstr(nf, "-bind=10.0.0.4"));
    assert_non_null(strstr(nf, "-retry-join=10.0.0.1"));
    assert_non_null(strstr(nf, "-retry-join=10.0.0.4"));
    struct w_host *n4 = H(fx, "n4");
    assert_true(n4->running && n4->in_raft && n4->voter);
    /* the existing servers were never restarted */
    for (size_t i = 0; i < 3; i++) {
        assert_false(world_ran(&fx->w, fx->w.h[i].name, "down"));
        assert_false(world_ran(&fx->w, fx->w.h[i].name, "up -d"));
    }
    /* every step row succeeded; every remote step has its attempt and its outcome */
    struct steps st = steps_of(fx, job);
    assert_int_equal(st.n, (int)ARRAY_LEN(ROLLING_ADD_TITLES));
    for (int i = 0; i < st.n; i++) {
        assert_string_equal(st.v[i].state, "succeeded");
    }
    assert_int_equal(st.v[5].exit_status, 0);
    assert_int_equal(sql_int(fx, "SELECT count(*) FROM audit_log WHERE action = 'job.step' AND "
                                 "outcome = 'pending'"),
                     9);
    assert_int_equal(sql_int(fx, "SELECT count(*) FROM audit_log WHERE action = 'job.step' AND "
                                 "outcome = 'ok'"),
                     9);
    assert_int_equal(sql_int(fx,
                             "SELECT count(*) FROM audit_log WHERE action = 'job.step' AND "
                             "detail LIKE '%docker-compose -f ''/mnt/opt/docker-compose/consul/"
                             "docker-compose.yaml'' up -d%' AND detail LIKE '%\"exit_status\":0%'"),
                     1);
    /* the undo records: the running state of the 4 nodes, then the 4 files */
    assert_int_equal(sql_int(fx, "SELECT count(*) FROM job_undo WHERE kind = 'state'"), 4);
    assert_int_equal(sql_int(fx, "SELECT count(*) FROM job_undo WHERE kind = 'file'"), 4);
    /* the log has the gate's report and no secret */
    assert_true(sql_int(fx, "SELECT count(*) FROM job_log WHERE text LIKE 'gate passed%'") == 2);
    assert_int_equal(sql_int(fx, "SELECT count(*) FROM job_log WHERE text LIKE "
                                 "'%c2VjcmV0LWtleS0xMjM0NTY=%'"),
                     0);
}

static void
test_add_full_restart(void **state)
{
    struct fx *fx = *state;
    struct proc_request req = {.type = "node-add", .node = "n4", .strategy = "full-restart"};
    int64_t job = new_job(fx, "node-add", "n4", "queued");
    struct proc_ctx x = ctx_of(fx, job);
    struct proc_outcome o;
    assert_int_equal(proc_execute(&x, &req, NULL, &o), 0);
    if (o.end != PROC_SUCCEEDED) {
        fail_msg("run failed: %s", json_get_str(o.result, "error", "?"));
    }
    const cJSON *ls = cJSON_GetObjectItem(o.result, "leaderless_s");
    assert_true(cJSON_IsNumber(ls));
    assert_true(ls->valuedouble > 0);
    proc_outcome_free(&o);
    for (size_t i = 0; i < 3; i++) {
        assert_true(world_ran(&fx->w, fx->w.h[i].name, "down"));
        assert_true(world_ran(&fx->w, fx->w.h[i].name, "up -d"));
        char *want = added(fx->orig[i], "10.0.0.4");
        assert_string_equal(world_file(&fx->w, fx->w.h[i].name, W_COMPOSE), want);
        free(want);
    }
    struct w_host *n4 = H(fx, "n4");
    assert_true(n4->running && n4->in_raft && n4->voter);
    struct steps st = steps_of(fx, job);
    /* 3 backups, mkdir, 3 downs, 3 writes, the new file, 4 ups, the gate */
    assert_int_equal(st.n, 16);
    assert_non_null(strstr(st.v[4].command, " down"));
    assert_non_null(strstr(st.v[11].command, " up -d"));
    assert_string_equal(st.v[15].node, "");
}

static void
test_remove_rolling_and_identity(void **state)
{
    struct fx *fx = *state;
    /* add n4, then remove it again: every server file is byte-identical to the start */
    struct proc_request add = {.type = "node-add", .node = "n4", .strategy = "rolling"};
    int64_t j1 = new_job(fx, "node-add", "n4", "queued");
    struct proc_ctx x = ctx_of(fx, j1);
    struct proc_outcome o;
    assert_int_equal(proc_execute(&x, &add, NULL, &o), 0);
    assert_int_equal(o.end, PROC_SUCCEEDED);
    proc_outcome_free(&o);
    struct proc_request rm = {.type = "node-remove", .node = "n4", .strategy = "rolling"};
    int64_t j2 = new_job(fx, "node-remove", "n4", "queued");
    x = ctx_of(fx, j2);
    struct proc_prep prep;
    assert_int_equal(proc_prepare(&x, &rm, &prep), 0);
    if (prep.failed) {
        fail_msg("prepare failed: %s", prep.error);
    }
    const cJSON *steps = cJSON_GetObjectItem(prep.plan, "steps");
    static const char *const titles[] = {"Back up",
                                         "Back up",
                                         "Back up",
                                         "Leave the cluster gracefully (consul leave)",
                                         "Stop Consul (docker-compose down)",
                                         "Wait until 10.0.0.4:8300 leaves raft",
                                         "Force 10.0.0.4:8300 out when it is still in raft",
                                         "Wait until 10.0.0.4:8300 leaves raft",
                                         "Remove 10.0.0.4:8300 from raft when it is still there",
                                         "Wait until 10.0.0.4:8300 is out of raft",
                                         "Gate: 3 servers",
                                         "Move /mnt/opt/docker-compose/consul/docker-compose.yaml "
                                         "aside",
                                         "Write",
                                         "Write",
                                         "Write",
                                         "Gate: 3 servers"};
    assert_int_equal(cJSON_GetArraySize(steps), (int)ARRAY_LEN(titles));
    for (size_t i = 0; i < ARRAY_LEN(titles); i++) {
        const char *t = json_get_str(cJSON_GetArrayItem(steps, (int)i), "title", "");
        if (strncmp(t, titles[i], strlen(titles[i])) != 0) {
            fail_msg("step %zu is '%s', not '%s…'", i + 1, t, titles[i]);
        }
    }
    assert_string_equal(json_get_str(cJSON_GetArrayItem(steps, 3), "command", ""),
                        "docker exec consul consul leave");
    assert_string_equal(json_get_str(cJSON_GetArrayItem(steps, 6), "command", ""),
                        "docker exec consul consul force-leave 'n4'");
    char *approved = json_print(prep.plan);
    proc_prep_free(&prep);
    assert_int_equal(proc_execute(&x, &rm, approved, &o), 0);
    free(approved);
    if (o.end != PROC_SUCCEEDED) {
        fail_msg("run failed: %s", json_get_str(o.result, "error", "?"));
    }
    proc_outcome_free(&o);
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(world_file(&fx->w, fx->w.h[i].name, W_COMPOSE), fx->orig[i]);
    }
    struct steps st = steps_of(fx, j2);
    assert_string_equal(st.v[6].state, "skipped");
    assert_string_equal(st.v[8].state, "skipped");
    assert_false(world_ran(&fx->w, "s1", "force-leave"));
    /* the removed node's file is kept as its backup, named after the job */
    assert_null(world_file(&fx->w, "n4", W_COMPOSE));
    char bak[300];
    snprintf(bak, sizeof(bak), "%s.bak-%lld", W_COMPOSE, (long long)j2);
    assert_non_null(world_file(&fx->w, "n4", bak));
    struct w_host *n4 = H(fx, "n4");
    assert_false(n4->running || n4->in_raft);
    assert_true(sql_int(fx, "SELECT count(*) FROM job_log WHERE text LIKE '%.bak-%'") > 0);
}

/* Runs req (a new job for s3) to its end, which must be succeeded; returns the job's id. With
 * approve, the plan is prepared first (it must pass) and the run is held to it. */
static int64_t
run_s3_ok(struct fx *fx, const struct proc_request *req, int approve)
{
    int64_t job = new_job(fx, req->type, "s3", "queued");
    struct proc_ctx x = ctx_of(fx, job);
    char *approved = NULL;
    if (approve) {
        struct proc_prep prep;
        assert_int_equal(proc_prepare(&x, req, &prep), 0);
        assert_false(prep.failed);
        approved = json_print(prep.plan);
        proc_prep_free(&prep);
    }
    struct proc_outcome o;
    assert_int_equal(proc_execute(&x, req, approved, &o), 0);
    free(approved);
    if (o.end != PROC_SUCCEEDED) {
        fail_msg("run failed: %s", json_get_str(o.result, "error", "?"));
    }
    proc_outcome_free(&o);
    return job;
}

/* s3 (10.0.0.3) is in no remaining server's retry-join list. */
static void
assert_s3_unlisted(struct fx *fx)
{
    for (size_t i = 0; i < 2; i++) {
        assert_null(strstr(world_file(&fx->w, fx->w.h[i].name, W_COMPOSE), "10.0.0.3"));
    }
}

/* A graceful leave that fails (the agent does not answer it) does not stop the removal:
 * down stops the agent, force-leave takes it out of raft, the log says so. */
static void
test_remove_leave_fails(void **state)
{
    struct fx *fx = *state;
    H(fx, "s3")->leave_fails = 1;
    struct proc_request rm = {.type = "node-remove", .node = "s3"};
    int64_t job = run_s3_ok(fx, &rm, 0);
    assert_true(world_ran(&fx->w, "s1", "force-leave 's3'"));
    assert_false(H(fx, "s3")->in_raft);
    assert_false(H(fx, "s3")->running);
    assert_true(sql_int(fx, "SELECT count(*) FROM job_log WHERE text LIKE "
                            "'%consul leave'' exited with status 1; the job goes on%'") == 1);
    struct steps st = steps_of(fx, job);
    int leave_seen = 0;
    for (int i = 0; i < st.n; i++) {
        if (strncmp(st.v[i].title, "Leave the cluster gracefully", 28) == 0) {
            leave_seen = 1;
            assert_string_equal(st.v[i].state, "succeeded");
        }
    }
    assert_true(leave_seen);
    assert_s3_unlisted(fx);
}

/* Docker's restart policy brings the left agent back before down stops it: it is a failed
 * member in raft, forced out with force-leave; the removal still succeeds. */
static void
test_remove_rejoined_after_leave(void **state)
{
    struct fx *fx = *state;
    H(fx, "s3")->rejoins = 1;
    struct proc_request rm = {.type = "node-remove", .node = "s3"};
    run_s3_ok(fx, &rm, 0);
    assert_true(world_ran(&fx->w, "s1", "force-leave 's3'"));
    assert_false(world_ran(&fx->w, "s1", "remove-peer"));
    assert_false(H(fx, "s3")->in_raft);
    assert_false(H(fx, "s3")->running);
    assert_s3_unlisted(fx);
}

static void
test_remove_full_restart(void **state)
{
    struct fx *fx = *state;
    struct proc_request rm = {.type = "node-remove", .node = "s3", .strategy = "full-restart"};
    int64_t job = new_job(fx, "node-remove", "s3", "queued");
    struct proc_ctx x = ctx_of(fx, job);
    struct proc_outcome o;
    assert_int_equal(proc_execute(&x, &rm, NULL, &o), 0);
    if (o.end != PROC_SUCCEEDED) {
        fail_msg("run failed: %s", json_get_str(o.result, "error", "?"));
    }
    assert_true(cJSON_IsNumber(cJSON_GetObjectItem(o.result, "leaderless_s")));
    proc_outcome_free(&o);
    assert_true(world_ran(&fx->w, "s1", "down") && world_ran(&fx->w, "s2", "down"));
    assert_true(world_ran(&fx->w, "s3", "consul leave"));
    for (size_t i = 0; i < 2; i++) {
        const char *f = world_file(&fx->w, fx->w.h[i].name, W_COMPOSE);
        assert_null(strstr(f, "10.0.0.3"));
        assert_non_null(strstr(f, "-retry-join=10.0.0.2\""));
    }
    assert_null(world_file(&fx->w, "s3", W_COMPOSE));
    assert_false(H(fx, "s3")->running);
}

static void
test_remove_dead_server(void **state)
{
    struct fx *fx = *state;
    struct w_host *s3 = H(fx, "s3");
    s3->reachable = 0; /* the host is gone; raft still lists it */
    s3->stubborn = 1;  /* and force-leave alone does not drop it */
    struct proc_request rm = {.type = "node-remove", .node = "s3", .node_gone = 1};
    /* without node_gone the unreachable host fails the prechecks */
    struct proc_request normal = {.type = "node-remove", .node = "s3"};
    cJSON *pcs = prepare_fails(fx, &normal);
    cJSON_Delete(pcs);
    int64_t job = new_job(fx, "node-remove", "s3", "queued");
    struct proc_ctx x = ctx_of(fx, job);
    struct proc_prep prep;
    assert_int_equal(proc_prepare(&x, &rm, &prep), 0);
    if (prep.failed) {
        fail_msg("prepare failed: %s", prep.error);
    }
    char *warnings = json_print(cJSON_GetObjectItem(prep.plan, "warnings"));
    assert_non_null(strstr(warnings, "gone for good"));
    free(warnings);
    const cJSON *ssh = precheck(prep.prechecks, "ssh", "s3");
    assert_true(json_get_bool(ssh, "ok", 0));
    assert_false(json_get_bool(ssh, "blocking", 1));
    char *approved = json_print(prep.plan);
    assert_non_null(strstr(approved, "docker exec consul consul force-leave 's3'"));
    assert_non_null(strstr(approved, "docker exec consul consul operator raft remove-peer "
                                     "-address=10.0.0.3:8300"));
    proc_prep_free(&prep);
    struct proc_outcome o;
    assert_int_equal(proc_execute(&x, &rm, approved, &o), 0);
    free(approved);
    if (o.end != PROC_SUCCEEDED) {
        fail_msg("run failed: %s", json_get_str(o.result, "error", "?"));
    }
    proc_outcome_free(&o);
    assert_true(world_ran(&fx->w, "s1", "force-leave 's3'"));
    assert_true(world_ran(&fx->w, "s1", "remove-peer -address=10.0.0.3:8300"));
    assert_false(s3->in_raft);
    for (size_t i = 0; i < 2; i++) {
        assert_null(strstr(world_file(&fx->w, fx->w.h[i].name, W_COMPOSE), "10.0.0.3"));
    }
    /* the dead host's own file was not touched */
    assert_string_equal(world_file(&fx->w, "s3", W_COMPOSE), fx->orig[2]);
    struct steps st = steps_of(fx, job);
    int skipped_wait = 0;
    for (int i = 0; i < st.n; i++) {
        skipped_wait |= strncmp(st.v[i].title, "Wait until 10.0.0.3:8300 leaves raft", 36) == 0 &&
                        strcmp(st.v[i].state, "skipped") == 0;
    }
    assert_true(skipped_wait);
}

/* The server leaves raft between the look and the remove-peer (the leader drops a force-left
 * server on its own time): the command fails with "address not found", which is the state it
 * was run for, and the removal succeeds. */
static void
test_remove_peer_race(void **state)
{
    struct fx *fx = *state;
    struct w_host *s3 = H(fx, "s3");
    s3->reachable = 0;
    s3->stubborn = 1;   /* force-leave does not drop it: the job goes on to remove-peer */
    s3->gone_first = 1; /* and it leaves raft just before that arrives */
    struct proc_request rm = {.type = "node-remove", .node = "s3", .node_gone = 1};
    run_s3_ok(fx, &rm, 1);
    assert_true(world_ran(&fx->w, "s1", "remove-peer -address=10.0.0.3:8300"));
    assert_false(s3->in_raft);
    assert_true(sql_int(fx, "SELECT count(*) FROM job_log WHERE text LIKE "
                            "'%10.0.0.3:8300 left raft while%does not matter%'") == 1);
    assert_s3_unlisted(fx);
}

static void
test_remove_dead_server_force_leave_suffices(void **state)
{
    struct fx *fx = *state;
    H(fx, "s3")->reachable = 0;
    struct proc_request rm = {.type = "node-remove", .node = "s3", .node_gone = 1};
    int64_t job = run_s3_ok(fx, &rm, 0);
    assert_false(world_ran(&fx->w, "s1", "remove-peer"));
    struct steps st = steps_of(fx, job);
    int rp = 0;
    for (int i = 0; i < st.n; i++) {
        if (strstr(st.v[i].command, "remove-peer")) {
            rp = 1;
            assert_string_equal(st.v[i].state, "skipped");
        }
    }
    assert_true(rp);
}

/* ---------------------------------------------------------------- precheck failures */

static void
test_precheck_failures_add(void **state)
{
    struct fx *fx = *state;
    struct proc_request req = {.type = "node-add", .node = "n4"};
    /* several problems at once: all are reported */
    struct w_host *n4 = H(fx, "n4");
    snprintf(n4->docker, sizeof(n4->docker), "18.09.7");
    snprintf(n4->compose, sizeof(n4->compose), "1.25.0");
    snprintf(n4->hostname, sizeof(n4->hostname), "s2");
    H(fx, "s3")->closed_port = 8301;
    world_file_set(&fx->w, "n4", W_DATA "/raft/raft.db", "old raft");
    cJSON *pcs = prepare_fails(fx, &req);
    assert_failed_check(pcs, "docker_version", "n4", "18.09.7");
    assert_failed_check(pcs, "compose_version", "n4", "1.25.0");
    assert_failed_check(pcs, "hostname", "n4", "Node name conflicts");
    assert_failed_check(pcs, "ports", "s3", "8301");
    const cJSON *ports_ok = precheck(pcs, "ports", "s1");
    assert_true(json_get_bool(ports_ok, "ok", 0));
    /* a non-empty data dir is not a failure: the plan moves it aside */
    const cJSON *dd = precheck(pcs, "data_dir", "n4");
    assert_true(json_get_bool(dd, "ok", 0));
    assert_non_null(strstr(json_get_str(dd, "message", ""), "moves it aside"));
    cJSON_Delete(pcs);
}

static void
test_precheck_host_keys(void **state)
{
    struct fx *fx = *state;
    struct proc_request req = {.type = "node-add", .node = "n4"};
    /* s2 presents another key than its pin: nothing at all runs on it */
    struct w_host *s2 = H(fx, "s2");
    char pinned[64];
    snprintf(pinned, sizeof(pinned), "%s", s2->fp);
    snprintf(s2->fp, sizeof(s2->fp), "SHA256:%s", "EVILEVILEVILEVILEVILEVILEVILEVILEVILEVILEVI");
    cJSON *pcs = prepare_fails(fx, &req);
    assert_failed_check(pcs, "ssh", "s2", "host key changed");
    assert_failed_check(pcs, "ssh", "s2", pinned);
    assert_failed_check(pcs, "ssh", "s2", "EVILEVIL");
    assert_false(world_ran(&fx->w, "s2", ""));
    cJSON_Delete(pcs);
    /* a node without a pinned key is never accepted: it shows what it presents */
    snprintf(s2->fp, sizeof(s2->fp), "%s", pinned);
    fx->w.ncmd = 0;
    unpin(fx, "n4");
    pcs = prepare_fails(fx, &req);
    assert_failed_check(pcs, "ssh", "n4", "not pinned");
    assert_failed_check(pcs, "ssh", "n4", H(fx, "n4")->fp);
    assert_false(world_ran(&fx->w, "n4", ""));
    cJSON_Delete(pcs);
}

static void
test_precheck_compose_and_cluster(void **state)
{
    struct fx *fx = *state;
    struct proc_request req = {.type = "node-add", .node = "n4"};
    /* a missing compose file on a server, consul already running on the new node */
    world_file_set(&fx->w, "s2", W_COMPOSE, NULL);
    free(fx->orig[1]);
    fx->orig[1] = NULL;
    H(fx, "n4")->running = 1;
    cJSON *pcs = prepare_fails(fx, &req);
    assert_failed_check(pcs, "compose_file", "s2", "has no /mnt/opt/docker-compose/consul");
    assert_failed_check(pcs, "consul_stopped", "n4", "already runs");
    cJSON_Delete(pcs);
    H(fx, "n4")->running = 0;
    /* an unparseable file */
    world_file_set(&fx->w, "s2", W_COMPOSE, "services: [unclosed\n");
    fx->orig[1] = xstrdup("services: [unclosed\n");
    pcs = prepare_fails(fx, &req);
    assert_failed_check(pcs, "compose_file", "s2", "not_yaml");
    cJSON_Delete(pcs);
    world_file_set(&fx->w, "s2", W_COMPOSE, fx->orig[0]);
    free(fx->orig[1]);
    fx->orig[1] = xstrdup(fx->orig[0]);
    /* an unhealthy cluster (a server down) refuses any change */
    H(fx, "s3")->running = 0;
    pcs = prepare_fails(fx, &req);
    assert_failed_check(pcs, "cluster_healthy", NULL, "s3");
    cJSON_Delete(pcs);
    /* no leader at all */
    H(fx, "s2")->running = 0;
    pcs = prepare_fails(fx, &req);
    assert_failed_check(pcs, "cluster", NULL, "raft");
    cJSON_Delete(pcs);
    H(fx, "s2")->running = H(fx, "s3")->running = 1;
    /* a raft server missing from the inventory */
    assert_int_equal(store_node_delete(fx->s, "s3"), STORE_OK);
    pcs = prepare_fails(fx, &req);
    assert_failed_check(pcs, "inventory", NULL, "s3 (10.0.0.3:8300)");
    cJSON_Delete(pcs);
    /* the new node is a server already */
    req.node = "s1";
    pcs = prepare_fails(fx, &req);
    assert_failed_check(pcs, "new_node", "s1", "already a Consul server");
    cJSON_Delete(pcs);
    /* an unknown node */
    req.node = "nope";
    pcs = prepare_fails(fx, &req);
    assert_failed_check(pcs, "node", "nope", "no node named");
    cJSON_Delete(pcs);
}

static const char TRAP[] =
    "services:\n  consul:\n    image: consul:1.15.4\n"
    "    command: agent -server -bind=10.0.0.%d -data-dir=/consul/data \\\n"
    "      -retry-join=10.0.0.1 \\\n      -retry-join=10.0.0.2 \\\n      -retry-join=10.0.0.3\n";

static void
test_trap_refused_then_fixed(void **state)
{
    struct fx *fx = *state;
    for (size_t i = 0; i < 3; i++) {
        char t[512];
        snprintf(t, sizeof(t), TRAP, (int)i + 1);
        world_file_set(&fx->w, fx->w.h[i].name, W_COMPOSE, t);
        free(fx->orig[i]);
        fx->orig[i] = xstrdup(t);
    }
    struct proc_request req = {.type = "node-add", .node = "n4"};
    cJSON *pcs = prepare_fails(fx, &req);
    assert_failed_check(pcs, "compose_file", "s1", "backslash trap");
    assert_failed_check(pcs, "compose_file", "s1", "options.fix_trap");
    cJSON_Delete(pcs);
    /* with the fix approved as part of the change */
    req.fix_trap = 1;
    int64_t job = new_job(fx, "node-add", "n4", "queued");
    struct proc_ctx x = ctx_of(fx, job);
    struct proc_prep prep;
    assert_int_equal(proc_prepare(&x, &req, &prep), 0);
    if (prep.failed) {
        fail_msg("prepare failed: %s", prep.error);
    }
    const cJSON *d = cJSON_GetArrayItem(cJSON_GetObjectItem(prep.plan, "diffs"), 1);
    assert_string_equal(json_get_str(d, "node", ""), "s1");
    assert_non_null(strstr(json_get_str(d, "diff", ""), "-    command: agent -server"));
    assert_non_null(strstr(json_get_str(d, "diff", ""), "+    command: \"agent -server"));
    assert_non_null(strstr(json_get_str(prep.plan, "summary", ""), "backslash trap is fixed"));
    proc_prep_free(&prep);
    struct proc_outcome o;
    assert_int_equal(proc_execute(&x, &req, NULL, &o), 0);
    assert_int_equal(o.end, PROC_SUCCEEDED);
    proc_outcome_free(&o);
    for (size_t i = 0; i < 3; i++) {
        const char *f = world_file(&fx->w, fx->w.h[i].name, W_COMPOSE);
        struct compose_command *c = NULL;
        struct compose_error ce;
        assert_int_equal(compose_read(f, strlen(f), &c, &ce), COMPOSE_OK);
        assert_false(c->blocking);
        assert_int_equal(c->n_retry_join, 4);
        assert_string_equal(c->retry_join[3], "10.0.0.4");
        compose_command_free(c);
    }
}

static void
test_precheck_failures_remove(void **state)
{
    struct fx *fx = *state;
    /* quorum: with s2 down, removing s3 leaves one alive voter of two */
    H(fx, "s2")->running = 0;
    struct proc_request rm = {.type = "node-remove", .node = "s3", .node_gone = 1};
    cJSON *pcs = prepare_fails(fx, &rm);
    assert_failed_check(pcs, "quorum", NULL, "2 are needed");
    cJSON_Delete(pcs);
    H(fx, "s2")->running = 1;
    /* not a server */
    rm.node = "n4";
    rm.node_gone = 0;
    pcs = prepare_fails(fx, &rm);
    assert_failed_check(pcs, "server", "n4", "not a server");
    cJSON_Delete(pcs);
    /* a dead-server removal of a host where Consul still runs */
    rm.node = "s3";
    rm.node_gone = 1;
    pcs = prepare_fails(fx, &rm);
    assert_failed_check(pcs, "node_gone", "s3", "normal node-remove");
    cJSON_Delete(pcs);
}

static void
test_last_server(void **state)
{
    struct fx *fx = *state;
    /* one server left: it cannot be removed */
    H(fx, "s2")->in_raft = H(fx, "s3")->in_raft = 0;
    H(fx, "s2")->member = H(fx, "s3")->member = 0;
    struct proc_request rm = {.type = "node-remove", .node = "s1"};
    cJSON *pcs = prepare_fails(fx, &rm);
    assert_failed_check(pcs, "quorum", NULL, "last server");
    cJSON_Delete(pcs);
}

/* ---------------------------------------------------------------- failures and rollback */

static void
assert_rolled_back(struct fx *fx, int64_t job)
{
    assert_files_unchanged(fx);
    for (size_t i = 0; i < 3; i++) {
        struct w_host *h = &fx->w.h[i];
        assert_true(h->running && h->in_raft && h->voter);
    }
    struct w_host *n4 = H(fx, "n4");
    assert_false(n4->running);
    assert_false(n4->in_raft);
    /* what the job wrote on the new node is kept aside, named after the job */
    char aside[300];
    snprintf(aside, sizeof(aside), "%s.rolled-back-%lld", W_COMPOSE, (long long)job);
    (void)aside;
}

static void
test_failure_midway_rolls_back(void **state)
{
    struct fx *fx = *state;
    /* s3's file cannot be written: s1 and s2 were already edited, n4 runs; when the rollback
     * makes it leave, Docker brings it back before down, so it must be forced out */
    H(fx, "s3")->write_fail = 1;
    H(fx, "n4")->rejoins = 1;
    struct proc_request req = {.type = "node-add", .node = "n4"};
    int64_t job = new_job(fx, "node-add", "n4", "running");
    struct proc_ctx x = ctx_of(fx, job);
    struct proc_outcome o;
    assert_int_equal(proc_execute(&x, &req, NULL, &o), 0);
    assert_int_equal(o.end, PROC_FAILED);
    assert_true(o.changed);
    assert_non_null(strstr(json_get_str(o.result, "error", ""), "permission denied"));
    proc_outcome_free(&o);
    assert_string_not_equal(world_file(&fx->w, "s1", W_COMPOSE), fx->orig[0]);
    struct steps st = steps_of(fx, job);
    assert_string_equal(st.v[9].state, "failed");
    assert_string_equal(st.v[10].state, "skipped");
    H(fx, "s3")->write_fail = 0;
    assert_int_equal(proc_rollback(&x, job, &o), 0);
    if (o.end != PROC_SUCCEEDED) {
        fail_msg("rollback failed: %s", json_get_str(o.result, "error", "?"));
    }
    proc_outcome_free(&o);
    assert_rolled_back(fx, job);
    assert_true(world_ran(&fx->w, "n4", "consul leave"));
    assert_true(world_ran(&fx->w, "n4", "down"));
    assert_true(world_ran(&fx->w, "s1", "force-leave 'n4'"));
    char aside[300];
    snprintf(aside, sizeof(aside), "%s.rolled-back-%lld", W_COMPOSE, (long long)job);
    assert_non_null(world_file(&fx->w, "n4", aside));
    /* the rollback steps follow the job's own */
    st = steps_of(fx, job);
    assert_true(st.n > 11);
    assert_non_null(strstr(st.v[st.n - 1].title, "Gate: 3 servers"));
    assert_string_equal(st.v[st.n - 1].state, "succeeded");
    assert_int_equal(sql_int(fx, "SELECT count(*) FROM audit_log WHERE action = 'job.step' AND "
                                 "outcome = 'error'"),
                     1);
}

static void
test_full_restart_failure_rolls_back(void **state)
{
    struct fx *fx = *state;
    /* up -d fails on s2 after every server went down and its file was edited */
    struct w_host *s2 = H(fx, "s2");
    snprintf(s2->fail_on, sizeof(s2->fail_on), "up -d");
    struct proc_request req = {.type = "node-add", .node = "n4", .strategy = "full-restart"};
    int64_t job = new_job(fx, "node-add", "n4", "running");
    struct proc_ctx x = ctx_of(fx, job);
    struct proc_outcome o;
    assert_int_equal(proc_execute(&x, &req, NULL, &o), 0);
    assert_int_equal(o.end, PROC_FAILED);
    assert_non_null(strstr(json_get_str(o.result, "error", ""), "exited with status 1"));
    proc_outcome_free(&o);
    s2->fail_on[0] = '\0';
    assert_int_equal(proc_rollback(&x, job, &o), 0);
    if (o.end != PROC_SUCCEEDED) {
        fail_msg("rollback failed: %s", json_get_str(o.result, "error", "?"));
    }
    proc_outcome_free(&o);
    assert_rolled_back(fx, job);
}

static void
test_cancel_midway_rolls_back(void **state)
{
    struct fx *fx = *state;
    /* a person cancels while n4's up -d runs: the command is killed, the job stops */
    struct w_host *n4 = H(fx, "n4");
    snprintf(n4->cancel_on, sizeof(n4->cancel_on), "up -d");
    struct proc_request req = {.type = "node-add", .node = "n4"};
    int64_t job = new_job(fx, "node-add", "n4", "running");
    struct proc_ctx x = ctx_of(fx, job);
    struct proc_outcome o;
    assert_int_equal(proc_execute(&x, &req, NULL, &o), 0);
    assert_int_equal(o.end, PROC_CANCELLED);
    assert_true(o.changed);
    proc_outcome_free(&o);
    struct steps st = steps_of(fx, job);
    assert_string_equal(st.v[5].state, "cancelled");
    assert_string_equal(st.v[6].state, "cancelled");
    assert_string_equal(st.v[10].state, "cancelled");
    atomic_store(&fx->abort, 0);
    assert_int_equal(proc_rollback(&x, job, &o), 0);
    assert_int_equal(o.end, PROC_SUCCEEDED);
    proc_outcome_free(&o);
    assert_rolled_back(fx, job);
}

/* A cancel (or a stop) while the run does its prechecks again: their SSH work ends and reads
 * as a failed precheck, but the job ends cancelled (interrupted), not failed, and nothing
 * ran. */
static void
test_cancel_during_prechecks(void **state)
{
    struct fx *fx = *state;
    struct w_host *n4 = H(fx, "n4");
    struct proc_request req = {.type = "node-add", .node = "n4"};
    for (int stop = 0; stop <= 1; stop++) {
        snprintf(n4->cancel_on, sizeof(n4->cancel_on), "docker version");
        n4->cancel_value = stop ? PROC_ABORT_STOP : 0;
        atomic_store(&fx->abort, 0);
        int64_t job = new_job(fx, "node-add", "n4", "running");
        struct proc_ctx x = ctx_of(fx, job);
        struct proc_outcome o;
        assert_int_equal(proc_execute(&x, &req, NULL, &o), 0);
        assert_int_equal(o.end, stop ? PROC_STOPPED : PROC_CANCELLED);
        assert_false(o.changed);
        assert_string_equal(json_get_str(o.result, "error", ""),
                            stop ? "consulate stopped during the prechecks; nothing was changed"
                                 : "cancelled during the prechecks; nothing was changed");
        proc_outcome_free(&o);
        assert_int_equal(steps_of(fx, job).n, 0);
    }
    n4->cancel_on[0] = '\0';
    n4->cancel_value = 0;
    atomic_store(&fx->abort, 0);
}

static void
test_interrupted_then_rollback_job(void **state)
{
    struct fx *fx = *state;
    /* consulate stops in the middle of a rolling removal of s3 (after its leave) */
    struct w_host *s3 = H(fx, "s3");
    snprintf(s3->cancel_on, sizeof(s3->cancel_on), "down");
    s3->cancel_value = PROC_ABORT_STOP;
    struct proc_request req = {.type = "node-remove", .node = "s3"};
    int64_t job = new_job(fx, "node-remove", "s3", "running");
    struct proc_ctx x = ctx_of(fx, job);
    struct proc_outcome o;
    assert_int_equal(proc_execute(&x, &req, NULL, &o), 0);
    assert_int_equal(o.end, PROC_STOPPED);
    proc_outcome_free(&o);
    atomic_store(&fx->abort, 0);
    assert_false(s3->in_raft);
    struct store_job_change ch = {.state = "interrupted", .cancel_requested = -1};
    assert_int_equal(store_job_update(fx->s, job, NULL, &ch), STORE_OK);
    /* a rollback job of its own: planned (a dry run), then run */
    struct proc_request rb = {.type = "rollback", .target = job};
    int64_t rj = new_job(fx, "rollback", "s3", "queued");
    struct proc_ctx rx = ctx_of(fx, rj);
    int before = fx->w.mutations;
    struct proc_prep prep;
    assert_int_equal(proc_prepare(&rx, &rb, &prep), 0);
    if (prep.failed) {
        fail_msg("prepare failed: %s", prep.error);
    }
    assert_int_equal(fx->w.mutations, before);
    char *approved = json_print(prep.plan);
    assert_non_null(strstr(approved, "Return s3 to running"));
    proc_prep_free(&prep);
    assert_int_equal(proc_execute(&rx, &rb, approved, &o), 0);
    free(approved);
    if (o.end != PROC_SUCCEEDED) {
        fail_msg("rollback job failed: %s", json_get_str(o.result, "error", "?"));
    }
    proc_outcome_free(&o);
    assert_files_unchanged(fx);
    assert_true(s3->running && s3->in_raft);
    /* a job that succeeded is not rolled back */
    fx->w.mutations = 0;
    struct proc_request rb2 = {.type = "rollback", .target = rj};
    cJSON *pcs = prepare_fails(fx, &rb2);
    assert_failed_check(pcs, "target", NULL, "only a failed or interrupted job");
    cJSON_Delete(pcs);
}

static void
test_plan_changed_since_approval(void **state)
{
    struct fx *fx = *state;
    struct proc_request req = {.type = "node-add", .node = "n4"};
    int64_t job = new_job(fx, "node-add", "n4", "awaiting_approval");
    struct proc_ctx x = ctx_of(fx, job);
    struct proc_prep prep;
    assert_int_equal(proc_prepare(&x, &req, &prep), 0);
    char *approved = json_print(prep.plan);
    proc_prep_free(&prep);
    /* someone edits s2's file after the approval */
    char *edited = xasprintf("%s# edited by hand\n", fx->orig[1]);
    world_file_set(&fx->w, "s2", W_COMPOSE, edited);
    free(fx->orig[1]);
    fx->orig[1] = edited;
    struct proc_outcome o;
    assert_int_equal(proc_execute(&x, &req, approved, &o), 0);
    free(approved);
    assert_int_equal(o.end, PROC_PLAN_CHANGED);
    assert_false(o.changed);
    assert_non_null(strstr(json_get_str(o.result, "error", ""), "s2"));
    proc_outcome_free(&o);
    assert_int_equal(fx->w.mutations, 0);
    assert_files_unchanged(fx);
}

static void
test_data_dir_moved_aside(void **state)
{
    struct fx *fx = *state;
    world_file_set(&fx->w, "n4", W_DATA "/raft/raft.db", "old raft state");
    struct proc_request req = {.type = "node-add", .node = "n4"};
    int64_t job = new_job(fx, "node-add", "n4", "queued");
    struct proc_ctx x = ctx_of(fx, job);
    struct proc_outcome o;
    assert_int_equal(proc_execute(&x, &req, NULL, &o), 0);
    assert_int_equal(o.end, PROC_SUCCEEDED);
    proc_outcome_free(&o);
    char moved[300];
    snprintf(moved, sizeof(moved), "%s.bak-%lld/raft/raft.db", W_DATA, (long long)job);
    assert_string_equal(world_file(&fx->w, "n4", moved), "old raft state");
    assert_null(world_file(&fx->w, "n4", W_DATA "/raft/raft.db"));
    struct steps st = steps_of(fx, job);
    assert_non_null(strstr(st.v[3].title, "Move the old data dir"));
    char want[400];
    snprintf(want, sizeof(want), "mv '%s' '%s.bak-%lld'", W_DATA, W_DATA, (long long)job);
    assert_string_equal(st.v[3].command, want);
}

/* ---------------------------------------------------------------- diagnose */

static const cJSON *
finding(const cJSON *result, const char *code)
{
    const cJSON *f;
    cJSON_ArrayForEach(f, cJSON_GetObjectItem(result, "findings"))
    {
        if (strcmp(json_get_str(f, "code", ""), code) == 0) {
            return f;
        }
    }
    return NULL;
}

static void
test_diagnose(void **state)
{
    struct fx *fx = *state;
    /* n4 was started with the hostname of s2: Consul refuses it */
    struct w_host *n4 = H(fx, "n4");
    snprintf(n4->hostname, sizeof(n4->hostname), "s2");
    char *t = world_compose("10.0.0.4", (const char *[]){"10.0.0.1", "10.0.0.4"}, 2);
    world_file_set(&fx->w, "n4", W_COMPOSE, t);
    free(t);
    struct sh_cmd up;
    sh_cmd_init(&up);
    struct store_node nn;
    assert_int_equal(store_node_get(fx->s, "n4", &nn), STORE_OK);
    int status;
    struct ssh_error err;
    struct sh_arg argv[] = {SH_W("docker-compose"), SH_W("-f"), SH_V(W_COMPOSE), SH_W("up"),
                            SH_W("-d")};
    assert_int_equal(sh_cmd_add(&up, argv, 5, NULL), SH_OK);
    assert_int_equal(fx->run.exec(fx->run.ctx, &nn, &up, 0, NULL, NULL, NULL, NULL, &status, &err),
                     SSH_OK);
    sh_cmd_free(&up);
    store_node_clear(&nn);
    fx->w.mutations = 0;
    struct proc_request req = {.type = "diagnose", .node = "n4"};
    int64_t job = new_job(fx, "diagnose", "n4", "running");
    struct proc_ctx x = ctx_of(fx, job);
    struct proc_outcome o;
    assert_int_equal(proc_execute(&x, &req, NULL, &o), 0);
    assert_int_equal(o.end, PROC_SUCCEEDED);
    assert_false(o.changed);
    assert_int_equal(fx->w.mutations, 0);
    const cJSON *f = finding(o.result, "node_name_conflict");
    assert_non_null(f);
    const char *m = json_get_str(f, "message", "");
    assert_non_null(strstr(m, "n4 (10.0.0.4)"));
    assert_non_null(strstr(m, "10.0.0.2 (inventory node s2)"));
    assert_non_null(strstr(m, "'s2'"));
    assert_non_null(strstr(m, "docker-compose down"));
    assert_non_null(finding(o.result, "not_in_raft"));
    assert_null(finding(o.result, "consul_not_running"));
    proc_outcome_free(&o);
    /* no pending entries for read-only steps; one outcome each */
    assert_int_equal(sql_int(fx, "SELECT count(*) FROM audit_log WHERE action = 'job.step' AND "
                                 "outcome = 'pending'"),
                     0);
    assert_int_equal(sql_int(fx, "SELECT count(*) FROM audit_log WHERE action = 'job.step'"), 5);
    /* the compose file is in the log with its secret masked */
    assert_true(sql_int(fx, "SELECT count(*) FROM job_log WHERE text LIKE '%-encrypt=***%'") > 0);
    assert_int_equal(sql_int(fx, "SELECT count(*) FROM job_log WHERE text LIKE "
                                 "'%c2VjcmV0LWtleS0xMjM0NTY=%'"),
                     0);

    /* the trap, explained with its fix; a stopped container */
    char trap[512];
    snprintf(trap, sizeof(trap), TRAP, 1);
    world_file_set(&fx->w, "s1", W_COMPOSE, trap);
    H(fx, "s1")->running = 0;
    req.node = "s1";
    job = new_job(fx, "diagnose", "s1", "running");
    x = ctx_of(fx, job);
    assert_int_equal(proc_execute(&x, &req, NULL, &o), 0);
    assert_int_equal(o.end, PROC_SUCCEEDED);
    f = finding(o.result, "backslash_trap");
    assert_non_null(f);
    assert_non_null(strstr(json_get_str(f, "fix", ""), "+    command: \"agent"));
    assert_non_null(finding(o.result, "consul_not_running"));
    proc_outcome_free(&o);

    /* an agent that exits on its command line, as Consul 1.9 (the seed's) and 1.10+ say it */
    static const char *const exits[] = {
        "==> config: Unknown extra arguments: [ -retry-join=10.0.0.2]\n",
        "==> Unexpected extra arguments: [ -retry-join=10.0.0.2]\n"};
    for (size_t i = 0; i < sizeof(exits) / sizeof(exits[0]); i++) {
        char *plain = world_compose("10.0.0.3", (const char *[]){"10.0.0.1", "10.0.0.3"}, 2);
        world_file_set(&fx->w, "s3", W_COMPOSE, plain);
        free(plain);
        snprintf(H(fx, "s3")->log, sizeof(H(fx, "s3")->log), "%s", exits[i]);
        req.node = "s3";
        job = new_job(fx, "diagnose", "s3", "running");
        x = ctx_of(fx, job);
        assert_int_equal(proc_execute(&x, &req, NULL, &o), 0);
        f = finding(o.result, "extra_arguments");
        assert_non_null(f);
        assert_non_null(strstr(json_get_str(f, "message", ""), "look at the command"));
        assert_null(finding(o.result, "backslash_trap"));
        proc_outcome_free(&o);
    }
}

/* ---------------------------------------------------------------- pure parts */

static const char PEERS[] =
    "Node     ID              Address         State     Voter  RaftProtocol\n"
    "alice    127.0.0.1:8300  127.0.0.1:8300  follower  true   2\n"
    "bob      127.0.0.2:8300  127.0.0.2:8300  leader    true   3\n"
    "carol    127.0.0.3:8300  127.0.0.3:8300  follower  true   2\n";

static void
test_gate_pure(void **state)
{
    (void)state;
    struct gate_peer *p = NULL;
    size_t n = 0;
    char why[300];
    assert_int_equal(gate_parse_list_peers(PEERS, &p, &n, why, sizeof(why)), 0);
    assert_int_equal(n, 3);
    assert_string_equal(p[1].node, "bob");
    assert_string_equal(p[1].state, "leader");
    assert_string_equal(p[2].address, "127.0.0.3:8300");
    assert_true(p[0].voter);
    free(p);
    assert_int_equal(gate_parse_list_peers("Error: No cluster leader\n", &p, &n, why, sizeof(why)),
                     -1);
    assert_non_null(strstr(why, "header"));
    assert_int_equal(gate_parse_list_peers("", &p, &n, why, sizeof(why)), -1);
    assert_int_equal(gate_parse_list_peers("Node ID Address State Voter RaftProtocol\nx y z w "
                                           "maybe 3\n",
                                           &p, &n, why, sizeof(why)),
                     -1);
    /* the model: three voters, bob leads */
    const char *raft = "{\"Servers\":[{\"ID\":\"a\",\"Node\":\"alice\",\"Address\":"
                       "\"127.0.0.1:8300\",\"Leader\":false,\"Voter\":true},{\"ID\":\"b\",\"Node\":"
                       "\"bob\",\"Address\":\"127.0.0.2:8300\",\"Leader\":true,\"Voter\":true},"
                       "{\"ID\":\"c\",\"Node\":\"carol\",\"Address\":\"127.0.0.3:8300\","
                       "\"Leader\":false,\"Voter\":true}]}";
    struct cluster_input in = {.reachable = 1, .raft_json = raft, .leader_addr = "127.0.0.2:8300"};
    struct cluster_model *m = NULL;
    struct cluster_error ce;
    assert_int_equal(cluster_model_build(&in, &m, &ce), CLUSTER_OK);
    const char *addrs[] = {"127.0.0.1", "127.0.0.2", "127.0.0.3"};
    const char *names[] = {"a", "b", "c"};
    struct gate_expect e = {addrs, names, 3, NULL};
    assert_int_equal(gate_check_model(m, &e, why, sizeof(why)), 1);
    e.n = 2; /* carol is not expected */
    assert_int_equal(gate_check_model(m, &e, why, sizeof(why)), 0);
    assert_non_null(strstr(why, "carol"));
    const char *more[] = {"127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"};
    const char *more_names[] = {"a", "b", "c", "d"};
    struct gate_expect e4 = {more, more_names, 4, NULL};
    assert_int_equal(gate_check_model(m, &e4, why, sizeof(why)), 0);
    assert_non_null(strstr(why, "d (127.0.0.4) is not in raft"));
    assert_int_equal(gate_parse_list_peers(PEERS, &p, &n, why, sizeof(why)), 0);
    assert_int_equal(gate_compare_peers(m, p, n, why, sizeof(why)), 1);
    snprintf(p[1].state, sizeof(p[1].state), "follower");
    snprintf(p[0].state, sizeof(p[0].state), "leader");
    assert_int_equal(gate_compare_peers(m, p, n, why, sizeof(why)), 0);
    assert_non_null(strstr(why, "alice as the leader"));
    assert_int_equal(gate_compare_peers(m, p, 2, why, sizeof(why)), 0);
    free(p);
    cluster_model_free(m);
    /* a non-voter fails the gate */
    const char *raft2 =
        "{\"Servers\":[{\"ID\":\"a\",\"Node\":\"alice\",\"Address\":"
        "\"127.0.0.1:8300\",\"Leader\":true,\"Voter\":true},{\"ID\":\"b\",\"Node\":"
        "\"bob\",\"Address\":\"127.0.0.2:8300\",\"Leader\":false,\"Voter\":false}]}";
    in.raft_json = raft2;
    assert_int_equal(cluster_model_build(&in, &m, &ce), CLUSTER_OK);
    e.n = 2;
    assert_int_equal(gate_check_model(m, &e, why, sizeof(why)), 0);
    assert_non_null(strstr(why, "not a voter"));
    cluster_model_free(m);
    assert_int_equal(gate_check_model(NULL, &e, why, sizeof(why)), 0);
}

static void
test_gate_times_out(void **state)
{
    struct fx *fx = *state;
    /* s3 stays down: a gate expecting it never passes, and says why */
    H(fx, "s3")->running = 0;
    int64_t job = new_job(fx, "node-add", "n4", "running");
    struct proc_ctx x = ctx_of(fx, job);
    x.lim.gate_timeout_ms = 5000;
    const char *addrs[] = {"10.0.0.1", "10.0.0.2", "10.0.0.3"};
    const char *names[] = {"s1", "s2", "s3"};
    struct gate_expect e = {addrs, names, 3, NULL};
    cJSON *rep = NULL;
    int64_t t0 = fx->w.now;
    assert_int_equal(gate_wait(&x, &e, 5000, &rep), GATE_TIMEOUT);
    assert_true(fx->w.now - t0 >= 5000 && fx->w.now - t0 < 6000);
    assert_false(json_get_bool(rep, "passed", 1));
    assert_non_null(strstr(json_get_str(rep, "reason", ""), "s3"));
    cJSON_Delete(rep);
}

static void
test_pure_helpers(void **state)
{
    (void)state;
    assert_true(proc_version_cmp("19.03.15", "19.03") >= 0);
    assert_true(proc_version_cmp("20.10.24", "19.03") > 0);
    assert_true(proc_version_cmp("19.3", "19.03") == 0);
    assert_true(proc_version_cmp("18.09.9", "19.03") < 0);
    assert_true(proc_version_cmp("v2.20.2", "1.27") > 0);
    assert_true(proc_version_cmp("1.26.2", "1.27") < 0);
    assert_true(proc_version_cmp("1.27.0-rc1", "1.27") == 0);
    assert_int_equal(proc_version_cmp("docker: not found", "19.03"), -2);
    assert_int_equal(proc_version_cmp("", "19.03"), -2);
    char *r = proc_redact("-encrypt=abc= -retry-join=1.2.3.4 CONSUL_HTTP_TOKEN: \"s3cr3t\"\n"
                          "acl_token=xyz,next password:hunter2 -encrypt \"k\"",
                          110);
    assert_null(strstr(r, "abc="));
    assert_null(strstr(r, "s3cr3t"));
    assert_null(strstr(r, "xyz"));
    assert_null(strstr(r, "hunter2"));
    assert_non_null(strstr(r, "-retry-join=1.2.3.4"));
    assert_non_null(strstr(r, "-encrypt=***"));
    free(r);
}

/* The prechecks of the nodes run side by side, yet they, the log lines and the first error
 * read as if they had run one after another, in the order of the nodes. */
static int
precheck_lines_cb(const struct store_log_line *l, void *ctx)
{
    struct buf *b = ctx;
    if (strncmp(l->text, "precheck ", 9) == 0) {
        buf_printf(b, "%s|%s\n", l->node, l->text);
    }
    return 0;
}

static void
test_prechecks_in_node_order(void **state)
{
    struct fx *fx = *state;
    struct proc_request req = {.type = "node-add", .node = "n4"};
    /* two failures on different nodes: the first in node order is the error */
    world_file_set(&fx->w, "s3", W_COMPOSE, "services: [not a map\n");
    snprintf(H(fx, "n4")->docker, sizeof(H(fx, "n4")->docker), "18.09.7");
    for (int round = 0; round < 3; round++) {
        int64_t job = new_job(fx, "node-add", "n4", "failed");
        struct proc_ctx x = ctx_of(fx, job);
        struct proc_prep prep;
        assert_int_equal(proc_prepare(&x, &req, &prep), 0);
        assert_true(prep.failed);
        assert_non_null(strstr(prep.error, "s3"));
        static const char *const want[][2] = {
            {"cluster_healthy", ""}, {"new_node", "n4"},        {"ssh", "s1"},
            {"compose_file", "s1"},  {"ssh", "s2"},             {"compose_file", "s2"},
            {"ssh", "s3"},           {"compose_file", "s3"},    {"ssh", "n4"},
            {"docker_version", "n4"}, {"compose_version", "n4"}, {"hostname", "n4"},
            {"consul_stopped", "n4"}, {"data_dir", "n4"},        {"ports", "s1"},
            {"ports", "s2"},         {"ports", "s3"}};
        assert_int_equal(cJSON_GetArraySize(prep.prechecks), ARRAY_LEN(want));
        struct buf expect;
        buf_init(&expect, 1 << 16);
        for (size_t i = 0; i < ARRAY_LEN(want); i++) {
            const cJSON *pc = cJSON_GetArrayItem(prep.prechecks, (int)i);
            assert_string_equal(json_get_str(pc, "name", ""), want[i][0]);
            const cJSON *nd = cJSON_GetObjectItem(pc, "node");
            assert_string_equal(cJSON_IsString(nd) ? nd->valuestring : "", want[i][1]);
            int ok = json_get_bool(pc, "ok", 0), blocking = json_get_bool(pc, "blocking", 0);
            buf_printf(&expect, "%s|precheck %s: %s: %s\n", want[i][1], want[i][0],
                       ok ? "ok" : (blocking ? "FAILED" : "warning"),
                       json_get_str(pc, "message", ""));
        }
        struct buf got;
        buf_init(&got, 1 << 16);
        assert_int_equal(store_job_log_read(fx->s, job, 0, 0, precheck_lines_cb, &got), STORE_OK);
        assert_string_equal(got.data ? got.data : "", expect.data);
        buf_free(&got);
        buf_free(&expect);
        proc_prep_free(&prep);
    }
}

/* The ports of every server in one remote command, as long as the servers are many; an
 * address that is not one refuses the command. */
static void
test_ports_command(void **state)
{
    (void)state;
    static const int ports[] = PROC_PORTS;
    char addr[64][32];
    const char *hosts[64];
    for (int i = 0; i < 64; i++) {
        snprintf(addr[i], sizeof(addr[i]), "10.200.%d.%d", i, 250 - i);
        hosts[i] = addr[i];
    }
    struct sh_cmd c;
    assert_int_equal(cmd_ports_of(&c, hosts, 64, ports, ARRAY_LEN(ports)), 0);
    const char *t = sh_cmd_text(&c);
    const char *head = "timeout 3 bash --norc --noprofile -c '</dev/tcp/10.200.0.250/8500 && ";
    if (strncmp(t, head, strlen(head)) != 0) {
        fail_msg("the ports command starts '%.100s'", t);
    }
    assert_non_null(strstr(t, " && </dev/tcp/10.200.63.187/8301'"));
    size_t checks = 0;
    for (const char *p = t; (p = strstr(p, "</dev/tcp/")); p++) {
        checks++;
    }
    assert_int_equal(checks, 64 * ARRAY_LEN(ports));
    sh_cmd_free(&c);
    const char *bad[] = {"10.0.0.1", "10.0.0.2;reboot"};
    assert_int_equal(cmd_ports_of(&c, bad, 2, ports, ARRAY_LEN(ports)), -1);
    const char *bad2[] = {"$(id)"};
    assert_int_equal(cmd_ports_of(&c, bad2, 1, ports, 1), -1);
}

/* Hostile values reach the remote shell only as single-quoted words. */
static void
test_hostile_paths_quoted(void **state)
{
    struct fx *fx = *state;
    struct store_node n;
    assert_int_equal(store_node_get(fx->s, "n4", &n), STORE_OK);
    free(n.compose_dir);
    n.compose_dir = xstrdup("/mnt/x'; rm -rf / #$(id)`id`");
    free(n.data_dir);
    n.data_dir = xstrdup("/mnt/d\nrm -rf /");
    assert_int_equal(store_node_update(fx->s, &n, 0, 5), STORE_OK);
    store_node_clear(&n);
    world_file_set(&fx->w, "n4", "/mnt/d\nrm -rf /", NULL);
    struct proc_request req = {.type = "node-add", .node = "n4"};
    int64_t job = new_job(fx, "node-add", "n4", "queued");
    struct proc_ctx x = ctx_of(fx, job);
    struct proc_prep prep;
    assert_int_equal(proc_prepare(&x, &req, &prep), 0);
    if (prep.failed) {
        fail_msg("prepare failed: %s", prep.error);
    }
    char *t = json_print(cJSON_GetObjectItem(prep.plan, "steps"));
    assert_non_null(strstr(t, "mkdir -p '/mnt/x'\\\\''; rm -rf / #$(id)`id`'"));
    free(t);
    proc_prep_free(&prep);
    assert_true(world_ran(&fx->w, "n4", "test -d '/mnt/d\nrm -rf /'"));
}

int
main(void)
{
    log_set_quiet(1);
#define T(f) cmocka_unit_test_setup_teardown(f, fx_setup, fx_teardown)
    const struct CMUnitTest tests[] = {
        T(test_add_rolling),
        T(test_add_full_restart),
        T(test_remove_rolling_and_identity),
        T(test_remove_rejoined_after_leave),
        T(test_remove_full_restart),
        T(test_remove_dead_server),
        T(test_remove_peer_race),
        T(test_remove_leave_fails),
        T(test_remove_dead_server_force_leave_suffices),
        T(test_precheck_failures_add),
        T(test_prechecks_in_node_order),
        T(test_precheck_host_keys),
        T(test_precheck_compose_and_cluster),
        T(test_trap_refused_then_fixed),
        T(test_precheck_failures_remove),
        T(test_last_server),
        T(test_failure_midway_rolls_back),
        T(test_full_restart_failure_rolls_back),
        T(test_cancel_during_prechecks),
        T(test_cancel_midway_rolls_back),
        T(test_interrupted_then_rollback_job),
        T(test_plan_changed_since_approval),
        T(test_data_dir_moved_aside),
        T(test_diagnose),
        cmocka_unit_test(test_gate_pure),
        T(test_gate_times_out),
        cmocka_unit_test(test_pure_helpers),
        cmocka_unit_test(test_ports_command),
        T(test_hostile_paths_quoted),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
