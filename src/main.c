/* cli: tarpitd's command line (SPEC §2). Exit status: 0 ok, 1 failure,
 * 2 usage error; errors go to stderr, one line each. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "admin.h"
#include "auth.h"
#include "config.h"
#include "log.h"
#include "recipients.h"
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
	"       tarpitd --version | --help\n"
	"The default FILE is " DEFAULT_CONFIG ".\n";

static int load(const char *path, struct config *cfg)
{
	static char err[8192];
	if (config_load(cfg, path, err, sizeof err) != 0) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	return 0;
}

static int cmd_check(const char *path)
{
	struct config cfg;
	char err[8192];
	struct recipients *r;
	struct stat st;
	unsigned nusers = 0;
	int status = 0;

	if (load(path, &cfg) != 0)
		return 1;
	r = recipients_load(cfg.server.recipients, err, sizeof err);
	if (!r) {
		fprintf(stderr, "%s\n", err);
		status = 1;
	} else {
		recipients_unref(r);
	}
	if (stat(cfg.server.spool, &st) == 0 && !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "%s: spool %s is not a directory\n", path, cfg.server.spool);
		status = 1;
	}
	if (cfg.auth.enabled) {
		struct users *u = users_load(cfg.auth.users, err, sizeof err);

		if (!u) {
			fprintf(stderr, "%s\n", err);
			status = 1;
		} else {
			nusers = users_count(u);
			users_free(u);
		}
	}
	if (cfg.tls.enabled && tls_check_files(cfg.tls.certificate, cfg.tls.key, err, sizeof err) != 0) {
		fprintf(stderr, "%s\n", err);
		status = 1;
	}
	if (status == 0 && cfg.auth.enabled)
		printf("%s: OK (%u connector%s, %u user%s)\n", path, cfg.nconnectors,
		       cfg.nconnectors == 1 ? "" : "s", nusers, nusers == 1 ? "" : "s");
	else if (status == 0)
		printf("%s: OK (%u connector%s)\n", path, cfg.nconnectors, cfg.nconnectors == 1 ? "" : "s");
	config_free(&cfg);
	return status;
}

int main(int argc, char **argv)
{
	const char *path = DEFAULT_CONFIG;
	const char *cmd = NULL;
	bool options = true;
	int nargs = 0;

	/* The subcommand's own arguments are gathered, in order, at the
	 * front of argv, so -c FILE may stand anywhere. */
	for (int i = 1; i < argc; i++) {
		if (options && strcmp(argv[i], "--") == 0) {
			options = false;
		} else if (options && strcmp(argv[i], "-c") == 0) {
			if (++i >= argc) {
				fprintf(stderr, "tarpitd: -c needs a FILE\n");
				return 2;
			}
			path = argv[i];
		} else if (options && strcmp(argv[i], "--version") == 0) {
			printf("tarpitd %s\n", TARPITD_VERSION);
			return 0;
		} else if (options && (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)) {
			fputs(usage, stdout);
			return 0;
		} else if (!cmd) {
			cmd = argv[i];
		} else {
			argv[1 + nargs++] = argv[i];
		}
	}
	if (!cmd)
		cmd = "run";
	if (strcmp(cmd, "run") == 0 || strcmp(cmd, "check") == 0) {
		struct config cfg;
		if (nargs) {
			fprintf(stderr, "tarpitd: %s takes no arguments\n%s", cmd, usage);
			return 2;
		}
		if (strcmp(cmd, "check") == 0)
			return cmd_check(path);
		if (load(path, &cfg) != 0)
			return 1;
		log_init(cfg.server.log_syslog, cfg.server.log_level);
		return server_run(&cfg);
	}
	if (strcmp(cmd, "show") == 0)
		return admin_show(path, nargs, argv + 1);
	if (strcmp(cmd, "set") == 0)
		return admin_set(path, nargs, argv + 1);
	if (strcmp(cmd, "stats") == 0)
		return admin_stats(path, nargs, argv + 1);
	if (strcmp(cmd, "passwd") == 0)
		return admin_passwd(path, nargs, argv + 1);
	fprintf(stderr, "tarpitd: unknown command '%s'\n%s", cmd, usage);
	return 2;
}
