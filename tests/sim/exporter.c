/* exporter: a consul_exporter-style Prometheus endpoint beside each server agent. It is a
 * separate "container": it keeps answering while the agent is stopped (consul_up 0) and only
 * goes away with the host. Like consul_exporter's default, it reads with stale consistency. */
#include "sim.h"

#include <civetweb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
label(struct buf *b, const char *name, const char *value, bool last)
{
    buf_printf(b, "%s=\"", name);
    for (const char *p = value; *p; p++) {
        if (*p == '\\' || *p == '"') {
            buf_printf(b, "\\%c", *p);
        } else if (*p == '\n') {
            buf_puts(b, "\\n");
        } else {
            buf_append(b, p, 1);
        }
    }
    buf_puts(b, last ? "\"" : "\",");
}

static void
help(struct buf *b, const char *name, const char *text)
{
    buf_printf(b, "# HELP %s %s\n# TYPE %s gauge\n", name, text, name);
}

static void
member_status(struct buf *b, const char *name, int status)
{
    buf_puts(b, "consul_serf_lan_member_status{");
    label(b, "member", name, true);
    buf_printf(b, "} %d\n", status);
}

/* Per-check status lines: one per possible status, 1 for the current one. */
static void
check_lines(struct buf *b, const char *metric, const struct node_ref *n, const char *check,
            const struct service *svc, const char *status)
{
    static const char *const states[] = {"passing", "warning", "critical", "maintenance"};
    for (size_t i = 0; i < ARRAY_LEN(states); i++) {
        buf_printf(b, "%s{", metric);
        label(b, "check", check, false);
        label(b, "node", n->name, false);
        if (svc) {
            label(b, "service_id", svc->id, false);
            label(b, "service_name", svc->name, false);
        }
        label(b, "status", states[i], true);
        buf_printf(b, "} %d\n", strcmp(status, states[i]) == 0);
    }
}

/* consul_catalog_service_node_healthy for one instance: node serf health, node checks and
 * the service's own checks must all pass. */
static void
service_healthy(struct buf *b, const struct dc *dc, const struct node_ref *n,
                const struct service *svc)
{
    bool ok = n->serf_status == SERF_ALIVE;
    for (size_t i = 0; i < dc->n_checks; i++) {
        const struct check *c = dc->checks[i];
        if (strcmp(c->node, n->name) == 0 &&
            (!c->service_id[0] || strcmp(c->service_id, svc->id) == 0)) {
            ok = ok && strcmp(c->status, "passing") == 0;
        }
    }
    buf_puts(b, "consul_catalog_service_node_healthy{");
    label(b, "node", n->name, false);
    label(b, "service_id", svc->id, false);
    label(b, "service_name", svc->name, true);
    buf_printf(b, "} %d\n", ok);
}

/* Renders the metrics page for server s; dc->mu held. */
static void
render(struct buf *b, struct dc *dc, struct server *s)
{
    help(b, "consul_up", "Was the last query of Consul successful.");
    if (!server_up(s)) {
        buf_puts(b, "consul_up 0\n");
        return;
    }
    buf_puts(b, "consul_up 1\n");
    size_t peers = 0;
    for (size_t i = 0; server_in_cluster(s) && i < dc->n_servers; i++) {
        peers += dc->servers[i]->in_raft;
    }
    help(b, "consul_raft_peers", "How many peers (servers) are in the Raft cluster.");
    buf_printf(b, "consul_raft_peers %zu\n", peers);
    help(b, "consul_raft_leader", "Does Raft cluster have a leader (according to this node).");
    buf_printf(b, "consul_raft_leader %d\n", dc_agent_leader(dc, s) != NULL);
    cJSON *members = render_members(dc, s, false);
    help(b, "consul_serf_lan_members", "How many members are in the cluster.");
    buf_printf(b, "consul_serf_lan_members %d\n", cJSON_GetArraySize(members));
    help(b, "consul_serf_lan_member_status",
         "Status of member in the cluster. 1=Alive, 2=Leaving, 3=Left, 4=Failed.");
    const cJSON *m;
    cJSON_ArrayForEach(m, members)
    {
        member_status(b, json_get_str(m, "Name", ""), (int)json_get_num(m, "Status", 0));
    }
    cJSON_Delete(members);
    struct node_ref *nodes = NULL;
    size_t n = server_in_cluster(s) ? dc_nodes(dc, &nodes) : 0;
    help(b, "consul_exporter_build_info",
         "A metric with a constant '1' value labeled by "
         "version, revision, branch and goversion from which consul_exporter was built.");
    buf_puts(b, "consul_exporter_build_info{branch=\"HEAD\",goversion=\"go1.21.6\","
                "revision=\"consul-sim\",version=\"0.11.0\"} 1\n");
    size_t services = n ? 1 : 0; /* "consul" */
    for (size_t i = 0; i < dc->n_services; i++) {
        bool dup = false;
        for (size_t k = 0; k < i && !dup; k++) {
            dup = strcmp(dc->services[k]->name, dc->services[i]->name) == 0;
        }
        services += !dup && strcmp(dc->services[i]->name, "consul") != 0;
    }
    help(b, "consul_serf_wan_members", "How many members are in the WAN pool.");
    size_t wan = 0;
    for (size_t i = 0; server_in_cluster(s) && i < dc->n_servers; i++) {
        wan += dc->servers[i]->joined;
    }
    buf_printf(b, "consul_serf_wan_members %zu\n", server_in_cluster(s) ? wan : 1);
    help(b, "consul_catalog_services", "How many services are in the cluster.");
    buf_printf(b, "consul_catalog_services %zu\n", server_in_cluster(s) ? services : 0);
    help(b, "consul_catalog_service_node_healthy",
         "Is this service healthy on this node? 1 when all its checks pass.");
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < dc->n_services; k++) {
            const struct service *svc = dc->services[k];
            if (strcmp(svc->node, nodes[i].name) == 0) {
                service_healthy(b, dc, &nodes[i], svc);
            }
        }
    }
    help(b, "consul_health_node_status", "Status of health checks associated with a node.");
    for (size_t i = 0; i < n; i++) {
        check_lines(b, "consul_health_node_status", &nodes[i], "serfHealth", NULL,
                    nodes[i].serf_status == SERF_ALIVE ? "passing" : "critical");
        for (size_t k = 0; k < dc->n_checks; k++) {
            const struct check *c = dc->checks[k];
            if (!c->service_id[0] && strcmp(c->node, nodes[i].name) == 0) {
                check_lines(b, "consul_health_node_status", &nodes[i], c->id, NULL, c->status);
            }
        }
    }
    help(b, "consul_health_service_status", "Status of health checks associated with a service.");
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < dc->n_checks; k++) {
            const struct check *c = dc->checks[k];
            const struct service *svc =
                c->service_id[0] ? dc_service_find(dc, c->node, c->service_id) : NULL;
            if (svc && strcmp(c->node, nodes[i].name) == 0) {
                check_lines(b, "consul_health_service_status", &nodes[i], c->id, svc, c->status);
            }
        }
    }
    free(nodes);
}

int
exporter_handler(struct mg_connection *conn, void *cbdata)
{
    struct server *s = cbdata;
    struct dc *dc = s->dc;
    const struct mg_request_info *ri = mg_get_request_info(conn);
    if (strcmp(ri->local_uri ? ri->local_uri : "", "/metrics") != 0) {
        static const char page[] = "<html><head><title>Consul Exporter</title></head><body>"
                                   "<h1>Consul Exporter</h1><p><a href='/metrics'>Metrics</a>"
                                   "</p></body></html>\n";
        if (strcmp(ri->local_uri ? ri->local_uri : "", "/") == 0) {
            return web_reply(conn, 200, "text/html; charset=utf-8", NULL, page, sizeof(page) - 1);
        }
        return web_reply(conn, 404, "text/plain; charset=utf-8", NULL, "404 page not found\n", 19);
    }
    struct buf b;
    buf_init(&b, (size_t)64 << 20);
    pthread_mutex_lock(&dc->mu);
    render(&b, dc, s);
    pthread_mutex_unlock(&dc->mu);
    int rc = web_reply(conn, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, b.data, b.len);
    buf_free(&b);
    return rc;
}
