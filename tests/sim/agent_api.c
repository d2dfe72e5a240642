/* agent_api: the server agent's HTTP API front door (route table, 404/405, ACL token,
 * consistency and blocking parameters, meta headers, latency) plus the status, operator and
 * agent endpoints. Catalog, health, KV and coordinates are in agent_read.c. */
#include "agent.h"

#include <civetweb.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct route {
    const char *methods; /* comma-separated, as in Consul's Allow header */
    const char *path;
    bool prefix;
    int (*fn)(struct areq *r);
};

static void
sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int
agent_raw(struct areq *r, int status, const char *ctype, const void *body, size_t len)
{
    int ms = atomic_load(&r->dc->latency_ms);
    if (ms > 0) {
        sleep_ms(ms);
    }
    buf_printf(&r->hdr, "X-Consul-Default-Acl-Policy: %s\r\n", r->dc->opt.token ? "deny" : "allow");
    return web_reply(r->conn, status, ctype, r->hdr.data, body, len);
}

int
agent_not_simulated(struct areq *r)
{
    char msg[160];
    snprintf(msg, sizeof(msg), "consul-sim does not simulate %s %.100s", r->method, r->path);
    return agent_text(r, 501, msg);
}

int
agent_text(struct areq *r, int status, const char *text)
{
    return agent_raw(r, status, "text/plain; charset=utf-8", text, strlen(text));
}

/* Sends j (consumed). */
int
agent_json(struct areq *r, int status, cJSON *j)
{
    char *s = json_print(j);
    cJSON_Delete(j);
    int rc = agent_raw(r, status, "application/json", s, strlen(s));
    free(s);
    return rc;
}

static int64_t
last_contact(const struct areq *r)
{
    const struct dc *dc = r->dc;
    const struct server *l = dc_serving_leader(dc, r->s);
    if (!l) {
        return time_mono_ms() - dc->leader_lost_mono;
    }
    if (l == r->s || r->mode == MODE_CONSISTENT) {
        return 0;
    }
    return 1 + (time_mono_ms() / 7) % 40;
}

int
agent_begin_read(struct areq *r, unsigned res, bool needs_leader)
{
    static _Thread_local unsigned seed;
    struct dc *dc = r->dc;
    bool stale = r->mode == MODE_STALE;
    pthread_mutex_lock(&dc->mu);
    /* Without a leader the server holds the request for rpc_hold_timeout, as Consul's RPC
     * forwarding does, and answers as soon as one is elected. */
    if (needs_leader && !stale && !dc_hold_for_leader(dc, r->s)) {
        goto noleader;
    }
    if (res && r->min_index > 0) {
        int64_t wait = r->wait_ms > 0 ? r->wait_ms : 300000;
        if (wait > 600000) {
            wait = 600000;
        }
        if (!seed) {
            seed = (unsigned)time_mono_ms() ^ (unsigned)(uintptr_t)r;
        }
        wait += rand_r(&seed) % (wait / 16 + 1);
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += wait / 1000;
        ts.tv_nsec += (long)(wait % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        while (dc_res_index(dc, res) <= r->min_index && !atomic_load(&dc->shutdown) &&
               server_up(r->s)) {
            if (pthread_cond_timedwait(&dc->cond, &dc->mu, &ts) == ETIMEDOUT) {
                break;
            }
        }
        if (needs_leader && !stale && !dc_hold_for_leader(dc, r->s)) {
            goto noleader;
        }
    }
    if (res) {
        buf_printf(&r->hdr, "X-Consul-Index: %llu\r\n", (unsigned long long)dc_res_index(dc, res));
    }
    buf_printf(&r->hdr, "X-Consul-Knownleader: %s\r\nX-Consul-Lastcontact: %lld\r\n",
               dc_agent_leader(dc, r->s) ? "true" : "false", (long long)last_contact(r));
    if (r->mode_given) {
        static const char *const names[] = {"leader", "stale", "consistent", "leader"};
        buf_printf(&r->hdr, "X-Consul-Effective-Consistency: %s\r\n", names[r->mode]);
    }
    return 0;
noleader:
    pthread_mutex_unlock(&dc->mu);
    return agent_text(r, 500, "No cluster leader");
}

/* ---- status ---- */

static int
h_status_leader(struct areq *r)
{
    pthread_mutex_lock(&r->dc->mu);
    const struct server *l = dc_agent_leader(r->dc, r->s);
    char addr[32] = "";
    if (l) {
        snprintf(addr, sizeof(addr), "%s:8300", l->ip);
    }
    pthread_mutex_unlock(&r->dc->mu);
    return agent_json(r, 200, cJSON_CreateString(addr));
}

static int
h_status_peers(struct areq *r)
{
    cJSON *a = cJSON_CreateArray();
    pthread_mutex_lock(&r->dc->mu);
    for (size_t i = 0; server_in_cluster(r->s) && i < r->dc->n_servers; i++) {
        const struct server *s = r->dc->servers[i];
        if (s->in_raft) {
            char addr[32];
            snprintf(addr, sizeof(addr), "%s:8300", s->ip);
            cJSON_AddItemToArray(a, cJSON_CreateString(addr));
        }
    }
    pthread_mutex_unlock(&r->dc->mu);
    return agent_json(r, 200, a);
}

/* ---- operator ---- */

static int
h_raft_configuration(struct areq *r)
{
    int rc = agent_begin_read(r, RES_RAFT, true);
    if (rc) {
        return rc;
    }
    cJSON *j = render_raft_config(r->dc, r->s);
    pthread_mutex_unlock(&r->dc->mu);
    return agent_json(r, 200, j);
}

static int
h_raft_peer_delete(struct areq *r)
{
    const char *id = query_get(&r->q, "id");
    const char *address = query_get(&r->q, "address");
    if ((!id || !*id) && (!address || !*address)) {
        return agent_text(r, 400,
                          "Must specify either ?id with the server's ID or ?address "
                          "with IP:port of peer to remove");
    }
    pthread_mutex_lock(&r->dc->mu);
    if (!dc_hold_for_leader(r->dc, r->s)) {
        pthread_mutex_unlock(&r->dc->mu);
        return agent_text(r, 500, "No cluster leader");
    }
    int rc = dc_raft_remove(r->dc, id && *id ? id : NULL, address && *address ? address : NULL);
    pthread_mutex_unlock(&r->dc->mu);
    if (rc != 0) {
        char msg[300];
        if (id && *id) {
            snprintf(msg, sizeof(msg), "id \"%s\" was not found in the Raft configuration", id);
        } else {
            snprintf(msg, sizeof(msg), "address \"%s\" was not found in the Raft configuration",
                     address);
        }
        return agent_text(r, 500, msg);
    }
    return agent_raw(r, 200, "application/json", "", 0);
}

static int
h_transfer_leader(struct areq *r)
{
    const char *id = query_get(&r->q, "id");
    pthread_mutex_lock(&r->dc->mu);
    if (!dc_hold_for_leader(r->dc, r->s)) {
        pthread_mutex_unlock(&r->dc->mu);
        return agent_text(r, 500, "No cluster leader");
    }
    int rc = dc_transfer_leader(r->dc, id);
    pthread_mutex_unlock(&r->dc->mu);
    if (rc != 0) {
        return agent_text(r, 500,
                          id && *id ? "cannot find peer"
                                    : "cannot transfer leadership: no other voter is up");
    }
    cJSON *j = cJSON_CreateObject();
    cJSON_AddBoolToObject(j, "Success", true);
    return agent_json(r, 200, j);
}

/* Autopilot endpoints are always answered by the leader (Consul forces consistency). */
static int
h_autopilot_health(struct areq *r)
{
    r->mode = MODE_DEFAULT;
    int rc = agent_begin_read(r, 0, true);
    if (rc) {
        return rc;
    }
    bool healthy = false;
    cJSON *j = render_autopilot_health(r->dc, &healthy);
    pthread_mutex_unlock(&r->dc->mu);
    return agent_json(r, healthy ? 200 : 429, j);
}

static int
h_autopilot_state(struct areq *r)
{
    r->mode = MODE_DEFAULT;
    int rc = agent_begin_read(r, 0, true);
    if (rc) {
        return rc;
    }
    cJSON *j = render_autopilot_state(r->dc);
    pthread_mutex_unlock(&r->dc->mu);
    return agent_json(r, 200, j);
}

static int
h_autopilot_configuration(struct areq *r)
{
    if (strcmp(r->method, "GET") != 0) {
        return agent_not_simulated(r);
    }
    int rc = agent_begin_read(r, 0, true);
    if (rc) {
        return rc;
    }
    char stab[32];
    snprintf(stab, sizeof(stab), "%llds", (long long)(r->dc->opt.stabilization_ms / 1000));
    pthread_mutex_unlock(&r->dc->mu);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddBoolToObject(j, "CleanupDeadServers", true);
    cJSON_AddStringToObject(j, "LastContactThreshold", "200ms");
    cJSON_AddNumberToObject(j, "MaxTrailingLogs", 250);
    cJSON_AddNumberToObject(j, "MinQuorum", 0);
    cJSON_AddStringToObject(j, "ServerStabilizationTime", stab);
    cJSON_AddStringToObject(j, "RedundancyZoneTag", "");
    cJSON_AddBoolToObject(j, "DisableUpgradeMigration", false);
    cJSON_AddStringToObject(j, "UpgradeVersionTag", "");
    cJSON_AddNumberToObject(j, "CreateIndex", 5);
    cJSON_AddNumberToObject(j, "ModifyIndex", 5);
    return agent_json(r, 200, j);
}

/* ---- agent (local, always answered while the agent runs) ---- */

static int
h_agent_members(struct areq *r)
{
    bool wan = query_has(&r->q, "wan");
    pthread_mutex_lock(&r->dc->mu);
    cJSON *j = render_members(r->dc, r->s, wan);
    pthread_mutex_unlock(&r->dc->mu);
    return agent_json(r, 200, j);
}

static int
h_agent_self(struct areq *r)
{
    pthread_mutex_lock(&r->dc->mu);
    cJSON *j = render_self(r->dc, r->s);
    pthread_mutex_unlock(&r->dc->mu);
    return agent_json(r, 200, j);
}

static struct node_ref
self_node(const struct server *s)
{
    return (struct node_ref){s->name, s->ip, s->node_id, SERF_ALIVE, true, s->create_index};
}

static int
h_agent_services(struct areq *r)
{
    cJSON *j = cJSON_CreateObject();
    pthread_mutex_lock(&r->dc->mu);
    for (size_t i = 0; i < r->dc->n_services; i++) {
        const struct service *svc = r->dc->services[i];
        if (strcmp(svc->node, r->s->name) == 0) {
            cJSON_AddItemToObject(j, svc->id, render_agent_service(r->dc, svc));
        }
    }
    pthread_mutex_unlock(&r->dc->mu);
    return agent_json(r, 200, j);
}

static int
h_agent_checks(struct areq *r)
{
    cJSON *j = cJSON_CreateObject();
    pthread_mutex_lock(&r->dc->mu);
    struct node_ref n = self_node(r->s);
    for (size_t i = 0; i < r->dc->n_checks; i++) {
        const struct check *c = r->dc->checks[i];
        if (strcmp(c->node, r->s->name) == 0) {
            cJSON_AddItemToObject(j, c->id, render_check(r->dc, c, &n));
        }
    }
    pthread_mutex_unlock(&r->dc->mu);
    return agent_json(r, 200, j);
}

static int
h_agent_leave(struct areq *r)
{
    pthread_mutex_lock(&r->dc->mu);
    dc_server_leave(r->dc, r->s);
    pthread_mutex_unlock(&r->dc->mu);
    /* The ticker stops this listener once the reply is out. */
    return agent_raw(r, 200, "application/json", "", 0);
}

static int
h_agent_force_leave(struct areq *r)
{
    if (!*r->tail) {
        return agent_text(r, 400, "Missing node name");
    }
    pthread_mutex_lock(&r->dc->mu);
    int rc = dc_force_leave(r->dc, r->tail, query_has(&r->q, "prune"));
    pthread_mutex_unlock(&r->dc->mu);
    if (rc != 0) {
        char msg[200];
        snprintf(msg, sizeof(msg), "agent: No node found with name '%s'", r->tail);
        return agent_text(r, 500, msg);
    }
    return agent_raw(r, 200, "application/json", "", 0);
}

static int
h_agent_health_service(struct areq *r)
{
    cJSON *a = cJSON_CreateArray();
    const char *worst = "passing";
    pthread_mutex_lock(&r->dc->mu);
    struct node_ref n = self_node(r->s);
    for (size_t i = 0; i < r->dc->n_services; i++) {
        const struct service *svc = r->dc->services[i];
        if (strcmp(svc->node, r->s->name) != 0 || strcmp(svc->name, r->tail) != 0) {
            continue;
        }
        const char *agg = "passing";
        cJSON *checks = cJSON_CreateArray();
        for (size_t k = 0; k < r->dc->n_checks; k++) {
            const struct check *c = r->dc->checks[k];
            if (strcmp(c->node, svc->node) == 0 && strcmp(c->service_id, svc->id) == 0) {
                agg = status_worse(agg, c->status);
                cJSON_AddItemToArray(checks, render_check(r->dc, c, &n));
            }
        }
        worst = status_worse(worst, agg);
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "AggregatedStatus", agg);
        cJSON_AddItemToObject(e, "Service", render_agent_service(r->dc, svc));
        cJSON_AddItemToObject(e, "Checks", checks);
        cJSON_AddItemToArray(a, e);
    }
    pthread_mutex_unlock(&r->dc->mu);
    if (cJSON_GetArraySize(a) == 0) {
        cJSON_Delete(a);
        char msg[200];
        snprintf(msg, sizeof(msg), "ServiceName %s Not Found", r->tail);
        return agent_text(r, 404, msg);
    }
    int status = 200;
    if (strcmp(worst, "critical") == 0 || strcmp(worst, "maintenance") == 0) {
        status = 503;
    } else if (strcmp(worst, "warning") == 0) {
        status = 429;
    }
    return agent_json(r, status, a);
}

/* The endpoints, as Consul registers them (agent/http_register.go): path, prefix or exact
 * match, and the methods Consul accepts there, in Consul's order (they make the Allow
 * header after OPTIONS). A method Consul accepts but the simulator does not model is
 * answered 501 by its handler. */
static const struct route routes[] = {
    {"GET", "/v1/status/leader", false, h_status_leader},
    {"GET", "/v1/status/peers", false, h_status_peers},
    {"GET", "/v1/operator/raft/configuration", false, h_raft_configuration},
    {"DELETE", "/v1/operator/raft/peer", false, h_raft_peer_delete},
    {"POST", "/v1/operator/raft/transfer-leader", false, h_transfer_leader},
    {"GET", "/v1/operator/autopilot/health", false, h_autopilot_health},
    {"GET", "/v1/operator/autopilot/state", false, h_autopilot_state},
    {"GET,PUT", "/v1/operator/autopilot/configuration", false, h_autopilot_configuration},
    {"GET", "/v1/agent/members", false, h_agent_members},
    {"GET", "/v1/agent/self", false, h_agent_self},
    {"GET", "/v1/agent/services", false, h_agent_services},
    {"GET", "/v1/agent/checks", false, h_agent_checks},
    {"PUT", "/v1/agent/leave", false, h_agent_leave},
    {"PUT", "/v1/agent/force-leave/", true, h_agent_force_leave},
    {"GET", "/v1/agent/health/service/name/", true, h_agent_health_service},
    {"GET", "/v1/catalog/datacenters", false, h_catalog_datacenters},
    {"GET", "/v1/catalog/nodes", false, h_catalog_nodes},
    {"GET", "/v1/catalog/services", false, h_catalog_services},
    {"GET", "/v1/catalog/service/", true, h_catalog_service},
    {"GET", "/v1/catalog/node/", true, h_catalog_node},
    {"GET", "/v1/catalog/node-services/", true, h_catalog_node_services},
    {"GET", "/v1/health/state/", true, h_health_state},
    {"GET", "/v1/health/node/", true, h_health_node},
    {"GET", "/v1/health/checks/", true, h_health_checks},
    {"GET", "/v1/health/service/", true, h_health_service},
    {"GET,PUT,DELETE", "/v1/kv/", true, h_kv},
    {"GET", "/v1/coordinate/datacenters", false, h_coordinate_datacenters},
    {"GET", "/v1/coordinate/nodes", false, h_coordinate_nodes},
    {"GET,PUT", "/v1/snapshot", false, h_snapshot},
};

/* ServeMux's choice: the exact pattern, else the longest prefix pattern. */
static const struct route *
route_find(const char *path)
{
    const struct route *best = NULL;
    for (size_t i = 0; i < ARRAY_LEN(routes); i++) {
        const struct route *rt = &routes[i];
        if (!rt->prefix && strcmp(path, rt->path) == 0) {
            return rt;
        }
        if (rt->prefix && str_starts_with(path, rt->path) &&
            (!best || strlen(rt->path) > strlen(best->path))) {
            best = rt;
        }
    }
    return best;
}

/* Whether path is a subtree pattern without its trailing slash ("/v1/kv"). */
static bool
subtree_root(const char *path)
{
    size_t n = strlen(path);
    for (size_t i = 0; i < ARRAY_LEN(routes); i++) {
        if (routes[i].prefix && strlen(routes[i].path) == n + 1 &&
            strncmp(routes[i].path, path, n) == 0) {
            return true;
        }
    }
    return false;
}

static bool
method_listed(const char *list, const char *method)
{
    size_t m = strlen(method);
    for (const char *p = list; p && *p;) {
        const char *comma = strchr(p, ',');
        size_t l = comma ? (size_t)(comma - p) : strlen(p);
        if (l == m && strncmp(p, method, m) == 0) {
            return true;
        }
        p = comma ? comma + 1 : NULL;
    }
    return false;
}

/* Token from X-Consul-Token, Authorization: Bearer, or the legacy ?token=; NULL if none. */
static const char *
request_token(struct areq *r)
{
    const char *t = query_get(&r->q, "token");
    if (t && *t) {
        return t;
    }
    t = mg_get_header(r->conn, "X-Consul-Token");
    if (t && *t) {
        return t;
    }
    t = mg_get_header(r->conn, "Authorization");
    if (t && strncasecmp(t, "Bearer ", 7) == 0 && t[7]) {
        return t + 7;
    }
    return NULL;
}

/* Parses consistency and blocking parameters; returns 0 or the 400 status sent. */
static int
parse_params(struct areq *r)
{
    bool stale = query_has(&r->q, "stale");
    bool consistent = query_has(&r->q, "consistent");
    bool leader = query_has(&r->q, "leader");
    if (stale && consistent) {
        return agent_text(r, 400,
                          "Cannot specify ?stale with ?consistent, conflicting "
                          "semantics.");
    }
    r->mode_given = stale || consistent || leader;
    r->mode = stale        ? MODE_STALE
              : consistent ? MODE_CONSISTENT
              : leader     ? MODE_LEADER
                           : MODE_DEFAULT;
    const char *wait = query_get(&r->q, "wait");
    if (wait && *wait && parse_duration_ms(wait, &r->wait_ms) != 0) {
        return agent_text(r, 400, "Invalid wait time");
    }
    const char *index = query_get(&r->q, "index");
    if (index && *index && parse_u64(index, &r->min_index) != 0) {
        return agent_text(r, 400, "Invalid index");
    }
    return 0;
}

/* A 301 to the clean path (escaped, with the raw query), as http.Redirect writes it: for GET
 * and HEAD a small HTML body linking to it (HTML-escaped), for other methods no body. */
static int
redirect(struct areq *r, const char *clean_path)
{
    char *esc = gohttp_escape_path(clean_path);
    const char *qs = r->ri->query_string;
    char *location = xasprintf("%s%s%s", esc, qs ? "?" : "", qs ? qs : "");
    buf_printf(&r->hdr, "Location: %s\r\n", location);
    int rc;
    if (strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0) {
        struct buf b;
        buf_init(&b, 6 * strlen(location) + 64);
        buf_puts(&b, "<a href=\"");
        for (const char *p = location; *p; p++) {
            switch (*p) { /* Go's htmlReplacer */
            case '&':
                buf_puts(&b, "&amp;");
                break;
            case '<':
                buf_puts(&b, "&lt;");
                break;
            case '>':
                buf_puts(&b, "&gt;");
                break;
            case '"':
                buf_puts(&b, "&#34;");
                break;
            case '\'':
                buf_puts(&b, "&#39;");
                break;
            default:
                buf_append(&b, p, 1);
            }
        }
        buf_puts(&b, "\">Moved Permanently</a>.\n\n");
        rc = agent_raw(r, 301, "text/html; charset=utf-8", b.data, b.len);
        buf_free(&b);
    } else {
        rc = agent_raw(r, 301, NULL, "", 0);
    }
    free(location);
    free(esc);
    return rc;
}

static int
dispatch(struct areq *r)
{
    char *clean = gohttp_clean_path(r->path);
    bool unclean = strcmp(clean, r->path) != 0;
    if (unclean || subtree_root(r->path)) {
        if (!unclean) {
            free(clean);
            clean = xasprintf("%s/", r->path);
        }
        int rc = redirect(r, clean);
        free(clean);
        return rc;
    }
    free(clean);
    const struct route *rt = route_find(r->path);
    if (!rt) {
        return agent_raw(r, 404, NULL, "", 0); /* Consul's index handler: no body */
    }
    if (strcmp(r->method, "OPTIONS") == 0) {
        buf_printf(&r->hdr, "Allow: OPTIONS,%s\r\n", rt->methods);
        return agent_raw(r, 200, NULL, "", 0);
    }
    if (!method_listed(rt->methods, r->method)) {
        buf_printf(&r->hdr, "Allow: OPTIONS,%s\r\n", rt->methods);
        char msg[64];
        snprintf(msg, sizeof(msg), "method %s not allowed", r->method);
        return agent_text(r, 405, msg);
    }
    const char *token = request_token(r);
    if (r->dc->opt.token) {
        if (!token) {
            return agent_text(r, 403, "Permission denied");
        }
        if (!str_ct_equal(token, r->dc->opt.token)) {
            return agent_text(r, 403, "ACL not found");
        }
    }
    r->tail = rt->prefix ? r->path + strlen(rt->path) : "";
    int rc = parse_params(r);
    if (rc) {
        return rc;
    }
    return rt->fn(r);
}

int
agent_handler(struct mg_connection *conn, void *cbdata)
{
    struct areq r;
    memset(&r, 0, sizeof(r));
    r.conn = conn;
    r.ri = mg_get_request_info(conn);
    r.s = cbdata;
    r.dc = r.s->dc;
    r.method = r.ri->request_method;
    /* The listeners run with decode_url=no: this is the path as sent (civetweb would decode
     * it leniently, truncating at %00 and passing %zz through). */
    const char *raw = r.ri->local_uri_raw ? r.ri->local_uri_raw : r.ri->local_uri;
    if (!raw) {
        raw = "/";
    }
    buf_init(&r.hdr, 8192);
    query_parse(r.ri->query_string, &r.q);
    /* Consul sees the decoded path: handlers take names and keys from it. */
    char *path = NULL;
    size_t plen = 0;
    bool bad_escape = gohttp_path_unescape(raw, &path, &plen) != 0;
    r.path = bad_escape ? raw : path;
    bool had_token = request_token(&r) != NULL;
    pthread_mutex_lock(&r.dc->mu);
    dc_count_request(r.dc, r.s, r.method, r.path, had_token);
    bool up = server_up(r.s);
    pthread_mutex_unlock(&r.dc->mu);
    int rc;
    if (!up) {
        rc = agent_text(&r, 503, "Consul agent is shutting down");
    } else if (bad_escape) {
        /* Go's server refuses the request line before any handler runs. */
        rc = web_reply(conn, 400, "text/plain; charset=utf-8", "Connection: close\r\n",
                       "400 Bad Request", 15);
    } else if (!gohttp_path_printable(path, plen)) {
        rc = agent_raw(&r, 400, NULL, "", 0); /* go-cleanhttp: a NUL or control character */
    } else {
        rc = dispatch(&r);
    }
    free(path);
    query_free(&r.q);
    buf_free(&r.hdr);
    return rc;
}
