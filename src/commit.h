/* commit: the group commit of one loop pass.
 *
 * Promises: a message whose data ended during a loop pass is stored with
 * the others of that pass by one maildir_commit_batch() after the pass's
 * events (one sync round for all, each message as durable as alone: SPEC
 * §5), then answered through conn_message_stored(). The arrays are
 * allocated once at start, one entry per slot (commit_init); a slot
 * closed, or closed and reused, before the round is skipped.
 */
#ifndef TARPITD_COMMIT_H
#define TARPITD_COMMIT_H

#include <stdint.h>

struct conn;

int commit_init(uint32_t max_connections);
void commit_fini(void);
/* c's message is complete and good: it joins this pass's round. */
void commit_add(struct conn *c);
/* One sync round for the messages added in this pass. */
void commit_run(void);

#endif
