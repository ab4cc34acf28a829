#include "timer_wheel.h"

#include <stddef.h>

#define TW_MASK (TW_SLOTS - 1u)
#define TW_WORDS (TW_SLOTS / 64u)

_Static_assert((TW_SLOTS & TW_MASK) == 0, "TW_SLOTS must be a power of two");
_Static_assert(TW_SLOTS % 64u == 0, "the pending bitmap works in 64-bit words");

/* Invariant the expiry and the timeout estimate rely on: a node sits in the
 * slot of its "placement tick" p = max(tick(expires), tick(w->now at arm)),
 * and no node outlives the processing of its placement tick. Hence every
 * armed node has p >= tick(w->now), so a node in the slot d ticks ahead
 * (d >= 1) cannot expire before (tick(w->now) + d) * TW_TICK_MS. */

static uint64_t tick_of(uint64_t ms)
{
	return ms / TW_TICK_MS;
}

static void set_pending(struct timer_wheel *w, uint32_t slot)
{
	w->pending[slot / 64u] |= (uint64_t)1 << (slot % 64u);
}

static void clear_pending(struct timer_wheel *w, uint32_t slot)
{
	w->pending[slot / 64u] &= ~((uint64_t)1 << (slot % 64u));
}

static bool is_pending(const struct timer_wheel *w, uint32_t slot)
{
	return (w->pending[slot / 64u] >> (slot % 64u)) & 1u;
}

/* Distance (0 .. TW_SLOTS-1) from `from` to the first non-empty slot,
 * wrapping around; -1 if every slot is empty. At most TW_WORDS+1 words. */
static int32_t next_pending(const struct timer_wheel *w, uint32_t from)
{
	uint32_t word = from / 64u;
	uint64_t bits = w->pending[word] & (~(uint64_t)0 << (from % 64u));

	/* The last round revisits the first word whole, for the bits below
	 * `from` that only come after the wrap. */
	for (uint32_t i = 0; i <= TW_WORDS; i++) {
		if (bits) {
			uint32_t slot = word * 64u + (uint32_t)__builtin_ctzll(bits);
			return (int32_t)((slot - from) & TW_MASK);
		}
		word = (word + 1u) % TW_WORDS;
		bits = w->pending[word];
	}
	return -1;
}

/* Unlinks n and keeps `pending` exact; n must be armed. */
static void unlink_node(struct timer_wheel *w, struct tw_node *n)
{
	struct tw_node *prev = n->prev, *next = n->next;

	prev->next = next;
	next->prev = prev;
	n->next = n->prev = NULL;
	w->count--;
	/* Only a list head can be left alone in its own circle, so prev is
	 * then a head inside w->slots and its index is the slot. */
	if (prev == next)
		clear_pending(w, (uint32_t)(prev - w->slots));
}

void tw_init(struct timer_wheel *w, uint64_t now_ms)
{
	w->now = now_ms;
	for (uint32_t i = 0; i < TW_WORDS; i++)
		w->pending[i] = 0;
	for (uint32_t i = 0; i < TW_SLOTS; i++) {
		w->slots[i].next = w->slots[i].prev = &w->slots[i];
		w->slots[i].expires = 0;
	}
	w->count = 0;
}

void tw_node_init(struct tw_node *n)
{
	n->next = n->prev = NULL;
	n->expires = 0;
}

bool tw_armed(const struct tw_node *n)
{
	return n->next != NULL;
}

void tw_arm(struct timer_wheel *w, struct tw_node *n, uint64_t expires_ms)
{
	uint64_t t = tick_of(expires_ms), cur = tick_of(w->now);

	if (tw_armed(n))
		unlink_node(w, n);
	n->expires = expires_ms;
	/* A tick already processed would not be visited again for a whole
	 * turn: a late deadline goes to the current slot, which the next
	 * tw_expire() always scans first. */
	if (t < cur)
		t = cur;
	uint32_t slot = (uint32_t)(t & TW_MASK);
	struct tw_node *head = &w->slots[slot];

	n->next = head;
	n->prev = head->prev;
	head->prev->next = n;
	head->prev = n;
	set_pending(w, slot);
	w->count++;
}

void tw_cancel(struct timer_wheel *w, struct tw_node *n)
{
	if (tw_armed(n))
		unlink_node(w, n);
}

int64_t tw_next_timeout(const struct timer_wheel *w, uint64_t now_ms)
{
	if (w->count == 0)
		return -1;

	uint64_t cur = tick_of(w->now);
	uint32_t cslot = (uint32_t)(cur & TW_MASK);
	uint64_t best = UINT64_MAX; /* earliest possible deadline, ms */

	/* The current slot may hold late-armed nodes of any age, so its bound
	 * is exact (a short walk) rather than "now": answering 0 for a far
	 * node there would spin the loop for the rest of the tick. */
	if (is_pending(w, cslot)) {
		const struct tw_node *head = &w->slots[cslot];
		for (const struct tw_node *p = head->next; p != head; p = p->next)
			if (p->expires < best)
				best = p->expires;
	}
	int32_t d = next_pending(w, (cslot + 1u) & TW_MASK);
	if (d >= 0) {
		uint64_t t = cur + 1u + (uint64_t)d;
		/* Saturate instead of wrapping at the end of uint64 time. */
		uint64_t start = t > tick_of(UINT64_MAX) ? UINT64_MAX : t * TW_TICK_MS;
		if (start < best)
			best = start;
	}
	if (best <= now_ms)
		return 0;
	if (best - now_ms > (uint64_t)INT64_MAX)
		return INT64_MAX;
	return (int64_t)(best - now_ms);
}

/* Takes one node due at now_ms out of the slot. Due nodes are unlinked,
 * and the head is moved past the not-due nodes walked over, so repeated
 * calls on a crowded slot cost one pass in all, not one pass per node. */
static struct tw_node *take_due(struct timer_wheel *w, uint32_t slot, uint64_t now_ms)
{
	struct tw_node *head = &w->slots[slot];

	for (struct tw_node *p = head->next; p != head; p = p->next) {
		if (p->expires > now_ms)
			continue;
		if (p != head->next) {
			head->prev->next = head->next;
			head->next->prev = head->prev;
			head->prev = p->prev;
			head->next = p;
			p->prev->next = head;
			p->prev = head;
		}
		unlink_node(w, p);
		return p;
	}
	return NULL;
}

struct tw_node *tw_expire(struct timer_wheel *w, uint64_t now_ms)
{
	/* The clock is monotonic; an older value must not rewind the wheel. */
	if (now_ms < w->now)
		now_ms = w->now;
	if (w->count == 0) {
		w->now = now_ms;
		return NULL;
	}

	uint64_t target = tick_of(now_ms), cur = tick_of(w->now);

	/* One turn visits every slot, and each node's `expires` is checked,
	 * so after a long sleep the ticks before the last turn add nothing. */
	if (target - cur >= TW_SLOTS) {
		cur = target - (TW_SLOTS - 1u);
		w->now = cur * TW_TICK_MS;
	}
	for (;;) {
		struct tw_node *n = take_due(w, (uint32_t)(cur & TW_MASK), now_ms);
		if (n)
			return n;
		if (cur == target || w->count == 0)
			break;
		int32_t d = next_pending(w, (uint32_t)((cur + 1u) & TW_MASK));
		if (d < 0 || (uint64_t)d >= target - cur)
			break;
		/* w->now stays inside the tick being scanned, so a node armed by
		 * the caller between two calls lands where it is still seen. */
		cur += 1u + (uint64_t)d;
		w->now = cur * TW_TICK_MS;
	}
	w->now = now_ms;
	return NULL;
}
