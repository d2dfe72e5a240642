/* procedures_cmd: the remote commands the procedures run, each built with sh_cmd from
 * constant words and validated values (ssh_quote.h). This file is the list the fake nodes'
 * docker and docker-compose stand-ins implement (README, Jobs: remote commands). */
#include <stdio.h>
#include <string.h>

#include "procedures_internal.h"
#include "util.h"

/* Builds cmd from argv; on a refusal cmd is freed and -1 returned. */
static int
build(struct sh_cmd *cmd, const struct sh_arg *argv, size_t argc)
{
    sh_cmd_init(cmd);
    struct sh_error e;
    if (sh_cmd_add(cmd, argv, argc, &e) != SH_OK) {
        log_warn("procedures: a remote command was refused: %s", e.message);
        sh_cmd_free(cmd);
        sh_cmd_init(cmd);
        return -1;
    }
    return 0;
}

#define BUILD(cmd, ...)                                                                            \
    do {                                                                                           \
        const struct sh_arg argv_[] = {__VA_ARGS__};                                               \
        return build((cmd), argv_, ARRAY_LEN(argv_));                                              \
    } while (0)

int
cmd_docker_version(struct sh_cmd *cmd)
{
    BUILD(cmd, SH_W("docker"), SH_W("version"), SH_W("--format"), SH_V("{{.Server.Version}}"));
}

int
cmd_compose_version(struct sh_cmd *cmd)
{
    BUILD(cmd, SH_W("docker-compose"), SH_W("version"), SH_W("--short"));
}

int
cmd_docker_ps(struct sh_cmd *cmd)
{
    BUILD(cmd, SH_W("docker"), SH_W("ps"), SH_W("--filter"), SH_V("name=^consul$"),
          SH_W("--format"), SH_V("{{.Names}} {{.Status}}"));
}

int
cmd_docker_logs(struct sh_cmd *cmd)
{
    BUILD(cmd, SH_W("docker"), SH_W("logs"), SH_W("--tail=100"), SH_W("consul"));
}

int
cmd_consul_leave(struct sh_cmd *cmd)
{
    BUILD(cmd, SH_W("docker"), SH_W("exec"), SH_W("consul"), SH_W("consul"), SH_W("leave"));
}

int
cmd_list_peers(struct sh_cmd *cmd)
{
    BUILD(cmd, SH_W("docker"), SH_W("exec"), SH_W("consul"), SH_W("consul"), SH_W("operator"),
          SH_W("raft"), SH_W("list-peers"));
}

int
cmd_members(struct sh_cmd *cmd)
{
    BUILD(cmd, SH_W("docker"), SH_W("exec"), SH_W("consul"), SH_W("consul"), SH_W("members"));
}

int
cmd_force_leave(struct sh_cmd *cmd, const char *node)
{
    BUILD(cmd, SH_W("docker"), SH_W("exec"), SH_W("consul"), SH_W("consul"), SH_W("force-leave"),
          SH_V(node));
}

int
cmd_remove_peer(struct sh_cmd *cmd, const char *raft_addr)
{
    /* Consul reads the flag as one argument "-address=IP:port". The address comes from the
     * raft configuration and may only hold the characters of a constant word (an IPv4 or DNS
     * host and a port): sh_cmd_add refuses anything else, so it is never quoted wrongly. */
    char word[160];
    if (snprintf(word, sizeof(word), "-address=%s", raft_addr) >= (int)sizeof(word)) {
        sh_cmd_init(cmd);
        return -1;
    }
    BUILD(cmd, SH_W("docker"), SH_W("exec"), SH_W("consul"), SH_W("consul"), SH_W("operator"),
          SH_W("raft"), SH_W("remove-peer"), SH_W(word));
}

int
cmd_compose_up(struct sh_cmd *cmd, const char *file)
{
    BUILD(cmd, SH_W("docker-compose"), SH_W("-f"), SH_V(file), SH_W("up"), SH_W("-d"));
}

int
cmd_compose_down(struct sh_cmd *cmd, const char *file)
{
    BUILD(cmd, SH_W("docker-compose"), SH_W("-f"), SH_V(file), SH_W("down"));
}

int
cmd_hostname(struct sh_cmd *cmd)
{
    BUILD(cmd, SH_W("hostname"));
}

int
cmd_test(struct sh_cmd *cmd, const char *flag, const char *path)
{
    BUILD(cmd, SH_W("test"), SH_W(flag), SH_V(path));
}

int
cmd_ls(struct sh_cmd *cmd, const char *path)
{
    BUILD(cmd, SH_W("ls"), SH_W("-A"), SH_V(path));
}

int
cmd_mv(struct sh_cmd *cmd, const char *from, const char *to)
{
    BUILD(cmd, SH_W("mv"), SH_V(from), SH_V(to));
}

int
cmd_cp(struct sh_cmd *cmd, const char *from, const char *to)
{
    BUILD(cmd, SH_W("cp"), SH_W("-p"), SH_V(from), SH_V(to));
}

int
cmd_mkdir(struct sh_cmd *cmd, const char *dir)
{
    BUILD(cmd, SH_W("mkdir"), SH_W("-p"), SH_V(dir));
}

/* The port checks of hosts x ports in one remote command:
 * `timeout 3 bash --norc --noprofile -c '</dev/tcp/H1/P1 && </dev/tcp/H1/P2 && …'`, exit
 * status 0 when every one answers within the 3 s. bash opens the TCP connections itself; the
 * hosts are inventory addresses (validated here: letters, digits, '.', ':', '-') and the
 * ports numbers, so the script is plain text. --norc --noprofile: a slow or noisy ~/.bashrc
 * on the host must not eat the 3 s. -1 for a host that is not such an address. */
int
cmd_ports_of(struct sh_cmd *cmd, const char *const *hosts, size_t nh, const int *ports, size_t np)
{
    sh_cmd_init(cmd);
    struct buf script;
    buf_init(&script, 16384); /* at most this long: 64 servers' four ports fit */
    int too_big = 0;
    for (size_t h = 0; h < nh; h++) {
        for (const char *p = hosts[h]; *p; p++) {
            if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                  (*p >= '0' && *p <= '9') || *p == '.' || *p == ':' || *p == '-')) {
                buf_free(&script);
                return -1;
            }
        }
        for (size_t i = 0; i < np; i++) {
            too_big |= buf_printf(&script, "%s</dev/tcp/%s/%d", script.len ? " && " : "",
                                  hosts[h], ports[i]) != BUF_OK;
        }
    }
    if (!script.len || too_big) {
        buf_free(&script);
        return -1;
    }
    const struct sh_arg argv[] = {SH_W("timeout"),     SH_W("3"),  SH_W("bash"),
                                  SH_W("--norc"),      SH_W("--noprofile"), SH_W("-c"),
                                  SH_V(script.data)};
    struct sh_error e;
    int rc = sh_cmd_add(cmd, argv, ARRAY_LEN(argv), &e);
    buf_free(&script);
    if (rc != SH_OK) {
        log_warn("procedures: a remote command was refused: %s", e.message);
        sh_cmd_free(cmd);
        sh_cmd_init(cmd);
        return -1;
    }
    return 0;
}

int
proc_ps_running(const char *out)
{
    for (const char *line = out; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (len >= 9 && strncmp(line, "consul Up", 9) == 0 && (len == 9 || line[9] == ' ')) {
            return 1;
        }
        line = end ? end + 1 : NULL;
    }
    return 0;
}
