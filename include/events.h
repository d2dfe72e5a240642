/* events: the in-process event bus between the watchers (publishers) and the SSE streams
 * (subscribers). publish(name, json) hands one immutable, reference-counted event to every
 * subscriber's bounded queue and never blocks on a subscriber: a subscriber that falls
 * behind loses its oldest events and is marked for a resync, which replays the last event
 * of every name. The last event of each name is also replayed to every new subscriber, so
 * a browser gets the current `cluster` and `health` state at once. Thread-safe. */
#ifndef CONSULATE_EVENTS_H
#define CONSULATE_EVENTS_H

#include <stddef.h>
#include <stdint.h>

/* Default bound of each subscriber's queue. */
#define EVENTS_QUEUE_DEFAULT 64
/* At most this many distinct event names keep a last value. */
#define EVENTS_MAX_NAMES 32
/* Longest event name accepted by events_publish. */
#define EVENTS_NAME_MAX 32

struct events;
struct events_sub;

/* One published event. Immutable after publish; shared by every subscriber's queue and
 * held through events_event_put. */
struct event {
    uint64_t seq; /* 1, 2, … in publish order over the whole bus */
    char *name;   /* "cluster", "health", "resync", … */
    char *data;   /* the payload, one line of JSON */
    size_t data_len;
    char *frame; /* the SSE frame "event: <name>\ndata: <data>\n\n" */
    size_t frame_len;
    int refs; /* guarded by the bus lock */
};

enum events_rc {
    EVENTS_OK = 0,      /* *out holds an event */
    EVENTS_TIMEOUT = 1, /* nothing arrived within the timeout */
    EVENTS_CLOSED = 2,  /* the bus is shutting down: stop streaming */
};

/* Creates a bus whose subscribers each queue at most queue_max events (0 = default). The
 * caller frees it with events_free after every subscriber has unsubscribed. */
struct events *events_new(size_t queue_max);
/* Frees the bus and its last values. NULL is a no-op. Subscribers must be gone. */
void events_free(struct events *b);

/* Publishes data (a NUL-terminated line of JSON without newlines) under name (letters,
 * digits, '_', '-', '.'; at most EVENTS_NAME_MAX bytes) to every subscriber, and keeps it
 * as the last value of name. Both strings are copied. Returns 0, or -1 when the name is
 * invalid, the data contains a newline, or the bus is closed. Never blocks on subscribers. */
int events_publish(struct events *b, const char *name, const char *data);

/* Publishes like events_publish, but keeps no last value: the event goes to the subscribers
 * connected now and is never replayed, neither to a new subscriber nor after a resync. For
 * items of a sequence the reader resumes from elsewhere after a resync (job log lines:
 * GET /api/jobs/{id}/log?after=N), which a replay of "the last line" would misrepresent. */
int events_publish_transient(struct events *b, const char *name, const char *data);

/* Subscribes. The new queue starts with the last event of every name, in name order of first
 * publication. Returns NULL when the bus is closed. Release with events_unsubscribe. */
struct events_sub *events_subscribe(struct events *b);
/* Removes and frees the subscription (and anything still queued). NULL is a no-op. */
void events_unsubscribe(struct events *b, struct events_sub *s);

/* Waits up to timeout_ms (0 = do not wait) for the next event of s. On EVENTS_OK *out is a
 * reference the caller releases with events_event_put. When s fell behind, the next events
 * are a synthetic "resync" event (data {"dropped":N}) followed by the last event of every
 * name, replacing whatever was queued. */
int events_next(struct events *b, struct events_sub *s, int timeout_ms, struct event **out);
void events_event_put(struct events *b, struct event *e);

/* Wakes every waiting subscriber and makes events_next return EVENTS_CLOSED (after nothing
 * else) and events_publish/events_subscribe fail from now on. Idempotent. */
void events_close(struct events *b);

/* Introspection for tests and metrics. */
size_t events_subscriber_count(struct events *b);
/* The data of the last event called name, newly allocated (the caller frees it), or NULL. */
char *events_last(struct events *b, const char *name);

#endif
