/* The end-of-data rules of SPEC §7, fed whole, in every two-way split and
 * one octet at a time. */
#include <stdbool.h>
#include <stdlib.h>

#include "check.h"
#include "smtp_data.h"

struct result {
	bool done, bare;
	size_t consumed;
	char out[512];
	size_t out_len;
};

/* Feeds in[] in chunks of `step` octets (0 = whole). */
static struct result run(const char *in, size_t len, size_t step)
{
	struct result r = {0};
	struct smtp_data d;
	size_t pos = 0;
	char tmp[600];

	smtp_data_init(&d);
	while (pos < len && !r.done) {
		size_t n = step && len - pos > step ? step : len - pos, ol;
		size_t used = smtp_data_feed(&d, in + pos, n, tmp, &ol, &r.done);
		memcpy(r.out + r.out_len, tmp, ol);
		r.out_len += ol;
		pos += used;
	}
	r.consumed = pos;
	r.bare = d.bare_eol;
	r.out[r.out_len] = 0;
	return r;
}

#define ALL ((size_t)-1)

static void expect(const char *in, bool done, bool bare, const char *out, size_t consumed)
{
	size_t len = strlen(in);
	for (size_t step = 0; step <= len; step++) {
		struct result r = run(in, len, step);
		CHECK(r.done == done);
		CHECK(r.bare == bare);
		if (out)
			CHECK_STR(r.out, out);
		if (done)
			CHECK(r.consumed == (consumed == ALL ? len : consumed));
	}
}

int main(void)
{
	/* The real end, with and without content. */
	expect(".\r\n", true, false, "", 3);
	expect("Hello\r\n.\r\n", true, false, "Hello\n", 10);
	expect("a\r\nb\r\n.\r\nQUIT\r\n", true, false, "a\nb\n", 9);
	/* Dot-stuffing: a leading dot is removed, only at line start. */
	expect("..x\r\n.a.\r\n.\r\n", true, false, ".x\na.\n", 13);
	expect("...\r\n.\r\n", true, false, "..\n", 8);
	/* Not ends: SMTP smuggling variants are content, with bare CR/LF flagged. */
	expect("a\n.\nb", false, true, NULL, 0);
	expect("a\r.\rb", false, true, NULL, 0);
	expect("a\n.\r\nb", false, true, NULL, 0);
	expect("a\r\n.\nb", false, true, NULL, 0);
	expect("a\r\r\n.\r\r\nb", false, true, NULL, 0);
	/* ...and the real end after them is still found. */
	expect("a\n.\r\nMAIL FROM:<x@y>\r\n.\r\n", true, true, NULL, ALL);
	expect("a\r\r\n.\r\r\nX\r\n.\r\n", true, true, NULL, ALL);
	/* Bare CR before CRLF and lone CR at end of a line. */
	expect("a\rb\r\n.\r\n", true, true, NULL, ALL);
	expect("a\r\r\n.\r\n", true, true, NULL, ALL);
	/* ".\r" followed by something else is not an end. */
	expect(".\rX\r\n.\r\n", true, true, NULL, ALL);
	/* A CRLF-only message. */
	expect("\r\n\r\n.\r\n", true, false, "\n\n", 7);
	/* Nothing is consumed past the end. */
	{
		struct result r = run(".\r\n.\r\n", 6, 0);
		CHECK(r.done && r.consumed == 3);
	}
	/* 8-bit and NUL octets are content. */
	{
		const char in[] = "\xe4\x00z\r\n.\r\n";
		struct result r = run(in, sizeof in - 1, 1);
		CHECK(r.done && !r.bare && r.out_len == 4 && r.out[1] == 0);
	}
	return check_summary("smtp_data");
}
