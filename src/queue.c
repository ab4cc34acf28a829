/* queue: see queue.h (the envelope's text: queue_env.c). */
#include "queue.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"

#define NAME_BUF (QUEUE_ID_MAX + 8) /* "<id>.env" */

enum { QE_USED = 1, QE_BUSY = 2, QE_LIVE = 4, QE_DEFERRED = 8 /* an attempt deferred it */,
       QE_FLUSHED = 16 /* queue_flush(): the recipients' own times are overridden once */,
       QE_STAGED = 32 /* queue_stage(): its envelope is in tmp/ until queue_link() */ };

struct queue_entry {
	char id[QUEUE_ID_MAX];
	uint32_t next;     /* the earliest next attempt of a pending recipient */
	uint32_t accepted;
	uint32_t hop;      /* queue_hop_hash() of that recipient's next hop */
	uint32_t idh;      /* queue_hop_hash() of the id: queue_find() at each add compares it first */
	uint8_t flags;     /* QE_* */
	uint8_t grp;       /* its group (below), while attemptable */
};
_Static_assert(sizeof(struct queue_entry) <= 44, "limits.h and docs/gateway.md count 44 octets an entry");

/* The attemptable entries (used, not busy) grouped by next hop, so that
 * the scheduler's two questions -- an entry due now? when is the next
 * attempt? -- cost one look per group, not one per entry, whenever no
 * group can answer: a next hop down or at its limit with thousands
 * queued for it asks them at every accept (docs/benchmarks.md,
 * "Forwarding"). A group counts its entries and keeps their earliest
 * next attempt while it is known: an entry that leaves the group with
 * that time makes it unknown until queue_next_time_match() scans for
 * it. Next hops beyond QUEUE_HOP_GROUPS share the last group, whose
 * entries are asked about one by one. The answers are the full scan's
 * (host-tests/unit/test_queue.c holds the two against each other). */
struct queue_group {
	uint32_t hop, n, min;
	bool known;
};
#define QG_SHARED QUEUE_HOP_GROUPS

struct queue {
	int dir_fd, tmp_fd;
	DIR *scan;          /* the recovery's directory stream, while recovering */
	unsigned max, count, nlive, overflow;
	unsigned ndeferred; /* entries with QE_DEFERRED: stats' queue_deferred */
	bool dirty;         /* a removal not yet synced (queue_sync) */
	unsigned free_at;   /* where the search for a free entry starts */
	struct queue_group g[QUEUE_HOP_GROUPS + 1];
	char scratch[QUEUE_ENV_MAX];
	struct queue_entry e[];
};

/* ---- names ---- */

static void name_of(char *buf, const char *id, const char *ext)
{
	snprintf(buf, NAME_BUF, "%s.%s", id, ext);
}

/* ---- the envelope file ---- */

/* Reads dir_fd/name whole into buf (NUL after it). The length, or -1. */
static ssize_t read_env(int dir_fd, const char *name, char *buf, size_t buflen)
{
	int fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	size_t got = 0;

	if (fd < 0)
		return -1;
	for (;;) {
		ssize_t n;

		if (got + 1 >= buflen) {
			close(fd);
			errno = E2BIG;
			return -1;
		}
		n = read(fd, buf + got, buflen - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;

			close(fd);
			errno = e;
			return -1;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	buf[got] = '\0';
	return (ssize_t)got;
}

/* A pending recipient has been tried: the message waits for a retry. */
static bool env_deferred(const struct queue_env *env)
{
	for (unsigned i = 0; i < env->nrcpt; i++)
		if (env->rcpt[i].state == QR_PENDING && env->rcpt[i].attempts > 0)
			return true;
	return false;
}

static void set_deferred(struct queue *q, int i, bool on)
{
	bool was = (q->e[i].flags & QE_DEFERRED) != 0;
	if (was == on)
		return;
	q->e[i].flags ^= QE_DEFERRED;
	if (on)
		q->ndeferred++;
	else
		q->ndeferred--;
}

uint32_t queue_hop_hash(const char *name)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (; *name; name++)
		h = (h ^ (uint8_t)*name) * 16777619u;
	return h;
}

/* The earliest next attempt of a pending recipient (UINT32_MAX: none),
 * and in *hop the hash of its next hop (the first such recipient's). */
static uint32_t env_next(const struct queue_env *env, uint32_t *hop)
{
	uint32_t t = UINT32_MAX;
	unsigned at = 0;

	for (unsigned i = 0; i < env->nrcpt; i++)
		if (env->rcpt[i].state == QR_PENDING && env->rcpt[i].next < t) {
			t = env->rcpt[i].next;
			at = i;
		}
	*hop = t == UINT32_MAX ? 0 : queue_hop_hash(env->rcpt[at].relay);
	return t;
}

/* tmp/<id>.env with the text in scratch, fsynced if sync. 0, or -1 with
 * errno (nothing left in tmp/). */
static int env_write_tmp(struct queue *q, const char *name, size_t len, bool sync)
{
	int fd, e;

	fd = openat(q->tmp_fd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -1;
	if (fd_write_all(fd, q->scratch, len) < 0 || (sync && fsync(fd) < 0)) {
		e = errno;
		close(fd);
		unlinkat(q->tmp_fd, name, 0);
		errno = e;
		return -1;
	}
	if (close(fd) < 0) {
		e = errno;
		unlinkat(q->tmp_fd, name, 0);
		errno = e;
		return -1;
	}
	return 0;
}

/* tmp/<id>.env with the text in scratch, fsynced, renamed over <id>.env,
 * queue/ fsynced. 0, or -1 with errno (tmp/ left clean; when only the
 * final directory sync failed, the new envelope is in place). */
static int env_commit(struct queue *q, const char *id, size_t len)
{
	char name[NAME_BUF];
	int e;

	name_of(name, id, "env");
	if (env_write_tmp(q, name, len, true) < 0)
		return -1;
	if (renameat(q->tmp_fd, name, q->dir_fd, name) < 0) {
		e = errno;
		unlinkat(q->tmp_fd, name, 0);
		errno = e;
		return -1;
	}
	return fsync(q->dir_fd);
}

/* ---- the table ---- */

static int take_entry(struct queue *q)
{
	for (unsigned k = 0; k < q->max; k++) {
		unsigned i = (q->free_at + k) % q->max;

		if (!(q->e[i].flags & QE_USED)) {
			q->free_at = (i + 1) % q->max;
			return (int)i;
		}
	}
	return -1;
}

static bool attemptable(const struct queue_entry *e)
{
	return (e->flags & (QE_USED | QE_BUSY)) == QE_USED;
}

/* Entry i becomes attemptable: into its hop's group, a free one, or the
 * shared one. */
static void grp_join(struct queue *q, int i)
{
	struct queue_entry *e = &q->e[i];
	struct queue_group *g;
	unsigned k, free_k = QG_SHARED;

	for (k = 0; k < QUEUE_HOP_GROUPS; k++) {
		if (q->g[k].n && q->g[k].hop == e->hop)
			break;
		if (!q->g[k].n && free_k == QG_SHARED)
			free_k = k;
	}
	if (k == QUEUE_HOP_GROUPS)
		k = free_k;
	g = &q->g[k];
	if (g->n == 0) {
		g->hop = e->hop;
		g->min = UINT32_MAX;
		g->known = true;
	}
	g->n++;
	if (e->next < g->min)
		g->min = e->next; /* an unknown minimum stays unknown: min is only a bound then */
	e->grp = (uint8_t)k;
}

/* Entry i stops being attemptable (busy, changed or gone). */
static void grp_leave(struct queue *q, int i)
{
	struct queue_group *g = &q->g[q->e[i].grp];

	g->n--;
	if (q->e[i].next <= g->min)
		g->known = false;
}

/* Sets entry idx's next attempt, hop and busy flag, keeping the groups
 * right. */
static void set_entry(struct queue *q, int idx, uint32_t next, uint32_t hop, bool busy)
{
	struct queue_entry *e = &q->e[idx];

	if (attemptable(e))
		grp_leave(q, idx);
	e->next = next;
	e->hop = hop;
	if (busy)
		e->flags |= QE_BUSY;
	else
		e->flags &= (uint8_t)~QE_BUSY;
	if (attemptable(e))
		grp_join(q, idx);
}

static void put_entry(struct queue *q, int i, const char *id, uint32_t accepted, uint32_t next, uint32_t hop,
		      uint8_t flags)
{
	struct queue_entry *e = &q->e[i];

	memset(e->id, 0, sizeof e->id);
	memcpy(e->id, id, strlen(id));
	e->idh = queue_hop_hash(id);
	e->accepted = accepted;
	e->next = next;
	e->hop = hop;
	e->flags = (uint8_t)(QE_USED | flags);
	q->count++;
	if (flags & QE_LIVE)
		q->nlive++;
	if (attemptable(e))
		grp_join(q, i);
}

static void drop_entry(struct queue *q, int i)
{
	if (attemptable(&q->e[i]))
		grp_leave(q, i);
	if (q->e[i].flags & QE_LIVE)
		q->nlive--;
	set_deferred(q, i, false);
	q->e[i].flags = 0;
	q->count--;
}

static bool valid_idx(const struct queue *q, int i)
{
	return i >= 0 && (unsigned)i < q->max && (q->e[i].flags & QE_USED);
}

struct queue *queue_open(const char *dir, unsigned max, char *err, size_t errlen)
{
	struct queue *q;
	const char *what = "malloc";
	int fd;

	if (err && errlen)
		err[0] = '\0';
	if (max == 0 || max > (1u << 24)) {
		errno = EINVAL;
		what = "max_queued";
		q = NULL;
		goto fail;
	}
	q = calloc(1, sizeof *q + (size_t)max * sizeof q->e[0]);
	if (!q)
		goto fail;
	q->dir_fd = q->tmp_fd = -1;
	q->max = max;
	what = "mkdir";
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		goto fail;
	what = "open";
	q->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (q->dir_fd < 0)
		goto fail;
	what = "mkdir tmp";
	if (mkdirat(q->dir_fd, "tmp", 0700) < 0 && errno != EEXIST)
		goto fail;
	what = "open tmp";
	q->tmp_fd = openat(q->dir_fd, "tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (q->tmp_fd < 0)
		goto fail;
	what = "clean tmp";
	if (dir_remove_files(q->tmp_fd) < 0)
		goto fail;
	what = "scan";
	fd = dup(q->dir_fd);
	if (fd < 0)
		goto fail;
	q->scan = fdopendir(fd);
	if (!q->scan) {
		close(fd);
		goto fail;
	}
	return q;
fail:
	if (err && errlen)
		snprintf(err, errlen, "%s: %s: %s", dir, what, strerror(errno));
	queue_close(q);
	return NULL;
}

void queue_close(struct queue *q)
{
	if (!q)
		return;
	if (q->scan)
		closedir(q->scan);
	if (q->tmp_fd >= 0)
		close(q->tmp_fd);
	if (q->dir_fd >= 0)
		close(q->dir_fd);
	free(q);
}

bool queue_recovering(const struct queue *q)
{
	return q->scan != NULL;
}

unsigned queue_count(const struct queue *q)
{
	return q->count;
}

bool queue_full(const struct queue *q)
{
	return q->count >= q->max;
}

unsigned queue_deferred(const struct queue *q)
{
	return q->ndeferred;
}

unsigned queue_overflow(const struct queue *q)
{
	return q->overflow;
}

/* True when the name is "<valid id>.<ext>"; the id into id. */
static bool split_name(const char *name, char *id, const char **ext)
{
	const char *dot = strrchr(name, '.');
	size_t n;

	if (!dot || (n = (size_t)(dot - name)) == 0 || n >= QUEUE_ID_MAX)
		return false;
	memcpy(id, name, n);
	id[n] = '\0';
	*ext = dot + 1;
	return queue_id_ok(id);
}

static bool is_file(int dir_fd, const char *name)
{
	struct stat st;

	return fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
}

/* A live entry (added while recovering) with this id. */
static bool live_has(const struct queue *q, const char *id)
{
	int i;

	if (q->nlive == 0)
		return false;
	i = queue_find(q, id);
	return i >= 0 && (q->e[i].flags & QE_LIVE);
}

/* One directory entry seen by the recovery. */
static void recover_one(struct queue *q, const char *name)
{
	char id[QUEUE_ID_MAX], other[NAME_BUF];
	const char *ext;
	struct queue_env env;
	static struct queue_rcpt rcpt[QUEUE_RCPTS_MAX];
	ssize_t len;
	uint32_t next, hop;
	int i;

	if (!split_name(name, id, &ext) || !is_file(q->dir_fd, name))
		return; /* not ours: left alone */
	if (strcmp(ext, "msg") == 0) {
		/* Data without an envelope: never answered 250, or the
		 * second half of a removal. */
		name_of(other, id, "env");
		if (!is_file(q->dir_fd, other))
			unlinkat(q->dir_fd, name, 0);
		return;
	}
	if (strcmp(ext, "env") != 0 || live_has(q, id))
		return;
	name_of(other, id, "msg");
	if (!is_file(q->dir_fd, other)) {
		/* An envelope without data: its directory sync never
		 * happened, so it was never answered 250. */
		unlinkat(q->dir_fd, name, 0);
		return;
	}
	len = read_env(q->dir_fd, name, q->scratch, sizeof q->scratch);
	if (len == 0) {
		/* Renamed before its data reached the disk: never answered
		 * 250. The staged add syncs the envelope before its rename;
		 * a queue written by an earlier version (which renamed first,
		 * then synced the file system) or a file system that does
		 * not keep that order can still leave one. */
		unlinkat(q->dir_fd, name, 0);
		unlinkat(q->dir_fd, other, 0);
		q->dirty = true;
		return;
	}
	if (len < 0 || queue_env_parse(q->scratch, (size_t)len, &env, rcpt, QUEUE_RCPTS_MAX) < 0 ||
	    strcmp(env.id, id) != 0) {
		/* Kept for the operator (`tarpitd queue` shows the file
		 * system's truth); never delivered, never deleted here. */
		q->overflow++;
		return;
	}
	next = env_next(&env, &hop);
	if (next == UINT32_MAX) {
		/* Nothing pending: a removal the crash cut short. */
		unlinkat(q->dir_fd, name, 0);
		unlinkat(q->dir_fd, other, 0);
		fsync(q->dir_fd);
		return;
	}
	i = take_entry(q);
	if (i < 0) {
		q->overflow++;
		return;
	}
	put_entry(q, i, id, env.accepted, next, hop, 0);
	set_deferred(q, i, env_deferred(&env));
}

int queue_recover_step(struct queue *q)
{
	if (!q->scan)
		return 0;
	for (unsigned k = 0; k < QUEUE_RECOVER_STEP; k++) {
		struct dirent *de;

		errno = 0;
		de = readdir(q->scan);
		if (!de) {
			int e = errno;

			closedir(q->scan);
			q->scan = NULL;
			/* Entries added meanwhile are ordinary ones now. */
			for (unsigned i = 0; i < q->max; i++)
				q->e[i].flags &= (uint8_t)~QE_LIVE;
			q->nlive = 0;
			if (e) {
				errno = e;
				return -1;
			}
			return 0;
		}
		if (de->d_name[0] != '.')
			recover_one(q, de->d_name);
	}
	return 1;
}

/* The checks of a new entry, a free index for it and its envelope's text
 * in scratch (*len octets): the index, or -1 with errno. */
static int prepare(struct queue *q, const struct queue_env *env, size_t *len)
{
	int i;

	if (!env || !queue_env_ok(env)) {
		errno = EINVAL;
		return -1;
	}
	if (queue_env_bound(env) > QUEUE_ENV_MAX) {
		errno = E2BIG;
		return -1;
	}
	if (queue_find(q, env->id) >= 0) {
		errno = EEXIST;
		return -1;
	}
	i = take_entry(q);
	if (i < 0) {
		errno = ENOSPC;
		return -1;
	}
	*len = queue_env_format(q->scratch, sizeof q->scratch, env);
	if (*len == 0) {
		errno = E2BIG;
		return -1;
	}
	return i;
}

static void add_entry(struct queue *q, int i, const struct queue_env *env, uint8_t flags)
{
	uint32_t hop, next = env_next(env, &hop);

	put_entry(q, i, env->id, env->accepted, next, hop, (uint8_t)(flags | (q->scan ? QE_LIVE : 0)));
}

int queue_add(struct queue *q, int dirfd, const char *name, const struct queue_env *env)
{
	char msg[NAME_BUF], envn[NAME_BUF];
	size_t len;
	int i, e;

	if (!name) {
		errno = EINVAL;
		return -1;
	}
	i = prepare(q, env, &len);
	if (i < 0)
		return -1;
	name_of(msg, env->id, "msg");
	name_of(envn, env->id, "env");
	if (linkat(dirfd, name, q->dir_fd, msg, 0) < 0)
		return -1;
	if (env_commit(q, env->id, len) < 0) {
		/* Not durable: nothing of it may stay, or a message the
		 * client was refused (and will resend) would go out too. */
		e = errno;
		unlinkat(q->dir_fd, envn, 0);
		unlinkat(q->dir_fd, msg, 0);
		errno = e;
		return -1;
	}
	add_entry(q, i, env, 0);
	return i;
}

int queue_stage(struct queue *q, const struct queue_env *env)
{
	char envn[NAME_BUF];
	size_t len;
	int i = prepare(q, env, &len);

	if (i < 0)
		return -1;
	name_of(envn, env->id, "env");
	if (env_write_tmp(q, envn, len, false) < 0)
		return -1;
	/* Busy: no attempt may start on it, and queue_find() sees the id. */
	add_entry(q, i, env, QE_STAGED | QE_BUSY);
	return i;
}

int queue_link(struct queue *q, int idx, int dirfd, const char *name)
{
	char n[NAME_BUF];

	if (!valid_idx(q, idx) || !(q->e[idx].flags & QE_STAGED) || !name) {
		errno = EINVAL;
		return -1;
	}
	name_of(n, q->e[idx].id, "msg");
	if (linkat(dirfd, name, q->dir_fd, n, 0) < 0)
		return -1;
	/* The commit point, once the caller has synced queue/. */
	name_of(n, q->e[idx].id, "env");
	if (renameat(q->tmp_fd, n, q->dir_fd, n) < 0)
		return -1;
	q->e[idx].flags &= (uint8_t)~QE_STAGED;
	set_entry(q, idx, q->e[idx].next, q->e[idx].hop, false);
	return 0;
}

int queue_dir_fd(const struct queue *q)
{
	return q->dir_fd;
}

void queue_abandon(struct queue *q, int idx)
{
	char n[NAME_BUF];
	bool gone = false;

	if (!valid_idx(q, idx))
		return;
	name_of(n, q->e[idx].id, "env");
	unlinkat(q->tmp_fd, n, 0);
	/* The envelope first, as in a removal: it is the commit point. */
	gone |= unlinkat(q->dir_fd, n, 0) == 0;
	name_of(n, q->e[idx].id, "msg");
	gone |= unlinkat(q->dir_fd, n, 0) == 0;
	drop_entry(q, idx);
	/* At once: the client is told 452, so a restart must not send it. */
	if (gone)
		fsync(q->dir_fd);
}

/* Which groups may hold an answer: want[k] for each group with entries
 * that skip() does not pass over (asked once per group; the shared
 * group's entries are asked one by one) and whose earliest next attempt
 * may be by due_by (UINT32_MAX: any time). False when none may. */
static bool grp_want(const struct queue *q, queue_skip_fn skip, void *ctx, uint32_t due_by,
		     bool want[QUEUE_HOP_GROUPS + 1])
{
	bool any = false;

	for (unsigned k = 0; k <= QG_SHARED; k++) {
		const struct queue_group *g = &q->g[k];

		want[k] = g->n && (!g->known || g->min <= due_by) &&
			  !(k < QG_SHARED && skip && skip(ctx, g->hop));
		any |= want[k];
	}
	return any;
}

/* Entry e is attemptable and one of the question's. */
static bool asked(const struct queue_entry *e, const bool want[], queue_skip_fn skip, void *ctx)
{
	return attemptable(e) && want[e->grp] && !(e->grp == QG_SHARED && skip && skip(ctx, e->hop));
}

int queue_due_match(const struct queue *q, uint32_t now, queue_skip_fn skip, void *ctx)
{
	bool want[QUEUE_HOP_GROUPS + 1];
	int best = -1;

	if (!grp_want(q, skip, ctx, now, want))
		return -1;
	for (unsigned i = 0; i < q->max; i++) {
		const struct queue_entry *e = &q->e[i];

		if (e->next > now || !asked(e, want, skip, ctx))
			continue;
		if (best < 0 || e->accepted < q->e[best].accepted ||
		    (e->accepted == q->e[best].accepted && strcmp(e->id, q->e[best].id) < 0))
			best = (int)i;
	}
	return best;
}

int queue_due(const struct queue *q, uint32_t now)
{
	return queue_due_match(q, now, NULL, NULL);
}

uint32_t queue_next_time_match(struct queue *q, queue_skip_fn skip, void *ctx)
{
	bool want[QUEUE_HOP_GROUPS + 1], scan = false;
	uint32_t t = UINT32_MAX, min[QUEUE_HOP_GROUPS + 1];

	if (!grp_want(q, skip, ctx, UINT32_MAX, want))
		return t;
	for (unsigned k = 0; k <= QG_SHARED; k++) {
		min[k] = UINT32_MAX;
		if (!want[k])
			continue;
		if (q->g[k].known && (k < QG_SHARED || !skip)) {
			if (q->g[k].min < t)
				t = q->g[k].min;
		} else {
			scan = true;
		}
	}
	if (!scan)
		return t;
	/* One pass: the minimum of each group that lost it, and the shared
	 * group's entries one by one. */
	for (unsigned i = 0; i < q->max; i++) {
		const struct queue_entry *e = &q->e[i];

		if (!attemptable(e))
			continue;
		if (!q->g[e->grp].known && e->next < min[e->grp])
			min[e->grp] = e->next;
		if (e->grp == QG_SHARED && e->next < t && asked(e, want, skip, ctx))
			t = e->next;
	}
	for (unsigned k = 0; k <= QG_SHARED; k++) {
		if (q->g[k].known)
			continue;
		q->g[k].min = min[k];
		q->g[k].known = true;
		if (want[k] && (k < QG_SHARED || !skip) && min[k] < t)
			t = min[k];
	}
	return t;
}

uint32_t queue_next_time(struct queue *q)
{
	return queue_next_time_match(q, NULL, NULL);
}

void queue_set_next(struct queue *q, int idx, uint32_t next)
{
	if (valid_idx(q, idx))
		set_entry(q, idx, next, q->e[idx].hop, q->e[idx].flags & QE_BUSY);
}

void queue_set_busy(struct queue *q, int idx, bool busy)
{
	if (valid_idx(q, idx))
		set_entry(q, idx, q->e[idx].next, q->e[idx].hop, busy);
}

bool queue_busy(const struct queue *q, int idx)
{
	return valid_idx(q, idx) && (q->e[idx].flags & QE_BUSY);
}

void queue_flush(struct queue *q, uint32_t now)
{
	for (unsigned i = 0; i < q->max; i++)
		if ((q->e[i].flags & (QE_USED | QE_BUSY)) == QE_USED) {
			/* The table's time alone is not enough: each recipient
			 * in the envelope keeps its own next attempt. */
			q->e[i].flags |= QE_FLUSHED;
			if (q->e[i].next > now)
				set_entry(q, (int)i, now, q->e[i].hop, false);
		}
}

bool queue_take_flush(struct queue *q, int idx)
{
	bool f;

	if (!valid_idx(q, idx))
		return false;
	f = (q->e[idx].flags & QE_FLUSHED) != 0;
	q->e[idx].flags &= (uint8_t)~QE_FLUSHED;
	return f;
}

const char *queue_id(const struct queue *q, int idx)
{
	return valid_idx(q, idx) ? q->e[idx].id : NULL;
}

int queue_find(const struct queue *q, const char *id)
{
	uint32_t h = queue_hop_hash(id);

	for (unsigned i = 0; i < q->max; i++)
		if (q->e[i].idh == h && (q->e[i].flags & QE_USED) && strcmp(q->e[i].id, id) == 0)
			return (int)i;
	return -1;
}

int queue_iter(const struct queue *q, int from)
{
	for (unsigned i = from < 0 ? 0 : (unsigned)from; i < q->max; i++)
		if (q->e[i].flags & QE_USED)
			return (int)i;
	return -1;
}

int queue_load(const struct queue *q, int idx, struct queue_env *env, char *buf, size_t buflen,
	       struct queue_rcpt *rcpt, unsigned maxrcpt)
{
	char name[NAME_BUF];
	ssize_t len;

	if (!valid_idx(q, idx)) {
		errno = EINVAL;
		return -1;
	}
	name_of(name, q->e[idx].id, "env");
	len = read_env(q->dir_fd, name, buf, buflen);
	if (len < 0)
		return -1;
	if (queue_env_parse(buf, (size_t)len, env, rcpt, maxrcpt) < 0 || strcmp(env->id, q->e[idx].id) != 0) {
		errno = EINVAL;
		return -1;
	}
	return 0;
}

int queue_read(int dir_fd, const char *name, struct queue_env *env, char *buf, size_t buflen,
	       struct queue_rcpt *rcpt, unsigned maxrcpt)
{
	char id[QUEUE_ID_MAX];
	const char *ext;
	ssize_t len;

	if (!split_name(name, id, &ext) || strcmp(ext, "env") != 0) {
		errno = EINVAL;
		return -1;
	}
	len = read_env(dir_fd, name, buf, buflen);
	if (len < 0)
		return -1;
	if (queue_env_parse(buf, (size_t)len, env, rcpt, maxrcpt) < 0 || strcmp(env->id, id) != 0) {
		errno = EINVAL;
		return -1;
	}
	return 0;
}

int queue_open_data(const struct queue *q, int idx)
{
	char name[NAME_BUF];

	if (!valid_idx(q, idx)) {
		errno = EINVAL;
		return -1;
	}
	name_of(name, q->e[idx].id, "msg");
	return openat(q->dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
}

int queue_update(struct queue *q, int idx, const struct queue_env *env)
{
	uint32_t next, hop;
	size_t len;

	if (!valid_idx(q, idx) || !env || !queue_env_ok(env) || strcmp(env->id, q->e[idx].id) != 0) {
		errno = EINVAL;
		return -1;
	}
	next = env_next(env, &hop);
	if (next == UINT32_MAX)
		return queue_remove(q, idx) < 0 ? -1 : 1;
	len = queue_env_format(q->scratch, sizeof q->scratch, env);
	if (len == 0) {
		errno = E2BIG;
		return -1;
	}
	if (env_commit(q, env->id, len) < 0)
		return -1;
	set_entry(q, idx, next, hop, q->e[idx].flags & QE_BUSY);
	set_deferred(q, idx, env_deferred(env));
	return 0;
}

int queue_remove(struct queue *q, int idx)
{
	char name[NAME_BUF];

	if (!valid_idx(q, idx)) {
		errno = EINVAL;
		return -1;
	}
	/* The envelope first: it is the commit point of the removal. */
	name_of(name, q->e[idx].id, "env");
	if (unlinkat(q->dir_fd, name, 0) < 0 && errno != ENOENT)
		return -1;
	name_of(name, q->e[idx].id, "msg");
	unlinkat(q->dir_fd, name, 0);
	drop_entry(q, idx);
	q->dirty = true;
	return 0;
}

void queue_synced(struct queue *q)
{
	q->dirty = false;
}

int queue_sync(struct queue *q)
{
	if (!q->dirty)
		return 0;
	if (fsync(q->dir_fd) != 0)
		return -1; /* still to do: the next call tries again */
	q->dirty = false;
	return 0;
}

uint32_t queue_retry_delay(uint32_t attempts, uint32_t retry_min, uint32_t retry_max, uint32_t rnd)
{
	uint32_t d = retry_min ? retry_min : 1;

	if (retry_max < d)
		retry_max = d;
	for (uint32_t k = 1; k < attempts && d < retry_max; k++)
		d = d > retry_max / 2 ? retry_max : d * 2;
	if (d > retry_max)
		d = retry_max;
	d -= rnd % (d / 8 + 1);
	return d ? d : 1;
}
