/* inventory: see include/inventory.h. */
#include "inventory.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit.h"
#include "cluster.h"
#include "compose.h"
#include "store_jobs.h"
#include "util.h"
#include "watch.h"

const char *
inventory_name_problem(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n < 1 || n > 64) {
        return "must be 1-64 characters of letters, digits, '_', '.' or '-'";
    }
    if (!isalnum((unsigned char)name[0])) {
        return "must start with a letter or digit";
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!isalnum(c) && c != '_' && c != '.' && c != '-') {
            return "must be 1-64 characters of letters, digits, '_', '.' or '-'";
        }
    }
    return NULL;
}

const char *
inventory_address_problem(const char *address)
{
    if (!address || !*address) {
        return "must be an IPv4 or IPv6 address or a DNS name";
    }
    if (strchr(address, '[') || strchr(address, ']')) {
        return "must be written without brackets (an IPv6 address as it is)";
    }
    const char *colon = strchr(address, ':');
    if (colon && !strchr(colon + 1, ':')) {
        return "must not carry a port (the SSH port is ssh_port)";
    }
    if (compose_addr_valid(address, NULL) != COMPOSE_OK) {
        return "must be an IPv4 or IPv6 address or a DNS name";
    }
    return NULL;
}

/* The 16 bytes of an IPv6 address as RFC 5952 writes it, all in hex (as Go's net.IP.String
 * does for an address that is not IPv4-mapped). Returns 0, or -1 when out is too small. */
static int
ip6_text(const unsigned char ip[16], char *out, size_t outlen)
{
    unsigned g[8];
    for (int i = 0; i < 8; i++) {
        g[i] = (unsigned)ip[2 * i] << 8 | ip[2 * i + 1];
    }
    /* the first longest run of zero groups, compressed only when 2 or more long */
    int best = -1, best_len = 0;
    for (int i = 0; i < 8;) {
        if (g[i] != 0) {
            i++;
            continue;
        }
        int j = i;
        while (j < 8 && g[j] == 0) {
            j++;
        }
        if (j - i > best_len) {
            best = i;
            best_len = j - i;
        }
        i = j;
    }
    if (best_len < 2) {
        best = -1;
        best_len = 0;
    }
    char buf[INET6_ADDRSTRLEN];
    size_t o = 0;
    for (int i = 0; i < 8; i++) {
        if (i == best) {
            o += (size_t)snprintf(buf + o, sizeof(buf) - o, "::");
            i += best_len - 1;
            continue;
        }
        int sep = i > 0 && i != best + best_len;
        o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s%x", sep ? ":" : "", g[i]);
    }
    if (o >= outlen) {
        return -1;
    }
    memcpy(out, buf, o + 1);
    return 0;
}

const char *
inventory_address_canonical(const char *address, char *out, size_t outlen)
{
    static const char bad[] = "must be an IPv4 or IPv6 address or a DNS name";
    static const unsigned char v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (outlen) {
        out[0] = '\0';
    }
    const char *p = inventory_address_problem(address);
    if (p) {
        return p;
    }
    unsigned char ip[16];
    const char *done;
    if (strchr(address, ':')) {
        /* two colons or more (one is refused as a port): an IPv6 literal */
        if (inet_pton(AF_INET6, address, ip) != 1) {
            return bad;
        }
        if (memcmp(ip, v4_mapped, sizeof(v4_mapped)) == 0) {
            done = inet_ntop(AF_INET, ip + 12, out, (socklen_t)outlen);
        } else {
            done = ip6_text(ip, out, outlen) == 0 ? out : NULL;
        }
    } else if (inet_pton(AF_INET, address, ip) == 1) {
        done = inet_ntop(AF_INET, ip, out, (socklen_t)outlen);
    } else {
        /* a DNS name (the validator took it as one): lower-cased, one trailing dot off */
        size_t n = strlen(address);
        if (n > 0 && address[n - 1] == '.') {
            n--;
        }
        done = NULL;
        if (n < outlen) {
            for (size_t i = 0; i < n; i++) {
                out[i] = (char)tolower((unsigned char)address[i]);
            }
            out[n] = '\0';
            done = out;
        }
    }
    if (!done) {
        if (outlen) {
            out[0] = '\0';
        }
        return bad;
    }
    return NULL;
}

const char *
inventory_user_problem(const char *user)
{
    size_t n = user ? strlen(user) : 0;
    if (n < 1 || n > 32 || user[0] == '-') {
        return "must be 1-32 characters of letters, digits, '.', '_' or '-', not starting with "
               "'-'";
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)user[i];
        if (!isalnum(c) && c != '.' && c != '_' && c != '-') {
            return "must be 1-32 characters of letters, digits, '.', '_' or '-', not starting "
                   "with '-'";
        }
    }
    return NULL;
}

const char *
inventory_path_problem(const char *path)
{
    size_t n = path ? strlen(path) : 0;
    if (n < 2 || path[0] != '/') {
        return "must be an absolute path (starting with '/', not the root itself)";
    }
    if (n > INVENTORY_PATH_MAX) {
        return "is too long (at most 1024 bytes)";
    }
    if (path[n - 1] == '/') {
        return "must not end with '/'";
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)path[i];
        if (c < 0x20 || c == 0x7f) {
            return "must not contain control characters";
        }
    }
    if (strstr(path, "//")) {
        return "must not contain '//'";
    }
    /* no "." or ".." component */
    for (const char *p = path; p; p = strchr(p + 1, '/')) {
        const char *seg = p + 1;
        size_t len = strcspn(seg, "/");
        if ((len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.')) {
            return "must not contain '.' or '..' components";
        }
    }
    return NULL;
}

int
inventory_key_file_check(const char *path, char *why, size_t whylen)
{
    const char *p = inventory_path_problem(path);
    if (p) {
        snprintf(why, whylen, "%s", p);
        return -1;
    }
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(why, whylen, "cannot be used: %s is %s", path,
                 errno == ENOENT ? "missing" : strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(why, whylen, "must be a regular file (%s is not)", path);
        return -1;
    }
    if (st.st_mode & 077) {
        snprintf(why, whylen,
                 "must have mode 0600 or stricter (%s has %04o: group or others may read it; "
                 "chmod 600 it)",
                 path, (unsigned)(st.st_mode & 07777));
        return -1;
    }
    if (access(path, R_OK) != 0) {
        snprintf(why, whylen, "is not readable by consulate (%s: %s)", path, strerror(errno));
        return -1;
    }
    return 0;
}

int
inventory_server_state_valid(const char *state)
{
    static const char *const ok[] = {"unknown", "server", "spare", "removed"};
    for (size_t i = 0; state && i < ARRAY_LEN(ok); i++) {
        if (strcmp(state, ok[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

static void
add_str(cJSON *j, const char *key, const char *v)
{
    if (v) {
        cJSON_AddStringToObject(j, key, v);
    } else {
        cJSON_AddNullToObject(j, key);
    }
}

cJSON *
inventory_node_json(const struct store_node *n, const struct cluster_model *m)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "name", n->name);
    cJSON_AddStringToObject(j, "address", n->address);
    cJSON_AddNumberToObject(j, "ssh_port", n->ssh_port);
    cJSON_AddStringToObject(j, "ssh_user", n->ssh_user);
    cJSON_AddStringToObject(j, "ssh_key_path", n->ssh_key_path);
    cJSON_AddStringToObject(j, "compose_dir", n->compose_dir);
    cJSON_AddStringToObject(j, "data_dir", n->data_dir);
    cJSON *hk = cJSON_AddObjectToObject(j, "host_key");
    int pinned = n->host_key_fingerprint != NULL;
    cJSON_AddBoolToObject(hk, "pinned", pinned);
    add_str(hk, "type", pinned ? n->host_key_type : NULL);
    if (pinned) {
        cJSON_AddNumberToObject(hk, "bits", n->host_key_bits);
    } else {
        cJSON_AddNullToObject(hk, "bits");
    }
    add_str(hk, "fingerprint", n->host_key_fingerprint);
    json_add_time(hk, "pinned_at", pinned ? n->host_key_pinned_at : 0);
    add_str(hk, "pinned_by", pinned ? n->host_key_pinned_by : NULL);
    cJSON_AddStringToObject(j, "server_state", n->server_state);
    if (m) {
        struct cluster_match mt;
        cluster_model_match(m, n->address, &mt);
        cJSON *c = cJSON_AddObjectToObject(j, "consul");
        cJSON_AddBoolToObject(c, "member", mt.member);
        cJSON_AddBoolToObject(c, "server", mt.server);
        cJSON_AddBoolToObject(c, "in_raft", mt.in_raft);
        cJSON_AddBoolToObject(c, "voter", mt.voter);
        cJSON_AddBoolToObject(c, "leader", mt.leader);
        cJSON_AddStringToObject(c, "serf_status", cluster_serf_name(mt.serf_status));
        add_str(c, "node", mt.node);
    } else {
        cJSON_AddNullToObject(j, "consul");
    }
    json_add_time(j, "created_at", n->created_at);
    json_add_time(j, "updated_at", n->updated_at);
    return j;
}

struct expected_acc {
    struct cluster_expected *e;
    size_t n, cap;
};

static int
expected_cb(const struct store_node *n, void *ctx)
{
    struct expected_acc *a = ctx;
    if (strcmp(n->server_state, "server") != 0) {
        return 0;
    }
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 8;
        a->e = xrealloc(a->e, a->cap * sizeof(*a->e));
    }
    a->e[a->n].name = xstrdup(n->name);
    a->e[a->n].address = xstrdup(n->address);
    a->n++;
    return 0;
}

void
inventory_publish_expected(struct store *db, struct watch *w)
{
    if (!w || !db) {
        return;
    }
    struct expected_acc a = {NULL, 0, 0};
    if (store_node_each(db, expected_cb, &a) != STORE_OK) {
        log_warn("inventory: cannot read the expected servers: %s", store_errmsg(db));
    } else {
        watch_set_expected(w, a.e, a.n);
    }
    for (size_t i = 0; i < a.n; i++) {
        free((char *)a.e[i].name);
        free((char *)a.e[i].address);
    }
    free(a.e);
}

/* ---- addresses stored before they were canonical ---- */

struct canon_list {
    struct store_node *v;
    size_t n, cap;
};

static int
canon_collect(const struct store_node *n, void *ctx)
{
    struct canon_list *l = ctx;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
    }
    store_node_copy(&l->v[l->n++], n);
    return 0;
}

int
inventory_canonicalize_stored(struct store *db)
{
    static const struct audit_actor system_actor = {.name = "system", .role = "", .ip = "local"};
    struct canon_list l = {0};
    if (store_node_each(db, canon_collect, &l) != STORE_OK) {
        log_error("inventory: cannot read the nodes to check their addresses");
        return -1;
    }
    int changed = 0;
    for (size_t i = 0; i < l.n; i++) {
        const struct store_node *n = &l.v[i];
        char canon[INVENTORY_ADDRESS_MAX];
        if (inventory_address_canonical(n->address, canon, sizeof(canon)) ||
            strcmp(canon, n->address) == 0) {
            continue;
        }
        struct store_node u;
        store_node_copy(&u, n);
        free(u.address);
        u.address = xstrdup(canon);
        int rc = store_begin(db);
        if (rc == STORE_OK) {
            rc = store_node_update(db, &u, 0, time_now_ms());
        }
        if (rc == STORE_OK) {
            cJSON *d = cJSON_CreateObject();
            cJSON *a = cJSON_AddObjectToObject(d, "address");
            cJSON_AddStringToObject(a, "from", n->address);
            cJSON_AddStringToObject(a, "to", canon);
            cJSON_AddStringToObject(d, "reason", "the canonical spelling of the same address");
            rc = audit_record(db, &system_actor, "node.update", n->name, d, "ok", NULL);
        }
        if (rc == STORE_OK) {
            rc = store_commit(db);
        }
        if (rc == STORE_OK) {
            log_info("inventory: node %s: address %s is now written %s", n->name, n->address,
                     canon);
            changed++;
        } else {
            store_rollback(db);
            if (rc == STORE_CONFLICT) {
                log_warn("inventory: node %s (%s) names the same host as another node (%s): "
                         "delete one of the two",
                         n->name, n->address, canon);
            } else {
                log_error("inventory: node %s: cannot rewrite its address %s as %s", n->name,
                          n->address, canon);
            }
        }
        store_node_clear(&u);
    }
    for (size_t i = 0; i < l.n; i++) {
        store_node_clear(&l.v[i]);
    }
    free(l.v);
    return changed;
}
