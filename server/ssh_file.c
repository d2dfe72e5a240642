/* ssh_file: remote files over SFTP for the SSH runner (see ssh.h): bounded reads and atomic
 * writes (temporary file in the same directory, fsync, mode and owner, rename with `mv -f`,
 * directory sync). */
#include "ssh.h"
#include "ssh_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FILE_OP_TIMEOUT_MS SSH_EXEC_TIMEOUT_DEFAULT_MS
#define SFTP_CHUNK (32 * 1024)

/* Validates an absolute remote path. */
static int
path_valid(const char *path)
{
    size_t len = path ? strlen(path) : 0;
    return len >= 2 && len < 4096 && path[0] == '/' && path[len - 1] != '/';
}

static int
sftp_fail(struct ssh_conn *c, struct ssh_error *err, const char *what, const char *path)
{
    int lr = libssh2_session_last_errno(c->s);
    if (lr == LIBSSH2_ERROR_SFTP_PROTOCOL && c->sftp) {
        unsigned long st = libssh2_sftp_last_error(c->sftp);
        switch (st) {
        case LIBSSH2_FX_NO_SUCH_FILE:
        case LIBSSH2_FX_NO_SUCH_PATH:
            return ssh_fail(err, SSH_ERR_NOT_FOUND, c->who, "%s %s: no such file", what, path);
        case LIBSSH2_FX_PERMISSION_DENIED:
            return ssh_fail(err, SSH_ERR_SFTP, c->who, "%s %s: permission denied", what, path);
        default:
            return ssh_fail(err, SSH_ERR_SFTP, c->who, "%s %s: SFTP status %lu", what, path, st);
        }
    }
    if (ssh_io_error(lr)) {
        c->broken = 1;
    }
    return ssh_fail(err, SSH_ERR_SFTP, c->who, "%s %s: %s", what, path, ssh_last_error(c));
}

/* Starts the SFTP subsystem once per connection. */
static int
sftp_ready(struct ssh_conn *c, int64_t deadline, const atomic_int *cancel, struct ssh_error *err)
{
    if (c->broken) {
        return ssh_fail(err, SSH_ERR_CHANNEL, c->who, "the connection was lost earlier");
    }
    while (!c->sftp) {
        c->sftp = libssh2_sftp_init(c->s);
        if (c->sftp) {
            break;
        }
        int lr = libssh2_session_last_errno(c->s);
        if (lr != LIBSSH2_ERROR_EAGAIN) {
            if (ssh_io_error(lr)) {
                c->broken = 1;
            }
            return ssh_fail(err, SSH_ERR_SFTP, c->who, "cannot start SFTP: %s", ssh_last_error(c));
        }
        int rc = ssh_again(c, deadline, cancel, SSH_ERR_COMMAND_TIMEOUT);
        if (rc) {
            c->broken = 1;
            return ssh_fail(err, rc, c->who, "SFTP did not start in time");
        }
    }
    return SSH_OK;
}

/* Opens path with flags and mode; NULL with err filled on failure. */
static LIBSSH2_SFTP_HANDLE *
sftp_open(struct ssh_conn *c, const char *path, unsigned long flags, long mode, int64_t deadline,
          const atomic_int *cancel, const char *what, struct ssh_error *err)
{
    LIBSSH2_SFTP_HANDLE *h;
    while (!(h = libssh2_sftp_open(c->sftp, path, flags, mode))) {
        if (libssh2_session_last_errno(c->s) != LIBSSH2_ERROR_EAGAIN) {
            sftp_fail(c, err, what, path);
            return NULL;
        }
        int rc = ssh_again(c, deadline, cancel, SSH_ERR_COMMAND_TIMEOUT);
        if (rc) {
            c->broken = 1;
            ssh_fail(err, rc, c->who, "%s %s: not done in time", what, path);
            return NULL;
        }
    }
    return h;
}

static void
sftp_close(struct ssh_conn *c, LIBSSH2_SFTP_HANDLE *h)
{
    int64_t deadline = time_mono_ms() + 2000;
    while (libssh2_sftp_close(h) == LIBSSH2_ERROR_EAGAIN) {
        if (ssh_again(c, deadline, NULL, 1) != 0) {
            c->broken = 1;
            break;
        }
    }
}

int
ssh_read_file(struct ssh_conn *c, const char *path, size_t max, char **data, size_t *len,
              struct ssh_error *err)
{
    ssh_err_clear(err);
    *data = NULL;
    *len = 0;
    if (!c || !path_valid(path)) {
        return ssh_fail(err, SSH_ERR_INVALID, c ? c->who : "(read)", "not an absolute file path");
    }
    max = max ? max : SSH_FILE_MAX_DEFAULT;
    int64_t deadline = time_mono_ms() + FILE_OP_TIMEOUT_MS;
    int rc = sftp_ready(c, deadline, NULL, err);
    if (rc != SSH_OK) {
        return rc;
    }
    LIBSSH2_SFTP_HANDLE *h =
        sftp_open(c, path, LIBSSH2_FXF_READ, 0, deadline, NULL, "reading", err);
    if (!h) {
        return err ? err->code : SSH_ERR_SFTP;
    }
    struct buf b;
    buf_init(&b, max);
    LIBSSH2_SFTP_ATTRIBUTES a;
    int lr;
    while ((lr = libssh2_sftp_fstat(h, &a)) == LIBSSH2_ERROR_EAGAIN) {
        if ((rc = ssh_again(c, deadline, NULL, SSH_ERR_COMMAND_TIMEOUT)) != 0) {
            c->broken = 1;
            rc = ssh_fail(err, rc, c->who, "reading %s: not done in time", path);
            goto out;
        }
    }
    if (lr != 0) {
        rc = sftp_fail(c, err, "reading", path);
        goto out;
    }
    if ((a.flags & LIBSSH2_SFTP_ATTR_PERMISSIONS) && !LIBSSH2_SFTP_S_ISREG(a.permissions)) {
        rc = ssh_fail(err, SSH_ERR_SFTP, c->who, "reading %s: not a regular file", path);
        goto out;
    }
    if ((a.flags & LIBSSH2_SFTP_ATTR_SIZE) && a.filesize > max) {
        rc = ssh_fail(err, SSH_ERR_FILE_TOO_LARGE, c->who,
                      "reading %s: the file has %llu bytes, more than the limit of %zu", path,
                      (unsigned long long)a.filesize, max);
        goto out;
    }
    char chunk[SFTP_CHUNK];
    for (;;) {
        ssize_t n = libssh2_sftp_read(h, chunk, sizeof(chunk));
        if (n == LIBSSH2_ERROR_EAGAIN) {
            if ((rc = ssh_again(c, deadline, NULL, SSH_ERR_COMMAND_TIMEOUT)) != 0) {
                c->broken = 1;
                rc = ssh_fail(err, rc, c->who, "reading %s: not done in time", path);
                goto out;
            }
            continue;
        }
        if (n < 0) {
            rc = sftp_fail(c, err, "reading", path);
            goto out;
        }
        if (n == 0) {
            break;
        }
        if (buf_append(&b, chunk, (size_t)n) != BUF_OK) {
            rc = ssh_fail(err, SSH_ERR_FILE_TOO_LARGE, c->who,
                          "reading %s: the file is longer than the limit of %zu bytes", path, max);
            goto out;
        }
    }
    *len = b.len;
    *data = b.data ? buf_steal(&b) : xstrdup("");
    rc = SSH_OK;
out:
    buf_free(&b);
    sftp_close(c, h);
    return rc;
}

/* The directory part of an absolute path ("/" for "/x"), newly allocated. */
static char *
path_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash == path ? xstrdup("/") : xstrndup(path, (size_t)(slash - path));
}

/* Runs a built command that must exit 0 (for the rename and the directory sync). */
static int
run_checked(struct ssh_conn *c, const struct sh_arg *argv, size_t argc, const char *what,
            struct ssh_error *err)
{
    struct sh_cmd cmd;
    sh_cmd_init(&cmd);
    struct sh_error serr;
    int rc;
    if (sh_cmd_add(&cmd, argv, argc, &serr) != SH_OK) {
        rc = ssh_fail(err, SSH_ERR_INVALID, c->who, "%s: %s", what, serr.message);
        goto out;
    }
    struct ssh_exec_opts o = {.timeout_ms = FILE_OP_TIMEOUT_MS};
    struct ssh_exec_result res;
    rc = ssh_exec(c, &cmd, &o, &res, err);
    if (rc == SSH_OK && res.exit_status != 0) {
        rc = ssh_fail(err, SSH_ERR_SFTP, c->who, "%s failed (exit status %d)", what,
                      res.exit_status);
    }
out:
    sh_cmd_free(&cmd);
    return rc;
}

static void
sftp_remove(struct ssh_conn *c, const char *path)
{
    if (c->broken) {
        return;
    }
    int64_t deadline = time_mono_ms() + 2000;
    while (libssh2_sftp_unlink(c->sftp, path) == LIBSSH2_ERROR_EAGAIN) {
        if (ssh_again(c, deadline, NULL, 1) != 0) {
            c->broken = 1;
            break;
        }
    }
}

int
ssh_write_file(struct ssh_conn *c, const char *path, const void *data, size_t len,
               const struct ssh_write_opts *opts, struct ssh_error *err)
{
    ssh_err_clear(err);
    struct ssh_write_opts o = opts ? *opts : (struct ssh_write_opts){0};
    size_t max = o.max ? o.max : SSH_FILE_MAX_DEFAULT;
    if (!c || !path_valid(path) || (len > 0 && !data)) {
        return ssh_fail(err, SSH_ERR_INVALID, c ? c->who : "(write)", "not an absolute file path");
    }
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    if (strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
        return ssh_fail(err, SSH_ERR_INVALID, c->who, "writing %s: not a file name", path);
    }
    if (len > max) {
        return ssh_fail(err, SSH_ERR_FILE_TOO_LARGE, c->who,
                        "writing %s: %zu bytes is more than the limit of %zu", path, len, max);
    }
    int64_t deadline = time_mono_ms() + FILE_OP_TIMEOUT_MS;
    /* the flag is looked at between steps, never inside a libssh2 request (abandoning one
     * would leave the session unusable and the temporary file behind) */
    if (ssh_canceled(o.cancel)) {
        return ssh_fail(err, SSH_ERR_CANCELLED, c->who, "writing %s: cancelled before the start",
                        path);
    }
    int rc = sftp_ready(c, deadline, NULL, err);
    if (rc != SSH_OK) {
        return rc;
    }
    /* What is there now: a regular file keeps its mode and owner; a link is refused. */
    LIBSSH2_SFTP_ATTRIBUTES old;
    int exists = 0;
    int lr;
    while ((lr = libssh2_sftp_lstat(c->sftp, path, &old)) == LIBSSH2_ERROR_EAGAIN) {
        if ((rc = ssh_again(c, deadline, NULL, SSH_ERR_COMMAND_TIMEOUT)) != 0) {
            c->broken = 1;
            return ssh_fail(err, rc, c->who, "writing %s: not done in time", path);
        }
    }
    if (lr == 0) {
        exists = 1;
        if (!(old.flags & LIBSSH2_SFTP_ATTR_PERMISSIONS) ||
            !LIBSSH2_SFTP_S_ISREG(old.permissions)) {
            return ssh_fail(err, SSH_ERR_SFTP, c->who,
                            "writing %s: the target is not a regular file (a link or a directory)",
                            path);
        }
    } else {
        rc = sftp_fail(c, err, "writing", path);
        if (rc != SSH_ERR_NOT_FOUND) {
            return rc;
        }
        ssh_err_clear(err);
    }
    unsigned long mode =
        exists ? (old.permissions & 07777) : (unsigned long)(o.mode > 0 ? (o.mode & 07777) : 0644);

    char *dir = path_dir(path);
    char rnd[13];
    random_hex(6, rnd);
    char *tmp = xasprintf("%s/.%s.consulate-%s.tmp", strcmp(dir, "/") == 0 ? "" : dir, base, rnd);
    int created = 0;
    LIBSSH2_SFTP_HANDLE *h =
        sftp_open(c, tmp, LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT | LIBSSH2_FXF_EXCL,
                  LIBSSH2_SFTP_S_IRUSR | LIBSSH2_SFTP_S_IWUSR, deadline, NULL, "writing", err);
    if (!h) {
        rc = err ? err->code : SSH_ERR_SFTP;
        goto out;
    }
    created = 1;
    const char *p = data;
    size_t off = 0;
    while (off < len) {
        if (ssh_canceled(o.cancel)) {
            rc = ssh_fail(err, SSH_ERR_CANCELLED, c->who,
                          "writing %s: cancelled after %zu of %zu bytes", path, off, len);
            goto close;
        }
        size_t n = len - off < SFTP_CHUNK ? len - off : SFTP_CHUNK;
        ssize_t w = libssh2_sftp_write(h, p + off, n);
        if (w == LIBSSH2_ERROR_EAGAIN) {
            /* libssh2 wants the same buffer again once the socket is ready */
            if ((rc = ssh_again(c, deadline, NULL, SSH_ERR_COMMAND_TIMEOUT)) != 0) {
                c->broken = 1;
                rc = ssh_fail(err, rc, c->who, "writing %s: stopped after %zu of %zu bytes", path,
                              off, len);
                goto close;
            }
            continue;
        }
        if (w < 0) {
            rc = sftp_fail(c, err, "writing", path);
            goto close;
        }
        off += (size_t)w;
    }
    while ((lr = libssh2_sftp_fsync(h)) == LIBSSH2_ERROR_EAGAIN) {
        if ((rc = ssh_again(c, deadline, NULL, SSH_ERR_COMMAND_TIMEOUT)) != 0) {
            c->broken = 1;
            rc = ssh_fail(err, rc, c->who, "writing %s: fsync not done", path);
            goto close;
        }
    }
    if (lr != 0) {
        rc = sftp_fail(c, err, "fsync of", tmp);
        goto close;
    }
    LIBSSH2_SFTP_ATTRIBUTES na = {.flags = LIBSSH2_SFTP_ATTR_PERMISSIONS, .permissions = mode};
    if (exists && (old.flags & LIBSSH2_SFTP_ATTR_UIDGID)) {
        na.flags |= LIBSSH2_SFTP_ATTR_UIDGID;
        na.uid = old.uid;
        na.gid = old.gid;
    }
    while ((lr = libssh2_sftp_fsetstat(h, &na)) == LIBSSH2_ERROR_EAGAIN) {
        if ((rc = ssh_again(c, deadline, NULL, SSH_ERR_COMMAND_TIMEOUT)) != 0) {
            c->broken = 1;
            rc = ssh_fail(err, rc, c->who, "writing %s: not done in time", path);
            goto close;
        }
    }
    if (lr != 0) {
        rc = sftp_fail(c, err, "setting the mode and owner of", tmp);
        goto close;
    }
    rc = SSH_OK;
close:
    sftp_close(c, h);
    if (rc == SSH_OK && ssh_canceled(o.cancel)) {
        rc = ssh_fail(err, SSH_ERR_CANCELLED, c->who, "writing %s: cancelled before the rename",
                      path);
    }
    if (rc == SSH_OK) {
        struct sh_arg mv[] = {SH_W("mv"), SH_W("-f"), SH_W("--"), SH_V(tmp), SH_V(path)};
        rc = run_checked(c, mv, ARRAY_LEN(mv), "the rename over the target", err);
        if (rc == SSH_OK) {
            created = 0;
            /* the rename is durable once the directory is synced; best effort (GNU sync) */
            struct sh_arg sync[] = {SH_W("sync"), SH_W("--"), SH_V(dir)};
            struct ssh_error serr;
            if (run_checked(c, sync, ARRAY_LEN(sync), "sync", &serr) == SSH_ERR_CHANNEL) {
                rc = ssh_fail(err, SSH_ERR_CHANNEL, c->who,
                              "the connection was lost after the rename");
            }
        }
    }
out:
    if (created) {
        sftp_remove(c, tmp);
    }
    free(tmp);
    free(dir);
    return rc;
}
