/* conf_field: the connector fields of `show` and `set` (config.h),
 * from the connector key table. */
#include "conf_int.h"

#include <string.h>

/* ---- fields for show and set --------------------------------------------- */

unsigned conf_field_count(void)
{
	return 1 + CONF_NCONN;
}

/* Case-insensitive, '_' ignored: TarpitInterval == tarpit_interval. */
static bool field_eq(const char *a, const char *b)
{
	for (;;) {
		while (*a == '_')
			a++;
		while (*b == '_')
			b++;
		if (!*a || !*b)
			return !*a && !*b;
		if (util_lower(*a) != util_lower(*b))
			return false;
		a++;
		b++;
	}
}

int conf_field_find(const char *name)
{
	size_t i;

	if (!name || !*name)
		return -1;
	if (field_eq(name, "Name"))
		return 0;
	for (i = 0; i < CONF_NCONN; i++)
		if (field_eq(name, conf_conn_keys[i].name) || (conf_conn_keys[i].exch && field_eq(name, conf_conn_keys[i].exch)))
			return (int)(i + 1);
	return -1;
}

const char *conf_field_key(unsigned i)
{
	return i >= 1 && i <= CONF_NCONN ? conf_conn_keys[i - 1].name : NULL;
}

const char *conf_field_title(unsigned i)
{
	if (i == 0)
		return "Name";
	if (i > CONF_NCONN)
		return NULL;
	return conf_conn_keys[i - 1].exch ? conf_conn_keys[i - 1].exch : conf_conn_keys[i - 1].name;
}

/* snprintf-style appending: *used counts the full length, the buffer
 * holds what fits. */
static void append(char *buf, size_t len, size_t *used, const char *s)
{
	size_t n = strlen(s);

	if (buf && len && *used < len - 1) {
		size_t room = len - 1 - *used, k = n < room ? n : room;

		memcpy(buf + *used, s, k);
		buf[*used + k] = '\0';
	}
	*used += n;
}

size_t conf_field_format(const struct connector_conf *cc, unsigned i, char *buf, size_t len)
{
	const struct key *k;
	const char *field;
	char t[128];
	size_t used = 0;
	unsigned j, n;
	uint64_t v = 0;
	uint32_t u;
	bool b;

	if (buf && len)
		buf[0] = '\0';
	if (!cc || i > CONF_NCONN)
		return 0;
	if (i == 0) {
		append(buf, len, &used, cc->name);
		return used;
	}
	k = &conf_conn_keys[i - 1];
	field = (const char *)cc + k->off;
	switch (k->type) {
	case K_BOOL:
		memcpy(&b, field, sizeof b);
		append(buf, len, &used, b ? "True" : "False");
		return used;
	case K_TLSMODE:
		memcpy(&b, field, sizeof b);
		append(buf, len, &used, b ? "implicit" : "starttls");
		return used;
	case K_HOST:
	case K_BANNER:
		append(buf, len, &used, field);
		return used;
	case K_BINDINGS:
	case K_RANGES:
		n = k->type == K_BINDINGS ? cc->nbindings : cc->nranges;
		for (j = 0; j < n && j < (k->type == K_BINDINGS ? CONF_MAX_BINDINGS : CONF_MAX_RANGES); j++) {
			if (j)
				append(buf, len, &used, ", ");
			if (k->type == K_BINDINGS)
				binding_format(&cc->bindings[j], t, sizeof t);
			else
				ip_range_format(&cc->ranges[j], t, sizeof t);
			append(buf, len, &used, t);
		}
		return used;
	case K_SIZE:
		memcpy(&v, field, sizeof v);
		break;
	default: /* K_UINT, K_TIMESPAN */
		memcpy(&u, field, sizeof u);
		v = u;
		break;
	}
	conf_format_number(k->type, v, t, sizeof t);
	append(buf, len, &used, t);
	return used;
}
