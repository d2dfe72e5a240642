/* render: the JSON bodies of the read endpoints, with the keys and value types of Consul's
 * documented responses (tests/fixtures/consul-api/). Every function expects dc->mu held and returns
 * a new cJSON tree that the caller owns. */
#include "sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const serf_names[] = {"none", "alive", "leaving", "left", "failed"};

static const char *
serf_name(int st)
{
    return (st >= 0 && st <= 4) ? serf_names[st] : "none";
}

static cJSON *
str_array(const struct strlist *l)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; l && i < l->n; i++) {
        cJSON_AddItemToArray(a, cJSON_CreateString(l->v[i]));
    }
    return a;
}

/* Formats ms as a Go time.Duration string ("0s", "12.5ms", "3.2s", "1m5.25s"). */
static void
go_duration(double ms, char *out, size_t len)
{
    if (ms <= 0) {
        snprintf(out, len, "0s");
    } else if (ms < 1000) {
        snprintf(out, len, "%.6gms", ms);
    } else if (ms < 60000) {
        snprintf(out, len, "%.6gs", ms / 1000);
    } else {
        long long m = (long long)(ms / 60000);
        snprintf(out, len, "%lldm%.6gs", m, (ms - (double)m * 60000) / 1000);
    }
}

/* A small follower contact time that varies a little between calls. */
static double
follower_contact_ms(const struct server *s)
{
    unsigned h = 0;
    for (const char *p = s->name; *p; p++) {
        h = h * 31 + (unsigned char)*p;
    }
    return 2.0 + (double)((h + (unsigned)(time_mono_ms() / 100)) % 4000) / 100.0;
}

static double
contact_ms(const struct dc *dc, const struct server *s)
{
    if (!server_up(s)) {
        return (double)(time_mono_ms() - s->down_since_mono);
    }
    if (!dc->leader) {
        return (double)(time_mono_ms() - dc->leader_lost_mono);
    }
    return s == dc->leader ? 0.0 : follower_contact_ms(s);
}

static void
wall_rfc3339(int64_t ms, char *out, size_t len)
{
    time_format_rfc3339(ms ? ms : time_now_ms(), out, len);
}

cJSON *
render_member(const struct dc *dc, const struct server *s, const struct client *c, bool wan)
{
    cJSON *m = cJSON_CreateObject();
    char name[SIM_NAME_MAX + 40];
    const char *ip = s ? s->ip : c->ip;
    if (wan) {
        snprintf(name, sizeof(name), "%s.%s", s->name, dc->opt.name);
    } else {
        snprintf(name, sizeof(name), "%s", s ? s->name : c->name);
    }
    cJSON_AddStringToObject(m, "Name", name);
    cJSON_AddStringToObject(m, "Addr", ip);
    cJSON_AddNumberToObject(m, "Port", wan ? 8302 : 8301);
    cJSON *t = cJSON_AddObjectToObject(m, "Tags");
    cJSON_AddStringToObject(t, "build", SIM_CONSUL_VERSION ":98e3a2e1");
    cJSON_AddStringToObject(t, "dc", dc->opt.name);
    cJSON_AddStringToObject(t, "id", s ? s->node_id : c->node_id);
    cJSON_AddStringToObject(t, "role", s ? "consul" : "node");
    cJSON_AddStringToObject(t, "segment", "");
    cJSON_AddStringToObject(t, "vsn", "2");
    cJSON_AddStringToObject(t, "vsn_max", "3");
    cJSON_AddStringToObject(t, "vsn_min", "2");
    if (s) {
        cJSON_AddStringToObject(t, "acls", dc->opt.token ? "1" : "0");
        cJSON_AddStringToObject(t, "ft_fs", "1");
        cJSON_AddStringToObject(t, "ft_si", "1");
        cJSON_AddStringToObject(t, "port", "8300");
        cJSON_AddStringToObject(t, "raft_vsn", "3");
        cJSON_AddStringToObject(t, "wan_join_port", "8302");
    }
    int st = s ? (s->serf_status ? s->serf_status : SERF_ALIVE) : c->serf_status;
    cJSON_AddNumberToObject(m, "Status", st);
    cJSON_AddNumberToObject(m, "ProtocolMin", 1);
    cJSON_AddNumberToObject(m, "ProtocolMax", 5);
    cJSON_AddNumberToObject(m, "ProtocolCur", 2);
    cJSON_AddNumberToObject(m, "DelegateMin", 2);
    cJSON_AddNumberToObject(m, "DelegateMax", 5);
    cJSON_AddNumberToObject(m, "DelegateCur", 4);
    return m;
}

/* Members as the viewer agent sees them: the whole cluster when it has joined, else itself. */
cJSON *
render_members(const struct dc *dc, const struct server *viewer, bool wan)
{
    cJSON *a = cJSON_CreateArray();
    if (!server_in_cluster(viewer)) {
        cJSON *self = render_member(dc, viewer, NULL, wan);
        cJSON_ReplaceItemInObject(self, "Status", cJSON_CreateNumber(SERF_ALIVE)); /* to itself */
        cJSON_AddItemToArray(a, self);
        return a;
    }
    for (size_t i = 0; i < dc->n_servers; i++) {
        const struct server *s = dc->servers[i];
        if (s->serf_status != SERF_NONE && (s->joined || s->serf_status == SERF_LEFT)) {
            cJSON_AddItemToArray(a, render_member(dc, s, NULL, wan));
        }
    }
    for (size_t i = 0; !wan && i < dc->n_clients; i++) {
        if (dc->clients[i]->serf_status != SERF_NONE) {
            cJSON_AddItemToArray(a, render_member(dc, NULL, dc->clients[i], false));
        }
    }
    return a;
}

static void
add_node_fields(const struct dc *dc, cJSON *o, const struct node_ref *n, const char *meta_key)
{
    cJSON_AddStringToObject(o, "ID", n->id);
    cJSON_AddStringToObject(o, "Node", n->name);
    cJSON_AddStringToObject(o, "Address", n->ip);
    cJSON_AddStringToObject(o, "Datacenter", dc->opt.name);
    cJSON *ta = cJSON_AddObjectToObject(o, "TaggedAddresses");
    cJSON_AddStringToObject(ta, "lan", n->ip);
    cJSON_AddStringToObject(ta, "lan_ipv4", n->ip);
    cJSON_AddStringToObject(ta, "wan", n->ip);
    cJSON_AddStringToObject(ta, "wan_ipv4", n->ip);
    cJSON *meta = cJSON_AddObjectToObject(o, meta_key);
    cJSON_AddStringToObject(meta, "consul-network-segment", "");
    if (!n->is_server) {
        cJSON_AddStringToObject(meta, "kubernetes-node", "true");
    }
}

cJSON *
render_node(const struct dc *dc, const struct node_ref *n)
{
    cJSON *o = cJSON_CreateObject();
    add_node_fields(dc, o, n, "Meta");
    cJSON_AddNumberToObject(o, "CreateIndex", (double)n->create_index);
    cJSON_AddNumberToObject(o, "ModifyIndex", (double)n->create_index);
    return o;
}

static const char *
node_ip(const struct dc *dc, const char *node)
{
    for (size_t i = 0; i < dc->n_servers; i++) {
        if (dc->servers[i]->joined && strcmp(dc->servers[i]->name, node) == 0) {
            return dc->servers[i]->ip;
        }
    }
    const struct client *c = dc_find_client(dc, node);
    return c ? c->ip : "127.0.0.1";
}

static cJSON *
service_addr(const char *ip, int port)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "Address", ip);
    cJSON_AddNumberToObject(o, "Port", port);
    return o;
}

/* AgentService: the superset of the fields the agent, catalog and health samples show. */
static cJSON *
agent_service(const struct dc *dc, const char *id, const char *name, const struct strlist *tags,
              int port, const char *ip, cJSON *meta, uint64_t ci, uint64_t mi)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "ID", id);
    cJSON_AddStringToObject(o, "Service", name);
    cJSON_AddItemToObject(o, "Tags", str_array(tags));
    cJSON_AddItemToObject(o, "Meta", meta ? meta : cJSON_CreateObject());
    cJSON_AddNumberToObject(o, "Port", port);
    cJSON_AddStringToObject(o, "Address", "");
    cJSON_AddStringToObject(o, "SocketPath", "");
    cJSON *ta = cJSON_AddObjectToObject(o, "TaggedAddresses");
    cJSON_AddItemToObject(ta, "lan", service_addr(ip, port));
    cJSON_AddItemToObject(ta, "wan", service_addr(ip, port));
    cJSON *w = cJSON_AddObjectToObject(o, "Weights");
    cJSON_AddNumberToObject(w, "Passing", 1);
    cJSON_AddNumberToObject(w, "Warning", 1);
    cJSON_AddBoolToObject(o, "EnableTagOverride", false);
    cJSON_AddStringToObject(o, "Namespace", "default");
    cJSON_AddStringToObject(o, "Datacenter", dc->opt.name);
    cJSON_AddNumberToObject(o, "CreateIndex", (double)ci);
    cJSON_AddNumberToObject(o, "ModifyIndex", (double)mi);
    return o;
}

cJSON *
render_agent_service(const struct dc *dc, const struct service *svc)
{
    return agent_service(dc, svc->id, svc->name, &svc->tags, svc->port, node_ip(dc, svc->node),
                         NULL, svc->create_index, svc->modify_index);
}

/* The "consul" service every server node carries in the catalog. */
cJSON *
render_consul_service(const struct dc *dc, const char *ip)
{
    cJSON *meta = cJSON_CreateObject();
    cJSON_AddStringToObject(meta, "non_voter", "false");
    cJSON_AddStringToObject(meta, "raft_version", "3");
    cJSON_AddStringToObject(meta, "read_replica", "false");
    cJSON_AddStringToObject(meta, "serf_protocol_current", "2");
    cJSON_AddStringToObject(meta, "serf_protocol_max", "5");
    cJSON_AddStringToObject(meta, "serf_protocol_min", "1");
    cJSON_AddStringToObject(meta, "version", SIM_CONSUL_VERSION);
    return agent_service(dc, "consul", "consul", NULL, 8300, ip, meta, 5, 5);
}

static cJSON *
check_json(const struct dc *dc, const struct node_ref *n, const char *id, const char *name,
           const char *status, const char *output, const struct service *svc, uint64_t ci,
           uint64_t mi)
{
    (void)dc;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "ID", n->id);
    cJSON_AddStringToObject(o, "Node", n->name);
    cJSON_AddStringToObject(o, "CheckID", id);
    cJSON_AddStringToObject(o, "Name", name);
    cJSON_AddStringToObject(o, "Status", status);
    cJSON_AddStringToObject(o, "Notes", "");
    cJSON_AddStringToObject(o, "Output", output);
    cJSON_AddStringToObject(o, "ServiceID", svc ? svc->id : "");
    cJSON_AddStringToObject(o, "ServiceName", svc ? svc->name : "");
    cJSON_AddItemToObject(o, "ServiceTags", str_array(svc ? &svc->tags : NULL));
    cJSON_AddStringToObject(o, "Type", svc ? "http" : "");
    cJSON_AddStringToObject(o, "Interval", svc ? "10s" : "");
    cJSON_AddStringToObject(o, "Timeout", svc ? "5s" : "");
    cJSON_AddNumberToObject(o, "ExposedPort", 0);
    cJSON *d = cJSON_AddObjectToObject(o, "Definition");
    cJSON_AddStringToObject(d, "Interval", svc ? "10s" : "0s");
    cJSON_AddStringToObject(d, "Timeout", svc ? "5s" : "0s");
    cJSON_AddStringToObject(d, "DeregisterCriticalServiceAfter", "0s");
    char url[128] = "";
    if (svc) {
        snprintf(url, sizeof(url), "http://%s:%d/health", n->ip, svc->port);
    }
    cJSON_AddStringToObject(d, "HTTP", url);
    cJSON_AddNullToObject(d, "Header");
    cJSON_AddStringToObject(d, "Method", "");
    cJSON_AddStringToObject(d, "Body", "");
    cJSON_AddStringToObject(d, "TLSServerName", "");
    cJSON_AddBoolToObject(d, "TLSSkipVerify", false);
    cJSON_AddStringToObject(d, "TCP", "");
    cJSON_AddStringToObject(o, "Namespace", "default");
    cJSON_AddNumberToObject(o, "CreateIndex", (double)ci);
    cJSON_AddNumberToObject(o, "ModifyIndex", (double)mi);
    return o;
}

cJSON *
render_check(const struct dc *dc, const struct check *chk, const struct node_ref *n)
{
    const struct service *svc =
        chk->service_id[0] ? dc_service_find(dc, chk->node, chk->service_id) : NULL;
    return check_json(dc, n, chk->id, chk->name, chk->status, chk->output, svc, chk->create_index,
                      chk->modify_index);
}

cJSON *
render_serf_check(const struct dc *dc, const struct node_ref *n)
{
    bool alive = n->serf_status == SERF_ALIVE;
    return check_json(dc, n, "serfHealth", "Serf Health Status", alive ? "passing" : "critical",
                      alive ? "Agent alive and reachable" : "Agent not live or unreachable", NULL,
                      n->create_index, n->create_index);
}

cJSON *
render_node_checks(const struct dc *dc, const struct node_ref *n)
{
    cJSON *a = cJSON_CreateArray();
    cJSON_AddItemToArray(a, render_serf_check(dc, n));
    for (size_t i = 0; i < dc->n_checks; i++) {
        if (strcmp(dc->checks[i]->node, n->name) == 0) {
            cJSON_AddItemToArray(a, render_check(dc, dc->checks[i], n));
        }
    }
    return a;
}

cJSON *
render_raft_config(const struct dc *dc, const struct server *viewer)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *a = cJSON_AddArrayToObject(o, "Servers");
    const struct server *leader = dc_agent_leader(dc, viewer);
    for (size_t i = 0; server_in_cluster(viewer) && i < dc->n_servers; i++) {
        const struct server *s = dc->servers[i];
        if (!s->in_raft) {
            continue;
        }
        char addr[32];
        snprintf(addr, sizeof(addr), "%s:8300", s->ip);
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "ID", s->node_id);
        cJSON_AddStringToObject(e, "Node", s->name);
        cJSON_AddStringToObject(e, "Address", addr);
        cJSON_AddBoolToObject(e, "Leader", s == leader);
        cJSON_AddStringToObject(e, "ProtocolVersion", "3");
        cJSON_AddBoolToObject(e, "Voter", s->voter);
        cJSON_AddNumberToObject(e, "LastIndex", (double)s->last_index);
        cJSON_AddItemToArray(a, e);
    }
    cJSON_AddNumberToObject(o, "Index", (double)dc_res_index(dc, RES_RAFT));
    return o;
}

static bool
server_healthy(const struct dc *dc, const struct server *s)
{
    return dc->leader && server_up(s) && s->joined && s->serf_status == SERF_ALIVE &&
           contact_ms(dc, s) < 200;
}

/* Failure tolerance: healthy voters (or all healthy servers when optimistic) minus quorum. */
static int
tolerance(const struct dc *dc, bool optimistic)
{
    int voters = 0;
    int healthy = 0;
    for (size_t i = 0; i < dc->n_servers; i++) {
        const struct server *s = dc->servers[i];
        if (!s->in_raft) {
            continue;
        }
        voters += s->voter;
        if (server_healthy(dc, s) && (s->voter || optimistic)) {
            healthy++;
        }
    }
    int ft = healthy - (voters / 2 + 1);
    return ft > 0 ? ft : 0;
}

cJSON *
render_autopilot_health(const struct dc *dc, bool *healthy)
{
    cJSON *o = cJSON_CreateObject();
    bool all = true;
    cJSON_AddBoolToObject(o, "Healthy", true);
    cJSON_AddNumberToObject(o, "FailureTolerance", tolerance(dc, false));
    cJSON *a = cJSON_AddArrayToObject(o, "Servers");
    for (size_t i = 0; i < dc->n_servers; i++) {
        const struct server *s = dc->servers[i];
        if (!s->in_raft) {
            continue;
        }
        char addr[32];
        char lc[48];
        char since[40];
        snprintf(addr, sizeof(addr), "%s:8300", s->ip);
        go_duration(contact_ms(dc, s), lc, sizeof(lc));
        wall_rfc3339(s->stable_since_wall, since, sizeof(since));
        bool ok = server_healthy(dc, s);
        all = all && ok;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "ID", s->node_id);
        cJSON_AddStringToObject(e, "Name", s->name);
        cJSON_AddStringToObject(e, "Address", addr);
        cJSON_AddStringToObject(e, "SerfStatus", serf_name(s->serf_status));
        cJSON_AddStringToObject(e, "Version", SIM_CONSUL_VERSION);
        cJSON_AddBoolToObject(e, "Leader", s == dc->leader);
        cJSON_AddStringToObject(e, "LastContact", lc);
        cJSON_AddNumberToObject(e, "LastTerm", (double)dc->term);
        cJSON_AddNumberToObject(e, "LastIndex", (double)s->last_index);
        cJSON_AddBoolToObject(e, "Healthy", ok);
        cJSON_AddBoolToObject(e, "Voter", s->voter);
        cJSON_AddStringToObject(e, "StableSince", since);
        cJSON_AddItemToArray(a, e);
    }
    cJSON_ReplaceItemInObjectCaseSensitive(o, "Healthy", cJSON_CreateBool(all));
    *healthy = all;
    return o;
}

static cJSON *
id_array(const struct dc *dc, bool voters)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < dc->n_servers; i++) {
        const struct server *s = dc->servers[i];
        if (s->in_raft && (!voters || s->voter)) {
            cJSON_AddItemToArray(a, cJSON_CreateString(s->node_id));
        }
    }
    return a;
}

cJSON *
render_autopilot_state(const struct dc *dc)
{
    cJSON *o = cJSON_CreateObject();
    bool all = true;
    cJSON_AddBoolToObject(o, "Healthy", true);
    cJSON_AddNumberToObject(o, "FailureTolerance", tolerance(dc, false));
    cJSON_AddNumberToObject(o, "OptimisticFailureTolerance", tolerance(dc, true));
    cJSON *servers = cJSON_AddObjectToObject(o, "Servers");
    for (size_t i = 0; i < dc->n_servers; i++) {
        const struct server *s = dc->servers[i];
        if (!s->in_raft) {
            continue;
        }
        char addr[32];
        char lc[48];
        char since[40];
        snprintf(addr, sizeof(addr), "%s:8300", s->ip);
        go_duration(contact_ms(dc, s), lc, sizeof(lc));
        wall_rfc3339(s->stable_since_wall, since, sizeof(since));
        bool ok = server_healthy(dc, s);
        all = all && ok;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "ID", s->node_id);
        cJSON_AddStringToObject(e, "Name", s->name);
        cJSON_AddStringToObject(e, "Address", addr);
        cJSON_AddStringToObject(e, "NodeStatus", serf_name(s->serf_status));
        cJSON_AddStringToObject(e, "Version", SIM_CONSUL_VERSION);
        cJSON_AddStringToObject(e, "LastContact", lc);
        cJSON_AddNumberToObject(e, "LastTerm", (double)dc->term);
        cJSON_AddNumberToObject(e, "LastIndex", (double)s->last_index);
        cJSON_AddBoolToObject(e, "Healthy", ok);
        cJSON_AddStringToObject(e, "StableSince", since);
        cJSON_AddStringToObject(e, "RedundancyZone", "");
        cJSON_AddStringToObject(e, "UpgradeVersion", "");
        cJSON_AddBoolToObject(e, "ReadReplica", false);
        cJSON_AddStringToObject(e, "Status",
                                s == dc->leader ? "leader" : (s->voter ? "voter" : "non-voter"));
        cJSON *meta = cJSON_AddObjectToObject(e, "Meta");
        cJSON_AddStringToObject(meta, "consul-network-segment", "");
        cJSON_AddStringToObject(e, "NodeType", "voter");
        cJSON_AddItemToObject(servers, s->node_id, e);
    }
    cJSON_ReplaceItemInObjectCaseSensitive(o, "Healthy", cJSON_CreateBool(all));
    cJSON_AddStringToObject(o, "Leader", dc->leader ? dc->leader->node_id : "");
    cJSON_AddItemToObject(o, "Voters", id_array(dc, true));
    cJSON_AddArrayToObject(o, "ReadReplicas");
    cJSON_AddObjectToObject(o, "RedundancyZones");
    cJSON *u = cJSON_AddObjectToObject(o, "Upgrade");
    cJSON_AddStringToObject(u, "Status", "idle");
    cJSON_AddStringToObject(u, "TargetVersion", SIM_CONSUL_VERSION);
    cJSON_AddItemToObject(u, "TargetVersionVoters", id_array(dc, true));
    cJSON_AddArrayToObject(u, "TargetVersionNonVoters");
    cJSON_AddArrayToObject(u, "TargetVersionReadReplicas");
    cJSON_AddArrayToObject(u, "OtherVersionVoters");
    cJSON_AddArrayToObject(u, "OtherVersionNonVoters");
    cJSON_AddArrayToObject(u, "OtherVersionReadReplicas");
    return o;
}

cJSON *
render_coord(void)
{
    cJSON *c = cJSON_CreateObject();
    cJSON_AddNumberToObject(c, "Adjustment", 0);
    cJSON_AddNumberToObject(c, "Error", 1.5);
    cJSON_AddNumberToObject(c, "Height", 1e-05);
    cJSON *v = cJSON_AddArrayToObject(c, "Vec");
    for (int i = 0; i < 8; i++) {
        cJSON_AddItemToArray(v, cJSON_CreateNumber(0));
    }
    return c;
}

cJSON *
render_self(const struct dc *dc, const struct server *s)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *c = cJSON_AddObjectToObject(o, "Config");
    cJSON_AddStringToObject(c, "Datacenter", dc->opt.name);
    cJSON_AddStringToObject(c, "PrimaryDatacenter", dc->opt.name);
    cJSON_AddStringToObject(c, "NodeName", s->name);
    cJSON_AddStringToObject(c, "NodeID", s->node_id);
    cJSON_AddStringToObject(c, "Partition", "");
    cJSON_AddBoolToObject(c, "Server", true);
    cJSON_AddStringToObject(c, "Revision", "98e3a2e1");
    cJSON_AddStringToObject(c, "Version", SIM_CONSUL_VERSION);
    cJSON_AddStringToObject(c, "BuildDate", "2024-02-20T18:04:34Z");
    cJSON *d = cJSON_AddObjectToObject(o, "DebugConfig");
    cJSON_AddStringToObject(d, "Datacenter", dc->opt.name);
    cJSON_AddStringToObject(d, "NodeName", s->name);
    cJSON_AddBoolToObject(d, "ServerMode", true);
    cJSON_AddStringToObject(d, "BindAddr", s->ip);
    cJSON_AddItemToObject(d, "RetryJoinLAN", str_array(&s->retry_join));
    cJSON_AddNumberToObject(d, "HTTPPort", s->http_port);
    cJSON_AddStringToObject(d, "AutopilotServerStabilizationTime", "10s");
    cJSON_AddItemToObject(o, "Coord", render_coord());
    cJSON_AddItemToObject(o, "Member", render_member(dc, s, NULL, false));
    cJSON *meta = cJSON_AddObjectToObject(o, "Meta");
    cJSON_AddStringToObject(meta, "consul-network-segment", "");
    return o;
}
