/* relay: the outbound transport of the gateway role (SPEC §10) — the
 * second connection kind on the loop, which drives smtp_client for the
 * queue.
 *
 * Promises:
 * - Memory: relay_init() allocates the outbound table once, for the sum
 *   of max_connections over the [relay] sections it starts with (at most
 *   RELAY_CONNS_TOTAL); each slot holds its client machine, read, body
 *   and envelope buffers and the recipient arrays of one message. Nothing
 *   is allocated after; a reload that asks for more sessions gets what
 *   the table has.
 * - Scheduling: attempts start from queue_due_match() when a message is
 *   queued (relay_kick), when a slot frees and on relay's own timer (the
 *   queue's next attempt time, or the end of a next hop's down time).
 *   One attempt is one message and the due pending recipients of one
 *   next hop (the hop of its earliest pending recipient). A next hop
 *   never has more than its max_connections sessions. A next hop whose
 *   connect failed or timed out is down for its retry delay (retry_min,
 *   doubling up to retry_max with each failure in a row): its messages
 *   are not attempted meanwhile, and then one probing session goes first
 *   — 10,000 queued messages for a dead next hop cost one connect per
 *   retry, not 10,000, and keep their order of acceptance. An entry
 *   passed over costs no disk read (the queue knows each entry's hop).
 * - A session whose message is done takes its hop's next due message;
 *   with none it idles up to RELAY_IDLE_MS, and a message due for its
 *   hop meanwhile goes over it rather than a new connection (Postfix's
 *   connection cache). An idle session counts against max_connections;
 *   it QUITs when its time is up, at a reload and at SIGTERM, and is
 *   closed, with nothing deferred and the hop not down, when the next
 *   hop closes it or sends anything. A reused session that fails before
 *   any reply to its message defers it due at once, attempts unchanged.
 * - Every wait (connect, each read, write, TLS handshake, each piece of
 *   the body) has a deadline on the timer wheel; a timeout, EOF or I/O
 *   error ends the session and defers its open recipients. The body is
 *   streamed from the queue's file in pieces, RELAY_BODY_SLICE of them
 *   per loop event, so one large message never holds the loop.
 * - Per attempt: each recipient's outcome is logged (`event=relay`) and
 *   counted; then one queue_update(): sent and failed recorded, deferred
 *   ones get attempts + 1 and the retry delay, and fail once the message
 *   is older than max_queue_lifetime. A DSN (RFC 3464) for the recipients
 *   that failed is committed — to a local Maildir, or queued for a next
 *   hop — before the update that records them failed, so a crash cannot
 *   lose it (it may be sent twice). It goes to the sender only when the
 *   envelope allows it (QUEUE_F_DSN_SENDER) and the sender is a local
 *   recipient or the smarthost can reach it, otherwise to postmaster;
 *   never anywhere else. A null sender gets none.
 * - relay_shutdown() ends every session at once: recipients in flight
 *   are deferred with their envelope updated (due again at the next
 *   start), an idle session sends QUIT (its reply awaited within
 *   CLIENT_QUIT_MS), no attempt begins after it.
 */
#ifndef TARPITD_RELAY_H
#define TARPITD_RELAY_H

#include <stdbool.h>
#include <stdint.h>

#include "timer_wheel.h"

/* SPEC §10's counters, per next hop and in total. */
struct relay_stats {
	uint64_t delivered, deferred, failed, dsn_sent, connections_current;
};

struct config;

/* Outbound sessions the table holds for configuration c: the sum of its
 * relays' max_connections, at most RELAY_CONNS_TOTAL. Each needs two
 * descriptors (its socket and the message file it sends). */
unsigned relay_slots(const struct config *c);
/* At start, after S.queue is open (or NULL: no relay): 0, or -1 when the
 * table cannot be allocated. */
int relay_init(void);
void relay_fini(void);
/* A message was queued: start what is due now. */
void relay_kick(void);
/* `queue flush` (after queue_flush()): hops marked down may be tried at
 * once, and what is due now starts. */
void relay_flush(void);
/* A loop event for tag TAG_RELAY | slot. */
void relay_event(uint32_t tag, unsigned events);
/* The wheel expired n: true when it is relay's (a slot's deadline, or the
 * schedule's timer), handled. */
bool relay_timer(struct tw_node *n);
/* SIGTERM: every session ends now, its recipients deferred (an idle one QUITs). */
void relay_shutdown(void);
/* Sessions open (connecting and idle included). */
unsigned relay_active(void);
/* The counters of S.gen->cfg.relays[i] (kept by name across reloads),
 * NULL for an index out of range; and the totals. */
const struct relay_stats *relay_stats_of(unsigned i);
const struct relay_stats *relay_stats_total(void);

#endif
