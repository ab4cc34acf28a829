#include "smtp_data.h"

enum {
	D_BOL,    /* at the start of a line (after CRLF) */
	D_TEXT,   /* inside a line */
	D_CR,     /* CR seen inside a line */
	D_DOT,    /* '.' at the start of a line */
	D_DOT_CR, /* ".\r" at the start of a line */
};

void smtp_data_init(struct smtp_data *d)
{
	d->state = D_BOL;
	d->bare_eol = false;
}

size_t smtp_data_feed(struct smtp_data *d, const char *in, size_t len, char *out,
		      size_t *out_len, bool *done)
{
	size_t i, o = 0;
	uint8_t st = d->state;

	*done = false;
	for (i = 0; i < len; i++) {
		char c = in[i];
		switch (st) {
		case D_DOT_CR:
			if (c == '\n') {
				st = D_BOL;
				*done = true;
				i++;
				goto out;
			}
			/* ".\r" then not LF: the CR was bare; the dot was a stuffed one. */
			d->bare_eol = true;
			out[o++] = '\r';
			st = D_TEXT;
			/* fall through */
		case D_TEXT:
		text:
			if (c == '\r') {
				st = D_CR;
			} else {
				if (c == '\n')
					d->bare_eol = true;
				out[o++] = c;
			}
			break;
		case D_BOL:
			if (c == '.') {
				st = D_DOT;
				break;
			}
			st = D_TEXT;
			goto text;
		case D_DOT:
			if (c == '\r') {
				st = D_DOT_CR;
				break;
			}
			st = D_TEXT;
			goto text;
		case D_CR:
			if (c == '\n') {
				out[o++] = '\n';
				st = D_BOL;
			} else if (c == '\r') {
				d->bare_eol = true;
				out[o++] = '\r';
			} else {
				d->bare_eol = true;
				out[o++] = '\r';
				out[o++] = c;
				st = D_TEXT;
			}
			break;
		}
	}
out:
	d->state = st;
	*out_len = o;
	return i;
}
