/* consul: the libcurl client for Consul agents' HTTP API. See include/consul.h.
 *
 * Each thread keeps one curl easy handle (a pthread key, cleaned up when the thread exits);
 * curl_easy_reset keeps the handle's connection cache, so a worker thread reuses its
 * keep-alive connections to the agents from one request to the next. */
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
#include "metrics.h"
#include "util.h"

#define CONSUL_BLOCKING_MARGIN_MS 5000

struct consul_client {
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

/* The response headers passed through to callers (and to the browser by the proxy). */
static const char *const passthrough_headers[] = {
    "Content-Type",
    "X-Consul-Index",
    "X-Consul-KnownLeader",
    "X-Consul-LastContact",
    "X-Consul-Effective-Consistency",
    "X-Consul-Query-Backend",
    "X-Consul-Results-Filtered-By-ACLs",
    "X-Consul-Default-ACL-Policy",
    "X-Consul-Translate-Addresses",
    "X-Consul-ContentHash",
    "X-Cache",
    "Age",
    "X-Consul-Reason",
    "Allow",
};

/* ---- per-thread curl handles ---- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static pthread_key_t curl_key;

static void
curl_handle_destroy(void *h)
{
    curl_easy_cleanup(h);
}

static void
curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    pthread_key_create(&curl_key, curl_handle_destroy);
}

/* The calling thread's easy handle, created on first use and reset for a new request. The
 * handle belongs to the thread (freed when it exits); NULL only when curl cannot allocate. */
static CURL *
thread_handle(void)
{
    CURL *h = pthread_getspecific(curl_key);
    if (h) {
        curl_easy_reset(h);
        return h;
    }
    h = curl_easy_init();
    if (h) {
        pthread_setspecific(curl_key, h);
    }
    return h;
}

/* ---- client ---- */

struct consul_client *
consul_client_new(const struct config *cfg)
{
    pthread_once(&curl_once, curl_init_once);
    struct consul_client *c = xcalloc(1, sizeof(*c));
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

/* What the curl callbacks fill during one attempt. */
struct attempt {
    struct buf body;
    struct buf headers;
    int too_big;
    char content_type[128];
    uint64_t index;
    int known_leader;
    long last_contact_ms;
};

static size_t
on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    struct attempt *a = ud;
    size_t n = size * nmemb;
    if (buf_append(&a->body, data, n) != BUF_OK) {
        a->too_big = 1;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    return n;
}

/* Copies value (trimmed of spaces and CR/LF) of length len into out (NUL-terminated). */
static void
copy_trimmed(char *out, size_t outlen, const char *v, size_t len)
{
    while (len > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        len--;
    }
    while (len > 0 &&
           (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' ' || v[len - 1] == '\t')) {
        len--;
    }
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
        buf_reset(&a->headers);
        a->content_type[0] = '\0';
        a->index = 0;
        a->known_leader = -1;
        a->last_contact_ms = -1;
        return n;
    }
    const char *colon = memchr(data, ':', n);
    if (!colon) {
        return n;
    }
    size_t nlen = (size_t)(colon - data);
    for (size_t i = 0; i < ARRAY_LEN(passthrough_headers); i++) {
        const char *name = passthrough_headers[i];
        if (strlen(name) != nlen || strncasecmp(name, data, nlen) != 0) {
            continue;
        }
        char value[512];
        copy_trimmed(value, sizeof(value), colon + 1, n - nlen - 1);
        for (char *p = value; *p; p++) {
            if ((unsigned char)*p < 0x20 || *p == 0x7f) {
                *p = ' '; /* never let a header value smuggle another header */
            }
        }
        buf_append(&a->headers, data, nlen);
        buf_printf(&a->headers, ": %s\r\n", value);
        if (i == 0) {
            copy_trimmed(a->content_type, sizeof(a->content_type), value, strlen(value));
        } else if (i == 1) {
            a->index = strtoull(value, NULL, 10);
        } else if (i == 2) {
            a->known_leader = strcasecmp(value, "true") == 0 ? 1 : 0;
        } else if (i == 3) {
            a->last_contact_ms = strtol(value, NULL, 10);
        }
        break;
    }
    return n;
}

enum attempt_rc {
    ATTEMPT_ANSWER = 0, /* an HTTP response arrived */
    ATTEMPT_NO_ANSWER,  /* connection error or timeout: try another agent */
    ATTEMPT_SENT_LOST,  /* a write was sent but no answer came: do not repeat it elsewhere */
    ATTEMPT_TOO_BIG,
    ATTEMPT_LOCAL_ERROR,
};

static int
is_idempotent(const char *method)
{
    return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
}

/* Performs one request against base. On ATTEMPT_ANSWER, *status and a hold the answer. The
 * reason of a failure is written to err. */
/* libcurl's progress callback: non-zero aborts the transfer. It runs about once a second
 * even while a blocking query waits, which bounds how long a cancel takes. */
static int
on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    const atomic_int *cancel = ud;
    return atomic_load(cancel) != 0;
}

static int
attempt_one(struct consul_client *c, const char *base, const char *method,
            const char *path_and_query, const void *body, size_t len,
            const struct consul_opts *opts, struct attempt *a, long *status, char *err,
            size_t errlen)
{
    CURL *h = thread_handle();
    if (!h) {
        snprintf(err, errlen, "cannot create a curl handle");
        return ATTEMPT_LOCAL_ERROR;
    }
    int rc = ATTEMPT_LOCAL_ERROR;
    struct curl_slist *hdrs = NULL;
    char *url = xasprintf("%s%s", base, path_and_query);
    char *xff = NULL, *ctype = NULL;

    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
    long timeout = c->timeout_ms;
    if (opts && opts->wait_s > 0) {
        timeout = (long)opts->wait_s * 1000L * 17L / 16L + CONSUL_BLOCKING_MARGIN_MS;
    }
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout);
    if (opts && opts->cancel) {
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, (void *)opts->cancel);
    }
    if (c->ca_file) {
        curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
    }
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, c->tls_verify ? 1L : 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, c->tls_verify ? 2L : 0L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, a);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, a);

    hdrs = curl_slist_append(hdrs, "Expect:");
    hdrs = curl_slist_append(hdrs, "Accept:");
    if (c->token_header) {
        hdrs = curl_slist_append(hdrs, c->token_header);
    }
    if (opts && opts->forwarded_for) {
        xff = xasprintf("X-Forwarded-For: %s", opts->forwarded_for);
        hdrs = curl_slist_append(hdrs, xff);
    }
    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
        if (body || strcmp(method, "PUT") == 0 || strcmp(method, "POST") == 0) {
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? (const char *)body : "");
            ctype = opts && opts->content_type ? xasprintf("Content-Type: %s", opts->content_type)
                                               : xstrdup("Content-Type:");
            hdrs = curl_slist_append(hdrs, ctype);
        }
    }
    if (!hdrs) {
        snprintf(err, errlen, "cannot build the request headers");
        goto out;
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);

    CURLcode cc = curl_easy_perform(h);
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
        rc = (!is_idempotent(method) && !connect_failed) ? ATTEMPT_SENT_LOST : ATTEMPT_NO_ANSWER;
        goto out;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    rc = ATTEMPT_ANSWER;
out:
    /* the handle must not keep pointers to this attempt's memory */
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hdrs);
    free(url);
    free(xff);
    free(ctype);
    return rc;
}

static void
attempt_init(struct attempt *a, size_t max_body)
{
    memset(a, 0, sizeof(*a));
    buf_init(&a->body, max_body);
    buf_init(&a->headers, 16384);
    a->known_leader = -1;
    a->last_contact_ms = -1;
}

static void
attempt_free(struct attempt *a)
{
    buf_free(&a->body);
    buf_free(&a->headers);
}

/* Moves a's answer into out (which takes ownership of the buffers). */
static void
attempt_to_response(struct attempt *a, long status, const char *base, struct consul_response *out)
{
    out->status = status;
    out->len = a->body.len;
    out->body = a->body.data ? buf_steal(&a->body) : xstrdup("");
    out->headers = a->headers.data ? buf_steal(&a->headers) : xstrdup("");
    snprintf(out->content_type, sizeof(out->content_type), "%s", a->content_type);
    out->index = a->index;
    out->known_leader = a->known_leader;
    out->last_contact_ms = a->last_contact_ms;
    snprintf(out->address, sizeof(out->address), "%s", base);
}

/* Path of path_and_query without the query, for log lines (the query may be long). */
static int
path_len_for_log(const char *pq)
{
    size_t n = strcspn(pq, "?");
    return n > 200 ? 200 : (int)n;
}

int
consul_request(struct consul_client *c, const char *method, const char *path_and_query,
               const void *body, size_t len, const struct consul_opts *opts,
               struct consul_response *out)
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
    if (opts && opts->address) {
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

    int rc = CONSUL_UNREACHABLE;
    struct attempt last5xx;
    long last5xx_status = 0;
    const char *last5xx_base = NULL;
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
        attempt_init(&a, c->max_body);
        long status = 0;
        int arc = attempt_one(c, base, method, path_and_query, body, len, opts, &a, &status, err,
                              sizeof(err));
        if (arc == ATTEMPT_ANSWER && status < 500) {
            attempt_to_response(&a, status, base, out);
            attempt_free(&a);
            if (!(opts && opts->address)) {
                pthread_mutex_lock(&c->mu);
                for (size_t k = 0; k < c->n; k++) {
                    if (c->addresses[k] == base) {
                        c->last_good = k;
                    }
                }
                pthread_mutex_unlock(&c->mu);
            }
            rc = CONSUL_OK;
            goto out;
        }
        metrics_add(METRIC_CONSUL_ERRORS, 1);
        if (arc == ATTEMPT_ANSWER) {
            snprintf(err, sizeof(err), "HTTP %ld", status);
            if (!(opts && opts->quiet)) {
                log_warn("consul: %s %.*s on %s answered %ld", method, plen, path_and_query, base,
                         status);
            }
            if (have5xx) {
                attempt_free(&last5xx);
            }
            last5xx = a; /* keeps the buffers */
            last5xx_status = status;
            last5xx_base = base;
            have5xx = 1;
            continue;
        }
        attempt_free(&a);
        if (!(opts && opts->quiet)) {
            log_warn("consul: %s %.*s on %s failed: %s", method, plen, path_and_query, base, err);
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
        attempt_to_response(&last5xx, last5xx_status, last5xx_base, out);
        rc = CONSUL_OK;
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
