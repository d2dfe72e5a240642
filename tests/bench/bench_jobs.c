/* bench_jobs: cluster changes as jobs over SSH on the fake-node harness (tests/nodes) at real
 * speed (the simulator's speed 1: Consul's own election, retry-join and autopilot times), 4
 * servers and a spare, through the HTTP API (an operator requests, an approver approves):
 *
 *   - rolling node-add of consul-5: the job's wall time (its started_at to ended_at) against
 *     the simulator's own waits (from consul-5's agent start to its promotion to voter: the
 *     retry-join and autopilot's stabilization time, which no procedure can shorten); target
 *     wall <= 1.1 x waits. Leaderless seconds sampled every 100 ms from every agent's
 *     /v1/status/leader (target 0);
 *   - full-restart node-add (after a rolling remove): the leaderless seconds, as the job
 *     measured them and as sampled;
 *   - a parallel step over 5 nodes: the full-restart's `docker-compose up -d` on every host,
 *     each host's docker-compose slowed by a different delay (0.4 to 2.0 s, a wrapper in the
 *     host's bin/): the group's span against its slowest step (target <= 1.3 x, not the sum).
 *
 * The hosts use the production ports: run it in its own network namespace (scripts/bench.sh
 * does, through build/tests/netns). A job that does not succeed, or files that are not what
 * the change means, is FAILED (exit 1; tests/bench/verdict.h). BENCH_JOB_LOG=1 prints each
 * job's log (with its times) on stderr, to see where a job's time went. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "../http/harness.h"
#include "../http/simctl.h"
#include "../nodes/harness.h"
#include "util.h"
#include "verdict.h"

static struct nodes *H;
static struct srv *S;
static struct client *OP, *ALICE;

/* ---------------------------------------------------------------- leader sampling */

static atomic_int sampling;
static int samples, leaderless_samples;

/* Every 100 ms: does any running agent name a leader (GET /v1/status/leader)? */
static void *
sampler(void *arg)
{
    (void)arg;
    while (atomic_load(&sampling)) {
        long long t0 = sim_now_ms();
        int leader = 0;
        for (int i = 0; i < H->n && !leader; i++) {
            char url[96];
            snprintf(url, sizeof(url), "http://%s:8500/v1/status/leader", H->node[i].address);
            long st = 0;
            char *body = NULL;
            if (sim_http_get(url, &st, &body, NULL) == 0 && st == 200 && body) {
                leader = strlen(body) > 2; /* "" when none */
            }
            free(body);
        }
        samples++;
        leaderless_samples += !leader;
        long long spent = sim_now_ms() - t0;
        if (spent < 100) {
            sim_sleep_ms((int)(100 - spent));
        }
    }
    return NULL;
}

static pthread_t sampler_thread;

static void
sample_start(void)
{
    samples = leaderless_samples = 0;
    atomic_store(&sampling, 1);
    pthread_create(&sampler_thread, NULL, sampler, NULL);
}

/* The leaderless seconds sampled since sample_start. */
static double
sample_stop(void)
{
    atomic_store(&sampling, 0);
    pthread_join(sampler_thread, NULL);
    return leaderless_samples * 0.1;
}

/* ---------------------------------------------------------------- jobs */

static int64_t
rfc3339_ms(const char *t)
{
    struct tm tm = {0};
    const char *rest = t ? strptime(t, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
    if (!rest) {
        return 0;
    }
    return (int64_t)timegm(&tm) * 1000 + (*rest == '.' ? atoi(rest + 1) : 0);
}

/* Requests body, approves it, waits for its end; the job, or NULL (reported). */
static cJSON *
run_job(const char *body)
{
    struct resp r = client_req(OP, "POST", "/api/jobs", body);
    if (r.status != 201 || strcmp(json_get_str(r.json, "state", ""), "awaiting_approval") != 0) {
        fprintf(stderr, "bench: %s: %ld %.2000s\n", body, r.status, r.body ? r.body : "");
        resp_free(&r);
        return NULL;
    }
    int64_t id = (int64_t)json_get_num(r.json, "id", 0);
    resp_free(&r);
    char path[96];
    snprintf(path, sizeof(path), "/api/jobs/%lld/approve", (long long)id);
    r = client_req(ALICE, "POST", path, "{}");
    long st = r.status;
    resp_free(&r);
    if (st != 200) {
        return NULL;
    }
    snprintf(path, sizeof(path), "/api/jobs/%lld", (long long)id);
    long long end = sim_now_ms() + 600000;
    for (;;) {
        r = client_req(OP, "GET", path, NULL);
        const char *state = json_get_str(r.json, "state", "");
        if ((strcmp(state, "queued") && strcmp(state, "running")) || sim_now_ms() > end) {
            cJSON *j = r.json;
            r.json = NULL;
            resp_free(&r);
            if (strcmp(json_get_str(j, "state", ""), "succeeded") != 0) {
                char *t = json_print(cJSON_GetObjectItemCaseSensitive(j, "result"));
                fprintf(stderr, "bench: job %lld is %s: %s\n", (long long)id,
                        json_get_str(j, "state", ""), t ? t : "");
                free(t);
            }
            if (getenv("BENCH_JOB_LOG")) {
                /* BENCH_JOB_LOG=1: each job's log on stderr, to see where the time went */
                char lp[96];
                snprintf(lp, sizeof(lp), "/api/jobs/%lld/log", (long long)id);
                struct resp l = client_req(OP, "GET", lp, NULL);
                fprintf(stderr, "%s\n", l.body ? l.body : "");
                resp_free(&l);
            }
            return j;
        }
        resp_free(&r);
        sim_sleep_ms(100);
    }
}

/* Where a job's time went: before the first step (the prechecks and plan again), each step
 * of 0.3 s or more, and the rest. */
static void
print_breakdown(const cJSON *j)
{
    int64_t t0 = rfc3339_ms(json_get_str(j, "started_at", ""));
    int64_t t1 = rfc3339_ms(json_get_str(j, "ended_at", ""));
    int64_t first = 0, listed = 0;
    const cJSON *s;
    cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(j, "steps"))
    {
        int64_t a = rfc3339_ms(json_get_str(s, "started_at", ""));
        int64_t b = rfc3339_ms(json_get_str(s, "ended_at", ""));
        if (a && (!first || a < first)) {
            first = a;
        }
        if (a && b - a >= 300) {
            printf("      %5.1f s  %.70s\n", (double)(b - a) / 1000.0,
                   json_get_str(s, "title", ""));
            listed += b - a;
        }
    }
    printf("      %5.1f s  prechecks and plan again, before the first step\n",
           (double)(first - t0) / 1000.0);
    printf("      %5.1f s  the other steps (each under 0.3 s) and between steps\n",
           (double)(t1 - first - listed) / 1000.0);
}

static int
job_ok(const cJSON *j)
{
    return j && strcmp(json_get_str(j, "state", ""), "succeeded") == 0;
}

static double
job_wall_s(const cJSON *j)
{
    return (double)(rfc3339_ms(json_get_str(j, "ended_at", "")) -
                    rfc3339_ms(json_get_str(j, "started_at", ""))) /
           1000.0;
}

static double
job_leaderless(const cJSON *j)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "result"),
                                                      "leaderless_s");
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

/* Every server's file lists 127.0.0.15 (want 1) or not (want 0), and consul-5's exists
 * (want 1) or not. */
static int
files_mean(int want)
{
    int ok = 1;
    for (int i = 0; i < H->n; i++) {
        char *text = nodes_read_file(H->node[i].compose_file);
        if (i < 4 || want) {
            ok &= text && (strstr(text, "-retry-join=127.0.0.15") != NULL) == want;
        } else {
            ok &= text == NULL;
        }
        free(text);
    }
    return ok;
}

/* ---- consul-5's agent: from its start to voter, as the simulator saw it */

static atomic_int watching;
static long long agent_started_ms, agent_voter_ms;

static void *
voter_watch(void *arg)
{
    (void)arg;
    agent_started_ms = agent_voter_ms = 0;
    while (atomic_load(&watching) && !agent_voter_ms) {
        long st = 0;
        char *body = NULL;
        sim_ctl(H->sim, "GET", "/sim/servers/127.0.0.15", NULL, &st, &body);
        cJSON *j = st == 200 ? cJSON_Parse(body) : NULL;
        free(body);
        long long now = sim_now_ms();
        if (j && json_get_bool(j, "running", 0) && !agent_started_ms) {
            agent_started_ms = now;
        }
        if (j && json_get_bool(j, "in_raft", 0) && json_get_bool(j, "voter", 0) &&
            agent_started_ms) {
            agent_voter_ms = now;
        }
        cJSON_Delete(j);
        sim_sleep_ms(20);
    }
    return NULL;
}

/* ---- the parallel step: every host's docker-compose slowed by its own delay */

static const double delays[] = {0.4, 0.8, 1.2, 1.6, 2.0};

static int
slow_compose(int on)
{
    for (int i = 0; i < H->n; i++) {
        char *tool = xasprintf("%s/bin/docker-compose", H->node[i].root);
        char *real = xasprintf("%s/bin/docker-compose.real", H->node[i].root);
        int rc;
        if (on) {
            rc = rename(tool, real);
            char *text = xasprintf("#!/bin/sh\n# bench_jobs: a slow docker-compose (%.1f s)\n"
                                   "case \"$*\" in *' up -d'*|*' down'*) sleep %.1f;; esac\n"
                                   "exec '%s' \"$@\"\n",
                                   delays[i], delays[i], real);
            rc = rc ? rc : nodes_write_file(tool, text);
            rc = rc ? rc : chmod(tool, 0755);
            free(text);
        } else {
            rc = rename(real, tool);
        }
        free(tool);
        free(real);
        if (rc != 0) {
            return -1;
        }
    }
    return 0;
}

/* The span of the steps whose command contains what (first start to last end), the slowest
 * one and the sum, in seconds; the number of such steps. */
static int
group_times(const cJSON *j, const char *what, double *span, double *slowest, double *sum)
{
    int64_t first = 0, last = 0;
    int n = 0;
    *slowest = *sum = 0;
    const cJSON *s;
    cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(j, "steps"))
    {
        if (!strstr(json_get_str(s, "command", ""), what)) {
            continue;
        }
        int64_t a = rfc3339_ms(json_get_str(s, "started_at", ""));
        int64_t b = rfc3339_ms(json_get_str(s, "ended_at", ""));
        first = n == 0 || a < first ? a : first;
        last = b > last ? b : last;
        double d = (double)(b - a) / 1000.0;
        *slowest = d > *slowest ? d : *slowest;
        *sum += d;
        n++;
    }
    *span = (double)(last - first) / 1000.0;
    return n;
}

/* ---------------------------------------------------------------- main */

static int
setup(void)
{
    struct nodes_opts o = {.servers = 4, .spares = 1, .speed = 1, .seed = 3};
    H = nodes_start(&o);
    if (!H) {
        return -1;
    }
    char *text = nodes_inventory_json(H);
    cJSON *inv = cJSON_Parse(text);
    free(text);
    char *consul = json_print(cJSON_GetObjectItemCaseSensitive(inv, "consul"));
    char extra[2048];
    snprintf(extra, sizeof(extra),
             "\"consul\":%.*s,\"connect_timeout_ms\":500},"
             "\"jobs\":{\"gate_timeout_s\":180,\"command_timeout_s\":120}",
             (int)strlen(consul) - 1, consul);
    free(consul);
    S = srv_start(extra);
    struct client *admin = S ? srv_login(S, "admin", S->admin_pw) : NULL;
    if (!admin || srv_add_user(S, "olga", "operator", "operator-pw-1") != 201 ||
        srv_add_user(S, "alice", "approver", "approver-pw-1") != 201) {
        cJSON_Delete(inv);
        client_free(admin);
        return -1;
    }
    OP = srv_login(S, "olga", "operator-pw-1");
    ALICE = srv_login(S, "alice", "approver-pw-1");
    int rc = OP && ALICE ? 0 : -1;
    const cJSON *n;
    cJSON_ArrayForEach(n, cJSON_GetObjectItemCaseSensitive(inv, "nodes"))
    {
        cJSON *body = cJSON_Duplicate(n, 1);
        cJSON_DeleteItemFromObjectCaseSensitive(body, "host_key");
        char *b = json_print(body);
        cJSON_Delete(body);
        struct resp r = client_req(admin, "POST", "/api/nodes", b);
        free(b);
        rc |= r.status == 201 ? 0 : -1;
        resp_free(&r);
        char path[128], fp[200];
        snprintf(path, sizeof(path), "/api/nodes/%s/trust-hostkey", json_get_str(n, "name", ""));
        snprintf(fp, sizeof(fp), "{\"fingerprint\":\"%s\"}",
                 json_get_str(cJSON_GetObjectItemCaseSensitive(n, "host_key"), "fingerprint", ""));
        r = client_req(admin, "POST", path, fp);
        rc |= r.status == 200 ? 0 : -1;
        resp_free(&r);
    }
    cJSON_Delete(inv);
    client_free(admin);
    /* the watchers see the cluster before the first request */
    for (int i = 0; i < 100; i++) {
        struct resp r = client_req(OP, "GET", "/api/cluster", NULL);
        int healthy = json_get_bool(r.json, "healthy", 0);
        resp_free(&r);
        if (healthy) {
            break;
        }
        sim_sleep_ms(100);
    }
    return rc;
}

static void
row(const char *metric, const char *value, const char *target, const char *verdict)
{
    printf("  %-58s %18s   %-12s %s\n", metric, value, target, verdict);
}

int
main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (setup() != 0) {
        fprintf(stderr, "bench: cannot start the harness and consulate (run it in its own network "
                        "namespace: build/tests/netns)\n");
        verdict_check(0, "setup");
        nodes_stop(H);
        return verdict_exit();
    }
    printf("jobs benchmark: 4 servers + 1 spare on the fake-node harness, simulator speed 1 "
           "(Consul's own timing), over SSH\n");
    printf("  %-58s %18s   %-12s %s\n", "metric", "value", "target", "");
    char v[64];

    /* 1. rolling node-add */
    pthread_t w;
    atomic_store(&watching, 1);
    pthread_create(&w, NULL, voter_watch, NULL);
    sample_start();
    cJSON *add = run_job("{\"type\":\"node-add\",\"node\":\"consul-5\",\"strategy\":\"rolling\","
                         "\"reason\":\"bench\"}");
    double rolling_leaderless = sample_stop();
    atomic_store(&watching, 0);
    pthread_join(w, NULL);
    int ok = job_ok(add) && files_mean(1);
    double wall = add ? job_wall_s(add) : 0;
    double waits = agent_voter_ms && agent_started_ms
                       ? (double)(agent_voter_ms - agent_started_ms) / 1000.0
                       : 0;
    snprintf(v, sizeof(v), "%.1f s", wall);
    row("rolling node-add: the job's wall time", v, "",
        verdict_check(ok, "the rolling node-add did not succeed as it should"));
    snprintf(v, sizeof(v), "%.1f s", waits);
    row("  the simulator's waits (consul-5 start -> voter)", v, "reported",
        verdict_check(waits > 0, "consul-5 never became a voter"));
    snprintf(v, sizeof(v), "%.2fx", waits > 0 ? wall / waits : 0);
    row("  wall / waits", v, "<= 1.1x", verdict_target(waits > 0 && wall <= 1.1 * waits));
    snprintf(v, sizeof(v), "%.1f s (%d samples)", rolling_leaderless, samples);
    row("  leaderless, sampled every 100 ms", v, "0", verdict_target(rolling_leaderless == 0));
    if (add) {
        printf("    where the wall time went:\n");
        print_breakdown(add);
    }
    cJSON_Delete(add);

    /* back to four (rolling) */
    cJSON *rm = run_job("{\"type\":\"node-remove\",\"node\":\"consul-5\",\"strategy\":\"rolling\","
                        "\"reason\":\"bench\"}");
    ok = job_ok(rm) && files_mean(0);
    snprintf(v, sizeof(v), "%.1f s", rm ? job_wall_s(rm) : 0);
    row("rolling node-remove: the job's wall time", v, "reported",
        verdict_check(ok, "the rolling node-remove did not succeed as it should"));
    cJSON_Delete(rm);

    /* 2. full-restart node-add, every docker-compose slowed by its own delay */
    if (slow_compose(1) != 0) {
        verdict_check(0, "cannot slow docker-compose on the hosts");
    }
    sample_start();
    add = run_job("{\"type\":\"node-add\",\"node\":\"consul-5\",\"strategy\":\"full-restart\","
                  "\"reason\":\"bench\"}");
    double full_sampled = sample_stop();
    slow_compose(0);
    ok = job_ok(add) && files_mean(1);
    snprintf(v, sizeof(v), "%.1f s", add ? job_wall_s(add) : 0);
    row("full-restart node-add: the job's wall time", v, "reported",
        verdict_check(ok, "the full-restart node-add did not succeed as it should"));
    snprintf(v, sizeof(v), "%.1f s", add ? job_leaderless(add) : 0);
    row("  leaderless, as the job measured it", v, "reported",
        verdict_check(add && job_leaderless(add) > 0, "the job measured no leaderless window"));
    snprintf(v, sizeof(v), "%.1f s (%d samples)", full_sampled, samples);
    row("  leaderless, sampled every 100 ms", v, "reported", "");
    double span = 0, slowest = 0, sum = 0;
    int n = add ? group_times(add, "up -d", &span, &slowest, &sum) : 0;
    snprintf(v, sizeof(v), "%.2f s", span);
    row("parallel up -d over 5 hosts (delays 0.4-2.0 s): span", v, "",
        verdict_check(n == 5, "the full-restart did not run up -d on 5 hosts"));
    snprintf(v, sizeof(v), "%.2f / %.2f s", slowest, sum);
    row("  slowest host / sum over the hosts", v, "reported", "");
    snprintf(v, sizeof(v), "%.2fx", slowest > 0 ? span / slowest : 0);
    row("  span / slowest", v, "<= 1.3x", verdict_target(slowest > 0 && span <= 1.3 * slowest));
    n = add ? group_times(add, " down", &span, &slowest, &sum) : 0;
    snprintf(v, sizeof(v), "%.2f / %.2f / %.2f s", span, slowest, sum);
    row("parallel down over 4 hosts: span / slowest / sum", v, "reported", n == 4 ? "" : "?");
    cJSON_Delete(add);

    client_free(OP);
    client_free(ALICE);
    srv_stop(S);
    nodes_stop(H);
    return verdict_exit();
}
