/* server: the one event loop that owns every socket, timer and slot.
 *
 * Promises: server_run() binds the listeners, allocates everything it will
 * ever use (connection table, loop, wheel, buffers), and then serves until
 * SIGTERM/SIGINT without allocating per connection or per message. All
 * waiting — tarpit delays, greeting delays, timeouts — is a node on the
 * timer wheel, never a sleep or a thread. It keeps start-up, signals, the
 * loop and teardown; the transport is conn.c, the listeners listen.c, the
 * configurations gen.c, the control socket control.c, the harvest glue
 * ban.c.
 */
#ifndef TARPITD_SERVER_H
#define TARPITD_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "harvest.h"
#include "timer_wheel.h"

/* The counters of SPEC §2, kept for the server and per connector. */
struct stats {
	uint64_t connections_total, connections_current, connections_refused;
	uint64_t messages_accepted, recipients_accepted, recipients_unknown;
	uint64_t replies_tarpitted, tarpit_disconnects, protocol_errors;
	uint64_t tls_sessions, tls_refused, auth_success, auth_failure;
};

/* Who a loop event is for: a slot index, or one of these tags. */
#define TAG_LISTENER 0x80000000u /* | listener index */
#define TAG_SIGNAL 0x40000000u
#define TAG_CONTROL 0x20000000u  /* the control socket; | (i + 1): client i */
#define TAG_PRIV 0x10000000u     /* the privileged helper's answers (ban) */
#define TAG_RELAY 0x08000000u    /* | slot: an outbound session (relay.c) */

/* The context every module of the loop reads on every event: the clock,
 * the loop, the table and what the current configuration loaded. One
 * structure because one base address keeps all of it in MIPS16's short
 * reach (fields used most first); what only one module uses is that
 * module's own (listeners, control clients, ban counters, commit round). */
struct server {
	struct harvest_params hp;   /* of the current configuration */
	uint16_t max_rcpt;
	bool stopping;
	uint64_t now;
	struct gen *gen;            /* current configuration */
	struct conn_table *tab;
	struct loop *loop;
	struct tls *tls;            /* NULL without [tls] */
	struct harvest *harvest;    /* NULL when [harvest] table_size = 0 */
	struct recipients *rcpts;
	struct maildir *md;
	struct queue *queue;        /* the forwarding queue (SPEC §10); NULL without [relay] */
	struct users *users;        /* NULL without [auth] */
	uint32_t next_id;
	struct timer_wheel wheel;
	struct server_conf boot;    /* [server] as started: these keys need a restart */
	struct stats st;
};
extern struct server S;

static inline uint64_t ms(uint32_t seconds)
{
	return (uint64_t)seconds * 1000u;
}

/* Opens <spool>/queue when a [relay] is configured (at start). 0, -1. */
int server_queue_open(void);
/* Something became due in the queue (a message queued; `queue flush` is
 * relay_flush()):
 * the outbound side looks at once, not at its next timer. */
void server_queue_kick(void);
/* Takes ownership of cfg. Returns the process exit status. */
int server_run(struct config *cfg);

#endif
