/* auth: SMTP AUTH PLAIN and LOGIN (RFC 4954) against the users file.
 *
 * Promises: the users file of SPEC §6 ("name:$pbkdf2-sha256$ITERATIONS$
 * SALT$HASH", SALT and HASH base64) is loaded once into one allocation;
 * verification runs PBKDF2-HMAC-SHA256 from mbedTLS and compares in
 * constant time, and an unknown user costs the same PBKDF2 run as a known
 * one, so timing tells nothing. The base64 and SASL parsers are strict and
 * pure (they are fed client octets and fuzzed).
 */
#ifndef TARPITD_AUTH_H
#define TARPITD_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUTH_USER_MAX 64
#define AUTH_PASS_MAX 256
#define AUTH_ITERATIONS_DEFAULT 2000u /* the reasoning is in docs/auth.md */

struct users;

/* NULL with "FILE:LINE: message" lines in err. A file readable by group or
 * others is an error (SPEC §6: mode 0600). */
struct users *users_load(const char *path, char *err, size_t errlen);
void users_free(struct users *u);
unsigned users_count(const struct users *u);
bool users_verify(const struct users *u, const char *user, size_t ulen, const char *pass, size_t plen);

/* `tarpitd passwd`: adds or replaces user with a new random salt and
 * AUTH_ITERATIONS_DEFAULT iterations; writes the file atomically (temp
 * file, fsync, rename) with mode 0600, creating it if missing. 0 ok, -1
 * with a message in err. */
int users_set_password(const char *path, const char *user, const char *pass, size_t plen,
		       char *err, size_t errlen);

/* Strict base64 (RFC 4648, padding required, no whitespace). 0 ok, -1. */
int auth_b64_decode(const char *in, size_t inlen, unsigned char *out, size_t outsz, size_t *outlen);
size_t auth_b64_encode(const unsigned char *in, size_t inlen, char *out, size_t outsz);
/* SASL PLAIN message "authzid NUL authcid NUL passwd": authzid must be
 * empty or equal to authcid. Points into buf. 0 ok, -1 malformed. */
int sasl_plain_parse(const unsigned char *buf, size_t len, const char **user, size_t *ulen,
		     const char **pass, size_t *plen);

#endif
