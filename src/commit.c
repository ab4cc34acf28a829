/* commit: see commit.h. */
#include "commit.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conn.h"
#include "gen.h"
#include "log.h"
#include "maildir.h"
#include "queue.h"
#include "recipients.h"
#include "server.h"

/* The forwarded recipients of the message being queued: one at a time,
 * from the slot's fwd block, each entry at least "x@y" and two octets. */
static struct queue_rcpt fwd_rcpt[SESSION_FWD_MAX / 5];

/* The messages waiting for the group commit at the end of a loop pass. */
static struct commit_round {
	struct conn **conns;
	uint32_t *ids; /* a slot closed and reused meanwhile is not ours */
	struct sink_msg **msgs;
	struct sink_envelope *envs;
	int *results;
	int *qidx;     /* the staged queue entry of a forwarded message, or -1 */
	unsigned n;
} commits;

/* The round's arrays, one per slot, in one block: envs first, the rest in
 * order of decreasing alignment, so each part stays aligned. */
int commit_init(uint32_t n)
{
	struct commit_round *r = &commits;
	char *p = calloc(n, sizeof *r->envs + sizeof *r->conns + sizeof *r->msgs + sizeof *r->ids +
				    sizeof *r->results + sizeof *r->qidx);
	if (!p)
		return -1;
	r->envs = (struct sink_envelope *)(void *)p;
	r->conns = (struct conn **)(void *)(p += n * sizeof *r->envs);
	r->msgs = (struct sink_msg **)(void *)(p += n * sizeof *r->conns);
	r->ids = (uint32_t *)(void *)(p += n * sizeof *r->msgs);
	r->results = (int *)(void *)(p += n * sizeof *r->ids);
	r->qidx = (int *)(void *)(p + n * sizeof *r->results);
	return 0;
}

void commit_fini(void)
{
	free(commits.envs);
	commits.envs = NULL;
}

void commit_add(struct conn *c)
{
	struct commit_round *r = &commits;
	r->conns[r->n] = c;
	r->ids[r->n] = c->id;
	r->n++;
	c->cflags |= CF_COMMIT;
}

/* The store's forward hooks (maildir.h): the message's forwarded
 * recipients become a queue entry of the same id, durable with the
 * round's syncs before the 250 (SPEC §10). arg: the message's qidx. */
static int stage(void *arg)
{
	int *qidx = arg;
	struct conn *c = commits.conns[qidx - commits.qidx];
	const struct smtp_envelope *e = c->s.env;
	const struct config *cfg = &c->connector->gen->cfg;
	const char *p = e->fwd;
	uint32_t mbox, now = (uint32_t)time(NULL);
	/* The size on the wire to the next hop: the client's data as it was
	 * transferred (CRLF, dot-stuffed, RFC 1870's count) and our trace. */
	struct queue_env qe = {.sender = c->s.sender, .size = c->inp.size + c->msg.trace, .accepted = now,
			       .nrcpt = e->nfwd, .rcpt = fwd_rcpt};

	if (!S.queue || e->nfwd > sizeof fwd_rcpt / sizeof fwd_rcpt[0]) {
		errno = ENOSPC;
		return -1;
	}
	memcpy(qe.id, c->queue_id, sizeof qe.id);
	/* A DSN may go back to a sender inside (a local address) or one who
	 * authenticated; anyone else's goes to postmaster (no backscatter). */
	if (smtp_session_authenticated(&c->s) ||
	    (c->s.sender[0] && recipients_lookup(c->s.table, c->s.sender, strlen(c->s.sender), &mbox) == RCPT_OK))
		qe.flags |= QUEUE_F_DSN_SENDER;
	if (smtp_session_8bitmime(&c->s))
		qe.flags |= QUEUE_F_8BIT;
	for (unsigned i = 0; i < e->nfwd; i++) {
		size_t len = strlen(p + 1);
		fwd_rcpt[i] = (struct queue_rcpt){.relay = cfg->relays[(unsigned char)p[0]].name, .addr = p + 1,
						  .reply = "", .next = now, .state = QR_PENDING};
		p += len + 2;
	}
	*qidx = queue_stage(S.queue, &qe);
	if (*qidx < 0) {
		log_msg(LOG_LVL_ERROR, "event=queue_error id=%u qid=%s error=\"%s\"", c->id, c->queue_id,
			strerror(errno));
		return -1;
	}
	return 0;
}

static int link_queued(void *arg, int dirfd, const char *name)
{
	int *qidx = arg;
	struct conn *c = commits.conns[qidx - commits.qidx];

	if (queue_link(S.queue, *qidx, dirfd, name) < 0) {
		log_msg(LOG_LVL_ERROR, "event=queue_error id=%u qid=%s error=\"%s\"", c->id, c->queue_id,
			strerror(errno));
		return -1;
	}
	return 0;
}

static void unforward(void *arg)
{
	int *qidx = arg;

	if (*qidx >= 0)
		queue_abandon(S.queue, *qidx); /* the client is told 452: it must not go out */
	*qidx = -1;
}

static const struct sink_forward forward = {.stage = stage, .link = link_queued, .undo = unforward};

void commit_run(void)
{
	struct commit_round *r = &commits;
	unsigned n = 0;
	bool queued = false;

	for (unsigned k = 0; k < r->n; k++) {
		struct conn *c = r->conns[k];
		char ip[1] = "";
		if (c->fd < 0 || c->id != r->ids[k] || !(c->cflags & CF_COMMIT))
			continue;
		r->conns[n] = c;
		r->msgs[n] = &c->msg;
		conn_fill_envelope(c, &r->envs[n], ip, sizeof ip);
		r->qidx[n] = -1;
		if (c->s.env->nfwd) {
			r->envs[n].fwd = &forward;
			r->envs[n].fwd_arg = &r->qidx[n];
		}
		n++;
	}
	r->n = 0;
	if (n == 0)
		return;
	/* The round's last sync covers queue/: the removals of this pass's
	 * deliveries, made before it, are durable with it. */
	if (maildir_commit_batch(S.md, r->msgs, r->envs, n, r->results, S.queue ? queue_dir_fd(S.queue) : -1) &&
	    S.queue)
		queue_synced(S.queue);
	for (unsigned k = 0; k < n; k++) {
		struct conn *c = r->conns[k];
		if (r->envs[k].fwd && r->results[k] == 0)
			queued = true;
		c->msg.fd = -1;
		c->cflags &= (uint8_t)~CF_COMMIT;
		conn_message_stored(c, r->results[k] == 0);
	}
	if (queued)
		server_queue_kick();
}
