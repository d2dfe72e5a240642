/* ssh: the libssh2 runner (see ssh.h). libssh2 runs in non-blocking mode throughout; every
 * call that would block is retried after poll() on the socket, in slices of at most 100 ms so
 * that deadlines and cancel flags are looked at (the way curl drives libssh2). */
#include "ssh.h"
#include "ssh_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libssh2.h>
#include <sodium.h>

#define KEY_FILE_MAX (64 * 1024)
#define KILL_STEP_MS 1000 /* after -TERM, wait this long before -KILL, and after -KILL */
#define KILL_CMD_MS 5000  /* the most a kill command may take (a new session on the host) */

static const char *const rc_names[] = {
    [SSH_OK] = "ok",
    [SSH_ERR_INVALID] = "invalid",
    [SSH_ERR_DNS] = "dns",
    [SSH_ERR_CONNECT_REFUSED] = "connect_refused",
    [SSH_ERR_CONNECT] = "connect_failed",
    [SSH_ERR_CONNECT_TIMEOUT] = "connect_timeout",
    [SSH_ERR_HOST_KEY_UNKNOWN] = "host_key_unknown",
    [SSH_ERR_HOST_KEY_CHANGED] = "host_key_changed",
    [SSH_ERR_AUTH] = "auth_failed",
    [SSH_ERR_KEY_FILE] = "key_file",
    [SSH_ERR_KEY_MODE] = "key_file_mode",
    [SSH_ERR_COMMAND_TIMEOUT] = "command_timeout",
    [SSH_ERR_CANCELLED] = "cancelled",
    [SSH_ERR_CHANNEL] = "channel_error",
    [SSH_ERR_FILE_TOO_LARGE] = "file_too_large",
    [SSH_ERR_NOT_FOUND] = "not_found",
    [SSH_ERR_SFTP] = "sftp_error",
};

const char *
ssh_rc_name(int rc)
{
    if (rc < 0 || (size_t)rc >= ARRAY_LEN(rc_names) || !rc_names[rc]) {
        return "unknown";
    }
    return rc_names[rc];
}

/* (see ssh_internal.h) */
int
ssh_fail(struct ssh_error *err, int code, const char *who, const char *fmt, ...)
{
    if (!err) {
        return code;
    }
    err->code = code;
    char text[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    snprintf(err->message, sizeof(err->message), "ssh %s: %s", who, text);
    return code;
}

void
ssh_err_clear(struct ssh_error *err)
{
    if (err) {
        memset(err, 0, sizeof(*err));
    }
}

int
ssh_canceled(const atomic_int *cancel)
{
    return cancel && atomic_load(cancel) != 0;
}

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_rc;

static void
init_libs(void)
{
    init_rc = libssh2_init(0);
    if (sodium_init() < 0) {
        init_rc = -1;
    }
}

/* ---------------------------------------------------------------- validation */

/* A host: a DNS name or an IPv4/IPv6 literal (brackets removed into out). 0 or -1. */
static int
host_normalize(const char *host, char *out, size_t outlen)
{
    if (!host) {
        return -1;
    }
    size_t len = strlen(host);
    if (len >= 2 && host[0] == '[' && host[len - 1] == ']') {
        host++;
        len -= 2;
    }
    if (len == 0 || len >= outlen || len > 253 || host[0] == '-' || host[0] == '.') {
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)host[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 ch == '.' || ch == '-' || ch == ':' || ch == '%' || ch == '_';
        if (!ok) {
            return -1;
        }
    }
    memcpy(out, host, len);
    out[len] = '\0';
    return 0;
}

static int
user_valid(const char *user)
{
    if (!user || !user[0] || user[0] == '-' || strlen(user) > 32) {
        return 0;
    }
    for (const char *p = user; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-')) {
            return 0;
        }
    }
    return 1;
}

/* "SHA256:" and 43 characters of unpadded base64. */
static int
fingerprint_valid(const char *fp)
{
    if (strncmp(fp, "SHA256:", 7) != 0 || strlen(fp) != 7 + 43) {
        return 0;
    }
    for (const char *p = fp + 7; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '+' || ch == '/')) {
            return 0;
        }
    }
    return 1;
}

/* The libssh2 host key methods that present a key of an ssh-keygen type name; NULL when the
 * name is not one. */
static const char *
hostkey_methods(const char *type)
{
    static const struct {
        const char *type;
        const char *methods;
    } table[] = {
        {"ED25519", "ssh-ed25519"},
        {"ECDSA", "ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521"},
        {"RSA", "rsa-sha2-512,rsa-sha2-256,ssh-rsa"},
        {"DSA", "ssh-dss"},
    };
    for (size_t i = 0; i < ARRAY_LEN(table); i++) {
        if (strcmp(type, table[i].type) == 0) {
            return table[i].methods;
        }
    }
    return NULL;
}

/* ---------------------------------------------------------------- name lookup */

/* A lookup on its own thread, so that the caller can stop waiting at its deadline. The job is
 * shared: whoever drops the last reference frees it. */
struct lookup {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;
    int done;
    int rc;
    char host[256];
    char port[8];
    struct addrinfo *res;
};

static void
lookup_unref(struct lookup *l)
{
    pthread_mutex_lock(&l->mu);
    int last = --l->refs == 0;
    pthread_mutex_unlock(&l->mu);
    if (last) {
        if (l->res) {
            freeaddrinfo(l->res);
        }
        pthread_cond_destroy(&l->cv);
        pthread_mutex_destroy(&l->mu);
        free(l);
    }
}

static void *
lookup_main(void *arg)
{
    struct lookup *l = arg;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(l->host, l->port, &hints, &res);
    pthread_mutex_lock(&l->mu);
    l->rc = rc;
    l->res = res;
    l->done = 1;
    pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->mu);
    lookup_unref(l);
    return NULL;
}

/* Resolves host:port. Literals resolve at once; names on a helper thread, waited for until
 * deadline or cancel. Returns SSH_OK with *out (freeaddrinfo) or an error code. */
static int
resolve(const char *host, uint16_t port, int64_t deadline, const atomic_int *cancel,
        struct addrinfo **out, const char *who, struct ssh_error *err)
{
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%u", (unsigned)port);
    struct addrinfo hints = {
        .ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC, .ai_flags = AI_NUMERICHOST};
    if (getaddrinfo(host, portstr, &hints, out) == 0) {
        return SSH_OK;
    }
    struct lookup *l = xcalloc(1, sizeof(*l));
    pthread_mutex_init(&l->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&l->cv, &ca);
    pthread_condattr_destroy(&ca);
    snprintf(l->host, sizeof(l->host), "%s", host);
    memcpy(l->port, portstr, sizeof(portstr));
    l->refs = 2;
    pthread_t th;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&th, &attr, lookup_main, l) != 0) {
        /* no thread to be had: look up here, without the deadline */
        struct addrinfo h2 = {.ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC};
        l->rc = getaddrinfo(host, portstr, &h2, &l->res);
        l->done = 1;
        l->refs = 1;
    }
    pthread_attr_destroy(&attr);
    int rc = SSH_OK;
    pthread_mutex_lock(&l->mu);
    while (!l->done) {
        int64_t left = deadline - time_mono_ms();
        if (left <= 0 || ssh_canceled(cancel)) {
            break;
        }
        if (left > SLICE_MS) {
            left = SLICE_MS;
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += left / 1000;
        ts.tv_nsec += (left % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&l->cv, &l->mu, &ts);
    }
    if (!l->done) {
        rc =
            ssh_canceled(cancel)
                ? ssh_fail(err, SSH_ERR_CANCELLED, who, "cancelled during name lookup")
                : ssh_fail(err, SSH_ERR_CONNECT_TIMEOUT, who, "name lookup did not finish in time");
    } else if (l->rc != 0) {
        rc = ssh_fail(err, SSH_ERR_DNS, who, "name lookup failed: %s", gai_strerror(l->rc));
    } else {
        *out = l->res;
        l->res = NULL;
    }
    pthread_mutex_unlock(&l->mu);
    lookup_unref(l);
    return rc;
}

/* ---------------------------------------------------------------- TCP */

static void
tcp_tune(int fd, int keepalive_s)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    int idle = keepalive_s * 2, intvl = keepalive_s, cnt = 4;
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
}

/* Connects a non-blocking socket to the first address that answers before deadline. Returns
 * SSH_OK with *fd or an error code. */
static int
tcp_connect(const struct addrinfo *list, int64_t deadline, const atomic_int *cancel,
            int keepalive_s, int *fd_out, const char *who, struct ssh_error *err)
{
    int last_errno = 0;
    for (const struct addrinfo *ai = list; ai; ai = ai->ai_next) {
        int fd =
            socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            last_errno = errno;
            continue;
        }
        tcp_tune(fd, keepalive_s);
        int r = connect(fd, ai->ai_addr, ai->ai_addrlen);
        if (r != 0 && errno != EINPROGRESS) {
            last_errno = errno;
            close(fd);
            continue;
        }
        while (r != 0) {
            if (ssh_canceled(cancel)) {
                close(fd);
                return ssh_fail(err, SSH_ERR_CANCELLED, who, "cancelled while connecting");
            }
            int64_t left = deadline - time_mono_ms();
            if (left <= 0) {
                close(fd);
                return ssh_fail(err, SSH_ERR_CONNECT_TIMEOUT, who,
                                "TCP connection not made in time");
            }
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            int n = poll(&p, 1, (int)(left < SLICE_MS ? left : SLICE_MS));
            if (n > 0) {
                int so = 0;
                socklen_t sl = sizeof(so);
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &so, &sl);
                if (so != 0) {
                    last_errno = so;
                    break;
                }
                r = 0;
            }
        }
        if (r == 0) {
            *fd_out = fd;
            return SSH_OK;
        }
        close(fd);
    }
    if (last_errno == ECONNREFUSED) {
        return ssh_fail(err, SSH_ERR_CONNECT_REFUSED, who, "connection refused");
    }
    return ssh_fail(err, SSH_ERR_CONNECT, who, "cannot connect: %s",
                    last_errno ? strerror(last_errno) : "no address");
}

/* ---------------------------------------------------------------- waiting on libssh2 */

/* Waits at most ms for the socket to be ready in the direction libssh2 is blocked on. */
static void
io_wait(struct ssh_conn *c, int64_t ms)
{
    int dir = libssh2_session_block_directions(c->s);
    short ev = 0;
    if (dir & LIBSSH2_SESSION_BLOCK_INBOUND) {
        ev |= POLLIN;
    }
    if (dir & LIBSSH2_SESSION_BLOCK_OUTBOUND) {
        ev |= POLLOUT;
    }
    if (!ev) {
        ev = POLLIN;
    }
    struct pollfd p = {.fd = c->fd, .events = ev};
    poll(&p, 1, (int)(ms < 0 ? 0 : ms));
}

/* After LIBSSH2_ERROR_EAGAIN: 0 to try again once the socket is ready (waited at most a
 * slice), or the code to give up with (timeout_code past the deadline, cancelled). */
int
ssh_again(struct ssh_conn *c, int64_t deadline, const atomic_int *cancel, int timeout_code)
{
    if (ssh_canceled(cancel)) {
        return SSH_ERR_CANCELLED;
    }
    int64_t left = deadline - time_mono_ms();
    if (left <= 0) {
        return timeout_code;
    }
    io_wait(c, left < SLICE_MS ? left : SLICE_MS);
    return 0;
}

/* libssh2's last error text (no secrets: it never holds data we sent). */
const char *
ssh_last_error(struct ssh_conn *c)
{
    char *msg = NULL;
    libssh2_session_last_error(c->s, &msg, NULL, 0);
    return msg ? msg : "unknown error";
}

int
ssh_io_error(int rc)
{
    return rc == LIBSSH2_ERROR_SOCKET_SEND || rc == LIBSSH2_ERROR_SOCKET_RECV ||
           rc == LIBSSH2_ERROR_SOCKET_DISCONNECT || rc == LIBSSH2_ERROR_SOCKET_TIMEOUT ||
           rc == LIBSSH2_ERROR_TIMEOUT || rc == LIBSSH2_ERROR_BAD_SOCKET ||
           rc == LIBSSH2_ERROR_DECRYPT || rc == LIBSSH2_ERROR_INVALID_MAC ||
           rc == LIBSSH2_ERROR_PROTO;
}

/* ---------------------------------------------------------------- host keys */

/* Reads a big-endian u32 length-prefixed string from the key blob at *pos. */
static int
blob_string(const unsigned char *b, size_t len, size_t *pos, const unsigned char **s, size_t *n)
{
    if (len - *pos < 4) {
        return -1;
    }
    size_t l = ((size_t)b[*pos] << 24) | ((size_t)b[*pos + 1] << 16) | ((size_t)b[*pos + 2] << 8) |
               b[*pos + 3];
    *pos += 4;
    if (l > len - *pos) {
        return -1;
    }
    *s = b + *pos;
    *n = l;
    *pos += l;
    return 0;
}

/* The bit length of an unsigned big-endian integer (an SSH mpint, leading zeros skipped). */
static int
mpint_bits(const unsigned char *p, size_t n)
{
    while (n > 0 && *p == 0) {
        p++;
        n--;
    }
    if (n == 0) {
        return 0;
    }
    int top = 0;
    for (unsigned v = *p; v; v >>= 1) {
        top++;
    }
    return (int)((n - 1) * 8) + top;
}

/* Describes the key blob of a libssh2 host key type as ssh-keygen -l does. */
static void
host_key_describe(const unsigned char *blob, size_t len, int type, struct ssh_host_key *k)
{
    memset(k, 0, sizeof(*k));
    const unsigned char *s;
    size_t n, pos = 0;
    switch (type) {
    case LIBSSH2_HOSTKEY_TYPE_ED25519:
        snprintf(k->type, sizeof(k->type), "ED25519");
        k->bits = 256;
        break;
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_256:
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_384:
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_521:
        snprintf(k->type, sizeof(k->type), "ECDSA");
        k->bits = type == LIBSSH2_HOSTKEY_TYPE_ECDSA_256   ? 256
                  : type == LIBSSH2_HOSTKEY_TYPE_ECDSA_384 ? 384
                                                           : 521;
        break;
    case LIBSSH2_HOSTKEY_TYPE_RSA:
        /* string "ssh-rsa", mpint e, mpint n */
        snprintf(k->type, sizeof(k->type), "RSA");
        if (blob_string(blob, len, &pos, &s, &n) == 0 &&
            blob_string(blob, len, &pos, &s, &n) == 0 &&
            blob_string(blob, len, &pos, &s, &n) == 0) {
            k->bits = mpint_bits(s, n);
        }
        break;
    case LIBSSH2_HOSTKEY_TYPE_DSS:
        /* string "ssh-dss", mpint p, ... */
        snprintf(k->type, sizeof(k->type), "DSA");
        if (blob_string(blob, len, &pos, &s, &n) == 0 &&
            blob_string(blob, len, &pos, &s, &n) == 0) {
            k->bits = mpint_bits(s, n);
        }
        break;
    default:
        snprintf(k->type, sizeof(k->type), "UNKNOWN");
        break;
    }
    unsigned char hash[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(hash, blob, len);
    char b64[sodium_base64_ENCODED_LEN(crypto_hash_sha256_BYTES,
                                       sodium_base64_VARIANT_ORIGINAL_NO_PADDING)];
    sodium_bin2base64(b64, sizeof(b64), hash, sizeof(hash),
                      sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
    snprintf(k->fingerprint, sizeof(k->fingerprint), "SHA256:%s", b64);
}

/* ---------------------------------------------------------------- sessions */

static void
conn_free(struct ssh_conn *c, int polite)
{
    if (!c) {
        return;
    }
    if (c->sftp) {
        if (polite && !c->broken) {
            int64_t deadline = time_mono_ms() + 1000;
            while (libssh2_sftp_shutdown(c->sftp) == LIBSSH2_ERROR_EAGAIN &&
                   ssh_again(c, deadline, NULL, 1) == 0) {
            }
        }
        c->sftp = NULL; /* freed with the session */
    }
    if (c->s) {
        if (polite && !c->broken) {
            int64_t deadline = time_mono_ms() + 1000;
            while (libssh2_session_disconnect(c->s, "bye") == LIBSSH2_ERROR_EAGAIN &&
                   ssh_again(c, deadline, NULL, 1) == 0) {
            }
        }
        /* in non-blocking mode the free returns EAGAIN while an open channel (the control
         * shell) still has its close to send; end it with a bounded blocking call */
        int64_t deadline = time_mono_ms() + 1000;
        while (libssh2_session_free(c->s) == LIBSSH2_ERROR_EAGAIN) {
            if (ssh_again(c, deadline, NULL, 1) != 0) {
                libssh2_session_set_timeout(c->s, 1000);
                libssh2_session_set_blocking(c->s, 1);
            }
        }
    }
    if (c->fd >= 0) {
        close(c->fd);
    }
    free(c);
}

/* Opens a TCP connection and an SSH session up to the end of the key exchange, and describes
 * the host key. key_type NULL lets the server choose the kind of host key. Returns SSH_OK
 * with *out, or an error code (LIBSSH2_ERROR_KEX_FAILURE in *kex_rc when the key exchange
 * failed, which with a key_type can mean the host no longer has such a key). */
static int
session_open(const char *host, uint16_t port, const char *key_type, int keepalive_s,
             int64_t deadline, const atomic_int *cancel, const char *who, int *kex_rc,
             struct ssh_conn **out, struct ssh_error *err)
{
    *out = NULL;
    *kex_rc = 0;
    pthread_once(&init_once, init_libs);
    if (init_rc != 0) {
        return ssh_fail(err, SSH_ERR_CONNECT, who, "libssh2 failed to initialise");
    }
    struct addrinfo *list = NULL;
    int rc = resolve(host, port, deadline, cancel, &list, who, err);
    if (rc != SSH_OK) {
        return rc;
    }
    struct ssh_conn *c = xcalloc(1, sizeof(*c));
    c->fd = -1;
    c->keepalive_s = keepalive_s;
    snprintf(c->who, sizeof(c->who), "%s", who);
    rc = tcp_connect(list, deadline, cancel, keepalive_s, &c->fd, who, err);
    freeaddrinfo(list);
    if (rc != SSH_OK) {
        goto out;
    }
    c->s = libssh2_session_init();
    if (!c->s) {
        rc = ssh_fail(err, SSH_ERR_CONNECT, who, "cannot create an SSH session");
        goto out;
    }
    libssh2_session_set_blocking(c->s, 0);
    if (key_type) {
        const char *methods = hostkey_methods(key_type);
        if (!methods || libssh2_session_method_pref(c->s, LIBSSH2_METHOD_HOSTKEY, methods) != 0) {
            rc = ssh_fail(err, SSH_ERR_INVALID, who, "unsupported host key type");
            goto out;
        }
    }
    int lr;
    while ((lr = libssh2_session_handshake(c->s, c->fd)) == LIBSSH2_ERROR_EAGAIN) {
        if ((rc = ssh_again(c, deadline, cancel, SSH_ERR_CONNECT_TIMEOUT)) != 0) {
            if (rc == SSH_ERR_CANCELLED) {
                ssh_fail(err, rc, who, "cancelled during the SSH handshake");
            } else {
                ssh_fail(err, rc, who, "no SSH handshake within the connect timeout");
            }
            goto out;
        }
    }
    if (lr != 0) {
        *kex_rc = lr;
        rc = ssh_fail(err, SSH_ERR_CONNECT, who, "SSH handshake failed: %s", ssh_last_error(c));
        goto out;
    }
    size_t klen = 0;
    int ktype = 0;
    const char *blob = libssh2_session_hostkey(c->s, &klen, &ktype);
    if (!blob || klen == 0) {
        rc = ssh_fail(err, SSH_ERR_CONNECT, who, "the host presented no host key");
        goto out;
    }
    host_key_describe((const unsigned char *)blob, klen, ktype, &c->key);
    libssh2_keepalive_config(c->s, 1, (unsigned)keepalive_s);
    rc = SSH_OK;
out:
    if (rc != SSH_OK) {
        c->broken = 1;
        conn_free(c, 0);
        return rc;
    }
    *out = c;
    return SSH_OK;
}

static void
format_who(char *out, size_t outlen, const char *user, const char *host, uint16_t port,
           const char *key_path)
{
    const char *lb = strchr(host, ':') ? "[" : "";
    const char *rb = strchr(host, ':') ? "]" : "";
    if (user) {
        snprintf(out, outlen, "%s@%s%s%s:%u (key %s)", user, lb, host, rb, (unsigned)port,
                 key_path ? key_path : "-");
    } else {
        snprintf(out, outlen, "%s%s%s:%u", lb, host, rb, (unsigned)port);
    }
}

int
ssh_probe(const char *host, uint16_t port, const char *key_type, int timeout_ms,
          struct ssh_host_key *out, struct ssh_error *err)
{
    ssh_err_clear(err);
    char h[256], who[300];
    if (host_normalize(host, h, sizeof(h)) != 0) {
        return ssh_fail(err, SSH_ERR_INVALID, "(probe)", "invalid host name or address");
    }
    port = port ? port : 22;
    format_who(who, sizeof(who), NULL, h, port, NULL);
    if (key_type && !hostkey_methods(key_type)) {
        return ssh_fail(err, SSH_ERR_INVALID, who, "unknown host key type");
    }
    int64_t deadline =
        time_mono_ms() + (timeout_ms > 0 ? timeout_ms : SSH_CONNECT_TIMEOUT_DEFAULT_MS);
    struct ssh_conn *c = NULL;
    int kex = 0;
    int rc = session_open(h, port, key_type, SSH_KEEPALIVE_DEFAULT_S, deadline, NULL, who, &kex, &c,
                          err);
    if (rc != SSH_OK) {
        return rc;
    }
    *out = c->key;
    conn_free(c, 1);
    return SSH_OK;
}

/* Reads the private key file after checking that it is a regular file that only its owner
 * may read or write. Returns SSH_OK with *data (wipe and free with secret_free_buf). */
static int
key_read(const char *path, char **data, size_t *len, const char *who, struct ssh_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        return ssh_fail(err, SSH_ERR_KEY_FILE, who, "cannot open the key file: %s",
                        strerror(errno));
    }
    int rc = SSH_OK;
    struct stat st;
    char *buf = NULL;
    size_t bufsize = 0;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = ssh_fail(err, SSH_ERR_KEY_FILE, who, "the key file is not a regular file");
        goto out;
    }
    if (st.st_mode & 077) {
        rc = ssh_fail(err, SSH_ERR_KEY_MODE, who,
                      "the key file has mode %04o; it must be 0600 or stricter (chmod 600)",
                      (unsigned)(st.st_mode & 07777));
        goto out;
    }
    if (st.st_size <= 0 || st.st_size > KEY_FILE_MAX) {
        rc = ssh_fail(err, SSH_ERR_KEY_FILE, who, "the key file is empty or too large");
        goto out;
    }
    bufsize = (size_t)st.st_size + 1;
    buf = xmalloc(bufsize);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            rc = ssh_fail(err, SSH_ERR_KEY_FILE, who, "cannot read the key file");
            goto out;
        }
        got += (size_t)n;
    }
    buf[got] = '\0';
    *data = buf;
    *len = got;
    buf = NULL;
out:
    if (buf) {
        secret_wipe(buf, bufsize);
        free(buf);
    }
    close(fd);
    return rc;
}

int
ssh_connect(const struct ssh_target *t, struct ssh_conn **out, struct ssh_error *err)
{
    ssh_err_clear(err);
    *out = NULL;
    char h[256], who[400];
    if (!t || host_normalize(t->host, h, sizeof(h)) != 0) {
        return ssh_fail(err, SSH_ERR_INVALID, "(connect)", "invalid host name or address");
    }
    uint16_t port = t->port ? t->port : 22;
    format_who(who, sizeof(who), user_valid(t->user) ? t->user : "(invalid user)", h, port,
               t->key_path);
    if (!user_valid(t->user)) {
        return ssh_fail(err, SSH_ERR_INVALID, who, "invalid user name");
    }
    if (!t->key_path || !t->key_path[0]) {
        return ssh_fail(err, SSH_ERR_KEY_FILE, who, "no key file given");
    }
    if (t->host_key_type && !hostkey_methods(t->host_key_type)) {
        return ssh_fail(err, SSH_ERR_INVALID, who, "unknown host key type");
    }
    const char *pin = t->host_key_fingerprint;
    if (pin && pin[0] && !fingerprint_valid(pin)) {
        return ssh_fail(err, SSH_ERR_INVALID, who,
                        "the pinned fingerprint is not of the form SHA256:<43 base64 characters>");
    }
    char *key = NULL;
    size_t key_len = 0;
    int rc = key_read(t->key_path, &key, &key_len, who, err);
    if (rc != SSH_OK) {
        return rc;
    }
    int timeout =
        t->connect_timeout_ms > 0 ? t->connect_timeout_ms : SSH_CONNECT_TIMEOUT_DEFAULT_MS;
    int keepalive = t->keepalive_s > 0 ? t->keepalive_s : SSH_KEEPALIVE_DEFAULT_S;
    int64_t deadline = time_mono_ms() + timeout;
    struct ssh_conn *c = NULL;
    int kex = 0;
    rc =
        session_open(h, port, t->host_key_type, keepalive, deadline, t->cancel, who, &kex, &c, err);
    if (rc == SSH_ERR_CONNECT && kex == LIBSSH2_ERROR_KEX_FAILURE && t->host_key_type && pin &&
        pin[0]) {
        /* The host offers no key of the pinned type: see what it offers instead. */
        struct ssh_error perr;
        int kex2 = 0;
        if (session_open(h, port, NULL, keepalive, deadline, t->cancel, who, &kex2, &c, &perr) ==
            SSH_OK) {
            struct ssh_host_key shown = c->key;
            conn_free(c, 1);
            c = NULL;
            if (err) {
                err->presented = shown;
                snprintf(err->expected.type, sizeof(err->expected.type), "%s", t->host_key_type);
                snprintf(err->expected.fingerprint, sizeof(err->expected.fingerprint), "%s", pin);
            }
            rc = ssh_fail(err, SSH_ERR_HOST_KEY_CHANGED, who,
                          "host key changed: expected %s %s, the host has no such key and presents "
                          "%s %s",
                          t->host_key_type, pin, shown.type, shown.fingerprint);
        }
    }
    if (rc != SSH_OK) {
        goto out;
    }
    if (!pin || !pin[0]) {
        if (err) {
            err->presented = c->key;
        }
        rc = ssh_fail(err, SSH_ERR_HOST_KEY_UNKNOWN, who,
                      "no host key is pinned for this host; it presents %s %s (confirm it first)",
                      c->key.type, c->key.fingerprint);
        goto out;
    }
    if (strcmp(pin, c->key.fingerprint) != 0) {
        if (err) {
            err->presented = c->key;
            snprintf(err->expected.type, sizeof(err->expected.type), "%s",
                     t->host_key_type ? t->host_key_type : "");
            snprintf(err->expected.fingerprint, sizeof(err->expected.fingerprint), "%s", pin);
        }
        rc = ssh_fail(err, SSH_ERR_HOST_KEY_CHANGED, who,
                      "host key changed: expected %s, presented %s %s", pin, c->key.type,
                      c->key.fingerprint);
        goto out;
    }
    int lr;
    while ((lr = libssh2_userauth_publickey_frommemory(c->s, t->user, strlen(t->user), NULL, 0, key,
                                                       key_len, t->passphrase)) ==
           LIBSSH2_ERROR_EAGAIN) {
        if ((rc = ssh_again(c, deadline, t->cancel, SSH_ERR_CONNECT_TIMEOUT)) != 0) {
            ssh_fail(err, rc, who,
                     rc == SSH_ERR_CANCELLED ? "cancelled during authentication"
                                             : "authentication did not finish within the connect "
                                               "timeout");
            goto out;
        }
    }
    if (lr == LIBSSH2_ERROR_AUTHENTICATION_FAILED || lr == LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED) {
        rc = ssh_fail(err, SSH_ERR_AUTH, who, "the server refused the key for this user");
    } else if (lr == LIBSSH2_ERROR_FILE || lr == LIBSSH2_ERROR_KEYFILE_AUTH_FAILED ||
               lr == LIBSSH2_ERROR_METHOD_NOT_SUPPORTED || lr == LIBSSH2_ERROR_INVAL ||
               lr == LIBSSH2_ERROR_DECRYPT || lr == LIBSSH2_ERROR_PROTO ||
               lr == LIBSSH2_ERROR_OUT_OF_BOUNDARY) {
        /* libssh2 parses the key before it sends anything: these are the key's problems */
        rc = ssh_fail(err, SSH_ERR_KEY_FILE, who,
                      "the key file could not be used (not a supported private key, or a wrong or "
                      "missing passphrase)");
    } else if (lr != 0) {
        rc = ssh_fail(err, ssh_io_error(lr) ? SSH_ERR_CONNECT : SSH_ERR_AUTH, who,
                      "authentication failed: %s", ssh_last_error(c));
    }
out:
    secret_wipe(key, key_len);
    free(key);
    if (rc != SSH_OK) {
        conn_free(c, 1);
        return rc;
    }
    *out = c;
    return SSH_OK;
}

void
ssh_close(struct ssh_conn *c)
{
    conn_free(c, 1);
}

const struct ssh_host_key *
ssh_conn_host_key(const struct ssh_conn *c)
{
    return &c->key;
}

/* ---------------------------------------------------------------- exec */

/* Splits one stream into lines for the callback. */
struct lines {
    enum ssh_stream stream;
    char *buf; /* line_max + 1 */
    size_t len;
    size_t max;
    int cut; /* the current line overflowed: drop until '\n' */
};

static void
lines_emit(struct lines *l, const struct ssh_exec_opts *o, unsigned flags)
{
    size_t len = l->len;
    if (len > 0 && l->buf[len - 1] == '\r') {
        len--;
    }
    l->buf[len] = '\0';
    if (o->on_line) {
        o->on_line(o->arg, l->stream, l->buf, len, flags | (l->cut ? SSH_LINE_CUT : 0));
    }
    l->len = 0;
    l->cut = 0;
}

static void
lines_feed(struct lines *l, const struct ssh_exec_opts *o, const char *p, size_t n)
{
    while (n > 0) {
        const char *nl = memchr(p, '\n', n);
        size_t seg = nl ? (size_t)(nl - p) : n;
        size_t room = l->max - l->len;
        size_t take = seg < room ? seg : room;
        memcpy(l->buf + l->len, p, take);
        l->len += take;
        if (take < seg) {
            l->cut = 1;
        }
        if (nl) {
            lines_emit(l, o, 0);
            seg++;
        }
        p += seg;
        n -= seg;
    }
}

static void
lines_finish(struct lines *l, const struct ssh_exec_opts *o)
{
    if (l->len > 0 || l->cut) {
        lines_emit(l, o, SSH_LINE_NO_EOL);
    }
}

#define MARKER_LINE_MAX 96

/* One running command. */
struct exec_run {
    struct ssh_conn *c;
    LIBSSH2_CHANNEL *ch;
    const struct ssh_exec_opts *o;
    struct ssh_exec_result *res;
    struct lines out, err;
    char marker[40];           /* "consulate-pid-<hex>:" */
    char pre[MARKER_LINE_MAX]; /* the current stdout line while looking for the marker */
    size_t pre_len;
    int seeking; /* the marker line has not come yet */
    int midline; /* a long non-marker line is being passed through */
    long pid;    /* the remote session's process id, 0 = not known */
};

static void
deliver_stdout(struct exec_run *x, const char *p, size_t n)
{
    if (n == 0) {
        return;
    }
    struct buf *out = x->o->out;
    if (out && !x->res->out_truncated && buf_append(out, p, n) != BUF_OK) {
        buf_append(out, p, out->max - out->len); /* what still fits */
        x->res->out_truncated = 1;
    }
    lines_feed(&x->out, x->o, p, n);
}

/* 1 when line (with its '\n') is "<marker><pid>\n" with a plausible pid (never 0 or 1:
 * `kill -1` would reach every process of the user). */
static long
marker_pid(const struct exec_run *x, const char *line, size_t len)
{
    size_t ml = strlen(x->marker);
    if (len < ml + 2 || memcmp(line, x->marker, ml) != 0 || line[len - 1] != '\n') {
        return 0;
    }
    long pid = 0;
    for (size_t i = ml; i < len - 1; i++) {
        if (line[i] < '0' || line[i] > '9' || pid > 100000000L) {
            return 0;
        }
        pid = pid * 10 + (line[i] - '0');
    }
    return pid >= 2 ? pid : 0;
}

/* Takes stdout bytes: strips the marker line (the first line that is one), passes the rest. */
static void
feed_stdout(struct exec_run *x, const char *p, size_t n)
{
    while (n > 0 && x->seeking) {
        if (x->midline) {
            const char *nl = memchr(p, '\n', n);
            size_t seg = nl ? (size_t)(nl - p) + 1 : n;
            deliver_stdout(x, p, seg);
            p += seg;
            n -= seg;
            if (nl) {
                x->midline = 0;
            }
            continue;
        }
        char ch = *p++;
        n--;
        x->pre[x->pre_len++] = ch;
        if (ch == '\n') {
            long pid = marker_pid(x, x->pre, x->pre_len);
            if (pid) {
                x->pid = pid;
                x->seeking = 0;
            } else {
                deliver_stdout(x, x->pre, x->pre_len);
            }
            x->pre_len = 0;
        } else if (x->pre_len == sizeof(x->pre)) {
            deliver_stdout(x, x->pre, x->pre_len);
            x->pre_len = 0;
            x->midline = 1;
        }
    }
    deliver_stdout(x, p, n);
}

/* Reads what has arrived on both streams. Returns 1 when bytes came, 0 when none, or a
 * negative libssh2 error. */
static int
exec_read(struct exec_run *x)
{
    char buf[16384];
    int got = 0;
    for (int id = 0; id <= 1; id++) {
        /* bounded, so that a command that writes without pause cannot keep the caller from
         * its deadline and cancel checks */
        for (int k = 0; k < 64; k++) {
            ssize_t n = libssh2_channel_read_ex(x->ch, id == 0 ? 0 : SSH_EXTENDED_DATA_STDERR, buf,
                                                sizeof(buf));
            if (n == LIBSSH2_ERROR_EAGAIN || n == 0) {
                break;
            }
            if (n < 0) {
                return (int)n;
            }
            got = 1;
            if (id == 0) {
                feed_stdout(x, buf, (size_t)n);
            } else {
                lines_feed(&x->err, x->o, buf, (size_t)n);
            }
        }
    }
    return got;
}

/* Opens a session channel and starts command on it (no wrapper). Returns SSH_OK with *ch. */
static int
channel_start(struct ssh_conn *c, const char *command, int64_t deadline, const atomic_int *cancel,
              int timeout_code, LIBSSH2_CHANNEL **ch_out, struct ssh_error *err)
{
    LIBSSH2_CHANNEL *ch;
    int rc;
    *ch_out = NULL;
    while (!(ch = libssh2_channel_open_session(c->s))) {
        int lr = libssh2_session_last_errno(c->s);
        if (lr != LIBSSH2_ERROR_EAGAIN) {
            if (ssh_io_error(lr)) {
                c->broken = 1;
            }
            return ssh_fail(err, SSH_ERR_CHANNEL, c->who, "cannot open a channel: %s",
                            ssh_last_error(c));
        }
        if ((rc = ssh_again(c, deadline, cancel, timeout_code)) != 0) {
            c->broken = 1; /* abandoned mid-request */
            return ssh_fail(err, rc, c->who, "no channel opened in time");
        }
    }
    int lr;
    while ((lr = libssh2_channel_exec(ch, command)) == LIBSSH2_ERROR_EAGAIN) {
        if ((rc = ssh_again(c, deadline, cancel, timeout_code)) != 0) {
            c->broken = 1;
            libssh2_channel_free(ch);
            return ssh_fail(err, rc, c->who, "the command could not be started in time");
        }
    }
    if (lr != 0) {
        if (ssh_io_error(lr)) {
            c->broken = 1;
        }
        ssh_fail(err, SSH_ERR_CHANNEL, c->who, "the command could not be started: %s",
                 ssh_last_error(c));
        while (libssh2_channel_free(ch) == LIBSSH2_ERROR_EAGAIN &&
               ssh_again(c, deadline, NULL, 1) == 0) {
        }
        return SSH_ERR_CHANNEL;
    }
    *ch_out = ch;
    return SSH_OK;
}

/* Closes a channel, waiting at most until deadline for the server's close (after which the
 * exit status and signal are known). */
static void
channel_close(struct ssh_conn *c, LIBSSH2_CHANNEL *ch, int64_t deadline)
{
    while (libssh2_channel_close(ch) == LIBSSH2_ERROR_EAGAIN) {
        if (ssh_again(c, deadline, NULL, 1) != 0) {
            c->broken = 1;
            return;
        }
    }
    if (libssh2_channel_eof(ch)) {
        while (libssh2_channel_wait_closed(ch) == LIBSSH2_ERROR_EAGAIN) {
            if (ssh_again(c, deadline, NULL, 1) != 0) {
                break;
            }
        }
    }
}

static void
channel_free(struct ssh_conn *c, LIBSSH2_CHANNEL *ch)
{
    int64_t deadline = time_mono_ms() + 500;
    while (libssh2_channel_free(ch) == LIBSSH2_ERROR_EAGAIN) {
        if (ssh_again(c, deadline, NULL, 1) != 0) {
            c->broken = 1;
            break;
        }
    }
}

/* Starts, once per connection, a shell that reads commands from its stdin. The kill of a
 * timed-out or cancelled command is written to it, which takes one round trip, where a new
 * channel would need a new session on the host (a fork and a login shell: seconds on a
 * loaded machine). Failing to start it is no error: remote_kill then opens a channel. */
static void
ctl_start(struct ssh_conn *c)
{
    if (c->ctl || c->ctl_tried) {
        return;
    }
    c->ctl_tried = 1;
    struct sh_cmd cmd;
    sh_cmd_init(&cmd);
    struct sh_arg argv[] = {SH_W("exec"), SH_W("sh")};
    if (sh_cmd_add(&cmd, argv, ARRAY_LEN(argv), NULL) == SH_OK) {
        channel_start(c, sh_cmd_text(&cmd), time_mono_ms() + KILL_CMD_MS, NULL,
                      SSH_ERR_COMMAND_TIMEOUT, &c->ctl, NULL);
    }
    sh_cmd_free(&cmd);
}

/* Writes the command line to the control shell. Returns 0 once written; -1 when the control
 * shell is gone (it is then dropped). */
static int
ctl_send(struct ssh_conn *c, const char *line)
{
    if (!c->ctl) {
        return -1;
    }
    char sink[512];
    for (int id = 0; id <= 1; id++) { /* discard what it said (kill's complaints) */
        while (libssh2_channel_read_ex(c->ctl, id ? SSH_EXTENDED_DATA_STDERR : 0, sink,
                                       sizeof(sink)) > 0) {
        }
    }
    int64_t deadline = time_mono_ms() + KILL_STEP_MS;
    size_t len = strlen(line), off = 0;
    while (!libssh2_channel_eof(c->ctl) && off < len) {
        ssize_t n = libssh2_channel_write(c->ctl, line + off, len - off);
        if (n == LIBSSH2_ERROR_EAGAIN) {
            if (ssh_again(c, deadline, NULL, 1) != 0) {
                break;
            }
        } else if (n < 0) {
            break;
        } else {
            off += (size_t)n;
        }
    }
    if (off == len) {
        return 0;
    }
    channel_free(c, c->ctl);
    c->ctl = NULL;
    return -1;
}

/* Sends signal sig (a constant such as "TERM") to the remote process group of the running
 * command x: through the control shell, or else through a new channel, waiting then at most
 * KILL_CMD_MS for that kill command to end, reading both of its streams (its stderr left
 * unread would hold back its end-of-file) and, meanwhile, the running command's output. */
static void
remote_kill(struct exec_run *x, const char *sig)
{
    struct ssh_conn *c = x->c;
    char sigw[16], pidw[24];
    snprintf(sigw, sizeof(sigw), "-%s", sig);
    snprintf(pidw, sizeof(pidw), "-%ld", x->pid);
    struct sh_cmd cmd;
    sh_cmd_init(&cmd);
    struct sh_arg argv[] = {SH_W("kill"), SH_W(sigw), SH_W(pidw)};
    if (x->pid < 2 || sh_cmd_add(&cmd, argv, ARRAY_LEN(argv), NULL) != SH_OK) {
        sh_cmd_free(&cmd);
        return;
    }
    char *line = xasprintf("%s\n", sh_cmd_text(&cmd));
    int sent = ctl_send(c, line) == 0;
    free(line);
    if (sent) {
        sh_cmd_free(&cmd);
        return;
    }
    int64_t deadline = time_mono_ms() + KILL_CMD_MS;
    LIBSSH2_CHANNEL *ch = NULL;
    if (channel_start(c, sh_cmd_text(&cmd), deadline, NULL, SSH_ERR_COMMAND_TIMEOUT, &ch, NULL) ==
        SSH_OK) {
        char sink[512];
        int done = 0;
        while (!done && !libssh2_channel_eof(ch)) {
            int got = 0;
            for (int id = 0; id <= 1 && !done; id++) {
                ssize_t n = libssh2_channel_read_ex(ch, id ? SSH_EXTENDED_DATA_STDERR : 0, sink,
                                                    sizeof(sink));
                if (n > 0) {
                    got = 1;
                } else if (n < 0 && n != LIBSSH2_ERROR_EAGAIN) {
                    done = 1;
                }
            }
            int r = exec_read(x);
            if (r < 0) {
                break;
            }
            if (!got && r == 0 && ssh_again(c, deadline, NULL, 1) != 0) {
                break;
            }
        }
        channel_close(c, ch, deadline);
        channel_free(c, ch);
    }
    sh_cmd_free(&cmd);
}

int
ssh_exec(struct ssh_conn *c, const struct sh_cmd *cmd, const struct ssh_exec_opts *opts,
         struct ssh_exec_result *result, struct ssh_error *err)
{
    ssh_err_clear(err);
    struct ssh_exec_opts o = opts ? *opts : (struct ssh_exec_opts){0};
    struct ssh_exec_result res_local;
    struct ssh_exec_result *res = result ? result : &res_local;
    *res = (struct ssh_exec_result){.exit_status = -1};
    if (!c || !cmd || !sh_cmd_complete(cmd)) {
        return ssh_fail(err, SSH_ERR_INVALID, c ? c->who : "(exec)", "no complete command to run");
    }
    if (c->broken) {
        return ssh_fail(err, SSH_ERR_CHANNEL, c->who, "the connection was lost earlier");
    }
    if (o.timeout_ms <= 0) {
        o.timeout_ms = SSH_EXEC_TIMEOUT_DEFAULT_MS;
    }
    if (o.line_max == 0) {
        o.line_max = SSH_LINE_MAX_DEFAULT;
    }
    struct exec_run x = {
        .c = c,
        .o = &o,
        .res = res,
        .out = {.stream = SSH_STDOUT, .max = o.line_max},
        .err = {.stream = SSH_STDERR, .max = o.line_max},
        .seeking = 1,
    };
    x.out.buf = xmalloc(o.line_max + 1);
    x.err.buf = xmalloc(o.line_max + 1);
    char nonce[17];
    random_hex(8, nonce);
    snprintf(x.marker, sizeof(x.marker), "consulate-pid-%s:", nonce);

    /* echo <marker>$$; exec sh -c '<command>' */
    struct buf wrapper;
    buf_init(&wrapper, SH_CMD_MAX * 2);
    buf_printf(&wrapper, "echo %s$$; exec sh -c ", x.marker);
    int rc;
    if (sh_quote(&wrapper, sh_cmd_text(cmd), strlen(sh_cmd_text(cmd))) != SH_OK) {
        rc = ssh_fail(err, SSH_ERR_INVALID, c->who, "the command is too long");
        goto out;
    }
    if (ssh_canceled(o.cancel)) {
        rc = ssh_fail(err, SSH_ERR_CANCELLED, c->who, "cancelled before the command was started");
        goto out;
    }
    ctl_start(c);
    int64_t start = time_mono_ms();
    int64_t deadline = start + o.timeout_ms;
    /* not cancellable half-way (that would leave the session unusable): a raised flag is
     * acted on once the command runs */
    rc = channel_start(c, wrapper.data, deadline, NULL, SSH_ERR_COMMAND_TIMEOUT, &x.ch, err);
    if (rc != SSH_OK) {
        goto out;
    }
    /* nothing comes on stdin: a command that asks (a y/N prompt) reads end-of-file at once
     * instead of waiting for its timeout */
    int lr;
    while ((lr = libssh2_channel_send_eof(x.ch)) == LIBSSH2_ERROR_EAGAIN) {
        if (ssh_again(c, deadline, NULL, SSH_ERR_COMMAND_TIMEOUT) != 0) {
            break;
        }
    }
    int stop = 0;          /* SSH_ERR_COMMAND_TIMEOUT or SSH_ERR_CANCELLED once decided */
    int phase = 0;         /* 0 running, -1 stopping (awaiting the pid), 1 TERM sent, 2 KILL */
    int64_t phase_end = 0; /* when the current kill phase gives up */
    int eof = 0;
    for (;;) {
        int r = exec_read(&x);
        if (r < 0) {
            if (ssh_io_error(r)) {
                c->broken = 1;
            }
            rc = ssh_fail(err, SSH_ERR_CHANNEL, c->who, "reading the command's output failed: %s",
                          ssh_last_error(c));
            goto close;
        }
        if (r == 0 && libssh2_channel_eof(x.ch)) {
            eof = 1;
            break;
        }
        int64_t now = time_mono_ms();
        if (!stop && ssh_canceled(o.cancel)) {
            stop = SSH_ERR_CANCELLED;
        } else if (!stop && now >= deadline) {
            stop = SSH_ERR_COMMAND_TIMEOUT;
        }
        if (stop && phase == 0) {
            /* the marker line comes first: wait a little for it if it has not yet */
            phase = -1;
            phase_end = now + KILL_STEP_MS;
        }
        if (phase == -1 && x.pid) {
            remote_kill(&x, "TERM");
            phase = 1;
            phase_end = time_mono_ms() + KILL_STEP_MS;
        } else if (phase == -1 && now >= phase_end) {
            break; /* no process id to signal: closing the channel is all there is */
        } else if (phase == 1 && now >= phase_end) {
            remote_kill(&x, "KILL");
            phase = 2;
            phase_end = time_mono_ms() + KILL_STEP_MS;
        } else if (phase == 2 && now >= phase_end) {
            break;
        }
        if (c->broken) {
            rc = ssh_fail(err, SSH_ERR_CHANNEL, c->who, "the connection was lost");
            goto close;
        }
        if (r == 0) {
            int next = 0;
            if (libssh2_keepalive_send(c->s, &next) != 0) {
                /* a send failure shows up on the next read */
            }
            io_wait(c, SLICE_MS);
        }
    }
    lines_finish(&x.out, &o);
    lines_finish(&x.err, &o);
    if (stop == SSH_ERR_CANCELLED) {
        rc = ssh_fail(err, stop, c->who, "the command was cancelled after %.1f s%s",
                      (double)(time_mono_ms() - start) / 1000.0,
                      x.pid ? "" : " (its process id was not known: the channel was closed)");
    } else if (stop == SSH_ERR_COMMAND_TIMEOUT) {
        rc = ssh_fail(err, stop, c->who, "the command did not finish within %d s and was stopped",
                      (o.timeout_ms + 999) / 1000);
    } else {
        rc = SSH_OK;
    }
close:
    channel_close(c, x.ch, time_mono_ms() + KILL_STEP_MS);
    if (eof) {
        char *sig = NULL;
        size_t siglen = 0;
        if (libssh2_channel_get_exit_signal(x.ch, &sig, &siglen, NULL, NULL, NULL, NULL) == 0 &&
            sig) {
            snprintf(res->signal, sizeof(res->signal), "%.*s", (int)siglen, sig);
            libssh2_free(c->s, sig);
        }
        if (!res->signal[0] && rc == SSH_OK) {
            res->exit_status = libssh2_channel_get_exit_status(x.ch);
        }
    }
    channel_free(c, x.ch);
out:
    buf_free(&wrapper);
    free(x.out.buf);
    free(x.err.buf);
    return rc;
}

/* ---------------------------------------------------------------- fan-out */

struct fan {
    size_t n;
    atomic_size_t next;
    void (*fn)(void *arg, size_t i);
    void *arg;
};

static void *
fan_main(void *arg)
{
    struct fan *f = arg;
    for (;;) {
        size_t i = atomic_fetch_add(&f->next, 1);
        if (i >= f->n) {
            break;
        }
        f->fn(f->arg, i);
    }
    return NULL;
}

void
ssh_fan_out(size_t n, size_t threads, void (*fn)(void *arg, size_t i), void *arg)
{
    if (n == 0) {
        return;
    }
    if (threads == 0 || threads > n) {
        threads = n;
    }
    if (threads > SSH_FAN_OUT_MAX_THREADS) {
        threads = SSH_FAN_OUT_MAX_THREADS;
    }
    struct fan f = {.n = n, .fn = fn, .arg = arg};
    atomic_init(&f.next, 0);
    /* the calling thread is one of the workers */
    pthread_t *th = xcalloc(threads, sizeof(*th));
    size_t started = 0;
    for (size_t t = 0; t + 1 < threads; t++) {
        if (pthread_create(&th[t], NULL, fan_main, &f) != 0) {
            break;
        }
        started++;
    }
    fan_main(&f); /* all of the work when no thread could be started */
    for (size_t t = 0; t < started; t++) {
        pthread_join(th[t], NULL);
    }
    free(th);
}
