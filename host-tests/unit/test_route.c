/* test_route: the next hop of a domain (route_relay, route_smarthost,
 * route_find) over loaded [relay] sections, and route_check's refusal of
 * a relay domain the recipient file does not have, with its FILE:LINE
 * messages; and recipients_is_local_domain, which it asks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "config.h"
#include "recipients.h"
#include "route.h"

static char dir[64];
static char ini[256], rcpt[256];
static char err[4096];
static struct config cfg;

static void write_file(char *path, const char *name, const char *text)
{
	FILE *f;

	snprintf(path, 256, "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
		perror(path);
		exit(2);
	}
}

static struct recipients *rcpts(const char *text)
{
	struct recipients *r;

	write_file(rcpt, "recipients", text);
	r = recipients_load(rcpt, err, sizeof err);
	CHECK(r != NULL);
	return r;
}

static int load(const char *text)
{
	config_free(&cfg);
	write_file(ini, "t.ini", text);
	return config_load(&cfg, ini, err, sizeof err);
}

#define CONN "[connector \"A\"]\nbindings = 127.0.0.1:2525\n"

static void test_lookups(void)
{
	/* Lines: 3 Office, 5 its domains; 6 LMTP, 8 its domains; 9 Up, 11 *. */
	CHECK(load(CONN "[relay \"Office\"]\nhost = 192.0.2.25:25\ndomains = example.org, Sub.Example.org\n"
			"[relay \"Lmtp\"]\nhost = unix:/run/lmtp\ndomains = example.net\n"
			"[relay \"Up\"]\nhost = 192.0.2.1:587\ndomains = *\n") == 0);
	CHECK_STR(err, "");
	CHECK(route_relay(&cfg, "example.org", 11) == 0);
	CHECK(route_relay(&cfg, "EXAMPLE.Org", 11) == 0);
	CHECK(route_relay(&cfg, "sub.example.org", 15) == 0);
	CHECK(route_relay(&cfg, "example.net", 11) == 1);
	/* Exact domains only: no parent, no child, no prefix. */
	CHECK(route_relay(&cfg, "example.com", 11) == -1);
	CHECK(route_relay(&cfg, "x.example.net", 13) == -1);
	CHECK(route_relay(&cfg, "example.or", 10) == -1);
	CHECK(route_relay(&cfg, "example.orgx", 12) == -1);
	/* len counts, not the NUL: a domain inside a longer address. */
	CHECK(route_relay(&cfg, "example.net>", 11) == 1);
	CHECK(route_relay(&cfg, "", 0) == -1);
	/* The smarthost is never a domain's relay: the caller chooses it. */
	CHECK(route_relay(&cfg, "*", 1) == -1);
	CHECK(route_smarthost(&cfg) == 2);
	CHECK(route_find(&cfg, "Office") == 0);
	CHECK(route_find(&cfg, "Up") == 2);
	CHECK(route_find(&cfg, "office") == -1); /* exactly */
	CHECK(route_find(&cfg, "Nope") == -1);

	CHECK(load(CONN) == 0);
	CHECK(route_relay(&cfg, "example.org", 11) == -1);
	CHECK(route_smarthost(&cfg) == -1);
	CHECK(route_find(&cfg, "Office") == -1);
}

static void test_check(void)
{
	struct recipients *r;
	char want[1024];

	r = rcpts("alice@example.org\n@Example.NET catchall\nbob@other.test\n");
	CHECK(recipients_is_local_domain(r, "example.org", 11));
	CHECK(recipients_is_local_domain(r, "EXAMPLE.ORG", 11));
	CHECK(recipients_is_local_domain(r, "example.net", 11));
	CHECK(recipients_is_local_domain(r, "other.test>", 10));
	CHECK(!recipients_is_local_domain(r, "example.com", 11));
	CHECK(!recipients_is_local_domain(r, "alice@example.org", 17)); /* an address is no domain */
	CHECK(!recipients_is_local_domain(r, "catchall", 8));          /* nor a mailbox name */
	CHECK(!recipients_is_local_domain(r, "", 0));
	CHECK(!recipients_is_local_domain(NULL, "example.org", 11));

	/* Every relay domain local; the smarthost has none to check. */
	CHECK(load(CONN "[relay \"Office\"]\nhost = 192.0.2.25:25\ndomains = example.org, EXAMPLE.net\n"
			"[relay \"Up\"]\nhost = 192.0.2.1:587\ndomains = *\n") == 0);
	CHECK(route_check(&cfg, r, err, sizeof err) == 0);
	CHECK_STR(err, "");
	CHECK(load(CONN) == 0);
	CHECK(route_check(&cfg, r, err, sizeof err) == 0);

	/* Each domain that is not local, at its relay's domains line. */
	CHECK(load(CONN "[relay \"Office\"]\nhost = 192.0.2.25:25\ndomains = example.org,\n  example.com, x.example.org\n"
			"[relay \"B\"]\nhost = 192.0.2.26:25\n\ndomains = b.test\n") == 0);
	CHECK(route_check(&cfg, r, err, sizeof err) == -1);
	snprintf(want, sizeof want,
		 "%s:5: relay \"Office\": domain example.com is not a local domain of the recipient file\n"
		 "%s:5: relay \"Office\": domain x.example.org is not a local domain of the recipient file\n"
		 "%s:10: relay \"B\": domain b.test is not a local domain of the recipient file",
		 ini, ini, ini);
	CHECK_STR(err, want);
	/* Cut where the buffer ends, still NUL-terminated; NULL only answers. */
	CHECK(route_check(&cfg, r, err, 20) == -1);
	CHECK(strlen(err) == 19 && strncmp(err, want, 19) == 0);
	CHECK(route_check(&cfg, r, NULL, 0) == -1);
	recipients_unref(r);
}

int main(void)
{
	snprintf(dir, sizeof dir, "/tmp/test_route.XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 2;
	}
	test_lookups();
	test_check();
	config_free(&cfg);
	unlink(ini);
	unlink(rcpt);
	rmdir(dir);
	return check_summary("route");
}
