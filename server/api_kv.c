/* api_kv: KV history and restore. Consul keeps no history of a key; the proxy records every
 * KV write in the audit log before it is sent (an attempt, outcome "pending", with the value
 * before and after) and once Consul answered (an outcome entry naming the attempt), so the
 * history of a key is the audit entries whose target is "/v1/kv/<key>", each attempt folded
 * with its outcome, and a restore writes one of those recorded values back (recorded the
 * same way) with a check-and-set on the key's current index. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "api.h"
#include "app.h"
#include "consul.h"
#include "proxy_policy.h"
#include "store.h"
#include "util.h"

#define KV_PREFIX "/v1/kv/"
#define KV_VALUE_INLINE_MAX (64 * 1024)
#define KV_HISTORY_MAX 200

/* ---- shared with the proxy ---- */

/* Base64 (standard alphabet, padded) of len bytes; the caller frees the result. */
static char *
b64_encode(const void *data, size_t len)
{
    size_t cap = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
    char *out = xmalloc(cap);
    sodium_bin2base64(out, cap, data, len, sodium_base64_VARIANT_ORIGINAL);
    return out;
}

/* Decodes standard base64; the result (NUL-terminated, *len_out bytes) belongs to the caller.
 * NULL when s is not base64. */
static unsigned char *
b64_decode(const char *s, size_t *len_out)
{
    size_t slen = strlen(s);
    unsigned char *out = xmalloc(slen + 1);
    size_t n = 0;
    if (slen && sodium_base642bin(out, slen + 1, s, slen, NULL, &n, NULL,
                                  sodium_base64_VARIANT_ORIGINAL) != 0) {
        free(out);
        return NULL;
    }
    out[n] = '\0';
    *len_out = n;
    return out;
}

void
api_kv_add_value(cJSON *obj, const void *data, size_t len)
{
    if (len <= KV_VALUE_INLINE_MAX) {
        char *b = b64_encode(data, len);
        cJSON_AddStringToObject(obj, "value_b64", b);
        free(b);
        return;
    }
    char sha[65];
    sha256_hex(data, len, sha);
    cJSON_AddStringToObject(obj, "value_sha256", sha);
    cJSON_AddBoolToObject(obj, "value_truncated", 1);
    cJSON_AddNumberToObject(obj, "value_bytes", (double)len);
}

cJSON *
api_kv_value_json(const struct consul_kv *kv)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "exists", kv->exists);
    if (kv->exists) {
        api_kv_add_value(o, kv->value ? (const void *)kv->value : "", kv->len);
        cJSON_AddNumberToObject(o, "modify_index", (double)kv->modify_index);
        cJSON_AddNumberToObject(o, "flags", (double)kv->flags);
    } else {
        cJSON_AddNullToObject(o, "value_b64");
    }
    return o;
}

/* ---- history ---- */

struct history {
    cJSON *entries;
    cJSON *outcomes; /* outcome entries seen so far, by the id of their attempt */
    int64_t before;  /* only entries with a smaller id; 0 = from the newest */
    int limit;
    int count;
};

/* The id of the attempt an outcome entry's detail names, or 0 when it is not one. */
static int64_t
attempt_of(const cJSON *d)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(d, "attempt_id");
    return cJSON_IsNumber(a) && a->valuedouble >= 1 ? (int64_t)a->valuedouble : 0;
}

/* Turns one audit row into a history entry; an outcome entry is kept until its attempt
 * comes (rows arrive newest first, so an outcome before its attempt), then folded into it. */
static int
history_row(const struct audit_row *row, void *ctx)
{
    struct history *h = ctx;
    cJSON *d = row->detail ? json_parse_str(row->detail) : NULL;
    int64_t attempt = attempt_of(d);
    if (attempt) {
        char key[24];
        snprintf(key, sizeof(key), "%lld", (long long)attempt);
        if (!cJSON_GetObjectItemCaseSensitive(h->outcomes, key)) {
            cJSON_AddStringToObject(d, "outcome", row->outcome ? row->outcome : "");
            cJSON_AddItemToObject(h->outcomes, key, d);
            d = NULL;
        }
        cJSON_Delete(d);
        return 0;
    }
    if (h->before && row->id >= h->before) {
        cJSON_Delete(d);
        return 0;
    }
    const cJSON *res = NULL; /* where the result is: the outcome entry, or this one */
    const char *outcome = row->outcome ? row->outcome : "";
    if (strcmp(outcome, "pending") == 0) {
        char key[24];
        snprintf(key, sizeof(key), "%lld", (long long)row->id);
        res = cJSON_GetObjectItemCaseSensitive(h->outcomes, key);
        if (res) {
            outcome = json_get_str(res, "outcome", "pending");
        }
    } else {
        res = d;
    }
    cJSON *e = cJSON_CreateObject();
    char when[40];
    time_format_rfc3339(row->ts, when, sizeof(when));
    cJSON_AddNumberToObject(e, "id", (double)row->id);
    cJSON_AddStringToObject(e, "time", when);
    cJSON_AddStringToObject(e, "actor", row->actor ? row->actor : "");
    cJSON_AddStringToObject(e, "action", row->action ? row->action : "");
    cJSON_AddStringToObject(e, "outcome", outcome);
    const cJSON *prev = cJSON_GetObjectItemCaseSensitive(d, "previous");
    if (cJSON_IsObject(prev)) {
        cJSON *p = cJSON_CreateObject();
        cJSON_AddBoolToObject(p, "exists", json_get_bool(prev, "exists", 0));
        const char *v = json_get_str(prev, "value_b64", NULL);
        if (v) {
            cJSON_AddStringToObject(p, "value_b64", v);
        } else {
            cJSON_AddNullToObject(p, "value_b64");
        }
        if (json_get_bool(prev, "value_truncated", 0)) {
            cJSON_AddBoolToObject(p, "value_truncated", 1);
        }
        if (cJSON_GetObjectItemCaseSensitive(prev, "modify_index")) {
            cJSON_AddNumberToObject(p, "modify_index", json_get_num(prev, "modify_index", 0));
        }
        cJSON_AddItemToObject(e, "previous", p);
    } else {
        cJSON_AddNullToObject(e, "previous");
    }
    const char *v = json_get_str(d, "value_b64", NULL);
    if (v) {
        cJSON_AddStringToObject(e, "value_b64", v);
    } else {
        cJSON_AddNullToObject(e, "value_b64");
    }
    if (json_get_bool(d, "value_truncated", 0)) {
        cJSON_AddBoolToObject(e, "value_truncated", 1);
    }
    const cJSON *from = cJSON_GetObjectItemCaseSensitive(d, "restored_from");
    if (cJSON_IsNumber(from)) {
        cJSON_AddNumberToObject(e, "restored_from", from->valuedouble);
    }
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(res, "consul_status");
    if (cJSON_IsNumber(st)) {
        cJSON_AddNumberToObject(e, "consul_status", st->valuedouble);
    }
    const cJSON *result = cJSON_GetObjectItemCaseSensitive(res, "result");
    if (cJSON_IsBool(result)) {
        cJSON_AddBoolToObject(e, "result", cJSON_IsTrue(result));
    }
    cJSON_AddItemToArray(h->entries, e);
    cJSON_Delete(d);
    return ++h->count >= h->limit;
}

/* "/v1/kv/<key>" with runs of '/' collapsed: the audit target of the key's changes. The
 * caller frees the result. */
static char *
kv_target(const char *key)
{
    char *t = xasprintf("%s%s", KV_PREFIX, key);
    char *n = proxy_collapse_slashes(t);
    free(t);
    return n;
}

int
api_kv_history(struct req *r)
{
    int status;
    int key_present = 0, limit_present = 0, before_present = 0;
    char *key = http_query(r, "key", &key_present);
    char *limit_s = http_query(r, "limit", &limit_present);
    char *before_s = http_query(r, "before", &before_present);
    char *target = NULL;
    if (!key || !key[0]) {
        status = http_reply_error(r, 400, "invalid_parameter",
                                  key_present && !key
                                      ? "query parameter 'key' has a bad percent-encoding"
                                      : "query parameter 'key' is required (the KV key)");
        goto out;
    }
    int limit = KV_HISTORY_MAX;
    if (limit_present) {
        char *end = NULL;
        long l = limit_s ? strtol(limit_s, &end, 10) : 0;
        if (!limit_s || *end || l < 1 || l > KV_HISTORY_MAX) {
            status = http_reply_error(r, 400, "invalid_parameter",
                                      "'limit' must be an integer from 1 to %d", KV_HISTORY_MAX);
            goto out;
        }
        limit = (int)l;
    }
    int64_t before = 0;
    if (before_present) {
        char *end = NULL;
        long long b = before_s ? strtoll(before_s, &end, 10) : 0;
        if (!before_s || *end || b < 1) {
            status =
                http_reply_error(r, 400, "invalid_parameter", "'before' must be an audit entry id");
            goto out;
        }
        before = b;
    }
    target = kv_target(key);
    /* from the newest row: an outcome is newer than its attempt, and may be newer than
     * before even when its attempt is not */
    struct audit_filter f = {
        .action_prefix = "consul.kv.",
        .target = target,
    };
    struct history h = {
        .entries = cJSON_CreateArray(),
        .outcomes = cJSON_CreateObject(),
        .before = before,
        .limit = limit,
    };
    int rc = store_audit_query(r->db, &f, history_row, &h);
    cJSON_Delete(h.outcomes);
    if (rc != STORE_OK && rc != STORE_STOP) {
        cJSON_Delete(h.entries);
        status = http_reply_error(r, 500, "internal", "cannot read the audit log");
        goto out;
    }
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "key", target + strlen(KV_PREFIX));
    cJSON_AddItemToObject(j, "entries", h.entries);
    status = http_reply_json(r, 200, j);
out:
    free(key);
    free(limit_s);
    free(before_s);
    free(target);
    return status;
}

/* ---- restore ---- */

struct found {
    int64_t want;
    int found;
    char *action;
    cJSON *detail;
};

static int
find_row(const struct audit_row *row, void *ctx)
{
    struct found *f = ctx;
    if (row->id == f->want) {
        f->found = 1;
        f->action = xstrdup(row->action ? row->action : "");
        f->detail = row->detail ? json_parse_str(row->detail) : NULL;
    }
    return 1; /* the newest row below want+1 is the only candidate */
}

/* What a restore writes: a value (put) or nothing (delete). */
struct wanted {
    int del;
    unsigned char *value;
    size_t len;
    uint64_t flags;
};

/* Picks the value recorded in an audit entry's detail. Returns NULL when fine, else why the
 * entry cannot be restored. */
static const char *
pick_value(const char *action, const cJSON *d, const char *which, struct wanted *w)
{
    const cJSON *src;
    if (strcmp(which, "previous") == 0) {
        src = cJSON_GetObjectItemCaseSensitive(d, "previous");
        if (!cJSON_IsObject(src) ||
            !cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(src, "exists"))) {
            return "this entry recorded no previous value";
        }
        if (!json_get_bool(src, "exists", 0)) {
            w->del = 1;
            return NULL;
        }
        w->flags = (uint64_t)json_get_num(src, "flags", 0);
    } else {
        src = d;
        if (strcmp(action, "consul.kv.delete") == 0 ||
            strcmp(json_get_str(d, "operation", ""), "delete") == 0) {
            w->del = 1;
            return NULL;
        }
        const char *q = json_get_str(d, "query", "");
        const char *fl = strstr(q, "flags=");
        if (fl && (fl == q || fl[-1] == '&')) {
            w->flags = strtoull(fl + 6, NULL, 10);
        } else {
            w->flags = (uint64_t)json_get_num(d, "flags", 0);
        }
    }
    if (json_get_bool(src, "value_truncated", 0)) {
        return "the value was too large to be recorded (only its SHA-256 is known)";
    }
    const char *b = json_get_str(src, "value_b64", NULL);
    if (!b) {
        return "this entry recorded no value";
    }
    w->value = b64_decode(b, &w->len);
    if (!w->value) {
        return "the recorded value is not valid base64";
    }
    return NULL;
}

static int
reply_consul_failure(struct req *r, int rc, const struct consul_response *resp, long status)
{
    if (rc == CONSUL_OK || (rc == CONSUL_ERROR && status)) {
        return http_reply_error(r, 502, "consul_error", "Consul answered HTTP %ld",
                                rc == CONSUL_OK ? resp->status : status);
    }
    if (rc == CONSUL_TOO_BIG) {
        return http_reply_error(r, 502, "consul_response_too_large",
                                "Consul's answer is too large");
    }
    return http_reply_error(r, 502, "consul_unreachable", "no Consul agent answered: %s",
                            resp ? resp->error : "");
}

int
api_kv_restore(struct req *r)
{
    int status;
    struct found f = {0};
    struct wanted w = {0};
    struct consul_kv cur = {0};
    struct consul_response resp;
    memset(&resp, 0, sizeof(resp));
    char *target = NULL, *esc = NULL, *path = NULL;
    cJSON *detail = NULL;
    cJSON *body = http_json_body(r);
    if (!body) {
        return r->status;
    }
    static const char *const allowed[] = {"key", "audit_id", "which", NULL};
    if (http_check_fields(r, body, allowed)) {
        status = r->status;
        goto out;
    }
    const char *key = json_get_str(body, "key", NULL);
    const char *which = json_get_str(body, "which", NULL);
    const cJSON *idj = cJSON_GetObjectItemCaseSensitive(body, "audit_id");
    if (!key || !key[0]) {
        status = http_reply_error(r, 400, "invalid_field", "'key' is required");
        goto out;
    }
    target = kv_target(key);
    if (!cJSON_IsNumber(idj) || idj->valuedouble < 1 ||
        idj->valuedouble != (double)(int64_t)idj->valuedouble) {
        status = http_reply_error(r, 400, "invalid_field",
                                  "'audit_id' must be the id of an audit entry");
        goto out;
    }
    if (!which || (strcmp(which, "previous") != 0 && strcmp(which, "value") != 0)) {
        status = http_reply_error(r, 400, "invalid_field",
                                  "'which' must be \"previous\" or \"value\"");
        goto out;
    }
    if (!r->app->consul) {
        status = http_reply_error(r, 503, "consul_not_configured", "no Consul agent is configured");
        goto out;
    }
    f.want = (int64_t)idj->valuedouble;
    struct audit_filter flt = {
        .action_prefix = "consul.kv.",
        .target = target,
        .before_id = f.want + 1,
        .limit = 1,
    };
    int src = store_audit_query(r->db, &flt, find_row, &f);
    if (src != STORE_OK && src != STORE_STOP) {
        status = http_reply_error(r, 500, "internal", "cannot read the audit log");
        goto out;
    }
    if (!f.found) {
        status =
            http_reply_error(r, 404, "not_found", "audit entry %lld is not a KV entry for key '%s'",
                             (long long)f.want, key);
        goto out;
    }
    int64_t outcome_of = attempt_of(f.detail);
    if (outcome_of) {
        status = http_reply_error(r, 400, "not_restorable",
                                  "entry %lld is the outcome of entry %lld: restore from that one",
                                  (long long)f.want, (long long)outcome_of);
        goto out;
    }
    const char *why = pick_value(f.action, f.detail, which, &w);
    if (why) {
        status = http_reply_error(r, 400, "not_restorable", "%s", why);
        goto out;
    }

    /* read the key's current index, then write with check-and-set on it */
    esc = consul_kv_escape(target + strlen(KV_PREFIX));
    path = xasprintf("%s%s", KV_PREFIX, esc);
    struct consul_opts opts = {.forwarded_for = r->ip};
    long rstatus = 0;
    int rc = consul_kv_read(r->app->consul, path, &opts, &cur, &rstatus);
    if (rc != CONSUL_OK) {
        status = reply_consul_failure(r, rc, NULL, rstatus);
        goto out;
    }
    free(path);
    path = NULL;

    detail = cJSON_CreateObject();
    cJSON_AddStringToObject(detail, "method", w.del ? "DELETE" : "PUT");
    cJSON_AddStringToObject(detail, "path", target);
    cJSON_AddStringToObject(detail, "operation", w.del ? "delete" : "put");
    cJSON_AddNumberToObject(detail, "restored_from", (double)f.want);
    cJSON_AddStringToObject(detail, "which", which);
    cJSON_AddItemToObject(detail, "previous", api_kv_value_json(&cur));
    if (w.del) {
        cJSON_AddNullToObject(detail, "value_b64");
    } else {
        api_kv_add_value(detail, w.value ? (const void *)w.value : "", w.len);
        cJSON_AddNumberToObject(detail, "flags", (double)w.flags);
    }

    if (w.del && !cur.exists) {
        /* already absent: nothing to write */
        cJSON_AddBoolToObject(detail, "result", 1);
        cJSON_AddStringToObject(detail, "note", "the key was already absent");
        http_audit(r, "consul.kv.restore", target, detail, "ok");
        detail = NULL;
        cJSON *j = cJSON_CreateObject();
        cJSON_AddBoolToObject(j, "ok", 1);
        cJSON_AddNullToObject(j, "value_b64");
        status = http_reply_json(r, 200, j);
        goto out;
    }
    unsigned long long cas = cur.exists ? (unsigned long long)cur.modify_index : 0ULL;
    cJSON_AddNumberToObject(detail, "cas", (double)cas);
    int64_t attempt = 0;
    rc = api_change_attempt(r, "consul.kv.restore", target, detail, &attempt);
    detail = NULL;
    if (rc != 0) {
        status = r->status;
        goto out;
    }
    if (w.del) {
        path = xasprintf("%s%s?cas=%llu", KV_PREFIX, esc, cas);
        rc = consul_request(r->app->consul, "DELETE", path, NULL, 0, &opts, &resp);
    } else {
        path =
            xasprintf("%s%s?cas=%llu&flags=%llu", KV_PREFIX, esc, cas, (unsigned long long)w.flags);
        rc = consul_request(r->app->consul, "PUT", path, w.value ? (const void *)w.value : "",
                            w.len, &opts, &resp);
    }
    int applied = rc == CONSUL_OK && resp.status == 200 &&
                  str_starts_with(resp.body ? resp.body : "", "true");
    cJSON *res = cJSON_CreateObject();
    if (rc == CONSUL_OK) {
        cJSON_AddNumberToObject(res, "consul_status", (double)resp.status);
        cJSON_AddStringToObject(res, "consul_address", resp.address);
        cJSON_AddBoolToObject(res, "result", applied);
    } else {
        cJSON_AddNullToObject(res, "consul_status");
        cJSON_AddStringToObject(res, "consul_error", resp.error);
    }
    api_change_outcome(r, "consul.kv.restore", target, attempt, res, applied ? "ok" : "error");
    if (rc != CONSUL_OK || (resp.status != 200)) {
        status = reply_consul_failure(r, rc, &resp, 0);
        goto out;
    }
    if (!applied) {
        status = http_reply_error(r, 409, "cas_conflict",
                                  "the key changed while restoring it; look at its history and "
                                  "try again");
        goto out;
    }
    cJSON *j = cJSON_CreateObject();
    cJSON_AddBoolToObject(j, "ok", 1);
    if (w.del) {
        cJSON_AddNullToObject(j, "value_b64");
    } else {
        char *b = b64_encode(w.value ? (const void *)w.value : "", w.len);
        cJSON_AddStringToObject(j, "value_b64", b);
        free(b);
    }
    status = http_reply_json(r, 200, j);
out:
    cJSON_Delete(body);
    cJSON_Delete(detail);
    cJSON_Delete(f.detail);
    free(f.action);
    free(w.value);
    consul_kv_clear(&cur);
    consul_response_free(&resp);
    free(target);
    free(esc);
    free(path);
    return status;
}
