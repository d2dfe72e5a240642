/* routes: the one route table. Method, path pattern, handler, the least role allowed, and
 * the audit action of state-changing routes (denials are recorded under it); the proxy's
 * role, action and target depend on the request and come from its decide hook. Order
 * matters only where patterns overlap: the first match wins. */
#include "api.h"
#include "util.h"

#define PROXY_MAX_BODY (512 * 1024) /* Consul's own KV value limit */

const struct route http_routes[] = {
    {.method = "POST",
     .pattern = "/api/session",
     .fn = api_session_create,
     .min_role = ROLE_NONE,
     .action = "auth.login",
     .flags = ROUTE_PUBLIC},
    {.method = "GET", .pattern = "/api/session", .fn = api_session_get, .min_role = ROLE_VIEWER},
    {.method = "DELETE",
     .pattern = "/api/session",
     .fn = api_session_delete,
     .min_role = ROLE_VIEWER,
     .action = "auth.logout"},

    {.method = "GET", .pattern = "/api/users", .fn = api_users_list, .min_role = ROLE_ADMIN},
    {.method = "POST",
     .pattern = "/api/users",
     .fn = api_users_create,
     .min_role = ROLE_ADMIN,
     .action = "user.create"},
    {.method = "PATCH",
     .pattern = "/api/users/{name}",
     .fn = api_users_update,
     .min_role = ROLE_ADMIN,
     .action = "user.update"},
    {.method = "DELETE",
     .pattern = "/api/users/{name}",
     .fn = api_users_delete,
     .min_role = ROLE_ADMIN,
     .action = "user.delete"},

    {.method = "GET", .pattern = "/api/audit", .fn = api_audit_list, .min_role = ROLE_VIEWER},
    {.method = "GET",
     .pattern = "/api/audit/export",
     .fn = api_audit_export,
     .min_role = ROLE_VIEWER},
    {.method = "GET",
     .pattern = "/api/audit/verify",
     .fn = api_audit_verify,
     .min_role = ROLE_VIEWER},

    {.method = "GET",
     .pattern = "/metrics",
     .fn = api_metrics,
     .min_role = ROLE_ADMIN,
     .flags = ROUTE_METRICS},

    {.method = "GET", .pattern = "/api/cluster", .fn = api_cluster_get, .min_role = ROLE_VIEWER},
    {.method = "GET", .pattern = "/api/health", .fn = api_health_get, .min_role = ROLE_VIEWER},
    {.method = "GET", .pattern = "/api/events", .fn = api_events_stream, .min_role = ROLE_VIEWER},

    {.method = "*",
     .pattern = "/api/consul/v1/*",
     .fn = api_consul_proxy,
     .min_role = ROLE_VIEWER,
     .action = "consul.proxy",
     .max_body = PROXY_MAX_BODY,
     .decide = api_consul_decide},
    {.method = "GET", .pattern = "/api/kv/history", .fn = api_kv_history, .min_role = ROLE_VIEWER},
    {.method = "POST",
     .pattern = "/api/kv/restore",
     .fn = api_kv_restore,
     .min_role = ROLE_OPERATOR,
     .action = "consul.kv.restore"},
};

const size_t http_routes_count = ARRAY_LEN(http_routes);
