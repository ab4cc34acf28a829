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
	CHECK(log_neuter(d, sizeof d, "a\r\nb\tc\x1b[31m", 11) == 11);
	CHECK_STR(d, "a??b?c?[31m");
	CHECK(log_neuter(d, sizeof d, "a b", 3) == 3);
	CHECK_STR(d, "a?b");
	CHECK(log_neuter(d, sizeof d, "\xc3\xa9\xff\x80", 4) == 4);
	CHECK_STR(d, "????");
	CHECK(log_neuter(d, sizeof d, "say \"hi\" \\ k=v", 14) == 14);
	CHECK_STR(d, "say??hi????k?v");
	CHECK(log_neuter(d, sizeof d, "!~\x7f", 3) == 3);
	CHECK_STR(d, "!~?");
	/* NUL is just another octet: it must not end the copy early. */
	CHECK(log_neuter(d, sizeof d, "a\0b", 3) == 3);
	CHECK_STR(d, "a?b");
	/* srclen bounds the read; dstlen bounds the write. */
	CHECK(log_neuter(d, sizeof d, "abcdef", 2) == 2);
	CHECK_STR(d, "ab");
	CHECK(log_neuter(d, 4, "abcdef", 6) == 3);
	CHECK_STR(d, "abc");
	CHECK(log_neuter(d, 1, "abcdef", 6) == 0);
	CHECK_STR(d, "");
	d[0] = 'Z';
	CHECK(log_neuter(d, 0, "abcdef", 6) == 0);
	CHECK(d[0] == 'Z');
	CHECK(log_neuter(d, sizeof d, "abc", 0) == 0);
	CHECK_STR(d, "");
	CHECK(log_neuter(d, sizeof d, NULL, 5) == 0);
	CHECK_STR(d, "");

	/* Every octet: only safe printable ones survive, each as itself. */
	for (c = 0; c < 256; c++) {
		char s = (char)c;
		bool keep = c >= 0x21 && c <= 0x7e && c != '"' && c != '\\' && c != '=';

		CHECK(log_neuter(d, sizeof d, &s, 1) == 1 && d[1] == '\0');
		if (keep)
			CHECK(d[0] == s);
		else
			CHECK(d[0] == '?');
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
	CHECK_STR(out, "info: hello 42\n"
		       "error: bad thing\n"
		       "warning: w\n"
		       "notice: n\n"
		       "info: a?forged: line??\n"
		       "error: kept\n"
		       "debug: dbg\n");
	CHECK(saved_errno == ERANGE);

	/* A long line is cut to 1024 octets, newline included, never split. */
	n = captured(log_long);
	CHECK(n == 1024 + strlen("info: after\n"));
	CHECK(strncmp(out, "info: xxx", 9) == 0);
	CHECK(out[1022] == 'x' && out[1023] == '\n');
	CHECK_STR(out + 1024, "info: after\n");
	CHECK(memchr(out, '\n', 1023) == NULL);

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
