/* metrics: see include/metrics.h. Lock-free counters. */
#include "metrics.h"

#include <stdatomic.h>

#include "util.h"

static _Atomic long long values[METRIC_COUNT];

static const struct {
    const char *name, *type, *help;
} info[METRIC_COUNT] = {
    [METRIC_CONSUL_REQUESTS] = {"consulate_consul_requests_total", "counter",
                                "Requests sent to Consul agents."},
    [METRIC_CONSUL_ERRORS] = {"consulate_consul_errors_total", "counter",
                              "Consul requests that failed (connection error or 5xx)."},
    [METRIC_CONSUL_FAILOVERS] = {"consulate_consul_failovers_total", "counter",
                                 "Switches to another Consul agent address."},
    [METRIC_SSE_CLIENTS] = {"consulate_sse_clients", "gauge", "Open /api/events streams."},
    [METRIC_SSE_EVENTS] = {"consulate_sse_events_total", "counter",
                           "Events written to SSE clients."},
    [METRIC_PROXY_REQUESTS] = {"consulate_proxy_requests_total", "counter",
                               "Requests proxied to Consul through /api/consul/."},
    [METRIC_ANON_SUPPRESSED] = {"consulate_anonymous_writes_suppressed_total", "counter",
                                "Writes without a session refused over the per-address budget "
                                "without an audit entry each."},
    [METRIC_SESSION_CACHE_HITS] = {"consulate_session_cache_hits_total", "counter",
                                   "Session lookups answered from memory."},
    [METRIC_SESSION_CACHE_MISSES] = {"consulate_session_cache_misses_total", "counter",
                                     "Session lookups that read the database."},
};

void
metrics_add(enum metric m, long long delta)
{
    atomic_fetch_add(&values[m], delta);
}

long long
metrics_get(enum metric m)
{
    return atomic_load(&values[m]);
}

void
metrics_write(struct buf *b)
{
    for (int m = 0; m < METRIC_COUNT; m++) {
        buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %lld\n", info[m].name, info[m].help,
                   info[m].name, info[m].type, info[m].name, atomic_load(&values[m]));
    }
}
