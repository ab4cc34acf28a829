/* users: the users file of SPEC §6, loaded and checked against.
 *
 * Promises: the file ("name:$pbkdf2-sha256$ITERATIONS$SALT$HASH", SALT and
 * HASH base64) is loaded once into one allocation; verification runs
 * PBKDF2-HMAC-SHA256 from mbedTLS and compares in constant time, and an
 * unknown user costs the same PBKDF2 run as a known one, so timing tells
 * nothing. The table is wiped before it is freed.
 */
#ifndef TARPITD_USERS_H
#define TARPITD_USERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "limits.h"

#define AUTH_ITERATIONS_DEFAULT 2000u /* the reasoning is in docs/auth.md */

struct users;

/* NULL with "FILE:LINE: message" lines in err. A file readable by group or
 * others is an error (SPEC §6: mode 0600). */
struct users *users_load(const char *path, char *err, size_t errlen);
void users_free(struct users *u);
unsigned users_count(const struct users *u);
bool users_verify(const struct users *u, const char *user, size_t ulen, const char *pass, size_t plen);

/* ---- shared with the writer (passwd.c) ---- */

#define USERS_SCHEME "$pbkdf2-sha256$"
#define USERS_HASH_LEN 32 /* SHA-256 */
#define USERS_SALT_NEW 16 /* octets of salt a new entry gets */

/* PBKDF2-HMAC-SHA256 of the password (NULL with pwlen 0: empty). 0, -1. */
int users_pbkdf2(const unsigned char *pw, size_t pwlen, const unsigned char *salt, size_t slen,
		 uint32_t iterations, unsigned char out[USERS_HASH_LEN]);
/* 1 to AUTH_USER_MAX printable ASCII octets, no ':' or white space, not
 * starting with '#' (that would make the entry a comment line). */
bool users_name_ok(const char *s, size_t n);

#endif
