/* log: one line per event, to stderr or syslog, filtered by level.
 *
 * Promises: no allocation; a line longer than the internal buffer is cut,
 * never split. A stderr line starts with its RFC 3339 UTC time
 * (2026-12-03T10:04:24.123Z), as syslog adds its own (SPEC §3).
 * Client-supplied text must pass through log_neuter() first and be logged
 * inside double quotes (key="..."): it escapes every octet that could
 * end the value, forge a line or a field, or reach a terminal raw, and
 * keeps the rest, spaces included, so a logged command still reads
 * RCPT TO:<...> (SPEC §7).
 */
#ifndef TARPITD_LOG_H
#define TARPITD_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "limits.h"

enum log_level { LOG_LVL_ERROR, LOG_LVL_WARNING, LOG_LVL_NOTICE, LOG_LVL_INFO, LOG_LVL_DEBUG };

void log_init(bool use_syslog, enum log_level level);
void log_set_level(enum log_level level);
bool log_enabled(enum log_level level);
void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* The value of a quoted log field (key="<dst>"): at most srclen octets of
 * src into dst (NUL-terminated, cut to dstlen, never inside an escape).
 * Printable ASCII (0x20..0x7e) is kept, '"' and '\\' become \" and \\,
 * every other octet (controls, DEL, NUL, 8-bit) becomes \xHH. Returns
 * the length written. */
size_t log_neuter(char *dst, size_t dstlen, const char *src, size_t srclen);

/* A faulty value quoted back in an error message: at most LOG_ECHO_MAX
 * octets of s (then "..."), control and 8-bit octets shown as '?'. buf
 * should hold LOG_ECHO_BUF octets. Returns buf. */
const char *log_echo(char *buf, size_t len, const char *s, size_t n);

#endif
