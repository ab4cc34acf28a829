/* relay_int: what the parts of the outbound transport share (relay.c the
 * interface, the table, the schedule and the next hops; relay_attempt.c
 * the message a slot sends; relay_session.c a session's connect, socket
 * and TLS work); not for other modules.
 *
 * Promises:
 * - A slot (struct rslot) is one outbound session and, while it has one,
 *   one attempt: one message and the recipients of one next hop. It
 *   becomes free (RS_FREE) only in relay_close(), which lets go of its
 *   socket, file, TLS context and generation, takes it out of its hop's
 *   sessions and schedules again, so what waited for a slot starts.
 * - An attempt ends only in relay_finish(): its DSN, then its one
 *   queue_update().
 * - A session whose message is done and whose next hop has nothing due
 *   is idle (s->idle) for at most RELAY_IDLE_MS: connected, counted in
 *   its hop's sessions, reading only to see the next hop close it. The
 *   schedule hands it the hop's next due entry before it opens a new
 *   session for that hop; anything from the next hop meanwhile (EOF, a
 *   421, any octet) closes it with nothing deferred and the hop not down.
 * - R holds only what all three parts use on an event: the slot table,
 *   the next hops with their counters and the TLS client. It stays one
 *   shared struct because each part reads and writes it on every event,
 *   and one base address keeps it in MIPS16's short reach (like
 *   server.h's S). What one part alone uses is its own: the schedule's
 *   state in relay.c, the DSN's recipient list in relay_attempt.c.
 */
#ifndef TARPITD_RELAY_INT_H
#define TARPITD_RELAY_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "limits.h"
#include "queue.h"
#include "relay.h"
#include "smtp_client.h"
#include "timer_wheel.h"

/* The client side of TLS (tls_client.c); a TLS=0 build forwards in the
 * clear (config refuses starttls = required there). */
#ifndef TARPITD_NO_TLS
#define RELAY_TLS 1
#endif

enum { RS_FREE, RS_CONNECT, RS_SESSION };

/* A recipient of the attempt that failed because the message expired
 * (beyond enum sc_rcpt_state: the machine never reads it back). */
#define ST_EXPIRED 7

#define BOUT_MAX (2 * RELAY_BODY_CHUNK + 8) /* every octet may double; the end of data is 5 */

struct hop {
	char name[CONF_NAME_MAX]; /* "" = unused */
	uint32_t hash;            /* queue_hop_hash(name) */
	uint32_t active;          /* sessions open */
	uint32_t fails;           /* connects failed in a row */
	uint32_t down_until;      /* unix seconds, like the queue's times: no attempt before */
#ifdef RELAY_TLS
	int profile;              /* tlsc profile, -1 none yet */
	uint32_t profile_ca;      /* hash of the ca_file it was made for */
#endif
	struct relay_stats st;
};

struct rslot {
	struct tw_node timer; /* first: relay_timer() finds the slot from it */
	int fd, data_fd, tls, qidx;
	uint8_t phase;        /* RS_* */
	bool armed;           /* the current wait's deadline is on the wheel */
	bool in_tls;          /* TLS carries the session */
	bool body_end;        /* the end of data is in bout */
	bool body_first;      /* no piece of the file read yet */
	bool handed;          /* the message is the machine's (given at SC_IDLE) */
	bool idle;            /* between messages, waiting up to RELAY_IDLE_MS for the next */
	bool reused;          /* handed a message after idling, no reply to it yet */
	unsigned mask;        /* LOOP_* registered */
	unsigned want;        /* the readiness the last EAGAIN asked for */
	int hop;              /* index into R.hops */
	unsigned n;           /* recipients of this attempt */
	struct gen *gen;      /* held while the session runs: rc and scc point into it */
	const struct relay_conf *rc;
	size_t woff;          /* octets of the current SC_WRITE written */
	size_t rlen;          /* octets in rbuf not fed yet */
	size_t bin_len, bin_off, bout_len, bout_off;
	size_t arena;         /* where the next reply copy goes in envbuf */
	struct sc_stuff stuff;
	struct smtp_client_conf scc;
	struct smtp_client_msg msg;
	struct queue_env env;
	struct queue_rcpt *rcpt; /* QUEUE_RCPTS_MAX: the envelope's recipients */
	const char **addr;       /* the attempt's addresses */
	uint16_t *map;           /* attempt index -> envelope index */
	uint8_t *state;          /* enum sc_rcpt_state (or ST_EXPIRED) per attempt recipient */
	char *rbuf, *bin, *bout, *envbuf;
	struct smtp_client sc;
};

struct tls_client;

struct relay_state {
	struct rslot *slots;
	unsigned nslots, active;
#ifdef RELAY_TLS
	struct tls_client *tlsc;
#endif
	struct relay_stats total;
	struct hop hops[RELAY_HOPS_MAX];
};
extern struct relay_state R; /* relay.c's */

/* ---- the table, the schedule, the next hops (relay.c) ---- */

/* Unix seconds: the queue's clock. */
uint32_t relay_wall_now(void);
/* Jitter for the retry delays (xorshift32: it needs no strength). */
uint32_t relay_rnd(void);
/* Starts what is due in the free slots and arms relay's timer for the
 * next thing the schedule can do. Reentrant: a call from within a pass
 * makes the pass look again. */
void relay_schedule(void);
/* Something became due (a DSN was queued): a pass under way looks again. */
void relay_schedule_again(void);
/* The connect failed or timed out, or the session could not take a
 * message: s's next hop is down for its retry delay, the attempt's
 * recipients deferred until then and the attempt finished. */
void relay_hop_down(struct rslot *s, const char *why, int err);

/* ---- the message in a slot (relay_attempt.c) ---- */

/* The DSN's recipient list: 0, or -1 when it cannot be allocated. */
int relay_attempt_init(void);
void relay_attempt_fini(void);
/* Queue entry idx into the slot as its attempt, marked busy: the pending
 * recipients due now of the next hop of the earliest pending one. That
 * hop's name; NULL when the envelope cannot be read (logged, the entry
 * waits, nothing taken) or none of it is due after all (the attempt is
 * already finished: its update puts the table right). */
const char *relay_begin(struct rslot *s, int idx, uint32_t wall);
/* Attempt recipient k's outcome (SC_R_SENT, SC_R_DEFERRED, SC_R_FAILED)
 * into the envelope, logged and counted. next: the retry time for a
 * deferral, 0 for the recipient's own schedule. */
void relay_record(struct rslot *s, unsigned k, unsigned outcome, const char *text, uint32_t next);
/* Every recipient of the attempt without an outcome yet, deferred. */
void relay_defer_all(struct rslot *s, const char *why, uint32_t next);
/* The attempt is over: its DSN, then its one envelope update. Nothing
 * when the slot holds no message. */
void relay_finish(struct rslot *s);

/* ---- sessions (relay_session.c) ---- */

/* Opens the session to rc (next hop index hop) for the attempt loaded in
 * the free slot s: the non-blocking connect, its deadline on the wheel. */
void relay_connect(struct rslot *s, const struct relay_conf *rc, int hop);
/* The connect completed: the session starts. */
void relay_connected(struct rslot *s);
/* The connect failed or timed out: the hop is down, the slot free. */
void relay_connect_failed(struct rslot *s, const char *why, int err);
/* Turns the machine's actions into socket work until one has to wait, or
 * the session ends (the slot is then free). */
void relay_run(struct rslot *s);
/* Ends the session at once: the slot is free (see Promises). */
void relay_close(struct rslot *s);
/* An idle session (s->idle): the next due entry of its own next hop,
 * handed to it — true if it took one. One of an older generation (a
 * reload since it opened), or while stopping, takes none: it QUITs. */
bool relay_idle_take(struct rslot *s, uint32_t wall);
/* An idle session's time is up (or tarpitd stops): QUIT, then close. */
void relay_idle_end(struct rslot *s);

#endif
