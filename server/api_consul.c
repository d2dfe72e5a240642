/* api_consul: the audited proxy /api/consul/v1/… → Consul /v1/….
 *
 * The route's decide hook (api_consul_decide) parses the path and query once, into a struct
 * proxy handed to the handler, and tells the dispatcher the audit action, the target (the
 * normalised Consul path) and the least role from the allowlist (proxy_policy.c), or why the
 * request is refused; the dispatcher enforces all of it. The handler then forwards the
 * canonical path with the server's token:
 *  - a read (GET, HEAD) is streamed back as Consul sends it (status and headers as soon as
 *    they arrive, then the body), after failover over the agents while nothing was sent;
 *    a blocking read holds one of the user's blocking-read slots and waits at most
 *    consul.proxy_max_wait_s;
 *  - a write is recorded first (an audit entry with outcome "pending": method, path, query,
 *    body hash, and for KV the value before and after, which is the KV history), sent only
 *    when that record is stored, and followed by an outcome entry naming the attempt. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api.h"
#include "app.h"
#include "audit.h"
#include "config.h"
#include "consul.h"
#include "metrics.h"
#include "proxy_policy.h"
#include "slots.h"
#include "store.h"
#include "util.h"

#define PROXY_PREFIX "/api/consul"
#define KV_PREFIX "/v1/kv/"
#define KV_RECURSE_LIST_MAX 100
#define QUERY_MAX (1 << 20)

/* What the decide hook learnt about one request; the handler's r->ctx. Owned strings. */
struct proxy {
    struct proxy_path path; /* decoded, normalised (target) and canonical (sent) */
    char *query;            /* the query to forward (token removed, wait clamped), "" if none */
    char *dc_query;         /* "?dc=…" (or "") for the KV reads that go with a write */
    int read;               /* GET or HEAD */
    int has_index;          /* a blocking query */
    int wait_s;             /* its wait, clamped to consul.proxy_max_wait_s */
    int raw_kv;             /* ?raw on a KV path */
    int recurse;
    int kv_write; /* PUT or DELETE under /v1/kv/ */
    char action[64];
};

static void
proxy_free(void *ctx)
{
    struct proxy *p = ctx;
    if (!p) {
        return;
    }
    proxy_path_free(&p->path);
    free(p->query);
    free(p->dc_query);
    free(p);
}

/* ---- the query ---- */

/* Parses a Go duration of one or more number+unit pairs ("5s", "2m", "1m30s", "250ms") into
 * whole seconds rounded up. Returns -1 when it is not one. */
static long
parse_wait(const char *s)
{
    double total_ms = 0;
    if (!*s) {
        return -1;
    }
    while (*s) {
        char *end;
        double v = strtod(s, &end);
        if (end == s || v < 0) {
            return -1;
        }
        s = end;
        double mult;
        if (str_starts_with(s, "ms")) {
            mult = 1;
            s += 2;
        } else if (*s == 's') {
            mult = 1000;
            s++;
        } else if (*s == 'm') {
            mult = 60000;
            s++;
        } else if (*s == 'h') {
            mult = 3600000;
            s++;
        } else {
            return -1;
        }
        total_ms += v * mult;
    }
    if (total_ms > 1e9) {
        total_ms = 1e9;
    }
    return (long)((total_ms + 999) / 1000);
}

/* Calls fn for each parameter of q: its text as sent and its decoded name and value (NULL
 * when undecodable or, for the value, absent). */
static void
query_each(const char *q,
           void (*fn)(void *ud, const char *seg, size_t seglen, const char *name,
                      const char *value),
           void *ud)
{
    while (q && *q) {
        size_t seg = strcspn(q, "&");
        size_t nlen = strcspn(q, "=");
        if (nlen > seg) {
            nlen = seg;
        }
        char *name = http_pct_decode(q, nlen, 1);
        char *value = nlen < seg ? http_pct_decode(q + nlen + 1, seg - nlen - 1, 1) : NULL;
        fn(ud, q, seg, name, value);
        free(name);
        free(value);
        q += seg;
        if (*q == '&') {
            q++;
        }
    }
}

struct query_scan {
    struct proxy *p;
    int is_kv;
    long wait; /* the browser's wait in seconds, -1 when none */
    struct buf out, dc;
};

/* First pass: the parameters the proxy acts on. */
static void
scan_param(void *ud, const char *seg, size_t seglen, const char *name, const char *value)
{
    struct query_scan *qs = ud;
    if (!name) {
        return;
    }
    if (strcmp(name, "index") == 0 || strcmp(name, "hash") == 0) {
        qs->p->has_index = 1;
    } else if (strcmp(name, "wait") == 0 && value) {
        qs->wait = parse_wait(value);
    } else if (strcmp(name, "raw") == 0) {
        qs->p->raw_kv = qs->is_kv;
    } else if (strcmp(name, "recurse") == 0) {
        qs->p->recurse = 1;
    } else if (strcmp(name, "dc") == 0 && qs->dc.len == 0) {
        buf_puts(&qs->dc, "?");
        buf_append(&qs->dc, seg, seglen);
    }
}

/* Second pass: what is forwarded, as the browser encoded it, without token (the server's
 * token is sent instead) and, for a blocking query, without wait (the clamped one follows).
 * An undecodable name is forwarded as is: Consul will not read it as "token" either. */
static void
copy_param(void *ud, const char *seg, size_t seglen, const char *name, const char *value)
{
    (void)value;
    struct query_scan *qs = ud;
    if (seglen == 0 || (name && strcmp(name, "token") == 0) ||
        (name && qs->p->has_index && strcmp(name, "wait") == 0)) {
        return;
    }
    if (qs->out.len) {
        buf_puts(&qs->out, "&");
    }
    buf_append(&qs->out, seg, seglen);
}

static void
query_scan(struct proxy *p, const char *q, int max_wait_s)
{
    struct query_scan qs = {.p = p, .is_kv = str_starts_with(p->path.norm, KV_PREFIX), .wait = -1};
    buf_init(&qs.out, QUERY_MAX);
    buf_init(&qs.dc, 4096);
    query_each(q, scan_param, &qs);
    query_each(q, copy_param, &qs);
    if (p->has_index) {
        p->wait_s = qs.wait < 0 || qs.wait > max_wait_s ? max_wait_s : (int)qs.wait;
        if (p->wait_s == 0) {
            p->wait_s = 1;
        }
        buf_printf(&qs.out, "%swait=%ds", qs.out.len ? "&" : "", p->wait_s);
    }
    p->query = qs.out.data ? buf_steal(&qs.out) : xstrdup("");
    p->dc_query = qs.dc.data ? buf_steal(&qs.dc) : xstrdup("");
}

/* ---- the decision ---- */

void
api_consul_decide(struct req *r, struct route_decision *d)
{
    struct proxy *p = xcalloc(1, sizeof(*p));
    r->ctx = p;
    r->ctx_free = proxy_free;
    d->target = r->path;
    if (!proxy_method_bit(r->method)) {
        d->refuse_status = 405;
        d->refuse_code = "method_not_allowed";
        d->refuse_headers = "Allow: GET, HEAD, PUT, POST, DELETE\r\n";
        snprintf(d->reason, sizeof(d->reason),
                 "the Consul API uses GET, HEAD, PUT, POST and DELETE, not %s", r->method);
        return;
    }
    const char *why = proxy_path_parse(r->path + strlen(PROXY_PREFIX), &p->path);
    if (why) {
        d->refuse_status = 400;
        d->refuse_code = "invalid_path";
        snprintf(d->reason, sizeof(d->reason), "%s", why);
        return;
    }
    p->read = proxy_method_bit(r->method) == PROXY_GET;
    p->kv_write = str_starts_with(p->path.norm, KV_PREFIX) &&
                  (strcmp(r->method, "PUT") == 0 || strcmp(r->method, "DELETE") == 0);
    proxy_action_name(r->method, p->path.norm, p->action, sizeof(p->action));
    d->action = p->action;
    d->target = p->path.norm;
    const struct proxy_rule *rule = proxy_rule_find(r->method, p->path.norm);
    if (!rule) {
        d->refuse_status = 403;
        d->refuse_code = "forbidden";
        snprintf(d->reason, sizeof(d->reason),
                 "%s %s is not in the proxy's allowlist (see the Consul proxy section of the "
                 "README)",
                 r->method, p->path.norm);
        return;
    }
    if (rule->least == ROLE_NONE) {
        d->refuse_status = 403;
        d->refuse_code = "forbidden";
        snprintf(d->reason, sizeof(d->reason), "%s %s is never allowed through the proxy: %s",
                 r->method, p->path.norm, rule->why);
        return;
    }
    d->least = rule->least;
    query_scan(p, r->query, r->app->cfg->consul_proxy_max_wait_s);
}

/* ---- audited changes ---- */

int
api_change_attempt(struct req *r, const char *action, const char *target, cJSON *detail,
                   int64_t *attempt_id)
{
    struct audit_actor who;
    http_actor(r, &who);
    r->audited = 1; /* refused below or recorded: the dispatcher records nothing more */
    if (audit_record(r->db, &who, action, target, detail, "pending", attempt_id) != STORE_OK) {
        http_reply_error(r, 503, "audit_unavailable",
                         "the audit log cannot be written, so the change was not sent to "
                         "Consul; try again later");
        return -1;
    }
    return 0;
}

void
api_change_outcome(struct req *r, const char *action, const char *target, int64_t attempt_id,
                   cJSON *detail, const char *outcome)
{
    struct audit_actor who;
    http_actor(r, &who);
    cJSON_AddNumberToObject(detail, "attempt_id", (double)attempt_id);
    if (audit_record(r->db, &who, action, target, detail, outcome, NULL) != STORE_OK) {
        log_error("audit: the outcome (%s) of entry %lld, %s %s, could not be recorded", outcome,
                  (long long)attempt_id, action, target);
    }
}

/* ---- the KV record that goes with a write ---- */

/* Adds to detail what a KV write is about to change: for a key "previous"
 * {"exists","value_b64"…,"modify_index","flags"} ({"unknown":true} when it cannot be read),
 * for a recursive delete the list of keys ("keys", up to KV_RECURSE_LIST_MAX) and their
 * count. Reads the canonical path: the key Consul will write. */
static void
kv_previous(struct req *r, const struct proxy *p, cJSON *detail)
{
    struct consul_client *c = r->app->consul;
    struct consul_opts opts = {.forwarded_for = r->ip};
    if (p->recurse && strcmp(r->method, "DELETE") == 0) {
        char *path = xasprintf("%s%s%s", p->path.canonical, p->dc_query[0] ? p->dc_query : "?",
                               p->dc_query[0] ? "&keys" : "keys");
        struct consul_response resp;
        int rc = consul_request(c, "GET", path, NULL, 0, &opts, &resp);
        free(path);
        if (rc == CONSUL_OK && (resp.status == 200 || resp.status == 404)) {
            cJSON *keys = resp.status == 200 ? json_parse_str(resp.body) : NULL;
            int n = cJSON_IsArray(keys) ? cJSON_GetArraySize(keys) : 0;
            if (n <= KV_RECURSE_LIST_MAX) {
                cJSON_AddItemToObject(detail, "keys", keys ? keys : cJSON_CreateArray());
                keys = NULL;
            }
            cJSON_AddNumberToObject(detail, "key_count", n);
            cJSON_Delete(keys);
        } else {
            cJSON_AddStringToObject(detail, "keys_error", "could not list the keys");
        }
        consul_response_free(&resp);
        return;
    }
    char *path = xasprintf("%s%s", p->path.canonical, p->dc_query);
    struct consul_kv kv;
    int rc = consul_kv_read(c, path, &opts, &kv, NULL);
    free(path);
    cJSON *prev;
    if (rc == CONSUL_OK) {
        prev = api_kv_value_json(&kv);
    } else {
        prev = cJSON_CreateObject();
        cJSON_AddBoolToObject(prev, "unknown", 1);
    }
    consul_kv_clear(&kv);
    cJSON_AddItemToObject(detail, "previous", prev);
}

/* ---- replies ---- */

/* A Content-Type the proxy lets through to the browser; anything else becomes text/plain
 * so that nothing Consul returns can render as a page on the console's origin. */
static const char *
safe_content_type(const struct proxy *p, const char *ct)
{
    if (p->raw_kv) {
        return "text/plain; charset=utf-8";
    }
    if (!ct || !ct[0]) {
        return NULL;
    }
    if (str_starts_with(ct, "application/json") || str_starts_with(ct, "text/plain") ||
        str_starts_with(ct, "application/octet-stream") ||
        str_starts_with(ct, "application/x-gzip")) {
        return ct;
    }
    return "text/plain; charset=utf-8";
}

/* Consul's pass-through headers without Content-Type (chosen by safe_content_type), plus
 * Content-Disposition: attachment for ?raw KV reads (CVE-2020-25864), appended to b. */
static void
passthrough_headers(const struct proxy *p, const char *headers, struct buf *b)
{
    const char *s = headers ? headers : "";
    while (*s) {
        const char *eol = strstr(s, "\r\n");
        size_t len = eol ? (size_t)(eol - s) + 2 : strlen(s);
        if (strncasecmp(s, "Content-Type:", 13) != 0) {
            buf_append(b, s, len);
        }
        s += len;
    }
    if (p->raw_kv) {
        buf_puts(b, "Content-Disposition: attachment\r\n");
    }
}

/* Sends a buffered answer of Consul (a write's). */
static int
reply_answer(struct req *r, const struct proxy *p, const struct consul_response *resp)
{
    struct buf h;
    buf_init(&h, 32768);
    passthrough_headers(p, resp->headers, &h);
    int status = http_reply(r, (int)resp->status, safe_content_type(p, resp->content_type),
                            h.len ? h.data : NULL, resp->body, resp->len);
    buf_free(&h);
    return status;
}

static int
reply_unreachable(struct req *r, int rc, const struct consul_response *resp)
{
    if (rc == CONSUL_TOO_BIG) {
        return http_reply_error(r, 502, "consul_response_too_large",
                                "Consul's answer exceeds %d bytes (consul.max_body_bytes)",
                                r->app->cfg->consul_max_body);
    }
    if (rc == CONSUL_ERROR) {
        return http_reply_error(r, 502, "consul_error", "the request to Consul failed: %s",
                                resp->error);
    }
    struct buf list;
    buf_init(&list, 8192);
    struct consul_client *c = r->app->consul;
    for (size_t i = 0; i < consul_address_count(c); i++) {
        buf_printf(&list, "%s%s", i ? ", " : "", consul_address(c, i));
    }
    int status =
        http_reply_error(r, 502, "consul_unreachable", "no Consul agent answered (tried %s): %s",
                         list.data ? list.data : "", resp->error);
    buf_free(&list);
    return status;
}

/* ---- reads: streamed ---- */

/* The client side of a streamed answer. The status line and headers wait in pending until
 * the first piece of the body (or the end), so they leave in one write with it. */
struct stream_out {
    struct req *r;
    const struct proxy *p;
    int head_only; /* HEAD, 1xx, 204, 304: no body */
    int chunked;   /* Consul gave no Content-Length */
    int started;   /* bytes have been written to the client */
    struct buf pending;
    struct buf frame; /* a chunk's framing and data, written at once */
};

static int
out_write(struct stream_out *o, const void *data, size_t len)
{
    if (len && mg_write(o->r->conn, data, len) != (int)len) {
        return -1; /* the client went away */
    }
    o->started = 1;
    return 0;
}

static int
sink_head(void *ud, const struct consul_head *h)
{
    struct stream_out *o = ud;
    int status = (int)h->status;
    o->head_only =
        strcmp(o->r->method, "HEAD") == 0 || status < 200 || status == 204 || status == 304;
    o->chunked = !o->head_only && h->content_length < 0;
    struct buf extra;
    buf_init(&extra, 65536);
    passthrough_headers(o->p, h->headers, &extra);
    long long len = o->chunked                                ? HTTP_LEN_CHUNKED
                    : h->content_length >= 0 && status != 204 ? h->content_length
                                                              : HTTP_LEN_NONE;
    buf_reset(&o->pending);
    http_head_build(o->r, &o->pending, status, safe_content_type(o->p, h->content_type),
                    extra.len ? extra.data : NULL, len);
    buf_free(&extra);
    o->r->status = status;
    return 0;
}

static int
sink_data(void *ud, const void *data, size_t len)
{
    struct stream_out *o = ud;
    if (o->head_only || len == 0) {
        return 0;
    }
    if (!o->started) {
        /* the head and the first piece in one write (no Nagle stall) */
        if (o->chunked) {
            buf_printf(&o->pending, "%zx\r\n", len);
        }
        buf_append(&o->pending, data, len);
        if (o->chunked) {
            buf_puts(&o->pending, "\r\n");
        }
        int rc = out_write(o, o->pending.data, o->pending.len);
        buf_free(&o->pending);
        return rc;
    }
    if (!o->chunked) {
        return out_write(o, data, len);
    }
    buf_reset(&o->frame);
    buf_printf(&o->frame, "%zx\r\n", len);
    buf_append(&o->frame, data, len);
    buf_puts(&o->frame, "\r\n");
    return out_write(o, o->frame.data, o->frame.len);
}

/* Ends a streamed answer: whatever is pending, and the last chunk. */
static void
stream_finish(struct stream_out *o)
{
    if (!o->started) {
        if (o->chunked) {
            buf_puts(&o->pending, "0\r\n\r\n");
        }
        out_write(o, o->pending.data, o->pending.len);
    } else if (o->chunked) {
        out_write(o, "0\r\n\r\n", 5);
    }
}

/* Takes one of the user's blocking-read slots. Returns 0, or replies 429 and returns -1. */
static int
blocking_slot_take(struct req *r)
{
    struct slots *s = r->app->blocking_reads;
    int rc = s ? slots_take(s, r->user.id) : SLOTS_OK;
    if (rc == SLOTS_USER_FULL) {
        http_reply_error(r, 429, "too_many_blocking_reads",
                         "you already have %d blocking queries (index=…) waiting through the "
                         "proxy (limits.blocking_reads_per_user); wait for one to return",
                         r->app->cfg->blocking_reads_per_user);
        return -1;
    }
    if (rc == SLOTS_TOTAL_FULL) {
        http_reply_error(r, 429, "too_many_blocking_reads",
                         "the console already holds as many blocking queries as it allows in "
                         "all; try again shortly");
        return -1;
    }
    return 0;
}

static int
proxy_read(struct req *r, struct proxy *p)
{
    if (p->has_index && blocking_slot_take(r) != 0) {
        return r->status;
    }
    char *fwd =
        p->query[0] ? xasprintf("%s?%s", p->path.canonical, p->query) : xstrdup(p->path.canonical);
    struct stream_out o = {.r = r, .p = p};
    buf_init(&o.pending, (size_t)r->app->cfg->consul_max_body + 65536);
    buf_init(&o.frame, (size_t)r->app->cfg->consul_max_body + 64);
    struct consul_sink sink = {.head = sink_head, .data = sink_data, .ud = &o};
    struct consul_opts opts = {.wait_s = p->wait_s, .forwarded_for = r->ip};
    struct consul_response resp;
    int rc = consul_request_stream(r->app->consul, r->method, fwd, NULL, 0, &opts, &sink, &resp);
    int status;
    if (rc == CONSUL_OK) {
        stream_finish(&o);
        status = r->status;
    } else if (rc == CONSUL_BROKEN && o.started) {
        /* part of the answer has left: the client must see a cut, not a shorter answer */
        log_warn("consul proxy: %s %s broke off after the answer had begun: %s", r->method,
                 p->path.norm, resp.error);
        mg_disable_connection_keep_alive(r->conn);
        status = r->status;
    } else {
        status = reply_unreachable(r, rc == CONSUL_BROKEN ? CONSUL_UNREACHABLE : rc, &resp);
    }
    if (p->has_index && r->app->blocking_reads) {
        slots_give(r->app->blocking_reads, r->user.id);
    }
    buf_free(&o.pending);
    buf_free(&o.frame);
    free(fwd);
    return status;
}

/* ---- writes: recorded before and after ---- */

/* Whether a KV write answer says it applied ("true"). -1 when the body is not a boolean. */
static int
kv_result(const struct consul_response *resp)
{
    if (resp->status != 200) {
        return -1;
    }
    const char *b = resp->body;
    size_t n = resp->len;
    while (n > 0 && (b[n - 1] == '\n' || b[n - 1] == ' ' || b[n - 1] == '\r')) {
        n--;
    }
    if (n == 4 && strncmp(b, "true", 4) == 0) {
        return 1;
    }
    if (n == 5 && strncmp(b, "false", 5) == 0) {
        return 0;
    }
    return -1;
}

static int
proxy_write(struct req *r, struct proxy *p)
{
    cJSON *detail = cJSON_CreateObject();
    cJSON_AddStringToObject(detail, "method", r->method);
    cJSON_AddStringToObject(detail, "path", p->path.norm);
    cJSON_AddStringToObject(detail, "query", p->query);
    cJSON_AddNumberToObject(detail, "body_bytes", (double)r->body_len);
    char sha[65];
    sha256_hex(r->body ? r->body : "", r->body_len, sha);
    cJSON_AddStringToObject(detail, "body_sha256", sha);
    if (p->kv_write) {
        kv_previous(r, p, detail);
        if (strcmp(r->method, "PUT") == 0) {
            api_kv_add_value(detail, r->body ? r->body : "", r->body_len);
        }
    }
    int64_t attempt = 0;
    if (api_change_attempt(r, p->action, p->path.norm, detail, &attempt) != 0) {
        return r->status;
    }

    char *fwd =
        p->query[0] ? xasprintf("%s?%s", p->path.canonical, p->query) : xstrdup(p->path.canonical);
    struct consul_opts opts = {
        .forwarded_for = r->ip,
        .content_type = http_header(r, "Content-Type"),
    };
    struct consul_response resp;
    int rc = consul_request(r->app->consul, r->method, fwd, r->body, r->body_len, &opts, &resp);
    free(fwd);

    cJSON *out = cJSON_CreateObject();
    if (rc == CONSUL_OK) {
        cJSON_AddNumberToObject(out, "consul_status", (double)resp.status);
        cJSON_AddStringToObject(out, "consul_address", resp.address);
        if (p->kv_write) {
            int res = kv_result(&resp);
            if (res < 0) {
                cJSON_AddNullToObject(out, "result");
            } else {
                cJSON_AddBoolToObject(out, "result", res);
            }
        }
    } else {
        cJSON_AddNullToObject(out, "consul_status");
        cJSON_AddStringToObject(out, "consul_error", resp.error);
    }
    api_change_outcome(r, p->action, p->path.norm, attempt, out,
                       rc == CONSUL_OK && resp.status < 400 ? "ok" : "error");
    int status = rc == CONSUL_OK ? reply_answer(r, p, &resp) : reply_unreachable(r, rc, &resp);
    consul_response_free(&resp);
    return status;
}

int
api_consul_proxy(struct req *r)
{
    struct proxy *p = r->ctx;
    metrics_add(METRIC_PROXY_REQUESTS, 1);
    if (!r->app->consul) {
        return http_reply_error(r, 503, "consul_not_configured", "no Consul agent is configured");
    }
    return p->read ? proxy_read(r, p) : proxy_write(r, p);
}
