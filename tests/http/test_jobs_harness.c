/* test_jobs_harness: the job engine end to end against the fake-node harness (tests/nodes):
 * 4 Consul servers and a spare, each a real OpenSSH sshd whose docker and docker-compose read
 * the host's real compose file as docker-compose and Consul do and drive the simulator. Only
 * the HTTP API is used: an operator requests, an approver approves.
 *
 *   - node-add consul-5 rolling, then node-remove rolling: after the add every compose file is
 *     byte-identical to tests/fixtures/jobs/added/, 5 voters and one leader; after the remove
 *     every file is byte-identical to tests/fixtures/jobs/start/ and consul-5's file is kept
 *     as the backup the log names. The same with full-restart, with the leaderless seconds;
 *   - every precheck failure the harness can cause refuses before anything changes (sshd
 *     stopped, key not pinned, key changed, old docker, old docker-compose, a hostname that is
 *     a member's name, a missing compose file, a port the new node cannot reach, a removal
 *     below quorum, the last server): the job is created failed with every precheck listed,
 *     and a snapshot (every file under every host's root, `docker ps -a` on every host, the
 *     simulator's raft) is the same after;
 *   - a step failing midway rolls back: files byte for byte, containers as they ran (the
 *     agents' retry-join too), 4 voters, state rolled_back, job.step errors in the audit;
 *   - node-remove of a dead server: force-leave on a healthy one, its entries removed;
 *   - self-approval is 403 and audited; every state change is in GET /api/audit.
 *
 * The tests share one harness and one consulate in order; reset() undoes every fault after
 * each. Most of the time goes to the prechecks (a few seconds per request: every remote
 * command of a dry run, one after another), not to the simulator (speed 20).
 *
 * Needs CONSULATE_BIN, CONSUL_SIM_BIN, CONSULATE_SRC; the hosts use the production ports, so
 * it runs in its own network namespace (build/tests/netns, as scripts/run-tests.sh does). */
#include <dirent.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <cjson/cJSON.h>

#include "../nodes/harness.h"
#include "harness.h"
#include "simctl.h"
#include "util.h"

#define N_HOSTS 5
#define SPEED 20

static struct nodes *H;
static struct srv *S;
static struct client *ADMIN, *OP, *ALICE, *BOB;
static char FIXTURES[512];

/* ---------------------------------------------------------------- setup */

static int
add_users(void)
{
    ADMIN = srv_login(S, "admin", S->admin_pw);
    if (!ADMIN || srv_add_user(S, "olga", "operator", "operator-pw-1") != 201 ||
        srv_add_user(S, "alice", "approver", "approver-pw-1") != 201 ||
        srv_add_user(S, "bob", "approver", "approver-pw-2") != 201) {
        return -1;
    }
    OP = srv_login(S, "olga", "operator-pw-1");
    ALICE = srv_login(S, "alice", "approver-pw-1");
    BOB = srv_login(S, "bob", "approver-pw-2");
    return OP && ALICE && BOB ? 0 : -1;
}

/* Pins n's current host key through the API; the HTTP status. */
static long
trust(const struct nodes_node *n)
{
    char path[128], body[200];
    snprintf(path, sizeof(path), "/api/nodes/%s/trust-hostkey", n->name);
    snprintf(body, sizeof(body), "{\"fingerprint\":\"%s\"}", n->host_key.fingerprint);
    struct resp r = client_req(ADMIN, "POST", path, body);
    long st = r.status;
    resp_free(&r);
    return st;
}

/* Every host into the inventory (the harness's own POST /api/nodes bodies), keys pinned. */
static int
add_inventory(void)
{
    char *text = nodes_inventory_json(H);
    cJSON *inv = cJSON_Parse(text);
    free(text);
    const cJSON *n;
    int rc = 0;
    cJSON_ArrayForEach(n, cJSON_GetObjectItemCaseSensitive(inv, "nodes"))
    {
        cJSON *body = cJSON_Duplicate(n, 1);
        cJSON_DeleteItemFromObjectCaseSensitive(body, "host_key");
        char *b = json_print(body);
        cJSON_Delete(body);
        struct resp r = client_req(ADMIN, "POST", "/api/nodes", b);
        free(b);
        if (r.status != 201) {
            fprintf(stderr, "POST /api/nodes: %ld %s\n", r.status, r.body ? r.body : "");
            rc = -1;
        }
        resp_free(&r);
        const struct nodes_node *nn = nodes_get(H, json_get_str(n, "name", ""));
        if (!nn || trust(nn) != 200) {
            rc = -1;
        }
    }
    cJSON_Delete(inv);
    return rc;
}

static int
setup(void **state)
{
    (void)state;
    snprintf(FIXTURES, sizeof(FIXTURES), "%s/tests/fixtures/jobs",
             getenv("CONSULATE_SRC") ? getenv("CONSULATE_SRC") : ".");
    struct nodes_opts o = {.servers = 4, .spares = 1, .speed = SPEED, .seed = 7};
    H = nodes_start(&o);
    if (!H) {
        return -1;
    }
    char *text = nodes_inventory_json(H);
    cJSON *inv = cJSON_Parse(text);
    free(text);
    char *consul = json_print(cJSON_GetObjectItemCaseSensitive(inv, "consul"));
    cJSON_Delete(inv);
    char extra[2048];
    snprintf(extra, sizeof(extra),
             "\"consul\":%.*s,\"connect_timeout_ms\":500},"
             "\"jobs\":{\"gate_timeout_s\":30,\"command_timeout_s\":60}",
             (int)strlen(consul) - 1, consul);
    free(consul);
    S = srv_start(extra);
    if (!S || add_users() != 0 || add_inventory() != 0) {
        return -1;
    }
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    client_free(ADMIN);
    client_free(OP);
    client_free(ALICE);
    client_free(BOB);
    srv_stop(S);
    nodes_stop(H);
    return 0;
}

/* ---------------------------------------------------------------- helpers */

static struct nodes_node *
node(int i)
{
    return &H->node[i - 1];
}

static void
assert_state(const cJSON *job, const char *state)
{
    const char *st = json_get_str(job, "state", "");
    if (strcmp(st, state) != 0) {
        struct buf b;
        buf_init(&b, 1 << 20);
        const cJSON *p;
        cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(job, "prechecks"))
        {
            if (!json_get_bool(p, "ok", 1)) {
                buf_printf(&b, "\n  precheck %s %s: %s", json_get_str(p, "name", ""),
                           json_get_str(p, "node", "-"), json_get_str(p, "message", ""));
            }
        }
        cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(job, "steps"))
        {
            buf_printf(&b, "\n  step %d %s [%s] %s", (int)json_get_num(p, "seq", 0),
                       json_get_str(p, "state", ""), json_get_str(p, "node", ""),
                       json_get_str(p, "title", ""));
        }
        char *res = json_print(cJSON_GetObjectItemCaseSensitive(job, "result"));
        fail_msg("job %lld is %s, not %s: result %.3000s%s", (long long)json_get_num(job, "id", 0),
                 st, state, res, b.data ? b.data : "");
    }
}

static int64_t
job_id(const cJSON *job)
{
    return (int64_t)json_get_num(job, "id", 0);
}

/* GETs the job until it has ended (not awaiting approval, queued or running), at most ms. */
static cJSON *
job_wait(int64_t id, int ms)
{
    char path[64];
    snprintf(path, sizeof(path), "/api/jobs/%lld", (long long)id);
    long long end = sim_now_ms() + ms;
    for (;;) {
        struct resp r = client_req(OP, "GET", path, NULL);
        assert_int_equal(r.status, 200);
        const char *st = json_get_str(r.json, "state", "");
        int done = strcmp(st, "queued") && strcmp(st, "running") && strcmp(st, "awaiting_approval");
        if (done || sim_now_ms() > end) {
            cJSON *j = r.json;
            r.json = NULL;
            resp_free(&r);
            return j;
        }
        resp_free(&r);
        sim_sleep_ms(100);
    }
}

/* POST /api/jobs by the operator; the created job (201 asserted). */
static cJSON *
request(const char *body)
{
    struct resp r = client_req(OP, "POST", "/api/jobs", body);
    if (r.status != 201) {
        fail_msg("POST /api/jobs %s: %ld %s", body, r.status, r.body ? r.body : "");
    }
    cJSON *j = r.json;
    r.json = NULL;
    resp_free(&r);
    return j;
}

static void
approve(struct client *c, int64_t id)
{
    char path[96];
    snprintf(path, sizeof(path), "/api/jobs/%lld/approve", (long long)id);
    struct resp r = client_req(c, "POST", path, "{\"comment\":\"checked the plan\"}");
    assert_int_equal(r.status, 200);
    resp_free(&r);
}

/* ms since the epoch of an RFC 3339 UTC time as the API writes it (…T…:…:…[.mmm]Z). */
static int64_t
rfc3339_ms(const char *t)
{
    struct tm tm = {0};
    int ms = 0;
    const char *rest = strptime(t, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!rest) {
        return 0;
    }
    if (*rest == '.') {
        ms = atoi(rest + 1);
    }
    return (int64_t)timegm(&tm) * 1000 + ms;
}

/* Prints the job's steps with their durations (where the time goes). */
static void
print_steps(const cJSON *job)
{
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(job, "steps"))
    {
        int64_t a = 0, b = 0;
        const char *sa = json_get_str(p, "started_at", "");
        const char *sb = json_get_str(p, "ended_at", "");
        if (*sa && *sb) {
            a = rfc3339_ms(sa);
            b = rfc3339_ms(sb);
        }
        print_message("  %6lld ms %-9s %-9s %s\n", (long long)(b - a), json_get_str(p, "state", ""),
                      json_get_str(p, "node", ""), json_get_str(p, "title", ""));
    }
}

/* Requests, has alice approve and waits for the end; the job. */
static cJSON *
run_job(const char *body)
{
    long long t0 = sim_now_ms();
    cJSON *j = request(body);
    print_message("%s: prechecks and plan %lld ms\n", body, sim_now_ms() - t0);
    assert_state(j, "awaiting_approval");
    int64_t id = job_id(j);
    cJSON_Delete(j);
    t0 = sim_now_ms();
    approve(ALICE, id);
    j = job_wait(id, 120000);
    print_message("job %lld %s in %lld ms\n", (long long)id, json_get_str(j, "state", ""),
                  sim_now_ms() - t0);
    print_steps(j);
    return j;
}

/* The job's log as text (the caller frees). */
static char *
job_log(int64_t id)
{
    char path[96];
    snprintf(path, sizeof(path), "/api/jobs/%lld/log?limit=100000", (long long)id);
    struct resp r = client_req(OP, "GET", path, NULL);
    assert_int_equal(r.status, 200);
    char *t = xstrdup(r.body ? r.body : "");
    resp_free(&r);
    return t;
}

/* The message of precheck name (on node, any when NULL) with ok as given, or NULL. */
static const char *
precheck(const cJSON *job, const char *name, const char *node_name, int ok)
{
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(job, "prechecks"))
    {
        if (strcmp(json_get_str(p, "name", ""), name) == 0 &&
            (!node_name || strcmp(json_get_str(p, "node", ""), node_name) == 0) &&
            json_get_bool(p, "ok", !ok) == ok) {
            return json_get_str(p, "message", "");
        }
    }
    return NULL;
}

/* The simulator's raft: voters in raft, leaders; 1 when it has want voters (all in raft
 * voters) and one leader within ms. */
static int
sim_voters(int want, int ms)
{
    long long end = sim_now_ms() + ms;
    for (;;) {
        cJSON *s = sim_state(H->sim);
        int voters = 0, in_raft = 0;
        const cJSON *v;
        cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(s, "servers"))
        {
            in_raft += json_get_bool(v, "in_raft", 0);
            voters += json_get_bool(v, "in_raft", 0) && json_get_bool(v, "voter", 0);
        }
        int leader = cJSON_IsString(cJSON_GetObjectItemCaseSensitive(s, "leader"));
        cJSON_Delete(s);
        if (voters == want && in_raft == want && leader) {
            return 1;
        }
        if (sim_now_ms() > end) {
            fprintf(stderr, "simulator: %d in raft, %d voters, leader %d (want %d)\n", in_raft,
                    voters, leader, want);
            return 0;
        }
        sim_sleep_ms(50);
    }
}

/* consulate's own view (GET /api/cluster): want voters, one leader, healthy, within ms. */
static int
api_voters(int want, int ms)
{
    long long end = sim_now_ms() + ms;
    for (;;) {
        struct resp r = client_req(OP, "GET", "/api/cluster", NULL);
        int voters = 0, leaders = 0, n = 0;
        const cJSON *s;
        cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(r.json, "servers"))
        {
            n++;
            voters += json_get_bool(s, "voter", 0);
            leaders += json_get_bool(s, "leader", 0);
        }
        int healthy = json_get_bool(r.json, "healthy", 0);
        resp_free(&r);
        if (n == want && voters == want && leaders == 1 && healthy) {
            return 1;
        }
        if (sim_now_ms() > end) {
            fprintf(stderr, "/api/cluster: %d servers, %d voters, %d leaders, healthy %d\n", n,
                    voters, leaders, healthy);
            return 0;
        }
        sim_sleep_ms(100);
    }
}

/* Asserts each host's compose file is the fixture <set>/<name>.yaml, or absent when that
 * fixture does not exist. */
static void
assert_files(const char *set)
{
    for (int i = 1; i <= N_HOSTS; i++) {
        char path[700];
        snprintf(path, sizeof(path), "%s/%s/%s.yaml", FIXTURES, set, node(i)->name);
        char *want = nodes_read_file(path);
        char *now = nodes_read_file(node(i)->compose_file);
        if (!want) {
            if (now) {
                fail_msg("%s has a compose file, expected none (%s)", node(i)->name, set);
            }
        } else if (!now || strcmp(want, now) != 0) {
            fail_msg("%s: the compose file is not %s:\n%s", node(i)->name, path,
                     now ? now : "(absent)");
        }
        free(want);
        free(now);
    }
}

/* ---- snapshots: every file under every host's root (path and bytes), `docker ps -a` on
 * every host, and the simulator's raft and agents. */

static void
walk(struct buf *b, const char *dir, size_t strip)
{
    struct dirent **ents = NULL;
    int n = scandir(dir, &ents, NULL, alphasort);
    for (int i = 0; i < n; i++) {
        const char *e = ents[i]->d_name;
        if (strcmp(e, ".") != 0 && strcmp(e, "..") != 0) {
            char *p = xasprintf("%s/%s", dir, e);
            struct stat st;
            if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
                buf_printf(b, "dir %s\n", p + strip);
                walk(b, p, strip);
            } else if (lstat(p, &st) == 0 && S_ISREG(st.st_mode)) {
                size_t len = 0;
                char *data = file_read_all(p, 64 << 20, &len);
                buf_printf(b, "file %s %zu %o\n", p + strip, len, st.st_mode & 07777);
                if (data) {
                    buf_append(b, data, len);
                    buf_append(b, "\n", 1);
                }
                free(data);
            } else {
                buf_printf(b, "other %s\n", p + strip);
            }
            free(p);
        }
        free(ents[i]);
    }
    free(ents);
}

static char *
snapshot(void)
{
    struct buf b;
    buf_init(&b, 256 << 20);
    for (int i = 1; i <= H->n; i++) {
        const struct nodes_node *n = node(i);
        buf_printf(&b, "== %s\n", n->name);
        char *out = NULL;
        int rc = nodes_run(H, n,
                           "docker ps -a --no-trunc --format '{{.ID}} {{.Names}} {{.State}} "
                           "{{.Image}} {{.Command}}'",
                           &out);
        buf_printf(&b, "docker ps -a (%d):\n%s", rc, out ? out : "");
        free(out);
        /* after docker ps: its first run on a host creates the stand-in's lock file */
        walk(&b, n->root, strlen(n->root));
    }
    cJSON *s = sim_state(H->sim);
    const cJSON *v;
    cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(s, "servers"))
    {
        buf_printf(&b, "sim %s %s running=%d in_raft=%d voter=%d leader=%d starts=%d serf=%s\n",
                   json_get_str(v, "name", ""), json_get_str(v, "ip", ""),
                   json_get_bool(v, "running", 0), json_get_bool(v, "in_raft", 0),
                   json_get_bool(v, "voter", 0), json_get_bool(v, "leader", 0),
                   (int)json_get_num(v, "starts", -1),
                   cJSON_IsString(cJSON_GetObjectItemCaseSensitive(v, "serf_status"))
                       ? json_get_str(v, "serf_status", "")
                       : "?");
    }
    buf_printf(&b, "leader %s\n", json_get_str(s, "leader", "(none)"));
    cJSON_Delete(s);
    return buf_steal(&b);
}

/* The first line where a and b differ, for a failure message (static buffer). */
static const char *
first_diff(const char *a, const char *b)
{
    static char msg[1200];
    size_t i = 0, line_start = 0;
    while (a[i] && a[i] == b[i]) {
        if (a[i] == '\n') {
            line_start = i + 1;
        }
        i++;
    }
    snprintf(msg, sizeof(msg), "before: %.400s\nafter:  %.400s", a + line_start, b + line_start);
    return msg;
}

static void
assert_same_snapshot(const char *before)
{
    char *after = snapshot();
    if (strcmp(before, after) != 0) {
        fail_msg("something changed:\n%s", first_diff(before, after));
    }
    free(after);
}

/* The audit entries of target job id as "action outcome" lines, oldest first. */
static char *
audit_of(int64_t id)
{
    char path[128];
    snprintf(path, sizeof(path), "/api/audit?target=%lld&limit=500", (long long)id);
    struct resp r = client_req(ADMIN, "GET", path, NULL);
    assert_int_equal(r.status, 200);
    struct buf b;
    buf_init(&b, 1 << 20);
    const cJSON *entries = cJSON_GetObjectItemCaseSensitive(r.json, "entries");
    for (int i = cJSON_GetArraySize(entries) - 1; i >= 0; i--) {
        const cJSON *e = cJSON_GetArrayItem(entries, i);
        buf_printf(&b, "%s %s %s\n", json_get_str(e, "action", ""), json_get_str(e, "outcome", ""),
                   json_get_str(e, "actor", ""));
    }
    resp_free(&r);
    char *t = buf_steal(&b);
    return t ? t : xstrdup("");
}

static int
count_lines(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; p && *p;) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        char *line = xstrndup(p, len);
        n += strstr(line, needle) != NULL;
        free(line);
        p = eol ? eol + 1 : NULL;
    }
    return n;
}

/* Every state change of a job that ran is in the audit log. */
static void
assert_audited_run(int64_t id, const char *finish_outcome)
{
    char *a = audit_of(id);
    if (count_lines(a, "job.request pending olga") != 1 ||
        count_lines(a, "job.request ok olga") != 1 || count_lines(a, "job.approve ok alice") != 1 ||
        count_lines(a, "job.start ") != 1 || count_lines(a, "job.step pending") < 1 ||
        count_lines(a, "job.step ok") < 1) {
        fail_msg("job %lld: audit incomplete:\n%s", (long long)id, a);
    }
    char want[64];
    snprintf(want, sizeof(want), "job.finish %s jobs", finish_outcome);
    if (count_lines(a, "job.finish ") != 1 || count_lines(a, want) != 1) {
        fail_msg("job %lld: no '%s':\n%s", (long long)id, want, a);
    }
    free(a);
}

/* Undoes every fault a test may have left (also after a failed assertion), so that the next
 * test starts from the seed's cluster: sshd up with its key pinned, the default versions and
 * hostnames, no command fault, no firewall, every server's file as at the start. */
static bool sshd_down[N_HOSTS + 1];

static int
reset(void **state)
{
    (void)state;
    for (int i = 1; i <= N_HOSTS; i++) {
        struct nodes_node *n = node(i);
        if (sshd_down[i]) {
            nodes_sshd_start(n);
            sshd_down[i] = false;
        }
        nodes_fault_clear(n);
        nodes_set_versions(H, n, "20.10.24+dfsg1", "1.29.2");
        nodes_set_hostname(n, n->name);
        char *fw = xasprintf("%s/bin/timeout", n->root);
        unlink(fw);
        free(fw);
        char path[160];
        snprintf(path, sizeof(path), "/api/nodes/%s", n->name);
        struct resp r = client_req(ADMIN, "GET", path, NULL);
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(r.json, "node"), "host_key");
        int port =
            (int)json_get_num(cJSON_GetObjectItemCaseSensitive(r.json, "node"), "ssh_port", 0);
        bool pinned = strcmp(json_get_str(k, "fingerprint", ""), n->host_key.fingerprint) == 0;
        resp_free(&r);
        if (port != n->sshd.port) {
            char body[64];
            snprintf(body, sizeof(body), "{\"ssh_port\":%d}", n->sshd.port);
            r = client_req(ADMIN, "PATCH", path, body);
            resp_free(&r);
            pinned = false;
        }
        if (!pinned && trust(n) != 200) {
            fprintf(stderr, "reset: cannot pin the key of %s\n", n->name);
            return -1;
        }
        if (i <= 4 && access(n->compose_file, F_OK) != 0) {
            char *fx = xasprintf("%s/start/%s.yaml", FIXTURES, n->name);
            char *text = nodes_read_file(fx);
            int rc = text ? nodes_write_file(n->compose_file, text) : -1;
            free(fx);
            free(text);
            if (rc != 0) {
                return -1;
            }
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- a: add and remove */

static void
test_start_state(void **state)
{
    (void)state;
    assert_files("start");
    assert_true(sim_voters(4, 5000));
    assert_true(api_voters(4, 10000));
}

/* node-add then node-remove of consul-5 with strategy; returns the two jobs' leaderless_s. */
static void
add_remove(const char *strategy, double *add_leaderless, double *remove_leaderless,
           void (*between)(void))
{
    char body[256];
    snprintf(body, sizeof(body),
             "{\"type\":\"node-add\",\"node\":\"consul-5\",\"strategy\":\"%s\",\"reason\":\"five "
             "servers for the new rack\"}",
             strategy);
    cJSON *j = run_job(body);
    assert_state(j, "succeeded");
    int64_t add_id = job_id(j);
    const cJSON *result = cJSON_GetObjectItemCaseSensitive(j, "result");
    assert_true(json_get_bool(cJSON_GetObjectItemCaseSensitive(result, "gate"), "passed", 0));
    const cJSON *ls = cJSON_GetObjectItemCaseSensitive(result, "leaderless_s");
    *add_leaderless = cJSON_IsNumber(ls) ? ls->valuedouble : -1;
    const cJSON *s;
    cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(j, "steps"))
    {
        const char *st = json_get_str(s, "state", "");
        assert_true(strcmp(st, "succeeded") == 0 || strcmp(st, "skipped") == 0);
    }
    cJSON_Delete(j);
    assert_files("added");
    assert_true(sim_voters(5, 5000));
    assert_true(api_voters(5, 10000));
    assert_audited_run(add_id, "ok");
    struct resp r = client_req(OP, "GET", "/api/nodes/consul-5", NULL);
    assert_string_equal(
        json_get_str(cJSON_GetObjectItemCaseSensitive(r.json, "node"), "server_state", ""),
        "server");
    resp_free(&r);
    if (between) {
        between();
    }

    snprintf(body, sizeof(body),
             "{\"type\":\"node-remove\",\"node\":\"consul-5\",\"strategy\":\"%s\",\"reason\":"
             "\"the rack goes back\"}",
             strategy);
    j = run_job(body);
    assert_state(j, "succeeded");
    int64_t rm_id = job_id(j);
    ls = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "result"),
                                          "leaderless_s");
    *remove_leaderless = cJSON_IsNumber(ls) ? ls->valuedouble : -1;
    cJSON_Delete(j);
    assert_files("start");
    assert_true(sim_voters(4, 5000));
    assert_true(api_voters(4, 10000));
    assert_audited_run(rm_id, "ok");
    /* consul-5's file is kept as the backup the log names, byte for byte the added one */
    char *bak = xasprintf("%s.bak-%lld", node(5)->compose_file, (long long)rm_id);
    char *kept = nodes_read_file(bak);
    char *fx = xasprintf("%s/added/consul-5.yaml", FIXTURES);
    char *want = nodes_read_file(fx);
    assert_non_null(kept);
    assert_non_null(want);
    assert_string_equal(kept, want);
    char *log = job_log(rm_id);
    if (!strstr(log, bak)) {
        fail_msg("the log of job %lld does not name %s:\n%s", (long long)rm_id, bak, log);
    }
    free(log);
    free(bak);
    free(kept);
    free(fx);
    free(want);
    /* no container left on consul-5 */
    char *out = NULL;
    assert_int_equal(nodes_run(H, node(5), "docker ps -q --filter name=^consul$", &out), 0);
    assert_string_equal(out, "");
    free(out);
    r = client_req(OP, "GET", "/api/nodes/consul-5", NULL);
    assert_string_equal(
        json_get_str(cJSON_GetObjectItemCaseSensitive(r.json, "node"), "server_state", ""),
        "removed");
    resp_free(&r);
}

static cJSON *refused(const char *body, const char *name, const char *node_name, const char *what);

static void
sim_post(const char *path)
{
    long st = 0;
    char *body = NULL;
    sim_ctl(H->sim, "POST", path, NULL, &st, &body);
    free(body);
    assert_int_equal(st, 200);
}

/* consulate's model shows the server at address with serf status want, within ms. */
static int
api_serf(const char *address, const char *want, int ms)
{
    long long end = sim_now_ms() + ms;
    for (;;) {
        struct resp r = client_req(OP, "GET", "/api/cluster", NULL);
        int ok = 0;
        const cJSON *s;
        cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(r.json, "servers"))
        {
            const char *a = json_get_str(s, "address", "");
            ok |= strncmp(a, address, strlen(address)) == 0 && a[strlen(address)] == ':' &&
                  strcmp(json_get_str(s, "serf_status", ""), want) == 0;
        }
        resp_free(&r);
        if (ok) {
            return 1;
        }
        if (sim_now_ms() > end) {
            return 0;
        }
        sim_sleep_ms(100);
    }
}

/* With five servers, two hosts down (consul-4, consul-5: 3 alive, a leader) and consul-3
 * taken for dead because its sshd does not answer (its Consul runs): removing consul-3 as
 * gone would leave 4 servers with 2 alive voters, below quorum (3). Refused, nothing changed;
 * then everything comes back. */
static void
quorum_refusal(void)
{
    sim_post("/sim/servers/127.0.0.14/host-down");
    sim_post("/sim/servers/127.0.0.15/host-down");
    assert_int_equal(nodes_sshd_stop(node(3)), 0);
    sshd_down[3] = true;
    assert_true(api_serf("127.0.0.14", "failed", 20000));
    assert_true(api_serf("127.0.0.15", "failed", 20000));
    cJSON *j = refused("{\"type\":\"node-remove\",\"node\":\"consul-3\",\"reason\":\"the host "
                       "is gone\",\"options\":{\"node_gone\":true}}",
                       "quorum", NULL, "2 alive voters");
    assert_non_null(precheck(j, "leader", NULL, 1));
    cJSON_Delete(j);
    assert_int_equal(nodes_sshd_start(node(3)), 0);
    sshd_down[3] = false;
    sim_post("/sim/servers/127.0.0.14/host-up");
    sim_post("/sim/servers/127.0.0.15/host-up");
    assert_true(sim_voters(5, 20000));
    assert_true(api_voters(5, 20000));
}

static void
test_rolling(void **state)
{
    (void)state;
    double a = 0, r = 0;
    add_remove("rolling", &a, &r, quorum_refusal);
    /* rolling never leaves the cluster without a leader: the job does not measure a window */
    print_message("rolling: leaderless_s add %.2f remove %.2f (-1 = not measured)\n", a, r);
}

static void
test_full_restart(void **state)
{
    (void)state;
    double a = 0, r = 0;
    add_remove("full-restart", &a, &r, NULL);
    print_message("full-restart (speed %d): leaderless_s add %.2f s, remove %.2f s\n", SPEED, a, r);
    assert_true(a > 0);
    assert_true(r > 0);
}

/* ---------------------------------------------------------------- b: prechecks */

#define ADD5 "{\"type\":\"node-add\",\"node\":\"consul-5\",\"reason\":\"grow to five\"}"

/* Requests body with the world as it is now: the job must be created failed, with the
 * precheck name on node_name failed and its message containing what (may be NULL), every
 * other result listed, no plan steps, the request audited as an error, and nothing changed
 * anywhere. Returns the job (the caller frees). */
static cJSON *
refused(const char *body, const char *name, const char *node_name, const char *what)
{
    char *before = snapshot();
    long long jobs = db_int(S, "SELECT count(*) FROM jobs");
    cJSON *j = request(body);
    assert_state(j, "failed");
    assert_int_equal(db_int(S, "SELECT count(*) FROM jobs"), jobs + 1);
    const char *m = precheck(j, name, node_name, 0);
    if (!m || (what && !strstr(m, what))) {
        char *t = json_print(cJSON_GetObjectItemCaseSensitive(j, "prechecks"));
        fail_msg("no failed precheck %s on %s saying '%s': %s", name, node_name ? node_name : "-",
                 what ? what : "", t);
    }
    print_message("refused: %s %s: %s\n", name, node_name ? node_name : "-", m);
    /* every result is listed: the cluster, and SSH for every host the change involves */
    assert_true(precheck(j, "cluster_healthy", NULL, 1) ||
                precheck(j, "cluster_healthy", NULL, 0) || precheck(j, "leader", NULL, 1) ||
                precheck(j, "leader", NULL, 0));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(
                         cJSON_GetObjectItemCaseSensitive(j, "plan"), "steps")),
                     0);
    assert_non_null(strstr(json_get_str(cJSON_GetObjectItemCaseSensitive(j, "result"), "error", ""),
                           "nothing was changed"));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "steps")), 0);
    char *a = audit_of(job_id(j));
    if (count_lines(a, "job.request error olga") != 1 || count_lines(a, "job.step") != 0 ||
        count_lines(a, "job.start") != 0) {
        fail_msg("audit of a refused request:\n%s", a);
    }
    free(a);
    assert_same_snapshot(before);
    free(before);
    /* it cannot be approved */
    char path[96];
    snprintf(path, sizeof(path), "/api/jobs/%lld/approve", (long long)job_id(j));
    struct resp r = client_req(ALICE, "POST", path, NULL);
    assert_error_reply(&r, 409, "invalid_state", "failed");
    resp_free(&r);
    return j;
}

/* The SSH results of a node-add of consul-5: one per host, all listed. */
static void
assert_ssh_listed(const cJSON *j)
{
    for (int i = 1; i <= N_HOSTS; i++) {
        if (!precheck(j, "ssh", node(i)->name, 1) && !precheck(j, "ssh", node(i)->name, 0)) {
            fail_msg("no ssh precheck for %s", node(i)->name);
        }
    }
}

static void
test_precheck_sshd_stopped(void **state)
{
    (void)state;
    assert_int_equal(nodes_sshd_stop(node(5)), 0);
    sshd_down[5] = true;
    cJSON *j = refused(ADD5, "ssh", "consul-5", "127.0.0.15");
    assert_ssh_listed(j);
    cJSON_Delete(j);
}

static void
test_precheck_key_not_pinned(void **state)
{
    (void)state;
    /* a new SSH port unpins the key; moving it back does not pin it again */
    char body[96];
    snprintf(body, sizeof(body), "{\"ssh_port\":%d}", node(5)->sshd.port == 22 ? 23 : 22);
    struct resp r = client_req(ADMIN, "PATCH", "/api/nodes/consul-5", body);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    snprintf(body, sizeof(body), "{\"ssh_port\":%d}", node(5)->sshd.port);
    r = client_req(ADMIN, "PATCH", "/api/nodes/consul-5", body);
    assert_int_equal(r.status, 200);
    assert_false(json_get_bool(cJSON_GetObjectItemCaseSensitive(
                                   cJSON_GetObjectItemCaseSensitive(r.json, "node"), "host_key"),
                               "pinned", 1));
    resp_free(&r);
    cJSON *j = refused(ADD5, "ssh", "consul-5", node(5)->host_key.fingerprint);
    assert_ssh_listed(j);
    cJSON_Delete(j);
    assert_int_equal(trust(node(5)), 200);
}

static void
test_precheck_key_changed(void **state)
{
    (void)state;
    char old[128];
    snprintf(old, sizeof(old), "%s", node(2)->host_key.fingerprint);
    assert_int_equal(nodes_hostkey_change(node(2), "ed25519"), 0);
    char *log = nodes_read_file(node(2)->sshd.log);
    int sessions = count_lines(log, "Accepted publickey");
    free(log);
    cJSON *j = refused(ADD5, "ssh", "consul-2", "host key changed");
    const char *m = precheck(j, "ssh", "consul-2", 0);
    assert_non_null(strstr(m, old));
    assert_non_null(strstr(m, node(2)->host_key.fingerprint));
    assert_ssh_listed(j);
    cJSON_Delete(j);
    /* nothing ran on consul-2: no session was opened with the changed key */
    log = nodes_read_file(node(2)->sshd.log);
    assert_int_equal(count_lines(log, "Accepted publickey"), sessions);
    free(log);
    assert_int_equal(trust(node(2)), 200);
}

static void
test_precheck_docker_old(void **state)
{
    (void)state;
    assert_int_equal(nodes_set_versions(H, node(5), "18.09.9", NULL), 0);
    cJSON *j = refused(ADD5, "docker_version", "consul-5", "18.09.9");
    assert_non_null(precheck(j, "compose_version", "consul-5", 1));
    assert_ssh_listed(j);
    cJSON_Delete(j);
    assert_int_equal(nodes_set_versions(H, node(5), "20.10.24+dfsg1", NULL), 0);
}

static void
test_precheck_compose_old(void **state)
{
    (void)state;
    assert_int_equal(nodes_set_versions(H, node(5), NULL, "1.25.0"), 0);
    cJSON *j = refused(ADD5, "compose_version", "consul-5", "1.25.0");
    assert_non_null(precheck(j, "docker_version", "consul-5", 1));
    cJSON_Delete(j);
    assert_int_equal(nodes_set_versions(H, node(5), NULL, "1.29.2"), 0);
}

static void
test_precheck_duplicate_hostname(void **state)
{
    (void)state;
    assert_int_equal(nodes_set_hostname(node(5), "consul-2"), 0);
    cJSON *j = refused(ADD5, "hostname", "consul-5", "consul-2");
    cJSON_Delete(j);
    assert_int_equal(nodes_set_hostname(node(5), "consul-5"), 0);
}

static void
test_precheck_compose_missing(void **state)
{
    (void)state;
    char *keep = nodes_read_file(node(3)->compose_file);
    assert_non_null(keep);
    assert_int_equal(nodes_remove_compose(node(3)), 0);
    cJSON *j = refused(ADD5, "compose_file", "consul-3", NULL);
    for (int i = 1; i <= 4; i++) {
        if (i != 3) {
            assert_non_null(precheck(j, "compose_file", node(i)->name, 1));
        }
    }
    cJSON_Delete(j);
    assert_int_equal(nodes_write_file(node(3)->compose_file, keep), 0);
    free(keep);
}

/* A port of a server that the new node cannot reach: a firewall on consul-5 (its `timeout`,
 * first on its PATH, refuses 127.0.0.12:8300 as bash's /dev/tcp would see it). */
static void
test_precheck_port_unreachable(void **state)
{
    (void)state;
    char *fw = xasprintf("%s/bin/timeout", node(5)->root);
    assert_int_equal(
        nodes_write_file(fw,
                         "#!/bin/sh\n"
                         "case \"$*\" in *'/dev/tcp/127.0.0.12/8300'*)\n"
                         "  echo 'bash: connect: Connection refused' >&2\n"
                         "  echo 'bash: line 1: /dev/tcp/127.0.0.12/8300: Connection refused' >&2\n"
                         "  exit 1;;\n"
                         "esac\n"
                         "exec /usr/bin/timeout \"$@\"\n"),
        0);
    assert_int_equal(chmod(fw, 0755), 0);
    cJSON *j = refused(ADD5, "ports", "consul-2", "8300");
    for (int i = 1; i <= 4; i++) {
        if (i != 2) {
            assert_non_null(precheck(j, "ports", node(i)->name, 1));
        }
    }
    cJSON_Delete(j);
    assert_int_equal(unlink(fw), 0);
    free(fw);
}

/* The last server cannot be removed: a cluster of one (its own harness on 127.0.0.31 and its
 * own consulate, beside the shared one). */
static void
test_precheck_last_server(void **state)
{
    (void)state;
    struct nodes *h0 = H;
    struct srv *s0 = S;
    struct client *admin0 = ADMIN, *op0 = OP, *alice0 = ALICE;
    struct nodes_opts o = {.servers = 1, .speed = SPEED, .ip_base = "127.0.0.31", .seed = 5};
    struct nodes *one = nodes_start(&o);
    assert_non_null(one);
    struct srv *srv = srv_start("\"consul\":{\"addresses\":[\"http://127.0.0.31:8500\"]}");
    assert_non_null(srv);
    H = one;
    S = srv;
    ADMIN = srv_login(srv, "admin", srv->admin_pw);
    assert_non_null(ADMIN);
    assert_int_equal(srv_add_user(srv, "olga", "operator", "operator-pw-1"), 201);
    assert_int_equal(srv_add_user(srv, "alice", "approver", "approver-pw-1"), 201);
    OP = srv_login(srv, "olga", "operator-pw-1");
    ALICE = srv_login(srv, "alice", "approver-pw-1");
    assert_int_equal(add_inventory(), 0);
    assert_true(api_voters(1, 10000));
    cJSON *j = refused("{\"type\":\"node-remove\",\"node\":\"consul-1\",\"reason\":\"the last "
                       "one\"}",
                       "quorum", NULL, "last server");
    cJSON_Delete(j);
    client_free(ADMIN);
    client_free(OP);
    client_free(ALICE);
    srv_stop(srv);
    nodes_stop(one);
    H = h0;
    S = s0;
    ADMIN = admin0;
    OP = op0;
    ALICE = alice0;
}

/* ---------------------------------------------------------------- c: a step fails midway */

/* What a rollback must bring back: every host's compose file, its containers as `docker ps -a`
 * shows them (with their IDs when ids: not recreated), and the simulator's raft. */
static char *
running_state(bool ids)
{
    struct buf b;
    buf_init(&b, 16 << 20);
    for (int i = 1; i <= N_HOSTS; i++) {
        const struct nodes_node *n = node(i);
        char *text = nodes_read_file(n->compose_file);
        buf_printf(&b, "== %s\n%s\n", n->name, text ? text : "(no compose file)");
        free(text);
        char *cmd = xasprintf("docker ps -a --no-trunc --format '%s{{.Names}} {{.State}} "
                              "{{.Image}} {{.Command}}'",
                              ids ? "{{.ID}} " : "");
        char *out = NULL;
        nodes_run(H, n, cmd, &out);
        buf_printf(&b, "%s", out ? out : "");
        free(out);
        free(cmd);
    }
    cJSON *st = sim_state(H->sim);
    const cJSON *v;
    cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(st, "servers"))
    {
        /* a server the simulator has seen stays listed after it stopped for good (as a left
         * member stays in Consul's member list): stopped and out of raft is as before */
        if (!json_get_bool(v, "running", 0) && !json_get_bool(v, "in_raft", 0)) {
            continue;
        }
        /* the retry-join list the agent runs with: the container's command as started */
        char *rj = json_print(cJSON_GetObjectItemCaseSensitive(v, "retry_join"));
        buf_printf(&b, "sim %s running=%d in_raft=%d voter=%d retry_join=%s\n",
                   json_get_str(v, "name", ""), json_get_bool(v, "running", 0),
                   json_get_bool(v, "in_raft", 0), json_get_bool(v, "voter", 0), rj ? rj : "?");
        free(rj);
    }
    cJSON_Delete(st);
    return buf_steal(&b);
}

/* The job failed at the faulted step, was rolled back, and the world is as before. */
static void
assert_rolled_back(cJSON *j, const char *before, bool ids, const char *fault_node)
{
    assert_state(j, "rolled_back");
    int64_t id = job_id(j);
    const cJSON *result = cJSON_GetObjectItemCaseSensitive(j, "result");
    assert_true(
        json_get_bool(cJSON_GetObjectItemCaseSensitive(result, "rollback"), "succeeded", 0));
    int failed = 0;
    const cJSON *s;
    cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(j, "steps"))
    {
        if (strcmp(json_get_str(s, "state", ""), "failed") == 0) {
            failed++;
            assert_string_equal(json_get_str(s, "node", ""), fault_node);
            assert_non_null(strstr(json_get_str(s, "command", ""), "up -d"));
        }
    }
    assert_int_equal(failed, 1);
    assert_files("start");
    assert_true(sim_voters(4, 10000));
    assert_true(api_voters(4, 10000));
    char *after = running_state(ids);
    if (strcmp(before, after) != 0) {
        fail_msg("not as before the job:\n%s", first_diff(before, after));
    }
    free(after);
    /* the audit has the failed step and the end */
    char *a = audit_of(id);
    if (count_lines(a, "job.step error jobs") < 1 || count_lines(a, "job.finish error jobs") != 1 ||
        count_lines(a, "job.approve ok alice") != 1 || count_lines(a, "job.start ") != 1) {
        fail_msg("job %lld: audit:\n%s", (long long)id, a);
    }
    free(a);
    /* the only new files on the hosts are the job's backups */
    for (int i = 1; i <= N_HOSTS; i++) {
        char *dir = xasprintf("%s", node(i)->compose_dir);
        struct dirent **ents = NULL;
        int n = scandir(dir, &ents, NULL, alphasort);
        for (int k = 0; k < n; k++) {
            const char *e = ents[k]->d_name;
            if (strcmp(e, ".") && strcmp(e, "..") && strcmp(e, "docker-compose.yaml") &&
                strncmp(e, "docker-compose.yaml.bak-", 24) &&
                strncmp(e, "docker-compose.yaml.rolled-back-", 32)) {
                fail_msg("unexpected file %s/%s", dir, e);
            }
            free(ents[k]);
        }
        free(ents);
        free(dir);
    }
}

/* n's next docker-compose up -d fails, as on a full disk */
static void
up_fails_once(struct nodes_node *n)
{
    assert_int_equal(nodes_fault_add(n,
                                     &(struct nodes_fault){
                                         .match = "up -d",
                                         .exit_status = 1,
                                         .stderr_text = "ERROR: for consul  Cannot start "
                                                        "service consul: no space left "
                                                        "on device",
                                         .times = 1,
                                     }),
                     0);
}

/* rolling add: the new node's docker-compose up fails (after its file was written) */
static void
test_fail_rolling_new_up(void **state)
{
    (void)state;
    char *before = running_state(true);
    up_fails_once(node(5));
    cJSON *j = run_job(ADD5);
    assert_rolled_back(j, before, true, "consul-5");
    cJSON_Delete(j);
    free(before);
}

/* full-restart add: every server is down and edited, then the 3rd server's up fails */
static void
test_fail_full_restart_third_up(void **state)
{
    (void)state;
    char *before = running_state(false);
    up_fails_once(node(3));
    cJSON *j = run_job("{\"type\":\"node-add\",\"node\":\"consul-5\",\"strategy\":\"full-restart\","
                       "\"reason\":\"grow to five the seed's way\"}");
    assert_rolled_back(j, before, false, "consul-3");
    cJSON_Delete(j);
    free(before);
}

/* ---------------------------------------------------------------- d: a dead server */

/* consul-4's host is gone (sshd stopped, its simulated host down): node-remove with
 * node_gone forces it out from a healthy server and removes its entry from the others; its
 * own host is not touched. Last: the cluster keeps three servers. */
static void
test_remove_dead_server(void **state)
{
    (void)state;
    assert_int_equal(nodes_sshd_stop(node(4)), 0);
    sshd_down[4] = true;
    sim_post("/sim/servers/127.0.0.14/host-down");
    assert_true(api_serf("127.0.0.14", "failed", 20000));
    cJSON *j = request("{\"type\":\"node-remove\",\"node\":\"consul-4\",\"reason\":\"the host "
                       "burned\",\"options\":{\"node_gone\":true}}");
    assert_state(j, "awaiting_approval");
    int64_t id = job_id(j);
    /* the plan says the host is treated as dead */
    const cJSON *plan = cJSON_GetObjectItemCaseSensitive(j, "plan");
    char *warnings = json_print(cJSON_GetObjectItemCaseSensitive(plan, "warnings"));
    assert_non_null(strstr(warnings, "gone for good"));
    free(warnings);
    assert_non_null(precheck(j, "quorum", NULL, 1));
    assert_non_null(precheck(j, "ssh", "consul-4", 1)); /* not answering is expected */
    int force_leave = 0;
    const cJSON *st;
    cJSON_ArrayForEach(st, cJSON_GetObjectItemCaseSensitive(plan, "steps"))
    {
        assert_string_not_equal(json_get_str(st, "node", ""), "consul-4");
        force_leave += strstr(json_get_str(st, "command", ""), "force-leave 'consul-4'") != NULL;
    }
    assert_int_equal(force_leave, 1);
    cJSON_Delete(j);
    char *before4 = nodes_read_file(node(4)->compose_file);
    approve(ALICE, id);
    j = job_wait(id, 120000);
    print_steps(j);
    assert_state(j, "succeeded");
    /* force-leave ran on a healthy server; nothing ran on consul-4 */
    force_leave = 0;
    cJSON_ArrayForEach(st, cJSON_GetObjectItemCaseSensitive(j, "steps"))
    {
        const char *cmd = json_get_str(st, "command", "");
        assert_string_not_equal(json_get_str(st, "node", ""), "consul-4");
        if (strstr(cmd, "force-leave")) {
            force_leave++;
            assert_string_equal(json_get_str(st, "state", ""), "succeeded");
        }
    }
    assert_int_equal(force_leave, 1);
    cJSON_Delete(j);
    assert_files("dead-removed");
    char *now4 = nodes_read_file(node(4)->compose_file);
    assert_string_equal(before4, now4);
    free(before4);
    free(now4);
    assert_true(sim_voters(3, 10000));
    assert_true(api_voters(3, 20000));
    assert_audited_run(id, "ok");
    char *a = audit_of(id);
    if (count_lines(a, "job.step pending jobs") < 4) {
        fail_msg("job %lld: audit:\n%s", (long long)id, a);
    }
    free(a);
}

/* ---------------------------------------------------------------- e: four eyes */

static void
test_self_approval(void **state)
{
    (void)state;
    /* bob (an approver) requests: he may not approve his own job */
    struct resp r = client_req(BOB, "POST", "/api/jobs", ADD5);
    assert_int_equal(r.status, 201);
    assert_state(r.json, "awaiting_approval");
    int64_t id = job_id(r.json);
    resp_free(&r);
    char path[96];
    snprintf(path, sizeof(path), "/api/jobs/%lld/approve", (long long)id);
    long denied = db_count_audit(S, "job.approve", "denied");
    r = client_req(BOB, "POST", path, "{}");
    assert_error_reply(&r, 403, "self_approval", "bob");
    resp_free(&r);
    /* an operator is no approver */
    r = client_req(OP, "POST", path, "{}");
    assert_error_reply(&r, 403, "forbidden", NULL);
    resp_free(&r);
    /* both through GET /api/audit, denied */
    char q[160];
    snprintf(q, sizeof(q), "/api/audit?action=job.approve&outcome=denied&target=%lld",
             (long long)id);
    r = client_req(ADMIN, "GET", q, NULL);
    assert_int_equal(r.status, 200);
    const cJSON *entries = cJSON_GetObjectItemCaseSensitive(r.json, "entries");
    int bob = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, entries)
    {
        bob += strcmp(json_get_str(e, "actor", ""), "bob") == 0;
    }
    assert_int_equal(bob, 1);
    resp_free(&r);
    assert_true(db_count_audit(S, "job.approve", "denied") >= denied + 1);
    /* still awaiting approval; alice rejects it (audited) */
    snprintf(path, sizeof(path), "/api/jobs/%lld/reject", (long long)id);
    r = client_req(ALICE, "POST", path, "{\"comment\":\"not this week\"}");
    assert_int_equal(r.status, 200);
    assert_state(r.json, "rejected");
    resp_free(&r);
    char *a = audit_of(id);
    if (count_lines(a, "job.request pending bob") != 1 ||
        count_lines(a, "job.request ok bob") != 1 ||
        count_lines(a, "job.approve denied bob") != 1 ||
        count_lines(a, "job.reject ok alice") != 1 || count_lines(a, "job.step") != 0) {
        fail_msg("audit of job %lld:\n%s", (long long)id, a);
    }
    free(a);
}

/* ---------------------------------------------------------------- requests prepared at once */

struct bg_request {
    struct client *c;
    pthread_t t;
    struct resp r;
};

static void *
bg_request_main(void *arg)
{
    struct bg_request *b = arg;
    b->r = client_req(b->c, "POST", "/api/jobs", ADD5);
    return NULL;
}

/* Waits (at most 10 s) until n commands hang on consul-5. */
static void
wait_hanging(int n)
{
    long long deadline = sim_now_ms() + 10000;
    while (nodes_hanging(node(5)) < n && sim_now_ms() < deadline) {
        sim_sleep_ms(20);
    }
    assert_int_equal(nodes_hanging(node(5)), n);
}

/* A refusal of the limit: its status and code, Retry-After: 1, and no job. */
static void
assert_busy(struct client *c, long status, const char *code, const char *what)
{
    long long jobs = db_int(S, "SELECT count(*) FROM jobs");
    struct resp r = client_req(c, "POST", "/api/jobs", ADD5);
    assert_error_reply(&r, status, code, what);
    char *retry = resp_header(&r, "Retry-After");
    assert_non_null(retry);
    assert_string_equal(retry, "1");
    free(retry);
    resp_free(&r);
    assert_int_equal(db_int(S, "SELECT count(*) FROM jobs"), jobs);
}

/* Requests whose prechecks are still running count against JOBS_PREPARE_PER_USER (2) and
 * JOBS_PREPARE_TOTAL (4): beyond, a request is refused at once (429 for the user, 503 for
 * everyone), audited, and creates nothing; once they are answered, requests go through. */
static void
test_prepare_limit(void **state)
{
    (void)state;
    struct nodes_fault f = {.match = "docker version", .hang = true};
    assert_int_equal(nodes_fault_add(node(5), &f), 0);
    static struct bg_request bg[4]; /* static: a failed assertion leaves its threads running */
    struct bg_request init[4] = {
        {.c = srv_login(S, "olga", "operator-pw-1")},
        {.c = srv_login(S, "olga", "operator-pw-1")},
        {.c = srv_login(S, "alice", "approver-pw-1")},
        {.c = srv_login(S, "bob", "approver-pw-2")},
    };
    memcpy(bg, init, sizeof(bg));
    for (int i = 0; i < 4; i++) {
        assert_non_null(bg[i].c);
    }
    long long jobs = db_int(S, "SELECT count(*) FROM jobs");
    long denied = db_count_audit(S, "job.request", "denied");
    long errors = db_count_audit(S, "job.request", "error");
    /* olga's two requests hang in their prechecks; her third is refused */
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_create(&bg[i].t, NULL, bg_request_main, &bg[i]), 0);
    }
    wait_hanging(2);
    assert_busy(OP, 429, "too_many_job_requests", "you already have 2 requests being prepared");
    /* alice and bob fill the server's four; then anyone is refused */
    for (int i = 2; i < 4; i++) {
        assert_int_equal(pthread_create(&bg[i].t, NULL, bg_request_main, &bg[i]), 0);
    }
    wait_hanging(4);
    assert_busy(ADMIN, 503, "jobs_busy", "4 requests are being prepared");
    /* both audited: the user's refusal as a throttle (denied), the server's as an error */
    assert_int_equal(db_count_audit(S, "job.request", "denied"), denied + 1);
    assert_int_equal(db_count_audit(S, "job.request", "error"), errors + 1);
    /* the hanging command ends: the four are answered, failed on docker's version */
    nodes_fault_clear(node(5));
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(bg[i].t, NULL), 0);
        assert_int_equal(bg[i].r.status, 201);
        assert_state(bg[i].r.json, "failed");
        assert_true(precheck(bg[i].r.json, "docker_version", "consul-5", 0));
        resp_free(&bg[i].r);
        client_free(bg[i].c);
    }
    assert_int_equal(db_int(S, "SELECT count(*) FROM jobs"), jobs + 4);
    /* the slots were given back: olga's next request is prepared, and rejected here */
    struct resp r = client_req(OP, "POST", "/api/jobs", ADD5);
    assert_int_equal(r.status, 201);
    assert_state(r.json, "awaiting_approval");
    char path[96];
    snprintf(path, sizeof(path), "/api/jobs/%lld/reject", (long long)job_id(r.json));
    resp_free(&r);
    r = client_req(ALICE, "POST", path, "{\"comment\":\"only a test of the limit\"}");
    assert_int_equal(r.status, 200);
    resp_free(&r);
}

int
main(int argc, char **argv)
{
    if (argc > 1) {
        cmocka_set_test_filter(argv[1]);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_start_state, reset),
        cmocka_unit_test_teardown(test_precheck_sshd_stopped, reset),
        cmocka_unit_test_teardown(test_precheck_key_not_pinned, reset),
        cmocka_unit_test_teardown(test_precheck_key_changed, reset),
        cmocka_unit_test_teardown(test_precheck_docker_old, reset),
        cmocka_unit_test_teardown(test_precheck_compose_old, reset),
        cmocka_unit_test_teardown(test_precheck_duplicate_hostname, reset),
        cmocka_unit_test_teardown(test_precheck_compose_missing, reset),
        cmocka_unit_test_teardown(test_precheck_port_unreachable, reset),
        cmocka_unit_test(test_precheck_last_server),
        cmocka_unit_test_teardown(test_rolling, reset),
        cmocka_unit_test_teardown(test_full_restart, reset),
        cmocka_unit_test_teardown(test_fail_rolling_new_up, reset),
        cmocka_unit_test_teardown(test_fail_full_restart_third_up, reset),
        cmocka_unit_test_teardown(test_self_approval, reset),
        cmocka_unit_test_teardown(test_prepare_limit, reset),
        cmocka_unit_test_teardown(test_remove_dead_server, NULL),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
