/* api: the request handlers, one file per resource (server/api_*.c). Each takes the request
 * after the dispatcher has authenticated it and checked CSRF and the route's role, and
 * returns the HTTP status it sent. The route table is server/routes.c. */
#ifndef CONSULATE_API_H
#define CONSULATE_API_H

#include "http.h"

/* api_session.c */
int api_session_create(struct req *r);
int api_session_get(struct req *r);
int api_session_delete(struct req *r);

/* api_users.c */
int api_users_list(struct req *r);
int api_users_create(struct req *r);
int api_users_update(struct req *r);
int api_users_delete(struct req *r);

/* api_audit.c */
int api_audit_list(struct req *r);
int api_audit_export(struct req *r);
int api_audit_verify(struct req *r);

/* api_metrics.c */
int api_metrics(struct req *r);

/* api_cluster.c: the live cluster model from the watchers' snapshot (never asks Consul) */
int api_cluster_get(struct req *r);
int api_health_get(struct req *r);
int api_events_stream(struct req *r); /* SSE: holds a worker thread while open */

/* api_consul.c: the audited proxy under /api/consul/v1/ */
/* The proxy route's decide hook: parses the Consul path and query once (r->ctx), and
 * decides the audit action (consul.kv.put, consul.agent.get, …), the target (the normalised
 * Consul path), the least role from the allowlist (proxy_policy.h), or a refusal (400
 * invalid_path, 403 forbidden for what nobody may do, 405 for other methods). */
void api_consul_decide(struct req *r, struct route_decision *d);
/* Forwards an allowed request, with r->ctx from api_consul_decide. */
int api_consul_proxy(struct req *r);
/* A change to Consul is recorded before it is sent: records the attempt (outcome
 * "pending"; detail consumed) and sets *attempt_id. When the entry cannot be written it
 * replies 503 audit_unavailable and returns -1: the caller must send nothing. */
int api_change_attempt(struct req *r, const char *action, const char *target, cJSON *detail,
                       int64_t *attempt_id);
/* Records the outcome ("ok"/"error") of attempt attempt_id once Consul answered (or did
 * not); detail (consumed) gets "attempt_id". A failure is logged: the change is made. */
void api_change_outcome(struct req *r, const char *action, const char *target, int64_t attempt_id,
                        cJSON *detail, const char *outcome);

/* api_kv.c: KV history (from the audit log) and restore */
int api_kv_history(struct req *r);
int api_kv_restore(struct req *r);
struct consul_kv;
/* Adds "value_b64" (at most 64 KiB of data) or "value_sha256" + "value_truncated" to obj. */
void api_kv_add_value(cJSON *obj, const void *data, size_t len);
/* The audit record of a KV value: {"exists","value_b64"…,"modify_index","flags"}; the caller
 * owns the result. */
cJSON *api_kv_value_json(const struct consul_kv *kv);

/* api_nodes.c: the inventory (reads: viewer; changes, host keys, import: admin) */
int api_nodes_list(struct req *r);
int api_nodes_get(struct req *r);
int api_nodes_create(struct req *r);
int api_nodes_update(struct req *r);
int api_nodes_delete(struct req *r);
int api_nodes_hostkey(struct req *r);
int api_nodes_trust(struct req *r);
int api_nodes_import(struct req *r);

/* api_jobs.c: jobs (request: operator; reads: viewer; approve/reject: approver; cancel: the
 * requester or an approver) */
int api_jobs_create(struct req *r);
int api_jobs_list(struct req *r);
int api_jobs_get(struct req *r);
int api_jobs_log(struct req *r);
int api_jobs_approve(struct req *r);
int api_jobs_reject(struct req *r);
int api_jobs_cancel(struct req *r);

#endif
