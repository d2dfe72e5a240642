/* proxy_policy: what may pass through the Consul proxy. Pure: no I/O.
 *
 * A browser's Consul path is parsed once (percent-decoded, checked, runs of '/' collapsed)
 * into the one normalised path that is classified and audited, and re-encoded into the one
 * canonical path that is sent to Consul, so what was allowed is exactly what Consul acts on.
 * The allowlist names, per method and path, the least role; a rule with no role refuses for
 * everyone (secrets, and changes that go through jobs). A path no rule names is refused. */
#ifndef CONSULATE_PROXY_POLICY_H
#define CONSULATE_PROXY_POLICY_H

#include <stddef.h>

#include "auth.h"

/* Method sets of a rule (HEAD counts as GET). */
enum proxy_method {
    PROXY_GET = 1,
    PROXY_PUT = 2,
    PROXY_POST = 4,
    PROXY_DELETE = 8,
};
#define PROXY_WRITE (PROXY_PUT | PROXY_POST | PROXY_DELETE)
#define PROXY_ANY (PROXY_GET | PROXY_WRITE)

/* One row of the allowlist. path is matched against the normalised path: a path ending in
 * "/ *" (without the space) means that path and everything under it, one ending in "*" every
 * path that starts with the text before it, anything else exactly that path. Allowances
 * match case-sensitively (as Consul routes); refusals in any case. */
struct proxy_rule {
    unsigned methods;
    const char *path;
    enum role least; /* ROLE_NONE: refused for everyone */
    const char *why; /* the reason of a refusal; NULL for an allowance */
};

/* The allowlist, in the order it is searched (the first matching row decides). README.md's
 * "Consul proxy" table lists exactly these rows (tests/unit/test_proxy_policy.c checks). */
extern const struct proxy_rule proxy_rules[];
extern const size_t proxy_rules_count;

/* The method's bit, 0 for a method the proxy does not pass (PATCH, OPTIONS, …). */
unsigned proxy_method_bit(const char *method);

/* The first rule that matches method on the normalised path, or NULL (refused: not listed). */
const struct proxy_rule *proxy_rule_find(const char *method, const char *norm);

/* A parsed Consul path. Every string is owned; free with proxy_path_free. */
struct proxy_path {
    char *decoded;   /* percent-decoded */
    char *norm;      /* decoded, runs of '/' collapsed: classified, audited (the target) */
    char *canonical; /* norm re-encoded (consul_kv_escape): the path sent to Consul */
};

/* s with every run of '/' collapsed into one (Consul's router would redirect a path with
 * "//" to that one), newly allocated. */
char *proxy_collapse_slashes(const char *s);

/* Parses raw, the Consul path as the browser encoded it ("/v1/…", no query). Returns NULL
 * and fills out, or the reason the path is refused (400 invalid_path): a control character,
 * a space or '#', a malformed escape or %00, a "." or ".." segment, not under /v1/. */
const char *proxy_path_parse(const char *raw, struct proxy_path *out);
void proxy_path_free(struct proxy_path *p);

/* The audit action of method on the normalised path: consul.<first segment>.<method in
 * lower case> (consul.kv.put, consul.agent.get), "other" for an odd first segment. */
void proxy_action_name(const char *method, const char *norm, char *out, size_t outlen);

/* Writes the README form of a rule's methods ("GET, HEAD", "PUT, DELETE", "any") into out. */
void proxy_rule_methods_text(const struct proxy_rule *r, char *out, size_t outlen);

#endif
