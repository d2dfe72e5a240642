/* api_jobs: the jobs API (/api/jobs): request (operator), list, read and the log (viewer),
 * approve and reject (approver, never one's own request), cancel (the requester, or an
 * approver or admin). The job engine (jobs.c) records each change with its audit entry in
 * the same transaction; refusals are recorded here or by the dispatcher. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "app.h"
#include "config.h"
#include "inventory.h"
#include "jobs.h"
#include "store.h"
#include "store_jobs.h"
#include "util.h"

#define LIST_DEFAULT 50
#define LIST_MAX 200
#define LOG_DEFAULT 10000
#define LOG_MAX 100000

static void
user_of(const struct req *r, struct jobs_user *u)
{
    u->id = r->user.id;
    u->name = r->user.name;
    u->role = r->user.role;
    u->ip = r->ip;
}

static int
status_of(int code)
{
    switch (code) {
    case JOBS_NOT_FOUND:
        return 404;
    case JOBS_INVALID_STATE:
    case JOBS_CONFLICT:
        return 409;
    case JOBS_SELF_APPROVAL:
    case JOBS_FORBIDDEN:
        return 403;
    case JOBS_INVALID:
        return 400;
    case JOBS_BUSY_USER:
        return 429;
    case JOBS_BUSY:
        return 503;
    default:
        return 500;
    }
}

static const char *
code_of(int code)
{
    switch (code) {
    case JOBS_NOT_FOUND:
        return "not_found";
    case JOBS_INVALID_STATE:
        return "invalid_state";
    case JOBS_CONFLICT:
        return "rollback_exists";
    case JOBS_SELF_APPROVAL:
        return "self_approval";
    case JOBS_FORBIDDEN:
        return "forbidden";
    case JOBS_INVALID:
        return "invalid_field";
    case JOBS_BUSY_USER:
        return "too_many_job_requests";
    case JOBS_BUSY:
        return "jobs_busy";
    default:
        return "internal";
    }
}

/* A positive job id from the path, or 0 (after replying 404). */
static int64_t
path_id(struct req *r)
{
    const char *s = r->params[0];
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || end == s || v <= 0 || s[0] == '+' || s[0] == '0') {
        http_reply_error(r, 404, "not_found", "no job '%s'", s);
        return 0;
    }
    return (int64_t)v;
}

static int
reply_job(struct req *r, int status, int64_t id)
{
    struct store_job job;
    int rc = store_job_get(r->db, id, &job);
    if (rc == STORE_NOT_FOUND) {
        return http_reply_error(r, 404, "not_found", "no job %lld", (long long)id);
    }
    if (rc != STORE_OK) {
        return http_reply_error(r, 500, "internal", "cannot read job %lld", (long long)id);
    }
    struct jobs_user u;
    user_of(r, &u);
    cJSON *j = jobs_json(r->db, &job, JOBS_VIEW_FULL, &u, r->app->cfg->approval_required);
    store_job_clear(&job);
    return http_reply_json(r, status, j);
}

/* A text a person wrote (reason, comment): UTF-8 without control characters except line
 * breaks and tabs, at most max bytes. Invisible format characters that change how the text
 * reads are control characters here too: C1 controls (U+0080-U+009F), the bidirectional
 * marks, embeddings, overrides and isolates (U+200E, U+200F, U+202A-U+202E, U+2066-U+2069:
 * the approver would read another text than the one recorded) and the line and paragraph
 * separators U+2028, U+2029. */
static const char *
text_problem(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n > max) {
        return "is too long";
    }
    if (!utf8_valid(s, n)) {
        return "is not valid UTF-8";
    }
    for (size_t i = 0; i < n; i++) {
        const unsigned char *c = (const unsigned char *)s + i;
        if ((c[0] < 0x20 && c[0] != '\n' && c[0] != '\t') || c[0] == 0x7f) {
            return "must not contain control characters";
        }
        if (c[0] == 0xc2 && c[1] >= 0x80 && c[1] <= 0x9f) {
            return "must not contain control characters (C1)";
        }
        if (c[0] == 0xe2 &&
            ((c[1] == 0x80 && ((c[2] >= 0xa8 && c[2] <= 0xae) || c[2] == 0x8e || c[2] == 0x8f)) ||
             (c[1] == 0x81 && c[2] >= 0xa6 && c[2] <= 0xa9))) {
            return "must not contain bidirectional or line-separator format characters "
                   "(U+200E, U+200F, U+2028-U+202E, U+2066-U+2069)";
        }
    }
    return NULL;
}

static int
blank(const char *s)
{
    for (; *s; s++) {
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r') {
            return 0;
        }
    }
    return 1;
}

/* Reads and validates the request body into req; replies 400 naming the field and returns
 * -1 on a problem. Strings are borrowed from in. */
static int
request_read(struct req *r, const cJSON *in, struct jobs_request *req)
{
    static const char *const allowed[] = {"type",    "node", "strategy", "reason",
                                          "options", "job",  NULL};
    memset(req, 0, sizeof(*req));
    if (http_check_fields(r, in, allowed)) {
        return -1;
    }
    static const char *const types[] = {"node-add", "node-remove", "rollback", "diagnose"};
    const char *type = json_get_str(in, "type", NULL);
    for (size_t i = 0; type && i < ARRAY_LEN(types); i++) {
        if (strcmp(type, types[i]) == 0) {
            req->type = types[i];
        }
    }
    if (!req->type) {
        http_reply_error(r, 400, "invalid_field",
                         "field 'type' must be one of node-add, node-remove, rollback, diagnose");
        return -1;
    }
    int rollback = strcmp(req->type, "rollback") == 0;
    const cJSON *node = cJSON_GetObjectItemCaseSensitive(in, "node");
    const cJSON *job = cJSON_GetObjectItemCaseSensitive(in, "job");
    if (rollback) {
        if (node && !cJSON_IsNull(node)) {
            http_reply_error(r, 400, "invalid_field",
                             "field 'node' is not given for a rollback (it is the job's node)");
            return -1;
        }
        double v = cJSON_IsNumber(job) ? job->valuedouble : -1;
        if (!(v >= 1 && v <= 9007199254740991.0) || v != (double)(int64_t)v) {
            http_reply_error(r, 400, "invalid_field",
                             "field 'job' must be the id of the job to roll back");
            return -1;
        }
        req->target = (int64_t)v;
    } else {
        const char *p = cJSON_IsString(node)          ? inventory_name_problem(node->valuestring)
                        : node && !cJSON_IsNull(node) ? "must be a string"
                                                      : "is required";
        if (p) {
            http_reply_error(r, 400, "invalid_field", "field 'node' %s", p);
            return -1;
        }
        req->node = node->valuestring;
        if (job) {
            http_reply_error(r, 400, "invalid_field", "field 'job' is only for a rollback");
            return -1;
        }
    }
    const cJSON *strategy = cJSON_GetObjectItemCaseSensitive(in, "strategy");
    int add_remove = strcmp(req->type, "node-add") == 0 || strcmp(req->type, "node-remove") == 0;
    if (strategy && !cJSON_IsNull(strategy)) {
        const char *s = cJSON_IsString(strategy) ? strategy->valuestring : "";
        if (!add_remove) {
            http_reply_error(r, 400, "invalid_field",
                             "field 'strategy' is only for node-add and "
                             "node-remove");
            return -1;
        }
        if (strcmp(s, "rolling") != 0 && strcmp(s, "full-restart") != 0) {
            http_reply_error(r, 400, "invalid_field",
                             "field 'strategy' must be rolling or full-restart");
            return -1;
        }
        req->strategy = s;
    }
    const cJSON *reason = cJSON_GetObjectItemCaseSensitive(in, "reason");
    if (reason && !cJSON_IsString(reason) && !cJSON_IsNull(reason)) {
        http_reply_error(r, 400, "invalid_field", "field 'reason' must be a string");
        return -1;
    }
    req->reason = cJSON_IsString(reason) ? reason->valuestring : "";
    const char *p = text_problem(req->reason, JOBS_REASON_MAX);
    if (p) {
        http_reply_error(r, 400, "invalid_field", "field 'reason' %s (at most %d bytes)", p,
                         JOBS_REASON_MAX);
        return -1;
    }
    if (jobs_type_changes(req->type) && blank(req->reason)) {
        http_reply_error(r, 400, "invalid_field",
                         "field 'reason' is required for a change: say why, for the approver and "
                         "the record");
        return -1;
    }
    const cJSON *opts = cJSON_GetObjectItemCaseSensitive(in, "options");
    if (opts && !cJSON_IsNull(opts)) {
        static const char *const oallowed[] = {"fix_trap", "node_gone", NULL};
        if (!cJSON_IsObject(opts)) {
            http_reply_error(r, 400, "invalid_field", "field 'options' must be an object");
            return -1;
        }
        const cJSON *it;
        cJSON_ArrayForEach(it, opts)
        {
            int ok = 0;
            for (const char *const *a = oallowed; *a; a++) {
                ok |= strcmp(it->string, *a) == 0;
            }
            if (!ok || !cJSON_IsBool(it)) {
                http_reply_error(r, 400, "invalid_field",
                                 ok ? "field 'options.%s' must be true or false"
                                    : "unknown field 'options.%s'",
                                 it->string);
                return -1;
            }
        }
        req->fix_trap = json_get_bool(opts, "fix_trap", 0);
        req->node_gone = json_get_bool(opts, "node_gone", 0);
        if (req->fix_trap && !add_remove) {
            http_reply_error(r, 400, "invalid_field",
                             "field 'options.fix_trap' is only for node-add and node-remove");
            return -1;
        }
        if (req->node_gone && strcmp(req->type, "node-remove") != 0) {
            http_reply_error(r, 400, "invalid_field",
                             "field 'options.node_gone' is only for node-remove");
            return -1;
        }
        if (req->node_gone && req->strategy && strcmp(req->strategy, "full-restart") == 0) {
            http_reply_error(r, 400, "invalid_field",
                             "field 'options.node_gone' cannot go with strategy full-restart (the "
                             "dead server is removed without restarting the others)");
            return -1;
        }
    }
    return 0;
}

int
api_jobs_create(struct req *r)
{
    cJSON *in = http_json_body(r);
    if (!in) {
        return r->status;
    }
    struct jobs_request req;
    int status;
    if (request_read(r, in, &req)) {
        status = r->status;
        goto out;
    }
    if (!r->app->jobs) {
        status = http_reply_error(r, 503, "jobs_unavailable", "the job engine is not running");
        goto out;
    }
    struct jobs_user u;
    user_of(r, &u);
    struct jobs_error err = {0};
    int64_t id = 0;
    int rc = jobs_create(r->app->jobs, r->db, &req, &u, &id, &err);
    if (id) {
        r->audited = 1; /* job.request was recorded with the job */
    }
    if (rc != JOBS_OK && !id) {
        status = http_reply_error_h(r, status_of(rc), code_of(rc),
                                    rc == JOBS_BUSY_USER || rc == JOBS_BUSY ? "Retry-After: 1\r\n"
                                                                            : NULL,
                                    "%s", err.message);
        goto out;
    }
    status = reply_job(r, 201, id);
out:
    cJSON_Delete(in);
    return status;
}

static int
valid_state(const char *s)
{
    static const char *const states[] = {
        "awaiting_approval", "queued",      "running",  "succeeded",   "failed",
        "cancelled",         "rolled_back", "rejected", "interrupted", NULL};
    for (const char *const *p = states; *p; p++) {
        if (strcmp(s, *p) == 0) {
            return 1;
        }
    }
    return 0;
}

struct list_ctx {
    cJSON *arr;
    struct jobs_user u;
    struct req *r;
    int n;
    int64_t last;
};

static int
list_cb(const struct store_job *job, void *ctx)
{
    struct list_ctx *l = ctx;
    cJSON_AddItemToArray(
        l->arr, jobs_json(l->r->db, job, JOBS_VIEW_LIST, &l->u, l->r->app->cfg->approval_required));
    l->n++;
    l->last = job->id;
    return 0;
}

/* A query parameter as a positive integer within [lo, hi]; *out keeps its default when
 * absent. Replies 400 naming it and returns -1 when bad. */
static int
query_int(struct req *r, const char *name, long long lo, long long hi, long long *out)
{
    int present = 0;
    char *v = http_query(r, name, &present);
    if (!present) {
        return 0;
    }
    char *end = NULL;
    errno = 0;
    long long n = v && *v ? strtoll(v, &end, 10) : 0;
    int bad = !v || !*v || errno || *end || n < lo || n > hi;
    free(v);
    if (bad) {
        http_reply_error(r, 400, "invalid_parameter",
                         "parameter '%s' must be an integer from %lld to %lld", name, lo, hi);
        return -1;
    }
    *out = n;
    return 0;
}

int
api_jobs_list(struct req *r)
{
    int present;
    char *state = http_query(r, "state", &present);
    char *type = http_query(r, "type", NULL);
    char *node = http_query(r, "node", NULL);
    long long before = 0, limit = LIST_DEFAULT;
    int status;
    cJSON *j = NULL;
    if (state && *state && !valid_state(state)) {
        status = http_reply_error(r, 400, "invalid_parameter",
                                  "parameter 'state' must be one of awaiting_approval, queued, "
                                  "running, succeeded, failed, cancelled, rolled_back, rejected, "
                                  "interrupted");
        goto out;
    }
    if (type && *type && strcmp(type, "node-add") && strcmp(type, "node-remove") &&
        strcmp(type, "rollback") && strcmp(type, "diagnose")) {
        status = http_reply_error(r, 400, "invalid_parameter",
                                  "parameter 'type' must be one of node-add, node-remove, "
                                  "rollback, diagnose");
        goto out;
    }
    if (node && *node && inventory_name_problem(node)) {
        status =
            http_reply_error(r, 400, "invalid_parameter", "parameter 'node' must be a node name");
        goto out;
    }
    if (query_int(r, "before_id", 1, INT64_MAX, &before) ||
        query_int(r, "limit", 1, LIST_MAX, &limit)) {
        status = r->status;
        goto out;
    }
    j = cJSON_CreateObject();
    struct list_ctx l = {.arr = cJSON_AddArrayToObject(j, "jobs"), .r = r};
    user_of(r, &l.u);
    struct store_job_filter f = {state, type, node, before, (int)limit};
    if (store_job_list(r->db, &f, list_cb, &l) == STORE_ERROR) {
        status = http_reply_error(r, 500, "internal", "cannot list jobs: database error");
        goto out;
    }
    if (l.n == limit && l.last > 1) {
        cJSON_AddNumberToObject(j, "next_before_id", (double)l.last);
    } else {
        cJSON_AddNullToObject(j, "next_before_id");
    }
    status = http_reply_json(r, 200, j);
    j = NULL;
out:
    cJSON_Delete(j);
    free(state);
    free(type);
    free(node);
    return status;
}

int
api_jobs_get(struct req *r)
{
    int64_t id = path_id(r);
    return id ? reply_job(r, 200, id) : r->status;
}

struct log_ctx {
    struct buf text;
    cJSON *lines;
    int64_t last;
};

static int
log_cb(const struct store_log_line *l, void *ctx)
{
    struct log_ctx *c = ctx;
    char ts[40];
    time_format_rfc3339(l->ts, ts, sizeof(ts));
    if (c->lines) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "line", (double)l->line);
        cJSON_AddStringToObject(o, "time", ts);
        if (l->node[0]) {
            cJSON_AddStringToObject(o, "node", l->node);
        } else {
            cJSON_AddNullToObject(o, "node");
        }
        cJSON_AddStringToObject(o, "stream", l->stream);
        cJSON_AddStringToObject(o, "text", l->text);
        cJSON_AddItemToArray(c->lines, o);
    } else if (buf_printf(&c->text, "%lld\t%s\t%s\t%s\t%s\n", (long long)l->line, ts,
                          l->node[0] ? l->node : "-", l->stream, l->text) != BUF_OK) {
        return 1; /* full: the client asks again after the last line it got */
    }
    c->last = l->line;
    return 0;
}

int
api_jobs_log(struct req *r)
{
    int64_t id = path_id(r);
    if (!id) {
        return r->status;
    }
    long long after = 0, limit = LOG_DEFAULT;
    if (query_int(r, "after", 0, INT64_MAX, &after) || query_int(r, "limit", 1, LOG_MAX, &limit)) {
        return r->status;
    }
    char *format = http_query(r, "format", NULL);
    int json = format && strcmp(format, "json") == 0;
    if (format && !json && strcmp(format, "text") != 0) {
        free(format);
        return http_reply_error(r, 400, "invalid_parameter",
                                "parameter 'format' must be json "
                                "or text");
    }
    free(format);
    struct store_job job;
    int rc = store_job_get(r->db, id, &job);
    if (rc != STORE_OK) {
        return rc == STORE_NOT_FOUND
                   ? http_reply_error(r, 404, "not_found", "no job %lld", (long long)id)
                   : http_reply_error(r, 500, "internal", "database error");
    }
    store_job_clear(&job);
    struct log_ctx c = {.last = after};
    buf_init(&c.text, 32 * 1024 * 1024);
    if (json) {
        c.lines = cJSON_CreateArray();
    }
    int status;
    if (store_job_log_read(r->db, id, after, (int)limit, log_cb, &c) == STORE_ERROR) {
        cJSON_Delete(c.lines);
        status = http_reply_error(r, 500, "internal", "cannot read the log: database error");
    } else if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "lines", c.lines);
        cJSON_AddNumberToObject(o, "last_line", (double)c.last);
        status = http_reply_json(r, 200, o);
    } else {
        char hdr[64];
        snprintf(hdr, sizeof(hdr), "X-Log-Last-Line: %lld\r\n", (long long)c.last);
        status = http_reply(r, 200, "text/plain; charset=utf-8", hdr,
                            c.text.data ? c.text.data : "", c.text.len);
    }
    buf_free(&c.text);
    return status;
}

/* approve and reject: {"comment"?} */
static int
decide(struct req *r, int approve)
{
    int64_t id = path_id(r);
    if (!id) {
        return r->status;
    }
    cJSON *in = NULL;
    const char *comment = NULL;
    int status;
    if (r->body_len > 0) {
        in = http_json_body(r);
        if (!in) {
            return r->status;
        }
        static const char *const allowed[] = {"comment", NULL};
        if (http_check_fields(r, in, allowed)) {
            status = r->status;
            goto out;
        }
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(in, "comment");
        if (c && !cJSON_IsNull(c)) {
            const char *p = cJSON_IsString(c) ? text_problem(c->valuestring, JOBS_REASON_MAX)
                                              : "must be a string";
            if (p) {
                status =
                    http_reply_error(r, 400, "invalid_field",
                                     "field 'comment' %s (at most %d bytes)", p, JOBS_REASON_MAX);
                goto out;
            }
            comment = c->valuestring;
        }
    }
    struct jobs_user u;
    user_of(r, &u);
    struct jobs_error err = {0};
    int rc = jobs_decide(r->app->jobs, r->db, id, approve, &u, comment, &err);
    if (rc == JOBS_SELF_APPROVAL) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "reason", err.message);
        http_audit(r, approve ? "job.approve" : "job.reject", r->params[0], d, "denied");
        status = http_reply_error(r, 403, "self_approval", "%s", err.message);
        goto out;
    }
    if (rc != JOBS_OK) {
        status = http_reply_error(r, status_of(rc), code_of(rc), "%s", err.message);
        goto out;
    }
    r->audited = 1;
    status = reply_job(r, 200, id);
out:
    cJSON_Delete(in);
    return status;
}

int
api_jobs_approve(struct req *r)
{
    return decide(r, 1);
}

int
api_jobs_reject(struct req *r)
{
    return decide(r, 0);
}

int
api_jobs_cancel(struct req *r)
{
    int64_t id = path_id(r);
    if (!id) {
        return r->status;
    }
    if (r->body_len > 0) { /* none is needed; one given must be an empty object */
        static const char *const none[] = {NULL};
        cJSON *in = http_json_body(r);
        int bad = !in || http_check_fields(r, in, none);
        cJSON_Delete(in);
        if (bad) {
            return r->status;
        }
    }
    struct jobs_user u;
    user_of(r, &u);
    struct jobs_error err = {0};
    int rc = jobs_cancel(r->app->jobs, r->db, id, &u, &err);
    if (rc == JOBS_FORBIDDEN) {
        return http_deny(r, "job.cancel", r->params[0], err.message);
    }
    if (rc != JOBS_OK) {
        return http_reply_error(r, status_of(rc), code_of(rc), "%s", err.message);
    }
    r->audited = 1;
    return reply_job(r, 200, id);
}
