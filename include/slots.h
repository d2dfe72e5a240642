/* slots: counts long-held resources (live-update streams, blocking proxied reads) per user
 * and in total, so one user or a crowd cannot hold every worker thread. Thread-safe. */
#ifndef CONSULATE_SLOTS_H
#define CONSULATE_SLOTS_H

#include <stdint.h>

struct slots;

enum slots_rc {
    SLOTS_OK = 0,
    SLOTS_USER_FULL = 1,  /* this user already holds per_user */
    SLOTS_TOTAL_FULL = 2, /* everyone together already holds total */
};

/* A counter allowing per_user slots to one user and total to all (each ≥ 1). Free it with
 * slots_free. */
struct slots *slots_new(int per_user, int total);
void slots_free(struct slots *s);
/* Takes one slot for user_id. SLOTS_OK, or why not (nothing taken). */
int slots_take(struct slots *s, int64_t user_id);
/* Gives back a slot taken by slots_take for user_id. */
void slots_give(struct slots *s, int64_t user_id);
/* How many slots user_id holds, and all together (for metrics and tests). */
int slots_held(struct slots *s, int64_t user_id);
int slots_total(struct slots *s);

#endif
