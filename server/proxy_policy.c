/* proxy_policy: the Consul proxy's path parsing and allowlist. See include/proxy_policy.h.
 * The table is the Consul HTTP API (developer.hashicorp.com/consul/api-docs) family by
 * family: what the console's viewers need to read, what operators may change (KV), what an
 * admin may do, and what nobody may do through a browser. */
#include "proxy_policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "consul.h"
#include "http.h"
#include "util.h"

#define JOBS "membership changes go through the console's jobs"

const struct proxy_rule proxy_rules[] = {
    /* refused for everyone: secrets, and changes that go through jobs (always written as
     * prefixes, so that a trailing '/' or more segments cannot slip past) */
    {PROXY_ANY, "/v1/acl/token*", ROLE_NONE,
     "ACL tokens are returned with their secrets, the console's own among them"},
    {PROXY_ANY, "/v1/acl/bootstrap/*", ROLE_NONE, "it creates the initial management token"},
    {PROXY_ANY, "/v1/acl/login/*", ROLE_NONE, "it returns a new token's secret"},
    {PROXY_ANY, "/v1/acl/logout/*", ROLE_NONE,
     "it destroys the token it is sent with: the console's own"},
    {PROXY_ANY, "/v1/acl/auth-method*", ROLE_NONE,
     "an auth method's configuration can hold credentials (a Kubernetes reviewer JWT, an OIDC "
     "client secret)"},
    {PROXY_ANY, "/v1/agent/token/*", ROLE_NONE, "it sets the agent's own ACL tokens"},
    {PROXY_ANY, "/v1/agent/connect/ca/leaf/*", ROLE_NONE,
     "a leaf certificate is returned with its private key"},
    {PROXY_ANY, "/v1/agent/leave/*", ROLE_NONE, JOBS},
    {PROXY_ANY, "/v1/agent/force-leave/*", ROLE_NONE, JOBS},
    {PROXY_ANY, "/v1/agent/join/*", ROLE_NONE, JOBS},
    {PROXY_ANY, "/v1/operator/keyring/*", ROLE_NONE,
     "it reads or changes the gossip encryption keys"},
    {PROXY_ANY, "/v1/operator/raft/peer/*", ROLE_NONE, JOBS},
    {PROXY_ANY, "/v1/operator/raft/transfer-leader/*", ROLE_NONE,
     "leadership changes go through the console's jobs"},
    {PROXY_ANY, "/v1/snapshot/*", ROLE_NONE,
     "a snapshot holds every secret of the cluster (ACL tokens, KV, CA keys)"},
    {PROXY_ANY, "/v1/connect/ca/configuration/*", ROLE_NONE,
     "it holds the CA's private key, and a change rotates the CA"},
    {PROXY_ANY, "/v1/config/inline-certificate/*", ROLE_NONE,
     "an inline certificate holds its private key"},
    {PROXY_ANY, "/v1/peering/token/*", ROLE_NONE, "a peering token is a secret"},

    /* catalog, health, status: the console's own reads */
    {PROXY_GET, "/v1/catalog/*", ROLE_VIEWER, NULL},
    {PROXY_WRITE, "/v1/catalog/register", ROLE_ADMIN, NULL},
    {PROXY_WRITE, "/v1/catalog/deregister", ROLE_ADMIN, NULL},
    {PROXY_GET, "/v1/health/*", ROLE_VIEWER, NULL},
    {PROXY_GET, "/v1/status/*", ROLE_VIEWER, NULL},
    /* KV: read by viewers, written by operators (audited with the value before and after) */
    {PROXY_GET, "/v1/kv/*", ROLE_VIEWER, NULL},
    {PROXY_PUT | PROXY_DELETE, "/v1/kv/*", ROLE_OPERATOR, NULL},
    /* the local agent */
    {PROXY_GET, "/v1/agent/members", ROLE_VIEWER, NULL},
    {PROXY_GET, "/v1/agent/services", ROLE_VIEWER, NULL},
    {PROXY_GET, "/v1/agent/service/*", ROLE_VIEWER, NULL},
    {PROXY_GET, "/v1/agent/checks", ROLE_VIEWER, NULL},
    {PROXY_GET, "/v1/agent/health/service/*", ROLE_VIEWER, NULL},
    {PROXY_GET, "/v1/agent/version", ROLE_VIEWER, NULL},
    {PROXY_GET, "/v1/agent/connect/ca/roots", ROLE_VIEWER, NULL},
    {PROXY_GET, "/v1/agent/self", ROLE_ADMIN, NULL},
    {PROXY_GET, "/v1/agent/host", ROLE_ADMIN, NULL},
    {PROXY_GET, "/v1/agent/metrics*", ROLE_ADMIN, NULL},
    {PROXY_GET, "/v1/agent/monitor", ROLE_ADMIN, NULL},
    {PROXY_WRITE, "/v1/agent/service/*", ROLE_ADMIN, NULL},
    {PROXY_WRITE, "/v1/agent/check/*", ROLE_ADMIN, NULL},
    {PROXY_WRITE, "/v1/agent/maintenance", ROLE_ADMIN, NULL},
    {PROXY_WRITE, "/v1/agent/reload", ROLE_ADMIN, NULL},
    {PROXY_WRITE, "/v1/agent/connect/authorize", ROLE_ADMIN, NULL},
    /* operator: raft and autopilot are read by viewers, the rest is admin's */
    {PROXY_GET, "/v1/operator/raft/configuration", ROLE_VIEWER, NULL},
    {PROXY_GET, "/v1/operator/autopilot/*", ROLE_VIEWER, NULL},
    {PROXY_ANY, "/v1/operator/*", ROLE_ADMIN, NULL},
    /* coordinates, events, sessions */
    {PROXY_GET, "/v1/coordinate/*", ROLE_VIEWER, NULL},
    {PROXY_WRITE, "/v1/coordinate/update", ROLE_ADMIN, NULL},
    {PROXY_GET, "/v1/event/list", ROLE_VIEWER, NULL},
    {PROXY_WRITE, "/v1/event/fire/*", ROLE_ADMIN, NULL},
    {PROXY_GET, "/v1/session/*", ROLE_VIEWER, NULL},
    {PROXY_WRITE, "/v1/session/*", ROLE_ADMIN, NULL},
    /* service mesh */
    {PROXY_GET, "/v1/connect/ca/roots", ROLE_VIEWER, NULL},
    {PROXY_GET, "/v1/connect/intentions*", ROLE_VIEWER, NULL},
    {PROXY_WRITE, "/v1/connect/intentions*", ROLE_ADMIN, NULL},
    {PROXY_GET, "/v1/discovery-chain/*", ROLE_VIEWER, NULL},
    {PROXY_WRITE, "/v1/discovery-chain/*", ROLE_ADMIN, NULL},
    {PROXY_ANY, "/v1/config/*", ROLE_ADMIN, NULL},
    /* ACL objects without secrets */
    {PROXY_ANY, "/v1/acl/polic*", ROLE_ADMIN, NULL},
    {PROXY_ANY, "/v1/acl/role*", ROLE_ADMIN, NULL},
    {PROXY_ANY, "/v1/acl/binding-rule*", ROLE_ADMIN, NULL},
    {PROXY_ANY, "/v1/acl/templated-polic*", ROLE_ADMIN, NULL},
    {PROXY_GET, "/v1/acl/replication", ROLE_ADMIN, NULL},
    /* the rest of the API: admin's */
    {PROXY_ANY, "/v1/query*", ROLE_ADMIN, NULL},
    {PROXY_WRITE, "/v1/txn", ROLE_ADMIN, NULL},
    {PROXY_ANY, "/v1/peering*", ROLE_ADMIN, NULL},
    {PROXY_GET, "/v1/exported-services", ROLE_ADMIN, NULL},
    {PROXY_GET, "/v1/imported-services", ROLE_ADMIN, NULL},
    {PROXY_ANY, "/v1/partition*", ROLE_ADMIN, NULL},
    {PROXY_ANY, "/v1/namespace*", ROLE_ADMIN, NULL},
};

const size_t proxy_rules_count = ARRAY_LEN(proxy_rules);

unsigned
proxy_method_bit(const char *method)
{
    if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0) {
        return PROXY_GET;
    }
    if (strcmp(method, "PUT") == 0) {
        return PROXY_PUT;
    }
    if (strcmp(method, "POST") == 0) {
        return PROXY_POST;
    }
    if (strcmp(method, "DELETE") == 0) {
        return PROXY_DELETE;
    }
    return 0;
}

/* Whether pattern (see struct proxy_rule) matches path; nocase compares ignoring case. */
static int
pattern_matches(const char *pattern, const char *path, int nocase)
{
    size_t n = strlen(pattern);
    int (*cmp)(const char *, const char *, size_t) = nocase ? strncasecmp : strncmp;
    if (n >= 2 && pattern[n - 2] == '/' && pattern[n - 1] == '*') {
        n -= 2; /* "/x" followed by "/ *": /x itself, or /x/ and more */
        return cmp(pattern, path, n) == 0 && (path[n] == '\0' || path[n] == '/');
    }
    if (n >= 1 && pattern[n - 1] == '*') {
        return cmp(pattern, path, n - 1) == 0;
    }
    return nocase ? strcasecmp(pattern, path) == 0 : strcmp(pattern, path) == 0;
}

const struct proxy_rule *
proxy_rule_find(const char *method, const char *norm)
{
    unsigned bit = proxy_method_bit(method);
    if (!bit || !norm) {
        return NULL;
    }
    for (size_t i = 0; i < proxy_rules_count; i++) {
        const struct proxy_rule *r = &proxy_rules[i];
        int refusal = r->least == ROLE_NONE;
        if ((r->methods & bit) && pattern_matches(r->path, norm, refusal)) {
            return r;
        }
    }
    return NULL;
}

void
proxy_path_free(struct proxy_path *p)
{
    if (!p) {
        return;
    }
    free(p->decoded);
    free(p->norm);
    free(p->canonical);
    memset(p, 0, sizeof(*p));
}

char *
proxy_collapse_slashes(const char *s)
{
    size_t n = strlen(s);
    char *out = xmalloc(n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '/' && o > 0 && out[o - 1] == '/') {
            continue;
        }
        out[o++] = s[i];
    }
    out[o] = '\0';
    return out;
}

const char *
proxy_path_parse(const char *raw, struct proxy_path *out)
{
    memset(out, 0, sizeof(*out));
    for (const char *s = raw; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x21 || c == 0x7f || c == '#') {
            return "the path holds a control character, a space or '#'";
        }
    }
    out->decoded = http_pct_decode(raw, strlen(raw), 0);
    if (!out->decoded) {
        return "the path holds a malformed percent escape or an encoded NUL (%00)";
    }
    for (const char *s = out->decoded; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f || c == '#') {
            return "the path holds an encoded control character or '#'";
        }
    }
    if (!str_starts_with(out->decoded, "/v1/")) {
        return "the path must start with /v1/";
    }
    /* no "." or ".." segment (in the decoded path: Consul decodes before routing) */
    const char *seg = out->decoded;
    while (seg) {
        const char *next = strchr(seg, '/');
        size_t len = next ? (size_t)(next - seg) : strlen(seg);
        if ((len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.')) {
            return "the path holds a '.' or '..' segment";
        }
        seg = next ? next + 1 : NULL;
    }
    out->norm = proxy_collapse_slashes(out->decoded);
    out->canonical = consul_kv_escape(out->norm);
    return NULL;
}

void
proxy_action_name(const char *method, const char *norm, char *out, size_t outlen)
{
    char seg[32], m[12];
    const char *s = str_starts_with(norm, "/v1/") ? norm + 4 : "";
    size_t n = 0;
    for (; s[n] && s[n] != '/' && n < sizeof(seg) - 1; n++) {
        char c = s[n];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_')) {
            n = 0;
            break;
        }
        seg[n] = c;
    }
    seg[n] = '\0';
    if (n == 0 || (s[n] && s[n] != '/')) {
        snprintf(seg, sizeof(seg), "other");
    }
    size_t i = 0;
    for (; method[i] && i < sizeof(m) - 1; i++) {
        m[i] = (char)(method[i] >= 'A' && method[i] <= 'Z' ? method[i] + 32 : method[i]);
    }
    m[i] = '\0';
    snprintf(out, outlen, "consul.%s.%s", seg, m);
}

void
proxy_rule_methods_text(const struct proxy_rule *r, char *out, size_t outlen)
{
    if ((r->methods & PROXY_ANY) == PROXY_ANY) {
        snprintf(out, outlen, "any");
        return;
    }
    static const struct {
        unsigned bit;
        const char *text;
    } names[] = {
        {PROXY_GET, "GET, HEAD"},
        {PROXY_PUT, "PUT"},
        {PROXY_POST, "POST"},
        {PROXY_DELETE, "DELETE"},
    };
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < ARRAY_LEN(names); i++) {
        if (r->methods & names[i].bit) {
            int w = snprintf(out + o, outlen - o, "%s%s", o ? ", " : "", names[i].text);
            if (w < 0 || (size_t)w >= outlen - o) {
                return;
            }
            o += (size_t)w;
        }
    }
}
