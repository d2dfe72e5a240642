/* world: the scripted runner of the procedure tests (included by tests/unit/test_procedures.c
 * and test_jobs.c; every function is static). A small simulated site: hosts with files, a
 * consul container that runs or not, host keys, versions, closed ports, injected failures,
 * and a raft cluster whose state follows the commands the procedures send (docker-compose
 * up/down, consul leave, force-leave, remove-peer). Time is virtual: every command takes
 * 20 ms, a wait takes its length, a new server is promoted to voter 2 s after it joins. The
 * model the procedures read is built from the world with cluster_model_build, as the watcher
 * builds it from Consul's answers. Thread-safe (fan-out steps run commands in parallel). */
#ifndef CONSULATE_TEST_WORLD_H
#define CONSULATE_TEST_WORLD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cluster.h"
#include "procedures.h"
#include "store_jobs.h"
#include "util.h"

#define W_HOSTS 8
#define W_FILES 128
#define W_UNUSED __attribute__((unused))
#define W_PROMOTE_MS 2000

struct w_host {
    char name[32]; /* inventory name */
    char ip[32];
    char hostname[64];
    char fp[64]; /* presented host key */
    int reachable;
    int running;
    int member; /* has joined serf */
    int left;
    int in_raft, voter;
    int64_t joined_at;
    char docker[32], compose[32];
    int closed_port;  /* a port nobody can reach on this host, 0 none */
    char fail_on[64]; /* a command containing this exits fail_status */
    int fail_status;
    char cancel_on[64]; /* a command containing this raises the abort flag and is killed */
    int cancel_value;
    int write_fail; /* write_file fails */
    int stubborn;   /* force-leave does not drop it from raft */
    int gone_first; /* it leaves raft just before a remove-peer for it arrives (which fails) */
    int leave_fails; /* consul leave errors out and changes nothing */
    int rejoins;    /* after a leave, Docker's restart policy brings the agent back and it
                       retry-joins before anyone runs down */
    char log[2048]; /* docker logs */
};

struct w_file {
    char host[32];
    char path[256];
    char *data;
    size_t len;
    int dir;
};

struct world {
    pthread_mutex_t mu;
    struct w_host h[W_HOSTS];
    size_t nh;
    struct w_file f[W_FILES];
    size_t nf;
    int64_t now;
    int mutations;         /* file writes and changing commands */
    char cmdlog[256][320]; /* "host: command" */
    size_t ncmd;
    int watching;
    double leaderless_ms;
    int samples;
    atomic_int *abort; /* raised by cancel_on */
    int no_model;
    int exec_delay_ms; /* virtual time of one command (20) */
};

static W_UNUSED void
world_init(struct world *w)
{
    memset(w, 0, sizeof(*w));
    pthread_mutex_init(&w->mu, NULL);
    w->now = 1000000;
    w->exec_delay_ms = 20;
}

static W_UNUSED void
world_free(struct world *w)
{
    for (size_t i = 0; i < w->nf; i++) {
        free(w->f[i].data);
    }
    pthread_mutex_destroy(&w->mu);
}

static W_UNUSED struct w_host *
world_host(struct world *w, const char *name)
{
    for (size_t i = 0; i < w->nh; i++) {
        if (strcmp(w->h[i].name, name) == 0) {
            return &w->h[i];
        }
    }
    return NULL;
}

static struct w_file *
w_file_find(struct world *w, const char *host, const char *path)
{
    for (size_t i = 0; i < w->nf; i++) {
        if (strcmp(w->f[i].host, host) == 0 && strcmp(w->f[i].path, path) == 0) {
            return &w->f[i];
        }
    }
    return NULL;
}

static W_UNUSED void
world_file_setn(struct world *w, const char *host, const char *path, const char *data, size_t len,
                int dir)
{
    struct w_file *f = w_file_find(w, host, path);
    if (!data && !dir) {
        if (f) {
            free(f->data);
            *f = w->f[--w->nf];
        }
        return;
    }
    if (!f) {
        f = &w->f[w->nf++];
        memset(f, 0, sizeof(*f));
        snprintf(f->host, sizeof(f->host), "%s", host);
        snprintf(f->path, sizeof(f->path), "%s", path);
    }
    free(f->data);
    f->data = NULL;
    f->len = 0;
    f->dir = dir;
    if (data) {
        f->data = xmalloc(len + 1);
        memcpy(f->data, data, len);
        f->data[len] = '\0';
        f->len = len;
    }
}

static W_UNUSED void
world_file_set(struct world *w, const char *host, const char *path, const char *data)
{
    world_file_setn(w, host, path, data, data ? strlen(data) : 0, 0);
}

static W_UNUSED const char *
world_file(struct world *w, const char *host, const char *path)
{
    struct w_file *f = w_file_find(w, host, path);
    return f && !f->dir ? f->data : NULL;
}

static W_UNUSED int
world_ran(struct world *w, const char *host, const char *needle)
{
    for (size_t i = 0; i < w->ncmd; i++) {
        size_t hl = strlen(host);
        if (strncmp(w->cmdlog[i], host, hl) == 0 && w->cmdlog[i][hl] == ':' &&
            strstr(w->cmdlog[i] + hl, needle)) {
            return 1;
        }
    }
    return 0;
}

/* A server's compose file as the examples write it: double-quoted with continuations. */
static W_UNUSED char *
world_compose(const char *self_ip, const char *const *join, size_t n)
{
    struct buf b;
    buf_init(&b, 1 << 16);
    buf_printf(&b,
               "# Consul server\nversion: \"3.7\"\nservices:\n  consul:\n    image: consul:1.15.4\n"
               "    container_name: consul\n    network_mode: host\n    volumes:\n"
               "      - /mnt/var/lib/container/consul:/consul/data\n"
               "    command: \"agent -server -ui -client=0.0.0.0 -bind=%s -bootstrap-expect=3 "
               "-data-dir=/consul/data -encrypt=c2VjcmV0LWtleS0xMjM0NTY= \\\n",
               self_ip);
    for (size_t i = 0; i < n; i++) {
        buf_printf(&b, "      -retry-join=%s%s\n", join[i], i + 1 < n ? " \\" : "\"");
    }
    buf_puts(&b, "  consul-exporter:\n    image: prom/consul-exporter:v0.8.0\n"
                 "    command: --consul.server=127.0.0.1:8500 --web.listen-address=:9107\n");
    return buf_steal(&b);
}

#define W_COMPOSE "/mnt/opt/docker-compose/consul/docker-compose.yaml"
#define W_DATA "/mnt/var/lib/container/consul"

/* A host; a server has a running consul in raft and a compose file joining the servers added
 * before it and itself (callers rewrite files when they add more). */
static W_UNUSED struct w_host *
world_add(struct world *w, const char *name, const char *ip, int server)
{
    struct w_host *h = &w->h[w->nh++];
    memset(h, 0, sizeof(*h));
    snprintf(h->name, sizeof(h->name), "%s", name);
    snprintf(h->ip, sizeof(h->ip), "%s", ip);
    snprintf(h->hostname, sizeof(h->hostname), "%s", name);
    snprintf(h->fp, sizeof(h->fp), "SHA256:%s%042d", name, 0);
    h->fp[50] = '\0';
    h->reachable = 1;
    snprintf(h->docker, sizeof(h->docker), "20.10.24");
    snprintf(h->compose, sizeof(h->compose), "1.29.2");
    world_file_setn(w, name, W_DATA, NULL, 0, 1);
    if (server) {
        h->running = h->member = h->in_raft = h->voter = 1;
        snprintf(h->log, sizeof(h->log), "==> Consul agent running!\n");
    }
    return h;
}

/* Gives every server the same compose file listing all servers. */
static W_UNUSED void
world_servers_compose(struct world *w)
{
    const char *ips[W_HOSTS];
    size_t n = 0;
    for (size_t i = 0; i < w->nh; i++) {
        if (w->h[i].in_raft) {
            ips[n++] = w->h[i].ip;
        }
    }
    for (size_t i = 0; i < w->nh; i++) {
        if (w->h[i].in_raft) {
            char *t = world_compose(w->h[i].ip, ips, n);
            world_file_set(w, w->h[i].name, W_COMPOSE, t);
            free(t);
        }
    }
}

/* The leader: the first alive voter by name when a majority of the voters is alive. */
static struct w_host *
w_leader(struct world *w)
{
    size_t voters = 0, alive = 0;
    struct w_host *first = NULL;
    for (size_t i = 0; i < w->nh; i++) {
        struct w_host *h = &w->h[i];
        if (h->in_raft && h->voter) {
            voters++;
            if (h->running && h->reachable) {
                alive++;
                if (!first || strcmp(h->hostname, first->hostname) < 0) {
                    first = h;
                }
            }
        }
    }
    return voters && alive * 2 > voters ? first : NULL;
}

/* Moves virtual time on (promotions, leaderless accounting). Lock held. */
static void
w_advance(struct world *w, int64_t ms)
{
    int64_t step = 100;
    while (ms > 0) {
        int64_t d = ms < step ? ms : step;
        if (w->watching) {
            w->samples++;
            if (!w_leader(w)) {
                w->leaderless_ms += (double)d;
            }
        }
        w->now += d;
        ms -= d;
        for (size_t i = 0; i < w->nh; i++) {
            struct w_host *h = &w->h[i];
            if (h->in_raft && !h->voter && h->running && w_leader(w) &&
                w->now - h->joined_at >= W_PROMOTE_MS) {
                h->voter = 1;
            }
        }
    }
}

/* Splits a command line (single-quoted values, as sh_quote writes them) into words. */
static size_t
w_words(const char *cmd, char words[][4096], size_t max)
{
    size_t n = 0;
    const char *p = cmd;
    while (*p && n < max) {
        while (*p == ' ') {
            p++;
        }
        if (!*p) {
            break;
        }
        size_t o = 0;
        while (*p && *p != ' ') {
            if (*p == '\'') {
                p++;
                while (*p && *p != '\'' && o < 4095) {
                    words[n][o++] = *p++;
                }
                if (*p) {
                    p++;
                }
            } else if (*p == '\\' && p[1]) {
                words[n][o++] = p[1];
                p += 2;
            } else if (o < 4095) {
                words[n][o++] = *p++;
            } else {
                p++;
            }
        }
        words[n][o] = '\0';
        n++;
    }
    return n;
}

static void
w_out(struct buf *out, proc_line_fn line, void *arg, enum ssh_stream st, const char *text)
{
    const char *p = text;
    while (*p) {
        size_t len = strcspn(p, "\n");
        if (line) {
            line(arg, st, p, len);
        }
        if (out && st == SSH_STDOUT) {
            buf_append(out, p, len);
            buf_puts(out, "\n");
        }
        p += len;
        if (*p == '\n') {
            p++;
        }
    }
}

static struct w_host *
w_by_hostname(struct world *w, const char *hostname)
{
    for (size_t i = 0; i < w->nh; i++) {
        if (strcmp(w->h[i].hostname, hostname) == 0) {
            return &w->h[i];
        }
    }
    return NULL;
}

/* Runs one command on host h. Lock held. Returns the exit status; text for stdout/err. */
static int
w_run(struct world *w, struct w_host *h, char words[][4096], size_t n, struct buf *so,
      struct buf *se)
{
    if (n == 0) {
        return 127;
    }
    const char *c0 = words[0];
    if (strcmp(c0, "hostname") == 0) {
        buf_printf(so, "%s\n", h->hostname);
        return 0;
    }
    if (strcmp(c0, "timeout") == 0 && n == 7) {
        /* timeout 3 bash --norc --noprofile -c '</dev/tcp/IP/PORT && </dev/tcp/IP/PORT …':
         * 1 as soon as one is closed, as bash's && would */
        if (strcmp(words[3], "--norc") != 0) {
            return 2;
        }
        const char *p = words[6];
        for (;;) {
            char ip[64];
            int port = 0, used = 0;
            if (sscanf(p, "</dev/tcp/%63[^/]/%d%n", ip, &port, &used) != 2) {
                return 2;
            }
            int open = 0;
            for (size_t i = 0; i < w->nh; i++) {
                if (strcmp(w->h[i].ip, ip) == 0) {
                    open = w->h[i].closed_port != port && w->h[i].reachable;
                }
            }
            if (!open) {
                return 1;
            }
            p += used;
            if (!*p) {
                return 0;
            }
            if (strncmp(p, " && ", 4) != 0) {
                return 2;
            }
            p += 4;
        }
    }
    if (strcmp(c0, "test") == 0 && n == 3) {
        struct w_file *f = w_file_find(w, h->name, words[2]);
        if (strcmp(words[1], "-d") == 0) {
            return f && f->dir ? 0 : 1;
        }
        return f ? 0 : 1;
    }
    if (strcmp(c0, "ls") == 0 && n == 3) {
        size_t pl = strlen(words[2]);
        if (!w_file_find(w, h->name, words[2])) {
            buf_printf(se, "ls: cannot access '%s': No such file or directory\n", words[2]);
            return 2;
        }
        /* the first component of every entry below the directory, once */
        for (size_t i = 0; i < w->nf; i++) {
            if (strcmp(w->f[i].host, h->name) != 0 || strncmp(w->f[i].path, words[2], pl) != 0 ||
                w->f[i].path[pl] != '/') {
                continue;
            }
            const char *name = w->f[i].path + pl + 1;
            size_t nl = strcspn(name, "/");
            char line[256];
            snprintf(line, sizeof(line), "%.*s\n", (int)nl, name);
            if (!strstr(so->data ? so->data : "", line)) {
                buf_puts(so, line);
            }
        }
        return 0;
    }
    if (strcmp(c0, "mkdir") == 0 && n == 3) {
        w->mutations++;
        if (!w_file_find(w, h->name, words[2])) {
            world_file_setn(w, h->name, words[2], NULL, 0, 1);
        }
        return 0;
    }
    if ((strcmp(c0, "mv") == 0 && n == 3) || (strcmp(c0, "cp") == 0 && n == 4)) {
        int cp = c0[0] == 'c';
        const char *from = words[cp ? 2 : 1], *to = words[cp ? 3 : 2];
        w->mutations++;
        struct w_file *f = w_file_find(w, h->name, from);
        if (!f) {
            buf_printf(se, "%s: cannot stat '%s': No such file or directory\n", c0, from);
            return 1;
        }
        size_t fl = strlen(from);
        /* the entry and, for a directory, everything below it */
        for (size_t i = 0; i < w->nf; i++) {
            struct w_file *g = &w->f[i];
            if (strcmp(g->host, h->name) != 0 || strncmp(g->path, from, fl) != 0 ||
                (g->path[fl] != '\0' && g->path[fl] != '/')) {
                continue;
            }
            char np[256];
            if (snprintf(np, sizeof(np), "%s%s", to, g->path + fl) >= (int)sizeof(np)) {
                continue;
            }
            if (cp) {
                char *d = g->data ? xstrndup(g->data, g->len) : NULL;
                size_t len = g->len;
                int dir = g->dir;
                world_file_setn(w, h->name, np, d, len, dir);
                free(d);
            } else {
                snprintf(g->path, sizeof(g->path), "%s", np);
            }
        }
        return 0;
    }
    if (strcmp(c0, "docker") == 0 && n >= 2 && strcmp(words[1], "version") == 0) {
        buf_printf(so, "%s\n", h->docker);
        return 0;
    }
    if (strcmp(c0, "docker-compose") == 0 && n == 3 && strcmp(words[1], "version") == 0) {
        buf_printf(so, "%s\n", h->compose);
        return 0;
    }
    if (strcmp(c0, "docker") == 0 && n >= 2 && strcmp(words[1], "ps") == 0) {
        if (h->running) {
            buf_puts(so, "consul Up 3 minutes\n");
        }
        return 0;
    }
    if (strcmp(c0, "docker") == 0 && n >= 2 && strcmp(words[1], "logs") == 0) {
        buf_puts(se, h->log);
        return 0;
    }
    if (strcmp(c0, "docker-compose") == 0 && n >= 4 && strcmp(words[1], "-f") == 0) {
        w->mutations++;
        const char *file = world_file(w, h->name, words[2]);
        if (!file) {
            buf_printf(se, "ERROR: .FileNotFoundError: [Errno 2] No such file: '%s'\n", words[2]);
            return 1;
        }
        if (strcmp(words[3], "down") == 0) {
            h->running = 0;
            buf_puts(se, "Stopping consul ... done\nRemoving consul ... done\n");
            return 0;
        }
        if (h->running) {
            buf_puts(se, "consul is up-to-date\n");
            return 0;
        }
        h->running = 1;
        h->left = 0;
        struct w_host *same = NULL;
        for (size_t i = 0; i < w->nh; i++) {
            struct w_host *o = &w->h[i];
            if (o != h && o->member && !o->left && strcmp(o->hostname, h->hostname) == 0) {
                same = o;
            }
        }
        if (same) {
            snprintf(h->log, sizeof(h->log),
                     "[ERR] agent: Node name conflicts with another node at %s:8301. Names must "
                     "be unique! Conflicting node: %s\n",
                     same->ip, same->hostname);
            buf_puts(se, "Creating consul ... done\n");
            return 0;
        }
        h->member = 1;
        if (!h->in_raft && strstr(file, "-retry-join")) {
            h->in_raft = 1;
            h->voter = 0;
            h->joined_at = w->now;
        }
        buf_puts(se, "Creating consul ... done\n");
        return 0;
    }
    if (strcmp(c0, "docker") == 0 && n >= 5 && strcmp(words[1], "exec") == 0) {
        if (!h->running) {
            buf_puts(se, "Error response from daemon: Container consul is not running\n");
            return 1;
        }
        const char *sub = words[4];
        struct w_host *lead = w_leader(w);
        if (strcmp(sub, "leave") == 0 && h->leave_fails) {
            buf_puts(se, "Error leaving: Put \"http://127.0.0.1:8500/v1/agent/leave\": EOF\n");
            return 1;
        }
        if (strcmp(sub, "leave") == 0) {
            w->mutations++;
            h->in_raft = h->voter = 0;
            h->left = 1;
            h->running = 0;
            if (h->rejoins) {
                h->running = h->in_raft = h->voter = 1;
                h->left = 0;
            }
            buf_puts(so, "Graceful leave complete\n");
            return 0;
        }
        if (strcmp(sub, "members") == 0) {
            for (size_t i = 0; i < w->nh; i++) {
                if (w->h[i].member) {
                    buf_printf(so, "%s %s:8301 %s server\n", w->h[i].hostname, w->h[i].ip,
                               w->h[i].left      ? "left"
                               : w->h[i].running ? "alive"
                                                 : "failed");
                }
            }
            return 0;
        }
        if (!lead) {
            buf_puts(se, "Error: Unexpected response code: 500 (No cluster leader)\n");
            return 1;
        }
        if (strcmp(sub, "force-leave") == 0 && n == 6) {
            w->mutations++;
            struct w_host *t = w_by_hostname(w, words[5]);
            if (!t) {
                buf_puts(se, "Error force leaving: agent: No node found with name\n");
                return 1;
            }
            if (!(t->running && t->reachable)) {
                t->left = 1;
                if (!t->stubborn) {
                    t->in_raft = t->voter = 0;
                }
            }
            return 0;
        }
        if (strcmp(sub, "operator") == 0 && n >= 7 && strcmp(words[6], "list-peers") == 0) {
            buf_puts(so, "Node      ID        Address          State     Voter  RaftProtocol\n");
            for (size_t i = 0; i < w->nh; i++) {
                struct w_host *o = &w->h[i];
                if (o->in_raft) {
                    buf_printf(so, "%-9s %-9s %s:8300  %-9s %-6s 3\n", o->hostname, o->name, o->ip,
                               o == lead ? "leader" : "follower", o->voter ? "true" : "false");
                }
            }
            return 0;
        }
        if (strcmp(sub, "operator") == 0 && n >= 8 && strcmp(words[6], "remove-peer") == 0) {
            w->mutations++;
            char ip[64];
            if (sscanf(words[7], "-address=%63[^:]", ip) != 1) {
                return 1;
            }
            for (size_t i = 0; i < w->nh; i++) {
                if (strcmp(w->h[i].ip, ip) == 0 && w->h[i].in_raft && w->h[i].gone_first) {
                    w->h[i].in_raft = w->h[i].voter = 0;
                    break; /* the leader removed it on its own time, just before */
                }
                if (strcmp(w->h[i].ip, ip) == 0 && w->h[i].in_raft) {
                    w->h[i].in_raft = w->h[i].voter = 0;
                    buf_printf(so, "Removed peer with address \"%s\"\n", words[7] + 9);
                    return 0;
                }
            }
            buf_puts(se, "Error removing peer: address not found\n");
            return 1;
        }
    }
    buf_printf(se, "world: unknown command %s\n", c0);
    return 127;
}

static int
w_exec(void *ctx, const struct store_node *n, const struct sh_cmd *cmd, int timeout_ms,
       const atomic_int *cancel, proc_line_fn line, void *arg, struct buf *out, int *exit_status,
       struct ssh_error *err)
{
    (void)timeout_ms;
    (void)cancel;
    struct world *w = ctx;
    memset(err, 0, sizeof(*err));
    *exit_status = -1;
    pthread_mutex_lock(&w->mu);
    struct w_host *h = world_host(w, n->name);
    int rc = SSH_OK;
    struct buf so, se;
    buf_init(&so, 1 << 20);
    buf_init(&se, 1 << 20);
    const char *text = sh_cmd_text(cmd);
    if (!h || !h->reachable) {
        rc = SSH_ERR_CONNECT_TIMEOUT;
        snprintf(err->message, sizeof(err->message), "ssh root@%s:22: connect timed out",
                 n->address);
        err->code = rc;
        goto out;
    }
    if (!n->host_key_fingerprint) {
        rc = SSH_ERR_HOST_KEY_UNKNOWN;
        snprintf(err->message, sizeof(err->message), "no host key pinned");
        goto out;
    }
    if (strcmp(n->host_key_fingerprint, h->fp) != 0) {
        rc = SSH_ERR_HOST_KEY_CHANGED;
        snprintf(err->message, sizeof(err->message), "ssh root@%s:22: the host key changed",
                 n->address);
        snprintf(err->expected.fingerprint, sizeof(err->expected.fingerprint), "%s",
                 n->host_key_fingerprint);
        snprintf(err->presented.fingerprint, sizeof(err->presented.fingerprint), "%s", h->fp);
        err->code = rc;
        goto out;
    }
    if (w->ncmd < 256) {
        snprintf(w->cmdlog[w->ncmd++], sizeof(w->cmdlog[0]), "%s: %s", n->name, text);
    }
    w_advance(w, w->exec_delay_ms);
    if (h->cancel_on[0] && strstr(text, h->cancel_on)) {
        h->cancel_on[0] = '\0';
        atomic_store(w->abort, h->cancel_value ? h->cancel_value : PROC_ABORT_CANCEL);
        rc = SSH_ERR_CANCELLED;
        snprintf(err->message, sizeof(err->message), "ssh root@%s:22: cancelled, killed",
                 n->address);
        goto out;
    }
    if (h->fail_on[0] && strstr(text, h->fail_on)) {
        w->mutations++;
        buf_puts(&se, "boom: injected failure\n");
        *exit_status = h->fail_status ? h->fail_status : 1;
        goto out;
    }
    static char words[16][4096];
    size_t nw = w_words(text, words, 16);
    *exit_status = w_run(w, h, words, nw, &so, &se);
out:
    pthread_mutex_unlock(&w->mu);
    w_out(out, line, arg, SSH_STDOUT, so.data ? so.data : "");
    w_out(NULL, line, arg, SSH_STDERR, se.data ? se.data : "");
    buf_free(&so);
    buf_free(&se);
    return rc;
}

static int
w_access(struct world *w, const struct store_node *n, struct w_host **h, struct ssh_error *err)
{
    memset(err, 0, sizeof(*err));
    *h = world_host(w, n->name);
    if (!*h || !(*h)->reachable) {
        snprintf(err->message, sizeof(err->message), "connect timed out");
        return SSH_ERR_CONNECT_TIMEOUT;
    }
    if (!n->host_key_fingerprint || strcmp(n->host_key_fingerprint, (*h)->fp) != 0) {
        snprintf(err->expected.fingerprint, sizeof(err->expected.fingerprint), "%s",
                 n->host_key_fingerprint ? n->host_key_fingerprint : "");
        snprintf(err->presented.fingerprint, sizeof(err->presented.fingerprint), "%s", (*h)->fp);
        snprintf(err->message, sizeof(err->message), "host key");
        return n->host_key_fingerprint ? SSH_ERR_HOST_KEY_CHANGED : SSH_ERR_HOST_KEY_UNKNOWN;
    }
    return SSH_OK;
}

static int
w_read(void *ctx, const struct store_node *n, const char *path, char **data, size_t *len,
       struct ssh_error *err)
{
    struct world *w = ctx;
    pthread_mutex_lock(&w->mu);
    struct w_host *h;
    int rc = w_access(w, n, &h, err);
    if (rc == SSH_OK) {
        struct w_file *f = w_file_find(w, n->name, path);
        if (!f || f->dir) {
            rc = SSH_ERR_NOT_FOUND;
            snprintf(err->message, sizeof(err->message), "%s: no such file", path);
        } else {
            *data = xmalloc(f->len + 1);
            memcpy(*data, f->data, f->len);
            (*data)[f->len] = '\0';
            *len = f->len;
        }
    }
    w_advance(w, 5);
    pthread_mutex_unlock(&w->mu);
    return rc;
}

static int
w_write(void *ctx, const struct store_node *n, const char *path, const char *data, size_t len,
        struct ssh_error *err)
{
    struct world *w = ctx;
    pthread_mutex_lock(&w->mu);
    struct w_host *h;
    int rc = w_access(w, n, &h, err);
    if (rc == SSH_OK && h->write_fail) {
        rc = SSH_ERR_SFTP;
        snprintf(err->message, sizeof(err->message), "write %s: permission denied", path);
    } else if (rc == SSH_OK) {
        w->mutations++;
        world_file_setn(w, n->name, path, data, len, 0);
        if (w->ncmd < 256) {
            snprintf(w->cmdlog[w->ncmd++], sizeof(w->cmdlog[0]), "%s: (write %s)", n->name, path);
        }
    }
    w_advance(w, 5);
    pthread_mutex_unlock(&w->mu);
    return rc;
}

static int
w_host_key(void *ctx, const struct store_node *n, struct ssh_host_key *out, struct ssh_error *err)
{
    struct world *w = ctx;
    pthread_mutex_lock(&w->mu);
    struct w_host *h = world_host(w, n->name);
    int rc = SSH_OK;
    memset(err, 0, sizeof(*err));
    if (!h || !h->reachable) {
        rc = SSH_ERR_CONNECT_TIMEOUT;
        snprintf(err->message, sizeof(err->message), "connect timed out");
    } else {
        snprintf(out->fingerprint, sizeof(out->fingerprint), "%s", h->fp);
        snprintf(out->type, sizeof(out->type), "ED25519");
        out->bits = 256;
    }
    pthread_mutex_unlock(&w->mu);
    return rc;
}

/* The model of the world: raft, members and the leader as Consul would answer them. */
static const struct cluster_model *
w_model_get(void *ctx, void **ref, int64_t *answered)
{
    struct world *w = ctx;
    pthread_mutex_lock(&w->mu);
    *answered = w->now;
    if (w->no_model) {
        pthread_mutex_unlock(&w->mu);
        *ref = NULL;
        return NULL;
    }
    struct w_host *lead = w_leader(w);
    cJSON *raft = cJSON_CreateObject();
    cJSON *servers = cJSON_AddArrayToObject(raft, "Servers");
    cJSON *members = cJSON_CreateArray();
    for (size_t i = 0; i < w->nh; i++) {
        struct w_host *h = &w->h[i];
        char addr[64];
        snprintf(addr, sizeof(addr), "%s:8300", h->ip);
        if (h->in_raft) {
            cJSON *s = cJSON_CreateObject();
            cJSON_AddStringToObject(s, "ID", h->name);
            cJSON_AddStringToObject(s, "Node", h->hostname);
            cJSON_AddStringToObject(s, "Address", addr);
            cJSON_AddBoolToObject(s, "Leader", h == lead);
            cJSON_AddBoolToObject(s, "Voter", h->voter);
            cJSON_AddItemToArray(servers, s);
        }
        if (h->member) {
            cJSON *m = cJSON_CreateObject();
            cJSON_AddStringToObject(m, "Name", h->hostname);
            cJSON_AddStringToObject(m, "Addr", h->ip);
            cJSON_AddNumberToObject(m, "Port", 8301);
            cJSON_AddNumberToObject(m, "Status",
                                    h->left                        ? 3
                                    : (h->running && h->reachable) ? 1
                                                                   : 4);
            cJSON *tags = cJSON_AddObjectToObject(m, "Tags");
            cJSON_AddStringToObject(tags, "role", "consul");
            cJSON_AddStringToObject(tags, "dc", "dc1");
            cJSON_AddStringToObject(tags, "id", h->name);
            cJSON_AddStringToObject(tags, "port", "8300");
            cJSON_AddItemToArray(members, m);
        }
    }
    char *rj = json_print(raft), *mj = json_print(members);
    cJSON_Delete(raft);
    cJSON_Delete(members);
    char leader_addr[64] = "";
    if (lead) {
        snprintf(leader_addr, sizeof(leader_addr), "%s:8300", lead->ip);
    }
    int any_up = 0;
    for (size_t i = 0; i < w->nh; i++) {
        any_up |= w->h[i].running && w->h[i].reachable;
    }
    struct cluster_input in = {.reachable = any_up,
                               .updated_at_ms = w->now,
                               .now_ms = w->now,
                               .datacenter = "dc1",
                               .raft_json = lead ? rj : NULL,
                               .members_json = any_up ? mj : NULL,
                               .leader_addr = leader_addr};
    pthread_mutex_unlock(&w->mu);
    struct cluster_model *m = NULL;
    struct cluster_error ce;
    cluster_model_build(&in, &m, &ce);
    free(rj);
    free(mj);
    *ref = m;
    return m;
}

static void
w_model_put(void *ctx, void *ref)
{
    (void)ctx;
    cluster_model_free(ref);
}

static void
w_refresh(void *ctx)
{
    (void)ctx;
}

static void
w_watch_start(void *ctx)
{
    struct world *w = ctx;
    pthread_mutex_lock(&w->mu);
    w->watching = 1;
    w->leaderless_ms = 0;
    w->samples = 0;
    pthread_mutex_unlock(&w->mu);
}

static void
w_watch_stop(void *ctx, double *leaderless_s, int *samples)
{
    struct world *w = ctx;
    pthread_mutex_lock(&w->mu);
    w->watching = 0;
    *leaderless_s = w->leaderless_ms / 1000;
    *samples = w->samples;
    pthread_mutex_unlock(&w->mu);
}

static int64_t
w_now(void *ctx)
{
    struct world *w = ctx;
    pthread_mutex_lock(&w->mu);
    int64_t t = w->now;
    pthread_mutex_unlock(&w->mu);
    return t;
}

static int
w_sleep(void *ctx, int ms, const atomic_int *cancel)
{
    struct world *w = ctx;
    if (cancel && atomic_load(cancel)) {
        return 1;
    }
    pthread_mutex_lock(&w->mu);
    w_advance(w, ms);
    pthread_mutex_unlock(&w->mu);
    return cancel && atomic_load(cancel) ? 1 : 0;
}

static W_UNUSED struct proc_runner
world_runner(struct world *w)
{
    return (struct proc_runner){
        .ctx = w,
        .exec = w_exec,
        .read_file = w_read,
        .write_file = w_write,
        .host_key = w_host_key,
        .model_get = w_model_get,
        .model_put = w_model_put,
        .model_refresh = w_refresh,
        .leader_watch_start = w_watch_start,
        .leader_watch_stop = w_watch_stop,
        .now_ms = w_now,
        .sleep_ms = w_sleep,
    };
}

#endif
