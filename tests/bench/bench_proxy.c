/* bench_proxy: the cost of the Consul proxy. Starts the simulator (one server) and consulate,
 * logs in, and runs wrk (-t2 -c16 -d5s --latency) against GET /v1/catalog/nodes directly on
 * the simulator and through consulate's /api/consul/v1/catalog/nodes, then prints the
 * throughput ratio (target >= 0.9) and the p50/p99 latency added (target p99 <= 1 ms).
 * A program, not a test: a missed target prints MISSED; something that could not run, or
 * error answers (a wrong result) print FAILED and the exit status is 1 (verdict.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../http/harness.h"
#include "../http/simctl.h"
#include "../http/wrk.h"
#include "util.h"
#include "verdict.h"

#define WRK_ARGS "-t2 -c16 -d5s --latency"

static void
row(const char *metric, const char *value, const char *target, const char *verdict)
{
    printf("  %-44s %16s   %-12s %s\n", metric, value, target, verdict);
}

int
main(void)
{
    int status = 1;
    struct srv *srv = NULL;
    char *cookie = NULL;
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

    struct wrk_result warm, d, p, d1, p1;
    wrk_run("-t2 -c16", direct, NULL, "1s", &warm);
    if (wrk_run("-t2 -c16", direct, NULL, "5s", &d) != 0 ||
        wrk_run("-t1 -c1", direct, NULL, "3s", &d1) != 0) {
        fprintf(stderr, "bench_proxy: wrk against the simulator failed\n");
        goto out;
    }
    wrk_run("-t2 -c16", proxied, cookie, "1s", &warm);
    if (wrk_run("-t2 -c16", proxied, cookie, "5s", &p) != 0 ||
        wrk_run("-t1 -c1", proxied, cookie, "3s", &p1) != 0) {
        fprintf(stderr, "bench_proxy: wrk through consulate failed\n");
        goto out;
    }

    printf("proxy benchmark: wrk %s, GET /v1/catalog/nodes (1 simulated server)\n", WRK_ARGS);
    printf("  simulator with no service time: wrk, simulator and consulate share 2 cores\n");
    printf("  %-44s %16s   %-12s\n", "metric", "value", "target");
    char v[64];
    snprintf(v, sizeof(v), "%.0f req/s", d.rps);
    row("throughput, directly to the simulator", v, "",
        verdict_check(!d.non2xx && !d.errors && !d1.non2xx && !d1.errors,
                      "the simulator answered errors"));
    snprintf(v, sizeof(v), "%.0f req/s", p.rps);
    row("throughput, through consulate", v, "",
        verdict_check(!p.non2xx && !p.errors && !p1.non2xx && !p1.errors,
                      "consulate answered errors"));
    double ratio = p.rps / d.rps;
    snprintf(v, sizeof(v), "%.2f", ratio);
    row("throughput ratio (proxy / direct)", v, ">= 0.9", verdict_target(ratio >= 0.9));
    snprintf(v, sizeof(v), "%.3f / %.3f ms", d.p50_ms, d.p99_ms);
    row("latency p50 / p99, direct", v, "", "");
    snprintf(v, sizeof(v), "%.3f / %.3f ms", p.p50_ms, p.p99_ms);
    row("latency p50 / p99, through consulate", v, "", "");
    snprintf(v, sizeof(v), "%.3f ms", p.p50_ms - d.p50_ms);
    row("latency added, p50", v, "", "");
    double added = p.p99_ms - d.p99_ms;
    snprintf(v, sizeof(v), "%.3f ms", added);
    row("latency added, p99", v, "<= 1 ms", verdict_target(added <= 1.0));
    double added1 = p1.p99_ms - d1.p99_ms;
    snprintf(v, sizeof(v), "%.3f / %.3f ms", p1.p50_ms - d1.p50_ms, added1);
    row("latency added p50 / p99, one connection", v, "p99 <= 1 ms",
        added1 <= 1.0 ? "ok (-t1 -c1)" : "MISSED (-t1 -c1)");
    snprintf(v, sizeof(v), "%.0f / %.0f req/s", d1.rps, p1.rps);
    row("throughput direct / proxy, one connection", v, "", "");
    if (p.non2xx || p1.non2xx) {
        printf("  note: %ld non-2xx answers through consulate\n", p.non2xx + p1.non2xx);
    }

    /* The same with the simulator answering in 1 ms, as a real Consul server does when it
     * forwards a catalog read to the leader: here the proxy's own cost is what is compared,
     * not the CPU three processes share on one small machine. */
    long lst = 0;
    char *lbody = NULL;
    if (sim_ctl(sim, "PUT", "/sim/latency", "{\"ms\":1}", &lst, &lbody) != 0 || lst != 200) {
        fprintf(stderr, "bench_proxy: cannot set the simulator's latency\n");
        free(lbody);
        goto out;
    }
    free(lbody);
    struct wrk_result ld, lp;
    if (wrk_run("-t2 -c16", direct, NULL, "5s", &ld) != 0 ||
        wrk_run("-t2 -c16", proxied, cookie, "5s", &lp) != 0) {
        fprintf(stderr, "bench_proxy: wrk with latency failed\n");
        goto out;
    }
    printf("\n  with 1 ms of Consul service time (sim latency 1 ms), wrk %s\n", WRK_ARGS);
    snprintf(v, sizeof(v), "%.0f / %.0f req/s", ld.rps, lp.rps);
    row("throughput direct / through consulate", v, "",
        verdict_check(!ld.non2xx && !ld.errors && !lp.non2xx && !lp.errors,
                      "answers with errors with 1 ms of service time"));
    double lratio = lp.rps / ld.rps;
    snprintf(v, sizeof(v), "%.2f", lratio);
    row("throughput ratio (proxy / direct)", v, ">= 0.9", verdict_target(lratio >= 0.9));
    double ladded = lp.p99_ms - ld.p99_ms;
    snprintf(v, sizeof(v), "%.3f ms", ladded);
    row("latency added, p99", v, "<= 1 ms", verdict_target(ladded <= 1.0));
    status = verdict_exit();
out:
    free(cookie);
    srv_stop(srv);
    sim_stop(sim);
    return status;
}
