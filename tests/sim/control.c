/* control: the simulator's own JSON API (/sim/...) for tests, benchmarks and the demo:
 * inspect state, start/stop/leave servers and hosts, add servers, clients, services and
 * checks, set latency and speed, read agent logs and request counters. */
#include "sim.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct creq {
    struct mg_connection *conn;
    struct dc *dc;
    const char *method;
    char *seg[6]; /* path segments after /sim/ */
    int nseg;
    cJSON *body; /* parsed JSON body or NULL */
    struct query q;
};

static int
ok_json(struct creq *r, int status, cJSON *j)
{
    return web_reply_json(r->conn, status, NULL, j);
}

static int err_json(struct creq *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
err_json(struct creq *r, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "error", msg);
    return ok_json(r, status, j);
}

static bool
valid_name(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n >= SIM_NAME_MAX) {
        return false;
    }
    for (const char *p = s; *p; p++) {
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.') {
            return false;
        }
    }
    return true;
}

static bool
valid_id(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n >= SIM_ID_MAX) {
        return false;
    }
    for (const char *p = s; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == '/') {
            return false;
        }
    }
    return true;
}

static bool
valid_ip(const char *s, bool loopback)
{
    struct in_addr a;
    if (!s || inet_pton(AF_INET, s, &a) != 1) {
        return false;
    }
    return !loopback || (ntohl(a.s_addr) >> 24) == 127;
}

/* Reads an optional array of IPv4 strings; returns false when present but malformed. */
static bool
read_ip_list(const cJSON *arr, struct strlist *out)
{
    if (!arr) {
        return true;
    }
    if (!cJSON_IsArray(arr)) {
        return false;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        if (!cJSON_IsString(it) || !valid_ip(it->valuestring, false)) {
            return false;
        }
        strlist_add(out, it->valuestring);
    }
    return true;
}

/* What POST /sim/servers and POST /sim/servers/{name}/config may set: the "compose file"
 * (retry_join, restart policy, node name) and the data dir (node_id, raft state). */
struct server_cfg {
    bool has_retry_join;
    struct strlist retry_join;
    bool has_name;
    char name[SIM_NAME_MAX];
    int restart; /* -1 = not given */
    bool has_data;
    char data_cluster[40];
    struct strlist old_peers;
    char node_id[37]; /* "" = not given */
    int snapshot;     /* serf_snapshot: -1 = not given, 0 or 1 */
    int given;        /* how many keys were given */
};

static void
server_cfg_free(struct server_cfg *c)
{
    strlist_free(&c->retry_join);
    strlist_free(&c->old_peers);
}

static bool
valid_token(const char *s, size_t max)
{
    size_t n = strlen(s);
    for (const char *p = s; *p; p++) {
        if (!isalnum((unsigned char)*p) && *p != '-') {
            return false;
        }
    }
    return n < max;
}

/* Reads the optional keys of a server configuration; returns NULL, or the message naming
 * the bad field (the caller answers 400). */
static const char *
read_server_cfg(const cJSON *body, struct server_cfg *c)
{
    memset(c, 0, sizeof(*c));
    c->restart = -1;
    c->snapshot = -1;
    const cJSON *rj = cJSON_GetObjectItemCaseSensitive(body, "retry_join");
    if (rj) {
        c->has_retry_join = true;
        c->given++;
        if (!read_ip_list(rj, &c->retry_join)) {
            return "retry_join: must be an array of IPv4 addresses";
        }
    }
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(body, "name");
    if (name) {
        c->has_name = true;
        c->given++;
        if (!cJSON_IsString(name) || !valid_name(name->valuestring)) {
            return "name: required, 1-63 characters of [A-Za-z0-9._-]";
        }
        snprintf(c->name, sizeof(c->name), "%s", name->valuestring);
    }
    const cJSON *restart = cJSON_GetObjectItemCaseSensitive(body, "restart");
    if (restart) {
        c->given++;
        c->restart = cJSON_IsString(restart) ? restart_policy_parse(restart->valuestring) : -1;
        if (c->restart < 0) {
            return "restart: must be no, always, unless-stopped or on-failure";
        }
    }
    const cJSON *dcl = cJSON_GetObjectItemCaseSensitive(body, "data_cluster");
    if (dcl) {
        c->has_data = true;
        c->given++;
        if (!cJSON_IsString(dcl) || !valid_token(dcl->valuestring, sizeof(c->data_cluster))) {
            return "data_cluster: must be a cluster id (letters, digits, '-'), or \"\"";
        }
        snprintf(c->data_cluster, sizeof(c->data_cluster), "%s", dcl->valuestring);
        if (!read_ip_list(cJSON_GetObjectItemCaseSensitive(body, "old_peers"), &c->old_peers)) {
            return "old_peers: must be an array of IPv4 addresses";
        }
    }
    const cJSON *snap = cJSON_GetObjectItemCaseSensitive(body, "serf_snapshot");
    if (snap) {
        c->given++;
        if (!cJSON_IsBool(snap)) {
            return "serf_snapshot: must be true or false";
        }
        c->snapshot = cJSON_IsTrue(snap);
    }
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(body, "node_id");
    if (id) {
        c->given++;
        if (!cJSON_IsString(id) || strlen(id->valuestring) != 36 ||
            !valid_token(id->valuestring, sizeof(c->node_id))) {
            return "node_id: must be a UUID";
        }
        snprintf(c->node_id, sizeof(c->node_id), "%s", id->valuestring);
    }
    return NULL;
}

/* Applies a configuration to s (dc->mu held); it takes effect on the next start. */
static void
apply_server_cfg(struct server *s, const struct server_cfg *c)
{
    if (c->has_retry_join) {
        strlist_copy(&s->retry_join_cfg, &c->retry_join);
    }
    if (c->has_name) {
        snprintf(s->next_name, sizeof(s->next_name), "%s",
                 strcmp(c->name, s->name) == 0 ? "" : c->name);
    }
    if (c->restart >= 0) {
        s->restart = c->restart;
    }
    if (c->snapshot >= 0) {
        s->snapshot_cfg = c->snapshot;
    }
    if (c->has_data) {
        snprintf(s->data_cluster_cfg, sizeof(s->data_cluster_cfg), "%s", c->data_cluster);
        strlist_copy(&s->old_peers, &c->old_peers);
    }
}

cJSON *
control_server_json(const struct dc *dc, const struct server *s)
{
    cJSON *o = cJSON_CreateObject();
    char url[64];
    cJSON_AddStringToObject(o, "name", s->name);
    cJSON_AddStringToObject(o, "ip", s->ip);
    cJSON_AddStringToObject(o, "node_id", s->node_id);
    snprintf(url, sizeof(url), "http://%s:%d", s->ip, s->http_port);
    cJSON_AddStringToObject(o, "http", url);
    snprintf(url, sizeof(url), "http://%s:%d", s->ip, s->metrics_port);
    cJSON_AddStringToObject(o, "metrics", url);
    cJSON_AddBoolToObject(o, "running", s->running && s->host_up);
    cJSON_AddBoolToObject(o, "host_up", s->host_up);
    cJSON_AddBoolToObject(o, "joined", s->joined);
    cJSON_AddBoolToObject(o, "in_raft", s->in_raft);
    cJSON_AddBoolToObject(o, "voter", s->voter);
    cJSON_AddBoolToObject(o, "leader", dc->leader == s);
    cJSON_AddNumberToObject(o, "serf_status", s->serf_status);
    cJSON_AddBoolToObject(o, "name_conflict", s->conflict);
    cJSON *rj = cJSON_AddArrayToObject(o, "retry_join");
    for (size_t i = 0; i < s->retry_join_cfg.n; i++) {
        cJSON_AddItemToArray(rj, cJSON_CreateString(s->retry_join_cfg.v[i]));
    }
    cJSON_AddNumberToObject(o, "log_lines", (double)s->log_total);
    cJSON_AddNumberToObject(o, "requests_total", (double)s->requests);
    cJSON_AddStringToObject(o, "restart", restart_policy_name(s->restart));
    cJSON_AddBoolToObject(o, "restart_pending", s->restart_at_mono != 0);
    cJSON_AddNumberToObject(o, "starts", (double)s->starts);
    char ts[40] = "";
    if (s->started_wall) {
        time_format_rfc3339(s->started_wall, ts, sizeof(ts));
    }
    cJSON_AddStringToObject(o, "started_at", ts);
    ts[0] = '\0';
    if (!server_up(s) && s->down_since_mono) {
        time_format_rfc3339(time_now_ms() - (time_mono_ms() - s->down_since_mono), ts, sizeof(ts));
    }
    cJSON_AddStringToObject(o, "stopped_at", ts);
    cJSON_AddStringToObject(o, "data_cluster", s->data_cluster);
    cJSON_AddBoolToObject(o, "chasing_old_peers", s->chasing);
    cJSON_AddBoolToObject(o, "isolated", s->isolated);
    const struct server *named = dc_agent_leader(dc, s);
    cJSON_AddStringToObject(o, "names_leader", named ? named->name : "");
    return o;
}

static int
get_state(struct creq *r)
{
    struct dc *dc = r->dc;
    cJSON *o = cJSON_CreateObject();
    pthread_mutex_lock(&dc->mu);
    cJSON_AddStringToObject(o, "datacenter", dc->opt.name);
    cJSON *servers = cJSON_AddArrayToObject(o, "servers");
    for (size_t i = 0; i < dc->n_servers; i++) {
        cJSON_AddItemToArray(servers, control_server_json(dc, dc->servers[i]));
    }
    cJSON *clients = cJSON_AddArrayToObject(o, "clients");
    for (size_t i = 0; i < dc->n_clients; i++) {
        const struct client *c = dc->clients[i];
        cJSON *cj = cJSON_CreateObject();
        cJSON_AddStringToObject(cj, "name", c->name);
        cJSON_AddStringToObject(cj, "ip", c->ip);
        cJSON_AddNumberToObject(cj, "serf_status", c->serf_status);
        cJSON_AddItemToArray(clients, cj);
    }
    if (dc->leader) {
        cJSON_AddStringToObject(o, "leader", dc->leader->name);
    } else {
        cJSON_AddNullToObject(o, "leader");
    }
    cJSON_AddNumberToObject(o, "index", (double)dc->index);
    cJSON_AddNumberToObject(o, "term", (double)dc->term);
    cJSON_AddNumberToObject(o, "speed", dc->speed);
    cJSON_AddNumberToObject(o, "latency_ms", atomic_load(&dc->latency_ms));
    cJSON_AddNumberToObject(o, "stabilization_ms", (double)dc->opt.stabilization_ms);
    char seed[24];
    snprintf(seed, sizeof(seed), "%llu", (unsigned long long)dc->opt.seed);
    cJSON_AddStringToObject(o, "seed", seed);
    cJSON_AddStringToObject(o, "cluster_id", dc->cluster_id);
    cJSON_AddBoolToObject(o, "election_pending", dc->election_at_sim >= 0);
    cJSON *et = cJSON_AddArrayToObject(o, "election_timeouts_ms");
    for (size_t i = 0; i < dc->n_election_timeouts; i++) {
        cJSON_AddItemToArray(et, cJSON_CreateNumber((double)dc->election_timeouts[i]));
    }
    cJSON_AddNumberToObject(o, "leaderless_ms", (double)dc->leaderless_sim_ms);
    cJSON_AddNumberToObject(o, "sim_ms", (double)dc->sim_now);
    cJSON_AddNumberToObject(o, "kv_entries", (double)dc->n_kv);
    cJSON *counters = cJSON_AddObjectToObject(o, "counters");
    cJSON_AddNumberToObject(counters, "requests_total", (double)dc->requests_total);
    cJSON_AddNumberToObject(counters, "requests_without_token", (double)dc->requests_without_token);
    pthread_mutex_unlock(&dc->mu);
    return ok_json(r, 200, o);
}

/* POST /sim/servers {"name","ip","retry_join":[...],"restart","node_id","data_cluster",
 * "old_peers"}: a new agent that retry-joins. */
static int
add_server(struct creq *r)
{
    struct dc *dc = r->dc;
    const char *name = json_get_str(r->body, "name", NULL);
    const char *ip = json_get_str(r->body, "ip", NULL);
    struct server_cfg cfg;
    char err[256] = "";
    if (!valid_name(name)) {
        return err_json(r, 400, "name: required, 1-63 characters of [A-Za-z0-9._-]");
    }
    if (!valid_ip(ip, true)) {
        return err_json(r, 400, "ip: required, an IPv4 address in 127.0.0.0/8");
    }
    const char *bad = read_server_cfg(r->body, &cfg);
    if (bad) {
        server_cfg_free(&cfg);
        return err_json(r, 400, "%s", bad);
    }
    pthread_mutex_lock(&dc->mu);
    const struct server *other = dc_find_server_ip(dc, ip);
    char other_name[SIM_NAME_MAX] = "";
    if (other) {
        snprintf(other_name, sizeof(other_name), "%s", other->name);
    }
    pthread_mutex_unlock(&dc->mu);
    if (other_name[0]) {
        server_cfg_free(&cfg);
        return err_json(r, 400, "ip: %s is already used by server %s", ip, other_name);
    }
    struct server *s = server_new(dc, name, ip, &cfg.retry_join);
    apply_server_cfg(s, &cfg);
    s->next_name[0] = '\0';
    if (cfg.node_id[0]) {
        snprintf(s->node_id, sizeof(s->node_id), "%s", cfg.node_id);
    }
    server_cfg_free(&cfg);
    s->running = true;
    s->host_up = true;
    if (listener_sync(s, err, sizeof(err)) != 0) {
        listener_stop_all(s);
        server_free(s);
        return err_json(r, 500, "%s", err);
    }
    pthread_mutex_lock(&dc->mu);
    dc_server_add(dc, s, false);
    cJSON *j = control_server_json(dc, s);
    pthread_mutex_unlock(&dc->mu);
    return ok_json(r, 201, j);
}

/* POST /sim/servers/{name}/{action} and GET /sim/servers/{name}[/log]. */
static int
server_action(struct creq *r)
{
    struct dc *dc = r->dc;
    const char *action = r->nseg > 2 ? r->seg[2] : "";
    pthread_mutex_lock(&dc->mu);
    struct server *s = dc_find_server(dc, r->seg[1]);
    if (!s) {
        pthread_mutex_unlock(&dc->mu);
        return err_json(r, 404, "server %s not found", r->seg[1]);
    }
    if (strcmp(r->method, "GET") == 0 && strcmp(action, "log") == 0) {
        uint64_t tail = SIM_LOG_MAX;
        uint64_t since = 0;
        const char *t = query_get(&r->q, "tail");
        const char *sn = query_get(&r->q, "since");
        if ((t && parse_u64(t, &tail) != 0) || (sn && parse_u64(sn, &since) != 0)) {
            pthread_mutex_unlock(&dc->mu);
            return err_json(r, 400, "%s: must be a non-negative integer", t ? "tail" : "since");
        }
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "last", (double)s->log_total);
        cJSON *lines = cJSON_AddArrayToObject(o, "lines");
        /* line k (1-based, counted since the server was created) is at ring position
         * k - (log_total - log_n) - 1 */
        uint64_t first = s->log_total - s->log_n + 1;
        size_t start = s->log_n > tail ? s->log_n - (size_t)tail : 0;
        if (since >= first && since - first + 1 > start) {
            start = since - first + 1 > s->log_n ? s->log_n : (size_t)(since - first + 1);
        }
        for (size_t i = start; i < s->log_n; i++) {
            cJSON_AddItemToArray(lines,
                                 cJSON_CreateString(s->log[(s->log_head + i) % SIM_LOG_MAX]));
        }
        pthread_mutex_unlock(&dc->mu);
        return ok_json(r, 200, o);
    }
    if (strcmp(r->method, "GET") == 0 && r->nseg == 2) {
        cJSON *j = control_server_json(dc, s);
        pthread_mutex_unlock(&dc->mu);
        return ok_json(r, 200, j);
    }
    if (strcmp(r->method, "POST") != 0) {
        pthread_mutex_unlock(&dc->mu);
        return err_json(r, 405, "method %s not allowed", r->method);
    }
    int rc = 0;
    const char *bad = NULL;
    if (strcmp(action, "stop") == 0) {
        dc_server_stop(dc, s, "terminated");
    } else if (strcmp(action, "start") == 0) {
        dc_server_start(dc, s);
    } else if (strcmp(action, "leave") == 0) {
        if (!server_up(s)) {
            rc = 409;
        } else {
            dc_server_leave(dc, s);
        }
    } else if (strcmp(action, "host-down") == 0) {
        dc_host_down(dc, s);
    } else if (strcmp(action, "host-up") == 0) {
        dc_host_up(dc, s);
    } else if (strcmp(action, "config") == 0) {
        struct server_cfg cfg;
        bad = read_server_cfg(r->body, &cfg);
        if (!bad && (cfg.given == 0 || cfg.node_id[0])) {
            bad = cfg.node_id[0] ? "node_id: set only when the server is created"
                                 : "retry_join, name, restart or data_cluster: give at least one";
        }
        if (!bad && cfg.has_name && strcmp(cfg.name, s->name) != 0 && s->joined) {
            rc = 409;
            bad = "name: renaming a server that is a cluster member is not simulated";
        }
        if (!bad) {
            apply_server_cfg(s, &cfg);
        } else if (rc == 0) {
            rc = 400;
        }
        server_cfg_free(&cfg);
    } else {
        rc = 404;
    }
    pthread_mutex_unlock(&dc->mu);
    if (bad) {
        return err_json(r, rc, "%s", bad);
    }
    if (rc == 404) {
        return err_json(r, 404, "unknown action %s", action);
    }
    if (rc == 409) {
        return err_json(r, 409, "server %s is not running", s->name);
    }
    char err[256] = "";
    if (listener_sync(s, err, sizeof(err)) != 0) {
        return err_json(r, 500, "%s", err);
    }
    pthread_mutex_lock(&dc->mu);
    cJSON *j = control_server_json(dc, s);
    pthread_mutex_unlock(&dc->mu);
    return ok_json(r, 200, j);
}

static int
clients(struct creq *r)
{
    struct dc *dc = r->dc;
    if (r->nseg == 1 && strcmp(r->method, "POST") == 0) {
        const char *name = json_get_str(r->body, "name", NULL);
        const char *ip = json_get_str(r->body, "ip", NULL);
        if (!valid_name(name)) {
            return err_json(r, 400, "name: required, 1-63 characters of [A-Za-z0-9._-]");
        }
        if (!valid_ip(ip, false)) {
            return err_json(r, 400, "ip: required, an IPv4 address");
        }
        pthread_mutex_lock(&dc->mu);
        dc_client_add(dc, name, ip);
        pthread_mutex_unlock(&dc->mu);
        cJSON *j = cJSON_CreateObject();
        cJSON_AddBoolToObject(j, "ok", true);
        return ok_json(r, 201, j);
    }
    if (r->nseg < 2) {
        return err_json(r, 405, "method %s not allowed", r->method);
    }
    pthread_mutex_lock(&dc->mu);
    struct client *c = dc_find_client(dc, r->seg[1]);
    int rc = 200;
    if (!c) {
        rc = 404;
    } else if (r->nseg == 2 && strcmp(r->method, "DELETE") == 0) {
        dc_client_set_status(dc, c, SERF_LEFT);
    } else if (r->nseg == 3 && strcmp(r->method, "POST") == 0 && strcmp(r->seg[2], "fail") == 0) {
        dc_client_set_status(dc, c, SERF_FAILED);
    } else if (r->nseg == 3 && strcmp(r->method, "POST") == 0 &&
               strcmp(r->seg[2], "recover") == 0) {
        dc_client_set_status(dc, c, SERF_ALIVE);
    } else {
        rc = 405;
    }
    pthread_mutex_unlock(&dc->mu);
    if (rc == 404) {
        return err_json(r, 404, "client %s not found", r->seg[1]);
    }
    if (rc == 405) {
        return err_json(r, 405, "method %s not allowed here", r->method);
    }
    cJSON *j = cJSON_CreateObject();
    cJSON_AddBoolToObject(j, "ok", true);
    return ok_json(r, 200, j);
}

/* True when node names a server or a client that exists. */
static bool
node_known(const struct dc *dc, const char *node)
{
    return dc_find_server(dc, node) != NULL || dc_find_client(dc, node) != NULL;
}

static int
services(struct creq *r)
{
    struct dc *dc = r->dc;
    if (r->nseg == 3 && strcmp(r->method, "DELETE") == 0) {
        pthread_mutex_lock(&dc->mu);
        int rc = dc_service_delete(dc, r->seg[1], r->seg[2]);
        pthread_mutex_unlock(&dc->mu);
        if (rc != 0) {
            return err_json(r, 404, "service %s on %s not found", r->seg[2], r->seg[1]);
        }
        return ok_json(r, 200, cJSON_CreateObject());
    }
    if (r->nseg != 1 || strcmp(r->method, "POST") != 0) {
        return err_json(r, 405, "method %s not allowed", r->method);
    }
    const char *node = json_get_str(r->body, "node", NULL);
    const char *id = json_get_str(r->body, "id", NULL);
    const char *name = json_get_str(r->body, "name", id);
    const cJSON *port = cJSON_GetObjectItemCaseSensitive(r->body, "port");
    const cJSON *tags = cJSON_GetObjectItemCaseSensitive(r->body, "tags");
    if (!valid_id(id)) {
        return err_json(r, 400, "id: required, 1-127 characters without '/'");
    }
    if (!valid_id(name)) {
        return err_json(r, 400, "name: must be 1-127 characters without '/'");
    }
    if (port && (!cJSON_IsNumber(port) || port->valuedouble < 0 || port->valuedouble > 65535)) {
        return err_json(r, 400, "port: must be a number 0-65535");
    }
    struct strlist tl = {0};
    if (tags) {
        const cJSON *t;
        bool bad = !cJSON_IsArray(tags);
        cJSON_ArrayForEach(t, tags)
        {
            if (!cJSON_IsString(t)) {
                bad = true;
            } else {
                strlist_add(&tl, t->valuestring);
            }
        }
        if (bad) {
            strlist_free(&tl);
            return err_json(r, 400, "tags: must be an array of strings");
        }
    }
    pthread_mutex_lock(&dc->mu);
    bool known = node && node_known(dc, node);
    if (known) {
        dc_service_put(dc, node, id, name, port ? port->valueint : 0, &tl);
    }
    pthread_mutex_unlock(&dc->mu);
    strlist_free(&tl);
    if (!known) {
        return err_json(r, 400, "node: required, the name of an existing server or client");
    }
    cJSON *j = cJSON_CreateObject();
    cJSON_AddBoolToObject(j, "ok", true);
    return ok_json(r, 200, j);
}

static int
checks(struct creq *r)
{
    struct dc *dc = r->dc;
    if (r->nseg == 3 && strcmp(r->method, "DELETE") == 0) {
        pthread_mutex_lock(&dc->mu);
        int rc = dc_check_delete(dc, r->seg[1], r->seg[2]);
        pthread_mutex_unlock(&dc->mu);
        if (rc != 0) {
            return err_json(r, 404, "check %s on %s not found", r->seg[2], r->seg[1]);
        }
        return ok_json(r, 200, cJSON_CreateObject());
    }
    if (r->nseg != 1 || strcmp(r->method, "POST") != 0) {
        return err_json(r, 405, "method %s not allowed", r->method);
    }
    const char *node = json_get_str(r->body, "node", NULL);
    const char *id = json_get_str(r->body, "check_id", NULL);
    const char *name = json_get_str(r->body, "name", NULL);
    const char *status = json_get_str(r->body, "status", NULL);
    const char *output = json_get_str(r->body, "output", NULL);
    const char *service_id = json_get_str(r->body, "service_id", NULL);
    if (!valid_id(id)) {
        return err_json(r, 400, "check_id: required, 1-127 characters without '/'");
    }
    if (status && strcmp(status, "passing") != 0 && strcmp(status, "warning") != 0 &&
        strcmp(status, "critical") != 0) {
        return err_json(r, 400, "status: must be passing, warning or critical");
    }
    if (name && strlen(name) >= SIM_ID_MAX) {
        return err_json(r, 400, "name: at most 127 characters");
    }
    pthread_mutex_lock(&dc->mu);
    const char *bad = NULL;
    if (!node || !node_known(dc, node)) {
        bad = "node: required, the name of an existing server or client";
    } else if (service_id && *service_id && !dc_service_find(dc, node, service_id)) {
        bad = "service_id: no such service on that node";
    } else if (!status && !dc_check_find(dc, node, id)) {
        bad = "status: required when creating a check";
    } else {
        dc_check_put(dc, node, id, name, status, output, service_id);
    }
    pthread_mutex_unlock(&dc->mu);
    if (bad) {
        return err_json(r, 400, "%s", bad);
    }
    cJSON *j = cJSON_CreateObject();
    cJSON_AddBoolToObject(j, "ok", true);
    return ok_json(r, 200, j);
}

static int
set_latency(struct creq *r)
{
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(r->body, "ms");
    if (!cJSON_IsNumber(ms) || ms->valuedouble < 0 || ms->valuedouble > 60000) {
        return err_json(r, 400, "ms: required, a number 0-60000");
    }
    atomic_store(&r->dc->latency_ms, ms->valueint);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "latency_ms", ms->valueint);
    return ok_json(r, 200, j);
}

static int
set_speed(struct creq *r)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(r->body, "factor");
    if (!cJSON_IsNumber(f) || f->valuedouble <= 0 || f->valuedouble > 10000) {
        return err_json(r, 400, "factor: required, a number > 0 and <= 10000");
    }
    pthread_mutex_lock(&r->dc->mu);
    dc_clock(r->dc); /* account the time elapsed at the old speed */
    r->dc->speed = f->valuedouble;
    pthread_mutex_unlock(&r->dc->mu);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "speed", f->valuedouble);
    return ok_json(r, 200, j);
}

static int
requests(struct creq *r)
{
    struct dc *dc = r->dc;
    bool reset = r->nseg == 2 && strcmp(r->seg[1], "reset") == 0;
    if (reset != (strcmp(r->method, "POST") == 0) || (!reset && r->nseg != 1)) {
        return err_json(r, 405, "use GET /sim/requests or POST /sim/requests/reset");
    }
    cJSON *o = cJSON_CreateObject();
    pthread_mutex_lock(&dc->mu);
    if (reset) {
        dc_requests_reset(dc);
    }
    cJSON_AddNumberToObject(o, "total", (double)dc->requests_total);
    cJSON_AddNumberToObject(o, "without_token", (double)dc->requests_without_token);
    cJSON *bp = cJSON_AddObjectToObject(o, "by_path");
    for (size_t i = 0; i < dc->by_path.n; i++) {
        cJSON_AddNumberToObject(bp, dc->by_path.v[i].path, (double)dc->by_path.v[i].n);
    }
    cJSON *bm = cJSON_AddObjectToObject(o, "by_method");
    for (size_t i = 0; i < dc->by_method.n; i++) {
        cJSON_AddNumberToObject(bm, dc->by_method.v[i].path, (double)dc->by_method.v[i].n);
    }
    cJSON *bs = cJSON_AddObjectToObject(o, "by_server");
    for (size_t i = 0; i < dc->n_servers; i++) {
        cJSON_AddNumberToObject(bs, dc->servers[i]->name, (double)dc->servers[i]->requests);
    }
    pthread_mutex_unlock(&dc->mu);
    return ok_json(r, 200, o);
}

static int
route(struct creq *r)
{
    const char *top = r->nseg > 0 ? r->seg[0] : "";
    bool get = strcmp(r->method, "GET") == 0;
    bool put = strcmp(r->method, "PUT") == 0;
    if (strcmp(top, "state") == 0 && r->nseg == 1 && get) {
        return get_state(r);
    }
    if (strcmp(top, "servers") == 0 && r->nseg == 1 && strcmp(r->method, "POST") == 0) {
        return add_server(r);
    }
    if (strcmp(top, "servers") == 0 && r->nseg >= 2 && r->nseg <= 3) {
        return server_action(r);
    }
    if (strcmp(top, "clients") == 0 && r->nseg <= 3) {
        return clients(r);
    }
    if (strcmp(top, "services") == 0 && r->nseg <= 3) {
        return services(r);
    }
    if (strcmp(top, "checks") == 0 && r->nseg <= 3) {
        return checks(r);
    }
    if (strcmp(top, "latency") == 0 && r->nseg == 1 && put) {
        return set_latency(r);
    }
    if (strcmp(top, "speed") == 0 && r->nseg == 1 && put) {
        return set_speed(r);
    }
    if (strcmp(top, "requests") == 0 && r->nseg <= 2) {
        return requests(r);
    }
    return err_json(r, 404, "no such control endpoint: %s %s", r->method, top);
}

int
control_handler(struct mg_connection *conn, void *cbdata)
{
    struct creq r;
    memset(&r, 0, sizeof(r));
    r.conn = conn;
    r.dc = cbdata;
    const struct mg_request_info *ri = mg_get_request_info(conn);
    r.method = ri->request_method;
    const char *path = ri->local_uri ? ri->local_uri : "/";
    char *copy = NULL;
    char *body = NULL;
    size_t len = 0;
    int rc;
    query_parse(ri->query_string, &r.q);
    if (!str_starts_with(path, "/sim/")) {
        rc = err_json(&r, 404, "not found; the control API lives under /sim/");
        goto out;
    }
    copy = xstrdup(path + 5);
    for (char *save = NULL, *t = strtok_r(copy, "/", &save); t && r.nseg < 6;
         t = strtok_r(NULL, "/", &save)) {
        r.seg[r.nseg++] = t;
    }
    int br = web_read_body(conn, 1 << 20, &body, &len);
    if (br != 0) {
        rc = err_json(&r, br == 1 ? 413 : 400, "body: too large or unreadable");
        goto out;
    }
    if (len > 0) {
        r.body = json_parse_str(body);
        if (!r.body || !cJSON_IsObject(r.body)) {
            rc = err_json(&r, 400, "body: must be a JSON object");
            goto out;
        }
    }
    rc = route(&r);
out:
    cJSON_Delete(r.body);
    free(body);
    free(copy);
    query_free(&r.q);
    return rc;
}
