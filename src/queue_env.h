/* queue_env: a queued message's envelope — its types and its text, the
 * <id>.env file of the forwarding queue (queue.h keeps the files).
 *
 * The text, one field per line, fields separated by one space, text
 * fields %-escaped (queue_escape) so none holds a space or a line end:
 *
 *   tarpitd-queue 1
 *   id <id>
 *   accepted <unix seconds>
 *   size <octets>
 *   flags <QUEUE_F_* as a number>
 *   sender <address, may be empty>
 *   rcpt <P|S|F> <attempts> <next attempt> <relay> <address> <last reply, may be empty>
 *   ...
 *   end <number of rcpt lines>
 *
 * The "end" line makes a cut file (which fsync + rename should never
 * leave) a parse error instead of an envelope with recipients missing.
 *
 * Promises:
 * - Pure: no files, clocks or allocation — text in the caller's buffer
 *   out, the caller's buffer parsed in place. The queue reads and writes
 *   the files; the unit test runs this alone.
 * - Bounded: queue_env_format() never writes past buflen and reports
 *   what does not fit; queue_env_bound() says up front how long the text
 *   of an envelope can become (every reply at QUEUE_REPLY_MAX), so an
 *   envelope that could outgrow QUEUE_ENV_MAX is refused when added, not
 *   at a later update. queue_env_parse() reads only buf[0..len), takes at
 *   most maxrcpt recipients and accepts exactly what the format writes.
 * - Stored fields are cut, never refused: the sender and address at
 *   ADDRESS_MAX, the relay at CONF_NAME_MAX, the reply at QUEUE_REPLY_MAX
 *   octets before escaping.
 */
#ifndef TARPITD_QUEUE_ENV_H
#define TARPITD_QUEUE_ENV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "limits.h"

enum queue_rstate { QR_PENDING, QR_SENT, QR_FAILED };

/* Envelope flags. */
enum {
	QUEUE_F_DSN_SENDER = 1, /* a DSN may go to the sender (local, or the session authenticated) */
	QUEUE_F_8BIT = 2,       /* the body has 8-bit octets (BODY=8BITMIME when offered) */
};

struct queue_rcpt {
	const char *relay;   /* the next hop's [relay "NAME"] */
	const char *addr;    /* without brackets */
	const char *reply;   /* the last reply or reason, "" for none (stored cut to QUEUE_REPLY_MAX) */
	uint32_t attempts;
	uint32_t next;       /* unix seconds of the next attempt (pending ones) */
	uint8_t state;       /* enum queue_rstate */
};

struct queue_env {
	char id[QUEUE_ID_MAX];
	const char *sender;  /* without brackets; "" for <> */
	uint64_t size;       /* octets as sent to the next hop (SIZE=, RFC 1870; `tarpitd queue`) */
	uint32_t accepted;   /* unix seconds */
	uint8_t flags;       /* QUEUE_F_* */
	unsigned nrcpt;
	struct queue_rcpt *rcpt;
};

/* A queue id: 1..QUEUE_ID_MAX-1 letters and digits (it names files). */
bool queue_id_ok(const char *id);
/* The envelope can be written: a good id, a sender, 1..QUEUE_RCPTS_MAX
 * recipients, each with a relay, an address and a known state. */
bool queue_env_ok(const struct queue_env *env);
/* The longest the envelope's text can become, in octets, every reply at
 * QUEUE_REPLY_MAX (env as queue_env_ok() accepts it). */
size_t queue_env_bound(const struct queue_env *env);
/* The envelope's text in buf[buflen], a NUL after it: its length, or 0
 * when it does not fit. */
size_t queue_env_format(char *buf, size_t buflen, const struct queue_env *env);
/* Parses the text in buf[0..len) in place: the strings of env point into
 * buf, its recipients into rcpt[maxrcpt]. 0, or -1 with errno EINVAL. */
int queue_env_parse(char *buf, size_t len, struct queue_env *env, struct queue_rcpt *rcpt, unsigned maxrcpt);

/* %-escaping of the envelope's text fields: every octet outside
 * 0x21..0x7e, and '%', becomes %HH. Returns the length written (dst holds
 * 3 * n + 1), or 0 when dstlen is too small (dst = ""). */
size_t queue_escape(char *dst, size_t dstlen, const char *src, size_t n);

#endif
