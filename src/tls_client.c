/* tls_client: STARTTLS towards a next hop, from a fixed, lazily set up pool. */
#include "tls_client.h"
#include "limits.h"
#include "tls_common.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/ssl.h>
#include <mbedtls/x509.h>
#include <mbedtls/x509_crt.h>

/* A build whose mbedTLS has no client side cannot forward over TLS; say
 * so at compile time rather than fail every handshake. */
#if !defined(MBEDTLS_SSL_CLI_C)
#error "tls_client needs MBEDTLS_SSL_CLI_C (firmware/mbedtls_config.h)"
#endif

_Static_assert(TLSC_NAME_MAX <= MBEDTLS_SSL_MAX_HOST_NAME_LEN,
	       "TLSC_NAME_MAX is longer than mbedTLS takes");

#if MBEDTLS_VERSION_NUMBER >= 0x03000000
/* The signature algorithms we offer, in our order of preference, which an
 * OpenSSL server (Postfix, by default) follows. 3.6.6's TLS 1.2 client
 * rejects an RSA-PSS ServerKeyExchange it offered itself (Mbed-TLS/mbedtls
 * PR 10674, fixed after 3.6.6), so with the library's default order
 * (PSS before PKCS#1) a TLS 1.2-only next hop with an RSA certificate
 * fails every handshake; PKCS#1 first lets it choose that instead. TLS 1.3
 * forbids PKCS#1 in CertificateVerify, so a 1.3 server still signs with
 * PSS, and PKCS#1 there is for the certificates. What the build lacks is
 * left out of the hello by mbedTLS. */
static const uint16_t sig_algs[] = {
	MBEDTLS_TLS1_3_SIG_ECDSA_SECP256R1_SHA256,
	MBEDTLS_TLS1_3_SIG_ECDSA_SECP384R1_SHA384,
	MBEDTLS_TLS1_3_SIG_ECDSA_SECP521R1_SHA512,
	MBEDTLS_TLS1_3_SIG_RSA_PKCS1_SHA256,
	MBEDTLS_TLS1_3_SIG_RSA_PKCS1_SHA384,
	MBEDTLS_TLS1_3_SIG_RSA_PKCS1_SHA512,
	MBEDTLS_TLS1_3_SIG_RSA_PSS_RSAE_SHA256,
	MBEDTLS_TLS1_3_SIG_RSA_PSS_RSAE_SHA384,
	MBEDTLS_TLS1_3_SIG_RSA_PSS_RSAE_SHA512,
	MBEDTLS_TLS1_3_SIG_NONE,
};
#endif

/* A CA chain one or more next hops are checked against. */
struct profile {
	mbedtls_x509_crt ca;
};

/* What the client keeps per session beside the pool's slot; our own
 * fields before mbedTLS's large one (tls_common.h). Each slot has its own
 * config (a few hundred octets beside the ~40 KB of record buffers): a
 * context keeps the config it was set up with, and mbedTLS has no public
 * call to give it another, so a profile is applied by pointing the slot's
 * config at its chain between two sessions. */
struct cslot {
	bool name_known; /* name holds what mbedtls_ssl_set_hostname() has */
	uint8_t profile;
	int err;         /* the failed handshake's mbedTLS error, or 0 */
	uint32_t vflags; /* its certificate verification flags */
	mbedtls_ssl_config conf;
	/* Last: only the strcmp on acquire touches it. Kept so that a slot
	 * reused for the same next hop does not allocate the name again. */
	char name[TLSC_NAME_MAX + 1];
};

struct tls_client {
	struct tls_pool pool;
	struct cslot *info; /* pool.max of them, index for index */
	unsigned nprofiles;
	struct tls_rng rng;
	struct tls_lists lists;
	char errbuf[TLSC_ERR_MAX];
	struct profile profiles[TLSC_PROFILES_MAX]; /* [0]: no verification, no chain */
};

struct tls_client *tlsc_open(unsigned max_sessions, char *err, size_t errlen)
{
	struct tls_client *t;

	if (tls_pool_check(max_sessions, "tls client", err, errlen) != 0)
		return NULL;
	t = calloc(1, sizeof *t);
	if (!t) {
		tls_set_err(err, errlen, "tls client: out of memory");
		return NULL;
	}
	tls_rng_init(&t->rng);
	for (unsigned i = 0; i < TLSC_PROFILES_MAX; i++)
		mbedtls_x509_crt_init(&t->profiles[i].ca);
	t->nprofiles = 1;
	/* The DRBG before the slots, so a failure frees nothing big. */
	if (tls_rng_seed(&t->rng, "tarpitd tls client", err, errlen) != 0) {
		tlsc_free(t);
		return NULL;
	}
	/* Only the slot structs: configs and contexts are set up (and the
	 * record buffers allocated) when a slot is first used. */
	t->info = tls_pool_alloc(&t->pool, max_sessions, sizeof *t->info, "tls client", err,
				 errlen);
	if (!t->info) {
		tlsc_free(t);
		return NULL;
	}
	for (unsigned i = 0; i < max_sessions; i++)
		mbedtls_ssl_config_init(&t->info[i].conf);
	return t;
}

void tlsc_free(struct tls_client *t)
{
	if (!t)
		return;
	/* The contexts before the configs they point to. */
	tls_pool_free(&t->pool);
	if (t->info) {
		for (unsigned i = 0; i < t->pool.max; i++)
			mbedtls_ssl_config_free(&t->info[i].conf);
		free(t->info);
	}
	for (unsigned i = 0; i < TLSC_PROFILES_MAX; i++)
		mbedtls_x509_crt_free(&t->profiles[i].ca);
	tls_rng_free(&t->rng);
	free(t);
}

int tlsc_profile(struct tls_client *t, const char *ca_file, char *err, size_t errlen)
{
	struct profile *p;
	int ret;

	if (!t) {
		tls_set_err(err, errlen, "tls client: not open");
		return -1;
	}
	if (!ca_file || !*ca_file)
		return 0;
	if (t->nprofiles >= TLSC_PROFILES_MAX) {
		tls_set_err(err, errlen, "%s: cannot load CA file (more than %d CA files)", ca_file,
			    TLSC_PROFILES_MAX - 1);
		return -1;
	}
	if (tls_check_file(ca_file, "read CA file", err, errlen) != 0)
		return -1;
	p = &t->profiles[t->nprofiles];
	errno = 0;
	ret = mbedtls_x509_crt_parse_file(&p->ca, ca_file);
	if (ret == MBEDTLS_ERR_X509_FILE_IO_ERROR || ret == MBEDTLS_ERR_PK_FILE_IO_ERROR)
		ret = tls_fail(err, errlen, ca_file, "read CA file", ret, tls_io_why());
	else if (ret < 0)
		ret = tls_fail(err, errlen, ca_file, "parse CA file", ret, NULL);
	else if (ret > 0) {
		/* A chain with a broken member would only show up as next
		 * hops failing verification later. */
		tls_set_err(err, errlen,
			    "%s: cannot parse CA file (%d of the certificates in it are invalid)",
			    ca_file, ret);
		ret = -1;
	}
	if (ret != 0) {
		mbedtls_x509_crt_free(&p->ca);
		mbedtls_x509_crt_init(&p->ca);
		return -1;
	}
	return (int)t->nprofiles++;
}

static struct tls_slot *slot_get(struct tls_client *t, int idx)
{
	return t ? tls_pool_get(&t->pool, idx) : NULL;
}

/* With its context dropped (tls_slot_drop), a slot's config goes too:
 * the next acquire sets both up again instead of using a half-built one. */
static void conf_drop(struct cslot *x)
{
	mbedtls_ssl_config_free(&x->conf);
	mbedtls_ssl_config_init(&x->conf);
	x->name_known = false;
}

static int conf_setup(struct tls_client *t, struct cslot *x)
{
	if (mbedtls_ssl_config_defaults(&x->conf, MBEDTLS_SSL_IS_CLIENT,
					MBEDTLS_SSL_TRANSPORT_STREAM,
					MBEDTLS_SSL_PRESET_DEFAULT) != 0 ||
	    tls_conf_policy(&x->conf, &t->lists, 12, &t->rng, NULL, 0) != 0)
		return -1;
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
	mbedtls_ssl_conf_sig_algs(&x->conf, sig_algs);
#endif
#if defined(MBEDTLS_SSL_SESSION_TICKETS)
	/* No session is kept between connections, so a ticket would only
	 * cost the next hop work and us memory. */
	mbedtls_ssl_conf_session_tickets(&x->conf, MBEDTLS_SSL_SESSION_TICKETS_DISABLED);
#endif
	return 0;
}

int tlsc_acquire(struct tls_client *t, int profile, int fd, const char *server_name)
{
	struct tls_slot *s;
	struct cslot *x;
	size_t nlen = server_name ? strlen(server_name) : 0;
	int i;

	if (!t || !t->pool.slots || fd < 0 || profile < 0 || (unsigned)profile >= t->nprofiles ||
	    nlen > TLSC_NAME_MAX)
		return TLS_ERROR;
	i = tls_pool_find(&t->pool);
	if (i < 0)
		return -1;
	s = &t->pool.slots[i];
	x = &t->info[i];
	if (!s->set_up && (conf_setup(t, x) != 0 || tls_slot_setup(s, &x->conf) != 0)) {
		conf_drop(x);
		return -1;
	}
	/* Between sessions, so no context is using the config right now. */
	if (profile == 0) {
		mbedtls_ssl_conf_authmode(&x->conf, MBEDTLS_SSL_VERIFY_NONE);
		mbedtls_ssl_conf_ca_chain(&x->conf, NULL, NULL);
	} else {
		mbedtls_ssl_conf_authmode(&x->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
		mbedtls_ssl_conf_ca_chain(&x->conf, &t->profiles[profile].ca, NULL);
	}
	/* The name survives a session reset: set it (an allocation inside
	 * mbedTLS) only when it changes. NULL means no SNI and no name check
	 * (3.6 wants that said explicitly before a verified handshake). */
	if (!x->name_known || strcmp(x->name, nlen ? server_name : "") != 0) {
		x->name_known = false;
		if (mbedtls_ssl_set_hostname(&s->ssl, nlen ? server_name : NULL) != 0)
			return -1;
		memcpy(x->name, nlen ? server_name : "", nlen + 1);
		x->name_known = true;
	}
	tls_pool_take(&t->pool, i, fd);
	x->profile = (uint8_t)profile;
	x->err = 0;
	x->vflags = 0;
	return i;
}

void tlsc_release(struct tls_client *t, int idx)
{
	struct tls_slot *s = slot_get(t, idx);

	if (s && tls_pool_put(&t->pool, s))
		conf_drop(&t->info[idx]);
}

unsigned tlsc_available(const struct tls_client *t)
{
	return t ? t->pool.max - t->pool.used : 0;
}

int tlsc_handshake(struct tls_client *t, int idx)
{
	struct tls_slot *s = slot_get(t, idx);
	int ret, r;

	if (!s)
		return TLS_ERROR;
	ret = tls_slot_handshake(s);
	if (ret == 0)
		return 0;
	r = tls_map_err(ret);
	if (r == TLS_WANT_READ || r == TLS_WANT_WRITE)
		return r;
	/* Kept now: the release resets the context and its flags with it. */
	t->info[idx].err = ret;
	t->info[idx].vflags = mbedtls_ssl_get_verify_result(&s->ssl);
	return TLS_ERROR;
}

/* Appends ", what" (or "what" first) to the verification message. */
static void add_reason(char *buf, size_t len, bool *first, const char *what)
{
	size_t n = strlen(buf);

	if (n + 1 < len)
		snprintf(buf + n, len - n, "%s%s", *first ? "" : ", ", what);
	*first = false;
}

static void verify_text(const struct cslot *s, char *buf, size_t len)
{
	/* The flags a misconfigured or impersonated next hop shows; the
	 * rest by number (they are in mbedtls/x509.h). */
	static const struct {
		uint32_t flag;
		const char *what;
	} reasons[] = {
		{ MBEDTLS_X509_BADCERT_NOT_TRUSTED, "not trusted" },
		{ MBEDTLS_X509_BADCERT_EXPIRED, "expired" },
		{ MBEDTLS_X509_BADCERT_FUTURE, "not yet valid" },
		{ MBEDTLS_X509_BADCERT_REVOKED, "revoked" },
		{ MBEDTLS_X509_BADCERT_MISSING, "no certificate" },
		{ MBEDTLS_X509_BADCERT_KEY_USAGE, "key usage not for TLS" },
		{ MBEDTLS_X509_BADCERT_EXT_KEY_USAGE, "key usage not for TLS" },
		{ MBEDTLS_X509_BADCERT_BAD_MD, "weak signature hash" },
		{ MBEDTLS_X509_BADCERT_BAD_KEY, "weak key" },
	};
	uint32_t left = s->vflags;
	bool first = true;
	char tmp[TLSC_NAME_MAX + 32];

	snprintf(buf, len, "certificate verification failed: ");
	if (left & MBEDTLS_X509_BADCERT_CN_MISMATCH) {
		snprintf(tmp, sizeof tmp, "name mismatch (expected %s)", s->name);
		add_reason(buf, len, &first, tmp);
		left &= ~(uint32_t)MBEDTLS_X509_BADCERT_CN_MISMATCH;
	}
	for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
		if (left & reasons[i].flag) {
			/* Both key usage flags read the same: say it once. */
			if (reasons[i].flag != MBEDTLS_X509_BADCERT_EXT_KEY_USAGE ||
			    !(s->vflags & MBEDTLS_X509_BADCERT_KEY_USAGE))
				add_reason(buf, len, &first, reasons[i].what);
			left &= ~reasons[i].flag;
		}
	if (left) {
		snprintf(tmp, sizeof tmp, "flags 0x%x", (unsigned)left);
		add_reason(buf, len, &first, tmp);
	}
}

const char *tlsc_error(struct tls_client *t, int idx)
{
	const struct cslot *s = slot_get(t, idx) ? &t->info[idx] : NULL;
	char *buf;

	if (!s || s->err == 0)
		return "";
	buf = t->errbuf;
	if (s->err == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED && s->vflags && s->vflags != UINT32_MAX) {
		verify_text(s, buf, sizeof t->errbuf);
	} else if (tls_map_err(s->err) == TLS_CLOSED) {
		snprintf(buf, sizeof t->errbuf, "handshake failed: connection closed by the peer");
	} else {
		char msg[TLSC_ERR_MAX - 24]; /* room for the prefix */

		tls_strerror(s->err, msg, sizeof msg);
		snprintf(buf, sizeof t->errbuf, "handshake failed: %s", msg);
	}
	/* mbedTLS text and a configured name: printable ASCII only. */
	for (char *p = buf; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			*p = '?';
	return buf;
}

ssize_t tlsc_read(struct tls_client *t, int idx, void *buf, size_t len)
{
	return tls_slot_read(slot_get(t, idx), buf, len);
}

ssize_t tlsc_write(struct tls_client *t, int idx, const void *buf, size_t len)
{
	return tls_slot_write(slot_get(t, idx), buf, len);
}

int tlsc_close_notify(struct tls_client *t, int idx)
{
	return tls_slot_close_notify(slot_get(t, idx));
}

size_t tlsc_pending(struct tls_client *t, int idx)
{
	return tls_slot_pending(slot_get(t, idx));
}

const char *tlsc_version_name(struct tls_client *t, int idx)
{
	return tls_slot_version(slot_get(t, idx));
}

const char *tlsc_cipher_name(struct tls_client *t, int idx)
{
	return tls_slot_cipher(slot_get(t, idx));
}
