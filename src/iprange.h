/* iprange: IPv4/IPv6 addresses, bindings and RemoteIPRanges entries.
 *
 * Promises: pure parsing and comparison, no allocation, no DNS. IPv4 is
 * kept as an IPv4-mapped IPv6 address (::ffff:a.b.c.d) so one 128-bit
 * comparison serves both families; a peer that arrives as a mapped IPv6
 * address therefore counts as IPv4, as SPEC §3 asks. Byte order is
 * network order throughout, so the code is the same on big-endian CPUs.
 */
#ifndef TARPITD_IPRANGE_H
#define TARPITD_IPRANGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ip_addr {
	uint8_t a[16]; /* network order; IPv4 as ::ffff:a.b.c.d */
};

struct ip_range {
	struct ip_addr lo, hi; /* inclusive */
};

struct binding {
	struct ip_addr addr;
	uint16_t port;
	bool v6; /* written as [ipv6]:port: listen on an AF_INET6 socket */
};

bool ip_is_v4(const struct ip_addr *a);
/* The address a source is counted by (SPEC §8): an IPv4 address as it is,
 * an IPv6 one as its /64 (host part zeroed): one customer gets a whole
 * /64, so its host part says nothing. Used by the harvest table and the
 * per-source connection limit alike. */
void ip_source_key(const struct ip_addr *a, struct ip_addr *k);
int ip_cmp(const struct ip_addr *x, const struct ip_addr *y);

/* "192.0.2.1" or "2001:db8::1" (no brackets). 0 ok, -1 invalid. */
int ip_parse(const char *s, struct ip_addr *out);
/* Writes the canonical text ("192.0.2.1", "2001:db8::1"); returns length. */
size_t ip_format(const struct ip_addr *a, char *buf, size_t len);

/* "ip:port" or "[ipv6]:port". 0 ok, -1 invalid. */
int binding_parse(const char *s, struct binding *out);
size_t binding_format(const struct binding *b, char *buf, size_t len);
/* Same address and port: what the server opens one socket for. */
bool binding_same(const struct binding *a, const struct binding *b);

/* "a", "a/len" or "a-b" (both ends of one family, a <= b). 0 ok, -1. */
int ip_range_parse(const char *s, struct ip_range *out);
size_t ip_range_format(const struct ip_range *r, char *buf, size_t len);
bool ip_range_contains(const struct ip_range *r, const struct ip_addr *a);

/* From a struct sockaddr_in / sockaddr_in6 (passed as void * to keep
 * socket headers out of pure modules). Returns 0, or -1 for other families. */
int ip_from_sockaddr(const void *sa, struct ip_addr *out, uint16_t *port);

#endif
