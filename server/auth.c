/* auth: see include/auth.h. */
#include "auth.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "audit.h"
#include "config.h"
#include "metrics.h"
#include "session_cache.h"
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

/* ---- password hashing, at most AUTH_HASH_CONCURRENCY at once ---- */

static pthread_mutex_t hash_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hash_cond;
static pthread_once_t hash_once = PTHREAD_ONCE_INIT;
static int hash_in_use, hash_peak;

static void
hash_cond_init(void)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&hash_cond, &a);
    pthread_condattr_destroy(&a);
}

int
auth_hash_slot_take(int wait_ms)
{
    pthread_once(&hash_once, hash_cond_init);
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += wait_ms / 1000;
    deadline.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    int rc = AUTH_HASH_OK;
    pthread_mutex_lock(&hash_lock);
    while (hash_in_use >= AUTH_HASH_CONCURRENCY) {
        if (pthread_cond_timedwait(&hash_cond, &hash_lock, &deadline) == ETIMEDOUT &&
            hash_in_use >= AUTH_HASH_CONCURRENCY) {
            rc = AUTH_HASH_BUSY;
            break;
        }
    }
    if (rc == AUTH_HASH_OK && ++hash_in_use > hash_peak) {
        hash_peak = hash_in_use;
    }
    pthread_mutex_unlock(&hash_lock);
    return rc;
}

void
auth_hash_slot_give(void)
{
    pthread_once(&hash_once, hash_cond_init);
    pthread_mutex_lock(&hash_lock);
    hash_in_use--;
    pthread_cond_signal(&hash_cond);
    pthread_mutex_unlock(&hash_lock);
}

int
auth_hash_slots_peak(void)
{
    pthread_mutex_lock(&hash_lock);
    int p = hash_peak;
    pthread_mutex_unlock(&hash_lock);
    return p;
}

int
auth_password_hash(const char *pw, char out[AUTH_HASH_MAX])
{
    if (sodium_init() < 0) {
        return AUTH_HASH_FAILED;
    }
    _Static_assert(crypto_pwhash_STRBYTES <= AUTH_HASH_MAX, "hash buffer");
    if (auth_hash_slot_take(AUTH_HASH_WAIT_MS) != AUTH_HASH_OK) {
        return AUTH_HASH_BUSY;
    }
    int rc = crypto_pwhash_str(out, pw, strlen(pw), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                               crypto_pwhash_MEMLIMIT_INTERACTIVE);
    auth_hash_slot_give();
    return rc == 0 ? AUTH_HASH_OK : AUTH_HASH_FAILED;
}

int
auth_password_verify(const char *hash, const char *pw)
{
    if (sodium_init() < 0 || !hash || !pw) {
        return 0;
    }
    if (auth_hash_slot_take(AUTH_HASH_WAIT_MS) != AUTH_HASH_OK) {
        return AUTH_HASH_BUSY;
    }
    int ok = crypto_pwhash_str_verify(hash, pw, strlen(pw)) == 0;
    auth_hash_slot_give();
    return ok;
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

/* ---- login ---- */

/* A hash of a password nobody knows, verified when the user does not exist, so a login for
 * an unknown name takes as long as one with a wrong password. Computed once. */
static char dummy[AUTH_HASH_MAX];
static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;

static void
dummy_make(void)
{
    char pw[65];
    random_hex(32, pw);
    if (sodium_init() < 0 ||
        crypto_pwhash_str(dummy, pw, strlen(pw), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                          crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0) {
        dummy[0] = '\0';
    }
    secret_wipe(pw, sizeof(pw));
}

static const char *
dummy_hash(void)
{
    pthread_once(&dummy_once, dummy_make);
    return dummy;
}

/* Records a login event under the name tried (actor and target). Returns a store_rc. */
static int
audit_login(struct store *s, const char *user, const char *role, const char *ip,
            const char *action, const char *outcome, const char *reason)
{
    cJSON *d = cJSON_CreateObject();
    if (reason) {
        cJSON_AddStringToObject(d, "reason", reason);
    }
    struct audit_actor who = {.name = user, .role = role, .ip = ip};
    return audit_record(s, &who, action, user, d, outcome, NULL);
}

/* Fills why and returns AUTH_THROTTLED; wait_ms is rounded up to whole seconds (≥ 1). */
static int
refuse(struct auth_refusal *why, const char *reason, int64_t wait_ms)
{
    why->reason = reason;
    why->retry_after_s = wait_ms <= 1000 ? 1 : (int)((wait_ms + 999) / 1000);
    return AUTH_THROTTLED;
}

int
auth_login_policy(const struct store_login_counts *c, int max_failures, int window_s,
                  int64_t now_ms, struct auth_refusal *why)
{
    int64_t window = (int64_t)window_s * 1000;
    memset(why, 0, sizeof(*why));
    if (c->by_ip >= max_failures) {
        return refuse(why, "too many failed logins from this address",
                      c->ip_oldest + window - now_ms);
    }
    if (c->by_user < max_failures) {
        return AUTH_OK;
    }
    if (c->by_ip > 0) {
        return refuse(why,
                      "too many failed logins for this user, and this address has failed too",
                      c->ip_newest + window - now_ms);
    }
    int64_t past = c->by_user - max_failures;
    int64_t delay_s = past >= 6 ? 60 : (int64_t)1 << past;
    int64_t next = c->user_newest + delay_s * 1000;
    if (now_ms < next) {
        snprintf(why->text, sizeof(why->text),
                 "too many failed logins for this user: one password check every %d s",
                 (int)delay_s);
        return refuse(why, why->text, next - now_ms);
    }
    return AUTH_OK;
}

/* In one write transaction: counts the recent failures, applies the policy and, when the
 * attempt may go on, records it as a failure (until it is known to have succeeded), so
 * attempts running in parallel see each other. Returns AUTH_OK with *failure_id set,
 * AUTH_THROTTLED (why filled) or AUTH_ERROR. */
static int
login_admit(struct store *s, const struct config *cfg, const char *username, const char *ip,
            int64_t now, struct auth_refusal *why, int64_t *failure_id)
{
    struct store_login_counts c;
    int64_t since = now - (int64_t)cfg->login_window_s * 1000;
    if (store_begin(s) != STORE_OK) {
        return AUTH_ERROR;
    }
    int rc = AUTH_ERROR;
    if (store_login_failure_count(s, username, ip, since, &c) != STORE_OK) {
        goto out;
    }
    rc = auth_login_policy(&c, cfg->login_max_failures, cfg->login_window_s, now, why);
    if (rc != AUTH_OK) {
        goto out;
    }
    if (store_login_failure_add(s, username, ip, now, failure_id) != STORE_OK ||
        store_commit(s) != STORE_OK) {
        rc = AUTH_ERROR;
        goto out;
    }
    return AUTH_OK;
out:
    store_rollback(s);
    return rc;
}

/* The right password: in one transaction removes the provisional failure, forgives the
 * name, creates the session and records auth.login. Fills user and token_out. */
static int
login_succeed(struct store *s, const struct store_user *u, const char *ip,
              const char *user_agent, int64_t failure_id, struct auth_user *user,
              char token_out[65])
{
    char token[65], token_hash[65], csrf[65];
    int64_t now = time_now_ms();
    auth_token_new(token);
    auth_token_hash(token, token_hash);
    auth_token_new(csrf);
    int rc = AUTH_ERROR;
    if (store_begin(s) != STORE_OK) {
        goto out;
    }
    if (store_login_failure_delete(s, failure_id) != STORE_OK ||
        store_login_failure_forgive(s, u->name, ip) != STORE_OK ||
        store_session_insert(s, token_hash, u->id, csrf, now, ip, user_agent) != STORE_OK ||
        store_user_touch_login(s, u->id, now) != STORE_OK ||
        audit_login(s, u->name, u->role, ip, "auth.login", "ok", NULL) != STORE_OK ||
        store_commit(s) != STORE_OK) {
        store_rollback(s);
        goto out;
    }
    memset(user, 0, sizeof(*user));
    user->id = u->id;
    snprintf(user->name, sizeof(user->name), "%s", u->name);
    user->role = role_parse(u->role);
    memcpy(user->csrf_token, csrf, sizeof(csrf));
    memcpy(user->token_hash, token_hash, sizeof(token_hash));
    memcpy(token_out, token, sizeof(token));
    rc = AUTH_OK;
out:
    secret_wipe(token, sizeof(token));
    return rc;
}

int
auth_login(struct store *s, const struct config *cfg, const char *username, const char *password,
           const char *ip, const char *user_agent, struct auth_user *user, char token_out[65],
           struct auth_refusal *why)
{
    int64_t failure_id = 0;
    struct store_user u = {0};
    memset(why, 0, sizeof(*why));
    int rc = login_admit(s, cfg, username, ip, time_now_ms(), why, &failure_id);
    if (rc != AUTH_OK) {
        return rc;
    }
    int found = store_user_get(s, username, &u);
    if (found == STORE_ERROR) {
        rc = AUTH_ERROR;
        goto withdraw;
    }
    int ok = auth_password_verify(found == STORE_OK ? u.password_hash : dummy_hash(), password);
    if (ok == AUTH_HASH_BUSY) {
        rc = AUTH_BUSY;
        goto withdraw;
    }
    if (found != STORE_OK || ok != 1 || u.disabled) {
        /* the provisional failure stays: it was one */
        why->reason = found != STORE_OK ? "unknown user"
                      : ok != 1         ? "wrong password"
                                        : "account disabled";
        rc = audit_login(s, username, found == STORE_OK ? u.role : "", ip, "auth.login_failed",
                         "denied", why->reason) == STORE_OK
                 ? AUTH_BAD_CREDENTIALS
                 : AUTH_ERROR;
        goto out;
    }
    rc = login_succeed(s, &u, ip, user_agent, failure_id, user, token_out);
    if (rc == AUTH_OK) {
        goto out;
    }
withdraw:
    /* the password was not checked, or was right but the session could not be stored: the
     * attempt must not count against the user */
    if (store_login_failure_delete(s, failure_id) != STORE_OK) {
        log_error("auth: cannot withdraw login failure %lld: %s", (long long)failure_id,
                  store_errmsg(s));
    }
out:
    store_user_clear(&u);
    return rc;
}

/* ---- sessions ---- */

/* The session of token_hash joined with its user, from the cache or the store (then cached).
 * AUTH_OK, AUTH_NO_SESSION or AUTH_ERROR. */
static int
session_entry_load(struct store *s, const char *token_hash, struct session_entry *out)
{
    struct session_entry e;
    int64_t mono = time_mono_ms();
    if (session_cache_get(token_hash, mono, AUTH_SESSION_CACHE_TTL_MS, &e)) {
        metrics_add(METRIC_SESSION_CACHE_HITS, 1);
    } else {
        metrics_add(METRIC_SESSION_CACHE_MISSES, 1);
        uint64_t gen = session_cache_generation();
        struct store_session sess;
        int rc = store_session_get(s, token_hash, &sess);
        if (rc == STORE_NOT_FOUND) {
            return AUTH_NO_SESSION;
        } else if (rc) {
            return AUTH_ERROR;
        }
        memset(&e, 0, sizeof(e));
        snprintf(e.token_hash, sizeof(e.token_hash), "%s", token_hash);
        e.user_id = sess.user_id;
        memcpy(e.user_name, sess.user_name, sizeof(e.user_name));
        memcpy(e.user_role, sess.user_role, sizeof(e.user_role));
        memcpy(e.csrf_token, sess.csrf_token, sizeof(e.csrf_token));
        e.created_at = sess.created_at;
        e.last_seen_at = sess.last_seen_at;
        e.user_disabled = sess.user_disabled;
        session_cache_put(&e, gen, mono);
    }
    *out = e;
    return AUTH_OK;
}

/* AUTH_OK when e is neither expired (then deleted) nor its user disabled, at now (wall ms). */
static int
session_entry_live(struct store *s, const struct config *cfg, const struct session_entry *e,
                   int64_t now)
{
    if (now - e->last_seen_at > (int64_t)cfg->session_idle_timeout_s * 1000 ||
        now - e->created_at > (int64_t)cfg->session_absolute_timeout_s * 1000) {
        store_session_delete(s, e->token_hash);
        session_cache_forget_token(e->token_hash);
        return AUTH_NO_SESSION;
    }
    return e->user_disabled ? AUTH_NO_SESSION : AUTH_OK;
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
    struct session_entry e;
    int rc = session_entry_load(s, token_hash, &e);
    if (rc != AUTH_OK) {
        return rc;
    }
    int64_t now = time_now_ms();
    rc = session_entry_live(s, cfg, &e, now);
    if (rc != AUTH_OK) {
        return rc;
    }
    /* Refresh last-seen at most every AUTH_SESSION_TOUCH_MS. The cached time moves first, so
     * requests in parallel do not all write; a write skipped because the database was busy
     * is tried again once the entry is reloaded. */
    if (now - e.last_seen_at > AUTH_SESSION_TOUCH_MS) {
        session_cache_set_last_seen(token_hash, now);
        store_session_touch(s, token_hash, now);
    }
    memset(user, 0, sizeof(*user));
    user->id = e.user_id;
    memcpy(user->name, e.user_name, sizeof(user->name));
    user->role = role_parse(e.user_role);
    memcpy(user->csrf_token, e.csrf_token, sizeof(user->csrf_token));
    memcpy(user->token_hash, token_hash, sizeof(token_hash));
    return AUTH_OK;
}

int
auth_session_still_valid(struct store *s, const struct config *cfg, const char *token_hash,
                         int64_t user_id)
{
    struct session_entry e;
    int rc = session_entry_load(s, token_hash, &e);
    if (rc == AUTH_OK) {
        rc = session_entry_live(s, cfg, &e, time_now_ms());
    }
    return rc == AUTH_OK && e.user_id != user_id ? AUTH_NO_SESSION : rc;
}

void
auth_session_forget(const char *token_hash)
{
    session_cache_forget_token(token_hash);
}

void
auth_user_changed(int64_t user_id)
{
    session_cache_forget_user(user_id);
}

void
auth_purge(struct store *s, const struct config *cfg)
{
    int64_t now = time_now_ms();
    store_session_purge(s, now - (int64_t)cfg->session_idle_timeout_s * 1000,
                        now - (int64_t)cfg->session_absolute_timeout_s * 1000);
    store_login_failure_purge(s, now - (int64_t)cfg->login_window_s * 1000);
    session_cache_clear();
}
