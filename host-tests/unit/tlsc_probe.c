/* tlsc_probe: the TLS client (tls_client.h) against a real server, for
 * host-tests/integration/test_tls_client.py (openssl s_server -www).
 *
 *   tlsc_probe PORT [-c CA_FILE] [-n NAME] [-s SESSIONS]
 *
 * Connects to 127.0.0.1:PORT non-blocking, handshakes (verifying against
 * CA_FILE and NAME when given), sends an HTTP/1.0 GET, reads the answer
 * to its end, and prints one line: "ok VERSION CIPHER | first reply line"
 * (exit 0), or "error MESSAGE" (exit 1); usage and set-up faults exit 2.
 * With -s, it does that SESSIONS times over one pool of one slot, so the
 * reset-and-reuse path meets the real server too. */
#include "tls_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int wait_fd(int fd, int r)
{
	struct pollfd p = { .fd = fd, .events = r == TLS_WANT_WRITE ? POLLOUT : POLLIN };

	return poll(&p, 1, 10000) == 1 ? 0 : -1;
}

static int connect_to(unsigned port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int e = 0;
	socklen_t el = sizeof e;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 &&
	    (errno != EINPROGRESS || wait_fd(fd, TLS_WANT_WRITE) != 0 ||
	     getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) != 0 || e != 0)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* One session on the pool: 0 ok, 1 TLS failure, 2 anything else. */
static int session(struct tls_client *t, int profile, unsigned port, const char *name)
{
	static const char req[] = "GET / HTTP/1.0\r\n\r\n";
	char buf[4096], first[256] = "";
	size_t flen = 0;
	int fd = connect_to(port), idx, r = TLS_WANT_WRITE, rc = 0;
	ssize_t n;

	if (fd < 0) {
		printf("error connect: %s\n", strerror(errno));
		return 2;
	}
	idx = tlsc_acquire(t, profile, fd, name);
	if (idx < 0) {
		printf("error acquire: %d\n", idx);
		close(fd);
		return 2;
	}
	while (r == TLS_WANT_READ || r == TLS_WANT_WRITE) {
		r = tlsc_handshake(t, idx);
		if ((r == TLS_WANT_READ || r == TLS_WANT_WRITE) && wait_fd(fd, r) != 0)
			break;
	}
	if (r != 0) {
		printf("error %s\n", r == TLS_ERROR ? tlsc_error(t, idx) : "handshake timed out");
		rc = 1;
		goto out;
	}
	for (n = TLS_WANT_WRITE; n == TLS_WANT_WRITE || n == TLS_WANT_READ;) {
		n = tlsc_write(t, idx, req, sizeof req - 1);
		if ((n == TLS_WANT_READ || n == TLS_WANT_WRITE) && wait_fd(fd, (int)n) != 0)
			break;
	}
	if (n != (ssize_t)(sizeof req - 1)) {
		printf("error write %zd\n", n);
		rc = 1;
		goto out;
	}
	/* To the server's close (its close_notify or EOF). */
	for (;;) {
		n = tlsc_read(t, idx, buf, sizeof buf);
		if (n > 0) {
			for (ssize_t i = 0; i < n && flen + 1 < sizeof first; i++) {
				if (buf[i] == '\r' || buf[i] == '\n') {
					flen = sizeof first; /* the first line is complete */
					break;
				}
				first[flen++] = buf[i];
				first[flen] = '\0';
			}
			continue;
		}
		if ((n == TLS_WANT_READ || n == TLS_WANT_WRITE) && wait_fd(fd, (int)n) == 0)
			continue;
		break;
	}
	if (n != 0 && n != TLS_CLOSED) {
		printf("error read %zd\n", n);
		rc = 1;
		goto out;
	}
	printf("ok %s %s | %s\n", tlsc_version_name(t, idx), tlsc_cipher_name(t, idx), first);
	/* Ours in return; the server may be gone already. */
	for (r = TLS_WANT_WRITE; r == TLS_WANT_WRITE || r == TLS_WANT_READ;) {
		r = tlsc_close_notify(t, idx);
		if ((r == TLS_WANT_READ || r == TLS_WANT_WRITE) && wait_fd(fd, r) != 0)
			break;
	}
out:
	tlsc_release(t, idx);
	close(fd);
	return rc;
}

int main(int argc, char **argv)
{
	const char *ca = NULL, *name = NULL;
	unsigned sessions = 1, port;
	char err[256];
	struct tls_client *t;
	int opt, profile, rc = 0;

	while ((opt = getopt(argc, argv, "c:n:s:")) != -1) {
		if (opt == 'c')
			ca = optarg;
		else if (opt == 'n')
			name = optarg;
		else if (opt == 's')
			sessions = (unsigned)strtoul(optarg, NULL, 10);
		else
			return 2;
	}
	if (optind + 1 != argc || sessions == 0) {
		fprintf(stderr, "usage: tlsc_probe PORT [-c CA_FILE] [-n NAME] [-s SESSIONS]\n");
		return 2;
	}
	port = (unsigned)strtoul(argv[optind], NULL, 10);
	t = tlsc_open(1, err, sizeof err);
	if (!t) {
		printf("error open: %s\n", err);
		return 2;
	}
	profile = tlsc_profile(t, ca, err, sizeof err);
	if (profile < 0) {
		printf("error profile: %s\n", err);
		tlsc_free(t);
		return 2;
	}
	for (unsigned i = 0; i < sessions && rc == 0; i++) {
		rc = session(t, profile, port, name);
		fflush(stdout);
	}
	tlsc_free(t);
	return rc;
}
