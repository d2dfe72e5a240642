/* cluster: the pure cluster model. Consul JSON bodies (as text) go in; a model of the
 * servers, clients, leader, quorum, the seed document's status check, a strict health verdict
 * and a list of problems comes out. No HTTP, no globals, no threads, no clock reads: the
 * caller passes the fetch time and "now". Depends only on util and cJSON. */
#ifndef CONSULATE_CLUSTER_H
#define CONSULATE_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

struct prom_sample;

/* One scrape of consul_exporter (:9107) on a server host. Numbers are NAN when absent. */
struct cluster_exporter {
    const char *address; /* server IP, no port */
    int reachable;       /* the scrape succeeded */
    double consul_up, raft_peers, raft_leader, serf_lan_members;
};

/* A server the inventory says should run (a node whose last successful job or import made it
 * a server): name is the inventory name, address its host (IP or DNS name, no port). */
struct cluster_expected {
    const char *name;
    const char *address;
};

/* Everything the model is built from. Every string is borrowed for the duration of
 * cluster_model_build only. Any body may be NULL: not fetched or unavailable. */
struct cluster_input {
    int reachable;              /* could we reach any Consul agent at all */
    int64_t updated_at_ms;      /* when these inputs were fetched (UTC ms) */
    int64_t now_ms;             /* for age computations */
    const char *datacenter;     /* from /v1/agent/self Config.Datacenter, may be NULL */
    const char *raft_json;      /* GET /v1/operator/raft/configuration */
    const char *members_json;   /* GET /v1/agent/members */
    const char *autopilot_json; /* GET /v1/operator/autopilot/health (body of 200 OR 429) */
    const char *health_json;    /* GET /v1/health/state/any */
    const char *leader_addr;    /* GET /v1/status/leader, unquoted, "" = none known */
    const struct cluster_exporter *exporters; /* per-server exporter scrape */
    size_t n_exporters;
    const struct cluster_expected *expected; /* from the inventory; may be NULL */
    size_t n_expected;
};

struct cluster_error {
    char message[256];
};

enum cluster_rc { CLUSTER_OK = 0, CLUSTER_BAD_JSON = 1 };

/* Serf member status; the values 0..4 are serf's own (hashicorp/serf MemberStatus). */
enum cluster_serf {
    CLUSTER_SERF_NONE = 0,
    CLUSTER_SERF_ALIVE = 1,
    CLUSTER_SERF_LEAVING = 2,
    CLUSTER_SERF_LEFT = 3,
    CLUSTER_SERF_FAILED = 4,
    CLUSTER_SERF_UNKNOWN = 5 /* not a member, members not fetched, or a value serf lacks */
};

/* Worst check status of a node, in increasing severity. */
enum cluster_check {
    CLUSTER_CHECK_NONE = 0,
    CLUSTER_CHECK_PASSING,
    CLUSTER_CHECK_WARNING,
    CLUSTER_CHECK_CRITICAL,
    CLUSTER_CHECK_MAINTENANCE
};

/* Problem codes, in the order problems are listed. The web UI translates by code, so the
 * names (cluster_problem_code_name) are a stable contract. */
enum cluster_problem_code {
    CLUSTER_P_CONSUL_UNREACHABLE = 0,
    CLUSTER_P_NO_LEADER,
    CLUSTER_P_SERVER_NOT_VOTER,
    CLUSTER_P_SERVER_FAILED,
    CLUSTER_P_SERVER_LEFT,
    CLUSTER_P_RAFT_PEER_UNKNOWN,
    CLUSTER_P_SERVER_NOT_IN_RAFT,
    CLUSTER_P_SERVER_MISSING,
    CLUSTER_P_EVEN_SERVER_COUNT,
    CLUSTER_P_LOW_FAILURE_TOLERANCE,
    CLUSTER_P_AUTOPILOT_UNHEALTHY,
    CLUSTER_P_CHECK_CRITICAL,
    CLUSTER_P_COUNT_
};

/* At most this many check_critical problems are listed (GET /api/health has them all). */
#define CLUSTER_MAX_CHECK_PROBLEMS 100

struct cluster_server {
    char *node;
    char *id;      /* raft ID, or the member tag "id" for a server not in raft; may be "" */
    char *address; /* raft address "IP:port"; member Addr[:port tag] when not in raft */
    int voter;
    int leader;
    int in_raft;    /* listed in the raft configuration */
    int in_members; /* matched to a serf member */
    enum cluster_serf serf_status;
    int healthy;
    char *version;      /* member tag build up to ':' (else autopilot Version), NULL unknown */
    char *last_contact; /* autopilot LastContact, NULL unknown */
    int has_last_index;
    uint64_t last_index;
    int autopilot_known;   /* this server appears in the autopilot reply */
    int autopilot_healthy; /* its Healthy flag (0 when not known) */
    enum cluster_check check_status;
    int has_exporter;
    int exporter_reachable;
    double exporter_consul_up, exporter_raft_peers, exporter_raft_leader;
    double exporter_serf_lan_members;
};

struct cluster_client {
    char *node;
    char *address;
    enum cluster_serf serf_status;
};

struct cluster_problem {
    enum cluster_problem_code code;
    char *message; /* plain English sentence, the UI's fallback */
    char *node;    /* NULL unless the problem is about one node */
};

struct cluster_model {
    int reachable;
    char *datacenter; /* NULL unknown */
    int64_t updated_at_ms;
    int64_t age_ms;                 /* now - updated_at, never negative */
    int leader_index;               /* index into servers, -1 when there is no known leader */
    struct cluster_server *servers; /* sorted by node name, then address */
    size_t n_servers;
    struct cluster_client *clients; /* sorted by node name */
    size_t n_clients;
    size_t clients_alive, clients_failed, clients_left, clients_leaving, clients_none;
    int raft_known;        /* raft_json was given */
    int members_known;     /* members_json was given */
    int autopilot_known;   /* autopilot_json was given */
    int leader_addr_known; /* leader_addr was given (even "") */
    int autopilot_healthy;
    int voters;
    int quorum_size;
    int failure_tolerance;
    int seed_ok;
    char *seed_detail;
    int healthy;
    struct cluster_problem *problems;
    size_t n_problems;
};

/* Builds the model from in. Returns CLUSTER_OK and sets *out (the caller frees it with
 * cluster_model_free), or CLUSTER_BAD_JSON with err naming the input that is not JSON of
 * the expected top-level type; *out is then NULL. Unknown fields are ignored. */
int cluster_model_build(const struct cluster_input *in, struct cluster_model **out,
                        struct cluster_error *err);

/* Frees the model and everything in it. NULL is a no-op. */
void cluster_model_free(struct cluster_model *m);

/* The /api/cluster JSON of the model. The caller owns the result (cJSON_Delete). */
cJSON *cluster_model_to_json(const struct cluster_model *m);

/* What the model knows of the host at address (IP or DNS name, without port): whether a serf
 * member (server or client) has that address, whether a server does, and that server's raft
 * and serf state. */
struct cluster_match {
    int member;
    int server;
    int in_raft;
    int voter;
    int leader;
    enum cluster_serf serf_status; /* CLUSTER_SERF_UNKNOWN when no member matched */
    const char *node;              /* the matched server's or client's node name, borrowed
                                      from the model; NULL when none */
};
/* Fills out for address. Returns 1 when anything matched, else 0 (out zeroed, serf unknown).
 * Host names compare case-insensitively. */
int cluster_model_match(const struct cluster_model *m, const char *address,
                        struct cluster_match *out);

/* 1 when the host parts of two addresses ("IP:port", "[v6]:port", bare hosts) are equal. */
int cluster_host_equal(const char *a, const char *b);

/* Returns 1 when the model lists a problem with the code (for any node), else 0. */
int cluster_model_has_problem(const struct cluster_model *m, enum cluster_problem_code code);

/* The stable name of a problem code ("no_leader"); "unknown" for an out-of-range value. */
const char *cluster_problem_code_name(enum cluster_problem_code code);

/* "none", "alive", "leaving", "left", "failed" or "unknown". */
const char *cluster_serf_name(enum cluster_serf s);

/* "none", "passing", "warning", "critical" or "maintenance". */
const char *cluster_check_name(enum cluster_check c);

/* Fills e from one parsed exporter scrape: consul_up, consul_raft_peers, consul_raft_leader
 * and consul_serf_lan_members, NAN where absent. address is borrowed (stored as is). */
void cluster_exporter_fill(struct cluster_exporter *e, const char *address, int reachable,
                           const struct prom_sample *s, size_t n);

/* GET /api/health from a /v1/health/state/any body: counts per status and every check,
 * failing first (maintenance, critical, warning, passing), then by node and check_id. A
 * check is "maintenance" when its CheckID is _node_maintenance or starts with
 * _service_maintenance:. Returns a new object the caller owns, or NULL with err set when
 * the text is not a JSON array. */
cJSON *cluster_health_to_json(const char *health_json, struct cluster_error *err);

#endif
