/* Unit tests for src/smtp_client.c: scripted dialogs with a next hop (the
 * server's replies are a fixed stream, fed in pieces of a chosen size down
 * to one octet), checking the commands written and every recipient's
 * outcome: plain, PIPELINING (one write, replies matched in order), SIZE,
 * STARTTLS required / opportunistic / not offered, AUTH inside TLS only,
 * LMTP per-recipient replies, 4xx/5xx per RCPT, 421 mid-session, a lost
 * connection mid-DATA, over-long, malformed and mixed-code replies, and
 * smtp_client_stuff(). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "smtp_client.h"

struct run {
	char wire[16384];     /* what the client wrote, with "[TLS]" and "[BODY]" marks */
	size_t wlen;
	unsigned writes;      /* SC_WRITE actions */
	char done_text[CLIENT_TEXT_MAX + 1];
	bool done_ok;
	unsigned done_code;
	unsigned results;     /* SC_RESULT events */
	unsigned dup;         /* a recipient reported twice */
	uint8_t outcome[8];   /* per recipient of all messages (4 each, 2 messages) */
	char text[8][CLIENT_TEXT_MAX + 1];
	uint32_t last_timeout;
};

static void wire(struct run *r, const char *p, size_t n)
{
	if (r->wlen + n < sizeof r->wire) {
		memcpy(r->wire + r->wlen, p, n);
		r->wlen += n;
		r->wire[r->wlen] = '\0';
	}
}

/* When the server stream runs out: the wait's deadline passes
 * (smtp_client_timeout) instead of the connection closing. */
static bool end_is_timeout;

/* Plays the transport: the server stream srv in pieces of chunk octets;
 * msgs messages of up to 4 recipients each; tls_ok says whether a
 * handshake succeeds. Returns after SC_DONE (or a step bound). */
static void drive(struct run *r, const struct smtp_client_conf *conf, const char *srv, size_t chunk,
		  struct smtp_client_msg *msgs, unsigned nmsgs, bool tls_ok)
{
	static struct smtp_client c;
	struct smtp_client_event ev;
	size_t pos = 0, len = strlen(srv);
	unsigned m = 0, steps = 0;

	memset(r, 0, sizeof *r);
	memset(r->outcome, 0xff, sizeof r->outcome);
	smtp_client_init(&c, conf);
	while (steps++ < 100000) {
		enum sc_action a = smtp_client_next(&c, &ev);

		CHECK(a == ev.action);
		switch (a) {
		case SC_WRITE:
			CHECK(ev.len > 0 && ev.timeout_ms > 0);
			r->writes++;
			wire(r, ev.data, ev.len);
			smtp_client_sent(&c);
			break;
		case SC_READ: {
			size_t n = len - pos < chunk ? len - pos : chunk, used;

			r->last_timeout = ev.timeout_ms;
			if (n == 0) {
				if (end_is_timeout)
					smtp_client_timeout(&c);
				else
					smtp_client_fail(&c, "connection closed by the next hop");
				break;
			}
			used = smtp_client_feed(&c, srv + pos, n);
			CHECK(used <= n);
			pos += used;
			break;
		}
		case SC_TLS:
			wire(r, "[TLS]", 5);
			smtp_client_tls_done(&c, tls_ok);
			break;
		case SC_BODY:
			wire(r, "[BODY]", 6);
			smtp_client_body_done(&c);
			break;
		case SC_RESULT: {
			unsigned k = (m - 1) * 4 + ev.rcpt;

			CHECK(m >= 1 && ev.rcpt < msgs[m - 1].nrcpt && k < 8);
			if (k < 8) {
				if (r->outcome[k] != 0xff)
					r->dup++;
				r->outcome[k] = ev.outcome;
				snprintf(r->text[k], sizeof r->text[k], "%s", ev.text ? ev.text : "(null)");
			}
			CHECK(ev.outcome == SC_R_SENT || ev.outcome == SC_R_DEFERRED || ev.outcome == SC_R_FAILED);
			r->results++;
			break;
		}
		case SC_IDLE:
			if (m < nmsgs)
				smtp_client_message(&c, &msgs[m++]);
			else
				smtp_client_quit(&c);
			break;
		case SC_DONE:
			r->done_ok = ev.ok;
			r->done_code = ev.code;
			snprintf(r->done_text, sizeof r->done_text, "%s", ev.text ? ev.text : "");
			/* Every recipient of every message handed in has one outcome. */
			for (unsigned i = 0; i < m; i++)
				for (unsigned j = 0; j < msgs[i].nrcpt; j++)
					CHECK(msgs[i].state[j] >= SC_R_SENT);
			return;
		}
	}
	CHECK(!"the machine did not end");
}

static const char *rc_abc[] = { "a@example.org", "b@example.org", "c@example.org", "d@example.org" };
static uint8_t st1[4], st2[4];

static struct smtp_client_msg msg1(unsigned n)
{
	struct smtp_client_msg m = { .sender = "s@example.net", .rcpt = rc_abc, .state = st1, .nrcpt = n };

	memset(st1, 0, sizeof st1);
	return m;
}

static const struct smtp_client_conf plain = { .helo = "gw.example.org", .tls = SC_TLS_NO };

#define GREET "220 mx ESMTP\r\n"
#define EHLO_PLAIN "250-mx\r\n250 8BITMIME\r\n"

static void test_plain(void)
{
	struct run r;
	struct smtp_client_msg m = msg1(2);

	drive(&r, &plain, GREET EHLO_PLAIN "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n250 2.0.0 queued as X\r\n221 bye\r\n",
	      4096, &m, 1, true);
	CHECK_STR(r.wire, "EHLO gw.example.org\r\nMAIL FROM:<s@example.net>\r\nRCPT TO:<a@example.org>\r\n"
			  "RCPT TO:<b@example.org>\r\nDATA\r\n[BODY]QUIT\r\n");
	CHECK(r.outcome[0] == SC_R_SENT && r.outcome[1] == SC_R_SENT && r.results == 2 && r.dup == 0);
	CHECK_STR(r.text[0], "250 2.0.0 queued as X");
	CHECK(r.done_ok);
	CHECK(r.last_timeout == CLIENT_QUIT_MS);
}

static void test_one_byte(void)
{
	struct run a, b;
	struct smtp_client_msg m = msg1(3);
	const char *srv = GREET "250-mx\r\n250-PIPELINING\r\n250 SIZE 1000\r\n250 ok\r\n250 ok\r\n550 5.1.1 no\r\n"
			  "451 4.3.0 later\r\n354 go\r\n250 done\r\n221 bye\r\n";

	drive(&a, &plain, srv, 4096, &m, 1, true);
	m = msg1(3);
	drive(&b, &plain, srv, 1, &m, 1, true);
	CHECK_STR(a.wire, b.wire);
	CHECK(memcmp(a.outcome, b.outcome, sizeof a.outcome) == 0);
	CHECK(b.outcome[0] == SC_R_SENT && b.outcome[1] == SC_R_FAILED && b.outcome[2] == SC_R_DEFERRED);
	CHECK_STR(b.text[1], "550 5.1.1 no");
	CHECK_STR(b.text[2], "451 4.3.0 later");
	CHECK(b.done_ok);
	/* Bare LF line ends are taken too. */
	m = msg1(3);
	drive(&b, &plain, GREET "250-mx\n250-PIPELINING\n250 SIZE 1000\n250 ok\n250 ok\n550 5.1.1 no\n"
			  "451 4.3.0 later\n354 go\n250 done\n221 bye\n", 1, &m, 1, true);
	CHECK(memcmp(a.outcome, b.outcome, sizeof a.outcome) == 0);
}

static void test_pipelining(void)
{
	struct run r;
	struct smtp_client_msg m = msg1(2);

	m.size = 500;
	drive(&r, &plain, GREET "250-mx\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 8BITMIME\r\n"
		  "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n250 done\r\n221 bye\r\n", 7, &m, 1, true);
	/* MAIL, both RCPTs and DATA in one write. */
	CHECK_STR(r.wire, "EHLO gw.example.org\r\nMAIL FROM:<s@example.net> SIZE=500\r\nRCPT TO:<a@example.org>\r\n"
			  "RCPT TO:<b@example.org>\r\nDATA\r\n[BODY]QUIT\r\n");
	CHECK(r.writes == 3);
	CHECK(r.outcome[0] == SC_R_SENT && r.outcome[1] == SC_R_SENT);

	/* Every RCPT refused: the pipelined DATA gets 554, nothing is sent. */
	m = msg1(2);
	drive(&r, &plain, GREET "250-mx\r\n250 PIPELINING\r\n250 ok\r\n550 no a\r\n550 no b\r\n554 no valid recipients\r\n"
		  "250 reset\r\n250 ok\r\n250 ok\r\n354 go\r\n250 done\r\n221 bye\r\n", 4096, &m, 1, true);
	CHECK(r.outcome[0] == SC_R_FAILED && r.outcome[1] == SC_R_FAILED && r.done_ok);
	CHECK(strstr(r.wire, "[BODY]") == NULL);

	/* A server that answers 354 anyway gets a lone dot. */
	m = msg1(1);
	drive(&r, &plain, GREET "250-mx\r\n250 PIPELINING\r\n250 ok\r\n550 no a\r\n354 go\r\n250 empty\r\n221 bye\r\n",
	      4096, &m, 1, true);
	CHECK_STR(r.wire, "EHLO gw.example.org\r\nMAIL FROM:<s@example.net>\r\nRCPT TO:<a@example.org>\r\nDATA\r\n"
			  ".\r\nQUIT\r\n");
	CHECK(r.outcome[0] == SC_R_FAILED && r.done_ok);

	/* MAIL refused in a pipelined group: every recipient has MAIL's outcome. */
	m = msg1(2);
	drive(&r, &plain, GREET "250-mx\r\n250 PIPELINING\r\n452 4.3.1 full\r\n503 no mail\r\n503 no mail\r\n"
		  "503 no mail\r\n221 bye\r\n", 4096, &m, 1, true);
	CHECK(r.outcome[0] == SC_R_DEFERRED && r.outcome[1] == SC_R_DEFERRED && r.dup == 0 && r.done_ok);
	CHECK_STR(r.text[1], "452 4.3.1 full");
}

static void test_no_pipelining(void)
{
	struct run r;
	struct smtp_client_msg m = msg1(2);

	/* Without PIPELINING: one command per write, no DATA when nobody was accepted. */
	drive(&r, &plain, GREET EHLO_PLAIN "250 ok\r\n550 no\r\n450 busy\r\n221 bye\r\n", 4096, &m, 1, true);
	CHECK_STR(r.wire, "EHLO gw.example.org\r\nMAIL FROM:<s@example.net>\r\nRCPT TO:<a@example.org>\r\n"
			  "RCPT TO:<b@example.org>\r\nQUIT\r\n");
	CHECK(r.outcome[0] == SC_R_FAILED && r.outcome[1] == SC_R_DEFERRED && r.done_ok);

	/* The next message after a failed one starts with RSET. */
	{
		struct smtp_client_msg two[2] = { msg1(1), { .sender = "", .rcpt = rc_abc + 1, .state = st2, .nrcpt = 1 } };

		memset(st2, 0, sizeof st2);
		drive(&r, &plain, GREET EHLO_PLAIN "250 ok\r\n550 no\r\n250 reset\r\n250 ok\r\n250 ok\r\n354 go\r\n"
			  "250 done\r\n221 bye\r\n", 3, two, 2, true);
		CHECK_STR(r.wire, "EHLO gw.example.org\r\nMAIL FROM:<s@example.net>\r\nRCPT TO:<a@example.org>\r\n"
				  "RSET\r\nMAIL FROM:<>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n[BODY]QUIT\r\n");
		CHECK(r.outcome[0] == SC_R_FAILED && r.outcome[4] == SC_R_SENT && r.done_ok);
	}
	/* A message without recipients sends nothing. */
	m = msg1(0);
	drive(&r, &plain, GREET EHLO_PLAIN "221 bye\r\n", 4096, &m, 1, true);
	CHECK_STR(r.wire, "EHLO gw.example.org\r\nQUIT\r\n");
	CHECK(r.results == 0 && r.done_ok);
	/* EHLO refused: HELO, and no extensions. */
	m = msg1(1);
	m.size = 10;
	drive(&r, &plain, GREET "502 what\r\n250 hello\r\n250 ok\r\n250 ok\r\n354 go\r\n250 done\r\n221 bye\r\n",
	      4096, &m, 1, true);
	CHECK_STR(r.wire, "EHLO gw.example.org\r\nHELO gw.example.org\r\nMAIL FROM:<s@example.net>\r\n"
			  "RCPT TO:<a@example.org>\r\nDATA\r\n[BODY]QUIT\r\n");
	CHECK(r.outcome[0] == SC_R_SENT);
}

static void test_size(void)
{
	struct run r;
	struct smtp_client_msg m = msg1(2);

	/* Over the announced SIZE: failed without a MAIL. */
	m.size = 2000;
	drive(&r, &plain, GREET "250-mx\r\n250 SIZE 1000\r\n221 bye\r\n", 4096, &m, 1, true);
	CHECK_STR(r.wire, "EHLO gw.example.org\r\nQUIT\r\n");
	CHECK(r.outcome[0] == SC_R_FAILED && r.outcome[1] == SC_R_FAILED && r.dup == 0);
	CHECK(strstr(r.text[0], "5.3.4") != NULL);
	/* SIZE without a number: no limit, SIZE= declared; 8BITMIME too. */
	m = msg1(1);
	m.size = 2000;
	m.eightbit = true;
	drive(&r, &plain, GREET "250-mx\r\n250-SIZE\r\n250 8BITMIME\r\n250 ok\r\n250 ok\r\n354 go\r\n250 ok\r\n221 bye\r\n",
	      4096, &m, 1, true);
	CHECK(strstr(r.wire, "MAIL FROM:<s@example.net> SIZE=2000 BODY=8BITMIME\r\n") != NULL);
	CHECK(r.outcome[0] == SC_R_SENT);
}

static void test_starttls(void)
{
	struct run r;
	struct smtp_client_msg m = msg1(1);
	struct smtp_client_conf req = { .helo = "gw", .tls = SC_TLS_REQUIRED, .tls_available = true };
	struct smtp_client_conf opp = { .helo = "gw", .tls = SC_TLS_OPPORTUNISTIC, .tls_available = true };

	/* required, offered: STARTTLS, handshake, EHLO again, then the mail. */
	drive(&r, &req, GREET "250-mx\r\n250 STARTTLS\r\n220 go ahead\r\n250-mx\r\n250 PIPELINING\r\n250 ok\r\n250 ok\r\n"
		  "354 go\r\n250 done\r\n221 bye\r\n", 5, &m, 1, true);
	CHECK_STR(r.wire, "EHLO gw\r\nSTARTTLS\r\n[TLS]EHLO gw\r\nMAIL FROM:<s@example.net>\r\nRCPT TO:<a@example.org>\r\n"
			  "DATA\r\n[BODY]QUIT\r\n");
	CHECK(r.outcome[0] == SC_R_SENT && r.done_ok);

	/* required, not offered: the session is deferred, no MAIL in the clear. */
	m = msg1(2);
	drive(&r, &req, GREET "250-mx\r\n250 PIPELINING\r\n", 4096, &m, 1, true);
	CHECK_STR(r.wire, "EHLO gw\r\n");
	CHECK(!r.done_ok && strstr(r.done_text, "STARTTLS is required") != NULL);
	CHECK(r.results == 0); /* no message was handed in before the session failed */

	/* required, refused with 454: deferred. */
	drive(&r, &req, GREET "250-mx\r\n250 STARTTLS\r\n454 4.7.0 not now\r\n", 4096, &m, 1, true);
	CHECK_STR(r.wire, "EHLO gw\r\nSTARTTLS\r\n");
	CHECK(!r.done_ok && strstr(r.done_text, "refused") != NULL);

	/* required, handshake fails (wrong name): deferred, nothing more written. */
	drive(&r, &req, GREET "250-mx\r\n250 STARTTLS\r\n220 go\r\n", 4096, &m, 1, false);
	CHECK_STR(r.wire, "EHLO gw\r\nSTARTTLS\r\n[TLS]");
	CHECK(!r.done_ok);

	/* required, and no TLS in this build. */
	req.tls_available = false;
	drive(&r, &req, GREET "250-mx\r\n250 STARTTLS\r\n", 4096, &m, 1, true);
	CHECK_STR(r.wire, "EHLO gw\r\n");
	CHECK(!r.done_ok);

	/* opportunistic, not offered or refused: in the clear. */
	m = msg1(1);
	drive(&r, &opp, GREET "250 mx\r\n250 ok\r\n250 ok\r\n354 go\r\n250 done\r\n221 bye\r\n", 4096, &m, 1, true);
	CHECK(r.outcome[0] == SC_R_SENT && strstr(r.wire, "STARTTLS") == NULL);
	m = msg1(1);
	drive(&r, &opp, GREET "250-mx\r\n250 STARTTLS\r\n454 no\r\n250 ok\r\n250 ok\r\n354 go\r\n250 done\r\n221 bye\r\n",
	      4096, &m, 1, true);
	CHECK(r.outcome[0] == SC_R_SENT && strstr(r.wire, "STARTTLS\r\nMAIL") != NULL);
	/* After TLS the old EHLO keywords are forgotten: no PIPELINING unless repeated. */
	m = msg1(2);
	drive(&r, &opp, GREET "250-mx\r\n250-PIPELINING\r\n250 STARTTLS\r\n220 go\r\n250 mx\r\n250 ok\r\n250 ok\r\n"
		  "250 ok\r\n354 go\r\n250 done\r\n221 bye\r\n", 4096, &m, 1, true);
	CHECK(r.writes == 8 && r.outcome[1] == SC_R_SENT);
}

static void test_auth(void)
{
	struct run r;
	struct smtp_client_msg m = msg1(1);
	struct smtp_client_conf a = { .helo = "gw", .tls = SC_TLS_REQUIRED, .tls_available = true,
				      .auth_user = "gateway", .auth_pass = "secret" };

	drive(&r, &a, GREET "250-mx\r\n250 STARTTLS\r\n220 go\r\n250-mx\r\n250 AUTH LOGIN PLAIN\r\n235 ok\r\n"
		  "250 ok\r\n250 ok\r\n354 go\r\n250 done\r\n221 bye\r\n", 4096, &m, 1, true);
	/* base64("\0gateway\0secret") */
	CHECK(strstr(r.wire, "[TLS]EHLO gw\r\nAUTH PLAIN AGdhdGV3YXkAc2VjcmV0\r\nMAIL FROM:") != NULL);
	CHECK(r.outcome[0] == SC_R_SENT);

	/* Bad credentials: the session is deferred. */
	m = msg1(1);
	drive(&r, &a, GREET "250-mx\r\n250 STARTTLS\r\n220 go\r\n250-mx\r\n250 AUTH=PLAIN\r\n535 5.7.8 bad\r\n", 4096, &m,
	      1, true);
	CHECK(!r.done_ok && r.done_code == 535 && strstr(r.wire, "MAIL") == NULL);

	/* AUTH configured, opportunistic TLS not offered: no password in the clear. */
	a.tls = SC_TLS_OPPORTUNISTIC;
	drive(&r, &a, GREET "250-mx\r\n250 AUTH PLAIN\r\n", 4096, &m, 1, true);
	CHECK_STR(r.wire, "EHLO gw\r\n");
	CHECK(!r.done_ok && strstr(r.done_text, "clear") != NULL);

	/* AUTH PLAIN not offered inside TLS. */
	drive(&r, &a, GREET "250-mx\r\n250 STARTTLS\r\n220 go\r\n250-mx\r\n250 AUTH LOGIN\r\n", 4096, &m, 1, true);
	CHECK(!r.done_ok && strstr(r.wire, "AUTH") == NULL);
}

static void test_lmtp(void)
{
	struct run r;
	struct smtp_client_msg m = msg1(4);
	struct smtp_client_conf l = { .helo = "gw", .lmtp = true };

	/* c refused at RCPT; a, b, d accepted; after the dot one reply each:
	 * a sent, b deferred, d failed. */
	drive(&r, &l, "220 lmtp\r\n250-lmtp\r\n250 PIPELINING\r\n250 ok\r\n250 ok\r\n250 ok\r\n550 5.1.1 c\r\n250 ok\r\n"
		  "354 go\r\n250 2.0.0 a ok\r\n452 4.2.2 b over quota\r\n550 5.2.1 d disabled\r\n221 bye\r\n", 2, &m, 1,
	      true);
	CHECK(strncmp(r.wire, "LHLO gw\r\n", 9) == 0);
	CHECK(r.outcome[0] == SC_R_SENT && r.outcome[1] == SC_R_DEFERRED && r.outcome[2] == SC_R_FAILED &&
	      r.outcome[3] == SC_R_FAILED && r.dup == 0);
	CHECK_STR(r.text[1], "452 4.2.2 b over quota");
	CHECK_STR(r.text[3], "550 5.2.1 d disabled");
	CHECK(r.done_ok);
	/* LMTP never falls back to HELO. */
	m = msg1(1);
	drive(&r, &l, "220 lmtp\r\n500 what\r\n", 4096, &m, 1, true);
	CHECK_STR(r.wire, "LHLO gw\r\n");
	CHECK(!r.done_ok);
}

static void test_failures(void)
{
	struct run r;
	struct smtp_client_msg m = msg1(2);

	/* 421 mid-session: the accepted and the untried recipients are deferred. */
	drive(&r, &plain, GREET EHLO_PLAIN "250 ok\r\n250 ok\r\n421 4.3.2 shutting down\r\n", 4096, &m, 1, true);
	CHECK(r.outcome[0] == SC_R_DEFERRED && r.outcome[1] == SC_R_DEFERRED && r.dup == 0);
	CHECK_STR(r.text[0], "421 4.3.2 shutting down");
	CHECK(!r.done_ok && r.done_code == 421 && strstr(r.wire, "QUIT") == NULL);

	/* The connection is lost after the dot: deferred (the next hop may have it). */
	m = msg1(2);
	drive(&r, &plain, GREET EHLO_PLAIN "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n", 4096, &m, 1, true);
	CHECK(r.outcome[0] == SC_R_DEFERRED && r.outcome[1] == SC_R_DEFERRED);
	CHECK_STR(r.text[0], "connection closed by the next hop");

	/* DATA refused: the accepted recipients get its outcome. */
	m = msg1(2);
	drive(&r, &plain, GREET EHLO_PLAIN "250 ok\r\n250 ok\r\n450 no\r\n554 5.7.1 data refused\r\n221 bye\r\n", 4096, &m,
	      1, true);
	CHECK(r.outcome[0] == SC_R_FAILED && r.outcome[1] == SC_R_DEFERRED && r.dup == 0);
	CHECK_STR(r.text[0], "554 5.7.1 data refused");
	/* The final reply 5xx fails every accepted recipient; 4xx defers. */
	m = msg1(1);
	drive(&r, &plain, GREET EHLO_PLAIN "250 ok\r\n250 ok\r\n354 go\r\n554 5.6.0 content\r\n221 bye\r\n", 4096, &m, 1,
	      true);
	CHECK(r.outcome[0] == SC_R_FAILED);
	m = msg1(1);
	drive(&r, &plain, GREET EHLO_PLAIN "250 ok\r\n250 ok\r\n354 go\r\n451 4.3.0 later\r\n221 bye\r\n", 4096, &m, 1,
	      true);
	CHECK(r.outcome[0] == SC_R_DEFERRED);

	/* A greeting that refuses: deferred session, nothing written. */
	drive(&r, &plain, "554 go away\r\n", 4096, &m, 1, true);
	CHECK(r.wlen == 0 && !r.done_ok && r.done_code == 554);
	CHECK(r.last_timeout == CLIENT_GREETING_MS);
}

/* A deadline names the wait it cut; after the end of data it says the
 * message may arrive twice. */
static void test_timeouts(void)
{
	static const struct {
		const char *srv, *why;
	} cases[] = {
		{"", "timed out waiting for the greeting"},
		{GREET, "timed out waiting for the reply to EHLO"},
		{GREET EHLO_PLAIN "250 ok\r\n", "timed out waiting for the replies to MAIL, RCPT and DATA"},
		{GREET EHLO_PLAIN "250 ok\r\n250 ok\r\n354 go\r\n",
		 "timed out waiting for the reply to the end of data (the next hop may have the message: it may arrive twice)"},
		/* Pipelined: DATA went out before RCPT's 550 came back. */
		{GREET "250-mx\r\n250 PIPELINING\r\n250 ok\r\n550 no\r\n354 go\r\n",
		 "timed out waiting for the reply to an empty DATA"},
	};
	struct run r;
	struct smtp_client_msg m;

	end_is_timeout = true;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		m = msg1(1);
		drive(&r, &plain, cases[i].srv, 4096, &m, 1, true);
		CHECK(!r.done_ok);
		CHECK_STR(r.done_text, cases[i].why);
		if (i == 2 || i == 3) /* the recipient waiting for that reply is deferred with it */
			CHECK_STR(r.text[0], cases[i].why);
	}
	end_is_timeout = false;
}

static void test_bad_replies(void)
{
	struct run r;
	struct smtp_client_msg m = msg1(2);
	char longline[700];

	/* Over-long line (the buffer never overflows), one octet at a time too. */
	memset(longline, 'x', sizeof longline);
	memcpy(longline, "220 ", 4);
	memcpy(longline + sizeof longline - 3, "\r\n", 3);
	drive(&r, &plain, longline, 1, &m, 1, true);
	CHECK(!r.done_ok && strstr(r.done_text, "too long") != NULL && r.wlen == 0);
	/* Malformed code, missing separator, mixed codes, a 1xx, too many lines. */
	drive(&r, &plain, "22x hello\r\n", 4096, &m, 1, true);
	CHECK(!r.done_ok && strstr(r.done_text, "malformed") != NULL);
	drive(&r, &plain, "220hello\r\n", 4096, &m, 1, true);
	CHECK(!r.done_ok);
	drive(&r, &plain, "120 hello\r\n", 4096, &m, 1, true);
	CHECK(!r.done_ok);
	drive(&r, &plain, "220 \r\n2\r\n", 4096, &m, 1, true);
	CHECK(!r.done_ok && strstr(r.wire, "MAIL") == NULL);
	/* mixed codes mid-transaction: every recipient deferred */
	m = msg1(2);
	drive(&r, &plain, GREET EHLO_PLAIN "250 ok\r\n250-ok\r\n550 no\r\n", 4096, &m, 1, true);
	CHECK(!r.done_ok && strstr(r.done_text, "mixed") != NULL);
	CHECK(r.outcome[0] == SC_R_DEFERRED && r.outcome[1] == SC_R_DEFERRED);
	{
		static char many[64 * 8 + 32];
		size_t n = 0;

		for (int i = 0; i < CLIENT_REPLY_LINES_MAX + 1; i++)
			n += (size_t)snprintf(many + n, sizeof many - n, "220-x\r\n");
		snprintf(many + n, sizeof many - n, "220 x\r\n");
		drive(&r, &plain, many, 4096, &m, 1, true);
		CHECK(!r.done_ok && strstr(r.done_text, "too many") != NULL);
	}
	/* A reply code alone ("250") ends a reply; text with controls is neutered. */
	m = msg1(1);
	drive(&r, &plain, "220\r\n250\r\n250 ok\r\n250 o\001k\r\n354\r\n250\r\n221\r\n", 4096, &m, 1, true);
	CHECK(r.outcome[0] == SC_R_SENT && r.done_ok);
	CHECK_STR(r.text[0], "250");
	/* A reply code 3xx to RCPT is a protocol failure. */
	m = msg1(1);
	drive(&r, &plain, GREET EHLO_PLAIN "250 ok\r\n354 what\r\n", 4096, &m, 1, true);
	CHECK(!r.done_ok && r.outcome[0] == SC_R_DEFERRED);
	/* Invalid addresses never reach the wire. */
	{
		static const char *bad[] = { "a@example.org", "x>\r\nDATA@example.org" };
		struct smtp_client_msg b = { .sender = "s@example.net", .rcpt = bad, .state = st1, .nrcpt = 2 };

		memset(st1, 0, sizeof st1);
		drive(&r, &plain, GREET EHLO_PLAIN "250 ok\r\n250 ok\r\n354 go\r\n250 ok\r\n221 bye\r\n", 4096, &b, 1,
		      true);
		CHECK(r.outcome[0] == SC_R_SENT && r.outcome[1] == SC_R_FAILED && r.dup == 0);
		CHECK(strstr(r.wire, "DATA@") == NULL);
	}
}

static void test_parser_direct(void)
{
	struct sc_reply p;
	size_t used;

	sc_reply_begin(&p, true);
	CHECK(sc_reply_feed(&p, "250-mx.example\r\n250-size 2048\r\n", 31, &used) == SC_PARSE_MORE && used == 31);
	CHECK(sc_reply_feed(&p, "250-auth=login plain\r\n250 starttls\r\n250 next", 44, &used) == SC_PARSE_DONE);
	CHECK(used == 36 && p.code == 250 && p.size_max == 2048);
	CHECK(p.ext == (SC_EXT_SIZE | SC_EXT_AUTH_PLAIN | SC_EXT_STARTTLS));
	CHECK_STR(p.text, "250-mx.example size 2048 auth=login plain starttls");
	/* The first line is the server's name, never a keyword. */
	sc_reply_begin(&p, true);
	CHECK(sc_reply_feed(&p, "250 PIPELINING\r\n", 16, &used) == SC_PARSE_DONE && p.ext == 0);
	/* The text is cut, never overflowing. */
	{
		char buf[600];

		memset(buf, 'y', sizeof buf);
		memcpy(buf, "250-", 4);
		memcpy(buf + 500, "\r\n250 ", 6);
		memcpy(buf + 598, "\r\n", 2);
		sc_reply_begin(&p, false);
		CHECK(sc_reply_feed(&p, buf, sizeof buf, &used) == SC_PARSE_DONE);
		CHECK(p.tlen == CLIENT_TEXT_MAX && strlen(p.text) == CLIENT_TEXT_MAX);
	}
}

static void test_stuff(void)
{
	struct sc_stuff s;
	const char *in = ".hidden\nline\n..two\nend. x\n.";
	char out[128], one[128];
	size_t w, n, ol = 0;

	smtp_client_stuff_init(&s);
	n = smtp_client_stuff(&s, in, strlen(in), out, sizeof out, &w);
	CHECK(n == strlen(in));
	w += smtp_client_stuff_end(&s, out + w);
	out[w] = '\0';
	CHECK_STR(out, "..hidden\r\nline\r\n...two\r\nend. x\r\n..\r\n.\r\n");
	/* One octet at a time, with an output of two: the same. */
	smtp_client_stuff_init(&s);
	for (size_t i = 0; i < strlen(in);) {
		size_t wr;

		i += smtp_client_stuff(&s, in + i, strlen(in) - i, one + ol, 2, &wr);
		ol += wr;
	}
	ol += smtp_client_stuff_end(&s, one + ol);
	one[ol] = '\0';
	CHECK_STR(one, out);
	/* An expansion that does not fit is not taken. */
	smtp_client_stuff_init(&s);
	CHECK(smtp_client_stuff(&s, "\n", 1, out, 1, &w) == 0 && w == 0);
	/* A body ending in LF gets only the dot. */
	smtp_client_stuff_init(&s);
	smtp_client_stuff(&s, "a\n", 2, out, sizeof out, &w);
	CHECK(smtp_client_stuff_end(&s, out + w) == 3);
}

/* Steps c until it asks for SC_IDLE or SC_DONE, feeding srv whole and
 * recording the writes in r: the transport of test_idle_wait(). */
static enum sc_action until_idle(struct smtp_client *c, struct run *r, const char **srv)
{
	struct smtp_client_event ev;

	for (unsigned steps = 0; steps < 1000; steps++) {
		enum sc_action a = smtp_client_next(c, &ev);

		switch (a) {
		case SC_WRITE:
			wire(r, ev.data, ev.len);
			smtp_client_sent(c);
			break;
		case SC_READ:
			if (!**srv)
				smtp_client_fail(c, "the next hop closed the connection");
			else
				*srv += smtp_client_feed(c, *srv, strlen(*srv));
			break;
		case SC_BODY:
			wire(r, "[BODY]", 6);
			smtp_client_body_done(c);
			break;
		case SC_RESULT:
			r->outcome[r->results] = ev.outcome;
			r->done_code = ev.code;
			snprintf(r->text[r->results], sizeof r->text[0], "%s", ev.text);
			r->results++;
			break;
		case SC_IDLE:
		case SC_DONE:
			r->done_ok = ev.ok;
			return a;
		default:
			CHECK(!"no TLS here");
			return a;
		}
	}
	CHECK(!"the machine did not stop");
	return SC_DONE;
}

/* What relay_session.c's idle session relies on: between messages the
 * machine keeps asking SC_IDLE, changing nothing, however long the
 * transport waits; the next message then starts with MAIL (no RSET after
 * a clean transaction), and a close seen at its MAIL (a next hop that
 * dropped the idle session) defers the message with code 0, the
 * transport's own reason; QUIT after the wait ends cleanly even when
 * the next hop is already gone. */
static void test_idle_wait(void)
{
	static struct smtp_client c;
	struct smtp_client_msg m = msg1(1), m2;
	struct run r;
	const char *srv = GREET EHLO_PLAIN "250 ok\r\n250 ok\r\n354 go\r\n250 2.0.0 queued\r\n";

	memset(&r, 0, sizeof r);
	smtp_client_init(&c, &plain);
	CHECK(until_idle(&c, &r, &srv) == SC_IDLE);
	smtp_client_message(&c, &m);
	CHECK(until_idle(&c, &r, &srv) == SC_IDLE && r.results == 1 && r.outcome[0] == SC_R_SENT);
	for (int i = 0; i < 3; i++) { /* the transport waits: the machine asks the same */
		struct smtp_client_event ev;

		CHECK(smtp_client_next(&c, &ev) == SC_IDLE);
	}
	r.wlen = 0;
	memset(st2, 0, sizeof st2);
	m2 = (struct smtp_client_msg){ .sender = "s@example.net", .rcpt = rc_abc + 1, .state = st2, .nrcpt = 1 };
	smtp_client_message(&c, &m2);
	CHECK(until_idle(&c, &r, &srv) == SC_DONE); /* srv is used up: the next hop is gone */
	CHECK(strncmp(r.wire, "MAIL FROM:<s@example.net>", 25) == 0);
	CHECK(r.results == 2 && r.outcome[1] == SC_R_DEFERRED && r.done_code == 0 && !r.done_ok);
	CHECK_STR(r.text[1], "the next hop closed the connection");

	/* Idle, then QUIT; the next hop closed meanwhile: a clean end. */
	srv = GREET EHLO_PLAIN;
	memset(&r, 0, sizeof r);
	smtp_client_init(&c, &plain);
	CHECK(until_idle(&c, &r, &srv) == SC_IDLE);
	smtp_client_quit(&c);
	CHECK(until_idle(&c, &r, &srv) == SC_DONE && r.done_ok && r.results == 0);
	CHECK(strstr(r.wire, "QUIT\r\n") != NULL);
}

int main(void)
{
	test_plain();
	test_one_byte();
	test_pipelining();
	test_no_pipelining();
	test_size();
	test_starttls();
	test_auth();
	test_lmtp();
	test_failures();
	test_timeouts();
	test_idle_wait();
	test_bad_replies();
	test_parser_direct();
	test_stuff();
	return check_summary("smtp_client");
}
