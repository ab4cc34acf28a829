/* tls: STARTTLS through mbedTLS from a fixed, lazily set up pool. */
#include "tls.h"
#include "tls_common.h"

#include <errno.h>
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

/* What the server keeps per session beside the pool's slot. */
struct slot_info {
	bool has_src;
	bool resumed;
	struct ip_addr src; /* the source's key: IPv4, or IPv6 /64 */
};

struct tls {
	struct tls_pool pool;
	struct slot_info *info; /* pool.max of them, index for index */
	/* The slot whose handshake is running: the ticket callbacks get no
	 * SSL context, and there is one thread. */
	struct slot_info *cur;
	unsigned per_source;
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
	if (tls_pool_check(max_sessions, "tls", err, errlen) != 0)
		return NULL;
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
	t->per_source = o->max_per_source && o->max_per_source < max_sessions ? o->max_per_source
									     : max_sessions;

	if (creds_load(&t->c, o->certificate, o->key, err, errlen) != 0 ||
	    configure(t, o, err, errlen) != 0) {
		tls_free(t);
		return NULL;
	}
	t->info = tls_pool_alloc(&t->pool, max_sessions, sizeof *t->info, "tls", err, errlen);
	if (!t->info) {
		tls_free(t);
		return NULL;
	}
	return t;
}

void tls_free(struct tls *t)
{
	if (!t)
		return;
	tls_pool_free(&t->pool);
	free(t->info);
	mbedtls_ssl_config_free(&t->conf);
#ifdef TLS_HAVE_TICKETS
	mbedtls_ssl_ticket_free(&t->ticket);
#endif
	creds_free(&t->c);
	free(t);
}

static struct tls_slot *slot_get(struct tls *t, int idx)
{
	return t ? tls_pool_get(&t->pool, idx) : NULL;
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

	for (unsigned i = 0; i < t->pool.max; i++)
		if (t->pool.slots[i].in_use && t->info[i].has_src &&
		    memcmp(t->info[i].src.a, k->a, sizeof k->a) == 0)
			n++;
	return n;
}

unsigned tls_source_count(const struct tls *t, const struct ip_addr *peer)
{
	struct ip_addr k;

	if (!t || !t->pool.slots || !peer)
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
	struct slot_info *s;
	struct ip_addr k;
	int i;

	if (!t || !t->pool.slots || fd < 0)
		return TLS_POOL_FULL;
	/* The share first: a source over it is told so even when the pool
	 * happens to be full as well. */
	if (peer) {
		source_key(peer, &k);
		if (t->per_source < t->pool.max && count_source(t, &k) >= t->per_source)
			return TLS_SOURCE_FULL;
	}
	i = tls_pool_find(&t->pool);
	if (i < 0 || tls_slot_setup(&t->pool.slots[i], &t->conf) != 0)
		return TLS_POOL_FULL;
	tls_pool_take(&t->pool, i, fd);
	s = &t->info[i];
	s->resumed = false;
	s->has_src = peer != NULL;
	if (peer)
		s->src = k;
	return i;
}

void tls_release(struct tls *t, int idx)
{
	struct tls_slot *s = slot_get(t, idx);

	if (!s)
		return;
	t->info[idx].has_src = false;
	tls_pool_put(&t->pool, s);
}

unsigned tls_available(const struct tls *t)
{
	return t ? t->pool.max - t->pool.used : 0;
}

int tls_handshake(struct tls *t, int idx)
{
	struct tls_slot *s = slot_get(t, idx);
	int ret;

	if (!s)
		return TLS_ERROR;
	t->cur = &t->info[idx];
	ret = tls_slot_handshake(s);
	t->cur = NULL;
	return ret == 0 ? 0 : tls_map_err(ret);
}

bool tls_resumed(struct tls *t, int idx)
{
	return slot_get(t, idx) && t->info[idx].resumed;
}

int tls_close_notify(struct tls *t, int idx)
{
	return tls_slot_close_notify(slot_get(t, idx));
}

ssize_t tls_read(struct tls *t, int idx, void *buf, size_t len)
{
	return tls_slot_read(slot_get(t, idx), buf, len);
}

ssize_t tls_write(struct tls *t, int idx, const void *buf, size_t len)
{
	return tls_slot_write(slot_get(t, idx), buf, len);
}

size_t tls_pending(struct tls *t, int idx)
{
	return tls_slot_pending(slot_get(t, idx));
}

const char *tls_version_name(struct tls *t, int idx)
{
	return tls_slot_version(slot_get(t, idx));
}

const char *tls_cipher_name(struct tls *t, int idx)
{
	return tls_slot_cipher(slot_get(t, idx));
}
