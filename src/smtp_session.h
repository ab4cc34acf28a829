/* smtp_session: the SMTP command state machine, pure.
 *
 * Promises: bytes in, replies and actions out — no sockets, clocks or
 * disks. The transport splits the input into lines (telling the session
 * when a line was too long), performs the actions (start of data, close)
 * and decides *when* each reply goes out; the session decides *which*
 * reply and whether the tarpit applies to it (SPEC §8). A password is
 * never checked here: AUTH hands the credentials out and takes the
 * verdict back later (SMTP_AUTH_WAIT). Nothing here allocates; a recipient table reference is held for the length of a
 * transaction so a reload cannot invalidate its mailbox ids. The state
 * changes only in here (smtp_session_close() for the transport's own
 * reasons), each change through one function that a tracer can watch.
 */
#ifndef TARPITD_SMTP_SESSION_H
#define TARPITD_SMTP_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "address.h"
#include "limits.h"
#include "smtp_reply.h"

struct config;

struct connector_conf;
struct recipients;
struct users;


enum smtp_state {
	SMTP_CMD,       /* reading commands */
	SMTP_DATA_WAIT, /* DATA accepted: 354 queued, data not begun */
	SMTP_DATA,      /* inside message data */
	SMTP_TLS_WAIT,  /* STARTTLS accepted: 220 queued, handshake not begun */
	SMTP_AUTH_WAIT, /* AUTH's credentials handed out (env creds): the verdict is awaited */
	SMTP_CLOSING,   /* a closing reply is queued: read nothing more */
};

/* Reply flags: how the transport must treat the reply. */
enum {
	RF_TARPIT = 1u, /* send T after its command was read / the previous reply went out */
	RF_CLOSE = 2u,  /* close the connection once it is sent */
	RF_DATA = 4u,   /* the message data starts once it is sent (354) */
	RF_STARTTLS = 8u, /* the TLS handshake starts once it is sent (220) */
	/* A reply to RCPT: a source discredited by another of its sessions
	 * since this one began must wait T here too (SPEC §8), which only the
	 * transport can ask the harvest table (smtp_session_discredit). */
	RF_RCPT = 16u,
};

struct smtp_reply {
	uint8_t id;    /* enum reply_id */
	uint8_t flags; /* RF_* */
};

/* The per-transaction recipient list. It lives outside the hot slot, in
 * memory that is only written when a recipient is accepted: a harvester
 * whose recipients are all unknown never dirties its page. */
struct smtp_envelope {
	/* first_rcpt doubles as the AUTH LOGIN user name between its two
	 * challenges: AUTH is refused inside a transaction. */
	uint16_t nmbox;            /* distinct mailbox ids in mbox[] */
	uint16_t first_len;
	/* Forwarded recipients (SPEC §10): nfwd entries in fwd, each the
	 * relay's index octet, the address and a NUL, fwd_len octets in all
	 * (at most SESSION_FWD_MAX); fwd is set by the slot's owner. */
	uint16_t nfwd, fwd_len;
	char *fwd;
	char first_rcpt[ADDRESS_MAX + 1];
	uint32_t mbox[];           /* capacity: struct smtp_session.max_rcpt */
};

struct smtp_session {
	uint8_t state;   /* enum smtp_state */
	uint8_t flags;   /* SS_* in smtp_session.c */
	uint8_t auth_state;    /* AS_* in smtp_session.c: inside an AUTH exchange */
	/* Each counter is wider than its setting's range (limits.h, checked
	 * in smtp_session.c): a counter that saturates at or below its limit
	 * never ends the session. The 16-bit one fills the byte of padding
	 * before the other 16-bit fields, so the slot keeps its size. */
	uint16_t auth_failures; /* max_auth_failures: 0..1000 */
	uint16_t nrcpt;  /* RCPTs accepted in this transaction */
	uint16_t max_rcpt; /* capacity of env->mbox */
	uint16_t helo_len;
	uint32_t errors;   /* protocol errors in this session: max_protocol_errors 0..10^6 */
	uint32_t unknown;  /* unknown recipients in this session: max_unknown_recipients 0..10^6 */
	struct smtp_envelope *env;
	struct recipients *table; /* referenced while a transaction is open */
	char helo[SMTP_HELO_MAX + 1];   /* neutered: Received-safe */
	char sender[ADDRESS_MAX + 1];
};

/* The credentials of an AUTH, handed to the transport to check: the
 * session does not run PBKDF2 itself (it would hold the loop, SPEC §9).
 * A name or password longer than the room keeps its length (so it can
 * never match) and its first octets. */
struct smtp_creds {
	size_t ulen, plen;
	char user[AUTH_USER_MAX];
	char pass[AUTH_PASS_MAX];
};

/* What the session reads but never changes. */
struct smtp_env {
	const struct connector_conf *conn;
	struct recipients *rcpts; /* current table; referenced on MAIL */
	const struct users *users; /* NULL without [auth] */
	bool tls;                  /* [tls] is configured */
	bool queue_full;           /* the forwarding queue has no free entry: 452 4.3.1 */
	/* The [relay] sections recipients are routed by (the connector's
	 * configuration); NULL: no forwarding, everything is local. */
	const struct config *routes;
	/* Where a complete AUTH writes its credentials (the session then
	 * waits in SMTP_AUTH_WAIT); NULL: nowhere, so every AUTH fails. */
	struct smtp_creds *creds;
};

void smtp_session_init(struct smtp_session *s, struct smtp_envelope *env, uint16_t max_rcpt);
/* Drops the transaction (and its table reference). */
void smtp_session_reset(struct smtp_session *s);
/* A closing reply is queued by the transport (an offence it saw, a
 * shutdown): the session reads nothing more. */
void smtp_session_close(struct smtp_session *s);
/* Called, when set, on every change of state after init (s still holds the
 * old one): the one place a transport traces transitions. */
extern void (*smtp_session_tracer)(const struct smtp_session *s, enum smtp_state to);

/* One command line without its line ending. too_long: the line exceeded
 * SMTP_LINE_MAX and was cut; only its start is passed. Writes up to two
 * replies to out (an error and the 421 that ends the session) and returns
 * how many. 0 with the state SMTP_AUTH_WAIT is the action "verify the
 * credentials in e->creds": the replies come from
 * smtp_session_auth_verdict(). */
unsigned smtp_session_line(struct smtp_session *s, const struct smtp_env *e,
			   const char *line, size_t len, bool too_long,
			   struct smtp_reply out[2]);
/* Whether this line may end in SMTP_AUTH_WAIT (a superset: it answers an
 * AUTH challenge or is an AUTH command), so that the transport can make
 * sure it has a verifier free before running it. */
bool smtp_session_may_verify(const struct smtp_session *s, const char *line, size_t len);
/* The verdict on the credentials handed out: 235, or 535 (tarpitted, and
 * the 421 after max_auth_failures), back to SMTP_CMD. Replies as
 * smtp_session_line() gives them; 0 unless in SMTP_AUTH_WAIT. */
unsigned smtp_session_auth_verdict(struct smtp_session *s, const struct smtp_env *e, bool ok,
				   struct smtp_reply out[2]);

/* The 354 went out and data begins (RF_DATA), or the transport could not
 * open the message store: the transaction is dropped and the reply is 452. */
void smtp_session_data_begin(struct smtp_session *s);
struct smtp_reply smtp_session_data_failed(struct smtp_session *s);

enum smtp_data_status { DATA_STORED, DATA_TOO_BIG, DATA_BARE_EOL, DATA_STORE_FAILED };
/* End of message data: the reply, transaction reset. */
struct smtp_reply smtp_session_data_end(struct smtp_session *s, const struct smtp_env *e,
					enum smtp_data_status st);

/* STARTTLS was accepted but no TLS context is free: back to commands,
 * and the reply becomes 454 4.7.0. */
struct smtp_reply smtp_session_starttls_failed(struct smtp_session *s);
/* The handshake is done: everything the client said before is forgotten. */
void smtp_session_tls_started(struct smtp_session *s);
bool smtp_session_offers_starttls(const struct smtp_session *s, const struct smtp_env *e);
bool smtp_session_offers_auth(const struct smtp_session *s, const struct smtp_env *e);
bool smtp_session_authenticated(const struct smtp_session *s);
/* The open transaction's MAIL said BODY=8BITMIME: a forwarded copy says
 * it again to a next hop that offers 8BITMIME (RFC 6152). */
bool smtp_session_8bitmime(const struct smtp_session *s);
bool smtp_session_in_tls(const struct smtp_session *s);
/* Whether a line starting with these octets may be longer than
 * SMTP_LINE_MAX (an AUTH command or response, up to AUTH_LINE_MAX). */
bool smtp_session_long_line_ok(const struct smtp_session *s, const char *start, size_t len);

/* The source is discredited (SPEC §8): every RCPT reply waits T. */
void smtp_session_discredit(struct smtp_session *s);

/* Whether the tarpit applies to this session's 5xx replies. */
bool smtp_session_tarpitted(const struct smtp_session *s, const struct smtp_env *e);
bool smtp_session_in_transaction(const struct smtp_session *s);
/* "SMTP" or "ESMTP": the Received: protocol. */
const char *smtp_session_protocol(const struct smtp_session *s);

#endif
