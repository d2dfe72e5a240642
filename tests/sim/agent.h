/* agent: one request to a server agent's HTTP API, shared by agent_api.c (dispatch, status,
 * operator and agent endpoints) and agent_read.c (catalog, health, KV, coordinates). */
#ifndef CONSUL_SIM_AGENT_H
#define CONSUL_SIM_AGENT_H

#include "sim.h"

enum consistency {
    MODE_DEFAULT = 0,
    MODE_STALE,
    MODE_CONSISTENT,
    MODE_LEADER,
};

struct areq {
    struct mg_connection *conn;
    const struct mg_request_info *ri;
    struct server *s;
    struct dc *dc;
    const char *method;
    const char *path;
    const char *tail; /* the path after a prefix route, e.g. the KV key */
    struct query q;
    int mode;
    bool mode_given;
    uint64_t min_index; /* ?index=, 0 when not blocking */
    int64_t wait_ms;
    struct buf hdr; /* extra response headers (X-Consul-*) */
};

/* Replies (after the simulated latency) with the meta headers collected in r->hdr. */
int agent_text(struct areq *r, int status, const char *text);
int agent_json(struct areq *r, int status, cJSON *j);
int agent_raw(struct areq *r, int status, const char *ctype, const void *body, size_t len);
/* Starts a read: checks leadership for the consistency mode, blocks when ?index= asks for
 * it, and sets the X-Consul-* headers. Returns 0 with dc->mu HELD (the caller renders and
 * unlocks), or the HTTP status already sent with dc->mu released. res 0 = no index. */
int agent_begin_read(struct areq *r, unsigned res, bool needs_leader);

/* agent_read.c handlers; each returns the HTTP status it sent. */
int h_catalog_datacenters(struct areq *r);
int h_catalog_nodes(struct areq *r);
int h_catalog_services(struct areq *r);
int h_catalog_service(struct areq *r);
int h_catalog_node(struct areq *r);
int h_catalog_node_services(struct areq *r);
int h_health_state(struct areq *r);
int h_health_node(struct areq *r);
int h_health_checks(struct areq *r);
int h_health_service(struct areq *r);
int h_kv(struct areq *r);
int h_coordinate_datacenters(struct areq *r);
int h_coordinate_nodes(struct areq *r);
int h_snapshot(struct areq *r);

#endif
