/* Unit tests for the pure parts of server/watch.c and server/scrape.c: rendering a snapshot
 * document with updated_at/age_ms, host extraction from raft and member addresses, exporter
 * URLs. (The threads are tested black-box in tests/http/test_cluster.c.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "scrape.h"
#include "util.h"
#include "watch.h"

static struct watch_snap
snap_of(const char *cluster, const char *health)
{
    struct watch_snap s;
    memset(&s, 0, sizeof(s));
    s.cluster = (char *)cluster;
    s.cluster_len = strlen(cluster);
    s.health = (char *)health;
    s.health_len = strlen(health);
    return s;
}

static void
test_render(void **state)
{
    (void)state;
    struct watch_snap s = snap_of("{\"reachable\":true,\"servers\":[]}", "{\"counts\":{}}");
    int64_t at = 1795550000123LL;
    size_t len = 0;
    char *out = watch_render(&s, WATCH_DOC_CLUSTER, at, at + 1500, &len);
    assert_int_equal(len, strlen(out));
    cJSON *j = cJSON_Parse(out);
    assert_non_null(j);
    char ts[40];
    time_format_rfc3339(at, ts, sizeof(ts));
    assert_string_equal(json_get_str(j, "updated_at", ""), ts);
    assert_int_equal((int)json_get_num(j, "age_ms", -1), 1500);
    assert_true(json_get_bool(j, "reachable", 0));
    assert_true(cJSON_IsArray(cJSON_GetObjectItem(j, "servers")));
    cJSON_Delete(j);
    free(out);

    /* events: no age_ms; a clock step backwards never gives a negative age */
    out = watch_render(&s, WATCH_DOC_HEALTH, at, -1, NULL);
    j = cJSON_Parse(out);
    assert_non_null(j);
    assert_null(cJSON_GetObjectItem(j, "age_ms"));
    assert_non_null(cJSON_GetObjectItem(j, "counts"));
    cJSON_Delete(j);
    free(out);
    out = watch_render(&s, WATCH_DOC_CLUSTER, at, at - 50, NULL);
    j = cJSON_Parse(out);
    assert_int_equal((int)json_get_num(j, "age_ms", -1), 0);
    cJSON_Delete(j);
    free(out);

    /* never answered: nulls */
    out = watch_render(&s, WATCH_DOC_CLUSTER, 0, at, NULL);
    j = cJSON_Parse(out);
    assert_non_null(j);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "updated_at")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "age_ms")));
    cJSON_Delete(j);
    free(out);

    /* an empty document stays valid JSON */
    struct watch_snap e = snap_of("{}", "{}");
    out = watch_render(&e, WATCH_DOC_CLUSTER, at, at, NULL);
    j = cJSON_Parse(out);
    assert_non_null(j);
    assert_int_equal(cJSON_GetArraySize(j), 2);
    cJSON_Delete(j);
    free(out);
}

static void
test_addr_host(void **state)
{
    (void)state;
    char h[64];
    assert_int_equal(watch_addr_host("10.1.10.12:8300", h, sizeof(h)), 0);
    assert_string_equal(h, "10.1.10.12");
    assert_int_equal(watch_addr_host("10.1.10.12", h, sizeof(h)), 0);
    assert_string_equal(h, "10.1.10.12");
    assert_int_equal(watch_addr_host("[fd00::1]:8300", h, sizeof(h)), 0);
    assert_string_equal(h, "fd00::1");
    assert_int_equal(watch_addr_host("fd00::1", h, sizeof(h)), 0);
    assert_string_equal(h, "fd00::1");
    assert_int_equal(watch_addr_host("", h, sizeof(h)), -1);
    assert_int_equal(watch_addr_host(":8300", h, sizeof(h)), -1);
    assert_int_equal(watch_addr_host("[fd00::1", h, sizeof(h)), -1);
    char tiny[4];
    assert_int_equal(watch_addr_host("10.1.10.12:8300", tiny, sizeof(tiny)), -1);
}

static void
test_scrape_url(void **state)
{
    (void)state;
    char *u = scrape_url("10.1.10.12", 9107);
    assert_string_equal(u, "http://10.1.10.12:9107/metrics");
    free(u);
    u = scrape_url("fd00::1", 9107);
    assert_string_equal(u, "http://[fd00::1]:9107/metrics");
    free(u);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_addr_host),
        cmocka_unit_test(test_scrape_url),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
