/* consul-sim: a simulated Consul datacenter in one process. This header is shared by the
 * simulator's files only (tests/sim/); it is not part of consulate.
 *
 * Model: one `struct dc` holds every server agent, client agent, service, check and KV
 * entry behind one mutex (dc->mu). Every change bumps the global raft index and the index
 * of the resource it touched, and broadcasts dc->cond so blocking queries wake up.
 * HTTP listeners (civetweb contexts) are started and stopped outside the lock by
 * listener_sync(), which compares what the model wants with what is running. */
#ifndef CONSUL_SIM_H
#define CONSUL_SIM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "util.h"

struct mg_context;
struct mg_connection;

#define SIM_CONSUL_VERSION "1.17.3"
#define SIM_NAME_MAX 64
#define SIM_ID_MAX 128
#define SIM_LOG_MAX 5000
#define SIM_KV_VALUE_MAX 524288
#define SIM_MAX_PATHS 4096
#define SIM_MAX_METHODS 16
#define SIM_RETRY_MS 1000
/* Consul's timing, in simulated milliseconds (divided by the speed factor). A follower notices
 * that the leader is gone after its heartbeat timeout and stops naming it; a new leader is
 * elected an election timeout after the leader was lost (or quorum came back); requests that
 * need a leader wait up to rpc_hold_timeout for one. */
#define SIM_HEARTBEAT_MIN_MS 1000
#define SIM_HEARTBEAT_MAX_MS 2000
#define SIM_ELECTION_MIN_MS 1000
#define SIM_ELECTION_MAX_MS 3000
#define SIM_RPC_HOLD_MS 7000
/* Docker's first restart delay for a container whose process ended (real milliseconds). */
#define SIM_DOCKER_RESTART_MS 100
#define SIM_ELECTION_HISTORY 64

/* serf.MemberStatus values, as /v1/agent/members reports them. */
enum serf_status {
    SERF_NONE = 0,
    SERF_ALIVE = 1,
    SERF_LEAVING = 2,
    SERF_LEFT = 3,
    SERF_FAILED = 4,
};

/* Resources with their own modify index, used to wake blocking queries. */
enum res {
    RES_KV = 1,
    RES_CATALOG = 2,
    RES_RAFT = 4,
    RES_ALL = 7,
};

struct strlist {
    char **v;
    size_t n;
};

/* The container's restart policy (docker-compose `restart:`), applied when the agent exits by
 * itself (after a leave). A stop through the control API is a manual stop: no restart. */
enum restart_policy {
    RESTART_NO = 0,
    RESTART_ALWAYS,
    RESTART_UNLESS_STOPPED,
    RESTART_ON_FAILURE,
};

struct dc;

/* One server agent: a "host" with its own loopback IP, HTTP and metrics listeners. */
struct server {
    struct dc *dc;
    char name[SIM_NAME_MAX];
    char ip[16];
    char node_id[37];
    int http_port; /* bound port; 0 until the first start when ephemeral */
    int metrics_port;
    bool running;  /* the consul container runs (or will, once its host is up) */
    bool host_up;  /* the host is up (exporter container and agent) */
    bool joined;   /* a serf member of the cluster (alive or failed) */
    bool conflict; /* the last join attempt hit a node-name conflict */
    bool in_raft;
    bool voter;
    int serf_status;
    int64_t healthy_since_sim; /* simulated ms since continuously up in raft; -1 when not */
    int64_t stable_since_wall; /* wall ms, for StableSince */
    int64_t next_retry_sim;
    int64_t down_since_mono;
    uint64_t last_index; /* raft index this server last saw (frozen while down) */
    uint64_t create_index;
    struct strlist retry_join;     /* active list */
    struct strlist retry_join_cfg; /* the "compose file" list, copied on start */
    /* Leader loss as this follower sees it: it names stale_leader until forget_leader_sim. */
    const struct server *stale_leader;
    int64_t forget_leader_sim;
    /* Raft state found in the data dir at start: the cluster id it belongs to ("" = none). A
     * server started with another cluster's state chases its old peers and never joins. */
    char data_cluster[40];
    char data_cluster_cfg[40]; /* applied on the next start */
    struct strlist old_peers;
    bool chasing;
    char next_name[SIM_NAME_MAX]; /* a new node name, applied on the next start ("" = none) */
    bool snapshot_cfg;       /* the data dir holds a serf snapshot (default): a member rejoins */
    bool isolated;           /* restarted without one: running, failed to the others */
    int restart;             /* enum restart_policy */
    int64_t restart_at_mono; /* a pending restart after the agent exited (0 = none) */
    int64_t started_wall;    /* wall ms of the last start, for docker ps */
    uint64_t starts;
    int cluster_fd[2]; /* with --cluster-ports: listeners on 8300 and 8301 (-1 = closed) */
    char **log;        /* ring of SIM_LOG_MAX lines */
    size_t log_head;
    size_t log_n;
    uint64_t log_total;
    uint64_t requests;
    /* Listener state, guarded by lmu (never taken while holding dc->mu). */
    pthread_mutex_t lmu;
    struct mg_context *agent_ctx;
    struct mg_context *metrics_ctx;
    bool bind_failed; /* do not retry a failed bind until the listener is wanted again */
};

/* A client agent (Kubernetes node): a serf member with role=node, no listener. */
struct client {
    char name[SIM_NAME_MAX];
    char ip[16];
    char node_id[37];
    int serf_status;
    uint64_t create_index;
};

struct service {
    char node[SIM_NAME_MAX];
    char id[SIM_ID_MAX];
    char name[SIM_ID_MAX];
    int port;
    struct strlist tags;
    uint64_t create_index;
    uint64_t modify_index;
};

struct check {
    char node[SIM_NAME_MAX];
    char id[SIM_ID_MAX];
    char name[SIM_ID_MAX];
    char status[16];
    char service_id[SIM_ID_MAX];
    char *output;
    uint64_t create_index;
    uint64_t modify_index;
};

struct kv_entry {
    char *key;
    unsigned char *val;
    size_t len;
    uint64_t flags;
    uint64_t create_index;
    uint64_t modify_index;
    uint64_t lock_index;
    char session[37];
};

/* One named request counter (a path or a method). */
struct path_count {
    char *path;
    uint64_t n;
};

/* A list of named counters, at most `max` names (then "(other)"). */
struct counts {
    struct path_count *v;
    size_t n;
};

/* A catalog node as the read endpoints see it (server or client); strings are borrowed. */
struct node_ref {
    const char *name;
    const char *ip;
    const char *id;
    int serf_status;
    bool is_server;
    uint64_t create_index;
};

struct dc_options {
    int servers;
    int clients;
    char ip_base[16];
    int http_port;
    int metrics_port;
    char control[64];
    char name[32];
    double speed;
    int64_t stabilization_ms;
    uint64_t seed;      /* for the random timeouts */
    bool cluster_ports; /* also listen on 8300 (server RPC) and 8301 (serf LAN) */
    bool demo_data;
    bool quiet;
    bool exit_on_stdin_eof;
    char *token; /* owned by the options; NULL when ACLs are off */
};

struct dc {
    pthread_mutex_t mu;
    pthread_cond_t cond; /* CLOCK_MONOTONIC; broadcast on every change */
    struct dc_options opt;
    double speed;
    atomic_int latency_ms;
    struct server **servers;
    size_t n_servers;
    struct client **clients;
    size_t n_clients;
    struct service **services;
    size_t n_services;
    struct check **checks;
    size_t n_checks;
    struct kv_entry **kv; /* sorted by key */
    size_t n_kv;
    struct server *leader;
    uint64_t term;
    uint64_t index;
    uint64_t idx_kv;
    uint64_t idx_catalog;
    uint64_t idx_raft;
    int64_t sim_now; /* simulated ms, advanced by dc_clock at `speed` */
    double sim_frac; /* the fraction of a simulated ms not yet counted */
    int64_t last_tick_mono;
    int64_t leader_lost_mono;
    uint64_t rng;            /* splitmix64 state, from opt.seed */
    int64_t election_at_sim; /* when the pending election ends (-1 = none pending) */
    int64_t election_timeouts[SIM_ELECTION_HISTORY]; /* the last timeouts drawn, oldest first */
    size_t n_election_timeouts;
    int64_t leaderless_sim_ms; /* simulated ms without a leader since the start */
    char cluster_id[37];       /* written into a server's data dir by the docker stand-in */
    uint64_t requests_total;
    uint64_t requests_without_token;
    struct counts by_path;   /* agent API requests per decoded path */
    struct counts by_method; /* ... and per HTTP method */
    atomic_bool shutdown;
    pthread_t ticker; /* the model's clock (dc_tick every 5 ms) */
    bool ticker_started;
    pthread_t syncer; /* listener starts and stops */
    bool syncer_started;
    struct mg_context *control_ctx;
    char control_ip[64];
    int control_port;
};

/* ---- cluster.c: the model. Functions named dc_* expect dc->mu held unless noted. ---- */

/* Initialises dc from opt (takes ownership of opt->token). Does not lock. */
void dc_init(struct dc *dc, const struct dc_options *opt);
/* Frees everything; listeners must already be stopped. */
void dc_free(struct dc *dc);
/* Bumps the raft index, marks the resources in mask changed and wakes blocked queries. */
void dc_bump(struct dc *dc, unsigned mask);
uint64_t dc_res_index(const struct dc *dc, unsigned res);
/* Appends a log line "<time> [LEVEL] text" to the server's log ring. */
void dc_log(struct server *s, const char *level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
bool server_up(const struct server *s);
/* Up, a member, and in contact with the others (not restarted without its serf snapshot):
 * what counts for quorum, and the view an agent has of the cluster. */
bool server_in_cluster(const struct server *s);
/* The leader as this agent names it (in /v1/status/leader, X-Consul-KnownLeader), or NULL:
 * for a while after the leader is lost a follower still names it. */
const struct server *dc_agent_leader(const struct dc *dc, const struct server *s);
/* The leader that can answer this agent's forwarded requests now, or NULL. */
const struct server *dc_serving_leader(const struct dc *dc, const struct server *s);
/* Waits (dc->mu held) until s has a serving leader, at most rpc_hold_timeout / speed.
 * Returns true when it has one. */
bool dc_hold_for_leader(struct dc *dc, const struct server *s);
/* Recomputes leadership: keeps a leader with quorum, loses one without, and elects one an
 * election timeout after quorum is there without a leader. */
void dc_recompute(struct dc *dc);
/* Elects a leader at once when quorum holds (the initial cluster, already formed). */
void dc_elect_now(struct dc *dc);
/* Applies a restart policy name ("no", "always", "unless-stopped", "on-failure"); -1 when
 * the name is unknown. */
int restart_policy_parse(const char *name);
const char *restart_policy_name(int policy);
/* Creates a server (not yet in dc, no listeners). retry_join may be NULL. */
struct server *server_new(struct dc *dc, const char *name, const char *ip,
                          const struct strlist *retry_join);
/* Frees a server that is not (or no longer) in dc and has no listeners. */
void server_free(struct server *s);
/* Adds s to dc; with bootstrap it is an alive raft voter at once, else it will retry-join. */
void dc_server_add(struct dc *dc, struct server *s, bool bootstrap);
struct server *dc_find_server(const struct dc *dc, const char *name_or_ip);
struct server *dc_find_server_ip(const struct dc *dc, const char *ip);
struct client *dc_find_client(const struct dc *dc, const char *name);
void dc_server_stop(struct dc *dc, struct server *s, const char *why);
void dc_server_start(struct dc *dc, struct server *s);
void dc_server_leave(struct dc *dc, struct server *s);
void dc_host_down(struct dc *dc, struct server *s);
void dc_host_up(struct dc *dc, struct server *s);
/* force-leave: returns 0, or -1 when no member has that name. */
int dc_force_leave(struct dc *dc, const char *node, bool prune);
/* Removes a raft peer by id or address; -1 when not found. */
int dc_raft_remove(struct dc *dc, const char *id, const char *address);
/* Moves leadership to the voter with that id (or any other up voter); -1 when impossible. */
int dc_transfer_leader(struct dc *dc, const char *id);
/* Advances the simulated clock to now (elapsed real time × speed). */
void dc_clock(struct dc *dc);
/* The simulated time now, without advancing the clock. */
int64_t dc_sim_time(const struct dc *dc);
/* One ticker step: the clock, restarts, retry joins, forgotten leaders, elections, raft
 * reconcile, autopilot promotion. */
void dc_tick(struct dc *dc);
int dc_client_add(struct dc *dc, const char *name, const char *ip);
void dc_client_set_status(struct dc *dc, struct client *c, int serf_status);
/* Catalog nodes (servers and clients that are alive or failed). *out is the caller's. */
size_t dc_nodes(const struct dc *dc, struct node_ref **out);
bool dc_node_lookup(const struct dc *dc, const char *name, struct node_ref *out);
struct service *dc_service_find(const struct dc *dc, const char *node, const char *id);
void dc_service_put(struct dc *dc, const char *node, const char *id, const char *name, int port,
                    const struct strlist *tags);
int dc_service_delete(struct dc *dc, const char *node, const char *id);
struct check *dc_check_find(const struct dc *dc, const char *node, const char *id);
void dc_check_put(struct dc *dc, const char *node, const char *id, const char *name,
                  const char *status, const char *output, const char *service_id);
int dc_check_delete(struct dc *dc, const char *node, const char *id);
/* Counts one agent API request (dc->mu held). */
void dc_count_request(struct dc *dc, struct server *s, const char *method, const char *path,
                      bool had_token);
/* Zeroes the request counters (dc->mu held). */
void dc_requests_reset(struct dc *dc);
void dc_demo_data(struct dc *dc);
void strlist_add(struct strlist *l, const char *s);
void strlist_free(struct strlist *l);
void strlist_copy(struct strlist *dst, const struct strlist *src);
bool strlist_has(const struct strlist *l, const char *s);
void deterministic_uuid(const char *seed, char out[37]);

/* ---- kv.c ---- */
struct kv_entry *kv_find(const struct dc *dc, const char *key);
/* First index whose key >= prefix. */
size_t kv_lower_bound(const struct dc *dc, const char *prefix);
/* Sets a key; with has_cas only when cas matches (0 = must not exist). Returns success. */
bool kv_put(struct dc *dc, const char *key, const void *val, size_t len, uint64_t flags,
            bool has_cas, uint64_t cas);
/* ?acquire= / ?release= of a lock on key for session; returns success. */
bool kv_lock(struct dc *dc, const char *key, const void *val, size_t len, uint64_t flags,
             const char *session, bool acquire);
bool kv_delete(struct dc *dc, const char *key, bool recurse, bool has_cas, uint64_t cas);
void kv_free_all(struct dc *dc);
/* Returns a new JSON object for the entry (Value base64 or null). */
cJSON *kv_entry_json(const struct kv_entry *e);

/* ---- render.c: JSON for the read endpoints (dc->mu held). Results are the caller's. ---- */
cJSON *render_member(const struct dc *dc, const struct server *s, const struct client *c, bool wan);
cJSON *render_members(const struct dc *dc, const struct server *viewer, bool wan);
cJSON *render_node(const struct dc *dc, const struct node_ref *n);
cJSON *render_agent_service(const struct dc *dc, const struct service *svc);
cJSON *render_consul_service(const struct dc *dc, const char *ip);
cJSON *render_check(const struct dc *dc, const struct check *chk, const struct node_ref *n);
cJSON *render_serf_check(const struct dc *dc, const struct node_ref *n);
cJSON *render_raft_config(const struct dc *dc, const struct server *viewer);
cJSON *render_autopilot_health(const struct dc *dc, bool *healthy);
cJSON *render_autopilot_state(const struct dc *dc);
cJSON *render_self(const struct dc *dc, const struct server *s);
cJSON *render_coord(void);
/* All checks of node n (serfHealth first), as a JSON array. */
cJSON *render_node_checks(const struct dc *dc, const struct node_ref *n);
/* Worst of passing < warning < critical. */
const char *status_worse(const char *a, const char *b);

/* ---- web.c: HTTP plumbing shared by the agent, exporter and control listeners ---- */
#define QUERY_MAX 32
struct query {
    size_t n;
    char *k[QUERY_MAX];
    char *v[QUERY_MAX]; /* "" when the parameter had no '=' */
};
void query_parse(const char *qs, struct query *q);
void query_free(struct query *q);
/* The value of key, or NULL when absent. */
const char *query_get(const struct query *q, const char *key);
bool query_has(const struct query *q, const char *key);
/* Parses a Go duration ("5s", "1m30s", "250ms"); returns 0 and sets *ms, or -1. */
int parse_duration_ms(const char *s, int64_t *ms);
/* Parses a decimal uint64; returns 0 or -1. */
int parse_u64(const char *s, uint64_t *out);
const char *status_text(int status);
/* Writes status line, headers (extra: "Name: value\r\n" lines or NULL) and body in one write;
 * no Content-Type when ctype is NULL, no body bytes in the answer to a HEAD request.
 * Returns status. */
int web_reply(struct mg_connection *conn, int status, const char *ctype, const char *extra,
              const void *body, size_t len);
int web_reply_json(struct mg_connection *conn, int status, const char *extra, cJSON *j);
/* Reads the request body up to max bytes into *out (caller frees). Returns 0, 1 when the
 * body is larger than max (rest drained), -1 on a read error. */
int web_read_body(struct mg_connection *conn, size_t max, char **out, size_t *len);
/* Starts a civetweb context on ip:port (port 0 = ephemeral); returns it and sets *bound. */
struct mg_context *web_start(const char *ip, int port, int threads,
                             int (*handler)(struct mg_connection *, void *), void *cbdata,
                             int *bound, char *err, size_t errlen);
/* Stops a context started on ip (NULL ctx is a no-op); returns once the port is closed. */
void web_stop(struct mg_context *ctx, const char *ip);
/* Starts or stops the server's agent and exporter listeners to match the model. Takes
 * s->lmu and briefly dc->mu; the caller must hold neither. Returns 0, or -1 with a message
 * in err when a listener could not bind. */
int listener_sync(struct server *s, char *err, size_t errlen);
/* Stops both listeners (shutdown). */
void listener_stop_all(struct server *s);

/* ---- ports.c: plain TCP listeners on 8300 and 8301 (--cluster-ports), for port checks ---- */
/* Opens or closes them to match want (s->lmu held). */
void cluster_ports_sync(struct server *s, bool want);
/* Accepts and closes what connected (s->lmu held). */
void cluster_ports_drain(struct server *s);

/* ---- agent_api.c / agent_read.c ---- */
int agent_handler(struct mg_connection *conn, void *cbdata);

/* ---- exporter.c ---- */
int exporter_handler(struct mg_connection *conn, void *cbdata);

/* ---- control.c ---- */
int control_handler(struct mg_connection *conn, void *cbdata);
cJSON *control_server_json(const struct dc *dc, const struct server *s);

#endif
