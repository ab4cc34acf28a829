/* tls_common: what the STARTTLS server (tls.c) and the forwarding client
 * (tls_client.c) share over mbedTLS — messages, file checks, the seeded
 * generator, the protocol and cipher settings, the pool of sessions and
 * their non-blocking record I/O over a socket. Internal to those two
 * modules (it includes mbedTLS).
 *
 * Promises: one policy for both directions: TLS 1.2 and, where the build
 * has it (mbedTLS 3.6), 1.3; ECDHE + AEAD suites only; 2.x limited to
 * modern curves; renegotiation off. The generator is a CTR-DRBG over
 * getrandom() (random.h), never mbedTLS's platform source. A pool's slots
 * are allocated once, at open, with the module's own array beside them;
 * a slot's context is set up (its record buffers allocated) the first
 * time the slot is used and reset, never freed, when it is released —
 * dropped, to be set up again on its next use, only when that reset
 * fails — so a pool holds at most max contexts and steady state
 * allocates nothing. The I/O calls return at once: TLS_WANT_READ /
 * TLS_WANT_WRITE say which readiness to wait for; tls_slot_write() takes
 * all of len or tells the caller to repeat the same buffer;
 * tls_slot_close_notify() sends the alert once, after whatever an
 * earlier call left unsent. Messages are one printable line. mbedTLS
 * 2.28 and 3.6 through their public API only.
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

/* MBEDTLS_ERR_* as TLS_WANT_READ/WRITE, TLS_CLOSED or TLS_ERROR. */
int tls_map_err(int ret);

/* One session of a pool: what both modules keep per slot; each keeps its
 * own fields in an array beside the pool's, at the same index. Our own
 * fields before mbedTLS's large one: MIPS16 and Thumb reach the first 128
 * octets of a struct with shorter instructions. */
struct tls_slot {
	bool in_use;
	bool set_up; /* mbedtls_ssl_setup() done: the record buffers exist */
	struct tls_io io;
	mbedtls_ssl_context ssl;
};

struct tls_pool {
	struct tls_slot *slots; /* max of them; NULL until tls_pool_alloc() */
	unsigned max, used;
};

/* max (max_sessions) from 1 to INT_MAX: 0, or -1 with "<who>: ..." in err. */
int tls_pool_check(unsigned max, const char *who, char *err, size_t errlen);
/* The max slot structs, no context set up yet, and the caller's array of
 * max zeroed entries of extra_size octets, which it frees itself: that
 * array, or NULL with "<who>: out of memory for <max> sessions" and
 * nothing allocated. */
void *tls_pool_alloc(struct tls_pool *p, unsigned max, size_t extra_size, const char *who,
		     char *err, size_t errlen);
/* Every context and the slots (none may be in use); p->max stays, for
 * the caller's array. A pool never allocated is left as it is. */
void tls_pool_free(struct tls_pool *p);
/* Slot idx when it is in use, else NULL. */
struct tls_slot *tls_pool_get(struct tls_pool *p, int idx);
/* The index of a slot not in use, or -1 when every slot is. */
int tls_pool_find(const struct tls_pool *p);
/* Sets the context of slot s up with conf unless it is already: 0, or -1
 * with the context back to pristine (never half-built). */
int tls_slot_setup(struct tls_slot *s, const mbedtls_ssl_config *conf);
/* Back to a pristine context, set up again on its next use. */
void tls_slot_drop(struct tls_slot *s);
/* Slot idx (tls_pool_find(), set up) in use on fd, its counters cleared. */
void tls_pool_take(struct tls_pool *p, int idx, int fd);
/* Slot s (in use) back to the pool, its context reset for the next
 * session: true when the reset failed and the context was dropped. */
bool tls_pool_put(struct tls_pool *p, struct tls_slot *s);

/* mbedtls_ssl_handshake() on slot s (not NULL): 0 when it is complete,
 * else mbedTLS's error, for the caller to map or keep. */
int tls_slot_handshake(struct tls_slot *s);
/* The calls of tls.h (same results) on one slot; s NULL (no such slot in
 * use): TLS_ERROR, 0 octets pending, "unknown". */
ssize_t tls_slot_read(struct tls_slot *s, void *buf, size_t len);
ssize_t tls_slot_write(struct tls_slot *s, const void *buf, size_t len);
int tls_slot_close_notify(struct tls_slot *s);
size_t tls_slot_pending(struct tls_slot *s);
const char *tls_slot_version(struct tls_slot *s);
const char *tls_slot_cipher(struct tls_slot *s);

#endif
