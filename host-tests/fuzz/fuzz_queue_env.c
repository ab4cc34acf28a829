/* fuzz_queue_env: arbitrary bytes as a queued message's <id>.env file
 * through the envelope parser (src/queue_env.c). The file is ours, but it
 * sits on a flash disk that a crash, a full disk or a hand edit can leave
 * in any state, and recovery reads it at start: the parser must refuse
 * what it cannot read, never read outside the text, and whatever it
 * accepts must be an envelope the queue can write back (the next
 * attempt's update rewrites it).
 *
 * Checked per input: an accepted envelope passes queue_env_ok(), its text
 * fits queue_env_bound() and QUEUE_ENV_MAX, formatting it and parsing the
 * result gives the same fields again (the format is canonical: a second
 * round writes the same octets).
 */
#include <stdint.h>
#include <string.h>

#include "fuzz_util.h"
#include "queue_env.h"

static char in[QUEUE_ENV_MAX + 1], out1[QUEUE_ENV_MAX + 1], out2[QUEUE_ENV_MAX + 1];
static struct queue_rcpt r1[QUEUE_RCPTS_MAX], r2[QUEUE_RCPTS_MAX];

NOCOV static void same(const struct queue_env *a, const struct queue_env *b)
{
	FUZZ_CHECK(strcmp(a->id, b->id) == 0 && strcmp(a->sender, b->sender) == 0);
	FUZZ_CHECK(a->size == b->size && a->accepted == b->accepted && a->flags == b->flags);
	FUZZ_CHECK(a->nrcpt == b->nrcpt);
	for (unsigned i = 0; i < a->nrcpt; i++) {
		const struct queue_rcpt *x = &a->rcpt[i], *y = &b->rcpt[i];
		FUZZ_CHECK(strcmp(x->relay, y->relay) == 0 && strcmp(x->addr, y->addr) == 0);
		FUZZ_CHECK(strcmp(x->reply, y->reply) == 0);
		FUZZ_CHECK(x->attempts == y->attempts && x->next == y->next && x->state == y->state);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct queue_env e1, e2;
	size_t n1, n2;

	if (size > QUEUE_ENV_MAX)
		return 0;
	memcpy(in, data, size);
	in[size] = 0;
	if (queue_env_parse(in, size, &e1, r1, QUEUE_RCPTS_MAX) != 0)
		return 0;
	FUZZ_CHECK(e1.nrcpt <= QUEUE_RCPTS_MAX);
	FUZZ_CHECK(queue_env_ok(&e1));
	n1 = queue_env_format(out1, sizeof out1, &e1);
	FUZZ_CHECK(n1 > 0 && n1 <= queue_env_bound(&e1) && n1 <= QUEUE_ENV_MAX);
	memcpy(out2, out1, n1 + 1);
	FUZZ_CHECK(queue_env_parse(out2, n1, &e2, r2, QUEUE_RCPTS_MAX) == 0);
	same(&e1, &e2);
	/* A second round writes the same octets. */
	n2 = queue_env_format(in, sizeof in, &e2);
	FUZZ_CHECK(n2 == n1 && memcmp(in, out1, n1) == 0);
	return 0;
}
