/* pbkdf2: see pbkdf2.h.
 *
 * Each round is mbedtls_md_hmac_reset + update + finish: the same four
 * SHA-256 blocks per round as mbedTLS's own PBKDF2 (the inner and outer
 * pad blocks are hashed anew each time), so slicing costs nothing in
 * speed; the key is prepared once by mbedtls_md_hmac_starts.
 */
#include "pbkdf2.h"

#include <string.h>

/* Through a volatile pointer, so the wipe is not dropped as a dead store. */
static void wipe(void *v, size_t n)
{
	volatile unsigned char *p = v;

	while (n--)
		*p++ = 0;
}

int pbkdf2_init(struct pbkdf2 *p)
{
	const mbedtls_md_info_t *info = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);

	memset(p, 0, sizeof *p);
	mbedtls_md_init(&p->md);
	if (!info || mbedtls_md_setup(&p->md, info, 1) != 0) {
		mbedtls_md_free(&p->md);
		mbedtls_md_init(&p->md);
		return -1;
	}
	return 0;
}

void pbkdf2_free(struct pbkdf2 *p)
{
	wipe(p->u, sizeof p->u);
	wipe(p->t, sizeof p->t);
	mbedtls_md_free(&p->md); /* zeroizes the HMAC pads */
	mbedtls_md_init(&p->md);
}

void pbkdf2_start(struct pbkdf2 *p, const unsigned char *pw, size_t pwlen, const unsigned char *salt,
		  size_t slen, uint32_t iterations)
{
	static const unsigned char one[4] = {0, 0, 0, 1}, none;
	int r;

	r = mbedtls_md_hmac_starts(&p->md, pw ? pw : &none, pw ? pwlen : 0);
	if (r == 0)
		r = mbedtls_md_hmac_update(&p->md, salt, slen);
	if (r == 0)
		r = mbedtls_md_hmac_update(&p->md, one, sizeof one);
	if (r == 0)
		r = mbedtls_md_hmac_finish(&p->md, p->u);
	memcpy(p->t, p->u, sizeof p->t);
	p->failed = r != 0;
	p->left = iterations > 0 && r == 0 ? iterations - 1 : 0;
}

bool pbkdf2_step(struct pbkdf2 *p, uint32_t rounds)
{
	while (rounds-- && p->left) {
		if (mbedtls_md_hmac_reset(&p->md) != 0 || mbedtls_md_hmac_update(&p->md, p->u, sizeof p->u) != 0 ||
		    mbedtls_md_hmac_finish(&p->md, p->u) != 0) {
			p->failed = true;
			p->left = 0;
			break;
		}
		for (unsigned i = 0; i < sizeof p->t; i++)
			p->t[i] ^= p->u[i];
		p->left--;
	}
	return p->left == 0;
}

void pbkdf2_wipe(struct pbkdf2 *p)
{
	static const unsigned char none;

	/* Re-keying with the empty key overwrites the pads the password
	 * made; the context stays ready for the next start. */
	(void)mbedtls_md_hmac_starts(&p->md, &none, 0);
	wipe(p->u, sizeof p->u);
	wipe(p->t, sizeof p->t);
	p->left = 0;
}
