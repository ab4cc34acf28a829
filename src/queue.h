/* queue: the durable forwarding queue of the gateway role (SPEC §10),
 * under <spool>/queue/, durable exactly as SPEC §5.
 *
 * Layout. A queued message is two files in queue/, named by its queue id
 * (the id maildir_begin() gave it, so the log lines of the accept and of
 * each attempt share it):
 *   <id>.msg  the message as stored (LF line ends, Return-Path: and
 *             Received: first), a hard link of the file the receiving
 *             side wrote and synced — the data is written once, whether
 *             the message also goes to Maildirs or not; never changed.
 *   <id>.env  the envelope, text (format in queue_env.h): sender, flags (may
 *             the sender get a DSN), accepted time, size, and per
 *             recipient its next hop's name, state pending/sent/failed,
 *             attempts, next attempt time and last reply (%-escaped, so
 *             no octet of a next hop's reply reaches the file raw).
 *   tmp/      envelopes being written; emptied at open.
 * The .env is the commit point: an entry exists exactly when its .env
 * does and its .msg does too.
 *
 * Promises:
 * - queue_add(): the caller has synced the data file; it is linked as
 *   <id>.msg, the envelope written to tmp/<id>.env and fsynced, renamed
 *   to <id>.env, and queue/ fsynced — only then does it return 0, and
 *   only then may the 250 go out. A failure at any step removes what it
 *   made (-1, errno; the table unchanged).
 * - The group commit's add takes the same steps in another order, so
 *   that a round of messages needs two syncs in all, not two each:
 *   queue_stage() writes tmp/<id>.env (not synced); the caller's first
 *   sync of the file system makes it durable with the data file;
 *   queue_link() links the data as <id>.msg and renames the envelope to
 *   <id>.env (not synced); the caller's second sync (of queue/, or of
 *   the file system) makes both names durable before the 250. The
 *   envelope's text is on disk before its name can be: the crash cases
 *   are those below. queue_abandon() takes back either stage.
 * - Crash cases, as recovery reads them. Before the directory sync either
 *   name may be missing after a crash (a file system may persist the two
 *   entries in either order): a .msg without .env, or an .env without
 *   .msg, was never answered 250 and is deleted. After the sync both
 *   exist and the entry is recovered. An envelope update (after an
 *   attempt) writes tmp/<id>.env, fsyncs, renames over <id>.env and
 *   fsyncs queue/: a crash leaves the old envelope or the new, never a
 *   mix — with the old one, recipients the next hop had already accepted
 *   are sent again (the duplicate window of SPEC §10). Removal, once no
 *   recipient is pending, unlinks <id>.env first (the commit point), then
 *   <id>.msg; queue/ is synced later, with other removals (queue_remove);
 *   whatever half of it a crash keeps is either deleted by recovery (one
 *   name left) or removed again (an .env with nothing pending). Leftovers
 *   in tmp/ are deleted at open.
 * - Memory: one table of max_queued entries allocated at queue_open()
 *   with one scratch buffer of QUEUE_ENV_MAX, nothing after; an entry
 *   holds the id, the accepted and next-attempt times, the hashes of the
 *   next hop it is due for and of its id, a few flags and its group;
 *   the recipients stay on disk and are read by queue_load() when the
 *   entry is due. Message data is never read here.
 * - Recovery is sliced: queue_open() only opens the directory;
 *   queue_recover_step() looks at QUEUE_RECOVER_STEP directory entries
 *   per call, so 10,000 queued messages cost the loop many short steps.
 *   The queue works meanwhile (entries added while recovering are not
 *   counted twice). Envelopes beyond max_queued stay on disk, counted in
 *   queue_overflow(), and are picked up at the next start.
 * - The scheduler's questions (queue_due_match(), queue_next_time_match())
 *   look once at each next hop's group of entries (QUEUE_HOP_GROUPS, in
 *   the table) and scan the table only when a group the caller does not
 *   pass over may hold the answer: a next hop that is down or at its
 *   limit costs one look, however much is queued for it. The answers are
 *   the plain scan's.
 * - The retry schedule is integer arithmetic only.
 * The calls block on the disk (a few small writes and syncs), like the
 * Maildir's; they run on the loop one at a time.
 */
#ifndef TARPITD_QUEUE_H
#define TARPITD_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "limits.h"
#include "queue_env.h"

/* The envelope (struct queue_env, its recipients and flags) and its text:
 * queue_env.h. */

struct queue;

/* Opens (creating, 0700) <dir> and <dir>/tmp, empties tmp/ and starts the
 * recovery; max: [server] max_queued. NULL with a message in err. */
struct queue *queue_open(const char *dir, unsigned max, char *err, size_t errlen);
void queue_close(struct queue *q);
/* One step of the recovery: 1 more to do, 0 done (also when there was
 * none to do), -1 a read error ended it (errno). */
int queue_recover_step(struct queue *q);
bool queue_recovering(const struct queue *q);
unsigned queue_count(const struct queue *q);
bool queue_full(const struct queue *q);
unsigned queue_overflow(const struct queue *q);
/* Entries an attempt has deferred (a pending recipient tried at least once). */
unsigned queue_deferred(const struct queue *q);

/* Enqueues the message whose synced data is dirfd/name, with env (its id
 * a name of 1..QUEUE_ID_MAX-1 letters and digits, every recipient
 * pending). The entry index, or -1 with errno: ENOSPC table full, E2BIG
 * an envelope that could outgrow QUEUE_ENV_MAX, EINVAL a bad envelope,
 * EEXIST the id is queued, or the file system's error. */
int queue_add(struct queue *q, int dirfd, const char *name, const struct queue_env *env);
/* The group commit's add, in two steps (see above). queue_stage(): the
 * envelope written to tmp/, not synced; the entry taken (counted, its id
 * known, busy: never due) — the index, or -1 with queue_add()'s errors.
 * queue_link(): after the caller synced the file system, the data file
 * dirfd/name becomes <id>.msg and the envelope <id>.env, neither synced
 * (the caller syncs queue/ before the 250); the entry is an ordinary one
 * then. 0, or -1 with errno (what it made stays for queue_abandon()). */
int queue_stage(struct queue *q, const struct queue_env *env);
int queue_link(struct queue *q, int idx, int dirfd, const char *name);
/* queue/'s descriptor: the group commit syncs it (fsync, syncfs). */
int queue_dir_fd(const struct queue *q);
/* A staged or linked entry whose round failed (the client is told 452):
 * its files are removed, queue/ fsynced if it had any there, the entry
 * dropped. */
void queue_abandon(struct queue *q, int idx);

/* The entry to attempt next: due (next attempt <= now), not busy, the
 * earliest accepted first; -1 when none. */
int queue_due(const struct queue *q, uint32_t now);
/* The earliest next attempt of an entry that is not busy; UINT32_MAX if none. */
uint32_t queue_next_time(struct queue *q);
/* Each entry knows the next hop of its earliest pending recipient (the
 * one queue_due() makes it due for) as a hash of the [relay] name, so
 * the transport can pass over the entries of a next hop that is down or
 * at its connection limit without reading their envelopes. Two names
 * with one hash (a chance of about 1 in 2^32 per pair) would share that
 * fate, nothing more: the envelope read at the attempt has the name. */
uint32_t queue_hop_hash(const char *name);
/* queue_due() and queue_next_time() over the entries for which skip(ctx,
 * hop hash) is false (a NULL skip passes every entry). */
typedef bool (*queue_skip_fn)(void *ctx, uint32_t hop);
int queue_due_match(const struct queue *q, uint32_t now, queue_skip_fn skip, void *ctx);
uint32_t queue_next_time_match(struct queue *q, queue_skip_fn skip, void *ctx);
/* The entry's next attempt in the table only (not on disk): after an
 * update failed, so a due entry whose envelope cannot be written is not
 * attempted again at once. */
void queue_set_next(struct queue *q, int idx, uint32_t next);
/* An attempt is running for the entry: queue_due() skips it. */
void queue_set_busy(struct queue *q, int idx, bool busy);
bool queue_busy(const struct queue *q, int idx);
/* Makes every entry due at now (`tarpitd queue flush`), its envelope's
 * recipients too: queue_take_flush() tells the attempt so. */
void queue_flush(struct queue *q, uint32_t now);
/* True once for an entry queue_flush() made due (the flag is cleared):
 * the caller treats the envelope's deferred recipients as due now. */
bool queue_take_flush(struct queue *q, int idx);
const char *queue_id(const struct queue *q, int idx);
/* The index of a queued id, or -1. */
int queue_find(const struct queue *q, const char *id);
/* First used index >= from, for listing; -1 at the end. */
int queue_iter(const struct queue *q, int from);

/* Reads the envelope of entry idx: strings point into buf (QUEUE_ENV_MAX
 * octets do), recipients into rcpt[maxrcpt]. 0, or -1 with errno. */
int queue_load(const struct queue *q, int idx, struct queue_env *env, char *buf, size_t buflen,
	       struct queue_rcpt *rcpt, unsigned maxrcpt);
/* The envelope file `name` ("<id>.env") in the queue directory dir_fd,
 * read and parsed without a struct queue and without changing anything:
 * for `tarpitd queue`, which may run beside the server. 0, or -1 with
 * errno (EINVAL: not an envelope's name, or it does not parse). */
int queue_read(int dir_fd, const char *name, struct queue_env *env, char *buf, size_t buflen,
	       struct queue_rcpt *rcpt, unsigned maxrcpt);
/* The data file, opened read-only: an fd, or -1 with errno. */
int queue_open_data(const struct queue *q, int idx);
/* After an attempt: the new envelope (same id and recipients, states,
 * attempts, next times and replies updated) replaces the old atomically,
 * or, with no recipient pending, the message is removed. 0 updated, 1
 * removed, -1 with errno (the old envelope stays in force). */
int queue_update(struct queue *q, int idx, const struct queue_env *env);
/* Removes the message (`tarpitd queue delete`, or all done). 0, -1.
 * The directory is synced by the next queue_sync() — the server calls it
 * once a second (its tick) and before a stop, so a burst of deliveries
 * costs one fsync — unless the group commit's next round syncs queue/
 * first (queue_synced()). A crash before either can only bring a
 * delivered message back (the duplicate window of SPEC §10), never lose
 * one. */
int queue_remove(struct queue *q, int idx);
/* fsyncs queue/ if a removal is pending. 0, or -1 with errno (the
 * removals stay pending: the next call tries again). */
int queue_sync(struct queue *q);
/* The caller has synced queue/ (or its whole file system) after the last
 * removal: queue_sync() has nothing left to do. The group commit's
 * second sync, when a round comes after deliveries in the same pass. */
void queue_synced(struct queue *q);

/* Seconds until the retry after `attempts` failed attempts (1 = the
 * first): retry_min doubling up to retry_max, then less up to an eighth
 * of it at random (rnd), so retries of many messages deferred at once
 * spread out but never come later than the schedule. At least 1. */
uint32_t queue_retry_delay(uint32_t attempts, uint32_t retry_min, uint32_t retry_max, uint32_t rnd);
/* The message has outlived max_queue_lifetime: its pending recipients fail. */
static inline bool queue_expired(uint32_t accepted, uint32_t now, uint32_t lifetime)
{
	return now >= accepted && now - accepted >= lifetime;
}

#endif
