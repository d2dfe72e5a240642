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

/* 501 for a method Consul accepts on an endpoint but the simulator does not model. */
int agent_not_simulated(struct areq *r);
/* Replies (after the simulated latency) with the meta headers collected in r->hdr. */
int agent_text(struct areq *r, int status, const char *text);
int agent_json(struct areq *r, int status, cJSON *j);
int agent_raw(struct areq *r, int status, const char *ctype, const void *body, size_t len);
/* Starts a read: checks leadership for the consistency mode, blocks when ?index= asks for
 * it, and sets the X-Consul-* headers. Returns 0 with dc->mu HELD (the caller renders and
 * unlocks), or the HTTP status already sent with dc->mu released. res 0 = no index. */
int agent_begin_read(struct areq *r, unsigned res, bool needs_leader);

/* gohttp.c: Go's net/http path handling in front of Consul's handlers. */
/* Percent-decodes a request path ('+' stays '+'); returns 0 with *out (the caller frees,
 * NUL-terminated, *len bytes: it may contain NUL), or -1 for an invalid escape. */
int gohttp_path_unescape(const char *raw, char **out, size_t *len);
/* Whether every character of the decoded path is printable (unicode.IsPrint). */
bool gohttp_path_printable(const char *p, size_t len);
/* ServeMux's cleanPath: path.Clean keeping a trailing slash. The caller frees. */
char *gohttp_clean_path(const char *p);
/* The path escaped as url.URL.EscapedPath does for a Location header. The caller frees. */
char *gohttp_escape_path(const char *p);
/* The query as url.Values.Encode() writes it: keys sorted, "k=v" joined by '&', both
 * escaped as url.QueryEscape does. The caller frees. */
char *gohttp_query_encode(const struct query *q);

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
