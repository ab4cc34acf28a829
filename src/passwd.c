/* passwd: see passwd.h. */
#include "passwd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>

#include "fileio.h"
#include "log.h"
#include "random.h"
#include "sasl.h"
#include "users.h"

#define echo log_echo
#define ECHO_BUF LOG_ECHO_BUF

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* mbedTLS's platform source already reads getrandom() (or /dev/urandom)
 * on Linux; a build configured with MBEDTLS_NO_PLATFORM_ENTROPY, common
 * in embedded configs, has no strong source at all, so ours is added. */
static int random_salt(unsigned char *salt, size_t n)
{
	static const char pers[] = "tarpitd passwd";
	mbedtls_entropy_context ent;
	mbedtls_ctr_drbg_context drbg;
	int r = -1;

	mbedtls_entropy_init(&ent);
	mbedtls_ctr_drbg_init(&drbg);
#if defined(MBEDTLS_NO_PLATFORM_ENTROPY)
	if (mbedtls_entropy_add_source(&ent, random_entropy_source, NULL, 32, MBEDTLS_ENTROPY_SOURCE_STRONG) != 0)
		goto out;
#endif
	if (mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &ent, (const unsigned char *)pers,
				  sizeof pers - 1) == 0 &&
	    mbedtls_ctr_drbg_random(&drbg, salt, n) == 0)
		r = 0;
#if defined(MBEDTLS_NO_PLATFORM_ENTROPY)
out:
#endif
	mbedtls_ctr_drbg_free(&drbg);
	mbedtls_entropy_free(&ent);
	return r;
}

/* The whole file, or *len 0 and NULL when it does not exist. */
static int read_existing(const char *path, char **text, size_t *len, struct stat *st)
{
	size_t cap = 0, n = 0;
	char *p = NULL;
	int fd;

	*text = NULL;
	*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	if (fstat(fd, st) != 0)
		goto fail;
	if (!S_ISREG(st->st_mode)) {
		errno = EINVAL;
		goto fail;
	}
	for (;;) {
		ssize_t r;

		if (n == cap) {
			char *q;

			if (cap >= USERS_FILE_MAX) {
				errno = EFBIG;
				goto fail;
			}
			cap = cap ? cap * 2 : 4096;
			q = realloc(p, cap);
			if (!q)
				goto fail;
			p = q;
		}
		r = read(fd, p + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			goto fail;
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	*text = p;
	*len = n;
	return 0;
fail:
	n = (size_t)errno;
	close(fd);
	free(p);
	errno = (int)n;
	return -1;
}

/* Is the line [s, s+n) (no terminator) an entry for user? */
static bool line_is_user(const char *s, size_t n, const char *user, size_t ulen)
{
	return n > ulen && memcmp(s, user, ulen) == 0 && s[ulen] == ':';
}

/* text with user's first line replaced by entry (its terminator kept),
 * later lines of that user dropped, or entry appended. */
static char *put_entry(const char *text, size_t len, const char *user, const char *entry, size_t *outlen)
{
	size_t ulen = strlen(user), elen = strlen(entry), o = 0, i = 0;
	bool done = false;
	char *out;

	if (len > SIZE_MAX - elen - 2)
		return NULL;
	out = malloc(len + elen + 2);
	if (!out)
		return NULL;
	while (i < len) {
		const char *nl = memchr(text + i, '\n', len - i);
		size_t end = nl ? (size_t)(nl - text) + 1 : len, body = end - i;

		/* The terminator is "\n" or "\r\n"; the body is what precedes it. */
		if (nl) {
			body--;
			if (body && text[i + body - 1] == '\r')
				body--;
		}
		if (line_is_user(text + i, body, user, ulen)) {
			if (!done) {
				memcpy(out + o, entry, elen);
				o += elen;
				memcpy(out + o, text + i + body, end - i - body);
				o += end - i - body;
				done = true;
			}
		} else {
			memcpy(out + o, text + i, end - i);
			o += end - i;
		}
		i = end;
	}
	if (!done) {
		if (o && out[o - 1] != '\n')
			out[o++] = '\n';
		memcpy(out + o, entry, elen);
		o += elen;
		out[o++] = '\n';
	}
	*outlen = o;
	return out;
}

int users_set_password(const char *path, const char *user, const char *pass, size_t plen, char *err,
		       size_t errlen)
{
	/* One password per process (`tarpitd passwd`): the two paths live
	 * outside the frame. */
	static struct replacement r;
	unsigned char salt[USERS_SALT_NEW], hash[USERS_HASH_LEN];
	char entry[AUTH_USER_MAX + 128], s64[64], h64[64], e[ECHO_BUF];
	char *text = NULL, *out = NULL;
	size_t len = 0, outlen = 0;
	int status = -1;

	if (err && errlen)
		err[0] = '\0';
	if (!path || !user || (!pass && plen)) {
		set_err(err, errlen, "bad arguments");
		return -1;
	}
	if (!users_name_ok(user, strlen(user))) {
		set_err(err, errlen,
			"'%s' is not a valid user name (1 to %d printable ASCII octets without ':' or white "
			"space, not starting with '#')",
			echo(e, sizeof e, user, strlen(user)), AUTH_USER_MAX);
		return -1;
	}
	if (plen == 0) {
		set_err(err, errlen, "empty password");
		return -1;
	}
	if (plen > AUTH_PASS_MAX) {
		set_err(err, errlen, "password longer than %d octets", AUTH_PASS_MAX);
		return -1;
	}
	/* SASL PLAIN separates its fields with NUL: such a password could
	 * never be sent. */
	if (memchr(pass, 0, plen)) {
		set_err(err, errlen, "password holds a NUL octet");
		return -1;
	}
	if (replace_begin(&r, path) != 0) {
		set_err(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (random_salt(salt, sizeof salt) != 0) {
		set_err(err, errlen, "cannot get random octets for the salt");
		goto out;
	}
	if (users_pbkdf2((const unsigned char *)pass, plen, salt, sizeof salt, AUTH_ITERATIONS_DEFAULT, hash) != 0) {
		set_err(err, errlen, "PBKDF2 failed");
		goto out;
	}
	auth_b64_encode(salt, sizeof salt, s64, sizeof s64);
	auth_b64_encode(hash, sizeof hash, h64, sizeof h64);
	snprintf(entry, sizeof entry, "%s" ":" USERS_SCHEME "%u$%s$%s", user, AUTH_ITERATIONS_DEFAULT, s64, h64);

	if (read_existing(r.dest, &text, &len, &r.st) != 0) {
		set_err(err, errlen, "%s: cannot read: %s", path, strerror(errno));
		goto out;
	}
	out = put_entry(text ? text : "", len, user, entry, &outlen);
	if (!out) {
		set_err(err, errlen, "out of memory");
		goto out;
	}
	if (replace_write(&r, out, outlen, 0600) != 0) {
		set_err(err, errlen, "cannot create a temporary file beside %s: %s", r.dest, strerror(errno));
		goto out;
	}
	switch (replace_commit(&r)) {
	case 0:
		break;
	case 1:
		set_err(err, errlen, "cannot sync the directory of %s: %s", r.dest, strerror(errno));
		goto out;
	default:
		set_err(err, errlen, "cannot replace %s: %s", r.dest, strerror(errno));
		goto out;
	}
	status = 0;
out:
	replace_drop(&r);
	memset(hash, 0, sizeof hash);
	memset(entry, 0, sizeof entry);
	free(text);
	free(out);
	return status;
}
