/* fuzz_client_reply: an arbitrary next hop's byte stream through the
 * gateway's reply parser and client machine (src/smtp_client.c).
 *
 * Two parts per input. First the parser alone: the stream parsed in one
 * piece and in pieces of a chosen size (down to one octet) must give the
 * same replies (code, text, EHLO keywords) and the same verdict; the text
 * stays within its bound and holds no control octet. Then the machine,
 * played by a transport like the unit tests' (the stream as the server's
 * replies, in pieces), with one or two messages of up to four recipients;
 * it asserts the promises of smtp_client.h: every recipient handed in gets
 * exactly one outcome, SENT only after the body went out, no command
 * written in the clear after EHLO when STARTTLS is required, AUTH only
 * inside TLS, every written command a line of its own, every wait with a
 * deadline, progress on every read, an end in bounded steps.
 *
 * Input: 2 header octets, then the stream.
 *   h0 bits 0-1 STARTTLS policy (3 = required)   bit 2 LMTP   bit 3 AUTH
 *      bit 4 TLS handshakes fail   bit 5 two messages   bit 6 a recipient
 *      address that cannot be sent   bit 7 SIZE= declared (2000)
 *   h1 bits 0-3 piece size (0 = 1 octet, n = 2^n)   bits 4-5 recipients - 1
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "smtp_client.h"

struct seen {
	uint16_t code;
	uint8_t verdict;
	uint8_t ext;
	uint64_t size_max;
	char text[CLIENT_TEXT_MAX + 1];
};

#define MAX_SEEN 256
static struct seen g_a[MAX_SEEN], g_b[MAX_SEEN];

NOCOV static unsigned parse_all(const char *p, size_t n, size_t chunk, struct seen *out)
{
	static struct sc_reply r;
	unsigned k = 0;
	size_t pos = 0;
	bool ehlo = true;

	sc_reply_begin(&r, ehlo);
	while (pos < n && k < MAX_SEEN) {
		size_t len = n - pos < chunk ? n - pos : chunk, used = 0;
		enum sc_parse st = sc_reply_feed(&r, p + pos, len, &used);

		FUZZ_CHECK(used <= len && (st != SC_PARSE_MORE || used == len) && used > 0);
		FUZZ_CHECK(r.len < CLIENT_LINE_MAX && r.tlen <= CLIENT_TEXT_MAX && strlen(r.text) == r.tlen);
		for (size_t i = 0; i < r.tlen; i++)
			FUZZ_CHECK((unsigned char)r.text[i] >= 0x20 && (unsigned char)r.text[i] < 0x7f);
		pos += used;
		if (st == SC_PARSE_MORE)
			continue;
		out[k].code = r.code;
		out[k].verdict = (uint8_t)st;
		out[k].ext = r.ext;
		out[k].size_max = r.size_max;
		memcpy(out[k].text, r.text, r.tlen + 1);
		k++;
		if (st == SC_PARSE_BAD)
			break;
		FUZZ_CHECK(r.code >= 200 && r.code <= 599);
		ehlo = !ehlo; /* alternate, so both kinds are parsed */
		sc_reply_begin(&r, ehlo);
	}
	return k;
}

NOCOV static bool line_ok(const char *p, size_t n)
{
	/* Each command is one line: CR only right before LF, LF only after CR, no NUL. */
	if (n < 2 || p[n - 2] != '\r' || p[n - 1] != '\n')
		return false;
	for (size_t i = 0; i < n; i++) {
		if (p[i] == 0)
			return false;
		if (p[i] == '\r' && (i + 1 >= n || p[i + 1] != '\n'))
			return false;
		if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
			return false;
	}
	return true;
}

NOCOV static void run_machine(uint8_t h0, uint8_t h1, const char *srv, size_t len)
{
	static struct smtp_client c;
	static const char *rcpts[4] = { "a@example.org", "b@example.org", "c@example.org", "d@example.org" };
	static const char *bad_rcpts[4] = { "a@example.org", "x>\r\nQUIT", "c@example.org", "" };
	static uint8_t state[2][4];
	static uint8_t reported[2][4];
	struct smtp_client_conf conf = {
		.helo = "gw.example.org",
		.tls = (h0 & 3) == 3 ? SC_TLS_REQUIRED : (h0 & 3) ? SC_TLS_OPPORTUNISTIC : SC_TLS_NO,
		.lmtp = (h0 & 4) != 0,
		.auth_user = (h0 & 8) ? "gateway" : NULL,
		.auth_pass = "secret",
		.tls_available = true,
	};
	struct smtp_client_msg msgs[2];
	unsigned nmsgs = (h0 & 32) ? 2 : 1, m = 0, nr = ((h1 >> 4) & 3) + 1, steps = 0;
	size_t chunk = (h1 & 15) == 0 ? 1 : (size_t)1 << (h1 & 15), pos = 0;
	bool tls = false, body_sent[2] = { false, false }, done = false;

	memset(state, 0, sizeof state);
	memset(reported, 0, sizeof reported);
	for (unsigned i = 0; i < 2; i++)
		msgs[i] = (struct smtp_client_msg){ .sender = i ? "" : "s@example.net",
						    .rcpt = (h0 & 64) && i == 0 ? bad_rcpts : rcpts, .state = state[i],
						    .nrcpt = nr, .size = (h0 & 128) ? 2000 : 0 };
	smtp_client_init(&c, &conf);
	while (!done) {
		struct smtp_client_event ev;
		enum sc_action a = smtp_client_next(&c, &ev);

		FUZZ_CHECK(++steps < 10000);
		FUZZ_CHECK(a == ev.action);
		switch (a) {
		case SC_WRITE: {
			const char *p = ev.data, *e = ev.data + ev.len;

			FUZZ_CHECK(ev.len > 0 && ev.len <= CLIENT_OUT_MAX && ev.timeout_ms > 0);
			/* line by line */
			while (p < e) {
				const char *nl = memchr(p, '\n', (size_t)(e - p));

				FUZZ_CHECK(nl != NULL);
				FUZZ_CHECK(line_ok(p, (size_t)(nl - p) + 1));
				if (!tls && conf.tls == SC_TLS_REQUIRED)
					FUZZ_CHECK(!strncmp(p, "EHLO ", 5) || !strncmp(p, "LHLO ", 5) ||
						   !strncmp(p, "HELO ", 5) || !strncmp(p, "STARTTLS\r\n", 10) ||
						   !strncmp(p, "QUIT\r\n", 6));
				if (!strncmp(p, "AUTH ", 5))
					FUZZ_CHECK(tls);
				p = nl + 1;
			}
			smtp_client_sent(&c);
			break;
		}
		case SC_READ: {
			size_t n = len - pos < chunk ? len - pos : chunk, used;

			FUZZ_CHECK(ev.timeout_ms > 0);
			if (n == 0) {
				smtp_client_fail(&c, "closed");
				break;
			}
			used = smtp_client_feed(&c, srv + pos, n);
			FUZZ_CHECK(used > 0 && used <= n); /* progress on every read */
			pos += used;
			break;
		}
		case SC_TLS:
			FUZZ_CHECK(!tls);
			tls = !(h0 & 16);
			smtp_client_tls_done(&c, tls);
			break;
		case SC_BODY:
			FUZZ_CHECK(m >= 1 && ev.timeout_ms > 0);
			body_sent[m - 1] = true;
			smtp_client_body_done(&c);
			break;
		case SC_RESULT:
			FUZZ_CHECK(m >= 1 && ev.rcpt < nr && ev.text != NULL);
			FUZZ_CHECK(strlen(ev.text) <= CLIENT_TEXT_MAX);
			FUZZ_CHECK(!reported[m - 1][ev.rcpt]);
			reported[m - 1][ev.rcpt] = 1;
			FUZZ_CHECK(ev.outcome == SC_R_SENT || ev.outcome == SC_R_DEFERRED || ev.outcome == SC_R_FAILED);
			FUZZ_CHECK(state[m - 1][ev.rcpt] == ev.outcome);
			if (ev.outcome == SC_R_SENT)
				FUZZ_CHECK(body_sent[m - 1] && ev.code >= 200 && ev.code < 300);
			break;
		case SC_IDLE:
			if (m >= 1)
				for (unsigned j = 0; j < nr; j++)
					FUZZ_CHECK(reported[m - 1][j]);
			if (m < nmsgs)
				smtp_client_message(&c, &msgs[m++]);
			else
				smtp_client_quit(&c);
			break;
		case SC_DONE:
			for (unsigned i = 0; i < m; i++)
				for (unsigned j = 0; j < nr; j++)
					FUZZ_CHECK(reported[i][j] && state[i][j] >= SC_R_SENT);
			FUZZ_CHECK(ev.text != NULL);
			done = true;
			break;
		default:
			FUZZ_CHECK(!"unknown action");
		}
	}
	/* After the end the machine stays done and takes nothing. */
	{
		struct smtp_client_event ev;

		FUZZ_CHECK(smtp_client_next(&c, &ev) == SC_DONE);
		FUZZ_CHECK(smtp_client_feed(&c, "250 ok\r\n", 8) == 0);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *srv;
	size_t len;
	unsigned na, nb;
	size_t chunk;

	if (size < 2 || size > 8192)
		return 0;
	srv = (const char *)data + 2;
	len = size - 2;
	chunk = (data[1] & 15) == 0 ? 1 : (size_t)1 << (data[1] & 15);
	na = parse_all(srv, len, len ? len : 1, g_a);
	nb = parse_all(srv, len, chunk, g_b);
	FUZZ_CHECK(na == nb);
	for (unsigned i = 0; i < na; i++)
		FUZZ_CHECK(g_a[i].code == g_b[i].code && g_a[i].verdict == g_b[i].verdict && g_a[i].ext == g_b[i].ext &&
			   g_a[i].size_max == g_b[i].size_max && strcmp(g_a[i].text, g_b[i].text) == 0);
	run_machine(data[0], data[1], srv, len);
	return 0;
}
