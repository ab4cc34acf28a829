/* fuzz_auth_b64: the AUTH decoders, auth_b64_decode() and
 * sasl_plain_parse(), fed client octets as smtp_session.c feeds them.
 *
 * The first octet chooses: 0 decode the rest as base64, then parse the
 * result as a SASL PLAIN message (the AUTH PLAIN path); 1 encode the rest
 * and decode it back; 2 parse the rest as a SASL PLAIN message.
 *
 * Checks: decoding is strict and canonical — what decodes re-encodes to
 * the very same text, and every octet string survives encode/decode; the
 * output never exceeds outsz (an exactly sized buffer succeeds, one octet
 * less fails); a SASL parse points inside its buffer at a non-empty user
 * and password without NUL, with an authzid that is empty or the user.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sasl.h"

#include "fuzz_util.h"

NOCOV static void check_sasl(const unsigned char *buf, size_t len)
{
	const char *user = NULL, *pass = NULL;
	size_t ulen = 0, plen = 0;
	const char *b = (const char *)buf;

	if (sasl_plain_parse(buf, len, &user, &ulen, &pass, &plen) != 0)
		return;
	FUZZ_CHECK(user > b && user + ulen <= b + len && ulen > 0);
	FUZZ_CHECK(pass > user + ulen && pass + plen == b + len && plen > 0);
	FUZZ_CHECK(memchr(user, 0, ulen) == NULL && memchr(pass, 0, plen) == NULL);
	FUZZ_CHECK(user[-1] == 0 && pass[-1] == 0 && pass - 1 == user + ulen);
	/* authzid: empty, or the user itself. */
	{
		size_t zlen = (size_t)(user - 1 - b);
		FUZZ_CHECK(zlen == 0 || (zlen == ulen && memcmp(b, user, ulen) == 0));
	}
}

/* The decoded length of valid base64 text of n octets (n % 4 == 0). */
NOCOV static void do_decode(const uint8_t *in, size_t n)
{
	size_t cap = n / 4 * 3, olen = 12345, elen;
	unsigned char *out = malloc(cap ? cap : 1);
	char *enc;

	FUZZ_CHECK(out != NULL);
	if (auth_b64_decode((const char *)in, n, out, cap, &olen) != 0) {
		free(out);
		return;
	}
	FUZZ_CHECK(n % 4 == 0 && olen <= cap && olen + 2 >= cap);
	enc = malloc(n + 1);
	FUZZ_CHECK(enc != NULL);
	elen = auth_b64_encode(out, olen, enc, n + 1);
	FUZZ_CHECK(elen == n && memcmp(enc, in, n) == 0 && enc[n] == 0);
	/* Exactly olen octets of room suffice; one less does not. */
	{
		unsigned char *exact = malloc(olen ? olen : 1);
		size_t l2;
		FUZZ_CHECK(exact != NULL);
		FUZZ_CHECK(auth_b64_decode((const char *)in, n, exact, olen, &l2) == 0 && l2 == olen &&
			   memcmp(exact, out, olen) == 0);
		if (olen > 0)
			FUZZ_CHECK(auth_b64_decode((const char *)in, n, exact, olen - 1, &l2) != 0);
		free(exact);
	}
	check_sasl(out, olen);
	free(enc);
	free(out);
}

NOCOV static void do_encode(const uint8_t *in, size_t n)
{
	size_t need = (n + 2) / 3 * 4, elen, olen;
	char *enc = malloc(need + 1);
	unsigned char *back = malloc(n ? n : 1);

	FUZZ_CHECK(enc != NULL && back != NULL);
	elen = auth_b64_encode(in, n, enc, need + 1);
	FUZZ_CHECK(elen == need && strlen(enc) == need);
	/* No room for the NUL: nothing but "" is written. */
	FUZZ_CHECK(auth_b64_encode(in, n, enc, need) == 0 && (need == 0 || enc[0] == 0));
	elen = auth_b64_encode(in, n, enc, need + 1);
	FUZZ_CHECK(auth_b64_decode(enc, elen, back, n, &olen) == 0 && olen == n &&
		   memcmp(back, in, n) == 0);
	free(enc);
	free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] % 3) {
	case 0: do_decode(data + 1, size - 1); break;
	case 1: do_encode(data + 1, size - 1); break;
	default: check_sasl(data + 1, size - 1); break;
	}
	return 0;
}
