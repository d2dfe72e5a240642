/* agent_read: catalog, health, KV, coordinate and snapshot endpoints of a server agent.
 * Reads go through agent_begin_read() for leadership, blocking and meta headers. An agent
 * that has not joined the cluster sees an empty catalog when asked with ?stale. */
#include "agent.h"

#include <civetweb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The catalog nodes this agent can see; *out is the caller's (free it). */
static size_t
view_nodes(const struct areq *r, struct node_ref **out)
{
    if (!server_in_cluster(r->s)) {
        *out = xcalloc(1, sizeof(**out));
        return 0;
    }
    return dc_nodes(r->dc, out);
}

/* Calls fn for every service instance in view: the "consul" service of each server node and
 * every registered service. svc->node is only meaningful for registered services. */
typedef void (*svc_fn)(struct areq *r, const struct node_ref *n, const struct service *svc,
                       bool is_consul, void *arg);

static void
each_service(struct areq *r, const char *name, svc_fn fn, void *arg)
{
    struct node_ref *nodes;
    size_t n = view_nodes(r, &nodes);
    struct service consul = {.id = "consul", .name = "consul", .port = 8300};
    for (size_t i = 0; i < n; i++) {
        if (nodes[i].is_server && (!name || strcmp(name, "consul") == 0)) {
            snprintf(consul.node, sizeof(consul.node), "%s", nodes[i].name);
            fn(r, &nodes[i], &consul, true, arg);
        }
        for (size_t k = 0; k < r->dc->n_services; k++) {
            const struct service *svc = r->dc->services[k];
            if (strcmp(svc->node, nodes[i].name) == 0 && (!name || strcmp(svc->name, name) == 0)) {
                fn(r, &nodes[i], svc, false, arg);
            }
        }
    }
    free(nodes);
}

static cJSON *
service_json(const struct areq *r, const struct node_ref *n, const struct service *svc,
             bool is_consul)
{
    return is_consul ? render_consul_service(r->dc, n->ip) : render_agent_service(r->dc, svc);
}

static bool
has_tag(const struct service *svc, bool is_consul, const char *tag)
{
    return !tag || (!is_consul && strlist_has(&svc->tags, tag));
}

int
h_catalog_datacenters(struct areq *r)
{
    cJSON *a = cJSON_CreateArray();
    cJSON_AddItemToArray(a, cJSON_CreateString(r->dc->opt.name));
    return agent_json(r, 200, a);
}

int
h_catalog_nodes(struct areq *r)
{
    int rc = agent_begin_read(r, RES_CATALOG, true);
    if (rc) {
        return rc;
    }
    struct node_ref *nodes;
    size_t n = view_nodes(r, &nodes);
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) {
        cJSON_AddItemToArray(a, render_node(r->dc, &nodes[i]));
    }
    free(nodes);
    pthread_mutex_unlock(&r->dc->mu);
    return agent_json(r, 200, a);
}

static void
collect_tags(struct areq *r, const struct node_ref *n, const struct service *svc, bool is_consul,
             void *arg)
{
    (void)r;
    (void)n;
    cJSON *map = arg;
    cJSON *tags = cJSON_GetObjectItemCaseSensitive(map, svc->name);
    if (!tags) {
        tags = cJSON_AddArrayToObject(map, svc->name);
    }
    for (size_t i = 0; !is_consul && i < svc->tags.n; i++) {
        bool seen = false;
        const cJSON *t;
        cJSON_ArrayForEach(t, tags)
        {
            seen = seen || strcmp(t->valuestring, svc->tags.v[i]) == 0;
        }
        if (!seen) {
            cJSON_AddItemToArray(tags, cJSON_CreateString(svc->tags.v[i]));
        }
    }
}

static int
cmp_item_names(const void *a, const void *b)
{
    const cJSON *x = *(cJSON *const *)a;
    const cJSON *y = *(cJSON *const *)b;
    return strcmp(x->string, y->string);
}

/* Re-orders an object's members by key, as Go's JSON encoder does for maps. */
static void
sort_object(cJSON *obj)
{
    int n = cJSON_GetArraySize(obj);
    if (n < 2) {
        return;
    }
    cJSON **items = xcalloc((size_t)n, sizeof(*items));
    for (int i = 0; i < n; i++) {
        items[i] = cJSON_DetachItemViaPointer(obj, obj->child);
    }
    qsort(items, (size_t)n, sizeof(*items), cmp_item_names);
    for (int i = 0; i < n; i++) {
        cJSON_AddItemToArray(obj, items[i]);
    }
    free(items);
}

int
h_catalog_services(struct areq *r)
{
    int rc = agent_begin_read(r, RES_CATALOG, true);
    if (rc) {
        return rc;
    }
    cJSON *map = cJSON_CreateObject();
    each_service(r, NULL, collect_tags, map);
    pthread_mutex_unlock(&r->dc->mu);
    sort_object(map);
    return agent_json(r, 200, map);
}

/* Moves member `from` of src into dst as `to`. */
static void
move_item(cJSON *src, const char *from, cJSON *dst, const char *to)
{
    cJSON *it = cJSON_DetachItemFromObjectCaseSensitive(src, from);
    if (it) {
        cJSON_AddItemToObject(dst, to, it);
    }
}

static void
catalog_entry(struct areq *r, const struct node_ref *n, const struct service *svc, bool is_consul,
              void *arg)
{
    const char *tag = query_get(&r->q, "tag");
    if (!has_tag(svc, is_consul, tag)) {
        return;
    }
    cJSON *e = render_node(r->dc, n);
    cJSON *meta = cJSON_DetachItemFromObjectCaseSensitive(e, "Meta");
    cJSON_AddItemToObject(e, "NodeMeta", meta);
    cJSON *sj = service_json(r, n, svc, is_consul);
    cJSON_DeleteItemFromObjectCaseSensitive(e, "CreateIndex");
    cJSON_DeleteItemFromObjectCaseSensitive(e, "ModifyIndex");
    move_item(sj, "CreateIndex", e, "CreateIndex");
    move_item(sj, "ModifyIndex", e, "ModifyIndex");
    cJSON_AddStringToObject(e, "ServiceAddress", "");
    move_item(sj, "EnableTagOverride", e, "ServiceEnableTagOverride");
    move_item(sj, "ID", e, "ServiceID");
    move_item(sj, "Service", e, "ServiceName");
    move_item(sj, "Port", e, "ServicePort");
    move_item(sj, "Meta", e, "ServiceMeta");
    move_item(sj, "TaggedAddresses", e, "ServiceTaggedAddresses");
    move_item(sj, "Tags", e, "ServiceTags");
    move_item(sj, "Weights", e, "ServiceWeights");
    cJSON *proxy = cJSON_AddObjectToObject(e, "ServiceProxy");
    cJSON_AddStringToObject(proxy, "DestinationServiceName", "");
    cJSON_AddStringToObject(proxy, "DestinationServiceID", "");
    cJSON_AddStringToObject(proxy, "LocalServiceAddress", "");
    cJSON_AddNumberToObject(proxy, "LocalServicePort", 0);
    cJSON_AddNullToObject(proxy, "Config");
    cJSON_AddNullToObject(proxy, "Upstreams");
    cJSON *connect = cJSON_AddObjectToObject(e, "ServiceConnect");
    cJSON_AddBoolToObject(connect, "Native", false);
    cJSON_AddNullToObject(connect, "Proxy");
    cJSON_AddStringToObject(e, "Namespace", "default");
    cJSON_Delete(sj);
    cJSON_AddItemToArray((cJSON *)arg, e);
}

/* Consul's 400 for a name missing from the path ("/v1/catalog/service/"); 0 when present. */
static int
missing_name(struct areq *r, const char *what)
{
    if (*r->tail) {
        return 0;
    }
    char msg[64];
    snprintf(msg, sizeof(msg), "Missing %s", what);
    return agent_text(r, 400, msg);
}

int
h_catalog_service(struct areq *r)
{
    int rc = missing_name(r, "service name");
    if (rc) {
        return rc;
    }
    rc = agent_begin_read(r, RES_CATALOG, true);
    if (rc) {
        return rc;
    }
    cJSON *a = cJSON_CreateArray();
    each_service(r, r->tail, catalog_entry, a);
    pthread_mutex_unlock(&r->dc->mu);
    return agent_json(r, 200, a);
}

/* Node plus its services, as an object keyed by ID (as_map) or an array. */
static cJSON *
node_services(struct areq *r, const char *name, bool as_map)
{
    struct node_ref n;
    if (!server_in_cluster(r->s) || !dc_node_lookup(r->dc, name, &n)) {
        return NULL;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "Node", render_node(r->dc, &n));
    cJSON *svcs =
        as_map ? cJSON_AddObjectToObject(o, "Services") : cJSON_AddArrayToObject(o, "Services");
    if (n.is_server) {
        cJSON *c = render_consul_service(r->dc, n.ip);
        if (as_map) {
            cJSON_AddItemToObject(svcs, "consul", c);
        } else {
            cJSON_AddItemToArray(svcs, c);
        }
    }
    for (size_t i = 0; i < r->dc->n_services; i++) {
        const struct service *svc = r->dc->services[i];
        if (strcmp(svc->node, n.name) != 0) {
            continue;
        }
        cJSON *sj = render_agent_service(r->dc, svc);
        if (as_map) {
            cJSON_AddItemToObject(svcs, svc->id, sj);
        } else {
            cJSON_AddItemToArray(svcs, sj);
        }
    }
    return o;
}

int
h_catalog_node(struct areq *r)
{
    int rc = missing_name(r, "node name");
    if (rc) {
        return rc;
    }
    rc = agent_begin_read(r, RES_CATALOG, true);
    if (rc) {
        return rc;
    }
    cJSON *o = node_services(r, r->tail, true);
    pthread_mutex_unlock(&r->dc->mu);
    return agent_json(r, 200, o ? o : cJSON_CreateNull());
}

int
h_catalog_node_services(struct areq *r)
{
    int rc = missing_name(r, "node name");
    if (rc) {
        return rc;
    }
    rc = agent_begin_read(r, RES_CATALOG, true);
    if (rc) {
        return rc;
    }
    cJSON *o = node_services(r, r->tail, false);
    pthread_mutex_unlock(&r->dc->mu);
    if (!o) {
        o = cJSON_CreateObject();
        cJSON_AddNullToObject(o, "Node");
        cJSON_AddArrayToObject(o, "Services");
    }
    return agent_json(r, 200, o);
}

/* Appends the checks of every node in view that satisfy keep(check JSON, arg). */
static cJSON *
all_checks(struct areq *r, bool (*keep)(const cJSON *chk, const void *arg), const void *arg)
{
    cJSON *out = cJSON_CreateArray();
    struct node_ref *nodes;
    size_t n = view_nodes(r, &nodes);
    for (size_t i = 0; i < n; i++) {
        cJSON *checks = render_node_checks(r->dc, &nodes[i]);
        cJSON *c;
        while ((c = checks->child) != NULL) {
            cJSON_DetachItemViaPointer(checks, c);
            if (keep(c, arg)) {
                cJSON_AddItemToArray(out, c);
            } else {
                cJSON_Delete(c);
            }
        }
        cJSON_Delete(checks);
    }
    free(nodes);
    return out;
}

static bool
keep_state(const cJSON *chk, const void *arg)
{
    const char *state = arg;
    return strcmp(state, "any") == 0 || strcmp(json_get_str(chk, "Status", ""), state) == 0;
}

static bool
keep_service(const cJSON *chk, const void *arg)
{
    const char *name = json_get_str(chk, "ServiceName", "");
    return *name && strcmp(name, (const char *)arg) == 0;
}

int
h_health_state(struct areq *r)
{
    static const char *const states[] = {"any", "passing", "warning", "critical"};
    int rc = missing_name(r, "check state");
    if (rc) {
        return rc;
    }
    bool ok = false;
    for (size_t i = 0; i < ARRAY_LEN(states); i++) {
        ok = ok || strcmp(r->tail, states[i]) == 0;
    }
    if (!ok) {
        return agent_text(r, 400, "Invalid check state");
    }
    rc = agent_begin_read(r, RES_CATALOG, true);
    if (rc) {
        return rc;
    }
    cJSON *a = all_checks(r, keep_state, r->tail);
    pthread_mutex_unlock(&r->dc->mu);
    return agent_json(r, 200, a);
}

int
h_health_node(struct areq *r)
{
    int rc = missing_name(r, "node name");
    if (rc) {
        return rc;
    }
    rc = agent_begin_read(r, RES_CATALOG, true);
    if (rc) {
        return rc;
    }
    struct node_ref n;
    cJSON *a = (server_in_cluster(r->s) && dc_node_lookup(r->dc, r->tail, &n))
                   ? render_node_checks(r->dc, &n)
                   : cJSON_CreateArray();
    pthread_mutex_unlock(&r->dc->mu);
    return agent_json(r, 200, a);
}

int
h_health_checks(struct areq *r)
{
    int rc = missing_name(r, "service name");
    if (rc) {
        return rc;
    }
    rc = agent_begin_read(r, RES_CATALOG, true);
    if (rc) {
        return rc;
    }
    cJSON *a = all_checks(r, keep_service, r->tail);
    pthread_mutex_unlock(&r->dc->mu);
    return agent_json(r, 200, a);
}

static void
health_entry(struct areq *r, const struct node_ref *n, const struct service *svc, bool is_consul,
             void *arg)
{
    if (!has_tag(svc, is_consul, query_get(&r->q, "tag"))) {
        return;
    }
    bool passing_only = query_has(&r->q, "passing");
    cJSON *checks = cJSON_CreateArray();
    bool all_passing = true;
    cJSON *node_checks = render_node_checks(r->dc, n);
    cJSON *c;
    while ((c = node_checks->child) != NULL) {
        cJSON_DetachItemViaPointer(node_checks, c);
        const char *sid = json_get_str(c, "ServiceID", "");
        if (*sid && (is_consul || strcmp(sid, svc->id) != 0)) {
            cJSON_Delete(c);
            continue;
        }
        all_passing = all_passing && strcmp(json_get_str(c, "Status", ""), "passing") == 0;
        cJSON_AddItemToArray(checks, c);
    }
    cJSON_Delete(node_checks);
    if (passing_only && !all_passing) {
        cJSON_Delete(checks);
        return;
    }
    cJSON *e = cJSON_CreateObject();
    cJSON_AddItemToObject(e, "Node", render_node(r->dc, n));
    cJSON_AddItemToObject(e, "Service", service_json(r, n, svc, is_consul));
    cJSON_AddItemToObject(e, "Checks", checks);
    cJSON_AddItemToArray((cJSON *)arg, e);
}

int
h_health_service(struct areq *r)
{
    int rc = missing_name(r, "service name");
    if (rc) {
        return rc;
    }
    rc = agent_begin_read(r, RES_CATALOG, true);
    if (rc) {
        return rc;
    }
    cJSON *a = cJSON_CreateArray();
    each_service(r, r->tail, health_entry, a);
    pthread_mutex_unlock(&r->dc->mu);
    return agent_json(r, 200, a);
}

/* GET /v1/kv/<key> with ?keys[&separator=], ?recurse or ?raw. */
static int
kv_get(struct areq *r)
{
    bool keys = query_has(&r->q, "keys");
    bool recurse = query_has(&r->q, "recurse");
    const char *key = r->tail;
    if (!*key && !keys && !recurse) {
        return agent_text(r, 400, "Missing key name");
    }
    int rc = agent_begin_read(r, RES_KV, true);
    if (rc) {
        return rc;
    }
    struct dc *dc = r->dc;
    if (!server_in_cluster(r->s)) {
        pthread_mutex_unlock(&dc->mu);
        return agent_raw(r, 404, NULL, "", 0);
    }
    if (keys || recurse) {
        const char *sep = keys ? query_get(&r->q, "separator") : NULL;
        size_t plen = strlen(key);
        cJSON *a = cJSON_CreateArray();
        const char *last = NULL;
        size_t last_len = 0;
        for (size_t i = kv_lower_bound(dc, key); i < dc->n_kv; i++) {
            const struct kv_entry *e = dc->kv[i];
            if (strncmp(e->key, key, plen) != 0) {
                break;
            }
            if (recurse && !keys) {
                cJSON_AddItemToArray(a, kv_entry_json(e));
                continue;
            }
            size_t len = strlen(e->key);
            if (sep && *sep) {
                const char *hit = strstr(e->key + plen, sep);
                if (hit) {
                    len = (size_t)(hit - e->key) + strlen(sep);
                }
            }
            if (last && last_len == len && strncmp(last, e->key, len) == 0) {
                continue;
            }
            last = e->key;
            last_len = len;
            char *k = xstrndup(e->key, len);
            cJSON_AddItemToArray(a, cJSON_CreateString(k));
            free(k);
        }
        pthread_mutex_unlock(&dc->mu);
        /* Nothing found is a 404, except ?keys on the root: Consul lists [] there. */
        if (cJSON_GetArraySize(a) == 0 && (!keys || *key)) {
            cJSON_Delete(a);
            return agent_raw(r, 404, NULL, "", 0);
        }
        return agent_json(r, 200, a);
    }
    const struct kv_entry *e = kv_find(dc, key);
    if (!e) {
        pthread_mutex_unlock(&dc->mu);
        return agent_raw(r, 404, NULL, "", 0);
    }
    if (query_has(&r->q, "raw")) {
        size_t len = e->len;
        char *copy = xmalloc(len + 1);
        memcpy(copy, e->val, len + 1);
        pthread_mutex_unlock(&dc->mu);
        buf_puts(&r->hdr, "X-Content-Type-Options: nosniff\r\n");
        rc = agent_raw(r, 200, "text/plain", copy, len);
        free(copy);
        return rc;
    }
    cJSON *a = cJSON_CreateArray();
    cJSON_AddItemToArray(a, kv_entry_json(e));
    pthread_mutex_unlock(&dc->mu);
    return agent_json(r, 200, a);
}

/* ?name=N as Go's strconv.ParseUint reads it: a bad value is Consul's 500 with the Go error
 * text. Returns 0 (with *has and *v set) or the status sent. */
static int
parse_opt_u64(struct areq *r, const char *name, bool *has, uint64_t *v)
{
    const char *s = query_get(&r->q, name);
    *has = s != NULL;
    *v = 0;
    if (!s || parse_u64(s, v) == 0) {
        return 0;
    }
    bool digits = *s != '\0';
    for (const char *p = s; *p; p++) {
        digits = digits && *p >= '0' && *p <= '9';
    }
    char msg[300];
    snprintf(msg, sizeof(msg), "strconv.ParseUint: parsing \"%.200s\": %s", s,
             digits ? "value out of range" : "invalid syntax");
    return agent_text(r, 500, msg);
}

/* Consul's conflictingFlags(): more than one of the named parameters is a 400 naming the
 * whole query as url.Values.Encode() writes it. Returns 0 or the status sent. */
static int
conflicting_flags(struct areq *r, const char *const *flags, size_t n)
{
    size_t found = 0;
    for (size_t i = 0; i < n; i++) {
        found += query_has(&r->q, flags[i]);
    }
    if (found < 2) {
        return 0;
    }
    char *enc = gohttp_query_encode(&r->q);
    char *msg = xasprintf("Conflicting flags: %s\n", enc);
    int rc = agent_text(r, 400, msg);
    free(msg);
    free(enc);
    return rc;
}

/* PUT and DELETE /v1/kv/<key>: writes need the leader; the reply is a bare true/false. The
 * checks come in the order Consul's KVSPut and KVSDelete make them. */
static int
kv_write(struct areq *r)
{
    static const char *const put_flags[] = {"cas", "acquire", "release"};
    static const char *const delete_flags[] = {"recurse", "cas"};
    bool put = strcmp(r->method, "PUT") == 0;
    bool recurse = query_has(&r->q, "recurse");
    bool has_cas = false;
    bool has_flags = false;
    uint64_t cas = 0;
    uint64_t flags = 0;
    char *body = NULL;
    size_t len = 0;
    int rc = 0;
    if (put) {
        if (!*r->tail) {
            return agent_text(r, 400, "Missing key name");
        }
        rc = conflicting_flags(r, put_flags, ARRAY_LEN(put_flags));
        if (!rc) {
            rc = parse_opt_u64(r, "flags", &has_flags, &flags);
        }
    } else {
        rc = conflicting_flags(r, delete_flags, ARRAY_LEN(delete_flags));
        if (!rc && !recurse && !*r->tail) {
            return agent_text(r, 400, "Missing key name");
        }
    }
    if (!rc) {
        rc = parse_opt_u64(r, "cas", &has_cas, &cas);
    }
    if (rc) {
        return rc;
    }
    if (put) {
        long long declared = r->ri->content_length;
        int br =
            declared > SIM_KV_VALUE_MAX ? 1 : web_read_body(r->conn, SIM_KV_VALUE_MAX, &body, &len);
        if (br == 1) {
            char msg[256];
            snprintf(msg, sizeof(msg),
                     "Request body(%lld bytes) too large, max size: %d bytes. See "
                     "https://developer.hashicorp.com/docs/agent/config/"
                     "config-files#kv_max_value_size.",
                     declared > 0 ? declared : (long long)SIM_KV_VALUE_MAX + 1, SIM_KV_VALUE_MAX);
            return agent_text(r, 413, msg);
        }
        if (br != 0) {
            return agent_text(r, 400, "Failed to read request body");
        }
    }
    const char *acquire = put ? query_get(&r->q, "acquire") : NULL;
    const char *release = put ? query_get(&r->q, "release") : NULL;
    pthread_mutex_lock(&r->dc->mu);
    if (!dc_hold_for_leader(r->dc, r->s)) {
        pthread_mutex_unlock(&r->dc->mu);
        free(body);
        return agent_text(r, 500, "No cluster leader");
    }
    bool ok;
    if (put && (acquire || release)) {
        ok =
            kv_lock(r->dc, r->tail, body, len, flags, acquire ? acquire : release, acquire != NULL);
    } else if (put) {
        ok = kv_put(r->dc, r->tail, body, len, flags, has_cas, cas);
    } else {
        ok = kv_delete(r->dc, r->tail, recurse, has_cas, cas);
    }
    pthread_mutex_unlock(&r->dc->mu);
    free(body);
    return agent_json(r, 200, cJSON_CreateBool(ok));
}

int
h_kv(struct areq *r)
{
    return strcmp(r->method, "GET") == 0 ? kv_get(r) : kv_write(r);
}

int
h_coordinate_datacenters(struct areq *r)
{
    cJSON *a = cJSON_CreateArray();
    cJSON *d = cJSON_CreateObject();
    cJSON_AddItemToArray(a, d);
    cJSON_AddStringToObject(d, "Datacenter", r->dc->opt.name);
    cJSON_AddStringToObject(d, "AreaID", "WAN");
    cJSON *coords = cJSON_AddArrayToObject(d, "Coordinates");
    pthread_mutex_lock(&r->dc->mu);
    for (size_t i = 0; i < r->dc->n_servers; i++) {
        const struct server *s = r->dc->servers[i];
        if (s->joined || s == r->s) {
            char name[SIM_NAME_MAX + 40];
            snprintf(name, sizeof(name), "%s.%s", s->name, r->dc->opt.name);
            cJSON *c = cJSON_CreateObject();
            cJSON_AddStringToObject(c, "Node", name);
            cJSON_AddItemToObject(c, "Coord", render_coord());
            cJSON_AddItemToArray(coords, c);
        }
    }
    pthread_mutex_unlock(&r->dc->mu);
    return agent_json(r, 200, a);
}

int
h_coordinate_nodes(struct areq *r)
{
    int rc = agent_begin_read(r, RES_CATALOG, true);
    if (rc) {
        return rc;
    }
    struct node_ref *nodes;
    size_t n = view_nodes(r, &nodes);
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) {
        cJSON *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "Node", nodes[i].name);
        cJSON_AddStringToObject(c, "Segment", "");
        cJSON_AddItemToObject(c, "Coord", render_coord());
        cJSON_AddItemToArray(a, c);
    }
    free(nodes);
    pthread_mutex_unlock(&r->dc->mu);
    return agent_json(r, 200, a);
}

/* GET /v1/snapshot: not a real raft snapshot, but bytes that identify the state saved. */
int
h_snapshot(struct areq *r)
{
    if (strcmp(r->method, "GET") != 0) {
        return agent_not_simulated(r);
    }
    int rc = agent_begin_read(r, RES_ALL, true);
    if (rc) {
        return rc;
    }
    struct buf b;
    buf_init(&b, (size_t)256 << 20);
    buf_printf(&b, "consul-sim snapshot\ndatacenter=%s\nindex=%llu\nkv_entries=%zu\n",
               r->dc->opt.name, (unsigned long long)r->dc->index, r->dc->n_kv);
    for (size_t i = 0; i < r->dc->n_kv; i++) {
        buf_printf(&b, "kv %s %zu\n", r->dc->kv[i]->key, r->dc->kv[i]->len);
    }
    pthread_mutex_unlock(&r->dc->mu);
    rc = agent_raw(r, 200, "application/octet-stream", b.data, b.len);
    buf_free(&b);
    return rc;
}
