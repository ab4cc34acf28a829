/* admin: see admin.h; the helpers all commands share (admin_int.h). The
 * commands live in admin_show.c, admin_set.c, admin_stats.c and
 * admin_passwd.c.
 */
#include "admin_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

struct config admin_cfg;
char admin_load_err[16384];

int admin_fail(int status, const char *fmt, ...)
{
	va_list ap;

	fputs("tarpitd: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return status;
}

const char *admin_echo(const char *s)
{
	static char buf[LOG_ECHO_BUF];

	return log_echo(buf, sizeof buf, s, strlen(s));
}

int admin_unknown_option(const char *cmd, const char *arg)
{
	return admin_fail(2, "%s: unknown option '%s'", cmd, admin_echo(arg));
}

int admin_no_connector(const char *name)
{
	return admin_fail(1, "no connector named '%s'", admin_echo(name));
}

int admin_out_of_memory(void)
{
	return admin_fail(1, "out of memory");
}

void admin_put(struct buf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		p = realloc(b->p, cap);
		if (!p) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void admin_puts(struct buf *b, const char *s)
{
	admin_put(b, s, strlen(s));
}

int admin_load_or_report(const char *path)
{
	if (config_load(&admin_cfg, path, admin_load_err, sizeof admin_load_err) != 0) {
		fprintf(stderr, "%s\n", admin_load_err);
		return -1;
	}
	return 0;
}

int admin_flush_stdout(const char *cmd)
{
	if (fflush(stdout) != 0)
		return admin_fail(1, "%s: cannot write: %s", cmd, strerror(errno));
	return 0;
}

int admin_read_all(int fd, struct buf *b, size_t max, uint64_t deadline)
{
	static char chunk[4096];

	for (;;) {
		ssize_t n;

		if (deadline) {
			struct pollfd pfd = { fd, POLLIN, 0 };
			uint64_t now = util_now_ms();
			int pr;

			if (now >= deadline) {
				errno = ETIMEDOUT;
				return RD_TIME;
			}
			pr = poll(&pfd, 1, deadline - now > INT_MAX ? INT_MAX : (int)(deadline - now));
			if (pr < 0 && errno != EINTR)
				return RD_POLL;
			if (pr <= 0)
				continue;
		}
		n = read(fd, chunk, sizeof chunk);
		if (n < 0 && (errno == EINTR || (deadline && errno == EAGAIN)))
			continue;
		if (n <= 0)
			return n < 0 ? RD_ERR : 0;
		if (b->len + (size_t)n > max) {
			errno = EFBIG;
			return RD_BIG;
		}
		admin_put(b, chunk, (size_t)n);
		if (b->oom) {
			errno = ENOMEM;
			return RD_OOM;
		}
	}
}

/* The pid in a pidfile: > 1, or 0 (no file, empty, or not a pid and its
 * line end: none of ours). */
long long admin_read_pidfile(const char *pidfile)
{
	char s[65];
	long long pid = 0;
	ssize_t n = -1, i;
	int fd = pidfile[0] ? open(pidfile, O_RDONLY | O_NONBLOCK | O_CLOEXEC) : -1;

	if (fd >= 0) {
		n = read(fd, s, sizeof s);
		close(fd);
	}
	if (n <= 0 || n >= (ssize_t)sizeof s)
		return 0;
	for (i = 0; i < n && s[i] >= '0' && s[i] <= '9' && pid <= INT32_MAX; i++)
		pid = pid * 10 + (s[i] - '0');
	while (i < n && (s[i] == '\n' || s[i] == '\r' || s[i] == ' ' || s[i] == '\t'))
		i++;
	/* Never 0 or -1, which would signal a whole process group. */
	if (i != n || pid < 2 || pid > INT32_MAX)
		return 0;
	return pid;
}

/* The first octets of /proc/PID/FILE into buf (NUL-terminated), or -1. */
static ssize_t read_proc(long long pid, const char *file, char *buf, size_t len)
{
	char path[48];
	ssize_t n;
	int fd;

	snprintf(path, sizeof path, "/proc/%lld/%s", pid, file);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n >= 0)
		buf[n] = 0;
	return n;
}

/* A tarpitd is a process named tarpitd, or one that runs a tarpitd
 * binary under an emulator or a checker (qemu-user, valgrind: their
 * name is theirs; the binary is one of their first arguments). */
bool admin_pid_is_tarpitd(long long pid)
{
	static char args[4096];
	ssize_t n = read_proc(pid, "comm", args, 32);

	if (n > 0 && strcmp(args, "tarpitd\n") == 0)
		return true;
	n = read_proc(pid, "cmdline", args, sizeof args);
	for (ssize_t i = 0; n > 0 && i < n; i += (ssize_t)strlen(args + i) + 1) {
		const char *base = strrchr(args + i, '/');
		if (strcmp(base ? base + 1 : args + i, "tarpitd") == 0)
			return true;
	}
	return false;
}

/* The pid that listens on the control socket (SO_PEERCRED), 0 when none
 * does. */
static long long control_peer(const char *control)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct ucred cr;
	socklen_t len = sizeof cr;
	long long pid = 0;
	int fd;

	if (!control[0] || strlen(control) >= sizeof sa.sun_path)
		return 0;
	strcpy(sa.sun_path, control);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0)
		pid = cr.pid;
	close(fd); /* the server drops a client that sends no request */
	return pid;
}

void admin_tell_server(const char *pidfile, const char *control)
{
	long long pid = admin_read_pidfile(pidfile);

	if (pid == 0 || (pid_t)pid == getpid())
		return;
	if (kill((pid_t)pid, 0) != 0) {
		if (errno == EPERM)
			admin_fail(0, "the server (pid %lld) may not be signalled by this user; send it SIGHUP to reload",
			     pid);
		return; /* no such process: no server running, nothing to tell */
	}
	/* The pid may have been reused since the pidfile was written (SPEC
	 * §2): only a tarpitd, known by its name or as the process that holds
	 * the control socket, is signalled. */
	if (!admin_pid_is_tarpitd(pid) && control_peer(control) != pid) {
		admin_fail(0, "stale pidfile %s: pid %lld is not a running tarpitd; not signalled", pidfile, pid);
		return;
	}
	if (kill((pid_t)pid, SIGHUP) != 0)
		admin_fail(0, "cannot tell the server (pid %lld) to reload: %s", pid, strerror(errno));
	else
		printf("tarpitd: told the server (pid %lld) to reload\n", pid);
}
