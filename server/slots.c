/* slots: see include/slots.h. A small open table of (user, count) under one mutex: the
 * number of users holding a slot at once is small, and a take or give is a short scan. */
#include "slots.h"

#include <pthread.h>
#include <stdlib.h>

#include "util.h"

struct holder {
    int64_t user_id;
    int count; /* 0 = free entry */
};

struct slots {
    pthread_mutex_t mu;
    int per_user, total, held;
    struct holder *h;
    size_t n, cap;
};

struct slots *
slots_new(int per_user, int total)
{
    struct slots *s = xcalloc(1, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    s->per_user = per_user > 0 ? per_user : 1;
    s->total = total > 0 ? total : 1;
    return s;
}

void
slots_free(struct slots *s)
{
    if (!s) {
        return;
    }
    pthread_mutex_destroy(&s->mu);
    free(s->h);
    free(s);
}

/* The entry of user_id, or NULL. Called with mu held. */
static struct holder *
find(struct slots *s, int64_t user_id)
{
    for (size_t i = 0; i < s->n; i++) {
        if (s->h[i].count > 0 && s->h[i].user_id == user_id) {
            return &s->h[i];
        }
    }
    return NULL;
}

int
slots_take(struct slots *s, int64_t user_id)
{
    int rc = SLOTS_OK;
    pthread_mutex_lock(&s->mu);
    struct holder *h = find(s, user_id);
    if (h && h->count >= s->per_user) {
        rc = SLOTS_USER_FULL;
    } else if (s->held >= s->total) {
        rc = SLOTS_TOTAL_FULL;
    } else {
        if (!h) {
            for (size_t i = 0; i < s->n && !h; i++) {
                if (s->h[i].count == 0) {
                    h = &s->h[i];
                }
            }
            if (!h) {
                if (s->n == s->cap) {
                    s->cap = s->cap ? s->cap * 2 : 16;
                    s->h = xrealloc(s->h, s->cap * sizeof(*s->h));
                }
                h = &s->h[s->n++];
            }
            h->user_id = user_id;
            h->count = 0;
        }
        h->count++;
        s->held++;
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

void
slots_give(struct slots *s, int64_t user_id)
{
    pthread_mutex_lock(&s->mu);
    struct holder *h = find(s, user_id);
    if (h) {
        h->count--;
        s->held--;
    } else {
        log_error("slots: a slot was given back by user %lld, who holds none",
                  (long long)user_id);
    }
    pthread_mutex_unlock(&s->mu);
}

int
slots_held(struct slots *s, int64_t user_id)
{
    pthread_mutex_lock(&s->mu);
    struct holder *h = find(s, user_id);
    int n = h ? h->count : 0;
    pthread_mutex_unlock(&s->mu);
    return n;
}

int
slots_total(struct slots *s)
{
    pthread_mutex_lock(&s->mu);
    int n = s->held;
    pthread_mutex_unlock(&s->mu);
    return n;
}
