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

#endif
