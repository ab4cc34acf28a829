/* test_harvest: the harvest table with a fake clock: the threshold within
 * one window and across two, the mark's expiry and extension, hang-ups,
 * IPv4 per address and IPv6 per /64, replacement of the least recently
 * seen entry in a full table, the ban's once-per-window rule, and a long
 * randomized run against a naive model (linear scan, same rules). */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "harvest.h"

static struct ip_addr A(const char *s)
{
	struct ip_addr a;

	if (ip_parse(s, &a) != 0) {
		fprintf(stderr, "bad test address %s\n", s);
		exit(2);
	}
	return a;
}

static struct harvest_params p = { 3, 1000 };

static bool unk(struct harvest *h, const char *s, uint64_t t)
{
	struct ip_addr a = A(s);
	return harvest_unknown(h, &a, t, &p);
}

static bool disc(struct harvest *h, const char *s, uint64_t t)
{
	struct ip_addr a = A(s);
	return harvest_discredited(h, &a, t, &p);
}

static bool hang(struct harvest *h, const char *s, uint64_t t)
{
	struct ip_addr a = A(s);
	return harvest_hangup(h, &a, t, &p);
}

static bool ban(struct harvest *h, const char *s, uint64_t t)
{
	struct ip_addr a = A(s);
	return harvest_ban_due(h, &a, t, &p);
}

static void test_basics(void)
{
	struct harvest *h;

	CHECK(harvest_new(0) == NULL);
	CHECK(harvest_new(UINT32_MAX) == NULL);
	CHECK(harvest_entry_bytes() > 16 && harvest_entry_bytes() <= 64);
	h = harvest_new(5);
	CHECK(h != NULL);
	if (!h)
		return;
	CHECK(harvest_size(h) == 5);
	CHECK(harvest_used(h) == 0);
	/* A lookup never creates an entry. */
	CHECK(!disc(h, "192.0.2.1", 0));
	CHECK(!ban(h, "192.0.2.1", 0));
	CHECK(harvest_used(h) == 0);
	CHECK(harvest_count_discredited(h, 0, &p) == 0);
	harvest_free(h);
	harvest_free(NULL);
	CHECK(harvest_size(NULL) == 0 && harvest_used(NULL) == 0);
	CHECK(!harvest_unknown(NULL, &(struct ip_addr){ { 0 } }, 0, &p));
}

static void test_threshold(void)
{
	struct harvest *h = harvest_new(8);

	if (!h) {
		CHECK(h != NULL);
		return;
	}
	/* Exactly the 3rd unknown within the window, at its last millisecond. */
	CHECK(!unk(h, "192.0.2.1", 0));
	CHECK(!disc(h, "192.0.2.1", 1));
	CHECK(!unk(h, "192.0.2.1", 500));
	CHECK(!disc(h, "192.0.2.1", 998));
	CHECK(unk(h, "192.0.2.1", 999));
	CHECK(disc(h, "192.0.2.1", 999));
	CHECK(harvest_used(h) == 1);
	/* Already discredited: not "newly" again. */
	CHECK(!unk(h, "192.0.2.1", 1000));
	CHECK(harvest_count_discredited(h, 1000, &p) == 1);

	/* Spread over two windows: the count starts again at the boundary. */
	CHECK(!unk(h, "192.0.2.2", 0));
	CHECK(!unk(h, "192.0.2.2", 500));
	CHECK(!unk(h, "192.0.2.2", 1000)); /* new window, count 1 */
	CHECK(!unk(h, "192.0.2.2", 1500));
	CHECK(!disc(h, "192.0.2.2", 1998));
	CHECK(unk(h, "192.0.2.2", 1999)); /* 3rd within [1000, 2000) */
	CHECK(disc(h, "192.0.2.2", 1999));
	harvest_free(h);

	/* Threshold 1: the first unknown discredits. */
	h = harvest_new(1);
	if (h) {
		struct harvest_params one = { 1, 1000 };
		struct ip_addr a = A("198.51.100.7");

		CHECK(harvest_unknown(h, &a, 5, &one));
		CHECK(harvest_discredited(h, &a, 5, &one));
		harvest_free(h);
	}
}

static void test_expiry(void)
{
	struct harvest *h = harvest_new(8);

	if (!h) {
		CHECK(h != NULL);
		return;
	}
	CHECK(!unk(h, "192.0.2.1", 0));
	CHECK(!unk(h, "192.0.2.1", 10));
	CHECK(unk(h, "192.0.2.1", 20));
	/* A whole window after the last offence, not a millisecond earlier. */
	CHECK(disc(h, "192.0.2.1", 1019));
	CHECK(harvest_count_discredited(h, 1019, &p) == 1);
	CHECK(harvest_count_discredited(h, 1020, &p) == 0);
	CHECK(!disc(h, "192.0.2.1", 1020));
	CHECK(!disc(h, "192.0.2.1", 1021));
	/* The count went with the mark. */
	CHECK(!unk(h, "192.0.2.1", 1030));
	CHECK(!unk(h, "192.0.2.1", 1031));
	CHECK(unk(h, "192.0.2.1", 1032));

	/* A new offence extends the mark by a whole window. */
	CHECK(!unk(h, "192.0.2.9", 0));
	CHECK(!unk(h, "192.0.2.9", 1));
	CHECK(unk(h, "192.0.2.9", 2));
	CHECK(!unk(h, "192.0.2.9", 900));
	CHECK(disc(h, "192.0.2.9", 1899));
	CHECK(!hang(h, "192.0.2.9", 1899)); /* extends again, not newly */
	CHECK(disc(h, "192.0.2.9", 2898));
	CHECK(!disc(h, "192.0.2.9", 2899));
	/* Expiry seen first by an offence: that offence counts afresh. */
	CHECK(!unk(h, "192.0.2.9", 5000));
	CHECK(!disc(h, "192.0.2.9", 5000));

	/* An unknown in an expired mark's first call: same result. */
	CHECK(!unk(h, "192.0.2.10", 0));
	CHECK(!unk(h, "192.0.2.10", 1));
	CHECK(unk(h, "192.0.2.10", 2));
	CHECK(!unk(h, "192.0.2.10", 1002)); /* mark over; count 1 */
	CHECK(!disc(h, "192.0.2.10", 1002));
	harvest_free(h);
}

static void test_hangup(void)
{
	struct harvest *h = harvest_new(8);

	if (!h) {
		CHECK(h != NULL);
		return;
	}
	CHECK(hang(h, "203.0.113.5", 100));
	CHECK(harvest_used(h) == 1);
	CHECK(disc(h, "203.0.113.5", 100));
	CHECK(!hang(h, "203.0.113.5", 200));
	CHECK(disc(h, "203.0.113.5", 1199));
	CHECK(!disc(h, "203.0.113.5", 1200));
	/* After expiry a hang-up discredits anew. */
	CHECK(hang(h, "203.0.113.5", 1300));
	/* Below the threshold, a hang-up still discredits at once. */
	CHECK(!unk(h, "203.0.113.6", 1400));
	CHECK(hang(h, "203.0.113.6", 1401));
	CHECK(!unk(h, "203.0.113.6", 1402)); /* third offence, not "newly" */
	CHECK(harvest_count_discredited(h, 1402, &p) == 2);
	harvest_free(h);
}

static void test_families(void)
{
	struct harvest *h = harvest_new(16);
	struct harvest_params two = { 2, 1000 };
	struct ip_addr a, b, m;

	if (!h) {
		CHECK(h != NULL);
		return;
	}
	p.threshold = 2;
	/* One /64 is one source, whatever the host part. */
	CHECK(!unk(h, "2001:db8:1:2::1", 0));
	CHECK(unk(h, "2001:db8:1:2:ffff:ffff:ffff:fffe", 1));
	CHECK(disc(h, "2001:db8:1:2:abcd::77", 2));
	CHECK(harvest_used(h) == 1);
	/* The neighbouring /64s are not. */
	CHECK(!disc(h, "2001:db8:1:3::1", 2));
	CHECK(!disc(h, "2001:db8:1:1:ffff:ffff:ffff:ffff", 2));
	CHECK(!unk(h, "2001:db8:1:3::1", 3));
	CHECK(!unk(h, "2001:db8:1:1::1", 3));
	CHECK(!unk(h, "2001:db8:8001:2::1", 3)); /* differs above the /48 */
	CHECK(harvest_used(h) == 4);

	/* IPv4 per address: all of them share the zero first 64 bits. */
	CHECK(!unk(h, "192.0.2.1", 10));
	CHECK(!unk(h, "192.0.2.2", 10));
	CHECK(!unk(h, "192.0.2.3", 10));
	CHECK(!unk(h, "10.0.0.1", 10));
	CHECK(!disc(h, "192.0.2.1", 11));
	CHECK(harvest_used(h) == 8);

	/* A mapped peer is the IPv4 address it maps. */
	memset(&m, 0, sizeof m);
	m.a[10] = m.a[11] = 0xff;
	m.a[12] = 192;
	m.a[13] = 0;
	m.a[14] = 2;
	m.a[15] = 1;
	CHECK(harvest_unknown(h, &m, 12, &two));
	CHECK(disc(h, "192.0.2.1", 12));
	CHECK(disc(h, "::ffff:192.0.2.1", 12));
	CHECK(!disc(h, "::ffff:192.0.2.2", 12));
	CHECK(harvest_used(h) == 8);

	/* IPv4-compatible and other IPv6 forms are IPv6: ::/64 holds both. */
	a = A("::1");
	b = A("::192.0.2.1");
	CHECK(!harvest_unknown(h, &a, 20, &two));
	CHECK(harvest_unknown(h, &b, 20, &two));
	CHECK(harvest_used(h) == 9);
	p.threshold = 3;
	harvest_free(h);
}

static void test_lru(void)
{
	struct harvest *h = harvest_new(3);
	uint32_t i;

	if (!h) {
		CHECK(h != NULL);
		return;
	}
	p.threshold = 2;
	CHECK(!unk(h, "192.0.2.1", 1)); /* A */
	CHECK(!unk(h, "192.0.2.2", 2)); /* B */
	CHECK(!unk(h, "192.0.2.3", 3)); /* C */
	CHECK(harvest_used(h) == 3);
	/* A lookup counts as seen: B is now the least recently seen. */
	CHECK(!disc(h, "192.0.2.1", 4));
	CHECK(!unk(h, "192.0.2.4", 5)); /* D replaces B */
	CHECK(harvest_used(h) == 3);
	CHECK(unk(h, "192.0.2.1", 6));  /* A kept its count */
	CHECK(!unk(h, "192.0.2.2", 7)); /* B starts again; replaces C */
	CHECK(unk(h, "192.0.2.4", 8));  /* D kept its count */
	CHECK(disc(h, "192.0.2.4", 8));
	CHECK(!unk(h, "192.0.2.3", 9)); /* C is new again; replaces A */
	CHECK(!disc(h, "192.0.2.1", 10));
	CHECK(harvest_count_discredited(h, 10, &p) == 1); /* D only */
	/* A lookup of an absent source neither creates nor evicts. */
	CHECK(harvest_used(h) == 3);
	CHECK(disc(h, "192.0.2.4", 11));

	/* A ban check counts as seen too: order is now D(11) C(9) B(7). */
	CHECK(hang(h, "192.0.2.2", 12)); /* B seen at 12 */
	CHECK(ban(h, "192.0.2.4", 13));  /* D seen at 13 */
	CHECK(!unk(h, "192.0.2.5", 14)); /* replaces C */
	CHECK(disc(h, "192.0.2.2", 15) && disc(h, "192.0.2.4", 15));
	CHECK(!ban(h, "192.0.2.3", 15));
	CHECK(harvest_used(h) == 3);

	/* Many sources through a full table: memory stays put. */
	for (i = 0; i < 1000; i++) {
		struct ip_addr a = A("198.51.100.0");

		a.a[14] = (uint8_t)(i >> 8);
		a.a[15] = (uint8_t)i;
		harvest_unknown(h, &a, 100 + i, &p);
	}
	CHECK(harvest_used(h) == 3);
	CHECK(harvest_size(h) == 3);
	p.threshold = 3;
	harvest_free(h);
}

static void test_ban(void)
{
	struct harvest *h = harvest_new(4);

	if (!h) {
		CHECK(h != NULL);
		return;
	}
	CHECK(!unk(h, "192.0.2.1", 0));
	CHECK(!ban(h, "192.0.2.1", 0)); /* known but not discredited */
	CHECK(hang(h, "192.0.2.1", 0));
	CHECK(ban(h, "192.0.2.1", 0));
	CHECK(!ban(h, "192.0.2.1", 0));
	CHECK(!ban(h, "192.0.2.1", 500));
	CHECK(!unk(h, "192.0.2.1", 900)); /* the mark now lasts to 1900 */
	CHECK(!ban(h, "192.0.2.1", 999));
	CHECK(ban(h, "192.0.2.1", 1000));
	CHECK(!ban(h, "192.0.2.1", 1500));
	CHECK(!ban(h, "192.0.2.1", 1999)); /* the mark ended at 1900 */
	CHECK(!disc(h, "192.0.2.1", 1999));
	CHECK(hang(h, "192.0.2.1", 2100));
	CHECK(ban(h, "192.0.2.1", 2100)); /* last ban at 1000 */
	CHECK(!ban(h, "192.0.2.1", 2101));
	/* Per source. */
	CHECK(hang(h, "192.0.2.2", 2100));
	CHECK(ban(h, "192.0.2.2", 2100));
	harvest_free(h);
}

/* ---- the naive model -------------------------------------------------------- */

struct mentry {
	uint8_t key[16];
	uint64_t wstart, loff, lban;
	uint32_t count;
	bool disc, banned;
	uint64_t stamp;
};

struct model {
	struct mentry *e;
	uint32_t size, used;
	uint64_t seq;
};

static void mkey(const struct ip_addr *a, uint8_t k[16])
{
	static const uint8_t v4[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	int i;

	memcpy(k, a->a, 16);
	if (memcmp(k, v4, 12) != 0)
		for (i = 8; i < 16; i++)
			k[i] = 0;
}

static struct mentry *mfind(struct model *m, const struct ip_addr *a, uint64_t now, bool create)
{
	uint8_t k[16];
	uint32_t i, victim = 0;

	mkey(a, k);
	for (i = 0; i < m->used; i++) {
		if (memcmp(m->e[i].key, k, 16) == 0) {
			m->e[i].stamp = ++m->seq;
			return &m->e[i];
		}
	}
	if (!create)
		return NULL;
	if (m->used < m->size) {
		victim = m->used++;
	} else {
		for (i = 1; i < m->used; i++)
			if (m->e[i].stamp < m->e[victim].stamp)
				victim = i;
	}
	memset(&m->e[victim], 0, sizeof m->e[victim]);
	memcpy(m->e[victim].key, k, 16);
	m->e[victim].wstart = now;
	m->e[victim].stamp = ++m->seq;
	return &m->e[victim];
}

static void mexpire(struct mentry *e, uint64_t now, const struct harvest_params *q)
{
	if (e->disc && now - e->loff >= q->window_ms) {
		e->disc = false;
		e->count = 0;
		e->wstart = now;
	}
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void test_model(uint32_t size, uint32_t nsources, unsigned long ops)
{
	struct harvest *h = harvest_new(size);
	struct model m = { calloc(size, sizeof(struct mentry)), size, 0, 0 };
	struct ip_addr *src = calloc(nsources, sizeof *src);
	struct harvest_params q = { 3, 200 };
	unsigned long i, mismatches = 0;
	uint64_t now = 1000;
	uint32_t j;

	if (!h || !m.e || !src) {
		CHECK(h && m.e && src);
		goto out;
	}
	/* Half IPv4, half IPv6 /64s (host parts vary per operation). */
	for (j = 0; j < nsources; j++) {
		uint64_t r = rnd();
		int b;

		if (j % 2) {
			src[j].a[10] = src[j].a[11] = 0xff;
			for (b = 12; b < 16; b++)
				src[j].a[b] = (uint8_t)(r >> (8 * (b - 12)));
			src[j].a[15] = (uint8_t)j; /* distinct */
			src[j].a[14] = (uint8_t)(j >> 8);
		} else {
			src[j].a[0] = 0x20;
			src[j].a[1] = 0x01;
			for (b = 2; b < 8; b++)
				src[j].a[b] = (uint8_t)(r >> (8 * b));
			src[j].a[6] = (uint8_t)(j >> 8);
			src[j].a[7] = (uint8_t)j;
		}
	}
	for (i = 0; i < ops; i++) {
		uint64_t r = rnd();
		struct ip_addr a = src[(r >> 8) % nsources];
		struct mentry *e;
		bool got = false, want = false;
		unsigned op = (unsigned)(r % 16);
		int b;

		if (!ip_is_v4(&a))
			for (b = 8; b < 16; b++)
				a.a[b] = (uint8_t)(rnd() >> 3);
		/* Mostly small steps, sometimes a whole window or more. */
		if ((r >> 40) % 64 == 0)
			now += (r >> 48) % 600;
		else
			now += (r >> 48) % 8;
		if (op < 5) {
			got = harvest_discredited(h, &a, now, &q);
			e = mfind(&m, &a, now, false);
			if (e) {
				mexpire(e, now, &q);
				want = e->disc;
			}
		} else if (op < 11) {
			got = harvest_unknown(h, &a, now, &q);
			e = mfind(&m, &a, now, true);
			mexpire(e, now, &q);
			if (now - e->wstart >= q.window_ms) {
				e->count = 0;
				e->wstart = now;
			}
			e->count++;
			e->loff = now;
			want = !e->disc && e->count >= q.threshold;
			if (want)
				e->disc = true;
		} else if (op < 13) {
			got = harvest_hangup(h, &a, now, &q);
			e = mfind(&m, &a, now, true);
			mexpire(e, now, &q);
			e->loff = now;
			want = !e->disc;
			e->disc = true;
		} else if (op < 15) {
			got = harvest_ban_due(h, &a, now, &q);
			e = mfind(&m, &a, now, false);
			if (e) {
				mexpire(e, now, &q);
				want = e->disc && (!e->banned || now - e->lban >= q.window_ms);
				if (want) {
					e->banned = true;
					e->lban = now;
				}
			}
		} else {
			uint32_t n = 0;

			for (j = 0; j < m.used; j++)
				if (m.e[j].disc && now - m.e[j].loff < q.window_ms)
					n++;
			got = harvest_count_discredited(h, now, &q) == n;
			want = true;
		}
		if (got != want || harvest_used(h) != m.used) {
			if (mismatches++ < 5)
				fprintf(stderr, "model size %u: op %lu (%u) differs: got %d want %d used %u/%u\n",
					(unsigned)size, i, op, got, want, (unsigned)harvest_used(h),
					(unsigned)m.used);
		}
	}
	CHECK(mismatches == 0);
	CHECK(harvest_used(h) == (m.used < size ? m.used : size));
	CHECK(harvest_used(h) == size); /* the pool is larger than the table */
out:
	harvest_free(h);
	free(m.e);
	free(src);
}

/* `tarpitd harvest` and `harvest forgive` (SPEC §2): the listing shows
 * only discredited sources, with offences, since and until; forgiving one
 * (by any address of its /64) or all clears the mark and the ban record. */
static void test_list_and_forgive(void)
{
	struct harvest *h = harvest_new(8);
	struct harvest_info hi;
	struct ip_addr a;
	unsigned listed = 0;

	CHECK(h != NULL);
	if (!h)
		return;
	CHECK(!unk(h, "192.0.2.1", 10));
	CHECK(!unk(h, "192.0.2.1", 20));
	CHECK(unk(h, "192.0.2.1", 30));
	CHECK(!unk(h, "192.0.2.1", 40));  /* a fourth offence extends the mark */
	CHECK(hang(h, "2001:db8:1:2::5", 50));
	CHECK(!unk(h, "192.0.2.9", 50));   /* one offence: not listed */
	CHECK(ban(h, "192.0.2.1", 60));
	for (uint32_t i = 0; i < harvest_used(h); i++) {
		if (!harvest_entry(h, i, 100, &p, &hi))
			continue;
		listed++;
		if (ip_is_v4(&hi.source)) {
			a = A("192.0.2.1");
			CHECK(ip_cmp(&hi.source, &a) == 0);
			CHECK(hi.offences == 4 && hi.since_ms == 30 && hi.until_ms == 1040);
		} else {
			a = A("2001:db8:1:2::");
			CHECK(ip_cmp(&hi.source, &a) == 0);
			CHECK(hi.offences == 1 && hi.since_ms == 50 && hi.until_ms == 1050);
		}
	}
	CHECK(listed == 2);
	CHECK(!harvest_entry(h, harvest_used(h), 100, &p, &hi));
	a = A("192.0.2.9");
	CHECK(harvest_forgive(h, &a, 100, &p) == 0); /* not discredited */
	a = A("192.0.2.1");
	CHECK(harvest_forgive(h, &a, 100, &p) == 1);
	CHECK(!disc(h, "192.0.2.1", 101));
	CHECK(harvest_forgive(h, &a, 101, &p) == 0);
	/* It starts again from nothing: three new offences to discredit, and
	 * the ban may run again. */
	CHECK(!unk(h, "192.0.2.1", 110) && !unk(h, "192.0.2.1", 120) && unk(h, "192.0.2.1", 130));
	CHECK(ban(h, "192.0.2.1", 140));
	a = A("2001:db8:1:2:ffff::1"); /* inside the /64 */
	CHECK(harvest_forgive(h, &a, 150, &p) == 1);
	CHECK(!disc(h, "2001:db8:1:2::5", 151));
	CHECK(hang(h, "2001:db8:1:2::5", 160));
	CHECK(harvest_forgive(h, NULL, 170, &p) == 2);
	CHECK(harvest_count_discredited(h, 171, &p) == 0);
	CHECK(harvest_forgive(NULL, NULL, 0, &p) == 0);
	harvest_free(h);
}

int main(void)
{
	test_basics();
	test_threshold();
	test_expiry();
	test_hangup();
	test_families();
	test_lru();
	test_ban();
	test_list_and_forgive();
	test_model(1, 3, 200000);
	test_model(7, 20, 200000);
	test_model(64, 150, 200000);
	test_model(1000, 1500, 200000);
	return check_summary("harvest");
}
