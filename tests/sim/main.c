/* consul-sim main: options, the initial datacenter, the ticker thread, the ready line, and a
 * clean exit on SIGTERM/SIGINT (or stdin EOF with --exit-on-stdin-eof). */
#include "sim.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void
usage(FILE *f)
{
    fprintf(f, "usage: consul-sim [options]\n"
               "  --servers N            server agents (default 3)\n"
               "  --clients M            client agents k8s-node-1..M on 127.0.1.x (default 0)\n"
               "  --ip-base IP           first server IP (default 127.0.0.11)\n"
               "  --http-port P          agent HTTP port on every server IP (default 8500; 0 = "
               "ephemeral)\n"
               "  --metrics-port P       exporter port on every server IP (default 9107; 0 = "
               "ephemeral)\n"
               "  --control IP:PORT      control API address (default 127.0.0.1:0)\n"
               "  --dc NAME              datacenter (default dc1)\n"
               "  --speed F              divides every simulated delay (default 1)\n"
               "  --seed N               seed of the random timeouts (default: from the clock)\n"
               "  --cluster-ports        also listen on 8300 and 8301 on every running server\n"
               "  --stabilization-ms MS  autopilot server stabilization time (default 10000)\n"
               "  --token SECRET         require this ACL token on every agent request\n"
               "  --demo-data            register a few services (one failing) and KV keys\n"
               "  --exit-on-stdin-eof    exit when stdin reaches end of file\n"
               "  --quiet                no agent logs on stderr\n");
}

static int
parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        return -1;
    }
    *out = v;
    return 0;
}

/* Parses argv into opt; returns 0, 1 for --help, -1 on a bad option (message printed). */
static int
parse_args(int argc, char **argv, struct dc_options *opt)
{
    static const struct option longopts[] = {
        {"servers", required_argument, NULL, 's'},
        {"clients", required_argument, NULL, 'c'},
        {"ip-base", required_argument, NULL, 'i'},
        {"http-port", required_argument, NULL, 'p'},
        {"metrics-port", required_argument, NULL, 'm'},
        {"control", required_argument, NULL, 'C'},
        {"dc", required_argument, NULL, 'd'},
        {"speed", required_argument, NULL, 'S'},
        {"stabilization-ms", required_argument, NULL, 'T'},
        {"seed", required_argument, NULL, 'R'},
        {"cluster-ports", no_argument, NULL, 'P'},
        {"token", required_argument, NULL, 't'},
        {"demo-data", no_argument, NULL, 'D'},
        {"exit-on-stdin-eof", no_argument, NULL, 'E'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    memset(opt, 0, sizeof(*opt));
    opt->servers = 3;
    snprintf(opt->ip_base, sizeof(opt->ip_base), "127.0.0.11");
    opt->http_port = 8500;
    opt->metrics_port = 9107;
    snprintf(opt->control, sizeof(opt->control), "127.0.0.1:0");
    snprintf(opt->name, sizeof(opt->name), "dc1");
    opt->speed = 1;
    opt->stabilization_ms = 10000;
    opt->seed = (uint64_t)time_now_ms() ^ ((uint64_t)getpid() << 32);
    int c;
    long v;
    char *end;
    struct in_addr a;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 's':
        case 'c':
            if (parse_int(optarg, c == 's' ? 1 : 0, c == 's' ? 200 : 5000, &v) != 0) {
                fprintf(stderr, "consul-sim: bad --%s\n", c == 's' ? "servers" : "clients");
                return -1;
            }
            *(c == 's' ? &opt->servers : &opt->clients) = (int)v;
            break;
        case 'i':
            if (inet_pton(AF_INET, optarg, &a) != 1 || (ntohl(a.s_addr) >> 24) != 127) {
                fprintf(stderr, "consul-sim: --ip-base must be an IPv4 address in 127/8\n");
                return -1;
            }
            snprintf(opt->ip_base, sizeof(opt->ip_base), "%s", optarg);
            break;
        case 'p':
        case 'm':
            if (parse_int(optarg, 0, 65535, &v) != 0) {
                fprintf(stderr, "consul-sim: bad port %s\n", optarg);
                return -1;
            }
            *(c == 'p' ? &opt->http_port : &opt->metrics_port) = (int)v;
            break;
        case 'C':
            if (!strchr(optarg, ':') || strlen(optarg) >= sizeof(opt->control)) {
                fprintf(stderr, "consul-sim: --control must be IP:PORT\n");
                return -1;
            }
            snprintf(opt->control, sizeof(opt->control), "%s", optarg);
            break;
        case 'd':
            if (!*optarg || strlen(optarg) >= sizeof(opt->name)) {
                fprintf(stderr, "consul-sim: bad --dc\n");
                return -1;
            }
            snprintf(opt->name, sizeof(opt->name), "%s", optarg);
            break;
        case 'S':
            errno = 0;
            opt->speed = strtod(optarg, &end);
            if (errno || end == optarg || *end || opt->speed <= 0 || opt->speed > 10000) {
                fprintf(stderr, "consul-sim: --speed must be > 0 and <= 10000\n");
                return -1;
            }
            break;
        case 'T':
            if (parse_int(optarg, 0, 86400000, &v) != 0) {
                fprintf(stderr, "consul-sim: bad --stabilization-ms\n");
                return -1;
            }
            opt->stabilization_ms = v;
            break;
        case 'R':
            errno = 0;
            opt->seed = strtoull(optarg, &end, 10);
            if (errno || end == optarg || *end || *optarg == '-') {
                fprintf(stderr, "consul-sim: --seed must be a non-negative integer\n");
                return -1;
            }
            break;
        case 'P':
            opt->cluster_ports = true;
            break;
        case 't':
            free(opt->token);
            opt->token = xstrdup(optarg);
            break;
        case 'D':
            opt->demo_data = true;
            break;
        case 'E':
            opt->exit_on_stdin_eof = true;
            break;
        case 'q':
            opt->quiet = true;
            break;
        case 'h':
            usage(stdout);
            return 1;
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "consul-sim: unexpected argument %s\n", argv[optind]);
        return -1;
    }
    return 0;
}

/* The IPv4 address base + n as text. */
static void
ip_add(const char *base, uint32_t n, char out[16])
{
    struct in_addr a;
    inet_pton(AF_INET, base, &a);
    a.s_addr = htonl(ntohl(a.s_addr) + n);
    inet_ntop(AF_INET, &a, out, 16);
}

static int
create_servers(struct dc *dc)
{
    struct strlist all = {0};
    char ip[16];
    for (int i = 0; i < dc->opt.servers; i++) {
        ip_add(dc->opt.ip_base, (uint32_t)i, ip);
        strlist_add(&all, ip);
    }
    int rc = 0;
    for (int i = 0; i < dc->opt.servers; i++) {
        char name[32];
        char err[256];
        snprintf(name, sizeof(name), "consul-%d", i + 1);
        struct server *s = server_new(dc, name, all.v[i], &all);
        s->running = true;
        s->host_up = true;
        if (listener_sync(s, err, sizeof(err)) != 0) {
            fprintf(stderr, "consul-sim: %s\n", err);
            listener_stop_all(s);
            server_free(s);
            rc = -1;
            break;
        }
        pthread_mutex_lock(&dc->mu);
        dc_server_add(dc, s, true);
        pthread_mutex_unlock(&dc->mu);
    }
    strlist_free(&all);
    return rc;
}

/* The model's clock: every 5 ms, timeouts, joins, elections and promotions. It never waits
 * for a listener, so simulated time keeps its pace while one stops. */
static void *
ticker_main(void *arg)
{
    struct dc *dc = arg;
    while (!atomic_load(&dc->shutdown)) {
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&dc->mu);
        dc_tick(dc);
        pthread_mutex_unlock(&dc->mu);
    }
    return NULL;
}

/* Starts and stops listeners to match the model (a civetweb stop can take a few hundred
 * ms), and drains the cluster-port listeners. */
static void *
syncer_main(void *arg)
{
    struct dc *dc = arg;
    char err[256];
    while (!atomic_load(&dc->shutdown)) {
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&dc->mu);
        size_t n = dc->n_servers;
        struct server **copy = xcalloc(n + 1, sizeof(*copy));
        memcpy(copy, dc->servers, n * sizeof(*copy));
        pthread_mutex_unlock(&dc->mu);
        for (size_t i = 0; i < n && !atomic_load(&dc->shutdown); i++) {
            listener_sync(copy[i], err, sizeof(err));
            pthread_mutex_lock(&copy[i]->lmu);
            cluster_ports_drain(copy[i]);
            pthread_mutex_unlock(&copy[i]->lmu);
        }
        free(copy);
    }
    return NULL;
}

static void
print_ready(struct dc *dc)
{
    cJSON *o = cJSON_CreateObject();
    char url[80];
    snprintf(url, sizeof(url), "http://%.*s:%d",
             (int)(strrchr(dc->opt.control, ':') - dc->opt.control), dc->opt.control,
             dc->control_port);
    cJSON_AddStringToObject(o, "control", url);
    char seed[24];
    snprintf(seed, sizeof(seed), "%llu", (unsigned long long)dc->opt.seed);
    cJSON_AddStringToObject(o, "seed", seed);
    cJSON *a = cJSON_AddArrayToObject(o, "servers");
    pthread_mutex_lock(&dc->mu);
    for (size_t i = 0; i < dc->n_servers; i++) {
        const struct server *s = dc->servers[i];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "name", s->name);
        cJSON_AddStringToObject(e, "ip", s->ip);
        snprintf(url, sizeof(url), "http://%s:%d", s->ip, s->http_port);
        cJSON_AddStringToObject(e, "http", url);
        snprintf(url, sizeof(url), "http://%s:%d", s->ip, s->metrics_port);
        cJSON_AddStringToObject(e, "metrics", url);
        cJSON_AddItemToArray(a, e);
    }
    pthread_mutex_unlock(&dc->mu);
    char *line = json_print(o);
    cJSON_Delete(o);
    printf("%s\n", line);
    fflush(stdout);
    free(line);
}

static int sig_pipe[2] = {-1, -1};

/* Signal handler: wakes the main thread through the self-pipe. */
static void
on_signal(int sig)
{
    (void)sig;
    int saved = errno;
    char c = 1;
    (void)!write(sig_pipe[1], &c, 1);
    errno = saved;
}

/* Blocks until SIGTERM/SIGINT, or stdin EOF when asked to watch it. */
static void
wait_for_exit(int sfd, bool watch_stdin)
{
    for (;;) {
        struct pollfd p[2] = {{sfd, POLLIN, 0}, {STDIN_FILENO, POLLIN, 0}};
        int n = poll(p, watch_stdin ? 2 : 1, -1);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 || (p[0].revents & POLLIN)) {
            return;
        }
        if (watch_stdin && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
            char tmp[512];
            ssize_t r = read(STDIN_FILENO, tmp, sizeof(tmp));
            if (r <= 0 && !(r < 0 && errno == EINTR)) {
                return;
            }
        }
    }
}

static void *
stop_server_main(void *arg)
{
    listener_stop_all(arg);
    return NULL;
}

/* Stops every listener (in parallel, each civetweb stop can take a few hundred ms). */
static void
stop_all(struct dc *dc)
{
    pthread_t *t = xcalloc(dc->n_servers + 1, sizeof(*t));
    bool *started = xcalloc(dc->n_servers + 1, sizeof(*started));
    for (size_t i = 0; i < dc->n_servers; i++) {
        started[i] = pthread_create(&t[i], NULL, stop_server_main, dc->servers[i]) == 0;
        if (!started[i]) {
            listener_stop_all(dc->servers[i]);
        }
    }
    web_stop(dc->control_ctx, dc->control_ip);
    dc->control_ctx = NULL;
    for (size_t i = 0; i < dc->n_servers; i++) {
        if (started[i]) {
            pthread_join(t[i], NULL);
        }
    }
    free(started);
    free(t);
}

int
main(int argc, char **argv)
{
    struct dc_options opt;
    static struct dc dc;
    int rc = parse_args(argc, argv, &opt);
    if (rc != 0) {
        free(opt.token);
        return rc > 0 ? 0 : 2;
    }
    log_set_quiet(opt.quiet);
    signal(SIGPIPE, SIG_IGN);
    if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        perror("consul-sim: pipe");
        free(opt.token);
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    mg_init_library(0);
    dc_init(&dc, &opt);
    rc = 1;
    if (create_servers(&dc) != 0) {
        goto out;
    }
    pthread_mutex_lock(&dc.mu);
    dc_elect_now(&dc); /* the initial cluster starts formed, with a leader */
    for (int i = 0; i < opt.clients; i++) {
        char name[32];
        char ip[16];
        snprintf(name, sizeof(name), "k8s-node-%d", i + 1);
        ip_add("127.0.1.1", (uint32_t)i, ip);
        dc_client_add(&dc, name, ip);
    }
    if (opt.demo_data) {
        dc_demo_data(&dc);
    }
    pthread_mutex_unlock(&dc.mu);
    char *cip = dc.control_ip;
    snprintf(cip, sizeof(dc.control_ip), "%.*s", (int)(strrchr(opt.control, ':') - opt.control),
             opt.control);
    long cport;
    char err[256];
    if (parse_int(strrchr(opt.control, ':') + 1, 0, 65535, &cport) != 0) {
        fprintf(stderr, "consul-sim: bad --control port\n");
        goto out;
    }
    dc.control_ctx =
        web_start(cip, (int)cport, 16, control_handler, &dc, &dc.control_port, err, sizeof(err));
    if (!dc.control_ctx) {
        fprintf(stderr, "consul-sim: control: %s\n", err);
        goto out;
    }
    if (pthread_create(&dc.ticker, NULL, ticker_main, &dc) != 0) {
        fprintf(stderr, "consul-sim: cannot start the ticker thread\n");
        goto out;
    }
    dc.ticker_started = true;
    if (pthread_create(&dc.syncer, NULL, syncer_main, &dc) != 0) {
        fprintf(stderr, "consul-sim: cannot start the listener thread\n");
        goto out;
    }
    dc.syncer_started = true;
    print_ready(&dc);
    wait_for_exit(sig_pipe[0], opt.exit_on_stdin_eof);
    rc = 0;
out:
    atomic_store(&dc.shutdown, true);
    pthread_mutex_lock(&dc.mu);
    pthread_cond_broadcast(&dc.cond);
    pthread_mutex_unlock(&dc.mu);
    if (dc.ticker_started) {
        pthread_join(dc.ticker, NULL);
    }
    if (dc.syncer_started) {
        pthread_join(dc.syncer, NULL);
    }
    stop_all(&dc);
    dc_free(&dc);
    close(sig_pipe[0]);
    close(sig_pipe[1]);
    mg_exit_library();
    return rc;
}
