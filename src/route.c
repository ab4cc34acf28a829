/* route: see route.h. A handful of relays with a few domains each: a
 * linear walk over the loaded lists is smaller than any index, and is
 * done once per RCPT. Domains match exactly (no subdomains), in any case:
 * the lists are lower-cased at load. */
#include "route.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "recipients.h"

int route_relay(const struct config *c, const char *domain, size_t len)
{
	unsigned r, i;

	for (r = 0; c && domain && r < c->nrelays; r++) {
		const char *p = c->relays[r].domains;

		for (i = 0; i < c->relays[r].ndomains; i++) {
			size_t n = strlen(p);

			if (n == len && strncasecmp(p, domain, len) == 0)
				return (int)r;
			p += n + 1;
		}
	}
	return -1;
}

int route_smarthost(const struct config *c)
{
	unsigned r;

	for (r = 0; c && r < c->nrelays; r++)
		if (c->relays[r].smarthost)
			return (int)r;
	return -1;
}

int route_find(const struct config *c, const char *name)
{
	unsigned r;

	for (r = 0; c && name && r < c->nrelays; r++)
		if (strcmp(c->relays[r].name, name) == 0)
			return (int)r;
	return -1;
}

/* Appends one line, cut where the buffer ends, as errlist does. */
static void add_line(char *err, size_t errlen, size_t *used, const struct config *c,
		     const struct relay_conf *rc, const char *d)
{
	int n;

	if (!err || *used + 1 >= errlen)
		return;
	n = snprintf(err + *used, errlen - *used, "%s%s:%d: relay \"%s\": domain %s is not a local domain of the recipient file",
		     *used ? "\n" : "", c->path, rc->domains_line, rc->name, d);
	if (n > 0)
		*used += (size_t)n < errlen - *used ? (size_t)n : errlen - *used - 1;
}

/* A forwarded domain must be local: the recipient file is what says which
 * of its addresses exist, so without it every RCPT would be refused (or,
 * worse, relayed unchecked). */
int route_check(const struct config *c, const struct recipients *r, char *err, size_t errlen)
{
	size_t used = 0;
	unsigned i, j;
	int rc = 0;

	if (err && errlen)
		err[0] = '\0';
	for (i = 0; i < c->nrelays; i++) {
		const struct relay_conf *rl = &c->relays[i];
		const char *p = rl->domains;

		for (j = 0; j < rl->ndomains; j++) {
			size_t n = strlen(p);

			if (!recipients_is_local_domain(r, p, n)) {
				add_line(err, errlen, &used, c, rl, p);
				rc = -1;
			}
			p += n + 1;
		}
	}
	return rc;
}
