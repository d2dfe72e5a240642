/* harness: fake Consul server hosts (see harness.h and tests/nodes/README.md). */
#include "harness.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#define DEFAULT_IMAGE "consul:1.9.17"
#define DEFAULT_DOCKER "20.10.24+dfsg1"
#define DEFAULT_COMPOSE "1.29.2"
#define COMPOSE_SUBDIR "mnt/opt/docker-compose/consul"
#define DATA_SUBDIR "mnt/var/lib/container/consul"

/* The tools a fault can hit besides the docker stand-ins: wrapped, they run the real tool
 * unless the node has faults. */
static const char *const wrapped_tools[] = {"mv", "cp", "cat", "ls", "mkdir", "rm"};

int
nodes_write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        return -1;
    }
    size_t len = strlen(text);
    int ok = write(fd, text, len) == (ssize_t)len;
    close(fd);
    return ok ? 0 : -1;
}

char *
nodes_read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        return NULL;
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += got;
        if (cap - len < 2) {
            cap *= 2;
            char *bigger = realloc(buf, cap);
            if (!bigger) {
                free(buf);
                buf = NULL;
            }
            buf = bigger;
        }
    }
    fclose(f);
    if (buf) {
        buf[len] = '\0';
    }
    return buf;
}

static int
mkdir_p(const char *path)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST) {
                return -1;
            }
            *p = '/';
        }
    }
    return mkdir(tmp, 0755) == 0 || errno == EEXIST ? 0 : -1;
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

/* base + n as a 127.0.0.0/8 address; -1 when it leaves 127.0.0.0/8 or hits .0/.255. */
static int
ip_add(const char *base, int n, char out[16])
{
    struct in_addr a;
    if (inet_pton(AF_INET, base, &a) != 1) {
        return -1;
    }
    uint32_t v = ntohl(a.s_addr) + (uint32_t)n;
    if ((v >> 24) != 127 || (v & 0xff) == 0 || (v & 0xff) == 255) {
        return -1;
    }
    a.s_addr = htonl(v);
    inet_ntop(AF_INET, &a, out, 16);
    return 0;
}

/* Whether a path can go inside single quotes in a generated script. */
static bool
quotable(const char *s)
{
    return strchr(s, '\'') == NULL && strchr(s, '\n') == NULL;
}

static int
write_script(const char *path, const char *text)
{
    if (nodes_write_file(path, text) != 0) {
        return -1;
    }
    return chmod(path, 0755);
}

/* The stand-ins in <root>/bin. */
static int
write_wrappers(const struct nodes *h, const struct nodes_node *n)
{
    char path[PATH_MAX];
    char text[4 * PATH_MAX];
    static const char *const tools[] = {"docker", "docker-compose", "hostname"};
    for (size_t i = 0; i < sizeof(tools) / sizeof(tools[0]); i++) {
        snprintf(path, sizeof(path), "%s/bin/%s", n->root, tools[i]);
        /* hostname without arguments and without faults prints the file itself, as fast as
         * the real one (a python start costs more than the commands consulate measures) */
        char fast[PATH_MAX + 200] = "";
        if (strcmp(tools[i], "hostname") == 0) {
            snprintf(fast, sizeof(fast),
                     "[ $# -eq 0 ] && [ ! -s '%s/faults' ] && [ -s '%s' ] && exec /bin/cat '%s'\n",
                     n->fake_dir, n->hostname_file, n->hostname_file);
        }
        int len = snprintf(
            text, sizeof(text),
            "#!/bin/sh\n# fake node %s: %s stand-in (tests/nodes/standin.py)\n%s"
            "exec /usr/bin/python3 -S '%s/tests/nodes/standin.py' --root '%s' %s \"$@\"\n",
            n->name, tools[i], fast, h->src, n->root, tools[i]);
        if (len < 0 || (size_t)len >= sizeof(text) || write_script(path, text) != 0) {
            return -1;
        }
    }
    for (size_t i = 0; i < sizeof(wrapped_tools) / sizeof(wrapped_tools[0]); i++) {
        char real[64];
        snprintf(real, sizeof(real), "/bin/%s", wrapped_tools[i]);
        if (access(real, X_OK) != 0) {
            snprintf(real, sizeof(real), "/usr/bin/%s", wrapped_tools[i]);
        }
        snprintf(path, sizeof(path), "%s/bin/%s", n->root, wrapped_tools[i]);
        snprintf(text, sizeof(text),
                 "#!/bin/sh\n# fake node %s: the real %s unless a fault says otherwise\n"
                 "[ -s '%s/faults' ] || exec %s \"$@\"\n"
                 "exec /usr/bin/python3 -S '%s/tests/nodes/standin.py' --root '%s' --exec %s "
                 "%s \"$@\"\n",
                 n->name, wrapped_tools[i], n->fake_dir, real, h->src, n->root, real,
                 wrapped_tools[i]);
        if (write_script(path, text) != 0) {
            return -1;
        }
    }
    return 0;
}

/* <root>/.fake/node.json with the given versions. */
static int
write_node_json(const struct nodes *h, const struct nodes_node *n, const char *docker,
                const char *compose)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", n->name);
    cJSON_AddStringToObject(o, "ip", n->address);
    cJSON_AddStringToObject(o, "control", h->sim->control);
    cJSON_AddStringToObject(o, "cluster_id", h->cluster_id);
    cJSON_AddStringToObject(o, "docker_version", docker);
    cJSON_AddStringToObject(o, "compose_version", compose);
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/node.json", n->fake_dir);
    int rc = text ? nodes_write_file(path, text) : -1;
    free(text);
    return rc;
}

char *
nodes_compose_text(const struct nodes *h, const char *bind, const char *const *join, int n_join)
{
    size_t cap = 2048 + (size_t)n_join * 64;
    char *out = malloc(cap);
    if (!out) {
        return NULL;
    }
    size_t len = (size_t)snprintf(
        out, cap,
        "# Consul server, as delivered: /mnt/opt/docker-compose/consul/docker-compose.yaml\n"
        "# Data lives in /mnt/var/lib/container/consul. Host networking: 8500 (HTTP API), 9107 "
        "(exporter metrics).\n"
        "version: \"3.7\"\n"
        "services:\n"
        "  consul:\n"
        "    image: %s\n"
        "    container_name: consul\n"
        "    restart: always\n"
        "    network_mode: host\n"
        "    volumes:\n"
        "      - /mnt/var/lib/container/consul:/consul/data\n"
        "    command: \"agent -server -ui -client=0.0.0.0 -bind=%s -bootstrap-expect=3 "
        "-data-dir=/consul/data",
        h && h->image[0] ? h->image : DEFAULT_IMAGE, bind);
    for (int i = 0; i < n_join; i++) {
        len += (size_t)snprintf(out + len, cap - len, " \\\n      -retry-join=%s", join[i]);
    }
    snprintf(out + len, cap - len,
             "\"\n"
             "  consul-exporter:\n"
             "    image: prom/consul-exporter:v0.8.0\n"
             "    container_name: consul-exporter\n"
             "    restart: always\n"
             "    network_mode: host\n"
             "    command: --consul.server=127.0.0.1:8500 --web.listen-address=:9107\n"
             "    depends_on:\n"
             "      - consul\n");
    return out;
}

/* Starts a shell command as the node's sessions would run it; returns the pid and the read
 * end of its output in *fd, or -1. */
static pid_t
spawn(const struct nodes_node *n, const char *command, int *fd)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDONLY);
        dup2(devnull, 0);
        dup2(p[1], 1);
        dup2(p[1], 2);
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/bin:/usr/sbin:/usr/bin:/sbin:/bin", n->root);
        setenv("PATH", path, 1);
        if (chdir(n->root) != 0) {
            _exit(127);
        }
        execl("/bin/sh", "sh", "-c", command, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    *fd = p[0];
    return pid;
}

/* Reads the child's output and waits for it; returns its exit status or -1. */
static int
collect(pid_t pid, int fd, char **out)
{
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    ssize_t got;
    while (buf && (got = read(fd, buf + len, cap - len - 1)) != 0) {
        if (got < 0) {
            if (errno == EINTR) {
                continue;
            }
            break;
        }
        len += (size_t)got;
        if (cap - len < 2) {
            cap *= 2;
            char *bigger = realloc(buf, cap);
            if (!bigger) {
                free(buf);
            }
            buf = bigger;
        }
    }
    close(fd);
    if (buf) {
        buf[len] = '\0';
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (out) {
        *out = buf;
    } else {
        free(buf);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int
nodes_run(const struct nodes *h, const struct nodes_node *n, const char *command, char **out)
{
    (void)h;
    int fd;
    pid_t pid = spawn(n, command, &fd);
    if (pid < 0) {
        if (out) {
            *out = NULL;
        }
        return -1;
    }
    return collect(pid, fd, out);
}

/* The directories and files of one node. */
static int
make_node(struct nodes *h, struct nodes_node *n, const struct nodes_opts *o,
          const char *const *join, int n_join)
{
    char path[PATH_MAX];
    /* built in a local first: n lives inside h, and GCC cannot tell the buffers apart */
    char root[sizeof(n->root)];
    snprintf(root, sizeof(root), "%s/nodes/%s", h->dir, n->name);
    memcpy(n->root, root, sizeof(root));
    snprintf(n->compose_dir, sizeof(n->compose_dir), "%s/%s", root, COMPOSE_SUBDIR);
    snprintf(n->compose_file, sizeof(n->compose_file), "%s/%s/docker-compose.yaml", root,
             COMPOSE_SUBDIR);
    snprintf(n->data_dir, sizeof(n->data_dir), "%s/%s", root, DATA_SUBDIR);
    snprintf(n->hostname_file, sizeof(n->hostname_file), "%s/etc/hostname", root);
    snprintf(n->fake_dir, sizeof(n->fake_dir), "%s/.fake", root);
    snprintf(path, sizeof(path), "%s/bin", n->root);
    if (mkdir_p(path) != 0 || mkdir_p(n->compose_dir) != 0 || mkdir_p(n->data_dir) != 0 ||
        mkdir_p(n->fake_dir) != 0) {
        fprintf(stderr, "nodes: cannot create %s: %s\n", n->root, strerror(errno));
        return -1;
    }
    snprintf(path, sizeof(path), "%s/root", n->root);
    if (mkdir_p(path) != 0) {
        fprintf(stderr, "nodes: cannot create %s: %s\n", path, strerror(errno));
        return -1;
    }
    snprintf(path, sizeof(path), "%s/etc", n->root);
    char hn[80];
    snprintf(hn, sizeof(hn), "%s\n", n->name);
    if (mkdir_p(path) != 0 || nodes_write_file(n->hostname_file, hn) != 0 ||
        write_node_json(h, n, o->docker_version ? o->docker_version : DEFAULT_DOCKER,
                        o->compose_version ? o->compose_version : DEFAULT_COMPOSE) != 0 ||
        write_wrappers(h, n) != 0) {
        fprintf(stderr, "nodes: cannot write the files of %s\n", n->name);
        return -1;
    }
    if (n->server) {
        char *text = nodes_compose_text(h, n->address, join, n_join);
        int rc = text ? nodes_write_file(n->compose_file, text) : -1;
        free(text);
        if (rc != 0) {
            fprintf(stderr, "nodes: cannot write %s\n", n->compose_file);
            return -1;
        }
    }
    return 0;
}

static int
start_sshd(struct nodes *h, struct nodes_node *n)
{
    char pub[PATH_MAX];
    char extra[PATH_MAX + 128];
    snprintf(pub, sizeof(pub), "%s.pub", h->client_key);
    /* HOME is the host's own home directory: the shell of a session reads <root>/root/.bashrc
     * (none), not the .bashrc of this machine's user, which may be slow or print things and
     * would turn `timeout 3 bash -c '</dev/tcp/…'` into a timeout */
    snprintf(extra, sizeof(extra), "SetEnv PATH=%s/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=%s/root",
             n->root, n->root);
    struct sshd_opts so = {
        .addr = n->address,
        .authorized_key = pub,
        .host_key_type = "ed25519",
        .extra_config = extra,
    };
    if (sshd_start(&n->sshd, &so) != 0) {
        return -1;
    }
    return sshd_fingerprint(n->sshd.host_key_pub, &n->host_key);
}

/* The simulator's flags for o. */
static void
sim_args(const struct nodes_opts *o, int servers, const char *base, char *out, size_t len)
{
    int w = snprintf(out, len, "--servers %d --ip-base %s --speed %g", servers, base,
                     o->speed > 0 ? o->speed : 1.0);
    if (o->seed) {
        w += snprintf(out + w, len - (size_t)w, " --seed %llu", o->seed);
    }
    if (!o->ephemeral_ports) {
        w += snprintf(out + w, len - (size_t)w, " --http-port %d --metrics-port %d --cluster-ports",
                      o->http_port > 0 ? o->http_port : 8500,
                      o->metrics_port > 0 ? o->metrics_port : 9107);
    }
    if (o->sim_args) {
        snprintf(out + w, len - (size_t)w, " %s", o->sim_args);
    }
}

/* Brings up the consul containers of the server hosts (each adopts the server the simulator
 * started with), in parallel. */
static int
adopt_servers(struct nodes *h)
{
    pid_t pid[NODES_MAX];
    int fd[NODES_MAX];
    int rc = 0;
    for (int i = 0; i < h->n; i++) {
        pid[i] = -1;
        if (!h->node[i].server) {
            continue;
        }
        char cmd[PATH_MAX + 64];
        snprintf(cmd, sizeof(cmd), "docker-compose -f '%s' up -d", h->node[i].compose_file);
        pid[i] = spawn(&h->node[i], cmd, &fd[i]);
        if (pid[i] < 0) {
            rc = -1;
        }
    }
    for (int i = 0; i < h->n; i++) {
        if (pid[i] < 0) {
            continue;
        }
        char *out = NULL;
        int st = collect(pid[i], fd[i], &out);
        if (st != 0) {
            fprintf(stderr, "nodes: docker-compose up -d on %s failed (%d):\n%s\n", h->node[i].name,
                    st, out ? out : "");
            rc = -1;
        }
        free(out);
    }
    return rc;
}

struct nodes *
nodes_start(const struct nodes_opts *opts)
{
    struct nodes_opts o = opts ? *opts : (struct nodes_opts){0};
    if (o.servers <= 0) {
        o.servers = 4;
    }
    const char *base = o.ip_base ? o.ip_base : "127.0.0.11";
    if (o.servers + o.spares > NODES_MAX - 1 || o.spares < 0) {
        fprintf(stderr, "nodes: at most %d hosts\n", NODES_MAX - 1);
        return NULL;
    }
    struct nodes *h = calloc(1, sizeof(*h));
    if (!h) {
        return NULL;
    }
    h->n = o.servers + o.spares;
    for (int i = 0; i < h->n; i++) {
        struct nodes_node *n = &h->node[i];
        snprintf(n->name, sizeof(n->name), "consul-%d", i + 1);
        n->server = i < o.servers;
        if (ip_add(base, i, n->address) != 0) {
            fprintf(stderr, "nodes: %s + %d is not a usable 127.0.0.0/8 address\n", base, i);
            free(h);
            return NULL;
        }
    }
    const char *src = getenv("CONSULATE_SRC");
    if (!realpath(src && *src ? src : ".", h->src) || !quotable(h->src)) {
        fprintf(stderr, "nodes: cannot resolve CONSULATE_SRC\n");
        free(h);
        return NULL;
    }
    char probe[PATH_MAX];
    snprintf(probe, sizeof(probe), "%s/tests/nodes/standin.py", h->src);
    if (access(probe, R_OK) != 0) {
        fprintf(stderr, "nodes: %s not found (set CONSULATE_SRC to the repository)\n", probe);
        free(h);
        return NULL;
    }
    snprintf(h->dir, sizeof(h->dir), "%s/consulate-nodes-XXXXXX",
             o.parent_dir ? o.parent_dir : "/tmp");
    if (!mkdtemp(h->dir) || !quotable(h->dir)) {
        fprintf(stderr, "nodes: mkdtemp %s: %s\n", h->dir, strerror(errno));
        free(h);
        return NULL;
    }
    snprintf(h->image, sizeof(h->image), "%s", o.image ? o.image : DEFAULT_IMAGE);
    struct passwd *pw = getpwuid(geteuid());
    snprintf(h->ssh_user, sizeof(h->ssh_user), "%s", pw ? pw->pw_name : "root");
    snprintf(h->client_key, sizeof(h->client_key), "%s/id_ed25519", h->dir);
    if (sshd_keygen(h->client_key, "ed25519", NULL) != 0 || chmod(h->client_key, 0600) != 0) {
        goto fail;
    }
    char args[1024];
    sim_args(&o, o.servers, base, args, sizeof(args));
    h->sim = sim_start(args);
    if (!h->sim) {
        goto fail;
    }
    cJSON *st = sim_state(h->sim);
    const cJSON *cid = cJSON_GetObjectItemCaseSensitive(st, "cluster_id");
    snprintf(h->cluster_id, sizeof(h->cluster_id), "%s",
             cJSON_IsString(cid) ? cid->valuestring : "");
    cJSON_Delete(st);
    const char *join[NODES_MAX];
    for (int i = 0; i < o.servers; i++) {
        join[i] = h->node[i].address;
    }
    for (int i = 0; i < h->n; i++) {
        if (make_node(h, &h->node[i], &o, join, o.servers) != 0) {
            goto fail;
        }
    }
    /* sshd from this thread: its parent-death signal follows the thread that forked it */
    for (int i = 0; i < h->n; i++) {
        if (start_sshd(h, &h->node[i]) != 0) {
            fprintf(stderr, "nodes: sshd on %s failed\n", h->node[i].address);
            goto fail;
        }
    }
    if (adopt_servers(h) != 0) {
        goto fail;
    }
    return h;
fail:
    nodes_stop(h);
    return NULL;
}

void
nodes_stop(struct nodes *h)
{
    if (!h) {
        return;
    }
    for (int i = 0; i < h->n; i++) {
        sshd_stop(&h->node[i].sshd);
    }
    sim_stop(h->sim);
    h->sim = NULL;
    if (h->dir[0]) {
        /* a hanging stand-in ends within 100 ms once its node's directory is gone */
        nftw(h->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
    free(h);
}

struct nodes_node *
nodes_get(struct nodes *h, const char *name_or_address)
{
    for (int i = 0; h && i < h->n; i++) {
        if (strcmp(h->node[i].name, name_or_address) == 0 ||
            strcmp(h->node[i].address, name_or_address) == 0) {
            return &h->node[i];
        }
    }
    return NULL;
}

char *
nodes_inventory_json(const struct nodes *h)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *a = cJSON_AddArrayToObject(o, "nodes");
    for (int i = 0; i < h->n; i++) {
        const struct nodes_node *n = &h->node[i];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "name", n->name);
        cJSON_AddStringToObject(e, "address", n->address);
        cJSON_AddNumberToObject(e, "ssh_port", n->sshd.port);
        cJSON_AddStringToObject(e, "ssh_user", h->ssh_user);
        cJSON_AddStringToObject(e, "ssh_key_path", h->client_key);
        cJSON_AddStringToObject(e, "compose_dir", n->compose_dir);
        cJSON_AddStringToObject(e, "data_dir", n->data_dir);
        cJSON_AddStringToObject(e, "server_state", n->server ? "server" : "spare");
        cJSON *k = cJSON_AddObjectToObject(e, "host_key");
        cJSON_AddStringToObject(k, "type", n->host_key.type);
        cJSON_AddNumberToObject(k, "bits", n->host_key.bits);
        cJSON_AddStringToObject(k, "fingerprint", n->host_key.fingerprint);
        cJSON_AddItemToArray(a, e);
    }
    cJSON *c = cJSON_AddObjectToObject(o, "consul");
    cJSON *addr = cJSON_AddArrayToObject(c, "addresses");
    int exporter_port = 0;
    for (int i = 0; h->sim && i < h->sim->n_servers; i++) {
        cJSON_AddItemToArray(addr, cJSON_CreateString(h->sim->servers[i].http));
        const char *colon = strrchr(h->sim->servers[i].metrics, ':');
        exporter_port = colon ? atoi(colon + 1) : 0;
    }
    cJSON_AddNumberToObject(c, "exporter_port", exporter_port);
    cJSON_AddStringToObject(o, "control", h->sim ? h->sim->control : "");
    cJSON_AddStringToObject(o, "dir", h->dir);
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    return text;
}

/* ---- faults ---- */

int
nodes_sshd_stop(struct nodes_node *n)
{
    sshd_kill(&n->sshd);
    return 0;
}

int
nodes_sshd_start(struct nodes_node *n)
{
    return n->sshd.pid > 0 ? 0 : sshd_restart(&n->sshd, NULL);
}

int
nodes_hostkey_change(struct nodes_node *n, const char *type)
{
    if (sshd_restart(&n->sshd, type ? type : "ed25519") != 0) {
        return -1;
    }
    return sshd_fingerprint(n->sshd.host_key_pub, &n->host_key);
}

int
nodes_fault_add(struct nodes_node *n, const struct nodes_fault *f)
{
    if (!f || !f->match) {
        return -1;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "match", f->match);
    cJSON_AddNumberToObject(o, "exit", f->exit_status ? f->exit_status : 1);
    cJSON_AddStringToObject(o, "stderr", f->stderr_text ? f->stderr_text : "");
    cJSON_AddStringToObject(o, "stdout", f->stdout_text ? f->stdout_text : "");
    cJSON_AddBoolToObject(o, "hang", f->hang);
    cJSON_AddNumberToObject(o, "times", f->times);
    char *line = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/faults.lock", n->fake_dir);
    int lock = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    snprintf(path, sizeof(path), "%s/faults", n->fake_dir);
    int rc = -1;
    if (line && lock >= 0 && flock(lock, LOCK_EX) == 0) {
        FILE *fp = fopen(path, "a");
        if (fp) {
            rc = fprintf(fp, "%s\n", line) > 0 ? 0 : -1;
            rc = fclose(fp) == 0 ? rc : -1;
        }
    }
    if (lock >= 0) {
        close(lock);
    }
    free(line);
    return rc;
}

void
nodes_fault_clear(struct nodes_node *n)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/faults", n->fake_dir);
    unlink(path);
}

int
nodes_set_hostname(struct nodes_node *n, const char *hostname)
{
    char text[128];
    snprintf(text, sizeof(text), "%s\n", hostname);
    return nodes_write_file(n->hostname_file, text);
}

int
nodes_set_versions(const struct nodes *h, struct nodes_node *n, const char *docker,
                   const char *compose)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/node.json", n->fake_dir);
    char *text = nodes_read_file(path);
    cJSON *o = text ? cJSON_Parse(text) : NULL;
    free(text);
    const char *d =
        docker ? docker : cJSON_GetStringValue(cJSON_GetObjectItem(o, "docker_version"));
    const char *c =
        compose ? compose : cJSON_GetStringValue(cJSON_GetObjectItem(o, "compose_version"));
    int rc = o && d && c ? write_node_json(h, n, d, c) : -1;
    cJSON_Delete(o);
    return rc;
}

int
nodes_remove_compose(struct nodes_node *n)
{
    return unlink(n->compose_file) == 0 || errno == ENOENT ? 0 : -1;
}

int
nodes_dirty_data_dir(struct nodes_node *n)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/raft", n->data_dir);
    if (mkdir_p(path) != 0) {
        return -1;
    }
    snprintf(path, sizeof(path), "%s/serf", n->data_dir);
    if (mkdir_p(path) != 0) {
        return -1;
    }
    snprintf(path, sizeof(path), "%s/raft/raft.db", n->data_dir);
    int rc = nodes_write_file(path, "{\"fake\":\"raft state of an earlier cluster\","
                                    "\"cluster_id\":\"0ld0c1u5-7e40-4000-8000-000000000001\","
                                    "\"peers\":[\"127.0.99.1\",\"127.0.99.2\",\"127.0.99.3\"]}\n");
    snprintf(path, sizeof(path), "%s/node-id", n->data_dir);
    rc |= nodes_write_file(path, "5e1c7d2a-0000-4000-8000-00000000dead");
    snprintf(path, sizeof(path), "%s/serf/local.snapshot", n->data_dir);
    rc |= nodes_write_file(path, "alive: old-node 127.0.99.1:8301\n");
    return rc;
}

int
nodes_processes_with(const char *text)
{
    DIR *d = opendir("/proc");
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        if (de->d_name[0] < '0' || de->d_name[0] > '9' || atoi(de->d_name) == getpid()) {
            continue;
        }
        char path[300];
        snprintf(path, sizeof(path), "/proc/%s/cmdline", de->d_name);
        FILE *f = fopen(path, "rb");
        if (!f) {
            continue;
        }
        char buf[4096];
        size_t got = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        for (size_t i = 0; i < got; i++) {
            buf[i] = buf[i] ? buf[i] : ' ';
        }
        buf[got] = '\0';
        n += strstr(buf, text) != NULL;
    }
    if (d) {
        closedir(d);
    }
    return n;
}

int
nodes_hanging(const struct nodes_node *n)
{
    DIR *d = opendir(n->fake_dir);
    int count = 0;
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        count += strncmp(de->d_name, "hang.", 5) == 0;
    }
    if (d) {
        closedir(d);
    }
    return count;
}
