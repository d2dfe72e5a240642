/* procedures_diag: diagnose, read-only. It runs docker ps, docker logs --tail=100 consul,
 * reads the compose file, runs list-peers and hostname on one node, logs everything, and
 * explains the failures it knows: the seed's "Node name conflicts … Names must be unique!"
 * (which hosts share the name and what to do), the unquoted-backslash trap (with the fix as
 * a diff), Consul not running, a broken compose file, a node missing from raft. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "compose.h"
#include "gate.h"
#include "procedures_internal.h"
#include "store.h"
#include "util.h"

enum { D_PS = 0, D_LOGS, D_COMPOSE, D_PEERS, D_HOSTNAME, D_COUNT };

static struct pstep *
diag_step(struct proc_plan *p, const struct store_node *n, const char *title)
{
    struct pstep *s = plan_add(p, PS_CMD, n, "%s", title);
    s->any_exit = 1;
    s->readonly = 1;
    s->has_cmd = 1;
    s->capture = xcalloc(1, sizeof(*s->capture));
    buf_init(s->capture, 4 * 1024 * 1024);
    return s;
}

void
proc_diag_plan(struct proc_plan *p, const struct store_node *n)
{
    struct pstep *s = diag_step(p, n, "Is Consul's container running (docker ps)");
    cmd_docker_ps(&s->cmd);
    s = diag_step(p, n, "The last 100 lines of Consul's log");
    cmd_docker_logs(&s->cmd);
    s = diag_step(p, n, "Read the compose file");
    s->kind = PS_READ;
    s->has_cmd = 0;
    s->path = proc_compose_path(n);
    s = diag_step(p, n, "The raft peers as this node sees them");
    cmd_list_peers(&s->cmd);
    s = diag_step(p, n, "The hostname (Consul's node name unless -node is set)");
    cmd_hostname(&s->cmd);
}

static void
finding(cJSON *list, const char *code, const char *message, const char *fix)
{
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "code", code);
    cJSON_AddStringToObject(f, "message", message);
    if (fix) {
        cJSON_AddStringToObject(f, "fix", fix);
    }
    cJSON_AddItemToArray(list, f);
}

static int
has_code(const cJSON *list, const char *code)
{
    const cJSON *f;
    cJSON_ArrayForEach(f, list)
    {
        if (strcmp(json_get_str(f, "code", ""), code) == 0) {
            return 1;
        }
    }
    return 0;
}

static const char *
text_of(const struct pstep *s)
{
    return s->capture && s->capture->data ? s->capture->data : "";
}

/* The inventory node at host ip (borrowed), or NULL. */
static const struct store_node *
node_at(const struct proc_plan *p, const char *ip)
{
    for (size_t i = 0; i < p->n_inv; i++) {
        if (strcasecmp(p->inv[i].address, ip) == 0) {
            return &p->inv[i];
        }
    }
    return NULL;
}

/* "Node name conflicts with another node at IP:port. Names must be unique!" */
static void
find_name_conflict(const struct proc_plan *p, const struct store_node *n, const char *logs,
                   const char *name, cJSON *list)
{
    static const char marker[] = "Node name conflicts with another node at ";
    const char *at = strstr(logs, marker);
    if (!at) {
        return;
    }
    at += sizeof(marker) - 1;
    char addr[128];
    size_t len = strcspn(at, " \n");
    if (len >= sizeof(addr)) {
        len = sizeof(addr) - 1;
    }
    memcpy(addr, at, len);
    addr[len] = '\0';
    if (len && addr[len - 1] == '.') {
        addr[len - 1] = '\0';
    }
    char ip[128];
    snprintf(ip, sizeof(ip), "%s", addr);
    char *colon = strrchr(ip, ':');
    if (colon && strchr(ip, ':') == colon) {
        *colon = '\0';
    }
    const struct store_node *other = node_at(p, ip);
    char other_text[200];
    if (other) {
        snprintf(other_text, sizeof(other_text), "inventory node %s", other->name);
    } else {
        snprintf(other_text, sizeof(other_text), "not in the inventory");
    }
    char *msg = xasprintf(
        "Consul on %s (%s) says \"Node name conflicts with another node at %s. Names must be "
        "unique!\": %s and the host at %s (%s) use the same Consul node name '%s'. Consul takes "
        "the node name from the hostname (unless -node is set): give one of the two hosts "
        "another hostname (hostname NEW, and /etc/hostname so that it stays), then run "
        "docker-compose down and docker-compose up -d in its compose directory. The cluster "
        "will not admit the second one until then.",
        n->name, n->address, addr, n->name, ip, other_text, name[0] ? name : "?");
    finding(list, "node_name_conflict", msg, NULL);
    free(msg);
}

static void
find_compose(const struct store_node *n, const struct pstep *s, cJSON *list, char **node_flag)
{
    const char *path = s->path;
    if (s->capture->len == 0) {
        char *msg = xasprintf("%s has no %s: Consul cannot be started there with docker-compose",
                              n->name, path);
        finding(list, "compose_missing", msg, NULL);
        free(msg);
        return;
    }
    struct compose_command *c = NULL;
    struct compose_error ce;
    int rc = compose_read(s->capture->data, s->capture->len, &c, &ce);
    if (rc != COMPOSE_OK) {
        char *msg = xasprintf("%s on %s cannot be read as docker-compose reads it (%s, line %d): "
                              "%s",
                              path, n->name, compose_rc_name(rc), ce.line, ce.message);
        finding(list, "compose_invalid", msg, NULL);
        free(msg);
        return;
    }
    for (size_t i = c->flags_start; i + 1 < c->flags_end; i++) {
        if (strcmp(c->argv[i], "-node") == 0 || strcmp(c->argv[i], "--node") == 0) {
            *node_flag = xstrdup(c->argv[i + 1]);
        } else if (str_starts_with(c->argv[i], "-node=") ||
                   str_starts_with(c->argv[i], "--node=")) {
            *node_flag = xstrdup(strchr(c->argv[i], '=') + 1);
        }
    }
    int trap = 0;
    for (size_t i = 0; i < c->n_diags; i++) {
        trap |= c->diags[i].kind == COMPOSE_DIAG_TRAP_BACKSLASH;
    }
    if (trap) {
        char *fixed = NULL, *diff = NULL;
        size_t flen = 0;
        const char *first = "";
        for (size_t i = 0; i < c->n_diags; i++) {
            if (c->diags[i].blocking) {
                first = c->diags[i].message;
                break;
            }
        }
        if (compose_fix_trap(s->capture->data, s->capture->len, &fixed, &flen, &ce) == COMPOSE_OK) {
            char *ro = proc_redact(s->capture->data, s->capture->len);
            char *rn = proc_redact(fixed, flen);
            if (compose_diff(ro, strlen(ro), rn, strlen(rn), path, path, &diff, &ce) !=
                COMPOSE_OK) {
                diff = NULL;
            }
            free(ro);
            free(rn);
        }
        char *msg = xasprintf(
            "%s on %s falls into the unquoted-backslash trap: the command is a plain (or "
            "single-quoted, or block) YAML scalar whose lines end in '\\', so YAML keeps the "
            "backslashes, docker-compose passes arguments that start with a space, and the "
            "agent's flag parsing stops there: the -retry-join entries after it are never read "
            "(%s). Fix: write the command double-quoted (the diff shows it); a node-add or "
            "node-remove with options.fix_trap makes the fix part of the change.",
            path, n->name, first);
        finding(list, "backslash_trap", msg, diff);
        free(msg);
        free(fixed);
        free(diff);
    } else if (c->blocking) {
        for (size_t i = 0; i < c->n_diags; i++) {
            if (c->diags[i].blocking) {
                char *msg = xasprintf("the agent does not read %s on %s as written (line %d): %s",
                                      path, n->name, c->diags[i].line, c->diags[i].message);
                finding(list, "compose_broken", msg, NULL);
                free(msg);
                break;
            }
        }
    }
    compose_command_free(c);
}

static void
find_peers(const struct store_node *n, const struct pstep *s, cJSON *list)
{
    struct gate_peer *peers = NULL;
    size_t np = 0;
    char why[300];
    if (gate_parse_list_peers(text_of(s), &peers, &np, why, sizeof(why)) != 0) {
        char first[200];
        snprintf(first, sizeof(first), "%.*s", (int)strcspn(text_of(s), "\n"), text_of(s));
        char *msg = xasprintf("list-peers on %s gives no raft configuration (%s%s%s): the "
                              "agent is down, not a server, or the cluster has no leader",
                              n->name, why, first[0] ? ": " : "", first);
        finding(list, "raft_unavailable", msg, NULL);
        free(msg);
        return;
    }
    int found = 0, leaders = 0;
    for (size_t i = 0; i < np; i++) {
        char host[128];
        snprintf(host, sizeof(host), "%s", peers[i].address);
        char *colon = strrchr(host, ':');
        if (colon && strchr(host, ':') == colon) {
            *colon = '\0';
        }
        found |= strcasecmp(host, n->address) == 0;
        leaders += strcmp(peers[i].state, "leader") == 0;
    }
    if (!found) {
        char *msg = xasprintf("%s (%s) is not among the %zu raft peers: it has not joined (look "
                              "at its log and its -retry-join entries)",
                              n->name, n->address, np);
        finding(list, "not_in_raft", msg, NULL);
        free(msg);
    }
    if (leaders != 1) {
        char *msg = xasprintf("list-peers on %s shows %d leaders", n->name, leaders);
        finding(list, "no_single_leader", msg, NULL);
        free(msg);
    }
    free(peers);
}

int
proc_diagnose(struct proc_ctx *x, struct proc_plan *p, const struct store_node *n,
              struct proc_outcome *out)
{
    int first = 0, changed = 0;
    if (p->n != D_COUNT || proc_steps_store(x, p, &first) != 0) {
        return -1;
    }
    char *fail = NULL;
    double leaderless = 0;
    int end = proc_steps_run(x, p, first, &changed, &fail, NULL, &leaderless);
    if (end < 0) {
        free(fail);
        return -1;
    }
    out->end = end;
    if (fail) {
        cJSON_AddStringToObject(out->result, "error", fail);
        free(fail);
    }
    if (end != PROC_SUCCEEDED) {
        return 0;
    }
    cJSON *list = cJSON_AddArrayToObject(out->result, "findings");
    if (!proc_ps_running(text_of(&p->v[D_PS]))) {
        char *compose = proc_compose_path(n);
        char *msg = xasprintf("Consul's container does not run on %s; start it with "
                              "docker-compose -f %s up -d and read its log",
                              n->name, compose);
        finding(list, "consul_not_running", msg, NULL);
        free(msg);
        free(compose);
    }
    char *node_flag = NULL;
    find_compose(n, &p->v[D_COMPOSE], list, &node_flag);
    char host[256];
    snprintf(host, sizeof(host), "%.*s", (int)strcspn(text_of(&p->v[D_HOSTNAME]), "\r\n"),
             text_of(&p->v[D_HOSTNAME]));
    find_name_conflict(p, n, text_of(&p->v[D_LOGS]), node_flag ? node_flag : host, list);
    /* Consul 1.x exits on arguments left after its flags: "config: Unknown extra
     * arguments" before 1.10 (the seed's 1.9), "Unexpected extra arguments" from 1.10 on. */
    const char *logs = text_of(&p->v[D_LOGS]);
    if ((strstr(logs, "Unexpected extra arguments") || strstr(logs, "Unknown extra arguments")) &&
        !has_code(list, "backslash_trap")) {
        finding(list, "extra_arguments",
                "Consul refuses its command line (\"Unknown extra arguments\" before Consul "
                "1.10, \"Unexpected extra arguments\" from 1.10): an argument did not parse as "
                "a flag; look at the command in the compose file",
                NULL);
    }
    find_peers(n, &p->v[D_PEERS], list);
    free(node_flag);
    int nf = cJSON_GetArraySize(list);
    proc_log(x, n->name, "info", "diagnose: %d finding%s", nf, nf == 1 ? "" : "s");
    const cJSON *f;
    cJSON_ArrayForEach(f, list)
    {
        proc_log(x, n->name, "info", "finding %s: %s", json_get_str(f, "code", ""),
                 json_get_str(f, "message", ""));
    }
    return 0;
}
