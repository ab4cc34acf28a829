/* relay: see relay.h.
 *
 * This part holds relay.h's interface, the outbound table, the schedule
 * (which due entry starts in which free slot, and relay's own timer) and
 * the next hops' state; the message a slot sends is relay_attempt.c's,
 * a session's socket work relay_session.c's (relay_int.h). The next
 * hops' state lives in R.hops, by name, so a reload keeps their down
 * time and counters.
 */
#include "relay_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "gen.h"
#include "log.h"
#include "loop.h"
#include "random.h"
#include "route.h"
#include "server.h"

#ifdef RELAY_TLS
#include "tls_client.h"
#endif

/* One slot's buffers, in one block, in order of decreasing alignment. */
#define SLOT_BLOCK                                                                                       \
	(QUEUE_RCPTS_MAX * (sizeof(struct queue_rcpt) + sizeof(const char *) + sizeof(uint16_t) + 1) + \
	 RELAY_READ_BUF + RELAY_BODY_CHUNK + BOUT_MAX + QUEUE_ENV_MAX)

struct relay_state R;

/* The schedule's own state (P: the plan). */
static struct {
	char *block;                    /* the slots' buffers */
	bool scheduling, again, fini;
	uint32_t wall;                  /* unix seconds, read once per schedule pass */
	uint32_t rnd;                   /* xorshift32: jitter needs no strength */
	int cfg_hop[CONF_MAX_RELAYS];   /* S.gen->cfg.relays[i] -> R.hops */
	struct tw_node sched;           /* the schedule's timer */
} P;

uint32_t relay_wall_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint32_t)ts.tv_sec;
}

uint32_t relay_rnd(void)
{
	uint32_t x = P.rnd;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return P.rnd = x;
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
		P.cfg_hop[i] = hop_get(S.gen->cfg.relays[i].name);
}

static unsigned hop_limit(const struct hop *h, const struct relay_conf *rc)
{
	/* After a failed connect, one session probes before the others follow. */
	return h->fails ? 1 : rc->max_connections;
}

/* An idle session of the current generation to hop h: it takes the
 * hop's next message (relay_idle_take), so the hop is not at its limit
 * for the schedule's timer. */
static bool hop_idles(const struct hop *h)
{
	for (unsigned i = 0; i < R.nslots; i++) {
		const struct rslot *s = &R.slots[i];

		if (s->idle && s->gen == S.gen && &R.hops[s->hop] == h)
			return true;
	}
	return false;
}

/* queue_due_match()'s filter for new sessions: the entries of a next hop
 * that is down or at its limit wait. A hash no relay has is an entry
 * whose relay is gone: attempted, so its recipients are deferred. ctx
 * non-NULL (the timer's question): a hop at its limit with an idle
 * session does not wait. */
static bool skip_blocked(void *ctx, uint32_t hash)
{
	for (unsigned i = 0; i < S.gen->cfg.nrelays && i < CONF_MAX_RELAYS; i++) {
		const struct hop *h;

		if (P.cfg_hop[i] < 0) {
			if (queue_hop_hash(S.gen->cfg.relays[i].name) == hash)
				return true; /* no room to keep its state: wait */
			continue;
		}
		h = &R.hops[P.cfg_hop[i]];
		if (h->hash == hash)
			return h->down_until > P.wall ||
			       (h->active >= hop_limit(h, &S.gen->cfg.relays[i]) && !(ctx && hop_idles(h)));
	}
	return false;
}

/* The connect failed or timed out, or the session could not take a
 * message: the next hop is down for its retry delay, and the attempt's
 * recipients wait exactly that long, so they are due when it may be
 * tried again and keep their order. */
void relay_hop_down(struct rslot *s, const char *why, int err)
{
	struct hop *h = &R.hops[s->hop];
	uint32_t d;
	char text[CLIENT_TEXT_MAX], etext[CLIENT_TEXT_MAX * 2], host[PATH_MAX];

	h->fails++;
	d = queue_retry_delay(h->fails, s->rc->retry_min, s->rc->retry_max, relay_rnd());
	/* In the queue's clock: the attempt's recipients are due exactly when
	 * the hop may be tried again, so the oldest message probes first. */
	h->down_until = relay_wall_now() + d;
	snprintf(text, sizeof text, "%s%s%s", why, err ? ": " : "", err ? strerror(err) : "");
	log_neuter(host, sizeof host, s->rc->host, strlen(s->rc->host));
	log_neuter(etext, sizeof etext, text, strlen(text));
	log_msg(LOG_LVL_WARNING, "event=relay_down id=%s relay=\"%s\" host=\"%s\" error=\"%s\" retry=%u",
		s->env.id, s->rc->name, host, etext, d);
	relay_defer_all(s, text, h->down_until);
	relay_finish(s);
}

/* ---- the schedule ---- */

/* One attempt on entry idx in the free slot s. */
static void start_attempt(struct rslot *s, int idx, uint32_t wall)
{
	const char *hop;
	int ci;

	s->hop = -1;
	s->rc = NULL;
	s->handed = false;
	hop = relay_begin(s, idx, wall);
	if (!hop)
		return;
	ci = route_find(&S.gen->cfg, hop);
	if (ci < 0 || ci >= CONF_MAX_RELAYS || P.cfg_hop[ci] < 0) {
		char why[CLIENT_TEXT_MAX], name[CONF_NAME_MAX * 2];

		log_neuter(name, sizeof name, hop, strlen(hop));
		snprintf(why, sizeof why, "no relay %s configured", name);
		relay_defer_all(s, why, 0);
		relay_finish(s);
		return;
	}
	relay_connect(s, &S.gen->cfg.relays[ci], P.cfg_hop[ci]);
}

static struct rslot *free_slot(void)
{
	for (unsigned i = 0; i < R.nslots; i++)
		if (R.slots[i].phase == RS_FREE)
			return &R.slots[i];
	return NULL;
}

static bool any_idle(void)
{
	for (unsigned i = 0; i < R.nslots; i++)
		if (R.slots[i].idle)
			return true;
	return false;
}

/* The timer for the next thing the schedule can do: the next attempt of
 * an entry whose hop is not blocked, or the end of a hop's down time. A
 * hop at its limit needs none: its sessions' ends call relay_schedule(). */
static void arm_schedule(void)
{
	uint32_t t;
	struct timespec ts;

	tw_cancel(&S.wheel, &P.sched);
	if (S.stopping || (!free_slot() && !any_idle()))
		return;
	t = queue_next_time_match(S.queue, skip_blocked, &P); /* non-NULL: idle sessions count */
	for (unsigned i = 0; i < S.gen->cfg.nrelays && i < CONF_MAX_RELAYS; i++) {
		const struct hop *h = P.cfg_hop[i] >= 0 ? &R.hops[P.cfg_hop[i]] : NULL;

		if (h && h->down_until > P.wall && h->down_until < t)
			t = h->down_until;
	}
	if (t == UINT32_MAX)
		return;
	/* At the start of unix second t, from the monotonic clock. */
	clock_gettime(CLOCK_REALTIME, &ts);
	if ((int64_t)t <= (int64_t)ts.tv_sec)
		tw_arm(&S.wheel, &P.sched, S.now);
	else
		tw_arm(&S.wheel, &P.sched, S.now + ((uint64_t)t - (uint64_t)ts.tv_sec) * 1000u -
					   (uint64_t)ts.tv_nsec / 1000000u);
}

void relay_schedule_again(void)
{
	P.again = true;
}

void relay_schedule(void)
{
	if (!S.queue || !R.nslots || S.stopping || P.fini)
		return;
	if (P.scheduling) {
		P.again = true;
		return;
	}
	P.scheduling = true;
	do {
		uint32_t wall = P.wall = relay_wall_now();
		struct rslot *s;

		P.again = false;
		refresh_hops();
		/* Idle sessions first: a message for their hop goes over one
		 * of them, not a new connect (Postfix's connection cache); one
		 * of an older generation QUITs instead. */
		for (unsigned i = 0; i < R.nslots; i++)
			if (R.slots[i].idle)
				relay_idle_take(&R.slots[i], wall);
		while ((s = free_slot()) != NULL) {
			int idx = queue_due_match(S.queue, wall, skip_blocked, NULL);

			if (idx < 0)
				break;
			start_attempt(s, idx, wall);
		}
	} while (P.again);
	P.scheduling = false;
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

	tw_node_init(&P.sched);
	for (int i = 0; i < RELAY_HOPS_MAX; i++) {
		R.hops[i].name[0] = '\0';
#ifdef RELAY_TLS
		R.hops[i].profile = -1;
#endif
	}
	if (!S.queue || n == 0)
		return 0;
	R.slots = calloc(n, sizeof *R.slots);
	P.block = calloc(n, per);
	if (!R.slots || !P.block || relay_attempt_init() != 0) {
		relay_fini();
		return -1;
	}
	R.nslots = n;
	for (unsigned i = 0; i < n; i++) {
		struct rslot *s = &R.slots[i];
		char *p = P.block + i * per;

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
	if (random_fill(&P.rnd, sizeof P.rnd) != 0 || P.rnd == 0)
		P.rnd = 0x9e3779b9u;
#ifdef RELAY_TLS
	refresh_hops();
	for (unsigned i = 0; i < c->nrelays && i < CONF_MAX_RELAYS; i++) {
		const struct relay_conf *rc = &c->relays[i];
		const char *ca = rc->starttls == SC_TLS_REQUIRED && rc->ca_file[0] ? rc->ca_file : NULL;
		char err[256];
		struct hop *h;

		if (rc->starttls == SC_TLS_NO || P.cfg_hop[i] < 0)
			continue;
		if (!R.tlsc && !(R.tlsc = tlsc_open(n, err, sizeof err))) {
			log_msg(LOG_LVL_ERROR, "event=relay_tls error=\"%s\"", err);
			relay_fini();
			return -1;
		}
		h = &R.hops[P.cfg_hop[i]];
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
	P.fini = true;
	for (unsigned i = 0; i < R.nslots; i++)
		if (R.slots[i].phase != RS_FREE) {
			R.slots[i].qidx = -1; /* teardown: the envelope stays as it was */
			relay_close(&R.slots[i]);
		}
	tw_cancel(&S.wheel, &P.sched);
#ifdef RELAY_TLS
	tlsc_free(R.tlsc);
	R.tlsc = NULL;
#endif
	free(R.slots);
	free(P.block);
	relay_attempt_fini();
	R.slots = NULL;
	P.block = NULL;
	R.nslots = R.active = 0;
	P.fini = false;
}

void relay_kick(void)
{
	relay_schedule();
}

void relay_flush(void)
{
	/* The operator says now: a hop marked down is tried again at once
	 * (its failure count stays, so a hop still down backs off as before). */
	for (int i = 0; i < RELAY_HOPS_MAX; i++)
		R.hops[i].down_until = 0;
	relay_schedule();
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
			relay_connect_failed(s, "cannot connect", err);
		else if (events & LOOP_WRITE)
			relay_connected(s);
		return;
	}
	if (s->phase == RS_SESSION)
		relay_run(s);
}

bool relay_timer(struct tw_node *n)
{
	uintptr_t p = (uintptr_t)n, lo = (uintptr_t)R.slots;
	struct rslot *s;

	if (n == &P.sched) {
		relay_schedule();
		return true;
	}
	if (!R.slots || p < lo || p >= lo + R.nslots * sizeof *R.slots)
		return false;
	s = &R.slots[(p - lo) / sizeof *R.slots];
	s->armed = false;
	if (s->phase == RS_CONNECT) {
		relay_connect_failed(s, "connect timed out", 0);
	} else if (s->idle) {
		relay_idle_end(s); /* nothing came for it in RELAY_IDLE_MS */
	} else if (s->phase == RS_SESSION) {
		smtp_client_timeout(&s->sc);
		relay_run(s);
	}
	return true;
}

void relay_shutdown(void)
{
	tw_cancel(&S.wheel, &P.sched);
	for (unsigned i = 0; i < R.nslots; i++) {
		struct rslot *s = &R.slots[i];

		if (s->phase == RS_CONNECT) {
			relay_defer_all(s, "tarpitd is stopping", 0);
			relay_finish(s);
			relay_close(s);
		} else if (s->idle) {
			relay_idle_end(s); /* no message in it: QUIT now, not after the idle time */
		} else if (s->phase == RS_SESSION) {
			smtp_client_fail(&s->sc, "tarpitd is stopping");
			relay_run(s);
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
	return P.cfg_hop[i] >= 0 ? &R.hops[P.cfg_hop[i]].st : NULL;
}

const struct relay_stats *relay_stats_total(void)
{
	return &R.total;
}
