/* server: the one event loop that owns every socket, timer and slot.
 *
 * Promises: server_run() binds the listeners, allocates everything it will
 * ever use (connection table, loop, wheel, buffers), and then serves until
 * SIGTERM/SIGINT without allocating per connection or per message. All
 * waiting — tarpit delays, greeting delays, timeouts — is a node on the
 * timer wheel, never a sleep or a thread.
 */
#ifndef TARPITD_SERVER_H
#define TARPITD_SERVER_H

#include <stdint.h>

#include "config.h"

/* The counters of SPEC §2, kept for the server and per connector. */
struct stats {
	uint64_t connections_total, connections_current, connections_refused;
	uint64_t messages_accepted, recipients_accepted, recipients_unknown;
	uint64_t replies_tarpitted, tarpit_disconnects, protocol_errors;
	uint64_t tls_sessions, auth_success, auth_failure;
};

/* Takes ownership of cfg. Returns the process exit status. */
int server_run(struct config *cfg);

#endif
