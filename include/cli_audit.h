/* cli_audit: the `consulate audit` commands: verify the log (chain, MACs, anchor), reseal it
 * after a loss, and export it as CSV or JSON Lines, streamed. Uses the store and the audit
 * modules; knows nothing of HTTP. */
#ifndef CONSULATE_CLI_AUDIT_H
#define CONSULATE_CLI_AUDIT_H

struct store;

/* Runs `audit verify`, `audit reseal` or `audit export --format csv|jsonl [--actor A]
 * [--action PREFIX] [--outcome O] [--since T] [--until T] [--q TEXT] [--output FILE]` on an
 * opened, migrated database whose audit key and anchor files are at key_path and anchor_path.
 * argv[0] is "audit". Returns the exit status: 0 ok, 1 the log failed verification or an I/O
 * or database failure, 2 usage error (message on stderr). */
int cli_audit_main(struct store *s, const char *key_path, const char *anchor_path, int argc,
                   char **argv);

#endif
