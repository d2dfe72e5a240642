/* config: see include/config.h. One table describes every key: its dotted name, type,
 * bounds and default; loading walks the JSON and refuses anything the table does not know. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

enum ctype { CT_STR, CT_INT, CT_BOOL, CT_URLS, CT_LISTEN, CT_OBJ, CT_HOSTS, CT_IPS };

struct ckey {
    const char *name; /* dotted path */
    enum ctype type;
    size_t offset;
    long min, max;    /* CT_INT bounds; CT_STR: 1 = may be null/empty */
    const char *dflt; /* default for strings, ints (as text) and bools ("1"/"0") */
};

#define OFF(f) offsetof(struct config, f)

static const struct ckey keys[] = {
    {"listen", CT_LISTEN, OFF(listen), 0, 0, "127.0.0.1:8080"},
    {"database", CT_STR, OFF(database), 0, 0, "./var/consulate.db"},
    {"web_root", CT_STR, OFF(web_root), 1, 0, NULL},
    {"threads", CT_INT, OFF(threads), 4, 1024, "512"},
    {"allowed_hosts", CT_HOSTS, OFF(allowed_hosts), 0, 0, NULL},
    {"trusted_proxies", CT_IPS, OFF(trusted_proxies), 0, 0, NULL},
    {"limits", CT_OBJ, 0, 0, 0, NULL},
    {"limits.sse_streams", CT_INT, OFF(sse_streams), 1, 4096, "128"},
    {"limits.sse_streams_per_user", CT_INT, OFF(sse_streams_per_user), 1, 1024, "8"},
    {"limits.header_timeout_s", CT_INT, OFF(header_timeout_s), 1, 120, "10"},
    {"limits.keep_alive_s", CT_INT, OFF(keep_alive_s), 1, 300, "5"},
    {"limits.blocking_reads_per_user", CT_INT, OFF(blocking_reads_per_user), 1, 1024, "16"},
    {"bootstrap_admin", CT_BOOL, OFF(bootstrap_admin), 0, 0, "1"},
    {"metrics_token", CT_STR, OFF(metrics_token), 1, 0, NULL},
    {"audit", CT_OBJ, 0, 0, 0, NULL},
    {"audit.key_file", CT_STR, OFF(audit_key_file), 1, 0, NULL},
    {"audit.anchor_file", CT_STR, OFF(audit_anchor_file), 1, 0, NULL},
    {"tls", CT_OBJ, 0, 0, 0, NULL},
    {"tls.certificate", CT_STR, OFF(tls_certificate), 1, 0, NULL},
    {"session", CT_OBJ, 0, 0, 0, NULL},
    {"session.idle_timeout_s", CT_INT, OFF(session_idle_timeout_s), 60, 86400, "1800"},
    {"session.absolute_timeout_s", CT_INT, OFF(session_absolute_timeout_s), 300, 604800,
     "43200"},
    {"login", CT_OBJ, 0, 0, 0, NULL},
    {"login.max_failures", CT_INT, OFF(login_max_failures), 1, 100, "5"},
    {"login.window_s", CT_INT, OFF(login_window_s), 10, 86400, "900"},
    {"consul", CT_OBJ, 0, 0, 0, NULL},
    {"consul.addresses", CT_URLS, OFF(consul_addresses), 0, 0, "http://127.0.0.1:8500"},
    {"consul.token", CT_STR, OFF(consul_token), 1, 0, NULL},
    {"consul.ca_file", CT_STR, OFF(consul_ca_file), 1, 0, NULL},
    {"consul.tls_verify", CT_BOOL, OFF(consul_tls_verify), 0, 0, "1"},
    {"consul.connect_timeout_ms", CT_INT, OFF(consul_connect_timeout_ms), 100, 60000, "2000"},
    {"consul.timeout_ms", CT_INT, OFF(consul_timeout_ms), 500, 300000, "10000"},
    {"consul.watch_wait_s", CT_INT, OFF(consul_watch_wait_s), 1, 600, "60"},
    {"consul.max_body_bytes", CT_INT, OFF(consul_max_body), 65536, 268435456, "33554432"},
    {"consul.proxy_max_wait_s", CT_INT, OFF(consul_proxy_max_wait_s), 1, 600, "60"},
    {"consul.exporter_port", CT_INT, OFF(exporter_port), 1, 65535, "9107"},
    {"consul.exporter_interval_s", CT_INT, OFF(exporter_interval_s), 1, 3600, "15"},
    {"consul.watch", CT_BOOL, OFF(watch_enabled), 0, 0, "1"},
    {"approval", CT_OBJ, 0, 0, 0, NULL},
    {"approval.required", CT_BOOL, OFF(approval_required), 0, 0, "1"},
    {"jobs", CT_OBJ, 0, 0, 0, NULL},
    {"jobs.command_timeout_s", CT_INT, OFF(jobs_command_timeout_s), 1, 86400, "120"},
    {"jobs.gate_timeout_s", CT_INT, OFF(jobs_gate_timeout_s), 1, 86400, "180"},
    {"jobs.ssh_connect_timeout_ms", CT_INT, OFF(jobs_ssh_connect_timeout_ms), 100, 60000, "5000"},
    {"jobs.ssh_passphrase_env", CT_STR, OFF(jobs_ssh_passphrase_env), 1, 0, NULL},
};

static void
set_err(struct config_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
set_err(struct config_error *err, const char *fmt, ...)
{
    if (!err) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
}

static char **
field_str(struct config *cfg, const struct ckey *k)
{
    return (char **)((char *)cfg + k->offset);
}

static int *
field_int(struct config *cfg, const struct ckey *k)
{
    return (int *)((char *)cfg + k->offset);
}

static void
urls_free(struct config *cfg)
{
    if (cfg->consul_addresses) {
        for (size_t i = 0; cfg->consul_addresses[i]; i++) {
            free(cfg->consul_addresses[i]);
        }
        free(cfg->consul_addresses);
    }
    cfg->consul_addresses = NULL;
    cfg->n_consul_addresses = 0;
}

/* Checks one agent URL: http:// or https://, a host, an optional port, no path beyond "/". */
static int
url_valid(const char *u)
{
    const char *p;
    if (str_starts_with(u, "http://")) {
        p = u + 7;
    } else if (str_starts_with(u, "https://")) {
        p = u + 8;
    } else {
        return 0;
    }
    if (*p == '\0' || *p == '/' || *p == ':') {
        return 0;
    }
    for (; *p && *p != '/'; p++) {
        if (*p <= ' ' || *p == '@' || *p == '?' || *p == '#') {
            return 0;
        }
    }
    return *p == '\0' || strcmp(p, "/") == 0;
}

/* Replaces the address list with the n strings given, trimmed of a trailing '/'. */
static int
urls_set(struct config *cfg, const char *const *list, size_t n, const char *name,
         struct config_error *err)
{
    if (n == 0) {
        set_err(err, "config: '%s' must list at least one Consul agent address", name);
        return CONFIG_INVALID;
    }
    if (n > 32) {
        set_err(err, "config: '%s' lists more than 32 addresses", name);
        return CONFIG_INVALID;
    }
    for (size_t i = 0; i < n; i++) {
        if (!url_valid(list[i])) {
            set_err(err,
                    "config: '%s' has an invalid address \"%s\" (expected http://host:port or "
                    "https://host:port)",
                    name, list[i]);
            return CONFIG_INVALID;
        }
    }
    urls_free(cfg);
    cfg->consul_addresses = xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        char *s = xstrdup(list[i]);
        size_t len = strlen(s);
        if (len && s[len - 1] == '/') {
            s[len - 1] = '\0';
        }
        cfg->consul_addresses[i] = s;
    }
    cfg->n_consul_addresses = n;
    return CONFIG_OK;
}

static const char *
json_type_name(const cJSON *j)
{
    if (cJSON_IsString(j)) {
        return "a string";
    } else if (cJSON_IsNumber(j)) {
        return "a number";
    } else if (cJSON_IsBool(j)) {
        return "a boolean";
    } else if (cJSON_IsArray(j)) {
        return "an array";
    } else if (cJSON_IsObject(j)) {
        return "an object";
    }
    return "null";
}

static char ***
field_list(struct config *cfg, const struct ckey *k)
{
    return (char ***)((char *)cfg + k->offset);
}

static void
list_free(char ***list)
{
    for (size_t i = 0; *list && (*list)[i]; i++) {
        free((*list)[i]);
    }
    free(*list);
    *list = NULL;
}

/* A host name as allowed_hosts takes it: dot-separated labels of letters, digits and '-'
 * (not at either end of a label), at most 253 characters; no port, no wildcard. */
static int
host_name_valid(const char *h)
{
    size_t len = strlen(h), label = 0;
    if (len == 0 || len > 253) {
        return 0;
    }
    for (size_t i = 0; i <= len; i++) {
        char c = h[i];
        if (c == '.' || c == '\0') {
            if (label == 0 || label > 63 || h[i - 1] == '-') {
                return 0;
            }
            label = 0;
            continue;
        }
        int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && !(c == '-' && label > 0)) {
            return 0;
        }
        label++;
    }
    return 1;
}

/* Replaces the list of k (allowed_hosts: host names, stored in lower case; trusted_proxies:
 * IPv4 or IPv6 addresses) with the strings of the JSON array it. */
static int
list_set(struct config *cfg, const struct ckey *k, const cJSON *it, struct config_error *err)
{
    int hosts = k->type == CT_HOSTS;
    const char *what = hosts ? "host names" : "IP addresses";
    if (!cJSON_IsArray(it)) {
        set_err(err, "config: '%s' must be an array of %s, got %s", k->name, what,
                json_type_name(it));
        return CONFIG_INVALID;
    }
    int n = cJSON_GetArraySize(it);
    if (n > 64) {
        set_err(err, "config: '%s' lists more than 64 entries", k->name);
        return CONFIG_INVALID;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, it)
    {
        if (!cJSON_IsString(e)) {
            set_err(err, "config: '%s' must be an array of %s (strings), got %s", k->name, what,
                    json_type_name(e));
            return CONFIG_INVALID;
        }
        const char *v = e->valuestring;
        if (hosts && !host_name_valid(v)) {
            set_err(err,
                    "config: '%s' has an invalid host name \"%.80s\" (letters, digits, '-' and "
                    "'.', no port or wildcard)",
                    k->name, v);
            return CONFIG_INVALID;
        }
        if (!hosts && !ip_literal_valid(v)) {
            set_err(err,
                    "config: '%s' has \"%.80s\", which is not an IPv4 or IPv6 address (one "
                    "address per entry, no port or prefix length)",
                    k->name, v);
            return CONFIG_INVALID;
        }
    }
    char ***list = field_list(cfg, k);
    list_free(list);
    *list = xcalloc((size_t)n + 1, sizeof(char *));
    int i = 0;
    cJSON_ArrayForEach(e, it)
    {
        char *copy = xstrdup(e->valuestring);
        for (char *p = copy; hosts && *p; p++) {
            if (*p >= 'A' && *p <= 'Z') {
                *p = (char)(*p - 'A' + 'a');
            }
        }
        (*list)[i++] = copy;
    }
    return CONFIG_OK;
}

int
config_split_listen(const char *listen, char *hostbuf, size_t hostlen, int *port)
{
    const char *colon = strrchr(listen, ':');
    if (!colon || colon == listen) {
        return -1;
    }
    size_t hl = (size_t)(colon - listen);
    if (hl >= hostlen) {
        return -1;
    }
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (errno || *end || end == colon + 1 || p < 0 || p > 65535) {
        return -1;
    }
    memcpy(hostbuf, listen, hl);
    hostbuf[hl] = '\0';
    for (size_t i = 0; i < hl; i++) {
        char c = hostbuf[i];
        if (!((c >= '0' && c <= '9') || c == '.' || (c >= 'a' && c <= 'z') ||
              (c >= 'A' && c <= 'Z') || c == '-' || c == '[' || c == ']' || c == ':')) {
            return -1;
        }
    }
    *port = (int)p;
    return 0;
}

/* Sets one scalar key from text (defaults and environment). */
static int
set_from_text(struct config *cfg, const struct ckey *k, const char *v, const char *origin,
              struct config_error *err)
{
    switch (k->type) {
    case CT_STR:
    case CT_LISTEN: {
        if (k->type == CT_LISTEN && v) {
            char host[256];
            int port;
            if (config_split_listen(v, host, sizeof(host), &port) != 0) {
                set_err(err, "config: '%s'%s must be host:port (e.g. 127.0.0.1:8080), got \"%s\"",
                        k->name, origin, v);
                return CONFIG_INVALID;
            }
        }
        if (v && !*v && !k->min) {
            set_err(err, "config: '%s'%s must not be empty", k->name, origin);
            return CONFIG_INVALID;
        }
        char **f = field_str(cfg, k);
        free(*f);
        *f = (v && *v) ? xstrdup(v) : NULL;
        return CONFIG_OK;
    }
    case CT_INT: {
        char *end;
        errno = 0;
        long n = strtol(v, &end, 10);
        if (errno || *end || end == v || n < k->min || n > k->max) {
            set_err(err, "config: '%s'%s must be an integer from %ld to %ld, got \"%s\"", k->name,
                    origin, k->min, k->max, v);
            return CONFIG_INVALID;
        }
        *field_int(cfg, k) = (int)n;
        return CONFIG_OK;
    }
    case CT_BOOL:
        *field_int(cfg, k) = strcmp(v, "1") == 0 || strcmp(v, "true") == 0;
        return CONFIG_OK;
    case CT_URLS: {
        /* comma-separated */
        char *copy = xstrdup(v);
        const char *list[33];
        size_t n = 0;
        char *save = NULL;
        for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            while (*tok == ' ') {
                tok++;
            }
            size_t tl = strlen(tok);
            while (tl && tok[tl - 1] == ' ') {
                tok[--tl] = '\0';
            }
            if (n == 33) {
                break;
            }
            list[n++] = tok;
        }
        int rc = urls_set(cfg, list, n, k->name, err);
        free(copy);
        return rc;
    }
    case CT_OBJ:
    case CT_HOSTS:
    case CT_IPS:
        return CONFIG_OK; /* lists have no default and no environment override */
    }
    return CONFIG_INVALID;
}

void
config_defaults(struct config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
        if (keys[i].type == CT_OBJ) {
            continue;
        }
        if (keys[i].dflt || keys[i].type == CT_STR) {
            set_from_text(cfg, &keys[i], keys[i].dflt, "", NULL);
        }
    }
}

static const struct ckey *
key_find(const char *name)
{
    for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
        if (strcmp(keys[i].name, name) == 0) {
            return &keys[i];
        }
    }
    return NULL;
}

static int
load_object(struct config *cfg, const cJSON *obj, const char *prefix, struct config_error *err)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, obj)
    {
        char name[128];
        snprintf(name, sizeof(name), "%s%s%s", prefix, *prefix ? "." : "", it->string);
        const struct ckey *k = key_find(name);
        if (!k) {
            set_err(err, "config: unknown key '%s'", name);
            return CONFIG_INVALID;
        }
        int rc = CONFIG_OK;
        switch (k->type) {
        case CT_OBJ:
            if (!cJSON_IsObject(it)) {
                set_err(err, "config: '%s' must be an object, got %s", name, json_type_name(it));
                return CONFIG_INVALID;
            }
            rc = load_object(cfg, it, name, err);
            break;
        case CT_STR:
        case CT_LISTEN:
            if (cJSON_IsNull(it) && k->min) {
                rc = set_from_text(cfg, k, NULL, "", err);
            } else if (!cJSON_IsString(it)) {
                set_err(err, "config: '%s' must be a string, got %s", name, json_type_name(it));
                return CONFIG_INVALID;
            } else {
                rc = set_from_text(cfg, k, it->valuestring, "", err);
            }
            break;
        case CT_INT: {
            if (!cJSON_IsNumber(it) || it->valuedouble != (double)(long)it->valuedouble) {
                set_err(err, "config: '%s' must be an integer, got %s", name,
                        cJSON_IsNumber(it) ? "a fraction" : json_type_name(it));
                return CONFIG_INVALID;
            }
            char num[32];
            snprintf(num, sizeof(num), "%ld", (long)it->valuedouble);
            rc = set_from_text(cfg, k, num, "", err);
            break;
        }
        case CT_BOOL:
            if (!cJSON_IsBool(it)) {
                set_err(err, "config: '%s' must be true or false, got %s", name,
                        json_type_name(it));
                return CONFIG_INVALID;
            }
            *field_int(cfg, k) = cJSON_IsTrue(it);
            break;
        case CT_URLS: {
            if (!cJSON_IsArray(it)) {
                set_err(err, "config: '%s' must be an array of strings, got %s", name,
                        json_type_name(it));
                return CONFIG_INVALID;
            }
            const char *list[33];
            size_t n = 0;
            const cJSON *u;
            cJSON_ArrayForEach(u, it)
            {
                if (!cJSON_IsString(u)) {
                    set_err(err, "config: '%s' must be an array of strings", name);
                    return CONFIG_INVALID;
                }
                if (n == 33) {
                    break;
                }
                list[n++] = u->valuestring;
            }
            rc = urls_set(cfg, list, n, name, err);
            break;
        }
        case CT_HOSTS:
        case CT_IPS:
            rc = list_set(cfg, k, it, err);
            break;
        }
        if (rc != CONFIG_OK) {
            return rc;
        }
    }
    return CONFIG_OK;
}

int
config_load_text(struct config *cfg, const char *text, const char *name,
                 struct config_error *err)
{
    cJSON *root = NULL;
    size_t at = 0;
    size_t len = strlen(text);
    int prc = json_parse(text, len, &root, &at);
    if (prc != JSON_OK) {
        set_err(err, "config: %s is not valid JSON (%s near \"%.20s\")", name,
                prc == JSON_TOO_DEEP ? "nested too deep" : "syntax error",
                text + (at < len ? at : len));
        return CONFIG_INVALID;
    }
    int rc;
    if (!cJSON_IsObject(root)) {
        set_err(err, "config: %s must hold a JSON object", name);
        rc = CONFIG_INVALID;
    } else {
        rc = load_object(cfg, root, "", err);
    }
    cJSON_Delete(root);
    return rc;
}

int
config_load_file(struct config *cfg, const char *path, struct config_error *err)
{
    size_t len;
    char *text = file_read_all(path, 1 << 20, &len);
    if (!text) {
        set_err(err, "config: cannot read %s: %s", path, strerror(errno));
        return CONFIG_IO;
    }
    int rc = config_load_text(cfg, text, path, err);
    free(text);
    return rc;
}

int
config_apply_env(struct config *cfg, struct config_error *err)
{
    static const struct {
        const char *env;
        const char *key;
    } map[] = {
        {"CONSULATE_DB", "database"},
        {"CONSULATE_LISTEN", "listen"},
        {"CONSULATE_CONSUL_ADDR", "consul.addresses"},
        {"CONSULATE_CONSUL_TOKEN", "consul.token"},
    };
    for (size_t i = 0; i < ARRAY_LEN(map); i++) {
        const char *v = getenv(map[i].env);
        if (!v) {
            continue;
        }
        char origin[64];
        snprintf(origin, sizeof(origin), " (from %s)", map[i].env);
        int rc = set_from_text(cfg, key_find(map[i].key), v, origin, err);
        if (rc != CONFIG_OK) {
            return rc;
        }
    }
    return CONFIG_OK;
}

void
config_free(struct config *cfg)
{
    for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
        if (keys[i].type == CT_STR || keys[i].type == CT_LISTEN) {
            char **f = field_str(cfg, &keys[i]);
            if (keys[i].offset == OFF(consul_token) || keys[i].offset == OFF(metrics_token)) {
                secret_free_str(*f);
            } else {
                free(*f);
            }
            *f = NULL;
        }
        if (keys[i].type == CT_HOSTS || keys[i].type == CT_IPS) {
            list_free(field_list(cfg, &keys[i]));
        }
    }
    urls_free(cfg);
    memset(cfg, 0, sizeof(*cfg));
}

int
ip_literal_valid(const char *s)
{
    unsigned char a[16];
    return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}
