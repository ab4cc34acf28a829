/* Unit tests for src/dsn.c: the RFC 3464 structure (multipart/report with
 * its boundary, the three parts, the per-message and per-recipient fields),
 * the status taken from a reply, a boundary that avoids the attached
 * headers, neutered reply text, the headers cut before the body, and a
 * writer that stops. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dsn.h"
#include "limits.h"

static char out[65536];
static size_t out_len;
static int stop_after = -1;

static int collect(void *ctx, const char *p, size_t n)
{
	(void)ctx;
	if (stop_after >= 0 && stop_after-- == 0)
		return -1;
	if (out_len + n >= sizeof out)
		return -1;
	memcpy(out + out_len, p, n);
	out_len += n;
	out[out_len] = '\0';
	return 0;
}

static unsigned count(const char *hay, const char *needle)
{
	unsigned n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

/* The boundary declared in the Content-Type header. */
static void boundary_of(char *b, size_t len)
{
	const char *p = strstr(out, "boundary=\"");
	const char *e;

	b[0] = '\0';
	if (!p)
		return;
	p += 10;
	e = strchr(p, '"');
	if (e && (size_t)(e - p) < len) {
		memcpy(b, p, (size_t)(e - p));
		b[e - p] = '\0';
	}
}

static const char msg[] = "Return-Path: <alice@example.org>\nReceived: from x ([192.0.2.1])\n\tby mx id A1; date\n"
			  "Subject: report\nFrom: alice@example.org\n\nthe body, never attached\n";

static void test_structure(void)
{
	struct dsn_rcpt r[2] = {
		{ .addr = "bob@office.example", .reply = "550 5.1.1 <bob@office.example>: user unknown",
		  .remote_mta = "192.0.2.25", .action = DSN_FAILED },
		{ .addr = "carol@office.example", .reply = "", .action = DSN_FAILED, .expired = true },
	};
	struct dsn_input in = { .reporting_mta = "mx.example.org", .id = "A1B2", .to = "alice@example.org",
				.arrival = 1764750000, .now = 1765000000, .rcpt = r, .nrcpt = 2,
				.message = msg, .message_len = sizeof msg - 1 };
	char b[128], line[160];

	out_len = 0;
	CHECK(dsn_write(&in, collect, NULL) == 0);
	boundary_of(b, sizeof b);
	CHECK(b[0] != '\0' && strlen(b) <= 70);
	CHECK(strncmp(out, "From: Mail Delivery System <MAILER-DAEMON@mx.example.org>\n", 58) == 0);
	CHECK(strstr(out, "\nTo: <alice@example.org>\n") != NULL);
	CHECK(strstr(out, "\nAuto-Submitted: auto-replied\n") != NULL);
	CHECK(strstr(out, "\nMIME-Version: 1.0\n") != NULL);
	CHECK(strstr(out, "Content-Type: multipart/report; report-type=delivery-status;\n\tboundary=\"") != NULL);
	CHECK(strstr(out, "\nSubject: Undelivered Mail Returned to Sender\n") != NULL);
	/* Three parts and the closing delimiter, each on its own line. */
	snprintf(line, sizeof line, "\n--%s\n", b);
	CHECK(count(out, line) == 3);
	snprintf(line, sizeof line, "\n--%s--\n", b);
	CHECK(count(out, line) == 1);
	CHECK(strlen(out) >= strlen(line) && strcmp(out + strlen(out) - strlen(line), line) == 0);
	CHECK(strstr(out, "Content-Type: text/plain; charset=us-ascii\n") != NULL);
	CHECK(strstr(out, "Content-Type: message/delivery-status\n") != NULL);
	CHECK(strstr(out, "Content-Type: text/rfc822-headers\n") != NULL);
	/* The order of the parts. */
	CHECK(strstr(out, "text/plain") < strstr(out, "message/delivery-status") &&
	      strstr(out, "message/delivery-status") < strstr(out, "text/rfc822-headers"));
	/* Per-message fields. */
	CHECK(strstr(out, "\nReporting-MTA: dns; mx.example.org\n") != NULL);
	CHECK(strstr(out, "\nArrival-Date: Wed, 3 Dec 2025 08:20:00 +0000\n") != NULL);
	/* Per-recipient fields, each group after an empty line. */
	CHECK(strstr(out, "\n\nFinal-Recipient: rfc822; bob@office.example\nAction: failed\nStatus: 5.1.1\n"
			  "Remote-MTA: dns; 192.0.2.25\n"
			  "Diagnostic-Code: smtp; 550 5.1.1 <bob@office.example>: user unknown\n"
			  "Last-Attempt-Date: ") != NULL);
	CHECK(strstr(out, "\n\nFinal-Recipient: rfc822; carol@office.example\nAction: failed\nStatus: 4.4.7\n"
			  "Diagnostic-Code: X-tarpitd; delivery time expired\n") != NULL);
	CHECK(count(out, "Final-Recipient:") == 2 && count(out, "Action:") == 2 && count(out, "Status:") == 2 &&
	      count(out, "Diagnostic-Code:") == 2);
	/* The original headers, not the body. */
	CHECK(strstr(out, "\n\nReturn-Path: <alice@example.org>\nReceived: from x") != NULL);
	CHECK(strstr(out, "Subject: report\nFrom: alice@example.org\n") != NULL);
	CHECK(strstr(out, "the body") == NULL);
	/* Only LF line ends: the stored form. */
	CHECK(strchr(out, '\r') == NULL);
}

static void test_hostile(void)
{
	/* The headers contain what the boundary would have been; the reply
	 * carries line breaks and a MIME delimiter of its own. */
	static char hdr[512];
	struct dsn_rcpt r = { .addr = "bob@office.example",
			      .reply = "451 4.3.0 x\r\n--=_tarpitd_Z9_7_0\r\nContent-Type: text/html\xff", .action = DSN_DELAYED };
	struct dsn_input in = { .reporting_mta = "mx", .id = "Z9", .to = "postmaster", .now = 7, .rcpt = &r, .nrcpt = 1,
				.message = hdr };
	char b[128], line[160];

	snprintf(hdr, sizeof hdr, "Subject: x\n--=_tarpitd_Z9_7_0\nX: --=_tarpitd_Z9_7_1\n");
	in.message_len = strlen(hdr); /* no empty line: all of it is headers */
	out_len = 0;
	CHECK(dsn_write(&in, collect, NULL) == 0);
	boundary_of(b, sizeof b);
	CHECK_STR(b, "=_tarpitd_Z9_7_2");
	snprintf(line, sizeof line, "\n--%s\n", b);
	CHECK(count(out, line) == 3);
	/* The reply stays on one line. */
	CHECK(strstr(out, "Diagnostic-Code: smtp; 451 4.3.0 x?" "?--=_tarpitd_Z9_7_0?" "?Content-Type: text/html?\n") != NULL);
	CHECK(count(out, "Content-Type: text/html") == 2 && strstr(out, "\nContent-Type: text/html") == NULL);
	CHECK(strstr(out, "Action: delayed\nStatus: 4.3.0\n") != NULL);
	CHECK(strstr(out, "Subject: Delayed Mail") != NULL);
	CHECK(strstr(out, "\n--=_tarpitd_Z9_7_0\nX: --=_tarpitd_Z9_7_1\n") != NULL);

	/* Headers over DSN_HEADERS_MAX are cut at a line end. */
	{
		static char big[DSN_HEADERS_MAX * 2];
		size_t n = 0;

		while (n + 40 < sizeof big)
			n += (size_t)snprintf(big + n, sizeof big - n, "X-Long: %030zu\n", n);
		in.message = big;
		in.message_len = n;
		out_len = 0;
		CHECK(dsn_write(&in, collect, NULL) == 0);
		CHECK(out_len < DSN_HEADERS_MAX + 4096);
		CHECK(strstr(out, "\n\n--=_tarpitd_Z9_7_0--\n") != NULL); /* the last line whole, then the end */
	}
	/* A writer that stops makes the builder fail. */
	stop_after = 3;
	out_len = 0;
	CHECK(dsn_write(&in, collect, NULL) == -1);
	stop_after = -1;
	/* Unusable input. */
	in.nrcpt = 0;
	CHECK(dsn_write(&in, collect, NULL) == -1);
}

static void test_status(void)
{
	char s[16];

	dsn_status("550 5.1.1 no", false, s);
	CHECK_STR(s, "5.1.1");
	dsn_status("552-5.3.4 too big", false, s);
	CHECK_STR(s, "5.3.4");
	dsn_status("550 4.1.1 wrong class", false, s);
	CHECK_STR(s, "5.0.0");
	dsn_status("451 try later", false, s);
	CHECK_STR(s, "4.0.0");
	dsn_status("554", false, s);
	CHECK_STR(s, "5.0.0");
	dsn_status("550 5.123.456", false, s);
	CHECK_STR(s, "5.123.456");
	dsn_status("550 5.1234.1 x", false, s);
	CHECK_STR(s, "5.0.0");
	dsn_status("connection refused", false, s);
	CHECK_STR(s, "4.4.1");
	dsn_status(NULL, false, s);
	CHECK_STR(s, "4.4.1");
	dsn_status("550 5.1.1 x", true, s);
	CHECK_STR(s, "4.4.7");
}

int main(void)
{
	test_structure();
	test_hostile();
	test_status();
	return check_summary("dsn");
}
