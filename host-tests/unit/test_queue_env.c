/* The envelope's text alone (src/queue_env.c), no files: the exact text
 * of an envelope (the on-disk format, which queues already written keep),
 * format -> parse round trips with every octet a reply can hold, the
 * bound and a buffer too small, fields cut at their limits, the escaping,
 * and malformed texts, each refused. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "queue_env.h"

static char buf[QUEUE_ENV_MAX];
static struct queue_rcpt out_rc[QUEUE_RCPTS_MAX];

/* Parses a copy of text: the result of queue_env_parse(). */
static int parse_text(const char *text, struct queue_env *env, unsigned maxrcpt)
{
	size_t n = strlen(text);

	memcpy(buf, text, n + 1);
	errno = 0;
	return queue_env_parse(buf, n, env, out_rc, maxrcpt);
}

static void test_exact_text(void)
{
	struct queue_rcpt rc[3] = {
		{ .relay = "Office", .addr = "a@example.org", .reply = "", .attempts = 0, .next = 100 },
		{ .relay = "Default Frontend", .addr = "b@example.org", .reply = "250 ok", .attempts = 1,
		  .next = 200, .state = QR_SENT },
		{ .relay = "Office", .addr = "c@example.org", .reply = "550 5.1.1 no\r\n", .attempts = 2, .next = 300,
		  .state = QR_FAILED },
	};
	struct queue_env env = { .id = "ABC123", .sender = "", .size = 5000000000ull, .accepted = 4294967295u,
				 .flags = QUEUE_F_DSN_SENDER | QUEUE_F_8BIT, .nrcpt = 3, .rcpt = rc };
	static const char want[] = "tarpitd-queue 1\nid ABC123\naccepted 4294967295\nsize 5000000000\nflags 3\n"
				   "sender \n"
				   "rcpt P 0 100 Office a@example.org \n"
				   "rcpt S 1 200 Default%20Frontend b@example.org 250%20ok\n"
				   "rcpt F 2 300 Office c@example.org 550%205.1.1%20no%0D%0A\n"
				   "end 3\n";
	char text[1024];
	size_t len;

	CHECK(queue_env_ok(&env));
	len = queue_env_format(text, sizeof text, &env);
	CHECK(len == sizeof want - 1 && len == strlen(text));
	CHECK_STR(text, want);
	CHECK(len <= queue_env_bound(&env));
}

static void test_round_trip(void)
{
	static char reply[QUEUE_REPLY_MAX + 1], addr[ADDRESS_MAX];
	struct queue_rcpt rc[2] = {
		{ .relay = "Office", .addr = "x y%z@example.org", .reply = reply, .attempts = 7, .next = 12345 },
		{ .relay = "r", .addr = addr, .reply = NULL, .attempts = UINT32_MAX, .next = UINT32_MAX,
		  .state = QR_FAILED },
	};
	struct queue_env env = { .id = "Z9", .sender = "s\xe9nder\t@example.com", .size = 1ull << 62,
				 .accepted = 1, .flags = 255, .nrcpt = 2, .rcpt = rc };
	struct queue_env got;
	size_t len;

	/* Every octet but NUL, in a reply of QUEUE_REPLY_MAX. */
	for (unsigned i = 0; i < QUEUE_REPLY_MAX; i++)
		reply[i] = (char)(1 + i % 255);
	memset(addr, 'a', sizeof addr - 1);
	len = queue_env_format(buf, sizeof buf, &env);
	CHECK(len > 0 && len <= queue_env_bound(&env) && buf[len] == '\0');
	if (queue_env_parse(buf, len, &got, out_rc, QUEUE_RCPTS_MAX) != 0) {
		CHECK(!"round trip parses");
		return;
	}
	CHECK_STR(got.id, "Z9");
	CHECK_STR(got.sender, env.sender);
	CHECK(got.size == 1ull << 62 && got.accepted == 1 && got.flags == 255 && got.nrcpt == 2);
	CHECK(got.rcpt == out_rc);
	CHECK_STR(got.rcpt[0].relay, "Office");
	CHECK_STR(got.rcpt[0].addr, "x y%z@example.org");
	CHECK(memcmp(got.rcpt[0].reply, reply, QUEUE_REPLY_MAX) == 0 && strlen(got.rcpt[0].reply) == QUEUE_REPLY_MAX);
	CHECK(got.rcpt[0].state == QR_PENDING && got.rcpt[0].attempts == 7 && got.rcpt[0].next == 12345);
	CHECK_STR(got.rcpt[1].addr, addr);
	CHECK_STR(got.rcpt[1].reply, ""); /* NULL is stored as none */
	CHECK(got.rcpt[1].state == QR_FAILED && got.rcpt[1].attempts == UINT32_MAX &&
	      got.rcpt[1].next == UINT32_MAX);
}

/* Fields longer than their limits are cut, not refused; a buffer too
 * small gives 0 and is never written past. */
static void test_bounds(void)
{
	static char reply[QUEUE_REPLY_MAX + 50], relay[CONF_NAME_MAX + 20], text[QUEUE_ENV_MAX];
	struct queue_rcpt rc = { .relay = relay, .addr = "a@example.org", .reply = reply };
	struct queue_env env = { .id = "C1", .sender = "s@example.com", .nrcpt = 1, .rcpt = &rc };
	struct queue_env got;
	size_t len, small;

	memset(reply, 'r', sizeof reply - 1);
	memset(relay, 'n', sizeof relay - 1);
	len = queue_env_format(buf, sizeof buf, &env);
	CHECK(len > 0 && queue_env_parse(buf, len, &got, out_rc, 1) == 0);
	CHECK(got.nrcpt == 1 && strlen(got.rcpt[0].reply) == QUEUE_REPLY_MAX && strlen(got.rcpt[0].relay) == CONF_NAME_MAX);

	len = queue_env_format(text, sizeof text, &env);
	for (small = 0; small <= len; small++) {
		memset(buf, '#', len + 2);
		if (queue_env_format(buf, small, &env) != 0 || buf[small] != '#')
			break;
	}
	CHECK(small == len + 1); /* every buffer up to len too small, and left alone past its end */
	CHECK(queue_env_format(buf, len + 1, &env) == len && memcmp(buf, text, len + 1) == 0);
}

static void test_escape(void)
{
	char out[64];

	CHECK(queue_escape(out, sizeof out, "a b%\n\x01\xff~", 8) == 18);
	CHECK_STR(out, "a%20b%25%0A%01%FF~");
	CHECK(queue_escape(out, 4, "a b", 3) == 0 && out[0] == '\0');
}

static void test_checks(void)
{
	struct queue_rcpt rc = { .relay = "Office", .addr = "a@example.org" };
	struct queue_env env = { .id = "OK1", .sender = "", .nrcpt = 1, .rcpt = &rc };
	char id[QUEUE_ID_MAX + 1];

	CHECK(queue_env_ok(&env));
	env.nrcpt = 0;
	CHECK(!queue_env_ok(&env));
	env.nrcpt = QUEUE_RCPTS_MAX + 1;
	CHECK(!queue_env_ok(&env));
	env.nrcpt = 1;
	env.sender = NULL;
	CHECK(!queue_env_ok(&env));
	env.sender = "";
	rc.state = QR_FAILED + 1;
	CHECK(!queue_env_ok(&env));
	rc.state = QR_SENT;
	rc.relay = "";
	CHECK(!queue_env_ok(&env));
	rc.relay = "Office";
	rc.addr = NULL;
	CHECK(!queue_env_ok(&env));
	rc.addr = "a@example.org";
	snprintf(env.id, sizeof env.id, "a.b");
	CHECK(!queue_env_ok(&env));

	memset(id, 'x', sizeof id);
	id[QUEUE_ID_MAX - 1] = '\0';
	CHECK(queue_id_ok(id));
	id[QUEUE_ID_MAX - 1] = 'x';
	id[QUEUE_ID_MAX] = '\0';
	CHECK(!queue_id_ok(id));
	CHECK(!queue_id_ok("") && !queue_id_ok("a-b") && !queue_id_ok("../x") && queue_id_ok("Az09"));
}

#define HEAD "tarpitd-queue 1\nid M1\naccepted 100\nsize 5\nflags 1\nsender a%20b@example.com\n"
#define RCPT "rcpt P 0 100 Office a@example.org \n"

static void test_malformed(void)
{
	static const char *const bad[] = {
		"",
		"tarpitd-queue 2\nid M1\naccepted 100\nsize 5\nflags 1\nsender \n" RCPT "end 1\n", /* another format */
		HEAD RCPT,                                /* cut: no end line */
		HEAD RCPT "end 2\n",                      /* recipients missing */
		HEAD "end 0\n",                           /* none at all */
		HEAD RCPT "end 1\n" RCPT,                 /* a line after the end */
		HEAD RCPT "end 1",                        /* the last line cut */
		HEAD RCPT "end 1\r\n",                    /* CRLF */
		"tarpitd-queue 1\naccepted 100\nid M1\nsize 5\nflags 1\nsender \n" RCPT "end 1\n", /* order */
		"tarpitd-queue 1\nid M-1\naccepted 100\nsize 5\nflags 1\nsender \n" RCPT "end 1\n", /* id */
		"tarpitd-queue 1\nid M1\naccepted 4294967296\nsize 5\nflags 1\nsender \n" RCPT "end 1\n",
		"tarpitd-queue 1\nid M1\naccepted +1\nsize 5\nflags 1\nsender \n" RCPT "end 1\n",
		"tarpitd-queue 1\nid M1\naccepted 100\nsize 18446744073709551616\nflags 1\nsender \n" RCPT "end 1\n",
		"tarpitd-queue 1\nid M1\naccepted 100\nsize \nflags 1\nsender \n" RCPT "end 1\n",
		"tarpitd-queue 1\nid M1\naccepted 100\nsize 5\nflags 256\nsender \n" RCPT "end 1\n",
		"tarpitd-queue 1\nid M1\naccepted 100\nsize 5\nflags 1\nsender %G0\n" RCPT "end 1\n", /* escape */
		"tarpitd-queue 1\nid M1\naccepted 100\nsize 5\nflags 1\nsender a%0Gb\n" RCPT "end 1\n",
		"tarpitd-queue 1\nid M1\naccepted 100\nsize 5\nflags 1\nsender a%4\n" RCPT "end 1\n",
		"tarpitd-queue 1\nid M1\naccepted 100\nsize 5\nflags 1\n" RCPT "end 1\n", /* no sender line */
		HEAD "rcpt X 0 100 Office a@example.org \nend 1\n",  /* state */
		HEAD "rcpt PS 0 100 Office a@example.org \nend 1\n",
		HEAD "rcpt P 0 100 Office a@example.org\nend 1\n",   /* six fields */
		HEAD "rcpt P 0 100  a@example.org \nend 1\n",        /* no relay */
		HEAD "rcpt P 0 100 Office  \nend 1\n",               /* no address */
		HEAD "rcpt P -1 100 Office a@example.org \nend 1\n", /* attempts */
		HEAD "rcpt P 0 4294967296 Office a@example.org \nend 1\n",
		HEAD "rcpt P 0 100 Office a@example.org 5%0\nend 1\n",
		HEAD "recipient P 0 100 Office a@example.org \nend 1\n",
		HEAD RCPT "end one\n",
		/* What queue_escape() never writes: a raw octet it escapes, an
		 * escaped NUL, a field past its cut (the relay at CONF_NAME_MAX):
		 * each would parse to an envelope that writes back different
		 * (found by fuzz_queue_env). */
		HEAD "rcpt P 0 100 Off\001ice a@example.org \nend 1\n",
		HEAD "rcpt P 0 100 Office a@example.org 550 no\nend 1\n",
		HEAD "rcpt P 0 100 Office a@example.org \xe4\nend 1\n",
		HEAD "rcpt P 0 100 Office a@example.org 5%00\nend 1\n",
		HEAD "rcpt P 0 100 RRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRR a@example.org \nend 1\n",
	};
	static const char nul[] = HEAD "rcpt P 0 100 Office a@exa\0mple.org \nend 1\n";
	struct queue_env env;

	/* What the malformed ones are made from parses. */
	CHECK(parse_text(HEAD RCPT "end 1\n", &env, QUEUE_RCPTS_MAX) == 0 && env.nrcpt == 1);
	CHECK_STR(env.sender, "a b@example.com");
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int r = parse_text(bad[i], &env, QUEUE_RCPTS_MAX);

		CHECK(r == -1 && errno == EINVAL);
		if (r != -1)
			fprintf(stderr, "  parsed: \"%s\"\n", bad[i]);
	}
	/* A NUL inside a line. */
	memcpy(buf, nul, sizeof nul);
	CHECK(queue_env_parse(buf, sizeof nul - 1, &env, out_rc, QUEUE_RCPTS_MAX) == -1);
	/* More recipients than the caller has room for. */
	CHECK(parse_text(HEAD RCPT RCPT "end 2\n", &env, 2) == 0 && env.nrcpt == 2);
	CHECK(parse_text(HEAD RCPT RCPT "end 2\n", &env, 1) == -1 && errno == EINVAL);
}

int main(void)
{
	test_exact_text();
	test_round_trip();
	test_bounds();
	test_escape();
	test_checks();
	test_malformed();
	return check_summary("queue_env");
}
