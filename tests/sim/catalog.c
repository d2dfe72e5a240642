/* catalog: services and health checks registered on nodes, and the --demo-data set.
 * dc->mu must be held by the caller of every function here. */
#include "sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct service *
dc_service_find(const struct dc *dc, const char *node, const char *id)
{
    for (size_t i = 0; i < dc->n_services; i++) {
        struct service *svc = dc->services[i];
        if (strcmp(svc->node, node) == 0 && strcmp(svc->id, id) == 0) {
            return svc;
        }
    }
    return NULL;
}

/* Creates or replaces a service on node; tags are copied. */
void
dc_service_put(struct dc *dc, const char *node, const char *id, const char *name, int port,
               const struct strlist *tags)
{
    struct service *svc = dc_service_find(dc, node, id);
    if (!svc) {
        svc = xcalloc(1, sizeof(*svc));
        snprintf(svc->node, sizeof(svc->node), "%s", node);
        snprintf(svc->id, sizeof(svc->id), "%s", id);
        svc->create_index = dc->index + 1;
        dc->services = xrealloc(dc->services, (dc->n_services + 1) * sizeof(*dc->services));
        dc->services[dc->n_services++] = svc;
    }
    snprintf(svc->name, sizeof(svc->name), "%s", name);
    svc->port = port;
    strlist_copy(&svc->tags, tags);
    svc->modify_index = dc->index + 1;
    dc_bump(dc, RES_CATALOG);
}

/* Deletes a service and its checks; -1 when there is no such service. */
int
dc_service_delete(struct dc *dc, const char *node, const char *id)
{
    size_t j = 0;
    int found = -1;
    for (size_t i = 0; i < dc->n_services; i++) {
        struct service *svc = dc->services[i];
        if (strcmp(svc->node, node) == 0 && strcmp(svc->id, id) == 0) {
            strlist_free(&svc->tags);
            free(svc);
            found = 0;
        } else {
            dc->services[j++] = svc;
        }
    }
    dc->n_services = j;
    if (found == 0) {
        j = 0;
        for (size_t i = 0; i < dc->n_checks; i++) {
            struct check *c = dc->checks[i];
            if (strcmp(c->node, node) == 0 && strcmp(c->service_id, id) == 0) {
                free(c->output);
                free(c);
            } else {
                dc->checks[j++] = c;
            }
        }
        dc->n_checks = j;
        dc_bump(dc, RES_CATALOG);
    }
    return found;
}

struct check *
dc_check_find(const struct dc *dc, const char *node, const char *id)
{
    for (size_t i = 0; i < dc->n_checks; i++) {
        struct check *c = dc->checks[i];
        if (strcmp(c->node, node) == 0 && strcmp(c->id, id) == 0) {
            return c;
        }
    }
    return NULL;
}

/* Creates or updates a check. An empty name keeps the old one (or defaults to the id). */
void
dc_check_put(struct dc *dc, const char *node, const char *id, const char *name, const char *status,
             const char *output, const char *service_id)
{
    struct check *c = dc_check_find(dc, node, id);
    if (!c) {
        c = xcalloc(1, sizeof(*c));
        snprintf(c->node, sizeof(c->node), "%s", node);
        snprintf(c->id, sizeof(c->id), "%s", id);
        snprintf(c->name, sizeof(c->name), "%s", id);
        c->output = xstrdup("");
        c->create_index = dc->index + 1;
        dc->checks = xrealloc(dc->checks, (dc->n_checks + 1) * sizeof(*dc->checks));
        dc->checks[dc->n_checks++] = c;
    }
    if (name && *name) {
        snprintf(c->name, sizeof(c->name), "%s", name);
    }
    if (status && *status) {
        snprintf(c->status, sizeof(c->status), "%s", status);
    } else if (!c->status[0]) {
        snprintf(c->status, sizeof(c->status), "critical");
    }
    if (output) {
        free(c->output);
        c->output = xstrdup(output);
    }
    if (service_id) {
        snprintf(c->service_id, sizeof(c->service_id), "%s", service_id);
    }
    c->modify_index = dc->index + 1;
    dc_bump(dc, RES_CATALOG);
}

int
dc_check_delete(struct dc *dc, const char *node, const char *id)
{
    for (size_t i = 0; i < dc->n_checks; i++) {
        struct check *c = dc->checks[i];
        if (strcmp(c->node, node) == 0 && strcmp(c->id, id) == 0) {
            free(c->output);
            free(c);
            memmove(&dc->checks[i], &dc->checks[i + 1],
                    (dc->n_checks - i - 1) * sizeof(*dc->checks));
            dc->n_checks--;
            dc_bump(dc, RES_CATALOG);
            return 0;
        }
    }
    return -1;
}

const char *
status_worse(const char *a, const char *b)
{
    static const char *const order[] = {"passing", "warning", "critical", "maintenance"};
    int ia = 0;
    int ib = 0;
    for (int i = 0; i < 4; i++) {
        if (strcmp(a, order[i]) == 0) {
            ia = i;
        }
        if (strcmp(b, order[i]) == 0) {
            ib = i;
        }
    }
    return order[ia > ib ? ia : ib];
}

/* Registers one service with one check. */
static void
demo_service(struct dc *dc, const char *node, const char *ip, const char *id, const char *name,
             int port, const char *tag, const char *status)
{
    struct strlist tags = {0};
    strlist_add(&tags, tag);
    dc_service_put(dc, node, id, name, port, &tags);
    strlist_free(&tags);
    char check_id[SIM_ID_MAX + 16];
    char check_name[SIM_ID_MAX + 16];
    char output[256];
    snprintf(check_id, sizeof(check_id), "service:%s", id);
    snprintf(check_name, sizeof(check_name), "Service '%s' check", name);
    if (strcmp(status, "passing") == 0) {
        snprintf(output, sizeof(output), "HTTP GET http://%s:%d/health: 200 OK Output: ok", ip,
                 port);
    } else {
        snprintf(output, sizeof(output),
                 "Get \"http://%s:%d/health\": dial tcp %s:%d: "
                 "connect: connection refused",
                 ip, port, ip, port);
    }
    dc_check_put(dc, node, check_id, check_name, status, output, id);
}

/* The --demo-data set: web and redis on the first server, a failing web instance on the
 * second, an api service on every client, and a few KV keys. */
void
dc_demo_data(struct dc *dc)
{
    if (dc->n_servers == 0) {
        return;
    }
    const struct server *s1 = dc->servers[0];
    const struct server *s2 = dc->n_servers > 1 ? dc->servers[1] : s1;
    demo_service(dc, s1->name, s1->ip, "web1", "web", 8080, "rails", "passing");
    demo_service(dc, s1->name, s1->ip, "redis", "redis", 6379, "primary", "passing");
    demo_service(dc, s2->name, s2->ip, "web2", "web", 8081, "rails", "critical");
    for (size_t i = 0; i < dc->n_clients; i++) {
        const struct client *c = dc->clients[i];
        char id[SIM_ID_MAX];
        snprintf(id, sizeof(id), "api-%zu", i + 1);
        demo_service(dc, c->name, c->ip, id, "api", 9000, "v1", "passing");
    }
    static const char *const kv[][2] = {
        {"config/app/log_level", "info"},
        {"config/app/feature_flags", "{\"new_ui\":true}"},
        {"config/db/url", "postgres://db.service.consul:5432/app"},
    };
    for (size_t i = 0; i < ARRAY_LEN(kv); i++) {
        kv_put(dc, kv[i][0], kv[i][1], strlen(kv[i][1]), 0, false, 0);
    }
}
