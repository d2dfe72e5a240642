/* api_users: user administration (admin only). Every change is written together with its
 * audit entry in one transaction; the last enabled admin can be neither removed, demoted
 * nor disabled. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "store.h"
#include "util.h"

static void
add_time(cJSON *j, const char *key, int64_t ms)
{
    if (ms <= 0) {
        cJSON_AddNullToObject(j, key);
        return;
    }
    char ts[40];
    time_format_rfc3339(ms, ts, sizeof(ts));
    cJSON_AddStringToObject(j, key, ts);
}

static cJSON *
user_json(const struct store_user *u)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "name", u->name);
    cJSON_AddStringToObject(j, "role", u->role);
    cJSON_AddBoolToObject(j, "disabled", u->disabled);
    add_time(j, "created_at", u->created_at);
    add_time(j, "last_login_at", u->last_login_at);
    return j;
}

static int
list_cb(const struct store_user *u, void *ctx)
{
    cJSON_AddItemToArray(ctx, user_json(u));
    return 0;
}

int
api_users_list(struct req *r)
{
    cJSON *j = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(j, "users");
    if (store_user_each(r->db, list_cb, arr) != STORE_OK) {
        cJSON_Delete(j);
        return http_reply_error(r, 500, "internal", "cannot list users: database error");
    }
    return http_reply_json(r, 200, j);
}

/* Rejects members other than the allowed ones, naming the first unknown field. */
static int
check_fields(struct req *r, const cJSON *in, const char *const *allowed)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, in)
    {
        int ok = 0;
        for (const char *const *a = allowed; *a; a++) {
            if (strcmp(it->string, *a) == 0) {
                ok = 1;
            }
        }
        if (!ok) {
            http_reply_error(r, 400, "invalid_field", "unknown field '%s'", it->string);
            return -1;
        }
    }
    return 0;
}

/* Rolls back the change in progress and replies 500. Returns the status sent. */
static int
rollback_and_fail(struct req *r)
{
    store_rollback(r->db);
    return http_reply_error(r, 500, "internal", "database error; nothing was changed");
}

/* Finishes a change: commit, or roll back and reply 500. Returns 0 when committed. */
static int
commit_or_fail(struct req *r)
{
    if (store_commit(r->db) != STORE_OK) {
        rollback_and_fail(r);
        return -1;
    }
    return 0;
}

/* Hashes pw into hash. Returns 0, or the status of the error reply sent (503 when every
 * hashing slot stayed busy). */
static int
hash_password(struct req *r, const char *pw, char hash[AUTH_HASH_MAX])
{
    int rc = auth_password_hash(pw, hash);
    if (rc == AUTH_HASH_BUSY) {
        return http_reply_error(r, 503, "server_busy",
                                "too many password checks at once; try again in a few seconds");
    }
    if (rc != AUTH_HASH_OK) {
        return http_reply_error(r, 500, "internal", "password hashing failed");
    }
    return 0;
}

int
api_users_create(struct req *r)
{
    static const char *const allowed[] = {"name", "role", "password", NULL};
    cJSON *in = http_json_body(r);
    if (!in) {
        return r->status;
    }
    int status;
    char hash[AUTH_HASH_MAX];
    struct store_user u = {0};
    const char *name = json_get_str(in, "name", NULL);
    const char *role = json_get_str(in, "role", NULL);
    const char *pw = json_get_str(in, "password", NULL);
    const char *problem;
    if (check_fields(r, in, allowed)) {
        status = r->status;
        goto out;
    }
    if (!auth_name_valid(name)) {
        status = http_reply_error(r, 400, "invalid_field",
                                  "field 'name' must be 1-64 characters of letters, digits, "
                                  "'_', '.', '-' or '@', starting with a letter or digit");
        goto out;
    }
    if (role_parse(role) == ROLE_NONE) {
        status = http_reply_error(r, 400, "invalid_field",
                                  "field 'role' must be one of viewer, operator, approver, admin");
        goto out;
    }
    if ((problem = auth_password_problem(pw)) != NULL) {
        status = http_reply_error(r, 400, "invalid_field", "field 'password': %s", problem);
        goto out;
    }
    if ((status = hash_password(r, pw, hash)) != 0) {
        goto out;
    }
    if (store_begin(r->db)) {
        status = http_reply_error(r, 500, "internal", "database busy");
        goto out;
    }
    int rc = store_user_insert(r->db, name, role, hash, time_now_ms(), NULL);
    if (rc == STORE_CONFLICT) {
        store_rollback(r->db);
        status = http_reply_error(r, 409, "user_exists",
                                  "a user named '%s' already exists (names are compared without "
                                  "case)",
                                  name);
        goto out;
    }
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "role", role);
    if (rc != STORE_OK || http_audit(r, "user.create", name, d, "ok") != STORE_OK) {
        status = rollback_and_fail(r);
        goto out;
    }
    if (commit_or_fail(r)) {
        status = r->status;
        goto out;
    }
    if (store_user_get(r->db, name, &u) != STORE_OK) {
        status = http_reply_error(r, 500, "internal", "user created but cannot be read back");
        goto out;
    }
    cJSON *j = cJSON_CreateObject();
    cJSON_AddItemToObject(j, "user", user_json(&u));
    status = http_reply_json(r, 201, j);
out:
    secret_wipe(hash, sizeof(hash));
    store_user_clear(&u);
    cJSON_Delete(in);
    return status;
}

/* True when removing admin rights from u would leave no enabled admin. */
static int
would_orphan(struct req *r, const struct store_user *u, int *err)
{
    int64_t admins = 0;
    *err = 0;
    if (strcmp(u->role, "admin") != 0 || u->disabled) {
        return 0;
    }
    if (store_user_count_admins(r->db, &admins) != STORE_OK) {
        *err = 1;
        return 0;
    }
    return admins <= 1;
}

int
api_users_update(struct req *r)
{
    static const char *const allowed[] = {"role", "password", "disabled", NULL};
    const char *name = r->params[0];
    cJSON *in = http_json_body(r);
    if (!in) {
        return r->status;
    }
    int status, dberr = 0;
    char hash[AUTH_HASH_MAX] = "";
    struct store_user u = {0};
    const cJSON *jrole = cJSON_GetObjectItemCaseSensitive(in, "role");
    const cJSON *jpw = cJSON_GetObjectItemCaseSensitive(in, "password");
    const cJSON *jdis = cJSON_GetObjectItemCaseSensitive(in, "disabled");
    if (check_fields(r, in, allowed)) {
        status = r->status;
        goto out;
    }
    if (!jrole && !jpw && !jdis) {
        status = http_reply_error(r, 400, "invalid_field",
                                  "give at least one of 'role', 'password', 'disabled'");
        goto out;
    }
    if (jrole && (!cJSON_IsString(jrole) || role_parse(jrole->valuestring) == ROLE_NONE)) {
        status = http_reply_error(r, 400, "invalid_field",
                                  "field 'role' must be one of viewer, operator, approver, admin");
        goto out;
    }
    if (jdis && !cJSON_IsBool(jdis)) {
        status = http_reply_error(r, 400, "invalid_field", "field 'disabled' must be true or false");
        goto out;
    }
    if (jpw) {
        const char *problem = cJSON_IsString(jpw) ? auth_password_problem(jpw->valuestring)
                                                  : "must be a string";
        if (problem) {
            status = http_reply_error(r, 400, "invalid_field", "field 'password': %s", problem);
            goto out;
        }
        if ((status = hash_password(r, jpw->valuestring, hash)) != 0) {
            goto out;
        }
    }
    if (store_begin(r->db)) {
        status = http_reply_error(r, 500, "internal", "database busy");
        goto out;
    }
    int rc = store_user_get(r->db, name, &u);
    if (rc == STORE_NOT_FOUND) {
        store_rollback(r->db);
        status = http_reply_error(r, 404, "not_found", "no user named '%s'", name);
        goto out;
    }
    const char *new_role = jrole ? jrole->valuestring : NULL;
    int new_disabled = jdis ? cJSON_IsTrue(jdis) : -1;
    int demotes = (new_role && strcmp(new_role, "admin") != 0) || new_disabled == 1;
    if (rc == STORE_OK && demotes && would_orphan(r, &u, &dberr)) {
        store_rollback(r->db);
        status = http_reply_error(r, 409, "last_admin",
                                  "'%s' is the last enabled admin and cannot be demoted or "
                                  "disabled",
                                  name);
        goto out;
    }
    if (rc != STORE_OK || dberr ||
        store_user_update(r->db, name, new_role, hash[0] ? hash : NULL, new_disabled,
                          time_now_ms()) != STORE_OK) {
        status = rollback_and_fail(r);
        goto out;
    }
    /* A new password or a disabled account ends every session of that user. */
    if ((hash[0] || new_disabled == 1) && store_session_delete_user(r->db, u.id) != STORE_OK) {
        status = rollback_and_fail(r);
        goto out;
    }
    cJSON *d = cJSON_CreateObject();
    if (new_role) {
        cJSON *c = cJSON_AddObjectToObject(d, "role");
        cJSON_AddStringToObject(c, "from", u.role);
        cJSON_AddStringToObject(c, "to", new_role);
    }
    if (hash[0]) {
        cJSON_AddBoolToObject(d, "password_changed", 1);
    }
    if (new_disabled >= 0) {
        cJSON_AddBoolToObject(d, "disabled", new_disabled);
    }
    if (http_audit(r, "user.update", name, d, "ok") != STORE_OK) {
        status = rollback_and_fail(r);
        goto out;
    }
    if (commit_or_fail(r)) {
        status = r->status;
        goto out;
    }
    auth_user_changed(u.id); /* open sessions see the new role or state at their next request */
    store_user_clear(&u);
    if (store_user_get(r->db, name, &u) != STORE_OK) {
        status = http_reply_error(r, 500, "internal", "user updated but cannot be read back");
        goto out;
    }
    cJSON *j = cJSON_CreateObject();
    cJSON_AddItemToObject(j, "user", user_json(&u));
    status = http_reply_json(r, 200, j);
out:
    secret_wipe(hash, sizeof(hash));
    store_user_clear(&u);
    cJSON_Delete(in);
    return status;
}

int
api_users_delete(struct req *r)
{
    const char *name = r->params[0];
    struct store_user u = {0};
    int status, dberr = 0;
    if (store_begin(r->db)) {
        return http_reply_error(r, 500, "internal", "database busy");
    }
    int rc = store_user_get(r->db, name, &u);
    if (rc == STORE_NOT_FOUND) {
        store_rollback(r->db);
        status = http_reply_error(r, 404, "not_found", "no user named '%s'", name);
        goto out;
    }
    if (rc == STORE_OK && would_orphan(r, &u, &dberr)) {
        store_rollback(r->db);
        status = http_reply_error(r, 409, "last_admin",
                                  "'%s' is the last enabled admin and cannot be removed", name);
        goto out;
    }
    if (rc != STORE_OK || dberr || store_user_delete(r->db, name) != STORE_OK) {
        status = rollback_and_fail(r);
        goto out;
    }
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "role", u.role);
    if (http_audit(r, "user.delete", name, d, "ok") != STORE_OK) {
        status = rollback_and_fail(r);
        goto out;
    }
    if (commit_or_fail(r)) {
        status = r->status;
        goto out;
    }
    auth_user_changed(u.id);
    status = http_reply_json(r, 200, cJSON_CreateRaw("{\"ok\":true}"));
out:
    store_user_clear(&u);
    return status;
}
