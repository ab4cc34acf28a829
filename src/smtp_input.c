#include "smtp_input.h"

#include <string.h>

enum {
	SI_SKIP = 1u,   /* discarding the rest of an over-long line */
	SI_AUX = 2u,    /* a long AUTH line is being assembled in aux */
	SI_TOOBIG = 4u, /* message data exceeded max_message_size */
};

void smtp_input_init(struct smtp_input *in)
{
	memset(in, 0, sizeof *in);
}

size_t smtp_input_room(struct smtp_input *in, char *buf, char *aux, char **at)
{
	if (in->flags & SI_AUX) {
		*at = aux + in->aux_len;
		return AUTH_LINE_MAX - in->aux_len;
	}
	*at = buf + in->len;
	return SMTP_LINE_MAX - in->len;
}

void smtp_input_got(struct smtp_input *in, size_t n)
{
	if (in->flags & SI_AUX)
		in->aux_len = (uint16_t)(in->aux_len + n);
	else
		in->len = (uint16_t)(in->len + n);
}

bool smtp_input_pending(const struct smtp_input *in)
{
	return in->len || (in->flags & SI_AUX);
}

/* A long AUTH line in aux: a complete one is run, an over-long one is
 * answered 500 5.5.6 and skipped to its end. */
static bool aux_line(struct smtp_input *in, char *aux, struct smtp_line *l)
{
	char *nl = memchr(aux, '\n', in->aux_len);
	size_t len;

	l->text = aux;
	if (!nl) {
		if (in->aux_len < AUTH_LINE_MAX)
			return false;
		l->len = in->aux_len;
		l->used = 0;
		l->too_long = true;
		return true;
	}
	len = (size_t)(nl - aux);
	l->used = (uint16_t)(len + 1);
	if (len && aux[len - 1] == '\r')
		len--;
	l->len = (uint16_t)len;
	l->too_long = len + 2 > AUTH_LINE_MAX;
	return true;
}

bool smtp_input_line(struct smtp_input *in, char *buf, char *aux, const struct smtp_session *s, bool auth,
		     struct smtp_line *l)
{
	if (in->flags & SI_AUX)
		return aux_line(in, aux, l);
	for (;;) {
		char *nl = memchr(buf, '\n', in->len);
		size_t used;

		if (!nl) {
			if (in->len < SMTP_LINE_MAX)
				return false;
			if (!(in->flags & SI_SKIP) && auth && smtp_session_long_line_ok(s, buf, in->len)) {
				/* Read on into the envelope memory; the line runs
				 * once its LF is there. */
				memcpy(aux, buf, in->len);
				in->aux_len = in->len;
				in->len = 0;
				in->flags |= SI_AUX;
				return false;
			}
			if (in->flags & SI_SKIP) {
				in->len = 0;
				return false;
			}
			/* Over-long line: one reply, then skip to its end. */
			l->text = buf;
			l->len = SMTP_LINE_MAX;
			l->used = 0;
			l->too_long = true;
			return true;
		}
		used = (size_t)(nl - buf) + 1;
		if (in->flags & SI_SKIP) {
			in->flags &= (uint8_t)~SI_SKIP;
			in->len = (uint16_t)(in->len - used);
			memmove(buf, buf + used, in->len);
			continue;
		}
		l->text = buf;
		l->used = (uint16_t)used;
		l->len = (uint16_t)(used - 1);
		if (l->len && buf[l->len - 1] == '\r')
			l->len--;
		l->too_long = false;
		return true;
	}
}

void smtp_input_consume(struct smtp_input *in, char *buf, char *aux, const struct smtp_line *l)
{
	if (l->used == 0) {
		/* No LF yet: skip the rest of the line as it arrives. */
		in->flags = (uint8_t)((in->flags & ~SI_AUX) | SI_SKIP);
		in->aux_len = 0;
		in->len = 0;
		return;
	}
	if (in->flags & SI_AUX) {
		/* AUTH ends a pipelined group: whatever followed it is kept
		 * only as far as the line buffer goes. */
		size_t rest = in->aux_len - l->used;
		size_t keep = rest < SMTP_LINE_MAX ? rest : SMTP_LINE_MAX;
		memcpy(buf, aux + l->used, keep);
		in->len = (uint16_t)keep;
		in->aux_len = 0;
		in->flags &= (uint8_t)~SI_AUX;
		return;
	}
	in->len = (uint16_t)(in->len - l->used);
	memmove(buf, buf + l->used, in->len);
}

bool smtp_input_early(const struct smtp_input *in, const struct smtp_session *s)
{
	return (s->state == SMTP_DATA_WAIT || s->state == SMTP_TLS_WAIT) && in->len > 0;
}

void smtp_input_drop(struct smtp_input *in)
{
	in->len = 0;
}

void smtp_input_data_begin(struct smtp_input *in)
{
	smtp_data_init(&in->data);
	in->size = 0;
	in->flags &= (uint8_t)~SI_TOOBIG;
}

size_t smtp_input_data(struct smtp_input *in, const char *p, size_t n, char *out, uint64_t max_size,
		       size_t *store, bool *done)
{
	size_t olen, used = smtp_data_feed(&in->data, p, n, out, &olen, done);

	/* The size is the message as transferred, the thing SIZE= declares
	 * (RFC 1870, SPEC §7): CRLF line ends, before dot-unstuffing, without
	 * the ".\r\n" that ends the data — counted in `used`, so taken off
	 * once done. Before the end, up to two counted octets (".\r" at a
	 * line start) may still turn out to be that end: only a size beyond
	 * the limit by more than that is refused early. */
	in->size += used;
	if (*done)
		in->size -= 3;
	/* A refused message is read to its end, and no longer stored. */
	*store = 0;
	if (!(in->flags & SI_TOOBIG) && !in->data.bare_eol) {
		if (in->size > max_size + (*done ? 0 : 2))
			in->flags |= SI_TOOBIG;
		else
			*store = olen;
	}
	return used;
}

void smtp_input_keep(struct smtp_input *in, char *buf, const char *rest, size_t n)
{
	if (n > SMTP_LINE_MAX)
		n = SMTP_LINE_MAX;
	memcpy(buf, rest, n);
	in->len = (uint16_t)n;
}

enum smtp_data_status smtp_input_verdict(const struct smtp_input *in)
{
	if (in->data.bare_eol)
		return DATA_BARE_EOL;
	if (in->flags & SI_TOOBIG)
		return DATA_TOO_BIG;
	return DATA_STORED;
}
