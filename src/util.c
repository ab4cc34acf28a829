/* util: see util.h. */
#include "util.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

size_t put_text(char *buf, size_t len, const char *s)
{
	size_t n = strlen(s);

	if (!buf || len == 0)
		return 0;
	if (n >= len) {
		buf[0] = '\0';
		return 0;
	}
	memcpy(buf, s, n + 1);
	return n;
}

const char *util_not_regular(unsigned m)
{
	if (S_ISREG(m))
		return NULL;
	return S_ISFIFO(m) ? "a FIFO" : S_ISDIR(m) ? "a directory" : S_ISSOCK(m) ? "a socket"
	       : S_ISCHR(m) || S_ISBLK(m) ? "a device" : "not a regular file";
}

uint64_t util_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint32_t)ts.tv_nsec / 1000000u; /* tv_nsec < 10^9 */
}

static void errlist_advance(struct errlist *e, int k)
{
	size_t room = e->len - e->used;

	if (k > 0)
		e->used += (size_t)k < room ? (size_t)k : room - 1;
}

void errlist_add(struct errlist *e, int line, const char *key, const char *fmt, va_list ap)
{
	char num[16] = "";

	e->n++;
	if (!e->buf || e->used + 1 >= e->len)
		return;
	if (e->used > 0)
		e->buf[e->used++] = '\n';
	if (line > 0)
		snprintf(num, sizeof num, "%d:", line);
	errlist_advance(e, snprintf(e->buf + e->used, e->len - e->used, "%s:%s %s%s", e->path, num,
				    key ? key : "", key ? ": " : ""));
	errlist_advance(e, vsnprintf(e->buf + e->used, e->len - e->used, fmt, ap));
	e->buf[e->used] = '\0';
}
