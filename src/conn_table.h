/* conn_table: the slot allocator and the per-source counts.
 *
 * Promises: conn_table_new() makes the only allocations — the slot array,
 * a free stack, the per-slot envelopes and the per-source counter hash —
 * sized from max_connections; acquiring and releasing a slot and counting
 * connections per source are O(1) and allocate nothing. The slots
 * (struct conn, conn.h) hold everything a connection needs (fixed input
 * buffer, reply queue, session, timers), which is what keeps a tarpitted
 * client at about one KiB.
 * Envelopes (recipient lists) live in a separate array that is only
 * written when a recipient is accepted, so tarpitted harvesters whose
 * recipients are all unknown never touch those pages.
 */
#ifndef TARPITD_CONN_TABLE_H
#define TARPITD_CONN_TABLE_H

#include <stdbool.h>
#include <stdint.h>

#include "conn.h"
#include "iprange.h"

struct conn_table {
	struct conn *slots;
	uint32_t *free_stack;
	uint32_t nfree, size;
	unsigned char *envelopes; /* size * envelope_size, lazily touched */
	size_t envelope_size;
	char *fwd; /* size * SESSION_FWD_MAX: forwarded recipients, lazily touched */
	uint16_t max_rcpt;
	/* Per-source counters: open addressing, backward-shift deletion so
	 * no tombstones pile up under churn. */
	struct src_count *src;
	uint32_t src_mask;
};

struct src_count {
	struct ip_addr addr; /* the source: IPv4 address or IPv6 /64 */
	uint32_t count; /* 0 = empty bucket */
};

struct conn_table *conn_table_new(uint32_t max_connections, uint16_t max_rcpt);
void conn_table_free(struct conn_table *t);
/* NULL when full. The slot's session is initialised with its envelope. */
struct conn *conn_acquire(struct conn_table *t);
void conn_release(struct conn_table *t, struct conn *c);
static inline uint32_t conn_index(const struct conn_table *t, const struct conn *c)
{
	return (uint32_t)(c - t->slots);
}

/* Connections currently open from addr's source — the address, or for
 * IPv6 its /64 (ip_source_key) — after counting one more / less. */
uint32_t src_count_inc(struct conn_table *t, const struct ip_addr *addr);
void src_count_dec(struct conn_table *t, const struct ip_addr *addr);
uint32_t src_count_get(const struct conn_table *t, const struct ip_addr *addr);

#endif
