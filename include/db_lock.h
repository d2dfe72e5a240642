/* db_lock: who holds the database, through fcntl locks on two bytes of <database>.lock (the
 * kernel drops them when the process ends, however it ends):
 *  - byte 0, "serving": `serve` holds it exclusively for its whole life (its pid is written
 *    in the file), so two servers never share a database;
 *  - byte 1, "in use": every process with the database open holds it shared (the server and
 *    the other commands), `restore` exclusively.
 * So a restore never replaces a database a server or another command has open, and nothing
 * opens one while it is being replaced. */
#ifndef CONSULATE_DB_LOCK_H
#define CONSULATE_DB_LOCK_H

#include <stddef.h>
#include <sys/types.h>

enum db_lock_rc { DB_LOCK_OK = 0, DB_LOCK_HELD = 1, DB_LOCK_ERROR = -1 };

enum db_lock_mode {
    DB_LOCK_USE = 0,     /* a command using the database: byte 1 shared */
    DB_LOCK_SERVE = 1,   /* the server: byte 0 exclusive, byte 1 shared */
    DB_LOCK_REPLACE = 2, /* restore: bytes 0 and 1 exclusive */
};

/* Takes the lock of the database at db_path in mode (the file <db_path>.lock, mode 0600,
 * created when absent, with missing directories 0700), without waiting. DB_LOCK_OK: *fd holds it
 * until db_lock_release. DB_LOCK_HELD: another process holds what conflicts, *holder is its
 * pid (0 when unknown) and *serving is 1 when that is a server. DB_LOCK_ERROR: err says why. */
int db_lock_take(const char *db_path, enum db_lock_mode mode, int *fd, pid_t *holder, int *serving,
                 char *err, size_t errlen);
void db_lock_release(int fd);

#endif
