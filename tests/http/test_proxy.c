/* Black-box tests of the Consul proxy /api/consul/v1/… against the real server and the
 * simulator (4 servers on 127.0.0.31-34, ACL token required): byte-exact pass-through of
 * bodies and Consul headers, blocking queries, failover, unreachable agents, permissions and
 * the always-refused endpoints, audit, ?raw, body limits and token handling. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <sodium.h>
#include <sqlite3.h>

#include "harness.h"
#include "simctl.h"
#include "util.h"

#define PW "correct-horse-42"
#define SIM_TOKEN "sim-acl-secret-0123456789"
#define NSERVERS 4

/* ---- direct requests to the simulator ---- */

static size_t
collect_cb(char *data, size_t size, size_t n, void *ud)
{
    buf_append(ud, data, size * n);
    return size * n;
}

/* A plain HTTP request to any URL (the simulator directly). headers NULL-terminated. */
static struct resp
http_do(const char *method, const char *url, const void *body, size_t len,
        const char *const *headers)
{
    struct resp r = {0};
    struct buf b, h;
    buf_init(&b, 64 << 20);
    buf_init(&h, 1 << 20);
    CURL *cu = curl_easy_init();
    curl_easy_setopt(cu, CURLOPT_URL, url);
    curl_easy_setopt(cu, CURLOPT_PROXY, "");
    curl_easy_setopt(cu, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(cu, CURLOPT_NOBODY, strcmp(method, "HEAD") == 0 ? 1L : 0L);
    curl_easy_setopt(cu, CURLOPT_WRITEFUNCTION, collect_cb);
    curl_easy_setopt(cu, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(cu, CURLOPT_HEADERFUNCTION, collect_cb);
    curl_easy_setopt(cu, CURLOPT_HEADERDATA, &h);
    curl_easy_setopt(cu, CURLOPT_TIMEOUT, 60L);
    if (body) {
        curl_easy_setopt(cu, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(cu, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    struct curl_slist *hl = curl_slist_append(NULL, "Expect:");
    for (int i = 0; headers && headers[i]; i++) {
        hl = curl_slist_append(hl, headers[i]);
    }
    curl_easy_setopt(cu, CURLOPT_HTTPHEADER, hl);
    if (curl_easy_perform(cu) != CURLE_OK) {
        r.status = -1;
    } else {
        curl_easy_getinfo(cu, CURLINFO_RESPONSE_CODE, &r.status);
    }
    curl_slist_free_all(hl);
    curl_easy_cleanup(cu);
    r.len = b.len;
    r.body = b.data ? buf_steal(&b) : xstrdup("");
    r.headers = h.data ? buf_steal(&h) : xstrdup("");
    r.json = cJSON_ParseWithLength(r.body, r.len);
    return r;
}

static const char *const sim_auth[] = {"X-Consul-Token: " SIM_TOKEN, NULL};

/* A request to server i of the simulator with the ACL token. */
static struct resp
direct(struct sim *s, int i, const char *method, const char *path, const char *body)
{
    char url[512];
    snprintf(url, sizeof(url), "%s%s", s->servers[i].http, path);
    return http_do(method, url, body, body ? strlen(body) : 0, sim_auth);
}

/* A control API call; returns the status. */
static long
ctl(struct sim *s, const char *method, const char *path, const char *body, cJSON **out)
{
    char url[512];
    snprintf(url, sizeof(url), "%s%s", s->control, path);
    static const char *const ct[] = {"Content-Type: application/json", NULL};
    struct resp r = http_do(method, url, body, body ? strlen(body) : 0, ct);
    long st = r.status;
    if (out) {
        *out = r.json;
        r.json = NULL;
    }
    resp_free(&r);
    return st;
}

/* Waits until server i answers /v1/status/leader with a leader. */
static int
wait_leader(struct sim *s, int i, int timeout_ms)
{
    int64_t deadline = time_mono_ms() + timeout_ms;
    while (time_mono_ms() < deadline) {
        struct resp r = direct(s, i, "GET", "/v1/status/leader", NULL);
        int ok = r.status == 200 && r.len > 2;
        resp_free(&r);
        if (ok) {
            return 0;
        }
        usleep(50000);
    }
    return -1;
}

/* ---- fixture ---- */

struct fx {
    struct sim *sim;
    struct srv *srv;
};

static int
setup(void **state)
{
    struct fx *f = xcalloc(1, sizeof(*f));
    f->sim = sim_start("--servers 4 --speed 20 --ip-base 127.0.0.31 --token " SIM_TOKEN);
    if (!f->sim || f->sim->n_servers != NSERVERS) {
        return -1;
    }
    for (int i = 0; i < NSERVERS; i++) {
        if (wait_leader(f->sim, i, 15000) != 0) {
            fprintf(stderr, "test_proxy: no leader on %s\n", f->sim->servers[i].http);
            return -1;
        }
    }
    char cfg[1024];
    snprintf(cfg, sizeof(cfg),
             "\"consul\":{\"addresses\":[\"%s\",\"%s\",\"%s\",\"%s\"],\"token\":\"%s\","
             "\"watch\":false}",
             f->sim->servers[0].http, f->sim->servers[1].http, f->sim->servers[2].http,
             f->sim->servers[3].http, SIM_TOKEN);
    /* no watchers: the simulator's request counters then count only what the proxy sent */
    f->srv = srv_start(cfg);
    if (!f->srv) {
        return -1;
    }
    if (srv_add_user(f->srv, "vera", "viewer", PW) != 201 ||
        srv_add_user(f->srv, "otto", "operator", PW) != 201) {
        return -1;
    }
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;
    if (f) {
        srv_stop(f->srv);
        sim_stop(f->sim);
        free(f);
    }
    return 0;
}

static struct client *
admin(struct fx *f)
{
    struct client *c = srv_login(f->srv, "admin", f->srv->admin_pw);
    assert_non_null(c);
    return c;
}

static struct client *
login(struct fx *f, const char *name)
{
    struct client *c = srv_login(f->srv, name, PW);
    assert_non_null(c);
    return c;
}

/* One audit row read back through SQL. */
struct row {
    long long id;
    char outcome[16];
    cJSON *detail;
};

/* The newest audit row with action and target (id 0 when none), or with the given id when
 * id_wanted is not 0. */
static struct row
row_get(struct srv *s, const char *action, const char *target, long long id_wanted)
{
    struct row out = {0};
    sqlite3 *db;
    if (sqlite3_open_v2(s->db, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        return out;
    }
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(
            db,
            "SELECT id, detail, outcome FROM audit_log WHERE (?3 = 0 AND action = ?1 "
            "AND target = ?2) OR id = ?3 ORDER BY id DESC LIMIT 1",
            -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, action, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, target, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, id_wanted);
        if (sqlite3_step(st) == SQLITE_ROW) {
            out.id = sqlite3_column_int64(st, 0);
            out.detail = cJSON_Parse((const char *)sqlite3_column_text(st, 1));
            snprintf(out.outcome, sizeof(out.outcome), "%s",
                     (const char *)sqlite3_column_text(st, 2));
        }
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return out;
}

/* The record of the newest change with action and target, as one detail (NULL when none): a
 * change is an attempt (outcome "pending", written before Consul was asked) and an outcome
 * entry naming it (attempt_id); both are checked and their details merged, the outcome's
 * outcome returned. A single entry (a denial) is returned as it is. */
static cJSON *
last_detail(struct srv *s, const char *action, const char *target, char *outcome, size_t olen)
{
    struct row last = row_get(s, action, target, 0);
    if (!last.detail) {
        return NULL;
    }
    if (outcome) {
        snprintf(outcome, olen, "%s", last.outcome);
    }
    const cJSON *aid = cJSON_GetObjectItem(last.detail, "attempt_id");
    if (!cJSON_IsNumber(aid)) {
        return last.detail;
    }
    struct row attempt = row_get(s, action, target, (long long)aid->valuedouble);
    assert_non_null(attempt.detail);
    assert_string_equal(attempt.outcome, "pending");
    assert_true(attempt.id < last.id);
    const cJSON *item;
    cJSON_ArrayForEach(item, attempt.detail)
    {
        if (!cJSON_GetObjectItem(last.detail, item->string)) {
            cJSON_AddItemToObject(last.detail, item->string, cJSON_Duplicate(item, 1));
        }
    }
    cJSON_Delete(attempt.detail);
    return last.detail;
}

/* The simulator's request counters: total, and the count of one path ("" for none). */
static long
sim_count(struct sim *sim, const char *path)
{
    char url[256];
    snprintf(url, sizeof(url), "%s/sim/requests", sim->control);
    cJSON *j = sim_get_json(url, NULL);
    long n = -1;
    if (j) {
        n = path && path[0] ? (long)json_get_num(cJSON_GetObjectItem(j, "by_path"), path, 0)
                            : (long)json_get_num(j, "total", -1);
    }
    cJSON_Delete(j);
    return n;
}

static char *
b64(const char *s)
{
    size_t len = strlen(s);
    size_t cap = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
    char *out = xmalloc(cap);
    sodium_bin2base64(out, cap, (const unsigned char *)s, len, sodium_base64_VARIANT_ORIGINAL);
    return out;
}

static struct resp
put_raw(struct client *c, const char *path, const char *body)
{
    return client_req_raw(c, "PUT", path, body, strlen(body), NULL, 1);
}

/* ---- tests ---- */

/* The proxy returns Consul's status, bytes and headers unchanged. */
static void
test_passthrough_equal(void **state)
{
    struct fx *f = *state;
    struct client *c = admin(f);
    struct resp w = direct(f->sim, 0, "PUT", "/v1/kv/eq/one", "{\"a\":1}");
    assert_int_equal(w.status, 200);
    resp_free(&w);
    static const char *const paths[] = {
        "/v1/catalog/nodes",
        "/v1/catalog/services",
        "/v1/status/leader",
        "/v1/status/peers",
        "/v1/health/service/consul",
        "/v1/kv/eq/one",
        "/v1/kv/eq?keys",
        "/v1/kv/eq/absent",
        "/v1/catalog/datacenters",
        "/v1/operator/raft/configuration",
        "/v1/agent/members",
        "/v1/kv/eq/one?stale",
        "/v1/kv/eq/absent?raw",
    };
    for (size_t i = 0; i < ARRAY_LEN(paths); i++) {
        char proxied[512];
        snprintf(proxied, sizeof(proxied), "/api/consul%s", paths[i]);
        struct resp p = client_req(c, "GET", proxied, NULL);
        struct resp d = direct(f->sim, 0, "GET", paths[i], NULL);
        if (p.status != d.status || p.len != d.len || memcmp(p.body, d.body, p.len) != 0) {
            fail_msg("%s: proxy %ld '%.200s' vs direct %ld '%.200s'", paths[i], p.status, p.body,
                     d.status, d.body);
        }
        static const char *const same[] = {"X-Consul-KnownLeader", "Content-Type",
                                           "X-Consul-Effective-Consistency",
                                           "X-Consul-Default-ACL-Policy"};
        for (size_t k = 0; k < ARRAY_LEN(same); k++) {
            char *hp = resp_header(&p, same[k]), *hd = resp_header(&d, same[k]);
            if (strstr(paths[i], "raw") && strcmp(same[k], "Content-Type") == 0) {
                /* a raw KV answer is always text/plain through the proxy, whatever Consul
                 * sent (none on a 404): never a type a browser would render */
                assert_non_null(hp);
                assert_string_equal(hp, "text/plain; charset=utf-8");
                free(hp);
                free(hd);
                continue;
            }
            if ((hp == NULL) != (hd == NULL) || (hp && strcmp(hp, hd) != 0)) {
                fail_msg("%s: header %s: proxy '%s' vs direct '%s'", paths[i], same[k],
                         hp ? hp : "(none)", hd ? hd : "(none)");
            }
            free(hp);
            free(hd);
        }
        char *ip = resp_header(&p, "X-Consul-Index"), *id = resp_header(&d, "X-Consul-Index");
        assert_true((ip == NULL) == (id == NULL));
        if (ip) {
            assert_true(strtoull(ip, NULL, 10) <= strtoull(id, NULL, 10));
        }
        char *lp = resp_header(&p, "X-Consul-LastContact"),
             *ld = resp_header(&d, "X-Consul-LastContact");
        assert_true((lp == NULL) == (ld == NULL));
        free(ip);
        free(id);
        free(lp);
        free(ld);
        resp_free(&p);
        resp_free(&d);
    }
    /* the leader-facing headers are really there for a catalog read */
    struct resp p = client_req(c, "GET", "/api/consul/v1/catalog/nodes", NULL);
    char *idx = resp_header(&p, "X-Consul-Index");
    char *kl = resp_header(&p, "X-Consul-KnownLeader");
    char *lc = resp_header(&p, "X-Consul-LastContact");
    assert_non_null(idx);
    assert_non_null(kl);
    assert_non_null(lc);
    assert_string_equal(kl, "true");
    free(idx);
    free(kl);
    free(lc);
    /* the console's own security headers are added, Consul's cookies never passed */
    char *csp = resp_header(&p, "Content-Security-Policy");
    assert_non_null(csp);
    free(csp);
    resp_free(&p);
    /* HEAD is a read: it reaches the agent, and the agent's answer comes back (the
     * simulator answers 405 with its own Allow list, "GET,PUT,DELETE"-style: no space after
     * the commas, unlike the console's own "GET, HEAD, PUT, POST, DELETE") */
    long before = sim_count(f->sim, "/v1/kv/eq/one");
    p = client_req_raw(c, "HEAD", "/api/consul/v1/kv/eq/one", NULL, 0, NULL, 0);
    assert_int_equal(sim_count(f->sim, "/v1/kv/eq/one"), before + 1);
    struct resp d = direct(f->sim, 0, "HEAD", "/v1/kv/eq/one", NULL);
    assert_int_equal(p.status, d.status);
    char *allow_p = resp_header(&p, "Allow"), *allow_d = resp_header(&d, "Allow");
    if (d.status == 405) {
        assert_non_null(allow_d);
        assert_non_null(allow_p);
        assert_string_equal(allow_p, allow_d);
        assert_null(strstr(allow_p, ", "));
        assert_non_null(strstr(allow_p, "GET"));
    }
    free(allow_p);
    free(allow_d);
    resp_free(&p);
    resp_free(&d);
    client_free(c);
}

/* A path no allowlist row names is refused for every role, audited, and never forwarded. */
static void
test_unknown_endpoint_refused(void **state)
{
    struct fx *f = *state;
    struct client *c = admin(f);
    long total = sim_count(f->sim, NULL);
    long denied = db_count_audit(f->srv, "consul.no.get", "denied");
    struct resp r = client_req(c, "GET", "/api/consul/v1/no/such/endpoint", NULL);
    assert_error_reply(&r, 403, "forbidden",
                       "GET /v1/no/such/endpoint is not in the proxy's allowlist");
    resp_free(&r);
    assert_int_equal(db_count_audit(f->srv, "consul.no.get", "denied"), denied + 1);
    assert_int_equal(sim_count(f->sim, NULL), total);
    client_free(c);
}

struct later_put {
    struct sim *sim;
    int delay_ms;
};

static void *
later_put_main(void *arg)
{
    struct later_put *lp = arg;
    usleep((useconds_t)lp->delay_ms * 1000);
    struct resp r = direct(lp->sim, 1, "PUT", "/v1/kv/blk/key", "changed");
    resp_free(&r);
    return NULL;
}

/* A blocking query through the proxy returns early on a change and waits otherwise. */
static void
test_blocking_query(void **state)
{
    struct fx *f = *state;
    struct client *c = login(f, "vera");
    struct resp w = direct(f->sim, 0, "PUT", "/v1/kv/blk/key", "initial");
    resp_free(&w);
    struct resp p = client_req(c, "GET", "/api/consul/v1/kv/blk/key", NULL);
    assert_int_equal(p.status, 200);
    char *idx = resp_header(&p, "X-Consul-Index");
    assert_non_null(idx);
    unsigned long long index = strtoull(idx, NULL, 10);
    free(idx);
    resp_free(&p);

    pthread_t t;
    struct later_put lp = {f->sim, 600};
    pthread_create(&t, NULL, later_put_main, &lp);
    char path[256];
    snprintf(path, sizeof(path), "/api/consul/v1/kv/blk/key?index=%llu&wait=20s", index);
    int64_t t0 = time_mono_ms();
    p = client_req(c, "GET", path, NULL);
    int64_t took = time_mono_ms() - t0;
    pthread_join(t, NULL);
    assert_int_equal(p.status, 200);
    assert_true(took >= 400);
    assert_true(took < 10000);
    char *v = cJSON_IsArray(p.json) ? b64("changed") : NULL;
    assert_non_null(v);
    assert_string_equal(json_get_str(cJSON_GetArrayItem(p.json, 0), "Value", ""), v);
    free(v);
    idx = resp_header(&p, "X-Consul-Index");
    unsigned long long index2 = strtoull(idx, NULL, 10);
    free(idx);
    assert_true(index2 > index);
    resp_free(&p);

    /* nothing changes: it waits about the wait time (plus at most 1/16 jitter) */
    snprintf(path, sizeof(path), "/api/consul/v1/kv/blk/key?index=%llu&wait=2s", index2);
    t0 = time_mono_ms();
    p = client_req(c, "GET", path, NULL);
    took = time_mono_ms() - t0;
    assert_int_equal(p.status, 200);
    assert_true(took >= 1900);
    assert_true(took < 5000);
    resp_free(&p);
    client_free(c);
}

static void
test_viewer_put_kv_denied(void **state)
{
    struct fx *f = *state;
    struct client *c = login(f, "vera");
    long before = db_count_audit(f->srv, "consul.kv.put", "denied");
    struct resp r = put_raw(c, "/api/consul/v1/kv/viewer/try", "nope");
    assert_int_equal(r.status, 403);
    assert_string_equal(json_get_str(cJSON_GetObjectItem(r.json, "error"), "code", ""),
                        "forbidden");
    resp_free(&r);
    assert_int_equal(db_count_audit(f->srv, "consul.kv.put", "denied"), before + 1);
    r = client_req_raw(c, "DELETE", "/api/consul/v1/kv/viewer/try", NULL, 0, NULL, 1);
    assert_int_equal(r.status, 403);
    resp_free(&r);
    assert_true(db_count_audit(f->srv, "consul.kv.delete", "denied") >= 1);
    /* nothing reached Consul */
    r = direct(f->sim, 0, "GET", "/v1/kv/viewer/try", NULL);
    assert_int_equal(r.status, 404);
    resp_free(&r);
    client_free(c);
}

/* Refusals by the dispatcher (no CSRF token, not logged in) are recorded under the action
 * the proxied write would have had. */
static void
test_csrf_and_anonymous_writes_audited(void **state)
{
    struct fx *f = *state;
    struct client *c = login(f, "otto");
    long before = db_count_audit(f->srv, "consul.kv.put", "denied");
    struct resp r = client_req_raw(c, "PUT", "/api/consul/v1/kv/csrf/try", "v", 1, NULL, 0);
    assert_int_equal(r.status, 403);
    assert_string_equal(json_get_str(cJSON_GetObjectItem(r.json, "error"), "code", ""), "csrf");
    resp_free(&r);
    assert_int_equal(db_count_audit(f->srv, "consul.kv.put", "denied"), before + 1);
    /* recorded against the key, so the key's history shows the refused attempt */
    r = client_req(c, "GET", "/api/kv/history?key=csrf/try", NULL);
    assert_int_equal(r.status, 200);
    cJSON *entries = cJSON_GetObjectItem(r.json, "entries");
    assert_int_equal(cJSON_GetArraySize(entries), 1);
    assert_string_equal(json_get_str(cJSON_GetArrayItem(entries, 0), "outcome", ""), "denied");
    resp_free(&r);
    struct client *anon = client_new(f->srv);
    before = db_count_audit(f->srv, "consul.agent.put", "denied");
    r = client_req_raw(anon, "PUT", "/api/consul/v1/agent/service/register", "{}", 2, NULL, 0);
    assert_int_equal(r.status, 401);
    resp_free(&r);
    assert_int_equal(db_count_audit(f->srv, "consul.agent.put", "denied"), before + 1);
    /* nothing reached Consul */
    r = direct(f->sim, 0, "GET", "/v1/kv/csrf/try", NULL);
    assert_int_equal(r.status, 404);
    resp_free(&r);
    client_free(anon);
    client_free(c);
}

static void
test_operator_put_kv_audited(void **state)
{
    struct fx *f = *state;
    struct client *c = login(f, "otto");
    struct resp r = put_raw(c, "/api/consul/v1/kv/op/key", "hello");
    assert_int_equal(r.status, 200);
    assert_memory_equal(r.body, "true", 4);
    resp_free(&r);
    r = put_raw(c, "/api/consul/v1/kv/op/key?flags=7", "world");
    assert_int_equal(r.status, 200);
    resp_free(&r);
    char outcome[16];
    cJSON *d = last_detail(f->srv, "consul.kv.put", "/v1/kv/op/key", outcome, sizeof(outcome));
    assert_non_null(d);
    assert_string_equal(outcome, "ok");
    char *hello = b64("hello"), *world = b64("world");
    const cJSON *prev = cJSON_GetObjectItem(d, "previous");
    assert_true(json_get_bool(prev, "exists", 0));
    assert_string_equal(json_get_str(prev, "value_b64", ""), hello);
    assert_true(json_get_num(prev, "modify_index", 0) > 0);
    assert_string_equal(json_get_str(d, "value_b64", ""), world);
    assert_string_equal(json_get_str(d, "method", ""), "PUT");
    assert_string_equal(json_get_str(d, "path", ""), "/v1/kv/op/key");
    assert_string_equal(json_get_str(d, "query", ""), "flags=7");
    assert_int_equal((int)json_get_num(d, "body_bytes", -1), 5);
    assert_int_equal((int)json_get_num(d, "consul_status", 0), 200);
    assert_true(json_get_bool(d, "result", 0));
    char sha[65];
    sha256_hex("world", 5, sha);
    assert_string_equal(json_get_str(d, "body_sha256", ""), sha);
    free(hello);
    free(world);
    cJSON_Delete(d);

    /* a CAS write with a stale index answers false, and the audit says so */
    r = put_raw(c, "/api/consul/v1/kv/op/key?cas=1", "stale");
    assert_int_equal(r.status, 200);
    assert_memory_equal(r.body, "false", 5);
    resp_free(&r);
    d = last_detail(f->srv, "consul.kv.put", "/v1/kv/op/key", NULL, 0);
    assert_false(json_get_bool(d, "result", 1));
    cJSON_Delete(d);

    /* a recursive delete records the keys it removes */
    r = put_raw(c, "/api/consul/v1/kv/op/tree/a", "1");
    resp_free(&r);
    r = put_raw(c, "/api/consul/v1/kv/op/tree/b", "2");
    resp_free(&r);
    r = client_req_raw(c, "DELETE", "/api/consul/v1/kv/op/tree?recurse", NULL, 0, NULL, 1);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    d = last_detail(f->srv, "consul.kv.delete", "/v1/kv/op/tree", NULL, 0);
    assert_non_null(d);
    assert_int_equal((int)json_get_num(d, "key_count", 0), 2);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(d, "keys")), 2);
    cJSON_Delete(d);
    /* operator writes outside the KV store are admin-only */
    r = client_req(c, "PUT", "/api/consul/v1/agent/service/register",
                   "{\"Name\":\"web\",\"Port\":80}");
    assert_int_equal(r.status, 403);
    resp_free(&r);
    assert_true(db_count_audit(f->srv, "consul.agent.put", "denied") >= 1);
    client_free(c);

    c = admin(f);
    r = client_req(c, "PUT", "/api/consul/v1/agent/service/register",
                   "{\"Name\":\"web\",\"Port\":80}");
    /* it reached Consul (the simulator has no such endpoint and says 404) */
    assert_int_not_equal(r.status, 403);
    resp_free(&r);
    d = last_detail(f->srv, "consul.agent.put", "/v1/agent/service/register", outcome,
                    sizeof(outcome));
    assert_non_null(d);
    assert_int_equal((int)json_get_num(d, "consul_status", 0), 404);
    assert_string_equal(outcome, "error");
    cJSON_Delete(d);
    client_free(c);
}

static void
test_always_refused(void **state)
{
    struct fx *f = *state;
    struct client *c = admin(f);
    assert_int_equal(ctl(f->sim, "POST", "/sim/requests/reset", NULL, NULL), 200);
    struct resp r;
    static const struct {
        const char *method, *path;
    } refused[] = {
        {"PUT", "/api/consul/v1/acl/bootstrap"},
        {"PUT", "/api/consul/v1/agent/leave"},
        {"PUT", "/api/consul/v1/agent/force-leave/consul-2"},
        {"DELETE", "/api/consul/v1/operator/raft/peer?address=127.0.0.32:8300"},
        {"PUT", "/api/consul/v1/snapshot"},
        {"PUT", "/api/consul/v1/agent/token/default"},
        {"PUT", "/api/consul/v1/%61gent/leave"},
        {"PUT", "/api/consul/v1//agent/leave"},
        {"PUT", "/api/consul/v1/agent//force-leave/consul-2"},
        {"DELETE", "/api/consul/v1/operator/raft/peer/?id=x"},
    };
    long before = db_count_audit(f->srv, "consul.", "denied");
    for (size_t i = 0; i < ARRAY_LEN(refused); i++) {
        r = client_req_raw(c, refused[i].method, refused[i].path, "", 0, NULL, 1);
        if (r.status != 403) {
            fail_msg("%s %s: %ld", refused[i].method, refused[i].path, r.status);
        }
        assert_error_reply(&r, 403, "forbidden", "is never allowed through the proxy");
        assert_non_null(strstr(json_get_str(cJSON_GetObjectItem(r.json, "error"), "message", ""),
                               refused[i].method));
        resp_free(&r);
    }
    assert_int_equal(db_count_audit(f->srv, "consul.", "denied"),
                     before + (long)ARRAY_LEN(refused));
    assert_true(db_count_audit(f->srv, "consul.operator.delete", "denied") >= 2);
    assert_true(db_count_audit(f->srv, "consul.acl.put", "denied") >= 1);
    /* none of them reached an agent */
    cJSON *reqs = NULL;
    assert_int_equal(ctl(f->sim, "GET", "/sim/requests", NULL, &reqs), 200);
    const cJSON *bp = cJSON_GetObjectItem(reqs, "by_path");
    const cJSON *e;
    cJSON_ArrayForEach(e, bp)
    {
        if (strstr(e->string, "leave") || strstr(e->string, "bootstrap") ||
            strstr(e->string, "raft/peer") || strstr(e->string, "token") ||
            strstr(e->string, "snapshot")) {
            fail_msg("a refused request reached Consul: %s", e->string);
        }
    }
    cJSON_Delete(reqs);
    /* the cluster is still whole */
    r = direct(f->sim, 0, "GET", "/v1/status/peers", NULL);
    assert_int_equal(cJSON_GetArraySize(r.json), NSERVERS);
    resp_free(&r);
    client_free(c);
}

/* The secrets the old deny list let through: a viewer read a leaf certificate with its
 * private key and the gossip keys, an admin the console's own ACL token. Refused for every
 * role, with a reason, audited as denied, and never forwarded. */
static void
test_secret_reads_refused(void **state)
{
    struct fx *f = *state;
    struct client *v = login(f, "vera");
    struct client *a = admin(f);
    static const struct {
        const char *path;     /* as the browser sends it */
        const char *norm;     /* the Consul path named in the message and the audit target */
        const char *sim_path; /* what the simulator would have counted */
        const char *action;
    } secrets[] = {
        {"/api/consul/v1/agent/connect/ca/leaf/web", "/v1/agent/connect/ca/leaf/web",
         "/v1/agent/connect/ca/leaf/web", "consul.agent.get"},
        {"/api/consul/v1/operator/keyring", "/v1/operator/keyring", "/v1/operator/keyring",
         "consul.operator.get"},
        {"/api/consul/v1/acl/token/self", "/v1/acl/token/self", "/v1/acl/token/self",
         "consul.acl.get"},
        {"/api/consul/v1/acl/tokens", "/v1/acl/tokens", "/v1/acl/tokens", "consul.acl.get"},
        {"/api/consul/v1/acl/token/00000000-0000-0000-0000-000000000002",
         "/v1/acl/token/00000000-0000-0000-0000-000000000002",
         "/v1/acl/token/00000000-0000-0000-0000-000000000002", "consul.acl.get"},
        {"/api/consul/v1/snapshot", "/v1/snapshot", "/v1/snapshot", "consul.snapshot.get"},
        {"/api/consul/v1/connect/ca/configuration", "/v1/connect/ca/configuration",
         "/v1/connect/ca/configuration", "consul.connect.get"},
        /* spelled otherwise: decoded, collapsed, any case */
        {"/api/consul/v1/acl/token%2Fself", "/v1/acl/token/self", "/v1/acl/token%2Fself",
         "consul.acl.get"},
        {"/api/consul/v1//acl//token/self/", "/v1/acl/token/self/", "/v1//acl//token/self/",
         "consul.acl.get"},
        {"/api/consul/v1/%61cl/token/self", "/v1/acl/token/self", "/v1/%61cl/token/self",
         "consul.acl.get"},
        {"/api/consul/v1/agent/connect/ca/Leaf/web", "/v1/agent/connect/ca/Leaf/web",
         "/v1/agent/connect/ca/Leaf/web", "consul.agent.get"},
    };
    struct client *who[] = {v, a};
    for (size_t w = 0; w < ARRAY_LEN(who); w++) {
        for (size_t i = 0; i < ARRAY_LEN(secrets); i++) {
            long denied = db_count_audit(f->srv, secrets[i].action, "denied");
            struct resp r = client_req(who[w], "GET", secrets[i].path, NULL);
            char what[256];
            snprintf(what, sizeof(what), "GET %s is never allowed", secrets[i].norm);
            assert_error_reply(&r, 403, "forbidden", what);
            resp_free(&r);
            assert_int_equal(db_count_audit(f->srv, secrets[i].action, "denied"), denied + 1);
            char outcome[16];
            cJSON *d =
                last_detail(f->srv, secrets[i].action, secrets[i].norm, outcome, sizeof(outcome));
            assert_non_null(d);
            assert_string_equal(outcome, "denied");
            cJSON_Delete(d);
            /* nothing reached Consul under that path, however it was spelled (the simulator
             * counts decoded paths; the total would also count the watchers' polls) */
            assert_int_equal(sim_count(f->sim, secrets[i].sim_path), 0);
        }
    }
    /* agent/self carries the agent's configuration: admin's, not a viewer's */
    long denied = db_count_audit(f->srv, "consul.agent.get", "denied");
    struct resp r = client_req(v, "GET", "/api/consul/v1/agent/self", NULL);
    assert_error_reply(&r, 403, "forbidden",
                       "GET /v1/agent/self needs the admin role (you are viewer)");
    resp_free(&r);
    assert_int_equal(db_count_audit(f->srv, "consul.agent.get", "denied"), denied + 1);
    r = client_req(a, "GET", "/api/consul/v1/agent/self", NULL);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    /* what a viewer needs still passes */
    r = client_req(v, "GET", "/api/consul/v1/agent/members", NULL);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    client_free(v);
    client_free(a);
}

static void
test_path_and_method_checks(void **state)
{
    struct fx *f = *state;
    struct client *c = admin(f);
    static const struct {
        const char *path, *why;
    } bad[] = {
        {"/api/consul/v1/kv/a/%2e%2e/acl/bootstrap", "'..' segment"},
        {"/api/consul/v1/kv/a/../b", "'..' segment"},
        {"/api/consul/v1/kv/a%00b", "%00"},
        {"/api/consul/v1/kv/a%0d%0aX-Evil:%201", "control character"},
        {"/api/consul/v1/kv/%zz", "malformed percent escape"},
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        long total = sim_count(f->sim, NULL);
        struct resp r = client_req(c, "GET", bad[i].path, NULL);
        assert_error_reply(&r, 400, "invalid_path", bad[i].why);
        resp_free(&r);
        /* and a write with the same path changes nothing either */
        r = client_req(c, "PUT", bad[i].path, "x");
        assert_error_reply(&r, 400, "invalid_path", bad[i].why);
        resp_free(&r);
        assert_int_equal(sim_count(f->sim, NULL), total);
    }
    long total = sim_count(f->sim, NULL);
    struct resp r = client_req(c, "PATCH", "/api/consul/v1/kv/x", "{}");
    assert_error_reply(&r, 405, "method_not_allowed", "PATCH");
    char *allow = resp_header(&r, "Allow");
    assert_string_equal(allow, "GET, HEAD, PUT, POST, DELETE");
    free(allow);
    resp_free(&r);
    /* a write without the CSRF header is refused by the dispatcher */
    r = client_req_raw(c, "PUT", "/api/consul/v1/kv/csrf", "x", 1, NULL, 0);
    assert_error_reply(&r, 403, "csrf", "X-CSRF-Token");
    resp_free(&r);
    assert_int_equal(sim_count(f->sim, NULL), total);
    r = direct(f->sim, 0, "GET", "/v1/kv/csrf", NULL);
    assert_int_equal(r.status, 404);
    resp_free(&r);
    client_free(c);
}

static void
test_raw_is_text_plain(void **state)
{
    struct fx *f = *state;
    const char *html = "<html><script>alert(1)</script></html>";
    struct resp w = direct(f->sim, 0, "PUT", "/v1/kv/raw/page", html);
    resp_free(&w);
    struct client *c = login(f, "vera");
    struct resp r = client_req(c, "GET", "/api/consul/v1/kv/raw/page?raw", NULL);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, strlen(html));
    assert_memory_equal(r.body, html, r.len);
    char *ct = resp_header(&r, "Content-Type");
    char *cd = resp_header(&r, "Content-Disposition");
    char *nosniff = resp_header(&r, "X-Content-Type-Options");
    assert_string_equal(ct, "text/plain; charset=utf-8");
    assert_non_null(cd);
    assert_true(str_starts_with(cd, "attachment"));
    assert_string_equal(nosniff, "nosniff");
    free(ct);
    free(cd);
    free(nosniff);
    resp_free(&r);
    client_free(c);
}

static void
test_body_limit(void **state)
{
    struct fx *f = *state;
    struct client *c = login(f, "otto");
    size_t n = 512 * 1024;
    char *big = xmalloc(n + 2);
    memset(big, 'v', n + 1);
    big[n + 1] = '\0';
    long total = sim_count(f->sim, NULL);
    long errors = db_count_audit(f->srv, "consul.kv.put", "error");
    struct resp r = client_req_raw(c, "PUT", "/api/consul/v1/kv/big/one", big, n + 1, NULL, 1);
    assert_error_reply(&r, 413, "body_too_large", "request body exceeds 524288 bytes");
    resp_free(&r);
    /* nothing sent, and the refused write is recorded */
    assert_int_equal(sim_count(f->sim, NULL), total);
    assert_int_equal(db_count_audit(f->srv, "consul.kv.put", "error"), errors + 1);
    /* exactly 512 KiB passes, and the audit keeps only its hash */
    r = client_req_raw(c, "PUT", "/api/consul/v1/kv/big/one", big, n, NULL, 1);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    cJSON *d = last_detail(f->srv, "consul.kv.put", "/v1/kv/big/one", NULL, 0);
    assert_true(json_get_bool(d, "value_truncated", 0));
    assert_null(cJSON_GetObjectItem(d, "value_b64"));
    cJSON_Delete(d);
    /* the connection is still usable after a 413 */
    r = client_req(c, "GET", "/api/consul/v1/status/leader", NULL);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    free(big);
    client_free(c);
}

static void
test_token_stripped(void **state)
{
    struct fx *f = *state;
    struct client *c = login(f, "otto");
    assert_int_equal(ctl(f->sim, "POST", "/sim/requests/reset", NULL, NULL), 200);
    static const char *const paths[] = {
        "/api/consul/v1/catalog/nodes?token=wrong",
        "/api/consul/v1/catalog/nodes?stale&token=wrong",
        "/api/consul/v1/catalog/nodes?tok%65n=wrong",
        "/api/consul/v1/kv/tok?token=",
    };
    for (size_t i = 0; i < ARRAY_LEN(paths); i++) {
        struct resp r = client_req(c, "GET", paths[i], NULL);
        if (r.status == 403) {
            fail_msg("%s: the browser's token reached Consul: %.200s", paths[i], r.body);
        }
        resp_free(&r);
    }
    /* the browser's own credentials headers are not forwarded either */
    static const char *const hdrs[] = {"X-Consul-Token: wrong", "Authorization: Bearer wrong",
                                       NULL};
    struct resp r = client_req_raw(c, "GET", "/api/consul/v1/catalog/nodes", NULL, 0, hdrs, 0);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    r = put_raw(c, "/api/consul/v1/kv/tok?token=wrong&flags=1", "v");
    assert_int_equal(r.status, 200);
    resp_free(&r);
    cJSON *d = last_detail(f->srv, "consul.kv.put", "/v1/kv/tok", NULL, 0);
    assert_string_equal(json_get_str(d, "query", "?"), "flags=1");
    cJSON_Delete(d);
    cJSON *reqs = NULL;
    assert_int_equal(ctl(f->sim, "GET", "/sim/requests", NULL, &reqs), 200);
    assert_true(json_get_num(reqs, "total", 0) >= 6);
    assert_int_equal((int)json_get_num(reqs, "without_token", -1), 0);
    cJSON_Delete(reqs);
    client_free(c);
}

/* A console without a token: the browser's token (even the right one) never reaches Consul. */
static void
test_browser_token_not_forwarded(void **state)
{
    struct fx *f = *state;
    char cfg[256];
    snprintf(cfg, sizeof(cfg), "\"consul\":{\"addresses\":[\"%s\"]}", f->sim->servers[0].http);
    struct srv *s2 = srv_start(cfg);
    assert_non_null(s2);
    struct client *c = srv_login(s2, "admin", s2->admin_pw);
    assert_non_null(c);
    assert_int_equal(ctl(f->sim, "POST", "/sim/requests/reset", NULL, NULL), 200);
    static const char *const hdrs[] = {"X-Consul-Token: " SIM_TOKEN,
                                       "Authorization: Bearer " SIM_TOKEN, NULL};
    struct resp r =
        client_req_raw(c, "GET", "/api/consul/v1/catalog/nodes?token=" SIM_TOKEN, NULL, 0, hdrs, 0);
    assert_int_equal(r.status, 403); /* Consul's "Permission denied": no token arrived */
    assert_true(strstr(r.body, "Permission denied") != NULL);
    resp_free(&r);
    /* every request Consul saw carried no token: the proxied one, and those the second
     * console's own watchers make meanwhile (they have no token either) */
    cJSON *reqs = NULL;
    assert_int_equal(ctl(f->sim, "GET", "/sim/requests", NULL, &reqs), 200);
    assert_int_equal(json_get_num(cJSON_GetObjectItemCaseSensitive(reqs, "by_path"),
                                  "/v1/catalog/nodes", -1),
                     1);
    assert_true(json_get_num(reqs, "total", 0) >= 1);
    assert_int_equal((int)json_get_num(reqs, "without_token", -1),
                     (int)json_get_num(reqs, "total", -2));
    cJSON_Delete(reqs);
    client_free(c);
    srv_stop(s2);
}

static long
metric_value(struct client *c, const char *name)
{
    struct resp r = client_req(c, "GET", "/metrics", NULL);
    long v = -1;
    const char *p = r.body ? strstr(r.body, name) : NULL;
    while (p && p > r.body && p[-1] != '\n') {
        p = strstr(p + 1, name);
    }
    if (p) {
        v = strtol(p + strlen(name), NULL, 10);
    }
    resp_free(&r);
    return v;
}

static void
test_failover_first_stopped(void **state)
{
    struct fx *f = *state;
    struct client *c = admin(f);
    long fo0 = metric_value(c, "consulate_consul_failovers_total ");
    char path[128];
    snprintf(path, sizeof(path), "/sim/servers/%s/stop", f->sim->servers[0].name);
    assert_int_equal(ctl(f->sim, "POST", path, NULL, NULL), 200);
    for (int i = 0; i < 5; i++) {
        struct resp r = client_req(c, "GET", "/api/consul/v1/kv/op/key?stale", NULL);
        assert_int_equal(r.status, 200);
        resp_free(&r);
    }
    struct resp r = client_req(c, "PUT", "/api/consul/v1/kv/failover", "after");
    assert_int_equal(r.status, 200);
    resp_free(&r);
    long fo1 = metric_value(c, "consulate_consul_failovers_total ");
    assert_true(fo1 >= fo0 + 1);
    /* the last good agent is remembered: one failover, not one per request */
    assert_true(fo1 <= fo0 + 2);
    snprintf(path, sizeof(path), "/sim/servers/%s/start", f->sim->servers[0].name);
    assert_int_equal(ctl(f->sim, "POST", path, NULL, NULL), 200);
    assert_int_equal(wait_leader(f->sim, 0, 15000), 0);
    client_free(c);
}

static void
test_all_down_502(void **state)
{
    struct fx *f = *state;
    struct client *c = admin(f);
    char path[128];
    for (int i = 0; i < NSERVERS; i++) {
        snprintf(path, sizeof(path), "/sim/servers/%s/stop", f->sim->servers[i].name);
        assert_int_equal(ctl(f->sim, "POST", path, NULL, NULL), 200);
    }
    int64_t t0 = time_mono_ms();
    struct resp r = client_req(c, "GET", "/api/consul/v1/catalog/nodes", NULL);
    int64_t took = time_mono_ms() - t0;
    assert_int_equal(r.status, 502);
    const cJSON *e = cJSON_GetObjectItem(r.json, "error");
    assert_string_equal(json_get_str(e, "code", ""), "consul_unreachable");
    assert_non_null(strstr(json_get_str(e, "message", ""), f->sim->servers[3].http));
    assert_true(took < 2500);
    resp_free(&r);
    long before = db_count_audit(f->srv, "consul.kv.put", "error");
    r = client_req(c, "PUT", "/api/consul/v1/kv/down", "x");
    assert_int_equal(r.status, 502);
    resp_free(&r);
    assert_int_equal(db_count_audit(f->srv, "consul.kv.put", "error"), before + 1);
    for (int i = 0; i < NSERVERS; i++) {
        snprintf(path, sizeof(path), "/sim/servers/%s/start", f->sim->servers[i].name);
        assert_int_equal(ctl(f->sim, "POST", path, NULL, NULL), 200);
    }
    for (int i = 0; i < NSERVERS; i++) {
        assert_int_equal(wait_leader(f->sim, i, 20000), 0);
    }
    r = client_req(c, "GET", "/api/consul/v1/catalog/nodes", NULL);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    client_free(c);
}

/* An agent that accepts no connection (a full accept queue drops the SYN): the answer is a
 * 502 after the connect timeout, not a hung browser. */
static void
test_connect_timeout(void **state)
{
    (void)state;
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.39", &a.sin_addr);
    assert_int_equal(bind(ls, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(ls, 0), 0);
    socklen_t alen = sizeof(a);
    getsockname(ls, (struct sockaddr *)&a, &alen);
    int fill[4];
    for (int i = 0; i < 4; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(fill[i], (struct sockaddr *)&a, sizeof(a));
    }
    usleep(100000);
    char cfg[256];
    snprintf(cfg, sizeof(cfg),
             "\"consul\":{\"addresses\":[\"http://127.0.0.39:%d\"],\"connect_timeout_ms\":1000}",
             ntohs(a.sin_port));
    struct srv *s2 = srv_start(cfg);
    assert_non_null(s2);
    struct client *c = srv_login(s2, "admin", s2->admin_pw);
    assert_non_null(c);
    int64_t t0 = time_mono_ms();
    struct resp r = client_req(c, "GET", "/api/consul/v1/catalog/nodes", NULL);
    int64_t took = time_mono_ms() - t0;
    assert_int_equal(r.status, 502);
    assert_string_equal(json_get_str(cJSON_GetObjectItem(r.json, "error"), "code", ""),
                        "consul_unreachable");
    assert_true(took >= 900);
    assert_true(took < 2500);
    resp_free(&r);
    client_free(c);
    srv_stop(s2);
    for (int i = 0; i < 4; i++) {
        close(fill[i]);
    }
    close(ls);
}

/* ---- a fake agent: one canned answer to every request, and the requests it saw ---- */

struct fake_agent {
    int fd;
    pthread_t thread;
    char url[64];
    const char *answer; /* sent as is, then the connection is closed */
    size_t answer_len;
    int gets, puts, others; /* requests seen, by method */
    char seen[16][160];     /* the first requests: "METHOD /path body=N" (N = -1: no length) */
    int nseen;
    pthread_mutex_t mu;
};

/* Reads one request (headers, then Content-Length bytes of body) from fd; returns its method
 * in method ("" when the connection closed first) and "METHOD /path body=N" in line. */
static void
fake_read_request(int fd, char *method, size_t mlen, char *line, size_t llen)
{
    char buf[65536];
    size_t n = 0;
    method[0] = '\0';
    char *end = NULL;
    while (!end && n < sizeof(buf) - 1) {
        ssize_t r = read(fd, buf + n, sizeof(buf) - 1 - n);
        if (r <= 0) {
            return;
        }
        n += (size_t)r;
        buf[n] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    if (!end) {
        return;
    }
    snprintf(method, mlen, "%.*s", (int)strcspn(buf, " "), buf);
    const char *cl = strcasestr(buf, "\r\nContent-Length:");
    long want = cl && cl < end ? strtol(cl + 17, NULL, 10) : 0;
    snprintf(line, llen, "%.*s body=%ld", (int)strcspn(buf, "?\r"), buf,
             cl && cl < end ? want : -1L);
    char *sp = strrchr(line, ' ');
    char *http = strstr(line, " HTTP/1.1");
    if (http && sp) { /* drop " HTTP/1.1" from the request line */
        memmove(http, sp, strlen(sp) + 1);
    }
    long have = (long)(n - (size_t)(end + 4 - buf));
    while (have < want) {
        ssize_t r = read(fd, buf, sizeof(buf));
        if (r <= 0) {
            return;
        }
        have += r;
    }
}

static void *
fake_main(void *arg)
{
    struct fake_agent *fa = arg;
    for (;;) {
        int c = accept(fa->fd, NULL, NULL);
        if (c < 0) {
            return NULL;
        }
        char method[16], line[160] = "";
        fake_read_request(c, method, sizeof(method), line, sizeof(line));
        if (strcmp(method, "QUIT") == 0) {
            close(c);
            return NULL;
        }
        pthread_mutex_lock(&fa->mu);
        if (strcmp(method, "GET") == 0) {
            fa->gets++;
        } else if (strcmp(method, "PUT") == 0) {
            fa->puts++;
        } else if (method[0]) {
            fa->others++;
        }
        if (method[0] && fa->nseen < (int)ARRAY_LEN(fa->seen)) {
            snprintf(fa->seen[fa->nseen++], sizeof(fa->seen[0]), "%s", line);
        }
        pthread_mutex_unlock(&fa->mu);
        size_t off = 0;
        while (method[0] && off < fa->answer_len) {
            ssize_t w = write(c, fa->answer + off, fa->answer_len - off);
            if (w <= 0) {
                break;
            }
            off += (size_t)w;
        }
        close(c);
    }
}

/* Starts a fake agent on ip (port chosen by the kernel) answering every request with answer
 * (answer_len bytes, borrowed). */
static struct fake_agent *
fake_start(const char *ip, const char *answer, size_t answer_len)
{
    struct fake_agent *fa = xcalloc(1, sizeof(*fa));
    pthread_mutex_init(&fa->mu, NULL);
    fa->answer = answer;
    fa->answer_len = answer_len;
    fa->fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fa->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, ip, &a.sin_addr);
    assert_int_equal(bind(fa->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fa->fd, 16), 0);
    socklen_t alen = sizeof(a);
    getsockname(fa->fd, (struct sockaddr *)&a, &alen);
    snprintf(fa->url, sizeof(fa->url), "http://%s:%d", ip, ntohs(a.sin_port));
    pthread_create(&fa->thread, NULL, fake_main, fa);
    return fa;
}

static void
fake_stop(struct fake_agent *fa)
{
    char url[96];
    snprintf(url, sizeof(url), "%s/", fa->url);
    struct resp r = http_do("QUIT", url, NULL, 0, NULL); /* wakes accept, ends the thread */
    resp_free(&r);
    pthread_join(fa->thread, NULL);
    close(fa->fd);
    pthread_mutex_destroy(&fa->mu);
    free(fa);
}

static const char answer500[] = "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain; "
                                "charset=utf-8\r\nContent-Length: 22\r\nConnection: close\r\n\r\n"
                                "rpc error: fake agent\n";

/* A write answered 500 by the first agent is that write's answer: it is not sent again to the
 * next agent (it may have been applied). A read answered 500 moves on to the next agent. */
static void
test_write_not_replayed(void **state)
{
    struct fx *f = *state;
    struct fake_agent *fa = fake_start("127.0.0.38", answer500, sizeof(answer500) - 1);
    char cfg[512];
    snprintf(cfg, sizeof(cfg),
             "\"consul\":{\"addresses\":[\"%s\",\"%s\"],\"token\":\"%s\",\"watch\":false}", fa->url,
             f->sim->servers[0].http, SIM_TOKEN);
    struct srv *s2 = srv_start(cfg);
    assert_non_null(s2);
    struct client *c = srv_login(s2, "admin", s2->admin_pw);
    assert_non_null(c);
    long sim_before = sim_count(f->sim, "/v1/agent/maintenance");
    struct resp r =
        client_req_raw(c, "PUT", "/api/consul/v1/agent/maintenance?enable=true", "", 0, NULL, 1);
    assert_int_equal(r.status, 500);
    assert_memory_equal(r.body, "rpc error: fake agent\n", 22);
    resp_free(&r);
    pthread_mutex_lock(&fa->mu);
    assert_int_equal(fa->puts, 1);
    pthread_mutex_unlock(&fa->mu);
    assert_int_equal(sim_count(f->sim, "/v1/agent/maintenance"), sim_before); /* not replayed */
    char outcome[16];
    cJSON *d =
        last_detail(s2, "consul.agent.put", "/v1/agent/maintenance", outcome, sizeof(outcome));
    assert_non_null(d);
    assert_string_equal(outcome, "error");
    assert_int_equal((int)json_get_num(d, "consul_status", 0), 500);
    assert_string_equal(json_get_str(d, "consul_address", ""), fa->url);
    cJSON_Delete(d);

    /* a read moves on after the 500, and the answer is the next agent's */
    r = client_req(c, "GET", "/api/consul/v1/catalog/nodes", NULL);
    assert_int_equal(r.status, 200);
    assert_true(cJSON_IsArray(r.json));
    resp_free(&r);
    pthread_mutex_lock(&fa->mu);
    assert_int_equal(fa->gets, 1);
    pthread_mutex_unlock(&fa->mu);
    client_free(c);
    srv_stop(s2);
    fake_stop(fa);
}

static const char answer_true[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                  "Content-Length: 5\r\nConnection: close\r\n\r\ntrue\n";

/* The worker thread's curl handle is reused from one request to the next: each request goes
 * out with its own method, path and body, nothing left over from the one before. */
static void
test_upstream_requests_exact(void **state)
{
    (void)state;
    struct fake_agent *fa = fake_start("127.0.0.36", answer_true, sizeof(answer_true) - 1);
    char cfg[256];
    snprintf(cfg, sizeof(cfg), "\"consul\":{\"addresses\":[\"%s\"],\"watch\":false}", fa->url);
    struct srv *s2 = srv_start(cfg);
    assert_non_null(s2);
    struct client *c = srv_login(s2, "admin", s2->admin_pw); /* one connection, one thread */
    assert_non_null(c);
    struct resp r =
        client_req_raw(c, "PUT", "/api/consul/v1/agent/maintenance?enable=1", "abc", 3, NULL, 1);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    r = client_req(c, "GET", "/api/consul/v1/catalog/nodes", NULL);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    r = client_req_raw(c, "DELETE", "/api/consul/v1/session/destroy/x", NULL, 0, NULL, 1);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    r = client_req_raw(c, "HEAD", "/api/consul/v1/catalog/services", NULL, 0, NULL, 0);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    r = client_req_raw(c, "POST", "/api/consul/v1/event/fire/deploy", "", 0, NULL, 1);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    r = client_req(c, "GET", "/api/consul/v1/status/leader", NULL);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    static const char *const want[] = {
        "PUT /v1/agent/maintenance body=3",     "GET /v1/catalog/nodes body=-1",
        "DELETE /v1/session/destroy/x body=-1", "HEAD /v1/catalog/services body=-1",
        "POST /v1/event/fire/deploy body=0",    "GET /v1/status/leader body=-1",
    };
    pthread_mutex_lock(&fa->mu);
    assert_int_equal(fa->nseen, (int)ARRAY_LEN(want));
    for (size_t i = 0; i < ARRAY_LEN(want); i++) {
        if (strcmp(fa->seen[i], want[i]) != 0) {
            fail_msg("request %zu went out as '%s', expected '%s'", i + 1, fa->seen[i], want[i]);
        }
    }
    pthread_mutex_unlock(&fa->mu);
    client_free(c);
    srv_stop(s2);
    fake_stop(fa);
}

/* A change is recorded before it is sent: a pending attempt, then an outcome naming it. When
 * the attempt cannot be recorded (a trigger refusing inserts; a database locked longer than
 * the busy timeout) the answer is 503 audit_unavailable and Consul sees no write. */
struct db_lock {
    const char *path;
    int hold_ms;
    int locked;
};

static void *
db_lock_main(void *arg)
{
    struct db_lock *l = arg;
    sqlite3 *db;
    if (sqlite3_open(l->path, &db) == SQLITE_OK &&
        sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK) {
        l->locked = 1;
        usleep((useconds_t)l->hold_ms * 1000);
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    }
    sqlite3_close(db);
    return NULL;
}

static void
test_write_recorded_first(void **state)
{
    struct fx *f = *state;
    struct client *c = admin(f);
    /* the record of a normal write: attempt, then outcome (last_detail checks the pair) */
    struct resp r = put_raw(c, "/api/consul/v1/kv/first/key", "one");
    assert_int_equal(r.status, 200);
    resp_free(&r);
    char outcome[16];
    cJSON *d = last_detail(f->srv, "consul.kv.put", "/v1/kv/first/key", outcome, sizeof(outcome));
    assert_non_null(d);
    assert_string_equal(outcome, "ok");
    assert_true(json_get_num(d, "attempt_id", 0) > 0);
    assert_false(json_get_bool(cJSON_GetObjectItem(d, "previous"), "exists", 1));
    cJSON_Delete(d);

    /* a trigger refuses every insert into the audit log */
    assert_int_equal(db_exec(f->srv, "CREATE TRIGGER test_no_audit BEFORE INSERT ON audit_log "
                                     "BEGIN SELECT RAISE(ABORT, 'no audit (test)'); END;"),
                     0);
    long seen = sim_count(f->sim, "/v1/kv/first/key");
    long maint = sim_count(f->sim, "/v1/agent/maintenance");
    r = put_raw(c, "/api/consul/v1/kv/first/key", "two");
    assert_error_reply(&r, 503, "audit_unavailable", "the audit log cannot be written");
    resp_free(&r);
    r = client_req_raw(c, "PUT", "/api/consul/v1/agent/maintenance?enable=true", "", 0, NULL, 1);
    assert_error_reply(&r, 503, "audit_unavailable", "not sent to Consul");
    resp_free(&r);
    assert_int_equal(db_exec(f->srv, "DROP TRIGGER test_no_audit;"), 0);
    /* only the previous value was read; nothing was written */
    assert_int_equal(sim_count(f->sim, "/v1/kv/first/key"), seen + 1);
    assert_int_equal(sim_count(f->sim, "/v1/agent/maintenance"), maint);
    r = direct(f->sim, 0, "GET", "/v1/kv/first/key?raw", NULL);
    assert_int_equal(r.status, 200);
    assert_memory_equal(r.body, "one", 3);
    resp_free(&r);

    /* a database locked by another writer for longer than the busy timeout (5 s) */
    struct db_lock lk = {.path = f->srv->db, .hold_ms = 7000};
    pthread_t t;
    pthread_create(&t, NULL, db_lock_main, &lk);
    usleep(300000);
    assert_true(lk.locked);
    seen = sim_count(f->sim, "/v1/kv/first/key");
    r = put_raw(c, "/api/consul/v1/kv/first/key", "three");
    assert_error_reply(&r, 503, "audit_unavailable", "the audit log cannot be written");
    resp_free(&r);
    pthread_join(t, NULL);
    assert_int_equal(sim_count(f->sim, "/v1/kv/first/key"), seen + 1);
    r = direct(f->sim, 0, "GET", "/v1/kv/first/key?raw", NULL);
    assert_memory_equal(r.body, "one", 3);
    resp_free(&r);
    client_free(c);
}

/* VmHWM (peak RSS, kB) of a process; reset_peak first resets it to the current RSS. */
static long
peak_rss_kb(pid_t pid, int reset_peak)
{
    char path[64];
    if (reset_peak) {
        snprintf(path, sizeof(path), "/proc/%d/clear_refs", (int)pid);
        FILE *w = fopen(path, "w");
        if (w) {
            fputs("5", w);
            fclose(w);
        }
    }
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *fp = fopen(path, "r");
    long kb = -1;
    char line[256];
    while (fp && fgets(line, sizeof(line), fp)) {
        if (strncmp(line, "VmHWM:", 6) == 0) {
            kb = strtol(line + 6, NULL, 10);
        }
    }
    if (fp) {
        fclose(fp);
    }
    return kb;
}

/* A large answer is streamed: byte-exact, with Consul's Content-Length, and the server's
 * peak memory does not grow by the answer's size. An agent's chunked answer is relayed
 * chunked. */
static void
test_stream_large(void **state)
{
    struct fx *f = *state;
    size_t vlen = 400 * 1024;
    char *value = xmalloc(vlen + 1);
    for (size_t i = 0; i < vlen; i++) {
        value[i] = (char)('a' + (i * 7 + i / 13) % 26);
    }
    value[vlen] = '\0';
    for (int k = 0; k < 24; k++) {
        char path[64];
        snprintf(path, sizeof(path), "/v1/kv/stream/k%02d", k);
        value[0] = (char)('A' + k);
        struct resp w = direct(f->sim, 0, "PUT", path, value);
        assert_int_equal(w.status, 200);
        resp_free(&w);
    }
    free(value);
    struct client *c = login(f, "vera");
    struct resp d = direct(f->sim, 0, "GET", "/v1/kv/stream?recurse", NULL);
    assert_int_equal(d.status, 200);
    assert_true(d.len > 12u * 1024 * 1024);
    long before = peak_rss_kb(f->srv->pid, 1);
    assert_true(before > 0);
    struct resp p = client_req(c, "GET", "/api/consul/v1/kv/stream?recurse", NULL);
    long after = peak_rss_kb(f->srv->pid, 0);
    assert_int_equal(p.status, 200);
    assert_int_equal(p.len, d.len);
    assert_memory_equal(p.body, d.body, d.len);
    char *cl_p = resp_header(&p, "Content-Length"), *cl_d = resp_header(&d, "Content-Length");
    if (cl_d) {
        assert_non_null(cl_p);
        assert_string_equal(cl_p, cl_d);
    }
    free(cl_p);
    free(cl_d);
    long grown_kb = after - before;
    if (grown_kb * 1024 > (long)(d.len / 4)) {
        fail_msg("the server's peak RSS grew by %ld kB for a %zu-byte answer", grown_kb, d.len);
    }
    resp_free(&p);
    resp_free(&d);
    client_free(c);

    /* a chunked answer (no Content-Length) of a few MiB */
    size_t n = 3 * 1024 * 1024 + 17;
    struct buf ans;
    buf_init(&ans, 16 << 20);
    buf_puts(&ans, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Consul-Index: 77\r\n"
                   "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
    size_t sent = 0, piece = 100000;
    char *body = xmalloc(n);
    for (size_t i = 0; i < n; i++) {
        body[i] = (char)('0' + i % 10);
    }
    while (sent < n) {
        size_t m = n - sent < piece ? n - sent : piece;
        buf_printf(&ans, "%zx\r\n", m);
        buf_append(&ans, body + sent, m);
        buf_puts(&ans, "\r\n");
        sent += m;
    }
    buf_puts(&ans, "0\r\n\r\n");
    struct fake_agent *fa = fake_start("127.0.0.37", ans.data, ans.len);
    char cfg[256];
    snprintf(cfg, sizeof(cfg), "\"consul\":{\"addresses\":[\"%s\"],\"watch\":false}", fa->url);
    struct srv *s2 = srv_start(cfg);
    assert_non_null(s2);
    c = srv_login(s2, "admin", s2->admin_pw);
    p = client_req(c, "GET", "/api/consul/v1/catalog/nodes", NULL);
    assert_int_equal(p.status, 200);
    assert_int_equal(p.len, n);
    assert_memory_equal(p.body, body, n);
    char *te = resp_header(&p, "Transfer-Encoding"), *idx = resp_header(&p, "X-Consul-Index");
    assert_non_null(te);
    assert_string_equal(te, "chunked");
    assert_string_equal(idx, "77");
    free(te);
    free(idx);
    resp_free(&p);
    client_free(c);
    srv_stop(s2);
    fake_stop(fa);
    buf_free(&ans);
    free(body);
}

/* Established connections (from the table of /proc/net/tcp) whose remote end is url's
 * host:port: *n gets their count, and the return value how many run the keepalive timer
 * (timer 2). */
static int
keepalive_sockets(const char *url, int *n)
{
    unsigned a, b, cc, dd, port;
    *n = 0;
    if (sscanf(url, "http://%u.%u.%u.%u:%u", &a, &b, &cc, &dd, &port) != 5) {
        return -1;
    }
    char want[32];
    snprintf(want, sizeof(want), "%02X%02X%02X%02X:%04X", dd, cc, b, a, port);
    FILE *fp = fopen("/proc/net/tcp", "r");
    int ka = 0;
    char line[512];
    while (fp && fgets(line, sizeof(line), fp)) {
        char local[64], rem[64], st[8], txrx[64], timer[32];
        if (sscanf(line, " %*[^:]: %63s %63s %7s %63s %31s", local, rem, st, txrx, timer) != 5) {
            continue;
        }
        if (strcmp(rem, want) == 0 && strcmp(st, "01") == 0) {
            (*n)++;
            ka += strncmp(timer, "02:", 3) == 0;
        }
    }
    if (fp) {
        fclose(fp);
    }
    return ka;
}

struct blocking_read {
    struct client *c;
    const char *path;
    long status;
    int64_t took_ms;
};

static void *
blocking_read_main(void *arg)
{
    struct blocking_read *b = arg;
    int64_t t0 = time_mono_ms();
    struct resp r = client_req(b->c, "GET", b->path, NULL);
    b->took_ms = time_mono_ms() - t0;
    b->status = r.status;
    resp_free(&r);
    return NULL;
}

/* Idle connections to the agents are bounded whatever the number of workers: a worker that
 * served a proxied read keeps its connection only while fewer than 32 workers do (Consul
 * refuses more than 200 connections per client address by default, the watchers' too). */
static void
test_idle_upstream_connections_bounded(void **state)
{
    struct fx *f = *state;
    char cfg[512];
    snprintf(cfg, sizeof(cfg),
             "\"consul\":{\"addresses\":[\"%s\"],\"token\":\"%s\",\"watch\":false},"
             "\"limits\":{\"blocking_reads_per_user\":100}",
             f->sim->servers[0].http, SIM_TOKEN);
    int saved = srv_threads;
    srv_threads = 400; /* a quarter of them may hold blocking reads */
    struct srv *s2 = srv_start(cfg);
    srv_threads = saved;
    assert_non_null(s2);
    struct resp w = direct(f->sim, 0, "PUT", "/v1/kv/idle/key", "x");
    resp_free(&w);
    struct client *a = srv_login(s2, "admin", s2->admin_pw);
    assert_non_null(a);
    struct resp r = client_req(a, "GET", "/api/consul/v1/kv/idle/key", NULL);
    char *idx = resp_header(&r, "X-Consul-Index");
    assert_non_null(idx);
    char path[256];
    snprintf(path, sizeof(path), "/api/consul/v1/kv/idle/key?index=%s&wait=30s", idx);
    free(idx);
    resp_free(&r);
    /* 80 reads at once: 80 workers talk to the agent at the same time */
    enum { N = 80 };
    struct client *c[N];
    struct blocking_read b[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        c[i] = srv_login(s2, "admin", s2->admin_pw);
        assert_non_null(c[i]);
        b[i] = (struct blocking_read){.c = c[i], .path = path};
    }
    for (int i = 0; i < N; i++) {
        pthread_create(&t[i], NULL, blocking_read_main, &b[i]);
    }
    int during = 0;
    for (int tries = 0; tries < 100 && during < N; tries++) {
        usleep(100000);
        keepalive_sockets(f->sim->servers[0].http, &during);
    }
    /* a change wakes every read at once; the connections are counted right after, well
     * before the simulator closes an idle one (after 500 ms) */
    w = direct(f->sim, 0, "PUT", "/v1/kv/idle/key", "y");
    resp_free(&w);
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
    }
    usleep(100000);
    int after = 0;
    keepalive_sockets(f->sim->servers[0].http, &after);
    for (int i = 0; i < N; i++) {
        assert_int_equal(b[i].status, 200);
        client_free(c[i]);
    }
    if (during < N / 2) {
        fail_msg("only %d reads reached the agent at once; the test proves nothing", during);
    }
    if (after > 32) {
        fail_msg("%d idle connections to the agent are kept after %d parallel reads (at most 32)",
                 after, N);
    }
    client_free(a);
    srv_stop(s2);
}


/* Blocking reads: the wait is clamped to consul.proxy_max_wait_s (and set when absent,
 * instead of Consul's 5 minutes); a user holds at most limits.blocking_reads_per_user of
 * them (429 too_many_blocking_reads beyond); upstream connections use TCP keepalive. */
static void
test_blocking_limits(void **state)
{
    struct fx *f = *state;
    char cfg[512];
    snprintf(cfg, sizeof(cfg),
             "\"consul\":{\"addresses\":[\"%s\"],\"token\":\"%s\",\"watch\":false,"
             "\"proxy_max_wait_s\":2},\"limits\":{\"blocking_reads_per_user\":2}",
             f->sim->servers[0].http, SIM_TOKEN);
    struct srv *s2 = srv_start(cfg);
    assert_non_null(s2);
    assert_int_equal(srv_add_user(s2, "vera", "viewer", PW), 201);
    struct client *v[3];
    for (int i = 0; i < 3; i++) {
        v[i] = srv_login(s2, "vera", PW);
        assert_non_null(v[i]);
    }
    struct resp w = direct(f->sim, 0, "PUT", "/v1/kv/wait/key", "x");
    resp_free(&w);
    struct resp r = client_req(v[0], "GET", "/api/consul/v1/kv/wait/key", NULL);
    assert_int_equal(r.status, 200);
    char *idx = resp_header(&r, "X-Consul-Index");
    assert_non_null(idx);
    char path[256];
    snprintf(path, sizeof(path), "/api/consul/v1/kv/wait/key?index=%s", idx);
    char path_long[256];
    snprintf(path_long, sizeof(path_long), "/api/consul/v1/kv/wait/key?index=%s&wait=30s", idx);
    free(idx);
    resp_free(&r);

    /* no wait given (Consul would wait 5 minutes), and one too long: both about 2 s */
    const char *paths[] = {path, path_long};
    for (int i = 0; i < 2; i++) {
        struct blocking_read b = {.c = v[0], .path = paths[i]};
        blocking_read_main(&b);
        assert_int_equal(b.status, 200);
        if (b.took_ms < 1800 || b.took_ms > 4500) {
            fail_msg("%s took %lld ms (consul.proxy_max_wait_s is 2)", paths[i],
                     (long long)b.took_ms);
        }
    }

    /* two in flight: a third from the same user is refused at once, another user's passes */
    struct blocking_read b[2] = {{.c = v[0], .path = path}, {.c = v[1], .path = path_long}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++) {
        pthread_create(&t[i], NULL, blocking_read_main, &b[i]);
    }
    usleep(500000);
    int64_t t0 = time_mono_ms();
    r = client_req(v[2], "GET", path, NULL);
    assert_error_reply(&r, 429, "too_many_blocking_reads", "limits.blocking_reads_per_user");
    assert_true(time_mono_ms() - t0 < 1000);
    resp_free(&r);
    /* a read that does not block is not limited */
    r = client_req(v[2], "GET", "/api/consul/v1/kv/wait/key", NULL);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    /* the upstream connections of the reads in flight run TCP keepalive */
    int n = 0;
    int ka = keepalive_sockets(f->sim->servers[0].http, &n);
    assert_true(n >= 2);
    if (ka != n) {
        fail_msg("%d of %d connections to the agent have no keepalive timer", n - ka, n);
    }
    struct client *admin_c = srv_login(s2, "admin", s2->admin_pw);
    struct blocking_read other = {.c = admin_c, .path = path};
    blocking_read_main(&other);
    assert_int_equal(other.status, 200);
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(b[i].status, 200);
    }
    /* the slots are given back */
    struct blocking_read again = {.c = v[2], .path = path};
    blocking_read_main(&again);
    assert_int_equal(again.status, 200);
    client_free(admin_c);
    for (int i = 0; i < 3; i++) {
        client_free(v[i]);
    }
    srv_stop(s2);
}

int
main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (sodium_init() < 0) {
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_passthrough_equal),
        cmocka_unit_test(test_blocking_query),
        cmocka_unit_test(test_viewer_put_kv_denied),
        cmocka_unit_test(test_csrf_and_anonymous_writes_audited),
        cmocka_unit_test(test_operator_put_kv_audited),
        cmocka_unit_test(test_always_refused),
        cmocka_unit_test(test_secret_reads_refused),
        cmocka_unit_test(test_unknown_endpoint_refused),
        cmocka_unit_test(test_path_and_method_checks),
        cmocka_unit_test(test_raw_is_text_plain),
        cmocka_unit_test(test_body_limit),
        cmocka_unit_test(test_token_stripped),
        cmocka_unit_test(test_browser_token_not_forwarded),
        cmocka_unit_test(test_failover_first_stopped),
        cmocka_unit_test(test_all_down_502),
        cmocka_unit_test(test_connect_timeout),
        cmocka_unit_test(test_write_not_replayed),
        cmocka_unit_test(test_upstream_requests_exact),
        cmocka_unit_test(test_write_recorded_first),
        cmocka_unit_test(test_stream_large),
        cmocka_unit_test(test_blocking_limits),
        cmocka_unit_test(test_idle_upstream_connections_bounded),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    curl_global_cleanup();
    return rc;
}
