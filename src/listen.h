/* listen: the listening sockets and what happens at accept.
 *
 * Promises: the listeners are those of the current generation's enabled
 * connectors — kept where a binding stays, opened where one is new,
 * closed where one went, and on a failure nothing changes. Accepting
 * matches the client to the most specific connector range on that
 * binding, and refuses at once, without a slot (one accept and one send,
 * SPEC §8), a client no connector takes, one over a connector's or a
 * source's limit, and one that finds the table full. Out of descriptors,
 * it spends a reserve descriptor to refuse politely and pauses accepting
 * for a tick instead of spinning. Allocates nothing.
 */
#ifndef TARPITD_LISTEN_H
#define TARPITD_LISTEN_H

#include <stdbool.h>

struct gen;
struct binding;

/* Opens the reserve descriptor (at start). */
void listen_init(void);
/* Makes the listeners those of g; -1 (logged) if one cannot be opened. */
int listen_reconcile(const struct gen *g);
/* Readiness of listener li: accepts a batch. */
void listen_accept(unsigned li);
/* Every tick: resumes accepting after a pause. */
void listen_tick(void);
void listen_close_all(void);
/* Closes the reserve descriptor (at exit). */
void listen_fini(void);

#endif
