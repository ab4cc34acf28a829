/* relay_session: an outbound session's transport (relay_int.h).
 *
 * A slot is one outbound session: a socket, its smtp_client machine and
 * the message it is sending (relay_attempt.c's). relay_run() turns the
 * machine's actions into socket work until one has to wait; every wait
 * registers the readiness it needs and, once per wait, a deadline on the
 * slot's timer.
 */
#include "relay_int.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "gen.h"
#include "log.h"
#include "loop.h"
#include "server.h"

#ifdef RELAY_TLS
#include "tls_client.h"
#include "tls.h"
#endif

static unsigned slot_index(const struct rslot *s)
{
	return (unsigned)(s - R.slots);
}

void relay_close(struct rslot *s)
{
#ifdef RELAY_TLS
	if (s->tls >= 0) {
		int r = tlsc_close_notify(R.tlsc, s->tls); /* best effort, non-blocking */

		(void)r;
		tlsc_release(R.tlsc, s->tls);
	}
#endif
	s->tls = -1;
	tw_cancel(&S.wheel, &s->timer);
	if (s->fd >= 0) {
		loop_del(S.loop, s->fd);
		close(s->fd);
		s->fd = -1;
	}
	if (s->data_fd >= 0) {
		close(s->data_fd);
		s->data_fd = -1;
	}
	if (s->phase != RS_FREE) {
		R.active--;
		R.total.connections_current--;
		if (s->hop >= 0) {
			R.hops[s->hop].active--;
			R.hops[s->hop].st.connections_current--;
		}
	}
	if (s->gen)
		gen_unref(s->gen);
	s->gen = NULL;
	s->rc = NULL;
	s->phase = RS_FREE;
	s->in_tls = s->armed = s->idle = s->reused = false;
	s->rlen = s->woff = 0;
	s->mask = 0;
	relay_schedule(); /* a slot is free: what waited for it may start */
}

/* Waits for readiness mask, within timeout_ms of the wait's start. */
static bool wait_for(struct rslot *s, unsigned mask, uint32_t timeout_ms)
{
	if (!s->armed) {
		tw_arm(&S.wheel, &s->timer, S.now + timeout_ms);
		s->armed = true;
	}
	if (mask != s->mask && loop_mod(S.loop, s->fd, mask, TAG_RELAY | slot_index(s)) == 0)
		s->mask = mask;
	return false;
}

/* The machine moved on: the next wait gets a deadline of its own. */
static void progress(struct rslot *s)
{
	s->armed = false;
}

static bool fail(struct rslot *s, const char *what, int err)
{
	char why[CLIENT_TEXT_MAX];

	if (err)
		snprintf(why, sizeof why, "%s: %s", what, strerror(err));
	else
		snprintf(why, sizeof why, "%s", what);
	smtp_client_fail(&s->sc, why);
	progress(s);
	return true;
}

static bool again_later(struct rslot *s, unsigned want)
{
	if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
		return false;
	s->want = want;
	return true;
}

/* The socket in the clear or through TLS: > 0 octets, 0 closed, -1 with
 * errno (EAGAIN: s->want says for which readiness). */
static ssize_t io_send(struct rslot *s, const char *p, size_t n)
{
#ifdef RELAY_TLS
	if (s->in_tls) {
		ssize_t r = tlsc_write(R.tlsc, s->tls, p, n);

		if (r > 0)
			return r;
		errno = r == TLS_WANT_READ || r == TLS_WANT_WRITE ? EAGAIN : EPIPE;
		s->want = r == TLS_WANT_READ ? LOOP_READ : LOOP_WRITE;
		return -1;
	}
#endif
	{
		ssize_t r = send(s->fd, p, n, MSG_NOSIGNAL);

		s->want = LOOP_WRITE;
		return r;
	}
}

static ssize_t io_recv(struct rslot *s, char *p, size_t n)
{
#ifdef RELAY_TLS
	if (s->in_tls) {
		ssize_t r = tlsc_read(R.tlsc, s->tls, p, n);

		if (r >= 0)
			return r;
		if (r == TLS_CLOSED)
			return 0;
		errno = r == TLS_WANT_READ || r == TLS_WANT_WRITE ? EAGAIN : ECONNRESET;
		s->want = r == TLS_WANT_WRITE ? LOOP_WRITE : LOOP_READ;
		return -1;
	}
#endif
	s->want = LOOP_READ;
	return recv(s->fd, p, n, 0);
}

static bool do_write(struct rslot *s, const struct smtp_client_event *ev)
{
	while (s->woff < ev->len) {
		ssize_t n = io_send(s, ev->data + s->woff, ev->len - s->woff);

		if (n > 0) {
			s->woff += (size_t)n;
			continue;
		}
		if (n < 0 && again_later(s, s->want))
			return wait_for(s, s->want, ev->timeout_ms);
		return fail(s, "write to the next hop failed", n < 0 ? errno : EPIPE);
	}
	s->woff = 0;
	smtp_client_sent(&s->sc);
	progress(s);
	return true;
}

static bool do_read(struct rslot *s, const struct smtp_client_event *ev)
{
	ssize_t n;

	if (s->rlen) {
		size_t used = smtp_client_feed(&s->sc, s->rbuf, s->rlen);

		if (used == 0)
			return fail(s, "protocol failure: input the client did not take", 0);
		memmove(s->rbuf, s->rbuf + used, s->rlen - used);
		s->rlen -= used;
		if (s->sc.reply_done) {
			progress(s); /* a whole reply: the next one has its own deadline */
			/* A reply: the session was alive, unless it is the 421 of
			 * the next hop's own idle close, read as MAIL's. */
			if (s->sc.reply.code != 421)
				s->reused = false;
		}
		return true;
	}
	n = io_recv(s, s->rbuf, RELAY_READ_BUF);
	if (n > 0) {
		s->rlen = (size_t)n;
		return true;
	}
	if (n == 0)
		return fail(s, "the next hop closed the connection", 0);
	if (again_later(s, s->want))
		return wait_for(s, s->want, ev->timeout_ms);
	return fail(s, "read from the next hop failed", errno);
}

#ifdef RELAY_TLS
/* The profile (trust anchors) of the slot's next hop: made on first use
 * and again when a reload changed ca_file. Verification only with
 * `required` and a ca_file (SPEC §10); opportunistic TLS encrypts. */
static int hop_profile(struct rslot *s)
{
	struct hop *h = &R.hops[s->hop];
	const char *ca = s->rc->starttls == SC_TLS_REQUIRED && s->rc->ca_file[0] ? s->rc->ca_file : NULL;
	uint32_t key = ca ? queue_hop_hash(ca) : 0;

	if (h->profile < 0 || h->profile_ca != key) {
		/* Made at relay_init(); again only after a reload changed the
		 * file (one small read on the loop; tls_client.h wants a new
		 * pool per reload instead: the coordinator's reload step). */
		char err[256];

		h->profile = tlsc_profile(R.tlsc, ca, err, sizeof err);
		h->profile_ca = key;
		if (h->profile < 0)
			log_msg(LOG_LVL_ERROR, "event=relay_tls relay=\"%s\" error=\"%s\"", s->rc->name, err);
	}
	return h->profile;
}
#endif

static bool do_tls(struct rslot *s, const struct smtp_client_event *ev)
{
#ifdef RELAY_TLS
	int r;

	if (s->tls < 0) {
		int p = hop_profile(s);

		s->rlen = 0; /* RFC 3207 §4.2: nothing sent before the handshake counts */
		s->tls = p < 0 ? -1 : tlsc_acquire(R.tlsc, p, s->fd, s->rc->tls_name[0] ? s->rc->tls_name : NULL);
		if (s->tls < 0) {
			log_msg(LOG_LVL_WARNING, "event=relay_tls relay=\"%s\" error=\"no TLS context available\"",
				s->rc->name);
			smtp_client_tls_done(&s->sc, false);
			progress(s);
			return true;
		}
	}
	r = tlsc_handshake(R.tlsc, s->tls);
	if (r == TLS_WANT_READ || r == TLS_WANT_WRITE)
		return wait_for(s, r == TLS_WANT_READ ? LOOP_READ : LOOP_WRITE, ev->timeout_ms);
	if (r != 0) {
		char why[CLIENT_TEXT_MAX * 2];
		const char *e = tlsc_error(R.tlsc, s->tls);

		char reply[CLIENT_TEXT_MAX];

		log_neuter(why, sizeof why, e ? e : "handshake failed", strlen(e ? e : "handshake failed"));
		log_msg(LOG_LVL_WARNING, "event=relay_tls relay=\"%s\" error=\"%s\"", s->rc->name, why);
		/* The reason (a name mismatch, an unknown CA) becomes the
		 * recipients' last reply, so `tarpitd queue` says why. */
		snprintf(reply, sizeof reply, "TLS handshake with the next hop failed: %s", e ? e : "handshake failed");
		smtp_client_fail(&s->sc, reply);
	} else {
		s->in_tls = true;
		smtp_client_tls_done(&s->sc, true);
	}
	progress(s);
	return true;
#else
	(void)ev;
	smtp_client_tls_done(&s->sc, false); /* not reached: tls_available is false */
	return true;
#endif
}

/* The next piece of the file, converted, into bout; false on a read error. */
static bool refill(struct rslot *s)
{
	size_t wrote, took;

	if (s->bin_off == s->bin_len) {
		ssize_t n = read(s->data_fd, s->bin, RELAY_BODY_CHUNK);

		if (n < 0)
			return errno == EINTR;
		if (n == 0) {
			s->bout_len = smtp_client_stuff_end(&s->stuff, s->bout);
			s->bout_off = 0;
			s->body_end = true;
			return true;
		}
		s->bin_len = (size_t)n;
		s->bin_off = 0;
		if (s->body_first) {
			/* The stored Return-Path: is for a final delivery; a
			 * relay does not send it on (RFC 5321 §4.4). */
			const char *nl = memchr(s->bin, '\n', s->bin_len);

			s->body_first = false;
			if (nl && s->bin_len >= 12 && memcmp(s->bin, "Return-Path:", 12) == 0)
				s->bin_off = (size_t)(nl - s->bin) + 1;
		}
	}
	took = smtp_client_stuff(&s->stuff, s->bin + s->bin_off, s->bin_len - s->bin_off, s->bout, BOUT_MAX, &wrote);
	s->bin_off += took;
	s->bout_len = wrote;
	s->bout_off = 0;
	return true;
}

static bool do_body(struct rslot *s, const struct smtp_client_event *ev)
{
	if (s->data_fd < 0 && !s->body_end) {
		s->data_fd = queue_open_data(S.queue, s->qidx);
		if (s->data_fd < 0)
			return fail(s, "cannot open the queued message", errno);
		smtp_client_stuff_init(&s->stuff);
		s->bin_len = s->bin_off = s->bout_len = s->bout_off = 0;
		s->body_first = true;
	}
	for (unsigned piece = 0; piece < RELAY_BODY_SLICE;) {
		if (s->bout_off < s->bout_len) {
			ssize_t n = io_send(s, s->bout + s->bout_off, s->bout_len - s->bout_off);

			if (n > 0) {
				s->bout_off += (size_t)n;
				if (s->bout_off == s->bout_len) {
					piece++;
					progress(s); /* each piece has its deadline (RFC 5321 §4.5.3.2.5) */
				}
				continue;
			}
			if (n < 0 && again_later(s, s->want))
				return wait_for(s, s->want, ev->timeout_ms);
			return fail(s, "write to the next hop failed", n < 0 ? errno : EPIPE);
		}
		if (s->body_end) {
			s->body_end = false;
			close(s->data_fd);
			s->data_fd = -1;
			smtp_client_body_done(&s->sc);
			progress(s);
			return true;
		}
		if (!refill(s))
			return fail(s, "cannot read the queued message", errno);
	}
	/* This event's share is sent: the rest at the next writable event,
	 * after the other sessions' events. */
	return wait_for(s, LOOP_WRITE, ev->timeout_ms);
}

/* For a session between messages: only its own next hop's entries. */
static bool skip_other(void *ctx, uint32_t hash)
{
	return hash != *(const uint32_t *)ctx;
}

/* The session is ready for its first message: the hop is up. Not at the
 * connect: a hop that takes connections and then fails every session
 * (greeting, EHLO, TLS, AUTH) must back off like one that refuses them. */
static void hop_up(struct rslot *s)
{
	struct hop *h = &R.hops[s->hop];
	bool was_down = h->fails != 0;

	h->fails = 0;
	h->down_until = 0;
	if (was_down)
		relay_schedule(); /* the probe got through: the other sessions may follow */
}

/* The next due entry of s's own next hop, or -1. */
static int due_for(struct rslot *s, uint32_t wall)
{
	uint32_t hash = R.hops[s->hop].hash;

	return queue_due_match(S.queue, wall, skip_other, &hash);
}

/* Entry idx handed to the machine: true if it is due for s's hop. */
static bool hand(struct rslot *s, int idx, uint32_t wall)
{
	const char *hop;

	hop = relay_begin(s, idx, wall);
	if (!hop)
		return false;
	if (strcmp(hop, s->rc->name) != 0) {
		/* Its earliest recipient is another hop's (one hash for two
		 * names): a new session takes it (relay_schedule). */
		queue_set_busy(S.queue, idx, false);
		s->qidx = -1;
		s->n = 0;
		return false;
	}
	s->handed = true;
	smtp_client_message(&s->sc, &s->msg);
	return true;
}

/* An idle session still there: nothing to read. A next hop says nothing
 * unasked, so whatever came (EOF, the 421 of its own idle timeout, any
 * octet) ends the session: closed, with no message in it nothing is
 * deferred and the hop is not down. False: the slot is free. */
static bool idle_alive(struct rslot *s)
{
	/* Octets read after the last reply and not taken count too. */
	ssize_t n = s->rlen ? (ssize_t)s->rlen : io_recv(s, s->rbuf, RELAY_READ_BUF);

	if (n < 0 && again_later(s, s->want))
		return true; /* nothing, or TLS work such as a TLS 1.3 ticket */
	log_msg(LOG_LVL_INFO, "event=relay_idle relay=\"%s\" end=%s", s->rc->name,
		n > 0 ? "input" : n == 0 ? "closed" : "error");
	relay_close(s);
	return false;
}

/* Idle, the socket is readable. False: relay_run() returns. */
static bool idle_input(struct rslot *s)
{
	if (idle_alive(s))
		return wait_for(s, s->want, RELAY_IDLE_MS); /* the idle deadline stays */
	return false;
}

/* Between messages: the next due one for the same next hop; if there is
 * none the session idles (RELAY_IDLE_MS, Postfix's connection cache) so
 * the schedule can hand it the hop's next message (relay_idle_take)
 * instead of opening a new session. False: relay_run() returns. */
static bool on_idle(struct rslot *s)
{
	if (s->idle)
		return idle_input(s);
	if (s->qidx >= 0 && !s->handed) {
		/* The session is ready: the attempt it was opened for. */
		hop_up(s);
		s->handed = true;
		smtp_client_message(&s->sc, &s->msg);
		return true;
	}
	relay_finish(s);
	if (S.stopping || s->gen != S.gen) {
		smtp_client_quit(&s->sc); /* after a reload the next attempt takes the new settings */
		return true;
	}
	{
		uint32_t wall = relay_wall_now();
		int idx = due_for(s, wall);

		if (idx >= 0 && hand(s, idx, wall))
			return true;
	}
	s->idle = true;
	progress(s);
	if (s->rlen)
		return idle_input(s); /* the next hop said more than it was asked */
	return wait_for(s, LOOP_READ, RELAY_IDLE_MS);
}

bool relay_idle_take(struct rslot *s, uint32_t wall)
{
	int idx;

	if (S.stopping || s->gen != S.gen) {
		relay_idle_end(s); /* a session never takes a message under settings newer than its own */
		return false;
	}
	idx = due_for(s, wall);
	/* One recv() first: a close that came since the loop last looked is
	 * seen before a message depends on the session. */
	if (idx < 0 || !idle_alive(s) || !hand(s, idx, wall))
		return false;
	s->idle = false;
	/* If the next hop closes the session as MAIL reaches it (the race
	 * no look can close), the message is not deferred for the hop's
	 * retry delay: see relay_record(). */
	s->reused = true;
	progress(s);
	relay_run(s);
	return true;
}

void relay_idle_end(struct rslot *s)
{
	s->idle = false;
	progress(s);
	smtp_client_quit(&s->sc);
	relay_run(s);
}

void relay_run(struct rslot *s)
{
	struct smtp_client_event ev;

	for (;;) {
		switch (smtp_client_next(&s->sc, &ev)) {
		case SC_WRITE:
			if (!do_write(s, &ev))
				return;
			break;
		case SC_READ:
			if (!do_read(s, &ev))
				return;
			break;
		case SC_TLS:
			if (!do_tls(s, &ev))
				return;
			break;
		case SC_BODY:
			if (!do_body(s, &ev))
				return;
			break;
		case SC_RESULT:
			if (s->reused && ev.outcome == SC_R_DEFERRED) {
				char why[CLIENT_TEXT_MAX];

				snprintf(why, sizeof why, "%s (a reused session; retried at once)", ev.text);
				relay_record(s, ev.rcpt, ev.outcome, why, 0);
			} else {
				relay_record(s, ev.rcpt, ev.outcome, ev.text, 0);
			}
			break;
		case SC_IDLE:
			if (!on_idle(s))
				return;
			break;
		default: /* SC_DONE */
			if (s->qidx >= 0 && !s->handed) {
				/* It failed before it could take a message (greeting,
				 * EHLO, TLS, AUTH): unusable like a failed connect. */
				relay_hop_down(s, ev.text && ev.text[0] ? ev.text : "the session failed", 0);
				relay_close(s);
				return;
			}
			relay_finish(s);
			if (!ev.ok && ev.text && ev.text[0] && log_enabled(LOG_LVL_INFO)) {
				char why[CLIENT_TEXT_MAX * 2];

				log_neuter(why, sizeof why, ev.text, strlen(ev.text));
				log_msg(LOG_LVL_INFO, "event=relay_session relay=\"%s\" code=%u error=\"%s\"", s->rc->name,
					ev.code, why);
			}
			relay_close(s);
			return;
		}
	}
}

void relay_connect_failed(struct rslot *s, const char *why, int err)
{
	relay_hop_down(s, why, err);
	relay_close(s);
}

void relay_connected(struct rslot *s)
{
	s->phase = RS_SESSION;
	smtp_client_init(&s->sc, &s->scc);
	/* The machine asks for the greeting, then hands out SC_IDLE for the
	 * message: the attempt's envelope is already in the slot. */
	progress(s);
	relay_run(s);
}

static int open_socket(const struct relay_conf *rc)
{
	union {
		struct sockaddr sa;
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
		struct sockaddr_un un;
	} a;
	socklen_t len;
	int fd;

	memset(&a, 0, sizeof a);
	if (rc->is_unix) {
		a.un.sun_family = AF_UNIX;
		snprintf(a.un.sun_path, sizeof a.un.sun_path, "%s", rc->unix_path);
		len = sizeof a.un;
	} else if (ip_is_v4(&rc->addr.addr)) {
		a.in.sin_family = AF_INET;
		a.in.sin_port = htons(rc->addr.port);
		memcpy(&a.in.sin_addr, rc->addr.addr.a + 12, 4);
		len = sizeof a.in;
	} else {
		a.in6.sin6_family = AF_INET6;
		a.in6.sin6_port = htons(rc->addr.port);
		memcpy(&a.in6.sin6_addr, rc->addr.addr.a, 16);
		len = sizeof a.in6;
	}
	fd = socket(a.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	/* No Nagle: the end of data (and a body's last piece) is a small
	 * write after a larger one still unacknowledged, and the next hop
	 * delays that ACK (40 ms on Linux) while it waits for the rest. */
	if (!rc->is_unix) {
		int one = 1;

		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	}
	if (connect(fd, &a.sa, len) == 0)
		return fd;
	if (errno == EINPROGRESS || errno == EAGAIN) /* EAGAIN: a UNIX socket's full backlog */
		return fd;
	{
		int e = errno;

		close(fd);
		errno = e;
	}
	return -1;
}

void relay_connect(struct rslot *s, const struct relay_conf *rc, int hop)
{
	struct hop *h = &R.hops[hop];

	s->gen = S.gen;
	S.gen->refs++;
	s->rc = rc;
	s->hop = hop;
	s->scc = (struct smtp_client_conf){ .helo = S.gen->cfg.server.hostname,
					    .auth_user = rc->auth_user[0] ? rc->auth_user : NULL,
					    .auth_pass = rc->auth_password, .tls = rc->starttls, .lmtp = rc->lmtp,
#ifdef RELAY_TLS
					    .tls_available = R.tlsc != NULL,
#endif
	};
	s->phase = RS_CONNECT;
	h->active++;
	h->st.connections_current++;
	R.active++;
	R.total.connections_current++;
	s->fd = open_socket(rc);
	if (s->fd < 0) {
		relay_connect_failed(s, "cannot connect", errno);
		return;
	}
	s->mask = LOOP_WRITE;
	if (loop_add(S.loop, s->fd, LOOP_WRITE, TAG_RELAY | slot_index(s)) != 0) {
		relay_connect_failed(s, "cannot watch the socket", errno);
		return;
	}
	tw_arm(&S.wheel, &s->timer, S.now + CLIENT_CONNECT_MS);
	s->armed = true;
}

