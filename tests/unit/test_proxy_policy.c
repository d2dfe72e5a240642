/* Unit tests for server/proxy_policy.c: the Consul path parser (decoding, refusals,
 * normalisation, the canonical path), the allowlist (every row, the cases reported against
 * the old deny list, case and encoding variants, the default refusal), the audit action
 * names, and that README.md lists exactly the rows of the table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proxy_policy.h"
#include "util.h"

/* The rule for method on raw (parsed first); NULL when refused by default. */
static const struct proxy_rule *
rule_of(const char *method, const char *raw)
{
    struct proxy_path p;
    const char *why = proxy_path_parse(raw, &p);
    if (why) {
        fail_msg("%s: %s", raw, why);
    }
    const struct proxy_rule *r = proxy_rule_find(method, p.norm);
    proxy_path_free(&p);
    return r;
}

/* The least role for method on raw, ROLE_NONE when refused (listed or not). */
static enum role
least_of(const char *method, const char *raw)
{
    const struct proxy_rule *r = rule_of(method, raw);
    return r ? r->least : ROLE_NONE;
}

/* A path the rule's pattern matches: its text with the final star replaced by "sample". */
static void
sample_path(const struct proxy_rule *r, char *out, size_t len)
{
    size_t n = strlen(r->path);
    if (r->path[n - 1] == '*') {
        snprintf(out, len, "%.*ssample", (int)(n - 1), r->path);
    } else {
        snprintf(out, len, "%s", r->path);
    }
}

static const char *const methods[] = {"GET", "HEAD", "PUT", "POST", "DELETE"};

/* Every row decides for the methods it names on a path it matches, unless an earlier row
 * matches that path and method first (then that earlier row is the decision). */
static void
test_every_row(void **state)
{
    (void)state;
    assert_true(proxy_rules_count > 40);
    for (size_t i = 0; i < proxy_rules_count; i++) {
        const struct proxy_rule *r = &proxy_rules[i];
        char path[256];
        sample_path(r, path, sizeof(path));
        int decided = 0;
        for (size_t m = 0; m < ARRAY_LEN(methods); m++) {
            if (!(r->methods & proxy_method_bit(methods[m]))) {
                continue;
            }
            const struct proxy_rule *got = proxy_rule_find(methods[m], path);
            assert_non_null(got);
            if (got == r) {
                decided = 1;
            } else {
                /* shadowed for this sample: only by an earlier row */
                assert_true(got < r);
            }
        }
        if (!decided) {
            fail_msg("row %zu (%s) never decides its own sample path %s", i, r->path, path);
        }
        /* a refusal always says why; an allowance never */
        assert_true((r->least == ROLE_NONE) == (r->why != NULL));
        /* refusals are prefixes, so that a trailing '/' or a segment more is refused too */
        if (r->least == ROLE_NONE) {
            assert_int_equal(r->path[strlen(r->path) - 1], '*');
        }
    }
}

/* The cases reported: secrets a viewer or an admin could read through the old deny list. */
static void
test_reported_cases(void **state)
{
    (void)state;
    static const char *const refused[] = {
        "/v1/agent/connect/ca/leaf/web",
        "/v1/operator/keyring",
        "/v1/acl/token/self",
        "/v1/acl/tokens",
        "/v1/acl/token/8f246b77-f3e1-ff88-5b48-8ec93abf3e05",
        "/v1/acl/token/8f246b77-f3e1-ff88-5b48-8ec93abf3e05/clone",
        "/v1/agent/token/default",
        "/v1/snapshot",
        "/v1/connect/ca/configuration",
        "/v1/acl/bootstrap",
        "/v1/acl/login",
        "/v1/acl/logout",
        "/v1/acl/auth-method/kubernetes",
        "/v1/config/inline-certificate/gw-cert",
        "/v1/config/inline-certificate",
        "/v1/peering/token",
        "/v1/agent/leave",
        "/v1/agent/force-leave/consul-2",
        "/v1/agent/join/10.0.0.9",
        "/v1/operator/raft/peer",
        "/v1/operator/raft/transfer-leader",
    };
    for (size_t i = 0; i < ARRAY_LEN(refused); i++) {
        for (size_t m = 0; m < ARRAY_LEN(methods); m++) {
            const struct proxy_rule *r = rule_of(methods[m], refused[i]);
            if (r && r->least != ROLE_NONE) {
                fail_msg("%s %s is allowed to %s", methods[m], refused[i], role_name(r->least));
            }
        }
        /* listed: refused with a reason, not merely unknown */
        const struct proxy_rule *r = rule_of("GET", refused[i]);
        assert_non_null(r);
        assert_non_null(r->why);
    }
    /* the console's own reads */
    static const char *const viewer[] = {
        "/v1/catalog/nodes",
        "/v1/catalog/service/web",
        "/v1/health/state/any",
        "/v1/health/service/web",
        "/v1/agent/members",
        "/v1/agent/services",
        "/v1/agent/checks",
        "/v1/status/leader",
        "/v1/operator/raft/configuration",
        "/v1/operator/autopilot/health",
        "/v1/operator/autopilot/state",
        "/v1/operator/autopilot/configuration",
        "/v1/kv/app/config",
        "/v1/kv/",
        "/v1/coordinate/nodes",
        "/v1/event/list",
        "/v1/session/info/abc",
        "/v1/session/list",
        "/v1/agent/connect/ca/roots",
        "/v1/connect/ca/roots",
        "/v1/connect/intentions",
    };
    for (size_t i = 0; i < ARRAY_LEN(viewer); i++) {
        assert_int_equal(least_of("GET", viewer[i]), ROLE_VIEWER);
        assert_int_equal(least_of("HEAD", viewer[i]), ROLE_VIEWER);
    }
    /* agent/self carries the agent's whole (sanitised) configuration: admin's */
    assert_int_equal(least_of("GET", "/v1/agent/self"), ROLE_ADMIN);
    assert_int_equal(least_of("GET", "/v1/agent/host"), ROLE_ADMIN);
    assert_int_equal(least_of("GET", "/v1/acl/policies"), ROLE_ADMIN);
    /* KV: operators write, viewers do not; POST is not a KV method */
    assert_int_equal(least_of("PUT", "/v1/kv/app/config"), ROLE_OPERATOR);
    assert_int_equal(least_of("DELETE", "/v1/kv/app/config"), ROLE_OPERATOR);
    assert_int_equal(least_of("POST", "/v1/kv/app/config"), ROLE_NONE);
    /* other writes are admin's */
    assert_int_equal(least_of("PUT", "/v1/agent/service/register"), ROLE_ADMIN);
    assert_int_equal(least_of("PUT", "/v1/operator/autopilot/configuration"), ROLE_ADMIN);
    assert_int_equal(least_of("PUT", "/v1/txn"), ROLE_ADMIN);
    /* reads of write-only endpoints are not listed */
    assert_int_equal(least_of("GET", "/v1/txn"), ROLE_NONE);
    assert_int_equal(least_of("PUT", "/v1/status/leader"), ROLE_NONE);
}

/* Deny by default; refusals match in any case and whatever the encoding; allowances only in
 * Consul's own spelling (any other spelling falls to the default refusal). */
static void
test_default_and_variants(void **state)
{
    (void)state;
    static const char *const unknown[] = {
        "/v1/no/such/endpoint",
        "/v1/internal/ui/services",
        "/v1/acl/create",
        "/v1/acl/info/abc",
        "/v1/acl/list",
        "/v1/kvx",
        "/v1/Catalog/nodes",
        "/v1/agent/self/",
        "/v1/agent",
    };
    for (size_t i = 0; i < ARRAY_LEN(unknown); i++) {
        if (rule_of("GET", unknown[i])) {
            fail_msg("GET %s is listed", unknown[i]);
        }
    }
    static const char *const variants[] = {
        "/v1/ACL/token/self",
        "/v1/acl/Token/self",
        "/v1/acl/token%2Fself",
        "/v1/acl/token%2fself",
        "/v1//acl///token/self",
        "/v1/acl/token/self/",
        "/v1/%61cl/token/self",
        "/v1/Operator/Keyring",
        "/v1/operator/keyring/",
        "/v1/agent/connect/ca/Leaf/web",
        "/v1/SNAPSHOT",
        "/v1/snapshot/",
        "/v1/operator/raft/peer/",
        "/v1/agent/leave/",
        "/v1/config/Inline-Certificate/x",
    };
    for (size_t i = 0; i < ARRAY_LEN(variants); i++) {
        for (size_t m = 0; m < ARRAY_LEN(methods); m++) {
            if (least_of(methods[m], variants[i]) != ROLE_NONE) {
                fail_msg("%s %s is allowed", methods[m], variants[i]);
            }
        }
    }
    assert_null(proxy_rule_find("PATCH", "/v1/kv/x"));
    assert_null(proxy_rule_find("OPTIONS", "/v1/kv/x"));
    assert_int_equal(proxy_method_bit("PATCH"), 0);
}

static void
test_path_parse(void **state)
{
    (void)state;
    struct proxy_path p;
    assert_null(proxy_path_parse("/v1/kv%2Fbase%2Fk1", &p));
    assert_string_equal(p.decoded, "/v1/kv/base/k1");
    assert_string_equal(p.norm, "/v1/kv/base/k1");
    assert_string_equal(p.canonical, "/v1/kv/base/k1");
    proxy_path_free(&p);
    assert_null(proxy_path_parse("/v1/kv//base///k1", &p));
    assert_string_equal(p.norm, "/v1/kv/base/k1");
    assert_string_equal(p.canonical, "/v1/kv/base/k1");
    proxy_path_free(&p);
    assert_null(proxy_path_parse("/v1/kv/a%20b%3Fc%25d/", &p));
    assert_string_equal(p.norm, "/v1/kv/a b?c%d/");
    assert_string_equal(p.canonical, "/v1/kv/a%20b%3Fc%25d/");
    proxy_path_free(&p);
    assert_null(proxy_path_parse("/v1/kv/%C3%BC", &p));
    assert_string_equal(p.canonical, "/v1/kv/%C3%BC");
    proxy_path_free(&p);
    static const char *const bad[] = {
        "/v1/kv/a/../b",  "/v1/kv/a/%2e%2e/b", "/v1/kv/./a", "/v1/kv/a/.",  "/v1/kv/a%00b",
        "/v1/kv/a%0d%0a", "/v1/kv/%zz",        "/v1/kv/%4",  "/v1/kv/a b",  "/v1/kv/a#b",
        "/v1/kv/a%23b",   "/v2/kv/a",          "/v1%2F..",   "/v1/kv/\x01",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        const char *why = proxy_path_parse(bad[i], &p);
        if (!why) {
            fail_msg("%s was accepted as %s", bad[i], p.norm);
        }
        proxy_path_free(&p);
    }
    /* the reasons name the problem */
    const char *why = proxy_path_parse("/v1/kv/a/../b", &p);
    assert_non_null(strstr(why, "'..'"));
    proxy_path_free(&p);
    why = proxy_path_parse("/v1/kv/%zz", &p);
    assert_non_null(strstr(why, "percent"));
    proxy_path_free(&p);
}

static void
test_action_names(void **state)
{
    (void)state;
    char a[64];
    proxy_action_name("PUT", "/v1/kv/app", a, sizeof(a));
    assert_string_equal(a, "consul.kv.put");
    proxy_action_name("GET", "/v1/agent/self", a, sizeof(a));
    assert_string_equal(a, "consul.agent.get");
    proxy_action_name("DELETE", "/v1/discovery-chain/web", a, sizeof(a));
    assert_string_equal(a, "consul.discovery-chain.delete");
    proxy_action_name("GET", "/v1/Weird.Seg/x", a, sizeof(a));
    assert_string_equal(a, "consul.other.get");
}

/* README.md's Consul proxy table is exactly the rows of proxy_rules, in order. */
static void
test_readme_table(void **state)
{
    (void)state;
    const char *src = getenv("CONSULATE_SRC");
    char path[1024];
    snprintf(path, sizeof(path), "%s/README.md", src ? src : ".");
    char *readme = file_read_all(path, 1 << 20, NULL);
    assert_non_null(readme);
    const char *sec = strstr(readme, "\n### Consul proxy\n");
    assert_non_null(sec);
    const char *end = strstr(sec + 1, "\n### ");
    size_t row = 0;
    const char *line = sec + 1;
    while (line && (!end || line < end)) {
        const char *eol = strchr(line, '\n');
        size_t len = eol ? (size_t)(eol - line) : strlen(line);
        if (len > 2 && line[0] == '|' && memmem(line, len, "| `/v1/", 7)) {
            if (row >= proxy_rules_count) {
                fail_msg("README lists more rows than the table: %.*s", (int)len, line);
            }
            const struct proxy_rule *r = &proxy_rules[row];
            char m[64], want[512];
            proxy_rule_methods_text(r, m, sizeof(m));
            if (r->least == ROLE_NONE) {
                snprintf(want, sizeof(want), "| %s | `%s` | refused: %s |", m, r->path, r->why);
            } else {
                snprintf(want, sizeof(want), "| %s | `%s` | %s |", m, r->path, role_name(r->least));
            }
            if (strlen(want) != len || memcmp(want, line, len) != 0) {
                fail_msg("README row %zu is\n  %.*s\nbut the table says\n  %s", row + 1, (int)len,
                         line, want);
            }
            row++;
        }
        line = eol ? eol + 1 : NULL;
    }
    if (row != proxy_rules_count) {
        fail_msg("README lists %zu rows, the table has %zu", row, proxy_rules_count);
    }
    free(readme);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_row),
        cmocka_unit_test(test_reported_cases),
        cmocka_unit_test(test_default_and_variants),
        cmocka_unit_test(test_path_parse),
        cmocka_unit_test(test_action_names),
        cmocka_unit_test(test_readme_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
