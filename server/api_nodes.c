/* api_nodes: the inventory of server hosts (/api/nodes): list and read (viewer), create,
 * update, delete, host-key probe and trust, import from the raft configuration (admin).
 * Every change commits with its audit entry; a node an unfinished job involves cannot be
 * changed or deleted (409 node_busy); a new address or SSH port unpins the host key. After a
 * change the watcher learns the expected servers again (server_missing). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api.h"
#include "app.h"
#include "cluster.h"
#include "inventory.h"
#include "ssh.h"
#include "store.h"
#include "store_jobs.h"
#include "util.h"
#include "watch.h"

/* The model of the current snapshot (NULL when none) and the snapshot to release. */
static const struct cluster_model *
model_take(struct req *r, struct watch_snap **snap)
{
    *snap = r->app->watch ? watch_snapshot(r->app->watch) : NULL;
    return *snap ? (*snap)->model : NULL;
}

static void
model_put(struct req *r, struct watch_snap *snap)
{
    if (snap) {
        watch_snap_put(r->app->watch, snap);
    }
}

static int
reply_node(struct req *r, int status, const struct store_node *n)
{
    struct watch_snap *snap;
    const struct cluster_model *m = model_take(r, &snap);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddItemToObject(j, "node", inventory_node_json(n, m));
    model_put(r, snap);
    return http_reply_json(r, status, j);
}

struct list_ctx {
    cJSON *arr;
    const struct cluster_model *m;
};

static int
list_cb(const struct store_node *n, void *ctx)
{
    struct list_ctx *l = ctx;
    cJSON_AddItemToArray(l->arr, inventory_node_json(n, l->m));
    return 0;
}

int
api_nodes_list(struct req *r)
{
    struct watch_snap *snap;
    struct list_ctx l;
    cJSON *j = cJSON_CreateObject();
    l.arr = cJSON_AddArrayToObject(j, "nodes");
    l.m = model_take(r, &snap);
    int rc = store_node_each(r->db, list_cb, &l);
    model_put(r, snap);
    if (rc != STORE_OK) {
        cJSON_Delete(j);
        return http_reply_error(r, 500, "internal", "cannot list nodes: database error");
    }
    return http_reply_json(r, 200, j);
}

/* Reads node name into n. Returns 0, or the status sent (404, 500). */
static int
load_node(struct req *r, const char *name, struct store_node *n)
{
    int rc = store_node_get(r->db, name, n);
    if (rc == STORE_NOT_FOUND) {
        return http_reply_error(r, 404, "not_found", "no node named '%s'", name);
    }
    if (rc != STORE_OK) {
        return http_reply_error(r, 500, "internal", "cannot read the node: database error");
    }
    return 0;
}

int
api_nodes_get(struct req *r)
{
    struct store_node n;
    if (load_node(r, r->params[0], &n)) {
        return r->status;
    }
    int status = reply_node(r, 200, &n);
    store_node_clear(&n);
    return status;
}

/* A string member, or the error reply naming it: *out is the string (borrowed), NULL when
 * absent. Returns 0, or -1 after replying 400 (also for null or a non-string). */
static int
take_str(struct req *r, const cJSON *in, const char *key, const char **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(in, key);
    *out = NULL;
    if (!v) {
        return 0;
    }
    if (!cJSON_IsString(v) || !v->valuestring) {
        http_reply_error(r, 400, "invalid_field", "field '%s' must be a string", key);
        return -1;
    }
    *out = v->valuestring;
    return 0;
}

/* The fields a request may set, each NULL / 0 when absent. address is the canonical form
 * (inventory_address_canonical) of the one given, in address_buf. */
struct node_in {
    const char *address, *ssh_user, *ssh_key_path, *compose_dir, *data_dir, *server_state;
    int ssh_port; /* 0 absent */
    char address_buf[INVENTORY_ADDRESS_MAX];
};

/* Reads and validates the fields present in `in`; replies 400 naming the first bad one and
 * returns -1. */
static int
node_in_read(struct req *r, const cJSON *in, struct node_in *ni)
{
    memset(ni, 0, sizeof(*ni));
    if (take_str(r, in, "address", &ni->address) || take_str(r, in, "ssh_user", &ni->ssh_user) ||
        take_str(r, in, "ssh_key_path", &ni->ssh_key_path) ||
        take_str(r, in, "compose_dir", &ni->compose_dir) ||
        take_str(r, in, "data_dir", &ni->data_dir) ||
        take_str(r, in, "server_state", &ni->server_state)) {
        return -1;
    }
    const cJSON *port = cJSON_GetObjectItemCaseSensitive(in, "ssh_port");
    if (port) {
        double v = cJSON_IsNumber(port) ? port->valuedouble : -1;
        if (!(v >= 1 && v <= 65535) || v != (int)v) {
            http_reply_error(r, 400, "invalid_field",
                             "field 'ssh_port' must be an integer from 1 to 65535");
            return -1;
        }
        ni->ssh_port = (int)v;
    }
    const char *p;
    if (ni->address) {
        /* stored and compared in one form: another spelling of a taken address is taken */
        if ((p = inventory_address_canonical(ni->address, ni->address_buf,
                                             sizeof(ni->address_buf)))) {
            http_reply_error(r, 400, "invalid_field", "field 'address' %s", p);
            return -1;
        }
        ni->address = ni->address_buf;
    }
    if (ni->ssh_user && (p = inventory_user_problem(ni->ssh_user))) {
        http_reply_error(r, 400, "invalid_field", "field 'ssh_user' %s", p);
        return -1;
    }
    char why[512];
    if (ni->ssh_key_path && inventory_key_file_check(ni->ssh_key_path, why, sizeof(why))) {
        http_reply_error(r, 400, "invalid_field", "field 'ssh_key_path' %s", why);
        return -1;
    }
    if (ni->compose_dir && (p = inventory_path_problem(ni->compose_dir))) {
        http_reply_error(r, 400, "invalid_field", "field 'compose_dir' %s", p);
        return -1;
    }
    if (ni->data_dir && (p = inventory_path_problem(ni->data_dir))) {
        http_reply_error(r, 400, "invalid_field", "field 'data_dir' %s", p);
        return -1;
    }
    if (ni->server_state && !inventory_server_state_valid(ni->server_state)) {
        http_reply_error(r, 400, "invalid_field",
                         "field 'server_state' must be one of unknown, server, spare, removed");
        return -1;
    }
    return 0;
}

static int
fail_db(struct req *r)
{
    store_rollback(r->db);
    return http_reply_error(r, 500, "internal", "database error; nothing was changed");
}

static void
refresh_expected(struct req *r)
{
    inventory_publish_expected(r->db, r->app->watch);
}

int
api_nodes_create(struct req *r)
{
    static const char *const allowed[] = {"name",     "address",      "ssh_port",
                                          "ssh_user", "ssh_key_path", "compose_dir",
                                          "data_dir", "server_state", NULL};
    cJSON *in = http_json_body(r);
    if (!in) {
        return r->status;
    }
    int status;
    struct node_in ni;
    const char *name = NULL, *p;
    struct store_node got = {0};
    if (http_check_fields(r, in, allowed) || take_str(r, in, "name", &name) ||
        node_in_read(r, in, &ni)) {
        status = r->status;
        goto out;
    }
    if ((p = inventory_name_problem(name))) {
        status = http_reply_error(r, 400, "invalid_field", "field 'name' %s", p);
        goto out;
    }
    static const char *const required[] = {"address", "ssh_user", "ssh_key_path"};
    const char *have[] = {ni.address, ni.ssh_user, ni.ssh_key_path};
    for (size_t i = 0; i < ARRAY_LEN(required); i++) {
        if (!have[i]) {
            status =
                http_reply_error(r, 400, "invalid_field", "field '%s' is required", required[i]);
            goto out;
        }
    }
    struct store_node n = {
        .name = (char *)name,
        .address = (char *)ni.address,
        .ssh_port = ni.ssh_port ? ni.ssh_port : INVENTORY_DEFAULT_SSH_PORT,
        .ssh_user = (char *)ni.ssh_user,
        .ssh_key_path = (char *)ni.ssh_key_path,
        .compose_dir = (char *)(ni.compose_dir ? ni.compose_dir : INVENTORY_DEFAULT_COMPOSE_DIR),
        .data_dir = (char *)(ni.data_dir ? ni.data_dir : INVENTORY_DEFAULT_DATA_DIR),
        .server_state = (char *)(ni.server_state ? ni.server_state : "unknown"),
    };
    if (store_begin(r->db)) {
        status = http_reply_error(r, 500, "internal", "database busy");
        goto out;
    }
    int rc = store_node_insert(r->db, &n, time_now_ms());
    if (rc == STORE_CONFLICT) {
        store_rollback(r->db);
        struct store_node other;
        if (store_node_get(r->db, name, &other) == STORE_OK) {
            status =
                http_reply_error(r, 409, "node_exists", "a node named '%s' already exists", name);
            store_node_clear(&other);
        } else {
            status = http_reply_error(r, 409, "node_exists",
                                      "another node already has the address '%s'", n.address);
        }
        goto out;
    }
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "address", n.address);
    cJSON_AddNumberToObject(d, "ssh_port", n.ssh_port);
    cJSON_AddStringToObject(d, "ssh_user", n.ssh_user);
    cJSON_AddStringToObject(d, "ssh_key_path", n.ssh_key_path);
    cJSON_AddStringToObject(d, "compose_dir", n.compose_dir);
    cJSON_AddStringToObject(d, "data_dir", n.data_dir);
    cJSON_AddStringToObject(d, "server_state", n.server_state);
    if (rc != STORE_OK || http_audit(r, "node.create", name, d, "ok") != STORE_OK ||
        store_commit(r->db) != STORE_OK) {
        status = fail_db(r);
        goto out;
    }
    refresh_expected(r);
    if (store_node_get(r->db, name, &got) != STORE_OK) {
        status = http_reply_error(r, 500, "internal", "node created but cannot be read back");
        goto out;
    }
    status = reply_node(r, 201, &got);
out:
    store_node_clear(&got);
    cJSON_Delete(in);
    return status;
}

/* Replies 409 node_busy when an unfinished job involves the node (the transaction is rolled
 * back). Returns 0 when free, else the status sent. */
static int
check_busy(struct req *r, const char *name)
{
    int64_t job = 0;
    if (store_node_busy(r->db, name, &job) != STORE_OK) {
        return fail_db(r);
    }
    if (job) {
        store_rollback(r->db);
        return http_reply_error(r, 409, "node_busy",
                                "node '%s' is part of job %lld, which has not finished; wait for "
                                "it, or cancel or reject it first",
                                name, (long long)job);
    }
    return 0;
}

/* Begins the change of node name: the write transaction, the node read into n (404 when
 * absent) and free of unfinished jobs (409 node_busy). Returns 0 inside the transaction, or
 * the status sent (rolled back). */
static int
begin_node_change(struct req *r, const char *name, struct store_node *n)
{
    if (store_begin(r->db)) {
        return http_reply_error(r, 500, "internal", "database busy");
    }
    int rc = store_node_get(r->db, name, n);
    if (rc == STORE_NOT_FOUND) {
        store_rollback(r->db);
        return http_reply_error(r, 404, "not_found", "no node named '%s'", name);
    }
    if (rc != STORE_OK) {
        return fail_db(r);
    }
    return check_busy(r, name);
}

/* Records one changed text field as {"from","to"} in d. */
static void
change_str(cJSON *d, const char *key, char **field, const char *to)
{
    if (!to || strcmp(*field, to) == 0) {
        return;
    }
    cJSON *c = cJSON_AddObjectToObject(d, key);
    cJSON_AddStringToObject(c, "from", *field);
    cJSON_AddStringToObject(c, "to", to);
    free(*field);
    *field = xstrdup(to);
}

int
api_nodes_update(struct req *r)
{
    static const char *const allowed[] = {"address",     "ssh_port", "ssh_user",     "ssh_key_path",
                                          "compose_dir", "data_dir", "server_state", NULL};
    const char *name = r->params[0];
    cJSON *in = http_json_body(r);
    if (!in) {
        return r->status;
    }
    int status;
    struct node_in ni;
    struct store_node n = {0};
    if (cJSON_GetObjectItemCaseSensitive(in, "name")) {
        status = http_reply_error(r, 400, "invalid_field",
                                  "field 'name' cannot be changed (delete the node and create it "
                                  "again)");
        goto out;
    }
    if (http_check_fields(r, in, allowed) || node_in_read(r, in, &ni)) {
        status = r->status;
        goto out;
    }
    if (!in->child) {
        status = http_reply_error(r, 400, "invalid_field",
                                  "give at least one of 'address', 'ssh_port', 'ssh_user', "
                                  "'ssh_key_path', 'compose_dir', 'data_dir', 'server_state'");
        goto out;
    }
    if ((status = begin_node_change(r, name, &n)) != 0) {
        goto out;
    }
    cJSON *d = cJSON_CreateObject();
    int old_port = n.ssh_port;
    /* a node stored before addresses were canonical may hold another spelling of its own
     * address: that spelling is rewritten below without counting as a new address */
    char old_addr[INVENTORY_ADDRESS_MAX];
    const char *old =
        inventory_address_canonical(n.address, old_addr, sizeof(old_addr)) ? n.address : old_addr;
    int addr_changed = ni.address && strcasecmp(ni.address, old) != 0;
    change_str(d, "address", &n.address, ni.address);
    if (ni.ssh_port && ni.ssh_port != n.ssh_port) {
        cJSON *c = cJSON_AddObjectToObject(d, "ssh_port");
        cJSON_AddNumberToObject(c, "from", n.ssh_port);
        cJSON_AddNumberToObject(c, "to", ni.ssh_port);
        n.ssh_port = ni.ssh_port;
    }
    change_str(d, "ssh_user", &n.ssh_user, ni.ssh_user);
    change_str(d, "ssh_key_path", &n.ssh_key_path, ni.ssh_key_path);
    change_str(d, "compose_dir", &n.compose_dir, ni.compose_dir);
    change_str(d, "data_dir", &n.data_dir, ni.data_dir);
    change_str(d, "server_state", &n.server_state, ni.server_state);
    int unpin = (addr_changed || n.ssh_port != old_port) && n.host_key_fingerprint;
    if (unpin) {
        cJSON *u = cJSON_AddObjectToObject(d, "host_key_unpinned");
        cJSON_AddStringToObject(u, "fingerprint", n.host_key_fingerprint);
        cJSON_AddStringToObject(u, "reason", addr_changed ? "address changed" : "ssh_port changed");
    }
    int rc = store_node_update(r->db, &n, unpin, time_now_ms());
    if (rc == STORE_CONFLICT) {
        store_rollback(r->db);
        cJSON_Delete(d);
        status = http_reply_error(r, 409, "node_exists",
                                  "another node already has the address '%s'", n.address);
        goto out;
    }
    if (rc != STORE_OK || http_audit(r, "node.update", name, d, "ok") != STORE_OK ||
        store_commit(r->db) != STORE_OK) {
        status = fail_db(r);
        goto out;
    }
    refresh_expected(r);
    store_node_clear(&n);
    if (store_node_get(r->db, name, &n) != STORE_OK) {
        status = http_reply_error(r, 500, "internal", "node updated but cannot be read back");
        goto out;
    }
    status = reply_node(r, 200, &n);
out:
    store_node_clear(&n);
    cJSON_Delete(in);
    return status;
}

int
api_nodes_delete(struct req *r)
{
    const char *name = r->params[0];
    struct store_node n = {0};
    int status;
    if ((status = begin_node_change(r, name, &n)) != 0) {
        goto out;
    }
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "address", n.address);
    cJSON_AddStringToObject(d, "server_state", n.server_state);
    if (store_node_delete(r->db, name) != STORE_OK ||
        http_audit(r, "node.delete", name, d, "ok") != STORE_OK ||
        store_commit(r->db) != STORE_OK) {
        status = fail_db(r);
        goto out;
    }
    refresh_expected(r);
    status = http_reply_json(r, 200, cJSON_CreateRaw("{\"ok\":true}"));
out:
    store_node_clear(&n);
    return status;
}

static cJSON *
key_json(const char *type, int bits, const char *fp)
{
    cJSON *k = cJSON_CreateObject();
    cJSON_AddStringToObject(k, "type", type);
    cJSON_AddNumberToObject(k, "bits", bits);
    cJSON_AddStringToObject(k, "fingerprint", fp);
    return k;
}

/* Probes the node's host key (of the pinned type when one is pinned, else the server's
 * choice; with any_type the server's choice first, then the pinned type). Replies 502
 * ssh_unreachable and returns -1 when the host does not answer. */
static int
probe(struct req *r, const struct store_node *n, const char *type, struct ssh_host_key *k)
{
    struct ssh_error err;
    int rc = ssh_probe(n->address, (uint16_t)n->ssh_port, type,
                       r->app->cfg->jobs_ssh_connect_timeout_ms, k, &err);
    if (rc != SSH_OK) {
        http_reply_error(r, 502, "ssh_unreachable",
                         "cannot read the host key of %s at %s port %d: %s", n->name, n->address,
                         n->ssh_port, err.message);
        return -1;
    }
    return 0;
}

int
api_nodes_hostkey(struct req *r)
{
    struct store_node n;
    if (load_node(r, r->params[0], &n)) {
        return r->status;
    }
    struct ssh_host_key k;
    int status;
    if (probe(r, &n, n.host_key_fingerprint ? n.host_key_type : NULL, &k)) {
        status = r->status;
        goto out;
    }
    cJSON *j = cJSON_CreateObject();
    cJSON_AddItemToObject(j, "presented", key_json(k.type, k.bits, k.fingerprint));
    if (n.host_key_fingerprint) {
        cJSON_AddItemToObject(j, "pinned",
                              key_json(n.host_key_type, n.host_key_bits, n.host_key_fingerprint));
    } else {
        cJSON_AddNullToObject(j, "pinned");
    }
    cJSON_AddBoolToObject(
        j, "matches", n.host_key_fingerprint && strcmp(n.host_key_fingerprint, k.fingerprint) == 0);
    status = http_reply_json(r, 200, j);
out:
    store_node_clear(&n);
    return status;
}

/* "SHA256:" and 43 characters of unpadded base64. */
static int
fingerprint_valid(const char *fp)
{
    if (!fp || strncmp(fp, "SHA256:", 7) != 0 || strlen(fp) != 7 + 43) {
        return 0;
    }
    for (const char *p = fp + 7; *p; p++) {
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '+' || *p == '/')) {
            return 0;
        }
    }
    return 1;
}

int
api_nodes_trust(struct req *r)
{
    static const char *const allowed[] = {"fingerprint", NULL};
    const char *name = r->params[0];
    cJSON *in = http_json_body(r);
    if (!in) {
        return r->status;
    }
    int status;
    const char *fp = NULL;
    struct store_node n = {0}, now = {0};
    if (http_check_fields(r, in, allowed) || take_str(r, in, "fingerprint", &fp)) {
        status = r->status;
        goto out;
    }
    if (!fingerprint_valid(fp)) {
        status = http_reply_error(r, 400, "invalid_field",
                                  "field 'fingerprint' must be \"SHA256:\" and 43 base64 "
                                  "characters, as ssh-keygen -l prints it");
        goto out;
    }
    if (load_node(r, name, &n)) {
        status = r->status;
        goto out;
    }
    struct ssh_host_key k;
    if (probe(r, &n, NULL, &k)) {
        status = r->status;
        goto out;
    }
    if (strcmp(k.fingerprint, fp) != 0 && n.host_key_type && strcmp(n.host_key_type, k.type)) {
        /* the host offers several kinds of key: the one asked about may be the pinned kind */
        struct ssh_host_key k2;
        if (probe(r, &n, n.host_key_type, &k2)) {
            status = r->status;
            goto out;
        }
        if (strcmp(k2.fingerprint, fp) == 0) {
            k = k2;
        }
    }
    if (strcmp(k.fingerprint, fp) != 0) {
        status = http_reply_error(r, 409, "host_key_mismatch",
                                  "node '%s' (%s port %d) presents %s (%s), not %s; nothing was "
                                  "pinned",
                                  name, n.address, n.ssh_port, k.fingerprint, k.type, fp);
        goto out;
    }
    if (store_begin(r->db)) {
        status = http_reply_error(r, 500, "internal", "database busy");
        goto out;
    }
    /* the node must still be the one probed */
    int rc = store_node_get(r->db, name, &now);
    if (rc != STORE_OK || strcmp(now.address, n.address) != 0 || now.ssh_port != n.ssh_port) {
        store_rollback(r->db);
        status = http_reply_error(r, 409, "node_changed",
                                  "node '%s' was changed or deleted while its key was read; "
                                  "nothing was pinned",
                                  name);
        goto out;
    }
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "fingerprint", k.fingerprint);
    cJSON_AddStringToObject(d, "type", k.type);
    cJSON_AddNumberToObject(d, "bits", k.bits);
    cJSON_AddStringToObject(d, "address", n.address);
    cJSON_AddNumberToObject(d, "ssh_port", n.ssh_port);
    if (n.host_key_fingerprint) {
        cJSON_AddStringToObject(d, "previous", n.host_key_fingerprint);
    }
    if (store_node_pin(r->db, name, k.type, k.bits, k.fingerprint, r->user.name, time_now_ms()) !=
            STORE_OK ||
        http_audit(r, "node.trust_hostkey", name, d, "ok") != STORE_OK ||
        store_commit(r->db) != STORE_OK) {
        status = fail_db(r);
        goto out;
    }
    store_node_clear(&now);
    if (store_node_get(r->db, name, &now) != STORE_OK) {
        status =
            http_reply_error(r, 500, "internal", "key pinned but the node cannot be read back");
        goto out;
    }
    status = reply_node(r, 200, &now);
out:
    store_node_clear(&n);
    store_node_clear(&now);
    cJSON_Delete(in);
    return status;
}

/* The raft servers of the model as (node name, address host) pairs. */
struct import_ctx {
    cJSON *created, *skipped;
};

static void
skip(struct import_ctx *ic, const char *name, const char *why)
{
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "name", name);
    cJSON_AddStringToObject(s, "reason", why);
    cJSON_AddItemToArray(ic->skipped, s);
}

int
api_nodes_import(struct req *r)
{
    static const char *const allowed[] = {"ssh_user",    "ssh_key_path", "ssh_port",
                                          "compose_dir", "data_dir",     NULL};
    cJSON *in = http_json_body(r);
    if (!in) {
        return r->status;
    }
    int status;
    struct node_in ni;
    struct watch_snap *snap = NULL;
    struct import_ctx ic = {cJSON_CreateArray(), cJSON_CreateArray()};
    if (http_check_fields(r, in, allowed) || node_in_read(r, in, &ni)) {
        status = r->status;
        goto out;
    }
    if (!ni.ssh_user || !ni.ssh_key_path) {
        status = http_reply_error(r, 400, "invalid_field", "field '%s' is required",
                                  ni.ssh_user ? "ssh_key_path" : "ssh_user");
        goto out;
    }
    const struct cluster_model *m = model_take(r, &snap);
    if (!m || !m->raft_known) {
        status = http_reply_error(r, 503, "cluster_unknown",
                                  "the raft configuration is not known now (Consul unreachable "
                                  "or without a leader); nothing was imported");
        goto out;
    }
    if (store_begin(r->db)) {
        status = http_reply_error(r, 500, "internal", "database busy");
        goto out;
    }
    int64_t now = time_now_ms();
    for (size_t i = 0; i < m->n_servers; i++) {
        const struct cluster_server *s = &m->servers[i];
        if (!s->in_raft) {
            continue;
        }
        char host[256], addr[INVENTORY_ADDRESS_MAX];
        if (watch_addr_host(s->address, host, sizeof(host)) != 0 ||
            inventory_address_canonical(host, addr, sizeof(addr))) {
            skip(&ic, s->node, "its raft address is not a usable host address");
            continue;
        }
        if (inventory_name_problem(s->node)) {
            skip(&ic, s->node, "its node name is not a valid inventory name");
            continue;
        }
        struct store_node n = {
            .name = s->node,
            .address = addr,
            .ssh_port = ni.ssh_port ? ni.ssh_port : INVENTORY_DEFAULT_SSH_PORT,
            .ssh_user = (char *)ni.ssh_user,
            .ssh_key_path = (char *)ni.ssh_key_path,
            .compose_dir =
                (char *)(ni.compose_dir ? ni.compose_dir : INVENTORY_DEFAULT_COMPOSE_DIR),
            .data_dir = (char *)(ni.data_dir ? ni.data_dir : INVENTORY_DEFAULT_DATA_DIR),
            .server_state = "server",
        };
        struct store_node have;
        int grc = store_node_get(r->db, s->node, &have);
        store_node_clear(&have);
        if (grc == STORE_OK) {
            skip(&ic, s->node, "a node with this name exists");
            continue;
        }
        int rc = grc == STORE_NOT_FOUND ? store_node_insert(r->db, &n, now) : STORE_ERROR;
        if (rc == STORE_CONFLICT) {
            skip(&ic, s->node, "another node has this address");
        } else if (rc != STORE_OK) {
            status = fail_db(r);
            goto out;
        } else {
            cJSON_AddItemToArray(ic.created, cJSON_CreateString(s->node));
        }
    }
    cJSON *d = cJSON_CreateObject();
    cJSON_AddItemReferenceToObject(d, "created", ic.created);
    cJSON_AddItemReferenceToObject(d, "skipped", ic.skipped);
    cJSON_AddStringToObject(d, "ssh_user", ni.ssh_user);
    cJSON_AddStringToObject(d, "ssh_key_path", ni.ssh_key_path);
    if (http_audit(r, "node.import", "", d, "ok") != STORE_OK || store_commit(r->db) != STORE_OK) {
        status = fail_db(r);
        goto out;
    }
    refresh_expected(r);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddItemToObject(j, "created", ic.created);
    cJSON_AddItemToObject(j, "skipped", ic.skipped);
    ic.created = ic.skipped = NULL;
    status = http_reply_json(r, 200, j);
out:
    model_put(r, snap);
    cJSON_Delete(ic.created);
    cJSON_Delete(ic.skipped);
    cJSON_Delete(in);
    return status;
}
