/* session_cache: see include/session_cache.h. A set-associative table: the first hex
 * characters of the token hash (uniformly random, it is a SHA-256) pick a set of
 * SESSION_CACHE_WAYS entries. One mutex; it is held only to copy an entry. */
#include "session_cache.h"

#include <pthread.h>
#include <string.h>

struct slot {
    struct session_entry e;
    int64_t loaded_at; /* monotonic ms; 0 = empty */
};

static struct slot table[SESSION_CACHE_SETS][SESSION_CACHE_WAYS];
static uint64_t generation;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* The set of a token hash: its first 8 hex characters as a number. */
static struct slot *
set_of(const char *token_hash)
{
    uint32_t v = 0;
    for (int i = 0; i < 8; i++) {
        char c = token_hash[i];
        uint32_t d = (uint32_t)(c >= 'a' ? c - 'a' + 10 : c >= 'A' ? c - 'A' + 10 : c - '0');
        v = (v << 4) | (d & 15);
    }
    return table[v % SESSION_CACHE_SETS];
}

/* The slot holding token_hash in its set, or NULL. Call with the lock held. */
static struct slot *
find(const char *token_hash)
{
    struct slot *set = set_of(token_hash);
    for (int i = 0; i < SESSION_CACHE_WAYS; i++) {
        if (set[i].loaded_at && strcmp(set[i].e.token_hash, token_hash) == 0) {
            return &set[i];
        }
    }
    return NULL;
}

int
session_cache_get(const char *token_hash, int64_t now_mono, int64_t ttl_ms,
                  struct session_entry *out)
{
    if (strlen(token_hash) != 64) {
        return 0;
    }
    int hit = 0;
    pthread_mutex_lock(&lock);
    struct slot *sl = find(token_hash);
    if (sl && now_mono - sl->loaded_at <= ttl_ms) {
        *out = sl->e;
        hit = 1;
    }
    pthread_mutex_unlock(&lock);
    return hit;
}

uint64_t
session_cache_generation(void)
{
    pthread_mutex_lock(&lock);
    uint64_t g = generation;
    pthread_mutex_unlock(&lock);
    return g;
}

void
session_cache_put(const struct session_entry *e, uint64_t gen, int64_t now_mono)
{
    if (strlen(e->token_hash) != 64) {
        return;
    }
    pthread_mutex_lock(&lock);
    if (gen == generation) {
        struct slot *sl = find(e->token_hash);
        if (!sl) {
            struct slot *set = set_of(e->token_hash);
            sl = &set[0];
            for (int i = 1; i < SESSION_CACHE_WAYS && sl->loaded_at; i++) {
                if (set[i].loaded_at < sl->loaded_at) {
                    sl = &set[i];
                }
            }
        }
        sl->e = *e;
        sl->loaded_at = now_mono > 0 ? now_mono : 1;
    }
    pthread_mutex_unlock(&lock);
}

void
session_cache_set_last_seen(const char *token_hash, int64_t last_seen_at)
{
    if (strlen(token_hash) != 64) {
        return;
    }
    pthread_mutex_lock(&lock);
    struct slot *sl = find(token_hash);
    if (sl && sl->e.last_seen_at < last_seen_at) {
        sl->e.last_seen_at = last_seen_at;
    }
    pthread_mutex_unlock(&lock);
}

void
session_cache_forget_token(const char *token_hash)
{
    pthread_mutex_lock(&lock);
    generation++;
    struct slot *sl = strlen(token_hash) == 64 ? find(token_hash) : NULL;
    if (sl) {
        memset(sl, 0, sizeof(*sl));
    }
    pthread_mutex_unlock(&lock);
}

void
session_cache_forget_user(int64_t user_id)
{
    pthread_mutex_lock(&lock);
    generation++;
    for (int s = 0; s < SESSION_CACHE_SETS; s++) {
        for (int w = 0; w < SESSION_CACHE_WAYS; w++) {
            if (table[s][w].loaded_at && table[s][w].e.user_id == user_id) {
                memset(&table[s][w], 0, sizeof(table[s][w]));
            }
        }
    }
    pthread_mutex_unlock(&lock);
}

void
session_cache_clear(void)
{
    pthread_mutex_lock(&lock);
    generation++;
    memset(table, 0, sizeof(table));
    pthread_mutex_unlock(&lock);
}
