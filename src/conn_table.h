/* conn_table: every connection's state, allocated once at start.
 *
 * Promises: conn_table_new() makes the only allocations — the slot array,
 * a free stack, the per-slot envelopes and the per-source counter hash —
 * sized from max_connections; acquiring and releasing a slot and counting
 * connections per source are O(1) and allocate nothing. The slots hold
 * everything a connection needs (fixed input buffer, reply queue, session,
 * timers), which is what keeps a tarpitted client at about one KiB.
 * Envelopes (recipient lists) live in a separate array that is only
 * written when a recipient is accepted, so tarpitted harvesters whose
 * recipients are all unknown never touch those pages.
 */
#ifndef TARPITD_CONN_TABLE_H
#define TARPITD_CONN_TABLE_H

#include <stdbool.h>
#include <stdint.h>

#include "iprange.h"
#include "maildir.h"
#include "smtp_data.h"
#include "smtp_session.h"
#include "timer_wheel.h"

#define OUTQ_MAX 16 /* replies queued per connection; then back-pressure */

struct connector;

struct conn {
	int fd;          /* -1 when free */
	uint32_t id;     /* session number, for logs */
	uint8_t phase;   /* enum conn_phase in server.c */
	uint8_t cflags;  /* CF_* in server.c */
	uint8_t outq_head, outq_len;
	uint16_t out_off;  /* octets of the head reply already written */
	uint16_t in_len;   /* octets in in[] */
	uint16_t aux_len;  /* octets of a long AUTH line in the envelope memory */
	int16_t tls;       /* TLS pool slot, -1 in the clear */
	uint16_t tls_wlen; /* length of a TLS write to repeat after WANT_* */
	struct smtp_reply outq[OUTQ_MAX];
	struct tw_node timer;
	uint64_t head_base;     /* ms: tarpit base of the head reply (SPEC §8) */
	uint64_t last_activity; /* ms */
	uint64_t deadline;      /* ms: session timeout */
	uint64_t greet_at;      /* ms: greeting delay end */
	struct connector *connector;
	struct ip_addr peer;
	uint16_t peer_port;
	struct smtp_data data;
	uint64_t data_size; /* octets stored in this message so far */
	struct sink_msg msg;
	char queue_id[QUEUE_ID_MAX];
	struct smtp_session s;
	char in[SMTP_LINE_MAX];
};

struct conn_table {
	struct conn *slots;
	uint32_t *free_stack;
	uint32_t nfree, size;
	unsigned char *envelopes; /* size * envelope_size, lazily touched */
	size_t envelope_size;
	uint16_t max_rcpt;
	/* Per-source counters: open addressing, backward-shift deletion so
	 * no tombstones pile up under churn. */
	struct src_count *src;
	uint32_t src_mask;
};

struct src_count {
	struct ip_addr addr;
	uint32_t count; /* 0 = empty bucket */
};

struct conn_table *conn_table_new(uint32_t max_connections, uint16_t max_rcpt);
void conn_table_free(struct conn_table *t);
/* NULL when full. The slot's session is initialised with its envelope. */
struct conn *conn_acquire(struct conn_table *t);
void conn_release(struct conn_table *t, struct conn *c);
/* Where a long AUTH line is assembled: the envelope after first_rcpt. */
static inline char *conn_aux(struct conn *c)
{
	return (char *)c->s.env->mbox;
}

static inline uint32_t conn_index(const struct conn_table *t, const struct conn *c)
{
	return (uint32_t)(c - t->slots);
}

/* Connections currently open from addr, after counting one more / less. */
uint32_t src_count_inc(struct conn_table *t, const struct ip_addr *addr);
void src_count_dec(struct conn_table *t, const struct ip_addr *addr);
uint32_t src_count_get(const struct conn_table *t, const struct ip_addr *addr);

#endif
