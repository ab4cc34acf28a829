#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "conn_table.h"
#include "harvest.h"
#include "log.h"
#include "loop.h"
#include "maildir.h"
#include "recipients.h"
#include "smtp_data.h"
#include "smtp_reply.h"
#include "smtp_session.h"
#include "timer_wheel.h"
#include "tls.h"

#define MAX_LISTENERS 64
#define TAG_LISTENER 0x80000000u
#define TAG_SIGNAL 0x40000000u
#define TAG_CONTROL 0x20000000u
#define CONTROL_CLIENTS 4
#define ACCEPT_BATCH 64
#define LINGER_MS 2000   /* lingering close: let the last reply reach the client */
#define TICK_MS 1000     /* housekeeping: recipient file check, accept resume */
#define HANDSHAKE_MS 30000 /* a TLS handshake must finish within this */
#define TLS_READ_CHUNK SMTP_LINE_MAX /* what is left after the end of data fits in[] */

enum conn_phase {
	P_GREETING, /* waiting for greeting_delay; talking now is an offence */
	P_ACTIVE,
	P_LINGER,   /* final reply sent, write side shut: discard input until EOF */
	P_HANDSHAKE, /* STARTTLS's 220 sent: the TLS handshake runs */
};

enum {
	CF_EOF = 1u,   /* the client closed its side */
	CF_SKIP = 2u,  /* discarding the rest of an over-long line */
	CF_WANTW = 4u, /* the socket refused output: wait for writability */
	CF_TOOBIG = 8u, /* message data exceeded max_message_size */
	CF_STOP = 16u,  /* shutting down: close after the message in progress */
	CF_AUX = 32u,   /* a long AUTH line is being assembled in conn_aux() */
	CF_COMMIT = 64u, /* the message waits for this loop pass's sync round */
};

/* The messages waiting for the group commit at the end of a loop pass. */
struct commit_round {
	struct conn **conns;
	uint32_t *ids; /* a slot closed and reused meanwhile is not ours */
	struct sink_msg **msgs;
	struct sink_envelope *envs;
	int *results;
	unsigned n;
};

/* What survives a reload for one connector name: its counters (with its
 * connection count), shared by old and new sessions. */
struct connector_rt {
	struct stats st;
	struct connector_rt *next;
	char name[CONF_NAME_MAX];
};

struct gen;

struct connector {
	const struct connector_conf *cf;
	struct connector_rt *rt;
	struct gen *gen;
};

/* One loaded configuration. Sessions hold a reference to the generation
 * they started on, so a reload never changes a session in progress. */
struct gen {
	struct connector *connectors;
	unsigned n;
	uint32_t refs;
	struct config cfg; /* last: the others stay in MIPS16's short reach */
};

struct listener {
	int fd;
	struct binding b;
};

/* Ordered for code size, the fields used most first: MIPS16 reaches the
 * first 128 bytes of a structure with short instructions. */
static struct server {
	struct harvest_params hp;   /* of the current configuration */
	uint16_t max_rcpt;
	bool stopping;
	bool ban_fa_ready;
	int sigpipe[2];
	uint64_t now;
	struct gen *gen;            /* current configuration */
	struct conn_table *tab;
	struct loop *loop;
	struct tls *tls;            /* NULL without [tls] */
	struct harvest *harvest;    /* NULL when [harvest] table_size = 0 */
	struct recipients *rcpts;
	struct maildir *md;
	struct users *users;        /* NULL without [auth] */
	int reserve_fd;
	int control_fd;
	unsigned nlisteners;
	uint64_t accept_paused_until;
	struct connector_rt *rts;
	uint32_t next_id;
	uint64_t discredits_total, bans_total, ban_failures;
	int control_clients[CONTROL_CLIENTS];
	struct listener listeners[MAX_LISTENERS];
	struct commit_round commits;
	struct timespec rcpts_failed_mtime; /* don't retry a bad file every tick */
	posix_spawn_file_actions_t ban_fa; /* stdin and stdout on /dev/null */
	struct tw_node tick;
	struct timer_wheel wheel;
	struct server_conf boot;    /* [server] as started: these keys need a restart */
	struct stats st;
} S;

/* Set by on_signal, indexed by signal number; SIGINT counts as SIGTERM. */
static volatile sig_atomic_t sig_seen[NSIG];

/* Scratch buffers shared by all connections: only one is served at a time. */
static char rbuf[16384];
static char dbuf[sizeof rbuf + 1];
static char wbuf[OUTQ_MAX * REPLY_MAX];

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint32_t)ts.tv_nsec / 1000000u; /* tv_nsec < 10^9 */
}

static uint64_t ms(uint32_t seconds)
{
	return (uint64_t)seconds * 1000u;
}

/* Counts an event for the server and for connector cn, if there is one. */
static void stat_add(const struct connector *cn, size_t off)
{
	(*(uint64_t *)(void *)((char *)&S.st + off))++;
	if (cn)
		(*(uint64_t *)(void *)((char *)&cn->rt->st + off))++;
}
#define STAT(c, field) stat_add((c)->connector, offsetof(struct stats, field))

static struct smtp_reply *outq_at(struct conn *c, unsigned k)
{
	return &c->outq[(c->outq_head + k) % OUTQ_MAX];
}

static void outq_push(struct conn *c, struct smtp_reply r)
{
	/* Callers stop feeding input before the queue can overflow; this
	 * guard only keeps a bug from becoming memory corruption. */
	if (c->outq_len >= OUTQ_MAX)
		return;
	if (c->outq_len == 0)
		c->head_base = S.now;
	*outq_at(c, c->outq_len++) = r;
	if ((r.flags & RF_TARPIT) && c->connector->cf->tarpit_interval) {
		STAT(c, replies_tarpitted);
		log_msg(LOG_LVL_INFO, "event=tarpit id=%u code=%d delay=%u", c->id, reply_code((enum reply_id)r.id),
			c->connector->cf->tarpit_interval);
	}
	if (reply_is_protocol_error((enum reply_id)r.id))
		STAT(c, protocol_errors);
	switch (r.id) {
	case R_250_RCPT: STAT(c, recipients_accepted); break;
	case R_550_UNKNOWN: STAT(c, recipients_unknown); break;
	case R_250_QUEUED: STAT(c, messages_accepted); break;
	case R_235_AUTH: STAT(c, auth_success); break;
	case R_535_AUTH: STAT(c, auth_failure); break;
	default: break;
	}
}

static void outq_pop(struct conn *c)
{
	c->outq_head = (uint8_t)((c->outq_head + 1) % OUTQ_MAX);
	c->outq_len--;
	c->out_off = 0;
	c->head_base = S.now;
}

/* When the tarpitted reply at the head of the queue is due; 0 if none. */
static uint64_t tarpit_due(struct conn *c)
{
	if (c->outq_len && c->out_off == 0 && (outq_at(c, 0)->flags & RF_TARPIT))
		return c->head_base + ms(c->connector->cf->tarpit_interval);
	return 0;
}

static bool waiting_on_tarpit(struct conn *c)
{
	return S.now < tarpit_due(c);
}

static void peer_text(const struct conn *c, char *buf, size_t len)
{
	ip_format(&c->peer, buf, len);
}

static struct smtp_env session_env(struct conn *c)
{
	struct smtp_env e = {c->connector->cf, S.rcpts, S.users, S.tls != NULL};
	return e;
}

/* After a failed socket call: nothing is wrong, the call is to be retried
 * at the next readiness. */
static bool try_later(void)
{
	return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
}

/* Socket I/O in the clear or through the connection's TLS context, with
 * the plain calls' conventions: -1/EAGAIN to wait, 0 for the peer's close. */
/* A pool slot is taken when STARTTLS is accepted, but its 220 still goes
 * out in the clear: TLS carries the session only after the handshake. */
static bool tls_active(const struct conn *c)
{
	return c->tls >= 0 && smtp_session_in_tls(&c->s);
}

static ssize_t io_recv(struct conn *c, void *buf, size_t len)
{
	ssize_t n;
	if (!tls_active(c))
		return recv(c->fd, buf, len, 0);
	n = tls_read(S.tls, c->tls, buf, len);
	if (n >= 0)
		return n;
	if (n == TLS_WANT_READ || n == TLS_WANT_WRITE) {
		errno = EAGAIN;
		return -1;
	}
	if (n == TLS_CLOSED)
		return 0;
	errno = ECONNRESET;
	return -1;
}

static ssize_t io_send(struct conn *c, const void *buf, size_t len)
{
	ssize_t n;
	if (!tls_active(c))
		return send(c->fd, buf, len, MSG_NOSIGNAL);
	/* mbedTLS wants a write that could not finish repeated with the same
	 * length; the queue only grows at its tail, so the octets are the same. */
	if (c->tls_wlen && c->tls_wlen <= len)
		len = c->tls_wlen;
	n = tls_write(S.tls, c->tls, buf, len);
	if (n > 0) {
		c->tls_wlen = 0;
		return n;
	}
	if (n == TLS_WANT_READ || n == TLS_WANT_WRITE) {
		c->tls_wlen = (uint16_t)len;
		errno = EAGAIN;
		return -1;
	}
	errno = EPIPE;
	return -1;
}

static void fill_envelope(struct conn *c, struct sink_envelope *env, char *ip, size_t iplen)
{
	peer_text(c, ip, iplen);
	env->sender = c->s.sender;
	env->helo = c->s.helo;
	env->peer_ip = ip;
	env->fqdn = c->connector->cf->fqdn;
	env->protocol = smtp_session_protocol(&c->s);
	env->single_rcpt = c->s.nrcpt == 1 ? c->s.env->first_rcpt : NULL;
	env->rcpts = c->s.table;
	env->mailboxes = c->s.env->mbox;
	env->nmailboxes = c->s.env->nmbox;
}

static void gen_unref(struct gen *g)
{
	if (--g->refs)
		return;
	config_free(&g->cfg);
	free(g->connectors);
	free(g);
}

static void conn_close(struct conn *c, const char *reason)
{
	char ip[64];
	if (c->fd < 0)
		return;
	peer_text(c, ip, sizeof ip);
	log_msg(LOG_LVL_INFO, "event=disconnect id=%u ip=%s reason=%s errors=%u unknown=%u",
		c->id, ip, reason, c->s.errors, c->s.unknown);
	maildir_abort(S.md, &c->msg);
	tls_release(S.tls, c->tls); /* none: -1 */
	c->tls = -1;
	smtp_session_reset(&c->s);
	tw_cancel(&S.wheel, &c->timer);
	loop_del(S.loop, c->fd);
	close(c->fd);
	src_count_dec(S.tab, &c->peer);
	S.st.connections_current--;
	c->connector->rt->st.connections_current--;
	gen_unref(c->connector->gen);
	c->connector = NULL;
	conn_release(S.tab, c);
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

static void begin_data_sink(struct conn *c, struct smtp_reply *r)
{
	struct sink_envelope env;
	char ip[64];
	if (c->msg.fd >= 0)
		return;
	fill_envelope(c, &env, ip, sizeof ip);
	if (maildir_begin(S.md, &c->msg, &env, c->queue_id) != 0) {
		log_msg(LOG_LVL_ERROR, "event=store_error id=%u error=\"%s\"", c->id, strerror(errno));
		*r = smtp_session_data_failed(&c->s);
		c->msg.fd = -1;
	}
}

/* Writes every reply that is due, in order. Returns false if the
 * connection was closed. */
static bool conn_flush(struct conn *c)
{
	struct reply_ctx ctx;
	char ip[64];

	peer_text(c, ip, sizeof ip);
	ctx.fqdn = c->connector->cf->fqdn;
	ctx.banner = c->connector->cf->banner;
	ctx.peer_ip = ip;
	ctx.queue_id = c->queue_id;
	ctx.max_size = c->connector->cf->max_message_size;
	ctx.pipelining = c->connector->cf->pipelining;
	{
		struct smtp_env e = session_env(c);
		ctx.starttls = smtp_session_offers_starttls(&c->s, &e);
		ctx.auth = smtp_session_offers_auth(&c->s, &e);
	}

	c->cflags &= (uint8_t)~CF_WANTW;
	while (c->outq_len && c->phase != P_LINGER && c->phase != P_HANDSHAKE) {
		size_t lens[OUTQ_MAX], blen = 0, done;
		unsigned k;
		ssize_t n;

		for (k = 0; k < c->outq_len; k++) {
			struct smtp_reply *r = outq_at(c, k);
			size_t len;
			if (k == 0 && c->out_off == 0) {
				if (waiting_on_tarpit(c))
					break;
				if (r->flags & RF_DATA)
					begin_data_sink(c, r);
			} else if (k > 0 && (r->flags & (RF_TARPIT | RF_DATA | RF_STARTTLS))) {
				/* A delayed reply waits T after its predecessor is
				 * sent; a 354 is only prepared at the head. */
				break;
			}
			len = reply_render((enum reply_id)r->id, &ctx, wbuf + blen, sizeof wbuf - blen);
			if (len == 0)
				break;
			lens[k] = len;
			blen += len;
			if (r->flags & RF_CLOSE) {
				k++;
				break;
			}
		}
		if (k == 0 || blen <= c->out_off)
			return true;
		n = io_send(c, wbuf + c->out_off, blen - c->out_off);
		if (n < 0) {
			if (try_later()) {
				c->cflags |= CF_WANTW;
				return true;
			}
			conn_close(c, "write_error");
			return false;
		}
		c->last_activity = S.now;
		done = c->out_off + (size_t)n;
		for (unsigned i = 0; i < k && done >= lens[i]; i++) {
			struct smtp_reply r = *outq_at(c, 0);
			done -= lens[i];
			outq_pop(c);
			if (r.flags & (RF_CLOSE | RF_STARTTLS)) {
				bool closing = r.flags & RF_CLOSE;
				/* Closing with unread input would send a RST that can
				 * destroy our last reply in flight: shut down writes
				 * and drain briefly instead. After STARTTLS's 220,
				 * and only now, the handshake starts. */
				if (closing)
					shutdown(c->fd, SHUT_WR);
				c->phase = closing ? P_LINGER : P_HANDSHAKE;
				c->greet_at = S.now + (closing ? LINGER_MS : HANDSHAKE_MS);
				c->in_len = 0;
				return true;
			}
			if (r.flags & RF_DATA && r.id == R_354) {
				smtp_session_data_begin(&c->s);
				smtp_data_init(&c->data);
				c->data_size = 0;
				c->cflags &= (uint8_t)~CF_TOOBIG;
			}
		}
		c->out_off = (uint16_t)done;
		if (done > 0) {
			c->cflags |= CF_WANTW;
			return true;
		}
	}
	return true;
}

static bool tarpitted(struct conn *c)
{
	struct smtp_env e = session_env(c);
	return smtp_session_tarpitted(&c->s, &e);
}

/* The last reply, to a client that broke the protocol: it waits the
 * tarpit like any other answer to an offence. */
static struct smtp_reply offence_reply(struct conn *c, enum reply_id id)
{
	struct smtp_reply r = {id, RF_CLOSE};
	if (tarpitted(c))
		r.flags |= RF_TARPIT;
	return r;
}

/* Octets arrived after DATA before its 354 went out, or after STARTTLS
 * before its 220: they are never read as content or commands (SPEC §7). */
static void pipe_violation(struct conn *c)
{
	struct smtp_reply r = offence_reply(c, R_554_PIPE);
	struct smtp_reply *last = c->outq_len ? outq_at(c, c->outq_len - 1) : NULL;

	maildir_abort(S.md, &c->msg);
	if (c->tls >= 0 && !tls_active(c)) {
		tls_release(S.tls, c->tls);
		c->tls = -1;
	}
	smtp_session_reset(&c->s);
	c->s.state = SMTP_CLOSING;
	c->in_len = 0;
	if (last && (last->id == R_354 || last->id == R_220_TLS) && !(c->outq_len == 1 && c->out_off > 0)) {
		*last = r;
		if (r.flags & RF_TARPIT)
			STAT(c, replies_tarpitted);
	} else {
		outq_push(c, r);
	}
}

static void log_rcpt_reject(struct conn *c, const char *line, size_t len, enum reply_id id)
{
	char ip[64], text[96];
	if (!log_enabled(LOG_LVL_INFO))
		return;
	peer_text(c, ip, sizeof ip);
	log_neuter(text, sizeof text, line, len);
	log_msg(LOG_LVL_INFO, "event=rcpt_rejected id=%u ip=%s code=%d command=\"%s\"", c->id, ip,
		reply_code(id), text);
}

/* The harvest table only hears of sessions the tarpit applies to:
 * trusted connectors (T = 0) and authenticated senders never count. */
static bool harvest_applies(struct conn *c)
{
	return S.harvest && tarpitted(c);
}

/* The ban hook: argv split once at load, the address as its own word, no
 * shell, posix_spawn so the loop never waits; children are reaped on
 * SIGCHLD. At most once per source per window. */
static void run_ban(const struct ip_addr *peer, const char *ip)
{
	const struct harvest_conf *h = &S.gen->cfg.harvest;
	char *argv[CONF_BAN_WORDS + 1];
	static char *const envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL};
	pid_t pid;
	int rc;

	if (h->ban_argc == 0 || !harvest_ban_due(S.harvest, peer, S.now, &S.hp))
		return;
	for (unsigned i = 0; i < h->ban_argc; i++)
		argv[i] = (char *)(i == h->ban_addr ? ip : h->ban_buf + h->ban_off[i]);
	argv[h->ban_argc] = NULL;
	rc = posix_spawn(&pid, argv[0], S.ban_fa_ready ? &S.ban_fa : NULL, NULL, argv, envp);
	if (rc != 0) {
		S.ban_failures++;
		log_msg(LOG_LVL_ERROR, "event=ban_failed ip=%s error=\"%s\"", ip, strerror(rc));
		return;
	}
	S.bans_total++;
	log_msg(LOG_LVL_NOTICE, "event=ban ip=%s pid=%ld", ip, (long)pid);
}

static void reap_children(void)
{
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			S.ban_failures++;
			log_msg(LOG_LVL_WARNING, "event=ban_failed pid=%ld status=%d", (long)pid, status);
		}
	}
}

static void discredited_now(struct conn *c, const char *why)
{
	char ip[64];
	peer_text(c, ip, sizeof ip);
	S.discredits_total++;
	log_msg(LOG_LVL_NOTICE, "event=discredited ip=%s reason=%s", ip, why);
	run_ban(&c->peer, ip);
}

static void harvest_unknown_rcpt(struct conn *c)
{
	if (!harvest_applies(c))
		return;
	if (harvest_unknown(S.harvest, &c->peer, S.now, &S.hp))
		discredited_now(c, "unknown_recipients");
	if (harvest_discredited(S.harvest, &c->peer, S.now, &S.hp))
		smtp_session_discredit(&c->s);
}

/* Runs one command line and queues its replies. A rejected recipient's
 * log entry quotes the line (an over-long one is never quoted). */
static void run_line(struct conn *c, const struct smtp_env *e, const char *line, size_t len, bool too_long)
{
	struct smtp_reply out[2];
	unsigned n = smtp_session_line(&c->s, e, line, len, too_long, out);

	if (too_long)
		len = 0;
	for (unsigned i = 0; i < n; i++) {
		struct smtp_reply r = out[i];
		if (r.flags & RF_STARTTLS) {
			/* The pool slot is taken now, so a 220 is never sent
			 * without a context to back it. */
			c->tls = (int16_t)tls_acquire(S.tls, c->fd);
			if (c->tls < 0)
				r = smtp_session_starttls_failed(&c->s);
		}
		outq_push(c, r);
		if (r.id == R_550_UNKNOWN || r.id == R_550_RELAY)
			log_rcpt_reject(c, line, len, (enum reply_id)r.id);
		if (r.id == R_550_UNKNOWN)
			harvest_unknown_rcpt(c);
		if (r.id == R_235_AUTH || r.id == R_535_AUTH)
			log_msg(LOG_LVL_INFO, "event=auth id=%u result=%s", c->id, r.id == R_235_AUTH ? "ok" : "failed");
	}
}

/* A long AUTH line is assembled in the envelope memory: a complete one is
 * run, an over-long one is answered 500 5.5.6 and skipped to its end. */
static void process_aux(struct conn *c, const struct smtp_env *e)
{
	char *aux = conn_aux(c);
	char *nl = memchr(aux, '\n', c->aux_len);

	if (!nl) {
		if (c->aux_len < AUTH_LINE_MAX)
			return;
		run_line(c, e, aux, c->aux_len, true);
		c->cflags = (uint8_t)((c->cflags & ~CF_AUX) | CF_SKIP);
		c->aux_len = 0;
		return;
	}
	{
		size_t len = (size_t)(nl - aux), rest = c->aux_len - len - 1;
		size_t keep = rest < sizeof c->in ? rest : sizeof c->in;
		if (len && aux[len - 1] == '\r')
			len--;
		run_line(c, e, aux, len, len + 2 > AUTH_LINE_MAX);
		/* AUTH ends a pipelined group: whatever followed it is kept
		 * only as far as the line buffer goes. */
		memcpy(c->in, nl + 1, keep);
		c->in_len = (uint16_t)keep;
		c->aux_len = 0;
		c->cflags &= (uint8_t)~CF_AUX;
	}
}

/* Runs the complete command lines in in[] while the reply queue has room. */
static void process_input(struct conn *c)
{
	struct smtp_env e = session_env(c);

	if ((c->cflags & CF_AUX) && c->s.state == SMTP_CMD && c->outq_len + 2 <= OUTQ_MAX)
		process_aux(c, &e);
	while (c->s.state == SMTP_CMD && !(c->cflags & CF_AUX) && c->outq_len + 2 <= OUTQ_MAX) {
		char *nl = memchr(c->in, '\n', c->in_len);
		size_t consumed, len;

		if (!nl) {
			if (c->in_len == sizeof c->in && !(c->cflags & CF_SKIP) && S.users &&
			    smtp_session_long_line_ok(&c->s, c->in, c->in_len)) {
				memcpy(conn_aux(c), c->in, c->in_len);
				c->aux_len = c->in_len;
				c->in_len = 0;
				c->cflags |= CF_AUX;
			} else if (c->in_len == sizeof c->in) {
				/* Over-long line: one reply, then skip to its end so
				 * its tail is never taken for a command. */
				if (!(c->cflags & CF_SKIP))
					run_line(c, &e, c->in, c->in_len, true);
				c->cflags |= CF_SKIP;
				c->in_len = 0;
			}
			break;
		}
		consumed = (size_t)(nl - c->in) + 1;
		len = consumed - 1;
		if (c->cflags & CF_SKIP) {
			c->cflags &= (uint8_t)~CF_SKIP;
		} else {
			if (len && c->in[len - 1] == '\r')
				len--;
			run_line(c, &e, c->in, len, false);
		}
		c->in_len = (uint16_t)(c->in_len - consumed);
		memmove(c->in, c->in + consumed, c->in_len);
		if ((c->s.state == SMTP_DATA_WAIT || c->s.state == SMTP_TLS_WAIT) && c->in_len > 0)
			pipe_violation(c);
	}
}

static void reply_to_message(struct conn *c, enum smtp_data_status st)
{
	struct smtp_env e = session_env(c);
	char ip[64];

	if (st == DATA_STORED) {
		peer_text(c, ip, sizeof ip);
		log_msg(LOG_LVL_INFO, "event=accepted id=%u ip=%s queue_id=%s size=%llu rcpts=%u", c->id, ip,
			c->queue_id, (unsigned long long)c->data_size, c->s.nrcpt);
	} else if (st == DATA_STORE_FAILED) {
		log_msg(LOG_LVL_ERROR, "event=store_error id=%u queue_id=%s", c->id, c->queue_id);
	}
	maildir_abort(S.md, &c->msg);
	outq_push(c, smtp_session_data_end(&c->s, &e, st));
	if (c->cflags & CF_STOP) {
		struct smtp_reply bye = {R_421_SHUTDOWN, RF_CLOSE};
		c->s.state = SMTP_CLOSING;
		outq_push(c, bye);
	}
}

/* The end of data: a refused message is answered now, a good one joins
 * the group commit of this loop pass and is answered after it. */
static void finish_message(struct conn *c, const struct smtp_data *d)
{
	struct commit_round *r = &S.commits;
	if (d->bare_eol) {
		reply_to_message(c, DATA_BARE_EOL);
	} else if (c->cflags & CF_TOOBIG) {
		reply_to_message(c, DATA_TOO_BIG);
	} else {
		r->conns[r->n] = c;
		r->ids[r->n] = c->id;
		r->n++;
		c->cflags |= CF_COMMIT;
	}
}

static bool conn_flush(struct conn *c);
static void conn_pump(struct conn *c);
static void conn_update(struct conn *c);

/* One sync round for every message that ended in this loop pass. */
static void run_commits(void)
{
	struct commit_round *r = &S.commits;
	unsigned n = 0;

	for (unsigned k = 0; k < r->n; k++) {
		struct conn *c = r->conns[k];
		char ip[1] = "";
		if (c->fd < 0 || c->id != r->ids[k] || !(c->cflags & CF_COMMIT))
			continue;
		r->conns[n] = c;
		r->msgs[n] = &c->msg;
		fill_envelope(c, &r->envs[n], ip, sizeof ip);
		n++;
	}
	r->n = 0;
	if (n == 0)
		return;
	maildir_commit_batch(S.md, r->msgs, r->envs, n, r->results);
	for (unsigned k = 0; k < n; k++) {
		struct conn *c = r->conns[k];
		c->msg.fd = -1;
		c->cflags &= (uint8_t)~CF_COMMIT;
		reply_to_message(c, r->results[k] == 0 ? DATA_STORED : DATA_STORE_FAILED);
		conn_pump(c);
	}
}

static void store_data(struct conn *c, size_t olen)
{
	if (!(c->cflags & CF_TOOBIG) && !c->data.bare_eol) {
		if (c->data_size + olen > c->connector->cf->max_message_size)
			c->cflags |= CF_TOOBIG;
		else
			maildir_write(&c->msg, dbuf, olen);
	}
	c->data_size += olen;
}

/* Message data streams from the socket to the store through one shared
 * buffer. In the clear it is peeked first, so that octets after the end
 * of data stay in the socket for the command reader, however many the
 * client pipelined. Through TLS (no peeking) it is read in pieces no
 * larger than in[], so what follows the end always fits there. Returns
 * false when the client is gone. */
static bool read_data(struct conn *c)
{
	size_t used, olen;
	bool done;
	ssize_t n;

	if (!tls_active(c)) {
		n = recv(c->fd, rbuf, sizeof rbuf, MSG_PEEK);
		if (n <= 0)
			return n < 0 && try_later();
		used = smtp_data_feed(&c->data, rbuf, (size_t)n, dbuf, &olen, &done);
		if (recv(c->fd, rbuf, used, 0) != (ssize_t)used)
			return false;
		c->last_activity = S.now;
		store_data(c, olen);
		if (done)
			finish_message(c, &c->data);
		return true;
	}
	for (unsigned i = 0; i < sizeof rbuf / TLS_READ_CHUNK; i++) {
		n = io_recv(c, rbuf, TLS_READ_CHUNK);
		if (n <= 0)
			return n < 0 && try_later();
		c->last_activity = S.now;
		used = smtp_data_feed(&c->data, rbuf, (size_t)n, dbuf, &olen, &done);
		store_data(c, olen);
		if (done) {
			c->in_len = (uint16_t)((size_t)n - used);
			memcpy(c->in, rbuf + used, c->in_len);
			finish_message(c, &c->data);
			return true;
		}
	}
	return true;
}

static void on_eof(struct conn *c)
{
	if (waiting_on_tarpit(c)) {
		STAT(c, tarpit_disconnects);
		if (harvest_applies(c) && harvest_hangup(S.harvest, &c->peer, S.now, &S.hp))
			discredited_now(c, "hangup_while_tarpitted");
	}
	conn_close(c, c->outq_len ? "client_gone_waiting" : "client_closed");
}

/* Drives the TLS handshake; false if the connection was closed. */
static bool conn_handshake(struct conn *c)
{
	int r = tls_handshake(S.tls, c->tls);
	c->cflags &= (uint8_t)~CF_WANTW;
	if (r == TLS_WANT_READ)
		return true;
	if (r == TLS_WANT_WRITE) {
		c->cflags |= CF_WANTW;
		return true;
	}
	if (r != 0) {
		conn_close(c, r == TLS_CLOSED ? "tls_client_gone" : "tls_handshake_failed");
		return false;
	}
	c->phase = P_ACTIVE;
	c->last_activity = S.now;
	smtp_session_tls_started(&c->s);
	STAT(c, tls_sessions);
	log_msg(LOG_LVL_INFO, "event=tls id=%u version=%s cipher=%s", c->id, tls_version_name(S.tls, c->tls),
		tls_cipher_name(S.tls, c->tls));
	return true;
}

/* Returns false if the connection was closed. */
static bool conn_read(struct conn *c)
{
	ssize_t n;
	uint16_t *len = NULL; /* of the buffer read into; none: discarded */
	char *buf = rbuf;
	size_t room = sizeof rbuf;

	if (c->phase == P_LINGER) {
		n = recv(c->fd, rbuf, sizeof rbuf, 0);
		if (n == 0 || (n < 0 && !try_later())) {
			conn_close(c, "closed");
			return false;
		}
		return true;
	}
	if (c->phase == P_HANDSHAKE)
		return conn_handshake(c);
	if (c->s.state == SMTP_DATA) {
		if (!read_data(c)) {
			on_eof(c);
			return false;
		}
		process_input(c);
		return true;
	}
	if (c->s.state == SMTP_CMD && (c->cflags & CF_AUX) && c->aux_len < AUTH_LINE_MAX) {
		len = &c->aux_len;
		buf = conn_aux(c) + c->aux_len;
		room = AUTH_LINE_MAX - c->aux_len;
	} else if (c->s.state == SMTP_CMD && !(c->cflags & CF_AUX) && c->in_len < sizeof c->in) {
		len = &c->in_len;
		buf = c->in + c->in_len;
		room = sizeof c->in - c->in_len;
	}
	n = io_recv(c, buf, room);
	if (n <= 0) {
		if (n < 0 && try_later())
			return true;
		on_eof(c); /* a reset is a hang-up too */
		return false;
	}
	c->last_activity = S.now;
	if (c->phase == P_GREETING) {
		struct smtp_reply r = offence_reply(c, R_554_EARLY);
		c->phase = P_ACTIVE;
		c->s.state = SMTP_CLOSING;
		c->in_len = 0;
		outq_push(c, r);
		STAT(c, protocol_errors);
		return true;
	}
	switch (c->s.state) {
	case SMTP_CMD:
		if (len)
			*len = (uint16_t)(*len + (size_t)n);
		process_input(c);
		break;
	case SMTP_DATA_WAIT:
	case SMTP_TLS_WAIT:
		pipe_violation(c);
		break;
	default:
		break; /* closing: input is discarded */
	}
	return true;
}

static bool wants_input(const struct conn *c)
{
	if (c->cflags & (CF_EOF | CF_COMMIT))
		return false;
	if (c->phase != P_ACTIVE || c->s.state != SMTP_CMD)
		return true;
	return (c->cflags & CF_AUX) ? c->aux_len < AUTH_LINE_MAX : c->in_len < sizeof c->in;
}

static uint64_t idle_at(const struct conn *c)
{
	return c->last_activity + ms(c->connector->cf->connection_inactivity_timeout);
}

static void conn_update(struct conn *c)
{
	uint64_t t = c->phase == P_LINGER ? c->greet_at : c->deadline;
	bool want = wants_input(c);

	loop_mod(S.loop, c->fd, (want ? LOOP_READ : 0) | (c->cflags & CF_WANTW ? LOOP_WRITE : 0),
		 conn_index(S.tab, c));
	if ((c->phase == P_GREETING || c->phase == P_HANDSHAKE) && c->greet_at < t)
		t = c->greet_at;
	if (c->phase == P_GREETING || c->phase == P_ACTIVE) {
		uint64_t idle = idle_at(c);
		uint64_t due = tarpit_due(c);
		if (due) {
			if (due < t)
				t = due;
			/* The client is waiting for us: its idle clock is stopped. */
			if (due > S.now)
				idle = t;
		}
		if (idle < t)
			t = idle;
		/* Decrypted input waiting inside TLS makes the socket look idle:
		 * come back at once rather than wait for readiness. */
		if (tls_active(c) && want && tls_pending(S.tls, c->tls) > 0)
			t = S.now;
	}
	tw_arm(&S.wheel, &c->timer, t);
}

static void send_greeting(struct conn *c)
{
	struct smtp_reply r = {R_GREETING, 0};
	/* A known harvester waits T for its greeting too (SPEC §8). */
	if (harvest_applies(c) && harvest_discredited(S.harvest, &c->peer, S.now, &S.hp)) {
		smtp_session_discredit(&c->s);
		r.flags |= RF_TARPIT;
	}
	c->phase = P_ACTIVE;
	outq_push(c, r);
}

static void conn_timeout(struct conn *c)
{
	char buf[128];
	/* Best effort (the socket is non-blocking): a client that stopped
	 * reading must not keep the slot. */
	if (c->out_off == 0 && c->s.state != SMTP_CLOSING && c->phase != P_HANDSHAKE) {
		ssize_t r = io_send(c, buf, render_bare(R_421_TIMEOUT, buf, sizeof buf));
		(void)r;
	}
	conn_close(c, "timeout");
}

static void conn_on_timer(struct conn *c)
{
	if ((c->phase == P_LINGER || c->phase == P_HANDSHAKE) && S.now >= c->greet_at) {
		conn_close(c, c->phase == P_LINGER ? "closed" : "tls_handshake_timeout");
		return;
	}
	if (c->phase != P_LINGER &&
	    (S.now >= c->deadline || (c->phase != P_HANDSHAKE && !waiting_on_tarpit(c) && S.now >= idle_at(c)))) {
		conn_timeout(c);
		return;
	}
	if (c->phase == P_GREETING && S.now >= c->greet_at)
		send_greeting(c);
	if (tls_active(c) && c->phase == P_ACTIVE && wants_input(c) && tls_pending(S.tls, c->tls) > 0) {
		if (!conn_read(c))
			return;
	}
	conn_pump(c);
}

/* Flushes and runs queued command lines until neither makes progress:
 * one wake-up may have to answer a whole pipelined batch, several reply
 * queues long, and no further event would come for it. Then the
 * connection, unless closed, waits for its next event or timer. */
static void conn_pump(struct conn *c)
{
	for (;;) {
		uint16_t in_len, aux_len;
		uint8_t outq_len;
		if (!conn_flush(c))
			return;
		if (c->phase != P_ACTIVE || c->s.state != SMTP_CMD || (!c->in_len && !(c->cflags & CF_AUX)))
			break;
		in_len = c->in_len;
		aux_len = c->aux_len;
		outq_len = c->outq_len;
		process_input(c);
		if (c->in_len == in_len && c->aux_len == aux_len && c->outq_len == outq_len)
			break;
	}
	conn_update(c);
}

static void conn_on_event(struct conn *c, unsigned events)
{
	if (c->phase == P_HANDSHAKE) {
		if (!conn_handshake(c))
			return;
		if (c->phase == P_HANDSHAKE) {
			conn_update(c);
			return;
		}
		/* Done: the client may already have sent its EHLO. */
		events |= LOOP_READ;
	}
	if (events & LOOP_WRITE) {
		if (!conn_flush(c))
			return;
	}
	if (events & (LOOP_READ | LOOP_ERROR)) {
		if (!conn_read(c))
			return;
	}
	if (!conn_flush(c))
		return;
	if (c->phase == P_HANDSHAKE) {
		/* The 220 just went out: the client's hello may be waiting. */
		if (!conn_handshake(c))
			return;
	}
	/* Replies that went out may have made room for queued commands. */
	conn_pump(c);
}

static bool same_binding(const struct binding *x, const struct binding *y)
{
	return x->port == y->port && ip_cmp(&x->addr, &y->addr) == 0;
}

static struct connector *match_connector(unsigned li, const struct ip_addr *peer)
{
	struct connector *best = NULL;
	struct ip_addr best_size = {{0}};
	const struct listener *l = &S.listeners[li];

	for (unsigned i = 0; i < S.gen->n; i++) {
		const struct connector_conf *cf = S.gen->connectors[i].cf;
		unsigned b = 0;
		if (!cf->enabled)
			continue;
		while (b < cf->nbindings && !same_binding(&cf->bindings[b], &l->b))
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

/* Stops accepting until `until` (on_tick resumes), or resumes with 0. */
static void pause_accept(uint64_t until)
{
	S.accept_paused_until = until;
	for (unsigned i = 0; i < S.nlisteners; i++)
		loop_mod(S.loop, S.listeners[i].fd, until ? 0 : LOOP_READ, TAG_LISTENER | i);
}

static void on_accept(unsigned li)
{
	for (int iter = 0; iter < ACCEPT_BATCH; iter++) {
		struct sockaddr_storage ss;
		socklen_t slen = sizeof ss;
		struct ip_addr peer;
		uint16_t port;
		struct connector *cn;
		struct conn *c;
		const struct connector_conf *cf;
		int fd = accept4(S.listeners[li].fd, (struct sockaddr *)&ss, &slen, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE) {
				/* Out of descriptors: spend the reserve one to refuse
				 * politely, then pause instead of spinning. */
				/* Every client already waiting is refused now, not one
				 * per pause. */
				while (S.reserve_fd >= 0) {
					close(S.reserve_fd);
					fd = accept4(S.listeners[li].fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
					if (fd >= 0)
						refuse(fd, R_421_FULL, NULL);
					S.reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
					if (fd < 0)
						break;
				}
				log_msg(LOG_LVL_WARNING, "event=accept_paused reason=descriptors");
				pause_accept(S.now + TICK_MS);
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
		c->fd = fd;
		c->id = ++S.next_id;
		c->connector = cn;
		c->peer = peer;
		c->peer_port = port;
		c->last_activity = S.now;
		c->deadline = S.now + ms(cf->connection_timeout);
		src_count_inc(S.tab, &peer);
		cn->gen->refs++;
		STAT(c, connections_total);
		STAT(c, connections_current);
		if (log_enabled(LOG_LVL_INFO)) {
			char ip[64];
			ip_format(&peer, ip, sizeof ip);
			log_msg(LOG_LVL_INFO, "event=connect id=%u ip=%s port=%u connector=\"%s\"", c->id, ip,
				port, cf->name);
		}
		if (cf->greeting_delay) {
			c->phase = P_GREETING;
			c->greet_at = S.now + ms(cf->greeting_delay);
		} else {
			send_greeting(c);
		}
		conn_pump(c);
	}
}


static bool same_mtime(struct timespec a, struct timespec b)
{
	return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

static void check_recipients(void)
{
	struct stat st;
	static char err[1024]; /* static: a small frame is cheaper code on MIPS16 */
	struct recipients *r;
	const char *path = S.gen->cfg.server.recipients;

	if (stat(path, &st) != 0 || same_mtime(st.st_mtim, recipients_mtime(S.rcpts)) ||
	    same_mtime(st.st_mtim, S.rcpts_failed_mtime))
		return;
	r = recipients_load(path, err, sizeof err);
	if (!r) {
		S.rcpts_failed_mtime = st.st_mtim;
		log_msg(LOG_LVL_ERROR, "event=reload_failed file=recipients (keeping the old list)");
		log_msg(LOG_LVL_ERROR, "%s", err);
		return;
	}
	recipients_unref(S.rcpts);
	S.rcpts = r;
	log_msg(LOG_LVL_NOTICE, "event=reload file=recipients entries=%u", recipients_count(r));
}

/* The names of a stats line's values: the counters in the order of struct
 * stats, then the harvest figures that ride on the server line. */
static const char stat_names[] =
	"connections_total connections_current connections_refused messages_accepted "
	"recipients_accepted recipients_unknown replies_tarpitted tarpit_disconnects "
	"protocol_errors tls_sessions auth_success auth_failure harvest_table_size "
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
	v[NCOUNTERS + 3] = S.discredits_total;
	v[NCOUNTERS + 4] = S.bans_total;
	v[NCOUNTERS + 5] = S.ban_failures;
	off = stats_line(buf, len, "scope=server", v, NCOUNTERS + 6);
	for (unsigned i = 0; i < S.gen->n && off < len; i++) {
		char scope[CONF_NAME_MAX + 40];
		snprintf(scope, sizeof scope, "scope=connector name=\"%s\"", S.gen->connectors[i].cf->name);
		memcpy(v, &S.gen->connectors[i].rt->st, sizeof v[0] * NCOUNTERS);
		off += stats_line(buf + off, len - off, scope, v, NCOUNTERS);
	}
	return off;
}

static void log_stats(void)
{
	char *p = wbuf, *nl;
	render_stats(wbuf, sizeof wbuf);
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
static void on_control_accept(void)
{
	int fd = accept4(S.control_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	unsigned i;
	if (fd < 0)
		return;
	for (i = 0; i < CONTROL_CLIENTS && S.control_clients[i] >= 0; i++)
		;
	if (i == CONTROL_CLIENTS || loop_add(S.loop, fd, LOOP_READ, TAG_CONTROL | (i + 1)) != 0) {
		close(fd);
		return;
	}
	S.control_clients[i] = fd;
}

static void on_control_request(unsigned i)
{
	int fd = S.control_clients[i];
	char req[64];
	ssize_t r = recv(fd, req, sizeof req, 0);
	if (r < 0 && try_later())
		return;
	if (r > 0 && memcmp(req, "stats", r < 5 ? (size_t)r : 5) == 0) {
		size_t n = render_stats(wbuf, sizeof wbuf);
		ssize_t w = send(fd, wbuf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		(void)w;
	}
	loop_del(S.loop, fd);
	close(fd);
	S.control_clients[i] = -1;
}

static void on_tick(void)
{
	check_recipients();
	if (S.accept_paused_until && S.now >= S.accept_paused_until) {
		if (S.reserve_fd < 0)
			S.reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		pause_accept(0);
	}
	tw_arm(&S.wheel, &S.tick, S.now + TICK_MS);
}

static void on_signal(int sig)
{
	int saved = errno;
	char b = 0;
	ssize_t r;
	sig_seen[sig == SIGINT ? SIGTERM : sig] = 1;
	r = write(S.sigpipe[1], &b, 1);
	(void)r;
	errno = saved;
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
	while (k < n && !same_binding(&l[k].b, b))
		k++;
	return k;
}

static void log_binding(const char *event, const struct binding *b)
{
	char text[80];
	binding_format(b, text, sizeof text);
	log_msg(LOG_LVL_NOTICE, "event=%s binding=%s", event, text);
}

/* Makes the listening sockets those of g's enabled connectors: kept where
 * a binding stays, opened where one is new, closed where one went. On a
 * failure nothing changes. */
static int reconcile_listeners(const struct gen *g)
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
			o = find_listener(S.listeners, S.nlisteners, &nl[nn].b);
			nl[nn++].fd = o < S.nlisteners ? S.listeners[o].fd : -1;
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
	for (o = 0; o < S.nlisteners; o++)
		if (find_listener(nl, nn, &S.listeners[o].b) == nn) {
			loop_del(S.loop, S.listeners[o].fd);
			close(S.listeners[o].fd);
			log_binding("unlisten", &S.listeners[o].b);
		}
	for (k = 0; k < nn; k++) {
		unsigned mask = S.accept_paused_until ? 0 : LOOP_READ;
		if (opened[k])
			loop_add(S.loop, nl[k].fd, mask, TAG_LISTENER | k);
		else
			loop_mod(S.loop, nl[k].fd, mask, TAG_LISTENER | k);
		S.listeners[k] = nl[k];
	}
	S.nlisteners = nn;
	return 0;
}

static struct connector_rt *connector_rt(const char *name)
{
	struct connector_rt *rt;
	for (rt = S.rts; rt; rt = rt->next)
		if (strcasecmp(rt->name, name) == 0)
			return rt;
	rt = calloc(1, sizeof *rt);
	if (!rt)
		return NULL;
	snprintf(rt->name, sizeof rt->name, "%s", name);
	rt->next = S.rts;
	S.rts = rt;
	return rt;
}

/* Takes ownership of cfg (also on failure). */
static struct gen *gen_new(struct config *cfg)
{
	struct gen *g = calloc(1, sizeof *g);
	if (!g) {
		config_free(cfg);
		return NULL;
	}
	g->cfg = *cfg;
	g->refs = 1;
	g->n = g->cfg.nconnectors;
	g->connectors = calloc(g->n ? g->n : 1, sizeof *g->connectors);
	if (!g->connectors) {
		gen_unref(g);
		return NULL;
	}
	for (unsigned i = 0; i < g->n; i++) {
		g->connectors[i].cf = &g->cfg.connectors[i];
		g->connectors[i].gen = g;
		g->connectors[i].rt = connector_rt(g->cfg.connectors[i].name);
		if (!g->connectors[i].rt) {
			gen_unref(g);
			return NULL;
		}
	}
	return g;
}

/* Makes g the configuration new sessions start on. */
static void use_gen(struct gen *g)
{
	S.gen = g;
	S.hp.threshold = g->cfg.harvest.threshold;
	S.hp.window_ms = ms(g->cfg.harvest.window);
}

static void warn_restart_keys(const struct server_conf *n)
{
	const struct server_conf *o = &S.boot;
	if (n->max_connections != o->max_connections || strcmp(n->spool, o->spool) ||
	    strcmp(n->user, o->user) || strcmp(n->pidfile, o->pidfile) ||
	    strcmp(n->control, o->control) || strcmp(n->hostname, o->hostname) ||
	    n->log_syslog != o->log_syslog)
		log_msg(LOG_LVL_WARNING, "event=reload note=\"max_connections, spool, user, pidfile, control, hostname and log take effect at the next restart\"");
}

/* Logs each line of a multi-line error text on its own. */
static void log_lines(char *err)
{
	for (char *p = strtok(err, "\n"); p; p = strtok(NULL, "\n"))
		log_msg(LOG_LVL_ERROR, "%s", p);
}

/* The INI's and the users file's error texts have a line per error; a
 * recipient file's is logged as one line. */
static void reload_failed(char *err, bool split)
{
	log_msg(LOG_LVL_ERROR, "event=reload_failed (keeping the old configuration)");
	if (split)
		log_lines(err);
	else
		log_msg(LOG_LVL_ERROR, "%s", err);
}

/* SIGHUP: the INI and the recipient file again. New sessions get the new
 * settings; sessions in progress keep their generation. Any error keeps
 * the old configuration in force. Ignored once shutting down. */
static void reload(void)
{
	static char err[8192];
	static struct config cfg; /* static: a small frame is cheaper code on MIPS16 */
	struct recipients *r;
	struct users *u = NULL;
	struct gen *g, *old;

	if (S.stopping)
		return;
	if (config_load(&cfg, S.gen->cfg.path, err, sizeof err) != 0) {
		reload_failed(err, true);
		return;
	}
	r = recipients_load(cfg.server.recipients, err, sizeof err);
	if (!r) {
		reload_failed(err, false);
		config_free(&cfg);
		return;
	}
	if (cfg.auth.enabled) {
		u = users_load(cfg.auth.users, err, sizeof err);
		if (!u) {
			reload_failed(err, true);
			recipients_unref(r);
			config_free(&cfg);
			return;
		}
	}
	if (cfg.tls.enabled != (S.tls != NULL))
		log_msg(LOG_LVL_WARNING, "event=reload note=\"adding or removing [tls] takes effect at the next restart\"");
	g = gen_new(&cfg);
	if (!g || reconcile_listeners(g) != 0) {
		err[0] = 0; /* the listeners' errors are logged already */
		reload_failed(err, true);
		if (g)
			gen_unref(g);
		recipients_unref(r);
		users_free(u);
		return;
	}
	/* Users are only read during one AUTH command: swapping is safe. */
	users_free(S.users);
	S.users = u;
	for (unsigned i = 0; i < g->n; i++)
		if (g->connectors[i].cf->max_recipients_per_message > S.max_rcpt)
			log_msg(LOG_LVL_WARNING, "connector \"%s\": max_recipients_per_message above %u takes effect at the next restart",
				g->connectors[i].cf->name, S.max_rcpt);
	warn_restart_keys(&g->cfg.server);
	old = S.gen;
	use_gen(g);
	gen_unref(old);
	recipients_unref(S.rcpts);
	S.rcpts = r;
	S.rcpts_failed_mtime.tv_sec = 0;
	log_set_level(g->cfg.server.log_level);
	log_msg(LOG_LVL_NOTICE, "event=reload connectors=%u recipients=%u", g->n, recipients_count(r));
}

static void close_listeners(void)
{
	for (unsigned i = 0; i < S.nlisteners; i++) {
		loop_del(S.loop, S.listeners[i].fd);
		close(S.listeners[i].fd);
	}
	S.nlisteners = 0;
}

/* SIGTERM: stop listening; sessions between commands get 421 4.3.2 at
 * once (a pending tarpitted reply is dropped for it); a message being
 * received finishes first. */
static void begin_shutdown(void)
{
	struct smtp_reply bye = {R_421_SHUTDOWN, RF_CLOSE};

	S.stopping = true;
	close_listeners();
	for (uint32_t i = 0; i < S.tab->size; i++) {
		struct conn *c = &S.tab->slots[i];
		if (c->fd < 0 || !c->connector || c->phase == P_LINGER)
			continue;
		if (c->s.state == SMTP_DATA) {
			c->cflags |= CF_STOP;
			continue;
		}
		/* Keep only a reply that is partly written, then say goodbye. */
		c->outq_len = c->out_off ? 1 : 0;
		maildir_abort(S.md, &c->msg);
		smtp_session_reset(&c->s);
		c->s.state = SMTP_CLOSING;
		c->phase = P_ACTIVE;
		outq_push(c, bye);
		conn_pump(c);
	}
	log_msg(LOG_LVL_NOTICE, "event=stopping sessions=%u", S.tab->size - S.tab->nfree);
}

static int open_control(const char *path)
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
	return fd;
}

static int drop_privileges(const char *user)
{
	struct passwd *pw = getpwnam(user);
	if (!pw) {
		log_msg(LOG_LVL_ERROR, "user '%s' does not exist", user);
		return -1;
	}
	if (setgroups(1, &pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0) {
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

/* The commit round's arrays, one per slot, in one block: envs first, the
 * rest in order of decreasing alignment, so each part stays aligned. */
static int commits_alloc(struct commit_round *r, size_t n)
{
	char *p = calloc(n, sizeof *r->envs + sizeof *r->conns + sizeof *r->msgs + sizeof *r->ids +
				    sizeof *r->results);
	if (!p)
		return -1;
	r->envs = (struct sink_envelope *)(void *)p;
	r->conns = (struct conn **)(void *)(p += n * sizeof *r->envs);
	r->msgs = (struct sink_msg **)(void *)(p += n * sizeof *r->conns);
	r->ids = (uint32_t *)(void *)(p += n * sizeof *r->msgs);
	r->results = (int *)(void *)(p + n * sizeof *r->ids);
	return 0;
}

static int setup(struct config *cfg)
{
	struct gen *g;
	static char err[2048]; /* static: a small frame is cheaper code on MIPS16 */
	struct rlimit rl;
	uint32_t maxfds;
	struct sigaction sa = {.sa_handler = on_signal};
	static const int signals[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGCHLD};

	S.boot = cfg->server;
	g = gen_new(cfg);
	if (!g)
		return -1;
	use_gen(g);
	S.max_rcpt = 1;
	for (unsigned i = 0; i < S.gen->n; i++)
		if (S.gen->connectors[i].cf->max_recipients_per_message > S.max_rcpt)
			S.max_rcpt = (uint16_t)S.gen->connectors[i].cf->max_recipients_per_message;

	/* Every slot may need two descriptors (its socket and the message it
	 * is receiving), plus the listeners, the control socket and its
	 * clients, the signal pipe, the reserve and a commit's directories. */
	maxfds = 2 * S.boot.max_connections + MAX_LISTENERS + CONTROL_CLIENTS + 32;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < maxfds) {
		rl.rlim_cur = rl.rlim_max < maxfds ? rl.rlim_max : maxfds;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < maxfds) {
		log_msg(LOG_LVL_WARNING, "descriptor limit %llu is below max_connections %u: connections beyond it are refused",
			(unsigned long long)rl.rlim_cur, S.boot.max_connections);
		maxfds = (uint32_t)rl.rlim_cur;
	}

	S.loop = loop_new((int)maxfds);
	S.tab = conn_table_new(S.boot.max_connections, S.max_rcpt);
	if (!S.loop || !S.tab || commits_alloc(&S.commits, S.boot.max_connections) != 0) {
		log_msg(LOG_LVL_ERROR, "cannot allocate the connection table for %u connections",
			S.boot.max_connections);
		return -1;
	}
	S.rcpts = recipients_load(S.boot.recipients, err, sizeof err);
	if (!S.rcpts)
		goto failed;
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
		if (posix_spawn_file_actions_init(&S.ban_fa) == 0) {
			posix_spawn_file_actions_addopen(&S.ban_fa, 0, "/dev/null", O_RDONLY, 0);
			posix_spawn_file_actions_addopen(&S.ban_fa, 1, "/dev/null", O_WRONLY, 0);
			S.ban_fa_ready = true;
		}
	}
	if (S.gen->cfg.tls.enabled) {
		/* The pool's contexts are set up on first use, so a server whose
		 * clients never ask for TLS spends no memory on it. */
		S.tls = tls_new(S.gen->cfg.tls.certificate, S.gen->cfg.tls.key, S.gen->cfg.tls.max_sessions,
				err, sizeof err);
		if (!S.tls)
			goto failed;
	}
	if (reconcile_listeners(S.gen) != 0)
		return -1;
	if (S.boot.control[0]) {
		S.control_fd = open_control(S.boot.control);
		if (S.control_fd < 0 || loop_add(S.loop, S.control_fd, LOOP_READ, TAG_CONTROL) != 0)
			return -1;
	}
	if (S.boot.pidfile[0] && write_pidfile(S.boot.pidfile) != 0) {
		log_msg(LOG_LVL_ERROR, "cannot write pidfile %s: %s", S.boot.pidfile, strerror(errno));
		return -1;
	}
	if (S.boot.user[0] && drop_privileges(S.boot.user) != 0)
		return -1;
	S.md = maildir_open(S.boot.spool, S.boot.hostname, err, sizeof err);
	if (!S.md)
		goto failed;

	if (pipe2(S.sigpipe, O_NONBLOCK | O_CLOEXEC) != 0)
		return -1;
	sigemptyset(&sa.sa_mask);
	for (unsigned i = 0; i < sizeof signals / sizeof signals[0]; i++)
		sigaction(signals[i], &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (loop_add(S.loop, S.sigpipe[0], LOOP_READ, TAG_SIGNAL) != 0)
		return -1;
	S.reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	{
		/* glibc loads its time-zone data on the first gmtime_r(): do it
		 * now, so the first stored message allocates nothing. */
		time_t t = time(NULL);
		struct tm tm;
		gmtime_r(&t, &tm);
	}
	S.now = now_ms();
	tw_init(&S.wheel, S.now);
	tw_node_init(&S.tick);
	tw_arm(&S.wheel, &S.tick, S.now + TICK_MS);
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
	close_listeners();
	for (unsigned i = 0; i < CONTROL_CLIENTS; i++)
		if (S.control_clients[i] >= 0)
			close(S.control_clients[i]);
	if (S.control_fd >= 0) {
		close(S.control_fd);
		unlink(S.boot.control);
	}
	if (S.boot.pidfile[0])
		unlink(S.boot.pidfile);
	maildir_close(S.md);
	recipients_unref(S.rcpts);
	users_free(S.users);
	tls_free(S.tls);
	harvest_free(S.harvest);
	if (S.ban_fa_ready)
		posix_spawn_file_actions_destroy(&S.ban_fa);
	conn_table_free(S.tab);
	free(S.commits.envs);
	loop_free(S.loop);
	if (S.gen)
		gen_unref(S.gen);
	while (S.rts) {
		struct connector_rt *next = S.rts->next;
		free(S.rts);
		S.rts = next;
	}
	if (S.reserve_fd >= 0)
		close(S.reserve_fd);
	if (S.sigpipe[0] >= 0) {
		close(S.sigpipe[0]);
		close(S.sigpipe[1]);
	}
}

/* What the loop does for a signal once the events it interrupted are served. */
static const struct {
	int sig;
	void (*run)(void);
} on_sig[] = {
	{SIGHUP, reload},
	{SIGUSR1, log_stats},
	{SIGCHLD, reap_children},
};

int server_run(struct config *cfg)
{
	int status = 0;

	S.reserve_fd = -1;
	S.control_fd = -1;
	for (unsigned i = 0; i < CONTROL_CLIENTS; i++)
		S.control_clients[i] = -1;
	S.sigpipe[0] = S.sigpipe[1] = -1;
	if (setup(cfg) != 0) {
		teardown();
		return 1;
	}
	while (!S.stopping || S.tab->nfree < S.tab->size) {
		struct loop_event ev;
		struct tw_node *node;
		int64_t timeout = tw_next_timeout(&S.wheel, now_ms());

		if (timeout > INT32_MAX)
			timeout = INT32_MAX;
		if (loop_wait(S.loop, timeout < 0 ? -1 : (int)timeout) < 0) {
			log_msg(LOG_LVL_ERROR, "event loop failed: %s", strerror(errno));
			status = 1;
			break;
		}
		S.now = now_ms();
		while (loop_next(S.loop, &ev)) {
			if (ev.tag == TAG_SIGNAL) {
				char b[64];
				while (read(S.sigpipe[0], b, sizeof b) > 0)
					;
			} else if (ev.tag == TAG_CONTROL) {
				on_control_accept();
			} else if ((ev.tag & ~0xffu) == TAG_CONTROL) {
				on_control_request((ev.tag & 0xffu) - 1);
			} else if (ev.tag & TAG_LISTENER) {
				if (!S.stopping)
					on_accept(ev.tag & ~TAG_LISTENER);
			} else if (ev.tag < S.tab->size && S.tab->slots[ev.tag].fd == ev.fd) {
				conn_on_event(&S.tab->slots[ev.tag], ev.events);
			}
		}
		while ((node = tw_expire(&S.wheel, S.now)) != NULL) {
			if (node == &S.tick)
				on_tick();
			else
				conn_on_timer((struct conn *)(void *)((char *)node - offsetof(struct conn, timer)));
		}
		run_commits();
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
