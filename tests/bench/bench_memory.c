/* bench_memory: what holding many connections costs the server. Starts the simulator and
 * consulate with its default limits (512 worker threads), then reports the process's RSS
 * beside its own memory (Anonymous and Private_Dirty from /proc/PID/smaps_rollup):
 *   - idle, with the default threads and with threads 64 (the old default, the baseline);
 *   - with 200 idle sockets (half of them a request that never ends) and 100 live-update
 *     streams open — the load the exhaustion test holds;
 * target: that load costs at most 32 MB RSS over the old default's idle server. It also
 * measures in this process what one worker's SQLite connection (after a session lookup) and
 * one curl handle (after a request) hold, the two things a worker thread keeps for itself.
 * A program, not a test: the exit status is 1 only when something could not run. */
#include <arpa/inet.h>
#include <malloc.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>
#include <sqlite3.h>

#include "../http/harness.h"
#include "../http/rawhttp.h"
#include "../http/simctl.h"
#include "../http/wrk.h"
#include "auth.h"
#include "config.h"
#include "store.h"
#include "util.h"

#define IP_BASE "127.0.0.131"
#define N_IDLE 200
#define N_SSE 100
#define TARGET_MB 32.0

struct mem {
    long rss, anon, dirty, stacks, threads; /* kB, kB, kB, kB, count */
};

/* field: value kB from a /proc file of pid; -1 when absent. */
static long
proc_field(pid_t pid, const char *file, const char *field)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
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

/* kB resident in the worker threads' stacks: the anonymous mappings as large as civetweb's
 * compiled-in 100 KiB stack. */
static long
stacks_kb(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
    FILE *f = fopen(path, "r");
    long total = 0, size = 0;
    int anon = 0;
    char line[512];
    while (f && fgets(line, sizeof(line), f)) {
        char name[256] = "";
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %255s", &lo, &hi, name) >= 2 &&
            strchr(line, '-') < strchr(line, ' ')) {
            anon = name[0] == '\0' && strstr(line, "rw-p");
            size = (long)((hi - lo) / 1024);
        } else if (strncmp(line, "Rss:", 4) == 0 && anon && size == 100) {
            total += strtol(line + 4, NULL, 10);
        }
    }
    if (f) {
        fclose(f);
    }
    return total;
}

static struct mem
mem_of(pid_t pid)
{
    struct mem m = {
        .rss = proc_field(pid, "smaps_rollup", "Rss"),
        .anon = proc_field(pid, "smaps_rollup", "Anonymous"),
        .dirty = proc_field(pid, "smaps_rollup", "Private_Dirty"),
        .stacks = stacks_kb(pid),
        .threads = proc_field(pid, "status", "Threads"),
    };
    return m;
}

static void
row(const char *what, struct mem m, const char *target, const char *verdict)
{
    printf("  %-46s %8.1f MB %8.1f MB %8.1f MB %8.1f MB %7ld   %-10s %s\n", what, m.rss / 1024.0,
           m.anon / 1024.0, m.dirty / 1024.0, m.stacks / 1024.0, m.threads, target, verdict);
}

/* Starts consulate against sim with extra config; waits for its model. NULL on failure. */
static struct srv *
start_server(struct sim *sim, int threads, const char *extra)
{
    char cfg[1600];
    size_t o = (size_t)snprintf(cfg, sizeof(cfg), "\"consul\":{\"addresses\":[");
    for (int i = 0; i < sim->n_servers; i++) {
        o += (size_t)snprintf(cfg + o, sizeof(cfg) - o, "%s\"%s\"", i ? "," : "",
                              sim->servers[i].http);
    }
    snprintf(cfg + o, sizeof(cfg) - o, "]}%s%s", extra ? "," : "", extra ? extra : "");
    srv_threads = threads;
    struct srv *s = srv_start(cfg);
    srv_threads = 32;
    if (!s) {
        return NULL;
    }
    struct client *admin = srv_login(s, "admin", s->admin_pw);
    int64_t t0 = time_mono_ms();
    while (admin && time_mono_ms() - t0 < 15000) {
        struct resp r = client_req(admin, "GET", "/api/cluster", NULL);
        int ready = r.status == 200;
        resp_free(&r);
        if (ready) {
            break;
        }
        usleep(100000);
    }
    client_free(admin);
    sleep(2);
    return s;
}

/* Bytes SQLite holds for one connection that has served a session lookup. */
static long long
sqlite_connection_bytes(const char *db_path)
{
    char err[256];
    sqlite3_int64 before = sqlite3_memory_used();
    struct store *st = store_open(db_path, err, sizeof(err));
    if (!st) {
        return -1;
    }
    struct config cfg;
    config_defaults(&cfg);
    struct auth_user u;
    auth_session_lookup(st, &cfg, "no-such-session-token", &u);
    long long used = (long long)(sqlite3_memory_used() - before);
    store_close(st);
    config_free(&cfg);
    return used;
}

static size_t
discard(char *d, size_t s, size_t n, void *u)
{
    (void)d;
    (void)u;
    return s * n;
}

/* Heap bytes one curl easy handle keeps after one plain-HTTP request (its connection cache
 * included). */
static long long
curl_handle_bytes(const char *url)
{
    struct mallinfo2 a = mallinfo2();
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
    curl_easy_perform(h);
    struct mallinfo2 b = mallinfo2();
    long long used = (long long)b.uordblks - (long long)a.uordblks;
    curl_easy_cleanup(h);
    return used;
}

int
main(void)
{
    int status = 1;
    struct sim *sim = NULL;
    struct srv *old = NULL, *srv = NULL;
    char *cookie = NULL;
    int idle[N_IDLE], sse[N_SSE], n_idle = 0, n_sse = 0;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    sim = sim_start("--servers 3 --speed 20 --ip-base " IP_BASE);
    if (!sim) {
        fprintf(stderr, "bench_memory: cannot start the simulator\n");
        goto out;
    }
    /* the old default: 64 threads */
    old = start_server(sim, 64, NULL);
    if (!old) {
        fprintf(stderr, "bench_memory: cannot start consulate (threads 64)\n");
        goto out;
    }
    struct mem base = mem_of(old->pid);
    srv_stop(old);
    old = NULL;

    srv = start_server(sim, 0, "\"limits\":{\"sse_streams_per_user\":100}");
    if (!srv || !(cookie = wrk_admin_cookie(srv))) {
        fprintf(stderr, "bench_memory: cannot start consulate or log in\n");
        goto out;
    }
    struct mem idle_m = mem_of(srv->pid);

    char req[1024];
    snprintf(req, sizeof(req),
             "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nCookie: %s\r\n\r\n", srv->port,
             cookie);
    for (int i = 0; i < N_SSE; i++) {
        int fd = raw_open(srv->port, NULL, req);
        if (fd < 0) {
            break;
        }
        sse[n_sse++] = fd;
    }
    int live = 0;
    for (int i = 0; i < n_sse; i++) {
        struct raw_resp r;
        live += raw_read_head(sse[i], &r, 10000) == 200;
        raw_resp_free(&r);
    }
    sleep(2);
    struct mem sse_m = mem_of(srv->pid);
    for (int i = 0; i < N_IDLE; i++) {
        int fd = i % 2 ? raw_open(srv->port, NULL, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                       : raw_connect(srv->port, NULL);
        if (fd < 0) {
            break;
        }
        idle[n_idle++] = fd;
    }
    sleep(2);
    struct mem load_m = mem_of(srv->pid);
    long hwm = proc_field(srv->pid, "status", "VmHWM");

    double cost_mb = (load_m.rss - base.rss) / 1024.0;
    int met = cost_mb <= TARGET_MB && live == N_SSE && n_idle == N_IDLE;
    long long sq = sqlite_connection_bytes(srv->db);
    char url[160];
    snprintf(url, sizeof(url), "%s/v1/status/leader", sim->servers[0].http);
    long long cu = curl_handle_bytes(url);

    printf("memory benchmark: consulate serve, defaults (512 worker threads), a simulated "
           "3-server datacenter\n");
    printf("  %-46s %11s %11s %11s %11s %7s   %-10s\n", "state", "RSS", "anonymous", "priv. dirty",
           "stacks", "threads", "target");
    row("idle, threads 64 (the old default)", base, "", "");
    row("idle, defaults", idle_m, "", "");
    char what[96];
    snprintf(what, sizeof(what), "%d live-update streams", live);
    row(what, sse_m, "", "");
    snprintf(what, sizeof(what), "  + %d idle sockets", n_idle);
    char target[32];
    snprintf(target, sizeof(target), "+%.0f MB", TARGET_MB);
    row(what, load_m, target, met ? "ok" : "MISSED");
    printf("  %-46s %8.1f MB   (over the old default's idle RSS; peak VmHWM %.1f MB)\n",
           "cost of the load and the fixes", cost_mb, hwm / 1024.0);
    printf("  %-46s %8.1f kB RSS, %.1f kB own\n", "per idle worker thread (defaults vs 64)",
           (idle_m.rss - base.rss) / (double)(512 - 64),
           (idle_m.anon - base.anon) / (double)(512 - 64));
    if (live > 0) {
        printf("  %-46s %8.1f kB RSS, %.1f kB own, %.1f kB of it stack\n", "per live-update stream",
               (sse_m.rss - idle_m.rss) / (double)live, (sse_m.anon - idle_m.anon) / (double)live,
               (sse_m.stacks - idle_m.stacks) / (double)live);
    }
    if (n_idle > 0) {
        printf("  %-46s %8.1f kB RSS\n", "per idle socket",
               (load_m.rss - sse_m.rss) / (double)n_idle);
    }
    printf("  %-46s %8.1f kB (closed while a stream is open)\n", "one worker's SQLite connection",
           sq / 1024.0);
    printf("  %-46s %8.1f kB\n", "one worker's curl handle after a request", cu / 1024.0);
    status = 0;
out:
    for (int i = 0; i < n_idle; i++) {
        close(idle[i]);
    }
    for (int i = 0; i < n_sse; i++) {
        close(sse[i]);
    }
    free(cookie);
    srv_stop(old);
    srv_stop(srv);
    sim_stop(sim);
    curl_global_cleanup();
    return status;
}
