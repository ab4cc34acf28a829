/* fuzz_iprange: ip_parse, binding_parse and ip_range_parse, the first
 * input octet choosing which (and 3: ip_from_sockaddr on raw octets).
 *
 * Checks: what parses formats to text that parses back to the same value
 * and formats the same way again (the admin CLI writes these texts back
 * into the INI file); a range is ordered, contains its ends and, written
 * "a-b", is of one family; a binding written [v6]:port is never an IPv4 address.
 */
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "iprange.h"

#include "fuzz_util.h"

#define TEXT_MAX 128

NOCOV static void check_addr(const struct ip_addr *a)
{
	char t1[TEXT_MAX], t2[TEXT_MAX];
	struct ip_addr b;
	size_t n1, n2;

	FUZZ_CHECK(ip_cmp(a, a) == 0);
	n1 = ip_format(a, t1, sizeof t1);
	FUZZ_CHECK(n1 > 0 && n1 < sizeof t1 && strlen(t1) == n1);
	FUZZ_CHECK(ip_parse(t1, &b) == 0 && ip_cmp(a, &b) == 0 && memcmp(a, &b, sizeof b) == 0);
	FUZZ_CHECK(ip_is_v4(a) == ip_is_v4(&b));
	n2 = ip_format(&b, t2, sizeof t2);
	FUZZ_CHECK(n2 == n1 && memcmp(t1, t2, n1) == 0);
	/* A buffer one short must not be overrun (and says so by length). */
	{
		char *small = malloc(n1);
		FUZZ_CHECK(small != NULL);
		(void)ip_format(a, small, n1);
		FUZZ_CHECK(memchr(small, 0, n1) != NULL || n1 == 0);
		free(small);
	}
}

NOCOV static void do_ip(const char *s)
{
	struct ip_addr a;

	if (ip_parse(s, &a) != 0)
		return;
	check_addr(&a);
}

NOCOV static void do_binding(const char *s)
{
	struct binding b, c;
	char t1[TEXT_MAX], t2[TEXT_MAX];
	size_t n1, n2;

	memset(&b, 0, sizeof b);
	if (binding_parse(s, &b) != 0)
		return;
	FUZZ_CHECK(!b.v6 || !ip_is_v4(&b.addr));
	FUZZ_CHECK(b.v6 || ip_is_v4(&b.addr));
	check_addr(&b.addr);
	n1 = binding_format(&b, t1, sizeof t1);
	FUZZ_CHECK(n1 > 0 && n1 < sizeof t1 && strlen(t1) == n1);
	memset(&c, 0, sizeof c);
	FUZZ_CHECK(binding_parse(t1, &c) == 0);
	FUZZ_CHECK(ip_cmp(&b.addr, &c.addr) == 0 && b.port == c.port && b.v6 == c.v6);
	n2 = binding_format(&c, t2, sizeof t2);
	FUZZ_CHECK(n2 == n1 && memcmp(t1, t2, n1) == 0);
}

NOCOV static void do_range(const char *s)
{
	struct ip_range r, q;
	char t1[2 * TEXT_MAX], t2[2 * TEXT_MAX];
	size_t n1, n2;

	if (ip_range_parse(s, &r) != 0)
		return;
	FUZZ_CHECK(ip_cmp(&r.lo, &r.hi) <= 0);
	/* "a-b" is of one family; a prefix may span both (::/0 holds every
	 * IPv4 peer, which arrives mapped). */
	if (!strchr(s, '/'))
		FUZZ_CHECK(ip_is_v4(&r.lo) == ip_is_v4(&r.hi));
	FUZZ_CHECK(ip_range_contains(&r, &r.lo) && ip_range_contains(&r, &r.hi));
	check_addr(&r.lo);
	check_addr(&r.hi);
	n1 = ip_range_format(&r, t1, sizeof t1);
	FUZZ_CHECK(n1 > 0 && n1 < sizeof t1 && strlen(t1) == n1);
	FUZZ_CHECK(ip_range_parse(t1, &q) == 0);
	FUZZ_CHECK(ip_cmp(&r.lo, &q.lo) == 0 && ip_cmp(&r.hi, &q.hi) == 0);
	n2 = ip_range_format(&q, t2, sizeof t2);
	FUZZ_CHECK(n2 == n1 && memcmp(t1, t2, n1) == 0);
}

NOCOV static void do_sockaddr(const uint8_t *data, size_t size)
{
	union {
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
		struct sockaddr_storage ss;
	} u;
	struct ip_addr a;
	uint16_t port = 0;

	memset(&u, 0, sizeof u);
	memcpy(&u, data, size < sizeof u ? size : sizeof u);
	if (ip_from_sockaddr(&u, &a, &port) != 0) {
		FUZZ_CHECK(u.ss.ss_family != AF_INET && u.ss.ss_family != AF_INET6);
		return;
	}
	if (u.ss.ss_family == AF_INET) {
		FUZZ_CHECK(ip_is_v4(&a) && memcmp(a.a + 12, &u.in.sin_addr, 4) == 0 &&
			   port == ntohs(u.in.sin_port));
	} else {
		FUZZ_CHECK(u.ss.ss_family == AF_INET6 && memcmp(a.a, &u.in6.sin6_addr, 16) == 0 &&
			   port == ntohs(u.in6.sin6_port));
	}
	check_addr(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;

	if (size < 1)
		return 0;
	if (data[0] % 4 == 3) {
		do_sockaddr(data + 1, size - 1);
		return 0;
	}
	s = fuzz_cstr(data + 1, size - 1);
	switch (data[0] % 4) {
	case 0: do_ip(s); break;
	case 1: do_binding(s); break;
	default: do_range(s); break;
	}
	free(s);
	return 0;
}
