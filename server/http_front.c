/* http_front: see include/http_front.h. */
#include "http_front.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <civetweb.h>

#include "util.h"

/* 1 when s is empty or 1–5 digits (a port we do not check further). */
static int
port_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0) {
        return 1;
    }
    if (n > 5) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return 0;
        }
    }
    return 1;
}

int
front_host_allowed(const char *host, char *const *allowed)
{
    char name[256];
    unsigned char addr[16];
    if (!host || !*host || strlen(host) >= sizeof(name)) {
        return 0;
    }
    if (host[0] == '[') {
        const char *close = strchr(host, ']');
        if (!close || (close[1] != '\0' && close[1] != ':')) {
            return 0;
        }
        size_t n = (size_t)(close - host - 1);
        memcpy(name, host + 1, n);
        name[n] = '\0';
        if (close[1] == ':' && close[2] == '\0') {
            return 0;
        }
        return inet_pton(AF_INET6, name, addr) == 1 &&
               port_ok(close[1] == ':' ? close + 2 : close + 1);
    }
    const char *colon = strchr(host, ':');
    if (colon && strchr(colon + 1, ':')) {
        return 0; /* an IPv6 address must be in brackets */
    }
    size_t n = colon ? (size_t)(colon - host) : strlen(host);
    if (n == 0 || (colon && (!colon[1] || !port_ok(colon + 1)))) {
        return 0;
    }
    memcpy(name, host, n);
    name[n] = '\0';
    if (inet_pton(AF_INET, name, addr) == 1 || strcasecmp(name, "localhost") == 0) {
        return 1;
    }
    for (size_t i = 0; allowed && allowed[i]; i++) {
        if (strcasecmp(name, allowed[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Parses an address into 16 bytes, IPv4 (and IPv4-mapped IPv6) as ::ffff:a.b.c.d, so that
 * either form of one address compares equal. Returns 0, or -1 when s is no address. */
static int
addr_parse(const char *s, unsigned char out[16])
{
    unsigned char v4[4];
    if (inet_pton(AF_INET, s, v4) == 1) {
        memset(out, 0, 10);
        out[10] = out[11] = 0xff;
        memcpy(out + 12, v4, 4);
        return 0;
    }
    return inet_pton(AF_INET6, s, out) == 1 ? 0 : -1;
}

int
front_peer_trusted(const char *peer, char *const *trusted)
{
    unsigned char p[16], t[16];
    if (!peer || !trusted || addr_parse(peer, p) != 0) {
        return 0;
    }
    for (size_t i = 0; trusted[i]; i++) {
        if (addr_parse(trusted[i], t) == 0 && memcmp(p, t, 16) == 0) {
            return 1;
        }
    }
    return 0;
}

/* The last comma-separated element of list, without surrounding blanks, into out; 0, or -1
 * when it is empty or does not fit. */
static int
last_element(const char *list, char *out, size_t outlen)
{
    const char *start = strrchr(list, ',');
    start = start ? start + 1 : list;
    while (*start == ' ' || *start == '\t') {
        start++;
    }
    size_t n = strlen(start);
    while (n && (start[n - 1] == ' ' || start[n - 1] == '\t')) {
        n--;
    }
    if (n == 0 || n >= outlen) {
        return -1;
    }
    memcpy(out, start, n);
    out[n] = '\0';
    return 0;
}

void
front_forwarded(const char *xfp, const char *xff, int *https, char *ip, size_t iplen)
{
    char v[64];
    if (xfp && last_element(xfp, v, sizeof(v)) == 0) {
        if (strcasecmp(v, "https") == 0) {
            *https = 1;
        } else if (strcasecmp(v, "http") == 0) {
            *https = 0;
        }
    }
    unsigned char a[16];
    if (xff && last_element(xff, v, sizeof(v)) == 0 && addr_parse(v, a) == 0 && strlen(v) < iplen) {
        memcpy(ip, v, strlen(v) + 1);
    }
}

/* The port of a socket address (v4 or v6), or -1. */
static int
sa_port(const struct sockaddr_storage *sa)
{
    if (sa->ss_family == AF_INET) {
        return ntohs(((const struct sockaddr_in *)sa)->sin_port);
    }
    if (sa->ss_family == AF_INET6) {
        return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    }
    return -1;
}

/* The address of sa as 16 bytes (IPv4 mapped), as addr_parse gives it. */
static void
sa_addr(const struct sockaddr_storage *sa, unsigned char out[16])
{
    if (sa->ss_family == AF_INET) {
        memset(out, 0, 10);
        out[10] = out[11] = 0xff;
        memcpy(out + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    } else {
        memcpy(out, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
    }
}

/* Calls fn(fd, ctx) for every open descriptor of the process until it returns non-zero;
 * returns that value, or 0. */
static int
each_fd(int (*fn)(int fd, void *ctx), void *ctx)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d) {
        return 0;
    }
    int own = dirfd(d), rc = 0;
    struct dirent *e;
    while (!rc && (e = readdir(d))) {
        char *end;
        long fd = strtol(e->d_name, &end, 10);
        if (*end || end == e->d_name || fd == own) {
            continue;
        }
        rc = fn((int)fd, ctx);
    }
    closedir(d);
    return rc;
}

/* A listening socket of this process bound to port, or 0. */
static int
listening_on(int fd, int port)
{
    int listening = 0;
    socklen_t l = sizeof(listening);
    struct sockaddr_storage sa;
    socklen_t sl = sizeof(sa);
    return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &l) == 0 && listening &&
           getsockname(fd, (struct sockaddr *)&sa, &sl) == 0 && sa_port(&sa) == port;
}

struct tune {
    int port, defer_s, changed;
};

static int
tune_one(int fd, void *ctx)
{
    struct tune *t = ctx;
    if (!listening_on(fd, t->port)) {
        return 0;
    }
    int on = 1, idle = FRONT_KEEPIDLE_S, intvl = FRONT_KEEPINTVL_S, cnt = FRONT_KEEPCNT;
    unsigned user = FRONT_USER_TIMEOUT_MS;
    int ok = setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on)) == 0 &&
             setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle)) == 0 &&
             setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl)) == 0 &&
             setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt)) == 0 &&
             setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user, sizeof(user)) == 0 &&
             (t->defer_s <= 0 ||
              setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &t->defer_s, sizeof(t->defer_s)) == 0);
    if (!ok) {
        log_warn("http: cannot set TCP keepalive options on the listening socket");
    } else {
        t->changed++;
    }
    return 0;
}

int
front_tune_listeners(int port, int defer_s)
{
    struct tune t = {.port = port, .defer_s = defer_s};
    each_fd(tune_one, &t);
    return t.changed;
}

struct stop {
    int port, stopped;
};

static int
stop_one(int fd, void *ctx)
{
    struct stop *st = ctx;
    if (listening_on(fd, st->port) && shutdown(fd, SHUT_RDWR) == 0) {
        st->stopped++;
    }
    return 0;
}

int
front_stop_listeners(int port)
{
    struct stop st = {.port = port};
    each_fd(stop_one, &st);
    return st.stopped;
}

struct find {
    unsigned char peer[16];
    int peer_port, local_port;
};

/* fd + 1 when fd is the connection described by ctx (so that fd 0 is not "not found"). */
static int
find_one(int fd, void *ctx)
{
    struct find *f = ctx;
    struct sockaddr_storage sa;
    socklen_t sl = sizeof(sa);
    if (getpeername(fd, (struct sockaddr *)&sa, &sl) != 0 || sa_port(&sa) != f->peer_port) {
        return 0;
    }
    unsigned char a[16];
    sa_addr(&sa, a);
    sl = sizeof(sa);
    if (memcmp(a, f->peer, 16) != 0 || getsockname(fd, (struct sockaddr *)&sa, &sl) != 0 ||
        sa_port(&sa) != f->local_port) {
        return 0;
    }
    return fd + 1;
}

int
front_conn_socket(const struct mg_connection *conn)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);
    struct find f = {.peer_port = ri->remote_port, .local_port = ri->server_port};
    if (addr_parse(ri->remote_addr, f.peer) != 0) {
        return -1;
    }
    return each_fd(find_one, &f) - 1;
}

/* POLLRDHUP: the peer closed its side. A client that half-closes after its request (rare;
 * browsers never do) is taken as gone too. */
int
front_peer_gone(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}
