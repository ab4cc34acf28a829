/* The fixed table: slots come and go without allocation, and the
 * per-source counters stay exact under churn (checked against a model). */
#include <stdlib.h>

#include "check.h"
#include "conn_table.h"

#define N 64
#define SOURCES 40

static uint64_t rng = 88172645463325252ull;
static uint32_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)rng;
}

int main(void)
{
	struct conn_table *t = conn_table_new(N, 200);
	struct conn *held[N];
	struct ip_addr src[SOURCES];
	uint32_t model[SOURCES] = {0};
	unsigned owner[N];
	unsigned nheld = 0;
	bool ok = true;

	CHECK(t != NULL);
	/* All slots, then full, then reuse. */
	for (unsigned i = 0; i < N; i++) {
		held[i] = conn_acquire(t);
		CHECK(held[i] != NULL && held[i]->fd == -1 && held[i]->msg.fd == -1);
	}
	CHECK(conn_acquire(t) == NULL);
	CHECK(held[0] != held[1] && conn_index(t, held[N - 1]) < N);
	/* Distinct slots get distinct envelopes, far enough apart for 200 ids. */
	CHECK((char *)held[1]->s.env - (char *)held[0]->s.env != 0);
	conn_release(t, held[5]);
	CHECK(conn_acquire(t) == held[5]);
	for (unsigned i = 0; i < N; i++)
		conn_release(t, held[i]);
	CHECK(t->nfree == N);

	/* Source counters against a model, with addresses that collide. */
	for (unsigned i = 0; i < SOURCES; i++) {
		memset(&src[i], 0, sizeof src[i]);
		src[i].a[10] = src[i].a[11] = 0xff;
		src[i].a[15] = (uint8_t)i;
		src[i].a[14] = (uint8_t)(i & 3);
	}
	for (unsigned step = 0; step < 200000; step++) {
		if (nheld < N && (nheld == 0 || next_rand() % 2)) {
			unsigned k = next_rand() % SOURCES;
			uint32_t c = src_count_inc(t, &src[k]);
			model[k]++;
			if (c != model[k])
				ok = false;
			owner[nheld++] = k;
		} else {
			unsigned j = next_rand() % nheld, k = owner[j];
			src_count_dec(t, &src[k]);
			model[k]--;
			owner[j] = owner[--nheld];
		}
		if (step % 97 == 0)
			for (unsigned k = 0; k < SOURCES; k++)
				if (src_count_get(t, &src[k]) != model[k])
					ok = false;
	}
	CHECK(ok);
	/* Decrementing an absent source is harmless. */
	{
		struct ip_addr none;
		memset(&none, 0x5a, sizeof none);
		src_count_dec(t, &none);
		CHECK(src_count_get(t, &none) == 0);
	}
	/* One IPv6 /64 is one source (SPEC §8); IPv4 counts per address. */
	{
		struct ip_addr a, b, other, v4a, v4b;
		CHECK(ip_parse("2001:db8:1::a", &a) == 0 && ip_parse("2001:db8:1:0:ffff:ffff:ffff:ffff", &b) == 0);
		CHECK(ip_parse("2001:db8:1:1::a", &other) == 0);
		CHECK(ip_parse("192.0.2.1", &v4a) == 0 && ip_parse("192.0.2.2", &v4b) == 0);
		CHECK(src_count_inc(t, &a) == 1 && src_count_inc(t, &b) == 2 && src_count_get(t, &a) == 2);
		CHECK(src_count_get(t, &other) == 0 && src_count_inc(t, &other) == 1);
		CHECK(src_count_inc(t, &v4a) == 1 && src_count_inc(t, &v4b) == 1);
		src_count_dec(t, &a);
		CHECK(src_count_get(t, &b) == 1);
		src_count_dec(t, &b);
		CHECK(src_count_get(t, &a) == 0 && src_count_get(t, &other) == 1);
		src_count_dec(t, &other);
		src_count_dec(t, &v4a);
		src_count_dec(t, &v4b);
		CHECK(src_count_get(t, &other) == 0 && src_count_get(t, &v4b) == 0);
	}
	conn_table_free(t);
	return check_summary("conn_table");
}
