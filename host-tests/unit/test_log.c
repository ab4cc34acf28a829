/* test_log: log_neuter on hostile octets, and the stderr line format,
 * level filter and line cutting of log_msg. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "log.h"

static void test_neuter(void)
{
	char d[64];
	unsigned c;

	CHECK(log_neuter(d, sizeof d, "hello", 5) == 5);
	CHECK_STR(d, "hello");
	CHECK(log_neuter(d, sizeof d, "a\r\nb\tc\x1b[31m", 11) == 23);
	CHECK_STR(d, "a\\x0d\\x0ab\\x09c\\x1b[31m");
	/* Spaces stay: a logged command still reads "RCPT TO:<...>". */
	CHECK(log_neuter(d, sizeof d, "RCPT TO:<a b@c>", 15) == 15);
	CHECK_STR(d, "RCPT TO:<a b@c>");
	CHECK(log_neuter(d, sizeof d, "\xc3\xa9\xff\x80", 4) == 16);
	CHECK_STR(d, "\\xc3\\xa9\\xff\\x80");
	/* Nothing can end the quoted value early. */
	CHECK(log_neuter(d, sizeof d, "say \"hi\" \\ k=v", 14) == 17);
	CHECK_STR(d, "say \\\"hi\\\" \\\\ k=v");
	CHECK(log_neuter(d, sizeof d, "!~\x7f", 3) == 6);
	CHECK_STR(d, "!~\\x7f");
	/* NUL is just another octet: it must not end the copy early. */
	CHECK(log_neuter(d, sizeof d, "a\0b", 3) == 6);
	CHECK_STR(d, "a\\x00b");
	/* srclen bounds the read; dstlen bounds the write. */
	CHECK(log_neuter(d, sizeof d, "abcdef", 2) == 2);
	CHECK_STR(d, "ab");
	CHECK(log_neuter(d, 4, "abcdef", 6) == 3);
	CHECK_STR(d, "abc");
	CHECK(log_neuter(d, 1, "abcdef", 6) == 0);
	CHECK_STR(d, "");
	/* An escape is never cut: it goes whole or not at all. */
	CHECK(log_neuter(d, 5, "ab\x01", 3) == 2);
	CHECK_STR(d, "ab");
	CHECK(log_neuter(d, 7, "ab\x01", 3) == 6);
	CHECK_STR(d, "ab\\x01");
	CHECK(log_neuter(d, 3, "a\"", 2) == 1);
	CHECK_STR(d, "a");
	d[0] = 'Z';
	CHECK(log_neuter(d, 0, "abcdef", 6) == 0);
	CHECK(d[0] == 'Z');
	CHECK(log_neuter(d, sizeof d, "abc", 0) == 0);
	CHECK_STR(d, "");
	CHECK(log_neuter(d, sizeof d, NULL, 5) == 0);
	CHECK_STR(d, "");

	/* Every octet: printable ASCII but '"' and '\' survive as itself,
	 * those two as \" and \\, the rest as \xHH; never a raw control. */
	for (c = 0; c < 256; c++) {
		char s = (char)c, want[8];
		size_t n = log_neuter(d, sizeof d, &s, 1);

		if (c == '"' || c == '\\')
			snprintf(want, sizeof want, "\\%c", (char)c);
		else if (c >= 0x20 && c <= 0x7e)
			snprintf(want, sizeof want, "%c", (char)c);
		else
			snprintf(want, sizeof want, "\\x%02x", c);
		CHECK(n == strlen(want));
		CHECK_STR(d, want);
	}
}

/* Runs fn with fd 2 sent to a temporary file and returns what it wrote.
 * No CHECK may run inside: its own output would land in the file. */
static char out[4096];
static size_t captured(void (*fn)(void))
{
	char name[] = "/tmp/test_log.XXXXXX";
	int fd = mkstemp(name), saved = dup(2);
	ssize_t n;

	out[0] = '\0';
	if (fd < 0 || saved < 0)
		return 0;
	unlink(name);
	dup2(fd, 2);
	fn();
	dup2(saved, 2);
	close(saved);
	n = pread(fd, out, sizeof out - 1, 0);
	close(fd);
	if (n < 0)
		n = 0;
	out[n] = '\0';
	return (size_t)n;
}

/* Each line of out must start with an RFC 3339 UTC time and a space
 * (SPEC §3: "stderr lines start with an RFC 3339 UTC time"); removes
 * them in place and returns how many lines lacked one. */
static unsigned unstamp(void)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ ";
	char *r = out, *w = out;
	unsigned bad = 0;

	while (*r) {
		size_t k;

		for (k = 0; shape[k] && r[k]; k++)
			if (shape[k] == 'd' ? (r[k] < '0' || r[k] > '9') : r[k] != shape[k])
				break;
		if (shape[k])
			bad++;
		else
			r += k;
		while (*r && *r != '\n')
			*w++ = *r++;
		if (*r)
			*w++ = *r++;
	}
	*w = '\0';
	return bad;
}

#define STAMP sizeof "2026-12-03T10:04:24.123Z"

static int saved_errno;

static void log_basic(void)
{
	log_init(false, LOG_LVL_INFO);
	log_msg(LOG_LVL_INFO, "hello %d", 42);
	log_msg(LOG_LVL_DEBUG, "not shown");
	log_msg(LOG_LVL_ERROR, "bad %s", "thing");
	log_msg(LOG_LVL_WARNING, "w");
	log_msg(LOG_LVL_NOTICE, "n");
	errno = ERANGE;
	log_msg(LOG_LVL_INFO, "a\nforged: line\r\x1b");
	saved_errno = errno;
	log_set_level(LOG_LVL_ERROR);
	log_msg(LOG_LVL_WARNING, "filtered");
	log_msg(LOG_LVL_ERROR, "kept");
	log_set_level(LOG_LVL_DEBUG);
	log_msg(LOG_LVL_DEBUG, "dbg");
}

static void log_long(void)
{
	static char big[3000];

	memset(big, 'x', sizeof big - 1);
	log_init(false, LOG_LVL_INFO);
	log_msg(LOG_LVL_INFO, "%s", big);
	log_msg(LOG_LVL_INFO, "after");
}

static void test_msg(void)
{
	size_t n;

	captured(log_basic);
	CHECK(unstamp() == 0);
	CHECK_STR(out, "info: hello 42\n"
		       "error: bad thing\n"
		       "warning: w\n"
		       "notice: n\n"
		       "info: a?forged: line??\n"
		       "error: kept\n"
		       "debug: dbg\n");
	CHECK(saved_errno == ERANGE);

	/* A long line is cut to 1024 octets, newline and time included,
	 * never split. */
	n = captured(log_long);
	CHECK(n == 1024 + STAMP + strlen("info: after\n"));
	CHECK(out[1022] == 'x' && out[1023] == '\n');
	CHECK(memchr(out, '\n', 1023) == NULL);
	CHECK(unstamp() == 0);
	CHECK(strncmp(out, "info: xxx", 9) == 0);
	CHECK_STR(out + 1024 - STAMP, "info: after\n");

	log_init(false, LOG_LVL_NOTICE);
	CHECK(log_enabled(LOG_LVL_ERROR));
	CHECK(log_enabled(LOG_LVL_NOTICE));
	CHECK(!log_enabled(LOG_LVL_INFO));
	CHECK(!log_enabled(LOG_LVL_DEBUG));
	/* An out-of-range level is clamped, never used as an index. */
	log_set_level((enum log_level)99);
	CHECK(log_enabled(LOG_LVL_DEBUG));
	log_set_level((enum log_level)-5);
	CHECK(log_enabled(LOG_LVL_ERROR));
	CHECK(!log_enabled(LOG_LVL_WARNING));
}

int main(void)
{
	test_neuter();
	test_msg();
	return check_summary("log");
}
