/* watch: the live cluster model. One thread per watched Consul resource (blocking queries on
 * the raft configuration, autopilot health and check states; a poller for the serf members,
 * the raft leader and the datacenter; an exporter scrape), all feeding one set of inputs.
 * After any input changes the pure model (cluster.h) is rebuilt and rendered; the rendered
 * /api/cluster and /api/health documents are the snapshot, replaced whole under a lock, and
 * each is published on the event bus ("cluster", "health") only when its text changed.
 * Browsers never cause Consul requests: readers only take a reference to the snapshot. */
#ifndef CONSULATE_WATCH_H
#define CONSULATE_WATCH_H

#include <stddef.h>
#include <stdint.h>

struct cluster_expected;
struct cluster_model;
struct config;
struct consul_client;
struct events;
struct watch;

/* How long after start /api/cluster may still answer 503 not_ready when Consul has not
 * answered yet; after that the unreachable model is served. */
#define WATCH_NOT_READY_MS 2000
/* Members and leader are polled this often (they have no blocking support). */
#define WATCH_POLL_MS 2000
/* Error back-off: starts here, doubles, capped. */
#define WATCH_BACKOFF_MIN_MS 250
#define WATCH_BACKOFF_MAX_MS 5000
/* A log line about an unreachable or refusing Consul at most this often. */
#define WATCH_LOG_EVERY_MS 30000

/* An immutable rendering of the model, shared by reference. The texts are JSON objects
 * without "updated_at" and "age_ms" (those are added when a reply or event is rendered). */
struct watch_snap {
    int refs;      /* guarded by the watch's snapshot lock */
    char *cluster; /* the /api/cluster document */
    size_t cluster_len;
    char *health; /* the /api/health document */
    size_t health_len;
    int reachable;
    uint64_t version;                  /* 1, 2, … per rebuild that changed a text */
    const struct cluster_model *model; /* the parsed model the texts were rendered from
                                          (owned by the snapshot, read-only); the job
                                          prechecks and the gate read it */
};

enum watch_doc { WATCH_DOC_CLUSTER = 0, WATCH_DOC_HEALTH = 1 };

/* Starts the watcher threads. cfg, consul and bus are borrowed and must outlive
 * watch_stop (cfg is read for wait, ports and intervals). Returns NULL when a thread cannot
 * be started (logged). */
struct watch *watch_start(const struct config *cfg, struct consul_client *consul,
                          struct events *bus);
/* Stops the threads (promptly: no request in flight waits longer than about a second),
 * joins them and frees everything. NULL is a no-op. */
void watch_stop(struct watch *w);

/* The current snapshot with a new reference (release with watch_snap_put), or NULL before the
 * first rebuild. Never talks to Consul. */
struct watch_snap *watch_snapshot(struct watch *w);
void watch_snap_put(struct watch *w, struct watch_snap *s);

/* Sets the servers the inventory expects (copied; n 0 clears them) and rebuilds the model, so
 * an expected server missing from raft, or one that left, is the problem server_missing. */
void watch_set_expected(struct watch *w, const struct cluster_expected *e, size_t n);

/* Asks the poller for the members and the leader now instead of at its next round (at most
 * every 100 ms), for a caller that waits for a change (the job gate). */
void watch_poke(struct watch *w);

/* 1 once Consul answered, or once WATCH_NOT_READY_MS passed since start. */
int watch_ready(struct watch *w);
/* UTC ms of the last answer from Consul, 0 when none yet. */
int64_t watch_updated_at_ms(struct watch *w);

/* Renders doc of s with "updated_at" (RFC 3339, null when never) and, when now_ms >= 0,
 * "age_ms" (now - then, null when never) added in front. The result is newly allocated (caller
 * frees); *len gets its length when len is not NULL. Pure. */
char *watch_render(const struct watch_snap *s, enum watch_doc doc, int64_t updated_at_ms,
                   int64_t now_ms, size_t *len);

/* Pure helpers (exposed for tests). */
/* The host part of "IP:port", "[v6]:port", "host" or "[v6]" into out (without brackets
 * for IPv6). Returns 0, or -1 when it does not fit or is empty. */
int watch_addr_host(const char *addr, char *out, size_t outlen);

#endif
