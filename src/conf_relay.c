/* conf_relay: the [relay "NAME"] sections after the last line (SPEC §3,
 * §10): what each needs, the keys that need each other, the CA file and
 * the password file, and the checks across relays.
 *
 * The password is read here, at every load (check, start, reload, set),
 * so serving never opens a file and a reload picks up a new password.
 * The file must be the daemon's secret alone: group or other bits are an
 * error, as ssh does for a private key, since a password readable by
 * anyone on the router is one anyone can relay with.
 */
#include "conf_int.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* The line relay key i was given on, else the relay's header. */
static int rline(const struct pstate *st, unsigned r, unsigned i)
{
	int l = st->rextra[r].seen[i];

	return l ? l : st->relays[r].line;
}

/* Regular (stat first: opening a device or FIFO could block or act) and
 * readable by whoever loads it, the daemon user at a reload. */
static void check_ca_file(struct pstate *st, const char *path, int line)
{
	struct stat sb;
	const char *what;
	int fd;

	if (stat(path, &sb) != 0) {
		conf_err_at(st, line, "ca_file: %s: %s", path, strerror(errno));
		return;
	}
	what = util_not_regular(sb.st_mode);
	if (what) {
		conf_err_at(st, line, "ca_file: %s is %s, not a regular file", path, what);
		return;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		conf_err_at(st, line, "ca_file: %s: %s", path, strerror(errno));
		return;
	}
	close(fd);
}

/* Reads up to len octets (fewer only at the end of the file). */
static ssize_t read_full(int fd, char *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* The first line of the file without its line end (LF or CRLF) into
 * rc->auth_password. */
static void read_password(struct pstate *st, struct relay_conf *rc, int line)
{
	const char *path = rc->auth_password_file;
	char buf[CONF_TEXT_MAX + 1];
	struct stat sb;
	const char *what;
	char *nl;
	ssize_t n;
	size_t len;
	int fd;

	if (stat(path, &sb) != 0) {
		conf_err_at(st, line, "auth_password_file %s: %s", path, strerror(errno));
		return;
	}
	what = util_not_regular(sb.st_mode);
	if (what) {
		conf_err_at(st, line, "auth_password_file %s: is %s, not a regular file", path, what);
		return;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0 || fstat(fd, &sb) != 0) {
		conf_err_at(st, line, "auth_password_file %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return;
	}
	/* fstat: the mode of the file that is read, not of what the name
	 * pointed at a moment before. */
	if (sb.st_mode & 077) {
		conf_err_at(st, line, "auth_password_file %s: mode %04o, must be 0600", path,
			    (unsigned)(sb.st_mode & 07777));
		close(fd);
		return;
	}
	n = read_full(fd, buf, sizeof buf);
	close(fd);
	if (n < 0) {
		conf_err_at(st, line, "auth_password_file %s: %s", path, strerror(errno));
		return;
	}
	nl = memchr(buf, '\n', (size_t)n);
	len = nl ? (size_t)(nl - buf) : (size_t)n;
	if (len && buf[len - 1] == '\r')
		len--;
	if (len >= CONF_TEXT_MAX)
		conf_err_at(st, line, "auth_password_file %s: the password is longer than %d octets", path,
			    CONF_TEXT_MAX - 1);
	else if (len == 0)
		conf_err_at(st, line, "auth_password_file %s: the first line is empty (it is the password)", path);
	else if (memchr(buf, '\0', len))
		/* AUTH PLAIN separates its fields with NUL. */
		conf_err_at(st, line, "auth_password_file %s: the password holds a NUL octet", path);
	else {
		memcpy(rc->auth_password, buf, len);
		rc->auth_password[len] = '\0';
	}
	explicit_bzero(buf, sizeof buf);
}

static void finish_relay(struct pstate *st, unsigned r)
{
	struct relay_conf *rc = &st->relays[r];
	const int *seen = st->rextra[r].seen;
	char a[24], b[24];

	if (!seen[R_HOST])
		conf_err_at(st, rc->line, "[relay \"%s\"] needs host = ip:port, [ipv6]:port or unix:/path", rc->name);
	if (!seen[R_DOMAINS])
		conf_err_at(st, rc->line, "[relay \"%s\"] needs domains = DOMAIN, ... (or * for a smarthost)",
			    rc->name);
	rc->domains_line = rline(st, r, R_DOMAINS);
	if (rc->retry_max < rc->retry_min) {
		format_timespan(rc->retry_max, a, sizeof a);
		format_timespan(rc->retry_min, b, sizeof b);
		conf_err_at(st, seen[R_RETRY_MAX] ? seen[R_RETRY_MAX] : rline(st, r, R_RETRY_MIN),
			    "retry_max: %s is below retry_min %s", a, b);
	}
	if (rc->auth_user[0] && !rc->auth_password_file[0])
		conf_err_at(st, rline(st, r, R_AUTH_USER), "auth_user needs auth_password_file");
	if (!rc->auth_user[0] && rc->auth_password_file[0])
		conf_err_at(st, rline(st, r, R_PASSWORD_FILE), "auth_password_file needs auth_user");
	/* The password never goes out in clear (SPEC §3). */
	if (rc->auth_user[0] && rc->starttls == SC_TLS_NO)
		conf_err_at(st, rline(st, r, R_AUTH_USER),
			    "auth_user: AUTH is sent only inside TLS, and starttls is no");
#ifdef TARPITD_NO_TLS
	else if (rc->auth_user[0])
		conf_err_at(st, rline(st, r, R_AUTH_USER),
			    "auth_user: AUTH is sent only inside TLS, and this tarpitd is built without TLS (TLS=0)");
#endif
	/* Verifying a chain without a name would accept any certificate the
	 * CA ever signed. With opportunistic, ca_file and tls_name are not
	 * used (docs/config.md), so they are accepted as they are. */
	if (rc->starttls == SC_TLS_REQUIRED && rc->ca_file[0] && !rc->tls_name[0])
		conf_err_at(st, rline(st, r, R_CA_FILE), "tls_name is required with ca_file");
	conf_resolve_path(st, rc->ca_file, "ca_file", rline(st, r, R_CA_FILE));
	conf_resolve_path(st, rc->auth_password_file, "auth_password_file", rline(st, r, R_PASSWORD_FILE));
	if (rc->ca_file[0])
		check_ca_file(st, rc->ca_file, rline(st, r, R_CA_FILE));
	if (rc->auth_password_file[0] && rc->auth_user[0])
		read_password(st, rc, rline(st, r, R_PASSWORD_FILE));
}

/* Whether relay a lists domain d (lower-case, NUL-terminated). */
static bool lists(const struct relay_conf *a, const char *d)
{
	const char *p = a->domains;
	unsigned i;

	for (i = 0; i < a->ndomains; p += strlen(p) + 1, i++)
		if (strcmp(p, d) == 0)
			return true;
	return false;
}

/* A domain names one next hop, and there is one smarthost: routing is
 * then a plain lookup, never a choice. Reported at the later relay. */
static void check_across(struct pstate *st, unsigned r)
{
	const struct relay_conf *rc = &st->relays[r];
	const char *p = rc->domains;
	unsigned i, j;

	for (j = 0; j < r; j++) {
		if (rc->smarthost && st->relays[j].smarthost) {
			conf_err_at(st, rc->domains_line, "domains: * is also relay \"%s\"'s (line %d): one smarthost only",
				    st->relays[j].name, st->relays[j].domains_line);
			break;
		}
	}
	for (i = 0; i < rc->ndomains; p += strlen(p) + 1, i++) {
		for (j = 0; j < r; j++) {
			if (lists(&st->relays[j], p)) {
				conf_err_at(st, rc->domains_line, "domains: %s is also in relay \"%s\" (line %d)", p,
					    st->relays[j].name, st->relays[j].domains_line);
				break;
			}
		}
	}
}

void conf_finish_relays(struct pstate *st)
{
	unsigned r;

	for (r = 0; r < st->nrelays; r++) {
		finish_relay(st, r);
		check_across(st, r);
	}
}
