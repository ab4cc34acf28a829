#include "ban.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>

#include "conn.h"
#include "gen.h"
#include "harvest.h"
#include "log.h"
#include "loop.h"
#include "priv.h"
#include "server.h"

static struct {
	bool fa_ready;
	uint64_t discredits_total, bans_total, ban_failures;
	posix_spawn_file_actions_t fa; /* stdin and stdout on /dev/null */
} B;

void ban_init(void)
{
	if (posix_spawn_file_actions_init(&B.fa) == 0) {
		posix_spawn_file_actions_addopen(&B.fa, 0, "/dev/null", O_RDONLY, 0);
		posix_spawn_file_actions_addopen(&B.fa, 1, "/dev/null", O_WRONLY, 0);
		B.fa_ready = true;
	}
}

void ban_fini(void)
{
	if (priv_fd() >= 0 && S.loop)
		loop_del(S.loop, priv_fd());
	priv_stop(); /* the helper removes the pidfile and control socket, then exits */
	if (B.fa_ready)
		posix_spawn_file_actions_destroy(&B.fa);
	B.fa_ready = false;
}

void ban_counters(uint64_t v[3])
{
	v[0] = B.discredits_total;
	v[1] = B.bans_total;
	v[2] = B.ban_failures;
}

static void run_ban(const struct ip_addr *peer, const char *ip)
{
	const struct harvest_conf *h = &S.gen->cfg.harvest;
	char *argv[CONF_BAN_WORDS + 1];
	static char *const envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL};
	pid_t pid;
	int rc;

	if (h->ban_argc == 0 || !harvest_ban_due(S.harvest, peer, S.now, &S.hp))
		return;
	if (priv_fd() >= 0) {
		/* After `user =`, the helper runs it with CAP_NET_ADMIN (priv.h). */
		if (priv_ban(ip) != 0) {
			B.ban_failures++;
			log_msg(LOG_LVL_ERROR, "event=ban_failed ip=%s error=\"%s\"", ip, strerror(errno));
			return;
		}
		B.bans_total++;
		log_msg(LOG_LVL_NOTICE, "event=ban ip=%s via=helper", ip);
		return;
	}
	for (unsigned i = 0; i < h->ban_argc; i++)
		argv[i] = (char *)(i == h->ban_addr ? ip : h->ban_buf + h->ban_off[i]);
	argv[h->ban_argc] = NULL;
	rc = posix_spawn(&pid, argv[0], B.fa_ready ? &B.fa : NULL, NULL, argv, envp);
	if (rc != 0) {
		B.ban_failures++;
		log_msg(LOG_LVL_ERROR, "event=ban_failed ip=%s error=\"%s\"", ip, strerror(rc));
		return;
	}
	B.bans_total++;
	log_msg(LOG_LVL_NOTICE, "event=ban ip=%s pid=%ld", ip, (long)pid);
}

static void helper_failed(int status)
{
	B.ban_failures++;
	if (status < 0)
		log_msg(LOG_LVL_WARNING, "event=ban_failed via=helper error=\"%s\"", strerror(-status));
	else
		log_msg(LOG_LVL_WARNING, "event=ban_failed via=helper status=%d", status);
}

void ban_helper_event(void)
{
	int status, r;

	while ((r = priv_answer(&status)) > 0)
		if (status != 0)
			helper_failed(status);
	if (r < 0 && priv_fd() >= 0) {
		log_msg(LOG_LVL_ERROR, "event=priv_helper_lost (bans fail from now on)");
		loop_del(S.loop, priv_fd());
		priv_drop(); /* never a blocking wait on the loop */
	}
}

void ban_reap(void)
{
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (priv_exited(pid)) {
			log_msg(LOG_LVL_ERROR, "event=priv_helper_exited status=%d", status);
			continue;
		}
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			B.ban_failures++;
			log_msg(LOG_LVL_WARNING, "event=ban_failed pid=%ld status=%d", (long)pid, status);
		}
	}
}

static void discredited_now(struct conn *c, const char *why)
{
	char ip[64];
	conn_peer_text(c, ip, sizeof ip);
	B.discredits_total++;
	log_msg(LOG_LVL_NOTICE, "event=discredited ip=%s reason=%s", ip, why);
	run_ban(&c->peer, ip);
}

bool ban_offence(enum ban_event ev, struct conn *c)
{
	if (!S.harvest || !conn_tarpitted(c))
		return false;
	switch (ev) {
	case BAN_UNKNOWN_RCPT:
		if (harvest_unknown(S.harvest, &c->peer, S.now, &S.hp))
			discredited_now(c, "unknown_recipients");
		break;
	case BAN_AUTH_FAILED:
		/* SPEC §8: password guessing spread over many sessions of one
		 * source is an offence toward the same threshold. */
		if (harvest_unknown(S.harvest, &c->peer, S.now, &S.hp))
			discredited_now(c, "auth_failures");
		break;
	case BAN_HANGUP:
		if (harvest_hangup(S.harvest, &c->peer, S.now, &S.hp))
			discredited_now(c, "hangup_while_tarpitted");
		return false; /* the connection is closing: nothing to ask */
	default:
		break;
	}
	return harvest_discredited(S.harvest, &c->peer, S.now, &S.hp);
}
