/* Black-box tests of the jobs API against the real server, the simulator and real sshd nodes:
 * validation (status, error.code, the field named, no job created), roles, four-eyes
 * (self-approval 403 audited denied), the approval flow to a node-add that really adds a
 * server over SSH (plan, prechecks, steps, the log as text and JSON with paging, SSE job and
 * job_log events), node-remove back to byte-identical files, reject, cancel of a running job
 * (its remote command ended, the change rolled back), a changed host key refused before
 * anything runs, diagnose, kill -9 mid-job → interrupted after a restart with its log kept,
 * then a rollback job, and approval.required false.
 *
 * The nodes are real OpenSSH servers (tests/nodes/sshd.c) on the simulated servers'
 * addresses (127.0.0.101-103, a spare on .104). Until the fake-node harness of tests/nodes
 * lands, the docker, docker-compose, hostname and timeout commands on their PATH are this
 * test binary itself (a minimal stand-in, see standin()): it reads the node's compose file
 * and drives the simulator's control API. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "../nodes/sshd.h"
#include "compose.h"
#include "harness.h"
#include "simctl.h"
#include "util.h"

#define IP_BASE "127.0.0.101"
#define N_SERVERS 3
#define N_NODES 4
#define COMPOSE_REL "/mnt/opt/docker-compose/consul"
#define DATA_REL "/mnt/var/lib/container/consul"

/* ---------------------------------------------------------------- the stand-in */

static const char *
env(const char *name)
{
    const char *v = getenv(name);
    return v ? v : "";
}

static int
node_file(const char *name, char *out, size_t outlen)
{
    return snprintf(out, outlen, "%s/%s", env("NODE_DIR"), name) >= (int)outlen ? -1 : 0;
}

static int
flag_file(const char *name)
{
    char p[512];
    struct stat st;
    return node_file(name, p, sizeof(p)) == 0 && stat(p, &st) == 0;
}

static void
set_running(int on)
{
    char p[512];
    node_file("running", p, sizeof(p));
    if (on) {
        FILE *f = fopen(p, "w");
        if (f) {
            fclose(f);
        }
    } else {
        unlink(p);
    }
}

/* A request to the simulator's control API; returns the status (0 when none). */
static long
ctl(const char *method, const char *path, const char *body, char **out)
{
    char url[512];
    snprintf(url, sizeof(url), "%s%s", env("SIM_CONTROL"), path);
    long st = 0;
    const char *hdr[] = {"Content-Type: application/json", NULL};
    sim_http(method, url, body, hdr, &st, out, NULL);
    return st;
}

/* The agent HTTP address of this node's simulated server (newly allocated) or NULL. */
static char *
agent_url(void)
{
    char path[128], *out = NULL;
    snprintf(path, sizeof(path), "/sim/servers/%s", env("NODE_IP"));
    char *url = NULL;
    if (ctl("GET", path, NULL, &out) == 200) {
        cJSON *j = cJSON_Parse(out);
        url = xstrdup(json_get_str(j, "http", ""));
        cJSON_Delete(j);
    }
    free(out);
    return url;
}

static int
standin_compose(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "version") == 0) {
        puts("1.29.2");
        return 0;
    }
    int down = argc == 4 && strcmp(argv[3], "down") == 0;
    int up = argc == 5 && strcmp(argv[3], "up") == 0 && strcmp(argv[4], "-d") == 0;
    if (strcmp(argv[1], "-f") != 0 || (!down && !up)) {
        fprintf(stderr, "docker-compose stand-in: unexpected arguments\n");
        return 2;
    }
    char path[160];
    snprintf(path, sizeof(path), "/sim/servers/%s", env("NODE_IP"));
    if (down) {
        char p[256];
        snprintf(p, sizeof(p), "%s/stop", path);
        char *out = NULL;
        ctl("POST", p, NULL, &out);
        free(out);
        set_running(0);
        fputs("Stopping consul ... done\nRemoving consul ... done\n", stderr);
        return 0;
    }
    if (flag_file("slow_up")) {
        /* a slow pull: ended by a kill, or (a consulate killed meanwhile) by the test
         * removing the flag, then nothing is started */
        fputs("Pulling consul ...\n", stderr);
        fflush(stderr);
        for (int i = 0; i < 600; i++) {
            usleep(100000);
            if (!flag_file("slow_up")) {
                fputs("ERROR: pull aborted\n", stderr);
                return 1;
            }
        }
    }
    size_t len = 0;
    char *text = file_read_all(argv[2], 1 << 20, &len);
    if (!text) {
        fprintf(stderr, "ERROR: .FileNotFoundError: [Errno 2] No such file: '%s'\n", argv[2]);
        return 1;
    }
    struct compose_command *c = NULL;
    struct compose_error ce;
    if (compose_read(text, len, &c, &ce) != COMPOSE_OK) {
        fprintf(stderr, "ERROR: %s\n", ce.message);
        free(text);
        return 1;
    }
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "name", env("NODE_NAME"));
    cJSON_AddStringToObject(body, "ip", env("NODE_IP"));
    cJSON *rj = cJSON_AddArrayToObject(body, "retry_join");
    for (size_t i = 0; i < c->n_retry_join; i++) {
        char host[64];
        snprintf(host, sizeof(host), "%.*s", (int)strcspn(c->retry_join[i], ":"), c->retry_join[i]);
        cJSON_AddItemToArray(rj, cJSON_CreateString(host));
    }
    compose_command_free(c);
    free(text);
    char *out = NULL;
    long st;
    if (ctl("GET", path, NULL, &out) == 200) {
        free(out);
        out = NULL;
        cJSON *cfg = cJSON_CreateObject();
        cJSON_AddItemReferenceToObject(cfg, "retry_join", rj);
        char *b = json_print(cfg);
        char p[256];
        snprintf(p, sizeof(p), "%s/config", path);
        ctl("POST", p, b, &out);
        free(out);
        out = NULL;
        free(b);
        cJSON_Delete(cfg);
        snprintf(p, sizeof(p), "%s/start", path);
        st = ctl("POST", p, NULL, &out);
    } else {
        free(out);
        out = NULL;
        char *b = json_print(body);
        st = ctl("POST", "/sim/servers", b, &out);
        free(b);
    }
    cJSON_Delete(body);
    if (st < 200 || st >= 300) {
        fprintf(stderr, "ERROR: the simulator refused (%ld): %s\n", st, out ? out : "");
        free(out);
        return 1;
    }
    free(out);
    set_running(1);
    fputs("Creating consul ... done\n", stderr);
    return 0;
}

static int
standin_docker(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "version") == 0) {
        puts(flag_file("old_docker") ? "18.09.7" : "20.10.24");
        return 0;
    }
    if (argc >= 2 && strcmp(argv[1], "ps") == 0) {
        if (flag_file("running")) {
            puts("consul Up 2 minutes");
        }
        return 0;
    }
    char path[256], *out = NULL;
    if (argc >= 2 && strcmp(argv[1], "logs") == 0) {
        snprintf(path, sizeof(path), "/sim/servers/%s/log?tail=100", env("NODE_IP"));
        if (ctl("GET", path, NULL, &out) == 200) {
            cJSON *j = cJSON_Parse(out);
            const cJSON *l;
            cJSON_ArrayForEach(l, cJSON_GetObjectItem(j, "lines"))
            {
                puts(cJSON_IsString(l) ? l->valuestring : "");
            }
            cJSON_Delete(j);
        }
        free(out);
        return 0;
    }
    if (argc < 5 || strcmp(argv[1], "exec") != 0 || strcmp(argv[2], "consul") != 0) {
        fprintf(stderr, "docker stand-in: unexpected arguments\n");
        return 2;
    }
    if (!flag_file("running")) {
        fputs("Error response from daemon: Container consul is not running\n", stderr);
        return 1;
    }
    const char *sub = argv[4];
    if (strcmp(sub, "leave") == 0) {
        snprintf(path, sizeof(path), "/sim/servers/%s/leave", env("NODE_IP"));
        ctl("POST", path, NULL, &out);
        free(out);
        set_running(0);
        puts("Graceful leave complete");
        return 0;
    }
    char *agent = agent_url();
    char url[512];
    long st = 0;
    int rc = 1;
    if (strcmp(sub, "force-leave") == 0 && argc == 6) {
        snprintf(url, sizeof(url), "%s/v1/agent/force-leave/%s", agent ? agent : "", argv[5]);
        sim_http("PUT", url, "", NULL, &st, &out, NULL);
        rc = st == 200 ? 0 : 1;
    } else if (strcmp(sub, "operator") == 0 && argc == 8 && strcmp(argv[6], "remove-peer") == 0) {
        snprintf(url, sizeof(url), "%s/v1/operator/raft/peer?address=%s", agent ? agent : "",
                 argv[7] + strlen("-address="));
        sim_http("DELETE", url, NULL, NULL, &st, &out, NULL);
        rc = st == 200 ? 0 : 1;
    } else if (strcmp(sub, "operator") == 0 && argc == 7 && strcmp(argv[6], "list-peers") == 0) {
        if (ctl("GET", "/sim/state", NULL, &out) == 200) {
            cJSON *j = cJSON_Parse(out);
            if (cJSON_IsNull(cJSON_GetObjectItem(j, "leader"))) {
                fputs("Error getting peers: Failed to retrieve raft configuration: Unexpected "
                      "response code: 500 (No cluster leader)\n",
                      stderr);
            } else {
                puts("Node       ID                                    Address            State  "
                     "   Voter  RaftProtocol");
                const cJSON *s;
                cJSON_ArrayForEach(s, cJSON_GetObjectItem(j, "servers"))
                {
                    if (!json_get_bool(s, "in_raft", 0)) {
                        continue;
                    }
                    printf("%-10s %-37s %s:8300  %-9s %-6s 3\n", json_get_str(s, "name", ""),
                           json_get_str(s, "node_id", ""), json_get_str(s, "ip", ""),
                           json_get_bool(s, "leader", 0) ? "leader" : "follower",
                           json_get_bool(s, "voter", 0) ? "true" : "false");
                }
                rc = 0;
            }
            cJSON_Delete(j);
        }
    } else {
        fprintf(stderr, "docker stand-in: unexpected command %s\n", sub);
    }
    if (rc && out) {
        fputs(out, stderr);
    }
    free(out);
    free(agent);
    return rc;
}

/* docker, docker-compose, hostname, timeout on the nodes (argv[0] names which). */
static int
standin(const char *name, int argc, char **argv)
{
    if (strcmp(name, "hostname") == 0) {
        puts(env("NODE_NAME"));
        return 0;
    }
    if (strcmp(name, "timeout") == 0) {
        /* timeout 3 bash --norc --noprofile -c '</dev/tcp/IP/PORT': the simulated servers
         * listen on other ports */
        char ip[64];
        int port = 0;
        if (argc != 7 || sscanf(argv[6], "</dev/tcp/%63[^/]/%d", ip, &port) != 2) {
            return 2;
        }
        return flag_file("ports_closed") ? 1 : 0;
    }
    if (strcmp(name, "docker-compose") == 0) {
        return standin_compose(argc, argv);
    }
    return standin_docker(argc, argv);
}

/* ---------------------------------------------------------------- fixture */

struct node {
    char name[16];
    char ip[32];
    struct sshd_node sshd;
    struct sshd_fp fp;
    char root[300]; /* stands in for / on this node */
    char compose[400];
};

struct ctx {
    char dir[128];
    char bin[200];
    char key[256];
    struct sim *sim;
    struct srv *srv;
    char extra[2048];
    struct node nodes[N_NODES];
    char *orig[N_NODES]; /* compose files at the start */
    struct client *admin, *op, *alice, *bob, *viewer;
};

static struct ctx *C;

static char *
server_compose(const char *self_ip)
{
    struct buf b;
    buf_init(&b, 8192);
    buf_printf(&b,
               "version: \"3.7\"\nservices:\n  consul:\n    image: consul:1.15.4\n"
               "    container_name: consul\n    network_mode: host\n"
               "    command: \"agent -server -ui -client=0.0.0.0 -bind=%s -bootstrap-expect=3 "
               "-data-dir=/consul/data \\\n",
               self_ip);
    for (int i = 0; i < N_SERVERS; i++) {
        buf_printf(&b, "      -retry-join=127.0.0.%d%s\n", 101 + i,
                   i + 1 < N_SERVERS ? " \\" : "\"");
    }
    return buf_steal(&b);
}

static int
mkdirs(const char *path)
{
    const char *argv[] = {"mkdir", "-p", path, NULL};
    return sshd_run(argv, NULL);
}

static int
write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        return -1;
    }
    fputs(text, f);
    fclose(f);
    return 0;
}

/* Starts node i's sshd; dir, bin, key and control are the fixture's (copied by the caller so
 * that nothing here aliases the node). */
static int
node_start(const char *dir, const char *bin, const char *key, const char *control, struct node *n,
           unsigned i)
{
    char root[300], name[16], ip[32];
    snprintf(name, sizeof(name), i < N_SERVERS ? "consul-%u" : "spare-%u", (i + 1) % 100);
    snprintf(ip, sizeof(ip), "127.0.0.%u", 101 + i % 100);
    snprintf(root, sizeof(root), "%s/%s", dir, name);
    memcpy(n->name, name, sizeof(name));
    memcpy(n->ip, ip, sizeof(ip));
    memcpy(n->root, root, sizeof(root));
    char extra[2048], pub[300];
    snprintf(pub, sizeof(pub), "%s.pub", key);
    /* HOME: the node's root, so that a session's bash does not read the test user's own
     * .bashrc (see tests/nodes/harness.c) */
    snprintf(extra, sizeof(extra),
             "SetEnv PATH=%s:/usr/sbin:/usr/bin:/sbin:/bin NODE_DIR=%s NODE_IP=%s NODE_NAME=%s "
             "SIM_CONTROL=%s ASAN_OPTIONS=detect_leaks=0 HOME=%s",
             bin, root, ip, name, control, root);
    struct sshd_opts o = {.addr = ip, .authorized_key = pub, .extra_config = extra};
    if (sshd_start(&n->sshd, &o) || sshd_fingerprint(n->sshd.host_key_pub, &n->fp)) {
        return -1;
    }
    char d[400], compose[400];
    snprintf(d, sizeof(d), "%s%s", root, DATA_REL);
    if (mkdirs(d)) {
        return -1;
    }
    snprintf(compose, sizeof(compose), "%s%s/docker-compose.yaml", root, COMPOSE_REL);
    memcpy(n->compose, compose, sizeof(compose));
    if (i < N_SERVERS) {
        snprintf(d, sizeof(d), "%s%s", root, COMPOSE_REL);
        char *t = server_compose(ip);
        int rc = mkdirs(d) || write_text(compose, t);
        free(t);
        char run[400];
        snprintf(run, sizeof(run), "%s/running", root);
        if (rc || write_text(run, "")) {
            return -1;
        }
    }
    return 0;
}

static void
orig_snapshot(struct ctx *c)
{
    for (int i = 0; i < N_NODES; i++) {
        free(c->orig[i]);
        c->orig[i] = file_read_all(c->nodes[i].compose, 1 << 20, NULL);
    }
}

static int
srv_up(struct ctx *c, const char *more)
{
    char addrs[1024];
    size_t o = (size_t)snprintf(addrs, sizeof(addrs), "[");
    for (int i = 0; i < c->sim->n_servers; i++) {
        o += (size_t)snprintf(addrs + o, sizeof(addrs) - o, "%s\"%s\"", i ? "," : "",
                              c->sim->servers[i].http);
    }
    snprintf(addrs + o, sizeof(addrs) - o, "]");
    snprintf(c->extra, sizeof(c->extra),
             "\"consul\":{\"addresses\":%s,\"connect_timeout_ms\":500},"
             "\"jobs\":{\"gate_timeout_s\":40,\"command_timeout_s\":90}%s%s",
             addrs, more ? "," : "", more ? more : "");
    c->srv = srv_start(c->extra);
    return c->srv ? 0 : -1;
}

static int
users(struct ctx *c)
{
    c->admin = srv_login(c->srv, "admin", c->srv->admin_pw);
    if (!c->admin || srv_add_user(c->srv, "olga", "operator", "operator-pw-1") != 201 ||
        srv_add_user(c->srv, "alice", "approver", "approver-pw-1") != 201 ||
        srv_add_user(c->srv, "bob", "approver", "approver-pw-2") != 201 ||
        srv_add_user(c->srv, "vera", "viewer", "viewer-pw-12") != 201) {
        return -1;
    }
    c->op = srv_login(c->srv, "olga", "operator-pw-1");
    c->alice = srv_login(c->srv, "alice", "approver-pw-1");
    c->bob = srv_login(c->srv, "bob", "approver-pw-2");
    c->viewer = srv_login(c->srv, "vera", "viewer-pw-12");
    return c->op && c->alice && c->bob && c->viewer ? 0 : -1;
}

/* Puts every node in the inventory with its key pinned, through the API. */
static int
inventory(struct ctx *c)
{
    for (int i = 0; i < N_NODES; i++) {
        struct node *n = &c->nodes[i];
        char body[1400];
        snprintf(body, sizeof(body),
                 "{\"name\":\"%s\",\"address\":\"%s\",\"ssh_port\":%d,\"ssh_user\":\"root\","
                 "\"ssh_key_path\":\"%s\",\"compose_dir\":\"%s%s\",\"data_dir\":\"%s%s\","
                 "\"server_state\":\"%s\"}",
                 n->name, n->ip, n->sshd.port, c->key, n->root, COMPOSE_REL, n->root, DATA_REL,
                 i < N_SERVERS ? "server" : "spare");
        struct resp r = client_req(c->admin, "POST", "/api/nodes", body);
        long st = r.status;
        resp_free(&r);
        char path[128];
        snprintf(path, sizeof(path), "/api/nodes/%s/trust-hostkey", n->name);
        snprintf(body, sizeof(body), "{\"fingerprint\":\"%s\"}", n->fp.fingerprint);
        r = client_req(c->admin, "POST", path, body);
        st = st == 201 ? r.status : st;
        resp_free(&r);
        if (st != 200) {
            fprintf(stderr, "inventory of %s failed (%ld)\n", n->name, st);
            return -1;
        }
    }
    return 0;
}

static void
clients_free(struct ctx *c)
{
    client_free(c->admin);
    client_free(c->op);
    client_free(c->alice);
    client_free(c->bob);
    client_free(c->viewer);
    c->admin = c->op = c->alice = c->bob = c->viewer = NULL;
}

static int
group_setup(void **state)
{
    struct ctx *c = xcalloc(1, sizeof(*c));
    C = c;
    snprintf(c->dir, sizeof(c->dir), "/tmp/consulate-jobs-XXXXXX");
    if (!mkdtemp(c->dir)) {
        return -1;
    }
    chmod(c->dir, 0755);
    snprintf(c->bin, sizeof(c->bin), "%s/bin", c->dir);
    snprintf(c->key, sizeof(c->key), "%s/id_ed25519", c->dir);
    if (mkdirs(c->bin) || sshd_keygen(c->key, "ed25519", NULL)) {
        return -1;
    }
    char self[512];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (sl <= 0) {
        return -1;
    }
    self[sl] = '\0';
    const char *names[] = {"docker", "docker-compose", "hostname", "timeout"};
    for (size_t i = 0; i < ARRAY_LEN(names); i++) {
        char link[300];
        snprintf(link, sizeof(link), "%s/%s", c->bin, names[i]);
        if (symlink(self, link) != 0) {
            return -1;
        }
    }
    c->sim = sim_start("--servers 3 --speed 20 --ip-base " IP_BASE);
    if (!c->sim) {
        return -1;
    }
    char dir[128], bin[200], key[256], control[96];
    snprintf(dir, sizeof(dir), "%s", c->dir);
    snprintf(bin, sizeof(bin), "%s", c->bin);
    snprintf(key, sizeof(key), "%s", c->key);
    snprintf(control, sizeof(control), "%s", c->sim->control);
    for (unsigned i = 0; i < N_NODES; i++) {
        if (node_start(dir, bin, key, control, &c->nodes[i], i)) {
            return -1;
        }
    }
    orig_snapshot(c);
    if (srv_up(c, NULL) || users(c) || inventory(c)) {
        return -1;
    }
    *state = c;
    return 0;
}

static int
group_teardown(void **state)
{
    struct ctx *c = *state;
    clients_free(c);
    srv_stop(c->srv);
    int rc = sim_stop_rc(c->sim);
    for (int i = 0; i < N_NODES; i++) {
        sshd_stop(&c->nodes[i].sshd);
        free(c->orig[i]);
    }
    const char *argv[] = {"rm", "-rf", c->dir, NULL};
    sshd_run(argv, NULL);
    free(c);
    return rc;
}

/* ---------------------------------------------------------------- helpers */

static long long
jobs_count(struct ctx *c)
{
    return db_int(c->srv, "SELECT count(*) FROM jobs");
}

static void
expect_invalid(struct ctx *c, const char *body, const char *field)
{
    long long before = jobs_count(c);
    struct resp r = client_req(c->op, "POST", "/api/jobs", body);
    assert_error_reply(&r, 400, "invalid_field", field);
    resp_free(&r);
    assert_int_equal(jobs_count(c), before);
}

static int64_t
job_id(const struct resp *r)
{
    return (int64_t)json_get_num(r->json, "id", 0);
}

/* GETs the job until its state is one of the final ones (or want), at most ms. */
static cJSON *
job_wait(struct ctx *c, int64_t id, const char *want, int ms)
{
    char path[64];
    snprintf(path, sizeof(path), "/api/jobs/%lld", (long long)id);
    long long end = sim_now_ms() + ms;
    for (;;) {
        struct resp r = client_req(c->viewer, "GET", path, NULL);
        assert_int_equal(r.status, 200);
        const char *st = json_get_str(r.json, "state", "");
        int done = want ? strcmp(st, want) == 0
                        : (strcmp(st, "queued") && strcmp(st, "running") &&
                           strcmp(st, "awaiting_approval"));
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

/* 1 once the job's log holds needle (polled), 0 after ms. */
static int
log_has(struct ctx *c, int64_t id, const char *needle, int ms)
{
    char path[96];
    snprintf(path, sizeof(path), "/api/jobs/%lld/log", (long long)id);
    long long end = sim_now_ms() + ms;
    for (;;) {
        struct resp r = client_req(c->viewer, "GET", path, NULL);
        int seen = r.body && strstr(r.body, needle);
        resp_free(&r);
        if (seen || sim_now_ms() > end) {
            return seen;
        }
        sim_sleep_ms(100);
    }
}

static void
assert_state(const cJSON *job, const char *state)
{
    const char *st = json_get_str(job, "state", "");
    if (strcmp(st, state) != 0) {
        char *t = json_print(job);
        fail_msg("job is %s, not %s: %.3000s", st, state, t);
    }
}

static const char *
precheck_msg(const cJSON *job, const char *name, const char *node)
{
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(job, "prechecks"))
    {
        if (strcmp(json_get_str(p, "name", ""), name) == 0 &&
            (!node || strcmp(json_get_str(p, "node", ""), node) == 0)) {
            return json_get_str(p, "message", "");
        }
    }
    return NULL;
}

static void
assert_files(struct ctx *c)
{
    for (int i = 0; i < N_NODES; i++) {
        char *now = file_read_all(c->nodes[i].compose, 1 << 20, NULL);
        if (!c->orig[i]) {
            assert_null(now);
        } else {
            assert_non_null(now);
            assert_string_equal(now, c->orig[i]);
        }
        free(now);
    }
}

/* Waits until the simulator shows n servers in raft, all voters, with a leader. */
static int
sim_voters(struct ctx *c, int n, int ms)
{
    long long end = sim_now_ms() + ms;
    for (;;) {
        cJSON *s = sim_state(c->sim);
        int voters = 0;
        const cJSON *v;
        cJSON_ArrayForEach(v, cJSON_GetObjectItem(s, "servers"))
        {
            voters += json_get_bool(v, "in_raft", 0) && json_get_bool(v, "voter", 0);
        }
        int leader = cJSON_IsString(cJSON_GetObjectItem(s, "leader"));
        cJSON_Delete(s);
        if (voters == n && leader) {
            return 1;
        }
        if (sim_now_ms() > end) {
            return 0;
        }
        sim_sleep_ms(100);
    }
}

/* ---------------------------------------------------------------- tests */

static void
test_validation_and_roles(void **state)
{
    struct ctx *c = *state;
    expect_invalid(c, "{\"type\":\"node-upgrade\",\"node\":\"spare-4\",\"reason\":\"r\"}",
                   "'type'");
    expect_invalid(c, "{\"type\":\"node-add\",\"reason\":\"r\"}", "'node'");
    expect_invalid(c, "{\"type\":\"node-add\",\"node\":\"-x\",\"reason\":\"r\"}", "'node'");
    expect_invalid(c, "{\"type\":\"node-add\",\"node\":\"spare-4\"}", "'reason'");
    expect_invalid(c, "{\"type\":\"node-add\",\"node\":\"spare-4\",\"reason\":\"  \"}", "'reason'");
    expect_invalid(c, "{\"type\":\"node-add\",\"node\":\"spare-4\",\"reason\":\"a\\u0001b\"}",
                   "'reason'");
    expect_invalid(c,
                   "{\"type\":\"node-add\",\"node\":\"spare-4\",\"reason\":\"r\",\"strategy\":"
                   "\"yolo\"}",
                   "'strategy'");
    expect_invalid(c, "{\"type\":\"diagnose\",\"node\":\"spare-4\",\"strategy\":\"rolling\"}",
                   "'strategy'");
    expect_invalid(c,
                   "{\"type\":\"node-add\",\"node\":\"spare-4\",\"reason\":\"r\",\"options\":{"
                   "\"force\":true}}",
                   "'options.force'");
    expect_invalid(c,
                   "{\"type\":\"node-add\",\"node\":\"spare-4\",\"reason\":\"r\",\"options\":{"
                   "\"node_gone\":true}}",
                   "'options.node_gone'");
    expect_invalid(c,
                   "{\"type\":\"node-remove\",\"node\":\"consul-3\",\"reason\":\"r\","
                   "\"strategy\":\"full-restart\",\"options\":{\"node_gone\":true}}",
                   "'options.node_gone'");
    expect_invalid(c,
                   "{\"type\":\"node-add\",\"node\":\"spare-4\",\"reason\":\"r\",\"options\":{"
                   "\"fix_trap\":1}}",
                   "'options.fix_trap'");
    expect_invalid(c, "{\"type\":\"rollback\",\"reason\":\"r\"}", "'job'");
    expect_invalid(c, "{\"type\":\"rollback\",\"job\":1,\"node\":\"x\",\"reason\":\"r\"}",
                   "'node'");
    expect_invalid(c, "{\"type\":\"node-add\",\"node\":\"spare-4\",\"reason\":\"r\",\"job\":3}",
                   "'job'");
    expect_invalid(c, "{\"type\":\"node-add\",\"node\":\"spare-4\",\"reason\":\"r\",\"when\":1}",
                   "'when'");
    /* a wrong type is named as such; a node not in the inventory creates no job */
    expect_invalid(c, "{\"type\":\"diagnose\",\"node\":5}", "'node' must be a string");
    expect_invalid(c, "{\"type\":\"node-remove\",\"node\":\"ghost\",\"reason\":\"r\"}",
                   "no node named 'ghost' in the inventory");
    /* a reason the approver would read otherwise than it is recorded: bidirectional
     * overrides and isolates, line separators, C1 controls */
    expect_invalid(c,
                   "{\"type\":\"node-add\",\"node\":\"spare-4\",\"reason\":\"ok \\u202e "
                   "evil\"}",
                   "'reason' must not contain bidirectional");
    expect_invalid(c, "{\"type\":\"node-add\",\"node\":\"spare-4\",\"reason\":\"a\\u2066b\"}",
                   "'reason'");
    expect_invalid(c, "{\"type\":\"node-add\",\"node\":\"spare-4\",\"reason\":\"a\\u2028b\"}",
                   "'reason'");
    expect_invalid(c, "{\"type\":\"node-add\",\"node\":\"spare-4\",\"reason\":\"a\\u0085b\"}",
                   "'reason' must not contain control characters (C1)");
    /* NUL in a string (C strings would end there: "ok" recorded) and a key given twice
     * (parsers differ on which wins) are refused as JSON, with no job */
    long long before = jobs_count(c);
    static const char *const bad_json[] = {
        "{\"type\":\"node-add\",\"node\":\"spare-4\",\"reason\":\"ok\\u0000hidden\"}",
        "{\"type\":\"diagnose\",\"node\":\"spare-4\\u0000x\"}",
        "{\"type\":\"diagnose\",\"type\":\"node-add\",\"node\":\"spare-4\",\"reason\":\"r\"}",
    };
    for (size_t i = 0; i < sizeof(bad_json) / sizeof(bad_json[0]); i++) {
        struct resp b = client_req(c->op, "POST", "/api/jobs", bad_json[i]);
        assert_error_reply(&b, 400, "invalid_json", i < 2 ? "(NUL)" : "the key 'type' twice");
        resp_free(&b);
    }
    assert_int_equal(jobs_count(c), before);
    struct resp r = client_req(c->op, "POST", "/api/jobs",
                               "{\"type\":\"rollback\",\"job\":4242,\"reason\":\"r\"}");
    assert_error_reply(&r, 404, "not_found", "4242");
    resp_free(&r);
    /* roles: a viewer cannot request; an operator cannot approve */
    long denied = db_count_audit(c->srv, "job.request", "denied");
    r = client_req(c->viewer, "POST", "/api/jobs", "{\"type\":\"diagnose\",\"node\":\"consul-1\"}");
    assert_error_reply(&r, 403, "forbidden", "operator");
    resp_free(&r);
    assert_int_equal(db_count_audit(c->srv, "job.request", "denied"), denied + 1);
    r = client_req(c->op, "POST", "/api/jobs/1/approve", "{}");
    assert_error_reply(&r, 403, "forbidden", "approver");
    resp_free(&r);
    assert_int_equal(jobs_count(c), 0);
    /* list parameters; %00 would end the C string (the filter would silently go) */
    static const char *const bad_lists[][2] = {
        {"/api/jobs?state=bogus", "'state'"},
        {"/api/jobs?limit=0", "'limit'"},
        {"/api/jobs?before_id=x", "'before_id'"},
        {"/api/jobs?state=failed%00", "'state' has a bad percent-encoding"},
        {"/api/jobs?node=%00", "'node'"},
        {"/api/jobs?node=%zz", "'node'"},
    };
    for (size_t i = 0; i < sizeof(bad_lists) / sizeof(bad_lists[0]); i++) {
        r = client_req(c->viewer, "GET", bad_lists[i][0], NULL);
        assert_error_reply(&r, 400, "invalid_parameter", bad_lists[i][1]);
        resp_free(&r);
    }
    r = client_req(c->viewer, "GET", "/api/jobs/abc", NULL);
    assert_error_reply(&r, 404, "not_found", NULL);
    resp_free(&r);
}

/* A raw SSE connection for user (GET /api/events with the session cookie); -1 on failure. */
static int
sse_open(struct srv *s, const char *user, const char *pw)
{
    char url[128], body[256];
    snprintf(url, sizeof(url), "%s/api/session", s->base);
    snprintf(body, sizeof(body), "{\"username\":\"%s\",\"password\":\"%s\"}", user, pw);
    static const char *const hdrs[] = {"Content-Type: application/json", NULL};
    long st = 0;
    char *rb = NULL, *rh = NULL;
    sim_http("POST", url, body, hdrs, &st, &rb, &rh);
    char *sc = rh ? sim_header(rh, "Set-Cookie") : NULL;
    const char *v = sc ? strstr(sc, "consulate_session=") : NULL;
    int fd = -1;
    if (st == 200 && v) {
        v += strlen("consulate_session=");
        char cookie[128];
        snprintf(cookie, sizeof(cookie), "%.*s", (int)strcspn(v, ";"), v);
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s->port)};
        inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
        char req[512];
        int n = snprintf(req, sizeof(req),
                         "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAccept: "
                         "text/event-stream\r\nCookie: consulate_session=%s\r\n\r\n",
                         s->port, cookie);
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || write(fd, req, (size_t)n) != n) {
            close(fd);
            fd = -1;
        }
    }
    free(sc);
    free(rb);
    free(rh);
    return fd;
}

/* Everything the stream has delivered so far (the caller frees). */
static char *
sse_drain(int fd)
{
    struct buf b;
    buf_init(&b, 64 << 20);
    char chunk[16384];
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 300) <= 0) {
            break;
        }
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n <= 0) {
            break;
        }
        buf_append(&b, chunk, (size_t)n);
    }
    return buf_steal(&b);
}

static void
test_add_with_approval(void **state)
{
    struct ctx *c = *state;
    /* an approver requests: she may not approve it herself (audited) */
    struct resp r = client_req(c->alice, "POST", "/api/jobs",
                               "{\"type\":\"node-add\",\"node\":\"spare-4\",\"strategy\":"
                               "\"rolling\",\"reason\":\"grow to five for the new region\"}");
    assert_int_equal(r.status, 201);
    int64_t id = job_id(&r);
    assert_true(id > 0);
    assert_state(r.json, "awaiting_approval");
    assert_string_equal(json_get_str(r.json, "requested_by", ""), "alice");
    const cJSON *plan = cJSON_GetObjectItem(r.json, "plan");
    assert_true(cJSON_GetArraySize(cJSON_GetObjectItem(plan, "steps")) >= 8);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(plan, "diffs")), 4);
    assert_non_null(precheck_msg(r.json, "ports", "consul-1"));
    assert_non_null(strstr(precheck_msg(r.json, "docker_version", "spare-4"), "20.10.24"));
    const cJSON *can = cJSON_GetObjectItem(r.json, "can");
    assert_false(json_get_bool(can, "approve", 1));
    assert_true(json_get_bool(can, "cancel", 0));
    resp_free(&r);
    assert_files(c); /* the dry run changed nothing */
    char path[128];
    snprintf(path, sizeof(path), "/api/jobs/%lld/approve", (long long)id);
    long denied = db_count_audit(c->srv, "job.approve", "denied");
    r = client_req(c->alice, "POST", path, "{\"comment\":\"mine\"}");
    assert_error_reply(&r, 403, "self_approval", "alice");
    resp_free(&r);
    assert_int_equal(db_count_audit(c->srv, "job.approve", "denied"), denied + 1);
    assert_int_equal(db_int(c->srv, "SELECT count(*) FROM audit_log WHERE action = "
                                    "'job.approve' AND outcome = 'denied' AND actor = 'alice' "
                                    "AND detail LIKE '%four-eyes%'"),
                     1);
    snprintf(path, sizeof(path), "/api/jobs/%lld", (long long)id);
    r = client_req(c->bob, "GET", path, NULL);
    assert_true(json_get_bool(cJSON_GetObjectItem(r.json, "can"), "approve", 0));
    resp_free(&r);
    /* bob approves: the job runs over SSH to the end, live on the event stream */
    int sse = sse_open(c->srv, "vera", "viewer-pw-12");
    assert_true(sse >= 0);
    snprintf(path, sizeof(path), "/api/jobs/%lld/approve", (long long)id);
    r = client_req(c->bob, "POST", path, "{\"comment\":\"looks right\"}");
    assert_int_equal(r.status, 200);
    assert_string_equal(json_get_str(r.json, "approved_by", ""), "bob");
    resp_free(&r);
    r = client_req(c->bob, "POST", path, "{}");
    assert_error_reply(&r, 409, "invalid_state", NULL);
    resp_free(&r);
    cJSON *job = job_wait(c, id, NULL, 90000);
    assert_state(job, "succeeded");
    const cJSON *steps = cJSON_GetObjectItem(job, "steps");
    const cJSON *s;
    cJSON_ArrayForEach(s, steps)
    {
        assert_string_equal(json_get_str(s, "state", ""), "succeeded");
    }
    assert_true(json_get_bool(cJSON_GetObjectItem(cJSON_GetObjectItem(job, "result"), "gate"),
                              "passed", 0));
    int64_t lines = (int64_t)json_get_num(job, "log_lines", 0);
    assert_true(lines > 10);
    cJSON_Delete(job);
    char *events = sse_drain(sse);
    close(sse);
    char want[128];
    snprintf(want, sizeof(want), "event: job\ndata: {\"id\":%lld,", (long long)id);
    assert_non_null(strstr(events, want));
    assert_non_null(strstr(events, "\"state\":\"running\""));
    assert_non_null(strstr(events, "\"state\":\"succeeded\""));
    snprintf(want, sizeof(want), "event: job_log\ndata: {\"job\":%lld,\"line\":", (long long)id);
    assert_non_null(strstr(events, want));
    assert_non_null(strstr(events, "gate passed"));
    free(events);
    assert_true(sim_voters(c, 4, 5000));
    /* the new server runs; the others list it; the inventory says server */
    char *f = file_read_all(c->nodes[0].compose, 1 << 20, NULL);
    assert_non_null(strstr(f, "-retry-join=127.0.0.104"));
    free(f);
    f = file_read_all(c->nodes[3].compose, 1 << 20, NULL);
    assert_non_null(strstr(f, "-bind=127.0.0.104"));
    free(f);
    r = client_req(c->viewer, "GET", "/api/nodes/spare-4", NULL);
    assert_string_equal(json_get_str(cJSON_GetObjectItem(r.json, "node"), "server_state", ""),
                        "server");
    resp_free(&r);
    /* the record */
    assert_int_equal(db_count_audit(c->srv, "job.request", "pending"), 1);
    assert_int_equal(db_count_audit(c->srv, "job.request", "ok"), 1);
    assert_int_equal(db_count_audit(c->srv, "job.approve", "ok"), 1);
    assert_int_equal(db_count_audit(c->srv, "job.start", "ok"), 1);
    assert_int_equal(db_count_audit(c->srv, "job.finish", "ok"), 1);
    assert_true(db_count_audit(c->srv, "job.step", "ok") >= 8);
    assert_int_equal(db_count_audit(c->srv, "job.step", "error"), 0);
    /* the log: text with the last line in a header, then JSON after a line */
    snprintf(path, sizeof(path), "/api/jobs/%lld/log", (long long)id);
    r = client_req(c->viewer, "GET", path, NULL);
    assert_int_equal(r.status, 200);
    char *last = resp_header(&r, "X-Log-Last-Line");
    assert_non_null(last);
    assert_int_equal(atoll(last), lines);
    free(last);
    char first[64];
    snprintf(first, sizeof(first), "1\t");
    assert_true(strncmp(r.body, first, 2) == 0);
    assert_non_null(strstr(r.body, "\tinfo\tgate passed"));
    assert_non_null(strstr(r.body, "\tspare-4\t"));
    resp_free(&r);
    snprintf(path, sizeof(path), "/api/jobs/%lld/log?after=%lld&format=json", (long long)id,
             (long long)(lines - 2));
    r = client_req(c->viewer, "GET", path, NULL);
    assert_int_equal(r.status, 200);
    const cJSON *ls = cJSON_GetObjectItem(r.json, "lines");
    assert_int_equal(cJSON_GetArraySize(ls), 2);
    assert_int_equal((int)json_get_num(cJSON_GetArrayItem(ls, 0), "line", 0), (int)(lines - 1));
    assert_int_equal((int64_t)json_get_num(r.json, "last_line", 0), lines);
    resp_free(&r);
    snprintf(path, sizeof(path), "/api/jobs/%lld/log?after=%lld&format=json", (long long)id,
             (long long)lines);
    r = client_req(c->viewer, "GET", path, NULL);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "lines")), 0);
    assert_int_equal((int64_t)json_get_num(r.json, "last_line", 0), lines);
    resp_free(&r);
    /* the list */
    r = client_req(c->viewer, "GET", "/api/jobs?state=succeeded&type=node-add", NULL);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "jobs")), 1);
    assert_null(
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "jobs"), 0), "plan"));
    resp_free(&r);
}

static void
test_remove_back_to_identical(void **state)
{
    struct ctx *c = *state;
    struct resp r = client_req(c->op, "POST", "/api/jobs",
                               "{\"type\":\"node-remove\",\"node\":\"spare-4\",\"reason\":\"back "
                               "to three\"}");
    assert_int_equal(r.status, 201);
    int64_t id = job_id(&r);
    resp_free(&r);
    char path[128];
    snprintf(path, sizeof(path), "/api/jobs/%lld/approve", (long long)id);
    r = client_req(c->alice, "POST", path, NULL);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    cJSON *job = job_wait(c, id, NULL, 90000);
    assert_state(job, "succeeded");
    cJSON_Delete(job);
    assert_files(c); /* byte for byte what they were before the add */
    char bak[500];
    snprintf(bak, sizeof(bak), "%s.bak-%lld", c->nodes[3].compose, (long long)id);
    struct stat st;
    assert_int_equal(stat(bak, &st), 0);
    assert_true(sim_voters(c, 3, 5000));
    r = client_req(c->viewer, "GET", "/api/nodes/spare-4", NULL);
    assert_string_equal(json_get_str(cJSON_GetObjectItem(r.json, "node"), "server_state", ""),
                        "removed");
    resp_free(&r);
    /* a succeeded job is not rolled back: refused, no job recorded */
    long long before = jobs_count(c);
    char body[128];
    snprintf(body, sizeof(body), "{\"type\":\"rollback\",\"job\":%lld,\"reason\":\"undo\"}",
             (long long)id);
    r = client_req(c->op, "POST", "/api/jobs", body);
    assert_error_reply(&r, 409, "invalid_state", "only a failed or interrupted job is rolled back");
    resp_free(&r);
    assert_int_equal(jobs_count(c), before);
}

static void
test_reject_and_diagnose(void **state)
{
    struct ctx *c = *state;
    struct resp r = client_req(c->op, "POST", "/api/jobs",
                               "{\"type\":\"node-add\",\"node\":\"spare-4\",\"reason\":\"try\"}");
    assert_int_equal(r.status, 201);
    int64_t id = job_id(&r);
    resp_free(&r);
    char path[128];
    snprintf(path, sizeof(path), "/api/jobs/%lld/reject", (long long)id);
    r = client_req(c->bob, "POST", path, "{\"comment\":\"not this week\"}");
    assert_int_equal(r.status, 200);
    assert_state(r.json, "rejected");
    assert_string_equal(json_get_str(r.json, "decision_comment", ""), "not this week");
    resp_free(&r);
    r = client_req(c->bob, "POST", path, NULL);
    assert_error_reply(&r, 409, "invalid_state", "rejected");
    resp_free(&r);
    assert_int_equal(db_count_audit(c->srv, "job.reject", "ok"), 1);
    assert_files(c);
    /* diagnose: no approval, runs at once */
    r = client_req(c->op, "POST", "/api/jobs", "{\"type\":\"diagnose\",\"node\":\"consul-2\"}");
    assert_int_equal(r.status, 201);
    id = job_id(&r);
    resp_free(&r);
    cJSON *job = job_wait(c, id, NULL, 30000);
    assert_state(job, "succeeded");
    const cJSON *findings = cJSON_GetObjectItem(cJSON_GetObjectItem(job, "result"), "findings");
    assert_true(cJSON_IsArray(findings));
    assert_int_equal(cJSON_GetArraySize(findings), 0);
    cJSON_Delete(job);
}

static void
test_cancel_running(void **state)
{
    struct ctx *c = *state;
    char slow[400];
    snprintf(slow, sizeof(slow), "%s/slow_up", c->nodes[3].root);
    assert_int_equal(write_text(slow, ""), 0);
    struct resp r = client_req(c->op, "POST", "/api/jobs",
                               "{\"type\":\"node-add\",\"node\":\"spare-4\",\"reason\":\"cancel "
                               "me\"}");
    assert_int_equal(r.status, 201);
    int64_t id = job_id(&r);
    resp_free(&r);
    char path[128];
    snprintf(path, sizeof(path), "/api/jobs/%lld/approve", (long long)id);
    r = client_req(c->alice, "POST", path, NULL);
    resp_free(&r);
    /* wait until the slow docker-compose up runs on the new node */
    assert_true(log_has(c, id, "Pulling consul", 30000));
    /* another operator may not cancel it; the requester may */
    snprintf(path, sizeof(path), "/api/jobs/%lld/cancel", (long long)id);
    r = client_req(c->viewer, "POST", path, NULL);
    assert_error_reply(&r, 403, "forbidden", NULL);
    resp_free(&r);
    /* a cancel takes no fields */
    r = client_req(c->op, "POST", path, "{\"x\":1}");
    assert_error_reply(&r, 400, "invalid_field", "unknown field 'x'");
    resp_free(&r);
    long long t0 = sim_now_ms();
    r = client_req(c->op, "POST", path, NULL);
    assert_int_equal(r.status, 200);
    assert_true(json_get_bool(r.json, "cancel_requested", 0));
    resp_free(&r);
    cJSON *job = job_wait(c, id, NULL, 60000);
    assert_state(job, "cancelled");
    assert_true(sim_now_ms() - t0 < 50000); /* the 60 s sleep was ended */
    const cJSON *rb = cJSON_GetObjectItem(cJSON_GetObjectItem(job, "result"), "rollback");
    assert_true(json_get_bool(rb, "succeeded", 0));
    assert_string_equal(json_get_str(job, "cancelled_by", ""), "olga");
    cJSON_Delete(job);
    unlink(slow);
    assert_files(c);
    assert_true(sim_voters(c, 3, 5000));
    assert_int_equal(db_count_audit(c->srv, "job.cancel", "ok"), 1);
    r = client_req(c->op, "POST", path, NULL);
    assert_error_reply(&r, 409, "invalid_state", NULL);
    resp_free(&r);
}

static void
test_host_key_changed(void **state)
{
    struct ctx *c = *state;
    struct node *n = &c->nodes[1];
    assert_int_equal(sshd_restart(&n->sshd, "ed25519"), 0);
    struct sshd_fp now;
    assert_int_equal(sshd_fingerprint(n->sshd.host_key_pub, &now), 0);
    struct resp r = client_req(c->op, "POST", "/api/jobs",
                               "{\"type\":\"node-add\",\"node\":\"spare-4\",\"reason\":\"x\"}");
    assert_int_equal(r.status, 201);
    assert_state(r.json, "failed");
    const char *m = precheck_msg(r.json, "ssh", "consul-2");
    assert_non_null(m);
    assert_non_null(strstr(m, "host key changed"));
    assert_non_null(strstr(m, now.fingerprint));
    assert_non_null(strstr(m, n->fp.fingerprint));
    assert_non_null(strstr(json_get_str(cJSON_GetObjectItem(r.json, "result"), "error", ""),
                           "nothing was changed"));
    assert_int_equal(
        cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetObjectItem(r.json, "plan"), "steps")), 0);
    int64_t id = job_id(&r);
    resp_free(&r);
    assert_files(c);
    char path[128];
    snprintf(path, sizeof(path), "/api/jobs/%lld/approve", (long long)id);
    r = client_req(c->alice, "POST", path, NULL);
    assert_error_reply(&r, 409, "invalid_state", "failed");
    resp_free(&r);
    char sql[200];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM audit_log WHERE action = 'job.request' AND "
             "outcome = 'error' AND target = '%lld'",
             (long long)id);
    assert_int_equal(db_int(c->srv, sql), 1);
    /* trust the new key again for the next tests */
    char body[200];
    snprintf(body, sizeof(body), "{\"fingerprint\":\"%s\"}", now.fingerprint);
    r = client_req(c->admin, "POST", "/api/nodes/consul-2/trust-hostkey", body);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    n->fp = now;
}

static void
test_kill9_interrupted_then_rollback(void **state)
{
    struct ctx *c = *state;
    char slow[400];
    snprintf(slow, sizeof(slow), "%s/slow_up", c->nodes[3].root);
    assert_int_equal(write_text(slow, ""), 0);
    struct resp r = client_req(c->op, "POST", "/api/jobs",
                               "{\"type\":\"node-add\",\"node\":\"spare-4\",\"reason\":\"crash "
                               "me\"}");
    int64_t id = job_id(&r);
    resp_free(&r);
    char path[128];
    snprintf(path, sizeof(path), "/api/jobs/%lld/approve", (long long)id);
    r = client_req(c->bob, "POST", path, NULL);
    resp_free(&r);
    assert_true(log_has(c, id, "Pulling consul", 30000));
    long long lines = db_int(c->srv, "SELECT log_lines FROM jobs ORDER BY id DESC LIMIT 1");
    assert_true(lines > 5);
    /* the new node's file was written before the crash */
    struct stat st;
    assert_int_equal(stat(c->nodes[3].compose, &st), 0);
    /* kill -9, restart on the same database */
    clients_free(c);
    kill(c->srv->pid, SIGKILL);
    waitpid(c->srv->pid, NULL, 0);
    char dir[256], admin_pw[64];
    snprintf(dir, sizeof(dir), "%s", c->srv->dir);
    snprintf(admin_pw, sizeof(admin_pw), "%s", c->srv->admin_pw);
    free(c->srv);
    unlink(slow);
    c->srv = srv_start_in(dir, c->extra);
    assert_non_null(c->srv);
    snprintf(c->srv->admin_pw, sizeof(c->srv->admin_pw), "%s", admin_pw);
    c->admin = srv_login(c->srv, "admin", admin_pw);
    c->op = srv_login(c->srv, "olga", "operator-pw-1");
    c->alice = srv_login(c->srv, "alice", "approver-pw-1");
    c->bob = srv_login(c->srv, "bob", "approver-pw-2");
    c->viewer = srv_login(c->srv, "vera", "viewer-pw-12");
    assert_non_null(c->op);
    assert_non_null(c->viewer);
    snprintf(path, sizeof(path), "/api/jobs/%lld", (long long)id);
    r = client_req(c->op, "GET", path, NULL);
    assert_state(r.json, "interrupted");
    assert_true(json_get_num(r.json, "log_lines", 0) > (double)lines);
    assert_true(json_get_bool(cJSON_GetObjectItem(r.json, "can"), "rollback", 0));
    resp_free(&r);
    assert_int_equal(db_count_audit(c->srv, "job.finish", "error"), 2);
    /* the log is intact: every line before the crash is still there */
    snprintf(path, sizeof(path), "/api/jobs/%lld/log?format=json", (long long)id);
    r = client_req(c->viewer, "GET", path, NULL);
    assert_true(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "lines")) > lines);
    resp_free(&r);
    /* roll it back: a job of its own, approved by someone else */
    char body[128];
    snprintf(body, sizeof(body),
             "{\"type\":\"rollback\",\"job\":%lld,\"reason\":\"undo the crashed "
             "add\"}",
             (long long)id);
    r = client_req(c->op, "POST", "/api/jobs", body);
    assert_int_equal(r.status, 201);
    assert_state(r.json, "awaiting_approval");
    assert_int_equal((int64_t)json_get_num(r.json, "target_job", 0), id);
    int64_t rid = job_id(&r);
    resp_free(&r);
    r = client_req(c->op, "POST", "/api/jobs", body);
    assert_error_reply(&r, 409, "rollback_exists", NULL);
    resp_free(&r);
    snprintf(path, sizeof(path), "/api/jobs/%lld/approve", (long long)rid);
    r = client_req(c->alice, "POST", path, NULL);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    cJSON *job = job_wait(c, rid, NULL, 90000);
    assert_state(job, "succeeded");
    cJSON_Delete(job);
    assert_files(c);
    assert_true(sim_voters(c, 3, 5000));
}

/* A stop (SIGTERM) while a job runs ends its remote command and leaves it interrupted; the
 * server exits promptly and cleanly. */
static void
test_stop_interrupts(void **state)
{
    struct ctx *c = *state;
    char slow[400];
    snprintf(slow, sizeof(slow), "%s/slow_up", c->nodes[3].root);
    assert_int_equal(write_text(slow, ""), 0);
    struct resp r = client_req(c->op, "POST", "/api/jobs",
                               "{\"type\":\"node-add\",\"node\":\"spare-4\",\"reason\":\"stop "
                               "me\"}");
    int64_t id = job_id(&r);
    resp_free(&r);
    char path[128];
    snprintf(path, sizeof(path), "/api/jobs/%lld/approve", (long long)id);
    r = client_req(c->bob, "POST", path, NULL);
    resp_free(&r);
    assert_true(log_has(c, id, "Pulling consul", 30000));
    clients_free(c);
    char dir[256], admin_pw[64];
    snprintf(dir, sizeof(dir), "%s", c->srv->dir);
    snprintf(admin_pw, sizeof(admin_pw), "%s", c->srv->admin_pw);
    long long t0 = sim_now_ms();
    srv_stop_keep(c->srv, 1); /* fails the binary unless it exits 0 within 10 s */
    assert_true(sim_now_ms() - t0 < 8000);
    unlink(slow);
    c->srv = srv_start_in(dir, c->extra);
    assert_non_null(c->srv);
    snprintf(c->srv->admin_pw, sizeof(c->srv->admin_pw), "%s", admin_pw);
    c->admin = srv_login(c->srv, "admin", admin_pw);
    c->op = srv_login(c->srv, "olga", "operator-pw-1");
    c->alice = srv_login(c->srv, "alice", "approver-pw-1");
    c->bob = srv_login(c->srv, "bob", "approver-pw-2");
    c->viewer = srv_login(c->srv, "vera", "viewer-pw-12");
    snprintf(path, sizeof(path), "/api/jobs/%lld", (long long)id);
    r = client_req(c->op, "GET", path, NULL);
    assert_state(r.json, "interrupted");
    resp_free(&r);
    assert_true(log_has(c, id, "consulate is stopping", 1000));
    /* undo it */
    char body[128];
    snprintf(body, sizeof(body), "{\"type\":\"rollback\",\"job\":%lld,\"reason\":\"undo\"}",
             (long long)id);
    r = client_req(c->op, "POST", "/api/jobs", body);
    int64_t rid = job_id(&r);
    resp_free(&r);
    snprintf(path, sizeof(path), "/api/jobs/%lld/approve", (long long)rid);
    r = client_req(c->alice, "POST", path, NULL);
    resp_free(&r);
    cJSON *job = job_wait(c, rid, NULL, 90000);
    assert_state(job, "succeeded");
    cJSON_Delete(job);
    assert_files(c);
}

static void
test_approval_not_required(void **state)
{
    struct ctx *c = *state;
    clients_free(c);
    srv_stop(c->srv);
    assert_int_equal(srv_up(c, "\"approval\":{\"required\":false}"), 0);
    assert_int_equal(users(c), 0);
    assert_int_equal(inventory(c), 0);
    assert_int_equal(db_count_audit(c->srv, "settings.approval_disabled", "ok"), 1);
    struct resp r = client_req(c->op, "GET", "/api/session", NULL);
    assert_false(json_get_bool(r.json, "approval_required", 1));
    resp_free(&r);
    r = client_req(c->op, "POST", "/api/jobs", "{\"type\":\"diagnose\",\"node\":\"consul-1\"}");
    int64_t id = job_id(&r);
    resp_free(&r);
    cJSON *job = job_wait(c, id, NULL, 30000);
    assert_state(job, "succeeded");
    cJSON_Delete(job);
    r = client_req(c->op, "POST", "/api/jobs",
                   "{\"type\":\"node-add\",\"node\":\"spare-4\",\"reason\":\"no second pair of "
                   "eyes\"}");
    assert_int_equal(r.status, 201);
    const char *st = json_get_str(r.json, "state", "");
    assert_true(strcmp(st, "queued") == 0 || strcmp(st, "running") == 0);
    assert_false(json_get_bool(r.json, "approval_required", 1));
    id = job_id(&r);
    resp_free(&r);
    job = job_wait(c, id, NULL, 90000);
    assert_state(job, "succeeded");
    cJSON_Delete(job);
    assert_true(sim_voters(c, 4, 5000));
    /* and out again the seed's way: every server stops; the leaderless time is measured */
    r = client_req(c->op, "POST", "/api/jobs",
                   "{\"type\":\"node-remove\",\"node\":\"spare-4\",\"strategy\":"
                   "\"full-restart\",\"reason\":\"the seed's way\"}");
    assert_int_equal(r.status, 201);
    id = job_id(&r);
    resp_free(&r);
    job = job_wait(c, id, NULL, 120000);
    assert_state(job, "succeeded");
    const cJSON *ls = cJSON_GetObjectItem(cJSON_GetObjectItem(job, "result"), "leaderless_s");
    assert_true(cJSON_IsNumber(ls));
    assert_true(ls->valuedouble > 0);
    int downs = 0;
    const cJSON *s;
    cJSON_ArrayForEach(s, cJSON_GetObjectItem(job, "steps"))
    {
        downs += strstr(json_get_str(s, "command", ""), " down") != NULL;
    }
    assert_int_equal(downs, 4);
    cJSON_Delete(job);
    assert_files(c);
    assert_true(sim_voters(c, 3, 10000));
}

int
main(int argc, char **argv)
{
    const char *base = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    if (strcmp(base, "docker") == 0 || strcmp(base, "docker-compose") == 0 ||
        strcmp(base, "hostname") == 0 || strcmp(base, "timeout") == 0) {
        log_set_quiet(1);
        return standin(base, argc, argv);
    }
    (void)C;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validation_and_roles),
        cmocka_unit_test(test_add_with_approval),
        cmocka_unit_test(test_remove_back_to_identical),
        cmocka_unit_test(test_reject_and_diagnose),
        cmocka_unit_test(test_cancel_running),
        cmocka_unit_test(test_host_key_changed),
        cmocka_unit_test(test_kill9_interrupted_then_rollback),
        cmocka_unit_test(test_stop_interrupts),
        cmocka_unit_test(test_approval_not_required),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
