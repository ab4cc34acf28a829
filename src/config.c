/* config: see config.h.
 *
 * inih does the key = value splitting; our own line reader in front of it
 * does everything inih's build options would otherwise decide, so the
 * result is the same with Debian's libinih and with a stock upstream build
 * (the firmware's): it counts lines (the handler has no line number),
 * strips ';' and '#' comments that start a line or follow whitespace,
 * parses section headers itself (inih cuts names at 49 octets and knows
 * no quotes), and refuses lines longer than inih's buffer instead of
 * letting inih split them. It also handles indented continuation lines
 * (Python configparser style) itself, whatever inih's multi-line option:
 * only the two list keys accept them, so a long list of ranges need not
 * fit in one inih line.
 */
#include "config.h"
#include "log.h"
#include "tls.h"

#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>
#include <unistd.h>

#define DAY 86400u
#define KIB 1024u

/* Exchange's own ceiling for MaxMessageSize is 2 GB; a larger message
 * could not be counted in a 32-bit router's off_t without LFS anyway. */
#define MSG_SIZE_MIN KIB
#define MSG_SIZE_MAX (2u * KIB * KIB * KIB)

enum ktype {
	K_UINT,
	K_TIMESPAN,
	K_SIZE,
	K_BOOL,
	K_HOST,   /* printable ASCII, no spaces, "" = default */
	K_BANNER, /* printable ASCII with spaces, "" = default */
	K_PATH,   /* min 1: must not be empty */
	K_USER,
	K_LOG,
	K_LEVEL,
	K_BINDINGS,
	K_RANGES,
	K_BANCMD, /* a command line split into argv words */
	K_TLSVER, /* 1.2 | 1.3, stored as 12 | 13 */
};

enum sect { S_NONE, S_SERVER, S_TLS, S_AUTH, S_HARVEST, S_CONNECTOR, S_SKIP };

struct key {
	const char *name;
	const char *exch; /* Exchange name for show/set, NULL = none */
	uint32_t min, max;
	uint16_t off;     /* of the field in its section's struct */
	uint8_t type;     /* enum ktype */
	uint8_t sect;     /* enum sect */
};

/* The largest section struct is [server] with its four paths. */
_Static_assert(sizeof(struct server_conf) <= UINT16_MAX, "key offsets are 16-bit");

#define KEY(s, st, n, t, f, lo, hi, x) { n, x, lo, hi, offsetof(st, f), t, s }
#define SK(n, t, f, lo, hi) KEY(S_SERVER, struct server_conf, n, t, f, lo, hi, NULL)
#define TK(n, t, f, lo, hi) KEY(S_TLS, struct tls_conf, n, t, f, lo, hi, NULL)
#define AK(n, t, f, lo, hi) KEY(S_AUTH, struct auth_conf, n, t, f, lo, hi, NULL)
#define HK(n, t, f, lo, hi) KEY(S_HARVEST, struct harvest_conf, n, t, f, lo, hi, NULL)
#define CK(n, t, f, lo, hi, x) KEY(S_CONNECTOR, struct connector_conf, n, t, f, lo, hi, x)

/* The keys of every section but the connectors. The entries the code
 * names are placed by index (-Woverride-init catches a clash). */
enum { G_CONTROL = 8 };

static const struct key keys[] = {
	SK("hostname", K_HOST, hostname, 0, 0),
	SK("max_connections", K_UINT, max_connections, 1, 1000000),
	SK("recipients", K_PATH, recipients, 1, 0),
	SK("spool", K_PATH, spool, 1, 0),
	SK("user", K_USER, user, 0, 0),
	SK("pidfile", K_PATH, pidfile, 0, 0),
	SK("log", K_LOG, log_syslog, 0, 0),
	SK("log_level", K_LEVEL, log_level, 0, 0),
	[G_CONTROL] = SK("control", K_PATH, control, 0, 0),

	/* A pool slot is a full mbedTLS SSL context (tens of KB with its
	 * record buffers): 1024 of them is already more than a router has. */
	TK("certificate", K_PATH, certificate, 1, 0),
	TK("key", K_PATH, key, 1, 0),
	TK("max_sessions", K_UINT, max_sessions, 1, 1024),
	TK("max_sessions_per_source", K_UINT, max_sessions_per_source, 1, 1024),
	TK("min_version", K_TLSVER, min_version, 0, 0),
	TK("session_tickets", K_BOOL, session_tickets, 0, 0),

	AK("users", K_PATH, users, 1, 0),

	/* A million entries is tens of MB: already more than any router has. */
	HK("table_size", K_UINT, table_size, 0, 1000000),
	HK("threshold", K_UINT, threshold, 1, 1000000),
	HK("window", K_TIMESPAN, window, 1, 7 * DAY),
	HK("ban_command", K_BANCMD, ban_buf, 0, 0),
};

/* Connector keys in the order of SPEC §3, which is also the order of the
 * show/set fields. */
enum { C_BINDINGS = 1, C_RANGES = 2, C_REQUIRE_TLS = 19 };

static const struct key conn_keys[] = {
	CK("enabled", K_BOOL, enabled, 0, 0, "Enabled"),
	[C_BINDINGS] = CK("bindings", K_BINDINGS, bindings, 0, 0, "Bindings"),
	[C_RANGES] = CK("remote_ip_ranges", K_RANGES, ranges, 0, 0, "RemoteIPRanges"),
	CK("fqdn", K_HOST, fqdn, 0, 0, "Fqdn"),
	CK("banner", K_BANNER, banner, 0, 0, "Banner"),
	CK("tarpit_interval", K_TIMESPAN, tarpit_interval, 0, 600, "TarpitInterval"),
	CK("tarpit_all_after_unknown", K_BOOL, tarpit_all_after_unknown, 0, 0, NULL),
	CK("max_message_size", K_SIZE, max_message_size, MSG_SIZE_MIN, MSG_SIZE_MAX, "MaxMessageSize"),
	CK("max_recipients_per_message", K_UINT, max_recipients_per_message, 1, 1000,
	   "MaxRecipientsPerMessage"),
	CK("max_inbound_connections", K_UINT, max_inbound_connections, 1, 1000000,
	   "MaxInboundConnection"),
	CK("max_inbound_connections_per_source", K_UINT, max_inbound_connections_per_source, 1, 1000000,
	   "MaxInboundConnectionPerSource"),
	CK("connection_timeout", K_TIMESPAN, connection_timeout, 1, DAY, "ConnectionTimeout"),
	CK("connection_inactivity_timeout", K_TIMESPAN, connection_inactivity_timeout, 1, DAY,
	   "ConnectionInactivityTimeout"),
	CK("max_protocol_errors", K_UINT, max_protocol_errors, 0, 1000000, "MaxProtocolErrors"),
	CK("max_unknown_recipients", K_UINT, max_unknown_recipients, 0, 1000000, NULL),
	CK("max_auth_failures", K_UINT, max_auth_failures, 0, 1000, NULL),
	CK("greeting_delay", K_TIMESPAN, greeting_delay, 0, 600, NULL),
	CK("pipelining", K_BOOL, pipelining, 0, 0, "PipeliningEnabled"),
	CK("starttls", K_BOOL, starttls, 0, 0, NULL),
	[C_REQUIRE_TLS] = CK("require_tls", K_BOOL, require_tls, 0, 0, "RequireTLS"),
	CK("auth", K_BOOL, auth, 0, 0, NULL),
	CK("auth_requires_tls", K_BOOL, auth_requires_tls, 0, 0, NULL),
};

#define NKEYS (sizeof keys / sizeof keys[0])
#define NCONN (sizeof conn_keys / sizeof conn_keys[0])

static const char *const sect_name[] = {
	[S_SERVER] = "server", [S_TLS] = "tls", [S_AUTH] = "auth", [S_HARVEST] = "harvest",
};

static const uint16_t sect_base[] = {
	[S_SERVER] = offsetof(struct config, server),
	[S_TLS] = offsetof(struct config, tls),
	[S_AUTH] = offsetof(struct config, auth),
	[S_HARVEST] = offsetof(struct config, harvest),
};

static const char default_ranges[] = "0.0.0.0-255.255.255.255, ::/0";

/* Per-connector parse state that the loaded config does not keep. */
struct conn_extra {
	bool bad_list[2];   /* bindings, remote_ip_ranges had a bad entry */
	int seen[NCONN];    /* line a key was given on, 0 = not given */
	int binding_line[CONF_MAX_BINDINGS];
	int range_line[CONF_MAX_RANGES]; /* 0 = the default ranges */
};

struct pstate {
	bool bad_connector; /* a connector header was refused: no cascade */
	/* What the reader handed inih last, to catch lines it swallowed, and
	 * what an indented line would continue. */
	bool line_pending;
	bool key_in_section;
	const struct key *last_key; /* continuation target, NULL = ignore */

	struct config *c;
	FILE *f;
	int lineno;
	struct errlist errs; /* its path is the INI file's */
	int read_errno; /* 0, or the errno of a read error */

	enum sect sect;
	struct connector_conf *conns; /* malloc'd, nconns of them */
	struct conn_extra *extra;     /* parallel to conns */
	unsigned nconns;
	struct connector_conf *conn;  /* the current one, NULL outside */
	struct conn_extra *cx;

	int seen[NKEYS];              /* line a key was given on, 0 = not given */
	int sect_line[S_CONNECTOR];   /* of the section headers, 0 = absent */
};

/* ---- messages ---------------------------------------------------------- */

static void err_at(struct pstate *st, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void err_at(struct pstate *st, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	errlist_add(&st->errs, line, NULL, fmt, ap);
	va_end(ap);
}

/* An error in the value of key k on the current line: "k: message". */
static void kerr(struct pstate *st, const struct key *k, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void kerr(struct pstate *st, const struct key *k, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	errlist_add(&st->errs, st->lineno, k->name, fmt, ap);
	va_end(ap);
}

/* Values quoted back in messages are cut and made printable, so a broken
 * file cannot flood or garble the terminal it is reported on. */
static const char *echo(char *buf, size_t len, const char *s)
{
	return log_echo(buf, len, s, strlen(s));
}

#define ECHO_BUF LOG_ECHO_BUF

/* What a value of each type must be, after "key: 'value' ". */
static const char *const bad_text[] = {
	[K_UINT] = "is not a number",
	[K_TIMESPAN] = "is not a TimeSpan ([d.]hh:mm:ss)",
	[K_SIZE] = "is not a size (bytes, or a number with KB, MB or GB)",
	[K_BOOL] = "is not a boolean (yes/no, true/false, on/off, 1/0)",
	[K_USER] = "is not a valid user name",
	[K_LOG] = "must be syslog or stderr",
	[K_LEVEL] = "must be error, warning, notice, info or debug",
	[K_BINDINGS] = "is not ip:port or [ipv6]:port",
	[K_RANGES] = "is not an address, a CIDR block or a range a-b",
	/* of its first word */
	[K_BANCMD] = "must be an absolute path (the command runs without a shell or PATH search)",
	[K_TLSVER] = "must be 1.2 or 1.3",
};

static void bad_value(struct pstate *st, const struct key *k, const char *v)
{
	char e[ECHO_BUF];

	kerr(st, k, "'%s' %s", echo(e, sizeof e, v), bad_text[k->type]);
}

/* ---- value parsers ----------------------------------------------------- */

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r';
}

/* Digits into *v, saturating: 0 ok, -1 not a number, -2 too large. */
static int scan_u64(const char **sp, uint64_t limit, uint64_t *v)
{
	const char *s = *sp;
	uint64_t acc = 0;
	bool over = false;

	if (!is_digit(*s))
		return -1;
	for (; is_digit(*s); s++) {
		unsigned d = (unsigned)(*s - '0');

		if (over || acc > (limit - d) / 10)
			over = true;
		else
			acc = acc * 10 + d;
	}
	*sp = s;
	*v = acc;
	return over ? -2 : 0;
}

static int ts_parse(const char *s, uint32_t *out)
{
	static const uint8_t top[3] = { 23, 59, 59 };
	uint64_t days = 0;
	uint32_t secs = 0;
	const char *p = s;
	int over = 0, i;

	if (strcmp(s, "0") == 0) {
		*out = 0;
		return 0;
	}
	if (strchr(s, '.')) {
		int r = scan_u64(&p, UINT32_MAX / DAY + 1, &days);

		if (r == -1 || *p != '.')
			return -1;
		over = r;
		p++;
	}
	/* hh:mm:ss, each part one or two digits */
	for (i = 0; i < 3; i++) {
		unsigned v;

		if ((i > 0 && *p++ != ':') || !is_digit(*p))
			return -1;
		v = (unsigned)(*p++ - '0');
		if (is_digit(*p))
			v = v * 10 + (unsigned)(*p++ - '0');
		if (v > top[i])
			return -1;
		secs = secs * 60 + v;
	}
	if (*p != '\0')
		return -1;
	if (over || days > (UINT32_MAX - secs) / DAY)
		return -2;
	*out = (uint32_t)days * DAY + secs;
	return 0;
}

int parse_timespan(const char *s, uint32_t *seconds)
{
	uint32_t v;

	if (!s || ts_parse(s, &v) != 0)
		return -1;
	*seconds = v;
	return 0;
}

size_t format_timespan(uint32_t seconds, char *buf, size_t len)
{
	char t[32];
	uint32_t r = seconds % DAY;
	int n = 0;

	if (seconds >= DAY)
		n = snprintf(t, sizeof t, "%u.", (unsigned)(seconds / DAY));
	snprintf(t + n, sizeof t - (size_t)n, "%02u:%02u:%02u", (unsigned)(r / 3600),
		 (unsigned)(r / 60 % 60), (unsigned)(r % 60));
	return put_text(buf, len, t);
}

/* Parsed in any order; format_size uses the first four. */
static const struct {
	char name[3];
	uint8_t shift;
} units[] = { { "", 0 }, { "KB", 10 }, { "MB", 20 }, { "GB", 30 }, { "B", 0 } };

static int size_parse(const char *s, uint64_t *bytes)
{
	const char *p = s;
	uint64_t v;
	size_t i;
	int r;

	r = scan_u64(&p, UINT64_MAX, &v);
	if (r == -1)
		return -1;
	while (*p == ' ' || *p == '\t')
		p++;
	for (i = 0; i < sizeof units / sizeof units[0]; i++) {
		if (strcasecmp(p, units[i].name) != 0)
			continue;
		/* "10 " is a number with a dangling space, not a unit. */
		if (i == 0 && p > s && is_ws(p[-1]))
			return -1;
		if (r == -2 || v > UINT64_MAX >> units[i].shift)
			return -2;
		*bytes = v << units[i].shift;
		return 0;
	}
	return -1;
}

int parse_size(const char *s, uint64_t *bytes)
{
	uint64_t v;

	if (!s || size_parse(s, &v) != 0)
		return -1;
	*bytes = v;
	return 0;
}

static void format_size(uint64_t v, char *buf, size_t len)
{
	unsigned i = 0;

	while (i < 3 && v >= KIB && v % KIB == 0) {
		v /= KIB;
		i++;
	}
	snprintf(buf, len, "%llu%s", (unsigned long long)v, units[i].name);
}

/* A count, TimeSpan or size as the INI file writes it. */
static void format_number(unsigned type, uint64_t v, char *buf, size_t len)
{
	if (type == K_TIMESPAN)
		format_timespan((uint32_t)v, buf, len);
	else if (type == K_SIZE)
		format_size(v, buf, len);
	else
		snprintf(buf, len, "%llu", (unsigned long long)v);
}

int parse_bool(const char *s, bool *v)
{
	/* Pairs of true and false. */
	static const char *const words[] = { "yes", "no", "true", "false", "on", "off", "1", "0" };
	size_t i;

	for (i = 0; s && i < 8; i++) {
		if (strcasecmp(s, words[i]) == 0) {
			*v = i % 2 == 0;
			return 0;
		}
	}
	return -1;
}

static int uint_parse(const char *s, uint64_t *v)
{
	const char *p = s;
	int r = scan_u64(&p, UINT64_MAX, v);

	if (r == -1 || *p != '\0')
		return -1;
	return r;
}

int parse_uint(const char *s, uint32_t min, uint32_t max, uint32_t *v)
{
	uint64_t x;

	if (!s || uint_parse(s, &x) != 0 || x < min || x > max)
		return -1;
	*v = (uint32_t)x;
	return 0;
}

/* ---- applying one key -------------------------------------------------- */

static bool text_ok(const char *s, bool spaces)
{
	size_t i;

	for (i = 0; s[i]; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch > 0x7e || ch < 0x20 || (ch == ' ' && !spaces))
			return false;
	}
	return i < CONF_TEXT_MAX;
}

/* Conservative: what useradd accepts by default, so the name can never
 * be mistaken for an option or a uid. */
static bool user_ok(const char *s)
{
	size_t i;

	if (s[0] == '-')
		return false;
	for (i = 0; s[i]; i++) {
		char ch = s[i];

		if (!(ch >= 'a' && ch <= 'z') && !(ch >= 'A' && ch <= 'Z') && !is_digit(ch) &&
		    ch != '_' && ch != '-' && ch != '.')
			return false;
	}
	return i < 33;
}

static void apply_number(struct pstate *st, const struct key *k, const char *v, void *field)
{
	char e[ECHO_BUF], lim[32];
	uint64_t x = 0;
	uint32_t t = 0;
	bool below;
	int r;

	if (k->type == K_UINT) {
		r = uint_parse(v, &x);
	} else if (k->type == K_SIZE) {
		r = size_parse(v, &x);
	} else {
		r = ts_parse(v, &t);
		x = t;
	}
	if (r == -1) {
		bad_value(st, k, v);
		return;
	}
	below = r == 0 && x < k->min;
	if (r == 0 && !below && x <= k->max) {
		t = (uint32_t)x;
		if (k->type == K_SIZE)
			memcpy(field, &x, sizeof x);
		else
			memcpy(field, &t, sizeof t);
		return;
	}
	format_number(k->type, below ? k->min : k->max, lim, sizeof lim);
	kerr(st, k, below ? "%s is below the minimum %s" : "%s is above the maximum %s",
	     echo(e, sizeof e, v), lim);
}

static bool same_binding(const struct binding *a, const struct binding *b)
{
	/* What the server opens one socket for. */
	return a->port == b->port && ip_cmp(&a->addr, &b->addr) == 0;
}

/* Splits one line's worth of a list value. A trailing comma is allowed so
 * a list can go on, indented, on the next line. */
static void apply_list_items(struct pstate *st, const struct key *k, const char *v)
{
	struct connector_conf *cc = st->conn;
	bool bind = k->type == K_BINDINGS;
	unsigned *count = bind ? &cc->nbindings : &cc->nranges;
	char item[128], e[ECHO_BUF];
	const char *p = v;

	for (;;) {
		const char *comma = strchr(p, ',');
		const char *end = comma ? comma : p + strlen(p);
		const char *a = p, *b = end;
		struct binding bd;
		struct ip_range r;
		size_t n;
		unsigned i;

		while (a < b && is_ws(*a))
			a++;
		while (b > a && is_ws(b[-1]))
			b--;
		n = (size_t)(b - a);
		if (n == 0) {
			if (!comma && p != v)
				return;
			kerr(st, k, "empty entry");
			return;
		}
		if (n >= sizeof item) {
			kerr(st, k, "entry too long");
			return;
		}
		memcpy(item, a, n);
		item[n] = '\0';
		if (bind ? binding_parse(item, &bd) < 0 : ip_range_parse(item, &r) < 0) {
			bad_value(st, k, item);
			return;
		}
		for (i = 0; bind && i < cc->nbindings; i++) {
			if (same_binding(&cc->bindings[i], &bd) && cc->bindings[i].v6 == bd.v6) {
				kerr(st, k, "%s is listed twice", echo(e, sizeof e, item));
				return;
			}
		}
		if (*count >= (bind ? CONF_MAX_BINDINGS : CONF_MAX_RANGES)) {
			kerr(st, k, "more than %d entries", bind ? CONF_MAX_BINDINGS : CONF_MAX_RANGES);
			return;
		}
		if (bind) {
			st->cx->binding_line[*count] = st->lineno;
			cc->bindings[*count] = bd;
		} else {
			st->cx->range_line[*count] = st->lineno;
			cc->ranges[*count] = r;
		}
		++*count;
		if (!comma)
			return;
		p = comma + 1;
	}
}

/* A list with a bad entry is not reported once more as empty. */
static void apply_list(struct pstate *st, const struct key *k, const char *v)
{
	unsigned before = st->errs.n;

	if (*v)
		apply_list_items(st, k, v);
	if (st->errs.n != before)
		st->cx->bad_list[k->type == K_RANGES] = true;
}

/* Split once here, so serving never parses it and no shell ever sees it:
 * words are separated by spaces and tabs, and nothing else is special.
 * Quotes are refused rather than passed on literally, since whoever
 * writes them expects them to group words. The address must be a word of
 * its own, so it always reaches the command as exactly one argument. */
static void apply_ban(struct pstate *st, const struct key *k, const char *v,
		      struct harvest_conf *hc)
{
	char e[ECHO_BUF], buf[CONF_BAN_MAX];
	uint16_t off[CONF_BAN_WORDS] = { 0 };
	unsigned argc = 0, addr = 0;
	bool have_addr = false;
	size_t n = strlen(v), used = 0, i;
	const char *p = v;

	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)v[i];

		if (ch == '"' || ch == '\'') {
			kerr(st, k, "quotes are not supported (words are split on spaces and tabs, without a shell)");
			return;
		}
		if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
			kerr(st, k, "holds control characters");
			return;
		}
	}
	/* The words and their NULs never take more than the text and one NUL. */
	if (n >= sizeof buf) {
		kerr(st, k, "longer than %zu octets", sizeof buf - 1);
		return;
	}
	for (;;) {
		const char *w;
		size_t wlen;

		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		w = p;
		while (*p && *p != ' ' && *p != '\t')
			p++;
		wlen = (size_t)(p - w);
		if (argc == CONF_BAN_WORDS) {
			kerr(st, k, "more than %d words", CONF_BAN_WORDS);
			return;
		}
		off[argc] = (uint16_t)used;
		memcpy(buf + used, w, wlen);
		buf[used + wlen] = '\0';
		used += wlen + 1;
		if (strcmp(buf + off[argc], "%a") == 0) {
			if (have_addr) {
				kerr(st, k, "%%a appears more than once");
				return;
			}
			have_addr = true;
			addr = argc;
		} else if (strstr(buf + off[argc], "%a")) {
			kerr(st, k, "%%a must be a word of its own, not part of '%s'",
			     echo(e, sizeof e, buf + off[argc]));
			return;
		}
		argc++;
	}
	if (argc == 0) {
		hc->ban_argc = 0;
		return;
	}
	if (buf[0] != '/') {
		bad_value(st, k, buf);
		return;
	}
	if (!have_addr) {
		kerr(st, k, "%%a is missing (the word that stands for the address)");
		return;
	}
	memcpy(hc->ban_buf, buf, used);
	memcpy(hc->ban_off, off, sizeof off);
	hc->ban_argc = argc;
	hc->ban_addr = addr;
}

static void apply(struct pstate *st, const struct key *k, const char *v, char *base)
{
	static const char *const levels[] = { "error", "warning", "notice", "info", "debug" };
	char e[ECHO_BUF];
	void *field = base + k->off;
	size_t n = strlen(v), i;
	bool b;

	switch (k->type) {
	case K_UINT:
	case K_TIMESPAN:
	case K_SIZE:
		apply_number(st, k, v, field);
		return;
	case K_BOOL:
		if (parse_bool(v, &b) < 0)
			break;
		memcpy(field, &b, sizeof b);
		return;
	case K_HOST:
	case K_BANNER:
		if (!text_ok(v, k->type == K_BANNER)) {
			kerr(st, k, "'%s' must be printable ASCII%s, at most %d octets", echo(e, sizeof e, v),
			     k->type == K_BANNER ? "" : " without spaces", CONF_TEXT_MAX - 1);
			return;
		}
		memcpy(field, v, n + 1);
		return;
	case K_PATH:
		for (i = 0; i < n; i++) {
			if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f) {
				kerr(st, k, "path holds control characters");
				return;
			}
		}
		if (n == 0 && k->min) {
			kerr(st, k, "empty path");
			return;
		}
		if (n >= PATH_MAX) {
			kerr(st, k, "path too long");
			return;
		}
		memcpy(field, v, n + 1);
		return;
	case K_USER:
		if (!user_ok(v))
			break;
		memcpy(field, v, n + 1);
		return;
	case K_LOG:
		b = strcmp(v, "syslog") == 0;
		if (!b && strcmp(v, "stderr") != 0)
			break;
		memcpy(field, &b, sizeof b);
		return;
	case K_LEVEL:
		for (i = 0; i < 5; i++) {
			if (strcmp(v, levels[i]) == 0) {
				enum log_level l = (enum log_level)i;
				memcpy(field, &l, sizeof l);
				return;
			}
		}
		break;
	case K_BINDINGS:
	case K_RANGES:
		apply_list(st, k, v);
		return;
	case K_BANCMD:
		apply_ban(st, k, v, &st->c->harvest);
		return;
	case K_TLSVER:
		if (strcmp(v, "1.2") != 0 && strcmp(v, "1.3") != 0)
			break;
		/* Known at build time: the library either has a TLS 1.3 server
		 * or not, so this is the configuration's error, with its line. */
		if (v[2] == '3' && tls_max_version() < 13) {
			kerr(st, k, "1.3: this tarpitd's mbedTLS (%s) has no TLS 1.3; use 1.2",
			     tls_library_version());
			return;
		}
		memcpy(field, &(uint32_t){ v[2] == '3' ? 13u : 12u }, sizeof(uint32_t));
		return;
	}
	bad_value(st, k, v);
}

/* ---- inih glue ----------------------------------------------------------- */

static void set_server_defaults(struct server_conf *s)
{
	s->max_connections = 256;
	strcpy(s->recipients, "recipients");
	strcpy(s->spool, "/var/spool/tarpitd");
	s->log_syslog = true;
	s->log_level = LOG_LVL_INFO;
}

static void set_conn_defaults(struct connector_conf *cc)
{
	cc->enabled = true;
	cc->tarpit_interval = 5;
	cc->tarpit_all_after_unknown = true;
	cc->max_message_size = 10 * KIB * KIB;
	cc->max_recipients_per_message = 200;
	cc->max_inbound_connections = 5000;
	cc->max_inbound_connections_per_source = 20;
	cc->connection_timeout = 600;
	cc->connection_inactivity_timeout = 300;
	cc->max_protocol_errors = 5;
	cc->max_unknown_recipients = 20;
	cc->greeting_delay = 0;
	cc->pipelining = true;
	cc->max_auth_failures = 3;
	cc->starttls = true;
	cc->require_tls = false;
	cc->auth = true;
	cc->auth_requires_tls = true;
}

/* One more at a time: there are few, and the loaded array has no slack. */
static bool grow_connectors(struct pstate *st)
{
	struct connector_conf *c;
	struct conn_extra *x;

	c = realloc(st->conns, (st->nconns + 1) * sizeof *c);
	if (!c)
		return false;
	st->conns = c;
	x = realloc(st->extra, (st->nconns + 1) * sizeof *x);
	if (!x)
		return false;
	st->extra = x;
	return true;
}

/* name is n octets, not terminated. */
static void enter_connector(struct pstate *st, const char *name, size_t n)
{
	struct connector_conf *cc;
	unsigned i;

	st->conn = NULL;
	st->cx = NULL;
	st->sect = S_SKIP;
	/* As in Exchange, connector names are case-insensitive identities:
	 * `show NAME` and `set NAME` must find exactly one. */
	for (i = 0; i < st->nconns; i++) {
		if (strlen(st->conns[i].name) == n && strncasecmp(st->conns[i].name, name, n) == 0) {
			err_at(st, st->lineno, "duplicate connector name '%.*s' (first at line %d)", (int)n,
			       name, st->conns[i].line);
			st->bad_connector = true;
			return;
		}
	}
	if (st->nconns >= CONF_MAX_CONNECTORS) {
		err_at(st, st->lineno, "more than %d connectors", CONF_MAX_CONNECTORS);
		st->bad_connector = true;
		return;
	}
	if (!grow_connectors(st)) {
		err_at(st, st->lineno, "out of memory");
		return;
	}
	cc = &st->conns[st->nconns];
	memset(cc, 0, sizeof *cc);
	memset(&st->extra[st->nconns], 0, sizeof st->extra[0]);
	set_conn_defaults(cc);
	memcpy(cc->name, name, n);
	cc->name[n] = '\0';
	cc->line = st->lineno;
	st->conn = cc;
	st->cx = &st->extra[st->nconns];
	st->nconns++;
	st->sect = S_CONNECTOR;
}

/* h points at '[', comments are gone and trailing space trimmed. */
static void section(struct pstate *st, char *h)
{
	char e[ECHO_BUF];
	char *p = h + 1, *word, *close, *q, *qend = NULL;
	size_t wlen, i;
	unsigned s;
	bool inq = false;

	st->sect = S_SKIP;
	st->conn = NULL;
	st->cx = NULL;
	st->last_key = NULL;
	for (close = p; *close && (inq || *close != ']'); close++)
		if (*close == '"')
			inq = !inq;
	if (*close != ']' || close[1] != '\0') {
		err_at(st, st->lineno, *close != ']' ? "missing ']' in section header"
						     : "unexpected text after ']'");
		if (strncmp(p, "connector", 9) == 0)
			st->bad_connector = true;
		return;
	}
	*close = '\0';
	while (is_ws(*p))
		p++;
	word = p;
	while (*p && !is_ws(*p) && *p != '"')
		p++;
	wlen = (size_t)(p - word);
	while (is_ws(*p))
		p++;
	q = p;
	if (*q == '"') {
		qend = strchr(q + 1, '"');
		p = qend + 1; /* the scan for ']' saw the quotes balanced */
		while (is_ws(*p))
			p++;
	}

	if (wlen == 9 && strncmp(word, "connector", 9) == 0) {
		size_t n;

		st->bad_connector = true;
		if (!qend || *p != '\0') {
			err_at(st, st->lineno, "connector name must be quoted: [connector \"NAME\"]");
			return;
		}
		n = (size_t)(qend - q - 1);
		if (n == 0) {
			err_at(st, st->lineno, "empty connector name");
			return;
		}
		if (n >= CONF_NAME_MAX) {
			err_at(st, st->lineno, "connector name longer than %d octets", CONF_NAME_MAX - 1);
			return;
		}
		for (i = 0; i < n; i++) {
			unsigned char ch = (unsigned char)q[1 + i];

			/* Names end up quoted in stats lines and on command lines. */
			if (ch < 0x20 || ch > 0x7e || ch == '\\') {
				err_at(st, st->lineno,
				       "connector name may hold only printable ASCII other than '\"' and '\\'");
				return;
			}
		}
		st->bad_connector = false;
		enter_connector(st, q + 1, n);
		return;
	}
	for (s = S_SERVER; *q == '\0' && s < S_CONNECTOR; s++) {
		if (strncmp(word, sect_name[s], wlen) != 0 || sect_name[s][wlen] != '\0')
			continue;
		if (st->sect_line[s]) {
			err_at(st, st->lineno, "[%s] appears twice (first at line %d)", sect_name[s],
			       st->sect_line[s]);
			return;
		}
		st->sect_line[s] = st->lineno;
		st->sect = (enum sect)s;
#ifdef TARPITD_NO_TLS
		if (s == S_TLS)
			err_at(st, st->lineno, "[tls]: this tarpitd is built without TLS (TLS=0)");
#endif
		return;
	}
	err_at(st, st->lineno, "unknown section [%s]", echo(e, sizeof e, h + 1));
}

static void finish_line(struct pstate *st)
{
	if (st->line_pending)
		err_at(st, st->lineno, "expected 'key = value'");
	st->line_pending = false;
}

static void continuation(struct pstate *st, const char *v)
{
	const struct key *k = st->last_key;

	if (!k)
		return;
	if (k->type == K_BINDINGS || k->type == K_RANGES)
		apply_list(st, k, v);
	else
		err_at(st, st->lineno, "indented line continues '%s', which takes a single value", k->name);
}

/* fgets-style reader in front of inih; see the comment at the top. */
static char *reader(char *str, int num, void *stream)
{
	struct pstate *st = stream;
	size_t cap, n = 0;
	bool too_long = false, nul = false, inq = false;
	char *p, *q;
	int ch;

	finish_line(st);
	if (num < 8)
		return NULL;
	cap = (size_t)num - 2; /* room for the '\n' inih expects and the NUL */
	ch = getc(st->f);
	if (ch == EOF) {
		if (ferror(st->f))
			st->read_errno = errno ? errno : EIO;
		return NULL;
	}
	st->lineno++;
	for (; ch != EOF && ch != '\n'; ch = getc(st->f)) {
		if (ch == '\r') {
			int next = getc(st->f);

			if (next == '\n' || next == EOF)
				break;
			ungetc(next, st->f);
		}
		if (ch == '\0')
			nul = true;
		if (n < cap)
			str[n++] = (char)ch;
		else
			too_long = true;
	}
	if (ch == EOF && ferror(st->f))
		st->read_errno = errno ? errno : EIO;
	str[n] = '\0';
	if (st->lineno == 1 && n >= 3 && memcmp(str, "\xef\xbb\xbf", 3) == 0) {
		memmove(str, str + 3, n - 2);
		n -= 3;
	}
	for (p = str; is_ws(*p); p++)
		;
	if (too_long || nul) {
		if (too_long)
			err_at(st, st->lineno, "line too long (more than %zu octets)", cap);
		else
			err_at(st, st->lineno, "NUL octet in line");
		/* Keys after a lost header belong to no known section. */
		if (*p == '[')
			st->sect = S_SKIP;
		strcpy(str, "\n");
		return str;
	}
	for (q = p; *q; q++) {
		if (*p == '[' && *q == '"')
			inq = !inq;
		if (!inq && (*q == ';' || *q == '#') && (q == p || is_ws(q[-1]))) {
			*q = '\0';
			break;
		}
	}
	while (q > p && is_ws(q[-1]))
		*--q = '\0';
	if (*p == '\0') {
		strcpy(str, "\n");
		return str;
	}
	/* Before the '[' test, as in inih: "  [::1]:25" continues bindings. */
	if (p > str && st->key_in_section) {
		continuation(st, p);
		strcpy(str, "\n");
		return str;
	}
	if (*p == '[') {
		section(st, p);
		st->key_in_section = false;
		/* inih still needs a section line to end multi-line values. */
		strcpy(str, "[s]\n");
		return str;
	}
	/* Unindented, so inih never takes it for a continuation itself. */
	st->line_pending = true;
	memmove(str, p, (size_t)(q - p));
	str[q - p] = '\n';
	str[q - p + 1] = '\0';
	return str;
}

static int handler(void *user, const char *section_unused, const char *name, const char *value)
{
	struct pstate *st = user;
	const struct key *t = keys, *k;
	char e[ECHO_BUF];
	size_t n = NKEYS, i;
	int *seen = st->seen;
	char *base;

	(void)section_unused;
	st->line_pending = false;
	st->key_in_section = true;
	st->last_key = NULL;
	if (st->sect == S_SKIP)
		return 1;
	/* Only an inih built with INI_ALLOW_NO_VALUE passes NULL. */
	if (!value) {
		err_at(st, st->lineno, "expected 'key = value'");
		return 1;
	}
	if (!name[0]) {
		err_at(st, st->lineno, "missing key name before '='");
		return 1;
	}
	if (st->sect == S_NONE) {
		err_at(st, st->lineno, "key '%s' outside any section", echo(e, sizeof e, name));
		return 1;
	}
	if (st->sect == S_CONNECTOR) {
		t = conn_keys;
		n = NCONN;
		seen = st->cx->seen;
		base = (char *)st->conn;
	} else {
		base = (char *)st->c + sect_base[st->sect];
	}
	for (i = 0; i < n && (t[i].sect != st->sect || strcmp(t[i].name, name) != 0); i++)
		;
	if (i == n) {
		echo(e, sizeof e, name);
		if (st->conn)
			err_at(st, st->lineno, "unknown key '%s' in [connector \"%s\"]", e, st->conn->name);
		else
			err_at(st, st->lineno, "unknown key '%s' in [%s]", e, sect_name[st->sect]);
		return 1;
	}
	k = &t[i];
	if (seen[i]) {
		err_at(st, st->lineno, "duplicate key '%s' (first at line %d)", name, seen[i]);
		return 1;
	}
	seen[i] = st->lineno;
	st->last_key = k;
	apply(st, k, value, base);
	return 1;
}

/* ---- after the last line ------------------------------------------------- */

static void resolve_path(struct pstate *st, char *p, const char *key, int line)
{
	const char *slash = strrchr(st->errs.path, '/');
	size_t dlen, plen = strlen(p);

	if (!p[0] || p[0] == '/' || !slash)
		return;
	dlen = (size_t)(slash - st->errs.path);
	if (dlen + 1 + plen >= PATH_MAX) {
		err_at(st, line, "%s: path too long", key);
		return;
	}
	memmove(p + dlen + 1, p, plen + 1);
	memcpy(p, st->errs.path, dlen);
	p[dlen] = '/';
}

static void finish_connector(struct pstate *st)
{
	struct server_conf *s = &st->c->server;
	struct connector_conf *cc = st->conn;
	struct conn_extra *cx = st->cx;
	int l;

	if (cc->nbindings == 0 && !cx->bad_list[0]) {
		l = cx->seen[C_BINDINGS];
		err_at(st, l ? l : cc->line, "bindings: at least one ip:port is required");
	}
	if (cc->nranges == 0 && !cx->bad_list[1]) {
		l = cx->seen[C_RANGES];
		if (l) {
			err_at(st, l, "remote_ip_ranges: at least one entry is required");
		} else {
			int saved = st->lineno;

			st->lineno = 0; /* range_line 0: the entries come from no line */
			apply_list(st, &conn_keys[C_RANGES], default_ranges);
			st->lineno = saved;
		}
	}
	if (cc->require_tls) {
		l = cx->seen[C_REQUIRE_TLS];
		/* Either way no client could ever send MAIL. */
		if (!st->sect_line[S_TLS])
			err_at(st, l ? l : cc->line, "require_tls needs a [tls] section");
		else if (!cc->starttls)
			err_at(st, l ? l : cc->line, "require_tls needs starttls = yes");
	}
	if (!cc->fqdn[0])
		strcpy(cc->fqdn, s->hostname);
	if (!cc->banner[0]) {
		size_t n = strlen(cc->fqdn);

		if (n + sizeof " ESMTP" > sizeof cc->banner) {
			err_at(st, cc->line, "banner: the default '<fqdn> ESMTP' is longer than %d octets; set banner",
			       CONF_TEXT_MAX - 1);
		} else {
			memcpy(cc->banner, cc->fqdn, n);
			memcpy(cc->banner + n, " ESMTP", sizeof " ESMTP");
		}
	}
}

static bool is_wildcard(const struct binding *b)
{
	static const struct ip_addr any6 = {{0}};
	static const struct ip_addr any4 = {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0}};

	return ip_cmp(&b->addr, b->v6 ? &any6 : &any4) == 0;
}

/* Whether connector i takes part in the checks across connectors: a
 * disabled one binds nothing, and a bad list was reported already. */
static bool active(const struct pstate *st, unsigned i)
{
	return st->conns[i].enabled && !st->extra[i].bad_list[0] && !st->extra[i].bad_list[1];
}

/* The first binding before bb (of connector i) that the kernel would not
 * bind next to it, in file order, with its connector in *pi; or NULL. */
static const struct binding *wildcard_clash(const struct pstate *st, unsigned i,
					    const struct binding *bb, unsigned *pi)
{
	for (*pi = 0; *pi <= i; ++*pi) {
		const struct connector_conf *a = &st->conns[*pi];
		const struct binding *ab;

		if (!active(st, *pi))
			continue;
		for (ab = a->bindings; ab < a->bindings + a->nbindings && ab != bb; ab++)
			if (ab->port == bb->port && ab->v6 == bb->v6 && is_wildcard(ab) != is_wildcard(bb))
				return ab;
	}
	return NULL;
}

/* The kernel refuses to bind a specific address on a port that a
 * wildcard socket of the same family already listens on (and the other
 * way round), so the server could never start. Checked over every
 * enabled binding, within one connector too; each later binding is
 * reported once. */
static void check_wildcards(struct pstate *st)
{
	unsigned i, j, pi;

	for (i = 0; i < st->nconns; i++) {
		const struct connector_conf *b = &st->conns[i];

		for (j = 0; active(st, i) && j < b->nbindings; j++) {
			const struct binding *ab = wildcard_clash(st, i, &b->bindings[j], &pi);
			char ta[80], tb[80], mine[CONF_NAME_MAX + 16] = "";

			if (!ab)
				continue;
			binding_format(ab, ta, sizeof ta);
			binding_format(&b->bindings[j], tb, sizeof tb);
			/* Within one connector it is named once, at the end. */
			if (pi != i)
				snprintf(mine, sizeof mine, " of connector \"%s\"", b->name);
			err_at(st, st->extra[i].binding_line[j],
			       "bindings: %s%s and %s of connector \"%s\" cannot both be bound: "
			       "the kernel refuses a wildcard and a specific address on one port",
			       tb, mine, ta, st->conns[pi].name);
		}
	}
}

static bool contains(const struct ip_range *outer, const struct ip_range *inner)
{
	return ip_cmp(&outer->lo, &inner->lo) <= 0 && ip_cmp(&inner->hi, &outer->hi) <= 0;
}

/* A binding connectors a and b both have, or NULL. */
static const struct binding *shared_binding(const struct connector_conf *a,
					    const struct connector_conf *b)
{
	unsigned x, y;

	for (x = 0; x < a->nbindings; x++)
		for (y = 0; y < b->nbindings; y++)
			if (same_binding(&a->bindings[x], &b->bindings[y]))
				return &b->bindings[y];
	return NULL;
}

/* Each entry of connector ib against those of ia, which share binding
 * `shared`; reported at ib's entry, once per entry. */
static void check_ranges(struct pstate *st, unsigned ia, unsigned ib, const struct binding *shared)
{
	const struct connector_conf *a = &st->conns[ia], *b = &st->conns[ib];
	unsigned rb, ra;

	for (rb = 0; rb < b->nranges; rb++) {
		const struct ip_range *r2 = &b->ranges[rb];

		for (ra = 0; ra < a->nranges; ra++) {
			const struct ip_range *r1 = &a->ranges[ra];
			char t1[100], t2[100], tb[80];
			bool same;
			int line;

			if (ip_cmp(&r1->lo, &r2->hi) > 0 || ip_cmp(&r2->lo, &r1->hi) > 0)
				continue;
			same = ip_cmp(&r1->lo, &r2->lo) == 0 && ip_cmp(&r1->hi, &r2->hi) == 0;
			if (!same && (contains(r1, r2) || contains(r2, r1)))
				continue;
			ip_range_format(r1, t1, sizeof t1);
			ip_range_format(r2, t2, sizeof t2);
			binding_format(shared, tb, sizeof tb);
			line = st->extra[ib].range_line[rb];
			err_at(st, line ? line : b->line,
			       "remote_ip_ranges: %s of connector \"%s\" %s %s of connector \"%s\" on %s "
			       "(entries of connectors that share a binding may overlap only when one "
			       "contains the other)",
			       t2, b->name, same ? "is the same as" : "partly overlaps", t1, a->name, tb);
			break;
		}
	}
}

/* SPEC §3, as in Exchange: on a shared binding, entries of two connectors
 * may overlap only when one strictly contains the other, so "most
 * specific" always names exactly one connector. Reported at the later
 * connector's entry, once per entry and pair of connectors. */
static void check_overlaps(struct pstate *st)
{
	unsigned ia, ib;

	for (ib = 1; ib < st->nconns; ib++) {
		for (ia = 0; active(st, ib) && ia < ib; ia++) {
			const struct binding *shared;

			if (!active(st, ia))
				continue;
			shared = shared_binding(&st->conns[ia], &st->conns[ib]);
			if (shared)
				check_ranges(st, ia, ib, shared);
		}
	}
}

/* Makes the section's relative paths relative to the INI file's
 * directory. A required path without a default must have been given. */
static void finish_paths(struct pstate *st, unsigned s)
{
	char *base = (char *)st->c + sect_base[s];
	const struct key *k;

	for (k = keys; k < keys + NKEYS; k++) {
		if (k->sect == s && k->type == K_PATH && k->min && !st->seen[k - keys] && !base[k->off])
			err_at(st, st->sect_line[s], "[%s] needs %s = FILE", sect_name[s], k->name);
	}
	for (k = keys; k < keys + NKEYS; k++) {
		if (k->sect == s && k->type == K_PATH)
			resolve_path(st, base + k->off, k->name, st->seen[k - keys]);
	}
}

static void finish(struct pstate *st)
{
	struct server_conf *s = &st->c->server;
	size_t max = sizeof ((struct sockaddr_un *)0)->sun_path - 1;
	unsigned i;

	if (!s->hostname[0]) {
		char h[CONF_TEXT_MAX];

		if (gethostname(h, sizeof h - 1) != 0)
			h[0] = '\0';
		h[sizeof h - 1] = '\0';
		if (!h[0] || !text_ok(h, false))
			err_at(st, 0, "hostname: the machine's host name is not usable; set hostname in [server]");
		else
			strcpy(s->hostname, h);
	}
	finish_paths(st, S_SERVER);
	/* The resolved path is what bind() gets, so that is what is counted. */
	if (strlen(s->control) > max)
		err_at(st, st->seen[G_CONTROL],
		       "control: path longer than %zu octets (the limit of a UNIX socket address)", max);
	for (i = S_TLS; i <= S_AUTH; i++)
		if (st->sect_line[i])
			finish_paths(st, i);
	st->c->tls.enabled = st->sect_line[S_TLS] != 0;
	st->c->auth.enabled = st->sect_line[S_AUTH] != 0;
	st->c->harvest.enabled = st->c->harvest.table_size > 0;

	if (st->nconns == 0) {
		if (!st->bad_connector)
			err_at(st, 0, "no [connector \"NAME\"] section");
		return;
	}
	for (i = 0; i < st->nconns; i++) {
		st->conn = &st->conns[i];
		st->cx = &st->extra[i];
		finish_connector(st);
	}
	st->conn = NULL;
	st->cx = NULL;
	check_wildcards(st);
	check_overlaps(st);
}

int config_load(struct config *c, const char *path, char *err, size_t errlen)
{
	struct pstate st;
	int rc;

	memset(c, 0, sizeof *c);
	memset(&st, 0, sizeof st);
	st.c = c;
	st.errs = (struct errlist){ err, errlen, 0, path ? path : "(null)", 0 };
	if (err && errlen)
		err[0] = '\0';
	if (!path || strlen(path) >= sizeof c->path) {
		err_at(&st, 0, "path too long");
		return -1;
	}
	strcpy(c->path, path);
	set_server_defaults(&c->server);
	c->tls.max_sessions = 32;
	/* The default per-source connection limit: a Postfix with its 20
	 * parallel deliveries is never refused, one address never holds all. */
	c->tls.max_sessions_per_source = 20;
	c->tls.min_version = 12;
	c->tls.session_tickets = true;
	c->harvest.table_size = 1024;
	c->harvest.threshold = 10;
	c->harvest.window = 3600;

	st.f = fopen(path, "re");
	if (!st.f) {
		err_at(&st, 0, "cannot open: %s", strerror(errno));
		return -1;
	}
	errno = 0;
	rc = ini_parse_stream(reader, &st, handler, &st);
	finish_line(&st);
	fclose(st.f);
	if (rc == -2)
		err_at(&st, 0, "out of memory");
	if (st.read_errno)
		err_at(&st, 0, "read error: %s", strerror(st.read_errno));
	else
		finish(&st);

	free(st.extra);
	if (st.errs.n) {
		free(st.conns);
		memset(c, 0, sizeof *c);
		return -1;
	}
	c->connectors = st.conns;
	c->nconnectors = st.nconns;
	return 0;
}

void config_free(struct config *c)
{
	if (!c)
		return;
	free(c->connectors);
	c->connectors = NULL;
	c->nconnectors = 0;
}

/* ---- fields for show and set --------------------------------------------- */

unsigned conf_field_count(void)
{
	return 1 + NCONN;
}

/* ASCII only: the locale must not change what a field name means. */
static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Case-insensitive, '_' ignored: TarpitInterval == tarpit_interval. */
static bool field_eq(const char *a, const char *b)
{
	for (;;) {
		while (*a == '_')
			a++;
		while (*b == '_')
			b++;
		if (!*a || !*b)
			return !*a && !*b;
		if (lower(*a) != lower(*b))
			return false;
		a++;
		b++;
	}
}

int conf_field_find(const char *name)
{
	size_t i;

	if (!name || !*name)
		return -1;
	if (field_eq(name, "Name"))
		return 0;
	for (i = 0; i < NCONN; i++)
		if (field_eq(name, conn_keys[i].name) || (conn_keys[i].exch && field_eq(name, conn_keys[i].exch)))
			return (int)(i + 1);
	return -1;
}

const char *conf_field_key(unsigned i)
{
	return i >= 1 && i <= NCONN ? conn_keys[i - 1].name : NULL;
}

const char *conf_field_title(unsigned i)
{
	if (i == 0)
		return "Name";
	if (i > NCONN)
		return NULL;
	return conn_keys[i - 1].exch ? conn_keys[i - 1].exch : conn_keys[i - 1].name;
}

/* snprintf-style appending: *used counts the full length, the buffer
 * holds what fits. */
static void append(char *buf, size_t len, size_t *used, const char *s)
{
	size_t n = strlen(s);

	if (buf && len && *used < len - 1) {
		size_t room = len - 1 - *used, k = n < room ? n : room;

		memcpy(buf + *used, s, k);
		buf[*used + k] = '\0';
	}
	*used += n;
}

size_t conf_field_format(const struct connector_conf *cc, unsigned i, char *buf, size_t len)
{
	const struct key *k;
	const char *field;
	char t[128];
	size_t used = 0;
	unsigned j, n;
	uint64_t v = 0;
	uint32_t u;
	bool b;

	if (buf && len)
		buf[0] = '\0';
	if (!cc || i > NCONN)
		return 0;
	if (i == 0) {
		append(buf, len, &used, cc->name);
		return used;
	}
	k = &conn_keys[i - 1];
	field = (const char *)cc + k->off;
	switch (k->type) {
	case K_BOOL:
		memcpy(&b, field, sizeof b);
		append(buf, len, &used, b ? "True" : "False");
		return used;
	case K_HOST:
	case K_BANNER:
		append(buf, len, &used, field);
		return used;
	case K_BINDINGS:
	case K_RANGES:
		n = k->type == K_BINDINGS ? cc->nbindings : cc->nranges;
		for (j = 0; j < n && j < (k->type == K_BINDINGS ? CONF_MAX_BINDINGS : CONF_MAX_RANGES); j++) {
			if (j)
				append(buf, len, &used, ", ");
			if (k->type == K_BINDINGS)
				binding_format(&cc->bindings[j], t, sizeof t);
			else
				ip_range_format(&cc->ranges[j], t, sizeof t);
			append(buf, len, &used, t);
		}
		return used;
	case K_SIZE:
		memcpy(&v, field, sizeof v);
		break;
	default: /* K_UINT, K_TIMESPAN */
		memcpy(&u, field, sizeof u);
		v = u;
		break;
	}
	format_number(k->type, v, t, sizeof t);
	append(buf, len, &used, t);
	return used;
}
