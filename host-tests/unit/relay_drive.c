/* relay_drive: runs the outbound transport (src/relay.c) on a loop of its
 * own against a real next hop, for host-tests/integration/
 * test_relay_transport.py, until the receiving side can queue mail
 * through tarpitd itself. It builds the configuration of one [relay]
 * section from its arguments, seeds the queue with messages the way the
 * receiving side will (maildir_begin, the file synced, queue_add), then
 * serves relay's events and timers until the queue is empty, SIGTERM, or
 * the time is up. Test-only: not part of the daemon.
 *
 * relay_drive SPOOL RECIPIENTS HOST SECONDS [key=value ...]
 *   HOST       ip:port, [ipv6]:port or unix:/path
 *   msgs=N     messages to queue (default 1); 0 = only what the queue holds
 *   rcpt=ADDR  a recipient (repeatable; default bob@example.org)
 *   sender=A   the envelope sender (default alice@example.org; "" = <>)
 *   dsn=0|1    QUEUE_F_DSN_SENDER (default 1)
 *   retry=S    retry_min (default 1); rmax=S retry_max (default 2)
 *   life=S     max_queue_lifetime (default 3600)
 *   conns=N    max_connections (default 2)
 *   lmtp=1     protocol = lmtp
 *   body=N     octets of body (lines of 70) beyond the first line
 *   name=NAME  the relay's name (default Office); queue_relay=NAME: the
 *              name the seeded recipients are queued for (default: name)
 *   keep=1     do not stop when the queue is empty
 * Prints "delivered=N deferred=N failed=N dsn=N queued=N" at the end.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "gen.h"
#include "log.h"
#include "loop.h"
#include "maildir.h"
#include "queue.h"
#include "recipients.h"
#include "relay.h"
#include "server.h"
#include "util.h"

static volatile sig_atomic_t term;

static void on_term(int sig)
{
	(void)sig;
	term = 1;
}

static const char *arg(int argc, char **argv, const char *key, const char *def)
{
	size_t n = strlen(key);

	for (int i = 5; i < argc; i++)
		if (strncmp(argv[i], key, n) == 0 && argv[i][n] == '=')
			return argv[i] + n + 1;
	return def;
}

static int seed(int argc, char **argv, const char *qrelay, unsigned k)
{
	static const char *def_rcpt[] = { "bob@example.org" };
	static struct queue_rcpt qr[64];
	const char *rc[64];
	unsigned nr = 0;
	const char *sender = arg(argc, argv, "sender", "alice@example.org");
	struct sink_envelope se = { .sender = sender, .helo = "client.test", .peer_ip = "127.0.0.1",
				    .fqdn = "gw.test", .protocol = "ESMTP" };
	struct sink_msg m;
	struct queue_env env = { 0 };
	char line[128], name[256];
	long body = atol(arg(argc, argv, "body", "0"));
	int r;

	for (int i = 5; i < argc && nr < 64; i++)
		if (strncmp(argv[i], "rcpt=", 5) == 0)
			rc[nr++] = argv[i] + 5;
	if (nr == 0)
		rc[nr++] = def_rcpt[0];
	if (maildir_begin(S.md, &m, &se, env.id) != 0)
		return -1;
	snprintf(line, sizeof line, "Subject: test %u\nMessage-ID: <m%u@client.test>\n\nbody of message %u\n", k, k,
		 k);
	maildir_write(&m, line, strlen(line));
	for (long o = 0; o < body; o += 71) {
		/* A dot at the start of some lines: they must arrive stuffed and unstuffed. */
		snprintf(line, sizeof line, "%s%068ld\n", o % (71 * 7) == 0 ? ".." : "xx", o);
		maildir_write(&m, line, strlen(line));
	}
	if (m.error || fsync(m.fd) != 0 || maildir_tmp_name(S.md, &m, name, sizeof name) != 0) {
		maildir_abort(S.md, &m);
		return -1;
	}
	env.sender = sender;
	env.size = m.size;
	env.accepted = (uint32_t)time(NULL);
	env.flags = atoi(arg(argc, argv, "dsn", "1")) ? QUEUE_F_DSN_SENDER : 0;
	env.nrcpt = nr;
	env.rcpt = qr;
	for (unsigned i = 0; i < nr; i++)
		qr[i] = (struct queue_rcpt){ .relay = qrelay, .addr = rc[i], .reply = "", .next = env.accepted,
					     .state = QR_PENDING };
	r = queue_add(S.queue, maildir_tmp_dir(S.md), name, &env);
	maildir_abort(S.md, &m);
	if (r >= 0)
		log_msg(LOG_LVL_INFO, "event=seeded queue_id=%s n=%u", env.id, k);
	return r < 0 ? -1 : 0;
}

int main(int argc, char **argv)
{
	struct config cfg;
	static struct relay_conf rc;
	char err[1024], qdir[PATH_MAX];
	uint64_t end;
	unsigned msgs;
	bool keep;

	if (argc < 5) {
		fprintf(stderr, "usage: relay_drive SPOOL RECIPIENTS HOST SECONDS [key=value ...]\n");
		return 2;
	}
	log_init(false, LOG_LVL_DEBUG);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_term);
	memset(&cfg, 0, sizeof cfg);
	snprintf(cfg.server.hostname, sizeof cfg.server.hostname, "gw.test");
	snprintf(rc.name, sizeof rc.name, "%s", arg(argc, argv, "name", "Office"));
	snprintf(rc.host, sizeof rc.host, "%s", argv[3]);
	if (strncmp(argv[3], "unix:", 5) == 0) {
		rc.is_unix = true;
		snprintf(rc.unix_path, sizeof rc.unix_path, "%s", argv[3] + 5);
	} else if (binding_parse(argv[3], &rc.addr) != 0) {
		fprintf(stderr, "bad host %s\n", argv[3]);
		return 2;
	}
	rc.lmtp = atoi(arg(argc, argv, "lmtp", "0")) != 0;
	rc.max_connections = (uint32_t)atoi(arg(argc, argv, "conns", "2"));
	rc.retry_min = (uint32_t)atoi(arg(argc, argv, "retry", "1"));
	rc.retry_max = (uint32_t)atoi(arg(argc, argv, "rmax", "2"));
	rc.max_queue_lifetime = (uint32_t)atoi(arg(argc, argv, "life", "3600"));
	rc.ndomains = 1;
	memcpy(rc.domains, "example.org", 12);
	cfg.relays = malloc(sizeof rc);
	memcpy(cfg.relays, &rc, sizeof rc);
	cfg.nrelays = 1;
	cfg.connectors = calloc(1, sizeof *cfg.connectors);
	S.gen = gen_new(&cfg);
	S.loop = loop_new(1024);
	S.now = util_now_ms();
	tw_init(&S.wheel, S.now);
	S.rcpts = recipients_load(argv[2], err, sizeof err);
	S.md = maildir_open(argv[1], "gw.test", err, sizeof err);
	snprintf(qdir, sizeof qdir, "%s/queue", argv[1]);
	S.queue = S.md ? queue_open(qdir, 1000, err, sizeof err) : NULL;
	if (!S.gen || !S.loop || !S.rcpts || !S.md || !S.queue) {
		fprintf(stderr, "setup: %s\n", err);
		return 2;
	}
	while (queue_recover_step(S.queue) == 1)
		;
	msgs = (unsigned)atoi(arg(argc, argv, "msgs", "1"));
	for (unsigned k = 0; k < msgs; k++)
		if (seed(argc, argv, arg(argc, argv, "queue_relay", rc.name), k) != 0) {
			fprintf(stderr, "seed: %s\n", strerror(errno));
			return 2;
		}
	if (relay_init() != 0)
		return 2;
	keep = atoi(arg(argc, argv, "keep", "0")) != 0;
	end = S.now + (uint64_t)atoi(argv[4]) * 1000;
	relay_kick();
	while (S.now < end && (keep || queue_count(S.queue) > 0 || relay_active() > 0)) {
		struct loop_event ev;
		struct tw_node *node;
		int64_t t = tw_next_timeout(&S.wheel, util_now_ms());

		if (term && !S.stopping) {
			S.stopping = true;
			relay_shutdown();
			break;
		}
		if (t < 0 || t > 200)
			t = 200;
		loop_wait(S.loop, (int)t);
		S.now = util_now_ms();
		while (loop_next(S.loop, &ev))
			if ((ev.tag & ~0xffffu) == TAG_RELAY)
				relay_event(ev.tag, ev.events);
		while ((node = tw_expire(&S.wheel, S.now)) != NULL)
			if (!relay_timer(node))
				fprintf(stderr, "a timer that is not relay's\n");
	}
	if (!S.stopping) {
		S.stopping = true;
		relay_shutdown();
	}
	{
		const struct relay_stats *t = relay_stats_total();

		printf("delivered=%llu deferred=%llu failed=%llu dsn=%llu queued=%u active=%u\n",
		       (unsigned long long)t->delivered, (unsigned long long)t->deferred,
		       (unsigned long long)t->failed, (unsigned long long)t->dsn_sent, queue_count(S.queue),
		       relay_active());
	}
	relay_fini();
	queue_close(S.queue);
	maildir_close(S.md);
	recipients_unref(S.rcpts);
	/* Ours, whether or not config_free() knows [relay] sections yet. */
	free(S.gen->cfg.relays);
	S.gen->cfg.relays = NULL;
	S.gen->cfg.nrelays = 0;
	gen_unref(S.gen);
	loop_free(S.loop);
	return 0;
}
