/* relay_dsn: see relay_dsn.h. */
#include "relay_dsn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "dsn.h"
#include "gen.h"
#include "maildir.h"
#include "queue.h"
#include "recipients.h"
#include "route.h"
#include "server.h"

static char *hdr; /* DSN_HEADERS_MAX: the original's headers */

int relay_dsn_init(void)
{
	if (!hdr)
		hdr = malloc(DSN_HEADERS_MAX);
	return hdr ? 0 : -1;
}

void relay_dsn_fini(void)
{
	free(hdr);
	hdr = NULL;
}

static uint32_t wall_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint32_t)ts.tv_sec;
}


static int dsn_to_maildir(void *ctx, const char *p, size_t n)
{
	struct sink_msg *m = ctx;

	maildir_write(m, p, n);
	return m->error ? -1 : 0;
}

/* Reads the start of the message for its headers; the length read. */
static size_t original_headers(int qidx)
{
	int fd = queue_open_data(S.queue, qidx);
	size_t got = 0;

	if (fd < 0)
		return 0;
	while (got < DSN_HEADERS_MAX) {
		ssize_t n = read(fd, hdr + got, DSN_HEADERS_MAX - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	return got;
}

/* Where a DSN goes (SPEC §10): the sender when the envelope allows it and
 * the sender is a local recipient (its Maildir, or the next hop of its
 * domain) or, authenticated and not local, the smarthost; otherwise the
 * postmaster mailbox. *relay: the relay index to queue it for, or -1 for
 * a Maildir (*mbox). NULL when there is no postmaster mailbox. */
static const char *dsn_target(const struct queue_env *env, int *relay, uint32_t *mbox)
{
	const char *snd = env->sender, *at = strrchr(snd, '@');
	const struct config *c = &S.gen->cfg;

	*relay = -1;
	if (snd[0] && (env->flags & QUEUE_F_DSN_SENDER)) {
		enum rcpt_result rr = recipients_lookup(S.rcpts, snd, strlen(snd), mbox);
		int ri = at ? route_relay(c, at + 1, strlen(at + 1)) : -1;

		if (rr == RCPT_OK) {
			*relay = ri;
			return snd;
		}
		if (rr == RCPT_NOT_LOCAL && (ri = route_smarthost(c)) >= 0) {
			*relay = ri;
			return snd;
		}
	}
	return recipients_lookup(S.rcpts, "postmaster", 10, mbox) == RCPT_OK ? "postmaster" : NULL;
}

/* Writes the DSN for `to` into a Maildir (relay < 0) or the queue. The
 * new message's id in qid; 0, or -1. */
static int dsn_store(const struct dsn_input *in, const char *to, int relay, uint32_t mbox, char *qid)
{
	struct sink_envelope se = { .sender = "", .helo = "localhost", .peer_ip = "127.0.0.1",
				    .fqdn = S.gen->cfg.server.hostname, .protocol = "local",
				    .single_rcpt = to, .rcpts = S.rcpts, .mailboxes = &mbox, .nmailboxes = 1 };
	struct sink_msg m;
	char name[256];
	int r = -1;

	if (maildir_begin(S.md, &m, &se, qid) != 0)
		return -1;
	if (dsn_write(in, dsn_to_maildir, &m) != 0 || m.error) {
		maildir_abort(S.md, &m);
		return -1;
	}
	if (relay < 0)
		return maildir_commit(S.md, &m, &se);
	/* For a next hop: the synced file is linked into the queue. */
	if (fsync(m.fd) == 0 && maildir_tmp_name(S.md, &m, name, sizeof name) == 0) {
		uint32_t wall = wall_now();
		struct queue_rcpt qr = { .relay = S.gen->cfg.relays[relay].name, .addr = to, .reply = "",
					 .next = wall, .state = QR_PENDING };
		struct queue_env qe = { .sender = "", .size = m.size, .accepted = wall, .nrcpt = 1, .rcpt = &qr };

		snprintf(qe.id, sizeof qe.id, "%s", qid);
		r = queue_add(S.queue, maildir_tmp_dir(S.md), name, &qe) >= 0 ? 0 : -1;
	}
	maildir_abort(S.md, &m); /* the tmp name goes; the queue holds its own link */
	return r;
}

int relay_dsn(const struct queue_env *env, int qidx, const struct dsn_rcpt *r, unsigned n, char *qid,
	      const char **to, bool *queued)
{
	struct dsn_input in = { .reporting_mta = S.gen->cfg.server.hostname, .id = env->id,
				.arrival = env->accepted, .now = wall_now(), .rcpt = r, .nrcpt = n,
				.message = hdr };
	uint32_t mbox = 0;
	int relay;

	*queued = false;
	in.message_len = original_headers(qidx);
	*to = dsn_target(env, &relay, &mbox);
	if (!*to)
		return -1;
	in.to = *to;
	if (dsn_store(&in, *to, relay, mbox, qid) == 0) {
		*queued = relay >= 0;
		return 0;
	}
	/* The sender's next hop is out of reach (queue full, disk):
	 * postmaster's Maildir rather than nothing. */
	if (strcmp(*to, "postmaster") == 0 || recipients_lookup(S.rcpts, "postmaster", 10, &mbox) != RCPT_OK)
		return -1;
	*to = in.to = "postmaster";
	return dsn_store(&in, *to, -1, mbox, qid);
}
