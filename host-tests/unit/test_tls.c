/* test_tls: the STARTTLS pool against a real mbedTLS client over socketpairs,
 * with throwaway certificates made by openssl at start. */
#include "check.h"
#include "tls.h"
#include "tls_fixture.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mbedtls/version.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ciphersuites.h>

/* The pool as most tests want it: 1.2 up, tickets on, no per-source share. */
static struct tls *open_pool(const char *cert, const char *key, unsigned max, char *err, size_t errlen)
{
	return tls_open(&(struct tls_opts){ .certificate = cert, .key = key, .max_sessions = max,
					    .min_version = 12, .session_tickets = true },
			err, errlen);
}
static char ec_cert[128], ec_key[128], ec2_key[128], rsa_cert[128], rsa_key[128];
static char enc_key[128], garbage[128], missing[128], fifo[128], huge[128];

/* TEST_TLS_VERBOSE=1: say why a handshake failed (many fail on purpose). */
static bool verbose;
static mbedtls_entropy_context cl_entropy;
static mbedtls_ctr_drbg_context cl_drbg;

struct client {
	mbedtls_ssl_config conf;
	mbedtls_ssl_context ssl;
	int fd;
};

enum { CL_PLAIN, CL_CBC_ONLY, CL_TLS11, CL_FRAG512, CL_RENEGO, CL_TLS12, CL_TICKET13 };

#if MBEDTLS_VERSION_NUMBER >= 0x03060000 && defined(MBEDTLS_SSL_PROTO_TLS1_3) && \
	defined(MBEDTLS_SSL_SESSION_TICKETS)
#define HAVE_TICKET13 1
#endif

static int make_files(void)
{
	char cmd[1024];
	FILE *f;

	if (fixture_dir("/tmp/tarpitd-tls-XXXXXX") != 0)
		return -1;
	path(ec_cert, sizeof ec_cert, "ec_cert.pem");
	path(ec_key, sizeof ec_key, "ec_key.pem");
	path(ec2_key, sizeof ec2_key, "ec2_key.pem");
	path(rsa_cert, sizeof rsa_cert, "rsa_cert.pem");
	path(rsa_key, sizeof rsa_key, "rsa_key.pem");
	path(enc_key, sizeof enc_key, "enc_key.pem");
	path(garbage, sizeof garbage, "garbage.pem");
	path(missing, sizeof missing, "missing.pem");
	path(fifo, sizeof fifo, "fifo.pem");
	path(huge, sizeof huge, "huge.pem");

	snprintf(cmd, sizeof cmd,
		 "cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
		 "-nodes -keyout ec_key.pem -out ec_cert.pem -days 2 -subj /CN=localhost "
		 ">/dev/null 2>&1 && "
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
		 "-nodes -keyout ec2_key.pem -out ec2_cert.pem -days 2 -subj /CN=localhost "
		 ">/dev/null 2>&1 && "
		 "openssl req -x509 -newkey rsa:2048 -nodes -keyout rsa_key.pem -out rsa_cert.pem "
		 "-days 2 -subj /CN=localhost >/dev/null 2>&1 && "
		 "openssl pkey -in ec_key.pem -aes256 -passout pass:secret -out enc_key.pem "
		 ">/dev/null 2>&1",
		 dir);
	if (run(cmd) != 0)
		return -1;
	if (write_text(garbage, "-----BEGIN CERTIFICATE-----\nthis is not base64 at all!\n"
				"-----END CERTIFICATE-----\n") != 0)
		return -1;
	if (mkfifo(fifo, 0600) != 0)
		return -1;
	f = fopen(huge, "w");
	if (!f)
		return -1;
	fseek(f, 2 * 1024 * 1024, SEEK_SET);
	fputc('\n', f);
	fclose(f);
	return 0;
}

static int cl_send(void *ctx, const unsigned char *buf, size_t len)
{
	struct client *c = ctx;
	ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);

	if (n >= 0)
		return (int)n;
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return MBEDTLS_ERR_SSL_WANT_WRITE;
	return MBEDTLS_ERR_NET_SEND_FAILED;
}

static int cl_recv(void *ctx, unsigned char *buf, size_t len)
{
	struct client *c = ctx;
	ssize_t n = recv(c->fd, buf, len, 0);

	if (n >= 0)
		return (int)n;
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return MBEDTLS_ERR_SSL_WANT_READ;
	if (errno == ECONNRESET)
		return MBEDTLS_ERR_NET_CONN_RESET;
	return MBEDTLS_ERR_NET_RECV_FAILED;
}

static const int cbc_only[] = { MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
				MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256, 0 };

static int client_open(struct client *c, int fd, int mode)
{
	mbedtls_ssl_config_init(&c->conf);
	mbedtls_ssl_init(&c->ssl);
	c->fd = fd;
	if (mbedtls_ssl_config_defaults(&c->conf, MBEDTLS_SSL_IS_CLIENT,
					MBEDTLS_SSL_TRANSPORT_STREAM,
					MBEDTLS_SSL_PRESET_DEFAULT) != 0)
		return -1;
	mbedtls_ssl_conf_authmode(&c->conf, MBEDTLS_SSL_VERIFY_NONE);
	mbedtls_ssl_conf_rng(&c->conf, mbedtls_ctr_drbg_random, &cl_drbg);
	switch (mode) {
	case CL_CBC_ONLY:
		mbedtls_ssl_conf_ciphersuites(&c->conf, cbc_only);
		break;
#if MBEDTLS_VERSION_NUMBER < 0x03000000 && defined(MBEDTLS_SSL_PROTO_TLS1_1)
	case CL_TLS11:
		mbedtls_ssl_conf_min_version(&c->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
					     MBEDTLS_SSL_MINOR_VERSION_2);
		mbedtls_ssl_conf_max_version(&c->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
					     MBEDTLS_SSL_MINOR_VERSION_2);
		break;
#endif
#if defined(MBEDTLS_SSL_MAX_FRAGMENT_LENGTH)
	case CL_FRAG512:
		mbedtls_ssl_conf_max_frag_len(&c->conf, MBEDTLS_SSL_MAX_FRAG_LEN_512);
		break;
#endif
#if defined(MBEDTLS_SSL_RENEGOTIATION)
	case CL_RENEGO:
		mbedtls_ssl_conf_renegotiation(&c->conf, MBEDTLS_SSL_RENEGOTIATION_ENABLED);
		break;
#endif
#if MBEDTLS_VERSION_NUMBER >= 0x03020000
	case CL_TLS12:
		mbedtls_ssl_conf_max_tls_version(&c->conf, MBEDTLS_SSL_VERSION_TLS1_2);
		break;
#endif
#ifdef HAVE_TICKET13
	case CL_TICKET13:
		/* The ticket comes after the handshake; mbedtls_ssl_read()
		 * says so instead of dropping it. */
		mbedtls_ssl_conf_min_tls_version(&c->conf, MBEDTLS_SSL_VERSION_TLS1_3);
		mbedtls_ssl_conf_tls13_enable_signal_new_session_tickets(
			&c->conf, MBEDTLS_SSL_TLS1_3_SIGNAL_NEW_SESSION_TICKETS_ENABLED);
		break;
#endif
	default:
		break;
	}
	if (mbedtls_ssl_setup(&c->ssl, &c->conf) != 0)
		return -1;
	mbedtls_ssl_set_bio(&c->ssl, c, cl_send, cl_recv, NULL);
	return 0;
}

static void client_close(struct client *c)
{
	mbedtls_ssl_free(&c->ssl);
	mbedtls_ssl_config_free(&c->conf);
}

static bool cl_wants(int r)
{
	return r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE;
}

/* Alternates the two sides until both are done: 0, or -1 with the
 * server's last result in *srv when a side failed or it did not finish. */
static int drive(struct tls *t, int idx, struct client *c, int *srv)
{
	bool sdone = false, cdone = false;

	*srv = 1;
	for (int i = 0; i < 200 && !(sdone && cdone); i++) {
		if (!sdone) {
			int r = tls_handshake(t, idx);
			*srv = r;
			if (r == 0)
				sdone = true;
			else if (!wants(r)) {
				if (verbose)
					printf("tls: drive: the server failed: %d\n", r);
				return -1;
			}
		}
		if (!cdone) {
			int r = mbedtls_ssl_handshake(&c->ssl);
			if (r == 0)
				cdone = true;
			else if (!cl_wants(r)) {
				if (verbose)
					printf("tls: drive: the client failed: -0x%04x\n", (unsigned)-r);
				return -1;
			}
		}
	}
	if (verbose && !(sdone && cdone))
		printf("tls: drive: server %d, client %s\n", *srv, cdone ? "done" : "not done");
	return sdone && cdone ? 0 : -1;
}

/* Calls the server until it leaves WANT_READ/WANT_WRITE (at most n times). */
static int settle(struct tls *t, int idx, int n)
{
	int r = TLS_WANT_READ;

	while (n-- > 0 && wants(r))
		r = tls_handshake(t, idx);
	return r;
}

static void test_files(void)
{
	char err[256];
	struct tls *t;

	CHECK(tls_check_files(ec_cert, ec_key, err, sizeof err) == 0);
	CHECK(tls_check_files(rsa_cert, rsa_key, err, sizeof err) == 0);

	err[0] = 0;
	CHECK(tls_check_files(ec_cert, ec2_key, err, sizeof err) == -1);
	CHECK(strstr(err, "key does not match the certificate") != NULL);
	CHECK(strstr(err, ec2_key) != NULL);
	err[0] = 0;
	CHECK(tls_check_files(ec_cert, rsa_key, err, sizeof err) == -1);
	CHECK(strstr(err, "key does not match the certificate") != NULL);
	err[0] = 0;
	CHECK(tls_check_files(rsa_cert, ec_key, err, sizeof err) == -1);
	CHECK(strstr(err, "key does not match the certificate") != NULL);

	err[0] = 0;
	CHECK(tls_check_files(missing, ec_key, err, sizeof err) == -1);
	CHECK(strncmp(err, missing, strlen(missing)) == 0);
	CHECK(strstr(err, "cannot read certificate (No such file or directory)") != NULL);
	err[0] = 0;
	CHECK(tls_check_files(ec_cert, missing, err, sizeof err) == -1);
	CHECK(strstr(err, "cannot read key") != NULL);
	CHECK(strncmp(err, missing, strlen(missing)) == 0);

	err[0] = 0;
	CHECK(tls_check_files(garbage, ec_key, err, sizeof err) == -1);
	CHECK(strstr(err, "cannot parse certificate (") != NULL);
	CHECK(strchr(err, '\n') == NULL);
	err[0] = 0;
	CHECK(tls_check_files(ec_cert, garbage, err, sizeof err) == -1);
	CHECK(strstr(err, "cannot parse key") != NULL);
	err[0] = 0;
	/* swapped: the key file given as the certificate and vice versa */
	CHECK(tls_check_files(ec_key, ec_cert, err, sizeof err) == -1);
	CHECK(strstr(err, "cannot parse certificate") != NULL);
	err[0] = 0;
	CHECK(tls_check_files(ec_cert, enc_key, err, sizeof err) == -1);
	CHECK(strstr(err, "encrypted") != NULL);
	err[0] = 0;
	CHECK(tls_check_files(dir, ec_key, err, sizeof err) == -1); /* a directory */
	CHECK(strstr(err, "cannot read certificate (not a regular file)") != NULL);
	err[0] = 0;
	CHECK(tls_check_files(ec_cert, fifo, err, sizeof err) == -1); /* would block */
	CHECK(strstr(err, "cannot read key (not a regular file)") != NULL);
	err[0] = 0;
	CHECK(tls_check_files(huge, ec_key, err, sizeof err) == -1);
	CHECK(strstr(err, "cannot read certificate (larger than") != NULL);
	err[0] = 0;
	CHECK(tls_check_files("", ec_key, err, sizeof err) == -1);
	CHECK(err[0] != 0);
	CHECK(tls_check_files(NULL, NULL, NULL, 0) == -1); /* no err buffer: no crash */
	/* a tiny buffer is truncated, not overrun */
	char small[8];
	memset(small, 'x', sizeof small);
	CHECK(tls_check_files(missing, ec_key, small, sizeof small) == -1);
	CHECK(strlen(small) == sizeof small - 1);

	t = open_pool(ec_cert, ec_key, 4, err, sizeof err);
	CHECK(t != NULL);
	CHECK(tls_available(t) == 4);
	tls_free(t);

	err[0] = 0;
	CHECK(open_pool(ec_cert, ec2_key, 4, err, sizeof err) == NULL);
	CHECK(strstr(err, "key does not match the certificate") != NULL);
	err[0] = 0;
	CHECK(open_pool(missing, ec_key, 4, err, sizeof err) == NULL);
	CHECK(strstr(err, "cannot read certificate") != NULL);
	err[0] = 0;
	CHECK(open_pool(garbage, ec_key, 4, err, sizeof err) == NULL);
	CHECK(strstr(err, "cannot parse certificate") != NULL);
	err[0] = 0;
	CHECK(open_pool(ec_cert, ec_key, 0, err, sizeof err) == NULL);
	CHECK(strstr(err, "max_sessions") != NULL);
	tls_free(NULL);
}

static void test_pool(void)
{
	char err[256];
	struct tls *t = open_pool(ec_cert, ec_key, 2, err, sizeof err);
	int a, b;

	CHECK(t != NULL);
	if (!t)
		return;
	CHECK(tls_available(t) == 2);
	CHECK(tls_acquire(t, -1) == -1);
	CHECK(tls_available(t) == 2);
	a = tls_acquire(t, 100);
	b = tls_acquire(t, 101);
	CHECK(a == 0);
	CHECK(b == 1);
	CHECK(tls_available(t) == 0);
	CHECK(tls_acquire(t, 102) == -1);
	tls_release(t, a);
	CHECK(tls_available(t) == 1);
	tls_release(t, a); /* twice: ignored */
	tls_release(t, -1);
	tls_release(t, 2);
	tls_release(t, 1000000);
	CHECK(tls_available(t) == 1);
	CHECK(tls_acquire(t, 103) == 0); /* lowest free first */
	CHECK(tls_acquire(t, 104) == -1);
	tls_release(t, 1);
	CHECK(tls_acquire(t, 105) == 1);
	tls_release(t, 0);
	tls_release(t, 1);
	CHECK(tls_available(t) == 2);

	/* unbound or out-of-range indexes are refused, not dereferenced */
	char buf[8];
	CHECK(tls_handshake(t, 0) == TLS_ERROR);
	CHECK(tls_handshake(t, 7) == TLS_ERROR);
	CHECK(tls_handshake(t, -1) == TLS_ERROR);
	CHECK(tls_read(t, 1, buf, sizeof buf) == TLS_ERROR);
	CHECK(tls_write(t, 1, "x", 1) == TLS_ERROR);
	CHECK(tls_pending(t, 5) == 0);
	CHECK_STR(tls_version_name(t, 9), "unknown");
	CHECK_STR(tls_cipher_name(t, -3), "unknown");
	CHECK(tls_handshake(NULL, 0) == TLS_ERROR);
	CHECK(tls_acquire(NULL, 3) == -1);
	CHECK(tls_available(NULL) == 0);
	tls_free(t);
}

static void client_to_server_records(struct tls *t, int idx, struct client *c)
{
	char buf[64];
	ssize_t n;

	/* two records; the server reads a small part of the first */
	CHECK(mbedtls_ssl_write(&c->ssl, (const unsigned char *)"EHLO a\r\n", 8) == 8);
	CHECK(mbedtls_ssl_write(&c->ssl, (const unsigned char *)"MAIL FROM:<x@y>\r\n", 17) == 17);
	n = tls_read(t, idx, buf, 4);
	CHECK(n == 4);
	CHECK(memcmp(buf, "EHLO", 4) == 0);
	CHECK(tls_pending(t, idx) == 4);
	n = tls_read(t, idx, buf, sizeof buf);
	CHECK(n == 4); /* the rest of that record only */
	CHECK(n == 4 && memcmp(buf, " a\r\n", 4) == 0);
	CHECK(tls_pending(t, idx) == 0);
	n = tls_read(t, idx, buf, sizeof buf);
	CHECK(n == 17);
	CHECK(n == 17 && memcmp(buf, "MAIL FROM:<x@y>\r\n", 17) == 0);
	CHECK(tls_read(t, idx, buf, sizeof buf) == TLS_WANT_READ);
	CHECK(tls_read(t, idx, buf, 0) == TLS_ERROR);
}

static void server_to_client(struct tls *t, int idx, struct client *c)
{
	unsigned char buf[64];
	int n;

	CHECK(tls_write(t, idx, "250 ok\r\n", 8) == 8);
	CHECK(tls_write(t, idx, "", 0) == 0);
	n = mbedtls_ssl_read(&c->ssl, buf, sizeof buf);
	CHECK(n == 8);
	CHECK(n == 8 && memcmp(buf, "250 ok\r\n", 8) == 0);
	CHECK(mbedtls_ssl_read(&c->ssl, buf, sizeof buf) == MBEDTLS_ERR_SSL_WANT_READ);
}

static void test_handshake_ec(void)
{
	char err[256];
	struct tls *t = open_pool(ec_cert, ec_key, 1, err, sizeof err);
	struct client c;
	int sv[2], idx, srv;
	char buf[16];

	CHECK(t != NULL);
	if (!t || pair(sv) != 0)
		return;
	idx = tls_acquire(t, sv[0]);
	CHECK(idx == 0);
	CHECK(tls_available(t) == 0);
	/* nothing sent yet: the server waits, it does not block */
	CHECK(tls_handshake(t, idx) == TLS_WANT_READ);
	CHECK(client_open(&c, sv[1], CL_PLAIN) == 0);
	CHECK(drive(t, idx, &c, &srv) == 0);
	CHECK(srv == 0);
	CHECK(tls_handshake(t, idx) == 0); /* done stays done */
	const char *v = tls_version_name(t, idx);
	CHECK(strcmp(v, "TLSv1.2") == 0 || strcmp(v, "TLSv1.3") == 0);
	const char *cs = tls_cipher_name(t, idx);
	CHECK(strstr(cs, "ECDHE-ECDSA") != NULL || strncmp(cs, "TLS1-3", 6) == 0);
	CHECK(strstr(cs, "GCM") != NULL || strstr(cs, "CHACHA20-POLY1305") != NULL);
	printf("tls: EC P-256 handshake: %s %s\n", v, cs);

	CHECK(tls_read(t, idx, buf, sizeof buf) == TLS_WANT_READ);
	CHECK(tls_pending(t, idx) == 0);
	server_to_client(t, idx, &c);
	client_to_server_records(t, idx, &c);

	/* close_notify from the client is a clean close */
	CHECK(mbedtls_ssl_close_notify(&c.ssl) == 0);
	CHECK(tls_read(t, idx, buf, sizeof buf) == 0);
	client_close(&c);
	close(sv[1]);
	tls_release(t, idx);
	close(sv[0]);
	CHECK(tls_available(t) == 1);

	/* the same slot, reset, does a second full handshake; the client asks
	 * for 512-octet records so one tls_write needs several, and a small
	 * send buffer makes them block half-way */
	if (pair(sv) != 0) {
		tls_free(t);
		return;
	}
	int sndbuf = 1024;
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
	idx = tls_acquire(t, sv[0]);
	CHECK(idx == 0);
	CHECK(client_open(&c, sv[1], CL_FRAG512) == 0);
	CHECK(drive(t, idx, &c, &srv) == 0);

	static unsigned char big[16384], got[16384 + 64];
	for (size_t i = 0; i < sizeof big; i++)
		big[i] = (unsigned char)(i * 7 + i / 251);
	ssize_t w = TLS_WANT_WRITE;
	size_t have = 0;
	int blocked = 0;
	for (int round = 0; round < 100000 && (w != (ssize_t)sizeof big || have < sizeof big);
	     round++) {
		if (w != (ssize_t)sizeof big) {
			w = tls_write(t, idx, big, sizeof big);
			if (w == TLS_WANT_WRITE)
				blocked++;
			else if (w != (ssize_t)sizeof big)
				break;
		}
		int r = mbedtls_ssl_read(&c.ssl, got + have, sizeof got - have);
		if (r > 0)
			have += (size_t)r;
		else if (r != MBEDTLS_ERR_SSL_WANT_READ)
			break;
	}
	CHECK(w == (ssize_t)sizeof big);
	CHECK(blocked > 0);
	CHECK(have == sizeof big);
	CHECK(memcmp(got, big, sizeof big) == 0);
	CHECK(mbedtls_ssl_read(&c.ssl, got, sizeof got) == MBEDTLS_ERR_SSL_WANT_READ);
	printf("tls: 16 KiB in 512-octet records, blocked %d times, arrived intact\n", blocked);

	/* the peer vanishing: EOF without close_notify is a close too */
	client_close(&c);
	close(sv[1]);
	CHECK(tls_read(t, idx, buf, sizeof buf) == 0);
	CHECK(tls_write(t, idx, "x", 1) == TLS_CLOSED); /* EPIPE */
	tls_release(t, idx);
	close(sv[0]);
	tls_free(t);
}

static void test_handshake_rsa(void)
{
	char err[256];
	struct tls *t = open_pool(rsa_cert, rsa_key, 1, err, sizeof err);
	struct client c;
	int sv[2], idx, srv;

	CHECK(t != NULL);
	if (!t || pair(sv) != 0)
		return;
	idx = tls_acquire(t, sv[0]);
	CHECK(client_open(&c, sv[1], CL_PLAIN) == 0);
	CHECK(drive(t, idx, &c, &srv) == 0);
	const char *cs = tls_cipher_name(t, idx);
	CHECK(strstr(cs, "ECDHE-RSA") != NULL || strncmp(cs, "TLS1-3", 6) == 0);
	printf("tls: RSA-2048 handshake: %s %s\n", tls_version_name(t, idx), cs);
	server_to_client(t, idx, &c);
	client_close(&c);
	close(sv[1]);
	tls_release(t, idx);
	close(sv[0]);
	tls_free(t);
}

/* The server side of one connection fed raw octets, then the peer closes. */
static int feed_raw(struct tls *t, const void *data, size_t len, bool close_peer)
{
	int sv[2], idx, r;

	if (pair(sv) != 0)
		return 99;
	idx = tls_acquire(t, sv[0]);
	if (idx < 0) {
		close(sv[0]);
		close(sv[1]);
		return 98;
	}
	if (len)
		(void)!write(sv[1], data, len);
	r = settle(t, idx, 5);
	if (close_peer && wants(r)) {
		close(sv[1]);
		sv[1] = -1;
		r = settle(t, idx, 5);
	}
	tls_release(t, idx);
	close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	return r;
}

#if defined(MBEDTLS_SSL_RENEGOTIATION)
static void renegotiation_refused(struct tls *t, int idx, struct client *c)
{
	unsigned char peek[2048];
	char buf[16];
	ssize_t n, pl;

	CHECK(cl_wants(mbedtls_ssl_renegotiate(&c->ssl)));
	n = tls_read(t, idx, buf, sizeof buf);
	CHECK(n == TLS_WANT_READ || n == TLS_WANT_WRITE);
	pl = recv(c->fd, peek, sizeof peek, MSG_PEEK);
	CHECK(pl > 0 && pl < 64);       /* one short alert record, no ServerHello */
	CHECK(pl > 0 && peek[0] == 21); /* content type alert */
	/* and the session carries on */
	CHECK(tls_write(t, idx, "250 ok\r\n", 8) == 8);
}
#endif

static void test_hostile(void)
{
	char err[256];
	struct tls *t = open_pool(ec_cert, ec_key, 1, err, sizeof err);
	struct client c;
	int sv[2], idx, srv, r;

	CHECK(t != NULL);
	if (!t)
		return;

	r = feed_raw(t, "GET / HTTP/1.0\r\n\r\n", 18, false);
	CHECK(r == TLS_ERROR || r == TLS_CLOSED);
	r = feed_raw(t, "EHLO x\r\n", 8, true);
	CHECK(r == TLS_ERROR || r == TLS_CLOSED);
	/* a handshake record header announcing far more than a record holds */
	r = feed_raw(t, "\x16\x03\x01\xff\xff", 5, true);
	CHECK(r == TLS_ERROR || r == TLS_CLOSED);
	/* a plausible header with a garbage body */
	unsigned char junk[5 + 200];
	unsigned x = 12345;
	memcpy(junk, "\x16\x03\x01\x00\xc8", 5);
	for (int k = 0; k < 20; k++) {
		for (size_t i = 5; i < sizeof junk; i++) {
			x = x * 1103515245u + 12345u;
			junk[i] = (unsigned char)(x >> 16);
		}
		if (k & 1)
			junk[5] = 1; /* claims to be a ClientHello */
		r = feed_raw(t, junk, sizeof junk, true);
		CHECK(r == TLS_ERROR || r == TLS_CLOSED);
	}
	/* connect and close without a word */
	r = feed_raw(t, "", 0, true);
	CHECK(r == TLS_CLOSED);

	/* a real ClientHello, captured, then replayed cut in half */
	unsigned char hello[2048];
	ssize_t hl = -1;
	if (pair(sv) == 0) {
		CHECK(client_open(&c, sv[1], CL_PLAIN) == 0);
		CHECK(mbedtls_ssl_handshake(&c.ssl) == MBEDTLS_ERR_SSL_WANT_READ);
		hl = recv(sv[0], hello, sizeof hello, 0);
		CHECK(hl > 50);
		client_close(&c);
		close(sv[0]);
		close(sv[1]);
	}
	if (hl > 50) {
		r = feed_raw(t, hello, (size_t)hl / 2, true);
		CHECK(r == TLS_CLOSED);
		r = feed_raw(t, hello, 3, true); /* inside the record header */
		CHECK(r == TLS_CLOSED);
		r = feed_raw(t, hello, (size_t)hl - 1, true);
		CHECK(r == TLS_CLOSED);
		/* the whole hello and then a close: the server has answered */
		r = feed_raw(t, hello, (size_t)hl, true);
		CHECK(r == TLS_CLOSED || r == TLS_ERROR);
	}

	/* reset mid-handshake: the client leaves the server's flight unread */
	if (pair(sv) == 0) {
		idx = tls_acquire(t, sv[0]);
		CHECK(idx == 0);
		CHECK(client_open(&c, sv[1], CL_PLAIN) == 0);
		CHECK(mbedtls_ssl_handshake(&c.ssl) == MBEDTLS_ERR_SSL_WANT_READ);
		CHECK(tls_handshake(t, idx) == TLS_WANT_READ);
		client_close(&c);
		close(sv[1]);
		r = settle(t, idx, 5);
		CHECK(r == TLS_CLOSED);
		tls_release(t, idx);
		close(sv[0]);
	}

	/* only CBC suites offered: no shared suite */
	if (pair(sv) == 0) {
		idx = tls_acquire(t, sv[0]);
		CHECK(client_open(&c, sv[1], CL_CBC_ONLY) == 0);
		CHECK(drive(t, idx, &c, &srv) == -1);
		CHECK(srv == TLS_ERROR);
		client_close(&c);
		tls_release(t, idx);
		close(sv[0]);
		close(sv[1]);
	}

#if MBEDTLS_VERSION_NUMBER < 0x03000000 && defined(MBEDTLS_SSL_PROTO_TLS1_1)
	/* a TLS 1.1-only client is refused */
	if (pair(sv) == 0) {
		idx = tls_acquire(t, sv[0]);
		CHECK(client_open(&c, sv[1], CL_TLS11) == 0);
		CHECK(drive(t, idx, &c, &srv) == -1);
		CHECK(srv == TLS_ERROR);
		client_close(&c);
		tls_release(t, idx);
		close(sv[0]);
		close(sv[1]);
	}
#endif

#if defined(MBEDTLS_SSL_RENEGOTIATION)
	/* a client-started renegotiation gets an alert, not a new handshake */
	if (pair(sv) == 0) {
		idx = tls_acquire(t, sv[0]);
		CHECK(client_open(&c, sv[1], CL_RENEGO) == 0);
		CHECK(drive(t, idx, &c, &srv) == 0);
		/* TLS 1.3 has no renegotiation at all */
		if (strcmp(tls_version_name(t, idx), "TLSv1.2") == 0)
			renegotiation_refused(t, idx, &c);
		client_close(&c);
		tls_release(t, idx);
		close(sv[0]);
		close(sv[1]);
	}
#endif

	/* after all that, the one slot still does a full handshake */
	if (pair(sv) == 0) {
		idx = tls_acquire(t, sv[0]);
		CHECK(idx == 0);
		CHECK(client_open(&c, sv[1], CL_PLAIN) == 0);
		CHECK(drive(t, idx, &c, &srv) == 0);
		server_to_client(t, idx, &c);
		client_to_server_records(t, idx, &c);
		client_close(&c);
		tls_release(t, idx);
		close(sv[0]);
		close(sv[1]);
	}
	tls_free(t);
}

/* The per-source share: IPv4 by address, IPv6 by /64, while other
 * sources still get contexts. */
static void test_per_source(void)
{
	char err[256];
	struct tls_opts o = { .certificate = ec_cert, .key = ec_key, .max_sessions = 5,
			      .max_per_source = 2, .min_version = 12, .session_tickets = true };
	struct tls *t = tls_open(&o, err, sizeof err);
	struct ip_addr a, a_mapped, b, v6a, v6a2, v6b, c;
	int s[8];

	CHECK(t != NULL);
	if (!t)
		return;
	CHECK(ip_parse("192.0.2.1", &a) == 0);
	CHECK(ip_parse("::ffff:192.0.2.1", &a_mapped) == 0);
	CHECK(ip_parse("192.0.2.2", &b) == 0);
	CHECK(ip_parse("2001:db8:1:2::1", &v6a) == 0);
	CHECK(ip_parse("2001:db8:1:2:ffff:ffff:ffff:ffff", &v6a2) == 0);
	CHECK(ip_parse("2001:db8:1:3::1", &v6b) == 0);
	CHECK(ip_parse("198.51.100.7", &c) == 0);

	s[0] = tls_acquire_from(t, 10, &a);
	s[1] = tls_acquire_from(t, 11, &a_mapped); /* the same source */
	CHECK(s[0] == 0 && s[1] == 1);
	CHECK(tls_source_count(t, &a) == 2);
	CHECK(tls_acquire_from(t, 12, &a) == TLS_SOURCE_FULL);
	CHECK(tls_available(t) == 3);
	/* others still get theirs */
	s[2] = tls_acquire_from(t, 13, &b);
	CHECK(s[2] == 2);
	s[3] = tls_acquire_from(t, 14, &v6a);
	s[4] = tls_acquire_from(t, 15, &v6a2); /* same /64 */
	CHECK(s[3] == 3 && s[4] == 4);
	CHECK(tls_source_count(t, &v6a) == 2);
	CHECK(tls_source_count(t, &v6b) == 0);
	CHECK(tls_acquire_from(t, 16, &v6a) == TLS_SOURCE_FULL);
	/* pool empty: the source's share is not the reason */
	CHECK(tls_acquire_from(t, 17, &v6b) == TLS_POOL_FULL);
	CHECK(tls_acquire_from(t, 18, &c) == TLS_POOL_FULL);
	CHECK(tls_acquire(t, 19) == TLS_POOL_FULL);
	/* released: counted no more */
	tls_release(t, s[0]);
	CHECK(tls_source_count(t, &a) == 1);
	CHECK(tls_acquire_from(t, 20, &c) == 0);
	CHECK(tls_source_count(t, &c) == 1);
	tls_release(t, 0);
	tls_release(t, s[3]);
	CHECK(tls_acquire_from(t, 21, &v6b) == 0);
	CHECK(tls_acquire_from(t, 22, &v6a) == 3);
	CHECK(tls_source_count(t, &v6a2) == 2);
	for (int i = 0; i < 5; i++)
		tls_release(t, i);
	CHECK(tls_available(t) == 5);
	CHECK(tls_source_count(t, &v6a) == 0);
	/* a context acquired without a source is in no share */
	CHECK(tls_acquire(t, 30) == 0);
	CHECK(tls_source_count(t, &a) == 0);
	tls_release(t, 0);
	CHECK(tls_source_count(NULL, &a) == 0);
	CHECK(tls_source_count(t, NULL) == 0);
	tls_free(t);

	/* no share (0), or one at least the pool: the whole pool */
	for (unsigned share = 0; share <= 7; share += 7) {
		o.max_sessions = 3;
		o.max_per_source = share;
		t = tls_open(&o, err, sizeof err);
		CHECK(t != NULL);
		if (!t)
			continue;
		for (int i = 0; i < 3; i++)
			CHECK(tls_acquire_from(t, 40 + i, &a) == i);
		CHECK(tls_acquire_from(t, 43, &a) == TLS_POOL_FULL);
		tls_free(t);
	}
}

/* One handshake on a fresh socketpair; the client offers `in` to resume
 * and keeps what the server gave it in `out`. 0 when the handshake
 * completed, with *resumed as the server saw it. */
static int ticket_round(struct tls *t, int mode, const mbedtls_ssl_session *in,
			mbedtls_ssl_session *out, bool *resumed)
{
	struct client c;
	int sv[2], idx, srv, rc = -1;
	unsigned char b[16];

	*resumed = false;
	if (pair(sv) != 0)
		return -1;
	idx = tls_acquire(t, sv[0]);
	if (client_open(&c, sv[1], mode) == 0 && (!in || mbedtls_ssl_set_session(&c.ssl, in) == 0) &&
	    idx >= 0 && drive(t, idx, &c, &srv) == 0) {
		rc = 0;
		*resumed = tls_resumed(t, idx);
#ifdef HAVE_TICKET13
		if (mode == CL_TICKET13) {
			int r = MBEDTLS_ERR_SSL_WANT_READ;
			for (int i = 0; i < 3 && r == MBEDTLS_ERR_SSL_WANT_READ; i++)
				r = mbedtls_ssl_read(&c.ssl, b, sizeof b);
			if (r != MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET && out)
				rc = -1; /* no ticket came */
		}
#endif
		(void)b;
		if (rc == 0 && out && mbedtls_ssl_get_session(&c.ssl, out) != 0)
			rc = -3;
	}
	client_close(&c);
	if (idx >= 0)
		tls_release(t, idx);
	close(sv[0]);
	close(sv[1]);
	return rc;
}

static void tickets_with(int mode, const char *what)
{
	char err[256];
	struct tls_opts o = { .certificate = ec_cert, .key = ec_key, .max_sessions = 1,
			      .min_version = 12, .session_tickets = true };
	struct tls *t = tls_open(&o, err, sizeof err), *other = tls_open(&o, err, sizeof err);
	mbedtls_ssl_session sess, sess2;
	bool resumed;

	mbedtls_ssl_session_init(&sess);
	mbedtls_ssl_session_init(&sess2);
	CHECK(t != NULL && other != NULL);
	if (t && other) {
		int rc = ticket_round(t, mode, NULL, &sess, &resumed);
		CHECK(rc == 0);
		if (rc)
			printf("tls: %s: first round %d\n", what, rc);
		CHECK(!resumed);
		/* the second connection resumes from the ticket */
		CHECK(ticket_round(t, mode, &sess, NULL, &resumed) == 0);
		CHECK(resumed);
		/* another instance (a restart) has another key: a full handshake */
		CHECK(ticket_round(other, mode, &sess, NULL, &resumed) == 0);
		CHECK(!resumed);
		printf("tls: %s: resumed from a ticket; another key makes a full handshake\n", what);
	}
	tls_free(t);
	tls_free(other);

	/* session_tickets = no: nothing to resume from, no cache either */
	o.session_tickets = false;
	t = tls_open(&o, err, sizeof err);
	CHECK(t != NULL);
	if (t) {
		if (mode == CL_TICKET13) {
			CHECK(ticket_round(t, mode, NULL, &sess2, &resumed) == -1); /* none sent */
		} else {
			CHECK(ticket_round(t, mode, NULL, &sess2, &resumed) == 0);
			CHECK(ticket_round(t, mode, &sess2, NULL, &resumed) == 0);
			CHECK(!resumed);
		}
	}
	tls_free(t);
	mbedtls_ssl_session_free(&sess);
	mbedtls_ssl_session_free(&sess2);
}

static void test_tickets(void)
{
	tickets_with(MBEDTLS_VERSION_NUMBER >= 0x03020000 ? CL_TLS12 : CL_PLAIN, "TLS 1.2 (RFC 5077)");
#ifdef HAVE_TICKET13
	tickets_with(CL_TICKET13, "TLS 1.3");
#else
	printf("tls: TLS 1.3 tickets: not in this mbedTLS (%s)\n", tls_library_version());
#endif
}

static void test_min_version(void)
{
	char err[256];
	struct tls_opts o = { .certificate = ec_cert, .key = ec_key, .max_sessions = 1,
			      .min_version = 13, .session_tickets = true };
	struct tls *t;

	err[0] = 0;
	t = tls_open(&o, err, sizeof err);
	if (tls_max_version() < 13) {
		CHECK(t == NULL);
		CHECK(strstr(err, "has no TLS 1.3") != NULL);
		printf("tls: min_version 1.3: refused by %s (%s)\n", tls_library_version(), err);
		return;
	}
	CHECK(t != NULL);
	if (!t)
		return;
	struct client c;
	int sv[2], idx, srv;
	/* a 1.2-only client is refused, a 1.3 one served */
	if (pair(sv) == 0) {
		idx = tls_acquire(t, sv[0]);
		CHECK(client_open(&c, sv[1], CL_TLS12) == 0);
		CHECK(drive(t, idx, &c, &srv) == -1);
		CHECK(srv == TLS_ERROR);
		client_close(&c);
		tls_release(t, idx);
		close(sv[0]);
		close(sv[1]);
	}
	if (pair(sv) == 0) {
		idx = tls_acquire(t, sv[0]);
		CHECK(client_open(&c, sv[1], CL_PLAIN) == 0);
		CHECK(drive(t, idx, &c, &srv) == 0);
		CHECK_STR(tls_version_name(t, idx), "TLSv1.3");
		client_close(&c);
		tls_release(t, idx);
		close(sv[0]);
		close(sv[1]);
	}
	tls_free(t);
	o.min_version = 11;
	CHECK(tls_open(&o, err, sizeof err) == NULL);
	printf("tls: min_version 1.3: a TLS 1.2 client refused\n");
}

/* Octets waiting on the client's socket (without reading them). */
static ssize_t peek_len(int fd)
{
	unsigned char b[64];

	return recv(fd, b, sizeof b, MSG_PEEK | MSG_DONTWAIT);
}

static void test_close_notify(void)
{
	char err[256];
	struct tls *t = open_pool(ec_cert, ec_key, 1, err, sizeof err);
	struct client c;
	int sv[2], idx, srv;
	unsigned char buf[64];

	CHECK(t != NULL);
	if (!t)
		return;
	CHECK(tls_close_notify(t, 0) == TLS_ERROR); /* no such session */

	/* before the handshake: nothing to end, nothing sent */
	if (pair(sv) == 0) {
		idx = tls_acquire(t, sv[0]);
		CHECK(tls_close_notify(t, idx) == 0);
		CHECK(peek_len(sv[1]) == -1 && errno == EAGAIN);
		tls_release(t, idx);
		close(sv[0]);
		close(sv[1]);
	}

	/* after it: the alert, once, however often asked */
	if (pair(sv) == 0) {
		idx = tls_acquire(t, sv[0]);
		CHECK(client_open(&c, sv[1], CL_PLAIN) == 0);
		CHECK(drive(t, idx, &c, &srv) == 0);
		CHECK(tls_write(t, idx, "221 bye\r\n", 9) == 9);
		CHECK(tls_close_notify(t, idx) == 0);
		CHECK(tls_close_notify(t, idx) == 0);
		CHECK(mbedtls_ssl_read(&c.ssl, buf, sizeof buf) == 9);
		CHECK(mbedtls_ssl_read(&c.ssl, buf, sizeof buf) == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY);
		CHECK(peek_len(sv[1]) == -1 && errno == EAGAIN); /* no second alert */
		client_close(&c);
		tls_release(t, idx);
		close(sv[0]);
		close(sv[1]);
	}

	/* behind a write the socket could not take: that first, then the
	 * alert, each call returning at once */
	if (pair(sv) == 0) {
		int sndbuf = 1024, waits = 0;
		static unsigned char big[16384], got[16384 + 64];
		size_t have = 0;
		int r = TLS_WANT_WRITE, cr = 0;

		setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
		idx = tls_acquire(t, sv[0]);
		CHECK(client_open(&c, sv[1], CL_FRAG512) == 0);
		CHECK(drive(t, idx, &c, &srv) == 0);
		memset(big, 'x', sizeof big);
		CHECK(tls_write(t, idx, big, sizeof big) == TLS_WANT_WRITE);
		/* the session ends there: the rest of that write is dropped */
		for (int i = 0; i < 10000 && r != 0; i++) {
			r = tls_close_notify(t, idx);
			if (r == TLS_WANT_WRITE)
				waits++;
			else if (r != 0)
				break;
			cr = mbedtls_ssl_read(&c.ssl, got + have, sizeof got - have);
			if (cr > 0)
				have += (size_t)cr;
			else if (cr != MBEDTLS_ERR_SSL_WANT_READ)
				break;
		}
		CHECK(r == 0);
		CHECK(waits > 0);
		for (int i = 0; i < 1000 && cr != MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY; i++) {
			cr = mbedtls_ssl_read(&c.ssl, got + have, sizeof got - have);
			if (cr > 0)
				have += (size_t)cr;
			else if (cr != MBEDTLS_ERR_SSL_WANT_READ)
				break;
		}
		CHECK(cr == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY);
		CHECK(have > 0 && have < sizeof big);
		printf("tls: close_notify behind a blocked write: %d waits, %zu octets before it\n",
		       waits, have);
		client_close(&c);
		tls_release(t, idx);
		close(sv[0]);
		close(sv[1]);
	}

	/* the peer's close_notify reads as EOF; ours still goes out; a
	 * peer that is gone makes it fail, not block */
	if (pair(sv) == 0) {
		idx = tls_acquire(t, sv[0]);
		CHECK(client_open(&c, sv[1], CL_PLAIN) == 0);
		CHECK(drive(t, idx, &c, &srv) == 0);
		CHECK(mbedtls_ssl_close_notify(&c.ssl) == 0);
		CHECK(tls_read(t, idx, buf, sizeof buf) == 0);
		CHECK(tls_close_notify(t, idx) == 0);
		CHECK(mbedtls_ssl_read(&c.ssl, buf, sizeof buf) == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY);
		client_close(&c);
		tls_release(t, idx);
		close(sv[0]);
		close(sv[1]);
	}
	if (pair(sv) == 0) {
		idx = tls_acquire(t, sv[0]);
		CHECK(client_open(&c, sv[1], CL_PLAIN) == 0);
		CHECK(drive(t, idx, &c, &srv) == 0);
		client_close(&c);
		close(sv[1]);
		CHECK(tls_close_notify(t, idx) == TLS_CLOSED);
		tls_release(t, idx);
		close(sv[0]);
	}
	tls_free(t);
}

/* Heap taken by the server side of one session, with the client in a child
 * process so its allocations do not count. Informational. */
static void measure_memory(void)
{
	char err[256];
	struct tls *t = open_pool(ec_cert, ec_key, 1, err, sizeof err);
	int sv[2], idx, r = TLS_WANT_READ, status = 0;
	long long h[4];
	pid_t pid;

	if (!t)
		return;
	if (pair(sv) != 0) {
		tls_free(t);
		return;
	}
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		struct client c;
		struct pollfd p = { .fd = sv[1] };
		unsigned char buf[64];
		int rc = 1;

		close(sv[0]);
		if (client_open(&c, sv[1], CL_PLAIN) != 0)
			_exit(2);
		for (int i = 0; i < 1000; i++) {
			int h = mbedtls_ssl_handshake(&c.ssl);
			if (h == 0) {
				rc = 0;
				break;
			}
			if (!cl_wants(h))
				break;
			p.events = h == MBEDTLS_ERR_SSL_WANT_READ ? POLLIN : POLLOUT;
			poll(&p, 1, 2000);
		}
		/* wait for the server to finish and hang up */
		for (int i = 0; i < 100 && rc == 0; i++) {
			int n = mbedtls_ssl_read(&c.ssl, buf, sizeof buf);
			if (n != MBEDTLS_ERR_SSL_WANT_READ)
				break;
			p.events = POLLIN;
			poll(&p, 1, 2000);
		}
		/* the child's copy of everything, so valgrind sees no leak here either */
		client_close(&c);
		tls_free(t);
		mbedtls_ctr_drbg_free(&cl_drbg);
		mbedtls_entropy_free(&cl_entropy);
		_exit(rc);
	}
	CHECK(pid > 0);
	if (pid < 0) {
		tls_free(t);
		return;
	}
	close(sv[1]);

	h[0] = heap_used();
	idx = tls_acquire(t, sv[0]);
	h[1] = heap_used();
	for (int i = 0; i < 1000 && wants(r); i++) {
		struct pollfd p = { .fd = sv[0], .events = r == TLS_WANT_READ ? POLLIN : POLLOUT };
		r = tls_handshake(t, idx);
		if (wants(r))
			poll(&p, 1, 2000);
	}
	CHECK(r == 0);
	h[2] = heap_used();
	tls_release(t, idx);
	h[3] = heap_used();
	close(sv[0]);
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	heap_report("tls", "server", h);
	tls_free(t);
}

int main(void)
{
	static const unsigned char pers[] = "test_tls client";

	verbose = getenv("TEST_TLS_VERBOSE") != NULL;
	mbedtls_entropy_init(&cl_entropy);
	mbedtls_ctr_drbg_init(&cl_drbg);
	if (mbedtls_ctr_drbg_seed(&cl_drbg, mbedtls_entropy_func, &cl_entropy, pers,
				  sizeof pers - 1) != 0 ||
	    make_files() != 0) {
		fprintf(stderr, "test_tls: cannot set up (openssl missing?)\n");
		remove_files();
		CHECK(0);
		return check_summary("tls");
	}

	test_files();
	test_pool();
	test_handshake_ec();
	test_handshake_rsa();
	test_hostile();
	test_per_source();
	test_tickets();
	test_min_version();
	test_close_notify();
	measure_memory();

	remove_files();
	mbedtls_ctr_drbg_free(&cl_drbg);
	mbedtls_entropy_free(&cl_entropy);
	return check_summary("tls");
}
