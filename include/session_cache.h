/* session_cache: the sessions of recent requests kept in memory, so a request on a warm
 * session needs no SQLite lookup. An entry lives at most the TTL the caller gives (about a
 * second, so a change made by another process, such as the CLI, is seen within it) and is
 * dropped at once by the invalidation calls whenever this process changes a session or a
 * user. Bounded (SESSION_CACHE_SETS × SESSION_CACHE_WAYS entries, no allocation), thread-safe,
 * knows nothing of SQLite or HTTP. */
#ifndef CONSULATE_SESSION_CACHE_H
#define CONSULATE_SESSION_CACHE_H

#include <stdint.h>

#define SESSION_CACHE_SETS 256
#define SESSION_CACHE_WAYS 4

/* One session joined with its user, as the store returned it. */
struct session_entry {
    char token_hash[65];
    int64_t user_id;
    char user_name[65];
    char user_role[16];
    char csrf_token[65];
    int64_t created_at;   /* wall clock ms */
    int64_t last_seen_at; /* wall clock ms */
    int user_disabled;
};

/* Copies the entry of token_hash into out and returns 1 when it is cached and was loaded at
 * most ttl_ms before now_mono (monotonic ms); else returns 0. */
int session_cache_get(const char *token_hash, int64_t now_mono, int64_t ttl_ms,
                      struct session_entry *out);
/* The invalidation count. Read it before loading a session from the store and hand it to
 * session_cache_put, so a load that raced with an invalidation is not cached. */
uint64_t session_cache_generation(void);
/* Caches e (copied), loaded at now_mono, unless an invalidation happened since gen was read.
 * Replaces an older entry of the same token, else an expired or the oldest one of its set. */
void session_cache_put(const struct session_entry *e, uint64_t gen, int64_t now_mono);
/* Records a new last-seen time for a cached token (no-op when it is not cached). */
void session_cache_set_last_seen(const char *token_hash, int64_t last_seen_at);
/* Invalidation: one session (logout, expiry), every session of a user (password, role,
 * disabled, deleted), or everything (purge). */
void session_cache_forget_token(const char *token_hash);
void session_cache_forget_user(int64_t user_id);
void session_cache_clear(void);

#endif
