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

#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define DAY 86400u
#define KIB 1024u

/* Exchange's own ceiling for MaxMessageSize is 2 GB; a larger message
 * could not be counted in a 32-bit router's off_t without LFS anyway. */
#define MSG_SIZE_MIN ((uint64_t)KIB)
#define MSG_SIZE_MAX ((uint64_t)2 * KIB * KIB * KIB)

#define ECHO_MAX 60 /* octets of a faulty value quoted back in a message */

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
	K_LATER, /* a key of a feature this version does not have */
};

struct key {
	const char *name;
	enum ktype type;
	size_t off;
	uint64_t min, max;
};

#define SK(n, t, f, lo, hi) { n, t, offsetof(struct server_conf, f), lo, hi }
#define CK(n, t, f, lo, hi) { n, t, offsetof(struct connector_conf, f), lo, hi }
#define LATER(n) { n, K_LATER, 0, 0, 0 }

static const struct key server_keys[] = {
	SK("hostname", K_HOST, hostname, 0, 0),
	SK("max_connections", K_UINT, max_connections, 1, 1000000),
	SK("recipients", K_PATH, recipients, 1, 0),
	SK("spool", K_PATH, spool, 1, 0),
	SK("user", K_USER, user, 0, 0),
	SK("pidfile", K_PATH, pidfile, 0, 0),
	SK("log", K_LOG, log_syslog, 0, 0),
	SK("log_level", K_LEVEL, log_level, 0, 0),
	LATER("control"),
};

static const struct key conn_keys[] = {
	CK("enabled", K_BOOL, enabled, 0, 0),
	CK("bindings", K_BINDINGS, bindings, 0, 0),
	CK("remote_ip_ranges", K_RANGES, ranges, 0, 0),
	CK("fqdn", K_HOST, fqdn, 0, 0),
	CK("banner", K_BANNER, banner, 0, 0),
	CK("tarpit_interval", K_TIMESPAN, tarpit_interval, 0, 600),
	CK("tarpit_all_after_unknown", K_BOOL, tarpit_all_after_unknown, 0, 0),
	CK("max_message_size", K_SIZE, max_message_size, MSG_SIZE_MIN, MSG_SIZE_MAX),
	CK("max_recipients_per_message", K_UINT, max_recipients_per_message, 1, 1000),
	CK("max_inbound_connections", K_UINT, max_inbound_connections, 1, 1000000),
	CK("max_inbound_connections_per_source", K_UINT, max_inbound_connections_per_source, 1, 1000000),
	CK("connection_timeout", K_TIMESPAN, connection_timeout, 1, DAY),
	CK("connection_inactivity_timeout", K_TIMESPAN, connection_inactivity_timeout, 1, DAY),
	CK("max_protocol_errors", K_UINT, max_protocol_errors, 0, 1000000),
	CK("max_unknown_recipients", K_UINT, max_unknown_recipients, 0, 1000000),
	CK("greeting_delay", K_TIMESPAN, greeting_delay, 0, 600),
	CK("pipelining", K_BOOL, pipelining, 0, 0),
	LATER("max_auth_failures"),
	LATER("starttls"),
	LATER("require_tls"),
	LATER("auth"),
	LATER("auth_requires_tls"),
};

#define NSERVER (sizeof server_keys / sizeof server_keys[0])
#define NCONN (sizeof conn_keys / sizeof conn_keys[0])

static const char default_ranges[] = "0.0.0.0-255.255.255.255, ::/0";

enum sect { S_NONE, S_SERVER, S_CONNECTOR, S_SKIP };

struct pstate {
	struct config *c;
	const char *path;
	FILE *f;
	int lineno;
	char *err;
	size_t errlen, errused;
	unsigned nerr;
	int read_errno; /* 0, or the errno of a read error */

	enum sect sect;
	char sect_label[CONF_NAME_MAX + 16]; /* "[server]", "[connector \"X\"]" */
	struct connector_conf *conn;
	int server_line;
	bool bad_connector; /* a connector header was refused: no cascade */
	bool bad_list[2];   /* bindings, remote_ip_ranges had a bad entry */

	/* What the reader handed inih last, to catch lines it swallowed, and
	 * what an indented line would continue. */
	bool line_pending;
	bool key_in_section;
	const struct key *last_key; /* continuation target, NULL = ignore */

	int server_seen[NSERVER]; /* line a key was given on, 0 = not given */
	int conn_seen[NCONN];
};

/* ---- messages ---------------------------------------------------------- */

static void err_at(struct pstate *st, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void err_at(struct pstate *st, int line, const char *fmt, ...)
{
	va_list ap;
	size_t room;
	int n;

	st->nerr++;
	if (!st->err || st->errlen == 0 || st->errused + 1 >= st->errlen)
		return;
	if (st->errused > 0)
		st->err[st->errused++] = '\n';
	room = st->errlen - st->errused;
	if (line > 0)
		n = snprintf(st->err + st->errused, room, "%s:%d: ", st->path, line);
	else
		n = snprintf(st->err + st->errused, room, "%s: ", st->path);
	if (n < 0)
		n = 0;
	st->errused += (size_t)n < room ? (size_t)n : room - 1;
	room = st->errlen - st->errused;
	if (room > 1) {
		va_start(ap, fmt);
		n = vsnprintf(st->err + st->errused, room, fmt, ap);
		va_end(ap);
		if (n < 0)
			n = 0;
		st->errused += (size_t)n < room ? (size_t)n : room - 1;
	}
	st->err[st->errused] = '\0';
}

/* Values quoted back in messages are cut and made printable, so a broken
 * file cannot flood or garble the terminal it is reported on. */
static const char *echo(char *buf, size_t len, const char *s)
{
	size_t i, n = 0;

	for (i = 0; s[i] && n + 4 < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (i == ECHO_MAX) {
			memcpy(buf + n, "...", 3);
			n += 3;
			break;
		}
		buf[n++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
	}
	buf[n] = '\0';
	return buf;
}

#define ECHO_BUF (ECHO_MAX + 8)

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
	uint64_t days = 0, part[3], total;
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
	for (i = 0; i < 3; i++) {
		const char *q;

		if (i > 0 && *p++ != ':')
			return -1;
		q = p;
		if (scan_u64(&p, 99, &part[i]) != 0 || p - q > 2)
			return -1;
	}
	if (*p != '\0' || part[0] > 23 || part[1] > 59 || part[2] > 59)
		return -1;
	total = days * DAY + part[0] * 3600 + part[1] * 60 + part[2];
	if (over || total > UINT32_MAX)
		return -2;
	*out = (uint32_t)total;
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

/* On a buffer too small the output is "" and the result 0. */
static size_t put(char *buf, size_t len, const char *s)
{
	size_t n = strlen(s);

	if (!buf || len == 0)
		return 0;
	if (n >= len) {
		buf[0] = '\0';
		return 0;
	}
	memcpy(buf, s, n + 1);
	return n;
}

size_t format_timespan(uint32_t seconds, char *buf, size_t len)
{
	char t[32];
	uint32_t d = seconds / DAY, r = seconds % DAY;

	if (d)
		snprintf(t, sizeof t, "%u.%02u:%02u:%02u", (unsigned)d, (unsigned)(r / 3600),
			 (unsigned)(r / 60 % 60), (unsigned)(r % 60));
	else
		snprintf(t, sizeof t, "%02u:%02u:%02u", (unsigned)(r / 3600),
			 (unsigned)(r / 60 % 60), (unsigned)(r % 60));
	return put(buf, len, t);
}

static int size_parse(const char *s, uint64_t *bytes)
{
	static const struct {
		const char *unit;
		uint64_t mult;
	} units[] = { { "", 1 }, { "B", 1 }, { "KB", KIB }, { "MB", KIB * KIB },
		      { "GB", (uint64_t)KIB * KIB * KIB } };
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
		if (strcasecmp(p, units[i].unit) != 0)
			continue;
		/* "10 " is a number with a dangling space, not a unit. */
		if (i == 0 && p > s && is_ws(p[-1]))
			return -1;
		if (r == -2 || v > UINT64_MAX / units[i].mult)
			return -2;
		*bytes = v * units[i].mult;
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
	static const char *const unit[] = { "", "KB", "MB", "GB" };
	unsigned i = 0;

	while (i < 3 && v >= KIB && v % KIB == 0) {
		v /= KIB;
		i++;
	}
	snprintf(buf, len, "%llu%s", (unsigned long long)v, unit[i]);
}

int parse_bool(const char *s, bool *v)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	size_t i;

	if (!s)
		return -1;
	for (i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*v = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*v = false;
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

static void range_error(struct pstate *st, const struct key *k, const char *v, bool below,
			const char *limit)
{
	char e[ECHO_BUF];

	err_at(st, st->lineno, "%s: %s is %s the %s %s", k->name, echo(e, sizeof e, v),
	       below ? "below" : "above", below ? "minimum" : "maximum", limit);
}

static void apply_number(struct pstate *st, const struct key *k, const char *v, void *field)
{
	char e[ECHO_BUF], lim[32];
	uint64_t x = 0;
	uint32_t t = 0;
	int r;

	switch (k->type) {
	case K_UINT:
		r = uint_parse(v, &x);
		if (r == -1) {
			err_at(st, st->lineno, "%s: '%s' is not a number", k->name, echo(e, sizeof e, v));
			return;
		}
		if (r == -2 || x > k->max) {
			snprintf(lim, sizeof lim, "%llu", (unsigned long long)k->max);
			range_error(st, k, v, false, lim);
		} else if (x < k->min) {
			snprintf(lim, sizeof lim, "%llu", (unsigned long long)k->min);
			range_error(st, k, v, true, lim);
		} else {
			uint32_t u = (uint32_t)x;
			memcpy(field, &u, sizeof u);
		}
		return;
	case K_TIMESPAN:
		r = ts_parse(v, &t);
		if (r == -1) {
			err_at(st, st->lineno, "%s: '%s' is not a TimeSpan ([d.]hh:mm:ss)", k->name,
			       echo(e, sizeof e, v));
			return;
		}
		if (r == -2 || t > k->max) {
			format_timespan((uint32_t)k->max, lim, sizeof lim);
			range_error(st, k, v, false, lim);
		} else if (t < k->min) {
			format_timespan((uint32_t)k->min, lim, sizeof lim);
			range_error(st, k, v, true, lim);
		} else {
			memcpy(field, &t, sizeof t);
		}
		return;
	case K_SIZE:
		r = size_parse(v, &x);
		if (r == -1) {
			err_at(st, st->lineno, "%s: '%s' is not a size (bytes, or a number with KB, MB or GB)",
			       k->name, echo(e, sizeof e, v));
			return;
		}
		if (r == -2 || x > k->max) {
			format_size(k->max, lim, sizeof lim);
			range_error(st, k, v, false, lim);
		} else if (x < k->min) {
			format_size(k->min, lim, sizeof lim);
			range_error(st, k, v, true, lim);
		} else {
			memcpy(field, &x, sizeof x);
		}
		return;
	default:
		return;
	}
}

/* Splits one line's worth of a list value. A trailing comma is allowed so
 * a list can go on, indented, on the next line. */
static void apply_list_items(struct pstate *st, const struct key *k, const char *v)
{
	struct connector_conf *cc = st->conn;
	char item[128], e[ECHO_BUF];
	const char *p = v;

	for (;;) {
		const char *comma = strchr(p, ',');
		const char *end = comma ? comma : p + strlen(p);
		const char *a = p, *b = end;
		size_t n;

		while (a < b && is_ws(*a))
			a++;
		while (b > a && is_ws(b[-1]))
			b--;
		n = (size_t)(b - a);
		if (n == 0) {
			if (!comma && p != v)
				return;
			err_at(st, st->lineno, "%s: empty entry", k->name);
			return;
		}
		if (n >= sizeof item) {
			err_at(st, st->lineno, "%s: entry too long", k->name);
			return;
		}
		memcpy(item, a, n);
		item[n] = '\0';
		if (k->type == K_BINDINGS) {
			struct binding bd;
			unsigned i;

			if (binding_parse(item, &bd) < 0) {
				err_at(st, st->lineno, "%s: '%s' is not ip:port or [ipv6]:port", k->name,
				       echo(e, sizeof e, item));
				return;
			}
			for (i = 0; i < cc->nbindings; i++) {
				if (ip_cmp(&cc->bindings[i].addr, &bd.addr) == 0 &&
				    cc->bindings[i].port == bd.port && cc->bindings[i].v6 == bd.v6) {
					err_at(st, st->lineno, "%s: %s is listed twice", k->name,
					       echo(e, sizeof e, item));
					return;
				}
			}
			if (cc->nbindings >= CONF_MAX_BINDINGS) {
				err_at(st, st->lineno, "%s: more than %d entries", k->name, CONF_MAX_BINDINGS);
				return;
			}
			cc->bindings[cc->nbindings++] = bd;
		} else {
			struct ip_range r;

			if (ip_range_parse(item, &r) < 0) {
				err_at(st, st->lineno,
				       "%s: '%s' is not an address, a CIDR block or a range a-b", k->name,
				       echo(e, sizeof e, item));
				return;
			}
			if (cc->nranges >= CONF_MAX_RANGES) {
				err_at(st, st->lineno, "%s: more than %d entries", k->name, CONF_MAX_RANGES);
				return;
			}
			cc->ranges[cc->nranges++] = r;
		}
		if (!comma)
			return;
		p = comma + 1;
	}
}

/* A list with a bad entry is not reported once more as empty. */
static void apply_list(struct pstate *st, const struct key *k, const char *v)
{
	unsigned before = st->nerr;

	if (*v)
		apply_list_items(st, k, v);
	if (st->nerr != before)
		st->bad_list[k->type == K_RANGES] = true;
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
			err_at(st, st->lineno, "%s: '%s' is not a boolean (yes/no, true/false, on/off, 1/0)",
			       k->name, echo(e, sizeof e, v));
		else
			memcpy(field, &b, sizeof b);
		return;
	case K_HOST:
	case K_BANNER:
		if (!text_ok(v, k->type == K_BANNER)) {
			err_at(st, st->lineno, "%s: '%s' must be printable ASCII%s, at most %d octets",
			       k->name, echo(e, sizeof e, v), k->type == K_BANNER ? "" : " without spaces",
			       CONF_TEXT_MAX - 1);
			return;
		}
		memcpy(field, v, n + 1);
		return;
	case K_PATH:
		for (i = 0; i < n; i++) {
			if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f) {
				err_at(st, st->lineno, "%s: path holds control characters", k->name);
				return;
			}
		}
		if (n == 0 && k->min) {
			err_at(st, st->lineno, "%s: empty path", k->name);
			return;
		}
		if (n >= PATH_MAX) {
			err_at(st, st->lineno, "%s: path too long", k->name);
			return;
		}
		memcpy(field, v, n + 1);
		return;
	case K_USER:
		if (!user_ok(v)) {
			err_at(st, st->lineno, "%s: '%s' is not a valid user name", k->name,
			       echo(e, sizeof e, v));
			return;
		}
		memcpy(field, v, n + 1);
		return;
	case K_LOG:
		if (strcmp(v, "syslog") != 0 && strcmp(v, "stderr") != 0) {
			err_at(st, st->lineno, "%s: '%s' must be syslog or stderr", k->name,
			       echo(e, sizeof e, v));
			return;
		}
		b = strcmp(v, "syslog") == 0;
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
		err_at(st, st->lineno, "%s: '%s' must be error, warning, notice, info or debug", k->name,
		       echo(e, sizeof e, v));
		return;
	case K_BINDINGS:
	case K_RANGES:
		apply_list(st, k, v);
		return;
	case K_LATER:
		return;
	}
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
}

static void enter_connector(struct pstate *st, const char *name, size_t n)
{
	if (st->conn) {
		err_at(st, st->lineno, "several connectors are not supported yet");
		st->sect = S_SKIP;
		return;
	}
	st->conn = calloc(1, sizeof *st->conn);
	if (!st->conn) {
		err_at(st, st->lineno, "out of memory");
		st->sect = S_SKIP;
		return;
	}
	set_conn_defaults(st->conn);
	memcpy(st->conn->name, name, n);
	st->conn->name[n] = '\0';
	st->conn->line = st->lineno;
	snprintf(st->sect_label, sizeof st->sect_label, "[connector \"%s\"]", st->conn->name);
	st->sect = S_CONNECTOR;
}

/* h points at '[', comments are gone and trailing space trimmed. */
static void section(struct pstate *st, char *h)
{
	char e[ECHO_BUF];
	char *p = h + 1, *word, *close, *q, *qend = NULL;
	size_t wlen, i;
	bool inq = false;

	st->sect = S_SKIP;
	st->last_key = NULL;
	for (close = p; *close && (inq || *close != ']'); close++)
		if (*close == '"')
			inq = !inq;
	if (*close != ']') {
		err_at(st, st->lineno, "missing ']' in section header");
		if (strncmp(p, "connector", 9) == 0)
			st->bad_connector = true;
		return;
	}
	if (close[1] != '\0') {
		err_at(st, st->lineno, "unexpected text after ']'");
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
	if (*q == '\0' && wlen == 6 && strncmp(word, "server", 6) == 0) {
		if (st->server_line) {
			err_at(st, st->lineno, "[server] appears twice (first at line %d)", st->server_line);
			return;
		}
		st->server_line = st->lineno;
		st->sect = S_SERVER;
		strcpy(st->sect_label, "[server]");
		return;
	}
	if (*q == '\0' && ((wlen == 3 && strncmp(word, "tls", 3) == 0) ||
			   (wlen == 4 && strncmp(word, "auth", 4) == 0) ||
			   (wlen == 7 && strncmp(word, "harvest", 7) == 0))) {
		err_at(st, st->lineno, "[%.*s] is not supported yet", (int)wlen, word);
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

static const struct key *find_key(const struct key *t, size_t n, const char *name, size_t *idx)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (strcmp(t[i].name, name) == 0) {
			*idx = i;
			return &t[i];
		}
	}
	return NULL;
}

static int handler(void *user, const char *section_unused, const char *name, const char *value)
{
	struct pstate *st = user;
	const struct key *k;
	char e[ECHO_BUF];
	int *seen;
	char *base;
	size_t idx;

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
	if (st->sect == S_SERVER) {
		k = find_key(server_keys, NSERVER, name, &idx);
		seen = st->server_seen;
		base = (char *)&st->c->server;
	} else {
		k = find_key(conn_keys, NCONN, name, &idx);
		seen = st->conn_seen;
		base = (char *)st->conn;
	}
	if (!k) {
		err_at(st, st->lineno, "unknown key '%s' in %s", echo(e, sizeof e, name), st->sect_label);
		return 1;
	}
	if (seen[idx]) {
		err_at(st, st->lineno, "duplicate key '%s' (first at line %d)", name, seen[idx]);
		return 1;
	}
	seen[idx] = st->lineno;
	if (k->type == K_LATER) {
		err_at(st, st->lineno, "%s is not supported yet", name);
		return 1;
	}
	st->last_key = k;
	apply(st, k, value, base);
	return 1;
}

/* ---- after the last line ------------------------------------------------- */

static void resolve_path(struct pstate *st, char *p, const char *key, int line)
{
	const char *slash = strrchr(st->path, '/');
	size_t dlen, plen = strlen(p);

	if (!p[0] || p[0] == '/' || !slash)
		return;
	dlen = (size_t)(slash - st->path);
	if (dlen + 1 + plen >= PATH_MAX) {
		err_at(st, line, "%s: path too long", key);
		return;
	}
	memmove(p + dlen + 1, p, plen + 1);
	memcpy(p, st->path, dlen);
	p[dlen] = '/';
}

static size_t key_index(const struct key *t, size_t n, const char *name)
{
	size_t i = 0;

	find_key(t, n, name, &i);
	return i;
}

static void finish(struct pstate *st)
{
	struct server_conf *s = &st->c->server;
	struct connector_conf *cc = st->conn;

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
	resolve_path(st, s->recipients, "recipients",
		     st->server_seen[key_index(server_keys, NSERVER, "recipients")]);
	resolve_path(st, s->spool, "spool", st->server_seen[key_index(server_keys, NSERVER, "spool")]);
	resolve_path(st, s->pidfile, "pidfile",
		     st->server_seen[key_index(server_keys, NSERVER, "pidfile")]);

	if (!cc) {
		if (!st->bad_connector)
			err_at(st, 0, "no [connector \"NAME\"] section");
		return;
	}
	if (cc->nbindings == 0 && !st->bad_list[0]) {
		int l = st->conn_seen[key_index(conn_keys, NCONN, "bindings")];

		err_at(st, l ? l : cc->line, "bindings: at least one ip:port is required");
	}
	if (cc->nranges == 0 && !st->bad_list[1]) {
		int l = st->conn_seen[key_index(conn_keys, NCONN, "remote_ip_ranges")];

		if (l) {
			err_at(st, l, "remote_ip_ranges: at least one entry is required");
		} else {
			const struct key *k = &conn_keys[key_index(conn_keys, NCONN, "remote_ip_ranges")];

			apply_list(st, k, default_ranges);
		}
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

int config_load(struct config *c, const char *path, char *err, size_t errlen)
{
	struct pstate st;
	int rc;

	memset(c, 0, sizeof *c);
	memset(&st, 0, sizeof st);
	st.c = c;
	st.path = path ? path : "(null)";
	st.err = err;
	st.errlen = errlen;
	if (err && errlen)
		err[0] = '\0';
	if (!path || strlen(path) >= sizeof c->path) {
		err_at(&st, 0, "path too long");
		return -1;
	}
	strcpy(c->path, path);
	set_server_defaults(&c->server);

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

	if (st.nerr) {
		free(st.conn);
		memset(c, 0, sizeof *c);
		return -1;
	}
	c->connectors = st.conn;
	c->nconnectors = 1;
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
