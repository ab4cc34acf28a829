/* tls_none: tls.h for a build without TLS (make TLS=0), for boards with
 * 4 MB of flash where mbedTLS's SSL and X.509 code does not fit.
 *
 * config.c refuses a [tls] section in such a build, with its line, so
 * tls_open() and tls_check_files() are never reached with a valid
 * configuration; they still fail cleanly rather than pretend. The session
 * machine never offers STARTTLS without a pool, so nothing else here is
 * ever called.
 */
#include "tls.h"

#include <stdio.h>

static const char no_tls[] = "this tarpitd is built without TLS (TLS=0): remove the [tls] section";

struct tls *tls_open(const struct tls_opts *o, char *err, size_t errlen)
{
	(void)o;
	if (err && errlen)
		snprintf(err, errlen, "%s", no_tls);
	return NULL;
}

unsigned tls_max_version(void)
{
	return 0;
}

const char *tls_library_version(void)
{
	return "no TLS (TLS=0)";
}

void tls_free(struct tls *t)
{
	(void)t;
}

int tls_check_files(const char *cert_path, const char *key_path, char *err, size_t errlen)
{
	(void)cert_path;
	(void)key_path;
	return tls_open(NULL, err, errlen) ? 0 : -1;
}

int tls_acquire_from(struct tls *t, int fd, const struct ip_addr *peer)
{
	(void)t;
	(void)fd;
	(void)peer;
	return TLS_POOL_FULL;
}

int tls_acquire(struct tls *t, int fd)
{
	return tls_acquire_from(t, fd, NULL);
}

unsigned tls_source_count(const struct tls *t, const struct ip_addr *peer)
{
	(void)t;
	(void)peer;
	return 0;
}

bool tls_resumed(struct tls *t, int idx)
{
	(void)t;
	(void)idx;
	return false;
}

int tls_close_notify(struct tls *t, int idx)
{
	(void)t;
	(void)idx;
	return TLS_ERROR;
}

void tls_release(struct tls *t, int idx)
{
	(void)t;
	(void)idx;
}

unsigned tls_available(const struct tls *t)
{
	(void)t;
	return 0;
}

int tls_handshake(struct tls *t, int idx)
{
	(void)t;
	(void)idx;
	return TLS_ERROR;
}

ssize_t tls_read(struct tls *t, int idx, void *buf, size_t len)
{
	(void)t;
	(void)idx;
	(void)buf;
	(void)len;
	return TLS_ERROR;
}

ssize_t tls_write(struct tls *t, int idx, const void *buf, size_t len)
{
	(void)t;
	(void)idx;
	(void)buf;
	(void)len;
	return TLS_ERROR;
}

size_t tls_pending(struct tls *t, int idx)
{
	(void)t;
	(void)idx;
	return 0;
}

const char *tls_version_name(struct tls *t, int idx)
{
	(void)t;
	(void)idx;
	return "none";
}

const char *tls_cipher_name(struct tls *t, int idx)
{
	return tls_version_name(t, idx);
}
