/* cluster: see include/cluster.h. The model is built in passes over the parsed inputs:
 * servers from the raft configuration joined with the serf members and autopilot health,
 * member servers missing from raft, clients, leader and quorum, the seed document's status
 * check, the strict health verdict, and last the problems in their fixed code order. Every
 * string in the model is a copy; the parsed cJSON trees are freed before returning. */
#include "cluster.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "prom.h"
#include "util.h"

/* The one list of problem codes and their stable names (the API's "code"). The web UI
 * translates by name, and tests/e2e/i18n-check.mjs reads this table: a code added here
 * needs problem.<name> and problem.<name>.title in web/i18n/en.json and zh-CN.json, or
 * make test fails. */
static const char *const problem_names[CLUSTER_P_COUNT_] = {
    [CLUSTER_P_CONSUL_UNREACHABLE] = "consul_unreachable",
    [CLUSTER_P_NO_LEADER] = "no_leader",
    [CLUSTER_P_SERVER_NOT_VOTER] = "server_not_voter",
    [CLUSTER_P_SERVER_FAILED] = "server_failed",
    [CLUSTER_P_SERVER_LEFT] = "server_left",
    [CLUSTER_P_RAFT_PEER_UNKNOWN] = "raft_peer_unknown",
    [CLUSTER_P_SERVER_NOT_IN_RAFT] = "server_not_in_raft",
    [CLUSTER_P_SERVER_MISSING] = "server_missing",
    [CLUSTER_P_EVEN_SERVER_COUNT] = "even_server_count",
    [CLUSTER_P_LOW_FAILURE_TOLERANCE] = "low_failure_tolerance",
    [CLUSTER_P_AUTOPILOT_UNHEALTHY] = "autopilot_unhealthy",
    [CLUSTER_P_CHECK_CRITICAL] = "check_critical",
};

/* A serf member, borrowed from the parsed members tree. */
struct member {
    const char *name;
    const char *addr;
    const char *role;
    const char *dc;
    const char *id;
    const char *port;
    const char *build;
    enum cluster_serf status;
    int used; /* matched to a raft entry */
};

/* A health check, borrowed from the parsed health tree. */
struct check {
    const cJSON *obj;
    const char *node;
    const char *check_id;
    const char *name;
    const char *service_id;
    const char *service_name;
    const char *status_raw;
    int maintenance;
    enum cluster_check status; /* NONE for a status Consul does not define */
    int rank;                  /* sort rank: 0 maintenance, 1 critical, 2 warning, ... */
    size_t index;
};

/* Everything parsed from the inputs; the trees own the strings the arrays point into. */
struct parsed {
    cJSON *raft, *members, *autopilot, *health;
    struct member *mem;
    size_t n_mem;
    struct check *checks;
    size_t n_checks;
};

static void set_err(struct cluster_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
set_err(struct cluster_error *err, const char *fmt, ...)
{
    if (!err) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
}

const char *
cluster_problem_code_name(enum cluster_problem_code code)
{
    if ((int)code < 0 || code >= CLUSTER_P_COUNT_) {
        return "unknown";
    }
    return problem_names[code];
}

const char *
cluster_serf_name(enum cluster_serf s)
{
    switch (s) {
    case CLUSTER_SERF_NONE:
        return "none";
    case CLUSTER_SERF_ALIVE:
        return "alive";
    case CLUSTER_SERF_LEAVING:
        return "leaving";
    case CLUSTER_SERF_LEFT:
        return "left";
    case CLUSTER_SERF_FAILED:
        return "failed";
    default:
        return "unknown";
    }
}

const char *
cluster_check_name(enum cluster_check c)
{
    switch (c) {
    case CLUSTER_CHECK_PASSING:
        return "passing";
    case CLUSTER_CHECK_WARNING:
        return "warning";
    case CLUSTER_CHECK_CRITICAL:
        return "critical";
    case CLUSTER_CHECK_MAINTENANCE:
        return "maintenance";
    default:
        return "none";
    }
}

/* Parses text as JSON whose top level must be an array (want_array) or an object. Returns
 * 0 with *out set (NULL when text is NULL), or -1 with err naming the input. */
static int
parse_input(const char *text, const char *what, int want_array, cJSON **out,
            struct cluster_error *err)
{
    *out = NULL;
    if (!text) {
        return 0;
    }
    cJSON *j = NULL;
    size_t at = 0;
    int prc = json_parse(text, strlen(text), &j, &at);
    if (prc == JSON_TOO_DEEP) {
        set_err(err, "%s nests more than %d deep (near byte %zu)", what, JSON_MAX_DEPTH, at);
        return -1;
    }
    if (prc != JSON_OK) {
        set_err(err, "%s is not valid JSON (near byte %zu)", what, at);
        return -1;
    }
    if (want_array ? !cJSON_IsArray(j) : !cJSON_IsObject(j)) {
        set_err(err, "%s is not a JSON %s", what, want_array ? "array" : "object");
        cJSON_Delete(j);
        return -1;
    }
    *out = j;
    return 0;
}

/* Maps a JSON serf status number to the enum; anything but an integer 0..4 is UNKNOWN. */
static enum cluster_serf
serf_from_json(const cJSON *obj, const char *key)
{
    double v = json_get_num(obj, key, -1);
    if (!(v >= 0 && v <= 4) || v != floor(v)) {
        return CLUSTER_SERF_UNKNOWN;
    }
    return (enum cluster_serf)(int)v;
}

/* Reads a non-negative integer JSON number that fits uint64. Returns 1 and sets *v. */
static int
json_get_u64(const cJSON *obj, const char *key, uint64_t *v)
{
    double d = json_get_num(obj, key, -1);
    if (!(d >= 0 && d < 18446744073709551616.0)) {
        return 0;
    }
    *v = (uint64_t)d;
    return 1;
}

/* The host part of "IP:port", "[v6]:port", "IP" or a bare IPv6 address, newly allocated. */
static char *
addr_host(const char *a)
{
    if (a[0] == '[') {
        const char *close = strchr(a, ']');
        return close ? xstrndup(a + 1, (size_t)(close - a - 1)) : xstrdup(a);
    }
    const char *colon = strchr(a, ':');
    if (colon && !strchr(colon + 1, ':')) {
        return xstrndup(a, (size_t)(colon - a));
    }
    return xstrdup(a);
}

static int
host_equal(const char *a, const char *b)
{
    char *ha = addr_host(a);
    char *hb = addr_host(b);
    int eq = ha[0] != '\0' && strcmp(ha, hb) == 0;
    free(ha);
    free(hb);
    return eq;
}

int
cluster_host_equal(const char *a, const char *b)
{
    char *ha = addr_host(a);
    char *hb = addr_host(b);
    int eq = ha[0] != '\0' && strcasecmp(ha, hb) == 0;
    free(ha);
    free(hb);
    return eq;
}

static int
status_rank(enum cluster_check c)
{
    switch (c) {
    case CLUSTER_CHECK_MAINTENANCE:
        return 0;
    case CLUSTER_CHECK_CRITICAL:
        return 1;
    case CLUSTER_CHECK_WARNING:
        return 2;
    case CLUSTER_CHECK_PASSING:
        return 3;
    default:
        return 4;
    }
}

/* Reads the members array (skipping other datacenters when dc is known). */
static void
members_collect(struct parsed *p, const char *dc)
{
    size_t cap = (size_t)cJSON_GetArraySize(p->members);
    p->mem = xcalloc(cap ? cap : 1, sizeof(*p->mem));
    const cJSON *it;
    cJSON_ArrayForEach(it, p->members)
    {
        if (!cJSON_IsObject(it)) {
            continue;
        }
        const cJSON *tags = cJSON_GetObjectItemCaseSensitive(it, "Tags");
        struct member *m = &p->mem[p->n_mem];
        m->name = json_get_str(it, "Name", "");
        m->addr = json_get_str(it, "Addr", "");
        m->status = serf_from_json(it, "Status");
        m->role = json_get_str(tags, "role", "");
        m->dc = json_get_str(tags, "dc", NULL);
        m->id = json_get_str(tags, "id", NULL);
        m->port = json_get_str(tags, "port", NULL);
        m->build = json_get_str(tags, "build", NULL);
        if (dc && m->dc && strcmp(dc, m->dc) != 0) {
            continue;
        }
        p->n_mem++;
    }
}

static int
check_is_maintenance(const char *check_id)
{
    return strcmp(check_id, "_node_maintenance") == 0 ||
           str_starts_with(check_id, "_service_maintenance:");
}

static int
check_cmp(const void *a, const void *b)
{
    const struct check *x = a, *y = b;
    if (x->rank != y->rank) {
        return x->rank - y->rank;
    }
    int c = strcmp(x->node, y->node);
    if (c == 0) {
        c = strcmp(x->check_id, y->check_id);
    }
    if (c == 0) {
        c = x->index < y->index ? -1 : x->index > y->index;
    }
    return c;
}

/* Reads the checks of a /v1/health/state body, sorted failing first, then node, check. */
static void
checks_collect(const cJSON *arr, struct check **out, size_t *n_out)
{
    size_t cap = (size_t)cJSON_GetArraySize(arr);
    struct check *cs = xcalloc(cap ? cap : 1, sizeof(*cs));
    size_t n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        if (!cJSON_IsObject(it)) {
            continue;
        }
        struct check *c = &cs[n];
        c->obj = it;
        c->index = n;
        c->node = json_get_str(it, "Node", "");
        c->check_id = json_get_str(it, "CheckID", "");
        c->name = json_get_str(it, "Name", "");
        c->service_id = json_get_str(it, "ServiceID", "");
        c->service_name = json_get_str(it, "ServiceName", "");
        c->status_raw = json_get_str(it, "Status", "");
        c->maintenance = check_is_maintenance(c->check_id);
        if (c->maintenance) {
            c->status = CLUSTER_CHECK_MAINTENANCE;
        } else if (strcmp(c->status_raw, "critical") == 0) {
            c->status = CLUSTER_CHECK_CRITICAL;
        } else if (strcmp(c->status_raw, "warning") == 0) {
            c->status = CLUSTER_CHECK_WARNING;
        } else if (strcmp(c->status_raw, "passing") == 0) {
            c->status = CLUSTER_CHECK_PASSING;
        } else if (strcmp(c->status_raw, "maintenance") == 0) {
            c->status = CLUSTER_CHECK_MAINTENANCE;
        } else {
            c->status = CLUSTER_CHECK_NONE;
        }
        c->rank = status_rank(c->status);
        n++;
    }
    qsort(cs, n, sizeof(*cs), check_cmp);
    *out = cs;
    *n_out = n;
}

static void
parsed_free(struct parsed *p)
{
    cJSON_Delete(p->raft);
    cJSON_Delete(p->members);
    cJSON_Delete(p->autopilot);
    cJSON_Delete(p->health);
    free(p->mem);
    free(p->checks);
}

static void
server_clear(struct cluster_server *s)
{
    free(s->node);
    free(s->id);
    free(s->address);
    free(s->version);
    free(s->last_contact);
}

void
cluster_model_free(struct cluster_model *m)
{
    if (!m) {
        return;
    }
    for (size_t i = 0; i < m->n_servers; i++) {
        server_clear(&m->servers[i]);
    }
    free(m->servers);
    for (size_t i = 0; i < m->n_clients; i++) {
        free(m->clients[i].node);
        free(m->clients[i].address);
    }
    free(m->clients);
    for (size_t i = 0; i < m->n_problems; i++) {
        free(m->problems[i].message);
        free(m->problems[i].node);
    }
    free(m->problems);
    free(m->datacenter);
    free(m->seed_detail);
    free(m);
}

/* The version from a member's build tag ("1.15.4:7ab3b4ba" -> "1.15.4"), or NULL. */
static char *
version_from_build(const char *build)
{
    if (!build || build[0] == '\0') {
        return NULL;
    }
    const char *colon = strchr(build, ':');
    return colon ? xstrndup(build, (size_t)(colon - build)) : xstrdup(build);
}

static int
raft_node_known(const char *node)
{
    return node[0] != '\0' && strcmp(node, "(unknown)") != 0;
}

/* Finds the member for a raft entry: by node name, then by the member's id tag, then by a
 * server member's address and port. */
static struct member *
member_for_raft(struct parsed *p, const char *node, const char *id, const char *address)
{
    if (raft_node_known(node)) {
        for (size_t i = 0; i < p->n_mem; i++) {
            if (strcmp(p->mem[i].name, node) == 0) {
                return &p->mem[i];
            }
        }
    }
    if (id[0] != '\0') {
        for (size_t i = 0; i < p->n_mem; i++) {
            if (p->mem[i].id && strcmp(p->mem[i].id, id) == 0) {
                return &p->mem[i];
            }
        }
    }
    for (size_t i = 0; i < p->n_mem; i++) {
        struct member *m = &p->mem[i];
        if (strcmp(m->role, "consul") != 0 || !host_equal(m->addr, address)) {
            continue;
        }
        const char *colon = strrchr(address, ':');
        if (!m->port || !colon || strcmp(colon + 1, m->port) == 0) {
            return m;
        }
    }
    return NULL;
}

static void
server_from_member(struct cluster_server *s, const struct member *m)
{
    s->in_members = 1;
    s->serf_status = m->status;
    s->version = version_from_build(m->build);
}

static struct cluster_server *
servers_push(struct cluster_model *m, size_t *cap)
{
    if (m->n_servers == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        m->servers = xrealloc(m->servers, *cap * sizeof(*m->servers));
    }
    struct cluster_server *s = &m->servers[m->n_servers++];
    memset(s, 0, sizeof(*s));
    s->serf_status = CLUSTER_SERF_UNKNOWN;
    s->exporter_consul_up = s->exporter_raft_peers = NAN;
    s->exporter_raft_leader = s->exporter_serf_lan_members = NAN;
    return s;
}

/* Adds the raft entries, then the server members that raft does not list (unless they
 * have left: a server that left cleanly stays in serf for a while and is not a problem). */
static void
servers_collect(struct cluster_model *m, struct parsed *p)
{
    size_t cap = 0;
    const cJSON *servers = cJSON_GetObjectItemCaseSensitive(p->raft, "Servers");
    const cJSON *it;
    cJSON_ArrayForEach(it, servers)
    {
        if (!cJSON_IsObject(it)) {
            continue;
        }
        const char *node = json_get_str(it, "Node", "");
        const char *id = json_get_str(it, "ID", "");
        const char *address = json_get_str(it, "Address", "");
        struct cluster_server *s = servers_push(m, &cap);
        s->in_raft = 1;
        s->id = xstrdup(id);
        s->address = xstrdup(address);
        s->voter = json_get_bool(it, "Voter", 0);
        s->leader = json_get_bool(it, "Leader", 0);
        s->has_last_index = json_get_u64(it, "LastIndex", &s->last_index);
        struct member *mem = member_for_raft(p, node, id, address);
        if (mem) {
            mem->used = 1;
            server_from_member(s, mem);
            s->node = xstrdup(raft_node_known(node) ? node : mem->name);
        } else {
            s->node = xstrdup(node[0] ? node : "(unknown)");
        }
    }
    for (size_t i = 0; i < p->n_mem; i++) {
        const struct member *mem = &p->mem[i];
        if (mem->used || strcmp(mem->role, "consul") != 0 || mem->status == CLUSTER_SERF_LEFT) {
            continue;
        }
        struct cluster_server *s = servers_push(m, &cap);
        server_from_member(s, mem);
        s->node = xstrdup(mem->name);
        s->id = xstrdup(mem->id ? mem->id : "");
        if (mem->port && mem->port[0] && strchr(mem->addr, ':')) {
            s->address = xasprintf("[%s]:%s", mem->addr, mem->port);
        } else if (mem->port && mem->port[0]) {
            s->address = xasprintf("%s:%s", mem->addr, mem->port);
        } else {
            s->address = xstrdup(mem->addr);
        }
    }
}

/* Formats an autopilot LastContact: a duration string as is, a number of ns as "Nms". */
static char *
last_contact_text(const cJSON *v)
{
    if (cJSON_IsString(v) && v->valuestring) {
        return xstrdup(v->valuestring);
    }
    if (cJSON_IsNumber(v) && isfinite(v->valuedouble)) {
        return xasprintf("%gms", v->valuedouble / 1e6);
    }
    return NULL;
}

/* Joins autopilot's per-server health by ID, falling back to Name. */
static void
servers_join_autopilot(struct cluster_model *m, const cJSON *autopilot)
{
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(autopilot, "Servers");
    for (size_t i = 0; i < m->n_servers; i++) {
        struct cluster_server *s = &m->servers[i];
        const cJSON *found = NULL, *it;
        cJSON_ArrayForEach(it, list)
        {
            const char *id = json_get_str(it, "ID", "");
            if (s->id[0] && strcmp(id, s->id) == 0) {
                found = it;
                break;
            }
        }
        if (!found) {
            cJSON_ArrayForEach(it, list)
            {
                if (strcmp(json_get_str(it, "Name", ""), s->node) == 0) {
                    found = it;
                    break;
                }
            }
        }
        if (!found) {
            continue;
        }
        s->autopilot_known = 1;
        s->autopilot_healthy = json_get_bool(found, "Healthy", 0);
        s->last_contact = last_contact_text(cJSON_GetObjectItemCaseSensitive(found, "LastContact"));
        uint64_t li;
        if (json_get_u64(found, "LastIndex", &li)) {
            s->has_last_index = 1;
            s->last_index = li;
        }
        const char *vsn = json_get_str(found, "Version", NULL);
        if (!s->version && vsn && vsn[0]) {
            s->version = xstrdup(vsn);
        }
    }
}

static void
servers_join_checks(struct cluster_model *m, const struct parsed *p)
{
    for (size_t i = 0; i < m->n_servers; i++) {
        struct cluster_server *s = &m->servers[i];
        for (size_t k = 0; k < p->n_checks; k++) {
            if (strcmp(p->checks[k].node, s->node) == 0 && p->checks[k].status > s->check_status) {
                s->check_status = p->checks[k].status;
            }
        }
    }
}

static void
servers_join_exporters(struct cluster_model *m, const struct cluster_input *in)
{
    for (size_t i = 0; i < m->n_servers; i++) {
        struct cluster_server *s = &m->servers[i];
        for (size_t k = 0; k < in->n_exporters && in->exporters; k++) {
            const struct cluster_exporter *e = &in->exporters[k];
            if (!e->address || !host_equal(e->address, s->address)) {
                continue;
            }
            s->has_exporter = 1;
            s->exporter_reachable = e->reachable;
            s->exporter_consul_up = e->consul_up;
            s->exporter_raft_peers = e->raft_peers;
            s->exporter_raft_leader = e->raft_leader;
            s->exporter_serf_lan_members = e->serf_lan_members;
            break;
        }
    }
}

static int
server_cmp(const void *a, const void *b)
{
    const struct cluster_server *x = a, *y = b;
    int c = strcmp(x->node, y->node);
    if (c == 0) {
        c = strcmp(x->address, y->address);
    }
    if (c == 0) {
        c = strcmp(x->id, y->id);
    }
    return c;
}

static int
client_cmp(const void *a, const void *b)
{
    const struct cluster_client *x = a, *y = b;
    int c = strcmp(x->node, y->node);
    return c ? c : strcmp(x->address, y->address);
}

static void
clients_collect(struct cluster_model *m, const struct parsed *p)
{
    m->clients = xcalloc(p->n_mem ? p->n_mem : 1, sizeof(*m->clients));
    for (size_t i = 0; i < p->n_mem; i++) {
        const struct member *mem = &p->mem[i];
        if (strcmp(mem->role, "node") != 0) {
            continue;
        }
        struct cluster_client *c = &m->clients[m->n_clients++];
        c->node = xstrdup(mem->name);
        c->address = xstrdup(mem->addr);
        c->serf_status = mem->status;
        switch (mem->status) {
        case CLUSTER_SERF_ALIVE:
            m->clients_alive++;
            break;
        case CLUSTER_SERF_FAILED:
            m->clients_failed++;
            break;
        case CLUSTER_SERF_LEFT:
            m->clients_left++;
            break;
        case CLUSTER_SERF_LEAVING:
            m->clients_leaving++;
            break;
        case CLUSTER_SERF_NONE:
            m->clients_none++;
            break;
        default:
            break;
        }
    }
    qsort(m->clients, m->n_clients, sizeof(*m->clients), client_cmp);
}

/* Sets leader_index: the first raft entry marked leader, else the server whose address
 * matches leader_addr (exactly, then by host). Returns the number of raft leader entries. */
static int
leader_find(struct cluster_model *m, const char *leader_addr)
{
    int raft_leaders = 0;
    m->leader_index = -1;
    for (size_t i = 0; i < m->n_servers; i++) {
        if (m->servers[i].in_raft && m->servers[i].leader) {
            if (raft_leaders++ == 0) {
                m->leader_index = (int)i;
            }
        }
    }
    if (m->leader_index >= 0 || !leader_addr || leader_addr[0] == '\0') {
        return raft_leaders;
    }
    for (int pass = 0; pass < 2 && m->leader_index < 0; pass++) {
        for (size_t i = 0; i < m->n_servers; i++) {
            const char *a = m->servers[i].address;
            if (pass == 0 ? strcmp(a, leader_addr) == 0 : host_equal(a, leader_addr)) {
                m->leader_index = (int)i;
                m->servers[i].leader = 1;
                break;
            }
        }
    }
    return raft_leaders;
}

static void
quorum_compute(struct cluster_model *m, const cJSON *autopilot)
{
    int alive_voters = 0;
    m->voters = 0;
    for (size_t i = 0; i < m->n_servers; i++) {
        const struct cluster_server *s = &m->servers[i];
        if (s->in_raft && s->voter) {
            m->voters++;
            alive_voters += s->serf_status == CLUSTER_SERF_ALIVE;
        }
    }
    m->quorum_size = m->voters ? m->voters / 2 + 1 : 0;
    if (autopilot) {
        double ft = json_get_num(autopilot, "FailureTolerance", 0);
        m->failure_tolerance = ft >= 0 && ft <= 1e6 ? (int)ft : 0;
    } else {
        int ft = alive_voters - m->quorum_size;
        m->failure_tolerance = ft > 0 ? ft : 0;
    }
    /* A cluster without a leader has already lost quorum: it tolerates nothing, whatever an
     * autopilot answer from before the loss still says. */
    if (m->leader_index < 0 && (m->raft_known || m->leader_addr_known)) {
        m->failure_tolerance = 0;
    }
}

static void
servers_judge(struct cluster_model *m)
{
    for (size_t i = 0; i < m->n_servers; i++) {
        struct cluster_server *s = &m->servers[i];
        s->healthy = s->serf_status == CLUSTER_SERF_ALIVE && s->in_raft && s->voter &&
                     (!m->autopilot_known || s->autopilot_healthy) &&
                     s->check_status != CLUSTER_CHECK_CRITICAL &&
                     s->check_status != CLUSTER_CHECK_MAINTENANCE;
    }
}

/* The seed document's status check: every running server in raft, exactly one leader. */
static void
seed_check(struct cluster_model *m, const struct parsed *p, int raft_leaders)
{
    struct buf missing;
    buf_init(&missing, 512);
    size_t expected = 0, listed = 0, n_missing = 0;
    for (size_t i = 0; i < p->n_mem; i++) {
        const struct member *mem = &p->mem[i];
        if (strcmp(mem->role, "consul") != 0 || mem->status == CLUSTER_SERF_LEFT) {
            continue;
        }
        expected++;
        if (mem->used) {
            listed++;
        } else {
            buf_printf(&missing, "%s%s", n_missing++ ? ", " : "", mem->name);
        }
    }
    const char *leader = m->leader_index >= 0 ? m->servers[m->leader_index].node : NULL;
    char leader_text[160];
    if (raft_leaders == 1) {
        snprintf(leader_text, sizeof(leader_text), "leader %s", leader);
    } else if (raft_leaders == 0) {
        snprintf(leader_text, sizeof(leader_text), "no leader");
    } else {
        snprintf(leader_text, sizeof(leader_text), "%d raft entries claim to be leader",
                 raft_leaders);
    }
    size_t raft_entries = 0;
    for (size_t i = 0; i < m->n_servers; i++) {
        raft_entries += m->servers[i].in_raft;
    }
    if (!m->raft_known) {
        m->seed_ok = 0;
        m->seed_detail = xasprintf("Raft configuration unavailable (Consul refuses it when "
                                   "there is no leader); %zu server%s known from the members",
                                   m->n_servers, m->n_servers == 1 ? "" : "s");
    } else if (!m->members_known) {
        m->seed_ok = 0;
        m->seed_detail = xasprintf("%zu server%s in raft, %s; member list unavailable, so "
                                   "servers missing from raft cannot be seen",
                                   raft_entries, raft_entries == 1 ? "" : "s", leader_text);
    } else {
        m->seed_ok = n_missing == 0 && raft_leaders == 1;
        if (n_missing) {
            m->seed_detail = xasprintf("%zu of %zu servers in raft (missing: %s), %s", listed,
                                       expected, missing.data, leader_text);
        } else {
            m->seed_detail =
                xasprintf("%zu of %zu servers in raft, %s", listed, expected, leader_text);
        }
    }
    buf_free(&missing);
}

static void
verdict(struct cluster_model *m)
{
    int ok = m->reachable && m->seed_ok && m->n_servers > 0 &&
             (!m->autopilot_known || m->autopilot_healthy);
    for (size_t i = 0; ok && i < m->n_servers; i++) {
        ok = m->servers[i].healthy;
    }
    m->healthy = ok;
}

struct problems {
    struct cluster_model *m;
    size_t cap;
};

static void
problem_add(struct problems *ps, enum cluster_problem_code code, const char *node, char *message)
{
    struct cluster_model *m = ps->m;
    if (m->n_problems == ps->cap) {
        ps->cap = ps->cap ? ps->cap * 2 : 8;
        m->problems = xrealloc(m->problems, ps->cap * sizeof(*m->problems));
    }
    struct cluster_problem *pr = &m->problems[m->n_problems++];
    pr->code = code;
    pr->message = message;
    pr->node = node ? xstrdup(node) : NULL;
}

static const char *
ordinal(int n)
{
    static const char *const words[] = {"zeroth", "first",    "second",  "third",  "fourth",
                                        "fifth",  "sixth",    "seventh", "eighth", "ninth",
                                        "tenth",  "eleventh", "twelfth"};
    return n >= 0 && (size_t)n < ARRAY_LEN(words) ? words[n] : "further";
}

static void
problems_servers(struct problems *ps)
{
    struct cluster_model *m = ps->m;
    for (size_t i = 0; i < m->n_servers; i++) {
        const struct cluster_server *s = &m->servers[i];
        if (s->in_raft && !s->voter) {
            problem_add(
                ps, CLUSTER_P_SERVER_NOT_VOTER, s->node,
                xasprintf("Server %s is in the raft configuration but is not a voter.", s->node));
        }
    }
    for (size_t i = 0; i < m->n_servers; i++) {
        const struct cluster_server *s = &m->servers[i];
        if (s->serf_status == CLUSTER_SERF_FAILED) {
            problem_add(
                ps, CLUSTER_P_SERVER_FAILED, s->node,
                xasprintf("Server %s has failed: the other members cannot reach it.", s->node));
        }
    }
    for (size_t i = 0; i < m->n_servers; i++) {
        const struct cluster_server *s = &m->servers[i];
        if (s->serf_status == CLUSTER_SERF_LEFT || s->serf_status == CLUSTER_SERF_LEAVING) {
            problem_add(ps, CLUSTER_P_SERVER_LEFT, s->node,
                        xasprintf("Server %s %s the cluster.", s->node,
                                  s->serf_status == CLUSTER_SERF_LEFT ? "has left" : "is leaving"));
        }
    }
    for (size_t i = 0; m->members_known && i < m->n_servers; i++) {
        const struct cluster_server *s = &m->servers[i];
        if (s->in_raft && !s->in_members) {
            problem_add(ps, CLUSTER_P_RAFT_PEER_UNKNOWN, raft_node_known(s->node) ? s->node : NULL,
                        xasprintf("Raft peer %s (ID %s, address %s) is not among the cluster "
                                  "members.",
                                  s->node, s->id[0] ? s->id : "unknown",
                                  s->address[0] ? s->address : "unknown"));
        }
    }
    for (size_t i = 0; m->raft_known && i < m->n_servers; i++) {
        const struct cluster_server *s = &m->servers[i];
        if (!s->in_raft) {
            problem_add(
                ps, CLUSTER_P_SERVER_NOT_IN_RAFT, s->node,
                xasprintf("Server %s is a member but is not in the raft configuration.", s->node));
        }
    }
}

/* server_missing: an expected server (from the inventory) that raft does not list, or whose
 * serf member has left. Nothing is said when neither raft nor the members are known. */
static void
problems_expected(struct problems *ps, const struct cluster_input *in, const struct parsed *p)
{
    const struct cluster_model *m = ps->m;
    for (size_t k = 0; in->expected && k < in->n_expected; k++) {
        const struct cluster_expected *e = &in->expected[k];
        if (!e->name || !e->address || !e->address[0]) {
            continue;
        }
        int in_raft = 0;
        for (size_t i = 0; i < m->n_servers; i++) {
            const struct cluster_server *s = &m->servers[i];
            in_raft |= s->in_raft && cluster_host_equal(s->address, e->address);
        }
        int left = 0;
        for (size_t i = 0; i < p->n_mem; i++) {
            const struct member *mem = &p->mem[i];
            left |= strcmp(mem->role, "consul") == 0 && mem->status == CLUSTER_SERF_LEFT &&
                    cluster_host_equal(mem->addr, e->address);
        }
        if (m->raft_known && !in_raft) {
            problem_add(ps, CLUSTER_P_SERVER_MISSING, e->name,
                        xasprintf("Server %s (%s) should run as a server per the inventory but "
                                  "is not in the raft configuration%s.",
                                  e->name, e->address, left ? ": it has left the cluster" : ""));
        } else if (m->members_known && left) {
            problem_add(ps, CLUSTER_P_SERVER_MISSING, e->name,
                        xasprintf("Server %s (%s) should run as a server per the inventory but "
                                  "has left the cluster.",
                                  e->name, e->address));
        }
    }
}

static void
problems_checks(struct problems *ps, const struct parsed *p)
{
    size_t listed = 0;
    for (size_t k = 0; k < p->n_checks && listed < CLUSTER_MAX_CHECK_PROBLEMS; k++) {
        const struct check *c = &p->checks[k];
        if (c->status != CLUSTER_CHECK_CRITICAL && c->status != CLUSTER_CHECK_MAINTENANCE) {
            continue;
        }
        char *msg;
        if (c->maintenance && c->service_id[0]) {
            msg = xasprintf("Service %s on node %s is in maintenance mode.",
                            c->service_name[0] ? c->service_name : c->service_id, c->node);
        } else if (c->maintenance) {
            msg = xasprintf("Node %s is in maintenance mode.", c->node);
        } else if (c->service_id[0]) {
            msg = xasprintf("Check \"%s\" of service %s on node %s is critical.", c->name,
                            c->service_name[0] ? c->service_name : c->service_id, c->node);
        } else {
            msg = xasprintf("Node check \"%s\" on node %s is critical.", c->name, c->node);
        }
        problem_add(ps, CLUSTER_P_CHECK_CRITICAL, c->node[0] ? c->node : NULL, msg);
        listed++;
    }
}

static void
problems_collect(struct cluster_model *m, const struct parsed *p, const struct cluster_input *in)
{
    struct problems ps = {m, 0};
    if (!m->reachable) {
        problem_add(&ps, CLUSTER_P_CONSUL_UNREACHABLE, NULL,
                    xstrdup("No Consul agent could be reached; this is the last known state."));
    }
    int leader_info = m->raft_known || m->leader_addr_known;
    if (m->leader_index < 0 && leader_info) {
        problem_add(&ps, CLUSTER_P_NO_LEADER, NULL,
                    xstrdup("The cluster has no raft leader, so Consul cannot serve writes "
                            "or consistent reads."));
    }
    problems_servers(&ps);
    problems_expected(&ps, in, p);
    int count = m->raft_known ? m->voters : (int)m->n_servers;
    if (count > 0 && count % 2 == 0) {
        int ft = count / 2 - 1;
        problem_add(&ps, CLUSTER_P_EVEN_SERVER_COUNT, NULL,
                    xasprintf("%d servers tolerate %d failure%s, the same as %d; add a %s or "
                              "remove one",
                              count, ft, ft == 1 ? "" : "s", count - 1, ordinal(count + 1)));
    }
    if (m->failure_tolerance < 1 && m->voters >= 1 && m->leader_index >= 0) {
        problem_add(&ps, CLUSTER_P_LOW_FAILURE_TOLERANCE, NULL,
                    xasprintf("Failure tolerance is %d: losing one more voting server would "
                              "lose quorum (%d of %d voters needed).",
                              m->failure_tolerance, m->quorum_size, m->voters));
    }
    if (m->autopilot_known) {
        size_t before = m->n_problems;
        for (size_t i = 0; i < m->n_servers; i++) {
            const struct cluster_server *s = &m->servers[i];
            if (s->serf_status == CLUSTER_SERF_ALIVE && s->in_raft && !s->autopilot_healthy) {
                problem_add(&ps, CLUSTER_P_AUTOPILOT_UNHEALTHY, s->node,
                            xasprintf(s->autopilot_known
                                          ? "Autopilot reports server %s as unhealthy."
                                          : "Autopilot does not report on server %s.",
                                      s->node));
            }
        }
        if (!m->autopilot_healthy && m->n_problems == before) {
            problem_add(&ps, CLUSTER_P_AUTOPILOT_UNHEALTHY, NULL,
                        xstrdup("Autopilot reports the cluster as unhealthy."));
        }
    }
    problems_checks(&ps, p);
}

int
cluster_model_build(const struct cluster_input *in, struct cluster_model **out,
                    struct cluster_error *err)
{
    struct parsed p;
    struct cluster_model *m = NULL;
    memset(&p, 0, sizeof(p));
    int rc = CLUSTER_BAD_JSON;
    *out = NULL;
    if (parse_input(in->raft_json, "raft_json (/v1/operator/raft/configuration)", 0, &p.raft,
                    err) != 0 ||
        parse_input(in->members_json, "members_json (/v1/agent/members)", 1, &p.members, err) !=
            0 ||
        parse_input(in->autopilot_json, "autopilot_json (/v1/operator/autopilot/health)", 0,
                    &p.autopilot, err) != 0 ||
        parse_input(in->health_json, "health_json (/v1/health/state/any)", 1, &p.health, err) !=
            0) {
        goto out;
    }
    m = xcalloc(1, sizeof(*m));
    m->reachable = in->reachable;
    m->updated_at_ms = in->updated_at_ms;
    m->age_ms = in->now_ms > in->updated_at_ms ? in->now_ms - in->updated_at_ms : 0;
    m->raft_known = p.raft != NULL;
    m->members_known = p.members != NULL;
    m->autopilot_known = p.autopilot != NULL;
    m->autopilot_healthy = m->autopilot_known && json_get_bool(p.autopilot, "Healthy", 0);
    m->leader_addr_known = in->leader_addr != NULL;

    members_collect(&p, in->datacenter);
    if (p.health) {
        checks_collect(p.health, &p.checks, &p.n_checks);
    }
    if (in->datacenter) {
        m->datacenter = xstrdup(in->datacenter);
    } else {
        for (size_t i = 0; i < p.n_mem && !m->datacenter; i++) {
            if (strcmp(p.mem[i].role, "consul") == 0 && p.mem[i].dc) {
                m->datacenter = xstrdup(p.mem[i].dc);
            }
        }
    }
    servers_collect(m, &p);
    if (p.autopilot) {
        servers_join_autopilot(m, p.autopilot);
    }
    servers_join_checks(m, &p);
    servers_join_exporters(m, in);
    if (m->n_servers > 1) {
        qsort(m->servers, m->n_servers, sizeof(*m->servers), server_cmp);
    }
    int raft_leaders = leader_find(m, in->leader_addr);
    quorum_compute(m, p.autopilot);
    servers_judge(m);
    clients_collect(m, &p);
    seed_check(m, &p, raft_leaders);
    verdict(m);
    problems_collect(m, &p, in);
    *out = m;
    rc = CLUSTER_OK;
out:
    parsed_free(&p);
    return rc;
}

int
cluster_model_has_problem(const struct cluster_model *m, enum cluster_problem_code code)
{
    for (size_t i = 0; m && i < m->n_problems; i++) {
        if (m->problems[i].code == code) {
            return 1;
        }
    }
    return 0;
}

int
cluster_model_match(const struct cluster_model *m, const char *address, struct cluster_match *out)
{
    memset(out, 0, sizeof(*out));
    out->serf_status = CLUSTER_SERF_UNKNOWN;
    for (size_t i = 0; m && address && i < m->n_servers; i++) {
        const struct cluster_server *s = &m->servers[i];
        if (!cluster_host_equal(s->address, address)) {
            continue;
        }
        out->server = 1;
        out->member = s->in_members;
        out->in_raft = s->in_raft;
        out->voter = s->in_raft && s->voter;
        out->leader = s->leader;
        out->serf_status = s->in_members ? s->serf_status : CLUSTER_SERF_UNKNOWN;
        out->node = s->node;
        return 1;
    }
    for (size_t i = 0; m && address && i < m->n_clients; i++) {
        const struct cluster_client *c = &m->clients[i];
        if (cluster_host_equal(c->address, address)) {
            out->member = 1;
            out->serf_status = c->serf_status;
            out->node = c->node;
            return 1;
        }
    }
    return 0;
}

static void
add_str_or_null(cJSON *obj, const char *key, const char *v)
{
    if (v) {
        cJSON_AddStringToObject(obj, key, v);
    } else {
        cJSON_AddNullToObject(obj, key);
    }
}

static void
add_num_or_null(cJSON *obj, const char *key, double v)
{
    if (isfinite(v)) {
        cJSON_AddNumberToObject(obj, key, v);
    } else {
        cJSON_AddNullToObject(obj, key);
    }
}

static cJSON *
server_to_json(const struct cluster_server *s)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "node", s->node);
    cJSON_AddStringToObject(o, "id", s->id);
    cJSON_AddStringToObject(o, "address", s->address);
    cJSON_AddBoolToObject(o, "voter", s->voter);
    cJSON_AddBoolToObject(o, "leader", s->leader);
    cJSON_AddStringToObject(o, "serf_status", cluster_serf_name(s->serf_status));
    cJSON_AddBoolToObject(o, "healthy", s->healthy);
    add_str_or_null(o, "version", s->version);
    add_str_or_null(o, "last_contact", s->last_contact);
    if (s->has_last_index) {
        cJSON_AddNumberToObject(o, "last_index", (double)s->last_index);
    } else {
        cJSON_AddNullToObject(o, "last_index");
    }
    cJSON_AddStringToObject(o, "check_status", cluster_check_name(s->check_status));
    if (s->has_exporter) {
        cJSON *e = cJSON_AddObjectToObject(o, "exporter");
        cJSON_AddBoolToObject(e, "reachable", s->exporter_reachable);
        add_num_or_null(e, "consul_up", s->exporter_consul_up);
        add_num_or_null(e, "raft_peers", s->exporter_raft_peers);
        add_num_or_null(e, "raft_leader", s->exporter_raft_leader);
        add_num_or_null(e, "serf_lan_members", s->exporter_serf_lan_members);
    } else {
        cJSON_AddNullToObject(o, "exporter");
    }
    return o;
}

cJSON *
cluster_model_to_json(const struct cluster_model *m)
{
    cJSON *o = cJSON_CreateObject();
    char ts[40];
    time_format_rfc3339(m->updated_at_ms > 0 ? m->updated_at_ms : 0, ts, sizeof(ts));
    cJSON_AddBoolToObject(o, "reachable", m->reachable);
    add_str_or_null(o, "datacenter", m->datacenter);
    cJSON_AddStringToObject(o, "updated_at", ts);
    cJSON_AddNumberToObject(o, "age_ms", (double)m->age_ms);
    if (m->leader_index >= 0) {
        const struct cluster_server *l = &m->servers[m->leader_index];
        cJSON *lo = cJSON_AddObjectToObject(o, "leader");
        cJSON_AddStringToObject(lo, "node", l->node);
        cJSON_AddStringToObject(lo, "address", l->address);
    } else {
        cJSON_AddNullToObject(o, "leader");
    }
    cJSON *servers = cJSON_AddArrayToObject(o, "servers");
    for (size_t i = 0; i < m->n_servers; i++) {
        cJSON_AddItemToArray(servers, server_to_json(&m->servers[i]));
    }
    cJSON *clients = cJSON_AddArrayToObject(o, "clients");
    for (size_t i = 0; i < m->n_clients; i++) {
        cJSON *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "node", m->clients[i].node);
        cJSON_AddStringToObject(c, "address", m->clients[i].address);
        cJSON_AddStringToObject(c, "serf_status", cluster_serf_name(m->clients[i].serf_status));
        cJSON_AddItemToArray(clients, c);
    }
    cJSON *counts = cJSON_AddObjectToObject(o, "client_counts");
    cJSON_AddNumberToObject(counts, "alive", (double)m->clients_alive);
    cJSON_AddNumberToObject(counts, "failed", (double)m->clients_failed);
    cJSON_AddNumberToObject(counts, "left", (double)m->clients_left);
    cJSON_AddNumberToObject(counts, "leaving", (double)m->clients_leaving);
    cJSON_AddNumberToObject(counts, "none", (double)m->clients_none);
    cJSON *q = cJSON_AddObjectToObject(o, "quorum");
    cJSON_AddNumberToObject(q, "voters", m->voters);
    cJSON_AddNumberToObject(q, "size", m->quorum_size);
    cJSON_AddNumberToObject(q, "failure_tolerance", m->failure_tolerance);
    cJSON *seed = cJSON_AddObjectToObject(o, "seed_check");
    cJSON_AddBoolToObject(seed, "ok", m->seed_ok);
    cJSON_AddStringToObject(seed, "detail", m->seed_detail);
    cJSON_AddBoolToObject(o, "healthy", m->healthy);
    cJSON *problems = cJSON_AddArrayToObject(o, "problems");
    for (size_t i = 0; i < m->n_problems; i++) {
        const struct cluster_problem *pr = &m->problems[i];
        cJSON *po = cJSON_CreateObject();
        cJSON_AddStringToObject(po, "code", cluster_problem_code_name(pr->code));
        cJSON_AddStringToObject(po, "message", pr->message);
        if (pr->node) {
            cJSON_AddStringToObject(po, "node", pr->node);
        }
        cJSON_AddItemToArray(problems, po);
    }
    return o;
}

void
cluster_exporter_fill(struct cluster_exporter *e, const char *address, int reachable,
                      const struct prom_sample *s, size_t n)
{
    e->address = address;
    e->reachable = reachable;
    e->consul_up = prom_value(s, n, "consul_up", NULL, NULL);
    e->raft_peers = prom_value(s, n, "consul_raft_peers", NULL, NULL);
    e->raft_leader = prom_value(s, n, "consul_raft_leader", NULL, NULL);
    e->serf_lan_members = prom_value(s, n, "consul_serf_lan_members", NULL, NULL);
}

static void
add_str_field(cJSON *dst, const char *key, const cJSON *src, const char *src_key)
{
    cJSON_AddStringToObject(dst, key, json_get_str(src, src_key, ""));
}

cJSON *
cluster_health_to_json(const char *health_json, struct cluster_error *err)
{
    cJSON *arr = NULL;
    if (!health_json) {
        set_err(err, "health_json (/v1/health/state/any) is missing");
        return NULL;
    }
    if (parse_input(health_json, "health_json (/v1/health/state/any)", 1, &arr, err) != 0) {
        return NULL;
    }
    struct check *cs = NULL;
    size_t n = 0;
    checks_collect(arr, &cs, &n);
    cJSON *o = cJSON_CreateObject();
    cJSON *counts = cJSON_AddObjectToObject(o, "counts");
    size_t c_crit = 0, c_warn = 0, c_maint = 0, c_pass = 0;
    cJSON *checks = cJSON_AddArrayToObject(o, "checks");
    for (size_t i = 0; i < n; i++) {
        const struct check *c = &cs[i];
        c_maint += c->status == CLUSTER_CHECK_MAINTENANCE;
        c_crit += c->status == CLUSTER_CHECK_CRITICAL;
        c_warn += c->status == CLUSTER_CHECK_WARNING;
        c_pass += c->status == CLUSTER_CHECK_PASSING;
        cJSON *co = cJSON_CreateObject();
        cJSON_AddStringToObject(co, "node", c->node);
        cJSON_AddStringToObject(co, "check_id", c->check_id);
        cJSON_AddStringToObject(co, "name", c->name);
        cJSON_AddStringToObject(co, "status",
                                c->status == CLUSTER_CHECK_NONE ? c->status_raw
                                                                : cluster_check_name(c->status));
        add_str_field(co, "output", c->obj, "Output");
        add_str_field(co, "notes", c->obj, "Notes");
        cJSON_AddStringToObject(co, "service_id", c->service_id);
        cJSON_AddStringToObject(co, "service_name", c->service_name);
        cJSON *tags = cJSON_AddArrayToObject(co, "service_tags");
        const cJSON *t;
        cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(c->obj, "ServiceTags"))
        {
            if (cJSON_IsString(t) && t->valuestring) {
                cJSON_AddItemToArray(tags, cJSON_CreateString(t->valuestring));
            }
        }
        add_str_field(co, "type", c->obj, "Type");
        cJSON_AddItemToArray(checks, co);
    }
    cJSON_AddNumberToObject(counts, "critical", (double)c_crit);
    cJSON_AddNumberToObject(counts, "warning", (double)c_warn);
    cJSON_AddNumberToObject(counts, "maintenance", (double)c_maint);
    cJSON_AddNumberToObject(counts, "passing", (double)c_pass);
    free(cs);
    cJSON_Delete(arr);
    return o;
}
