/* kv: the key/value store, a sorted array of entries with Consul's index bookkeeping.
 * dc->mu must be held by the caller of every function here. */
#include "sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct kv_entry *
kv_find(const struct dc *dc, const char *key)
{
    size_t i = kv_lower_bound(dc, key);
    if (i < dc->n_kv && strcmp(dc->kv[i]->key, key) == 0) {
        return dc->kv[i];
    }
    return NULL;
}

size_t
kv_lower_bound(const struct dc *dc, const char *prefix)
{
    size_t lo = 0;
    size_t hi = dc->n_kv;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(dc->kv[mid]->key, prefix) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

static void
entry_free(struct kv_entry *e)
{
    free(e->key);
    free(e->val);
    free(e);
}

static void
set_value(struct kv_entry *e, const void *val, size_t len)
{
    free(e->val);
    e->val = xmalloc(len + 1);
    if (len) {
        memcpy(e->val, val, len);
    }
    e->val[len] = '\0';
    e->len = len;
}

/* Sets key to val. With has_cas the write happens only when cas is 0 and the key is absent,
 * or cas equals the key's ModifyIndex. Returns whether the write happened. */
bool
kv_put(struct dc *dc, const char *key, const void *val, size_t len, uint64_t flags, bool has_cas,
       uint64_t cas)
{
    size_t i = kv_lower_bound(dc, key);
    struct kv_entry *e = (i < dc->n_kv && strcmp(dc->kv[i]->key, key) == 0) ? dc->kv[i] : NULL;
    if (has_cas && ((cas == 0 && e) || (cas != 0 && (!e || e->modify_index != cas)))) {
        return false;
    }
    dc_bump(dc, RES_KV);
    if (!e) {
        e = xcalloc(1, sizeof(*e));
        e->key = xstrdup(key);
        e->create_index = dc->index;
        dc->kv = xrealloc(dc->kv, (dc->n_kv + 1) * sizeof(*dc->kv));
        memmove(&dc->kv[i + 1], &dc->kv[i], (dc->n_kv - i) * sizeof(*dc->kv));
        dc->kv[i] = e;
        dc->n_kv++;
    }
    set_value(e, val, len);
    e->flags = flags;
    e->modify_index = dc->index;
    return true;
}

/* Lock handling for ?acquire= and ?release=: returns whether it succeeded. */
bool
kv_lock(struct dc *dc, const char *key, const void *val, size_t len, uint64_t flags,
        const char *session, bool acquire)
{
    struct kv_entry *e = kv_find(dc, key);
    if (acquire) {
        if (e && e->session[0] && strcmp(e->session, session) != 0) {
            return false;
        }
    } else if (!e || strcmp(e->session, session) != 0) {
        return false;
    }
    bool had = e && e->session[0];
    kv_put(dc, key, val, len, flags, false, 0);
    e = kv_find(dc, key);
    if (acquire) {
        snprintf(e->session, sizeof(e->session), "%s", session);
        if (!had) {
            e->lock_index++;
        }
    } else {
        e->session[0] = '\0';
    }
    return true;
}

/* Deletes key, or every key with that prefix when recurse. With has_cas (single key only)
 * the delete happens only when cas equals the ModifyIndex. Returns Consul's answer: true
 * when it happened, and for a key that does not exist (whatever cas says: the state store
 * answers "entry == nil" to a delete-CAS without an entry), false on a CAS mismatch. */
bool
kv_delete(struct dc *dc, const char *key, bool recurse, bool has_cas, uint64_t cas)
{
    size_t i = kv_lower_bound(dc, key);
    if (!recurse) {
        if (i >= dc->n_kv || strcmp(dc->kv[i]->key, key) != 0) {
            return true;
        }
        if (has_cas && dc->kv[i]->modify_index != cas) {
            return false;
        }
        entry_free(dc->kv[i]);
        memmove(&dc->kv[i], &dc->kv[i + 1], (dc->n_kv - i - 1) * sizeof(*dc->kv));
        dc->n_kv--;
        dc_bump(dc, RES_KV);
        return true;
    }
    size_t j = i;
    size_t plen = strlen(key);
    while (j < dc->n_kv && strncmp(dc->kv[j]->key, key, plen) == 0) {
        entry_free(dc->kv[j]);
        j++;
    }
    if (j > i) {
        memmove(&dc->kv[i], &dc->kv[j], (dc->n_kv - j) * sizeof(*dc->kv));
        dc->n_kv -= j - i;
    }
    dc_bump(dc, RES_KV);
    return true;
}

void
kv_free_all(struct dc *dc)
{
    for (size_t i = 0; i < dc->n_kv; i++) {
        entry_free(dc->kv[i]);
    }
    free(dc->kv);
    dc->kv = NULL;
    dc->n_kv = 0;
}

/* Standard base64 with padding; returns a string the caller frees. */
static char *
base64_encode(const unsigned char *in, size_t len)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = xmalloc(4 * ((len + 2) / 3) + 1);
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len) {
            v |= (uint32_t)in[i + 1] << 8;
        }
        if (i + 2 < len) {
            v |= in[i + 2];
        }
        out[o++] = tbl[(v >> 18) & 63];
        out[o++] = tbl[(v >> 12) & 63];
        out[o++] = i + 1 < len ? tbl[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? tbl[v & 63] : '=';
    }
    out[o] = '\0';
    return out;
}

/* The entry as Consul's DirEntry JSON: Session only while a lock is held (omitempty),
 * Value null when empty. The result is the caller's. */
cJSON *
kv_entry_json(const struct kv_entry *e)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "LockIndex", (double)e->lock_index);
    cJSON_AddStringToObject(o, "Key", e->key);
    cJSON_AddNumberToObject(o, "Flags", (double)e->flags);
    if (e->len) {
        char *b64 = base64_encode(e->val, e->len);
        cJSON_AddStringToObject(o, "Value", b64);
        free(b64);
    } else {
        cJSON_AddNullToObject(o, "Value");
    }
    if (e->session[0]) {
        cJSON_AddStringToObject(o, "Session", e->session);
    }
    cJSON_AddNumberToObject(o, "CreateIndex", (double)e->create_index);
    cJSON_AddNumberToObject(o, "ModifyIndex", (double)e->modify_index);
    return o;
}
