/* The operations commands: `consulate version`, `backup`, `restore`, `cert --self-signed`,
 * and the upgrade path (a copy before migrating, a newer database refused). Each runs the
 * real binary, most of them beside a running server. */
#include <ctype.h>
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
#include <civetweb.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <libssh2.h>
#include <openssl/crypto.h>
#include <sodium.h>
#include <sqlite3.h>
#include <yaml.h>

#include "app.h"
#include "harness.h"
#include "util.h"

static int
sh(const char *cmd)
{
    int rc = system(cmd);
    if (rc != 0) {
        fprintf(stderr, "test_ops: `%s` failed\n", cmd);
    }
    return rc;
}

/* A line of text starting with prefix, newly allocated without the newline, or NULL. */
static char *
line_of(const char *text, const char *prefix)
{
    size_t n = strlen(prefix);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, prefix, n) == 0) {
            return xstrndup(p, strcspn(p, "\n"));
        }
    }
    return NULL;
}

static void
expect_line(const char *out, const char *want)
{
    char *l = line_of(out, want);
    if (!l || strcmp(l, want) != 0) {
        fail_msg("no line '%s' in:\n%s", want, out);
    }
    free(l);
}

static void
test_version(void **state)
{
    (void)state;
    const char *args[] = {"version", NULL};
    char *out = NULL;
    assert_int_equal(run_cli(args, NULL, &out), 0);
    expect_line(out, "consulate " CONSULATE_VERSION);
    /* the libraries as loaded: the same as this test process loads */
    char want[512];
    snprintf(want, sizeof(want), "civetweb %s", mg_version());
    expect_line(out, want);
    snprintf(want, sizeof(want), "sqlite %s", sqlite3_libversion());
    expect_line(out, want);
    const curl_version_info_data *cv = curl_version_info(CURLVERSION_NOW);
    snprintf(want, sizeof(want), "libcurl %s (%s)", cv->version, cv->ssl_version);
    expect_line(out, want);
    snprintf(want, sizeof(want), "libssh2 %s", libssh2_version(0));
    expect_line(out, want);
    snprintf(want, sizeof(want), "cjson %s", cJSON_Version());
    expect_line(out, want);
    snprintf(want, sizeof(want), "libsodium %s", sodium_version_string());
    expect_line(out, want);
    snprintf(want, sizeof(want), "libyaml %s", yaml_get_version_string());
    expect_line(out, want);
    snprintf(want, sizeof(want), "libcrypto %s", OpenSSL_version(OPENSSL_VERSION));
    expect_line(out, want);
    /* HTTPS through the shim in lib/ beside the binary */
    char *https = line_of(out, "https ");
    assert_non_null(https);
    snprintf(want, sizeof(want), "https %s (", OpenSSL_version(OPENSSL_VERSION));
    assert_true(str_starts_with(https, want));
    assert_true(str_ends_with(https, "/lib/libssl.so)"));
    free(https);
    /* the commit: a commit of the checkout it was built in, or "unknown" outside one */
    char *commit = line_of(out, "commit ");
    assert_non_null(commit);
    const char *id = commit + strlen("commit ");
    if (strcmp(id, "unknown") != 0) {
        assert_int_equal(strlen(id), 12);
        for (const char *p = id; *p; p++) {
            assert_true(isxdigit((unsigned char)*p));
        }
        const char *src = getenv("CONSULATE_SRC");
        char *cmd = xasprintf("git -C %s cat-file -e %s^{commit}", src ? src : ".", id);
        assert_int_equal(sh(cmd), 0);
        free(cmd);
    }
    free(commit);
    free(out);

    /* the binary without its lib/: HTTPS would not work, and version says so */
    char dir[] = "/tmp/consulate-version-XXXXXX";
    assert_non_null(mkdtemp(dir));
    const char *bin = getenv("CONSULATE_BIN");
    char *cmd = xasprintf("cp %s %s/consulate", bin ? bin : "build/consulate", dir);
    assert_int_equal(sh(cmd), 0);
    free(cmd);
    char *alone = xasprintf("%s/consulate", dir);
    char *saved = xstrdup(bin ? bin : "build/consulate");
    setenv("CONSULATE_BIN", alone, 1);
    assert_int_equal(run_cli(args, NULL, &out), 0);
    setenv("CONSULATE_BIN", saved, 1);
    https = line_of(out, "https ");
    assert_non_null(https);
    assert_null(strstr(https, "/lib/libssl.so)"));
    assert_true(str_starts_with(https, "https broken") ||
                str_starts_with(https, "https unavailable"));
    free(https);
    free(out);
    free(alone);
    free(saved);
    cmd = xasprintf("rm -rf %s", dir);
    sh(cmd);
    free(cmd);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
