/* random: see random.h. */
#include "random.h"

#include <errno.h>
#include <sys/random.h>
#include <sys/types.h>

#include <mbedtls/entropy.h>

int random_fill(void *out, size_t len)
{
	unsigned char *p = out;
	size_t got = 0;

	while (got < len) {
		ssize_t n = getrandom(p + got, len - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	return 0;
}

bool random_try(void *out, size_t len)
{
	return getrandom(out, len, GRND_NONBLOCK) == (ssize_t)len;
}

int random_entropy_source(void *data, unsigned char *out, size_t len, size_t *olen)
{
	(void)data;
	if (random_fill(out, len) != 0) {
		*olen = 0;
		return MBEDTLS_ERR_ENTROPY_SOURCE_FAILED;
	}
	*olen = len;
	return 0;
}
