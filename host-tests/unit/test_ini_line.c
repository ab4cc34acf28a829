/* test_ini_line: the one INI line model. Its spans on tricky lines, and
 * that config_load (the loader) and admin_rewrite (`tarpitd set`) agree
 * on them: each text is loaded, rewritten with one edit and loaded again,
 * and the loaded value must be the new one. A loader or editor with a line
 * rule of its own (comments, separators, quoted headers, CRLF,
 * continuations, the byte order mark) fails here: the edit then lands on
 * another line, is inserted twice, or breaks the file. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "check.h"
#include "config.h"
#include "ini_line.h"

static char dir[64];
static char path[256];
static char err[8192];

/* ---- the model itself ---- */

static struct ini_ctx ctx;
static struct ini_line ln;
static const char *text;

static void parse(const char *t)
{
	size_t end;

	text = t;
	ini_line_end(t, strlen(t), 0, &end);
	ini_line_parse(&ctx, t, 0, end, &ln);
}

static const char *span(size_t s, size_t e)
{
	static char b[2][256];
	static int i;

	i ^= 1;
	snprintf(b[i], sizeof b[i], "%.*s", (int)(e - s), text + s);
	return b[i];
}

#define KEY(line, k, v)                                      \
	do {                                                 \
		parse(line);                                 \
		CHECK(ln.kind == INI_KEY);                   \
		CHECK_STR(span(ln.key_s, ln.key_e), k);      \
		CHECK_STR(span(ln.val_s, ln.val_e), v);      \
	} while (0)

static void test_model(void)
{
	size_t end, next;

	memset(&ctx, 0, sizeof ctx);
	KEY("\xef\xbb\xbf" "a = b", "a", "b"); /* the mark only on line 1 */
	parse("\xef\xbb\xbf" "a = b");
	CHECK(ln.kind == INI_OTHER || (ln.kind == INI_KEY && ln.key_s == 0));
	memset(&ctx, 0, sizeof ctx);
	KEY("a=b", "a", "b");
	KEY("a \t= \t b \t", "a", "b");
	KEY("a : b", "a", "b");
	KEY("a = b = c", "a", "b = c");
	KEY("a: b=c", "a", "b=c");
	KEY("a = b ; c", "a", "b");
	KEY("a = b\t# c", "a", "b");
	KEY("a = b;c#d", "a", "b;c#d");
	KEY("a b = c", "a b", "c");
	KEY("=c", "", "c");
	parse("a =");
	CHECK(ln.kind == INI_KEY && ln.val_s == 3 && ln.val_e == 3);
	parse("a = ; nothing");
	CHECK(ln.kind == INI_KEY && ln.val_s == 3 && ln.val_e == 3);
	/* After a key, indented text continues it, even when it looks like
	 * a header or a key. */
	parse("  [::1]:25");
	CHECK(ln.kind == INI_CONT);
	CHECK_STR(span(ln.s, ln.e), "[::1]:25");
	parse("\tb = c ; d");
	CHECK(ln.kind == INI_CONT);
	CHECK_STR(span(ln.s, ln.e), "b = c");
	parse("   ");
	CHECK(ln.kind == INI_BLANK);
	parse("  ; comment");
	CHECK(ln.kind == INI_BLANK);
	parse("; a = b");
	CHECK(ln.kind == INI_BLANK);
	parse("#a = b");
	CHECK(ln.kind == INI_BLANK);
	parse("no separator");
	CHECK(ln.kind == INI_OTHER);
	parse("[connector \"a ;b #c\"]  ; d");
	CHECK(ln.kind == INI_HEADER);
	CHECK_STR(span(ln.s, ln.e), "[connector \"a ;b #c\"]");
	CHECK(!ctx.key_in_section);
	/* After a header, an indented key is a key. */
	KEY("  a = b", "a", "b");

	/* Line ends: LF, CR LF, a CR before the end; a CR inside stays. */
	next = ini_line_end("ab\r\ncd", 6, 0, &end);
	CHECK(end == 2 && next == 4);
	next = ini_line_end("ab\r\ncd\r", 7, 4, &end);
	CHECK(end == 6 && next == 7);
	next = ini_line_end("a\rb\n", 4, 0, &end);
	CHECK(end == 3 && next == 4);

	/* Headers. */
	{
		const char *h = "[  connector   \"A B\"  ]";
		size_t s, e;
		struct ini_header hd;

		CHECK(ini_header_connector(h, 0, strlen(h), &s, &e));
		CHECK(e - s == 3 && memcmp(h + s, "A B", 3) == 0);
		CHECK(!ini_header_connector("[connector \"\"]", 0, 14, &s, &e));
		CHECK(!ini_header_connector("[connector A]", 0, 13, &s, &e));
		CHECK(!ini_header_connector("[connector \"A\" x]", 0, 17, &s, &e));
		CHECK(!ini_header_connector("[connectors \"A\"]", 0, 16, &s, &e));
		ini_header_parse("[server", 0, 7, &hd);
		CHECK(hd.status == INI_HDR_NO_CLOSE);
		ini_header_parse("[server] x", 0, 10, &hd);
		CHECK(hd.status == INI_HDR_TRAILING);
		ini_header_parse("[ server ]", 0, 10, &hd);
		CHECK(hd.status == INI_HDR_OK && hd.word_e - hd.word_s == 6 && hd.arg == hd.close);
	}
}

/* ---- the loader and the editor agree ---- */

static int load_text(struct config *cfg, const char *t, size_t len)
{
	FILE *f;

	snprintf(path, sizeof path, "%s/t.ini", dir);
	f = fopen(path, "wb");
	if (!f)
		return -2;
	fwrite(t, 1, len, f);
	fclose(f);
	return config_load(cfg, path, err, sizeof err);
}

/* Field key of connector 0 after loading t; the error text if it fails. */
static const char *loaded(const char *t, const char *key)
{
	static char v[CONF_FIELD_MAX];
	struct config cfg;

	if (load_text(&cfg, t, strlen(t)) != 0)
		return err;
	if (cfg.nconnectors < 1) {
		config_free(&cfg);
		return "(no connector)";
	}
	conf_field_format(&cfg.connectors[0], (unsigned)conf_field_find(key), v, sizeof v);
	config_free(&cfg);
	return v;
}

/* t loads with key = before; after `set NAME key=value` it loads with
 * key = after, and the edit matched one section. */
static void agree(int line, const char *t, const char *name, const char *key, const char *before,
		  const char *value, const char *after)
{
	struct admin_edit ed = { key, value };
	unsigned ns = 0;
	size_t len;
	char *out;
	const char *got;
	unsigned failed = check_failed;

	got = loaded(t, key);
	CHECK_STR(got, before);
	out = admin_rewrite(t, strlen(t), name, &ed, 1, &len, &ns);
	CHECK(out != NULL);
	CHECK(ns == 1);
	if (out) {
		got = loaded(out, key);
		CHECK_STR(got, after);
	}
	if (check_failed != failed)
		fprintf(stderr, "  (case at line %d; rewritten: \"%s\")\n", line, out ? out : "NULL");
	free(out);
}

#define HDR "[connector \"A\"]\nbindings = 127.0.0.1:25\n"
#define AGREE(t, key, before, value, after) agree(__LINE__, t, "A", key, before, value, after)

static void test_agree(void)
{
	/* Inline comments: ';' or '#' after white space, not inside. */
	AGREE(HDR "tarpit_interval = 00:00:03 ; was 00:00:09\n", "tarpit_interval", "00:00:03",
	      "00:00:07", "00:00:07");
	AGREE(HDR "banner = mx#1;b ESMTP # c\n", "banner", "mx#1;b ESMTP", "new", "new");
	AGREE(HDR ";tarpit_interval = 00:00:09\n# tarpit_interval = 00:00:08\n"
		  "tarpit_interval = 00:00:03\n",
	      "tarpit_interval", "00:00:03", "00:00:07", "00:00:07");
	/* Separators and the space around them. */
	AGREE(HDR "tarpit_interval\t =  \t00:00:03 \t\n", "tarpit_interval", "00:00:03", "00:00:07",
	      "00:00:07");
	AGREE(HDR "tarpit_interval: 00:00:03\n", "tarpit_interval", "00:00:03", "00:00:07", "00:00:07");
	AGREE(HDR "tarpit_interval :00:00:03\n", "tarpit_interval", "00:00:03", "00:00:07", "00:00:07");
	AGREE(HDR "banner = a=b: c\n", "banner", "a=b: c", "d", "d");
	AGREE("[server]\nhostname = h.example\n" HDR "banner =\n", "banner", "h.example ESMTP", "x y", "x y");
	/* Headers with odd spacing, quotes protecting comment characters. */
	agree(__LINE__, "[  connector   \"A B\"   ]  # c\nbindings = 127.0.0.1:25\ntarpit_interval = 00:00:03\n",
	      "a b", "tarpit_interval", "00:00:03", "00:00:07", "00:00:07");
	agree(__LINE__, "[connector \"x ;y #z\"] ;c\nbindings = 127.0.0.1:25\ntarpit_interval = 00:00:03\n",
	      "x ;y #z", "tarpit_interval", "00:00:03", "00:00:07", "00:00:07");
	/* A key of another section, and one after a broken header, are not
	 * the connector's. */
	AGREE("[server]\nhostname = 127.0.0.1\n" HDR "[auth]\nusers = u\n", "max_auth_failures", "3", "4", "4");
	/* Line ends. */
	AGREE("[connector \"A\"]\r\nbindings = 127.0.0.1:25\r\ntarpit_interval = 00:00:03\r\n",
	      "tarpit_interval", "00:00:03", "00:00:07", "00:00:07");
	AGREE("[connector \"A\"]\r\nbindings = 127.0.0.1:25\r\ntarpit_interval = 00:00:03\r", "tarpit_interval",
	      "00:00:03", "00:00:07", "00:00:07");
	AGREE("[connector \"A\"]\r\nbindings = 127.0.0.1:25\r\n", "tarpit_interval", "00:00:05", "00:00:07",
	      "00:00:07");
	AGREE("\xef\xbb\xbf" HDR "tarpit_interval = 00:00:03\n", "tarpit_interval", "00:00:03", "00:00:07",
	      "00:00:07");
	/* Indentation: a key right after its header; continuation lines,
	 * one of them looking like a header, are dropped with the value. */
	AGREE("[connector \"A\"]\n  bindings = 127.0.0.1:25\n", "bindings", "127.0.0.1:25", "127.0.0.1:26",
	      "127.0.0.1:26");
	AGREE("[connector \"A\"]\nbindings = 127.0.0.1:25,\n  [::1]:25\n\n ; c\n\t127.0.0.2:25\ntarpit_interval = 00:00:01\n",
	      "bindings", "127.0.0.1:25, [::1]:25, 127.0.0.2:25", "127.0.0.1:26", "127.0.0.1:26");
	AGREE(HDR "remote_ip_ranges = 10.0.0.0/8,\n  192.168.0.0/16 ; lan\ntarpit_interval = 00:00:03\n",
	      "remote_ip_ranges", "10.0.0.0/8, 192.168.0.0/16", "127.0.0.0/8", "127.0.0.0/8");
	AGREE(HDR "remote_ip_ranges = 10.0.0.0/8,\n  192.168.0.0/16 ; lan\ntarpit_interval = 00:00:03\n",
	      "tarpit_interval", "00:00:03", "00:00:07", "00:00:07");
	/* An absent key goes after the last key (or its continuation). */
	AGREE(HDR "remote_ip_ranges = 10.0.0.0/8,\n  192.168.0.0/16\n\n[server]\nhostname = h\n", "tarpit_interval",
	      "00:00:05", "00:00:07", "00:00:07");
}

int main(void)
{
	snprintf(dir, sizeof dir, "/tmp/test_ini_line.XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 2;
	}
	test_model();
	test_agree();
	unlink(path);
	rmdir(dir);
	return check_summary("ini_line");
}
