/* tls: STARTTLS through mbedTLS from a fixed, lazily set up pool. */
#include "tls.h"
#include "tls_common.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* tls_common.h has included mbedtls/version.h, and with it the build
 * configuration, so every feature test below sees the library's options. */
#include <mbedtls/cipher.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#if defined(MBEDTLS_SSL_SESSION_TICKETS) && defined(MBEDTLS_SSL_TICKET_C)
#include <mbedtls/ssl_ticket.h>
#define TLS_HAVE_TICKETS 1
#endif
#include <mbedtls/x509_crt.h>

struct creds {
	struct tls_rng r;
	mbedtls_x509_crt crt;
	mbedtls_pk_context key;
};

/* Our own fields before mbedTLS's large ones: MIPS16 and Thumb reach
 * the first 128 octets of a struct with shorter instructions. */
struct slot {
	bool in_use;
	bool set_up;
	bool has_src;
	bool resumed;
	struct tls_io io;
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
	struct tls_lists lists;
};

static void creds_init(struct creds *c)
{
	tls_rng_init(&c->r);
	mbedtls_x509_crt_init(&c->crt);
	mbedtls_pk_init(&c->key);
}

static void creds_free(struct creds *c)
{
	mbedtls_pk_free(&c->key);
	mbedtls_x509_crt_free(&c->crt);
	tls_rng_free(&c->r);
}

static int creds_load(struct creds *c, const char *cert_path, const char *key_path, char *err,
		      size_t errlen)
{
	int ret;

	if (!cert_path || !*cert_path || !key_path || !*key_path) {
		tls_set_err(err, errlen, "tls: certificate and key must both be given");
		return -1;
	}
	if (tls_check_file(cert_path, "read certificate", err, errlen) != 0 ||
	    tls_check_file(key_path, "read key", err, errlen) != 0)
		return -1;
	if (tls_rng_seed(&c->r, "tarpitd tls", err, errlen) != 0)
		return -1;

	errno = 0;
	ret = mbedtls_x509_crt_parse_file(&c->crt, cert_path);
	if (ret == MBEDTLS_ERR_X509_FILE_IO_ERROR || ret == MBEDTLS_ERR_PK_FILE_IO_ERROR)
		return tls_fail(err, errlen, cert_path, "read certificate", ret, tls_io_why());
	if (ret < 0)
		return tls_fail(err, errlen, cert_path, "parse certificate", ret, NULL);
	if (ret > 0) {
		/* Some PEM blocks parsed, others did not: a broken chain would
		 * only show up as failing handshakes later. */
		tls_set_err(err, errlen,
			"%s: cannot parse certificate (%d of the certificates in it are invalid)",
			cert_path, ret);
		return -1;
	}

	errno = 0;
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
	ret = mbedtls_pk_parse_keyfile(&c->key, key_path, NULL, mbedtls_ctr_drbg_random, &c->r.drbg);
#else
	ret = mbedtls_pk_parse_keyfile(&c->key, key_path, NULL);
#endif
	if (ret == MBEDTLS_ERR_PK_FILE_IO_ERROR)
		return tls_fail(err, errlen, key_path, "read key", ret, tls_io_why());
	if (ret == MBEDTLS_ERR_PK_PASSWORD_REQUIRED) {
		tls_set_err(err, errlen, "%s: key is encrypted; a key without passphrase is needed",
			key_path);
		return -1;
	}
	if (ret != 0)
		return tls_fail(err, errlen, key_path, "parse key", ret, NULL);

#if MBEDTLS_VERSION_NUMBER >= 0x03000000
	ret = mbedtls_pk_check_pair(&c->crt.pk, &c->key, mbedtls_ctr_drbg_random, &c->r.drbg);
#else
	ret = mbedtls_pk_check_pair(&c->crt.pk, &c->key);
#endif
	if (ret != 0) {
		tls_set_err(err, errlen, "%s: key does not match the certificate %s", key_path,
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
	int ret;

	ret = mbedtls_ssl_config_defaults(&t->conf, MBEDTLS_SSL_IS_SERVER,
					  MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
	if (ret != 0)
		return tls_fail(err, errlen, "tls", "set up the configuration", ret, NULL);
	if (tls_conf_policy(&t->conf, &t->lists, o->min_version, &t->c.r, err, errlen) != 0)
		return -1;

	ret = mbedtls_ssl_conf_own_cert(&t->conf, &t->c.crt, &t->c.key);
	if (ret != 0)
		return tls_fail(err, errlen, "tls", "use the certificate", ret, NULL);

	if (o->session_tickets) {
#ifdef TLS_HAVE_TICKETS
		/* The key is drawn from the DRBG and never leaves RAM: a restart
		 * makes every ticket worthless, which costs one full handshake. */
		ret = mbedtls_ssl_ticket_setup(&t->ticket, mbedtls_ctr_drbg_random, &t->c.r.drbg,
					       ticket_cipher(), TLS_TICKET_LIFETIME);
		if (ret != 0)
			return tls_fail(err, errlen, "tls", "set up session tickets", ret, NULL);
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
		tls_set_err(err, errlen, "tls: min_version must be 1.2 or 1.3");
		return NULL;
	}
	if (o->min_version > tls_max_version()) {
		tls_set_err(err, errlen, "tls: min_version 1.3: %s has no TLS 1.3",
			tls_library_version());
		return NULL;
	}
	if (max_sessions == 0) {
		tls_set_err(err, errlen, "tls: max_sessions must be at least 1");
		return NULL;
	}
	if (max_sessions > INT_MAX) {
		tls_set_err(err, errlen, "tls: max_sessions %u is too large", max_sessions);
		return NULL;
	}
	t = calloc(1, sizeof *t);
	if (!t) {
		tls_set_err(err, errlen, "tls: out of memory");
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
		tls_set_err(err, errlen, "tls: out of memory for %u sessions", max_sessions);
		tls_free(t);
		return NULL;
	}
	for (unsigned i = 0; i < max_sessions; i++) {
		mbedtls_ssl_init(&t->slots[i].ssl);
		t->slots[i].io.fd = -1;
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

static struct slot *slot_get(struct tls *t, int idx)
{
	if (!t || !t->slots || idx < 0 || (unsigned)idx >= t->max || !t->slots[idx].in_use)
		return NULL;
	return &t->slots[idx];
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
	tls_io_bind(&s->ssl, &s->io, fd);
	s->resumed = false;
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
	s->io.fd = -1;
	s->io.wr_done = 0;
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
		s->io.shaken = true;
	return ret == 0 ? 0 : tls_map_err(ret);
}

bool tls_resumed(struct tls *t, int idx)
{
	struct slot *s = slot_get(t, idx);

	return s && s->resumed;
}

int tls_close_notify(struct tls *t, int idx)
{
	struct slot *s = slot_get(t, idx);

	return s ? tls_io_close_notify(&s->ssl, &s->io) : TLS_ERROR;
}

ssize_t tls_read(struct tls *t, int idx, void *buf, size_t len)
{
	struct slot *s = slot_get(t, idx);

	return s ? tls_io_read(&s->ssl, buf, len) : TLS_ERROR;
}

ssize_t tls_write(struct tls *t, int idx, const void *buf, size_t len)
{
	struct slot *s = slot_get(t, idx);

	return s ? tls_io_write(&s->ssl, &s->io, buf, len) : TLS_ERROR;
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
