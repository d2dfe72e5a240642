/* Unit tests for server/config.c: defaults, file values, bounds, unknown keys, types and the
 * environment overrides. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"

static void
test_defaults(void **state)
{
    (void)state;
    struct config c;
    config_defaults(&c);
    assert_string_equal(c.listen, "127.0.0.1:8080");
    assert_string_equal(c.database, "./var/consulate.db");
    assert_int_equal(c.session_idle_timeout_s, 1800);
    assert_int_equal(c.session_absolute_timeout_s, 43200);
    assert_int_equal(c.login_max_failures, 5);
    assert_int_equal(c.login_window_s, 900);
    assert_int_equal(c.n_consul_addresses, 1);
    assert_string_equal(c.consul_addresses[0], "http://127.0.0.1:8500");
    assert_null(c.consul_token);
    assert_int_equal(c.consul_tls_verify, 1);
    assert_int_equal(c.consul_connect_timeout_ms, 2000);
    assert_int_equal(c.consul_timeout_ms, 10000);
    assert_int_equal(c.exporter_port, 9107);
    config_free(&c);
}

/* The keys of limits, allowed_hosts and trusted_proxies: defaults, values, lists replaced
 * (not appended) by a second load, host names kept in lower case. */
static void
test_limits_and_lists(void **state)
{
    (void)state;
    struct config c;
    struct config_error e;
    config_defaults(&c);
    assert_int_equal(c.threads, 512);
    assert_int_equal(c.sse_streams, 128);
    assert_int_equal(c.sse_streams_per_user, 8);
    assert_int_equal(c.header_timeout_s, 10);
    assert_int_equal(c.keep_alive_s, 5);
    assert_null(c.allowed_hosts);
    assert_null(c.trusted_proxies);
    int rc = config_load_text(&c,
                              "{\"limits\":{\"sse_streams\":40,\"sse_streams_per_user\":3,"
                              "\"header_timeout_s\":4,\"keep_alive_s\":2},"
                              "\"allowed_hosts\":[\"Consul.Example.com\",\"ops-1\"],"
                              "\"trusted_proxies\":[\"10.0.0.5\",\"::1\"]}",
                              "test", &e);
    assert_int_equal(rc, CONFIG_OK);
    assert_int_equal(c.sse_streams, 40);
    assert_int_equal(c.sse_streams_per_user, 3);
    assert_int_equal(c.header_timeout_s, 4);
    assert_int_equal(c.keep_alive_s, 2);
    assert_string_equal(c.allowed_hosts[0], "consul.example.com");
    assert_string_equal(c.allowed_hosts[1], "ops-1");
    assert_null(c.allowed_hosts[2]);
    assert_string_equal(c.trusted_proxies[0], "10.0.0.5");
    assert_string_equal(c.trusted_proxies[1], "::1");
    assert_null(c.trusted_proxies[2]);
    rc = config_load_text(&c, "{\"allowed_hosts\":[],\"trusted_proxies\":[\"10.0.0.6\"]}",
                          "test", &e);
    assert_int_equal(rc, CONFIG_OK);
    assert_null(c.allowed_hosts[0]);
    assert_string_equal(c.trusted_proxies[0], "10.0.0.6");
    assert_null(c.trusted_proxies[1]);
    /* a refused list names the key and the entry, and leaves the old list */
    rc = config_load_text(&c, "{\"trusted_proxies\":[\"10.0.0.7\",\"10.0.0.0/8\"]}", "test",
                          &e);
    assert_int_equal(rc, CONFIG_INVALID);
    assert_non_null(strstr(e.message, "'trusted_proxies'"));
    assert_non_null(strstr(e.message, "10.0.0.0/8"));
    assert_string_equal(c.trusted_proxies[0], "10.0.0.6");
    rc = config_load_text(&c, "{\"allowed_hosts\":[\"a..b\"]}", "test", &e);
    assert_int_equal(rc, CONFIG_INVALID);
    assert_non_null(strstr(e.message, "'allowed_hosts'"));
    rc = config_load_text(&c, "{\"allowed_hosts\":[\"-a.b\"]}", "test", &e);
    assert_int_equal(rc, CONFIG_INVALID);
    rc = config_load_text(&c, "{\"allowed_hosts\":[\"a-.b\"]}", "test", &e);
    assert_int_equal(rc, CONFIG_INVALID);
    config_free(&c);
    assert_null(c.allowed_hosts);
    assert_null(c.trusted_proxies);
}

static void
test_values(void **state)
{
    (void)state;
    struct config c;
    struct config_error e;
    config_defaults(&c);
    int rc = config_load_text(&c,
                              "{\"listen\":\"127.0.0.2:9000\",\"database\":\"/tmp/x.db\","
                              "\"session\":{\"idle_timeout_s\":600},"
                              "\"consul\":{\"addresses\":[\"http://10.1.0.11:8500/\","
                              "\"https://consul-2:8501\"],\"token\":\"s3cret\","
                              "\"tls_verify\":false}}",
                              "test", &e);
    assert_int_equal(rc, CONFIG_OK);
    assert_string_equal(c.listen, "127.0.0.2:9000");
    assert_string_equal(c.database, "/tmp/x.db");
    assert_int_equal(c.session_idle_timeout_s, 600);
    assert_int_equal(c.session_absolute_timeout_s, 43200);
    assert_int_equal(c.n_consul_addresses, 2);
    assert_string_equal(c.consul_addresses[0], "http://10.1.0.11:8500");
    assert_string_equal(c.consul_addresses[1], "https://consul-2:8501");
    assert_null(c.consul_addresses[2]);
    assert_string_equal(c.consul_token, "s3cret");
    assert_int_equal(c.consul_tls_verify, 0);
    config_free(&c);
}

/* Each bad document must be refused with CONFIG_INVALID and a message naming the key. */
static void
test_errors_name_the_key(void **state)
{
    (void)state;
    static const struct {
        const char *doc, *key;
    } cases[] = {
        {"{\"lisen\":\"127.0.0.1:1\"}", "'lisen'"},
        {"{\"session\":{\"idle\":5}}", "'session.idle'"},
        {"{\"threads\":\"many\"}", "'threads'"},
        {"{\"threads\":2}", "'threads'"},
        {"{\"threads\":1.5}", "'threads'"},
        {"{\"listen\":\"8080\"}", "'listen'"},
        {"{\"listen\":\"127.0.0.1:99999\"}", "'listen'"},
        {"{\"session\":{\"idle_timeout_s\":10}}", "'session.idle_timeout_s'"},
        {"{\"session\":5}", "'session'"},
        {"{\"consul\":{\"addresses\":[]}}", "'consul.addresses'"},
        {"{\"consul\":{\"addresses\":[\"ftp://x\"]}}", "'consul.addresses'"},
        {"{\"consul\":{\"addresses\":\"http://x:1\"}}", "'consul.addresses'"},
        {"{\"consul\":{\"tls_verify\":\"yes\"}}", "'consul.tls_verify'"},
        {"{\"database\":\"\"}", "'database'"},
        {"{\"database\":7}", "'database'"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct config c;
        struct config_error e = {{0}};
        config_defaults(&c);
        int rc = config_load_text(&c, cases[i].doc, "test", &e);
        if (rc != CONFIG_INVALID || !strstr(e.message, cases[i].key)) {
            fail_msg("doc %s: rc %d message \"%s\" does not name %s", cases[i].doc, rc, e.message,
                     cases[i].key);
        }
        config_free(&c);
    }
}

static void
test_not_json(void **state)
{
    (void)state;
    struct config c;
    struct config_error e;
    config_defaults(&c);
    assert_int_equal(config_load_text(&c, "{listen:", "f.json", &e), CONFIG_INVALID);
    assert_non_null(strstr(e.message, "f.json"));
    assert_int_equal(config_load_text(&c, "[1]", "f.json", &e), CONFIG_INVALID);
    assert_int_equal(config_load_file(&c, "/nonexistent/c.json", &e), CONFIG_IO);
    config_free(&c);
}

static void
test_env(void **state)
{
    (void)state;
    struct config c;
    struct config_error e;
    config_defaults(&c);
    setenv("CONSULATE_DB", "/tmp/env.db", 1);
    setenv("CONSULATE_LISTEN", "127.0.0.3:7000", 1);
    setenv("CONSULATE_CONSUL_ADDR", "http://127.0.0.11:8500, http://127.0.0.12:8500", 1);
    setenv("CONSULATE_CONSUL_TOKEN", "tok", 1);
    assert_int_equal(config_apply_env(&c, &e), CONFIG_OK);
    assert_string_equal(c.database, "/tmp/env.db");
    assert_string_equal(c.listen, "127.0.0.3:7000");
    assert_int_equal(c.n_consul_addresses, 2);
    assert_string_equal(c.consul_addresses[1], "http://127.0.0.12:8500");
    assert_string_equal(c.consul_token, "tok");
    setenv("CONSULATE_LISTEN", "nope", 1);
    assert_int_equal(config_apply_env(&c, &e), CONFIG_INVALID);
    assert_non_null(strstr(e.message, "CONSULATE_LISTEN"));
    unsetenv("CONSULATE_DB");
    unsetenv("CONSULATE_LISTEN");
    unsetenv("CONSULATE_CONSUL_ADDR");
    unsetenv("CONSULATE_CONSUL_TOKEN");
    config_free(&c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_limits_and_lists),
        cmocka_unit_test(test_errors_name_the_key),
        cmocka_unit_test(test_not_json),
        cmocka_unit_test(test_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
