/* admin_set: `tarpitd set` (see admin.h).
 *
 * `set` never writes what it has not validated: the edited text goes to a
 * temporary file beside the INI file (so relative paths resolve the same),
 * config_load judges it, and only then does rename() put it in place.
 * Lines are read by ini_line, config_load's own line model (comments,
 * quoted section names, indented continuation lines), so the line it
 * edits is the line config_load reads the key from.
 *
 * Two sets at once must not lose a change (SPEC §2): each holds an
 * exclusive flock() on the INI file from its read to the rename (and the
 * reload signal), so the second reads what the first wrote. No lock file
 * is left behind, and an editor or the daemon, which take no lock, still
 * see the old file or the new one (the rename is atomic).
 */
#include "admin_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "ini_line.h"
#include "log.h"
#include "util.h"

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
			admin_put(&out, text + l->start, l->l.val_s - l->start);
			if (l->l.val_s == l->l.val_e && ed->value[0])
				admin_puts(&out, " ");
			admin_puts(&out, ed->value);
			admin_put(&out, text + l->l.val_e, l->next - l->l.val_e);
		} else if ((act[i] & A_KIND) == A_COPY) {
			admin_put(&out, text + l->start, l->next - l->start);
		}
		if (act[i] & A_INSERT) {
			/* A CR alone ends only the last line: it must not end up
			 * before the new line's first octet. */
			bool ended = l->next > l->end && text[l->next - 1] == '\n';

			if (!ended)
				admin_puts(&out, m.eol);
			admin_puts(&out, ed->key);
			admin_puts(&out, ed->value[0] ? " = " : " =");
			admin_puts(&out, ed->value);
			if (ended)
				admin_puts(&out, m.eol);
		}
	}
	admin_put(&out, "", 0);
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
					admin_puts(out, " ");
					admin_put(out, text + l->l.s, l->l.e - l->l.s);
				} else if (l->l.kind != INI_BLANK) {
					break;
				}
			} else if (key_is(&m, l, key)) {
				found = true;
				admin_put(out, text + l->l.val_s, l->l.val_e - l->l.val_s);
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

/* The INI file (tg->dest) opened and locked: the descriptor, or -1 after
 * saying why. A set that had to wait may have locked the file the one
 * before it has just renamed away; it then starts over on the file now
 * in place, so every rewrite reads the one before. tg->st becomes the
 * locked file's (its mode and owner go to the new one). */
static int lock_ini(struct replacement *tg, const char *path)
{
	struct stat now;
	const char *what;
	int fd, e;

	for (;;) {
		fd = open(tg->dest, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
		if (fd < 0)
			break;
		if (fstat(fd, &tg->st) != 0)
			break;
		what = util_not_regular(tg->st.st_mode);
		if (what) {
			fprintf(stderr, "%s: is %s, not a regular file\n", path, what);
			close(fd);
			return -1;
		}
		while ((e = flock(fd, LOCK_EX)) != 0 && errno == EINTR)
			;
		if (e != 0 || stat(tg->dest, &now) != 0)
			break;
		if (now.st_dev == tg->st.st_dev && now.st_ino == tg->st.st_ino)
			return fd;
		close(fd);
	}
	e = errno;
	fprintf(stderr, "%s: cannot open: %s\n", path, strerror(e));
	if (fd >= 0)
		close(fd);
	return -1;
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
		return admin_fail(-1, "cannot write a temporary file beside %s: %s", tg->dest, strerror(errno));
	if (config_load(cfg, tg->tmp, admin_load_err, sizeof admin_load_err) == 0)
		return 0;
	tl = strlen(tg->tmp);
	for (p = admin_load_err; *p;) {
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
			return admin_unknown_option("set", a);
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
			return admin_fail(2, "set: expected KEY=VALUE, got '%s'", admin_echo(a));
		/* A key too long for the buffer is unknown: quoted as cut. */
		n = (size_t)(ke - k);
		if (n > sizeof key - 1)
			n = sizeof key - 1;
		memcpy(key, k, n);
		key[n] = '\0';
		if ((size_t)(ke - k) >= sizeof key)
			return admin_fail(2, "set: unknown key '%s'", admin_echo(key));
		if (*nedits >= ADMIN_MAX_EDITS)
			return admin_fail(2, "set: too many KEY=VALUE arguments");
		f = conf_field_find(key);
		if (f < 0)
			return admin_fail(2, "set: unknown key '%s'", admin_echo(key));
		if (f == 0)
			return admin_fail(2, "set: Name cannot be set; rename the section in the file");
		edits[*nedits].key = conf_field_key((unsigned)f);
		for (j = 0; j < *nedits; j++)
			if (edits[j].key == edits[*nedits].key)
				return admin_fail(2, "set: %s is given twice", edits[j].key);
		for (v = eq + 1; util_is_ws(*v); v++)
			;
		if (admin_value_ok(v) != 0)
			return admin_fail(2, "set: the value of %s holds a control character or a comment "
				       "(';' or '#' after a space)", edits[*nedits].key);
		for (n = strlen(v); n && util_is_ws(v[n - 1]); n--)
			;
		v[n] = '\0';
		edits[(*nedits)++].value = v;
	}
	if (!*all && !*name)
		return admin_fail(2, "set needs a connector NAME or --all, then KEY=VALUE ...");
	if (*nedits == 0)
		return admin_fail(2, "set needs at least one KEY=VALUE");
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
	int status = 1, fd = -1, r;

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
	fd = lock_ini(&tg, path);
	if (fd < 0)
		goto out;
	r = admin_read_all(fd, &in, ADMIN_INI_MAX, 0);
	if (r != 0) {
		fprintf(stderr, "%s: cannot read: %s\n", path, strerror(errno));
		goto out;
	}
	admin_put(&in, "", 0);
	if (in.oom)
		goto oom;
	orig_ok = config_load(&orig, path, NULL, 0) == 0;

	text1 = admin_rewrite(in.p, in.len, all ? NULL : name, edits, nedits, &len1, &nsect);
	if (!text1)
		goto oom;
	if (!all && nsect == 0) {
		admin_no_connector(name);
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
					admin_puts(&report, line[k]);
			}
			free(raw.p);
			if (report.oom)
				goto oom;
		}
	}
	if (nch == 0) {
		replace_drop(&tg);
		status = admin_fail(0, "nothing to change; %s is left as it was", path);
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
		admin_fail(1, "cannot replace %s: %s", tg.dest, strerror(errno));
		goto out;
	}
	/* The new file is in place and is what a reload reads: only its
	 * survival of a power cut is in doubt, so say so and carry on. */
	if (r > 0)
		admin_fail(0, "warning: the directory of %s could not be synced: %s", tg.dest, strerror(errno));
	fputs(report.p, stdout);
	fflush(stdout);
	admin_tell_server(neu.server.pidfile, neu.server.control);
	status = 0;
	goto out;
oom:
	admin_out_of_memory();
out:
	replace_drop(&tg);
	if (fd >= 0)
		close(fd); /* the lock goes with it */
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
