/* ssh_internal: what the SSH runner's own files (ssh.c, ssh_file.c) share. Nothing outside
 * the runner includes this. */
#ifndef CONSULATE_SSH_INTERNAL_H
#define CONSULATE_SSH_INTERNAL_H

#include <stdatomic.h>
#include <stdint.h>

#include <libssh2.h>
#include <libssh2_sftp.h>

#include "ssh.h"

#define SLICE_MS 100 /* the longest wait before deadlines and cancel flags are looked at */

struct ssh_conn {
    int fd;
    LIBSSH2_SESSION *s;
    LIBSSH2_SFTP *sftp;   /* started on the first file operation */
    LIBSSH2_CHANNEL *ctl; /* a shell reading kill commands on its stdin (see ssh.c) */
    int ctl_tried;        /* ctl was started once (or failed to start) */
    int broken;           /* the session is unusable (I/O error, abandoned mid-request) */
    int keepalive_s;
    char who[400]; /* "user@host:port (key path)" for messages */
    struct ssh_host_key key;
};

/* Fills err (may be NULL) with code and "ssh <who>: <formatted text>". Returns code. */
int ssh_fail(struct ssh_error *err, int code, const char *who, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void ssh_err_clear(struct ssh_error *err);
int ssh_canceled(const atomic_int *cancel);
/* After LIBSSH2_ERROR_EAGAIN: 0 to try again once the socket is ready (waited at most a
 * slice), or the code to give up with (timeout_code past the deadline, SSH_ERR_CANCELLED
 * when cancel is raised; pass NULL where giving up half-way would break the session). */
int ssh_again(struct ssh_conn *c, int64_t deadline, const atomic_int *cancel, int timeout_code);
/* libssh2's last error text (never holds data we sent). */
const char *ssh_last_error(struct ssh_conn *c);
/* 1 for the libssh2 errors after which the session is unusable. */
int ssh_io_error(int rc);

#endif
