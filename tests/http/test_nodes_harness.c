/* test_nodes_harness: the fake-node harness (tests/nodes/harness.c) and its docker and
 * docker-compose stand-ins, driven over SSH with consulate's own runner (server/ssh.c) as
 * the job engine will: 4 servers and a spare start in a few seconds; the commands consulate
 * runs answer as Docker, docker-compose and Consul do; a wrong compose edit gives a server
 * that does not join; consul-5 added by hand joins as a non-voter and becomes a voter; each
 * fault does what it says; nothing is left behind. Needs CONSUL_SIM_BIN and CONSULATE_SRC;
 * run it in its own network namespace (/work/nsrun): the nodes use 8500/9107/8300/8301. */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <cjson/cJSON.h>

#include "../nodes/harness.h"
#include "simctl.h"
#include "ssh.h"
#include "util.h"

/* ---------------------------------------------------------------- helpers */

struct out {
    struct buf o;
    struct buf e;
};

static void
on_line(void *arg, enum ssh_stream stream, const char *line, size_t len, unsigned flags)
{
    struct out *r = arg;
    struct buf *b = stream == SSH_STDOUT ? &r->o : &r->e;
    buf_append(b, line, len);
    if (!(flags & SSH_LINE_NO_EOL)) {
        buf_append(b, "\n", 1);
    }
}

static bool
safe_word(const char *w)
{
    if (!*w) {
        return false;
    }
    for (const char *p = w; *p; p++) {
        if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_@%+=:,./-",
                    *p)) {
            return false;
        }
    }
    return true;
}

static struct ssh_target
target_of(const struct nodes *h, const struct nodes_node *n, const struct sshd_fp *pin)
{
    const struct sshd_fp *fp = pin ? pin : &n->host_key;
    return (struct ssh_target){
        .host = n->address,
        .port = (uint16_t)n->sshd.port,
        .user = h->ssh_user,
        .key_path = h->client_key,
        .host_key_type = fp->type,
        .host_key_fingerprint = fp->fingerprint,
        .connect_timeout_ms = 5000,
    };
}

/* Runs argv (NULL-terminated; words in the safe alphabet are constants, anything else a
 * quoted value) on node n over SSH; returns the exit status (-1 on an SSH failure, with
 * *rc the ssh_rc). *out and *err (may be NULL) get the output, the caller frees. */
static int
rsh_full(const struct nodes *h, const struct nodes_node *n, const char *const *argv,
         int timeout_ms, char **out, char **err, int *rc_out)
{
    struct sh_cmd cmd;
    sh_cmd_init(&cmd);
    struct sh_arg args[32];
    size_t argc = 0;
    for (; argv[argc]; argc++) {
        args[argc] = safe_word(argv[argc]) ? SH_W(argv[argc]) : SH_V(argv[argc]);
    }
    assert_int_equal(sh_cmd_add(&cmd, args, argc, NULL), SH_OK);
    struct ssh_target t = target_of(h, n, NULL);
    struct ssh_conn *c = NULL;
    struct ssh_error e;
    int rc = ssh_connect(&t, &c, &e);
    int status = -1;
    struct out r;
    buf_init(&r.o, 1 << 20);
    buf_init(&r.e, 1 << 20);
    if (rc == SSH_OK) {
        struct ssh_exec_opts eo = {.timeout_ms = timeout_ms ? timeout_ms : 30000,
                                   .on_line = on_line,
                                   .arg = &r};
        struct ssh_exec_result res;
        rc = ssh_exec(c, &cmd, &eo, &res, &e);
        status = rc == SSH_OK ? res.exit_status : -1;
    }
    if (rc != SSH_OK && !rc_out) {
        fprintf(stderr, "ssh %s `%s`: %s\n", n->name, sh_cmd_text(&cmd), e.message);
    }
    if (rc_out) {
        *rc_out = rc;
    }
    ssh_close(c);
    sh_cmd_free(&cmd);
    if (out) {
        *out = xstrdup(r.o.data ? r.o.data : "");
    }
    if (err) {
        *err = xstrdup(r.e.data ? r.e.data : "");
    }
    buf_free(&r.o);
    buf_free(&r.e);
    return status;
}

static int
rsh(const struct nodes *h, const struct nodes_node *n, const char *const *argv, char **out,
    char **err)
{
    return rsh_full(h, n, argv, 0, out, err, NULL);
}

#define RSH(h, n, out, err, ...)                                                                  \
    rsh((h), (n), (const char *const[]){__VA_ARGS__, NULL}, (out), (err))

/* The lines of text that contain needle. */
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

/* Parses `consul operator raft list-peers`: rows (without the header), voters, leaders, and
 * whether name is listed as a voter (1), a non-voter (0) or not at all (-1). */
static int
peers(const char *table, int *voters, int *leaders, const char *name, int *name_voter)
{
    int rows = 0;
    *voters = *leaders = 0;
    if (name_voter) {
        *name_voter = -1;
    }
    const char *p = strchr(table, '\n');
    if (strncmp(table, "Node", 4) != 0 || !p) {
        return -1;
    }
    for (p++; *p;) {
        char node[64], id[64], addr[64], state[32], voter[16], proto[16];
        if (sscanf(p, "%63s %63s %63s %31s %15s %15s", node, id, addr, state, voter, proto) != 6) {
            return -1;
        }
        rows++;
        *voters += strcmp(voter, "true") == 0;
        *leaders += strcmp(state, "leader") == 0;
        if (name && name_voter && strcmp(node, name) == 0) {
            *name_voter = strcmp(voter, "true") == 0;
        }
        const char *eol = strchr(p, '\n');
        p = eol ? eol + 1 : p + strlen(p);
    }
    return rows;
}

/* The server's state in the simulator (by address), or NULL. */
static cJSON *
sim_srv(const struct nodes *h, const char *address)
{
    char path[128];
    snprintf(path, sizeof(path), "/sim/servers/%s", address);
    long st = 0;
    char *body = NULL;
    sim_ctl(h->sim, "GET", path, NULL, &st, &body);
    cJSON *j = st == 200 ? cJSON_Parse(body) : NULL;
    free(body);
    return j;
}

static bool
jbool(const cJSON *o, const char *k)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, k));
}

static int
jint(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valueint : -1;
}

/* Replaces the first occurrence of from in text by to; the caller frees. */
static char *
replace(const char *text, const char *from, const char *to)
{
    const char *at = strstr(text, from);
    assert_non_null(at);
    return xasprintf("%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
}

/* ---------------------------------------------------------------- group A: 4 + 1 */

static struct nodes *A;

static int
setup_a(void **state)
{
    (void)state;
    long long t0 = sim_now_ms();
    struct nodes_opts o = {.servers = 4, .spares = 1, .speed = 20, .seed = 11};
    A = nodes_start(&o);
    if (!A) {
        return -1;
    }
    long long took = sim_now_ms() - t0;
    print_message("harness: 4 servers + 1 spare up in %lld ms (speed 20)\n", took);
    return took < 10000 ? 0 : -1;
}

static int
teardown_a(void **state)
{
    (void)state;
    nodes_stop(A);
    A = NULL;
    return 0;
}

static void
test_inventory(void **state)
{
    (void)state;
    char *text = nodes_inventory_json(A);
    cJSON *inv = cJSON_Parse(text);
    free(text);
    const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(inv, "nodes");
    assert_int_equal(cJSON_GetArraySize(nodes), 5);
    struct stat st;
    assert_int_equal(stat(A->client_key, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    for (int i = 0; i < 5; i++) {
        const cJSON *e = cJSON_GetArrayItem(nodes, i);
        const struct nodes_node *n = &A->node[i];
        char want[32];
        snprintf(want, sizeof(want), "consul-%d", i + 1);
        assert_string_equal(json_get_str(e, "name", ""), want);
        snprintf(want, sizeof(want), "127.0.0.%d", 11 + i);
        assert_string_equal(json_get_str(e, "address", ""), want);
        assert_int_equal(jint(e, "ssh_port"), n->sshd.port);
        assert_string_equal(json_get_str(e, "ssh_user", ""), A->ssh_user);
        assert_string_equal(json_get_str(e, "ssh_key_path", ""), A->client_key);
        assert_string_equal(json_get_str(e, "compose_dir", ""), n->compose_dir);
        assert_string_equal(json_get_str(e, "data_dir", ""), n->data_dir);
        assert_string_equal(json_get_str(e, "server_state", ""), i < 4 ? "server" : "spare");
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(e, "host_key");
        assert_string_equal(json_get_str(k, "type", ""), "ED25519");
        assert_int_equal(jint(k, "bits"), 256);
        /* the fingerprint is what the node presents */
        struct ssh_host_key seen;
        struct ssh_error err;
        assert_int_equal(ssh_probe(n->address, (uint16_t)n->sshd.port, NULL, 5000, &seen, &err),
                         SSH_OK);
        assert_string_equal(json_get_str(k, "fingerprint", ""), seen.fingerprint);
        assert_non_null(strstr(n->compose_dir, "/mnt/opt/docker-compose/consul"));
        assert_non_null(strstr(n->data_dir, "/mnt/var/lib/container/consul"));
        assert_int_equal(strncmp(n->root, A->dir, strlen(A->dir)), 0);
    }
    const cJSON *addrs = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(inv, "consul"), "addresses");
    assert_int_equal(cJSON_GetArraySize(addrs), 4);
    assert_string_equal(cJSON_GetArrayItem(addrs, 0)->valuestring, "http://127.0.0.11:8500");
    cJSON_Delete(inv);
    /* the compose file is in the seed's shape */
    char *compose = nodes_read_file(A->node[1].compose_file);
    assert_non_null(compose);
    assert_non_null(strstr(compose, "    command: \"agent -server -ui -client=0.0.0.0 "
                                    "-bind=127.0.0.12 -bootstrap-expect=3 "
                                    "-data-dir=/consul/data \\\n      -retry-join=127.0.0.11 "
                                    "\\\n      -retry-join=127.0.0.12 \\\n      -retry-join="
                                    "127.0.0.13 \\\n      -retry-join=127.0.0.14\"\n"));
    free(compose);
    /* the spare has no compose file yet */
    assert_int_equal(access(A->node[4].compose_file, F_OK), -1);
}

static void
test_commands(void **state)
{
    (void)state;
    const struct nodes_node *n1 = &A->node[0];
    const struct nodes_node *n5 = &A->node[4];
    char *out = NULL;
    char *err = NULL;
    assert_int_equal(RSH(A, n1, &out, &err, "docker", "version", "--format",
                         "{{.Server.Version}}"),
                     0);
    assert_string_equal(out, "20.10.24+dfsg1\n");
    free(out);
    free(err);
    assert_int_equal(RSH(A, n5, &out, &err, "docker-compose", "version", "--short"), 0);
    assert_string_equal(out, "1.29.2\n");
    free(out);
    free(err);
    assert_int_equal(RSH(A, n1, &out, &err, "hostname"), 0);
    assert_string_equal(out, "consul-1\n");
    free(out);
    free(err);
    assert_int_equal(RSH(A, n1, &out, &err, "docker", "ps", "--filter", "name=^consul$",
                         "--format", "{{.Names}} {{.Status}}"),
                     0);
    assert_int_equal(strncmp(out, "consul Up ", 10), 0);
    assert_int_equal(count_lines(out, "consul"), 1);
    free(out);
    free(err);
    assert_int_equal(RSH(A, n1, &out, &err, "docker", "logs", "--tail=100", "consul"), 0);
    assert_non_null(strstr(out, "Starting Consul agent"));
    assert_true(count_lines(out, "") <= 100);
    free(out);
    free(err);
    assert_int_equal(RSH(A, n1, &out, &err, "docker", "logs", "--tail=3", "consul"), 0);
    assert_int_equal(count_lines(out, ""), 3);
    free(out);
    free(err);
    /* list-peers: Consul's table, 4 voters, one leader */
    assert_int_equal(RSH(A, n1, &out, &err, "docker", "exec", "consul", "consul", "operator",
                         "raft", "list-peers"),
                     0);
    print_message("%s", out);
    int voters, leaders;
    assert_int_equal(peers(out, &voters, &leaders, NULL, NULL), 4);
    assert_int_equal(voters, 4);
    assert_int_equal(leaders, 1);
    assert_int_equal(strncmp(out, "Node      ID", 12), 0);
    assert_non_null(strstr(out, "  127.0.0.11:8300  leader    true   3\n"));
    free(out);
    free(err);
    assert_int_equal(RSH(A, &A->node[2], &out, &err, "docker", "exec", "consul", "consul",
                         "members"),
                     0);
    assert_int_equal(count_lines(out, "  alive   server  "), 4);
    assert_int_equal(strncmp(out, "Node      Address          Status  Type    Build", 47), 0);
    free(out);
    free(err);
    /* plain tools and port checks between nodes */
    assert_int_equal(RSH(A, n1, &out, &err, "ls", "-A", n1->data_dir), 0);
    assert_non_null(strstr(out, "raft"));
    assert_non_null(strstr(out, "node-id"));
    free(out);
    free(err);
    assert_int_equal(RSH(A, n5, &out, &err, "ls", "-A", n5->data_dir), 0);
    assert_string_equal(out, "");
    free(out);
    free(err);
    assert_int_equal(RSH(A, n5, NULL, NULL, "timeout", "3", "bash", "-c",
                         "</dev/tcp/127.0.0.12/8300"),
                     0);
    assert_int_equal(RSH(A, n5, NULL, NULL, "timeout", "3", "bash", "-c",
                         "</dev/tcp/127.0.0.13/8500"),
                     0);
    assert_int_equal(RSH(A, n1, NULL, NULL, "timeout", "3", "bash", "-c",
                         "</dev/tcp/127.0.0.15/8500"),
                     1);
    /* errors, as the real tools give them */
    assert_int_equal(RSH(A, n5, &out, &err, "docker", "exec", "consul", "consul", "members"), 1);
    assert_string_equal(err, "Error: No such container: consul\n");
    free(out);
    free(err);
    assert_int_equal(RSH(A, n5, &out, &err, "docker", "logs", "--tail=100", "consul"), 1);
    assert_string_equal(err, "Error: No such container: consul\n");
    free(out);
    free(err);
    assert_int_equal(RSH(A, n5, &out, &err, "docker", "ps", "--filter", "name=^consul$",
                         "--format", "{{.Names}} {{.Status}}"),
                     0);
    assert_string_equal(out, "");
    free(out);
    free(err);
    char missing[512];
    snprintf(missing, sizeof(missing), "%s/docker-compose.yaml", n5->compose_dir);
    assert_int_equal(RSH(A, n5, &out, &err, "docker-compose", "-f", missing, "up", "-d"), 1);
    char want[600];
    snprintf(want, sizeof(want),
             "ERROR: .FileNotFoundError: [Errno 2] No such file or directory: '%s'\n", missing);
    assert_string_equal(err, want);
    free(out);
    free(err);
    /* an up -d with nothing changed recreates nothing */
    assert_int_equal(RSH(A, &A->node[1], &out, &err, "docker-compose", "-f",
                         A->node[1].compose_file, "up", "-d"),
                     0);
    assert_string_equal(err, "consul is up-to-date\nconsul-exporter is up-to-date\n");
    free(out);
    free(err);
}

/* Polls list-peers on n until name is listed with want_voter (1, 0, or -1 = absent); returns
 * the ms it took or -1. */
static long long
wait_peer(const struct nodes_node *n, const char *name, int want_voter, int ms)
{
    long long t0 = sim_now_ms();
    while (sim_now_ms() - t0 < ms) {
        char *out = NULL;
        int voters, leaders, v = -2;
        if (RSH(A, n, &out, NULL, "docker", "exec", "consul", "consul", "operator", "raft",
                "list-peers") == 0 &&
            peers(out, &voters, &leaders, name, &v) >= 0 && v == want_voter) {
            free(out);
            return sim_now_ms() - t0;
        }
        free(out);
        sim_sleep_ms(20);
    }
    return -1;
}

/* The seed's backslash trap: a plain scalar keeps the backslashes; the agent gets arguments
 * that start with a space and exits ("config: Unknown extra arguments" on 1.9). */
static void
test_trap_edit_does_not_join(void **state)
{
    (void)state;
    struct nodes_node *n4 = &A->node[3];
    char *orig = nodes_read_file(n4->compose_file);
    char *trap = replace(orig, "command: \"agent", "command: agent");
    char *t2 = replace(trap, "127.0.0.14\"\n", "127.0.0.14\n");
    assert_int_equal(nodes_write_file(n4->compose_file, t2), 0);
    char *out = NULL;
    char *err = NULL;
    assert_int_equal(RSH(A, n4, &out, &err, "docker-compose", "-f", n4->compose_file, "down"),
                     0);
    assert_string_equal(err, "Stopping consul-exporter ... done\nStopping consul          ... "
                             "done\nRemoving consul-exporter ... done\nRemoving consul          "
                             "... done\n");
    free(out);
    free(err);
    assert_int_equal(RSH(A, n4, &out, &err, "docker-compose", "-f", n4->compose_file, "up",
                         "-d"),
                     0);
    assert_string_equal(err, "Creating consul ... done\nCreating consul-exporter ... done\n");
    free(out);
    free(err);
    sim_sleep_ms(300);
    cJSON *s = sim_srv(A, n4->address);
    assert_false(jbool(s, "running"));
    assert_int_equal(jint(s, "serf_status"), 4);
    cJSON_Delete(s);
    assert_int_equal(RSH(A, n4, &out, &err, "docker", "ps", "--filter", "name=^consul$",
                         "--format", "{{.Names}} {{.Status}}"),
                     0);
    assert_int_equal(strncmp(out, "consul Restarting (1) ", 22), 0);
    free(out);
    free(err);
    assert_int_equal(RSH(A, n4, &out, &err, "docker", "logs", "--tail=100", "consul"), 0);
    assert_non_null(strstr(out, "==> config: Unknown extra arguments: [ -retry-join=127.0.0.11 "
                                " -retry-join=127.0.0.12  -retry-join=127.0.0.13  "
                                "-retry-join=127.0.0.14]\n"));
    assert_true(count_lines(out, "Unknown extra arguments") >= 2); /* it restarts in a loop */
    free(out);
    free(err);
    assert_int_equal(RSH(A, n4, &out, &err, "docker", "exec", "consul", "consul", "members"), 1);
    assert_non_null(strstr(err, "is restarting, wait until the container is running"));
    free(out);
    free(err);
    /* fixed: back in the cluster (from its serf snapshot) */
    assert_int_equal(nodes_write_file(n4->compose_file, orig), 0);
    assert_int_equal(RSH(A, n4, &out, &err, "docker-compose", "-f", n4->compose_file, "up",
                         "-d"),
                     0);
    assert_string_equal(err, "Recreating consul ... done\nRecreating consul-exporter ... done\n");
    free(out);
    free(err);
    assert_true(wait_peer(&A->node[0], "consul-4", 1, 5000) >= 0);
    s = sim_srv(A, n4->address);
    assert_true(jbool(s, "running"));
    assert_int_equal(jint(s, "serf_status"), 1);
    cJSON_Delete(s);
    free(orig);
    free(trap);
    free(t2);
}

/* A bind address that is not the host's: the agent cannot listen and exits. */
static void
test_wrong_bind(void **state)
{
    (void)state;
    struct nodes_node *n3 = &A->node[2];
    char *orig = nodes_read_file(n3->compose_file);
    char *bad = replace(orig, "-bind=127.0.0.13", "-bind=127.0.0.12");
    assert_int_equal(nodes_write_file(n3->compose_file, bad), 0);
    char *out = NULL;
    char *err = NULL;
    assert_int_equal(RSH(A, n3, &out, &err, "docker-compose", "-f", n3->compose_file, "up",
                         "-d"),
                     0);
    assert_non_null(strstr(err, "Recreating consul ... done"));
    free(out);
    free(err);
    assert_int_equal(RSH(A, n3, &out, &err, "docker", "logs", "consul"), 0);
    assert_non_null(strstr(out, "[ERROR] agent: Error starting agent: error=\"Failed to start "
                                "Consul server: Failed to start RPC layer: listen tcp "
                                "127.0.0.12:8300: bind: cannot assign requested address\""));
    free(out);
    free(err);
    cJSON *s = sim_srv(A, n3->address);
    assert_false(jbool(s, "running"));
    cJSON_Delete(s);
    assert_int_equal(nodes_write_file(n3->compose_file, orig), 0);
    assert_int_equal(RSH(A, n3, NULL, NULL, "docker-compose", "-f", n3->compose_file, "up", "-d"),
                     0);
    assert_true(wait_peer(&A->node[0], "consul-3", 1, 5000) >= 0);
    free(orig);
    free(bad);
}

/* The seed's rolling add by hand: consul-5's file (the others' with its own -bind and every
 * server in -retry-join), `up -d` there: a non-voter first, a voter after autopilot's
 * stabilization time (10 s / 20). */
static void
test_add_fifth_by_hand(void **state)
{
    (void)state;
    struct nodes_node *n5 = &A->node[4];
    const char *join[] = {"127.0.0.11", "127.0.0.12", "127.0.0.13", "127.0.0.14", "127.0.0.15"};
    char *text = nodes_compose_text(A, n5->address, join, 5);
    assert_int_equal(nodes_write_file(n5->compose_file, text), 0);
    free(text);
    char *out = NULL;
    char *err = NULL;
    long long t0 = sim_now_ms();
    assert_int_equal(RSH(A, n5, &out, &err, "docker-compose", "-f", n5->compose_file, "up",
                         "-d"),
                     0);
    assert_string_equal(err, "Creating consul ... done\nCreating consul-exporter ... done\n");
    free(out);
    free(err);
    /* the non-voter phase lasts 500 ms: watched in the simulator, faster than SSH */
    long long nonvoter = -1;
    while (sim_now_ms() - t0 < 3000 && nonvoter < 0) {
        cJSON *s = sim_srv(A, n5->address);
        if (jbool(s, "in_raft") && !jbool(s, "voter")) {
            nonvoter = sim_now_ms() - t0;
        }
        cJSON_Delete(s);
        sim_sleep_ms(5);
    }
    long long voter = wait_peer(&A->node[0], "consul-5", 1, 5000);
    print_message("consul-5: non-voter after %lld ms, a voter in list-peers %lld ms later\n",
                  nonvoter, voter);
    assert_true(nonvoter >= 0);
    assert_true(voter >= 0);
    assert_true(sim_now_ms() - t0 >= 500);
    int voters, leaders;
    assert_int_equal(RSH(A, n5, &out, &err, "docker", "exec", "consul", "consul", "operator",
                         "raft", "list-peers"),
                     0);
    assert_int_equal(peers(out, &voters, &leaders, NULL, NULL), 5);
    assert_int_equal(voters, 5);
    assert_int_equal(leaders, 1);
    free(out);
    free(err);
    /* its data dir now holds raft state of this cluster */
    char marker[512];
    snprintf(marker, sizeof(marker), "%s/raft/raft.db", n5->data_dir);
    char *m = nodes_read_file(marker);
    assert_non_null(m);
    assert_non_null(strstr(m, A->cluster_id));
    free(m);
    /* and the docker log is its own */
    assert_int_equal(RSH(A, n5, &out, &err, "docker", "logs", "consul"), 0);
    assert_non_null(strstr(out, "Node name: 'consul-5'"));
    assert_non_null(strstr(out, "agent: Join cluster completed"));
    free(out);
    free(err);
}

/* consul leave: the agent leaves raft and exits; under `restart: always` docker starts it
 * again at once and it retry-joins, as on a real host, so `down` after it leaves a failed
 * server in raft; force-leave from another server then removes it. */
static void
test_leave_restart_force_leave(void **state)
{
    (void)state;
    struct nodes_node *n5 = &A->node[4];
    char *out = NULL;
    char *err = NULL;
    cJSON *s = sim_srv(A, n5->address);
    int starts = jint(s, "starts");
    cJSON_Delete(s);
    assert_int_equal(RSH(A, n5, &out, &err, "docker", "exec", "consul", "consul", "leave"), 0);
    assert_string_equal(out, "Graceful leave complete\n");
    free(out);
    free(err);
    long long t0 = sim_now_ms();
    bool back = false;
    while (!back && sim_now_ms() - t0 < 3000) {
        s = sim_srv(A, n5->address);
        back = jint(s, "starts") == starts + 1 && jbool(s, "in_raft");
        cJSON_Delete(s);
        sim_sleep_ms(10);
    }
    assert_true(back);
    assert_int_equal(RSH(A, n5, &out, &err, "docker", "logs", "consul"), 0);
    assert_int_equal(count_lines(out, "Graceful leave complete"), 1);
    assert_int_equal(count_lines(out, "==> Starting Consul agent..."), 2);
    free(out);
    free(err);
    assert_int_equal(RSH(A, n5, NULL, NULL, "docker-compose", "-f", n5->compose_file, "down"), 0);
    s = sim_srv(A, n5->address);
    assert_false(jbool(s, "running"));
    assert_true(jbool(s, "in_raft"));
    assert_int_equal(jint(s, "serf_status"), 4);
    cJSON_Delete(s);
    /* force-leave and remove-peer go to the agent API */
    assert_int_equal(RSH(A, &A->node[0], &out, &err, "docker", "exec", "consul", "consul",
                         "force-leave", "consul-5"),
                     0);
    assert_string_equal(out, "");
    free(out);
    free(err);
    assert_true(wait_peer(&A->node[0], "consul-5", -1, 1000) >= 0);
    s = sim_srv(A, n5->address);
    assert_false(jbool(s, "in_raft"));
    assert_int_equal(jint(s, "serf_status"), 3);
    cJSON_Delete(s);
    assert_int_equal(RSH(A, &A->node[0], &out, &err, "docker", "exec", "consul", "consul",
                         "force-leave", "nope"),
                     1);
    assert_string_equal(err, "Error force leaving: Unexpected response code: 500 (agent: No "
                             "node found with name 'nope')\n");
    free(out);
    free(err);
    assert_int_equal(RSH(A, &A->node[0], &out, &err, "docker", "exec", "consul", "consul",
                         "operator", "raft", "remove-peer", "-address=127.0.0.15:8300"),
                     1);
    assert_string_equal(err, "Error removing peer: Unexpected response code: 500 (address "
                             "\"127.0.0.15:8300\" was not found in the Raft configuration)\n");
    free(out);
    free(err);
}

int
main(void)
{
    const struct CMUnitTest a[] = {
        cmocka_unit_test(test_inventory),
        cmocka_unit_test(test_commands),
        cmocka_unit_test(test_trap_edit_does_not_join),
        cmocka_unit_test(test_wrong_bind),
        cmocka_unit_test(test_add_fifth_by_hand),
        cmocka_unit_test(test_leave_restart_force_leave),
    };
    return cmocka_run_group_tests_name("servers", a, setup_a, teardown_a);
}
