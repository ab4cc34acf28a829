/* cli: tarpitd's command line (SPEC §2). Exit status: 0 ok, 1 failure,
 * 2 usage error; errors go to stderr, one line each. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "admin.h"
#include "users.h"
#include "config.h"
#include "log.h"
#include "maildir.h"
#include "recipients.h"
#include "route.h"
#include "server.h"
#include "tls.h"

#define DEFAULT_CONFIG "/etc/tarpitd/tarpitd.ini"

static const char usage[] =
	"usage: tarpitd [-c FILE] [run]                       serve in the foreground\n"
	"       tarpitd [-c FILE] check                       validate config and every file it names\n"
	"       tarpitd [-c FILE] show [NAME] [--fields F,..] print connectors as a table\n"
	"       tarpitd [-c FILE] set (NAME|--all) KEY=VALUE..  change connector settings\n"
	"       tarpitd [-c FILE] stats                       counters of the running server\n"
	"       tarpitd [-c FILE] passwd USER                 add/replace a user (password on stdin)\n"
	"       tarpitd [-c FILE] harvest [forgive ADDR|all]  list discredited sources / clear them\n"
	"       tarpitd [-c FILE] queue [flush|delete ID]     list the forwarding queue / retry now / drop one\n"
	"       tarpitd --version | --help\n"
	"The default FILE is " DEFAULT_CONFIG ".\n";

/* The commands' large variables are static: a small frame is cheaper code
 * on MIPS16. */
static struct config cfg;
static char err[8192];

/* An error text of a loader, on a line of its own; returns the status 1. */
static int complain(const char *text)
{
	fprintf(stderr, "%s\n", text);
	return 1;
}

/* With what `run` would refuse on this host (SPEC §3): check says what
 * run would, and run refuses before it touches a file. */
static int load(const char *path)
{
	return config_load_host(&cfg, path, err, sizeof err) != 0 ? complain(err) : 0;
}

static int cmd_run(const char *path, int argc, char **argv)
{
	(void)argc, (void)argv;
	if (load(path) != 0)
		return 1;
	log_init(cfg.server.log_syslog, cfg.server.log_level);
	/* The server opens the spool itself, after dropping privileges. */
	maildir_use_group(cfg.server.spool_gid);
	return server_run(&cfg);
}

static int cmd_check(const char *path, int argc, char **argv)
{
	char users[32] = "", relays[32] = "";
	struct recipients *r;
	int status = 0;

	(void)argc, (void)argv;
	if (load(path) != 0)
		return 1;
	r = recipients_load(cfg.server.recipients, err, sizeof err);
	if (!r)
		status = complain(err);
	else if (route_check(&cfg, r, err, sizeof err) != 0)
		status = complain(err);
	recipients_unref(r);
	if (cfg.auth.enabled) {
		struct users *u = users_load(cfg.auth.users, err, sizeof err);
		unsigned n = users_count(u);

		if (!u)
			status = complain(err);
		snprintf(users, sizeof users, ", %u user%s", n, n == 1 ? "" : "s");
		users_free(u);
	}
	if (cfg.tls.enabled && tls_check_files(cfg.tls.certificate, cfg.tls.key, err, sizeof err) != 0) {
		config_tls_error(&cfg, err, sizeof err);
		status = complain(err);
	}
	if (cfg.nrelays)
		snprintf(relays, sizeof relays, ", %u relay%s", cfg.nrelays, cfg.nrelays == 1 ? "" : "s");
	if (status == 0)
		printf("%s: OK (%u connector%s%s%s)\n", path, cfg.nconnectors, cfg.nconnectors == 1 ? "" : "s",
		       relays, users);
	config_free(&cfg);
	return status;
}

static const struct command {
	const char *name;
	int (*run)(const char *path, int argc, char **argv);
	bool no_args;
} commands[] = {
	{"run", cmd_run, true},
	{"check", cmd_check, true},
	{"show", admin_show, false},
	{"set", admin_set, false},
	{"stats", admin_stats, false},
	{"passwd", admin_passwd, false},
	{"harvest", admin_harvest, false},
	{"queue", admin_queue, false},
};

int main(int argc, char **argv)
{
	const char *path = DEFAULT_CONFIG;
	const char *cmd = "run";
	bool options = true, have_cmd = false;
	int nargs = 0;

	/* The subcommand's own arguments are gathered, in order, at the
	 * front of argv, so -c FILE may stand anywhere. */
	for (int i = 1; i < argc; i++) {
		const char *opt = options ? argv[i] : ""; /* after "--" nothing is an option */
		if (strcmp(opt, "--") == 0) {
			options = false;
		} else if (strcmp(opt, "-c") == 0) {
			if (++i >= argc) {
				fprintf(stderr, "tarpitd: -c needs a FILE\n");
				return 2;
			}
			path = argv[i];
		} else if (strcmp(opt, "--version") == 0) {
			printf("tarpitd %s\n", TARPITD_VERSION);
			return 0;
		} else if (strcmp(opt, "--help") == 0 || strcmp(opt, "-h") == 0) {
			fputs(usage, stdout);
			return 0;
		} else if (!have_cmd) {
			cmd = argv[i];
			have_cmd = true;
		} else {
			argv[1 + nargs++] = argv[i];
		}
	}
	for (size_t k = 0; k < sizeof commands / sizeof commands[0]; k++) {
		if (strcmp(cmd, commands[k].name) != 0)
			continue;
		if (commands[k].no_args && nargs) {
			fprintf(stderr, "tarpitd: %s takes no arguments\n%s", cmd, usage);
			return 2;
		}
		return commands[k].run(path, nargs, argv + 1);
	}
	fprintf(stderr, "tarpitd: unknown command '%s'\n%s", cmd, usage);
	return 2;
}
