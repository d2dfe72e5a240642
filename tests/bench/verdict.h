/* verdict: how a benchmark judges its rows. A target is a figure to reach (a speed, a memory
 * bound): missing it prints MISSED and the run goes on and succeeds. A check is a condition
 * of correctness (the right number of rows, an intact audit chain, no error answers): a
 * failed check prints FAILED, is reported on stderr, and the benchmark exits 1, so
 * scripts/bench.sh (and whoever runs it) sees a wrong answer as a failure. */
#ifndef CONSULATE_BENCH_VERDICT_H
#define CONSULATE_BENCH_VERDICT_H

#include <stdio.h>

static int verdict_failures;

/* "ok" or "MISSED" for a target row. */
static inline const char *
verdict_target(int ok)
{
    return ok ? "ok" : "MISSED";
}

/* "ok" or "FAILED" for a correctness check; a failure is counted and what is printed. */
static inline const char *
verdict_check(int ok, const char *what)
{
    if (!ok) {
        verdict_failures++;
        fprintf(stderr, "bench: FAILED: %s\n", what);
    }
    return ok ? "ok" : "FAILED";
}

/* The exit status: 1 when a check failed (after saying how many), else 0. */
static inline int
verdict_exit(void)
{
    if (verdict_failures) {
        fprintf(stderr, "bench: %d correctness check%s FAILED\n", verdict_failures,
                verdict_failures == 1 ? "" : "s");
    }
    return verdict_failures ? 1 : 0;
}

#endif
