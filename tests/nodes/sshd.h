/* sshd: real OpenSSH servers for tests, one per fake node, each on its own 127.0.0.x address
 * with its own configuration, host key and authorized keys in a temporary directory. The
 * server runs as the current user (root in CI: logins are then as root), in the foreground
 * (-D), logging to a file (-e). See tests/nodes/README.md. */
#ifndef CONSULATE_TEST_SSHD_H
#define CONSULATE_TEST_SSHD_H

#include <sys/types.h>

struct sshd_opts {
    const char *addr;           /* "127.0.0.x" (required; anything outside 127.0.0.0/8 is
                                   refused) */
    int port;                   /* 0 = a free port */
    const char *host_key_type;  /* ssh-keygen -t: "ed25519" (default), "ecdsa", "rsa" */
    const char *authorized_key; /* a public key file allowed to log in (may be NULL) */
    const char *extra_config;   /* more sshd_config lines, '\n'-separated (may be NULL), e.g.
                                   "SetEnv PATH=/tmp/fake/bin:/usr/bin:/bin" */
};

struct sshd_node {
    pid_t pid; /* 0 when stopped */
    char addr[16];
    int port;
    char dir[256];      /* temporary directory, removed by sshd_stop */
    char config[320];   /* sshd_config */
    char host_key[320]; /* private host key; the public one is host_key + ".pub" */
    char host_key_pub[320];
    char authorized_keys[320]; /* append lines to allow more keys (read on every login) */
    char log[320];             /* sshd's own log */
    char key_type[16];
};

/* A key as ssh-keygen -l prints it ("256 SHA256:… comment (ED25519)"). */
struct sshd_fp {
    int bits;
    char fingerprint[64];
    char type[16];
};

/* Makes a key pair at path and path.pub with ssh-keygen (type "ed25519", "ecdsa", "rsa"),
 * encrypted with passphrase when not NULL. Returns 0, or -1 (message on stderr). */
int sshd_keygen(const char *path, const char *type, const char *passphrase);
/* Runs `ssh-keygen -l -f pub_path` and parses its line. Returns 0 or -1. */
int sshd_fingerprint(const char *pub_path, struct sshd_fp *out);

/* Starts sshd as o says and waits until it listens (at most 10 s). Returns 0 with n filled,
 * or -1 (message and sshd's log on stderr). */
int sshd_start(struct sshd_node *n, const struct sshd_opts *o);
/* Stops sshd and starts it again on the same address and port; with new_key_type (e.g.
 * "ed25519" or "ecdsa") the host key is replaced by a new one of that type first. 0 or -1. */
int sshd_restart(struct sshd_node *n, const char *new_key_type);
/* Stops sshd (SIGTERM, SIGKILL after 5 s) and removes its directory. Safe to call twice. */
void sshd_stop(struct sshd_node *n);
/* Stops sshd but keeps the directory (for sshd_restart). */
void sshd_kill(struct sshd_node *n);

/* Runs argv (NULL-terminated, argv[0] a path or a name on PATH) and waits. Returns the exit
 * status (-1 when it could not run or died by a signal); out (may be NULL) receives stdout
 * and stderr together, the caller frees. */
int sshd_run(const char *const *argv, char **out);

#endif
