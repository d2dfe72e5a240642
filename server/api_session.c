/* api_session: log in, who am I, log out. See the API reference in README.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "app.h"
#include "audit.h"
#include "store.h"
#include "util.h"

static cJSON *
session_json(const struct req *r, const struct auth_user *u)
{
    cJSON *j = cJSON_CreateObject();
    cJSON *user = cJSON_AddObjectToObject(j, "user");
    cJSON_AddStringToObject(user, "name", u->name);
    cJSON_AddStringToObject(user, "role", role_name(u->role));
    cJSON_AddStringToObject(j, "csrf_token", u->csrf_token);
    /* false: changes run without a second person's approval (the UI header says so) */
    cJSON_AddBoolToObject(j, "approval_required", r->app->cfg->approval_required);
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
    static const char *const allowed[] = {"username", "password", NULL};
    if (http_check_fields(r, in, allowed)) {
        status = r->status;
        goto out;
    }
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
    struct auth_refusal why;
    char token[65];
    int rc = auth_login(r->db, r->app->cfg, ju->valuestring, jp->valuestring, r->ip,
                        http_header(r, "User-Agent"), &user, token, &why);
    if (rc == AUTH_THROTTLED) {
        /* a refusal without a session: recorded within the address's budget only */
        if (http_anon_refusal(r)) {
            status = r->status;
            goto out;
        }
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "reason", why.reason);
        cJSON_AddNumberToObject(d, "retry_after_s", why.retry_after_s);
        struct audit_actor who = {.name = ju->valuestring, .role = "", .ip = r->ip};
        audit_record(r->db, &who, "auth.login_throttled", ju->valuestring, d, "denied", NULL);
        r->audited = 1;
        char hdr[64];
        snprintf(hdr, sizeof(hdr), "Retry-After: %d\r\n", why.retry_after_s);
        cJSON *j = cJSON_CreateObject();
        cJSON *e = cJSON_AddObjectToObject(j, "error");
        cJSON_AddStringToObject(e, "code", "too_many_attempts");
        char msg[256];
        snprintf(msg, sizeof(msg), "%s; try again in %d s", why.reason, why.retry_after_s);
        cJSON_AddStringToObject(e, "message", msg);
        char *body = json_print(j);
        cJSON_Delete(j);
        status = http_reply(r, 429, "application/json; charset=utf-8", hdr, body, strlen(body));
        free(body);
        goto out;
    }
    if (rc == AUTH_BAD_CREDENTIALS) {
        r->audited = 1; /* auth.login_failed; the login throttle bounds how many */
        status = http_reply_error(r, 401, "invalid_credentials", "wrong user name or password");
        goto out;
    }
    if (rc == AUTH_BUSY) {
        status = http_reply_error(r, 503, "server_busy",
                                  "too many password checks at once; try again in a few "
                                  "seconds");
        goto out;
    }
    if (rc != AUTH_OK) {
        status = http_reply_error(r, 500, "internal", "login failed: database error");
        goto out;
    }
    r->audited = 1; /* auth.login, with the session */
    r->authenticated = 1;
    r->user = user;
    char cookie[256];
    snprintf(cookie, sizeof(cookie),
             "Set-Cookie: " SESSION_COOKIE "=%s; HttpOnly; SameSite=Strict; Path=/%s\r\n", token,
             r->tls ? "; Secure" : "");
    secret_wipe(token, sizeof(token));
    cJSON *j = session_json(r, &user);
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
    return http_reply_json(r, 200, session_json(r, &r->user));
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
    auth_session_forget(r->user.token_hash);
    const char *clear = "Set-Cookie: " SESSION_COOKIE
                        "=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0\r\n";
    static const char body[] = "{\"ok\":true}";
    return http_reply(r, 200, "application/json; charset=utf-8", clear, body, sizeof(body) - 1);
}
