/* ini_line: see ini_line.h. */
#include "ini_line.h"

#include <string.h>

#include "util.h"

size_t ini_line_end(const char *t, size_t len, size_t pos, size_t *end)
{
	const char *nl = memchr(t + pos, '\n', len - pos);
	size_t next = nl ? (size_t)(nl - t) + 1 : len;

	*end = nl ? (size_t)(nl - t) : len;
	if (*end > pos && t[*end - 1] == '\r')
		(*end)--;
	return next;
}

void ini_line_skip(struct ini_ctx *ctx)
{
	ctx->lines++;
}

void ini_line_parse(struct ini_ctx *ctx, const char *t, size_t start, size_t end, struct ini_line *l)
{
	size_t b = start, p, q, e;
	bool inq = false;

	memset(l, 0, sizeof *l);
	if (ctx->lines++ == 0 && end - start >= 3 && memcmp(t + start, "\xef\xbb\xbf", 3) == 0)
		b += 3;
	for (p = b; p < end && util_is_ws(t[p]); p++)
		;
	for (q = p; q < end; q++) {
		if (t[p] == '[' && t[q] == '"')
			inq = !inq;
		if (!inq && (t[q] == ';' || t[q] == '#') && (q == p || util_is_ws(t[q - 1])))
			break;
	}
	for (e = q; e > p && util_is_ws(t[e - 1]); e--)
		;
	l->s = p;
	l->e = e;
	if (e == p) {
		l->kind = INI_BLANK;
		return;
	}
	if (p > b && ctx->key_in_section) {
		l->kind = INI_CONT;
		return;
	}
	if (t[p] == '[') {
		l->kind = INI_HEADER;
		ctx->key_in_section = false;
		return;
	}
	for (q = p; q < e && t[q] != '=' && t[q] != ':'; q++)
		;
	if (q == e) {
		l->kind = INI_OTHER;
		return;
	}
	l->kind = INI_KEY;
	ctx->key_in_section = true;
	l->key_s = p;
	for (l->key_e = q; l->key_e > p && util_is_ws(t[l->key_e - 1]); l->key_e--)
		;
	l->val_e = e;
	for (l->val_s = q + 1; l->val_s < e && util_is_ws(t[l->val_s]); l->val_s++)
		;
	if (l->val_s >= l->val_e)
		l->val_s = l->val_e = q + 1;
}

void ini_header_parse(const char *t, size_t s, size_t e, struct ini_header *h)
{
	size_t p;
	bool inq = false;

	memset(h, 0, sizeof *h);
	for (h->close = s + 1; h->close < e && (inq || t[h->close] != ']'); h->close++)
		if (t[h->close] == '"')
			inq = !inq;
	if (h->close >= e) {
		h->status = INI_HDR_NO_CLOSE;
		return;
	}
	if (h->close + 1 != e) {
		h->status = INI_HDR_TRAILING;
		return;
	}
	for (p = s + 1; p < h->close && util_is_ws(t[p]); p++)
		;
	h->word_s = p;
	while (p < h->close && !util_is_ws(t[p]) && t[p] != '"')
		p++;
	h->word_e = p;
	while (p < h->close && util_is_ws(t[p]))
		p++;
	h->arg = h->after = p;
	if (p < h->close && t[p] == '"') {
		/* The scan for the close saw the quotes balanced. */
		h->quoted = true;
		h->name_s = p + 1;
		for (p = p + 1; t[p] != '"'; p++)
			;
		h->name_e = p;
		for (p = p + 1; p < h->close && util_is_ws(t[p]); p++)
			;
		h->after = p;
	}
}

bool ini_header_connector(const char *t, size_t s, size_t e, size_t *name_s, size_t *name_e)
{
	struct ini_header h;

	ini_header_parse(t, s, e, &h);
	if (h.status != INI_HDR_OK || h.word_e - h.word_s != 9 || memcmp(t + h.word_s, "connector", 9) != 0 ||
	    !h.quoted || h.after != h.close || h.name_e == h.name_s)
		return false;
	*name_s = h.name_s;
	*name_e = h.name_e;
	return true;
}
