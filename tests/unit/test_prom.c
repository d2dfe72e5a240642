/* Unit tests for server/prom.c: the Prometheus text exposition parser. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "prom.h"
#include "util.h"

/* The shape consul_exporter (prometheus/consul_exporter) serves on :9107. */
static const char exporter_text[] =
    "# HELP consul_catalog_service_node_healthy Is this service healthy on this node?\n"
    "# TYPE consul_catalog_service_node_healthy gauge\n"
    "consul_catalog_service_node_healthy{node=\"consul-1\",service_id=\"consul\","
    "service_name=\"consul\"} 1\n"
    "# HELP consul_catalog_services How many services are in the cluster.\n"
    "# TYPE consul_catalog_services gauge\n"
    "consul_catalog_services 3\n"
    "# HELP consul_exporter_build_info A metric with a constant '1' value labeled by version, "
    "revision, branch, and goversion from which consul_exporter was built.\n"
    "# TYPE consul_exporter_build_info gauge\n"
    "consul_exporter_build_info{branch=\"HEAD\",goversion=\"go1.20.4\",revision="
    "\"df2ed9b\",version=\"0.9.0\"} 1\n"
    "# HELP consul_health_node_status Status of health checks associated with a node.\n"
    "# TYPE consul_health_node_status gauge\n"
    "consul_health_node_status{check=\"serfHealth\",node=\"consul-1\",status=\"critical\"} 0\n"
    "consul_health_node_status{check=\"serfHealth\",node=\"consul-1\",status=\"maintenance\"} 0\n"
    "consul_health_node_status{check=\"serfHealth\",node=\"consul-1\",status=\"passing\"} 1\n"
    "consul_health_node_status{check=\"serfHealth\",node=\"consul-1\",status=\"warning\"} 0\n"
    "# HELP consul_health_service_status Status of health checks associated with a service.\n"
    "# TYPE consul_health_service_status gauge\n"
    "consul_health_service_status{check=\"service:web\",node=\"k8s-node-1\",service_id=\"web\","
    "service_name=\"web\",status=\"critical\"} 1\n"
    "# HELP consul_raft_leader Does Raft cluster have a leader (according to this node).\n"
    "# TYPE consul_raft_leader gauge\n"
    "consul_raft_leader 1\n"
    "# HELP consul_raft_peers How many peers (servers) are in the Raft cluster.\n"
    "# TYPE consul_raft_peers gauge\n"
    "consul_raft_peers 4\n"
    "# HELP consul_serf_lan_member_status Status of member in the cluster. 1=Alive, "
    "2=Leaving, 3=Left, 4=Failed.\n"
    "# TYPE consul_serf_lan_member_status gauge\n"
    "consul_serf_lan_member_status{member=\"consul-1\"} 1\n"
    "consul_serf_lan_member_status{member=\"consul-4\"} 4\n"
    "# HELP consul_serf_lan_members How many members are in the cluster.\n"
    "# TYPE consul_serf_lan_members gauge\n"
    "consul_serf_lan_members 10\n"
    "# HELP consul_up Was the last query of Consul successful.\n"
    "# TYPE consul_up gauge\n"
    "consul_up 1\n"
    "# HELP go_gc_duration_seconds A summary of the pause duration of garbage collection "
    "cycles.\n"
    "# TYPE go_gc_duration_seconds summary\n"
    "go_gc_duration_seconds{quantile=\"0\"} 2.3542e-05\n"
    "go_gc_duration_seconds_sum 0.000591292\n"
    "go_gc_duration_seconds_count 12\n";

struct parsed {
    struct prom_sample *s;
    size_t n;
    size_t skipped;
};

static void
parse_ok(const char *text, struct parsed *p)
{
    assert_int_equal(prom_parse(text, strlen(text), &p->s, &p->n, &p->skipped), PROM_OK);
}

static void
test_exporter_metrics(void **state)
{
    (void)state;
    struct parsed p;
    parse_ok(exporter_text, &p);
    assert_int_equal(p.skipped, 0);
    assert_int_equal(p.n, 17);
    assert_true(prom_value(p.s, p.n, "consul_up", NULL, NULL) == 1.0);
    assert_true(prom_value(p.s, p.n, "consul_raft_peers", NULL, NULL) == 4.0);
    assert_true(prom_value(p.s, p.n, "consul_raft_leader", NULL, NULL) == 1.0);
    assert_true(prom_value(p.s, p.n, "consul_serf_lan_members", NULL, NULL) == 10.0);
    assert_true(prom_value(p.s, p.n, "consul_catalog_services", NULL, NULL) == 3.0);
    assert_true(prom_value(p.s, p.n, "consul_serf_lan_member_status", "member", "consul-4") == 4.0);
    assert_true(prom_value(p.s, p.n, "consul_serf_lan_member_status", "member", "consul-1") == 1.0);
    assert_true(isnan(prom_value(p.s, p.n, "consul_serf_lan_member_status", "member", "nope")));
    /* Label present, any value: the first such sample. */
    assert_true(prom_value(p.s, p.n, "consul_health_node_status", "status", NULL) == 0.0);
    assert_true(prom_value(p.s, p.n, "consul_health_node_status", "status", "passing") == 1.0);
    assert_true(isnan(prom_value(p.s, p.n, "consul_up", "x", NULL)));
    assert_true(isnan(prom_value(p.s, p.n, "consul_absent", NULL, NULL)));
    assert_true(prom_value(p.s, p.n, "go_gc_duration_seconds", "quantile", "0") == 2.3542e-05);
    assert_true(prom_value(p.s, p.n, "go_gc_duration_seconds_count", NULL, NULL) == 12.0);

    const struct prom_sample *svc = NULL;
    for (size_t i = 0; i < p.n; i++) {
        if (strcmp(p.s[i].name, "consul_health_service_status") == 0) {
            svc = &p.s[i];
        }
    }
    assert_non_null(svc);
    assert_int_equal(svc->n_labels, 5);
    assert_string_equal(svc->labels[0].name, "check");
    assert_string_equal(svc->labels[0].value, "service:web");
    assert_string_equal(prom_label_get(svc, "node"), "k8s-node-1");
    assert_string_equal(prom_label_get(svc, "status"), "critical");
    assert_null(prom_label_get(svc, "member"));
    assert_false(svc->has_timestamp);
    /* Input order is kept. */
    assert_string_equal(p.s[0].name, "consul_catalog_service_node_healthy");
    assert_string_equal(p.s[p.n - 1].name, "go_gc_duration_seconds_count");
    prom_samples_free(p.s, p.n);
}

static void
test_label_escapes(void **state)
{
    (void)state;
    const char *text =
        "m{a=\"q\\\"uote\",b=\"back\\\\slash\",c=\"new\\nline\",d=\"\",e=\"}{,=\"} 7\n"
        "m { a = \"spaced\" , } 8\n";
    struct parsed p;
    parse_ok(text, &p);
    assert_int_equal(p.skipped, 0);
    assert_int_equal(p.n, 2);
    assert_string_equal(prom_label_get(&p.s[0], "a"), "q\"uote");
    assert_string_equal(prom_label_get(&p.s[0], "b"), "back\\slash");
    assert_string_equal(prom_label_get(&p.s[0], "c"), "new\nline");
    assert_string_equal(prom_label_get(&p.s[0], "d"), "");
    assert_string_equal(prom_label_get(&p.s[0], "e"), "}{,=");
    assert_true(p.s[0].value == 7.0);
    assert_true(prom_value(p.s, p.n, "m", "c", "new\nline") == 7.0);
    assert_true(prom_value(p.s, p.n, "m", "a", "spaced") == 8.0);
    assert_int_equal(p.s[1].n_labels, 1); /* trailing comma allowed */
    prom_samples_free(p.s, p.n);
}

static void
test_special_values(void **state)
{
    (void)state;
    const char *text = "a NaN\n"
                       "b +Inf\n"
                       "c -Inf\n"
                       "d 1e3\n"
                       "e -0.5\n"
                       "f 12345678901234567890\n"
                       "g Inf\n"
                       "h nan\n";
    struct parsed p;
    parse_ok(text, &p);
    assert_int_equal(p.skipped, 0);
    assert_int_equal(p.n, 8);
    assert_true(isnan(p.s[0].value));
    assert_true(isinf(p.s[1].value) && p.s[1].value > 0);
    assert_true(isinf(p.s[2].value) && p.s[2].value < 0);
    assert_true(p.s[3].value == 1000.0);
    assert_true(p.s[4].value == -0.5);
    assert_true(p.s[5].value == 12345678901234567890.0);
    assert_true(isinf(p.s[6].value));
    assert_true(isnan(p.s[7].value));
    /* A NaN value is found (and is NaN), an absent one is also NaN: both isnan. */
    assert_true(isnan(prom_value(p.s, p.n, "a", NULL, NULL)));
    prom_samples_free(p.s, p.n);
}

static void
test_timestamps(void **state)
{
    (void)state;
    const char *text = "a 1 1700000000123\n"
                       "b{x=\"y\"} 2 -5\n"
                       "c 3\t\t1700000000000  \n"
                       "d 4 9223372036854775807\n"
                       "e 5 -9223372036854775808\n"
                       "f 6 9223372036854775808\n" /* overflow: malformed */
                       "g 7 12.5\n"                /* not an integer: malformed */
                       "h 8 1 2\n";                /* extra token: malformed */
    struct parsed p;
    parse_ok(text, &p);
    assert_int_equal(p.n, 5);
    assert_int_equal(p.skipped, 3);
    assert_true(p.s[0].has_timestamp);
    assert_int_equal(p.s[0].timestamp_ms, 1700000000123LL);
    assert_int_equal(p.s[1].timestamp_ms, -5);
    assert_int_equal(p.s[2].timestamp_ms, 1700000000000LL);
    assert_true(p.s[3].timestamp_ms == INT64_MAX);
    assert_true(p.s[4].timestamp_ms == INT64_MIN);
    prom_samples_free(p.s, p.n);
}

static void
test_malformed_lines(void **state)
{
    (void)state;
    const char *text = "good_one 1\n"
                       "9starts_with_digit 1\n"
                       "no_value\n"
                       "bad_value abc\n"
                       "bad-name 1\n"
                       "unterminated{a=\"x} 1\n"
                       "unquoted{a=x} 1\n"
                       "bad_escape{a=\"\\t\"} 1\n"
                       "dup{a=\"1\",a=\"2\"} 1\n"
                       "missing_eq{a\"1\"} 1\n"
                       "no_close{a=\"1\" 1\n"
                       "colon_label{a:b=\"1\"} 1\n"
                       "{a=\"1\"} 1\n"
                       "   \t  \n"
                       "\n"
                       "# just a comment\n"
                       "#TYPE weird\n"
                       "  # indented comment\n"
                       "ns:with:colons 2\r\n"
                       "good_two{} 3";
    struct parsed p;
    parse_ok(text, &p);
    assert_int_equal(p.n, 3);
    assert_int_equal(p.skipped, 12);
    assert_string_equal(p.s[0].name, "good_one");
    assert_string_equal(p.s[1].name, "ns:with:colons");
    assert_true(p.s[1].value == 2.0);
    assert_string_equal(p.s[2].name, "good_two"); /* last line without a newline */
    assert_int_equal(p.s[2].n_labels, 0);
    prom_samples_free(p.s, p.n);

    /* NUL bytes inside the text: that line is malformed, the others still parse. */
    const char nul[] = "a 1\nb{x=\"a\0b\"} 2\nc 3\n";
    struct prom_sample *s = NULL;
    size_t n = 0, skipped = 0;
    assert_int_equal(prom_parse(nul, sizeof(nul) - 1, &s, &n, &skipped), PROM_OK);
    assert_int_equal(n, 2);
    assert_int_equal(skipped, 1);
    assert_string_equal(s[1].name, "c");
    prom_samples_free(s, n);

    /* Too many labels. */
    struct buf b;
    buf_init(&b, 1 << 16);
    buf_puts(&b, "many{");
    for (int i = 0; i <= PROM_MAX_LABELS; i++) {
        buf_printf(&b, "l%d=\"v\",", i);
    }
    buf_puts(&b, "} 1\nok 1\n");
    parse_ok(b.data, &p);
    assert_int_equal(p.n, 1);
    assert_int_equal(p.skipped, 1);
    prom_samples_free(p.s, p.n);
    buf_free(&b);
}

static void
test_size_cap_and_empty(void **state)
{
    (void)state;
    struct prom_sample *s = (struct prom_sample *)1;
    size_t n = 99, skipped = 99;
    size_t big = (size_t)PROM_MAX_TEXT + 1;
    char *text = xmalloc(big);
    memset(text, '#', big);
    assert_int_equal(prom_parse(text, big, &s, &n, &skipped), PROM_TOO_BIG);
    assert_null(s);
    assert_int_equal(n, 0);
    assert_int_equal(skipped, 0);
    /* Exactly the cap is accepted (all comment). */
    text[PROM_MAX_TEXT - 1] = '\n';
    assert_int_equal(prom_parse(text, PROM_MAX_TEXT, &s, &n, NULL), PROM_OK);
    assert_int_equal(n, 0);
    prom_samples_free(s, n);
    free(text);

    assert_int_equal(prom_parse("", 0, &s, &n, &skipped), PROM_OK);
    assert_int_equal(n, 0);
    assert_null(s);
    assert_int_equal(prom_parse(NULL, 0, &s, &n, NULL), PROM_OK);
    assert_int_equal(n, 0);
    prom_samples_free(NULL, 0);
    assert_true(isnan(prom_value(NULL, 0, "consul_up", NULL, NULL)));

    /* len bounds the parse: the text after it is never read. */
    const char *t = "a 1\nb 2\n";
    assert_int_equal(prom_parse(t, 4, &s, &n, NULL), PROM_OK);
    assert_int_equal(n, 1);
    prom_samples_free(s, n);
    assert_int_equal(prom_parse(t, 3, &s, &n, NULL), PROM_OK); /* "a 1" without newline */
    assert_int_equal(n, 1);
    assert_true(s[0].value == 1.0);
    prom_samples_free(s, n);
}

static void
test_many_samples(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 1 << 22);
    for (int i = 0; i < 5000; i++) {
        buf_printf(&b, "consul_serf_lan_member_status{member=\"node-%d\"} %d\n", i, i % 5);
    }
    struct parsed p;
    parse_ok(b.data, &p);
    assert_int_equal(p.n, 5000);
    assert_true(prom_value(p.s, p.n, "consul_serf_lan_member_status", "member", "node-4999") ==
                4.0);
    prom_samples_free(p.s, p.n);
    buf_free(&b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exporter_metrics), cmocka_unit_test(test_label_escapes),
        cmocka_unit_test(test_special_values),   cmocka_unit_test(test_timestamps),
        cmocka_unit_test(test_malformed_lines),  cmocka_unit_test(test_size_cap_and_empty),
        cmocka_unit_test(test_many_samples),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
