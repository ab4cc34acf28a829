/* timer_wheel: one-level hashed timing wheel with intrusive nodes.
 *
 * Promises: arm and cancel are O(1) and never allocate; cancelling an
 * unarmed node is harmless; a node fires no earlier than its deadline and
 * at most one tick (TW_TICK_MS) late once the owner calls tw_expire().
 * Deadlines further away than one turn of the wheel stay in their slot and
 * are skipped (their `expires` is checked) until their turn comes, so no
 * cascading is needed: SMTP timers are seconds to minutes long and most are
 * cancelled before they fire. Times are milliseconds of a monotonic clock
 * supplied by the caller, which keeps the wheel testable with a fake clock.
 */
#ifndef TARPITD_TIMER_WHEEL_H
#define TARPITD_TIMER_WHEEL_H

#include <stdbool.h>
#include <stdint.h>

#include "limits.h"

struct tw_node {
	struct tw_node *next, *prev; /* NULL when unarmed */
	uint64_t expires;            /* ms */
};

struct timer_wheel {
	uint32_t count; /* first: a short access on MIPS16 (see struct server) */
	uint64_t now;     /* ms; the wheel has processed every tick before it */
	uint64_t pending[TW_SLOTS / 64]; /* bit set = slot list not empty */
	struct tw_node slots[TW_SLOTS];  /* circular list heads */
};

void tw_init(struct timer_wheel *w, uint64_t now_ms);
void tw_node_init(struct tw_node *n);
/* (Re)arms n; a deadline in the past fires at the next tw_expire(). */
void tw_arm(struct timer_wheel *w, struct tw_node *n, uint64_t expires_ms);
void tw_cancel(struct timer_wheel *w, struct tw_node *n);
bool tw_armed(const struct tw_node *n);
/* Milliseconds until the earliest slot that may hold an expiring node,
 * 0 if one is due, -1 if nothing is armed. Never later than the true
 * next deadline; may be earlier (a far node in a near slot). */
int64_t tw_next_timeout(const struct timer_wheel *w, uint64_t now_ms);
/* Advances the wheel to now_ms and returns one expired node (unarmed
 * before it is returned), or NULL when none is left. Call in a loop. */
struct tw_node *tw_expire(struct timer_wheel *w, uint64_t now_ms);

#endif
