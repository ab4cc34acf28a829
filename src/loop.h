/* loop: readiness notification for the one event loop.
 *
 * Promises: one narrow interface with two backends chosen at build time
 * (loop_epoll.c on Linux, loop_poll.c anywhere, `make BACKEND=poll`); all
 * memory is allocated in loop_new() for `maxfds` descriptors, nothing
 * after. Level-triggered. loop_del() scrubs the fd from the batch being
 * dispatched, so a connection closed by an earlier event of the same batch
 * never receives a stale event, even if its fd number is reused at once.
 */
#ifndef TARPITD_LOOP_H
#define TARPITD_LOOP_H

#include <stdint.h>

enum {
	LOOP_READ = 1u,
	LOOP_WRITE = 2u,
	LOOP_ERROR = 4u, /* hang-up or error; reported with LOOP_READ set too */
};

struct loop_event {
	int fd;
	unsigned events;
	uint32_t tag; /* the caller's cookie given to loop_add/loop_mod */
};

struct loop;

/* fds must be < maxfds. NULL on allocation failure. */
struct loop *loop_new(int maxfds);
void loop_free(struct loop *l);
const char *loop_backend(void); /* "epoll" or "poll" */

/* mask may be 0 (registered but not watched). 0 ok, -1 errno set. */
int loop_add(struct loop *l, int fd, unsigned mask, uint32_t tag);
int loop_mod(struct loop *l, int fd, unsigned mask, uint32_t tag);
void loop_del(struct loop *l, int fd);

/* Waits up to timeout_ms (-1 forever) and starts a new batch; returns the
 * number of events in it (0 on timeout or EINTR), -1 on other errors. */
int loop_wait(struct loop *l, int timeout_ms);
/* Next live event of the batch: 1 with *ev filled, 0 at the end. */
int loop_next(struct loop *l, struct loop_event *ev);

#endif
