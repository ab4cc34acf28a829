/* log: see log.h. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
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
	if (!to_syslog) {
		r = snprintf(buf, sizeof buf, "%s: ", level_name[level]);
		n = r > 0 ? (size_t)r : 0;
	}
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
	size_t i;

	if (!dst || dstlen == 0)
		return 0;
	if (!src)
		srclen = 0;
	for (i = 0; i < srclen && i + 1 < dstlen; i++) {
		unsigned char ch = (unsigned char)src[i];

		dst[i] = (ch < 0x21 || ch > 0x7e || ch == '"' || ch == '\\' || ch == '=') ? '?' : (char)ch;
	}
	dst[i] = '\0';
	return i;
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
