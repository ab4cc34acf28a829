/* relay_dsn: where the gateway's delivery status notifications go, and
 * how they are stored (SPEC §10), for relay_attempt.c.
 *
 * Promises: a DSN (dsn_write's RFC 3464 text, the original's headers
 * read from the queued file, at most DSN_HEADERS_MAX) goes to the sender
 * only when the envelope allows it (QUEUE_F_DSN_SENDER: local or
 * authenticated) and the sender is a local recipient — its Maildir, or
 * queued for the next hop of its forwarded domain — or, not local, the
 * smarthost can take it; otherwise, and for a null sender, to the
 * postmaster mailbox. Never anywhere else: no bounce to the internet.
 * When the sender's next hop cannot take it now (queue full, disk) it
 * goes to postmaster rather than nowhere. A DSN is sent from the null
 * sender (Return-Path: <>), so its own failure reports to postmaster and
 * stops there. It is durable when relay_dsn() returns 0: a Maildir
 * commit, or a synced file linked by queue_add(). Memory: one header
 * buffer, allocated by relay_dsn_init().
 */
#ifndef TARPITD_RELAY_DSN_H
#define TARPITD_RELAY_DSN_H

#include <stdbool.h>

struct queue_env;
struct dsn_rcpt;

int relay_dsn_init(void);
void relay_dsn_fini(void);
/* The DSN for the failed recipients r[0..n) of env (queue entry qidx):
 * 0 with its queue id in qid (QUEUE_ID_MAX), the address it went to in
 * *to (env's sender or "postmaster") and *queued when it went to the
 * queue (a new entry to attempt); -1 when it could be stored nowhere. */
int relay_dsn(const struct queue_env *env, int qidx, const struct dsn_rcpt *r, unsigned n, char *qid,
	      const char **to, bool *queued);

#endif
