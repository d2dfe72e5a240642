/* bench_proxy: the cost of the Consul proxy, measured side by side in one run against the
 * simulator (one server): GET /v1/catalog/nodes directly, through nginx as a plain reverse
 * proxy (keep-alive to the upstream, config generated in a temporary directory, loopback
 * only), and through consulate's /api/consul/v1/catalog/nodes with an admin session (the
 * session and role are checked on every request). wrk -t2 -c16, each target run in turn,
 * twice, the better run of each kept. Targets: consulate ≥ 0.8 × nginx; p99 added over
 * nginx ≤ 1 ms. Then the same with 1 ms of Consul service time.
 * A program, not a test: a missed target prints MISSED; something that could not run, or
 * error answers (a wrong result) print FAILED and the exit status is 1 (verdict.h). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../http/harness.h"
#include "../http/simctl.h"
#include "../http/wrk.h"
#include "util.h"
#include "verdict.h"

#define LOAD "-t2 -c16"
#define DURATION "4s"
#define ROUNDS 2
#define TARGET_VS_NGINX 0.8

static void
row(const char *metric, const char *value, const char *target, const char *verdict)
{
    printf("  %-40s %20s   %-10s %s\n", metric, value, target, verdict);
}

/* nginx as a plain reverse proxy to upstream ("127.0.0.51:PORT") on 127.0.0.1:port. */
struct nginx {
    pid_t pid;
    char dir[64];
    char url[128];
};

static void
nginx_stop(struct nginx *n)
{
    if (n->pid > 0) {
        kill(n->pid, SIGTERM);
        waitpid(n->pid, NULL, 0);
    }
    if (n->dir[0]) {
        char *cmd = xasprintf("rm -rf '%s'", n->dir);
        if (system(cmd) != 0) {
            fprintf(stderr, "bench_proxy: cannot remove %s\n", n->dir);
        }
        free(cmd);
    }
}

static int
nginx_start(struct nginx *n, const char *upstream)
{
    memset(n, 0, sizeof(*n));
    snprintf(n->dir, sizeof(n->dir), "/tmp/consulate-nginx-XXXXXX");
    if (!mkdtemp(n->dir)) {
        n->dir[0] = '\0';
        return -1;
    }
    int port = sim_free_port("127.0.0.1", 1);
    if (port <= 0) {
        return -1;
    }
    char path[128];
    snprintf(path, sizeof(path), "%s/nginx.conf", n->dir);
    FILE *f = fopen(path, "w");
    if (!f) {
        return -1;
    }
    fprintf(f,
            "worker_processes 1;\n"
            "pid %s/nginx.pid;\n"
            "error_log %s/error.log warn;\n"
            "events { worker_connections 1024; }\n"
            "http {\n"
            "    access_log off;\n"
            "    client_body_temp_path %s/tmp; proxy_temp_path %s/tmp;\n"
            "    fastcgi_temp_path %s/tmp; uwsgi_temp_path %s/tmp; scgi_temp_path %s/tmp;\n"
            "    upstream consul { server %s; keepalive 32; }\n"
            "    server {\n"
            "        listen 127.0.0.1:%d;\n"
            "        location / {\n"
            "            proxy_pass http://consul;\n"
            "            proxy_http_version 1.1;\n"
            "            proxy_set_header Connection \"\";\n"
            "        }\n"
            "    }\n"
            "}\n",
            n->dir, n->dir, n->dir, n->dir, n->dir, n->dir, n->dir, upstream, port);
    fclose(f);
    char err[128];
    snprintf(err, sizeof(err), "%s/error.log", n->dir);
    n->pid = fork();
    if (n->pid == 0) {
        execlp("nginx", "nginx", "-p", n->dir, "-c", path, "-e", err, "-g", "daemon off;",
               (char *)NULL);
        _exit(127);
    }
    snprintf(n->url, sizeof(n->url), "http://127.0.0.1:%d/v1/catalog/nodes", port);
    for (int i = 0; i < 100; i++) {
        long st = 0;
        if (sim_http_get(n->url, &st, NULL, NULL) == 0 && st == 200) {
            return 0;
        }
        usleep(50000);
    }
    return -1;
}

/* The better of ROUNDS runs of each target, run in turn so that the machine's noise falls
 * on all of them alike. */
struct target {
    const char *name;
    const char *url;
    const char *header;
    struct wrk_result best;
};

static int
measure(struct target *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct wrk_result warm;
        wrk_run(LOAD, t[i].url, t[i].header, "1s", &warm);
        memset(&t[i].best, 0, sizeof(t[i].best));
    }
    for (int round = 0; round < ROUNDS; round++) {
        for (size_t i = 0; i < n; i++) {
            struct wrk_result w;
            if (wrk_run(LOAD, t[i].url, t[i].header, DURATION, &w) != 0) {
                fprintf(stderr, "bench_proxy: wrk on %s failed\n", t[i].name);
                return -1;
            }
            if (w.rps > t[i].best.rps) {
                t[i].best = w;
            }
        }
    }
    return 0;
}

/* Prints the table of one scenario. Returns 1 when a target was missed. */
static int
report(const char *title, const struct target *t)
{
    const struct wrk_result *d = &t[0].best, *n = &t[1].best, *c = &t[2].best;
    char v[64];
    printf("\n  %s\n", title);
    printf("  %-40s %20s   %-10s\n", "metric", "value", "target");
    for (int i = 0; i < 3; i++) {
        char metric[96];
        snprintf(metric, sizeof(metric), "throughput, %s", t[i].name);
        snprintf(v, sizeof(v), "%.0f req/s", t[i].best.rps);
        char what[128];
        snprintf(what, sizeof(what), "%s answered errors or non-2xx statuses", t[i].name);
        row(metric, v, "", verdict_check(!t[i].best.non2xx && !t[i].best.errors, what));
    }
    double vs_nginx = c->rps / n->rps;
    snprintf(v, sizeof(v), "%.2f", vs_nginx);
    row("throughput, consulate / nginx", v, ">= 0.8",
        verdict_target(vs_nginx >= TARGET_VS_NGINX));
    snprintf(v, sizeof(v), "%.2f / %.2f", n->rps / d->rps, c->rps / d->rps);
    row("throughput vs direct, nginx / consulate", v, "", "");
    for (int i = 0; i < 3; i++) {
        char metric[96];
        snprintf(metric, sizeof(metric), "latency p50 / p99, %s", t[i].name);
        snprintf(v, sizeof(v), "%.3f / %.3f ms", t[i].best.p50_ms, t[i].best.p99_ms);
        row(metric, v, "", "");
    }
    double added = c->p99_ms - n->p99_ms;
    snprintf(v, sizeof(v), "%.3f ms", added);
    row("latency p99 added over nginx", v, "<= 1 ms", verdict_target(added <= 1.0));
    return vs_nginx < TARGET_VS_NGINX || added > 1.0;
}

int
main(void)
{
    int status = 1;
    struct srv *srv = NULL;
    char *cookie = NULL;
    struct nginx ngx = {0};
    struct sim *sim = sim_start("--servers 1 --ip-base 127.0.0.51");
    if (!sim) {
        fprintf(stderr, "bench_proxy: cannot start the simulator\n");
        goto out;
    }
    char direct[256], proxied[256];
    snprintf(direct, sizeof(direct), "%s/v1/catalog/nodes", sim->servers[0].http);
    /* wait for a leader so that the catalog answers 200 */
    for (int i = 0; i < 200; i++) {
        long st = 0;
        if (sim_http_get(direct, &st, NULL, NULL) == 0 && st == 200) {
            break;
        }
        usleep(50000);
    }
    if (nginx_start(&ngx, sim->servers[0].http + strlen("http://")) != 0) {
        fprintf(stderr, "bench_proxy: cannot start nginx (is nginx-light installed?)\n");
        goto out;
    }
    char cfg[512];
    snprintf(cfg, sizeof(cfg), "\"consul\":{\"addresses\":[\"%s\"],\"watch\":false}",
             sim->servers[0].http);
    log_set_quiet(1);
    srv = srv_start(cfg);
    if (!srv) {
        fprintf(stderr, "bench_proxy: cannot start consulate\n");
        goto out;
    }
    char *sc = wrk_admin_cookie(srv);
    cookie = sc ? xasprintf("Cookie: %s", sc) : NULL;
    free(sc);
    if (!cookie) {
        fprintf(stderr, "bench_proxy: cannot log in\n");
        goto out;
    }
    snprintf(proxied, sizeof(proxied), "%s/api/consul/v1/catalog/nodes", srv->base);
    struct target t[] = {
        {.name = "direct", .url = direct},
        {.name = "nginx", .url = ngx.url},
        {.name = "consulate", .url = proxied, .header = cookie},
    };

    printf("proxy benchmark: wrk %s -d%s, best of %d runs each, GET /v1/catalog/nodes "
           "(1 simulated server)\n",
           LOAD, DURATION, ROUNDS);
    printf("  direct: the simulator; nginx: a plain reverse proxy (keep-alive upstream);\n"
           "  consulate: /api/consul/ with a session, checked with its role on every request;\n"
           "  wrk, the simulator and the proxy share this machine's cores\n");
    if (measure(t, 3) != 0) {
        goto out;
    }
    report("simulator with no service time", t);

    /* The same with the simulator answering in 1 ms, as a real Consul server does when it
     * forwards a catalog read to the leader. */
    long lst = 0;
    char *lbody = NULL;
    if (sim_ctl(sim, "PUT", "/sim/latency", "{\"ms\":1}", &lst, &lbody) != 0 || lst != 200) {
        fprintf(stderr, "bench_proxy: cannot set the simulator's latency\n");
        free(lbody);
        goto out;
    }
    free(lbody);
    if (measure(t, 3) != 0) {
        goto out;
    }
    report("with 1 ms of Consul service time (simulator latency 1 ms)", t);
    status = verdict_exit();
out:
    free(cookie);
    srv_stop(srv);
    nginx_stop(&ngx);
    sim_stop(sim);
    return status;
}
