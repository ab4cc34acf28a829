#include "conn.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ban.h"
#include "commit.h"
#include "conn_table.h"
#include "gen.h"
#include "log.h"
#include "loop.h"
#include "queue.h"
#include "server.h"
#include "smtp_data.h"
#include "tls.h"
#include "verify.h"

_Static_assert(TLS_READ_CHUNK <= SMTP_LINE_MAX, "what follows the end of data must fit in[]");
_Static_assert(READ_BUF % TLS_READ_CHUNK == 0, "read_data's TLS loop reads whole chunks");

/* Scratch buffers shared by all connections: only one is served at a time. */
static char rbuf[READ_BUF];
static char dbuf[sizeof rbuf + 1];
char conn_wbuf[OUTQ_MAX * REPLY_MAX];
/* Where a session hands out AUTH credentials; verify_start() takes them
 * at once and they are wiped. */
static struct smtp_creds creds;

static void conn_pump(struct conn *c);
static void start_greeting(struct conn *c);

/* The one place session transitions are traced (log_level = debug). */
static void trace_state(const struct smtp_session *s, enum smtp_state to)
{
	static const char names[][10] = {"cmd", "data_wait", "data", "tls_wait", "auth_wait", "closing"};
	const struct conn *c = (const struct conn *)(const void *)((const char *)s - offsetof(struct conn, s));
	if (log_enabled(LOG_LVL_DEBUG))
		log_msg(LOG_LVL_DEBUG, "event=state id=%u from=%s to=%s", c->id, names[s->state], names[to]);
}

int conn_init(uint32_t n)
{
	if (commit_init(n) != 0)
		return -1;
	smtp_session_tracer = trace_state;
	return 0;
}

void conn_fini(void)
{
	commit_fini();
}

static struct smtp_reply *outq_at(struct conn *c, unsigned k)
{
	return &c->outq[(c->outq_head + k) % OUTQ_MAX];
}

static void outq_push(struct conn *c, struct smtp_reply r)
{
	/* Not reachable today: every caller checks for room first (a command
	 * line is run only with room for its two replies, input is not read
	 * while the queue is full, and the other replies — greeting, 554,
	 * 421, the end of data — are pushed onto a queue holding at most the
	 * one partly written reply). A full queue is therefore a bug: say so
	 * and end the connection at its next flush, rather than lose a reply
	 * and answer out of step. */
	if (c->outq_len >= OUTQ_MAX) {
		log_msg(LOG_LVL_ERROR, "event=reply_queue_overflow id=%u code=%d", c->id,
			reply_code((enum reply_id)r.id));
		c->cflags |= CF_OVERFLOW;
		return;
	}
	if (c->outq_len == 0)
		c->head_base = S.now;
	*outq_at(c, c->outq_len++) = r;
	if ((r.flags & RF_TARPIT) && c->connector->cf->tarpit_interval) {
		STAT(c, replies_tarpitted);
		log_msg(LOG_LVL_INFO, "event=tarpit id=%u code=%d delay=%u", c->id, reply_code((enum reply_id)r.id),
			c->connector->cf->tarpit_interval);
	}
	if (reply_is_protocol_error((enum reply_id)r.id))
		STAT(c, protocol_errors);
	switch (r.id) {
	case R_250_RCPT: STAT(c, recipients_accepted); break;
	case R_550_UNKNOWN: STAT(c, recipients_unknown); break;
	case R_250_QUEUED: STAT(c, messages_accepted); break;
	case R_235_AUTH: STAT(c, auth_success); break;
	case R_535_AUTH: STAT(c, auth_failure); break;
	default: break;
	}
}

static void outq_pop(struct conn *c)
{
	c->outq_head = (uint8_t)((c->outq_head + 1) % OUTQ_MAX);
	c->outq_len--;
	c->out_off = 0;
	c->head_base = S.now;
}

/* When the tarpitted reply at the head of the queue is due; 0 if none. */
static uint64_t tarpit_due(struct conn *c)
{
	if (c->outq_len && c->out_off == 0 && (outq_at(c, 0)->flags & RF_TARPIT))
		return c->head_base + ms(c->connector->cf->tarpit_interval);
	return 0;
}

static bool waiting_on_tarpit(struct conn *c)
{
	return S.now < tarpit_due(c);
}

void conn_peer_text(const struct conn *c, char *buf, size_t len)
{
	ip_format(&c->peer, buf, len);
}

static struct smtp_env session_env(struct conn *c)
{
	const struct config *cfg = &c->connector->gen->cfg;
	struct smtp_env e = {c->connector->cf, S.rcpts, S.users, S.tls != NULL,
			     cfg->nrelays && (!S.queue || queue_full(S.queue)), cfg->nrelays ? cfg : NULL, &creds};
	return e;
}

/* After a failed socket call: nothing is wrong, the call is to be retried
 * at the next readiness. */
static bool try_later(void)
{
	return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
}

/* Socket I/O in the clear or through the connection's TLS context, with
 * the plain calls' conventions: -1/EAGAIN to wait, 0 for the peer's close. */
/* A pool slot is taken when STARTTLS is accepted, but its 220 still goes
 * out in the clear: TLS carries the session only after the handshake. */
static bool tls_active(const struct conn *c)
{
	return c->tls >= 0 && smtp_session_in_tls(&c->s);
}

static ssize_t io_recv(struct conn *c, void *buf, size_t len)
{
	ssize_t n;
	if (!tls_active(c))
		return recv(c->fd, buf, len, 0);
	n = tls_read(S.tls, c->tls, buf, len);
	if (n >= 0)
		return n;
	if (n == TLS_WANT_READ || n == TLS_WANT_WRITE) {
		errno = EAGAIN;
		return -1;
	}
	if (n == TLS_CLOSED)
		return 0;
	errno = ECONNRESET;
	return -1;
}

static ssize_t io_send(struct conn *c, const void *buf, size_t len)
{
	ssize_t n;
	if (!tls_active(c))
		return send(c->fd, buf, len, MSG_NOSIGNAL);
	/* mbedTLS wants a write that could not finish repeated with the same
	 * length; the queue only grows at its tail, so the octets are the same. */
	if (c->tls_wlen && c->tls_wlen <= len)
		len = c->tls_wlen;
	n = tls_write(S.tls, c->tls, buf, len);
	if (n > 0) {
		c->tls_wlen = 0;
		return n;
	}
	if (n == TLS_WANT_READ || n == TLS_WANT_WRITE) {
		c->tls_wlen = (uint16_t)len;
		errno = EAGAIN;
		return -1;
	}
	errno = EPIPE;
	return -1;
}

void conn_fill_envelope(struct conn *c, struct sink_envelope *env, char *ip, size_t iplen)
{
	conn_peer_text(c, ip, iplen);
	env->sender = c->s.sender;
	env->helo = c->s.helo;
	env->peer_ip = ip;
	env->fqdn = c->connector->cf->fqdn;
	env->protocol = smtp_session_protocol(&c->s);
	env->single_rcpt = c->s.nrcpt == 1 ? c->s.env->first_rcpt : NULL;
	env->rcpts = c->s.table;
	env->mailboxes = c->s.env->mbox;
	env->nmailboxes = c->s.env->nmbox;
	env->fwd = NULL;
	env->fwd_arg = NULL;
}

void conn_close(struct conn *c, const char *reason)
{
	char ip[64];
	if (c->fd < 0)
		return;
	conn_peer_text(c, ip, sizeof ip);
	log_msg(LOG_LVL_INFO, "event=disconnect id=%u ip=%s reason=%s errors=%u unknown=%u",
		c->id, ip, reason, c->s.errors, c->s.unknown);
	maildir_abort(S.md, &c->msg);
	verify_cancel(c);
	if (c->tls >= 0) {
		/* Best effort, the socket is non-blocking: a session ended by
		 * a timeout, a limit, a shutdown or an error gets its
		 * close_notify too (none before the handshake is done). */
		int r = tls_close_notify(S.tls, c->tls);
		(void)r;
		tls_release(S.tls, c->tls);
		c->tls = -1;
	}
	smtp_session_reset(&c->s);
	tw_cancel(&S.wheel, &c->timer);
	loop_del(S.loop, c->fd);
	close(c->fd);
	if (!(c->cflags & CF_UNCOUNTED))
		src_count_dec(S.tab, &c->peer);
	S.st.connections_current--;
	c->connector->rt->st.connections_current--;
	gen_unref(c->connector->gen);
	c->connector = NULL;
	conn_release(S.tab, c);
}

static void begin_data_sink(struct conn *c, struct smtp_reply *r)
{
	struct sink_envelope env;
	char ip[64];
	if (c->msg.fd >= 0)
		return;
	conn_fill_envelope(c, &env, ip, sizeof ip);
	if (maildir_begin(S.md, &c->msg, &env, c->queue_id) != 0) {
		log_msg(LOG_LVL_ERROR, "event=store_error id=%u error=\"%s\"", c->id, strerror(errno));
		*r = smtp_session_data_failed(&c->s);
		c->msg.fd = -1;
	}
}

/* The closing reply is out; false if the connection was closed. A TLS
 * session ends with its close_notify (SPEC §7), and its context goes back
 * to the pool at once, not after the linger. Then the write side is shut
 * and input drained briefly (P_LINGER): closing with unread input would
 * send a RST that can destroy our last reply in flight. A close_notify
 * the socket cannot take now waits for it (P_TLS_CLOSE), within the same
 * deadline as the linger. */
static bool end_session(struct conn *c)
{
	c->cflags &= (uint8_t)~CF_WANTW;
	if (c->tls >= 0) {
		int r = tls_close_notify(S.tls, c->tls);
		if (r == TLS_WANT_WRITE || r == TLS_WANT_READ) {
			if (r == TLS_WANT_WRITE)
				c->cflags |= CF_WANTW;
			c->phase = P_TLS_CLOSE;
			return true;
		}
		if (r != 0) {
			conn_close(c, "closed"); /* the peer is gone */
			return false;
		}
		tls_release(S.tls, c->tls);
		c->tls = -1;
	}
	shutdown(c->fd, SHUT_WR);
	c->phase = P_LINGER;
	return true;
}

/* Writes every reply that is due, in order. Returns false if the
 * connection was closed. */
static bool conn_flush(struct conn *c)
{
	struct reply_ctx ctx;
	char ip[64];

	if (c->cflags & CF_OVERFLOW) {
		conn_close(c, "reply_queue_overflow");
		return false;
	}
	conn_peer_text(c, ip, sizeof ip);
	ctx.fqdn = c->connector->cf->fqdn;
	ctx.banner = c->connector->cf->banner;
	ctx.peer_ip = ip;
	ctx.queue_id = c->queue_id;
	ctx.max_size = c->connector->cf->max_message_size;
	ctx.pipelining = c->connector->cf->pipelining;
	{
		struct smtp_env e = session_env(c);
		ctx.starttls = smtp_session_offers_starttls(&c->s, &e);
		ctx.auth = smtp_session_offers_auth(&c->s, &e);
	}

	c->cflags &= (uint8_t)~CF_WANTW;
	while (c->outq_len && (c->phase == P_ACTIVE || c->phase == P_GREETING)) {
		size_t lens[OUTQ_MAX], blen = 0, done;
		unsigned k;
		ssize_t n;

		for (k = 0; k < c->outq_len; k++) {
			struct smtp_reply *r = outq_at(c, k);
			size_t len;
			if (k == 0 && c->out_off == 0) {
				if (waiting_on_tarpit(c))
					break;
				if (r->flags & RF_DATA)
					begin_data_sink(c, r);
			} else if (k > 0 && (r->flags & (RF_TARPIT | RF_DATA | RF_STARTTLS))) {
				/* A delayed reply waits T after its predecessor is
				 * sent; a 354 is only prepared at the head. */
				break;
			}
			len = reply_render((enum reply_id)r->id, &ctx, conn_wbuf + blen, sizeof conn_wbuf - blen);
			if (len == 0)
				break;
			lens[k] = len;
			blen += len;
			if (r->flags & RF_CLOSE) {
				k++;
				break;
			}
		}
		if (k == 0 || blen <= c->out_off)
			return true;
		n = io_send(c, conn_wbuf + c->out_off, blen - c->out_off);
		if (n < 0) {
			if (try_later()) {
				c->cflags |= CF_WANTW;
				return true;
			}
			conn_close(c, "write_error");
			return false;
		}
		c->last_activity = S.now;
		done = c->out_off + (size_t)n;
		for (unsigned i = 0; i < k && done >= lens[i]; i++) {
			struct smtp_reply r = *outq_at(c, 0);
			done -= lens[i];
			outq_pop(c);
			if (r.flags & (RF_CLOSE | RF_STARTTLS)) {
				bool closing = r.flags & RF_CLOSE;
				/* After STARTTLS's 220, and only now, the
				 * handshake starts. */
				c->greet_at = S.now + (closing ? LINGER_MS : HANDSHAKE_MS);
				smtp_input_drop(&c->inp);
				if (closing) {
					/* The session is over: its linger no longer
					 * counts against the source's limit, so a
					 * client whose next session begins before
					 * its FIN of this one reaches us is not
					 * refused (Postfix takes a delivery as done
					 * at the 250 and closes a little later). */
					src_count_dec(S.tab, &c->peer);
					c->cflags |= CF_UNCOUNTED;
					return end_session(c);
				}
				c->phase = P_HANDSHAKE;
				return true;
			}
			if (r.flags & RF_DATA && r.id == R_354) {
				smtp_session_data_begin(&c->s);
				smtp_input_data_begin(&c->inp);
			}
		}
		c->out_off = (uint16_t)done;
		if (done > 0) {
			c->cflags |= CF_WANTW;
			return true;
		}
	}
	return true;
}

bool conn_tarpitted(struct conn *c)
{
	struct smtp_env e = session_env(c);
	return smtp_session_tarpitted(&c->s, &e);
}

/* The last reply, to a client that broke the protocol: it waits the
 * tarpit like any other answer to an offence. */
static struct smtp_reply offence_reply(struct conn *c, enum reply_id id)
{
	struct smtp_reply r = {id, RF_CLOSE};
	if (conn_tarpitted(c))
		r.flags |= RF_TARPIT;
	return r;
}

/* Octets arrived after DATA before its 354 went out, or after STARTTLS
 * before its 220: they are never read as content or commands (SPEC §7). */
static void pipe_violation(struct conn *c)
{
	struct smtp_reply r = offence_reply(c, R_554_PIPE);
	struct smtp_reply *last = c->outq_len ? outq_at(c, c->outq_len - 1) : NULL;

	maildir_abort(S.md, &c->msg);
	if (c->tls >= 0 && !tls_active(c)) {
		tls_release(S.tls, c->tls);
		c->tls = -1;
	}
	smtp_session_reset(&c->s);
	smtp_session_close(&c->s);
	smtp_input_drop(&c->inp);
	if (last && (last->id == R_354 || last->id == R_220_TLS) && !(c->outq_len == 1 && c->out_off > 0)) {
		*last = r;
		if (r.flags & RF_TARPIT)
			STAT(c, replies_tarpitted);
	} else {
		outq_push(c, r);
	}
}

static void log_rcpt_reject(struct conn *c, const char *line, size_t len, enum reply_id id)
{
	char ip[64], text[96];
	if (!log_enabled(LOG_LVL_INFO))
		return;
	conn_peer_text(c, ip, sizeof ip);
	log_neuter(text, sizeof text, line, len);
	log_msg(LOG_LVL_INFO, "event=rcpt_rejected id=%u ip=%s code=%d command=\"%s\"", c->id, ip,
		reply_code(id), text);
}

/* STARTTLS (or an implicit-TLS connection) found no context: counted and
 * said (SPEC §2), with which limit it met, so an operator can tell a
 * pool too small from one source holding its share. */
static void tls_refused(struct conn *c, int why)
{
	char ip[64];
	STAT(c, tls_refused);
	conn_peer_text(c, ip, sizeof ip);
	log_msg(LOG_LVL_NOTICE, "event=tls_refused id=%u ip=%s reason=%s held=%u", c->id, ip,
		why == TLS_SOURCE_FULL ? "source_share" : "pool_full", tls_source_count(S.tls, &c->peer));
}

/* Queues a reply and tells the log and the harvest table what it says;
 * the line it answers (NULL: none to quote) is quoted for a rejected
 * recipient. */
static void take_reply(struct conn *c, struct smtp_reply r, const char *line, size_t len)
{
	/* Another session of this source may have discredited it since
	 * this one began (SPEC §8): one O(1) lookup per RCPT reply not
	 * delayed anyway, until this session knows. */
	if ((r.flags & (RF_RCPT | RF_TARPIT)) == RF_RCPT && ban_offence(BAN_RCPT, c)) {
		smtp_session_discredit(&c->s);
		r.flags |= RF_TARPIT;
	}
	outq_push(c, r);
	if (line && (r.id == R_550_UNKNOWN || r.id == R_550_RELAY))
		log_rcpt_reject(c, line, len, (enum reply_id)r.id);
	if ((r.id == R_550_UNKNOWN && ban_offence(BAN_UNKNOWN_RCPT, c)) ||
	    (r.id == R_535_AUTH && ban_offence(BAN_AUTH_FAILED, c)))
		smtp_session_discredit(&c->s);
	if (r.id == R_235_AUTH || r.id == R_535_AUTH)
		log_msg(LOG_LVL_INFO, "event=auth id=%u result=%s", c->id, r.id == R_235_AUTH ? "ok" : "failed");
}

/* Runs one command line and queues its replies. A rejected recipient's
 * log entry quotes the line (an over-long one is never quoted). An AUTH
 * whose credentials are complete gets no reply yet: its check starts. */
static void run_line(struct conn *c, const struct smtp_env *e, const struct smtp_line *l)
{
	struct smtp_reply out[2];
	size_t len = l->too_long ? 0 : l->len;
	unsigned n = smtp_session_line(&c->s, e, l->text, l->len, l->too_long, out);

	if (c->s.state == SMTP_AUTH_WAIT) {
		if (!verify_start(c, S.users, &creds, S.now)) {
			/* Not reached: process_input asked verify_may_start. Fail
			 * safe: the AUTH fails, nothing is checked on the loop. */
			log_msg(LOG_LVL_ERROR, "event=auth_error id=%u error=\"no verifier free\"", c->id);
			n = smtp_session_auth_verdict(&c->s, e, false, out);
		}
		memset(&creds, 0, sizeof creds); /* a global: never dropped as dead */
	}
	for (unsigned i = 0; i < n; i++) {
		struct smtp_reply r = out[i];
		if (r.flags & RF_STARTTLS) {
			/* The pool slot is taken now, so a 220 is never sent
			 * without a context to back it. */
			int t = tls_acquire_from(S.tls, c->fd, &c->peer);
			if (t < 0) {
				tls_refused(c, t);
				r = smtp_session_starttls_failed(&c->s);
			} else {
				c->tls = (int16_t)t;
			}
		}
		take_reply(c, r, l->text, len);
	}
}

void conn_verified(struct conn *c, bool ok, uint64_t read_at)
{
	struct smtp_env e = session_env(c);
	struct smtp_reply out[2];
	/* SPEC §8: a 535 waits T after its command was read or the previous
	 * reply went out (the time of the last pop while the queue is empty),
	 * whichever is later; the check's own time is part of T. */
	uint64_t base = c->outq_len == 0 && c->head_base > read_at ? c->head_base : read_at;
	bool was_empty = c->outq_len == 0;
	unsigned n = smtp_session_auth_verdict(&c->s, &e, ok, out);

	for (unsigned i = 0; i < n; i++)
		take_reply(c, out[i], NULL, 0);
	if (was_empty && c->outq_len)
		c->head_base = base;
	/* The client waited for us: its idle clock starts again now. */
	c->last_activity = S.now;
	conn_pump(c);
}

void conn_verify_wake(struct conn *c)
{
	conn_pump(c);
}

/* Runs the complete command lines while the reply queue has room for a
 * line's two replies. */
static void process_input(struct conn *c)
{
	struct smtp_env e = session_env(c);
	struct smtp_line l;

	while (c->s.state == SMTP_CMD && c->outq_len + 2 <= OUTQ_MAX && !(c->cflags & CF_VWAIT) &&
	       smtp_input_line(&c->inp, c->in, conn_aux(c), &c->s, S.users != NULL, &l)) {
		/* A line that may hand out credentials runs once a verifier
		 * is free; until then it stays in the buffer (queued). */
		if (!l.too_long && smtp_session_may_verify(&c->s, l.text, l.len) && !verify_may_start(c))
			break;
		run_line(c, &e, &l);
		smtp_input_consume(&c->inp, c->in, conn_aux(c), &l);
		if (smtp_input_early(&c->inp, &c->s))
			pipe_violation(c);
	}
}

static void reply_to_message(struct conn *c, enum smtp_data_status st)
{
	struct smtp_env e = session_env(c);
	char ip[64];

	if (st == DATA_STORED) {
		conn_peer_text(c, ip, sizeof ip);
		log_msg(LOG_LVL_INFO, "event=accepted id=%u ip=%s queue_id=%s size=%llu rcpts=%u forwarded=%u", c->id,
			ip, c->queue_id, (unsigned long long)c->inp.size, c->s.nrcpt, c->s.env->nfwd);
	} else if (st == DATA_STORE_FAILED) {
		log_msg(LOG_LVL_ERROR, "event=store_error id=%u queue_id=%s", c->id, c->queue_id);
	}
	maildir_abort(S.md, &c->msg);
	outq_push(c, smtp_session_data_end(&c->s, &e, st));
	if (c->cflags & CF_STOP) {
		struct smtp_reply bye = {R_421_SHUTDOWN, RF_CLOSE};
		smtp_session_close(&c->s);
		outq_push(c, bye);
	}
}

/* The end of data: a refused message is answered now, a good one joins
 * the group commit of this loop pass and is answered after it. */
static void finish_message(struct conn *c)
{
	enum smtp_data_status st = smtp_input_verdict(&c->inp);
	if (st != DATA_STORED)
		reply_to_message(c, st);
	else
		commit_add(c);
}

void conn_message_stored(struct conn *c, bool ok)
{
	reply_to_message(c, ok ? DATA_STORED : DATA_STORE_FAILED);
	conn_pump(c);
}

/* Message data streams from the socket to the store through one shared
 * buffer. In the clear it is peeked first, so that octets after the end
 * of data stay in the socket for the command reader, however many the
 * client pipelined. Through TLS (no peeking) it is read in pieces no
 * larger than in[], so what follows the end always fits there. Returns
 * false when the client is gone. */
static bool read_data(struct conn *c)
{
	uint64_t max = c->connector->cf->max_message_size;
	size_t used, store;
	bool done;
	ssize_t n;

	if (!tls_active(c)) {
		n = recv(c->fd, rbuf, sizeof rbuf, MSG_PEEK);
		if (n <= 0)
			return n < 0 && try_later();
		used = smtp_input_data(&c->inp, rbuf, (size_t)n, dbuf, max, &store, &done);
		if (recv(c->fd, rbuf, used, 0) != (ssize_t)used)
			return false;
		c->last_activity = S.now;
		maildir_write(&c->msg, dbuf, store);
		if (done)
			finish_message(c);
		return true;
	}
	for (unsigned i = 0; i < sizeof rbuf / TLS_READ_CHUNK; i++) {
		n = io_recv(c, rbuf, TLS_READ_CHUNK);
		if (n <= 0)
			return n < 0 && try_later();
		c->last_activity = S.now;
		used = smtp_input_data(&c->inp, rbuf, (size_t)n, dbuf, max, &store, &done);
		maildir_write(&c->msg, dbuf, store);
		if (done) {
			smtp_input_keep(&c->inp, c->in, rbuf + used, (size_t)n - used);
			finish_message(c);
			return true;
		}
	}
	return true;
}

static void on_eof(struct conn *c)
{
	if (waiting_on_tarpit(c)) {
		STAT(c, tarpit_disconnects);
		ban_offence(BAN_HANGUP, c);
	}
	conn_close(c, c->outq_len ? "client_gone_waiting" : "client_closed");
}

/* Drives the TLS handshake; false if the connection was closed. */
static bool conn_handshake(struct conn *c)
{
	int r = tls_handshake(S.tls, c->tls);
	c->cflags &= (uint8_t)~CF_WANTW;
	if (r == TLS_WANT_READ)
		return true;
	if (r == TLS_WANT_WRITE) {
		c->cflags |= CF_WANTW;
		return true;
	}
	if (r != 0) {
		conn_close(c, r == TLS_CLOSED ? "tls_client_gone" : "tls_handshake_failed");
		return false;
	}
	c->phase = P_ACTIVE;
	c->last_activity = S.now;
	smtp_session_tls_started(&c->s);
	STAT(c, tls_sessions);
	log_msg(LOG_LVL_INFO, "event=tls id=%u version=%s cipher=%s resumed=%s", c->id,
		tls_version_name(S.tls, c->tls), tls_cipher_name(S.tls, c->tls),
		tls_resumed(S.tls, c->tls) ? "yes" : "no");
	/* Implicit TLS: the greeting is the first thing said inside TLS. */
	if (c->connector->cf->tls_implicit)
		start_greeting(c);
	return true;
}

/* Command lines are read into the framing's buffers: between commands,
 * and while an AUTH waits for its verdict (what the client pipelined
 * behind it runs after). */
static bool reads_commands(const struct conn *c)
{
	return c->s.state == SMTP_CMD || c->s.state == SMTP_AUTH_WAIT;
}

/* Returns false if the connection was closed. */
static bool conn_read(struct conn *c)
{
	ssize_t n;
	bool keep = false; /* read into the framing's buffers; else discarded */
	char *buf = rbuf;
	size_t room = sizeof rbuf;

	if (c->phase == P_LINGER) {
		n = recv(c->fd, rbuf, sizeof rbuf, 0);
		if (n == 0 || (n < 0 && !try_later())) {
			conn_close(c, "closed");
			return false;
		}
		return true;
	}
	if (c->phase == P_HANDSHAKE)
		return conn_handshake(c);
	if (c->s.state == SMTP_DATA) {
		if (!read_data(c)) {
			on_eof(c);
			return false;
		}
		process_input(c);
		return true;
	}
	if (reads_commands(c)) {
		char *at;
		size_t r = smtp_input_room(&c->inp, c->in, conn_aux(c), &at);
		if (r) {
			keep = true;
			buf = at;
			room = r;
		}
	}
	n = io_recv(c, buf, room);
	if (n <= 0) {
		if (n < 0 && try_later())
			return true;
		on_eof(c); /* a reset is a hang-up too */
		return false;
	}
	c->last_activity = S.now;
	if (c->phase == P_GREETING) {
		struct smtp_reply r = offence_reply(c, R_554_EARLY);
		c->phase = P_ACTIVE;
		smtp_session_close(&c->s);
		smtp_input_drop(&c->inp);
		outq_push(c, r);
		STAT(c, protocol_errors);
		return true;
	}
	switch (c->s.state) {
	case SMTP_CMD:
	case SMTP_AUTH_WAIT: /* kept for after the verdict */
		if (keep)
			smtp_input_got(&c->inp, (size_t)n);
		process_input(c);
		break;
	case SMTP_DATA_WAIT:
	case SMTP_TLS_WAIT:
		pipe_violation(c);
		break;
	default:
		break; /* closing: input is discarded */
	}
	return true;
}

static bool wants_input(struct conn *c)
{
	char *at;
	if (c->cflags & (CF_EOF | CF_COMMIT))
		return false;
	if (c->phase == P_TLS_CLOSE) /* nothing is read; only a WANT_READ waits for input */
		return !(c->cflags & CF_WANTW);
	if (c->phase != P_ACTIVE || !reads_commands(c))
		return true;
	return smtp_input_room(&c->inp, c->in, conn_aux(c), &at) > 0;
}

/* Its AUTH waits for a verifier or for the verdict. */
static bool verifying(const struct conn *c)
{
	return c->s.state == SMTP_AUTH_WAIT || (c->cflags & CF_VWAIT);
}

static uint64_t idle_at(const struct conn *c)
{
	return c->last_activity + ms(c->connector->cf->connection_inactivity_timeout);
}

static void conn_update(struct conn *c)
{
	uint64_t t = c->phase == P_LINGER || c->phase == P_TLS_CLOSE ? c->greet_at : c->deadline;
	bool want = wants_input(c);

	loop_mod(S.loop, c->fd, (want ? LOOP_READ : 0) | (c->cflags & CF_WANTW ? LOOP_WRITE : 0),
		 conn_index(S.tab, c));
	if ((c->phase == P_GREETING || c->phase == P_HANDSHAKE) && c->greet_at < t)
		t = c->greet_at;
	if (c->phase == P_GREETING || c->phase == P_ACTIVE) {
		uint64_t idle = idle_at(c);
		uint64_t due = tarpit_due(c);
		if (due) {
			if (due < t)
				t = due;
			/* The client is waiting for us: its idle clock is stopped. */
			if (due > S.now)
				idle = t;
		}
		if (verifying(c))
			idle = t; /* likewise while its password is checked */
		if (idle < t)
			t = idle;
		/* Decrypted input waiting inside TLS makes the socket look idle:
		 * come back at once rather than wait for readiness. */
		if (tls_active(c) && want && tls_pending(S.tls, c->tls) > 0)
			t = S.now;
	}
	tw_arm(&S.wheel, &c->timer, t);
}

static void send_greeting(struct conn *c)
{
	struct smtp_reply r = {R_GREETING, 0};
	/* A known harvester waits T for its greeting too (SPEC §8). */
	if (ban_offence(BAN_GREETING, c)) {
		smtp_session_discredit(&c->s);
		r.flags |= RF_TARPIT;
	}
	c->phase = P_ACTIVE;
	outq_push(c, r);
}

/* The greeting now, or after greeting_delay. */
static void start_greeting(struct conn *c)
{
	const struct connector_conf *cf = c->connector->cf;
	if (cf->greeting_delay) {
		c->phase = P_GREETING;
		c->greet_at = S.now + ms(cf->greeting_delay);
	} else {
		send_greeting(c);
	}
}

static void conn_timeout(struct conn *c)
{
	char buf[128];
	struct reply_ctx ctx = {0};
	/* Stopping, mid-message: no reply in the middle of message data, and
	 * none is owed: nothing was answered 250, the client retries. */
	if (c->cflags & CF_STOP) {
		conn_close(c, "shutdown_timeout");
		return;
	}
	/* Best effort (the socket is non-blocking): a client that stopped
	 * reading must not keep the slot. */
	if (c->out_off == 0 && c->s.state != SMTP_CLOSING && c->phase != P_HANDSHAKE) {
		ssize_t r = io_send(c, buf, reply_render(R_421_TIMEOUT, &ctx, buf, sizeof buf));
		(void)r;
	}
	conn_close(c, "timeout");
}

void conn_on_timer(struct conn *c)
{
	if ((c->phase == P_LINGER || c->phase == P_HANDSHAKE || c->phase == P_TLS_CLOSE) &&
	    S.now >= c->greet_at) {
		conn_close(c, c->phase == P_HANDSHAKE ? "tls_handshake_timeout" : "closed");
		return;
	}
	if (c->phase != P_LINGER && c->phase != P_TLS_CLOSE &&
	    (S.now >= c->deadline ||
	     (c->phase != P_HANDSHAKE && !waiting_on_tarpit(c) && !verifying(c) && S.now >= idle_at(c)))) {
		conn_timeout(c);
		return;
	}
	if (c->phase == P_GREETING && S.now >= c->greet_at)
		send_greeting(c);
	if (tls_active(c) && c->phase == P_ACTIVE && wants_input(c) && tls_pending(S.tls, c->tls) > 0) {
		if (!conn_read(c))
			return;
	}
	conn_pump(c);
}

/* Flushes and runs queued command lines until neither makes progress:
 * one wake-up may have to answer a whole pipelined batch, several reply
 * queues long, and no further event would come for it. Then the
 * connection, unless closed, waits for its next event or timer. */
static void conn_pump(struct conn *c)
{
	for (;;) {
		uint16_t in_len, aux_len;
		uint8_t outq_len;
		if (!conn_flush(c))
			return;
		if (c->phase != P_ACTIVE || c->s.state != SMTP_CMD || !smtp_input_pending(&c->inp))
			break;
		in_len = c->inp.len;
		aux_len = c->inp.aux_len;
		outq_len = c->outq_len;
		process_input(c);
		if (c->inp.len == in_len && c->inp.aux_len == aux_len && c->outq_len == outq_len)
			break;
	}
	conn_update(c);
}

void conn_on_event(struct conn *c, unsigned events)
{
	if (c->phase == P_TLS_CLOSE) {
		if (end_session(c))
			conn_update(c);
		return;
	}
	if (c->phase == P_HANDSHAKE) {
		if (!conn_handshake(c))
			return;
		if (c->phase == P_HANDSHAKE) {
			conn_update(c);
			return;
		}
		/* Done: the client may already have sent its EHLO. */
		events |= LOOP_READ;
	}
	if (events & LOOP_WRITE) {
		if (!conn_flush(c))
			return;
	}
	if (events & (LOOP_READ | LOOP_ERROR)) {
		if (!conn_read(c))
			return;
	}
	if (!conn_flush(c))
		return;
	if (c->phase == P_HANDSHAKE) {
		/* The 220 just went out: the client's hello may be waiting. */
		if (!conn_handshake(c))
			return;
	}
	/* Replies that went out may have made room for queued commands. */
	conn_pump(c);
}

void conn_open(struct conn *c, int fd, struct connector *cn, const struct ip_addr *peer, uint16_t port)
{
	const struct connector_conf *cf = cn->cf;

	c->fd = fd;
	c->id = ++S.next_id;
	c->connector = cn;
	c->peer = *peer;
	c->peer_port = port;
	c->last_activity = S.now;
	c->deadline = S.now + ms(cf->connection_timeout);
	src_count_inc(S.tab, peer);
	cn->gen->refs++;
	STAT(c, connections_total);
	STAT(c, connections_current);
	if (log_enabled(LOG_LVL_INFO)) {
		char ip[64];
		ip_format(peer, ip, sizeof ip);
		log_msg(LOG_LVL_INFO, "event=connect id=%u ip=%s port=%u connector=\"%s\"", c->id, ip, port,
			cf->name);
	}
	if (cf->tls_implicit) {
		/* TLS from the first octet (RFC 8314): the context is taken
		 * now, and the greeting waits for the handshake. */
		int t = tls_acquire_from(S.tls, fd, peer);
		if (t < 0) {
			tls_refused(c, t);
			conn_close(c, "tls_refused");
			return;
		}
		c->tls = (int16_t)t;
		c->phase = P_HANDSHAKE;
		c->greet_at = S.now + HANDSHAKE_MS;
	} else {
		start_greeting(c);
	}
	conn_pump(c);
}

void conn_shutdown(struct conn *c)
{
	struct smtp_reply bye = {R_421_SHUTDOWN, RF_CLOSE};

	if (c->s.state == SMTP_DATA) {
		/* The message may finish within shutdown_timeout (SPEC §9);
		 * the deadline then closes it unanswered (conn_timeout). */
		uint64_t end = S.now + ms(S.gen->cfg.server.shutdown_timeout);
		c->cflags |= CF_STOP;
		if (end < c->deadline)
			c->deadline = end;
		conn_update(c);
		return;
	}
	if (c->phase == P_LINGER || c->phase == P_TLS_CLOSE)
		return; /* its last reply is out */
	if (c->phase == P_HANDSHAKE) {
		/* Mid-handshake a reply in the clear would be garbage to a
		 * client that waits for TLS records: nothing can be said. */
		conn_close(c, "shutdown");
		return;
	}
	/* Keep only a reply that is partly written, then say goodbye. */
	c->outq_len = c->out_off ? 1 : 0;
	maildir_abort(S.md, &c->msg);
	verify_cancel(c);
	smtp_session_reset(&c->s);
	smtp_session_close(&c->s);
	c->phase = P_ACTIVE;
	outq_push(c, bye);
	conn_pump(c);
}
