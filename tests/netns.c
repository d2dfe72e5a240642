/* build/tests/netns: runs a command in a network namespace of its own, with only a loopback
 * interface, brought up (127.0.0.0/8 and ::1). scripts/run-tests.sh runs each test binary
 * through it so that tests can run side by side: each has its own 127.0.0.0/8, so two tests
 * may use the same addresses and the production ports (8500, 9107, 8300, 8301) without
 * meeting each other or a real Consul agent on the developer's machine.
 *
 *   netns --check        exit 0 when a namespace can be made here (root or CAP_SYS_ADMIN)
 *   netns CMD [ARG...]   run CMD in a new one; exit 125 when none can be made
 *
 * No iproute2 needed: the interface is brought up with SIOCSIFFLAGS, as `ip link set lo up`
 * does. */
#include <errno.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static int
loopback_up(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
    int rc = ioctl(fd, SIOCGIFFLAGS, &ifr);
    if (rc == 0) {
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        rc = ioctl(fd, SIOCSIFFLAGS, &ifr);
    }
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

int
main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: netns --check | netns CMD [ARG...]\n");
        return 2;
    }
    if (unshare(CLONE_NEWNET) != 0) {
        if (strcmp(argv[1], "--check") != 0)
            fprintf(stderr, "netns: unshare(CLONE_NEWNET): %s\n", strerror(errno));
        return 125;
    }
    if (loopback_up() != 0) {
        fprintf(stderr, "netns: bringing up lo: %s\n", strerror(errno));
        return 125;
    }
    if (strcmp(argv[1], "--check") == 0)
        return 0;
    execvp(argv[1], argv + 1);
    fprintf(stderr, "netns: %s: %s\n", argv[1], strerror(errno));
    return 127;
}
