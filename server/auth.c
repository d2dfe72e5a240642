/* auth: see include/auth.h. */
#include "auth.h"

#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "config.h"
#include "store.h"
#include "util.h"

static const char *const role_names[] = {"none", "viewer", "operator", "approver", "admin"};

const char *
role_name(enum role r)
{
    return (r >= ROLE_NONE && r <= ROLE_ADMIN) ? role_names[r] : "none";
}

enum role
role_parse(const char *name)
{
    for (int r = ROLE_VIEWER; r <= ROLE_ADMIN; r++) {
        if (name && strcmp(name, role_names[r]) == 0) {
            return (enum role)r;
        }
    }
    return ROLE_NONE;
}

const char *
auth_password_problem(const char *pw)
{
    if (!pw) {
        return "password is required";
    }
    size_t len = strlen(pw);
    if (!utf8_valid(pw, len)) {
        return "password must be valid UTF-8 text";
    }
    size_t chars = 0;
    for (size_t i = 0; i < len; i++) {
        if (((unsigned char)pw[i] & 0xC0) != 0x80) {
            chars++;
        }
    }
    if (chars < AUTH_PASSWORD_MIN) {
        return "password must be at least 10 characters long";
    }
    if (len > AUTH_PASSWORD_MAX) {
        return "password must be at most 1024 bytes long";
    }
    return NULL;
}

int
auth_name_valid(const char *name)
{
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || len > 64) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || !(c == '_' || c == '.' || c == '-' || c == '@'))) {
            return 0;
        }
    }
    return 1;
}

int
auth_password_hash(const char *pw, char out[AUTH_HASH_MAX])
{
    if (sodium_init() < 0) {
        return -1;
    }
    _Static_assert(crypto_pwhash_STRBYTES <= AUTH_HASH_MAX, "hash buffer");
    return crypto_pwhash_str(out, pw, strlen(pw), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                             crypto_pwhash_MEMLIMIT_INTERACTIVE) == 0
               ? 0
               : -1;
}

int
auth_password_verify(const char *hash, const char *pw)
{
    if (sodium_init() < 0 || !hash || !pw) {
        return 0;
    }
    return crypto_pwhash_str_verify(hash, pw, strlen(pw)) == 0;
}

void
auth_token_new(char out[65])
{
    random_hex(32, out);
}

void
auth_token_hash(const char *token, char out[65])
{
    sha256_hex(token, strlen(token), out);
}

void
auth_password_generate(char out[21])
{
    static const char alphabet[] = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    if (sodium_init() < 0) {
        out[0] = '\0';
        return;
    }
    for (int i = 0; i < 20; i++) {
        out[i] = alphabet[randombytes_uniform(sizeof(alphabet) - 1)];
    }
    out[20] = '\0';
}

/* A dummy hash verified when the user does not exist, so a login for an unknown name takes
 * as long as one with a wrong password. Computed once. */
static const char *
dummy_hash(void)
{
    static char h[AUTH_HASH_MAX];
    static int ready;
    if (!ready) {
        auth_password_hash("consulate-dummy-password", h);
        ready = 1;
    }
    return h;
}

static void
audit_login(struct store *s, const char *user, const char *role, const char *ip,
            const char *action, const char *outcome, const char *reason)
{
    cJSON *d = cJSON_CreateObject();
    if (reason) {
        cJSON_AddStringToObject(d, "reason", reason);
    }
    char *detail = json_print(d);
    cJSON_Delete(d);
    struct audit_entry e = {user, role, ip, action, user, detail, outcome};
    store_audit_append(s, &e, NULL);
    free(detail);
}

int
auth_login(struct store *s, const struct config *cfg, const char *username, const char *password,
           const char *ip, const char *user_agent, struct auth_user *user, char token_out[65])
{
    int64_t now = time_now_ms();
    int64_t since = now - (int64_t)cfg->login_window_s * 1000;
    int64_t by_user = 0, by_ip = 0;
    struct store_user u = {0};
    int rc = AUTH_ERROR;

    if (store_login_failure_count(s, username, ip, since, &by_user, &by_ip)) {
        return AUTH_ERROR;
    }
    if (by_user >= cfg->login_max_failures || by_ip >= cfg->login_max_failures) {
        audit_login(s, username, "", ip, "auth.login_throttled", "denied",
                    by_user >= cfg->login_max_failures ? "too many failures for this user"
                                                       : "too many failures from this address");
        return AUTH_THROTTLED;
    }
    int found = store_user_get(s, username, &u);
    if (found == STORE_ERROR) {
        return AUTH_ERROR;
    }
    int ok = auth_password_verify(found == STORE_OK ? u.password_hash : dummy_hash(), password);
    if (found != STORE_OK || !ok || u.disabled) {
        if (store_begin(s)) {
            goto out;
        }
        store_login_failure_add(s, username, ip, now);
        audit_login(s, username, found == STORE_OK ? u.role : "", ip, "auth.login_failed",
                    "denied",
                    found != STORE_OK ? "unknown user"
                    : !ok             ? "wrong password"
                                      : "account disabled");
        if (store_commit(s)) {
            store_rollback(s);
            goto out;
        }
        rc = AUTH_BAD_CREDENTIALS;
        goto out;
    }
    char token[65], token_hash[65], csrf[65];
    auth_token_new(token);
    auth_token_hash(token, token_hash);
    auth_token_new(csrf);
    if (store_begin(s)) {
        goto out;
    }
    if (store_session_insert(s, token_hash, u.id, csrf, now, ip, user_agent) ||
        store_user_touch_login(s, u.id, now) || store_login_failure_clear_user(s, username)) {
        store_rollback(s);
        goto out;
    }
    audit_login(s, u.name, u.role, ip, "auth.login", "ok", NULL);
    if (store_commit(s)) {
        store_rollback(s);
        goto out;
    }
    memset(user, 0, sizeof(*user));
    user->id = u.id;
    snprintf(user->name, sizeof(user->name), "%s", u.name);
    user->role = role_parse(u.role);
    memcpy(user->csrf_token, csrf, sizeof(csrf));
    memcpy(user->token_hash, token_hash, sizeof(token_hash));
    memcpy(token_out, token, sizeof(token));
    secret_wipe(token, sizeof(token));
    rc = AUTH_OK;
out:
    store_user_clear(&u);
    return rc;
}

int
auth_session_lookup(struct store *s, const struct config *cfg, const char *token,
                    struct auth_user *user)
{
    if (!token || strlen(token) != 64) {
        return AUTH_NO_SESSION;
    }
    char token_hash[65];
    auth_token_hash(token, token_hash);
    struct store_session sess;
    int rc = store_session_get(s, token_hash, &sess);
    if (rc == STORE_NOT_FOUND) {
        return AUTH_NO_SESSION;
    } else if (rc) {
        return AUTH_ERROR;
    }
    int64_t now = time_now_ms();
    if (now - sess.last_seen_at > (int64_t)cfg->session_idle_timeout_s * 1000 ||
        now - sess.created_at > (int64_t)cfg->session_absolute_timeout_s * 1000) {
        store_session_delete(s, token_hash);
        return AUTH_NO_SESSION;
    }
    if (sess.user_disabled) {
        return AUTH_NO_SESSION;
    }
    /* Refresh last-seen at most every 5 s to keep reads cheap. */
    if (now - sess.last_seen_at > 5000) {
        store_session_touch(s, token_hash, now);
    }
    memset(user, 0, sizeof(*user));
    user->id = sess.user_id;
    memcpy(user->name, sess.user_name, sizeof(user->name));
    user->role = role_parse(sess.user_role);
    memcpy(user->csrf_token, sess.csrf_token, sizeof(user->csrf_token));
    memcpy(user->token_hash, token_hash, sizeof(token_hash));
    return AUTH_OK;
}
