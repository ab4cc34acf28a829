#include "control.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ban.h"
#include "conn.h"
#include "gen.h"
#include "harvest.h"
#include "limits.h"
#include "log.h"
#include "loop.h"
#include "server.h"

static struct {
	int fd;
	int clients[CONTROL_CLIENTS];
} K = {-1, {-1, -1, -1, -1}};
_Static_assert(CONTROL_CLIENTS == 4, "K's initialiser lists every client");

/* The names of a stats line's values: the counters in the order of struct
 * stats, then the harvest figures that ride on the server line. */
static const char stat_names[] =
	"connections_total connections_current connections_refused messages_accepted "
	"recipients_accepted recipients_unknown replies_tarpitted tarpit_disconnects "
	"protocol_errors tls_sessions tls_refused auth_success auth_failure harvest_table_size "
	"harvest_table_used discredited_current discredits_total bans_total ban_failures";

#define NCOUNTERS (sizeof(struct stats) / sizeof(uint64_t))

/* One logfmt line: scope, then the n values of v named by the words of
 * stat_names in turn. Returns its length, 0 (a line is never cut) if it
 * does not fit in len. */
static size_t stats_line(char *buf, size_t len, const char *scope, const uint64_t *v, unsigned n)
{
	const char *name = stat_names;
	size_t off = (size_t)snprintf(buf, len, "%s", scope);

	for (unsigned i = 0; i < n && off < len; i++) {
		int w = (int)strcspn(name, " ");
		off += (size_t)snprintf(buf + off, len - off, " %.*s=%llu", w, name, (unsigned long long)v[i]);
		name += w + 1;
	}
	if (off + 1 >= len)
		return 0;
	buf[off++] = '\n';
	buf[off] = 0;
	return off;
}

/* The counters of the server and of every connector configured now, as
 * logfmt lines (SPEC §2). */
static size_t render_stats(char *buf, size_t len)
{
	uint64_t v[NCOUNTERS + 6];
	size_t off;

	memcpy(v, &S.st, sizeof S.st);
	v[NCOUNTERS] = harvest_size(S.harvest); /* these three are 0 without a table */
	v[NCOUNTERS + 1] = harvest_used(S.harvest);
	v[NCOUNTERS + 2] = harvest_count_discredited(S.harvest, S.now, &S.hp);
	ban_counters(&v[NCOUNTERS + 3]);
	off = stats_line(buf, len, "scope=server", v, NCOUNTERS + 6);
	for (unsigned i = 0; i < S.gen->n && off < len; i++) {
		char scope[CONF_NAME_MAX + 40];
		snprintf(scope, sizeof scope, "scope=connector name=\"%s\"", S.gen->connectors[i].cf->name);
		memcpy(v, &S.gen->connectors[i].rt->st, sizeof v[0] * NCOUNTERS);
		off += stats_line(buf + off, len - off, scope, v, NCOUNTERS);
	}
	return off;
}

void control_log_stats(void)
{
	char *p = conn_wbuf, *nl;
	render_stats(conn_wbuf, sizeof conn_wbuf);
	while ((nl = strchr(p, '\n')) != NULL) {
		*nl = 0;
		log_msg(LOG_LVL_NOTICE, "%s", p);
		p = nl + 1;
	}
}

/* A control client is answered once its request has arrived (closing a
 * UNIX socket with its request unread would reset the answer). The whole
 * answer fits in the socket buffer, so it is written at once and the
 * connection closed; a few fixed places are all a client gets. */
static void on_accept(void)
{
	int fd = accept4(K.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	unsigned i;
	if (fd < 0)
		return;
	for (i = 0; i < CONTROL_CLIENTS && K.clients[i] >= 0; i++)
		;
	if (i == CONTROL_CLIENTS || loop_add(S.loop, fd, LOOP_READ, TAG_CONTROL | (i + 1)) != 0) {
		close(fd);
		return;
	}
	K.clients[i] = fd;
}

static void on_request(unsigned i)
{
	int fd = K.clients[i];
	char req[64];
	ssize_t r = recv(fd, req, sizeof req, 0);
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (r > 0 && memcmp(req, "stats", r < 5 ? (size_t)r : 5) == 0) {
		size_t n = render_stats(conn_wbuf, sizeof conn_wbuf);
		ssize_t w = send(fd, conn_wbuf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		(void)w;
	}
	loop_del(S.loop, fd);
	close(fd);
	K.clients[i] = -1;
}

void control_event(unsigned tag)
{
	if (tag == TAG_CONTROL)
		on_accept();
	else
		on_request((tag & 0xffu) - 1);
}

int control_open(const char *path)
{
	struct sockaddr_un sun;
	int fd;

	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sun.sun_path) {
		log_msg(LOG_LVL_ERROR, "control socket path too long: %s", path);
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	unlink(path); /* a stale socket of an earlier run */
	if (bind(fd, (struct sockaddr *)&sun, sizeof sun) != 0 || chmod(path, 0600) != 0 ||
	    listen(fd, 16) != 0) {
		log_msg(LOG_LVL_ERROR, "cannot open control socket %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	K.fd = fd;
	return loop_add(S.loop, fd, LOOP_READ, TAG_CONTROL);
}

void control_close(const char *path)
{
	for (unsigned i = 0; i < CONTROL_CLIENTS; i++)
		if (K.clients[i] >= 0)
			close(K.clients[i]);
	if (K.fd >= 0) {
		close(K.fd);
		unlink(path);
	}
}
