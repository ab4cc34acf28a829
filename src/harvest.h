/* harvest: the memory of harvesting sources across connections (SPEC §8).
 *
 * Promises: harvest_new() allocates table_size entries once; nothing is
 * allocated or freed afterwards — when the table is full the least
 * recently seen entry is replaced. Lookup, offence recording and
 * replacement are O(1) (a hash of entry indices plus an LRU list). Sources
 * are IPv4 addresses or IPv6 /64 prefixes. Everything lives in RAM: no
 * flash is written. Times are milliseconds of a monotonic clock supplied
 * by the caller, so the module is pure and testable with a fake clock.
 *
 * A source is discredited when it reaches `threshold` unknown recipients
 * (a failed AUTH counts as one, SPEC §8) within `window`, or hangs up while a tarpitted reply is pending; the
 * mark ends when a whole window passes with no new offence.
 */
#ifndef TARPITD_HARVEST_H
#define TARPITD_HARVEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iprange.h"

struct harvest;

struct harvest_params {
	uint32_t threshold;  /* unknown recipients within the window */
	uint64_t window_ms;
};

/* NULL on allocation failure; table_size must be >= 1. */
struct harvest *harvest_new(uint32_t table_size);
void harvest_free(struct harvest *h);
size_t harvest_entry_bytes(void); /* memory per entry, hash included */

/* On connect and on every RCPT: is the source discredited now? Marks the
 * entry as recently seen if present; never creates one. */
bool harvest_discredited(struct harvest *h, const struct ip_addr *a, uint64_t now_ms,
			 const struct harvest_params *p);
/* An unknown recipient (or a failed AUTH) from a. Returns true when this offence makes the
 * source discredited (it was not before). */
bool harvest_unknown(struct harvest *h, const struct ip_addr *a, uint64_t now_ms,
		     const struct harvest_params *p);
/* A hang-up while a tarpitted reply was pending: discredits at once.
 * Returns true when the source was not discredited before. */
bool harvest_hangup(struct harvest *h, const struct ip_addr *a, uint64_t now_ms,
		    const struct harvest_params *p);
/* The ban hook runs at most once per source per window: true (and the
 * time recorded) when it may run now for a. */
bool harvest_ban_due(struct harvest *h, const struct ip_addr *a, uint64_t now_ms,
		     const struct harvest_params *p);
/* Sources discredited at now_ms (O(table_size): for stats only). */
uint32_t harvest_count_discredited(const struct harvest *h, uint64_t now_ms,
				   const struct harvest_params *p);
/* One discredited source, for `tarpitd harvest` (SPEC §2). */
struct harvest_info {
	struct ip_addr source; /* IPv4 address, or IPv6 /64 with the host part zeroed */
	uint32_t offences;     /* unknown recipients and hang-ups counted */
	uint64_t since_ms;     /* discredited at */
	uint64_t until_ms;     /* the mark ends then, unless a new offence comes */
};
/* Entry i (0 .. harvest_used() - 1) into out when it is discredited at
 * now_ms; false otherwise. */
bool harvest_entry(const struct harvest *h, uint32_t i, uint64_t now_ms, const struct harvest_params *p,
		   struct harvest_info *out);
/* Clears the mark of a's source (a NULL: of every source), as if it had
 * never offended; returns how many marks were cleared. */
uint32_t harvest_forgive(struct harvest *h, const struct ip_addr *a, uint64_t now_ms,
			 const struct harvest_params *p);
uint32_t harvest_size(const struct harvest *h);
uint32_t harvest_used(const struct harvest *h);

#endif
