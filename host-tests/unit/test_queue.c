/* Unit tests for src/queue.c in a temporary directory: add, load, update
 * and removal; recovery after a restart; the crash points (a process
 * stopped between the steps of an add, an update and a removal leaves
 * exactly the files that step had made, which are then recovered); the
 * table bound; recovery in steps with adds in between; the retry
 * schedule's bounds. The envelope's text alone: test_queue_env.c. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "queue.h"

static char base[64], qdir[128], src[128];
static int src_fd;
static char buf[QUEUE_ENV_MAX];
static struct queue_rcpt lr[QUEUE_RCPTS_MAX];

static void write_file(int dfd, const char *name, const char *text)
{
	int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	CHECK(fd >= 0);
	if (fd < 0) {
		fprintf(stderr, "write_file %s: %s\n", name, strerror(errno));
		return;
	}
	CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	fsync(fd);
	close(fd);
}

static bool exists(const char *rel)
{
	char p[300];
	struct stat st;

	snprintf(p, sizeof p, "%s/%s", qdir, rel);
	return stat(p, &st) == 0;
}

static int entries(const char *rel)
{
	char p[300];
	DIR *d;
	struct dirent *e;
	int n = 0;

	snprintf(p, sizeof p, "%s/%s", qdir, rel);
	d = opendir(p);
	if (!d)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.' && strcmp(e->d_name, "tmp") != 0)
			n++;
	closedir(d);
	return n;
}

static struct queue *reopen(struct queue *q, unsigned max)
{
	char err[256];
	int steps = 0, r;

	queue_close(q);
	q = queue_open(qdir, max, err, sizeof err);
	CHECK(q != NULL);
	if (!q) {
		fprintf(stderr, "%s\n", err);
		exit(1);
	}
	while ((r = queue_recover_step(q)) == 1)
		steps++;
	CHECK(r == 0 && !queue_recovering(q));
	return q;
}

static struct queue_rcpt rc[3];
static struct queue_env env;

static void make_env(const char *id, uint32_t accepted, unsigned n)
{
	static const char *addr[] = { "alice@example.org", "bob smith@example.org", "carol@example.net" };

	memset(&env, 0, sizeof env);
	snprintf(env.id, sizeof env.id, "%s", id);
	env.sender = "sender@example.com";
	env.accepted = accepted;
	env.size = 42;
	env.flags = QUEUE_F_DSN_SENDER;
	env.nrcpt = n;
	env.rcpt = rc;
	for (unsigned i = 0; i < n; i++) {
		rc[i] = (struct queue_rcpt){ .relay = i == 2 ? "Default Frontend" : "Office", .addr = addr[i],
					     .reply = "", .next = accepted, .state = QR_PENDING };
	}
}

static int add(struct queue *q, const char *id, uint32_t accepted, unsigned n)
{
	char name[64];

	snprintf(name, sizeof name, "data-%s", id);
	write_file(src_fd, name, "Return-Path: <sender@example.com>\nSubject: hi\n\nbody\n");
	make_env(id, accepted, n);
	return queue_add(q, src_fd, name, &env);
}

static void test_basic(struct queue **qp)
{
	struct queue *q = *qp;
	struct queue_env le;
	int a, b, c, fd;
	char data[128];

	a = add(q, "A1", 1000, 3);
	b = add(q, "B2", 900, 1);
	c = add(q, "C3", 1100, 2);
	CHECK(a >= 0 && b >= 0 && c >= 0 && queue_count(q) == 3);
	CHECK(exists("A1.msg") && exists("A1.env") && entries("tmp") == 0);
	/* Earliest accepted first; nothing due before its time. */
	CHECK(queue_due(q, 899) == -1);
	CHECK(queue_due(q, 2000) == b);
	CHECK(queue_next_time(q) == 900);
	queue_set_busy(q, b, true);
	CHECK(queue_due(q, 2000) == a);
	queue_set_busy(q, b, false);
	CHECK(queue_find(q, "C3") == c && queue_find(q, "nope") == -1);
	CHECK_STR(queue_id(q, a), "A1");

	/* The same id twice, a bad id, no recipients: refused, nothing left. */
	CHECK(add(q, "A1", 1, 1) == -1 && errno == EEXIST);
	make_env("../x", 1, 1);
	CHECK(queue_add(q, src_fd, "data-A1", &env) == -1 && errno == EINVAL);
	CHECK(add(q, "D4", 1, 0) == -1 && errno == EINVAL);
	CHECK(entries(".") == 6);

	/* Load gives back what was added. */
	CHECK(queue_load(q, a, &le, buf, sizeof buf, lr, QUEUE_RCPTS_MAX) == 0);
	CHECK_STR(le.id, "A1");
	CHECK_STR(le.sender, "sender@example.com");
	CHECK(le.accepted == 1000 && le.size == 42 && le.flags == QUEUE_F_DSN_SENDER && le.nrcpt == 3);
	CHECK_STR(le.rcpt[1].addr, "bob smith@example.org");
	CHECK_STR(le.rcpt[2].relay, "Default Frontend");
	CHECK(le.rcpt[0].state == QR_PENDING && le.rcpt[0].attempts == 0 && le.rcpt[0].next == 1000);

	/* The data, as linked. */
	fd = queue_open_data(q, a);
	CHECK(fd >= 0);
	if (fd >= 0) {
		ssize_t n = read(fd, data, sizeof data - 1);

		data[n > 0 ? n : 0] = '\0';
		CHECK(strstr(data, "Subject: hi") != NULL);
		close(fd);
	}

	/* An attempt: alice sent, bob deferred with a reply full of
	 * octets the file must not hold raw, carol failed. */
	le.rcpt[0].state = QR_SENT;
	le.rcpt[1].attempts = 1;
	le.rcpt[1].next = 1060;
	le.rcpt[1].reply = "451 4.3.0 try\tlater 100%\r\nX-Injected: yes";
	le.rcpt[2].state = QR_FAILED;
	le.rcpt[2].reply = "550 5.1.1 no such user";
	CHECK(queue_deferred(q) == 0);
	CHECK(queue_update(q, a, &le) == 0);
	CHECK(queue_deferred(q) == 1); /* stats' queue_deferred */
	CHECK(entries("tmp") == 0);
	{
		FILE *f;
		char p[300], text[2048];
		size_t n;

		snprintf(p, sizeof p, "%s/A1.env", qdir);
		f = fopen(p, "r");
		CHECK(f != NULL);
		n = f ? fread(text, 1, sizeof text - 1, f) : 0;
		text[n] = '\0';
		if (f)
			fclose(f);
		CHECK(strstr(text, "X-Injected") == NULL || strstr(text, "\nX-Injected") == NULL);
		CHECK(strstr(text, "rcpt P 1 1060 Office bob%20smith@example.org 451%204.3.0%20try%09later%20100%25") !=
		      NULL);
	}
	CHECK(queue_load(q, a, &le, buf, sizeof buf, lr, QUEUE_RCPTS_MAX) == 0);
	CHECK_STR(le.rcpt[1].reply, "451 4.3.0 try\tlater 100%\r\nX-Injected: yes");
	CHECK(le.rcpt[0].state == QR_SENT && le.rcpt[2].state == QR_FAILED);
	CHECK(queue_due(q, 1059) == b); /* a waits for 1060 now */
	queue_remove(q, b);
	CHECK(queue_due(q, 1059) == -1 && queue_due(q, 1060) == a);

	/* The restart: what was queued is recovered with its next attempt. */
	q = reopen(q, 16);
	CHECK(queue_count(q) == 2);
	CHECK(queue_deferred(q) == 1); /* bob's attempt is on disk */
	a = queue_find(q, "A1");
	CHECK(a >= 0 && queue_due(q, 1059) == -1 && queue_due(q, 1060) == a);
	/* flush makes it due now, and says so once to the attempt (the
	 * envelope's recipients keep their own later times). */
	CHECK(!queue_take_flush(q, a));
	queue_flush(q, 500);
	CHECK(queue_due(q, 500) == a);
	CHECK(queue_take_flush(q, a) && !queue_take_flush(q, a));
	/* An entry in flight is not flagged: its attempt is under way. */
	queue_set_busy(q, a, true);
	queue_flush(q, 500);
	queue_set_busy(q, a, false);
	CHECK(!queue_take_flush(q, a) && !queue_take_flush(q, -1));

	/* Every recipient done: the update removes the message. */
	CHECK(queue_load(q, a, &le, buf, sizeof buf, lr, QUEUE_RCPTS_MAX) == 0);
	le.rcpt[1].state = QR_SENT;
	CHECK(queue_update(q, a, &le) == 1);
	CHECK(!exists("A1.env") && !exists("A1.msg") && queue_count(q) == 1);
	CHECK(queue_deferred(q) == 0);
	c = queue_find(q, "C3");
	CHECK(queue_remove(q, c) == 0 && queue_count(q) == 0 && entries(".") == 0);
	*qp = q;
}

/* The group commit's add (queue_stage, queue_link): the envelope waits
 * in tmp/ (the caller's sync makes it durable) and is no entry to
 * attempt; queue_link() puts both names in place, queue_abandon() takes
 * back either step. Nothing here syncs: the caller's round does. An
 * envelope that a crash left empty (a file system that lost its text, or
 * a queue of the version that renamed before syncing) is deleted with
 * its data. Removals are synced by queue_sync(), once, or not at all
 * after queue_synced(). */
static void test_staged(struct queue **qp)
{
	struct queue *q = *qp;
	int dfd = open(qdir, O_RDONLY | O_DIRECTORY), i, j;
	struct queue_env le;

	CHECK(dfd >= 0);
	CHECK(queue_count(q) == 0 && entries(".") == 0);
	write_file(src_fd, "data-S1", "Return-Path: <>\n\nbody\n");
	make_env("S1", 2000, 1);
	i = queue_stage(q, &env);
	CHECK(i >= 0 && exists("tmp/S1.env") && !exists("S1.env") && !exists("S1.msg"));
	/* Taken but not attemptable: counted, its id known, busy. */
	CHECK(queue_count(q) == 1 && queue_find(q, "S1") == i && queue_busy(q, i));
	CHECK(queue_due(q, 5000) == -1 && queue_next_time(q) == UINT32_MAX);
	CHECK(queue_stage(q, &env) == -1 && errno == EEXIST);
	CHECK(queue_link(q, i, src_fd, "data-S1") == 0);
	CHECK(exists("S1.env") && exists("S1.msg") && entries("tmp") == 0);
	CHECK(!queue_busy(q, i) && queue_due(q, 5000) == i);
	CHECK(queue_load(q, i, &le, buf, sizeof buf, lr, QUEUE_RCPTS_MAX) == 0 && !strcmp(le.id, "S1"));
	CHECK(queue_link(q, i, src_fd, "data-S1") == -1 && errno == EINVAL); /* not staged now */
	/* Abandoned after the link (the round's last sync failed). */
	queue_abandon(q, i);
	CHECK(!exists("S1.env") && !exists("S1.msg") && queue_count(q) == 0 && queue_find(q, "S1") < 0);
	/* Abandoned while staged (the round's first sync failed). */
	make_env("S4", 2000, 1);
	j = queue_stage(q, &env);
	CHECK(j >= 0 && exists("tmp/S4.env"));
	queue_abandon(q, j);
	CHECK(!exists("tmp/S4.env") && queue_count(q) == 0);
	/* A link that fails (no such data file) leaves what it made to
	 * queue_abandon(). */
	j = queue_stage(q, &env);
	CHECK(j >= 0 && queue_link(q, j, src_fd, "data-none") == -1 && errno == ENOENT);
	queue_abandon(q, j);
	CHECK(entries(".") == 0 && entries("tmp") == 0 && queue_count(q) == 0);
	/* A table that is full refuses the stage. */
	{
		char id[16];
		int k, n = 0;

		for (k = 0; k < 16; k++) {
			snprintf(id, sizeof id, "T%d", k);
			make_env(id, 2000, 1);
			n += queue_stage(q, &env) >= 0;
		}
		CHECK(n == 16 && queue_full(q));
		make_env("T99", 2000, 1);
		CHECK(queue_stage(q, &env) == -1 && errno == ENOSPC);
		while ((k = queue_iter(q, 0)) >= 0)
			queue_abandon(q, k);
		CHECK(queue_count(q) == 0 && entries("tmp") == 0);
	}
	/* Removals: one sync, none after the caller's own. */
	i = add(q, "S5", 2000, 1);
	CHECK(i >= 0 && queue_remove(q, i) == 0 && !exists("S5.env") && !exists("S5.msg"));
	CHECK(queue_sync(q) == 0 && queue_sync(q) == 0);
	/* The crash case. */
	write_file(dfd, "S2.msg", "data\n");
	write_file(dfd, "S2.env", "");
	write_file(dfd, "S3.msg", "data\n");
	write_file(dfd, "S3.env", "garbage\n"); /* not empty: kept for the operator */
	q = reopen(q, 16);
	CHECK(!exists("S2.env") && !exists("S2.msg"));
	CHECK(exists("S3.env") && exists("S3.msg") && queue_find(q, "S3") < 0 && queue_overflow(q) == 1);
	unlinkat(dfd, "S3.env", 0);
	unlinkat(dfd, "S3.msg", 0);
	q = reopen(q, 16);
	close(dfd);
	*qp = q;
}

/* Each crash point leaves the files the steps before it made. */
static void test_crash_points(struct queue **qp)
{
	struct queue *q = *qp;
	int dfd = open(qdir, O_RDONLY | O_DIRECTORY), tfd;
	struct queue_env le;
	int i;

	CHECK(dfd >= 0);
	tfd = openat(dfd, "tmp", O_RDONLY | O_DIRECTORY);
	CHECK(tfd >= 0);

	/* add, stopped after the link (no envelope yet): deleted. */
	write_file(dfd, "E1.msg", "data\n");
	/* add, stopped after the envelope was written in tmp/: deleted. */
	write_file(dfd, "E2.msg", "data\n");
	write_file(tfd, "E2.env", "tarpitd-queue 1\n");
	/* add, the two names persisted in the other order (the envelope
	 * without its data, before the directory sync): deleted. */
	write_file(dfd, "E3.env", "tarpitd-queue 1\nid E3\n");
	/* removal, stopped after the envelope's unlink: the data deleted. */
	write_file(dfd, "E4.msg", "data\n");
	/* a foreign file: left alone. */
	write_file(dfd, "README", "mine\n");
	/* removal, stopped before the envelope's unlink, all done: removed. */
	CHECK(add(q, "E5", 100, 2) >= 0);
	i = queue_find(q, "E5");
	CHECK(queue_load(q, i, &le, buf, sizeof buf, lr, QUEUE_RCPTS_MAX) == 0);
	/* update, stopped after the new envelope was written in tmp/ but
	 * before the rename: the old envelope stays in force. */
	CHECK(add(q, "E6", 100, 1) >= 0);
	write_file(tfd, "E6.env", "tarpitd-queue 1\nid E6\nhalf");
	{
		/* E5's recipients all done, written as an update would but
		 * the removal never ran. */
		char p[300];
		FILE *f;

		snprintf(p, sizeof p, "%s/E5.env", qdir);
		f = fopen(p, "w");
		CHECK(f != NULL);
		if (f) {
			fprintf(f, "tarpitd-queue 1\nid E5\naccepted 100\nsize 5\nflags 0\nsender \n"
				   "rcpt S 1 100 Office a@example.org \nrcpt F 1 100 Office b@example.org 550%%20no\nend 2\n");
			fclose(f);
		}
	}
	/* A cut envelope (no end line): kept on disk, not delivered. */
	write_file(dfd, "E7.msg", "data\n");
	write_file(dfd, "E7.env", "tarpitd-queue 1\nid E7\naccepted 100\nsize 5\nflags 0\nsender \n"
				  "rcpt P 0 100 Office a@example.org \n");
	q = reopen(q, 16);
	CHECK(!exists("E1.msg") && !exists("E2.msg") && !exists("tmp/E2.env") && !exists("E3.env"));
	CHECK(!exists("E4.msg") && exists("README"));
	CHECK(!exists("E5.env") && !exists("E5.msg"));
	CHECK(exists("E6.env") && exists("E6.msg") && !exists("tmp/E6.env"));
	CHECK(exists("E7.env") && exists("E7.msg") && queue_find(q, "E7") == -1 && queue_overflow(q) == 1);
	CHECK(queue_count(q) == 1 && (i = queue_find(q, "E6")) >= 0);
	CHECK(queue_load(q, i, &le, buf, sizeof buf, lr, QUEUE_RCPTS_MAX) == 0 && le.nrcpt == 1 &&
	      le.rcpt[0].state == QR_PENDING);
	queue_remove(q, i);
	unlinkat(dfd, "README", 0);
	unlinkat(dfd, "E7.env", 0);
	unlinkat(dfd, "E7.msg", 0);
	close(tfd);
	close(dfd);
	*qp = q;
}

static void test_bounds(struct queue **qp)
{
	struct queue *q = *qp;
	char err[256];
	int steps = 0, r;

	/* A full table refuses with ENOSPC, and leaves no file behind. */
	q = reopen(q, 2);
	CHECK(add(q, "F1", 1, 1) >= 0 && add(q, "F2", 2, 1) >= 0);
	CHECK(queue_full(q));
	CHECK(add(q, "F3", 3, 1) == -1 && errno == ENOSPC);
	CHECK(!exists("F3.msg") && !exists("F3.env"));
	/* An envelope that cannot be written (tmp/F9.env is a directory):
	 * the link made before it is removed again. */
	{
		char p[300];

		snprintf(p, sizeof p, "%s/tmp/F9.env", qdir);
		CHECK(mkdir(p, 0700) == 0);
		queue_remove(q, queue_find(q, "F2"));
		CHECK(add(q, "F9", 9, 1) == -1 && errno == EISDIR);
		CHECK(!exists("F9.msg") && !exists("F9.env") && queue_count(q) == 1);
		rmdir(p);
		CHECK(add(q, "F2", 2, 1) >= 0);
	}
	/* More on disk than the table holds: the rest is counted, kept. */
	q = reopen(q, 16);
	CHECK(add(q, "F3", 3, 1) >= 0);
	q = reopen(q, 2);
	CHECK(queue_count(q) == 2 && queue_overflow(q) == 1 && exists("F3.env"));
	q = reopen(q, 300);
	CHECK(queue_count(q) == 3);

	/* An envelope that could outgrow the buffer is refused up front. */
	{
		static struct queue_rcpt big[QUEUE_RCPTS_MAX];
		static char longaddr[ADDRESS_MAX];
		struct queue_env e = { .id = "G1", .sender = "", .nrcpt = QUEUE_RCPTS_MAX, .rcpt = big };

		memset(longaddr, 'x', sizeof longaddr - 1);
		for (unsigned i = 0; i < QUEUE_RCPTS_MAX; i++)
			big[i] = (struct queue_rcpt){ .relay = "Office", .addr = longaddr, .reply = "" };
		write_file(src_fd, "data-G1", "x\n");
		CHECK(queue_add(q, src_fd, "data-G1", &e) == -1 && errno == E2BIG);
		CHECK(!exists("G1.msg"));
	}

	/* 200 queued: recovered in steps of QUEUE_RECOVER_STEP entries, an
	 * add between the steps is counted once. */
	for (int k = 0; k < 197; k++) {
		char id[16];

		snprintf(id, sizeof id, "H%d", k);
		CHECK(add(q, id, (uint32_t)k, 1) >= 0);
	}
	queue_close(q);
	q = queue_open(qdir, 300, err, sizeof err);
	CHECK(q != NULL && queue_recovering(q));
	/* Added before the scan read the directory: the scan sees its
	 * envelope too, and must not count it again. */
	CHECK(add(q, "LIVE0", 5000, 1) >= 0);
	CHECK(queue_recover_step(q) == 1);
	CHECK(queue_count(q) <= QUEUE_RECOVER_STEP + 1);
	CHECK(add(q, "LIVE1", 5000, 1) >= 0);
	while ((r = queue_recover_step(q)) == 1)
		steps++;
	CHECK(r == 0 && steps >= 400 / QUEUE_RECOVER_STEP - 1);
	CHECK(queue_count(q) == 202);
	for (int i = queue_iter(q, 0); i >= 0; i = queue_iter(q, i + 1))
		queue_remove(q, i);
	CHECK(queue_count(q) == 0 && entries(".") == 0);
	*qp = q;
}

static void test_retry(void)
{
	/* retry_min 60 doubling to retry_max 3600: 60 120 240 ... 3600, each
	 * at most an eighth early, never late. */
	uint32_t want = 60;

	for (uint32_t a = 1; a < 40; a++) {
		uint32_t lo = UINT32_MAX, hi = 0;

		for (uint32_t r = 0; r < 2000; r += 7) {
			uint32_t d = queue_retry_delay(a, 60, 3600, r * 2654435761u);

			lo = d < lo ? d : lo;
			hi = d > hi ? d : hi;
		}
		CHECK(hi <= want && lo >= want - want / 8 && hi > lo);
		want = want * 2 > 3600 ? 3600 : want * 2;
	}
	CHECK(queue_retry_delay(0, 60, 3600, 0) == 60);
	CHECK(queue_retry_delay(UINT32_MAX, 60, 86400, 0) == 86400);
	CHECK(queue_retry_delay(5, 1, 1, 12345) == 1);
	CHECK(queue_retry_delay(3, 100, 50, 0) == 100); /* max below min: min */
	CHECK(queue_retry_delay(40, 3600, 86400u * 30, 0) <= 86400u * 30);
	CHECK(queue_expired(100, 100 + 3600, 3600) && !queue_expired(100, 100 + 3599, 3600));
	CHECK(!queue_expired(100, 50, 10)); /* the clock stepped back */
}

/* The transport's filter: entries are passed over by the hash of the
 * next hop they are due for, which follows the earliest pending
 * recipient through updates and a restart. */
static bool skip_hop(void *ctx, uint32_t hop)
{
	return hop == *(const uint32_t *)ctx;
}

static void test_hops(struct queue **qp)
{
	struct queue *q = *qp;
	struct queue_env le;
	uint32_t office = queue_hop_hash("Office"), front = queue_hop_hash("Default Frontend"), none = 0;
	int a, b;

	CHECK(office != front && queue_hop_hash("") == 2166136261u);
	a = add(q, "H1", 100, 3); /* alice, bob: Office; carol: Default Frontend; all at 100 */
	b = add(q, "H2", 200, 3);
	CHECK(a >= 0 && b >= 0);
	/* Office is the first of the earliest: both entries are due for it. */
	CHECK(queue_due_match(q, 300, skip_hop, &none) == a);
	CHECK(queue_due_match(q, 300, skip_hop, &office) == -1);
	CHECK(queue_due_match(q, 300, skip_hop, &front) == a);
	CHECK(queue_next_time_match(q, skip_hop, &office) == UINT32_MAX);
	CHECK(queue_next_time_match(q, NULL, NULL) == 100 && queue_due_match(q, 300, NULL, NULL) == a);
	/* Office's two deferred to 500: H1 is due for the frontend now. */
	CHECK(queue_load(q, a, &le, buf, sizeof buf, lr, QUEUE_RCPTS_MAX) == 0);
	le.rcpt[0].next = le.rcpt[1].next = 500;
	CHECK(queue_update(q, a, &le) == 0);
	CHECK(queue_due_match(q, 300, skip_hop, &front) == b);
	CHECK(queue_due_match(q, 300, skip_hop, &office) == a);
	CHECK(queue_next_time_match(q, skip_hop, &office) == 100);
	/* ... and still after a restart. */
	q = reopen(q, 16);
	a = queue_find(q, "H1");
	b = queue_find(q, "H2");
	CHECK(queue_due_match(q, 300, skip_hop, &office) == a);
	CHECK(queue_due_match(q, 300, skip_hop, &front) == b);
	/* set_next moves the entry in the table only. */
	queue_set_next(q, b, 1000);
	CHECK(queue_due_match(q, 300, skip_hop, &front) == -1 && queue_next_time_match(q, skip_hop, &front) == 1000);
	queue_set_next(q, -1, 5); /* harmless */
	CHECK(queue_remove(q, a) == 0 && queue_remove(q, b) == 0 && queue_count(q) == 0);
	*qp = q;
}


/* The scheduler's questions (queue_due_match, queue_next_time_match)
 * against a plain scan of a shadow of the table, after each of many
 * random changes: adds (linked, or staged and busy), busy and free,
 * new next attempts, updates that move an entry to another next hop,
 * removals, flushes; with more next hops than QUEUE_HOP_GROUPS, so the
 * shared group is asked too, and with random sets of hops passed over.
 * Accepted times collide often, so the id's order decides. */
#define OR_HOPS (QUEUE_HOP_GROUPS * 2)
#define OR_MAX 128
static struct shadow {
	bool used, busy, staged;
	char id[QUEUE_ID_MAX];
	uint32_t accepted, next, hop;
} sh[OR_MAX];
static uint32_t or_hash[OR_HOPS];
static bool or_skip[OR_HOPS];
static uint64_t or_rng;

static uint32_t rnd(uint32_t n)
{
	or_rng ^= or_rng << 13;
	or_rng ^= or_rng >> 7;
	or_rng ^= or_rng << 17;
	return (uint32_t)(or_rng % n);
}

static bool skip_mask(void *ctx, uint32_t hop)
{
	(void)ctx;
	for (unsigned k = 0; k < OR_HOPS; k++)
		if (or_hash[k] == hop)
			return or_skip[k];
	return false;
}

static int shadow_due(uint32_t now, bool use_skip)
{
	int best = -1;

	for (int i = 0; i < OR_MAX; i++) {
		if (!sh[i].used || sh[i].busy || sh[i].next > now || (use_skip && skip_mask(NULL, sh[i].hop)))
			continue;
		if (best < 0 || sh[i].accepted < sh[best].accepted ||
		    (sh[i].accepted == sh[best].accepted && strcmp(sh[i].id, sh[best].id) < 0))
			best = i;
	}
	return best;
}

static uint32_t shadow_next(bool use_skip)
{
	uint32_t t = UINT32_MAX;

	for (int i = 0; i < OR_MAX; i++)
		if (sh[i].used && !sh[i].busy && sh[i].next < t && !(use_skip && skip_mask(NULL, sh[i].hop)))
			t = sh[i].next;
	return t;
}

static void or_env(const char *id, uint32_t accepted, uint32_t next, unsigned hop)
{
	static char relay[16];

	snprintf(relay, sizeof relay, "H%u", hop);
	make_env(id, accepted, 1);
	rc[0].relay = relay;
	rc[0].next = next;
}

static void test_groups_oracle(uint64_t seed, unsigned steps)
{
	char dir[160], err[256], id[QUEUE_ID_MAX], name[16];
	struct queue *q;
	unsigned seq = 0, bad = 0;

	snprintf(dir, sizeof dir, "%s/oracle-%llu", base, (unsigned long long)seed);
	q = queue_open(dir, OR_MAX, err, sizeof err);
	CHECK(q != NULL);
	if (!q)
		return;
	CHECK(queue_recover_step(q) == 0);
	write_file(src_fd, "data-oracle", "Return-Path: <>\n\nbody\n");
	or_rng = seed;
	memset(sh, 0, sizeof sh);
	for (unsigned k = 0; k < OR_HOPS; k++) {
		snprintf(name, sizeof name, "H%u", k);
		or_hash[k] = queue_hop_hash(name);
	}
	for (unsigned step = 0; step < steps; step++) {
		unsigned op = rnd(100), nh = rnd(2) ? OR_HOPS : 4; /* mostly a few hops */
		int i = (int)rnd(OR_MAX);
		uint32_t now = 1000 + rnd(200);

		if (op < 30) {
			unsigned h = rnd(nh);
			uint32_t acc = 1000 + rnd(8), next = acc + rnd(150);
			int k;

			snprintf(id, sizeof id, "%c%u", 'A' + (int)rnd(3), seq++);
			or_env(id, acc, next, h);
			k = queue_stage(q, &env);
			if (k < 0) {
				CHECK(errno == ENOSPC);
				continue;
			}
			sh[k] = (struct shadow){ .used = true, .busy = true, .staged = true, .accepted = acc,
						 .next = next, .hop = or_hash[h] };
			snprintf(sh[k].id, sizeof sh[k].id, "%s", id);
			if (rnd(8) != 0) {
				CHECK(queue_link(q, k, src_fd, "data-oracle") == 0);
				sh[k].busy = sh[k].staged = false;
			}
		} else if (!sh[i].used) {
			continue;
		} else if (op < 45) {
			if (sh[i].staged) {
				CHECK(queue_link(q, i, src_fd, "data-oracle") == 0);
				sh[i].busy = sh[i].staged = false;
			} else {
				sh[i].busy = !sh[i].busy;
				queue_set_busy(q, i, sh[i].busy);
			}
		} else if (op < 60) {
			sh[i].next = 1000 + rnd(300);
			queue_set_next(q, i, sh[i].next);
		} else if (op < 65 && !sh[i].staged) {
			unsigned h = rnd(nh);

			or_env(sh[i].id, sh[i].accepted, 1000 + rnd(300), h);
			CHECK(queue_update(q, i, &env) == 0);
			sh[i].next = rc[0].next;
			sh[i].hop = or_hash[h];
		} else if (op < 78) {
			if (sh[i].staged)
				queue_abandon(q, i);
			else
				CHECK(queue_remove(q, i) == 0);
			sh[i].used = false;
		} else if (op < 79) {
			queue_flush(q, now);
			for (int k = 0; k < OR_MAX; k++)
				if (sh[k].used && !sh[k].busy && sh[k].next > now)
					sh[k].next = now;
		}
		/* The questions, as the scheduler asks them. */
		for (unsigned k = 0; k < OR_HOPS; k++)
			or_skip[k] = rnd(3) == 0;
		if (queue_due_match(q, now, skip_mask, NULL) != shadow_due(now, true) ||
		    queue_due(q, now) != shadow_due(now, false) ||
		    queue_next_time_match(q, skip_mask, NULL) != shadow_next(true) ||
		    queue_next_time(q) != shadow_next(false)) {
			if (bad++ == 0)
				fprintf(stderr, "oracle seed %llu: step %u op %u differs\n", (unsigned long long)seed,
					step, op);
		}
	}
	CHECK(bad == 0);
	queue_close(q);
}

int main(void)
{
	char err[256];
	struct queue *q;

	snprintf(base, sizeof base, "/tmp/tarpitd-queue-XXXXXX");
	if (!mkdtemp(base))
		return 1;
	snprintf(qdir, sizeof qdir, "%s/queue", base);
	snprintf(src, sizeof src, "%s/src", base);
	mkdir(src, 0700);
	src_fd = open(src, O_RDONLY | O_DIRECTORY);
	q = queue_open(qdir, 16, err, sizeof err);
	CHECK(q != NULL);
	if (!q) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	CHECK(queue_recover_step(q) == 0 && !queue_recovering(q));
	CHECK(queue_open("/proc/nonexistent/queue", 16, err, sizeof err) == NULL && strstr(err, "mkdir") != NULL);
	test_basic(&q);
	test_hops(&q);
	test_crash_points(&q);
	test_staged(&q);
	test_bounds(&q);
	test_retry();
	for (uint64_t seed = 1; seed <= 4; seed++)
		test_groups_oracle(seed * 0x9e3779b97f4a7c15ull, 6000);
	queue_close(q);
	{
		char cmd[128];

		snprintf(cmd, sizeof cmd, "rm -rf %s", base);
		if (system(cmd) != 0)
			CHECK(!"cleanup");
	}
	return check_summary("queue");
}
