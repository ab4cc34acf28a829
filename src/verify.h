/* verify: AUTH's password checks, run in slices between the loop's other
 * work (SPEC §9).
 *
 * Promises: a session whose AUTH is complete waits for its verdict while
 * everyone else is served. Its PBKDF2 runs at most AUTH_SLICE_ROUNDS
 * rounds per loop pass, so no check holds the loop for longer than one
 * slice, and only the authenticating client waits for the iteration
 * count. A fixed pool of AUTH_VERIFIERS verifiers (their HMAC contexts set
 * up once, in verify_init) runs that many checks at once, taking slices
 * in turn; a session that finds them all busy waits in a queue (one place
 * per connection, allocated at start) and runs its AUTH line once a
 * verifier is free, before any later comer. A connection that closes
 * takes its check or its place with it. A check copies what it needs
 * (hash, known name) at its start, so a reload of the users file
 * meanwhile changes nothing. Nothing allocates after verify_init().
 */
#ifndef TARPITD_VERIFY_H
#define TARPITD_VERIFY_H

#include <stdbool.h>
#include <stdint.h>

struct conn;
struct smtp_creds;
struct users;

/* -1 when mbedTLS cannot set up the contexts or the queue does not fit. */
int verify_init(uint32_t max_connections);
void verify_fini(void);

/* Whether c may run a line that can hand out credentials now: a verifier
 * is free and nobody waits before c. Otherwise c joins the queue (CF_VWAIT)
 * and is woken, conn_verify_wake(), when its turn comes. */
bool verify_may_start(struct conn *c);
/* Starts checking the credentials c's session handed out (the AUTH line
 * was read at read_at); the verdict comes through conn_verified(). False
 * when no verifier is free (verify_may_start() said there was). */
bool verify_start(struct conn *c, const struct users *u, const struct smtp_creds *cr, uint64_t read_at);
/* c closes or leaves AUTH: its check, or its place in the queue, is dropped. */
void verify_cancel(struct conn *c);

/* Work is waiting: the loop must not sleep. */
bool verify_pending(void);
/* Once per loop pass: hands free verifiers to waiting sessions, then runs
 * one slice of the next check in turn, giving its verdict when it ends. */
void verify_run(void);

#endif
