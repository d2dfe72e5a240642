/* Unit tests for server/route.c: pattern matching, captures, percent-decoding, 405 vs 404. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http.h"

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

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_and_methods),
        cmocka_unit_test(test_captures),
        cmocka_unit_test(test_tail),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
