/* tls: STARTTLS (RFC 3207) through mbedTLS, non-blocking, from a fixed pool.
 *
 * Promises: tls_new() loads the certificate and key, checks that they
 * belong together and seeds a CTR-DRBG from getrandom(); the pool holds at
 * most max_sessions SSL contexts, each set up the first time it is used
 * and reset (never freed) when released, so the number of TLS contexts —
 * and their memory — never exceeds max_sessions. A plain connection costs
 * no TLS memory. TLS 1.2 and, where the mbedTLS build has it, 1.3; AEAD
 * suites with forward secrecy only; renegotiation off. Every call returns
 * at once: TLS_WANT_READ / TLS_WANT_WRITE tell the caller which readiness
 * to wait for. Builds against mbedTLS 2.28 and 3.x.
 */
#ifndef TARPITD_TLS_H
#define TARPITD_TLS_H

#include <stddef.h>
#include <sys/types.h>

enum {
	TLS_WANT_READ = -1,
	TLS_WANT_WRITE = -2,
	TLS_CLOSED = -3, /* the peer closed (close_notify, EOF or reset) */
	TLS_ERROR = -4,  /* handshake failure, bad record, ...: close */
};

struct tls;

/* NULL with a one-line message in err on failure (unreadable file, bad
 * PEM, key not matching the certificate, max_sessions 0). */
struct tls *tls_new(const char *cert_path, const char *key_path, unsigned max_sessions,
		    char *err, size_t errlen);
void tls_free(struct tls *t);
/* The same checks as tls_new, for `tarpitd check`: 0 ok, -1 with err. */
int tls_check_files(const char *cert_path, const char *key_path, char *err, size_t errlen);

/* A pool slot bound to fd, ready for tls_handshake(); -1 when the pool is
 * empty (the caller answers 454 4.7.0). */
int tls_acquire(struct tls *t, int fd);
void tls_release(struct tls *t, int idx);
unsigned tls_available(const struct tls *t);

/* 0 when the handshake is complete, else TLS_WANT_*, TLS_CLOSED, TLS_ERROR. */
int tls_handshake(struct tls *t, int idx);
/* > 0: octets read; 0: the peer closed; or TLS_WANT_*, TLS_ERROR. */
ssize_t tls_read(struct tls *t, int idx, void *buf, size_t len);
/* > 0: octets written (all of len); or TLS_WANT_*, TLS_CLOSED, TLS_ERROR.
 * After TLS_WANT_*, call again with the same buf and len. */
ssize_t tls_write(struct tls *t, int idx, const void *buf, size_t len);
/* Decrypted octets buffered inside the context: readable without the
 * socket becoming readable again. */
size_t tls_pending(struct tls *t, int idx);
/* "TLSv1.2", cipher suite name: for the log. */
const char *tls_version_name(struct tls *t, int idx);
const char *tls_cipher_name(struct tls *t, int idx);

#endif
