/* smtp_client: the SMTP/LMTP client machine of the gateway role (SPEC §10),
 * pure like smtp_session.
 *
 * Promises: no sockets, clocks, disks or allocation — reply octets in,
 * commands and actions out, so the transport and the fuzzer
 * (fuzz_client_reply.c) run the same code. The reply parser is incremental
 * (any split of the stream, down to one octet, gives the same replies) and
 * bounded (a fixed line buffer): an over-long line, a malformed line, a
 * code that is not three digits 2..5, mixed codes in one multi-line reply
 * or too many lines end the session with a protocol failure, never a
 * crash or an overflow. Every wait comes with its deadline (limits.h,
 * RFC 5321 §4.5.3.2). STARTTLS follows the policy: `required` and not
 * offered, refused or failed defers the whole session and never sends a
 * command in the clear after EHLO; after TLS, EHLO again. AUTH PLAIN is
 * only ever sent inside TLS (configured and not possible: the session is
 * deferred). Every recipient handed in gets exactly one outcome event —
 * SENT, DEFERRED or FAILED — before the message is done, whatever the
 * next hop or the transport does: 2xx/4xx/5xx per RCPT, then for the
 * accepted ones the final reply (SMTP: one for all; LMTP: one each, in
 * order); MAIL's or DATA's 4xx/5xx apply to every recipient still open;
 * a 421, a timeout, a lost connection or a protocol failure defers every
 * recipient still open. SENT is only given for a 2xx to the final dot.
 *
 * The transport's loop:
 *   for (;;) switch (smtp_client_next(c, &ev)) {
 *   case SC_WRITE:  write ev.data/ev.len (within ev.timeout_ms), then smtp_client_sent()
 *   case SC_READ:   read (within ev.timeout_ms), smtp_client_feed() the octets;
 *                   what it did not consume is fed again after the next SC_READ
 *   case SC_TLS:    TLS handshake as a client, then smtp_client_tls_done(); octets
 *                   the next hop sent after its 220 and not taken by feed are
 *                   dropped, never read as replies inside TLS (RFC 3207 §4.2)
 *   case SC_BODY:   stream the message file through smtp_client_stuff() and
 *                   smtp_client_stuff_end(), then smtp_client_body_done()
 *   case SC_RESULT: record ev.rcpt's outcome (ev.outcome, ev.code, ev.text)
 *   case SC_IDLE:   smtp_client_message() with the next message, or smtp_client_quit()
 *   case SC_DONE:   close; ev.code/ev.text say why when !ev.ok
 *   }
 * A timeout, a read or write error, a close by the peer or a failed
 * connect is smtp_client_fail(); then smtp_client_next() gives the
 * deferrals still owed and SC_DONE.
 */
#ifndef TARPITD_SMTP_CLIENT_H
#define TARPITD_SMTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "limits.h"

enum sc_tls_policy { SC_TLS_NO, SC_TLS_OPPORTUNISTIC, SC_TLS_REQUIRED };

/* The next hop's settings; the strings must outlive the session. */
struct smtp_client_conf {
	const char *helo;      /* our name for EHLO/LHLO */
	const char *auth_user; /* NULL: no AUTH */
	const char *auth_pass;
	uint8_t tls;           /* enum sc_tls_policy */
	bool lmtp;             /* LHLO, and one final reply per recipient */
	bool tls_available;    /* the transport can start TLS at all */
};

/* Per-recipient state in the caller's array (one octet each). */
enum sc_rcpt_state { SC_R_PENDING, SC_R_ACCEPTED, SC_R_SENT, SC_R_DEFERRED, SC_R_FAILED };

/* One message: the caller's envelope, read by the machine until SC_IDLE
 * or SC_DONE follows; state[] (nrcpt octets, all SC_R_PENDING) is
 * written by it. */
struct smtp_client_msg {
	const char *sender;          /* without brackets; "" for <> */
	const char *const *rcpt;     /* nrcpt addresses, without brackets */
	uint8_t *state;              /* enum sc_rcpt_state per recipient */
	unsigned nrcpt;
	uint64_t size;               /* SIZE= to declare when offered (transfer size); 0: none */
	bool eightbit;               /* BODY=8BITMIME when offered */
};

enum sc_action { SC_WRITE, SC_READ, SC_TLS, SC_BODY, SC_RESULT, SC_IDLE, SC_DONE };

struct smtp_client_event {
	uint8_t action;      /* enum sc_action, as returned */
	uint8_t outcome;     /* SC_RESULT: SC_R_SENT, SC_R_DEFERRED or SC_R_FAILED */
	bool ok;             /* SC_DONE: the session ended with QUIT, no failure */
	uint16_t code;       /* SC_RESULT/SC_DONE: the reply code, 0 for the transport's own reasons */
	unsigned rcpt;       /* SC_RESULT: index into the message's recipients */
	uint32_t timeout_ms; /* SC_WRITE, SC_READ, SC_BODY: the deadline of this wait */
	const char *data;    /* SC_WRITE: octets to write */
	size_t len;
	const char *text;    /* SC_RESULT/SC_DONE: the reply or the reason, NUL-terminated;
				valid until the next call into the machine */
};

/* EHLO keywords the client uses. */
enum { SC_EXT_PIPELINING = 1, SC_EXT_SIZE = 2, SC_EXT_STARTTLS = 4, SC_EXT_AUTH_PLAIN = 8, SC_EXT_8BITMIME = 16 };

/* The reply parser's state: a fixed line buffer and the reply so far. */
struct sc_reply {
	uint16_t len;     /* octets in line */
	uint16_t nlines;  /* lines of this reply so far */
	uint16_t code;    /* of the first line; 0 before */
	uint16_t tlen;    /* octets in text */
	bool skip;        /* EHLO's first line (the server's name) is no keyword */
	bool ehlo;        /* collect EHLO keywords */
	uint8_t ext;      /* SC_EXT_* seen */
	uint64_t size_max; /* SIZE n (0: no limit given) */
	char line[CLIENT_LINE_MAX];
	char text[CLIENT_TEXT_MAX + 1];
};

enum sc_parse { SC_PARSE_MORE, SC_PARSE_DONE, SC_PARSE_BAD };

/* Resets for a new reply; ehlo: this is the reply to EHLO/LHLO. */
void sc_reply_begin(struct sc_reply *r, bool ehlo);
/* Parses from p[0..n): *used octets taken. SC_PARSE_DONE when a reply is
 * complete (r->code, r->text; the rest is not taken), SC_PARSE_BAD on a
 * protocol failure (r->text says which), SC_PARSE_MORE when all of p was
 * taken and the reply goes on. */
enum sc_parse sc_reply_feed(struct sc_reply *r, const char *p, size_t n, size_t *used);

struct smtp_client {
	uint8_t state;       /* ST_* in smtp_client.c */
	uint8_t ext;         /* SC_EXT_* of the last EHLO */
	bool tls;            /* inside TLS */
	bool failed;         /* a failure ended the session */
	bool need_rset;      /* a transaction may be open on the server */
	bool helo_fallback;  /* EHLO refused: HELO, no extensions */
	uint16_t fail_code;
	bool aborted;        /* MAIL refused: the rest of the group is only read */
	bool out_ready;      /* out holds the octets of the current write state */
	bool reply_done;     /* reply holds a complete reply: the next octet begins a new one */
	/* The current message: two cursors over RSET (when owed), MAIL, the
	 * RCPT of each recipient with a usable address, DATA — the next
	 * command to write and the command whose reply comes next. */
	uint8_t w_phase, r_phase;
	unsigned w_rcpt, r_rcpt;
	unsigned inflight;   /* commands written and not yet answered */
	unsigned accepted;   /* recipients accepted by RCPT */
	unsigned final_left; /* LMTP: final replies still awaited */
	unsigned final_at;   /* LMTP: where the search for the next accepted one starts */
	/* Outcome events owed: recipients [rep_at, rep_end) whose state is
	 * in rep_mask become rep_outcome, one event each. */
	unsigned rep_at, rep_end;
	uint8_t rep_mask, rep_outcome;
	uint16_t rep_code;
	uint64_t size_max;   /* SIZE of the last EHLO; 0: none announced */
	const struct smtp_client_conf *conf;
	struct smtp_client_msg *msg;
	size_t out_len;
	struct sc_reply reply;
	char why[CLIENT_TEXT_MAX + 1]; /* the text of a failure */
	char out[CLIENT_OUT_MAX];
};

/* A fresh session on a connection just made (the greeting is next). */
void smtp_client_init(struct smtp_client *c, const struct smtp_client_conf *conf);
enum sc_action smtp_client_next(struct smtp_client *c, struct smtp_client_event *ev);
/* After SC_WRITE: every octet written. */
void smtp_client_sent(struct smtp_client *c);
/* After SC_READ: octets from the next hop; returns how many were taken
 * (it stops after each complete reply). */
size_t smtp_client_feed(struct smtp_client *c, const char *p, size_t n);
/* After SC_TLS: the handshake (and, with `required`, the verification)
 * succeeded or not. */
void smtp_client_tls_done(struct smtp_client *c, bool ok);
/* After SC_BODY: the body and its end (smtp_client_stuff_end) written. */
void smtp_client_body_done(struct smtp_client *c);
/* After SC_IDLE: the next message (its recipients all SC_R_PENDING), or QUIT. */
void smtp_client_message(struct smtp_client *c, struct smtp_client_msg *m);
void smtp_client_quit(struct smtp_client *c);
/* The transport failed (timeout, I/O error, closed, connect refused);
 * why is kept for the events (cut to CLIENT_TEXT_MAX). */
void smtp_client_fail(struct smtp_client *c, const char *why);
/* The deadline of the wait asked for passed: smtp_client_fail() with a
 * reason that names the wait ("timed out waiting for the greeting", ...;
 * after the end of data it says the message may arrive twice). */
void smtp_client_timeout(struct smtp_client *c);
/* The EHLO keywords of the session (SC_EXT_*). */
static inline unsigned smtp_client_ext(const struct smtp_client *c)
{
	return c->ext;
}

/* Dot-stuffing and LF -> CRLF of the stored message (LF line ends, as
 * SPEC §5 stores it) on its way out, incrementally: any split of the file
 * gives the same output. One octet of state. */
struct sc_stuff {
	bool mid; /* inside a line (not at its start) */
};
static inline void smtp_client_stuff_init(struct sc_stuff *s)
{
	s->mid = false;
}
/* Converts from in[0..n) into out[0..room): returns the input octets
 * taken (fewer than n when out is full; an octet that expands to two is
 * only taken when both fit), *wrote the output octets. room >= 2 always
 * makes progress. */
size_t smtp_client_stuff(struct sc_stuff *s, const char *in, size_t n, char *out, size_t room, size_t *wrote);
/* The end of data: CRLF if the last line had no end, then ".\r\n";
 * out holds 5 octets. Returns the octets written. */
size_t smtp_client_stuff_end(struct sc_stuff *s, char *out);

#endif
