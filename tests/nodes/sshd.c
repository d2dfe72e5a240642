/* sshd: real OpenSSH servers for tests (see sshd.h). */
#include "sshd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void
sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static long
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
sshd_run(const char *const *argv, char **out)
{
    int fds[2] = {-1, -1};
    if (out && pipe(fds) != 0) {
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        return -1;
    }
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 0);
        if (out) {
            dup2(fds[1], 1);
            dup2(fds[1], 2);
            close(fds[0]);
            close(fds[1]);
        } else {
            dup2(devnull, 1);
        }
        execvp(argv[0], (char *const *)argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    if (out) {
        close(fds[1]);
        size_t cap = 4096, len = 0;
        char *buf = malloc(cap);
        ssize_t n;
        while (buf && (n = read(fds[0], buf + len, cap - len - 1)) > 0) {
            len += (size_t)n;
            if (cap - len < 2) {
                cap *= 2;
                buf = realloc(buf, cap);
            }
        }
        if (buf) {
            buf[len] = '\0';
        }
        close(fds[0]);
        *out = buf;
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int
sshd_keygen(const char *path, const char *type, const char *passphrase)
{
    char pub[600];
    snprintf(pub, sizeof(pub), "%s.pub", path);
    unlink(path);
    unlink(pub);
    const char *argv[] = {"ssh-keygen", "-q",
                          "-t",         type ? type : "ed25519",
                          "-N",         passphrase ? passphrase : "",
                          "-C",         "consulate-test",
                          "-f",         path,
                          NULL};
    char *out = NULL;
    int rc = sshd_run(argv, &out);
    if (rc != 0) {
        fprintf(stderr, "ssh-keygen -t %s -f %s failed (%d): %s\n", type, path, rc, out ? out : "");
    }
    free(out);
    return rc == 0 ? 0 : -1;
}

int
sshd_fingerprint(const char *pub_path, struct sshd_fp *fp)
{
    const char *argv[] = {"ssh-keygen", "-l", "-f", pub_path, NULL};
    char *out = NULL;
    int rc = sshd_run(argv, &out);
    memset(fp, 0, sizeof(*fp));
    /* "256 SHA256:abc… comment (ED25519)\n" */
    int ok = rc == 0 && out && sscanf(out, "%d %63s", &fp->bits, fp->fingerprint) == 2;
    char *open_paren = out ? strrchr(out, '(') : NULL;
    char *close_paren = out ? strrchr(out, ')') : NULL;
    if (ok && open_paren && close_paren && close_paren > open_paren &&
        (size_t)(close_paren - open_paren - 1) < sizeof(fp->type)) {
        memcpy(fp->type, open_paren + 1, (size_t)(close_paren - open_paren - 1));
    } else {
        ok = 0;
        fprintf(stderr, "ssh-keygen -l -f %s: %s\n", pub_path, out ? out : "(no output)");
    }
    free(out);
    return ok ? 0 : -1;
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* A port on addr nobody listens on now (sshd then binds it; in a test's own network
 * namespace nobody races for it). */
static int
free_port(const char *addr)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    inet_pton(AF_INET, addr, &sa.sin_addr);
    socklen_t sl = sizeof(sa);
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &sl) == 0) {
        port = ntohs(sa.sin_port);
    }
    if (fd >= 0) {
        close(fd);
    }
    return port;
}

static int
write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) {
        return -1;
    }
    size_t len = strlen(text);
    int ok = write(fd, text, len) == (ssize_t)len;
    close(fd);
    return ok ? 0 : -1;
}

static void
print_log(const struct sshd_node *n)
{
    FILE *f = fopen(n->log, "r");
    if (!f) {
        return;
    }
    char line[512];
    fprintf(stderr, "--- %s\n", n->log);
    while (fgets(line, sizeof(line), f)) {
        fputs(line, stderr);
    }
    fclose(f);
}

/* 1 once sshd's log says it listens. */
static int
listening(const struct sshd_node *n)
{
    FILE *f = fopen(n->log, "r");
    if (!f) {
        return 0;
    }
    char line[512];
    int yes = 0;
    while (!yes && fgets(line, sizeof(line), f)) {
        yes = strstr(line, "Server listening on") != NULL;
    }
    fclose(f);
    return yes;
}

/* Writes the config for the current port and runs sshd; waits until it listens. */
static int
launch(struct sshd_node *n, const char *extra)
{
    const char *bin = getenv("SSHD_BIN") ? getenv("SSHD_BIN") : "/usr/sbin/sshd";
    if (geteuid() == 0) {
        /* OpenSSH's privilege separation directory, which systemd would create */
        mkdir("/run/sshd", 0755);
    }
    /* Unless the caller sets the sessions' environment itself: HOME is a directory of this
     * sshd's own, so a session's shell does not read this machine's ~/.bashrc (which may be
     * slow, e.g. pyenv's rehash taking a lock that parallel logins wait on, or print). Only
     * the first SetEnv line counts, so the caller's (with its own HOME) wins. */
    char home[sizeof(n->dir) + 16];
    char env[sizeof(home) + 16] = "";
    if (!extra || !strstr(extra, "SetEnv")) {
        snprintf(home, sizeof(home), "%s/home", n->dir);
        mkdir(home, 0700);
        snprintf(env, sizeof(env), "SetEnv HOME=%s", home);
    }
    char cfg[4096];
    snprintf(cfg, sizeof(cfg),
             "ListenAddress %s:%d\n"
             "HostKey %s\n"
             "AuthorizedKeysFile %s\n"
             "PidFile none\n"
             "UsePAM no\n"
             "StrictModes no\n"
             "PubkeyAuthentication yes\n"
             "PasswordAuthentication no\n"
             "KbdInteractiveAuthentication no\n"
             "PermitRootLogin prohibit-password\n"
             "Subsystem sftp internal-sftp\n"
             "PrintMotd no\n"
             "PrintLastLog no\n"
             "UseDNS no\n"
             "X11Forwarding no\n"
             "AllowTcpForwarding no\n"
             "MaxStartups 64\n"
             "MaxSessions 64\n"
             "LogLevel VERBOSE\n"
             "%s\n"
             "%s\n",
             n->addr, n->port, n->host_key, n->authorized_keys, env, extra ? extra : "");
    if (write_file(n->config, cfg, 0600) != 0) {
        fprintf(stderr, "sshd: cannot write %s\n", n->config);
        return -1;
    }
    /* a fresh log (truncated here, not in the child, so the old "listening" line is gone
     * before we look) */
    int log = open(n->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (log < 0) {
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(log);
        return -1;
    }
    if (pid == 0) {
        /* sshd goes when the test process does, even after a failed assertion */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 0);
        dup2(log, 1);
        dup2(log, 2);
        execl(bin, bin, "-f", n->config, "-D", "-e", (char *)NULL);
        fprintf(stderr, "cannot run %s: %s\n", bin, strerror(errno));
        _exit(127);
    }
    close(log);
    n->pid = pid;
    long deadline = now_ms() + 10000;
    while (now_ms() < deadline) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            n->pid = 0;
            return -2; /* exited: maybe the port was taken */
        }
        if (listening(n)) {
            return 0;
        }
        sleep_ms(20);
    }
    sshd_kill(n);
    return -1;
}

int
sshd_start(struct sshd_node *n, const struct sshd_opts *o)
{
    memset(n, 0, sizeof(*n));
    struct in_addr a;
    if (!o->addr || inet_pton(AF_INET, o->addr, &a) != 1 || (ntohl(a.s_addr) >> 24) != 127) {
        fprintf(stderr, "sshd: %s is not a 127.0.0.0/8 address\n", o->addr ? o->addr : "(null)");
        return -1;
    }
    snprintf(n->addr, sizeof(n->addr), "%s", o->addr);
    snprintf(n->key_type, sizeof(n->key_type), "%s",
             o->host_key_type ? o->host_key_type : "ed25519");
    snprintf(n->dir, sizeof(n->dir), "/tmp/consulate-sshd-XXXXXX");
    if (!mkdtemp(n->dir)) {
        perror("sshd: mkdtemp");
        return -1;
    }
    snprintf(n->config, sizeof(n->config), "%s/sshd_config", n->dir);
    snprintf(n->host_key, sizeof(n->host_key), "%s/host_key", n->dir);
    snprintf(n->host_key_pub, sizeof(n->host_key_pub), "%s/host_key.pub", n->dir);
    snprintf(n->authorized_keys, sizeof(n->authorized_keys), "%s/authorized_keys", n->dir);
    snprintf(n->log, sizeof(n->log), "%s/sshd.log", n->dir);
    char *ak = NULL;
    if (o->authorized_key) {
        FILE *f = fopen(o->authorized_key, "r");
        char line[16384];
        if (!f || !fgets(line, sizeof(line), f)) {
            fprintf(stderr, "sshd: cannot read %s\n", o->authorized_key);
            if (f) {
                fclose(f);
            }
            goto fail;
        }
        fclose(f);
        ak = strdup(line);
    }
    if (write_file(n->authorized_keys, ak ? ak : "", 0600) != 0 ||
        sshd_keygen(n->host_key, n->key_type, NULL) != 0) {
        goto fail;
    }
    free(ak);
    ak = NULL;
    /* the extra lines are kept in the directory for restarts */
    char extra_path[400];
    snprintf(extra_path, sizeof(extra_path), "%s/extra_config", n->dir);
    if (write_file(extra_path, o->extra_config ? o->extra_config : "", 0600) != 0) {
        goto fail;
    }
    for (int attempt = 0; attempt < 5; attempt++) {
        n->port = o->port ? o->port : free_port(n->addr);
        int rc = launch(n, o->extra_config);
        if (rc == 0) {
            return 0;
        }
        if (rc != -2 || o->port) {
            break;
        }
    }
    fprintf(stderr, "sshd: could not start on %s:%d\n", n->addr, n->port);
    print_log(n);
fail:
    free(ak);
    sshd_stop(n);
    return -1;
}

void
sshd_kill(struct sshd_node *n)
{
    if (n->pid <= 0) {
        return;
    }
    kill(n->pid, SIGTERM);
    long deadline = now_ms() + 5000;
    int status;
    while (waitpid(n->pid, &status, WNOHANG) == 0) {
        if (now_ms() > deadline) {
            kill(n->pid, SIGKILL);
            waitpid(n->pid, &status, 0);
            break;
        }
        sleep_ms(10);
    }
    n->pid = 0;
}

int
sshd_restart(struct sshd_node *n, const char *new_key_type)
{
    sshd_kill(n);
    if (new_key_type) {
        snprintf(n->key_type, sizeof(n->key_type), "%s", new_key_type);
        if (sshd_keygen(n->host_key, n->key_type, NULL) != 0) {
            return -1;
        }
    }
    char extra_path[400];
    snprintf(extra_path, sizeof(extra_path), "%s/extra_config", n->dir);
    FILE *f = fopen(extra_path, "r");
    char extra[4096] = "";
    if (f) {
        size_t got = fread(extra, 1, sizeof(extra) - 1, f);
        extra[got] = '\0';
        fclose(f);
    }
    if (launch(n, extra) != 0) {
        fprintf(stderr, "sshd: could not restart on %s:%d\n", n->addr, n->port);
        print_log(n);
        return -1;
    }
    return 0;
}

void
sshd_stop(struct sshd_node *n)
{
    sshd_kill(n);
    if (n->dir[0]) {
        nftw(n->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        n->dir[0] = '\0';
    }
}
