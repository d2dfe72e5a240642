/* auth: roles and the permission order, password hashing (argon2id), session tokens, login
 * throttling and session lookup. Uses the store; knows nothing of HTTP. */
#ifndef CONSULATE_AUTH_H
#define CONSULATE_AUTH_H

#include <stddef.h>
#include <stdint.h>

struct store;
struct config;

/* Each role includes the ones before it. */
enum role { ROLE_NONE = 0, ROLE_VIEWER, ROLE_OPERATOR, ROLE_APPROVER, ROLE_ADMIN };

const char *role_name(enum role r);
/* Returns ROLE_NONE for an unknown name. */
enum role role_parse(const char *name);

#define AUTH_PASSWORD_MIN 10
#define AUTH_PASSWORD_MAX 1024
#define AUTH_HASH_MAX 128

/* Returns NULL when pw is acceptable, else a sentence saying why not. */
const char *auth_password_problem(const char *pw);
/* Returns 1 when name is a valid user name: 1–64 of [A-Za-z0-9_.@-], starting with a letter
 * or digit. */
int auth_name_valid(const char *name);
/* Password hashing is bounded: argon2id takes 64 MiB and a core for a while, so at most
 * AUTH_HASH_CONCURRENCY hashes or checks run at once in a process; one that finds no free
 * slot within AUTH_HASH_WAIT_MS gives up with AUTH_HASH_BUSY (the API answers 503). */
#define AUTH_HASH_CONCURRENCY 2
#define AUTH_HASH_WAIT_MS 5000
enum auth_hash_rc { AUTH_HASH_OK = 0, AUTH_HASH_FAILED = -1, AUTH_HASH_BUSY = -2 };
/* Hashes pw with argon2id into out (AUTH_HASH_MAX bytes). Returns AUTH_HASH_OK,
 * AUTH_HASH_FAILED (out of memory) or AUTH_HASH_BUSY. */
int auth_password_hash(const char *pw, char out[AUTH_HASH_MAX]);
/* Returns 1 when pw matches the stored hash, 0 when not, AUTH_HASH_BUSY when no slot. */
int auth_password_verify(const char *hash, const char *pw);
/* The hashing slots themselves, for tests: take one (waiting up to wait_ms; returns 0, or
 * AUTH_HASH_BUSY) and give it back; the most slots ever held at once in this process. */
int auth_hash_slot_take(int wait_ms);
void auth_hash_slot_give(void);
int auth_hash_slots_peak(void);
/* A fresh 256-bit random token as 64 hex characters. */
void auth_token_new(char out[65]);
/* The SHA-256 (hex) under which a token is stored. */
void auth_token_hash(const char *token, char out[65]);
/* A generated password for the bootstrap admin (20 characters, URL-safe). */
void auth_password_generate(char out[21]);

/* The user behind a request. */
struct auth_user {
    int64_t id;
    char name[65];
    enum role role;
    char csrf_token[65];
    char token_hash[65];
};

enum auth_rc {
    AUTH_OK = 0,
    AUTH_BAD_CREDENTIALS = 1,
    AUTH_THROTTLED = 2,
    AUTH_NO_SESSION = 3,
    AUTH_ERROR = 4,
    AUTH_BUSY = 5, /* no password-hashing slot within AUTH_HASH_WAIT_MS */
};

/* Why a login was refused: a sentence for the audit detail and, when throttled, the seconds
 * until an attempt may be checked again (the Retry-After header). */
struct auth_refusal {
    const char *reason; /* static text */
    char text[160];     /* reason, when it needs numbers */
    int retry_after_s;
};

/* The login throttle. Within login.window_s:
 *  - an address with login.max_failures failures is refused (whatever the name);
 *  - a user name with login.max_failures failures is refused from any address that has a
 *    failure of its own; from an address without one, one password check is allowed per
 *    user name every 1, 2, 4, … 60 s (the delay doubles with each failure past the limit),
 *    so the real user on a clean address still gets in while an attacker is slowed down.
 * A successful login deletes the name's failures from that address and detaches the name
 * from the others, which keep counting for their addresses (so the delay starts over).
 * Pure: returns AUTH_OK when the attempt may be checked, else AUTH_THROTTLED with why. */
struct store_login_counts;
int auth_login_policy(const struct store_login_counts *c, int max_failures, int window_s,
                      int64_t now_ms, struct auth_refusal *why);

/* Logs a user in. In one write transaction the throttle is checked and, when the attempt
 * may go on, a failure is recorded provisionally, so parallel attempts cannot all pass the
 * check; the password is then verified outside the transaction. On success the provisional
 * failure is removed, the name forgiven, a session created (*token_out gets the cookie value,
 * 65 bytes; user is filled) and auth.login recorded, in one transaction. A wrong password
 * leaves the failure and records auth.login_failed. AUTH_THROTTLED (why filled) records
 * nothing: the caller audits it (within the anonymous budget). AUTH_BUSY removes the
 * provisional failure. */
int auth_login(struct store *s, const struct config *cfg, const char *username,
               const char *password, const char *ip, const char *user_agent,
               struct auth_user *user, char token_out[65], struct auth_refusal *why);

/* Resolves a session cookie value into its user, enforcing idle and absolute timeouts.
 * Served from the session cache when the session was loaded within AUTH_SESSION_CACHE_TTL_MS
 * (counted in consulate_session_cache_{hits,misses}_total); last-seen is written at most
 * every AUTH_SESSION_TOUCH_MS, skipped rather than waiting when the database is busy.
 * AUTH_NO_SESSION when absent, expired or the user is disabled. */
#define AUTH_SESSION_CACHE_TTL_MS 1000
#define AUTH_SESSION_TOUCH_MS 5000
int auth_session_lookup(struct store *s, const struct config *cfg, const char *token,
                        struct auth_user *user);
/* Whether the session of token_hash (as auth_session_lookup put it in auth_user.token_hash)
 * still stands for user_id: not logged out, expired or its user disabled or deleted. Unlike
 * auth_session_lookup it does not refresh last-seen (a stream left open is not activity).
 * AUTH_OK, AUTH_NO_SESSION or AUTH_ERROR. */
int auth_session_still_valid(struct store *s, const struct config *cfg, const char *token_hash,
                             int64_t user_id);
/* Drops one session from the cache; call after committing its deletion (logout). */
void auth_session_forget(const char *token_hash);
/* Call after committing any change to a user (password, role, disabled, deleted): its
 * cached sessions are dropped, so the next request reads the change. */
void auth_user_changed(int64_t user_id);
/* Deletes expired sessions and old login failures (the serve loop calls it every minute). */
void auth_purge(struct store *s, const struct config *cfg);

#endif
