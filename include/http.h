/* http: the civetweb server, the one dispatcher for /api/ (authentication, CSRF, permission,
 * audit of denials, access counters), JSON replies, security headers and static files.
 * Handlers live in server/api_*.c and are listed in the route table in server/routes.c. */
#ifndef CONSULATE_HTTP_H
#define CONSULATE_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <civetweb.h>
#include <cjson/cJSON.h>

#include "auth.h"

struct app;
struct store;
struct route;

/* The session cookie's name (set by api_session.c, read by the dispatcher). */
#define SESSION_COOKIE "consulate_session"
#define HTTP_MAX_BODY (1024 * 1024)
/* The largest request line plus headers civetweb reads (larger: 400 bad_request). */
#define HTTP_MAX_HEAD 16384
#define HTTP_MAX_PARAMS 4

/* One API request as a handler sees it. Strings are borrowed for the request's lifetime. */
struct req {
    struct mg_connection *conn;
    const struct mg_request_info *ri;
    struct app *app;
    struct store *db;     /* this worker thread's connection */
    const char *method;
    const char *path;     /* decoded path, e.g. "/api/users/alice" */
    const char *query;    /* raw query string, NULL when none */
    char ip[64];
    const struct route *route;
    char *params[HTTP_MAX_PARAMS]; /* decoded {name} captures, then the '*' tail */
    int nparams;
    int authenticated;
    struct auth_user user;
    char *body;           /* request body (NUL-terminated), read by the dispatcher unless the
                             route has ROUTE_STREAM_BODY */
    size_t body_len;
    int status;           /* status sent, for the access counters */
    int audited;          /* http_audit was called for this request */
    int tls;
};

typedef int (*route_handler)(struct req *r);

enum route_flags {
    ROUTE_PUBLIC = 1,      /* no session needed (login, healthz) */
    ROUTE_STREAM_BODY = 2, /* the handler reads the body itself (proxy) */
    ROUTE_METRICS = 4,     /* /metrics: admin session or the configured bearer token */
};

struct route {
    const char *method;  /* "GET", "POST", …, or "*" for any */
    const char *pattern; /* "/api/users/{name}"; a final "*" matches the rest */
    route_handler fn;
    enum role min_role;
    const char *action;  /* audit action of a state-changing route (denials are recorded under
                            it); NULL for reads */
    unsigned flags;
    /* For routes whose action and target depend on the request (the proxy): fills both and
     * returns 0; used instead of action and the first capture when set and successful. */
    int (*action_of)(const struct req *r, char *action, size_t alen, char *target, size_t tlen);
};

/* The route table (server/routes.c). */
extern const struct route http_routes[];
extern const size_t http_routes_count;

/* Pure: matches path against a pattern. On a match returns 1 and stores newly allocated,
 * percent-decoded captures in params (the caller frees them), *nparams their count. */
int route_match(const char *pattern, const char *path, char **params, int maxparams,
                int *nparams);
/* Pure: finds the route for method and path. *path_matched is set when some route matches
 * the path with another method (→ 405). Captures as for route_match. */
const struct route *route_find(const struct route *table, size_t n, const char *method,
                               const char *path, char **params, int *nparams,
                               int *path_matched);

/* Starts civetweb on cfg->listen serving /api/, /healthz, /metrics and web_root. Returns
 * NULL with a message on failure. *port_out gets the bound port (listen port 0 picks one). */
struct mg_context *http_start(struct app *app, int *port_out, char *err, size_t errlen);
void http_stop(struct mg_context *ctx);

/* ---- replies (each returns the status sent) ---- */
/* Sends body with the security headers, Cache-Control: no-store for /api/, and
 * Content-Length. extra_headers is "Name: value\r\n…" or NULL. */
int http_reply(struct req *r, int status, const char *content_type, const char *extra_headers,
               const void *body, size_t len);
/* Sends j as JSON and deletes it. */
int http_reply_json(struct req *r, int status, cJSON *j);
/* Sends {"error":{"code":code,"message":…}}. */
int http_reply_error(struct req *r, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Replies 403 and records the denial in the audit log under action. */
int http_deny(struct req *r, const char *action, const char *target, const char *why);

/* Chunked streaming replies (export, SSE). */
int http_stream_begin(struct req *r, int status, const char *content_type,
                      const char *extra_headers);
/* Returns 0 on success, -1 when the client went away. */
int http_stream_write(struct req *r, const void *data, size_t len);
void http_stream_end(struct req *r);

/* ---- request helpers ---- */
/* Parses the body as a JSON object. On failure replies 400 (naming the problem) and returns
 * NULL; the caller returns r->status. The result belongs to the caller. */
cJSON *http_json_body(struct req *r);
/* The decoded value of a query parameter, newly allocated, or NULL when absent. *present
 * (may be NULL) is set when the name appears even without a value ("?keys"). */
char *http_query(struct req *r, const char *name, int *present);
/* A request header (borrowed) or NULL. */
const char *http_header(struct req *r, const char *name);

/* The audit actor of this request: the user (or "" when not logged in) and the client
 * address. Borrows from r. */
struct audit_actor;
void http_actor(const struct req *r, struct audit_actor *out);
/* audit_record for this request (actor, role and ip from r), marking it audited. detail is
 * consumed (may be NULL). Call between store_begin and store_commit to make it atomic with
 * the change. Returns a store_rc. */
int http_audit(struct req *r, const char *action, const char *target, cJSON *detail,
               const char *outcome);

/* Counters for GET /metrics, kept by the dispatcher. Writes the Prometheus text of the HTTP
 * counters into b. */
struct buf;
void http_metrics_write(struct buf *b);

#endif
