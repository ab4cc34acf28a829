/* commit: see commit.h. */
#include "commit.h"

#include <stdlib.h>

#include "conn.h"
#include "maildir.h"
#include "server.h"

/* The messages waiting for the group commit at the end of a loop pass. */
static struct commit_round {
	struct conn **conns;
	uint32_t *ids; /* a slot closed and reused meanwhile is not ours */
	struct sink_msg **msgs;
	struct sink_envelope *envs;
	int *results;
	unsigned n;
} commits;

/* The round's arrays, one per slot, in one block: envs first, the rest in
 * order of decreasing alignment, so each part stays aligned. */
int commit_init(uint32_t n)
{
	struct commit_round *r = &commits;
	char *p = calloc(n, sizeof *r->envs + sizeof *r->conns + sizeof *r->msgs + sizeof *r->ids +
				    sizeof *r->results);
	if (!p)
		return -1;
	r->envs = (struct sink_envelope *)(void *)p;
	r->conns = (struct conn **)(void *)(p += n * sizeof *r->envs);
	r->msgs = (struct sink_msg **)(void *)(p += n * sizeof *r->conns);
	r->ids = (uint32_t *)(void *)(p += n * sizeof *r->msgs);
	r->results = (int *)(void *)(p + n * sizeof *r->ids);
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

void commit_run(void)
{
	struct commit_round *r = &commits;
	unsigned n = 0;

	for (unsigned k = 0; k < r->n; k++) {
		struct conn *c = r->conns[k];
		char ip[1] = "";
		if (c->fd < 0 || c->id != r->ids[k] || !(c->cflags & CF_COMMIT))
			continue;
		r->conns[n] = c;
		r->msgs[n] = &c->msg;
		conn_fill_envelope(c, &r->envs[n], ip, sizeof ip);
		n++;
	}
	r->n = 0;
	if (n == 0)
		return;
	maildir_commit_batch(S.md, r->msgs, r->envs, n, r->results);
	for (unsigned k = 0; k < n; k++) {
		struct conn *c = r->conns[k];
		c->msg.fd = -1;
		c->cflags &= (uint8_t)~CF_COMMIT;
		conn_message_stored(c, r->results[k] == 0);
	}
}
