/* smtp_input: the framing between the socket and the session, pure.
 *
 * Promises: no sockets, clocks, disks or allocation — octets in, verdicts
 * out, so the transport (conn.c) and the fuzzer (fuzz_session.c) run the
 * same code. It assembles command lines in the slot's line buffer (a CR
 * before the LF stripped), answers an over-long line once and skips to its
 * LF so its tail is never taken for a command, assembles a long AUTH line
 * (up to AUTH_LINE_MAX) in the envelope memory, and during message data
 * runs the end-of-data filter (smtp_data), counts the size and gives the
 * verdict (bare EOL, too big, or to be stored). It says where the next
 * read goes and how much of a read belongs to the message; what to read,
 * when to answer and what to do on a verdict stay with the caller.
 */
#ifndef TARPITD_SMTP_INPUT_H
#define TARPITD_SMTP_INPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smtp_data.h"
#include "smtp_session.h"

/* The small part of the state lives in the slot's first bytes (short
 * reach on MIPS16); the buffers are the caller's: the line buffer `buf`
 * (SMTP_LINE_MAX octets, last in the slot) and `aux` (AUTH_LINE_MAX
 * octets of envelope memory, see conn_aux()). */
struct smtp_input {
	uint16_t len;     /* octets in buf */
	uint16_t aux_len; /* octets of a long AUTH line in aux */
	uint8_t flags;    /* SI_* in smtp_input.c */
	struct smtp_data data;
	uint64_t size;    /* octets of the message as transferred (RFC 1870); exact once done */
};

/* A command line found in buf or aux, valid until smtp_input_consume(). */
struct smtp_line {
	const char *text;
	uint16_t len;   /* without the line ending; the kept start if too_long */
	uint16_t used;  /* octets the line took, LF included; 0: no LF yet */
	bool too_long;
};

void smtp_input_init(struct smtp_input *in);

/* Where the next read in command state goes (*at) and how much room is
 * there; 0 when both buffers are full (the caller stops reading). */
size_t smtp_input_room(struct smtp_input *in, char *buf, char *aux, char **at);
/* n octets were read to where smtp_input_room() said. */
void smtp_input_got(struct smtp_input *in, size_t n);
/* Input is waiting that may make a line. */
bool smtp_input_pending(const struct smtp_input *in);

/* The next command line, or false when more input is needed. auth: the
 * server has [auth], so a long line that s accepts as AUTH is assembled
 * in aux instead of being refused as too long. After running the line,
 * the caller calls smtp_input_consume() with it. */
bool smtp_input_line(struct smtp_input *in, char *buf, char *aux, const struct smtp_session *s, bool auth,
		     struct smtp_line *l);
void smtp_input_consume(struct smtp_input *in, char *buf, char *aux, const struct smtp_line *l);

/* Octets wait after a command whose reply must go out before anything is
 * read (DATA's 354, STARTTLS's 220): a pipelining violation (SPEC §7). */
bool smtp_input_early(const struct smtp_input *in, const struct smtp_session *s);
/* Forgets the octets in buf (after a violation, at a close or STARTTLS). */
void smtp_input_drop(struct smtp_input *in);

/* Message data begins (the 354 went out). */
void smtp_input_data_begin(struct smtp_input *in);
/* Filters n octets of message data into out (n + 1 octets of room) and
 * counts them against max_size as transferred, as SIZE= is (CRLF line
 * ends, dots as sent, the final ".CRLF" not counted). Returns the octets
 * consumed: n, or fewer at the end of data (*done; the rest belongs to
 * the next command). *store: the stored octets in out to write, 0 once
 * the message is refused. */
size_t smtp_input_data(struct smtp_input *in, const char *p, size_t n, char *out, uint64_t max_size,
		       size_t *store, bool *done);
/* Octets that followed the end of data in the same read (at most
 * SMTP_LINE_MAX: the caller reads no more at once) go to the line buffer. */
void smtp_input_keep(struct smtp_input *in, char *buf, const char *rest, size_t n);
/* At the end of data: DATA_BARE_EOL, DATA_TOO_BIG, or DATA_STORED for a
 * message to be committed. */
enum smtp_data_status smtp_input_verdict(const struct smtp_input *in);

#endif
