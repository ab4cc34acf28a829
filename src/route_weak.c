/* route_weak: stand-ins for route.h's lookups until src/route.c (the
 * routing of the receiving side, written separately) is in the tree.
 * They are weak symbols: the real route.c replaces them at link time
 * without a clash, and this file is then deleted. Same contract as
 * route.h. */
#include "route.h"

#include <string.h>

#include "config.h"
#include "util.h"

__attribute__((weak)) int route_relay(const struct config *c, const char *domain, size_t len)
{
	for (unsigned i = 0; i < c->nrelays; i++) {
		const char *d = c->relays[i].domains;

		for (unsigned k = 0; k < c->relays[i].ndomains; k++, d += strlen(d) + 1) {
			size_t j = 0;

			if (strlen(d) != len)
				continue;
			while (j < len && util_lower(domain[j]) == d[j])
				j++;
			if (j == len)
				return (int)i;
		}
	}
	return -1;
}

__attribute__((weak)) int route_smarthost(const struct config *c)
{
	for (unsigned i = 0; i < c->nrelays; i++)
		if (c->relays[i].smarthost)
			return (int)i;
	return -1;
}

__attribute__((weak)) int route_find(const struct config *c, const char *name)
{
	for (unsigned i = 0; i < c->nrelays; i++)
		if (strcmp(c->relays[i].name, name) == 0)
			return (int)i;
	return -1;
}
