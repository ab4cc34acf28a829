/* relay_attempt: the message a slot sends (relay_int.h) — its envelope
 * read into the slot's buffer, the attempt's recipients as indices into
 * it, each one's outcome recorded, logged and counted, and at the end the
 * DSN for the failed ones and the one queue_update().
 */
#include "relay_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dsn.h"
#include "log.h"
#include "relay_dsn.h"
#include "server.h"

/* The schedule of recipients whose [relay] is gone from the INI (SPEC
 * §3's defaults): retried until a reload brings the name back, failed
 * after the default lifetime. */
enum { DEF_RETRY_MIN = 60, DEF_RETRY_MAX = 3600, DEF_LIFETIME = 5 * 86400 };

static struct dsn_rcpt *dsn_r; /* QUEUE_RCPTS_MAX: the DSN's recipients */

int relay_attempt_init(void)
{
	dsn_r = calloc(QUEUE_RCPTS_MAX, sizeof *dsn_r);
	return dsn_r && relay_dsn_init() == 0 ? 0 : -1;
}

void relay_attempt_fini(void)
{
	relay_dsn_fini();
	free(dsn_r);
	dsn_r = NULL;
}

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
 * the earliest pending recipient. The hop's name, or NULL when none is
 * due. */
static const char *pick(struct rslot *s, uint32_t wall)
{
	const char *hop = NULL;
	uint32_t t = UINT32_MAX;

	s->n = 0;
	for (unsigned i = 0; i < s->env.nrcpt; i++)
		if (s->rcpt[i].state == QR_PENDING && s->rcpt[i].next < t) {
			t = s->rcpt[i].next;
			hop = s->rcpt[i].relay;
		}
	if (!hop || t > wall)
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

const char *relay_begin(struct rslot *s, int idx, uint32_t wall)
{
	const char *hop;

	if (load(s, idx, wall) != 0)
		return NULL;
	s->qidx = idx;
	hop = pick(s, wall);
	queue_set_busy(S.queue, idx, true);
	if (!hop) {
		/* The table said due, the envelope says not: the update puts
		 * the table right, so the schedule does not ask again at once. */
		relay_finish(s);
	}
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
void relay_record(struct rslot *s, unsigned k, unsigned outcome, const char *text, uint32_t next)
{
	static const char *const names[] = { "sent", "deferred", "failed" };
	struct queue_rcpt *r = &s->rcpt[s->map[k]];
	uint32_t wall = relay_wall_now(), rmin = s->rc ? s->rc->retry_min : DEF_RETRY_MIN;
	uint32_t rmax = s->rc ? s->rc->retry_max : DEF_RETRY_MAX;
	uint32_t life = s->rc ? s->rc->max_queue_lifetime : DEF_LIFETIME;
	char to[ADDRESS_MAX * 2], reply[CLIENT_TEXT_MAX * 2], hop[CONF_NAME_MAX * 2];
	unsigned st;

	r->reply = copy_text(s, text);
	/* A stop is not the next hop's fault: due again at the start. Nor is
	 * a reused session that failed before any reply (the next hop closed
	 * it while it idled, the close seen only now): like Postfix, which
	 * retries a cached session's failure on a new connection at once,
	 * the recipient is due now, its attempts and retry delay unchanged;
	 * a new session is not reused, so this happens once per idle one. */
	if (!S.stopping && !s->reused)
		r->attempts++;
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
		r->next = S.stopping || s->reused ? wall
			: next ? next : wall + queue_retry_delay(r->attempts, rmin, rmax, relay_rnd());
		st = 1;
		RSTAT(s, deferred);
	}
	log_neuter(to, sizeof to, r->addr, strlen(r->addr));
	log_neuter(reply, sizeof reply, r->reply, strlen(r->reply));
	log_neuter(hop, sizeof hop, r->relay, strlen(r->relay));
	log_msg(LOG_LVL_INFO, "event=relay id=%s relay=\"%s\" to=\"%s\" status=%s%s reply=\"%s\"", s->env.id, hop, to,
		names[st], s->state[k] == ST_EXPIRED ? " expired=yes" : "", reply);
}

void relay_defer_all(struct rslot *s, const char *why, uint32_t next)
{
	for (unsigned k = 0; k < s->n; k++)
		if (s->state[k] == SC_R_PENDING || s->state[k] == SC_R_ACCEPTED)
			relay_record(s, k, SC_R_DEFERRED, why, next);
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
		dsn_r[n++] = (struct dsn_rcpt){ .addr = r->addr, .reply = r->reply,
						  .remote_mta = s->rc ? s->rc->host : NULL,
						  .action = DSN_FAILED, .expired = s->state[k] == ST_EXPIRED };
	}
	if (n == 0)
		return 0;
	if (relay_dsn(&s->env, s->qidx, dsn_r, n, qid, &to, &queued) != 0)
		return -1;
	if (queued)
		relay_schedule_again(); /* a new entry to attempt */
	RSTAT(s, dsn_sent);
	log_neuter(to_l, sizeof to_l, to, strlen(to));
	log_msg(LOG_LVL_INFO, "event=dsn id=%s for=%s to=\"%s\"%s", qid, s->env.id, to_l, queued ? " queued=yes" : "");
	return 0;
}

/* The attempt is over: its DSN, then its one envelope update. */
void relay_finish(struct rslot *s)
{
	int r;

	if (s->qidx < 0)
		return;
	if (s->data_fd >= 0) {
		close(s->data_fd);
		s->data_fd = -1;
	}
	relay_defer_all(s, "the session ended", 0); /* not reached: every recipient has its outcome */
	if (send_dsn(s) != 0) {
		log_msg(LOG_LVL_ERROR, "event=dsn_error for=%s error=\"cannot store the DSN: %s\" "
			"(the failed recipients stay queued)", s->env.id, strerror(errno));
		for (unsigned k = 0; k < s->n; k++) {
			struct queue_rcpt *rc = &s->rcpt[s->map[k]];

			if (s->state[k] == SC_R_FAILED || s->state[k] == ST_EXPIRED) {
				rc->state = QR_PENDING;
				rc->next = relay_wall_now() + (s->rc ? s->rc->retry_min : DEF_RETRY_MIN);
			}
		}
	}
	r = queue_update(S.queue, s->qidx, &s->env);
	if (r < 0) {
		log_msg(LOG_LVL_ERROR, "event=queue_error id=%s error=\"cannot update the envelope: %s\"", s->env.id,
			strerror(errno));
		queue_set_next(S.queue, s->qidx, relay_wall_now() + (s->rc ? s->rc->retry_min : DEF_RETRY_MIN));
	}
	if (r != 1)
		queue_set_busy(S.queue, s->qidx, false);
	s->qidx = -1;
	s->n = 0;
	s->handed = s->reused = false;
}
