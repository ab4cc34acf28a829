#include "control.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ban.h"
#include "conn.h"
#include "gen.h"
#include "harvest.h"
#include "limits.h"
#include "log.h"
#include "loop.h"
#include "queue.h"
#include "relay.h"
#include "server.h"
#include "timer_wheel.h"

/* What a client is being sent. */
enum { A_NONE, A_STATS, A_HARVEST, A_DONE };

/* One control client. Its answer is rendered a line at a time into its
 * own line buffer and sent from there, so a client that reads slowly
 * resumes where the socket filled (EAGAIN) and nothing is ever cut,
 * whatever the number of connectors; no buffer has to hold the whole
 * answer. */
struct client {
	int fd;
	uint8_t answer;   /* A_ */
	uint16_t rlen;    /* request octets so far */
	uint16_t off, len; /* of line: sent, rendered */
	uint32_t next;    /* the next line to render */
	struct gen *gen;  /* the connectors a stats answer lists: held until done */
	struct tw_node deadline;
	char req[CONTROL_REQ_MAX];
	char line[CONTROL_LINE_MAX];
};

/* The clients (4 KiB with their line buffers) stay in .bss: an
 * initialiser would put all of them in the binary's .data. */
static struct {
	struct client c[CONTROL_CLIENTS];
} K;
static int listen_fd = -1;

/* The names of a stats line's values: the counters in the order of struct
 * stats, then the harvest figures that ride on the server line. */
static const char stat_names[] =
	"connections_total connections_current connections_refused messages_accepted "
	"recipients_accepted recipients_unknown replies_tarpitted tarpit_disconnects "
	"protocol_errors tls_sessions tls_refused auth_success auth_failure harvest_table_size "
	"harvest_table_used discredited_current discredits_total bans_total ban_failures "
	"queue_current queue_deferred relay_delivered relay_deferred relay_failed dsn_sent";

/* A scope=relay line's values (SPEC §10): struct relay_stats in order. */
static const char relay_names[] = "relay_delivered relay_deferred relay_failed dsn_sent connections_current";

#define NCOUNTERS (sizeof(struct stats) / sizeof(uint64_t))

/* One logfmt line: scope, then the n values of v named by the words of
 * stat_names in turn. Returns its length; the buffer is sized for the
 * longest line (CONTROL_LINE_MAX), so a line is never cut. */
static size_t stats_line(char *buf, size_t len, const char *scope, const char *name, const uint64_t *v,
			 unsigned n)
{
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

/* Line i of the stats of g (SPEC §2, §10): 0 the server, 1.. its
 * connectors, then its relays. Returns its length, 0 past the last. */
static size_t stats_line_at(const struct gen *g, uint32_t i, char *buf, size_t len)
{
	uint64_t v[NCOUNTERS + 12];
	char scope[CONF_NAME_MAX + 40];

	if (i == 0) {
		memcpy(v, &S.st, sizeof S.st);
		v[NCOUNTERS] = harvest_size(S.harvest); /* these three are 0 without a table */
		v[NCOUNTERS + 1] = harvest_used(S.harvest);
		v[NCOUNTERS + 2] = harvest_count_discredited(S.harvest, S.now, &S.hp);
		ban_counters(&v[NCOUNTERS + 3]);
		v[NCOUNTERS + 6] = S.queue ? queue_count(S.queue) : 0;
		v[NCOUNTERS + 7] = S.queue ? queue_deferred(S.queue) : 0;
		memcpy(&v[NCOUNTERS + 8], relay_stats_total(), 4 * sizeof v[0]);
		return stats_line(buf, len, "scope=server", stat_names, v, NCOUNTERS + 12);
	}
	if (i > g->n) {
		static const struct relay_stats none;
		const struct relay_stats *rs;
		_Static_assert(sizeof none == 5 * sizeof v[0], "relay_names names struct relay_stats");
		if (i - 1 - g->n >= g->cfg.nrelays)
			return 0;
		/* Not yet attempted (or started without a queue): zeros. */
		rs = g == S.gen ? relay_stats_of(i - 1 - g->n) : NULL;
		rs = rs ? rs : &none;
		snprintf(scope, sizeof scope, "scope=relay name=\"%s\"", g->cfg.relays[i - 1 - g->n].name);
		memcpy(v, rs, sizeof *rs);
		return stats_line(buf, len, scope, relay_names, v, 5);
	}
	snprintf(scope, sizeof scope, "scope=connector name=\"%s\"", g->connectors[i - 1].cf->name);
	memcpy(v, &g->connectors[i - 1].rt->st, sizeof v[0] * NCOUNTERS);
	return stats_line(buf, len, scope, stat_names, v, NCOUNTERS);
}

void control_log_stats(void)
{
	char *buf = conn_wbuf; /* the loop's render buffer: free between events */
	size_t n;
	_Static_assert(sizeof conn_wbuf >= CONTROL_LINE_MAX, "a stats line fits the render buffer");

	for (uint32_t i = 0; (n = stats_line_at(S.gen, i, buf, CONTROL_LINE_MAX)) > 0; i++) {
		buf[n - 1] = 0;
		log_msg(LOG_LVL_NOTICE, "%s", buf);
	}
}

/* A wall-clock time in ms as RFC 3339 UTC. */
static void wall_time(int64_t ms, char *buf, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	/* snprintf, not strftime: no locale code in the static binary. */
	if (!gmtime_r(&t, &tm))
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			 tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* The next discredited source at or after *i as a logfmt line (SPEC §2:
 * address or /64, offences, discredited since, until); 0 past the last. */
static size_t harvest_line(uint32_t *i, char *buf, size_t len)
{
	struct harvest_info hi;
	char ip[64], since[80], until[80]; /* room for any int gmtime_r gives */

	while (*i < harvest_used(S.harvest)) {
		if (!harvest_entry(S.harvest, (*i)++, S.now, &S.hp, &hi))
			continue;
		/* The table keeps monotonic times: one offset to the wall clock
		 * for both, so until - since is exact. */
		struct timespec ts;
		int64_t off;

		clock_gettime(CLOCK_REALTIME, &ts);
		off = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 - (int64_t)S.now;
		ip_format(&hi.source, ip, sizeof ip);
		wall_time((int64_t)hi.since_ms + off, since, sizeof since);
		wall_time((int64_t)hi.until_ms + off, until, sizeof until);
		return (size_t)snprintf(buf, len, "source=%s%s offences=%u since=%s until=%s\n", ip,
					ip_is_v4(&hi.source) ? "" : "/64", hi.offences, since, until);
	}
	return 0;
}

/* `forgive ADDR|all`: clears the mark (ADDR may be a listed "PREFIX/64"). */
static size_t forgive(char *arg, char *buf, size_t len)
{
	struct ip_addr a;
	uint32_t n;
	char *slash = strchr(arg, '/');
	bool all = strcmp(arg, "all") == 0;

	if (!S.harvest)
		return (size_t)snprintf(buf, len, "error=no_harvest_table\n");
	if (slash && strcmp(slash, "/64") == 0)
		*slash = 0;
	if (!all && ip_parse(arg, &a) != 0)
		return (size_t)snprintf(buf, len, "error=bad_address\n");
	n = harvest_forgive(S.harvest, all ? NULL : &a, S.now, &S.hp);
	log_msg(LOG_LVL_NOTICE, "event=forgiven source=%s count=%u", all ? "all" : arg, n);
	return (size_t)snprintf(buf, len, "forgiven=%u\n", n);
}

static void client_close(struct client *c)
{
	tw_cancel(&S.wheel, &c->deadline);
	loop_del(S.loop, c->fd);
	close(c->fd);
	c->fd = -1;
	if (c->gen)
		gen_unref(c->gen);
	c->gen = NULL;
}

/* The next line of c's answer into c->line; false when there is none. */
static bool next_line(struct client *c)
{
	size_t n = 0;

	if (c->answer == A_STATS)
		n = stats_line_at(c->gen, c->next++, c->line, sizeof c->line);
	else if (c->answer == A_HARVEST)
		n = harvest_line(&c->next, c->line, sizeof c->line);
	c->off = 0;
	c->len = (uint16_t)n;
	return n > 0;
}

/* Sends what c has to send, a bounded number of lines per call so that
 * one client never holds the loop; the rest follows at the next
 * readiness. Every write that makes progress moves the deadline on: only
 * a client that reads nothing for CONTROL_DEADLINE_MS is closed. */
static void client_pump(struct client *c, unsigned tag)
{
	for (unsigned lines = 0; lines < CONTROL_LINES_PER_EVENT; lines++) {
		ssize_t w;

		if (c->off == c->len && !next_line(c)) {
			client_close(c);
			return;
		}
		w = send(c->fd, c->line + c->off, c->len - c->off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			break;
		if (w <= 0) {
			client_close(c);
			return;
		}
		c->off = (uint16_t)(c->off + w);
		tw_arm(&S.wheel, &c->deadline, S.now + CONTROL_DEADLINE_MS);
	}
	loop_mod(S.loop, c->fd, LOOP_WRITE, tag);
}

/* `queue flush` / `queue delete ID` (SPEC §2): the server's own table
 * decides, so a message being delivered is never deleted under its
 * attempt. */
static size_t queue_request(const char *arg, char *buf, size_t len)
{
	int idx;

	if (!S.queue)
		return (size_t)snprintf(buf, len, "error=no_queue\n");
	if (strcmp(arg, "flush") == 0) {
		queue_flush(S.queue, (uint32_t)time(NULL));
		log_msg(LOG_LVL_NOTICE, "event=queue_flush queued=%u", queue_count(S.queue));
		relay_flush();
		return (size_t)snprintf(buf, len, "flushed=%u\n", queue_count(S.queue));
	}
	if (strncmp(arg, "delete ", 7) != 0)
		return (size_t)snprintf(buf, len, "error=unknown_request\n");
	idx = queue_find(S.queue, arg + 7);
	if (idx < 0)
		return (size_t)snprintf(buf, len, "error=no_such_id\n");
	if (queue_busy(S.queue, idx))
		return (size_t)snprintf(buf, len, "error=busy\n");
	if (queue_remove(S.queue, idx) != 0) {
		log_msg(LOG_LVL_ERROR, "event=queue_delete id=%s error=\"%s\"", arg + 7, strerror(errno));
		return (size_t)snprintf(buf, len, "error=io\n");
	}
	/* Durable before the operator hears so (the loop's own removals
	 * wait for the next sync round or tick). */
	if (queue_sync(S.queue) != 0)
		log_msg(LOG_LVL_ERROR, "event=queue_error error=\"sync: %s\"", strerror(errno));
	log_msg(LOG_LVL_NOTICE, "event=queue_delete id=%s by=operator", arg + 7);
	return (size_t)snprintf(buf, len, "deleted=1\n");
}

/* The request, complete: chooses the answer. */
static void client_answer(struct client *c)
{
	c->req[c->rlen] = 0;
	c->req[strcspn(c->req, "\r\n")] = 0;
	c->next = 0;
	c->off = c->len = 0;
	c->answer = A_DONE;
	if (strcmp(c->req, "stats") == 0) {
		c->answer = A_STATS;
		c->gen = S.gen;
		c->gen->refs++;
	} else if (strcmp(c->req, "harvest") == 0) {
		c->answer = S.harvest ? A_HARVEST : A_DONE;
		if (!S.harvest)
			c->len = (uint16_t)snprintf(c->line, sizeof c->line, "error=no_harvest_table\n");
	} else if (strncmp(c->req, "forgive ", 8) == 0) {
		c->len = (uint16_t)forgive(c->req + 8, c->line, sizeof c->line);
	} else if (strncmp(c->req, "queue ", 6) == 0) {
		c->len = (uint16_t)queue_request(c->req + 6, c->line, sizeof c->line);
	} else {
		c->len = (uint16_t)snprintf(c->line, sizeof c->line, "error=unknown_request\n");
	}
}

static void on_request(unsigned i, unsigned tag)
{
	struct client *c = &K.c[i];
	ssize_t r;

	if (c->answer != A_NONE) {
		client_pump(c, tag);
		return;
	}
	r = recv(c->fd, c->req + c->rlen, sizeof c->req - 1 - c->rlen, 0);
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (r < 0 || (r == 0 && c->rlen == 0)) {
		client_close(c);
		return;
	}
	c->rlen = (uint16_t)(c->rlen + r);
	/* A request is one line; the end of the client's writing ends it too. */
	if (r > 0 && !memchr(c->req, '\n', c->rlen)) {
		if (c->rlen < sizeof c->req - 1)
			return;
		client_close(c); /* longer than any request */
		return;
	}
	client_answer(c);
	client_pump(c, tag);
}

/* A control client is answered once its request has arrived (closing a
 * UNIX socket with its request unread would reset the answer). When every
 * place is taken, the client that has waited longest gives its place up
 * (an idle one first), so idle clients can never lock `stats` out. */
static void on_accept(void)
{
	int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	struct client *c = NULL;

	if (fd < 0)
		return;
	for (unsigned i = 0; i < CONTROL_CLIENTS; i++) {
		struct client *x = &K.c[i];
		if (x->fd < 0) {
			c = x;
			break;
		}
		if (!c || (x->answer == A_NONE) > (c->answer == A_NONE) ||
		    ((x->answer == A_NONE) == (c->answer == A_NONE) && x->deadline.expires < c->deadline.expires))
			c = x;
	}
	if (c->fd >= 0)
		client_close(c);
	if (loop_add(S.loop, fd, LOOP_READ, TAG_CONTROL | (unsigned)(c - K.c + 1)) != 0) {
		close(fd);
		return;
	}
	c->fd = fd;
	c->answer = A_NONE;
	c->rlen = 0;
	tw_arm(&S.wheel, &c->deadline, S.now + CONTROL_DEADLINE_MS);
}

void control_event(unsigned tag)
{
	if (tag == TAG_CONTROL)
		on_accept();
	else
		on_request((tag & 0xffu) - 1, tag);
}

bool control_timer(struct tw_node *n)
{
	for (unsigned i = 0; i < CONTROL_CLIENTS; i++) {
		if (n == &K.c[i].deadline) {
			if (K.c[i].fd >= 0)
				client_close(&K.c[i]);
			return true;
		}
	}
	return false;
}

int control_open(const char *path)
{
	struct sockaddr_un sun;
	int fd;

	for (unsigned i = 0; i < CONTROL_CLIENTS; i++) {
		K.c[i].fd = -1;
		tw_node_init(&K.c[i].deadline);
	}
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
	listen_fd = fd;
	return loop_add(S.loop, fd, LOOP_READ, TAG_CONTROL);
}

void control_close(const char *path)
{
	if (listen_fd < 0)
		return;
	for (unsigned i = 0; i < CONTROL_CLIENTS; i++)
		if (K.c[i].fd >= 0)
			client_close(&K.c[i]);
	close(listen_fd);
	listen_fd = -1;
	unlink(path);
}
