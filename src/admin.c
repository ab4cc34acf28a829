/* admin: see admin.h.
 *
 * `set` never writes what it has not validated: the edited text goes to a
 * temporary file beside the INI file (so relative paths resolve the same),
 * config_load judges it, and only then does rename() put it in place. The
 * line model below mirrors config.c's reader (comments, quoted section
 * names, indented continuation lines), so the line it edits is the line
 * config_load reads the key from.
 */
#include "admin.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
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
#include "log.h"

#define INI_MAX (1024 * 1024)        /* an INI file larger than this is not ours */
#define STATS_MAX (4 * 1024 * 1024)  /* ditto for the server's stats answer */
#define STATS_TIMEOUT_MS 5000
#define MAX_FIELDS 64

/* Arguments quoted back are cut and made printable, so they cannot garble
 * the terminal the error is shown on. */
/* A faulty value quoted back in a message (log_echo). */
static const char *echo(char *buf, size_t len, const char *s)
{
	return log_echo(buf, len, s, strlen(s));
}

#define ECHO_BUF LOG_ECHO_BUF

/* ---- the INI text as lines ------------------------------------------------ */

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r';
}

enum lkind { L_BLANK, L_HEADER, L_KEY, L_CONT, L_OTHER };

struct line {
	size_t start, end; /* the body, without its line end */
	size_t next;       /* where the next line starts */
	enum lkind kind;
	int sect;          /* connector section it belongs to, -1 none */
	size_t key_s, key_e, sep, val_s, val_e; /* L_KEY */
	size_t cont_s, cont_e;                  /* L_CONT: the text it adds */
};

struct section {
	size_t name_s, name_e; /* the name between the quotes */
	size_t header;         /* its line */
};

struct model {
	const char *t;
	size_t len;
	struct line *lines;
	size_t nlines;
	struct section *sects;
	size_t nsects;
	const char *eol; /* "\r\n" when the file's first line end is CRLF */
};

/* The name of a [connector "NAME"] header, as config.c's section() reads
 * it; false for any other header. p..e is the header without comment. */
static bool connector_header(const char *t, size_t p, size_t e, size_t *ns, size_t *ne)
{
	size_t close, w, q;
	bool inq = false;

	for (close = p + 1; close < e && (inq || t[close] != ']'); close++)
		if (t[close] == '"')
			inq = !inq;
	if (close >= e || close + 1 != e)
		return false;
	for (w = p + 1; w < close && is_ws(t[w]); w++)
		;
	if (close - w < 9 || memcmp(t + w, "connector", 9) != 0)
		return false;
	q = w + 9;
	if (q < close && !is_ws(t[q]) && t[q] != '"')
		return false;
	while (q < close && is_ws(t[q]))
		q++;
	if (q >= close || t[q] != '"')
		return false;
	*ns = q + 1;
	for (q = q + 1; q < close && t[q] != '"'; q++)
		;
	if (q >= close)
		return false;
	*ne = q;
	for (q = q + 1; q < close; q++)
		if (!is_ws(t[q]))
			return false;
	return *ne > *ns;
}

static void classify(struct model *m, struct line *l, bool first, bool *key_in_section, int *sect)
{
	const char *t = m->t;
	size_t b = l->start, p, q, e;
	bool inq = false;

	if (first && l->end - b >= 3 && memcmp(t + b, "\xef\xbb\xbf", 3) == 0)
		b += 3;
	for (p = b; p < l->end && is_ws(t[p]); p++)
		;
	for (q = p; q < l->end; q++) {
		if (t[p] == '[' && t[q] == '"')
			inq = !inq;
		if (!inq && (t[q] == ';' || t[q] == '#') && (q == p || is_ws(t[q - 1])))
			break;
	}
	e = q;
	while (e > p && is_ws(t[e - 1]))
		e--;
	l->sect = *sect;
	if (e == p) {
		l->kind = L_BLANK;
		return;
	}
	if (p > b && *key_in_section) {
		l->kind = L_CONT;
		l->cont_s = p;
		l->cont_e = e;
		return;
	}
	if (t[p] == '[') {
		size_t ns, ne;

		l->kind = L_HEADER;
		*key_in_section = false;
		*sect = -1;
		if (connector_header(t, p, e, &ns, &ne)) {
			struct section *s = &m->sects[m->nsects];

			s->name_s = ns;
			s->name_e = ne;
			s->header = (size_t)(l - m->lines);
			*sect = (int)m->nsects++;
		}
		l->sect = *sect;
		return;
	}
	for (q = p; q < e && t[q] != '=' && t[q] != ':'; q++)
		;
	if (q == e) {
		l->kind = L_OTHER;
		return;
	}
	l->kind = L_KEY;
	*key_in_section = true;
	l->key_s = p;
	l->key_e = q;
	while (l->key_e > p && is_ws(t[l->key_e - 1]))
		l->key_e--;
	l->sep = q;
	l->val_e = e;
	for (l->val_s = q + 1; l->val_s < e && is_ws(t[l->val_s]); l->val_s++)
		;
	if (l->val_s >= l->val_e)
		l->val_s = l->val_e = q + 1;
}

static void model_free(struct model *m)
{
	free(m->lines);
	free(m->sects);
	m->lines = NULL;
	m->sects = NULL;
}

static int model_build(struct model *m, const char *text, size_t len)
{
	size_t i, n = 1, pos;
	bool kis = false;
	int sect = -1;

	memset(m, 0, sizeof *m);
	m->t = text;
	m->len = len;
	m->eol = "\n";
	for (i = 0; i < len; i++)
		if (text[i] == '\n')
			n++;
	m->lines = calloc(n, sizeof *m->lines);
	m->sects = calloc(n, sizeof *m->sects);
	if (!m->lines || !m->sects) {
		model_free(m);
		return -1;
	}
	for (i = 0; i < len; i++) {
		if (text[i] == '\n') {
			if (i > 0 && text[i - 1] == '\r')
				m->eol = "\r\n";
			break;
		}
	}
	for (pos = 0; pos < len;) {
		struct line *l = &m->lines[m->nlines];
		const char *nl = memchr(text + pos, '\n', len - pos);

		l->start = pos;
		if (nl) {
			l->next = (size_t)(nl - text) + 1;
			l->end = l->next - 1;
		} else {
			l->next = l->end = len;
		}
		/* config.c's reader ends a line at CR LF, and at a CR before EOF. */
		if (l->end > l->start && text[l->end - 1] == '\r')
			l->end--;
		classify(m, l, m->nlines == 0, &kis, &sect);
		m->nlines++;
		pos = l->next;
	}
	return 0;
}

static bool name_is(const struct model *m, const struct section *s, const char *name)
{
	size_t n = s->name_e - s->name_s;

	return strlen(name) == n && strncasecmp(m->t + s->name_s, name, n) == 0;
}

static bool key_is(const struct model *m, const struct line *l, const char *key)
{
	size_t n = l->key_e - l->key_s;

	return l->kind == L_KEY && strlen(key) == n && memcmp(m->t + l->key_s, key, n) == 0;
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

enum act { A_COPY, A_REPLACE, A_DROP };

static char *rewrite_one(const char *text, size_t len, const char *name, const struct admin_edit *ed,
			 size_t *outlen, unsigned *nsections)
{
	struct model m;
	struct buf out = { 0 };
	enum act *act = NULL;
	bool *insert_after = NULL, failed = true;
	size_t i, s;

	if (model_build(&m, text, len) != 0)
		return NULL;
	act = calloc(m.nlines + 1, sizeof *act);
	insert_after = calloc(m.nlines + 1, sizeof *insert_after);
	if (!act || !insert_after)
		goto done;
	failed = false;
	*nsections = 0;
	for (s = 0; s < m.nsects; s++) {
		size_t anchor = m.sects[s].header;
		bool found = false;

		if (name && !name_is(&m, &m.sects[s], name))
			continue;
		(*nsections)++;
		for (i = m.sects[s].header + 1; i < m.nlines && m.lines[i].sect == (int)s; i++) {
			const struct line *l = &m.lines[i];

			if (l->kind == L_HEADER)
				break;
			if (l->kind == L_KEY || l->kind == L_CONT)
				anchor = i;
			if (!found && key_is(&m, l, ed->key)) {
				size_t j;

				found = true;
				act[i] = A_REPLACE;
				for (j = i + 1; j < m.nlines; j++) {
					if (m.lines[j].kind == L_CONT)
						act[j] = A_DROP;
					else if (m.lines[j].kind != L_BLANK)
						break;
				}
			}
		}
		if (!found)
			insert_after[anchor] = true;
	}

	for (i = 0; i < m.nlines; i++) {
		const struct line *l = &m.lines[i];

		if (act[i] == A_REPLACE) {
			bool was_empty = l->val_s == l->val_e;

			put(&out, text + l->start, l->val_s - l->start);
			if (was_empty && ed->value[0])
				puts_(&out, " ");
			puts_(&out, ed->value);
			put(&out, text + l->val_e, l->next - l->val_e);
		} else if (act[i] == A_COPY) {
			put(&out, text + l->start, l->next - l->start);
		}
		if (insert_after[i]) {
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
	if (!out.p)
		put(&out, "", 0);
done:
	free(act);
	free(insert_after);
	model_free(&m);
	if (out.oom || failed) {
		free(out.p);
		return NULL;
	}
	*outlen = out.len;
	return out.p;
}

char *admin_rewrite(const char *text, size_t len, const char *name, const struct admin_edit *edits,
		    size_t nedits, size_t *outlen, unsigned *nsections)
{
	char *cur = malloc(len + 1);
	size_t curlen = len, i;
	unsigned ns = 0;

	if (!cur)
		return NULL;
	if (len)
		memcpy(cur, text, len);
	cur[len] = '\0';
	if (nedits == 0) {
		struct model m;

		if (model_build(&m, text, len) != 0) {
			free(cur);
			return NULL;
		}
		for (i = 0; i < m.nsects; i++)
			if (!name || name_is(&m, &m.sects[i], name))
				ns++;
		model_free(&m);
	}
	for (i = 0; i < nedits; i++) {
		size_t nl = 0;
		char *next = rewrite_one(cur, curlen, name, &edits[i], &nl, &ns);

		free(cur);
		if (!next)
			return NULL;
		cur = next;
		curlen = nl;
	}
	if (outlen)
		*outlen = curlen;
	if (nsections)
		*nsections = ns;
	return cur;
}

/* The value of key in the n-th section called name, as written (list
 * continuations joined with a space); false if the key is absent. Used
 * only when the old file does not load, so no effective value exists. */
static bool raw_value(const char *text, size_t len, const char *name, unsigned nth, const char *key,
		      struct buf *out)
{
	struct model m;
	size_t s, i;
	unsigned seen = 0;
	bool found = false;

	if (model_build(&m, text, len) != 0)
		return false;
	for (s = 0; s < m.nsects && !found; s++) {
		if (!name_is(&m, &m.sects[s], name) || seen++ != nth)
			continue;
		for (i = m.sects[s].header + 1; i < m.nlines && m.lines[i].sect == (int)s; i++) {
			const struct line *l = &m.lines[i];

			if (found) {
				if (l->kind == L_CONT) {
					puts_(out, " ");
					put(out, text + l->cont_s, l->cont_e - l->cont_s);
				} else if (l->kind != L_BLANK) {
					break;
				}
			} else if (key_is(&m, l, key)) {
				found = true;
				put(out, text + l->val_s, l->val_e - l->val_s);
			}
		}
	}
	model_free(&m);
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
		char item[CONF_NAME_MAX];
		size_t len;
		int f = -1;

		while (a < b && is_ws(*a))
			a++;
		while (b > a && is_ws(b[-1]))
			b--;
		len = (size_t)(b - a);
		if (len > 0 && len < sizeof item) {
			memcpy(item, a, len);
			item[len] = '\0';
			f = conf_field_find(item);
		}
		if (f < 0) {
			if (bad && badlen) {
				char raw[CONF_NAME_MAX + 8];
				size_t k = len < sizeof raw - 1 ? len : sizeof raw - 1;

				memcpy(raw, a, k);
				raw[k] = '\0';
				echo(bad, badlen, raw);
			}
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
	size_t width[MAX_FIELDS];
	size_t i, pending;
	unsigned c;
	bool any = false;

	if (nfields > MAX_FIELDS)
		nfields = MAX_FIELDS;
	for (c = 0; c < cfg->nconnectors; c++)
		if (!name || strcasecmp(cfg->connectors[c].name, name) == 0)
			any = true;
	if (!any)
		return -1;
	for (i = 0; i < nfields; i++) {
		width[i] = strlen(conf_field_title(fields[i]));
		for (c = 0; c < cfg->nconnectors; c++) {
			size_t w;

			if (name && strcasecmp(cfg->connectors[c].name, name) != 0)
				continue;
			w = conf_field_format(&cfg->connectors[c], fields[i], NULL, 0);
			if (w >= sizeof val)
				w = sizeof val - 1;
			if (w > width[i])
				width[i] = w;
		}
	}
	pending = 0;
	for (i = 0; i < nfields; i++)
		cell(out, conf_field_title(fields[i]), width[i], i + 1 == nfields, &pending);
	fputc('\n', out);
	pending = 0;
	for (i = 0; i < nfields; i++) {
		size_t n = strlen(conf_field_title(fields[i]));

		memset(val, '-', n);
		val[n] = '\0';
		cell(out, val, width[i], i + 1 == nfields, &pending);
	}
	fputc('\n', out);
	for (c = 0; c < cfg->nconnectors; c++) {
		if (name && strcasecmp(cfg->connectors[c].name, name) != 0)
			continue;
		pending = 0;
		for (i = 0; i < nfields; i++) {
			conf_field_format(&cfg->connectors[c], fields[i], val, sizeof val);
			cell(out, val, width[i], i + 1 == nfields, &pending);
		}
		fputc('\n', out);
	}
	return 0;
}

static int load_or_report(const char *path, struct config *cfg)
{
	static char err[16384];

	if (config_load(cfg, path, err, sizeof err) != 0) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	return 0;
}

int admin_show(const char *path, int argc, char **argv)
{
	static const char *const dflt[] = { "Name", "Enabled", "Bindings", "RemoteIPRanges",
					    "TarpitInterval" };
	unsigned fields[MAX_FIELDS];
	size_t nfields = 0, i;
	const char *name = NULL, *list = NULL;
	char e[ECHO_BUF], bad[ECHO_BUF];
	struct config cfg;
	int r;

	for (i = 0; i < (size_t)argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--fields") == 0 || strncmp(a, "--fields=", 9) == 0) {
			if (list) {
				fprintf(stderr, "tarpitd: show: --fields given twice\n");
				return 2;
			}
			if (a[8] == '=') {
				list = a + 9;
			} else if (i + 1 < (size_t)argc) {
				list = argv[++i];
			} else {
				fprintf(stderr, "tarpitd: show: --fields needs a list of fields (F,..)\n");
				return 2;
			}
		} else if (a[0] == '-' && a[1] == '-') {
			fprintf(stderr, "tarpitd: show: unknown option '%s'\n", echo(e, sizeof e, a));
			return 2;
		} else if (name) {
			fprintf(stderr, "tarpitd: show takes at most one connector NAME ('%s' is extra)\n",
				echo(e, sizeof e, a));
			return 2;
		} else {
			name = a;
		}
	}
	if (list) {
		r = admin_parse_fields(list, fields, MAX_FIELDS, &nfields, bad, sizeof bad);
		if (r == -1) {
			if (bad[0])
				fprintf(stderr, "tarpitd: show: unknown field '%s' (fields are Name and the "
						"connector keys, by INI or Exchange name)\n", bad);
			else
				fprintf(stderr, "tarpitd: show: empty field name in --fields\n");
			return 2;
		}
		if (r == -2) {
			fprintf(stderr, "tarpitd: show: more than %d fields\n", MAX_FIELDS);
			return 2;
		}
	} else {
		for (i = 0; i < sizeof dflt / sizeof dflt[0]; i++)
			fields[nfields++] = (unsigned)conf_field_find(dflt[i]);
	}
	if (load_or_report(path, &cfg) != 0)
		return 1;
	r = admin_print_table(stdout, &cfg, name, fields, nfields);
	config_free(&cfg);
	if (r != 0) {
		fprintf(stderr, "tarpitd: no connector named '%s'\n", echo(e, sizeof e, name));
		return 1;
	}
	if (fflush(stdout) != 0) {
		fprintf(stderr, "tarpitd: show: cannot write: %s\n", strerror(errno));
		return 1;
	}
	return 0;
}

/* ---- set -------------------------------------------------------------------- */

struct change {
	unsigned conn, edit;
	char *old, *new_;
};

static int read_all(int fd, struct buf *b, size_t max)
{
	char chunk[4096];

	for (;;) {
		ssize_t n = read(fd, chunk, sizeof chunk);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			return 0;
		if (b->len + (size_t)n > max) {
			errno = EFBIG;
			return -1;
		}
		put(b, chunk, (size_t)n);
		if (b->oom) {
			errno = ENOMEM;
			return -1;
		}
	}
}

/* Where set writes: the file itself, or what a symbolic link names, so
 * the link survives the rename. */
struct target {
	char dest[PATH_MAX];
	char tmp[PATH_MAX];
	struct stat st;
	bool have_tmp;
};

static int target_init(struct target *tg, const char *path)
{
	struct stat lst;

	memset(tg, 0, sizeof *tg);
	if (strlen(path) >= sizeof tg->dest) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(tg->dest, path);
	if (lstat(path, &lst) == 0 && S_ISLNK(lst.st_mode)) {
		char *real = realpath(path, NULL);

		if (!real)
			return -1;
		if (strlen(real) >= sizeof tg->dest) {
			free(real);
			errno = ENAMETOOLONG;
			return -1;
		}
		strcpy(tg->dest, real);
		free(real);
	}
	if (stat(tg->dest, &tg->st) != 0)
		return -1;
	return 0;
}

static void target_drop_tmp(struct target *tg)
{
	if (tg->have_tmp)
		unlink(tg->tmp);
	tg->have_tmp = false;
}

/* A new temporary file beside the destination holding text, durable and
 * with the original's mode (and owner, where allowed). */
static int write_tmp(struct target *tg, const char *text, size_t len)
{
	const char *slash = strrchr(tg->dest, '/');
	int n, fd;

	target_drop_tmp(tg);
	if (slash)
		n = snprintf(tg->tmp, sizeof tg->tmp, "%.*s/.%s.XXXXXX", (int)(slash - tg->dest), tg->dest,
			     slash + 1);
	else
		n = snprintf(tg->tmp, sizeof tg->tmp, ".%s.XXXXXX", tg->dest);
	if (n < 0 || (size_t)n >= sizeof tg->tmp) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = mkstemp(tg->tmp);
	if (fd < 0)
		return -1;
	tg->have_tmp = true;
	if ((tg->st.st_uid != geteuid() || tg->st.st_gid != getegid()) &&
	    fchown(fd, tg->st.st_uid, tg->st.st_gid) != 0) {
		/* Not root: the file becomes the caller's, which is all a
		 * non-root user can do anyway. */
	}
	if (fchmod(fd, tg->st.st_mode & 07777) != 0 || fd_write_all(fd, text, len) != 0 || fsync(fd) != 0) {
		int e = errno;

		close(fd);
		target_drop_tmp(tg);
		errno = e;
		return -1;
	}
	if (close(fd) != 0) {
		int e = errno;

		target_drop_tmp(tg);
		errno = e;
		return -1;
	}
	return 0;
}

/* config_load's lines name the temporary file; the user knows the real
 * one. */
static void print_errors(const char *err, const char *tmp, const char *path)
{
	size_t tl = strlen(tmp);
	const char *p = err;

	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);

		if (n >= tl && strncmp(p, tmp, tl) == 0 && p[tl] == ':')
			fprintf(stderr, "%s%.*s\n", path, (int)(n - tl), p + tl);
		else
			fprintf(stderr, "%.*s\n", (int)n, p);
		p += n;
		if (*p == '\n')
			p++;
	}
}

/* Writes text to a new temporary file and loads it: 0 with *cfg filled,
 * -1 after printing why (the temporary file is then gone). */
static int validate(struct target *tg, const char *path, const char *text, size_t len, struct config *cfg)
{
	static char err[16384];

	if (write_tmp(tg, text, len) != 0) {
		fprintf(stderr, "tarpitd: cannot write a temporary file beside %s: %s\n", tg->dest,
			strerror(errno));
		return -1;
	}
	if (config_load(cfg, tg->tmp, err, sizeof err) != 0) {
		print_errors(err, tg->tmp, path);
		target_drop_tmp(tg);
		return -1;
	}
	return 0;
}

static int commit(struct target *tg)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(tg->dest, '/');
	int fd;

	if (rename(tg->tmp, tg->dest) != 0)
		return -1;
	tg->have_tmp = false;
	/* The rename itself must survive a power cut too. */
	if (slash && slash > tg->dest)
		snprintf(dir, sizeof dir, "%.*s", (int)(slash - tg->dest), tg->dest);
	else
		strcpy(dir, slash ? "/" : ".");
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	return 0;
}

/* SIGHUP to the pid in the pidfile, if that process exists. */
static void tell_server(const char *pidfile)
{
	struct buf b = { 0 };
	long long pid = 0;
	size_t i;
	int fd;

	if (!pidfile[0])
		return;
	fd = open(pidfile, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	if (read_all(fd, &b, 64) != 0 || !b.p) {
		close(fd);
		free(b.p);
		return;
	}
	close(fd);
	for (i = 0; i < b.len && b.p[i] >= '0' && b.p[i] <= '9' && pid <= INT32_MAX; i++)
		pid = pid * 10 + (b.p[i] - '0');
	while (i < b.len && (b.p[i] == '\n' || b.p[i] == '\r' || b.p[i] == ' ' || b.p[i] == '\t'))
		i++;
	/* Never 0 or -1, which would signal a whole process group. */
	if (i != b.len || pid < 2 || pid > INT32_MAX || (pid_t)pid == getpid()) {
		free(b.p);
		return;
	}
	free(b.p);
	if (kill((pid_t)pid, 0) != 0) {
		if (errno == EPERM)
			fprintf(stderr, "tarpitd: the server (pid %lld) may not be signalled by this user; "
					"send it SIGHUP to reload\n", pid);
		return;
	}
	if (kill((pid_t)pid, SIGHUP) != 0) {
		fprintf(stderr, "tarpitd: cannot tell the server (pid %lld) to reload: %s\n", pid,
			strerror(errno));
		return;
	}
	printf("tarpitd: told the server (pid %lld) to reload\n", pid);
}

#define MAX_EDITS 32

static int parse_set_args(int argc, char **argv, bool *all, const char **name, struct admin_edit *edits,
			  char keys[][CONF_NAME_MAX], size_t *nedits)
{
	char e[ECHO_BUF];
	int fidx[MAX_EDITS];
	int i;

	*all = false;
	*name = NULL;
	*nedits = 0;
	for (i = 0; i < argc; i++)
		if (strcmp(argv[i], "--all") == 0)
			*all = true;
	for (i = 0; i < argc; i++) {
		const char *a = argv[i], *eq, *k, *ke, *v;
		size_t n, j;
		int f;

		if (strcmp(a, "--all") == 0)
			continue;
		if (a[0] == '-' && a[1] == '-') {
			fprintf(stderr, "tarpitd: set: unknown option '%s'\n", echo(e, sizeof e, a));
			return 2;
		}
		if (!*all && !*name) {
			*name = a;
			continue;
		}
		eq = strchr(a, '=');
		if (!eq) {
			fprintf(stderr, "tarpitd: set: expected KEY=VALUE, got '%s'\n", echo(e, sizeof e, a));
			return 2;
		}
		for (k = a; k < eq && is_ws(*k); k++)
			;
		for (ke = eq; ke > k && is_ws(ke[-1]); ke--)
			;
		n = (size_t)(ke - k);
		if (n == 0) {
			fprintf(stderr, "tarpitd: set: expected KEY=VALUE, got '%s'\n", echo(e, sizeof e, a));
			return 2;
		}
		if (n >= CONF_NAME_MAX) {
			char cut[CONF_NAME_MAX];

			snprintf(cut, sizeof cut, "%s", k);
			fprintf(stderr, "tarpitd: set: unknown key '%s'\n", echo(e, sizeof e, cut));
			return 2;
		}
		if (*nedits >= MAX_EDITS) {
			fprintf(stderr, "tarpitd: set: too many KEY=VALUE arguments\n");
			return 2;
		}
		memcpy(keys[*nedits], k, n);
		keys[*nedits][n] = '\0';
		f = conf_field_find(keys[*nedits]);
		if (f < 0) {
			fprintf(stderr, "tarpitd: set: unknown key '%s'\n", echo(e, sizeof e, keys[*nedits]));
			return 2;
		}
		if (f == 0) {
			fprintf(stderr, "tarpitd: set: Name cannot be set; rename the section in the file\n");
			return 2;
		}
		for (j = 0; j < *nedits; j++) {
			if (fidx[j] == f) {
				fprintf(stderr, "tarpitd: set: %s is given twice\n", conf_field_key((unsigned)f));
				return 2;
			}
		}
		for (v = eq + 1; is_ws(*v); v++)
			;
		if (admin_value_ok(v) != 0) {
			fprintf(stderr, "tarpitd: set: the value of %s holds a control character or a comment "
					"(';' or '#' after a space)\n", conf_field_key((unsigned)f));
			return 2;
		}
		fidx[*nedits] = f;
		edits[*nedits].key = conf_field_key((unsigned)f);
		edits[*nedits].value = v;
		(*nedits)++;
	}
	if (!*all && !*name) {
		fprintf(stderr, "tarpitd: set needs a connector NAME or --all, then KEY=VALUE ...\n");
		return 2;
	}
	if (*nedits == 0) {
		fprintf(stderr, "tarpitd: set needs at least one KEY=VALUE\n");
		return 2;
	}
	return 0;
}

/* Trailing white space of a value, which INI reading drops, is not
 * written either. */
static int trim_values(struct admin_edit *edits, size_t n, char **vals)
{
	size_t i, len;

	for (i = 0; i < n; i++) {
		len = strlen(edits[i].value);
		while (len && is_ws(edits[i].value[len - 1]))
			len--;
		vals[i] = strndup(edits[i].value, len);
		if (!vals[i])
			return -1;
		edits[i].value = vals[i];
	}
	return 0;
}

int admin_set(const char *path, int argc, char **argv)
{
	static char keys[MAX_EDITS][CONF_NAME_MAX];
	static char tmpv[CONF_FIELD_MAX];
	char *vals[MAX_EDITS] = { 0 };
	struct admin_edit edits[MAX_EDITS];
	struct change *ch = NULL;
	struct config orig, neu;
	struct target tg;
	struct buf in = { 0 };
	char *text1 = NULL, *text2 = NULL, e[ECHO_BUF];
	const char *name;
	size_t nedits, len1 = 0, len2 = 0, nch = 0, pairs = 0, i;
	unsigned nsect = 0, c;
	bool all, orig_ok, loaded_new = false;
	int status = 1, fd, r;

	r = parse_set_args(argc, argv, &all, &name, edits, keys, &nedits);
	if (r != 0)
		return r;
	orig_ok = false;
	memset(&tg, 0, sizeof tg);
	if (trim_values(edits, nedits, vals) != 0) {
		fprintf(stderr, "tarpitd: out of memory\n");
		goto out;
	}
	if (target_init(&tg, path) != 0) {
		fprintf(stderr, "%s: cannot open: %s\n", path, strerror(errno));
		goto out;
	}
	fd = open(tg.dest, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || read_all(fd, &in, INI_MAX) != 0) {
		fprintf(stderr, "%s: cannot read: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		goto out;
	}
	close(fd);
	if (!in.p)
		put(&in, "", 0);
	if (in.oom) {
		fprintf(stderr, "tarpitd: out of memory\n");
		goto out;
	}
	orig_ok = config_load(&orig, path, NULL, 0) == 0;

	text1 = admin_rewrite(in.p, in.len, all ? NULL : name, edits, nedits, &len1, &nsect);
	if (!text1) {
		fprintf(stderr, "tarpitd: out of memory\n");
		goto out;
	}
	if (!all && nsect == 0) {
		fprintf(stderr, "tarpitd: no connector named '%s'\n", echo(e, sizeof e, name));
		goto out;
	}
	if (validate(&tg, path, text1, len1, &neu) != 0)
		goto out;
	loaded_new = true;

	/* Only what really changes is written and reported: setting a
	 * value a connector already has (even by default) is no change. */
	ch = calloc((size_t)neu.nconnectors * nedits + 1, sizeof *ch);
	if (!ch) {
		fprintf(stderr, "tarpitd: out of memory\n");
		goto out;
	}
	for (c = 0; c < neu.nconnectors; c++) {
		const struct connector_conf *cc = &neu.connectors[c];
		unsigned nth = 0, k;

		if (!all && strcasecmp(cc->name, name) != 0)
			continue;
		for (k = 0; k < c; k++)
			if (strcasecmp(neu.connectors[k].name, cc->name) == 0)
				nth++;
		for (i = 0; i < nedits; i++) {
			unsigned f = (unsigned)conf_field_find(edits[i].key);
			struct buf ob = { 0 };

			pairs++;
			conf_field_format(cc, f, tmpv, sizeof tmpv);
			if (orig_ok && c < orig.nconnectors) {
				char *o = malloc(CONF_FIELD_MAX);

				if (o)
					conf_field_format(&orig.connectors[c], f, o, CONF_FIELD_MAX);
				ob.p = o;
			} else if (!raw_value(in.p, in.len, cc->name, nth, edits[i].key, &ob)) {
				free(ob.p);
				ob.p = strdup("(default)");
			}
			if (!ob.p) {
				fprintf(stderr, "tarpitd: out of memory\n");
				goto out;
			}
			if (strcmp(ob.p, tmpv) == 0) {
				free(ob.p);
				continue;
			}
			ch[nch].conn = c;
			ch[nch].edit = (unsigned)i;
			ch[nch].old = ob.p;
			ch[nch].new_ = strdup(tmpv);
			if (!ch[nch].new_) {
				free(ob.p);
				fprintf(stderr, "tarpitd: out of memory\n");
				goto out;
			}
			nch++;
		}
	}
	if (nch == 0) {
		target_drop_tmp(&tg);
		fprintf(stderr, "tarpitd: nothing to change; %s is left as it was\n", path);
		status = 0;
		goto out;
	}
	if (nch < pairs) {
		/* Some edits were no-ops: write only the others, and judge
		 * that text again, since it is the one that goes in place. */
		struct config again;

		text2 = malloc(in.len + 1);
		if (!text2) {
			fprintf(stderr, "tarpitd: out of memory\n");
			goto out;
		}
		memcpy(text2, in.p, in.len + 1);
		len2 = in.len;
		for (i = 0; i < nch; i++) {
			unsigned ns = 0;
			char *next = admin_rewrite(text2, len2, neu.connectors[ch[i].conn].name, &edits[ch[i].edit],
						   1, &len2, &ns);

			free(text2);
			text2 = next;
			if (!text2) {
				fprintf(stderr, "tarpitd: out of memory\n");
				goto out;
			}
		}
		if (validate(&tg, path, text2, len2, &again) != 0)
			goto out;
		config_free(&again);
	}
	if (commit(&tg) != 0) {
		fprintf(stderr, "tarpitd: cannot replace %s: %s\n", tg.dest, strerror(errno));
		goto out;
	}
	for (i = 0; i < nch; i++)
		printf("%s: %s %s -> %s\n", neu.connectors[ch[i].conn].name, edits[ch[i].edit].key, ch[i].old,
		       ch[i].new_);
	fflush(stdout);
	tell_server(neu.server.pidfile);
	status = 0;
out:
	target_drop_tmp(&tg);
	if (ch) {
		for (i = 0; i < nch; i++) {
			free(ch[i].old);
			free(ch[i].new_);
		}
		free(ch);
	}
	if (loaded_new)
		config_free(&neu);
	if (orig_ok)
		config_free(&orig);
	free(text1);
	free(text2);
	free(in.p);
	for (i = 0; i < MAX_EDITS; i++)
		free(vals[i]);
	return status;
}

/* ---- stats ------------------------------------------------------------------ */

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int admin_stats(const char *path, int argc, char **argv)
{
	struct sockaddr_un sa;
	struct config cfg;
	struct timeval tv = { STATS_TIMEOUT_MS / 1000, 0 };
	struct buf b = { 0 };
	char e[ECHO_BUF];
	long long deadline;
	int fd, status = 1;

	if (argc > 0) {
		fprintf(stderr, "tarpitd: stats takes no arguments ('%s' is extra)\n", echo(e, sizeof e, argv[0]));
		return 2;
	}
	if (load_or_report(path, &cfg) != 0)
		return 1;
	if (!cfg.server.control[0]) {
		fprintf(stderr, "tarpitd: no control socket configured ([server] control)\n");
		config_free(&cfg);
		return 1;
	}
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	if (strlen(cfg.server.control) >= sizeof sa.sun_path) {
		fprintf(stderr, "tarpitd: control socket path too long: %s\n", cfg.server.control);
		config_free(&cfg);
		return 1;
	}
	strcpy(sa.sun_path, cfg.server.control);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fprintf(stderr, "tarpitd: socket: %s\n", strerror(errno));
		config_free(&cfg);
		return 1;
	}
	/* A connect to a full backlog waits; SO_SNDTIMEO bounds that wait. */
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	deadline = now_ms() + STATS_TIMEOUT_MS;
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		if (errno == ENOENT || errno == ECONNREFUSED || errno == ENOTSOCK)
			fprintf(stderr, "tarpitd: the server is not running (control socket %s: %s)\n", sa.sun_path,
				strerror(errno));
		else if (errno == EAGAIN || errno == EINPROGRESS)
			fprintf(stderr, "tarpitd: the server does not answer (control socket %s)\n", sa.sun_path);
		else
			fprintf(stderr, "tarpitd: cannot connect to the control socket %s: %s\n", sa.sun_path,
				strerror(errno));
		goto out;
	}
	if (send(fd, "stats\n", 6, MSG_NOSIGNAL) != 6) {
		fprintf(stderr, "tarpitd: cannot send to the control socket %s: %s\n", sa.sun_path,
			strerror(errno));
		goto out;
	}
	for (;;) {
		struct pollfd pfd = { fd, POLLIN, 0 };
		long long left = deadline - now_ms();
		char chunk[4096];
		ssize_t n;
		int pr;

		if (left <= 0) {
			fprintf(stderr, "tarpitd: the server did not answer within %d s (control socket %s)\n",
				STATS_TIMEOUT_MS / 1000, sa.sun_path);
			goto out;
		}
		pr = poll(&pfd, 1, (int)left);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr < 0) {
			fprintf(stderr, "tarpitd: poll: %s\n", strerror(errno));
			goto out;
		}
		if (pr == 0)
			continue;
		n = recv(fd, chunk, sizeof chunk, 0);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0) {
			fprintf(stderr, "tarpitd: reading the control socket %s: %s\n", sa.sun_path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		if (b.len + (size_t)n > STATS_MAX) {
			fprintf(stderr, "tarpitd: the server's answer is longer than %d octets\n", STATS_MAX);
			goto out;
		}
		put(&b, chunk, (size_t)n);
		if (b.oom) {
			fprintf(stderr, "tarpitd: out of memory\n");
			goto out;
		}
	}
	if (b.len && fwrite(b.p, 1, b.len, stdout) != b.len) {
		fprintf(stderr, "tarpitd: stats: cannot write: %s\n", strerror(errno));
		goto out;
	}
	if (fflush(stdout) != 0) {
		fprintf(stderr, "tarpitd: stats: cannot write: %s\n", strerror(errno));
		goto out;
	}
	status = 0;
out:
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
	static char pw[AUTH_PASS_MAX + 2], again[AUTH_PASS_MAX + 2];
	char e[ECHO_BUF], err[PATH_MAX + 256];
	const char *user;
	struct sigaction sa, old_int, old_term, old_quit, old_hup;
	struct config cfg;
	struct stat st;
	size_t len = 0, len2 = 0;
	bool existed, tty;
	int r, status = 1;

	if (argc < 1) {
		fprintf(stderr, "tarpitd: passwd needs a USER\n");
		return 2;
	}
	if (argv[0][0] == '-' && argv[0][1] == '-') {
		fprintf(stderr, "tarpitd: passwd: unknown option '%s'\n", echo(e, sizeof e, argv[0]));
		return 2;
	}
	if (argc > 1) {
		fprintf(stderr, "tarpitd: passwd takes one USER ('%s' is extra)\n", echo(e, sizeof e, argv[1]));
		return 2;
	}
	user = argv[0];
	if (load_or_report(path, &cfg) != 0)
		return 1;
	if (!cfg.auth.enabled) {
		fprintf(stderr, "tarpitd: no [auth] users file configured\n");
		goto out;
	}
	if (!auth_name_ok(user)) {
		fprintf(stderr, "tarpitd: '%s' is not a valid user name (1 to %d printable ASCII octets without "
				"':' or white space, not starting with '#')\n", echo(e, sizeof e, user), AUTH_USER_MAX);
		goto out;
	}

	tty = isatty(STDIN_FILENO);
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	if (tty) {
		char text[AUTH_USER_MAX + 64];

		sigaction(SIGINT, &sa, &old_int);
		sigaction(SIGTERM, &sa, &old_term);
		sigaction(SIGQUIT, &sa, &old_quit);
		sigaction(SIGHUP, &sa, &old_hup);
		snprintf(text, sizeof text, "Password for %s: ", user);
		r = prompt(text, pw, sizeof pw, &len);
		if (r == 0 && prompt("Retype the password: ", again, sizeof again, &len2) == 0 &&
		    (len2 != len || memcmp(pw, again, len) != 0))
			r = -4;
		sigaction(SIGINT, &old_int, NULL);
		sigaction(SIGTERM, &old_term, NULL);
		sigaction(SIGQUIT, &old_quit, NULL);
		sigaction(SIGHUP, &old_hup, NULL);
	} else {
		r = admin_read_password(stdin, pw, sizeof pw, &len);
	}
	switch (r) {
	case 0:
		break;
	case -1:
		fprintf(stderr, "tarpitd: empty password\n");
		goto out;
	case -2:
		fprintf(stderr, "tarpitd: password longer than %d octets\n", AUTH_PASS_MAX);
		goto out;
	case -4:
		fprintf(stderr, "tarpitd: the passwords do not match\n");
		goto out;
	default:
		fprintf(stderr, "tarpitd: cannot read the password: %s\n", strerror(errno));
		goto out;
	}
	if (len > AUTH_PASS_MAX) {
		fprintf(stderr, "tarpitd: password longer than %d octets\n", AUTH_PASS_MAX);
		goto out;
	}
	existed = stat(cfg.auth.users, &st) == 0;
	if (users_set_password(cfg.auth.users, user, pw, len, err, sizeof err) != 0) {
		fprintf(stderr, "tarpitd: %s\n", err);
		goto out;
	}
	/* The server reloads the file after dropping privileges: a file that
	 * root creates here must belong to the user it runs as. An existing
	 * file keeps its owner (users_set_password sees to that). */
	if (!existed && geteuid() == 0 && cfg.server.user[0]) {
		struct passwd *pwd = getpwnam(cfg.server.user);

		if (!pwd || chown(cfg.auth.users, pwd->pw_uid, pwd->pw_gid) != 0)
			fprintf(stderr, "tarpitd: cannot give %s to user %s: %s\n", cfg.auth.users,
				cfg.server.user, pwd ? strerror(errno) : "no such user");
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
