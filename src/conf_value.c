/* conf_value: one key's value: the value parsers config.h exports, and
 * checking and storing a value in its field (conf_apply), table-driven by
 * the key's type and range. */
#include "conf_int.h"
#include "tls.h"

#include <stdlib.h>
#include <string.h>

/* ---- value parsers ----------------------------------------------------- */

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
		if (i == 0 && p > s && util_is_ws(p[-1]))
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

void conf_format_number(unsigned type, uint64_t v, char *buf, size_t len)
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

bool conf_text_ok(const char *s, bool spaces)
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
		conf_bad_value(st, k, v);
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
	conf_format_number(k->type, below ? k->min : k->max, lim, sizeof lim);
	conf_kerr(st, k, below ? "%s is below the minimum %s" : "%s is above the maximum %s",
	     conf_echo(e, sizeof e, v), lim);
}

/* The next entry of the list value v from *p, the spaces around it cut:
 * 1 with the entry at *a (*n octets) and *p past its comma, NULL after the
 * last; 0 at the end after a trailing comma (a list may go on, indented,
 * on the next line); -1 for an empty entry. Shared by every list key. */
static int list_next(const char **p, const char *v, const char **a, size_t *n)
{
	const char *comma = strchr(*p, ','), *s = *p, *b = comma ? comma : *p + strlen(*p);

	while (s < b && util_is_ws(*s))
		s++;
	while (b > s && util_is_ws(b[-1]))
		b--;
	*a = s;
	*n = (size_t)(b - s);
	if (*n == 0)
		return !comma && *p != v ? 0 : -1;
	*p = comma ? comma + 1 : NULL;
	return 1;
}

/* Splits one line's worth of a list value. */
static void apply_list_items(struct pstate *st, const struct key *k, const char *v)
{
	struct connector_conf *cc = st->conn;
	bool bind = k->type == K_BINDINGS;
	unsigned *count = bind ? &cc->nbindings : &cc->nranges;
	char item[128], e[ECHO_BUF];
	const char *p = v;

	while (p) {
		const char *a;
		struct binding bd;
		struct ip_range r;
		size_t n;
		unsigned i;
		int got = list_next(&p, v, &a, &n);

		if (got <= 0) {
			if (got < 0)
				conf_kerr(st, k, "empty entry");
			return;
		}
		if (n >= sizeof item) {
			conf_kerr(st, k, "entry too long");
			return;
		}
		memcpy(item, a, n);
		item[n] = '\0';
		if (bind ? binding_parse(item, &bd) < 0 : ip_range_parse(item, &r) < 0) {
			conf_bad_value(st, k, item);
			return;
		}
		for (i = 0; bind && i < cc->nbindings; i++) {
			if (binding_same(&cc->bindings[i], &bd) && cc->bindings[i].v6 == bd.v6) {
				conf_kerr(st, k, "%s is listed twice", conf_echo(e, sizeof e, item));
				return;
			}
		}
		if (*count >= (bind ? CONF_MAX_BINDINGS : CONF_MAX_RANGES)) {
			conf_kerr(st, k, "more than %d entries", bind ? CONF_MAX_BINDINGS : CONF_MAX_RANGES);
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
	}
}

/* A list with a bad entry is not reported once more as empty. */
void conf_apply_list(struct pstate *st, const struct key *k, const char *v)
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
			conf_kerr(st, k, "quotes are not supported (words are split on spaces and tabs, without a shell)");
			return;
		}
		if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
			conf_kerr(st, k, "holds control characters");
			return;
		}
	}
	/* The words and their NULs never take more than the text and one NUL. */
	if (n >= sizeof buf) {
		conf_kerr(st, k, "longer than %zu octets", sizeof buf - 1);
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
			conf_kerr(st, k, "more than %d words", CONF_BAN_WORDS);
			return;
		}
		off[argc] = (uint16_t)used;
		memcpy(buf + used, w, wlen);
		buf[used + wlen] = '\0';
		used += wlen + 1;
		if (strcmp(buf + off[argc], "%a") == 0) {
			if (have_addr) {
				conf_kerr(st, k, "%%a appears more than once");
				return;
			}
			have_addr = true;
			addr = argc;
		} else if (strstr(buf + off[argc], "%a")) {
			conf_kerr(st, k, "%%a must be a word of its own, not part of '%s'",
			     conf_echo(e, sizeof e, buf + off[argc]));
			return;
		}
		argc++;
	}
	if (argc == 0) {
		hc->ban_argc = 0;
		return;
	}
	if (buf[0] != '/') {
		conf_bad_value(st, k, buf);
		return;
	}
	if (!have_addr) {
		conf_kerr(st, k, "%%a is missing (the word that stands for the address)");
		return;
	}
	memcpy(hc->ban_buf, buf, used);
	memcpy(hc->ban_off, off, sizeof off);
	hc->ban_argc = argc;
	hc->ban_addr = addr;
}

/* A relay's host (SPEC §3, §10): an address, never a name, since the
 * daemon does no DNS (SPEC §9); or an absolute path for LMTP on the
 * router. Kept as written too, for messages. */
static void apply_rhost(struct pstate *st, const struct key *k, const char *v, struct relay_conf *rc)
{
	size_t max = sizeof rc->unix_path - 1, n = strlen(v), i;
	char e[ECHO_BUF];
	const char *colon;
	bool letter = false;

	if (n >= sizeof rc->host) {
		conf_kerr(st, k, "too long");
		return;
	}
	if (strncmp(v, "unix:", 5) == 0) {
		for (i = 5; i < n; i++)
			if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f) {
				conf_kerr(st, k, "path holds control characters");
				return;
			}
		if (v[5] != '/') {
			conf_kerr(st, k, "'%s': unix: needs an absolute path", conf_echo(e, sizeof e, v));
			return;
		}
		if (n - 5 > max) {
			conf_kerr(st, k, "path longer than %zu octets (the limit of a UNIX socket address)", max);
			return;
		}
		memcpy(rc->unix_path, v + 5, n - 4);
		rc->is_unix = true;
	} else if (binding_parse(v, &rc->addr) == 0) {
		if (conf_is_wildcard(&rc->addr)) {
			conf_kerr(st, k, "'%s' is a wildcard address, not a next hop", conf_echo(e, sizeof e, v));
			return;
		}
		rc->is_unix = false;
	} else {
		/* One ':' at most and a letter before it: a host name, not a
		 * bare IPv6 address. */
		colon = strchr(v, ':');
		for (i = 0; i < (colon ? (size_t)(colon - v) : n); i++)
			if ((v[i] >= 'a' && v[i] <= 'z') || (v[i] >= 'A' && v[i] <= 'Z'))
				letter = true;
		if (letter && v[0] != '[' && (!colon || !strchr(colon + 1, ':')))
			conf_kerr(st, k, "'%s' is a name, and tarpitd does no DNS: write ip:port, [ipv6]:port or unix:/path",
				  conf_echo(e, sizeof e, v));
		else
			conf_bad_value(st, k, v);
		return;
	}
	memcpy(rc->host, v, n + 1);
}

/* As the recipient file's domains (recipients.c), so a relay domain can
 * be one of its local domains at all. */
static bool domain_ok(const char *d, size_t n)
{
	size_t label = 0, i;

	if (n == 0 || n > ADDR_DOMAIN_MAX)
		return false;
	for (i = 0; i < n; i++) {
		char ch = d[i];

		if (ch == '.') {
			if (label == 0)
				return false;
			label = 0;
		} else if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || is_digit(ch) || ch == '-' ||
			   ch == '_') {
			label++;
		} else {
			return false;
		}
	}
	return label > 0;
}

/* Octets of rc's domains so far, with their NULs; *dup set when d[0..n)
 * (lower-cased) is one of them. */
static size_t domains_used(const struct relay_conf *rc, const char *d, size_t n, bool *dup)
{
	const char *p = rc->domains;
	unsigned i;

	*dup = false;
	for (i = 0; i < rc->ndomains; i++) {
		size_t len = strlen(p);

		if (len == n && memcmp(p, d, n) == 0)
			*dup = true;
		p += len + 1;
	}
	return (size_t)(p - rc->domains);
}

void conf_apply_domains(struct pstate *st, const struct key *k, const char *v)
{
	struct relay_conf *rc = st->relay;
	char item[ADDR_DOMAIN_MAX + 1], e[ECHO_BUF];
	const char *p = v;

	if (!*v) {
		conf_kerr(st, k, "at least one domain (or * for a smarthost) is required");
		return;
	}
	while (p) {
		const char *a;
		size_t n, used, i;
		bool dup;
		int got = list_next(&p, v, &a, &n);

		if (got <= 0) {
			if (got < 0)
				conf_kerr(st, k, "empty entry");
			return;
		}
		if (n == 1 && *a == '*') {
			if (rc->ndomains || rc->smarthost || p) {
				conf_kerr(st, k, "* (the smarthost) must be the only entry");
				return;
			}
			rc->smarthost = true;
			return;
		}
		if (rc->smarthost) {
			conf_kerr(st, k, "* (the smarthost) must be the only entry");
			return;
		}
		if (!domain_ok(a, n)) {
			memcpy(item, a, n < sizeof item ? n : sizeof item - 1);
			item[n < sizeof item ? n : sizeof item - 1] = '\0';
			conf_bad_value(st, k, item);
			return;
		}
		for (i = 0; i < n; i++)
			item[i] = util_lower(a[i]);
		item[n] = '\0';
		used = domains_used(rc, item, n, &dup);
		if (dup) {
			conf_kerr(st, k, "%s is listed twice", conf_echo(e, sizeof e, item));
			return;
		}
		if (used + n + 1 > sizeof rc->domains) {
			conf_kerr(st, k, "more than %zu octets of domains", sizeof rc->domains);
			return;
		}
		memcpy(rc->domains + used, item, n + 1);
		rc->ndomains++;
	}
}

void conf_apply(struct pstate *st, const struct key *k, const char *v, char *base)
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
		if (!conf_text_ok(v, k->type == K_BANNER)) {
			conf_kerr(st, k, "'%s' must be printable ASCII%s, at most %d octets", conf_echo(e, sizeof e, v),
			     k->type == K_BANNER ? "" : " without spaces", CONF_TEXT_MAX - 1);
			return;
		}
		memcpy(field, v, n + 1);
		return;
	case K_PATH:
		for (i = 0; i < n; i++) {
			if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f) {
				conf_kerr(st, k, "path holds control characters");
				return;
			}
		}
		if (n == 0 && k->min) {
			conf_kerr(st, k, "empty path");
			return;
		}
		if (n >= PATH_MAX) {
			conf_kerr(st, k, "path too long");
			return;
		}
		memcpy(field, v, n + 1);
		return;
	case K_USER:
	case K_GROUP:
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
		conf_apply_list(st, k, v);
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
			conf_kerr(st, k, "1.3: this tarpitd's mbedTLS (%s) has no TLS 1.3; use 1.2",
				  tls_library_version());
			return;
		}
		memcpy(field, &(uint32_t){ v[2] == '3' ? 13u : 12u }, sizeof(uint32_t));
		return;
	case K_TLSMODE:
		b = strcmp(v, "implicit") == 0;
		if (!b && strcmp(v, "starttls") != 0)
			break;
		memcpy(field, &b, sizeof b);
		return;
	case K_RHOST:
		apply_rhost(st, k, v, st->relay);
		return;
	case K_PROTO:
		b = strcmp(v, "lmtp") == 0;
		if (!b && strcmp(v, "smtp") != 0)
			break;
		memcpy(field, &b, sizeof b);
		return;
	case K_DOMAINS:
		conf_apply_domains(st, k, v);
		return;
	case K_RTLS: {
		static const char *const policies[] = { "no", "opportunistic", "required" };

		for (i = 0; i < 3; i++) {
			if (strcmp(v, policies[i]) == 0) {
#ifdef TARPITD_NO_TLS
				/* Every delivery would wait for a TLS that never comes. */
				if (i == SC_TLS_REQUIRED) {
					conf_kerr(st, k, "required: this tarpitd is built without TLS (TLS=0)");
					return;
				}
#endif
				*(uint8_t *)field = (uint8_t)i;
				return;
			}
		}
		break;
	}
	}
	conf_bad_value(st, k, v);
}
