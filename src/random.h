/* random: the kernel's random octets, for every seed and salt tarpitd
 * makes (the TLS and passwd generators, harvest's table key).
 *
 * Promises: getrandom() straight from the kernel, never /dev/urandom (absent
 * in a chroot) and never mbedTLS's platform source, which a build with
 * MBEDTLS_NO_PLATFORM_ENTROPY (common on small targets) lacks, so seeding
 * would fail there. The blocking calls wait for the kernel pool once, at
 * boot; later calls never block.
 */
#ifndef TARPITD_RANDOM_H
#define TARPITD_RANDOM_H

#include <stdbool.h>
#include <stddef.h>

/* len octets into out, retrying interrupted and short reads: 0, or -1. */
int random_fill(void *out, size_t len);
/* One non-blocking read: true when all len octets came (false before the
 * pool is ready, on early boot). */
bool random_try(void *out, size_t len);
/* An mbedTLS entropy source (mbedtls_entropy_add_source, STRONG) over
 * random_fill: 0 with *olen = len, or MBEDTLS_ERR_ENTROPY_SOURCE_FAILED. */
int random_entropy_source(void *data, unsigned char *out, size_t len, size_t *olen);

#endif
