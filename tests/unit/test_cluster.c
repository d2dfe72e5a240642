/* Unit tests for server/cluster.c: the model against the project's Consul response fixtures
 * (tests/fixtures/consul-api, in the documented shapes) and against scenarios built in the
 * same JSON shapes. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cluster.h"
#include "prom.h"
#include "util.h"

#define T_NOW 1767225600000LL /* 2026-01-01T00:00:00.000Z */

/* ---------- fixtures ---------- */

/* Reads tests/fixtures/consul-api/<name> under $CONSULATE_SRC (the repository root); the
 * caller frees. Fails the test when missing. */
static char *
fixture(const char *name)
{
    const char *src = getenv("CONSULATE_SRC");
    char *path = xasprintf("%s/tests/fixtures/consul-api/%s", src && *src ? src : ".", name);
    char *text = file_read_all(path, 1 << 20, NULL);
    if (!text) {
        fprintf(stderr, "cannot read fixture %s\n", path);
    }
    free(path);
    assert_non_null(text);
    return text;
}

/* ---------- scenario builder: emits raft / members / autopilot JSON ---------- */

enum { NOT_MEMBER = -1 };

struct tsrv {
    const char *name;
    int in_raft;
    int voter;
    int leader;
    int serf;       /* serf Status, or NOT_MEMBER */
    int ap_healthy; /* autopilot Healthy */
};

static char *
tsrv_ip(size_t i)
{
    return xasprintf("10.0.0.%zu", i + 1);
}

static char *
tsrv_id(size_t i)
{
    return xasprintf("0000000%zu-aaaa-bbbb-cccc-dddddddddddd", i + 1);
}

static char *
print_and_delete(cJSON *j)
{
    char *s = json_print(j);
    cJSON_Delete(j);
    return s;
}

/* Raft configuration, with the newer fields (ProtocolVersion, LastIndex) and an unknown one. */
static char *
build_raft(const struct tsrv *s, size_t n)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(root, "Servers");
    for (size_t i = 0; i < n; i++) {
        if (!s[i].in_raft) {
            continue;
        }
        char *ip = tsrv_ip(i), *id = tsrv_id(i), *addr = xasprintf("%s:8300", ip);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "ID", id);
        cJSON_AddStringToObject(o, "Node", s[i].name);
        cJSON_AddStringToObject(o, "Address", addr);
        cJSON_AddBoolToObject(o, "Leader", s[i].leader);
        cJSON_AddStringToObject(o, "ProtocolVersion", "3");
        cJSON_AddBoolToObject(o, "Voter", s[i].voter);
        cJSON_AddNumberToObject(o, "LastIndex", 1000);
        cJSON_AddStringToObject(o, "FutureField", "ignored");
        cJSON_AddItemToArray(arr, o);
        free(ip);
        free(id);
        free(addr);
    }
    cJSON_AddNumberToObject(root, "Index", 22);
    return print_and_delete(root);
}

static cJSON *
member_json(const char *name, const char *ip, const char *role, int status, const char *id)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "Name", name);
    cJSON_AddStringToObject(o, "Addr", ip);
    cJSON_AddNumberToObject(o, "Port", 8301);
    cJSON *tags = cJSON_AddObjectToObject(o, "Tags");
    cJSON_AddStringToObject(tags, "role", role);
    cJSON_AddStringToObject(tags, "dc", "dc1");
    cJSON_AddStringToObject(tags, "build", "1.15.4:7ab3b4ba");
    cJSON_AddStringToObject(tags, "vsn", "2");
    if (strcmp(role, "consul") == 0) {
        cJSON_AddStringToObject(tags, "port", "8300");
        cJSON_AddStringToObject(tags, "id", id);
    }
    cJSON_AddNumberToObject(o, "Status", status);
    cJSON_AddNumberToObject(o, "ProtocolMin", 1);
    cJSON_AddNumberToObject(o, "ProtocolMax", 5);
    cJSON_AddNumberToObject(o, "ProtocolCur", 2);
    cJSON_AddNumberToObject(o, "DelegateMin", 2);
    cJSON_AddNumberToObject(o, "DelegateMax", 5);
    cJSON_AddNumberToObject(o, "DelegateCur", 4);
    return o;
}

/* Members: the servers that are members, then n_clients clients k8s-node-<n>..1 (so the
 * model has to sort them) with the given statuses. */
static char *
build_members(const struct tsrv *s, size_t n, const int *client_status, size_t n_clients)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) {
        if (s[i].serf == NOT_MEMBER) {
            continue;
        }
        char *ip = tsrv_ip(i), *id = tsrv_id(i);
        cJSON_AddItemToArray(arr, member_json(s[i].name, ip, "consul", s[i].serf, id));
        free(ip);
        free(id);
    }
    for (size_t k = n_clients; k-- > 0;) {
        char *name = xasprintf("k8s-node-%zu", k + 1);
        char *ip = xasprintf("10.1.0.%zu", k + 1);
        cJSON_AddItemToArray(arr, member_json(name, ip, "node", client_status[k], NULL));
        free(name);
        free(ip);
    }
    return print_and_delete(arr);
}

static const char *
serf_text(int st)
{
    static const char *const names[] = {"none", "alive", "leaving", "left", "failed"};
    return st >= 0 && st <= 4 ? names[st] : "unknown";
}

static char *
build_autopilot(const struct tsrv *s, size_t n, int healthy, int ft)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddBoolToObject(root, "Healthy", healthy);
    cJSON_AddNumberToObject(root, "FailureTolerance", ft);
    cJSON *arr = cJSON_AddArrayToObject(root, "Servers");
    for (size_t i = 0; i < n; i++) {
        if (!s[i].in_raft) {
            continue;
        }
        char *ip = tsrv_ip(i), *id = tsrv_id(i), *addr = xasprintf("%s:8300", ip);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "ID", id);
        cJSON_AddStringToObject(o, "Name", s[i].name);
        cJSON_AddStringToObject(o, "Address", addr);
        cJSON_AddStringToObject(o, "SerfStatus", serf_text(s[i].serf));
        cJSON_AddStringToObject(o, "Version", "1.15.4");
        cJSON_AddBoolToObject(o, "Leader", s[i].leader);
        cJSON_AddStringToObject(o, "LastContact", s[i].leader ? "0s" : "12.5ms");
        cJSON_AddNumberToObject(o, "LastTerm", 3);
        cJSON_AddNumberToObject(o, "LastIndex", 4600 + (double)i);
        cJSON_AddBoolToObject(o, "Healthy", s[i].ap_healthy);
        cJSON_AddBoolToObject(o, "Voter", s[i].voter);
        cJSON_AddStringToObject(o, "StableSince", "2025-12-31T22:07:51Z");
        cJSON_AddItemToArray(arr, o);
        free(ip);
        free(id);
        free(addr);
    }
    return print_and_delete(root);
}

/* One health check in the /v1/health/state shape. */
static cJSON *
check_json(const char *node, const char *check_id, const char *name, const char *status,
           const char *service)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "Node", node);
    cJSON_AddStringToObject(o, "CheckID", check_id);
    cJSON_AddStringToObject(o, "Name", name);
    cJSON_AddStringToObject(o, "Status", status);
    cJSON_AddStringToObject(o, "Notes", "");
    cJSON_AddStringToObject(o, "Output", status);
    cJSON_AddStringToObject(o, "ServiceID", service ? service : "");
    cJSON_AddStringToObject(o, "ServiceName", service ? service : "");
    cJSON *tags = cJSON_AddArrayToObject(o, "ServiceTags");
    if (service) {
        cJSON_AddItemToArray(tags, cJSON_CreateString("v1"));
    }
    cJSON_AddStringToObject(o, "Type", service ? "http" : "");
    cJSON_AddStringToObject(o, "Namespace", "default");
    return o;
}

/* serfHealth passing for each server member. */
static char *
build_health_passing(const struct tsrv *s, size_t n)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) {
        cJSON_AddItemToArray(
            arr, check_json(s[i].name, "serfHealth", "Serf Health Status", "passing", NULL));
    }
    return print_and_delete(arr);
}

/* A built scenario: owns the JSON texts the input points at. */
struct scen {
    char *raft, *members, *autopilot, *health;
    struct cluster_input in;
};

static void
scen_make(struct scen *sc, const struct tsrv *s, size_t n, int with_autopilot, int ap_healthy,
          int ap_ft)
{
    static const int clients[] = {1, 1, 4, 3, 2, 0};
    memset(sc, 0, sizeof(*sc));
    sc->raft = build_raft(s, n);
    sc->members = build_members(s, n, clients, ARRAY_LEN(clients));
    sc->autopilot = with_autopilot ? build_autopilot(s, n, ap_healthy, ap_ft) : NULL;
    sc->health = build_health_passing(s, n);
    sc->in.reachable = 1;
    sc->in.updated_at_ms = T_NOW - 1500;
    sc->in.now_ms = T_NOW;
    sc->in.datacenter = "dc1";
    sc->in.raft_json = sc->raft;
    sc->in.members_json = sc->members;
    sc->in.autopilot_json = sc->autopilot;
    sc->in.health_json = sc->health;
    sc->in.leader_addr = "";
}

static void
scen_free(struct scen *sc)
{
    free(sc->raft);
    free(sc->members);
    free(sc->autopilot);
    free(sc->health);
}

static struct cluster_model *
build_ok(const struct cluster_input *in)
{
    struct cluster_model *m = NULL;
    struct cluster_error err = {{0}};
    int rc = cluster_model_build(in, &m, &err);
    if (rc != CLUSTER_OK) {
        fprintf(stderr, "build failed: %s\n", err.message);
    }
    assert_int_equal(rc, CLUSTER_OK);
    assert_non_null(m);
    return m;
}

/* Number of problems with code (and node, when node is not NULL). */
static size_t
problem_count(const struct cluster_model *m, enum cluster_problem_code code, const char *node)
{
    size_t c = 0;
    for (size_t i = 0; i < m->n_problems; i++) {
        const struct cluster_problem *p = &m->problems[i];
        if (p->code == code && (!node || (p->node && strcmp(p->node, node) == 0))) {
            c++;
        }
    }
    return c;
}

static const struct cluster_server *
server_named(const struct cluster_model *m, const char *node)
{
    for (size_t i = 0; i < m->n_servers; i++) {
        if (strcmp(m->servers[i].node, node) == 0) {
            return &m->servers[i];
        }
    }
    fail_msg("no server %s", node);
    return NULL;
}

/* Problems must be listed in the order of their codes. */
static void
assert_problem_order(const struct cluster_model *m)
{
    for (size_t i = 1; i < m->n_problems; i++) {
        assert_true(m->problems[i - 1].code <= m->problems[i].code);
    }
    for (size_t i = 0; i < m->n_problems; i++) {
        assert_non_null(m->problems[i].message);
        assert_true(strlen(m->problems[i].message) > 10);
    }
}

static const struct tsrv four_healthy[] = {
    {"consul-1", 1, 1, 1, 1, 1},
    {"consul-2", 1, 1, 0, 1, 1},
    {"consul-3", 1, 1, 0, 1, 1},
    {"consul-4", 1, 1, 0, 1, 1},
};

/* ---------- fixtures ---------- */

/* The fixtures describe one site, sh1 (tests/fixtures/README.md): four servers, consul-2 the
 * leader, consul-4 a non-voter, three client agents of which k8s-node-3 has failed. */
#define ID_C1 "d348e403-e9cb-4476-867d-bb4420e974d1"
#define ID_C2 "094163dc-78a4-4321-9854-d7810ce86eb2"
#define ID_C4 "5fdf2016-1662-458c-994c-beec8273c89e"

/* Fixture text with the element of its array (the root, or the member key of the root)
 * whose string field equals value removed. The caller frees. */
static char *
fixture_without(const char *name, const char *key, const char *field, const char *value)
{
    char *text = fixture(name);
    cJSON *root = cJSON_Parse(text);
    assert_non_null(root);
    cJSON *arr = key ? cJSON_GetObjectItemCaseSensitive(root, key) : root;
    assert_true(cJSON_IsArray(arr));
    int found = -1, i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        if (strcmp(json_get_str(e, field, ""), value) == 0) {
            found = i;
        }
        i++;
    }
    assert_true(found >= 0);
    cJSON_DeleteItemFromArray(arr, found);
    free(text);
    return print_and_delete(root);
}

static void
test_fixture_raft(void **state)
{
    (void)state;
    char *raft = fixture("v1_operator_raft_configuration.json");
    struct cluster_input in = {
        .reachable = 1, .updated_at_ms = T_NOW, .now_ms = T_NOW, .raft_json = raft};
    struct cluster_model *m = build_ok(&in);
    assert_int_equal(m->n_servers, 4);
    assert_string_equal(m->servers[0].node, "consul-1");
    assert_string_equal(m->servers[1].node, "consul-2");
    assert_string_equal(m->servers[2].node, "consul-3");
    assert_string_equal(m->servers[3].node, "consul-4");
    assert_string_equal(m->servers[0].id, ID_C1);
    assert_string_equal(m->servers[1].id, ID_C2);
    assert_string_equal(m->servers[3].id, ID_C4);
    assert_string_equal(m->servers[1].address, "10.20.0.12:8300");
    assert_int_equal(m->leader_index, 1);
    assert_true(m->servers[1].leader);
    assert_false(m->servers[0].leader);
    assert_false(m->servers[3].voter);
    assert_int_equal(m->voters, 3);
    assert_int_equal(m->quorum_size, 2);
    /* No members: no serf status, so no healthy voters and no tolerance. */
    assert_int_equal(m->servers[0].serf_status, CLUSTER_SERF_UNKNOWN);
    assert_int_equal(m->failure_tolerance, 0);
    assert_false(m->seed_ok);
    assert_non_null(strstr(m->seed_detail, "member list unavailable"));
    assert_string_equal(m->seed_detail, "4 servers in raft, leader consul-2; member list "
                                        "unavailable, so servers missing from raft cannot be seen");
    assert_false(m->healthy);
    assert_int_equal(problem_count(m, CLUSTER_P_NO_LEADER, NULL), 0);
    assert_int_equal(problem_count(m, CLUSTER_P_RAFT_PEER_UNKNOWN, NULL), 0);
    assert_int_equal(problem_count(m, CLUSTER_P_LOW_FAILURE_TOLERANCE, NULL), 1);
    assert_int_equal(problem_count(m, CLUSTER_P_SERVER_NOT_VOTER, NULL), 1);
    assert_int_equal(problem_count(m, CLUSTER_P_SERVER_NOT_VOTER, "consul-4"), 1);
    assert_int_equal(problem_count(m, CLUSTER_P_EVEN_SERVER_COUNT, NULL), 0); /* 3 voters */
    assert_problem_order(m);
    cluster_model_free(m);
    free(raft);
}

static void
test_fixture_members(void **state)
{
    (void)state;
    char *members = fixture("v1_agent_members.json");
    char *leader_text = fixture("v1_status_leader.json");
    cJSON *lj = cJSON_Parse(leader_text);
    assert_true(cJSON_IsString(lj));
    struct cluster_input in = {.reachable = 1,
                               .updated_at_ms = T_NOW,
                               .now_ms = T_NOW + 20,
                               .members_json = members,
                               .leader_addr = lj->valuestring};
    struct cluster_model *m = build_ok(&in);
    /* Raft unknown: the four role=consul members are member-only servers. */
    assert_int_equal(m->n_servers, 4);
    for (size_t i = 0; i < 4; i++) {
        char *name = xasprintf("consul-%zu", i + 1);
        char *addr = xasprintf("10.20.0.1%zu:8300", i + 1);
        assert_string_equal(m->servers[i].node, name);
        assert_string_equal(m->servers[i].address, addr); /* Addr + the port tag */
        assert_int_equal(m->servers[i].serf_status, CLUSTER_SERF_ALIVE);
        assert_false(m->servers[i].in_raft);
        assert_true(m->servers[i].in_members);
        assert_false(m->servers[i].voter);
        assert_null(m->servers[i].version); /* no build tag in the documented shape */
        free(name);
        free(addr);
    }
    assert_string_equal(m->servers[0].id, ID_C1); /* the member's id tag */
    assert_string_equal(m->datacenter, "sh1");
    assert_int_equal(m->age_ms, 20);
    /* The leader comes from /v1/status/leader matched to the member's address. */
    assert_int_equal(m->leader_index, 1);
    assert_true(m->servers[1].leader);
    assert_false(m->servers[0].leader);
    assert_false(m->seed_ok);
    assert_non_null(strstr(m->seed_detail, "Raft configuration unavailable"));
    assert_non_null(strstr(m->seed_detail, "4 servers known from the members"));
    assert_int_equal(m->n_clients, 3);
    assert_string_equal(m->clients[0].node, "k8s-node-1");
    assert_string_equal(m->clients[0].address, "10.20.1.21");
    assert_string_equal(m->clients[2].node, "k8s-node-3");
    assert_int_equal(m->clients[2].serf_status, CLUSTER_SERF_FAILED);
    assert_int_equal(m->clients_alive, 2);
    assert_int_equal(m->clients_failed, 1);
    assert_int_equal(problem_count(m, CLUSTER_P_NO_LEADER, NULL), 0);
    assert_int_equal(problem_count(m, CLUSTER_P_SERVER_NOT_IN_RAFT, NULL), 0);
    assert_int_equal(problem_count(m, CLUSTER_P_SERVER_NOT_VOTER, NULL), 0);
    assert_int_equal(problem_count(m, CLUSTER_P_SERVER_FAILED, NULL), 0); /* a client failed */
    assert_int_equal(problem_count(m, CLUSTER_P_EVEN_SERVER_COUNT, NULL), 1);
    assert_false(m->healthy);
    cluster_model_free(m);
    cJSON_Delete(lj);
    free(leader_text);
    free(members);
}

static void
test_fixture_raft_and_members(void **state)
{
    (void)state;
    char *raft = fixture("v1_operator_raft_configuration.json");
    char *members = fixture("v1_agent_members.json");
    struct cluster_input in = {.reachable = 1,
                               .now_ms = T_NOW,
                               .updated_at_ms = T_NOW,
                               .raft_json = raft,
                               .members_json = members};
    struct cluster_model *m = build_ok(&in);
    /* The files describe the same site: every raft peer is a member and the reverse. */
    assert_int_equal(m->n_servers, 4);
    for (size_t i = 0; i < 4; i++) {
        assert_true(m->servers[i].in_raft);
        assert_true(m->servers[i].in_members);
        assert_int_equal(m->servers[i].serf_status, CLUSTER_SERF_ALIVE);
        assert_int_equal(m->servers[i].healthy, i != 3); /* consul-4 is no voter */
    }
    assert_int_equal(problem_count(m, CLUSTER_P_RAFT_PEER_UNKNOWN, NULL), 0);
    assert_int_equal(problem_count(m, CLUSTER_P_SERVER_NOT_IN_RAFT, NULL), 0);
    assert_int_equal(problem_count(m, CLUSTER_P_SERVER_NOT_VOTER, "consul-4"), 1);
    assert_int_equal(m->failure_tolerance, 1); /* 3 alive voters, quorum 2 */
    assert_int_equal(problem_count(m, CLUSTER_P_LOW_FAILURE_TOLERANCE, NULL), 0);
    assert_true(m->seed_ok);
    assert_string_equal(m->seed_detail, "4 of 4 servers in raft, leader consul-2");
    assert_int_equal(m->n_clients, 3);
    assert_false(m->healthy);
    assert_problem_order(m);
    cluster_model_free(m);

    /* The same site seen while consul-3 is missing from the members and consul-4 from raft:
     * a raft peer nobody knows, and a member server that raft does not list. */
    char *raft3 =
        fixture_without("v1_operator_raft_configuration.json", "Servers", "Node", "consul-4");
    char *members3 = fixture_without("v1_agent_members.json", NULL, "Name", "consul-3");
    in.raft_json = raft3;
    in.members_json = members3;
    m = build_ok(&in);
    assert_int_equal(m->n_servers, 4);
    assert_int_equal(problem_count(m, CLUSTER_P_RAFT_PEER_UNKNOWN, NULL), 1);
    assert_int_equal(problem_count(m, CLUSTER_P_RAFT_PEER_UNKNOWN, "consul-3"), 1);
    assert_int_equal(problem_count(m, CLUSTER_P_SERVER_NOT_IN_RAFT, NULL), 1);
    assert_int_equal(problem_count(m, CLUSTER_P_SERVER_NOT_IN_RAFT, "consul-4"), 1);
    assert_false(server_named(m, "consul-4")->in_raft);
    assert_false(server_named(m, "consul-3")->in_members);
    assert_false(m->seed_ok);
    assert_string_equal(m->seed_detail, "2 of 3 servers in raft (missing: consul-4), leader "
                                        "consul-2");
    assert_false(m->healthy);
    assert_problem_order(m);
    cluster_model_free(m);
    free(raft3);
    free(members3);
    free(raft);
    free(members);
}

static void
test_fixture_autopilot(void **state)
{
    (void)state;
    char *ap = fixture("v1_operator_autopilot_health.json");
    char *raft = fixture("v1_operator_raft_configuration.json");
    struct cluster_input in = {.reachable = 1,
                               .now_ms = T_NOW,
                               .updated_at_ms = T_NOW,
                               .raft_json = raft,
                               .autopilot_json = ap};
    struct cluster_model *m = build_ok(&in);
    assert_true(m->autopilot_known);
    assert_true(m->autopilot_healthy);
    /* autopilot's FailureTolerance: without members the model alone would say 0. */
    assert_int_equal(m->failure_tolerance, 1);
    const struct cluster_server *c1 = server_named(m, "consul-1");
    const struct cluster_server *c2 = server_named(m, "consul-2");
    const struct cluster_server *c4 = server_named(m, "consul-4");
    assert_true(c2->autopilot_known);
    assert_true(c2->autopilot_healthy);
    assert_true(c4->autopilot_known);
    assert_string_equal(c2->last_contact, "0s");
    assert_string_equal(c1->last_contact, "18.402311ms");
    assert_true(c4->has_last_index);
    assert_int_equal(c4->last_index, 18791);
    assert_int_equal(server_named(m, "consul-3")->last_index, 18789);
    /* No member build tag: autopilot Version, one server already upgraded. */
    assert_string_equal(c1->version, "1.15.4");
    assert_string_equal(c4->version, "1.16.1");
    assert_int_equal(m->voters, 3);
    assert_int_equal(m->quorum_size, 2);
    assert_int_equal(problem_count(m, CLUSTER_P_SERVER_NOT_VOTER, "consul-4"), 1);
    assert_int_equal(problem_count(m, CLUSTER_P_LOW_FAILURE_TOLERANCE, NULL), 0);
    assert_int_equal(problem_count(m, CLUSTER_P_AUTOPILOT_UNHEALTHY, NULL), 0);
    cluster_model_free(m);

    /* The same answer once autopilot counts no tolerance and calls the cluster unhealthy. */
    cJSON *j = cJSON_Parse(ap);
    cJSON_ReplaceItemInObjectCaseSensitive(j, "FailureTolerance", cJSON_CreateNumber(0));
    cJSON_ReplaceItemInObjectCaseSensitive(j, "Healthy", cJSON_CreateFalse());
    char *ap0 = print_and_delete(j);
    in.autopilot_json = ap0;
    m = build_ok(&in);
    assert_true(m->autopilot_known);
    assert_false(m->autopilot_healthy);
    assert_int_equal(m->failure_tolerance, 0);
    assert_int_equal(problem_count(m, CLUSTER_P_LOW_FAILURE_TOLERANCE, NULL), 1);
    assert_int_equal(problem_count(m, CLUSTER_P_AUTOPILOT_UNHEALTHY, NULL), 1);
    assert_false(m->healthy);
    cluster_model_free(m);
    free(ap0);
    free(ap);
    free(raft);
}

/* Asserts check i of a GET /api/health "checks" array. */
static void
assert_check(const cJSON *checks, int i, const char *node, const char *check_id,
             const char *service, const char *tag)
{
    const cJSON *c = cJSON_GetArrayItem(checks, i);
    assert_non_null(c);
    assert_string_equal(json_get_str(c, "node", ""), node);
    assert_string_equal(json_get_str(c, "check_id", ""), check_id);
    assert_string_equal(json_get_str(c, "status", ""), "passing");
    assert_string_equal(json_get_str(c, "service_name", "x"), service ? service : "");
    const cJSON *tags = cJSON_GetObjectItem(c, "service_tags");
    assert_int_equal(cJSON_GetArraySize(tags), tag ? 1 : 0);
    if (tag) {
        assert_string_equal(cJSON_GetArrayItem(tags, 0)->valuestring, tag);
    }
    /* No Type in the documented shape; the node sample's ID (not in api.HealthCheck) is
     * ignored. */
    assert_string_equal(json_get_str(c, "type", "x"), "");
    assert_null(cJSON_GetObjectItem(c, "ID"));
    assert_null(cJSON_GetObjectItem(c, "id"));
}

static void
test_fixture_health(void **state)
{
    (void)state;
    char *passing = fixture("v1_health_state_passing.json");
    char *node = fixture("v1_health_node_consul-1.json");
    char *members = fixture("v1_agent_members.json");
    struct cluster_input in = {.reachable = 1,
                               .now_ms = T_NOW,
                               .updated_at_ms = T_NOW,
                               .members_json = members,
                               .health_json = passing};
    struct cluster_model *m = build_ok(&in);
    for (size_t i = 0; i < m->n_servers; i++) {
        assert_int_equal(m->servers[i].check_status, CLUSTER_CHECK_PASSING);
    }
    assert_int_equal(problem_count(m, CLUSTER_P_CHECK_CRITICAL, NULL), 0);
    cluster_model_free(m);

    /* Both lists start with consul-1's three checks; the state list goes on with every
     * other passing check of the site. */
    const char *bodies[] = {passing, node};
    const int total[] = {10, 3};
    for (size_t b = 0; b < 2; b++) {
        struct cluster_error err = {{0}};
        cJSON *h = cluster_health_to_json(bodies[b], &err);
        assert_non_null(h);
        cJSON *counts = cJSON_GetObjectItem(h, "counts");
        assert_int_equal(json_get_num(counts, "passing", -1), total[b]);
        assert_int_equal(json_get_num(counts, "critical", -1), 0);
        assert_int_equal(json_get_num(counts, "warning", -1), 0);
        assert_int_equal(json_get_num(counts, "maintenance", -1), 0);
        cJSON *checks = cJSON_GetObjectItem(h, "checks");
        assert_int_equal(cJSON_GetArraySize(checks), total[b]);
        assert_check(checks, 0, "consul-1", "serfHealth", NULL, NULL);
        assert_check(checks, 1, "consul-1", "service:redis", "redis", "primary");
        assert_check(checks, 2, "consul-1", "service:web1", "web", "rails");
        const cJSON *c1 = cJSON_GetArrayItem(checks, 1);
        assert_string_equal(json_get_str(c1, "name", ""), "Service 'redis' check");
        assert_string_equal(json_get_str(c1, "service_id", ""), "redis");
        if (b == 0) {
            assert_check(checks, 3, "consul-2", "serfHealth", NULL, NULL);
            assert_check(checks, 7, "k8s-node-1", "service:api-1", "api", "v1");
            assert_check(checks, 9, "k8s-node-2", "service:api-2", "api", "v1");
        }
        cJSON_Delete(h);
    }
    free(passing);
    free(node);
    free(members);
}

static void
test_fixture_agent_self_datacenter(void **state)
{
    (void)state;
    char *self = fixture("v1_agent_self.json");
    cJSON *j = cJSON_Parse(self);
    const char *dc = json_get_str(cJSON_GetObjectItem(j, "Config"), "Datacenter", NULL);
    assert_non_null(dc);
    assert_string_equal(json_get_str(cJSON_GetObjectItem(j, "Config"), "NodeID", ""), ID_C1);
    struct cluster_input in = {
        .reachable = 1, .now_ms = T_NOW, .updated_at_ms = T_NOW, .datacenter = dc};
    struct cluster_model *m = build_ok(&in);
    assert_string_equal(m->datacenter, "sh1");
    assert_int_equal(m->n_servers, 0);
    assert_false(m->seed_ok);
    assert_false(m->healthy);
    cluster_model_free(m);
    cJSON_Delete(j);
    free(self);
}

/* ---------- scenarios ---------- */

static void
test_four_healthy(void **state)
{
    (void)state;
    struct scen sc;
    scen_make(&sc, four_healthy, 4, 1, 1, 1);
    struct cluster_model *m = build_ok(&sc.in);
    assert_int_equal(m->n_servers, 4);
    assert_int_equal(m->voters, 4);
    assert_int_equal(m->quorum_size, 3);
    assert_int_equal(m->failure_tolerance, 1);
    assert_true(m->seed_ok);
    assert_string_equal(m->seed_detail, "4 of 4 servers in raft, leader consul-1");
    assert_true(m->healthy);
    assert_int_equal(m->leader_index, 0);
    assert_string_equal(m->servers[m->leader_index].node, "consul-1");
    for (size_t i = 0; i < 4; i++) {
        const struct cluster_server *s = &m->servers[i];
        assert_true(s->healthy);
        assert_true(s->voter);
        assert_true(s->in_raft);
        assert_int_equal(s->serf_status, CLUSTER_SERF_ALIVE);
        assert_string_equal(s->version, "1.15.4");
        assert_int_equal(s->check_status, CLUSTER_CHECK_PASSING);
        assert_int_equal(s->last_index, 4600 + i); /* autopilot wins over raft LastIndex */
    }
    /* The only problem is the even-count advice. */
    assert_int_equal(m->n_problems, 1);
    assert_int_equal(m->problems[0].code, CLUSTER_P_EVEN_SERVER_COUNT);
    assert_null(m->problems[0].node);
    assert_string_equal(m->problems[0].message,
                        "4 servers tolerate 1 failure, the same as 3; add a fifth or remove one");
    /* Clients: sorted, counted. */
    assert_int_equal(m->n_clients, 6);
    for (size_t i = 1; i < m->n_clients; i++) {
        assert_true(strcmp(m->clients[i - 1].node, m->clients[i].node) < 0);
    }
    assert_string_equal(m->clients[0].node, "k8s-node-1");
    assert_string_equal(m->clients[0].address, "10.1.0.1");
    assert_int_equal(m->clients_alive, 2);
    assert_int_equal(m->clients_failed, 1);
    assert_int_equal(m->clients_left, 1);
    assert_int_equal(m->clients_leaving, 1);
    assert_int_equal(m->clients_none, 1);
    cluster_model_free(m);

    /* Without autopilot the tolerance comes from the alive voters: 4 - 3. */
    sc.in.autopilot_json = NULL;
    m = build_ok(&sc.in);
    assert_int_equal(m->failure_tolerance, 1);
    assert_true(m->healthy);
    cluster_model_free(m);
    scen_free(&sc);
}

static void
test_three_healthy(void **state)
{
    (void)state;
    struct scen sc;
    scen_make(&sc, four_healthy, 3, 1, 1, 1);
    struct cluster_model *m = build_ok(&sc.in);
    assert_int_equal(m->voters, 3);
    assert_int_equal(m->quorum_size, 2);
    assert_int_equal(m->failure_tolerance, 1);
    assert_true(m->seed_ok);
    assert_true(m->healthy);
    assert_int_equal(m->n_problems, 0);
    assert_false(cluster_model_has_problem(m, CLUSTER_P_EVEN_SERVER_COUNT));
    cluster_model_free(m);
    scen_free(&sc);
}

static void
test_one_failed(void **state)
{
    (void)state;
    const struct tsrv s[] = {
        {"consul-1", 1, 1, 1, 1, 1},
        {"consul-2", 1, 1, 0, 1, 1},
        {"consul-3", 1, 1, 0, 4, 0},
        {"consul-4", 1, 1, 0, 1, 1},
    };
    struct scen sc;
    scen_make(&sc, s, 4, 1, 1, 0);
    struct cluster_model *m = build_ok(&sc.in);
    assert_int_equal(problem_count(m, CLUSTER_P_SERVER_FAILED, "consul-3"), 1);
    assert_int_equal(problem_count(m, CLUSTER_P_SERVER_FAILED, NULL), 1);
    assert_int_equal(server_named(m, "consul-3")->serf_status, CLUSTER_SERF_FAILED);
    assert_false(server_named(m, "consul-3")->healthy);
    assert_true(server_named(m, "consul-2")->healthy);
    assert_false(m->healthy);
    assert_true(m->seed_ok); /* all listed in raft and one leader */
    assert_int_equal(m->failure_tolerance, 0);
    assert_int_equal(problem_count(m, CLUSTER_P_LOW_FAILURE_TOLERANCE, NULL), 1);
    /* A failed server is not also reported by autopilot: server_failed explains it. */
    assert_int_equal(problem_count(m, CLUSTER_P_AUTOPILOT_UNHEALTHY, NULL), 0);
    assert_problem_order(m);
    cluster_model_free(m);

    /* Without autopilot: 3 alive voters - quorum 3 = 0. */
    sc.in.autopilot_json = NULL;
    m = build_ok(&sc.in);
    assert_int_equal(m->failure_tolerance, 0);
    cluster_model_free(m);
    scen_free(&sc);
}

static void
test_no_leader(void **state)
{
    (void)state;
    const struct tsrv s[] = {
        {"consul-1", 1, 1, 0, 1, 0},
        {"consul-2", 1, 1, 0, 1, 0},
        {"consul-3", 1, 1, 0, 1, 0},
    };
    struct scen sc;
    scen_make(&sc, s, 3, 1, 0, 0);
    struct cluster_model *m = build_ok(&sc.in);
    assert_int_equal(m->leader_index, -1);
    assert_true(cluster_model_has_problem(m, CLUSTER_P_NO_LEADER));
    assert_int_equal(m->problems[0].code, CLUSTER_P_NO_LEADER);
    assert_false(m->seed_ok);
    assert_string_equal(m->seed_detail, "3 of 3 servers in raft, no leader");
    assert_false(m->healthy);
    /* no_leader already covers the tolerance. */
    assert_false(cluster_model_has_problem(m, CLUSTER_P_LOW_FAILURE_TOLERANCE));
    cJSON *j = cluster_model_to_json(m);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "leader")));
    cJSON_Delete(j);
    cluster_model_free(m);
    scen_free(&sc);
}

/* Autopilot's last answer (from before the loss: healthy, tolerance 1) must not make a
 * leaderless cluster look as if it could still lose a server. */
static void
test_no_leader_ignores_stale_autopilot(void **state)
{
    (void)state;
    const struct tsrv s[] = {
        {"consul-1", 1, 1, 0, 1, 1},
        {"consul-2", 1, 1, 0, 1, 1},
        {"consul-3", 1, 1, 0, 4, 1},
    };
    struct scen sc;
    scen_make(&sc, s, 3, 1, 1, 1);
    struct cluster_model *m = build_ok(&sc.in);
    assert_int_equal(m->leader_index, -1);
    assert_int_equal(m->failure_tolerance, 0);
    assert_true(cluster_model_has_problem(m, CLUSTER_P_NO_LEADER));
    cluster_model_free(m);
    scen_free(&sc);
}

static void
test_two_of_four_down(void **state)
{
    (void)state;
    /* Consul answers the raft configuration only with ?stale; it shows no leader. */
    const struct tsrv s[] = {
        {"consul-1", 1, 1, 0, 4, 0},
        {"consul-2", 1, 1, 0, 4, 0},
        {"consul-3", 1, 1, 0, 1, 0},
        {"consul-4", 1, 1, 0, 1, 0},
    };
    struct scen sc;
    scen_make(&sc, s, 4, 0, 0, 0);
    struct cluster_model *m = build_ok(&sc.in);
    assert_int_equal(m->voters, 4);
    assert_int_equal(m->quorum_size, 3);
    assert_int_equal(m->failure_tolerance, 0);
    assert_true(cluster_model_has_problem(m, CLUSTER_P_NO_LEADER));
    assert_int_equal(problem_count(m, CLUSTER_P_SERVER_FAILED, NULL), 2);
    assert_int_equal(problem_count(m, CLUSTER_P_SERVER_FAILED, "consul-1"), 1);
    assert_int_equal(problem_count(m, CLUSTER_P_SERVER_FAILED, "consul-2"), 1);
    assert_true(cluster_model_has_problem(m, CLUSTER_P_EVEN_SERVER_COUNT));
    assert_false(m->seed_ok);
    assert_false(m->healthy);
    assert_problem_order(m);
    cluster_model_free(m);

    /* Without raft at all (plain GET gives 500 No cluster leader): servers from members. */
    sc.in.raft_json = NULL;
    m = build_ok(&sc.in);
    assert_int_equal(m->n_servers, 4);
    assert_int_equal(m->voters, 0);
    assert_int_equal(m->quorum_size, 0);
    assert_int_equal(m->failure_tolerance, 0);
    assert_false(m->seed_ok);
    assert_non_null(strstr(m->seed_detail, "Raft configuration unavailable"));
    assert_true(cluster_model_has_problem(m, CLUSTER_P_NO_LEADER)); /* leader_addr "" */
    assert_false(cluster_model_has_problem(m, CLUSTER_P_SERVER_NOT_IN_RAFT));
    assert_false(cluster_model_has_problem(m, CLUSTER_P_SERVER_NOT_VOTER));
    assert_int_equal(problem_count(m, CLUSTER_P_SERVER_FAILED, NULL), 2);
    assert_false(m->healthy);
    cluster_model_free(m);
    scen_free(&sc);
}

static void
test_non_voter(void **state)
{
    (void)state;
    const struct tsrv s[] = {
        {"consul-1", 1, 1, 1, 1, 1},
        {"consul-2", 1, 1, 0, 1, 1},
        {"consul-3", 1, 1, 0, 1, 1},
        {"consul-4", 1, 0, 0, 1, 1}, /* restarted, not yet promoted */
    };
    struct scen sc;
    scen_make(&sc, s, 4, 1, 1, 1);
    struct cluster_model *m = build_ok(&sc.in);
    assert_int_equal(problem_count(m, CLUSTER_P_SERVER_NOT_VOTER, "consul-4"), 1);
    assert_int_equal(problem_count(m, CLUSTER_P_SERVER_NOT_VOTER, NULL), 1);
    assert_true(m->seed_ok);
    assert_false(m->healthy);
    assert_false(server_named(m, "consul-4")->healthy);
    assert_int_equal(m->voters, 3);
    assert_int_equal(m->quorum_size, 2);
    /* 3 voters: no even-count advice. */
    assert_false(cluster_model_has_problem(m, CLUSTER_P_EVEN_SERVER_COUNT));
    cluster_model_free(m);
    scen_free(&sc);
}

static void
test_raft_peer_unknown(void **state)
{
    (void)state;
    const struct tsrv s[] = {
        {"consul-1", 1, 1, 1, 1, 1},
        {"consul-2", 1, 1, 0, 1, 1},
        {"consul-3", 1, 1, 0, NOT_MEMBER, 1},
    };
    struct scen sc;
    scen_make(&sc, s, 3, 1, 1, 1);
    struct cluster_model *m = build_ok(&sc.in);
    assert_int_equal(problem_count(m, CLUSTER_P_RAFT_PEER_UNKNOWN, "consul-3"), 1);
    const struct cluster_server *s3 = server_named(m, "consul-3");
    assert_false(s3->in_members);
    assert_int_equal(s3->serf_status, CLUSTER_SERF_UNKNOWN);
    assert_false(s3->healthy);
    assert_false(m->healthy);
    assert_true(m->seed_ok); /* every member server is in raft */
    cluster_model_free(m);
    scen_free(&sc);

    /* A stale peer Consul shows as "(unknown)": problem without a node. */
    const char *raft = "{\"Servers\":[{\"ID\":\"x1\",\"Node\":\"consul-1\",\"Address\":"
                       "\"10.0.0.1:8300\",\"Leader\":true,\"Voter\":true},{\"ID\":\"dead\","
                       "\"Node\":\"(unknown)\",\"Address\":\"10.9.9.9:8300\",\"Leader\":false,"
                       "\"Voter\":true}]}";
    const char *members = "[{\"Name\":\"consul-1\",\"Addr\":\"10.0.0.1\",\"Status\":1,"
                          "\"Tags\":{\"role\":\"consul\",\"port\":\"8300\"}}]";
    struct cluster_input in = {.reachable = 1,
                               .now_ms = T_NOW,
                               .updated_at_ms = T_NOW,
                               .raft_json = raft,
                               .members_json = members};
    m = build_ok(&in);
    assert_int_equal(problem_count(m, CLUSTER_P_RAFT_PEER_UNKNOWN, NULL), 1);
    size_t k;
    for (k = 0; k < m->n_problems; k++) {
        if (m->problems[k].code == CLUSTER_P_RAFT_PEER_UNKNOWN) {
            break;
        }
    }
    assert_null(m->problems[k].node);
    assert_non_null(strstr(m->problems[k].message, "10.9.9.9:8300"));
    assert_true(cluster_model_has_problem(m, CLUSTER_P_EVEN_SERVER_COUNT));
    cluster_model_free(m);
}

static void
test_autopilot_429_unhealthy(void **state)
{
    (void)state;
    const struct tsrv s[] = {
        {"consul-1", 1, 1, 1, 1, 1},
        {"consul-2", 1, 1, 0, 1, 0}, /* lagging: autopilot says unhealthy */
        {"consul-3", 1, 1, 0, 1, 1},
    };
    struct scen sc;
    scen_make(&sc, s, 3, 1, 0, 0); /* the 429 body: Healthy false */
    struct cluster_model *m = build_ok(&sc.in);
    assert_true(m->autopilot_known);
    assert_false(m->autopilot_healthy);
    assert_int_equal(m->failure_tolerance, 0);
    assert_true(m->seed_ok);
    assert_false(m->healthy);
    assert_false(server_named(m, "consul-2")->healthy);
    assert_true(server_named(m, "consul-1")->healthy);
    assert_true(cluster_model_has_problem(m, CLUSTER_P_LOW_FAILURE_TOLERANCE));
    assert_int_equal(problem_count(m, CLUSTER_P_AUTOPILOT_UNHEALTHY, "consul-2"), 1);
    assert_int_equal(problem_count(m, CLUSTER_P_AUTOPILOT_UNHEALTHY, NULL), 1);
    cluster_model_free(m);
    scen_free(&sc);

    /* Healthy false with every server healthy: one cluster-wide autopilot problem. */
    scen_make(&sc, four_healthy, 3, 1, 0, 1);
    m = build_ok(&sc.in);
    assert_false(m->healthy);
    assert_int_equal(problem_count(m, CLUSTER_P_AUTOPILOT_UNHEALTHY, NULL), 1);
    assert_null(m->problems[m->n_problems - 1].node);
    cluster_model_free(m);
    scen_free(&sc);
}

static void
test_member_not_in_raft(void **state)
{
    (void)state;
    const struct tsrv s[] = {
        {"consul-1", 1, 1, 1, 1, 1}, {"consul-2", 1, 1, 0, 1, 1},
        {"consul-3", 1, 1, 0, 1, 1}, {"consul-4", 0, 0, 0, 1, 0}, /* joined serf, not raft */
        {"consul-5", 0, 0, 0, 3, 0}, /* removed cleanly: left, not listed */
    };
    struct scen sc;
    scen_make(&sc, s, 5, 1, 1, 1);
    struct cluster_model *m = build_ok(&sc.in);
    assert_int_equal(m->n_servers, 4);
    const struct cluster_server *s4 = server_named(m, "consul-4");
    assert_false(s4->in_raft);
    assert_false(s4->voter);
    assert_false(s4->leader);
    assert_string_equal(s4->id, "00000004-aaaa-bbbb-cccc-dddddddddddd"); /* tag id */
    assert_string_equal(s4->address, "10.0.0.4:8300");
    assert_int_equal(problem_count(m, CLUSTER_P_SERVER_NOT_IN_RAFT, "consul-4"), 1);
    assert_false(cluster_model_has_problem(m, CLUSTER_P_SERVER_NOT_VOTER));
    assert_false(cluster_model_has_problem(m, CLUSTER_P_SERVER_LEFT));
    assert_false(m->seed_ok);
    assert_string_equal(m->seed_detail,
                        "3 of 4 servers in raft (missing: consul-4), leader consul-1");
    assert_false(m->healthy);
    assert_int_equal(m->voters, 3);
    cluster_model_free(m);
    scen_free(&sc);
}

static void
test_server_left_in_raft(void **state)
{
    (void)state;
    const struct tsrv s[] = {
        {"consul-1", 1, 1, 1, 1, 1},
        {"consul-2", 1, 1, 0, 1, 1},
        {"consul-3", 1, 1, 0, 3, 0},
        {"consul-4", 1, 1, 0, 2, 0},
    };
    struct scen sc;
    scen_make(&sc, s, 4, 0, 0, 0);
    struct cluster_model *m = build_ok(&sc.in);
    assert_int_equal(problem_count(m, CLUSTER_P_SERVER_LEFT, "consul-3"), 1);
    assert_int_equal(problem_count(m, CLUSTER_P_SERVER_LEFT, "consul-4"), 1);
    assert_true(m->seed_ok); /* consul-4 leaving is still listed; consul-3 left */
    assert_false(m->healthy);
    assert_int_equal(m->failure_tolerance, 0); /* 2 alive voters - 3 */
    cluster_model_free(m);
    scen_free(&sc);
}

static void
test_unreachable_last_known(void **state)
{
    (void)state;
    struct scen sc;
    scen_make(&sc, four_healthy, 4, 1, 1, 1);
    sc.in.reachable = 0;
    sc.in.updated_at_ms = T_NOW - 60000;
    struct cluster_model *m = build_ok(&sc.in);
    assert_int_equal(m->problems[0].code, CLUSTER_P_CONSUL_UNREACHABLE);
    assert_null(m->problems[0].node);
    assert_int_equal(m->n_servers, 4);
    assert_true(m->seed_ok);
    assert_false(m->healthy);
    assert_int_equal(m->age_ms, 60000);
    cluster_model_free(m);
    scen_free(&sc);

    /* Nothing known at all: only consul_unreachable (no guess about the leader). */
    struct cluster_input in = {.reachable = 0, .now_ms = T_NOW, .updated_at_ms = 0};
    m = build_ok(&in);
    assert_int_equal(m->n_problems, 1);
    assert_int_equal(m->problems[0].code, CLUSTER_P_CONSUL_UNREACHABLE);
    assert_false(m->healthy);
    assert_false(m->seed_ok);
    cJSON *j = cluster_model_to_json(m);
    assert_false(cJSON_IsTrue(cJSON_GetObjectItem(j, "reachable")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "datacenter")));
    assert_string_equal(json_get_str(j, "updated_at", ""), "1970-01-01T00:00:00.000Z");
    cJSON_Delete(j);
    cluster_model_free(m);
}

static void
expect_bad(const struct cluster_input *in, const char *needle)
{
    struct cluster_model *m = (struct cluster_model *)1;
    struct cluster_error err = {{0}};
    assert_int_equal(cluster_model_build(in, &m, &err), CLUSTER_BAD_JSON);
    assert_null(m);
    assert_non_null(strstr(err.message, needle));
}

static void
test_malformed_json(void **state)
{
    (void)state;
    struct scen sc;
    scen_make(&sc, four_healthy, 4, 1, 1, 1);
    struct cluster_input in = sc.in;
    in.raft_json = "No cluster leader";
    expect_bad(&in, "raft_json");
    in = sc.in;
    in.members_json = "[{\"Name\":\"x\",";
    expect_bad(&in, "members_json");
    in = sc.in;
    in.autopilot_json = "{\"Healthy\":tru}";
    expect_bad(&in, "autopilot_json");
    in = sc.in;
    in.health_json = "";
    expect_bad(&in, "health_json");
    /* Valid JSON of the wrong top-level type. */
    in = sc.in;
    in.members_json = "{\"Name\":\"x\"}";
    expect_bad(&in, "members_json");
    in = sc.in;
    in.raft_json = "[]";
    expect_bad(&in, "not a JSON object");
    /* Trailing garbage. */
    in = sc.in;
    in.raft_json = "{} x";
    expect_bad(&in, "raft_json");

    struct cluster_error err = {{0}};
    assert_null(cluster_health_to_json("[{]", &err));
    assert_non_null(strstr(err.message, "health_json"));
    assert_null(cluster_health_to_json("{}", &err));
    scen_free(&sc);
}

static void
test_unknown_fields_and_odd_values(void **state)
{
    (void)state;
    const char *raft = "{\"Servers\":[{\"ID\":\"a\",\"Node\":\"s1\",\"Address\":\"10.0.0.1:8300\","
                       "\"Leader\":true,\"Voter\":true,\"Nested\":{\"deep\":[1,2,{\"x\":null}]}},"
                       "42,\"str\",null],\"Index\":7,\"Extra\":[true]}";
    const char *members =
        "[{\"Name\":\"s1\",\"Addr\":\"10.0.0.1\",\"Status\":1,\"Tags\":{\"role\":\"consul\","
        "\"build\":\"1.16.0\",\"new_tag\":\"x\"},\"Unknown\":{}},"
        "{\"Name\":\"c1\",\"Addr\":\"10.1.0.1\",\"Status\":1e300,\"Tags\":{\"role\":\"node\"}},"
        "{\"Name\":\"c2\",\"Addr\":\"10.1.0.2\",\"Status\":-1,\"Tags\":{\"role\":\"node\"}},"
        "{\"Name\":\"c3\",\"Addr\":\"10.1.0.3\",\"Status\":1.5,\"Tags\":{\"role\":\"node\"}},"
        "{\"Name\":\"w\",\"Addr\":\"10.2.0.1\",\"Status\":1,\"Tags\":{\"role\":\"consul\","
        "\"dc\":\"dc2\"}},"
        "{\"Name\":\"nrole\",\"Addr\":\"10.3.0.1\",\"Status\":1},7]";
    const char *ap = "{\"Healthy\":true,\"FailureTolerance\":1e40,\"Servers\":[{\"ID\":\"a\","
                     "\"Healthy\":true,\"LastContact\":2500000,\"LastIndex\":-4,\"Zzz\":1}],"
                     "\"OptimisticFailureTolerance\":3}";
    struct cluster_input in = {.reachable = 1,
                               .now_ms = T_NOW,
                               .updated_at_ms = T_NOW + 5,
                               .datacenter = "dc1",
                               .raft_json = raft,
                               .members_json = members,
                               .autopilot_json = ap,
                               .leader_addr = "10.0.0.1:8300"};
    struct cluster_model *m = build_ok(&in);
    assert_int_equal(m->n_servers, 1); /* the dc2 member is ignored */
    assert_string_equal(m->servers[0].version, "1.16.0");
    assert_string_equal(m->servers[0].last_contact, "2.5ms");
    assert_false(m->servers[0].has_last_index); /* neither raft nor autopilot has a valid one */
    assert_int_equal(m->failure_tolerance, 0);  /* out of range: 0 */
    assert_int_equal(m->n_clients, 3);
    assert_int_equal(m->clients[0].serf_status, CLUSTER_SERF_UNKNOWN);
    assert_int_equal(m->clients[1].serf_status, CLUSTER_SERF_UNKNOWN);
    assert_int_equal(m->clients[2].serf_status, CLUSTER_SERF_UNKNOWN);
    assert_int_equal(m->clients_alive + m->clients_failed + m->clients_left + m->clients_leaving +
                         m->clients_none,
                     0);
    assert_int_equal(m->age_ms, 0); /* never negative */
    assert_true(m->seed_ok);
    cluster_model_free(m);
}

static void
test_quorum_table(void **state)
{
    (void)state;
    /* The seed README's table: servers, quorum, failure tolerance. */
    static const int table[7][3] = {{1, 1, 0}, {2, 2, 0}, {3, 2, 1}, {4, 3, 1},
                                    {5, 3, 2}, {6, 4, 2}, {7, 4, 3}};
    static const char *const names[] = {"s1", "s2", "s3", "s4", "s5", "s6", "s7"};
    for (size_t t = 0; t < 7; t++) {
        struct tsrv s[7];
        int n = table[t][0];
        for (int i = 0; i < n; i++) {
            s[i] = (struct tsrv){names[i], 1, 1, i == 0, 1, 1};
        }
        struct scen sc;
        scen_make(&sc, s, (size_t)n, 0, 0, 0);
        struct cluster_model *m = build_ok(&sc.in);
        assert_int_equal(m->voters, n);
        assert_int_equal(m->quorum_size, table[t][1]);
        assert_int_equal(m->failure_tolerance, table[t][2]);
        assert_int_equal(cluster_model_has_problem(m, CLUSTER_P_EVEN_SERVER_COUNT), n % 2 == 0);
        assert_int_equal(cluster_model_has_problem(m, CLUSTER_P_LOW_FAILURE_TOLERANCE),
                         table[t][2] == 0);
        assert_true(m->seed_ok);
        assert_true(m->healthy);
        cluster_model_free(m);
        scen_free(&sc);
    }
    /* The advice text for 2 and 6 servers. */
    struct tsrv two[2] = {{"a", 1, 1, 1, 1, 1}, {"b", 1, 1, 0, 1, 1}};
    struct scen sc;
    scen_make(&sc, two, 2, 0, 0, 0);
    struct cluster_model *m = build_ok(&sc.in);
    assert_int_equal(m->problems[0].code, CLUSTER_P_EVEN_SERVER_COUNT);
    assert_string_equal(m->problems[0].message,
                        "2 servers tolerate 0 failures, the same as 1; add a third or remove one");
    cluster_model_free(m);
    scen_free(&sc);

    struct cluster_input none = {
        .reachable = 1, .raft_json = "{\"Servers\":[]}", .members_json = "[]"};
    m = build_ok(&none);
    assert_int_equal(m->voters, 0);
    assert_int_equal(m->quorum_size, 0);
    assert_int_equal(m->failure_tolerance, 0);
    assert_true(cluster_model_has_problem(m, CLUSTER_P_NO_LEADER));
    assert_false(cluster_model_has_problem(m, CLUSTER_P_LOW_FAILURE_TOLERANCE));
    assert_false(cluster_model_has_problem(m, CLUSTER_P_EVEN_SERVER_COUNT));
    assert_false(m->healthy);
    cluster_model_free(m);
}

static void
test_check_critical(void **state)
{
    (void)state;
    struct scen sc;
    scen_make(&sc, four_healthy, 3, 1, 1, 1);
    cJSON *arr = cJSON_CreateArray();
    cJSON_AddItemToArray(
        arr, check_json("consul-2", "serfHealth", "Serf Health Status", "passing", NULL));
    cJSON_AddItemToArray(arr, check_json("consul-2", "service:consul-exporter", "exporter alive",
                                         "critical", "consul-exporter"));
    cJSON_AddItemToArray(arr,
                         check_json("k8s-node-1", "service:web", "web http", "critical", "web"));
    cJSON_AddItemToArray(arr, check_json("consul-3", "disk", "disk space", "warning", NULL));
    cJSON_AddItemToArray(
        arr, check_json("consul-1", "serfHealth", "Serf Health Status", "passing", NULL));
    char *health = print_and_delete(arr);
    sc.in.health_json = health;
    struct cluster_model *m = build_ok(&sc.in);
    assert_int_equal(server_named(m, "consul-2")->check_status, CLUSTER_CHECK_CRITICAL);
    assert_int_equal(server_named(m, "consul-3")->check_status, CLUSTER_CHECK_WARNING);
    assert_int_equal(server_named(m, "consul-1")->check_status, CLUSTER_CHECK_PASSING);
    assert_false(server_named(m, "consul-2")->healthy);
    assert_true(server_named(m, "consul-3")->healthy); /* a warning is not fatal */
    assert_false(m->healthy);
    assert_int_equal(problem_count(m, CLUSTER_P_CHECK_CRITICAL, NULL), 2);
    assert_int_equal(problem_count(m, CLUSTER_P_CHECK_CRITICAL, "consul-2"), 1);
    assert_int_equal(problem_count(m, CLUSTER_P_CHECK_CRITICAL, "k8s-node-1"), 1);
    const struct cluster_problem *p = &m->problems[m->n_problems - 2];
    assert_string_equal(p->node, "consul-2");
    assert_non_null(strstr(p->message, "exporter alive"));
    assert_non_null(strstr(p->message, "consul-exporter"));
    cluster_model_free(m);

    /* A critical check on a client makes no server unhealthy. */
    cJSON *arr2 = cJSON_CreateArray();
    cJSON_AddItemToArray(arr2, check_json("k8s-node-1", "service:web", "web", "critical", "web"));
    char *h2 = print_and_delete(arr2);
    sc.in.health_json = h2;
    m = build_ok(&sc.in);
    assert_true(m->healthy);
    assert_int_equal(problem_count(m, CLUSTER_P_CHECK_CRITICAL, "k8s-node-1"), 1);
    cluster_model_free(m);

    /* Node maintenance (Consul stores it as a critical check). */
    cJSON *arr3 = cJSON_CreateArray();
    cJSON_AddItemToArray(arr3, check_json("consul-1", "_node_maintenance",
                                          "Node Maintenance "
                                          "Mode",
                                          "critical", NULL));
    char *h3 = print_and_delete(arr3);
    sc.in.health_json = h3;
    m = build_ok(&sc.in);
    assert_int_equal(server_named(m, "consul-1")->check_status, CLUSTER_CHECK_MAINTENANCE);
    assert_false(m->healthy);
    assert_int_equal(problem_count(m, CLUSTER_P_CHECK_CRITICAL, "consul-1"), 1);
    assert_non_null(strstr(m->problems[m->n_problems - 1].message, "maintenance"));
    cluster_model_free(m);
    free(health);
    free(h2);
    free(h3);
    scen_free(&sc);
}

static void
test_check_problem_cap(void **state)
{
    (void)state;
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; i < CLUSTER_MAX_CHECK_PROBLEMS + 30; i++) {
        char id[32];
        snprintf(id, sizeof(id), "svc:%04d", i);
        cJSON_AddItemToArray(arr, check_json("k8s-node-1", id, "x", "critical", "x"));
    }
    char *health = print_and_delete(arr);
    struct cluster_input in = {.reachable = 1, .health_json = health};
    struct cluster_model *m = build_ok(&in);
    assert_int_equal(problem_count(m, CLUSTER_P_CHECK_CRITICAL, NULL), CLUSTER_MAX_CHECK_PROBLEMS);
    cluster_model_free(m);
    free(health);
}

static void
test_health_grouping(void **state)
{
    (void)state;
    cJSON *arr = cJSON_CreateArray();
    cJSON_AddItemToArray(arr, check_json("b", "serfHealth", "Serf", "passing", NULL));
    cJSON_AddItemToArray(arr, check_json("b", "svc:z", "z", "warning", "z"));
    cJSON_AddItemToArray(arr, check_json("a", "svc:y", "y", "critical", "y"));
    cJSON_AddItemToArray(arr,
                         check_json("c", "_service_maintenance:web", "maint", "critical", "web"));
    cJSON_AddItemToArray(arr, check_json("a", "serfHealth", "Serf", "passing", NULL));
    cJSON_AddItemToArray(arr, check_json("a", "svc:x", "x", "critical", "x"));
    cJSON_AddItemToArray(arr, check_json("a", "_node_maintenance", "maint", "critical", NULL));
    cJSON_AddItemToArray(arr, check_json("a", "svc:w", "w", "warning", "w"));
    char *text = print_and_delete(arr);
    struct cluster_error err = {{0}};
    cJSON *h = cluster_health_to_json(text, &err);
    assert_non_null(h);
    cJSON *counts = cJSON_GetObjectItem(h, "counts");
    assert_int_equal(json_get_num(counts, "maintenance", -1), 2);
    assert_int_equal(json_get_num(counts, "critical", -1), 2);
    assert_int_equal(json_get_num(counts, "warning", -1), 2);
    assert_int_equal(json_get_num(counts, "passing", -1), 2);
    static const char *const want[][3] = {
        {"maintenance", "a", "_node_maintenance"},
        {"maintenance", "c", "_service_maintenance:web"},
        {"critical", "a", "svc:x"},
        {"critical", "a", "svc:y"},
        {"warning", "a", "svc:w"},
        {"warning", "b", "svc:z"},
        {"passing", "a", "serfHealth"},
        {"passing", "b", "serfHealth"},
    };
    cJSON *checks = cJSON_GetObjectItem(h, "checks");
    assert_int_equal(cJSON_GetArraySize(checks), ARRAY_LEN(want));
    for (size_t i = 0; i < ARRAY_LEN(want); i++) {
        cJSON *c = cJSON_GetArrayItem(checks, (int)i);
        assert_string_equal(json_get_str(c, "status", ""), want[i][0]);
        assert_string_equal(json_get_str(c, "node", ""), want[i][1]);
        assert_string_equal(json_get_str(c, "check_id", ""), want[i][2]);
        static const char *const keys[] = {"node",       "check_id",     "name",
                                           "status",     "output",       "notes",
                                           "service_id", "service_name", "type"};
        for (size_t k = 0; k < ARRAY_LEN(keys); k++) {
            assert_true(cJSON_IsString(cJSON_GetObjectItem(c, keys[k])));
        }
        assert_true(cJSON_IsArray(cJSON_GetObjectItem(c, "service_tags")));
        assert_int_equal(cJSON_GetArraySize(c), 10);
    }
    cJSON_Delete(h);
    free(text);

    h = cluster_health_to_json("[]", &err);
    assert_non_null(h);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(h, "checks")), 0);
    cJSON_Delete(h);
}

/* ---------- the /api/cluster JSON contract ---------- */

static void
assert_keys(const cJSON *o, const char *const *keys, size_t n)
{
    assert_true(cJSON_IsObject(o));
    assert_int_equal(cJSON_GetArraySize(o), n);
    for (size_t i = 0; i < n; i++) {
        if (!cJSON_GetObjectItemCaseSensitive(o, keys[i])) {
            fail_msg("missing key %s", keys[i]);
        }
    }
}

static void
test_json_contract(void **state)
{
    (void)state;
    struct scen sc;
    scen_make(&sc, four_healthy, 4, 1, 1, 1);
    struct cluster_exporter ex[2] = {
        {"10.0.0.1", 1, 1, 4, 1, 10},
        {"10.0.0.2", 0, NAN, NAN, NAN, NAN},
    };
    sc.in.exporters = ex;
    sc.in.n_exporters = 2;
    struct cluster_model *m = build_ok(&sc.in);
    cJSON *j = cluster_model_to_json(m);
    static const char *const top[] = {"reachable", "datacenter", "updated_at", "age_ms",
                                      "leader",    "servers",    "clients",    "client_counts",
                                      "quorum",    "seed_check", "healthy",    "problems"};
    assert_keys(j, top, ARRAY_LEN(top));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "reachable")));
    assert_string_equal(json_get_str(j, "datacenter", ""), "dc1");
    assert_string_equal(json_get_str(j, "updated_at", ""), "2025-12-31T23:59:58.500Z");
    assert_int_equal(json_get_num(j, "age_ms", -1), 1500);
    cJSON *leader = cJSON_GetObjectItem(j, "leader");
    static const char *const lk[] = {"node", "address"};
    assert_keys(leader, lk, 2);
    assert_string_equal(json_get_str(leader, "node", ""), "consul-1");
    assert_string_equal(json_get_str(leader, "address", ""), "10.0.0.1:8300");

    cJSON *servers = cJSON_GetObjectItem(j, "servers");
    assert_int_equal(cJSON_GetArraySize(servers), 4);
    static const char *const sk[] = {"node",         "id",          "address",      "voter",
                                     "leader",       "serf_status", "healthy",      "version",
                                     "last_contact", "last_index",  "check_status", "exporter"};
    static const char *const ek[] = {"reachable", "consul_up", "raft_peers", "raft_leader",
                                     "serf_lan_members"};
    cJSON *s0 = cJSON_GetArrayItem(servers, 0);
    assert_keys(s0, sk, ARRAY_LEN(sk));
    assert_string_equal(json_get_str(s0, "node", ""), "consul-1");
    assert_string_equal(json_get_str(s0, "id", ""), "00000001-aaaa-bbbb-cccc-dddddddddddd");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(s0, "voter")));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(s0, "leader")));
    assert_string_equal(json_get_str(s0, "serf_status", ""), "alive");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(s0, "healthy")));
    assert_string_equal(json_get_str(s0, "version", ""), "1.15.4");
    assert_string_equal(json_get_str(s0, "last_contact", ""), "0s");
    assert_int_equal(json_get_num(s0, "last_index", -1), 4600);
    assert_string_equal(json_get_str(s0, "check_status", ""), "passing");
    cJSON *e0 = cJSON_GetObjectItem(s0, "exporter");
    assert_keys(e0, ek, ARRAY_LEN(ek));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(e0, "reachable")));
    assert_int_equal(json_get_num(e0, "raft_peers", -1), 4);
    assert_int_equal(json_get_num(e0, "serf_lan_members", -1), 10);
    cJSON *e1 = cJSON_GetObjectItem(cJSON_GetArrayItem(servers, 1), "exporter");
    assert_false(cJSON_IsTrue(cJSON_GetObjectItem(e1, "reachable")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(e1, "consul_up")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetArrayItem(servers, 2), "exporter")));
    assert_false(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetArrayItem(servers, 1), "leader")));

    cJSON *clients = cJSON_GetObjectItem(j, "clients");
    assert_int_equal(cJSON_GetArraySize(clients), 6);
    static const char *const ck[] = {"node", "address", "serf_status"};
    assert_keys(cJSON_GetArrayItem(clients, 0), ck, 3);
    assert_string_equal(json_get_str(cJSON_GetArrayItem(clients, 2), "serf_status", ""), "failed");
    cJSON *counts = cJSON_GetObjectItem(j, "client_counts");
    static const char *const cc[] = {"alive", "failed", "left", "leaving", "none"};
    assert_keys(counts, cc, 5);
    assert_int_equal(json_get_num(counts, "alive", -1), 2);
    cJSON *q = cJSON_GetObjectItem(j, "quorum");
    static const char *const qk[] = {"voters", "size", "failure_tolerance"};
    assert_keys(q, qk, 3);
    assert_int_equal(json_get_num(q, "voters", -1), 4);
    assert_int_equal(json_get_num(q, "size", -1), 3);
    assert_int_equal(json_get_num(q, "failure_tolerance", -1), 1);
    cJSON *seed = cJSON_GetObjectItem(j, "seed_check");
    static const char *const sck[] = {"ok", "detail"};
    assert_keys(seed, sck, 2);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(seed, "ok")));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "healthy")));
    cJSON *problems = cJSON_GetObjectItem(j, "problems");
    assert_int_equal(cJSON_GetArraySize(problems), 1);
    cJSON *p0 = cJSON_GetArrayItem(problems, 0);
    static const char *const pk[] = {"code", "message"};
    assert_keys(p0, pk, 2); /* no node key for a cluster-wide problem */
    assert_string_equal(json_get_str(p0, "code", ""), "even_server_count");
    cJSON_Delete(j);
    cluster_model_free(m);
    scen_free(&sc);

    /* A per-node problem carries "node"; null fields are JSON null. */
    const struct tsrv s[] = {
        {"consul-1", 1, 1, 1, 1, 1}, {"consul-2", 1, 1, 0, 4, 0}, {"consul-3", 1, 1, 0, 1, 1}};
    scen_make(&sc, s, 3, 0, 0, 0);
    m = build_ok(&sc.in);
    j = cluster_model_to_json(m);
    problems = cJSON_GetObjectItem(j, "problems");
    cJSON *pf = cJSON_GetArrayItem(problems, 0);
    assert_string_equal(json_get_str(pf, "code", ""), "server_failed");
    assert_string_equal(json_get_str(pf, "node", ""), "consul-2");
    cJSON *s1 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "servers"), 1);
    assert_string_equal(json_get_str(s1, "serf_status", ""), "failed");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(s1, "last_contact")));
    assert_int_equal(json_get_num(s1, "last_index", -1), 1000); /* raft LastIndex */
    cJSON_Delete(j);
    cluster_model_free(m);
    scen_free(&sc);
}

/* The inventory's expected servers: one missing from raft, one that left, one present; a
 * server that left and is not expected is no problem; without raft the members still tell
 * a departure; without either nothing is said. */
static void
test_expected_servers(void **state)
{
    (void)state;
    const struct tsrv s[] = {
        {"consul-1", 1, 1, 1, 1, 1}, {"consul-2", 1, 1, 0, 1, 1},
        {"consul-3", 1, 1, 0, 1, 1}, {"consul-4", 0, 0, 0, 3, 0}, /* left, out of raft: 10.0.0.4 */
        {"consul-5", 0, 0, 0, 3, 0}, /* left as well, but removed on purpose: 10.0.0.5 */
    };
    struct scen sc;
    scen_make(&sc, s, ARRAY_LEN(s), 1, 1, 1);
    const struct cluster_expected exp[] = {
        {"node-a", "10.0.0.1"}, {"node-b", "10.0.0.2"},  {"node-c", "10.0.0.3"},
        {"node-d", "10.0.0.4"}, {"spare-9", "10.0.0.9"},
    };
    sc.in.expected = exp;
    sc.in.n_expected = ARRAY_LEN(exp);
    struct cluster_model *m = build_ok(&sc.in);
    assert_int_equal(problem_count(m, CLUSTER_P_SERVER_MISSING, NULL), 2);
    assert_int_equal(problem_count(m, CLUSTER_P_SERVER_MISSING, "node-d"), 1);
    assert_int_equal(problem_count(m, CLUSTER_P_SERVER_MISSING, "spare-9"), 1);
    assert_int_equal(problem_count(m, CLUSTER_P_SERVER_LEFT, NULL), 0);
    for (size_t i = 0; i < m->n_problems; i++) {
        if (m->problems[i].code == CLUSTER_P_SERVER_MISSING &&
            strcmp(m->problems[i].node, "node-d") == 0) {
            assert_non_null(strstr(m->problems[i].message, "10.0.0.4"));
            assert_non_null(strstr(m->problems[i].message, "has left"));
        }
    }
    assert_problem_order(m);
    cJSON *j = cluster_model_to_json(m);
    char *text = json_print(j);
    assert_non_null(strstr(text, "\"code\":\"server_missing\""));
    free(text);
    cJSON_Delete(j);

    struct cluster_match mt;
    assert_int_equal(cluster_model_match(m, "10.0.0.1", &mt), 1);
    assert_true(mt.server && mt.member && mt.in_raft && mt.voter && mt.leader);
    assert_int_equal(mt.serf_status, CLUSTER_SERF_ALIVE);
    assert_string_equal(mt.node, "consul-1");
    assert_int_equal(cluster_model_match(m, "10.0.0.2", &mt), 1);
    assert_false(mt.leader);
    assert_int_equal(cluster_model_match(m, "10.1.0.1", &mt), 1);
    assert_true(mt.member && !mt.server && !mt.in_raft);
    assert_int_equal(cluster_model_match(m, "10.0.0.9", &mt), 0);
    assert_false(mt.member || mt.server);
    assert_int_equal(mt.serf_status, CLUSTER_SERF_UNKNOWN);
    cluster_model_free(m);

    /* no raft configuration (no leader): the members still show the departure */
    sc.in.raft_json = NULL;
    m = build_ok(&sc.in);
    assert_int_equal(problem_count(m, CLUSTER_P_SERVER_MISSING, NULL), 1);
    assert_int_equal(problem_count(m, CLUSTER_P_SERVER_MISSING, "node-d"), 1);
    cluster_model_free(m);
    /* neither: nothing can be said */
    sc.in.members_json = NULL;
    m = build_ok(&sc.in);
    assert_int_equal(problem_count(m, CLUSTER_P_SERVER_MISSING, NULL), 0);
    cluster_model_free(m);
    /* all expected present: no problem */
    sc.in.raft_json = sc.raft;
    sc.in.members_json = sc.members;
    sc.in.n_expected = 3;
    m = build_ok(&sc.in);
    assert_int_equal(problem_count(m, CLUSTER_P_SERVER_MISSING, NULL), 0);
    cluster_model_free(m);
    scen_free(&sc);
    assert_true(cluster_host_equal("Host.Example:8300", "host.example"));
    assert_true(cluster_host_equal("[fd00::1]:8300", "fd00::1"));
    assert_false(cluster_host_equal("10.0.0.1:8300", "10.0.0.10"));
}

static void
test_names(void **state)
{
    (void)state;
    static const char *const want[] = {
        "consul_unreachable",    "no_leader",           "server_not_voter",
        "server_failed",         "server_left",         "raft_peer_unknown",
        "server_not_in_raft",    "server_missing",      "even_server_count",
        "low_failure_tolerance", "autopilot_unhealthy", "check_critical"};
    assert_int_equal(ARRAY_LEN(want), CLUSTER_P_COUNT_);
    for (int i = 0; i < CLUSTER_P_COUNT_; i++) {
        assert_string_equal(cluster_problem_code_name((enum cluster_problem_code)i), want[i]);
    }
    assert_string_equal(cluster_problem_code_name(CLUSTER_P_COUNT_), "unknown");
    assert_string_equal(cluster_serf_name(CLUSTER_SERF_NONE), "none");
    assert_string_equal(cluster_serf_name(CLUSTER_SERF_LEAVING), "leaving");
    assert_string_equal(cluster_serf_name(CLUSTER_SERF_UNKNOWN), "unknown");
    assert_string_equal(cluster_check_name(CLUSTER_CHECK_NONE), "none");
    assert_string_equal(cluster_check_name(CLUSTER_CHECK_MAINTENANCE), "maintenance");
    cluster_model_free(NULL);
    assert_false(cluster_model_has_problem(NULL, CLUSTER_P_NO_LEADER));
}

static void
test_exporter_fill(void **state)
{
    (void)state;
    const char *text = "# HELP consul_up Was the last query of Consul successful.\n"
                       "# TYPE consul_up gauge\n"
                       "consul_up 1\n"
                       "# HELP consul_raft_leader Does Raft cluster have a leader (according "
                       "to this node).\n"
                       "# TYPE consul_raft_leader gauge\n"
                       "consul_raft_leader 1\n"
                       "# TYPE consul_raft_peers gauge\n"
                       "consul_raft_peers 4\n"
                       "consul_serf_lan_member_status{member=\"consul-1\"} 1\n";
    struct prom_sample *s = NULL;
    size_t n = 0;
    assert_int_equal(prom_parse(text, strlen(text), &s, &n, NULL), PROM_OK);
    struct cluster_exporter e;
    cluster_exporter_fill(&e, "10.0.0.1", 1, s, n);
    assert_string_equal(e.address, "10.0.0.1");
    assert_true(e.reachable);
    assert_true(e.consul_up == 1.0);
    assert_true(e.raft_leader == 1.0);
    assert_true(e.raft_peers == 4.0);
    assert_true(isnan(e.serf_lan_members));
    prom_samples_free(s, n);
}

/* Servers and addresses in IPv6 form still match exporters and the leader address. */
static void
test_ipv6_and_leader_addr(void **state)
{
    (void)state;
    const char *members = "[{\"Name\":\"v6\",\"Addr\":\"fd00::1\",\"Status\":1,"
                          "\"Tags\":{\"role\":\"consul\",\"port\":\"8300\"}}]";
    struct cluster_exporter ex = {"fd00::1", 1, 1, 1, 1, 1};
    struct cluster_input in = {.reachable = 1,
                               .members_json = members,
                               .leader_addr = "[fd00::1]:8300",
                               .exporters = &ex,
                               .n_exporters = 1};
    struct cluster_model *m = build_ok(&in);
    assert_string_equal(m->servers[0].address, "[fd00::1]:8300");
    assert_int_equal(m->leader_index, 0);
    assert_true(m->servers[0].has_exporter);
    cluster_model_free(m);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_raft),
        cmocka_unit_test(test_fixture_members),
        cmocka_unit_test(test_fixture_raft_and_members),
        cmocka_unit_test(test_fixture_autopilot),
        cmocka_unit_test(test_fixture_health),
        cmocka_unit_test(test_fixture_agent_self_datacenter),
        cmocka_unit_test(test_four_healthy),
        cmocka_unit_test(test_three_healthy),
        cmocka_unit_test(test_one_failed),
        cmocka_unit_test(test_no_leader),
        cmocka_unit_test(test_no_leader_ignores_stale_autopilot),
        cmocka_unit_test(test_two_of_four_down),
        cmocka_unit_test(test_non_voter),
        cmocka_unit_test(test_raft_peer_unknown),
        cmocka_unit_test(test_autopilot_429_unhealthy),
        cmocka_unit_test(test_member_not_in_raft),
        cmocka_unit_test(test_server_left_in_raft),
        cmocka_unit_test(test_unreachable_last_known),
        cmocka_unit_test(test_malformed_json),
        cmocka_unit_test(test_unknown_fields_and_odd_values),
        cmocka_unit_test(test_quorum_table),
        cmocka_unit_test(test_check_critical),
        cmocka_unit_test(test_check_problem_cap),
        cmocka_unit_test(test_health_grouping),
        cmocka_unit_test(test_json_contract),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_expected_servers),
        cmocka_unit_test(test_exporter_fill),
        cmocka_unit_test(test_ipv6_and_leader_addr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
