/* loop_poll: the portable poll() backend of loop.h.
 *
 * Memory, all from loop_new(), about 25 bytes per descriptor: the pollfd
 * array of watched fds, the fd -> index map, a tag and a state byte per
 * fd, and the batch (every watched fd may be ready at once). Costs:
 * add/mod/del O(1) (del swaps the last pollfd into the hole) plus, for
 * del, a scan of the rest of the current batch; loop_wait() is O(watched).
 *
 * loop_wait() copies the ready fds into the batch, so add/mod/del while it
 * is dispatched never shift it: no fd is skipped or seen twice, a deleted
 * fd is scrubbed, and an fd added meanwhile waits for the next loop_wait().
 *
 * Choices the callers rely on (the epoll backend makes the same ones):
 * - fd < 0 fails with EBADF, fd >= maxfds with EMFILE (the caller sized the
 *   table from its descriptor budget, so such an fd is one too many and is
 *   best closed like an accept() EMFILE); adding a registered fd fails with
 *   EEXIST, modifying an unregistered one with ENOENT, a mask with unknown
 *   bits with EINVAL. loop_del() of an unregistered fd does nothing.
 * - Mask 0 keeps the fd out of the pollfd array: poll() reports hang-ups
 *   even for an empty mask, which level-triggered would turn into a busy
 *   loop while, say, a tarpitted session is parked.
 * - LOOP_ERROR (with LOOP_READ) is reported whatever the non-zero mask, and
 *   must be acted on (usually by closing) or it comes back at every wait;
 *   POLLNVAL (an fd closed before loop_del()) counts as an error.
 * - Events are filtered at dispatch by the fd's current mask and carry its
 *   current tag, so a loop_mod() by an earlier event of the batch applies.
 */
#include "loop.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>

#define ST_REG 0x80u /* registered; the low bits hold the LOOP_READ|LOOP_WRITE mask */
#define ST_MASK (LOOP_READ | LOOP_WRITE)

struct ready {
	int fd; /* -1 once scrubbed */
	short revents;
};

struct loop {
	int maxfds;
	int n;          /* watched entries in pfd */
	int bn, bpos;   /* current batch: batch[bpos..bn) not yet dispatched */
	struct pollfd *pfd;
	int *idx;               /* per fd: index in pfd, -1 when not watched */
	uint32_t *tag;          /* per fd */
	unsigned char *state;   /* per fd */
	struct ready *batch;
};

const char *loop_backend(void)
{
	return "poll";
}

struct loop *loop_new(int maxfds)
{
	if (maxfds <= 0) {
		errno = EINVAL;
		return NULL;
	}
	struct loop *l = calloc(1, sizeof *l);
	if (!l)
		return NULL;
	l->maxfds = maxfds;
	l->pfd = calloc((size_t)maxfds, sizeof *l->pfd);
	l->idx = calloc((size_t)maxfds, sizeof *l->idx);
	l->tag = calloc((size_t)maxfds, sizeof *l->tag);
	l->state = calloc((size_t)maxfds, sizeof *l->state);
	l->batch = calloc((size_t)maxfds, sizeof *l->batch);
	if (!l->pfd || !l->idx || !l->tag || !l->state || !l->batch) {
		loop_free(l);
		return NULL;
	}
	for (int i = 0; i < maxfds; i++)
		l->idx[i] = -1;
	return l;
}

void loop_free(struct loop *l)
{
	if (!l)
		return;
	free(l->pfd);
	free(l->idx);
	free(l->tag);
	free(l->state);
	free(l->batch);
	free(l);
}

static int check_args(const struct loop *l, int fd, unsigned mask)
{
	if (fd < 0) {
		errno = EBADF;
		return -1;
	}
	if (fd >= l->maxfds) {
		errno = EMFILE;
		return -1;
	}
	if (mask & ~(unsigned)(LOOP_READ | LOOP_WRITE | LOOP_ERROR)) {
		errno = EINVAL;
		return -1;
	}
	return 0;
}

static short poll_events(unsigned mask)
{
	short e = 0;

	if (mask & LOOP_READ)
		e |= POLLIN;
	if (mask & LOOP_WRITE)
		e |= POLLOUT;
	return e;
}

/* Caller guarantees fd is registered, not watched, and n < maxfds (each
 * registered fd holds at most one entry and fds are < maxfds). */
static void watch(struct loop *l, int fd, unsigned mask)
{
	l->pfd[l->n].fd = fd;
	l->pfd[l->n].events = poll_events(mask);
	l->pfd[l->n].revents = 0;
	l->idx[fd] = l->n++;
}

static void unwatch(struct loop *l, int fd)
{
	int i = l->idx[fd], last = l->n - 1;

	if (i < 0)
		return;
	if (i != last) {
		l->pfd[i] = l->pfd[last];
		l->idx[l->pfd[i].fd] = i;
	}
	l->n = last;
	l->idx[fd] = -1;
}

int loop_add(struct loop *l, int fd, unsigned mask, uint32_t tag)
{
	if (check_args(l, fd, mask) < 0)
		return -1;
	if (l->state[fd] & ST_REG) {
		errno = EEXIST;
		return -1;
	}
	mask &= ST_MASK;
	if (mask)
		watch(l, fd, mask);
	l->state[fd] = (unsigned char)(ST_REG | mask);
	l->tag[fd] = tag;
	return 0;
}

int loop_mod(struct loop *l, int fd, unsigned mask, uint32_t tag)
{
	if (check_args(l, fd, mask) < 0)
		return -1;
	if (!(l->state[fd] & ST_REG)) {
		errno = ENOENT;
		return -1;
	}
	mask &= ST_MASK;
	if (!mask)
		unwatch(l, fd);
	else if (l->idx[fd] < 0)
		watch(l, fd, mask);
	else
		l->pfd[l->idx[fd]].events = poll_events(mask);
	l->state[fd] = (unsigned char)(ST_REG | mask);
	l->tag[fd] = tag;
	return 0;
}

void loop_del(struct loop *l, int fd)
{
	if (fd < 0 || fd >= l->maxfds || !(l->state[fd] & ST_REG))
		return;
	unwatch(l, fd);
	l->state[fd] = 0;
	l->tag[fd] = 0;
	/* The state check in loop_next() is not enough: the number may be
	 * registered again, for another connection, before the batch ends. */
	for (int i = l->bpos; i < l->bn; i++)
		if (l->batch[i].fd == fd)
			l->batch[i].fd = -1;
}

int loop_wait(struct loop *l, int timeout_ms)
{
	int r = poll(l->pfd, (nfds_t)l->n, timeout_ms);

	l->bn = l->bpos = 0;
	if (r < 0)
		return errno == EINTR ? 0 : -1;
	for (int i = 0; i < l->n && r > 0; i++) {
		if (!l->pfd[i].revents)
			continue;
		l->batch[l->bn].fd = l->pfd[i].fd;
		l->batch[l->bn].revents = l->pfd[i].revents;
		l->bn++;
		r--;
	}
	return l->bn;
}

int loop_next(struct loop *l, struct loop_event *ev)
{
	while (l->bpos < l->bn) {
		const struct ready *b = &l->batch[l->bpos++];
		int fd = b->fd;

		if (fd < 0 || fd >= l->maxfds)
			continue;
		unsigned st = l->state[fd], mask = st & ST_MASK, out = 0;
		if (!(st & ST_REG) || !mask)
			continue;
		if ((b->revents & POLLIN) && (mask & LOOP_READ))
			out |= LOOP_READ;
		if ((b->revents & POLLOUT) && (mask & LOOP_WRITE))
			out |= LOOP_WRITE;
		if (b->revents & (POLLERR | POLLHUP | POLLNVAL))
			out |= LOOP_ERROR | LOOP_READ;
		if (!out)
			continue;
		ev->fd = fd;
		ev->events = out;
		ev->tag = l->tag[fd];
		return 1;
	}
	return 0;
}
