/* Black-box tests of KV history and restore (/api/kv/history, /api/kv/restore) against the
 * real server and the simulator (3 servers on 127.0.0.41-43): the history built from the
 * audit log (one entry per change, its outcome folded in), restores of a value and of an
 * absence, check-and-set on the current index, conflicts, permissions, keys written through
 * encoded paths, and changes refused when they cannot be recorded first. */
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

/* How many requests the simulator counted for path (as sent, without the query). */
static long
sim_count(struct fx *f, const char *path)
{
    long st = 0;
    char *b = NULL;
    sim_ctl(f->sim, "GET", "/sim/requests", NULL, &st, &b);
    cJSON *j = b ? cJSON_Parse(b) : NULL;
    long n = (long)json_get_num(cJSON_GetObjectItem(j, "by_path"), path, 0);
    cJSON_Delete(j);
    free(b);
    return n;
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
    if (!strchr(key, '%') && !strstr(key, "//")) { /* else decoded, normalised */
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
    assert_true(json_get_bool(entry(h, 0), "result", 0));
    assert_int_equal((int)json_get_num(entry(h, 0), "consul_status", 0), 200);
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
    assert_string_equal(json_get_str(entry(h, 0), "outcome", ""), "ok");
    assert_true(json_get_bool(entry(h, 0), "result", 0));
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
    assert_error_reply(&r, 409, "cas_conflict", "the key changed while restoring it");
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
    long writes = sim_count(f, "/v1/kv/perm/key");
    struct resp r = restore(v, "perm/key", id, "previous");
    assert_error_reply(&r, 403, "forbidden", "needs the operator role (you are viewer)");
    resp_free(&r);
    assert_int_equal(db_count_audit(f->srv, "consul.kv.restore", "denied"), before + 1);

    /* the history needs its key, well encoded, and sane paging */
    r = client_req(v, "GET", "/api/kv/history", NULL);
    assert_error_reply(&r, 400, "invalid_parameter", "'key' is required");
    resp_free(&r);
    r = client_req(v, "GET", "/api/kv/history?key=perm%zz", NULL);
    assert_error_reply(&r, 400, "invalid_parameter", "'key' has a bad percent-encoding");
    resp_free(&r);
    r = client_req(v, "GET", "/api/kv/history?key=perm/key&limit=0", NULL);
    assert_error_reply(&r, 400, "invalid_parameter", "'limit'");
    resp_free(&r);
    r = client_req(v, "GET", "/api/kv/history?key=perm/key&before=x", NULL);
    assert_error_reply(&r, 400, "invalid_parameter", "'before'");
    resp_free(&r);

    /* an entry of another key, an unknown id, a bad "which", no id */
    r = restore(op, "perm/other", id, "previous");
    assert_error_reply(&r, 404, "not_found", "is not a KV entry for key 'perm/other'");
    resp_free(&r);
    r = restore(op, "perm/key", 999999, "previous");
    assert_error_reply(&r, 404, "not_found", "audit entry 999999");
    resp_free(&r);
    r = restore(op, "perm/key", id, "newest");
    assert_error_reply(&r, 400, "invalid_field", "'which'");
    resp_free(&r);
    r = client_req(op, "POST", "/api/kv/restore", "{\"key\":\"perm/key\"}");
    assert_error_reply(&r, 400, "invalid_field", "'audit_id'");
    resp_free(&r);
    r = client_req(op, "POST", "/api/kv/restore", "{\"audit_id\":1,\"which\":\"value\"}");
    assert_error_reply(&r, 400, "invalid_field", "'key'");
    resp_free(&r);
    r = client_req(op, "POST", "/api/kv/restore",
                   "{\"key\":\"perm/key\",\"audit_id\":1,\"which\":\"value\",\"cas\":0}");
    assert_error_reply(&r, 400, "invalid_field", "unknown field 'cas'");
    resp_free(&r);
    /* none of them wrote anything */
    assert_int_equal(sim_count(f, "/v1/kv/perm/key"), writes);
    char *cur = current(f, "perm/key");
    assert_string_equal(cur, "x");
    free(cur);
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
    cur = current(f, "odd/a%20b%3Fc");
    assert_string_equal(cur, "spaced");
    free(cur);
    client_free(v);
    client_free(op);
}

/* A key written through an encoded or unnormalised path: Consul decodes the path and its
 * router would collapse "//", so the proxy builds one canonical path from the decoded,
 * normalised one and uses it for the read of the previous value, the write and the audit
 * target. The history then has the right previous value, and restoring it restores it. */
static void
test_encoded_paths(void **state)
{
    struct fx *f = *state;
    struct client *c = srv_login(f->srv, "otto", PW);
    static const struct {
        const char *sent; /* after /api/consul/v1/ */
        const char *key;
    } v[] = {
        {"kv%2Fenc%2Fk1", "enc/k1"},    {"kv%2fenc%2fk2", "enc/k2"}, {"kv/enc%2Fk3", "enc/k3"},
        {"kv%2Fenc/k4", "enc/k4"},      {"kv//enc///k5", "enc/k5"},  {"kv/enc/%6B6", "enc/k6"},
        {"kv%2F%2Fenc%2fk7", "enc/k7"},
    };
    for (size_t i = 0; i < ARRAY_LEN(v); i++) {
        char path[256], before[32], after[32];
        snprintf(before, sizeof(before), "before-%zu", i);
        snprintf(after, sizeof(after), "after-%zu", i);
        /* the previous value, written with the canonical path (the same key on any agent) */
        snprintf(path, sizeof(path), "/v1/kv/%s", v[i].key);
        assert_int_equal(direct(f, "PUT", path, before, NULL), 200);
        snprintf(path, sizeof(path), "/api/consul/v1/%s", v[i].sent);
        struct resp r = client_req_raw(c, "PUT", path, after, strlen(after), NULL, 1);
        assert_int_equal(r.status, 200);
        assert_memory_equal(r.body, "true", 4);
        resp_free(&r);
        char *cur = current(f, v[i].key);
        assert_non_null(cur);
        assert_string_equal(cur, after);
        free(cur);

        cJSON *h = history(c, v[i].key);
        assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(h, "entries")), 1);
        const cJSON *e = entry(h, 0);
        char *b_before = b64(before), *b_after = b64(after);
        assert_string_equal(json_get_str(e, "action", ""), "consul.kv.put");
        assert_string_equal(json_get_str(e, "outcome", ""), "ok");
        assert_true(json_get_bool(e, "result", 0));
        const cJSON *prev = cJSON_GetObjectItem(e, "previous");
        if (!json_get_bool(prev, "exists", 0)) {
            fail_msg("%s: the history says %s did not exist before", v[i].sent, v[i].key);
        }
        assert_string_equal(json_get_str(prev, "value_b64", ""), b_before);
        assert_string_equal(json_get_str(e, "value_b64", ""), b_after);
        double id = json_get_num(e, "id", 0);
        cJSON_Delete(h);
        free(b_before);
        free(b_after);

        r = restore(c, v[i].key, id, "previous");
        assert_int_equal(r.status, 200);
        resp_free(&r);
        cur = current(f, v[i].key);
        assert_non_null(cur);
        assert_string_equal(cur, before);
        free(cur);
    }
    /* the history of an unnormalised key is the key's */
    cJSON *h = history(c, "enc//k5");
    assert_string_equal(json_get_str(h, "key", ""), "enc/k5");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(h, "entries")), 2);
    cJSON_Delete(h);
    client_free(c);
}

#define NO_AUDIT_TRIGGER                                                                           \
    "CREATE TRIGGER test_no_audit BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, "           \
    "'audit log unavailable (test)'); END;"

/* No change without its record: when the attempt cannot be recorded, neither a proxied KV
 * write nor a restore is sent (503 audit_unavailable), and the value stays. */
static void
test_change_needs_its_record(void **state)
{
    struct fx *f = *state;
    struct client *c = srv_login(f->srv, "otto", PW);
    put(c, "rec/key", "v1");
    cJSON *h = history(c, "rec/key");
    double id = json_get_num(entry(h, 0), "id", 0);
    cJSON_Delete(h);
    assert_int_equal(db_exec(f->srv, NO_AUDIT_TRIGGER), 0);
    long seen = sim_count(f, "/v1/kv/rec/key");

    struct resp r = client_req_raw(c, "PUT", "/api/consul/v1/kv/rec/key", "v2", 2, NULL, 1);
    assert_error_reply(&r, 503, "audit_unavailable", "the audit log cannot be written");
    resp_free(&r);
    /* the previous value was read (the record needs it); nothing was written */
    assert_int_equal(sim_count(f, "/v1/kv/rec/key"), seen + 1);
    r = client_req_raw(c, "DELETE", "/api/consul/v1/kv/rec/key", NULL, 0, NULL, 1);
    assert_error_reply(&r, 503, "audit_unavailable", "not sent to Consul");
    resp_free(&r);
    r = restore(c, "rec/key", id, "previous"); /* would delete it */
    assert_error_reply(&r, 503, "audit_unavailable", "not sent to Consul");
    resp_free(&r);
    assert_int_equal(sim_count(f, "/v1/kv/rec/key"), seen + 3);
    char *cur = current(f, "rec/key");
    assert_non_null(cur);
    assert_string_equal(cur, "v1");
    free(cur);

    assert_int_equal(db_exec(f->srv, "DROP TRIGGER test_no_audit;"), 0);
    put(c, "rec/key", "v3");
    client_free(c);
}

/* An attempt whose outcome could not be recorded stays in the history as "pending" (the
 * change was sent; its result is unknown), and can still be restored from. */
static void
test_outcome_lost_stays_pending(void **state)
{
    struct fx *f = *state;
    struct client *c = srv_login(f->srv, "otto", PW);
    put(c, "lost/key", "v1");
    assert_int_equal(db_exec(f->srv, "CREATE TRIGGER test_no_outcome BEFORE INSERT ON audit_log "
                                     "WHEN NEW.outcome <> 'pending' BEGIN SELECT RAISE(ABORT, "
                                     "'no outcome (test)'); END;"),
                     0);
    put(c, "lost/key", "v2");
    assert_int_equal(db_exec(f->srv, "DROP TRIGGER test_no_outcome;"), 0);
    cJSON *h = history(c, "lost/key");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(h, "entries")), 2);
    const cJSON *e = entry(h, 0);
    assert_string_equal(json_get_str(e, "outcome", ""), "pending");
    assert_null(cJSON_GetObjectItem(e, "result"));
    assert_string_equal(json_get_str(entry(h, 1), "outcome", ""), "ok");
    char *v1 = b64("v1");
    assert_string_equal(json_get_str(cJSON_GetObjectItem(e, "previous"), "value_b64", ""), v1);
    free(v1);
    double id = json_get_num(e, "id", 0);
    cJSON_Delete(h);
    struct resp r = restore(c, "lost/key", id, "previous");
    assert_int_equal(r.status, 200);
    resp_free(&r);
    char *cur = current(f, "lost/key");
    assert_string_equal(cur, "v1");
    free(cur);
    /* paging: the older entry alone, its outcome folded in although it is newer than before */
    char path[128];
    snprintf(path, sizeof(path), "/api/kv/history?key=lost/key&before=%.0f&limit=1", id);
    r = client_req(c, "GET", path, NULL);
    assert_int_equal(r.status, 200);
    const cJSON *entries = cJSON_GetObjectItem(r.json, "entries");
    assert_int_equal(cJSON_GetArraySize(entries), 1);
    assert_string_equal(json_get_str(cJSON_GetArrayItem(entries, 0), "outcome", ""), "ok");
    assert_true(json_get_bool(cJSON_GetArrayItem(entries, 0), "result", 0));
    resp_free(&r);
    client_free(c);
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
        cmocka_unit_test(test_encoded_paths),
        cmocka_unit_test(test_change_needs_its_record),
        cmocka_unit_test(test_outcome_lost_stays_pending),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    curl_global_cleanup();
    return rc;
}
