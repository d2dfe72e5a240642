/* db_lock: the lock file beside the database (include/db_lock.h). */
#include "db_lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

int
db_lock_take(const char *db_path, int *fd, pid_t *holder, char *err, size_t errlen)
{
    *fd = -1;
    *holder = 0;
    char *path = xasprintf("%s.lock", db_path);
    int f = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (f < 0) {
        snprintf(err, errlen, "cannot open the lock file %s: %s", path, strerror(errno));
        free(path);
        return DB_LOCK_ERROR;
    }
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    if (fcntl(f, F_SETLK, &fl) != 0) {
        int e = errno;
        if (e == EACCES || e == EAGAIN) {
            struct flock who = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
            if (fcntl(f, F_GETLK, &who) == 0 && who.l_type != F_UNLCK) {
                *holder = who.l_pid;
            }
            close(f);
            free(path);
            return DB_LOCK_HELD;
        }
        snprintf(err, errlen, "cannot lock %s: %s", path, strerror(e));
        close(f);
        free(path);
        return DB_LOCK_ERROR;
    }
    /* the pid, for people reading the file; the lock itself is what counts */
    char pid[32];
    int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(f, 0) != 0 || pwrite(f, pid, (size_t)n, 0) != n) {
        /* not fatal: the lock is held */
    }
    free(path);
    *fd = f;
    return DB_LOCK_OK;
}

void
db_lock_release(int fd)
{
    if (fd >= 0) {
        close(fd); /* closing drops the fcntl lock */
    }
}
