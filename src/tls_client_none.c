/* tls_client_none: tls_client.h for a build without TLS (make TLS=0).
 *
 * config.c refuses starttls other than `no` in such a build, so the
 * forwarding transport never opens a pool; tlsc_open() still fails
 * cleanly rather than pretend, and everything else refuses.
 */
#include "tls_client.h"

#include <stdio.h>

struct tls_client *tlsc_open(unsigned max_sessions, char *err, size_t errlen)
{
	(void)max_sessions;
	if (err && errlen)
		snprintf(err, errlen, "tls client: this tarpitd is built without TLS (TLS=0)");
	return NULL;
}

void tlsc_free(struct tls_client *t)
{
	(void)t;
}

int tlsc_profile(struct tls_client *t, const char *ca_file, char *err, size_t errlen)
{
	(void)t;
	(void)ca_file;
	return tlsc_open(0, err, errlen) ? 0 : -1;
}

int tlsc_acquire(struct tls_client *t, int profile, int fd, const char *server_name)
{
	(void)t;
	(void)profile;
	(void)fd;
	(void)server_name;
	return -1;
}

void tlsc_release(struct tls_client *t, int idx)
{
	(void)t;
	(void)idx;
}

unsigned tlsc_available(const struct tls_client *t)
{
	(void)t;
	return 0;
}

int tlsc_handshake(struct tls_client *t, int idx)
{
	(void)t;
	(void)idx;
	return TLS_ERROR;
}

const char *tlsc_error(struct tls_client *t, int idx)
{
	(void)t;
	(void)idx;
	return "built without TLS";
}

ssize_t tlsc_read(struct tls_client *t, int idx, void *buf, size_t len)
{
	(void)t;
	(void)idx;
	(void)buf;
	(void)len;
	return TLS_ERROR;
}

ssize_t tlsc_write(struct tls_client *t, int idx, const void *buf, size_t len)
{
	(void)t;
	(void)idx;
	(void)buf;
	(void)len;
	return TLS_ERROR;
}

int tlsc_close_notify(struct tls_client *t, int idx)
{
	(void)t;
	(void)idx;
	return TLS_ERROR;
}

size_t tlsc_pending(struct tls_client *t, int idx)
{
	(void)t;
	(void)idx;
	return 0;
}

const char *tlsc_version_name(struct tls_client *t, int idx)
{
	(void)t;
	(void)idx;
	return "none";
}

const char *tlsc_cipher_name(struct tls_client *t, int idx)
{
	return tlsc_version_name(t, idx);
}
