/* Unit tests for src/maildir.c: deliveries to one and several mailboxes
 * (content, trace headers, hard links), abort, tmp/ cleanup at open, a
 * write error and a link failure part-way that must leave no message. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "maildir.h"
#include "recipients.h"

static char base[64];
static char spool[128];

static void path_of(char *buf, size_t len, const char *rel)
{
	snprintf(buf, len, "%s/%s", spool, rel);
}

/* Entries of spool/rel other than . and ..; the last name in *last. */
static int count(const char *rel, char *last, size_t lastlen)
{
	char p[512];
	DIR *d;
	struct dirent *e;
	int n = 0;

	path_of(p, sizeof(p), rel);
	d = opendir(p);
	if (!d)
		return -1;
	while ((e = readdir(d)) != NULL) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		n++;
		if (last)
			snprintf(last, lastlen, "%s", e->d_name);
	}
	closedir(d);
	return n;
}

static size_t slurp(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "rb");
	size_t n;

	if (!f)
		return 0;
	n = fread(buf, 1, len - 1, f);
	buf[n] = '\0';
	fclose(f);
	return n;
}

static void touch(const char *rel)
{
	char p[512];
	int fd;

	path_of(p, sizeof(p), rel);
	fd = open(p, O_CREAT | O_WRONLY | O_TRUNC, 0600);
	if (fd < 0 || write(fd, "x", 1) != 1) {
		perror(p);
		exit(2);
	}
	close(fd);
}

static void mkdir_rel(const char *rel)
{
	char p[512];

	path_of(p, sizeof(p), rel);
	if (mkdir(p, 0700) < 0 && errno != EEXIST) {
		perror(p);
		exit(2);
	}
}

/* The date the header must carry, built with the C library so the test
 * does not share the code under test. */
static void expected_date(uint32_t sec, char *buf, size_t len)
{
	time_t t = (time_t)sec;
	struct tm tm;
	char a[8], b[8], hms[16];

	gmtime_r(&t, &tm);
	strftime(a, sizeof(a), "%a", &tm);
	strftime(b, sizeof(b), "%b", &tm);
	strftime(hms, sizeof(hms), "%H:%M:%S", &tm);
	snprintf(buf, len, "%s, %d %s %d %s +0000", a, tm.tm_mday, b, tm.tm_year + 1900, hms);
}

static int qid_ok(const char *q)
{
	size_t n = strlen(q);

	if (n == 0 || n >= QUEUE_ID_MAX)
		return 0;
	return strspn(q, "0123456789ABCDEF") == n;
}

static struct recipients *rc;
static struct maildir *md;
static const char body[] = "Subject: hi\n\nline one\n.leading dot kept\nlast\n";

static void base_env(struct sink_envelope *env, const uint32_t *ids, unsigned n)
{
	memset(env, 0, sizeof(*env));
	env->sender = "sender@remote.example";
	env->helo = "helo.remote.example";
	env->peer_ip = "192.0.2.1";
	env->fqdn = "mx.example.org";
	env->protocol = "ESMTP";
	env->rcpts = rc;
	env->mailboxes = ids;
	env->nmailboxes = n;
}

static uint32_t id_of(const char *addr)
{
	uint32_t id = UINT32_MAX;

	CHECK(recipients_lookup(rc, addr, strlen(addr), &id) == RCPT_OK);
	return id;
}

static void test_open(void)
{
	char p[512], err[256];
	struct stat st;
	struct maildir *m2;

	/* mkdir -p of the spool, tmp/ inside it, both private */
	md = maildir_open(spool, "my/host:name", err, sizeof(err));
	CHECK(md != NULL);
	if (!md) {
		fprintf(stderr, "%s\n", err);
		exit(1);
	}
	CHECK(stat(spool, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700);
	path_of(p, sizeof(p), "tmp");
	CHECK(stat(p, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700);

	/* leftovers: regular files in tmp/ go, anything else stays */
	touch("tmp/1234.M1P1Q1.crashed");
	touch("tmp/another");
	mkdir_rel("tmp/somedir");
	m2 = maildir_open(spool, "h", err, sizeof(err));
	CHECK(m2 != NULL);
	CHECK(count("tmp", NULL, 0) == 1);
	path_of(p, sizeof(p), "tmp/somedir");
	CHECK(rmdir(p) == 0);
	maildir_close(m2);

	/* a spool that cannot be a directory */
	path_of(p, sizeof(p), "plainfile");
	touch("plainfile");
	CHECK(maildir_open(p, "h", err, sizeof(err)) == NULL);
	CHECK(strstr(err, "plainfile") != NULL);
	CHECK(unlink(p) == 0);
}

static void test_one(void)
{
	char p[512], got[4096], want[4096], name[300], qid[QUEUE_ID_MAX], date[64], pfx[64];
	uint32_t ids[1];
	struct sink_envelope env;
	struct sink_msg m;
	struct stat st;
	size_t n;

	ids[0] = id_of("alice@example.org");
	base_env(&env, ids, 1);
	env.single_rcpt = "alice@example.org";
	memset(qid, 0, sizeof(qid));
	CHECK(maildir_begin(md, &m, &env, qid) == 0);
	CHECK(m.fd >= 0);
	CHECK(count("tmp", NULL, 0) == 1);
	maildir_write(&m, body, 10);
	maildir_write(&m, body + 10, sizeof(body) - 1 - 10);
	maildir_write(&m, "", 0);
	CHECK(maildir_commit(md, &m, &env) == 0);
	CHECK(m.fd == -1);
	CHECK(qid_ok(qid));

	CHECK(count("tmp", NULL, 0) == 0);
	CHECK(count("alice@example.org/new", name, sizeof(name)) == 1);
	CHECK(count("alice@example.org/cur", NULL, 0) == 0);
	CHECK(count("alice@example.org/tmp", NULL, 0) == 0);

	/* <sec>.M<usec>P<pid>Q<seq>.<host>, host with / and : escaped */
	snprintf(pfx, sizeof(pfx), "%u.M%uP%uQ%u.", (unsigned)m.sec, (unsigned)m.usec,
		 (unsigned)getpid(), (unsigned)m.seq);
	CHECK(strncmp(name, pfx, strlen(pfx)) == 0);
	CHECK_STR(name + strlen(pfx), "my\\057host\\072name");

	snprintf(p, sizeof(p), "%s/alice@example.org/new/%s", spool, name);
	n = slurp(p, got, sizeof(got));
	expected_date(m.sec, date, sizeof(date));
	snprintf(want, sizeof(want),
		 "Return-Path: <sender@remote.example>\n"
		 "Received: from helo.remote.example ([192.0.2.1])\n"
		 "\tby mx.example.org with ESMTP id %s\n"
		 "\tfor <alice@example.org>; %s\n"
		 "%s",
		 qid, date, body);
	CHECK_STR(got, want);
	CHECK(m.size == n);
	CHECK(stat(p, &st) == 0 && st.st_nlink == 1 && (st.st_mode & 0777) == 0600);
}

/* The file name a message must have, rebuilt from its slot. */
static void msg_name(const struct sink_msg *m, char *buf, size_t len)
{
	snprintf(buf, len, "%u.M%uP%uQ%u.my\\057host\\072name", (unsigned)m->sec,
		 (unsigned)m->usec, (unsigned)getpid(), (unsigned)m->seq);
}

/* Messages in every new/ of the spool. */
static int total_new(void)
{
	static const char *const boxes[] = { "alice@example.org", "robert", "carol", "dave" };
	int n = 0;

	for (int i = 0; i < 4; i++) {
		char rel[128];
		int c;

		snprintf(rel, sizeof(rel), "%s/new", boxes[i]);
		c = count(rel, NULL, 0);
		n += c > 0 ? c : 0;
	}
	return n;
}

static void test_three(void)
{
	static const char *const boxes[] = { "alice@example.org", "robert", "carol" };
	char p[512], got[4096], want[4096], name[300], qid[QUEUE_ID_MAX], qid1[QUEUE_ID_MAX];
	char date[64];
	uint32_t ids[4];
	struct sink_envelope env;
	struct sink_msg m;
	struct stat st;
	ino_t ino = 0;
	int before = count("alice@example.org/new", NULL, 0);

	ids[0] = id_of("alice@example.org");
	ids[1] = id_of("bob@example.org");
	ids[2] = id_of("carol@example.org");
	ids[3] = id_of("robert@example.org"); /* same mailbox as bob: linked once */
	CHECK(ids[1] == ids[3]);
	base_env(&env, ids, 4);
	env.protocol = "ESMTPS";
	env.sender = "";
	CHECK(maildir_begin(md, &m, &env, qid) == 0);
	maildir_write(&m, body, sizeof(body) - 1);
	CHECK(maildir_commit(md, &m, &env) == 0);
	CHECK(count("tmp", NULL, 0) == 0);
	CHECK(count("alice@example.org/new", NULL, 0) == before + 1);
	CHECK(count("robert/new", NULL, 0) == 1);
	CHECK(count("carol/new", NULL, 0) == 1);
	CHECK(qid_ok(qid));

	msg_name(&m, name, sizeof(name));
	expected_date(m.sec, date, sizeof(date));
	snprintf(want, sizeof(want),
		 "Return-Path: <>\n"
		 "Received: from helo.remote.example ([192.0.2.1])\n"
		 "\tby mx.example.org with ESMTPS id %s; %s\n"
		 "%s",
		 qid, date, body);
	for (int i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s/%s/new/%s", spool, boxes[i], name);
		CHECK(stat(p, &st) == 0);
		CHECK(st.st_nlink == 3); /* tmp/ link gone, one per mailbox */
		if (i == 0)
			ino = st.st_ino;
		CHECK(st.st_ino == ino);
		slurp(p, got, sizeof(got));
		CHECK_STR(got, want);
	}
	CHECK(strstr(want, "for <") == NULL);

	/* the next message gets another name and queue id */
	memcpy(qid1, qid, sizeof(qid));
	base_env(&env, ids, 1);
	CHECK(maildir_begin(md, &m, &env, qid) == 0);
	CHECK(strcmp(qid, qid1) != 0);
	maildir_abort(md, &m);
}

static void test_abort(void)
{
	uint32_t ids[1] = { id_of("carol@example.org") };
	struct sink_envelope env;
	struct sink_msg m;
	char qid[QUEUE_ID_MAX];
	int before = total_new();

	base_env(&env, ids, 1);
	CHECK(maildir_begin(md, &m, &env, qid) == 0);
	maildir_write(&m, body, sizeof(body) - 1);
	CHECK(count("tmp", NULL, 0) == 1);
	{
		/* The tmp file's name, for a caller that links it itself. */
		char name[256], last[256];
		struct stat st;

		CHECK(maildir_tmp_name(md, &m, name, sizeof name) == 0);
		CHECK(count("tmp", last, sizeof last) == 1);
		CHECK_STR(name, last);
		CHECK(fstatat(maildir_tmp_dir(md), name, &st, 0) == 0 && S_ISREG(st.st_mode));
		CHECK(maildir_tmp_name(md, &m, name, 4) == -1);
	}
	maildir_abort(md, &m);
	CHECK(m.fd == -1);
	CHECK(maildir_tmp_name(md, &m, (char[8]){0}, 8) == -1);
	CHECK(count("tmp", NULL, 0) == 0);
	CHECK(total_new() == before);
	maildir_abort(md, &m); /* harmless twice */
	CHECK(maildir_commit(md, &m, &env) == -1); /* nothing open */
	CHECK(total_new() == before);
}

static void test_write_error(void)
{
	uint32_t ids[2] = { id_of("alice@example.org"), id_of("carol@example.org") };
	struct sink_envelope env;
	struct sink_msg m;
	char qid[QUEUE_ID_MAX];
	int before = total_new(), ro;
	uint64_t size;

	base_env(&env, ids, 2);

	/* a sticky error set by hand */
	CHECK(maildir_begin(md, &m, &env, qid) == 0);
	maildir_write(&m, body, sizeof(body) - 1);
	m.error = EIO;
	errno = 0;
	CHECK(maildir_commit(md, &m, &env) == -1);
	CHECK(errno == EIO);
	CHECK(m.fd == -1);
	CHECK(count("tmp", NULL, 0) == 0);
	CHECK(total_new() == before);

	/* a real failing write(): the fd now refers to a read-only file */
	CHECK(maildir_begin(md, &m, &env, qid) == 0);
	maildir_write(&m, "ok\n", 3);
	ro = open("/dev/null", O_RDONLY | O_CLOEXEC);
	CHECK(ro >= 0 && dup2(ro, m.fd) == m.fd);
	close(ro);
	size = m.size;
	maildir_write(&m, body, sizeof(body) - 1);
	CHECK(m.error == EBADF);
	CHECK(m.size == size);
	maildir_write(&m, body, sizeof(body) - 1); /* stopped: still the first error */
	CHECK(m.error == EBADF);
	CHECK(maildir_commit(md, &m, &env) == -1);
	CHECK(count("tmp", NULL, 0) == 0);
	CHECK(total_new() == before);
}

static void test_link_failure(void)
{
	uint32_t ids[3] = { id_of("alice@example.org"), id_of("bob@example.org"),
			    id_of("dave@example.org") };
	struct sink_envelope env;
	struct sink_msg m;
	char qid[QUEUE_ID_MAX], p[512];
	int alice = count("alice@example.org/new", NULL, 0);
	int robert = count("robert/new", NULL, 0);

	/* dave's new/ is a regular file: the third mailbox fails */
	mkdir_rel("dave");
	touch("dave/new");
	base_env(&env, ids, 3);
	CHECK(maildir_begin(md, &m, &env, qid) == 0);
	maildir_write(&m, body, sizeof(body) - 1);
	CHECK(maildir_commit(md, &m, &env) == -1);
	CHECK(count("alice@example.org/new", NULL, 0) == alice);
	CHECK(count("robert/new", NULL, 0) == robert);
	CHECK(count("tmp", NULL, 0) == 0);

	/* a mailbox id the table does not know, after two good ones */
	ids[2] = 9999;
	CHECK(maildir_begin(md, &m, &env, qid) == 0);
	CHECK(maildir_commit(md, &m, &env) == -1);
	CHECK(count("alice@example.org/new", NULL, 0) == alice);
	CHECK(count("robert/new", NULL, 0) == robert);
	CHECK(count("tmp", NULL, 0) == 0);

	/* once dave's new/ is repaired the same delivery works */
	path_of(p, sizeof(p), "dave/new");
	CHECK(unlink(p) == 0);
	ids[2] = id_of("dave@example.org");
	CHECK(maildir_begin(md, &m, &env, qid) == 0);
	CHECK(maildir_commit(md, &m, &env) == 0);
	CHECK(count("alice@example.org/new", NULL, 0) == alice + 1);
	CHECK(count("robert/new", NULL, 0) == robert + 1);
	CHECK(count("dave/new", NULL, 0) == 1);
	CHECK(count("dave/cur", NULL, 0) == 0);
}

static void test_bad_envelope(void)
{
	char long_helo[400], qid[QUEUE_ID_MAX];
	uint32_t ids[1] = { id_of("alice@example.org") };
	struct sink_envelope env;
	struct sink_msg m;

	base_env(&env, ids, 1);
	env.sender = "evil@x\nX-Injected: yes";
	CHECK(maildir_begin(md, &m, &env, qid) == -1);
	CHECK(errno == EINVAL && m.fd == -1);
	base_env(&env, ids, 1);
	memset(long_helo, 'h', sizeof(long_helo) - 1);
	long_helo[sizeof(long_helo) - 1] = '\0';
	env.helo = long_helo;
	CHECK(maildir_begin(md, &m, &env, qid) == -1);
	long_helo[255] = '\0'; /* the longest allowed */
	CHECK(maildir_begin(md, &m, &env, qid) == 0);
	maildir_abort(md, &m);
	base_env(&env, ids, 1);
	env.peer_ip = NULL;
	CHECK(maildir_begin(md, &m, &env, qid) == -1);
	CHECK(count("tmp", NULL, 0) == 0);

	/* no mailbox at all is a failure, not a silent drop */
	base_env(&env, ids, 0);
	CHECK(maildir_begin(md, &m, &env, qid) == 0);
	CHECK(maildir_commit(md, &m, &env) == -1);
	CHECK(count("tmp", NULL, 0) == 0);
}

/* A group-commit round: good messages land in every mailbox, a failed one
 * in none, and tmp/ ends empty. */
static void test_batch(void)
{
	struct sink_msg m[3], *ms[3];
	struct sink_envelope envs[3];
	uint32_t ids_a[2], ids_b[1];
	char qid[QUEUE_ID_MAX];
	int results[3] = {9, 9, 9}, before = total_new();

	ids_a[0] = id_of("alice@example.org");
	ids_a[1] = id_of("carol@example.org");
	ids_b[0] = id_of("dave@example.org");
	base_env(&envs[0], ids_a, 2);
	base_env(&envs[1], ids_b, 1);
	base_env(&envs[2], ids_b, 1);
	for (int k = 0; k < 3; k++) {
		memset(&m[k], 0, sizeof m[k]);
		m[k].fd = -1;
		CHECK(maildir_begin(md, &m[k], &envs[k], qid) == 0);
		maildir_write(&m[k], body, strlen(body));
		ms[k] = &m[k];
	}
	m[1].error = EIO;
	/* Ended by a syncfs(): the caller's queue removals are covered. */
	CHECK(maildir_commit_batch(md, ms, envs, 3, results, -1));
	CHECK(results[0] == 0 && results[1] == -1 && results[2] == 0);
	CHECK(total_new() == before + 3);
	CHECK(count("tmp", NULL, 0) == 0);
	CHECK(m[0].fd == -1 && m[1].fd == -1 && m[2].fd == -1);
	/* A round of one takes the single path and works the same. */
	CHECK(maildir_begin(md, &m[0], &envs[1], qid) == 0);
	maildir_write(&m[0], body, strlen(body));
	/* Its fsync()s are of new/ only: no claim about anything else. */
	CHECK(!maildir_commit_batch(md, ms, envs + 1, 1, results, -1));
	CHECK(results[0] == 0 && total_new() == before + 4 && count("tmp", NULL, 0) == 0);
}

/* The forward hooks (SPEC §10): stage() for every forwarded message of
 * the round before any link() (one sync lies between them), link() on
 * the complete tmp file after the local links, undo() once for a
 * message whose round fails after its stage() succeeded, and a refusal
 * anywhere takes the local links back. */
static int fwd_stage_result, fwd_link_result, fwd_undos;
static char fwd_trace[64], fwd_seen[300];
static void fwd_note(char c)
{
	size_t n = strlen(fwd_trace);

	if (n + 1 < sizeof fwd_trace) {
		fwd_trace[n] = c;
		fwd_trace[n + 1] = '\0';
	}
}
static int fake_stage(void *arg)
{
	(void)arg;
	fwd_note('s');
	return fwd_stage_result;
}
static int fake_link(void *arg, int dirfd, const char *name)
{
	struct stat st;
	(void)arg;
	fwd_note('l');
	snprintf(fwd_seen, sizeof fwd_seen, "%s", name);
	/* The data is there, complete, when the hook runs. */
	if (fstatat(dirfd, name, &st, 0) != 0 || st.st_size < (off_t)strlen(body))
		return -1;
	return fwd_link_result;
}
static void fake_undo(void *arg)
{
	(void)arg;
	fwd_note('u');
	fwd_undos++;
}
static const struct sink_forward fake_fwd = {.stage = fake_stage, .link = fake_link, .undo = fake_undo};

static void fwd_reset(int stage_result, int link_result)
{
	fwd_trace[0] = '\0';
	fwd_undos = 0;
	fwd_stage_result = stage_result;
	fwd_link_result = link_result;
}

/* n messages, each forwarded, to the mailboxes ids[0..nids) too. */
static void fwd_round(struct sink_msg *m, struct sink_msg **ms, struct sink_envelope *envs, unsigned n,
		      const uint32_t *ids, unsigned nids)
{
	char qid[QUEUE_ID_MAX];

	for (unsigned k = 0; k < n; k++) {
		base_env(&envs[k], ids, nids);
		envs[k].fwd = &fake_fwd;
		memset(&m[k], 0, sizeof m[k]);
		CHECK(maildir_begin(md, &m[k], &envs[k], qid) == 0);
		maildir_write(&m[k], body, strlen(body));
		ms[k] = &m[k];
	}
}

static void test_forward_hook(void)
{
	struct sink_msg m[2], *ms[2];
	struct sink_envelope envs[2];
	uint32_t ids[1] = { id_of("alice@example.org") };
	char qdir[300];
	int results[2], before = total_new(), qfd;

	path_of(qdir, sizeof qdir, "fwdq");
	CHECK(mkdir(qdir, 0700) == 0 || errno == EEXIST);
	qfd = open(qdir, O_RDONLY | O_DIRECTORY);
	CHECK(qfd >= 0);

	/* Forwarded only, a round of one: no mailbox at all is fine with
	 * hooks, and the round ends with the fsync of the queue's directory. */
	fwd_round(m, ms, envs, 1, ids, 0);
	fwd_reset(0, 0);
	CHECK(maildir_commit_batch(md, ms, envs, 1, results, qfd));
	CHECK(results[0] == 0 && !strcmp(fwd_trace, "sl") && total_new() == before);
	CHECK(count("tmp", NULL, 0) == 0 && m[0].fd == -1);
	/* Mixed, and the queue refuses the link: the local link is taken
	 * back, and so is the staged entry. */
	fwd_round(m, ms, envs, 1, ids, 1);
	fwd_reset(0, -1);
	maildir_commit_batch(md, ms, envs, 1, results, qfd);
	CHECK(results[0] == -1 && !strcmp(fwd_trace, "slu") && total_new() == before);
	CHECK(count("tmp", NULL, 0) == 0);
	/* The queue refuses the stage: nothing to undo, no link tried. */
	fwd_round(m, ms, envs, 1, ids, 1);
	fwd_reset(-1, 0);
	CHECK(!maildir_commit_batch(md, ms, envs, 1, results, qfd));
	CHECK(results[0] == -1 && !strcmp(fwd_trace, "s") && total_new() == before);
	CHECK(count("tmp", NULL, 0) == 0 && m[0].fd == -1);
	/* Hooks without the queue's directory: refused before any step. */
	fwd_round(m, ms, envs, 1, ids, 1);
	fwd_reset(0, 0);
	maildir_commit_batch(md, ms, envs, 1, results, -1);
	CHECK(results[0] == -1 && fwd_trace[0] == '\0' && count("tmp", NULL, 0) == 0);
	/* The single path is local only; without hooks, no mailbox is still
	 * an error. */
	fwd_round(m, ms, envs, 1, ids, 1);
	CHECK(maildir_commit(md, &m[0], &envs[0]) == -1 && errno == EINVAL && count("tmp", NULL, 0) == 0);
	fwd_round(m, ms, envs, 1, ids, 0);
	envs[0].fwd = NULL;
	CHECK(maildir_commit(md, &m[0], &envs[0]) == -1 && count("tmp", NULL, 0) == 0);
	/* A round of two: one local only, one also forwarded; both stored. */
	fwd_round(m, ms, envs, 2, ids, 1);
	envs[0].fwd = NULL;
	fwd_reset(0, 0);
	CHECK(maildir_commit_batch(md, ms, envs, 2, results, qfd));
	CHECK(results[0] == 0 && results[1] == 0 && !strcmp(fwd_trace, "sl"));
	CHECK(total_new() == before + 2 && count("tmp", NULL, 0) == 0);
	/* Both forwarded: both staged before either is linked. */
	fwd_round(m, ms, envs, 2, ids, 0);
	fwd_reset(0, 0);
	CHECK(maildir_commit_batch(md, ms, envs, 2, results, qfd));
	CHECK(results[0] == 0 && results[1] == 0 && !strcmp(fwd_trace, "ssll"));
	/* Both refused at the link, mixed: every local link goes again. */
	fwd_round(m, ms, envs, 2, ids, 1);
	fwd_reset(0, -1);
	maildir_commit_batch(md, ms, envs, 2, results, qfd);
	CHECK(results[0] == -1 && results[1] == -1 && !strcmp(fwd_trace, "sslulu") && fwd_undos == 2);
	CHECK(total_new() == before + 2 && count("tmp", NULL, 0) == 0);
	close(qfd);
}

static bool has(const char *path, mode_t mode, gid_t gid)
{
	struct stat st;

	return stat(path, &st) == 0 && (st.st_mode & 07777) == mode && st.st_gid == gid;
}

/* SPEC §5: with spool_group, files 0640 and directories 0750 of that
 * group, whatever the umask; a spool (and tmp/) that existed before gets
 * them too. Without the daemon's right to give files to the group, open
 * fails at once, saying so. */
static void test_group(void)
{
	char sp[256], p[640], err[256];
	gid_t gid = geteuid() == 0 ? 4242 : getegid();
	uint32_t ids[1] = { id_of("alice@example.org") };
	struct sink_envelope env;
	struct maildir *g;
	struct sink_msg m;
	mode_t um = umask(077);
	char name[300];

	snprintf(sp, sizeof sp, "%s/grp", base);
	CHECK(mkdir(sp, 0700) == 0);
	snprintf(sp, sizeof sp, "%s/grp/spool", base);
	CHECK(mkdir(sp, 0700) == 0);
	maildir_use_group(gid);
	g = maildir_open(sp, "h", err, sizeof err);
	CHECK(g != NULL);
	if (!g) {
		fprintf(stderr, "%s\n", err);
		maildir_use_group(UINT32_MAX);
		umask(um);
		return;
	}
	CHECK(has(sp, 0750, gid));
	snprintf(p, sizeof p, "%s/tmp", sp);
	CHECK(has(p, 0750, gid));
	base_env(&env, ids, 1);
	CHECK(maildir_begin(g, &m, &env, NULL) == 0);
	maildir_write(&m, body, sizeof body - 1);
	CHECK(maildir_commit(g, &m, &env) == 0);
	static const char *const dirs[] = { "alice@example.org", "alice@example.org/new",
					    "alice@example.org/cur", "alice@example.org/tmp" };
	for (unsigned i = 0; i < 4; i++) {
		snprintf(p, sizeof p, "%s/%s", sp, dirs[i]);
		CHECK(has(p, 0750, gid));
	}
	{
		DIR *d;
		struct dirent *e;

		snprintf(p, sizeof p, "%s/alice@example.org/new", sp);
		d = opendir(p);
		name[0] = '\0';
		while (d && (e = readdir(d)) != NULL)
			if (e->d_name[0] != '.')
				snprintf(name, sizeof name, "%s", e->d_name);
		if (d)
			closedir(d);
		snprintf(p, sizeof p, "%s/alice@example.org/new/%s", sp, name);
		CHECK(name[0] && has(p, 0640, gid));
	}
	maildir_close(g);

	/* A user that may not give files to the group. */
	if (geteuid() == 0) {
		pid_t pid;
		int status = -1;

		char top[] = "/tmp/test_maildir_nobody.XXXXXX";

		/* base is root's alone: nobody needs a path to its spool */
		CHECK(mkdtemp(top) != NULL && chmod(top, 0755) == 0);
		snprintf(sp, sizeof sp, "%s/spool", top);
		CHECK(mkdir(sp, 0700) == 0 && chown(sp, 65534, 65534) == 0);
		pid = fork();
		if (pid == 0) {
			gid_t none = 65534;

			if (setgroups(1, &none) != 0 || setgid(65534) != 0 || setuid(65534) != 0)
				_exit(3);
			g = maildir_open(sp, "h", err, sizeof err);
			if (!g && !(strstr(err, "spool_group") && strstr(err, "Operation not permitted")))
				fprintf(stderr, "%s\n", err);
			_exit(g ? 1 : strstr(err, "spool_group") && strstr(err, "Operation not permitted") ? 0 : 2);
		}
		CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		snprintf(p, sizeof p, "%s/tmp", sp);
		rmdir(p);
		rmdir(sp);
		CHECK(rmdir(top) == 0);
	}
	maildir_use_group(UINT32_MAX);
	umask(um);
	/* Without a group, as before: 0700 and 0600. */
	snprintf(sp, sizeof sp, "%s/grp/plain", base);
	g = maildir_open(sp, "h", err, sizeof err);
	CHECK(g != NULL && has(sp, 0700, getegid()));
	maildir_close(g);
}

int main(void)
{
	static const char rfile[] = "alice@example.org\n"
				    "bob@example.org robert\n"
				    "robert@example.org robert\n"
				    "carol@example.org carol\n"
				    "dave@example.org dave\n";
	char p[256], err[512];
	FILE *f;

	snprintf(base, sizeof(base), "/tmp/test_maildir.XXXXXX");
	if (!mkdtemp(base)) {
		perror("mkdtemp");
		return 2;
	}
	snprintf(spool, sizeof(spool), "%s/var/spool/tarpitd", base);
	snprintf(p, sizeof(p), "%s/recipients", base);
	f = fopen(p, "w");
	if (!f || fputs(rfile, f) < 0 || fclose(f) != 0)
		return 2;
	rc = recipients_load(p, err, sizeof(err));
	if (!rc) {
		fprintf(stderr, "%s\n", err);
		return 2;
	}
	test_open();
	test_one();
	test_three();
	test_abort();
	test_write_error();
	test_link_failure();
	test_bad_envelope();
	test_batch();
	test_forward_hook();
	test_group();
	maildir_close(md);
	recipients_unref(rc);
	{
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", base);
	}
	return check_summary("maildir");
}
