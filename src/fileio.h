/* fileio: the one write loop shared by the message store, the users file
 * and `tarpitd set`.
 *
 * Promises: fd_write_all() writes all of buf or fails with errno set
 * (EINTR retried, a zero-length write reported as EIO); no allocation. */
#ifndef TARPITD_FILEIO_H
#define TARPITD_FILEIO_H

#include <stddef.h>

int fd_write_all(int fd, const void *buf, size_t len);

#endif
