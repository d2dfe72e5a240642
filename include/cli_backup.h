/* cli_backup: `consulate backup FILE` (a consistent copy of the live database, through
 * SQLite's backup API, while the server runs) and `consulate restore FILE` (refused while a
 * server holds the database (include/db_lock.h) and for a copy whose audit chain or MACs do
 * not verify; the database replaced atomically, the previous one and its audit anchor kept
 * beside it, then the restored log resealed on the record). */
#ifndef CONSULATE_CLI_BACKUP_H
#define CONSULATE_CLI_BACKUP_H

#include <stddef.h>

/* argv[0] is "backup", argv[1] the file. Returns the exit status (0, 1, 2 usage). */
int cli_backup_main(const char *db_path, int argc, char **argv);

/* argv[0] is "restore", argv[1] the file; key and anchor are the audit files. Returns the
 * exit status (0, 1, 2 usage). */
int cli_restore_main(const char *db_path, const char *key_path, const char *anchor_path, int argc,
                     char **argv);

/* Before a migration from schema version from to to: a consistent copy of the database as
 * <db_path>.pre-migration-<from>-<to>-<UTC stamp> (mode 0600). Returns its name (the caller
 * frees it), or NULL with err set. */
char *backup_before_migration(const char *db_path, int from, int to, char *err, size_t errlen);

#endif
