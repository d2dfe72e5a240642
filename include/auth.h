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
/* Hashes pw with argon2id into out (AUTH_HASH_MAX bytes). Returns 0, or -1 when out of
 * memory. */
int auth_password_hash(const char *pw, char out[AUTH_HASH_MAX]);
/* Returns 1 when pw matches the stored hash. */
int auth_password_verify(const char *hash, const char *pw);
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
};

/* Checks the throttle, then the password. On success creates a session: *token_out gets the
 * cookie value (65 bytes) and user is filled. Records a failure on a wrong password. Writes
 * the audit entry (auth.login ok, auth.login_failed denied, auth.login_throttled denied) in
 * the same transaction. */
int auth_login(struct store *s, const struct config *cfg, const char *username,
               const char *password, const char *ip, const char *user_agent,
               struct auth_user *user, char token_out[65]);
/* Resolves a session cookie value into its user, enforcing idle and absolute timeouts and
 * refreshing last-seen. AUTH_NO_SESSION when absent, expired or the user is disabled. */
int auth_session_lookup(struct store *s, const struct config *cfg, const char *token,
                        struct auth_user *user);

#endif
