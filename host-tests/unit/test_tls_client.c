/* test_tls_client: the forwarding side's TLS client against the project's
 * own server side (tls.c), both ends driven in one process over
 * non-blocking socketpairs, with a throwaway CA, a server certificate it
 * signed for mail.test and a second, unrelated CA, made by openssl at
 * start. (The real counterpart, openssl s_server, is in
 * host-tests/integration/test_tls_client.py.) */
#include "check.h"
#include "limits.h"
#include "tls.h"
#include "tls_client.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef TARPITD_NO_TLS

/* TLS=0: the stub refuses, and says why. */
int main(void)
{
	char err[256] = "";

	CHECK(tlsc_open(4, err, sizeof err) == NULL);
	CHECK(strstr(err, "built without TLS") != NULL);
	CHECK(tlsc_profile(NULL, NULL, err, sizeof err) == -1);
	CHECK(tlsc_acquire(NULL, 0, 0, "x") == -1);
	CHECK(tlsc_available(NULL) == 0);
	CHECK(tlsc_handshake(NULL, 0) == TLS_ERROR);
	return check_summary("tls_client (TLS=0)");
}

#else

#include "tls_fixture.h"

static char ca_cert[128], other_ca[128], srv_cert[128], srv_key[128], garbage[128];
static char missing[128];
static bool verbose;

static int make_files(void)
{
	char cmd[2048];

	if (fixture_dir("/tmp/tarpitd-tlsc-XXXXXX") != 0)
		return -1;
	path(ca_cert, sizeof ca_cert, "ca.pem");
	path(other_ca, sizeof other_ca, "other_ca.pem");
	path(srv_cert, sizeof srv_cert, "srv.pem");
	path(srv_key, sizeof srv_key, "srv.key");
	path(garbage, sizeof garbage, "garbage.pem");
	path(missing, sizeof missing, "missing.pem");
	/* A CA, a server certificate it signs for mail.test (in the SAN,
	 * where RFC 6125 looks), and another CA that signed nothing here. */
	snprintf(cmd, sizeof cmd,
		 "cd %s && exec >openssl.log 2>&1 && "
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
		 "-keyout ca.key -out ca.pem -days 2 -subj '/CN=tarpitd test CA' && "
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
		 "-keyout other_ca.key -out other_ca.pem -days 2 -subj '/CN=tarpitd other CA' && "
		 "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
		 "-keyout srv.key -out srv.csr -subj /CN=mail.test && "
		 "printf 'subjectAltName=DNS:mail.test\\nbasicConstraints=CA:FALSE\\n' >srv.ext && "
		 "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
		 "-out srv.pem -days 2 -extfile srv.ext",
		 dir);
	if (run(cmd) != 0)
		return -1;
	return write_text(garbage, "-----BEGIN CERTIFICATE-----\nnot base64!\n"
				   "-----END CERTIFICATE-----\n");
}

static struct tls *server_pool(unsigned max)
{
	char err[256];
	struct tls *s = tls_open(&(struct tls_opts){ .certificate = srv_cert, .key = srv_key,
						     .max_sessions = max, .min_version = 12,
						     .session_tickets = true },
				 err, sizeof err);

	if (!s)
		fprintf(stderr, "tls_client: server pool: %s\n", err);
	return s;
}

/* Alternates the two handshakes until both are done or one fails: the
 * client's result (0, TLS_ERROR, or TLS_WANT_* when it never finished). */
static int drive(struct tls_client *c, int ci, struct tls *s, int si)
{
	int cr = TLS_WANT_WRITE, sr = TLS_WANT_READ;

	for (int i = 0; i < 200 && (wants(cr) || wants(sr)); i++) {
		if (wants(cr))
			cr = tlsc_handshake(c, ci);
		if (wants(sr))
			sr = tls_handshake(s, si);
		/* The server failed first (our alert): the client still
		 * has to read it, or it waits. */
		if (!wants(sr) && sr != 0 && wants(cr))
			cr = tlsc_handshake(c, ci);
		if (cr != 0 && !wants(cr))
			break;
	}
	if (verbose)
		printf("tls_client: drive: client %d (%s), server %d\n", cr, tlsc_error(c, ci), sr);
	return cr;
}

/* One connection: a socketpair, a client slot, a server slot. */
struct conn {
	int sv[2];
	int ci, si;
};

static int conn_open(struct conn *k, struct tls_client *c, int profile, const char *name,
		     struct tls *s)
{
	k->ci = k->si = -1;
	if (pair(k->sv) != 0)
		return -1;
	k->ci = tlsc_acquire(c, profile, k->sv[0], name);
	k->si = tls_acquire(s, k->sv[1]);
	return k->ci >= 0 && k->si >= 0 ? 0 : -1;
}

static void conn_close(struct conn *k, struct tls_client *c, struct tls *s)
{
	if (k->ci >= 0)
		tlsc_release(c, k->ci);
	if (k->si >= 0)
		tls_release(s, k->si);
	close(k->sv[0]);
	close(k->sv[1]);
}

/* Handshake with one profile and name: the client's result; *msg is a
 * copy of tlsc_error(). */
static int try_handshake(struct tls_client *c, int profile, const char *name, struct tls *s,
			 char *msg, size_t msglen)
{
	struct conn k;
	int r = TLS_ERROR;

	msg[0] = '\0';
	if (conn_open(&k, c, profile, name, s) == 0) {
		r = drive(c, k.ci, s, k.si);
		snprintf(msg, msglen, "%s", tlsc_error(c, k.ci));
	}
	conn_close(&k, c, s);
	return r;
}

static void test_open_and_profiles(void)
{
	char err[256];
	struct tls_client *c;

	CHECK(tlsc_open(0, err, sizeof err) == NULL);
	CHECK(strstr(err, "at least 1") != NULL);
	c = tlsc_open(2, err, sizeof err);
	CHECK(c != NULL);
	if (!c)
		return;
	CHECK(tlsc_available(c) == 2);
	CHECK(tlsc_profile(c, NULL, err, sizeof err) == 0);
	CHECK(tlsc_profile(c, "", err, sizeof err) == 0);
	CHECK(tlsc_profile(c, ca_cert, err, sizeof err) == 1);
	CHECK(tlsc_profile(c, other_ca, err, sizeof err) == 2);
	err[0] = '\0';
	CHECK(tlsc_profile(c, missing, err, sizeof err) == -1);
	CHECK(strstr(err, missing) && strstr(err, "No such file"));
	CHECK(tlsc_profile(c, garbage, err, sizeof err) == -1);
	CHECK(strstr(err, "cannot parse CA file") != NULL);
	CHECK(tlsc_profile(c, dir, err, sizeof err) == -1);
	CHECK(strstr(err, "not a regular file") != NULL);
	/* A failed load takes no index: the next good one is 3. */
	CHECK(tlsc_profile(c, ca_cert, err, sizeof err) == 3);
	for (int i = 4; i < TLSC_PROFILES_MAX; i++)
		CHECK(tlsc_profile(c, ca_cert, err, sizeof err) == i);
	CHECK(tlsc_profile(c, ca_cert, err, sizeof err) == -1);
	CHECK(strstr(err, "more than") != NULL);
	/* Bad arguments are not "pool full". */
	CHECK(tlsc_acquire(c, TLSC_PROFILES_MAX, 0, NULL) == TLS_ERROR);
	CHECK(tlsc_acquire(c, -1, 0, NULL) == TLS_ERROR);
	CHECK(tlsc_acquire(c, 0, -1, NULL) == TLS_ERROR);
	{
		char long_name[TLSC_NAME_MAX + 2];
		memset(long_name, 'a', sizeof long_name - 1);
		long_name[sizeof long_name - 1] = '\0';
		CHECK(tlsc_acquire(c, 0, 0, long_name) == TLS_ERROR);
	}
	CHECK(tlsc_available(c) == 2);
	CHECK(tlsc_handshake(c, 0) == TLS_ERROR); /* not acquired */
	CHECK_STR(tlsc_error(c, 0), "");
	tlsc_free(c);
}

/* Success with data both ways and close_notify, unverified. */
static void test_data(void)
{
	char err[256], buf[256];
	struct tls_client *c = tlsc_open(1, err, sizeof err);
	struct tls *s = server_pool(1);
	struct conn k;
	ssize_t n;
	int r = TLS_WANT_READ;

	CHECK(c && s);
	if (!c || !s)
		goto out;
	CHECK(conn_open(&k, c, 0, "mail.test", s) == 0);
	CHECK(tlsc_available(c) == 0);
	CHECK(drive(c, k.ci, s, k.si) == 0);
	CHECK_STR(tlsc_error(c, k.ci), "");
	printf("tls_client: %s %s against tls.c\n", tlsc_version_name(c, k.ci),
	       tlsc_cipher_name(c, k.ci));
	CHECK(strncmp(tlsc_version_name(c, k.ci), "TLSv1.", 6) == 0);
	CHECK(strcmp(tlsc_version_name(c, k.ci), "TLSv1.1") != 0);
	if (tls_max_version() == 13)
		CHECK_STR(tlsc_version_name(c, k.ci), "TLSv1.3");
	CHECK(strstr(tlsc_cipher_name(c, k.ci), "GCM") || strstr(tlsc_cipher_name(c, k.ci), "CHACHA"));

	/* client → server */
	CHECK(tlsc_write(c, k.ci, "EHLO relay.test\r\n", 17) == 17);
	n = TLS_WANT_READ;
	for (int i = 0; i < 10 && wants(n); i++)
		n = tls_read(s, k.si, buf, sizeof buf);
	CHECK(n == 17 && memcmp(buf, "EHLO relay.test\r\n", 17) == 0);

	/* server → client: the first read also meets the server's TLS 1.3
	 * ticket (3.6), which the client drops and reads on past. */
	CHECK(tls_write(s, k.si, "250 ok\r\n", 8) == 8);
	n = tlsc_read(c, k.ci, buf, sizeof buf);
	CHECK(n == 8 && memcmp(buf, "250 ok\r\n", 8) == 0);
	n = tlsc_read(c, k.ci, buf, sizeof buf);
	CHECK(n == TLS_WANT_READ);

	/* A larger block than one record, both ways. */
	{
		static char big[40000], got[40000];
		size_t have = 0;

		for (size_t i = 0; i < sizeof big; i++)
			big[i] = (char)('a' + i % 26);
		n = TLS_WANT_WRITE;
		for (int i = 0; i < 100 && have < sizeof got; i++) {
			if (wants(n))
				n = tlsc_write(c, k.ci, big, sizeof big);
			ssize_t m = tls_read(s, k.si, got + have, sizeof got - have);
			if (m > 0)
				have += (size_t)m;
		}
		CHECK(n == (ssize_t)sizeof big);
		CHECK(have == sizeof got && memcmp(big, got, sizeof big) == 0);
		CHECK(tls_write(s, k.si, "354 go\r\n", 8) == 8);
		CHECK(tlsc_read(c, k.ci, buf, 3) == 3);
		CHECK(tlsc_pending(c, k.ci) == 5);
		CHECK(tlsc_read(c, k.ci, buf, sizeof buf) == 5);
	}

	/* close_notify: the server reads the end, once. */
	CHECK(tlsc_close_notify(c, k.ci) == 0);
	CHECK(tlsc_close_notify(c, k.ci) == 0);
	for (int i = 0; i < 10 && (r == TLS_WANT_READ); i++)
		r = (int)tls_read(s, k.si, buf, sizeof buf);
	CHECK(r == 0);
	/* and the client sees the server's */
	CHECK(tls_close_notify(s, k.si) == 0);
	CHECK(tlsc_read(c, k.ci, buf, sizeof buf) == 0);
	conn_close(&k, c, s);
	CHECK(tlsc_available(c) == 1);
out:
	tlsc_free(c);
	tls_free(s);
}

static void test_verification(void)
{
	char err[256], msg[TLSC_ERR_MAX];
	struct tls_client *c = tlsc_open(1, err, sizeof err);
	struct tls *s = server_pool(1);
	int good, other, r;

	CHECK(c && s);
	if (!c || !s)
		goto out;
	good = tlsc_profile(c, ca_cert, err, sizeof err);
	other = tlsc_profile(c, other_ca, err, sizeof err);
	CHECK(good == 1 && other == 2);

	/* required, the right CA and the right name */
	r = try_handshake(c, good, "mail.test", s, msg, sizeof msg);
	CHECK(r == 0);
	CHECK_STR(msg, "");

	/* the right CA, a wrong name */
	r = try_handshake(c, good, "other.test", s, msg, sizeof msg);
	CHECK(r == TLS_ERROR);
	printf("tls_client: wrong name: %s\n", msg);
	CHECK(strstr(msg, "certificate verification failed") != NULL);
	CHECK(strstr(msg, "name mismatch") != NULL);
	CHECK(strstr(msg, "other.test") != NULL);
	CHECK(strstr(msg, "not trusted") == NULL);

	/* a CA that did not sign it, the right name */
	r = try_handshake(c, other, "mail.test", s, msg, sizeof msg);
	CHECK(r == TLS_ERROR);
	printf("tls_client: untrusted: %s\n", msg);
	CHECK(strstr(msg, "certificate verification failed") != NULL);
	CHECK(strstr(msg, "not trusted") != NULL);
	CHECK(strstr(msg, "name mismatch") == NULL);

	/* the same slot, reused after the failures, verifies fine again */
	r = try_handshake(c, good, "mail.test", s, msg, sizeof msg);
	CHECK(r == 0);

	/* no CA: any certificate, any name (opportunistic) */
	r = try_handshake(c, 0, "other.test", s, msg, sizeof msg);
	CHECK(r == 0);
	r = try_handshake(c, 0, NULL, s, msg, sizeof msg);
	CHECK(r == 0);
	/* and after that slot ran without verification, a CA profile on
	 * it verifies again (the profile is applied per acquire) */
	r = try_handshake(c, other, "mail.test", s, msg, sizeof msg);
	CHECK(r == TLS_ERROR);

	/* a CA and no name: the chain is checked, no name */
	r = try_handshake(c, good, "", s, msg, sizeof msg);
	CHECK(r == 0);
	r = try_handshake(c, other, "", s, msg, sizeof msg);
	CHECK(r == TLS_ERROR);
	CHECK(strstr(msg, "not trusted") != NULL);

	/* the name set before ("") is replaced, not kept: wrong fails */
	r = try_handshake(c, good, "wrong.test", s, msg, sizeof msg);
	CHECK(r == TLS_ERROR);
	CHECK(strstr(msg, "wrong.test") != NULL);
out:
	tlsc_free(c);
	tls_free(s);
}

/* A next hop that closes during the handshake, or sends no TLS at all. */
static void test_peer_failures(void)
{
	char err[256], buf[64];
	struct tls_client *c = tlsc_open(1, err, sizeof err);
	int sv[2], idx, r = TLS_WANT_WRITE;

	CHECK(c != NULL);
	if (!c || pair(sv) != 0)
		goto out;
	idx = tlsc_acquire(c, 0, sv[0], "mail.test");
	CHECK(idx >= 0);
	r = tlsc_handshake(c, idx);
	CHECK(r == TLS_WANT_READ);
	CHECK(read(sv[1], buf, sizeof buf) > 0); /* the ClientHello */
	close(sv[1]);
	for (int i = 0; i < 10 && wants(r); i++)
		r = tlsc_handshake(c, idx);
	CHECK(r == TLS_ERROR);
	printf("tls_client: peer gone: %s\n", tlsc_error(c, idx));
	CHECK(strstr(tlsc_error(c, idx), "closed") != NULL);
	tlsc_release(c, idx);
	close(sv[0]);

	if (pair(sv) != 0)
		goto out;
	idx = tlsc_acquire(c, 0, sv[0], "mail.test");
	CHECK(idx >= 0);
	r = tlsc_handshake(c, idx);
	CHECK(write(sv[1], "220 not tls at all\r\n", 20) == 20);
	for (int i = 0; i < 10 && wants(r); i++)
		r = tlsc_handshake(c, idx);
	CHECK(r == TLS_ERROR);
	printf("tls_client: plaintext answer: %s\n", tlsc_error(c, idx));
	CHECK(strncmp(tlsc_error(c, idx), "handshake failed: ", 18) == 0);
	for (const char *p = tlsc_error(c, idx); *p; p++)
		CHECK(*p >= 0x20 && *p < 0x7f);
	tlsc_release(c, idx);
	close(sv[0]);
	close(sv[1]);
out:
	tlsc_free(c);
}

static void test_pool(void)
{
	char err[256], msg[TLSC_ERR_MAX];
	struct tls_client *c = tlsc_open(2, err, sizeof err);
	struct tls *s = server_pool(3);
	struct conn a, b;
	int sv[2], third;

	CHECK(c && s);
	if (!c || !s)
		goto out;
	CHECK(conn_open(&a, c, 0, "mail.test", s) == 0);
	CHECK(conn_open(&b, c, 0, "mail.test", s) == 0);
	CHECK(a.ci != b.ci);
	CHECK(tlsc_available(c) == 0);
	CHECK(pair(sv) == 0);
	third = tlsc_acquire(c, 0, sv[0], "mail.test");
	CHECK(third == -1); /* full */
	CHECK(drive(c, a.ci, s, a.si) == 0);
	CHECK(drive(c, b.ci, s, b.si) == 0);
	/* release one: its slot (context kept) serves the next */
	conn_close(&a, c, s);
	CHECK(tlsc_available(c) == 1);
	CHECK(try_handshake(c, 0, "mail.test", s, msg, sizeof msg) == 0);
	CHECK(tlsc_available(c) == 1);
	third = tlsc_acquire(c, 0, sv[0], "mail.test");
	CHECK(third == a.ci);
	tlsc_release(c, third);
	tlsc_release(c, third); /* twice: no effect */
	CHECK(tlsc_available(c) == 1);
	conn_close(&b, c, s);
	CHECK(tlsc_available(c) == 2);
	close(sv[0]);
	close(sv[1]);
out:
	tlsc_free(c);
	tls_free(s);
}

/* Heap of one client session, the server in a child so only ours counts. */
static void measure_memory(void)
{
	char err[256];
	struct tls_client *c = tlsc_open(1, err, sizeof err);
	int sv[2], idx, r = TLS_WANT_WRITE, status = 0;
	long long h[4];
	pid_t pid;

	if (!c || pair(sv) != 0) {
		tlsc_free(c);
		return;
	}
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		struct tls *s = server_pool(1);
		int si, sr = TLS_WANT_READ;
		char buf[16];

		close(sv[0]);
		tlsc_free(c);
		if (!s)
			_exit(2);
		si = tls_acquire(s, sv[1]);
		for (int i = 0; i < 1000 && wants(sr); i++) {
			struct pollfd p = { .fd = sv[1],
					    .events = sr == TLS_WANT_READ ? POLLIN : POLLOUT };
			sr = tls_handshake(s, si);
			if (wants(sr))
				poll(&p, 1, 2000);
		}
		/* until the client hangs up */
		for (int i = 0; i < 100 && sr == 0; i++) {
			struct pollfd p = { .fd = sv[1], .events = POLLIN };
			ssize_t n = tls_read(s, si, buf, sizeof buf);
			if (n != TLS_WANT_READ)
				break;
			poll(&p, 1, 2000);
		}
		tls_free(s);
		_exit(sr == 0 ? 0 : 1);
	}
	CHECK(pid > 0);
	close(sv[1]);
	if (pid < 0) {
		tlsc_free(c);
		close(sv[0]);
		return;
	}
	h[0] = heap_used();
	idx = tlsc_acquire(c, 0, sv[0], "mail.test");
	h[1] = heap_used();
	for (int i = 0; i < 1000 && wants(r); i++) {
		struct pollfd p = { .fd = sv[0], .events = r == TLS_WANT_READ ? POLLIN : POLLOUT };
		r = tlsc_handshake(c, idx);
		if (wants(r))
			poll(&p, 1, 2000);
	}
	CHECK(r == 0);
	h[2] = heap_used();
	tlsc_release(c, idx);
	h[3] = heap_used();
	/* Only our side ends: the server may still be writing (its TLS 1.3
	 * tickets), which a closed socket would turn into a failure. */
	shutdown(sv[0], SHUT_WR);
	waitpid(pid, &status, 0);
	close(sv[0]);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	heap_report("tls_client", "client", h);
	tlsc_free(c);
}

int main(void)
{
	verbose = getenv("TEST_TLS_VERBOSE") != NULL;
	if (make_files() != 0) {
		fprintf(stderr, "tls_client: cannot make the test certificates (openssl)\n");
		remove_files();
		return 1;
	}
	test_open_and_profiles();
	test_data();
	test_verification();
	test_peer_failures();
	test_pool();
	measure_memory();
	remove_files();
	return check_summary("tls_client");
}

#endif
