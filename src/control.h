/* control: the control socket and the statistics (SPEC §2).
 *
 * Promises: a UNIX socket (mode 0600) that answers "stats" with one
 * logfmt line for the server and one per connector configured now, and
 * closes. The answer is rendered and sent a line at a time, resuming where
 * the socket filled, so it is never cut, whatever the number of
 * connectors. At most CONTROL_CLIENTS at once, each answered once its
 * request has arrived.
 * SIGUSR1 logs the same lines. Allocates nothing.
 */
#ifndef TARPITD_CONTROL_H
#define TARPITD_CONTROL_H

/* Opens the socket at path and adds it to the loop; -1 (logged) on failure. */
int control_open(const char *path);
/* A loop event tagged TAG_CONTROL (the socket) or TAG_CONTROL | (i + 1). */
void control_event(unsigned tag);
/* Closes the socket (unlinking path) and any client. */
void control_close(const char *path);
/* SIGUSR1: the stats lines into the log. */
void control_log_stats(void);

#endif
