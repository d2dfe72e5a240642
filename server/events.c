/* events: see include/events.h. One mutex guards the bus: the subscriber list, every queue,
 * the last values and the event reference counts. Each subscriber waits on its own condition
 * variable (CLOCK_MONOTONIC), so a publish wakes exactly the subscribers it fed. */
#include "events.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

struct events_sub {
    struct events_sub *prev, *next;
    pthread_cond_t cond;
    struct event **q; /* ring of cap slots */
    size_t head, n, cap;
    int resync;       /* fell behind: replay the last values before anything else */
    uint64_t dropped; /* events lost since the last resync */
};

struct events {
    pthread_mutex_t mu;
    size_t queue_max;
    int closed;
    uint64_t seq;
    struct event *last[EVENTS_MAX_NAMES]; /* in order of first publication */
    size_t n_last;
    struct events_sub *subs;
    size_t n_subs;
};

struct events *
events_new(size_t queue_max)
{
    struct events *b = xcalloc(1, sizeof(*b));
    pthread_mutex_init(&b->mu, NULL);
    b->queue_max = queue_max ? queue_max : EVENTS_QUEUE_DEFAULT;
    return b;
}

/* Drops one reference; frees the event at zero. Bus lock held. */
static void
event_unref_locked(struct event *e)
{
    if (e && --e->refs == 0) {
        free(e->name);
        free(e->data);
        free(e->frame);
        free(e);
    }
}

/* A new event with one reference (the caller's). */
static struct event *
event_make(uint64_t seq, const char *name, const char *data)
{
    struct event *e = xcalloc(1, sizeof(*e));
    e->seq = seq;
    e->name = xstrdup(name);
    e->data = xstrdup(data);
    e->data_len = strlen(data);
    e->frame = xasprintf("event: %s\ndata: %s\n\n", name, data);
    e->frame_len = strlen(e->frame);
    e->refs = 1;
    return e;
}

void
events_free(struct events *b)
{
    if (!b) {
        return;
    }
    for (size_t i = 0; i < b->n_last; i++) {
        event_unref_locked(b->last[i]);
    }
    if (b->subs) {
        log_error("events: freeing a bus with %zu subscribers left", b->n_subs);
    }
    pthread_mutex_destroy(&b->mu);
    free(b);
}

static int
name_valid(const char *name)
{
    size_t n = 0;
    for (const char *p = name; *p; p++, n++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.')) {
            return 0;
        }
    }
    return n > 0 && n <= EVENTS_NAME_MAX;
}

/* Releases everything queued on s. Bus lock held. */
static void
sub_clear_locked(struct events_sub *s)
{
    for (size_t i = 0; i < s->n; i++) {
        event_unref_locked(s->q[(s->head + i) % s->cap]);
    }
    s->head = 0;
    s->n = 0;
}

/* Appends e (taking a new reference) without any bound check; the ring holds queue_max plus
 * a full replay, so this cannot overflow. Bus lock held. */
static void
sub_push_locked(struct events_sub *s, struct event *e)
{
    if (s->n == s->cap) {
        return; /* unreachable by construction */
    }
    e->refs++;
    s->q[(s->head + s->n) % s->cap] = e;
    s->n++;
}

/* Queues the last value of every name on s. Bus lock held. */
static void
sub_replay_locked(struct events *b, struct events_sub *s)
{
    for (size_t i = 0; i < b->n_last; i++) {
        sub_push_locked(s, b->last[i]);
    }
}

/* events_publish and events_publish_transient: keep says whether the event becomes the last
 * value of its name. */
static int
publish(struct events *b, const char *name, const char *data, int keep)
{
    if (!name_valid(name) || strchr(data, '\n') || strchr(data, '\r')) {
        return -1;
    }
    pthread_mutex_lock(&b->mu);
    int rc = -1;
    if (b->closed) {
        goto out;
    }
    struct event *e = event_make(++b->seq, name, data);
    size_t i;
    for (i = 0; i < b->n_last; i++) {
        if (strcmp(b->last[i]->name, name) == 0) {
            break;
        }
    }
    if (!keep) {
        /* a part of a sequence (a log line): never replayed as a current state */
    } else if (i < b->n_last) {
        event_unref_locked(b->last[i]);
        b->last[i] = e;
        e->refs++;
    } else if (b->n_last < EVENTS_MAX_NAMES) {
        b->last[b->n_last++] = e;
        e->refs++;
    }
    for (struct events_sub *s = b->subs; s; s = s->next) {
        if (s->resync) {
            s->dropped++; /* the replay will carry the newest state */
            continue;
        }
        if (s->n >= b->queue_max) {
            /* Too slow: drop the queue and replay the last values when it reads again. */
            s->dropped += s->n + 1;
            sub_clear_locked(s);
            s->resync = 1;
        } else {
            sub_push_locked(s, e);
        }
        pthread_cond_signal(&s->cond);
    }
    event_unref_locked(e);
    rc = 0;
out:
    pthread_mutex_unlock(&b->mu);
    return rc;
}

int
events_publish(struct events *b, const char *name, const char *data)
{
    return publish(b, name, data, 1);
}

int
events_publish_transient(struct events *b, const char *name, const char *data)
{
    return publish(b, name, data, 0);
}

struct events_sub *
events_subscribe(struct events *b)
{
    struct events_sub *s = NULL;
    pthread_mutex_lock(&b->mu);
    if (b->closed) {
        goto out;
    }
    s = xcalloc(1, sizeof(*s));
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cond, &ca);
    pthread_condattr_destroy(&ca);
    s->cap = b->queue_max + EVENTS_MAX_NAMES + 1;
    s->q = xcalloc(s->cap, sizeof(*s->q));
    sub_replay_locked(b, s);
    s->next = b->subs;
    if (b->subs) {
        b->subs->prev = s;
    }
    b->subs = s;
    b->n_subs++;
out:
    pthread_mutex_unlock(&b->mu);
    return s;
}

void
events_unsubscribe(struct events *b, struct events_sub *s)
{
    if (!s) {
        return;
    }
    pthread_mutex_lock(&b->mu);
    if (s->prev) {
        s->prev->next = s->next;
    } else {
        b->subs = s->next;
    }
    if (s->next) {
        s->next->prev = s->prev;
    }
    b->n_subs--;
    sub_clear_locked(s);
    pthread_mutex_unlock(&b->mu);
    pthread_cond_destroy(&s->cond);
    free(s->q);
    free(s);
}

static void
deadline_after(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

int
events_next(struct events *b, struct events_sub *s, int timeout_ms, struct event **out)
{
    struct timespec deadline;
    int rc = EVENTS_TIMEOUT;
    *out = NULL;
    if (timeout_ms > 0) {
        deadline_after(&deadline, timeout_ms);
    }
    pthread_mutex_lock(&b->mu);
    for (;;) {
        if (b->closed) {
            rc = EVENTS_CLOSED;
            break;
        }
        if (s->resync) {
            char data[64];
            snprintf(data, sizeof(data), "{\"dropped\":%llu}", (unsigned long long)s->dropped);
            struct event *r = event_make(0, "resync", data);
            sub_clear_locked(s);
            sub_push_locked(s, r);
            event_unref_locked(r);
            sub_replay_locked(b, s);
            s->resync = 0;
            s->dropped = 0;
        }
        if (s->n > 0) {
            *out = s->q[s->head];
            s->q[s->head] = NULL;
            s->head = (s->head + 1) % s->cap;
            s->n--;
            rc = EVENTS_OK;
            break;
        }
        if (timeout_ms <= 0) {
            break;
        }
        int w = pthread_cond_timedwait(&s->cond, &b->mu, &deadline);
        if (w == ETIMEDOUT && s->n == 0 && !s->resync && !b->closed) {
            break;
        }
    }
    pthread_mutex_unlock(&b->mu);
    return rc;
}

void
events_event_put(struct events *b, struct event *e)
{
    if (!e) {
        return;
    }
    pthread_mutex_lock(&b->mu);
    event_unref_locked(e);
    pthread_mutex_unlock(&b->mu);
}

void
events_close(struct events *b)
{
    if (!b) {
        return;
    }
    pthread_mutex_lock(&b->mu);
    b->closed = 1;
    for (struct events_sub *s = b->subs; s; s = s->next) {
        pthread_cond_signal(&s->cond);
    }
    pthread_mutex_unlock(&b->mu);
}

size_t
events_subscriber_count(struct events *b)
{
    pthread_mutex_lock(&b->mu);
    size_t n = b->n_subs;
    pthread_mutex_unlock(&b->mu);
    return n;
}

char *
events_last(struct events *b, const char *name)
{
    char *out = NULL;
    pthread_mutex_lock(&b->mu);
    for (size_t i = 0; i < b->n_last; i++) {
        if (strcmp(b->last[i]->name, name) == 0) {
            out = xstrdup(b->last[i]->data);
            break;
        }
    }
    pthread_mutex_unlock(&b->mu);
    return out;
}
