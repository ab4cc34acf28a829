/* log: one line per event, to stderr or syslog, filtered by level.
 *
 * Promises: no allocation; a line longer than the internal buffer is cut,
 * never split. Client-supplied text must pass through log_neuter() first:
 * it replaces every octet that is not printable ASCII (and '"', '\\') so no
 * client octet can forge a line, a field or a terminal escape.
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
/* Copies at most srclen octets of src into dst (NUL-terminated, cut to
 * dstlen), each octet outside 0x21..0x7e or in "\"\\=" replaced by '?'.
 * Returns the length written. */
size_t log_neuter(char *dst, size_t dstlen, const char *src, size_t srclen);

/* A faulty value quoted back in an error message: at most LOG_ECHO_MAX
 * octets of s (then "..."), control and 8-bit octets shown as '?'. buf
 * should hold LOG_ECHO_BUF octets. Returns buf. */
const char *log_echo(char *buf, size_t len, const char *s, size_t n);

#endif
