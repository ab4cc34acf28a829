/* conf_host: what `run` would refuse on this host, found by `check` first
 * (SPEC §3), each at the INI line that asks for it.
 *
 * The server finds these only as it starts (or never: it unlinked
 * whatever `control` named and wrote the pidfile over any file), so
 * `check` said OK to a file `run` could not use. Each check looks, never
 * touches: stat, statfs, getpwnam, and a bind to port 0 of the address
 * (what the server's bind would say about the address, without the port
 * a running server holds). Not for reload: the server's own pidfile and
 * socket exist then, and the listeners are bound.
 */
#include "conf_int.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* File systems a spool can never be made on (their f_type). A table,
 * not <linux/magic.h>: older kernel headers lack some of the names. */
static const struct {
	uint32_t magic;
	char name[12];
} pseudo_fs[] = {
	{0x9fa0, "/proc"},          /* PROC_SUPER_MAGIC */
	{0x62656572, "sysfs"},      /* SYSFS_MAGIC */
	{0x1cd1, "devpts"},         /* DEVPTS_SUPER_MAGIC */
	{0x27e0eb, "cgroup"},       /* CGROUP_SUPER_MAGIC */
	{0x63677270, "cgroup2"},    /* CGROUP2_SUPER_MAGIC */
	{0x64626720, "debugfs"},    /* DEBUGFS_MAGIC */
	{0x74726163, "tracefs"},    /* TRACEFS_MAGIC */
	{0x73636673, "securityfs"}, /* SECURITYFS_MAGIC */
	{0xcafe4a11, "bpf"},        /* BPF_FS_MAGIC */
	{0xde5e81e4, "efivarfs"},   /* EFIVARFS_MAGIC */
};

/* path's directory part into buf ("." when it has none). */
static void dir_of(const char *path, char *buf)
{
	const char *slash = strrchr(path, '/');
	size_t n = slash ? (size_t)(slash - path) : 0;

	if (!slash) {
		strcpy(buf, ".");
	} else if (n == 0) {
		strcpy(buf, "/");
	} else {
		memcpy(buf, path, n);
		buf[n] = '\0';
	}
}

/* The pidfile and the control socket are made in a directory that must
 * exist: the server creates the file, not its directory. */
static bool dir_exists(struct pstate *st, const struct key *k, const char *path)
{
	static char d[PATH_MAX];
	struct stat sb;

	dir_of(path, d);
	if (stat(d, &sb) == 0 && S_ISDIR(sb.st_mode))
		return true;
	conf_err_at(st, conf_key_line(st, k), "%s: directory %s %s", k->name, d,
		    stat(d, &sb) == 0 ? "is not a directory" : "does not exist");
	return false;
}

/* What write_pidfile() left: a PID and a newline (or nothing, if it
 * stopped between creating and writing). Anything else is someone
 * else's file, which `run` would truncate. */
static bool is_pidfile(const char *path, const struct stat *sb)
{
	char buf[32];
	ssize_t n, i = 0;
	int fd;

	if (!S_ISREG(sb->st_mode) || sb->st_size >= (off_t)sizeof buf)
		return false;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY | O_NOFOLLOW);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof buf);
	close(fd);
	if (n < 0)
		return false;
	while (i < n && is_digit(buf[i]))
		i++;
	if (i < n && buf[i] == '\n')
		i++;
	return i == n;
}

/* SPEC §3: the pidfile and the control socket must not name an existing
 * file that is not tarpitd's own, since `run` writes over the one and
 * unlinks the other. A symbolic link is refused as well: root would write
 * through it. */
static void check_run_file(struct pstate *st, const struct key *k, const char *path)
{
	struct stat sb;
	bool control = k->max == P_CONTROL;
	const char *is;

	if (!dir_exists(st, k, path) || lstat(path, &sb) != 0)
		return;
	if (control ? S_ISSOCK(sb.st_mode) : is_pidfile(path, &sb))
		return;
	is = S_ISLNK(sb.st_mode) ? "a symbolic link" : util_not_regular(sb.st_mode);
	conf_err_at(st, conf_key_line(st, k), "%s: %s exists and is %s, not %s (run would %s it)", k->name, path,
		    is ? is : "a file", control ? "a socket" : "a pidfile", control ? "replace" : "overwrite");
}

/* The server makes the spool like mkdir -p: the nearest part of the
 * path that exists must be a directory, on a file system where one can
 * be made. */
static void check_spool(struct pstate *st, const struct key *k, const char *path)
{
	static char d[PATH_MAX];
	struct statfs sf;
	struct statvfs sv;
	struct stat sb;
	int line = conf_key_line(st, k);
	size_t i;

	strcpy(d, path);
	while (stat(d, &sb) != 0) {
		char *slash = strrchr(d, '/');

		if ((errno != ENOENT && errno != ENOTDIR) || strcmp(d, ".") == 0)
			break;
		if (!slash) {
			strcpy(d, ".");
		} else {
			while (slash > d && slash[-1] == '/')
				slash--;
			*slash = '\0';
			if (slash == d)
				strcpy(d, "/");
		}
	}
	if (stat(d, &sb) != 0) {
		conf_err_at(st, line, "%s: cannot look at %s: %s", k->name, d, strerror(errno));
		return;
	}
	if (!S_ISDIR(sb.st_mode)) {
		conf_err_at(st, line, "%s: %s is not a directory", k->name, d);
		return;
	}
	if (statfs(d, &sf) == 0)
		for (i = 0; i < sizeof pseudo_fs / sizeof pseudo_fs[0]; i++)
			if ((uint32_t)sf.f_type == pseudo_fs[i].magic) {
				conf_err_at(st, line, "%s: %s is on %s, where no spool can be made", k->name, path,
					    pseudo_fs[i].name);
				return;
			}
	if (statvfs(d, &sv) == 0 && (sv.f_flag & ST_RDONLY))
		conf_err_at(st, line, "%s: %s is on a read-only file system", k->name, path);
}

/* An address the server's bind() would refuse (EADDRNOTAVAIL: no
 * interface has it; no IPv6 at all). Port 0, so a running server's own
 * socket on the real port is no obstacle. Wildcards always bind. */
static void check_binding(struct pstate *st, const struct binding *b, int line)
{
	struct sockaddr_storage ss;
	socklen_t slen;
	char t[80];
	int fd, one = 1, r, e;

	if (conf_is_wildcard(b))
		return;
	memset(&ss, 0, sizeof ss);
	if (b->v6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, b->addr.a, 16);
		slen = sizeof *s6;
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, b->addr.a + 12, 4);
		slen = sizeof *s4;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	e = errno;
	if (fd >= 0) {
		if (b->v6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
		r = bind(fd, (struct sockaddr *)&ss, slen);
		e = errno;
		close(fd);
		if (r == 0)
			return;
	}
	binding_format(b, t, sizeof t);
	if (e == EADDRNOTAVAIL)
		conf_err_at(st, line, "bindings: %s: no interface has this address", t);
	else if (e == EAFNOSUPPORT)
		conf_err_at(st, line, "bindings: %s: this system has no IPv6", t);
}

static void check_key(struct pstate *st, const struct key *k)
{
	const char *v = (const char *)&st->c->server + k->off;
	/* Looked up once, here: getgrnam's result is static. */
	struct group *g = k->type == K_GROUP && v[0] ? getgrnam(v) : NULL;

	if (k->type == K_USER && v[0] && !getpwnam(v))
		conf_err_at(st, conf_key_line(st, k), "%s: no user '%s' on this system", k->name, v);
	else if (k->type == K_GROUP && v[0] && !g)
		conf_err_at(st, conf_key_line(st, k), "%s: no group '%s' on this system", k->name, v);
	else if (g)
		st->c->server.spool_gid = (uint32_t)g->gr_gid;
	else if (k->type == K_PATH && v[0] && (k->max == P_PIDFILE || k->max == P_CONTROL))
		check_run_file(st, k, v);
	else if (k->type == K_PATH && k->max == P_SPOOL)
		check_spool(st, k, v);
}

static void check_bindings(struct pstate *st)
{
	unsigned i, j;

	for (i = 0; i < st->nconns; i++) {
		const struct connector_conf *cc = &st->conns[i];

		for (j = 0; cc->enabled && j < cc->nbindings; j++)
			check_binding(st, &cc->bindings[j], st->extra[i].binding_line[j]);
	}
}

/* In file order, as every other error (docs/config.md): the [server]
 * keys by line, the bindings by connector, the group first in the file
 * first. */
void conf_check_host(struct pstate *st)
{
	unsigned order[CONF_NKEYS], n = 0, i, j;
	bool server_first = st->nconns == 0 || st->sect_line[S_SERVER] < st->conns[0].line;

	for (i = 0; i < CONF_NKEYS; i++) {
		int l = conf_key_line(st, &conf_keys[i]);

		if (conf_keys[i].sect != S_SERVER)
			continue;
		for (j = n++; j > 0 && conf_key_line(st, &conf_keys[order[j - 1]]) > l; j--)
			order[j] = order[j - 1];
		order[j] = i;
	}
	if (!server_first)
		check_bindings(st);
	for (i = 0; i < n; i++)
		check_key(st, &conf_keys[order[i]]);
	if (server_first)
		check_bindings(st);
}
