/* test_sim: the Consul simulator agrees with the documented Consul response shapes (the
 * project's fixtures in tests/fixtures/consul-api/) and models raft, serf, autopilot, blocking
 * queries, ACLs, the exporter and its control API. Needs CONSUL_SIM_BIN; CONSULATE_SRC is the repo
 * root. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "simctl.h"

/* ---------------------------------------------------------------- helpers */

static char *
url_of(const char *base, const char *path)
{
    size_t n = strlen(base) + strlen(path) + 1;
    char *u = malloc(n);
    assert_non_null(u);
    snprintf(u, n, "%s%s", base, path);
    return u;
}

/* GET base+path; returns the status and (optionally) the body/headers to free. */
static long
get(const char *base, const char *path, char **body, char **headers)
{
    char *u = url_of(base, path);
    long st = 0;
    int rc = sim_http_get(u, &st, body, headers);
    free(u);
    return rc == 0 ? st : -rc;
}

static long
req(const char *method, const char *base, const char *path, const char *data, char **body)
{
    char *u = url_of(base, path);
    long st = 0;
    int rc = sim_http(method, u, data, NULL, &st, body, NULL);
    free(u);
    return rc == 0 ? st : -rc;
}

static cJSON *
get_json(const char *base, const char *path, long *status)
{
    char *u = url_of(base, path);
    cJSON *j = sim_get_json(u, status);
    free(u);
    return j;
}

/* Control API call that must answer want; returns the parsed body (caller deletes). */
static cJSON *
ctl(struct sim *sim, const char *method, const char *path, const char *body, long want)
{
    long st = 0;
    char *resp = NULL;
    int rc = sim_ctl(sim, method, path, body, &st, &resp);
    if (rc != 0 || st != want) {
        print_error("control %s %s -> rc %d status %ld body %s\n", method, path, rc, st,
                    resp ? resp : "");
    }
    assert_int_equal(rc, 0);
    assert_int_equal(st, want);
    cJSON *j = cJSON_Parse(resp);
    free(resp);
    return j;
}

static void
ctl_ok(struct sim *sim, const char *method, const char *path, const char *body)
{
    cJSON_Delete(ctl(sim, method, path, body, 200));
}

static char *
leader_of(const char *http)
{
    char *body = NULL;
    long st = get(http, "/v1/status/leader", &body, NULL);
    if (st != 200) {
        free(body);
        return NULL;
    }
    cJSON *j = cJSON_Parse(body);
    free(body);
    char *out = cJSON_IsString(j) ? strdup(j->valuestring) : NULL;
    cJSON_Delete(j);
    return out;
}

/* Polls until the agent at http reports a leader equal to want ("" = none), for up to ms. */
static bool
wait_leader(const char *http, const char *want, int ms)
{
    long long deadline = sim_now_ms() + ms;
    do {
        char *l = leader_of(http);
        bool ok = l && strcmp(l, want) == 0;
        free(l);
        if (ok) {
            return true;
        }
        sim_sleep_ms(10);
    } while (sim_now_ms() < deadline);
    return false;
}

static bool
wait_refused(const char *http, int ms)
{
    long long deadline = sim_now_ms() + ms;
    do {
        if (sim_refused(http) == 1) {
            return true;
        }
        sim_sleep_ms(10);
    } while (sim_now_ms() < deadline);
    return false;
}

/* Finds the element of array a whose string member key equals value. Borrowed. */
static const cJSON *
find_by(const cJSON *a, const char *key, const char *value)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, a)
    {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, key);
        if (cJSON_IsString(v) && strcmp(v->valuestring, value) == 0) {
            return e;
        }
    }
    return NULL;
}

static int
member_status(const char *http, const char *name)
{
    cJSON *m = get_json(http, "/v1/agent/members", NULL);
    const cJSON *e = find_by(m, "Name", name);
    int st = e ? cJSON_GetObjectItemCaseSensitive(e, "Status")->valueint : -1;
    cJSON_Delete(m);
    return st;
}

static int
raft_count(const char *http, const char *query, int *voters, int *leaders)
{
    cJSON *c = get_json(http, query, NULL);
    const cJSON *servers = cJSON_GetObjectItemCaseSensitive(c, "Servers");
    int n = 0;
    *voters = *leaders = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, servers)
    {
        n++;
        *voters += cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "Voter"));
        *leaders += cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "Leader"));
    }
    cJSON_Delete(c);
    return servers ? n : -1;
}

static bool
log_contains(struct sim *sim, const char *server, const char *needle)
{
    char path[128];
    snprintf(path, sizeof(path), "/sim/servers/%s/log", server);
    cJSON *j = ctl(sim, "GET", path, NULL, 200);
    bool found = false;
    const cJSON *l;
    cJSON_ArrayForEach(l, cJSON_GetObjectItemCaseSensitive(j, "lines"))
    {
        found = found || strstr(l->valuestring, needle) != NULL;
    }
    cJSON_Delete(j);
    return found;
}

/* ------------------------------------------------------------ shape test */

/* Keys whose objects are maps with dynamic keys (compare value shapes, not keys). */
static bool
dynamic_key(const char *key)
{
    static const char *const keys[] = {"Meta", "NodeMeta", "ServiceMeta", "Tags"};
    for (size_t i = 0; key && i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (strcmp(key, keys[i]) == 0) {
            return true;
        }
    }
    return false;
}

static const char *
type_name(const cJSON *j)
{
    if (cJSON_IsNull(j)) {
        return "null";
    }
    if (cJSON_IsBool(j)) {
        return "bool";
    }
    if (cJSON_IsNumber(j)) {
        return "number";
    }
    if (cJSON_IsString(j)) {
        return "string";
    }
    if (cJSON_IsArray(j)) {
        return "array";
    }
    return cJSON_IsObject(j) ? "object" : "invalid";
}

/* Union of the shapes of the elements (or values) of container c: objects merge their keys,
 * other types keep the first non-null. Returns a new tree or NULL when c is empty. */
static cJSON *
merged_shape(const cJSON *c)
{
    cJSON *out = NULL;
    const cJSON *e;
    cJSON_ArrayForEach(e, c)
    {
        if (!out || cJSON_IsNull(out)) {
            cJSON_Delete(out);
            out = cJSON_Duplicate(e, 1);
            continue;
        }
        if (cJSON_IsObject(out) && cJSON_IsObject(e)) {
            const cJSON *k;
            cJSON_ArrayForEach(k, e)
            {
                const cJSON *have = cJSON_GetObjectItemCaseSensitive(out, k->string);
                if (!have) {
                    cJSON_AddItemToObject(out, k->string, cJSON_Duplicate(k, 1));
                } else if (cJSON_IsNull(have) && !cJSON_IsNull(k)) {
                    cJSON_ReplaceItemInObjectCaseSensitive(out, k->string, cJSON_Duplicate(k, 1));
                } else if (cJSON_IsArray(have) && cJSON_GetArraySize(have) == 0 &&
                           cJSON_IsArray(k) && cJSON_GetArraySize(k) > 0) {
                    cJSON_ReplaceItemInObjectCaseSensitive(out, k->string, cJSON_Duplicate(k, 1));
                }
            }
        }
    }
    return out;
}

static const cJSON *
lookup_key(const cJSON *obj, const char *key, const char *path)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    /* The docs themselves disagree on "address"/"Address" inside TaggedAddresses; Go
     * decodes either, so accept a case-insensitive match there only. */
    if (!v && strstr(path, "TaggedAddresses")) {
        v = cJSON_GetObjectItem(obj, key);
    }
    return v;
}

struct shape_ctx {
    const char *const *dyn_paths; /* object paths that are dynamic maps */
    char err[1024];
};

static bool
is_dyn_path(const struct shape_ctx *sc, const char *path, const char *key)
{
    for (size_t i = 0; sc->dyn_paths && sc->dyn_paths[i]; i++) {
        if (strcmp(sc->dyn_paths[i], path) == 0) {
            return true;
        }
    }
    return dynamic_key(key);
}

/* Every key of fixture fx exists in answer ans with the same JSON type, recursively. */
static bool
shape_ok(struct shape_ctx *sc, const cJSON *fx, const cJSON *ans, const char *path, const char *key)
{
    char sub[512];
    if (cJSON_IsNull(fx)) {
        return true; /* a Go nil slice/map/pointer: any type */
    }
    if (strcmp(type_name(fx), type_name(ans)) != 0) {
        snprintf(sc->err, sizeof(sc->err), "%s: fixture has %s, simulator has %s", path,
                 type_name(fx), type_name(ans));
        return false;
    }
    bool top = strcmp(path, "$") == 0;
    if (cJSON_IsArray(fx) || (cJSON_IsObject(fx) && is_dyn_path(sc, path, key))) {
        cJSON *shape = merged_shape(fx);
        bool ok = true;
        if (shape && top && cJSON_GetArraySize(ans) == 0) {
            snprintf(sc->err, sizeof(sc->err), "%s: simulator returned an empty %s", path,
                     type_name(ans));
            ok = false;
        }
        const cJSON *e;
        cJSON_ArrayForEach(e, ans)
        {
            if (!ok || !shape) {
                break;
            }
            if (cJSON_IsArray(ans)) {
                snprintf(sub, sizeof(sub), "%s[]", path);
            } else {
                snprintf(sub, sizeof(sub), "%s.%s", path, e->string);
            }
            ok = shape_ok(sc, shape, e, sub, NULL);
        }
        cJSON_Delete(shape);
        return ok;
    }
    if (cJSON_IsObject(fx)) {
        const cJSON *k;
        cJSON_ArrayForEach(k, fx)
        {
            snprintf(sub, sizeof(sub), "%s.%s", path, k->string);
            const cJSON *v = lookup_key(ans, k->string, sub);
            if (!v) {
                snprintf(sc->err, sizeof(sc->err), "%s: missing in the simulator's answer", sub);
                return false;
            }
            if (!shape_ok(sc, k, v, sub, k->string)) {
                return false;
            }
        }
    }
    return true;
}

struct fixture_map {
    const char *file;
    const char *method; /* NULL = not a response: skipped */
    const char *path;
    const char *body;
    const char *const *dyn;
};

static const char *const dyn_root[] = {"$", NULL};
static const char *const dyn_node[] = {"$.Services", NULL};
static const char *const dyn_state[] = {"$.Servers", "$.RedundancyZones", NULL};

static const struct fixture_map fixtures[] = {
    {"v1_agent_checks.json", "GET", "/v1/agent/checks", NULL, dyn_root},
    {"v1_agent_health_service_name_web.json", "GET", "/v1/agent/health/service/name/web", NULL,
     NULL},
    {"v1_agent_members.json", "GET", "/v1/agent/members", NULL, NULL},
    {"v1_agent_self.json", "GET", "/v1/agent/self", NULL, NULL},
    {"v1_agent_services.json", "GET", "/v1/agent/services", NULL, dyn_root},
    {"v1_catalog_datacenters.json", "GET", "/v1/catalog/datacenters", NULL, NULL},
    {"v1_catalog_node-services_consul-1.json", "GET", "/v1/catalog/node-services/consul-1", NULL,
     NULL},
    {"v1_catalog_node_consul-1.json", "GET", "/v1/catalog/node/consul-1", NULL, dyn_node},
    {"v1_catalog_nodes.json", "GET", "/v1/catalog/nodes", NULL, NULL},
    {"v1_catalog_service_web.json", "GET", "/v1/catalog/service/web", NULL, NULL},
    {"v1_catalog_services.json", "GET", "/v1/catalog/services", NULL, dyn_root},
    {"v1_coordinate_datacenters.json", "GET", "/v1/coordinate/datacenters", NULL, NULL},
    {"v1_coordinate_nodes.json", "GET", "/v1/coordinate/nodes", NULL, NULL},
    {"v1_health_checks_redis.json", "GET", "/v1/health/checks/redis", NULL, NULL},
    {"v1_health_node_consul-1.json", "GET", "/v1/health/node/consul-1", NULL, NULL},
    {"v1_health_service_redis.json", "GET", "/v1/health/service/redis", NULL, NULL},
    {"v1_health_state_passing.json", "GET", "/v1/health/state/passing", NULL, NULL},
    {"v1_kv_key.json", "GET", "/v1/kv/locks/scheduler/leader", NULL, NULL},
    {"v1_kv_key_keys.json", "GET", "/v1/kv/config/?keys&separator=/", NULL, NULL},
    {"v1_kv_key_put.json", "PUT", "/v1/kv/shape/put", "value", NULL},
    {"v1_operator_autopilot_configuration.json", "GET", "/v1/operator/autopilot/configuration",
     NULL, NULL},
    {"v1_operator_autopilot_health.json", "GET", "/v1/operator/autopilot/health", NULL, NULL},
    {"v1_operator_autopilot_state.json", "GET", "/v1/operator/autopilot/state", NULL, dyn_state},
    /* Nested parts of the state response, compared inside test_shapes. */
    {"v1_operator_autopilot_state_server.json", NULL, NULL, NULL, NULL},
    {"v1_operator_autopilot_state_redundancy_zone.json", NULL, NULL, NULL, NULL},
    {"v1_operator_autopilot_state_upgrade.json", NULL, NULL, NULL, NULL},
    {"v1_operator_raft_configuration.json", "GET", "/v1/operator/raft/configuration", NULL, NULL},
    {"v1_operator_raft_peer_delete.request.json", NULL, NULL, NULL, NULL},
    {"v1_status_leader.json", "GET", "/v1/status/leader", NULL, NULL},
    {"v1_status_peers.json", "GET", "/v1/status/peers", NULL, NULL},
};

static cJSON *
load_fixture(const char *dir, const char *file)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    FILE *f = fopen(path, "rb");
    if (!f) {
        print_error("cannot open %s\n", path);
        return NULL;
    }
    static char data[1 << 20];
    size_t n = fread(data, 1, sizeof(data) - 1, f);
    fclose(f);
    data[n] = '\0';
    return cJSON_Parse(data);
}

static void
fixture_dir(char *out, size_t len)
{
    const char *src = getenv("CONSULATE_SRC");
    snprintf(out, len, "%s/tests/fixtures/consul-api", src && *src ? src : ".");
}

/* Compares every value of answer object ans (a map) with the fixture in file. */
static void
compare_nested(const char *dir, const char *file, const cJSON *ans, const char *path,
               bool each_value)
{
    cJSON *fx = load_fixture(dir, file);
    assert_non_null(fx);
    struct shape_ctx sc = {NULL, ""};
    const cJSON *v;
    if (!each_value) {
        assert_non_null(ans);
        if (!shape_ok(&sc, fx, ans, path, NULL)) {
            fail_msg("%s: %s", file, sc.err);
        }
    } else {
        cJSON_ArrayForEach(v, ans)
        {
            if (!shape_ok(&sc, fx, v, path, NULL)) {
                fail_msg("%s: %s", file, sc.err);
            }
        }
    }
    cJSON_Delete(fx);
}

static void
test_shapes(void **state)
{
    (void)state;
    struct sim *sim = sim_start("--servers 3 --clients 2 --demo-data --ip-base 127.0.0.31");
    assert_non_null(sim);
    const char *http = sim->servers[0].http;
    /* KV data for the KV fixtures: a locked key (Session) and, besides the demo data's
     * config/app/ and config/db/ trees, a leaf under config/. */
    assert_int_equal(req("PUT", http,
                         "/v1/kv/locks/scheduler/leader?acquire=928ef5e4-68d2-4177-96ea-"
                         "75360801eef8",
                         "k8s-node-2", NULL),
                     200);
    assert_int_equal(req("PUT", http, "/v1/kv/config/maintenance", "off", NULL), 200);
    char dir[1024];
    fixture_dir(dir, sizeof(dir));
    DIR *d = opendir(dir);
    if (!d) {
        fail_msg("cannot open fixture directory %s (set CONSULATE_SRC)", dir);
    }
    int compared = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l < 5 || strcmp(de->d_name + l - 5, ".json") != 0) {
            continue;
        }
        const struct fixture_map *fm = NULL;
        for (size_t i = 0; i < sizeof(fixtures) / sizeof(fixtures[0]); i++) {
            if (strcmp(fixtures[i].file, de->d_name) == 0) {
                fm = &fixtures[i];
            }
        }
        if (!fm) {
            fail_msg("fixture %s has no endpoint mapping in test_sim.c", de->d_name);
        }
        if (!fm->method) {
            continue;
        }
        cJSON *fx = load_fixture(dir, fm->file);
        assert_non_null(fx);
        char *body = NULL;
        char *headers = NULL;
        char *u = url_of(http, fm->path);
        long st = 0;
        int rc = sim_http(fm->method, u, fm->body, NULL, &st, &body, &headers);
        free(u);
        assert_int_equal(rc, 0);
        if (st != 200 && st != 429 && st != 503) {
            fail_msg("%s %s -> %ld %s", fm->method, fm->path, st, body);
        }
        char *ctype = sim_header(headers, "Content-Type");
        assert_non_null(ctype);
        assert_string_equal(ctype, "application/json");
        cJSON *ans = cJSON_Parse(body);
        if (!ans) {
            fail_msg("%s: simulator body is not JSON: %s", fm->path, body);
        }
        struct shape_ctx sc = {fm->dyn, ""};
        if (!shape_ok(&sc, fx, ans, "$", NULL)) {
            fail_msg("%s (%s %s): %s", fm->file, fm->method, fm->path, sc.err);
        }
        if (strcmp(fm->file, "v1_operator_autopilot_state.json") == 0) {
            const cJSON *servers = cJSON_GetObjectItemCaseSensitive(ans, "Servers");
            assert_int_equal(cJSON_GetArraySize(servers), 3);
            compare_nested(dir, "v1_operator_autopilot_state_server.json", servers, "$.Servers.*",
                           true);
            compare_nested(dir, "v1_operator_autopilot_state_redundancy_zone.json",
                           cJSON_GetObjectItemCaseSensitive(ans, "RedundancyZones"),
                           "$.RedundancyZones.*", true);
            compare_nested(dir, "v1_operator_autopilot_state_upgrade.json",
                           cJSON_GetObjectItemCaseSensitive(ans, "Upgrade"), "$.Upgrade", false);
        }
        compared++;
        cJSON_Delete(ans);
        cJSON_Delete(fx);
        free(ctype);
        free(body);
        free(headers);
    }
    closedir(d);
    assert_true(compared >= 25);
    assert_int_equal(sim_stop_rc(sim), 0);
}

/* ------------------------------------------------------------ raft tests */

static void
test_raft_quorum(void **state)
{
    (void)state;
    struct sim *sim = sim_start("--servers 4 --speed 20 --ip-base 127.0.0.41");
    assert_non_null(sim);
    const char *h1 = sim->servers[0].http;
    const char *h3 = sim->servers[2].http;
    int voters;
    int leaders;
    assert_int_equal(raft_count(h3, "/v1/operator/raft/configuration", &voters, &leaders), 4);
    assert_int_equal(voters, 4);
    assert_int_equal(leaders, 1);
    assert_true(wait_leader(h3, "127.0.0.41:8300", 100));

    /* Two of four voters down: no quorum, no leader. */
    ctl_ok(sim, "POST", "/sim/servers/consul-1/stop", NULL);
    assert_true(wait_leader(h3, "127.0.0.42:8300", 1000)); /* 3 of 4 up: new leader */
    ctl_ok(sim, "POST", "/sim/servers/consul-2/stop", NULL);
    assert_true(wait_leader(h3, "", 1000));
    char *body = NULL;
    char *headers = NULL;
    assert_int_equal(get(h3, "/v1/operator/raft/configuration", &body, &headers), 500);
    assert_string_equal(body, "No cluster leader");
    char *ct = sim_header(headers, "Content-Type");
    assert_string_equal(ct, "text/plain; charset=utf-8");
    free(ct);
    free(body);
    free(headers);
    assert_int_equal(get(h3, "/v1/kv/anything", NULL, NULL), 500);
    assert_int_equal(get(h3, "/v1/catalog/nodes", NULL, NULL), 500);
    assert_int_equal(get(h3, "/v1/operator/raft/configuration?stale", &body, &headers), 200);
    char *kl = sim_header(headers, "X-Consul-KnownLeader");
    char *ec = sim_header(headers, "X-Consul-Effective-Consistency");
    assert_string_equal(kl, "false");
    assert_string_equal(ec, "stale");
    free(kl);
    free(ec);
    free(body);
    free(headers);
    assert_int_equal(raft_count(h3, "/v1/operator/raft/configuration?stale", &voters, &leaders), 4);
    assert_int_equal(leaders, 0);
    assert_int_equal(get(h3, "/v1/operator/autopilot/health", NULL, NULL), 500);
    assert_int_equal(member_status(h3, "consul-1"), 4);
    assert_int_equal(member_status(h3, "consul-3"), 1);
    assert_true(wait_refused(h1, 1000));

    /* Exporter of a stopped agent keeps answering with consul_up 0. */
    body = NULL;
    assert_int_equal(get(sim->servers[0].metrics, "/metrics", &body, NULL), 200);
    assert_non_null(strstr(body, "\nconsul_up 0\n"));
    free(body);

    /* One back: quorum again. */
    ctl_ok(sim, "POST", "/sim/servers/consul-2/start", NULL);
    assert_true(wait_leader(h3, "127.0.0.42:8300", 1000));
    assert_int_equal(get(sim->servers[1].http, "/v1/status/leader", NULL, NULL), 200);
    assert_int_equal(raft_count(h3, "/v1/operator/raft/configuration", &voters, &leaders), 4);
    assert_int_equal(leaders, 1);
    /* Health: consul-1 is down, so autopilot reports unhealthy with 429 and the same JSON. */
    cJSON *h = get_json(h3, "/v1/operator/autopilot/health", NULL);
    assert_false(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(h, "Healthy")));
    cJSON_Delete(h);
    assert_int_equal(get(h3, "/v1/operator/autopilot/health", NULL, NULL), 429);
    ctl_ok(sim, "POST", "/sim/servers/consul-1/start", NULL);
    assert_int_equal(get(h1, "/v1/status/leader", NULL, NULL), 200);
    long long deadline = sim_now_ms() + 1000;
    while (get(h3, "/v1/operator/autopilot/health", NULL, NULL) != 200 && sim_now_ms() < deadline) {
        sim_sleep_ms(10);
    }
    h = get_json(h3, "/v1/operator/autopilot/health", NULL);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(h, "Healthy")));
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(h, "FailureTolerance")->valueint, 1);
    cJSON_Delete(h);
    assert_int_equal(sim_stop_rc(sim), 0);
}

static void
test_join_and_promotion(void **state)
{
    (void)state;
    struct sim *sim = sim_start("--servers 3 --speed 20 --ip-base 127.0.0.51");
    assert_non_null(sim);
    const char *h1 = sim->servers[0].http;
    long long t0 = sim_now_ms();
    cJSON *s4 =
        ctl(sim, "POST", "/sim/servers",
            "{\"name\":\"consul-4\",\"ip\":\"127.0.0.54\",\"retry_join\":[\"127.0.0.51\"]}", 201);
    char h4[128];
    snprintf(h4, sizeof(h4), "%s", cJSON_GetObjectItemCaseSensitive(s4, "http")->valuestring);
    cJSON_Delete(s4);
    /* It appears as a non-voter, then autopilot promotes it after 10 s / 20 = 500 ms. */
    bool seen_nonvoter = false;
    long long promoted = 0;
    while (sim_now_ms() - t0 < 5000 && !promoted) {
        cJSON *c = get_json(h1, "/v1/operator/raft/configuration", NULL);
        const cJSON *e =
            find_by(cJSON_GetObjectItemCaseSensitive(c, "Servers"), "Node", "consul-4");
        if (e && cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(e, "Voter"))) {
            seen_nonvoter = true;
        }
        if (e && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "Voter"))) {
            promoted = sim_now_ms();
        }
        cJSON_Delete(c);
        sim_sleep_ms(10);
    }
    assert_true(seen_nonvoter);
    assert_true(promoted > 0);
    assert_true(promoted - t0 >= 400);
    assert_true(wait_leader(h4, "127.0.0.51:8300", 500));
    int voters;
    int leaders;
    assert_int_equal(raft_count(h4, "/v1/operator/raft/configuration", &voters, &leaders), 4);
    assert_int_equal(voters, 4);
    cJSON *st = get_json(h1, "/v1/operator/autopilot/state", NULL);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(st, "Voters")), 4);
    cJSON_Delete(st);

    /* A server whose retry-join list names nobody alive keeps retrying, with no leader. */
    cJSON *s5 =
        ctl(sim, "POST", "/sim/servers",
            "{\"name\":\"consul-5\",\"ip\":\"127.0.0.55\",\"retry_join\":[\"127.0.0.59\"]}", 201);
    char h5[128];
    snprintf(h5, sizeof(h5), "%s", cJSON_GetObjectItemCaseSensitive(s5, "http")->valuestring);
    cJSON_Delete(s5);
    sim_sleep_ms(200);
    assert_true(wait_leader(h5, "", 10));
    assert_int_equal(get(h5, "/v1/catalog/nodes", NULL, NULL), 500);
    cJSON *m = get_json(h5, "/v1/agent/members", NULL);
    assert_int_equal(cJSON_GetArraySize(m), 1);
    cJSON_Delete(m);
    assert_true(log_contains(sim, "consul-5", "Join cluster failed, will retry"));
    assert_int_equal(member_status(h1, "consul-5"), -1);
    /* Fix the "compose file" and restart: it joins. */
    ctl_ok(sim, "POST", "/sim/servers/consul-5/config", "{\"retry_join\":[\"127.0.0.52\"]}");
    ctl_ok(sim, "POST", "/sim/servers/consul-5/stop", NULL);
    ctl_ok(sim, "POST", "/sim/servers/consul-5/start", NULL);
    assert_true(wait_leader(h5, "127.0.0.51:8300", 1000));
    assert_int_equal(member_status(h1, "consul-5"), 1);
    assert_int_equal(sim_stop_rc(sim), 0);
}

static void
test_name_conflict(void **state)
{
    (void)state;
    struct sim *sim = sim_start("--servers 3 --speed 20 --ip-base 127.0.0.61");
    assert_non_null(sim);
    const char *h1 = sim->servers[0].http;
    cJSON_Delete(ctl(sim, "POST", "/sim/servers",
                     "{\"name\":\"consul-2\",\"ip\":\"127.0.0.65\","
                     "\"retry_join\":[\"127.0.0.61\"]}",
                     201));
    const char *msg = "Node name conflicts with another node at 127.0.0.62:8301. Names must be "
                      "unique!";
    long long deadline = sim_now_ms() + 2000;
    while (!log_contains(sim, "127.0.0.65", msg) && sim_now_ms() < deadline) {
        sim_sleep_ms(20);
    }
    assert_true(log_contains(sim, "127.0.0.65", msg));
    cJSON *m = get_json(h1, "/v1/agent/members", NULL);
    assert_int_equal(cJSON_GetArraySize(m), 3);
    cJSON_Delete(m);
    int voters;
    int leaders;
    assert_int_equal(raft_count(h1, "/v1/operator/raft/configuration", &voters, &leaders), 3);
    assert_int_equal(sim_stop_rc(sim), 0);
}

static void
test_leave_stop_force_leave(void **state)
{
    (void)state;
    struct sim *sim = sim_start("--servers 4 --speed 20 --ip-base 127.0.0.71");
    assert_non_null(sim);
    const char *h1 = sim->servers[0].http;
    const char *h3 = sim->servers[2].http;
    const char *h4 = sim->servers[3].http;
    int voters;
    int leaders;
    /* Graceful leave on the agent itself. */
    assert_int_equal(req("PUT", h4, "/v1/agent/leave", NULL, NULL), 200);
    assert_true(wait_refused(h4, 1000));
    assert_int_equal(raft_count(h1, "/v1/operator/raft/configuration", &voters, &leaders), 3);
    assert_int_equal(member_status(h1, "consul-4"), 3);
    /* A stopped server stays in raft and shows failed. */
    ctl_ok(sim, "POST", "/sim/servers/consul-3/stop", NULL);
    assert_true(wait_refused(h3, 1000));
    assert_int_equal(member_status(h1, "consul-3"), 4);
    assert_int_equal(raft_count(h1, "/v1/operator/raft/configuration", &voters, &leaders), 3);
    assert_int_equal(leaders, 1);
    ctl_ok(sim, "POST", "/sim/servers/consul-3/start", NULL);
    assert_int_equal(get(h3, "/v1/agent/self", NULL, NULL), 200);
    assert_int_equal(member_status(h1, "consul-3"), 1);
    /* force-leave of the failed node: left, and out of raft. */
    ctl_ok(sim, "POST", "/sim/servers/consul-3/stop", NULL);
    assert_int_equal(req("PUT", h1, "/v1/agent/force-leave/consul-3", NULL, NULL), 200);
    assert_int_equal(member_status(h1, "consul-3"), 3);
    assert_int_equal(raft_count(h1, "/v1/operator/raft/configuration", &voters, &leaders), 2);
    assert_int_equal(req("PUT", h1, "/v1/agent/force-leave/nope", NULL, NULL), 500);
    /* remove-peer and transfer-leader. */
    assert_int_equal(req("POST", h1, "/v1/operator/raft/transfer-leader", NULL, NULL), 200);
    assert_true(wait_leader(h1, "127.0.0.72:8300", 100));
    assert_int_equal(req("DELETE", h1, "/v1/operator/raft/peer?address=10.9.9.9:8300", NULL, NULL),
                     500);
    assert_int_equal(sim_stop_rc(sim), 0);
}

/* ------------------------------------------------------- blocking queries */

struct delayed {
    const char *method;
    char url[256];
    const char *body;
    int delay_ms;
};

static void *
delayed_main(void *arg)
{
    struct delayed *d = arg;
    sim_sleep_ms(d->delay_ms);
    sim_http(d->method, d->url, d->body, NULL, NULL, NULL, NULL);
    return NULL;
}

static unsigned long long
index_of(const char *headers)
{
    char *v = sim_header(headers, "X-Consul-Index");
    unsigned long long n = v ? strtoull(v, NULL, 10) : 0;
    free(v);
    return n;
}

static void
test_blocking_kv(void **state)
{
    (void)state;
    struct sim *sim = sim_start("--servers 3 --ip-base 127.0.0.81");
    assert_non_null(sim);
    const char *h = sim->servers[1].http;
    char *headers = NULL;
    char path[256];
    assert_int_equal(req("PUT", h, "/v1/kv/watch", "a", NULL), 200);
    assert_int_equal(get(h, "/v1/kv/watch", NULL, &headers), 200);
    unsigned long long idx = index_of(headers);
    free(headers);
    assert_true(idx > 0);

    /* A PUT wakes the watcher promptly. */
    struct delayed d = {"PUT", "", "b", 200};
    snprintf(d.url, sizeof(d.url), "%s/v1/kv/watch", sim->servers[0].http);
    pthread_t t;
    pthread_create(&t, NULL, delayed_main, &d);
    long long t0 = sim_now_ms();
    snprintf(path, sizeof(path), "/v1/kv/watch?index=%llu&wait=5s", idx);
    assert_int_equal(get(h, path, NULL, &headers), 200);
    long long took = sim_now_ms() - t0;
    pthread_join(t, NULL);
    unsigned long long idx2 = index_of(headers);
    free(headers);
    assert_true(took >= 150 && took < 2000);
    assert_true(idx2 > idx);

    /* Without a change it waits for the wait time (plus at most wait/16). */
    t0 = sim_now_ms();
    snprintf(path, sizeof(path), "/v1/kv/watch?index=%llu&wait=300ms", idx2);
    assert_int_equal(get(h, path, NULL, &headers), 200);
    took = sim_now_ms() - t0;
    assert_int_equal(index_of(headers), idx2);
    free(headers);
    assert_true(took >= 290 && took < 1500);

    /* A catalog change does not wake a KV watcher. */
    struct delayed d2 = {"POST", "",
                         "{\"node\":\"consul-1\",\"check_id\":\"mem\","
                         "\"status\":\"warning\"}",
                         100};
    snprintf(d2.url, sizeof(d2.url), "%s/sim/checks", sim->control);
    pthread_create(&t, NULL, delayed_main, &d2);
    t0 = sim_now_ms();
    snprintf(path, sizeof(path), "/v1/kv/watch?index=%llu&wait=400ms", idx2);
    assert_int_equal(get(h, path, NULL, NULL), 200);
    took = sim_now_ms() - t0;
    pthread_join(t, NULL);
    assert_true(took >= 390);
    /* ... but it wakes a health watcher. */
    assert_int_equal(get(h, "/v1/health/state/any", NULL, &headers), 200);
    unsigned long long hidx = index_of(headers);
    free(headers);
    d2.body = "{\"node\":\"consul-1\",\"check_id\":\"mem\",\"status\":\"critical\"}";
    pthread_create(&t, NULL, delayed_main, &d2);
    t0 = sim_now_ms();
    snprintf(path, sizeof(path), "/v1/health/state/any?index=%llu&wait=5s", hidx);
    assert_int_equal(get(h, path, NULL, NULL), 200);
    took = sim_now_ms() - t0;
    pthread_join(t, NULL);
    assert_true(took < 2000);

    char *body = NULL;
    assert_int_equal(get(h, "/v1/kv/watch?index=1&wait=5parsecs", &body, NULL), 400);
    assert_string_equal(body, "Invalid wait time");
    free(body);
    assert_int_equal(get(h, "/v1/kv/watch?index=abc", &body, NULL), 400);
    assert_string_equal(body, "Invalid index");
    free(body);
    /* Members do not block. */
    t0 = sim_now_ms();
    assert_int_equal(get(h, "/v1/agent/members?index=999999&wait=2s", NULL, NULL), 200);
    assert_true(sim_now_ms() - t0 < 1000);
    assert_int_equal(sim_stop_rc(sim), 0);
}

/* ------------------------------------------------------- ACL and errors */

/* Sends method path (with body data, may be NULL) and checks the status, the body (unless
 * want_body is NULL) and the Location header (absent when want_location is NULL). */
static void
expect(const char *http, const char *method, const char *path, const char *data, long want,
       const char *want_body, const char *want_location)
{
    char *u = url_of(http, path);
    long st = 0;
    char *body = NULL;
    char *headers = NULL;
    assert_int_equal(sim_http(method, u, data, NULL, &st, &body, &headers), 0);
    if (st != want || (want_body && strcmp(body, want_body) != 0)) {
        fail_msg("%s %s -> %ld [%s], want %ld [%s]", method, path, st, body, want,
                 want_body ? want_body : "*");
    }
    char *loc = sim_header(headers, "Location");
    if (want_location) {
        assert_non_null(loc);
        assert_string_equal(loc, want_location);
    } else {
        assert_null(loc);
    }
    free(loc);
    free(u);
    free(body);
    free(headers);
}

static void
test_acl_token(void **state)
{
    (void)state;
    struct sim *sim = sim_start("--servers 1 --token s3cret --ip-base 127.0.0.91");
    assert_non_null(sim);
    const char *h = sim->servers[0].http;
    ctl_ok(sim, "POST", "/sim/requests/reset", NULL);
    char *body = NULL;
    char *headers = NULL;
    assert_int_equal(get(h, "/v1/status/leader", &body, &headers), 403);
    assert_string_equal(body, "Permission denied");
    char *ct = sim_header(headers, "Content-Type");
    assert_string_equal(ct, "text/plain; charset=utf-8");
    free(ct);
    free(body);
    free(headers);
    char *u = url_of(h, "/v1/status/leader");
    const char *const tok[] = {"X-Consul-Token: s3cret", NULL};
    const char *const bearer[] = {"Authorization: Bearer s3cret", NULL};
    const char *const wrong[] = {"X-Consul-Token: nope", NULL};
    long st = 0;
    assert_int_equal(sim_http("GET", u, NULL, tok, &st, NULL, NULL), 0);
    assert_int_equal(st, 200);
    assert_int_equal(sim_http("GET", u, NULL, bearer, &st, NULL, NULL), 0);
    assert_int_equal(st, 200);
    assert_int_equal(sim_http("GET", u, NULL, wrong, &st, NULL, NULL), 0);
    assert_int_equal(st, 403);
    free(u);
    cJSON *s = sim_state(sim);
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(s, "counters");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(c, "requests_without_token")->valueint, 1);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(c, "requests_total")->valueint, 4);
    cJSON_Delete(s);
    assert_int_equal(sim_stop_rc(sim), 0);
}

static void
test_errors_and_kv(void **state)
{
    (void)state;
    struct sim *sim = sim_start("--servers 1 --ip-base 127.0.0.101");
    assert_non_null(sim);
    const char *h = sim->servers[0].http;
    char *body = NULL;
    char *headers = NULL;
    assert_int_equal(get(h, "/v1/no/such/thing", NULL, NULL), 404);
    assert_int_equal(req("PUT", h, "/v1/status/leader", NULL, NULL), 405);
    char *u = url_of(h, "/v1/status/leader");
    long st;
    assert_int_equal(sim_http("POST", u, NULL, NULL, &st, NULL, &headers), 0);
    free(u);
    char *allow = sim_header(headers, "Allow");
    assert_string_equal(allow, "OPTIONS,GET"); /* Consul lists OPTIONS first */
    free(allow);
    free(headers);
    assert_int_equal(get(h, "/v1/catalog/nodes?stale&consistent", &body, NULL), 400);
    assert_string_equal(body, "Cannot specify ?stale with ?consistent, conflicting semantics.");
    free(body);
    assert_int_equal(get(h, "/v1/health/state/bogus", NULL, NULL), 400);
    /* Meta headers on the leader. */
    assert_int_equal(get(h, "/v1/catalog/nodes?consistent", NULL, &headers), 200);
    char *idx = sim_header(headers, "X-Consul-Index");
    char *lc = sim_header(headers, "X-Consul-LastContact");
    char *ec = sim_header(headers, "X-Consul-Effective-Consistency");
    assert_non_null(idx);
    assert_true(strtoull(idx, NULL, 10) > 0);
    assert_string_equal(lc, "0");
    assert_string_equal(ec, "consistent");
    free(idx);
    free(lc);
    free(ec);
    free(headers);
    /* KV semantics. */
    assert_int_equal(get(h, "/v1/kv/app/missing", NULL, NULL), 404);
    assert_int_equal(req("PUT", h, "/v1/kv/app/a?cas=0", "one", &body), 200);
    assert_string_equal(body, "true");
    free(body);
    assert_int_equal(req("PUT", h, "/v1/kv/app/a?cas=0", "two", &body), 200);
    assert_string_equal(body, "false");
    free(body);
    cJSON *e = get_json(h, "/v1/kv/app/a", NULL);
    int mi = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(e, 0), "ModifyIndex")->valueint;
    cJSON_Delete(e);
    char path[128];
    snprintf(path, sizeof(path), "/v1/kv/app/a?cas=%d&flags=42", mi);
    assert_int_equal(req("PUT", h, path, "three", &body), 200);
    assert_string_equal(body, "true");
    free(body);
    assert_int_equal(get(h, "/v1/kv/app/a?raw", &body, &headers), 200);
    assert_string_equal(body, "three");
    char *ct = sim_header(headers, "Content-Type");
    assert_string_equal(ct, "text/plain");
    free(ct);
    free(body);
    free(headers);
    e = get_json(h, "/v1/kv/app/a", NULL);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(e, 0), "Flags")->valueint,
                     42);
    assert_string_equal(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(e, 0), "Value")->valuestring,
        "dGhyZWU=");
    cJSON_Delete(e);
    assert_int_equal(req("DELETE", h, "/v1/kv/app/a?cas=1", NULL, &body), 200);
    assert_string_equal(body, "false");
    free(body);
    /* A delete-CAS of a key that does not exist: Consul's state store answers
     * "entry == nil", true, whatever the index. Parameters that cannot go together: 400
     * naming the encoded query. A cas or flags Go's strconv.ParseUint refuses: Consul's 500
     * with that error. Nothing is written by the refused ones. */
    expect(h, "DELETE", "/v1/kv/app/never?cas=5", NULL, 200, "true", NULL);
    expect(h, "DELETE", "/v1/kv/app/never?cas=0", NULL, 200, "true", NULL);
    expect(h, "PUT", "/v1/kv/app/a?cas=0&acquire=s1", "x", 400,
           "Conflicting flags: acquire=s1&cas=0\n", NULL);
    expect(h, "DELETE", "/v1/kv/app?recurse&cas=3", NULL, 400,
           "Conflicting flags: cas=3&recurse=\n", NULL);
    expect(h, "PUT", "/v1/kv/app/a?cas=x1", "x", 500,
           "strconv.ParseUint: parsing \"x1\": invalid syntax", NULL);
    expect(h, "PUT", "/v1/kv/app/a?flags=18446744073709551616", "x", 500,
           "strconv.ParseUint: parsing \"18446744073709551616\": value out of range", NULL);
    e = get_json(h, "/v1/kv/app/a", NULL);
    assert_string_equal(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(e, 0), "Value")->valuestring,
        "dGhyZWU="); /* still "three" */
    cJSON_Delete(e);
    assert_int_equal(req("PUT", h, "/v1/kv/app/b/c", "x", NULL), 200);
    cJSON *keys = get_json(h, "/v1/kv/app/?keys&separator=/", NULL);
    assert_int_equal(cJSON_GetArraySize(keys), 2);
    assert_string_equal(cJSON_GetArrayItem(keys, 0)->valuestring, "app/a");
    assert_string_equal(cJSON_GetArrayItem(keys, 1)->valuestring, "app/b/");
    cJSON_Delete(keys);
    size_t big = 524288 + 1;
    char *huge = malloc(big + 1);
    memset(huge, 'x', big);
    huge[big] = '\0';
    assert_int_equal(req("PUT", h, "/v1/kv/app/huge", huge, &body), 413);
    assert_string_equal(body, "Request body(524289 bytes) too large, max size: 524288 bytes. "
                              "See https://developer.hashicorp.com/docs/agent/config/"
                              "config-files#kv_max_value_size.");
    free(body);
    huge[big - 1] = '\0';
    assert_int_equal(req("PUT", h, "/v1/kv/app/huge", huge, NULL), 200);
    free(huge);
    assert_int_equal(req("DELETE", h, "/v1/kv/app?recurse", NULL, NULL), 200);
    assert_int_equal(get(h, "/v1/kv/app?recurse", NULL, NULL), 404);
    /* An empty store: ?keys under a prefix is 404, on the root it is an empty list. */
    assert_int_equal(get(h, "/v1/kv/app/?keys", NULL, NULL), 404);
    assert_int_equal(get(h, "/v1/kv/?keys", &body, NULL), 200);
    assert_string_equal(body, "[]");
    free(body);
    assert_int_equal(get(h, "/v1/kv/?recurse", NULL, NULL), 404);
    assert_int_equal(req("GET", h, "/v1/snapshot", NULL, NULL), 200);
    assert_int_equal(sim_stop_rc(sim), 0);
}

/* ------------------------------------- Go's net/http in front of Consul's handlers */

static void
test_go_http_front(void **state)
{
    (void)state;
    struct sim *sim = sim_start("--servers 1 --clients 1 --demo-data --ip-base 127.0.0.121");
    assert_non_null(sim);
    const char *h = sim->servers[0].http;
    char *body = NULL;
    char *headers = NULL;

    /* The key is taken from the decoded path: a%2Fb is a/b, as in Consul. */
    assert_int_equal(req("PUT", h, "/v1/kv/team%2Fa%20b", "v1", &body), 200);
    assert_string_equal(body, "true");
    free(body);
    assert_int_equal(get(h, "/v1/kv/team/a%20b?raw", &body, NULL), 200);
    assert_string_equal(body, "v1");
    free(body);
    cJSON *keys = get_json(h, "/v1/kv/team/?keys", NULL);
    assert_int_equal(cJSON_GetArraySize(keys), 1);
    assert_string_equal(cJSON_GetArrayItem(keys, 0)->valuestring, "team/a b");
    cJSON_Delete(keys);
    /* '+' is a plus in a path (only a query turns it into a space). */
    assert_int_equal(req("PUT", h, "/v1/kv/team/c+d", "v2", NULL), 200);
    assert_int_equal(get(h, "/v1/kv/team%2Fc%2Bd?raw", &body, NULL), 200);
    assert_string_equal(body, "v2");
    free(body);
    assert_int_equal(req("DELETE", h, "/v1/kv/team%2Fa%20b", NULL, NULL), 200);
    assert_int_equal(get(h, "/v1/kv/team/a%20b", NULL, NULL), 404);
    /* Names in other paths are decoded too. */
    assert_int_equal(get(h, "/v1/catalog/service/%77eb", &body, NULL), 200);
    cJSON *web = cJSON_Parse(body);
    assert_int_equal(cJSON_GetArraySize(web), 2);
    cJSON_Delete(web);
    free(body);
    assert_int_equal(get(h, "/v1/health/node/consul%2D1", &body, NULL), 200);
    assert_non_null(strstr(body, "\"serfHealth\""));
    free(body);
    assert_int_equal(get(h, "/v1/health/state/%63ritical", &body, NULL), 200);
    assert_non_null(strstr(body, "\"service:web2\""));
    free(body);
    assert_int_equal(get(h, "/v1/agent/health/service/name/r%65dis", NULL, NULL), 200);

    /* What Go's server refuses before Consul sees it: a bad escape (400 from the server),
     * a control character in the decoded path (go-cleanhttp: 400, empty body). */
    expect(h, "GET", "/v1/kv/a%zz", NULL, 400, "400 Bad Request", NULL);
    expect(h, "GET", "/v1/kv/a%2", NULL, 400, "400 Bad Request", NULL);
    expect(h, "PUT", "/v1/kv/a%00b", NULL, 400, "", NULL);
    expect(h, "GET", "/v1/kv/a%0Ab", NULL, 400, "", NULL);
    expect(h, "GET", "/v1/kv/a%7Fb", NULL, 400, "", NULL);
    expect(h, "GET", "/v1/kv/a%C2%A0b", NULL, 400, "", NULL);   /* NO-BREAK SPACE: not printable */
    assert_int_equal(get(h, "/v1/kv/a?keys", NULL, NULL), 404); /* nothing was written */
    /* ServeMux redirects an unclean path to the clean one, and a subtree root to the
     * subtree, keeping the query. */
    expect(h, "GET", "/v1/kv//config/app/log_level?raw&dc=dc1", NULL, 301,
           "<a href=\"/v1/kv/config/app/log_level?raw&amp;dc=dc1\">Moved Permanently</a>.\n\n",
           "/v1/kv/config/app/log_level?raw&dc=dc1");
    expect(h, "PUT", "/v1/kv/config/./app/x", NULL, 301, "", "/v1/kv/config/app/x");
    expect(h, "DELETE", "/v1/kv/config/db/../app/log_level", NULL, 301, "",
           "/v1/kv/config/app/log_level");
    expect(h, "GET", "/v1/kv/a%2F%2Fb", NULL, 301, NULL, "/v1/kv/a/b");
    expect(h, "GET", "/v1/kv/a%20b//c", NULL, 301, NULL, "/v1/kv/a%20b/c");
    expect(h, "GET", "/v1/kv?keys", NULL, 301, NULL, "/v1/kv/?keys");
    expect(h, "GET", "/v1/catalog/service", NULL, 301, NULL, "/v1/catalog/service/");
    assert_int_equal(get(h, "/v1/kv/config/app/x", NULL, NULL), 404); /* no write happened */
    assert_int_equal(get(h, "/v1/kv/config/app/log_level", NULL, NULL), 200);
    /* Unknown paths reach Consul's index handler: 404 without a body. */
    expect(h, "GET", "/v1/no/such/thing", NULL, 404, "", NULL);
    expect(h, "GET", "/v1/status/leader/", NULL, 404, "", NULL);
    /* A name missing from the path. */
    expect(h, "GET", "/v1/catalog/service/", NULL, 400, "Missing service name", NULL);
    expect(h, "GET", "/v1/catalog/node/", NULL, 400, "Missing node name", NULL);
    expect(h, "GET", "/v1/catalog/node-services/", NULL, 400, "Missing node name", NULL);
    expect(h, "GET", "/v1/health/node/", NULL, 400, "Missing node name", NULL);
    expect(h, "GET", "/v1/health/checks/", NULL, 400, "Missing service name", NULL);
    expect(h, "GET", "/v1/health/service/", NULL, 400, "Missing service name", NULL);
    expect(h, "GET", "/v1/health/state/", NULL, 400, "Missing check state", NULL);
    expect(h, "GET", "/v1/kv/", NULL, 400, "Missing key name", NULL);

    /* Methods: OPTIONS lists the endpoint's methods, OPTIONS first; any other method
     * Consul did not register (HEAD included) is 405 with the same Allow. */
    static const struct {
        const char *method, *path, *allow;
        long status;
    } methods[] = {
        {"OPTIONS", "/v1/kv/config/app/log_level", "OPTIONS,GET,PUT,DELETE", 200},
        {"HEAD", "/v1/kv/config/app/log_level", "OPTIONS,GET,PUT,DELETE", 405},
        {"POST", "/v1/kv/config/app/log_level", "OPTIONS,GET,PUT,DELETE", 405},
        {"HEAD", "/v1/status/leader", "OPTIONS,GET", 405},
        {"OPTIONS", "/v1/status/leader", "OPTIONS,GET", 200},
        {"GET", "/v1/agent/leave", "OPTIONS,PUT", 405},
        {"GET", "/v1/operator/raft/peer", "OPTIONS,DELETE", 405},
        {"HEAD", "/v1/snapshot", "OPTIONS,GET,PUT", 405},
        {"DELETE", "/v1/operator/autopilot/configuration", "OPTIONS,GET,PUT", 405},
    };
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        char *u = url_of(h, methods[i].path);
        long st = 0;
        assert_int_equal(sim_http(methods[i].method, u, NULL, NULL, &st, &body, &headers), 0);
        char *allow = sim_header(headers, "Allow");
        if (st != methods[i].status || !allow || strcmp(allow, methods[i].allow) != 0) {
            fail_msg("%s %s -> %ld Allow %s", methods[i].method, methods[i].path, st,
                     allow ? allow : "(none)");
        }
        if (strcmp(methods[i].method, "OPTIONS") == 0 || strcmp(methods[i].method, "HEAD") == 0) {
            assert_string_equal(body, "");
        } else {
            char want[64];
            snprintf(want, sizeof(want), "method %s not allowed", methods[i].method);
            assert_string_equal(body, want);
        }
        free(allow);
        free(u);
        free(body);
        free(headers);
    }
    assert_int_equal(get(h, "/v1/kv/config/app/log_level", NULL, NULL), 200); /* not deleted */

    /* Requests per method, counted for every agent request (the refused ones too). */
    ctl_ok(sim, "POST", "/sim/requests/reset", NULL);
    assert_int_equal(get(h, "/v1/status/leader", NULL, NULL), 200);
    assert_int_equal(get(h, "/v1/status/peers", NULL, NULL), 200);
    assert_int_equal(req("PUT", h, "/v1/kv/m", "1", NULL), 200);
    assert_int_equal(req("HEAD", h, "/v1/status/leader", NULL, NULL), 405);
    assert_int_equal(req("DELETE", h, "/v1/kv/m", NULL, NULL), 200);
    assert_int_equal(req("OPTIONS", h, "/v1/kv/m", NULL, NULL), 200);
    cJSON *rq = ctl(sim, "GET", "/sim/requests", NULL, 200);
    const cJSON *bm = cJSON_GetObjectItemCaseSensitive(rq, "by_method");
    assert_true(cJSON_IsObject(bm));
    assert_int_equal(cJSON_GetArraySize(bm), 5);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(bm, "GET")->valueint, 2);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(bm, "PUT")->valueint, 1);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(bm, "HEAD")->valueint, 1);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(bm, "DELETE")->valueint, 1);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(bm, "OPTIONS")->valueint, 1);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(rq, "total")->valueint, 6);
    /* by_path counts the decoded path, as Consul routes it. */
    assert_int_equal(get(h, "/v1/kv/m%2Fn", NULL, NULL), 404);
    cJSON_Delete(rq);
    rq = ctl(sim, "GET", "/sim/requests", NULL, 200);
    const cJSON *bp = cJSON_GetObjectItemCaseSensitive(rq, "by_path");
    assert_non_null(cJSON_GetObjectItemCaseSensitive(bp, "/v1/kv/m/n"));
    assert_null(cJSON_GetObjectItemCaseSensitive(bp, "/v1/kv/m%2Fn"));
    cJSON_Delete(rq);
    ctl_ok(sim, "POST", "/sim/requests/reset", NULL);
    rq = ctl(sim, "GET", "/sim/requests", NULL, 200);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(rq, "by_method")), 0);
    cJSON_Delete(rq);
    assert_int_equal(sim_stop_rc(sim), 0);
}

/* -------------------------------------------------- exporter and control */

static void
test_exporter_and_control(void **state)
{
    (void)state;
    struct sim *sim = sim_start("--servers 3 --clients 2 --demo-data --ip-base 127.0.0.111");
    assert_non_null(sim);
    const char *h1 = sim->servers[0].http;
    char *body = NULL;
    assert_int_equal(get(sim->servers[0].metrics, "/metrics", &body, NULL), 200);
    static const char *const want[] = {
        "# TYPE consul_up gauge\n",
        "\nconsul_up 1\n",
        "\nconsul_raft_peers 3\n",
        "\nconsul_raft_leader 1\n",
        "\nconsul_serf_lan_members 5\n",
        "consul_serf_lan_member_status{member=\"k8s-node-1\"} 1\n",
        "consul_health_node_status{check=\"serfHealth\",node=\"consul-1\",status=\"passing\"} 1",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        if (!strstr(body, want[i])) {
            fail_msg("metrics lack %s", want[i]);
        }
    }
    free(body);
    /* Agent health by service name reflects the failing demo check. */
    assert_int_equal(get(h1, "/v1/agent/health/service/name/web", NULL, NULL), 200);
    assert_int_equal(get(sim->servers[1].http, "/v1/agent/health/service/name/web", NULL, NULL),
                     503);
    assert_int_equal(get(h1, "/v1/agent/health/service/name/nope", NULL, NULL), 404);
    cJSON *crit = get_json(h1, "/v1/health/state/critical", NULL);
    assert_int_equal(cJSON_GetArraySize(crit), 1);
    cJSON_Delete(crit);
    /* A failed client. */
    ctl_ok(sim, "POST", "/sim/clients/k8s-node-1/fail", NULL);
    assert_int_equal(member_status(h1, "k8s-node-1"), 4);
    crit = get_json(h1, "/v1/health/state/critical", NULL);
    assert_non_null(find_by(crit, "Node", "k8s-node-1"));
    cJSON_Delete(crit);
    cJSON *passing = get_json(h1, "/v1/health/service/api?passing", NULL);
    assert_int_equal(cJSON_GetArraySize(passing), 1);
    cJSON_Delete(passing);
    /* Host down takes the exporter too; host up brings the agent back. */
    ctl_ok(sim, "POST", "/sim/servers/consul-3/host-down", NULL);
    assert_int_equal(sim_refused(sim->servers[2].metrics), 1);
    assert_int_equal(member_status(h1, "consul-3"), 4);
    ctl_ok(sim, "POST", "/sim/servers/consul-3/host-up", NULL);
    assert_int_equal(get(sim->servers[2].http, "/v1/status/leader", NULL, NULL), 200);
    assert_int_equal(member_status(h1, "consul-3"), 1);
    /* Bad control input. */
    cJSON *err = ctl(sim, "POST", "/sim/servers", "{}", 400);
    assert_non_null(strstr(cJSON_GetObjectItemCaseSensitive(err, "error")->valuestring, "name"));
    cJSON_Delete(err);
    err = ctl(sim, "POST", "/sim/checks",
              "{\"node\":\"consul-1\",\"check_id\":\"x\","
              "\"status\":\"bogus\"}",
              400);
    assert_non_null(strstr(cJSON_GetObjectItemCaseSensitive(err, "error")->valuestring, "status"));
    cJSON_Delete(err);
    cJSON_Delete(ctl(sim, "POST", "/sim/servers/nope/stop", NULL, 404));
    cJSON_Delete(ctl(sim, "PUT", "/sim/latency", "{\"ms\":\"x\"}", 400));
    /* Latency is added to agent responses. */
    ctl_ok(sim, "PUT", "/sim/latency", "{\"ms\":80}");
    long long t0 = sim_now_ms();
    assert_int_equal(get(h1, "/v1/status/leader", NULL, NULL), 200);
    assert_true(sim_now_ms() - t0 >= 75);
    ctl_ok(sim, "PUT", "/sim/latency", "{\"ms\":0}");
    ctl_ok(sim, "PUT", "/sim/speed", "{\"factor\":5}");
    /* Request counters by path. */
    ctl_ok(sim, "POST", "/sim/requests/reset", NULL);
    assert_int_equal(get(h1, "/v1/status/peers", NULL, NULL), 200);
    assert_int_equal(get(h1, "/v1/status/peers", NULL, NULL), 200);
    cJSON *rq = ctl(sim, "GET", "/sim/requests", NULL, 200);
    const cJSON *bp = cJSON_GetObjectItemCaseSensitive(rq, "by_path");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(bp, "/v1/status/peers")->valueint, 2);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(rq, "total")->valueint, 2);
    cJSON_Delete(rq);
    cJSON *s = sim_state(sim);
    assert_non_null(s);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(s, "leader")->valuestring, "consul-1");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(s, "servers")), 3);
    cJSON_Delete(s);
    assert_int_equal(sim_stop_rc(sim), 0);
}

/* ------------------------------------------------------------ Consul's timing */

/* Milliseconds until the agent at http stops naming `from` and names a leader other than
 * `from` (sets *forgot to the ms at which it named nobody, -1 if never seen); -1 when not
 * within limit_ms. Polls every 2 ms. */
static long long
time_to_new_leader(const char *http, const char *from, long long t0, int limit_ms,
                   long long *forgot, bool *named_old_first)
{
    *forgot = -1;
    *named_old_first = false;
    bool first = true;
    while (sim_now_ms() - t0 < limit_ms) {
        char *l = leader_of(http);
        if (l && first) {
            *named_old_first = strcmp(l, from) == 0;
        }
        first = false;
        if (l && !*l && *forgot < 0) {
            *forgot = sim_now_ms() - t0;
        }
        bool done = l && *l && strcmp(l, from) != 0;
        free(l);
        if (done) {
            return sim_now_ms() - t0;
        }
        sim_sleep_ms(2);
    }
    return -1;
}

/* The election timeouts the simulator drew so far (from /sim/state), into out; returns how
 * many. */
static int
election_timeouts(struct sim *sim, long long *out, int max)
{
    cJSON *st = sim_state(sim);
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(st, "election_timeouts_ms"))
    {
        if (n < max) {
            out[n++] = (long long)e->valuedouble;
        }
    }
    cJSON_Delete(st);
    return n;
}

/* After the leader stops: followers name it for a while, there is no leader for an election
 * timeout (1-3 s, here / 20), reads wait for the new leader instead of failing, and without
 * quorum they fail after rpc_hold_timeout (7 s / 20). */
static void
test_election_timing(void **state)
{
    (void)state;
    struct sim *sim = sim_start("--servers 5 --speed 20 --seed 7 --ip-base 127.0.0.141");
    assert_non_null(sim);
    const char *h2 = sim->servers[1].http;
    const char *h3 = sim->servers[2].http;
    assert_true(wait_leader(h2, "127.0.0.141:8300", 100)); /* formed at start, no election */
    long long drawn[SIM_MAX_SERVERS];
    assert_int_equal(election_timeouts(sim, drawn, SIM_MAX_SERVERS), 0);

    /* the window of this election only (the count also holds the start, before formation) */
    cJSON *st0 = sim_state(sim);
    double leaderless0 = cJSON_GetObjectItemCaseSensitive(st0, "leaderless_ms")->valuedouble;
    cJSON_Delete(st0);
    long long t0 = sim_now_ms();
    ctl_ok(sim, "POST", "/sim/servers/consul-1/stop", NULL);
    long long forgot = -1;
    bool named_old = false;
    long long took = time_to_new_leader(h2, "127.0.0.141:8300", t0, 2000, &forgot, &named_old);
    print_message("leader stopped: follower forgot it after %lld ms, new leader after %lld ms\n",
                  forgot, took);
    (void)named_old; /* checked at speed 2 in test_stale_leader */
    /* heartbeat timeout 1-2 s / 20 (a follower may also learn the new leader directly) */
    assert_true(forgot == -1 || (forgot >= 45 && forgot <= took));
    assert_true(took >= 45 && took <= 200); /* election timeout 1-3 s / 20, + ticks */
    assert_true(wait_leader(h2, "127.0.0.142:8300", 10));
    assert_int_equal(election_timeouts(sim, drawn, SIM_MAX_SERVERS), 1);
    assert_true(drawn[0] >= 1000 && drawn[0] < 3000);
    /* the measured window is the drawn timeout at speed 20 (ticks every 5 ms) */
    assert_true(took >= drawn[0] / 20 - 5 && took <= drawn[0] / 20 + 60);
    cJSON *st = sim_state(sim);
    double leaderless =
        cJSON_GetObjectItemCaseSensitive(st, "leaderless_ms")->valuedouble - leaderless0;
    print_message("election timeout drawn %lld ms, leaderless %.0f ms (simulated)\n", drawn[0],
                  leaderless);
    assert_true(leaderless >= drawn[0] - 100 && leaderless <= drawn[0] + 1200);
    cJSON_Delete(st);

    /* A read during the election is held and answered once the new leader is there. */
    t0 = sim_now_ms();
    ctl_ok(sim, "POST", "/sim/servers/consul-2/stop", NULL);
    char *body = NULL;
    char *headers = NULL;
    assert_int_equal(get(h3, "/v1/catalog/nodes", &body, &headers), 200);
    took = sim_now_ms() - t0;
    char *kl = sim_header(headers, "X-Consul-KnownLeader");
    assert_string_equal(kl, "true");
    free(kl);
    free(body);
    free(headers);
    assert_int_equal(election_timeouts(sim, drawn, SIM_MAX_SERVERS), 2);
    print_message("read during the election answered after %lld ms (timeout drawn %lld ms)\n", took,
                  drawn[1]);
    assert_true(took >= drawn[1] / 20 - 10 && took <= drawn[1] / 20 + 80);
    assert_true(wait_leader(h3, "127.0.0.143:8300", 10));

    /* Without quorum: held for rpc_hold_timeout, then 500. Writes too. */
    ctl_ok(sim, "POST", "/sim/servers/consul-3/stop", NULL);
    const char *h4 = sim->servers[3].http;
    t0 = sim_now_ms();
    assert_int_equal(get(h4, "/v1/operator/raft/configuration", &body, NULL), 500);
    took = sim_now_ms() - t0;
    assert_string_equal(body, "No cluster leader");
    free(body);
    print_message("no quorum: 500 after %lld ms (rpc_hold_timeout 7 s / 20)\n", took);
    assert_true(took >= 340 && took <= 1000);
    t0 = sim_now_ms();
    assert_int_equal(req("PUT", h4, "/v1/kv/x", "1", NULL), 500);
    assert_true(sim_now_ms() - t0 >= 340);
    /* local endpoints and ?stale answer at once */
    t0 = sim_now_ms();
    assert_int_equal(get(h4, "/v1/status/leader", NULL, NULL), 200);
    assert_int_equal(get(h4, "/v1/catalog/nodes?stale", NULL, NULL), 200);
    assert_true(sim_now_ms() - t0 < 200);
    /* no election is pending without quorum; quorum back: a leader after one timeout */
    st = sim_state(sim);
    assert_false(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(st, "election_pending")));
    cJSON_Delete(st);
    t0 = sim_now_ms();
    ctl_ok(sim, "POST", "/sim/servers/consul-3/start", NULL);
    took = time_to_new_leader(h4, "", t0, 2000, &forgot, &named_old);
    assert_int_equal(election_timeouts(sim, drawn, SIM_MAX_SERVERS), 3);
    assert_true(took >= drawn[2] / 20 - 5 && took <= drawn[2] / 20 + 60);
    assert_true(wait_leader(h4, "127.0.0.143:8300", 10));
    assert_int_equal(sim_stop_rc(sim), 0);
}

/* For a heartbeat timeout after the leader stops, followers still name it (status/leader,
 * X-Consul-KnownLeader, ?stale raft configuration), then nobody, then the new leader. At speed
 * 2 the windows are wide enough to see each phase. */
static void
test_stale_leader(void **state)
{
    (void)state;
    struct sim *sim = sim_start("--servers 3 --speed 2 --seed 21 --ip-base 127.0.0.211");
    assert_non_null(sim);
    const char *h3 = sim->servers[2].http;
    long long t0 = sim_now_ms();
    ctl_ok(sim, "POST", "/sim/servers/consul-1/stop", NULL);
    char *l = leader_of(h3);
    assert_string_equal(l, "127.0.0.211:8300");
    free(l);
    char *headers = NULL;
    char *body = NULL;
    assert_int_equal(get(h3, "/v1/operator/raft/configuration?stale", &body, &headers), 200);
    char *kl = sim_header(headers, "X-Consul-KnownLeader");
    assert_string_equal(kl, "true");
    free(kl);
    cJSON *cfg = cJSON_Parse(body);
    const cJSON *e1 = find_by(cJSON_GetObjectItemCaseSensitive(cfg, "Servers"), "Node", "consul-1");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e1, "Leader")));
    cJSON_Delete(cfg);
    free(body);
    free(headers);
    /* the exporter of a follower still reports a leader */
    assert_int_equal(get(sim->servers[2].metrics, "/metrics", &body, NULL), 200);
    assert_non_null(strstr(body, "\nconsul_raft_leader 1\n"));
    free(body);
    assert_true(sim_now_ms() - t0 < 500); /* all within the heartbeat timeout (>= 500 ms) */
    long long forgot = -1;
    bool named_old = false;
    long long took = time_to_new_leader(h3, "127.0.0.211:8300", t0, 3000, &forgot, &named_old);
    print_message("speed 2: forgot after %lld ms, new leader after %lld ms\n", forgot, took);
    assert_true(forgot >= 450 && forgot < took);
    assert_true(took >= 500 && took <= 1600);
    assert_true(wait_leader(h3, "127.0.0.212:8300", 10));
    assert_int_equal(sim_stop_rc(sim), 0);
}

/* Stops the leader n times in a row (each time waiting for the next one) and returns the
 * election timeouts drawn. */
static int
elections_with_seed(const char *args, long long *out, int max)
{
    struct sim *sim = sim_start(args);
    assert_non_null(sim);
    for (int i = 0; i < 2; i++) {
        cJSON *st = sim_state(sim);
        char path[128];
        snprintf(path, sizeof(path), "/sim/servers/%s/stop",
                 cJSON_GetObjectItemCaseSensitive(st, "leader")->valuestring);
        cJSON_Delete(st);
        ctl_ok(sim, "POST", path, NULL);
        long long deadline = sim_now_ms() + 2000;
        bool led = false;
        while (!led && sim_now_ms() < deadline) {
            sim_sleep_ms(5);
            st = sim_state(sim);
            led = cJSON_IsString(cJSON_GetObjectItemCaseSensitive(st, "leader"));
            cJSON_Delete(st);
        }
        assert_true(led);
    }
    int n = election_timeouts(sim, out, max);
    assert_int_equal(sim_stop_rc(sim), 0);
    return n;
}

static void
test_seed_reproducible(void **state)
{
    (void)state;
    long long a[8];
    long long b[8];
    long long c[8];
    int na = elections_with_seed("--servers 5 --speed 50 --seed 99 --ip-base 127.0.0.201", a, 8);
    int nb = elections_with_seed("--servers 5 --speed 50 --seed 99 --ip-base 127.0.0.156", b, 8);
    int nc = elections_with_seed("--servers 5 --speed 50 --seed 100 --ip-base 127.0.0.151", c, 8);
    assert_int_equal(na, 2);
    assert_int_equal(nb, 2);
    assert_int_equal(nc, 2);
    print_message("seed 99: %lld %lld ms; seed 100: %lld %lld ms\n", a[0], a[1], c[0], c[1]);
    assert_true(a[0] == b[0] && a[1] == b[1]);
    assert_true(a[0] != c[0] || a[1] != c[1]);
    /* the seed is in the ready line's state */
    struct sim *sim = sim_start("--servers 1 --seed 12345 --ip-base 127.0.0.161");
    assert_non_null(sim);
    cJSON *st = sim_state(sim);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(st, "seed")->valuestring, "12345");
    cJSON_Delete(st);
    assert_int_equal(sim_stop_rc(sim), 0);
}

/* Autopilot composes with elections: a server that joins while there is no leader waits
 * for one, is a non-voter first and a voter only stabilization-ms / speed after joining. */
static void
test_join_during_election(void **state)
{
    (void)state;
    struct sim *sim = sim_start("--servers 3 --speed 20 --seed 3 --ip-base 127.0.0.171");
    assert_non_null(sim);
    const char *h2 = sim->servers[1].http;
    /* t0 before the stop is sent: the leader stopped at t0 or later, so joined - t0 is at
     * least the time the join was held (taken after the answer, a slow answer under load
     * made the join look early) */
    long long t0 = sim_now_ms();
    ctl_ok(sim, "POST", "/sim/servers/consul-1/stop", NULL);
    cJSON_Delete(ctl(sim, "POST", "/sim/servers",
                     "{\"name\":\"consul-4\",\"ip\":\"127.0.0.174\","
                     "\"retry_join\":[\"127.0.0.172\"]}",
                     201));
    long long joined = 0;
    long long promoted = 0;
    bool nonvoter = false;
    while (sim_now_ms() - t0 < 3000 && !promoted) {
        cJSON *s4 = ctl(sim, "GET", "/sim/servers/127.0.0.174", NULL, 200);
        bool in_raft = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s4, "in_raft"));
        bool voter = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s4, "voter"));
        cJSON_Delete(s4);
        if (in_raft && !joined) {
            joined = sim_now_ms();
        }
        nonvoter = nonvoter || (in_raft && !voter);
        if (voter) {
            promoted = sim_now_ms();
        }
        sim_sleep_ms(5);
    }
    long long drawn[4];
    assert_int_equal(election_timeouts(sim, drawn, 4), 1);
    print_message("joined %lld ms after the leader stopped (election %lld ms / 20), voter "
                  "%lld ms after joining\n",
                  joined - t0, drawn[0], promoted - joined);
    assert_true(nonvoter);
    assert_true(joined - t0 >= drawn[0] / 20 - 10);
    assert_true(promoted - joined >= 480 && promoted - joined <= 900);
    assert_true(wait_leader(h2, "127.0.0.172:8300", 10));
    assert_int_equal(sim_stop_rc(sim), 0);
}

/* The control API for the docker stand-ins: raft state from another cluster in the data
 * dir, the container's restart policy after a leave, renaming, the node id, log ranges. */
static void
test_server_config(void **state)
{
    (void)state;
    struct sim *sim = sim_start("--servers 3 --speed 20 --seed 5 --ip-base 127.0.0.181");
    assert_non_null(sim);
    const char *h1 = sim->servers[0].http;
    cJSON *st = sim_state(sim);
    char cluster[64];
    snprintf(cluster, sizeof(cluster), "%s",
             cJSON_GetObjectItemCaseSensitive(st, "cluster_id")->valuestring);
    cJSON_Delete(st);
    assert_int_equal(strlen(cluster), 36);

    /* another cluster's raft state: it chases its old peers and never joins */
    cJSON *s4 = ctl(sim, "POST", "/sim/servers",
                    "{\"name\":\"consul-4\",\"ip\":\"127.0.0.184\",\"retry_join\":"
                    "[\"127.0.0.181\"],\"restart\":\"always\",\"node_id\":"
                    "\"0b9c6c3e-1111-2222-3333-444455556666\",\"data_cluster\":"
                    "\"11111111-2222-3333-4444-555555555555\",\"old_peers\":[\"127.0.9.1\"]}",
                    201);
    char h4[128];
    snprintf(h4, sizeof(h4), "%s", cJSON_GetObjectItemCaseSensitive(s4, "http")->valuestring);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(s4, "node_id")->valuestring,
                        "0b9c6c3e-1111-2222-3333-444455556666");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s4, "chasing_old_peers")));
    cJSON_Delete(s4);
    sim_sleep_ms(300);
    assert_int_equal(member_status(h1, "consul-4"), -1);
    assert_true(log_contains(sim, "consul-4", "failed to make requestVote RPC"));
    assert_true(log_contains(sim, "consul-4", "127.0.9.1:8300"));
    assert_false(log_contains(sim, "consul-4", "Join cluster completed"));
    /* renaming a server that never joined is applied on the next start */
    char body[256];
    snprintf(body, sizeof(body), "{\"data_cluster\":\"%s\",\"name\":\"consul-four\"}", cluster);
    ctl_ok(sim, "POST", "/sim/servers/127.0.0.184/config", body);
    ctl_ok(sim, "POST", "/sim/servers/127.0.0.184/stop", NULL);
    ctl_ok(sim, "POST", "/sim/servers/127.0.0.184/start", NULL);
    long long deadline = sim_now_ms() + 2000;
    while (member_status(h1, "consul-four") != 1 && sim_now_ms() < deadline) {
        sim_sleep_ms(10);
    }
    assert_int_equal(member_status(h1, "consul-four"), 1);
    /* a member cannot be renamed */
    cJSON *err = ctl(sim, "POST", "/sim/servers/127.0.0.184/config", "{\"name\":\"x\"}", 409);
    assert_non_null(strstr(cJSON_GetObjectItemCaseSensitive(err, "error")->valuestring, "name"));
    cJSON_Delete(err);
    cJSON_Delete(ctl(sim, "POST", "/sim/servers/127.0.0.184/config", "{}", 400));
    cJSON_Delete(
        ctl(sim, "POST", "/sim/servers/127.0.0.184/config", "{\"restart\":\"often\"}", 400));

    /* log ranges: ?since=N gives the lines after line N */
    cJSON *lg = ctl(sim, "GET", "/sim/servers/127.0.0.184/log", NULL, 200);
    int last = cJSON_GetObjectItemCaseSensitive(lg, "last")->valueint;
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(lg, "lines")), last);
    cJSON_Delete(lg);

    /* restart: always: after a leave the agent exits and docker starts it again; it
     * retry-joins */
    assert_int_equal(req("PUT", h4, "/v1/agent/leave", NULL, NULL), 200);
    long long t0 = sim_now_ms();
    bool left = false;
    bool back = false;
    while (sim_now_ms() - t0 < 3000 && !back) {
        int stv = member_status(h1, "consul-four");
        left = left || stv == 3;
        back = left && stv == 1;
        sim_sleep_ms(5);
    }
    assert_true(left);
    assert_true(back);
    snprintf(body, sizeof(body), "/sim/servers/127.0.0.184/log?since=%d", last);
    lg = ctl(sim, "GET", body, NULL, 200);
    const cJSON *lines = cJSON_GetObjectItemCaseSensitive(lg, "lines");
    assert_true(cJSON_GetArraySize(lines) > 0);
    assert_non_null(strstr(cJSON_GetArrayItem(lines, 0)->valuestring, "Gracefully shutting"));
    cJSON_Delete(lg);
    s4 = ctl(sim, "GET", "/sim/servers/127.0.0.184", NULL, 200);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(s4, "starts")->valueint, 3);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(s4, "restart")->valuestring, "always");
    cJSON_Delete(s4);
    /* a stop through the control API is a manual stop: no restart */
    ctl_ok(sim, "POST", "/sim/servers/127.0.0.184/config", "{\"restart\":\"no\"}");
    assert_int_equal(req("PUT", h4, "/v1/agent/leave", NULL, NULL), 200);
    sim_sleep_ms(300);
    assert_int_equal(member_status(h1, "consul-four"), 3);
    assert_int_equal(sim_stop_rc(sim), 0);
}

/* --cluster-ports: 8300 and 8301 accept connections while the agent runs. */
static void
test_cluster_ports(void **state)
{
    (void)state;
    struct sim *sim = sim_start("--servers 1 --cluster-ports --ip-base 127.0.0.191");
    assert_non_null(sim);
    assert_int_equal(sim_refused("http://127.0.0.191:8300"), 0);
    for (int i = 0; i < 100; i++) { /* more than the listen backlog: they are drained */
        assert_int_equal(sim_refused("http://127.0.0.191:8301"), 0);
    }
    ctl_ok(sim, "POST", "/sim/servers/consul-1/stop", NULL);
    assert_int_equal(sim_refused("http://127.0.0.191:8300"), 1);
    ctl_ok(sim, "POST", "/sim/servers/consul-1/start", NULL);
    assert_int_equal(sim_refused("http://127.0.0.191:8301"), 0);
    assert_int_equal(sim_stop_rc(sim), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shapes),
        cmocka_unit_test(test_raft_quorum),
        cmocka_unit_test(test_join_and_promotion),
        cmocka_unit_test(test_name_conflict),
        cmocka_unit_test(test_leave_stop_force_leave),
        cmocka_unit_test(test_blocking_kv),
        cmocka_unit_test(test_acl_token),
        cmocka_unit_test(test_errors_and_kv),
        cmocka_unit_test(test_go_http_front),
        cmocka_unit_test(test_exporter_and_control),
        cmocka_unit_test(test_election_timing),
        cmocka_unit_test(test_stale_leader),
        cmocka_unit_test(test_seed_reproducible),
        cmocka_unit_test(test_join_during_election),
        cmocka_unit_test(test_server_config),
        cmocka_unit_test(test_cluster_ports),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
