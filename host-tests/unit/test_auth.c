/* test_auth: strict base64 (RFC 4648 vectors and every kind of reject),
 * SASL PLAIN parsing, the users file (load errors with line numbers, the
 * mode check, a hand-made entry from a published PBKDF2-HMAC-SHA256
 * vector) and `passwd` (mode 0600, in-place replacement that keeps every
 * other octet, appending, symbolic links). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "check.h"
#include "pbkdf2.h"

static char dir[64];
static char path[256];
static char err[8192];

static const char *in_dir(const char *name)
{
	static char out[4][300];
	static int i;
	char *o = out[i++ & 3];

	snprintf(o, 300, "%s/%s", dir, name);
	return o;
}

static void write_mode(const char *p, const char *text, size_t len, mode_t mode)
{
	FILE *f;

	unlink(p);
	f = fopen(p, "wb");
	if (!f) {
		perror(p);
		exit(2);
	}
	fwrite(text, 1, len, f);
	fclose(f);
	chmod(p, mode);
}

/* The whole file as a NUL-terminated string (static, one at a time). */
static const char *slurp(const char *p)
{
	static char buf[16384];
	FILE *f = fopen(p, "rb");
	size_t n;

	if (!f)
		return "(missing)";
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

static bool verify(const struct users *u, const char *user, const char *pass)
{
	return users_verify(u, user, strlen(user), pass, strlen(pass));
}

/* ---- base64 ----------------------------------------------------------------- */

static const char *dec(const char *in, size_t outsz)
{
	static char out[256];
	size_t n = 99;

	if (outsz > sizeof out - 1)
		outsz = sizeof out - 1;
	if (auth_b64_decode(in, strlen(in), (unsigned char *)out, outsz, &n) != 0)
		return n == 0 ? "(rejected)" : "(rejected, outlen set)";
	out[n] = '\0';
	return out;
}

static const char *enc(const char *in, size_t outsz)
{
	static char out[256];

	memset(out, 'x', sizeof out);
	if (auth_b64_encode((const unsigned char *)in, strlen(in), out, outsz) != strlen(out))
		return "(bad length)";
	return out;
}

static void test_b64(void)
{
	static const char *const vec[][2] = {
		{ "", "" },	    { "f", "Zg==" },	  { "fo", "Zm8=" },	{ "foo", "Zm9v" },
		{ "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
	};
	static const char *const bad[] = {
		"Zg=",	    "Zg",	"Z",	    "Zg===",	"Z===",	    "====",	"Zg=a",	   "Zh==",
		"Zm9=",	    "Zm8 ",	" Zm8=",    "Zm8=\n",	"Zm\r\n8=", "Zm=8",	"=m8=",	   "Zg==Zg==",
		"Zm9v====", "Zm-v",	"Zm_v",	    "Zm9v\x80", "Zm.v",
	};
	unsigned char out[8];
	size_t i, n;

	for (i = 0; i < sizeof vec / sizeof vec[0]; i++) {
		CHECK_STR(dec(vec[i][1], 64), vec[i][0]);
		CHECK_STR(enc(vec[i][0], 64), vec[i][1]);
	}
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
		CHECK_STR(dec(bad[i], 64), "(rejected)");
	/* A NUL inside the counted length is a bad character too. */
	CHECK(auth_b64_decode("Zg\0=", 4, out, sizeof out, &n) == -1);
	/* All 64 characters: the alphabet decodes to 48 octets and back. */
	{
		static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
		unsigned char all[64], bytes[256];
		char back[400];

		CHECK(auth_b64_decode(abc, 64, all, sizeof all, &n) == 0 && n == 48);
		CHECK(all[0] == 0x00 && all[1] == 0x10 && all[2] == 0x83 && all[47] == 0xbf);
		CHECK(auth_b64_encode(all, 48, back, sizeof back) == 64);
		CHECK_STR(back, abc);
		for (i = 0; i < 256; i++)
			bytes[i] = (unsigned char)i;
		CHECK(auth_b64_encode(bytes, 256, back, sizeof back) == 344);
		CHECK(auth_b64_decode(back, 344, all, sizeof all, &n) == -1); /* 256 > 64 */
		{
			unsigned char again[256];

			CHECK(auth_b64_decode(back, 344, again, sizeof again, &n) == 0 && n == 256 &&
			      memcmp(again, bytes, 256) == 0);
		}
	}
	CHECK_STR(enc("\xff\xfe\xfd", 64), "//79");
	CHECK_STR(dec("//79", 64), "\xff\xfe\xfd");
	CHECK_STR(enc("\xfb\xef", 64), "++8=");
	CHECK_STR(dec("++8=", 64), "\xfb\xef");

	/* Output room: exactly enough, one short. */
	CHECK_STR(dec("Zm9vYmFy", 6), "foobar");
	CHECK_STR(dec("Zm9vYmFy", 5), "(rejected)");
	CHECK_STR(dec("Zm9vYg==", 4), "foob");
	CHECK_STR(dec("Zm9vYg==", 3), "(rejected)");
	CHECK(auth_b64_decode("", 0, NULL, 0, &n) == 0 && n == 0);
	CHECK(auth_b64_decode("Zg==", 4, NULL, 0, &n) == -1);
	CHECK(auth_b64_decode("Zg==", 4, out, sizeof out, NULL) == 0 && out[0] == 'f');

	/* Encoding needs 4 per 3 octets plus the NUL; too little room gives
	 * 0 and an empty string. */
	CHECK_STR(enc("foo", 5), "Zm9v");
	CHECK(auth_b64_encode((const unsigned char *)"foo", 3, (char *)out, 4) == 0 && out[0] == '\0');
	CHECK(auth_b64_encode((const unsigned char *)"foo", 3, NULL, 0) == 0);
	CHECK_STR(enc("fooba", 9), "Zm9vYmE=");
	CHECK(auth_b64_encode((const unsigned char *)"fooba", 5, (char *)out, 8) == 0);
}

/* ---- SASL PLAIN --------------------------------------------------------------- */

static const char *plain(const char *msg, size_t len)
{
	static char out[300];
	const char *u = NULL, *p = NULL;
	size_t ul = 0, pl = 0;

	if (sasl_plain_parse((const unsigned char *)msg, len, &u, &ul, &p, &pl) != 0)
		return "(malformed)";
	if (u < msg || u + ul > msg + len || p < msg || p + pl > msg + len)
		return "(outside the buffer)";
	snprintf(out, sizeof out, "%.*s|%.*s", (int)ul, u, (int)pl, p);
	return out;
}
#define PLAIN(lit) plain(lit, sizeof lit - 1)

static void test_plain(void)
{
	CHECK_STR(PLAIN("\0alice@example.org\0s3cret"), "alice@example.org|s3cret");
	CHECK_STR(PLAIN("alice\0alice\0s3cret"), "alice|s3cret");
	CHECK_STR(PLAIN("\0alice\0p\xc3\xa4ss w\x01rd"), "alice|p\xc3\xa4ss w\x01rd");
	CHECK_STR(PLAIN("bob\0alice\0s3cret"), "(malformed)");
	CHECK_STR(PLAIN("alic\0alice\0s3cret"), "(malformed)");
	CHECK_STR(PLAIN("alicee\0alice\0s3cret"), "(malformed)");
	CHECK_STR(PLAIN("Alice\0alice\0s3cret"), "(malformed)");
	CHECK_STR(PLAIN("alice\0s3cret"), "(malformed)");
	CHECK_STR(PLAIN("\0alice"), "(malformed)");
	CHECK_STR(PLAIN("alices3cret"), "(malformed)");
	CHECK_STR(PLAIN(""), "(malformed)");
	CHECK_STR(PLAIN("\0"), "(malformed)");
	CHECK_STR(PLAIN("\0\0"), "(malformed)");
	CHECK_STR(PLAIN("\0\0s3cret"), "(malformed)");
	CHECK_STR(PLAIN("\0alice\0"), "(malformed)");
	CHECK_STR(PLAIN("\0alice\0sec\0ret"), "(malformed)");
	CHECK_STR(PLAIN("\0alice\0s3cret\0"), "(malformed)");
	/* The length counts, not a terminator. */
	CHECK_STR(plain("\0alice\0s3cret", 9), "alice|s3");
	CHECK_STR(plain("\0alice\0s3cret", 7), "(malformed)");
	CHECK(sasl_plain_parse(NULL, 0, NULL, NULL, NULL, NULL) == -1);
}

/* ---- the users file ------------------------------------------------------------ */

/* PBKDF2-HMAC-SHA256, P = "passwordPASSWORDpassword", S =
 * "saltSALTsaltSALTsaltSALTsaltSALTsalt", c = 4096: the published vector
 * (its first 32 octets), so the file format is the standard one. */
#define VECTOR_LINE                                                                           \
	"carol@example.org:$pbkdf2-sha256$4096$c2FsdFNBTFRzYWx0U0FMVHNhbHRTQUxUc2FsdFNBTFRzYWx0$" \
	"NIyJ28vTKy8y2BS4EW6EzysXNH68GAAYHE4qH7jdU+E="

static struct users *load_text(const char *text, mode_t mode)
{
	snprintf(path, sizeof path, "%s", in_dir("users"));
	write_mode(path, text, strlen(text), mode);
	return users_load(path, err, sizeof err);
}

/* "<path>:<suffix>" for each '\n'-separated suffix. */
static const char *E(const char *suffixes)
{
	static char out[2][4096];
	static int i;
	char *o = out[i++ & 1];
	const char *s = suffixes;
	size_t n = 0;

	o[0] = '\0';
	while (*s) {
		const char *nl = strchr(s, '\n');
		size_t len = nl ? (size_t)(nl - s) : strlen(s);

		n += (size_t)snprintf(o + n, 4096 - n, "%s%s:%.*s", n ? "\n" : "", path, (int)len, s);
		s += len;
		if (*s == '\n')
			s++;
	}
	return o;
}

static void test_load(void)
{
	struct users *u;
	char line[700], big[600];
	struct stat st;

	u = load_text("# users\n\n   \n\t# indented comment\n" VECTOR_LINE "\n", 0600);
	CHECK(u != NULL);
	CHECK_STR(err, "");
	CHECK(users_count(u) == 1);
	CHECK(verify(u, "carol@example.org", "passwordPASSWORDpassword"));
	CHECK(!verify(u, "carol@example.org", "passwordPASSWORDpassworD"));
	CHECK(!verify(u, "carol@example.org", "passwordPASSWORDpasswor"));
	CHECK(!verify(u, "carol@example.org", ""));
	CHECK(!verify(u, "Carol@example.org", "passwordPASSWORDpassword"));
	CHECK(!verify(u, "carol@example.or", "passwordPASSWORDpassword"));
	CHECK(!verify(u, "carol@example.org ", "passwordPASSWORDpassword"));
	CHECK(!verify(u, "", "passwordPASSWORDpassword"));
	/* The length is what counts: a name followed by more octets. */
	CHECK(users_verify(u, "carol@example.orgX", 17, "passwordPASSWORDpassword", 24));
	CHECK(!users_verify(u, "carol@example.org", 17, "passwordPASSWORDpasswordX", 25));
	users_free(u);

	/* CRLF line ends, no final newline, an empty file. */
	u = load_text("# users\r\n" VECTOR_LINE, 0600);
	CHECK(u != NULL && users_count(u) == 1);
	CHECK(verify(u, "carol@example.org", "passwordPASSWORDpassword"));
	users_free(u);
	u = load_text(VECTOR_LINE "\r\n", 0600);
	CHECK(u != NULL && users_count(u) == 1);
	users_free(u);
	u = load_text("", 0600);
	CHECK(u != NULL && users_count(u) == 0);
	CHECK(!verify(u, "carol@example.org", "passwordPASSWORDpassword"));
	users_free(u);
	CHECK(!users_verify(NULL, "a", 1, "b", 1));
	CHECK(users_count(NULL) == 0);
	users_free(NULL);

	/* Every line error, each with its line number, all reported. */
	u = load_text("# comment\n"
		      "\n"
		      "nocolon\n"
		      "bad name:$pbkdf2-sha256$4096$c2FsdHNhbHQ=$NIyJ28vTKy8y2BS4EW6EzysXNH68GAAYHE4qH7jdU+E=\n"
		      "x:$pbkdf2-sha1$4096$c2FsdHNhbHQ=$NIyJ28vTKy8y2BS4EW6EzysXNH68GAAYHE4qH7jdU+E=\n"
		      "x:$pbkdf2-sha256$999$c2FsdHNhbHQ=$NIyJ28vTKy8y2BS4EW6EzysXNH68GAAYHE4qH7jdU+E=\n"
		      "x:$pbkdf2-sha256$04096$c2FsdHNhbHQ=$NIyJ28vTKy8y2BS4EW6EzysXNH68GAAYHE4qH7jdU+E=\n"
		      "x:$pbkdf2-sha256$10000001$c2FsdHNhbHQ=$NIyJ28vTKy8y2BS4EW6EzysXNH68GAAYHE4qH7jdU+E=\n"
		      "x:$pbkdf2-sha256$4096$c2FsdA==$NIyJ28vTKy8y2BS4EW6EzysXNH68GAAYHE4qH7jdU+E=\n"
		      "x:$pbkdf2-sha256$4096$c2FsdHNhbHQ$NIyJ28vTKy8y2BS4EW6EzysXNH68GAAYHE4qH7jdU+E=\n"
		      "x:$pbkdf2-sha256$4096$c2FsdHNhbHQ=$NIyJ28vTKy8y2BS4EW6EzysXNH68GAAYHE4qH7jdU+E=AAAA\n"
		      "x:$pbkdf2-sha256$4096$c2FsdHNhbHQ=\n" VECTOR_LINE "\n"
		      ":$pbkdf2-sha256$4096$c2FsdHNhbHQ=$NIyJ28vTKy8y2BS4EW6EzysXNH68GAAYHE4qH7jdU+E=\n"
		      "  " VECTOR_LINE "\n" VECTOR_LINE "\n" VECTOR_LINE " \n",
		      0600);
	CHECK(u == NULL);
	CHECK_STR(err, E("3: expected name:$pbkdf2-sha256$ITERATIONS$SALT$HASH\n"
			 "4: user name 'bad name' must be 1 to 64 printable ASCII octets without ':' or white space\n"
			 "5: unknown password scheme (expected $pbkdf2-sha256$ITERATIONS$SALT$HASH)\n"
			 "6: iterations '999' must be a number from 1000 to 10000000\n"
			 "7: iterations '04096' must be a number from 1000 to 10000000\n"
			 "8: iterations '10000001' must be a number from 1000 to 10000000\n"
			 "9: salt must be base64 of 8 to 64 octets\n"
			 "10: salt must be base64 of 8 to 64 octets\n"
			 "11: hash must be base64 of 32 octets\n"
			 "12: expected name:$pbkdf2-sha256$ITERATIONS$SALT$HASH\n"
			 "14: user name '' must be 1 to 64 printable ASCII octets without ':' or white space\n"
			 "15: user name '  carol@example.org' must be 1 to 64 printable ASCII octets without ':' or "
			 "white space\n"
			 "16: duplicate user 'carol@example.org' (first at line 13)\n"
			 "17: hash must be base64 of 32 octets"));

	/* Lines too long or holding NUL, a 65-octet name, a 64-octet one. */
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	memcpy(line, big, strlen(big));
	memcpy(line + strlen(big), "\nok:\0x\n", 7);
	snprintf(path, sizeof path, "%s", in_dir("users"));
	write_mode(path, line, strlen(big) + 7, 0600);
	u = users_load(path, err, sizeof err);
	CHECK(u == NULL);
	CHECK_STR(err, E("1: line longer than 511 octets\n2: NUL octet in line"));
	u = load_text("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		      ":$pbkdf2-sha256$4096$c2FsdHNhbHQ=$NIyJ28vTKy8y2BS4EW6EzysXNH68GAAYHE4qH7jdU+E=\n",
		      0600);
	CHECK(u == NULL);
	CHECK(strstr(err, ":1: user name 'aaaa") != NULL);
	u = load_text("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		      ":$pbkdf2-sha256$4096$c2FsdHNhbHQ=$NIyJ28vTKy8y2BS4EW6EzysXNH68GAAYHE4qH7jdU+E=\n",
		      0600);
	CHECK(u != NULL && users_count(u) == 1);
	users_free(u);

	/* SPEC §6: mode 0600. Group or other access is refused, with the fix. */
	u = load_text(VECTOR_LINE "\n", 0644);
	CHECK(u == NULL);
	{
		char want[600];

		snprintf(want, sizeof want, "%s: mode 0644 is too open; chmod 600 %s", path, path);
		CHECK_STR(err, want);
	}
	u = load_text(VECTOR_LINE "\n", 0640);
	CHECK(u == NULL && strstr(err, ": mode 0640 is too open; chmod 600 ") != NULL);
	u = load_text(VECTOR_LINE "\n", 0604);
	CHECK(u == NULL && strstr(err, ": mode 0604 is too open") != NULL);
	u = load_text(VECTOR_LINE "\n", 0400);
	CHECK(u != NULL);
	users_free(u);
	/* The mode and line errors together. */
	u = load_text("nocolon\n", 0660);
	CHECK(u == NULL);
	{
		char want[900];

		snprintf(want, sizeof want, "%s: mode 0660 is too open; chmod 600 %s\n%s:1: expected "
					    "name:$pbkdf2-sha256$ITERATIONS$SALT$HASH", path, path, path);
		CHECK_STR(err, want);
	}

	/* Not a file, no file. */
	snprintf(path, sizeof path, "%s", in_dir("adir"));
	mkdir(path, 0700);
	u = users_load(path, err, sizeof err);
	CHECK(u == NULL);
	CHECK_STR(err, E(" not a regular file"));
	rmdir(path);
	snprintf(path, sizeof path, "%s", in_dir("nope"));
	u = users_load(path, err, sizeof err);
	CHECK(u == NULL);
	CHECK_STR(err, E(" cannot open: No such file or directory"));
	CHECK(stat(path, &st) != 0);
	/* A small err buffer is cut, terminated. */
	u = users_load(path, err, 8);
	CHECK(u == NULL && strlen(err) == 7);
}

/* ---- passwd ------------------------------------------------------------------- */

static void test_set(void)
{
	const char *p = in_dir("pw/users"), *q;
	char before[4096], want[4096], *nl;
	struct users *u;
	struct stat st;
	size_t n;

	snprintf(path, sizeof path, "%s", p);
	mkdir(in_dir("pw"), 0700);
	unlink(p);
	CHECK(users_set_password(p, "alice@example.org", "s3cret", 6, err, sizeof err) == 0);
	CHECK_STR(err, "");
	CHECK(stat(p, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 07777) == 0600);
	q = slurp(p);
	CHECK(strncmp(q, "alice@example.org:$pbkdf2-sha256$2000$", 38) == 0);
	CHECK(strlen(q) == 38 + 24 + 1 + 44 + 1 && q[strlen(q) - 1] == '\n');
	u = users_load(p, err, sizeof err);
	CHECK(u != NULL && users_count(u) == 1);
	CHECK(verify(u, "alice@example.org", "s3cret"));
	CHECK(!verify(u, "alice@example.org", "s3creT"));
	CHECK(!verify(u, "bob@example.org", "s3cret"));
	users_free(u);

	/* A second user is appended, the first line kept. */
	snprintf(before, sizeof before, "%s", slurp(p));
	CHECK(users_set_password(p, "bob", "hunter2", 7, err, sizeof err) == 0);
	q = slurp(p);
	CHECK(strncmp(q, before, strlen(before)) == 0);
	CHECK(strncmp(q + strlen(before), "bob:$pbkdf2-sha256$2000$", 24) == 0);

	/* Each new salt differs: the same password gives another line. */
	snprintf(before, sizeof before, "%s", slurp(p));
	CHECK(users_set_password(p, "alice@example.org", "s3cret", 6, err, sizeof err) == 0);
	q = slurp(p);
	CHECK(strcmp(q, before) != 0);
	nl = strchr(before, '\n');
	CHECK(nl && strcmp(strchr(q, '\n'), nl) == 0); /* bob's line untouched */

	/* Replacing in a hand-edited file: comments, blank lines, CRLF, the
	 * other users and their order are kept octet for octet; the user's
	 * line gets the new entry with its own line end; a later duplicate of
	 * it goes. */
	snprintf(before, sizeof before,
		 "# users of mx.example.org\r\n\n" VECTOR_LINE "\r\n"
		 "alice@example.org:$pbkdf2-sha256$1000$c2FsdHNhbHQ=$NIyJ28vTKy8y2BS4EW6EzysXNH68GAAYHE4qH7jdU+E=\r\n"
		 "  # indented\n"
		 "alice@example.org.uk:$pbkdf2-sha256$1000$c2FsdHNhbHQ=$NIyJ28vTKy8y2BS4EW6EzysXNH68GAAYHE4qH7jdU+E=\n"
		 "alice@example.org:$pbkdf2-sha256$1000$c2FsdHNhbHQ=$NIyJ28vTKy8y2BS4EW6EzysXNH68GAAYHE4qH7jdU+E=\n"
		 "zed:$pbkdf2-sha256$1000$c2FsdHNhbHQ=$NIyJ28vTKy8y2BS4EW6EzysXNH68GAAYHE4qH7jdU+E=");
	write_mode(p, before, strlen(before), 0644);
	CHECK(users_set_password(p, "alice@example.org", "n3w pass", 8, err, sizeof err) == 0);
	CHECK(stat(p, &st) == 0 && (st.st_mode & 07777) == 0600);
	q = slurp(p);
	n = strlen("# users of mx.example.org\r\n\n" VECTOR_LINE "\r\n");
	CHECK(strncmp(q, before, n) == 0);
	CHECK(strncmp(q + n, "alice@example.org:$pbkdf2-sha256$2000$", 38) == 0);
	CHECK(strncmp(q + n + 38 + 24 + 1 + 44, "\r\n", 2) == 0);
	snprintf(want, sizeof want, "%s",
		 "  # indented\n"
		 "alice@example.org.uk:$pbkdf2-sha256$1000$c2FsdHNhbHQ=$NIyJ28vTKy8y2BS4EW6EzysXNH68GAAYHE4qH7jdU+E=\n"
		 "zed:$pbkdf2-sha256$1000$c2FsdHNhbHQ=$NIyJ28vTKy8y2BS4EW6EzysXNH68GAAYHE4qH7jdU+E=");
	CHECK_STR(q + n + 38 + 24 + 1 + 44 + 2, want);
	u = users_load(p, err, sizeof err);
	CHECK(u != NULL && users_count(u) == 4);
	CHECK_STR(err, "");
	CHECK(verify(u, "alice@example.org", "n3w pass"));
	CHECK(!verify(u, "alice@example.org", "s3cret"));
	CHECK(verify(u, "carol@example.org", "passwordPASSWORDpassword"));
	users_free(u);

	/* Appending to a file without a final newline adds one first. */
	CHECK(users_set_password(p, "new", "x", 1, err, sizeof err) == 0);
	q = slurp(p);
	CHECK(strstr(q, "NIyJ28vTKy8y2BS4EW6EzysXNH68GAAYHE4qH7jdU+E=\nnew:$pbkdf2-sha256$2000$") != NULL);
	CHECK(q[strlen(q) - 1] == '\n');

	/* Refusals leave the file alone. */
	snprintf(before, sizeof before, "%s", slurp(p));
	CHECK(users_set_password(p, "", "x", 1, err, sizeof err) == -1);
	CHECK_STR(err, "'' is not a valid user name (1 to 64 printable ASCII octets without ':' or white space, not starting with '#')");
	CHECK(users_set_password(p, "a b", "x", 1, err, sizeof err) == -1);
	CHECK(users_set_password(p, "a:b", "x", 1, err, sizeof err) == -1);
	CHECK(users_set_password(p, "a\tb", "x", 1, err, sizeof err) == -1);
	CHECK_STR(err, "'a?b' is not a valid user name (1 to 64 printable ASCII octets without ':' or white space, not starting with '#')");
	CHECK(users_set_password(p, "\xc3\xa4", "x", 1, err, sizeof err) == -1);
	CHECK(users_set_password(p, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "x", 1, err,
				 sizeof err) == -1);
	/* A leading '#' would make the line a comment. */
	CHECK(users_set_password(p, "#bob", "x", 1, err, sizeof err) == -1);
	CHECK(users_set_password(p, "b#ob", "x", 1, err, sizeof err) == 0);
	snprintf(before, sizeof before, "%s", slurp(p));
	CHECK(users_set_password(p, "bob", "", 0, err, sizeof err) == -1);
	CHECK_STR(err, "empty password");
	CHECK(users_set_password(p, "bob", "a\0b", 3, err, sizeof err) == -1);
	CHECK_STR(err, "password holds a NUL octet");
	{
		char longpw[AUTH_PASS_MAX + 2];

		memset(longpw, 'p', sizeof longpw);
		CHECK(users_set_password(p, "bob", longpw, AUTH_PASS_MAX + 1, err, sizeof err) == -1);
		CHECK_STR(err, "password longer than 256 octets");
		CHECK(users_set_password(p, "long", longpw, AUTH_PASS_MAX, err, sizeof err) == 0);
		u = users_load(p, err, sizeof err);
		CHECK(u != NULL);
		CHECK(users_verify(u, "long", 4, longpw, AUTH_PASS_MAX));
		/* Over the limit is never right, even with the right prefix. */
		CHECK(!users_verify(u, "long", 4, longpw, AUTH_PASS_MAX + 1));
		users_free(u);
	}
	snprintf(before, sizeof before, "%s", slurp(p));
	CHECK(users_set_password(p, "bob", "a\0b", 3, err, sizeof err) == -1);
	CHECK_STR(slurp(p), before);
	CHECK(users_set_password(in_dir("missing/users"), "bob", "x", 1, err, sizeof err) == -1);
	CHECK(strstr(err, "cannot create a temporary file beside ") != NULL);

	/* No temporary file is left behind. */
	{
		DIR *d = opendir(in_dir("pw"));
		struct dirent *de;
		int others = 0;

		while (d && (de = readdir(d)))
			if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && strcmp(de->d_name, "users"))
				others++;
		if (d)
			closedir(d);
		CHECK(d != NULL && others == 0);
	}

	/* Through a symbolic link: the link stays, the target changes. */
	CHECK(symlink("pw/users", in_dir("link")) == 0);
	CHECK(users_set_password(in_dir("link"), "linked", "x", 1, err, sizeof err) == 0);
	CHECK(lstat(in_dir("link"), &st) == 0 && S_ISLNK(st.st_mode));
	CHECK(strstr(slurp(p), "\nlinked:$pbkdf2-sha256$2000$") != NULL);
	unlink(in_dir("link"));
	unlink(p);
	rmdir(in_dir("pw"));
}

/* ---- PBKDF2 in slices --------------------------------------------------------- */

static void hex(const char *h, unsigned char *out)
{
	for (size_t i = 0; i < 32; i++)
		sscanf(h + 2 * i, "%2hhx", &out[i]);
}

/* The sliced derivation, rounds at a time; how many steps it took. */
static unsigned sliced(struct pbkdf2 *p, const unsigned char *pw, size_t pwlen, const unsigned char *salt,
		       size_t slen, uint32_t iterations, uint32_t rounds, unsigned char out[32])
{
	unsigned steps = 1;

	pbkdf2_start(p, pw, pwlen, salt, slen, iterations);
	while (!pbkdf2_step(p, rounds))
		steps++;
	memcpy(out, p->t, 32);
	return steps;
}

/* The sliced derivation (pbkdf2.c, what the server runs between events)
 * gives mbedtls_pkcs5_pbkdf2_hmac's key (users_pbkdf2) for any split of
 * the rounds: slices of 1, of sizes that do not divide the count, of the
 * whole count; passwords around the HMAC block size (a key over 64
 * octets is hashed first) and the empty one; salts of 8 to 64 octets;
 * one context reused for every derivation, as a verifier is. */
static void test_pbkdf2(void)
{
	static const uint32_t counts[] = {1, 2, 3, 7, 255, 256, 257, 1000, 2000, 4097};
	static const uint32_t slices[] = {1, 2, 3, 10, 255, 256, 1000, UINT32_MAX};
	static const size_t pwlens[] = {0, 1, 6, 63, 64, 65, 200, AUTH_PASS_MAX};
	static const size_t saltlens[] = {USERS_SALT_MIN, 16, 51, 52, 55, USERS_SALT_MAX};
	unsigned char pw[AUTH_PASS_MAX], salt[USERS_SALT_MAX], want[32], got[32];
	struct pbkdf2 p;
	unsigned bad = 0, runs = 0;

	for (size_t i = 0; i < sizeof pw; i++)
		pw[i] = (unsigned char)(i * 7 + 1);
	for (size_t i = 0; i < sizeof salt; i++)
		salt[i] = (unsigned char)(255 - i * 3);
	CHECK(pbkdf2_init(&p) == 0);

	/* The published vectors (P = "password", S = "salt"). */
	{
		static const struct {
			uint32_t c;
			const char *dk;
		} v[] = {
			{1, "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b"},
			{2, "ae4d0c95af6b46d32d0adff928f06dd02a303f8ef3c251dfd6e2d85a95474c43"},
			{4096, "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a"},
		};
		for (size_t k = 0; k < sizeof v / sizeof v[0]; k++) {
			hex(v[k].dk, want);
			sliced(&p, (const unsigned char *)"password", 8, (const unsigned char *)"salt", 4, v[k].c, 100, got);
			CHECK(memcmp(got, want, 32) == 0);
		}
	}
	for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
		for (size_t k = 0; k < sizeof slices / sizeof slices[0]; k++) {
			size_t pl = pwlens[(c + k) % (sizeof pwlens / sizeof pwlens[0])];
			size_t sl = saltlens[(c * 3 + k) % (sizeof saltlens / sizeof saltlens[0])];
			uint32_t n = counts[c], r = slices[k];
			unsigned steps;

			CHECK(users_pbkdf2(pl ? pw : NULL, pl, salt, sl, n, want) == 0);
			steps = sliced(&p, pl ? pw : NULL, pl, salt, sl, n, r, got);
			runs++;
			if (memcmp(got, want, 32) != 0 || p.failed) {
				bad++;
				fprintf(stderr, "pbkdf2: count %u, slice %u, password %zu, salt %zu: differs\n", n, r, pl, sl);
			}
			/* ceil((n - 1) / r) slices, at least one call. */
			if (steps != (n - 1 == 0 ? 1u : (unsigned)((n - 1 + (uint64_t)r - 1) / r))) {
				bad++;
				fprintf(stderr, "pbkdf2: count %u, slice %u: %u steps\n", n, r, steps);
			}
			pbkdf2_wipe(&p);
		}
	}
	CHECK(runs == 80 && bad == 0);
	/* Every password length against one count, in slices of 3. */
	for (size_t pl = 0; pl <= AUTH_PASS_MAX; pl++) {
		CHECK(users_pbkdf2(pw, pl, salt, 16, 5, want) == 0);
		sliced(&p, pw, pl, salt, 16, 5, 3, got);
		if (memcmp(got, want, 32) != 0)
			bad++;
	}
	CHECK(bad == 0);
	/* A wipe forgets the key: nothing of it in U or T, nothing left to run. */
	sliced(&p, pw, 10, salt, 16, 50, 7, got);
	pbkdf2_wipe(&p);
	{
		unsigned char zero[32] = {0};
		CHECK(memcmp(p.t, zero, 32) == 0 && memcmp(p.u, zero, 32) == 0 && p.left == 0);
	}
	CHECK(pbkdf2_step(&p, 1)); /* done: nothing to run */
	pbkdf2_free(&p);
}

/* What the server checks against: the entry, or for anyone else the same
 * cost (the most common count of the file, ties to the larger) and never
 * a match; the constant-time comparison gives the answer. */
static void test_lookup(void)
{
	struct users_ref r;
	unsigned char key[32];
	struct users *u;
	char text[4096];
	size_t n = 0;

	/* Two at 1000, three at 5000, one at 9000: 5000 is the most common. */
	static const struct {
		const char *name;
		uint32_t c;
	} e[] = {{"a", 1000}, {"b", 5000}, {"c", 9000}, {"d", 5000}, {"e", 1000}, {"f", 5000}};
	for (size_t i = 0; i < sizeof e / sizeof e[0]; i++)
		n += (size_t)snprintf(text + n, sizeof text - n,
				      "%s:$pbkdf2-sha256$%u$c2FsdFNBTFRzYWx0U0FMVHNhbHRTQUxUc2FsdFNBTFRzYWx0$"
				      "NIyJ28vTKy8y2BS4EW6EzysXNH68GAAYHE4qH7jdU+E=\n",
				      e[i].name, (unsigned)e[i].c);
	n += (size_t)snprintf(text + n, sizeof text - n, "%s\n", VECTOR_LINE);
	u = load_text(text, 0600);
	CHECK(u != NULL);
	CHECK(users_usual_iterations(u) == 5000);
	users_lookup(u, "c", 1, 6, &r);
	CHECK(r.known && r.iterations == 9000 && r.saltlen == 36 && memcmp(r.salt, "saltSALT", 8) == 0);
	users_lookup(u, "mallory", 7, 6, &r);
	CHECK(!r.known && r.iterations == 5000 && r.saltlen == USERS_SALT_NEW);
	users_lookup(u, NULL, 0, 0, &r);
	CHECK(!r.known && r.iterations == 5000);
	/* The right key for carol matches; the same key for a name not in
	 * the file does not, nor does a password that is too long. */
	users_lookup(u, "carol@example.org", 17, 24, &r);
	CHECK(r.known && r.iterations == 4096);
	CHECK(users_pbkdf2((const unsigned char *)"passwordPASSWORDpassword", 24, r.salt, r.saltlen, r.iterations, key) == 0);
	CHECK(users_match(&r, key));
	key[31] ^= 1;
	CHECK(!users_match(&r, key));
	key[31] ^= 1;
	users_lookup(u, "carol@example.org", 17, AUTH_PASS_MAX + 1, &r);
	CHECK(!r.known && r.iterations == 5000 && !users_match(&r, key));
	users_lookup(u, "nobody", 6, 24, &r);
	memset(key, 0, sizeof key); /* the dummy hash is zeros: still no match */
	CHECK(!users_match(&r, key));
	users_free(u);

	/* A tie goes to the larger count; an empty file or none costs the default. */
	u = load_text("a:$pbkdf2-sha256$3000$c2FsdHNhbHQ=$NIyJ28vTKy8y2BS4EW6EzysXNH68GAAYHE4qH7jdU+E=\n"
		      "b:$pbkdf2-sha256$7000$c2FsdHNhbHQ=$NIyJ28vTKy8y2BS4EW6EzysXNH68GAAYHE4qH7jdU+E=\n",
		      0600);
	CHECK(u != NULL && users_usual_iterations(u) == 7000);
	users_free(u);
	u = load_text("", 0600);
	CHECK(u != NULL && users_usual_iterations(u) == AUTH_ITERATIONS_DEFAULT);
	users_free(u);
	CHECK(users_usual_iterations(NULL) == AUTH_ITERATIONS_DEFAULT);
	users_lookup(NULL, "a", 1, 1, &r);
	CHECK(!r.known && r.iterations == AUTH_ITERATIONS_DEFAULT);
}

int main(void)
{
	snprintf(dir, sizeof dir, "/tmp/test_auth.XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 2;
	}
	test_b64();
	test_plain();
	test_load();
	test_set();
	test_pbkdf2();
	test_lookup();
	unlink(in_dir("users"));
	rmdir(dir);
	return check_summary("auth");
}
