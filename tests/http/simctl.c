/* simctl: see simctl.h. */
#include "simctl.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <curl/curl.h>

#define SIM_READY_TIMEOUT_MS 20000
#define SIM_MAX_ARGS 64

long long
sim_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
sim_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Reads one line from fd within timeout_ms into a string the caller frees; NULL on EOF,
 * timeout or error. */
static char *
read_line(int fd, int timeout_ms)
{
    size_t cap = 4096;
    size_t len = 0;
    char *line = malloc(cap);
    long long deadline = sim_now_ms() + timeout_ms;
    if (!line) {
        return NULL;
    }
    for (;;) {
        long long left = deadline - sim_now_ms();
        struct pollfd p = {fd, POLLIN, 0};
        if (left <= 0 || poll(&p, 1, (int)left) <= 0) {
            break;
        }
        if (len + 1 >= cap) {
            char *bigger = realloc(line, cap * 2);
            if (!bigger) {
                break;
            }
            line = bigger;
            cap *= 2;
        }
        ssize_t n = read(fd, line + len, 1);
        if (n <= 0) {
            break;
        }
        if (line[len] == '\n') {
            line[len] = '\0';
            return line;
        }
        len++;
    }
    free(line);
    return NULL;
}

static void
copy_str(char *dst, size_t n, const cJSON *obj, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    snprintf(dst, n, "%s", cJSON_IsString(it) ? it->valuestring : "");
}

/* Fills sim from the ready line; returns 0 or -1. */
static int
parse_ready(struct sim *sim, const char *line)
{
    cJSON *j = cJSON_Parse(line);
    const cJSON *servers = cJSON_GetObjectItemCaseSensitive(j, "servers");
    int rc = -1;
    if (!j || !cJSON_IsArray(servers)) {
        goto out;
    }
    copy_str(sim->control, sizeof(sim->control), j, "control");
    const cJSON *s;
    cJSON_ArrayForEach(s, servers)
    {
        if (sim->n_servers == SIM_MAX_SERVERS) {
            break;
        }
        struct sim_server *ss = &sim->servers[sim->n_servers++];
        copy_str(ss->name, sizeof(ss->name), s, "name");
        copy_str(ss->ip, sizeof(ss->ip), s, "ip");
        copy_str(ss->http, sizeof(ss->http), s, "http");
        copy_str(ss->metrics, sizeof(ss->metrics), s, "metrics");
    }
    rc = sim->control[0] ? 0 : -1;
out:
    cJSON_Delete(j);
    return rc;
}

struct sim *
sim_start(const char *args)
{
    const char *bin = getenv("CONSUL_SIM_BIN");
    if (!bin || !*bin) {
        bin = "./build/consul-sim";
    }
    char *copy = strdup(args ? args : "");
    char *argv[SIM_MAX_ARGS + 8];
    int argc = 0;
    argv[argc++] = (char *)bin;
    argv[argc++] = "--http-port";
    argv[argc++] = "0";
    argv[argc++] = "--metrics-port";
    argv[argc++] = "0";
    argv[argc++] = "--exit-on-stdin-eof";
    argv[argc++] = "--quiet";
    for (char *save = NULL, *t = strtok_r(copy, " \t", &save); t && argc < SIM_MAX_ARGS;
         t = strtok_r(NULL, " \t", &save)) {
        argv[argc++] = t;
    }
    argv[argc] = NULL;
    int in[2] = {-1, -1};
    int out[2] = {-1, -1};
    struct sim *sim = calloc(1, sizeof(*sim));
    char *line = NULL;
    if (!sim || !copy || pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) {
        fprintf(stderr, "sim_start: %s\n", strerror(errno));
        goto fail;
    }
    sim->pid = fork();
    if (sim->pid < 0) {
        fprintf(stderr, "sim_start: fork: %s\n", strerror(errno));
        goto fail;
    }
    if (sim->pid == 0) {
        dup2(in[0], STDIN_FILENO);
        dup2(out[1], STDOUT_FILENO);
        execv(bin, argv);
        fprintf(stderr, "sim_start: exec %s: %s\n", bin, strerror(errno));
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    in[0] = out[1] = -1;
    sim->stdin_fd = in[1];
    line = read_line(out[0], SIM_READY_TIMEOUT_MS);
    close(out[0]);
    out[0] = -1;
    if (!line || parse_ready(sim, line) != 0) {
        fprintf(stderr, "sim_start: no ready line from %s (%s)\n", bin, line ? line : "EOF");
        free(line);
        sim_stop(sim);
        free(copy);
        return NULL;
    }
    free(line);
    free(copy);
    return sim;
fail:
    for (int i = 0; i < 2; i++) {
        if (in[i] >= 0) {
            close(in[i]);
        }
        if (out[i] >= 0) {
            close(out[i]);
        }
    }
    free(sim);
    free(copy);
    return NULL;
}

void
sim_stop(struct sim *sim)
{
    (void)sim_stop_rc(sim);
}

int
sim_stop_rc(struct sim *sim)
{
    int rc = 0;
    if (!sim) {
        return 0;
    }
    if (sim->pid > 0) {
        kill(sim->pid, SIGTERM);
        long long deadline = sim_now_ms() + 5000;
        int st = 0;
        while (waitpid(sim->pid, &st, WNOHANG) == 0) {
            if (sim_now_ms() > deadline) {
                fprintf(stderr, "sim_stop: consul-sim ignored SIGTERM for 5 s; killing it\n");
                kill(sim->pid, SIGKILL);
                waitpid(sim->pid, &st, 0);
                break;
            }
            sim_sleep_ms(5);
        }
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "sim_stop: consul-sim exited abnormally (status 0x%x)\n", st);
            rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
    }
    if (sim->stdin_fd > 0) {
        close(sim->stdin_fd);
    }
    free(sim);
    return rc;
}

struct sim_buf {
    char *data;
    size_t len;
};

static size_t
collect(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct sim_buf *b = userdata;
    size_t n = size * nmemb;
    char *p = realloc(b->data, b->len + n + 1);
    if (!p) {
        return 0;
    }
    memcpy(p + b->len, ptr, n);
    b->data = p;
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

int
sim_http(const char *method, const char *url, const char *body, const char *const *headers,
         long *status, char **resp_body, char **resp_headers)
{
    CURL *c = curl_easy_init();
    struct curl_slist *hl = NULL;
    struct sim_buf b = {NULL, 0};
    struct sim_buf h = {NULL, 0};
    if (!c) {
        return CURLE_FAILED_INIT;
    }
    for (size_t i = 0; headers && headers[i]; i++) {
        hl = curl_slist_append(hl, headers[i]);
    }
    hl = curl_slist_append(hl, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L); /* send "/./", "/../" as written */
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L); /* no body follows a HEAD answer */
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &h);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    } else if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
    }
    CURLcode rc = curl_easy_perform(c);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    if (status) {
        *status = code;
    }
    if (resp_body) {
        *resp_body = b.data ? b.data : strdup("");
        b.data = NULL;
    }
    if (resp_headers) {
        *resp_headers = h.data ? h.data : strdup("");
        h.data = NULL;
    }
    free(b.data);
    free(h.data);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    return (int)rc;
}

int
sim_http_get(const char *url, long *status, char **resp_body, char **resp_headers)
{
    return sim_http("GET", url, NULL, NULL, status, resp_body, resp_headers);
}

int
sim_ctl(struct sim *sim, const char *method, const char *path, const char *json_body, long *status,
        char **resp_body)
{
    char url[512];
    snprintf(url, sizeof(url), "%s%s", sim->control, path);
    const char *const hdr[] = {"Content-Type: application/json", NULL};
    return sim_http(method, url, json_body, hdr, status, resp_body, NULL);
}

cJSON *
sim_get_json(const char *url, long *status)
{
    char *body = NULL;
    long st = 0;
    int rc = sim_http_get(url, &st, &body, NULL);
    if (status) {
        *status = st;
    }
    cJSON *j = rc == 0 ? cJSON_Parse(body) : NULL;
    free(body);
    return j;
}

cJSON *
sim_state(struct sim *sim)
{
    char url[512];
    snprintf(url, sizeof(url), "%s/sim/state", sim->control);
    return sim_get_json(url, NULL);
}

char *
sim_header(const char *headers, const char *name)
{
    size_t nlen = strlen(name);
    for (const char *p = headers; p && *p;) {
        const char *eol = strstr(p, "\r\n");
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len > nlen && p[nlen] == ':' && strncasecmp(p, name, nlen) == 0) {
            const char *v = p + nlen + 1;
            while (*v == ' ' || *v == '\t') {
                v++;
            }
            size_t vlen = len - (size_t)(v - p);
            char *out = malloc(vlen + 1);
            if (out) {
                memcpy(out, v, vlen);
                out[vlen] = '\0';
            }
            return out;
        }
        p = eol ? eol + 2 : p + len;
    }
    return NULL;
}

const struct sim_server *
sim_server(const struct sim *sim, const char *name)
{
    for (int i = 0; i < sim->n_servers; i++) {
        if (strcmp(sim->servers[i].name, name) == 0 || strcmp(sim->servers[i].ip, name) == 0) {
            return &sim->servers[i];
        }
    }
    return NULL;
}

int
sim_refused(const char *url)
{
    char ip[64];
    int port = 0;
    if (sscanf(url, "http://%63[0-9.]:%d", ip, &port) != 2) {
        return -1;
    }
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1) {
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    int err = errno;
    close(fd);
    return rc != 0 && err == ECONNREFUSED;
}

int
sim_free_port(const char *ip_base, int n)
{
    struct in_addr base;
    if (inet_pton(AF_INET, ip_base, &base) != 1) {
        return -1;
    }
    for (int attempt = 0; attempt < 50; attempt++) {
        /* let the kernel pick a port on the first address, then check the others */
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr = base};
        socklen_t al = sizeof(a);
        if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
            getsockname(fd, (struct sockaddr *)&a, &al) != 0) {
            if (fd >= 0) {
                close(fd);
            }
            continue;
        }
        int port = ntohs(a.sin_port);
        close(fd);
        int ok = 1;
        for (int i = 0; i < n && ok; i++) {
            struct sockaddr_in b = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
            b.sin_addr.s_addr = htonl(ntohl(base.s_addr) + (uint32_t)i);
            int f2 = socket(AF_INET, SOCK_STREAM, 0);
            int one = 1;
            setsockopt(f2, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
            ok = bind(f2, (struct sockaddr *)&b, sizeof(b)) == 0;
            close(f2);
        }
        if (ok) {
            return port;
        }
    }
    return -1;
}
