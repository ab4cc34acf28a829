/* tls_handshake_bench: STARTTLS handshakes per second through the tls
 * pool, the server in this process driven non-blocking with poll() as the
 * event loop would, a plain mbedTLS client in a child process, over an
 * abstract AF_UNIX socket (no TCP stack in the figure).
 *
 * Full handshakes, or with -r resumed ones: the client keeps the session
 * (the ticket) of each connection and offers it on the next, as Postfix's
 * TLS session cache does. -v 12 keeps the client to TLS 1.2; otherwise it
 * offers what its library has (TLS 1.3 with 3.6).
 *
 * Reports the wall-clock rate (client and server on separate cores when
 * there are two) and the server's own CPU time per handshake, which is
 * what a single-core router pays, and how many handshakes resumed.
 *
 *   cc -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE -Os -iquote src src/tls.c \
 *      src/random.c src/iprange.c host-tests/bench/tls_handshake_bench.c -o /tmp/tls_bench \
 *      -lmbedtls -lmbedx509 -lmbedcrypto
 *   /tmp/tls_bench [-s SECONDS] [-n COUNT] [-r] [-v 12] CERT KEY
 */
#include "tls.h"

#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/ssl.h>
#include <mbedtls/version.h>

#if MBEDTLS_VERSION_NUMBER >= 0x03060000 && defined(MBEDTLS_SSL_PROTO_TLS1_3) && \
	defined(MBEDTLS_SSL_SESSION_TICKETS)
#define HAVE_TICKET13 1
#endif

static int cl_send(void *ctx, const unsigned char *buf, size_t len)
{
	ssize_t n = send(*(int *)ctx, buf, len, MSG_NOSIGNAL);
	return n >= 0 ? (int)n : MBEDTLS_ERR_NET_SEND_FAILED;
}

static int cl_recv(void *ctx, unsigned char *buf, size_t len)
{
	ssize_t n = recv(*(int *)ctx, buf, len, 0);
	return n >= 0 ? (int)n : MBEDTLS_ERR_NET_RECV_FAILED;
}

static socklen_t bench_addr(struct sockaddr_un *sa, pid_t pid)
{
	memset(sa, 0, sizeof *sa);
	sa->sun_family = AF_UNIX;
	/* abstract name: nothing to create or clean up on disk */
	int n = snprintf(sa->sun_path + 1, sizeof sa->sun_path - 1, "tarpitd-tls-bench-%ld",
			 (long)pid);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

/* Connects, handshakes and waits for the server to hang up, until the
 * listening socket goes away; with resume, offers the last session. */
static int client_loop(pid_t server, int resume, int max12)
{
	static const unsigned char pers[] = "tls bench client";
	mbedtls_entropy_context ent;
	mbedtls_ctr_drbg_context drbg;
	mbedtls_ssl_config conf;
	mbedtls_ssl_context ssl;
	mbedtls_ssl_session sess;
	int have_sess = 0;
	struct sockaddr_un sa;
	socklen_t salen = bench_addr(&sa, server);
	unsigned char buf[64];
	int fd = -1, rc = 0;

	mbedtls_entropy_init(&ent);
	mbedtls_ctr_drbg_init(&drbg);
	mbedtls_ssl_config_init(&conf);
	mbedtls_ssl_init(&ssl);
	mbedtls_ssl_session_init(&sess);
	if (mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &ent, pers, sizeof pers - 1) ||
	    mbedtls_ssl_config_defaults(&conf, MBEDTLS_SSL_IS_CLIENT,
					MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT))
		return 2;
	mbedtls_ssl_conf_authmode(&conf, MBEDTLS_SSL_VERIFY_NONE);
	mbedtls_ssl_conf_rng(&conf, mbedtls_ctr_drbg_random, &drbg);
#if MBEDTLS_VERSION_NUMBER >= 0x03020000
	if (max12)
		mbedtls_ssl_conf_max_tls_version(&conf, MBEDTLS_SSL_VERSION_TLS1_2);
#else
	(void)max12;
#endif
#ifdef HAVE_TICKET13
	/* A TLS 1.3 ticket comes after the handshake: have ssl_read say so. */
	mbedtls_ssl_conf_tls13_enable_signal_new_session_tickets(
		&conf, MBEDTLS_SSL_TLS1_3_SIGNAL_NEW_SESSION_TICKETS_ENABLED);
#endif
	if (mbedtls_ssl_setup(&ssl, &conf))
		return 2;
	mbedtls_ssl_set_bio(&ssl, &fd, cl_send, cl_recv, NULL);
	for (;;) {
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&sa, salen) != 0)
			break; /* the server has stopped */
		if (resume && have_sess)
			mbedtls_ssl_set_session(&ssl, &sess);
		int h = mbedtls_ssl_handshake(&ssl), r = 0;
		/* (WANT_READ on this blocking socket: 3.6 has just seen a
		 * ticket and hands it over on the next call) */
		for (int i = 0; h == 0 && i < 100; i++) {
			r = mbedtls_ssl_read(&ssl, buf, sizeof buf);
			if (r <= 0 && r != MBEDTLS_ERR_SSL_WANT_READ)
				break;
		}
		if (h == 0 && resume) {
#ifdef HAVE_TICKET13
			int got = r == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET ||
				  strcmp(mbedtls_ssl_get_version(&ssl), "TLSv1.3") != 0;
#else
			int got = 1;
#endif
			(void)r;
			if (got) {
				mbedtls_ssl_session_free(&sess);
				mbedtls_ssl_session_init(&sess);
				have_sess = mbedtls_ssl_get_session(&ssl, &sess) == 0;
			}
		}
		close(fd);
		fd = -1;
		mbedtls_ssl_session_reset(&ssl);
	}
	mbedtls_ssl_session_free(&sess);
	if (fd >= 0)
		close(fd);
	mbedtls_ssl_free(&ssl);
	mbedtls_ssl_config_free(&conf);
	mbedtls_ctr_drbg_free(&drbg);
	mbedtls_entropy_free(&ent);
	return rc;
}

static long long now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static long long cpu_us(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ((long long)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 +
	       ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
}

int main(int argc, char **argv)
{
	long long seconds = 5, count = 0, done = 0, failed = 0, resumed = 0;
	int resume = 0, max12 = 0;
	char err[256], cipher[96] = "", version[16] = "";
	struct sockaddr_un sa;
	int opt, lfd, status = 0;

	while ((opt = getopt(argc, argv, "s:n:rv:")) != -1) {
		if (opt == 's')
			seconds = atoll(optarg);
		else if (opt == 'n')
			count = atoll(optarg);
		else if (opt == 'r')
			resume = 1;
		else if (opt == 'v' && strcmp(optarg, "12") == 0)
			max12 = 1;
		else
			goto usage;
	}
	if (argc - optind != 2 || seconds <= 0 || count < 0) {
usage:
		fprintf(stderr, "usage: %s [-s SECONDS] [-n COUNT] [-r] [-v 12] CERT KEY\n", argv[0]);
		return 2;
	}

	const struct tls_opts o = { .certificate = argv[optind],
				    .key = argv[optind + 1],
				    .max_sessions = 1,
				    .min_version = 12,
				    .session_tickets = true };
	struct tls *t = tls_open(&o, err, sizeof err);
	if (!t) {
		fprintf(stderr, "tls_open: %s\n", err);
		return 1;
	}
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	socklen_t salen = bench_addr(&sa, getpid());
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, salen) != 0 || listen(lfd, 16) != 0) {
		perror("listen");
		return 1;
	}
	pid_t self = getpid();
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		close(lfd);
		tls_free(t);
		_exit(client_loop(self, resume, max12));
	}
	if (pid < 0) {
		perror("fork");
		return 1;
	}

	long long w0 = now_us(), c0 = cpu_us(), end = w0 + seconds * 1000000;
	while (count ? done + failed < count : now_us() < end) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR)
				continue;
			perror("accept");
			break;
		}
		int idx = tls_acquire(t, fd), r = TLS_WANT_READ;
		while (idx >= 0 && (r == TLS_WANT_READ || r == TLS_WANT_WRITE)) {
			r = tls_handshake(t, idx);
			if (r == TLS_WANT_READ || r == TLS_WANT_WRITE) {
				short ev = r == TLS_WANT_READ ? POLLIN : POLLOUT;
				struct pollfd p = { .fd = fd, .events = ev };
				if (poll(&p, 1, 5000) <= 0)
					break;
			}
		}
		if (r == 0) {
			done++;
			resumed += tls_resumed(t, idx);
			if (!cipher[0]) {
				snprintf(cipher, sizeof cipher, "%s", tls_cipher_name(t, idx));
				snprintf(version, sizeof version, "%s", tls_version_name(t, idx));
			}
		} else {
			failed++;
		}
		if (idx >= 0)
			tls_release(t, idx);
		close(fd);
	}
	long long wall = now_us() - w0, cpu = cpu_us() - c0;
	close(lfd);
	waitpid(pid, &status, 0);
	tls_free(t);

	if (done == 0 || wall <= 0) {
		fprintf(stderr, "no handshake completed (%lld failed)\n", failed);
		return 1;
	}
	long long rate10 = done * 10000000 / wall;           /* handshakes/s × 10 */
	long long per_hs = cpu / done;                        /* µs of server CPU */
	long long core10 = per_hs ? 10000000 / per_hs : 0;    /* per core, × 10 */
	printf("%s %s %s: %lld handshakes (%lld resumed) in %lld.%03lld s, %lld failed: "
	       "%lld.%lld/s wall; server CPU %lld.%03lld ms each = %lld.%lld/s per core\n",
	       tls_library_version(), version, cipher, done, resumed, wall / 1000000,
	       wall / 1000 % 1000, failed, rate10 / 10, rate10 % 10, per_hs / 1000, per_hs % 1000,
	       core10 / 10, core10 % 10);
	return failed ? 1 : 0;
}
