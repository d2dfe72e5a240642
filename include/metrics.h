/* metrics: process-wide counters other modules bump (Consul upstream requests and errors,
 * SSE clients) and their Prometheus text. The HTTP counters live in http.c. */
#ifndef CONSULATE_METRICS_H
#define CONSULATE_METRICS_H

struct buf;

enum metric {
    METRIC_CONSUL_REQUESTS = 0, /* requests sent to Consul agents */
    METRIC_CONSUL_ERRORS,       /* of those, failed (connection error or 5xx) */
    METRIC_CONSUL_FAILOVERS,    /* switches to another agent address */
    METRIC_SSE_CLIENTS,         /* gauge: open /api/events streams */
    METRIC_SSE_EVENTS,          /* events written to SSE clients */
    METRIC_PROXY_REQUESTS,      /* requests through /api/consul/ */
    METRIC_ANON_SUPPRESSED,     /* anonymous writes refused over budget without an audit entry */
    METRIC_SESSION_CACHE_HITS,  /* session lookups answered from memory */
    METRIC_SESSION_CACHE_MISSES, /* session lookups that read the database */
    METRIC_COUNT
};

void metrics_add(enum metric m, long long delta);
long long metrics_get(enum metric m);
/* Appends the Prometheus text of these metrics to b. */
void metrics_write(struct buf *b);

#endif
