/* users: the users file of SPEC §6, loaded and checked against.
 *
 * Promises: the file ("name:$pbkdf2-sha256$ITERATIONS$SALT$HASH", SALT and
 * HASH base64) is loaded once into one allocation; verification runs
 * PBKDF2-HMAC-SHA256 and compares in constant time, and an unknown user
 * costs the same PBKDF2 run as a known one — the file's most common
 * iteration count on a fixed salt — so timing tells nothing. The server
 * runs the PBKDF2 itself in slices (users_lookup, pbkdf2.h, users_match:
 * verify.c); users_verify does all three in one piece. The table is
 * wiped before it is freed.
 */
#ifndef TARPITD_USERS_H
#define TARPITD_USERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "limits.h"

#define AUTH_ITERATIONS_DEFAULT 2000u /* the reasoning is in docs/auth.md */
#define USERS_HASH_LEN 32 /* SHA-256 */

struct users;

/* NULL with "FILE:LINE: message" lines in err. A file readable by group or
 * others is an error (SPEC §6: mode 0600). */
struct users *users_load(const char *path, char *err, size_t errlen);
void users_free(struct users *u);
unsigned users_count(const struct users *u);
bool users_verify(const struct users *u, const char *user, size_t ulen, const char *pass, size_t plen);

/* What checking one password needs: the entry's salt, count and hash, or
 * for a name not in the file (or a password over AUTH_PASS_MAX octets, or
 * no table) a fixed salt, the file's most common count and known = false. */
struct users_ref {
	const unsigned char *salt; /* into the table: use it before a reload */
	uint32_t iterations;
	uint8_t saltlen;
	bool known;
	unsigned char hash[USERS_HASH_LEN];
};
/* Every entry is compared, so the scan does not tell where the name is. */
void users_lookup(const struct users *u, const char *user, size_t ulen, size_t plen, struct users_ref *r);
/* In constant time: the derived key is the entry's hash and the name known. */
bool users_match(const struct users_ref *r, const unsigned char key[USERS_HASH_LEN]);
/* The count an unknown name costs: the most common one in the file (ties:
 * the larger), AUTH_ITERATIONS_DEFAULT for an empty file or none. */
uint32_t users_usual_iterations(const struct users *u);

/* ---- shared with the writer (passwd.c) ---- */

#define USERS_SCHEME "$pbkdf2-sha256$"
#define USERS_SALT_NEW 16 /* octets of salt a new entry gets */

/* PBKDF2-HMAC-SHA256 of the password (NULL with pwlen 0: empty). 0, -1. */
int users_pbkdf2(const unsigned char *pw, size_t pwlen, const unsigned char *salt, size_t slen,
		 uint32_t iterations, unsigned char out[USERS_HASH_LEN]);
/* 1 to AUTH_USER_MAX printable ASCII octets, no ':' or white space, not
 * starting with '#' (that would make the entry a comment line). */
bool users_name_ok(const char *s, size_t n);

#endif
