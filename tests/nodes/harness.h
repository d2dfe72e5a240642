/* harness: a set of fake Consul server hosts for tests, benchmarks and the demo.
 *
 * nodes_start() starts the Consul simulator (tests/sim) with N servers consul-1..N on
 * consecutive 127.0.0.x addresses and, for each of those hosts and M spare hosts after them,
 * a real OpenSSH sshd (tests/nodes/sshd.c) on the same address with its own host key, its
 * own root directory standing in for its file system (the seed's
 * <root>/mnt/opt/docker-compose/consul/docker-compose.yaml and
 * <root>/mnt/var/lib/container/consul), its own hostname (<root>/etc/hostname) and `docker`,
 * `docker-compose` and `hostname` stand-ins first on the PATH its sessions get. The stand-ins
 * (tests/nodes/standin*.py) read the node's real compose file as docker-compose and Consul
 * would and drive the simulator, so a wrong edit shows up as a cluster that does not form.
 * One ED25519 client key logs in on every node. Faults are switched per node at run time.
 *
 * Everything listens on 127.0.0.0/8 only; files live under one temporary directory (sshd's
 * own directories are separate, see sshd.h) removed by nodes_stop(); the simulator exits when
 * its stdin closes and every sshd on its parent's death, so a crashed test leaves nothing
 * running. See tests/nodes/README.md. */
#ifndef CONSULATE_TEST_NODES_HARNESS_H
#define CONSULATE_TEST_NODES_HARNESS_H

#include <stdbool.h>

#include "../http/simctl.h"
#include "sshd.h"

#define NODES_MAX 16

struct nodes_opts {
    int servers;                 /* hosts with a Consul server at start (1-15, default 4) */
    int spares;                  /* hosts with docker and no Consul yet (default 0) */
    const char *ip_base;         /* first host's address (default "127.0.0.11"); host i is
                                    ip_base + i */
    double speed;                /* the simulator's speed factor (default 1) */
    unsigned long long seed;     /* the simulator's --seed (0 = its default) */
    bool ephemeral_ports;        /* agents and exporters on ephemeral ports and no 8300/8301
                                    listeners, instead of 8500/9107/8300/8301 as in production
                                    (those need the test's own network namespace) */
    int http_port;               /* else the agents' port (0 = 8500) */
    int metrics_port;            /* and the exporters' port (0 = 9107) */
    const char *sim_args;        /* more simulator flags, e.g. "--token s3cret --demo-data" */
    const char *image;           /* the compose files' image (default "consul:1.9.17") */
    const char *docker_version;  /* `docker version` (default "20.10.24+dfsg1") */
    const char *compose_version; /* `docker-compose version --short` (default "1.29.2") */
    const char *parent_dir;      /* where the temporary directory goes (default /tmp) */
};

struct nodes_node {
    char name[64];    /* inventory name and initial hostname: consul-<i> */
    char address[16]; /* 127.0.0.x */
    bool server;      /* ran a Consul server at start (else a spare host) */
    char root[384];   /* the node's "/" */
    char compose_dir[448];
    char compose_file[480];
    char data_dir[448];
    char hostname_file[400];
    char fake_dir[400]; /* <root>/.fake: node.json, faults, docker/ (the stand-ins' state) */
    struct sshd_node sshd;
    struct sshd_fp host_key; /* as `ssh-keygen -l` prints it, refreshed by a key change */
};

struct nodes {
    char dir[256];        /* the temporary directory everything lives in */
    struct sim *sim;      /* the simulator (control URL, servers' agent URLs) */
    char cluster_id[40];  /* the simulator's cluster id (raft state markers in data dirs) */
    char client_key[300]; /* ED25519 private key, mode 0600; the public key is + ".pub" */
    char ssh_user[64];    /* the current user (root in CI) */
    char src[512];        /* the repository root (for the stand-ins) */
    char image[128];      /* the image in the compose files the harness writes */
    int n;
    struct nodes_node node[NODES_MAX];
};

/* Starts everything as o says (NULL = defaults) and waits until every sshd listens and every
 * server's container is up. $CONSUL_SIM_BIN is the simulator, $CONSULATE_SRC the repository
 * (default "."). Returns the set, or NULL with a message on stderr. Free with nodes_stop. */
struct nodes *nodes_start(const struct nodes_opts *o);
/* Stops every sshd and the simulator and removes the directory. NULL is a no-op. */
void nodes_stop(struct nodes *h);
/* The node with that inventory name or address, or NULL. Borrowed from h. */
struct nodes_node *nodes_get(struct nodes *h, const char *name_or_address);

/* The inventory as JSON, a string the caller frees:
 * {"nodes":[{"name","address","ssh_port","ssh_user","ssh_key_path","compose_dir","data_dir",
 *   "server_state":"server"|"spare","host_key":{"type","bits","fingerprint"}}...],
 *  "consul":{"addresses":["http://IP:PORT"...],"exporter_port":N},"control":URL,"dir":DIR}
 * Each node object minus host_key is a POST /api/nodes body. */
char *nodes_inventory_json(const struct nodes *h);

/* A compose file in the seed's shape (double-quoted command with backslash continuations,
 * one -retry-join per address in join, -bind=bind), as the harness writes for its servers.
 * The caller frees. */
char *nodes_compose_text(const struct nodes *h, const char *bind, const char *const *join,
                         int n_join);
/* Writes text to path (created 0644, replaced whole); 0 or -1. */
int nodes_write_file(const char *path, const char *text);
/* The content of path as a string the caller frees, or NULL. */
char *nodes_read_file(const char *path);

/* Runs a shell command on the node without SSH, as its sessions would (the node's PATH, cwd
 * its root), for setup and for harness.sh. Returns the exit status (-1 when it could not
 * run); *out gets stdout and stderr together (may be NULL; the caller frees). */
int nodes_run(const struct nodes *h, const struct nodes_node *n, const char *command, char **out);

/* ---- faults ---- */

/* sshd stopped (connections refused) / started again with the same key and port. */
int nodes_sshd_stop(struct nodes_node *n);
int nodes_sshd_start(struct nodes_node *n);
/* sshd restarted with a new host key of that type ("ed25519", "ecdsa"); host_key refreshed. */
int nodes_hostkey_change(struct nodes_node *n, const char *type);

struct nodes_fault {
    const char *match;       /* a substring of the command line ("docker-compose -f … up -d"
                                as the stand-in sees it: tool and arguments joined by spaces) */
    int exit_status;         /* what the command exits with (0 is taken as 1) */
    const char *stderr_text; /* printed on stderr (may be NULL) */
    const char *stdout_text; /* printed on stdout (may be NULL) */
    bool hang;               /* never returns until killed or the node is stopped */
    int times;               /* applies to that many commands, 0 = every one */
};
/* A fault for the node's docker, docker-compose, hostname, mv, cp, cat, ls, mkdir and rm.
 * 0 or -1. */
int nodes_fault_add(struct nodes_node *n, const struct nodes_fault *f);
/* Removes every command fault of the node; a command hanging by a fault then ends (exit 124). */
void nodes_fault_clear(struct nodes_node *n);
/* How many commands of the node hang by a fault now (started and hanging, not only
 * started). */
int nodes_hanging(const struct nodes_node *n);
/* How many processes (this one excluded) have text in their command line, e.g. "--root
 * <node root> docker version" for the node's stand-in running that command. */
int nodes_processes_with(const char *text);
/* Writes the node's hostname file (two hosts with the same name give Consul's "Node name
 * conflicts"). 0 or -1. */
int nodes_set_hostname(struct nodes_node *n, const char *hostname);
/* What `docker version` and `docker-compose version --short` print (NULL keeps one). */
int nodes_set_versions(const struct nodes *h, struct nodes_node *n, const char *docker,
                       const char *compose);
/* Removes the node's compose file. 0 or -1. */
int nodes_remove_compose(struct nodes_node *n);
/* Leaves raft state of another cluster in the node's data dir (a server started there chases
 * its old peers and never joins). 0 or -1. */
int nodes_dirty_data_dir(struct nodes_node *n);

#endif
