/* users: see users.h.
 *
 * The users file is read twice through one descriptor: the first pass
 * counts the entry lines so the table is one exact allocation, the second
 * parses them. users_verify() allocates only inside mbedTLS: the HMAC
 * context PBKDF2 needs (a few hundred octets) is set up and freed for each
 * check, since 3.x's PBKDF2 interface takes no context to keep; it serves
 * `passwd`, the tests and the fuzzers. The server checks through
 * users_lookup() and users_match() around its own sliced PBKDF2
 * (verify.c), whose contexts are set up once.
 */
#include "users.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/md.h>
#include <mbedtls/pkcs5.h>
#include <mbedtls/version.h>

#include "log.h"
#include "sasl.h"
#include "util.h"

#define SCHEME_LEN (sizeof USERS_SCHEME - 1)

struct user_ent {
	uint32_t iterations;
	int line;
	uint8_t namelen, saltlen;
	char name[AUTH_USER_MAX];
	unsigned char salt[USERS_SALT_MAX];
	unsigned char hash[USERS_HASH_LEN];
};

struct users {
	unsigned n, cap;
	uint32_t usual; /* the most common iteration count: what an unknown name costs */
	struct user_ent e[];
};

/* ---- PBKDF2 ----------------------------------------------------------------- */

int users_pbkdf2(const unsigned char *pw, size_t pwlen, const unsigned char *salt, size_t slen,
		 uint32_t iterations, unsigned char out[USERS_HASH_LEN])
{
	static const unsigned char none;

	if (!pw)
		pw = &none;
#if MBEDTLS_VERSION_NUMBER >= 0x03030000
	/* 3.3 deprecated the context form in favour of this one. */
	return mbedtls_pkcs5_pbkdf2_hmac_ext(MBEDTLS_MD_SHA256, pw, pwlen, salt, slen, iterations,
					     USERS_HASH_LEN, out) == 0
		       ? 0
		       : -1;
#else
	{
		const mbedtls_md_info_t *info = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
		mbedtls_md_context_t md;
		int r = -1;

		mbedtls_md_init(&md);
		if (info && mbedtls_md_setup(&md, info, 1) == 0 &&
		    mbedtls_pkcs5_pbkdf2_hmac(&md, pw, pwlen, salt, slen, iterations, USERS_HASH_LEN, out) == 0)
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

bool users_name_ok(const char *s, size_t n)
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

/* ---- the users file ------------------------------------------------------------- */

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

/* An unknown name must cost what a known one costs. The most common count
 * (not the largest) makes it cost what most names cost, so it hides the
 * most of them, and a guess at a made-up name costs the server no more
 * than a guess at a real one; ties go to the larger count. Sorted in a
 * scratch copy: O(n log n) for 10,000 entries at load, never per check. */
static int usual_count(struct users *u)
{
	uint32_t *v, best = AUTH_ITERATIONS_DEFAULT;
	unsigned i, run, best_run = 0;

	u->usual = best;
	if (u->n == 0)
		return 0;
	v = malloc((size_t)u->n * sizeof *v);
	if (!v)
		return -1;
	for (i = 0; i < u->n; i++)
		v[i] = u->e[i].iterations;
	qsort(v, u->n, sizeof *v, cmp_u32);
	for (i = 0; i < u->n; i += run) {
		for (run = 1; i + run < u->n && v[i + run] == v[i]; run++)
			;
		if (run >= best_run) {
			best_run = run;
			best = v[i];
		}
	}
	free(v);
	u->usual = best;
	return 0;
}

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

/* Digits only, no sign or leading zero, within USERS_ITER_MIN..USERS_ITER_MAX. */
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
	if (acc < USERS_ITER_MIN || acc > USERS_ITER_MAX)
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
	if (!users_name_ok(s, nl)) {
		msg(m, line, "user name '%s' must be 1 to %d printable ASCII octets without ':' or white space",
		    echo(ebuf, sizeof ebuf, s, nl), AUTH_USER_MAX);
		return;
	}
	p = colon + 1;
	if ((size_t)(end - p) < SCHEME_LEN || memcmp(p, USERS_SCHEME, SCHEME_LEN) != 0) {
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
		    USERS_ITER_MIN, USERS_ITER_MAX);
		return;
	}
	if (auth_b64_decode(d1 + 1, (size_t)(d2 - d1 - 1), e->salt, sizeof e->salt, &olen) != 0 ||
	    olen < USERS_SALT_MIN) {
		msg(m, line, "salt must be base64 of %d to %d octets", USERS_SALT_MIN, USERS_SALT_MAX);
		return;
	}
	e->saltlen = (uint8_t)olen;
	if (auth_b64_decode(d2 + 1, (size_t)(end - d2 - 1), e->hash, sizeof e->hash, &olen) != 0 ||
	    olen != USERS_HASH_LEN) {
		msg(m, line, "hash must be base64 of %d octets", USERS_HASH_LEN);
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
	char buf[USERS_LINE_MAX];
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
			msg(&m, line, "line longer than %d octets", USERS_LINE_MAX - 1);
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
	if (usual_count(u) != 0) {
		msg(&m, 0, "out of memory");
		users_free(u);
		return NULL;
	}
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

uint32_t users_usual_iterations(const struct users *u)
{
	return u ? u->usual : AUTH_ITERATIONS_DEFAULT;
}

void users_lookup(const struct users *u, const char *user, size_t ulen, size_t plen, struct users_ref *r)
{
	/* Any fixed salt: the point is only to spend the same PBKDF2 time. */
	static const unsigned char dummy_salt[USERS_SALT_NEW] = "tarpitd-no-user";
	const struct user_ent *hit = NULL;
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
	if (plen > AUTH_PASS_MAX)
		hit = NULL;
	r->known = hit != NULL;
	if (hit) {
		r->salt = hit->salt;
		r->saltlen = hit->saltlen;
		r->iterations = hit->iterations;
		memcpy(r->hash, hit->hash, sizeof r->hash);
	} else {
		r->salt = dummy_salt;
		r->saltlen = sizeof dummy_salt;
		r->iterations = users_usual_iterations(u);
		memset(r->hash, 0, sizeof r->hash);
	}
}

bool users_match(const struct users_ref *r, const unsigned char key[USERS_HASH_LEN])
{
	/* Compared whether the name is known or not: the same work either way. */
	bool same = ct_equal(key, r->hash, USERS_HASH_LEN);

	return same && r->known;
}

bool users_verify(const struct users *u, const char *user, size_t ulen, const char *pass, size_t plen)
{
	struct users_ref r;
	unsigned char out[USERS_HASH_LEN];
	bool ok;

	users_lookup(u, user, ulen, plen, &r);
	if (plen > AUTH_PASS_MAX)
		plen = AUTH_PASS_MAX;
	if (!pass)
		plen = 0;
	ok = users_pbkdf2((const unsigned char *)pass, plen, r.salt, r.saltlen, r.iterations, out) == 0 &&
	     users_match(&r, out);
	memset(out, 0, sizeof out);
	memset(r.hash, 0, sizeof r.hash);
	return ok;
}
