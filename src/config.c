/* config: see config.h.
 *
 * What a line is (comment, section header, key = value, continuation)
 * is ini_line's decision, the same one `tarpitd set` edits by. Our line
 * reader in front of inih applies it, so the result is the same with
 * Debian's libinih and with a stock upstream build (the firmware's)
 * whatever their build options: it counts lines (the handler has no line
 * number), parses section headers itself (inih cuts names at 49 octets
 * and knows no quotes), hands inih each key line rebuilt as "key=value",
 * and refuses lines longer than inih's buffer instead of letting inih
 * split them. Indented continuation lines (Python configparser style)
 * never reach inih: only the two list keys accept them, so a long list
 * of ranges need not fit in one inih line.
 */
#include "conf_int.h"

#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* The keys of every section but the connectors. The entries the code
 * names are placed by index (-Woverride-init catches a clash). */
enum { G_CONTROL = 8, G_CERTIFICATE = 12 };

const struct key conf_keys[] = {
	SK("hostname", K_HOST, hostname, 0, 0),
	SK("max_connections", K_UINT, max_connections, 1, 1000000),
	SK("recipients", K_PATH, recipients, 1, P_FILE),
	SK("spool", K_PATH, spool, 1, P_SPOOL),
	SK("user", K_USER, user, 0, 0),
	SK("pidfile", K_PATH, pidfile, 0, P_PIDFILE),
	SK("log", K_LOG, log_syslog, 0, 0),
	SK("log_level", K_LEVEL, log_level, 0, 0),
	[G_CONTROL] = SK("control", K_PATH, control, 0, P_CONTROL),
	SK("spool_group", K_GROUP, spool_group, 0, 0),
	/* SIGTERM gives DATA in progress this long (SPEC §9); ten minutes is
	 * already past any service manager's patience. */
	SK("shutdown_timeout", K_TIMESPAN, shutdown_timeout, 1, 600),
	SK("max_queued", K_UINT, max_queued, 1, QUEUE_MAX_QUEUED),

	/* A pool slot is a full mbedTLS SSL context (tens of KB with its
	 * record buffers): 1024 of them is already more than a router has. */
	[G_CERTIFICATE] = TK("certificate", K_PATH, certificate, 1, P_FILE),
	[G_CERTIFICATE + 1] = TK("key", K_PATH, key, 1, P_FILE),
	TK("max_sessions", K_UINT, max_sessions, 1, 1024),
	TK("max_sessions_per_source", K_UINT, max_sessions_per_source, 1, 1024),
	TK("min_version", K_TLSVER, min_version, 0, 0),
	TK("session_tickets", K_BOOL, session_tickets, 0, 0),

	AK("users", K_PATH, users, 1, P_FILE),

	/* A million entries is tens of MB: already more than any router has. */
	HK("table_size", K_UINT, table_size, 0, 1000000),
	HK("threshold", K_UINT, threshold, 1, 1000000),
	HK("window", K_TIMESPAN, window, 1, 7 * DAY),
	HK("ban_command", K_BANCMD, ban_buf, 0, 0),
};

/* Connector keys in the order of SPEC §3, which is also the order of the
 * show/set fields. */

const struct key conf_conn_keys[] = {
	CK("enabled", K_BOOL, enabled, 0, 0, "Enabled"),
	[C_BINDINGS] = CK("bindings", K_BINDINGS, bindings, 0, 0, "Bindings"),
	[C_RANGES] = CK("remote_ip_ranges", K_RANGES, ranges, 0, 0, "RemoteIPRanges"),
	CK("fqdn", K_HOST, fqdn, 0, 0, "Fqdn"),
	CK("banner", K_BANNER, banner, 0, 0, "Banner"),
	CK("tarpit_interval", K_TIMESPAN, tarpit_interval, 0, 600, "TarpitInterval"),
	CK("tarpit_all_after_unknown", K_BOOL, tarpit_all_after_unknown, 0, 0, NULL),
	CK("max_message_size", K_SIZE, max_message_size, MSG_SIZE_MIN, MSG_SIZE_MAX, "MaxMessageSize"),
	CK("max_recipients_per_message", K_UINT, max_recipients_per_message, 1, CONF_RCPTS_PER_MESSAGE_MAX,
	   "MaxRecipientsPerMessage"),
	CK("max_inbound_connections", K_UINT, max_inbound_connections, 1, 1000000,
	   "MaxInboundConnection"),
	CK("max_inbound_connections_per_source", K_UINT, max_inbound_connections_per_source, 1, 1000000,
	   "MaxInboundConnectionPerSource"),
	[C_CONN_TIMEOUT] = CK("connection_timeout", K_TIMESPAN, connection_timeout, 1, DAY, "ConnectionTimeout"),
	CK("connection_inactivity_timeout", K_TIMESPAN, connection_inactivity_timeout, 1, DAY,
	   "ConnectionInactivityTimeout"),
	CK("max_protocol_errors", K_UINT, max_protocol_errors, 0, CONF_PROTOCOL_ERRORS_MAX, "MaxProtocolErrors"),
	CK("max_unknown_recipients", K_UINT, max_unknown_recipients, 0, CONF_UNKNOWN_RCPTS_MAX, NULL),
	CK("max_auth_failures", K_UINT, max_auth_failures, 0, CONF_AUTH_FAILURES_MAX, NULL),
	[C_GREETING] = CK("greeting_delay", K_TIMESPAN, greeting_delay, 0, 600, NULL),
	CK("pipelining", K_BOOL, pipelining, 0, 0, "PipeliningEnabled"),
	CK("starttls", K_BOOL, starttls, 0, 0, NULL),
	[C_TLS_MODE] = CK("tls_mode", K_TLSMODE, tls_implicit, 0, 0, NULL),
	[C_REQUIRE_TLS] = CK("require_tls", K_BOOL, require_tls, 0, 0, "RequireTLS"),
	CK("auth", K_BOOL, auth, 0, 0, NULL),
	CK("auth_requires_tls", K_BOOL, auth_requires_tls, 0, 0, NULL),
};

/* [relay "NAME"] keys in the order of SPEC §3. The retry bounds: a
 * first retry within the hour, a longest wait of a day (SPEC §10); a
 * message may stay queued a minute to thirty days. */
const struct key conf_relay_keys[] = {
	[R_HOST] = RK("host", K_RHOST, host, 0, 0),
	RK("protocol", K_PROTO, lmtp, 0, 0),
	[R_DOMAINS] = RK("domains", K_DOMAINS, domains, 0, 0),
	[R_STARTTLS] = RK("starttls", K_RTLS, starttls, 0, 0),
	[R_CA_FILE] = RK("ca_file", K_PATH, ca_file, 0, P_FILE),
	[R_TLS_NAME] = RK("tls_name", K_HOST, tls_name, 0, 0),
	[R_AUTH_USER] = RK("auth_user", K_HOST, auth_user, 0, 0),
	[R_PASSWORD_FILE] = RK("auth_password_file", K_PATH, auth_password_file, 0, P_SECRET),
	RK("max_connections", K_UINT, max_connections, 1, RELAY_CONNS_MAX),
	[R_RETRY_MIN] = RK("retry_min", K_TIMESPAN, retry_min, 1, 3600),
	[R_RETRY_MAX] = RK("retry_max", K_TIMESPAN, retry_max, 1, DAY),
	RK("max_queue_lifetime", K_TIMESPAN, max_queue_lifetime, 60, 30 * DAY),
};

_Static_assert(sizeof conf_keys / sizeof conf_keys[0] == CONF_NKEYS, "CONF_NKEYS");
_Static_assert(sizeof conf_relay_keys / sizeof conf_relay_keys[0] == CONF_NRELAY, "CONF_NRELAY");
_Static_assert(sizeof conf_conn_keys / sizeof conf_conn_keys[0] == CONF_NCONN, "CONF_NCONN");

const char *const conf_sect_name[] = {
	[S_SERVER] = "server", [S_TLS] = "tls", [S_AUTH] = "auth", [S_HARVEST] = "harvest",
};

const uint16_t conf_sect_base[] = {
	[S_SERVER] = offsetof(struct config, server),
	[S_TLS] = offsetof(struct config, tls),
	[S_AUTH] = offsetof(struct config, auth),
	[S_HARVEST] = offsetof(struct config, harvest),
};

const char conf_default_ranges[] = "0.0.0.0-255.255.255.255, ::/0";

/* ---- messages ---------------------------------------------------------- */

void conf_err_at(struct pstate *st, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	errlist_add(&st->errs, line, NULL, fmt, ap);
	va_end(ap);
}

void conf_kerr(struct pstate *st, const struct key *k, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	errlist_add(&st->errs, st->lineno, k->name, fmt, ap);
	va_end(ap);
}

const char *conf_echo(char *buf, size_t len, const char *s)
{
	return log_echo(buf, len, s, strlen(s));
}

/* What a value of each type must be, after "key: 'value' ". */
static const char *const bad_text[] = {
	[K_UINT] = "is not a number",
	[K_TIMESPAN] = "is not a TimeSpan ([d.]hh:mm:ss)",
	[K_SIZE] = "is not a size (bytes, or a number with KB, MB or GB)",
	[K_BOOL] = "is not a boolean (yes/no, true/false, on/off, 1/0)",
	[K_USER] = "is not a valid user name",
	[K_GROUP] = "is not a valid group name",
	[K_LOG] = "must be syslog or stderr",
	[K_LEVEL] = "must be error, warning, notice, info or debug",
	[K_BINDINGS] = "is not ip:port or [ipv6]:port",
	[K_RANGES] = "is not an address, a CIDR block or a range a-b",
	/* of its first word */
	[K_BANCMD] = "must be an absolute path (the command runs without a shell or PATH search)",
	[K_TLSVER] = "must be 1.2 or 1.3",
	[K_TLSMODE] = "must be starttls or implicit",
	[K_RHOST] = "is not ip:port, [ipv6]:port or unix:/path",
	[K_PROTO] = "must be smtp or lmtp",
	[K_DOMAINS] = "is not a domain",
	[K_RTLS] = "must be no, opportunistic or required",
};

void conf_bad_value(struct pstate *st, const struct key *k, const char *v)
{
	char e[ECHO_BUF];

	conf_kerr(st, k, "'%s' %s", conf_echo(e, sizeof e, v), bad_text[k->type]);
}

/* ---- inih glue ----------------------------------------------------------- */

static void set_server_defaults(struct server_conf *s)
{
	s->max_connections = 256;
	s->shutdown_timeout = 20;
	strcpy(s->recipients, "recipients");
	strcpy(s->spool, "/var/spool/tarpitd");
	s->log_syslog = true;
	s->log_level = LOG_LVL_INFO;
	s->spool_gid = CONF_NO_GID;
	s->max_queued = 1024;
}

static void set_relay_defaults(struct relay_conf *rc)
{
	rc->starttls = SC_TLS_OPPORTUNISTIC;
	rc->max_connections = 4;
	rc->retry_min = 60;
	rc->retry_max = 3600;
	rc->max_queue_lifetime = 5 * DAY;
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
			conf_err_at(st, st->lineno, "duplicate connector name '%.*s' (first at line %d)", (int)n,
			       name, st->conns[i].line);
			st->bad_connector = true;
			return;
		}
	}
	if (st->nconns >= CONF_MAX_CONNECTORS) {
		conf_err_at(st, st->lineno, "more than %d connectors", CONF_MAX_CONNECTORS);
		st->bad_connector = true;
		return;
	}
	if (!grow_connectors(st)) {
		conf_err_at(st, st->lineno, "out of memory");
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

/* name is n octets, not terminated. One more at a time, as connectors;
 * relay names are case-insensitive identities too. */
static void enter_relay(struct pstate *st, const char *name, size_t n)
{
	struct relay_conf *rc;
	unsigned i;

	for (i = 0; i < st->nrelays; i++) {
		if (strlen(st->relays[i].name) == n && strncasecmp(st->relays[i].name, name, n) == 0) {
			conf_err_at(st, st->lineno, "duplicate relay name '%.*s' (first at line %d)", (int)n, name,
				    st->relays[i].line);
			return;
		}
	}
	if (st->nrelays >= CONF_MAX_RELAYS) {
		conf_err_at(st, st->lineno, "more than %d relays", CONF_MAX_RELAYS);
		return;
	}
	rc = realloc(st->relays, (st->nrelays + 1) * sizeof *rc);
	if (!rc) {
		conf_err_at(st, st->lineno, "out of memory");
		return;
	}
	st->relays = rc;
	rc = &st->relays[st->nrelays];
	memset(rc, 0, sizeof *rc);
	memset(&st->rextra[st->nrelays], 0, sizeof st->rextra[0]);
	set_relay_defaults(rc);
	memcpy(rc->name, name, n);
	rc->name[n] = '\0';
	rc->line = st->lineno;
	st->relay = rc;
	st->rx = &st->rextra[st->nrelays];
	st->nrelays++;
	st->sect = S_RELAY;
}

/* The quoted name of a [connector "NAME"] or [relay "NAME"] header: its
 * length, or 0 after reporting why it is refused. */
static size_t quoted_name(struct pstate *st, const char *t, const struct ini_header *h, const char *kind)
{
	size_t n, i;

	if (!h->quoted || h->after != h->close) {
		conf_err_at(st, st->lineno, "%s name must be quoted: [%s \"NAME\"]", kind, kind);
		return 0;
	}
	n = h->name_e - h->name_s;
	if (n == 0) {
		conf_err_at(st, st->lineno, "empty %s name", kind);
		return 0;
	}
	if (n >= CONF_NAME_MAX) {
		conf_err_at(st, st->lineno, "%s name longer than %d octets", kind, CONF_NAME_MAX - 1);
		return 0;
	}
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)t[h->name_s + i];

		/* Names end up quoted in stats lines, queue files and on
		 * command lines. */
		if (ch < 0x20 || ch > 0x7e || ch == '\\') {
			conf_err_at(st, st->lineno, "%s name may hold only printable ASCII other than '\"' and '\\'",
				    kind);
			return 0;
		}
	}
	return n;
}

/* The header t[s..e) as ini_line found it: '[' at s, t[e] a NUL. */
static void section(struct pstate *st, char *t, size_t s, size_t e)
{
	char eb[ECHO_BUF];
	struct ini_header h;
	const char *word;
	size_t wlen, n;
	unsigned k;

	st->sect = S_SKIP;
	st->conn = NULL;
	st->cx = NULL;
	st->relay = NULL;
	st->rx = NULL;
	st->last_key = NULL;
	ini_header_parse(t, s, e, &h);
	if (h.status != INI_HDR_OK) {
		conf_err_at(st, st->lineno, h.status == INI_HDR_NO_CLOSE ? "missing ']' in section header"
								    : "unexpected text after ']'");
		if (strncmp(t + s + 1, "connector", 9) == 0)
			st->bad_connector = true;
		return;
	}
	t[h.close] = '\0';
	word = t + h.word_s;
	wlen = h.word_e - h.word_s;

	if (wlen == 9 && strncmp(word, "connector", 9) == 0) {
		st->bad_connector = true;
		n = quoted_name(st, t, &h, "connector");
		if (!n)
			return;
		st->bad_connector = false;
		enter_connector(st, t + h.name_s, n);
		return;
	}
	if (wlen == 5 && strncmp(word, "relay", 5) == 0) {
		n = quoted_name(st, t, &h, "relay");
		if (n)
			enter_relay(st, t + h.name_s, n);
		return;
	}
	for (k = S_SERVER; h.arg == h.close && k < S_CONNECTOR; k++) {
		if (strncmp(word, conf_sect_name[k], wlen) != 0 || conf_sect_name[k][wlen] != '\0')
			continue;
		if (st->sect_line[k]) {
			conf_err_at(st, st->lineno, "[%s] appears twice (first at line %d)", conf_sect_name[k],
			       st->sect_line[k]);
			return;
		}
		st->sect_line[k] = st->lineno;
		st->sect = (enum sect)k;
#ifdef TARPITD_NO_TLS
		if (k == S_TLS)
			conf_err_at(st, st->lineno, "[tls]: this tarpitd is built without TLS (TLS=0)");
#endif
		return;
	}
	conf_err_at(st, st->lineno, "unknown section [%s]", conf_echo(eb, sizeof eb, t + s + 1));
}

static void finish_line(struct pstate *st)
{
	if (st->line_pending)
		conf_err_at(st, st->lineno, "expected 'key = value'");
	st->line_pending = false;
}

static void continuation(struct pstate *st, const char *v)
{
	const struct key *k = st->last_key;

	if (!k)
		return;
	if (k->type == K_BINDINGS || k->type == K_RANGES)
		conf_apply_list(st, k, v);
	else if (k->type == K_DOMAINS)
		conf_apply_domains(st, k, v);
	else
		conf_err_at(st, st->lineno, "indented line continues '%s', which takes a single value", k->name);
}

/* fgets-style reader in front of inih; see the comment at the top. */
static char *reader(char *str, int num, void *stream)
{
	struct pstate *st = stream;
	struct ini_line l;
	size_t cap, n = 0, klen, vlen;
	bool too_long = false, nul = false;
	char *p;
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
	if (too_long || nul) {
		ini_line_skip(&st->ini);
		p = str;
		if (st->lineno == 1 && n >= 3 && memcmp(str, "\xef\xbb\xbf", 3) == 0)
			p += 3;
		while (util_is_ws(*p))
			p++;
		if (too_long)
			conf_err_at(st, st->lineno, "line too long (more than %zu octets)", cap);
		else
			conf_err_at(st, st->lineno, "NUL octet in line");
		/* Keys after a lost header belong to no known section. */
		if (*p == '[')
			st->sect = S_SKIP;
		strcpy(str, "\n");
		return str;
	}
	ini_line_parse(&st->ini, str, 0, n, &l);
	str[l.e] = '\0';
	switch (l.kind) {
	case INI_CONT:
		continuation(st, str + l.s);
		break;
	case INI_HEADER:
		section(st, str, l.s, l.e);
		/* inih still needs a section line to end multi-line values. */
		strcpy(str, "[s]\n");
		return str;
	case INI_OTHER:
		conf_err_at(st, st->lineno, "expected 'key = value'");
		break;
	case INI_KEY:
		/* Rebuilt from ini_line's spans as "key=value": the key holds
		 * no '=' or ':', neither part has white space at its ends and
		 * no comment is left, so inih splits and trims it exactly as
		 * ini_line did, whatever its options. */
		klen = l.key_e - l.key_s;
		vlen = l.val_e - l.val_s;
		memmove(str, str + l.key_s, klen);
		str[klen] = '=';
		memmove(str + klen + 1, str + l.val_s, vlen);
		memcpy(str + klen + 1 + vlen, "\n", 2);
		st->line_pending = true;
		return str;
	default: /* INI_BLANK */
		break;
	}
	strcpy(str, "\n");
	return str;
}

static int handler(void *user, const char *section_unused, const char *name, const char *value)
{
	struct pstate *st = user;
	const struct key *t = conf_keys, *k;
	char e[ECHO_BUF];
	size_t n = CONF_NKEYS, i;
	int *seen = st->seen;
	char *base;

	(void)section_unused;
	st->line_pending = false;
	st->last_key = NULL;
	if (st->sect == S_SKIP)
		return 1;
	/* Only an inih built with INI_ALLOW_NO_VALUE passes NULL. */
	if (!value) {
		conf_err_at(st, st->lineno, "expected 'key = value'");
		return 1;
	}
	if (!name[0]) {
		conf_err_at(st, st->lineno, "missing key name before '='");
		return 1;
	}
	if (st->sect == S_NONE) {
		conf_err_at(st, st->lineno, "key '%s' outside any section", conf_echo(e, sizeof e, name));
		return 1;
	}
	if (st->sect == S_CONNECTOR) {
		t = conf_conn_keys;
		n = CONF_NCONN;
		seen = st->cx->seen;
		base = (char *)st->conn;
	} else if (st->sect == S_RELAY) {
		t = conf_relay_keys;
		n = CONF_NRELAY;
		seen = st->rx->seen;
		base = (char *)st->relay;
	} else {
		base = (char *)st->c + conf_sect_base[st->sect];
	}
	for (i = 0; i < n && (t[i].sect != st->sect || strcmp(t[i].name, name) != 0); i++)
		;
	if (i == n) {
		conf_echo(e, sizeof e, name);
		if (st->conn)
			conf_err_at(st, st->lineno, "unknown key '%s' in [connector \"%s\"]", e, st->conn->name);
		else if (st->relay)
			conf_err_at(st, st->lineno, "unknown key '%s' in [relay \"%s\"]", e, st->relay->name);
		else
			conf_err_at(st, st->lineno, "unknown key '%s' in [%s]", e, conf_sect_name[st->sect]);
		return 1;
	}
	k = &t[i];
	if (seen[i]) {
		conf_err_at(st, st->lineno, "duplicate key '%s' (first at line %d)", name, seen[i]);
		return 1;
	}
	seen[i] = st->lineno;
	st->last_key = k;
	/* "key =#x" reads as the value "#x" (no space before the '#'), but
	 * "key = #x", the way `tarpitd set` writes a line, is a comment: such
	 * a value could not be written back, and set refuses it too. */
	if (value[0] == ';' || value[0] == '#') {
		conf_err_at(st, st->lineno, "%s: '%s' starts with '%c', which reads as a comment after 'key = '",
			    name, conf_echo(e, sizeof e, value), value[0]);
		return 1;
	}
	conf_apply(st, k, value, base);
	return 1;
}

/* ---- after the last line ------------------------------------------------- */

void conf_resolve_path(struct pstate *st, char *p, const char *key, int line)
{
	const char *slash = strrchr(st->errs.path, '/');
	size_t dlen, plen = strlen(p);

	if (!p[0] || p[0] == '/' || !slash)
		return;
	dlen = (size_t)(slash - st->errs.path);
	if (dlen + 1 + plen >= PATH_MAX) {
		conf_err_at(st, line, "%s: path too long", key);
		return;
	}
	memmove(p + dlen + 1, p, plen + 1);
	memcpy(p, st->errs.path, dlen);
	p[dlen] = '/';
}

/* The line a key of a section other than the connectors was given on,
 * else its section's header (0 when neither is in the file). */
int conf_key_line(const struct pstate *st, const struct key *k)
{
	int l = st->seen[k - conf_keys];

	return l ? l : st->sect_line[k->sect];
}

/* SPEC §3: a file the daemon reads must be a regular file, at every load
 * (check, start, reload, set): opening a FIFO or a device could block,
 * and the loaders open without waiting but would then refuse it anyway,
 * without the INI line. stat() itself never blocks. A missing file is
 * the loader's to report. */
static void check_file(struct pstate *st, const struct key *k, const char *path)
{
	struct stat sb;
	const char *what;

	if (path[0] && stat(path, &sb) == 0 && (what = util_not_regular(sb.st_mode)) != NULL)
		conf_err_at(st, conf_key_line(st, k), "%s: %s is %s, not a regular file", k->name, path, what);
}

/* Makes the section's relative paths relative to the INI file's
 * directory. A required path without a default must have been given. */
static void finish_paths(struct pstate *st, unsigned s)
{
	char *base = (char *)st->c + conf_sect_base[s];
	const struct key *k;

	for (k = conf_keys; k < conf_keys + CONF_NKEYS; k++) {
		if (k->sect == s && k->type == K_PATH && k->min && !st->seen[k - conf_keys] && !base[k->off])
			conf_err_at(st, st->sect_line[s], "[%s] needs %s = FILE", conf_sect_name[s], k->name);
	}
	for (k = conf_keys; k < conf_keys + CONF_NKEYS; k++) {
		if (k->sect == s && k->type == K_PATH)
			conf_resolve_path(st, base + k->off, k->name, st->seen[k - conf_keys]);
	}
	for (k = conf_keys; k < conf_keys + CONF_NKEYS; k++)
		if (k->sect == s && k->type == K_PATH && k->max == P_FILE)
			check_file(st, k, base + k->off);
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
		if (!h[0] || !conf_text_ok(h, false))
			conf_err_at(st, 0, "hostname: the machine's host name is not usable; set hostname in [server]");
		else
			strcpy(s->hostname, h);
	}
	finish_paths(st, S_SERVER);
	/* The resolved path is what bind() gets, so that is what is counted. */
	if (strlen(s->control) > max)
		conf_err_at(st, st->seen[G_CONTROL],
		       "control: path longer than %zu octets (the limit of a UNIX socket address)", max);
	for (i = S_TLS; i <= S_AUTH; i++)
		if (st->sect_line[i])
			finish_paths(st, i);
	st->c->tls.enabled = st->sect_line[S_TLS] != 0;
	st->c->tls.certificate_line = conf_key_line(st, &conf_keys[G_CERTIFICATE]);
	st->c->tls.key_line = conf_key_line(st, &conf_keys[G_CERTIFICATE + 1]);
	st->c->auth.enabled = st->sect_line[S_AUTH] != 0;
	st->c->harvest.enabled = st->c->harvest.table_size > 0;
	conf_finish_relays(st);
	conf_finish_connectors(st);
}

/* O_NONBLOCK: an INI replaced by a FIFO must not hang the loop at a
 * SIGHUP, nor `check` (SPEC §3); a regular file ignores the flag. */
static int open_ini(struct pstate *st, const char *path)
{
	struct stat sb;
	const char *what;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);

	if (fd < 0) {
		conf_err_at(st, 0, "cannot open: %s", strerror(errno));
		return -1;
	}
	if (fstat(fd, &sb) != 0) {
		conf_err_at(st, 0, "cannot stat: %s", strerror(errno));
		close(fd);
		return -1;
	}
	what = util_not_regular(sb.st_mode);
	if (what) {
		conf_err_at(st, 0, "is %s, not a regular file", what);
		close(fd);
		return -1;
	}
	st->f = fdopen(fd, "r");
	if (!st->f) {
		conf_err_at(st, 0, "cannot open: %s", strerror(errno));
		close(fd);
		return -1;
	}
	return 0;
}

/* The passwords read from the relays' files do not outlive the array. */
static void free_relays(struct relay_conf *r, unsigned n)
{
	if (r)
		explicit_bzero(r, n * sizeof *r);
	free(r);
}

static int load(struct config *c, const char *path, char *err, size_t errlen, bool host)
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
		conf_err_at(&st, 0, "path too long");
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

	if (open_ini(&st, path) != 0)
		return -1;
	errno = 0;
	rc = ini_parse_stream(reader, &st, handler, &st);
	finish_line(&st);
	fclose(st.f);
	if (rc == -2)
		conf_err_at(&st, 0, "out of memory");
	if (st.read_errno)
		conf_err_at(&st, 0, "read error: %s", strerror(st.read_errno));
	else
		finish(&st);
	if (host && st.errs.n == 0)
		conf_check_host(&st);

	free(st.extra);
	if (st.errs.n) {
		free(st.conns);
		free_relays(st.relays, st.nrelays);
		memset(c, 0, sizeof *c);
		return -1;
	}
	c->connectors = st.conns;
	c->nconnectors = st.nconns;
	c->relays = st.relays;
	c->nrelays = st.nrelays;
	return 0;
}

void config_free(struct config *c)
{
	if (!c)
		return;
	free(c->connectors);
	c->connectors = NULL;
	c->nconnectors = 0;
	free_relays(c->relays, c->nrelays);
	c->relays = NULL;
	c->nrelays = 0;
}

void config_tls_error(const struct config *c, char *err, size_t len)
{
	const struct tls_conf *t = &c->tls;
	size_t n = strlen(t->key);
	/* The message starts with the path of the file it is about. */
	int line = strncmp(err, t->key, n) == 0 && err[n] == ':' ? t->key_line : t->certificate_line;
	char pre[PATH_MAX + 16];
	int p = snprintf(pre, sizeof pre, "%s:%d: ", c->path, line);
	size_t have = strlen(err);

	if (p <= 0 || (size_t)p >= len)
		return;
	if (have + (size_t)p >= len)
		have = len - (size_t)p - 1;
	memmove(err + p, err, have);
	memcpy(err, pre, (size_t)p);
	err[have + (size_t)p] = '\0';
}

int config_load(struct config *c, const char *path, char *err, size_t errlen)
{
	return load(c, path, err, errlen, false);
}

int config_load_host(struct config *c, const char *path, char *err, size_t errlen)
{
	return load(c, path, err, errlen, true);
}
