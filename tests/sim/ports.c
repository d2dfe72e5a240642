/* ports: with --cluster-ports, each running server agent also listens on its IP's 8300
 * (server RPC) and 8301 (serf LAN, TCP), so that port checks between hosts
 * (`timeout 3 bash -c '</dev/tcp/IP/8300'`, `nc -z`) see what they would see on a real
 * server. Nothing is spoken there: connections are accepted and closed. */
#include "sim.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const int cluster_port[2] = {8300, 8301};

/* A non-blocking listener on ip:port, or -1 (logged). */
static int
listen_on(const char *ip, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, ip, &sa.sin_addr);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 64) != 0) {
        log_error("cannot listen on %s:%d: %s", ip, port, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

void
cluster_ports_sync(struct server *s, bool want)
{
    for (int i = 0; i < 2; i++) {
        if (want && s->cluster_fd[i] < 0) {
            s->cluster_fd[i] = listen_on(s->ip, cluster_port[i]);
        } else if (!want && s->cluster_fd[i] >= 0) {
            close(s->cluster_fd[i]);
            s->cluster_fd[i] = -1;
        }
    }
}

void
cluster_ports_drain(struct server *s)
{
    for (int i = 0; i < 2; i++) {
        int c;
        while (s->cluster_fd[i] >= 0 &&
               (c = accept4(s->cluster_fd[i], NULL, NULL, SOCK_CLOEXEC)) >= 0) {
            close(c);
        }
    }
}
