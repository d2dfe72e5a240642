/* audit: see include/audit.h. */
#include "audit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "store.h"
#include "util.h"

static void
put_len(crypto_hash_sha256_state *st, unsigned char tag, size_t len)
{
    unsigned char hdr[9];
    hdr[0] = tag;
    uint64_t n = (uint64_t)len;
    for (int i = 8; i >= 1; i--) {
        hdr[i] = (unsigned char)(n & 0xff);
        n >>= 8;
    }
    crypto_hash_sha256_update(st, hdr, sizeof(hdr));
}

void
audit_hash_row(const struct audit_value cols[AUDIT_NCOLS], char out[65])
{
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    for (int c = 0; c < AUDIT_NCOLS; c++) {
        const struct audit_value *v = &cols[c];
        char num[40];
        int n;
        switch (v->type) {
        case AUDIT_NULL:
            put_len(&st, 'n', 0);
            break;
        case AUDIT_INT:
            n = snprintf(num, sizeof(num), "%lld", (long long)v->i);
            put_len(&st, 'i', (size_t)n);
            crypto_hash_sha256_update(&st, (const unsigned char *)num, (size_t)n);
            break;
        case AUDIT_FLOAT:
            n = snprintf(num, sizeof(num), "%.17g", v->f);
            put_len(&st, 'f', (size_t)n);
            crypto_hash_sha256_update(&st, (const unsigned char *)num, (size_t)n);
            break;
        case AUDIT_TEXT:
        case AUDIT_BLOB:
            put_len(&st, v->type == AUDIT_TEXT ? 't' : 'b', v->len);
            if (v->len) {
                crypto_hash_sha256_update(&st, v->data, v->len);
            }
            break;
        }
    }
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final(&st, h);
    hex_encode(h, sizeof(h), out);
}

int
audit_outcome_valid(const char *outcome)
{
    return outcome && (strcmp(outcome, "ok") == 0 || strcmp(outcome, "denied") == 0 ||
                       strcmp(outcome, "error") == 0 || strcmp(outcome, "pending") == 0);
}

int
audit_record(struct store *s, const struct audit_actor *actor, const char *action,
             const char *target, cJSON *detail, const char *outcome, int64_t *id_out)
{
    char *d = NULL;
    if (detail) {
        d = json_print(detail);
        cJSON_Delete(detail);
    }
    int rc = STORE_ERROR;
    if (!s || !audit_action_valid(action) || !audit_outcome_valid(outcome)) {
        log_error("audit: refused to record action '%s' outcome '%s'", action ? action : "",
                  outcome ? outcome : "");
        goto out;
    }
    struct audit_entry e = {
        .actor = actor && actor->name ? actor->name : "",
        .role = actor && actor->role ? actor->role : "",
        .ip = actor && actor->ip ? actor->ip : "",
        .action = action,
        .target = target ? target : "",
        .detail = d,
        .outcome = outcome,
    };
    rc = store_audit_append(s, &e, id_out);
    if (rc != STORE_OK) {
        log_error("audit: could not record %s: %s", action, store_errmsg(s));
    }
out:
    free(d);
    return rc;
}

int
audit_action_valid(const char *action)
{
    size_t len = action ? strlen(action) : 0;
    if (len == 0 || len > 64 || action[0] == '.' || action[len - 1] == '.') {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        char c = action[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.')) {
            return 0;
        }
    }
    return 1;
}

/* ---- row formatting ---- */

/* Truncates b back to len (undoing a partial append). */
static void
buf_truncate(struct buf *b, size_t len)
{
    b->len = len;
    if (b->data) {
        b->data[len] = '\0';
    }
}

/* Appends one CSV field: the formula guard first, quoted when it holds a comma, quote, CR or
 * LF, quotes doubled. */
static int
csv_field(struct buf *b, const char *s)
{
    int guard =
        s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@' || s[0] == '\t' || s[0] == '\r';
    if (!strpbrk(s, ",\"\r\n")) {
        return (guard ? buf_append(b, "'", 1) : BUF_OK) | buf_puts(b, s);
    }
    int rc = buf_append(b, guard ? "\"'" : "\"", guard ? 2 : 1);
    for (;;) {
        const char *q = strchr(s, '"');
        if (!q) {
            rc |= buf_puts(b, s);
            break;
        }
        rc |= buf_append(b, s, (size_t)(q - s + 1));
        rc |= buf_append(b, "\"", 1);
        s = q + 1;
    }
    return rc | buf_append(b, "\"", 1);
}

int
audit_csv_header(struct buf *b)
{
    return buf_puts(b, "id,time,actor,role,ip,action,target,outcome,detail,hash\r\n");
}

static const char *
nz(const char *s)
{
    return s ? s : "";
}

int
audit_csv_row(struct buf *b, const struct audit_row *row)
{
    size_t start = b->len;
    char when[40];
    time_format_rfc3339(row->ts, when, sizeof(when));
    int rc = buf_printf(b, "%lld,%s,", (long long)row->id, when);
    const char *fields[] = {row->actor,  row->role,    row->ip,     row->action,
                            row->target, row->outcome, row->detail, row->hash};
    for (size_t i = 0; i < ARRAY_LEN(fields); i++) {
        rc |= csv_field(b, nz(fields[i]));
        rc |= buf_puts(b, i + 1 < ARRAY_LEN(fields) ? "," : "\r\n");
    }
    if (rc != BUF_OK) {
        buf_truncate(b, start);
        return BUF_TOO_BIG;
    }
    return BUF_OK;
}

cJSON *
audit_row_json(const struct audit_row *row)
{
    char when[40];
    time_format_rfc3339(row->ts, when, sizeof(when));
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "id", (double)row->id);
    cJSON_AddStringToObject(j, "time", when);
    cJSON_AddStringToObject(j, "actor", nz(row->actor));
    cJSON_AddStringToObject(j, "role", nz(row->role));
    cJSON_AddStringToObject(j, "ip", nz(row->ip));
    cJSON_AddStringToObject(j, "action", nz(row->action));
    cJSON_AddStringToObject(j, "target", nz(row->target));
    const char *detail = nz(row->detail);
    cJSON *d = json_parse_str(detail);
    if (cJSON_IsObject(d)) {
        cJSON_AddItemToObject(j, "detail", d);
    } else {
        cJSON_Delete(d);
        cJSON_AddStringToObject(j, "detail", detail);
    }
    cJSON_AddStringToObject(j, "outcome", nz(row->outcome));
    cJSON_AddStringToObject(j, "prev_hash", nz(row->prev_hash));
    cJSON_AddStringToObject(j, "hash", nz(row->hash));
    return j;
}

int
audit_jsonl_row(struct buf *b, const struct audit_row *row)
{
    size_t start = b->len;
    cJSON *j = audit_row_json(row);
    char *text = json_print(j);
    cJSON_Delete(j);
    int rc = buf_puts(b, text);
    rc |= buf_append(b, "\n", 1);
    free(text);
    if (rc != BUF_OK) {
        buf_truncate(b, start);
        return BUF_TOO_BIG;
    }
    return BUF_OK;
}

int
audit_action_prefix_valid(const char *prefix)
{
    size_t len = prefix ? strlen(prefix) : 0;
    if (len == 0 || len > 64) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        char c = prefix[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.')) {
            return 0;
        }
    }
    return 1;
}
