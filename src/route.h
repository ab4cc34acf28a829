/* route: which next hop a recipient is forwarded to (SPEC §10).
 *
 * Promises: pure lookups over the [relay] sections of one configuration,
 * no allocation. A domain names at most one relay (config_load refuses a
 * domain listed twice); the smarthost (`domains = *`) is only ever
 * chosen by the caller, for an authenticated session and a domain that is
 * not local. route_check() is what `check`, start and reload refuse: a
 * relay domain that is not a local domain of the recipient file.
 */
#ifndef TARPITD_ROUTE_H
#define TARPITD_ROUTE_H

#include <stddef.h>

struct config;
struct recipients;

/* The relay whose domains list domain[0..len) (any case), or -1. */
int route_relay(const struct config *c, const char *domain, size_t len);
/* The relay with domains = *, or -1. */
int route_smarthost(const struct config *c);
/* The relay named name (exactly), or -1: queued recipients name theirs. */
int route_find(const struct config *c, const char *name);
/* 0, or -1 with "FILE:LINE: relay \"NAME\": domain D is not a local
 * domain of the recipient file" lines in err. */
int route_check(const struct config *c, const struct recipients *r, char *err, size_t errlen);

#endif
