/* api_cluster: GET /api/cluster, GET /api/health and the SSE stream GET /api/events. All
 * three answer from the watchers' snapshot and the event bus in memory: no browser request
 * ever causes a Consul request, so upstream load does not grow with the number of browsers.
 *
 * SSE format (text/event-stream, one chunk per frame):
 *   retry: 3000                        once, first
 *   event: cluster\ndata: {…}\n\n      the /api/cluster document without age_ms
 *   event: health\ndata: {…}\n\n       the /api/health document without age_ms
 *   event: resync\ndata: {"dropped":N}\n\n   this client fell behind; the current state of
 *                                      every name follows at once
 *   : ping\n\n                         every 15 s without events
 *
 * Each stream holds a civetweb worker thread for as long as it is open, so streams are
 * counted (app->sse_slots: limits.sse_streams_per_user per user, limits.sse_streams in
 * total; beyond, 503 too_many_streams), the thread's database connection is closed while it
 * streams, and a client that goes away is noticed within a second (its socket is polled)
 * rather than at the next write. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "app.h"
#include "auth.h"
#include "events.h"
#include "http_front.h"
#include "metrics.h"
#include "session_cache.h"
#include "slots.h"
#include "store.h"
#include "util.h"
#include "watch.h"

#define SSE_PING_MS 15000
#define SSE_TICK_MS 1000          /* how often a quiet stream checks that its client is there */
#define SSE_AUTH_RECHECK_MS 30000 /* how often a stream looks at its session in the store */
#define SSE_RETRY_AFTER_S 10      /* Retry-After of a refused stream */

static int
reply_disabled(struct req *r)
{
    return http_reply_error(r, 503, "watch_disabled",
                            "the Consul watchers are disabled (consul.watch is false)");
}

/* Replies with one document of the current snapshot, age_ms computed now. */
static int
reply_doc(struct req *r, enum watch_doc doc)
{
    struct watch *w = r->app->watch;
    if (!w) {
        return reply_disabled(r);
    }
    struct watch_snap *s = watch_snapshot(w);
    if (!s || !watch_ready(w)) {
        watch_snap_put(w, s);
        return http_reply_error(r, 503, "not_ready", "waiting for the first answer from Consul");
    }
    size_t len = 0;
    char *text = watch_render(s, doc, watch_updated_at_ms(w), time_now_ms(), &len);
    watch_snap_put(w, s);
    int status = http_reply(r, 200, "application/json; charset=utf-8", NULL, text, len);
    free(text);
    return status;
}

int
api_cluster_get(struct req *r)
{
    return reply_doc(r, WATCH_DOC_CLUSTER);
}

int
api_health_get(struct req *r)
{
    return reply_doc(r, WATCH_DOC_HEALTH);
}

/* 503 too_many_streams with Retry-After; the message names the limit reached. */
static int
reply_too_many(struct req *r, int why)
{
    const struct config *cfg = r->app->cfg;
    char msg[300];
    if (why == SLOTS_USER_FULL) {
        snprintf(msg, sizeof(msg),
                 "you already have %d live-update streams open (limits.sse_streams_per_user); "
                 "close another tab or window of the console first",
                 cfg->sse_streams_per_user);
    } else {
        snprintf(msg, sizeof(msg),
                 "the server already serves %d live-update streams, its limit "
                 "(limits.sse_streams, at most half of threads); try again later",
                 slots_total(r->app->sse_slots));
    }
    cJSON *j = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(j, "error");
    cJSON_AddStringToObject(e, "code", "too_many_streams");
    cJSON_AddStringToObject(e, "message", msg);
    char *text = json_print(j);
    cJSON_Delete(j);
    char retry[64];
    snprintf(retry, sizeof(retry), "Retry-After: %d\r\n", SSE_RETRY_AFTER_S);
    int status = http_reply(r, 503, "application/json; charset=utf-8", retry, text, strlen(text));
    free(text);
    return status;
}

/* Whether the stream's session still stands (not logged out, expired, or its user disabled
 * or deleted), looked up with a connection opened for it (the stream holds none). A store
 * that cannot answer now is asked again at the next check. */
static int
stream_session_ok(struct req *r)
{
    struct store *db = store_thread(r->app->cfg->database);
    if (!db) {
        return 1;
    }
    int rc = auth_session_still_valid(db, r->app->cfg, r->user.token_hash, r->user.id);
    store_thread_release();
    return rc != AUTH_NO_SESSION;
}

int
api_events_stream(struct req *r)
{
    struct app *app = r->app;
    if (!app->watch || !app->events) {
        return reply_disabled(r);
    }
    if (strcmp(r->method, "HEAD") == 0) {
        return http_reply(r, 200, "text/event-stream", "X-Accel-Buffering: no\r\n", "", 0);
    }
    int taken = slots_take(app->sse_slots, r->user.id);
    if (taken != SLOTS_OK) {
        return reply_too_many(r, taken);
    }
    struct events_sub *sub = events_subscribe(app->events);
    if (!sub) {
        slots_give(app->sse_slots, r->user.id);
        return http_reply_error(r, 503, "shutting_down", "the server is shutting down");
    }
    metrics_add(METRIC_SSE_CLIENTS, 1);
    /* The stream needs no database: close the thread's connection (about 100 kB of page cache
     * and statements) for as long as it lasts, and hand the freed pages back to the kernel. */
    store_thread_release();
    r->db = NULL;
    malloc_trim(0);
    int fd = front_conn_socket(r->conn);
    if (http_stream_begin(r, 200, "text/event-stream", "X-Accel-Buffering: no\r\n") != 0) {
        goto out;
    }
    static const char hello[] = "retry: 3000\n\n";
    if (http_stream_write(r, hello, sizeof(hello) - 1) != 0) {
        goto out;
    }
    int64_t last_write = time_mono_ms();
    /* The session is looked at again whenever this process ended a session or changed a user
     * (the cache's generation moves: within a tick), and every SSE_AUTH_RECHECK_MS for what
     * another process (the CLI) or the clock did: a stream does not outlive its session. */
    uint64_t auth_gen = session_cache_generation();
    int64_t auth_at = time_mono_ms();
    for (;;) {
        uint64_t gen = session_cache_generation();
        if (gen != auth_gen || time_mono_ms() - auth_at >= SSE_AUTH_RECHECK_MS) {
            auth_gen = gen;
            auth_at = time_mono_ms();
            if (!stream_session_ok(r)) {
                http_stream_end(r);
                http_stream_abort(r); /* the connection closes: the browser asks again, 401 */
                break;
            }
        }
        struct event *e = NULL;
        int rc = events_next(app->events, sub, SSE_TICK_MS, &e);
        if (rc == EVENTS_CLOSED) {
            /* The server is stopping: the stream ends, and so does the connection (kept
             * alive, civetweb would keep the worker waiting for a next request on it, and
             * mg_stop for that worker, up to its 2 s poll). */
            http_stream_end(r);
            http_stream_abort(r);
            break;
        }
        int wrc = 0;
        if (rc == EVENTS_TIMEOUT) {
            if (fd >= 0 && front_peer_gone(fd)) {
                break; /* the browser closed the stream */
            }
            if (time_mono_ms() - last_write >= SSE_PING_MS) {
                static const char ping[] = ": ping\n\n";
                wrc = http_stream_write(r, ping, sizeof(ping) - 1);
                last_write = time_mono_ms();
            }
        } else {
            wrc = http_stream_write(r, e->frame, e->frame_len);
            events_event_put(app->events, e);
            last_write = time_mono_ms();
            if (wrc == 0) {
                metrics_add(METRIC_SSE_EVENTS, 1);
            }
        }
        if (wrc != 0) {
            break; /* the client went away */
        }
    }
out:
    events_unsubscribe(app->events, sub);
    metrics_add(METRIC_SSE_CLIENTS, -1);
    slots_give(app->sse_slots, r->user.id);
    return r->status;
}
