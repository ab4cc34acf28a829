/* tls_fixture.h: what the two TLS unit tests (test_tls.c, the server
 * side; test_tls_client.c, the client side) share — the throwaway
 * directory openssl writes their certificates into, a non-blocking
 * socketpair for the two ends, and the heap-per-session report (its line
 * is what host-tests/bench/tls_bench.sh greps). Header-only like check.h:
 * each test program includes it once. */
#ifndef TARPITD_TLS_FIXTURE_H
#define TARPITD_TLS_FIXTURE_H

#include "tls.h"

#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* The directory made by fixture_dir(); paths are made in it by path(). */
static char dir[64];

static inline int run(const char *cmd)
{
	return system(cmd) == 0 ? 0 : -1;
}

/* tmpl: "/tmp/tarpitd-tls...-XXXXXX", made by mkdtemp: 0, or -1. */
static inline int fixture_dir(const char *tmpl)
{
	snprintf(dir, sizeof dir, "%s", tmpl);
	return mkdtemp(dir) ? 0 : -1;
}

static inline void path(char *out, size_t len, const char *name)
{
	snprintf(out, len, "%s/%s", dir, name);
}

static inline int write_text(const char *file, const char *text)
{
	FILE *f = fopen(file, "w");

	if (!f)
		return -1;
	fputs(text, f);
	fclose(f);
	return 0;
}

/* The directory and all in it; only one fixture_dir() made. */
static inline void remove_files(void)
{
	char cmd[256];

	if (dir[0] && strncmp(dir, "/tmp/tarpitd-tls", 16) == 0) {
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
		run(cmd);
	}
}

static inline int pair(int sv[2])
{
	return socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv);
}

static inline bool wants(long r)
{
	return r == TLS_WANT_READ || r == TLS_WANT_WRITE;
}

/* Octets of heap in use (allocated from the arena, and mmapped). */
static inline long long heap_used(void)
{
	struct mallinfo2 m = mallinfo2();

	return (long long)(m.uordblks + m.hblkhd);
}

/* One session's heap: h[0] before the acquire, then after it, after the
 * handshake and after the release. who: the program; side: "server" or
 * "client". Informational. */
static inline void heap_report(const char *who, const char *side, const long long h[4])
{
	if (h[0] == 0)
		printf("%s: heap per session: not measurable here (mallinfo2 reports nothing)\n",
		       who);
	else
		printf("%s: heap per session (%s side, mallinfo2): after setup %lld B, "
		       "after handshake %lld B, kept after release %lld B\n",
		       who, side, h[1] - h[0], h[2] - h[0], h[3] - h[0]);
}

#endif
