#include "smtp_session.h"

#include <string.h>
#include <strings.h>

#include "auth.h"
#include "config.h"
#include "recipients.h"

enum {
	SS_HELO = 1u,    /* HELO or EHLO seen */
	SS_EHLO = 2u,
	SS_MAIL = 4u,    /* a transaction is open */
	SS_UNKNOWN = 8u, /* an unknown recipient was seen in this session */
	SS_TLS = 16u,    /* the session runs inside TLS */
	SS_AUTH = 32u,   /* authenticated: never tarpitted */
	SS_DISCREDITED = 64u, /* the source is a known harvester (SPEC §8) */
};

enum {
	AS_NONE,
	AS_PLAIN,      /* 334 sent, waiting for the PLAIN response */
	AS_LOGIN_USER, /* 334 Username: sent */
	AS_LOGIN_PASS, /* 334 Password: sent */
};

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
	s->flags &= (uint8_t)~SS_MAIL;
	s->nrcpt = 0;
	s->sender[0] = 0;
	if (s->state != SMTP_CLOSING)
		s->state = SMTP_CMD;
}

bool smtp_session_tarpitted(const struct smtp_session *s, const struct smtp_env *e)
{
	return e->conn->tarpit_interval > 0 && !(s->flags & SS_AUTH);
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

static struct smtp_reply reply(const struct smtp_session *s, const struct smtp_env *e,
			       enum reply_id id, unsigned flags)
{
	struct smtp_reply r = {(uint8_t)id, (uint8_t)flags};
	if (reply_code(id) >= 500 && smtp_session_tarpitted(s, e))
		r.flags |= RF_TARPIT;
	return r;
}

/* Sendmail's BAD_RCPT_THROTTLE: once a session has named an unknown
 * recipient, every RCPT reply waits, so timing tells nothing. */
static struct smtp_reply rcpt_reply(const struct smtp_session *s, const struct smtp_env *e,
				    enum reply_id id)
{
	struct smtp_reply r = reply(s, e, id, 0);
	if (((s->flags & SS_UNKNOWN) && e->conn->tarpit_all_after_unknown) || (s->flags & SS_DISCREDITED))
		if (smtp_session_tarpitted(s, e))
			r.flags |= RF_TARPIT;
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

static struct smtp_reply cmd_helo(struct smtp_session *s, const struct smtp_env *e,
				  const char *arg, size_t alen, bool ehlo)
{
	while (alen && arg[alen - 1] == ' ')
		alen--;
	if (alen == 0 || alen > SMTP_HELO_MAX)
		return reply(s, e, R_501_HELO, 0);
	smtp_session_reset(s);
	set_helo(s, arg, alen);
	s->flags = (uint8_t)((s->flags & ~SS_EHLO) | SS_HELO | (ehlo ? SS_EHLO : 0));
	return reply(s, e, ehlo ? R_EHLO : R_HELO, 0);
}

/* MAIL parameters: SIZE=n and BODY=7BIT|8BITMIME; anything else is 555. */
static enum reply_id mail_params(const struct smtp_env *e, const char *p, size_t len)
{
	size_t i = 0;
	while (i < len) {
		size_t st = i, eq = 0, vl;
		while (i < len && p[i] != ' ')
			i++;
		for (size_t k = st; k < i; k++)
			if (p[k] == '=') {
				eq = k;
				break;
			}
		if (eq == 0)
			return R_555_PARAM;
		vl = i - eq - 1;
		if (word_is(p + st, eq - st, "SIZE")) {
			uint64_t v = 0;
			bool huge = false;
			if (vl == 0)
				return R_555_PARAM;
			for (size_t k = eq + 1; k < i; k++) {
				if (p[k] < '0' || p[k] > '9')
					return R_555_PARAM;
				if (v > (UINT64_MAX - 9) / 10)
					huge = true; /* absurd sizes are just too big */
				else
					v = v * 10 + (uint64_t)(p[k] - '0');
			}
			if (huge || v > e->conn->max_message_size)
				return R_552_SIZE;
		} else if (word_is(p + st, eq - st, "BODY")) {
			if (!word_is(p + eq + 1, vl, "7BIT") && !word_is(p + eq + 1, vl, "8BITMIME"))
				return R_555_PARAM;
		} else {
			return R_555_PARAM;
		}
		while (i < len && p[i] == ' ')
			i++;
	}
	return R_NONE;
}

static struct smtp_reply cmd_mail(struct smtp_session *s, const struct smtp_env *e,
				  const char *arg, size_t alen)
{
	char addr[ADDRESS_MAX + 1];
	size_t addr_len, rest;
	enum reply_id pr;

	if (!(s->flags & SS_HELO))
		return reply(s, e, R_503_SEQ_HELO, 0);
	if (s->flags & SS_MAIL)
		return reply(s, e, R_503_SEQ_NESTED, 0);
	if (e->conn->require_tls && !(s->flags & SS_TLS))
		return reply(s, e, R_530_TLS, 0);
	if (!take_prefix(&arg, &alen, "FROM:") ||
	    address_parse_path(arg, alen, addr, &addr_len, &rest) != 0 ||
	    (addr_len > 0 && memchr(addr, '@', addr_len) == NULL))
		return reply(s, e, R_501_SENDER, 0);
	pr = mail_params(e, arg + rest, alen - rest);
	if (pr != R_NONE)
		return reply(s, e, pr, 0);
	memcpy(s->sender, addr, addr_len + 1);
	s->flags |= SS_MAIL;
	s->nrcpt = 0;
	recipients_ref(e->rcpts);
	s->table = e->rcpts;
	return reply(s, e, R_250_MAIL, 0);
}

static unsigned cmd_rcpt(struct smtp_session *s, const struct smtp_env *e,
			 const char *arg, size_t alen, struct smtp_reply out[2])
{
	char addr[ADDRESS_MAX + 1];
	size_t addr_len, rest;
	uint32_t mbox;
	struct smtp_envelope *env = s->env;

	if (!(s->flags & SS_MAIL)) {
		out[0] = rcpt_reply(s, e, R_503_SEQ_MAIL);
		return 1;
	}
	if (!take_prefix(&arg, &alen, "TO:") ||
	    address_parse_path(arg, alen, addr, &addr_len, &rest) != 0 || addr_len == 0 ||
	    (memchr(addr, '@', addr_len) == NULL && strcasecmp(addr, "postmaster") != 0)) {
		out[0] = rcpt_reply(s, e, R_501_RCPT);
		return 1;
	}
	if (rest < alen) {
		out[0] = rcpt_reply(s, e, R_555_PARAM);
		return 1;
	}
	if (s->nrcpt >= s->max_rcpt || s->nrcpt >= e->conn->max_recipients_per_message) {
		out[0] = rcpt_reply(s, e, R_452_RCPTS);
		return 1;
	}
	/* The transaction's table, not the current one: ids must stay valid. */
	switch (recipients_lookup(s->table, addr, addr_len, &mbox)) {
	case RCPT_OK:
		break;
	case RCPT_NOT_LOCAL:
		out[0] = rcpt_reply(s, e, R_550_RELAY);
		return 1;
	case RCPT_UNKNOWN:
	default:
		s->flags |= SS_UNKNOWN;
		s->unknown++;
		out[0] = rcpt_reply(s, e, R_550_UNKNOWN);
		if (e->conn->max_unknown_recipients && s->unknown > e->conn->max_unknown_recipients) {
			out[1] = reply(s, e, R_421_UNKNOWN, RF_CLOSE);
			if (smtp_session_tarpitted(s, e))
				out[1].flags |= RF_TARPIT;
			s->state = SMTP_CLOSING;
			return 2;
		}
		return 1;
	}
	if (s->nrcpt == 0) {
		env->nmbox = 0;
		memcpy(env->first_rcpt, addr, addr_len + 1);
		env->first_len = (uint16_t)addr_len;
	}
	s->nrcpt++;
	{
		unsigned i;
		for (i = 0; i < env->nmbox && env->mbox[i] != mbox; i++)
			;
		if (i == env->nmbox)
			env->mbox[env->nmbox++] = mbox;
	}
	out[0] = rcpt_reply(s, e, R_250_RCPT);
	return 1;
}

static struct smtp_reply cmd_data(struct smtp_session *s, const struct smtp_env *e, size_t alen)
{
	if (!(s->flags & SS_MAIL))
		return reply(s, e, R_503_SEQ_MAIL, 0);
	if (alen)
		return reply(s, e, R_501_ARGS, 0);
	if (s->nrcpt == 0)
		return reply(s, e, R_554_NORCPT, 0);
	s->state = SMTP_DATA_WAIT;
	return reply(s, e, R_354, RF_DATA);
}

static struct smtp_reply cmd_starttls(struct smtp_session *s, const struct smtp_env *e, size_t alen)
{
	if (s->flags & SS_TLS)
		return reply(s, e, R_503_TLS, 0);
	if (alen)
		return reply(s, e, R_501_TLS, 0);
	if (!smtp_session_offers_starttls(s, e))
		return reply(s, e, R_454_TLS, 0);
	if (s->flags & SS_MAIL)
		return reply(s, e, R_503_TLS, 0);
	s->state = SMTP_TLS_WAIT;
	return reply(s, e, R_220_TLS, RF_STARTTLS);
}

struct smtp_reply smtp_session_starttls_failed(struct smtp_session *s)
{
	struct smtp_reply r = {R_454_TLS, 0};
	if (s->state == SMTP_TLS_WAIT)
		s->state = SMTP_CMD;
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
	s->state = SMTP_CMD;
}

static bool starts_with_auth(const char *line, size_t len)
{
	return len >= 5 && strncasecmp(line, "AUTH ", 5) == 0;
}

bool smtp_session_long_line_ok(const struct smtp_session *s, const char *start, size_t len)
{
	/* Never inside a transaction: AUTH is refused there, and the long
	 * line is assembled in the envelope memory that holds its recipients. */
	if (s->flags & SS_MAIL)
		return false;
	return s->auth_state != AS_NONE || starts_with_auth(start, len);
}

/* One verdict on a user name and password; the 535 is a 5xx and so is
 * tarpitted like every other one (SPEC §8). */
static unsigned auth_verdict(struct smtp_session *s, const struct smtp_env *e, const char *user,
			     size_t ulen, const char *pass, size_t plen, struct smtp_reply out[2])
{
	s->auth_state = AS_NONE;
	if (users_verify(e->users, user, ulen, pass, plen)) {
		s->flags |= SS_AUTH;
		out[0] = reply(s, e, R_235_AUTH, 0);
		return 1;
	}
	if (s->auth_failures < UINT8_MAX)
		s->auth_failures++;
	out[0] = reply(s, e, R_535_AUTH, 0);
	if (e->conn->max_auth_failures && s->auth_failures > e->conn->max_auth_failures) {
		out[1] = reply(s, e, R_421_AUTH, RF_CLOSE);
		if (smtp_session_tarpitted(s, e))
			out[1].flags |= RF_TARPIT;
		s->state = SMTP_CLOSING;
		return 2;
	}
	return 1;
}

static unsigned auth_plain(struct smtp_session *s, const struct smtp_env *e,
			   const unsigned char *msg, size_t len, struct smtp_reply out[2])
{
	const char *user, *pass;
	size_t ulen, plen;
	/* A PLAIN message that decodes but is not "authzid NUL user NUL
	 * password" (or names another authzid) is a failed login, so it
	 * counts towards max_auth_failures like a wrong password. */
	if (sasl_plain_parse(msg, len, &user, &ulen, &pass, &plen) != 0)
		return auth_verdict(s, e, "", 0, "", 0, out);
	return auth_verdict(s, e, user, ulen, pass, plen, out);
}

/* Decodes a client's base64 answer ("=" is the empty one). */
static int decode(const char *in, size_t len, unsigned char *out, size_t outsz, size_t *outlen)
{
	if (len == 1 && in[0] == '=') {
		*outlen = 0;
		return 0;
	}
	return auth_b64_decode(in, len, out, outsz, outlen);
}

static unsigned auth_login_user(struct smtp_session *s, const struct smtp_env *e,
				const unsigned char *user, size_t len, struct smtp_reply out[2])
{
	if (len == 0 || len > AUTH_USER_MAX)
		return auth_verdict(s, e, "", 0, "", 0, out); /* counts as a failure */
	memcpy(s->env->first_rcpt, user, len);
	s->env->first_len = (uint16_t)len;
	s->auth_state = AS_LOGIN_PASS;
	out[0] = reply(s, e, R_334_PASS, 0);
	return 1;
}

static unsigned auth_response(struct smtp_session *s, const struct smtp_env *e,
			      const char *line, size_t len, struct smtp_reply out[2])
{
	unsigned char buf[AUTH_LINE_MAX];
	size_t n;

	if (len == 1 && line[0] == '*') {
		s->auth_state = AS_NONE;
		out[0] = reply(s, e, R_501_AUTH_CANCEL, 0);
		return 1;
	}
	if (decode(line, len, buf, sizeof buf, &n) != 0) {
		s->auth_state = AS_NONE;
		out[0] = reply(s, e, R_501_AUTH_B64, 0);
		return 1;
	}
	switch (s->auth_state) {
	case AS_PLAIN:
		return auth_plain(s, e, buf, n, out);
	case AS_LOGIN_USER:
		return auth_login_user(s, e, buf, n, out);
	default:
		return auth_verdict(s, e, s->env->first_rcpt, s->env->first_len, (const char *)buf, n, out);
	}
}

static unsigned cmd_auth(struct smtp_session *s, const struct smtp_env *e, const char *arg,
			 size_t alen, struct smtp_reply out[2])
{
	unsigned char buf[AUTH_LINE_MAX];
	size_t wl = 0, n;
	const char *resp;
	size_t rlen;

	if (!e->users || !e->conn->auth) {
		out[0] = reply(s, e, R_502_AUTH, 0);
		return 1;
	}
	if (!(s->flags & SS_HELO)) {
		out[0] = reply(s, e, R_503_SEQ_HELO, 0);
		return 1;
	}
	if (s->flags & (SS_AUTH | SS_MAIL)) {
		out[0] = reply(s, e, R_503_AUTH, 0);
		return 1;
	}
	if (e->conn->auth_requires_tls && !(s->flags & SS_TLS)) {
		out[0] = reply(s, e, R_538_AUTH, 0);
		return 1;
	}
	while (wl < alen && arg[wl] != ' ')
		wl++;
	if (wl == 0) {
		out[0] = reply(s, e, R_501_ARGS, 0);
		return 1;
	}
	resp = arg + wl;
	rlen = alen - wl;
	while (rlen && resp[0] == ' ') {
		resp++;
		rlen--;
	}
	if (word_is(arg, wl, "PLAIN")) {
		if (rlen == 0) {
			s->auth_state = AS_PLAIN;
			out[0] = reply(s, e, R_334_EMPTY, 0);
			return 1;
		}
		s->auth_state = AS_PLAIN;
		return auth_response(s, e, resp, rlen, out);
	}
	if (word_is(arg, wl, "LOGIN")) {
		if (rlen == 0) {
			s->auth_state = AS_LOGIN_USER;
			out[0] = reply(s, e, R_334_USER, 0);
			return 1;
		}
		if (decode(resp, rlen, buf, sizeof buf, &n) != 0) {
			out[0] = reply(s, e, R_501_AUTH_B64, 0);
			return 1;
		}
		return auth_login_user(s, e, buf, n, out);
	}
	out[0] = reply(s, e, R_504_AUTH, 0);
	return 1;
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

static struct smtp_reply dispatch(struct smtp_session *s, const struct smtp_env *e,
				  const char *line, size_t len, struct smtp_reply out[2], unsigned *n)
{
	size_t wl = 0;
	const char *arg;
	size_t alen;

	while (wl < len && line[wl] != ' ')
		wl++;
	arg = line + wl;
	alen = len - wl;
	if (alen && arg[0] == ' ') {
		arg++;
		alen--;
	}
	if (word_is(line, wl, "EHLO"))
		return cmd_helo(s, e, arg, alen, true);
	if (word_is(line, wl, "HELO"))
		return cmd_helo(s, e, arg, alen, false);
	if (word_is(line, wl, "MAIL"))
		return cmd_mail(s, e, arg, alen);
	if (word_is(line, wl, "RCPT")) {
		*n = cmd_rcpt(s, e, arg, alen, out);
		return out[0];
	}
	if (word_is(line, wl, "DATA"))
		return cmd_data(s, e, alen);
	if (word_is(line, wl, "RSET")) {
		if (alen)
			return reply(s, e, R_501_ARGS, 0);
		smtp_session_reset(s);
		return reply(s, e, R_250_OK, 0);
	}
	if (word_is(line, wl, "NOOP"))
		return reply(s, e, R_250_OK, 0);
	if (word_is(line, wl, "QUIT")) {
		s->state = SMTP_CLOSING;
		return reply(s, e, R_221_BYE, RF_CLOSE);
	}
	if (word_is(line, wl, "VRFY"))
		return reply(s, e, R_252_VRFY, 0);
	if (word_is(line, wl, "EXPN"))
		return reply(s, e, R_502_EXPN, 0);
	if (word_is(line, wl, "HELP"))
		return reply(s, e, R_214_HELP, 0);
	if (word_is(line, wl, "STARTTLS"))
		return cmd_starttls(s, e, alen);
	if (word_is(line, wl, "AUTH")) {
		*n = cmd_auth(s, e, arg, alen, out);
		return out[0];
	}
	if (word_is(line, wl, "BDAT")) {
		s->state = SMTP_CLOSING;
		return reply(s, e, R_502_BDAT, RF_CLOSE);
	}
	if (word_is(line, wl, "GET") || word_is(line, wl, "POST") || word_is(line, wl, "HEAD") ||
	    word_is(line, wl, "PUT") || word_is(line, wl, "CONNECT")) {
		s->state = SMTP_CLOSING;
		return reply(s, e, R_502_HTTP, RF_CLOSE);
	}
	return reply(s, e, R_500_UNKNOWN, 0);
}

unsigned smtp_session_line(struct smtp_session *s, const struct smtp_env *e,
			   const char *line, size_t len, bool too_long,
			   struct smtp_reply out[2])
{
	unsigned n = 1;

	if (s->state != SMTP_CMD)
		return 0;
	if (too_long && smtp_session_long_line_ok(s, line, len)) {
		s->auth_state = AS_NONE;
		out[0] = reply(s, e, R_500_AUTH_LONG, 0);
	} else if (too_long)
		out[0] = reply(s, e, R_500_TOOLONG, 0);
	else if (s->auth_state != AS_NONE)
		n = auth_response(s, e, line, len, out);
	else if (line_has_bad_octet(line, len))
		out[0] = reply(s, e, R_500_BADCHAR, 0);
	else
		out[0] = dispatch(s, e, line, len, out, &n);

	if (n == 1 && reply_is_protocol_error((enum reply_id)out[0].id)) {
		s->errors++;
		if (e->conn->max_protocol_errors && s->errors > e->conn->max_protocol_errors &&
		    !(out[0].flags & RF_CLOSE)) {
			out[1] = reply(s, e, R_421_ERRORS, RF_CLOSE);
			if (smtp_session_tarpitted(s, e))
				out[1].flags |= RF_TARPIT;
			s->state = SMTP_CLOSING;
			n = 2;
		}
	}
	return n;
}

void smtp_session_data_begin(struct smtp_session *s)
{
	if (s->state == SMTP_DATA_WAIT)
		s->state = SMTP_DATA;
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
	struct smtp_reply r;
	switch (st) {
	case DATA_STORED:
		r = reply(s, e, R_250_QUEUED, 0);
		break;
	case DATA_TOO_BIG:
		r = reply(s, e, R_552_TOOBIG, 0);
		break;
	case DATA_BARE_EOL:
		r = reply(s, e, R_550_BAREEOL, 0);
		break;
	case DATA_STORE_FAILED:
	default:
		r = reply(s, e, R_452_STORAGE, 0);
		break;
	}
	smtp_session_reset(s);
	return r;
}
