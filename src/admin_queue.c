/* admin_queue: `tarpitd queue [flush|delete ID]` (SPEC §2, §10).
 *
 * The listing reads <spool>/queue itself, read-only (queue_read: no
 * struct queue, so nothing is recovered, emptied or deleted), so it works
 * with the server stopped and beside a running one; `flush` and `delete`
 * go through the control socket, so the server's table and its attempt
 * in progress stay the one truth (a message being delivered is not
 * deleted under it). The listing is like Postfix's mailq: one line per
 * message, one indented line per recipient, oldest first.
 */
#include "admin_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "limits.h"
#include "log.h"
#include "queue.h"

struct listed {
	uint32_t accepted;
	char name[QUEUE_ID_MAX + 4];
};

static int by_age(const void *a, const void *b)
{
	const struct listed *x = a, *y = b;
	if (x->accepted != y->accepted)
		return x->accepted < y->accepted ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* A field from the spool, quoted as the log quotes it (log_neuter):
 * a reply from a next hop is not trusted to be harmless on a terminal. */
static void put_safe(const char *s)
{
	char b[4 * ADDRESS_MAX + 8]; /* every octet of an address may become \xHH */

	log_neuter(b, sizeof b, s, strlen(s));
	fputs(b, stdout);
}

static void put_span(uint32_t secs)
{
	char b[32];
	format_timespan(secs, b, sizeof b);
	fputs(b, stdout);
}

static const char *const state_name[] = {"pending", "sent", "failed"};

static int list(const char *spool)
{
	char path[PATH_MAX + 8];
	static char buf[QUEUE_ENV_MAX];
	static struct queue_rcpt rcpt[QUEUE_RCPTS_MAX];
	struct listed *items = NULL;
	size_t n = 0, cap = 0, nrcpt = 0;
	struct queue_env env;
	struct dirent *de;
	uint32_t now = (uint32_t)time(NULL);
	int dfd;
	DIR *d;

	snprintf(path, sizeof path, "%s/queue", spool);
	dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 && errno == ENOENT) {
		puts("tarpitd: the queue is empty");
		return admin_flush_stdout("queue");
	}
	if (dfd < 0 || !(d = fdopendir(dup(dfd)))) {
		if (dfd >= 0)
			close(dfd);
		return admin_fail(1, "%s: %s", path, strerror(errno));
	}
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		if (len < 5 || len >= sizeof items->name || strcmp(de->d_name + len - 4, ".env") != 0)
			continue;
		if (queue_read(dfd, de->d_name, &env, buf, sizeof buf, rcpt, QUEUE_RCPTS_MAX) != 0)
			continue; /* being replaced right now, or not ours: the server counts those */
		if (n == cap) {
			struct listed *m = realloc(items, (cap = cap ? 2 * cap : 64) * sizeof *items);
			if (!m) {
				closedir(d);
				close(dfd);
				free(items);
				return admin_fail(1, "out of memory");
			}
			items = m;
		}
		items[n].accepted = env.accepted;
		memcpy(items[n].name, de->d_name, len + 1);
		n++;
	}
	closedir(d);
	if (n) /* qsort's base must not be NULL, even for none */
		qsort(items, n, sizeof *items, by_age);
	for (size_t i = 0; i < n; i++) {
		if (queue_read(dfd, items[i].name, &env, buf, sizeof buf, rcpt, QUEUE_RCPTS_MAX) != 0)
			continue; /* delivered meanwhile */
		printf("%s  age=", env.id);
		put_span(now > env.accepted ? now - env.accepted : 0);
		printf("  size=%llu  from=<", (unsigned long long)env.size);
		put_safe(env.sender);
		puts(">");
		for (unsigned k = 0; k < env.nrcpt; k++) {
			const struct queue_rcpt *r = &env.rcpt[k];
			printf("    to=<");
			put_safe(r->addr);
			printf(">  relay=\"");
			put_safe(r->relay);
			printf("\"  state=%s  attempts=%u", state_name[r->state < 3 ? r->state : 0], r->attempts);
			if (r->state == QR_PENDING) {
				printf("  next=");
				if (r->next > now)
					put_span(r->next - now);
				else
					fputs("now", stdout);
			}
			if (r->reply[0]) {
				printf("  reply=\"");
				put_safe(r->reply);
				putchar('"');
			}
			putchar('\n');
			nrcpt += r->state == QR_PENDING;
		}
	}
	close(dfd);
	free(items);
	if (n == 0)
		puts("tarpitd: the queue is empty");
	else
		printf("-- %zu message%s, %zu recipient%s pending\n", n, n == 1 ? "" : "s", nrcpt,
		       nrcpt == 1 ? "" : "s");
	return admin_flush_stdout("queue");
}

int admin_queue(const char *path, int argc, char **argv)
{
	char req[CONTROL_REQ_MAX];
	struct buf b = { 0 };
	int status = 1;

	if (argc == 1 && strcmp(argv[0], "flush") == 0) {
		strcpy(req, "queue flush\n");
	} else if (argc == 2 && strcmp(argv[0], "delete") == 0) {
		size_t n = strlen(argv[1]);
		if (n == 0 || n >= QUEUE_ID_MAX || strspn(argv[1], "0123456789ABCDEFabcdef") != n)
			return admin_fail(2, "queue delete: '%s' is not a queue id", admin_echo(argv[1]));
		snprintf(req, sizeof req, "queue delete %s\n", argv[1]);
	} else if (argc != 0) {
		return admin_fail(2, "usage: queue [flush|delete ID]");
	}
	if (admin_load_or_report(path) != 0)
		return 1;
	if (argc == 0) {
		status = list(admin_cfg.server.spool);
		config_free(&admin_cfg);
		return status;
	}
	if (admin_control_request(req, &b) != 0)
		goto out;
	if (b.len && strncmp(b.p, "error=no_queue", 14) == 0)
		admin_fail(1, "the server has no forwarding queue (no [relay] section)");
	else if (b.len && strncmp(b.p, "error=no_such_id", 16) == 0)
		admin_fail(1, "%s is not in the queue", argv[1]);
	else if (b.len && strncmp(b.p, "error=busy", 10) == 0)
		admin_fail(1, "%s is being delivered right now; try again", argv[1]);
	else if (b.len && strncmp(b.p, "error=", 6) == 0)
		admin_fail(1, "the server refused the request: %.*s", (int)strcspn(b.p, "\n"), b.p);
	else if (b.len && strncmp(b.p, "flushed=", 8) == 0) {
		unsigned long k = strtoul(b.p + 8, NULL, 10);
		printf("tarpitd: %lu message%s due now\n", k, k == 1 ? "" : "s");
		status = admin_flush_stdout("queue");
	} else if (b.len && strncmp(b.p, "deleted=", 8) == 0) {
		printf("tarpitd: deleted %s\n", argv[1]);
		status = admin_flush_stdout("queue");
	} else
		admin_fail(1, "the server's answer is not understood");
out:
	free(b.p);
	config_free(&admin_cfg);
	return status;
}
