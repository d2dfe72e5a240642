/* Black-box tests of the live cluster model against the real server and the simulator:
 * GET /api/cluster, GET /api/health, the SSE stream GET /api/events (a no_leader event within
 * 2 s of losing quorum), failover across agent addresses, an unreachable Consul, upstream load
 * independent of the number of browsers, watch disabled, not ready, prompt shutdown.
 * Needs CONSULATE_BIN, CONSUL_SIM_BIN and CONSULATE_SRC. Simulated servers on 127.0.0.61…64. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "harness.h"
#include "simctl.h"
#include "util.h"

#define IP_BASE "127.0.0.61"
#define N_SERVERS 4

struct ctx {
    struct sim *sim;
    struct srv *srv;
    struct client *admin;
    int metrics_port;
    char addresses[1024]; /* JSON array of the agents' base URLs */
};

/* ---------------------------------------------------------------- helpers */

static void
sim_do(struct ctx *c, const char *method, const char *path, const char *body)
{
    long st = 0;
    char *out = NULL;
    assert_int_equal(sim_ctl(c->sim, method, path, body, &st, &out), 0);
    if (st < 200 || st >= 300) {
        fail_msg("sim %s %s: %ld %s", method, path, st, out ? out : "");
    }
    free(out);
}

static long long
sim_requests_total(struct ctx *c)
{
    long st = 0;
    char *out = NULL;
    sim_ctl(c->sim, "GET", "/sim/requests", NULL, &st, &out);
    cJSON *j = out ? cJSON_Parse(out) : NULL;
    long long n = (long long)json_get_num(j, "total", -1);
    cJSON_Delete(j);
    free(out);
    return n;
}

static int
has_problem(const cJSON *model, const char *code)
{
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(model, "problems"))
    {
        if (strcmp(json_get_str(p, "code", ""), code) == 0) {
            return 1;
        }
    }
    return 0;
}

typedef int (*model_pred)(const cJSON *m);

/* Polls GET path until pred holds (or timeout_ms); returns the last JSON (caller deletes). */
static cJSON *
poll_until(struct client *cl, const char *path, model_pred pred, int timeout_ms)
{
    long long deadline = sim_now_ms() + timeout_ms;
    cJSON *last = NULL;
    for (;;) {
        struct resp r = client_req(cl, "GET", path, NULL);
        if (r.status == 200 && r.json) {
            cJSON_Delete(last);
            last = r.json;
            r.json = NULL;
            if (pred(last)) {
                resp_free(&r);
                return last;
            }
        }
        resp_free(&r);
        if (sim_now_ms() > deadline) {
            return last;
        }
        sim_sleep_ms(100);
    }
}

static int
pred_four_servers(const cJSON *m)
{
    return json_get_bool(m, "reachable", 0) &&
           cJSON_GetArraySize(cJSON_GetObjectItem(m, "servers")) == N_SERVERS &&
           cJSON_IsObject(cJSON_GetObjectItem(m, "leader"));
}

static int
pred_exporters(const cJSON *m)
{
    const cJSON *s;
    int n = 0;
    cJSON_ArrayForEach(s, cJSON_GetObjectItem(m, "servers"))
    {
        const cJSON *e = cJSON_GetObjectItem(s, "exporter");
        if (!cJSON_IsObject(e) || !json_get_bool(e, "reachable", 0)) {
            return 0;
        }
        n++;
    }
    return n == N_SERVERS;
}

static int
pred_healthy_again(const cJSON *m)
{
    return pred_four_servers(m) && !has_problem(m, "no_leader") &&
           !has_problem(m, "server_failed") && !has_problem(m, "consul_unreachable");
}

static int
pred_unreachable(const cJSON *m)
{
    return !json_get_bool(m, "reachable", 1) && has_problem(m, "consul_unreachable");
}

static int
pred_reachable(const cJSON *m)
{
    return json_get_bool(m, "reachable", 0) &&
           cJSON_GetArraySize(cJSON_GetObjectItem(m, "servers")) > 0;
}

/* The session cookie value after logging in as user (for the raw SSE sockets). */
static void
session_cookie(struct srv *s, const char *user, const char *pw, char *out, size_t outlen)
{
    char url[128], body[256];
    snprintf(url, sizeof(url), "%s/api/session", s->base);
    snprintf(body, sizeof(body), "{\"username\":\"%s\",\"password\":\"%s\"}", user, pw);
    static const char *const hdrs[] = {"Content-Type: application/json", NULL};
    long st = 0;
    char *rb = NULL, *rh = NULL;
    assert_int_equal(sim_http("POST", url, body, hdrs, &st, &rb, &rh), 0);
    assert_int_equal(st, 200);
    char *sc = sim_header(rh, "Set-Cookie");
    assert_non_null(sc);
    const char *v = strstr(sc, "consulate_session=");
    assert_non_null(v);
    v += strlen("consulate_session=");
    size_t n = strcspn(v, ";");
    assert_true(n < outlen);
    memcpy(out, v, n);
    out[n] = '\0';
    free(sc);
    free(rb);
    free(rh);
}

/* ---------------------------------------------------------------- a raw SSE client */

struct sse_event {
    char name[32];
    char *data;
    long long t_ms;
};

struct sse {
    int fd;
    pthread_t th;
    int has_thread;
    atomic_int stop;
    pthread_mutex_t mu;
    struct buf raw; /* everything received */
    size_t parsed;  /* bytes of raw already split into lines */
    char pending_name[32];
    struct sse_event *ev;
    size_t n_ev, cap_ev;
    int eof;
    char status_line[64];
};

/* Opens GET /api/events with the cookie; returns the socket or -1. */
static int
sse_connect(struct srv *s, const char *cookie)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s->port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    char req[512];
    int n = snprintf(req, sizeof(req),
                     "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAccept: "
                     "text/event-stream\r\nCookie: consulate_session=%s\r\n\r\n",
                     s->port, cookie);
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Splits new complete lines of raw into events. mu held. */
static void
sse_parse_locked(struct sse *c)
{
    for (;;) {
        char *start = c->raw.data + c->parsed;
        char *nl = memchr(start, '\n', c->raw.len - c->parsed);
        if (!nl) {
            return;
        }
        size_t len = (size_t)(nl - start);
        c->parsed += len + 1;
        if (len > 0 && start[len - 1] == '\r') {
            len--;
        }
        if (!c->status_line[0] && len > 9 && strncmp(start, "HTTP/1.1 ", 9) == 0) {
            snprintf(c->status_line, sizeof(c->status_line), "%.*s", (int)len, start);
        } else if (len > 7 && strncmp(start, "event: ", 7) == 0) {
            snprintf(c->pending_name, sizeof(c->pending_name), "%.*s", (int)(len - 7), start + 7);
        } else if (len > 6 && strncmp(start, "data: ", 6) == 0 && c->pending_name[0]) {
            if (c->n_ev == c->cap_ev) {
                c->cap_ev = c->cap_ev ? c->cap_ev * 2 : 64;
                c->ev = xrealloc(c->ev, c->cap_ev * sizeof(*c->ev));
            }
            struct sse_event *e = &c->ev[c->n_ev++];
            snprintf(e->name, sizeof(e->name), "%s", c->pending_name);
            e->data = xstrndup(start + 6, len - 6);
            e->t_ms = sim_now_ms();
            c->pending_name[0] = '\0';
        }
    }
}

static void *
sse_main(void *arg)
{
    struct sse *c = arg;
    char chunk[16384];
    while (!atomic_load(&c->stop)) {
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        int pr = poll(&p, 1, 100);
        if (pr <= 0) {
            continue;
        }
        ssize_t n = read(c->fd, chunk, sizeof(chunk));
        pthread_mutex_lock(&c->mu);
        if (n <= 0) {
            c->eof = 1;
            pthread_mutex_unlock(&c->mu);
            break;
        }
        buf_append(&c->raw, chunk, (size_t)n);
        sse_parse_locked(c);
        pthread_mutex_unlock(&c->mu);
    }
    return NULL;
}

/* Connects and starts a reader thread; NULL on failure. */
static struct sse *
sse_open(struct srv *s, const char *cookie)
{
    struct sse *c = xcalloc(1, sizeof(*c));
    c->fd = sse_connect(s, cookie);
    if (c->fd < 0) {
        free(c);
        return NULL;
    }
    pthread_mutex_init(&c->mu, NULL);
    buf_init(&c->raw, 64 << 20);
    c->has_thread = pthread_create(&c->th, NULL, sse_main, c) == 0;
    return c;
}

static void
sse_close(struct sse *c)
{
    if (!c) {
        return;
    }
    atomic_store(&c->stop, 1);
    if (c->has_thread) {
        pthread_join(c->th, NULL);
    }
    close(c->fd);
    for (size_t i = 0; i < c->n_ev; i++) {
        free(c->ev[i].data);
    }
    free(c->ev);
    buf_free(&c->raw);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* Waits for the first event at or after index *from named name whose parsed data satisfies
 * pred (NULL = any). Returns its JSON (caller deletes) and its arrival time in *t_ms, and
 * moves *from past it; NULL on timeout. */
static cJSON *
sse_wait(struct sse *c, size_t *from, const char *name, model_pred pred, int timeout_ms,
         long long *t_ms)
{
    long long deadline = sim_now_ms() + timeout_ms;
    for (;;) {
        pthread_mutex_lock(&c->mu);
        for (; *from < c->n_ev; (*from)++) {
            struct sse_event *e = &c->ev[*from];
            if (strcmp(e->name, name) != 0) {
                continue;
            }
            cJSON *j = cJSON_Parse(e->data);
            if (j && (!pred || pred(j))) {
                if (t_ms) {
                    *t_ms = e->t_ms;
                }
                (*from)++;
                pthread_mutex_unlock(&c->mu);
                return j;
            }
            cJSON_Delete(j);
        }
        int eof = c->eof;
        pthread_mutex_unlock(&c->mu);
        if (eof || sim_now_ms() > deadline) {
            return NULL;
        }
        sim_sleep_ms(10);
    }
}

static int
pred_no_leader(const cJSON *m)
{
    return has_problem(m, "no_leader");
}

/* ---------------------------------------------------------------- setup */

static int
group_setup(void **state)
{
    struct ctx *c = xcalloc(1, sizeof(*c));
    c->metrics_port = sim_free_port(IP_BASE, N_SERVERS);
    if (c->metrics_port < 0) {
        fprintf(stderr, "no free exporter port on %s…\n", IP_BASE);
        return -1;
    }
    char args[256];
    snprintf(args, sizeof(args),
             "--servers %d --clients 3 --speed 20 --ip-base " IP_BASE " --metrics-port %d",
             N_SERVERS, c->metrics_port);
    c->sim = sim_start(args);
    if (!c->sim) {
        return -1;
    }
    size_t o = 0;
    o += (size_t)snprintf(c->addresses + o, sizeof(c->addresses) - o, "[");
    for (int i = 0; i < c->sim->n_servers; i++) {
        o += (size_t)snprintf(c->addresses + o, sizeof(c->addresses) - o, "%s\"%s\"", i ? "," : "",
                              c->sim->servers[i].http);
    }
    snprintf(c->addresses + o, sizeof(c->addresses) - o, "]");
    char extra[1400];
    snprintf(extra, sizeof(extra),
             "\"consul\":{\"addresses\":%s,\"exporter_port\":%d,\"exporter_interval_s\":1,"
             "\"connect_timeout_ms\":500}",
             c->addresses, c->metrics_port);
    c->srv = srv_start(extra);
    if (!c->srv) {
        sim_stop(c->sim);
        return -1;
    }
    c->admin = srv_login(c->srv, "admin", c->srv->admin_pw);
    if (!c->admin) {
        return -1;
    }
    *state = c;
    return 0;
}

static int
group_teardown(void **state)
{
    struct ctx *c = *state;
    client_free(c->admin);
    srv_stop(c->srv);
    int rc = sim_stop_rc(c->sim);
    free(c);
    return rc;
}

/* ---------------------------------------------------------------- tests */

static void
test_cluster_model(void **state)
{
    struct ctx *c = *state;
    cJSON *m = poll_until(c->admin, "/api/cluster", pred_four_servers, 10000);
    assert_non_null(m);
    assert_true(pred_four_servers(m));
    assert_true(json_get_bool(m, "reachable", 0));
    assert_string_equal(json_get_str(m, "datacenter", ""), "dc1");
    assert_true(cJSON_IsString(cJSON_GetObjectItem(m, "updated_at")));
    double age = json_get_num(m, "age_ms", -1);
    assert_true(age >= 0 && age < 5000);
    const cJSON *q = cJSON_GetObjectItem(m, "quorum");
    assert_int_equal((int)json_get_num(q, "voters", 0), 4);
    assert_int_equal((int)json_get_num(q, "size", 0), 3);
    assert_int_equal((int)json_get_num(q, "failure_tolerance", 0), 1);
    int leaders = 0, voters = 0;
    const cJSON *s;
    cJSON_ArrayForEach(s, cJSON_GetObjectItem(m, "servers"))
    {
        leaders += json_get_bool(s, "leader", 0);
        voters += json_get_bool(s, "voter", 0);
    }
    assert_int_equal(leaders, 1);
    assert_int_equal(voters, 4);
    assert_true(has_problem(m, "even_server_count"));
    assert_false(has_problem(m, "no_leader"));
    assert_true(json_get_bool(cJSON_GetObjectItem(m, "seed_check"), "ok", 0));
    const cJSON *cc = cJSON_GetObjectItem(m, "client_counts");
    assert_int_equal((int)json_get_num(cc, "alive", -1), 3);
    assert_int_equal((int)json_get_num(cc, "failed", -1), 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(m, "clients")), 3);
    cJSON_Delete(m);

    /* the exporter scrape fills every server */
    m = poll_until(c->admin, "/api/cluster", pred_exporters, 10000);
    assert_non_null(m);
    assert_true(pred_exporters(m));
    cJSON_ArrayForEach(s, cJSON_GetObjectItem(m, "servers"))
    {
        const cJSON *e = cJSON_GetObjectItem(s, "exporter");
        assert_true(json_get_num(e, "consul_up", 0) == 1);
        assert_true(json_get_num(e, "raft_peers", 0) == 4);
        assert_true(json_get_num(e, "raft_leader", 0) == 1);
        assert_true(json_get_num(e, "serf_lan_members", 0) == 7);
    }
    cJSON_Delete(m);
}

static void
test_roles_and_methods(void **state)
{
    struct ctx *c = *state;
    assert_int_equal(srv_add_user(c->srv, "vera", "viewer", "viewer-pass-123"), 201);
    struct client *v = srv_login(c->srv, "vera", "viewer-pass-123");
    assert_non_null(v);
    struct resp r = client_req(v, "GET", "/api/cluster", NULL);
    assert_int_equal(r.status, 200);
    char *cache = resp_header(&r, "Cache-Control");
    assert_string_equal(cache, "no-store");
    free(cache);
    resp_free(&r);
    r = client_req(v, "GET", "/api/health", NULL);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    r = client_req(v, "POST", "/api/cluster", "{}");
    assert_int_equal(r.status, 405);
    resp_free(&r);
    client_free(v);

    struct client *anon = client_new(c->srv);
    const char *paths[] = {"/api/cluster", "/api/health", "/api/events"};
    for (size_t i = 0; i < ARRAY_LEN(paths); i++) {
        r = client_req(anon, "GET", paths[i], NULL);
        assert_int_equal(r.status, 401);
        resp_free(&r);
    }
    client_free(anon);
}

static int
pred_has_critical(const cJSON *h)
{
    return json_get_num(cJSON_GetObjectItem(h, "counts"), "critical", 0) >= 1 &&
           json_get_num(cJSON_GetObjectItem(h, "counts"), "warning", 0) >= 1;
}

static int
rank(const char *status)
{
    if (strcmp(status, "maintenance") == 0) {
        return 0;
    }
    if (strcmp(status, "critical") == 0) {
        return 1;
    }
    if (strcmp(status, "warning") == 0) {
        return 2;
    }
    return 3;
}

static void
test_health(void **state)
{
    struct ctx *c = *state;
    sim_do(c, "POST", "/sim/checks",
           "{\"node\":\"k8s-node-2\",\"check_id\":\"disk\",\"name\":\"Disk\",\"status\":"
           "\"critical\",\"output\":\"disk full\"}");
    sim_do(c, "POST", "/sim/checks",
           "{\"node\":\"k8s-node-1\",\"check_id\":\"mem\",\"name\":\"Memory\",\"status\":"
           "\"warning\",\"output\":\"90%\"}");
    cJSON *h = poll_until(c->admin, "/api/health", pred_has_critical, 5000);
    assert_non_null(h);
    assert_true(pred_has_critical(h));
    const cJSON *counts = cJSON_GetObjectItem(h, "counts");
    assert_int_equal((int)json_get_num(counts, "critical", 0), 1);
    assert_int_equal((int)json_get_num(counts, "warning", 0), 1);
    assert_true(json_get_num(counts, "passing", 0) >= 7);
    assert_true(json_get_bool(h, "reachable", 0));
    assert_true(cJSON_IsString(cJSON_GetObjectItem(h, "updated_at")));
    const cJSON *checks = cJSON_GetObjectItem(h, "checks");
    assert_true(cJSON_GetArraySize(checks) >= 9);
    const cJSON *first = cJSON_GetArrayItem(checks, 0);
    assert_string_equal(json_get_str(first, "status", ""), "critical");
    assert_string_equal(json_get_str(first, "node", ""), "k8s-node-2");
    assert_string_equal(json_get_str(first, "check_id", ""), "disk");
    assert_string_equal(json_get_str(cJSON_GetArrayItem(checks, 1), "status", ""), "warning");
    int prev = -1;
    const cJSON *ck;
    cJSON_ArrayForEach(ck, checks)
    {
        int rk = rank(json_get_str(ck, "status", ""));
        assert_true(rk >= prev);
        prev = rk;
    }
    cJSON_Delete(h);

    /* the cluster model lists the critical check too */
    struct resp r = client_req(c->admin, "GET", "/api/cluster", NULL);
    assert_int_equal(r.status, 200);
    assert_true(has_problem(r.json, "check_critical"));
    resp_free(&r);

    sim_do(c, "DELETE", "/sim/checks/k8s-node-2/disk", NULL);
    sim_do(c, "DELETE", "/sim/checks/k8s-node-1/mem", NULL);
}

static void
test_sse_no_leader_and_recovery(void **state)
{
    struct ctx *c = *state;
    cJSON *m = poll_until(c->admin, "/api/cluster", pred_healthy_again, 10000);
    assert_true(m && pred_healthy_again(m));
    cJSON_Delete(m);
    char cookie[128];
    session_cookie(c->srv, "admin", c->srv->admin_pw, cookie, sizeof(cookie));
    struct sse *es = sse_open(c->srv, cookie);
    assert_non_null(es);
    size_t at = 0;
    /* the current state arrives at once */
    cJSON *ev = sse_wait(es, &at, "cluster", NULL, 2000, NULL);
    assert_non_null(ev);
    assert_true(pred_four_servers(ev));
    assert_null(cJSON_GetObjectItem(ev, "age_ms"));
    assert_true(cJSON_IsString(cJSON_GetObjectItem(ev, "updated_at")));
    cJSON_Delete(ev);
    size_t hat = 0;
    ev = sse_wait(es, &hat, "health", NULL, 2000, NULL);
    assert_non_null(ev);
    assert_non_null(cJSON_GetObjectItem(ev, "counts"));
    cJSON_Delete(ev);
    pthread_mutex_lock(&es->mu);
    assert_string_equal(es->status_line, "HTTP/1.1 200 OK");
    assert_non_null(strstr(es->raw.data, "Content-Type: text/event-stream"));
    assert_non_null(strstr(es->raw.data, "Cache-Control: no-store"));
    assert_non_null(strstr(es->raw.data, "X-Accel-Buffering: no"));
    pthread_mutex_unlock(&es->mu);

    /* lose quorum: 2 of 4 servers stop */
    long long t_stop = sim_now_ms();
    sim_do(c, "POST", "/sim/servers/consul-1/stop", NULL);
    sim_do(c, "POST", "/sim/servers/consul-2/stop", NULL);
    long long t_ev = 0;
    ev = sse_wait(es, &at, "cluster", pred_no_leader, 5000, &t_ev);
    assert_non_null(ev);
    long long took = t_ev - t_stop;
    print_message("no_leader event %lld ms after the stop\n", took);
    assert_true(took < 2000);
    assert_true(json_get_bool(ev, "reachable", 0));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(ev, "leader")));
    cJSON_Delete(ev);
    m = poll_until(c->admin, "/api/cluster", pred_no_leader, 2000);
    assert_true(m && pred_no_leader(m));
    cJSON_Delete(m);

    /* restart: a leader comes back and the event says so */
    sim_do(c, "POST", "/sim/servers/consul-1/start", NULL);
    sim_do(c, "POST", "/sim/servers/consul-2/start", NULL);
    ev = sse_wait(es, &at, "cluster", pred_healthy_again, 10000, NULL);
    assert_non_null(ev);
    cJSON_Delete(ev);
    sse_close(es);
}

/* Upstream requests over a window with n open SSE clients (plus some polling browsers). */
static long long
upstream_with_clients(struct ctx *c, const char *cookie, int n, int window_ms)
{
    int fds[64];
    assert_true(n <= 64);
    for (int i = 0; i < n; i++) {
        fds[i] = sse_connect(c->srv, cookie);
        assert_true(fds[i] >= 0);
    }
    sim_sleep_ms(500);
    long st = 0;
    sim_ctl(c->sim, "POST", "/sim/requests/reset", NULL, &st, NULL);
    long long t_end = sim_now_ms() + window_ms;
    while (sim_now_ms() < t_end) {
        for (int i = 0; i < n; i++) {
            struct resp r =
                client_req(c->admin, "GET", i % 2 ? "/api/health" : "/api/cluster", NULL);
            assert_int_equal(r.status, 200);
            resp_free(&r);
        }
        for (int i = 0; i < n; i++) { /* drain what the streams sent */
            char tmp[65536];
            while (recv(fds[i], tmp, sizeof(tmp), MSG_DONTWAIT) > 0) {
            }
        }
        sim_sleep_ms(100);
    }
    long long total = sim_requests_total(c);
    for (int i = 0; i < n; i++) {
        close(fds[i]);
    }
    return total;
}

static void
test_upstream_independent_of_browsers(void **state)
{
    struct ctx *c = *state;
    cJSON *m = poll_until(c->admin, "/api/cluster", pred_healthy_again, 10000);
    cJSON_Delete(m);
    char cookie[128];
    session_cookie(c->srv, "admin", c->srv->admin_pw, cookie, sizeof(cookie));
    long long one = upstream_with_clients(c, cookie, 1, 5000);
    long long twenty = upstream_with_clients(c, cookie, 20, 5000);
    print_message("upstream requests in 5 s: %lld with 1 SSE client, %lld with 20 (and 20 "
                  "polling clients)\n",
                  one, twenty);
    assert_true(one > 0);
    /* the watchers' own rhythm (1 s blocking slices, 2 s polls) jitters by a request or
     * two per resource over 5 s; browsers add nothing */
    assert_true((double)twenty <= 1.1 * (double)one + 5);
}

static void
test_failover_and_unreachable(void **state)
{
    struct ctx *c = *state;
    /* a second console whose first configured agent is down */
    sim_do(c, "POST", "/sim/servers/consul-1/stop", NULL);
    char extra[1400];
    snprintf(extra, sizeof(extra),
             "\"consul\":{\"addresses\":%s,\"exporter_port\":%d,\"connect_timeout_ms\":500}",
             c->addresses, c->metrics_port);
    struct srv *s2 = srv_start(extra);
    assert_non_null(s2);
    struct client *a2 = srv_login(s2, "admin", s2->admin_pw);
    assert_non_null(a2);
    cJSON *m = poll_until(a2, "/api/cluster", pred_reachable, 10000);
    assert_non_null(m);
    assert_true(json_get_bool(m, "reachable", 0));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(m, "servers")), 4);
    cJSON_Delete(m);
    client_free(a2);
    srv_stop(s2);
    sim_do(c, "POST", "/sim/servers/consul-1/start", NULL);

    /* every agent stops: unreachable, with the last known servers kept */
    m = poll_until(c->admin, "/api/cluster", pred_healthy_again, 10000);
    cJSON_Delete(m);
    char path[64];
    long long t0 = sim_now_ms();
    for (int i = 1; i <= N_SERVERS; i++) {
        snprintf(path, sizeof(path), "/sim/servers/consul-%d/stop", i);
        sim_do(c, "POST", path, NULL);
    }
    m = poll_until(c->admin, "/api/cluster", pred_unreachable, 10000);
    assert_non_null(m);
    assert_true(pred_unreachable(m));
    print_message("reachable:false %lld ms after stopping every agent\n", sim_now_ms() - t0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(m, "servers")), 4);
    assert_true(json_get_num(m, "age_ms", -1) >= 0);
    assert_true(cJSON_IsString(cJSON_GetObjectItem(m, "updated_at")));
    cJSON_Delete(m);
    struct resp r = client_req(c->admin, "GET", "/api/health", NULL);
    assert_int_equal(r.status, 200);
    assert_false(json_get_bool(r.json, "reachable", 1));
    resp_free(&r);

    /* and back */
    for (int i = 1; i <= N_SERVERS; i++) {
        snprintf(path, sizeof(path), "/sim/servers/consul-%d/start", i);
        sim_do(c, "POST", path, NULL);
    }
    m = poll_until(c->admin, "/api/cluster", pred_healthy_again, 15000);
    assert_true(m && pred_healthy_again(m));
    cJSON_Delete(m);
}

/* Waits (at most ms) for the end of es; 1 when it ended. */
static int
sse_ended(struct sse *es, int ms)
{
    long long t0 = sim_now_ms();
    int eof = 0;
    while (!eof && sim_now_ms() - t0 < ms) {
        pthread_mutex_lock(&es->mu);
        eof = es->eof;
        pthread_mutex_unlock(&es->mu);
        sim_sleep_ms(10);
    }
    return eof;
}

/* A live-update stream of user, open once its first cluster event (Consul unreachable) came. */
static struct sse *
stream_of(struct srv *s, const char *user, const char *pw)
{
    char cookie[128];
    session_cookie(s, user, pw, cookie, sizeof(cookie));
    struct sse *es = sse_open(s, cookie);
    assert_non_null(es);
    size_t at = 0;
    cJSON *ev = sse_wait(es, &at, "cluster", pred_unreachable, 3000, NULL);
    assert_non_null(ev);
    cJSON_Delete(ev);
    return es;
}

/* A server whose Consul is nowhere (port 9), and its admin logged in (*admin). */
static struct srv *
start_without_consul(struct client **admin)
{
    struct srv *s = srv_start("\"consul\":{\"addresses\":[\"http://127.0.0.1:9\"]}");
    assert_non_null(s);
    *admin = srv_login(s, "admin", s->admin_pw);
    assert_non_null(*admin);
    return s;
}

/* Without any Consul: not ready at first (or already the unreachable model), then the
 * unreachable model; the server stays quick and stops promptly with an SSE client open. */
static void
test_no_consul_and_shutdown(void **state)
{
    (void)state;
    struct client *a;
    struct srv *s = start_without_consul(&a);
    struct resp r = client_req(a, "GET", "/api/cluster", NULL);
    if (r.status == 503) {
        assert_string_equal(json_get_str(cJSON_GetObjectItem(r.json, "error"), "code", ""),
                            "not_ready");
    } else {
        assert_int_equal(r.status, 200);
    }
    resp_free(&r);
    sim_sleep_ms(2200);
    r = client_req(a, "GET", "/api/cluster", NULL);
    assert_int_equal(r.status, 200);
    assert_true(pred_unreachable(r.json));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(r.json, "updated_at")));
    resp_free(&r);
    r = client_req(a, "GET", "/api/health", NULL);
    assert_int_equal(r.status, 200);
    assert_false(json_get_bool(r.json, "known", 1));
    resp_free(&r);

    struct sse *es = stream_of(s, "admin", s->admin_pw);
    client_free(a);

    /* the log stays quiet about the missing Consul */
    char *log = file_read_all(s->log, 1 << 20, NULL);
    int watch_lines = 0;
    for (const char *p = log; p && (p = strstr(p, "WARN watch:")); p++) {
        watch_lines++;
    }
    free(log);
    assert_true(watch_lines <= 2);

    long long t0 = sim_now_ms();
    srv_stop(s); /* SIGTERM, waits for the exit */
    long long took = sim_now_ms() - t0;
    print_message("SIGTERM with an open SSE stream: exited after %lld ms\n", took);
    /* civetweb's loops poll in 2 s quanta: the listeners and the stream's connection are
     * shut at stop so that neither waits one out (it took 2.0 s before) */
    assert_true(took < 1000);
    assert_true(sse_ended(es, 2000)); /* the stream ended */
    sse_close(es);
}

/* A live-update stream does not outlive its session: its user disabled, deleted, or given a
 * new password (which ends the user's sessions), the stream ends within a few seconds (the
 * browser then asks again, gets 401 and shows the login page). Another user's stream goes on. */
static void
test_stream_ends_with_session(void **state)
{
    (void)state;
    struct client *a;
    struct srv *s = start_without_consul(&a);
    assert_int_equal(srv_add_user(s, "vera", "viewer", "viewer-pass-123"), 201);
    assert_int_equal(srv_add_user(s, "otto", "viewer", "viewer-pass-456"), 201);
    assert_int_equal(srv_add_user(s, "ida", "viewer", "viewer-pass-789"), 201);
    char cookie[128];
    session_cookie(s, "ida", "viewer-pass-789", cookie, sizeof(cookie));
    struct sse *bystander = sse_open(s, cookie);
    assert_non_null(bystander);
    static const struct {
        const char *user, *pw, *method, *path, *body;
    } ways[] = {
        {"vera", "viewer-pass-123", "PATCH", "/api/users/vera", "{\"disabled\":true}"},
        {"otto", "viewer-pass-456", "PATCH", "/api/users/otto", "{\"password\":\"new-pass-4567\"}"},
        {"otto", "new-pass-4567", "DELETE", "/api/users/otto", NULL},
    };
    for (size_t i = 0; i < sizeof(ways) / sizeof(ways[0]); i++) {
        struct sse *es = stream_of(s, ways[i].user, ways[i].pw);
        struct resp r = client_req(a, ways[i].method, ways[i].path, ways[i].body);
        assert_int_equal(r.status, 200);
        resp_free(&r);
        long long t0 = sim_now_ms();
        if (!sse_ended(es, 5000)) {
            fail_msg("%s %s: the stream of %s is still open after 5 s", ways[i].method,
                     ways[i].path, ways[i].user);
        }
        print_message("%s %s: the stream ended after %lld ms\n", ways[i].method, ways[i].path,
                      sim_now_ms() - t0);
        sse_close(es);
    }
    /* ida's session stands: her stream is open */
    assert_false(sse_ended(bystander, 100));
    sse_close(bystander);
    client_free(a);
    srv_stop(s);
}

static void
test_watch_disabled(void **state)
{
    (void)state;
    struct srv *s = srv_start("\"consul\":{\"watch\":false}");
    assert_non_null(s);
    struct client *a = srv_login(s, "admin", s->admin_pw);
    assert_non_null(a);
    const char *paths[] = {"/api/cluster", "/api/health", "/api/events"};
    for (size_t i = 0; i < ARRAY_LEN(paths); i++) {
        struct resp r = client_req(a, "GET", paths[i], NULL);
        assert_int_equal(r.status, 503);
        assert_string_equal(json_get_str(cJSON_GetObjectItem(r.json, "error"), "code", ""),
                            "watch_disabled");
        resp_free(&r);
    }
    client_free(a);
    srv_stop(s);
}

int
main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cluster_model),
        cmocka_unit_test(test_roles_and_methods),
        cmocka_unit_test(test_health),
        cmocka_unit_test(test_sse_no_leader_and_recovery),
        cmocka_unit_test(test_upstream_independent_of_browsers),
        cmocka_unit_test(test_failover_and_unreachable),
        cmocka_unit_test(test_no_consul_and_shutdown),
        cmocka_unit_test(test_stream_ends_with_session),
        cmocka_unit_test(test_watch_disabled),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
