/* util: the small text and clock helpers several modules need.
 *
 * Promises: pure and locale-free (ASCII only, so the locale can never
 * change what a configuration or an address means), no allocation. The
 * character tests are inline: the address and recipient lookups run them
 * per octet.
 */
#ifndef TARPITD_UTIL_H
#define TARPITD_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* White space of the INI file and of list values: what inih's isspace()
 * takes in the C locale, less '\n', which never reaches a line. */
static inline bool util_is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r';
}

static inline char util_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Copies s into buf whole (returning its length), or on a buffer too
 * small writes "" and returns 0, so callers can tell a cut text from a
 * whole one. */
size_t put_text(char *buf, size_t len, const char *s);

/* What a file of mode m is when it is not a regular file ("a FIFO", "a
 * directory", ...), for "X is not a regular file" messages; NULL for a
 * regular file. SPEC §3: every file the INI names must be a regular file,
 * since opening a FIFO or a device can block. */
const char *util_not_regular(unsigned m);

/* Milliseconds of CLOCK_MONOTONIC. */
uint64_t util_now_ms(void);

/* Error lines collected into a caller's buffer, as the file loaders
 * report them: "PATH:LINE: KEY: text" (no "LINE:" for line 0, no "KEY: "
 * for a NULL key), one per line, cut where the buffer ends; n counts every
 * line, kept or not. A NULL buf only counts. */
struct errlist {
	char *buf;
	size_t len, used;
	const char *path;
	unsigned n;
};
void errlist_add(struct errlist *e, int line, const char *key, const char *fmt, va_list ap);

#endif
