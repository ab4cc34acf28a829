/* sasl: see sasl.h. */
#include "sasl.h"

#include <stdint.h>
#include <string.h>

/* ---- base64 --------------------------------------------------------------- */

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64val(unsigned char c)
{
	const char *p = c ? strchr(b64chars, c) : NULL;

	return p ? (int)(p - b64chars) : -1;
}

int auth_b64_decode(const char *in, size_t inlen, unsigned char *out, size_t outsz, size_t *outlen)
{
	size_t i, o = 0;

	if (outlen)
		*outlen = 0;
	if (inlen % 4 != 0 || (inlen && !in))
		return -1;
	for (i = 0; i < inlen; i += 4) {
		const unsigned char *q = (const unsigned char *)in + i;
		int v[4], k, pad = 0;
		uint32_t acc;

		for (k = 0; k < 4; k++) {
			v[k] = b64val(q[k]);
			if (v[k] < 0) {
				/* '=' only as the last one or two octets of the text. */
				if (q[k] != '=' || k < 2 || i + 4 != inlen)
					return -1;
				pad++;
				v[k] = 0;
			} else if (pad) {
				return -1;
			}
		}
		acc = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
		/* Bits the padding drops must be zero, so every octet string has
		 * exactly one encoding (RFC 4648 §3.5). */
		if ((pad == 1 && (acc & 0xff)) || (pad == 2 && (acc & 0xffff)))
			return -1;
		if (!out || 3 - (size_t)pad > outsz - o)
			return -1;
		out[o++] = (unsigned char)(acc >> 16);
		if (pad < 2)
			out[o++] = (unsigned char)(acc >> 8);
		if (pad < 1)
			out[o++] = (unsigned char)acc;
	}
	if (outlen)
		*outlen = o;
	return 0;
}

size_t auth_b64_encode(const unsigned char *in, size_t inlen, char *out, size_t outsz)
{
	size_t i, o = 0, need;

	if (inlen > (SIZE_MAX - 1) / 4 * 3 - 3) {
		if (out && outsz)
			out[0] = '\0';
		return 0;
	}
	need = (inlen + 2) / 3 * 4;
	if (!out || outsz == 0)
		return 0;
	if (need >= outsz || (inlen && !in)) {
		out[0] = '\0';
		return 0;
	}
	for (i = 0; i < inlen; i += 3) {
		size_t left = inlen - i;
		uint32_t acc = (uint32_t)in[i] << 16;

		if (left > 1)
			acc |= (uint32_t)in[i + 1] << 8;
		if (left > 2)
			acc |= in[i + 2];
		out[o++] = b64chars[acc >> 18];
		out[o++] = b64chars[(acc >> 12) & 63];
		out[o++] = left > 1 ? b64chars[(acc >> 6) & 63] : '=';
		out[o++] = left > 2 ? b64chars[acc & 63] : '=';
	}
	out[o] = '\0';
	return o;
}

/* ---- SASL PLAIN ------------------------------------------------------------- */

int sasl_plain_parse(const unsigned char *buf, size_t len, const char **user, size_t *ulen,
		     const char **pass, size_t *plen)
{
	const unsigned char *z1, *z2;
	size_t zlen, clen, wlen;

	if (!buf)
		return -1;
	z1 = memchr(buf, 0, len);
	if (!z1)
		return -1;
	z2 = memchr(z1 + 1, 0, len - (size_t)(z1 + 1 - buf));
	if (!z2)
		return -1;
	zlen = (size_t)(z1 - buf);
	clen = (size_t)(z2 - z1 - 1);
	wlen = len - (size_t)(z2 + 1 - buf);
	/* RFC 4616: the password holds no NUL, so a third one is malformed. */
	if (clen == 0 || wlen == 0 || memchr(z2 + 1, 0, wlen))
		return -1;
	/* Acting as another user is not something this server offers. */
	if (zlen && (zlen != clen || memcmp(buf, z1 + 1, clen) != 0))
		return -1;
	*user = (const char *)(z1 + 1);
	*ulen = clen;
	*pass = (const char *)(z2 + 1);
	*plen = wlen;
	return 0;
}
