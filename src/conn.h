/* conn: one client connection's transport.
 *
 * Promises: everything between a connection's socket and its session —
 * the reply queue and its flushing (in order, each tarpitted reply T after
 * its predecessor, SPEC §8), reading (in the clear or through TLS), the
 * message data streamed to the store, the group commit at the end of a
 * loop pass, the greeting delay, timeouts and the lingering close. A TLS
 * session (STARTTLS, or implicit TLS from the first octet) ends with a
 * close_notify before every TCP close, and its pool context is back in
 * the pool as soon as the session is over, before the linger; a source
 * over its share of the pool is refused (454, or a closed implicit-TLS
 * connection), counted and logged. The
 * framing is smtp_input's, the replies the session's; this module decides
 * only when octets are read and replies written. Nothing here allocates:
 * a connection is a slot of the table (conn_table), all its buffers in
 * the slot, and the scratch buffers are shared because only one
 * connection is served at a time. A session waiting for its AUTH verdict
 * (verify.c) reads on into its buffers but runs nothing, and its idle
 * clock stops: the client is waiting for us.
 */
#ifndef TARPITD_CONN_H
#define TARPITD_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include "iprange.h"
#include "limits.h"
#include "maildir.h"
#include "smtp_input.h"
#include "smtp_reply.h"
#include "smtp_session.h"
#include "timer_wheel.h"

struct connector;

/* What the transport is doing with the connection, beside the session's
 * own state (which says what the client may send). */
enum conn_phase {
	P_GREETING,  /* waiting for greeting_delay; talking now is an offence */
	P_ACTIVE,
	P_LINGER,    /* final reply sent, write side shut: discard input until EOF */
	P_HANDSHAKE, /* STARTTLS's 220 sent (or implicit TLS: accepted): the TLS handshake runs */
	P_TLS_CLOSE, /* final reply sent: the close_notify waits for the socket */
};

enum {
	CF_EOF = 1u,    /* the client closed its side */
	CF_WANTW = 4u,  /* the socket refused output: wait for writability */
	CF_VWAIT = 8u,  /* its AUTH line waits for a free verifier (verify.c's queue) */
	CF_STOP = 16u,  /* shutting down: close after the message in progress */
	CF_UNCOUNTED = 32u, /* the session is over: no longer in its source's count */
	CF_COMMIT = 64u, /* the message waits for this loop pass's sync round */
	/* The reply queue overflowed (a bug, see conn.c's outq_push): the
	 * connection is closed at its next flush. */
	CF_OVERFLOW = 128u,
};

/* One slot. Ordered for code size, the fields used most first: MIPS16
 * reaches the first 128 bytes of a structure with short instructions.
 * The session is last but for the line buffer, which conn_acquire() does
 * not clear. */
struct conn {
	int fd;          /* -1 when free */
	uint32_t id;     /* session number, for logs */
	uint8_t phase;   /* enum conn_phase */
	uint8_t cflags;  /* CF_* */
	uint8_t outq_head, outq_len;
	uint16_t out_off;  /* octets of the head reply already written */
	int16_t tls;       /* TLS pool slot, -1 in the clear */
	struct smtp_input inp; /* framing state; its buffers are in[] and conn_aux() */
	uint16_t tls_wlen; /* length of a TLS write to repeat after WANT_* */
	uint16_t peer_port; /* here, not by peer: it fills the gap before timer */
	struct smtp_reply outq[OUTQ_MAX];
	struct tw_node timer;
	uint64_t head_base;     /* ms: tarpit base of the head reply (SPEC §8) */
	uint64_t last_activity; /* ms */
	uint64_t deadline;      /* ms: session timeout */
	uint64_t greet_at;      /* ms: greeting delay end, linger (close_notify) or handshake end */
	struct connector *connector;
	struct ip_addr peer;
	struct sink_msg msg;
	char queue_id[QUEUE_ID_MAX];
	struct smtp_session s;
	char in[SMTP_LINE_MAX];
};

/* Where a long AUTH line is assembled: the envelope after first_rcpt. */
static inline char *conn_aux(struct conn *c)
{
	return (char *)c->s.env->mbox;
}

/* Scratch for rendered replies, shared: one connection (or one stats
 * request, control.c) is served at a time. */
extern char conn_wbuf[OUTQ_MAX * REPLY_MAX];

/* Allocates the commit round for max_connections slots (at start). */
int conn_init(uint32_t max_connections);
void conn_fini(void);
/* A new connection on a slot taken from the table: fd accepted, its
 * connector cn (referenced here) chosen. Greets now or after the delay. */
void conn_open(struct conn *c, int fd, struct connector *cn, const struct ip_addr *peer, uint16_t port);
void conn_close(struct conn *c, const char *reason);
/* Readiness (LOOP_* events) and the slot's timer. */
void conn_on_event(struct conn *c, unsigned events);
void conn_on_timer(struct conn *c);
/* The group commit (commit.c) stored c's message (ok) or failed: the
 * 250 or 452 is queued and sent. */
void conn_message_stored(struct conn *c, bool ok);
/* The store's view of c's envelope; ip (iplen octets) receives the
 * peer's address as text. */
void conn_fill_envelope(struct conn *c, struct sink_envelope *env, char *ip, size_t iplen);
/* SIGTERM: 421 to a session between commands at once; one receiving data
 * gets [server] shutdown_timeout to finish its message (then the 250 and
 * the 421), or is closed unanswered when that runs out. */
void conn_shutdown(struct conn *c);
/* From verify.c: the verdict on the credentials c's session handed out
 * (its AUTH line was read at read_at), and c's turn for a verifier. */
void conn_verified(struct conn *c, bool ok, uint64_t read_at);
void conn_verify_wake(struct conn *c);
/* Whether the tarpit applies to this session now. */
bool conn_tarpitted(struct conn *c);
void conn_peer_text(const struct conn *c, char *buf, size_t len);

#endif
