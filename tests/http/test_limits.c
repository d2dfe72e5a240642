/* Black-box tests of what hostile input and hostile clients cannot do to the real server:
 *   - deeply nested JSON (it used to overflow a worker thread's 100 KiB stack);
 *   - exhaustion: 200 idle sockets that never finish their headers, 100 live-update streams
 *     and 64 blocking proxied reads open at once, and /healthz, a login and /api/cluster
 *     still answer within a second each;
 *   - the caps on live-update streams (per user, in total) and a slot given back when the
 *     browser goes away;
 *   - DNS rebinding: a Host the console does not answer to is refused on every route;
 *   - trusted_proxies: X-Forwarded-Proto/-For honoured from a listed peer only;
 *   - the errors civetweb writes itself (bad request line, huge headers, header timeout) carry
 *     the security headers and a JSON error;
 *   - TCP keepalive on accepted connections. */
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
#include "rawhttp.h"
#include "simctl.h"
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

/* The error code and message of a raw response's JSON body ("" when absent). The strings
 * are copied into code and msg. */
static void
raw_error(const struct raw_resp *r, char *code, size_t clen, char *msg, size_t mlen)
{
    cJSON *j = r->body ? cJSON_Parse(r->body) : NULL;
    cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    snprintf(code, clen, "%s", json_get_str(e, "code", ""));
    snprintf(msg, mlen, "%s", json_get_str(e, "message", ""));
    cJSON_Delete(j);
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

/* ---- helpers for many connections ---- */

/* Creates viewers prefix00…prefixNN (n of them) with one admin session. */
static void
add_viewers(struct srv *s, const char *prefix, int n)
{
    struct client *admin = srv_login(s, "admin", s->admin_pw);
    assert_non_null(admin);
    for (int i = 0; i < n; i++) {
        char body[256];
        snprintf(body, sizeof(body),
                 "{\"name\":\"%s%02d\",\"role\":\"viewer\",\"password\":\"%s\"}", prefix, i, PW);
        struct resp r = client_req(admin, "POST", "/api/users", body);
        assert_int_equal(r.status, 201);
        resp_free(&r);
    }
    client_free(admin);
}

/* Logs in over a raw socket from src (NULL = 127.0.0.1) with extra header lines ("" or
 * "Name: v\r\n…"); fills out and returns the status. */
static int
raw_login(struct srv *s, const char *src, const char *user, const char *pw, const char *extra,
          struct raw_resp *out)
{
    char body[256], req[2048];
    int blen = snprintf(body, sizeof(body), "{\"username\":\"%s\",\"password\":\"%s\"}", user, pw);
    snprintf(req, sizeof(req),
             "POST /api/session HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: "
             "application/json\r\nContent-Length: %d\r\nConnection: close\r\n%s\r\n%s",
             s->port, blen, extra, body);
    return raw_exchange(s->port, src, req, out, 10000);
}

/* "consulate_session=…" for user (the caller frees it). */
static char *
session_cookie(struct srv *s, const char *user)
{
    struct raw_resp r;
    int st = raw_login(s, NULL, user, strcmp(user, "admin") == 0 ? s->admin_pw : PW, "", &r);
    char *sc = st == 200 ? raw_header(&r, "Set-Cookie") : NULL;
    raw_resp_free(&r);
    assert_non_null(sc);
    sc[strcspn(sc, ";")] = '\0';
    return sc;
}

/* Sends GET /api/events with cookie; returns the socket. */
static int
sse_open(struct srv *s, const char *cookie)
{
    char req[1024];
    snprintf(req, sizeof(req),
             "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAccept: text/event-stream\r\n"
             "Cookie: %s\r\n\r\n",
             s->port, cookie);
    int fd = raw_open(s->port, NULL, req);
    assert_true(fd >= 0);
    return fd;
}

/* Opens a live-update stream and reads its response head (and a refusal's body). Returns
 * the status; *fd is the open stream, or -1 (closed) when refused; code and msg get a
 * refusal's error code and message. */
static int __attribute__((unused))
sse_try(struct srv *s, const char *cookie, int *fd, char *code, size_t clen, char *msg, size_t mlen)
{
    *fd = sse_open(s, cookie);
    struct raw_resp r;
    int st = raw_read(*fd, &r, 10000, 0);
    code[0] = msg[0] = '\0';
    if (st != 200) {
        raw_error(&r, code, clen, msg, mlen);
        close(*fd);
        *fd = -1;
    }
    raw_resp_free(&r);
    return st;
}

/* One timed request on a fresh connection; returns milliseconds (and the status in *st). */
static int64_t
timed(struct srv *s, const char *request, int *st)
{
    struct raw_resp r;
    int64_t t0 = time_mono_ms();
    *st = raw_exchange(s->port, NULL, request, &r, 15000);
    int64_t took = time_mono_ms() - t0;
    raw_resp_free(&r);
    return took;
}

#define IDLE 200
#define STREAMS 100
#define BLOCKING 64
#define STREAM_USERS 13  /* at most 8 streams each (the default per-user cap) */
#define BLOCKING_USERS 8 /* 8 blocking reads each (the proxy allows 16 per user) */
#define SIM_IP "127.0.0.121"

/* What a test with its own server and simulator holds, released by fx_teardown even when an
 * assertion fails half-way. */
struct fx {
    struct sim *sim;
    struct srv *srv;
    int fds[IDLE + STREAMS + BLOCKING + 16];
    int nfds;
    char *strs[STREAM_USERS + 8];
    int nstrs;
};

static int
fx_setup(void **state)
{
    *state = xcalloc(1, sizeof(struct fx));
    return 0;
}

static int
fx_teardown(void **state)
{
    struct fx *f = *state;
    for (int i = 0; i < f->nfds; i++) {
        if (f->fds[i] >= 0) {
            close(f->fds[i]);
        }
    }
    for (int i = 0; i < f->nstrs; i++) {
        free(f->strs[i]);
    }
    srv_stop(f->srv);
    int rc = f->sim ? sim_stop_rc(f->sim) : 0;
    free(f);
    return rc;
}

/* Keeps fd for fx_teardown to close; returns it. */
static int
fx_fd(struct fx *f, int fd)
{
    assert_true(fd >= 0);
    assert_true(f->nfds < (int)ARRAY_LEN(f->fds));
    f->fds[f->nfds++] = fd;
    return fd;
}

static char *
fx_str(struct fx *f, char *s)
{
    assert_true(f->nstrs < (int)ARRAY_LEN(f->strs));
    f->strs[f->nstrs++] = s;
    return s;
}

/* Milliseconds left until deadline, at least 1. */
static int
left_ms(int64_t deadline)
{
    int64_t l = deadline - time_mono_ms();
    return l > 0 ? (int)l : 1;
}

/* The requirement: with 200 idle anonymous sockets (never finishing their headers), 100
 * live-update streams and 64 blocking proxied reads open at once, /healthz, a login and
 * GET /api/cluster each answer within a second. Default threads, timeouts and caps. */
static void
test_exhaustion_leaves_room_for_everyone(void **state)
{
    struct fx *f = *state;
    f->sim = sim_start("--servers 3 --speed 20 --ip-base " SIM_IP);
    assert_non_null(f->sim);
    struct sim *sim = f->sim;
    char cfg[1024];
    snprintf(cfg, sizeof(cfg), "\"consul\":{\"addresses\":[\"%s\",\"%s\",\"%s\"]}",
             sim->servers[0].http, sim->servers[1].http, sim->servers[2].http);
    srv_threads = 0; /* the server's own default */
    f->srv = srv_start(cfg);
    srv_threads = 32;
    assert_non_null(f->srv);
    struct srv *s = f->srv;
    add_viewers(s, "u", STREAM_USERS);
    char *cookies[STREAM_USERS];
    for (int i = 0; i < STREAM_USERS; i++) {
        char name[16];
        snprintf(name, sizeof(name), "u%02d", i);
        cookies[i] = fx_str(f, session_cookie(s, name));
    }
    char *admin_cookie = fx_str(f, session_cookie(s, "admin"));

    /* the model is ready, and the key the blocking reads wait on exists */
    char req[2048];
    snprintf(req, sizeof(req),
             "GET /api/cluster HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nCookie: %s\r\nConnection: "
             "close\r\n\r\n",
             s->port, admin_cookie);
    int64_t deadline = time_mono_ms() + 15000;
    int st = 0;
    while (time_mono_ms() < deadline) {
        timed(s, req, &st);
        if (st == 200) {
            break;
        }
        usleep(100000);
    }
    assert_int_equal(st, 200);
    char url[256];
    snprintf(url, sizeof(url), "%s/v1/kv/limits/key", sim->servers[1].http);
    long hst = 0;
    char *hdrs = NULL;
    sim_http("PUT", url, "one", NULL, &hst, NULL, NULL);
    assert_int_equal(hst, 200);
    sim_http("GET", url, NULL, NULL, &hst, NULL, &hdrs);
    char *idx = sim_header(hdrs, "X-Consul-Index");
    free(hdrs);
    assert_non_null(idx);
    unsigned long long index = strtoull(idx, NULL, 10);
    free(idx);

    /* 100 streams from 13 users */
    int streams[STREAMS];
    for (int i = 0; i < STREAMS; i++) {
        streams[i] = fx_fd(f, sse_open(s, cookies[i % STREAM_USERS]));
    }
    int live = 0;
    deadline = time_mono_ms() + 10000;
    for (int i = 0; i < STREAMS; i++) {
        struct raw_resp r;
        live += raw_read_head(streams[i], &r, left_ms(deadline)) == 200;
        raw_resp_free(&r);
    }
    assert_int_equal(live, STREAMS);

    /* 64 blocking reads through the proxy from 8 users */
    int blocking[BLOCKING];
    for (int i = 0; i < BLOCKING; i++) {
        snprintf(req, sizeof(req),
                 "GET /api/consul/v1/kv/limits/key?index=%llu&wait=30s HTTP/1.1\r\nHost: "
                 "127.0.0.1:%d\r\nCookie: %s\r\n\r\n",
                 index, s->port, cookies[i % BLOCKING_USERS]);
        blocking[i] = fx_fd(f, raw_open(s->port, NULL, req));
    }
    usleep(500000);
    for (int i = 0; i < BLOCKING; i++) {
        assert_true(raw_still_open(blocking[i])); /* no answer yet: they wait */
    }

    /* 200 anonymous sockets: half send nothing, half a request that never ends */
    int idle[IDLE];
    for (int i = 0; i < IDLE; i++) {
        idle[i] = fx_fd(f, i % 2 ? raw_open(s->port, NULL, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                                 : raw_connect(s->port, NULL));
    }
    usleep(200000);

    snprintf(req, sizeof(req),
             "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n", s->port);
    int64_t t_health = timed(s, req, &st);
    assert_int_equal(st, 200);
    struct raw_resp lr;
    int64_t t0 = time_mono_ms();
    st = raw_login(s, NULL, "u00", PW, "", &lr);
    int64_t t_login = time_mono_ms() - t0;
    raw_resp_free(&lr);
    assert_int_equal(st, 200);
    snprintf(req, sizeof(req),
             "GET /api/cluster HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nCookie: %s\r\nConnection: "
             "close\r\n\r\n",
             s->port, admin_cookie);
    int64_t t_cluster = timed(s, req, &st);
    assert_int_equal(st, 200);
    print_message("exhaustion: /healthz %lld ms, login %lld ms, /api/cluster %lld ms\n",
                  (long long)t_health, (long long)t_login, (long long)t_cluster);
    assert_true(t_health < 1000);
    assert_true(t_login < 1000);
    assert_true(t_cluster < 1000);

    /* everything was really held while we measured */
    int idle_open = 0;
    for (int i = 0; i < IDLE; i++) {
        idle_open += raw_still_open(idle[i]);
    }
    assert_int_equal(idle_open, IDLE);
    for (int i = 0; i < BLOCKING; i++) {
        assert_true(raw_still_open(blocking[i]));
    }

    /* the blocking reads were real: a change answers all of them */
    sim_http("PUT", url, "two", NULL, &hst, NULL, NULL);
    assert_int_equal(hst, 200);
    int answered = 0;
    deadline = time_mono_ms() + 10000;
    for (int i = 0; i < BLOCKING; i++) {
        struct raw_resp r;
        answered += raw_read(blocking[i], &r, left_ms(deadline), 0) == 200;
        raw_resp_free(&r);
    }
    assert_int_equal(answered, BLOCKING);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deep_nesting_is_refused_and_the_server_lives),
        cmocka_unit_test_setup_teardown(test_exhaustion_leaves_room_for_everyone, fx_setup,
                                        fx_teardown),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
