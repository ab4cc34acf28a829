/* smtp_client: see smtp_client.h.
 *
 * The machine is a state plus two cursors over the current message: one
 * for the commands written (RSET when owed, MAIL, the RCPTs of the
 * recipients with a usable address, DATA) and one for the replies read,
 * which meet them in order — so PIPELINING is only a matter of how many
 * commands go into one write. Outcomes are not queued: a reply marks a
 * range of recipients and smtp_client_next() turns each marked one into
 * an event, so no event list has to be stored.
 */
#include "smtp_client.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "sasl.h"

enum {
	ST_GREETING, ST_EHLO_W, ST_EHLO_R, ST_TLS_W, ST_TLS_R, ST_TLS, ST_AUTH_W, ST_AUTH_R, ST_IDLE,
	ST_CMD_W, ST_CMD_R, ST_BODY, ST_FINAL_R, ST_DOT_W, ST_DOT_R, ST_QUIT_W, ST_QUIT_R, ST_DONE,
};

/* The phases of one transaction, for both cursors. */
enum { P_RSET, P_MAIL, P_RCPT, P_DATA, P_END };

#define BIT(s) (1u << (s))

/* ---- the reply parser ---- */

void sc_reply_begin(struct sc_reply *r, bool ehlo)
{
	r->len = r->nlines = r->code = r->tlen = 0;
	r->ehlo = ehlo;
	r->skip = ehlo;
	r->ext = 0;
	r->size_max = 0;
	r->text[0] = '\0';
}

static bool word_is(const char *w, size_t n, const char *kw)
{
	size_t k = strlen(kw);

	if (n != k)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = w[i];

		if (c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		if (c != kw[i])
			return false;
	}
	return true;
}

/* One EHLO keyword line (after "250-"/"250 "): the keywords we use. */
static void ehlo_keyword(struct sc_reply *r, const char *p, size_t n)
{
	size_t w = 0;

	while (w < n && p[w] != ' ' && p[w] != '=')
		w++;
	if (word_is(p, w, "PIPELINING")) {
		r->ext |= SC_EXT_PIPELINING;
	} else if (word_is(p, w, "STARTTLS")) {
		r->ext |= SC_EXT_STARTTLS;
	} else if (word_is(p, w, "8BITMIME")) {
		r->ext |= SC_EXT_8BITMIME;
	} else if (word_is(p, w, "SIZE")) {
		uint64_t v = 0;
		size_t i = w + 1;

		r->ext |= SC_EXT_SIZE;
		/* "SIZE" alone or "SIZE 0": no limit announced (RFC 1870). */
		for (; i < n && i <= w + 20 && p[i] >= '0' && p[i] <= '9'; i++)
			v = v * 10 + (uint64_t)(p[i] - '0');
		r->size_max = v;
	} else if (word_is(p, w, "AUTH")) {
		/* "AUTH LOGIN PLAIN", and the old "AUTH=LOGIN PLAIN". */
		size_t i = w;

		while (i < n) {
			size_t s;

			while (i < n && (p[i] == ' ' || p[i] == '='))
				i++;
			s = i;
			while (i < n && p[i] != ' ' && p[i] != '=')
				i++;
			if (word_is(p + s, i - s, "PLAIN"))
				r->ext |= SC_EXT_AUTH_PLAIN;
		}
	}
}

static void text_add(struct sc_reply *r, const char *p, size_t n)
{
	for (size_t i = 0; i < n && r->tlen < CLIENT_TEXT_MAX; i++) {
		unsigned char c = (unsigned char)p[i];

		/* The text goes to a log line and an envelope file (both
		 * escape it again); a NUL must not cut it here. */
		r->text[r->tlen++] = c < 0x20 || c >= 0x7f ? '?' : (char)c;
	}
	r->text[r->tlen] = '\0';
}

static enum sc_parse bad(struct sc_reply *r, const char *why)
{
	r->tlen = 0;
	text_add(r, why, strlen(why));
	return SC_PARSE_BAD;
}

static bool digit(char c, char hi)
{
	return c >= '0' && c <= hi;
}

/* A complete line in r->line[0..len), its line end removed. */
static enum sc_parse reply_line(struct sc_reply *r)
{
	const char *l = r->line;
	size_t n = r->len;
	unsigned code;
	bool last;

	if (n > 0 && l[n - 1] == '\r')
		n--;
	if (n < 3 || !(l[0] >= '2' && l[0] <= '5') || !digit(l[1], '9') || !digit(l[2], '9'))
		return bad(r, "malformed reply from the next hop (no reply code)");
	if (n > 3 && l[3] != ' ' && l[3] != '-')
		return bad(r, "malformed reply from the next hop (no space after the code)");
	code = (unsigned)(l[0] - '0') * 100 + (unsigned)(l[1] - '0') * 10 + (unsigned)(l[2] - '0');
	if (r->nlines > 0 && code != r->code)
		return bad(r, "malformed reply from the next hop (mixed codes in one reply)");
	if (++r->nlines > CLIENT_REPLY_LINES_MAX)
		return bad(r, "malformed reply from the next hop (too many lines)");
	r->code = (uint16_t)code;
	last = n == 3 || l[3] == ' ';
	if (r->nlines == 1) {
		text_add(r, l, n);
	} else if (n > 4) {
		text_add(r, " ", 1);
		text_add(r, l + 4, n - 4);
	}
	if (r->ehlo && !r->skip && n > 4)
		ehlo_keyword(r, l + 4, n - 4);
	r->skip = false;
	r->len = 0;
	return last ? SC_PARSE_DONE : SC_PARSE_MORE;
}

enum sc_parse sc_reply_feed(struct sc_reply *r, const char *p, size_t n, size_t *used)
{
	for (size_t i = 0; i < n; i++) {
		enum sc_parse st;

		if (p[i] != '\n') {
			/* CLIENT_LINE_MAX counts the CRLF. */
			if (r->len >= CLIENT_LINE_MAX - 1) {
				*used = i + 1;
				return bad(r, "malformed reply from the next hop (line too long)");
			}
			r->line[r->len++] = p[i];
			continue;
		}
		st = reply_line(r);
		if (st != SC_PARSE_MORE) {
			*used = i + 1;
			return st;
		}
	}
	*used = n;
	return SC_PARSE_MORE;
}

/* ---- the machine ---- */

static void set_why(struct smtp_client *c, const char *why)
{
	size_t n = strlen(why);

	if (n > CLIENT_TEXT_MAX)
		n = CLIENT_TEXT_MAX;
	memcpy(c->why, why, n);
	c->why[n] = '\0';
}

/* Events owed: each recipient in [from, to) whose state is in mask. */
static void owe(struct smtp_client *c, unsigned from, unsigned to, unsigned mask, unsigned outcome,
		unsigned code)
{
	c->rep_at = from;
	c->rep_end = to;
	c->rep_mask = (uint8_t)mask;
	c->rep_outcome = (uint8_t)outcome;
	c->rep_code = (uint16_t)code;
}

/* The session is over: every recipient still open is deferred. */
static void fail(struct smtp_client *c, const char *why, unsigned code)
{
	set_why(c, why);
	c->fail_code = (uint16_t)code;
	c->failed = true;
	if (c->msg)
		owe(c, 0, c->msg->nrcpt, BIT(SC_R_PENDING) | BIT(SC_R_ACCEPTED), SC_R_DEFERRED, 0);
	c->state = ST_DONE;
}

/* An address we can put between brackets: the queue wrote it, but a
 * control octet or a bracket here would forge a command. */
static bool addr_ok(const char *a)
{
	size_t n = 0;

	if (!a)
		return false;
	for (; a[n]; n++) {
		unsigned char ch = (unsigned char)a[n];

		if (n >= ADDRESS_MAX || ch <= 0x20 || ch >= 0x7f || ch == '<' || ch == '>')
			return false;
	}
	return n > 0;
}

void smtp_client_init(struct smtp_client *c, const struct smtp_client_conf *conf)
{
	memset(c, 0, offsetof(struct smtp_client, reply));
	c->conf = conf;
	c->state = ST_GREETING;
	c->rep_at = c->rep_end = 0;
	sc_reply_begin(&c->reply, false);
	c->why[0] = '\0';
}

static void put(struct smtp_client *c, const char *s)
{
	size_t n = strlen(s);

	memcpy(c->out + c->out_len, s, n);
	c->out_len += n;
}

/* What follows a good EHLO: STARTTLS, AUTH or ready. tls_refused: the
 * server answered STARTTLS with an error (opportunistic goes on). */
static void after_ehlo(struct smtp_client *c, bool tls_refused)
{
	const struct smtp_client_conf *k = c->conf;

	if (!c->tls && k->tls != SC_TLS_NO && !tls_refused && (c->ext & SC_EXT_STARTTLS) && k->tls_available) {
		c->state = ST_TLS_W;
		return;
	}
	if (!c->tls && k->tls == SC_TLS_REQUIRED) {
		fail(c, tls_refused ? "STARTTLS is required and the next hop refused it"
			 : k->tls_available ? "STARTTLS is required and the next hop does not offer it"
			 : "STARTTLS is required and this build has no TLS", 0);
		return;
	}
	if (k->auth_user) {
		if (!c->tls) {
			fail(c, "AUTH is configured and the session is not in TLS: no password in the clear", 0);
			return;
		}
		if (!(c->ext & SC_EXT_AUTH_PLAIN)) {
			fail(c, "AUTH is configured and the next hop does not offer AUTH PLAIN", 0);
			return;
		}
		c->state = ST_AUTH_W;
		return;
	}
	c->state = ST_IDLE;
}

/* AUTH PLAIN with the initial response (RFC 4954): "\0user\0pass". */
static bool build_auth(struct smtp_client *c)
{
	unsigned char raw[2 + AUTH_USER_MAX + AUTH_PASS_MAX];
	size_t ul = strlen(c->conf->auth_user), pl = c->conf->auth_pass ? strlen(c->conf->auth_pass) : 0;
	size_t n;

	if (ul == 0 || ul > AUTH_USER_MAX || pl > AUTH_PASS_MAX)
		return false;
	raw[0] = 0;
	memcpy(raw + 1, c->conf->auth_user, ul);
	raw[1 + ul] = 0;
	memcpy(raw + 2 + ul, c->conf->auth_pass, pl);
	c->out_len = 0;
	put(c, "AUTH PLAIN ");
	n = auth_b64_encode(raw, 2 + ul + pl, c->out + c->out_len, sizeof c->out - c->out_len - 2);
	memset(raw, 0, sizeof raw);
	if (n == 0)
		return false;
	c->out_len += n;
	put(c, "\r\n");
	return true;
}

/* The recipient a cursor at i stands on: the next one with a usable
 * address (those without got their FAILED at the start). */
static unsigned next_rcpt(const struct smtp_client *c, unsigned i)
{
	while (i < c->msg->nrcpt && !addr_ok(c->msg->rcpt[i]))
		i++;
	return i;
}

/* One command of the transaction into out, if it fits: false if not. */
static bool build_cmd(struct smtp_client *c)
{
	const struct smtp_client_msg *m = c->msg;
	char buf[ADDRESS_MAX + 64];
	int n;

	switch (c->w_phase) {
	case P_RSET:
		n = snprintf(buf, sizeof buf, "RSET\r\n");
		break;
	case P_MAIL: {
		char size[32] = "";

		if (m->size && (c->ext & SC_EXT_SIZE))
			snprintf(size, sizeof size, " SIZE=%llu", (unsigned long long)m->size);
		n = snprintf(buf, sizeof buf, "MAIL FROM:<%s>%s%s\r\n", m->sender, size,
			     m->eightbit && (c->ext & SC_EXT_8BITMIME) ? " BODY=8BITMIME" : "");
		break;
	}
	case P_RCPT:
		n = snprintf(buf, sizeof buf, "RCPT TO:<%s>\r\n", m->rcpt[c->w_rcpt]);
		break;
	default:
		n = snprintf(buf, sizeof buf, "DATA\r\n");
		break;
	}
	if (n < 0 || (size_t)n >= sizeof buf || c->out_len + (size_t)n > sizeof c->out)
		return false;
	memcpy(c->out + c->out_len, buf, (size_t)n);
	c->out_len += (size_t)n;
	return true;
}

static void advance_write(struct smtp_client *c)
{
	if (c->w_phase == P_RCPT) {
		c->w_rcpt = next_rcpt(c, c->w_rcpt + 1);
		if (c->w_rcpt < c->msg->nrcpt)
			return;
	}
	c->w_phase++;
	if (c->w_phase == P_RCPT) {
		c->w_rcpt = next_rcpt(c, 0);
		if (c->w_rcpt >= c->msg->nrcpt)
			c->w_phase = P_DATA; /* cannot happen: message() takes none without one */
	}
}

static void advance_read(struct smtp_client *c)
{
	if (c->r_phase == P_RCPT) {
		c->r_rcpt = next_rcpt(c, c->r_rcpt + 1);
		if (c->r_rcpt < c->msg->nrcpt)
			return;
	}
	c->r_phase++;
	if (c->r_phase == P_RCPT)
		c->r_rcpt = next_rcpt(c, 0);
}

/* The next batch of commands: one, or with PIPELINING all that fit up to
 * and including DATA (RFC 2920: DATA ends a group). Without PIPELINING,
 * DATA only goes out when a recipient was accepted. */
static void fill_batch(struct smtp_client *c)
{
	c->out_len = 0;
	while (c->w_phase != P_END) {
		if (c->w_phase == P_DATA && !(c->ext & SC_EXT_PIPELINING) && c->accepted == 0) {
			c->w_phase = P_END;
			break;
		}
		if (!build_cmd(c))
			break;
		advance_write(c);
		c->inflight++;
		if (!(c->ext & SC_EXT_PIPELINING))
			break;
	}
}

/* The outcome a 4xx/5xx reply gives; 0 for anything else. */
static unsigned outcome_of(unsigned code)
{
	return code >= 400 && code < 500 ? SC_R_DEFERRED : code >= 500 ? SC_R_FAILED : 0;
}

static void message_over(struct smtp_client *c, bool clean)
{
	c->need_rset = !clean;
	c->state = ST_IDLE;
}

/* A reply to a command of the transaction. */
static void cmd_reply(struct smtp_client *c, unsigned code)
{
	struct smtp_client_msg *m = c->msg;
	unsigned cls = code / 100, out = outcome_of(code);

	switch (c->r_phase) {
	case P_RSET:
		break;
	case P_MAIL:
		if (cls != 2) {
			if (!out) {
				fail(c, "protocol failure: unexpected reply to MAIL", code);
				return;
			}
			owe(c, 0, m->nrcpt, BIT(SC_R_PENDING), out, code);
			c->aborted = true;
			c->w_phase = P_END; /* nothing more is written */
		}
		break;
	case P_RCPT:
		if (m->state[c->r_rcpt] == SC_R_PENDING) {
			if (cls == 2) {
				m->state[c->r_rcpt] = SC_R_ACCEPTED;
				c->accepted++;
			} else if (out) {
				owe(c, c->r_rcpt, c->r_rcpt + 1, BIT(SC_R_PENDING), out, code);
			} else {
				fail(c, "protocol failure: unexpected reply to RCPT", code);
				return;
			}
		}
		break;
	case P_DATA:
		if (code == 354) {
			c->state = c->accepted && !c->aborted ? ST_BODY : ST_DOT_W;
		} else if (out) {
			owe(c, 0, m->nrcpt, BIT(SC_R_ACCEPTED), out, code);
		} else {
			fail(c, "protocol failure: unexpected reply to DATA", code);
			return;
		}
		break;
	default:
		fail(c, "protocol failure: a reply to no command", code);
		return;
	}
	advance_read(c);
	c->inflight--;
	if (c->state != ST_CMD_R || c->inflight > 0)
		return;
	if (c->w_phase != P_END)
		c->state = ST_CMD_W;
	else if (c->r_phase == P_END || c->aborted || c->accepted == 0)
		message_over(c, false);
}

static void final_reply(struct smtp_client *c, unsigned code)
{
	struct smtp_client_msg *m = c->msg;
	unsigned out = code / 100 == 2 ? SC_R_SENT : outcome_of(code);

	if (!out) {
		fail(c, "protocol failure: unexpected reply to the end of data", code);
		return;
	}
	if (!c->conf->lmtp) {
		owe(c, 0, m->nrcpt, BIT(SC_R_ACCEPTED), out, code);
		message_over(c, true);
		return;
	}
	/* LMTP (RFC 2033 §4.2): one reply per accepted recipient, in order. */
	while (c->final_at < m->nrcpt && m->state[c->final_at] != SC_R_ACCEPTED)
		c->final_at++;
	owe(c, c->final_at, c->final_at + 1, BIT(SC_R_ACCEPTED), out, code);
	c->final_at++;
	if (--c->final_left == 0)
		message_over(c, true);
}

/* A complete reply in c->reply. */
static void on_reply(struct smtp_client *c)
{
	unsigned code = c->reply.code;

	if (c->state == ST_QUIT_R) {
		c->state = ST_DONE;
		return;
	}
	/* 421 from any state: the server is closing (RFC 5321 §3.8). */
	if (code == 421) {
		fail(c, c->reply.text, code);
		return;
	}
	switch (c->state) {
	case ST_GREETING:
		if (code / 100 == 2)
			c->state = ST_EHLO_W;
		else
			fail(c, c->reply.text, code);
		break;
	case ST_EHLO_R:
		if (code / 100 == 2) {
			c->ext = c->helo_fallback ? 0 : c->reply.ext;
			c->size_max = c->reply.size_max;
			after_ehlo(c, false);
		} else if (code / 100 == 5 && !c->conf->lmtp && !c->helo_fallback) {
			/* RFC 5321 §3.2: an old server; HELO, no extensions. */
			c->helo_fallback = true;
			c->state = ST_EHLO_W;
		} else {
			fail(c, c->reply.text, code);
		}
		break;
	case ST_TLS_R:
		if (code == 220)
			c->state = ST_TLS;
		else
			after_ehlo(c, true);
		break;
	case ST_AUTH_R:
		if (code / 100 == 2)
			c->state = ST_IDLE;
		else
			fail(c, c->reply.text, code);
		break;
	case ST_CMD_R:
		cmd_reply(c, code);
		break;
	case ST_FINAL_R:
		final_reply(c, code);
		break;
	case ST_DOT_R:
		message_over(c, false);
		break;
	default:
		fail(c, "protocol failure: a reply when none was awaited", code);
		break;
	}
}

static bool reading(const struct smtp_client *c)
{
	switch (c->state) {
	case ST_GREETING: case ST_EHLO_R: case ST_TLS_R: case ST_AUTH_R: case ST_CMD_R:
	case ST_FINAL_R: case ST_DOT_R: case ST_QUIT_R:
		return true;
	default:
		return false;
	}
}

size_t smtp_client_feed(struct smtp_client *c, const char *p, size_t n)
{
	size_t used = 0;
	enum sc_parse st;

	if (!reading(c) || c->rep_at < c->rep_end)
		return 0;
	/* The last reply's text served its events: the next one begins. */
	if (c->reply_done) {
		sc_reply_begin(&c->reply, c->state == ST_EHLO_R && !c->helo_fallback);
		c->reply_done = false;
	}
	st = sc_reply_feed(&c->reply, p, n, &used);
	c->reply_done = st == SC_PARSE_DONE;
	if (st == SC_PARSE_BAD) {
		if (c->state == ST_QUIT_R)
			c->state = ST_DONE;
		else
			fail(c, c->reply.text, 0);
	} else if (st == SC_PARSE_DONE) {
		on_reply(c);
	}
	return used;
}

static void write_line(struct smtp_client *c, const char *verb, const char *arg)
{
	c->out_len = 0;
	put(c, verb);
	if (arg) {
		put(c, " ");
		put(c, arg);
	}
	put(c, "\r\n");
}

/* The octets of a write state, built once when it is entered. */
static void prepare_write(struct smtp_client *c)
{
	switch (c->state) {
	case ST_EHLO_W: {
		const char *h = c->conf->helo && addr_ok(c->conf->helo) && strlen(c->conf->helo) <= 255
					? c->conf->helo : "localhost";
		write_line(c, c->helo_fallback ? "HELO" : c->conf->lmtp ? "LHLO" : "EHLO", h);
		break;
	}
	case ST_TLS_W:
		write_line(c, "STARTTLS", NULL);
		break;
	case ST_AUTH_W:
		if (!build_auth(c))
			fail(c, "AUTH: the user name or password is too long", 0);
		break;
	case ST_CMD_W:
		fill_batch(c);
		if (c->out_len == 0)
			message_over(c, false); /* DATA withheld: no recipient accepted */
		break;
	case ST_DOT_W:
		write_line(c, ".", NULL);
		break;
	case ST_QUIT_W:
		write_line(c, "QUIT", NULL);
		break;
	default:
		break;
	}
}

static uint32_t read_timeout(const struct smtp_client *c)
{
	switch (c->state) {
	case ST_GREETING:
		return CLIENT_GREETING_MS;
	case ST_CMD_R:
		return c->r_phase == P_DATA ? CLIENT_DATA_INIT_MS : CLIENT_COMMAND_MS;
	case ST_FINAL_R:
		return CLIENT_DATA_TERM_MS;
	case ST_QUIT_R:
		return CLIENT_QUIT_MS;
	default:
		return CLIENT_COMMAND_MS;
	}
}

static bool is_write(unsigned st)
{
	return st == ST_EHLO_W || st == ST_TLS_W || st == ST_AUTH_W || st == ST_CMD_W || st == ST_DOT_W ||
	       st == ST_QUIT_W;
}

enum sc_action smtp_client_next(struct smtp_client *c, struct smtp_client_event *ev)
{
	memset(ev, 0, sizeof *ev);
	/* Outcomes owed come first, one per call. */
	while (c->msg && c->rep_at < c->rep_end && c->rep_at < c->msg->nrcpt) {
		unsigned i = c->rep_at++;

		if (!(c->rep_mask & BIT(c->msg->state[i])))
			continue;
		c->msg->state[i] = c->rep_outcome;
		ev->action = SC_RESULT;
		ev->rcpt = i;
		ev->outcome = c->rep_outcome;
		ev->code = c->rep_code;
		ev->text = c->rep_code ? c->reply.text : c->why;
		return SC_RESULT;
	}
	c->rep_at = c->rep_end = 0;
	for (;;) {
		if (is_write(c->state)) {
			if (!c->out_ready) {
				unsigned st = c->state;

				prepare_write(c);
				if (c->state != st)
					return smtp_client_next(c, ev);
				c->out_ready = true;
			}
			ev->action = SC_WRITE;
			ev->data = c->out;
			ev->len = c->out_len;
			ev->timeout_ms = CLIENT_DATA_BLOCK_MS;
			return SC_WRITE;
		}
		switch (c->state) {
		case ST_TLS:
			ev->action = SC_TLS;
			ev->timeout_ms = CLIENT_COMMAND_MS;
			return SC_TLS;
		case ST_BODY:
			ev->action = SC_BODY;
			ev->timeout_ms = CLIENT_DATA_BLOCK_MS;
			return SC_BODY;
		case ST_IDLE:
			c->msg = NULL;
			ev->action = SC_IDLE;
			return SC_IDLE;
		case ST_DONE:
			c->msg = NULL;
			ev->action = SC_DONE;
			ev->ok = !c->failed;
			ev->code = c->fail_code;
			ev->text = c->why;
			return SC_DONE;
		default:
			ev->action = SC_READ;
			ev->timeout_ms = read_timeout(c);
			return SC_READ;
		}
	}
}

/* The reply the next read state waits for. */
static void expect(struct smtp_client *c, unsigned st)
{
	c->state = (uint8_t)st;
	c->reply_done = true; /* begun at the first octet (the text may still serve an event) */
}

void smtp_client_sent(struct smtp_client *c)
{
	static const uint8_t after[ST_DONE + 1] = {
		[ST_EHLO_W] = ST_EHLO_R, [ST_TLS_W] = ST_TLS_R, [ST_AUTH_W] = ST_AUTH_R,
		[ST_CMD_W] = ST_CMD_R, [ST_DOT_W] = ST_DOT_R, [ST_QUIT_W] = ST_QUIT_R,
	};

	if (!is_write(c->state) || !c->out_ready)
		return;
	c->out_ready = false;
	if (c->state == ST_AUTH_W)
		memset(c->out, 0, c->out_len); /* the password leaves no copy */
	expect(c, after[c->state]);
}

void smtp_client_tls_done(struct smtp_client *c, bool ok)
{
	if (c->state != ST_TLS)
		return;
	if (!ok) {
		fail(c, "TLS handshake with the next hop failed", 0);
		return;
	}
	/* RFC 3207 §4.2: everything learnt before TLS is forgotten. */
	c->tls = true;
	c->ext = 0;
	c->state = ST_EHLO_W;
}

void smtp_client_body_done(struct smtp_client *c)
{
	if (c->state != ST_BODY)
		return;
	c->final_left = c->accepted;
	c->final_at = 0;
	expect(c, ST_FINAL_R);
}

void smtp_client_message(struct smtp_client *c, struct smtp_client_msg *m)
{
	unsigned valid = 0;

	if (c->state != ST_IDLE || !m)
		return;
	c->msg = m;
	if (m->nrcpt == 0)
		return; /* nothing to send: SC_IDLE again */
	c->accepted = 0;
	c->inflight = 0;
	c->aborted = false;
	for (unsigned i = 0; i < m->nrcpt; i++)
		valid += addr_ok(m->rcpt[i]);
	if (!m->sender || (m->sender[0] && !addr_ok(m->sender))) {
		set_why(c, "the envelope sender cannot be sent");
		owe(c, 0, m->nrcpt, BIT(SC_R_PENDING), SC_R_FAILED, 0);
		return; /* stays idle: the events, then SC_IDLE */
	}
	if (m->size && (c->ext & SC_EXT_SIZE) && c->size_max && m->size > c->size_max) {
		/* RFC 1870 §6: a client does not send what the server said it
		 * will refuse; the same 5xx the server would give. */
		set_why(c, "552 5.3.4 message size exceeds the next hop's SIZE limit");
		owe(c, 0, m->nrcpt, BIT(SC_R_PENDING), SC_R_FAILED, 0);
		return;
	}
	if (valid < m->nrcpt) {
		/* Failed before a command: marked now, reported as events. */
		set_why(c, "the recipient address cannot be sent");
		for (unsigned i = 0; i < m->nrcpt; i++)
			if (!addr_ok(m->rcpt[i]))
				m->state[i] = SC_R_ACCEPTED; /* a mark only owe() below reads */
		owe(c, 0, m->nrcpt, BIT(SC_R_ACCEPTED), SC_R_FAILED, 0);
		if (valid == 0)
			return;
	}
	c->w_phase = c->r_phase = c->need_rset ? P_RSET : P_MAIL;
	c->w_rcpt = c->r_rcpt = 0;
	c->state = ST_CMD_W;
	c->out_ready = false;
}

void smtp_client_quit(struct smtp_client *c)
{
	if (c->state != ST_IDLE)
		return;
	c->state = ST_QUIT_W;
	c->out_ready = false;
}

void smtp_client_fail(struct smtp_client *c, const char *why)
{
	if (c->state == ST_DONE)
		return;
	if (c->state == ST_QUIT_W || c->state == ST_QUIT_R) {
		c->state = ST_DONE; /* nothing is owed after QUIT */
		return;
	}
	fail(c, why ? why : "connection to the next hop failed", 0);
}

/* The deadline of the wait the machine asked for passed: which wait, for
 * the log and the queue listing. After the end of data the next hop may
 * have taken the message without the reply reaching us (RFC 5321 §4.5.3.2's
 * 10 minutes exist for that): the retry may deliver it twice, and the
 * operator should know (Postfix says the same). */
void smtp_client_timeout(struct smtp_client *c)
{
	const char *step;

	switch (c->state) {
	case ST_GREETING: step = "the greeting"; break;
	case ST_EHLO_W: case ST_EHLO_R:
		step = c->helo_fallback ? "the reply to HELO" : c->conf->lmtp ? "the reply to LHLO" : "the reply to EHLO";
		break;
	case ST_TLS_W: case ST_TLS_R: step = "the reply to STARTTLS"; break;
	case ST_TLS: step = "the TLS handshake"; break;
	case ST_AUTH_W: case ST_AUTH_R: step = "the reply to AUTH"; break;
	case ST_CMD_W: case ST_CMD_R: step = "the replies to MAIL, RCPT and DATA"; break;
	case ST_BODY: step = "room to send the message"; break;
	/* DATA's 354 came with no recipient accepted: a lone "." ends it. */
	case ST_DOT_W: case ST_DOT_R: step = "the reply to an empty DATA"; break;
	case ST_FINAL_R:
		step = "the reply to the end of data (the next hop may have the message: it may arrive twice)";
		break;
	default: step = NULL; break;
	}
	if (step) {
		char why[CLIENT_TEXT_MAX + 1];

		snprintf(why, sizeof why, "timed out waiting for %s", step);
		smtp_client_fail(c, why);
	} else {
		smtp_client_fail(c, "timed out waiting for the next hop");
	}
}

/* ---- the body on its way out ---- */

size_t smtp_client_stuff(struct sc_stuff *s, const char *in, size_t n, char *out, size_t room, size_t *wrote)
{
	size_t i = 0, o = 0;

	for (; i < n; i++) {
		char ch = in[i];

		if (ch == '\n') {
			if (room - o < 2)
				break;
			out[o++] = '\r';
			out[o++] = '\n';
			s->mid = false;
		} else if (ch == '.' && !s->mid) {
			if (room - o < 2)
				break;
			out[o++] = '.';
			out[o++] = '.';
			s->mid = true;
		} else {
			if (room - o < 1)
				break;
			out[o++] = ch;
			s->mid = true;
		}
	}
	*wrote = o;
	return i;
}

size_t smtp_client_stuff_end(struct sc_stuff *s, char *out)
{
	size_t o = 0;

	if (s->mid) {
		out[o++] = '\r';
		out[o++] = '\n';
	}
	memcpy(out + o, ".\r\n", 3);
	s->mid = false;
	return o + 3;
}
