/* tls: STARTTLS through mbedTLS from a fixed, lazily set up pool. */
#include "tls.h"
#include "random.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>

/* version.h pulls in the build configuration in both major versions
 * (mbedtls/config.h in 2.x, mbedtls/build_info.h + mbedtls_config.h in
 * 3.x, or MBEDTLS_CONFIG_FILE), so every feature test below sees the
 * options the library was built with. */
#include <mbedtls/version.h>
#include <mbedtls/cipher.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ciphersuites.h>
#if defined(MBEDTLS_SSL_SESSION_TICKETS) && defined(MBEDTLS_SSL_TICKET_C)
#include <mbedtls/ssl_ticket.h>
#define TLS_HAVE_TICKETS 1
#endif
#include <mbedtls/x509_crt.h>

#if MBEDTLS_VERSION_NUMBER >= 0x03000000 && defined(MBEDTLS_PSA_CRYPTO_C)
#include <psa/crypto.h>
#define TLS_NEED_PSA_INIT 1
#endif

/* TLS 1.3 server support arrived with the 3.2 API (min/max_tls_version);
 * older 3.x builds only had a client. */
#if MBEDTLS_VERSION_NUMBER >= 0x03020000 && defined(MBEDTLS_SSL_PROTO_TLS1_3)
#define TLS_HAVE_13 1
#endif

/* Server preference order: ChaCha20-Poly1305 first because router CPUs
 * rarely have AES instructions, then AES-GCM. Only ECDHE (forward secrecy)
 * and AEAD suites; whatever the library was built without is filtered out
 * at run time. */
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
#endif

struct creds {
	mbedtls_entropy_context entropy;
	mbedtls_ctr_drbg_context drbg;
	mbedtls_x509_crt crt;
	mbedtls_pk_context key;
};

/* close_notify progress of a slot (tls_close_notify). */
enum { CN_NONE, CN_QUEUED, CN_SENT };

/* Our own fields before mbedTLS's large ones: MIPS16 and Thumb reach
 * the first 128 octets of a struct with shorter instructions. */
struct slot {
	bool in_use;
	bool set_up;
	bool has_src;
	/* The last send() left part of a record in mbedTLS's output buffer:
	 * the next close_notify call only flushes it (both library versions
	 * flush before they write an alert), so the alert needs one more. */
	bool out_pending;
	bool resumed;
	bool shaken; /* the handshake has completed */
	uint8_t cn;
	int fd;
	/* Octets of the current tls_write() already taken by mbedTLS: the
	 * caller repeats the whole buffer after TLS_WANT_*, and the records
	 * before the blocked one must not be sent twice. */
	size_t wr_done;
	struct ip_addr src; /* the source's key: IPv4, or IPv6 /64 */
	mbedtls_ssl_context ssl;
};

struct tls {
	struct slot *slots;
	/* The slot whose handshake is running: the ticket callbacks get no
	 * SSL context, and there is one thread. */
	struct slot *cur;
	unsigned max, used, per_source;
	struct creds c;
	mbedtls_ssl_config conf;
#ifdef TLS_HAVE_TICKETS
	mbedtls_ssl_ticket_context ticket;
#endif
	/* The config keeps pointers to these lists: they live as long as it. */
	int suites[N_WANTED + 1];
#if MBEDTLS_VERSION_NUMBER < 0x03000000 && defined(MBEDTLS_ECP_C)
	mbedtls_ecp_group_id curves[N_CURVES + 1];
#endif
};

/* The message may carry a path from the configuration and mbedTLS text:
 * keep it to one printable line. */
static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
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

/* "<path>: cannot <what> (<why>)"; a NULL why is the text of mbedTLS
 * error ret. Returns -1 for the caller to pass on. */
static int fail(char *err, size_t errlen, const char *path, const char *what, int ret,
		const char *why)
{
	char msg[160];

	if (!why) {
		msg[0] = '\0';
#if defined(MBEDTLS_ERROR_C)
		mbedtls_strerror(ret, msg, sizeof msg);
#endif
		if (!msg[0])
			snprintf(msg, sizeof msg, "mbedTLS error -0x%04x", (unsigned)-ret);
		why = msg;
	}
	set_err(err, errlen, "%s: cannot %s (%s)", path, what, why);
	return -1;
}

/* mbedTLS reads a whole file into memory through fseek/ftell: a directory
 * would make it ask for an absurd allocation and a FIFO would block the
 * start-up, so only regular files of a sane size get that far. */
#define TLS_MAX_FILE 1048576
#define STR_(x) #x
#define STR(x) STR_(x)

static int check_file(const char *path, const char *what, char *err, size_t errlen)
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
	return fail(err, errlen, path, what, 0, why);
}

/* After a file read failed inside mbedTLS: errno, if it kept one. */
static const char *io_why(void)
{
	return errno ? strerror(errno) : "I/O error";
}

static void creds_init(struct creds *c)
{
	mbedtls_entropy_init(&c->entropy);
	mbedtls_ctr_drbg_init(&c->drbg);
	mbedtls_x509_crt_init(&c->crt);
	mbedtls_pk_init(&c->key);
}

static void creds_free(struct creds *c)
{
	mbedtls_pk_free(&c->key);
	mbedtls_x509_crt_free(&c->crt);
	mbedtls_ctr_drbg_free(&c->drbg);
	mbedtls_entropy_free(&c->entropy);
}

static int creds_load(struct creds *c, const char *cert_path, const char *key_path, char *err,
		      size_t errlen)
{
	static const unsigned char pers[] = "tarpitd tls";
	int ret;

	if (!cert_path || !*cert_path || !key_path || !*key_path) {
		set_err(err, errlen, "tls: certificate and key must both be given");
		return -1;
	}
	if (check_file(cert_path, "read certificate", err, errlen) != 0 ||
	    check_file(key_path, "read key", err, errlen) != 0)
		return -1;
#ifdef TLS_NEED_PSA_INIT
	/* 3.x routes key parsing, TLS 1.3 and (with USE_PSA) all of TLS
	 * through PSA, which refuses to work before this; it is idempotent. */
	if (psa_crypto_init() != PSA_SUCCESS) {
		set_err(err, errlen, "tls: cannot initialise PSA crypto");
		return -1;
	}
#endif
	ret = mbedtls_entropy_add_source(&c->entropy, random_entropy_source, NULL, 32,
					 MBEDTLS_ENTROPY_SOURCE_STRONG);
	if (ret == 0)
		ret = mbedtls_ctr_drbg_seed(&c->drbg, mbedtls_entropy_func, &c->entropy, pers,
					    sizeof pers - 1);
	if (ret != 0)
		return fail(err, errlen, "tls", "seed the random generator", ret, NULL);

	errno = 0;
	ret = mbedtls_x509_crt_parse_file(&c->crt, cert_path);
	if (ret == MBEDTLS_ERR_X509_FILE_IO_ERROR || ret == MBEDTLS_ERR_PK_FILE_IO_ERROR)
		return fail(err, errlen, cert_path, "read certificate", ret, io_why());
	if (ret < 0)
		return fail(err, errlen, cert_path, "parse certificate", ret, NULL);
	if (ret > 0) {
		/* Some PEM blocks parsed, others did not: a broken chain would
		 * only show up as failing handshakes later. */
		set_err(err, errlen,
			"%s: cannot parse certificate (%d of the certificates in it are invalid)",
			cert_path, ret);
		return -1;
	}

	errno = 0;
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
	ret = mbedtls_pk_parse_keyfile(&c->key, key_path, NULL, mbedtls_ctr_drbg_random, &c->drbg);
#else
	ret = mbedtls_pk_parse_keyfile(&c->key, key_path, NULL);
#endif
	if (ret == MBEDTLS_ERR_PK_FILE_IO_ERROR)
		return fail(err, errlen, key_path, "read key", ret, io_why());
	if (ret == MBEDTLS_ERR_PK_PASSWORD_REQUIRED) {
		set_err(err, errlen, "%s: key is encrypted; a key without passphrase is needed",
			key_path);
		return -1;
	}
	if (ret != 0)
		return fail(err, errlen, key_path, "parse key", ret, NULL);

#if MBEDTLS_VERSION_NUMBER >= 0x03000000
	ret = mbedtls_pk_check_pair(&c->crt.pk, &c->key, mbedtls_ctr_drbg_random, &c->drbg);
#else
	ret = mbedtls_pk_check_pair(&c->crt.pk, &c->key);
#endif
	if (ret != 0) {
		set_err(err, errlen, "%s: key does not match the certificate %s", key_path,
			cert_path);
		return -1;
	}
	return 0;
}

int tls_check_files(const char *cert_path, const char *key_path, char *err, size_t errlen)
{
	struct creds c;
	int ret;

	creds_init(&c);
	ret = creds_load(&c, cert_path, key_path, err, errlen);
	creds_free(&c);
	return ret;
}

#ifdef TLS_HAVE_TICKETS
/* mbedTLS's own ticket parser; a ticket it opens means the handshake
 * resumes (TLS 1.2: an abbreviated handshake; TLS 1.3: a PSK with ECDHE,
 * no certificate signature), which the log and the benchmark want to know
 * and neither library version tells through its public API. */
static int ticket_parse(void *p, mbedtls_ssl_session *session, unsigned char *buf, size_t len)
{
	struct tls *t = p;
	int ret = mbedtls_ssl_ticket_parse(&t->ticket, session, buf, len);

	if (ret == 0 && t->cur)
		t->cur->resumed = true;
	return ret;
}

/* The two callbacks share one context pointer: ours, around mbedTLS's. */
static int ticket_write(void *p, const mbedtls_ssl_session *session, unsigned char *start,
			const unsigned char *end, size_t *tlen, uint32_t *lifetime)
{
	struct tls *t = p;

	return mbedtls_ssl_ticket_write(&t->ticket, session, start, end, tlen, lifetime);
}

/* AES-256-GCM where the build has it, else ChaCha20-Poly1305: both AEAD
 * with a 256-bit key, which is what mbedtls_ssl_ticket_setup() takes. */
static mbedtls_cipher_type_t ticket_cipher(void)
{
	static const mbedtls_cipher_type_t want[] = { MBEDTLS_CIPHER_AES_256_GCM,
						      MBEDTLS_CIPHER_CHACHA20_POLY1305 };

	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
		if (mbedtls_cipher_info_from_type(want[i]))
			return want[i];
	return MBEDTLS_CIPHER_NONE;
}
#endif

static int configure(struct tls *t, const struct tls_opts *o, char *err, size_t errlen)
{
	size_t n = 0;
	int ret;

	ret = mbedtls_ssl_config_defaults(&t->conf, MBEDTLS_SSL_IS_SERVER,
					  MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
	if (ret != 0)
		return fail(err, errlen, "tls", "set up the configuration", ret, NULL);
	mbedtls_ssl_conf_rng(&t->conf, mbedtls_ctr_drbg_random, &t->c.drbg);

#if MBEDTLS_VERSION_NUMBER >= 0x03020000
#ifdef TLS_HAVE_13
	mbedtls_ssl_conf_min_tls_version(&t->conf, o->min_version == 13 ? MBEDTLS_SSL_VERSION_TLS1_3
									 : MBEDTLS_SSL_VERSION_TLS1_2);
	mbedtls_ssl_conf_max_tls_version(&t->conf, MBEDTLS_SSL_VERSION_TLS1_3);
	/* Resumption keeps forward secrecy: PSK only together with ECDHE. */
	mbedtls_ssl_conf_tls13_key_exchange_modes(&t->conf,
						  MBEDTLS_SSL_TLS1_3_KEY_EXCHANGE_MODE_EPHEMERAL_ALL);
#else
	mbedtls_ssl_conf_min_tls_version(&t->conf, MBEDTLS_SSL_VERSION_TLS1_2);
	mbedtls_ssl_conf_max_tls_version(&t->conf, MBEDTLS_SSL_VERSION_TLS1_2);
#endif
#else
	mbedtls_ssl_conf_min_version(&t->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
				     MBEDTLS_SSL_MINOR_VERSION_3);
	mbedtls_ssl_conf_max_version(&t->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
				     MBEDTLS_SSL_MINOR_VERSION_3);
#endif

	for (size_t i = 0; i < N_WANTED; i++)
		if (mbedtls_ssl_ciphersuite_from_id(wanted_suites[i]))
			t->suites[n++] = wanted_suites[i];
	t->suites[n] = 0;
	if (n == 0) {
		set_err(err, errlen, "tls: this mbedTLS build has no ECDHE AEAD cipher suite");
		return -1;
	}
	mbedtls_ssl_conf_ciphersuites(&t->conf, t->suites);

#if MBEDTLS_VERSION_NUMBER < 0x03000000 && defined(MBEDTLS_ECP_C)
	n = 0;
	for (size_t i = 0; i < N_CURVES; i++)
		if (mbedtls_ecp_curve_info_from_grp_id(wanted_curves[i]))
			t->curves[n++] = wanted_curves[i];
	t->curves[n] = MBEDTLS_ECP_DP_NONE;
	if (n > 0)
		mbedtls_ssl_conf_curves(&t->conf, t->curves);
#endif

#if defined(MBEDTLS_SSL_RENEGOTIATION)
	/* The default already, but a client-started renegotiation is a cheap
	 * way to make a server do public-key work again and again. */
	mbedtls_ssl_conf_renegotiation(&t->conf, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
#endif

	ret = mbedtls_ssl_conf_own_cert(&t->conf, &t->c.crt, &t->c.key);
	if (ret != 0)
		return fail(err, errlen, "tls", "use the certificate", ret, NULL);

	if (o->session_tickets) {
#ifdef TLS_HAVE_TICKETS
		/* The key is drawn from the DRBG and never leaves RAM: a restart
		 * makes every ticket worthless, which costs one full handshake. */
		ret = mbedtls_ssl_ticket_setup(&t->ticket, mbedtls_ctr_drbg_random, &t->c.drbg,
					       ticket_cipher(), TLS_TICKET_LIFETIME);
		if (ret != 0)
			return fail(err, errlen, "tls", "set up session tickets", ret, NULL);
		mbedtls_ssl_conf_session_tickets_cb(&t->conf, ticket_write, ticket_parse, t);
#endif
	}
	return 0;
}

unsigned tls_max_version(void)
{
#ifdef TLS_HAVE_13
	return 13;
#else
	return 12;
#endif
}

const char *tls_library_version(void)
{
	return MBEDTLS_VERSION_STRING_FULL;
}

struct tls *tls_open(const struct tls_opts *o, char *err, size_t errlen)
{
	unsigned max_sessions = o->max_sessions;
	struct tls *t;

	if (o->min_version != 12 && o->min_version != 13) {
		set_err(err, errlen, "tls: min_version must be 1.2 or 1.3");
		return NULL;
	}
	if (o->min_version > tls_max_version()) {
		set_err(err, errlen, "tls: min_version 1.3: %s has no TLS 1.3",
			tls_library_version());
		return NULL;
	}
	if (max_sessions == 0) {
		set_err(err, errlen, "tls: max_sessions must be at least 1");
		return NULL;
	}
	if (max_sessions > INT_MAX) {
		set_err(err, errlen, "tls: max_sessions %u is too large", max_sessions);
		return NULL;
	}
	t = calloc(1, sizeof *t);
	if (!t) {
		set_err(err, errlen, "tls: out of memory");
		return NULL;
	}
	creds_init(&t->c);
	mbedtls_ssl_config_init(&t->conf);
#ifdef TLS_HAVE_TICKETS
	mbedtls_ssl_ticket_init(&t->ticket);
#endif
	t->max = max_sessions;
	t->per_source = o->max_per_source && o->max_per_source < max_sessions ? o->max_per_source
									     : max_sessions;

	if (creds_load(&t->c, o->certificate, o->key, err, errlen) != 0 ||
	    configure(t, o, err, errlen) != 0) {
		tls_free(t);
		return NULL;
	}
	/* Only the small context structs: the I/O buffers (two records' worth
	 * each) come with mbedtls_ssl_setup() when a slot is first used. */
	t->slots = calloc(max_sessions, sizeof *t->slots);
	if (!t->slots) {
		set_err(err, errlen, "tls: out of memory for %u sessions", max_sessions);
		tls_free(t);
		return NULL;
	}
	for (unsigned i = 0; i < max_sessions; i++) {
		mbedtls_ssl_init(&t->slots[i].ssl);
		t->slots[i].fd = -1;
	}
	return t;
}

void tls_free(struct tls *t)
{
	if (!t)
		return;
	if (t->slots) {
		for (unsigned i = 0; i < t->max; i++)
			mbedtls_ssl_free(&t->slots[i].ssl);
		free(t->slots);
	}
	mbedtls_ssl_config_free(&t->conf);
#ifdef TLS_HAVE_TICKETS
	mbedtls_ssl_ticket_free(&t->ticket);
#endif
	creds_free(&t->c);
	free(t);
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
	struct slot *s = ctx;
	int n;

	if (s->fd < 0)
		return MBEDTLS_ERR_NET_INVALID_CONTEXT;
	n = bio_result(send(s->fd, buf, len > INT_MAX ? INT_MAX : len, MSG_NOSIGNAL),
		       MBEDTLS_ERR_SSL_WANT_WRITE, MBEDTLS_ERR_NET_SEND_FAILED);
	/* mbedTLS always hands over everything it holds (out_left): only
	 * a short or blocked send leaves some of it behind. */
	s->out_pending = n == MBEDTLS_ERR_SSL_WANT_WRITE || (n >= 0 && (size_t)n < len);
	return n;
}

static int bio_recv(void *ctx, unsigned char *buf, size_t len)
{
	const struct slot *s = ctx;

	if (s->fd < 0)
		return MBEDTLS_ERR_NET_INVALID_CONTEXT;
	return bio_result(recv(s->fd, buf, len > INT_MAX ? INT_MAX : len, 0),
			  MBEDTLS_ERR_SSL_WANT_READ, MBEDTLS_ERR_NET_RECV_FAILED);
}

static struct slot *slot_get(struct tls *t, int idx)
{
	if (!t || !t->slots || idx < 0 || (unsigned)idx >= t->max || !t->slots[idx].in_use)
		return NULL;
	return &t->slots[idx];
}

static int map_err(int ret)
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

/* The harvest table's notion of a source: one customer gets a whole
 * IPv6 /64, so its host part says nothing. */
static void source_key(const struct ip_addr *a, struct ip_addr *k)
{
	*k = *a;
	if (!ip_is_v4(a))
		memset(k->a + 8, 0, 8);
}

/* A scan of the pool: it is small (max_sessions, default 32), and this
 * runs once per STARTTLS, so no second table to keep in step. */
static unsigned count_source(const struct tls *t, const struct ip_addr *k)
{
	unsigned n = 0;

	for (unsigned i = 0; i < t->max; i++)
		if (t->slots[i].in_use && t->slots[i].has_src &&
		    memcmp(t->slots[i].src.a, k->a, sizeof k->a) == 0)
			n++;
	return n;
}

unsigned tls_source_count(const struct tls *t, const struct ip_addr *peer)
{
	struct ip_addr k;

	if (!t || !t->slots || !peer)
		return 0;
	source_key(peer, &k);
	return count_source(t, &k);
}

int tls_acquire(struct tls *t, int fd)
{
	return tls_acquire_from(t, fd, NULL);
}

int tls_acquire_from(struct tls *t, int fd, const struct ip_addr *peer)
{
	struct slot *s = NULL;
	struct ip_addr k;
	unsigned i;

	if (!t || !t->slots || fd < 0)
		return TLS_POOL_FULL;
	/* The share first: a source over it is told so even when the pool
	 * happens to be full as well. */
	if (peer) {
		source_key(peer, &k);
		if (t->per_source < t->max && count_source(t, &k) >= t->per_source)
			return TLS_SOURCE_FULL;
	}
	if (t->used >= t->max)
		return TLS_POOL_FULL;
	for (i = 0; i < t->max; i++)
		if (!t->slots[i].in_use) {
			s = &t->slots[i];
			break;
		}
	if (!s)
		return TLS_POOL_FULL;
	if (!s->set_up) {
		if (mbedtls_ssl_setup(&s->ssl, &t->conf) != 0) {
			/* Back to a pristine context, so a later acquire
			 * retries instead of using a half-built one. */
			mbedtls_ssl_free(&s->ssl);
			mbedtls_ssl_init(&s->ssl);
			return TLS_POOL_FULL;
		}
		s->set_up = true;
	}
	mbedtls_ssl_set_bio(&s->ssl, s, bio_send, bio_recv, NULL);
	s->fd = fd;
	s->wr_done = 0;
	s->out_pending = false;
	s->resumed = false;
	s->shaken = false;
	s->cn = CN_NONE;
	s->has_src = peer != NULL;
	if (peer)
		s->src = k;
	s->in_use = true;
	t->used++;
	return (int)i;
}

void tls_release(struct tls *t, int idx)
{
	struct slot *s = slot_get(t, idx);

	if (!s)
		return;
	/* Reset keeps the I/O buffers for the next session; only if it fails
	 * (it allocates the handshake state anew) is the context dropped and
	 * set up again on its next use. */
	if (s->set_up && mbedtls_ssl_session_reset(&s->ssl) != 0) {
		mbedtls_ssl_free(&s->ssl);
		mbedtls_ssl_init(&s->ssl);
		s->set_up = false;
	}
	s->fd = -1;
	s->wr_done = 0;
	s->has_src = false;
	s->in_use = false;
	t->used--;
}

unsigned tls_available(const struct tls *t)
{
	return t ? t->max - t->used : 0;
}

int tls_handshake(struct tls *t, int idx)
{
	struct slot *s = slot_get(t, idx);
	int ret;

	if (!s)
		return TLS_ERROR;
	t->cur = s;
	ret = mbedtls_ssl_handshake(&s->ssl);
	t->cur = NULL;
	if (ret == 0)
		s->shaken = true;
	return ret == 0 ? 0 : map_err(ret);
}

bool tls_resumed(struct tls *t, int idx)
{
	struct slot *s = slot_get(t, idx);

	return s && s->resumed;
}

int tls_close_notify(struct tls *t, int idx)
{
	struct slot *s = slot_get(t, idx);

	if (!s)
		return TLS_ERROR;
	/* No session yet: nothing to end (3.x would not even flush). */
	if (!s->shaken)
		return 0;
	/* At most: flush what was left, write the alert, flush it. */
	for (int i = 0; i < 3; i++) {
		int ret;

		if (s->cn == CN_QUEUED && !s->out_pending)
			s->cn = CN_SENT;
		if (s->cn == CN_SENT)
			return 0;
		/* Nothing left from before: this call writes the alert (and
		 * nothing at all before the handshake has finished). */
		if (s->cn == CN_NONE && !s->out_pending)
			s->cn = CN_QUEUED;
		ret = mbedtls_ssl_close_notify(&s->ssl);
		if (ret != 0)
			return map_err(ret);
	}
	return s->cn == CN_SENT || (s->cn == CN_QUEUED && !s->out_pending) ? 0 : TLS_WANT_WRITE;
}

ssize_t tls_read(struct tls *t, int idx, void *buf, size_t len)
{
	struct slot *s = slot_get(t, idx);
	int ret;

	/* A zero-length read would look like the peer closing. */
	if (!s || !buf || len == 0)
		return TLS_ERROR;
	if (len > INT_MAX)
		len = INT_MAX;
	/* 3.x's RECEIVED_NEW_SESSION_TICKET is client-side and
	 * RECEIVED_EARLY_DATA needs early data switched on: neither can come
	 * back here. */
	ret = mbedtls_ssl_read(&s->ssl, buf, len);
	if (ret >= 0)
		return ret;
	ret = map_err(ret);
	return ret == TLS_CLOSED ? 0 : ret;
}

ssize_t tls_write(struct tls *t, int idx, const void *buf, size_t len)
{
	struct slot *s = slot_get(t, idx);
	const unsigned char *p = buf;

	if (!s || (!buf && len))
		return TLS_ERROR;
	if (len > INT_MAX)
		return TLS_ERROR;
	if (s->wr_done > len) /* the caller broke the repeat rule */
		s->wr_done = 0;
	/* mbedtls_ssl_write() takes at most one record (max fragment) per
	 * call: loop until all of len is in. */
	while (s->wr_done < len) {
		int ret = mbedtls_ssl_write(&s->ssl, p + s->wr_done, len - s->wr_done);
		if (ret > 0) {
			s->wr_done += (size_t)ret;
			continue;
		}
		if (ret != MBEDTLS_ERR_SSL_WANT_READ && ret != MBEDTLS_ERR_SSL_WANT_WRITE)
			s->wr_done = 0;
		return ret == 0 ? TLS_ERROR : map_err(ret);
	}
	s->wr_done = 0;
	return (ssize_t)len;
}

size_t tls_pending(struct tls *t, int idx)
{
	struct slot *s = slot_get(t, idx);

	return s ? mbedtls_ssl_get_bytes_avail(&s->ssl) : 0;
}

const char *tls_version_name(struct tls *t, int idx)
{
	struct slot *s = slot_get(t, idx);
	const char *v = s ? mbedtls_ssl_get_version(&s->ssl) : NULL;

	return v ? v : "unknown";
}

const char *tls_cipher_name(struct tls *t, int idx)
{
	struct slot *s = slot_get(t, idx);
	const char *c = s ? mbedtls_ssl_get_ciphersuite(&s->ssl) : NULL;

	return c ? c : "unknown";
}
