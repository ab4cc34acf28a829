/* maildir: the durable message sink of SPEC §5.
 *
 * Promises: a message streams to one file in <spool>/tmp/ (never whole in
 * memory); commit makes it durable (fsync, or the round's syncfs),
 * hard-links it into <spool>/<mailbox>/new/ for every mailbox (and hands
 * it to the forward hooks), makes those entries durable (fsync of each
 * new/, or the round's second sync) and only then reports success, so a
 * crash at any point leaves either no link or a complete file. On a
 * failure part-way the links already made are removed. Nothing here
 * allocates after maildir_open(). The functions block on the disk: they
 * are called from the loop, one round at a time.
 *
 * Files are 0600 and directories 0700; with a spool group (SPEC §5,
 * spool_group) they are 0640 and 0750 and belong to that group, whatever
 * the umask, so an IMAP server of that group can read the mail.
 *
 * The forwarding queue (SPEC §10) joins a round through struct
 * sink_forward; the server only sees `struct sink_msg` and these calls.
 */
#ifndef TARPITD_MAILDIR_H
#define TARPITD_MAILDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "limits.h"

struct recipients;
struct maildir;


/* Per-message state, kept in the connection slot: small on purpose. */
struct sink_msg {
	int fd;          /* -1 when no message is open */
	int error;       /* sticky errno of a failed write, 0 if none */
	uint32_t sec, usec, seq; /* the unique name is derived from these */
	/* Octets the Received: lines take on the wire (CRLF line ends): a
	 * forwarded copy is them and the client's data, without the
	 * Return-Path: line (SIZE= to the next hop, SPEC §10). */
	uint32_t trace;
	uint64_t size;   /* octets written, headers included */
};

/* A message's forwarding, in the group commit's three steps, so that the
 * queue's files share the round's two syncs instead of syncing alone:
 * stage(arg) before the first sync (the envelope written, not synced: the
 * first sync makes it durable with the data), link(arg, dirfd, name)
 * after it (the synced data file linked and the envelope put in place,
 * not synced: the second sync does it, before any 250), and undo(arg),
 * when the round fails after stage() succeeded, takes back whatever the
 * two made. Each returns 0, or -1: the message fails (452). */
struct sink_forward {
	int (*stage)(void *arg);
	int (*link)(void *arg, int dirfd, const char *name);
	void (*undo)(void *arg);
};

struct sink_envelope {
	const char *sender;      /* without brackets; "" for the null sender */
	const char *helo;        /* already neutered for the Received: line */
	const char *peer_ip;     /* textual, e.g. "192.0.2.1" or "2001:db8::1" */
	const char *fqdn;        /* our name for the Received: line */
	const char *protocol;    /* "ESMTP", "SMTP", "ESMTPS", "ESMTPA", "ESMTPSA" */
	const char *single_rcpt; /* the recipient when there is exactly one, else NULL */
	const struct recipients *rcpts; /* resolves the mailbox ids */
	const uint32_t *mailboxes; /* distinct mailbox ids */
	unsigned nmailboxes;
	/* Forwarded recipients (SPEC §10), or NULL: nothing is forwarded, and
	 * nmailboxes must be above 0. See struct sink_forward. */
	const struct sink_forward *fwd;
	void *fwd_arg;
};

/* The group the spool is given to from the next maildir_open() on
 * (spool_group's gid), or (uint32_t)-1 for none. Set once, before the
 * server starts: the server opens the spool itself, after dropping
 * privileges. */
void maildir_use_group(uint32_t gid);

/* Creates <spool> and <spool>/tmp if missing and removes leftovers in
 * <spool>/tmp; with a group, gives <spool> and <spool>/tmp to it (0750),
 * existing ones too. NULL with a message in err on failure. */
struct maildir *maildir_open(const char *spool, const char *hostname,
			     char *err, size_t errlen);
void maildir_close(struct maildir *md);

/* Opens the tmp file and writes Return-Path: and Received:. Fills
 * queue_id (QUEUE_ID_MAX). 0 ok, -1 (errno set, nothing left behind). */
int maildir_begin(struct maildir *md, struct sink_msg *m,
		  const struct sink_envelope *env, char *queue_id);
/* Appends message octets (already LF-terminated and dot-unstuffed). A
 * failure is remembered in m->error and reported by commit. */
void maildir_write(struct sink_msg *m, const char *buf, size_t len);
/* 0: durable in every mailbox; -1: nothing delivered, tmp file removed.
 * Local delivery only (env->fwd NULL): forwarding takes the round. */
int maildir_commit(struct maildir *md, struct sink_msg *m,
		   const struct sink_envelope *env);
/* Group commit: the messages whose data ended in the same loop pass
 * share one sync round — one syncfs() for their files (and the staged
 * envelopes of the forwarded ones), the links, and one sync for the new
 * entries — instead of syncs of their own, so a burst costs the loop two
 * journal commits, not 2n or 3n. The second sync is an fsync() of fwd_dir
 * when the round made no local link (the queue's directory then holds
 * every new entry), else a syncfs(). fwd_dir: the directory the forward
 * links go to (the queue's), on the spool's file system (a hard link
 * cannot leave it), or -1 without forwarding; a round that forwards
 * syncs through it, so a failure there reads as the queue's. A round of
 * one local message takes the plain maildir_commit() path (two fsyncs).
 * results[k] is 0 (durable in every mailbox and queued) or -1 (nothing
 * delivered). Returns true when the round ended with a successful sync
 * of the whole file system or of fwd_dir, made after the caller's
 * earlier changes there (the queue's removals need no sync of their own
 * then), else false. */
bool maildir_commit_batch(struct maildir *md, struct sink_msg *const *msgs,
			  const struct sink_envelope *envs, unsigned n, int *results, int fwd_dir);
/* Where the open message lives before its commit: tmp/'s directory fd and
 * the file's name there (NAME_MAX octets do), for a caller that links it
 * elsewhere itself (queue_add of a DSN that goes to a next hop). 0, -1. */
int maildir_tmp_dir(const struct maildir *md);
int maildir_tmp_name(const struct maildir *md, const struct sink_msg *m, char *buf, size_t len);
/* Drops the message (oversized, bad line endings, client gone). */
void maildir_abort(struct maildir *md, struct sink_msg *m);

#endif
