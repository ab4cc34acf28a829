/* admin_passwd: `tarpitd passwd`, the prompt and checks in front of
 * the users file writer (passwd.h; see admin.h). */
#include "admin_int.h"

#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "passwd.h"
#include "users.h"

/* ---- passwd ----------------------------------------------------------------- */

int admin_read_password(FILE *in, char *buf, size_t bufsz, size_t *len)
{
	size_t n = 0;
	bool over = false;
	int ch;

	*len = 0;
	if (!buf || bufsz == 0)
		return -2;
	buf[0] = '\0';
	while ((ch = getc(in)) != EOF && ch != '\n') {
		/* CRLF ends the line too; a CR before anything else is content. */
		if (ch == '\r') {
			int next = getc(in);

			if (next == '\n')
				break;
			if (next != EOF)
				ungetc(next, in);
		}
		if (n + 1 < bufsz)
			buf[n++] = (char)ch;
		else
			over = true;
	}
	if (ch == EOF && ferror(in))
		return -3;
	buf[n] = '\0';
	if (over)
		return -2;
	*len = n;
	return n ? 0 : -1;
}

/* The terminal as it was before echo went off, for the signal handler. */
static struct termios saved_tty;
static volatile sig_atomic_t tty_changed;

static void restore_tty(void)
{
	if (tty_changed) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tty);
		tty_changed = 0;
	}
}

/* An interrupted prompt must not leave the terminal without echo. */
static void on_signal(int sig)
{
	restore_tty();
	(void)!write(STDERR_FILENO, "\n", 1);
	signal(sig, SIG_DFL);
	raise(sig);
}

static int prompt(const char *text, char *buf, size_t bufsz, size_t *len)
{
	struct termios t;
	int r;

	fputs(text, stderr);
	fflush(stderr);
	if (tcgetattr(STDIN_FILENO, &saved_tty) == 0) {
		t = saved_tty;
		t.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK);
		t.c_lflag |= ECHONL;
		if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &t) == 0)
			tty_changed = 1;
	}
	r = admin_read_password(stdin, buf, bufsz, len);
	restore_tty();
	return r;
}

static void wipe(void *p, size_t n)
{
	volatile unsigned char *q = p;

	while (n--)
		*q++ = 0;
}

int admin_passwd(const char *path, int argc, char **argv)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGQUIT, SIGHUP };
	static char pw[AUTH_PASS_MAX + 2], again[AUTH_PASS_MAX + 2];
	static char err[PATH_MAX + 256];
	const char *user;
	struct sigaction sa, old[4];
	struct stat st;
	size_t len = 0, len2 = 0, i;
	bool existed;
	int r, status = 1;

	if (argc < 1)
		return admin_fail(2, "passwd needs a USER");
	if (argv[0][0] == '-' && argv[0][1] == '-')
		return admin_unknown_option("passwd", argv[0]);
	if (argc > 1)
		return admin_fail(2, "passwd takes one USER ('%s' is extra)", admin_echo(argv[1]));
	user = argv[0];
	if (admin_load_or_report(path) != 0)
		return 1;
	if (!admin_cfg.auth.enabled) {
		admin_fail(1, "no [auth] users file configured");
		goto out;
	}
	if (!users_name_ok(user, strlen(user))) {
		admin_fail(1, "'%s' is not a valid user name (1 to %d printable ASCII octets without ':' or white space, "
			"not starting with '#')", admin_echo(user), AUTH_USER_MAX);
		goto out;
	}

	if (isatty(STDIN_FILENO)) {
		char text[AUTH_USER_MAX + 64];

		memset(&sa, 0, sizeof sa);
		sa.sa_handler = on_signal;
		sigemptyset(&sa.sa_mask);
		for (i = 0; i < 4; i++)
			sigaction(sigs[i], &sa, &old[i]);
		snprintf(text, sizeof text, "Password for %s: ", user);
		r = prompt(text, pw, sizeof pw, &len);
		if (r == 0 && prompt("Retype the password: ", again, sizeof again, &len2) == 0 &&
		    (len2 != len || memcmp(pw, again, len) != 0))
			r = -4;
		for (i = 0; i < 4; i++)
			sigaction(sigs[i], &old[i], NULL);
	} else {
		r = admin_read_password(stdin, pw, sizeof pw, &len);
	}
	/* pw holds one octet more than allowed, to tell "too long" apart. */
	if (r == 0 && len > AUTH_PASS_MAX)
		r = -2;
	if (r == -1)
		admin_fail(1, "empty password");
	else if (r == -2)
		admin_fail(1, "password longer than %d octets", AUTH_PASS_MAX);
	else if (r == -4)
		admin_fail(1, "the passwords do not match");
	else if (r != 0)
		admin_fail(1, "cannot read the password: %s", strerror(errno));
	if (r != 0)
		goto out;
	existed = stat(admin_cfg.auth.users, &st) == 0;
	if (users_set_password(admin_cfg.auth.users, user, pw, len, err, sizeof err) != 0) {
		admin_fail(1, "%s", err);
		goto out;
	}
	/* The server reloads the file after dropping privileges: a file that
	 * root creates here must belong to the user it runs as. An existing
	 * file keeps its owner (users_set_password sees to that). */
	if (!existed && geteuid() == 0 && admin_cfg.server.user[0]) {
		struct passwd *pwd = getpwnam(admin_cfg.server.user);

		if (!pwd || chown(admin_cfg.auth.users, pwd->pw_uid, pwd->pw_gid) != 0)
			admin_fail(1, "cannot give %s to user %s: %s", admin_cfg.auth.users, admin_cfg.server.user,
			     pwd ? strerror(errno) : "no such user");
	}
	printf("tarpitd: password for %s set in %s\n", user, admin_cfg.auth.users);
	fflush(stdout);
	admin_tell_server(admin_cfg.server.pidfile, admin_cfg.server.control);
	status = 0;
out:
	wipe(pw, sizeof pw);
	wipe(again, sizeof again);
	config_free(&admin_cfg);
	return status;
}
