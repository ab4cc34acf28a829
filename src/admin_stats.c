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

#include "util.h"

/* ---- stats ------------------------------------------------------------------ */

int admin_stats(const char *path, int argc, char **argv)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { ADMIN_STATS_TIMEOUT_MS / 1000, 0 };
	struct buf b = { 0 };
	const char *sock = sa.sun_path;
	uint64_t deadline;
	int fd = -1, status = 1;

	if (argc > 0)
		return admin_fail(2, "stats takes no arguments ('%s' is extra)", admin_echo(argv[0]));
	if (admin_load_or_report(path) != 0)
		return 1;
	if (!admin_cfg.server.control[0]) {
		admin_fail(1, "no control socket configured ([server] control)");
		goto out;
	}
	if (strlen(admin_cfg.server.control) >= sizeof sa.sun_path) {
		admin_fail(1, "control socket path too long: %s", admin_cfg.server.control);
		goto out;
	}
	strcpy(sa.sun_path, admin_cfg.server.control);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		admin_fail(1, "socket: %s", strerror(errno));
		goto out;
	}
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
	if (send(fd, "stats\n", 6, MSG_NOSIGNAL) != 6) {
		admin_fail(1, "cannot send to the control socket %s: %s", sock, strerror(errno));
		goto out;
	}
	switch (admin_read_all(fd, &b, ADMIN_STATS_MAX, deadline)) {
	case 0:
		if (b.len && fwrite(b.p, 1, b.len, stdout) != b.len) {
			admin_fail(1, "stats: cannot write: %s", strerror(errno));
			break;
		}
		status = admin_flush_stdout("stats");
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
	if (fd >= 0)
		close(fd);
	free(b.p);
	config_free(&admin_cfg);
	return status;
}
