/* json_body: see include/json_body.h. */
#include "json_body.h"

#include <stdio.h>

#include "util.h"

int
json_body_parse(const char *body, size_t len, cJSON **out, char *msg, size_t msglen)
{
    *out = NULL;
    if (!body || len == 0) {
        snprintf(msg, msglen, "request body must be a JSON object");
        return JSON_BODY_EMPTY;
    }
    if (!utf8_valid(body, len)) {
        snprintf(msg, msglen, "request body is not valid UTF-8");
        return JSON_BODY_NOT_UTF8;
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
    *out = j;
    return JSON_BODY_OK;
}
