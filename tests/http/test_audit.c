/* Black-box tests of the audit log's read side against the real server: the list with its
 * filters and keyset paging, the CSV / JSON Lines export, the chain verification after
 * tampering with the database file, parameter errors, roles, and the `audit` CLI. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "harness.h"
#include "util.h"

#define DB_EXEC(s, sql) assert_int_equal(db_exec((s), (sql)), 0)

#define PW "correct-horse-42"

/* One server for the tests that do not break the chain; entries made once. */
static int
setup(void **state)
{
    struct srv *s = srv_start(NULL);
    if (!s) {
        return -1;
    }
    /* Some history: users created, good and bad logins. */
    if (srv_add_user(s, "vera", "viewer", PW) != 201 ||
        srv_add_user(s, "otto", "operator", PW) != 201 ||
        srv_add_user(s, "olga", "operator", PW) != 201) {
        srv_stop(s);
        return -1;
    }
    for (int i = 0; i < 3; i++) {
        struct client *c = client_new(s);
        client_login(c, "otto", "wrong-password-1");
        client_free(c);
    }
    *state = s;
    return 0;
}

static int
teardown(void **state)
{
    srv_stop(*state);
    return 0;
}

static struct client *
admin(struct srv *s)
{
    struct client *c = srv_login(s, "admin", s->admin_pw);
    assert_non_null(c);
    return c;
}

/* GET path; asserts 200 and returns the entries array (owned by *r). */
static cJSON *
get_entries(struct client *c, const char *path, struct resp *r)
{
    *r = client_req(c, "GET", path, NULL);
    if (r->status != 200) {
        fail_msg("GET %s: %ld %s", path, r->status, r->body ? r->body : "");
    }
    cJSON *e = cJSON_GetObjectItem(r->json, "entries");
    assert_true(cJSON_IsArray(e));
    return e;
}

static void
test_list_and_filters(void **state)
{
    struct srv *s = *state;
    struct client *c = admin(s);
    struct resp r;
    cJSON *e = get_entries(c, "/api/audit", &r);
    int n_all = cJSON_GetArraySize(e);
    assert_true(n_all >= 6);
    assert_true(n_all < 100);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(r.json, "next_before_id")));
    double prev = 1e18;
    const cJSON *it;
    cJSON_ArrayForEach(it, e)
    {
        double id = json_get_num(it, "id", 0);
        assert_true(id < prev); /* newest first */
        prev = id;
        const char *keys[] = {"time",   "actor",   "role",      "ip",  "action",
                              "target", "outcome", "prev_hash", "hash"};
        for (size_t k = 0; k < ARRAY_LEN(keys); k++) {
            assert_true(cJSON_IsString(cJSON_GetObjectItem(it, keys[k])));
        }
        assert_true(cJSON_IsObject(cJSON_GetObjectItem(it, "detail")));
        assert_int_equal(strlen(json_get_str(it, "hash", "")), 64);
    }
    resp_free(&r);

    e = get_entries(c, "/api/audit?action=user.create", &r);
    assert_int_equal(cJSON_GetArraySize(e), 3);
    cJSON_ArrayForEach(it, e)
    {
        assert_string_equal(json_get_str(it, "action", ""), "user.create");
        assert_string_equal(json_get_str(it, "actor", ""), "admin");
    }
    resp_free(&r);

    e = get_entries(c, "/api/audit?action=auth.&outcome=denied", &r);
    assert_int_equal(cJSON_GetArraySize(e), 3);
    cJSON_ArrayForEach(it, e)
    {
        assert_true(str_starts_with(json_get_str(it, "action", ""), "auth."));
        assert_string_equal(json_get_str(it, "outcome", ""), "denied");
    }
    resp_free(&r);

    e = get_entries(c, "/api/audit?actor=admin&action=user", &r);
    assert_int_equal(cJSON_GetArraySize(e), 3);
    resp_free(&r);

    e = get_entries(c, "/api/audit?q=olga", &r);
    assert_true(cJSON_GetArraySize(e) >= 1);
    cJSON_ArrayForEach(it, e)
    {
        char *text = cJSON_PrintUnformatted(it);
        assert_non_null(strstr(text, "olga"));
        free(text);
    }
    resp_free(&r);

    e = get_entries(c, "/api/audit?q=%25", &r); /* a literal %, not a wildcard */
    assert_int_equal(cJSON_GetArraySize(e), 0);
    resp_free(&r);

    /* Time range, as epoch ms and as RFC 3339. */
    char path[256];
    int64_t now = time_now_ms();
    snprintf(path, sizeof(path), "/api/audit?since=%lld", (long long)(now + 3600000));
    e = get_entries(c, path, &r);
    assert_int_equal(cJSON_GetArraySize(e), 0);
    resp_free(&r);
    char t[40];
    time_format_rfc3339(now - 3600000, t, sizeof(t));
    snprintf(path, sizeof(path), "/api/audit?since=%s&until=%lld", t, (long long)(now + 60000));
    e = get_entries(c, path, &r);
    assert_int_equal(cJSON_GetArraySize(e), n_all);
    resp_free(&r);
    snprintf(path, sizeof(path), "/api/audit?until=2001-01-01T00:00:00Z");
    e = get_entries(c, path, &r);
    assert_int_equal(cJSON_GetArraySize(e), 0);
    resp_free(&r);

    /* Empty values are the same as none. */
    e = get_entries(c, "/api/audit?actor=&action=&q=", &r);
    assert_int_equal(cJSON_GetArraySize(e), n_all);
    resp_free(&r);
    client_free(c);
}

static void
test_paging(void **state)
{
    struct srv *s = *state;
    struct client *c = admin(s);
    struct resp r;
    cJSON *e = get_entries(c, "/api/audit?limit=500", &r);
    int n_all = cJSON_GetArraySize(e);
    double *ids = xcalloc((size_t)n_all, sizeof(double));
    for (int i = 0; i < n_all; i++) {
        ids[i] = json_get_num(cJSON_GetArrayItem(e, i), "id", 0);
    }
    resp_free(&r);

    int seen = 0;
    char path[128] = "/api/audit?limit=2";
    for (;;) {
        e = get_entries(c, path, &r);
        int n = cJSON_GetArraySize(e);
        assert_true(n <= 2);
        for (int i = 0; i < n; i++) {
            assert_true(seen < n_all);
            assert_true(json_get_num(cJSON_GetArrayItem(e, i), "id", 0) == ids[seen]);
            seen++;
        }
        cJSON *next = cJSON_GetObjectItem(r.json, "next_before_id");
        if (n < 2) {
            assert_true(cJSON_IsNull(next));
        } else {
            assert_true(cJSON_IsNumber(next));
            assert_true(next->valuedouble == ids[seen - 1]);
        }
        if (cJSON_IsNull(next)) {
            resp_free(&r);
            break;
        }
        snprintf(path, sizeof(path), "/api/audit?limit=2&before_id=%.0f", next->valuedouble);
        resp_free(&r);
    }
    assert_int_equal(seen, n_all);
    free(ids);
    client_free(c);
}

static void
test_bad_parameters(void **state)
{
    struct srv *s = *state;
    struct client *c = admin(s);
    static const struct {
        const char *path, *param;
    } bad[] = {
        {"/api/audit?limit=0", "limit"},
        {"/api/audit?limit=501", "limit"},
        {"/api/audit?limit=ten", "limit"},
        {"/api/audit?limit=5x", "limit"},
        {"/api/audit?before_id=-3", "before_id"},
        {"/api/audit?before_id=abc", "before_id"},
        {"/api/audit?since=yesterday", "since"},
        {"/api/audit?until=2026-13-01T00:00:00Z", "until"},
        {"/api/audit?since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z", "since"},
        {"/api/audit?outcome=maybe", "outcome"},
        {"/api/audit?action=AUTH", "action"},
        {"/api/audit?action=auth%25", "action"},
        {"/api/audit/export?format=xml", "format"},
        {"/api/audit/export?format=csv&limit=1&outcome=no", "outcome"},
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        struct resp r = client_req(c, "GET", bad[i].path, NULL);
        if (r.status != 400) {
            fail_msg("%s: status %ld", bad[i].path, r.status);
        }
        cJSON *err = cJSON_GetObjectItem(r.json, "error");
        assert_string_equal(json_get_str(err, "code", ""), "invalid_parameter");
        const char *msg = json_get_str(err, "message", "");
        if (!strstr(msg, bad[i].param)) {
            fail_msg("%s: message '%s' does not name %s", bad[i].path, msg, bad[i].param);
        }
        resp_free(&r);
    }
    client_free(c);
}

/* Counts occurrences of needle in hay. */
static int
count_str(const char *hay, size_t len, const char *needle)
{
    int n = 0;
    size_t nl = strlen(needle);
    for (size_t i = 0; i + nl <= len; i++) {
        if (memcmp(hay + i, needle, nl) == 0) {
            n++;
        }
    }
    return n;
}

static void
test_export(void **state)
{
    struct srv *s = *state;
    struct client *c = admin(s);
    long exports = db_count_audit(s, "audit.export", "ok");

    struct resp r;
    cJSON *e = get_entries(c, "/api/audit?limit=500", &r);
    int n_all = cJSON_GetArraySize(e);
    resp_free(&r);

    /* CSV of everything: the header, every entry, and the export's own entry. */
    r = client_req(c, "GET", "/api/audit/export?format=csv", NULL);
    assert_int_equal(r.status, 200);
    char *ct = resp_header(&r, "Content-Type");
    assert_string_equal(ct, "text/csv; charset=utf-8");
    free(ct);
    char *cd = resp_header(&r, "Content-Disposition");
    assert_non_null(cd);
    assert_true(str_starts_with(cd, "attachment; filename=\"consulate-audit-"));
    assert_true(str_ends_with(cd, ".csv\""));
    free(cd);
    assert_true(str_starts_with(r.body, "id,time,actor,role,ip,action,target,outcome,detail,"
                                        "hash\r\n"));
    assert_int_equal(count_str(r.body, r.len, "\r\n"), 1 + n_all + 1);
    assert_non_null(strstr(r.body, ",audit.export,"));
    resp_free(&r);
    assert_int_equal(db_count_audit(s, "audit.export", "ok"), exports + 1);

    /* JSON Lines with a filter: one object a line, matching the list. */
    e = get_entries(c, "/api/audit?action=auth.&limit=500", &r);
    int n_auth = cJSON_GetArraySize(e);
    resp_free(&r);
    r = client_req(c, "GET", "/api/audit/export?format=jsonl&action=auth.", NULL);
    assert_int_equal(r.status, 200);
    ct = resp_header(&r, "Content-Type");
    assert_string_equal(ct, "application/x-ndjson");
    free(ct);
    cd = resp_header(&r, "Content-Disposition");
    assert_true(str_ends_with(cd, ".jsonl\""));
    free(cd);
    int lines = 0;
    char *p = r.body;
    while (p && *p) {
        char *nl = strchr(p, '\n');
        assert_non_null(nl);
        *nl = '\0';
        cJSON *j = cJSON_Parse(p);
        assert_non_null(j);
        assert_true(str_starts_with(json_get_str(j, "action", ""), "auth."));
        assert_int_equal(strlen(json_get_str(j, "prev_hash", "")), 64);
        cJSON_Delete(j);
        lines++;
        p = nl + 1;
    }
    /* the login of this test's client happened before the list, so the counts agree */
    assert_int_equal(lines, n_auth);
    resp_free(&r);
    assert_int_equal(db_count_audit(s, "audit.export", "ok"), exports + 2);

    /* The export's own entry names the format and the filters. */
    e = get_entries(c, "/api/audit?action=audit.export&limit=1", &r);
    cJSON *d = cJSON_GetObjectItem(cJSON_GetArrayItem(e, 0), "detail");
    assert_string_equal(json_get_str(d, "format", ""), "jsonl");
    assert_string_equal(json_get_str(cJSON_GetObjectItem(d, "filters"), "action", ""), "auth.");
    resp_free(&r);
    client_free(c);
}

static void
test_roles(void **state)
{
    struct srv *s = *state;
    struct client *v = srv_login(s, "vera", PW);
    assert_non_null(v);
    const char *paths[] = {"/api/audit", "/api/audit/export?format=jsonl", "/api/audit/verify"};
    for (size_t i = 0; i < ARRAY_LEN(paths); i++) {
        struct resp r = client_req(v, "GET", paths[i], NULL);
        assert_int_equal(r.status, 200);
        resp_free(&r);
    }
    client_free(v);
    struct client *anon = client_new(s);
    for (size_t i = 0; i < ARRAY_LEN(paths); i++) {
        struct resp r = client_req(anon, "GET", paths[i], NULL);
        assert_int_equal(r.status, 401);
        resp_free(&r);
    }
    client_free(anon);
}

static void
test_verify_and_tamper(void **state)
{
    (void)state;
    struct srv *s = srv_start(NULL);
    assert_non_null(s);
    assert_int_equal(srv_add_user(s, "tina", "operator", PW), 201);
    struct client *c = admin(s);
    struct resp r = client_req(c, "GET", "/api/audit/verify", NULL);
    assert_int_equal(r.status, 200);
    assert_true(json_get_bool(r.json, "ok", 0));
    int checked = (int)json_get_num(r.json, "checked", 0);
    assert_true(checked >= 3);
    assert_null(cJSON_GetObjectItem(r.json, "first_bad_id"));
    resp_free(&r);

    const char *verify[] = {"audit", "verify", "--config", s->config, NULL};
    char *out = NULL;
    assert_int_equal(run_cli(verify, NULL, &out), 0);
    assert_non_null(strstr(out, "audit chain intact: "));
    free(out);

    /* A second connection while the server runs (WAL), as the sqlite3 CLI would. */
    DB_EXEC(s, "DROP TRIGGER audit_log_no_update;"
                "UPDATE audit_log SET target = target || 'x' WHERE id = 2");
    r = client_req(c, "GET", "/api/audit/verify", NULL);
    assert_int_equal(r.status, 200);
    assert_false(json_get_bool(r.json, "ok", 1));
    assert_int_equal((int)json_get_num(r.json, "first_bad_id", 0), 2);
    assert_true((int)json_get_num(r.json, "checked", 0) >= checked);
    resp_free(&r);

    assert_int_equal(run_cli(verify, NULL, &out), 1);
    assert_non_null(strstr(out, "first bad entry: 2"));
    free(out);
    client_free(c);
    srv_stop(s);
}

static void
test_cli_export(void **state)
{
    struct srv *s = *state;
    char path[400];
    snprintf(path, sizeof(path), "%s/export.csv", s->dir);
    const char *csv[] = {"audit",    "export", "--format", "csv",     "--action", "user.c",
                         "--output", path,     "--config", s->config, NULL};
    char *out = NULL;
    assert_int_equal(run_cli(csv, NULL, &out), 0);
    free(out);
    size_t len = 0;
    char *body = file_read_all(path, 1 << 20, &len);
    assert_non_null(body);
    assert_true(str_starts_with(body, "id,time,actor,"));
    assert_int_equal(count_str(body, len, "\r\n"), 1 + 3);
    assert_int_equal(count_str(body, len, ",user.create,"), 3);
    free(body);

    const char *jsonl[] = {"audit",     "export",  "--format", "jsonl",
                           "--outcome", "denied",  "--since",  "2020-01-01T00:00:00Z",
                           "--config",  s->config, NULL};
    assert_int_equal(run_cli(jsonl, NULL, &out), 0);
    assert_int_equal(count_str(out, strlen(out), "\n"), 3);
    assert_int_equal(count_str(out, strlen(out), "\"outcome\":\"denied\""), 3);
    free(out);

    const char *bad[][8] = {
        {"audit", NULL},
        {"audit", "shred", NULL},
        {"audit", "export", NULL},
        {"audit", "export", "--format", "xml", NULL},
        {"audit", "export", "--format", "csv", "--since", "soon", NULL},
        {"audit", "export", "--format", "csv", "--bogus", "1", NULL},
        {"audit", "export", "--format", "csv", "--actor", NULL},
        {"audit", "verify", "extra", NULL},
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        const char *args[12];
        int n = 0;
        for (int k = 0; bad[i][k]; k++) {
            args[n++] = bad[i][k];
        }
        args[n++] = "--config";
        args[n++] = s->config;
        args[n] = NULL;
        int rc = run_cli(args, NULL, &out);
        if (rc != 2) {
            fail_msg("case %zu: exit %d: %s", i, rc, out);
        }
        free(out);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_and_filters),
        cmocka_unit_test(test_paging),
        cmocka_unit_test(test_bad_parameters),
        cmocka_unit_test(test_export),
        cmocka_unit_test(test_roles),
        cmocka_unit_test(test_cli_export),
        cmocka_unit_test(test_verify_and_tamper),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
