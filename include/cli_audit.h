/* cli_audit: the `consulate audit` commands: verify the hash chain and export the log as CSV
 * or JSON Lines, streamed. Uses the store and the pure audit formatting; knows nothing of
 * HTTP. */
#ifndef CONSULATE_CLI_AUDIT_H
#define CONSULATE_CLI_AUDIT_H

struct store;

/* Runs `audit verify` or `audit export --format csv|jsonl [--actor A] [--action PREFIX]
 * [--outcome O] [--since T] [--until T] [--q TEXT] [--output FILE]` on an opened, migrated
 * database. argv[0] is "audit". Returns the exit status: 0 ok, 1 chain broken or I/O or
 * database failure, 2 usage error (message on stderr). */
int cli_audit_main(struct store *s, int argc, char **argv);

#endif
