/* db_lock: who holds the database. `serve` holds an fcntl write lock on <database>.lock (its
 * pid written inside) for its whole life, and `restore` for its work: a restore never
 * replaces a database a server has open, a server never starts on one being replaced, and
 * two servers never share one. The kernel drops the lock when the process ends, however. */
#ifndef CONSULATE_DB_LOCK_H
#define CONSULATE_DB_LOCK_H

#include <stddef.h>
#include <sys/types.h>

enum db_lock_rc { DB_LOCK_OK = 0, DB_LOCK_HELD = 1, DB_LOCK_ERROR = -1 };

/* Takes the lock of the database at db_path (the file <db_path>.lock, mode 0600, created when
 * absent; its directory must exist). DB_LOCK_OK: *fd holds it until db_lock_release.
 * DB_LOCK_HELD: another process has it, *holder is its pid (0 when unknown). DB_LOCK_ERROR:
 * err says why. */
int db_lock_take(const char *db_path, int *fd, pid_t *holder, char *err, size_t errlen);
void db_lock_release(int fd);

#endif
