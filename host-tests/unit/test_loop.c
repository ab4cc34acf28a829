/* test_loop: written against loop.h only, so it tests whichever backend it
 * is linked with (loop_epoll.c or loop_poll.c). */
#include "loop.h"
#include "check.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXFDS 1024

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int pair(int sp[2])
{
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) < 0)
		return -1;
	fcntl(sp[0], F_SETFL, O_NONBLOCK);
	fcntl(sp[1], F_SETFL, O_NONBLOCK);
	return 0;
}

static void put(int fd)
{
	ssize_t r = write(fd, "x", 1);
	CHECK(r == 1);
}

static void drain_fd(int fd)
{
	char buf[4096];

	while (read(fd, buf, sizeof buf) > 0)
		;
}

/* One event expected in the next batch, with exactly these bits. */
static int one_event(struct loop *l, int timeout, int fd, unsigned events, uint32_t tag)
{
	struct loop_event ev;
	int ok = 1;

	if (loop_wait(l, timeout) != 1)
		ok = 0;
	else if (loop_next(l, &ev) != 1)
		ok = 0;
	else if (ev.fd != fd || ev.events != events || ev.tag != tag) {
		fprintf(stderr, "loop: got fd %d events %#x tag %u, want %d %#x %u\n", ev.fd,
			ev.events, (unsigned)ev.tag, fd, events, (unsigned)tag);
		ok = 0;
	} else if (loop_next(l, &ev) != 0)
		ok = 0;
	return ok;
}

static int no_event(struct loop *l, int timeout)
{
	struct loop_event ev;

	return loop_wait(l, timeout) == 0 && loop_next(l, &ev) == 0;
}

static void test_basic(void)
{
	const char *b = loop_backend();
	CHECK(b && (strcmp(b, "epoll") == 0 || strcmp(b, "poll") == 0));
	errno = 0;
	CHECK(loop_new(0) == NULL);
	CHECK(loop_new(-3) == NULL);
	loop_free(NULL);

	struct loop *l = loop_new(MAXFDS);
	struct loop_event ev;
	int sp[2];
	CHECK(l != NULL);
	if (!l || pair(sp) < 0)
		return;

	CHECK(loop_next(l, &ev) == 0); /* no batch yet */
	CHECK(loop_add(l, sp[0], LOOP_READ, 7) == 0);
	CHECK(no_event(l, 0));
	put(sp[1]);
	CHECK(one_event(l, 1000, sp[0], LOOP_READ, 7));
	CHECK(loop_next(l, &ev) == 0); /* stays at the end */
	/* Level-triggered: still readable, so reported again. */
	CHECK(one_event(l, 0, sp[0], LOOP_READ, 7));
	drain_fd(sp[0]);
	CHECK(no_event(l, 0));

	/* Argument errors. */
	errno = 0;
	CHECK(loop_add(l, sp[0], LOOP_READ, 1) == -1 && errno == EEXIST);
	errno = 0;
	CHECK(loop_mod(l, sp[1], LOOP_READ, 1) == -1 && errno == ENOENT);
	errno = 0;
	CHECK(loop_add(l, -1, LOOP_READ, 1) == -1 && errno == EBADF);
	errno = 0;
	CHECK(loop_mod(l, -1, LOOP_READ, 1) == -1 && errno == EBADF);
	errno = 0;
	CHECK(loop_add(l, sp[1], 0x40, 1) == -1 && errno == EINVAL);
	errno = 0;
	CHECK(loop_add(l, MAXFDS, LOOP_READ, 1) == -1 && errno == EMFILE);
	errno = 0;
	CHECK(loop_add(l, 1 << 30, LOOP_READ, 1) == -1 && errno == EMFILE);
	loop_del(l, sp[1]); /* not registered: nothing happens */
	loop_del(l, -1);
	loop_del(l, MAXFDS + 5);
	/* A failed add must not have registered anything. */
	CHECK(loop_add(l, sp[1], LOOP_READ, 3) == 0);
	loop_del(l, sp[1]);
	CHECK(loop_add(l, sp[1], 0, 3) == 0); /* registered but not watched */
	errno = 0;
	CHECK(loop_add(l, sp[1], LOOP_READ, 3) == -1 && errno == EEXIST);
	loop_del(l, sp[1]);
	loop_del(l, sp[0]);
	put(sp[1]);
	CHECK(no_event(l, 0)); /* deleted fds are not watched any more */
	errno = 0;
	CHECK(loop_mod(l, sp[0], LOOP_READ, 1) == -1 && errno == ENOENT);
	loop_free(l);

	/* The table is sized by maxfds: the limit fd is one too many. */
	int hi = sp[0] > sp[1] ? sp[0] : sp[1], lo = sp[0] + sp[1] - hi;
	l = loop_new(hi);
	CHECK(l != NULL);
	if (l) {
		errno = 0;
		CHECK(loop_add(l, hi, LOOP_READ, 1) == -1 && errno == EMFILE);
		CHECK(loop_add(l, lo, LOOP_WRITE, 1) == 0);
		CHECK(one_event(l, 1000, lo, LOOP_WRITE, 1));
		loop_free(l);
	}
	close(sp[0]);
	close(sp[1]);
}

static void test_masks(void)
{
	struct loop *l = loop_new(MAXFDS);
	int sp[2];

	if (!l || pair(sp) < 0) {
		CHECK(0);
		loop_free(l);
		return;
	}
	CHECK(loop_add(l, sp[0], LOOP_WRITE, 1) == 0);
	CHECK(one_event(l, 1000, sp[0], LOOP_WRITE, 1));
	put(sp[1]);
	CHECK(loop_mod(l, sp[0], LOOP_READ | LOOP_WRITE, 2) == 0);
	CHECK(one_event(l, 1000, sp[0], LOOP_READ | LOOP_WRITE, 2));
	CHECK(loop_mod(l, sp[0], LOOP_READ, 3) == 0);
	CHECK(one_event(l, 1000, sp[0], LOOP_READ, 3));
	/* Same mask, new tag only. */
	CHECK(loop_mod(l, sp[0], LOOP_READ, 33) == 0);
	CHECK(one_event(l, 1000, sp[0], LOOP_READ, 33));
	CHECK(loop_mod(l, sp[0], 0, 4) == 0);
	CHECK(no_event(l, 20));
	CHECK(loop_mod(l, sp[0], LOOP_READ, 5) == 0);
	CHECK(one_event(l, 1000, sp[0], LOOP_READ, 5));
	/* LOOP_ERROR in a mask is accepted and means nothing more. */
	CHECK(loop_mod(l, sp[0], LOOP_READ | LOOP_ERROR, 6) == 0);
	CHECK(one_event(l, 1000, sp[0], LOOP_READ, 6));
	drain_fd(sp[0]);

	/* Write readiness follows the socket buffer. */
	char big[4096];
	memset(big, 'y', sizeof big);
	while (write(sp[0], big, sizeof big) > 0)
		;
	CHECK(loop_mod(l, sp[0], LOOP_WRITE, 7) == 0);
	CHECK(no_event(l, 0));
	drain_fd(sp[1]);
	CHECK(one_event(l, 1000, sp[0], LOOP_WRITE, 7));

	/* A mod made by an earlier event of the batch applies to the rest. */
	int sq[2];
	if (pair(sq) == 0) {
		CHECK(loop_mod(l, sp[0], LOOP_READ, 10) == 0);
		CHECK(loop_add(l, sq[0], LOOP_READ, 20) == 0);
		put(sp[1]);
		put(sq[1]);
		/* round 0: retag it; 1: park it (mask 0); 2: both were read and
		 * write ready, drop its WRITE interest */
		static const unsigned before[3] = {LOOP_READ, LOOP_READ, LOOP_READ | LOOP_WRITE};
		static const unsigned after[3] = {LOOP_READ, 0, LOOP_READ};
		for (int round = 0; round < 3; round++) {
			struct loop_event ev;
			unsigned n = 0, other_tag = 0, seen_other = 0;
			CHECK(loop_mod(l, sp[0], before[round], 10) == 0);
			CHECK(loop_mod(l, sq[0], before[round], 20) == 0);
			CHECK(loop_wait(l, 1000) == 2);
			while (loop_next(l, &ev) == 1) {
				n++;
				if (n == 1) {
					CHECK(ev.events == before[round]);
					int other = ev.fd == sp[0] ? sq[0] : sp[0];
					other_tag = 100 + (unsigned)round;
					CHECK(loop_mod(l, other, after[round], other_tag) == 0);
				} else {
					seen_other++;
					CHECK(ev.tag == other_tag);
					CHECK(ev.events == after[round]);
				}
			}
			CHECK(seen_other == (after[round] ? 1u : 0u));
		}
		loop_del(l, sq[0]);
		close(sq[0]);
		close(sq[1]);
	}
	loop_del(l, sp[0]);
	close(sp[0]);
	close(sp[1]);
	loop_free(l);
}

#define NP 5

/* Deleting an fd whose event is still pending in the batch: it is not
 * delivered, and every other fd is delivered exactly once. */
static void test_del_in_batch(void)
{
	struct loop *l = loop_new(MAXFDS);
	int sp[NP][2];
	int ok = l != NULL;

	for (int i = 0; i < NP && ok; i++)
		if (pair(sp[i]) < 0)
			ok = 0;
	CHECK(ok);
	if (!ok) {
		loop_free(l);
		return;
	}
	for (int i = 0; i < NP; i++) {
		CHECK(loop_add(l, sp[i][0], LOOP_READ, (uint32_t)i) == 0);
		put(sp[i][1]);
	}
	/* Victim: each later event position in turn, then the fd itself, then
	 * one already dispatched. */
	for (int mode = 0; mode < NP + 1; mode++) {
		struct loop_event ev;
		unsigned seen[NP] = {0};
		int order[NP], k = 0, victim = -1;

		CHECK(loop_wait(l, 1000) == NP);
		while (loop_next(l, &ev) == 1) {
			if (ev.tag >= NP || ev.fd != sp[ev.tag][0] || k >= NP) {
				CHECK(0);
				break;
			}
			seen[ev.tag]++;
			order[k++] = (int)ev.tag;
			if (mode >= 1 && mode < NP && k == 1) {
				/* the mode-th not yet dispatched tag, counting in tag order */
				int c = 0;
				for (int t = 0; t < NP; t++)
					if (!seen[t] && ++c == mode)
						victim = t;
			} else if (mode == 0 && k == 2) {
				victim = (int)ev.tag; /* itself, while being handled */
			} else if (mode == NP && k == 3) {
				victim = order[0]; /* already dispatched */
			} else {
				continue;
			}
			loop_del(l, sp[victim][0]);
		}
		CHECK(victim >= 0);
		for (int t = 0; t < NP; t++) {
			unsigned want = 1;
			if (t == victim && mode >= 1 && mode < NP)
				want = 0;
			CHECK(seen[t] == want);
		}
		if (victim >= 0)
			CHECK(loop_add(l, sp[victim][0], LOOP_READ, (uint32_t)victim) == 0);
	}

	/* fd number reused at once: close the pending fd, dup a quiet socket
	 * onto the same number, register it. Its stale event must not show. */
	int quiet[2];
	if (pair(quiet) == 0) {
		struct loop_event ev;
		int reused = -1, k = 0, stale = 0;

		CHECK(loop_wait(l, 1000) == NP);
		while (loop_next(l, &ev) == 1) {
			k++;
			if (ev.fd == reused)
				stale++;
			if (k == 1) {
				int t = ev.tag == 0 ? 1 : 0;
				reused = sp[t][0];
				loop_del(l, reused);
				close(reused);
				CHECK(dup2(quiet[0], reused) == reused);
				CHECK(loop_add(l, reused, LOOP_READ, 77) == 0);
			}
		}
		CHECK(stale == 0);
		CHECK(k == NP - 1);
		/* Not ready, so not reported; then reported with its new tag. */
		CHECK(loop_wait(l, 0) == NP - 1);
		while (loop_next(l, &ev) == 1)
			CHECK(ev.fd != reused);
		put(quiet[1]);
		CHECK(loop_wait(l, 1000) == NP);
		int got = 0;
		while (loop_next(l, &ev) == 1)
			if (ev.fd == reused) {
				got++;
				CHECK(ev.tag == 77 && ev.events == LOOP_READ);
			}
		CHECK(got == 1);
		loop_del(l, reused);
		close(quiet[0]);
		close(quiet[1]);
	}

	/* An fd added during a batch waits for the next loop_wait(). */
	int late[2];
	if (pair(late) == 0) {
		struct loop_event ev;
		int k = 0, early = 0;

		put(late[1]);
		int n = loop_wait(l, 1000);
		CHECK(n >= 1);
		while (loop_next(l, &ev) == 1) {
			if (++k == 1)
				CHECK(loop_add(l, late[0], LOOP_READ, 99) == 0);
			if (ev.fd == late[0])
				early++;
		}
		CHECK(early == 0);
		CHECK(loop_wait(l, 1000) >= 1);
		int got = 0;
		while (loop_next(l, &ev) == 1)
			if (ev.fd == late[0] && ev.tag == 99)
				got++;
		CHECK(got == 1);
		loop_del(l, late[0]);
		close(late[0]);
		close(late[1]);
	}
	for (int i = 0; i < NP; i++) {
		loop_del(l, sp[i][0]);
		close(sp[i][0]);
		close(sp[i][1]);
	}
	CHECK(no_event(l, 0));
	loop_free(l);
}

static void test_timeout(void)
{
	struct loop *l = loop_new(MAXFDS);
	int sp[2];

	if (!l || pair(sp) < 0) {
		CHECK(0);
		loop_free(l);
		return;
	}
	uint64_t t0 = now_ms();
	CHECK(no_event(l, 80)); /* nothing registered */
	uint64_t dt = now_ms() - t0;
	CHECK(dt >= 75);
	CHECK(loop_add(l, sp[0], LOOP_READ, 1) == 0);
	t0 = now_ms();
	CHECK(no_event(l, 60)); /* registered, not ready */
	dt = now_ms() - t0;
	CHECK(dt >= 55);
	t0 = now_ms();
	CHECK(no_event(l, 0));
	CHECK(now_ms() - t0 < 1000);
	put(sp[1]);
	CHECK(one_event(l, -1, sp[0], LOOP_READ, 1)); /* -1 returns when ready */
	loop_del(l, sp[0]);
	close(sp[0]);
	close(sp[1]);
	loop_free(l);
}

static void test_hangup(void)
{
	struct loop *l = loop_new(MAXFDS);
	int sp[2], p[2];

	if (!l || pair(sp) < 0 || pipe(p) < 0) {
		CHECK(0);
		loop_free(l);
		return;
	}
	/* Peer of a socketpair closes: error, with read set. */
	CHECK(loop_add(l, sp[0], LOOP_READ, 1) == 0);
	close(sp[1]);
	CHECK(one_event(l, 1000, sp[0], LOOP_READ | LOOP_ERROR, 1));
	CHECK(one_event(l, 0, sp[0], LOOP_READ | LOOP_ERROR, 1)); /* level */
	/* Parked (mask 0): not even the hang-up is reported, so no spin. */
	CHECK(loop_mod(l, sp[0], 0, 2) == 0);
	CHECK(no_event(l, 20));
	/* Writer only: the error still comes, with READ. */
	CHECK(loop_mod(l, sp[0], LOOP_WRITE, 3) == 0);
	{
		struct loop_event ev;
		CHECK(loop_wait(l, 1000) == 1);
		CHECK(loop_next(l, &ev) == 1);
		CHECK(ev.fd == sp[0] && ev.tag == 3);
		CHECK((ev.events & (LOOP_READ | LOOP_ERROR)) == (LOOP_READ | LOOP_ERROR));
		CHECK(loop_next(l, &ev) == 0);
	}
	loop_del(l, sp[0]);
	close(sp[0]);

	/* Two hung-up fds; the first event parks the other one: its pending
	 * hang-up must not be delivered (parking means no events at all). */
	int h1[2], h2[2];
	if (pair(h1) == 0 && pair(h2) == 0) {
		struct loop_event ev;
		int k = 0, other = -1, leaked = 0;
		CHECK(loop_add(l, h1[0], LOOP_READ, 11) == 0);
		CHECK(loop_add(l, h2[0], LOOP_READ, 12) == 0);
		close(h1[1]);
		close(h2[1]);
		CHECK(loop_wait(l, 1000) == 2);
		while (loop_next(l, &ev) == 1) {
			if (++k == 1) {
				CHECK(ev.events == (LOOP_READ | LOOP_ERROR));
				other = ev.fd == h1[0] ? h2[0] : h1[0];
				CHECK(loop_mod(l, other, 0, 13) == 0);
			} else if (ev.fd == other) {
				leaked++;
			}
		}
		CHECK(k == 1 && leaked == 0);
		loop_del(l, h1[0]);
		loop_del(l, h2[0]);
		close(h1[0]);
		close(h2[0]);
	}

	/* Pipe: writer closes -> hang-up on the read end. */
	CHECK(loop_add(l, p[0], LOOP_READ, 4) == 0);
	CHECK(no_event(l, 0));
	close(p[1]);
	CHECK(one_event(l, 1000, p[0], LOOP_READ | LOOP_ERROR, 4));
	loop_del(l, p[0]);
	close(p[0]);

	/* Pipe: reader closes -> error on the write end. */
	if (pipe(p) == 0) {
		CHECK(loop_add(l, p[1], LOOP_WRITE, 5) == 0);
		CHECK(one_event(l, 1000, p[1], LOOP_WRITE, 5));
		close(p[0]);
		struct loop_event ev;
		CHECK(loop_wait(l, 1000) == 1);
		CHECK(loop_next(l, &ev) == 1);
		CHECK(ev.fd == p[1] && ev.tag == 5);
		CHECK((ev.events & (LOOP_READ | LOOP_ERROR)) == (LOOP_READ | LOOP_ERROR));
		loop_del(l, p[1]);
		close(p[1]);
	}

	/* TCP half-close (FIN only) is plain end of input: READ, no ERROR. */
	int ls = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof a;
	if (ls >= 0 && bind(ls, (struct sockaddr *)&a, sizeof a) == 0 && listen(ls, 4) == 0 &&
	    getsockname(ls, (struct sockaddr *)&a, &alen) == 0) {
		int c = socket(AF_INET, SOCK_STREAM, 0);
		CHECK(c >= 0 && connect(c, (struct sockaddr *)&a, sizeof a) == 0);
		int s = accept(ls, NULL, NULL);
		CHECK(s >= 0);
		if (s >= 0 && c >= 0) {
			CHECK(loop_add(l, s, LOOP_READ, 6) == 0);
			CHECK(no_event(l, 0));
			shutdown(c, SHUT_WR);
			CHECK(one_event(l, 1000, s, LOOP_READ, 6));
			loop_del(l, s);
			close(s);
		}
		if (c >= 0)
			close(c);
	} else {
		fprintf(stderr, "loop: no loopback TCP, half-close case skipped\n");
	}
	if (ls >= 0)
		close(ls);
	loop_free(l);
}

static volatile sig_atomic_t alarms;

static void on_alarm(int sig)
{
	(void)sig;
	alarms++;
}

/* A signal during the wait is a normal wake-up, not an error. */
static void test_eintr(void)
{
	struct loop *l = loop_new(MAXFDS);
	int sp[2];
	struct sigaction sa, old;
	struct itimerval it = {.it_value = {.tv_sec = 0, .tv_usec = 30000}};

	if (!l || pair(sp) < 0) {
		CHECK(0);
		loop_free(l);
		return;
	}
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_alarm;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: let the wait see EINTR */
	CHECK(sigaction(SIGALRM, &sa, &old) == 0);
	CHECK(loop_add(l, sp[0], LOOP_READ, 1) == 0);
	alarms = 0;
	CHECK(setitimer(ITIMER_REAL, &it, NULL) == 0);
	uint64_t t0 = now_ms();
	int r = loop_wait(l, 3000);
	uint64_t dt = now_ms() - t0;
	struct loop_event ev;
	CHECK(r == 0);
	CHECK(alarms == 1);
	CHECK(dt < 2000);
	CHECK(loop_next(l, &ev) == 0);
	sigaction(SIGALRM, &old, NULL);
	/* Still usable afterwards. */
	put(sp[1]);
	CHECK(one_event(l, 1000, sp[0], LOOP_READ, 1));
	loop_del(l, sp[0]);
	close(sp[0]);
	close(sp[1]);
	loop_free(l);
}

#define MANY 300

/* More ready fds than one epoll batch holds: nothing is lost, nothing is
 * reported twice within a batch. */
static void test_many(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 2 * MANY + 64) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
		if (rl.rlim_cur < 2 * MANY + 64) {
			fprintf(stderr, "loop: RLIMIT_NOFILE too low, many-fd case skipped\n");
			return;
		}
	}
	static int sp[MANY][2];
	struct loop *l = loop_new(4 * MANY);
	int made = 0;

	CHECK(l != NULL);
	if (!l)
		return;
	for (; made < MANY; made++) {
		if (pair(sp[made]) < 0 || sp[made][0] >= 4 * MANY || sp[made][1] >= 4 * MANY)
			break;
		put(sp[made][1]);
		CHECK(loop_add(l, sp[made][0], LOOP_READ, (uint32_t)made) == 0);
	}
	CHECK(made == MANY);
	unsigned char all[MANY] = {0};
	int total = 0, dup_in_batch = 0, count_mismatch = 0;
	for (int round = 0; round < 4 && total < made; round++) {
		unsigned char batch[MANY] = {0};
		struct loop_event ev;
		int n = loop_wait(l, 1000), k = 0;
		while (loop_next(l, &ev) == 1) {
			k++;
			if (ev.tag >= (uint32_t)made || ev.fd != sp[ev.tag][0] || batch[ev.tag]++)
				dup_in_batch++;
			else if (!all[ev.tag]++)
				total++;
		}
		if (k != n)
			count_mismatch++;
	}
	CHECK(dup_in_batch == 0);
	CHECK(count_mismatch == 0);
	CHECK(total == made);
	for (int i = 0; i < made; i++) {
		loop_del(l, sp[i][0]);
		close(sp[i][0]);
		close(sp[i][1]);
	}
	loop_free(l);
}

int main(void)
{
	test_basic();
	test_masks();
	test_del_in_batch();
	test_timeout();
	test_hangup();
	test_many();
	test_eintr();
	printf("loop backend: %s\n", loop_backend());
	return check_summary("loop");
}
