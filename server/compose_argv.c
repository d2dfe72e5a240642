/* compose_argv: the rules between a YAML value and the agent's flags. Python's shlex.split
 * (what docker-compose applies to a string command), the Consul agent's flag table (which
 * flags are boolean decides whether the next argument is a value), retry-join address
 * validation, and YAML's reading of plain scalars as numbers or booleans. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compose.h"
#include "compose_internal.h"
#include "util.h"

/* ---------- shlex.split ---------- */

static int
sh_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

struct tok {
    struct buf b;
    size_t *vi;
    size_t cap;
};

static void
tok_push(struct tok *t, char c, size_t vi)
{
    if (t->b.len + 1 > t->cap) {
        t->cap = t->cap ? t->cap * 2 : 32;
        t->vi = xrealloc(t->vi, t->cap * sizeof(size_t));
    }
    t->vi[t->b.len] = vi;
    (void)buf_append(&t->b, &c, 1); /* the buffer's limit is the value's length */
}

static void
args_push(struct cs_arg **args, size_t *n, size_t *cap, struct tok *t, size_t v0, size_t v1)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *args = xrealloc(*args, *cap * sizeof(**args));
    }
    struct cs_arg *a = &(*args)[(*n)++];
    a->n = t->b.len;
    a->s = xmalloc(a->n + 1);
    memcpy(a->s, t->b.data ? t->b.data : "", a->n);
    a->s[a->n] = '\0';
    a->vi = xmalloc((a->n ? a->n : 1) * sizeof(size_t));
    if (a->n) {
        memcpy(a->vi, t->vi, a->n * sizeof(size_t));
    }
    a->v0 = v0;
    a->v1 = v1;
    buf_reset(&t->b);
}

void
cs_args_free(struct cs_arg *a, size_t n)
{
    if (!a) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        free(a[i].s);
        free(a[i].vi);
    }
    free(a);
}

int
cs_shlex(const char *v, size_t n, struct cs_arg **args_out, size_t *nargs_out,
         struct cs_escape **esc_out, size_t *nesc_out, size_t *err_at, unsigned *v2)
{
    unsigned notes = 0;
    struct cs_arg *args = NULL;
    size_t nargs = 0, acap = 0;
    struct cs_escape *esc = NULL;
    size_t nesc = 0, ecap = 0;
    struct tok t = {0};
    buf_init(&t.b, n + 1);
    char state = ' ', escapedstate = 'a';
    size_t v0 = 0, bs = 0;
    int rc = CS_SHLEX_OK;
    for (size_t i = 0; i <= n; i++) {
        int eof = i == n;
        char c = eof ? '\0' : v[i];
        switch (state) {
        case ' ':
            if (eof || sh_space(c)) {
                break;
            }
            v0 = i;
            if (c == '\\') {
                escapedstate = 'a';
                state = '\\';
                bs = i;
            } else if (c == '\'' || c == '"') {
                state = c;
            } else {
                notes |= (c && strchr(";&|<>", c)) ? CS_V2_METACHAR : 0;
                tok_push(&t, c, i);
                state = 'a';
            }
            break;
        case 'a':
            if (eof || sh_space(c)) {
                args_push(&args, &nargs, &acap, &t, v0, i);
                state = ' ';
            } else if (c == '\'' || c == '"') {
                state = c;
            } else if (c == '\\') {
                escapedstate = 'a';
                state = '\\';
                bs = i;
            } else {
                notes |= (c && strchr(";&|<>", c)) ? CS_V2_METACHAR : 0;
                tok_push(&t, c, i);
            }
            break;
        case '\'':
        case '"':
            if (eof) {
                rc = CS_SHLEX_NO_CLOSING_QUOTE;
                *err_at = v0;
                goto out;
            }
            if (c == state) {
                state = 'a';
            } else if (state == '"' && c == '\\') {
                escapedstate = '"';
                state = '\\';
                bs = i;
            } else {
                tok_push(&t, c, i);
            }
            break;
        default: /* '\\' */
            if (eof) {
                rc = CS_SHLEX_NO_ESCAPED;
                *err_at = bs;
                goto out;
            }
            {
                int kept = escapedstate != 'a' && c != '\\' && c != escapedstate;
                if (kept) {
                    tok_push(&t, '\\', bs);
                    notes |= CS_V2_BACKSLASH;
                }
                tok_push(&t, c, i);
                if (nesc == ecap) {
                    ecap = ecap ? ecap * 2 : 8;
                    esc = xrealloc(esc, ecap * sizeof(*esc));
                }
                esc[nesc++] = (struct cs_escape){.bs = bs, .ch = i, .kept = kept};
            }
            state = escapedstate;
            break;
        }
        if (eof) {
            break;
        }
    }
out:
    buf_free(&t.b);
    free(t.vi);
    if (rc != CS_SHLEX_OK) {
        cs_args_free(args, nargs);
        free(esc);
        args = NULL;
        esc = NULL;
        nargs = nesc = 0;
    }
    *args_out = args;
    *nargs_out = nargs;
    *esc_out = esc;
    *nesc_out = nesc;
    if (v2) {
        *v2 = notes;
    }
    return rc;
}

/* ---------- the agent's flags ---------- */

/* Consul's agent/config/flags.go, union of the 1.x releases. Booleans take no value
 * argument (Go's flag package: boolFlag with IsBoolFlag). */
static const struct cs_flag agent_flags[] = {
    {.name = "advertise", .addr = 1},
    {.name = "advertise-wan", .addr = 1},
    {.name = "allow-write-http-from"},
    {.name = "alt-domain"},
    {.name = "auto-reload-config", .kind = CS_FLAG_BOOL},
    {.name = "bind", .addr = 1},
    {.name = "bootstrap", .kind = CS_FLAG_BOOL},
    {.name = "bootstrap-expect"},
    {.name = "check_output_max_size"},
    {.name = "client", .addr = 1},
    {.name = "config-dir"},
    {.name = "config-file"},
    {.name = "config-format"},
    {.name = "data-dir"},
    {.name = "datacenter"},
    {.name = "default-query-time"},
    {.name = "dev", .kind = CS_FLAG_BOOL},
    {.name = "disable-host-node-id", .kind = CS_FLAG_BOOL},
    {.name = "disable-keyring-file", .kind = CS_FLAG_BOOL},
    {.name = "dns-port"},
    {.name = "domain"},
    {.name = "enable-local-script-checks", .kind = CS_FLAG_BOOL},
    {.name = "enable-script-checks", .kind = CS_FLAG_BOOL},
    {.name = "encrypt"},
    {.name = "grpc-port"},
    {.name = "grpc-tls-port"},
    {.name = "hcl"},
    {.name = "http-port"},
    {.name = "https-port"},
    {.name = "join"},
    {.name = "join-wan"},
    {.name = "log-file"},
    {.name = "log-json", .kind = CS_FLAG_BOOL},
    {.name = "log-level"},
    {.name = "log-rotate-bytes"},
    {.name = "log-rotate-duration"},
    {.name = "log-rotate-max-files"},
    {.name = "max-query-time"},
    {.name = "node"},
    {.name = "node-id"},
    {.name = "node-meta"},
    {.name = "non-voting-server", .kind = CS_FLAG_BOOL},
    {.name = "pid-file"},
    {.name = "primary-gateway"},
    {.name = "protocol"},
    {.name = "raft-protocol"},
    {.name = "read-replica", .kind = CS_FLAG_BOOL},
    {.name = "recursor"},
    {.name = "rejoin", .kind = CS_FLAG_BOOL},
    {.name = "retry-interval"},
    {.name = "retry-interval-wan"},
    {.name = "retry-join"},
    {.name = "retry-join-wan"},
    {.name = "retry-max"},
    {.name = "retry-max-wan"},
    {.name = "segment"},
    {.name = "serf-lan-allowed-cidrs"},
    {.name = "serf-lan-bind", .addr = 1},
    {.name = "serf-lan-port"},
    {.name = "serf-wan-allowed-cidrs"},
    {.name = "serf-wan-bind", .addr = 1},
    {.name = "serf-wan-port"},
    {.name = "server", .kind = CS_FLAG_BOOL},
    {.name = "server-port"},
    {.name = "syslog", .kind = CS_FLAG_BOOL},
    {.name = "ui", .kind = CS_FLAG_BOOL},
    {.name = "ui-content-path"},
    {.name = "ui-dir"},
};

const struct cs_flag *
cs_flag_find(const char *name, size_t len)
{
    for (size_t i = 0; i < ARRAY_LEN(agent_flags); i++) {
        if (strlen(agent_flags[i].name) == len && memcmp(agent_flags[i].name, name, len) == 0) {
            return &agent_flags[i];
        }
    }
    return NULL;
}

int
cs_parse_bool_ok(const char *s)
{
    static const char *const ok[] = {"1", "t", "T", "TRUE",  "true",  "True",
                                     "0", "f", "F", "FALSE", "false", "False"};
    for (size_t i = 0; i < ARRAY_LEN(ok); i++) {
        if (strcmp(s, ok[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

/* ---------- addresses ---------- */

static int
parse_ip4(const char *s, size_t n, unsigned char out[4])
{
    size_t i = 0;
    for (int part = 0; part < 4; part++) {
        if (part > 0) {
            if (i >= n || s[i] != '.') {
                return -1;
            }
            i++;
        }
        size_t d0 = i;
        unsigned val = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9' && i - d0 < 3) {
            val = val * 10 + (unsigned)(s[i] - '0');
            i++;
        }
        /* Go's net.ParseIP (1.17+) refuses leading zeros; so do we. */
        if (i == d0 || val > 255 || (i - d0 > 1 && s[d0] == '0')) {
            return -1;
        }
        out[part] = (unsigned char)val;
    }
    return i == n ? 0 : -1;
}

static int
parse_ip6(const char *s, size_t n, unsigned char out[16])
{
    unsigned char g[16] = {0};
    int gi = 0, dc = -1;
    size_t i = 0;
    if (n >= 2 && s[0] == ':' && s[1] == ':') {
        dc = 0;
        i = 2;
    } else if (n >= 1 && s[0] == ':') {
        return -1;
    }
    while (i < n) {
        if (gi >= 8) {
            return -1;
        }
        size_t j = i;
        while (j < n && isxdigit((unsigned char)s[j])) {
            j++;
        }
        if (j < n && s[j] == '.') {
            if (gi > 6 || parse_ip4(s + i, n - i, g + 2 * gi) != 0) {
                return -1;
            }
            gi += 2;
            i = n;
            break;
        }
        if (j == i || j - i > 4) {
            return -1;
        }
        unsigned val = 0;
        for (size_t k = i; k < j; k++) {
            int c = tolower((unsigned char)s[k]);
            val = val * 16 + (unsigned)(c <= '9' ? c - '0' : c - 'a' + 10);
        }
        g[2 * gi] = (unsigned char)(val >> 8);
        g[2 * gi + 1] = (unsigned char)(val & 0xff);
        gi++;
        i = j;
        if (i == n) {
            break;
        }
        if (s[i] != ':') {
            return -1;
        }
        i++;
        if (i < n && s[i] == ':') {
            if (dc >= 0) {
                return -1;
            }
            dc = gi;
            i++;
        } else if (i == n) {
            return -1;
        }
    }
    if (dc >= 0) {
        if (gi >= 8) {
            return -1;
        }
        int tail = gi - dc;
        memset(out, 0, 16);
        memcpy(out, g, (size_t)(2 * dc));
        memcpy(out + 16 - 2 * tail, g + 2 * dc, (size_t)(2 * tail));
    } else {
        if (gi != 8) {
            return -1;
        }
        memcpy(out, g, 16);
    }
    return 0;
}

int
cs_ip_parse(const char *s, size_t n, struct cs_addr *a)
{
    memset(a, 0, sizeof(*a));
    if (n == 0 || n > 45) {
        return -1;
    }
    if (memchr(s, ':', n)) {
        if (parse_ip6(s, n, a->ip) != 0) {
            return -1;
        }
        a->kind = 6;
    } else {
        unsigned char v4[4];
        if (parse_ip4(s, n, v4) != 0) {
            return -1;
        }
        a->ip[10] = a->ip[11] = 0xff; /* compared as the IPv4-mapped IPv6 address */
        memcpy(a->ip + 12, v4, 4);
        a->kind = 4;
    }
    memcpy(a->host, s, n);
    a->host[n] = '\0';
    return 0;
}

static int
parse_port(const char *s, size_t n, unsigned *port)
{
    if (n == 0 || n > 5 || (n > 1 && s[0] == '0')) {
        return -1;
    }
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v == 0 || v > 65535) {
        return -1;
    }
    *port = v;
    return 0;
}

/* A DNS name (RFC 1123 labels), lower-cased into a->host without a trailing dot. */
static int
parse_name(const char *s, size_t n, struct cs_addr *a, char *why, size_t whylen)
{
    if (n > 0 && s[n - 1] == '.') {
        n--;
    }
    if (n == 0 || n > 253) {
        snprintf(why, whylen, "a host name has 1 to 253 characters");
        return -1;
    }
    size_t label = 0;
    int all_digits = 1;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '.') {
            if (label == 0 || label > 63) {
                snprintf(why, whylen, "each label of a host name has 1 to 63 characters");
                return -1;
            }
            if (s[i - 1] == '-' || s[i - label] == '-') {
                snprintf(why, whylen, "a label of a host name cannot start or end with '-'");
                return -1;
            }
            if (i == n && all_digits) {
                snprintf(why, whylen, "it is neither an IP address nor a host name");
                return -1;
            }
            label = 0;
            all_digits = 1;
            continue;
        }
        if (!isalnum((unsigned char)s[i]) && s[i] != '-') {
            snprintf(why, whylen, "a host name has only letters, digits, '-' and '.'");
            return -1;
        }
        all_digits &= isdigit((unsigned char)s[i]) ? 1 : 0;
        label++;
    }
    for (size_t i = 0; i < n; i++) {
        a->host[i] = (char)tolower((unsigned char)s[i]);
    }
    a->host[n] = '\0';
    a->kind = 'd';
    return 0;
}

int
cs_addr_parse(const char *s, struct cs_addr *a, char *why, size_t whylen)
{
    memset(a, 0, sizeof(*a));
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 261) {
        snprintf(why, whylen, "an address has 1 to 261 characters");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!isalnum(c) && c != '.' && c != ':' && c != '-' && c != '[' && c != ']') {
            if (c > 0x20 && c < 0x7f) {
                snprintf(why, whylen, "the character '%c' cannot appear in an address", c);
            } else {
                snprintf(why, whylen, "byte 0x%02x cannot appear in an address", c);
            }
            return -1;
        }
    }
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close == s + 1) {
            snprintf(why, whylen, "a '[' must enclose an IPv6 address and be closed by ']'");
            return -1;
        }
        size_t hl = (size_t)(close - s - 1);
        if (cs_ip_parse(s + 1, hl, a) != 0 || a->kind != 6) {
            snprintf(why, whylen, "the part in brackets is not an IPv6 address");
            return -1;
        }
        const char *rest = close + 1;
        if (*rest == '\0') {
            return 0;
        }
        if (*rest != ':' || parse_port(rest + 1, strlen(rest + 1), &a->port) != 0) {
            snprintf(why, whylen, "after ']' only ':' and a port from 1 to 65535 may follow");
            return -1;
        }
        return 0;
    }
    if (memchr(s, '[', n) || memchr(s, ']', n)) {
        snprintf(why, whylen, "brackets may only enclose an IPv6 address");
        return -1;
    }
    size_t colons = 0;
    for (size_t i = 0; i < n; i++) {
        colons += s[i] == ':';
    }
    if (colons >= 2) {
        if (cs_ip_parse(s, n, a) != 0 || a->kind != 6) {
            snprintf(why, whylen,
                     "it is not a valid IPv6 address (with a port, write [address]:port)");
            return -1;
        }
        return 0;
    }
    size_t hl = n;
    if (colons == 1) {
        hl = (size_t)(strchr(s, ':') - s);
        if (parse_port(s + hl + 1, n - hl - 1, &a->port) != 0) {
            snprintf(why, whylen, "the port must be a number from 1 to 65535");
            return -1;
        }
    }
    int dotted_digits = hl > 0;
    for (size_t i = 0; i < hl; i++) {
        dotted_digits &= (isdigit((unsigned char)s[i]) || s[i] == '.') ? 1 : 0;
    }
    if (dotted_digits) {
        unsigned port = a->port;
        if (cs_ip_parse(s, hl, a) != 0) {
            snprintf(why, whylen, "it is not a valid IPv4 address");
            return -1;
        }
        a->port = port;
        return 0;
    }
    unsigned port = a->port;
    if (parse_name(s, hl, a, why, whylen) != 0) {
        return -1;
    }
    a->port = port;
    return 0;
}

int
cs_addr_same(const struct cs_addr *a, const struct cs_addr *b)
{
    unsigned pa = a->port ? a->port : COMPOSE_SERF_LAN_PORT;
    unsigned pb = b->port ? b->port : COMPOSE_SERF_LAN_PORT;
    if (pa != pb) {
        return 0;
    }
    if (a->kind == 'd' || b->kind == 'd') {
        return a->kind == b->kind && strcmp(a->host, b->host) == 0;
    }
    return memcmp(a->ip, b->ip, 16) == 0;
}

int
compose_addr_valid(const char *addr, struct compose_error *err)
{
    struct cs_addr a;
    char why[200];
    if (cs_addr_parse(addr, &a, why, sizeof(why)) != 0) {
        if (err) {
            err->code = COMPOSE_BAD_ADDRESS;
            err->line = 0;
            snprintf(err->message, sizeof(err->message), "not a valid retry-join address: %s", why);
        }
        return COMPOSE_BAD_ADDRESS;
    }
    return COMPOSE_OK;
}

int
compose_addr_equal(const char *a, const char *b)
{
    struct cs_addr x, y;
    char why[200];
    if (cs_addr_parse(a, &x, why, sizeof(why)) != 0 ||
        cs_addr_parse(b, &y, why, sizeof(why)) != 0) {
        return 0;
    }
    return cs_addr_same(&x, &y);
}

/* ---------- YAML's reading of plain scalars ---------- */

static size_t
span(const char *s, size_t n, size_t i, const char *set)
{
    while (i < n && strchr(set, s[i])) {
        i++;
    }
    return i;
}

/* Optional exponent at i: [eE][-+]?[0-9]+. Returns the index after it (i when absent). */
static size_t
exponent(const char *s, size_t n, size_t i)
{
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        size_t k = i + 1;
        if (k < n && (s[k] == '+' || s[k] == '-')) {
            k++;
        }
        size_t e = span(s, n, k, "0123456789");
        if (e > k) {
            return e;
        }
    }
    return i;
}

/* The integers and floats of YAML 1.1 (PyYAML, docker-compose v1) and of the 1.2 core schema
 * (compose v2), underscores and sexagesimals included. */
static int
yaml_number(const char *s, size_t n)
{
    static const char dig[] = "0123456789_";
    size_t i = 0;
    if (i < n && (s[i] == '+' || s[i] == '-')) {
        i++;
    }
    if (i == n) {
        return 0;
    }
    if (n - i > 2 && s[i] == '0' && strchr("xXoObB", s[i + 1])) {
        const char *set = strchr("xX", s[i + 1])   ? "0123456789abcdefABCDEF_"
                          : strchr("oO", s[i + 1]) ? "01234567_"
                                                   : "01_";
        return span(s, n, i + 2, set) == n;
    }
    if (s[i] == '.') {
        size_t k = span(s, n, i + 1, dig);
        return k > i + 1 && exponent(s, n, k) == n;
    }
    if (!isdigit((unsigned char)s[i])) {
        return 0;
    }
    size_t k = span(s, n, i, dig);
    if (k == n || exponent(s, n, k) == n) {
        return 1; /* integer, or 1e5 */
    }
    if (s[k] == '.') {
        return exponent(s, n, span(s, n, k + 1, dig)) == n;
    }
    if (s[k] == ':' && s[i] != '0') {
        while (k < n && s[k] == ':') {
            size_t d = span(s, n, k + 1, "0123456789");
            if (d == k + 1 || d > k + 3 || (d == k + 3 && s[k + 1] > '5')) {
                return 0;
            }
            k = d;
        }
        return k == n || (s[k] == '.' && span(s, n, k + 1, dig) == n);
    }
    return 0;
}

int
cs_plain_not_string(const char *s, size_t n)
{
    static const char *const words[] = {
        "",      "~",     "null",  "Null",  "NULL", "y",    "Y",    "yes",  "Yes",   "YES",
        "n",     "N",     "no",    "No",    "NO",   "true", "True", "TRUE", "false", "False",
        "FALSE", "on",    "On",    "ON",    "off",  "Off",  "OFF",  ".inf", ".Inf",  ".INF",
        "-.inf", "-.Inf", "-.INF", "+.inf", ".nan", ".NaN", ".NAN"};
    for (size_t i = 0; i < ARRAY_LEN(words); i++) {
        if (strlen(words[i]) == n && memcmp(words[i], s, n) == 0) {
            return 1;
        }
    }
    if (yaml_number(s, n)) {
        return 1;
    }
    /* A timestamp starts with yyyy-m-d. */
    if (n >= 8 && span(s, 4, 0, "0123456789") == 4 && s[4] == '-' && isdigit((unsigned char)s[5])) {
        return 1;
    }
    return 0;
}
