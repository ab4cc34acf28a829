/* sasl: the octet parsers of SMTP AUTH PLAIN and LOGIN (RFC 4954).
 *
 * Promises: strict and pure (they are fed client octets and fuzzed): no
 * allocation, no state, output only into the caller's buffers.
 */
#ifndef TARPITD_SASL_H
#define TARPITD_SASL_H

#include <stddef.h>

/* Strict base64 (RFC 4648, padding required, no whitespace). 0 ok, -1. */
int auth_b64_decode(const char *in, size_t inlen, unsigned char *out, size_t outsz, size_t *outlen);
size_t auth_b64_encode(const unsigned char *in, size_t inlen, char *out, size_t outsz);
/* SASL PLAIN message "authzid NUL authcid NUL passwd": authzid must be
 * empty or equal to authcid. Points into buf. 0 ok, -1 malformed. */
int sasl_plain_parse(const unsigned char *buf, size_t len, const char **user, size_t *ulen,
		     const char **pass, size_t *plen);

#endif
