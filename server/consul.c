/* consul: the libcurl client for Consul agents' HTTP API. See include/consul.h.
 *
 * Each thread keeps one curl easy handle (a pthread key, cleaned up when the thread exits),
 * set up once per client and kept with its connection cache, so a worker thread reuses its
 * keep-alive connections to the agents from one request to the next.
 *
 * An answer is either buffered (consul_request) or streamed to a sink as it arrives
 * (consul_request_stream). Which agent answers is decided at the status line: a 5xx to a
 * GET/HEAD is kept aside while another agent is left to ask; any other answer goes to the
 * caller, and a write is never sent to a second agent once one has answered. */
#include "consul.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <sodium.h>

#include "config.h"
#include "curl_opts.h"
#include "metrics.h"
#include "util.h"

#define CONSUL_BLOCKING_MARGIN_MS 5000

struct consul_client {
    uint64_t id;      /* unique per client made, for the per-thread handles' set-up */
    char **addresses; /* n base URLs without a trailing '/' */
    size_t n;
    char *token_header; /* "X-Consul-Token: …", NULL when no token; wiped on free */
    char *ca_file;
    int tls_verify;
    long connect_timeout_ms;
    long timeout_ms;
    size_t max_body;
    pthread_mutex_t mu; /* guards last_good */
    size_t last_good;
};

/* The response headers passed through to callers (and to the browser by the proxy), with
 * their lengths; the first four are also read (see on_header). */
static const struct {
    const char *name;
    size_t len;
} passthrough_headers[] = {
#define H(s)                                                                                       \
    {                                                                                              \
        s, sizeof(s) - 1                                                                           \
    }
    H("Content-Type"),
    H("X-Consul-Index"),
    H("X-Consul-KnownLeader"),
    H("X-Consul-LastContact"),
    H("X-Consul-Effective-Consistency"),
    H("X-Consul-Query-Backend"),
    H("X-Consul-Results-Filtered-By-ACLs"),
    H("X-Consul-Default-ACL-Policy"),
    H("X-Consul-Translate-Addresses"),
    H("X-Consul-ContentHash"),
    H("X-Cache"),
    H("Age"),
    H("X-Consul-Reason"),
    H("Allow"),
#undef H
};

/* ---- per-thread curl handles ---- */

/* The calling thread's easy handle and the client whose constant options it holds. The
 * handle keeps its connection cache from one request to the next, so a worker thread
 * reuses its keep-alive connections to the agents; its constant options (timeouts, TLS,
 * hardening, callbacks) are set once per client, the rest on every request. */
struct thread_curl {
    CURL *h;
    uint64_t client_id; /* 0 = not set up */
    int keeps;          /* holds one of CONSUL_KEEPERS: may keep idle connections */
};

/* Each worker thread that talked to Consul would otherwise keep its idle connection: with
 * hundreds of workers that passes Consul's own limit of connections per client address
 * (limits.http_max_conns_per_client, 200 by default), after which the agent refuses
 * consulate's connections, the watchers' included. The first CONSUL_KEEPERS threads keep
 * theirs; every other thread closes its connection after each request. */
#define CONSUL_KEEPERS 32
static atomic_int keepers;

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static pthread_key_t curl_key;
static atomic_uint_fast64_t next_client_id = 1;

static void
thread_curl_destroy(void *p)
{
    struct thread_curl *t = p;
    curl_easy_cleanup(t->h);
    if (t->keeps) {
        atomic_fetch_sub(&keepers, 1);
    }
    free(t);
}

static void
curl_init_once(void)
{
    curl_opts_global_init();
    pthread_key_create(&curl_key, thread_curl_destroy);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud);
static size_t on_header(char *data, size_t size, size_t nmemb, void *ud);

/* The calling thread's handle, set up for c (its constant options). It belongs to the
 * thread (freed when the thread exits); NULL only when curl cannot allocate. */
static CURL *
thread_handle(const struct consul_client *c)
{
    struct thread_curl *t = pthread_getspecific(curl_key);
    if (!t) {
        CURL *h = curl_easy_init();
        if (!h) {
            return NULL;
        }
        t = xcalloc(1, sizeof(*t));
        t->h = h;
        if (atomic_fetch_add(&keepers, 1) < CONSUL_KEEPERS) {
            t->keeps = 1;
        } else {
            atomic_fetch_sub(&keepers, 1);
        }
        pthread_setspecific(curl_key, t);
    }
    if (t->client_id != c->id) {
        curl_easy_reset(t->h);
        struct curl_limits lim = {
            .connect_timeout_ms = c->connect_timeout_ms,
            .timeout_ms = c->timeout_ms,
            .ca_file = c->ca_file,
            .tls_verify = c->tls_verify,
        };
        curl_opts_apply(t->h, &lim);
        curl_easy_setopt(t->h, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(t->h, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(t->h, CURLOPT_FORBID_REUSE, t->keeps ? 0L : 1L);
        t->client_id = c->id;
    }
    return t->h;
}

/* ---- client ---- */

struct consul_client *
consul_client_new(const struct config *cfg)
{
    pthread_once(&curl_once, curl_init_once);
    struct consul_client *c = xcalloc(1, sizeof(*c));
    c->id = atomic_fetch_add(&next_client_id, 1);
    c->n = cfg->n_consul_addresses;
    c->addresses = xcalloc(c->n + 1, sizeof(char *));
    for (size_t i = 0; i < c->n; i++) {
        char *a = xstrdup(cfg->consul_addresses[i]);
        size_t len = strlen(a);
        while (len > 0 && a[len - 1] == '/') {
            a[--len] = '\0';
        }
        c->addresses[i] = a;
    }
    if (cfg->consul_token && cfg->consul_token[0]) {
        c->token_header = xasprintf("X-Consul-Token: %s", cfg->consul_token);
    }
    c->ca_file = cfg->consul_ca_file ? xstrdup(cfg->consul_ca_file) : NULL;
    c->tls_verify = cfg->consul_tls_verify;
    c->connect_timeout_ms =
        cfg->consul_connect_timeout_ms > 0 ? cfg->consul_connect_timeout_ms : 2000;
    c->timeout_ms = cfg->consul_timeout_ms > 0 ? cfg->consul_timeout_ms : 10000;
    c->max_body = cfg->consul_max_body > 0 ? (size_t)cfg->consul_max_body : (32u << 20);
    pthread_mutex_init(&c->mu, NULL);
    return c;
}

void
consul_client_free(struct consul_client *c)
{
    if (!c) {
        return;
    }
    for (size_t i = 0; i < c->n; i++) {
        free(c->addresses[i]);
    }
    free(c->addresses);
    secret_free_str(c->token_header);
    free(c->ca_file);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

size_t
consul_address_count(const struct consul_client *c)
{
    return c ? c->n : 0;
}

const char *
consul_address(const struct consul_client *c, size_t i)
{
    return c && i < c->n ? c->addresses[i] : NULL;
}

void
consul_response_free(struct consul_response *r)
{
    if (!r) {
        return;
    }
    free(r->body);
    free(r->headers);
    r->body = NULL;
    r->headers = NULL;
    r->len = 0;
}

/* ---- one attempt ---- */

/* How an attempt hands over the answer's body. */
enum attempt_mode {
    MODE_UNDECIDED = 0, /* the headers are still arriving */
    MODE_BUFFER,        /* kept in memory: a buffered request, or a 5xx that may be replaced
                           by another agent's answer */
    MODE_STREAM,        /* passed to the sink as it arrives */
};

/* One request to one agent: what the caller asked, and what the curl callbacks fill. */
struct attempt {
    const struct consul_client *c;
    int idempotent;                 /* GET or HEAD: may be repeated on another agent */
    int may_fail_over;              /* another agent is left to try */
    const struct consul_sink *sink; /* NULL for a buffered request */
    const char *base;
    struct buf body;
    struct buf headers;
    long status;
    long long content_length; /* -1 when not given */
    char content_type[128];
    uint64_t index;
    int known_leader;
    long last_contact_ms;
    enum attempt_mode mode;
    size_t received;
    int too_big;
    int delivered; /* the sink has seen the head: no other agent may answer any more */
    int abandoned; /* the sink asked to stop (its client went away) */
};

static void
attempt_reset_head(struct attempt *a)
{
    buf_reset(&a->headers);
    a->status = 0;
    a->content_length = -1;
    a->content_type[0] = '\0';
    a->index = 0;
    a->known_leader = -1;
    a->last_contact_ms = -1;
}

static void
attempt_init(struct attempt *a, const struct consul_client *c, const char *base,
             const struct consul_sink *sink, int idempotent, int may_fail_over)
{
    memset(a, 0, sizeof(*a));
    a->c = c;
    a->base = base;
    a->sink = sink;
    a->idempotent = idempotent;
    a->may_fail_over = may_fail_over;
    buf_init(&a->body, c->max_body);
    buf_init(&a->headers, 16384);
    attempt_reset_head(a);
}

static void
attempt_free(struct attempt *a)
{
    buf_free(&a->body);
    buf_free(&a->headers);
}

/* The head of a's answer, borrowing from a. */
static void
attempt_head(const struct attempt *a, struct consul_head *h)
{
    h->status = a->status;
    h->headers = a->headers.data ? a->headers.data : "";
    h->content_type = a->content_type;
    h->content_length = a->content_length;
    h->index = a->index;
    h->known_leader = a->known_leader;
    h->last_contact_ms = a->last_contact_ms;
    h->address = a->base;
}

/* Hands a buffered answer to the sink. Returns 0, or -1 when the sink gave up. */
static int
attempt_deliver(struct attempt *a)
{
    struct consul_head h;
    attempt_head(a, &h);
    h.content_length = (long long)a->body.len;
    a->delivered = 1;
    if (a->sink->head(a->sink->ud, &h) != 0) {
        return -1;
    }
    if (a->body.len && a->sink->data(a->sink->ud, a->body.data, a->body.len) != 0) {
        return -1;
    }
    return 0;
}

/* The headers are complete: decides where the body goes. Returns 0 to go on, -1 to abort
 * the transfer. */
static int
on_headers_done(struct attempt *a)
{
    if (a->content_length >= 0 && (unsigned long long)a->content_length > a->c->max_body) {
        a->too_big = 1;
        return -1;
    }
    /* A 5xx to a read is kept aside while another agent may still give a better answer;
     * anything else is the answer, and from now on the sink's. */
    int replaceable = a->status >= 500 && a->idempotent && a->may_fail_over;
    if (!a->sink || replaceable) {
        a->mode = MODE_BUFFER;
        return 0;
    }
    a->mode = MODE_STREAM;
    a->delivered = 1;
    struct consul_head h;
    attempt_head(a, &h);
    if (a->sink->head(a->sink->ud, &h) != 0) {
        a->abandoned = 1;
        return -1;
    }
    return 0;
}

static size_t
on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    struct attempt *a = ud;
    size_t n = size * nmemb;
    a->received += n;
    if (a->received > a->c->max_body) {
        a->too_big = 1;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    if (a->mode == MODE_STREAM) {
        if (a->sink->data(a->sink->ud, data, n) != 0) {
            a->abandoned = 1;
            return 0;
        }
        return n;
    }
    if (buf_append(&a->body, data, n) != BUF_OK) {
        a->too_big = 1;
        return 0;
    }
    return n;
}

/* The value of a header line (after the colon) without the spaces around it and the CR/LF:
 * *len gets its length. */
static const char *
header_value(const char *v, size_t n, size_t *len)
{
    while (n > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        n--;
    }
    while (n > 0 && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' ' || v[n - 1] == '\t')) {
        n--;
    }
    *len = n;
    return v;
}

/* Copies len bytes of v into out (outlen bytes, NUL-terminated, cut when longer). */
static void
copy_cut(char *out, size_t outlen, const char *v, size_t len)
{
    if (len >= outlen) {
        len = outlen - 1;
    }
    memcpy(out, v, len);
    out[len] = '\0';
}

static size_t
on_header(char *data, size_t size, size_t nmemb, void *ud)
{
    struct attempt *a = ud;
    size_t n = size * nmemb;
    if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        /* a new response (after a 1xx, say): forget what an earlier one sent */
        attempt_reset_head(a);
        const char *sp = memchr(data, ' ', n);
        if (sp && (size_t)(sp - data) + 4 <= n) {
            a->status = strtol(sp + 1, NULL, 10);
        }
        return n;
    }
    if ((n == 2 && data[0] == '\r' && data[1] == '\n') || (n == 1 && data[0] == '\n')) {
        if (a->status >= 200 && a->mode == MODE_UNDECIDED && on_headers_done(a) != 0) {
            return 0;
        }
        return n;
    }
    const char *colon = memchr(data, ':', n);
    if (!colon) {
        return n;
    }
    size_t nlen = (size_t)(colon - data), vlen;
    const char *v = header_value(colon + 1, n - nlen - 1, &vlen);
    char num[32];
    if (nlen == 14 && strncasecmp(data, "Content-Length", 14) == 0) {
        copy_cut(num, sizeof(num), v, vlen);
        char *end;
        long long cl = strtoll(num, &end, 10);
        a->content_length = end != num && *end == '\0' && cl >= 0 ? cl : -1;
        return n;
    }
    for (size_t i = 0; i < ARRAY_LEN(passthrough_headers); i++) {
        if (passthrough_headers[i].len != nlen ||
            strncasecmp(passthrough_headers[i].name, data, nlen) != 0) {
            continue;
        }
        if (vlen > 512) {
            vlen = 512;
        }
        if (a->headers.len + nlen + vlen + 4 <= a->headers.max) {
            size_t at = a->headers.len + nlen + 2;
            buf_append(&a->headers, data, nlen);
            buf_append(&a->headers, ": ", 2);
            buf_append(&a->headers, v, vlen);
            buf_append(&a->headers, "\r\n", 2);
            for (size_t k = at; k < at + vlen; k++) {
                unsigned char ch = (unsigned char)a->headers.data[k];
                if (ch < 0x20 || ch == 0x7f) {
                    a->headers.data[k] = ' '; /* never let a value smuggle another header */
                }
            }
        }
        if (i == 0) {
            copy_cut(a->content_type, sizeof(a->content_type), v, vlen);
        } else if (i == 1) {
            copy_cut(num, sizeof(num), v, vlen);
            a->index = strtoull(num, NULL, 10);
        } else if (i == 2) {
            a->known_leader = vlen == 4 && strncasecmp(v, "true", 4) == 0 ? 1 : 0;
        } else if (i == 3) {
            copy_cut(num, sizeof(num), v, vlen);
            a->last_contact_ms = strtol(num, NULL, 10);
        }
        break;
    }
    return n;
}

enum attempt_rc {
    ATTEMPT_ANSWER = 0, /* a whole HTTP answer arrived (buffered, or streamed to the sink) */
    ATTEMPT_NO_ANSWER,  /* connection error or timeout: try another agent */
    ATTEMPT_SENT_LOST,  /* a write was sent but no answer came: do not repeat it elsewhere */
    ATTEMPT_TOO_BIG,
    ATTEMPT_LOCAL_ERROR,
    ATTEMPT_BROKEN, /* the sink had the head when the transfer failed or was abandoned */
};

static int
is_idempotent(const char *method)
{
    return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
}

/* A curl_slist node for str, appended to the list being built in nodes (at most max).
 * The nodes live on the caller's stack: curl only reads the list during the transfer. */
static void
slist_push(struct curl_slist *nodes, size_t *n, size_t max, const char *str)
{
    if (*n == max) {
        return;
    }
    nodes[*n].data = (char *)str;
    nodes[*n].next = NULL;
    if (*n > 0) {
        nodes[*n - 1].next = &nodes[*n];
    }
    (*n)++;
}

/* Performs one request against a->base. On ATTEMPT_ANSWER the answer is in a (buffered) or
 * was streamed to the sink. The reason of a failure is written to err. */
static int
attempt_one(struct attempt *a, const char *method, const char *path_and_query, const void *body,
            size_t len, const struct consul_opts *opts, char *err, size_t errlen)
{
    const struct consul_client *c = a->c;
    CURL *h = thread_handle(c);
    if (!h) {
        snprintf(err, errlen, "cannot create a curl handle");
        return ATTEMPT_LOCAL_ERROR;
    }
    int rc = ATTEMPT_LOCAL_ERROR;
    char url_small[1024], xff[128], ctype_small[256];
    char *url = url_small, *ctype = NULL;
    if ((size_t)snprintf(url_small, sizeof(url_small), "%s%s", a->base, path_and_query) >=
        sizeof(url_small)) {
        url = xasprintf("%s%s", a->base, path_and_query);
    }

    long timeout = c->timeout_ms;
    if (opts && opts->wait_s > 0) {
        timeout = (long)opts->wait_s * 1000L * 17L / 16L + CONSUL_BLOCKING_MARGIN_MS;
    }
    curl_opts_set_transfer(h, timeout, opts ? opts->cancel : NULL);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, a);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, a);

    struct curl_slist hdrs[6];
    size_t nh = 0;
    slist_push(hdrs, &nh, ARRAY_LEN(hdrs), "Expect:");
    slist_push(hdrs, &nh, ARRAY_LEN(hdrs), "Accept:");
    if (c->token_header) {
        slist_push(hdrs, &nh, ARRAY_LEN(hdrs), c->token_header);
    }
    if (opts && opts->forwarded_for) {
        snprintf(xff, sizeof(xff), "X-Forwarded-For: %s", opts->forwarded_for);
        slist_push(hdrs, &nh, ARRAY_LEN(hdrs), xff);
    }
    /* the method: everything a previous request on this handle set is undone first */
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, NULL);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)-1);
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, NULL);
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
        if (body || strcmp(method, "PUT") == 0 || strcmp(method, "POST") == 0) {
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? (const char *)body : "");
            const char *ct = opts && opts->content_type ? opts->content_type : NULL;
            if (!ct) {
                ctype = xstrdup("Content-Type:");
            } else if ((size_t)snprintf(ctype_small, sizeof(ctype_small), "Content-Type: %s", ct) <
                       sizeof(ctype_small)) {
                ctype = xstrdup(ctype_small);
            } else {
                ctype = xasprintf("Content-Type: %s", ct);
            }
            slist_push(hdrs, &nh, ARRAY_LEN(hdrs), ctype);
        }
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);

    CURLcode cc = curl_easy_perform(h);
    if (a->delivered) {
        if (cc == CURLE_OK && !a->too_big && !a->abandoned) {
            rc = ATTEMPT_ANSWER;
        } else {
            snprintf(err, errlen, "%s",
                     a->abandoned ? "the client went away"
                     : a->too_big ? "the response body exceeds the size limit"
                                  : curl_easy_strerror(cc));
            rc = ATTEMPT_BROKEN;
        }
        goto out;
    }
    if (a->too_big) {
        snprintf(err, errlen, "response body exceeds %zu bytes", c->max_body);
        rc = ATTEMPT_TOO_BIG;
        goto out;
    }
    if (cc != CURLE_OK) {
        snprintf(err, errlen, "%s", curl_easy_strerror(cc));
        long sent = 0;
        curl_easy_getinfo(h, CURLINFO_REQUEST_SIZE, &sent);
        int connect_failed = cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST ||
                             cc == CURLE_SSL_CONNECT_ERROR || sent == 0;
        rc = (!a->idempotent && !connect_failed) ? ATTEMPT_SENT_LOST : ATTEMPT_NO_ANSWER;
        goto out;
    }
    rc = ATTEMPT_ANSWER;
out:
    /* the handle must not keep pointers to this attempt's memory */
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, NULL);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, NULL);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, NULL);
    if (url != url_small) {
        free(url);
    }
    free(ctype);
    return rc;
}

/* Moves a's buffered answer into out (which takes ownership of the buffers). */
static void
attempt_to_response(struct attempt *a, struct consul_response *out)
{
    out->status = a->status;
    out->len = a->body.len;
    out->body = a->body.data ? buf_steal(&a->body) : xstrdup("");
    out->headers = a->headers.data ? buf_steal(&a->headers) : xstrdup("");
    snprintf(out->content_type, sizeof(out->content_type), "%s", a->content_type);
    out->index = a->index;
    out->known_leader = a->known_leader;
    out->last_contact_ms = a->last_contact_ms;
    snprintf(out->address, sizeof(out->address), "%s", a->base);
}

/* Path of path_and_query without the query, for log lines (the query may be long). */
static int
path_len_for_log(const char *pq)
{
    size_t n = strcspn(pq, "?");
    return n > 200 ? 200 : (int)n;
}

/* Remembers base as the agent to ask first next time. */
static void
note_good(struct consul_client *c, const char *base)
{
    pthread_mutex_lock(&c->mu);
    for (size_t k = 0; k < c->n; k++) {
        if (c->addresses[k] == base) {
            c->last_good = k;
        }
    }
    pthread_mutex_unlock(&c->mu);
}

/* The engine of consul_request and consul_request_stream (sink NULL: buffered into out). */
static int
request_any(struct consul_client *c, const char *method, const char *path_and_query,
            const void *body, size_t len, const struct consul_opts *opts,
            const struct consul_sink *sink, struct consul_response *out)
{
    memset(out, 0, sizeof(*out));
    out->known_leader = -1;
    out->last_contact_ms = -1;
    if (!c || !method || !path_and_query || !str_starts_with(path_and_query, "/v1/") ||
        strpbrk(path_and_query, " \r\n") || ((!opts || !opts->address) && c->n == 0)) {
        snprintf(out->error, sizeof(out->error), "invalid request");
        return CONSUL_ERROR;
    }

    /* the order of agents to try: the last good one, then the others in configured order */
    const char *order[33];
    size_t norder = 0;
    int pinned = opts && opts->address;
    if (pinned) {
        order[norder++] = opts->address;
    } else {
        pthread_mutex_lock(&c->mu);
        size_t first = c->last_good < c->n ? c->last_good : 0;
        pthread_mutex_unlock(&c->mu);
        order[norder++] = c->addresses[first];
        for (size_t i = 0; i < c->n && norder < ARRAY_LEN(order); i++) {
            if (i != first) {
                order[norder++] = c->addresses[i];
            }
        }
    }

    int idempotent = is_idempotent(method);
    int quiet = opts && opts->quiet;
    int rc = CONSUL_UNREACHABLE;
    struct attempt last5xx;
    int have5xx = 0;
    char err[256] = "";
    int plen = path_len_for_log(path_and_query);

    for (size_t i = 0; i < norder; i++) {
        const char *base = order[i];
        if (i > 0) {
            metrics_add(METRIC_CONSUL_FAILOVERS, 1);
        }
        metrics_add(METRIC_CONSUL_REQUESTS, 1);
        struct attempt a;
        attempt_init(&a, c, base, sink, idempotent, i + 1 < norder);
        int arc = attempt_one(&a, method, path_and_query, body, len, opts, err, sizeof(err));
        out->status = a.status;
        out->index = a.index;
        out->known_leader = a.known_leader;
        out->last_contact_ms = a.last_contact_ms;
        snprintf(out->address, sizeof(out->address), "%s", base);
        if (arc == ATTEMPT_ANSWER && (a.status < 500 || !idempotent || a.delivered)) {
            /* the answer: a write is never repeated elsewhere, whatever its status */
            if (a.status >= 500) {
                metrics_add(METRIC_CONSUL_ERRORS, 1);
            } else if (!pinned) {
                note_good(c, base);
            }
            rc = CONSUL_OK;
            if (!sink) {
                attempt_to_response(&a, out);
            } else if (!a.delivered && attempt_deliver(&a) != 0) {
                snprintf(err, sizeof(err), "the client went away");
                rc = CONSUL_BROKEN;
            }
            attempt_free(&a);
            goto out;
        }
        metrics_add(METRIC_CONSUL_ERRORS, 1);
        if (arc == ATTEMPT_ANSWER) {
            /* a 5xx to a read while another agent is left: keep it, ask the next one */
            snprintf(err, sizeof(err), "HTTP %ld", a.status);
            if (!quiet) {
                log_warn("consul: %s %.*s on %s answered %ld", method, plen, path_and_query, base,
                         a.status);
            }
            if (have5xx) {
                attempt_free(&last5xx);
            }
            last5xx = a; /* keeps the buffers */
            have5xx = 1;
            continue;
        }
        attempt_free(&a);
        if (!quiet) {
            log_warn("consul: %s %.*s on %s failed: %s", method, plen, path_and_query, base, err);
        }
        if (arc == ATTEMPT_BROKEN) {
            rc = CONSUL_BROKEN;
            goto out;
        }
        if (opts && opts->cancel && atomic_load(opts->cancel)) {
            break; /* abandoned by the caller */
        }
        if (arc == ATTEMPT_TOO_BIG) {
            rc = CONSUL_TOO_BIG;
            goto out;
        }
        if (arc == ATTEMPT_LOCAL_ERROR) {
            rc = CONSUL_ERROR;
            goto out;
        }
        if (arc == ATTEMPT_SENT_LOST) {
            break; /* a write may have been applied: do not repeat it on another agent */
        }
    }
    if (have5xx) {
        /* every agent answered 5xx or not at all: the last 5xx is the answer */
        rc = CONSUL_OK;
        out->status = last5xx.status;
        out->index = last5xx.index;
        out->known_leader = last5xx.known_leader;
        out->last_contact_ms = last5xx.last_contact_ms;
        snprintf(out->address, sizeof(out->address), "%s", last5xx.base);
        if (!sink) {
            attempt_to_response(&last5xx, out);
        } else if (attempt_deliver(&last5xx) != 0) {
            snprintf(err, sizeof(err), "the client went away");
            rc = CONSUL_BROKEN;
        }
    }
out:
    if (have5xx) {
        attempt_free(&last5xx);
    }
    if (rc != CONSUL_OK) {
        snprintf(out->error, sizeof(out->error), "%s", err);
    }
    return rc;
}

int
consul_request(struct consul_client *c, const char *method, const char *path_and_query,
               const void *body, size_t len, const struct consul_opts *opts,
               struct consul_response *out)
{
    return request_any(c, method, path_and_query, body, len, opts, NULL, out);
}

int
consul_request_stream(struct consul_client *c, const char *method, const char *path_and_query,
                      const void *body, size_t len, const struct consul_opts *opts,
                      const struct consul_sink *sink, struct consul_response *out)
{
    if (!sink || !sink->head || !sink->data) {
        memset(out, 0, sizeof(*out));
        snprintf(out->error, sizeof(out->error), "invalid request");
        return CONSUL_ERROR;
    }
    return request_any(c, method, path_and_query, body, len, opts, sink, out);
}

/* ---- KV helpers ---- */

void
consul_kv_clear(struct consul_kv *kv)
{
    if (!kv) {
        return;
    }
    free(kv->value);
    memset(kv, 0, sizeof(*kv));
}

int
consul_kv_read(struct consul_client *c, const char *path_and_query, const struct consul_opts *opts,
               struct consul_kv *out, long *status)
{
    memset(out, 0, sizeof(*out));
    struct consul_response resp;
    cJSON *j = NULL;
    int rc = consul_request(c, "GET", path_and_query, NULL, 0, opts, &resp);
    if (status) {
        *status = rc == CONSUL_OK ? resp.status : 0;
    }
    if (rc != CONSUL_OK) {
        goto out;
    }
    if (resp.status == 404) {
        goto out; /* absent */
    }
    rc = CONSUL_ERROR;
    if (resp.status != 200) {
        goto out;
    }
    j = json_parse_str(resp.body);
    const cJSON *e = cJSON_IsArray(j) ? cJSON_GetArrayItem(j, 0) : NULL;
    if (!cJSON_IsObject(e)) {
        goto out;
    }
    out->exists = 1;
    out->modify_index = (uint64_t)json_get_num(e, "ModifyIndex", 0);
    out->flags = (uint64_t)json_get_num(e, "Flags", 0);
    const char *v = json_get_str(e, "Value", NULL);
    size_t vlen = v ? strlen(v) : 0;
    out->value = xmalloc(vlen + 1);
    size_t bin_len = 0;
    if (vlen && sodium_base642bin(out->value, vlen + 1, v, vlen, NULL, &bin_len, NULL,
                                  sodium_base64_VARIANT_ORIGINAL) != 0) {
        consul_kv_clear(out);
        goto out;
    }
    out->len = bin_len;
    out->value[bin_len] = '\0';
    rc = CONSUL_OK;
out:
    cJSON_Delete(j);
    consul_response_free(&resp);
    return rc;
}

char *
consul_kv_escape(const char *key)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(key);
    char *out = xmalloc(n * 3 + 1);
    char *p = out;
    for (const unsigned char *k = (const unsigned char *)key; *k; k++) {
        if ((*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') || (*k >= '0' && *k <= '9') ||
            *k == '-' || *k == '.' || *k == '_' || *k == '~' || *k == '/') {
            *p++ = (char)*k;
        } else {
            *p++ = '%';
            *p++ = hex[*k >> 4];
            *p++ = hex[*k & 15];
        }
    }
    *p = '\0';
    return out;
}
