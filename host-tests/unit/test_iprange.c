/* test_iprange: parsing, formatting and containment of addresses, bindings
 * and RemoteIPRanges entries, with the edges where off-by-ones live. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "check.h"
#include "iprange.h"

static char buf[128];

static const char *fmt_ip(const char *s)
{
	struct ip_addr a;

	if (ip_parse(s, &a) != 0)
		return "(invalid)";
	ip_format(&a, buf, sizeof buf);
	return buf;
}

static const char *fmt_binding(const char *s)
{
	struct binding b;

	if (binding_parse(s, &b) != 0)
		return "(invalid)";
	binding_format(&b, buf, sizeof buf);
	return buf;
}

static const char *fmt_range(const char *s)
{
	struct ip_range r;

	if (ip_range_parse(s, &r) != 0)
		return "(invalid)";
	ip_range_format(&r, buf, sizeof buf);
	return buf;
}

static bool in_range(const char *range, const char *addr)
{
	struct ip_range r;
	struct ip_addr a;

	if (ip_range_parse(range, &r) != 0 || ip_parse(addr, &a) != 0)
		return false;
	return ip_range_contains(&r, &a);
}

static void test_addresses(void)
{
	struct ip_addr a, b;

	CHECK_STR(fmt_ip("192.0.2.1"), "192.0.2.1");
	CHECK_STR(fmt_ip("0.0.0.0"), "0.0.0.0");
	CHECK_STR(fmt_ip("255.255.255.255"), "255.255.255.255");
	CHECK_STR(fmt_ip("2001:DB8:0:0:0:0:0:1"), "2001:db8::1");
	CHECK_STR(fmt_ip("::"), "::");
	CHECK_STR(fmt_ip("::1"), "::1");
	CHECK_STR(fmt_ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
		  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
	/* A mapped address is IPv4, in storage and in text. */
	CHECK_STR(fmt_ip("::ffff:192.0.2.1"), "192.0.2.1");
	CHECK_STR(fmt_ip("::FFFF:c000:0201"), "192.0.2.1");

	CHECK(ip_parse("192.0.2.1", &a) == 0);
	CHECK(ip_is_v4(&a));
	CHECK(a.a[10] == 0xff && a.a[11] == 0xff && a.a[12] == 192 && a.a[15] == 1);
	CHECK(ip_parse("::ffff:192.0.2.1", &b) == 0);
	CHECK(ip_cmp(&a, &b) == 0);
	CHECK(ip_parse("::1", &a) == 0);
	CHECK(!ip_is_v4(&a));
	/* ::ffff:0:0/96 minus one and plus one are not IPv4. */
	CHECK(ip_parse("::fffe:ffff:ffff", &a) == 0 && !ip_is_v4(&a));
	CHECK(ip_parse("0:0:0:0:0:1:ffff:0", &a) == 0 && !ip_is_v4(&a));

	CHECK(ip_parse("10.0.0.1", &a) == 0 && ip_parse("10.0.0.2", &b) == 0);
	CHECK(ip_cmp(&a, &b) == -1);
	CHECK(ip_cmp(&b, &a) == 1);
	CHECK(ip_cmp(&a, &a) == 0);
	/* Every IPv4 address sorts inside ::ffff:0:0/96, above ::1. */
	CHECK(ip_parse("::1", &b) == 0 && ip_cmp(&b, &a) < 0);

	CHECK(ip_parse("", &a) == -1);
	CHECK(ip_parse(NULL, &a) == -1);
	CHECK(ip_parse("1.2.3", &a) == -1);
	CHECK(ip_parse("1.2.3.4.5", &a) == -1);
	CHECK(ip_parse("256.0.0.1", &a) == -1);
	CHECK(ip_parse("01.2.3.4", &a) == -1);
	CHECK(ip_parse(" 1.2.3.4", &a) == -1);
	CHECK(ip_parse("1.2.3.4 ", &a) == -1);
	CHECK(ip_parse("[::1]", &a) == -1);
	CHECK(ip_parse("fe80::1%eth0", &a) == -1);
	CHECK(ip_parse("1:2:3:4:5:6:7:8:9", &a) == -1);
	CHECK(ip_parse("garbage", &a) == -1);
	CHECK(ip_parse("0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000", &a) == -1);

	/* A buffer that is too small gives "" and 0, never a cut address. */
	CHECK(ip_parse("2001:db8::1", &a) == 0);
	CHECK(ip_format(&a, buf, 11) == 0 && buf[0] == '\0');
	CHECK(ip_format(&a, buf, 12) == 11);
	CHECK_STR(buf, "2001:db8::1");
}

static void test_bindings(void)
{
	struct binding b;

	CHECK_STR(fmt_binding("0.0.0.0:25"), "0.0.0.0:25");
	CHECK_STR(fmt_binding("[::]:25"), "[::]:25");
	CHECK_STR(fmt_binding("127.0.0.1:2525"), "127.0.0.1:2525");
	CHECK_STR(fmt_binding("[2001:DB8::1]:587"), "[2001:db8::1]:587");
	CHECK_STR(fmt_binding("192.0.2.1:1"), "192.0.2.1:1");
	CHECK_STR(fmt_binding("192.0.2.1:65535"), "192.0.2.1:65535");

	CHECK(binding_parse("[::1]:2525", &b) == 0);
	CHECK(b.v6 && b.port == 2525 && b.addr.a[15] == 1 && !ip_is_v4(&b.addr));
	CHECK(binding_parse("10.1.2.3:25", &b) == 0);
	CHECK(!b.v6 && b.port == 25 && ip_is_v4(&b.addr));

	CHECK(binding_parse("192.0.2.1:0", &b) == -1);
	CHECK(binding_parse("192.0.2.1:65536", &b) == -1);
	CHECK(binding_parse("192.0.2.1:99999", &b) == -1);
	CHECK(binding_parse("192.0.2.1:100000", &b) == -1);
	CHECK(binding_parse("192.0.2.1", &b) == -1);
	CHECK(binding_parse("192.0.2.1:", &b) == -1);
	CHECK(binding_parse(":25", &b) == -1);
	CHECK(binding_parse("[1.2.3.4]:25", &b) == -1);
	CHECK(binding_parse("[::ffff:1.2.3.4]:25", &b) == -1);
	CHECK(binding_parse("::1:25", &b) == -1);
	CHECK(binding_parse("[::1]25", &b) == -1);
	CHECK(binding_parse("[::1:25", &b) == -1);
	CHECK(binding_parse("::1]:25", &b) == -1);
	CHECK(binding_parse("[]:25", &b) == -1);
	CHECK(binding_parse("[[::1]]:25", &b) == -1);
	CHECK(binding_parse("[::1]:25x", &b) == -1);
	CHECK(binding_parse("[::1]:25:", &b) == -1);
	CHECK(binding_parse("192.0.2.1:25 ", &b) == -1);
	CHECK(binding_parse(" 192.0.2.1:25", &b) == -1);
	CHECK(binding_parse("192.0.2.1:+25", &b) == -1);
	CHECK(binding_parse("192.0.2.1:-25", &b) == -1);
	CHECK(binding_parse("localhost:25", &b) == -1);
	CHECK(binding_parse("192.0.2.1:25:26", &b) == -1);
	CHECK(binding_parse("", &b) == -1);
	CHECK(binding_parse(NULL, &b) == -1);

	CHECK(binding_parse("[2001:db8::1]:587", &b) == 0);
	CHECK(binding_format(&b, buf, 17) == 0 && buf[0] == '\0');
	CHECK(binding_format(&b, buf, 18) == 17);
}

static void test_ranges(void)
{
	struct ip_range r;
	struct ip_addr a;

	/* Round trips, in the canonical form. */
	CHECK_STR(fmt_range("192.0.2.1"), "192.0.2.1");
	CHECK_STR(fmt_range("2001:db8::1"), "2001:db8::1");
	CHECK_STR(fmt_range("192.0.2.0/24"), "192.0.2.0/24");
	CHECK_STR(fmt_range("192.0.2.77/24"), "192.0.2.0/24"); /* host bits dropped */
	CHECK_STR(fmt_range("0.0.0.0/0"), "0.0.0.0/0");
	CHECK_STR(fmt_range("1.2.3.4/0"), "0.0.0.0/0");
	CHECK_STR(fmt_range("192.0.2.1/32"), "192.0.2.1");
	CHECK_STR(fmt_range("0.0.0.0-255.255.255.255"), "0.0.0.0/0");
	CHECK_STR(fmt_range("10.0.0.0-10.0.0.255"), "10.0.0.0/24");
	CHECK_STR(fmt_range("10.0.0.5-10.0.0.9"), "10.0.0.5-10.0.0.9");
	CHECK_STR(fmt_range("10.0.0.5 - 10.0.0.9"), "10.0.0.5-10.0.0.9");
	CHECK_STR(fmt_range("10.0.0.5\t-  10.0.0.9"), "10.0.0.5-10.0.0.9");
	CHECK_STR(fmt_range("10.0.0.5-10.0.0.5"), "10.0.0.5");
	CHECK_STR(fmt_range("::/0"), "::/0");
	CHECK_STR(fmt_range("::1/128"), "::1");
	CHECK_STR(fmt_range("2001:db8:1:2::/32"), "2001:db8::/32");
	CHECK_STR(fmt_range("2001:db8::/127"), "2001:db8::/127");
	CHECK_STR(fmt_range("::1-::5"), "::1-::5");
	CHECK_STR(fmt_range("::ffff:1.2.3.4/120"), "1.2.3.0/24");
	CHECK_STR(fmt_range("::ffff:0:0/96"), "0.0.0.0/0");
	CHECK_STR(fmt_range("::ffff:1.2.3.4-1.2.3.9"), "1.2.3.4-1.2.3.9");
	CHECK_STR(fmt_range("::/96"), "::/96");

	/* lo and hi exactly. */
	CHECK(ip_range_parse("192.0.2.77/24", &r) == 0);
	ip_format(&r.lo, buf, sizeof buf);
	CHECK_STR(buf, "192.0.2.0");
	ip_format(&r.hi, buf, sizeof buf);
	CHECK_STR(buf, "192.0.2.255");
	CHECK(ip_range_parse("::/0", &r) == 0);
	ip_format(&r.hi, buf, sizeof buf);
	CHECK_STR(buf, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
	CHECK(ip_range_parse("2001:db8::/33", &r) == 0);
	ip_format(&r.hi, buf, sizeof buf);
	CHECK_STR(buf, "2001:db8:7fff:ffff:ffff:ffff:ffff:ffff");
	CHECK(ip_range_parse("10.0.0.0/9", &r) == 0);
	ip_format(&r.hi, buf, sizeof buf);
	CHECK_STR(buf, "10.127.255.255");

	/* Containment at the exact edges. */
	CHECK(in_range("192.0.2.0/24", "192.0.2.0"));
	CHECK(in_range("192.0.2.0/24", "192.0.2.255"));
	CHECK(!in_range("192.0.2.0/24", "192.0.1.255"));
	CHECK(!in_range("192.0.2.0/24", "192.0.3.0"));
	CHECK(in_range("10.0.0.5-10.0.0.9", "10.0.0.5"));
	CHECK(in_range("10.0.0.5-10.0.0.9", "10.0.0.9"));
	CHECK(!in_range("10.0.0.5-10.0.0.9", "10.0.0.4"));
	CHECK(!in_range("10.0.0.5-10.0.0.9", "10.0.0.10"));
	CHECK(in_range("192.0.2.1/32", "192.0.2.1"));
	CHECK(!in_range("192.0.2.1/32", "192.0.2.2"));
	CHECK(!in_range("192.0.2.1/32", "192.0.2.0"));
	CHECK(in_range("0.0.0.0/0", "0.0.0.0"));
	CHECK(in_range("0.0.0.0/0", "255.255.255.255"));
	CHECK(!in_range("0.0.0.0/0", "::1"));
	CHECK(!in_range("0.0.0.0/0", "::fffe:ffff:ffff"));
	CHECK(!in_range("0.0.0.0/0", "::1:0:0:0"));
	CHECK(in_range("0.0.0.0-255.255.255.255", "::ffff:8.8.8.8"));
	CHECK(in_range("2001:db8::/32", "2001:db8::"));
	CHECK(in_range("2001:db8::/32", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"));
	CHECK(!in_range("2001:db8::/32", "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff"));
	CHECK(!in_range("2001:db8::/32", "2001:db9::"));
	CHECK(in_range("::/0", "::"));
	CHECK(in_range("::/0", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
	CHECK(in_range("::/0", "192.0.2.1")); /* covers the mapped block too */
	CHECK(in_range("::1/128", "::1"));
	CHECK(!in_range("::1/128", "::2"));
	CHECK(!in_range("::1/128", "::"));
	CHECK(!in_range("::2/127", "::1"));
	CHECK(in_range("::2/127", "::3"));
	CHECK(!in_range("::2/127", "::4"));

	/* Invalid entries. */
	CHECK(ip_range_parse("1.2.3.4/33", &r) == -1);
	CHECK(ip_range_parse("::1/129", &r) == -1);
	CHECK(ip_range_parse("::1/1000", &r) == -1);
	CHECK(ip_range_parse("1.2.3.4/0032", &r) == -1);
	CHECK(ip_range_parse("2-1", &r) == -1);
	CHECK(ip_range_parse("10.0.0.9-10.0.0.5", &r) == -1);
	CHECK(ip_range_parse("::5-::1", &r) == -1);
	CHECK(ip_range_parse("1.2.3.4-::1", &r) == -1);
	CHECK(ip_range_parse("::1-1.2.3.4", &r) == -1);
	CHECK(ip_range_parse("::-255.255.255.255", &r) == -1);
	CHECK(ip_range_parse("1.2.3.4/", &r) == -1);
	CHECK(ip_range_parse("/24", &r) == -1);
	CHECK(ip_range_parse("1.2.3.4/24/1", &r) == -1);
	CHECK(ip_range_parse("1.2.3.4/-1", &r) == -1);
	CHECK(ip_range_parse("1.2.3.4/+1", &r) == -1);
	CHECK(ip_range_parse("1.2.3.4/2a", &r) == -1);
	CHECK(ip_range_parse("1.2.3.4/ 24", &r) == -1);
	CHECK(ip_range_parse("1.2.3.4-", &r) == -1);
	CHECK(ip_range_parse("-1.2.3.4", &r) == -1);
	CHECK(ip_range_parse("1.2.3.4-1.2.3.5-1.2.3.6", &r) == -1);
	CHECK(ip_range_parse("1.2.3.4/24-1.2.3.5", &r) == -1);
	CHECK(ip_range_parse("garbage", &r) == -1);
	CHECK(ip_range_parse("", &r) == -1);
	CHECK(ip_range_parse(" 1.2.3.4", &r) == -1);
	CHECK(ip_range_parse("1.2.3.4 ", &r) == -1);
	CHECK(ip_range_parse(NULL, &r) == -1);

	/* A range that is neither one address nor one block. */
	CHECK(ip_range_parse("10.0.0.1-10.0.1.0", &r) == 0);
	CHECK(ip_parse("10.0.0.128", &a) == 0 && ip_range_contains(&r, &a));
	CHECK(ip_range_format(&r, buf, sizeof buf) == strlen("10.0.0.1-10.0.1.0"));
	CHECK_STR(buf, "10.0.0.1-10.0.1.0");
	CHECK(ip_range_format(&r, buf, 5) == 0 && buf[0] == '\0');
}

static void test_sockaddr(void)
{
	struct sockaddr_storage ss;
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
	struct sockaddr_un sun;
	struct ip_addr a;
	uint16_t port = 0;

	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_port = htons(25);
	inet_pton(AF_INET, "192.0.2.1", &sin.sin_addr);
	memset(&ss, 0, sizeof ss);
	memcpy(&ss, &sin, sizeof sin);
	CHECK(ip_from_sockaddr(&ss, &a, &port) == 0);
	CHECK(port == 25 && ip_is_v4(&a));
	ip_format(&a, buf, sizeof buf);
	CHECK_STR(buf, "192.0.2.1");

	memset(&sin6, 0, sizeof sin6);
	sin6.sin6_family = AF_INET6;
	sin6.sin6_port = htons(587);
	inet_pton(AF_INET6, "::ffff:198.51.100.7", &sin6.sin6_addr);
	memcpy(&ss, &sin6, sizeof sin6);
	CHECK(ip_from_sockaddr(&ss, &a, &port) == 0);
	CHECK(port == 587 && ip_is_v4(&a));
	ip_format(&a, buf, sizeof buf);
	CHECK_STR(buf, "198.51.100.7");
	CHECK(in_range("198.51.100.0/24", buf));

	inet_pton(AF_INET6, "2001:db8::25", &sin6.sin6_addr);
	sin6.sin6_port = htons(65535);
	memcpy(&ss, &sin6, sizeof sin6);
	CHECK(ip_from_sockaddr(&ss, &a, NULL) == 0);
	CHECK(ip_from_sockaddr(&ss, &a, &port) == 0 && port == 65535 && !ip_is_v4(&a));
	ip_format(&a, buf, sizeof buf);
	CHECK_STR(buf, "2001:db8::25");

	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	CHECK(ip_from_sockaddr(&sun, &a, &port) == -1);
	CHECK(ip_from_sockaddr(NULL, &a, &port) == -1);
}

int main(void)
{
	test_addresses();
	test_bindings();
	test_ranges();
	test_sockaddr();
	return check_summary("iprange");
}
