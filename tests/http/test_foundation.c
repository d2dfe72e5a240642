/* Black-box tests of the foundation against the real server: sessions, CSRF, throttling,
 * roles, users, limits, static files, the CLI and migrations. */
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
#include <sqlite3.h>

#include "harness.h"
#include "util.h"

#define DB_EXEC(s, sql) assert_int_equal(db_exec((s), (sql)), 0)
#define ASSERT_ERROR(r, st, code, what) assert_true(resp_is_error(&(r), (st), (code), (what)))
/* The server keeps sessions in memory for up to a second: a change made behind its back (in
 * the database, like another process would) is seen once that has passed. */
#define SESSION_CACHE_WAIT_US 1100000
#define CREATE_ERRORS "action = 'user.create' AND outcome = 'error'"

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

/* Rows in the server's database matching a WHERE clause on a table. */
static long long
db_count(struct srv *s, const char *table, const char *where)
{
    char sql[512];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s WHERE %s", table, where);
    return db_int(s, sql);
}

/* The same, for a row the dispatcher writes just after a refused reply (a handler's 4xx to
 * a logged-in user): waits up to 2 s for the count to reach want, and returns it. */
static long long
db_count_soon(struct srv *s, const char *table, const char *where, long long want)
{
    long long n = db_count(s, table, where);
    for (int i = 0; i < 200 && n != want; i++) {
        usleep(10000);
        n = db_count(s, table, where);
    }
    return n;
}

static void
test_login_ok_and_bad(void **state)
{
    struct srv *s = *state;
    DB_EXEC(s, "DELETE FROM login_failures");
    long before_fail = db_count_audit(s, "auth.login_failed", "denied");
    long long sessions0 = db_count(s, "sessions", "1");
    struct client *c = client_new(s);
    /* a wrong password and an unknown name get the same answer, no cookie, no session */
    static const char *const who[] = {"admin", "nobody-here"};
    for (int i = 0; i < 2; i++) {
        char body[128];
        snprintf(body, sizeof(body), "{\"username\":\"%s\",\"password\":\"wrong-password-1\"}",
                 who[i]);
        struct resp r = client_req(c, "POST", "/api/session", body);
        ASSERT_ERROR(r, 401, "invalid_credentials", "wrong user name or password");
        char *cookie = resp_header(&r, "Set-Cookie");
        assert_null(cookie);
        resp_free(&r);
    }
    assert_int_equal(db_count_audit(s, "auth.login_failed", "denied"), before_fail + 2);
    assert_int_equal(db_count(s, "audit_log", "action = 'auth.login_failed' AND target = "
                                              "'admin' AND detail LIKE '%wrong password%'"),
                     1);
    assert_int_equal(db_count(s, "audit_log", "action = 'auth.login_failed' AND target = "
                                              "'nobody-here' AND detail LIKE '%unknown user%'"),
                     1);
    assert_int_equal(db_count(s, "login_failures", "1"), 2);

    /* malformed requests: 400 naming the problem, recorded, no failure counted */
    long long refused0 = db_count(s, "audit_log", "action = 'auth.login' AND outcome = 'error'");
    static const struct {
        const char *body, *code, *what;
    } bad[] = {
        {"{\"username\":\"admin\"}", "invalid_field", "'password'"},
        {"{\"username\":\"\",\"password\":\"wrong-password-1\"}", "invalid_field", "'username'"},
        {"{\"username\":7,\"password\":\"wrong-password-1\"}", "invalid_field", "'username'"},
        {"{not json", "invalid_json", "not valid JSON"},
        {"[\"admin\"]", "invalid_json", "JSON object"},
        {"{\"username\":\"admin\",\"password\":\"wrong-password-1\",\"role\":\"admin\"}",
         "invalid_field", "unknown field 'role'"},
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        struct resp r = client_req(c, "POST", "/api/session", bad[i].body);
        ASSERT_ERROR(r, 400, bad[i].code, bad[i].what);
        resp_free(&r);
    }
    assert_int_equal(db_count(s, "audit_log", "action = 'auth.login' AND outcome = 'error'"),
                     refused0 + (long long)ARRAY_LEN(bad));
    assert_int_equal(db_count(s, "audit_log", "action = 'auth.login' AND outcome = 'error' "
                                              "AND detail LIKE '%field ''password''%'"),
                     1);
    assert_int_equal(db_count(s, "login_failures", "1"), 2);
    assert_int_equal(db_count(s, "sessions", "1"), sessions0);
    struct resp r;

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
    ASSERT_ERROR(r, 401, "unauthenticated", NULL);
    resp_free(&r);
    assert_int_equal(db_count(s, "sessions s JOIN users u ON u.id = s.user_id", "u.name = 'sam'"),
                     1);
    r = client_req(b2, "GET", "/api/session", NULL);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    /* idle for 31 minutes */
    DB_EXEC(s, "UPDATE sessions SET last_seen_at = last_seen_at - 1860000 WHERE user_id = "
                "(SELECT id FROM users WHERE name = 'sam')");
    usleep(SESSION_CACHE_WAIT_US);
    r = client_req(b2, "GET", "/api/session", NULL);
    ASSERT_ERROR(r, 401, "unauthenticated", NULL);
    resp_free(&r);
    /* absolute limit: active but created 13 hours ago */
    struct client *b3 = srv_login(s, "sam", PW);
    DB_EXEC(s, "UPDATE sessions SET created_at = created_at - 46800000 WHERE user_id = "
                "(SELECT id FROM users WHERE name = 'sam')");
    usleep(SESSION_CACHE_WAIT_US);
    r = client_req(b3, "GET", "/api/session", NULL);
    ASSERT_ERROR(r, 401, "unauthenticated", NULL);
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
    long long users0 = db_count(s, "users", "1");
    long long errors0 = db_count(s, "audit_log", CREATE_ERRORS);
    /* bad inputs, each naming the field, recorded, and nothing created */
    static const struct {
        const char *body, *code, *field;
    } bad[] = {
        {"{\"name\":\"bad name\",\"role\":\"viewer\",\"password\":\"" PW "\"}", "invalid_field",
         "'name'"},
        {"{\"name\":\"ok1\",\"role\":\"root\",\"password\":\"" PW "\"}", "invalid_field", "'role'"},
        {"{\"name\":\"ok1\",\"role\":\"viewer\",\"password\":\"short\"}", "invalid_field",
         "'password'"},
        {"{\"name\":\"ok1\",\"role\":\"viewer\",\"password\":\"" PW "\",\"x\":1}", "invalid_field",
         "'x'"},
        {"[1,2]", "invalid_json", "JSON object"},
        {"{\"name\":\"ok1\",", "invalid_json", "not valid JSON"},
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        struct resp r = client_req(a, "POST", "/api/users", bad[i].body);
        ASSERT_ERROR(r, 400, bad[i].code, bad[i].field);
        resp_free(&r);
    }
    assert_int_equal(db_count(s, "users", "1"), users0);
    long long want = errors0 + (long long)ARRAY_LEN(bad);
    assert_int_equal(db_count_soon(s, "audit_log", CREATE_ERRORS, want), want);
    struct resp r = client_req(a, "POST", "/api/users",
                               "{\"name\":\"dora\",\"role\":\"operator\",\"password\":\"" PW "\"}");
    assert_int_equal(r.status, 201);
    resp_free(&r);
    r = client_req(a, "POST", "/api/users",
                   "{\"name\":\"dora\",\"role\":\"viewer\",\"password\":\"" PW "\"}");
    ASSERT_ERROR(r, 409, "user_exists", "'dora'");
    resp_free(&r);
    /* the same name in another case is the same name: it would read as dora everywhere */
    r = client_req(a, "POST", "/api/users",
                   "{\"name\":\"Dora\",\"role\":\"admin\",\"password\":\"" PW "\"}");
    ASSERT_ERROR(r, 409, "user_exists", "compared without case");
    resp_free(&r);
    assert_int_equal(db_count(s, "users", "name = 'dora' AND role = 'operator'"), 1);
    assert_int_equal(db_count(s, "users", "1"), users0 + 1);
    want += 2; /* both refusals recorded */
    assert_int_equal(db_count_soon(s, "audit_log", CREATE_ERRORS, want), want);
    /* the only admin can be neither demoted, disabled nor deleted */
    r = client_req(a, "PATCH", "/api/users/admin", "{\"role\":\"viewer\"}");
    ASSERT_ERROR(r, 409, "last_admin", "'admin' is the last enabled admin");
    resp_free(&r);
    r = client_req(a, "PATCH", "/api/users/admin", "{\"disabled\":true}");
    ASSERT_ERROR(r, 409, "last_admin", "'admin' is the last enabled admin");
    resp_free(&r);
    r = client_req(a, "DELETE", "/api/users/admin", NULL);
    ASSERT_ERROR(r, 409, "last_admin", "'admin' is the last enabled admin");
    resp_free(&r);
    assert_int_equal(db_count(s, "users", "name = 'admin' AND role = 'admin' AND disabled = 0"), 1);
    r = client_req(a, "PATCH", "/api/users/nobody", "{\"role\":\"viewer\"}");
    ASSERT_ERROR(r, 404, "not_found", "'nobody'");
    resp_free(&r);
    assert_int_equal(db_count(s, "users", "name = 'nobody'"), 0);
    /* a password change ends the user's open sessions */
    struct client *d = srv_login(s, "dora", PW);
    assert_non_null(d);
    r = client_req(a, "PATCH", "/api/users/dora", "{\"password\":\"another-pass-77\"}");
    assert_int_equal(r.status, 200);
    resp_free(&r);
    r = client_req(d, "GET", "/api/session", NULL);
    ASSERT_ERROR(r, 401, "unauthenticated", NULL);
    resp_free(&r);
    assert_int_equal(client_login(d, "dora", PW), 401);
    assert_int_equal(client_login(d, "dora", "another-pass-77"), 200);
    r = client_req(d, "GET", "/api/session", NULL);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    /* disabling ends the session already open (not only new logins) */
    r = client_req(a, "PATCH", "/api/users/dora", "{\"disabled\":true}");
    assert_int_equal(r.status, 200);
    assert_true(json_get_bool(cJSON_GetObjectItem(r.json, "user"), "disabled", 0));
    resp_free(&r);
    r = client_req(d, "GET", "/api/session", NULL);
    ASSERT_ERROR(r, 401, "unauthenticated", NULL);
    resp_free(&r);
    assert_int_equal(client_login(d, "dora", "another-pass-77"), 401);
    /* promote: the open session of the new admin may manage users ... */
    r = client_req(a, "PATCH", "/api/users/dora", "{\"disabled\":false,\"role\":\"admin\"}");
    assert_int_equal(r.status, 200);
    resp_free(&r);
    assert_int_equal(client_login(d, "dora", "another-pass-77"), 200);
    r = client_req(d, "GET", "/api/users", NULL);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    /* ... until demoted: the same open session is refused at its next request */
    r = client_req(a, "PATCH", "/api/users/dora", "{\"role\":\"operator\"}");
    assert_int_equal(r.status, 200);
    resp_free(&r);
    r = client_req(d, "GET", "/api/users", NULL);
    ASSERT_ERROR(r, 403, "forbidden", "admin");
    resp_free(&r);
    r = client_req(d, "GET", "/api/session", NULL);
    assert_string_equal(json_get_str(cJSON_GetObjectItem(r.json, "user"), "role", ""), "operator");
    resp_free(&r);
    /* deleting ends it too */
    r = client_req(a, "DELETE", "/api/users/dora", NULL);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    r = client_req(d, "GET", "/api/session", NULL);
    ASSERT_ERROR(r, 401, "unauthenticated", NULL);
    resp_free(&r);
    assert_true(db_count_audit(s, "user.update", "ok") >= 4);
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
    client_set_source(c, "127.0.0.9"); /* an address no other test sends from */
    long denied0 = db_count_audit(s, "user.delete", "denied");
    long throttled0 = db_count_audit(s, "auth.anonymous_throttled", "denied");
    int n401 = 0, n429 = 0;
    for (int i = 0; i < 70; i++) {
        struct resp r = client_req(c, "DELETE", "/api/users/someone", NULL);
        if (i < 60) {
            ASSERT_ERROR(r, 401, "unauthenticated", NULL);
            n401++;
        } else {
            ASSERT_ERROR(r, 429, "too_many_requests", "without a session");
            n429++;
        }
        resp_free(&r);
    }
    assert_int_equal(db_count(s, "users", "name = 'someone'"), 0);
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
    long long users0 = db_count(s, "users", "1");
    struct resp r = client_req_raw(a, "POST", "/api/users", body, big, json_ct, 1);
    ASSERT_ERROR(r, 413, "body_too_large", "1048576 bytes");
    resp_free(&r);
    free(body);
    assert_int_equal(db_count(s, "users", "1"), users0);
    assert_int_equal(db_count_soon(s, "audit_log", CREATE_ERRORS " AND detail LIKE "
                                                   "'%\"status\":413%'", 1),
                     1);
    r = client_req(a, "GET", "/api/no-such-thing", NULL);
    ASSERT_ERROR(r, 404, "not_found", "/api/no-such-thing");
    resp_free(&r);
    long long rows0 = db_count(s, "audit_log", "1");
    r = client_req(a, "PUT", "/api/users", "{\"name\":\"put-user\"}");
    ASSERT_ERROR(r, 405, "method_not_allowed", "PUT");
    assert_non_null(strstr(resp_error_message(&r), "/api/users"));
    resp_free(&r);
    r = client_req(a, "DELETE", "/api/no-such-thing", NULL);
    ASSERT_ERROR(r, 404, "not_found", "/api/no-such-thing");
    resp_free(&r);
    /* neither an unknown route nor a method a route lacks does anything */
    assert_int_equal(db_count(s, "users", "1"), users0);
    assert_int_equal(db_count(s, "audit_log", "1"), rows0);
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
    const char *passwd[] = {"user", "passwd", "cli-made", "--password-stdin", "--db", s->db,
                            NULL};
    assert_int_equal(run_cli(passwd, "short\n", &out), 1);
    free(out);
    struct resp r = client_req(c, "GET", "/api/session", NULL);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    /* a new password set from the command line (another process) ends the session already
     * open in the server within about a second */
    assert_int_equal(run_cli(passwd, "rescued-pass-1\n", &out), 0);
    free(out);
    int64_t took;
    assert_int_equal(client_get_until(c, "/api/session", 401, 3000, &took), 401);
    if (took > 1500) {
        fail_msg("the session outlived the new password by %lld ms", (long long)took);
    }
    client_free(c);
    c = srv_login(s, "cli-made", "rescued-pass-1");
    assert_non_null(c);
    client_free(c);
    const char *list[] = {"user", "list", "--db", s->db, NULL};
    assert_int_equal(run_cli(list, NULL, &out), 0);
    assert_non_null(strstr(out, "cli-made"));
    assert_non_null(strstr(out, "operator"));
    free(out);
}

/* The permission bits of path, or -1 when it does not exist. */
static int
file_mode(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (int)(st.st_mode & 07777) : -1;
}

/* The database holds password hashes and audited values: created 0600 in a new 0700
 * directory (under the usual umask 022), its -wal and -shm likewise; an existing directory
 * keeps its mode; an existing database readable by others is reported. */
static void
test_database_file_modes(void **state)
{
    struct srv *s = *state;
    char wal[400], shm[400];
    snprintf(wal, sizeof(wal), "%s-wal", s->db);
    snprintf(shm, sizeof(shm), "%s-shm", s->db);
    assert_int_equal(file_mode(s->db), 0600); /* the running server's */
    assert_int_equal(file_mode(wal), 0600);
    assert_int_equal(file_mode(shm), 0600);

    char dir[] = "/tmp/consulate-modes-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char db[320], sub[320], loose[320];
    snprintf(sub, sizeof(sub), "%s/new", dir);
    snprintf(db, sizeof(db), "%s/new/deeper/c.db", dir);
    const char *mig[] = {"migrate", "--db", db, NULL};
    char *out = NULL;
    assert_int_equal(run_cli(mig, NULL, &out), 0);
    assert_null(strstr(out, "chmod"));
    free(out);
    assert_int_equal(file_mode(sub), 0700);
    snprintf(sub, sizeof(sub), "%s/new/deeper", dir);
    assert_int_equal(file_mode(sub), 0700);
    assert_int_equal(file_mode(db), 0600);

    /* a directory the operator made keeps its mode; the file in it is still 0600 */
    snprintf(loose, sizeof(loose), "%s/shared", dir);
    assert_int_equal(mkdir(loose, 0755), 0);
    snprintf(db, sizeof(db), "%s/shared/c.db", dir);
    assert_int_equal(run_cli(mig, NULL, &out), 0);
    free(out);
    assert_int_equal(file_mode(loose), 0755);
    assert_int_equal(file_mode(db), 0600);
    /* an existing database readable by others is used, with a warning naming the fix */
    assert_int_equal(chmod(db, 0644), 0);
    assert_int_equal(run_cli(mig, NULL, &out), 0);
    if (!strstr(out, "mode 0644") || !strstr(out, "chmod 600")) {
        fail_msg("no warning about the database's mode: %s", out);
    }
    free(out);
    assert_int_equal(file_mode(db), 0644);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
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
        cmocka_unit_test(test_database_file_modes),
        cmocka_unit_test(test_migrations_and_config),
    };
    umask(022); /* the usual default, inherited by the server and the CLI */
    return cmocka_run_group_tests(tests, setup, teardown);
}
