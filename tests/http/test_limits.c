/* Black-box tests of what hostile input and hostile clients cannot do to the real server:
 * deeply nested JSON (it used to overflow a worker thread's 100 KiB stack and kill the
 * process), and the server keeps serving afterwards. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "util.h"

#define PW "correct-horse-42"

static int
setup(void **state)
{
    struct srv *s = srv_start(NULL);
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

static const char *
error_code(const struct resp *r)
{
    return json_get_str(cJSON_GetObjectItemCaseSensitive(r->json, "error"), "code", "");
}

static const char *
error_message(const struct resp *r)
{
    return json_get_str(cJSON_GetObjectItemCaseSensitive(r->json, "error"), "message", "");
}

/* n copies of open, then close n times (or nothing when close is NULL). */
static char *
nested(const char *prefix, const char *open, const char *inner, const char *close, int n)
{
    struct buf b;
    buf_init(&b, 1 << 24);
    buf_puts(&b, prefix);
    for (int i = 0; i < n; i++) {
        buf_puts(&b, open);
    }
    buf_puts(&b, inner);
    for (int i = 0; close && i < n; i++) {
        buf_puts(&b, close);
    }
    return buf_steal(&b);
}

static void
assert_too_deep(struct client *c, const char *method, const char *path, const char *body)
{
    struct resp r = client_req(c, method, path, body);
    assert_int_equal(r.status, 400);
    assert_string_equal(error_code(&r), "invalid_json");
    assert_non_null(strstr(error_message(&r), "deep"));
    resp_free(&r);
}

/* The reported crash: about 900 '[' (under 2 KB) in a login body, no account needed. */
static void
test_deep_nesting_is_refused_and_the_server_lives(void **state)
{
    struct srv *s = *state;
    struct client *anon = client_new(s);
    char *body = nested("", "[", "", NULL, 900);
    assert_too_deep(anon, "POST", "/api/session", body);
    free(body);
    /* balanced, far deeper, inside an object member */
    body = nested("{\"username\":\"admin\",\"password\":", "[", "1", "]", 100000);
    assert_too_deep(anon, "POST", "/api/session", body);
    free(body);
    body = nested("{\"a\":", "{\"a\":", "1", "}", 5000);
    char *closed = xasprintf("%s}", body);
    assert_too_deep(anon, "POST", "/api/session", closed);
    free(closed);
    free(body);

    /* the same through an authenticated route */
    struct client *admin = srv_login(s, "admin", s->admin_pw);
    assert_non_null(admin);
    body = nested("{\"name\":\"deep\",\"role\":\"viewer\",\"password\":\"" PW "\",\"x\":", "[", "",
                  "]", 2000);
    char *obj = xasprintf("%s}", body);
    assert_too_deep(admin, "POST", "/api/users", obj);
    free(obj);
    free(body);
    struct resp r = client_req(admin, "GET", "/api/users", NULL);
    assert_int_equal(r.status, 200);
    assert_null(strstr(r.body, "\"deep\""));
    resp_free(&r);

    /* nesting within the limit is still ordinary JSON: a wrong field, not a depth error */
    body = nested("{\"username\":", "[", "", "]", 60);
    obj = xasprintf("%s,\"password\":\"x\"}", body);
    r = client_req(anon, "POST", "/api/session", obj);
    assert_int_equal(r.status, 400);
    assert_string_equal(error_code(&r), "invalid_field");
    assert_non_null(strstr(error_message(&r), "username"));
    resp_free(&r);
    free(obj);
    free(body);

    /* brackets inside strings do not count */
    body = nested("{\"username\":\"", "[", "", NULL, 3000);
    obj = xasprintf("%s\",\"password\":\"x\"}", body);
    r = client_req(anon, "POST", "/api/session", obj);
    assert_int_equal(r.status, 400);
    assert_string_equal(error_code(&r), "invalid_field");
    resp_free(&r);
    free(obj);
    free(body);

    r = client_req(anon, "GET", "/healthz", NULL);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    client_free(admin);
    client_free(anon);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deep_nesting_is_refused_and_the_server_lives),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
