/* tls: STARTTLS (RFC 3207) through mbedTLS, non-blocking, from a fixed pool.
 *
 * Promises: tls_open() loads the certificate and key, checks that they
 * belong together and seeds a CTR-DRBG from getrandom(); the pool holds at
 * most max_sessions SSL contexts, each set up the first time it is used
 * and reset (never freed) when released, so the number of TLS contexts —
 * and their memory — never exceeds max_sessions. One source (an IPv4
 * address, or an IPv6 /64 as the harvest table counts them) holds at most
 * max_per_source of them, so it cannot lock every other sender out of
 * TLS. A plain connection costs no TLS memory. TLS 1.2 and, where the
 * mbedTLS build has it (3.6), 1.3, from min_version up; AEAD suites with
 * forward secrecy only (TLS 1.3 resumption too: PSK with ECDHE);
 * renegotiation off. Session tickets (RFC 5077, and TLS 1.3 tickets) with
 * a random key that lives in RAM only and is replaced every
 * TLS_TICKET_LIFETIME (the previous one still opens tickets until its
 * own lifetime ends), so no per-session cache is kept. Every call returns
 * at once: TLS_WANT_READ / TLS_WANT_WRITE tell the caller which readiness
 * to wait for. Builds against mbedTLS 2.28 and 3.6 through their public
 * API only.
 */
#ifndef TARPITD_TLS_H
#define TARPITD_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "iprange.h"

enum {
	TLS_WANT_READ = -1,
	TLS_WANT_WRITE = -2,
	TLS_CLOSED = -3, /* the peer closed (close_notify, EOF or reset) */
	TLS_ERROR = -4,  /* handshake failure, bad record, ...: close */
};

/* tls_acquire_from()'s refusals, both answered 454 4.7.0 (and counted as
 * tls_refused) by the caller. */
enum {
	TLS_POOL_FULL = -1,   /* every context is in use */
	TLS_SOURCE_FULL = -2, /* this source holds its share; others still get one */
};

/* Seconds a ticket key encrypts new tickets, and a ticket stays valid. */
#define TLS_TICKET_LIFETIME 7200

struct tls_opts {
	const char *certificate, *key;
	unsigned max_sessions;   /* the pool, >= 1 */
	unsigned max_per_source; /* one source's share; 0 or >= max_sessions: no share */
	unsigned min_version;    /* 12 or 13 */
	bool session_tickets;
};

struct tls;

/* NULL with a one-line message in err on failure (unreadable file, bad
 * PEM, key not matching the certificate, max_sessions 0, 1.3 asked of a
 * library without it). */
struct tls *tls_open(const struct tls_opts *o, char *err, size_t errlen);
void tls_free(struct tls *t);
/* The same checks as tls_open, for `tarpitd check`: 0 ok, -1 with err. */
int tls_check_files(const char *cert_path, const char *key_path, char *err, size_t errlen);
/* 13 when this build can serve TLS 1.3, 12 when only 1.2, 0 without TLS. */
unsigned tls_max_version(void);
/* "mbedTLS 3.6.6", for messages. */
const char *tls_library_version(void);

/* A pool slot bound to fd, ready for tls_handshake(), counted against
 * peer's share (NULL: against none); or TLS_POOL_FULL, TLS_SOURCE_FULL. */
int tls_acquire_from(struct tls *t, int fd, const struct ip_addr *peer);
/* tls_acquire_from(t, fd, NULL); -1 when the pool is empty. */
int tls_acquire(struct tls *t, int fd);
/* Back to the pool at once (no alert: see tls_close_notify). */
void tls_release(struct tls *t, int idx);
unsigned tls_available(const struct tls *t);
/* Contexts held by peer's source (its /64 for IPv6). */
unsigned tls_source_count(const struct tls *t, const struct ip_addr *peer);

/* 0 when the handshake is complete, else TLS_WANT_*, TLS_CLOSED, TLS_ERROR. */
int tls_handshake(struct tls *t, int idx);
/* After a complete handshake: it resumed a session from a ticket. */
bool tls_resumed(struct tls *t, int idx);
/* > 0: octets read; 0: the peer closed (its close_notify, or EOF); or
 * TLS_WANT_*, TLS_ERROR. */
ssize_t tls_read(struct tls *t, int idx, void *buf, size_t len);
/* > 0: octets written (all of len); or TLS_WANT_*, TLS_CLOSED, TLS_ERROR.
 * After TLS_WANT_*, call again with the same buf and len. */
ssize_t tls_write(struct tls *t, int idx, const void *buf, size_t len);
/* Sends the close_notify alert, after whatever an earlier call left
 * unsent: 0 once it is out (or when there is no session to close: the
 * handshake never finished); TLS_WANT_WRITE (or _READ): call again when
 * the socket is ready; TLS_CLOSED / TLS_ERROR: the peer is gone, just
 * close. Sent once however often it is called. */
int tls_close_notify(struct tls *t, int idx);
/* Decrypted octets buffered inside the context: readable without the
 * socket becoming readable again. */
size_t tls_pending(struct tls *t, int idx);
/* "TLSv1.2", cipher suite name: for the log. */
const char *tls_version_name(struct tls *t, int idx);
const char *tls_cipher_name(struct tls *t, int idx);

#endif
