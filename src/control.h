/* control: the control socket and the statistics (SPEC §2).
 *
 * Promises: a UNIX socket (mode 0600) that answers "stats" with one
 * logfmt line for the server and one per connector configured now, and
 * closes. The answer is rendered and sent a line at a time, resuming where
 * the socket filled, so it is never cut, whatever the number of
 * connectors. At most CONTROL_CLIENTS at once; a client that neither
 * sends its request nor reads its answer for CONTROL_DEADLINE_MS is
 * closed, and a new client takes the place of the one that has waited
 * longest when all are taken, so idle clients never block `stats`.
 * SIGUSR1 logs the same lines. Allocates nothing.
 */
#ifndef TARPITD_CONTROL_H
#define TARPITD_CONTROL_H

#include <stdbool.h>

struct tw_node;

/* Opens the socket at path and adds it to the loop; -1 (logged) on failure. */
int control_open(const char *path);
/* A loop event tagged TAG_CONTROL (the socket) or TAG_CONTROL | (i + 1). */
void control_event(unsigned tag);
/* Whether n is a control client's deadline (then it is handled). */
bool control_timer(struct tw_node *n);
/* Closes the socket (unlinking path) and any client. */
void control_close(const char *path);
/* SIGUSR1: the stats lines into the log. */
void control_log_stats(void);

#endif
