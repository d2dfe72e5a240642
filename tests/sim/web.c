/* web: HTTP plumbing shared by the agent API, the exporter and the control API: query
 * strings, Go durations, single-write replies, bounded body reads, civetweb contexts and
 * the per-server listener reconciliation. */
#include "sim.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static char *
url_decode(const char *s, size_t len)
{
    char *out = xmalloc(len + 1);
    int n = mg_url_decode(s, (int)len, out, (int)len + 1, 1);
    if (n < 0) {
        n = 0;
    }
    out[n] = '\0';
    return out;
}

/* Splits a raw query string into decoded key/value pairs; keys without '=' get "". */
void
query_parse(const char *qs, struct query *q)
{
    memset(q, 0, sizeof(*q));
    while (qs && *qs && q->n < QUERY_MAX) {
        const char *amp = strchr(qs, '&');
        size_t len = amp ? (size_t)(amp - qs) : strlen(qs);
        const char *eq = memchr(qs, '=', len);
        if (len > 0) {
            size_t klen = eq ? (size_t)(eq - qs) : len;
            q->k[q->n] = url_decode(qs, klen);
            q->v[q->n] = eq ? url_decode(eq + 1, len - klen - 1) : xstrdup("");
            q->n++;
        }
        qs = amp ? amp + 1 : NULL;
    }
}

void
query_free(struct query *q)
{
    for (size_t i = 0; i < q->n; i++) {
        free(q->k[i]);
        free(q->v[i]);
    }
    q->n = 0;
}

const char *
query_get(const struct query *q, const char *key)
{
    for (size_t i = 0; i < q->n; i++) {
        if (strcmp(q->k[i], key) == 0) {
            return q->v[i];
        }
    }
    return NULL;
}

bool
query_has(const struct query *q, const char *key)
{
    return query_get(q, key) != NULL;
}

/* Go's time.ParseDuration subset: a sequence of decimal numbers with units ns, us, ms, s,
 * m, h; "0" alone is allowed. Negative durations are rejected. */
int
parse_duration_ms(const char *s, int64_t *ms)
{
    static const struct {
        const char *unit;
        double ms;
    } units[] = {{"ns", 1e-6}, {"us", 1e-3}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
    if (!s || !*s) {
        return -1;
    }
    if (strcmp(s, "0") == 0) {
        *ms = 0;
        return 0;
    }
    double total = 0;
    const char *p = s;
    while (*p) {
        if (!isdigit((unsigned char)*p) && *p != '.') {
            return -1;
        }
        char *end;
        errno = 0;
        double v = strtod(p, &end);
        if (end == p || errno) {
            return -1;
        }
        p = end;
        size_t ulen = 0;
        while (isalpha((unsigned char)p[ulen])) {
            ulen++;
        }
        bool found = false;
        for (size_t i = 0; i < ARRAY_LEN(units); i++) {
            if (strlen(units[i].unit) == ulen && strncmp(p, units[i].unit, ulen) == 0) {
                total += v * units[i].ms;
                found = true;
            }
        }
        if (!found) {
            return -1;
        }
        p += ulen;
    }
    if (total > 1e12) {
        return -1;
    }
    *ms = (int64_t)total;
    return 0;
}

int
parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s) {
        return -1;
    }
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (!isdigit((unsigned char)*p)) {
            return -1;
        }
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return -1;
        }
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

const char *
status_text(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 301:
        return "Moved Permanently";
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 413:
        return "Request Entity Too Large";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    default:
        return "Unknown";
    }
}

int
web_reply(struct mg_connection *conn, int status, const char *ctype, const char *extra,
          const void *body, size_t len)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);
    bool head = ri && ri->request_method && strcmp(ri->request_method, "HEAD") == 0;
    struct buf b;
    buf_init(&b, (size_t)64 << 20);
    buf_printf(&b, "HTTP/1.1 %d %s\r\n", status, status_text(status));
    if (ctype) {
        buf_printf(&b, "Content-Type: %s\r\n", ctype);
    }
    buf_printf(&b, "Content-Length: %zu\r\n%s\r\n", len, extra ? extra : "");
    if (len && !head) { /* a HEAD answer carries the headers only */
        buf_append(&b, body, len);
    }
    mg_write(conn, b.data, b.len);
    buf_free(&b);
    return status;
}

/* Sends j (consumed) as application/json. */
int
web_reply_json(struct mg_connection *conn, int status, const char *extra, cJSON *j)
{
    char *s = json_print(j);
    cJSON_Delete(j);
    web_reply(conn, status, "application/json", extra, s, strlen(s));
    free(s);
    return status;
}

int
web_read_body(struct mg_connection *conn, size_t max, char **out, size_t *len)
{
    struct buf b;
    buf_init(&b, max);
    char chunk[16384];
    int rc = 0;
    for (;;) {
        int n = mg_read(conn, chunk, sizeof(chunk));
        if (n < 0) {
            rc = -1;
            break;
        }
        if (n == 0) {
            break;
        }
        if (rc == 0 && buf_append(&b, chunk, (size_t)n) != BUF_OK) {
            rc = 1; /* keep draining so the connection stays usable */
        }
    }
    if (rc != 0) {
        buf_free(&b);
        *out = NULL;
        *len = 0;
        return rc;
    }
    *len = b.len;
    *out = buf_steal(&b);
    return 0;
}

static int
quiet_log(const struct mg_connection *conn, const char *message)
{
    (void)conn;
    (void)message;
    return 1;
}

struct mg_context *
web_start(const char *ip, int port, int threads, int (*handler)(struct mg_connection *, void *),
          void *cbdata, int *bound, char *err, size_t errlen)
{
    char ports[64];
    char nthreads[16];
    snprintf(ports, sizeof(ports), "%s:%d", ip, port);
    snprintf(nthreads, sizeof(nthreads), "%d", threads);
    const char *options[] = {"listening_ports",
                             ports,
                             "num_threads",
                             nthreads,
                             "enable_keep_alive",
                             "yes",
                             "keep_alive_timeout_ms",
                             "500",
                             "tcp_nodelay",
                             "1",
                             "request_timeout_ms",
                             "30000",
                             "decode_url",
                             "no", /* handlers see the path as sent (gohttp.c decodes) */
                             NULL};
    struct mg_callbacks cb;
    memset(&cb, 0, sizeof(cb));
    cb.log_message = quiet_log;
    struct mg_init_data init = {&cb, NULL, options};
    char text[256] = "";
    unsigned code = 0;
    struct mg_error_data ed = {&code, text, sizeof(text)};
    struct mg_context *ctx = mg_start2(&init, &ed);
    if (!ctx) {
        snprintf(err, errlen, "cannot listen on %s: %s", ports, text[0] ? text : "error");
        return NULL;
    }
    mg_set_request_handler(ctx, "/", handler, cbdata);
    struct mg_server_port sp[4];
    memset(sp, 0, sizeof(sp));
    int n = mg_get_server_ports(ctx, 4, sp);
    *bound = n > 0 ? sp[0].port : port;
    return ctx;
}

struct stopper {
    struct mg_context *ctx;
    atomic_bool done;
};

static void *
stopper_main(void *arg)
{
    struct stopper *st = arg;
    mg_stop(st->ctx);
    atomic_store(&st->done, true);
    return NULL;
}

/* Opens and closes a TCP connection to ip:port, which wakes civetweb's master thread from
 * its poll (it only checks the stop flag every two seconds otherwise). */
static void
poke(const char *ip, int port)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1) {
        return;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
        (void)connect(fd, (struct sockaddr *)&sa, sizeof(sa));
        close(fd);
    }
}

/* civetweb 1.15 leaves connections it accepted while stopping queued and open forever, so
 * their clients hang instead of seeing a reset. After the stop, close every socket still
 * bound to ip:port (no thread of the stopped context can be using them any more). */
static void
close_leftovers(const char *ip, int port)
{
    struct in_addr want;
    if (inet_pton(AF_INET, ip, &want) != 1) {
        return;
    }
    DIR *d = opendir("/proc/self/fd");
    if (!d) {
        return;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char *end;
        long fd = strtol(de->d_name, &end, 10);
        if (*end || end == de->d_name || fd == dirfd(d)) {
            continue;
        }
        struct sockaddr_in sa;
        socklen_t len = sizeof(sa);
        if (getsockname((int)fd, (struct sockaddr *)&sa, &len) == 0 && sa.sin_family == AF_INET &&
            ntohs(sa.sin_port) == port && sa.sin_addr.s_addr == want.s_addr) {
            shutdown((int)fd, SHUT_RDWR);
            close((int)fd);
        }
    }
    closedir(d);
}

void
web_stop(struct mg_context *ctx, const char *ip)
{
    if (!ctx) {
        return;
    }
    struct mg_server_port sp[4];
    memset(sp, 0, sizeof(sp));
    int port = mg_get_server_ports(ctx, 4, sp) > 0 ? sp[0].port : 0;
    struct stopper st = {ctx, false};
    pthread_t t;
    if (port == 0 || pthread_create(&t, NULL, stopper_main, &st) != 0) {
        mg_stop(ctx);
        return;
    }
    while (!atomic_load(&st.done)) {
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
        if (!atomic_load(&st.done)) {
            poke(ip, port);
        }
    }
    pthread_join(t, NULL);
    close_leftovers(ip, port);
}

int
listener_sync(struct server *s, char *err, size_t errlen)
{
    struct dc *dc = s->dc;
    int rc = 0;
    int bound = 0;
    pthread_mutex_lock(&s->lmu);
    pthread_mutex_lock(&dc->mu);
    bool down = atomic_load(&dc->shutdown);
    bool want_agent = server_up(s) && !down;
    bool want_metrics = s->host_up && !down;
    int port = s->http_port;
    int mport = s->metrics_port;
    bool want_cluster = want_agent && dc->opt.cluster_ports;
    pthread_mutex_unlock(&dc->mu);
    cluster_ports_sync(s, want_cluster);
    if (!want_agent && s->agent_ctx) {
        web_stop(s->agent_ctx, s->ip);
        s->agent_ctx = NULL;
    }
    if (!want_metrics && s->metrics_ctx) {
        web_stop(s->metrics_ctx, s->ip);
        s->metrics_ctx = NULL;
    }
    if (!want_agent || !want_metrics) {
        s->bind_failed = false;
    }
    if (s->bind_failed) {
        goto out;
    }
    if (want_agent && !s->agent_ctx) {
        s->agent_ctx = web_start(s->ip, port, 64, agent_handler, s, &bound, err, errlen);
        if (!s->agent_ctx) {
            s->bind_failed = true;
            rc = -1;
            goto out;
        }
        pthread_mutex_lock(&dc->mu);
        s->http_port = bound;
        pthread_mutex_unlock(&dc->mu);
    }
    if (want_metrics && !s->metrics_ctx) {
        s->metrics_ctx = web_start(s->ip, mport, 4, exporter_handler, s, &bound, err, errlen);
        if (!s->metrics_ctx) {
            s->bind_failed = true;
            rc = -1;
            goto out;
        }
        pthread_mutex_lock(&dc->mu);
        s->metrics_port = bound;
        pthread_mutex_unlock(&dc->mu);
    }
out:
    pthread_mutex_unlock(&s->lmu);
    if (rc != 0) {
        log_error("%s: %s", s->name, err);
    }
    return rc;
}

void
listener_stop_all(struct server *s)
{
    pthread_mutex_lock(&s->lmu);
    web_stop(s->agent_ctx, s->ip);
    web_stop(s->metrics_ctx, s->ip);
    s->agent_ctx = NULL;
    s->metrics_ctx = NULL;
    cluster_ports_sync(s, false);
    pthread_mutex_unlock(&s->lmu);
}
