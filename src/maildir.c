/* maildir: the durable message sink of SPEC §5.
 *
 * The slot keeps only (sec, usec, seq); the file name is rebuilt from them
 * plus the pid and host, so no name is stored per message. Every step
 * works relative to directory fds opened once, so a renamed or replaced
 * spool path cannot redirect a half-done delivery.
 */
#include "maildir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"
#include "recipients.h"

#define NAME_BUF 256 /* a Maildir name: MAILDIR_HOST_MAX keeps it under NAME_MAX */
#define HEADER_BUF                                                                   \
	(sizeof("Return-Path: <>\n") + MAILDIR_SENDER_MAX + sizeof("Received: from  ([])\n") + \
	 MAILDIR_HELO_MAX + MAILDIR_IP_MAX + sizeof("\tby  with  id ") + MAILDIR_FQDN_MAX + MAILDIR_PROTO_MAX +        \
	 QUEUE_ID_MAX + sizeof("\n\tfor <>") + MAILDIR_RCPT_MAX + sizeof("; \n") + MAILDIR_DATE_MAX)

struct maildir {
	int spool_fd;
	int tmp_fd;
	uint32_t pid;
	gid_t gid;     /* (gid_t)-1: no spool group */
	mode_t fmode, dmode;
	bool chmod;    /* the umask would take the group's bits */
	char host[MAILDIR_HOST_MAX + 1];
};

/* Per process, as the Maildir convention wants; shared by every maildir
 * opened so a reopen on reload cannot repeat a name. */
static uint32_t seq_counter;

static gid_t spool_gid = (gid_t)-1;

void maildir_use_group(uint32_t gid)
{
	spool_gid = (gid_t)gid;
}

/* A directory or file just made (or the spool, found) given to the spool
 * group with its mode: chown can fail (the daemon's user must be in the
 * group), chmod only undoes the umask. Nothing to do without a group. */
static int give(const struct maildir *md, int fd, mode_t mode)
{
	if (md->gid == (gid_t)-1)
		return 0;
	if (fchown(fd, (uid_t)-1, md->gid) != 0)
		return -1;
	return md->chmod || S_ISDIR(mode) ? fchmod(fd, mode & 07777) : 0;
}

static void set_err(char *err, size_t errlen, const char *spool, const char *what)
{
	if (err && errlen)
		snprintf(err, errlen, "%s: %s: %s", spool, what, strerror(errno));
}

/* mkdir -p: the last component gets mode (0700 or 0750: it holds mail),
 * the parents the usual 0755 so a spool under a fresh /var/spool still
 * works. */
static int make_path(const char *path, mode_t mode)
{
	/* Static keeps the frame small (short stack accesses on MIPS16);
	 * single-threaded, and no caller sees the buffer. */
	static char buf[PATH_MAX];
	size_t len = strlen(path);

	if (len == 0 || len >= sizeof(buf)) {
		errno = len ? ENAMETOOLONG : ENOENT;
		return -1;
	}
	memcpy(buf, path, len + 1);
	while (len > 1 && buf[len - 1] == '/')
		buf[--len] = '\0';
	for (size_t i = 1; i < len; i++) {
		if (buf[i] != '/')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -1;
		buf[i] = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

/* The Maildir rule escapes '/' and ':' as \057 and \072; anything else a
 * file name or a shell would trip on is escaped the same way. */
static void copy_host(char *dst, const char *src)
{
	size_t n = 0;

	for (; *src; src++) {
		unsigned char c = (unsigned char)*src;

		if (c > 0x20 && c < 0x7f && c != '/' && c != ':' && c != '\\') {
			if (n + 1 > MAILDIR_HOST_MAX)
				break;
			dst[n++] = (char)c;
		} else {
			if (n + 4 > MAILDIR_HOST_MAX)
				break;
			dst[n++] = '\\';
			dst[n++] = (char)('0' + (c >> 6));
			dst[n++] = (char)('0' + ((c >> 3) & 7));
			dst[n++] = (char)('0' + (c & 7));
		}
	}
	if (n == 0)
		memcpy(dst, "localhost", (n = 9));
	dst[n] = '\0';
}

struct maildir *maildir_open(const char *spool, const char *hostname,
			     char *err, size_t errlen)
{
	struct maildir *md;
	const char *what;

	if (err && errlen)
		err[0] = '\0';
	if (!spool || !hostname) {
		errno = EINVAL;
		set_err(err, errlen, spool ? spool : "(null)", "open");
		return NULL;
	}
	md = malloc(sizeof(*md));
	if (!md) {
		set_err(err, errlen, spool, "malloc");
		return NULL;
	}
	md->spool_fd = md->tmp_fd = -1;
	md->gid = spool_gid;
	md->fmode = md->gid == (gid_t)-1 ? 0600 : 0640;
	md->dmode = md->gid == (gid_t)-1 ? 0700 : 0750;
	{
		mode_t um = umask(077);

		umask(um);
		md->chmod = (um & (md->fmode | md->dmode)) != 0;
	}
	what = "mkdir";
	if (make_path(spool, md->dmode) < 0)
		goto fail;
	what = "open";
	md->spool_fd = open(spool, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (md->spool_fd < 0)
		goto fail;
	what = "mkdir tmp";
	if (mkdirat(md->spool_fd, "tmp", md->dmode) < 0 && errno != EEXIST)
		goto fail;
	what = "open tmp";
	md->tmp_fd = openat(md->spool_fd, "tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (md->tmp_fd < 0)
		goto fail;
	/* The spool and tmp/ existing from before spool_group was set get
	 * the group too; so the daemon finds out now, not at the first
	 * message, if it may not give files to the group. */
	what = "spool_group: the daemon's user cannot give the spool to that group";
	if (give(md, md->spool_fd, S_IFDIR | md->dmode) < 0 || give(md, md->tmp_fd, S_IFDIR | md->dmode) < 0)
		goto fail;
	what = "clean tmp";
	if (dir_remove_files(md->tmp_fd) < 0)
		goto fail;
	md->pid = (uint32_t)getpid();
	copy_host(md->host, hostname);
	return md;
fail:
	set_err(err, errlen, spool, what);
	maildir_close(md);
	return NULL;
}

void maildir_close(struct maildir *md)
{
	if (!md)
		return;
	if (md->tmp_fd >= 0)
		close(md->tmp_fd);
	if (md->spool_fd >= 0)
		close(md->spool_fd);
	free(md);
}

static int build_name(const struct maildir *md, const struct sink_msg *m, char *buf)
{
	int n = snprintf(buf, NAME_BUF, "%" PRIu32 ".M%" PRIu32 "P%" PRIu32 "Q%" PRIu32 ".%s",
			 m->sec, m->usec, md->pid, m->seq, md->host);

	return n > 0 && n < NAME_BUF ? 0 : -1;
}

/* RFC 5322 date in UTC; names written here so no locale can change them. */
static int format_date(uint32_t sec, char *buf, size_t len)
{
	static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	time_t t = (time_t)sec;
	struct tm tm;
	int n;

	if (!gmtime_r(&t, &tm) || tm.tm_wday < 0 || tm.tm_wday > 6 || tm.tm_mon < 0 ||
	    tm.tm_mon > 11)
		return -1;
	n = snprintf(buf, len, "%s, %d %s %d %02d:%02d:%02d +0000", days[tm.tm_wday],
		     tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
		     tm.tm_sec);
	return n > 0 && (size_t)n < len ? 0 : -1;
}

/* A header field must fit its share of the buffer and must not carry a
 * line break or other control octet into the stored message. */
static bool field_ok(const char *s, size_t max)
{
	size_t n;

	if (!s)
		return false;
	for (n = 0; s[n]; n++)
		if (n >= max || (unsigned char)s[n] < 0x20 || s[n] == 0x7f)
			return false;
	return true;
}

int maildir_begin(struct maildir *md, struct sink_msg *m,
		  const struct sink_envelope *env, char *queue_id)
{
	/* hdr is static to keep the frame small (short stack accesses on
	 * MIPS16): single-threaded, and it is written out before return. */
	static char hdr[HEADER_BUF];
	char name[NAME_BUF], date[MAILDIR_DATE_MAX], qid[QUEUE_ID_MAX];
	struct timespec ts;
	int n, saved;

	m->fd = -1;
	m->error = 0;
	m->size = 0;
	if (!md || !env || !field_ok(env->sender, MAILDIR_SENDER_MAX) || !field_ok(env->helo, MAILDIR_HELO_MAX) ||
	    !field_ok(env->peer_ip, MAILDIR_IP_MAX) || !field_ok(env->fqdn, MAILDIR_FQDN_MAX) ||
	    !field_ok(env->protocol, MAILDIR_PROTO_MAX) ||
	    (env->single_rcpt && !field_ok(env->single_rcpt, MAILDIR_RCPT_MAX))) {
		errno = EINVAL;
		return -1;
	}
	if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
		return -1;
	m->sec = (uint32_t)ts.tv_sec;
	m->usec = (uint32_t)(ts.tv_nsec / 1000);
	/* A name can only repeat if the clock stepped back within this
	 * process; the next sequence number then gives a fresh one. */
	for (int tries = 0; m->fd < 0; tries++) {
		m->seq = ++seq_counter;
		if (build_name(md, m, name) < 0) {
			errno = ENAMETOOLONG;
			return -1;
		}
		m->fd = openat(md->tmp_fd, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, md->fmode);
		if (m->fd < 0 && (errno != EEXIST || tries >= 8))
			return -1;
	}
	/* Its links in new/ are this inode: given once, here. */
	if (give(md, m->fd, S_IFREG | md->fmode) < 0)
		goto fail;
	snprintf(qid, sizeof(qid), "%08" PRIX32 "%05" PRIX32 "%" PRIX32, m->sec, m->usec, m->seq);
	if (format_date(m->sec, date, sizeof(date)) < 0) {
		errno = EOVERFLOW;
		goto fail;
	}
	n = snprintf(hdr, sizeof(hdr),
		     "Return-Path: <%s>\n"
		     "Received: from %s ([%s])\n"
		     "\tby %s with %s id %s%s%s%s; %s\n",
		     env->sender, env->helo, env->peer_ip, env->fqdn, env->protocol, qid,
		     env->single_rcpt ? "\n\tfor <" : "", env->single_rcpt ? env->single_rcpt : "",
		     env->single_rcpt ? ">" : "", date);
	if (n < 0 || (size_t)n >= sizeof(hdr)) {
		errno = EOVERFLOW;
		goto fail;
	}
	if (fd_write_all(m->fd, hdr, (size_t)n) < 0)
		goto fail;
	m->size = (uint64_t)n;
	m->trace = (uint32_t)((size_t)n - strlen(env->sender) - sizeof "Return-Path: <>\n" + 1 +
			      (env->single_rcpt ? 3u : 2u));
	if (queue_id)
		memcpy(queue_id, qid, sizeof(qid));
	return 0;
fail:
	saved = errno;
	close(m->fd);
	unlinkat(md->tmp_fd, name, 0);
	m->fd = -1;
	errno = saved;
	return -1;
}

void maildir_write(struct sink_msg *m, const char *buf, size_t len)
{
	if (m->fd < 0 || m->error)
		return;
	if (fd_write_all(m->fd, buf, len) < 0) {
		m->error = errno ? errno : EIO;
		return;
	}
	m->size += len;
}

static int ensure_dir(const struct maildir *md, int dirfd, const char *name, bool *created)
{
	int fd, r;

	if (mkdirat(dirfd, name, md->dmode) != 0)
		return errno == EEXIST ? 0 : -1;
	*created = true;
	if (md->gid == (gid_t)-1)
		return 0;
	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -1;
	r = give(md, fd, S_IFDIR | md->dmode);
	close(fd);
	return r;
}

/* Links tmp/<name> into <mailbox>/new/ and makes that durable. *linked
 * tells the caller whether a link exists to take back on failure. */
static int deliver_one(const struct maildir *md, const char *mbox, const char *name,
		       bool *linked, bool sync)
{
	bool created = false;
	int mfd = -1, nfd = -1, rc = -1, saved;

	*linked = false;
	if (ensure_dir(md, md->spool_fd, mbox, &created) < 0)
		return -1;
	if (sync && created && fsync(md->spool_fd) < 0)
		return -1;
	mfd = openat(md->spool_fd, mbox, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (mfd < 0)
		return -1;
	created = false;
	if (ensure_dir(md, mfd, "tmp", &created) < 0 || ensure_dir(md, mfd, "new", &created) < 0 ||
	    ensure_dir(md, mfd, "cur", &created) < 0)
		goto out;
	if (sync && created && fsync(mfd) < 0)
		goto out;
	nfd = openat(mfd, "new", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (nfd < 0)
		goto out;
	if (linkat(md->tmp_fd, name, nfd, name, 0) < 0)
		goto out;
	*linked = true;
	if (sync && fsync(nfd) < 0)
		goto out;
	rc = 0;
out:
	saved = errno;
	if (nfd >= 0)
		close(nfd);
	close(mfd);
	errno = saved;
	return rc;
}

/* Best effort: the message was never acknowledged, so a link that
 * survives a crash here is a duplicate, never a loss. */
static void undeliver_one(const struct maildir *md, const char *mbox, const char *name)
{
	char path[NAME_BUF + 8];
	int nfd;

	if (snprintf(path, sizeof(path), "%s/new", mbox) >= (int)sizeof(path))
		return;
	nfd = openat(md->spool_fd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (nfd < 0)
		return;
	if (unlinkat(nfd, name, 0) == 0)
		fsync(nfd);
	close(nfd);
}

static bool seen_before(const struct sink_envelope *env, unsigned i)
{
	for (unsigned j = 0; j < i; j++)
		if (env->mailboxes[j] == env->mailboxes[i])
			return true;
	return false;
}

/* Takes back every link of a message (best effort) and its tmp file. */
static void undo_message(struct maildir *md, const struct sink_envelope *env, const char *name,
			 unsigned upto)
{
	for (unsigned j = 0; j < upto && j < env->nmailboxes; j++) {
		const char *mbox = recipients_mailbox(env->rcpts, env->mailboxes[j]);
		if (mbox && !seen_before(env, j))
			undeliver_one(md, mbox, name);
	}
	unlinkat(md->tmp_fd, name, 0);
}

int maildir_commit(struct maildir *md, struct sink_msg *m,
		   const struct sink_envelope *env)
{
	char name[NAME_BUF];
	unsigned i = 0;
	int fd, saved;
	bool linked = false;

	if (!md || m->fd < 0) {
		errno = EBADF;
		return -1;
	}
	if (build_name(md, m, name) < 0) {
		name[0] = '\0'; /* a cut name must never be unlinked */
		errno = ENAMETOOLONG;
		goto fail;
	}
	if (m->error) {
		errno = m->error;
		goto fail;
	}
	if (!env || env->fwd || env->nmailboxes == 0 || !env->rcpts || !env->mailboxes) {
		errno = EINVAL;
		goto fail;
	}
	if (fsync(m->fd) < 0)
		goto fail;
	fd = m->fd;
	m->fd = -1;
	/* Linux closes the fd even when close() reports EINTR. */
	if (close(fd) < 0 && errno != EINTR)
		goto fail;
	for (i = 0; i < env->nmailboxes; i++) {
		const char *mbox;

		linked = false;
		if (seen_before(env, i))
			continue;
		mbox = recipients_mailbox(env->rcpts, env->mailboxes[i]);
		if (!mbox) {
			errno = EINVAL;
			goto fail;
		}
		if (deliver_one(md, mbox, name, &linked, true) < 0)
			goto fail;
	}
	unlinkat(md->tmp_fd, name, 0);
	return 0;
fail:
	saved = errno;
	if (m->fd >= 0) {
		close(m->fd);
		m->fd = -1;
	}
	/* Mailbox i holds a link only when deliver_one() got that far; a cut
	 * name must never be unlinked. */
	if (name[0])
		undo_message(md, env, name, i + (linked ? 1u : 0u));
	errno = saved;
	return -1;
}

int maildir_tmp_dir(const struct maildir *md)
{
	return md ? md->tmp_fd : -1;
}

int maildir_tmp_name(const struct maildir *md, const struct sink_msg *m, char *buf, size_t len)
{
	char name[NAME_BUF];

	if (!md || m->fd < 0 || build_name(md, m, name) < 0 || strlen(name) >= len)
		return -1;
	memcpy(buf, name, strlen(name) + 1);
	return 0;
}

void maildir_abort(struct maildir *md, struct sink_msg *m)
{
	char name[NAME_BUF];
	int saved = errno;

	if (m->fd < 0)
		return;
	close(m->fd);
	m->fd = -1;
	if (md && build_name(md, m, name) == 0)
		unlinkat(md->tmp_fd, name, 0);
	errno = saved;
}

static void close_message(struct sink_msg *m)
{
	if (m->fd >= 0) {
		close(m->fd);
		m->fd = -1;
	}
}

/* Ends the round for every message still good in it: each loses its tmp
 * file, a failed one also its open file, its forwarding (staged or
 * linked) and, if the round got that far, its links. */
static void end_round(struct maildir *md, struct sink_msg *const *msgs,
		      const struct sink_envelope *envs, unsigned n, int *results, bool failed,
		      bool linked)
{
	char name[NAME_BUF];

	for (unsigned k = 0; k < n; k++) {
		if (results[k] != 0)
			continue;
		build_name(md, msgs[k], name);
		if (failed) {
			close_message(msgs[k]);
			results[k] = -1;
			if (envs[k].fwd)
				envs[k].fwd->undo(envs[k].fwd_arg);
		}
		undo_message(md, &envs[k], name, failed && linked ? envs[k].nmailboxes : 0);
	}
}

/* A message of the round that cannot take part (no file, a write error,
 * a bad envelope, its queue entry refused): out of it, nothing left. */
static bool admit(struct maildir *md, struct sink_msg *m, const struct sink_envelope *env, int fwd_dir)
{
	char name[NAME_BUF];

	if (m->fd < 0 || build_name(md, m, name) < 0) {
		close_message(m);
		return false;
	}
	if (m->error || (env->nmailboxes == 0 && !env->fwd) || (env->nmailboxes && (!env->rcpts || !env->mailboxes)) ||
	    (env->fwd && (fwd_dir < 0 || env->fwd->stage(env->fwd_arg) != 0))) {
		close_message(m);
		unlinkat(md->tmp_fd, name, 0);
		return false;
	}
	return true;
}

/* After the first sync: the message's links into its mailboxes and the
 * queue, none synced yet. 0, or -1 with every link of it taken back. */
static int link_message(struct maildir *md, struct sink_msg *m, const struct sink_envelope *env)
{
	char name[NAME_BUF];
	unsigned i;
	bool linked = false;

	build_name(md, m, name);
	close(m->fd);
	m->fd = -1;
	for (i = 0; i < env->nmailboxes; i++) {
		const char *mbox;
		if (seen_before(env, i))
			continue;
		mbox = recipients_mailbox(env->rcpts, env->mailboxes[i]);
		if (!mbox || deliver_one(md, mbox, name, &linked, false) < 0)
			break;
	}
	if (i < env->nmailboxes || (env->fwd && env->fwd->link(env->fwd_arg, md->tmp_fd, name) != 0)) {
		if (env->fwd)
			env->fwd->undo(env->fwd_arg);
		undo_message(md, env, name, i < env->nmailboxes ? i + (linked ? 1u : 0u) : env->nmailboxes);
		return -1;
	}
	return 0;
}

bool maildir_commit_batch(struct maildir *md, struct sink_msg *const *msgs,
			  const struct sink_envelope *envs, unsigned n, int *results, int fwd_dir)
{
	unsigned live = 0;
	bool fwd = false, local = false, synced;
	int fs_fd;

	if (n == 1 && !envs[0].fwd) {
		results[0] = maildir_commit(md, msgs[0], &envs[0]);
		return false;
	}
	for (unsigned k = 0; k < n; k++) {
		results[k] = admit(md, msgs[k], &envs[k], fwd_dir) ? 0 : -1;
		if (results[k] == 0) {
			live++;
			fwd |= envs[k].fwd != NULL;
		}
	}
	if (live == 0)
		return false;
	/* Any descriptor of the file system serves syncfs(); the queue's,
	 * when the round forwards, so a failure there is the queue's. */
	fs_fd = fwd ? fwd_dir : md->tmp_fd;
	/* One sync of the file system makes every file of the round durable
	 * (data and staged envelopes) at the cost of one journal commit
	 * instead of one per file. */
	if (syncfs(fs_fd) < 0) {
		end_round(md, msgs, envs, n, results, true, false);
		return false;
	}
	for (unsigned k = 0; k < n; k++) {
		if (results[k] != 0)
			continue;
		results[k] = link_message(md, msgs[k], &envs[k]);
		local |= results[k] == 0 && envs[k].nmailboxes > 0;
	}
	/* The second sync makes the round's new entries durable: when they
	 * are all in the queue's directory, its fsync does (cheaper than
	 * syncing the file system, which waits for every other writer too). */
	synced = (local || !fwd ? syncfs(fs_fd) : fsync(fwd_dir)) == 0;
	end_round(md, msgs, envs, n, results, !synced, true);
	return synced;
}
