/* gate: see include/gate.h. */
#include "gate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "procedures_internal.h"
#include "util.h"

#define PEERS_EVERY_MS 1000 /* list-peers over SSH at most this often */
/* how long the gate naps while it waits only for the watcher's answer to its poke */
#define GATE_FRESH_NAP_MS 20

static const struct cluster_server *
raft_at(const struct cluster_model *m, const char *addr)
{
    for (size_t i = 0; i < m->n_servers; i++) {
        if (m->servers[i].in_raft && cluster_host_equal(m->servers[i].address, addr)) {
            return &m->servers[i];
        }
    }
    return NULL;
}

int
gate_check_model(const struct cluster_model *m, const struct gate_expect *e, char *why,
                 size_t whylen)
{
    if (!m) {
        snprintf(why, whylen, "there is no cluster model (the watchers are not running)");
        return 0;
    }
    if (!m->reachable) {
        snprintf(why, whylen, "Consul is unreachable");
        return 0;
    }
    if (!m->raft_known) {
        snprintf(why, whylen, "the raft configuration is unknown (no leader)");
        return 0;
    }
    for (size_t i = 0; i < e->n; i++) {
        const struct cluster_server *s = raft_at(m, e->addrs[i]);
        if (!s) {
            snprintf(why, whylen, "%s (%s) is not in raft", e->names[i], e->addrs[i]);
            return 0;
        }
        if (!s->voter) {
            snprintf(why, whylen, "%s (%s) is in raft but not a voter yet", e->names[i],
                     e->addrs[i]);
            return 0;
        }
        if (m->members_known && s->serf_status != CLUSTER_SERF_ALIVE) {
            snprintf(why, whylen, "%s (%s) is %s in the member list", e->names[i], e->addrs[i],
                     cluster_serf_name(s->serf_status));
            return 0;
        }
        if (m->autopilot_known && !s->autopilot_healthy) {
            snprintf(why, whylen, "autopilot does not report %s (%s) healthy", e->names[i],
                     e->addrs[i]);
            return 0;
        }
    }
    size_t leaders = 0, in_raft = 0;
    for (size_t i = 0; i < m->n_servers; i++) {
        const struct cluster_server *s = &m->servers[i];
        if (!s->in_raft) {
            continue;
        }
        in_raft++;
        leaders += s->leader != 0;
        size_t k;
        for (k = 0; k < e->n && !cluster_host_equal(s->address, e->addrs[k]); k++) {
        }
        if (k == e->n) {
            snprintf(why, whylen, "%s (%s) is in raft but not expected there", s->node, s->address);
            return 0;
        }
    }
    if (leaders != 1 || m->leader_index < 0) {
        snprintf(why, whylen, leaders == 0 ? "there is no leader" : "%zu servers claim to lead",
                 leaders);
        return 0;
    }
    if (m->autopilot_known && !m->autopilot_healthy) {
        snprintf(why, whylen, "autopilot reports the cluster unhealthy");
        return 0;
    }
    snprintf(why, whylen, "%zu voters, leader %s", in_raft, m->servers[m->leader_index].node);
    return 1;
}

/* Splits line into at most max white-space separated fields (pointers into line, which is
 * modified). Returns the count. */
static size_t
fields(char *line, char **f, size_t max)
{
    size_t n = 0;
    char *save = NULL;
    for (char *t = strtok_r(line, " \t\r", &save); t && n < max;
         t = strtok_r(NULL, " \t\r", &save)) {
        f[n++] = t;
    }
    return n;
}

int
gate_parse_list_peers(const char *text, struct gate_peer **out, size_t *n, char *why, size_t whylen)
{
    *out = NULL;
    *n = 0;
    char *copy = xstrdup(text ? text : "");
    char *save = NULL;
    int header = 0, rc = -1;
    size_t cap = 0;
    struct gate_peer *v = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *f[8];
        size_t nf = fields(line, f, 8);
        if (nf == 0) {
            continue;
        }
        if (!header) {
            if (nf < 5 || strcmp(f[0], "Node") != 0 || strcmp(f[1], "ID") != 0 ||
                strcmp(f[2], "Address") != 0 || strcmp(f[3], "State") != 0 ||
                strcmp(f[4], "Voter") != 0) {
                snprintf(why, whylen,
                         "list-peers printed no 'Node ID Address State Voter' "
                         "header");
                goto out;
            }
            header = 1;
            continue;
        }
        if (nf < 5 || (strcmp(f[4], "true") != 0 && strcmp(f[4], "false") != 0)) {
            snprintf(why, whylen, "list-peers printed a row that is not a peer");
            goto out;
        }
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            v = xrealloc(v, cap * sizeof(*v));
        }
        struct gate_peer *p = &v[(*n)++];
        memset(p, 0, sizeof(*p));
        snprintf(p->node, sizeof(p->node), "%s", f[0]);
        snprintf(p->id, sizeof(p->id), "%s", f[1]);
        snprintf(p->address, sizeof(p->address), "%s", f[2]);
        snprintf(p->state, sizeof(p->state), "%s", f[3]);
        p->voter = strcmp(f[4], "true") == 0;
    }
    if (!header) {
        snprintf(why, whylen, "list-peers printed nothing");
        goto out;
    }
    *out = v;
    v = NULL;
    rc = 0;
out:
    if (rc != 0) {
        *n = 0;
    }
    free(v);
    free(copy);
    return rc;
}

int
gate_compare_peers(const struct cluster_model *m, const struct gate_peer *p, size_t n, char *why,
                   size_t whylen)
{
    size_t leaders = 0, in_raft = 0;
    const struct gate_peer *leader = NULL;
    for (size_t i = 0; i < n; i++) {
        const struct cluster_server *s = raft_at(m, p[i].address);
        if (!s) {
            snprintf(why, whylen, "list-peers shows %s (%s), which the model does not have in raft",
                     p[i].node, p[i].address);
            return 0;
        }
        if (s->voter != p[i].voter) {
            snprintf(why, whylen, "list-peers shows %s as %s", p[i].node,
                     p[i].voter ? "a voter" : "not a voter");
            return 0;
        }
        if (strcmp(p[i].state, "leader") == 0) {
            leaders++;
            leader = &p[i];
        }
    }
    for (size_t i = 0; i < m->n_servers; i++) {
        in_raft += m->servers[i].in_raft != 0;
    }
    if (in_raft != n) {
        snprintf(why, whylen, "list-peers shows %zu peers, the model %zu", n, in_raft);
        return 0;
    }
    if (leaders != 1) {
        snprintf(why, whylen, "list-peers shows %zu leaders", leaders);
        return 0;
    }
    if (m->leader_index < 0 ||
        !cluster_host_equal(leader->address, m->servers[m->leader_index].address)) {
        snprintf(why, whylen, "list-peers shows %s as the leader, the model %s", leader->node,
                 m->leader_index >= 0 ? m->servers[m->leader_index].node : "none");
        return 0;
    }
    return 1;
}

/* Runs list-peers on the peer node and compares it with m. Returns 1 agree, 0 not (why). */
static int
peers_agree(struct proc_ctx *x, const struct gate_expect *e, const struct cluster_model *m,
            char *why, size_t whylen)
{
    struct sh_cmd cmd;
    cmd_list_peers(&cmd);
    struct buf out;
    buf_init(&out, 256 * 1024);
    struct ssh_error err;
    int status = -1;
    int timeout = x->lim.command_timeout_ms < 30000 ? x->lim.command_timeout_ms : 30000;
    int rc = proc_exec(x, e->peer_node, &cmd, timeout, 0, &out, &status, &err);
    sh_cmd_free(&cmd);
    int ok = 0;
    if (rc != SSH_OK) {
        snprintf(why, whylen, "list-peers on %s: %s", e->peer_node->name, err.message);
    } else if (status != 0) {
        snprintf(why, whylen, "list-peers on %s exited with status %d", e->peer_node->name, status);
    } else {
        struct gate_peer *p = NULL;
        size_t n = 0;
        char w[400];
        if (gate_parse_list_peers(out.data, &p, &n, w, sizeof(w)) != 0) {
            snprintf(why, whylen, "list-peers on %s: %s", e->peer_node->name, w);
        } else if (!gate_compare_peers(m, p, n, w, sizeof(w))) {
            snprintf(why, whylen, "list-peers on %s disagrees with the model: %s",
                     e->peer_node->name, w);
        } else {
            ok = 1;
        }
        free(p);
    }
    buf_free(&out);
    return ok;
}

int
gate_wait(struct proc_ctx *x, const struct gate_expect *e, int timeout_ms, cJSON **report)
{
    const struct proc_runner *run = x->run;
    int64_t t0 = run->now_ms(run->ctx), last_peers = t0 - PEERS_EVERY_MS;
    char why[600] = "", said[600] = "", leader[128] = "";
    int rounds = 0, rc, servers = 0, fresh_wait = 0;
    int poll = x->lim.gate_poll_ms > 0 ? x->lim.gate_poll_ms : 250;
    int64_t poked = 0;
    proc_log(x, NULL, "info",
             "gate: waiting for %zu servers in raft, all voters, one leader, "
             "autopilot healthy%s",
             e->n, e->peer_node ? ", and list-peers to agree" : "");
    for (;;) {
        if (proc_interrupted(x)) {
            rc = GATE_CANCELLED;
            snprintf(why, sizeof(why), "stopped");
            break;
        }
        rounds++;
        /* a poke asks the watcher for a new answer at once; while only waiting for that
         * answer, the gate looks often but pokes no more than once a poll */
        int64_t now0 = run->now_ms(run->ctx);
        if (!fresh_wait || now0 - poked >= poll) {
            run->model_refresh(run->ctx);
            poked = now0;
        }
        void *ref = NULL;
        int64_t answered = 0;
        const struct cluster_model *m = run->model_get(run->ctx, &ref, &answered);
        int ok = 0;
        fresh_wait = m && answered < t0;
        if (fresh_wait) {
            snprintf(why, sizeof(why), "waiting for a fresh answer from Consul");
        } else if (gate_check_model(m, e, why, sizeof(why))) {
            int64_t now = run->now_ms(run->ctx);
            if (!e->peer_node) {
                ok = 1;
            } else if (now - last_peers >= PEERS_EVERY_MS) {
                last_peers = now;
                ok = peers_agree(x, e, m, why, sizeof(why));
            }
            if (ok) {
                servers = (int)e->n;
                snprintf(leader, sizeof(leader), "%s", m->servers[m->leader_index].node);
            }
        }
        if (m) {
            run->model_put(run->ctx, ref);
        }
        int64_t el = run->now_ms(run->ctx) - t0;
        if (ok) {
            rc = GATE_PASSED;
            proc_log(x, NULL, "info", "gate passed after %.1f s: %d voters, leader %s%s",
                     (double)el / 1000, servers, leader, e->peer_node ? ", list-peers agrees" : "");
            break;
        }
        if (strcmp(why, said) != 0) {
            proc_log(x, NULL, "info", "gate: %s", why);
            snprintf(said, sizeof(said), "%s", why);
        }
        if (el >= timeout_ms) {
            rc = GATE_TIMEOUT;
            proc_log(x, NULL, "error", "gate: not passed after %.1f s: %s", (double)el / 1000, why);
            break;
        }
        int nap = fresh_wait && poll > GATE_FRESH_NAP_MS ? GATE_FRESH_NAP_MS : poll;
        if (run->sleep_ms(run->ctx, nap, x->abort)) {
            rc = GATE_CANCELLED;
            snprintf(why, sizeof(why), "stopped");
            break;
        }
    }
    if (report) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddBoolToObject(r, "passed", rc == GATE_PASSED);
        cJSON_AddNumberToObject(r, "elapsed_ms", (double)(run->now_ms(run->ctx) - t0));
        cJSON_AddNumberToObject(r, "rounds", rounds);
        cJSON_AddNumberToObject(r, "servers", (double)e->n);
        if (rc == GATE_PASSED) {
            cJSON_AddStringToObject(r, "leader", leader);
            cJSON_AddNullToObject(r, "reason");
        } else {
            cJSON_AddNullToObject(r, "leader");
            cJSON_AddStringToObject(r, "reason", why);
        }
        *report = r;
    }
    return rc;
}
