/* app: the process-wide context handed to every handler: configuration, version, and the
 * long-lived services (Consul client, watchers, event bus). */
#ifndef CONSULATE_APP_H
#define CONSULATE_APP_H

#include "config.h"

#define CONSULATE_VERSION "0.1.0"

struct consul_client;
struct watch;
struct events;
struct slots;
struct jobs;

struct app {
    struct config *cfg;
    struct consul_client *consul; /* NULL until the Consul issue wires it */
    struct watch *watch;
    struct events *events;
    struct slots *blocking_reads; /* blocking proxied reads per user (NULL = unlimited) */
    struct slots *sse_slots; /* live-update streams per user and in total (limits.sse_*) */
    struct jobs *jobs;            /* the job engine (NULL in commands other than serve) */
    int64_t started_at_ms;
};

#endif
