/* fileio: the write loop and the whole-file replacement shared by the
 * message store, the users file (`tarpitd passwd`) and `tarpitd set`.
 *
 * Promises: fd_write_all() writes all of buf or fails with errno set
 * (EINTR retried, a zero-length write reported as EIO); no allocation.
 * A replacement puts new content in place of a file so that a reader,
 * or a power cut, sees the old file or the new one, never a part: the
 * content goes to a temporary file beside the destination (what a
 * symbolic link names, so the link survives), synced, with the mode asked
 * for and the old file's owner where the caller may keep it; rename()
 * puts it in place and the directory is synced. Every failure but the
 * last, the directory sync, leaves the destination as it was; none leaves
 * a temporary file behind.
 */
#ifndef TARPITD_FILEIO_H
#define TARPITD_FILEIO_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

int fd_write_all(int fd, const void *buf, size_t len);
/* Unlinks every regular file in the directory dir_fd (not what a link
 * points to, not subdirectories): the leftovers of a tmp/ directory at
 * start, the Maildir's and the queue's. 0, or -1 with errno when the
 * directory cannot be read. */
int dir_remove_files(int dir_fd);

struct replacement {
	char dest[PATH_MAX]; /* the file replaced: the path, or what its link names */
	char tmp[PATH_MAX];  /* the temporary file, while have_tmp */
	struct stat st;      /* dest's, before; all zero when it does not exist yet */
	bool have_tmp;
};

/* dest and st for path; a missing file is no error. -1 with errno. */
int replace_begin(struct replacement *r, const char *path);
/* A new temporary file beside dest holding text, with mode; replaces the
 * previous temporary file, if any. -1 with errno, nothing left behind. */
int replace_write(struct replacement *r, const char *text, size_t len, mode_t mode);
/* The temporary file into dest's place, then the directory synced: 0;
 * -1 with errno when the rename failed (dest as it was); 1 with errno
 * when dest is replaced but the directory could not be synced. */
int replace_commit(struct replacement *r);
/* Removes the temporary file, if any. */
void replace_drop(struct replacement *r);

#endif
