/* cluster: the datacenter model. Servers, raft membership and leadership, serf status,
 * retry-join, autopilot promotion and client agents. Knows nothing of HTTP. Every dc_*
 * function expects dc->mu held unless its comment says otherwise. */
#include "sim.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Small string lists. strlist_free releases the strings and the array. */
void
strlist_add(struct strlist *l, const char *s)
{
    l->v = xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
    l->v[l->n++] = xstrdup(s);
}

void
strlist_free(struct strlist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i]);
    }
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

void
strlist_copy(struct strlist *dst, const struct strlist *src)
{
    strlist_free(dst);
    for (size_t i = 0; src && i < src->n; i++) {
        strlist_add(dst, src->v[i]);
    }
}

bool
strlist_has(const struct strlist *l, const char *s)
{
    for (size_t i = 0; i < l->n; i++) {
        if (strcmp(l->v[i], s) == 0) {
            return true;
        }
    }
    return false;
}

/* A UUID-shaped id derived from seed, so a node keeps its id across runs. */
void
deterministic_uuid(const char *seed, char out[37])
{
    char h[65];
    sha256_hex(seed, strlen(seed), h);
    snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", h, h + 8, h + 12, h + 16, h + 20);
}

void
dc_init(struct dc *dc, const struct dc_options *opt)
{
    memset(dc, 0, sizeof(*dc));
    pthread_mutex_init(&dc->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&dc->cond, &ca);
    pthread_condattr_destroy(&ca);
    dc->opt = *opt;
    dc->speed = opt->speed;
    atomic_init(&dc->latency_ms, 0);
    atomic_init(&dc->shutdown, false);
    dc->index = 1;
    dc->idx_kv = dc->idx_catalog = dc->idx_raft = 1;
    dc->last_tick_mono = time_mono_ms();
    dc->leader_lost_mono = dc->last_tick_mono;
    dc->rng = opt->seed;
    dc->election_at_sim = -1;
    char seed[96];
    snprintf(seed, sizeof(seed), "cluster/%s/%llu", opt->name, (unsigned long long)opt->seed);
    deterministic_uuid(seed, dc->cluster_id);
}

/* splitmix64: the next pseudo-random number of the simulator's seeded sequence. */
static uint64_t
rng_next(struct dc *dc)
{
    uint64_t z = (dc->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A uniformly drawn value in [lo, hi). */
static int64_t
rng_range(struct dc *dc, int64_t lo, int64_t hi)
{
    return lo + (int64_t)(rng_next(dc) % (uint64_t)(hi - lo));
}

int
restart_policy_parse(const char *name)
{
    static const char *const names[] = {"no", "always", "unless-stopped", "on-failure"};
    for (size_t i = 0; name && i < ARRAY_LEN(names); i++) {
        if (strcmp(name, names[i]) == 0) {
            return (int)i;
        }
    }
    return -1;
}

const char *
restart_policy_name(int policy)
{
    static const char *const names[] = {"no", "always", "unless-stopped", "on-failure"};
    return policy >= 0 && policy < (int)ARRAY_LEN(names) ? names[policy] : "no";
}

void
server_free(struct server *s)
{
    strlist_free(&s->retry_join);
    strlist_free(&s->retry_join_cfg);
    strlist_free(&s->old_peers);
    for (size_t i = 0; i < s->log_n; i++) {
        free(s->log[(s->log_head + i) % SIM_LOG_MAX]);
    }
    free(s->log);
    pthread_mutex_destroy(&s->lmu);
    free(s);
}

void
dc_free(struct dc *dc)
{
    dc_requests_reset(dc); /* frees the counters; touches the servers, so first */
    for (size_t i = 0; i < dc->n_servers; i++) {
        server_free(dc->servers[i]);
    }
    free(dc->servers);
    for (size_t i = 0; i < dc->n_clients; i++) {
        free(dc->clients[i]);
    }
    free(dc->clients);
    for (size_t i = 0; i < dc->n_services; i++) {
        strlist_free(&dc->services[i]->tags);
        free(dc->services[i]);
    }
    free(dc->services);
    for (size_t i = 0; i < dc->n_checks; i++) {
        free(dc->checks[i]->output);
        free(dc->checks[i]);
    }
    free(dc->checks);
    kv_free_all(dc);
    free(dc->opt.token);
    pthread_cond_destroy(&dc->cond);
    pthread_mutex_destroy(&dc->mu);
}

void
dc_bump(struct dc *dc, unsigned mask)
{
    dc->index++;
    if (mask & RES_KV) {
        dc->idx_kv = dc->index;
    }
    if (mask & RES_CATALOG) {
        dc->idx_catalog = dc->index;
    }
    if (mask & RES_RAFT) {
        dc->idx_raft = dc->index;
    }
    for (size_t i = 0; i < dc->n_servers; i++) {
        struct server *s = dc->servers[i];
        if (server_in_cluster(s)) {
            s->last_index = dc->index;
        }
    }
    pthread_cond_broadcast(&dc->cond);
}

uint64_t
dc_res_index(const struct dc *dc, unsigned res)
{
    uint64_t v = 0;
    if ((res & RES_KV) && dc->idx_kv > v) {
        v = dc->idx_kv;
    }
    if ((res & RES_CATALOG) && dc->idx_catalog > v) {
        v = dc->idx_catalog;
    }
    if ((res & RES_RAFT) && dc->idx_raft > v) {
        v = dc->idx_raft;
    }
    return v ? v : 1;
}

void
dc_log(struct server *s, const char *level, const char *fmt, ...)
{
    char ts[40];
    char lvl[16];
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    time_format_rfc3339(time_now_ms(), ts, sizeof(ts));
    snprintf(lvl, sizeof(lvl), "[%s]", level);
    char *line = xasprintf("%s %-7s %s", ts, lvl, text);
    if (!s->log) {
        s->log = xcalloc(SIM_LOG_MAX, sizeof(*s->log));
    }
    if (s->log_n == SIM_LOG_MAX) {
        free(s->log[s->log_head]);
        s->log[s->log_head] = line;
        s->log_head = (s->log_head + 1) % SIM_LOG_MAX;
    } else {
        s->log[(s->log_head + s->log_n) % SIM_LOG_MAX] = line;
        s->log_n++;
    }
    s->log_total++;
    if (!s->dc->opt.quiet) {
        fprintf(stderr, "%s: %s\n", s->name, line);
    }
}

/* Logs to every server that is up and in the cluster, except `except`. */
static void
log_members(struct dc *dc, const struct server *except, const char *level, const char *text)
{
    for (size_t i = 0; i < dc->n_servers; i++) {
        struct server *o = dc->servers[i];
        if (o != except && server_in_cluster(o)) {
            dc_log(o, level, "%s", text);
        }
    }
}

bool
server_up(const struct server *s)
{
    return s->running && s->host_up;
}

bool
server_in_cluster(const struct server *s)
{
    return server_up(s) && s->joined && !s->isolated;
}

const struct server *
dc_agent_leader(const struct dc *dc, const struct server *s)
{
    if (!server_in_cluster(s)) {
        return NULL;
    }
    if (dc->leader) {
        return dc->leader;
    }
    return dc_sim_time(dc) < s->forget_leader_sim ? s->stale_leader : NULL;
}

const struct server *
dc_serving_leader(const struct dc *dc, const struct server *s)
{
    return server_in_cluster(s) ? dc->leader : NULL;
}

bool
dc_hold_for_leader(struct dc *dc, const struct server *s)
{
    if (dc_serving_leader(dc, s)) {
        return true;
    }
    int64_t hold = (int64_t)((double)SIM_RPC_HOLD_MS / dc->speed);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += hold / 1000;
    ts.tv_nsec += (long)(hold % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    while (!dc_serving_leader(dc, s) && !atomic_load(&dc->shutdown) && server_up(s)) {
        if (pthread_cond_timedwait(&dc->cond, &dc->mu, &ts) == ETIMEDOUT) {
            break;
        }
    }
    return dc_serving_leader(dc, s) != NULL;
}

/* Number of raft voters, and of those the ones that are up. */
static void
count_voters(const struct dc *dc, int *voters, int *up)
{
    *voters = *up = 0;
    for (size_t i = 0; i < dc->n_servers; i++) {
        const struct server *s = dc->servers[i];
        if (s->in_raft && s->voter) {
            (*voters)++;
            if (server_in_cluster(s)) {
                (*up)++;
            }
        }
    }
}

/* Draws the next election timeout and remembers it (for /sim/state). */
static int64_t
draw_election_timeout(struct dc *dc)
{
    int64_t e = rng_range(dc, SIM_ELECTION_MIN_MS, SIM_ELECTION_MAX_MS);
    if (dc->n_election_timeouts == SIM_ELECTION_HISTORY) {
        memmove(dc->election_timeouts, dc->election_timeouts + 1,
                (SIM_ELECTION_HISTORY - 1) * sizeof(dc->election_timeouts[0]));
        dc->n_election_timeouts--;
    }
    dc->election_timeouts[dc->n_election_timeouts++] = e;
    return e;
}

/* A new leader l: every member learns it at once (its first heartbeat). */
static void
elect(struct dc *dc, struct server *l)
{
    dc->leader = l;
    dc->term++;
    dc->election_at_sim = -1;
    for (size_t i = 0; i < dc->n_servers; i++) {
        dc->servers[i]->stale_leader = NULL;
        dc->servers[i]->forget_leader_sim = 0;
    }
    dc_log(l, "INFO", "agent.server.raft: election won: term=%llu tally=%d",
           (unsigned long long)dc->term, 1);
    dc_log(l, "INFO",
           "agent.server.raft: entering leader state: leader=\"Node at %s:8300 [Leader]\"", l->ip);
    dc_log(l, "INFO", "agent.server: cluster leadership acquired");
    char text[256];
    snprintf(text, sizeof(text), "agent.server: New leader elected: payload=%s", l->name);
    log_members(dc, NULL, "INFO", text);
    dc_bump(dc, RES_RAFT | RES_CATALOG);
}

/* The leader is gone (stopped, left, or without quorum). Followers keep naming it until
 * their heartbeat timeout; the old leader, if it still runs, steps down at once. */
static void
lose_leader(struct dc *dc)
{
    struct server *old = dc->leader;
    dc->leader = NULL;
    dc->term++;
    dc->leader_lost_mono = time_mono_ms();
    for (size_t i = 0; i < dc->n_servers; i++) {
        struct server *s = dc->servers[i];
        if (s == old || !server_in_cluster(s)) {
            continue;
        }
        s->stale_leader = old;
        s->forget_leader_sim =
            dc->sim_now + rng_range(dc, SIM_HEARTBEAT_MIN_MS, SIM_HEARTBEAT_MAX_MS);
    }
    if (server_up(old)) {
        dc_log(old, "WARN", "agent.server.raft: failed to contact quorum of nodes, stepping down");
        dc_log(old, "INFO",
               "agent.server.raft: entering follower state: follower=\"Node at %s:8300 "
               "[Follower]\" leader-address= leader-id=",
               old->ip);
        dc_log(old, "INFO", "agent.server: cluster leadership lost");
    }
    dc_bump(dc, RES_RAFT | RES_CATALOG);
}

/* Followers whose heartbeat timeout passed stop naming the old leader and stand for
 * election (logged as Consul does). */
static void
forget_stale_leaders(struct dc *dc)
{
    for (size_t i = 0; i < dc->n_servers; i++) {
        struct server *s = dc->servers[i];
        if (!s->stale_leader || dc->sim_now < s->forget_leader_sim) {
            continue;
        }
        const struct server *old = s->stale_leader;
        s->stale_leader = NULL;
        if (!server_in_cluster(s)) {
            continue;
        }
        dc_log(s, "WARN",
               "agent.server.raft: heartbeat timeout reached, starting election: "
               "last-leader-addr=%s:8300 last-leader-id=%s",
               old->ip, old->node_id);
        dc_log(s, "INFO",
               "agent.server.raft: entering candidate state: node=\"Node at %s:8300 "
               "[Candidate]\" term=%llu",
               s->ip, (unsigned long long)dc->term + 1);
        dc_log(s, "ERROR", "agent: Coordinate update error: error=\"No cluster leader\"");
        dc_bump(dc, RES_RAFT);
    }
}

/* The voter that wins an election: the running voter with the lowest name. */
static struct server *
election_winner(const struct dc *dc)
{
    struct server *best = NULL;
    for (size_t i = 0; i < dc->n_servers; i++) {
        struct server *s = dc->servers[i];
        if (s->in_raft && s->voter && server_in_cluster(s) &&
            (!best || strcmp(s->name, best->name) < 0)) {
            best = s;
        }
    }
    return best;
}

static bool
have_quorum(const struct dc *dc)
{
    int voters;
    int up;
    count_voters(dc, &voters, &up);
    return voters > 0 && up >= voters / 2 + 1;
}

void
dc_recompute(struct dc *dc)
{
    dc_clock(dc);
    bool quorum = have_quorum(dc);
    struct server *cur = dc->leader;
    if (cur) {
        if (quorum && server_in_cluster(cur) && cur->in_raft && cur->voter) {
            return;
        }
        lose_leader(dc);
    }
    if (!quorum) {
        dc->election_at_sim = -1;
        return;
    }
    if (dc->election_at_sim < 0) {
        dc->election_at_sim = dc->sim_now + draw_election_timeout(dc);
        /* the winner is the candidate whose own timeout started the election: it stopped
         * naming the old leader by then (others may learn the new leader directly) */
        struct server *w = election_winner(dc);
        if (w && w->stale_leader && w->forget_leader_sim > dc->election_at_sim) {
            w->forget_leader_sim = dc->election_at_sim;
        }
        return;
    }
    if (dc->sim_now >= dc->election_at_sim) {
        elect(dc, election_winner(dc));
    }
}

void
dc_elect_now(struct dc *dc)
{
    if (!dc->leader && have_quorum(dc)) {
        elect(dc, election_winner(dc));
    }
    dc->n_election_timeouts = 0; /* what the initial servers armed did not happen */
}

struct server *
server_new(struct dc *dc, const char *name, const char *ip, const struct strlist *retry_join)
{
    struct server *s = xcalloc(1, sizeof(*s));
    s->dc = dc;
    snprintf(s->name, sizeof(s->name), "%s", name);
    snprintf(s->ip, sizeof(s->ip), "%s", ip);
    char seed[128];
    snprintf(seed, sizeof(seed), "%s/%s", dc->opt.name, name);
    deterministic_uuid(seed, s->node_id);
    s->http_port = dc->opt.http_port;
    s->metrics_port = dc->opt.metrics_port;
    s->healthy_since_sim = -1;
    s->cluster_fd[0] = s->cluster_fd[1] = -1;
    s->snapshot_cfg = true;
    pthread_mutex_init(&s->lmu, NULL);
    strlist_copy(&s->retry_join_cfg, retry_join);
    return s;
}

/* What a start takes from the "compose file" and the data dir: the retry-join list, a new
 * node name, the raft state found in the data dir. */
static void
apply_start_config(struct dc *dc, struct server *s)
{
    strlist_copy(&s->retry_join, &s->retry_join_cfg);
    if (s->next_name[0] && !s->joined) {
        snprintf(s->name, sizeof(s->name), "%s", s->next_name);
    }
    s->next_name[0] = '\0';
    snprintf(s->data_cluster, sizeof(s->data_cluster), "%s", s->data_cluster_cfg);
    s->chasing = s->data_cluster[0] && strcmp(s->data_cluster, dc->cluster_id) != 0 && !s->joined;
    /* A member restarted without its serf snapshot (a wiped data dir) does not rejoin by
     * itself: the others keep it failed until a retry-join reaches them. */
    s->isolated = s->joined && !s->snapshot_cfg;
    s->started_wall = time_now_ms();
    s->starts++;
    s->restart_at_mono = 0;
}

static void
log_startup(struct server *s)
{
    struct dc *dc = s->dc;
    dc_log(s, "INFO", "==> Starting Consul agent...");
    dc_log(s, "INFO", "           Version: '%s'", SIM_CONSUL_VERSION);
    dc_log(s, "INFO", "        Build Date: '2024-02-20 18:04:34 +0000 UTC'");
    dc_log(s, "INFO", "           Node ID: '%s'", s->node_id);
    dc_log(s, "INFO", "         Node name: '%s'", s->name);
    dc_log(s, "INFO", "        Datacenter: '%s' (Segment: '<all>')", dc->opt.name);
    dc_log(s, "INFO", "            Server: true (Bootstrap: false)");
    dc_log(s, "INFO", "       Client Addr: [0.0.0.0] (HTTP: %d, HTTPS: -1, gRPC: -1, DNS: 8600)",
           s->http_port);
    dc_log(s, "INFO", "      Cluster Addr: %s (LAN: 8301, WAN: 8302)", s->ip);
    dc_log(s, "INFO", "==> Log data will now stream in as it occurs:");
    dc_log(s, "INFO", "agent.server.raft: starting restore from snapshot");
    dc_log(s, "INFO", "agent: Started HTTP server: address=[::]:%d network=tcp", s->http_port);
    if (s->retry_join.n) {
        char list[512] = "";
        for (size_t i = 0; i < s->retry_join.n; i++) {
            size_t l = strlen(list);
            snprintf(list + l, sizeof(list) - l, "%s%s", i ? " " : "", s->retry_join.v[i]);
        }
        dc_log(s, "INFO",
               "agent: Retry join is supported for the following discovery "
               "methods: cluster=LAN discovery_methods=\"aliyun aws azure digitalocean gce "
               "k8s linode mdns os packet scaleway softlayer tencentcloud triton vsphere\"");
        dc_log(s, "INFO", "agent: Joining cluster...: cluster=LAN");
        dc_log(s, "INFO", "agent: (LAN) joining: lan_addresses=[%s]", list);
    }
}

void
dc_server_add(struct dc *dc, struct server *s, bool bootstrap)
{
    dc->servers = xrealloc(dc->servers, (dc->n_servers + 1) * sizeof(*dc->servers));
    dc->servers[dc->n_servers++] = s;
    s->running = true;
    s->host_up = true;
    apply_start_config(dc, s);
    s->create_index = dc->index + 1;
    log_startup(s);
    if (bootstrap) {
        s->joined = true;
        s->in_raft = true;
        s->voter = true;
        s->serf_status = SERF_ALIVE;
        s->healthy_since_sim = dc->sim_now;
        s->stable_since_wall = time_now_ms();
        dc_log(s, "INFO", "agent.server.serf.lan: serf: EventMemberJoin: %s %s", s->name, s->ip);
    } else {
        s->next_retry_sim = dc->sim_now;
    }
    dc_bump(dc, RES_CATALOG | RES_RAFT);
    dc_recompute(dc);
}

struct server *
dc_find_server(const struct dc *dc, const char *name_or_ip)
{
    for (size_t i = 0; i < dc->n_servers; i++) {
        if (strcmp(dc->servers[i]->name, name_or_ip) == 0) {
            return dc->servers[i];
        }
    }
    return dc_find_server_ip(dc, name_or_ip);
}

struct server *
dc_find_server_ip(const struct dc *dc, const char *ip)
{
    for (size_t i = 0; i < dc->n_servers; i++) {
        if (strcmp(dc->servers[i]->ip, ip) == 0) {
            return dc->servers[i];
        }
    }
    return NULL;
}

struct client *
dc_find_client(const struct dc *dc, const char *name)
{
    for (size_t i = 0; i < dc->n_clients; i++) {
        if (strcmp(dc->clients[i]->name, name) == 0) {
            return dc->clients[i];
        }
    }
    return NULL;
}

/* Marks a joined server failed in serf and tells the others. */
static void
mark_failed(struct dc *dc, struct server *s)
{
    if (!s->joined || s->serf_status == SERF_FAILED) {
        return;
    }
    s->serf_status = SERF_FAILED;
    char text[256];
    snprintf(text, sizeof(text), "agent.server.serf.lan: serf: EventMemberFailed: %s %s", s->name,
             s->ip);
    log_members(dc, s, "INFO", text);
}

void
dc_server_stop(struct dc *dc, struct server *s, const char *why)
{
    s->restart_at_mono = 0; /* a manual stop: the restart policy does not apply */
    if (!s->running) {
        return;
    }
    if (s->host_up) {
        dc_log(s, "INFO", "==> Caught signal: %s", why);
        dc_log(s, "INFO", "agent: Graceful shutdown disabled. Exiting");
        dc_log(s, "INFO", "agent: Requesting shutdown");
        dc_log(s, "INFO", "agent.server: shutting down server");
        dc_log(s, "INFO", "agent: shutdown complete");
    }
    s->running = false;
    s->healthy_since_sim = -1;
    s->down_since_mono = time_mono_ms();
    s->conflict = false;
    mark_failed(dc, s);
    dc_bump(dc, RES_CATALOG | RES_RAFT);
    dc_recompute(dc);
}

void
dc_server_start(struct dc *dc, struct server *s)
{
    if (s->running) {
        return;
    }
    s->running = true;
    if (!s->host_up) {
        return; /* it will come up with the host */
    }
    apply_start_config(dc, s);
    log_startup(s);
    s->next_retry_sim = dc->sim_now;
    if (s->joined && !s->isolated) {
        /* A server that was a member rejoins from its serf snapshot. */
        s->serf_status = SERF_ALIVE;
        s->healthy_since_sim = dc->sim_now;
        s->stable_since_wall = time_now_ms();
        s->last_index = dc->index;
        char text[256];
        snprintf(text, sizeof(text), "agent.server.serf.lan: serf: EventMemberJoin: %s %s", s->name,
                 s->ip);
        log_members(dc, NULL, "INFO", text);
    }
    dc_bump(dc, RES_CATALOG | RES_RAFT);
    dc_recompute(dc);
}

void
dc_server_leave(struct dc *dc, struct server *s)
{
    if (!server_up(s)) {
        return;
    }
    dc_log(s, "INFO", "agent: Gracefully shutting down agent...");
    dc_log(s, "INFO", "agent.server: server starting leave");
    if (s->joined) {
        char text[256];
        snprintf(text, sizeof(text), "agent.server.serf.lan: serf: EventMemberLeave: %s %s",
                 s->name, s->ip);
        log_members(dc, NULL, "INFO", text);
        if (s->in_raft && dc->leader && dc->leader != s) {
            dc_log(dc->leader, "INFO", "agent.server: removing server by ID: id=%s", s->node_id);
        }
        s->serf_status = SERF_LEFT;
    }
    dc_log(s, "INFO", "agent: Graceful leave complete");
    dc_log(s, "INFO", "agent: shutdown complete");
    /* The agent exits with status 0: docker restarts it under `always` or `unless-stopped`. */
    if (s->restart == RESTART_ALWAYS || s->restart == RESTART_UNLESS_STOPPED) {
        s->restart_at_mono = time_mono_ms() + SIM_DOCKER_RESTART_MS;
    }
    s->joined = false;
    s->in_raft = false;
    s->voter = false;
    s->running = false;
    s->healthy_since_sim = -1;
    s->down_since_mono = time_mono_ms();
    dc_bump(dc, RES_CATALOG | RES_RAFT);
    dc_recompute(dc);
}

void
dc_host_down(struct dc *dc, struct server *s)
{
    if (!s->host_up) {
        return;
    }
    /* s->running keeps what the container should do when the host comes back. */
    if (s->running) {
        s->down_since_mono = time_mono_ms();
    }
    s->host_up = false;
    s->healthy_since_sim = -1;
    s->conflict = false;
    mark_failed(dc, s);
    dc_bump(dc, RES_CATALOG | RES_RAFT);
    dc_recompute(dc);
}

/* The host boots; a container that was running starts again (restart: always). */
void
dc_host_up(struct dc *dc, struct server *s)
{
    if (s->host_up) {
        return;
    }
    s->host_up = true;
    bool run = s->running;
    s->running = false;
    if (run) {
        dc_server_start(dc, s);
    } else {
        dc_bump(dc, RES_CATALOG);
    }
}

int
dc_force_leave(struct dc *dc, const char *node, bool prune)
{
    for (size_t i = 0; i < dc->n_servers; i++) {
        struct server *s = dc->servers[i];
        if (strcmp(s->name, node) != 0 || s->serf_status == SERF_NONE) {
            continue;
        }
        if (s->serf_status == SERF_FAILED || (prune && s->serf_status == SERF_LEFT)) {
            char text[256];
            snprintf(text, sizeof(text),
                     "agent.server.serf.lan: serf: EventMemberLeave "
                     "(forced): %s %s",
                     s->name, s->ip);
            log_members(dc, s, "INFO", text);
            s->serf_status = prune ? SERF_NONE : SERF_LEFT;
            s->joined = false;
            s->in_raft = false;
            s->voter = false;
            dc_bump(dc, RES_CATALOG | RES_RAFT);
            dc_recompute(dc);
        }
        return 0;
    }
    struct client *c = dc_find_client(dc, node);
    if (!c || c->serf_status == SERF_NONE) {
        return -1;
    }
    if (c->serf_status == SERF_FAILED || (prune && c->serf_status == SERF_LEFT)) {
        dc_client_set_status(dc, c, prune ? SERF_NONE : SERF_LEFT);
    }
    return 0;
}

int
dc_raft_remove(struct dc *dc, const char *id, const char *address)
{
    for (size_t i = 0; i < dc->n_servers; i++) {
        struct server *s = dc->servers[i];
        char addr[32];
        snprintf(addr, sizeof(addr), "%s:8300", s->ip);
        if (!s->in_raft) {
            continue;
        }
        if ((id && strcmp(id, s->node_id) == 0) || (address && strcmp(address, addr) == 0)) {
            s->in_raft = false;
            s->voter = false;
            s->healthy_since_sim = -1;
            if (dc->leader) {
                dc_log(dc->leader, "INFO",
                       "agent.server.raft: updating configuration: "
                       "command=RemoveServer server-id=%s server-addr= servers=[]",
                       s->node_id);
            }
            dc_bump(dc, RES_RAFT | RES_CATALOG);
            dc_recompute(dc);
            return 0;
        }
    }
    return -1;
}

int
dc_transfer_leader(struct dc *dc, const char *id)
{
    struct server *cur = dc->leader;
    struct server *best = NULL;
    for (size_t i = 0; i < dc->n_servers; i++) {
        struct server *s = dc->servers[i];
        if (s == cur || !s->in_raft || !s->voter || !server_in_cluster(s)) {
            continue;
        }
        if (id && *id) {
            if (strcmp(s->node_id, id) == 0) {
                best = s;
            }
        } else if (!best || strcmp(s->name, best->name) < 0) {
            best = s;
        }
    }
    if (!cur || !best) {
        return -1;
    }
    dc_log(cur, "INFO", "agent.server.raft: starting leadership transfer: id=%s address=%s:8300",
           best->node_id, best->ip);
    dc_log(cur, "INFO", "agent.server: cluster leadership lost");
    elect(dc, best);
    return 0;
}

/* Finds a member with the same name as s (another server or a client), or NULL. */
static const char *
name_conflict(const struct dc *dc, const struct server *s)
{
    for (size_t i = 0; i < dc->n_servers; i++) {
        const struct server *o = dc->servers[i];
        if (o != s && o->joined && !o->isolated && strcmp(o->name, s->name) == 0) {
            return o->ip;
        }
    }
    const struct client *c = dc_find_client(dc, s->name);
    if (c && (c->serf_status == SERF_ALIVE || c->serf_status == SERF_FAILED)) {
        return c->ip;
    }
    return NULL;
}

/* A server with another cluster's raft state: it stands for election among its old peers,
 * which never answer, and does not join (logged as Consul does, once per retry interval). */
static void
chase_old_peers(struct dc *dc, struct server *s)
{
    s->next_retry_sim = dc->sim_now + SIM_RETRY_MS;
    dc_log(s, "WARN",
           "agent.server.raft: heartbeat timeout reached, starting election: last-leader-addr= "
           "last-leader-id=");
    dc_log(s, "INFO",
           "agent.server.raft: entering candidate state: node=\"Node at %s:8300 [Candidate]\" "
           "term=%llu",
           s->ip, (unsigned long long)(s->starts + dc->sim_now / SIM_RETRY_MS));
    for (size_t i = 0; i < s->old_peers.n; i++) {
        char seed[128];
        char id[37];
        snprintf(seed, sizeof(seed), "%s/%s", s->data_cluster, s->old_peers.v[i]);
        deterministic_uuid(seed, id);
        dc_log(s, "ERROR",
               "agent.server.raft: failed to make requestVote RPC: target=\"{Voter %s "
               "%s:8300}\" error=\"dial tcp <nil>->%s:8300: connect: connection refused\" "
               "term=%llu",
               id, s->old_peers.v[i], s->old_peers.v[i],
               (unsigned long long)(s->starts + dc->sim_now / SIM_RETRY_MS));
    }
    dc_log(s, "ERROR", "agent: Coordinate update error: error=\"No cluster leader\"");
}

/* One retry-join attempt of server s. */
static void
try_join(struct dc *dc, struct server *s)
{
    struct server *target = NULL;
    for (size_t i = 0; i < s->retry_join.n && !target; i++) {
        struct server *t = dc_find_server_ip(dc, s->retry_join.v[i]);
        if (t && t != s && server_in_cluster(t)) {
            target = t;
        }
    }
    int64_t retry = (int64_t)SIM_RETRY_MS;
    s->next_retry_sim = dc->sim_now + retry;
    if (!target) {
        const char *first = s->retry_join.n ? s->retry_join.v[0] : "";
        dc_log(s, "WARN",
               "agent: (LAN) couldn't join: number_of_nodes=0 error=\"1 error "
               "occurred: * Failed to join %s:8301: dial tcp %s:8301: connect: connection "
               "refused\"",
               first, first);
        dc_log(s, "WARN",
               "agent: Join cluster failed, will retry: cluster=LAN "
               "retry_interval=1s error=\"No servers to join\"");
        return;
    }
    const char *other = name_conflict(dc, s);
    if (other) {
        if (!s->conflict) {
            dc_log(target, "WARN",
                   "agent.server.memberlist.lan: memberlist: Conflicting "
                   "address for %s. Mine: %s:8301 Theirs: %s:8301 Old state: 0",
                   s->name, other, s->ip);
        }
        s->conflict = true;
        dc_log(s, "ERROR",
               "agent.server.serf.lan: serf: Node name conflicts with another node "
               "at %s:8301. Names must be unique! (Resolution enabled: true)",
               other);
        dc_log(s, "WARN",
               "agent: Join cluster failed, will retry: cluster=LAN "
               "retry_interval=1s error=\"Member '%s' has conflicting node ID\"",
               s->name);
        return;
    }
    if (!dc->leader) {
        dc_log(s, "WARN",
               "agent: Join cluster failed, will retry: cluster=LAN "
               "retry_interval=1s error=\"No cluster leader\"");
        return;
    }
    s->conflict = false;
    s->joined = true;
    s->isolated = false;
    s->serf_status = SERF_ALIVE;
    s->last_index = dc->index;
    size_t members = 0;
    for (size_t i = 0; i < dc->n_servers; i++) {
        members += dc->servers[i]->joined;
    }
    char text[256];
    snprintf(text, sizeof(text), "agent.server.serf.lan: serf: EventMemberJoin: %s %s", s->name,
             s->ip);
    log_members(dc, NULL, "INFO", text);
    dc_log(s, "INFO", "agent: (LAN) joined: number_of_nodes=%zu", members);
    dc_log(s, "INFO",
           "agent: Join cluster completed. Synced with initial agents: cluster=LAN "
           "num_agents=%zu",
           members);
    dc_log(s, "INFO", "agent.server: New leader elected: payload=%s", dc->leader->name);
    dc_bump(dc, RES_CATALOG | RES_RAFT);
}

/* Leader reconcile: joined servers that are up but not in raft are added as non-voters. */
static void
reconcile_raft(struct dc *dc)
{
    struct server *l = dc->leader;
    if (!l) {
        return;
    }
    for (size_t i = 0; i < dc->n_servers; i++) {
        struct server *s = dc->servers[i];
        if (!server_in_cluster(s) || s->in_raft) {
            continue;
        }
        s->in_raft = true;
        s->voter = false;
        s->healthy_since_sim = dc->sim_now;
        s->stable_since_wall = time_now_ms();
        dc_log(l, "INFO",
               "agent.server.raft: updating configuration: command=AddNonvoter "
               "server-id=%s server-addr=%s:8300",
               s->node_id, s->ip);
        dc_log(l, "INFO", "agent.server.raft: added peer, starting replication: peer=%s",
               s->node_id);
        dc_log(s, "INFO",
               "agent.server.raft: entering follower state: follower=\"Node at "
               "%s:8300 [Follower]\" leader-address=%s:8300 leader-id=%s",
               s->ip, l->ip, l->node_id);
        dc_bump(dc, RES_RAFT | RES_CATALOG);
    }
}

/* Autopilot: a non-voter healthy for the stabilization time becomes a voter. */
static void
promote(struct dc *dc)
{
    struct server *l = dc->leader;
    if (!l) {
        return;
    }
    for (size_t i = 0; i < dc->n_servers; i++) {
        struct server *s = dc->servers[i];
        if (!s->in_raft || s->voter || !server_in_cluster(s) || s->healthy_since_sim < 0) {
            continue;
        }
        if (dc->sim_now - s->healthy_since_sim < dc->opt.stabilization_ms) {
            continue;
        }
        s->voter = true;
        dc_log(l, "INFO",
               "agent.server.autopilot: Promoting server: id=%s address=%s:8300 "
               "name=%s",
               s->node_id, s->ip, s->name);
        dc_log(l, "INFO",
               "agent.server.raft: updating configuration: command=AddVoter "
               "server-id=%s server-addr=%s:8300",
               s->node_id, s->ip);
        dc_bump(dc, RES_RAFT | RES_CATALOG);
        dc_recompute(dc);
    }
}

int64_t
dc_sim_time(const struct dc *dc)
{
    return dc->sim_now + (int64_t)((double)(time_mono_ms() - dc->last_tick_mono) * dc->speed);
}

void
dc_clock(struct dc *dc)
{
    int64_t now = time_mono_ms();
    double exact = (double)(now - dc->last_tick_mono) * dc->speed + dc->sim_frac;
    int64_t step = (int64_t)exact;
    dc->sim_frac = exact - (double)step; /* kept, so slow speeds do not lose time */
    dc->last_tick_mono = now;
    dc->sim_now += step;
    if (!dc->leader) {
        dc->leaderless_sim_ms += step;
    }
}

void
dc_tick(struct dc *dc)
{
    int64_t now = time_mono_ms();
    dc_clock(dc);
    for (size_t i = 0; i < dc->n_servers; i++) {
        struct server *s = dc->servers[i];
        if (s->restart_at_mono && now >= s->restart_at_mono && !s->running) {
            dc_server_start(dc, s);
        }
        if (server_up(s) && !s->joined && s->chasing && dc->sim_now >= s->next_retry_sim) {
            chase_old_peers(dc, s);
        } else if (server_up(s) && (!s->joined || s->isolated) && s->retry_join.n &&
                   dc->sim_now >= s->next_retry_sim) {
            try_join(dc, s);
        }
        if (server_in_cluster(s) && s->in_raft && s->healthy_since_sim < 0) {
            s->healthy_since_sim = dc->sim_now;
        }
    }
    forget_stale_leaders(dc);
    dc_recompute(dc);
    reconcile_raft(dc);
    promote(dc);
}

int
dc_client_add(struct dc *dc, const char *name, const char *ip)
{
    struct client *c = dc_find_client(dc, name);
    if (!c) {
        c = xcalloc(1, sizeof(*c));
        snprintf(c->name, sizeof(c->name), "%s", name);
        char seed[128];
        snprintf(seed, sizeof(seed), "%s/%s", dc->opt.name, name);
        deterministic_uuid(seed, c->node_id);
        dc->clients = xrealloc(dc->clients, (dc->n_clients + 1) * sizeof(*dc->clients));
        dc->clients[dc->n_clients++] = c;
    }
    snprintf(c->ip, sizeof(c->ip), "%s", ip);
    c->create_index = dc->index + 1;
    dc_client_set_status(dc, c, SERF_ALIVE);
    return 0;
}

void
dc_client_set_status(struct dc *dc, struct client *c, int serf_status)
{
    static const char *const ev[] = {"", "EventMemberJoin", "", "EventMemberLeave",
                                     "EventMemberFailed"};
    if (c->serf_status == serf_status) {
        return;
    }
    c->serf_status = serf_status;
    if (serf_status != SERF_NONE) {
        char text[256];
        snprintf(text, sizeof(text), "agent.server.serf.lan: serf: %s: %s %s", ev[serf_status],
                 c->name, c->ip);
        log_members(dc, NULL, "INFO", text);
    }
    if (serf_status == SERF_LEFT || serf_status == SERF_NONE) {
        /* The leader deregisters a node that left: its services and checks go too. */
        size_t j = 0;
        for (size_t i = 0; i < dc->n_services; i++) {
            if (strcmp(dc->services[i]->node, c->name) == 0) {
                strlist_free(&dc->services[i]->tags);
                free(dc->services[i]);
            } else {
                dc->services[j++] = dc->services[i];
            }
        }
        dc->n_services = j;
        j = 0;
        for (size_t i = 0; i < dc->n_checks; i++) {
            if (strcmp(dc->checks[i]->node, c->name) == 0) {
                free(dc->checks[i]->output);
                free(dc->checks[i]);
            } else {
                dc->checks[j++] = dc->checks[i];
            }
        }
        dc->n_checks = j;
    }
    dc_bump(dc, RES_CATALOG);
}

size_t
dc_nodes(const struct dc *dc, struct node_ref **out)
{
    struct node_ref *v = xcalloc(dc->n_servers + dc->n_clients + 1, sizeof(*v));
    size_t n = 0;
    for (size_t i = 0; i < dc->n_servers; i++) {
        const struct server *s = dc->servers[i];
        if (s->joined) {
            v[n++] = (struct node_ref){s->name,        s->ip, s->node_id,
                                       s->serf_status, true,  s->create_index};
        }
    }
    for (size_t i = 0; i < dc->n_clients; i++) {
        const struct client *c = dc->clients[i];
        if (c->serf_status == SERF_ALIVE || c->serf_status == SERF_FAILED) {
            v[n++] = (struct node_ref){c->name,        c->ip, c->node_id,
                                       c->serf_status, false, c->create_index};
        }
    }
    *out = v;
    return n;
}

bool
dc_node_lookup(const struct dc *dc, const char *name, struct node_ref *out)
{
    struct node_ref *v;
    size_t n = dc_nodes(dc, &v);
    bool found = false;
    for (size_t i = 0; i < n && !found; i++) {
        if (strcmp(v[i].name, name) == 0) {
            *out = v[i];
            found = true;
        }
    }
    free(v);
    return found;
}

static void
counts_add(struct counts *c, const char *name, size_t max)
{
    const char *p = c->n >= max ? "(other)" : name;
    for (size_t i = 0; i < c->n; i++) {
        if (strcmp(c->v[i].path, name) == 0 || strcmp(c->v[i].path, p) == 0) {
            c->v[i].n++;
            return;
        }
    }
    c->v = xrealloc(c->v, (c->n + 1) * sizeof(*c->v));
    c->v[c->n].path = xstrdup(p);
    c->v[c->n].n = 1;
    c->n++;
}

static void
counts_clear(struct counts *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->v[i].path);
    }
    free(c->v);
    c->v = NULL;
    c->n = 0;
}

void
dc_count_request(struct dc *dc, struct server *s, const char *method, const char *path,
                 bool had_token)
{
    dc->requests_total++;
    s->requests++;
    if (!had_token) {
        dc->requests_without_token++;
    }
    counts_add(&dc->by_path, path, SIM_MAX_PATHS);
    counts_add(&dc->by_method, method, SIM_MAX_METHODS);
}

void
dc_requests_reset(struct dc *dc)
{
    counts_clear(&dc->by_path);
    counts_clear(&dc->by_method);
    dc->requests_total = 0;
    dc->requests_without_token = 0;
    for (size_t i = 0; i < dc->n_servers; i++) {
        dc->servers[i]->requests = 0;
    }
}
