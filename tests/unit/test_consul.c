/* Unit tests of the Consul client that need no agent: argument checks, key escaping, and
 * failover over addresses that refuse connections (counted in the metrics). The behaviour
 * against live agents is covered by tests/http/test_proxy.c with the simulator. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "consul.h"
#include "metrics.h"
#include "util.h"

/* A loopback port nothing listens on (bound, then closed). */
static int
free_port(const char *ip)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, ip, &a.sin_addr);
    bind(fd, (struct sockaddr *)&a, sizeof(a));
    socklen_t len = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

static void
test_escape(void **state)
{
    (void)state;
    char *e = consul_kv_escape("app/a b?c#d%e/ü~._-");
    assert_string_equal(e, "app/a%20b%3Fc%23d%25e/%C3%BC~._-");
    free(e);
}

static void
test_bad_arguments(void **state)
{
    (void)state;
    struct config cfg;
    config_defaults(&cfg);
    struct consul_client *c = consul_client_new(&cfg);
    struct consul_response r;
    assert_int_equal(consul_request(c, "GET", "/v2/x", NULL, 0, NULL, &r), CONSUL_ERROR);
    assert_int_equal(consul_request(c, "GET", "/v1/x y", NULL, 0, NULL, &r), CONSUL_ERROR);
    assert_int_equal(consul_request(c, "GET", "/v1/x\r\nX: y", NULL, 0, NULL, &r), CONSUL_ERROR);
    consul_response_free(&r);
    consul_client_free(c);
    config_free(&cfg);
}

static void
test_all_refused(void **state)
{
    (void)state;
    struct config cfg;
    config_defaults(&cfg);
    char text[256];
    snprintf(text, sizeof(text),
             "{\"consul\":{\"addresses\":[\"http://127.0.0.1:%d\",\"http://127.0.0.1:%d/\"]}}",
             free_port("127.0.0.1"), free_port("127.0.0.1"));
    struct config_error err;
    assert_int_equal(config_load_text(&cfg, text, "test", &err), CONFIG_OK);
    struct consul_client *c = consul_client_new(&cfg);
    assert_int_equal(consul_address_count(c), 2);
    assert_false(str_ends_with(consul_address(c, 1), "/"));
    long long req0 = metrics_get(METRIC_CONSUL_REQUESTS);
    long long err0 = metrics_get(METRIC_CONSUL_ERRORS);
    long long fo0 = metrics_get(METRIC_CONSUL_FAILOVERS);
    struct consul_response r;
    int64_t t0 = time_mono_ms();
    assert_int_equal(consul_request(c, "GET", "/v1/status/leader", NULL, 0, NULL, &r),
                     CONSUL_UNREACHABLE);
    assert_true(time_mono_ms() - t0 < 2000);
    assert_true(r.error[0] != '\0');
    assert_null(r.body);
    consul_response_free(&r);
    assert_int_equal(metrics_get(METRIC_CONSUL_REQUESTS), req0 + 2);
    assert_int_equal(metrics_get(METRIC_CONSUL_ERRORS), err0 + 2);
    assert_int_equal(metrics_get(METRIC_CONSUL_FAILOVERS), fo0 + 1);
    /* a write that could not even connect is tried on the next agent too */
    assert_int_equal(consul_request(c, "PUT", "/v1/kv/k", "v", 1, NULL, &r), CONSUL_UNREACHABLE);
    assert_int_equal(metrics_get(METRIC_CONSUL_REQUESTS), req0 + 4);
    /* with opts->address only that agent is asked */
    struct consul_opts o = {.address = consul_address(c, 0)};
    assert_int_equal(consul_request(c, "GET", "/v1/status/leader", NULL, 0, &o, &r),
                     CONSUL_UNREACHABLE);
    assert_int_equal(metrics_get(METRIC_CONSUL_REQUESTS), req0 + 5);
    struct consul_kv kv;
    assert_int_equal(consul_kv_read(c, "/v1/kv/x", NULL, &kv, NULL), CONSUL_UNREACHABLE);
    consul_kv_clear(&kv);
    consul_client_free(c);
    config_free(&cfg);
}

int
main(void)
{
    log_set_quiet(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_all_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
