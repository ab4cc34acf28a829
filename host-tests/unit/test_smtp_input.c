/* The framing of src/smtp_input.c: line assembly, over-long lines, long
 * AUTH lines, the pipelining check, and message data with its size and
 * bare-EOL verdicts and what is left after the end. */
#include <stdbool.h>
#include <stdlib.h>

#include "check.h"
#include "smtp_input.h"
#include "smtp_session.h"

static char buf[SMTP_LINE_MAX];
static char aux[AUTH_LINE_MAX];
static struct smtp_input in;
static struct smtp_session s;
static union {
	struct smtp_envelope e;
	char mem[sizeof(struct smtp_envelope) + 16 * sizeof(uint32_t)];
} envmem;

static void reset(void)
{
	smtp_session_init(&s, &envmem.e, 16);
	smtp_input_init(&in);
}

/* Reads text as the transport would: into the buffer the framing names,
 * as far as it has room. Returns the octets taken. */
static size_t feed(const char *text, size_t len)
{
	char *at;
	size_t room = smtp_input_room(&in, buf, aux, &at);
	if (len > room)
		len = room;
	memcpy(at, text, len);
	smtp_input_got(&in, len);
	return len;
}

static size_t feeds(const char *text)
{
	return feed(text, strlen(text));
}

/* The next line as text ("" with *ok false when there is none); consumed. */
static const char *next(bool auth, bool *too_long, bool *ok)
{
	static char out[AUTH_LINE_MAX + 1];
	struct smtp_line l;

	*ok = smtp_input_line(&in, buf, aux, &s, auth, &l);
	if (!*ok)
		return "";
	memcpy(out, l.text, l.len);
	out[l.len] = 0;
	*too_long = l.too_long;
	smtp_input_consume(&in, buf, aux, &l);
	return out;
}

static void test_lines(void)
{
	bool ok, tl;

	reset();
	CHECK(!smtp_input_pending(&in));
	feeds("EHLO a\r\nNOOP\nRSET\r");
	CHECK(smtp_input_pending(&in));
	CHECK_STR(next(false, &tl, &ok), "EHLO a");
	CHECK(ok && !tl);
	CHECK_STR(next(false, &tl, &ok), "NOOP"); /* a bare LF ends a command line */
	CHECK(ok && !tl);
	next(false, &tl, &ok);
	CHECK(!ok && in.len == 5); /* "RSET\r" waits for its LF */
	feeds("\n");
	CHECK_STR(next(false, &tl, &ok), "RSET");
	CHECK(ok && in.len == 0);
	/* Only one CR before the LF is the line ending. */
	feeds("NOOP\r\r\n");
	CHECK_STR(next(false, &tl, &ok), "NOOP\r");
	/* An empty line is a line. */
	feeds("\r\n");
	CHECK_STR(next(false, &tl, &ok), "");
	CHECK(ok);
}

static void test_too_long(void)
{
	char big[1600];
	bool ok, tl;
	const char *t;

	reset();
	memset(big, 'x', sizeof big);
	CHECK(feed(big, sizeof big) == SMTP_LINE_MAX);
	t = next(false, &tl, &ok);
	CHECK(ok && tl && strlen(t) == SMTP_LINE_MAX); /* answered once ... */
	CHECK(in.len == 0);
	CHECK(feed(big, 600) == SMTP_LINE_MAX);
	next(false, &tl, &ok);
	CHECK(!ok && in.len == 0); /* ... then skipped, however long */
	feeds("tail\r\nQUIT\r\n");
	CHECK_STR(next(false, &tl, &ok), "QUIT"); /* the tail is never a command */
	CHECK(ok && !tl);
	/* A line of exactly SMTP_LINE_MAX with its CRLF fits. */
	reset();
	memset(big, 'y', SMTP_LINE_MAX - 2);
	big[SMTP_LINE_MAX - 2] = '\r';
	big[SMTP_LINE_MAX - 1] = '\n';
	feed(big, SMTP_LINE_MAX);
	t = next(false, &tl, &ok);
	CHECK(ok && !tl && strlen(t) == SMTP_LINE_MAX - 2);
}

static void test_auth_line(void)
{
	char line[AUTH_LINE_MAX + 200];
	size_t n = 11 + 700, pos;
	bool ok, tl;
	const char *t;

	reset();
	memcpy(line, "AUTH PLAIN ", 11);
	memset(line + 11, 'Q', 700);
	memcpy(line + n, "\r\nNOOP\r\n", 8);
	pos = feed(line, n + 8);
	CHECK(pos == SMTP_LINE_MAX);
	next(true, &tl, &ok);
	CHECK(!ok && in.len == 0 && in.aux_len == SMTP_LINE_MAX); /* moved to aux */
	CHECK(smtp_input_pending(&in));
	pos += feed(line + pos, n + 8 - pos);
	CHECK(pos == n + 8);
	t = next(true, &tl, &ok);
	CHECK(ok && !tl && strlen(t) == n && t[n - 1] == 'Q');
	CHECK(in.aux_len == 0 && in.len == 6); /* what followed is back in buf */
	CHECK_STR(next(true, &tl, &ok), "NOOP");

	/* Without [auth] the same line is too long. */
	reset();
	feed(line, n + 8);
	next(false, &tl, &ok);
	CHECK(ok && tl);

	/* Longer than AUTH_LINE_MAX: answered once from aux, then skipped. */
	reset();
	memset(line + 11, 'Q', sizeof line - 11);
	pos = feed(line, sizeof line);
	next(true, &tl, &ok);
	CHECK(!ok && in.aux_len == SMTP_LINE_MAX);
	pos += feed(line + pos, sizeof line - pos);
	CHECK(pos == AUTH_LINE_MAX && in.aux_len == AUTH_LINE_MAX);
	{
		char *at;
		CHECK(smtp_input_room(&in, buf, aux, &at) == 0); /* both full: stop reading */
	}
	t = next(true, &tl, &ok);
	CHECK(ok && tl && strlen(t) == AUTH_LINE_MAX);
	CHECK(in.aux_len == 0);
	feeds("QQQQ\r\nQUIT\r\n");
	CHECK_STR(next(true, &tl, &ok), "QUIT");
}

static void test_early(void)
{
	bool ok, tl;

	reset();
	feeds("DATA\r\nSubject: x\r\n");
	next(false, &tl, &ok);
	s.state = SMTP_DATA_WAIT; /* what the session does on DATA */
	CHECK(smtp_input_early(&in, &s));
	smtp_input_drop(&in);
	CHECK(!smtp_input_early(&in, &s) && in.len == 0);
	s.state = SMTP_CMD;
	feeds("x");
	CHECK(!smtp_input_early(&in, &s)); /* only before a 354 or 220 */
}

static void test_data(void)
{
	static const char msg[] = "abc\r\n..dot\r\n.\r\nQUIT\r\n";
	char out[sizeof msg + 1];
	size_t store, used;
	bool done, ok, tl;

	reset();
	smtp_input_data_begin(&in);
	used = smtp_input_data(&in, msg, sizeof msg - 1, out, 100, &store, &done);
	CHECK(done && used == 15 && store == 9 && memcmp(out, "abc\n.dot\n", 9) == 0);
	/* The size is as transferred (RFC 1870): "abc\r\n..dot\r\n", 12. */
	CHECK(in.size == 12 && smtp_input_verdict(&in) == DATA_STORED);
	/* Through TLS what followed the end goes to the line buffer. */
	smtp_input_keep(&in, buf, msg + used, sizeof msg - 1 - used);
	CHECK_STR(next(false, &tl, &ok), "QUIT");

	/* Too big: refused once over, no more stored, read to its end. */
	smtp_input_data_begin(&in);
	used = smtp_input_data(&in, msg, 5, out, 6, &store, &done);
	CHECK(!done && store == 4 && smtp_input_verdict(&in) == DATA_STORED);
	used = smtp_input_data(&in, msg + 5, 7, out, 6, &store, &done);
	CHECK(!done && store == 0 && smtp_input_verdict(&in) == DATA_TOO_BIG);
	used = smtp_input_data(&in, msg + 12, sizeof msg - 13, out, 6, &store, &done);
	CHECK(done && used == 3 && store == 0 && in.size == 12);
	CHECK(smtp_input_verdict(&in) == DATA_TOO_BIG);

	/* The limit's boundary, as SIZE= counts (SPEC §7): 12 transferred
	 * octets fit a limit of 12, not of 11, however the data is split —
	 * the ".\r" of the end, counted before it is known, never refuses. */
	for (uint64_t max = 11; max <= 12; max++) {
		for (size_t step = 1; step <= 15; step += 14) {
			size_t pos = 0, stored = 0;
			smtp_input_data_begin(&in);
			done = false;
			while (!done) {
				used = smtp_input_data(&in, msg + pos, step, out, max, &store, &done);
				pos += used;
				stored += store;
			}
			CHECK(pos == 15 && in.size == 12);
			CHECK(smtp_input_verdict(&in) == (max == 12 ? DATA_STORED : DATA_TOO_BIG));
			CHECK(max == 11 || stored == 9);
		}
	}

	/* A new message starts with a clean slate. */
	smtp_input_data_begin(&in);
	CHECK(in.size == 0 && smtp_input_verdict(&in) == DATA_STORED);

	/* A bare LF: nothing more stored, and the verdict wins over size. */
	used = smtp_input_data(&in, "a\nbcdefgh\r\n.\r\n", 14, out, 3, &store, &done);
	CHECK(done && used == 14 && store == 0 && smtp_input_verdict(&in) == DATA_BARE_EOL);
}

int main(void)
{
	test_lines();
	test_too_long();
	test_auth_line();
	test_early();
	test_data();
	return check_summary("smtp_input");
}
