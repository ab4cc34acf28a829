/* log: see log.h. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static bool to_syslog;
static bool syslog_open;
static enum log_level cur_level = LOG_LVL_INFO;

static const char *const level_name[] = { "error", "warning", "notice", "info", "debug" };
static const int level_prio[] = { LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG };

static enum log_level clamp(enum log_level l)
{
	/* Enums can hold any int; an index must not. */
	if ((int)l < (int)LOG_LVL_ERROR)
		return LOG_LVL_ERROR;
	if ((int)l > (int)LOG_LVL_DEBUG)
		return LOG_LVL_DEBUG;
	return l;
}

void log_init(bool use_syslog, enum log_level level)
{
	if (use_syslog && !syslog_open) {
		/* LOG_NDELAY: the socket is opened now, before a chroot or a
		 * privilege drop could make /dev/log unreachable. */
		openlog("tarpitd", LOG_PID | LOG_NDELAY, LOG_MAIL);
		syslog_open = true;
	} else if (!use_syslog && syslog_open) {
		closelog();
		syslog_open = false;
	}
	to_syslog = use_syslog;
	cur_level = clamp(level);
}

void log_set_level(enum log_level level)
{
	cur_level = clamp(level);
}

bool log_enabled(enum log_level level)
{
	return (int)level <= (int)cur_level;
}

/* "2026-12-03T10:04:24.123Z info: ": syslog stamps its own lines, a
 * file or terminal behind stderr does not (SPEC §3). UTC, so the text
 * never depends on the zone the daemon was started in. */
static size_t stamp(char *buf, size_t len, const char *level)
{
	struct timespec ts;
	struct tm tm;
	int r;

	if (clock_gettime(CLOCK_REALTIME, &ts) != 0 || !gmtime_r(&ts.tv_sec, &tm)) {
		memset(&tm, 0, sizeof tm);
		ts.tv_nsec = 0;
	}
	r = snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s: ", tm.tm_year + 1900,
		     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		     (int)(ts.tv_nsec / 1000000), level);
	return r > 0 ? (size_t)r : 0;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	/* Static keeps the frame small (short stack accesses on MIPS16): the
	 * daemon is single-threaded, no signal handler logs, and nothing
	 * log_msg calls can log. */
	static char buf[LOG_LINE_MAX];
	size_t n = 0, start, i;
	int saved = errno, r;
	va_list ap;

	if (!log_enabled(level))
		return;
	level = clamp(level);
	if (!to_syslog)
		n = stamp(buf, sizeof buf, level_name[level]);
	start = n;
	va_start(ap, fmt);
	r = vsnprintf(buf + n, sizeof buf - n, fmt, ap);
	va_end(ap);
	if (r > 0)
		n += (size_t)r < sizeof buf - n ? (size_t)r : sizeof buf - n - 1;
	/* One event, one line: a stray newline in a caller's text must not
	 * start a second, forged one. */
	for (i = start; i < n; i++)
		if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f)
			buf[i] = '?';

	if (to_syslog) {
		buf[n] = '\0';
		syslog(level_prio[level], "%s", buf);
	} else {
		if (n > sizeof buf - 1)
			n = sizeof buf - 1;
		buf[n++] = '\n';
		/* A single write keeps lines whole when several processes
		 * share the terminal or the log file. */
		while (write(STDERR_FILENO, buf, n) < 0 && errno == EINTR)
			;
	}
	errno = saved;
}

size_t log_neuter(char *dst, size_t dstlen, const char *src, size_t srclen)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, o = 0;

	if (!dst || dstlen == 0)
		return 0;
	if (!src)
		srclen = 0;
	for (i = 0; i < srclen; i++) {
		unsigned char ch = (unsigned char)src[i];
		size_t w = ch == '"' || ch == '\\' ? 2 : ch < 0x20 || ch > 0x7e ? 4 : 1;

		/* An escape is written whole or not at all: a cut one would
		 * read as another octet. */
		if (o + w >= dstlen)
			break;
		if (w == 1) {
			dst[o++] = (char)ch;
		} else if (w == 2) {
			dst[o++] = '\\';
			dst[o++] = (char)ch;
		} else {
			memcpy(dst + o, "\\x", 2);
			dst[o + 2] = hex[ch >> 4];
			dst[o + 3] = hex[ch & 15];
			o += 4;
		}
	}
	dst[o] = '\0';
	return o;
}

const char *log_echo(char *buf, size_t len, const char *s, size_t n)
{
	size_t i, o = 0;

	for (i = 0; i < n && o + 4 < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (i == LOG_ECHO_MAX) {
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		buf[o++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
	}
	buf[o] = '\0';
	return buf;
}
