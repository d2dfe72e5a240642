/* fake-nodes: starts the fake-node harness (tests/nodes/harness.h) from the command line,
 * writes the inventory JSON, and keeps everything running until SIGTERM/SIGINT (or, with
 * --exit-on-stdin-eof, until stdin closes); then stops it and removes its directory. Used by
 * tests/nodes/harness.sh (make demo) and for poking at the stand-ins by hand. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../harness.h"

static int sig_pipe[2] = {-1, -1};

static void
on_signal(int sig)
{
    (void)sig;
    int saved = errno;
    char c = 1;
    (void)!write(sig_pipe[1], &c, 1);
    errno = saved;
}

static void
usage(FILE *f)
{
    fprintf(f, "usage: fake-nodes [options]\n"
               "  --servers N           hosts running a Consul server (default 4)\n"
               "  --spares M            hosts with docker and no Consul yet (default 1)\n"
               "  --ip-base IP          first host's address (default 127.0.0.11)\n"
               "  --speed F             the simulator's speed factor (default 1)\n"
               "  --seed N              the simulator's seed\n"
               "  --ephemeral-ports     agents on ephemeral ports, not 8500/9107/8300/8301\n"
               "  --http-port P         the agents' port instead of 8500\n"
               "  --metrics-port P      the exporters' port instead of 9107\n"
               "  --sim-args \"...\"      more simulator flags (e.g. \"--demo-data --clients 3\")\n"
               "  --image IMAGE         the compose files' image (default consul:1.9.17)\n"
               "  --parent-dir DIR      where the temporary directory goes (default /tmp)\n"
               "  --inventory FILE      write the inventory JSON there (default: stdout)\n"
               "  --exit-on-stdin-eof   stop when stdin closes\n"
               "Needs CONSUL_SIM_BIN (the simulator) and CONSULATE_SRC (the repository).\n");
}

/* Writes text to path through a temporary file and a rename, so a reader never sees a
 * partial inventory. */
static int
write_atomic(const char *path, const char *text)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if (nodes_write_file(tmp, text) != 0) {
        return -1;
    }
    return rename(tmp, path);
}

int
main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"servers", required_argument, NULL, 's'},
        {"spares", required_argument, NULL, 'm'},
        {"ip-base", required_argument, NULL, 'i'},
        {"speed", required_argument, NULL, 'S'},
        {"seed", required_argument, NULL, 'R'},
        {"ephemeral-ports", no_argument, NULL, 'e'},
        {"http-port", required_argument, NULL, 'p'},
        {"metrics-port", required_argument, NULL, 'P'},
        {"sim-args", required_argument, NULL, 'a'},
        {"image", required_argument, NULL, 'I'},
        {"parent-dir", required_argument, NULL, 'D'},
        {"inventory", required_argument, NULL, 'o'},
        {"exit-on-stdin-eof", no_argument, NULL, 'E'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct nodes_opts o = {.servers = 4, .spares = 1, .speed = 1};
    const char *inventory = NULL;
    bool watch_stdin = false;
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 's':
            o.servers = atoi(optarg);
            break;
        case 'm':
            o.spares = atoi(optarg);
            break;
        case 'i':
            o.ip_base = optarg;
            break;
        case 'S':
            o.speed = strtod(optarg, NULL);
            break;
        case 'R':
            o.seed = strtoull(optarg, NULL, 10);
            break;
        case 'e':
            o.ephemeral_ports = true;
            break;
        case 'p':
            o.http_port = atoi(optarg);
            break;
        case 'P':
            o.metrics_port = atoi(optarg);
            break;
        case 'a':
            o.sim_args = optarg;
            break;
        case 'I':
            o.image = optarg;
            break;
        case 'D':
            o.parent_dir = optarg;
            break;
        case 'o':
            inventory = optarg;
            break;
        case 'E':
            watch_stdin = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (o.servers < 1 || o.spares < 0 || o.speed <= 0) {
        usage(stderr);
        return 2;
    }
    if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        perror("fake-nodes: pipe");
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    struct nodes *h = nodes_start(&o);
    if (!h) {
        return 1;
    }
    char *inv = nodes_inventory_json(h);
    int rc = 0;
    if (!inv || (inventory ? write_atomic(inventory, inv) : (printf("%s\n", inv) < 0))) {
        fprintf(stderr, "fake-nodes: cannot write the inventory\n");
        rc = 1;
    }
    fflush(stdout);
    free(inv);
    while (rc == 0) {
        struct pollfd p[2] = {{sig_pipe[0], POLLIN, 0}, {STDIN_FILENO, POLLIN, 0}};
        int n = poll(p, watch_stdin ? 2 : 1, -1);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 || (p[0].revents & POLLIN)) {
            break;
        }
        if (watch_stdin && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
            char tmp[256];
            ssize_t r = read(STDIN_FILENO, tmp, sizeof(tmp));
            if (r <= 0 && !(r < 0 && errno == EINTR)) {
                break;
            }
        }
    }
    nodes_stop(h);
    if (inventory) {
        unlink(inventory);
    }
    return rc;
}
