#include "smtp_session.h"

#include <string.h>
#include <strings.h>

#include "auth.h"
#include "config.h"
#include "limits.h"
#include "recipients.h"
#include "route.h"

enum {
	SS_HELO = 1u,    /* HELO or EHLO seen */
	SS_EHLO = 2u,
	SS_MAIL = 4u,    /* a transaction is open */
	SS_UNKNOWN = 8u, /* an unknown recipient was seen in this session */
	SS_TLS = 16u,    /* the session runs inside TLS */
	SS_AUTH = 32u,   /* authenticated: never tarpitted */
	SS_DISCREDITED = 64u, /* the source is a known harvester (SPEC §8) */
	SS_8BIT = 128u,  /* this transaction's MAIL said BODY=8BITMIME (RFC 6152) */
};

/* The largest value an unsigned field can hold. */
#define FIELD_MAX(type, f) \
	(sizeof(((type *)0)->f) >= 8 ? UINT64_MAX : (1ull << (8 * sizeof(((type *)0)->f))) - 1)

/* A session ends when a counter goes past its setting (over()), so each
 * counter must reach the setting's maximum + 1 without saturating; the
 * recipient counts stop at the maximum (>=), so they must hold it. */
_Static_assert(FIELD_MAX(struct smtp_session, auth_failures) > CONF_AUTH_FAILURES_MAX,
	       "auth_failures narrower than max_auth_failures");
_Static_assert(FIELD_MAX(struct smtp_session, errors) > CONF_PROTOCOL_ERRORS_MAX,
	       "errors narrower than max_protocol_errors");
_Static_assert(FIELD_MAX(struct smtp_session, unknown) > CONF_UNKNOWN_RCPTS_MAX,
	       "unknown narrower than max_unknown_recipients");
_Static_assert(FIELD_MAX(struct smtp_session, nrcpt) >= CONF_RCPTS_PER_MESSAGE_MAX &&
		       FIELD_MAX(struct smtp_session, max_rcpt) >= CONF_RCPTS_PER_MESSAGE_MAX &&
		       FIELD_MAX(struct smtp_envelope, nmbox) >= CONF_RCPTS_PER_MESSAGE_MAX,
	       "recipient counts narrower than max_recipients_per_message");

enum {
	AS_NONE,
	AS_PLAIN,      /* 334 sent, waiting for the PLAIN response */
	AS_LOGIN_USER, /* 334 Username: sent */
	AS_LOGIN_PASS, /* 334 Password: sent */
};

void (*smtp_session_tracer)(const struct smtp_session *s, enum smtp_state to);

/* Every change of state after init passes here, so one hook sees them all. */
static void enter_state(struct smtp_session *s, enum smtp_state to)
{
	if (smtp_session_tracer && s->state != to)
		smtp_session_tracer(s, to);
	s->state = (uint8_t)to;
}

void smtp_session_init(struct smtp_session *s, struct smtp_envelope *env, uint16_t max_rcpt)
{
	s->state = SMTP_CMD;
	s->flags = 0;
	s->auth_state = AS_NONE;
	s->auth_failures = 0;
	s->nrcpt = 0;
	s->max_rcpt = max_rcpt;
	s->helo_len = 0;
	s->errors = 0;
	s->unknown = 0;
	s->env = env;
	s->table = NULL;
	s->helo[0] = 0;
	s->sender[0] = 0;
}

void smtp_session_reset(struct smtp_session *s)
{
	if (s->table)
		recipients_unref(s->table);
	s->table = NULL;
	s->flags &= (uint8_t)~(SS_MAIL | SS_8BIT);
	s->nrcpt = 0;
	s->sender[0] = 0;
	if (s->state != SMTP_CLOSING)
		enter_state(s, SMTP_CMD);
}

void smtp_session_close(struct smtp_session *s)
{
	enter_state(s, SMTP_CLOSING);
}

bool smtp_session_tarpitted(const struct smtp_session *s, const struct smtp_env *e)
{
	return e->conn->tarpit_interval > 0 && !(s->flags & SS_AUTH);
}

bool smtp_session_8bitmime(const struct smtp_session *s)
{
	return (s->flags & SS_8BIT) != 0;
}

bool smtp_session_authenticated(const struct smtp_session *s)
{
	return (s->flags & SS_AUTH) != 0;
}

bool smtp_session_in_tls(const struct smtp_session *s)
{
	return (s->flags & SS_TLS) != 0;
}

bool smtp_session_offers_starttls(const struct smtp_session *s, const struct smtp_env *e)
{
	return e->tls && e->conn->starttls && !(s->flags & SS_TLS);
}

bool smtp_session_offers_auth(const struct smtp_session *s, const struct smtp_env *e)
{
	return e->users && e->conn->auth && (!e->conn->auth_requires_tls || (s->flags & SS_TLS));
}

bool smtp_session_in_transaction(const struct smtp_session *s)
{
	return (s->flags & SS_MAIL) != 0;
}

const char *smtp_session_protocol(const struct smtp_session *s)
{
	static const char *const names[4] = {"ESMTP", "ESMTPS", "ESMTPA", "ESMTPSA"};
	if (!(s->flags & SS_EHLO))
		return "SMTP";
	return names[((s->flags & SS_TLS) ? 1 : 0) + ((s->flags & SS_AUTH) ? 2 : 0)];
}

/* A reply with the flags its id implies: 354 starts the data, 220 the
 * handshake, 221, BDAT's and HTTP's 502 and every 421 end the session. A
 * 5xx, and the 421 that closes a session, are tarpitted (SPEC §8). */
static struct smtp_reply reply(struct smtp_session *s, const struct smtp_env *e, enum reply_id id)
{
	struct smtp_reply r = {(uint8_t)id, 0};
	int code = reply_code(id);

	if (id == R_354)
		r.flags = RF_DATA;
	else if (id == R_220_TLS)
		r.flags = RF_STARTTLS;
	else if (code == 421 || id == R_221_BYE || id == R_502_BDAT || id == R_502_HTTP)
		r.flags = RF_CLOSE;
	if ((code >= 500 || code == 421) && smtp_session_tarpitted(s, e))
		r.flags |= RF_TARPIT;
	if (r.flags & RF_CLOSE)
		enter_state(s, SMTP_CLOSING);
	return r;
}

void smtp_session_discredit(struct smtp_session *s)
{
	s->flags |= SS_DISCREDITED;
}

static bool word_is(const char *w, size_t wl, const char *kw)
{
	size_t n = strlen(kw);
	return wl == n && strncasecmp(w, kw, n) == 0;
}

/* "FROM:" / "TO:" right after the verb, case-insensitive. */
static bool take_prefix(const char **arg, size_t *alen, const char *kw)
{
	size_t n = strlen(kw);
	if (*alen < n || strncasecmp(*arg, kw, n) != 0)
		return false;
	*arg += n;
	*alen -= n;
	return true;
}

static void set_helo(struct smtp_session *s, const char *arg, size_t len)
{
	/* Neutered once here, so the Received: line can be built without
	 * looking at client octets again (SPEC §7). */
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)arg[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			  c == '.' || c == '-' || c == '_' || c == ':' || c == '[' || c == ']';
		s->helo[i] = ok ? (char)c : '?';
	}
	s->helo[len] = 0;
	s->helo_len = (uint16_t)len;
}

static enum reply_id cmd_helo(struct smtp_session *s, const char *arg, size_t alen, bool ehlo)
{
	while (alen && arg[alen - 1] == ' ')
		alen--;
	if (alen == 0 || alen > SMTP_HELO_MAX)
		return R_501_HELO;
	smtp_session_reset(s);
	set_helo(s, arg, alen);
	s->flags = (uint8_t)((s->flags & ~SS_EHLO) | SS_HELO | (ehlo ? SS_EHLO : 0));
	return ehlo ? R_EHLO : R_HELO;
}

/* SIZE=n (RFC 1870: 1*20DIGIT). A value that is no such number is a
 * syntax error, 501 5.5.4 (SPEC §7); a number above max_message_size,
 * even one past 64 bits, is 552. */
static enum reply_id size_param(const struct smtp_env *e, const char *v, size_t vl)
{
	uint64_t n = 0;
	bool huge = false;

	if (vl == 0 || vl > 20)
		return R_501_ARGS;
	for (size_t k = 0; k < vl; k++) {
		if (v[k] < '0' || v[k] > '9')
			return R_501_ARGS;
		if (n > (UINT64_MAX - 9) / 10)
			huge = true; /* absurd sizes are just too big */
		else
			n = n * 10 + (uint64_t)(v[k] - '0');
	}
	return huge || n > e->conn->max_message_size ? R_552_SIZE : R_NONE;
}

/* AUTH=<> or AUTH=xtext (RFC 4954 §5, RFC 3461 §4): only its syntax is
 * checked. Its value is never trusted or used: the session is
 * authenticated by an AUTH command alone, and nothing else here would
 * change with the value (no relaying, no header carries it). */
static bool auth_param_ok(const char *v, size_t vl)
{
	if (vl == 0)
		return false;
	for (size_t k = 0; k < vl; k++) {
		unsigned char c = (unsigned char)v[k];
		if (c == '+') {
			for (int h = 1; h <= 2; h++) {
				unsigned char x = k + (size_t)h < vl ? (unsigned char)v[k + (size_t)h] : 0;
				if (!((x >= '0' && x <= '9') || (x >= 'A' && x <= 'F')))
					return false;
			}
			k += 2;
		} else if (c < 0x21 || c > 0x7e || c == '=') {
			return false;
		}
	}
	return true;
}

/* MAIL parameters: SIZE=n, BODY=7BIT|8BITMIME, and AUTH= where AUTH is
 * offered; anything else is 555. *eightbit: BODY=8BITMIME was given (the
 * last BODY= counts). */
static enum reply_id mail_params(const struct smtp_session *s, const struct smtp_env *e,
				 const char *p, size_t len, bool *eightbit)
{
	size_t i = 0;
	while (i < len) {
		size_t st = i, eq = 0, vl;
		const char *v;
		enum reply_id r;
		while (i < len && p[i] != ' ')
			i++;
		for (size_t k = st; k < i; k++)
			if (p[k] == '=') {
				eq = k;
				break;
			}
		if (eq == 0)
			return R_555_PARAM;
		v = p + eq + 1;
		vl = i - eq - 1;
		if (word_is(p + st, eq - st, "SIZE")) {
			if ((r = size_param(e, v, vl)) != R_NONE)
				return r;
		} else if (word_is(p + st, eq - st, "BODY")) {
			if (!word_is(v, vl, "7BIT") && !word_is(v, vl, "8BITMIME"))
				return R_555_PARAM;
			*eightbit = word_is(v, vl, "8BITMIME");
		} else if (word_is(p + st, eq - st, "AUTH") && smtp_session_offers_auth(s, e)) {
			if (!auth_param_ok(v, vl))
				return R_501_ARGS;
		} else {
			return R_555_PARAM;
		}
		while (i < len && p[i] == ' ')
			i++;
	}
	return R_NONE;
}

static enum reply_id cmd_mail(struct smtp_session *s, const struct smtp_env *e,
			      const char *arg, size_t alen)
{
	char addr[ADDRESS_MAX + 1];
	size_t addr_len, rest;
	enum reply_id pr;
	bool eightbit = false;

	if (!(s->flags & SS_HELO))
		return R_503_SEQ_HELO;
	if (s->flags & SS_MAIL)
		return R_503_SEQ_NESTED;
	if (e->conn->require_tls && !(s->flags & SS_TLS))
		return R_530_TLS;
	if (!take_prefix(&arg, &alen, "FROM:") ||
	    address_parse_path(arg, alen, addr, &addr_len, &rest) != 0 ||
	    (addr_len > 0 && memchr(addr, '@', addr_len) == NULL))
		return R_501_SENDER;
	pr = mail_params(s, e, arg + rest, alen - rest, &eightbit);
	if (pr != R_NONE)
		return pr;
	memcpy(s->sender, addr, addr_len + 1);
	s->flags |= SS_MAIL | (eightbit ? SS_8BIT : 0);
	s->nrcpt = 0;
	recipients_ref(e->rcpts);
	s->table = e->rcpts;
	return R_250_MAIL;
}

static enum reply_id cmd_rcpt(struct smtp_session *s, const struct smtp_env *e,
			      const char *arg, size_t alen)
{
	char addr[ADDRESS_MAX + 1];
	size_t addr_len, rest;
	uint32_t mbox;
	unsigned i;
	int relay;
	const char *at;
	struct smtp_envelope *env = s->env;

	if (!(s->flags & SS_MAIL))
		return R_503_SEQ_MAIL;
	if (!take_prefix(&arg, &alen, "TO:") ||
	    address_parse_path(arg, alen, addr, &addr_len, &rest) != 0 || addr_len == 0 ||
	    (memchr(addr, '@', addr_len) == NULL && strcasecmp(addr, "postmaster") != 0))
		return R_501_RCPT;
	if (rest < alen)
		return R_555_PARAM;
	if (s->nrcpt >= s->max_rcpt || s->nrcpt >= e->conn->max_recipients_per_message)
		return R_452_RCPTS;
	/* The transaction's table, not the current one: ids must stay valid. */
	/* A relay's domain is still a local one: the recipient file decides
	 * which of its addresses exist (SPEC §10); the smarthost takes what
	 * is not local, for authenticated sessions only. */
	at = memchr(addr, '@', addr_len);
	relay = at && e->routes ? route_relay(e->routes, at + 1, addr_len - (size_t)(at + 1 - addr)) : -1;
	switch (recipients_lookup(s->table, addr, addr_len, &mbox)) {
	case RCPT_OK:
		break;
	case RCPT_NOT_LOCAL:
		if ((s->flags & SS_AUTH) && e->routes && (relay = route_smarthost(e->routes)) >= 0)
			break;
		return R_550_RELAY;
	default:
		s->flags |= SS_UNKNOWN;
		s->unknown++;
		return R_550_UNKNOWN;
	}
	if (relay >= 0) {
		if (e->queue_full)
			return R_452_QUEUE;
		if (!env->fwd || (size_t)env->fwd_len + addr_len + 2 > SESSION_FWD_MAX)
			return R_452_RCPTS;
	}
	if (s->nrcpt == 0) {
		env->nmbox = 0;
		env->nfwd = 0;
		env->fwd_len = 0;
		memcpy(env->first_rcpt, addr, addr_len + 1);
		env->first_len = (uint16_t)addr_len;
	}
	s->nrcpt++;
	if (relay >= 0) {
		char *p = env->fwd + env->fwd_len;
		p[0] = (char)relay;
		memcpy(p + 1, addr, addr_len + 1);
		env->fwd_len = (uint16_t)(env->fwd_len + addr_len + 2);
		env->nfwd++;
		return R_250_RCPT;
	}
	for (i = 0; i < env->nmbox && env->mbox[i] != mbox; i++)
		;
	if (i == env->nmbox)
		env->mbox[env->nmbox++] = mbox;
	return R_250_RCPT;
}

static enum reply_id cmd_data(struct smtp_session *s, size_t alen)
{
	if (!(s->flags & SS_MAIL))
		return R_503_SEQ_MAIL;
	if (alen)
		return R_501_ARGS;
	if (s->nrcpt == 0)
		return R_554_NORCPT;
	enter_state(s, SMTP_DATA_WAIT);
	return R_354;
}

static enum reply_id cmd_starttls(struct smtp_session *s, const struct smtp_env *e, size_t alen)
{
	if (s->flags & SS_TLS)
		return R_503_TLS;
	if (alen)
		return R_501_TLS;
	if (!smtp_session_offers_starttls(s, e))
		return R_454_TLS;
	if (s->flags & SS_MAIL)
		return R_503_TLS;
	enter_state(s, SMTP_TLS_WAIT);
	return R_220_TLS;
}

struct smtp_reply smtp_session_starttls_failed(struct smtp_session *s)
{
	struct smtp_reply r = {R_454_TLS, 0};
	if (s->state == SMTP_TLS_WAIT)
		enter_state(s, SMTP_CMD);
	return r;
}

void smtp_session_tls_started(struct smtp_session *s)
{
	smtp_session_reset(s);
	/* RFC 3207 §4.2: forget all the client said in the clear. The
	 * unknown-recipient mark and the error counts stay: a harvester must
	 * not buy a clean slate with a handshake. */
	s->flags = (uint8_t)(SS_TLS | (s->flags & (SS_UNKNOWN | SS_DISCREDITED)));
	s->auth_state = AS_NONE;
	s->helo[0] = 0;
	s->helo_len = 0;
	enter_state(s, SMTP_CMD);
}

bool smtp_session_long_line_ok(const struct smtp_session *s, const char *start, size_t len)
{
	/* Never inside a transaction: AUTH is refused there, and the long
	 * line is assembled in the envelope memory that holds its recipients. */
	if (s->flags & SS_MAIL)
		return false;
	return s->auth_state != AS_NONE || (len >= 5 && strncasecmp(start, "AUTH ", 5) == 0);
}

/* A failed login; the 535 is a 5xx and so is tarpitted like every other
 * one (SPEC §8). */
static enum reply_id auth_failed(struct smtp_session *s)
{
	if (s->auth_failures < UINT16_MAX)
		s->auth_failures++;
	return R_535_AUTH;
}

static size_t copy_cut(char *dst, const char *src, size_t n, size_t room)
{
	memcpy(dst, src, n < room ? n : room);
	return n;
}

/* A user name and password to check: handed to the transport, which runs
 * PBKDF2 between other sessions' events and gives the verdict back
 * (smtp_session_auth_verdict). No reply until then. */
static enum reply_id auth_verdict(struct smtp_session *s, const struct smtp_env *e,
				  const char *user, size_t ulen, const char *pass, size_t plen)
{
	struct smtp_creds *c = e->creds;

	s->auth_state = AS_NONE;
	if (!c)
		return auth_failed(s);
	c->ulen = copy_cut(c->user, user, ulen, sizeof c->user);
	c->plen = copy_cut(c->pass, pass, plen, sizeof c->pass);
	enter_state(s, SMTP_AUTH_WAIT);
	return R_NONE;
}

static enum reply_id auth_login_user(struct smtp_session *s, const struct smtp_env *e,
				     const unsigned char *user, size_t len)
{
	if (len == 0 || len > AUTH_USER_MAX)
		return auth_verdict(s, e, "", 0, "", 0); /* counts as a failure */
	memcpy(s->env->first_rcpt, user, len);
	s->env->first_len = (uint16_t)len;
	s->auth_state = AS_LOGIN_PASS;
	return R_334_PASS;
}

/* A client's base64 answer ("=" is the empty one) to the step auth_state
 * names. */
static enum reply_id auth_answer(struct smtp_session *s, const struct smtp_env *e,
				 const char *line, size_t len)
{
	unsigned char buf[AUTH_LINE_MAX];
	const char *user = "", *pass = "";
	size_t n = 0, ulen = 0, plen = 0;

	if (!(len == 1 && line[0] == '=') && auth_b64_decode(line, len, buf, sizeof buf, &n) != 0) {
		s->auth_state = AS_NONE;
		return R_501_AUTH_B64;
	}
	switch (s->auth_state) {
	case AS_PLAIN:
		/* A PLAIN message that decodes but is not "authzid NUL user NUL
		 * password" (or names another authzid) is a failed login, so it
		 * counts towards max_auth_failures like a wrong password. */
		if (sasl_plain_parse(buf, n, &user, &ulen, &pass, &plen) != 0)
			return auth_verdict(s, e, "", 0, "", 0);
		return auth_verdict(s, e, user, ulen, pass, plen);
	case AS_LOGIN_USER:
		return auth_login_user(s, e, buf, n);
	default:
		return auth_verdict(s, e, s->env->first_rcpt, s->env->first_len, (const char *)buf, n);
	}
}

/* An answer to a 334 challenge, where "*" cancels the exchange. */
static enum reply_id auth_response(struct smtp_session *s, const struct smtp_env *e,
				   const char *line, size_t len)
{
	if (len == 1 && line[0] == '*') {
		s->auth_state = AS_NONE;
		return R_501_AUTH_CANCEL;
	}
	return auth_answer(s, e, line, len);
}

static enum reply_id cmd_auth(struct smtp_session *s, const struct smtp_env *e, const char *arg,
			      size_t alen)
{
	size_t wl = 0;

	if (!e->users || !e->conn->auth)
		return R_502_AUTH;
	if (!(s->flags & SS_HELO))
		return R_503_SEQ_HELO;
	if (s->flags & (SS_AUTH | SS_MAIL))
		return R_503_AUTH;
	if (e->conn->auth_requires_tls && !(s->flags & SS_TLS))
		return R_538_AUTH;
	while (wl < alen && arg[wl] != ' ')
		wl++;
	if (wl == 0)
		return R_501_ARGS;
	if (word_is(arg, wl, "PLAIN"))
		s->auth_state = AS_PLAIN;
	else if (word_is(arg, wl, "LOGIN"))
		s->auth_state = AS_LOGIN_USER;
	else
		return R_504_AUTH;
	while (wl < alen && arg[wl] == ' ')
		wl++;
	if (wl == alen)
		return s->auth_state == AS_PLAIN ? R_334_EMPTY : R_334_USER;
	/* An initial response: PLAIN's may be the "*" of a cancel, LOGIN's is
	 * the user name and nothing else. */
	if (s->auth_state == AS_PLAIN)
		return auth_response(s, e, arg + wl, alen - wl);
	return auth_answer(s, e, arg + wl, alen - wl);
}

static bool line_has_bad_octet(const char *line, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];
		if (c == 0 || c == '\r' || c >= 0x80)
			return true;
	}
	return false;
}

enum verb { V_EHLO, V_HELO, V_MAIL, V_RCPT, V_DATA, V_RSET, V_STARTTLS, V_AUTH, V_SIMPLE };

/* Verbs answered by their reply alone come after V_SIMPLE. */
static const struct {
	char verb[9];
	uint8_t reply;
} verbs[] = {
	{"EHLO", 0}, {"HELO", 0}, {"MAIL", 0}, {"RCPT", 0}, {"DATA", 0}, {"RSET", 0},
	{"STARTTLS", 0}, {"AUTH", 0},
	{"NOOP", R_250_OK}, {"QUIT", R_221_BYE}, {"VRFY", R_252_VRFY}, {"EXPN", R_502_EXPN},
	{"HELP", R_214_HELP}, {"BDAT", R_502_BDAT},
	/* A web client pointed at the port: closed at once. */
	{"GET", R_502_HTTP}, {"POST", R_502_HTTP}, {"HEAD", R_502_HTTP}, {"PUT", R_502_HTTP},
	{"CONNECT", R_502_HTTP},
};
#define N_VERBS (sizeof verbs / sizeof verbs[0])

static enum reply_id dispatch(struct smtp_session *s, const struct smtp_env *e,
			      const char *line, size_t len, unsigned *verb)
{
	size_t wl = 0, alen;
	const char *arg;
	unsigned v;

	while (wl < len && line[wl] != ' ')
		wl++;
	arg = line + wl;
	alen = len - wl;
	if (alen && arg[0] == ' ') {
		arg++;
		alen--;
	}
	for (v = 0; v < N_VERBS && !word_is(line, wl, verbs[v].verb); v++)
		;
	*verb = v;
	switch (v) {
	case V_EHLO:
	case V_HELO:
		return cmd_helo(s, arg, alen, v == V_EHLO);
	case V_MAIL:
		return cmd_mail(s, e, arg, alen);
	case V_RCPT:
		return cmd_rcpt(s, e, arg, alen);
	case V_DATA:
		return cmd_data(s, alen);
	case V_RSET:
		if (alen)
			return R_501_ARGS;
		smtp_session_reset(s);
		return R_250_OK;
	case V_STARTTLS:
		return cmd_starttls(s, e, alen);
	case V_AUTH:
		return cmd_auth(s, e, arg, alen);
	default:
		return v < N_VERBS ? (enum reply_id)verbs[v].reply : R_500_UNKNOWN;
	}
}

/* A count past its limit (0: none) ends the session. */
static bool over(uint32_t count, uint32_t max)
{
	return max && count > max;
}

unsigned smtp_session_line(struct smtp_session *s, const struct smtp_env *e,
			   const char *line, size_t len, bool too_long,
			   struct smtp_reply out[2])
{
	enum reply_id id, bye = R_NONE;
	unsigned verb = N_VERBS;

	if (s->state != SMTP_CMD)
		return 0;
	if (too_long) {
		id = R_500_TOOLONG;
		if (smtp_session_long_line_ok(s, line, len)) {
			s->auth_state = AS_NONE;
			id = R_500_AUTH_LONG;
		}
	} else if (s->auth_state != AS_NONE) {
		id = auth_response(s, e, line, len);
	} else if (line_has_bad_octet(line, len)) {
		id = R_500_BADCHAR;
	} else {
		id = dispatch(s, e, line, len, &verb);
	}
	if (s->state == SMTP_AUTH_WAIT)
		return 0;
	out[0] = reply(s, e, id);
	if (verb == V_RCPT)
		out[0].flags |= RF_RCPT;
	/* Sendmail's BAD_RCPT_THROTTLE: once a session has named an unknown
	 * recipient, every RCPT reply waits, so timing tells nothing. */
	if (verb == V_RCPT &&
	    (((s->flags & SS_UNKNOWN) && e->conn->tarpit_all_after_unknown) || (s->flags & SS_DISCREDITED)) &&
	    smtp_session_tarpitted(s, e))
		out[0].flags |= RF_TARPIT;

	if (id == R_550_UNKNOWN) {
		if (over(s->unknown, e->conn->max_unknown_recipients))
			bye = R_421_UNKNOWN;
	} else if (id == R_535_AUTH) {
		if (over(s->auth_failures, e->conn->max_auth_failures))
			bye = R_421_AUTH;
	} else if (reply_is_protocol_error(id)) {
		s->errors++;
		if (over(s->errors, e->conn->max_protocol_errors) && !(out[0].flags & RF_CLOSE))
			bye = R_421_ERRORS;
	}
	if (bye == R_NONE)
		return 1;
	out[1] = reply(s, e, bye);
	return 2;
}

bool smtp_session_may_verify(const struct smtp_session *s, const char *line, size_t len)
{
	return s->state == SMTP_CMD && (s->auth_state != AS_NONE || (len >= 5 && strncasecmp(line, "AUTH ", 5) == 0));
}

unsigned smtp_session_auth_verdict(struct smtp_session *s, const struct smtp_env *e, bool ok,
				   struct smtp_reply out[2])
{
	if (s->state != SMTP_AUTH_WAIT)
		return 0;
	enter_state(s, SMTP_CMD);
	if (ok) {
		s->flags |= SS_AUTH;
		out[0] = reply(s, e, R_235_AUTH);
		return 1;
	}
	out[0] = reply(s, e, auth_failed(s));
	if (!over(s->auth_failures, e->conn->max_auth_failures))
		return 1;
	out[1] = reply(s, e, R_421_AUTH);
	return 2;
}

void smtp_session_data_begin(struct smtp_session *s)
{
	if (s->state == SMTP_DATA_WAIT)
		enter_state(s, SMTP_DATA);
}

struct smtp_reply smtp_session_data_failed(struct smtp_session *s)
{
	struct smtp_reply r = {R_452_STORAGE, 0};
	smtp_session_reset(s);
	return r;
}

struct smtp_reply smtp_session_data_end(struct smtp_session *s, const struct smtp_env *e,
					enum smtp_data_status st)
{
	static const uint8_t ids[] = {
		[DATA_STORED] = R_250_QUEUED,
		[DATA_TOO_BIG] = R_552_TOOBIG,
		[DATA_BARE_EOL] = R_550_BAREEOL,
		[DATA_STORE_FAILED] = R_452_STORAGE,
	};
	struct smtp_reply r = reply(s, e, (unsigned)st < sizeof ids ? (enum reply_id)ids[st] : R_452_STORAGE);

	smtp_session_reset(s);
	return r;
}
