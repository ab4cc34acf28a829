/* tls_common: what the STARTTLS server (tls.c) and the forwarding client
 * (tls_client.c) share over mbedTLS — messages, file checks, the seeded
 * generator, the protocol and cipher settings, and the non-blocking record
 * I/O over a socket. Internal to those two modules (it includes mbedTLS).
 *
 * Promises: one policy for both directions: TLS 1.2 and, where the build
 * has it (mbedTLS 3.6), 1.3; ECDHE + AEAD suites only; 2.x limited to
 * modern curves; renegotiation off. The generator is a CTR-DRBG over
 * getrandom() (random.h), never mbedTLS's platform source. The I/O calls
 * return at once: TLS_WANT_READ / TLS_WANT_WRITE say which readiness to
 * wait for; tls_io_write() takes all of len or tells the caller to repeat
 * the same buffer; tls_io_close_notify() sends the alert once, after
 * whatever an earlier call left unsent. Messages are one printable line.
 * mbedTLS 2.28 and 3.6 through their public API only.
 */
#ifndef TARPITD_TLS_COMMON_H
#define TARPITD_TLS_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* version.h pulls in the build configuration in both major versions
 * (mbedtls/config.h in 2.x, build_info.h + mbedtls_config.h in 3.x, or
 * MBEDTLS_CONFIG_FILE), so every feature test sees the library's options. */
#include <mbedtls/version.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/ssl.h>

/* TLS 1.3 server support arrived with the 3.2 API (min/max_tls_version);
 * older 3.x builds only had a client. */
#if MBEDTLS_VERSION_NUMBER >= 0x03020000 && defined(MBEDTLS_SSL_PROTO_TLS1_3)
#define TLS_HAVE_13 1
#endif

/* Room for the suite and curve lists (tls_common.c checks its lists fit). */
#define TLS_SUITES_ROOM 10
#define TLS_CURVES_ROOM 5

/* The config keeps pointers to these: they must live as long as it. */
struct tls_lists {
	int suites[TLS_SUITES_ROOM];
#if MBEDTLS_VERSION_NUMBER < 0x03000000 && defined(MBEDTLS_ECP_C)
	mbedtls_ecp_group_id curves[TLS_CURVES_ROOM];
#endif
};

/* The generator and its entropy, one per pool. */
struct tls_rng {
	mbedtls_entropy_context entropy;
	mbedtls_ctr_drbg_context drbg;
};

/* Record I/O state of one session: the bio context. */
struct tls_io {
	int fd;
	/* The last send() left part of a record in mbedTLS's output buffer:
	 * the next close_notify call only flushes it (both library versions
	 * flush before they write an alert), so the alert needs one more. */
	bool out_pending;
	bool shaken; /* the handshake has completed */
	uint8_t cn;  /* close_notify progress (tls_common.c) */
	/* Octets of the current write already taken by mbedTLS: the caller
	 * repeats the whole buffer after TLS_WANT_*, and the records before
	 * the blocked one must not be sent twice. */
	size_t wr_done;
};

/* snprintf into err, control characters made spaces. */
void tls_set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* "<path>: cannot <what> (<why>)"; a NULL why is the text of mbedTLS
 * error ret. Returns -1 for the caller to pass on. */
int tls_fail(char *err, size_t errlen, const char *path, const char *what, int ret,
	     const char *why);
/* mbedTLS error ret as text (its own when built with MBEDTLS_ERROR_C). */
void tls_strerror(int ret, char *buf, size_t len);
/* 0 when path is a regular file of a sane size, else -1 with err. */
int tls_check_file(const char *path, const char *what, char *err, size_t errlen);
/* After a file read failed inside mbedTLS: errno, if it kept one. */
const char *tls_io_why(void);

void tls_rng_init(struct tls_rng *r);
void tls_rng_free(struct tls_rng *r);
/* PSA (3.x) initialised, the DRBG seeded from getrandom(): 0, or -1. */
int tls_rng_seed(struct tls_rng *r, const char *pers, char *err, size_t errlen);

/* Versions min_version (12 | 13) up to the best the build has, the suites
 * and curves, renegotiation off, the generator: 0, or -1 with err. */
int tls_conf_policy(mbedtls_ssl_config *conf, struct tls_lists *l, unsigned min_version,
		    struct tls_rng *r, char *err, size_t errlen);

/* A bound session: the bio on io, counters cleared. */
void tls_io_bind(mbedtls_ssl_context *ssl, struct tls_io *io, int fd);
/* MBEDTLS_ERR_* as TLS_WANT_READ/WRITE, TLS_CLOSED or TLS_ERROR. */
int tls_map_err(int ret);
/* The calls of tls.h (same results), on one session. */
ssize_t tls_io_read(mbedtls_ssl_context *ssl, void *buf, size_t len);
ssize_t tls_io_write(mbedtls_ssl_context *ssl, struct tls_io *io, const void *buf, size_t len);
int tls_io_close_notify(mbedtls_ssl_context *ssl, struct tls_io *io);

#endif
