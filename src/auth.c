/* auth: see auth.h.
 *
 * The users file is read twice through one descriptor: the first pass
 * counts the entry lines so the table is one exact allocation, the second
 * parses them. Verification allocates only inside mbedTLS: the HMAC
 * context PBKDF2 needs (a few hundred octets) is set up and freed for each
 * check, since 3.x's PBKDF2 interface takes no context to keep.
 */
#include "auth.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/md.h>
#include <mbedtls/pkcs5.h>
#include <mbedtls/version.h>

#include "fileio.h"
#include "log.h"
#include "util.h"

#define HASH_LEN 32
#define SALT_MIN 8
#define SALT_MAX 64
#define SALT_NEW 16
#define ITER_MIN 1000u
#define ITER_MAX 10000000u
/* A router's users file holds a handful of accounts; the cap bounds the
 * table (about 180 octets an entry) whatever the file says. */
#define USERS_MAX 10000u
/* name(64) + ":$pbkdf2-sha256$" + 8 digits + '$' + base64 of 64 + '$' +
 * base64 of 32 is 222 octets; anything much longer is not an entry. */
#define LINE_MAX_LEN 512
#define USERS_FILE_MAX (16u * 1024 * 1024)
#define SCHEME "$pbkdf2-sha256$"
#define SCHEME_LEN (sizeof SCHEME - 1)

struct user_ent {
	uint32_t iterations;
	int line;
	uint8_t namelen, saltlen;
	char name[AUTH_USER_MAX];
	unsigned char salt[SALT_MAX];
	unsigned char hash[HASH_LEN];
};

struct users {
	unsigned n, cap;
	struct user_ent e[];
};

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

/* ---- PBKDF2 ----------------------------------------------------------------- */

static int pbkdf2(const unsigned char *pw, size_t pwlen, const unsigned char *salt, size_t slen,
		  uint32_t iterations, unsigned char out[HASH_LEN])
{
	static const unsigned char none;

	if (!pw)
		pw = &none;
#if MBEDTLS_VERSION_NUMBER >= 0x03030000
	/* 3.3 deprecated the context form in favour of this one. */
	return mbedtls_pkcs5_pbkdf2_hmac_ext(MBEDTLS_MD_SHA256, pw, pwlen, salt, slen, iterations,
					     HASH_LEN, out) == 0
		       ? 0
		       : -1;
#else
	{
		const mbedtls_md_info_t *info = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
		mbedtls_md_context_t md;
		int r = -1;

		mbedtls_md_init(&md);
		if (info && mbedtls_md_setup(&md, info, 1) == 0 &&
		    mbedtls_pkcs5_pbkdf2_hmac(&md, pw, pwlen, salt, slen, iterations, HASH_LEN, out) == 0)
			r = 0;
		mbedtls_md_free(&md);
		return r;
	}
#endif
}

/* Our own rather than mbedtls_ct_memcmp, whose header is missing from
 * some 2.x builds; volatile keeps the compiler from ending the loop at
 * the first difference. */
static bool ct_equal(const unsigned char *a, const unsigned char *b, size_t n)
{
	const volatile unsigned char *x = a, *y = b;
	unsigned char d = 0;
	size_t i;

	for (i = 0; i < n; i++)
		d |= (unsigned char)(x[i] ^ y[i]);
	return d == 0;
}

/* ---- names -------------------------------------------------------------------- */

static bool name_ok(const char *s, size_t n)
{
	size_t i;

	/* A leading '#' would make the entry a comment line. */
	if (n == 0 || n > AUTH_USER_MAX || s[0] == '#')
		return false;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= 0x20 || c >= 0x7f || c == ':')
			return false;
	}
	return true;
}

#define echo log_echo
#define ECHO_BUF LOG_ECHO_BUF

/* ---- messages ------------------------------------------------------------------- */

static void msg(struct errlist *m, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void msg(struct errlist *m, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	errlist_add(m, line, NULL, fmt, ap);
	va_end(ap);
}

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

/* ---- the users file ------------------------------------------------------------- */

enum line_kind { L_EOF, L_SKIP, L_ENTRY, L_LONG, L_NUL };

/* One line into buf (terminator and one trailing CR gone). */
static enum line_kind read_line(FILE *f, char *buf, size_t cap, size_t *len, int *errno_out)
{
	size_t n = 0, i;
	bool long_ = false, nul = false;
	int ch;

	ch = getc(f);
	if (ch == EOF) {
		if (ferror(f))
			*errno_out = errno ? errno : EIO;
		return L_EOF;
	}
	for (; ch != EOF && ch != '\n'; ch = getc(f)) {
		if (ch == 0)
			nul = true;
		if (n + 1 < cap)
			buf[n++] = (char)ch;
		else
			long_ = true;
	}
	if (ch == EOF && ferror(f))
		*errno_out = errno ? errno : EIO;
	if (n && buf[n - 1] == '\r')
		n--;
	buf[n] = '\0';
	*len = n;
	if (long_)
		return L_LONG;
	if (nul)
		return L_NUL;
	for (i = 0; i < n && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\r'); i++)
		;
	if (i == n || buf[i] == '#')
		return L_SKIP;
	return L_ENTRY;
}

/* Digits only, no sign or leading zero, within ITER_MIN..ITER_MAX. */
static bool parse_iterations(const char *s, size_t n, uint32_t *v)
{
	uint32_t acc = 0;
	size_t i;

	if (n == 0 || n > 8 || (s[0] == '0'))
		return false;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		acc = acc * 10 + (uint32_t)(s[i] - '0');
	}
	if (acc < ITER_MIN || acc > ITER_MAX)
		return false;
	*v = acc;
	return true;
}

static void parse_entry(struct errlist *m, int line, const char *s, size_t n, struct user_ent *e)
{
	const char *colon = memchr(s, ':', n), *p, *end = s + n, *d1, *d2;
	char ebuf[ECHO_BUF];
	size_t nl, olen;

	e->line = 0;
	if (!colon) {
		msg(m, line, "expected name:$pbkdf2-sha256$ITERATIONS$SALT$HASH");
		return;
	}
	nl = (size_t)(colon - s);
	if (!name_ok(s, nl)) {
		msg(m, line, "user name '%s' must be 1 to %d printable ASCII octets without ':' or white space",
		    echo(ebuf, sizeof ebuf, s, nl), AUTH_USER_MAX);
		return;
	}
	p = colon + 1;
	if ((size_t)(end - p) < SCHEME_LEN || memcmp(p, SCHEME, SCHEME_LEN) != 0) {
		msg(m, line, "unknown password scheme (expected $pbkdf2-sha256$ITERATIONS$SALT$HASH)");
		return;
	}
	p += SCHEME_LEN;
	d1 = memchr(p, '$', (size_t)(end - p));
	d2 = d1 ? memchr(d1 + 1, '$', (size_t)(end - d1 - 1)) : NULL;
	if (!d2) {
		msg(m, line, "expected name:$pbkdf2-sha256$ITERATIONS$SALT$HASH");
		return;
	}
	if (!parse_iterations(p, (size_t)(d1 - p), &e->iterations)) {
		msg(m, line, "iterations '%s' must be a number from %u to %u", echo(ebuf, sizeof ebuf, p, (size_t)(d1 - p)),
		    ITER_MIN, ITER_MAX);
		return;
	}
	if (auth_b64_decode(d1 + 1, (size_t)(d2 - d1 - 1), e->salt, sizeof e->salt, &olen) != 0 ||
	    olen < SALT_MIN) {
		msg(m, line, "salt must be base64 of %d to %d octets", SALT_MIN, SALT_MAX);
		return;
	}
	e->saltlen = (uint8_t)olen;
	if (auth_b64_decode(d2 + 1, (size_t)(end - d2 - 1), e->hash, sizeof e->hash, &olen) != 0 ||
	    olen != HASH_LEN) {
		msg(m, line, "hash must be base64 of %d octets", HASH_LEN);
		return;
	}
	memcpy(e->name, s, nl);
	e->namelen = (uint8_t)nl;
	e->line = line;
}

struct users *users_load(const char *path, char *err, size_t errlen)
{
	struct errlist m = { err, errlen, 0, path ? path : "(null)", 0 };
	struct users *u = NULL;
	struct stat st;
	char buf[LINE_MAX_LEN];
	unsigned count = 0, k;
	size_t len;
	int fd, line = 0, rerr = 0;
	enum line_kind kind;
	FILE *f;

	if (err && errlen)
		err[0] = '\0';
	if (!path) {
		msg(&m, 0, "no path");
		return NULL;
	}
	/* O_NONBLOCK: a FIFO put in its place must not hang the caller. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		msg(&m, 0, "cannot open: %s", strerror(errno));
		return NULL;
	}
	f = fdopen(fd, "r");
	if (!f) {
		msg(&m, 0, "cannot read: %s", strerror(errno));
		close(fd);
		return NULL;
	}
	if (fstat(fd, &st) != 0) {
		msg(&m, 0, "cannot stat: %s", strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		msg(&m, 0, "not a regular file");
		goto fail;
	}
	if (st.st_mode & 077)
		msg(&m, 0, "mode %04o is too open; chmod 600 %s", (unsigned)(st.st_mode & 07777), path);
	if (st.st_size > (off_t)USERS_FILE_MAX) {
		msg(&m, 0, "larger than %u octets", USERS_FILE_MAX);
		goto fail;
	}
	while ((kind = read_line(f, buf, sizeof buf, &len, &rerr)) != L_EOF)
		if (kind != L_SKIP)
			count++;
	if (rerr) {
		msg(&m, 0, "read error: %s", strerror(rerr));
		goto fail;
	}
	if (count > USERS_MAX) {
		msg(&m, 0, "more than %u users", USERS_MAX);
		goto fail;
	}
	u = calloc(1, sizeof *u + (size_t)count * sizeof u->e[0]);
	if (!u) {
		msg(&m, 0, "out of memory");
		goto fail;
	}
	u->cap = count;
	rewind(f);
	while ((kind = read_line(f, buf, sizeof buf, &len, &rerr)) != L_EOF) {
		line++;
		if (kind == L_SKIP)
			continue;
		if (u->n >= count) {
			msg(&m, 0, "the file changed while it was read");
			break;
		}
		if (kind == L_LONG) {
			msg(&m, line, "line longer than %d octets", LINE_MAX_LEN - 1);
			continue;
		}
		if (kind == L_NUL) {
			msg(&m, line, "NUL octet in line");
			continue;
		}
		parse_entry(&m, line, buf, len, &u->e[u->n]);
		if (!u->e[u->n].line)
			continue;
		for (k = 0; k < u->n; k++) {
			if (u->e[k].namelen == u->e[u->n].namelen &&
			    memcmp(u->e[k].name, u->e[u->n].name, u->e[k].namelen) == 0) {
				msg(&m, line, "duplicate user '%.*s' (first at line %d)", (int)u->e[k].namelen,
				    u->e[k].name, u->e[k].line);
				break;
			}
		}
		if (k == u->n)
			u->n++;
	}
	if (rerr)
		msg(&m, 0, "read error: %s", strerror(rerr));
	if (m.n)
		goto fail;
	fclose(f);
	return u;
fail:
	fclose(f);
	users_free(u);
	return NULL;
}

void users_free(struct users *u)
{
	if (!u)
		return;
	/* The table holds hashes: nothing of it should linger in freed heap.
	 * Through a volatile pointer so the wipe is not dropped as dead. */
	{
		volatile unsigned char *p = (volatile unsigned char *)u->e;
		size_t i, n = (size_t)u->cap * sizeof u->e[0];

		for (i = 0; i < n; i++)
			p[i] = 0;
	}
	free(u);
}

unsigned users_count(const struct users *u)
{
	return u ? u->n : 0;
}

bool users_verify(const struct users *u, const char *user, size_t ulen, const char *pass, size_t plen)
{
	/* Any fixed salt: the point is only to spend the same PBKDF2 time. */
	static const unsigned char dummy_salt[SALT_NEW] = "tarpitd-no-user";
	const struct user_ent *hit = NULL;
	unsigned char out[HASH_LEN];
	bool ok;
	unsigned i;

	/* Every entry is looked at, so the scan does not say how far the
	 * name is from the top of the file either. */
	if (u && user) {
		for (i = 0; i < u->n; i++) {
			const struct user_ent *e = &u->e[i];

			if (e->namelen == ulen && memcmp(e->name, user, ulen) == 0)
				hit = e;
		}
	}
	if (plen > AUTH_PASS_MAX) {
		plen = AUTH_PASS_MAX;
		hit = NULL;
	}
	if (!pass)
		plen = 0;
	if (!hit) {
		pbkdf2((const unsigned char *)pass, plen, dummy_salt, sizeof dummy_salt, AUTH_ITERATIONS_DEFAULT,
		       out);
		memset(out, 0, sizeof out);
		return false;
	}
	if (pbkdf2((const unsigned char *)pass, plen, hit->salt, hit->saltlen, hit->iterations, out) != 0)
		return false;
	ok = ct_equal(out, hit->hash, HASH_LEN);
	memset(out, 0, sizeof out);
	return ok;
}

/* ---- passwd ------------------------------------------------------------------------ */

/* getrandom() straight from the kernel. mbedTLS's platform source already
 * uses it (or /dev/urandom) on Linux, but a build configured with
 * MBEDTLS_NO_PLATFORM_ENTROPY — common in embedded configs — has no strong
 * source at all and every seed would fail. */
#if defined(MBEDTLS_NO_PLATFORM_ENTROPY)
static int getrandom_source(void *data, unsigned char *out, size_t len, size_t *olen)
{
	size_t got = 0;

	(void)data;
	while (got < len) {
		ssize_t r = getrandom(out + got, len - got, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return MBEDTLS_ERR_ENTROPY_SOURCE_FAILED;
		got += (size_t)r;
	}
	*olen = got;
	return 0;
}
#endif

static int random_salt(unsigned char *salt, size_t n)
{
	static const char pers[] = "tarpitd passwd";
	mbedtls_entropy_context ent;
	mbedtls_ctr_drbg_context drbg;
	int r = -1;

	mbedtls_entropy_init(&ent);
	mbedtls_ctr_drbg_init(&drbg);
#if defined(MBEDTLS_NO_PLATFORM_ENTROPY)
	if (mbedtls_entropy_add_source(&ent, getrandom_source, NULL, 32, MBEDTLS_ENTROPY_SOURCE_STRONG) != 0)
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
	unsigned char salt[SALT_NEW], hash[HASH_LEN];
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
	if (!name_ok(user, strlen(user))) {
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
	if (pbkdf2((const unsigned char *)pass, plen, salt, sizeof salt, AUTH_ITERATIONS_DEFAULT, hash) != 0) {
		set_err(err, errlen, "PBKDF2 failed");
		goto out;
	}
	auth_b64_encode(salt, sizeof salt, s64, sizeof s64);
	auth_b64_encode(hash, sizeof hash, h64, sizeof h64);
	snprintf(entry, sizeof entry, "%s" ":" SCHEME "%u$%s$%s", user, AUTH_ITERATIONS_DEFAULT, s64, h64);

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
