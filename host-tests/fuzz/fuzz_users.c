/* fuzz_users: the users file (SPEC §6) through users_load().
 *
 * The file is written with mode 0600 (users_load() refuses anything
 * else). Checks: a failed load says why on "FILE:LINE:" lines; a loaded
 * table has at most one entry per line, and users_verify() of the first
 * line's name with a password from the input answers without harm. PBKDF2
 * runs with one iteration (as in fuzz_session.c): entries may ask for ten
 * million. The server's path agrees: users_lookup(), the sliced PBKDF2
 * (pbkdf2.c) of that one iteration and users_match() give users_verify()'s
 * answer, and the sliced PBKDF2 of a few iterations in slices of 1 and 2
 * is mbedTLS's own key for the entry's salt.
 */
#include <dlfcn.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/pkcs5.h>
#include <mbedtls/version.h>

#include "pbkdf2.h"
#include "users.h"

#include "fuzz_util.h"

#define ERR_MAX 4096

#if MBEDTLS_VERSION_NUMBER >= 0x03030000
typedef int (*pbkdf2_fn)(mbedtls_md_type_t, const unsigned char *, size_t, const unsigned char *,
			 size_t, unsigned int, uint32_t, unsigned char *);
static pbkdf2_fn real_pbkdf2;
int mbedtls_pkcs5_pbkdf2_hmac_ext(mbedtls_md_type_t md, const unsigned char *password, size_t plen,
				  const unsigned char *salt, size_t slen, unsigned int iteration_count,
				  uint32_t key_length, unsigned char *output)
{
	(void)iteration_count;
	return real_pbkdf2(md, password, plen, salt, slen, 1, key_length, output);
}
#define PBKDF2_NAME "mbedtls_pkcs5_pbkdf2_hmac_ext"
#else
typedef int (*pbkdf2_fn)(mbedtls_md_context_t *, const unsigned char *, size_t, const unsigned char *,
			 size_t, unsigned int, uint32_t, unsigned char *);
static pbkdf2_fn real_pbkdf2;
int mbedtls_pkcs5_pbkdf2_hmac(mbedtls_md_context_t *ctx, const unsigned char *password, size_t plen,
			      const unsigned char *salt, size_t slen, unsigned int iteration_count,
			      uint32_t key_length, unsigned char *output)
{
	(void)iteration_count;
	return real_pbkdf2(ctx, password, plen, salt, slen, 1, key_length, output);
}
#define PBKDF2_NAME "mbedtls_pkcs5_pbkdf2_hmac"
#endif

static char g_err[ERR_MAX];
static struct pbkdf2 g_kdf;

/* mbedTLS's PBKDF2 with its real iteration count, as the reference. */
static int ref_pbkdf2(const unsigned char *pw, size_t pl, const unsigned char *salt, size_t sl, unsigned c,
		      unsigned char out[32])
{
#if MBEDTLS_VERSION_NUMBER >= 0x03030000
	return real_pbkdf2(MBEDTLS_MD_SHA256, pw, pl, salt, sl, c, 32, out);
#else
	mbedtls_md_context_t md;
	int r = -1;

	mbedtls_md_init(&md);
	if (mbedtls_md_setup(&md, mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), 1) == 0)
		r = real_pbkdf2(&md, pw, pl, salt, sl, c, 32, out);
	mbedtls_md_free(&md);
	return r;
#endif
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *path;
	char err[256];
	(void)argc;
	(void)argv;

	real_pbkdf2 = (pbkdf2_fn)dlsym(RTLD_NEXT, PBKDF2_NAME);
	if (!real_pbkdf2) {
		fprintf(stderr, "fuzz_users: dlsym %s failed\n", PBKDF2_NAME);
		exit(1);
	}
	if (pbkdf2_init(&g_kdf) != 0) {
		fprintf(stderr, "fuzz_users: pbkdf2_init failed\n");
		exit(1);
	}
	/* Once: a file others can read is refused, whatever it holds. */
	path = fuzz_tmp_file("users");
	fuzz_write_file(path, (const uint8_t *)"", 0, 0644);
	if (users_load(path, err, sizeof err) != NULL) {
		fprintf(stderr, "fuzz_users: a 0644 users file was accepted\n");
		abort();
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *path = fuzz_tmp_file("users");
	const char *colon, *nl, *end = (const char *)data + size;
	struct users *u;
	unsigned lines = 1;

	fuzz_write_file(path, data, size, 0600);
	memset(g_err, 0x5a, sizeof g_err);
	u = users_load(path, g_err, sizeof g_err);
	unlink(path); /* read: a crash from here on leaves nothing in /dev/shm */
	if (!u) {
		fuzz_check_errors(g_err, sizeof g_err, path);
		return 0;
	}
	for (size_t i = 0; i < size; i++)
		lines += data[i] == '\n';
	FUZZ_CHECK(users_count(u) <= lines);
	nl = memchr(data, '\n', size);
	colon = memchr(data, ':', size);
	if (colon && (!nl || colon < nl)) {
		const char *user = (const char *)data;
		const char *pass = nl ? nl + 1 : end;
		/* The name as written, a password from the rest: a hit or not,
		 * the answer is a bool and nothing else happens. */
		size_t ulen = (size_t)(colon - user), plen = (size_t)(end - pass);
		size_t pl = plen < AUTH_PASS_MAX ? plen : AUTH_PASS_MAX;
		bool ok = users_verify(u, user, ulen, pass, plen);
		struct users_ref r;
		unsigned char want[32];
		unsigned c = 2 + (unsigned)(size % 4);

		users_lookup(u, user, ulen, plen, &r);
		FUZZ_CHECK(r.iterations >= 1 && r.saltlen >= 1 && r.saltlen <= USERS_SALT_MAX);
		FUZZ_CHECK(!r.known || plen <= AUTH_PASS_MAX);
		pbkdf2_start(&g_kdf, (const unsigned char *)pass, pl, r.salt, r.saltlen, 1);
		FUZZ_CHECK(pbkdf2_step(&g_kdf, 1) && !g_kdf.failed);
		FUZZ_CHECK(users_match(&r, g_kdf.t) == ok);
		FUZZ_CHECK(ref_pbkdf2((const unsigned char *)pass, pl, r.salt, r.saltlen, c, want) == 0);
		pbkdf2_start(&g_kdf, (const unsigned char *)pass, pl, r.salt, r.saltlen, c);
		while (!pbkdf2_step(&g_kdf, 1 + (unsigned)(size & 1)))
			;
		FUZZ_CHECK(memcmp(g_kdf.t, want, 32) == 0);
		pbkdf2_wipe(&g_kdf);
		(void)users_verify(u, user, ulen, NULL, 0);
	}
	(void)users_verify(u, NULL, 0, "x", 1);
	users_free(u);
	return 0;
}
