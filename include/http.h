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
    const char *path;     /* the path as sent (not decoded), e.g. "/api/users/alice" */
    const char *query;    /* raw query string, NULL when none */
    char ip[64];
    const struct route *route;
    char *params[HTTP_MAX_PARAMS]; /* decoded {name} captures, then the '*' tail */
    int nparams;
    int authenticated;
    struct auth_user user;
    char *body;           /* request body (NUL-terminated), read by the dispatcher once the
                             request is allowed, at most the route's max_body bytes */
    size_t body_len;
    void *ctx;            /* what the route's decide hook parsed, for the handler */
    void (*ctx_free)(void *ctx); /* frees ctx when the request ends (may be NULL) */
    int status;           /* status sent, for the access counters */
    int audited;          /* http_audit was called for this request */
    int tls;
    const char *audit_action; /* a state-changing request's audit action and target (set by */
    const char *audit_target; /* the dispatcher; NULL action for reads) */
    int anon_write;       /* state-changing and without a session: a refusal passes the
                             per-address budget (http_anon_refusal) */
    const char *deny_reason; /* why the request is refused, for the audit detail (NULL: the
                                error message) */
};

typedef int (*route_handler)(struct req *r);

enum route_flags {
    ROUTE_PUBLIC = 1,  /* no session needed (login, healthz) */
    ROUTE_METRICS = 4, /* /metrics: admin session or the configured bearer token */
};

/* What the dispatcher enforces for one request before the handler runs, in this order:
 * authentication (401), CSRF for state-changing methods (403 csrf), the hook's refusal, the
 * least role (403 forbidden). Every denial is recorded in the audit log under action
 * (reads too, when action is set; anonymous ones only for state-changing methods), and a
 * state-changing request the handler did not record is recorded after it. */
struct route_decision {
    const char *action;      /* audit action, NULL = none; borrowed from the route or r->ctx */
    const char *target;      /* audit target, "" when none; borrowed */
    enum role least;         /* the least role allowed */
    int refuse_status;       /* 0, or the status of a refusal the hook found (400, 403, 405) */
    const char *refuse_code; /* its error code: "invalid_path", "forbidden", … */
    const char *refuse_headers; /* extra reply headers of the refusal ("Allow: …\r\n"), or NULL */
    char reason[384];        /* the refusal's message, naming the problem */
};

/* One route. Routes are written with designated initializers in server/routes.c. */
struct route {
    const char *method;  /* "GET", "POST", …, or "*" for any */
    const char *pattern; /* "/api/users/{name}"; a final "*" matches the rest */
    route_handler fn;
    enum role min_role;  /* the least role (for routes without decide) */
    const char *action;  /* audit action of a state-changing route (for routes without
                            decide); NULL for reads */
    unsigned flags;
    size_t max_body;     /* the largest request body accepted; 0 = HTTP_MAX_BODY */
    /* For routes whose permission depends on the request (the proxy): fills d (action,
     * target, least role, or a refusal) from the method, path and query, without I/O, and
     * may leave what it parsed in r->ctx (with r->ctx_free) for the handler. Runs before
     * authentication; the handler runs only when d allowed the request. */
    void (*decide)(struct req *r, struct route_decision *d);
};

/* The route table (server/routes.c). */
extern const struct route http_routes[];
extern const size_t http_routes_count;

/* Pure: percent-decodes n bytes of s ('+' as a space when plus_is_space, for query
 * strings). Returns a new string the caller frees, or NULL when an escape is malformed or
 * decodes to NUL (so the result never hides a shorter string). */
char *http_pct_decode(const char *s, size_t n, int plus_is_space);

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
/* The same with extra headers ("Name: value\r\n…", may be NULL). */
int http_reply_error_h(struct req *r, int status, const char *code, const char *headers,
                       const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Every refusal (status >= 400) of a state-changing request without a session that has not
 * been audited yet is recorded by http_reply before it is sent (actor "", the route's action,
 * outcome denied for 401/403/429 and error otherwise, detail method, path, status, reason)
 * after passing this budget; a handler that records its own refusal calls it first. Takes
 * one unit of the client address's budget (60 a minute) and returns 0 when within it: record
 * and send the refusal as usual. Past it, sends 429 too_many_requests itself (the first time
 * recording auth.anonymous_throttled, afterwards only counting
 * consulate_anonymous_writes_suppressed_total), marks r audited and returns 429. Only the
 * first call for a request takes from the budget. */
int http_anon_refusal(struct req *r);
/* Replies 403 and records the denial in the audit log under action. */
int http_deny(struct req *r, const char *action, const char *target, const char *why);

/* Appends a reply's status line and headers to b: the security headers, Cache-Control:
 * no-store for /api/, Content-Type when not NULL, extra_headers, then Content-Length: len,
 * or Transfer-Encoding: chunked when len is HTTP_LEN_CHUNKED, or neither for HTTP_LEN_NONE;
 * and the blank line. For handlers that write the body themselves (the proxy's stream). */
#define HTTP_LEN_CHUNKED (-1)
#define HTTP_LEN_NONE (-2)
struct buf;
void http_head_build(struct req *r, struct buf *b, int status, const char *content_type,
                     const char *extra_headers, long long len);

/* Chunked streaming replies (export, SSE). */
int http_stream_begin(struct req *r, int status, const char *content_type,
                      const char *extra_headers);
/* Returns 0 on success, -1 when the client went away. */
int http_stream_write(struct req *r, const void *data, size_t len);
void http_stream_end(struct req *r);
/* Ends a stream that failed midway: the terminating chunk is not sent and the connection is
 * closed once the handler returns, so the client sees a truncated transfer at once rather
 * than a complete-looking body (or a wait for the keep-alive timeout). */
void http_stream_abort(struct req *r);

/* ---- request helpers ---- */
/* Parses the body as a JSON object. On failure replies 400 (naming the problem) and returns
 * NULL; the caller returns r->status. The result belongs to the caller. */
cJSON *http_json_body(struct req *r);
/* Refuses a body with a member not in allowed (NULL-terminated): replies 400 invalid_field
 * naming the first unknown field and returns -1; 0 when every member is allowed. */
int http_check_fields(struct req *r, const cJSON *in, const char *const *allowed);
/* The decoded value of a query parameter, newly allocated, or NULL when absent or badly
 * encoded. *present (may be NULL) is set when the name appears even without a value
 * ("?keys"): present with NULL means a malformed escape (or %00). */
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
