/* harvest: see harvest.h.
 *
 * Entries live in one array allocated at start; entries [0, used) are in
 * use and, once the table is full, a new source takes over the least
 * recently seen entry (the tail of a doubly-linked list of indices).
 * A separate open-addressing hash maps a source to its entry: exactly
 * twice as many slots as entries (so the load stays at most 1/2 and the
 * memory per entry is exact), linear probing, and backward-shift
 * deletion, so there are no tombstones and lookups never degrade over a
 * long uptime. The hash is SipHash-2-4 under a key drawn at start: the
 * sources are chosen by the peers (an IPv6 attacker has 2^64 /64s to
 * pick from), and an unkeyed hash would let them pile every source into
 * one probe run.
 *
 * Times are 64-bit milliseconds: 32-bit offsets would wrap after 49 days
 * and a long-idle entry would look freshly offended.
 */
#include "harvest.h"
#include "random.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NIL UINT32_MAX

/* The flags first: MIPS16 reaches the first 32 octets of a struct with
 * short byte loads. */
struct entry {
	bool discredited;
	bool banned;
	uint16_t offences;     /* every offence since the count began (for `harvest`; saturates) */
	uint32_t count;        /* unknown recipients in the current window */
	uint32_t prev, next;   /* LRU list: prev is more recently seen */
	struct ip_addr key;    /* IPv4 address, or IPv6 /64 with the host part zeroed */
	uint64_t window_start; /* of the current counting window; while discredited: since when */
	uint64_t last_offence; /* the mark lasts a window from here */
	uint64_t last_ban;     /* valid when banned */
};

struct harvest {
	struct entry *e;
	uint32_t *slot; /* entry index, or NIL */
	uint32_t size, used, nslots;
	uint32_t head, tail; /* most and least recently seen */
	uint64_t k0, k1;     /* SipHash key */
};

/* ---- SipHash-2-4 of a 16-octet message ----------------------------------- */

#define ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))

static void sipround(uint64_t v[4])
{
	v[0] += v[1];
	v[1] = ROTL(v[1], 13);
	v[1] ^= v[0];
	v[0] = ROTL(v[0], 32);
	v[2] += v[3];
	v[3] = ROTL(v[3], 16);
	v[3] ^= v[2];
	v[0] += v[3];
	v[3] = ROTL(v[3], 21);
	v[3] ^= v[0];
	v[2] += v[1];
	v[1] = ROTL(v[1], 17);
	v[1] ^= v[2];
	v[2] = ROTL(v[2], 32);
}

/* Little-endian by definition of SipHash, whatever the CPU. */
static uint64_t le64(const uint8_t *p)
{
	uint64_t x = 0;
	int i;

	for (i = 7; i >= 0; i--)
		x = (x << 8) | p[i];
	return x;
}

static uint64_t siphash16(uint64_t k0, uint64_t k1, const uint8_t m[16])
{
	uint64_t v[4] = { k0 ^ 0x736f6d6570736575ull, k1 ^ 0x646f72616e646f6dull,
			  k0 ^ 0x6c7967656e657261ull, k1 ^ 0x7465646279746573ull };
	uint64_t w[3];
	int i, r;

	w[0] = le64(m);
	w[1] = le64(m + 8);
	w[2] = (uint64_t)16 << 56; /* the length block: no tail octets */
	for (i = 0; i < 3; i++) {
		v[3] ^= w[i];
		for (r = 0; r < 2; r++)
			sipround(v);
		v[0] ^= w[i];
	}
	v[2] ^= 0xff;
	for (r = 0; r < 4; r++)
		sipround(v);
	return v[0] ^ v[1] ^ v[2] ^ v[3];
}

/* Without entropy yet (early boot) the table still works; only the
 * collision resistance is weaker, and a blocking getrandom() could hang
 * the start on old kernels. */
static void seed(struct harvest *h)
{
	uint64_t k[2];

	if (!random_try(k, sizeof k)) {
		struct timespec a = { 0, 0 }, b = { 0, 0 };
		uint8_t m[16];

		clock_gettime(CLOCK_REALTIME, &a);
		clock_gettime(CLOCK_MONOTONIC, &b);
		k[0] = (uint64_t)a.tv_sec * 1000000000u + (uint64_t)a.tv_nsec;
		k[1] = ((uint64_t)b.tv_sec * 1000000000u + (uint64_t)b.tv_nsec) ^
		       ((uint64_t)getpid() << 40) ^ (uint64_t)(uintptr_t)h;
		memset(m, 0, sizeof m);
		/* Spreads the few varying bits over the whole key. */
		k[0] = siphash16(k[0], k[1], m);
		m[0] = 1;
		k[1] = siphash16(k[1], k[0], m);
	}
	h->k0 = k[0];
	h->k1 = k[1];
}

/* ---- table ---------------------------------------------------------------- */

/* Multiply-shift instead of a mask lets the slot count be exactly 2×size. */
static uint32_t home(const struct harvest *h, const struct ip_addr *k)
{
	uint64_t hv = siphash16(h->k0, h->k1, k->a) >> 32;

	return (uint32_t)((hv * h->nslots) >> 32);
}

static uint32_t step(const struct harvest *h, uint32_t i)
{
	return i + 1 == h->nslots ? 0 : i + 1;
}

static uint32_t dist(const struct harvest *h, uint32_t from, uint32_t to)
{
	return to >= from ? to - from : to + h->nslots - from;
}

/* The slot holding k, or NIL with *free_slot the empty slot where it
 * would go. Terminates: at most size of the 2×size slots are used. */
static uint32_t find_slot(const struct harvest *h, const struct ip_addr *k, uint32_t *free_slot)
{
	uint32_t i = home(h, k);

	while (h->slot[i] != NIL) {
		if (memcmp(h->e[h->slot[i]].key.a, k->a, sizeof k->a) == 0)
			return i;
		i = step(h, i);
	}
	if (free_slot)
		*free_slot = i;
	return NIL;
}

/* Backward-shift deletion: later members of the probe run move up into
 * the hole wherever their home slot allows, so no run is ever broken. */
static void delete_slot(struct harvest *h, uint32_t i)
{
	uint32_t j = i;

	for (;;) {
		uint32_t k;

		j = step(h, j);
		if (h->slot[j] == NIL)
			break;
		k = home(h, &h->e[h->slot[j]].key);
		if (dist(h, k, j) >= dist(h, i, j)) {
			h->slot[i] = h->slot[j];
			i = j;
		}
	}
	h->slot[i] = NIL;
}

static void lru_unlink(struct harvest *h, uint32_t x)
{
	struct entry *e = &h->e[x];

	if (e->prev != NIL)
		h->e[e->prev].next = e->next;
	else
		h->head = e->next;
	if (e->next != NIL)
		h->e[e->next].prev = e->prev;
	else
		h->tail = e->prev;
	e->prev = e->next = NIL;
}

static void lru_push_head(struct harvest *h, uint32_t x)
{
	struct entry *e = &h->e[x];

	e->prev = NIL;
	e->next = h->head;
	if (h->head != NIL)
		h->e[h->head].prev = x;
	else
		h->tail = x;
	h->head = x;
}

static void touch(struct harvest *h, uint32_t x)
{
	if (h->head == x)
		return;
	lru_unlink(h, x);
	lru_push_head(h, x);
}

static uint64_t elapsed(uint64_t now, uint64_t then)
{
	return now > then ? now - then : 0;
}

/* The mark ends once a whole window has passed without an offence. */
static void expire(struct entry *e, uint64_t now, const struct harvest_params *p)
{
	if (e->discredited && elapsed(now, e->last_offence) >= p->window_ms) {
		e->discredited = false;
		e->count = e->offences = 0;
		e->window_start = now;
	}
}

/* The entry of a, seen now; NIL when absent (and create is false). */
static uint32_t get(struct harvest *h, const struct ip_addr *a, uint64_t now, bool create)
{
	struct ip_addr k;
	uint32_t s, free_slot = NIL, x;
	struct entry *e;

	ip_source_key(a, &k);
	s = find_slot(h, &k, &free_slot);
	if (s != NIL) {
		touch(h, h->slot[s]);
		return h->slot[s];
	}
	if (!create)
		return NIL;
	if (h->used < h->size) {
		x = h->used++;
	} else {
		x = h->tail;
		s = find_slot(h, &h->e[x].key, NULL);
		if (s != NIL) /* always: every used entry has its slot */
			delete_slot(h, s);
		lru_unlink(h, x);
		/* The shift may have moved the run the new key probes. */
		find_slot(h, &k, &free_slot);
	}
	e = &h->e[x];
	memset(e, 0, sizeof *e);
	e->key = k;
	e->window_start = now;
	e->prev = e->next = NIL;
	h->slot[free_slot] = x;
	lru_push_head(h, x);
	return x;
}

/* ---- interface ------------------------------------------------------------ */

struct harvest *harvest_new(uint32_t table_size)
{
	struct harvest *h;
	uint32_t i;

	/* 2×size slots must fit in 32 bits, with NIL never a valid index. */
	if (table_size == 0 || table_size > (UINT32_MAX - 1) / 2)
		return NULL;
	if ((uint64_t)table_size * harvest_entry_bytes() > SIZE_MAX)
		return NULL;
	h = calloc(1, sizeof *h);
	if (!h)
		return NULL;
	h->size = table_size;
	h->nslots = table_size * 2;
	h->e = calloc(table_size, sizeof *h->e);
	h->slot = malloc((size_t)h->nslots * sizeof *h->slot);
	if (!h->e || !h->slot) {
		harvest_free(h);
		return NULL;
	}
	for (i = 0; i < h->nslots; i++)
		h->slot[i] = NIL;
	h->head = h->tail = NIL;
	seed(h);
	return h;
}

void harvest_free(struct harvest *h)
{
	if (!h)
		return;
	free(h->e);
	free(h->slot);
	free(h);
}

size_t harvest_entry_bytes(void)
{
	return sizeof(struct entry) + 2 * sizeof(uint32_t);
}

/* The entry of a (made if create and absent), its mark brought up to
 * now; NULL when absent or an argument is missing. */
static struct entry *entry_of(struct harvest *h, const struct ip_addr *a, uint64_t now_ms,
			      const struct harvest_params *p, bool create)
{
	uint32_t x;

	if (!h || !a || !p)
		return NULL;
	x = get(h, a, now_ms, create);
	if (x == NIL)
		return NULL;
	expire(&h->e[x], now_ms, p);
	return &h->e[x];
}

bool harvest_discredited(struct harvest *h, const struct ip_addr *a, uint64_t now_ms,
			 const struct harvest_params *p)
{
	struct entry *e = entry_of(h, a, now_ms, p, false);

	return e && e->discredited;
}

bool harvest_unknown(struct harvest *h, const struct ip_addr *a, uint64_t now_ms,
		     const struct harvest_params *p)
{
	struct entry *e = entry_of(h, a, now_ms, p, true);

	if (!e)
		return false;
	/* While discredited the count no longer matters (the mark's end resets
	 * it) and window_start keeps the time of the discredit. */
	if (!e->discredited && elapsed(now_ms, e->window_start) >= p->window_ms) {
		e->count = e->offences = 0;
		e->window_start = now_ms;
	}
	if (e->count < UINT32_MAX)
		e->count++;
	if (e->offences < UINT16_MAX)
		e->offences++;
	e->last_offence = now_ms;
	if (e->discredited || e->count < p->threshold)
		return false;
	e->discredited = true;
	e->window_start = now_ms;
	return true;
}

bool harvest_hangup(struct harvest *h, const struct ip_addr *a, uint64_t now_ms,
		    const struct harvest_params *p)
{
	struct entry *e = entry_of(h, a, now_ms, p, true);

	if (!e)
		return false;
	e->last_offence = now_ms;
	if (e->offences < UINT16_MAX)
		e->offences++;
	if (e->discredited)
		return false;
	e->discredited = true;
	e->window_start = now_ms;
	return true;
}

bool harvest_ban_due(struct harvest *h, const struct ip_addr *a, uint64_t now_ms,
		     const struct harvest_params *p)
{
	struct entry *e = entry_of(h, a, now_ms, p, false);

	/* Only a discredited source is ever banned. */
	if (!e || !e->discredited || (e->banned && elapsed(now_ms, e->last_ban) < p->window_ms))
		return false;
	e->banned = true;
	e->last_ban = now_ms;
	return true;
}

uint32_t harvest_count_discredited(const struct harvest *h, uint64_t now_ms,
				   const struct harvest_params *p)
{
	uint32_t i, n = 0;

	if (!h || !p)
		return 0;
	for (i = 0; i < h->used; i++)
		if (h->e[i].discredited && elapsed(now_ms, h->e[i].last_offence) < p->window_ms)
			n++;
	return n;
}

bool harvest_entry(const struct harvest *h, uint32_t i, uint64_t now_ms, const struct harvest_params *p,
		   struct harvest_info *out)
{
	const struct entry *e;

	if (!h || !p || i >= h->used)
		return false;
	e = &h->e[i];
	if (!e->discredited || elapsed(now_ms, e->last_offence) >= p->window_ms)
		return false;
	out->source = e->key;
	out->offences = e->offences;
	out->since_ms = e->window_start;
	out->until_ms = e->last_offence + p->window_ms;
	return true;
}

/* The entry keeps its place in the table and its hash slot: it only
 * starts again as a source without offences. Its ban record goes too, so
 * a later discredit may run the ban command again. */
static void forgive(struct entry *e, uint64_t now)
{
	e->discredited = e->banned = false;
	e->count = e->offences = 0;
	e->window_start = now;
}

uint32_t harvest_forgive(struct harvest *h, const struct ip_addr *a, uint64_t now_ms,
			 const struct harvest_params *p)
{
	uint32_t n = 0;

	if (!h || !p)
		return 0;
	if (a) {
		struct entry *e = entry_of(h, a, now_ms, p, false);

		if (!e || !e->discredited)
			return 0;
		forgive(e, now_ms);
		return 1;
	}
	for (uint32_t i = 0; i < h->used; i++) {
		expire(&h->e[i], now_ms, p);
		if (h->e[i].discredited) {
			forgive(&h->e[i], now_ms);
			n++;
		}
	}
	return n;
}

uint32_t harvest_size(const struct harvest *h)
{
	return h ? h->size : 0;
}

uint32_t harvest_used(const struct harvest *h)
{
	return h ? h->used : 0;
}
