/* rawhttp: see rawhttp.h. */
#include "rawhttp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util.h"

int
raw_connect(int port, const char *src)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    if (src) {
        struct sockaddr_in b = {.sin_family = AF_INET};
        inet_pton(AF_INET, src, &b.sin_addr);
        if (bind(fd, (struct sockaddr *)&b, sizeof(b)) != 0) {
            close(fd);
            return -1;
        }
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int
raw_send(int fd, const char *text)
{
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t n = send(fd, text + off, len - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        off += (size_t)n;
    }
    return 0;
}

int
raw_open(int port, const char *src, const char *request)
{
    int fd = raw_connect(port, src);
    if (fd >= 0 && raw_send(fd, request) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

void
raw_resp_free(struct raw_resp *r)
{
    free(r->head);
    free(r->body);
    memset(r, 0, sizeof(*r));
}

/* Reads what is available within the deadline into b; returns bytes read, 0 on EOF, -1 on
 * timeout or error. */
static ssize_t
read_some(int fd, struct buf *b, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - time_mono_ms();
        if (left <= 0) {
            return -1;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int pr = poll(&p, 1, (int)left);
        if (pr < 0 && errno == EINTR) {
            continue;
        }
        if (pr <= 0) {
            return -1;
        }
        char chunk[16384];
        ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return 0; /* a reset counts as closed */
        }
        if (n > 0) {
            buf_append(b, chunk, (size_t)n);
        }
        return n;
    }
}

static int
read_response(int fd, struct raw_resp *r, int timeout_ms, int want_body, int head_only)
{
    memset(r, 0, sizeof(*r));
    int64_t deadline = time_mono_ms() + timeout_ms;
    struct buf b;
    buf_init(&b, 64 << 20);
    size_t head_len = 0;
    while (!head_len) {
        ssize_t n = read_some(fd, &b, deadline);
        if (n <= 0) {
            r->closed = n == 0;
            break;
        }
        buf_append(&b, "", 1); /* keeps the text terminated for strstr */
        b.len--;
        const char *end = strstr(b.data, "\r\n\r\n");
        if (end) {
            head_len = (size_t)(end - b.data) + 4;
        }
    }
    if (!head_len) {
        buf_free(&b);
        return 0;
    }
    r->head = xstrndup(b.data, head_len);
    sscanf(r->head, "HTTP/1.%*d %d", &r->status);
    char *cl = raw_header(r, "Content-Length");
    long long want = cl ? atoll(cl) : -1;
    free(cl);
    while (!head_only && !r->closed) {
        size_t have = b.len - head_len;
        if (want >= 0 && have >= (size_t)want) {
            break;
        }
        if (want < 0 && !want_body) {
            break;
        }
        ssize_t n = read_some(fd, &b, deadline);
        if (n <= 0) {
            r->closed = n == 0;
            break;
        }
    }
    r->body_len = b.len - head_len;
    r->body = xmalloc(r->body_len + 1); /* binary safe (a gzip body holds NULs) */
    memcpy(r->body, b.data + head_len, r->body_len);
    r->body[r->body_len] = '\0';
    buf_free(&b);
    return r->status;
}

int
raw_read(int fd, struct raw_resp *r, int timeout_ms, int want_body)
{
    return read_response(fd, r, timeout_ms, want_body, 0);
}

int
raw_read_head(int fd, struct raw_resp *r, int timeout_ms)
{
    return read_response(fd, r, timeout_ms, 0, 1);
}

int
raw_exchange(int port, const char *src, const char *request, struct raw_resp *r, int timeout_ms)
{
    memset(r, 0, sizeof(*r));
    int fd = raw_open(port, src, request);
    if (fd < 0) {
        return 0;
    }
    int st = raw_read(fd, r, timeout_ms, 1);
    close(fd);
    return st;
}

char *
raw_header(const struct raw_resp *r, const char *name)
{
    size_t nl = strlen(name);
    const char *p = r->head ? strstr(r->head, "\r\n") : NULL;
    while (p && p[2] && p[2] != '\r') {
        p += 2;
        const char *eol = strstr(p, "\r\n");
        size_t ll = eol ? (size_t)(eol - p) : strlen(p);
        if (ll > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ') {
                v++;
            }
            return xstrndup(v, ll - (size_t)(v - p));
        }
        p = eol;
    }
    return NULL;
}

int
raw_silent(int fd)
{
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT | MSG_PEEK);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

int
raw_not_closed(int fd)
{
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT | MSG_PEEK);
    return n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
}

int
raw_wait_closed(int fd, int timeout_ms)
{
    int64_t deadline = time_mono_ms() + timeout_ms;
    struct buf b;
    buf_init(&b, 64 << 20);
    int closed = 0;
    for (;;) {
        ssize_t n = read_some(fd, &b, deadline);
        if (n == 0) {
            closed = 1;
            break;
        }
        if (n < 0) {
            break;
        }
        b.len = 0;
    }
    buf_free(&b);
    return closed;
}
