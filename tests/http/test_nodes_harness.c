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
#include <sys/wait.h>
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

/* One open connection per node, reused by rsh (an SSH handshake costs more than a command);
 * dropped when a command fails on it, and by conn_drop_all at the end of a group. */
static struct {
    const struct nodes_node *node;
    char fingerprint[64];
    struct ssh_conn *c;
} conns[2 * NODES_MAX];

static void
conn_drop_all(void)
{
    for (size_t i = 0; i < ARRAY_LEN(conns); i++) {
        ssh_close(conns[i].c);
        conns[i].c = NULL;
        conns[i].node = NULL;
    }
}

/* Runs argv (NULL-terminated; words in the safe alphabet are constants, anything else a
 * quoted value) on node n over SSH; returns the exit status (-1 on an SSH failure, with
 * *rc_out the ssh_rc; with rc_out a new connection is made for this command alone). *out
 * and *err (may be NULL) get the output, the caller frees. */
static int
rsh_full(const struct nodes *h, const struct nodes_node *n, const char *const *argv, int timeout_ms,
         char **out, char **err, int *rc_out)
{
    struct sh_cmd cmd;
    sh_cmd_init(&cmd);
    struct sh_arg args[32];
    size_t argc = 0;
    for (; argv[argc]; argc++) {
        args[argc] = safe_word(argv[argc]) ? SH_W(argv[argc]) : SH_V(argv[argc]);
    }
    assert_int_equal(sh_cmd_add(&cmd, args, argc, NULL), SH_OK);
    size_t slot = ARRAY_LEN(conns);
    for (size_t i = 0; !rc_out && i < ARRAY_LEN(conns) && slot == ARRAY_LEN(conns); i++) {
        if (conns[i].node == n && strcmp(conns[i].fingerprint, n->host_key.fingerprint) == 0) {
            slot = i;
        }
    }
    for (size_t i = 0; !rc_out && i < ARRAY_LEN(conns) && slot == ARRAY_LEN(conns); i++) {
        if (!conns[i].node) {
            slot = i;
        }
    }
    struct ssh_conn *c = slot < ARRAY_LEN(conns) ? conns[slot].c : NULL;
    struct ssh_error e;
    int rc = SSH_OK;
    if (!c) {
        struct ssh_target t = target_of(h, n, NULL);
        rc = ssh_connect(&t, &c, &e);
    }
    int status = -1;
    struct out r;
    buf_init(&r.o, 1 << 20);
    buf_init(&r.e, 1 << 20);
    if (rc == SSH_OK) {
        struct ssh_exec_opts eo = {
            .timeout_ms = timeout_ms ? timeout_ms : 30000, .on_line = on_line, .arg = &r};
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
    if (rc == SSH_OK && slot < ARRAY_LEN(conns)) {
        conns[slot].node = n;
        snprintf(conns[slot].fingerprint, sizeof(conns[slot].fingerprint), "%s",
                 n->host_key.fingerprint);
        conns[slot].c = c;
    } else {
        ssh_close(c);
        if (slot < ARRAY_LEN(conns)) {
            conns[slot].c = NULL;
            conns[slot].node = NULL;
        }
    }
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

#define RSH(h, n, out, err, ...)                                                                   \
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
    conn_drop_all();
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
    assert_int_equal(RSH(A, n1, &out, &err, "docker", "version", "--format", "{{.Server.Version}}"),
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
    assert_int_equal(RSH(A, n1, &out, &err, "docker", "ps", "--filter", "name=^consul$", "--format",
                         "{{.Names}} {{.Status}}"),
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
    assert_int_equal(
        RSH(A, &A->node[2], &out, &err, "docker", "exec", "consul", "consul", "members"), 0);
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
    assert_int_equal(
        RSH(A, n5, NULL, NULL, "timeout", "3", "bash", "-c", "</dev/tcp/127.0.0.12/8300"), 0);
    assert_int_equal(
        RSH(A, n5, NULL, NULL, "timeout", "3", "bash", "-c", "</dev/tcp/127.0.0.13/8500"), 0);
    assert_int_equal(
        RSH(A, n1, NULL, NULL, "timeout", "3", "bash", "-c", "</dev/tcp/127.0.0.15/8500"), 1);
    /* errors, as the real tools give them */
    assert_int_equal(RSH(A, n5, &out, &err, "docker", "exec", "consul", "consul", "members"), 1);
    assert_string_equal(err, "Error: No such container: consul\n");
    free(out);
    free(err);
    assert_int_equal(RSH(A, n5, &out, &err, "docker", "logs", "--tail=100", "consul"), 1);
    assert_string_equal(err, "Error: No such container: consul\n");
    free(out);
    free(err);
    assert_int_equal(RSH(A, n5, &out, &err, "docker", "ps", "--filter", "name=^consul$", "--format",
                         "{{.Names}} {{.Status}}"),
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

/* Waits until the simulator shows the server at address in raft with want_voter (1, 0, or
 * -1 = not in raft), then checks that `consul operator raft list-peers` over SSH on n shows
 * name the same way; returns the ms it took, or -1. (SSH round trips take a few hundred ms,
 * so the polling is done in the simulator.) */
static long long
wait_peer_at(const struct nodes *h, const struct nodes_node *n, const char *address,
             const char *name, int want_voter, int ms)
{
    long long t0 = sim_now_ms();
    bool seen = false;
    while (!seen && sim_now_ms() - t0 < ms) {
        cJSON *s = sim_srv(h, address);
        int v = !jbool(s, "in_raft") ? -1 : jbool(s, "voter");
        cJSON_Delete(s);
        seen = v == want_voter;
        if (!seen) {
            sim_sleep_ms(10);
        }
    }
    char *out = NULL;
    int voters, leaders, v = -2;
    if (!seen ||
        rsh(h, n,
            (const char *const[]){"docker", "exec", "consul", "consul", "operator", "raft",
                                  "list-peers", NULL},
            &out, NULL) != 0 ||
        peers(out, &voters, &leaders, name, &v) < 0 || v != want_voter) {
        free(out);
        return -1;
    }
    free(out);
    return sim_now_ms() - t0;
}

static long long
wait_peer(const struct nodes_node *n, const char *name, int want_voter, int ms)
{
    const struct nodes_node *target = nodes_get(A, name);
    assert_non_null(target);
    return wait_peer_at(A, n, target->address, name, want_voter, ms);
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
    assert_int_equal(RSH(A, n4, &out, &err, "docker-compose", "-f", n4->compose_file, "down"), 0);
    assert_string_equal(err, "Stopping consul-exporter ... done\nStopping consul          ... "
                             "done\nRemoving consul-exporter ... done\nRemoving consul          "
                             "... done\n");
    free(out);
    free(err);
    assert_int_equal(RSH(A, n4, &out, &err, "docker-compose", "-f", n4->compose_file, "up", "-d"),
                     0);
    assert_string_equal(err, "Creating consul ... done\nCreating consul-exporter ... done\n");
    free(out);
    free(err);
    sim_sleep_ms(300);
    cJSON *s = sim_srv(A, n4->address);
    assert_false(jbool(s, "running"));
    assert_int_equal(jint(s, "serf_status"), 4);
    cJSON_Delete(s);
    assert_int_equal(RSH(A, n4, &out, &err, "docker", "ps", "--filter", "name=^consul$", "--format",
                         "{{.Names}} {{.Status}}"),
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
    assert_int_equal(RSH(A, n4, &out, &err, "docker-compose", "-f", n4->compose_file, "up", "-d"),
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

/* Waits until the simulator shows the server at address with that serf status. */
static bool
wait_serf(const struct nodes *h, const char *address, int status, int ms)
{
    long long t0 = sim_now_ms();
    for (;;) {
        cJSON *s = sim_srv(h, address);
        bool ok = jint(s, "serf_status") == status && !jbool(s, "isolated");
        cJSON_Delete(s);
        if (ok) {
            return true;
        }
        if (sim_now_ms() - t0 > ms) {
            return false;
        }
        sim_sleep_ms(10);
    }
}

/* Member status of name as node n's agent reports it (via `consul members` over SSH): "alive",
 * "failed", "left", or "" when absent. */
static void
member_state(const struct nodes_node *n, const char *name, char *state, size_t len)
{
    char *out = NULL;
    state[0] = '\0';
    if (RSH(A, n, &out, NULL, "docker", "exec", "consul", "consul", "members") == 0) {
        for (const char *p = out; p && *p;) {
            char node[64], addr[64], st[16];
            if (sscanf(p, "%63s %63s %15s", node, addr, st) == 3 && strcmp(node, name) == 0) {
                snprintf(state, len, "%s", st);
            }
            p = strchr(p, '\n');
            p = p ? p + 1 : NULL;
        }
    }
    free(out);
}

/* Removing a server's -retry-join lines: restarted with its data dir it still rejoins (the
 * serf snapshot in the data dir lists its peers, as on a real host); with an empty data dir
 * (a reinstalled host) it runs alone and the others keep it failed. */
static void
test_retry_join_removed(void **state)
{
    (void)state;
    struct nodes_node *n2 = &A->node[1];
    char *orig = nodes_read_file(n2->compose_file);
    char *none = nodes_compose_text(A, n2->address, NULL, 0);
    assert_non_null(strstr(none, "-data-dir=/consul/data\"\n"));
    assert_null(strstr(none, "retry-join"));
    assert_int_equal(nodes_write_file(n2->compose_file, none), 0);
    assert_int_equal(RSH(A, n2, NULL, NULL, "docker-compose", "-f", n2->compose_file, "down"), 0);
    assert_int_equal(RSH(A, n2, NULL, NULL, "docker-compose", "-f", n2->compose_file, "up", "-d"),
                     0);
    char st[16];
    assert_true(wait_serf(A, n2->address, 1, 3000));
    member_state(&A->node[0], "consul-2", st, sizeof(st));
    assert_string_equal(st, "alive");
    /* the same with an empty data dir: not a member any more */
    assert_int_equal(RSH(A, n2, NULL, NULL, "docker-compose", "-f", n2->compose_file, "down"), 0);
    char *out = NULL;
    char *err = NULL;
    assert_int_equal(RSH(A, n2, NULL, NULL, "rm", "-rf", n2->data_dir), 0);
    assert_int_equal(RSH(A, n2, NULL, NULL, "mkdir", "-p", n2->data_dir), 0);
    assert_int_equal(RSH(A, n2, &out, &err, "docker-compose", "-f", n2->compose_file, "up", "-d"),
                     0);
    assert_string_equal(err, "Creating consul ... done\nCreating consul-exporter ... done\n");
    free(out);
    free(err);
    sim_sleep_ms(300);
    member_state(&A->node[0], "consul-2", st, sizeof(st));
    assert_string_equal(st, "failed");
    member_state(n2, "consul-2", st, sizeof(st));
    assert_string_equal(st, "alive"); /* it sees only itself */
    member_state(n2, "consul-1", st, sizeof(st));
    assert_string_equal(st, "");
    assert_int_equal(RSH(A, n2, &out, &err, "docker", "exec", "consul", "consul", "operator",
                         "raft", "list-peers"),
                     1);
    assert_string_equal(err, "Error getting peers: Failed to retrieve raft configuration: "
                             "Unexpected response code: 500 (No cluster leader)\n");
    free(out);
    free(err);
    cJSON *s = sim_srv(A, n2->address);
    assert_true(jbool(s, "running"));
    assert_true(jbool(s, "isolated"));
    cJSON_Delete(s);
    /* the retry-join lines back: it joins */
    assert_int_equal(nodes_write_file(n2->compose_file, orig), 0);
    assert_int_equal(RSH(A, n2, NULL, NULL, "docker-compose", "-f", n2->compose_file, "up", "-d"),
                     0);
    assert_true(wait_serf(A, n2->address, 1, 3000));
    member_state(&A->node[0], "consul-2", st, sizeof(st));
    assert_string_equal(st, "alive");
    assert_true(wait_peer(&A->node[0], "consul-2", 1, 5000) >= 0);
    free(orig);
    free(none);
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
    assert_int_equal(RSH(A, n3, &out, &err, "docker-compose", "-f", n3->compose_file, "up", "-d"),
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
    assert_int_equal(RSH(A, n5, &out, &err, "docker-compose", "-f", n5->compose_file, "up", "-d"),
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

/* ---------------------------------------------------------------- group B: faults */

static struct nodes *B;

static int
setup_b(void **state)
{
    (void)state;
    struct nodes_opts o = {
        .servers = 3, .spares = 3, .speed = 20, .seed = 5, .ip_base = "127.0.0.41"};
    B = nodes_start(&o);
    return B ? 0 : -1;
}

static int
teardown_b(void **state)
{
    (void)state;
    conn_drop_all();
    nodes_stop(B);
    B = NULL;
    return 0;
}

#define RSHB(n, out, err, ...) rsh(B, (n), (const char *const[]){__VA_ARGS__, NULL}, (out), (err))

/* Writes the new server's compose file on spare n (every server and itself in -retry-join). */
static void
write_new_server_file(struct nodes_node *n)
{
    const char *join[] = {"127.0.0.41", "127.0.0.42", "127.0.0.43", n->address};
    char *text = nodes_compose_text(B, n->address, join, 4);
    assert_int_equal(nodes_write_file(n->compose_file, text), 0);
    free(text);
}

/* Waits until the server's log in the simulator has needle, then checks that
 * `docker logs --tail=100 consul` over SSH shows it. */
static bool
log_has(struct nodes_node *n, const char *needle, int ms)
{
    long long t0 = sim_now_ms();
    char path[128];
    snprintf(path, sizeof(path), "/sim/servers/%s/log?tail=100", n->address);
    bool found = false;
    while (!found && sim_now_ms() - t0 < ms) {
        long st = 0;
        char *body = NULL;
        sim_ctl(B->sim, "GET", path, NULL, &st, &body);
        found = body && strstr(body, needle) != NULL;
        free(body);
        if (!found) {
            sim_sleep_ms(20);
        }
    }
    char *out = NULL;
    found = found && RSHB(n, &out, NULL, "docker", "logs", "--tail=100", "consul") == 0 &&
            strstr(out, needle) != NULL;
    free(out);
    return found;
}

static void
test_fault_sshd_stopped(void **state)
{
    (void)state;
    struct nodes_node *n = &B->node[3];
    assert_int_equal(nodes_sshd_stop(n), 0);
    int rc = 0;
    assert_int_equal(rsh_full(B, n, (const char *const[]){"hostname", NULL}, 0, NULL, NULL, &rc),
                     -1);
    assert_int_equal(rc, SSH_ERR_CONNECT_REFUSED);
    assert_int_equal(nodes_sshd_start(n), 0);
    char *out = NULL;
    assert_int_equal(RSHB(n, &out, NULL, "hostname"), 0);
    assert_string_equal(out, "consul-4\n");
    free(out);
}

static void
test_fault_command_fails(void **state)
{
    (void)state;
    struct nodes_node *n = &B->node[0];
    struct nodes_fault f = {.match = "docker-compose version",
                            .exit_status = 3,
                            .stderr_text = "docker-compose: boom\n",
                            .times = 1};
    assert_int_equal(nodes_fault_add(n, &f), 0);
    char *out = NULL;
    char *err = NULL;
    assert_int_equal(RSHB(n, &out, &err, "docker-compose", "version", "--short"), 3);
    assert_string_equal(out, "");
    assert_string_equal(err, "docker-compose: boom\n");
    free(out);
    free(err);
    assert_int_equal(RSHB(n, &out, &err, "docker-compose", "version", "--short"), 0); /* once */
    assert_string_equal(out, "1.29.2\n");
    free(out);
    free(err);
    /* a plain tool on the node fails too */
    struct nodes_fault mv = {
        .match = "mv ", .exit_status = 1, .stderr_text = "mv: cannot move: Permission denied\n"};
    assert_int_equal(nodes_fault_add(n, &mv), 0);
    char a[600], b[600];
    snprintf(a, sizeof(a), "%s/a", n->root);
    snprintf(b, sizeof(b), "%s/b", n->root);
    assert_int_equal(nodes_write_file(a, "x"), 0);
    assert_int_equal(RSHB(n, &out, &err, "mv", a, b), 1);
    assert_string_equal(err, "mv: cannot move: Permission denied\n");
    assert_int_equal(access(a, F_OK), 0);
    free(out);
    free(err);
    nodes_fault_clear(n);
    assert_int_equal(RSHB(n, NULL, NULL, "mv", a, b), 0);
    assert_int_equal(access(b, F_OK), 0);
}

static void
test_fault_hang(void **state)
{
    (void)state;
    struct nodes_node *n = &B->node[1];
    struct nodes_fault f = {.match = "docker logs", .hang = true};
    assert_int_equal(nodes_fault_add(n, &f), 0);
    int rc = 0;
    long long t0 = sim_now_ms();
    assert_int_equal(rsh_full(B, n, (const char *const[]){"docker", "logs", "consul", NULL}, 800,
                              NULL, NULL, &rc),
                     -1);
    assert_int_equal(rc, SSH_ERR_COMMAND_TIMEOUT);
    assert_true(sim_now_ms() - t0 >= 800);
    /* the runner killed the remote process group: nothing hangs on */
    char needle[600];
    snprintf(needle, sizeof(needle), "--root %s docker logs", n->root);
    long long deadline = sim_now_ms() + 3000;
    while (nodes_processes_with(needle) > 0 && sim_now_ms() < deadline) {
        sim_sleep_ms(50);
    }
    assert_int_equal(nodes_processes_with(needle), 0);
    nodes_fault_clear(n);
    assert_int_equal(RSHB(n, NULL, NULL, "docker", "logs", "--tail=1", "consul"), 0);
}

static void
test_fault_host_key_changed(void **state)
{
    (void)state;
    struct nodes_node *n = &B->node[2];
    struct sshd_fp old = n->host_key;
    assert_int_equal(nodes_hostkey_change(n, "ed25519"), 0);
    assert_string_not_equal(old.fingerprint, n->host_key.fingerprint);
    struct ssh_target t = target_of(B, n, &old);
    struct ssh_conn *c = NULL;
    struct ssh_error e;
    assert_int_equal(ssh_connect(&t, &c, &e), SSH_ERR_HOST_KEY_CHANGED);
    assert_null(c);
    assert_string_equal(e.presented.fingerprint, n->host_key.fingerprint);
    /* the inventory shows the new key */
    char *text = nodes_inventory_json(B);
    assert_non_null(strstr(text, n->host_key.fingerprint));
    assert_null(strstr(text, old.fingerprint));
    free(text);
    assert_int_equal(RSHB(n, NULL, NULL, "hostname"), 0);
}

/* The seed's disaster 2: a new host whose hostname is already a member's name. */
static void
test_fault_duplicate_hostname(void **state)
{
    (void)state;
    struct nodes_node *n = &B->node[3];
    assert_int_equal(nodes_set_hostname(n, "consul-2"), 0);
    char *out = NULL;
    assert_int_equal(RSHB(n, &out, NULL, "hostname"), 0);
    assert_string_equal(out, "consul-2\n");
    free(out);
    write_new_server_file(n);
    assert_int_equal(RSHB(n, NULL, NULL, "docker-compose", "-f", n->compose_file, "up", "-d"), 0);
    assert_true(log_has(n,
                        "Node name conflicts with another node at 127.0.0.42:8301. Names must "
                        "be unique!",
                        3000));
    assert_int_equal(RSHB(&B->node[0], &out, NULL, "docker", "exec", "consul", "consul", "members"),
                     0);
    assert_int_equal(count_lines(out, " server "), 3);
    assert_null(strstr(out, "127.0.0.44"));
    free(out);
    /* the fix the seed gives: rename the host, down and up */
    assert_int_equal(RSHB(n, NULL, NULL, "hostname", "consul-4"), 0);
    assert_int_equal(RSHB(n, NULL, NULL, "docker-compose", "-f", n->compose_file, "down"), 0);
    assert_int_equal(RSHB(n, NULL, NULL, "docker-compose", "-f", n->compose_file, "up", "-d"), 0);
    assert_true(wait_serf(B, n->address, 1, 3000));
    assert_int_equal(RSHB(&B->node[0], &out, NULL, "docker", "exec", "consul", "consul", "members"),
                     0);
    assert_non_null(strstr(out, "consul-4  127.0.0.44:8301  alive"));
    free(out);
}

static void
test_fault_missing_compose(void **state)
{
    (void)state;
    struct nodes_node *n = &B->node[2];
    char *orig = nodes_read_file(n->compose_file);
    assert_int_equal(nodes_remove_compose(n), 0);
    char *out = NULL;
    char *err = NULL;
    assert_int_equal(RSHB(n, &out, &err, "docker-compose", "-f", n->compose_file, "down"), 1);
    char want[700];
    snprintf(want, sizeof(want),
             "ERROR: .FileNotFoundError: [Errno 2] No such file or directory: '%s'\n",
             n->compose_file);
    assert_string_equal(err, want);
    free(out);
    free(err);
    assert_int_equal(RSHB(n, NULL, NULL, "test", "-e", n->compose_file), 1);
    cJSON *s = sim_srv(B, n->address);
    assert_true(jbool(s, "running")); /* nothing was stopped */
    cJSON_Delete(s);
    assert_int_equal(nodes_write_file(n->compose_file, orig), 0);
    free(orig);
}

static void
test_fault_old_versions(void **state)
{
    (void)state;
    struct nodes_node *n = &B->node[4];
    assert_int_equal(nodes_set_versions(B, n, "18.09.9", "1.25.0"), 0);
    char *out = NULL;
    assert_int_equal(RSHB(n, &out, NULL, "docker", "version", "--format", "{{.Server.Version}}"),
                     0);
    assert_string_equal(out, "18.09.9\n");
    free(out);
    assert_int_equal(RSHB(n, &out, NULL, "docker-compose", "version", "--short"), 0);
    assert_string_equal(out, "1.25.0\n");
    free(out);
    assert_int_equal(nodes_set_versions(B, n, NULL, "1.29.2"), 0);
    assert_int_equal(RSHB(n, &out, NULL, "docker", "version", "--format", "{{.Server.Version}}"),
                     0);
    assert_string_equal(out, "18.09.9\n");
    free(out);
}

/* Raft state left in the data dir by an earlier membership: the server chases its old peers
 * and never joins; emptied, it joins. */
static void
test_fault_dirty_data_dir(void **state)
{
    (void)state;
    struct nodes_node *n = &B->node[5];
    assert_int_equal(nodes_dirty_data_dir(n), 0);
    char *out = NULL;
    assert_int_equal(RSHB(n, &out, NULL, "ls", "-A", n->data_dir), 0);
    assert_string_equal(out, "node-id\nraft\nserf\n");
    free(out);
    write_new_server_file(n);
    assert_int_equal(RSHB(n, NULL, NULL, "docker-compose", "-f", n->compose_file, "up", "-d"), 0);
    assert_true(log_has(n, "failed to make requestVote RPC", 3000));
    assert_true(log_has(n, "127.0.99.1:8300", 100));
    cJSON *s = sim_srv(B, n->address);
    assert_true(jbool(s, "chasing_old_peers"));
    assert_false(jbool(s, "joined"));
    cJSON_Delete(s);
    assert_int_equal(RSHB(n, NULL, NULL, "docker-compose", "-f", n->compose_file, "down"), 0);
    assert_int_equal(RSHB(n, NULL, NULL, "rm", "-rf", n->data_dir), 0);
    assert_int_equal(RSHB(n, NULL, NULL, "mkdir", "-p", n->data_dir), 0);
    assert_int_equal(RSHB(n, NULL, NULL, "docker-compose", "-f", n->compose_file, "up", "-d"), 0);
    long long t0 = sim_now_ms();
    bool joined = false;
    while (!joined && sim_now_ms() - t0 < 3000) {
        s = sim_srv(B, n->address);
        joined = jbool(s, "joined") && !jbool(s, "chasing_old_peers");
        cJSON_Delete(s);
        sim_sleep_ms(20);
    }
    assert_true(joined);
}

/* ---------------------------------------------------------------- group C: clean-up */

/* Ephemeral ports; after nodes_stop nothing runs and nothing is left on disk, even with a
 * command hanging on a node. */
static void
test_stop_leaves_nothing(void **state)
{
    (void)state;
    struct nodes_opts o = {
        .servers = 1, .spares = 1, .speed = 20, .ephemeral_ports = true, .ip_base = "127.0.0.61"};
    struct nodes *h = nodes_start(&o);
    assert_non_null(h);
    assert_null(strstr(h->sim->servers[0].http, ":8500"));
    char dir[256];
    snprintf(dir, sizeof(dir), "%s", h->dir);
    pid_t sim_pid = h->sim->pid;
    pid_t sshd_pid[2] = {h->node[0].sshd.pid, h->node[1].sshd.pid};
    struct nodes_fault f = {.match = "docker ps", .hang = true};
    assert_int_equal(nodes_fault_add(&h->node[0], &f), 0);
    pid_t child = fork();
    if (child == 0) {
        nodes_run(h, &h->node[0], "docker ps", NULL);
        _exit(0);
    }
    sim_sleep_ms(500);
    assert_true(nodes_processes_with(dir) > 0);
    nodes_stop(h);
    assert_int_equal(access(dir, F_OK), -1);
    assert_int_equal(kill(sim_pid, 0), -1);
    assert_int_equal(kill(sshd_pid[0], 0), -1);
    assert_int_equal(kill(sshd_pid[1], 0), -1);
    long long deadline = sim_now_ms() + 3000;
    while (nodes_processes_with(dir) > 0 && sim_now_ms() < deadline) {
        sim_sleep_ms(50);
    }
    assert_int_equal(nodes_processes_with(dir), 0);
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
}

/* tests/nodes/harness.sh start|status|stop runs build/fake-nodes in the background. */
static void
test_harness_script(void **state)
{
    (void)state;
    const char *src = getenv("CONSULATE_SRC") ? getenv("CONSULATE_SRC") : ".";
    const char *simbin = getenv("CONSUL_SIM_BIN") ? getenv("CONSUL_SIM_BIN") : "build/consul-sim";
    char bin[600];
    snprintf(bin, sizeof(bin), "%.*s/fake-nodes",
             strrchr(simbin, '/') ? (int)(strrchr(simbin, '/') - simbin) : 1,
             strrchr(simbin, '/') ? simbin : ".");
    char state_dir[] = "/tmp/consulate-fn-state-XXXXXX";
    assert_non_null(mkdtemp(state_dir));
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "FAKE_NODES_BIN='%s' FAKE_NODES_STATE='%s' '%s/tests/nodes/harness.sh' start "
             "--servers 2 --spares 1 --speed 20 --ephemeral-ports --ip-base 127.0.0.71 "
             ">'%s/out.json'",
             bin, state_dir, src, state_dir);
    assert_int_equal(system(cmd), 0);
    char path[600];
    snprintf(path, sizeof(path), "%s/out.json", state_dir);
    char *text = nodes_read_file(path);
    cJSON *inv = text ? cJSON_Parse(text) : NULL;
    free(text);
    assert_non_null(inv);
    const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(inv, "nodes");
    assert_int_equal(cJSON_GetArraySize(nodes), 3);
    const cJSON *n3 = cJSON_GetArrayItem(nodes, 2);
    assert_string_equal(json_get_str(n3, "server_state", ""), "spare");
    struct ssh_host_key seen;
    struct ssh_error e;
    assert_int_equal(ssh_probe("127.0.0.73", (uint16_t)jint(n3, "ssh_port"), NULL, 5000, &seen, &e),
                     SSH_OK);
    assert_string_equal(
        seen.fingerprint,
        json_get_str(cJSON_GetObjectItemCaseSensitive(n3, "host_key"), "fingerprint", ""));
    char dir[256];
    snprintf(dir, sizeof(dir), "%s", json_get_str(inv, "dir", ""));
    cJSON_Delete(inv);
    assert_int_equal(access(dir, F_OK), 0);
    snprintf(cmd, sizeof(cmd),
             "FAKE_NODES_STATE='%s' '%s/tests/nodes/harness.sh' status >/dev/null", state_dir, src);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof(cmd), "FAKE_NODES_STATE='%s' '%s/tests/nodes/harness.sh' stop", state_dir,
             src);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(access(dir, F_OK), -1);
    assert_int_equal(nodes_processes_with(dir), 0);
    snprintf(cmd, sizeof(cmd),
             "FAKE_NODES_STATE='%s' '%s/tests/nodes/harness.sh' status >/dev/null", state_dir, src);
    assert_int_not_equal(system(cmd), 0);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", state_dir);
    assert_int_equal(system(cmd), 0);
}

int
main(void)
{
    const struct CMUnitTest a[] = {
        cmocka_unit_test(test_inventory),
        cmocka_unit_test(test_commands),
        cmocka_unit_test(test_trap_edit_does_not_join),
        cmocka_unit_test(test_retry_join_removed),
        cmocka_unit_test(test_wrong_bind),
        cmocka_unit_test(test_add_fifth_by_hand),
        cmocka_unit_test(test_leave_restart_force_leave),
    };
    const struct CMUnitTest b[] = {
        cmocka_unit_test(test_fault_sshd_stopped),
        cmocka_unit_test(test_fault_command_fails),
        cmocka_unit_test(test_fault_hang),
        cmocka_unit_test(test_fault_host_key_changed),
        cmocka_unit_test(test_fault_duplicate_hostname),
        cmocka_unit_test(test_fault_missing_compose),
        cmocka_unit_test(test_fault_old_versions),
        cmocka_unit_test(test_fault_dirty_data_dir),
    };
    const struct CMUnitTest c[] = {
        cmocka_unit_test(test_stop_leaves_nothing),
        cmocka_unit_test(test_harness_script),
    };
    int failed = cmocka_run_group_tests_name("servers", a, setup_a, teardown_a);
    failed += cmocka_run_group_tests_name("faults", b, setup_b, teardown_b);
    failed += cmocka_run_group_tests_name("clean-up", c, NULL, NULL);
    return failed;
}
