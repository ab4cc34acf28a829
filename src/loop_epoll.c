/* loop_epoll: the Linux backend of loop.h.
 *
 * Memory, all from loop_new(): one byte of state and a 4-byte tag per
 * descriptor (5 * maxfds bytes) plus a batch of at most LOOP_BATCH kernel
 * events. Costs: add/mod/del one epoll_ctl() at most (none when the mask
 * does not change); del also scans the rest of the current batch, O(batch).
 *
 * Choices the callers rely on (the poll backend makes the same ones):
 * - fd < 0 fails with EBADF, fd >= maxfds with EMFILE (the caller sized the
 *   table from its descriptor budget, so such an fd is one too many and is
 *   best closed like an accept() EMFILE); adding a registered fd fails with
 *   EEXIST, modifying an unregistered one with ENOENT, a mask with unknown
 *   bits with EINVAL. loop_del() of an unregistered fd does nothing.
 * - Mask 0 takes the fd out of the kernel set: the kernel reports hang-ups
 *   even for an empty mask, which level-triggered would turn into a busy
 *   loop while, say, a tarpitted session is parked.
 * - LOOP_ERROR (with LOOP_READ) is reported whatever the non-zero mask, and
 *   must be acted on (usually by closing) or it comes back at every wait.
 * - Events are filtered at dispatch by the fd's current mask and carry its
 *   current tag, so a loop_mod() by an earlier event of the batch applies.
 * - Call loop_del() before close(): epoll keys on the open file, not on
 *   the number, and the table would still hold the old registration.
 */
#include "loop.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "limits.h"

#define ST_REG 0x80u /* registered; the low bits hold the LOOP_READ|LOOP_WRITE mask */
#define ST_MASK (LOOP_READ | LOOP_WRITE)

struct loop {
	int epfd;
	int maxfds;
	int cap;      /* entries in ev */
	int n, pos;   /* current batch: ev[pos..n) not yet dispatched */
	struct epoll_event *ev;
	uint32_t *tag;         /* per fd */
	unsigned char *state;  /* per fd */
};

const char *loop_backend(void)
{
	return "epoll";
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
	l->epfd = -1;
	l->maxfds = maxfds;
	l->cap = maxfds < LOOP_BATCH ? maxfds : LOOP_BATCH;
	l->ev = calloc((size_t)l->cap, sizeof *l->ev);
	l->tag = calloc((size_t)maxfds, sizeof *l->tag);
	l->state = calloc((size_t)maxfds, sizeof *l->state);
	if (!l->ev || !l->tag || !l->state)
		goto fail;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0)
		goto fail;
	return l;
fail:
	loop_free(l);
	return NULL;
}

void loop_free(struct loop *l)
{
	if (!l)
		return;
	int saved = errno; /* loop_new() reports the first failure, not close()'s */
	if (l->epfd >= 0)
		close(l->epfd);
	free(l->ev);
	free(l->tag);
	free(l->state);
	free(l);
	errno = saved;
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

static int ctl(struct loop *l, int op, int fd, unsigned mask)
{
	struct epoll_event e = {0};

	/* RDHUP only with READ: a half-closed peer of a writer-only fd would
	 * otherwise be reported at every wait. */
	if (mask & LOOP_READ)
		e.events |= EPOLLIN | EPOLLRDHUP;
	if (mask & LOOP_WRITE)
		e.events |= EPOLLOUT;
	e.data.fd = fd;
	return epoll_ctl(l->epfd, op, fd, &e);
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
	if (mask && ctl(l, EPOLL_CTL_ADD, fd, mask) < 0)
		return -1;
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
	unsigned old = l->state[fd] & ST_MASK;
	int r = 0;

	mask &= ST_MASK;
	if (!old && mask)
		r = ctl(l, EPOLL_CTL_ADD, fd, mask);
	else if (old && !mask)
		r = ctl(l, EPOLL_CTL_DEL, fd, 0);
	else if (old != mask)
		r = ctl(l, EPOLL_CTL_MOD, fd, mask);
	if (r < 0)
		return -1;
	l->state[fd] = (unsigned char)(ST_REG | mask);
	l->tag[fd] = tag;
	return 0;
}

void loop_del(struct loop *l, int fd)
{
	if (fd < 0 || fd >= l->maxfds || !(l->state[fd] & ST_REG))
		return;
	/* Errors are ignored: after a close() the kernel has dropped it. */
	if (l->state[fd] & ST_MASK)
		(void)ctl(l, EPOLL_CTL_DEL, fd, 0);
	l->state[fd] = 0;
	l->tag[fd] = 0;
	/* The state check in loop_next() is not enough: the number may be
	 * registered again, for another connection, before the batch ends. */
	for (int i = l->pos; i < l->n; i++)
		if (l->ev[i].data.fd == fd)
			l->ev[i].events = 0;
}

int loop_wait(struct loop *l, int timeout_ms)
{
	int n = epoll_wait(l->epfd, l->ev, l->cap, timeout_ms);

	l->pos = 0;
	if (n < 0) {
		l->n = 0;
		return errno == EINTR ? 0 : -1;
	}
	l->n = n;
	return n;
}

int loop_next(struct loop *l, struct loop_event *ev)
{
	while (l->pos < l->n) {
		const struct epoll_event *e = &l->ev[l->pos++];
		int fd = e->data.fd;

		if (!e->events || fd < 0 || fd >= l->maxfds)
			continue;
		unsigned st = l->state[fd], mask = st & ST_MASK, out = 0;
		if (!(st & ST_REG) || !mask)
			continue;
		if ((e->events & (EPOLLIN | EPOLLRDHUP)) && (mask & LOOP_READ))
			out |= LOOP_READ;
		if ((e->events & EPOLLOUT) && (mask & LOOP_WRITE))
			out |= LOOP_WRITE;
		if (e->events & (EPOLLERR | EPOLLHUP))
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
