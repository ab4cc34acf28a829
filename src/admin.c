/* admin: see admin.h.
 *
 * `set` never writes what it has not validated: the edited text goes to a
 * temporary file beside the INI file (so relative paths resolve the same),
 * config_load judges it, and only then does rename() put it in place.
 * Lines are read by ini_line, config_load's own line model (comments,
 * quoted section names, indented continuation lines), so the line it
 * edits is the line config_load reads the key from.
 */
#include "admin.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "fileio.h"
#include "ini_line.h"
#include "log.h"
#include "util.h"


/* The commands' large state is static: one command runs per process, and
 * a stack frame this large costs MIPS16 code on every access. */
static struct config cfg;
static char load_err[16384];

/* Every message of the commands is one "tarpitd: ..." line; returns
 * status so a command can end with it. */
static int __attribute__((format(printf, 2, 3))) fail(int status, const char *fmt, ...)
{
	va_list ap;

	fputs("tarpitd: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return status;
}

/* An argument quoted back is cut and made printable (log_echo), so it
 * cannot garble the terminal the error is shown on. One per message. */
static const char *echo(const char *s)
{
	static char buf[LOG_ECHO_BUF];

	return log_echo(buf, sizeof buf, s, strlen(s));
}

static int unknown_option(const char *cmd, const char *arg)
{
	return fail(2, "%s: unknown option '%s'", cmd, echo(arg));
}

static int no_connector(const char *name)
{
	return fail(1, "no connector named '%s'", echo(name));
}

static int out_of_memory(void)
{
	return fail(1, "out of memory");
}

/* ---- the INI text as lines ------------------------------------------------ */

/* One line of the text, as ini_line reads it. */
struct line {
	struct ini_line l;
	size_t start, end; /* the line, without its line end */
	size_t next;       /* where the next line starts */
	int sect;          /* header line of the connector section it is in, -1 none */
	size_t name_s, name_e; /* a connector header's name */
};

struct model {
	const char *t;
	struct line *lines;
	size_t nlines;
	const char *eol; /* "\r\n" when the file's first line end is CRLF */
};

static int model_build(struct model *m, const char *text, size_t len)
{
	struct ini_ctx ctx = { 0 };
	size_t i, n = 1, pos;
	int sect = -1;

	memset(m, 0, sizeof *m);
	m->t = text;
	m->eol = "\n";
	for (i = 0; i < len; i++)
		if (text[i] == '\n')
			n++;
	m->lines = calloc(n, sizeof *m->lines);
	if (!m->lines)
		return -1;
	for (pos = 0; pos < len; pos = m->lines[m->nlines++].next) {
		struct line *l = &m->lines[m->nlines];

		l->start = pos;
		l->next = ini_line_end(text, len, pos, &l->end);
		if (m->nlines == 0 && l->next > l->end + 1)
			m->eol = "\r\n";
		ini_line_parse(&ctx, text, l->start, l->end, &l->l);
		if (l->l.kind == INI_HEADER)
			sect = ini_header_connector(text, l->l.s, l->l.e, &l->name_s, &l->name_e)
				       ? (int)m->nlines : -1;
		l->sect = sect;
	}
	return 0;
}

/* Whether line s heads a connector section called name (NULL: any). */
static bool section_is(const struct model *m, size_t s, const char *name)
{
	const struct line *l = &m->lines[s];
	size_t n = l->name_e - l->name_s;

	return l->l.kind == INI_HEADER && l->sect == (int)s &&
	       (!name || (strlen(name) == n && strncasecmp(m->t + l->name_s, name, n) == 0));
}

static bool key_is(const struct model *m, const struct line *l, const char *key)
{
	size_t n = l->l.key_e - l->l.key_s;

	return l->l.kind == INI_KEY && strlen(key) == n && memcmp(m->t + l->l.key_s, key, n) == 0;
}

/* ---- rewriting -------------------------------------------------------------- */

struct buf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void put(struct buf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		p = realloc(b->p, cap);
		if (!p) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void puts_(struct buf *b, const char *s)
{
	put(b, s, strlen(s));
}

/* What becomes of a line; A_INSERT (a new key after it) goes with A_COPY
 * or A_REPLACE. */
enum act { A_COPY, A_REPLACE, A_DROP, A_KIND = 3, A_INSERT = 4 };

/* One edit (ed NULL: none, only the count) over text, into a new text. */
static char *rewrite_one(const char *text, size_t len, const char *name, const struct admin_edit *ed,
			 size_t *outlen, unsigned *nsections)
{
	struct model m;
	struct buf out = { 0 };
	unsigned char *act;
	size_t i, s;

	if (model_build(&m, text, len) != 0)
		return NULL;
	act = calloc(m.nlines + 1, 1);
	*nsections = 0;
	for (s = 0; act && s < m.nlines; s++) {
		size_t anchor = s;
		bool found = false;

		if (!section_is(&m, s, name))
			continue;
		(*nsections)++;
		for (i = s + 1; ed && i < m.nlines && m.lines[i].sect == (int)s; i++) {
			const struct line *l = &m.lines[i];

			if (l->l.kind == INI_KEY || l->l.kind == INI_CONT)
				anchor = i;
			if (!found && key_is(&m, l, ed->key)) {
				size_t j;

				found = true;
				act[i] = A_REPLACE;
				for (j = i + 1; j < m.nlines; j++) {
					if (m.lines[j].l.kind == INI_CONT)
						act[j] = A_DROP;
					else if (m.lines[j].l.kind != INI_BLANK)
						break;
				}
			}
		}
		if (ed && !found)
			act[anchor] |= A_INSERT;
	}

	for (i = 0; act && i < m.nlines; i++) {
		const struct line *l = &m.lines[i];

		if ((act[i] & A_KIND) == A_REPLACE) {
			put(&out, text + l->start, l->l.val_s - l->start);
			if (l->l.val_s == l->l.val_e && ed->value[0])
				puts_(&out, " ");
			puts_(&out, ed->value);
			put(&out, text + l->l.val_e, l->next - l->l.val_e);
		} else if ((act[i] & A_KIND) == A_COPY) {
			put(&out, text + l->start, l->next - l->start);
		}
		if (act[i] & A_INSERT) {
			/* A CR alone ends only the last line: it must not end up
			 * before the new line's first octet. */
			bool ended = l->next > l->end && text[l->next - 1] == '\n';

			if (!ended)
				puts_(&out, m.eol);
			puts_(&out, ed->key);
			puts_(&out, ed->value[0] ? " = " : " =");
			puts_(&out, ed->value);
			if (ended)
				puts_(&out, m.eol);
		}
	}
	put(&out, "", 0);
	if (!act || out.oom) {
		free(out.p);
		out.p = NULL;
	}
	*outlen = out.len;
	free(act);
	free(m.lines);
	return out.p;
}

char *admin_rewrite(const char *text, size_t len, const char *name, const struct admin_edit *edits,
		    size_t nedits, size_t *outlen, unsigned *nsections)
{
	char *cur = NULL;
	size_t curlen = len, i = 0;
	unsigned ns = 0;

	do {
		char *next = rewrite_one(cur ? cur : text, curlen, name, nedits ? &edits[i] : NULL, &curlen, &ns);

		free(cur);
		if (!next)
			return NULL;
		cur = next;
	} while (++i < nedits);
	if (outlen)
		*outlen = curlen;
	if (nsections)
		*nsections = ns;
	return cur;
}

/* The value of key in the section called name, as written (list
 * continuations joined with a space); false if the key is absent. Used
 * only when the old file does not load, so no effective value exists;
 * the new one did, so name is the only section of that name. */
static bool raw_value(const char *text, size_t len, const char *name, const char *key, struct buf *out)
{
	struct model m;
	size_t s, i;
	bool found = false;

	if (model_build(&m, text, len) != 0)
		return false;
	for (s = 0; s < m.nlines && !found; s++) {
		if (!section_is(&m, s, name))
			continue;
		for (i = s + 1; i < m.nlines && m.lines[i].sect == (int)s; i++) {
			const struct line *l = &m.lines[i];

			if (found) {
				if (l->l.kind == INI_CONT) {
					puts_(out, " ");
					put(out, text + l->l.s, l->l.e - l->l.s);
				} else if (l->l.kind != INI_BLANK) {
					break;
				}
			} else if (key_is(&m, l, key)) {
				found = true;
				put(out, text + l->l.val_s, l->l.val_e - l->l.val_s);
			}
		}
	}
	free(m.lines);
	return found && !out->oom;
}

int admin_value_ok(const char *v)
{
	size_t i;

	for (i = 0; v[i]; i++) {
		unsigned char ch = (unsigned char)v[i];

		if (ch < 0x20 || ch == 0x7f)
			return -1;
		if ((ch == ';' || ch == '#') && (i == 0 || v[i - 1] == ' '))
			return -1;
	}
	return 0;
}

/* ---- show ------------------------------------------------------------------- */

int admin_parse_fields(const char *list, unsigned *fields, size_t max, size_t *n, char *bad,
		       size_t badlen)
{
	const char *p = list;

	*n = 0;
	if (bad && badlen)
		bad[0] = '\0';
	for (;;) {
		const char *comma = strchr(p, ',');
		const char *a = p, *b = comma ? comma : p + strlen(p);
		char item[CONF_NAME_MAX + 8];
		size_t len;
		int f = -1;

		while (a < b && util_is_ws(*a))
			a++;
		while (b > a && util_is_ws(b[-1]))
			b--;
		len = (size_t)(b - a);
		if (len > sizeof item - 1)
			len = sizeof item - 1;
		memcpy(item, a, len);
		item[len] = '\0';
		if (len > 0 && (size_t)(b - a) < CONF_NAME_MAX)
			f = conf_field_find(item);
		if (f < 0) {
			if (bad && badlen)
				log_echo(bad, badlen, item, len);
			return -1;
		}
		if (*n >= max)
			return -2;
		fields[(*n)++] = (unsigned)f;
		if (!comma)
			return 0;
		p = comma + 1;
	}
}

/* Padding is held back until something follows it, so no line ends in
 * spaces. */
static void cell(FILE *out, const char *s, size_t width, bool last, size_t *pending)
{
	size_t n = strlen(s);

	if (n) {
		for (; *pending; (*pending)--)
			fputc(' ', out);
		fputs(s, out);
	}
	if (!last)
		*pending += width + 2 - n;
}

int admin_print_table(FILE *out, const struct config *cfg, const char *name, const unsigned *fields,
		      size_t nfields)
{
	static char val[CONF_FIELD_MAX];
	size_t width[ADMIN_MAX_FIELDS] = { 0 };
	size_t i, pending;
	bool any = false;
	int pass, r;

	if (nfields > ADMIN_MAX_FIELDS)
		nfields = ADMIN_MAX_FIELDS;
	/* Rows -2 (titles) and -1 (dashes), then the connectors: measured
	 * in the first pass, printed in the second. */
	for (pass = 0; pass < 2; pass++) {
		if (pass == 1 && !any)
			return -1;
		for (r = -2; r < (int)cfg->nconnectors; r++) {
			if (r >= 0 && name && strcasecmp(cfg->connectors[r].name, name) != 0)
				continue;
			any |= r >= 0;
			pending = 0;
			for (i = 0; i < nfields; i++) {
				const char *title = conf_field_title(fields[i]);
				const char *s = val;
				size_t n;

				if (r == -2) {
					s = title;
				} else if (r == -1) {
					n = strlen(title);
					memset(val, '-', n);
					val[n] = '\0';
				} else {
					conf_field_format(&cfg->connectors[r], fields[i], val, sizeof val);
				}
				n = strlen(s);
				if (pass == 0 && n > width[i])
					width[i] = n;
				if (pass == 1)
					cell(out, s, width[i], i + 1 == nfields, &pending);
			}
			if (pass == 1)
				fputc('\n', out);
		}
	}
	return 0;
}

static int load_or_report(const char *path)
{
	if (config_load(&cfg, path, load_err, sizeof load_err) != 0) {
		fprintf(stderr, "%s\n", load_err);
		return -1;
	}
	return 0;
}

/* stdout, written out: 0, or 1 after saying why. */
static int flush_stdout(const char *cmd)
{
	if (fflush(stdout) != 0)
		return fail(1, "%s: cannot write: %s", cmd, strerror(errno));
	return 0;
}

int admin_show(const char *path, int argc, char **argv)
{
	unsigned fields[ADMIN_MAX_FIELDS];
	size_t nfields = 0;
	const char *name = NULL, *list = NULL;
	char bad[LOG_ECHO_BUF];
	int i, r;

	for (i = 0; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--fields") == 0 || strncmp(a, "--fields=", 9) == 0) {
			if (list)
				return fail(2, "show: --fields given twice");
			if (a[8] == '=')
				list = a + 9;
			else if (i + 1 < argc)
				list = argv[++i];
			else
				return fail(2, "show: --fields needs a list of fields (F,..)");
		} else if (a[0] == '-' && a[1] == '-') {
			return unknown_option("show", a);
		} else if (name) {
			return fail(2, "show takes at most one connector NAME ('%s' is extra)", echo(a));
		} else {
			name = a;
		}
	}
	r = admin_parse_fields(list ? list : "Name,Enabled,Bindings,RemoteIPRanges,TarpitInterval", fields,
			       ADMIN_MAX_FIELDS, &nfields, bad, sizeof bad);
	if (r == -1 && bad[0])
		return fail(2, "show: unknown field '%s' (fields are Name and the connector keys, by INI or "
			       "Exchange name)", bad);
	if (r == -1)
		return fail(2, "show: empty field name in --fields");
	if (r == -2)
		return fail(2, "show: more than %d fields", ADMIN_MAX_FIELDS);
	if (load_or_report(path) != 0)
		return 1;
	r = admin_print_table(stdout, &cfg, name, fields, nfields);
	config_free(&cfg);
	if (r != 0)
		return no_connector(name);
	return flush_stdout("show");
}

/* ---- set -------------------------------------------------------------------- */

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

enum { RD_ERR = -1, RD_POLL = -2, RD_BIG = -3, RD_OOM = -4, RD_TIME = -5 };

/* fd to its end into b, at most max octets. With a deadline (now_ms's
 * clock; 0 none), a wait that reaches it gives RD_TIME. 0 ok, else an
 * RD_ code with errno set. */
static int read_all(int fd, struct buf *b, size_t max, long long deadline)
{
	static char chunk[4096];

	for (;;) {
		ssize_t n;

		if (deadline) {
			struct pollfd pfd = { fd, POLLIN, 0 };
			long long left = deadline - now_ms();
			int pr;

			if (left <= 0) {
				errno = ETIMEDOUT;
				return RD_TIME;
			}
			pr = poll(&pfd, 1, (int)left);
			if (pr < 0 && errno != EINTR)
				return RD_POLL;
			if (pr <= 0)
				continue;
		}
		n = read(fd, chunk, sizeof chunk);
		if (n < 0 && (errno == EINTR || (deadline && errno == EAGAIN)))
			continue;
		if (n <= 0)
			return n < 0 ? RD_ERR : 0;
		if (b->len + (size_t)n > max) {
			errno = EFBIG;
			return RD_BIG;
		}
		put(b, chunk, (size_t)n);
		if (b->oom) {
			errno = ENOMEM;
			return RD_OOM;
		}
	}
}

/* Writes text to a new temporary file and loads it: 0 with *cfg filled,
 * -1 after printing why (the temporary file is then gone). config_load's
 * lines name the temporary file; the user knows the real one. */
static int validate(struct replacement *tg, const char *path, const char *text, size_t len,
		    struct config *cfg)
{
	size_t tl;
	const char *p;

	if (replace_write(tg, text, len, tg->st.st_mode & 07777) != 0)
		return fail(-1, "cannot write a temporary file beside %s: %s", tg->dest, strerror(errno));
	if (config_load(cfg, tg->tmp, load_err, sizeof load_err) == 0)
		return 0;
	tl = strlen(tg->tmp);
	for (p = load_err; *p;) {
		size_t n = strcspn(p, "\n");

		if (n >= tl && strncmp(p, tg->tmp, tl) == 0 && p[tl] == ':')
			fprintf(stderr, "%s%.*s\n", path, (int)(n - tl), p + tl);
		else
			fprintf(stderr, "%.*s\n", (int)n, p);
		p += n;
		if (*p == '\n')
			p++;
	}
	replace_drop(tg);
	return -1;
}

/* SIGHUP to the pid in the pidfile, if that process exists. */
static void tell_server(const char *pidfile)
{
	char s[65];
	long long pid = 0;
	ssize_t n = -1, i;
	int fd = pidfile[0] ? open(pidfile, O_RDONLY | O_CLOEXEC) : -1;

	if (fd >= 0) {
		n = read(fd, s, sizeof s);
		close(fd);
	}
	/* An empty file, or one longer than a pid and its line end, is
	 * none of ours. */
	if (n <= 0 || n >= (ssize_t)sizeof s)
		return;
	for (i = 0; i < n && s[i] >= '0' && s[i] <= '9' && pid <= INT32_MAX; i++)
		pid = pid * 10 + (s[i] - '0');
	while (i < n && (s[i] == '\n' || s[i] == '\r' || s[i] == ' ' || s[i] == '\t'))
		i++;
	/* Never 0 or -1, which would signal a whole process group. */
	if (i != n || pid < 2 || pid > INT32_MAX || (pid_t)pid == getpid())
		return;
	if (kill((pid_t)pid, 0) != 0) {
		if (errno == EPERM)
			fail(0, "the server (pid %lld) may not be signalled by this user; send it SIGHUP to reload",
			     pid);
	} else if (kill((pid_t)pid, SIGHUP) != 0) {
		fail(0, "cannot tell the server (pid %lld) to reload: %s", pid, strerror(errno));
	} else {
		printf("tarpitd: told the server (pid %lld) to reload\n", pid);
	}
}

/* The arguments of set; 0 ok, else the status after saying why. Values
 * are trimmed in place: trailing white space, which INI reading drops, is
 * not written either. */
static int parse_set_args(int argc, char **argv, bool *all, const char **name, struct admin_edit *edits,
			  size_t *nedits)
{
	int i;

	*all = false;
	*name = NULL;
	*nedits = 0;
	for (i = 0; i < argc; i++)
		if (strcmp(argv[i], "--all") == 0)
			*all = true;
	for (i = 0; i < argc; i++) {
		char *a = argv[i], *eq, *k, *ke, *v, key[CONF_NAME_MAX];
		size_t n, j;
		int f;

		if (strcmp(a, "--all") == 0)
			continue;
		if (a[0] == '-' && a[1] == '-')
			return unknown_option("set", a);
		if (!*all && !*name) {
			*name = a;
			continue;
		}
		eq = strchr(a, '=');
		k = a;
		ke = eq ? eq : a;
		while (k < ke && util_is_ws(*k))
			k++;
		while (ke > k && util_is_ws(ke[-1]))
			ke--;
		if (ke == k)
			return fail(2, "set: expected KEY=VALUE, got '%s'", echo(a));
		/* A key too long for the buffer is unknown: quoted as cut. */
		n = (size_t)(ke - k);
		if (n > sizeof key - 1)
			n = sizeof key - 1;
		memcpy(key, k, n);
		key[n] = '\0';
		if ((size_t)(ke - k) >= sizeof key)
			return fail(2, "set: unknown key '%s'", echo(key));
		if (*nedits >= ADMIN_MAX_EDITS)
			return fail(2, "set: too many KEY=VALUE arguments");
		f = conf_field_find(key);
		if (f < 0)
			return fail(2, "set: unknown key '%s'", echo(key));
		if (f == 0)
			return fail(2, "set: Name cannot be set; rename the section in the file");
		edits[*nedits].key = conf_field_key((unsigned)f);
		for (j = 0; j < *nedits; j++)
			if (edits[j].key == edits[*nedits].key)
				return fail(2, "set: %s is given twice", edits[j].key);
		for (v = eq + 1; util_is_ws(*v); v++)
			;
		if (admin_value_ok(v) != 0)
			return fail(2, "set: the value of %s holds a control character or a comment "
				       "(';' or '#' after a space)", edits[*nedits].key);
		for (n = strlen(v); n && util_is_ws(v[n - 1]); n--)
			;
		v[n] = '\0';
		edits[(*nedits)++].value = v;
	}
	if (!*all && !*name)
		return fail(2, "set needs a connector NAME or --all, then KEY=VALUE ...");
	if (*nedits == 0)
		return fail(2, "set needs at least one KEY=VALUE");
	return 0;
}

int admin_set(const char *path, int argc, char **argv)
{
	static char newv[CONF_FIELD_MAX], oldv[CONF_FIELD_MAX];
	/* The (connector, edit) pairs that change something. */
	static struct {
		unsigned char conn, edit;
	} ch[CONF_MAX_CONNECTORS * ADMIN_MAX_EDITS];
	static struct config orig, neu, again;
	static struct replacement tg;
	struct admin_edit edits[ADMIN_MAX_EDITS];
	struct buf in = { 0 }, report = { 0 };
	char *text1 = NULL, *text2 = NULL;
	const char *name;
	size_t nedits, len1 = 0, len2 = 0, nch = 0, pairs = 0, i;
	unsigned nsect = 0, c;
	bool all, orig_ok = false, loaded_new = false;
	int status = 1, fd, r;

	r = parse_set_args(argc, argv, &all, &name, edits, &nedits);
	if (r != 0)
		return r;
	r = replace_begin(&tg, path);
	if (r == 0 && tg.st.st_mode == 0) {
		errno = ENOENT;
		r = -1;
	}
	if (r != 0) {
		fprintf(stderr, "%s: cannot open: %s\n", path, strerror(errno));
		goto out;
	}
	fd = open(tg.dest, O_RDONLY | O_CLOEXEC);
	r = fd < 0 ? RD_ERR : read_all(fd, &in, ADMIN_INI_MAX, 0);
	if (r != 0)
		fprintf(stderr, "%s: cannot read: %s\n", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	if (r != 0)
		goto out;
	put(&in, "", 0);
	if (in.oom)
		goto oom;
	orig_ok = config_load(&orig, path, NULL, 0) == 0;

	text1 = admin_rewrite(in.p, in.len, all ? NULL : name, edits, nedits, &len1, &nsect);
	if (!text1)
		goto oom;
	if (!all && nsect == 0) {
		no_connector(name);
		goto out;
	}
	if (validate(&tg, path, text1, len1, &neu) != 0)
		goto out;
	loaded_new = true;

	/* Only what really changes is written and reported: setting a
	 * value a connector already has (even by default) is no change. */
	for (c = 0; c < neu.nconnectors; c++) {
		const struct connector_conf *cc = &neu.connectors[c];

		if (!all && strcasecmp(cc->name, name) != 0)
			continue;
		for (i = 0; i < nedits; i++) {
			unsigned f = (unsigned)conf_field_find(edits[i].key);
			struct buf raw = { 0 };
			const char *old = oldv;

			pairs++;
			conf_field_format(cc, f, newv, sizeof newv);
			if (orig_ok && c < orig.nconnectors)
				conf_field_format(&orig.connectors[c], f, oldv, sizeof oldv);
			else if (raw_value(in.p, in.len, cc->name, edits[i].key, &raw))
				old = raw.p;
			else
				old = "(default)";
			if (strcmp(old, newv) != 0) {
				const char *line[] = { cc->name, ": ", edits[i].key, " ", old, " -> ",
						       newv, "\n" };

				ch[nch].conn = (unsigned char)c;
				ch[nch++].edit = (unsigned char)i;
				for (size_t k = 0; k < sizeof line / sizeof line[0]; k++)
					puts_(&report, line[k]);
			}
			free(raw.p);
			if (report.oom)
				goto oom;
		}
	}
	if (nch == 0) {
		replace_drop(&tg);
		status = fail(0, "nothing to change; %s is left as it was", path);
		goto out;
	}
	if (nch < pairs) {
		/* Some edits were no-ops: write only the others, and judge
		 * that text again, since it is the one that goes in place. */
		len2 = in.len;
		for (i = 0; i < nch; i++) {
			char *next = admin_rewrite(text2 ? text2 : in.p, len2, neu.connectors[ch[i].conn].name,
						   &edits[ch[i].edit], 1, &len2, NULL);

			free(text2);
			text2 = next;
			if (!text2)
				goto oom;
		}
		if (validate(&tg, path, text2, len2, &again) != 0)
			goto out;
		config_free(&again);
	}
	r = replace_commit(&tg);
	if (r < 0) {
		fail(1, "cannot replace %s: %s", tg.dest, strerror(errno));
		goto out;
	}
	/* The new file is in place and is what a reload reads: only its
	 * survival of a power cut is in doubt, so say so and carry on. */
	if (r > 0)
		fail(0, "warning: the directory of %s could not be synced: %s", tg.dest, strerror(errno));
	fputs(report.p, stdout);
	fflush(stdout);
	tell_server(neu.server.pidfile);
	status = 0;
	goto out;
oom:
	out_of_memory();
out:
	replace_drop(&tg);
	if (loaded_new)
		config_free(&neu);
	if (orig_ok)
		config_free(&orig);
	free(text1);
	free(text2);
	free(in.p);
	free(report.p);
	return status;
}

/* ---- stats ------------------------------------------------------------------ */

int admin_stats(const char *path, int argc, char **argv)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { ADMIN_STATS_TIMEOUT_MS / 1000, 0 };
	struct buf b = { 0 };
	const char *sock = sa.sun_path;
	long long deadline;
	int fd = -1, status = 1;

	if (argc > 0)
		return fail(2, "stats takes no arguments ('%s' is extra)", echo(argv[0]));
	if (load_or_report(path) != 0)
		return 1;
	if (!cfg.server.control[0]) {
		fail(1, "no control socket configured ([server] control)");
		goto out;
	}
	if (strlen(cfg.server.control) >= sizeof sa.sun_path) {
		fail(1, "control socket path too long: %s", cfg.server.control);
		goto out;
	}
	strcpy(sa.sun_path, cfg.server.control);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fail(1, "socket: %s", strerror(errno));
		goto out;
	}
	/* A connect to a full backlog waits; SO_SNDTIMEO bounds that wait. */
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	deadline = now_ms() + ADMIN_STATS_TIMEOUT_MS;
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		if (errno == ENOENT || errno == ECONNREFUSED || errno == ENOTSOCK)
			fail(1, "the server is not running (control socket %s: %s)", sock, strerror(errno));
		else if (errno == EAGAIN || errno == EINPROGRESS)
			fail(1, "the server does not answer (control socket %s)", sock);
		else
			fail(1, "cannot connect to the control socket %s: %s", sock, strerror(errno));
		goto out;
	}
	if (send(fd, "stats\n", 6, MSG_NOSIGNAL) != 6) {
		fail(1, "cannot send to the control socket %s: %s", sock, strerror(errno));
		goto out;
	}
	switch (read_all(fd, &b, ADMIN_STATS_MAX, deadline)) {
	case 0:
		if (b.len && fwrite(b.p, 1, b.len, stdout) != b.len) {
			fail(1, "stats: cannot write: %s", strerror(errno));
			break;
		}
		status = flush_stdout("stats");
		break;
	case RD_TIME:
		fail(1, "the server did not answer within %d s (control socket %s)", ADMIN_STATS_TIMEOUT_MS / 1000, sock);
		break;
	case RD_POLL:
		fail(1, "poll: %s", strerror(errno));
		break;
	case RD_BIG:
		fail(1, "the server's answer is longer than %d octets", ADMIN_STATS_MAX);
		break;
	case RD_OOM:
		out_of_memory();
		break;
	default:
		fail(1, "reading the control socket %s: %s", sock, strerror(errno));
	}
out:
	if (fd >= 0)
		close(fd);
	free(b.p);
	config_free(&cfg);
	return status;
}

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

/* Same rule as auth.c's, checked before asking for a password in vain. */
static bool auth_name_ok(const char *s)
{
	size_t i;

	if (!s[0] || s[0] == '#')
		return false;
	for (i = 0; s[i]; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f || s[i] == ':')
			return false;
	return i <= AUTH_USER_MAX;
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
		return fail(2, "passwd needs a USER");
	if (argv[0][0] == '-' && argv[0][1] == '-')
		return unknown_option("passwd", argv[0]);
	if (argc > 1)
		return fail(2, "passwd takes one USER ('%s' is extra)", echo(argv[1]));
	user = argv[0];
	if (load_or_report(path) != 0)
		return 1;
	if (!cfg.auth.enabled) {
		fail(1, "no [auth] users file configured");
		goto out;
	}
	if (!auth_name_ok(user)) {
		fail(1, "'%s' is not a valid user name (1 to %d printable ASCII octets without ':' or white space, "
			"not starting with '#')", echo(user), AUTH_USER_MAX);
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
		fail(1, "empty password");
	else if (r == -2)
		fail(1, "password longer than %d octets", AUTH_PASS_MAX);
	else if (r == -4)
		fail(1, "the passwords do not match");
	else if (r != 0)
		fail(1, "cannot read the password: %s", strerror(errno));
	if (r != 0)
		goto out;
	existed = stat(cfg.auth.users, &st) == 0;
	if (users_set_password(cfg.auth.users, user, pw, len, err, sizeof err) != 0) {
		fail(1, "%s", err);
		goto out;
	}
	/* The server reloads the file after dropping privileges: a file that
	 * root creates here must belong to the user it runs as. An existing
	 * file keeps its owner (users_set_password sees to that). */
	if (!existed && geteuid() == 0 && cfg.server.user[0]) {
		struct passwd *pwd = getpwnam(cfg.server.user);

		if (!pwd || chown(cfg.auth.users, pwd->pw_uid, pwd->pw_gid) != 0)
			fail(1, "cannot give %s to user %s: %s", cfg.auth.users, cfg.server.user,
			     pwd ? strerror(errno) : "no such user");
	}
	printf("tarpitd: password for %s set in %s\n", user, cfg.auth.users);
	fflush(stdout);
	tell_server(cfg.server.pidfile);
	status = 0;
out:
	wipe(pw, sizeof pw);
	wipe(again, sizeof again);
	config_free(&cfg);
	return status;
}
