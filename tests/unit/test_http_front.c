/* Unit tests for server/http_front.c: the Host check (DNS rebinding), trusted proxies and
 * what they forward. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http_front.h"

static void
test_host_ip_literals_and_localhost(void **state)
{
    (void)state;
    static const char *const ok[] = {
        "127.0.0.1",
        "127.0.0.1:8080",
        "10.1.2.3:1",
        "[::1]",
        "[::1]:8443",
        "[2001:db8::1]",
        "localhost",
        "LOCALHOST:80",
        "LocalHost",
        "0.0.0.0:65535",
        "[::ffff:10.0.0.1]:8080",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        if (!front_host_allowed(ok[i], NULL)) {
            fail_msg("refused %s", ok[i]);
        }
    }
    static const char *const bad[] = {
        "",
        "evil.example",
        "evil.example:8080",
        "127.0.0.1.evil.example",
        "localhost.evil.example",
        "evil.localhost",
        "127.1",
        "0x7f.0.0.1",
        "127.0.0.1:",
        "127.0.0.1:abc",
        "127.0.0.1:123456",
        "127.0.0.1:80:80",
        "::1",
        "[::1",
        "[::1]x",
        "[::1]:",
        "[evil.example]",
        "[127.0.0.1]",
        "localhost:80 ",
        " localhost",
        "local host",
        "[fe80::1%25eth0]",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (front_host_allowed(bad[i], NULL)) {
            fail_msg("allowed \"%s\"", bad[i]);
        }
    }
    assert_false(front_host_allowed(NULL, NULL));
    char longname[400];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_false(front_host_allowed(longname, NULL));
}

static void
test_host_allowed_names(void **state)
{
    (void)state;
    char *allowed[] = {"console.example.com", "consul-ops", NULL};
    assert_true(front_host_allowed("console.example.com", allowed));
    assert_true(front_host_allowed("Console.Example.COM:443", allowed));
    assert_true(front_host_allowed("consul-ops:8080", allowed));
    assert_true(front_host_allowed("127.0.0.1", allowed));
    assert_false(front_host_allowed("example.com", allowed));
    assert_false(front_host_allowed("x.console.example.com", allowed));
    assert_false(front_host_allowed("console.example.com.evil", allowed));
    assert_false(front_host_allowed("console.example.co", allowed));
    assert_false(front_host_allowed("consul-ops.", allowed));
    char *none[] = {NULL};
    assert_false(front_host_allowed("console.example.com", none));
}

static void
test_peer_trusted(void **state)
{
    (void)state;
    char *trusted[] = {"10.0.0.5", "::1", "2001:db8::10", NULL};
    assert_true(front_peer_trusted("10.0.0.5", trusted));
    assert_true(front_peer_trusted("::ffff:10.0.0.5", trusted)); /* IPv4 on an IPv6 socket */
    assert_true(front_peer_trusted("0:0::1", trusted));
    assert_true(front_peer_trusted("2001:DB8:0::10", trusted));
    assert_false(front_peer_trusted("10.0.0.50", trusted));
    assert_false(front_peer_trusted("10.0.0.4", trusted));
    assert_false(front_peer_trusted("127.0.0.1", trusted));
    assert_false(front_peer_trusted("junk", trusted));
    assert_false(front_peer_trusted("", trusted));
    assert_false(front_peer_trusted("10.0.0.5", NULL));
    char *none[] = {NULL};
    assert_false(front_peer_trusted("10.0.0.5", none));
}

static void
test_forwarded(void **state)
{
    (void)state;
    char ip[48] = "10.0.0.5";
    int https = 0;
    front_forwarded("https", "203.0.113.9, 198.51.100.7", &https, ip, sizeof(ip));
    assert_int_equal(https, 1);
    assert_string_equal(ip, "198.51.100.7");

    /* the last element counts, blanks around it do not */
    front_forwarded("https, http", " 2001:db8::5 ", &https, ip, sizeof(ip));
    assert_int_equal(https, 0);
    assert_string_equal(ip, "2001:db8::5");
    front_forwarded(" HTTPS ", "1.2.3.4,\t192.0.2.1", &https, ip, sizeof(ip));
    assert_int_equal(https, 1);
    assert_string_equal(ip, "192.0.2.1");

    /* anything else leaves both alone */
    strcpy(ip, "10.0.0.5");
    https = 1;
    static const char *const junk[] = {"",
                                       ",",
                                       "1.2.3.4, ",
                                       "unknown",
                                       "1.2.3.4:5678",
                                       "[2001:db8::5]",
                                       "1.2.3.4, evil.example",
                                       "_hidden"};
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
        front_forwarded("wss", junk[i], &https, ip, sizeof(ip));
        assert_int_equal(https, 1);
        assert_string_equal(ip, "10.0.0.5");
    }
    front_forwarded(NULL, NULL, &https, ip, sizeof(ip));
    assert_int_equal(https, 1);
    assert_string_equal(ip, "10.0.0.5");
    /* an address that does not fit is not copied in part */
    char small[8] = "x";
    front_forwarded(NULL, "192.168.100.200", &https, small, sizeof(small));
    assert_string_equal(small, "x");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_host_ip_literals_and_localhost),
        cmocka_unit_test(test_host_allowed_names),
        cmocka_unit_test(test_peer_trusted),
        cmocka_unit_test(test_forwarded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
