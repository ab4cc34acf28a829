#include "fileio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int fd_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0) {
			errno = EIO;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int replace_begin(struct replacement *r, const char *path)
{
	struct stat lst;
	char *real = NULL;
	int ok;

	memset(r, 0, sizeof *r);
	if (lstat(path, &lst) == 0 && S_ISLNK(lst.st_mode)) {
		real = realpath(path, NULL);
		if (!real)
			return -1;
		path = real;
	}
	ok = strlen(path) < sizeof r->dest;
	if (ok)
		strcpy(r->dest, path);
	free(real);
	if (!ok) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (stat(r->dest, &r->st) == 0)
		return 0;
	memset(&r->st, 0, sizeof r->st);
	return errno == ENOENT ? 0 : -1;
}

/* Length of dest's directory part with its '/' (0: none). */
static int dir_len(const struct replacement *r)
{
	const char *slash = strrchr(r->dest, '/');

	return slash ? (int)(slash - r->dest) + 1 : 0;
}

int replace_write(struct replacement *r, const char *text, size_t len, mode_t mode)
{
	int d = dir_len(r), fd, e, n;

	replace_drop(r);
	n = snprintf(r->tmp, sizeof r->tmp, "%.*s.%s.XXXXXX", d, r->dest, r->dest + d);
	if (n < 0 || (size_t)n >= sizeof r->tmp) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = mkstemp(r->tmp);
	if (fd < 0)
		return -1;
	r->have_tmp = true;
	/* The daemon may read the file after dropping privileges: keep the
	 * owner it had. Only root can; anyone else's file becomes theirs,
	 * which is all they could do anyway. */
	if (r->st.st_mode && (r->st.st_uid != geteuid() || r->st.st_gid != getegid()) &&
	    fchown(fd, r->st.st_uid, r->st.st_gid) != 0) {
	}
	if (fchmod(fd, mode) == 0 && fd_write_all(fd, text, len) == 0 && fsync(fd) == 0) {
		if (close(fd) == 0)
			return 0;
		fd = -1;
	}
	e = errno;
	if (fd >= 0)
		close(fd);
	replace_drop(r);
	errno = e;
	return -1;
}

int replace_commit(struct replacement *r)
{
	int d = dir_len(r), fd, rc, e;

	if (rename(r->tmp, r->dest) != 0)
		return -1;
	r->have_tmp = false;
	/* The rename itself must survive a power cut too; tmp is free to
	 * name the directory ("dir/." or ".", so the root needs no case). */
	snprintf(r->tmp, sizeof r->tmp, "%.*s.", d, r->dest);
	fd = open(r->tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return 1;
	rc = fsync(fd);
	e = errno;
	close(fd);
	errno = e;
	return rc ? 1 : 0;
}

void replace_drop(struct replacement *r)
{
	if (r->have_tmp)
		unlink(r->tmp);
	r->have_tmp = false;
}

int dir_remove_files(int dir_fd)
{
	int fd = dup(dir_fd);
	DIR *d;
	struct dirent *e;
	struct stat st;

	if (fd < 0)
		return -1;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -1;
	}
	errno = 0;
	while ((e = readdir(d)) != NULL) {
		if (fstatat(dir_fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
			unlinkat(dir_fd, e->d_name, 0);
		errno = 0;
	}
	closedir(d);
	return errno ? -1 : 0;
}
