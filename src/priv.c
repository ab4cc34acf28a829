/* priv: see priv.h.
 *
 * Why a helper and not a kept directory descriptor: unlinkat() checks the
 * caller's rights on the directory at the time of the call, not those of
 * whoever opened the descriptor, so after the drop only a process with
 * CAP_DAC_OVERRIDE (or root) can remove a name from a root-owned
 * directory such as /var/run. And `nft add element` needs CAP_NET_ADMIN.
 * The helper is the one process that keeps those rights; the loop, which
 * talks to the network, never has them.
 *
 * Capabilities are set with the raw capset(2) and prctl(2) calls, so no
 * libcap is needed on the router.
 */
#include "priv.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "iprange.h"
#include "limits.h"
#include "log.h"

#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_RAISE 2
#endif

/* From linux/capability.h, which not every toolchain ships. */
#define CAP_DAC_OVERRIDE 1
#define CAP_FOWNER 3
#define CAP_NET_ADMIN 12
#define CAP_VERSION_3 0x20080522u

struct cap_header {
	uint32_t version;
	int pid;
};
struct cap_data {
	uint32_t effective, permitted, inheritable;
};

static struct {
	int fd;
	pid_t pid;
} P = {-1, 0};

int priv_fd(void)
{
	return P.fd;
}

/* ---- the helper ------------------------------------------------------------- */

/* The daemon's user, keeping CAP_DAC_OVERRIDE and CAP_FOWNER (for the
 * clean-up) and, with a ban command, CAP_NET_ADMIN: also inheritable and
 * ambient, so the command (no file capabilities, not set-uid) gets it and
 * only it. */
static int become_user(const char *user, bool net_admin)
{
	struct passwd *pw = getpwnam(user);
	struct cap_header h = {CAP_VERSION_3, 0};
	struct cap_data d[2];
	uint32_t keep = 1u << CAP_DAC_OVERRIDE | 1u << CAP_FOWNER | (net_admin ? 1u << CAP_NET_ADMIN : 0);

	if (!pw || prctl(PR_SET_KEEPCAPS, 1L, 0L, 0L, 0L) != 0 || setgroups(1, &pw->pw_gid) != 0 ||
	    setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0)
		return -1;
	memset(d, 0, sizeof d);
	d[0].effective = d[0].permitted = keep;
	d[0].inheritable = net_admin ? 1u << CAP_NET_ADMIN : 0;
	if (syscall(SYS_capset, &h, d) != 0 || prctl(PR_SET_KEEPCAPS, 0L, 0L, 0L, 0L) != 0)
		return -1;
	if (pw->pw_uid != 0 && (setuid(0) == 0 || geteuid() != pw->pw_uid))
		return -1;
	if (net_admin && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, (long)CAP_NET_ADMIN, 0L, 0L) != 0)
		return -1;
	return 0;
}

static void answer(int fd, int32_t status)
{
	ssize_t r = send(fd, &status, sizeof status, MSG_NOSIGNAL | MSG_DONTWAIT);
	(void)r; /* a loop that does not read loses the count, nothing else */
}

/* Whether a process listens on the UNIX socket at path: the daemon has
 * closed its own by now, so one that still answers is another instance's
 * (a second start that failed must not remove the running one's). */
static bool socket_in_use(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, r;

	if (strlen(path) >= sizeof sa.sun_path)
		return true;
	memcpy(sa.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return true;
	r = connect(fd, (struct sockaddr *)&sa, sizeof sa);
	r = r == 0 || errno != ECONNREFUSED;
	close(fd);
	return r;
}

/* The pidfile only while it still names the daemon; the control socket
 * only while it is a socket nobody listens on. */
static void clean_up(const struct server_conf *sv, pid_t daemon)
{
	struct stat st;

	if (sv->pidfile[0]) {
		char b[32];
		int fd = open(sv->pidfile, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		ssize_t n = fd >= 0 ? read(fd, b, sizeof b - 1) : -1;

		if (fd >= 0)
			close(fd);
		if (n > 0) {
			b[n] = 0;
			if (strtol(b, NULL, 10) == (long)daemon)
				unlink(sv->pidfile);
		}
	}
	if (sv->control[0] && lstat(sv->control, &st) == 0 && S_ISSOCK(st.st_mode) && !socket_in_use(sv->control))
		unlink(sv->control);
}

static void run_ban(int fd, const struct harvest_conf *h, const posix_spawnattr_t *attr,
		    const posix_spawn_file_actions_t *fa, char *req, ssize_t n, unsigned *running)
{
	static char *const envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL};
	char *argv[CONF_BAN_WORDS + 1];
	char ip[64];
	struct ip_addr a;
	pid_t pid;
	int rc;

	req[n] = 0;
	if (h->ban_argc == 0 || ip_parse(req, &a) != 0) {
		rc = EINVAL;
	} else if (*running >= PRIV_CHILDREN) {
		rc = EAGAIN;
	} else {
		ip_format(&a, ip, sizeof ip);
		for (unsigned i = 0; i < h->ban_argc; i++)
			argv[i] = (char *)(i == h->ban_addr ? ip : h->ban_buf + h->ban_off[i]);
		argv[h->ban_argc] = NULL;
		rc = posix_spawn(&pid, argv[0], fa, attr, argv, envp);
		if (rc == 0) {
			(*running)++;
			return;
		}
	}
	answer(fd, -rc);
}

static void helper(int fd, const struct config *cfg, pid_t daemon)
{
	static const int quiet[] = {SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2, SIGPIPE};
	posix_spawnattr_t attr;
	posix_spawn_file_actions_t fa;
	sigset_t dfl;
	unsigned running = 0;

	prctl(PR_SET_NAME, (unsigned long)"tarpitd-priv", 0L, 0L, 0L);
	/* The daemon's stop (and a ^C to the process group) must not end the
	 * helper before its clean-up; the ban command gets the defaults. */
	sigemptyset(&dfl);
	for (unsigned i = 0; i < sizeof quiet / sizeof quiet[0]; i++) {
		signal(quiet[i], SIG_IGN);
		sigaddset(&dfl, quiet[i]);
	}
	if (become_user(cfg->server.user, cfg->harvest.ban_argc > 0) != 0) {
		log_msg(LOG_LVL_ERROR, "privileged helper: cannot become user '%s' keeping its capabilities: %s",
			cfg->server.user, strerror(errno));
		_exit(1);
	}
	posix_spawnattr_init(&attr);
	posix_spawnattr_setsigdefault(&attr, &dfl);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	answer(fd, 0); /* ready */
	for (;;) {
		struct pollfd pfd = {fd, POLLIN, 0};
		char req[64];
		ssize_t n;
		int st;
		pid_t pid;

		/* A ban command running: its end is looked for every 100 ms
		 * (the helper has no loop of its own to take SIGCHLD). */
		if (poll(&pfd, 1, running ? 100 : -1) < 0 && errno != EINTR)
			break;
		while (running && (pid = waitpid(-1, &st, WNOHANG)) > 0) {
			running--;
			answer(fd, st);
		}
		if (!(pfd.revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		n = recv(fd, req, sizeof req - 1, MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0)
			break; /* the daemon's end closed */
		run_ban(fd, &cfg->harvest, &attr, &fa, req, n, &running);
	}
	clean_up(&cfg->server, daemon);
	_exit(0);
}

/* ---- the loop's side -------------------------------------------------------- */

int priv_start(const struct config *cfg)
{
	int sv[2];
	int32_t ready = -1;
	pid_t daemon = getpid();

	if (!cfg->server.user[0] || geteuid() != 0)
		return 0;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
		log_msg(LOG_LVL_ERROR, "privileged helper: socketpair: %s", strerror(errno));
		return -1;
	}
	P.pid = fork();
	if (P.pid < 0) {
		log_msg(LOG_LVL_ERROR, "privileged helper: fork: %s", strerror(errno));
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	if (P.pid == 0) {
		close(sv[0]);
		helper(sv[1], cfg, daemon);
	}
	close(sv[1]);
	P.fd = sv[0];
	/* At start the loop may wait: the helper says it is ready, or exits. */
	if (recv(P.fd, &ready, sizeof ready, 0) != (ssize_t)sizeof ready || ready != 0) {
		priv_stop();
		return -1;
	}
	fcntl(P.fd, F_SETFL, O_NONBLOCK);
	log_msg(LOG_LVL_INFO, "event=priv_helper pid=%ld", (long)P.pid);
	return 0;
}

int priv_ban(const char *ip)
{
	size_t n = strlen(ip);

	if (P.fd < 0) {
		errno = ESRCH;
		return -1;
	}
	return send(P.fd, ip, n, MSG_NOSIGNAL | MSG_DONTWAIT) == (ssize_t)n ? 0 : -1;
}

int priv_answer(int *status)
{
	int32_t st;
	ssize_t n;

	if (P.fd < 0)
		return -1;
	n = recv(P.fd, &st, sizeof st, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return 0;
	if (n != (ssize_t)sizeof st)
		return -1;
	*status = st;
	return 1;
}

bool priv_exited(pid_t pid)
{
	if (P.pid <= 0 || pid != P.pid)
		return false;
	P.pid = 0;
	return true;
}

void priv_drop(void)
{
	if (P.fd >= 0)
		close(P.fd);
	P.fd = -1;
}

void priv_stop(void)
{
	int st;

	priv_drop();
	while (P.pid > 0 && waitpid(P.pid, &st, 0) < 0 && errno == EINTR)
		;
	P.pid = 0;
}
