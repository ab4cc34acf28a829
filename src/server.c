#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "ban.h"
#include "commit.h"
#include "conn.h"
#include "conn_table.h"
#include "control.h"
#include "gen.h"
#include "harvest.h"
#include "limits.h"
#include "listen.h"
#include "log.h"
#include "loop.h"
#include "maildir.h"
#include "priv.h"
#include "queue.h"
#include "relay.h"
#include "recipients.h"
#include "route.h"
#include "tls.h"
#include "util.h"
#include "verify.h"

struct server S;

/* What only the loop itself uses. */
static struct {
	int sigpipe[2];
	bool pidfile_ours; /* written by this process: only then removed */
	struct tw_node tick;
} R = {{-1, -1}, false, {0}};

/* Set by on_signal, indexed by signal number; SIGINT counts as SIGTERM. */
static volatile sig_atomic_t sig_seen[NSIG];

/* The removals after deliveries since the last sync of queue/: most are
 * covered by the next commit round's sync (queue_synced); the others wait
 * for the tick, so a second of deliveries costs one fsync, not one per
 * loop pass. A crash before it can only bring a delivered message back
 * (the duplicate window of SPEC §10, here at most about a second), never
 * lose one; a stop syncs them before the exit. */
static void sync_removals(void)
{
	if (S.queue && queue_sync(S.queue) != 0)
		log_msg(LOG_LVL_ERROR, "event=queue_error error=\"sync: %s\"", strerror(errno));
}

static void on_tick(void)
{
	sync_removals();
	gen_check_recipients();
	listen_tick();
	tw_arm(&S.wheel, &R.tick, S.now + TICK_MS);
}

static void on_signal(int sig)
{
	int saved = errno;
	char b = 0;
	ssize_t r;
	sig_seen[sig == SIGINT ? SIGTERM : sig] = 1;
	r = write(R.sigpipe[1], &b, 1);
	(void)r;
	errno = saved;
}

/* SIGTERM: stop listening; sessions between commands get 421 4.3.2 at
 * once (a pending tarpitted reply is dropped for it); a message being
 * received may finish within shutdown_timeout, then its session is closed
 * unanswered (SPEC §9), so the exit is bounded. */
static void begin_shutdown(void)
{
	S.stopping = true;
	listen_close_all();
	for (uint32_t i = 0; i < S.tab->size; i++) {
		struct conn *c = &S.tab->slots[i];
		if (c->fd < 0 || !c->connector || c->phase == P_LINGER)
			continue;
		conn_shutdown(c);
	}
	relay_shutdown(); /* outbound: recipients in flight deferred, envelopes updated */
	log_msg(LOG_LVL_NOTICE, "event=stopping sessions=%u shutdown_timeout=%u", S.tab->size - S.tab->nfree,
		S.gen->cfg.server.shutdown_timeout);
}

static int drop_privileges(const char *user)
{
	struct passwd *pw = getpwnam(user);
	if (!pw) {
		log_msg(LOG_LVL_ERROR, "user '%s' does not exist", user);
		return -1;
	}
	/* spool_group stays a supplementary group: the Maildir writer gives
	 * each new file and directory to it (SPEC §5). */
	gid_t gs[2] = { pw->pw_gid, (gid_t)S.boot.spool_gid };
	size_t ng = S.boot.spool_gid != CONF_NO_GID && S.boot.spool_gid != pw->pw_gid ? 2 : 1;
	if (setgroups(ng, gs) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0) {
		log_msg(LOG_LVL_ERROR, "cannot become user '%s': %s", user, strerror(errno));
		return -1;
	}
	/* Verified, not assumed: a failed setuid must not go unnoticed. */
	if (pw->pw_uid != 0 && (setuid(0) == 0 || geteuid() != pw->pw_uid)) {
		log_msg(LOG_LVL_ERROR, "privileges were not dropped");
		return -1;
	}
	return 0;
}

static int write_pidfile(const char *path)
{
	int n, fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	n = dprintf(fd, "%ld\n", (long)getpid());
	return close(fd) != 0 || n < 0 ? -1 : 0;
}

int server_queue_open(void)
{
	char path[PATH_MAX + 8], err[256];
	if (S.queue || S.gen->cfg.nrelays == 0)
		return 0;
	if (snprintf(path, sizeof path, "%s/queue", S.boot.spool) >= (int)sizeof path) {
		log_msg(LOG_LVL_ERROR, "spool path too long for the queue");
		return -1;
	}
	S.queue = queue_open(path, S.boot.max_queued, err, sizeof err);
	if (!S.queue) {
		log_msg(LOG_LVL_ERROR, "%s", err);
		return -1;
	}
	log_msg(LOG_LVL_NOTICE, "event=queue_open dir=%s max_queued=%u", path, S.boot.max_queued);
	return 0;
}

void server_queue_kick(void)
{
	relay_kick();
}

static int setup(struct config *cfg)
{
	struct gen *g;
	static char err[2048]; /* static: a small frame is cheaper code on MIPS16 */
	struct rlimit rl;
	uint32_t maxfds;
	_Static_assert(FD_RESERVED == 81, "docs/config.md and the init script say 2 x max_connections + 81");
	struct sigaction sa = {.sa_handler = on_signal};
	static const int signals[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGCHLD};

	S.boot = cfg->server;
	g = gen_new(cfg);
	if (!g)
		return -1;
	gen_use(g);
	S.max_rcpt = 1;
	for (unsigned i = 0; i < S.gen->n; i++)
		if (S.gen->connectors[i].cf->max_recipients_per_message > S.max_rcpt)
			S.max_rcpt = (uint16_t)S.gen->connectors[i].cf->max_recipients_per_message;
	/* Before any socket or file is opened: the helper holds none of them. */
	if (priv_start(&S.gen->cfg) != 0)
		return -1;

	/* Every slot may need two descriptors (its socket and the message it
	 * is receiving), plus FD_RESERVED (limits.h). The soft limit is
	 * raised as far as the hard one allows; if that is short, say by how
	 * much and serve anyway: what does not fit is refused politely (421
	 * at accept, 452 at DATA), never lost (SPEC §9). */
	maxfds = 2 * S.boot.max_connections + FD_RESERVED + 2 * relay_slots(&S.gen->cfg);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < maxfds) {
		rl.rlim_cur = rl.rlim_max < maxfds ? rl.rlim_max : maxfds;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < maxfds) {
		log_msg(LOG_LVL_WARNING, "needs %u descriptors (2 x max_connections + %u), limit is %llu: "
			"sessions beyond it are refused (421) or deferred at DATA (452); raise it (ulimit -n)",
			maxfds, FD_RESERVED, (unsigned long long)rl.rlim_cur);
		maxfds = (uint32_t)rl.rlim_cur;
	}

	S.loop = loop_new((int)maxfds);
	S.tab = conn_table_new(S.boot.max_connections, S.max_rcpt);
	if (!S.loop || !S.tab || conn_init(S.boot.max_connections) != 0 || verify_init(S.boot.max_connections) != 0) {
		log_msg(LOG_LVL_ERROR, "cannot allocate the connection table for %u connections",
			S.boot.max_connections);
		return -1;
	}
	if (priv_fd() >= 0 && loop_add(S.loop, priv_fd(), LOOP_READ, TAG_PRIV) != 0)
		return -1;
	S.rcpts = recipients_load(S.boot.recipients, err, sizeof err);
	if (!S.rcpts)
		goto failed;
	if (route_check(&S.gen->cfg, S.rcpts, err, sizeof err) != 0) {
		log_lines(err);
		return -1;
	}
	if (S.gen->cfg.auth.enabled) {
		S.users = users_load(S.gen->cfg.auth.users, err, sizeof err);
		if (!S.users) {
			log_lines(err);
			return -1;
		}
	}
	if (S.gen->cfg.harvest.enabled) {
		S.harvest = harvest_new(S.gen->cfg.harvest.table_size);
		if (!S.harvest) {
			log_msg(LOG_LVL_ERROR, "cannot allocate the harvest table of %u entries",
				S.gen->cfg.harvest.table_size);
			return -1;
		}
		ban_init();
	}
	if (S.gen->cfg.tls.enabled) {
		/* The pool's contexts are set up on first use, so a server whose
		 * clients never ask for TLS spends no memory on it. */
		const struct tls_conf *tc = &S.gen->cfg.tls;
		S.tls = tls_open(&(struct tls_opts){ .certificate = tc->certificate,
						     .key = tc->key,
						     .max_sessions = tc->max_sessions,
						     .max_per_source = tc->max_sessions_per_source,
						     .min_version = tc->min_version,
						     .session_tickets = tc->session_tickets },
				 err, sizeof err);
		if (!S.tls) {
			config_tls_error(&S.gen->cfg, err, sizeof err);
			goto failed;
		}
	}
	if (listen_reconcile(S.gen) != 0)
		return -1;
	if (S.boot.control[0] && control_open(S.boot.control) != 0)
		return -1;
	if (S.boot.pidfile[0] && write_pidfile(S.boot.pidfile) != 0) {
		log_msg(LOG_LVL_ERROR, "cannot write pidfile %s: %s", S.boot.pidfile, strerror(errno));
		return -1;
	}
	R.pidfile_ours = S.boot.pidfile[0] != 0;
	if (S.boot.user[0] && drop_privileges(S.boot.user) != 0)
		return -1;
	S.md = maildir_open(S.boot.spool, S.boot.hostname, err, sizeof err);
	if (!S.md)
		goto failed;
	/* After the drop, like the Maildir: the queue belongs to the daemon's
	 * user; recovered in steps by the loop. */
	if (server_queue_open() != 0)
		return -1;
	if (relay_init() != 0) {
		log_msg(LOG_LVL_ERROR, "cannot allocate the outbound table");
		return -1;
	}

	if (pipe2(R.sigpipe, O_NONBLOCK | O_CLOEXEC) != 0)
		return -1;
	sigemptyset(&sa.sa_mask);
	for (unsigned i = 0; i < sizeof signals / sizeof signals[0]; i++)
		sigaction(signals[i], &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (loop_add(S.loop, R.sigpipe[0], LOOP_READ, TAG_SIGNAL) != 0)
		return -1;
	listen_init();

	{
		/* glibc loads its time-zone data on the first gmtime_r(): do it
		 * now, so the first stored message allocates nothing. */
		time_t t = time(NULL);
		struct tm tm;
		gmtime_r(&t, &tm);
	}
	S.now = util_now_ms();
	tw_init(&S.wheel, S.now);
	tw_node_init(&R.tick);
	tw_arm(&S.wheel, &R.tick, S.now + TICK_MS);
	log_msg(LOG_LVL_NOTICE, "event=start version=%s backend=%s max_connections=%u slot_bytes=%zu",
		TARPITD_VERSION, loop_backend(), S.boot.max_connections, sizeof(struct conn));
	return 0;

failed:
	log_msg(LOG_LVL_ERROR, "%s", err);
	return -1;
}

static void teardown(void)
{
	/* A slot never used has neither a descriptor nor a connector. */
	for (uint32_t i = 0; S.tab && i < S.tab->size; i++)
		if (S.tab->slots[i].connector)
			conn_close(&S.tab->slots[i], "shutdown");
	listen_close_all();
	control_close(S.boot.control);
	if (R.pidfile_ours)
		unlink(S.boot.pidfile); /* fails after the drop from a root-owned directory: priv removes it */
	relay_fini();
	sync_removals();
	queue_close(S.queue);
	maildir_close(S.md);
	recipients_unref(S.rcpts);
	users_free(S.users);
	tls_free(S.tls);
	harvest_free(S.harvest);
	ban_fini();
	conn_table_free(S.tab);
	conn_fini();
	verify_fini();
	loop_free(S.loop);
	if (S.gen)
		gen_unref(S.gen);
	gen_free_all();
	listen_fini();
	if (R.sigpipe[0] >= 0) {
		close(R.sigpipe[0]);
		close(R.sigpipe[1]);
	}
}

/* What the loop does for a signal once the events it interrupted are served. */
static const struct {
	int sig;
	void (*run)(void);
} on_sig[] = {
	{SIGHUP, gen_reload},
	{SIGUSR1, control_log_stats},
	{SIGCHLD, ban_reap},
};

/* One slice of the queue's recovery per loop pass (64 directory
 * entries): 10,000 queued messages never hold the loop at start. */
static void recover_step(void)
{
	int r = queue_recover_step(S.queue);
	if (r < 0)
		log_msg(LOG_LVL_ERROR, "event=queue_recover_error error=\"%s\"", strerror(errno));
	if (r <= 0)
		log_msg(LOG_LVL_NOTICE, "event=queue_recovered queued=%u overflow=%u", queue_count(S.queue),
			queue_overflow(S.queue));
	relay_kick(); /* what the step found may be due */
}

static void dispatch(const struct loop_event *ev)
{
	if (ev->tag == TAG_SIGNAL) {
		char b[64];
		while (read(R.sigpipe[0], b, sizeof b) > 0)
			;
	} else if (ev->tag == TAG_PRIV) {
		ban_helper_event();
	} else if ((ev->tag & ~0xffffu) == TAG_RELAY) {
		relay_event(ev->tag, ev->events);
	} else if ((ev->tag & ~0xffu) == TAG_CONTROL) {
		control_event(ev->tag);
	} else if (ev->tag & TAG_LISTENER) {
		if (!S.stopping)
			listen_accept(ev->tag & ~TAG_LISTENER);
	} else if (ev->tag < S.tab->size && S.tab->slots[ev->tag].fd == ev->fd) {
		conn_on_event(&S.tab->slots[ev->tag], ev->events);
	}
}

int server_run(struct config *cfg)
{
	int status = 0;

	if (setup(cfg) != 0) {
		teardown();
		return 1;
	}
	while (!S.stopping || S.tab->nfree < S.tab->size || relay_active()) {
		struct loop_event ev;
		struct tw_node *node;
		/* A password check in progress: look at the sockets, then go on. */
		bool busy = verify_pending() || (S.queue && queue_recovering(S.queue) && !S.stopping);
		int64_t timeout = busy ? 0 : tw_next_timeout(&S.wheel, util_now_ms());

		if (timeout > INT32_MAX)
			timeout = INT32_MAX;
		if (loop_wait(S.loop, timeout < 0 ? -1 : (int)timeout) < 0) {
			log_msg(LOG_LVL_ERROR, "event loop failed: %s", strerror(errno));
			status = 1;
			break;
		}
		S.now = util_now_ms();
		while (loop_next(S.loop, &ev))
			dispatch(&ev);
		while ((node = tw_expire(&S.wheel, S.now)) != NULL) {
			if (node == &R.tick)
				on_tick();
			else if (!control_timer(node) && !relay_timer(node))
				conn_on_timer((struct conn *)(void *)((char *)node - offsetof(struct conn, timer)));
		}
		commit_run();
		verify_run();
		if (S.stopping)
			sync_removals();
		if (S.queue && queue_recovering(S.queue) && !S.stopping)
			recover_step();
		if (sig_seen[SIGTERM] && !S.stopping)
			begin_shutdown();
		for (unsigned i = 0; i < sizeof on_sig / sizeof on_sig[0]; i++) {
			if (sig_seen[on_sig[i].sig]) {
				sig_seen[on_sig[i].sig] = 0;
				on_sig[i].run();
			}
		}
	}
	log_msg(LOG_LVL_NOTICE, "event=stop");
	teardown();
	return status;
}
