/* test_admin: the pure parts of show/set: the INI line rewrite (text in,
 * text out, every other octet kept), value and field-list checks, and the
 * show table's exact layout, and how passwd reads its password. Rewritten
 * texts are also loaded with config_load, so the line set edits is the
 * one config.c reads. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "check.h"
#include "config.h"

static char dir[64];
static char path[256];
static char err[8192];

static char *out;
static size_t outlen;
static unsigned nsect;

/* Rewrites text with one edit; the result stays in out. */
static const char *rw(const char *text, const char *name, const char *key, const char *value)
{
	struct admin_edit e = { key, value };

	free(out);
	out = admin_rewrite(text, strlen(text), name, &e, 1, &outlen, &nsect);
	return out ? out : "(NULL)";
}

static const char *rw2(const char *text, const char *name, const char *k1, const char *v1, const char *k2,
		       const char *v2)
{
	struct admin_edit e[2] = { { k1, v1 }, { k2, v2 } };

	free(out);
	out = admin_rewrite(text, strlen(text), name, e, 2, &outlen, &nsect);
	return out ? out : "(NULL)";
}

static int load_text(struct config *cfg, const char *text, size_t len)
{
	FILE *f;

	snprintf(path, sizeof path, "%s/t.ini", dir);
	f = fopen(path, "wb");
	if (!f)
		return -2;
	fwrite(text, 1, len, f);
	fclose(f);
	return config_load(cfg, path, err, sizeof err);
}

/* The value of field `field` of connector i after loading text. */
static const char *loaded_value(const char *text, unsigned i, const char *field)
{
	static char v[CONF_FIELD_MAX];
	struct config cfg;

	if (load_text(&cfg, text, strlen(text)) != 0)
		return err;
	if (i >= cfg.nconnectors) {
		config_free(&cfg);
		return "(no such connector)";
	}
	conf_field_format(&cfg.connectors[i], (unsigned)conf_field_find(field), v, sizeof v);
	config_free(&cfg);
	return v;
}

static void test_replace(void)
{
	const char *in;

	/* Only the value changes: indentation, spacing, inline comment and
	 * the key's own separator are kept. */
	in = "[connector \"A\"]\n"
	     "bindings = 127.0.0.1:25\n"
	     "tarpit_interval = 00:00:05   ; five seconds\n"
	     "pipelining = yes\n";
	CHECK_STR(rw(in, "A", "tarpit_interval", "00:00:10"),
		  "[connector \"A\"]\n"
		  "bindings = 127.0.0.1:25\n"
		  "tarpit_interval = 00:00:10   ; five seconds\n"
		  "pipelining = yes\n");
	CHECK(nsect == 1);
	CHECK(outlen == strlen(out));
	CHECK_STR(loaded_value(out, 0, "TarpitInterval"), "00:00:10");

	CHECK_STR(rw("[connector \"A\"]\n   bindings=127.0.0.1:25\t# tab comment\n", "A", "bindings",
		     "[::1]:25"),
		  "[connector \"A\"]\n   bindings=[::1]:25\t# tab comment\n");
	CHECK_STR(loaded_value(out, 0, "bindings"), "[::1]:25");
	CHECK_STR(rw("[connector \"A\"]\nbindings = 127.0.0.1:25\nmax_protocol_errors: 7 ; colon\n", "A",
		     "max_protocol_errors", "9"),
		  "[connector \"A\"]\nbindings = 127.0.0.1:25\nmax_protocol_errors: 9 ; colon\n");
	CHECK_STR(loaded_value(out, 0, "max_protocol_errors"), "9");

	/* ';' or '#' without a space before it is part of the value. */
	CHECK_STR(rw("[connector \"A\"]\nbanner = a;b#c ; real comment\n", "A", "banner", "x y"),
		  "[connector \"A\"]\nbanner = x y ; real comment\n");

	/* An empty old value: a space keeps the comment a comment. */
	CHECK_STR(rw("[connector \"A\"]\nbindings = 127.0.0.1:25\nbanner = # none yet\n", "A", "banner", "Hi"),
		  "[connector \"A\"]\nbindings = 127.0.0.1:25\nbanner = Hi # none yet\n");
	CHECK_STR(loaded_value(out, 0, "banner"), "Hi");
	CHECK_STR(rw("[connector \"A\"]\nbanner =\n", "A", "banner", "Hi"), "[connector \"A\"]\nbanner = Hi\n");
	CHECK_STR(rw("[connector \"A\"]\nbanner=#x\n", "A", "banner", "Hi"), "[connector \"A\"]\nbanner=Hi\n");
	/* An empty new value (back to the default). */
	CHECK_STR(rw("[connector \"A\"]\nbanner = Hello ; c\n", "A", "banner", ""),
		  "[connector \"A\"]\nbanner =  ; c\n");

	/* The first of two (a broken file: config_load says so later). */
	CHECK_STR(rw("[connector \"A\"]\nfqdn = a\nfqdn = b\n", "A", "fqdn", "c"),
		  "[connector \"A\"]\nfqdn = c\nfqdn = b\n");

	/* Key names are whole words, compared exactly. */
	CHECK_STR(rw("[connector \"A\"]\nauth_requires_tls = yes\nauth = no\n", "A", "auth", "yes"),
		  "[connector \"A\"]\nauth_requires_tls = yes\nauth = yes\n");
	CHECK_STR(rw("[connector \"A\"]\ntarpit_all_after_unknown = no\n", "A", "tarpit_interval", "0"),
		  "[connector \"A\"]\ntarpit_all_after_unknown = no\ntarpit_interval = 0\n");
	/* A commented-out key is a comment, not the key. */
	CHECK_STR(rw("[connector \"A\"]\n; tarpit_interval = 00:00:01\n#tarpit_interval = 1\n", "A",
		     "tarpit_interval", "0"),
		  "[connector \"A\"]\ntarpit_interval = 0\n; tarpit_interval = 00:00:01\n#tarpit_interval = 1\n");
}

static void test_continuations(void)
{
	const char *in = "[connector \"A\"]\n"
			 "bindings = 127.0.0.1:25\n"
			 "remote_ip_ranges = 10.0.0.0/8,\n"
			 "    ; a comment between\n"
			 "\n"
			 "    192.168.0.0/16, 172.16.0.0/12  # private\n"
			 "\t::1\n"
			 "enabled = yes   ; on\n";

	CHECK_STR(loaded_value(in, 0, "remote_ip_ranges"), "10.0.0.0/8, 192.168.0.0/16, 172.16.0.0/12, ::1");
	CHECK_STR(rw(in, "A", "remote_ip_ranges", "192.0.2.0/24"),
		  "[connector \"A\"]\n"
		  "bindings = 127.0.0.1:25\n"
		  "remote_ip_ranges = 192.0.2.0/24\n"
		  "    ; a comment between\n"
		  "\n"
		  "enabled = yes   ; on\n");
	CHECK_STR(loaded_value(out, 0, "remote_ip_ranges"), "192.0.2.0/24");
	CHECK_STR(loaded_value(out, 0, "enabled"), "True");

	/* A list written as "key =" plus continuation lines only. */
	CHECK_STR(rw("[connector \"A\"]\nbindings =\n  127.0.0.1:25,\n  127.0.0.1:26\n", "A", "bindings",
		     "127.0.0.1:27"),
		  "[connector \"A\"]\nbindings = 127.0.0.1:27\n");

	/* A new key goes after the last continuation line, not between. */
	CHECK_STR(rw(in, "A", "fqdn", "x.example"),
		  "[connector \"A\"]\n"
		  "bindings = 127.0.0.1:25\n"
		  "remote_ip_ranges = 10.0.0.0/8,\n"
		  "    ; a comment between\n"
		  "\n"
		  "    192.168.0.0/16, 172.16.0.0/12  # private\n"
		  "\t::1\n"
		  "enabled = yes   ; on\n"
		  "fqdn = x.example\n");
	CHECK_STR(rw("[connector \"A\"]\nremote_ip_ranges = 10.0.0.0/8,\n  ::1\n\n; trailing comment\n", "A",
		     "bindings", "127.0.0.1:25"),
		  "[connector \"A\"]\nremote_ip_ranges = 10.0.0.0/8,\n  ::1\nbindings = 127.0.0.1:25\n\n"
		  "; trailing comment\n");
	CHECK_STR(loaded_value(out, 0, "remote_ip_ranges"), "10.0.0.0/8, ::1");
	CHECK_STR(loaded_value(out, 0, "bindings"), "127.0.0.1:25");
}

static void test_insert(void)
{
	/* After the section's last key, before the blank line and comment
	 * that introduce the next section. */
	CHECK_STR(rw("[server]\nhostname = h\n\n[connector \"A\"]\nbindings = 127.0.0.1:25\n\n"
		     "# next\n[connector \"B\"]\nbindings = 127.0.0.1:26\n",
		     "A", "tarpit_interval", "00:00:09"),
		  "[server]\nhostname = h\n\n[connector \"A\"]\nbindings = 127.0.0.1:25\n"
		  "tarpit_interval = 00:00:09\n\n# next\n[connector \"B\"]\nbindings = 127.0.0.1:26\n");
	CHECK_STR(loaded_value(out, 0, "tarpit_interval"), "00:00:09");
	CHECK_STR(loaded_value(out, 1, "tarpit_interval"), "00:00:05");

	/* A section with no key: right after its header. */
	CHECK_STR(rw("[connector \"A\"] ; empty\n; nothing here\n[server]\n", "A", "bindings", "127.0.0.1:25"),
		  "[connector \"A\"] ; empty\nbindings = 127.0.0.1:25\n; nothing here\n[server]\n");
	CHECK_STR(rw("[connector \"A\"]", "A", "bindings", "127.0.0.1:25"),
		  "[connector \"A\"]\nbindings = 127.0.0.1:25");
	/* No final line end: none is added after the new last line. */
	CHECK_STR(rw("[connector \"A\"]\nbindings = 127.0.0.1:25", "A", "fqdn", "a.example"),
		  "[connector \"A\"]\nbindings = 127.0.0.1:25\nfqdn = a.example");
	CHECK_STR(loaded_value(out, 0, "fqdn"), "a.example");
	/* A file ending in a lone CR. */
	CHECK_STR(rw("[connector \"A\"]\nbindings = 127.0.0.1:25\r", "A", "fqdn", "a.example"),
		  "[connector \"A\"]\nbindings = 127.0.0.1:25\r\nfqdn = a.example");
	CHECK_STR(loaded_value(out, 0, "fqdn"), "a.example");
	CHECK_STR(loaded_value(out, 0, "bindings"), "127.0.0.1:25");
	/* An empty value is written without a dangling space. */
	CHECK_STR(rw("[connector \"A\"]\nbindings = 127.0.0.1:25\n", "A", "banner", ""),
		  "[connector \"A\"]\nbindings = 127.0.0.1:25\nbanner =\n");
}

static void test_crlf(void)
{
	const char *in = "\xef\xbb\xbf[server]\r\nhostname = h\r\n\r\n[connector \"A\"]\r\n"
			 "bindings = 127.0.0.1:25 ; c\r\n"
			 "remote_ip_ranges = 10.0.0.0/8,\r\n  ::1\r\n"
			 "\r\n";

	CHECK_STR(rw(in, "A", "tarpit_interval", "0"),
		  "\xef\xbb\xbf[server]\r\nhostname = h\r\n\r\n[connector \"A\"]\r\n"
		  "bindings = 127.0.0.1:25 ; c\r\n"
		  "remote_ip_ranges = 10.0.0.0/8,\r\n  ::1\r\n"
		  "tarpit_interval = 0\r\n"
		  "\r\n");
	CHECK_STR(loaded_value(out, 0, "tarpit_interval"), "00:00:00");
	CHECK_STR(rw(in, "A", "remote_ip_ranges", "::2"),
		  "\xef\xbb\xbf[server]\r\nhostname = h\r\n\r\n[connector \"A\"]\r\n"
		  "bindings = 127.0.0.1:25 ; c\r\n"
		  "remote_ip_ranges = ::2\r\n"
		  "\r\n");
	CHECK_STR(rw(in, "A", "bindings", "127.0.0.1:26"),
		  "\xef\xbb\xbf[server]\r\nhostname = h\r\n\r\n[connector \"A\"]\r\n"
		  "bindings = 127.0.0.1:26 ; c\r\n"
		  "remote_ip_ranges = 10.0.0.0/8,\r\n  ::1\r\n"
		  "\r\n");
	/* A header on the first line, after the BOM. */
	CHECK_STR(rw("\xef\xbb\xbf[connector \"A\"]\r\nbindings = 127.0.0.1:25", "A", "fqdn", "f"),
		  "\xef\xbb\xbf[connector \"A\"]\r\nbindings = 127.0.0.1:25\r\nfqdn = f");
	CHECK_STR(loaded_value(out, 0, "fqdn"), "f");
}

static void test_sections(void)
{
	const char *in = "[server]\n"
			 "hostname = h ; fqdn = no\n"
			 "[connector \"Default Frontend\"]\n"
			 "bindings = 0.0.0.0:25\n"
			 "fqdn = a.example\n"
			 "[ connector   \"Trusted ; # Hosts\" ]  # quoted ; and #\n"
			 "bindings = 0.0.0.0:25\n"
			 "remote_ip_ranges = 10.0.0.0/8\n"
			 "[connector \"a]b\"]\n"
			 "bindings = 0.0.0.0:26\n";

	/* One section, by its name in any case. */
	CHECK_STR(rw(in, "default frontend", "fqdn", "z.example"),
		  "[server]\n"
		  "hostname = h ; fqdn = no\n"
		  "[connector \"Default Frontend\"]\n"
		  "bindings = 0.0.0.0:25\n"
		  "fqdn = z.example\n"
		  "[ connector   \"Trusted ; # Hosts\" ]  # quoted ; and #\n"
		  "bindings = 0.0.0.0:25\n"
		  "remote_ip_ranges = 10.0.0.0/8\n"
		  "[connector \"a]b\"]\n"
		  "bindings = 0.0.0.0:26\n");
	CHECK(nsect == 1);
	CHECK_STR(rw(in, "TRUSTED ; # HOSTS", "fqdn", "t.example"),
		  "[server]\n"
		  "hostname = h ; fqdn = no\n"
		  "[connector \"Default Frontend\"]\n"
		  "bindings = 0.0.0.0:25\n"
		  "fqdn = a.example\n"
		  "[ connector   \"Trusted ; # Hosts\" ]  # quoted ; and #\n"
		  "bindings = 0.0.0.0:25\n"
		  "remote_ip_ranges = 10.0.0.0/8\n"
		  "fqdn = t.example\n"
		  "[connector \"a]b\"]\n"
		  "bindings = 0.0.0.0:26\n");
	CHECK(nsect == 1);
	CHECK_STR(loaded_value(out, 1, "name"), "Trusted ; # Hosts");
	CHECK_STR(loaded_value(out, 1, "fqdn"), "t.example");
	CHECK_STR(rw(in, "a]b", "enabled", "no"),
		  "[server]\n"
		  "hostname = h ; fqdn = no\n"
		  "[connector \"Default Frontend\"]\n"
		  "bindings = 0.0.0.0:25\n"
		  "fqdn = a.example\n"
		  "[ connector   \"Trusted ; # Hosts\" ]  # quoted ; and #\n"
		  "bindings = 0.0.0.0:25\n"
		  "remote_ip_ranges = 10.0.0.0/8\n"
		  "[connector \"a]b\"]\n"
		  "bindings = 0.0.0.0:26\n"
		  "enabled = no\n");
	CHECK_STR(loaded_value(out, 2, "enabled"), "False");

	/* Every connector section, and two edits; [server] untouched. */
	CHECK_STR(rw2(in, NULL, "fqdn", "all.example", "tarpit_interval", "00:00:01"),
		  "[server]\n"
		  "hostname = h ; fqdn = no\n"
		  "[connector \"Default Frontend\"]\n"
		  "bindings = 0.0.0.0:25\n"
		  "fqdn = all.example\n"
		  "tarpit_interval = 00:00:01\n"
		  "[ connector   \"Trusted ; # Hosts\" ]  # quoted ; and #\n"
		  "bindings = 0.0.0.0:25\n"
		  "remote_ip_ranges = 10.0.0.0/8\n"
		  "fqdn = all.example\n"
		  "tarpit_interval = 00:00:01\n"
		  "[connector \"a]b\"]\n"
		  "bindings = 0.0.0.0:26\n"
		  "fqdn = all.example\n"
		  "tarpit_interval = 00:00:01\n");
	CHECK(nsect == 3);
	CHECK_STR(loaded_value(out, 2, "fqdn"), "all.example");

	/* No such connector: nothing matched, the text as it was. */
	CHECK_STR(rw(in, "Default", "fqdn", "x"), in);
	CHECK(nsect == 0);
	CHECK_STR(rw(in, "server", "fqdn", "x"), in);
	CHECK(nsect == 0);
	/* Malformed headers are not connector sections. */
	CHECK_STR(rw("[connector A]\nfqdn = a\n[connector \"B\" x]\nfqdn = b\n[connectorX \"C\"]\n"
		     "[connector \"\"]\n",
		     NULL, "fqdn", "x"),
		  "[connector A]\nfqdn = a\n[connector \"B\" x]\nfqdn = b\n[connectorX \"C\"]\n[connector \"\"]\n");
	CHECK(nsect == 0);
	/* An indented header after a key continues the key (config.c reads
	 * it so), so it is no section. */
	CHECK_STR(rw("[connector \"A\"]\nbindings = 127.0.0.1:25,\n  [::1]:25\n", NULL, "fqdn", "x"),
		  "[connector \"A\"]\nbindings = 127.0.0.1:25,\n  [::1]:25\nfqdn = x\n");
	CHECK(nsect == 1);

	/* No edit: only the count. */
	free(out);
	out = admin_rewrite(in, strlen(in), NULL, NULL, 0, &outlen, &nsect);
	CHECK(out && nsect == 3 && outlen == strlen(in) && strcmp(out, in) == 0);
	free(out);
	out = admin_rewrite("", 0, NULL, NULL, 0, &outlen, &nsect);
	CHECK(out && nsect == 0 && outlen == 0 && out[0] == '\0');
	CHECK_STR(rw("", NULL, "fqdn", "x"), "");
	CHECK(nsect == 0);
}

static void test_value_ok(void)
{
	CHECK(admin_value_ok("00:00:05") == 0);
	CHECK(admin_value_ok("") == 0);
	CHECK(admin_value_ok("mx.example ESMTP ready") == 0);
	CHECK(admin_value_ok("a;b#c") == 0);
	CHECK(admin_value_ok("10.0.0.0/8, ::1") == 0);
	CHECK(admin_value_ok("a ;b") == -1);
	CHECK(admin_value_ok("a #b") == -1);
	CHECK(admin_value_ok("#b") == -1);
	CHECK(admin_value_ok(";") == -1);
	CHECK(admin_value_ok("a\nb") == -1);
	CHECK(admin_value_ok("a\rb") == -1);
	CHECK(admin_value_ok("a\tb") == -1);
	CHECK(admin_value_ok("a\x7f") == -1);
}

static void test_fields(void)
{
	unsigned f[8];
	size_t n = 99;
	char bad[80];

	CHECK(admin_parse_fields("Name,tarpitinterval, TARPIT_INTERVAL ,remote_ip_ranges,PipeliningEnabled", f, 8,
				 &n, bad, sizeof bad) == 0);
	CHECK(n == 5);
	CHECK(f[0] == 0);
	CHECK(f[1] == (unsigned)conf_field_find("TarpitInterval") && f[2] == f[1]);
	CHECK_STR(conf_field_title(f[3]), "RemoteIPRanges");
	CHECK_STR(conf_field_key(f[4]), "pipelining");
	CHECK(admin_parse_fields("name", f, 8, &n, bad, sizeof bad) == 0 && n == 1 && f[0] == 0);
	CHECK(admin_parse_fields("Name,Bogus,Enabled", f, 8, &n, bad, sizeof bad) == -1);
	CHECK_STR(bad, "Bogus");
	CHECK(admin_parse_fields("Name,,Enabled", f, 8, &n, bad, sizeof bad) == -1);
	CHECK_STR(bad, "");
	CHECK(admin_parse_fields("", f, 8, &n, bad, sizeof bad) == -1);
	CHECK(admin_parse_fields("Name,", f, 8, &n, bad, sizeof bad) == -1);
	CHECK(admin_parse_fields("x\x01y", f, 8, &n, bad, sizeof bad) == -1);
	CHECK_STR(bad, "x?y");
	CHECK(admin_parse_fields("Name,Name,Name", f, 2, &n, bad, sizeof bad) == -2);
	CHECK(admin_parse_fields("Name,Name", f, 2, &n, bad, sizeof bad) == 0 && n == 2);
}

static const char *table(const struct config *cfg, const char *name, const char *fields, int *r)
{
	static char *buf;
	size_t len = 0, n = 0;
	unsigned f[16];
	FILE *m;

	free(buf);
	buf = NULL;
	CHECK(admin_parse_fields(fields, f, 16, &n, NULL, 0) == 0);
	m = open_memstream(&buf, &len);
	if (!m)
		return "(open_memstream)";
	*r = admin_print_table(m, cfg, name, f, n);
	fclose(m);
	return buf;
}

static void test_table(void)
{
	static const char ini[] = "[server]\nhostname = mx.test\n"
				  "[connector \"Default Frontend\"]\n"
				  "bindings = 0.0.0.0:25, [::]:25\n"
				  "[connector \"Trusted\"]\n"
				  "bindings = 0.0.0.0:25\n"
				  "remote_ip_ranges = 10.0.0.0/8, 192.168.1.1\n"
				  "tarpit_interval = 0\n"
				  "banner = Hello there\n"
				  "enabled = no\n";
	const char *dflt = "Name,Enabled,Bindings,RemoteIPRanges,TarpitInterval";
	struct config cfg;
	int r = 9;

	CHECK(load_text(&cfg, ini, sizeof ini - 1) == 0);
	CHECK_STR(table(&cfg, NULL, dflt, &r),
		  "Name              Enabled  Bindings             RemoteIPRanges           TarpitInterval\n"
		  "----              -------  --------             --------------           --------------\n"
		  "Default Frontend  True     0.0.0.0:25, [::]:25  0.0.0.0/0, ::/0          00:00:05\n"
		  "Trusted           False    0.0.0.0:25           10.0.0.0/8, 192.168.1.1  00:00:00\n");
	CHECK(r == 0);
	r = 9;
	CHECK_STR(table(&cfg, "trusted", "banner,NAME", &r),
		  "Banner       Name\n"
		  "------       ----\n"
		  "Hello there  Trusted\n");
	CHECK(r == 0);
	/* The last column is not padded; a header wider than its cells. */
	CHECK_STR(table(&cfg, "Default Frontend", "Name,MaxInboundConnectionPerSource,pipelining", &r),
		  "Name              MaxInboundConnectionPerSource  PipeliningEnabled\n"
		  "----              -----------------------------  -----------------\n"
		  "Default Frontend  20                             True\n");
	r = 0;
	CHECK_STR(table(&cfg, "nobody", dflt, &r), "");
	CHECK(r == -1);
	config_free(&cfg);
}

/* admin_read_password on the octets in[0..n): "rc|password|length". */
static const char *readpw(const char *in, size_t n, size_t bufsz)
{
	static char res[600];
	char buf[300];
	size_t len = 99;
	FILE *f = fmemopen((void *)in, n, "r");
	int r;

	if (!f)
		return "(fmemopen)";
	if (bufsz > sizeof buf)
		bufsz = sizeof buf;
	r = admin_read_password(f, buf, bufsz, &len);
	fclose(f);
	snprintf(res, sizeof res, "%d|%s|%zu", r, buf, len);
	return res;
}
#define READPW(lit, sz) readpw(lit, sizeof lit - 1, sz)

static void test_read_password(void)
{
	char big[300];

	CHECK_STR(READPW("s3cret\n", 64), "0|s3cret|6");
	CHECK_STR(READPW("s3cret\r\n", 64), "0|s3cret|6");
	CHECK_STR(READPW("s3cret", 64), "0|s3cret|6");
	CHECK_STR(READPW("s3cret\nsecond line\n", 64), "0|s3cret|6");
	CHECK_STR(READPW("  spaces kept \t\n", 64), "0|  spaces kept \t|15");
	CHECK_STR(READPW("ends in CR\r", 64), "0|ends in CR\r|11"); /* no LF: the CR is content */
	CHECK_STR(READPW("a\r\r\n", 64), "0|a\r|2");
	CHECK_STR(READPW("\n", 64), "-1||0");
	CHECK_STR(READPW("\r\n", 64), "-1||0");
	CHECK_STR(READPW("", 64), "-1||0");
	CHECK_STR(READPW("\nsecond\n", 64), "-1||0");
	/* A NUL is returned, counted: users_set_password refuses it. */
	CHECK_STR(READPW("a\0b\n", 64), "0|a|3");
	/* bufsz - 1 octets fit; one more is too long, CRLF or not. */
	CHECK_STR(READPW("12345\n", 6), "0|12345|5");
	CHECK_STR(READPW("12345\r\n", 6), "0|12345|5");
	CHECK_STR(READPW("123456\n", 6), "-2|12345|0");
	CHECK_STR(READPW("123456", 6), "-2|12345|0");
	memset(big, 'p', sizeof big);
	CHECK(strncmp(readpw(big, 257, 258), "0|", 2) == 0);
	CHECK(strncmp(readpw(big, 258, 258), "-2|", 3) == 0);
}

int main(void)
{
	snprintf(dir, sizeof dir, "/tmp/test_admin.XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 2;
	}
	test_replace();
	test_continuations();
	test_insert();
	test_crlf();
	test_sections();
	test_value_ok();
	test_fields();
	test_table();
	test_read_password();
	free(out);
	unlink(path);
	rmdir(dir);
	return check_summary("admin");
}
