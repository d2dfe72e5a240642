/* bench_cluster: the cost of the live cluster model. Starts the simulator (4 servers, 3
 * clients) and consulate (256 worker threads), then measures:
 *   - GET /api/cluster throughput against the trivial GET /healthz in the same binary, with
 *     wrk -t2 -c16 -d5s and a session cookie (target ratio >= 0.5);
 *   - upstream Consul requests per minute (simulator counters over 20 s, scaled) with 100
 *     open SSE clients against 1 (target <= 1.1x);
 *   - the server's memory: VmRSS idle, and VmRSS/VmHWM with 100 SSE clients plus wrk load
 *     (targets <= 12 MB idle, <= 48 MB loaded).
 * A program, not a test: a missed target prints MISSED; something that could not run, or a
 * wrong answer (error responses, SSE clients that never get the cluster state) prints FAILED
 * and the exit status is 1 (tests/bench/verdict.h). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../http/harness.h"
#include "../http/simctl.h"
#include "../http/wrk.h"
#include "util.h"
#include "verdict.h"

#define IP_BASE "127.0.0.71"
#define N_SERVERS 4
#define N_SSE 100
#define FANOUT_WINDOW_MS 20000

/* Opens n raw SSE connections to /api/events; returns how many opened. */
static int
sse_open_n(struct srv *s, const char *cookie, int *fds, int n)
{
    int opened = 0;
    for (int i = 0; i < n; i++) {
        /* not inherited by wrk: its event loop only takes small fd numbers */
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s->port)};
        inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
            close(fd);
            break;
        }
        char req[512];
        int len = snprintf(req, sizeof(req),
                           "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nCookie: %s\r\n\r\n",
                           s->port, cookie);
        if (write(fd, req, (size_t)len) != len) {
            close(fd);
            break;
        }
        fds[opened++] = fd;
    }
    return opened;
}

/* Reads what the streams sent; returns how many saw an "event: cluster" frame so far. */
static int
sse_drain(int *fds, int n, int *seen)
{
    int count = 0;
    for (int i = 0; i < n; i++) {
        char tmp[65536];
        ssize_t got;
        while ((got = recv(fds[i], tmp, sizeof(tmp) - 1, MSG_DONTWAIT)) > 0) {
            tmp[got] = '\0';
            if (strstr(tmp, "event: cluster")) {
                seen[i] = 1;
            }
        }
        count += seen[i];
    }
    return count;
}

static void
sse_close_n(int *fds, int n)
{
    for (int i = 0; i < n; i++) {
        close(fds[i]);
    }
}

static long long
upstream_total(struct sim *sim)
{
    long st = 0;
    char *out = NULL;
    sim_ctl(sim, "GET", "/sim/requests", NULL, &st, &out);
    cJSON *j = out ? cJSON_Parse(out) : NULL;
    long long n = (long long)json_get_num(j, "total", -1);
    cJSON_Delete(j);
    free(out);
    return n;
}

/* Upstream requests per minute while the n SSE clients fds are open (measured over the
 * window); *live gets how many of them received the cluster state. */
static double
fanout_per_min(struct sim *sim, int *fds, int opened, int *live)
{
    int seen[N_SSE] = {0};
    sim_sleep_ms(1000);
    long st = 0;
    sim_ctl(sim, "POST", "/sim/requests/reset", NULL, &st, NULL);
    long long t0 = sim_now_ms();
    while (sim_now_ms() - t0 < FANOUT_WINDOW_MS) {
        sse_drain(fds, opened, seen);
        sim_sleep_ms(200);
    }
    long long total = upstream_total(sim);
    double minutes = (double)(sim_now_ms() - t0) / 60000.0;
    *live = sse_drain(fds, opened, seen);
    return (double)total / minutes;
}

static long
proc_kb(pid_t pid, const char *field)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long v = -1;
    char line[256];
    size_t fl = strlen(field);
    while (f && fgets(line, sizeof(line), f)) {
        if (strncmp(line, field, fl) == 0 && line[fl] == ':') {
            v = strtol(line + fl + 1, NULL, 10);
        }
    }
    if (f) {
        fclose(f);
    }
    return v;
}

/* Resets VmHWM of pid to its current RSS (Linux: "5" > clear_refs). Returns 0 on success. */
static int
reset_hwm(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/clear_refs", (int)pid);
    FILE *f = fopen(path, "w");
    if (!f) {
        return -1;
    }
    int rc = fputs("5", f) < 0;
    rc |= fclose(f) != 0;
    return rc ? -1 : 0;
}

static void
row(const char *metric, const char *value, const char *target, const char *verdict)
{
    printf("  %-52s %18s   %-10s %s\n", metric, value, target, verdict);
}

int
main(void)
{
    int status = 1;
    struct sim *sim = NULL;
    struct srv *srv = NULL;
    char *cookie = NULL, *cookie_hdr = NULL;
    int port = sim_free_port(IP_BASE, N_SERVERS);
    if (port < 0) {
        fprintf(stderr, "bench_cluster: no free exporter port on " IP_BASE "…\n");
        return 1;
    }
    char args[256];
    snprintf(args, sizeof(args),
             "--servers %d --clients 3 --speed 20 --ip-base " IP_BASE " --metrics-port %d",
             N_SERVERS, port);
    sim = sim_start(args);
    if (!sim) {
        fprintf(stderr, "bench_cluster: cannot start the simulator\n");
        goto out;
    }
    char cfg[1600];
    /* 100 streams from one user, over the default per-user cap (and the closed first stream
     * may count for another second); threads/2 above 100 for the total cap */
    size_t o = (size_t)snprintf(cfg, sizeof(cfg),
                                "\"threads\":256,\"limits\":{\"sse_streams_per_user\":128},"
                                "\"consul\":{\"addresses\":[");
    for (int i = 0; i < sim->n_servers; i++) {
        o += (size_t)snprintf(cfg + o, sizeof(cfg) - o, "%s\"%s\"", i ? "," : "",
                              sim->servers[i].http);
    }
    snprintf(cfg + o, sizeof(cfg) - o, "],\"exporter_port\":%d}", port);
    srv = srv_start(cfg);
    if (!srv || !(cookie = wrk_admin_cookie(srv))) {
        fprintf(stderr, "bench_cluster: cannot start consulate or log in\n");
        goto out;
    }
    cookie_hdr = xasprintf("Cookie: %s", cookie);
    char cluster_url[128], healthz_url[128];
    snprintf(cluster_url, sizeof(cluster_url), "%s/api/cluster", srv->base);
    snprintf(healthz_url, sizeof(healthz_url), "%s/healthz", srv->base);
    /* wait for the model */
    struct client *admin = srv_login(srv, "admin", srv->admin_pw);
    long long t0 = sim_now_ms();
    size_t body_len = 0;
    while (admin && sim_now_ms() - t0 < 10000) {
        struct resp r = client_req(admin, "GET", "/api/cluster", NULL);
        int ready = r.status == 200 && json_get_bool(r.json, "reachable", 0);
        body_len = r.len;
        resp_free(&r);
        if (ready) {
            break;
        }
        sim_sleep_ms(100);
    }
    client_free(admin);
    sim_sleep_ms(2000);
    long idle_rss = proc_kb(srv->pid, "VmRSS");

    char session_url[128];
    snprintf(session_url, sizeof(session_url), "%s/api/session", srv->base);
    struct wrk_result warm, hz, se, cl;
    wrk_run("-t2 -c16", healthz_url, cookie_hdr, "1s", &warm);
    if (wrk_run("-t2 -c16", healthz_url, cookie_hdr, "5s", &hz) != 0 ||
        wrk_run("-t2 -c16", session_url, cookie_hdr, "5s", &se) != 0 ||
        wrk_run("-t2 -c16", cluster_url, cookie_hdr, "5s", &cl) != 0) {
        fprintf(stderr, "bench_cluster: wrk failed\n");
        goto out;
    }
    long after_wrk_rss = proc_kb(srv->pid, "VmRSS");

    /* fan-out: 1 client, then 100 (a closed stream holds its worker until the next write,
     * up to the 15 s heartbeat, so the 100 stay open for the memory figures below) */
    int fds[N_SSE];
    int live1 = 0, live = 0;
    int opened1 = sse_open_n(srv, cookie, fds, 1);
    double per_min_1 = fanout_per_min(sim, fds, opened1, &live1);
    sse_close_n(fds, opened1);
    /* the peak so far is the logins' argon2id (64 MiB, freed at once): measure from here */
    int hwm_reset = reset_hwm(srv->pid);
    int opened = sse_open_n(srv, cookie, fds, N_SSE);
    sim_sleep_ms(1000);
    long sse_rss = proc_kb(srv->pid, "VmRSS");
    double per_min_100 = fanout_per_min(sim, fds, opened, &live);

    /* memory with the 100 SSE clients and wrk load */
    const char *const probe_hdrs[] = {cookie_hdr, NULL};
    long probe_status = 0;
    sim_http("GET", cluster_url, NULL, probe_hdrs, &probe_status, NULL, NULL);
    verdict_check(probe_status == 200, "GET /api/cluster with the SSE clients open did not answer "
                                       "200");
    struct wrk_result loaded;
    wrk_run("-t2 -c16", cluster_url, cookie_hdr, "5s", &loaded);
    long loaded_rss = proc_kb(srv->pid, "VmRSS");
    long hwm = proc_kb(srv->pid, "VmHWM");
    long threads = proc_kb(srv->pid, "Threads");
    sse_close_n(fds, opened);

    double ratio = hz.rps > 0 ? cl.rps / hz.rps : 0;
    double ratio_auth = se.rps > 0 ? cl.rps / se.rps : 0;
    double fan = per_min_1 > 0 ? per_min_100 / per_min_1 : 0;
    printf("cluster benchmark: %d simulated servers, wrk -t2 -c16 -d5s, /api/cluster body %zu "
           "bytes\n",
           N_SERVERS, body_len);
    printf("  %-52s %18s   %-10s %s\n", "metric", "value", "target", "");
    char v[64];
    snprintf(v, sizeof(v), "%.0f req/s", hz.rps);
    row("GET /healthz (trivial handler)", v, "",
        verdict_check(hz.non2xx == 0 && !hz.errors, "GET /healthz answered errors"));
    snprintf(v, sizeof(v), "%.0f req/s", cl.rps);
    row("GET /api/cluster (session cookie)", v, "",
        verdict_check(cl.non2xx == 0 && !cl.errors, "GET /api/cluster answered errors"));
    snprintf(v, sizeof(v), "%.3f / %.3f ms", cl.p50_ms, cl.p99_ms);
    row("  p50 / p99 latency", v, "", "");
    snprintf(v, sizeof(v), "%.0f req/s", se.rps);
    row("GET /api/session (trivial handler behind auth)", v, "",
        verdict_check(se.non2xx == 0 && !se.errors, "GET /api/session answered errors"));
    snprintf(v, sizeof(v), "%.2f", ratio);
    row("/api/cluster vs /healthz throughput", v, ">= 0.5", verdict_target(ratio >= 0.5));
    snprintf(v, sizeof(v), "%.2f", ratio_auth);
    row("/api/cluster vs /api/session (same auth cost)", v, "", "");
    snprintf(v, sizeof(v), "%.0f /min", per_min_1);
    row("upstream Consul requests, 1 SSE client", v, "",
        verdict_check(opened1 == 1 && live1 == 1, "the SSE client did not get the cluster state"));
    snprintf(v, sizeof(v), "%.0f /min", per_min_100);
    row("upstream Consul requests, 100 SSE clients", v, "",
        verdict_check(opened == N_SSE, "not every SSE client could connect"));
    snprintf(v, sizeof(v), "%.2fx", fan);
    row("  100 clients vs 1", v, "<= 1.1x", verdict_target(fan <= 1.1));
    snprintf(v, sizeof(v), "%.1f MB", (double)idle_rss / 1024.0);
    row("RSS idle (watchers running)", v, "<= 12 MB", verdict_target(idle_rss <= 12 * 1024));
    snprintf(v, sizeof(v), "%.1f MB", (double)after_wrk_rss / 1024.0);
    row("RSS after the wrk runs", v, "", "");
    snprintf(v, sizeof(v), "%.1f MB", (double)sse_rss / 1024.0);
    row("RSS with 100 SSE clients", v, "", "");
    snprintf(v, sizeof(v), "%.1f / %.1f MB", (double)loaded_rss / 1024.0, (double)hwm / 1024.0);
    row(hwm_reset == 0 ? "RSS / peak with 100 SSE clients + wrk"
                       : "RSS / peak (incl. login argon2) 100 SSE + wrk",
        v, "<= 48 MB", verdict_target(hwm <= 48 * 1024));
    snprintf(v, sizeof(v), "%ld", threads);
    row("  server threads then", v, "", "");
    snprintf(v, sizeof(v), "%d / %d", live, opened);
    row("  SSE clients that got the cluster state", v, "all",
        verdict_check(live == opened && opened == N_SSE,
                      "not every SSE client got the cluster state"));
    snprintf(v, sizeof(v), "%.0f req/s", loaded.rps);
    row("  /api/cluster with 100 SSE clients open", v, "",
        verdict_check(loaded.non2xx == 0 && !loaded.errors,
                      "GET /api/cluster with the SSE clients open answered errors"));
    status = verdict_exit();
out:
    free(cookie);
    free(cookie_hdr);
    srv_stop(srv);
    sim_stop(sim);
    return status;
}
