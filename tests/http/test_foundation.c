/* Black-box tests of the foundation against the real server: sessions, CSRF, throttling,
 * roles, users, limits, static files, the CLI and migrations. */
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

static int
setup(void **state)
{
    struct srv *s = srv_start("\"login\":{\"max_failures\":3,\"window_s\":900},"
                              "\"metrics_token\":\"scrape-token-0123456789\"");
    if (!s) {
        return -1;
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

static void
test_healthz_and_headers(void **state)
{
    struct srv *s = *state;
    struct client *c = client_new(s);
    struct resp r = client_req(c, "GET", "/healthz", NULL);
    assert_int_equal(r.status, 200);
    assert_true(json_get_bool(r.json, "ok", 0));
    assert_non_null(json_get_str(r.json, "version", NULL));
    char *csp = resp_header(&r, "Content-Security-Policy");
    assert_non_null(csp);
    assert_non_null(strstr(csp, "default-src 'self'"));
    assert_non_null(strstr(csp, "frame-ancestors 'none'"));
    free(csp);
    resp_free(&r);

    r = client_req(c, "GET", "/api/session", NULL);
    assert_int_equal(r.status, 401);
    assert_string_equal(json_get_str(cJSON_GetObjectItem(r.json, "error"), "code", ""),
                        "unauthenticated");
    char *h = resp_header(&r, "Cache-Control");
    assert_non_null(h);
    assert_string_equal(h, "no-store");
    free(h);
    h = resp_header(&r, "X-Content-Type-Options");
    assert_string_equal(h, "nosniff");
    free(h);
    h = resp_header(&r, "Referrer-Policy");
    assert_string_equal(h, "no-referrer");
    free(h);
    resp_free(&r);
    client_free(c);
}

static void
test_login_ok_and_bad(void **state)
{
    struct srv *s = *state;
    DB_EXEC(s, "DELETE FROM login_failures");
    long before_fail = db_count_audit(s, "auth.login_failed", "denied");
    struct client *c = client_new(s);
    assert_int_equal(client_login(c, "admin", "wrong-password-1"), 401);
    assert_int_equal(client_login(c, "nobody-here", "wrong-password-1"), 401);
    assert_int_equal(db_count_audit(s, "auth.login_failed", "denied"), before_fail + 2);

    struct resp r = client_req(c, "POST", "/api/session", "{\"username\":\"admin\"}");
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "password"));
    resp_free(&r);
    r = client_req(c, "POST", "/api/session", "{not json");
    assert_int_equal(r.status, 400);
    resp_free(&r);

    long before_ok = db_count_audit(s, "auth.login", "ok");
    char body[256];
    snprintf(body, sizeof(body), "{\"username\":\"admin\",\"password\":\"%s\"}", s->admin_pw);
    r = client_req(c, "POST", "/api/session", body);
    assert_int_equal(r.status, 200);
    cJSON *user = cJSON_GetObjectItem(r.json, "user");
    assert_string_equal(json_get_str(user, "name", ""), "admin");
    assert_string_equal(json_get_str(user, "role", ""), "admin");
    assert_int_equal(strlen(json_get_str(r.json, "csrf_token", "")), 64);
    char *cookie = resp_header(&r, "Set-Cookie");
    assert_non_null(cookie);
    assert_non_null(strstr(cookie, "HttpOnly"));
    assert_non_null(strstr(cookie, "SameSite=Strict"));
    assert_non_null(strstr(cookie, "Path=/"));
    assert_null(strstr(cookie, "Secure")); /* plain HTTP here */
    free(cookie);
    resp_free(&r);
    assert_int_equal(db_count_audit(s, "auth.login", "ok"), before_ok + 1);

    r = client_req(c, "GET", "/api/session", NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_get_str(cJSON_GetObjectItem(r.json, "user"), "name", ""), "admin");
    resp_free(&r);
    client_free(c);
}

static void
test_throttling(void **state)
{
    struct srv *s = *state;
    DB_EXEC(s, "DELETE FROM login_failures");
    assert_int_equal(srv_add_user(s, "throttled", "viewer", PW), 201);
    struct client *c = client_new(s);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(client_login(c, "throttled", "not-the-password"), 401);
    }
    long before = db_count_audit(s, "auth.login_throttled", "denied");
    /* even the right password is refused now */
    char body[256];
    snprintf(body, sizeof(body), "{\"username\":\"throttled\",\"password\":\"%s\"}", PW);
    struct resp r = client_req(c, "POST", "/api/session", body);
    assert_int_equal(r.status, 429);
    assert_string_equal(json_get_str(cJSON_GetObjectItem(r.json, "error"), "code", ""),
                        "too_many_attempts");
    char *ra = resp_header(&r, "Retry-After");
    assert_non_null(ra);
    free(ra);
    resp_free(&r);
    assert_int_equal(db_count_audit(s, "auth.login_throttled", "denied"), before + 1);

    /* the window passes (moved back in the database): the user may log in again */
    DB_EXEC(s, "UPDATE login_failures SET at = at - 901000 WHERE username = 'throttled'");
    assert_int_equal(client_login(c, "throttled", PW), 200);
    client_free(c);
}

static void
test_throttling_by_ip(void **state)
{
    struct srv *s = *state;
    /* failures spread over several names from one address also lock the address */
    DB_EXEC(s, "DELETE FROM login_failures");
    struct client *c = client_new(s);
    assert_int_equal(client_login(c, "ghost-a", "xxxxxxxxxxxx"), 401);
    assert_int_equal(client_login(c, "ghost-b", "xxxxxxxxxxxx"), 401);
    assert_int_equal(client_login(c, "ghost-c", "xxxxxxxxxxxx"), 401);
    assert_int_equal(client_login(c, "admin", s->admin_pw), 429);
    DB_EXEC(s, "DELETE FROM login_failures");
    assert_int_equal(client_login(c, "admin", s->admin_pw), 200);
    client_free(c);
}

static void
test_csrf(void **state)
{
    struct srv *s = *state;
    struct client *c = srv_login(s, "admin", s->admin_pw);
    assert_non_null(c);
    long denied_before = db_count_audit(s, "user.create", "denied");
    const char *body = "{\"name\":\"csrf-victim\",\"role\":\"viewer\",\"password\":\"" PW "\"}";
    static const char *const json_ct[] = {"Content-Type: application/json", NULL};

    /* no token */
    struct resp r = client_req_raw(c, "POST", "/api/users", body, strlen(body), json_ct, 0);
    assert_int_equal(r.status, 403);
    assert_string_equal(json_get_str(cJSON_GetObjectItem(r.json, "error"), "code", ""), "csrf");
    resp_free(&r);
    /* wrong token */
    char good[128];
    snprintf(good, sizeof(good), "%s", client_csrf(c));
    client_set_csrf(c, "0000000000000000000000000000000000000000000000000000000000000000");
    r = client_req(c, "POST", "/api/users", body);
    assert_int_equal(r.status, 403);
    resp_free(&r);
    client_set_csrf(c, good);
    /* right token, foreign Origin */
    static const char *const evil[] = {"Content-Type: application/json",
                                       "Origin: http://evil.example", NULL};
    r = client_req_raw(c, "POST", "/api/users", body, strlen(body), evil, 1);
    assert_int_equal(r.status, 403);
    resp_free(&r);
    assert_int_equal(db_count_audit(s, "user.create", "denied"), denied_before + 3);
    /* nothing was created */
    r = client_req(c, "GET", "/api/users", NULL);
    assert_null(strstr(r.body, "csrf-victim"));
    resp_free(&r);
    /* right token, same origin */
    char origin[128];
    snprintf(origin, sizeof(origin), "Origin: %s", s->base);
    const char *const same[] = {"Content-Type: application/json", origin, NULL};
    r = client_req_raw(c, "POST", "/api/users", body, strlen(body), same, 1);
    assert_int_equal(r.status, 201);
    resp_free(&r);
    client_free(c);
}

static void
test_roles_denied_and_audited(void **state)
{
    struct srv *s = *state;
    assert_int_equal(srv_add_user(s, "vera", "viewer", PW), 201);
    assert_int_equal(srv_add_user(s, "otto", "operator", PW), 201);
    assert_int_equal(srv_add_user(s, "anna", "approver", PW), 201);
    const char *names[] = {"vera", "otto", "anna"};
    for (int i = 0; i < 3; i++) {
        struct client *c = srv_login(s, names[i], PW);
        assert_non_null(c);
        long before = db_count_audit(s, "user.create", "denied");
        struct resp r = client_req(c, "POST", "/api/users",
                                   "{\"name\":\"x1\",\"role\":\"admin\",\"password\":\"" PW "\"}");
        assert_int_equal(r.status, 403);
        assert_string_equal(json_get_str(cJSON_GetObjectItem(r.json, "error"), "code", ""),
                            "forbidden");
        resp_free(&r);
        assert_int_equal(db_count_audit(s, "user.create", "denied"), before + 1);
        before = db_count_audit(s, "user.delete", "denied");
        r = client_req(c, "DELETE", "/api/users/admin", NULL);
        assert_int_equal(r.status, 403);
        resp_free(&r);
        assert_int_equal(db_count_audit(s, "user.delete", "denied"), before + 1);
        r = client_req(c, "GET", "/api/users", NULL);
        assert_int_equal(r.status, 403);
        resp_free(&r);
        /* everyone may read the audit log and their session */
        r = client_req(c, "GET", "/api/session", NULL);
        assert_int_equal(r.status, 200);
        assert_string_equal(json_get_str(cJSON_GetObjectItem(r.json, "user"), "role", ""),
                            i == 0 ? "viewer" : i == 1 ? "operator" : "approver");
        resp_free(&r);
        client_free(c);
    }
    /* the denied create left no user behind */
    struct client *a = srv_login(s, "admin", s->admin_pw);
    struct resp r = client_req(a, "GET", "/api/users", NULL);
    assert_null(strstr(r.body, "\"x1\""));
    resp_free(&r);
    client_free(a);
}

static void
test_sessions_and_expiry(void **state)
{
    struct srv *s = *state;
    assert_int_equal(srv_add_user(s, "sam", "viewer", PW), 201);
    struct client *b1 = srv_login(s, "sam", PW);
    struct client *b2 = srv_login(s, "sam", PW);
    assert_non_null(b1);
    assert_non_null(b2);
    assert_string_not_equal(client_csrf(b1), client_csrf(b2));
    struct resp r = client_req(b1, "GET", "/api/session", NULL);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    /* logging out one browser leaves the other */
    r = client_req(b1, "DELETE", "/api/session", NULL);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    r = client_req(b1, "GET", "/api/session", NULL);
    assert_int_equal(r.status, 401);
    resp_free(&r);
    r = client_req(b2, "GET", "/api/session", NULL);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    /* idle for 31 minutes */
    DB_EXEC(s, "UPDATE sessions SET last_seen_at = last_seen_at - 1860000 WHERE user_id = "
                "(SELECT id FROM users WHERE name = 'sam')");
    r = client_req(b2, "GET", "/api/session", NULL);
    assert_int_equal(r.status, 401);
    resp_free(&r);
    /* absolute limit: active but created 13 hours ago */
    struct client *b3 = srv_login(s, "sam", PW);
    DB_EXEC(s, "UPDATE sessions SET created_at = created_at - 46800000 WHERE user_id = "
                "(SELECT id FROM users WHERE name = 'sam')");
    r = client_req(b3, "GET", "/api/session", NULL);
    assert_int_equal(r.status, 401);
    resp_free(&r);
    client_free(b1);
    client_free(b2);
    client_free(b3);
}

static void
test_users_admin(void **state)
{
    struct srv *s = *state;
    DB_EXEC(s, "DELETE FROM login_failures");
    struct client *a = srv_login(s, "admin", s->admin_pw);
    /* bad inputs, each naming the field */
    static const struct {
        const char *body, *field;
    } bad[] = {
        {"{\"name\":\"bad name\",\"role\":\"viewer\",\"password\":\"" PW "\"}", "'name'"},
        {"{\"name\":\"ok1\",\"role\":\"root\",\"password\":\"" PW "\"}", "'role'"},
        {"{\"name\":\"ok1\",\"role\":\"viewer\",\"password\":\"short\"}", "'password'"},
        {"{\"name\":\"ok1\",\"role\":\"viewer\",\"password\":\"" PW "\",\"x\":1}", "'x'"},
        {"[1,2]", "JSON object"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct resp r = client_req(a, "POST", "/api/users", bad[i].body);
        assert_int_equal(r.status, 400);
        if (!strstr(r.body, bad[i].field)) {
            fail_msg("%s: %s does not name %s", bad[i].body, r.body, bad[i].field);
        }
        resp_free(&r);
    }
    struct resp r = client_req(a, "POST", "/api/users",
                               "{\"name\":\"dora\",\"role\":\"operator\",\"password\":\"" PW "\"}");
    assert_int_equal(r.status, 201);
    resp_free(&r);
    r = client_req(a, "POST", "/api/users",
                   "{\"name\":\"dora\",\"role\":\"viewer\",\"password\":\"" PW "\"}");
    assert_int_equal(r.status, 409);
    resp_free(&r);
    /* the only admin can be neither demoted, disabled nor deleted */
    r = client_req(a, "PATCH", "/api/users/admin", "{\"role\":\"viewer\"}");
    assert_int_equal(r.status, 409);
    assert_non_null(strstr(r.body, "last_admin"));
    resp_free(&r);
    r = client_req(a, "PATCH", "/api/users/admin", "{\"disabled\":true}");
    assert_int_equal(r.status, 409);
    resp_free(&r);
    r = client_req(a, "DELETE", "/api/users/admin", NULL);
    assert_int_equal(r.status, 409);
    resp_free(&r);
    r = client_req(a, "PATCH", "/api/users/nobody", "{\"role\":\"viewer\"}");
    assert_int_equal(r.status, 404);
    resp_free(&r);
    /* a password change ends the user's sessions */
    struct client *d = srv_login(s, "dora", PW);
    assert_non_null(d);
    r = client_req(a, "PATCH", "/api/users/dora", "{\"password\":\"another-pass-77\"}");
    assert_int_equal(r.status, 200);
    resp_free(&r);
    r = client_req(d, "GET", "/api/session", NULL);
    assert_int_equal(r.status, 401);
    resp_free(&r);
    assert_int_equal(client_login(d, "dora", PW), 401);
    assert_int_equal(client_login(d, "dora", "another-pass-77"), 200);
    /* disabled users cannot log in */
    r = client_req(a, "PATCH", "/api/users/dora", "{\"disabled\":true}");
    assert_int_equal(r.status, 200);
    assert_true(json_get_bool(cJSON_GetObjectItem(r.json, "user"), "disabled", 0));
    resp_free(&r);
    assert_int_equal(client_login(d, "dora", "another-pass-77"), 401);
    /* promote, then the first admin may step down */
    r = client_req(a, "PATCH", "/api/users/dora", "{\"disabled\":false,\"role\":\"admin\"}");
    assert_int_equal(r.status, 200);
    resp_free(&r);
    r = client_req(a, "DELETE", "/api/users/dora", NULL);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    assert_true(db_count_audit(s, "user.update", "ok") >= 3);
    assert_true(db_count_audit(s, "user.update", "error") >= 2); /* the 409s are recorded */
    client_free(d);
    client_free(a);
}

/* Writes without a session are audited up to a per-address budget (60 a minute), then
 * refused with 429 and one auth.anonymous_throttled entry instead of one entry each. */
static void
test_anonymous_write_budget(void **state)
{
    struct srv *s = *state;
    struct client *c = client_new(s);
    long denied0 = db_count_audit(s, "user.delete", "denied");
    long throttled0 = db_count_audit(s, "auth.anonymous_throttled", "denied");
    int n401 = 0, n429 = 0;
    for (int i = 0; i < 70; i++) {
        struct resp r = client_req(c, "DELETE", "/api/users/someone", NULL);
        if (r.status == 401) {
            n401++;
        } else if (r.status == 429) {
            n429++;
        }
        resp_free(&r);
    }
    /* earlier tests sent a few anonymous writes from this address too */
    assert_true(n401 >= 55 && n401 <= 60);
    assert_int_equal(n401 + n429, 70);
    assert_int_equal(db_count_audit(s, "user.delete", "denied"), denied0 + n401);
    assert_int_equal(db_count_audit(s, "auth.anonymous_throttled", "denied"), throttled0 + 1);
    /* logged-in users are not affected */
    struct client *a = srv_login(s, "admin", s->admin_pw);
    assert_non_null(a);
    struct resp r = client_req(a, "DELETE", "/api/users/someone", NULL);
    assert_int_equal(r.status, 404);
    resp_free(&r);
    client_free(a);
    client_free(c);
}

static void
test_limits_and_routes(void **state)
{
    struct srv *s = *state;
    struct client *a = srv_login(s, "admin", s->admin_pw);
    size_t big = 1024 * 1024 + 10;
    char *body = xmalloc(big);
    memset(body, ' ', big);
    body[0] = '{';
    body[big - 1] = '}';
    static const char *const json_ct[] = {"Content-Type: application/json", NULL};
    struct resp r = client_req_raw(a, "POST", "/api/users", body, big, json_ct, 1);
    assert_int_equal(r.status, 413);
    resp_free(&r);
    free(body);
    r = client_req(a, "GET", "/api/no-such-thing", NULL);
    assert_int_equal(r.status, 404);
    assert_non_null(r.json);
    resp_free(&r);
    r = client_req(a, "PUT", "/api/users", "{}");
    assert_int_equal(r.status, 405);
    resp_free(&r);
    client_free(a);
}

static void
test_metrics_access(void **state)
{
    struct srv *s = *state;
    struct client *anon = client_new(s);
    struct resp r = client_req(anon, "GET", "/metrics", NULL);
    assert_int_equal(r.status, 401);
    resp_free(&r);
    static const char *const wrong[] = {"Authorization: Bearer not-the-token", NULL};
    r = client_req_raw(anon, "GET", "/metrics", NULL, 0, wrong, 0);
    assert_int_equal(r.status, 401);
    resp_free(&r);
    static const char *const right[] = {"Authorization: Bearer scrape-token-0123456789", NULL};
    r = client_req_raw(anon, "GET", "/metrics", NULL, 0, right, 0);
    assert_int_equal(r.status, 200);
    char *ct = resp_header(&r, "Content-Type");
    assert_non_null(strstr(ct, "text/plain"));
    free(ct);
    assert_non_null(strstr(r.body, "consulate_http_requests_total{route=\"/api/session\""));
    assert_non_null(strstr(r.body, "consulate_audit_entries "));
    assert_non_null(strstr(r.body, "consulate_consul_requests_total "));
    assert_non_null(strstr(r.body, "consulate_sse_clients "));
    resp_free(&r);
    client_free(anon);
    /* a viewer session is not enough; an admin session is */
    assert_int_equal(srv_add_user(s, "metrics-viewer", "viewer", PW), 201);
    struct client *v = srv_login(s, "metrics-viewer", PW);
    r = client_req(v, "GET", "/metrics", NULL);
    assert_int_equal(r.status, 403);
    resp_free(&r);
    client_free(v);
    struct client *a = srv_login(s, "admin", s->admin_pw);
    r = client_req(a, "GET", "/metrics", NULL);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    client_free(a);
}

static void
test_static_files(void **state)
{
    struct srv *s = *state;
    struct client *c = client_new(s);
    struct resp r = client_req(c, "GET", "/", NULL);
    assert_int_equal(r.status, 200);
    char *ct = resp_header(&r, "Content-Type");
    assert_non_null(strstr(ct, "text/html"));
    free(ct);
    resp_free(&r);
    static const char *const attempts[] = {
        "/../etc/passwd",       "/%2e%2e/%2e%2e/etc/passwd", "/..%2fetc%2fpasswd",
        "/js/../../README.md",  "/%2e%2e%2fMakefile",       "/js/",
        "/i18n",                "/..",                      "/web/index.html",
        "/%00index.html",
    };
    for (size_t i = 0; i < sizeof(attempts) / sizeof(attempts[0]); i++) {
        r = client_req(c, "GET", attempts[i], NULL);
        if (r.status != 404) {
            fail_msg("%s gave %ld", attempts[i], r.status);
        }
        assert_null(strstr(r.body, "root:"));
        resp_free(&r);
    }
    client_free(c);
}

static void
test_cli_users(void **state)
{
    struct srv *s = *state;
    const char *add[] = {"user", "add", "cli-made", "--role", "operator", "--password-stdin",
                         "--db", s->db, NULL};
    char *out = NULL;
    assert_int_equal(run_cli(add, PW "\n", &out), 0);
    free(out);
    assert_int_equal(run_cli(add, PW "\n", &out), 1); /* exists */
    free(out);
    const char *bad_role[] = {"user", "add", "x2", "--role", "god", "--password-stdin", "--db",
                              s->db, NULL};
    assert_int_equal(run_cli(bad_role, PW "\n", &out), 2);
    free(out);
    struct client *c = srv_login(s, "cli-made", PW);
    assert_non_null(c);
    client_free(c);
    const char *passwd[] = {"user", "passwd", "cli-made", "--password-stdin", "--db", s->db,
                            NULL};
    assert_int_equal(run_cli(passwd, "short\n", &out), 1);
    free(out);
    assert_int_equal(run_cli(passwd, "rescued-pass-1\n", &out), 0);
    free(out);
    c = srv_login(s, "cli-made", "rescued-pass-1");
    assert_non_null(c);
    client_free(c);
    const char *list[] = {"user", "list", "--db", s->db, NULL};
    assert_int_equal(run_cli(list, NULL, &out), 0);
    assert_non_null(strstr(out, "cli-made"));
    assert_non_null(strstr(out, "operator"));
    free(out);
}

static void
test_migrations_and_config(void **state)
{
    (void)state;
    char dir[] = "/tmp/consulate-mig-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char db[320], cfg[320];
    snprintf(db, sizeof(db), "%s/sub/new.db", dir);
    const char *mig[] = {"migrate", "--db", db, NULL};
    char *out = NULL;
    assert_int_equal(run_cli(mig, NULL, &out), 0);
    assert_non_null(strstr(out, "schema version"));
    char first[512];
    snprintf(first, sizeof(first), "%s", out);
    free(out);
    assert_int_equal(run_cli(mig, NULL, &out), 0); /* re-running is a no-op */
    assert_string_equal(out, first);
    free(out);
    /* a database from the future is refused */
    sqlite3 *h;
    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    sqlite3_exec(h, "PRAGMA user_version = 999", NULL, NULL, NULL);
    sqlite3_close(h);
    assert_int_equal(run_cli(mig, NULL, &out), 1);
    assert_non_null(strstr(out, "newer"));
    free(out);

    /* a bad configuration stops start-up with exit 2, naming the key */
    snprintf(cfg, sizeof(cfg), "%s/bad.json", dir);
    static const struct {
        const char *doc, *key;
    } bad[] = {
        {"{\"sesion\":{}}", "sesion"},
        {"{\"session\":{\"idle_timeout_s\":\"x\"}}", "session.idle_timeout_s"},
        {"{\"consul\":{\"addresses\":[\"nope\"]}}", "consul.addresses"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        FILE *f = fopen(cfg, "w");
        fputs(bad[i].doc, f);
        fclose(f);
        const char *serve[] = {"serve", "--config", cfg, "--db", db, NULL};
        assert_int_equal(run_cli(serve, NULL, &out), 2);
        if (!strstr(out, bad[i].key)) {
            fail_msg("output %s does not name %s", out, bad[i].key);
        }
        free(out);
    }
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_healthz_and_headers),
        cmocka_unit_test(test_login_ok_and_bad),
        cmocka_unit_test(test_throttling),
        cmocka_unit_test(test_throttling_by_ip),
        cmocka_unit_test(test_csrf),
        cmocka_unit_test(test_roles_denied_and_audited),
        cmocka_unit_test(test_sessions_and_expiry),
        cmocka_unit_test(test_users_admin),
        cmocka_unit_test(test_limits_and_routes),
        cmocka_unit_test(test_anonymous_write_budget),
        cmocka_unit_test(test_metrics_access),
        cmocka_unit_test(test_static_files),
        cmocka_unit_test(test_cli_users),
        cmocka_unit_test(test_migrations_and_config),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
