/* admin_stats: `tarpitd stats`, the client of the control socket (see
 * admin.h). */
#include "admin_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "iprange.h"
#include "limits.h"
#include "util.h"

/* ---- the control socket ------------------------------------------------------ */

/* Sends req to the running server's control socket and reads its whole
 * answer into b. 0 ok; 1 after saying why not. */
int admin_control_request(const char *req, struct buf *b)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { ADMIN_STATS_TIMEOUT_MS / 1000, 0 };
	const char *sock = sa.sun_path;
	uint64_t deadline;
	int fd = -1, status = 1;
	size_t n = strlen(req);
	struct ucred cr;
	socklen_t crlen = sizeof cr;

	if (!admin_cfg.server.control[0])
		return admin_fail(1, "no control socket configured ([server] control)");
	if (strlen(admin_cfg.server.control) >= sizeof sa.sun_path)
		return admin_fail(1, "control socket path too long: %s", admin_cfg.server.control);
	strcpy(sa.sun_path, admin_cfg.server.control);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return admin_fail(1, "socket: %s", strerror(errno));
	/* A connect to a full backlog waits; SO_SNDTIMEO bounds that wait. */
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	deadline = util_now_ms() + ADMIN_STATS_TIMEOUT_MS;
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		if (errno == ENOENT || errno == ECONNREFUSED || errno == ENOTSOCK)
			admin_fail(1, "the server is not running (control socket %s: %s)", sock, strerror(errno));
		else if (errno == EAGAIN || errno == EINPROGRESS)
			admin_fail(1, "the server does not answer (control socket %s)", sock);
		else
			admin_fail(1, "cannot connect to the control socket %s: %s", sock, strerror(errno));
		goto out;
	}
	/* SPEC §2: only a running tarpitd is talked to. The process that
	 * holds the socket must run tarpitd or be the one the pidfile names
	 * (a server run under a wrapper such as valgrind has another name). */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) == 0 && cr.pid > 0 &&
	    !admin_pid_is_tarpitd(cr.pid) && admin_read_pidfile(admin_cfg.server.pidfile) != cr.pid) {
		admin_fail(1, "the control socket %s is held by pid %ld, which is not a running tarpitd", sock,
			   (long)cr.pid);
		goto out;
	}
	if (send(fd, req, n, MSG_NOSIGNAL) != (ssize_t)n) {
		admin_fail(1, "cannot send to the control socket %s: %s", sock, strerror(errno));
		goto out;
	}
	switch (admin_read_all(fd, b, ADMIN_STATS_MAX, deadline)) {
	case 0:
		status = 0;
		break;
	case RD_TIME:
		admin_fail(1, "the server did not answer within %d s (control socket %s)", ADMIN_STATS_TIMEOUT_MS / 1000, sock);
		break;
	case RD_POLL:
		admin_fail(1, "poll: %s", strerror(errno));
		break;
	case RD_BIG:
		admin_fail(1, "the server's answer is longer than %d octets", ADMIN_STATS_MAX);
		break;
	case RD_OOM:
		admin_out_of_memory();
		break;
	default:
		admin_fail(1, "reading the control socket %s: %s", sock, strerror(errno));
	}
out:
	close(fd);
	return status;
}

static int print_answer(const char *cmd, const struct buf *b)
{
	if (b->len && fwrite(b->p, 1, b->len, stdout) != b->len)
		return admin_fail(1, "%s: cannot write: %s", cmd, strerror(errno));
	return admin_flush_stdout(cmd);
}

/* ---- stats ------------------------------------------------------------------ */

int admin_stats(const char *path, int argc, char **argv)
{
	struct buf b = { 0 };
	int status = 1;

	if (argc > 0)
		return admin_fail(2, "stats takes no arguments ('%s' is extra)", admin_echo(argv[0]));
	if (admin_load_or_report(path) != 0)
		return 1;
	if (admin_control_request("stats\n", &b) == 0)
		status = print_answer("stats", &b);
	free(b.p);
	config_free(&admin_cfg);
	return status;
}

/* ---- harvest ---------------------------------------------------------------- */

/* `harvest`: the discredited sources, one logfmt line each; `harvest
 * forgive ADDR|all`: clears marks (SPEC §2). */
int admin_harvest(const char *path, int argc, char **argv)
{
	static char req[CONTROL_REQ_MAX];
	struct buf b = { 0 };
	struct ip_addr a;
	int status = 1;

	if (argc == 0) {
		strcpy(req, "harvest\n");
	} else if (strcmp(argv[0], "forgive") == 0 && argc == 2) {
		char addr[64];
		size_t n = strlen(argv[1]);

		if (n >= sizeof addr)
			return admin_fail(2, "harvest forgive: '%s' is not an address", admin_echo(argv[1]));
		memcpy(addr, argv[1], n + 1);
		if (n > 3 && strcmp(addr + n - 3, "/64") == 0)
			addr[n - 3] = 0;
		if (strcmp(addr, "all") != 0 && ip_parse(addr, &a) != 0)
			return admin_fail(2, "harvest forgive: '%s' is not an address (ADDR or all)", admin_echo(argv[1]));
		snprintf(req, sizeof req, "forgive %s\n", argv[1]);
	} else {
		return admin_fail(2, "usage: harvest [forgive ADDR|all]");
	}
	if (admin_load_or_report(path) != 0)
		return 1;
	if (admin_control_request(req, &b) != 0)
		goto out;
	if (b.len && strncmp(b.p, "error=no_harvest_table", 22) == 0) {
		admin_fail(1, "the server keeps no harvest table ([harvest] table_size is 0 or missing)");
	} else if (b.len && strncmp(b.p, "error=", 6) == 0) {
		admin_fail(1, "the server refused the request: %.*s", (int)strcspn(b.p, "\n"), b.p);
	} else if (argc == 0) {
		status = print_answer("harvest", &b);
	} else if (b.len && strncmp(b.p, "forgiven=", 9) == 0) {
		unsigned long n = strtoul(b.p + 9, NULL, 10);

		if (n == 0 && strcmp(argv[1], "all") != 0) {
			admin_fail(1, "%s is not discredited", admin_echo(argv[1]));
		} else {
			printf("tarpitd: forgave %lu source%s\n", n, n == 1 ? "" : "s");
			status = admin_flush_stdout("harvest");
		}
	} else {
		admin_fail(1, "the server's answer is not understood");
	}
out:
	free(b.p);
	config_free(&admin_cfg);
	return status;
}
