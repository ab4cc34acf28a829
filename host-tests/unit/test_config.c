/* test_config: INI files written to a temporary directory and loaded:
 * defaults, every key, every error class with its exact text and line,
 * relative paths, comments, continuations, the value parsers' edges,
 * several connectors and the checks across them, the [relay] sections
 * (their keys, password file and the checks across relays), and the
 * show/set field table. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "check.h"
#include "config.h"
#include "tls.h"

static char dir[64];
static char path[256];
static char err[8192];
static struct config cfg;

#define CONN "[connector \"A\"]\nbindings = 127.0.0.1:2525\n"

static void write_file(const char *name, const char *text, size_t len)
{
	FILE *f;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f) {
		perror(path);
		exit(2);
	}
	fwrite(text, 1, len, f);
	fclose(f);
}

/* Loads text as <dir>/t.ini; on success the config stays in cfg until
 * the next load, which frees it. */
static bool loaded;
static void unload(void)
{
	if (loaded)
		config_free(&cfg);
	loaded = false;
}

static int load(const char *text)
{
	int r;

	unload();
	write_file("t.ini", text, strlen(text));
	r = config_load(&cfg, path, err, sizeof err);
	if (r == 0)
		loaded = true;
	else if (cfg.connectors != NULL || cfg.nconnectors != 0 || cfg.relays != NULL || cfg.nrelays != 0)
		r = -99; /* "nothing to free" broken */
	return r;
}

/* "<path>:<suffix>" for each '\n'-separated suffix, as config_load
 * reports them. */
static const char *E(const char *suffixes)
{
	static char out[4][4096];
	static int i;
	char *o = out[i++ & 3];
	const char *s = suffixes;
	size_t n = 0;

	o[0] = '\0';
	while (*s) {
		const char *nl = strchr(s, '\n');
		size_t len = nl ? (size_t)(nl - s) : strlen(s);

		n += (size_t)snprintf(o + n, 4096 - n, "%s%s:%.*s", n ? "\n" : "", path, (int)len, s);
		s += len;
		if (*s == '\n')
			s++;
	}
	return o;
}

static const char *dirpath(const char *name)
{
	static char out[2][300];
	static int i;
	char *o = out[i++ & 1];

	snprintf(o, 300, "%s/%s", dir, name);
	return o;
}

/* The loaded connector i, or a blank one so a failed load makes the
 * checks fail instead of crashing. */
static struct connector_conf *conn_at(unsigned i)
{
	static struct connector_conf blank;

	return cfg.connectors && i < cfg.nconnectors ? &cfg.connectors[i] : &blank;
}
#define C conn_at(0)

static void test_defaults(void)
{
	struct connector_conf *c;
	char host[256] = "";
	char b[300];

	gethostname(host, sizeof host - 1);
	CHECK(load(CONN) == 0);
	CHECK_STR(err, "");
	CHECK(cfg.nconnectors == 1);
	CHECK_STR(cfg.path, path);
	CHECK_STR(cfg.server.hostname, host);
	CHECK(cfg.server.max_connections == 256);
	CHECK_STR(cfg.server.recipients, dirpath("recipients"));
	CHECK_STR(cfg.server.spool, "/var/spool/tarpitd");
	CHECK_STR(cfg.server.user, "");
	CHECK_STR(cfg.server.pidfile, "");
	CHECK(cfg.server.log_syslog);
	CHECK(cfg.server.log_level == LOG_LVL_INFO);
	CHECK(cfg.server.shutdown_timeout == 20);

	c = C;
	CHECK_STR(c->name, "A");
	CHECK(c->line == 1);
	CHECK(c->enabled);
	CHECK(c->nbindings == 1);
	binding_format(&c->bindings[0], b, sizeof b);
	CHECK_STR(b, "127.0.0.1:2525");
	CHECK(c->nranges == 2);
	ip_range_format(&c->ranges[0], b, sizeof b);
	CHECK_STR(b, "0.0.0.0/0");
	ip_range_format(&c->ranges[1], b, sizeof b);
	CHECK_STR(b, "::/0");
	CHECK_STR(c->fqdn, host);
	snprintf(b, sizeof b, "%s ESMTP", host);
	CHECK_STR(c->banner, b);
	CHECK(c->tarpit_interval == 5);
	CHECK(c->tarpit_all_after_unknown);
	CHECK(c->max_message_size == 10485760);
	CHECK(c->max_recipients_per_message == 200);
	CHECK(c->max_inbound_connections == 5000);
	CHECK(c->max_inbound_connections_per_source == 20);
	CHECK(c->connection_timeout == 600);
	CHECK(c->connection_inactivity_timeout == 300);
	CHECK(c->max_protocol_errors == 5);
	CHECK(c->max_unknown_recipients == 20);
	CHECK(c->greeting_delay == 0);
	CHECK(c->pipelining);
	CHECK(c->max_auth_failures == 3);
	CHECK(c->starttls);
	CHECK(!c->require_tls);
	CHECK(c->auth);
	CHECK(c->auth_requires_tls);
	/* No [tls] or [auth]: neither is enabled, and nothing is filled in. */
	CHECK(!cfg.tls.enabled && !cfg.auth.enabled);
	CHECK_STR(cfg.tls.certificate, "");
	CHECK_STR(cfg.auth.users, "");
	CHECK(cfg.tls.max_sessions == 32);
	CHECK(cfg.tls.max_sessions_per_source == 20);
	CHECK(cfg.tls.min_version == 12);
	CHECK(cfg.tls.session_tickets);
	/* No [harvest]: the table is on with SPEC's defaults, no ban command. */
	CHECK(cfg.harvest.enabled);
	CHECK(cfg.harvest.table_size == 1024);
	CHECK(cfg.harvest.threshold == 10);
	CHECK(cfg.harvest.window == 3600);
	CHECK(cfg.harvest.ban_argc == 0);
}

static void test_every_key(void)
{
	struct connector_conf *c;
	char b[128];

	CHECK(load("[server]\n"
		   "hostname = mx.example.org\n"
		   "max_connections = 1000000\n"
		   "recipients = /etc/tarpitd/recipients\n"
		   "spool = var/spool\n"
		   "user = tarpitd\n"
		   "pidfile = /var/run/tarpitd.pid\n"
		   "log = stderr\n"
		   "log_level = debug\n"
		   "\n"
		   "[connector \"Default Frontend\"]\n"
		   "enabled = no\n"
		   "bindings = 0.0.0.0:25, [::]:25\n"
		   "remote_ip_ranges = 192.0.2.0/24, 10.0.0.1 - 10.0.0.9, 2001:db8::/32\n"
		   "fqdn = smtp.example.org\n"
		   "banner = smtp.example.org ESMTP ready\n"
		   "tarpit_interval = 00:10:00\n"
		   "tarpit_all_after_unknown = off\n"
		   "max_message_size = 2GB\n"
		   "max_recipients_per_message = 1000\n"
		   "max_inbound_connections = 1\n"
		   "max_inbound_connections_per_source = 1000000\n"
		   "connection_timeout = 1.00:00:00\n"
		   "connection_inactivity_timeout = 00:00:01\n"
		   "max_protocol_errors = 0\n"
		   "max_unknown_recipients = 1000000\n"
		   "greeting_delay = 00:00:30\n"
		   "pipelining = FALSE\n"
		   "max_auth_failures = 1000\n"
		   "starttls = yes\n"
		   "require_tls = on\n"
		   "auth = no\n"
		   "auth_requires_tls = 0\n"
		   "\n"
		   "[tls]\n"
		   "certificate = /etc/tarpitd/cert.pem\n"
		   "key = tls/key.pem\n"
		   "max_sessions = 1024\n"
		   "[auth]\n"
		   "users = users\n") == 0);
	CHECK_STR(err, "");
	CHECK_STR(cfg.server.hostname, "mx.example.org");
	CHECK(cfg.server.max_connections == 1000000);
	CHECK_STR(cfg.server.recipients, "/etc/tarpitd/recipients");
	CHECK_STR(cfg.server.spool, dirpath("var/spool"));
	CHECK_STR(cfg.server.user, "tarpitd");
	CHECK_STR(cfg.server.pidfile, "/var/run/tarpitd.pid");
	CHECK(!cfg.server.log_syslog);
	CHECK(cfg.server.log_level == LOG_LVL_DEBUG);
	c = C;
	CHECK_STR(c->name, "Default Frontend");
	CHECK(c->line == 11);
	CHECK(!c->enabled);
	CHECK(c->nbindings == 2);
	binding_format(&c->bindings[1], b, sizeof b);
	CHECK_STR(b, "[::]:25");
	CHECK(c->nranges == 3);
	ip_range_format(&c->ranges[1], b, sizeof b);
	CHECK_STR(b, "10.0.0.1-10.0.0.9");
	ip_range_format(&c->ranges[2], b, sizeof b);
	CHECK_STR(b, "2001:db8::/32");
	CHECK_STR(c->fqdn, "smtp.example.org");
	CHECK_STR(c->banner, "smtp.example.org ESMTP ready");
	CHECK(c->tarpit_interval == 600);
	CHECK(!c->tarpit_all_after_unknown);
	CHECK(c->max_message_size == 2147483648u);
	CHECK(c->max_recipients_per_message == 1000);
	CHECK(c->max_inbound_connections == 1);
	CHECK(c->max_inbound_connections_per_source == 1000000);
	CHECK(c->connection_timeout == 86400);
	CHECK(c->connection_inactivity_timeout == 1);
	CHECK(c->max_protocol_errors == 0);
	CHECK(c->max_unknown_recipients == 1000000);
	CHECK(c->greeting_delay == 30);
	CHECK(!c->pipelining);
	CHECK(c->max_auth_failures == 1000);
	CHECK(c->starttls);
	CHECK(c->require_tls);
	CHECK(!c->auth);
	CHECK(!c->auth_requires_tls);
	CHECK(cfg.tls.enabled);
	CHECK_STR(cfg.tls.certificate, "/etc/tarpitd/cert.pem");
	CHECK_STR(cfg.tls.key, dirpath("tls/key.pem"));
	CHECK(cfg.tls.max_sessions == 1024);
	CHECK(cfg.auth.enabled);
	CHECK_STR(cfg.auth.users, dirpath("users"));

	/* fqdn and banner follow [server] hostname wherever it stands. */
	CHECK(load(CONN "[server]\nhostname = late.example.org\nlog = syslog\nlog_level = error\n") == 0);
	CHECK_STR(C->fqdn, "late.example.org");
	CHECK_STR(C->banner, "late.example.org ESMTP");
	CHECK(cfg.server.log_syslog && cfg.server.log_level == LOG_LVL_ERROR);
	CHECK(load(CONN "fqdn = a.example\n") == 0);
	CHECK_STR(C->banner, "a.example ESMTP");
	CHECK(load(CONN "fqdn =\nbanner =\n[server]\nhostname = h.example\n") == 0);
	CHECK_STR(C->fqdn, "h.example");
	CHECK_STR(C->banner, "h.example ESMTP");
	/* inih's name: value form. */
	CHECK(load(CONN "max_protocol_errors: 7\n") == 0);
	CHECK(C->max_protocol_errors == 7);
	CHECK(load(CONN "pidfile = \n") == -1);
	CHECK(load("[server]\npidfile =\nuser =\n" CONN) == 0);
	CHECK_STR(cfg.server.pidfile, "");
	CHECK_STR(cfg.server.user, "");
	CHECK(load("[server]\nlog_level = warning\n" CONN) == 0);
	CHECK(cfg.server.log_level == LOG_LVL_WARNING);
	CHECK(load("[server]\nlog_level = notice\n" CONN) == 0);
	CHECK(cfg.server.log_level == LOG_LVL_NOTICE);
}

static void test_errors(void)
{
	/* Structure. */
	CHECK(load("[server]\n") == -1);
	CHECK_STR(err, E(" no [connector \"NAME\"] section"));
	CHECK(load("") == -1);
	CHECK_STR(err, E(" no [connector \"NAME\"] section"));
	CHECK(load(CONN "[connector \"A\"]\n") == -1);
	CHECK_STR(err, E("3: duplicate connector name 'A' (first at line 1)"));
	CHECK(load(CONN "\n[harvest]\ntable_size = 1024\n[harvest]\n") == -1);
	CHECK_STR(err, E("6: [harvest] appears twice (first at line 4)"));
	CHECK(load(CONN "[bogus]\nx = 1\n") == -1);
	CHECK_STR(err, E("3: unknown section [bogus]"));
	CHECK(load(CONN "[server \"x\"]\n") == -1);
	CHECK_STR(err, E("3: unknown section [server \"x\"]"));
	CHECK(load(CONN "[server\n") == -1);
	CHECK_STR(err, E("3: missing ']' in section header"));
	CHECK(load(CONN "[server] x\n") == -1);
	CHECK_STR(err, E("3: unexpected text after ']'"));
	CHECK(load("[server]\n[server]\n" CONN) == -1);
	CHECK_STR(err, E("2: [server] appears twice (first at line 1)"));
	CHECK(load("x = 1\n" CONN) == -1);
	CHECK_STR(err, E("1: key 'x' outside any section"));
	CHECK(load(CONN "just words\n") == -1);
	CHECK_STR(err, E("3: expected 'key = value'"));
	CHECK(load(CONN "= 5\n") == -1);
	CHECK_STR(err, E("3: missing key name before '='"));

	/* Connector names: a bad header is reported once, not again as a
	 * missing connector. */
	CHECK(load("[connector]\nbindings = 127.0.0.1:25\n") == -1);
	CHECK_STR(err, E("1: connector name must be quoted: [connector \"NAME\"]"));
	CHECK(load("[connector Frontend]\n") == -1);
	CHECK_STR(err, E("1: connector name must be quoted: [connector \"NAME\"]"));
	CHECK(load("[connector \"A\" x]\n") == -1);
	CHECK_STR(err, E("1: connector name must be quoted: [connector \"NAME\"]"));
	CHECK(load("[connector \"\"]\n") == -1);
	CHECK_STR(err, E("1: empty connector name"));
	CHECK(load("[connector \"A]\n") == -1);
	CHECK_STR(err, E("1: missing ']' in section header"));
	CHECK(load("[connector \"a\\b\"]\n") == -1);
	CHECK_STR(err, E("1: connector name may hold only printable ASCII other than '\"' and '\\'"));
	CHECK(load("[connector \"a\tb\"]\n") == -1);
	CHECK_STR(err, E("1: connector name may hold only printable ASCII other than '\"' and '\\'"));
	CHECK(load("[connector \"0123456789012345678901234567890123456789012345678901234567890123\"]\n") == -1);
	CHECK_STR(err, E("1: connector name longer than 63 octets"));
	CHECK(load("[connector \"012345678901234567890123456789012345678901234567890123456789012\"]\n"
		   "bindings = 127.0.0.1:25\n") == 0);
	CHECK(strlen(C->name) == 63);
	CHECK(load("[ connector  \"Trusted ; # hosts\" ] ; comment\nbindings = 127.0.0.1:25\n") == 0);
	CHECK_STR(C->name, "Trusted ; # hosts");

	/* Keys. */
	CHECK(load(CONN "bogus = 1\n") == -1);
	CHECK_STR(err, E("3: unknown key 'bogus' in [connector \"A\"]"));
	CHECK(load("[server]\nEnabled = yes\n" CONN) == -1);
	CHECK_STR(err, E("2: unknown key 'Enabled' in [server]"));
	CHECK(load(CONN "max_auth_failures = 3\nstarttls = yes\nrequire_tls = no\nauth = yes\n"
			"auth_requires_tls = yes\n") == 0);
	CHECK(load(CONN "\nenabled = yes\nenabled = no\n") == -1);
	CHECK_STR(err, E("5: duplicate key 'enabled' (first at line 4)"));
	CHECK(load(CONN "bindings = 127.0.0.1:25\n") == -1);
	CHECK_STR(err, E("3: duplicate key 'bindings' (first at line 2)"));

	/* Values. */
	CHECK(load(CONN "tarpit_interval = 00:11:00\n") == -1);
	CHECK_STR(err, E("3: tarpit_interval: 00:11:00 is above the maximum 00:10:00"));
	CHECK(load(CONN "tarpit_interval = 1.00:00:00\n") == -1);
	CHECK_STR(err, E("3: tarpit_interval: 1.00:00:00 is above the maximum 00:10:00"));
	CHECK(load(CONN "tarpit_interval = abc\n") == -1);
	CHECK_STR(err, E("3: tarpit_interval: 'abc' is not a TimeSpan ([d.]hh:mm:ss)"));
	CHECK(load(CONN "tarpit_interval = 99999999999999999999.00:00:00\n") == -1);
	CHECK_STR(err, E("3: tarpit_interval: 99999999999999999999.00:00:00 is above the maximum 00:10:00"));
	CHECK(load(CONN "connection_timeout = 00:00:00\n") == -1);
	CHECK_STR(err, E("3: connection_timeout: 00:00:00 is below the minimum 00:00:01"));
	CHECK(load(CONN "connection_timeout = 0\n") == -1);
	CHECK_STR(err, E("3: connection_timeout: 0 is below the minimum 00:00:01"));
	CHECK(load(CONN "connection_timeout = 1.00:00:01\n") == -1);
	CHECK_STR(err, E("3: connection_timeout: 1.00:00:01 is above the maximum 1.00:00:00"));
	CHECK(load(CONN "connection_inactivity_timeout = 2.00:00:00\n") == -1);
	CHECK_STR(err, E("3: connection_inactivity_timeout: 2.00:00:00 is above the maximum 1.00:00:00"));
	CHECK(load("[server]\nshutdown_timeout = 00:10:00\n" CONN) == 0 && cfg.server.shutdown_timeout == 600);
	CHECK(load("[server]\nshutdown_timeout = 00:00:01\n" CONN) == 0 && cfg.server.shutdown_timeout == 1);
	CHECK(load("[server]\nshutdown_timeout = 00:00:00\n" CONN) == -1);
	CHECK_STR(err, E("2: shutdown_timeout: 00:00:00 is below the minimum 00:00:01"));
	CHECK(load("[server]\nshutdown_timeout = 00:10:01\n" CONN) == -1);
	CHECK_STR(err, E("2: shutdown_timeout: 00:10:01 is above the maximum 00:10:00"));
	CHECK(load(CONN "greeting_delay = 00:10:01\n") == -1);
	CHECK_STR(err, E("3: greeting_delay: 00:10:01 is above the maximum 00:10:00"));
	CHECK(load(CONN "max_recipients_per_message = 0\n") == -1);
	CHECK_STR(err, E("3: max_recipients_per_message: 0 is below the minimum 1"));
	CHECK(load(CONN "max_recipients_per_message = 1001\n") == -1);
	CHECK_STR(err, E("3: max_recipients_per_message: 1001 is above the maximum 1000"));
	CHECK(load(CONN "max_recipients_per_message = 99999999999999999999999\n") == -1);
	CHECK_STR(err, E("3: max_recipients_per_message: 99999999999999999999999 is above the maximum 1000"));
	CHECK(load(CONN "max_recipients_per_message = -1\n") == -1);
	CHECK_STR(err, E("3: max_recipients_per_message: '-1' is not a number"));
	CHECK(load(CONN "max_protocol_errors = 1000001\n") == -1);
	CHECK_STR(err, E("3: max_protocol_errors: 1000001 is above the maximum 1000000"));
	CHECK(load("[server]\nmax_connections = 0\n" CONN) == -1);
	CHECK_STR(err, E("2: max_connections: 0 is below the minimum 1"));
	CHECK(load(CONN "max_message_size = 3GB\n") == -1);
	CHECK_STR(err, E("3: max_message_size: 3GB is above the maximum 2GB"));
	CHECK(load(CONN "max_message_size = 1023\n") == -1);
	CHECK_STR(err, E("3: max_message_size: 1023 is below the minimum 1KB"));
	CHECK(load(CONN "max_message_size = 99999999999999999999GB\n") == -1);
	CHECK_STR(err, E("3: max_message_size: 99999999999999999999GB is above the maximum 2GB"));
	CHECK(load(CONN "max_message_size = 1.5MB\n") == -1);
	CHECK_STR(err, E("3: max_message_size: '1.5MB' is not a size (bytes, or a number with KB, MB or GB)"));
	CHECK(load(CONN "enabled = maybe\n") == -1);
	CHECK_STR(err, E("3: enabled: 'maybe' is not a boolean (yes/no, true/false, on/off, 1/0)"));
	CHECK(load(CONN "fqdn = a b\n") == -1);
	CHECK_STR(err, E("3: fqdn: 'a b' must be printable ASCII without spaces, at most 255 octets"));
	CHECK(load(CONN "banner = caf\xc3\xa9\n") == -1);
	CHECK_STR(err, E("3: banner: 'caf?\?' must be printable ASCII, at most 255 octets"));
	CHECK(load("[server]\nhostname = a\x01z\n" CONN) == -1);
	CHECK_STR(err, E("2: hostname: 'a?z' must be printable ASCII without spaces, at most 255 octets"));
	CHECK(load("[server]\nlog = file\n" CONN) == -1);
	CHECK_STR(err, E("2: log: 'file' must be syslog or stderr"));
	CHECK(load("[server]\nlog_level = loud\n" CONN) == -1);
	CHECK_STR(err, E("2: log_level: 'loud' must be error, warning, notice, info or debug"));
	CHECK(load("[server]\nuser = -root\n" CONN) == -1);
	CHECK_STR(err, E("2: user: '-root' is not a valid user name"));
	CHECK(load("[server]\nuser = a b\n" CONN) == -1);
	CHECK_STR(err, E("2: user: 'a b' is not a valid user name"));
	CHECK(load("[server]\nrecipients =\n" CONN) == -1);
	CHECK_STR(err, E("2: recipients: empty path"));
	CHECK(load("[server]\nspool = a\tb\n" CONN) == -1);
	CHECK_STR(err, E("2: spool: path holds control characters"));

	/* Lists. */
	CHECK(load("[connector \"A\"]\nenabled = yes\n") == -1);
	CHECK_STR(err, E("1: bindings: at least one ip:port is required"));
	CHECK(load("[connector \"A\"]\nbindings =\n") == -1);
	CHECK_STR(err, E("2: bindings: at least one ip:port is required"));
	CHECK(load("[connector \"A\"]\nbindings = 127.0.0.1:25, ::1:25\n") == -1);
	CHECK_STR(err, E("2: bindings: '::1:25' is not ip:port or [ipv6]:port"));
	CHECK(load("[connector \"A\"]\nbindings = 127.0.0.1:25,, [::1]:25\n") == -1);
	CHECK_STR(err, E("2: bindings: empty entry"));
	CHECK(load("[connector \"A\"]\nbindings = 127.0.0.1:25, 127.0.0.1:25\n") == -1);
	CHECK_STR(err, E("2: bindings: 127.0.0.1:25 is listed twice"));
	CHECK(load("[connector \"A\"]\nbindings = 127.0.0.1:1,127.0.0.1:2,127.0.0.1:3,127.0.0.1:4,"
		   "127.0.0.1:5,127.0.0.1:6,127.0.0.1:7,127.0.0.1:8,\n"
		   " 127.0.0.1:9,127.0.0.1:10,127.0.0.1:11,127.0.0.1:12,127.0.0.1:13,127.0.0.1:14,"
		   "127.0.0.1:15,127.0.0.1:16\n") == 0);
	CHECK(C->nbindings == CONF_MAX_BINDINGS);
	CHECK(load("[connector \"A\"]\nbindings = 127.0.0.1:1,127.0.0.1:2,127.0.0.1:3,127.0.0.1:4,"
		   "127.0.0.1:5,127.0.0.1:6,127.0.0.1:7,127.0.0.1:8,\n"
		   " 127.0.0.1:9,127.0.0.1:10,127.0.0.1:11,127.0.0.1:12,127.0.0.1:13,127.0.0.1:14,"
		   "127.0.0.1:15,127.0.0.1:16,127.0.0.1:17\n") == -1);
	CHECK_STR(err, E("3: bindings: more than 16 entries"));
	CHECK(load(CONN "remote_ip_ranges = 10.0.0.0/8, 1.2.3.4/33\n") == -1);
	CHECK_STR(err, E("3: remote_ip_ranges: '1.2.3.4/33' is not an address, a CIDR block or a range a-b"));
	CHECK(load(CONN "remote_ip_ranges = 1.2.3.4-::1\n") == -1);
	CHECK_STR(err, E("3: remote_ip_ranges: '1.2.3.4-::1' is not an address, a CIDR block or a range a-b"));
	CHECK(load(CONN "remote_ip_ranges =\n") == -1);
	CHECK_STR(err, E("3: remote_ip_ranges: at least one entry is required"));

	/* All errors, in file order, then the checks made at the end. */
	CHECK(load("[server]\nmax_connections = x\nbogus = 1\n[connector \"A\"]\n"
		   "tarpit_interval = 00:60:00\nmax_recipients_per_message = 5000\n") == -1);
	CHECK_STR(err, E("2: max_connections: 'x' is not a number\n"
			 "3: unknown key 'bogus' in [server]\n"
			 "5: tarpit_interval: '00:60:00' is not a TimeSpan ([d.]hh:mm:ss)\n"
			 "6: max_recipients_per_message: 5000 is above the maximum 1000\n"
			 "4: bindings: at least one ip:port is required"));

	/* Keys of a refused section are not reported once more. */
	CHECK(load(CONN "[harvest]\nthreshold = 10\n[harvest]\nbogus = y\n") == -1);
	CHECK_STR(err, E("5: [harvest] appears twice (first at line 3)"));

	/* A value quoted back is cut and made printable. */
	CHECK(load(CONN "enabled = 0123456789012345678901234567890123456789012345678901234567890123456789\n") == -1);
	CHECK_STR(err, E("3: enabled: '012345678901234567890123456789012345678901234567890123456789...' "
			 "is not a boolean (yes/no, true/false, on/off, 1/0)"));

	/* Missing and unreadable files. */
	unload();
	snprintf(path, sizeof path, "%s/missing.ini", dir);
	CHECK(config_load(&cfg, path, err, sizeof err) == -1);
	CHECK_STR(err, E(" cannot open: No such file or directory"));
	CHECK(cfg.connectors == NULL);
	snprintf(path, sizeof path, "%s", dir);
	CHECK(config_load(&cfg, path, err, sizeof err) == -1);
	CHECK_STR(err, E(" is a directory, not a regular file"));
	CHECK(config_load(&cfg, NULL, err, sizeof err) == -1);
	CHECK(err[0] != '\0');

	/* The error text is cut to errlen, still terminated. */
	{
		char small[60];

		CHECK(load("[server]\nbogus = 1\nbogus2 = 2\n") == -1);
		memset(small, 'Z', sizeof small);
		CHECK(config_load(&cfg, path, small, sizeof small) == -1);
		CHECK(strlen(small) == sizeof small - 1);
		CHECK(strncmp(small, err, sizeof small - 1) == 0);
		CHECK(strlen(err) > sizeof small);
		CHECK(config_load(&cfg, path, small, 1) == -1);
		CHECK(small[0] == '\0');
		CHECK(config_load(&cfg, path, NULL, 0) == -1);
	}
}

static void test_syntax(void)
{
	char text[1024];
	size_t i;

	/* Comments: at line start, and inline after whitespace only. */
	CHECK(load("; comment\n# comment\n   ; indented comment\n"
		   "[server] # after a header\n"
		   "hostname = h.example ; inline\n"
		   "[connector \"A\"] ; x\n"
		   "bindings = 127.0.0.1:25 # inline\n"
		   "banner = a;b#c\n") == 0);
	CHECK_STR(cfg.server.hostname, "h.example");
	CHECK_STR(C->banner, "a;b#c");
	CHECK(load(CONN "banner = hello world\t; the rest\n") == 0);
	CHECK_STR(C->banner, "hello world");
	CHECK(load(CONN "banner = # all comment\n") == 0);
	CHECK(strstr(C->banner, " ESMTP") != NULL);
	/* Without the space "#" would be the value's first octet; `tarpitd
	 * set` writes "key = value", so such a value could not be written
	 * back (found by fuzz_config's round trip). */
	CHECK(load("[server]\nhostname =#mx.example\n[connector \"A\"]\nbindings = 127.0.0.1:25\n") == -1);
	CHECK_STR(err, E("2: hostname: '#mx.example' starts with '#', which reads as a comment after 'key = '"));
	CHECK(load(CONN "banner=;hi\n") == -1);
	CHECK_STR(err, E("3: banner: ';hi' starts with ';', which reads as a comment after 'key = '"));

	/* CRLF line ends and a UTF-8 BOM. */
	CHECK(load("\xef\xbb\xbf[server]\r\nhostname = crlf.example\r\n\r\n[connector \"A\"]\r\n"
		   "bindings = 127.0.0.1:25\r\nbogus = 1\r\n") == -1);
	CHECK_STR(err, E("6: unknown key 'bogus' in [connector \"A\"]"));
	CHECK(load("\xef\xbb\xbf[server]\r\nhostname = crlf.example\r\n[connector \"A\"]\r\n"
		   "bindings = 127.0.0.1:25") == 0);
	CHECK_STR(cfg.server.hostname, "crlf.example");

	/* Continuation lines for the two lists. */
	CHECK(load("[connector \"A\"]\n"
		   "bindings =\n"
		   "    127.0.0.1:25,\n"
		   "\t[::1]:25\n"
		   "remote_ip_ranges = 10.0.0.0/8,\n"
		   "    ; a comment between\n"
		   "\n"
		   "    192.168.0.0/16, 172.16.0.0/12  # private\n"
		   "    ::1\n"
		   "enabled = yes\n") == 0);
	CHECK(C->nbindings == 2);
	CHECK(C->nranges == 4);
	CHECK(load(CONN "fqdn = a.example\n  b.example\n") == -1);
	CHECK_STR(err, E("4: indented line continues 'fqdn', which takes a single value"));
	CHECK(load(CONN "remote_ip_ranges = 10.0.0.0/8\n  bogus\n") == -1);
	CHECK_STR(err, E("4: remote_ip_ranges: 'bogus' is not an address, a CIDR block or a range a-b"));
	/* Indented keys right after a header are ordinary keys. */
	CHECK(load("[connector \"A\"]\n   bindings = 127.0.0.1:25\n") == 0);
	/* ... but after a key they continue it, as in Python's configparser. */
	CHECK(load("[connector \"A\"]\nbindings = 127.0.0.1:25\n   enabled = no\n") == -1);
	CHECK_STR(err, E("3: bindings: 'enabled = no' is not ip:port or [ipv6]:port"));

	/* A line longer than inih's buffer is refused whole, and the lines
	 * after it keep their numbers. */
	i = (size_t)snprintf(text, sizeof text, "%s", CONN "banner = ");
	memset(text + i, 'x', 300);
	i += 300;
	memcpy(text + i, "\nbogus = 1\n", 12);
	CHECK(load(text) == -1);
	CHECK(strncmp(err, E("3: line too long (more than "), strlen(E("3: line too long (more than "))) == 0);
	CHECK(strstr(err, E("4: unknown key 'bogus' in [connector \"A\"]")) != NULL);
	/* So is a NUL octet. */
	unload();
	write_file("t.ini", CONN "fqdn = a\0b\nbogus = 1\n", sizeof CONN - 1 + 21);
	CHECK(config_load(&cfg, path, err, sizeof err) == -1);
	CHECK_STR(err, E("3: NUL octet in line\n4: unknown key 'bogus' in [connector \"A\"]"));
}

static void test_paths(void)
{
	char cwd[512];

	CHECK(load("[server]\nrecipients = /abs/rcpt\nspool = /abs/spool\n" CONN) == 0);
	CHECK_STR(cfg.server.recipients, "/abs/rcpt");
	CHECK_STR(cfg.server.spool, "/abs/spool");
	CHECK(load("[server]\nrecipients = rcpt\nspool = /abs/spool\npidfile = run/t.pid\n" CONN) == 0);
	CHECK_STR(cfg.server.recipients, dirpath("rcpt"));
	CHECK_STR(cfg.server.pidfile, dirpath("run/t.pid"));
	CHECK(load("[server]\nrecipients = rcpt\nspool = sp/ool\n" CONN) == 0);
	CHECK_STR(cfg.server.spool, dirpath("sp/ool"));
	CHECK(load("[server]\nrecipients = rcpt\nspool = /abs/spool\n" CONN) == 0);

	/* An INI file named without a '/' sits in the current directory. */
	unload();
	CHECK(getcwd(cwd, sizeof cwd) != NULL);
	CHECK(chdir(dir) == 0);
	CHECK(config_load(&cfg, "t.ini", err, sizeof err) == 0);
	CHECK_STR(cfg.server.recipients, "rcpt");
	config_free(&cfg);
	CHECK(config_load(&cfg, "./t.ini", err, sizeof err) == 0);
	CHECK_STR(cfg.server.recipients, "./rcpt");
	CHECK_STR(cfg.server.spool, "/abs/spool");
	config_free(&cfg);
	CHECK(chdir(cwd) == 0);
	CHECK(load(CONN) == 0);
}

static void test_timespan(void)
{
	uint32_t v = 77;
	char b[32];

	CHECK(parse_timespan("00:00:05", &v) == 0 && v == 5);
	CHECK(parse_timespan("0.00:09:00", &v) == 0 && v == 540);
	CHECK(parse_timespan("00:10:00", &v) == 0 && v == 600);
	CHECK(parse_timespan("1.00:00:00", &v) == 0 && v == 86400);
	CHECK(parse_timespan("23:59:59", &v) == 0 && v == 86399);
	CHECK(parse_timespan("2.03:04:05", &v) == 0 && v == 2 * 86400 + 3 * 3600 + 4 * 60 + 5);
	CHECK(parse_timespan("0", &v) == 0 && v == 0);
	CHECK(parse_timespan("0:0:5", &v) == 0 && v == 5);
	CHECK(parse_timespan("49710.06:28:15", &v) == 0 && v == 4294967295u);
	v = 77;
	CHECK(parse_timespan("49710.06:28:16", &v) == -1);
	CHECK(parse_timespan("49711.00:00:00", &v) == -1);
	CHECK(parse_timespan("99999999999999999999.00:00:00", &v) == -1);
	CHECK(parse_timespan("24:00:00", &v) == -1);
	CHECK(parse_timespan("00:60:00", &v) == -1);
	CHECK(parse_timespan("00:00:60", &v) == -1);
	CHECK(parse_timespan("000:00:05", &v) == -1);
	CHECK(parse_timespan("00:00", &v) == -1);
	CHECK(parse_timespan("00:00:05:00", &v) == -1);
	CHECK(parse_timespan("5", &v) == -1);
	CHECK(parse_timespan("00", &v) == -1);
	CHECK(parse_timespan("", &v) == -1);
	CHECK(parse_timespan("-00:00:05", &v) == -1);
	CHECK(parse_timespan("+00:00:05", &v) == -1);
	CHECK(parse_timespan(" 00:00:05", &v) == -1);
	CHECK(parse_timespan("00:00:05 ", &v) == -1);
	CHECK(parse_timespan(".00:00:05", &v) == -1);
	CHECK(parse_timespan("1..00:00:05", &v) == -1);
	CHECK(parse_timespan("1.2.00:00:05", &v) == -1);
	CHECK(parse_timespan("00:00:05.5", &v) == -1);
	CHECK(parse_timespan("00:-1:05", &v) == -1);
	CHECK(parse_timespan("a0:00:05", &v) == -1);
	CHECK(parse_timespan(NULL, &v) == -1);
	CHECK(v == 77);

	CHECK(format_timespan(0, b, sizeof b) == 8);
	CHECK_STR(b, "00:00:00");
	format_timespan(5, b, sizeof b);
	CHECK_STR(b, "00:00:05");
	format_timespan(600, b, sizeof b);
	CHECK_STR(b, "00:10:00");
	format_timespan(86399, b, sizeof b);
	CHECK_STR(b, "23:59:59");
	format_timespan(86400, b, sizeof b);
	CHECK_STR(b, "1.00:00:00");
	format_timespan(4294967295u, b, sizeof b);
	CHECK_STR(b, "49710.06:28:15");
	CHECK(parse_timespan(b, &v) == 0 && v == 4294967295u);
	CHECK(format_timespan(5, b, 8) == 0 && b[0] == '\0');
	CHECK(format_timespan(5, b, 9) == 8);
}

static void test_size_bool_uint(void)
{
	uint64_t s = 77;
	uint32_t u = 77;
	bool b = false;

	CHECK(parse_size("10MB", &s) == 0 && s == 10485760);
	CHECK(parse_size("512 KB", &s) == 0 && s == 524288);
	CHECK(parse_size("512   kb", &s) == 0 && s == 524288);
	CHECK(parse_size("1048576", &s) == 0 && s == 1048576);
	CHECK(parse_size("1gb", &s) == 0 && s == 1073741824);
	CHECK(parse_size("1Gb", &s) == 0 && s == 1073741824);
	CHECK(parse_size("10mB", &s) == 0 && s == 10485760);
	CHECK(parse_size("100B", &s) == 0 && s == 100);
	CHECK(parse_size("0", &s) == 0 && s == 0);
	CHECK(parse_size("18446744073709551615", &s) == 0 && s == UINT64_MAX);
	CHECK(parse_size("17179869183GB", &s) == 0 && s == 17179869183ull * 1073741824ull);
	s = 77;
	CHECK(parse_size("17179869184GB", &s) == -1);
	CHECK(parse_size("18446744073709551616", &s) == -1);
	CHECK(parse_size("18014398509481984KB", &s) == -1);
	CHECK(parse_size("", &s) == -1);
	CHECK(parse_size("-1", &s) == -1);
	CHECK(parse_size("+1", &s) == -1);
	CHECK(parse_size("10 M", &s) == -1);
	CHECK(parse_size("10M", &s) == -1);
	CHECK(parse_size("1.5MB", &s) == -1);
	CHECK(parse_size("MB", &s) == -1);
	CHECK(parse_size("10 ", &s) == -1);
	CHECK(parse_size(" 10", &s) == -1);
	CHECK(parse_size("10MB ", &s) == -1);
	CHECK(parse_size("10MBx", &s) == -1);
	CHECK(parse_size("10KBB", &s) == -1);
	CHECK(parse_size("1TB", &s) == -1);
	CHECK(parse_size("0x10", &s) == -1);
	CHECK(parse_size(NULL, &s) == -1);
	CHECK(s == 77);

	CHECK(parse_bool("yes", &b) == 0 && b);
	CHECK(parse_bool("no", &b) == 0 && !b);
	CHECK(parse_bool("TRUE", &b) == 0 && b);
	CHECK(parse_bool("False", &b) == 0 && !b);
	CHECK(parse_bool("On", &b) == 0 && b);
	CHECK(parse_bool("OFF", &b) == 0 && !b);
	CHECK(parse_bool("1", &b) == 0 && b);
	CHECK(parse_bool("0", &b) == 0 && !b);
	CHECK(parse_bool("YeS", &b) == 0 && b);
	b = true;
	CHECK(parse_bool("", &b) == -1);
	CHECK(parse_bool("y", &b) == -1);
	CHECK(parse_bool("2", &b) == -1);
	CHECK(parse_bool("yes ", &b) == -1);
	CHECK(parse_bool("nope", &b) == -1);
	CHECK(parse_bool("00", &b) == -1);
	CHECK(parse_bool(NULL, &b) == -1);
	CHECK(b);

	CHECK(parse_uint("0", 0, 10, &u) == 0 && u == 0);
	CHECK(parse_uint("10", 0, 10, &u) == 0 && u == 10);
	CHECK(parse_uint("007", 0, 10, &u) == 0 && u == 7);
	CHECK(parse_uint("4294967295", 0, UINT32_MAX, &u) == 0 && u == UINT32_MAX);
	u = 77;
	CHECK(parse_uint("11", 0, 10, &u) == -1);
	CHECK(parse_uint("0", 1, 10, &u) == -1);
	CHECK(parse_uint("4294967296", 0, UINT32_MAX, &u) == -1);
	CHECK(parse_uint("99999999999999999999999", 0, UINT32_MAX, &u) == -1);
	CHECK(parse_uint("", 0, 10, &u) == -1);
	CHECK(parse_uint("-1", 0, 10, &u) == -1);
	CHECK(parse_uint("+1", 0, 10, &u) == -1);
	CHECK(parse_uint(" 1", 0, 10, &u) == -1);
	CHECK(parse_uint("1 ", 0, 10, &u) == -1);
	CHECK(parse_uint("1a", 0, 10, &u) == -1);
	CHECK(parse_uint(NULL, 0, 10, &u) == -1);
	CHECK(u == 77);

	/* Valid near the edges through the file, too. */
	CHECK(load(CONN "tarpit_interval = 0.00:09:00\nmax_message_size = 1KB\n"
			"connection_timeout = 0.23:59:59\ngreeting_delay = 0\n"
			"tarpit_interval_x = 1\n") == -1);
	CHECK_STR(err, E("7: unknown key 'tarpit_interval_x' in [connector \"A\"]"));
	CHECK(load(CONN "tarpit_interval = 0.00:09:00\nmax_message_size = 1 kb\n"
			"connection_timeout = 0.23:59:59\ngreeting_delay = 0\n") == 0);
	CHECK(C->tarpit_interval == 540);
	CHECK(C->max_message_size == 1024);
	CHECK(C->connection_timeout == 86399);
	CHECK(C->greeting_delay == 0);
	CHECK(load(CONN "tarpit_interval = 0\nmax_message_size = 2147483648\n") == 0);
	CHECK(C->tarpit_interval == 0);
	CHECK(C->max_message_size == 2147483648u);
}

static void test_connectors(void)
{
	char b[300], text[8192];
	size_t n;
	int i;

	CHECK(load("[server]\nhostname = h.example\n"
		   "[connector \"Default Frontend\"]\n"
		   "bindings = 127.0.0.1:25\n"
		   "\n"
		   "[connector \"Trusted\"]\n"
		   "bindings = 127.0.0.1:26\n"
		   "remote_ip_ranges = 10.0.0.0/8\n"
		   "tarpit_interval = 0\n"
		   "fqdn = t.example\n"
		   "[connector \"Off\"]\n"
		   "enabled = no\n"
		   "bindings = 127.0.0.1:25\n") == 0);
	CHECK_STR(err, "");
	CHECK(cfg.nconnectors == 3);
	CHECK_STR(conn_at(0)->name, "Default Frontend");
	CHECK(conn_at(0)->line == 3);
	CHECK(conn_at(0)->tarpit_interval == 5);
	CHECK(conn_at(0)->nranges == 2);
	CHECK_STR(conn_at(0)->fqdn, "h.example");
	CHECK_STR(conn_at(1)->name, "Trusted");
	CHECK(conn_at(1)->line == 6);
	CHECK(conn_at(1)->tarpit_interval == 0);
	CHECK(conn_at(1)->nranges == 1);
	ip_range_format(&conn_at(1)->ranges[0], b, sizeof b);
	CHECK_STR(b, "10.0.0.0/8");
	CHECK_STR(conn_at(1)->fqdn, "t.example");
	CHECK_STR(conn_at(1)->banner, "t.example ESMTP");
	CHECK_STR(conn_at(2)->name, "Off");
	CHECK(!conn_at(2)->enabled);
	/* Disabled: its default ranges repeat the first connector's on the
	 * same binding, and that is no error. */
	CHECK(conn_at(2)->nranges == 2);

	/* Each connector has its own duplicate-key memory. */
	CHECK(load(CONN "tarpit_interval = 0\n[connector \"B\"]\nbindings = 127.0.0.1:26\n"
			"tarpit_interval = 00:00:09\n") == 0);
	CHECK(conn_at(0)->tarpit_interval == 0 && conn_at(1)->tarpit_interval == 9);

	/* Names are compared without regard to case; the duplicate's keys
	 * are not reported again. */
	CHECK(load(CONN "\n[connector \"a\"]\nbindings = 127.0.0.1:26\nbogus = 1\n") == -1);
	CHECK_STR(err, E("4: duplicate connector name 'a' (first at line 1)"));
	CHECK(load("[connector \"Default Frontend\"]\nbindings = 127.0.0.1:25\n"
		   "[connector \"B\"]\nbindings = 127.0.0.1:26\n"
		   "[connector \"DEFAULT FRONTEND\"]\nbindings = 127.0.0.1:27\n") == -1);
	CHECK_STR(err, E("5: duplicate connector name 'DEFAULT FRONTEND' (first at line 1)"));

	/* A later connector without bindings, and errors in two connectors,
	 * in file order, then the end checks. */
	CHECK(load(CONN "[connector \"B\"]\nenabled = yes\n") == -1);
	CHECK_STR(err, E("3: bindings: at least one ip:port is required"));
	CHECK(load(CONN "bogus = 1\n[connector \"B\"]\nfrob = 2\n") == -1);
	CHECK_STR(err, E("3: unknown key 'bogus' in [connector \"A\"]\n"
			 "5: unknown key 'frob' in [connector \"B\"]\n"
			 "4: bindings: at least one ip:port is required"));
	/* A key after [server] is not taken for the connector before it. */
	CHECK(load(CONN "[server]\nbindings = 127.0.0.1:25\n") == -1);
	CHECK_STR(err, E("4: unknown key 'bindings' in [server]"));

	/* At most CONF_MAX_CONNECTORS. */
	n = 0;
	for (i = 0; i < CONF_MAX_CONNECTORS + 1; i++)
		n += (size_t)snprintf(text + n, sizeof text - n, "[connector \"c%d\"]\nbindings = 127.0.0.1:%d\n",
				      i, 1000 + i);
	CHECK(load(text) == -1);
	snprintf(b, sizeof b, "%d: more than %d connectors", 2 * CONF_MAX_CONNECTORS + 1, CONF_MAX_CONNECTORS);
	CHECK_STR(err, E(b));
	text[n - strlen("[connector \"c64\"]\nbindings = 127.0.0.1:1064\n")] = '\0';
	CHECK(load(text) == 0);
	CHECK(cfg.nconnectors == CONF_MAX_CONNECTORS);
	CHECK_STR(conn_at(CONF_MAX_CONNECTORS - 1)->name, "c63");
}

static void test_control(void)
{
	char longp[200];

	CHECK(load(CONN) == 0);
	CHECK_STR(cfg.server.control, "");
	CHECK(load("[server]\ncontrol = /var/run/tarpitd.sock\n" CONN) == 0);
	CHECK_STR(cfg.server.control, "/var/run/tarpitd.sock");
	CHECK(load("[server]\ncontrol = run/ctl.sock\n" CONN) == 0);
	CHECK_STR(cfg.server.control, dirpath("run/ctl.sock"));
	CHECK(load("[server]\ncontrol =\n" CONN) == 0);
	CHECK_STR(cfg.server.control, "");
	CHECK(load("[server]\ncontrol = a\x01" "b\n" CONN) == -1);
	CHECK_STR(err, E("2: control: path holds control characters"));
	memset(longp, 'x', sizeof longp);
	longp[0] = '/';
	snprintf(longp + 107, sizeof longp - 107, "\n");
	{
		char text[400];

		snprintf(text, sizeof text, "[server]\ncontrol = %s" CONN, longp);
		CHECK(load(text) == 0);
		CHECK(strlen(cfg.server.control) == 107);
		snprintf(longp + 107, sizeof longp - 107, "y\n");
		snprintf(text, sizeof text, "[server]\ncontrol = %s" CONN, longp);
		CHECK(load(text) == -1);
		CHECK_STR(err, E("2: control: path longer than 107 octets (the limit of a UNIX socket address)"));
	}
	CHECK(load("[server]\ncontrol = x\ncontrol = y\n" CONN) == -1);
	CHECK_STR(err, E("3: duplicate key 'control' (first at line 2)"));
}

/* SPEC §3: a file the INI names must be a regular file (a FIFO, device
 * or directory is an error at every load, at the key's line), and an INI
 * that is a FIFO is refused at once, never waited on. */
static void test_not_regular(void)
{
	char fifo[300], text[400];

	snprintf(fifo, sizeof fifo, "%s/fifo", dir);
	CHECK(mkfifo(fifo, 0600) == 0);
	snprintf(text, sizeof text, "[server]\nrecipients = fifo\n" CONN);
	CHECK(load(text) == -1);
	snprintf(text, sizeof text, "2: recipients: %s is a FIFO, not a regular file", fifo);
	CHECK_STR(err, E(text));
	/* The default file name, at the section header's line. */
	unlink(fifo);
	snprintf(fifo, sizeof fifo, "%s/recipients", dir);
	CHECK(mkdir(fifo, 0700) == 0);
	CHECK(load("\n[server]\n" CONN) == -1);
	snprintf(text, sizeof text, "2: recipients: %s is a directory, not a regular file", fifo);
	CHECK_STR(err, E(text));
	CHECK(load("[server]\nrecipients = /dev/null\n" CONN) == -1);
	CHECK_STR(err, E("2: recipients: /dev/null is a device, not a regular file"));
	rmdir(fifo);
	/* A missing file is the loader's to report, not config_load's. */
	CHECK(load("[server]\nrecipients = nowhere\n" CONN) == 0);
	/* The INI itself. */
	unload();
	snprintf(fifo, sizeof fifo, "%s/fifo.ini", dir);
	CHECK(mkfifo(fifo, 0600) == 0);
	CHECK(config_load(&cfg, fifo, err, sizeof err) == -1);
	snprintf(text, sizeof text, "%s: is a FIFO, not a regular file", fifo);
	CHECK_STR(err, text);
	unlink(fifo);
}

/* config_load_host: what `run` would refuse, each at its line; and what
 * it must keep accepting (its own pidfile and socket of an earlier run). */
static int load_host(const char *text)
{
	unload();
	write_file("t.ini", text, strlen(text));
	if (config_load_host(&cfg, path, err, sizeof err) != 0)
		return -1;
	loaded = true;
	return 0;
}

static void test_host(void)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	char text[600], want[600];
	int fd;

	/* greeting_delay not below connection_timeout: every load. */
	CHECK(load(CONN "connection_timeout = 00:00:10\ngreeting_delay = 00:00:10\n") == -1);
	CHECK_STR(err, E("4: greeting_delay: 00:00:10 is not below connection_timeout 00:00:10 "
			 "(every session would end before its greeting)"));
	CHECK(load(CONN "greeting_delay = 00:00:05\nconnection_timeout = 00:00:04\n") == -1);
	CHECK(strstr(err, ":3: greeting_delay: 00:00:05 is not below") != NULL);
	CHECK(load(CONN "connection_timeout = 00:00:10\ngreeting_delay = 00:00:09\n") == 0);

	CHECK(load_host("[server]\nspool = sp\n" CONN) == 0);
	CHECK(load_host("[server]\nuser = no-such-user-tarpitd\n" CONN) == -1);
	CHECK_STR(err, E("2: user: no user 'no-such-user-tarpitd' on this system"));
	CHECK(load("[server]\nuser = no-such-user-tarpitd\n" CONN) == 0); /* reload: not asked */
	/* spool_group (SPEC §5): a group name, resolved by the host checks. */
	CHECK(load("[server]\nspool_group = root\n" CONN) == 0);
	CHECK_STR(cfg.server.spool_group, "root");
	CHECK(cfg.server.spool_gid == CONF_NO_GID);
	CHECK(load_host("[server]\nspool_group = root\n" CONN) == 0);
	CHECK(cfg.server.spool_gid == 0);
	CHECK(load_host(CONN) == 0);
	CHECK(cfg.server.spool_gid == CONF_NO_GID);
	CHECK(load_host("[server]\nspool_group = no-such-group-tarpitd\n" CONN) == -1);
	CHECK_STR(err, E("2: spool_group: no group 'no-such-group-tarpitd' on this system"));
	CHECK(load("[server]\nspool_group = -g\n" CONN) == -1);
	CHECK_STR(err, E("2: spool_group: '-g' is not a valid group name"));
	CHECK(load_host("[server]\n\npidfile = none/t.pid\n" CONN) == -1);
	snprintf(want, sizeof want, "3: pidfile: directory %s does not exist", dirpath("none"));
	CHECK_STR(err, E(want));
	CHECK(load_host("[server]\ncontrol = t.ini/x\n" CONN) == -1);
	snprintf(want, sizeof want, "2: control: directory %s is not a directory", dirpath("t.ini"));
	CHECK_STR(err, E(want));
	/* Another file: refused, never written over or unlinked. */
	CHECK(load_host("[server]\npidfile = t.ini\n" CONN) == -1);
	snprintf(want, sizeof want, "2: pidfile: %s exists and is a file, not a pidfile (run would overwrite it)",
		 dirpath("t.ini"));
	CHECK_STR(err, E(want));
	CHECK(load_host("[server]\ncontrol = t.ini\n" CONN) == -1);
	snprintf(want, sizeof want, "2: control: %s exists and is a file, not a socket (run would replace it)",
		 dirpath("t.ini"));
	CHECK_STR(err, E(want));
	/* tarpitd's own, of an earlier run: a PID, or empty; a socket. */
	write_file("old.pid", "4242\n", 5);
	CHECK(load_host("[server]\npidfile = old.pid\n" CONN) == 0);
	write_file("old.pid", "", 0);
	CHECK(load_host("[server]\npidfile = old.pid\n" CONN) == 0);
	write_file("old.pid", "4242\nx\n", 7);
	CHECK(load_host("[server]\npidfile = old.pid\n" CONN) == -1);
	snprintf(path, sizeof path, "%s/old.pid", dir);
	unlink(path);
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s/old.sock", dir);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&sun, sizeof sun) == 0);
	close(fd);
	CHECK(load_host("[server]\ncontrol = old.sock\n" CONN) == 0);
	unlink(sun.sun_path);
	CHECK(load_host("[server]\nspool = /proc/tarpitd/spool\n" CONN) == -1);
	CHECK_STR(err, E("2: spool: /proc/tarpitd/spool is on /proc, where no spool can be made"));
	CHECK(load_host("[server]\nspool = t.ini/spool\n" CONN) == -1);
	snprintf(want, sizeof want, "2: spool: %s is not a directory", dirpath("t.ini"));
	CHECK_STR(err, E(want));
	/* An address no interface has; wildcards and loopback bind. */
	CHECK(load_host("[connector \"A\"]\nbindings = 0.0.0.0:25, 127.0.0.2:2525\n") == 0);
	snprintf(text, sizeof text, "[connector \"A\"]\nbindings = 127.0.0.1:25,\n  192.0.2.1:2525\n");
	CHECK(load_host(text) == -1);
	CHECK_STR(err, E("3: bindings: 192.0.2.1:2525: no interface has this address"));
	/* In file order: [server] keys by line, then the bindings. */
	CHECK(load_host("[server]\ncontrol = t.ini\nuser = no-such-user-tarpitd\n"
			"[connector \"A\"]\nbindings = 192.0.2.1:2525\n") == -1);
	CHECK(strstr(err, ":2: control") && strstr(err, ":3: user") && strstr(err, ":5: bindings") &&
	      strstr(err, ":2: control") < strstr(err, ":3: user") && strstr(err, ":3: user") < strstr(err, ":5: bindings"));
	unload();
}

#define TWO(a_extra, b_extra) \
	"[connector \"A\"]\nbindings = 0.0.0.0:25\n" a_extra "[connector \"B\"]\nbindings = 0.0.0.0:25\n" b_extra

static void test_overlaps(void)
{
	/* Nesting is how trusted hosts get their own connector. */
	CHECK(load(TWO("", "remote_ip_ranges = 10.0.0.0/8\n")) == 0);
	CHECK(load(TWO("remote_ip_ranges = 10.0.0.0/8\n", "remote_ip_ranges = 10.1.2.3, 10.2.0.0/16\n")) == 0);
	CHECK(load(TWO("remote_ip_ranges = 10.0.0.0/24\n", "remote_ip_ranges = 10.0.0.0/8\n")) == 0);
	CHECK(load(TWO("remote_ip_ranges = 10.0.0.0/8\n", "remote_ip_ranges = 11.0.0.0/8, ::/0\n")) == 0);
	/* Adjacent is not overlapping. */
	CHECK(load(TWO("remote_ip_ranges = 10.0.0.0-10.0.0.127\n", "remote_ip_ranges = 10.0.0.128-10.0.0.255\n")) == 0);

	/* Identical: the defaults of both. */
	CHECK(load(TWO("", "")) == -1);
	CHECK_STR(err, E("3: remote_ip_ranges: 0.0.0.0/0 of connector \"B\" is the same as 0.0.0.0/0 of "
			 "connector \"A\" on 0.0.0.0:25 (entries of connectors that share a binding may overlap "
			 "only when one contains the other)\n"
			 "3: remote_ip_ranges: ::/0 of connector \"B\" is the same as ::/0 of connector \"A\" on "
			 "0.0.0.0:25 (entries of connectors that share a binding may overlap only when one "
			 "contains the other)"));
	/* Identical though written differently, at the line of the key. */
	CHECK(load(TWO("remote_ip_ranges = 10.0.0.0/8\n", "remote_ip_ranges = 10.0.0.0-10.255.255.255\n")) == -1);
	CHECK_STR(err, E("6: remote_ip_ranges: 10.0.0.0/8 of connector \"B\" is the same as 10.0.0.0/8 of "
			 "connector \"A\" on 0.0.0.0:25 (entries of connectors that share a binding may overlap "
			 "only when one contains the other)"));
	/* Partial overlap, reported at the continuation line that holds it. */
	CHECK(load(TWO("remote_ip_ranges = 10.0.0.0-10.0.0.200\n",
		       "remote_ip_ranges = 192.0.2.0/24,\n    10.0.0.128/25\n")) == -1);
	CHECK_STR(err, E("7: remote_ip_ranges: 10.0.0.128/25 of connector \"B\" partly overlaps "
			 "10.0.0.0-10.0.0.200 of connector \"A\" on 0.0.0.0:25 (entries of connectors that share "
			 "a binding may overlap only when one contains the other)"));
	/* IPv4 entries sit inside ::/0, so those nest. */
	CHECK(load(TWO("remote_ip_ranges = ::/0\n", "remote_ip_ranges = 0.0.0.0/0\n")) == 0);
	CHECK(load(TWO("remote_ip_ranges = 2001:db8::/32\n", "remote_ip_ranges = 2001:db8:ffff::-2001:db9::1\n")) == -1);
	CHECK_STR(err, E("6: remote_ip_ranges: 2001:db8:ffff::-2001:db9::1 of connector \"B\" partly overlaps "
			 "2001:db8::/32 of connector \"A\" on 0.0.0.0:25 (entries of connectors that share "
			 "a binding may overlap only when one contains the other)"));

	/* Another binding, or a disabled connector: no conflict. */
	CHECK(load("[connector \"A\"]\nbindings = 0.0.0.0:25\n[connector \"B\"]\nbindings = 0.0.0.0:26\n") == 0);
	CHECK(load("[connector \"A\"]\nbindings = [::]:25\n[connector \"B\"]\nbindings = 0.0.0.0:25\n") == 0);
	CHECK(load(TWO("", "enabled = no\n")) == 0);
	CHECK(load(TWO("enabled = no\n", "")) == 0);
	/* One shared binding among others is enough; it is the one named. */
	CHECK(load("[connector \"A\"]\nbindings = 0.0.0.0:26, 0.0.0.0:25\nremote_ip_ranges = 10.0.0.0/8\n"
		   "[connector \"B\"]\nbindings = 0.0.0.0:24, 0.0.0.0:25\nremote_ip_ranges = 10.0.0.0/8\n") == -1);
	CHECK(strstr(err, " on 0.0.0.0:25 (") != NULL);
	CHECK(strncmp(err, E("6: remote_ip_ranges: 10.0.0.0/8 of connector \"B\" is the same as"),
		      strlen(E("6: remote_ip_ranges: 10.0.0.0/8 of connector \"B\" is the same as"))) == 0);
	/* Every pair of connectors is checked; each entry once per pair. */
	CHECK(load(TWO("remote_ip_ranges = 10.0.0.0/8, 10.0.0.0/9\n", "remote_ip_ranges = 1.0.0.0/8\n")
		   "[connector \"C\"]\nbindings = 0.0.0.0:25\nremote_ip_ranges = 1.0.0.0/8, 10.0.0.0/8\n") == -1);
	CHECK_STR(err, E("9: remote_ip_ranges: 10.0.0.0/8 of connector \"C\" is the same as 10.0.0.0/8 of "
			 "connector \"A\" on 0.0.0.0:25 (entries of connectors that share a binding may overlap "
			 "only when one contains the other)\n"
			 "9: remote_ip_ranges: 1.0.0.0/8 of connector \"C\" is the same as 1.0.0.0/8 of "
			 "connector \"B\" on 0.0.0.0:25 (entries of connectors that share a binding may overlap "
			 "only when one contains the other)"));
	/* A connector whose list is broken is not compared, so no cascade. */
	CHECK(load(TWO("remote_ip_ranges = 10.0.0.0/8, bogus\n", "remote_ip_ranges = 10.0.0.0/8\n")) == -1);
	CHECK_STR(err, E("3: remote_ip_ranges: 'bogus' is not an address, a CIDR block or a range a-b"));
}

static void test_wildcards(void)
{
	CHECK(load("[connector \"A\"]\nbindings = 0.0.0.0:25\nremote_ip_ranges = 10.0.0.0/8\n"
		   "[connector \"B\"]\nbindings = 127.0.0.1:25\n") == -1);
	CHECK_STR(err, E("5: bindings: 127.0.0.1:25 of connector \"B\" and 0.0.0.0:25 of connector \"A\" "
			 "cannot both be bound: the kernel refuses a wildcard and a specific address on one port"));
	/* Either order. */
	CHECK(load("[connector \"A\"]\nbindings = 127.0.0.1:25\n"
		   "[connector \"B\"]\nremote_ip_ranges = 10.0.0.0/8\nbindings = 192.0.2.1:26,\n  0.0.0.0:25\n") == -1);
	CHECK_STR(err, E("6: bindings: 0.0.0.0:25 of connector \"B\" and 127.0.0.1:25 of connector \"A\" "
			 "cannot both be bound: the kernel refuses a wildcard and a specific address on one port"));
	/* Within one connector. */
	CHECK(load("[connector \"A\"]\nbindings = 0.0.0.0:25, 127.0.0.1:25\n") == -1);
	CHECK_STR(err, E("2: bindings: 127.0.0.1:25 and 0.0.0.0:25 of connector \"A\" cannot both be bound: "
			 "the kernel refuses a wildcard and a specific address on one port"));
	CHECK(load("[connector \"A\"]\nbindings = [::]:25, [::1]:25\n") == -1);
	CHECK_STR(err, E("2: bindings: [::1]:25 and [::]:25 of connector \"A\" cannot both be bound: "
			 "the kernel refuses a wildcard and a specific address on one port"));
	/* Other port, other family, two specific addresses, or disabled. */
	CHECK(load("[connector \"A\"]\nbindings = 0.0.0.0:25, 127.0.0.1:26, [::1]:25, 127.0.0.2:26\n") == 0);
	CHECK(load("[connector \"A\"]\nbindings = [::]:25, 127.0.0.1:25\n") == 0);
	CHECK(load("[connector \"A\"]\nbindings = 0.0.0.0:25\n"
		   "[connector \"B\"]\nenabled = no\nbindings = 127.0.0.1:25\n") == 0);
	/* Two wildcards on one port are one shared socket. */
	CHECK(load("[connector \"A\"]\nbindings = 0.0.0.0:25\nremote_ip_ranges = 10.0.0.0/8\n"
		   "[connector \"B\"]\nbindings = 0.0.0.0:25\nremote_ip_ranges = 10.0.0.0/9\n") == 0);
	/* A third connector is reported once, against the first it clashes with. */
	CHECK(load("[connector \"A\"]\nbindings = 0.0.0.0:25\nremote_ip_ranges = 10.0.0.0/8\n"
		   "[connector \"B\"]\nbindings = 0.0.0.0:25\nremote_ip_ranges = 10.0.0.0/9\n"
		   "[connector \"C\"]\nbindings = 127.0.0.1:25\n") == -1);
	CHECK_STR(err, E("8: bindings: 127.0.0.1:25 of connector \"C\" and 0.0.0.0:25 of connector \"A\" "
			 "cannot both be bound: the kernel refuses a wildcard and a specific address on one port"));
}

/* A build without TLS (make TLS=0) refuses the section at its header line,
 * once, and goes on reading the rest; AUTH is unaffected. The [tls] tests
 * (test_every_key, test_tls_auth, test_fields) are for the TLS build. */
#ifdef TARPITD_NO_TLS
#define WITH_TLS 0
#else
#define WITH_TLS 1
#endif

static void test_tls_refused(void)
{
	CHECK(load(CONN "[tls]\ncertificate = c\nkey = k\n") == -1);
	CHECK_STR(err, E("3: [tls]: this tarpitd is built without TLS (TLS=0)"));
	CHECK(load(CONN "\n[tls]\ncertificate = c\nbogus = 1\n") == -1);
	CHECK_STR(err, E("4: [tls]: this tarpitd is built without TLS (TLS=0)\n6: unknown key 'bogus' in [tls]\n"
			 "4: [tls] needs key = FILE"));
	CHECK(load("[auth]\nusers = /etc/tarpitd/users\n" CONN) == 0);
	CHECK(cfg.auth.enabled && !cfg.tls.enabled);
}

static void test_tls_auth(void)
{
	/* The sections, wherever they stand; paths relative to the INI. */
	CHECK(load("[auth]\nusers = /etc/tarpitd/users\n" CONN "[tls]\ncertificate = c.pem\nkey = k.pem\n") == 0);
	CHECK_STR(err, "");
	CHECK(cfg.tls.enabled && cfg.auth.enabled);
	CHECK_STR(cfg.tls.certificate, dirpath("c.pem"));
	CHECK_STR(cfg.tls.key, dirpath("k.pem"));
	CHECK(cfg.tls.max_sessions == 32);
	CHECK(cfg.tls.max_sessions_per_source == 20);
	CHECK(cfg.tls.min_version == 12);
	CHECK(cfg.tls.session_tickets);
	CHECK_STR(cfg.auth.users, "/etc/tarpitd/users");
	CHECK(load(CONN "[tls]\nkey = k.pem\ncertificate = c.pem ; comment\nmax_sessions = 1\n") == 0);
	CHECK_STR(cfg.tls.certificate, dirpath("c.pem"));
	CHECK(cfg.tls.max_sessions == 1);

	/* Required keys, at the section's line. */
	CHECK(load(CONN "[tls]\ncertificate = c.pem\n") == -1);
	CHECK_STR(err, E("3: [tls] needs key = FILE"));
	CHECK(load(CONN "[tls]\nkey = k.pem\n") == -1);
	CHECK_STR(err, E("3: [tls] needs certificate = FILE"));
	CHECK(load(CONN "\n[tls]\n") == -1);
	CHECK_STR(err, E("4: [tls] needs certificate = FILE\n4: [tls] needs key = FILE"));
	CHECK(load(CONN "[auth]\n") == -1);
	CHECK_STR(err, E("3: [auth] needs users = FILE"));
	CHECK(load(CONN "[auth]\nusers =\n") == -1);
	CHECK_STR(err, E("4: users: empty path"));
	CHECK(load(CONN "[tls]\ncertificate = c.pem\nkey =\n") == -1);
	CHECK_STR(err, E("5: key: empty path"));

	/* Values and keys. */
	CHECK(load(CONN "[tls]\ncertificate = c\nkey = k\nmax_sessions = 0\n") == -1);
	CHECK_STR(err, E("6: max_sessions: 0 is below the minimum 1"));
	CHECK(load(CONN "[tls]\ncertificate = c\nkey = k\nmax_sessions = 1025\n") == -1);
	CHECK_STR(err, E("6: max_sessions: 1025 is above the maximum 1024"));
	CHECK(load(CONN "[tls]\ncertificate = c\nkey = k\nmax_sessions = many\n") == -1);
	CHECK_STR(err, E("6: max_sessions: 'many' is not a number"));
	CHECK(load(CONN "[tls]\ncertificate = c\nkey = k\nmax_sessions_per_source = 4\n"
		   "min_version = 1.2\nsession_tickets = no\n") == 0);
	CHECK(cfg.tls.max_sessions_per_source == 4);
	CHECK(cfg.tls.min_version == 12);
	CHECK(!cfg.tls.session_tickets);
	CHECK(load(CONN "[tls]\ncertificate = c\nkey = k\nmax_sessions_per_source = 0\n") == -1);
	CHECK_STR(err, E("6: max_sessions_per_source: 0 is below the minimum 1"));
	CHECK(load(CONN "[tls]\ncertificate = c\nkey = k\nmin_version = 1.1\n") == -1);
	CHECK_STR(err, E("6: min_version: '1.1' must be 1.2 or 1.3"));
	CHECK(load(CONN "[tls]\ncertificate = c\nkey = k\nmin_version = 1.3x\n") == -1);
	CHECK_STR(err, E("6: min_version: '1.3x' must be 1.2 or 1.3"));
	CHECK(load(CONN "[tls]\ncertificate = c\nkey = k\nsession_tickets = maybe\n") == -1);
	/* 1.3 exactly where the library has it, else an error at its line */
	if (tls_max_version() >= 13) {
		CHECK(load(CONN "[tls]\ncertificate = c\nkey = k\nmin_version = 1.3\n") == 0);
		CHECK(cfg.tls.min_version == 13);
	} else {
		char want[256];

		snprintf(want, sizeof want, "6: min_version: 1.3: this tarpitd's mbedTLS (%s) has no TLS 1.3; use 1.2",
			 tls_library_version());
		CHECK(load(CONN "[tls]\ncertificate = c\nkey = k\nmin_version = 1.3\n") == -1);
		CHECK_STR(err, E(want));
	}
	CHECK(load(CONN "[tls]\ncertificate = c\nkey = k\nusers = u\n") == -1);
	CHECK_STR(err, E("6: unknown key 'users' in [tls]"));
	CHECK(load(CONN "[auth]\nusers = u\ncertificate = c\n") == -1);
	CHECK_STR(err, E("5: unknown key 'certificate' in [auth]"));
	CHECK(load(CONN "[auth]\nusers = u\nusers = v\n") == -1);
	CHECK_STR(err, E("5: duplicate key 'users' (first at line 4)"));
	CHECK(load(CONN "[tls]\ncertificate = c\nkey = k\n[tls]\ncertificate = d\n") == -1);
	CHECK_STR(err, E("6: [tls] appears twice (first at line 3)"));
	CHECK(load("[auth]\nusers = u\n" CONN "[auth]\n") == -1);
	CHECK_STR(err, E("5: [auth] appears twice (first at line 1)"));
	CHECK(load(CONN "[tls \"x\"]\n") == -1);
	CHECK_STR(err, E("3: unknown section [tls \"x\"]"));
	CHECK(load(CONN "[tls]\ncertificate = c\x01\nkey = k\n") == -1);
	CHECK_STR(err, E("4: certificate: path holds control characters")); /* given, though bad: no cascade */

	/* Connector keys: ranges. */
	CHECK(load(CONN "max_auth_failures = 0\n") == 0);
	CHECK(C->max_auth_failures == 0);
	CHECK(load(CONN "max_auth_failures = 1001\n") == -1);
	CHECK_STR(err, E("3: max_auth_failures: 1001 is above the maximum 1000"));
	CHECK(load(CONN "starttls = maybe\n") == -1);
	CHECK_STR(err, E("3: starttls: 'maybe' is not a boolean (yes/no, true/false, on/off, 1/0)"));
	CHECK(load(CONN "auth = no\nauth_requires_tls = no\nstarttls = off\n") == 0);
	CHECK(!C->auth && !C->auth_requires_tls && !C->starttls);

	/* require_tls without [tls], or without starttls, would refuse every
	 * MAIL: an error, at the require_tls line. */
	CHECK(load(CONN "require_tls = yes\n") == -1);
	CHECK_STR(err, E("3: require_tls needs a [tls] section"));
	CHECK(load(CONN "require_tls = yes\nstarttls = no\n") == -1);
	CHECK_STR(err, E("3: require_tls needs a [tls] section"));
	CHECK(load(CONN "require_tls = yes\nstarttls = no\n[tls]\ncertificate = c\nkey = k\n") == -1);
	CHECK_STR(err, E("3: require_tls needs starttls = yes"));
	CHECK(load(CONN "require_tls = yes\n[tls]\ncertificate = c\nkey = k\n") == 0);
	CHECK(C->require_tls);
	CHECK(load(CONN "require_tls = no\nstarttls = no\n") == 0);
	/* A disabled connector is checked as well: `set` may enable it. */
	CHECK(load(CONN "enabled = no\nrequire_tls = yes\n") == -1);
	CHECK_STR(err, E("4: require_tls needs a [tls] section"));
	/* [auth] alone is fine: AUTH is then offered only where TLS is not
	 * required for it. */
	CHECK(load(CONN "[auth]\nusers = u\n") == 0);

	/* tls_mode: implicit TLS needs the pool, and makes starttls and
	 * require_tls moot (every session is in TLS). */
	CHECK(load(CONN "[tls]\ncertificate = c\nkey = k\n") == 0);
	CHECK(!C->tls_implicit);
	CHECK(load(CONN "tls_mode = starttls\n") == 0);
	CHECK(!C->tls_implicit);
	CHECK(load(CONN "tls_mode = implicit\n[tls]\ncertificate = c\nkey = k\n") == 0);
	CHECK(C->tls_implicit);
	CHECK(load(CONN "tls_mode = implicit\n") == -1);
	CHECK_STR(err, E("3: tls_mode: implicit needs a [tls] section"));
	CHECK(load(CONN "enabled = no\ntls_mode = implicit\nrequire_tls = yes\n") == -1);
	CHECK_STR(err, E("4: tls_mode: implicit needs a [tls] section"));
	CHECK(load(CONN "tls_mode = Implicit\n") == -1);
	CHECK_STR(err, E("3: tls_mode: 'Implicit' must be starttls or implicit"));
	CHECK(load(CONN "tls_mode = implicit\nstarttls = no\nrequire_tls = yes\n"
			"[tls]\ncertificate = c\nkey = k\n") == 0);
	CHECK(C->tls_implicit && C->require_tls && !C->starttls);

	/* The [tls] keys' lines, for the messages about their files. */
	CHECK(load(CONN "\n[tls]\nkey = k\n\ncertificate = c\n") == 0);
	CHECK(cfg.tls.key_line == 5 && cfg.tls.certificate_line == 7);
	{
		char m[PATH_MAX * 3];
		snprintf(m, sizeof m, "%s: key does not match the certificate %s", cfg.tls.key,
			 cfg.tls.certificate);
		config_tls_error(&cfg, m, sizeof m);
		CHECK(strncmp(m, E("5: "), strlen(E("5: "))) == 0);
		CHECK(strstr(m, ": key does not match the certificate") != NULL);
		snprintf(m, sizeof m, "%s: read certificate: No such file", cfg.tls.certificate);
		config_tls_error(&cfg, m, sizeof m);
		CHECK(strncmp(m, E("7: "), strlen(E("7: "))) == 0);
		snprintf(m, 8, "x");
		config_tls_error(&cfg, m, 8); /* no room for the prefix: left as it is */
		CHECK_STR(m, "x");
	}
}

/* Word i of the loaded ban command. */
static const char *ban_word(unsigned i)
{
	return i < cfg.harvest.ban_argc ? cfg.harvest.ban_buf + cfg.harvest.ban_off[i] : NULL;
}

static void test_harvest(void)
{
	unsigned i;

	/* Every key, and an empty section meaning the defaults. */
	CHECK(load(CONN "[harvest]\n") == 0);
	CHECK(cfg.harvest.enabled && cfg.harvest.table_size == 1024 && cfg.harvest.threshold == 10 &&
	      cfg.harvest.window == 3600 && cfg.harvest.ban_argc == 0);
	CHECK(load("[harvest]\ntable_size = 7\nthreshold = 1\nwindow = 00:00:01\n" CONN) == 0);
	CHECK_STR(err, "");
	CHECK(cfg.harvest.enabled && cfg.harvest.table_size == 7 && cfg.harvest.threshold == 1 &&
	      cfg.harvest.window == 1);
	CHECK(load(CONN "[harvest]\ntable_size = 1000000\nthreshold = 1000000\nwindow = 7.00:00:00\n") == 0);
	CHECK(cfg.harvest.table_size == 1000000 && cfg.harvest.threshold == 1000000 &&
	      cfg.harvest.window == 7 * 86400);
	CHECK(load(CONN "[harvest]\nwindow = 6.23:59:59\n") == 0);
	CHECK(cfg.harvest.window == 7 * 86400 - 1);
	/* 0 turns the table off; the other keys are still checked. */
	CHECK(load(CONN "[harvest]\ntable_size = 0\nban_command = /bin/true %a\n") == 0);
	CHECK(!cfg.harvest.enabled && cfg.harvest.table_size == 0);
	CHECK(load(CONN "[harvest]\ntable_size = 0\nthreshold = 0\n") == -1);
	CHECK_STR(err, E("5: threshold: 0 is below the minimum 1"));

	/* Ranges. */
	CHECK(load(CONN "[harvest]\ntable_size = 1000001\n") == -1);
	CHECK_STR(err, E("4: table_size: 1000001 is above the maximum 1000000"));
	CHECK(load(CONN "[harvest]\ntable_size = -1\n") == -1);
	CHECK_STR(err, E("4: table_size: '-1' is not a number"));
	CHECK(load(CONN "[harvest]\nthreshold = 99999999999999999999999\n") == -1);
	CHECK_STR(err, E("4: threshold: 99999999999999999999999 is above the maximum 1000000"));
	CHECK(load(CONN "[harvest]\nwindow = 00:00:00\n") == -1);
	CHECK_STR(err, E("4: window: 00:00:00 is below the minimum 00:00:01"));
	CHECK(load(CONN "[harvest]\nwindow = 0\n") == -1);
	CHECK_STR(err, E("4: window: 0 is below the minimum 00:00:01"));
	CHECK(load(CONN "[harvest]\nwindow = 7.00:00:01\n") == -1);
	CHECK_STR(err, E("4: window: 7.00:00:01 is above the maximum 7.00:00:00"));
	CHECK(load(CONN "[harvest]\nwindow = 1h\n") == -1);
	CHECK_STR(err, E("4: window: '1h' is not a TimeSpan ([d.]hh:mm:ss)"));
	CHECK(load(CONN "[harvest]\nwindow = 00:00:05\nwindow = 00:00:06\n") == -1);
	CHECK_STR(err, E("5: duplicate key 'window' (first at line 4)"));
	CHECK(load(CONN "[harvest]\ntarpit_interval = 00:00:05\n") == -1);
	CHECK_STR(err, E("4: unknown key 'tarpit_interval' in [harvest]"));
	CHECK(load(CONN "[harvest \"x\"]\n") == -1);
	CHECK_STR(err, E("3: unknown section [harvest \"x\"]"));
	/* Keys after [harvest] are not connector keys any more. */
	CHECK(load(CONN "[harvest]\nbindings = 127.0.0.1:25\n") == -1);
	CHECK_STR(err, E("4: unknown key 'bindings' in [harvest]"));

	/* ban_command: split once into words, on spaces and tabs. */
	CHECK(load(CONN "[harvest]\nban_command = /usr/sbin/nft add element inet fw4 tarpitd_ban { %a timeout 1h }\n") == 0);
	CHECK_STR(err, "");
	CHECK(cfg.harvest.ban_argc == 11);
	CHECK(cfg.harvest.ban_addr == 7);
	CHECK_STR(ban_word(0), "/usr/sbin/nft");
	CHECK_STR(ban_word(5), "tarpitd_ban");
	CHECK_STR(ban_word(6), "{");
	CHECK_STR(ban_word(7), "%a");
	CHECK_STR(ban_word(9), "1h");
	CHECK_STR(ban_word(10), "}");
	CHECK(load(CONN "[harvest]\nban_command = \t/x/ban.sh  \t %a\t-v\n") == 0);
	CHECK(cfg.harvest.ban_argc == 3 && cfg.harvest.ban_addr == 1);
	CHECK_STR(ban_word(0), "/x/ban.sh");
	CHECK_STR(ban_word(1), "%a");
	CHECK_STR(ban_word(2), "-v");
	/* Shell characters mean nothing: they are plain octets of a word. */
	CHECK(load(CONN "[harvest]\nban_command = /bin/echo $HOME `x` |&>< %a \\ *\n") == 0);
	CHECK(cfg.harvest.ban_argc == 7);
	CHECK_STR(ban_word(1), "$HOME");
	CHECK_STR(ban_word(2), "`x`");
	CHECK_STR(ban_word(3), "|&><");
	CHECK_STR(ban_word(5), "\\");
	CHECK_STR(ban_word(6), "*");
	/* A comment after whitespace is no part of the command. */
	CHECK(load(CONN "[harvest]\nban_command = /bin/ban %a ; the address\n") == 0);
	CHECK(cfg.harvest.ban_argc == 2);
	/* 16 words fit, 17 do not. */
	CHECK(load(CONN "[harvest]\nban_command = /b %a 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n") == 0);
	CHECK(cfg.harvest.ban_argc == 16);
	for (i = 2; i < 16; i++) {
		char w[8];

		snprintf(w, sizeof w, "%u", i + 1);
		CHECK_STR(ban_word(i), w);
	}
	CHECK(load(CONN "[harvest]\nban_command = /b %a 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17\n") == -1);
	CHECK_STR(err, E("4: ban_command: more than 16 words"));
	/* Empty: no ban command. */
	CHECK(load(CONN "[harvest]\nban_command =\n") == 0);
	CHECK(cfg.harvest.ban_argc == 0);

	/* The refusals. */
	CHECK(load(CONN "[harvest]\nban_command = nft add element inet fw4 s { %a }\n") == -1);
	CHECK_STR(err, E("4: ban_command: 'nft' must be an absolute path (the command runs without a shell or PATH search)"));
	CHECK(load(CONN "[harvest]\nban_command = %a /bin/ban\n") == -1);
	CHECK_STR(err, E("4: ban_command: '%a' must be an absolute path (the command runs without a shell or PATH search)"));
	CHECK(load(CONN "[harvest]\nban_command = ./ban %a\n") == -1);
	CHECK_STR(err, E("4: ban_command: './ban' must be an absolute path (the command runs without a shell or PATH search)"));
	CHECK(load(CONN "[harvest]\nban_command = /bin/ban\n") == -1);
	CHECK_STR(err, E("4: ban_command: %a is missing (the word that stands for the address)"));
	CHECK(load(CONN "[harvest]\nban_command = /bin/ban x%a\n") == -1);
	CHECK_STR(err, E("4: ban_command: %a must be a word of its own, not part of 'x%a'"));
	CHECK(load(CONN "[harvest]\nban_command = /bin/ban %a/32\n") == -1);
	CHECK_STR(err, E("4: ban_command: %a must be a word of its own, not part of '%a/32'"));
	CHECK(load(CONN "[harvest]\nban_command = /bin/ban {%a}\n") == -1);
	CHECK_STR(err, E("4: ban_command: %a must be a word of its own, not part of '{%a}'"));
	CHECK(load(CONN "[harvest]\nban_command = /bin/%a %a\n") == -1);
	CHECK_STR(err, E("4: ban_command: %a must be a word of its own, not part of '/bin/%a'"));
	CHECK(load(CONN "[harvest]\nban_command = /bin/ban %a %a\n") == -1);
	CHECK_STR(err, E("4: ban_command: %a appears more than once"));
	CHECK(load(CONN "[harvest]\nban_command = /bin/ban \"%a\"\n") == -1);
	CHECK_STR(err, E("4: ban_command: quotes are not supported (words are split on spaces and tabs, without a shell)"));
	CHECK(load(CONN "[harvest]\nban_command = /bin/ban 'a b' %a\n") == -1);
	CHECK_STR(err, E("4: ban_command: quotes are not supported (words are split on spaces and tabs, without a shell)"));
	CHECK(load(CONN "[harvest]\nban_command = /bin/ban\x01 %a\n") == -1);
	CHECK_STR(err, E("4: ban_command: holds control characters"));
	CHECK(load(CONN "[harvest]\nban_command = /bin/ban\x7f %a\n") == -1);
	CHECK_STR(err, E("4: ban_command: holds control characters"));
	CHECK(load(CONN "[harvest]\nban_command = /bin/ban %a\nban_command = /bin/ban %a\n") == -1);
	CHECK_STR(err, E("5: duplicate key 'ban_command' (first at line 4)"));
	/* Other placeholders and '%' are plain text. */
	CHECK(load(CONN "[harvest]\nban_command = /bin/date +%s %A %% %a\n") == 0);
	CHECK_STR(ban_word(1), "+%s");
	CHECK_STR(ban_word(2), "%A");
	CHECK_STR(ban_word(3), "%%");
	/* A long word is kept whole; a line past the reader's limit is
	 * refused as a whole, never split. */
	{
		char t[700];
		size_t n = (size_t)snprintf(t, sizeof t, CONN "[harvest]\nban_command = /b %%a ");
		size_t start = n;

		while (n < start + 150)
			t[n++] = 'x';
		t[n] = '\0';
		CHECK(load(strcat(t, "\n")) == 0);
		CHECK(cfg.harvest.ban_argc == 3 && strlen(ban_word(2) ? ban_word(2) : "") == 150);
		while (n < sizeof t - 3)
			t[n++] = 'x';
		t[n++] = '\n';
		t[n] = '\0';
		CHECK(load(t) == -1);
		CHECK(strstr(err, ":4: line too long") != NULL);
	}
}

/* ---- [relay "NAME"] (SPEC §3, §10) ---------------------------------------- */

/* The relay r of the last load, or a blank one. */
static struct relay_conf *relay_at(unsigned r)
{
	static struct relay_conf blank;

	return cfg.relays && r < cfg.nrelays ? &cfg.relays[r] : &blank;
}
#define R relay_at(0)

/* <dir>/name holding text, with mode. */
static void write_mode(const char *name, const char *text, mode_t mode)
{
	write_file(name, text, strlen(text));
	CHECK(chmod(path, mode) == 0);
}

#define RELAY "[relay \"Office\"]\n"
#define RHOST "host = 192.0.2.25:25\n"

static void test_relay_defaults(void)
{
	char b[80];

	CHECK(load(CONN "[server]\n") == 0);
	CHECK(cfg.server.max_queued == 1024);
	CHECK(cfg.nrelays == 0 && cfg.relays == NULL);

	/* Lines: 1-2 the connector, 3 the header, 4 host, 5 domains. */
	CHECK(load(CONN RELAY RHOST "domains = Example.ORG, b.example\n") == 0);
	CHECK_STR(err, "");
	CHECK(cfg.nrelays == 1);
	CHECK_STR(R->name, "Office");
	CHECK(R->line == 3);
	CHECK(R->domains_line == 5);
	CHECK_STR(R->host, "192.0.2.25:25");
	CHECK(!R->is_unix);
	binding_format(&R->addr, b, sizeof b);
	CHECK_STR(b, "192.0.2.25:25");
	CHECK(!R->lmtp);
	CHECK(!R->smarthost);
	CHECK(R->ndomains == 2);
	CHECK(memcmp(R->domains, "example.org\0b.example\0", 22) == 0);
	CHECK(R->starttls == 1); /* opportunistic */
	CHECK(R->max_connections == 4);
	CHECK(R->retry_min == 60);
	CHECK(R->retry_max == 3600);
	CHECK(R->max_queue_lifetime == 5 * 86400);
	CHECK_STR(R->tls_name, "");
	CHECK_STR(R->ca_file, "");
	CHECK_STR(R->auth_user, "");
	CHECK_STR(R->auth_password_file, "");
	CHECK_STR(R->auth_password, "");

	/* A relay before the connector, and the smarthost. */
	CHECK(load("[relay \"Up\"]\nhost = [::1]:587\ndomains = *\n" CONN) == 0);
	CHECK(R->smarthost && R->ndomains == 0);
	CHECK(R->domains_line == 3);
	CHECK(R->addr.v6 && R->addr.port == 587);
	CHECK_STR(R->host, "[::1]:587");

	/* LMTP on the router, over a UNIX socket; LMTP over TCP too. */
	CHECK(load(CONN RELAY "host = unix:/run/dovecot/lmtp\nprotocol = lmtp\ndomains = a.example\n") == 0);
	CHECK(R->is_unix && R->lmtp);
	CHECK_STR(R->unix_path, "/run/dovecot/lmtp");
	CHECK_STR(R->host, "unix:/run/dovecot/lmtp");
	CHECK(load(CONN RELAY RHOST "protocol = lmtp\nprotocol_x = 1\ndomains = a.example\n") == -1);
	CHECK_STR(err, E("6: unknown key 'protocol_x' in [relay \"Office\"]"));
	CHECK(load(CONN RELAY RHOST "protocol = lmtp\nprotocol = smtp\ndomains = a.example\n") == -1);
	CHECK_STR(err, E("6: duplicate key 'protocol' (first at line 5)"));
	CHECK(load(CONN RELAY RHOST "protocol = smtp\ndomains = a.example\n") == 0);
	CHECK(!R->lmtp);

	/* The domains go on on indented lines, as the list keys do. */
	CHECK(load(CONN RELAY RHOST "domains = a.example,\n  B.example, c.example\n") == 0);
	CHECK(R->ndomains == 3);
	CHECK(memcmp(R->domains, "a.example\0b.example\0c.example\0", 30) == 0);

	/* [server] max_queued. */
	CHECK(load(CONN "[server]\nmax_queued = 1\n") == 0);
	CHECK(cfg.server.max_queued == 1);
	CHECK(load(CONN "[server]\nmax_queued = 100000\n") == 0);
	CHECK(cfg.server.max_queued == 100000);
	CHECK(load(CONN "[server]\nmax_queued = 0\n") == -1);
	CHECK_STR(err, E("4: max_queued: 0 is below the minimum 1"));
	CHECK(load(CONN "[server]\nmax_queued = 100001\n") == -1);
	CHECK_STR(err, E("4: max_queued: 100001 is above the maximum 100000"));
}

static void test_relay_every_key(void)
{
	write_mode("pw", "s3cret word\r\nsecond line\n", 0600);
	write_mode("ca.pem", "-----BEGIN CERTIFICATE-----\n", 0644);
	CHECK(load(CONN RELAY "host = 10.0.0.2:2525\nprotocol = lmtp\ndomains = a.example\n"
		   "starttls = required\nca_file = ca.pem\ntls_name = mail.office.example\n"
		   "auth_user = gateway\nauth_password_file = pw\nmax_connections = 64\n"
		   "retry_min = 00:00:01\nretry_max = 1.00:00:00\nmax_queue_lifetime = 30.00:00:00\n") == 0);
	CHECK_STR(err, "");
	CHECK(R->lmtp);
	CHECK(R->starttls == 2);
	CHECK_STR(R->ca_file, dirpath("ca.pem"));
	CHECK_STR(R->tls_name, "mail.office.example");
	CHECK_STR(R->auth_user, "gateway");
	CHECK_STR(R->auth_password_file, dirpath("pw"));
	CHECK_STR(R->auth_password, "s3cret word");
	CHECK(R->max_connections == 64);
	CHECK(R->retry_min == 1);
	CHECK(R->retry_max == 86400);
	CHECK(R->max_queue_lifetime == 30 * 86400);

	/* 0400 is stricter than 0600; no line end; an absolute path. */
	write_mode("pw", "only", 0400);
	CHECK(load(CONN RELAY RHOST "domains = a.example\nauth_user = gw\nauth_password_file = pw\n") == 0);
	CHECK_STR(R->auth_password, "only");
	{
		char text[1024];

		snprintf(text, sizeof text, CONN RELAY RHOST "domains = a.example\nauth_user = gw\nauth_password_file = %s\n",
			 dirpath("pw"));
		CHECK(load(text) == 0);
	}
	CHECK_STR(R->auth_password, "only");

	/* With opportunistic, ca_file and tls_name are accepted and unused. */
	CHECK(load(CONN RELAY RHOST "domains = a.example\nca_file = ca.pem\n") == 0);
	CHECK(load(CONN RELAY RHOST "domains = a.example\nstarttls = no\ntls_name = x.example\n") == 0);
	CHECK(R->starttls == 0);
	CHECK(load(CONN RELAY RHOST "domains = a.example\nstarttls = required\n") == 0);
	CHECK(R->starttls == 2);
	CHECK(load(CONN RELAY RHOST "domains = a.example\nstarttls = required\ntls_name = x.example\n") == 0);
	unlink(dirpath("pw"));
	unlink(dirpath("ca.pem"));
}

static void test_relay_errors(void)
{
	char long_path[200], text[512];

	/* host */
	CHECK(load(CONN RELAY "host = mail.example.org:25\ndomains = a.example\n") == -1);
	CHECK_STR(err, E("4: host: 'mail.example.org:25' is a name, and tarpitd does no DNS: "
			 "write ip:port, [ipv6]:port or unix:/path"));
	CHECK(load(CONN RELAY "host = localhost\ndomains = a.example\n") == -1);
	CHECK_STR(err, E("4: host: 'localhost' is a name, and tarpitd does no DNS: "
			 "write ip:port, [ipv6]:port or unix:/path"));
	CHECK(load(CONN RELAY "host = 192.0.2.1\ndomains = a.example\n") == -1);
	CHECK_STR(err, E("4: host: '192.0.2.1' is not ip:port, [ipv6]:port or unix:/path"));
	CHECK(load(CONN RELAY "host = ::1:25\ndomains = a.example\n") == -1);
	CHECK_STR(err, E("4: host: '::1:25' is not ip:port, [ipv6]:port or unix:/path"));
	CHECK(load(CONN RELAY "host = 192.0.2.1:0\ndomains = a.example\n") == -1);
	CHECK_STR(err, E("4: host: '192.0.2.1:0' is not ip:port, [ipv6]:port or unix:/path"));
	CHECK(load(CONN RELAY "host = 0.0.0.0:25\ndomains = a.example\n") == -1);
	CHECK_STR(err, E("4: host: '0.0.0.0:25' is a wildcard address, not a next hop"));
	CHECK(load(CONN RELAY "host = unix:lmtp\ndomains = a.example\n") == -1);
	CHECK_STR(err, E("4: host: 'unix:lmtp': unix: needs an absolute path"));
	memset(long_path, 'x', 108);
	long_path[0] = '/';
	long_path[108] = '\0';
	snprintf(text, sizeof text, CONN RELAY "host = unix:%s\ndomains = a.example\n", long_path);
	CHECK(load(text) == -1);
	CHECK_STR(err, E("4: host: path longer than 107 octets (the limit of a UNIX socket address)"));
	long_path[107] = '\0';
	snprintf(text, sizeof text, CONN RELAY "host = unix:%s\ndomains = a.example\n", long_path);
	CHECK(load(text) == 0);

	/* Required keys, at the header. */
	CHECK(load(CONN RELAY "domains = a.example\n") == -1);
	CHECK_STR(err, E("3: [relay \"Office\"] needs host = ip:port, [ipv6]:port or unix:/path"));
	CHECK(load(CONN RELAY RHOST) == -1);
	CHECK_STR(err, E("3: [relay \"Office\"] needs domains = DOMAIN, ... (or * for a smarthost)"));
	/* A bad host is reported once, not also as missing. */
	CHECK(load(CONN RELAY "host = x\ndomains = a.example\n") == -1);
	CHECK_STR(err, E("4: host: 'x' is a name, and tarpitd does no DNS: write ip:port, [ipv6]:port or unix:/path"));

	/* protocol, starttls */
	CHECK(load(CONN RELAY RHOST "domains = a.example\nprotocol = esmtp\n") == -1);
	CHECK_STR(err, E("6: protocol: 'esmtp' must be smtp or lmtp"));
	CHECK(load(CONN RELAY RHOST "domains = a.example\nstarttls = yes\n") == -1);
	CHECK_STR(err, E("6: starttls: 'yes' must be no, opportunistic or required"));

	/* domains */
	CHECK(load(CONN RELAY RHOST "domains =\n") == -1);
	CHECK_STR(err, E("5: domains: at least one domain (or * for a smarthost) is required"));
	CHECK(load(CONN RELAY RHOST "domains = a..example\n") == -1);
	CHECK_STR(err, E("5: domains: 'a..example' is not a domain"));
	CHECK(load(CONN RELAY RHOST "domains = [192.0.2.1]\n") == -1);
	CHECK_STR(err, E("5: domains: '[192.0.2.1]' is not a domain"));
	CHECK(load(CONN RELAY RHOST "domains = a.example, , b.example\n") == -1);
	CHECK_STR(err, E("5: domains: empty entry"));
	CHECK(load(CONN RELAY RHOST "domains = a.example, A.Example\n") == -1);
	CHECK_STR(err, E("5: domains: a.example is listed twice"));
	CHECK(load(CONN RELAY RHOST "domains = *, a.example\n") == -1);
	CHECK_STR(err, E("5: domains: * (the smarthost) must be the only entry"));
	CHECK(load(CONN RELAY RHOST "domains = a.example, *\n") == -1);
	CHECK_STR(err, E("5: domains: * (the smarthost) must be the only entry"));
	{
		char big[1400];
		size_t n = (size_t)snprintf(big, sizeof big, CONN RELAY RHOST "domains = ");

		/* 103 domains of 9 octets and their NULs: more than 1024. */
		for (int i = 0; i < 103; i++)
			n += (size_t)snprintf(big + n, sizeof big - n, "%sd%03d.test", i == 0 ? "" : i % 10 ? "," : ",\n  ", i);
		snprintf(big + n, sizeof big - n, "\n");
		/* ten a line: the 103rd is on line 5 + 10 */
		CHECK(load(big) == -1);
		CHECK_STR(err, E("15: domains: more than 1024 octets of domains"));
	}

	/* Numbers and TimeSpans. */
	CHECK(load(CONN RELAY RHOST "domains = a.example\nmax_connections = 0\n") == -1);
	CHECK_STR(err, E("6: max_connections: 0 is below the minimum 1"));
	CHECK(load(CONN RELAY RHOST "domains = a.example\nmax_connections = 65\n") == -1);
	CHECK_STR(err, E("6: max_connections: 65 is above the maximum 64"));
	CHECK(load(CONN RELAY RHOST "domains = a.example\nretry_min = 00:00:00\n") == -1);
	CHECK_STR(err, E("6: retry_min: 00:00:00 is below the minimum 00:00:01"));
	CHECK(load(CONN RELAY RHOST "domains = a.example\nretry_min = 01:00:01\n") == -1);
	CHECK_STR(err, E("6: retry_min: 01:00:01 is above the maximum 01:00:00"));
	CHECK(load(CONN RELAY RHOST "domains = a.example\nretry_max = 1.00:00:01\n") == -1);
	CHECK_STR(err, E("6: retry_max: 1.00:00:01 is above the maximum 1.00:00:00"));
	CHECK(load(CONN RELAY RHOST "domains = a.example\nretry_max = 00:00:30\n") == -1);
	CHECK_STR(err, E("6: retry_max: 00:00:30 is below retry_min 00:01:00"));
	CHECK(load(CONN RELAY RHOST "domains = a.example\nretry_min = 00:10:00\nretry_max = 00:10:00\n") == 0);
	CHECK(load(CONN RELAY RHOST "domains = a.example\nretry_min = 00:20:00\n") == 0);
	CHECK(load(CONN RELAY RHOST "domains = a.example\nretry_min = 01:00:00\nretry_max = 00:30:00\n") == -1);
	CHECK_STR(err, E("7: retry_max: 00:30:00 is below retry_min 01:00:00"));
	CHECK(load(CONN RELAY RHOST "domains = a.example\nmax_queue_lifetime = 00:00:59\n") == -1);
	CHECK_STR(err, E("6: max_queue_lifetime: 00:00:59 is below the minimum 00:01:00"));
	CHECK(load(CONN RELAY RHOST "domains = a.example\nmax_queue_lifetime = 30.00:00:01\n") == -1);
	CHECK_STR(err, E("6: max_queue_lifetime: 30.00:00:01 is above the maximum 30.00:00:00"));

	/* Names and sections. */
	CHECK(load(CONN "[relay Office]\n" RHOST) == -1);
	CHECK_STR(err, E("3: relay name must be quoted: [relay \"NAME\"]"));
	CHECK(load(CONN "[relay \"\"]\n" RHOST) == -1);
	CHECK_STR(err, E("3: empty relay name"));
	CHECK(load(CONN RELAY RHOST "domains = a.example\n[relay \"office\"]\n" RHOST "domains = b.example\n") == -1);
	CHECK_STR(err, E("6: duplicate relay name 'office' (first at line 3)"));
	{
		char many[4096];
		size_t n = (size_t)snprintf(many, sizeof many, CONN);

		for (int i = 0; i <= 16; i++)
			n += (size_t)snprintf(many + n, sizeof many - n,
					      "[relay \"R%d\"]\nhost = 192.0.2.1:25\ndomains = d%d.test\n", i, i);
		CHECK(load(many) == -1);
		CHECK_STR(err, E("51: more than 16 relays"));
	}

	/* Across relays: a domain in one only; one smarthost. */
	CHECK(load(CONN RELAY RHOST "domains = a.example, b.example\n[relay \"B\"]\n" RHOST
		   "domains = c.example, B.example\n") == -1);
	CHECK_STR(err, E("8: domains: b.example is also in relay \"Office\" (line 5)"));
	CHECK(load(CONN RELAY RHOST "domains = *\n[relay \"B\"]\n" RHOST "domains = *\n") == -1);
	CHECK_STR(err, E("8: domains: * is also relay \"Office\"'s (line 5): one smarthost only"));
	CHECK(load(CONN RELAY RHOST "domains = *\n[relay \"B\"]\n" RHOST "domains = b.example\n") == 0);
	CHECK(cfg.nrelays == 2 && cfg.relays[0].smarthost && !cfg.relays[1].smarthost);
}

static void test_relay_auth(void)
{
	char big[400];

	CHECK(load(CONN RELAY RHOST "domains = a.example\nauth_user = gw\n") == -1);
	CHECK_STR(err, E("6: auth_user needs auth_password_file"));
	write_mode("pw", "secret\n", 0600);
	CHECK(load(CONN RELAY RHOST "domains = a.example\nauth_password_file = pw\n") == -1);
	CHECK_STR(err, E("6: auth_password_file needs auth_user"));
	CHECK(load(CONN RELAY RHOST "domains = a.example\nstarttls = no\nauth_user = gw\nauth_password_file = pw\n") ==
	      -1);
	CHECK_STR(err, E("7: auth_user: AUTH is sent only inside TLS, and starttls is no"));

	/* The mode: no group or other bit. */
	write_mode("pw", "secret\n", 0644);
	CHECK(load(CONN RELAY RHOST "domains = a.example\nauth_user = gw\nauth_password_file = pw\n") == -1);
	snprintf(big, sizeof big, "7: auth_password_file %s: mode 0644, must be 0600", dirpath("pw"));
	CHECK_STR(err, E(big));
	CHECK(chmod(dirpath("pw"), 0604) == 0);
	CHECK(load(CONN RELAY RHOST "domains = a.example\nauth_user = gw\nauth_password_file = pw\n") == -1);
	snprintf(big, sizeof big, "7: auth_password_file %s: mode 0604, must be 0600", dirpath("pw"));
	CHECK_STR(err, E(big));
	CHECK(chmod(dirpath("pw"), 0610) == 0);
	CHECK(load(CONN RELAY RHOST "domains = a.example\nauth_user = gw\nauth_password_file = pw\n") == -1);

	/* The contents. */
	write_mode("pw", "\nsecond\n", 0600);
	CHECK(load(CONN RELAY RHOST "domains = a.example\nauth_user = gw\nauth_password_file = pw\n") == -1);
	snprintf(big, sizeof big, "7: auth_password_file %s: the first line is empty (it is the password)",
		 dirpath("pw"));
	CHECK_STR(err, E(big));
	memset(big, 'p', 256);
	big[256] = '\n';
	big[257] = '\0';
	write_mode("pw", big, 0600);
	CHECK(load(CONN RELAY RHOST "domains = a.example\nauth_user = gw\nauth_password_file = pw\n") == -1);
	snprintf(big, sizeof big, "7: auth_password_file %s: the password is longer than 255 octets", dirpath("pw"));
	CHECK_STR(err, E(big));
	memset(big, 'p', 255);
	big[255] = '\0';
	write_mode("pw", big, 0600);
	CHECK(load(CONN RELAY RHOST "domains = a.example\nauth_user = gw\nauth_password_file = pw\n") == 0);
	CHECK(strlen(R->auth_password) == 255);
	write_file("pw", "a\0b\n", 4);
	CHECK(chmod(dirpath("pw"), 0600) == 0);
	CHECK(load(CONN RELAY RHOST "domains = a.example\nauth_user = gw\nauth_password_file = pw\n") == -1);
	snprintf(big, sizeof big, "7: auth_password_file %s: the password holds a NUL octet", dirpath("pw"));
	CHECK_STR(err, E(big));

	/* Missing, a directory, a FIFO (never opened, so never blocks). */
	unlink(dirpath("pw"));
	CHECK(load(CONN RELAY RHOST "domains = a.example\nauth_user = gw\nauth_password_file = pw\n") == -1);
	snprintf(big, sizeof big, "7: auth_password_file %s: No such file or directory", dirpath("pw"));
	CHECK_STR(err, E(big));
	CHECK(mkdir(dirpath("pw"), 0700) == 0);
	CHECK(load(CONN RELAY RHOST "domains = a.example\nauth_user = gw\nauth_password_file = pw\n") == -1);
	snprintf(big, sizeof big, "7: auth_password_file %s: is a directory, not a regular file", dirpath("pw"));
	CHECK_STR(err, E(big));
	rmdir(dirpath("pw"));
	CHECK(mkfifo(dirpath("pw"), 0600) == 0);
	CHECK(load(CONN RELAY RHOST "domains = a.example\nauth_user = gw\nauth_password_file = pw\n") == -1);
	snprintf(big, sizeof big, "7: auth_password_file %s: is a FIFO, not a regular file", dirpath("pw"));
	CHECK_STR(err, E(big));
	unlink(dirpath("pw"));

	/* ca_file: with required, tls_name too; a regular, readable file. */
	write_mode("ca.pem", "x\n", 0644);
	CHECK(load(CONN RELAY RHOST "domains = a.example\nstarttls = required\nca_file = ca.pem\n") == -1);
	CHECK_STR(err, E("7: tls_name is required with ca_file"));
	unlink(dirpath("ca.pem"));
	CHECK(load(CONN RELAY RHOST "domains = a.example\nca_file = ca.pem\n") == -1);
	snprintf(big, sizeof big, "6: ca_file: %s: No such file or directory", dirpath("ca.pem"));
	CHECK_STR(err, E(big));
	CHECK(mkfifo(dirpath("ca.pem"), 0600) == 0);
	CHECK(load(CONN RELAY RHOST "domains = a.example\nca_file = ca.pem\n") == -1);
	snprintf(big, sizeof big, "6: ca_file: %s is a FIFO, not a regular file", dirpath("ca.pem"));
	CHECK_STR(err, E(big));
	unlink(dirpath("ca.pem"));
	if (geteuid() != 0) { /* root reads any file */
		write_mode("ca.pem", "x\n", 0);
		CHECK(load(CONN RELAY RHOST "domains = a.example\nca_file = ca.pem\n") == -1);
		snprintf(big, sizeof big, "6: ca_file: %s: Permission denied", dirpath("ca.pem"));
		CHECK_STR(err, E(big));
		unlink(dirpath("ca.pem"));
	}
}

/* TLS=0: no TLS to require, and no AUTH, which is sent only inside TLS. */
static void test_relay_notls(void)
{
	write_mode("pw", "secret\n", 0600);
	CHECK(load(CONN RELAY RHOST "domains = a.example\nstarttls = required\n") == -1);
	CHECK_STR(err, E("6: starttls: required: this tarpitd is built without TLS (TLS=0)"));
	CHECK(load(CONN RELAY RHOST "domains = a.example\nauth_user = gw\nauth_password_file = pw\n") == -1);
	CHECK_STR(err, E("6: auth_user: AUTH is sent only inside TLS, and this tarpitd is built without TLS (TLS=0)"));
	CHECK(load(CONN RELAY RHOST "domains = a.example\nstarttls = opportunistic\n") == 0);
	unlink(dirpath("pw"));
}

static void test_fields(void)
{
	struct connector_conf *c;
	char b[CONF_FIELD_MAX], small[8];
	unsigned i;
	int f;

	CHECK(conf_field_count() == 24);
	CHECK(conf_field_find("Name") == 0);
	CHECK(conf_field_find("NAME") == 0);
	CHECK(conf_field_find("_name_") == 0);
	CHECK_STR(conf_field_title(0), "Name");
	CHECK(conf_field_key(0) == NULL);
	f = conf_field_find("tarpit_interval");
	CHECK(f > 0);
	CHECK(conf_field_find("TarpitInterval") == f);
	CHECK(conf_field_find("tarpitinterval") == f);
	CHECK(conf_field_find("TARPIT_INTERVAL") == f);
	CHECK(conf_field_find("Tarpit_Interval") == f);
	CHECK_STR(conf_field_key((unsigned)f), "tarpit_interval");
	CHECK_STR(conf_field_title((unsigned)f), "TarpitInterval");
	f = conf_field_find("PipeliningEnabled");
	CHECK(f > 0 && f == conf_field_find("pipelining"));
	CHECK_STR(conf_field_key((unsigned)f), "pipelining");
	f = conf_field_find("MaxInboundConnection");
	CHECK(f > 0 && f == conf_field_find("max_inbound_connections"));
	CHECK(conf_field_find("maxinboundconnections") == f);
	f = conf_field_find("MaxInboundConnectionPerSource");
	CHECK(f > 0 && f == conf_field_find("max_inbound_connections_per_source"));
	CHECK_STR(conf_field_key((unsigned)f), "max_inbound_connections_per_source");
	f = conf_field_find("remoteipranges");
	CHECK(f > 0 && f == conf_field_find("remote_ip_ranges"));
	CHECK_STR(conf_field_title((unsigned)f), "RemoteIPRanges");
	f = conf_field_find("RequireTLS");
	CHECK(f > 0 && f == conf_field_find("require_tls"));
	/* Keys without an Exchange name go by their INI name. */
	f = conf_field_find("greetingdelay");
	CHECK(f > 0);
	CHECK_STR(conf_field_title((unsigned)f), "greeting_delay");
	CHECK(conf_field_find("bogus") == -1);
	CHECK(conf_field_find("") == -1);
	CHECK(conf_field_find("_") == -1);
	CHECK(conf_field_find(NULL) == -1);
	CHECK(conf_field_find("tarpit_interva") == -1);
	CHECK(conf_field_find("tarpit_intervals") == -1);
	CHECK(conf_field_find("hostname") == -1); /* a [server] key */
	CHECK(conf_field_title(24) == NULL && conf_field_key(24) == NULL);
	for (i = 1; i < conf_field_count(); i++) {
		CHECK(conf_field_key(i) != NULL);
		CHECK(conf_field_find(conf_field_key(i)) == (int)i);
		CHECK(conf_field_find(conf_field_title(i)) == (int)i);
	}

#define FMT(name) (conf_field_format(c, (unsigned)conf_field_find(name), b, sizeof b), b)
	CHECK(load("[server]\nhostname = h.example\n" CONN) == 0);
	c = C;
	CHECK_STR(FMT("Name"), "A");
	CHECK_STR(FMT("Enabled"), "True");
	CHECK_STR(FMT("Bindings"), "127.0.0.1:2525");
	CHECK_STR(FMT("RemoteIPRanges"), "0.0.0.0/0, ::/0");
	CHECK_STR(FMT("Fqdn"), "h.example");
	CHECK_STR(FMT("Banner"), "h.example ESMTP");
	CHECK_STR(FMT("TarpitInterval"), "00:00:05");
	CHECK_STR(FMT("tarpit_all_after_unknown"), "True");
	CHECK_STR(FMT("MaxMessageSize"), "10MB");
	CHECK_STR(FMT("MaxRecipientsPerMessage"), "200");
	CHECK_STR(FMT("MaxInboundConnection"), "5000");
	CHECK_STR(FMT("MaxInboundConnectionPerSource"), "20");
	CHECK_STR(FMT("ConnectionTimeout"), "00:10:00");
	CHECK_STR(FMT("ConnectionInactivityTimeout"), "00:05:00");
	CHECK_STR(FMT("MaxProtocolErrors"), "5");
	CHECK_STR(FMT("max_unknown_recipients"), "20");
	CHECK_STR(FMT("greeting_delay"), "00:00:00");
	CHECK_STR(FMT("PipeliningEnabled"), "True");
	CHECK_STR(FMT("RequireTLS"), "False");
	CHECK_STR(FMT("max_auth_failures"), "3");
	CHECK_STR(FMT("starttls"), "True");
	CHECK_STR(FMT("tls_mode"), "starttls");
	CHECK_STR(FMT("TlsMode"), "starttls");
	CHECK_STR(FMT("auth"), "True");
	CHECK_STR(FMT("auth_requires_tls"), "True");
	CHECK(load(CONN "require_tls = yes\nstarttls = 1\nauth = off\nauth_requires_tls = false\n"
			"max_auth_failures = 0\n[tls]\ncertificate = c\nkey = k\n") == 0);
	c = C;
	CHECK_STR(FMT("RequireTLS"), "True");
	CHECK_STR(FMT("starttls"), "True");
	CHECK_STR(FMT("auth"), "False");
	CHECK_STR(FMT("AuthRequiresTLS"), "False");
	CHECK_STR(FMT("max_auth_failures"), "0");
	CHECK(load(CONN "tls_mode = implicit\n[tls]\ncertificate = c\nkey = k\n") == 0);
	c = C;
	CHECK_STR(FMT("tls_mode"), "implicit");
	/* The SPEC §3 order. */
	CHECK(conf_field_find("tls_mode") == conf_field_find("starttls") + 1);
	CHECK(conf_field_find("require_tls") == conf_field_find("tls_mode") + 1);
	CHECK(conf_field_find("max_auth_failures") == conf_field_find("max_unknown_recipients") + 1);
	CHECK(conf_field_find("auth_requires_tls") == (int)conf_field_count() - 1);

	CHECK(load("[connector \"Edge Cases\"]\nenabled = off\n"
		   "bindings = 0.0.0.0:25, [::]:25,\n  [2001:db8::1]:2525\n"
		   "remote_ip_ranges = 10.0.0.1-10.0.0.9, 192.0.2.7/24, 2001:db8::/32, 10.1.1.1\n"
		   "tarpit_interval = 0.00:09:00\nmax_message_size = 1025\n"
		   "connection_timeout = 1.00:00:00\npipelining = no\n"
		   "tarpit_all_after_unknown = 0\nbanner = Hello there\n") == 0);
	c = C;
	CHECK_STR(FMT("name"), "Edge Cases");
	CHECK_STR(FMT("enabled"), "False");
	CHECK_STR(FMT("bindings"), "0.0.0.0:25, [::]:25, [2001:db8::1]:2525");
	CHECK_STR(FMT("remote_ip_ranges"), "10.0.0.1-10.0.0.9, 192.0.2.0/24, 2001:db8::/32, 10.1.1.1");
	CHECK_STR(FMT("tarpit_interval"), "00:09:00");
	CHECK_STR(FMT("max_message_size"), "1025");
	CHECK_STR(FMT("connection_timeout"), "1.00:00:00");
	CHECK_STR(FMT("pipelining"), "False");
	CHECK_STR(FMT("tarpit_all_after_unknown"), "False");
	CHECK_STR(FMT("banner"), "Hello there");
	CHECK(load(CONN "max_message_size = 2GB\n") == 0);
	c = C;
	CHECK_STR(FMT("max_message_size"), "2GB");
	CHECK(load(CONN "max_message_size = 1536 KB\n") == 0);
	c = C;
	CHECK_STR(FMT("max_message_size"), "1536KB");
	CHECK(load(CONN "max_message_size = 1048576\n") == 0);
	c = C;
	CHECK_STR(FMT("max_message_size"), "1MB");

	/* snprintf-like: the full length, and a cut, terminated text. */
	f = conf_field_find("remote_ip_ranges");
	CHECK(conf_field_format(c, (unsigned)f, small, sizeof small) == strlen("0.0.0.0/0, ::/0"));
	CHECK_STR(small, "0.0.0.0");
	CHECK(conf_field_format(c, (unsigned)f, NULL, 0) == strlen("0.0.0.0/0, ::/0"));
	CHECK(conf_field_format(c, (unsigned)conf_field_find("Banner"), small, 1) > 0 && small[0] == '\0');
	CHECK(conf_field_format(c, 24, b, sizeof b) == 0 && b[0] == '\0');
	CHECK(conf_field_format(NULL, 1, b, sizeof b) == 0 && b[0] == '\0');
#undef FMT
}

int main(void)
{
	snprintf(dir, sizeof dir, "/tmp/test_config.XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 2;
	}
	test_defaults();
	if (WITH_TLS)
		test_every_key();
	test_errors();
	test_syntax();
	test_paths();
	test_timespan();
	test_size_bool_uint();
	test_connectors();
	test_control();
	test_not_regular();
	test_host();
	test_overlaps();
	test_wildcards();
	if (WITH_TLS)
		test_tls_auth();
	else
		test_tls_refused();
	test_harvest();
	if (WITH_TLS)
		test_fields();
	test_relay_defaults();
	test_relay_errors();
	if (WITH_TLS) {
		test_relay_every_key();
		test_relay_auth();
	} else {
		test_relay_notls();
	}
	if (loaded)
		config_free(&cfg);
	snprintf(path, sizeof path, "%s/t.ini", dir);
	unlink(path);
	rmdir(dir);
	return check_summary("config");
}
