/* api_audit: reading the audit log over HTTP: a filtered, keyset-paged list, a streamed
 * CSV / JSON Lines export (itself audited; written by audit_export) and the verification of
 * the chain, the MACs and the anchor (audit_verify). Any role may read. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "audit.h"
#include "audit_export.h"
#include "audit_verify.h"
#include "store.h"
#include "util.h"

#define AUDIT_PAGE_DEFAULT 100
#define AUDIT_PAGE_MAX 500
#define FILTER_TEXT_MAX 1024

/* The query parameters a filter is built from, owned (from http_query). */
enum fparam {
    FP_ACTOR,
    FP_ACTION,
    FP_OUTCOME,
    FP_TARGET,
    FP_SINCE,
    FP_UNTIL,
    FP_Q,
    FP_BEFORE,
    FP_LIMIT,
    FP_FORMAT,
    FP_COUNT
};

static const char *const fparam_names[FP_COUNT] = {
    [FP_ACTOR] = "actor",   [FP_ACTION] = "action",    [FP_OUTCOME] = "outcome",
    [FP_TARGET] = "target", [FP_SINCE] = "since",      [FP_UNTIL] = "until",
    [FP_Q] = "q",           [FP_BEFORE] = "before_id", [FP_LIMIT] = "limit",
    [FP_FORMAT] = "format",
};

struct fvals {
    char *v[FP_COUNT]; /* NULL when absent or empty */
};

static void
fvals_clear(struct fvals *fv)
{
    for (int i = 0; i < FP_COUNT; i++) {
        free(fv->v[i]);
        fv->v[i] = NULL;
    }
}

/* Parses a decimal integer in [min, max]. Returns 0 or -1. */
static int
parse_int(const char *s, long long min, long long max, long long *out)
{
    if (!s || *s < '0' || *s > '9') {
        return -1;
    }
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < min || v > max) {
        return -1;
    }
    *out = v;
    return 0;
}

/* Replies 400 invalid_parameter naming the parameter. Returns -1 for filter_parse. */
static int
bad_param(struct req *r, const char *name, const char *why)
{
    http_reply_error(r, 400, "invalid_parameter", "parameter '%s': %s", name, why);
    return -1;
}

/* Reads the filter parameters of the query into fv and f (f's strings point into fv). paged
 * selects the list's before_id/limit handling. Returns 0, or -1 after replying 400 naming
 * the parameter. */
static int
filter_parse(struct req *r, struct fvals *fv, struct audit_filter *f, int paged)
{
    memset(f, 0, sizeof(*f));
    for (int i = 0; i < FP_COUNT; i++) {
        int present = 0;
        fv->v[i] = http_query(r, fparam_names[i], &present);
        if (present && !fv->v[i]) {
            return bad_param(r, fparam_names[i], "bad percent-encoding");
        }
        if (fv->v[i] && (!*fv->v[i] || strlen(fv->v[i]) > FILTER_TEXT_MAX)) {
            if (*fv->v[i]) {
                return bad_param(r, fparam_names[i], "too long");
            }
            free(fv->v[i]); /* an empty value is the same as none */
            fv->v[i] = NULL;
        }
    }
    f->actor = fv->v[FP_ACTOR];
    f->target = fv->v[FP_TARGET];
    f->q = fv->v[FP_Q];
    f->action_prefix = fv->v[FP_ACTION];
    if (f->action_prefix && !audit_action_prefix_valid(f->action_prefix)) {
        return bad_param(r, "action",
                         "expected an action prefix such as 'auth.' "
                         "(lower-case letters, digits, '_' and '.')");
    }
    f->outcome = fv->v[FP_OUTCOME];
    if (f->outcome && !audit_outcome_valid(f->outcome)) {
        return bad_param(r, "outcome", "expected ok, denied, error or pending");
    }
    if (fv->v[FP_SINCE] && (time_parse(fv->v[FP_SINCE], &f->since) || f->since < 0)) {
        return bad_param(r, "since", "expected an RFC 3339 time or epoch milliseconds");
    }
    if (fv->v[FP_UNTIL] && (time_parse(fv->v[FP_UNTIL], &f->until) || f->until <= 0)) {
        return bad_param(r, "until",
                         "expected an RFC 3339 time or epoch milliseconds "
                         "after 1970-01-01");
    }
    if (f->since && f->until && f->since > f->until) {
        return bad_param(r, "since", "is after until");
    }
    long long n;
    if (fv->v[FP_BEFORE]) {
        if (parse_int(fv->v[FP_BEFORE], 1, INT64_MAX, &n)) {
            return bad_param(r, "before_id", "expected a positive entry id");
        }
        f->before_id = n;
    }
    if (paged) {
        f->limit = AUDIT_PAGE_DEFAULT;
        if (fv->v[FP_LIMIT]) {
            if (parse_int(fv->v[FP_LIMIT], 1, AUDIT_PAGE_MAX, &n)) {
                return bad_param(r, "limit", "expected an integer from 1 to 500");
            }
            f->limit = (int)n;
        }
    }
    return 0;
}

/* ---- GET /api/audit ---- */

struct list_ctx {
    cJSON *entries;
    int n;
    int64_t last_id;
};

static int
list_row(const struct audit_row *row, void *ctx)
{
    struct list_ctx *lc = ctx;
    cJSON_AddItemToArray(lc->entries, audit_row_json(row));
    lc->n++;
    lc->last_id = row->id;
    return 0;
}

int
api_audit_list(struct req *r)
{
    struct fvals fv = {0};
    struct audit_filter f;
    cJSON *j = NULL;
    int status;
    if (filter_parse(r, &fv, &f, 1)) {
        status = r->status;
        goto out;
    }
    j = cJSON_CreateObject();
    struct list_ctx lc = {.entries = cJSON_AddArrayToObject(j, "entries")};
    if (store_audit_query(r->db, &f, list_row, &lc) != STORE_OK) {
        status = http_reply_error(r, 500, "internal", "cannot read the audit log");
        goto out;
    }
    if (lc.n == f.limit) {
        cJSON_AddNumberToObject(j, "next_before_id", (double)lc.last_id);
    } else {
        cJSON_AddNullToObject(j, "next_before_id");
    }
    status = http_reply_json(r, 200, j);
    j = NULL;
out:
    cJSON_Delete(j);
    fvals_clear(&fv);
    return status;
}

/* ---- GET /api/audit/export ---- */

/* The export's sink: one HTTP chunk per call. */
static int
export_sink(void *ctx, const void *data, size_t len)
{
    return http_stream_write(ctx, data, len);
}

/* The audit detail of an export: its format and the filters given. Returns a new object. */
static cJSON *
export_detail(const char *format, const struct fvals *fv)
{
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "format", format);
    cJSON *filters = cJSON_AddObjectToObject(d, "filters");
    for (int i = 0; i < FP_COUNT; i++) {
        if (fv->v[i] && i != FP_FORMAT && i != FP_LIMIT) {
            cJSON_AddStringToObject(filters, fparam_names[i], fv->v[i]);
        }
    }
    return d;
}

int
api_audit_export(struct req *r)
{
    struct fvals fv = {0};
    struct audit_filter f;
    int status;
    if (filter_parse(r, &fv, &f, 0)) {
        status = r->status;
        goto out;
    }
    const char *format = fv.v[FP_FORMAT] ? fv.v[FP_FORMAT] : "csv";
    enum audit_export_format fmt;
    if (audit_export_format_parse(format, &fmt) != 0) {
        bad_param(r, "format", "expected csv or jsonl");
        status = r->status;
        goto out;
    }
    /* An export of the trail is itself recorded, before any of it leaves. */
    if (http_audit(r, "audit.export", "", export_detail(format, &fv), "ok") != STORE_OK) {
        status = http_reply_error(r, 500, "internal", "cannot record the export");
        goto out;
    }
    char stamp[32], headers[160];
    time_t now = (time_t)(time_now_ms() / 1000);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
    snprintf(headers, sizeof(headers),
             "Content-Disposition: attachment; filename=\"consulate-audit-%s.%s\"\r\n", stamp,
             format);
    status = 200;
    if (http_stream_begin(
            r, 200, fmt == AUDIT_EXPORT_JSONL ? "application/x-ndjson" : "text/csv; charset=utf-8",
            headers) != 0) {
        goto out;
    }
    int rc = audit_export(r->db, &f, fmt, export_sink, r, NULL);
    if (rc == AUDIT_EXPORT_OK) {
        http_stream_end(r);
    } else {
        /* The status is sent: the body stays unterminated and the connection is closed, so
         * the client sees a truncated transfer at once, never a complete-looking file. */
        if (rc != AUDIT_EXPORT_SINK) {
            log_error("audit export stopped: %s", audit_export_strerror(rc));
        }
        http_stream_abort(r);
    }
out:
    fvals_clear(&fv);
    return status;
}

/* ---- GET /api/audit/verify ---- */

int
api_audit_verify(struct req *r)
{
    struct audit_verify_report rep;
    if (audit_verify(r->db, NULL, &rep) != STORE_OK) {
        return http_reply_error(r, 500, "internal", "cannot read the audit log");
    }
    return http_reply_json(r, 200, audit_verify_json(&rep));
}
