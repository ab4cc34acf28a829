#include "address.h"
#include "limits.h"

#include <arpa/inet.h>
#include <string.h>

static bool is_atext(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

static bool is_let_dig(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* Domain labels: letters, digits, '-' and '_' (seen in the wild, as
 * Postfix accepts it); no label empty, over 63 octets, or starting or
 * ending with '-' (RFC 5321 §4.1.2 Ldh-str, SPEC §7). */
static bool valid_domain(const char *d, size_t n)
{
	size_t label = 0;
	if (n == 0 || n > ADDR_DOMAIN_MAX)
		return false;
	for (size_t i = 0; i <= n; i++) {
		unsigned char c = i < n ? (unsigned char)d[i] : '.';
		if (c == '.') {
			if (label == 0 || d[i - 1] == '-')
				return false;
			label = 0;
		} else if (is_let_dig(c) || c == '_' || (c == '-' && label > 0)) {
			if (++label > 63)
				return false;
		} else {
			return false;
		}
	}
	return true;
}

static bool valid_literal(const char *d, size_t n)
{
	char tmp[64];
	unsigned char buf[16];
	if (n < 3 || n > ADDR_DOMAIN_MAX || d[0] != '[' || d[n - 1] != ']' || n - 2 >= sizeof tmp)
		return false;
	memcpy(tmp, d + 1, n - 2);
	tmp[n - 2] = 0;
	if (strncmp(tmp, "IPv6:", 5) == 0)
		return inet_pton(AF_INET6, tmp + 5, buf) == 1;
	return inet_pton(AF_INET, tmp, buf) == 1;
}

/* The mailbox grammar of RFC 5321 §4.1.2, with dots in a dot-atom local
 * part taken leniently (Postfix does the same). Returns the length of the
 * mailbox at s, or 0 when it is not one. */
static size_t scan_mailbox(const char *s, size_t len, bool *has_domain)
{
	size_t i = 0, local;
	*has_domain = false;
	if (i < len && s[i] == '"') {
		for (i++; i < len && s[i] != '"'; i++) {
			unsigned char c = (unsigned char)s[i];
			if (c == '\\') {
				if (++i >= len || (unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
					return 0;
			} else if (c < 0x20 || c > 0x7e) {
				return 0;
			}
		}
		if (i >= len)
			return 0;
		i++;
	} else {
		while (i < len && (is_atext((unsigned char)s[i]) || s[i] == '.'))
			i++;
		if (i == 0)
			return 0;
	}
	local = i;
	if (local > ADDR_LOCAL_MAX)
		return 0;
	if (i < len && s[i] == '@') {
		size_t d0 = ++i;
		if (i < len && s[i] == '[') {
			i++;
			while (i < len && s[i] != ']' && s[i] != '[' && s[i] != '\\' && (unsigned char)s[i] > 0x20 && (unsigned char)s[i] < 0x7f)
				i++;
			if (i >= len || s[i] != ']')
				return 0;
			i++;
			if (!valid_literal(s + d0, i - d0))
				return 0;
		} else {
			while (i < len && (is_let_dig((unsigned char)s[i]) || s[i] == '.' || s[i] == '-' || s[i] == '_'))
				i++;
			if (!valid_domain(s + d0, i - d0))
				return 0;
		}
		*has_domain = true;
	}
	return i;
}

/* A quoted local part "q" (quotes included, n octets) that needs no
 * quoting — its content, quoted pairs decoded, is a Dot-string — is the
 * same mailbox as the plain one (RFC 5321 §4.1.2): writes that to out and
 * returns its length; 0 when the quoting is needed and stays. */
static size_t unquote_local(const char *q, size_t n, char *out)
{
	size_t o = 0;
	for (size_t i = 1; i + 1 < n; i++) {
		unsigned char c = (unsigned char)q[i];
		if (c == '\\')
			c = (unsigned char)q[++i]; /* scan_mailbox saw it in range */
		if (c == '.' ? o == 0 || out[o - 1] == '.' : !is_atext(c))
			return 0;
		out[o++] = (char)c;
	}
	return o > 0 && out[o - 1] != '.' ? o : 0;
}

/* "@a,@b:" — accepted and ignored (RFC 5321 §4.1.2 says MUST accept). */
static size_t skip_source_route(const char *s, size_t len)
{
	size_t i = 0;
	if (len == 0 || s[0] != '@')
		return 0;
	while (i < len && s[i] != ':') {
		if (s[i] != '@' && s[i] != ',' && s[i] != '.' && s[i] != '-' && s[i] != '[' && s[i] != ']' && !is_let_dig((unsigned char)s[i]))
			return (size_t)-1;
		i++;
	}
	return i < len ? i + 1 : (size_t)-1;
}

int address_parse_path(const char *s, size_t len, char *out, size_t *out_len, size_t *rest)
{
	size_t i = 0, start, mlen, olen, pathlen;
	bool bracket, has_domain;

	while (i < len && s[i] == ' ')
		i++;
	bracket = i < len && s[i] == '<';
	start = i;
	if (bracket) {
		size_t r;
		i++;
		if (i < len && s[i] == '>') {
			olen = 0;
			i++;
			goto done_path;
		}
		r = skip_source_route(s + i, len - i);
		if (r == (size_t)-1)
			return -1;
		i += r;
	}
	mlen = scan_mailbox(s + i, len - i, &has_domain);
	if (mlen == 0 || mlen > ADDRESS_MAX)
		return -1;
	olen = 0;
	if (s[i] == '"') {
		const char *q = s + i, *end = q + 1;
		while (*end != '"')
			end += *end == '\\' ? 2 : 1;
		olen = unquote_local(q, (size_t)(end + 1 - q), out);
		if (olen > 0) {
			size_t dl = mlen - (size_t)(end + 1 - q);
			memcpy(out + olen, end + 1, dl); /* "@domain", or nothing */
			olen += dl;
		}
	}
	if (olen == 0) {
		memcpy(out, s + i, mlen);
		olen = mlen;
	}
	i += mlen;
	if (bracket) {
		if (i >= len || s[i] != '>')
			return -1;
		i++;
	}
done_path:
	pathlen = (i - start) + (bracket ? 0 : 2);
	if (pathlen > ADDRESS_MAX)
		return -1;
	/* The path must end at a space or the end of the line. */
	if (i < len && s[i] != ' ')
		return -1;
	out[olen] = 0;
	*out_len = olen;
	while (i < len && s[i] == ' ')
		i++;
	*rest = i;
	return 0;
}
