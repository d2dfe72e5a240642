/* routes: the one route table. Method, path pattern, handler, the least role allowed, and
 * the audit action of state-changing routes (denials are recorded under it). Order matters
 * only where patterns overlap: the first match wins. */
#include "api.h"
#include "util.h"

const struct route http_routes[] = {
    {"POST", "/api/session", api_session_create, ROLE_NONE, "auth.login", ROUTE_PUBLIC, NULL},
    {"GET", "/api/session", api_session_get, ROLE_VIEWER, NULL, 0, NULL},
    {"DELETE", "/api/session", api_session_delete, ROLE_VIEWER, "auth.logout", 0, NULL},

    {"GET", "/api/users", api_users_list, ROLE_ADMIN, NULL, 0, NULL},
    {"POST", "/api/users", api_users_create, ROLE_ADMIN, "user.create", 0, NULL},
    {"PATCH", "/api/users/{name}", api_users_update, ROLE_ADMIN, "user.update", 0, NULL},
    {"DELETE", "/api/users/{name}", api_users_delete, ROLE_ADMIN, "user.delete", 0, NULL},

    {"GET", "/api/audit", api_audit_list, ROLE_VIEWER, NULL, 0, NULL},
    {"GET", "/api/audit/export", api_audit_export, ROLE_VIEWER, NULL, 0, NULL},
    {"GET", "/api/audit/verify", api_audit_verify, ROLE_VIEWER, NULL, 0, NULL},

    {"GET", "/metrics", api_metrics, ROLE_ADMIN, NULL, ROUTE_METRICS, NULL},

    {"GET", "/api/cluster", api_cluster_get, ROLE_VIEWER, NULL, 0, NULL},
    {"GET", "/api/health", api_health_get, ROLE_VIEWER, NULL, 0, NULL},
    {"GET", "/api/events", api_events_stream, ROLE_VIEWER, NULL, 0, NULL},

    {"*", "/api/consul/v1/*", api_consul_proxy, ROLE_VIEWER, "consul.proxy", ROUTE_STREAM_BODY,
     api_consul_action},
    {"GET", "/api/kv/history", api_kv_history, ROLE_VIEWER, NULL, 0, NULL},
    {"POST", "/api/kv/restore", api_kv_restore, ROLE_OPERATOR, "consul.kv.restore", 0, NULL},
};

const size_t http_routes_count = ARRAY_LEN(http_routes);
