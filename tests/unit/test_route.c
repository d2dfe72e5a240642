/* Unit tests for server/route.c (pattern matching, captures, the one percent-decoder, 405 vs
 * 404) and the route table's decisions: the proxy's decide hook parses the request once and
 * returns the action, target and least role, or a refusal with its reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api.h"
#include "app.h"
#include "config.h"
#include "util.h"

static int
h(struct req *r)
{
    (void)r;
    return 0;
}

static const struct route table[] = {
    {.method = "GET", .pattern = "/api/users", .fn = h, .min_role = ROLE_ADMIN},
    {.method = "POST",
     .pattern = "/api/users",
     .fn = h,
     .min_role = ROLE_ADMIN,
     .action = "user.create"},
    {.method = "PATCH",
     .pattern = "/api/users/{name}",
     .fn = h,
     .min_role = ROLE_ADMIN,
     .action = "user.update"},
    {.method = "*", .pattern = "/api/consul/v1/*", .fn = h, .min_role = ROLE_VIEWER},
};

static void
free_params(char **p, int n)
{
    for (int i = 0; i < n; i++) {
        free(p[i]);
    }
}

static void
test_exact_and_methods(void **state)
{
    (void)state;
    char *p[HTTP_MAX_PARAMS];
    int n, pm;
    const struct route *r = route_find(table, 4, "GET", "/api/users", p, &n, &pm);
    assert_ptr_equal(r, &table[0]);
    assert_int_equal(n, 0);
    r = route_find(table, 4, "POST", "/api/users", p, &n, &pm);
    assert_ptr_equal(r, &table[1]);
    r = route_find(table, 4, "HEAD", "/api/users", p, &n, &pm);
    assert_ptr_equal(r, &table[0]);
    r = route_find(table, 4, "DELETE", "/api/users", p, &n, &pm);
    assert_null(r);
    assert_int_equal(pm, 1); /* → 405 */
    r = route_find(table, 4, "GET", "/api/userz", p, &n, &pm);
    assert_null(r);
    assert_int_equal(pm, 0); /* → 404 */
    r = route_find(table, 4, "GET", "/api/users/", p, &n, &pm);
    assert_null(r);
}

static void
test_captures(void **state)
{
    (void)state;
    char *p[HTTP_MAX_PARAMS];
    int n, pm;
    const struct route *r = route_find(table, 4, "PATCH", "/api/users/al%69ce", p, &n, &pm);
    assert_ptr_equal(r, &table[2]);
    assert_int_equal(n, 1);
    assert_string_equal(p[0], "alice");
    free_params(p, n);
    /* an encoded slash must not smuggle a second segment */
    assert_null(route_find(table, 4, "PATCH", "/api/users/a%2Fb", p, &n, &pm));
    assert_null(route_find(table, 4, "PATCH", "/api/users/a/b", p, &n, &pm));
    assert_null(route_find(table, 4, "PATCH", "/api/users/%zz", p, &n, &pm));
    assert_null(route_find(table, 4, "PATCH", "/api/users/%00", p, &n, &pm));
    assert_null(route_find(table, 4, "PATCH", "/api/users/abc%4", p, &n, &pm));
}

static void
test_tail(void **state)
{
    (void)state;
    char *p[HTTP_MAX_PARAMS];
    int n, pm;
    const struct route *r = route_find(table, 4, "PUT", "/api/consul/v1/kv/a/b%20c", p, &n, &pm);
    assert_ptr_equal(r, &table[3]);
    assert_int_equal(n, 1);
    assert_string_equal(p[0], "kv/a/b%20c"); /* raw: the proxy forwards it as sent */
    free_params(p, n);
    r = route_find(table, 4, "GET", "/api/consul/v1/", p, &n, &pm);
    assert_ptr_equal(r, &table[3]);
    assert_string_equal(p[0], "");
    free_params(p, n);
    assert_null(route_find(table, 4, "GET", "/api/consul/v2/x", p, &n, &pm));
}

static void
test_pct_decode(void **state)
{
    (void)state;
    char *s = http_pct_decode("a%2Fb%2fc+d", 11, 0);
    assert_string_equal(s, "a/b/c+d");
    free(s);
    s = http_pct_decode("a%2Fb+c", 7, 1);
    assert_string_equal(s, "a/b c");
    free(s);
    s = http_pct_decode("%C3%BC", 6, 0);
    assert_string_equal(s, "\xc3\xbc");
    free(s);
    /* only n bytes are read */
    s = http_pct_decode("abc%41", 3, 0);
    assert_string_equal(s, "abc");
    free(s);
    static const char *const bad[] = {"%", "%4", "a%zz", "%00", "a%0", "%g1"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        assert_null(http_pct_decode(bad[i], strlen(bad[i]), 0));
    }
}

/* What the dispatcher is told about a request to the route found for method and path. */
struct decided {
    struct req r;
    struct route_decision d;
    const struct route *rt;
};

static struct config cfg;
static struct app app = {.cfg = &cfg};

static void
decide(struct decided *x, const char *method, const char *path, const char *query)
{
    memset(x, 0, sizeof(*x));
    x->r.method = method;
    x->r.path = path;
    x->r.query = query;
    x->r.app = &app;
    int pm;
    x->rt =
        route_find(http_routes, http_routes_count, method, path, x->r.params, &x->r.nparams, &pm);
    assert_non_null(x->rt);
    x->d.action = x->rt->action;
    x->d.least = x->rt->min_role;
    if (x->rt->decide) {
        x->rt->decide(&x->r, &x->d);
    }
}

static void
decided_free(struct decided *x)
{
    if (x->r.ctx_free) {
        x->r.ctx_free(x->r.ctx);
    }
    for (int i = 0; i < x->r.nparams; i++) {
        free(x->r.params[i]);
    }
}

/* The proxy's decision comes from one parse: action, target (the normalised Consul path)
 * and least role from the allowlist, or a refusal with the reason the dispatcher sends. */
static void
test_proxy_decisions(void **state)
{
    (void)state;
    static const struct {
        const char *method, *path;
        const char *action, *target;
        enum role least;
    } ok[] = {
        {"GET", "/api/consul/v1/catalog/nodes", "consul.catalog.get", "/v1/catalog/nodes",
         ROLE_VIEWER},
        {"HEAD", "/api/consul/v1/kv/a", "consul.kv.head", "/v1/kv/a", ROLE_VIEWER},
        {"PUT", "/api/consul/v1/kv%2Fbase%2Fk1", "consul.kv.put", "/v1/kv/base/k1", ROLE_OPERATOR},
        {"DELETE", "/api/consul/v1/kv//base//k1", "consul.kv.delete", "/v1/kv/base/k1",
         ROLE_OPERATOR},
        {"PUT", "/api/consul/v1/agent/service/register", "consul.agent.put",
         "/v1/agent/service/register", ROLE_ADMIN},
        {"GET", "/api/consul/v1/agent/self", "consul.agent.get", "/v1/agent/self", ROLE_ADMIN},
    };
    for (size_t i = 0; i < ARRAY_LEN(ok); i++) {
        struct decided x;
        decide(&x, ok[i].method, ok[i].path, NULL);
        assert_int_equal(x.d.refuse_status, 0);
        assert_string_equal(x.d.action, ok[i].action);
        assert_string_equal(x.d.target, ok[i].target);
        assert_int_equal(x.d.least, ok[i].least);
        assert_non_null(x.r.ctx); /* the parse is handed to the handler */
        decided_free(&x);
    }
    static const struct {
        const char *method, *path;
        int status;
        const char *code, *reason;
    } refused[] = {
        {"GET", "/api/consul/v1/acl/token/self", 403, "forbidden",
         "GET /v1/acl/token/self is never allowed through the proxy: ACL tokens"},
        {"GET", "/api/consul/v1/operator/keyring", 403, "forbidden", "gossip encryption keys"},
        {"GET", "/api/consul/v1/agent/connect/ca/leaf/web", 403, "forbidden", "private key"},
        {"GET", "/api/consul/v1/no/such", 403, "forbidden", "not in the proxy's allowlist"},
        {"GET", "/api/consul/v1/kv/a/../b", 400, "invalid_path", "'..' segment"},
        {"PUT", "/api/consul/v1/kv/%zz", 400, "invalid_path", "malformed percent escape"},
        {"PATCH", "/api/consul/v1/kv/a", 405, "method_not_allowed", "not PATCH"},
    };
    for (size_t i = 0; i < ARRAY_LEN(refused); i++) {
        struct decided x;
        decide(&x, refused[i].method, refused[i].path, NULL);
        assert_int_equal(x.d.refuse_status, refused[i].status);
        assert_string_equal(x.d.refuse_code, refused[i].code);
        if (!strstr(x.d.reason, refused[i].reason)) {
            fail_msg("%s %s: reason '%s'", refused[i].method, refused[i].path, x.d.reason);
        }
        assert_non_null(x.d.action); /* recorded under an action */
        decided_free(&x);
    }
    /* a static route: its own fields */
    struct decided x;
    decide(&x, "POST", "/api/kv/restore", NULL);
    assert_string_equal(x.d.action, "consul.kv.restore");
    assert_int_equal(x.d.least, ROLE_OPERATOR);
    assert_int_equal(x.d.refuse_status, 0);
    decided_free(&x);
}

int
main(void)
{
    config_defaults(&cfg);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_and_methods),
        cmocka_unit_test(test_captures),
        cmocka_unit_test(test_tail),
        cmocka_unit_test(test_pct_decode),
        cmocka_unit_test(test_proxy_decisions),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    config_free(&cfg);
    return rc;
}
