/* ssh: the libssh2 runner that reaches the Consul server hosts. No `ssh` subprocess.
 *
 * - Connect: IPv4/IPv6 literal or DNS name, one deadline (default 5 s) over name lookup, TCP
 *   connect, SSH handshake and authentication; TCP keepalive and SSH keepalive.
 * - Host keys are pinned: the caller passes the fingerprint it stored (from ssh_probe, shown
 *   to and confirmed by a person). Nothing is ever accepted on first use. A presented key
 *   that differs from the pin fails with SSH_ERR_HOST_KEY_CHANGED, both fingerprints in the
 *   error, before authentication and before any command.
 * - Public-key authentication with a key file of mode 0600 or stricter and an optional
 *   passphrase (never logged, never in a message: messages name host, port, user, key path).
 * - Exec of a command built with ssh_quote.h, stdout and stderr streamed line by line to a
 *   callback, exit status or signal, a per-command timeout and cancellation that kill the
 *   remote process group.
 * - Files over SFTP: bounded reads, atomic writes (temporary file in the same directory,
 *   fsync, rename over the target, mode and owner kept).
 * - ssh_fan_out runs one function per node on a few threads.
 *
 * Thread safety: a struct ssh_conn belongs to one thread at a time; different connections
 * may be used from different threads at once. The module logs nothing; errors go to the
 * caller's struct ssh_error.
 *
 * The remote login shell must be a POSIX shell (sh, dash, bash, ksh, zsh): every command runs
 * as `echo <marker>$$; exec sh -c '<command>'`, the marker line (stripped from the output)
 * telling the process id of the remote session, whose process group the timeout and the
 * cancellation kill (`kill -TERM -<pid>`, then -KILL a second later). The kill line goes to
 * a control shell (`exec sh` reading its stdin) that each connection starts with its first
 * command, so it takes one round trip; without one, a new channel runs it. OpenSSH makes
 * each session's process a session and group leader (setsid), so the whole command tree
 * goes. Closing the channel alone would not do it: OpenSSH only closes
 * the pipes of a session without a pty, and a command that does not write (sleep, a wait)
 * would live on; the SSH "signal" request (OpenSSH >= 7.9) needs libssh2 >= 1.11. The
 * command's stdin is closed at once (a y/N prompt reads end-of-file, never hangs).
 *
 * Limits of Debian 12's libssh2 1.10: RSA is signed and verified with SHA-1 (`ssh-rsa`) only,
 * which OpenSSH >= 8.8 refuses by default, so client keys and pinned host keys should be
 * ED25519 or ECDSA. SSH keepalives go out only while a call on the connection runs (libssh2
 * has no thread of its own); TCP keepalive covers idle connections. File operations have a
 * fixed 120 s bound. */
#ifndef CONSULATE_SSH_H
#define CONSULATE_SSH_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "ssh_quote.h"
#include "util.h"

#define SSH_CONNECT_TIMEOUT_DEFAULT_MS 5000
#define SSH_EXEC_TIMEOUT_DEFAULT_MS 120000
#define SSH_KEEPALIVE_DEFAULT_S 15
#define SSH_LINE_MAX_DEFAULT 4096
#define SSH_FILE_MAX_DEFAULT (1024 * 1024)
#define SSH_FAN_OUT_MAX_THREADS 32

enum ssh_rc {
    SSH_OK = 0,
    SSH_ERR_INVALID = 1,          /* a bad argument (host, user, path, command, option) */
    SSH_ERR_DNS = 2,              /* the host name did not resolve */
    SSH_ERR_CONNECT_REFUSED = 3,  /* every address refused the TCP connection */
    SSH_ERR_CONNECT = 4,          /* another connection or SSH handshake failure */
    SSH_ERR_CONNECT_TIMEOUT = 5,  /* not connected and authenticated within the timeout */
    SSH_ERR_HOST_KEY_UNKNOWN = 6, /* no pin given: err->presented holds the host's key */
    SSH_ERR_HOST_KEY_CHANGED = 7, /* the key differs from the pin: err->expected, presented */
    SSH_ERR_AUTH = 8,             /* the server refused the key for this user */
    SSH_ERR_KEY_FILE = 9,         /* key file missing, unreadable, not a key, or wrong
                                     passphrase */
    SSH_ERR_KEY_MODE = 10,        /* key file readable or writable by group or others */
    SSH_ERR_COMMAND_TIMEOUT = 11, /* the command ran past its timeout and was killed */
    SSH_ERR_CANCELLED = 12,       /* the cancel flag was raised (command killed, write
                                     abandoned, connect given up) */
    SSH_ERR_CHANNEL = 13,         /* channel or session failure, connection lost */
    SSH_ERR_FILE_TOO_LARGE = 14,  /* a file larger than the limit */
    SSH_ERR_NOT_FOUND = 15,       /* the remote file does not exist */
    SSH_ERR_SFTP = 16,            /* another SFTP failure (permission, not a regular file) */
};

/* A stable lower-case name for a code ("host_key_changed"), for API error codes and logs. */
const char *ssh_rc_name(int rc);

/* A host key as `ssh-keygen -l` prints it: "256 SHA256:… (ED25519)". */
struct ssh_host_key {
    char type[16];        /* "ED25519", "ECDSA", "RSA", "DSA" */
    int bits;             /* 256, 384, 521, 3072, … */
    char fingerprint[64]; /* "SHA256:" and the unpadded base64 of the SHA-256 of the key blob */
};

struct ssh_error {
    int code;                      /* enum ssh_rc */
    char message[512];             /* names host, port, user and key path; never a secret */
    struct ssh_host_key expected;  /* SSH_ERR_HOST_KEY_CHANGED: the pin */
    struct ssh_host_key presented; /* ..._CHANGED and ..._UNKNOWN: what the host showed */
};

/* Where and how to connect. Strings are borrowed for the duration of the call. */
struct ssh_target {
    const char *host;          /* "10.0.0.5", "fd00::5", "[fd00::5]" or a DNS name */
    uint16_t port;             /* 0 = 22 */
    const char *user;          /* [A-Za-z0-9._-], not starting with '-' */
    const char *key_path;      /* private key (OpenSSH or PEM format), mode 0600 or stricter */
    const char *passphrase;    /* NULL = the key is not encrypted; never logged or echoed */
    const char *host_key_type; /* pinned type ("ED25519", "ECDSA", "RSA", "DSA"): only that
                                  kind of host key is negotiated; NULL = the server's choice */
    const char *host_key_fingerprint; /* pinned "SHA256:…"; NULL or "" = none: the connect
                                         fails with SSH_ERR_HOST_KEY_UNKNOWN */
    int connect_timeout_ms;           /* 0 = SSH_CONNECT_TIMEOUT_DEFAULT_MS */
    int keepalive_s;                  /* 0 = SSH_KEEPALIVE_DEFAULT_S */
    const atomic_int *cancel; /* non-zero gives up the connect within ~100 ms; may be NULL */
};

struct ssh_conn;

/* Connects to the host and reads its host key, without authenticating: for a person to
 * confirm the fingerprint before it is pinned. key_type (NULL = the server's choice) asks for
 * one kind of host key. Returns SSH_OK with out filled, or a connect error. */
int ssh_probe(const char *host, uint16_t port, const char *key_type, int timeout_ms,
              struct ssh_host_key *out, struct ssh_error *err);

/* Connects, checks the host key against the pin, authenticates. On SSH_OK *out is a
 * connection the caller closes with ssh_close; otherwise *out is NULL and err says why. The
 * key file is checked (regular file, mode 0600 or stricter) and read before any network I/O. */
int ssh_connect(const struct ssh_target *t, struct ssh_conn **out, struct ssh_error *err);

/* Disconnects and frees. NULL is a no-op. */
void ssh_close(struct ssh_conn *c);

/* The key the host presented on this connection (borrowed). */
const struct ssh_host_key *ssh_conn_host_key(const struct ssh_conn *c);

enum ssh_stream { SSH_STDOUT = 1, SSH_STDERR = 2 };

/* Line flags given to the callback. */
#define SSH_LINE_CUT 1u    /* longer than line_max: the first line_max bytes, the rest dropped */
#define SSH_LINE_NO_EOL 2u /* the stream's last line, which had no newline */

/* Called for every line of stdout or stderr as it arrives, in order within each stream,
 * without its "\n" or "\r\n". line is borrowed (valid during the call) and NUL-terminated;
 * len excludes the NUL (a line may hold NUL bytes). */
typedef void (*ssh_line_fn)(void *arg, enum ssh_stream stream, const char *line, size_t len,
                            unsigned flags);

struct ssh_exec_opts {
    int timeout_ms;           /* 0 = SSH_EXEC_TIMEOUT_DEFAULT_MS */
    size_t line_max;          /* 0 = SSH_LINE_MAX_DEFAULT */
    ssh_line_fn on_line;      /* may be NULL */
    void *arg;                /* for on_line */
    const atomic_int *cancel; /* non-zero kills the remote command within about a second */
    struct buf *out;          /* when not NULL, the raw stdout bytes are appended up to its
                                 limit (then result->out_truncated is set) */
};

struct ssh_exec_result {
    int exit_status;   /* the command's exit status; -1 when it was killed or none came */
    char signal[16];   /* the signal that ended it ("KILL", "TERM", …), "" when it exited */
    int out_truncated; /* opts->out reached its limit */
};

/* Runs cmd (complete, see sh_cmd_complete) on the host and waits for it. Returns SSH_OK when
 * the command ended by itself, whatever its exit status (see result); SSH_ERR_COMMAND_TIMEOUT
 * or SSH_ERR_CANCELLED after killing it (result->signal tells with what, when known);
 * SSH_ERR_CHANNEL when the connection failed; SSH_ERR_INVALID for an incomplete command.
 * opts and result may be NULL. */
int ssh_exec(struct ssh_conn *c, const struct sh_cmd *cmd, const struct ssh_exec_opts *opts,
             struct ssh_exec_result *result, struct ssh_error *err);

/* Reads the remote file at path (absolute) over SFTP. max 0 = SSH_FILE_MAX_DEFAULT. On SSH_OK
 * *data is the content, NUL-terminated, the caller's to free, *len its length. A file longer
 * than max gives SSH_ERR_FILE_TOO_LARGE; a missing one SSH_ERR_NOT_FOUND. */
int ssh_read_file(struct ssh_conn *c, const char *path, size_t max, char **data, size_t *len,
                  struct ssh_error *err);

struct ssh_write_opts {
    size_t max;               /* 0 = SSH_FILE_MAX_DEFAULT; a longer content is refused */
    int mode;                 /* permissions of a new file, 0 = 0644; an existing file keeps
                                 its own mode, owner and group */
    const atomic_int *cancel; /* checked between chunks; the target then stays as it was */
};

/* Replaces the remote file at path (absolute, not a symbolic link) with len bytes of data,
 * atomically: they go to a new temporary file in the same directory, which is fsynced, given
 * the mode (and owner) and renamed over the target (`mv -f`, a rename(2)), then the directory
 * is synced. A reader sees the old or the new content, never a part. On failure the target is
 * unchanged and the temporary file removed when the connection still works. opts may be
 * NULL. */
int ssh_write_file(struct ssh_conn *c, const char *path, const void *data, size_t len,
                   const struct ssh_write_opts *opts, struct ssh_error *err);

/* Calls fn(arg, i) for every i in [0, n) on up to threads threads (0 = n, at most
 * SSH_FAN_OUT_MAX_THREADS) and returns when all calls have returned. Each call gets its own
 * index; fn opens, uses and closes its own connection. When a thread cannot be created the
 * remaining work runs on the others (at worst on the calling thread). */
void ssh_fan_out(size_t n, size_t threads, void (*fn)(void *arg, size_t i), void *arg);

#endif
