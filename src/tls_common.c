/* tls_common: the pieces tls.c and tls_client.c share over mbedTLS. */
#include "tls_common.h"
#include "random.h"
#include "tls.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/ssl_ciphersuites.h>

#if MBEDTLS_VERSION_NUMBER >= 0x03000000 && defined(MBEDTLS_PSA_CRYPTO_C)
#include <psa/crypto.h>
#define TLS_NEED_PSA_INIT 1
#endif

/* Preference order: ChaCha20-Poly1305 first because router CPUs rarely
 * have AES instructions, then AES-GCM. Only ECDHE (forward secrecy) and
 * AEAD suites; whatever the library was built without is filtered out at
 * run time. */
static const int wanted_suites[] = {
#ifdef MBEDTLS_TLS1_3_CHACHA20_POLY1305_SHA256
	MBEDTLS_TLS1_3_CHACHA20_POLY1305_SHA256,
#endif
#ifdef MBEDTLS_TLS1_3_AES_128_GCM_SHA256
	MBEDTLS_TLS1_3_AES_128_GCM_SHA256,
#endif
#ifdef MBEDTLS_TLS1_3_AES_256_GCM_SHA384
	MBEDTLS_TLS1_3_AES_256_GCM_SHA384,
#endif
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
};
#define N_WANTED (sizeof wanted_suites / sizeof wanted_suites[0])
_Static_assert(N_WANTED < TLS_SUITES_ROOM, "TLS_SUITES_ROOM too small");

#if MBEDTLS_VERSION_NUMBER < 0x03000000 && defined(MBEDTLS_ECP_C)
/* 2.x offers every compiled-in curve by default, 192-bit ones included;
 * 3.x's default group list is already limited to modern groups. */
static const mbedtls_ecp_group_id wanted_curves[] = {
	MBEDTLS_ECP_DP_CURVE25519,
	MBEDTLS_ECP_DP_SECP256R1,
	MBEDTLS_ECP_DP_SECP384R1,
	MBEDTLS_ECP_DP_SECP521R1,
};
#define N_CURVES (sizeof wanted_curves / sizeof wanted_curves[0])
_Static_assert(N_CURVES < TLS_CURVES_ROOM, "TLS_CURVES_ROOM too small");
#endif

/* close_notify progress of a session (tls_io.cn). */
enum { CN_NONE, CN_QUEUED, CN_SENT };

/* The message may carry a path from the configuration and mbedTLS text:
 * keep it to one printable line. */
void tls_set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	for (char *p = err; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
}

void tls_strerror(int ret, char *buf, size_t len)
{
	buf[0] = '\0';
#if defined(MBEDTLS_ERROR_C)
	mbedtls_strerror(ret, buf, len);
#endif
	if (!buf[0])
		snprintf(buf, len, "mbedTLS error -0x%04x", (unsigned)-ret);
}

int tls_fail(char *err, size_t errlen, const char *path, const char *what, int ret,
	     const char *why)
{
	char msg[160];

	if (!why) {
		tls_strerror(ret, msg, sizeof msg);
		why = msg;
	}
	tls_set_err(err, errlen, "%s: cannot %s (%s)", path, what, why);
	return -1;
}

/* mbedTLS reads a whole file into memory through fseek/ftell: a directory
 * would make it ask for an absurd allocation and a FIFO would block the
 * start-up, so only regular files of a sane size get that far. */
#define TLS_MAX_FILE 1048576
#define STR_(x) #x
#define STR(x) STR_(x)

int tls_check_file(const char *path, const char *what, char *err, size_t errlen)
{
	struct stat st;
	const char *why;

	if (stat(path, &st) != 0)
		why = strerror(errno);
	else if (!S_ISREG(st.st_mode))
		why = "not a regular file";
	else if (st.st_size > TLS_MAX_FILE)
		why = "larger than " STR(TLS_MAX_FILE) " octets";
	else
		return 0;
	return tls_fail(err, errlen, path, what, 0, why);
}

const char *tls_io_why(void)
{
	return errno ? strerror(errno) : "I/O error";
}

void tls_rng_init(struct tls_rng *r)
{
	mbedtls_entropy_init(&r->entropy);
	mbedtls_ctr_drbg_init(&r->drbg);
}

void tls_rng_free(struct tls_rng *r)
{
	mbedtls_ctr_drbg_free(&r->drbg);
	mbedtls_entropy_free(&r->entropy);
}

int tls_rng_seed(struct tls_rng *r, const char *pers, char *err, size_t errlen)
{
	int ret;

#ifdef TLS_NEED_PSA_INIT
	/* 3.x routes key parsing, TLS 1.3 and (with USE_PSA) all of TLS
	 * through PSA, which refuses to work before this; it is idempotent. */
	if (psa_crypto_init() != PSA_SUCCESS) {
		tls_set_err(err, errlen, "tls: cannot initialise PSA crypto");
		return -1;
	}
#endif
	ret = mbedtls_entropy_add_source(&r->entropy, random_entropy_source, NULL, 32,
					 MBEDTLS_ENTROPY_SOURCE_STRONG);
	if (ret == 0)
		ret = mbedtls_ctr_drbg_seed(&r->drbg, mbedtls_entropy_func, &r->entropy,
					    (const unsigned char *)pers, strlen(pers));
	if (ret != 0)
		return tls_fail(err, errlen, "tls", "seed the random generator", ret, NULL);
	return 0;
}

int tls_conf_policy(mbedtls_ssl_config *conf, struct tls_lists *l, unsigned min_version,
		    struct tls_rng *r, char *err, size_t errlen)
{
	size_t n = 0;

	(void)min_version; /* 2.x and 3.0/3.1: 1.2 is all there is */
	mbedtls_ssl_conf_rng(conf, mbedtls_ctr_drbg_random, &r->drbg);
#if MBEDTLS_VERSION_NUMBER >= 0x03020000
#ifdef TLS_HAVE_13
	mbedtls_ssl_conf_min_tls_version(conf, min_version == 13 ? MBEDTLS_SSL_VERSION_TLS1_3
								 : MBEDTLS_SSL_VERSION_TLS1_2);
	mbedtls_ssl_conf_max_tls_version(conf, MBEDTLS_SSL_VERSION_TLS1_3);
	/* Resumption keeps forward secrecy: PSK only together with ECDHE. */
	mbedtls_ssl_conf_tls13_key_exchange_modes(conf,
						  MBEDTLS_SSL_TLS1_3_KEY_EXCHANGE_MODE_EPHEMERAL_ALL);
#else
	mbedtls_ssl_conf_min_tls_version(conf, MBEDTLS_SSL_VERSION_TLS1_2);
	mbedtls_ssl_conf_max_tls_version(conf, MBEDTLS_SSL_VERSION_TLS1_2);
#endif
#else
	mbedtls_ssl_conf_min_version(conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
	mbedtls_ssl_conf_max_version(conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
#endif

	for (size_t i = 0; i < N_WANTED; i++)
		if (mbedtls_ssl_ciphersuite_from_id(wanted_suites[i]))
			l->suites[n++] = wanted_suites[i];
	l->suites[n] = 0;
	if (n == 0) {
		tls_set_err(err, errlen, "tls: this mbedTLS build has no ECDHE AEAD cipher suite");
		return -1;
	}
	mbedtls_ssl_conf_ciphersuites(conf, l->suites);

#if MBEDTLS_VERSION_NUMBER < 0x03000000 && defined(MBEDTLS_ECP_C)
	n = 0;
	for (size_t i = 0; i < N_CURVES; i++)
		if (mbedtls_ecp_curve_info_from_grp_id(wanted_curves[i]))
			l->curves[n++] = wanted_curves[i];
	l->curves[n] = MBEDTLS_ECP_DP_NONE;
	if (n > 0)
		mbedtls_ssl_conf_curves(conf, l->curves);
#endif

#if defined(MBEDTLS_SSL_RENEGOTIATION)
	/* The default already, but a peer-started renegotiation is a cheap
	 * way to make us do public-key work again and again. */
	mbedtls_ssl_conf_renegotiation(conf, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
#endif
	return 0;
}

/* A send() or recv() result as mbedTLS wants it. */
static int bio_result(ssize_t n, int again, int failed)
{
	if (n >= 0)
		return (int)n; /* 0 from recv is EOF: mbedTLS turns it into CONN_EOF */
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return again;
	if (errno == ECONNRESET || errno == EPIPE)
		return MBEDTLS_ERR_NET_CONN_RESET;
	return failed;
}

static int bio_send(void *ctx, const unsigned char *buf, size_t len)
{
	struct tls_io *io = ctx;
	int n;

	if (io->fd < 0)
		return MBEDTLS_ERR_NET_INVALID_CONTEXT;
	n = bio_result(send(io->fd, buf, len > INT_MAX ? INT_MAX : len, MSG_NOSIGNAL),
		       MBEDTLS_ERR_SSL_WANT_WRITE, MBEDTLS_ERR_NET_SEND_FAILED);
	/* mbedTLS always hands over everything it holds (out_left): only
	 * a short or blocked send leaves some of it behind. */
	io->out_pending = n == MBEDTLS_ERR_SSL_WANT_WRITE || (n >= 0 && (size_t)n < len);
	return n;
}

static int bio_recv(void *ctx, unsigned char *buf, size_t len)
{
	const struct tls_io *io = ctx;

	if (io->fd < 0)
		return MBEDTLS_ERR_NET_INVALID_CONTEXT;
	return bio_result(recv(io->fd, buf, len > INT_MAX ? INT_MAX : len, 0),
			  MBEDTLS_ERR_SSL_WANT_READ, MBEDTLS_ERR_NET_RECV_FAILED);
}

/* A bound session: the bio on io, counters cleared. */
static void tls_io_bind(mbedtls_ssl_context *ssl, struct tls_io *io, int fd)
{
	io->fd = fd;
	io->wr_done = 0;
	io->out_pending = false;
	io->shaken = false;
	io->cn = CN_NONE;
	mbedtls_ssl_set_bio(ssl, io, bio_send, bio_recv, NULL);
}

int tls_map_err(int ret)
{
	switch (ret) {
	case MBEDTLS_ERR_SSL_WANT_READ:
		return TLS_WANT_READ;
	case MBEDTLS_ERR_SSL_WANT_WRITE:
		return TLS_WANT_WRITE;
	case MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY:
	case MBEDTLS_ERR_SSL_CONN_EOF:
	case MBEDTLS_ERR_NET_CONN_RESET:
		return TLS_CLOSED;
	default:
		return TLS_ERROR;
	}
}

static int tls_io_close_notify(mbedtls_ssl_context *ssl, struct tls_io *io)
{
	/* No session yet: nothing to end (3.x would not even flush). */
	if (!io->shaken)
		return 0;
	/* At most: flush what was left, write the alert, flush it. */
	for (int i = 0; i < 3; i++) {
		int ret;

		if (io->cn == CN_QUEUED && !io->out_pending)
			io->cn = CN_SENT;
		if (io->cn == CN_SENT)
			return 0;
		/* Nothing left from before: this call writes the alert. */
		if (io->cn == CN_NONE && !io->out_pending)
			io->cn = CN_QUEUED;
		ret = mbedtls_ssl_close_notify(ssl);
		if (ret != 0)
			return tls_map_err(ret);
	}
	return io->cn == CN_SENT || (io->cn == CN_QUEUED && !io->out_pending) ? 0 : TLS_WANT_WRITE;
}

static ssize_t tls_io_read(mbedtls_ssl_context *ssl, void *buf, size_t len)
{
	int ret;

	/* A zero-length read would look like the peer closing. */
	if (!buf || len == 0)
		return TLS_ERROR;
	if (len > INT_MAX)
		len = INT_MAX;
	for (;;) {
		ret = mbedtls_ssl_read(ssl, buf, len);
		if (ret >= 0)
			return ret;
#if defined(MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
		/* 3.x, client side: a TLS 1.3 ticket came (and was dropped:
		 * no session is kept); the data may follow at once. */
		if (ret == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
			continue;
#endif
		/* RECEIVED_EARLY_DATA needs early data switched on: it cannot
		 * come back here. */
		break;
	}
	ret = tls_map_err(ret);
	return ret == TLS_CLOSED ? 0 : ret;
}

static ssize_t tls_io_write(mbedtls_ssl_context *ssl, struct tls_io *io, const void *buf,
			    size_t len)
{
	const unsigned char *p = buf;

	if (!buf && len)
		return TLS_ERROR;
	if (len > INT_MAX)
		return TLS_ERROR;
	if (io->wr_done > len) /* the caller broke the repeat rule */
		io->wr_done = 0;
	/* mbedtls_ssl_write() takes at most one record (max fragment) per
	 * call: loop until all of len is in. */
	while (io->wr_done < len) {
		int ret = mbedtls_ssl_write(ssl, p + io->wr_done, len - io->wr_done);
		if (ret > 0) {
			io->wr_done += (size_t)ret;
			continue;
		}
		if (ret != MBEDTLS_ERR_SSL_WANT_READ && ret != MBEDTLS_ERR_SSL_WANT_WRITE)
			io->wr_done = 0;
		return ret == 0 ? TLS_ERROR : tls_map_err(ret);
	}
	io->wr_done = 0;
	return (ssize_t)len;
}

int tls_pool_check(unsigned max, const char *who, char *err, size_t errlen)
{
	if (max == 0) {
		tls_set_err(err, errlen, "%s: max_sessions must be at least 1", who);
		return -1;
	}
	/* Slot indexes are ints (negative ones are the refusals). */
	if (max > INT_MAX) {
		tls_set_err(err, errlen, "%s: max_sessions %u is too large", who, max);
		return -1;
	}
	return 0;
}

void *tls_pool_alloc(struct tls_pool *p, unsigned max, size_t extra_size, const char *who,
		     char *err, size_t errlen)
{
	void *extra = NULL;

	/* Only the small context structs: the I/O buffers (two records'
	 * worth each) come with mbedtls_ssl_setup() when a slot is first
	 * used. */
	p->slots = calloc(max, sizeof *p->slots);
	if (p->slots)
		extra = calloc(max, extra_size);
	if (!extra) {
		free(p->slots);
		p->slots = NULL;
		tls_set_err(err, errlen, "%s: out of memory for %u sessions", who, max);
		return NULL;
	}
	for (unsigned i = 0; i < max; i++) {
		mbedtls_ssl_init(&p->slots[i].ssl);
		p->slots[i].io.fd = -1;
	}
	p->max = max;
	p->used = 0;
	return extra;
}

void tls_pool_free(struct tls_pool *p)
{
	if (!p->slots)
		return;
	for (unsigned i = 0; i < p->max; i++)
		mbedtls_ssl_free(&p->slots[i].ssl);
	free(p->slots);
	p->slots = NULL;
}

struct tls_slot *tls_pool_get(struct tls_pool *p, int idx)
{
	if (!p->slots || idx < 0 || (unsigned)idx >= p->max || !p->slots[idx].in_use)
		return NULL;
	return &p->slots[idx];
}

int tls_pool_find(const struct tls_pool *p)
{
	if (!p->slots || p->used >= p->max)
		return -1;
	for (unsigned i = 0; i < p->max; i++)
		if (!p->slots[i].in_use)
			return (int)i;
	return -1;
}

void tls_slot_drop(struct tls_slot *s)
{
	mbedtls_ssl_free(&s->ssl);
	mbedtls_ssl_init(&s->ssl);
	s->set_up = false;
}

int tls_slot_setup(struct tls_slot *s, const mbedtls_ssl_config *conf)
{
	if (s->set_up)
		return 0;
	if (mbedtls_ssl_setup(&s->ssl, conf) != 0) {
		/* A later acquire retries instead of using a half-built one. */
		tls_slot_drop(s);
		return -1;
	}
	s->set_up = true;
	return 0;
}

void tls_pool_take(struct tls_pool *p, int idx, int fd)
{
	struct tls_slot *s = &p->slots[idx];

	tls_io_bind(&s->ssl, &s->io, fd);
	s->in_use = true;
	p->used++;
}

bool tls_pool_put(struct tls_pool *p, struct tls_slot *s)
{
	bool dropped = false;

	/* Reset keeps the I/O buffers for the next session; only if it fails
	 * (it allocates the handshake state anew) is the context dropped and
	 * set up again on its next use. */
	if (s->set_up && mbedtls_ssl_session_reset(&s->ssl) != 0) {
		tls_slot_drop(s);
		dropped = true;
	}
	s->io.fd = -1;
	s->io.wr_done = 0;
	s->in_use = false;
	p->used--;
	return dropped;
}

int tls_slot_handshake(struct tls_slot *s)
{
	int ret = mbedtls_ssl_handshake(&s->ssl);

	if (ret == 0)
		s->io.shaken = true;
	return ret;
}

ssize_t tls_slot_read(struct tls_slot *s, void *buf, size_t len)
{
	return s ? tls_io_read(&s->ssl, buf, len) : TLS_ERROR;
}

ssize_t tls_slot_write(struct tls_slot *s, const void *buf, size_t len)
{
	return s ? tls_io_write(&s->ssl, &s->io, buf, len) : TLS_ERROR;
}

int tls_slot_close_notify(struct tls_slot *s)
{
	return s ? tls_io_close_notify(&s->ssl, &s->io) : TLS_ERROR;
}

size_t tls_slot_pending(struct tls_slot *s)
{
	return s ? mbedtls_ssl_get_bytes_avail(&s->ssl) : 0;
}

const char *tls_slot_version(struct tls_slot *s)
{
	const char *v = s ? mbedtls_ssl_get_version(&s->ssl) : NULL;

	return v ? v : "unknown";
}

const char *tls_slot_cipher(struct tls_slot *s)
{
	const char *c = s ? mbedtls_ssl_get_ciphersuite(&s->ssl) : NULL;

	return c ? c : "unknown";
}
