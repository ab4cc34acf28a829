/* relay: see relay.h.
 *
 * A slot is one outbound session: a socket, its smtp_client machine and
 * the message it is sending (the envelope read into the slot's buffer,
 * the attempt's recipients as indices into it). run() turns the machine's
 * actions into socket work until one has to wait; every wait registers
 * the readiness it needs and, once per wait, a deadline on the slot's
 * timer. The next hops' state lives in R.hops, by name, so a reload
 * keeps their down time and counters.
 */
#include "relay.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "dsn.h"
#include "gen.h"
#include "log.h"
#include "loop.h"
#include "maildir.h"
#include "queue.h"
#include "random.h"
#include "relay_dsn.h"
#include "route.h"
#include "server.h"
#include "smtp_client.h"

/* The client side of TLS (tls_client.c); a TLS=0 build forwards in the
 * clear (config refuses starttls = required there). */
#ifndef TARPITD_NO_TLS
#include "tls_client.h"
#include "tls.h"
#define RELAY_TLS 1
#endif

/* The schedule of recipients whose [relay] is gone from the INI (SPEC
 * §3's defaults): retried until a reload brings the name back, failed
 * after the default lifetime. */
enum { DEF_RETRY_MIN = 60, DEF_RETRY_MAX = 3600, DEF_LIFETIME = 5 * 86400 };

enum { RS_FREE, RS_CONNECT, RS_SESSION };

/* A recipient of the attempt that failed because the message expired
 * (beyond enum sc_rcpt_state: the machine never reads it back). */
#define ST_EXPIRED 7

#define BOUT_MAX (2 * RELAY_BODY_CHUNK + 8) /* every octet may double; the end of data is 5 */

struct hop {
	char name[CONF_NAME_MAX]; /* "" = unused */
	uint32_t hash;            /* queue_hop_hash(name) */
	uint32_t active;          /* sessions open */
	uint32_t fails;           /* connects failed in a row */
	uint32_t down_until;      /* unix seconds, like the queue's times: no attempt before */
#ifdef RELAY_TLS
	int profile;              /* tlsc profile, -1 none yet */
	uint32_t profile_ca;      /* hash of the ca_file it was made for */
#endif
	struct relay_stats st;
};

struct rslot {
	struct tw_node timer; /* first: relay_timer() finds the slot from it */
	int fd, data_fd, tls, qidx;
	uint8_t phase;        /* RS_* */
	bool armed;           /* the current wait's deadline is on the wheel */
	bool in_tls;          /* TLS carries the session */
	bool body_end;        /* the end of data is in bout */
	bool body_first;      /* no piece of the file read yet */
	bool handed;          /* the message is the machine's (given at SC_IDLE) */
	unsigned mask;        /* LOOP_* registered */
	unsigned want;        /* the readiness the last EAGAIN asked for */
	int hop;              /* index into R.hops */
	unsigned n;           /* recipients of this attempt */
	struct gen *gen;      /* held while the session runs: rc and scc point into it */
	const struct relay_conf *rc;
	size_t woff;          /* octets of the current SC_WRITE written */
	size_t rlen;          /* octets in rbuf not fed yet */
	size_t bin_len, bin_off, bout_len, bout_off;
	size_t arena;         /* where the next reply copy goes in envbuf */
	struct sc_stuff stuff;
	struct smtp_client_conf scc;
	struct smtp_client_msg msg;
	struct queue_env env;
	struct queue_rcpt *rcpt; /* QUEUE_RCPTS_MAX: the envelope's recipients */
	const char **addr;       /* the attempt's addresses */
	uint16_t *map;           /* attempt index -> envelope index */
	uint8_t *state;          /* enum sc_rcpt_state (or ST_EXPIRED) per attempt recipient */
	char *rbuf, *bin, *bout, *envbuf;
	struct smtp_client sc;
};

/* One slot's buffers, in one block, in order of decreasing alignment. */
#define SLOT_BLOCK                                                                                       \
	(QUEUE_RCPTS_MAX * (sizeof(struct queue_rcpt) + sizeof(const char *) + sizeof(uint16_t) + 1) + \
	 RELAY_READ_BUF + RELAY_BODY_CHUNK + BOUT_MAX + QUEUE_ENV_MAX)

static struct {
	struct rslot *slots;
	char *block;
	unsigned nslots, active;
	bool scheduling, again, fini;
	uint32_t wall;                  /* unix seconds, read once per schedule pass */
	uint32_t rnd;                   /* xorshift32: jitter needs no strength */
	int cfg_hop[CONF_MAX_RELAYS];   /* S.gen->cfg.relays[i] -> R.hops */
	struct tw_node sched;           /* the schedule's timer */
	struct dsn_rcpt *dsn_r;         /* QUEUE_RCPTS_MAX */
	struct relay_stats total;
	struct hop hops[RELAY_HOPS_MAX];
#ifdef RELAY_TLS
	struct tls_client *tlsc;
#endif
} R;

static void schedule(void);
static void run(struct rslot *s);
static void hop_down(struct rslot *s, const char *why, int err);

static uint32_t wall_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint32_t)ts.tv_sec;
}

static uint32_t rnd(void)
{
	uint32_t x = R.rnd;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return R.rnd = x;
}

/* ---- next hops ---- */

static bool configured(const char *name)
{
	return route_find(&S.gen->cfg, name) >= 0;
}

static int hop_get(const char *name)
{
	int freeish = -1;

	for (int i = 0; i < RELAY_HOPS_MAX; i++) {
		struct hop *h = &R.hops[i];

		if (h->name[0] && strcmp(h->name, name) == 0)
			return i;
		if (freeish < 0 && (!h->name[0] || (h->active == 0 && !configured(h->name))))
			freeish = i;
	}
	if (freeish >= 0) {
		struct hop *h = &R.hops[freeish];

		memset(h, 0, sizeof *h);
		snprintf(h->name, sizeof h->name, "%s", name);
		h->hash = queue_hop_hash(h->name);
#ifdef RELAY_TLS
		h->profile = -1;
#endif
	}
	return freeish;
}

/* The map from the configuration's relays to their state: a reload may
 * have changed it, and it costs a few string compares. */
static void refresh_hops(void)
{
	for (unsigned i = 0; i < S.gen->cfg.nrelays && i < CONF_MAX_RELAYS; i++)
		R.cfg_hop[i] = hop_get(S.gen->cfg.relays[i].name);
}

static unsigned hop_limit(const struct hop *h, const struct relay_conf *rc)
{
	/* After a failed connect, one session probes before the others follow. */
	return h->fails ? 1 : rc->max_connections;
}

/* queue_due_match()'s filter for new sessions: the entries of a next hop
 * that is down or at its limit wait. A hash no relay has is an entry
 * whose relay is gone: attempted, so its recipients are deferred. */
static bool skip_blocked(void *ctx, uint32_t hash)
{
	(void)ctx;
	for (unsigned i = 0; i < S.gen->cfg.nrelays && i < CONF_MAX_RELAYS; i++) {
		const struct hop *h;

		if (R.cfg_hop[i] < 0) {
			if (queue_hop_hash(S.gen->cfg.relays[i].name) == hash)
				return true; /* no room to keep its state: wait */
			continue;
		}
		h = &R.hops[R.cfg_hop[i]];
		if (h->hash == hash)
			return h->down_until > R.wall || h->active >= hop_limit(h, &S.gen->cfg.relays[i]);
	}
	return false;
}

/* For a session between messages: only its own next hop's entries. */
static bool skip_other(void *ctx, uint32_t hash)
{
	return hash != *(const uint32_t *)ctx;
}

/* ---- the envelope in a slot ---- */

/* Moves the envelope's strings to the front of envbuf, so the rest holds
 * the attempt's reply copies: queue_add() admitted the envelope only if
 * it fits QUEUE_ENV_MAX with every reply at its longest, escaped, which
 * is more than the strings unescaped plus a new reply each. */
static const char *pack(struct rslot *s, size_t *o, const char *p)
{
	size_t n = strlen(p) + 1;
	char *d = s->envbuf + *o;

	memmove(d, p, n);
	*o += n;
	return d;
}

static void pack_env(struct rslot *s)
{
	size_t o = 0;

	s->env.sender = pack(s, &o, s->env.sender);
	for (unsigned i = 0; i < s->env.nrcpt; i++) {
		s->rcpt[i].relay = pack(s, &o, s->rcpt[i].relay);
		s->rcpt[i].addr = pack(s, &o, s->rcpt[i].addr);
		s->rcpt[i].reply = pack(s, &o, s->rcpt[i].reply);
	}
	s->arena = o;
}

static const char *copy_text(struct rslot *s, const char *t)
{
	size_t n = t ? strlen(t) : 0;
	char *d;

	if (n > QUEUE_REPLY_MAX)
		n = QUEUE_REPLY_MAX;
	if (s->arena + n + 1 > QUEUE_ENV_MAX)
		n = s->arena < QUEUE_ENV_MAX ? QUEUE_ENV_MAX - s->arena - 1 : 0; /* not reached: see pack_env */
	if (s->arena >= QUEUE_ENV_MAX)
		return "";
	d = s->envbuf + s->arena;
	memcpy(d, t ? t : "", n);
	d[n] = '\0';
	s->arena += n + 1;
	return d;
}

/* Reads entry idx into the slot. 0, or -1 (logged; the entry waits). */
static int load(struct rslot *s, int idx, uint32_t wall)
{
	if (queue_load(S.queue, idx, &s->env, s->envbuf, QUEUE_ENV_MAX, s->rcpt, QUEUE_RCPTS_MAX) != 0) {
		log_msg(LOG_LVL_ERROR, "event=queue_error id=%s error=\"cannot read the envelope: %s\"",
			queue_id(S.queue, idx), strerror(errno));
		queue_set_next(S.queue, idx, wall + DEF_RETRY_MIN);
		return -1;
	}
	pack_env(s);
	if (queue_take_flush(S.queue, idx))
		for (unsigned i = 0; i < s->env.nrcpt; i++)
			if (s->rcpt[i].state == QR_PENDING && s->rcpt[i].next > wall)
				s->rcpt[i].next = wall; /* `queue flush`: due now */
	return 0;
}

/* The attempt's recipients: the pending ones due now of the next hop of
 * the earliest pending recipient (want: only if it is that one). The
 * hop's name, or NULL when none is due. */
static const char *pick(struct rslot *s, uint32_t wall, const char *want)
{
	const char *hop = NULL;
	uint32_t t = UINT32_MAX;

	s->n = 0;
	for (unsigned i = 0; i < s->env.nrcpt; i++)
		if (s->rcpt[i].state == QR_PENDING && s->rcpt[i].next < t) {
			t = s->rcpt[i].next;
			hop = s->rcpt[i].relay;
		}
	if (!hop || t > wall || (want && strcmp(hop, want) != 0))
		return NULL;
	for (unsigned i = 0; i < s->env.nrcpt; i++) {
		const struct queue_rcpt *r = &s->rcpt[i];

		if (r->state == QR_PENDING && r->next <= wall && strcmp(r->relay, hop) == 0) {
			s->map[s->n] = (uint16_t)i;
			s->addr[s->n] = r->addr;
			s->state[s->n] = SC_R_PENDING;
			s->n++;
		}
	}
	s->msg = (struct smtp_client_msg){ .sender = s->env.sender, .rcpt = s->addr, .state = s->state,
					   .nrcpt = s->n,
					   /* SIZE= when offered: the size on the wire
					    * (commit.c's, without the Return-Path: line). */
					   .size = s->env.size,
					   .eightbit = (s->env.flags & QUEUE_F_8BIT) != 0 };
	return hop;
}

static void stat_inc(struct rslot *s, size_t off)
{
	(*(uint64_t *)(void *)((char *)&R.total + off))++;
	if (s->hop >= 0)
		(*(uint64_t *)(void *)((char *)&R.hops[s->hop].st + off))++;
}
#define RSTAT(s, f) stat_inc((s), offsetof(struct relay_stats, f))

/* One recipient's outcome into the envelope, logged and counted. next:
 * the retry time for a deferral, 0 for the recipient's own schedule. */
static void record(struct rslot *s, unsigned k, unsigned outcome, const char *text, uint32_t next)
{
	static const char *const names[] = { "sent", "deferred", "failed" };
	struct queue_rcpt *r = &s->rcpt[s->map[k]];
	uint32_t wall = wall_now(), rmin = s->rc ? s->rc->retry_min : DEF_RETRY_MIN;
	uint32_t rmax = s->rc ? s->rc->retry_max : DEF_RETRY_MAX;
	uint32_t life = s->rc ? s->rc->max_queue_lifetime : DEF_LIFETIME;
	char to[ADDRESS_MAX * 2], reply[CLIENT_TEXT_MAX * 2], hop[CONF_NAME_MAX * 2];
	unsigned st;

	r->reply = copy_text(s, text);
	if (!S.stopping)
		r->attempts++; /* a stop is not the next hop's fault: due again at the start */
	if (outcome == SC_R_SENT) {
		r->state = QR_SENT;
		st = 0;
		RSTAT(s, delivered);
	} else if (outcome == SC_R_FAILED) {
		r->state = QR_FAILED;
		s->state[k] = SC_R_FAILED;
		st = 2;
		RSTAT(s, failed);
	} else if (queue_expired(s->env.accepted, wall, life)) {
		r->state = QR_FAILED;
		s->state[k] = ST_EXPIRED;
		st = 2;
		RSTAT(s, failed);
	} else {
		s->state[k] = SC_R_DEFERRED;
		r->next = S.stopping ? wall : next ? next : wall + queue_retry_delay(r->attempts, rmin, rmax, rnd());
		st = 1;
		RSTAT(s, deferred);
	}
	log_neuter(to, sizeof to, r->addr, strlen(r->addr));
	log_neuter(reply, sizeof reply, r->reply, strlen(r->reply));
	log_neuter(hop, sizeof hop, r->relay, strlen(r->relay));
	log_msg(LOG_LVL_INFO, "event=relay id=%s relay=\"%s\" to=\"%s\" status=%s%s reply=\"%s\"", s->env.id, hop, to,
		names[st], s->state[k] == ST_EXPIRED ? " expired=yes" : "", reply);
}

static void defer_all(struct rslot *s, const char *why, uint32_t next)
{
	for (unsigned k = 0; k < s->n; k++)
		if (s->state[k] == SC_R_PENDING || s->state[k] == SC_R_ACCEPTED)
			record(s, k, SC_R_DEFERRED, why, next);
}

/* The DSN for the attempt's failed recipients, committed before the
 * update that records them: 0, or -1 when it could not be stored
 * anywhere (they are then deferred, to fail and report again later). */
static int send_dsn(struct rslot *s)
{
	char qid[QUEUE_ID_MAX], to_l[ADDRESS_MAX * 2];
	const char *to;
	unsigned n = 0;
	bool queued;

	for (unsigned k = 0; k < s->n; k++) {
		const struct queue_rcpt *r = &s->rcpt[s->map[k]];

		if (s->state[k] != SC_R_FAILED && s->state[k] != ST_EXPIRED)
			continue;
		R.dsn_r[n++] = (struct dsn_rcpt){ .addr = r->addr, .reply = r->reply,
						  .remote_mta = s->rc ? s->rc->host : NULL,
						  .action = DSN_FAILED, .expired = s->state[k] == ST_EXPIRED };
	}
	if (n == 0)
		return 0;
	if (relay_dsn(&s->env, s->qidx, R.dsn_r, n, qid, &to, &queued) != 0)
		return -1;
	if (queued)
		R.again = true; /* a new entry to attempt */
	RSTAT(s, dsn_sent);
	log_neuter(to_l, sizeof to_l, to, strlen(to));
	log_msg(LOG_LVL_INFO, "event=dsn id=%s for=%s to=\"%s\"%s", qid, s->env.id, to_l, queued ? " queued=yes" : "");
	return 0;
}

/* The attempt is over: its DSN, then its one envelope update. */
static void finish_message(struct rslot *s)
{
	int r;

	if (s->qidx < 0)
		return;
	if (s->data_fd >= 0) {
		close(s->data_fd);
		s->data_fd = -1;
	}
	defer_all(s, "the session ended", 0); /* not reached: every recipient has its outcome */
	if (send_dsn(s) != 0) {
		log_msg(LOG_LVL_ERROR, "event=dsn_error for=%s error=\"cannot store the DSN: %s\" "
			"(the failed recipients stay queued)", s->env.id, strerror(errno));
		for (unsigned k = 0; k < s->n; k++) {
			struct queue_rcpt *rc = &s->rcpt[s->map[k]];

			if (s->state[k] == SC_R_FAILED || s->state[k] == ST_EXPIRED) {
				rc->state = QR_PENDING;
				rc->next = wall_now() + (s->rc ? s->rc->retry_min : DEF_RETRY_MIN);
			}
		}
	}
	r = queue_update(S.queue, s->qidx, &s->env);
	if (r < 0) {
		log_msg(LOG_LVL_ERROR, "event=queue_error id=%s error=\"cannot update the envelope: %s\"", s->env.id,
			strerror(errno));
		queue_set_next(S.queue, s->qidx, wall_now() + (s->rc ? s->rc->retry_min : DEF_RETRY_MIN));
	}
	if (r != 1)
		queue_set_busy(S.queue, s->qidx, false);
	s->qidx = -1;
	s->n = 0;
	s->handed = false;
}

/* ---- sessions ---- */

static unsigned slot_index(const struct rslot *s)
{
	return (unsigned)(s - R.slots);
}

static void close_slot(struct rslot *s)
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
	s->in_tls = s->armed = false;
	s->rlen = s->woff = 0;
	s->mask = 0;
	schedule(); /* a slot is free: what waited for it may start */
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
		if (s->sc.reply_done)
			progress(s); /* a whole reply: the next one has its own deadline */
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
		schedule(); /* the probe got through: the other sessions may follow */
}

/* Between messages: the next due one for the same next hop, or QUIT. */
static void on_idle(struct rslot *s)
{
	uint32_t wall, hash;
	int idx;

	if (s->qidx >= 0 && !s->handed) {
		/* The session is ready: the attempt it was opened for. */
		hop_up(s);
		s->handed = true;
		smtp_client_message(&s->sc, &s->msg);
		return;
	}
	finish_message(s);
	if (S.stopping || s->gen != S.gen) {
		smtp_client_quit(&s->sc); /* after a reload the next attempt takes the new settings */
		return;
	}
	wall = wall_now();
	hash = R.hops[s->hop].hash;
	idx = queue_due_match(S.queue, wall, skip_other, &hash);
	if (idx < 0 || load(s, idx, wall) != 0 || !pick(s, wall, s->rc->name)) {
		s->n = 0;
		smtp_client_quit(&s->sc);
		return;
	}
	s->qidx = idx;
	s->handed = true;
	queue_set_busy(S.queue, idx, true);
	smtp_client_message(&s->sc, &s->msg);
}

static void run(struct rslot *s)
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
			record(s, ev.rcpt, ev.outcome, ev.text, 0);
			break;
		case SC_IDLE:
			on_idle(s);
			break;
		default: /* SC_DONE */
			if (s->qidx >= 0 && !s->handed) {
				/* It failed before it could take a message (greeting,
				 * EHLO, TLS, AUTH): unusable like a failed connect. */
				hop_down(s, ev.text && ev.text[0] ? ev.text : "the session failed", 0);
				close_slot(s);
				return;
			}
			finish_message(s);
			if (!ev.ok && ev.text && ev.text[0] && log_enabled(LOG_LVL_INFO)) {
				char why[CLIENT_TEXT_MAX * 2];

				log_neuter(why, sizeof why, ev.text, strlen(ev.text));
				log_msg(LOG_LVL_INFO, "event=relay_session relay=\"%s\" code=%u error=\"%s\"", s->rc->name,
					ev.code, why);
			}
			close_slot(s);
			return;
		}
	}
}

/* The connect failed or timed out, or the session could not take a
 * message: the next hop is down for its retry delay, and the attempt's
 * recipients wait exactly that long, so they are due when it may be
 * tried again and keep their order. */
static void hop_down(struct rslot *s, const char *why, int err)
{
	struct hop *h = &R.hops[s->hop];
	uint32_t d;
	char text[CLIENT_TEXT_MAX], etext[CLIENT_TEXT_MAX * 2], host[PATH_MAX];

	h->fails++;
	d = queue_retry_delay(h->fails, s->rc->retry_min, s->rc->retry_max, rnd());
	/* In the queue's clock: the attempt's recipients are due exactly when
	 * the hop may be tried again, so the oldest message probes first. */
	h->down_until = wall_now() + d;
	snprintf(text, sizeof text, "%s%s%s", why, err ? ": " : "", err ? strerror(err) : "");
	log_neuter(host, sizeof host, s->rc->host, strlen(s->rc->host));
	log_neuter(etext, sizeof etext, text, strlen(text));
	log_msg(LOG_LVL_WARNING, "event=relay_down id=%s relay=\"%s\" host=\"%s\" error=\"%s\" retry=%u",
		s->env.id, s->rc->name, host, etext, d);
	defer_all(s, text, h->down_until);
	finish_message(s);
}

static void connect_failed(struct rslot *s, const char *why, int err)
{
	hop_down(s, why, err);
	close_slot(s);
}

static void connected(struct rslot *s)
{
	s->phase = RS_SESSION;
	smtp_client_init(&s->sc, &s->scc);
	/* The machine asks for the greeting, then hands out SC_IDLE for the
	 * message: the attempt's envelope is already in the slot. */
	progress(s);
	run(s);
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

static void begin_session(struct rslot *s, int ci)
{
	const struct relay_conf *rc = &S.gen->cfg.relays[ci];
	struct hop *h = &R.hops[R.cfg_hop[ci]];

	s->gen = S.gen;
	S.gen->refs++;
	s->rc = rc;
	s->hop = R.cfg_hop[ci];
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
		connect_failed(s, "cannot connect", errno);
		return;
	}
	s->mask = LOOP_WRITE;
	if (loop_add(S.loop, s->fd, LOOP_WRITE, TAG_RELAY | slot_index(s)) != 0) {
		connect_failed(s, "cannot watch the socket", errno);
		return;
	}
	tw_arm(&S.wheel, &s->timer, S.now + CLIENT_CONNECT_MS);
	s->armed = true;
}

/* One attempt on entry idx in the free slot s. */
static void start_attempt(struct rslot *s, int idx, uint32_t wall)
{
	const char *hop;
	int ci;

	if (load(s, idx, wall) != 0)
		return;
	s->qidx = idx;
	s->hop = -1;
	s->rc = NULL;
	s->handed = false;
	hop = pick(s, wall, NULL);
	queue_set_busy(S.queue, idx, true);
	if (!hop) {
		/* The table said due, the envelope says not: the update puts
		 * the table right. */
		finish_message(s);
		return;
	}
	ci = route_find(&S.gen->cfg, hop);
	if (ci < 0 || ci >= CONF_MAX_RELAYS || R.cfg_hop[ci] < 0) {
		char why[CLIENT_TEXT_MAX], name[CONF_NAME_MAX * 2];

		log_neuter(name, sizeof name, hop, strlen(hop));
		snprintf(why, sizeof why, "no relay %s configured", name);
		defer_all(s, why, 0);
		finish_message(s);
		return;
	}
	begin_session(s, ci);
}

static struct rslot *free_slot(void)
{
	for (unsigned i = 0; i < R.nslots; i++)
		if (R.slots[i].phase == RS_FREE)
			return &R.slots[i];
	return NULL;
}

/* The timer for the next thing the schedule can do: the next attempt of
 * an entry whose hop is not blocked, or the end of a hop's down time. A
 * hop at its limit needs none: its sessions' ends call schedule(). */
static void arm_schedule(void)
{
	uint32_t t;
	struct timespec ts;

	tw_cancel(&S.wheel, &R.sched);
	if (S.stopping || !free_slot())
		return;
	t = queue_next_time_match(S.queue, skip_blocked, NULL);
	for (unsigned i = 0; i < S.gen->cfg.nrelays && i < CONF_MAX_RELAYS; i++) {
		const struct hop *h = R.cfg_hop[i] >= 0 ? &R.hops[R.cfg_hop[i]] : NULL;

		if (h && h->down_until > R.wall && h->down_until < t)
			t = h->down_until;
	}
	if (t == UINT32_MAX)
		return;
	/* At the start of unix second t, from the monotonic clock. */
	clock_gettime(CLOCK_REALTIME, &ts);
	if ((int64_t)t <= (int64_t)ts.tv_sec)
		tw_arm(&S.wheel, &R.sched, S.now);
	else
		tw_arm(&S.wheel, &R.sched, S.now + ((uint64_t)t - (uint64_t)ts.tv_sec) * 1000u -
					   (uint64_t)ts.tv_nsec / 1000000u);
}

static void schedule(void)
{
	if (!S.queue || !R.nslots || S.stopping || R.fini)
		return;
	if (R.scheduling) {
		R.again = true;
		return;
	}
	R.scheduling = true;
	do {
		uint32_t wall = R.wall = wall_now();
		struct rslot *s;

		R.again = false;
		refresh_hops();
		while ((s = free_slot()) != NULL) {
			int idx = queue_due_match(S.queue, wall, skip_blocked, NULL);

			if (idx < 0)
				break;
			start_attempt(s, idx, wall);
		}
	} while (R.again);
	R.scheduling = false;
	arm_schedule();
}

/* ---- the interface ---- */

unsigned relay_slots(const struct config *c)
{
	unsigned n = 0;

	for (unsigned i = 0; i < c->nrelays; i++)
		n += c->relays[i].max_connections;
	return n > RELAY_CONNS_TOTAL ? RELAY_CONNS_TOTAL : n;
}

int relay_init(void)
{
	const struct config *c = &S.gen->cfg;
	unsigned n = relay_slots(c);
	size_t per = (SLOT_BLOCK + 15) & ~(size_t)15;

	tw_node_init(&R.sched);
	for (int i = 0; i < RELAY_HOPS_MAX; i++) {
		R.hops[i].name[0] = '\0';
#ifdef RELAY_TLS
		R.hops[i].profile = -1;
#endif
	}
	if (!S.queue || n == 0)
		return 0;
	R.slots = calloc(n, sizeof *R.slots);
	R.block = calloc(n, per);
	R.dsn_r = calloc(QUEUE_RCPTS_MAX, sizeof *R.dsn_r);
	if (!R.slots || !R.block || !R.dsn_r || relay_dsn_init() != 0) {
		relay_fini();
		return -1;
	}
	R.nslots = n;
	for (unsigned i = 0; i < n; i++) {
		struct rslot *s = &R.slots[i];
		char *p = R.block + i * per;

		tw_node_init(&s->timer);
		s->fd = s->data_fd = s->tls = s->qidx = s->hop = -1;
		s->rcpt = (struct queue_rcpt *)(void *)p;
		p += QUEUE_RCPTS_MAX * sizeof *s->rcpt;
		s->addr = (const char **)(void *)p;
		p += QUEUE_RCPTS_MAX * sizeof *s->addr;
		s->map = (uint16_t *)(void *)p;
		p += QUEUE_RCPTS_MAX * sizeof *s->map;
		s->state = (uint8_t *)p;
		p += QUEUE_RCPTS_MAX;
		s->rbuf = p;
		s->bin = p += RELAY_READ_BUF;
		s->bout = p += RELAY_BODY_CHUNK;
		s->envbuf = p + BOUT_MAX;
	}
	if (random_fill(&R.rnd, sizeof R.rnd) != 0 || R.rnd == 0)
		R.rnd = 0x9e3779b9u;
#ifdef RELAY_TLS
	refresh_hops();
	for (unsigned i = 0; i < c->nrelays && i < CONF_MAX_RELAYS; i++) {
		const struct relay_conf *rc = &c->relays[i];
		const char *ca = rc->starttls == SC_TLS_REQUIRED && rc->ca_file[0] ? rc->ca_file : NULL;
		char err[256];
		struct hop *h;

		if (rc->starttls == SC_TLS_NO || R.cfg_hop[i] < 0)
			continue;
		if (!R.tlsc && !(R.tlsc = tlsc_open(n, err, sizeof err))) {
			log_msg(LOG_LVL_ERROR, "event=relay_tls error=\"%s\"", err);
			relay_fini();
			return -1;
		}
		h = &R.hops[R.cfg_hop[i]];
		h->profile = tlsc_profile(R.tlsc, ca, err, sizeof err);
		h->profile_ca = ca ? queue_hop_hash(ca) : 0;
		if (h->profile < 0) {
			log_msg(LOG_LVL_ERROR, "relay \"%s\": %s", rc->name, err);
			relay_fini();
			return -1;
		}
	}
	return 0;
#else
	refresh_hops();
	return 0;
#endif
}

void relay_fini(void)
{
	R.fini = true;
	for (unsigned i = 0; i < R.nslots; i++)
		if (R.slots[i].phase != RS_FREE) {
			R.slots[i].qidx = -1; /* teardown: the envelope stays as it was */
			close_slot(&R.slots[i]);
		}
	tw_cancel(&S.wheel, &R.sched);
#ifdef RELAY_TLS
	tlsc_free(R.tlsc);
	R.tlsc = NULL;
#endif
	free(R.slots);
	free(R.block);
	relay_dsn_fini();
	free(R.dsn_r);
	R.slots = NULL;
	R.block = NULL;
	R.dsn_r = NULL;
	R.nslots = R.active = 0;
	R.fini = false;
}

void relay_kick(void)
{
	schedule();
}

void relay_flush(void)
{
	/* The operator says now: a hop marked down is tried again at once
	 * (its failure count stays, so a hop still down backs off as before). */
	for (int i = 0; i < RELAY_HOPS_MAX; i++)
		R.hops[i].down_until = 0;
	schedule();
}

void relay_event(uint32_t tag, unsigned events)
{
	unsigned i = tag & ~TAG_RELAY;
	struct rslot *s;

	if (i >= R.nslots)
		return;
	s = &R.slots[i];
	if (s->phase == RS_CONNECT) {
		int err = 0;
		socklen_t l = sizeof err;

		if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
			err = errno;
		if (err)
			connect_failed(s, "cannot connect", err);
		else if (events & LOOP_WRITE)
			connected(s);
		return;
	}
	if (s->phase == RS_SESSION)
		run(s);
}

bool relay_timer(struct tw_node *n)
{
	uintptr_t p = (uintptr_t)n, lo = (uintptr_t)R.slots;
	struct rslot *s;

	if (n == &R.sched) {
		schedule();
		return true;
	}
	if (!R.slots || p < lo || p >= lo + R.nslots * sizeof *R.slots)
		return false;
	s = &R.slots[(p - lo) / sizeof *R.slots];
	s->armed = false;
	if (s->phase == RS_CONNECT) {
		connect_failed(s, "connect timed out", 0);
	} else if (s->phase == RS_SESSION) {
		smtp_client_fail(&s->sc, "timed out waiting for the next hop");
		run(s);
	}
	return true;
}

void relay_shutdown(void)
{
	tw_cancel(&S.wheel, &R.sched);
	for (unsigned i = 0; i < R.nslots; i++) {
		struct rslot *s = &R.slots[i];

		if (s->phase == RS_CONNECT) {
			defer_all(s, "tarpitd is stopping", 0);
			finish_message(s);
			close_slot(s);
		} else if (s->phase == RS_SESSION) {
			smtp_client_fail(&s->sc, "tarpitd is stopping");
			run(s);
		}
	}
}

unsigned relay_active(void)
{
	return R.active;
}

const struct relay_stats *relay_stats_of(unsigned i)
{
	if (i >= S.gen->cfg.nrelays || i >= CONF_MAX_RELAYS)
		return NULL;
	refresh_hops();
	return R.cfg_hop[i] >= 0 ? &R.hops[R.cfg_hop[i]].st : NULL;
}

const struct relay_stats *relay_stats_total(void)
{
	return &R.total;
}
