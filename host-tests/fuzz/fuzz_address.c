/* fuzz_address: address_parse_path() on the text after "FROM:" / "TO:".
 *
 * Checks: the mailbox fits its buffer and a 256-octet path, holds only
 * printable ASCII (it reaches Return-Path: and Received: lines), the rest
 * offset is in bounds and starts the parameters; and parsing is
 * idempotent: "<mailbox>" parses to the same mailbox.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "address.h"

#include "fuzz_util.h"

static char g_out[ADDRESS_MAX + 1];
static char g_out2[ADDRESS_MAX + 1];
static char g_path[ADDRESS_MAX + 3];
static char g_plain[1 << 16]; /* the input without '"' and '\\' */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	size_t olen = 0, rest = 0, olen2 = 0, rest2 = 0;

	if (size > sizeof g_plain)
		return 0;
	/* libFuzzer's buffer is exactly size octets: an over-read is caught. */
	if (address_parse_path(s, size, g_out, &olen, &rest) != 0)
		return 0;
	FUZZ_CHECK(olen <= ADDRESS_MAX - 2 && strlen(g_out) == olen);
	FUZZ_CHECK(rest <= size);
	FUZZ_CHECK(rest == size || s[rest] != ' ');
	FUZZ_CHECK(rest == size || s[rest - 1] == ' ');
	for (size_t i = 0; i < olen; i++)
		FUZZ_CHECK((unsigned char)g_out[i] >= 0x20 && (unsigned char)g_out[i] <= 0x7e);
	/* The mailbox is what the client wrote, so it occurs in the input;
	 * or its quoted local part needed no quotes and lost them and its
	 * backslashes (RFC 5321 §4.1.2), so it occurs in the input without
	 * any '"' or '\\'. */
	if (olen > 0 && memmem(s, size, g_out, olen) == NULL) {
		size_t n = 0;
		for (size_t i = 0; i < size; i++)
			if (s[i] != '"' && s[i] != '\\')
				g_plain[n++] = s[i];
		FUZZ_CHECK(memchr(s, '"', size) != NULL && memchr(g_out, '"', olen) == NULL);
		FUZZ_CHECK(memmem(g_plain, n, g_out, olen) != NULL);
	}

	g_path[0] = '<';
	memcpy(g_path + 1, g_out, olen);
	g_path[olen + 1] = '>';
	FUZZ_CHECK(address_parse_path(g_path, olen + 2, g_out2, &olen2, &rest2) == 0);
	FUZZ_CHECK(olen2 == olen && memcmp(g_out, g_out2, olen) == 0 && rest2 == olen + 2);
	/* Without brackets the same mailbox parses too (Postfix leniency),
	 * except the null sender, which needs them. */
	if (olen > 0) {
		FUZZ_CHECK(address_parse_path(g_path + 1, olen, g_out2, &olen2, &rest2) == 0);
		FUZZ_CHECK(olen2 == olen && memcmp(g_out, g_out2, olen) == 0 && rest2 == olen);
	}
	return 0;
}
