/* jobs_runner: the procedures' runner (procedures.h) over the real world: server/ssh.c for
 * the nodes (one connection per node, kept for the run, pinned host key, the key passphrase
 * from the environment variable named by jobs.ssh_passphrase_env) and the watcher's snapshot
 * for the cluster model. One runner serves one job run (or one prepare); its connections are
 * closed with it. */
#ifndef CONSULATE_JOBS_RUNNER_H
#define CONSULATE_JOBS_RUNNER_H

#include "procedures.h"

struct config;
struct watch;
struct jobs_runner;

/* A runner over cfg (borrowed: timeouts, the passphrase variable) and w (borrowed, may be
 * NULL: no model). *out is filled with the function table; free with jobs_runner_free. */
struct jobs_runner *jobs_runner_new(const struct config *cfg, struct watch *w,
                                    struct proc_runner *out);
/* Closes every connection and frees. NULL is a no-op. */
void jobs_runner_free(struct jobs_runner *r);

#endif
