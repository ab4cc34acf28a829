/* priv: the privileged helper kept when [server] user drops privileges.
 *
 * Promises: priv_start() forks one small process before anything is
 * opened (no listener, client or spool descriptor is ever in it). The
 * helper becomes the daemon's user too but keeps three capabilities:
 * CAP_NET_ADMIN, which the ban command inherits (ambient; it gets nothing
 * else), and CAP_DAC_OVERRIDE and CAP_FOWNER, which only the helper has,
 * to remove the pidfile and the control socket at the stop. It does two
 * things and nothing else: on a request (one datagram: an address, which
 * it parses and writes back canonically) it runs the ban command of the
 * configuration the daemon started with, with that address as its own
 * word, no shell, and answers the command's wait status; and when the
 * daemon's end of the socket closes (a clean stop, or the daemon died) it
 * removes the pidfile (only if it still names the daemon) and the control
 * socket (only if it is a socket nobody listens on), and exits. The loop's side never
 * blocks: a request that does not fit in the socket is a failed ban.
 * Allocates nothing.
 */
#ifndef TARPITD_PRIV_H
#define TARPITD_PRIV_H

#include <stdbool.h>
#include <sys/types.h>

#include "config.h"

/* As root, with the configuration the daemon starts with: forks the
 * helper. 0 ok (or nothing to do: no user, not root), -1 logged. */
int priv_start(const struct config *cfg);
/* The loop's end of the socket (-1 without a helper). */
int priv_fd(void);
/* Asks for a ban of ip (canonical text). 0 sent; -1 (errno set). */
int priv_ban(const char *ip);
/* The next answer into *status (a wait status, or -errno when the
 * command could not be started): 1; 0 none yet; -1 the helper is gone. */
int priv_answer(int *status);
/* From waitpid(): true if pid was the helper (then it is gone). */
bool priv_exited(pid_t pid);
/* Closes the loop's end without waiting: the helper cleans up and exits
 * (reaped on SIGCHLD, or by priv_stop). */
void priv_drop(void);
/* At the stop: closes the socket and waits for the helper's clean-up. */
void priv_stop(void);

#endif
