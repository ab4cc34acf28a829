#include "listen.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "conn_table.h"
#include "gen.h"
#include "limits.h"
#include "log.h"
#include "loop.h"
#include "server.h"
#include "smtp_reply.h"

struct listener {
	int fd;
	struct binding b;
};

/* Zero at start (bss, no bytes in the binary): the one field that starts
 * at -1 stays apart. */
static struct {
	unsigned n;
	uint64_t paused_until;
	struct listener l[MAX_LISTENERS];
} L;
static int reserve_fd = -1; /* spent to refuse politely when out of descriptors */

void listen_init(void)
{
	reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

void listen_fini(void)
{
	if (reserve_fd >= 0)
		close(reserve_fd);
	reserve_fd = -1;
}

/* A reply that needs nothing of a session. */
static size_t render_bare(enum reply_id id, char *buf, size_t len)
{
	struct reply_ctx ctx = {0};
	return reply_render(id, &ctx, buf, len);
}

/* Replies refused at connect time go out at once and without a slot, so
 * a flood costs one accept and one send each (SPEC §8). */
static void refuse(int fd, enum reply_id id, struct connector *cn)
{
	char buf[128];
	ssize_t r = send(fd, buf, render_bare(id, buf, sizeof buf), MSG_NOSIGNAL | MSG_DONTWAIT);
	(void)r;
	close(fd);
	stat_add(cn, offsetof(struct stats, connections_refused));
}

static struct connector *match_connector(unsigned li, const struct ip_addr *peer)
{
	struct connector *best = NULL;
	struct ip_addr best_size = {{0}};
	const struct listener *l = &L.l[li];

	for (unsigned i = 0; i < S.gen->n; i++) {
		const struct connector_conf *cf = S.gen->connectors[i].cf;
		unsigned b = 0;
		if (!cf->enabled)
			continue;
		while (b < cf->nbindings && !binding_same(&cf->bindings[b], &l->b))
			b++;
		if (b == cf->nbindings)
			continue;
		for (unsigned r = 0; r < cf->nranges; r++) {
			const struct ip_range *rg = &cf->ranges[r];
			struct ip_addr size;
			int borrow = 0;
			if (!ip_range_contains(rg, peer))
				continue;
			/* Most specific = the entry covering the fewest addresses. */
			for (int k = 15; k >= 0; k--) {
				int d = rg->hi.a[k] - rg->lo.a[k] - borrow;
				borrow = d < 0;
				size.a[k] = (uint8_t)(d + (borrow ? 256 : 0));
			}
			if (!best || memcmp(size.a, best_size.a, 16) < 0) {
				best = &S.gen->connectors[i];
				best_size = size;
			}
		}
	}
	return best;
}

/* Stops accepting until `until` (listen_tick resumes), or resumes with 0. */
static void pause_accept(uint64_t until)
{
	L.paused_until = until;
	for (unsigned i = 0; i < L.n; i++)
		loop_mod(S.loop, L.l[i].fd, until ? 0 : LOOP_READ, TAG_LISTENER | i);
}

/* Out of descriptors: spend the reserve one to refuse politely, then
 * pause instead of spinning. Every client already waiting is refused
 * now, not one per pause. */
static void out_of_descriptors(unsigned li)
{
	while (reserve_fd >= 0) {
		int fd;
		close(reserve_fd);
		fd = accept4(L.l[li].fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0)
			refuse(fd, R_421_FULL, NULL);
		reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			break;
	}
	log_msg(LOG_LVL_WARNING, "event=accept_paused reason=descriptors");
	pause_accept(S.now + TICK_MS);
}

void listen_accept(unsigned li)
{
	for (int iter = 0; iter < ACCEPT_BATCH; iter++) {
		struct sockaddr_storage ss;
		socklen_t slen = sizeof ss;
		struct ip_addr peer;
		uint16_t port;
		struct connector *cn;
		struct conn *c;
		const struct connector_conf *cf;
		int fd = accept4(L.l[li].fd, (struct sockaddr *)&ss, &slen, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE) {
				out_of_descriptors(li);
				return;
			}
			if (errno == ECONNABORTED || errno == EINTR)
				continue;
			return;
		}
		if (ip_from_sockaddr(&ss, &peer, &port) != 0) {
			close(fd);
			continue;
		}
		cn = match_connector(li, &peer);
		if (!cn) {
			refuse(fd, R_421_NOMATCH, NULL);
			continue;
		}
		cf = cn->cf;
		/* A connector's sessions are among the table's, so a full table
		 * also bounds the connector. */
		if (S.tab->nfree == 0 || cn->rt->st.connections_current >= cf->max_inbound_connections) {
			refuse(fd, R_421_FULL, cn);
			continue;
		}
		if (src_count_get(S.tab, &peer) >= cf->max_inbound_connections_per_source) {
			refuse(fd, R_421_SOURCE, cn);
			continue;
		}
		c = conn_acquire(S.tab);
		if (loop_add(S.loop, fd, LOOP_READ, conn_index(S.tab, c)) != 0) {
			conn_release(S.tab, c);
			refuse(fd, R_421_FULL, cn);
			continue;
		}
		conn_open(c, fd, cn, &peer, port);
	}
}

void listen_tick(void)
{
	if (L.paused_until && S.now >= L.paused_until) {
		if (reserve_fd < 0)
			reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		pause_accept(0);
	}
}

static int open_listener(const struct binding *b)
{
	int one = 1, fd;
	struct sockaddr_storage ss;
	socklen_t slen;

	memset(&ss, 0, sizeof ss);
	if (b->v6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, b->addr.a, 16);
		s6->sin6_port = htons(b->port);
		slen = sizeof *s6;
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, b->addr.a + 12, 4);
		s4->sin_port = htons(b->port);
		slen = sizeof *s4;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	/* An [::] binding serves IPv6 only: IPv4 has its own binding, so
	 * both families can share a port and ranges stay per family. */
	if (b->v6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
	if (bind(fd, (struct sockaddr *)&ss, slen) != 0 || listen(fd, SOMAXCONN) != 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* The index of the listener on b among l[0..n), n if there is none. */
static unsigned find_listener(const struct listener *l, unsigned n, const struct binding *b)
{
	unsigned k = 0;
	while (k < n && !binding_same(&l[k].b, b))
		k++;
	return k;
}

static void log_binding(const char *event, const struct binding *b)
{
	char text[80];
	binding_format(b, text, sizeof text);
	log_msg(LOG_LVL_NOTICE, "event=%s binding=%s", event, text);
}

int listen_reconcile(const struct gen *g)
{
	static struct listener nl[MAX_LISTENERS]; /* static: a small frame is cheaper code on MIPS16 */
	bool opened[MAX_LISTENERS] = {false};
	unsigned nn = 0, k, o;

	for (unsigned i = 0; i < g->n; i++) {
		const struct connector_conf *cf = g->connectors[i].cf;
		for (unsigned b = 0; cf->enabled && b < cf->nbindings; b++) {
			if (find_listener(nl, nn, &cf->bindings[b]) < nn)
				continue;
			if (nn == MAX_LISTENERS) {
				log_msg(LOG_LVL_ERROR, "too many distinct bindings (at most %d)", MAX_LISTENERS);
				return -1;
			}
			nl[nn].b = cf->bindings[b];
			o = find_listener(L.l, L.n, &nl[nn].b);
			nl[nn++].fd = o < L.n ? L.l[o].fd : -1;
		}
	}
	for (k = 0; k < nn; k++) {
		if (nl[k].fd >= 0)
			continue;
		nl[k].fd = open_listener(&nl[k].b);
		if (nl[k].fd < 0) {
			char text[80];
			binding_format(&nl[k].b, text, sizeof text);
			log_msg(LOG_LVL_ERROR, "cannot listen on %s: %s", text, strerror(errno));
			while (k--)
				if (opened[k])
					close(nl[k].fd);
			return -1;
		}
		opened[k] = true;
		log_binding("listen", &nl[k].b);
	}
	for (o = 0; o < L.n; o++)
		if (find_listener(nl, nn, &L.l[o].b) == nn) {
			loop_del(S.loop, L.l[o].fd);
			close(L.l[o].fd);
			log_binding("unlisten", &L.l[o].b);
		}
	for (k = 0; k < nn; k++) {
		unsigned mask = L.paused_until ? 0 : LOOP_READ;
		if (opened[k])
			loop_add(S.loop, nl[k].fd, mask, TAG_LISTENER | k);
		else
			loop_mod(S.loop, nl[k].fd, mask, TAG_LISTENER | k);
		L.l[k] = nl[k];
	}
	L.n = nn;
	return 0;
}

void listen_close_all(void)
{
	for (unsigned i = 0; i < L.n; i++) {
		loop_del(S.loop, L.l[i].fd);
		close(L.l[i].fd);
	}
	L.n = 0;
}
