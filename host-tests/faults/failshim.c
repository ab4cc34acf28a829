/* failshim: an LD_PRELOAD library that makes the spool's storage calls
 * fail on demand, for the storage-failure tests of test_faults.py.
 *
 * Build: cc -shared -fPIC -O1 -o failshim.so failshim.c -ldl
 *
 * The server keeps running while failures are switched on and off: every
 * wrapped call stat()s a control file, so a test turns failures on by
 * writing that file and off by removing it, between two SMTP commands.
 *
 *   FAILSHIM_CONTROL  path of the control file (unset: the shim is inert)
 *   FAILSHIM_PREFIX   only calls on files or directories under this path
 *                     fail (a socket or the log never does)
 *   FAILSHIM_LOG      optional: one line per injected failure, so a test
 *                     can tell that the failure it wanted really happened
 *
 * The control file holds words separated by blanks:
 *   write fsync link open mkdir all    which calls fail (any number)
 *   ENOSPC | EIO                        the errno (default ENOSPC)
 *   skip=N                              the first N matching calls after
 *                                       the file was (re)written succeed,
 *                                       e.g. to fail the second link only
 * "fsync" covers fsync, fdatasync and syncfs; "link" covers link and
 * linkat; "open" covers open/openat with O_CREAT; "mkdir" mkdir/mkdirat.
 *
 * The shim's own file access goes through syscall() so it never re-enters
 * itself. Single-threaded like the server: no locking.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

enum { OP_WRITE = 1, OP_FSYNC = 2, OP_LINK = 4, OP_OPEN = 8, OP_MKDIR = 16 };

static struct {
	int loaded;
	dev_t dev;
	ino_t ino;
	struct timespec mtime;
	off_t size;
	unsigned ops;
	int err;
	long skip;
	long seen;
} ctl;

static int parse_control(const char *path)
{
	char buf[512];
	int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	ctl.ops = 0;
	ctl.err = ENOSPC;
	ctl.skip = 0;
	ctl.seen = 0;
	if (fd < 0)
		return -1;
	n = syscall(SYS_read, fd, buf, sizeof buf - 1);
	syscall(SYS_close, fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	for (char *save = NULL, *w = strtok_r(buf, " \t\r\n,", &save); w;
	     w = strtok_r(NULL, " \t\r\n,", &save)) {
		if (!strcmp(w, "write"))
			ctl.ops |= OP_WRITE;
		else if (!strcmp(w, "fsync"))
			ctl.ops |= OP_FSYNC;
		else if (!strcmp(w, "link"))
			ctl.ops |= OP_LINK;
		else if (!strcmp(w, "open"))
			ctl.ops |= OP_OPEN;
		else if (!strcmp(w, "mkdir"))
			ctl.ops |= OP_MKDIR;
		else if (!strcmp(w, "all"))
			ctl.ops |= OP_WRITE | OP_FSYNC | OP_LINK | OP_OPEN | OP_MKDIR;
		else if (!strcmp(w, "EIO"))
			ctl.err = EIO;
		else if (!strcmp(w, "ENOSPC"))
			ctl.err = ENOSPC;
		else if (!strncmp(w, "skip=", 5))
			ctl.skip = strtol(w + 5, NULL, 10);
	}
	return 0;
}

/* The failing ops now, re-reading the control file whenever it changed. */
static unsigned armed_ops(void)
{
	const char *path = getenv("FAILSHIM_CONTROL");
	struct stat st;

	if (!path || stat(path, &st) != 0) {
		ctl.loaded = 0;
		return 0;
	}
	if (!ctl.loaded || st.st_dev != ctl.dev || st.st_ino != ctl.ino ||
	    st.st_size != ctl.size || st.st_mtim.tv_sec != ctl.mtime.tv_sec ||
	    st.st_mtim.tv_nsec != ctl.mtime.tv_nsec) {
		if (parse_control(path) != 0)
			return 0;
		ctl.loaded = 1;
		ctl.dev = st.st_dev;
		ctl.ino = st.st_ino;
		ctl.size = st.st_size;
		ctl.mtime = st.st_mtim;
	}
	return ctl.ops;
}

static int under_prefix(const char *p)
{
	const char *pre = getenv("FAILSHIM_PREFIX");
	size_t n;

	if (!pre || !*pre)
		return 1;
	n = strlen(pre);
	while (n > 1 && pre[n - 1] == '/')
		n--;
	return strncmp(p, pre, n) == 0 && (p[n] == '/' || p[n] == '\0');
}

/* Where an fd (or dirfd + relative name) points; "" if unknown. */
static void resolve(int dirfd, const char *name, char *out, size_t outlen)
{
	char link[64], dir[PATH_MAX];
	ssize_t n;

	out[0] = '\0';
	if (name && name[0] == '/') {
		snprintf(out, outlen, "%s", name);
		return;
	}
	if (dirfd == AT_FDCWD) {
		if (!getcwd(dir, sizeof dir))
			return;
	} else {
		snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
		n = readlink(link, dir, sizeof dir - 1);
		if (n <= 0)
			return;
		dir[n] = '\0';
	}
	if (name && *name)
		snprintf(out, outlen, "%s/%s", dir, name);
	else
		snprintf(out, outlen, "%s", dir);
}

static void note(const char *what, const char *path, int err)
{
	const char *log = getenv("FAILSHIM_LOG");
	char line[PATH_MAX + 64];
	int fd, n;

	if (!log)
		return;
	n = snprintf(line, sizeof line, "%s %s %s\n", what, err == EIO ? "EIO" : "ENOSPC", path);
	if (n < 0)
		return;
	if (n >= (int)sizeof line)
		n = (int)sizeof line - 1;
	fd = (int)syscall(SYS_openat, AT_FDCWD, log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	syscall(SYS_write, fd, line, (size_t)n);
	syscall(SYS_close, fd);
}

/* Whether this call fails; sets errno when it does. */
static int should_fail(unsigned op, const char *what, int dirfd, const char *name)
{
	char path[2 * PATH_MAX + 2];
	int saved = errno;

	if (!(armed_ops() & op)) {
		errno = saved;
		return 0;
	}
	resolve(dirfd, name, path, sizeof path);
	if (!path[0] || !under_prefix(path)) {
		errno = saved;
		return 0;
	}
	if (ctl.seen++ < ctl.skip) {
		errno = saved;
		return 0;
	}
	note(what, path, ctl.err);
	errno = ctl.err;
	return 1;
}

#define REAL(ret, name, ...)                                                   \
	static ret (*real_##name)(__VA_ARGS__);                                \
	if (!real_##name)                                                      \
		*(void **)&real_##name = dlsym(RTLD_NEXT, #name)

ssize_t write(int fd, const void *buf, size_t len)
{
	REAL(ssize_t, write, int, const void *, size_t);
	if (should_fail(OP_WRITE, "write", fd, NULL))
		return -1;
	return real_write(fd, buf, len);
}

int fsync(int fd)
{
	REAL(int, fsync, int);
	if (should_fail(OP_FSYNC, "fsync", fd, NULL))
		return -1;
	return real_fsync(fd);
}

int fdatasync(int fd)
{
	REAL(int, fdatasync, int);
	if (should_fail(OP_FSYNC, "fdatasync", fd, NULL))
		return -1;
	return real_fdatasync(fd);
}

int syncfs(int fd)
{
	REAL(int, syncfs, int);
	if (should_fail(OP_FSYNC, "syncfs", fd, NULL))
		return -1;
	return real_syncfs(fd);
}

int linkat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, int flags)
{
	REAL(int, linkat, int, const char *, int, const char *, int);
	if (should_fail(OP_LINK, "linkat", newdirfd, newpath))
		return -1;
	return real_linkat(olddirfd, oldpath, newdirfd, newpath, flags);
}

int link(const char *oldpath, const char *newpath)
{
	REAL(int, link, const char *, const char *);
	if (should_fail(OP_LINK, "link", AT_FDCWD, newpath))
		return -1;
	return real_link(oldpath, newpath);
}

int openat(int dirfd, const char *path, int flags, ...)
{
	mode_t mode = 0;
	REAL(int, openat, int, const char *, int, ...);
	if (flags & (O_CREAT | __O_TMPFILE)) {
		va_list ap;
		va_start(ap, flags);
		mode = (mode_t)va_arg(ap, int);
		va_end(ap);
		if (should_fail(OP_OPEN, "openat", dirfd, path))
			return -1;
	}
	return real_openat(dirfd, path, flags, mode);
}

int open(const char *path, int flags, ...)
{
	mode_t mode = 0;
	REAL(int, open, const char *, int, ...);
	if (flags & (O_CREAT | __O_TMPFILE)) {
		va_list ap;
		va_start(ap, flags);
		mode = (mode_t)va_arg(ap, int);
		va_end(ap);
		if (should_fail(OP_OPEN, "open", AT_FDCWD, path))
			return -1;
	}
	return real_open(path, flags, mode);
}

int mkdirat(int dirfd, const char *path, mode_t mode)
{
	REAL(int, mkdirat, int, const char *, mode_t);
	if (should_fail(OP_MKDIR, "mkdirat", dirfd, path))
		return -1;
	return real_mkdirat(dirfd, path, mode);
}

int mkdir(const char *path, mode_t mode)
{
	REAL(int, mkdir, const char *, mode_t);
	if (should_fail(OP_MKDIR, "mkdir", AT_FDCWD, path))
		return -1;
	return real_mkdir(path, mode);
}
