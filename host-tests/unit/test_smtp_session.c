/* The pure session machine: command in, reply id and flags out. */
#include <stdlib.h>
#include <unistd.h>

#include "auth.h"
#include "check.h"
#include "config.h"
#include "recipients.h"
#include "smtp_session.h"

static struct connector_conf cf;
static struct smtp_env env;
static struct smtp_session s;
static struct smtp_envelope *envelope;
static struct smtp_reply out[2];
static unsigned nout;
static struct smtp_creds creds;
static bool auto_verify = true; /* say() plays the transport's verifier */

static void fresh(void)
{
	memset(envelope, 0, sizeof *envelope + 200 * sizeof(uint32_t));
	smtp_session_init(&s, envelope, 200);
}

static int say(const char *line)
{
	nout = smtp_session_line(&s, &env, line, strlen(line), false, out);
	/* The credentials were handed out: check them as conn.c would
	 * (in one piece here) and give the verdict back. */
	if (auto_verify && nout == 0 && s.state == SMTP_AUTH_WAIT)
		nout = smtp_session_auth_verdict(
			&s, &env, users_verify(env.users, creds.user, creds.ulen, creds.pass, creds.plen), out);
	return nout ? reply_code((enum reply_id)out[0].id) : 0;
}

static enum reply_id id(void)
{
	return (enum reply_id)out[0].id;
}

static void hello(void)
{
	fresh();
	CHECK(say("EHLO client.example") == 250);
}

static void transaction(void)
{
	hello();
	CHECK(say("MAIL FROM:<s@example.com>") == 250);
}

static const struct smtp_session *traced;
static enum smtp_state traced_from, traced_to;

static void tracer(const struct smtp_session *t, enum smtp_state to)
{
	traced = t;
	traced_from = (enum smtp_state)t->state;
	traced_to = to;
}

/* "AUTH PLAIN base64(\0user\0pass)" */
static const char *plain_line(const char *user, const char *pass)
{
	static char line[1100];
	unsigned char msg[800];
	size_t ul = strlen(user), pl = strlen(pass), n = 11;

	msg[0] = 0;
	memcpy(msg + 1, user, ul);
	msg[1 + ul] = 0;
	memcpy(msg + 2 + ul, pass, pl);
	memcpy(line, "AUTH PLAIN ", 11);
	n += auth_b64_encode(msg, 2 + ul + pl, line + 11, sizeof line - 11);
	line[n] = 0;
	return line;
}

/* The session never checks a password: a complete AUTH hands the
 * credentials out, waits in SMTP_AUTH_WAIT reading nothing, and answers
 * when the transport gives the verdict (SPEC §9: PBKDF2 runs in slices). */
static void test_auth_pending(void)
{
	char b64[400], longpw[400];

	auto_verify = false;
	cf.max_auth_failures = 2;
	cf.tarpit_interval = 5;
	hello();
	CHECK(smtp_session_may_verify(&s, "AUTH PLAIN x", 12) && smtp_session_may_verify(&s, "auth login", 10));
	CHECK(!smtp_session_may_verify(&s, "NOOP", 4) && !smtp_session_may_verify(&s, "AUTHX", 5));
	memset(&creds, 0x5a, sizeof creds);
	smtp_session_tracer = tracer;
	traced = NULL;
	CHECK(say(plain_line("joe@example.org", "s3cret")) == 0 && nout == 0);
	smtp_session_tracer = NULL;
	CHECK(s.state == SMTP_AUTH_WAIT);
	CHECK(traced == &s && traced_from == SMTP_CMD && traced_to == SMTP_AUTH_WAIT);
	CHECK(creds.ulen == 15 && memcmp(creds.user, "joe@example.org", 15) == 0);
	CHECK(creds.plen == 6 && memcmp(creds.pass, "s3cret", 6) == 0);
	CHECK(!smtp_session_authenticated(&s));
	/* Waiting: nothing is read, nothing may start another check. */
	CHECK(say("NOOP") == 0 && nout == 0 && s.state == SMTP_AUTH_WAIT);
	CHECK(!smtp_session_may_verify(&s, "AUTH PLAIN x", 12));
	/* The verdict: 235, authenticated, never tarpitted. */
	nout = smtp_session_auth_verdict(&s, &env, true, out);
	CHECK(nout == 1 && out[0].id == R_235_AUTH && !(out[0].flags & RF_TARPIT));
	CHECK(s.state == SMTP_CMD && smtp_session_authenticated(&s));
	/* A verdict nobody waits for gives nothing. */
	CHECK(smtp_session_auth_verdict(&s, &env, true, out) == 0 && s.state == SMTP_CMD);

	/* A failure: 535, tarpitted; the third closes with 421 (max 2). */
	hello();
	CHECK(smtp_session_may_verify(&s, "anything", 8) == false);
	CHECK(say("AUTH LOGIN") == 334 && smtp_session_may_verify(&s, "anything", 8));
	auth_b64_encode((const unsigned char *)"joe@example.org", 15, b64, sizeof b64);
	CHECK(say(b64) == 334 && s.state == SMTP_CMD);
	auth_b64_encode((const unsigned char *)"wrong", 5, b64, sizeof b64);
	CHECK(say(b64) == 0 && s.state == SMTP_AUTH_WAIT && creds.plen == 5);
	nout = smtp_session_auth_verdict(&s, &env, false, out);
	CHECK(nout == 1 && out[0].id == R_535_AUTH && (out[0].flags & RF_TARPIT) && s.state == SMTP_CMD);
	CHECK(say(plain_line("joe@example.org", "x")) == 0);
	CHECK(smtp_session_auth_verdict(&s, &env, false, out) == 1 && out[0].id == R_535_AUTH);
	CHECK(say(plain_line("joe@example.org", "y")) == 0);
	nout = smtp_session_auth_verdict(&s, &env, false, out);
	CHECK(nout == 2 && out[0].id == R_535_AUTH && out[1].id == R_421_AUTH && (out[1].flags & RF_CLOSE) &&
	      (out[1].flags & RF_TARPIT));
	CHECK(s.state == SMTP_CLOSING && !smtp_session_authenticated(&s));

	/* Malformed answers are failures too, and cost a check like any
	 * other (an empty name: never in the file). */
	hello();
	CHECK(say("AUTH PLAIN =") == 0 && s.state == SMTP_AUTH_WAIT && creds.ulen == 0 && creds.plen == 0);
	CHECK(smtp_session_auth_verdict(&s, &env, false, out) == 1 && out[0].id == R_535_AUTH);
	auth_b64_encode((const unsigned char *)"", 0, b64, sizeof b64);
	CHECK(say("AUTH LOGIN") == 334 && say("=") == 0 && s.state == SMTP_AUTH_WAIT && creds.ulen == 0);
	CHECK(smtp_session_auth_verdict(&s, &env, false, out) == 1 && out[0].id == R_535_AUTH);

	/* Over-long name and password keep their lengths (they can never
	 * match) and only their first octets. */
	hello();
	memset(longpw, 'p', 300);
	longpw[300] = 0;
	CHECK(say(plain_line("joe@example.org", longpw)) == 0 && creds.plen == 300);
	CHECK(memcmp(creds.pass, longpw, AUTH_PASS_MAX) == 0);
	CHECK(!users_verify(env.users, creds.user, creds.ulen, creds.pass, creds.plen));
	smtp_session_reset(&s); /* a reset while waiting (the connection closed) */
	CHECK(s.state == SMTP_CMD && smtp_session_auth_verdict(&s, &env, true, out) == 0);
	CHECK(!smtp_session_authenticated(&s));
	longpw[100] = 0;
	CHECK(say(plain_line(longpw, "s3cret")) == 0 && creds.ulen == 100 && creds.plen == 6);
	smtp_session_close(&s); /* a shutdown while waiting */
	CHECK(s.state == SMTP_CLOSING && smtp_session_auth_verdict(&s, &env, true, out) == 0);

	/* Without a place for the credentials nothing can be checked: every
	 * AUTH fails at once, even with the right password. */
	env.creds = NULL;
	hello();
	CHECK(say(plain_line("joe@example.org", "s3cret")) == 535 && s.state == SMTP_CMD);
	CHECK(!smtp_session_authenticated(&s));
	env.creds = &creds;
	cf.tarpit_interval = 0;
	auto_verify = true;
}

/* Forwarding (SPEC §10): a relay's domain is forwarded, its addresses
 * still decided by the recipient file; the smarthost only for an
 * authenticated session; a full queue is 452 4.3.1; a full fwd block
 * is 452 4.5.3. */
static void test_routing(void)
{
	static struct relay_conf relays[2];
	static struct config routes;
	static char fwd[SESSION_FWD_MAX];
	char big[300];

	memset(relays, 0, sizeof relays);
	strcpy(relays[0].name, "Office");
	memcpy(relays[0].domains, "example.net\0", 12);
	relays[0].ndomains = 1;
	strcpy(relays[1].name, "ISP");
	relays[1].smarthost = true;
	routes.relays = relays;
	routes.nrelays = 1;
	env.routes = &routes;
	cf.max_recipients_per_message = 100;

	transaction();
	envelope->fwd = fwd;
	CHECK(say("RCPT TO:<alice@example.org>") == 250);
	CHECK(say("RCPT TO:<Carol@EXAMPLE.net>") == 250 && id() == R_250_RCPT);
	CHECK(envelope->nmbox == 1 && envelope->nfwd == 1);
	CHECK(fwd[0] == 0 && strcmp(fwd + 1, "Carol@EXAMPLE.net") == 0);
	CHECK(envelope->fwd_len == 19);
	CHECK(say("RCPT TO:<postmaster@example.net>") == 250 && envelope->nfwd == 2);
	/* No smarthost: other domains are still relaying. */
	CHECK(say("RCPT TO:<x@elsewhere.test>") == 550 && id() == R_550_RELAY);
	/* The queue is full: only the forwarded recipient is refused. */
	env.queue_full = true;
	CHECK(say("RCPT TO:<d@example.net>") == 452 && id() == R_452_QUEUE && !(out[0].flags & RF_TARPIT));
	CHECK(say("RCPT TO:<bob@example.org>") == 250);
	env.queue_full = false;
	CHECK(envelope->nfwd == 2 && envelope->nmbox == 2);
	/* A new transaction starts a new list. */
	CHECK(say("RSET") == 250);
	CHECK(say("MAIL FROM:<s@example.com>") == 250);
	CHECK(say("RCPT TO:<e@example.net>") == 250 && envelope->nfwd == 1 && envelope->nmbox == 0);
	CHECK(strcmp(fwd + 1, "e@example.net") == 0);
	/* The block fills up: 452 4.5.3, never an overflow. */
	memset(big, 'a', 60);
	strcpy(big + 60, "@example.net>");
	{
		char line[400];
		unsigned n = 0;
		snprintf(line, sizeof line, "RCPT TO:<%s", big);
		while (say(line) == 250)
			n++;
		CHECK(id() == R_452_RCPTS && n == (SESSION_FWD_MAX - 15) / 74);
		CHECK(envelope->fwd_len <= SESSION_FWD_MAX);
	}

	/* The smarthost: authenticated sessions only. */
	routes.nrelays = 2;
	transaction();
	CHECK(say("RCPT TO:<x@elsewhere.test>") == 550 && id() == R_550_RELAY);
	env.routes = NULL;
	CHECK(say("RCPT TO:<f@example.net>") == 250 && envelope->nfwd == 0);
	env.routes = &routes;
	cf.max_recipients_per_message = 3;
}

static void test_smarthost_authenticated(void)
{
	static struct relay_conf relays[1];
	static struct config routes;
	static char fwd[SESSION_FWD_MAX];

	memset(relays, 0, sizeof relays);
	strcpy(relays[0].name, "ISP");
	relays[0].smarthost = true;
	routes.relays = relays;
	routes.nrelays = 1;
	auto_verify = false;
	hello();
	envelope->fwd = fwd;
	CHECK(say(plain_line("joe@example.org", "s3cret")) == 0);
	nout = smtp_session_auth_verdict(&s, &env, true, out);
	CHECK(nout == 1 && out[0].id == R_235_AUTH);
	auto_verify = true;
	env.routes = &routes;
	CHECK(say("MAIL FROM:<joe@example.org>") == 250);
	CHECK(say("RCPT TO:<x@elsewhere.test>") == 250 && envelope->nfwd == 1 && fwd[0] == 0);
	/* Local domains stay local, unknown users stay unknown. */
	CHECK(say("RCPT TO:<alice@example.org>") == 250 && envelope->nmbox == 1);
	CHECK(say("RCPT TO:<nobody@example.org>") == 550 && id() == R_550_UNKNOWN);
	env.routes = NULL;
}

int main(void)
{
	char dir[] = "/tmp/tarpitd-session-XXXXXX", path[256], err[512];
	FILE *f;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof path, "%s/rcpts", dir);
	f = fopen(path, "w");
	fputs("alice@example.org\nbob@example.org robert\n@example.net catchall\n", f);
	fclose(f);
	env.rcpts = recipients_load(path, err, sizeof err);
	CHECK(env.rcpts != NULL);
	if (!env.rcpts) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	env.conn = &cf;
	cf.tarpit_interval = 5;
	cf.tarpit_all_after_unknown = true;
	cf.max_message_size = 1000;
	cf.max_recipients_per_message = 3;
	cf.max_protocol_errors = 0;
	cf.max_unknown_recipients = 2;
	envelope = calloc(1, sizeof *envelope + 200 * sizeof(uint32_t));

	/* Sequencing. */
	fresh();
	CHECK(say("MAIL FROM:<a@b.c>") == 503 && id() == R_503_SEQ_HELO);
	CHECK(say("EHLO") == 501 && id() == R_501_HELO);
	CHECK(say("EHLO   ") == 501);
	CHECK(say("HELO x") == 250 && id() == R_HELO);
	CHECK_STR(smtp_session_protocol(&s), "SMTP");
	CHECK(say("RCPT TO:<alice@example.org>") == 503 && id() == R_503_SEQ_MAIL);
	CHECK(say("DATA") == 503);
	CHECK(say("ehlo x") == 250 && id() == R_EHLO);
	CHECK_STR(smtp_session_protocol(&s), "ESMTP");
	CHECK(say("MAIL FROM:<>") == 250);
	CHECK(say("MAIL FROM:<>") == 503 && id() == R_503_SEQ_NESTED);
	CHECK(say("DATA") == 554 && id() == R_554_NORCPT);
	CHECK(say("RSET") == 250);
	CHECK(say("RSET x") == 501);

	/* 5xx replies are tarpitted, 2xx/4xx are not. */
	hello();
	CHECK(say("FOO") == 500 && (out[0].flags & RF_TARPIT));
	CHECK(say("NOOP") == 250 && !(out[0].flags & RF_TARPIT));
	cf.tarpit_interval = 0;
	CHECK(say("FOO") == 500 && !(out[0].flags & RF_TARPIT));
	cf.tarpit_interval = 5;

	/* The HELO text is neutered for the Received: line. */
	fresh();
	CHECK(say("HELO a b;c<d>[1.2.3.4]:_-.") == 250);
	CHECK_STR(s.helo, "a?b?c?d?[1.2.3.4]:_-.");
	{
		char longhelo[300] = "HELO ";
		memset(longhelo + 5, 'a', 256);
		CHECK(say(longhelo) == 501);
	}

	/* MAIL syntax and parameters. */
	const struct {
		const char *line;
		int code;
	} mails[] = {
		{"MAIL FROM:<a@b.c>", 250},
		{"MAIL FROM: <a@b.c>", 250},
		{"MAIL FROM:a@b.c", 250},
		{"mail from:<a@b.c> SIZE=1000", 250},
		{"MAIL FROM:<a@b.c> SIZE=1001", 552},
		{"MAIL FROM:<a@b.c> SIZE=99999999999999999999", 552}, /* 20 digits, past 64 bits */
		{"MAIL FROM:<a@b.c> SIZE=999999999999999999999", 501}, /* 21: not RFC 1870's 1*20DIGIT */
		{"MAIL FROM:<a@b.c> SIZE=", 501},
		{"MAIL FROM:<a@b.c> SIZE=1x", 501},
		{"MAIL FROM:<a@b.c> AUTH=<>", 555}, /* no AUTH offered here */
		{"MAIL FROM:<a@b.c> BODY=8BITMIME", 250},
		{"MAIL FROM:<a@b.c> BODY=BINARYMIME", 555},
		{"MAIL FROM:<a@b.c> SMTPUTF8", 555},
		{"MAIL FROM:<a@b.c> FOO=bar", 555},
		{"MAIL FROM:<@relay.example,@r2.example:a@b.c>", 250},
		{"MAIL FROM:<\"john doe\"@b.c>", 250},
		{"MAIL FROM:<a@[192.0.2.1]>", 250},
		{"MAIL FROM:<a@[IPv6:2001:db8::1]>", 250},
		{"MAIL FROM:<a@[300.0.2.1]>", 501},
		{"MAIL FROM:<a@b.c", 501},
		{"MAIL FROM:<a b@c.d>", 501},
		{"MAIL FROM:<a@>", 501},
		{"MAIL FROM:<a@b..c>", 501},
		{"MAIL FROM:<nodomain>", 501},
		{"MAIL FROM:", 501},
		{"MAIL TO:<a@b.c>", 501},
		{"MAIL FROM:<a@b.c>x", 501},
	};
	for (size_t i = 0; i < sizeof mails / sizeof mails[0]; i++) {
		hello();
		int code = say(mails[i].line);
		if (code != mails[i].code)
			fprintf(stderr, "MAIL case %zu: %s -> %d\n", i, mails[i].line, code);
		CHECK(code == mails[i].code);
	}
	/* BODY=8BITMIME is remembered for the transaction (a forwarded copy
	 * declares it again), the last BODY= counts, RSET forgets it. */
	hello();
	CHECK(say("MAIL FROM:<a@b.c> BODY=8BITMIME") == 250 && smtp_session_8bitmime(&s));
	CHECK(say("RSET") == 250 && !smtp_session_8bitmime(&s));
	CHECK(say("MAIL FROM:<a@b.c> BODY=7BIT") == 250 && !smtp_session_8bitmime(&s));
	CHECK(say("RSET") == 250);
	CHECK(say("MAIL FROM:<a@b.c> BODY=8BITMIME BODY=7BIT") == 250 && !smtp_session_8bitmime(&s));
	CHECK(say("RSET") == 250);
	CHECK(say("MAIL FROM:<a@b.c> body=8bitmime") == 250 && smtp_session_8bitmime(&s));
	/* Length limits: local part 64, domain 255, path 256. */
	{
		char line[600], local[80], dom[300];
		memset(local, 'l', 64);
		local[64] = 0;
		hello();
		snprintf(line, sizeof line, "MAIL FROM:<%s@b.c>", local);
		CHECK(say(line) == 250);
		local[64] = 'l';
		local[65] = 0;
		hello();
		snprintf(line, sizeof line, "MAIL FROM:<%s@b.c>", local);
		CHECK(say(line) == 501);
		/* 4 labels of 63 + dots = 255 octets of domain, path too long. */
		memset(dom, 'd', 255);
		dom[63] = dom[127] = dom[191] = '.';
		dom[255] = 0;
		hello();
		snprintf(line, sizeof line, "MAIL FROM:<a@%s>", dom);
		CHECK(say(line) == 501);
		/* a path of exactly 256 octets: <a@ + 252 + > */
		dom[252] = 0;
		hello();
		snprintf(line, sizeof line, "MAIL FROM:<a@%s>", dom);
		CHECK(strlen(line) - 10 == 256);
		CHECK(say(line) == 250);
	}

	/* RCPT. */
	transaction();
	CHECK(say("RCPT TO:<alice@example.org>") == 250 && id() == R_250_RCPT && !(out[0].flags & RF_TARPIT));
	CHECK(say("RCPT TO:<ALICE@Example.ORG>") == 250);
	CHECK(s.env->nmbox == 1);
	CHECK(say("RCPT TO:<x@example.net>") == 250);
	CHECK(s.env->nmbox == 2);
	CHECK(say("RCPT TO:<bob@example.org>") == 452 && id() == R_452_RCPTS);
	CHECK(say("DATA") == 354 && (out[0].flags & RF_DATA));
	CHECK(s.state == SMTP_DATA_WAIT);
	CHECK(say("NOOP") == 0); /* no command is read while DATA is pending */
	smtp_session_data_begin(&s);
	CHECK(s.state == SMTP_DATA);
	{
		struct smtp_reply r = smtp_session_data_end(&s, &env, DATA_STORED);
		CHECK(r.id == R_250_QUEUED && s.state == SMTP_CMD && !smtp_session_in_transaction(&s));
	}

	transaction();
	CHECK(say("RCPT TO:<postmaster>") == 250);
	CHECK(say("RCPT TO:<PostMaster@example.org>") == 250);
	CHECK(say("RCPT TO:<postmaster@elsewhere.example>") == 550 && id() == R_550_RELAY);
	CHECK(say("RCPT TO:<nobody>") == 501 && id() == R_501_RCPT);
	CHECK(say("RCPT TO:<>") == 501);
	CHECK(say("RCPT TO:<alice@example.org> NOTIFY=NEVER") == 555);
	CHECK(say("RCPT TO:<x@foreign.example>") == 550 && id() == R_550_RELAY && (out[0].flags & RF_TARPIT));

	/* Every RCPT reply, and only those, lets the transport ask whether the
	 * source was discredited meanwhile (SPEC §8); once told, the session
	 * delays every RCPT reply itself. */
	transaction();
	CHECK(say("RCPT TO:<alice@example.org>") == 250 && (out[0].flags & RF_RCPT) && !(out[0].flags & RF_TARPIT));
	CHECK(say("RCPT TO:<nobody>") == 501 && (out[0].flags & RF_RCPT));
	CHECK(say("NOOP") == 250 && !(out[0].flags & RF_RCPT));
	CHECK(say("MAIL FROM:<s@example.com>") == 503 && !(out[0].flags & RF_RCPT));
	smtp_session_discredit(&s);
	CHECK(say("RCPT TO:<bob@example.org>") == 250 && (out[0].flags & RF_TARPIT));
	CHECK(say("NOOP") == 250 && !(out[0].flags & RF_TARPIT));

	/* Unknown recipients: tarpit everything after, then 421. */
	transaction();
	CHECK(say("RCPT TO:<nobody@example.org>") == 550 && id() == R_550_UNKNOWN && (out[0].flags & RF_TARPIT));
	CHECK(say("RCPT TO:<alice@example.org>") == 250 && (out[0].flags & RF_TARPIT));
	CHECK(say("NOOP") == 250 && !(out[0].flags & RF_TARPIT));
	cf.tarpit_all_after_unknown = false;
	CHECK(say("RCPT TO:<bob@example.org>") == 250 && !(out[0].flags & RF_TARPIT));
	cf.tarpit_all_after_unknown = true;
	CHECK(say("RCPT TO:<nobody2@example.org>") == 550 && nout == 1);
	CHECK(say("RCPT TO:<nobody3@example.org>") == 550 && nout == 2);
	CHECK(out[1].id == R_421_UNKNOWN && (out[1].flags & RF_CLOSE) && (out[1].flags & RF_TARPIT));
	CHECK(s.state == SMTP_CLOSING);
	CHECK(say("NOOP") == 0);

	/* Protocol errors: the fourth (limit 3) adds the closing 421. */
	cf.max_protocol_errors = 3;
	hello();
	CHECK(say("BOGUS") == 500 && nout == 1);
	CHECK(say("MAIL FROM:<") == 501 && nout == 1);
	CHECK(say("RCPT TO:<a@b.c>") == 503 && nout == 1);
	CHECK(say("VRFY x") == 252);
	CHECK(say("EXPN x") == 502 && nout == 2 && out[1].id == R_421_ERRORS && (out[1].flags & RF_CLOSE));

	/* Bad octets, long lines, closing commands. */
	cf.max_protocol_errors = 0;
	hello();
	CHECK(say("NOOP \x80") == 500 && id() == R_500_BADCHAR);
	CHECK(say("NOOP a\rb") == 500 && id() == R_500_BADCHAR);
	nout = smtp_session_line(&s, &env, "NO\0OP", 5, false, out);
	CHECK(nout == 1 && out[0].id == R_500_BADCHAR);
	nout = smtp_session_line(&s, &env, "NOOP", 4, true, out);
	CHECK(nout == 1 && out[0].id == R_500_TOOLONG);
	CHECK(say("") == 500 && id() == R_500_UNKNOWN);
	CHECK(say("HELP") == 214);
	CHECK(say("STARTTLS") == 454);
	hello();
	CHECK(say("BDAT 10 LAST") == 502 && id() == R_502_BDAT && (out[0].flags & RF_CLOSE));
	hello();
	CHECK(say("GET / HTTP/1.0") == 502 && id() == R_502_HTTP && (out[0].flags & RF_CLOSE));
	fresh();
	CHECK(say("CONNECT example.com:25 HTTP/1.1") == 502 && (out[0].flags & RF_CLOSE));
	fresh();
	CHECK(say("QUIT") == 221 && (out[0].flags & RF_CLOSE));

	/* A transaction keeps its recipient table; reset drops the reference. */
	transaction();
	CHECK(s.table == env.rcpts);
	smtp_session_reset(&s);
	CHECK(s.table == NULL);
	/* MAIL and unknown recipients leave the envelope memory untouched. */
	hello();
	memset(envelope, 0xa5, sizeof *envelope + 200 * sizeof(uint32_t));
	CHECK(say("MAIL FROM:<s@example.com>") == 250);
	CHECK(say("RCPT TO:<nobody@example.org>") == 550);
	{
		unsigned char *p = (unsigned char *)envelope;
		bool untouched = true;
		for (size_t i = 0; i < sizeof *envelope + 200 * sizeof(uint32_t); i++)
			untouched &= p[i] == 0xa5;
		CHECK(untouched);
	}
	CHECK(say("RCPT TO:<alice@example.org>") == 250 && envelope->nmbox == 1);

	/* STARTTLS: unavailable without [tls], then the rules with it. */
	hello();
	CHECK(say("STARTTLS") == 454);
	env.tls = true;
	cf.starttls = true;
	CHECK(smtp_session_offers_starttls(&s, &env));
	CHECK(say("STARTTLS x") == 501);
	CHECK(say("MAIL FROM:<a@b.c>") == 250);
	CHECK(say("STARTTLS") == 503);
	hello();
	CHECK(say("STARTTLS") == 220 && (out[0].flags & RF_STARTTLS) && s.state == SMTP_TLS_WAIT);
	CHECK(say("NOOP") == 0);
	{
		struct smtp_reply r = smtp_session_starttls_failed(&s);
		CHECK(r.id == R_454_TLS && s.state == SMTP_CMD);
	}
	CHECK(say("STARTTLS") == 220);
	smtp_session_tls_started(&s);
	CHECK(smtp_session_in_tls(&s) && !smtp_session_offers_starttls(&s, &env));
	CHECK(say("MAIL FROM:<a@b.c>") == 503); /* HELO forgotten */
	CHECK(say("STARTTLS") == 503);
	CHECK(say("EHLO again") == 250);
	CHECK_STR(smtp_session_protocol(&s), "ESMTPS");
	/* require_tls */
	cf.require_tls = true;
	hello();
	CHECK(say("MAIL FROM:<a@b.c>") == 530 && id() == R_530_TLS);
	cf.require_tls = false;

	/* AUTH */
	{
		char upath[300], line[700], b64[600];
		unsigned char plain[300];
		size_t pl;
		snprintf(upath, sizeof upath, "%s/users", dir);
		CHECK(users_set_password(upath, "joe@example.org", "s3cret", 6, err, sizeof err) == 0);
		env.users = users_load(upath, err, sizeof err);
		CHECK(env.users != NULL);
		cf.auth = true;
		cf.auth_requires_tls = true;
		cf.max_auth_failures = 2;
		env.creds = &creds;
		hello();
		CHECK(!smtp_session_offers_auth(&s, &env));
		CHECK(say("AUTH PLAIN") == 538 && (out[0].flags & RF_TARPIT));
		cf.auth_requires_tls = false;
		fresh();
		CHECK(say("AUTH PLAIN") == 503); /* before EHLO */
		hello();
		CHECK(smtp_session_offers_auth(&s, &env));
		CHECK(say("AUTH CRAM-MD5") == 504);
		/* PLAIN with an initial response */
		memcpy(plain, "\0joe@example.org\0s3cret", 23);
		pl = 23;
		auth_b64_encode(plain, pl, b64, sizeof b64);
		snprintf(line, sizeof line, "AUTH PLAIN %s", b64);
		CHECK(say(line) == 235 && id() == R_235_AUTH);
		CHECK(smtp_session_authenticated(&s));
		CHECK_STR(smtp_session_protocol(&s), "ESMTPA");
		CHECK(say("FOO") == 500 && !(out[0].flags & RF_TARPIT)); /* never tarpitted */
		CHECK(say(line) == 503 && id() == R_503_AUTH);
		/* PLAIN with a challenge, wrong password: 535, tarpitted */
		hello();
		CHECK(say("AUTH PLAIN") == 334 && id() == R_334_EMPTY);
		memcpy(plain, "\0joe@example.org\0wrong!", 23);
		auth_b64_encode(plain, 23, b64, sizeof b64);
		CHECK(say(b64) == 535 && (out[0].flags & RF_TARPIT) && nout == 1);
		/* LOGIN, two challenges */
		CHECK(say("AUTH LOGIN") == 334 && id() == R_334_USER);
		auth_b64_encode((const unsigned char *)"joe@example.org", 15, b64, sizeof b64);
		CHECK(say(b64) == 334 && id() == R_334_PASS);
		auth_b64_encode((const unsigned char *)"s3cret", 6, b64, sizeof b64);
		CHECK(say(b64) == 235);
		/* LOGIN with the user as initial response; cancel; undecodable */
		hello();
		auth_b64_encode((const unsigned char *)"joe@example.org", 15, b64, sizeof b64);
		snprintf(line, sizeof line, "AUTH LOGIN %s", b64);
		CHECK(say(line) == 334 && id() == R_334_PASS);
		CHECK(say("*") == 501 && id() == R_501_AUTH_CANCEL);
		CHECK(say("AUTH PLAIN") == 334);
		CHECK(say("not base64!") == 501 && id() == R_501_AUTH_B64);
		CHECK(say("AUTH PLAIN =") == 535); /* decodes to nothing: a failed login */
		CHECK(say("AUTH") == 501);
		/* in a transaction */
		CHECK(say("MAIL FROM:<a@b.c>") == 250);
		CHECK(say("AUTH PLAIN") == 503);
		/* in a transaction a long AUTH line is just a long line: its
		 * envelope memory holds the recipients */
		CHECK(!smtp_session_long_line_ok(&s, "auth plain", 10));
		nout = smtp_session_line(&s, &env, "AUTH PLAIN AAAA", 15, true, out);
		CHECK(nout == 1 && out[0].id == R_500_TOOLONG);
		/* outside one, a long AUTH line is its own error */
		CHECK(say("RSET") == 250);
		nout = smtp_session_line(&s, &env, "AUTH PLAIN AAAA", 15, true, out);
		CHECK(nout == 1 && out[0].id == R_500_AUTH_LONG);
		CHECK(smtp_session_long_line_ok(&s, "auth plain", 10) && !smtp_session_long_line_ok(&s, "MAIL", 4));
		/* max_auth_failures = 2: the third failure closes */
		hello();
		memcpy(plain, "\0joe@example.org\0wrong!", 23);
		auth_b64_encode(plain, 23, b64, sizeof b64);
		snprintf(line, sizeof line, "AUTH PLAIN %s", b64);
		CHECK(say(line) == 535 && nout == 1);
		CHECK(say(line) == 535 && nout == 1);
		CHECK(say(line) == 535 && nout == 2 && out[1].id == R_421_AUTH && (out[1].flags & RF_CLOSE));
		CHECK(s.state == SMTP_CLOSING);
		/* unknown user: 535 */
		hello();
		memcpy(plain, "\0bob@example.org\0s3cret", 23);
		auth_b64_encode(plain, 23, b64, sizeof b64);
		snprintf(line, sizeof line, "AUTH PLAIN %s", b64);
		CHECK(say(line) == 535);
		test_auth_pending();
		test_smarthost_authenticated();
		users_free((struct users *)env.users);
		env.users = NULL;
		unlink(upath);
	}

	test_routing();
	recipients_unref(env.rcpts);
	free(envelope);
	unlink(path);
	rmdir(dir);
	return check_summary("smtp_session");
}
