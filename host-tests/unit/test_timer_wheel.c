/* test_timer_wheel: deterministic cases, then a long randomized run checked
 * against a naive model (an array of deadlines). */
#include "timer_wheel.h"
#include "check.h"

#include <stdint.h>
#include <stdio.h>

#define TURN ((uint64_t)TW_SLOTS * TW_TICK_MS)

static uint64_t rng_state;

static uint64_t rng(void)
{
	/* xorshift64*: the same sequence on every libc. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1DULL;
}

static uint64_t rnd(uint64_t n) /* 0 .. n-1 */
{
	return n ? rng() % n : 0;
}

/* Drains tw_expire() at now; returns how many fired, and whether `want`
 * (may be NULL) was among them. */
static unsigned drain(struct timer_wheel *w, uint64_t now, const struct tw_node *want, int *seen)
{
	unsigned k = 0;
	struct tw_node *n;

	if (seen)
		*seen = 0;
	while ((n = tw_expire(w, now)) != NULL) {
		k++;
		if (n == want && seen)
			(*seen)++;
		if (k > 1000000)
			break;
	}
	return k;
}

static void test_empty(void)
{
	struct timer_wheel w;

	tw_init(&w, 1000);
	CHECK(tw_next_timeout(&w, 1000) == -1);
	CHECK(tw_expire(&w, 1000) == NULL);
	CHECK(tw_expire(&w, 5000000) == NULL);
	CHECK(w.count == 0);
	/* An empty wheel crosses any span at once (no per-tick loop). */
	CHECK(tw_expire(&w, (uint64_t)1 << 62) == NULL);
	CHECK(w.now == (uint64_t)1 << 62);
	CHECK(tw_next_timeout(&w, (uint64_t)1 << 62) == -1);

	struct tw_node n;
	tw_node_init(&n);
	CHECK(!tw_armed(&n));
	tw_cancel(&w, &n); /* unarmed: harmless */
	tw_cancel(&w, &n);
	CHECK(!tw_armed(&n));
	CHECK(w.count == 0);
}

static void test_basic(void)
{
	struct timer_wheel w;
	struct tw_node a, b;
	int seen;

	tw_init(&w, 1000);
	tw_node_init(&a);
	tw_node_init(&b);
	tw_arm(&w, &a, 1100);
	CHECK(tw_armed(&a));
	CHECK(a.expires == 1100);
	CHECK(w.count == 1);
	int64_t t = tw_next_timeout(&w, 1000);
	CHECK(t > 0 && t <= 100);
	CHECK(tw_next_timeout(&w, 1100) == 0);
	CHECK(tw_next_timeout(&w, 2000) == 0);
	CHECK(tw_expire(&w, 1099) == NULL);
	CHECK(tw_armed(&a));
	CHECK(tw_expire(&w, 1100) == &a);
	CHECK(!tw_armed(&a));
	CHECK(a.next == NULL && a.prev == NULL);
	CHECK(tw_expire(&w, 1100) == NULL);
	CHECK(w.count == 0);
	CHECK(tw_next_timeout(&w, 1100) == -1);

	/* Same tick as now: due exactly at its millisecond, not at the tick. */
	tw_init(&w, 1000); /* tick 62 spans 992..1007 */
	tw_arm(&w, &a, 1003);
	tw_arm(&w, &b, 1006);
	CHECK(tw_next_timeout(&w, 1000) == 3);
	CHECK(tw_expire(&w, 1002) == NULL);
	CHECK(tw_expire(&w, 1003) == &a);
	CHECK(tw_expire(&w, 1003) == NULL);
	CHECK(tw_next_timeout(&w, 1003) == 3);
	CHECK(tw_expire(&w, 1005) == NULL);
	CHECK(tw_expire(&w, 1006) == &b);
	CHECK(tw_expire(&w, 1006) == NULL);

	/* Re-arming moves the node (earlier and later) without doubling it. */
	tw_init(&w, 1000);
	tw_arm(&w, &a, 1100);
	tw_arm(&w, &a, 9000);
	CHECK(w.count == 1);
	CHECK(drain(&w, 1100, NULL, NULL) == 0);
	CHECK(drain(&w, 8999, NULL, NULL) == 0);
	tw_arm(&w, &a, 9000 + 3 * TURN);
	CHECK(drain(&w, 9000, NULL, NULL) == 0);
	tw_arm(&w, &a, 9001);
	CHECK(drain(&w, 9001, &a, &seen) == 1 && seen == 1);
	CHECK(w.count == 0);

	/* Cancel of an armed node, then again. */
	tw_arm(&w, &a, 9500);
	tw_arm(&w, &b, 9500);
	tw_cancel(&w, &a);
	tw_cancel(&w, &a);
	CHECK(!tw_armed(&a) && tw_armed(&b));
	CHECK(w.count == 1);
	CHECK(drain(&w, 9500, &b, &seen) == 1 && seen == 1);
	CHECK(tw_next_timeout(&w, 9500) == -1);
}

static void test_past(void)
{
	struct timer_wheel w;
	struct tw_node a, b, c;
	int seen;

	tw_init(&w, 100000);
	tw_node_init(&a);
	tw_node_init(&b);
	tw_node_init(&c);
	tw_arm(&w, &a, 0);         /* far past */
	tw_arm(&w, &b, 99990);     /* previous tick */
	tw_arm(&w, &c, 100000);    /* exactly now */
	CHECK(tw_next_timeout(&w, 100000) == 0);
	CHECK(drain(&w, 100000, NULL, NULL) == 3);
	CHECK(!tw_armed(&a) && !tw_armed(&b) && !tw_armed(&c));

	/* Past deadline after the wheel moved on, a whole turn's worth back:
	 * its own slot was just processed, it must still fire next time. */
	CHECK(drain(&w, 100000 + 5 * TURN + 7, NULL, NULL) == 0);
	tw_arm(&w, &a, 100000 + 4 * TURN + 7);
	CHECK(tw_next_timeout(&w, 100000 + 5 * TURN + 7) == 0);
	CHECK(drain(&w, 100000 + 5 * TURN + 7, &a, &seen) == 1 && seen == 1);

	/* Armed in the past from inside the expire loop: fires in that loop. */
	uint64_t now = 200000;
	tw_init(&w, now);
	tw_arm(&w, &a, now + 10);
	tw_arm(&w, &b, now + 5000);
	now += 20;
	struct tw_node *n = tw_expire(&w, now);
	CHECK(n == &a);
	tw_arm(&w, &c, now - 15);
	tw_arm(&w, &a, now);
	int k = 0, got_a = 0, got_c = 0;
	while ((n = tw_expire(&w, now)) != NULL && k < 10) {
		k++;
		got_a += n == &a;
		got_c += n == &c;
	}
	CHECK(k == 2 && got_a == 1 && got_c == 1);
	CHECK(tw_armed(&b));

	/* A clock that steps back must not fire anything early. */
	tw_init(&w, 5000);
	tw_arm(&w, &a, 5010);
	CHECK(tw_expire(&w, 4000) == NULL);
	CHECK(tw_armed(&a));
	CHECK(tw_expire(&w, 5010) == &a);
}

static void test_far(void)
{
	struct timer_wheel w;
	struct tw_node a, b;
	uint64_t now = 123457; /* not tick aligned */

	tw_init(&w, now);
	tw_node_init(&a);
	tw_node_init(&b);

	/* Exactly one turn ahead: same slot as now. Must not read as due, or
	 * the loop would spin for the rest of the tick. */
	tw_arm(&w, &a, now + TURN);
	int64_t t = tw_next_timeout(&w, now);
	CHECK(t > 0 && (uint64_t)t <= TURN);
	CHECK(tw_expire(&w, now) == NULL);

	/* Three turns ahead: passes its slot twice without firing. */
	tw_arm(&w, &b, now + 3 * TURN + 40);
	for (uint64_t x = now; x < now + 3 * TURN + 40; x += 97) {
		struct tw_node *n;
		while ((n = tw_expire(&w, x)) != NULL) {
			CHECK(n == &a);
			CHECK(x >= a.expires);
			CHECK(x < a.expires + 97);
		}
		t = tw_next_timeout(&w, x);
		uint64_t min = b.expires;
		if (tw_armed(&a) && a.expires < min)
			min = a.expires;
		CHECK(t > 0 && (uint64_t)t <= min - x);
	}
	CHECK(!tw_armed(&a));
	CHECK(tw_armed(&b));
	CHECK(tw_expire(&w, now + 3 * TURN + 39) == NULL);
	CHECK(tw_expire(&w, now + 3 * TURN + 40) == &b);

	/* A huge jump with many nodes: every one fires once, quickly. */
	static struct tw_node many[3000];
	static unsigned fired[3000];
	tw_init(&w, 77);
	for (unsigned i = 0; i < 3000; i++) {
		tw_node_init(&many[i]);
		fired[i] = 0;
		tw_arm(&w, &many[i], 77 + (uint64_t)i * 37 % (7 * TURN));
	}
	CHECK(w.count == 3000);
	struct tw_node *n;
	unsigned total = 0, bad = 0;
	while ((n = tw_expire(&w, (uint64_t)1 << 50)) != NULL) {
		if (n < many || n >= many + 3000) {
			bad++;
			break;
		}
		fired[n - many]++;
		total++;
	}
	CHECK(bad == 0);
	CHECK(total == 3000);
	for (unsigned i = 0; i < 3000; i++)
		if (fired[i] != 1)
			bad++;
	CHECK(bad == 0);
	CHECK(w.count == 0);
	CHECK(tw_next_timeout(&w, (uint64_t)1 << 50) == -1);

	/* Deadlines at the end of uint64 time neither wrap nor fire early. */
	uint64_t top = UINT64_MAX - 100;
	tw_init(&w, top);
	tw_arm(&w, &a, UINT64_MAX);
	t = tw_next_timeout(&w, top);
	CHECK(t >= 0 && t <= 100);
	CHECK(tw_expire(&w, UINT64_MAX - 1) == NULL);
	CHECK(tw_expire(&w, UINT64_MAX) == &a);
	tw_init(&w, 0);
	tw_arm(&w, &a, UINT64_MAX);
	t = tw_next_timeout(&w, 0);
	CHECK(t >= 0);
	CHECK(tw_expire(&w, UINT64_MAX / 2) == NULL);
	CHECK(tw_armed(&a));
}

/* ---- randomized run against the model ---- */

struct model {
	struct tw_node *nodes;
	uint64_t *dl;
	unsigned char *armed;
	unsigned n, narmed;
	uint64_t now;
	int no_rearm; /* final drain: callbacks stop re-arming */
	/* failure counters, reported as CHECKs at the end */
	unsigned bad_ptr, bad_twice, bad_early, bad_late, bad_state, bad_timeout, bad_count, bad_spin, bad_bitmap;
	unsigned long fired;
};

static void report(const char *what, unsigned *ctr, uint64_t now, unsigned i)
{
	if (++*ctr <= 5)
		fprintf(stderr, "timer_wheel random: %s (node %u, now %llu)\n", what, i,
			(unsigned long long)now);
}

static uint64_t pick_deadline(struct model *m)
{
	uint64_t now = m->now, back;

	switch (rnd(6)) {
	case 0: /* in the past */
		back = rnd(3) ? rnd(100) : rnd(3 * TURN);
		return back > now ? 0 : now - back;
	case 1:
		return now + rnd(TW_TICK_MS * 3);
	case 2:
		return now + rnd(2000);
	case 3:
		return now + rnd(TURN);
	default:
		return now + rnd(3 * TURN + 1);
	}
}

static void model_arm(struct timer_wheel *w, struct model *m, unsigned i)
{
	uint64_t e = pick_deadline(m);

	tw_arm(w, &m->nodes[i], e);
	if (!m->armed[i])
		m->narmed++;
	m->armed[i] = 1;
	m->dl[i] = e;
}

static void model_check_timeout(struct timer_wheel *w, struct model *m, int drained)
{
	int64_t t = tw_next_timeout(w, m->now);
	uint64_t min = UINT64_MAX;

	for (unsigned i = 0; i < m->n; i++)
		if (m->armed[i] && m->dl[i] < min)
			min = m->dl[i];
	if (!m->narmed) {
		if (t != -1)
			report("timeout not -1 with nothing armed", &m->bad_timeout, m->now, 0);
		return;
	}
	uint64_t limit = min > m->now ? min - m->now : 0;
	if (t < 0 || (uint64_t)t > limit)
		report("timeout later than the earliest deadline", &m->bad_timeout, m->now, 0);
	/* Right after a full expire nothing is due, so 0 would be a busy loop. */
	if (drained && t == 0)
		report("timeout 0 right after draining", &m->bad_spin, m->now, 0);
}

/* The documented meaning of the bitmap: bit set = slot list not empty.
 * A stale bit would only cost wake-ups, which no other check would see. */
static void model_check_bitmap(const struct timer_wheel *w, struct model *m)
{
	for (unsigned i = 0; i < TW_SLOTS; i++) {
		int bit = (w->pending[i / 64] >> (i % 64)) & 1;
		int used = w->slots[i].next != &w->slots[i];
		if (bit != used) {
			report("pending bit wrong", &m->bad_bitmap, m->now, i);
			return;
		}
	}
}

static void model_expire(struct timer_wheel *w, struct model *m)
{
	struct tw_node *n;
	unsigned guard = 0;

	while ((n = tw_expire(w, m->now)) != NULL) {
		if (n < m->nodes || n >= m->nodes + m->n) {
			report("foreign node returned", &m->bad_ptr, m->now, 0);
			return;
		}
		unsigned i = (unsigned)(n - m->nodes);
		if (!m->armed[i])
			report("unarmed node fired (twice?)", &m->bad_twice, m->now, i);
		else if (m->dl[i] > m->now)
			report("node fired before its deadline", &m->bad_early, m->now, i);
		if (tw_armed(n) || n->next || n->prev)
			report("fired node still linked", &m->bad_state, m->now, i);
		if (m->armed[i]) {
			m->armed[i] = 0;
			m->narmed--;
		}
		m->fired++;
		/* What a callback does: re-arm this or another node, maybe in
		 * the past (must then fire within this same loop). */
		unsigned r = m->no_rearm ? 8u : (unsigned)rnd(8);
		if (r == 0)
			model_arm(w, m, i);
		else if (r == 1)
			model_arm(w, m, (unsigned)rnd(m->n));
		else if (r == 2) {
			unsigned j = (unsigned)rnd(m->n);
			tw_cancel(w, &m->nodes[j]);
			if (m->armed[j]) {
				m->armed[j] = 0;
				m->narmed--;
			}
		}
		if (++guard > 10u * m->n + 100) {
			report("expire loop does not end", &m->bad_twice, m->now, i);
			return;
		}
	}
	for (unsigned i = 0; i < m->n; i++)
		if (m->armed[i] && m->dl[i] <= m->now)
			report("due node not fired", &m->bad_late, m->now, i);
	model_check_timeout(w, m, 1);
	model_check_bitmap(w, m);
}

static void random_run(uint64_t seed, unsigned nnodes, uint64_t start, unsigned ops)
{
	static struct tw_node nodes[4096];
	static uint64_t dl[4096];
	static unsigned char armed[4096];
	static struct timer_wheel w;
	struct model m = {.nodes = nodes, .dl = dl, .armed = armed, .n = nnodes, .now = start};

	rng_state = seed;
	for (unsigned i = 0; i < nnodes; i++) {
		tw_node_init(&nodes[i]);
		armed[i] = 0;
	}
	tw_init(&w, start);
	for (unsigned op = 0; op < ops; op++) {
		unsigned r = (unsigned)rnd(100);
		unsigned i = (unsigned)rnd(nnodes);

		if (r < 35) {
			model_arm(&w, &m, i);
		} else if (r < 47) {
			tw_cancel(&w, &nodes[i]);
			if (armed[i]) {
				armed[i] = 0;
				m.narmed--;
			}
			if (tw_armed(&nodes[i]))
				report("cancelled node still armed", &m.bad_state, m.now, i);
			if (op % 4 == 0)
				model_check_bitmap(&w, &m);
		} else if (r < 55) {
			model_check_timeout(&w, &m, 0);
		} else if (r < 78) {
			unsigned s = (unsigned)rnd(100);
			if (s < 70)
				m.now += rnd(TW_TICK_MS * 2);
			else if (s < 90)
				m.now += rnd(3000);
			else if (s < 99)
				m.now += rnd(5 * TURN);
			else
				m.now += 1000000 + rnd(1000000000);
		} else {
			model_expire(&w, &m);
		}
		if (w.count != m.narmed)
			report("count differs from the model", &m.bad_count, m.now, w.count);
		if (tw_armed(&nodes[i]) != (armed[i] != 0))
			report("armed state differs from the model", &m.bad_state, m.now, i);
	}
	model_expire(&w, &m);
	m.no_rearm = 1;
	m.now += 4 * TURN;
	model_expire(&w, &m);
	/* Every deadline was at most 3 turns ahead: all must have fired. */
	if (m.narmed)
		report("nodes left armed at the end", &m.bad_late, m.now, m.narmed);

	CHECK(m.bad_ptr == 0);
	CHECK(m.bad_twice == 0);
	CHECK(m.bad_early == 0);
	CHECK(m.bad_late == 0);
	CHECK(m.bad_state == 0);
	CHECK(m.bad_timeout == 0);
	CHECK(m.bad_count == 0);
	CHECK(m.bad_spin == 0);
	CHECK(m.bad_bitmap == 0);
	CHECK(m.fired > ops / 20); /* the run exercised expiry at all */
}

int main(void)
{
	test_empty();
	test_basic();
	test_past();
	test_far();
	random_run(0x9E3779B97F4A7C15ULL, 300, 1000000007ULL, 200000);
	random_run(12345, 7, 0, 200000);          /* few nodes, many re-arms, from 0 */
	random_run(777, 4000, 1ULL << 40, 60000);  /* crowded slots */
	random_run(42, 1000, (1ULL << 62) + 3, 100000);
	return check_summary("timer_wheel");
}
