/* passwd: the writer behind `tarpitd passwd`.
 *
 * Promises: adds or replaces one entry of the users file (users.h) and
 * keeps every other line byte for byte; the new file is written beside
 * the old one and renamed over it (temp file, fsync, rename, directory
 * sync), mode 0600, so a crash leaves the old file or the new one. Salts
 * come from a CTR-DRBG seeded by the kernel (random.h).
 */
#ifndef TARPITD_PASSWD_H
#define TARPITD_PASSWD_H

#include <stddef.h>

/* Adds or replaces user with a new random salt and
 * AUTH_ITERATIONS_DEFAULT iterations, creating the file if missing. 0 ok,
 * -1 with a message in err. */
int users_set_password(const char *path, const char *user, const char *pass, size_t plen,
		       char *err, size_t errlen);

#endif
