/* pbkdf2: PBKDF2-HMAC-SHA256 for one 32-octet block, in as many steps as
 * the caller likes.
 *
 * Promises: the same key as mbedtls_pkcs5_pbkdf2_hmac() with SHA-256 and
 * a 32-octet output (RFC 8018 §5.2 with one block: U1 = HMAC(P, S ||
 * INT(1)), Ui = HMAC(P, Ui-1), T = U1 ^ ... ^ Uc), however the rounds are
 * split between pbkdf2_step() calls. The state is small and fixed: the
 * HMAC context, keyed once per derivation and reset for every round (the
 * md API of mbedTLS 2.28 and 3.x alike), the running U and T and the
 * rounds left. mbedTLS allocates the context's digest state once, in
 * pbkdf2_init(); nothing else allocates. pbkdf2_wipe() leaves nothing
 * derived from the password behind.
 */
#ifndef TARPITD_PBKDF2_H
#define TARPITD_PBKDF2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mbedtls/md.h>

#define PBKDF2_LEN 32 /* SHA-256: one block is the whole key */

struct pbkdf2 {
	mbedtls_md_context_t md; /* HMAC-SHA256, keyed with the password */
	uint32_t left;           /* rounds still to run */
	bool failed;             /* an mbedTLS call failed: the key is worthless */
	unsigned char u[PBKDF2_LEN], t[PBKDF2_LEN];
};

/* 0, or -1 when mbedTLS cannot set the context up (out of memory). */
int pbkdf2_init(struct pbkdf2 *p);
void pbkdf2_free(struct pbkdf2 *p);
/* Keys the HMAC with the password (NULL with pwlen 0: empty) and runs the
 * first round with the salt; iterations >= 1. */
void pbkdf2_start(struct pbkdf2 *p, const unsigned char *pw, size_t pwlen, const unsigned char *salt,
		  size_t slen, uint32_t iterations);
/* Runs up to `rounds` more rounds; true once all are done (the key is in
 * p->t, unless p->failed). */
bool pbkdf2_step(struct pbkdf2 *p, uint32_t rounds);
/* Forgets the key, U and T (the context stays set up for the next start). */
void pbkdf2_wipe(struct pbkdf2 *p);

#endif
