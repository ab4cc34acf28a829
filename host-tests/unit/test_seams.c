/* Issue 13, "Hardening at the seams": the pure-module items, through
 * today's public functions only (smtp_session, address, auth, reply).
 *
 * The checks that failed before the fixes (items 1, 5, 6 and 8) were
 * compiled only with -DSEAMS_FIXED until each fix moved its block out of
 * the #ifdef; the guards (what already held) come first. The integration
 * tests for the same items are host-tests/integration/test_seams.py.
 */
#include <stdlib.h>
#include <unistd.h>

#include "address.h"
#include "auth.h"
#include "check.h"
#include "conf_int.h"
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

static void fresh(void)
{
	memset(envelope, 0, sizeof *envelope + 8 * sizeof(uint32_t));
	smtp_session_init(&s, envelope, 8);
}

static int say(const char *line)
{
	nout = smtp_session_line(&s, &env, line, strlen(line), false, out);
	/* AUTH hands its credentials out (item 4): checked here in one piece. */
	if (nout == 0 && s.state == SMTP_AUTH_WAIT)
		nout = smtp_session_auth_verdict(
			&s, &env, users_verify(env.users, creds.user, creds.ulen, creds.pass, creds.plen), out);
	return nout ? reply_code((enum reply_id)out[0].id) : 0;
}

/* "501 5.5.4" etc.: the code and enhanced code of the first reply. */
static int reply_is(const char *want)
{
	char buf[600];
	struct reply_ctx ctx = {"mx.test", "mx.test ESMTP", "127.0.0.1", "Q", 1000, true, false, true};
	size_t n = reply_render((enum reply_id)out[0].id, &ctx, buf, sizeof buf);

	return nout && n >= strlen(want) && memcmp(buf, want, strlen(want)) == 0;
}

static void hello(void)
{
	fresh();
	CHECK(say("EHLO client.example") == 250);
}

static int parse(const char *path)
{
	char mbox[ADDRESS_MAX + 1];
	size_t len, rest;

	return address_parse_path(path, strlen(path), mbox, &len, &rest);
}

int main(void)
{
	char dir[] = "/tmp/tarpitd-seams-XXXXXX", path[256], users[256], err[512];
	FILE *f;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof path, "%s/rcpts", dir);
	f = fopen(path, "w");
	fputs("alice@example.org\nbob@example.org robert\n", f);
	fclose(f);
	env.rcpts = recipients_load(path, err, sizeof err);
	snprintf(users, sizeof users, "%s/users", dir);
	CHECK(users_set_password(users, "alice", "right", 5, err, sizeof err) == 0);
	env.users = users_load(users, err, sizeof err);
	CHECK(env.rcpts != NULL && env.users != NULL);
	if (!env.rcpts || !env.users) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	env.conn = &cf;
	env.creds = &creds;
	cf.auth = true;
	cf.auth_requires_tls = false;
	cf.max_message_size = 1000;
	cf.max_recipients_per_message = 8;
	envelope = calloc(1, sizeof *envelope + 8 * sizeof(uint32_t));

	/* Guards (hold today). Item 8: an empty label and a 64-octet label
	 * are syntax errors already; item 6: without AUTH, AUTH= is 555. */
	CHECK(parse("<a@foo..org>") != 0);
	CHECK(parse("<a@llllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllll.org>") != 0);
	CHECK(parse("<a@foo-bar.org>") == 0);
	CHECK(parse("<a@xn--bcher-kva.example>") == 0);
	users_free((struct users *)env.users); /* not leaked (LeakSanitizer, SAN=1) */
	env.users = NULL;
	hello();
	CHECK(say("MAIL FROM:<a@b.example> AUTH=<>") == 555 && reply_is("555 5.5.4"));
	env.users = users_load(users, err, sizeof err);
	/* Item 5: SIZE over the limit stays 552. */
	hello();
	CHECK(say("MAIL FROM:<a@b.example> SIZE=1001") == 552 && reply_is("552 5.3.4"));

	/* Item 1: max_auth_failures up to 1000 must end the session; the
	 * counter was 8 bits and saturated at 255. */
	{
		char line[128];
		size_t n = 0;
		unsigned char plain[] = "\0alice\0wrong";
		int i, closed = 0;

		memcpy(line, "AUTH PLAIN ", 11);
		n = 11 + auth_b64_encode(plain, sizeof plain - 1, line + 11, sizeof line - 11);
		line[n] = 0;
		cf.max_auth_failures = 300;
		hello();
		for (i = 1; i <= 301 && !closed; i++) {
			CHECK(say(line) == 535);
			if (nout == 2 && out[1].id == R_421_AUTH)
				closed = i;
		}
		CHECK(closed == 301);
		cf.max_auth_failures = 3;
	}

	/* Item 1: no setting a session counter is compared with allows more
	 * than limits.h says, and so than the counter can count (the counter
	 * widths are checked against limits.h at compile time). */
	{
		static const struct {
			const char *key;
			uint32_t max;
		} ranges[] = {
			{"max_auth_failures", CONF_AUTH_FAILURES_MAX},
			{"max_protocol_errors", CONF_PROTOCOL_ERRORS_MAX},
			{"max_unknown_recipients", CONF_UNKNOWN_RCPTS_MAX},
			{"max_recipients_per_message", CONF_RCPTS_PER_MESSAGE_MAX},
		};
		for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++) {
			size_t k = 0;
			while (k < CONF_NCONN && strcmp(conf_conn_keys[k].name, ranges[i].key) != 0)
				k++;
			CHECK(k < CONF_NCONN && conf_conn_keys[k].max == ranges[i].max);
		}
	}

	/* Item 5: SIZE= not a number or out of range is 501 5.5.4. */
	{
		static const char *const bad[] = {"SIZE=abc", "SIZE=", "SIZE=111111111111111111111111111111",
						  "SIZE=12k", "SIZE=-1"};
		for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
			char line[128];
			snprintf(line, sizeof line, "MAIL FROM:<a@b.example> %s", bad[i]);
			hello();
			CHECK(say(line) == 501 && reply_is("501 5.5.4"));
		}
	}

	/* Item 6: AUTH= is known where AUTH is offered; its value is not
	 * trusted (the session is not authenticated by it). */
	hello();
	CHECK(say("MAIL FROM:<a@b.example> AUTH=<>") == 250);
	CHECK(!smtp_session_authenticated(&s));
	hello();
	CHECK(say("MAIL FROM:<a@b.example> AUTH=alice@example.org") == 250);
	CHECK(!smtp_session_authenticated(&s));
	/* Its syntax is still checked: xtext (RFC 3461 §4), not empty. */
	hello();
	CHECK(say("MAIL FROM:<a@b.example> AUTH=") == 501 && reply_is("501 5.5.4"));
	CHECK(say("MAIL FROM:<a@b.example> AUTH=a+zz@b.example") == 501 && reply_is("501 5.5.4"));
	CHECK(say("MAIL FROM:<a@b.example> AUTH=a=b") == 501 && reply_is("501 5.5.4"));
	CHECK(say("MAIL FROM:<a@b.example> AUTH=a+2Bb@b.example SIZE=10") == 250);
	/* Where AUTH waits for TLS it is not offered yet, nor is AUTH=. */
	cf.auth_requires_tls = true;
	hello();
	CHECK(say("MAIL FROM:<a@b.example> AUTH=<>") == 555 && reply_is("555 5.5.4"));
	cf.auth_requires_tls = false;

	/* Item 8: a label that starts or ends with '-' is a syntax error;
	 * "alice" quoted needlessly is alice. */
	CHECK(parse("<a@xn--->") != 0);
	CHECK(parse("<a@-foo>") != 0);
	CHECK(parse("<a@foo->") != 0);
	CHECK(parse("<a@foo.-bar.org>") != 0);
	hello();
	CHECK(say("MAIL FROM:<a@-foo>") == 501 && reply_is("501 5.1.7"));
	hello();
	CHECK(say("MAIL FROM:<s@b.example>") == 250);
	CHECK(say("RCPT TO:<a@foo->") == 501 && reply_is("501 5.1.3"));
	CHECK(say("RCPT TO:<\"alice\"@example.org>") == 250 && reply_is("250 2.1.5"));
	/* One that needs its quotes keeps them, and is unknown. */
	CHECK(say("RCPT TO:<\"al ice\"@example.org>") == 550 && reply_is("550 5.1.1"));
	{
		static const struct {
			const char *path, *mailbox;
		} q[] = {
			{"<\"alice\"@example.org>", "alice@example.org"},
			{"\"a.b+c\"@example.org", "a.b+c@example.org"},
			{"<\"al\\ice\"@example.org>", "alice@example.org"}, /* a quoted pair needs none */
			{"<@r.example:\"Bob\"@example.org> SIZE=1", "Bob@example.org"},
			{"<\"postmaster\">", "postmaster"},
			{"<\"al ice\"@example.org>", "\"al ice\"@example.org"},
			{"<\"\"@example.org>", "\"\"@example.org"},
			{"<\".a\"@example.org>", "\".a\"@example.org"},
			{"<\"a.\"@example.org>", "\"a.\"@example.org"},
			{"<\"a..b\"@example.org>", "\"a..b\"@example.org"},
			{"<\"a@b\"@example.org>", "\"a@b\"@example.org"},
			{"<\"a\\\"b\"@example.org>", "\"a\\\"b\"@example.org"},
		};
		for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) {
			char mbox[ADDRESS_MAX + 1];
			size_t len = 0, rest;
			int rc = address_parse_path(q[i].path, strlen(q[i].path), mbox, &len, &rest);
			CHECK(rc == 0 && strcmp(mbox, q[i].mailbox) == 0 && len == strlen(mbox));
			if (rc != 0 || strcmp(mbox, q[i].mailbox) != 0)
				fprintf(stderr, "  %s -> %s\n", q[i].path, rc ? "(error)" : mbox);
		}
	}
	/* Labels: '-' inside is fine, '_' anywhere (seen in the wild). */
	CHECK(parse("<a@x-y.example>") == 0);
	CHECK(parse("<a@_dmarc.example>") == 0);
	CHECK(parse("<a@b.example->") != 0);
	CHECK(parse("<a@b.-example>") != 0);
	CHECK(parse("<a@->") != 0);
	CHECK(parse("<a@b.example.>") != 0);

	users_free((struct users *)env.users);
	recipients_unref(env.rcpts);
	unlink(users);
	unlink(path);
	rmdir(dir);
	free(envelope);
	return check_summary("test_seams");
}
