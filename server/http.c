/* http: civetweb set-up, the /api/ dispatcher, replies with the security headers, static
 * files and the HTTP counters. See include/http.h. */
#include "http.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app.h"
#include "audit.h"
#include "config.h"
#include "http_front.h"
#include "json_body.h"
#include "metrics.h"
#include "store.h"
#include "util.h"
#include "webfiles.h"

static const char security_headers[] =
    "Content-Security-Policy: default-src 'self'; frame-ancestors 'none'\r\n"
    "X-Content-Type-Options: nosniff\r\n"
    "Referrer-Policy: no-referrer\r\n"
    "X-Frame-Options: DENY\r\n";

/* ---- counters ---- */

static const int counted_statuses[] = {200, 201, 204, 206, 304, 400, 401, 403, 404, 405, 408,
                                       409, 413, 421, 429, 431, 500, 502, 503, 504, 505};
#define N_STATUS (ARRAY_LEN(counted_statuses) + 1)
#define HTTP_MAX_FILES 65536
#define N_ROUTE_SLOTS 96 /* routes, then "static", "healthz", "none" */
static pthread_mutex_t counters_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t counters[N_ROUTE_SLOTS][N_STATUS];

static void
count_request(int slot, int status)
{
    size_t si = N_STATUS - 1;
    for (size_t i = 0; i < ARRAY_LEN(counted_statuses); i++) {
        if (counted_statuses[i] == status) {
            si = i;
            break;
        }
    }
    if (slot < 0 || slot >= N_ROUTE_SLOTS) {
        slot = N_ROUTE_SLOTS - 1;
    }
    pthread_mutex_lock(&counters_lock);
    counters[slot][si]++;
    pthread_mutex_unlock(&counters_lock);
}

void
http_metrics_write(struct buf *b)
{
    buf_puts(b, "# HELP consulate_http_requests_total HTTP requests served, by route and "
                "status.\n# TYPE consulate_http_requests_total counter\n");
    pthread_mutex_lock(&counters_lock);
    for (int slot = 0; slot < N_ROUTE_SLOTS; slot++) {
        const char *route, *method = "";
        if ((size_t)slot < http_routes_count) {
            route = http_routes[slot].pattern;
            method = http_routes[slot].method;
        } else if (slot == N_ROUTE_SLOTS - 3) {
            route = "static";
        } else if (slot == N_ROUTE_SLOTS - 2) {
            route = "/healthz";
        } else if (slot == N_ROUTE_SLOTS - 1) {
            route = "unmatched";
        } else {
            continue;
        }
        for (size_t si = 0; si < N_STATUS; si++) {
            if (!counters[slot][si]) {
                continue;
            }
            char status[8];
            if (si < ARRAY_LEN(counted_statuses)) {
                snprintf(status, sizeof(status), "%d", counted_statuses[si]);
            } else {
                snprintf(status, sizeof(status), "other");
            }
            buf_printf(b,
                       "consulate_http_requests_total{route=\"%s\",method=\"%s\",status=\"%s\"} "
                       "%llu\n",
                       route, method, status, (unsigned long long)counters[slot][si]);
        }
    }
    pthread_mutex_unlock(&counters_lock);
}

/* ---- replies ---- */

static int
is_api(const struct req *r)
{
    return r->path && str_starts_with(r->path, "/api/");
}

/* The decimal text of n ≥ 0 in out (24 bytes); returns out. */
static const char *
num_text(long long n, char out[24])
{
    char *p = out + 23;
    *p = '\0';
    do {
        *--p = (char)('0' + n % 10);
        n /= 10;
    } while (n > 0 && p > out);
    return p;
}

void
http_head_build(struct req *r, struct buf *b, int status, const char *content_type,
                const char *extra_headers, long long len)
{
    /* built without printf: this runs for every reply */
    char num[24];
    buf_puts(b, "HTTP/1.1 ");
    buf_puts(b, num_text(status, num));
    buf_puts(b, " ");
    buf_puts(b, mg_get_response_code_text(r->conn, status));
    buf_puts(b, "\r\n");
    buf_puts(b, security_headers);
    if (r->tls) {
        buf_puts(b, "Strict-Transport-Security: max-age=31536000\r\n");
    }
    if (is_api(r)) {
        buf_puts(b, "Cache-Control: no-store\r\n");
    }
    if (content_type) {
        buf_puts(b, "Content-Type: ");
        buf_puts(b, content_type);
        buf_puts(b, "\r\n");
    }
    if (extra_headers) {
        buf_puts(b, extra_headers);
    }
    if (len == HTTP_LEN_CHUNKED) {
        buf_puts(b, "Transfer-Encoding: chunked\r\n");
    } else if (len >= 0) {
        buf_puts(b, "Content-Length: ");
        buf_puts(b, num_text(len, num));
        buf_puts(b, "\r\n");
    }
    buf_puts(b, "\r\n");
}

static void refusal_audit(struct req *r, int status);

int
http_reply(struct req *r, int status, const char *content_type, const char *extra_headers,
           const void *body, size_t len)
{
    /* A refused state-changing request is recorded before its answer leaves, so a client
     * never reads the log before the entry exists; without a session, within the budget. */
    if (r->audit_action && status >= 400 && !r->audited) {
        if (r->anon_write && http_anon_refusal(r)) {
            return r->status;
        }
        refusal_audit(r, status);
    }
    /* status line, headers and body in one write (no Nagle stall) */
    struct buf b;
    buf_init(&b, len + 65536);
    http_head_build(r, &b, status, content_type, extra_headers, (long long)len);
    if (strcmp(r->method, "HEAD") != 0 && len) {
        buf_append(&b, body, len);
    }
    mg_write(r->conn, b.data, b.len);
    buf_free(&b);
    r->status = status;
    return status;
}

int
http_reply_json(struct req *r, int status, cJSON *j)
{
    char *s = json_print(j);
    cJSON_Delete(j);
    http_reply(r, status, "application/json; charset=utf-8", NULL, s, strlen(s));
    free(s);
    return status;
}

/* http_reply_error with extra headers (may be NULL) and a va_list. */
static int
reply_error_v(struct req *r, int status, const char *code, const char *headers, const char *fmt,
              va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    cJSON *j = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(j, "error");
    cJSON_AddStringToObject(e, "code", code);
    cJSON_AddStringToObject(e, "message", msg);
    const char *reason = r->deny_reason;
    if (!reason) {
        r->deny_reason = msg; /* for the audit of an anonymous refusal, during the reply */
    }
    char *text = json_print(j);
    cJSON_Delete(j);
    http_reply(r, status, "application/json; charset=utf-8", headers, text, strlen(text));
    free(text);
    r->deny_reason = reason;
    return status;
}

int
http_reply_error(struct req *r, int status, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    reply_error_v(r, status, code, NULL, fmt, ap);
    va_end(ap);
    return status;
}

int
http_reply_error_h(struct req *r, int status, const char *code, const char *headers,
                   const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    reply_error_v(r, status, code, headers, fmt, ap);
    va_end(ap);
    return status;
}

int
http_stream_begin(struct req *r, int status, const char *content_type, const char *extra_headers)
{
    struct buf b;
    buf_init(&b, 65536);
    http_head_build(r, &b, status, content_type, extra_headers, HTTP_LEN_CHUNKED);
    int rc = mg_write(r->conn, b.data, b.len);
    buf_free(&b);
    r->status = status;
    return rc > 0 ? 0 : -1;
}

int
http_stream_write(struct req *r, const void *data, size_t len)
{
    if (len == 0) {
        return 0;
    }
    return mg_send_chunk(r->conn, data, (unsigned int)len) > 0 ? 0 : -1;
}

void
http_stream_end(struct req *r)
{
    mg_send_chunk(r->conn, "", 0);
}

void
http_stream_abort(struct req *r)
{
    mg_disable_connection_keep_alive(r->conn);
}

/* ---- request helpers ---- */

const char *
http_header(struct req *r, const char *name)
{
    return mg_get_header(r->conn, name);
}

char *
http_query(struct req *r, const char *name, int *present)
{
    if (present) {
        *present = 0;
    }
    if (!r->query) {
        return NULL;
    }
    size_t nlen = strlen(name);
    const char *p = r->query;
    while (*p) {
        const char *end = strchr(p, '&');
        size_t seg = end ? (size_t)(end - p) : strlen(p);
        if (seg >= nlen && strncmp(p, name, nlen) == 0 && (seg == nlen || p[nlen] == '=')) {
            if (present) {
                *present = 1;
            }
            if (seg == nlen) {
                return xstrdup("");
            }
            return http_pct_decode(p + nlen + 1, seg - nlen - 1, 1);
        }
        p += seg;
        if (*p == '&') {
            p++;
        }
    }
    return NULL;
}

cJSON *
http_json_body(struct req *r)
{
    cJSON *j = NULL;
    char msg[200];
    if (json_body_parse(r->body, r->body_len, &j, msg, sizeof(msg)) != JSON_BODY_OK) {
        http_reply_error(r, 400, "invalid_json", "%s", msg);
        return NULL;
    }
    return j;
}

int
http_check_fields(struct req *r, const cJSON *in, const char *const *allowed)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, in)
    {
        int ok = 0;
        for (const char *const *a = allowed; *a && !ok; a++) {
            ok = strcmp(it->string, *a) == 0;
        }
        if (!ok) {
            http_reply_error(r, 400, "invalid_field", "unknown field '%s'", it->string);
            return -1;
        }
    }
    return 0;
}

void
http_actor(const struct req *r, struct audit_actor *out)
{
    out->name = r->authenticated ? r->user.name : "";
    out->role = r->authenticated ? role_name(r->user.role) : "";
    out->ip = r->ip;
}

int
http_audit(struct req *r, const char *action, const char *target, cJSON *detail,
           const char *outcome)
{
    struct audit_actor who;
    http_actor(r, &who);
    r->audited = 1;
    return audit_record(r->db, &who, action, target, detail, outcome, NULL);
}

/* Records a request refused before its handler ran (reason names why) under action. */
static void
audit_refusal(struct req *r, const char *action, const char *target, const char *reason)
{
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "method", r->method);
    cJSON_AddStringToObject(d, "path", r->path);
    cJSON_AddStringToObject(d, "reason", reason);
    http_audit(r, action, target, d, "denied");
}

int
http_deny(struct req *r, const char *action, const char *target, const char *why)
{
    if (action) {
        audit_refusal(r, action, target, why);
    }
    return http_reply_error(r, 403, "forbidden", "%s", why);
}

/* ---- the /api/ dispatcher ---- */

static int
method_has_body(const char *m)
{
    return strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0 && strcmp(m, "DELETE") != 0 &&
           strcmp(m, "OPTIONS") != 0;
}

/* Reads the request body, refusing more than max bytes (413 body_too_large: the rest is
 * discarded by civetweb before the next request on the connection). Returns 0, or the
 * status already sent. */
static int
read_body(struct req *r, size_t max)
{
    long long cl = r->ri->content_length;
    if (cl > (long long)max) {
        return http_reply_error(r, 413, "body_too_large", "request body exceeds %zu bytes", max);
    }
    /* Expect: 100-continue (curl sends it for large bodies and would otherwise wait a second
     * before sending): answered once the length is known to be acceptable. civetweb answers
     * it only for its own file handlers. */
    const char *expect = http_header(r, "Expect");
    const char *te = http_header(r, "Transfer-Encoding");
    if (expect) {
        if (strcasecmp(expect, "100-continue") != 0) {
            mg_disable_connection_keep_alive(r->conn);
            return http_reply_error(r, 417, "expectation_failed",
                                    "Expect: %.60s cannot be met (only 100-continue is)", expect);
        }
        if (cl > 0 || te) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            mg_write(r->conn, cont, sizeof(cont) - 1);
        }
    }
    struct buf b;
    buf_init(&b, max);
    char chunk[16384];
    int n;
    while ((n = mg_read(r->conn, chunk, sizeof(chunk))) > 0) {
        if (buf_append(&b, chunk, (size_t)n) != BUF_OK) {
            buf_free(&b);
            return http_reply_error(r, 413, "body_too_large", "request body exceeds %zu bytes",
                                    max);
        }
    }
    /* a body cut short or badly framed is not the client's JSON: the framing is named, and the
     * connection (its position in the stream unknown) is closed after the answer */
    if (n < 0 || (cl > 0 && b.len < (size_t)cl)) {
        size_t got = b.len;
        buf_free(&b);
        mg_disable_connection_keep_alive(r->conn);
        if (cl > 0 && n >= 0) {
            return http_reply_error(r, 400, "bad_request",
                                    "the request body ended after %zu of its %lld bytes "
                                    "(Content-Length)",
                                    got, cl);
        }
        return http_reply_error(r, 400, "bad_request",
                                "the request body could not be read: %s",
                                te ? "its chunked framing is broken"
                                   : "the connection failed or timed out");
    }
    r->body_len = b.len;
    r->body = b.data ? buf_steal(&b) : xstrdup("");
    return 0;
}

/* ---- anonymous write budget ----
 * Every refused state-changing request is audited, but one from a client that is not logged
 * in costs nothing to send: past ANON_BUDGET of them per address in ANON_WINDOW_MS the
 * address gets 429 without a new entry each time (one auth.anonymous_throttled entry marks
 * the start; the rest are counted in consulate_anonymous_writes_suppressed_total). This
 * covers every such refusal: a write to a route that needs a session, and the login route's
 * own refusals (bad JSON or fields, foreign origin, throttled, body too large). Wrong
 * passwords are not counted here: the login throttle bounds them. */
#define ANON_BUDGET 60
#define ANON_WINDOW_MS 60000
#define ANON_SLOTS 256

enum anon_verdict { ANON_AUDIT = 0, ANON_THROTTLE_START, ANON_SUPPRESS };

struct anon_slot {
    char ip[64];
    int64_t window_start;
    int count;
};
static struct anon_slot anon_slots[ANON_SLOTS];
static pthread_mutex_t anon_lock = PTHREAD_MUTEX_INITIALIZER;

static enum anon_verdict
anon_budget_take(const char *ip)
{
    int64_t now = time_mono_ms();
    pthread_mutex_lock(&anon_lock);
    struct anon_slot *slot = NULL, *oldest = &anon_slots[0];
    for (int i = 0; i < ANON_SLOTS; i++) {
        if (strcmp(anon_slots[i].ip, ip) == 0) {
            slot = &anon_slots[i];
            break;
        }
        if (anon_slots[i].window_start < oldest->window_start) {
            oldest = &anon_slots[i];
        }
    }
    if (!slot || now - slot->window_start >= ANON_WINDOW_MS) {
        if (!slot) {
            slot = oldest;
            snprintf(slot->ip, sizeof(slot->ip), "%s", ip);
        }
        slot->window_start = now;
        slot->count = 0;
    }
    slot->count++;
    enum anon_verdict v = slot->count <= ANON_BUDGET       ? ANON_AUDIT
                          : slot->count == ANON_BUDGET + 1 ? ANON_THROTTLE_START
                                                           : ANON_SUPPRESS;
    pthread_mutex_unlock(&anon_lock);
    return v;
}

int
http_anon_refusal(struct req *r)
{
    if (!r->anon_write) {
        return 0;
    }
    r->anon_write = 0;
    enum anon_verdict v = anon_budget_take(r->ip);
    if (v == ANON_AUDIT) {
        return 0;
    }
    store_rollback(r->db);
    if (v == ANON_THROTTLE_START) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "method", r->method);
        cJSON_AddStringToObject(d, "path", r->path);
        cJSON_AddNumberToObject(d, "limit", ANON_BUDGET);
        cJSON_AddNumberToObject(d, "window_s", ANON_WINDOW_MS / 1000);
        http_audit(r, "auth.anonymous_throttled", r->ip, d, "denied");
    } else {
        metrics_add(METRIC_ANON_SUPPRESSED, 1);
    }
    r->audited = 1;
    r->deny_reason = NULL;
    static const char body[] =
        "{\"error\":{\"code\":\"too_many_requests\",\"message\":\"too many refused requests "
        "without a session from this address; try again in a minute\"}}";
    return http_reply(r, 429, "application/json; charset=utf-8", "Retry-After: 60\r\n", body,
                      sizeof(body) - 1);
}

/* Records the refusal (status >= 400) of a state-changing request that nothing recorded yet
 * (with or without a session; without one only within the budget), after rolling back
 * whatever the handler had begun. Called by http_reply before the answer is sent. */
static void
refusal_audit(struct req *r, int status)
{
    store_rollback(r->db);
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "method", r->method);
    cJSON_AddStringToObject(d, "path", r->path);
    cJSON_AddNumberToObject(d, "status", status);
    cJSON_AddStringToObject(d, "reason", r->deny_reason ? r->deny_reason : "refused");
    /* as the dispatcher records them: refused by login, CSRF or throttle, else failed */
    int denied = status == 401 || status == 403 || status == 429;
    http_audit(r, r->audit_action, r->audit_target, d, denied ? "denied" : "error");
}

/* True when the Origin header, if any, names this server (scheme://Host). */
static int
origin_ok(struct req *r)
{
    const char *origin = http_header(r, "Origin");
    if (!origin) {
        return 1;
    }
    const char *host = http_header(r, "Host");
    if (!host) {
        return 0;
    }
    char expect[512];
    snprintf(expect, sizeof(expect), "%s://%s", r->tls ? "https" : "http", host);
    return strcmp(origin, expect) == 0;
}

static int
authenticate(struct req *r)
{
    const char *cookies = http_header(r, "Cookie");
    char token[128];
    if (!cookies || mg_get_cookie(cookies, SESSION_COOKIE, token, sizeof(token)) <= 0) {
        return AUTH_NO_SESSION;
    }
    int rc = auth_session_lookup(r->db, r->app->cfg, token, &r->user);
    secret_wipe(token, sizeof(token));
    if (rc == AUTH_OK) {
        r->authenticated = 1;
    }
    return rc;
}

static int
metrics_token_ok(struct req *r)
{
    const char *want = r->app->cfg->metrics_token;
    const char *authz = http_header(r, "Authorization");
    return want && authz && str_starts_with(authz, "Bearer ") && str_ct_equal(authz + 7, want);
}

/* The decision of the static route fields, or of the route's decide hook. */
static void
decide(struct req *r, const struct route *rt, struct route_decision *d)
{
    memset(d, 0, sizeof(*d));
    d->action = rt->action;
    d->target = r->nparams > 0 ? r->params[0] : "";
    d->least = rt->min_role;
    if (rt->decide) {
        rt->decide(r, d);
    }
    if (!d->target) {
        d->target = "";
    }
}

/* 1 when a parameter of the query string q would not percent-decode (http_pct_decode's rule:
 * '%' not followed by two hex digits, or %00, where the C string would end and a filter would
 * silently drop); its name (as sent, cut to fit) in name. Scans, decodes nothing. */
static int
query_bad_param(const char *q, char *name, size_t namelen)
{
    while (q && *q) {
        size_t seg = strcspn(q, "&");
        int bad = 0;
        for (size_t i = 0; i < seg && !bad; i++) {
            bad = q[i] == '%' && (i + 2 >= seg || !isxdigit((unsigned char)q[i + 1]) ||
                                  !isxdigit((unsigned char)q[i + 2]) ||
                                  (q[i + 1] == '0' && q[i + 2] == '0'));
        }
        if (bad) {
            size_t nl = strcspn(q, "=");
            nl = nl < seg ? nl : seg;
            snprintf(name, namelen, "%.*s", (int)(nl < 40 ? nl : 40), q);
            return 1;
        }
        q += seg;
        q += *q == '&';
    }
    return 0;
}

static int
dispatch(struct req *r)
{
    int path_matched = 0;
    const struct route *rt = route_find(http_routes, http_routes_count, r->method, r->path,
                                        r->params, &r->nparams, &path_matched);
    if (!rt) {
        if (path_matched) {
            return http_reply_error(r, 405, "method_not_allowed",
                                    "method %s is not allowed on %s", r->method, r->path);
        }
        return http_reply_error(r, 404, "not_found", "no such route: %s", r->path);
    }
    r->route = rt;
    int writes = strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0;
    struct route_decision d;
    decide(r, rt, &d);

    r->audit_action = writes ? d.action : NULL;
    r->audit_target = d.target;
    r->anon_write = writes && d.action; /* until a session is found: refusals are budgeted */

    if (!(rt->flags & ROUTE_PUBLIC)) {
        int arc = authenticate(r);
        if (arc == AUTH_ERROR) {
            return http_reply_error(r, 500, "internal", "session lookup failed");
        }
        if (arc != AUTH_OK) {
            if ((rt->flags & ROUTE_METRICS) && metrics_token_ok(r)) {
                return rt->fn(r);
            }
            r->deny_reason = "not logged in";
            return http_reply_error(r, 401, "unauthenticated", "log in first");
        }
        r->anon_write = 0;
    }
    if (writes) {
        const char *csrf = http_header(r, "X-CSRF-Token");
        int bad_origin = !origin_ok(r);
        int bad_token = r->authenticated && (!csrf || !str_ct_equal(csrf, r->user.csrf_token));
        if (bad_origin || bad_token) {
            r->deny_reason = bad_origin ? "cross-origin request" : "missing or wrong CSRF token";
            if (d.action && !r->anon_write) {
                audit_refusal(r, d.action, d.target, r->deny_reason);
            }
            return http_reply_error(r, 403, "csrf",
                                    bad_origin ? "cross-origin request refused"
                                               : "missing or wrong X-CSRF-Token header");
        }
    }
    if (d.refuse_status == 403) {
        return http_deny(r, d.action, d.target, d.reason);
    }
    char bad_param[48];
    if (query_bad_param(r->query, bad_param, sizeof(bad_param))) {
        return http_reply_error(r, 400, "invalid_parameter",
                                "query parameter '%s' has a bad percent-encoding (or %%00)",
                                bad_param);
    }
    if (d.refuse_status) {
        http_reply_error_h(r, d.refuse_status, d.refuse_code, d.refuse_headers, "%s", d.reason);
    } else if (r->authenticated && r->user.role < d.least) {
        char why[512];
        snprintf(why, sizeof(why), "%s %s needs the %s role (you are %s)", r->method,
                 rt->decide ? d.target : r->path, role_name(d.least), role_name(r->user.role));
        return http_deny(r, d.action, d.target, why);
    } else if (!method_has_body(r->method) ||
               read_body(r, rt->max_body ? rt->max_body : HTTP_MAX_BODY) == 0) {
        rt->fn(r);
    }
    /* Every state-changing request leaves a trace: one a handler refused (bad input,
     * conflict) without recording it is recorded here, after its rollback. */
    if (writes && d.action && !r->audited) {
        store_rollback(r->db);
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "method", r->method);
        cJSON_AddStringToObject(j, "path", r->path);
        cJSON_AddNumberToObject(j, "status", r->status);
        http_audit(r, d.action, d.target, j, r->status < 400 ? "ok" : "error");
    }
    return r->status;
}

/* The value of the last header called name, or NULL: a proxy appends its own line after
 * whatever the client sent. */
static const char *
last_header(const struct mg_request_info *ri, const char *name)
{
    const char *v = NULL;
    for (int i = 0; i < ri->num_headers; i++) {
        if (strcasecmp(ri->http_headers[i].name, name) == 0) {
            v = ri->http_headers[i].value;
        }
    }
    return v;
}

/* Fills r from the connection. Behind a trusted proxy (trusted_proxies) the protocol and
 * client address are those the proxy reports in X-Forwarded-Proto and X-Forwarded-For;
 * from any other peer both headers are ignored. */
static void
req_init(struct req *r, struct mg_connection *conn)
{
    memset(r, 0, sizeof(*r));
    r->conn = conn;
    r->ri = mg_get_request_info(conn);
    r->app = r->ri->user_data;
    r->method = r->ri->request_method;
    r->path = r->ri->local_uri_raw ? r->ri->local_uri_raw : r->ri->local_uri;
    r->query = r->ri->query_string;
    r->tls = r->ri->is_ssl;
    snprintf(r->ip, sizeof(r->ip), "%s", r->ri->remote_addr);
    if (front_peer_trusted(r->ri->remote_addr, r->app->cfg->trusted_proxies)) {
        front_forwarded(last_header(r->ri, "X-Forwarded-Proto"),
                        last_header(r->ri, "X-Forwarded-For"), &r->tls, r->ip, sizeof(r->ip));
    }
}

static void
req_clear(struct req *r)
{
    if (r->ctx_free) {
        r->ctx_free(r->ctx);
    }
    for (int i = 0; i < r->nparams; i++) {
        free(r->params[i]);
    }
    free(r->body);
    if (r->db) {
        store_rollback(r->db); /* a handler that failed mid-transaction leaves nothing */
    }
}

static int
api_handler(struct mg_connection *conn, void *cbdata)
{
    (void)cbdata;
    struct req r;
    req_init(&r, conn);
    r.db = store_thread(r.app->cfg->database);
    if (!r.db) {
        http_reply_error(&r, 500, "internal", "database unavailable");
    } else {
        dispatch(&r);
    }
    int slot = N_ROUTE_SLOTS - 1;
    if (r.route) {
        slot = (int)(r.route - http_routes);
    }
    count_request(slot, r.status);
    req_clear(&r);
    return r.status ? r.status : 500;
}

/* ---- static files ---- */

static const char *
content_type_for(const char *path)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".json", "application/json; charset=utf-8"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".txt", "text/plain; charset=utf-8"},
        {".woff2", "font/woff2"},
    };
    for (size_t i = 0; i < ARRAY_LEN(types); i++) {
        if (str_ends_with(path, types[i].ext)) {
            return types[i].type;
        }
    }
    return "application/octet-stream";
}

/* The request path decoded and checked: encoded or literal "..", NUL and other control
 * characters, backslashes and empty segments are refused (NULL); "/" is "/index.html". */
static char *
static_path(const char *path)
{
    char *rel = http_pct_decode(path, strlen(path), 0);
    if (!rel) { /* undecodable, or an encoded NUL */
        return NULL;
    }
    if (strcmp(rel, "/") == 0) {
        free(rel);
        return xstrdup("/index.html");
    }
    int bad = rel[0] != '/' || strstr(rel, "..") || strchr(rel, '\\') || strstr(rel, "//");
    for (const char *p = rel; *p && !bad; p++) {
        bad = (unsigned char)*p < 0x20 || *p == 0x7f;
    }
    if (bad) {
        free(rel);
        return NULL;
    }
    return rel;
}

/* Serves a file under web_root (developing: the files as they are on disk, no-cache). 0
 * when there is no such regular file inside the root. */
static int
disk_file(struct req *r, const char *rel)
{
    char root_real[PATH_MAX], file_real[PATH_MAX];
    if (!realpath(r->app->cfg->web_root, root_real)) {
        return 0;
    }
    char *full = xasprintf("%s%s", root_real, rel);
    int found = realpath(full, file_real) && str_starts_with(file_real, root_real) &&
                file_real[strlen(root_real)] == '/';
    free(full);
    struct stat st;
    if (!found || stat(file_real, &st) != 0 || !S_ISREG(st.st_mode)) {
        return 0;
    }
    size_t len;
    char *body = file_read_all(file_real, 16 << 20, &len);
    if (!body) {
        return 0;
    }
    int status =
        http_reply(r, 200, content_type_for(file_real), "Cache-Control: no-cache\r\n", body, len);
    free(body);
    return status;
}

/* 1 when the Accept-Encoding header accepts gzip (a q of 0 refuses it). */
static int
accepts_gzip(const char *ae)
{
    while (ae && *ae) {
        ae += strspn(ae, " \t,");
        size_t n = strcspn(ae, ",;");
        int gzip = (n == 4 && strncasecmp(ae, "gzip", 4) == 0) || (n == 1 && ae[0] == '*');
        const char *q = ae + n;
        const char *end = q + strcspn(q, ",");
        if (gzip) {
            const char *qv = strstr(q, "q=");
            if (qv && qv < end) {
                return strtod(qv + 2, NULL) > 0;
            }
            return 1;
        }
        ae = end;
    }
    return 0;
}

/* 1 when an If-None-Match list names etag (or is "*"); weak comparison, as RFC 9110 asks. */
static int
etag_matches(const char *inm, const char *etag)
{
    size_t elen = strlen(etag);
    while (inm && *inm) {
        inm += strspn(inm, " \t,");
        if (*inm == '*') {
            return 1;
        }
        if (strncmp(inm, "W/", 2) == 0) {
            inm += 2;
        }
        size_t n = strcspn(inm, ", \t");
        if (n == elen && memcmp(inm, etag, n) == 0) {
            return 1;
        }
        inm += n;
    }
    return 0;
}

/* Serves an embedded file: the gzip variant to a client that takes it, a strong ETag and 304
 * on a matching If-None-Match. Under /v/<web_version>/ (what index.html references) the
 * assets are immutable for a year; anything else is revalidated each time (no-cache). */
static int
embedded_file(struct req *r, const char *rel)
{
    size_t vlen = strlen(web_version);
    int versioned = strncmp(rel, "/v/", 3) == 0 && strncmp(rel + 3, web_version, vlen) == 0 &&
                    rel[3 + vlen] == '/';
    if (versioned) {
        rel += 3 + vlen;
        if (strcmp(rel, "/index.html") == 0) {
            return 0; /* its references are relative to / */
        }
    }
    const struct web_file *f = NULL;
    for (const struct web_file *w = web_files; w->path; w++) {
        if (strcmp(w->path, rel) == 0) {
            f = w;
            break;
        }
    }
    if (!f) {
        return 0;
    }
    int gz = f->gz && accepts_gzip(mg_get_header(r->conn, "Accept-Encoding"));
    const char *etag = gz ? f->gz_etag : f->etag;
    char headers[256];
    snprintf(headers, sizeof(headers),
             "Cache-Control: %s\r\nETag: %s\r\n%sVary: Accept-Encoding\r\n",
             versioned ? "public, max-age=31536000, immutable" : "no-cache", etag,
             gz ? "Content-Encoding: gzip\r\n" : "");
    if (etag_matches(mg_get_header(r->conn, "If-None-Match"), etag)) {
        struct buf b;
        buf_init(&b, 1024);
        http_head_build(r, &b, 304, NULL, headers, -1);
        mg_write(r->conn, b.data, b.len);
        buf_free(&b);
        r->status = 304;
        return 304;
    }
    return http_reply(r, 200, content_type_for(f->path), headers, gz ? f->gz : f->data,
                      gz ? f->gz_len : f->len);
}

/* Serves the single-page app: compiled in, or from web_root when that is set. Directories are
 * not listed; anything not found is 404. */
static int
static_handler(struct mg_connection *conn, void *cbdata)
{
    (void)cbdata;
    struct req r;
    req_init(&r, conn);
    int status = 0;
    char *rel = NULL;
    if (strcmp(r.method, "GET") != 0 && strcmp(r.method, "HEAD") != 0) {
        status = http_reply(&r, 405, "text/plain; charset=utf-8", "Allow: GET, HEAD\r\n",
                            "method not allowed\n", 19);
        goto out;
    }
    rel = static_path(r.path);
    if (rel) {
        status = r.app->cfg->web_root ? disk_file(&r, rel) : embedded_file(&r, rel);
    }
    if (!status) {
        status = http_reply(&r, 404, "text/plain; charset=utf-8", NULL, "not found\n", 10);
    }
out:
    count_request(N_ROUTE_SLOTS - 3, status);
    free(rel);
    return status;
}

static int
healthz_handler(struct mg_connection *conn, void *cbdata)
{
    (void)cbdata;
    struct req r;
    req_init(&r, conn);
    char body[128];
    int n = snprintf(body, sizeof(body), "{\"ok\":true,\"version\":\"%s\"}", CONSULATE_VERSION);
    int status = http_reply(&r, 200, "application/json", "Cache-Control: no-store\r\n", body,
                            (size_t)n);
    count_request(N_ROUTE_SLOTS - 2, status);
    return status;
}

/* /metrics shares the dispatcher (auth by admin session or bearer token). */
static int
metrics_handler(struct mg_connection *conn, void *cbdata)
{
    return api_handler(conn, cbdata);
}

static int
log_message(const struct mg_connection *conn, const char *message)
{
    (void)conn;
    log_warn("civetweb: %s", message);
    return 1;
}

/* ---- before the handlers: Host check, connection timing, civetweb's own errors ---- */

/* Every request, whatever its route: a Host header that does not name this console (DNS
 * rebinding: a page on an attacker's name that now resolves to this address) is refused
 * with 421, two Host headers with 400. No Host at all (HTTP/1.0 health checks) passes: a
 * browser always sends one. More than one Content-Length, Transfer-Encoding, Origin or
 * X-CSRF-Token, or both Content-Length and Transfer-Encoding, is 400 (RFC 9112 6.1, 6.3:
 * civetweb would go by one of them, and read what follows the body it took as the next
 * request: request smuggling behind a proxy that goes by the other). A refused request's
 * connection is closed after the answer: its body, unread, must not be read as a request.
 * Returns 0 to go on, or the status sent. */
static int
begin_request(struct mg_connection *conn)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);
    const struct app *app = ri->user_data;
    /* headers a request may carry once: the framing and what the checks read (a second one
     * would be what another parser, or only the first one here, goes by) */
    static const char *const once[] = {"Content-Length", "Transfer-Encoding", "Origin",
                                       "X-CSRF-Token"};
    int count[ARRAY_LEN(once)] = {0};
    const char *host = NULL;
    int n = 0;
    for (int i = 0; i < ri->num_headers; i++) {
        if (strcasecmp(ri->http_headers[i].name, "Host") == 0) {
            host = ri->http_headers[i].value;
            n++;
        }
        for (size_t k = 0; k < ARRAY_LEN(once); k++) {
            count[k] += strcasecmp(ri->http_headers[i].name, once[k]) == 0;
        }
    }
    const char *twice = NULL;
    for (size_t k = 0; k < ARRAY_LEN(once) && !twice; k++) {
        twice = count[k] > 1 ? once[k] : NULL;
    }
    int both = count[0] && count[1]; /* Content-Length and Transfer-Encoding */
    if (!twice && !both &&
        (n == 0 || (n == 1 && front_host_allowed(host, app->cfg->allowed_hosts)))) {
        return 0;
    }
    struct req r;
    req_init(&r, conn);
    mg_disable_connection_keep_alive(conn);
    int status;
    if (twice) {
        status = http_reply_error(&r, 400, "bad_request", "the request has more than one %s header",
                                  twice);
    } else if (both) {
        status = http_reply_error(&r, 400, "bad_request",
                                  "the request has both Content-Length and Transfer-Encoding "
                                  "(RFC 9112 6.1: which one frames the body is ambiguous)");
    } else if (n > 1) {
        status = http_reply_error(&r, 400, "invalid_host", "the request has %d Host headers", n);
    } else {
        status = http_reply_error(&r, 421, "invalid_host",
                                  "Host \"%.100s\" is not a name this console answers to (use its "
                                  "IP address, localhost, or a name listed in allowed_hosts)",
                                  host);
    }
    count_request(N_ROUTE_SLOTS - 1, status);
    return status;
}

/* civetweb keeps one pointer per connection for us: we store when the connection started
 * waiting for its next request, in ms, shifted left by one, with the low bit set once a
 * request has been served (then the wait is the keep-alive timeout, not the header one). */
static uintptr_t
wait_stamp(int served)
{
    return ((uintptr_t)time_mono_ms() << 1) | (uintptr_t)(served ? 1 : 0);
}

static int
init_connection(const struct mg_connection *conn, void **data)
{
    (void)conn;
    *data = (void *)wait_stamp(0);
    return 0;
}

static void
end_request(const struct mg_connection *conn, int status)
{
    (void)status;
    mg_set_user_connection_data(conn, (void *)wait_stamp(1));
}

/* The status, code and message of an error civetweb found before any handler ran. civetweb
 * 1.15 reports a header timeout, oversized headers, control characters and a request cut
 * short all as 400 "Malformed message"; the timeout is told apart by the time the connection
 * has waited (408). */
static int
civetweb_error(const struct mg_connection *conn, const struct config *cfg, int status,
               const char *msg, const char **code, char *text, size_t tlen)
{
    if (status == 400 && strcmp(msg, "Malformed message") == 0) {
        uintptr_t stamp = (uintptr_t)mg_get_user_connection_data(conn);
        int limit_s = (stamp & 1) ? cfg->keep_alive_s : cfg->header_timeout_s;
        if (stamp && time_mono_ms() - (int64_t)(stamp >> 1) >= (int64_t)limit_s * 1000 - 250) {
            *code = "request_timeout";
            snprintf(text, tlen, "the request line and headers did not arrive within %d s",
                     limit_s);
            return 408;
        }
        *code = "bad_request";
        snprintf(text, tlen,
                 "malformed request: control characters in the request line or headers, more "
                 "than %d bytes of them, or a request that ended early",
                 HTTP_MAX_HEAD);
        return 400;
    }
    switch (status) {
    case 400:
        *code = "bad_request";
        break;
    case 404:
        *code = "not_found";
        break;
    case 405:
        *code = "method_not_allowed";
        break;
    case 505:
        *code = "http_version_not_supported";
        break;
    default:
        *code = status >= 500 ? "internal" : "bad_request";
        break;
    }
    snprintf(text, tlen, "%s", msg && *msg ? msg : mg_get_response_code_text(conn, status));
    return status;
}

/* civetweb's http_error callback: the errors civetweb writes itself (a bad request line,
 * oversized headers, a header timeout, an unsupported HTTP version) get the security
 * headers and a JSON body like every other reply, and close the connection. Returns 0
 * (handled). */
static int
error_page(struct mg_connection *conn, int status, const char *msg)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);
    const struct app *app = ri->user_data;
    const char *code = "bad_request";
    char text[512];
    int out = civetweb_error(conn, app->cfg, status, msg ? msg : "", &code, text, sizeof(text));
    cJSON *j = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(j, "error");
    cJSON_AddStringToObject(e, "code", code);
    cJSON_AddStringToObject(e, "message", text);
    char *body = json_print(j);
    cJSON_Delete(j);
    struct req r;
    memset(&r, 0, sizeof(r));
    r.conn = conn;
    r.ri = ri;
    r.tls = ri->is_ssl;
    r.path = "/api/"; /* an error document: never stored (Cache-Control: no-store) */
    struct buf b;
    size_t len = strlen(body);
    buf_init(&b, len + 8192);
    http_head_build(&r, &b, out, "application/json; charset=utf-8", "Connection: close\r\n",
                    (long long)len);
    buf_append(&b, body, len);
    mg_write(conn, b.data, b.len);
    buf_free(&b);
    free(body);
    count_request(N_ROUTE_SLOTS - 1, out);
    return 0;
}

/* Every connection a worker holds is a descriptor, and so is each worker's cached connection
 * to Consul: with hundreds of threads the usual soft limit of 1024 open files is within
 * reach. Raises it to the hard limit (at most HTTP_MAX_FILES). */
static void
raise_file_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return;
    }
    rlim_t want = HTTP_MAX_FILES;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want) {
        want = rl.rlim_max;
    }
    if (rl.rlim_cur < want) {
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            log_warn("http: cannot raise the open-file limit to %llu: %s", (unsigned long long)want,
                     strerror(errno));
        }
    }
}

struct mg_context *
http_start(struct app *app, int *port_out, char *err, size_t errlen)
{
    raise_file_limit();
    const struct config *cfg = app->cfg;
    char threads[16], header_ms[16], keep_alive_ms[16], max_head[16];
    snprintf(threads, sizeof(threads), "%d", cfg->threads);
    snprintf(header_ms, sizeof(header_ms), "%d", cfg->header_timeout_s * 1000);
    snprintf(keep_alive_ms, sizeof(keep_alive_ms), "%d", cfg->keep_alive_s * 1000);
    snprintf(max_head, sizeof(max_head), "%d", HTTP_MAX_HEAD);
    int tls = cfg->tls_certificate != NULL;
    char ports_opt[300];
    snprintf(ports_opt, sizeof(ports_opt), "%s%s", cfg->listen, tls ? "s" : "");
    if (tls && access(cfg->tls_certificate, R_OK) != 0) {
        snprintf(err, errlen, "cannot read tls.certificate %s: %s", cfg->tls_certificate,
                 strerror(errno));
        return NULL;
    }
    /* civetweb 1.15 waits request_timeout_ms for the headers of a connection's first request
     * (and uses it for every later read or write of the connection), and
     * keep_alive_timeout_ms for the next request on a kept-alive one. */
    /* clang-format off */
    const char *options[32] = {
        "listening_ports", ports_opt,
        "num_threads", threads,
        "enable_keep_alive", "yes",
        "keep_alive_timeout_ms", keep_alive_ms,
        "request_timeout_ms", header_ms,
        "max_request_size", max_head,
        "tcp_nodelay", "1",
        "decode_url", "no",
    };
    /* clang-format on */
    size_t no = 16;
    if (tls) {
        options[no++] = "ssl_certificate";
        options[no++] = cfg->tls_certificate;
        options[no++] = "ssl_protocol_version"; /* TLS 1.2 and newer only */
        options[no++] = "4";
    }
    options[no] = NULL;
    struct mg_callbacks cb = {
        .log_message = log_message,
        .begin_request = begin_request,
        .end_request = end_request,
        .init_connection = init_connection,
        .http_error = error_page,
    };
    if (tls && !(mg_init_library(MG_FEATURES_TLS) & MG_FEATURES_TLS)) {
        snprintf(err, errlen, "TLS is not available (OpenSSL could not be loaded)");
        return NULL;
    }
    if (!tls) {
        mg_init_library(0);
    }
    struct mg_context *ctx = mg_start(&cb, app, options);
    if (!ctx) {
        snprintf(err, errlen,
                 tls ? "cannot listen on %s with TLS (address in use, or a bad certificate "
                       "or key in tls.certificate)"
                     : "cannot listen on %s (address in use or not available)",
                 cfg->listen);
        return NULL;
    }
    mg_set_request_handler(ctx, "/api/", api_handler, NULL);
    mg_set_request_handler(ctx, "/api", api_handler, NULL);
    mg_set_request_handler(ctx, "/metrics$", metrics_handler, NULL);
    mg_set_request_handler(ctx, "/healthz$", healthz_handler, NULL);
    mg_set_request_handler(ctx, "/", static_handler, NULL);
    struct mg_server_port ports[4];
    memset(ports, 0, sizeof(ports));
    int n = mg_get_server_ports(ctx, 4, ports);
    *port_out = n > 0 ? ports[0].port : 0;
    if (front_tune_listeners(*port_out, cfg->header_timeout_s) == 0) {
        log_warn("http: no listening socket found for port %d: TCP keepalive is off", *port_out);
    }
    return ctx;
}

void
http_stop(struct mg_context *ctx)
{
    if (ctx) {
        struct mg_server_port ports[4];
        memset(ports, 0, sizeof(ports));
        int n = mg_get_server_ports(ctx, 4, ports);
        for (int i = 0; i < n; i++) {
            front_stop_listeners(ports[i].port);
        }
        mg_stop(ctx);
    }
}
