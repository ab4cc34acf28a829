/* iprange: see iprange.h. */
#include "iprange.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "limits.h"
#include "util.h"

/* ADDR_TEXT_MAX: anything longer is rejected before inet_pton sees it. */

static const uint8_t v4_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

bool ip_is_v4(const struct ip_addr *a)
{
	return memcmp(a->a, v4_prefix, sizeof v4_prefix) == 0;
}

void ip_source_key(const struct ip_addr *a, struct ip_addr *k)
{
	*k = *a;
	if (!ip_is_v4(a))
		memset(k->a + 8, 0, 8);
}

int ip_cmp(const struct ip_addr *x, const struct ip_addr *y)
{
	int r = memcmp(x->a, y->a, sizeof x->a);
	return (r > 0) - (r < 0);
}

/* Parses exactly n octets of s; *textual_v4 tells which syntax matched,
 * because the prefix length of "a/len" depends on how it was written. */
static int parse_n(const char *s, size_t n, struct ip_addr *out, bool *textual_v4)
{
	char tmp[ADDR_TEXT_MAX];
	uint8_t v4[4];

	if (n == 0 || n >= sizeof tmp)
		return -1;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	if (inet_pton(AF_INET, tmp, v4) == 1) {
		memcpy(out->a, v4_prefix, sizeof v4_prefix);
		memcpy(out->a + 12, v4, 4);
		if (textual_v4)
			*textual_v4 = true;
		return 0;
	}
	if (inet_pton(AF_INET6, tmp, out->a) == 1) {
		if (textual_v4)
			*textual_v4 = false;
		return 0;
	}
	return -1;
}

int ip_parse(const char *s, struct ip_addr *out)
{
	if (!s)
		return -1;
	return parse_n(s, strnlen(s, ADDR_TEXT_MAX), out, NULL);
}

static void ntop(const struct ip_addr *a, bool force_v6, char out[INET6_ADDRSTRLEN])
{
	if (!force_v6 && ip_is_v4(a))
		inet_ntop(AF_INET, a->a + 12, out, INET6_ADDRSTRLEN);
	else
		inet_ntop(AF_INET6, a->a, out, INET6_ADDRSTRLEN);
}

size_t ip_format(const struct ip_addr *a, char *buf, size_t len)
{
	char t[INET6_ADDRSTRLEN];

	ntop(a, false, t);
	return put_text(buf, len, t);
}

/* Digits only, no sign, no spaces: the port must be unambiguous text. */
static int parse_port(const char *s, uint16_t *port)
{
	uint32_t v = 0;
	size_t i;

	if (!*s)
		return -1;
	for (i = 0; s[i]; i++) {
		if (s[i] < '0' || s[i] > '9' || i >= 5)
			return -1;
		v = v * 10 + (uint32_t)(s[i] - '0');
	}
	if (v < 1 || v > 65535)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

int binding_parse(const char *s, struct binding *out)
{
	struct binding b;
	const char *end, *colon;
	bool tv4;

	if (!s)
		return -1;
	memset(&b, 0, sizeof b);
	if (s[0] == '[') {
		end = strchr(s + 1, ']');
		if (!end || end[1] != ':')
			return -1;
		if (parse_n(s + 1, (size_t)(end - s - 1), &b.addr, &tv4) < 0)
			return -1;
		/* A mapped address on an IPv6 socket would quietly depend on
		 * IPV6_V6ONLY; the IPv4 spelling says the same thing plainly. */
		if (tv4 || ip_is_v4(&b.addr))
			return -1;
		b.v6 = true;
		colon = end + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -1;
		/* Bare IPv6 ("::1:25") cannot be told apart from its port. */
		if (memchr(s, ':', (size_t)(colon - s)))
			return -1;
		if (parse_n(s, (size_t)(colon - s), &b.addr, &tv4) < 0 || !tv4)
			return -1;
	}
	if (parse_port(colon + 1, &b.port) < 0)
		return -1;
	*out = b;
	return 0;
}

bool binding_same(const struct binding *a, const struct binding *b)
{
	return a->port == b->port && ip_cmp(&a->addr, &b->addr) == 0;
}

size_t binding_format(const struct binding *b, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];
	char t[INET6_ADDRSTRLEN + 8];

	ntop(&b->addr, b->v6, a);
	if (b->v6)
		snprintf(t, sizeof t, "[%s]:%u", a, (unsigned)b->port);
	else
		snprintf(t, sizeof t, "%s:%u", a, (unsigned)b->port);
	return put_text(buf, len, t);
}

static void apply_prefix(const struct ip_addr *a, unsigned bits, struct ip_range *r)
{
	unsigned i;

	for (i = 0; i < 16; i++) {
		uint8_t mask;

		if (bits >= 8 * (i + 1))
			mask = 0xff;
		else if (bits <= 8 * i)
			mask = 0;
		else
			mask = (uint8_t)(0xff << (8 - (bits - 8 * i)));
		r->lo.a[i] = a->a[i] & mask;
		r->hi.a[i] = (uint8_t)(a->a[i] | (uint8_t)~mask);
	}
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t';
}

int ip_range_parse(const char *s, struct ip_range *out)
{
	const char *sep;
	struct ip_addr a, b;
	bool tv4;

	if (!s)
		return -1;
	if ((sep = strchr(s, '/')) != NULL) {
		unsigned len = 0, max;
		const char *p = sep + 1;
		size_t i;

		if (strchr(s, '-'))
			return -1;
		if (parse_n(s, (size_t)(sep - s), &a, &tv4) < 0)
			return -1;
		for (i = 0; p[i]; i++) {
			if (p[i] < '0' || p[i] > '9' || i >= 3)
				return -1;
			len = len * 10 + (unsigned)(p[i] - '0');
		}
		max = tv4 ? 32 : 128;
		if (i == 0 || len > max)
			return -1;
		/* Host bits set beyond the prefix are dropped, as Exchange does:
		 * "192.0.2.7/24" means 192.0.2.0/24. */
		apply_prefix(&a, tv4 ? 96 + len : len, out);
		return 0;
	}
	if ((sep = strchr(s, '-')) != NULL) {
		const char *e1 = sep, *s2 = sep + 1;

		while (e1 > s && is_space(e1[-1]))
			e1--;
		while (is_space(*s2))
			s2++;
		if (parse_n(s, (size_t)(e1 - s), &a, NULL) < 0 ||
		    parse_n(s2, strnlen(s2, ADDR_TEXT_MAX), &b, NULL) < 0)
			return -1;
		if (ip_is_v4(&a) != ip_is_v4(&b) || ip_cmp(&a, &b) > 0)
			return -1;
		out->lo = a;
		out->hi = b;
		return 0;
	}
	if (ip_parse(s, &a) < 0)
		return -1;
	out->lo = out->hi = a;
	return 0;
}

/* Prefix length if [lo, hi] is exactly one CIDR block, else -1. */
static int cidr_len(const struct ip_range *r)
{
	unsigned bits;

	for (bits = 0; bits <= 128; bits++) {
		struct ip_range t;

		apply_prefix(&r->lo, bits, &t);
		if (ip_cmp(&t.lo, &r->lo) == 0 && ip_cmp(&t.hi, &r->hi) == 0)
			return (int)bits;
	}
	return -1;
}

size_t ip_range_format(const struct ip_range *r, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN], b[INET6_ADDRSTRLEN];
	char t[2 * INET6_ADDRSTRLEN + 8];
	int bits;

	ntop(&r->lo, false, a);
	if (ip_cmp(&r->lo, &r->hi) == 0)
		return put_text(buf, len, a);
	bits = cidr_len(r);
	if (bits >= 0) {
		/* A v4 low end implies bits >= 96: the ::ffff prefix is fixed. */
		if (ip_is_v4(&r->lo))
			bits -= 96;
		snprintf(t, sizeof t, "%s/%d", a, bits);
		return put_text(buf, len, t);
	}
	ntop(&r->hi, false, b);
	snprintf(t, sizeof t, "%s-%s", a, b);
	return put_text(buf, len, t);
}

bool ip_range_contains(const struct ip_range *r, const struct ip_addr *a)
{
	return ip_cmp(&r->lo, a) <= 0 && ip_cmp(a, &r->hi) <= 0;
}

int ip_from_sockaddr(const void *sa, struct ip_addr *out, uint16_t *port)
{
	sa_family_t fam;

	if (!sa)
		return -1;
	/* memcpy rather than casts: the caller's storage may be a plain byte
	 * buffer with no particular alignment or effective type. */
	memcpy(&fam, (const char *)sa + offsetof(struct sockaddr, sa_family), sizeof fam);
	if (fam == AF_INET) {
		struct sockaddr_in in;

		memcpy(&in, sa, sizeof in);
		memcpy(out->a, v4_prefix, sizeof v4_prefix);
		memcpy(out->a + 12, &in.sin_addr, 4);
		if (port)
			*port = ntohs(in.sin_port);
		return 0;
	}
	if (fam == AF_INET6) {
		struct sockaddr_in6 in6;

		memcpy(&in6, sa, sizeof in6);
		memcpy(out->a, &in6.sin6_addr, 16);
		if (port)
			*port = ntohs(in6.sin6_port);
		return 0;
	}
	return -1;
}
