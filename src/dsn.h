/* dsn: the delivery status notification of the gateway role (SPEC §10):
 * an RFC 3464 multipart/report with a text part, the message/delivery-
 * status part and the original message's headers as text/rfc822-headers.
 *
 * Promises: pure — no clock, disk or allocation; the caller gives the
 * envelope, each reported recipient's outcome and the start of the stored
 * message, and the text goes to the caller's writer in pieces. The text is
 * in the stored form (LF line ends, SPEC §5), to go into a Maildir or the
 * queue like any accepted message (the caller writes Return-Path: <> and
 * Received: first and sends it from the null sender, so a DSN never
 * causes another). The boundary is chosen so that it occurs nowhere in the
 * attached headers. Reply texts and addresses are neutered (every octet
 * outside printable ASCII becomes '?') and cut, so a next hop's reply can
 * neither break a line nor forge a header or a MIME part. The attached
 * headers stop at the first empty line or after DSN_HEADERS_MAX octets (at
 * a line end).
 */
#ifndef TARPITD_DSN_H
#define TARPITD_DSN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Receives the DSN text in pieces: 0 to go on, -1 to stop (dsn_write
 * then returns -1). */
typedef int (*dsn_writer)(void *ctx, const char *p, size_t n);

enum dsn_action { DSN_FAILED, DSN_DELAYED };

struct dsn_rcpt {
	const char *addr;       /* the recipient, without brackets */
	const char *reply;      /* the next hop's last reply ("550 5.1.1 ...") or our reason; "" none */
	const char *remote_mta; /* the next hop (host or address), NULL: not known */
	uint8_t action;         /* enum dsn_action */
	bool expired;           /* failed after max_queue_lifetime (Status 4.4.7) */
};

struct dsn_input {
	const char *reporting_mta; /* our name ([server] hostname) */
	const char *id;            /* the message's queue id */
	const char *to;            /* who gets the DSN: the sender, or postmaster */
	uint32_t arrival;          /* when the message was accepted (unix seconds) */
	uint32_t now;              /* Date: and Last-Attempt-Date: */
	const struct dsn_rcpt *rcpt;
	unsigned nrcpt;
	const char *message;       /* the stored message; only its headers are read */
	size_t message_len;
};

/* Writes the whole DSN: 0, or -1 when the writer stopped or the input is
 * unusable (no recipient, no name). */
int dsn_write(const struct dsn_input *in, dsn_writer w, void *ctx);
/* The RFC 3463 status a reply gives: its enhanced code when it has one of
 * its class, else class.0.0; 4.4.1 for no reply at all. Into out (16). */
void dsn_status(const char *reply, bool expired, char *out);

#endif
