/* json_body: see include/json_body.h. */
#include "json_body.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* The offset of the first \u0000 escape inside a string of the JSON text, or len. */
static size_t
nul_escape_at(const char *t, size_t len)
{
    int in_string = 0;
    for (size_t i = 0; i < len; i++) {
        if (!in_string) {
            in_string = t[i] == '"';
        } else if (t[i] == '"') {
            in_string = 0;
        } else if (t[i] == '\\' && i + 1 < len) {
            if (t[i + 1] == 'u' && i + 5 < len && t[i + 2] == '0' && t[i + 3] == '0' &&
                t[i + 4] == '0' && t[i + 5] == '0') {
                return i;
            }
            i++; /* the escaped character */
        }
    }
    return len;
}

static int
name_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A key that some object of j (at any depth) has twice, or NULL. Sorting the names makes it
 * O(n log n) for an object of n keys. */
static const char *
dup_key(const cJSON *j)
{
    size_t n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, j)
    {
        n++;
    }
    const char *found = NULL;
    if (cJSON_IsObject(j) && n > 1) {
        const char **names = xcalloc(n, sizeof(*names));
        size_t k = 0;
        cJSON_ArrayForEach(it, j)
        {
            names[k++] = it->string ? it->string : "";
        }
        qsort(names, n, sizeof(*names), name_cmp);
        for (size_t i = 1; i < n && !found; i++) {
            if (strcmp(names[i - 1], names[i]) == 0) {
                found = names[i];
            }
        }
        free(names);
    }
    cJSON_ArrayForEach(it, j)
    {
        if (!found && (cJSON_IsObject(it) || cJSON_IsArray(it))) {
            found = dup_key(it);
        }
    }
    return found;
}

int
json_body_parse(const char *body, size_t len, cJSON **out, char *msg, size_t msglen)
{
    *out = NULL;
    if (!body || len == 0) {
        snprintf(msg, msglen, "request body must be a JSON object");
        return JSON_BODY_EMPTY;
    }
    const char *nul = memchr(body, '\0', len);
    if (nul) {
        snprintf(msg, msglen, "request body contains a NUL byte (at byte %zu)",
                 (size_t)(nul - body));
        return JSON_BODY_NUL;
    }
    if (!utf8_valid(body, len)) {
        snprintf(msg, msglen, "request body is not valid UTF-8");
        return JSON_BODY_NOT_UTF8;
    }
    size_t esc = nul_escape_at(body, len);
    if (esc < len) {
        snprintf(msg, msglen, "request body has \\u0000 (NUL) in a string (at byte %zu)", esc);
        return JSON_BODY_NUL;
    }
    cJSON *j = NULL;
    size_t at = 0;
    int rc = json_parse(body, len, &j, &at);
    if (rc == JSON_TOO_DEEP) {
        snprintf(msg, msglen,
                 "request body nests arrays and objects more than %d deep (at byte %zu)",
                 JSON_MAX_DEPTH, at);
        return JSON_BODY_TOO_DEEP;
    }
    if (rc != JSON_OK) {
        snprintf(msg, msglen, "request body is not valid JSON (at byte %zu)", at);
        return JSON_BODY_SYNTAX;
    }
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        snprintf(msg, msglen, "request body must be a JSON object");
        return JSON_BODY_NOT_OBJECT;
    }
    const char *dup = dup_key(j);
    if (dup) {
        char shown[64];
        size_t n = strlen(dup);
        snprintf(shown, sizeof(shown), "%.*s%s", n > 40 ? 40 : (int)n, dup, n > 40 ? "…" : "");
        for (char *c = shown; *c; c++) {
            *c = iscntrl((unsigned char)*c) ? '?' : *c;
        }
        snprintf(msg, msglen, "request body has the key '%s' twice in one object", shown);
        cJSON_Delete(j);
        return JSON_BODY_DUP_KEY;
    }
    *out = j;
    return JSON_BODY_OK;
}
