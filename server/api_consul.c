/* api_consul: the audited proxy /api/consul/v1/… → Consul /v1/…. It validates the path,
 * decides the permission from the decoded path and method, strips ?token= and the browser's
 * credentials, forwards through the Consul client (failover, the server's token), passes the
 * answer's status, body and Consul headers back, and records every non-read in the audit log
 * (KV writes with the value before and after, which is the KV history). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "app.h"
#include "consul.h"
#include "metrics.h"
#include "store.h"
#include "util.h"

#define PROXY_PREFIX "/api/consul"
#define PROXY_MAX_BODY (512 * 1024)
#define PROXY_DRAIN_MAX (4 * 1024 * 1024)
#define PROXY_WAIT_DEFAULT_S 300
#define PROXY_WAIT_MAX_S 600
#define KV_PREFIX "/v1/kv/"
#define KV_RECURSE_LIST_MAX 100

enum perm { PERM_VIEWER = 0, PERM_OPERATOR, PERM_ADMIN, PERM_NEVER };

/* What the proxy learnt about one request. Strings are owned unless marked borrowed. */
struct proxy {
    const char *raw; /* borrowed: the Consul path as the browser encoded it ("/v1/…") */
    char *decoded;   /* percent-decoded path: the audit target */
    char *norm;      /* decoded with runs of '/' collapsed: what permissions look at */
    char *query;     /* the query to forward (token removed), "" when none */
    char *dc_query;  /* "?dc=…" (or "") to send with the KV reads that go with a write */
    int has_index;
    int wait_s;
    int raw_kv; /* ?raw on a KV path */
    int recurse;
    int is_kv; /* the path is under /v1/kv/ */
    char action[64];
};

static void
proxy_free(struct proxy *p)
{
    free(p->decoded);
    free(p->norm);
    free(p->query);
    free(p->dc_query);
}

/* ---- pure helpers ---- */

/* True when p equals prefix or continues it with a '/'. */
static int
path_is(const char *p, const char *prefix)
{
    size_t n = strlen(prefix);
    return strncmp(p, prefix, n) == 0 && (p[n] == '\0' || p[n] == '/');
}

/* Decodes %XX in s (not '+': this is a path); NULL when an escape is malformed or decodes to
 * NUL. The result belongs to the caller. */
static char *
percent_decode(const char *s, size_t len, int plus_is_space)
{
    char *out = xmalloc(len + 1);
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%') {
            int hi, lo;
            if (i + 2 >= len) {
                goto bad;
            }
            char h = s[i + 1], l = s[i + 2];
            hi = h >= '0' && h <= '9'   ? h - '0'
                 : h >= 'a' && h <= 'f' ? h - 'a' + 10
                 : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                        : -1;
            lo = l >= '0' && l <= '9'   ? l - '0'
                 : l >= 'a' && l <= 'f' ? l - 'a' + 10
                 : l >= 'A' && l <= 'F' ? l - 'A' + 10
                                        : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                goto bad;
            }
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            out[o++] = ' ';
        } else {
            out[o++] = c;
        }
    }
    out[o] = '\0';
    return out;
bad:
    free(out);
    return NULL;
}

/* Checks the raw Consul path and fills p->decoded and p->norm. Returns NULL when fine, else
 * the reason it is refused. */
static const char *
path_check(struct proxy *p)
{
    for (const char *s = p->raw; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x21 || c == 0x7f || c == '#') {
            return "the path holds a control character, a space or '#'";
        }
    }
    p->decoded = percent_decode(p->raw, strlen(p->raw), 0);
    if (!p->decoded) {
        return "the path holds a malformed percent escape";
    }
    for (const char *s = p->decoded; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f || c == '#') {
            return "the path holds a control character or '#'";
        }
    }
    if (!str_starts_with(p->decoded, "/v1/")) {
        return "the path must start with /v1/";
    }
    size_t n = strlen(p->decoded);
    p->norm = xmalloc(n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (p->decoded[i] == '/' && o > 0 && p->norm[o - 1] == '/') {
            continue;
        }
        p->norm[o++] = p->decoded[i];
    }
    p->norm[o] = '\0';
    /* no "." or ".." segment (in the decoded path: Consul decodes before routing) */
    const char *seg = p->decoded;
    while (seg) {
        const char *next = strchr(seg, '/');
        size_t len = next ? (size_t)(next - seg) : strlen(seg);
        if ((len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.')) {
            return "the path holds a '.' or '..' segment";
        }
        seg = next ? next + 1 : NULL;
    }
    return NULL;
}

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

/* Splits r->query: copies every parameter but token into p->query (as the browser encoded
 * it) and notes the ones the proxy cares about. */
static void
query_scan(struct proxy *p, const char *q)
{
    struct buf out, dc;
    buf_init(&out, 1 << 20);
    buf_init(&dc, 4096);
    long wait = -1;
    while (q && *q) {
        size_t seg = strcspn(q, "&");
        size_t nlen = strcspn(q, "=");
        if (nlen > seg) {
            nlen = seg;
        }
        char *name = percent_decode(q, nlen, 1);
        char *value = nlen < seg ? percent_decode(q + nlen + 1, seg - nlen - 1, 1) : NULL;
        /* an undecodable name is forwarded as is: Consul will not read it as "token" */
        if (!name || strcmp(name, "token") != 0) {
            if (seg > 0) {
                if (out.len) {
                    buf_puts(&out, "&");
                }
                buf_append(&out, q, seg);
            }
            if (name && strcmp(name, "index") == 0) {
                p->has_index = 1;
            } else if (name && strcmp(name, "hash") == 0) {
                p->has_index = 1;
            } else if (name && strcmp(name, "wait") == 0 && value) {
                wait = parse_wait(value);
            } else if (name && strcmp(name, "raw") == 0) {
                p->raw_kv = p->is_kv;
            } else if (name && strcmp(name, "recurse") == 0) {
                p->recurse = 1;
            } else if (name && strcmp(name, "dc") == 0 && dc.len == 0) {
                buf_puts(&dc, "?");
                buf_append(&dc, q, seg);
            }
        }
        free(name);
        free(value);
        q += seg;
        if (*q == '&') {
            q++;
        }
    }
    if (p->has_index) {
        p->wait_s = wait < 0                  ? PROXY_WAIT_DEFAULT_S
                    : wait > PROXY_WAIT_MAX_S ? PROXY_WAIT_MAX_S
                                              : (int)wait;
        if (p->wait_s == 0) {
            p->wait_s = 1;
        }
    }
    p->query = out.data ? buf_steal(&out) : xstrdup("");
    p->dc_query = dc.data ? buf_steal(&dc) : xstrdup("");
}

/* The least permission for method on the normalised path. */
static enum perm
classify(const char *method, const char *p)
{
    int read = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    /* changes that go through jobs only, whatever the role */
    if (path_is(p, "/v1/acl/bootstrap") || path_is(p, "/v1/agent/leave") ||
        path_is(p, "/v1/agent/force-leave") || path_is(p, "/v1/agent/token") ||
        (strcmp(method, "DELETE") == 0 && path_is(p, "/v1/operator/raft/peer")) ||
        (!read && path_is(p, "/v1/snapshot"))) {
        return PERM_NEVER;
    }
    if (read) {
        /* reads that reveal secrets: ACL tokens, a full snapshot, the CA's private key */
        if (path_is(p, "/v1/acl") || path_is(p, "/v1/snapshot") ||
            path_is(p, "/v1/connect/ca/configuration")) {
            return PERM_ADMIN;
        }
        return PERM_VIEWER;
    }
    if ((strcmp(method, "PUT") == 0 || strcmp(method, "DELETE") == 0) && path_is(p, "/v1/kv")) {
        return PERM_OPERATOR;
    }
    return PERM_ADMIN;
}

/* Fills p->action: consul.kv.put / consul.kv.delete, else consul.<segment>.<method>. */
static void
action_name(struct proxy *p, const char *method)
{
    char seg[32], m[12];
    const char *s = p->norm + 4; /* after "/v1/" */
    size_t n = 0;
    for (; s[n] && s[n] != '/' && n < sizeof(seg) - 1; n++) {
        char c = s[n];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_')) {
            n = 0;
            break;
        }
        seg[n] = c;
    }
    seg[n] = '\0';
    if (n == 0 || (s[n] && s[n] != '/')) {
        snprintf(seg, sizeof(seg), "other");
    }
    size_t i = 0;
    for (; method[i] && i < sizeof(m) - 1; i++) {
        m[i] = (char)(method[i] >= 'A' && method[i] <= 'Z' ? method[i] + 32 : method[i]);
    }
    m[i] = '\0';
    snprintf(p->action, sizeof(p->action), "consul.%s.%s", seg, m);
}

int
api_consul_action(const struct req *r, char *action, size_t alen, char *target, size_t tlen)
{
    struct proxy p;
    memset(&p, 0, sizeof(p));
    int rc = -1;
    if (str_starts_with(r->path, PROXY_PREFIX "/v1/")) {
        p.raw = r->path + strlen(PROXY_PREFIX);
        if (!path_check(&p)) {
            action_name(&p, r->method);
            snprintf(action, alen, "%s", p.action);
            snprintf(target, tlen, "%s", p.decoded);
            rc = 0;
        }
    }
    proxy_free(&p);
    return rc;
}

/* ---- body ---- */

/* Reads and throws away up to max bytes of the request body, so that a refused request
 * leaves the connection usable. */
static void
body_drain(struct req *r, long long max)
{
    char chunk[16384];
    long long total = 0;
    int n;
    while (total < max && (n = mg_read(r->conn, chunk, sizeof(chunk))) > 0) {
        total += n;
    }
}

/* Reads the body into r->body (at most PROXY_MAX_BODY). Returns 0, or 413 after replying. */
static int
body_read(struct req *r)
{
    long long cl = r->ri->content_length;
    if (cl > PROXY_MAX_BODY) {
        if (cl <= PROXY_DRAIN_MAX) {
            body_drain(r, cl);
        }
        return http_reply_error(r, 413, "body_too_large", "request body exceeds %d bytes",
                                PROXY_MAX_BODY);
    }
    struct buf b;
    buf_init(&b, PROXY_MAX_BODY);
    char chunk[16384];
    int n;
    while ((n = mg_read(r->conn, chunk, sizeof(chunk))) > 0) {
        if (buf_append(&b, chunk, (size_t)n) != BUF_OK) {
            buf_free(&b);
            body_drain(r, PROXY_DRAIN_MAX);
            return http_reply_error(r, 413, "body_too_large", "request body exceeds %d bytes",
                                    PROXY_MAX_BODY);
        }
    }
    r->body_len = b.len;
    r->body = b.data ? buf_steal(&b) : xstrdup("");
    return 0;
}

/* ---- the KV record that goes with a write ---- */

/* Reads what a KV write is about to change and returns the audit detail member: for a key
 * {"exists","value_b64"…,"modify_index","flags"}, for a recursive delete the list of keys
 * (or their count). The result belongs to the caller. */
static cJSON *
kv_previous(struct req *r, struct proxy *p, cJSON *detail)
{
    struct consul_client *c = r->app->consul;
    const char *key_raw = p->raw + strlen(KV_PREFIX);
    struct consul_opts opts = {.forwarded_for = r->ip};
    if (p->recurse && strcmp(r->method, "DELETE") == 0) {
        char *path = xasprintf("%s%s%s%s", KV_PREFIX, key_raw, p->dc_query[0] ? p->dc_query : "?",
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
        return NULL;
    }
    char *path = xasprintf("%s%s%s", KV_PREFIX, key_raw, p->dc_query);
    struct consul_kv kv;
    long status = 0;
    int rc = consul_kv_read(c, path, &opts, &kv, &status);
    free(path);
    cJSON *prev;
    if (rc == CONSUL_OK) {
        prev = api_kv_value_json(&kv);
    } else {
        prev = cJSON_CreateObject();
        cJSON_AddBoolToObject(prev, "unknown", 1);
    }
    consul_kv_clear(&kv);
    return prev;
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

/* Sends Consul's answer: its status, body and pass-through headers (Content-Type is chosen
 * by safe_content_type). */
static int
reply_answer(struct req *r, const struct proxy *p, const struct consul_response *resp)
{
    struct buf h;
    buf_init(&h, 32768);
    const char *s = resp->headers ? resp->headers : "";
    while (*s) {
        const char *eol = strstr(s, "\r\n");
        size_t len = eol ? (size_t)(eol - s) + 2 : strlen(s);
        if (strncasecmp(s, "Content-Type:", 13) != 0) {
            buf_append(&h, s, len);
        }
        s += len;
    }
    if (p->raw_kv) {
        buf_puts(&h, "Content-Disposition: attachment\r\n");
    }
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
                                "Consul's answer exceeds %d bytes", r->app->cfg->consul_max_body);
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

/* ---- the handler ---- */

/* Builds the forwarded path and query. The result belongs to the caller. */
static char *
forward_target(const struct proxy *p)
{
    return p->query[0] ? xasprintf("%s?%s", p->raw, p->query) : xstrdup(p->raw);
}

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

int
api_consul_proxy(struct req *r)
{
    struct proxy p;
    memset(&p, 0, sizeof(p));
    struct consul_response resp;
    memset(&resp, 0, sizeof(resp));
    cJSON *detail = NULL;
    char *target = NULL;
    int status;
    metrics_add(METRIC_PROXY_REQUESTS, 1);

    int read = strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0;
    if (!read && strcmp(r->method, "PUT") != 0 && strcmp(r->method, "POST") != 0 &&
        strcmp(r->method, "DELETE") != 0) {
        static const char body405[] = "{\"error\":{\"code\":\"method_not_allowed\","
                                      "\"message\":\"the Consul API uses GET, HEAD, PUT, POST "
                                      "and DELETE\"}}";
        status =
            http_reply(r, 405, "application/json; charset=utf-8",
                       "Allow: GET, HEAD, PUT, POST, DELETE\r\n", body405, sizeof(body405) - 1);
        goto out;
    }
    if (!str_starts_with(r->path, PROXY_PREFIX "/v1/")) {
        status = http_reply_error(r, 404, "not_found", "no such route: %s", r->path);
        goto out;
    }
    p.raw = r->path + strlen(PROXY_PREFIX);
    const char *why = path_check(&p);
    if (why) {
        status = http_reply_error(r, 400, "invalid_path", "%s", why);
        goto out;
    }
    p.is_kv = str_starts_with(p.norm, KV_PREFIX);
    query_scan(&p, r->query);
    int kv_write = p.is_kv && (strcmp(r->method, "PUT") == 0 || strcmp(r->method, "DELETE") == 0);
    if (!read) {
        action_name(&p, r->method);
    }
    target = xstrdup(p.decoded);

    enum perm need = classify(r->method, p.norm);
    enum role have = r->user.role;
    if (need == PERM_NEVER || (need == PERM_ADMIN && have < ROLE_ADMIN) ||
        (need == PERM_OPERATOR && have < ROLE_OPERATOR)) {
        char why_denied[160];
        if (need == PERM_NEVER) {
            snprintf(why_denied, sizeof(why_denied),
                     "%s %s is not allowed through the proxy; use the console's jobs", r->method,
                     p.norm);
        } else {
            snprintf(why_denied, sizeof(why_denied), "this needs the %s role (you are %s)",
                     need == PERM_ADMIN ? "admin" : "operator", role_name(have));
        }
        if (!read) {
            body_drain(r, PROXY_MAX_BODY);
        }
        status = http_deny(r, read ? NULL : p.action, target, why_denied);
        goto out;
    }
    if (!r->app->consul) {
        status = http_reply_error(r, 503, "consul_not_configured", "no Consul agent is configured");
        goto out;
    }

    if (!read) {
        if (body_read(r) != 0) {
            detail = cJSON_CreateObject();
            cJSON_AddStringToObject(detail, "method", r->method);
            cJSON_AddStringToObject(detail, "path", p.decoded);
            cJSON_AddStringToObject(detail, "query", p.query);
            cJSON_AddStringToObject(detail, "reason", "request body too large");
            http_audit(r, p.action, target, detail, "error");
            detail = NULL;
            status = r->status;
            goto out;
        }
        detail = cJSON_CreateObject();
        cJSON_AddStringToObject(detail, "method", r->method);
        cJSON_AddStringToObject(detail, "path", p.decoded);
        cJSON_AddStringToObject(detail, "query", p.query);
        cJSON_AddNumberToObject(detail, "body_bytes", (double)r->body_len);
        char sha[65];
        sha256_hex(r->body, r->body_len, sha);
        cJSON_AddStringToObject(detail, "body_sha256", sha);
        if (kv_write) {
            cJSON *prev = kv_previous(r, &p, detail);
            if (prev) {
                cJSON_AddItemToObject(detail, "previous", prev);
            }
            if (strcmp(r->method, "PUT") == 0) {
                api_kv_add_value(detail, r->body, r->body_len);
            }
        }
    }

    struct consul_opts opts = {
        .wait_s = read ? p.wait_s : 0,
        .forwarded_for = r->ip,
        .content_type = read ? NULL : http_header(r, "Content-Type"),
    };
    char *fwd = forward_target(&p);
    int rc = consul_request(r->app->consul, r->method, fwd, read ? NULL : r->body,
                            read ? 0 : r->body_len, &opts, &resp);
    free(fwd);

    if (!read) {
        if (rc == CONSUL_OK) {
            cJSON_AddNumberToObject(detail, "consul_status", (double)resp.status);
            cJSON_AddStringToObject(detail, "consul_address", resp.address);
            if (kv_write) {
                int res = kv_result(&resp);
                if (res < 0) {
                    cJSON_AddNullToObject(detail, "result");
                } else {
                    cJSON_AddBoolToObject(detail, "result", res);
                }
            }
        } else {
            cJSON_AddNullToObject(detail, "consul_status");
            cJSON_AddStringToObject(detail, "consul_error", resp.error);
        }
        const char *outcome = rc == CONSUL_OK && resp.status < 400 ? "ok" : "error";
        http_audit(r, p.action, target, detail, outcome);
        detail = NULL;
    }
    if (rc != CONSUL_OK) {
        status = reply_unreachable(r, rc, &resp);
        goto out;
    }
    status = reply_answer(r, &p, &resp);
out:
    cJSON_Delete(detail);
    consul_response_free(&resp);
    free(target);
    proxy_free(&p);
    return status;
}
