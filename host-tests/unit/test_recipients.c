/* Unit tests for src/recipients.c: lookup rules, mailbox ids, every
 * error class with its line number, a 100,000-line file, refcounting. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <stdbool.h>

#include "check.h"
#include "recipients.h"

static char dir[64];

static const char *write_file(const char *name, const char *data, size_t len)
{
	static char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
		perror(path);
		exit(2);
	}
	return path;
}

static enum rcpt_result look(const struct recipients *r, const char *addr, uint32_t *id)
{
	*id = UINT32_MAX;
	return recipients_lookup(r, addr, strlen(addr), id);
}

/* The mailbox name an address resolves to, or "(result N)" when it is not
 * accepted. */
static const char *box(const struct recipients *r, const char *addr)
{
	static char buf[32];
	uint32_t id;
	enum rcpt_result res = look(r, addr, &id);

	if (res != RCPT_OK) {
		snprintf(buf, sizeof(buf), "(result %d)", (int)res);
		return buf;
	}
	return recipients_mailbox(r, id);
}

static void test_lookup(void)
{
	static const char file[] =
		"# a comment line\n"
		"\n"
		"   \t \n"
		"alice@Example.org\n"
		"bob@example.org        robert      # optional 2nd column\n"
		"@example.net           catchall    # whole domain\n"
		"carol@EXAMPLE.org robert\n"
		"Dave@Example.ORG\n"
		"postmaster@other.org pm-other\n"
		"eve@example.com Eve#comment right after\r\n"
		"x@example.org\n"
		"alias@example.org x@example.org\n"
		"frank@example.org postmaster\n";
	char err[512];
	const char *path = write_file("basic", file, sizeof(file) - 1);
	struct recipients *r = recipients_load(path, err, sizeof(err));
	struct stat st;
	uint32_t id, id2;

	CHECK(r != NULL);
	if (!r) {
		fprintf(stderr, "%s\n", err);
		return;
	}
	CHECK(recipients_count(r) == 10);

	/* exact match, case-insensitive, default mailbox is the lower-cased address */
	CHECK_STR(box(r, "alice@example.org"), "alice@example.org");
	CHECK_STR(box(r, "ALICE@EXAMPLE.ORG"), "alice@example.org");
	CHECK_STR(box(r, "dave@example.org"), "dave@example.org");
	CHECK_STR(box(r, "DaVe@eXample.org"), "dave@example.org");
	CHECK_STR(box(r, "eve@example.com"), "Eve"); /* 2nd column kept as written */
	CHECK_STR(box(r, "bob@example.org"), "robert");

	/* shared mailbox ids: identical names get one id */
	CHECK(look(r, "bob@example.org", &id) == RCPT_OK);
	CHECK(look(r, "Carol@example.org", &id2) == RCPT_OK);
	CHECK(id == id2);
	CHECK(look(r, "x@example.org", &id) == RCPT_OK);
	CHECK(look(r, "alias@example.org", &id2) == RCPT_OK);
	CHECK(id == id2);
	CHECK(look(r, "alice@example.org", &id2) == RCPT_OK);
	CHECK(id != id2);

	/* catch-all */
	CHECK_STR(box(r, "anyone@example.net"), "catchall");
	CHECK_STR(box(r, "ANY.ONE@EXAMPLE.NET"), "catchall");
	CHECK_STR(box(r, "postmaster@example.net"), "catchall"); /* before postmaster */

	/* postmaster */
	CHECK_STR(box(r, "postmaster@example.org"), "postmaster");
	CHECK_STR(box(r, "PostMaster@Example.COM"), "postmaster");
	CHECK_STR(box(r, "postmaster@other.org"), "pm-other"); /* listed: its own mailbox */
	CHECK_STR(box(r, "postmaster"), "postmaster");
	CHECK_STR(box(r, "POSTMASTER"), "postmaster");
	CHECK(look(r, "postmaster", &id) == RCPT_OK);
	CHECK(look(r, "frank@example.org", &id2) == RCPT_OK);
	CHECK(id == id2); /* a line naming mailbox "postmaster" shares the reserved id */
	CHECK(look(r, "postmaster@foreign.org", &id) == RCPT_NOT_LOCAL);
	CHECK(look(r, "postmaster@", &id) == RCPT_NOT_LOCAL);
	CHECK(look(r, "postmaste", &id) == RCPT_NOT_LOCAL);
	CHECK(look(r, "postmasterx", &id) == RCPT_NOT_LOCAL);
	CHECK(look(r, "postmaster@sub.example.org", &id) == RCPT_NOT_LOCAL);

	/* unknown local user vs foreign domain */
	CHECK(look(r, "zed@example.org", &id) == RCPT_UNKNOWN);
	CHECK(id == UINT32_MAX); /* untouched */
	CHECK(look(r, "alice@example.com", &id) == RCPT_UNKNOWN);
	CHECK(look(r, "x@other.org", &id) == RCPT_UNKNOWN);
	CHECK(look(r, "alice@sub.example.org", &id) == RCPT_NOT_LOCAL);
	CHECK(look(r, "alice@example.org.", &id) == RCPT_NOT_LOCAL);
	CHECK(look(r, "alice@foreign.org", &id) == RCPT_NOT_LOCAL);
	CHECK(look(r, "alice", &id) == RCPT_NOT_LOCAL);
	CHECK(look(r, "", &id) == RCPT_NOT_LOCAL);
	CHECK(look(r, "alice@[192.0.2.1]", &id) == RCPT_NOT_LOCAL);
	CHECK(look(r, "postmaster@[192.0.2.1]", &id) == RCPT_NOT_LOCAL);
	CHECK(look(r, "@example.org", &id) == RCPT_UNKNOWN);
	/* a mailbox name or a domain is not an address */
	CHECK(look(r, "example.org", &id) == RCPT_NOT_LOCAL);
	CHECK(look(r, "robert", &id) == RCPT_NOT_LOCAL);
	CHECK(look(r, "robert@example.org", &id) == RCPT_UNKNOWN);
	/* the last '@' separates the domain */
	CHECK(look(r, "\"a@b\"@example.org", &id) == RCPT_UNKNOWN);
	CHECK(look(r, "alice@example.org@foreign.org", &id) == RCPT_NOT_LOCAL);

	/* len is honoured: no NUL needed, and an embedded NUL never matches */
	CHECK(recipients_lookup(r, "alice@example.orgXYZ", 17, &id) == RCPT_OK);
	CHECK_STR(recipients_mailbox(r, id), "alice@example.org");
	CHECK(recipients_lookup(r, "alice@example.org\0", 18, &id) == RCPT_NOT_LOCAL);
	CHECK(recipients_lookup(r, "alice\0@example.org", 18, &id) == RCPT_UNKNOWN);
	CHECK(recipients_lookup(r, "alice@example.org", 16, &id) == RCPT_NOT_LOCAL);
	CHECK(recipients_lookup(r, NULL, 0, &id) == RCPT_NOT_LOCAL);

	/* over-long inputs never overflow, the domain still decides */
	{
		char big[1200];

		memset(big, 'a', 400);
		strcpy(big + 400, "@example.org");
		CHECK(look(r, big, &id) == RCPT_UNKNOWN);
		strcpy(big + 400, "@foreign.org");
		CHECK(look(r, big, &id) == RCPT_NOT_LOCAL);
		strcpy(big + 400, "@example.net"); /* too long even for the catch-all */
		CHECK(look(r, big, &id) == RCPT_UNKNOWN);
		memcpy(big, "postmaster", 10);
		strcpy(big + 10, "@");
		memset(big + 11, 'd', 1000);
		big[1011] = '\0';
		CHECK(look(r, big, &id) == RCPT_NOT_LOCAL);
		/* exactly 64 + 1 + 255 octets still goes through the table */
		memset(big, 'l', 64);
		big[64] = '@';
		memset(big + 65, 'd', 255);
		big[320] = '\0';
		CHECK(look(r, big, &id) == RCPT_NOT_LOCAL);
	}

	/* dense ids: postmaster, alice, robert, catchall, dave, pm-other, Eve,
	 * x@example.org => 8 mailboxes, 0..7 */
	for (id = 0; id < 8; id++)
		CHECK(recipients_mailbox(r, id) != NULL);
	CHECK(recipients_mailbox(r, 8) == NULL);
	CHECK(recipients_mailbox(r, UINT32_MAX) == NULL);
	CHECK_STR(recipients_mailbox(r, 0), "postmaster");

	CHECK(stat(path, &st) == 0);
	CHECK(recipients_mtime(r).tv_sec == st.st_mtim.tv_sec);
	CHECK(recipients_mtime(r).tv_nsec == st.st_mtim.tv_nsec);

	/* refcounting: ASan reports a leak or a use after free */
	recipients_ref(r);
	recipients_unref(r);
	CHECK_STR(box(r, "alice@example.org"), "alice@example.org");
	recipients_unref(r);
}

static void test_empty(void)
{
	char err[256];
	uint32_t id;
	struct recipients *r = recipients_load(write_file("empty", "", 0), err, sizeof(err));

	CHECK(r != NULL);
	if (!r)
		return;
	CHECK(recipients_count(r) == 0);
	CHECK(look(r, "postmaster", &id) == RCPT_OK);
	CHECK_STR(recipients_mailbox(r, id), "postmaster");
	CHECK(look(r, "postmaster@example.org", &id) == RCPT_NOT_LOCAL);
	CHECK(recipients_mailbox(r, 1) == NULL);
	recipients_unref(r);
}

/* Each error line is reported with its own line number; the load fails. */
static void test_errors(void)
{
	char file[8192], err[8192], exp[512], l64[70], d256[260], m256[260];
	size_t n = 0;
	const char *path;
	struct recipients *r;
	static const struct {
		unsigned line;
		const char *msg;
	} want[] = {
		{ 2, "too many columns" },
		{ 3, "missing '@' in address: 'alice'" },
		{ 4, "more than one '@'" },
		{ 5, "empty domain" },
		{ 6, "local part longer than 64 octets" },
		{ 7, "domain longer than 255 octets" },
		{ 8, "quoted local parts are not supported" },
		{ 9, "8-bit octet in address" },
		{ 10, "control, space or 8-bit octet in address" },
		{ 11, "address literals" },
		{ 12, "empty label in domain" },
		{ 13, "mailbox name contains '/'" },
		{ 14, "mailbox name starts with '.'" },
		{ 15, "mailbox name longer than 255 octets" },
		{ 16, "8-bit octet in mailbox name" },
		{ 17, "mailbox name 'tmp' is reserved" },
		{ 18, "contains '/' (the address is the mailbox name" },
		{ 20, "starts with '.' (the address is the mailbox name" },
		{ 23, "duplicate recipient 'dup@x.org' (first on line 22)" },
		{ 25, "duplicate recipient '@x.org' (first on line 24)" },
		{ 26, "line longer than 1024 octets" },
		{ 28, "control, space or 8-bit octet in address" }, /* NUL */
		{ 29, "invalid character in local part" },
		{ 30, "invalid character in domain" },
		{ 31, "missing '@' in address: 'last'" },
	};

	memset(l64, 'l', 65);
	l64[65] = '\0';
	memset(d256, 'd', 256);
	d256[256] = '\0';
	memset(m256, 'm', 256);
	m256[256] = '\0';
#define ADD(...) (n += (size_t)snprintf(file + n, sizeof(file) - n, __VA_ARGS__))
	ADD("ok@x.org\n");                           /* 1 */
	ADD("a@x.org box extra\n");                  /* 2 */
	ADD("alice\n");                              /* 3 */
	ADD("a@b@x.org\n");                          /* 4 */
	ADD("a@   # comment\n");                     /* 5 */
	ADD("%s@x.org\n", l64);                      /* 6 */
	ADD("a@%s box\n", d256);                     /* 7 */
	ADD("\"ab\"@x.org\n");                       /* 8 */
	ADD("caf\xc3\xa9@x.org\n");                  /* 9 */
	ADD("a\x01" "b@x.org\n");                    /* 10 */
	ADD("a@[192.0.2.1] box\n");                  /* 11 */
	ADD("a@x..org\n");                           /* 12 */
	ADD("a1@x.org foo/bar\n");                   /* 13 */
	ADD("a2@x.org .hidden\n");                   /* 14 */
	ADD("a3@x.org %s\n", m256);                  /* 15 */
	ADD("a4@x.org m\xff\n");                     /* 16 */
	ADD("a5@x.org tmp\n");                       /* 17 */
	ADD("a/b@x.org\n");                          /* 18 */
	ADD("a/b@x.org ab\n");                       /* 19: fine with a 2nd column */
	ADD(".a@x.org\n");                           /* 20 */
	ADD(".a@x.org dot-a\n");                     /* 21: fine */
	ADD("dup@x.org\n");                          /* 22 */
	ADD("DUP@X.ORG other\n");                    /* 23 */
	ADD("@x.org all\n");                         /* 24 */
	ADD("@X.org all2\n");                        /* 25 */
	memset(file + n, 'z', 1100);                 /* 26 */
	n += 1100;
	ADD("\n");
	ADD("fine@x.org\n");                         /* 27 */
	file[n++] = 'n';                             /* 28 */
	file[n++] = '\0';
	ADD("ul@x.org\n");
	ADD("a(b)@x.org box\n");                     /* 29 */
	ADD("a@x!y.org\n");                          /* 30 */
	ADD("last");                                 /* 31, no newline */
#undef ADD
	path = write_file("errors", file, n);
	r = recipients_load(path, err, sizeof(err));
	CHECK(r == NULL);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		char one[512];
		const char *p;
		size_t len;

		snprintf(exp, sizeof(exp), "%s:%u: ", path, want[i].line);
		p = strstr(err, exp);
		CHECK(p != NULL);
		if (!p) {
			fprintf(stderr, "  missing error for line %u\n", want[i].line);
			continue;
		}
		len = strcspn(p, "\n");
		if (len >= sizeof(one))
			len = sizeof(one) - 1;
		memcpy(one, p, len);
		one[len] = '\0';
		CHECK(strstr(one, want[i].msg) != NULL);
	}
	/* exactly one error line per bad line, nothing for good lines */
	{
		static const unsigned good[] = { 1, 19, 21, 22, 24, 27 };
		unsigned lines = 1;

		for (const char *p = err; *p; p++)
			lines += *p == '\n';
		CHECK(lines == sizeof(want) / sizeof(want[0]));
		for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
			snprintf(exp, sizeof(exp), "%s:%u: ", path, good[i]);
			CHECK(strstr(err, exp) == NULL);
		}
	}
	if (check_failed)
		fprintf(stderr, "errors were:\n%s\n", err);

	/* the message is cut to errlen, always NUL-terminated */
	memset(err, 'X', sizeof(err));
	CHECK(recipients_load(path, err, 20) == NULL);
	CHECK(strlen(err) == 19);
	CHECK(strncmp(err, path, 19) == 0);
	CHECK(recipients_load(path, err, 1) == NULL);
	CHECK(err[0] == '\0');
	CHECK(recipients_load(path, NULL, 0) == NULL);
}

/* <spool>/queue/ is the forwarding queue (SPEC §10): no mailbox may be it. */
static void test_queue_reserved(void)
{
	char err[512];
	const char *path = write_file("queue-name", "q@x.org queue\nqueue@x.org\n", 26);
	struct recipients *r = recipients_load(path, err, sizeof err);

	CHECK(r == NULL);
	CHECK(r == NULL && strstr(err, ":1: mailbox name 'queue' is reserved") != NULL);
	CHECK(r == NULL && strstr(err, ":2:") == NULL); /* queue@x.org's mailbox is "queue@x.org" */
	recipients_unref(r);
}

static void test_line_length(void)
{
	char file[2100], err[512];
	struct recipients *r;
	uint32_t id;

	/* 1024 octets plus the newline: accepted */
	memset(file, ' ', 1024);
	memcpy(file, "long@x.org #", 12);
	file[1024] = '\n';
	r = recipients_load(write_file("l1024", file, 1025), err, sizeof(err));
	CHECK(r != NULL);
	if (r) {
		CHECK(look(r, "long@x.org", &id) == RCPT_OK);
		recipients_unref(r);
	}
	/* 1025 octets: an error, and not split into a second entry */
	memset(file, ' ', 1025);
	memcpy(file, "long@x.org ", 11);
	memcpy(file + 1015, "y@x.org", 7);
	file[1025] = '\n';
	r = recipients_load(write_file("l1025", file, 1026), err, sizeof(err));
	CHECK(r == NULL);
	CHECK(strstr(err, "l1025:1: line longer than 1024 octets") != NULL);
	CHECK(strchr(err, '\n') == NULL);
	/* the same without a final newline */
	r = recipients_load(write_file("l1025b", file, 1025), err, sizeof(err));
	CHECK(r == NULL);
	CHECK(strstr(err, "l1025b:1: line longer than 1024 octets") != NULL);
}

static void test_open_errors(void)
{
	char err[512], exp[256];

	snprintf(exp, sizeof(exp), "%s/nonexistent", dir);
	CHECK(recipients_load(exp, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "nonexistent: No such file") != NULL);
	CHECK(recipients_load(dir, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "not a regular file") != NULL);
	/* A FIFO in the file's place is refused at once (SPEC §3): without
	 * O_NONBLOCK open() waits for a writer, and the alarm ends the test. */
	snprintf(exp, sizeof(exp), "%s/fifo", dir);
	CHECK(mkfifo(exp, 0600) == 0);
	alarm(5);
	CHECK(recipients_load(exp, err, sizeof(err)) == NULL);
	alarm(0);
	CHECK(strstr(err, "is a FIFO, not a regular file") != NULL);
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_big(void)
{
	enum { N = 100000 };
	size_t cap = (size_t)N * 64, n = 0;
	char *file = malloc(cap), err[512], addr[64], want[64];
	const char *path;
	struct recipients *r;
	long long t0, t1;
	unsigned bad = 0;
	uint32_t id;

	if (!file) {
		CHECK(file != NULL);
		return;
	}
	for (unsigned i = 0; i < N; i++) {
		if (i % 10 == 0)
			n += (size_t)snprintf(file + n, cap - n, "User%06u@Domain%u.example shared%u\n",
					      i, i % 7, i % 1000);
		else
			n += (size_t)snprintf(file + n, cap - n, "user%06u@domain%u.example\n", i, i % 7);
	}
	path = write_file("big", file, n);
	free(file);
	t0 = now_ms();
	r = recipients_load(path, err, sizeof(err));
	t1 = now_ms();
	printf("recipients: loaded %d lines in %lld ms\n", N, t1 - t0);
	CHECK(r != NULL);
	if (!r) {
		fprintf(stderr, "%s\n", err);
		return;
	}
	CHECK(t1 - t0 < 5000);
	CHECK(recipients_count(r) == N);
	t0 = now_ms();
	for (unsigned i = 0; i < N; i++) {
		snprintf(addr, sizeof(addr), "USER%06u@domain%u.EXAMPLE", i, i % 7);
		if (i % 10 == 0)
			snprintf(want, sizeof(want), "shared%u", i % 1000);
		else
			snprintf(want, sizeof(want), "user%06u@domain%u.example", i, i % 7);
		if (look(r, addr, &id) != RCPT_OK || strcmp(recipients_mailbox(r, id), want) != 0)
			bad++;
	}
	t1 = now_ms();
	printf("recipients: %d lookups in %lld ms\n", N, t1 - t0);
	CHECK(bad == 0);
	CHECK(look(r, "user100000@domain1.example", &id) == RCPT_UNKNOWN);
	/* 90,000 own mailboxes + 100 shared ones + postmaster */
	CHECK(recipients_mailbox(r, 90000 + 100) != NULL);
	CHECK(recipients_mailbox(r, 90000 + 101) == NULL);
	recipients_unref(r);
}

/* Found by the fuzzer: interning a domain grew and rehashed the table
 * while the address's slot index was still in use, so one address got
 * another's mailbox. Every address of a file that grows the table must
 * still resolve to its own mailbox. */
static void test_growth_keeps_mailboxes(void)
{
	static const char text[] =
		"u0@example.net\n"
		"u1@d28.test\n"
		"u2@example.net box2\n"
		"u3@example.net\n"
		"u4@example.org\n"
		"u5@example.org\n"
		"u6@d19.test\n"
		"u7@example.org\n"
		"u8@example.net\n"
		"u9@d2.test\n"
		"u10@d1.test box10\n"
		"u11@example.org\n"
		"u12@example.net box12\n"
		"u13@example.org\n"
		"u14@example.org box14\n"
		"u15@example.org\n"
		"u16@example.net\n"
		"u17@d39.test\n"
		"u18@d8.test box18\n"
		"u19@example.org\n"
		"u20@example.org\n"
		"u21@d23.test box21\n"
		"u22@example.org\n";
	char err[512], line[128];
	const char *p = text;
	struct recipients *r = recipients_load(write_file("growth", text, sizeof text - 1), err, sizeof err);
	bool ok = true;

	CHECK(r != NULL);
	if (!r)
		return;
	while (*p) {
		char addr[64], mbox[64];
		size_t n = strcspn(p, "\n");
		int k;
		snprintf(line, sizeof line, "%.*s", (int)n, p);
		p += n + (p[n] == '\n');
		k = sscanf(line, "%63s %63s", addr, mbox);
		if (k < 1)
			continue;
		if (k == 1)
			snprintf(mbox, sizeof mbox, "%s", addr);
		if (strcmp(box(r, addr), mbox) != 0) {
			fprintf(stderr, "%s -> %s, want %s\n", addr, box(r, addr), mbox);
			ok = false;
		}
	}
	CHECK(ok);
	recipients_unref(r);
}

int main(void)
{
	snprintf(dir, sizeof(dir), "/tmp/test_recipients.XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 2;
	}
	test_lookup();
	test_empty();
	test_errors();
	test_line_length();
	test_queue_reserved();
	test_open_errors();
	test_big();
	test_growth_keeps_mailboxes();
	{
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
	}
	return check_summary("recipients");
}
