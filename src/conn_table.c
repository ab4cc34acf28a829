#include "conn_table.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

struct conn_table *conn_table_new(uint32_t max_connections, uint16_t max_rcpt)
{
	struct conn_table *t = calloc(1, sizeof *t);
	uint32_t nsrc = 2;

	if (!t)
		return NULL;
	while (nsrc < max_connections * 2u && nsrc < (1u << 30))
		nsrc <<= 1;
	t->size = max_connections;
	t->max_rcpt = max_rcpt;
	t->envelope_size = sizeof(struct smtp_envelope) + (size_t)max_rcpt * sizeof(uint32_t);
	/* The envelope memory also holds a long AUTH line (AUTH is refused in
	 * a transaction), after the LOGIN user name kept in first_rcpt. */
	if (t->envelope_size < offsetof(struct smtp_envelope, mbox) + AUTH_LINE_MAX)
		t->envelope_size = offsetof(struct smtp_envelope, mbox) + AUTH_LINE_MAX;
	t->envelope_size = (t->envelope_size + 63) & ~(size_t)63;
	/* calloc of large blocks maps fresh zero pages: untouched slots cost
	 * address space, not RAM. */
	t->slots = calloc(max_connections, sizeof *t->slots);
	t->free_stack = calloc(max_connections, sizeof *t->free_stack);
	t->envelopes = calloc(max_connections, t->envelope_size);
	/* The forwarded recipients' addresses (SPEC §10), a block of their
	 * own so the envelopes stay dense: only a slot that forwards touches
	 * its part. */
	t->fwd = calloc(max_connections, SESSION_FWD_MAX);
	t->src = calloc(nsrc, sizeof *t->src);
	t->src_mask = nsrc - 1;
	if (!t->slots || !t->free_stack || !t->envelopes || !t->fwd || !t->src) {
		conn_table_free(t);
		return NULL;
	}
	/* Lowest index on top, so a lightly loaded server keeps touching the
	 * same few pages. */
	for (uint32_t i = 0; i < max_connections; i++)
		t->free_stack[i] = max_connections - 1 - i;
	t->nfree = max_connections;
	return t;
}

void conn_table_free(struct conn_table *t)
{
	if (!t)
		return;
	free(t->slots);
	free(t->free_stack);
	free(t->envelopes);
	free(t->fwd);
	free(t->src);
	free(t);
}

struct conn *conn_acquire(struct conn_table *t)
{
	struct conn *c;
	uint32_t i;

	if (t->nfree == 0)
		return NULL;
	i = t->free_stack[--t->nfree];
	c = &t->slots[i];
	memset(c, 0, offsetof(struct conn, s));
	c->fd = -1;
	c->msg.fd = -1;
	c->tls = -1;
	tw_node_init(&c->timer);
	smtp_session_init(&c->s, (struct smtp_envelope *)(void *)(t->envelopes + (size_t)i * t->envelope_size),
			  t->max_rcpt);
	c->s.env->fwd = t->fwd + (size_t)i * SESSION_FWD_MAX;
	return c;
}

void conn_release(struct conn_table *t, struct conn *c)
{
	c->fd = -1;
	t->free_stack[t->nfree++] = conn_index(t, c);
}

static uint32_t src_hash(const struct ip_addr *a)
{
	/* FNV-1a: the table is private and sized at twice the slots, so
	 * a flood from one address only lengthens its own probe. */
	uint32_t h = 2166136261u;
	for (int i = 0; i < 16; i++) {
		h ^= a->a[i];
		h *= 16777619u;
	}
	return h;
}

/* The bucket of addr's source (ip_source_key: an IPv6 /64 is one source,
 * SPEC §8), and that key in *key. */
static uint32_t src_find(const struct conn_table *t, const struct ip_addr *addr, struct ip_addr *key)
{
	uint32_t i;
	ip_source_key(addr, key);
	i = src_hash(key) & t->src_mask;
	while (t->src[i].count && memcmp(&t->src[i].addr, key, sizeof *key) != 0)
		i = (i + 1) & t->src_mask;
	return i;
}

uint32_t src_count_inc(struct conn_table *t, const struct ip_addr *addr)
{
	struct ip_addr key;
	uint32_t i = src_find(t, addr, &key);
	if (t->src[i].count == 0)
		t->src[i].addr = key;
	return ++t->src[i].count;
}

uint32_t src_count_get(const struct conn_table *t, const struct ip_addr *addr)
{
	struct ip_addr key;
	return t->src[src_find(t, addr, &key)].count;
}

void src_count_dec(struct conn_table *t, const struct ip_addr *addr)
{
	struct ip_addr key;
	uint32_t i = src_find(t, addr, &key), j;
	if (t->src[i].count == 0 || --t->src[i].count > 0)
		return;
	/* Backward-shift deletion keeps every probe chain unbroken. */
	j = i;
	for (;;) {
		uint32_t home;
		j = (j + 1) & t->src_mask;
		if (t->src[j].count == 0)
			break;
		home = src_hash(&t->src[j].addr) & t->src_mask;
		if (((j - home) & t->src_mask) >= ((j - i) & t->src_mask)) {
			t->src[i] = t->src[j];
			i = j;
		}
	}
	t->src[i].count = 0;
}
