/* smtp_reply: every reply tarpitd sends, as a small id.
 *
 * Promises: a connection slot queues one byte per pending reply instead of
 * its text; the text is rendered only when it is written, from the id and
 * the read-only context below. Codes and enhanced codes are SPEC §7's.
 */
#ifndef TARPITD_SMTP_REPLY_H
#define TARPITD_SMTP_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "limits.h"

enum reply_id {
	R_NONE,
	R_GREETING,      /* 220 <banner> */
	R_EHLO,          /* 250-<fqdn> ... */
	R_HELO,          /* 250 <fqdn> */
	R_421_FULL,      /* 421 4.3.2 table or connector full */
	R_421_SOURCE,    /* 421 4.7.0 per-source limit */
	R_421_NOMATCH,   /* 421 4.3.2 no connector for this peer */
	R_421_SHUTDOWN,  /* 421 4.3.2 shutting down */
	R_421_TIMEOUT,   /* 421 4.4.2 */
	R_421_ERRORS,    /* 421 4.7.0 too many errors */
	R_421_UNKNOWN,   /* 421 4.7.0 too many unknown recipients */
	R_501_HELO,      /* 501 5.5.4 */
	R_501_ARGS,      /* 501 5.5.4 command takes no / other arguments */
	R_250_MAIL,      /* 250 2.1.0 */
	R_503_SEQ_HELO,  /* 503 5.5.1 send HELO/EHLO first */
	R_503_SEQ_NESTED,/* 503 5.5.1 nested MAIL */
	R_503_SEQ_MAIL,  /* 503 5.5.1 need MAIL first (RCPT, DATA) */
	R_501_SENDER,    /* 501 5.1.7 */
	R_501_RCPT,      /* 501 5.1.3 */
	R_552_SIZE,      /* 552 5.3.4 declared size too big */
	R_555_PARAM,     /* 555 5.5.4 */
	R_250_RCPT,      /* 250 2.1.5 */
	R_550_UNKNOWN,   /* 550 5.1.1 */
	R_550_RELAY,     /* 550 5.7.1 */
	R_452_RCPTS,     /* 452 4.5.3 */
	R_554_NORCPT,    /* 554 5.5.1 */
	R_354,           /* 354 */
	R_250_QUEUED,    /* 250 2.0.0 <queue id> */
	R_552_TOOBIG,    /* 552 5.3.4 message too big */
	R_550_BAREEOL,   /* 550 5.5.2 bare CR or LF */
	R_452_STORAGE,   /* 452 4.3.1 */
	R_452_QUEUE,     /* 452 4.3.1 the forwarding queue is full (SPEC §10) */
	R_250_OK,        /* 250 2.0.0 (RSET, NOOP) */
	R_252_VRFY,      /* 252 2.5.2 */
	R_502_EXPN,      /* 502 5.5.1 */
	R_214_HELP,      /* 214 */
	R_221_BYE,       /* 221 2.0.0 */
	R_500_UNKNOWN,   /* 500 5.5.1 */
	R_500_TOOLONG,   /* 500 5.5.2 line too long */
	R_500_BADCHAR,   /* 500 5.5.2 NUL, bare CR or 8-bit octet */
	R_502_BDAT,      /* 502 5.5.1 (close) */
	R_502_HTTP,      /* 502 5.5.1 (close) */
	R_502_AUTH,      /* 502 5.5.1 AUTH not available (yet) */
	R_454_TLS,       /* 454 4.7.0 TLS not available */
	R_554_PIPE,      /* 554 5.5.0 octets before 354 */
	R_554_EARLY,     /* 554 5.5.1 talked before the greeting */
	R_220_TLS,       /* 220 2.0.0 ready to start TLS */
	R_503_TLS,       /* 503 5.5.1 already in TLS / in a transaction */
	R_501_TLS,       /* 501 5.5.4 STARTTLS takes no argument */
	R_530_TLS,       /* 530 5.7.0 STARTTLS first (require_tls) */
	R_334_EMPTY,     /* 334 (empty challenge: send the PLAIN response) */
	R_334_USER,      /* 334 VXNlcm5hbWU6 */
	R_334_PASS,      /* 334 UGFzc3dvcmQ6 */
	R_235_AUTH,      /* 235 2.7.0 */
	R_535_AUTH,      /* 535 5.7.8 bad credentials */
	R_538_AUTH,      /* 538 5.7.11 encryption required */
	R_504_AUTH,      /* 504 5.5.4 unknown mechanism */
	R_503_AUTH,      /* 503 5.5.1 already authenticated / in a transaction */
	R_501_AUTH_B64,  /* 501 5.5.2 cannot decode */
	R_501_AUTH_CANCEL, /* 501 5.7.0 cancelled */
	R_500_AUTH_LONG, /* 500 5.5.6 authentication line too long */
	R_421_AUTH,      /* 421 4.7.0 too many authentication failures */
	R__COUNT
};

struct reply_ctx {
	const char *fqdn;
	const char *banner;
	const char *peer_ip;  /* for the EHLO greeting line */
	const char *queue_id; /* for R_250_QUEUED */
	uint64_t max_size;
	bool pipelining;
	bool starttls; /* list STARTTLS in EHLO */
	bool auth;     /* list AUTH PLAIN LOGIN in EHLO */
};

/* The three-digit code of a reply id. */
int reply_code(enum reply_id id);
/* Renders id as CRLF-terminated text into buf; returns its length (0 if it
 * does not fit, which REPLY_MAX prevents). */
size_t reply_render(enum reply_id id, const struct reply_ctx *ctx, char *buf, size_t len);
/* Protocol errors are replies 500, 501, 502, 503, 504 and 555 (SPEC §7). */
bool reply_is_protocol_error(enum reply_id id);

#endif
