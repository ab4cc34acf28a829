/* queue_env: see queue_env.h. */
#include "queue_env.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define ENV_MAGIC "tarpitd-queue 1\n"

/* A recipient's state in the text, indexed by enum queue_rstate. */
static const char states[] = "PSF";

/* ---- ids, escapes, numbers ---- */

bool queue_id_ok(const char *id)
{
	size_t n = 0;

	for (; id[n]; n++) {
		char c = id[n];

		if (n >= QUEUE_ID_MAX - 1 || !((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
			return false;
	}
	return n > 0;
}

size_t queue_escape(char *dst, size_t dstlen, const char *src, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)src[i];

		if (c > 0x20 && c < 0x7f && c != '%') {
			if (o + 1 >= dstlen)
				goto cut;
			dst[o++] = (char)c;
		} else {
			if (o + 3 >= dstlen)
				goto cut;
			dst[o++] = '%';
			dst[o++] = hex[c >> 4];
			dst[o++] = hex[c & 15];
		}
	}
	if (dstlen)
		dst[o] = '\0';
	return o;
cut:
	if (dstlen)
		dst[0] = '\0';
	return 0;
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* In place: s shrinks. Accepts exactly what queue_escape() writes of a
 * field cut at MAX octets: -1 on a bad escape, an escaped NUL, a raw octet
 * that would have been escaped (outside 0x21..0x7e, or a space that
 * split() left in a line's last field), or more than MAX octets. Anything
 * else would parse to an envelope that writes back different. */
static int unescape(char *s, size_t max)
{
	char *o = s;

	for (char *p = s; *p; p++) {
		if ((size_t)(o - s) >= max)
			return -1;
		if (*p == '%') {
			int h = hexval(p[1]), l = h < 0 ? -1 : hexval(p[2]);

			if (l < 0 || (h == 0 && l == 0))
				return -1;
			*o++ = (char)(h * 16 + l);
			p += 2;
		} else if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e) {
			return -1;
		} else {
			*o++ = *p;
		}
	}
	*o = '\0';
	return 0;
}

static bool parse_u64(const char *s, uint64_t *v)
{
	uint64_t x = 0;

	if (!*s)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || x > (UINT64_MAX - 9) / 10)
			return false;
		x = x * 10 + (uint64_t)(*s - '0');
	}
	*v = x;
	return true;
}

static bool parse_u32(const char *s, uint32_t *v)
{
	uint64_t x;

	if (!parse_u64(s, &x) || x > UINT32_MAX)
		return false;
	*v = (uint32_t)x;
	return true;
}

/* ---- the envelope ---- */

size_t queue_env_bound(const struct queue_env *env)
{
	size_t n = sizeof(ENV_MAGIC) + 16 + QUEUE_ID_MAX + 3 * 20 + 40 + 3 * strlen(env->sender);

	for (unsigned i = 0; i < env->nrcpt; i++)
		n += 48 + 3 * (strlen(env->rcpt[i].relay) + strlen(env->rcpt[i].addr) + QUEUE_REPLY_MAX);
	return n;
}

bool queue_env_ok(const struct queue_env *env)
{
	if (!queue_id_ok(env->id) || !env->sender || env->nrcpt == 0 || env->nrcpt > QUEUE_RCPTS_MAX || !env->rcpt)
		return false;
	for (unsigned i = 0; i < env->nrcpt; i++) {
		const struct queue_rcpt *r = &env->rcpt[i];

		if (!r->relay || !r->relay[0] || !r->addr || !r->addr[0] || r->state > QR_FAILED)
			return false;
	}
	return true;
}

/* The text being formatted: buf[len], o octets written so far. */
struct text {
	char *buf;
	size_t len, o;
};

/* Appends one field, escaped and cut to max octets. */
static bool put_esc(struct text *t, const char *s, size_t max)
{
	size_t n = strlen(s), w;

	if (n > max)
		n = max;
	if (n == 0)
		return true;
	w = queue_escape(t->buf + t->o, t->len - t->o, s, n);
	if (w == 0)
		return false;
	t->o += w;
	return true;
}

static bool put_fmt(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool put_fmt(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(t->buf + t->o, t->len - t->o, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= t->len - t->o)
		return false;
	t->o += (size_t)n;
	return true;
}

size_t queue_env_format(char *buf, size_t buflen, const struct queue_env *env)
{
	struct text t = { .buf = buf, .len = buflen, .o = 0 };

	if (!put_fmt(&t, ENV_MAGIC "id %s\naccepted %" PRIu32 "\nsize %" PRIu64 "\nflags %u\nsender ", env->id,
		     env->accepted, env->size, (unsigned)env->flags) ||
	    !put_esc(&t, env->sender, ADDRESS_MAX) || !put_fmt(&t, "\n"))
		return 0;
	for (unsigned i = 0; i < env->nrcpt; i++) {
		const struct queue_rcpt *r = &env->rcpt[i];

		if (!put_fmt(&t, "rcpt %c %" PRIu32 " %" PRIu32 " ", states[r->state], r->attempts, r->next) ||
		    !put_esc(&t, r->relay, CONF_NAME_MAX) || !put_fmt(&t, " ") ||
		    !put_esc(&t, r->addr, ADDRESS_MAX) || !put_fmt(&t, " ") ||
		    !put_esc(&t, r->reply ? r->reply : "", QUEUE_REPLY_MAX) || !put_fmt(&t, "\n"))
			return 0;
	}
	if (!put_fmt(&t, "end %u\n", env->nrcpt))
		return 0;
	return t.o;
}

/* Splits line into at most max fields at single spaces: the count. */
static unsigned split(char *line, char **f, unsigned max)
{
	unsigned n = 0;

	f[n++] = line;
	for (char *p = line; *p && n < max; p++)
		if (*p == ' ') {
			*p = '\0';
			f[n++] = p + 1;
		}
	return n;
}

int queue_env_parse(char *buf, size_t len, struct queue_env *env, struct queue_rcpt *rcpt, unsigned maxrcpt)
{
	static const char *const keys[] = { "id", "accepted", "size", "flags", "sender" };
	char *p = buf, *end = buf + len;
	unsigned line = 0, nr = 0;
	bool ended = false;

	memset(env, 0, sizeof *env);
	env->rcpt = rcpt;
	if (len < sizeof ENV_MAGIC - 1 || memcmp(buf, ENV_MAGIC, sizeof ENV_MAGIC - 1) != 0)
		goto bad;
	p += sizeof ENV_MAGIC - 1;
	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p)), *f[7];
		unsigned n;

		if (!nl || ended)
			goto bad;
		*nl = '\0';
		if (memchr(p, '\0', (size_t)(nl - p)))
			goto bad;
		n = split(p, f, 7);
		if (line < 5) {
			uint64_t v;

			if (n != 2 || strcmp(f[0], keys[line]) != 0)
				goto bad;
			switch (line) {
			case 0:
				if (!queue_id_ok(f[1]))
					goto bad;
				memcpy(env->id, f[1], strlen(f[1]) + 1);
				break;
			case 1:
				if (!parse_u32(f[1], &env->accepted))
					goto bad;
				break;
			case 2:
				if (!parse_u64(f[1], &env->size))
					goto bad;
				break;
			case 3:
				if (!parse_u64(f[1], &v) || v > 255)
					goto bad;
				env->flags = (uint8_t)v;
				break;
			default:
				if (unescape(f[1], ADDRESS_MAX) < 0)
					goto bad;
				env->sender = f[1];
				break;
			}
		} else if (n == 7 && strcmp(f[0], "rcpt") == 0) {
			struct queue_rcpt *r;
			const char *s = strchr(states, f[1][0]);

			if (nr >= maxrcpt || !s || !f[1][0] || f[1][1])
				goto bad;
			r = &rcpt[nr++];
			r->state = (uint8_t)(s - states);
			if (!parse_u32(f[2], &r->attempts) || !parse_u32(f[3], &r->next) || unescape(f[4], CONF_NAME_MAX) < 0 ||
			    unescape(f[5], ADDRESS_MAX) < 0 || unescape(f[6], QUEUE_REPLY_MAX) < 0 || !f[4][0] ||
			    !f[5][0])
				goto bad;
			r->relay = f[4];
			r->addr = f[5];
			r->reply = f[6];
		} else if (n == 2 && strcmp(f[0], "end") == 0) {
			uint64_t v;

			if (!parse_u64(f[1], &v) || v != nr || nr == 0)
				goto bad;
			ended = true;
		} else {
			goto bad;
		}
		line++;
		p = nl + 1;
	}
	if (!ended)
		goto bad;
	env->nrcpt = nr;
	return 0;
bad:
	errno = EINVAL;
	return -1;
}
