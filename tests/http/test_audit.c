/* Black-box tests of the audit log's read side against the real server: the list with its
 * filters and keyset paging, the CSV / JSON Lines export, the chain verification after
 * tampering with the database file, parameter errors, roles, and the `audit` CLI. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
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

    /* One writer: the API and the CLI export the same rows byte for byte. */
    const char *formats[] = {"csv", "jsonl"};
    for (size_t i = 0; i < ARRAY_LEN(formats); i++) {
        char q[100];
        snprintf(q, sizeof(q), "/api/audit/export?format=%s&action=user.", formats[i]);
        struct client *c = admin(s);
        struct resp r = client_req(c, "GET", q, NULL);
        assert_int_equal(r.status, 200);
        const char *cli[] = {"audit", "export",   "--format", formats[i], "--action",
                             "user.", "--config", s->config,  NULL};
        assert_int_equal(run_cli(cli, NULL, &out), 0);
        assert_int_equal(strlen(out), r.len);
        assert_memory_equal(out, r.body, r.len);
        free(out);
        resp_free(&r);
        client_free(c);
    }

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

/* ---- the seal (key, MACs, anchor) with the default configuration ---- */

/* One text value from the server's database (the caller frees it). */
static char *
db_text(struct srv *s, const char *sql)
{
    sqlite3 *db;
    char *v = NULL;
    assert_int_equal(sqlite3_open_v2(s->db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW) {
            v = xstrdup((const char *)sqlite3_column_text(st, 0));
        }
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    assert_non_null(v);
    return v;
}

static void
mode_is(const char *path, unsigned mode, long size)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fail_msg("%s: %s", path, strerror(errno));
    }
    assert_int_equal(st.st_mode & 0777, mode);
    if (size >= 0) {
        assert_int_equal(st.st_size, size);
    }
}

/* GET /api/audit/verify; returns the body (owned by *r) after checking the shape. */
static cJSON *
verify_api(struct client *c, struct resp *r)
{
    *r = client_req(c, "GET", "/api/audit/verify", NULL);
    assert_int_equal(r->status, 200);
    assert_non_null(r->json);
    assert_true(cJSON_IsObject(cJSON_GetObjectItem(r->json, "mac")));
    assert_true(cJSON_IsObject(cJSON_GetObjectItem(r->json, "anchor")));
    assert_true(cJSON_IsArray(cJSON_GetObjectItem(r->json, "problems")));
    assert_true(cJSON_IsArray(cJSON_GetObjectItem(r->json, "notes")));
    return r->json;
}

/* The code of problems[i] ("" when there is none). */
static const char *
problem_code(const cJSON *j, int i)
{
    return json_get_str(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "problems"), i), "code", "");
}

static void
test_seal_default_config(void **state)
{
    (void)state;
    struct srv *s = srv_start(NULL);
    assert_non_null(s);
    char key[400], anchor[400];
    snprintf(key, sizeof(key), "%s/audit.key", s->dir); /* beside the config file */
    snprintf(anchor, sizeof(anchor), "%s.audit-anchor", s->db);
    mode_is(key, 0600, 32);
    mode_is(anchor, 0600, -1);
    assert_int_equal(srv_add_user(s, "tina", "operator", PW), 201);
    struct client *c = admin(s);
    for (int i = 0; i < 3; i++) {
        struct client *x = client_new(s);
        client_login(x, "tina", "wrong-password-1");
        client_free(x);
    }
    struct resp r;
    cJSON *j = verify_api(c, &r);
    assert_true(json_get_bool(j, "ok", 0));
    assert_string_equal(json_get_str(j, "key", ""), "ok");
    cJSON *an = cJSON_GetObjectItem(j, "anchor");
    assert_string_equal(json_get_str(an, "status", ""), "ok");
    assert_string_equal(json_get_str(an, "entry", ""), "ok");
    int checked = (int)json_get_num(j, "checked", 0);
    assert_true(checked >= 7);
    cJSON *mac = cJSON_GetObjectItem(j, "mac");
    assert_int_equal((int)json_get_num(mac, "verified", 0), checked);
    assert_int_equal((int)json_get_num(mac, "sealed_from", 0), 1);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "problems")), 0);
    resp_free(&r);
    assert_int_equal(db_int(s, "SELECT count(*) FROM audit_log WHERE mac IS NULL"), 0);
    assert_int_equal(db_int(s, "SELECT count(*) FROM audit_log WHERE id = 1 AND action = "
                               "'audit.seal_start'"),
                     1);

    const char *verify[] = {"audit", "verify", "--config", s->config, NULL};
    char *out = NULL;
    assert_int_equal(run_cli(verify, NULL, &out), 0);
    assert_non_null(strstr(out, "audit chain intact: "));
    free(out);

    /* An older copy of the anchor put back while the server runs: the server saw the newer
     * one and says so. */
    size_t alen = 0;
    char *old_anchor = file_read_all(anchor, 4096, &alen);
    assert_non_null(old_anchor);
    struct client *x = client_new(s);
    client_login(x, "tina", "wrong-password-3");
    client_free(x);
    FILE *f = fopen(anchor, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(old_anchor, 1, alen, f), alen);
    fclose(f);
    free(old_anchor);
    j = verify_api(c, &r);
    assert_false(json_get_bool(j, "ok", 1));
    assert_string_equal(problem_code(j, 0), "anchor_rolled_back");
    assert_true(json_get_bool(cJSON_GetObjectItem(j, "anchor"), "rolled_back", 0));
    resp_free(&r);

    /* Someone with the database file deletes the newest entries and lowers the sequence to
     * match: the hash chain alone stays intact. */
    long long last = db_int(s, "SELECT max(id) FROM audit_log");
    char sql[300];
    snprintf(sql, sizeof(sql),
             "DROP TRIGGER audit_log_no_delete; DELETE FROM audit_log WHERE id > %lld; "
             "UPDATE sqlite_sequence SET seq = %lld WHERE name = 'audit_log'",
             last - 2, last - 2);
    DB_EXEC(s, sql);
    j = verify_api(c, &r);
    assert_false(json_get_bool(j, "ok", 1));
    assert_null(cJSON_GetObjectItem(j, "first_bad_id")); /* the chain itself is intact */
    assert_string_equal(problem_code(j, 0), "anchor_entry_missing");
    const char *msg =
        json_get_str(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "problems"), 0), "message", "");
    assert_non_null(strstr(msg, "deleted from the end"));
    assert_string_equal(json_get_str(cJSON_GetObjectItem(j, "anchor"), "entry", ""), "missing");
    resp_free(&r);
    assert_int_equal(run_cli(verify, NULL, &out), 1);
    assert_non_null(strstr(out, "audit log NOT intact"));
    assert_non_null(strstr(out, "(anchor_entry_missing)"));
    free(out);

    /* New entries in place of the deleted ones do not wash it out. */
    for (int i = 0; i < 3; i++) {
        x = client_new(s);
        client_login(x, "tina", "wrong-password-2");
        client_free(x);
    }
    j = verify_api(c, &r);
    assert_false(json_get_bool(j, "ok", 1));
    assert_string_equal(problem_code(j, 0), "anchor_entry_differs");
    resp_free(&r);
    client_free(c);
    srv_stop(s);
}

/* The anchor deleted while the server runs; then the key lost: the server refuses to start
 * until `consulate audit reseal` starts a new key on the record. */
static void
test_seal_lost_files(void **state)
{
    (void)state;
    struct srv *s = srv_start(NULL);
    assert_non_null(s);
    char key[400], anchor[400], dir[256], pw[64];
    snprintf(key, sizeof(key), "%s/audit.key", s->dir);
    snprintf(anchor, sizeof(anchor), "%s.audit-anchor", s->db);
    snprintf(dir, sizeof(dir), "%s", s->dir);
    snprintf(pw, sizeof(pw), "%s", s->admin_pw);
    struct client *c = admin(s);
    assert_int_equal(unlink(anchor), 0);
    assert_int_equal(srv_add_user(s, "tom", "viewer", PW), 201);
    struct resp r;
    cJSON *j = verify_api(c, &r);
    assert_false(json_get_bool(j, "ok", 1));
    assert_string_equal(problem_code(j, 0), "anchor_missing");
    assert_string_equal(json_get_str(cJSON_GetObjectItem(j, "anchor"), "status", ""), "missing");
    resp_free(&r);
    assert_int_not_equal(access(anchor, F_OK), 0); /* not recreated: the evidence stays */
    /* the key file deleted under the running server (which keeps the key it loaded) */
    assert_int_equal(unlink(key), 0);
    j = verify_api(c, &r);
    assert_string_equal(problem_code(j, 0), "key_missing");
    assert_string_equal(problem_code(j, 1), "anchor_missing");
    assert_string_equal(json_get_str(j, "key", ""), "missing");
    assert_int_equal((int)json_get_num(cJSON_GetObjectItem(j, "mac"), "invalid", -1), 0);
    resp_free(&r);
    client_free(c);
    srv_stop_keep(s, 1);

    assert_null(srv_start_in(dir, NULL)); /* exits 1 */
    char log[300];
    snprintf(log, sizeof(log), "%s/server.log", dir);
    char *text = file_read_all(log, 1 << 20, NULL);
    assert_non_null(text);
    assert_non_null(strstr(text, "audit.key is missing"));
    assert_non_null(strstr(text, "consulate audit reseal"));
    free(text);
    char config[300];
    snprintf(config, sizeof(config), "%s/config.json", dir);
    const char *verify[] = {"audit", "verify", "--config", config, NULL};
    char *out = NULL;
    assert_int_equal(run_cli(verify, NULL, &out), 1);
    assert_non_null(strstr(out, "(key_missing)"));
    assert_non_null(strstr(out, "(anchor_missing)"));
    free(out);
    assert_int_not_equal(access(key, F_OK), 0); /* verify creates nothing */

    const char *reseal[] = {"audit", "reseal", "--config", config, NULL};
    assert_int_equal(run_cli(reseal, NULL, &out), 0);
    assert_non_null(strstr(out, "resealed"));
    free(out);
    mode_is(key, 0600, 32);
    assert_int_equal(run_cli(verify, NULL, &out), 0);
    assert_non_null(strstr(out, "(unsealed_entries)"));
    free(out);
    s = srv_start_in(dir, NULL);
    assert_non_null(s);
    c = srv_login(s, "admin", pw);
    assert_non_null(c);
    j = verify_api(c, &r);
    assert_true(json_get_bool(j, "ok", 0));
    assert_string_equal(
        json_get_str(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "notes"), 0), "code", ""),
        "unsealed_entries");
    resp_free(&r);
    client_free(c);
    assert_int_equal(db_int(s, "SELECT count(*) FROM audit_log WHERE action = 'audit.reseal' "
                               "AND actor = 'cli' AND mac IS NOT NULL"),
                     1);
    srv_stop(s);
}

/* `consulate user add|passwd`: the change and its audit entry commit together or not at
 * all. The entry is made to fail by a trigger another connection adds. */
static void
test_cli_user_change_needs_its_record(void **state)
{
    (void)state;
    struct srv *s = srv_start(NULL);
    assert_non_null(s);
    assert_int_equal(srv_add_user(s, "vic", "viewer", PW), 201);
    char *pw_before = db_text(s, "SELECT password_hash FROM users WHERE name = 'vic'");
    DB_EXEC(s, "CREATE TRIGGER audit_refused BEFORE INSERT ON audit_log "
               "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END");
    long long entries = db_int(s, "SELECT count(*) FROM audit_log");

    const char *add[] = {"user",     "add",     "carl", "--role", "viewer", "--password-stdin",
                         "--config", s->config, NULL};
    char *out = NULL;
    assert_int_equal(run_cli(add, "correct-horse-42\n", &out), 1);
    assert_non_null(strstr(out, "cannot record the change in the audit log"));
    assert_non_null(strstr(out, "nothing was changed"));
    free(out);
    assert_int_equal(db_int(s, "SELECT count(*) FROM users WHERE name = 'carl'"), 0);

    const char *passwd[] = {"user",     "passwd",  "vic", "--password-stdin",
                            "--config", s->config, NULL};
    assert_int_equal(run_cli(passwd, "another-password-7\n", &out), 1);
    assert_non_null(strstr(out, "cannot record the change in the audit log"));
    free(out);
    char *pw_after = db_text(s, "SELECT password_hash FROM users WHERE name = 'vic'");
    assert_string_equal(pw_after, pw_before);
    free(pw_after);
    free(pw_before);
    assert_int_equal(db_int(s, "SELECT count(*) FROM audit_log"), entries);

    DB_EXEC(s, "DROP TRIGGER audit_refused");
    /* the old password still works (a login is itself recorded, so only once entries can be
     * written again) */
    struct client *v = srv_login(s, "vic", PW);
    assert_non_null(v);
    client_free(v);
    assert_int_equal(run_cli(add, "correct-horse-42\n", &out), 0);
    free(out);
    assert_int_equal(db_int(s, "SELECT count(*) FROM audit_log WHERE action = 'user.create' AND "
                               "target = 'carl' AND actor = 'cli' AND mac IS NOT NULL"),
                     1);
    srv_stop(s);
}

/* ---- an export that fails midway ---- */

static size_t
sink_count(char *ptr, size_t size, size_t n, void *ctx)
{
    (void)ptr;
    *(size_t *)ctx += size * n;
    return size * n;
}

/* Logs in as admin on a bare libcurl handle (cookie engine on) and GETs path: returns the
 * curl result, the status, the body bytes received and the seconds taken. */
static CURLcode
raw_get(struct srv *s, const char *path, long *status, size_t *got, double *secs)
{
    CURL *cu = curl_easy_init();
    char url[512], body[200];
    curl_easy_setopt(cu, CURLOPT_COOKIEFILE, "");
    snprintf(url, sizeof(url), "%s/api/session", s->base);
    snprintf(body, sizeof(body), "{\"username\":\"admin\",\"password\":\"%s\"}", s->admin_pw);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    size_t ignored = 0;
    curl_easy_setopt(cu, CURLOPT_URL, url);
    curl_easy_setopt(cu, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(cu, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(cu, CURLOPT_WRITEFUNCTION, sink_count);
    curl_easy_setopt(cu, CURLOPT_WRITEDATA, &ignored);
    assert_int_equal(curl_easy_perform(cu), CURLE_OK);
    curl_easy_getinfo(cu, CURLINFO_RESPONSE_CODE, status);
    assert_int_equal(*status, 200);
    snprintf(url, sizeof(url), "%s%s", s->base, path);
    curl_easy_setopt(cu, CURLOPT_URL, url);
    curl_easy_setopt(cu, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(cu, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(cu, CURLOPT_WRITEDATA, got);
    curl_easy_setopt(cu, CURLOPT_TIMEOUT, 20L);
    *got = 0;
    int64_t t0 = time_mono_ms();
    CURLcode rc = curl_easy_perform(cu);
    *secs = (double)(time_mono_ms() - t0) / 1000.0;
    curl_easy_getinfo(cu, CURLINFO_RESPONSE_CODE, status);
    curl_slist_free_all(h);
    curl_easy_cleanup(cu);
    return rc;
}

/* Overwrites the database page holding the oldest audit entries: a walk from the newest end
 * reads everything else first, then fails with SQLITE_CORRUPT. The server must be stopped. */
static void
corrupt_oldest_page(const char *path)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT pageno, (SELECT page_size FROM "
                                        "pragma_page_size) FROM dbstat WHERE name = "
                                        "'audit_log' AND pagetype = 'leaf' ORDER BY path "
                                        "LIMIT 1",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    long page = sqlite3_column_int64(st, 0), size = sqlite3_column_int64(st, 1);
    sqlite3_finalize(st);
    sqlite3_close(db);
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    char *junk = xmalloc((size_t)size);
    memset(junk, 0xee, (size_t)size);
    assert_int_equal(pwrite(fd, junk, (size_t)size, (off_t)((page - 1) * size)), size);
    free(junk);
    close(fd);
}

static void
test_export_fails_midway(void **state)
{
    (void)state;
    struct srv *s = srv_start(NULL);
    assert_non_null(s);
    char dir[256], pw[64];
    snprintf(dir, sizeof(dir), "%s", s->dir);
    snprintf(pw, sizeof(pw), "%s", s->admin_pw);
    /* About a megabyte of entries (their chain and MACs do not matter here). */
    DB_EXEC(s, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 4000) "
               "INSERT INTO audit_log (ts, actor, role, ip, action, target, detail, outcome, "
               "prev_hash, hash, mac) SELECT 1700000000000 + i, 'filler', 'admin', '10.0.0.1', "
               "'kv.put', 'kv/app/' || i, '{\"pad\":\"' || hex(randomblob(100)) || '\"}', 'ok', "
               "'', '', '' FROM n");
    srv_stop_keep(s, 1);
    char db[320];
    snprintf(db, sizeof(db), "%s/consulate.db", dir);
    corrupt_oldest_page(db);
    s = srv_start_in(dir, NULL);
    assert_non_null(s);
    snprintf(s->admin_pw, sizeof(s->admin_pw), "%s", pw);

    long status = 0;
    size_t got = 0;
    double secs = 0;
    CURLcode rc = raw_get(s, "/api/audit/export?format=csv", &status, &got, &secs);
    assert_int_equal(status, 200);
    assert_true(got > 64 * 1024); /* chunks went out before the walk failed */
    if (rc == CURLE_OK || rc == CURLE_OPERATION_TIMEDOUT || secs > 5) {
        fail_msg("the failed export ended with curl code %d after %.1f s", (int)rc, secs);
    }
    /* the connection was closed, not left for the next request: the server still answers */
    struct client *c = srv_login(s, "admin", pw);
    assert_non_null(c);
    client_free(c);

    /* The CLI's export of the same log fails too, and leaves no partial file. */
    char file[400];
    snprintf(file, sizeof(file), "%s/export.csv", dir);
    const char *args[] = {"audit", "export",   "--format", "csv", "--output",
                          file,    "--config", s->config,  NULL};
    char *out = NULL;
    assert_int_equal(run_cli(args, NULL, &out), 1);
    assert_non_null(strstr(out, "export failed: the audit log could not be read to the end"));
    free(out);
    assert_int_not_equal(access(file, F_OK), 0);
    srv_stop(s);
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
        cmocka_unit_test(test_seal_default_config),
        cmocka_unit_test(test_seal_lost_files),
        cmocka_unit_test(test_cli_user_change_needs_its_record),
        cmocka_unit_test(test_export_fails_midway),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
