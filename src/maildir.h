/* maildir: the durable message sink of SPEC §5.
 *
 * Promises: a message streams to one file in <spool>/tmp/ (never whole in
 * memory); commit fsyncs it, hard-links it into <spool>/<mailbox>/new/ for
 * every mailbox, fsyncs each new/ directory and only then reports success,
 * so a crash at any point leaves either no link or a complete file. On a
 * failure part-way the links already made are removed. Nothing here
 * allocates after maildir_open(). The functions block on the disk: they
 * are called from the loop, one message at a time.
 *
 * Files are 0600 and directories 0700; with a spool group (SPEC §5,
 * spool_group) they are 0640 and 0750 and belong to that group, whatever
 * the umask, so an IMAP server of that group can read the mail.
 *
 * The same begin/write/commit/abort shape will serve a store-and-forward
 * relay sink, so the server only sees `struct sink_msg` and these calls.
 */
#ifndef TARPITD_MAILDIR_H
#define TARPITD_MAILDIR_H

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
	/* Forwarded recipients (SPEC §10): once the data is durable and the
	 * local links are made, the store calls forward(fwd_arg, dirfd, name)
	 * on the tmp file (0: the message is durably queued) before the
	 * round ends; a round that fails after it calls unforward(fwd_arg).
	 * NULL: nothing is forwarded, and nmailboxes must be above 0. */
	int (*forward)(void *arg, int dirfd, const char *name);
	void (*unforward)(void *arg);
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
/* 0: durable in every mailbox; -1: nothing delivered, tmp file removed. */
int maildir_commit(struct maildir *md, struct sink_msg *m,
		   const struct sink_envelope *env);
/* Group commit: the messages whose data ended in the same loop pass
 * share one sync round — one syncfs() for their files, the links, one
 * syncfs() for the new/ directories — instead of two fsync()s each, so a
 * burst of deliveries costs the loop two journal commits, not 2n. A
 * round of one takes the plain maildir_commit() path. results[k] is 0
 * (durable in every mailbox) or -1 (nothing delivered). */
void maildir_commit_batch(struct maildir *md, struct sink_msg *const *msgs,
			  const struct sink_envelope *envs, unsigned n, int *results);
/* Where the open message lives before its commit: tmp/'s directory fd and
 * the file's name there (NAME_MAX octets do), for a caller that links it
 * elsewhere itself (queue_add of a DSN that goes to a next hop). 0, -1. */
int maildir_tmp_dir(const struct maildir *md);
int maildir_tmp_name(const struct maildir *md, const struct sink_msg *m, char *buf, size_t len);
/* Drops the message (oversized, bad line endings, client gone). */
void maildir_abort(struct maildir *md, struct sink_msg *m);

#endif
