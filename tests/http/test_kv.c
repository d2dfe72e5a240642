/* Black-box tests of KV history and restore (/api/kv/history, /api/kv/restore) against the
 * real server and the simulator (3 servers on 127.0.0.41-43): the history built from the
 * audit log, restores of a value and of an absence, check-and-set on the current index,
 * conflicts, and permissions. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <sodium.h>

#include "harness.h"
#include "simctl.h"
#include "util.h"

#define PW "correct-horse-42"

struct fx {
    struct sim *sim;
    struct srv *srv;
};

/* GETs path on the first simulated server; returns the status, *body (may be NULL) the
 * caller's. */
static long
direct(struct fx *f, const char *method, const char *path, const char *body, char **out)
{
    char url[512];
    snprintf(url, sizeof(url), "%s%s", f->sim->servers[0].http, path);
    long status = 0;
    char *b = NULL;
    if (sim_http(method, url, body, NULL, &status, &b, NULL) != 0) {
        status = -1;
    }
    if (out) {
        *out = b;
    } else {
        free(b);
    }
    return status;
}

static int
setup(void **state)
{
    struct fx *f = xcalloc(1, sizeof(*f));
    f->sim = sim_start("--servers 3 --speed 20 --ip-base 127.0.0.41");
    if (!f->sim) {
        return -1;
    }
    int64_t deadline = time_mono_ms() + 15000;
    for (;;) {
        char *b = NULL;
        long st = direct(f, "GET", "/v1/status/leader", NULL, &b);
        int ok = st == 200 && b && strlen(b) > 2;
        free(b);
        if (ok) {
            break;
        }
        if (time_mono_ms() > deadline) {
            return -1;
        }
        usleep(50000);
    }
    char cfg[512];
    snprintf(cfg, sizeof(cfg), "\"consul\":{\"addresses\":[\"%s\",\"%s\"]}",
             f->sim->servers[0].http, f->sim->servers[1].http);
    f->srv = srv_start(cfg);
    if (!f->srv || srv_add_user(f->srv, "vera", "viewer", PW) != 201 ||
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

static char *
b64(const char *s)
{
    size_t len = strlen(s);
    size_t cap = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
    char *out = xmalloc(cap);
    sodium_bin2base64(out, cap, (const unsigned char *)s, len, sodium_base64_VARIANT_ORIGINAL);
    return out;
}

static void
put(struct client *c, const char *key, const char *value)
{
    char path[512];
    snprintf(path, sizeof(path), "/api/consul/v1/kv/%s", key);
    struct resp r = client_req_raw(c, "PUT", path, value, strlen(value), NULL, 1);
    assert_int_equal(r.status, 200);
    assert_memory_equal(r.body, "true", 4);
    resp_free(&r);
}

/* The current value of key read directly from Consul, or NULL when absent. */
static char *
current(struct fx *f, const char *key)
{
    char path[512];
    snprintf(path, sizeof(path), "/v1/kv/%s?raw", key);
    char *b = NULL;
    long st = direct(f, "GET", path, NULL, &b);
    if (st != 200) {
        free(b);
        return NULL;
    }
    return b;
}

static cJSON *
history(struct client *c, const char *key)
{
    char path[512];
    snprintf(path, sizeof(path), "/api/kv/history?key=%s", key);
    struct resp r = client_req(c, "GET", path, NULL);
    assert_int_equal(r.status, 200);
    cJSON *j = r.json;
    r.json = NULL;
    resp_free(&r);
    if (!strchr(key, '%')) {
        assert_string_equal(json_get_str(j, "key", ""), key);
    }
    return j;
}

static struct resp
restore(struct client *c, const char *key, double id, const char *which)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "key", key);
    cJSON_AddNumberToObject(j, "audit_id", id);
    cJSON_AddStringToObject(j, "which", which);
    char *body = json_print(j);
    cJSON_Delete(j);
    struct resp r = client_req(c, "POST", "/api/kv/restore", body);
    free(body);
    return r;
}

static const cJSON *
entry(const cJSON *h, int i)
{
    return cJSON_GetArrayItem(cJSON_GetObjectItem(h, "entries"), i);
}

static void
test_history_and_restore(void **state)
{
    struct fx *f = *state;
    struct client *c = srv_login(f->srv, "otto", PW);
    assert_non_null(c);
    const char *key = "app/feature";
    put(c, key, "v1");
    put(c, key, "v2");
    put(c, key, "v3");
    char *v1 = b64("v1"), *v2 = b64("v2"), *v3 = b64("v3");

    cJSON *h = history(c, key);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(h, "entries")), 3);
    /* newest first, each with the value before it */
    assert_string_equal(json_get_str(entry(h, 0), "action", ""), "consul.kv.put");
    assert_string_equal(json_get_str(entry(h, 0), "actor", ""), "otto");
    assert_string_equal(json_get_str(entry(h, 0), "outcome", ""), "ok");
    assert_string_equal(json_get_str(entry(h, 0), "value_b64", ""), v3);
    const cJSON *p0 = cJSON_GetObjectItem(entry(h, 0), "previous");
    assert_true(json_get_bool(p0, "exists", 0));
    assert_string_equal(json_get_str(p0, "value_b64", ""), v2);
    assert_string_equal(json_get_str(cJSON_GetObjectItem(entry(h, 1), "previous"), "value_b64", ""),
                        v1);
    const cJSON *p2 = cJSON_GetObjectItem(entry(h, 2), "previous");
    assert_false(json_get_bool(p2, "exists", 1));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(p2, "value_b64")));
    assert_string_equal(json_get_str(entry(h, 2), "value_b64", ""), v1);
    assert_non_null(json_get_str(entry(h, 2), "time", NULL));
    double id_v1 = json_get_num(entry(h, 2), "id", 0);
    double id_v2 = json_get_num(entry(h, 1), "id", 0);
    cJSON_Delete(h);

    /* restore v1 (the value written by the first entry) */
    long before = db_count_audit(f->srv, "consul.kv.restore", "ok");
    struct resp r = restore(c, key, id_v1, "value");
    assert_int_equal(r.status, 200);
    assert_true(json_get_bool(r.json, "ok", 0));
    assert_string_equal(json_get_str(r.json, "value_b64", ""), v1);
    resp_free(&r);
    char *cur = current(f, key);
    assert_non_null(cur);
    assert_string_equal(cur, "v1");
    free(cur);
    assert_int_equal(db_count_audit(f->srv, "consul.kv.restore", "ok"), before + 1);
    h = history(c, key);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(h, "entries")), 4);
    assert_string_equal(json_get_str(entry(h, 0), "action", ""), "consul.kv.restore");
    assert_int_equal((int)json_get_num(entry(h, 0), "restored_from", 0), (int)id_v1);
    assert_string_equal(json_get_str(cJSON_GetObjectItem(entry(h, 0), "previous"), "value_b64", ""),
                        v3);
    assert_string_equal(json_get_str(entry(h, 0), "value_b64", ""), v1);
    cJSON_Delete(h);

    /* a stale view: someone changed the key meanwhile; restore reads the current index */
    assert_int_equal(direct(f, "PUT", "/v1/kv/app/feature", "v9", NULL), 200);
    r = restore(c, key, id_v2, "value");
    assert_int_equal(r.status, 200);
    resp_free(&r);
    cur = current(f, key);
    assert_string_equal(cur, "v2");
    free(cur);

    /* "previous" of the first entry: the key did not exist → restore deletes it */
    r = restore(c, key, id_v1, "previous");
    assert_int_equal(r.status, 200);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(r.json, "value_b64")));
    resp_free(&r);
    assert_null(current(f, key));
    free(v1);
    free(v2);
    free(v3);
    client_free(c);
}

static void
test_delete_then_restore_previous(void **state)
{
    struct fx *f = *state;
    struct client *c = srv_login(f->srv, "otto", PW);
    const char *key = "svc/db/url";
    put(c, key, "postgres://db:5432");
    struct resp r = client_req_raw(c, "DELETE", "/api/consul/v1/kv/svc/db/url", NULL, 0, NULL, 1);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    assert_null(current(f, key));
    cJSON *h = history(c, key);
    assert_string_equal(json_get_str(entry(h, 0), "action", ""), "consul.kv.delete");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(entry(h, 0), "value_b64")));
    double id = json_get_num(entry(h, 0), "id", 0);
    cJSON_Delete(h);
    r = restore(c, key, id, "previous");
    assert_int_equal(r.status, 200);
    resp_free(&r);
    char *cur = current(f, key);
    assert_non_null(cur);
    assert_string_equal(cur, "postgres://db:5432");
    free(cur);
    /* "value" of a delete entry deletes again */
    r = restore(c, key, id, "value");
    assert_int_equal(r.status, 200);
    resp_free(&r);
    assert_null(current(f, key));
    client_free(c);
}

static void
test_cas_through_proxy(void **state)
{
    struct fx *f = *state;
    struct client *c = srv_login(f->srv, "otto", PW);
    put(c, "cas/key", "one");
    struct resp r = client_req(c, "GET", "/api/consul/v1/kv/cas/key", NULL);
    assert_int_equal(r.status, 200);
    double idx = json_get_num(cJSON_GetArrayItem(r.json, 0), "ModifyIndex", 0);
    resp_free(&r);
    assert_int_equal(direct(f, "PUT", "/v1/kv/cas/key", "other", NULL), 200);
    char path[128];
    snprintf(path, sizeof(path), "/api/consul/v1/kv/cas/key?cas=%.0f", idx);
    r = client_req_raw(c, "PUT", path, "mine", 4, NULL, 1);
    assert_int_equal(r.status, 200);
    assert_memory_equal(r.body, "false", 5);
    resp_free(&r);
    char *cur = current(f, "cas/key");
    assert_string_equal(cur, "other");
    free(cur);
    client_free(c);
}

struct racer {
    struct fx *f;
};

static void *
racer_main(void *arg)
{
    struct racer *rc = arg;
    usleep(150000);
    direct(rc->f, "PUT", "/v1/kv/race/key", "racer", NULL);
    return NULL;
}

/* A write that lands between the restore's read and its check-and-set makes it a 409. The
 * simulator's latency (applied to answers, after the work) opens that window. */
static void
test_restore_conflict(void **state)
{
    struct fx *f = *state;
    struct client *c = srv_login(f->srv, "otto", PW);
    put(c, "race/key", "a");
    put(c, "race/key", "b");
    cJSON *h = history(c, "race/key");
    double id = json_get_num(entry(h, 0), "id", 0);
    cJSON_Delete(h);
    long st = 0;
    sim_ctl(f->sim, "PUT", "/sim/latency", "{\"ms\":600}", &st, NULL);
    assert_int_equal(st, 200);
    pthread_t t;
    struct racer rc = {f};
    pthread_create(&t, NULL, racer_main, &rc);
    long before = db_count_audit(f->srv, "consul.kv.restore", "error");
    struct resp r = restore(c, "race/key", id, "previous");
    pthread_join(t, NULL);
    sim_ctl(f->sim, "PUT", "/sim/latency", "{\"ms\":0}", &st, NULL);
    assert_int_equal(r.status, 409);
    assert_string_equal(json_get_str(cJSON_GetObjectItem(r.json, "error"), "code", ""),
                        "cas_conflict");
    resp_free(&r);
    assert_int_equal(db_count_audit(f->srv, "consul.kv.restore", "error"), before + 1);
    char *cur = current(f, "race/key");
    assert_string_equal(cur, "racer");
    free(cur);
    client_free(c);
}

static void
test_restore_errors_and_permissions(void **state)
{
    struct fx *f = *state;
    struct client *op = srv_login(f->srv, "otto", PW);
    put(op, "perm/key", "x");
    cJSON *h = history(op, "perm/key");
    double id = json_get_num(entry(h, 0), "id", 0);
    cJSON_Delete(h);

    struct client *v = srv_login(f->srv, "vera", PW);
    assert_non_null(v);
    /* a viewer reads the history but cannot restore */
    h = history(v, "perm/key");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(h, "entries")), 1);
    cJSON_Delete(h);
    long before = db_count_audit(f->srv, "consul.kv.restore", "denied");
    struct resp r = restore(v, "perm/key", id, "previous");
    assert_int_equal(r.status, 403);
    resp_free(&r);
    assert_int_equal(db_count_audit(f->srv, "consul.kv.restore", "denied"), before + 1);

    /* the history needs its key */
    r = client_req(v, "GET", "/api/kv/history", NULL);
    assert_int_equal(r.status, 400);
    assert_non_null(
        strstr(json_get_str(cJSON_GetObjectItem(r.json, "error"), "message", ""), "key"));
    resp_free(&r);

    /* an entry of another key, an unknown id, a bad "which" */
    r = restore(op, "perm/other", id, "previous");
    assert_int_equal(r.status, 404);
    resp_free(&r);
    r = restore(op, "perm/key", 999999, "previous");
    assert_int_equal(r.status, 404);
    resp_free(&r);
    r = restore(op, "perm/key", id, "newest");
    assert_int_equal(r.status, 400);
    resp_free(&r);
    r = client_req(op, "POST", "/api/kv/restore", "{\"key\":\"perm/key\"}");
    assert_int_equal(r.status, 400);
    resp_free(&r);
    /* a key with characters that need escaping round-trips */
    put(op, "odd/a%20b%3Fc", "spaced");
    h = history(op, "odd/a%20b%3Fc");
    assert_string_equal(json_get_str(h, "key", ""), "odd/a b?c");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(h, "entries")), 1);
    id = json_get_num(entry(h, 0), "id", 0);
    cJSON_Delete(h);
    put(op, "odd/a%20b%3Fc", "changed");
    r = restore(op, "odd/a b?c", id, "value");
    assert_int_equal(r.status, 200);
    resp_free(&r);
    char *cur = current(f, "odd/a%20b%3Fc");
    assert_string_equal(cur, "spaced");
    free(cur);
    client_free(v);
    client_free(op);
}

int
main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (sodium_init() < 0) {
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_history_and_restore),
        cmocka_unit_test(test_delete_then_restore_previous),
        cmocka_unit_test(test_cas_through_proxy),
        cmocka_unit_test(test_restore_conflict),
        cmocka_unit_test(test_restore_errors_and_permissions),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    curl_global_cleanup();
    return rc;
}
