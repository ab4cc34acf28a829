/* fuzz_recipients: the recipient file (SPEC §4) through recipients_load().
 *
 * Checks: a failed load says why on "FILE:LINE:" lines; in a loaded table
 * every mailbox name is one safe path component (it names a Maildir
 * directory: no '/', no leading '.', no control or 8-bit octet, not
 * "tmp"), every address the file lists reaches the mailbox the file
 * names for it (or its own lower-cased name), whatever its case, every
 * catch-all and postmaster of a local domain is accepted, and a lookup of
 * any text stays within its answer set.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "recipients.h"

#include "fuzz_util.h"

#define ERR_MAX 4096

static char g_err[ERR_MAX];

NOCOV static void check_name(const char *m)
{
	size_t n;

	FUZZ_CHECK(m != NULL);
	n = strlen(m);
	FUZZ_CHECK(n >= 1 && n <= 255 && m[0] != '.' && strcmp(m, "tmp") != 0);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)m[i];
		FUZZ_CHECK(c > 0x20 && c < 0x7f && c != '/');
	}
}

/* want: the mailbox the address must reach, or NULL for any. */
NOCOV static void check_lookup(const struct recipients *r, const char *a, size_t n, bool must_be_ok,
			       const char *want)
{
	uint32_t mb = UINT32_MAX;
	enum rcpt_result res = recipients_lookup(r, a, n, &mb);

	FUZZ_CHECK(res == RCPT_OK || res == RCPT_UNKNOWN || res == RCPT_NOT_LOCAL);
	if (res == RCPT_OK)
		check_name(recipients_mailbox(r, mb));
	if (must_be_ok && res != RCPT_OK) {
		fprintf(stderr, "listed address '%.*s' not accepted (%d)\n", (int)n, a, (int)res);
		FUZZ_CHECK(!"a listed address is accepted");
	}
	if (want && strcmp(recipients_mailbox(r, mb), want) != 0) {
		fprintf(stderr, "listed address '%.*s' delivered to mailbox '%s', not '%s'\n", (int)n, a,
			recipients_mailbox(r, mb), want);
		FUZZ_CHECK(!"a listed address reaches its own mailbox");
	}
}

NOCOV static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *path = fuzz_tmp_file("recipients");
	struct recipients *r;
	uint32_t id;
	char buf[600];
	const char *p, *end;

	fuzz_write_file(path, data, size, 0600);
	memset(g_err, 0x5a, sizeof g_err);
	r = recipients_load(path, g_err, sizeof g_err);
	unlink(path); /* read: a crash from here on leaves nothing in /dev/shm */
	if (!r) {
		fuzz_check_errors(g_err, sizeof g_err, path);
		return 0;
	}
	/* Mailbox ids are dense from 0. */
	for (id = 0; recipients_mailbox(r, id) != NULL; id++) {
		FUZZ_CHECK(id <= recipients_count(r) + 1);
		check_name(recipients_mailbox(r, id));
	}
	check_lookup(r, "postmaster", 10, true, NULL);
	check_lookup(r, "PostMaster", 10, true, NULL);

	/* Every line as the loader reads it (a '#' starts a comment, blanks
	 * separate the columns): the file loaded, so every entry is valid and
	 * its address must reach its own mailbox, in any case. */
	p = (const char *)data;
	end = p + size;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *ls = p, *le = nl ? nl : end, *hash, *q;
		const char *tok[2] = {NULL, NULL};
		size_t tlen[2] = {0, 0}, n;
		unsigned nt = 0;

		p = nl ? nl + 1 : end;
		/* Arbitrary text from the input: only the answer set matters. */
		check_lookup(r, ls, (size_t)(le - ls), false, NULL);
		hash = memchr(ls, '#', (size_t)(le - ls));
		if (hash)
			le = hash;
		for (q = ls; q < le;) {
			const char *t;
			while (q < le && is_ws(*q))
				q++;
			if (q == le)
				break;
			for (t = q; q < le && !is_ws(*q); q++)
				;
			if (nt < 2) {
				tok[nt] = t;
				tlen[nt] = (size_t)(q - t);
			}
			nt++;
		}
		if (nt == 0)
			continue;
		FUZZ_CHECK(nt <= 2);
		n = tlen[0];
		FUZZ_CHECK(n >= 2 && n + 12 <= sizeof buf && memchr(tok[0], '@', n) != NULL);
		if (tok[0][0] == '@') {
			/* A catch-all: some user of the domain is accepted (which
			 * mailbox depends on what else the file lists). */
			buf[0] = 'x';
			memcpy(buf + 1, tok[0], n);
			check_lookup(r, buf, n + 1, true, NULL);
		} else {
			char want[300];
			if (nt == 2) {
				FUZZ_CHECK(tlen[1] < sizeof want);
				memcpy(want, tok[1], tlen[1]);
				want[tlen[1]] = 0;
			} else {
				for (size_t i = 0; i < n; i++)
					want[i] = tok[0][i] >= 'A' && tok[0][i] <= 'Z' ? (char)(tok[0][i] - 'A' + 'a')
										     : tok[0][i];
				want[n] = 0;
			}
			memcpy(buf, tok[0], n);
			check_lookup(r, buf, n, true, want);
			for (size_t i = 0; i < n; i++)
				if (buf[i] >= 'a' && buf[i] <= 'z')
					buf[i] = (char)(buf[i] - 'a' + 'A');
			check_lookup(r, buf, n, true, want);
		}
		/* postmaster of a local domain is always accepted. */
		{
			const char *at = memchr(tok[0], '@', n);
			size_t dl = (size_t)(tok[0] + n - at);
			memcpy(buf, "postmaster", 10);
			memcpy(buf + 10, at, dl);
			check_lookup(r, buf, 10 + dl, true, NULL);
		}
	}
	recipients_unref(r);
	return 0;
}
