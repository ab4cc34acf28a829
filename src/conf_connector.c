/* conf_connector: the [connector "NAME"] sections after the last line
 * (SPEC §3): what each needs, the keys that need each other, the
 * defaults it takes from [server] (the default ranges, fqdn, banner),
 * and the checks across connectors (bindings the kernel would refuse
 * side by side, ranges on a shared binding that overlap without one
 * containing the other). Each error at the line it is about.
 */
#include "conf_int.h"

#include <stdio.h>
#include <string.h>

/* One connector's required keys, the keys that need each other, and its
 * defaults taken from [server]. */
static void finish_connector(struct pstate *st)
{
	struct server_conf *s = &st->c->server;
	struct connector_conf *cc = st->conn;
	struct conn_extra *cx = st->cx;
	int l;

	if (cc->nbindings == 0 && !cx->bad_list[0]) {
		l = cx->seen[C_BINDINGS];
		conf_err_at(st, l ? l : cc->line, "bindings: at least one ip:port is required");
	}
	if (cc->nranges == 0 && !cx->bad_list[1]) {
		l = cx->seen[C_RANGES];
		if (l) {
			conf_err_at(st, l, "remote_ip_ranges: at least one entry is required");
		} else {
			int saved = st->lineno;

			st->lineno = 0; /* range_line 0: the entries come from no line */
			conf_apply_list(st, &conf_conn_keys[C_RANGES], conf_default_ranges);
			st->lineno = saved;
		}
	}
	/* Every session would be refused at its first octet. */
	if (cc->tls_implicit && !st->sect_line[S_TLS]) {
		l = cx->seen[C_TLS_MODE];
		conf_err_at(st, l ? l : cc->line, "tls_mode: implicit needs a [tls] section");
	}
	/* With implicit TLS every session is in TLS: starttls is moot. */
	if (cc->require_tls && !cc->tls_implicit) {
		l = cx->seen[C_REQUIRE_TLS];
		/* Either way no client could ever send MAIL. */
		if (!st->sect_line[S_TLS])
			conf_err_at(st, l ? l : cc->line, "require_tls needs a [tls] section");
		else if (!cc->starttls)
			conf_err_at(st, l ? l : cc->line, "require_tls needs starttls = yes");
	}
	/* Every session would end before its greeting (SPEC §3). */
	if (cc->greeting_delay && cc->greeting_delay >= cc->connection_timeout) {
		char g[24], t[24];

		l = cx->seen[C_GREETING] ? cx->seen[C_GREETING] : cx->seen[C_CONN_TIMEOUT];
		format_timespan(cc->greeting_delay, g, sizeof g);
		format_timespan(cc->connection_timeout, t, sizeof t);
		conf_err_at(st, l ? l : cc->line,
			    "greeting_delay: %s is not below connection_timeout %s (every session would end before its greeting)",
			    g, t);
	}
	if (!cc->fqdn[0])
		strcpy(cc->fqdn, s->hostname);
	if (!cc->banner[0]) {
		size_t n = strlen(cc->fqdn);

		if (n + sizeof " ESMTP" > sizeof cc->banner) {
			conf_err_at(st, cc->line, "banner: the default '<fqdn> ESMTP' is longer than %d octets; set banner",
			       CONF_TEXT_MAX - 1);
		} else {
			memcpy(cc->banner, cc->fqdn, n);
			memcpy(cc->banner + n, " ESMTP", sizeof " ESMTP");
		}
	}
}

bool conf_is_wildcard(const struct binding *b)
{
	static const struct ip_addr any6 = {{0}};
	static const struct ip_addr any4 = {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0}};

	return ip_cmp(&b->addr, b->v6 ? &any6 : &any4) == 0;
}

/* Whether connector i takes part in the checks across connectors: a
 * disabled one binds nothing, and a bad list was reported already. */
static bool active(const struct pstate *st, unsigned i)
{
	return st->conns[i].enabled && !st->extra[i].bad_list[0] && !st->extra[i].bad_list[1];
}

/* The first binding before bb (of connector i) that the kernel would not
 * bind next to it, in file order, with its connector in *pi; or NULL. */
static const struct binding *wildcard_clash(const struct pstate *st, unsigned i,
					    const struct binding *bb, unsigned *pi)
{
	for (*pi = 0; *pi <= i; ++*pi) {
		const struct connector_conf *a = &st->conns[*pi];
		const struct binding *ab;

		if (!active(st, *pi))
			continue;
		for (ab = a->bindings; ab < a->bindings + a->nbindings && ab != bb; ab++)
			if (ab->port == bb->port && ab->v6 == bb->v6 && conf_is_wildcard(ab) != conf_is_wildcard(bb))
				return ab;
	}
	return NULL;
}

/* The kernel refuses to bind a specific address on a port that a
 * wildcard socket of the same family already listens on (and the other
 * way round), so the server could never start. Checked over every
 * enabled binding, within one connector too; each later binding is
 * reported once. */
static void check_wildcards(struct pstate *st)
{
	unsigned i, j, pi;

	for (i = 0; i < st->nconns; i++) {
		const struct connector_conf *b = &st->conns[i];

		for (j = 0; active(st, i) && j < b->nbindings; j++) {
			const struct binding *ab = wildcard_clash(st, i, &b->bindings[j], &pi);
			char ta[80], tb[80], mine[CONF_NAME_MAX + 16] = "";

			if (!ab)
				continue;
			binding_format(ab, ta, sizeof ta);
			binding_format(&b->bindings[j], tb, sizeof tb);
			/* Within one connector it is named once, at the end. */
			if (pi != i)
				snprintf(mine, sizeof mine, " of connector \"%s\"", b->name);
			conf_err_at(st, st->extra[i].binding_line[j],
			       "bindings: %s%s and %s of connector \"%s\" cannot both be bound: "
			       "the kernel refuses a wildcard and a specific address on one port",
			       tb, mine, ta, st->conns[pi].name);
		}
	}
}

static bool contains(const struct ip_range *outer, const struct ip_range *inner)
{
	return ip_cmp(&outer->lo, &inner->lo) <= 0 && ip_cmp(&inner->hi, &outer->hi) <= 0;
}

/* A binding connectors a and b both have, or NULL. */
static const struct binding *shared_binding(const struct connector_conf *a,
					    const struct connector_conf *b)
{
	unsigned x, y;

	for (x = 0; x < a->nbindings; x++)
		for (y = 0; y < b->nbindings; y++)
			if (binding_same(&a->bindings[x], &b->bindings[y]))
				return &b->bindings[y];
	return NULL;
}

/* Each entry of connector ib against those of ia, which share binding
 * `shared`; reported at ib's entry, once per entry. */
static void check_ranges(struct pstate *st, unsigned ia, unsigned ib, const struct binding *shared)
{
	const struct connector_conf *a = &st->conns[ia], *b = &st->conns[ib];
	unsigned rb, ra;

	for (rb = 0; rb < b->nranges; rb++) {
		const struct ip_range *r2 = &b->ranges[rb];

		for (ra = 0; ra < a->nranges; ra++) {
			const struct ip_range *r1 = &a->ranges[ra];
			char t1[100], t2[100], tb[80];
			bool same;
			int line;

			if (ip_cmp(&r1->lo, &r2->hi) > 0 || ip_cmp(&r2->lo, &r1->hi) > 0)
				continue;
			same = ip_cmp(&r1->lo, &r2->lo) == 0 && ip_cmp(&r1->hi, &r2->hi) == 0;
			if (!same && (contains(r1, r2) || contains(r2, r1)))
				continue;
			ip_range_format(r1, t1, sizeof t1);
			ip_range_format(r2, t2, sizeof t2);
			binding_format(shared, tb, sizeof tb);
			line = st->extra[ib].range_line[rb];
			conf_err_at(st, line ? line : b->line,
			       "remote_ip_ranges: %s of connector \"%s\" %s %s of connector \"%s\" on %s "
			       "(entries of connectors that share a binding may overlap only when one "
			       "contains the other)",
			       t2, b->name, same ? "is the same as" : "partly overlaps", t1, a->name, tb);
			break;
		}
	}
}

/* SPEC §3, as in Exchange: on a shared binding, entries of two connectors
 * may overlap only when one strictly contains the other, so "most
 * specific" always names exactly one connector. Reported at the later
 * connector's entry, once per entry and pair of connectors. */
static void check_overlaps(struct pstate *st)
{
	unsigned ia, ib;

	for (ib = 1; ib < st->nconns; ib++) {
		for (ia = 0; active(st, ib) && ia < ib; ia++) {
			const struct binding *shared;

			if (!active(st, ia))
				continue;
			shared = shared_binding(&st->conns[ia], &st->conns[ib]);
			if (shared)
				check_ranges(st, ia, ib, shared);
		}
	}
}

void conf_finish_connectors(struct pstate *st)
{
	unsigned i;

	if (st->nconns == 0) {
		if (!st->bad_connector)
			conf_err_at(st, 0, "no [connector \"NAME\"] section");
		return;
	}
	for (i = 0; i < st->nconns; i++) {
		st->conn = &st->conns[i];
		st->cx = &st->extra[i];
		finish_connector(st);
	}
	st->conn = NULL;
	st->cx = NULL;
	check_wildcards(st);
	check_overlaps(st);
}
