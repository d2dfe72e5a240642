/* api_session: log in, who am I, log out. See the API reference in README.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "app.h"
#include "store.h"
#include "util.h"

static cJSON *
session_json(const struct auth_user *u)
{
    cJSON *j = cJSON_CreateObject();
    cJSON *user = cJSON_AddObjectToObject(j, "user");
    cJSON_AddStringToObject(user, "name", u->name);
    cJSON_AddStringToObject(user, "role", role_name(u->role));
    cJSON_AddStringToObject(j, "csrf_token", u->csrf_token);
    return j;
}

int
api_session_create(struct req *r)
{
    cJSON *in = http_json_body(r);
    if (!in) {
        return r->status;
    }
    int status;
    const cJSON *ju = cJSON_GetObjectItemCaseSensitive(in, "username");
    const cJSON *jp = cJSON_GetObjectItemCaseSensitive(in, "password");
    if (!cJSON_IsString(ju) || !ju->valuestring[0] || strlen(ju->valuestring) > 64) {
        status = http_reply_error(r, 400, "invalid_field",
                                  "field 'username' must be a non-empty string of at most 64 "
                                  "characters");
        goto out;
    }
    if (!cJSON_IsString(jp) || strlen(jp->valuestring) > AUTH_PASSWORD_MAX) {
        status = http_reply_error(r, 400, "invalid_field",
                                  "field 'password' must be a string of at most %d bytes",
                                  AUTH_PASSWORD_MAX);
        goto out;
    }
    struct auth_user user;
    char token[65];
    int rc = auth_login(r->db, r->app->cfg, ju->valuestring, jp->valuestring, r->ip,
                        http_header(r, "User-Agent"), &user, token);
    r->audited = 1; /* auth_login records success, failure and throttling itself */
    if (rc == AUTH_THROTTLED) {
        char hdr[64];
        snprintf(hdr, sizeof(hdr), "Retry-After: %d\r\n", r->app->cfg->login_window_s);
        char body[256];
        int n = snprintf(body, sizeof(body),
                         "{\"error\":{\"code\":\"too_many_attempts\",\"message\":\"too many "
                         "failed logins; try again in %d minutes\"}}",
                         (r->app->cfg->login_window_s + 59) / 60);
        status = http_reply(r, 429, "application/json; charset=utf-8", hdr, body, (size_t)n);
        goto out;
    }
    if (rc == AUTH_BAD_CREDENTIALS) {
        status = http_reply_error(r, 401, "invalid_credentials", "wrong user name or password");
        goto out;
    }
    if (rc != AUTH_OK) {
        status = http_reply_error(r, 500, "internal", "login failed: database error");
        goto out;
    }
    r->authenticated = 1;
    r->user = user;
    char cookie[256];
    snprintf(cookie, sizeof(cookie),
             "Set-Cookie: " SESSION_COOKIE "=%s; HttpOnly; SameSite=Strict; Path=/%s\r\n", token,
             r->tls ? "; Secure" : "");
    secret_wipe(token, sizeof(token));
    cJSON *j = session_json(&user);
    char *s = json_print(j);
    cJSON_Delete(j);
    status = http_reply(r, 200, "application/json; charset=utf-8", cookie, s, strlen(s));
    free(s);
    secret_wipe(cookie, sizeof(cookie));
out:
    cJSON_Delete(in);
    return status;
}

int
api_session_get(struct req *r)
{
    return http_reply_json(r, 200, session_json(&r->user));
}

int
api_session_delete(struct req *r)
{
    if (store_begin(r->db)) {
        return http_reply_error(r, 500, "internal", "database busy");
    }
    if (store_session_delete(r->db, r->user.token_hash) ||
        http_audit(r, "auth.logout", r->user.name, NULL, "ok")) {
        store_rollback(r->db);
        return http_reply_error(r, 500, "internal", "logout failed: database error");
    }
    if (store_commit(r->db)) {
        store_rollback(r->db);
        return http_reply_error(r, 500, "internal", "logout failed: database error");
    }
    const char *clear = "Set-Cookie: " SESSION_COOKIE
                        "=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0\r\n";
    static const char body[] = "{\"ok\":true}";
    return http_reply(r, 200, "application/json; charset=utf-8", clear, body, sizeof(body) - 1);
}
