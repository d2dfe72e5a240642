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
 *   : ping\n\n                         every 15 s without events */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "app.h"
#include "events.h"
#include "metrics.h"
#include "util.h"
#include "watch.h"

#define SSE_PING_MS 15000

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
    struct events_sub *sub = events_subscribe(app->events);
    if (!sub) {
        return http_reply_error(r, 503, "shutting_down", "the server is shutting down");
    }
    metrics_add(METRIC_SSE_CLIENTS, 1);
    if (http_stream_begin(r, 200, "text/event-stream", "X-Accel-Buffering: no\r\n") != 0) {
        goto out;
    }
    static const char hello[] = "retry: 3000\n\n";
    if (http_stream_write(r, hello, sizeof(hello) - 1) != 0) {
        goto out;
    }
    for (;;) {
        struct event *e = NULL;
        int rc = events_next(app->events, sub, SSE_PING_MS, &e);
        if (rc == EVENTS_CLOSED) {
            http_stream_end(r);
            break;
        }
        int wrc;
        if (rc == EVENTS_TIMEOUT) {
            static const char ping[] = ": ping\n\n";
            wrc = http_stream_write(r, ping, sizeof(ping) - 1);
        } else {
            wrc = http_stream_write(r, e->frame, e->frame_len);
            events_event_put(app->events, e);
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
    return r->status;
}
