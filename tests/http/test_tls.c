/* HTTPS: the console served with tls.certificate, through Debian's civetweb and OpenSSL 3
 * (with the libssl shim in build/lib). A real client (libcurl) checks the certificate. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "harness.h"
#include "util.h"

struct fx {
    char dir[64];
    char pem[128]; /* certificate + key, for the server */
    char crt[128]; /* certificate, for the client */
    struct srv *srv;
};

static int
setup(void **state)
{
    struct fx *f = xcalloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/consulate-tls-XXXXXX");
    if (!mkdtemp(f->dir)) {
        return -1;
    }
    snprintf(f->pem, sizeof(f->pem), "%s/server.pem", f->dir);
    snprintf(f->crt, sizeof(f->crt), "%s/cert.pem", f->dir);
    char *cmd = xasprintf("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 "
                          "-addext subjectAltName=IP:127.0.0.1 -keyout %s/key.pem -out %s "
                          ">/dev/null 2>&1 && cat %s %s/key.pem > %s",
                          f->dir, f->crt, f->crt, f->dir, f->pem);
    int rc = system(cmd);
    free(cmd);
    if (rc != 0) {
        fprintf(stderr, "test_tls: openssl could not make a certificate\n");
        return -1;
    }
    char *cfg = xasprintf("\"tls\":{\"certificate\":\"%s\"}", f->pem);
    f->srv = srv_start(cfg);
    free(cfg);
    if (!f->srv) {
        return -1;
    }
    snprintf(f->srv->ca_file, sizeof(f->srv->ca_file), "%s", f->crt);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;
    srv_stop(f->srv);
    char *cmd = xasprintf("rm -rf %s", f->dir);
    int rc = system(cmd);
    (void)rc;
    free(cmd);
    free(f);
    return 0;
}

static void
test_https_login_sets_secure_cookie(void **state)
{
    struct fx *f = *state;
    assert_true(str_starts_with(f->srv->base, "https://"));
    struct client *c = client_new(f->srv);
    struct resp r = client_req(c, "GET", "/healthz", NULL);
    assert_int_equal(r.status, 200);
    char *hsts = resp_header(&r, "Strict-Transport-Security");
    assert_non_null(hsts);
    free(hsts);
    resp_free(&r);

    char body[256];
    snprintf(body, sizeof(body), "{\"username\":\"admin\",\"password\":\"%s\"}",
             f->srv->admin_pw);
    r = client_req(c, "POST", "/api/session", body);
    assert_int_equal(r.status, 200);
    char *cookie = resp_header(&r, "Set-Cookie");
    assert_non_null(cookie);
    assert_non_null(strstr(cookie, "; Secure"));
    assert_non_null(strstr(cookie, "HttpOnly"));
    free(cookie);
    client_set_csrf(c, json_get_str(r.json, "csrf_token", ""));
    resp_free(&r);

    /* the session works over TLS, including a CSRF-checked write with a same-origin Origin */
    char origin[128];
    snprintf(origin, sizeof(origin), "Origin: %s", f->srv->base);
    const char *hdrs[] = {"Content-Type: application/json", origin, NULL};
    const char *u = "{\"name\":\"tls-user\",\"role\":\"viewer\",\"password\":\"tls-password-1\"}";
    r = client_req_raw(c, "POST", "/api/users", u, strlen(u), hdrs, 1);
    assert_int_equal(r.status, 201);
    resp_free(&r);
    client_free(c);
}

static void
test_plain_http_is_refused(void **state)
{
    struct fx *f = *state;
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/healthz", f->srv->port);
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 5L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, NULL);
    FILE *devnull = fopen("/dev/null", "w");
    curl_easy_setopt(h, CURLOPT_WRITEDATA, devnull);
    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    fclose(devnull);
    assert_true(rc != CURLE_OK || status != 200);
}

static void
test_unreadable_certificate_stops_startup(void **state)
{
    struct fx *f = *state;
    char cfg[256], db[256];
    snprintf(cfg, sizeof(cfg), "%s/bad.json", f->dir);
    snprintf(db, sizeof(db), "%s/bad.db", f->dir);
    FILE *fp = fopen(cfg, "w");
    assert_non_null(fp);
    fprintf(fp, "{\"listen\":\"127.0.0.1:0\",\"tls\":{\"certificate\":\"%s/missing.pem\"}}",
            f->dir);
    fclose(fp);
    const char *args[] = {"serve", "--config", cfg, "--db", db, NULL};
    char *out = NULL;
    assert_int_equal(run_cli(args, NULL, &out), 1);
    assert_non_null(strstr(out, "tls.certificate"));
    free(out);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_https_login_sets_secure_cookie),
        cmocka_unit_test(test_plain_http_is_refused),
        cmocka_unit_test(test_unreadable_certificate_stops_startup),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
