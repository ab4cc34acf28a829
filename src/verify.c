/* verify: see verify.h.
 *
 * One slice per loop pass in all, not one per check: however many checks
 * run, the others' events wait at most one slice; the checks share the
 * CPU left over. The queue is a ring of max_connections pointers (a
 * connection is in it at most once, marked CF_VWAIT), so it never fills.
 */
#include "verify.h"

#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "limits.h"
#include "log.h"
#include "pbkdf2.h"
#include "users.h"

struct verifier {
	struct pbkdf2 kdf;
	struct conn *c;   /* whose check runs here; NULL when free */
	uint64_t read_at; /* when its AUTH line was read: the 535's tarpit counts from it */
	struct users_ref ref;
};

static struct {
	unsigned busy, turn; /* checks running; the verifier whose slice is next */
	uint32_t qcap, qhead, qlen;
	struct conn **q;     /* waiting connections, oldest at qhead */
	struct conn *granted; /* woken from the queue now: ahead of those still in it */
	struct verifier v[AUTH_VERIFIERS];
} V;

int verify_init(uint32_t max_connections)
{
	V.qcap = max_connections ? max_connections : 1;
	V.q = calloc(V.qcap, sizeof *V.q);
	if (!V.q)
		return -1;
	for (unsigned i = 0; i < AUTH_VERIFIERS; i++) {
		if (pbkdf2_init(&V.v[i].kdf) != 0) {
			while (i--)
				pbkdf2_free(&V.v[i].kdf);
			free(V.q);
			V.q = NULL;
			return -1;
		}
	}
	return 0;
}

void verify_fini(void)
{
	if (!V.q)
		return;
	for (unsigned i = 0; i < AUTH_VERIFIERS; i++)
		pbkdf2_free(&V.v[i].kdf);
	free(V.q);
	memset(&V, 0, sizeof V);
}

static struct conn **q_at(uint32_t k)
{
	return &V.q[(V.qhead + k) % V.qcap];
}

bool verify_may_start(struct conn *c)
{
	if (c->cflags & CF_VWAIT)
		return false;
	if (V.busy < AUTH_VERIFIERS && (V.qlen == 0 || c == V.granted))
		return true;
	if (V.qlen < V.qcap) { /* always: one place per connection */
		*q_at(V.qlen++) = c;
		c->cflags |= CF_VWAIT;
	}
	return false;
}

bool verify_start(struct conn *c, const struct users *u, const struct smtp_creds *cr, uint64_t read_at)
{
	struct verifier *v = NULL;

	for (unsigned i = 0; i < AUTH_VERIFIERS && !v; i++)
		if (!V.v[i].c)
			v = &V.v[i];
	if (!v)
		return false;
	users_lookup(u, cr->user, cr->ulen, cr->plen, &v->ref);
	pbkdf2_start(&v->kdf, (const unsigned char *)cr->pass, cr->plen < AUTH_PASS_MAX ? cr->plen : AUTH_PASS_MAX,
		     v->ref.salt, v->ref.saltlen, v->ref.iterations);
	v->ref.salt = NULL; /* into the table, which a reload may free */
	v->c = c;
	v->read_at = read_at;
	V.busy++;
	if (c == V.granted)
		V.granted = NULL;
	return true;
}

static void release(struct verifier *v)
{
	pbkdf2_wipe(&v->kdf);
	memset(v->ref.hash, 0, sizeof v->ref.hash);
	v->c = NULL;
	V.busy--;
}

void verify_cancel(struct conn *c)
{
	for (unsigned i = 0; i < AUTH_VERIFIERS; i++)
		if (V.v[i].c == c)
			release(&V.v[i]);
	if (c->cflags & CF_VWAIT) {
		uint32_t k = 0;

		while (k < V.qlen && *q_at(k) != c)
			k++;
		for (; k + 1 < V.qlen; k++)
			*q_at(k) = *q_at(k + 1);
		V.qlen--;
		c->cflags &= (uint8_t)~CF_VWAIT;
	}
	if (V.granted == c)
		V.granted = NULL;
}

bool verify_pending(void)
{
	return V.busy > 0 || (V.qlen > 0 && V.busy < AUTH_VERIFIERS);
}

void verify_run(void)
{
	struct verifier *v = NULL;
	struct conn *c;
	uint64_t read_at;
	unsigned i;
	bool ok;

	/* Free verifiers go to the waiting sessions first, oldest first. A
	 * woken session that does not start a check (its line was only
	 * "AUTH LOGIN") lets the next one try. */
	while (V.qlen && V.busy < AUTH_VERIFIERS) {
		c = *q_at(0);
		V.qhead = (V.qhead + 1) % V.qcap;
		V.qlen--;
		c->cflags &= (uint8_t)~CF_VWAIT;
		V.granted = c;
		conn_verify_wake(c);
		V.granted = NULL;
	}
	if (!V.busy)
		return;
	for (i = 0; i < AUTH_VERIFIERS && !v; i++) {
		unsigned k = (V.turn + i) % AUTH_VERIFIERS;

		if (V.v[k].c) {
			v = &V.v[k];
			V.turn = (k + 1) % AUTH_VERIFIERS;
		}
	}
	if (!v || !pbkdf2_step(&v->kdf, AUTH_SLICE_ROUNDS))
		return;
	ok = !v->kdf.failed && users_match(&v->ref, v->kdf.t);
	if (v->kdf.failed)
		log_msg(LOG_LVL_ERROR, "event=auth_error error=\"PBKDF2 failed\"");
	c = v->c;
	read_at = v->read_at;
	/* Free before the verdict: the session may start its next check. */
	release(v);
	conn_verified(c, ok, read_at);
}
