/* route: see route.h. (Placeholder until the cfg branch lands: lookups only.) */
#include "route.h"

#include <string.h>
#include <strings.h>

#include "config.h"

int route_relay(const struct config *c, const char *domain, size_t len)
{
	for (unsigned i = 0; i < c->nrelays; i++) {
		const char *d = c->relays[i].domains;
		for (unsigned k = 0; k < c->relays[i].ndomains; k++, d += strlen(d) + 1)
			if (strlen(d) == len && strncasecmp(d, domain, len) == 0)
				return (int)i;
	}
	return -1;
}

int route_smarthost(const struct config *c)
{
	for (unsigned i = 0; i < c->nrelays; i++)
		if (c->relays[i].smarthost)
			return (int)i;
	return -1;
}

int route_find(const struct config *c, const char *name)
{
	for (unsigned i = 0; i < c->nrelays; i++)
		if (strcmp(c->relays[i].name, name) == 0)
			return (int)i;
	return -1;
}

int route_check(const struct config *c, const struct recipients *r, char *err, size_t errlen)
{
	(void)c, (void)r, (void)err, (void)errlen;
	return 0;
}
