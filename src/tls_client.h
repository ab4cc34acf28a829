/* tls_client: the client side of STARTTLS, for forwarding to a next hop
 * (SPEC §10, [relay] starttls / ca_file / tls_name), non-blocking, from a
 * fixed pool like tls.h's.
 *
 * Promises: tlsc_open() seeds a CTR-DRBG from getrandom() and allocates
 * only the small slot structs; a slot's SSL context (and its record
 * buffers, the bulk of the memory) is set up the first time the slot is
 * used and reset, never freed, when released, so TLS memory never exceeds
 * max_sessions contexts and steady state allocates nothing. A profile is
 * how a next hop is checked: profile 0 (tlsc_profile with no ca_file)
 * verifies nothing — encryption only, for `opportunistic` — while a
 * ca_file profile loads that chain once and makes the handshake fail
 * unless the next hop's chain leads to it (MBEDTLS_SSL_VERIFY_REQUIRED)
 * and, when a server_name is given, its certificate carries that name.
 * The server_name is sent as SNI with either profile. TLS 1.2 and, where
 * the build has it (3.6), 1.3; ECDHE + AEAD suites in the server side's
 * order (tls_common.h); renegotiation off; no session cache or tickets
 * kept. Every call returns at once: TLS_WANT_READ / TLS_WANT_WRITE
 * (tls.h) tell which readiness to wait for. tlsc_error() says in one
 * short printable line why a handshake failed. mbedTLS 2.28 and 3.6
 * through their public API; a TLS=0 build (tls_client_none.c) fails
 * tlsc_open() with "built without TLS".
 */
#ifndef TARPITD_TLS_CLIENT_H
#define TARPITD_TLS_CLIENT_H

#include <stddef.h>
#include <sys/types.h>

#include "tls.h" /* TLS_WANT_READ, TLS_WANT_WRITE, TLS_CLOSED, TLS_ERROR */

struct tls_client;

/* NULL with a one-line message in err (max_sessions 0 or too large, no
 * memory, the generator cannot be seeded, a TLS=0 build). */
struct tls_client *tlsc_open(unsigned max_sessions, char *err, size_t errlen);
/* Every slot must be released first (the contexts are freed). */
void tlsc_free(struct tls_client *t);

/* At start or reload only: ca_file NULL or "" is profile 0 (no
 * verification); else the chain in ca_file is loaded and a new profile
 * index (>= 1) returned, at most TLSC_PROFILES_MAX - 1 of them; -1 with
 * err (unreadable, not a regular file, unparsable PEM, too many). A
 * reload that changes CA files opens a new tls_client and frees the old
 * one once its sessions are done. */
int tlsc_profile(struct tls_client *t, const char *ca_file, char *err, size_t errlen);

/* A slot bound to fd (connected, non-blocking), ready for
 * tlsc_handshake(), checked per profile and expecting server_name (NULL or
 * "": none, and no SNI; at most TLSC_NAME_MAX octets); -1 when the pool
 * is full (or the context cannot be set up), TLS_ERROR for a bad profile,
 * fd or name. */
int tlsc_acquire(struct tls_client *t, int profile, int fd, const char *server_name);
/* Back to the pool at once (no alert: see tlsc_close_notify). */
void tlsc_release(struct tls_client *t, int idx);
unsigned tlsc_available(const struct tls_client *t);

/* 0 when the handshake is complete; TLS_WANT_*; TLS_ERROR for any failure
 * (certificate verification, an alert, the peer closing): then
 * tlsc_error() says why. */
int tlsc_handshake(struct tls_client *t, int idx);
/* Why the last handshake of idx failed, e.g. "certificate verification
 * failed: name mismatch (expected mail.example)", "certificate
 * verification failed: not trusted", "handshake failed: SSL - A fatal
 * alert message was received from our peer": printable ASCII, at most
 * TLSC_ERR_MAX - 1 octets, valid until the next call. "" when none. */
const char *tlsc_error(struct tls_client *t, int idx);
/* As tls_read / tls_write / tls_close_notify / tls_pending (tls.h). */
ssize_t tlsc_read(struct tls_client *t, int idx, void *buf, size_t len);
ssize_t tlsc_write(struct tls_client *t, int idx, const void *buf, size_t len);
int tlsc_close_notify(struct tls_client *t, int idx);
size_t tlsc_pending(struct tls_client *t, int idx);
/* "TLSv1.3", cipher suite name: for the log. */
const char *tlsc_version_name(struct tls_client *t, int idx);
const char *tlsc_cipher_name(struct tls_client *t, int idx);

#endif
