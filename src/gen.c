#include "gen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "auth.h"
#include "listen.h"
#include "log.h"
#include "recipients.h"
#include "relay.h"
#include "route.h"
#include "tls.h"

static struct {
	struct connector_rt *rts;
	struct timespec rcpts_failed_mtime; /* don't retry a bad file every tick */
} G;

void stat_add(const struct connector *cn, size_t off)
{
	(*(uint64_t *)(void *)((char *)&S.st + off))++;
	if (cn)
		(*(uint64_t *)(void *)((char *)&cn->rt->st + off))++;
}

void gen_unref(struct gen *g)
{
	if (--g->refs)
		return;
	config_free(&g->cfg);
	free(g->connectors);
	free(g);
}

static struct connector_rt *connector_rt(const char *name)
{
	struct connector_rt *rt;
	for (rt = G.rts; rt; rt = rt->next)
		if (strcasecmp(rt->name, name) == 0)
			return rt;
	rt = calloc(1, sizeof *rt);
	if (!rt)
		return NULL;
	snprintf(rt->name, sizeof rt->name, "%s", name);
	rt->next = G.rts;
	G.rts = rt;
	return rt;
}

struct gen *gen_new(struct config *cfg)
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

void gen_use(struct gen *g)
{
	S.gen = g;
	S.hp.threshold = g->cfg.harvest.threshold;
	S.hp.window_ms = ms(g->cfg.harvest.window);
}

void gen_free_all(void)
{
	while (G.rts) {
		struct connector_rt *next = G.rts->next;
		free(G.rts);
		G.rts = next;
	}
}

static bool same_mtime(struct timespec a, struct timespec b)
{
	return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

void gen_check_recipients(void)
{
	struct stat st;
	static char err[1024]; /* static: a small frame is cheaper code on MIPS16 */
	struct recipients *r;
	const char *path = S.gen->cfg.server.recipients;

	if (stat(path, &st) != 0 || same_mtime(st.st_mtim, recipients_mtime(S.rcpts)) ||
	    same_mtime(st.st_mtim, G.rcpts_failed_mtime))
		return;
	r = recipients_load(path, err, sizeof err);
	/* A relay domain the new file no longer has would be forwarded
	 * without a list of its addresses: the old list stays. */
	if (!r || route_check(&S.gen->cfg, r, err, sizeof err) != 0) {
		G.rcpts_failed_mtime = st.st_mtim;
		log_msg(LOG_LVL_ERROR, "event=reload_failed file=recipients (keeping the old list)");
		if (r)
			log_lines(err);
		else
			log_msg(LOG_LVL_ERROR, "%s", err);
		recipients_unref(r);
		return;
	}
	recipients_unref(S.rcpts);
	S.rcpts = r;
	log_msg(LOG_LVL_NOTICE, "event=reload file=recipients entries=%u", recipients_count(r));
}

static void warn_restart_keys(const struct server_conf *n)
{
	const struct server_conf *o = &S.boot;
	if (n->max_connections != o->max_connections || strcmp(n->spool, o->spool) ||
	    strcmp(n->user, o->user) || strcmp(n->pidfile, o->pidfile) ||
	    strcmp(n->control, o->control) || strcmp(n->hostname, o->hostname) ||
	    n->log_syslog != o->log_syslog || n->max_queued != o->max_queued)
		log_msg(LOG_LVL_WARNING, "event=reload note=\"max_connections, spool, user, pidfile, control, hostname, log and max_queued take effect at the next restart\"");
}

void log_lines(char *err)
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

/* New sessions get the new settings; sessions in progress keep their
 * generation. Any error keeps the old configuration in force. Ignored once
 * shutting down. */
void gen_reload(void)
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
	if (route_check(&cfg, r, err, sizeof err) != 0) {
		reload_failed(err, true);
		recipients_unref(r);
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
	if (!g || listen_reconcile(g) != 0) {
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
	gen_use(g);
	gen_unref(old);
	recipients_unref(S.rcpts);
	S.rcpts = r;
	G.rcpts_failed_mtime.tv_sec = 0;
	log_set_level(g->cfg.server.log_level);
	log_msg(LOG_LVL_NOTICE, "event=reload connectors=%u recipients=%u", g->n, recipients_count(r));
	/* Idle outbound sessions of the old configuration QUIT now, and what
	 * waited for the old limits may start. */
	relay_kick();
	/* The queue and the outbound table are made at start, for the
	 * relays it had: a server started without one answers RCPT for a
	 * newly forwarded domain 452 4.3.1 until it is restarted. */
	if (g->cfg.nrelays && !S.queue)
		log_msg(LOG_LVL_WARNING, "event=reload note=\"the first [relay] takes effect at the next restart; "
			"until then its domains get 452 4.3.1\"");
}
