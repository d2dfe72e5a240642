/* db_lock: the lock file beside the database (include/db_lock.h). */
#include "db_lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

/* Locks one byte (F_RDLCK or F_WRLCK) without waiting. Returns 0, 1 when another process
 * holds a conflicting lock (its pid in *holder), -1 on another error (errno). */
static int
lock_byte(int fd, off_t byte, short type, pid_t *holder)
{
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = byte, .l_len = 1};
    if (fcntl(fd, F_SETLK, &fl) == 0) {
        return 0;
    }
    if (errno != EACCES && errno != EAGAIN) {
        return -1;
    }
    struct flock who = {.l_type = type, .l_whence = SEEK_SET, .l_start = byte, .l_len = 1};
    if (fcntl(fd, F_GETLK, &who) == 0 && who.l_type != F_UNLCK) {
        *holder = who.l_pid;
    }
    return 1;
}

/* Makes the directories above path that are missing (0700, as store_open does). */
static void
make_parents(const char *path)
{
    char *copy = xstrdup(path);
    for (char *p = copy + 1; (p = strchr(p, '/')); p++) {
        *p = '\0';
        if (mkdir(copy, 0700) != 0 && errno != EEXIST) {
            break;
        }
        *p = '/';
    }
    free(copy);
}

int
db_lock_take(const char *db_path, enum db_lock_mode mode, int *fd, pid_t *holder, int *serving,
             char *err, size_t errlen)
{
    *fd = -1;
    *holder = 0;
    *serving = 0;
    char *path = xasprintf("%s.lock", db_path);
    make_parents(path);
    int f = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (f < 0) {
        snprintf(err, errlen, "cannot open the lock file %s: %s", path, strerror(errno));
        free(path);
        return DB_LOCK_ERROR;
    }
    int rc = 0;
    if (mode != DB_LOCK_USE) {
        rc = lock_byte(f, 0, F_WRLCK, holder);
        *serving = rc == 1;
    }
    if (rc == 0) {
        rc = lock_byte(f, 1, mode == DB_LOCK_REPLACE ? F_WRLCK : F_RDLCK, holder);
    }
    if (rc != 0) {
        int e = errno;
        close(f); /* drops whatever was taken */
        if (rc < 0) {
            snprintf(err, errlen, "cannot lock %s: %s", path, strerror(e));
        }
        free(path);
        return rc < 0 ? DB_LOCK_ERROR : DB_LOCK_HELD;
    }
    if (mode == DB_LOCK_SERVE) {
        /* the server's pid, for people reading the file; the lock itself is what counts */
        char pid[32];
        int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
        if (ftruncate(f, 0) != 0 || pwrite(f, pid, (size_t)n, 0) != n) {
            /* not fatal: the lock is held */
        }
    }
    free(path);
    *fd = f;
    return DB_LOCK_OK;
}

void
db_lock_release(int fd)
{
    if (fd >= 0) {
        close(fd); /* closing drops the fcntl locks */
    }
}
