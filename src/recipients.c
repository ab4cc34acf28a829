/* recipients: the flat recipient file of SPEC §4.
 *
 * One table holds every key in a single namespace, each slot carrying the
 * roles its string plays: an address ("alice@x.org") or catch-all
 * ("@x.org") with the mailbox it delivers to, a mailbox name with its id,
 * a local domain ("x.org"). A domain key is the tail of its address in the
 * arena and a default mailbox name is the address itself, so the arena
 * never holds more than the file's own octets.
 */
#include "recipients.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "limits.h"
#include "log.h"
#include "util.h"

#define ADDR_MAX (ADDR_LOCAL_MAX + 1 + ADDR_DOMAIN_MAX)
#define NONE UINT32_MAX
#define DOMAIN_BIT 0x80000000u
#define LINE_MASK 0x7fffffffu
#define POSTMASTER "postmaster"

struct rslot {
	uint32_t key;  /* arena offset; 0 = empty (offset 0 is a dummy NUL) */
	uint32_t hash;
	uint32_t rcpt; /* mailbox of this address or catch-all, NONE if not one */
	uint32_t mbox; /* id of this string as a mailbox name, NONE if not one */
	uint32_t line; /* line of the address (duplicate reports) | DOMAIN_BIT */
};

struct recipients {
	unsigned refs;
	uint32_t count;
	uint32_t nmailboxes;
	uint32_t postmaster;
	uint32_t mask;
	uint32_t used;
	uint32_t names; /* arena offset of the mailbox id -> name offset array */
	struct timespec mtime;
	char *arena;
	struct rslot slots[];
};

struct loader {
	struct recipients *r;
	char *arena;
	size_t acap, aused;
	unsigned line;
	struct errlist errs; /* its path is the recipient file's */
};

static uint32_t fnv1a(const char *s, size_t n)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 16777619u;
	}
	return h;
}

/* Stops at the key's NUL, so a probe string holding a NUL can never run
 * into the next string of the arena. */
static bool key_eq(const char *key, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (key[i] == '\0' || key[i] != s[i])
			return false;
	return key[n] == '\0';
}

/* Index of the slot holding s, or of the empty slot where it belongs: the
 * load factor stays <= 0.5, so an empty slot always ends the probe. */
static uint32_t probe(const struct recipients *r, const char *arena,
		      const char *s, size_t n, uint32_t h)
{
	uint32_t i = h & r->mask;

	for (;;) {
		const struct rslot *sl = &r->slots[i];

		if (sl->key == 0 || (sl->hash == h && key_eq(arena + sl->key, s, n)))
			return i;
		i = (i + 1) & r->mask;
	}
}

static struct recipients *table_alloc(uint32_t nslots)
{
	struct recipients *r;

	r = calloc(1, sizeof(*r) + (size_t)nslots * sizeof(struct rslot));
	if (r)
		r->mask = nslots - 1;
	return r;
}

static int grow(struct loader *L)
{
	struct recipients *old = L->r, *r;
	uint32_t nslots = old->mask + 1;

	if (nslots >= RCPT_SLOTS_MAX)
		return -1;
	r = table_alloc(nslots * 2);
	if (!r)
		return -1;
	r->refs = old->refs;
	r->count = old->count;
	r->nmailboxes = old->nmailboxes;
	r->postmaster = old->postmaster;
	r->used = old->used;
	for (uint32_t i = 0; i < nslots; i++) {
		const struct rslot *sl = &old->slots[i];
		uint32_t j;

		if (!sl->key)
			continue;
		for (j = sl->hash & r->mask; r->slots[j].key; j = (j + 1) & r->mask)
			;
		r->slots[j] = *sl;
	}
	free(old);
	L->r = r;
	return 0;
}

/* The string at arena offset off (n octets, NUL-terminated) gets a slot;
 * returns its index or NONE when out of memory. */
static uint32_t intern(struct loader *L, uint32_t off, size_t n)
{
	const char *s = L->arena + off;
	uint32_t h = fnv1a(s, n), i;

	i = probe(L->r, L->arena, s, n, h);
	if (L->r->slots[i].key)
		return i;
	if ((size_t)(L->r->used + 1) * 2 > (size_t)L->r->mask + 1) {
		if (grow(L) < 0)
			return NONE;
		i = probe(L->r, L->arena, s, n, h);
	}
	L->r->slots[i] = (struct rslot){ .key = off, .hash = h, .rcpt = NONE, .mbox = NONE };
	L->r->used++;
	return i;
}

static uint32_t find(const struct recipients *r, const char *arena, const char *s, size_t n)
{
	uint32_t i = probe(r, arena, s, n, fnv1a(s, n));

	return r->slots[i].key ? i : NONE;
}

/* Offset of a NUL-terminated copy of s (lower-cased when asked), or NONE
 * if the file outgrew what fstat() announced. */
static uint32_t arena_add(struct loader *L, const char *s, size_t n, bool fold)
{
	size_t off = L->aused;

	if (n + 1 > L->acap - L->aused)
		return NONE;
	for (size_t i = 0; i < n; i++)
		L->arena[off + i] = fold ? util_lower(s[i]) : s[i];
	L->arena[off + n] = '\0';
	L->aused += n + 1;
	return (uint32_t)off;
}

__attribute__((format(printf, 2, 3)))
static void lerr(struct loader *L, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	errlist_add(&L->errs, (int)L->line, NULL, fmt, ap);
	va_end(ap);
}

/* Hostile octets must not reach a terminal or a log through an error
 * message, and a huge token must not crowd out the other errors. */
static const char *shown(char *buf, size_t buflen, const char *s, size_t n)
{
	size_t i, max = buflen - 4;

	for (i = 0; i < n && i < max; i++)
		buf[i] = s[i] > 0x20 && s[i] < 0x7f ? s[i] : '?';
	if (i < n) {
		memcpy(buf + max - 3, "...", 3);
		i = max;
	}
	buf[i] = '\0';
	return buf;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static bool is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* RFC 5322 atext plus '.': what an unquoted local part may hold. */
static bool is_local_char(char c)
{
	return is_alnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~.", c));
}

static const char *check_domain(const char *d, size_t n)
{
	size_t label = 0;

	if (n == 0)
		return "empty domain";
	if (n > ADDR_DOMAIN_MAX)
		return "domain longer than 255 octets";
	if (d[0] == '[')
		return "address literals cannot be local domains";
	for (size_t i = 0; i < n; i++) {
		if (d[i] == '.') {
			if (label == 0)
				return "empty label in domain";
			label = 0;
		} else if (is_alnum(d[i]) || d[i] == '-' || d[i] == '_') {
			label++;
		} else {
			return "invalid character in domain";
		}
	}
	return label ? NULL : "empty label in domain";
}

/* NULL when a is a valid "local@domain" or "@domain"; *at gets the '@'. */
static const char *check_address(const char *a, size_t n, size_t *at)
{
	const char *p;
	size_t ats = 0;

	if (memchr(a, '"', n))
		return "quoted local parts are not supported";
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)a[i] <= 0x20 || (unsigned char)a[i] >= 0x7f)
			return "control, space or 8-bit octet in address";
		if (a[i] == '@')
			ats++;
	}
	if (ats == 0)
		return "missing '@' in address";
	if (ats > 1)
		return "more than one '@' in address";
	p = memchr(a, '@', n);
	*at = (size_t)(p - a);
	if (*at > ADDR_LOCAL_MAX)
		return "local part longer than 64 octets";
	for (size_t i = 0; i < *at; i++)
		if (!is_local_char(a[i]))
			return "invalid character in local part";
	return check_domain(p + 1, n - *at - 1);
}

static const char *check_mailbox(const char *m, size_t n)
{
	if (n == 0)
		return "empty mailbox name";
	if (n > RCPT_MAILBOX_MAX)
		return "mailbox name longer than 255 octets";
	if (m[0] == '.')
		return "mailbox name starts with '.'";
	for (size_t i = 0; i < n; i++) {
		if (m[i] == '/')
			return "mailbox name contains '/'";
		if ((unsigned char)m[i] <= 0x20 || (unsigned char)m[i] >= 0x7f)
			return "control, space or 8-bit octet in mailbox name";
	}
	/* <spool>/tmp/ is the shared staging directory of §5, <spool>/queue/
	 * the forwarding queue of §10 (reserved with or without a relay, so
	 * adding one never clashes with a mailbox). */
	if (n == 3 && memcmp(m, "tmp", 3) == 0)
		return "mailbox name 'tmp' is reserved";
	if (n == 5 && memcmp(m, "queue", 5) == 0)
		return "mailbox name 'queue' is reserved";
	return NULL;
}

/* Mailbox id of the name (n octets at s, or already in the arena at off
 * when off != NONE), assigning the next id to a new name. */
static uint32_t mailbox_id(struct loader *L, const char *s, size_t n, uint32_t off)
{
	uint32_t i = find(L->r, L->arena, s, n);

	if (i == NONE || L->r->slots[i].mbox == NONE) {
		if (i == NONE) {
			if (off == NONE)
				off = arena_add(L, s, n, false);
			if (off == NONE)
				return NONE;
			i = intern(L, off, n);
			if (i == NONE)
				return NONE;
		}
		L->r->slots[i].mbox = L->r->nmailboxes++;
	}
	return L->r->slots[i].mbox;
}

static void parse_line(struct loader *L, const char *line, size_t len)
{
	const char *tok[3], *why, *hash = memchr(line, '#', len);
	size_t tlen[3], i = 0, at = 0;
	unsigned nt = 0;
	char abuf[ADDR_MAX + 1], show[80];
	uint32_t off, slot, mbox, dslot;

	if (hash)
		len = (size_t)(hash - line);
	while (i < len) {
		size_t start;

		while (i < len && is_space(line[i]))
			i++;
		if (i == len)
			break;
		start = i;
		while (i < len && !is_space(line[i]))
			i++;
		if (nt < 3) {
			tok[nt] = line + start;
			tlen[nt] = i - start;
		}
		nt++;
	}
	if (nt == 0)
		return;
	if (nt > 2) {
		lerr(L, "too many columns (address and optional mailbox expected)");
		return;
	}
	why = check_address(tok[0], tlen[0], &at);
	if (why) {
		lerr(L, "%s: '%s'", why, shown(show, sizeof(show), tok[0], tlen[0]));
		return;
	}
	for (i = 0; i < tlen[0]; i++)
		abuf[i] = util_lower(tok[0][i]);
	abuf[tlen[0]] = '\0';
	if (nt == 2) {
		why = check_mailbox(tok[1], tlen[1]);
		if (why) {
			lerr(L, "%s: '%s'", why, shown(show, sizeof(show), tok[1], tlen[1]));
			return;
		}
	} else {
		why = check_mailbox(abuf, tlen[0]);
		if (why) {
			lerr(L, "%s (the address is the mailbox name; add a 2nd column): '%s'",
			     why, shown(show, sizeof(show), abuf, tlen[0]));
			return;
		}
	}
	slot = find(L->r, L->arena, abuf, tlen[0]);
	if (slot != NONE && L->r->slots[slot].rcpt != NONE) {
		lerr(L, "duplicate recipient '%s' (first on line %u)",
		     shown(show, sizeof(show), abuf, tlen[0]),
		     (unsigned)(L->r->slots[slot].line & LINE_MASK));
		return;
	}
	off = slot != NONE ? L->r->slots[slot].key : arena_add(L, abuf, tlen[0], false);
	if (off == NONE)
		goto changed;
	if (nt == 2)
		mbox = mailbox_id(L, tok[1], tlen[1], NONE);
	else
		mbox = mailbox_id(L, abuf, tlen[0], off);
	if (mbox == NONE)
		goto changed;
	slot = intern(L, off, tlen[0]);
	dslot = slot == NONE ? NONE : intern(L, off + (uint32_t)at + 1, tlen[0] - at - 1);
	if (dslot == NONE) {
		lerr(L, "out of memory");
		return;
	}
	/* Interning the domain may have grown and rehashed the table: the
	 * address's slot index is looked up again, never reused. */
	slot = find(L->r, L->arena, abuf, tlen[0]);
	L->r->slots[slot].rcpt = mbox;
	L->r->slots[slot].line = (L->r->slots[slot].line & DOMAIN_BIT) | (L->line & LINE_MASK);
	L->r->slots[dslot].line |= DOMAIN_BIT;
	L->r->count++;
	return;
changed:
	/* Either the arena is full (the file grew past its fstat() size) or
	 * the table could not grow. */
	lerr(L, "out of memory or file changed while loading");
}

static void free_loader(struct loader *L)
{
	free(L->r);
	free(L->arena);
	L->r = NULL;
	L->arena = NULL;
}

/* Appends the dense mailbox id -> name offset array to the arena. */
static int finish(struct loader *L)
{
	size_t base = (L->aused + 3) & ~(size_t)3, total;
	char *a;

	if (L->r->nmailboxes > (SIZE_MAX - base) / sizeof(uint32_t))
		return -1;
	total = base + (size_t)L->r->nmailboxes * sizeof(uint32_t);
	if (total > UINT32_MAX)
		return -1;
	a = realloc(L->arena, total);
	if (!a)
		return -1;
	L->arena = a;
	for (uint32_t i = 0; i <= L->r->mask; i++) {
		const struct rslot *sl = &L->r->slots[i];

		if (sl->key && sl->mbox != NONE)
			memcpy(a + base + (size_t)sl->mbox * sizeof(uint32_t), &sl->key,
			       sizeof(uint32_t));
	}
	L->r->names = (uint32_t)base;
	L->r->arena = a;
	return 0;
}

static int read_lines(struct loader *L, int fd, off_t size)
{
	/* Static: a stack frame this large makes every local access longer
	 * on MIPS16, and one load never runs inside another (the daemon is
	 * single-threaded and parse_line keeps no pointer into them). */
	static char block[8192], line[RCPT_LINE_MAX];
	size_t ll = 0;
	bool toolong = false, pending = false;
	off_t total = 0;

	for (;;) {
		ssize_t n = read(fd, block, sizeof(block));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			lerr(L, "read: %s", strerror(errno));
			return -1;
		}
		if (n == 0)
			break;
		total += n;
		if (total > size) {
			lerr(L, "file changed while loading");
			return -1;
		}
		for (ssize_t i = 0; i < n; i++) {
			char c = block[i];

			if (c != '\n') {
				pending = true;
				if (ll < sizeof(line))
					line[ll++] = c;
				else
					toolong = true;
				continue;
			}
			L->line++;
			if (toolong)
				lerr(L, "line longer than %d octets", RCPT_LINE_MAX);
			else
				parse_line(L, line, ll);
			ll = 0;
			toolong = pending = false;
		}
	}
	if (pending) {
		L->line++;
		if (toolong)
			lerr(L, "line longer than %d octets", RCPT_LINE_MAX);
		else
			parse_line(L, line, ll);
	}
	return 0;
}

struct recipients *recipients_load(const char *path, char *err, size_t errlen)
{
	struct loader L = { .errs = { err, errlen, 0, path, 0 } };
	struct stat st;
	int fd;
	uint32_t off;

	if (err && errlen)
		err[0] = '\0';
	/* O_NONBLOCK: a FIFO put in the file's place must not hang the
	 * loop in open() at the once-a-second look (SPEC §3). */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0 || fstat(fd, &st) < 0) {
		lerr(&L, "%s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > (off_t)RCPT_FILE_MAX) {
		if (S_ISREG(st.st_mode))
			lerr(&L, "file too large");
		else
			lerr(&L, "is %s, not a regular file", util_not_regular(st.st_mode));
		close(fd);
		return NULL;
	}
	/* Offset 0 is the empty-slot marker, then the reserved "postmaster";
	 * every later string is a column of a line plus the separator or
	 * newline that followed it, so the file size bounds the rest. */
	L.acap = 1 + sizeof(POSTMASTER) + (size_t)st.st_size + 1;
	L.arena = malloc(L.acap);
	L.r = table_alloc(64);
	if (!L.arena || !L.r) {
		lerr(&L, "out of memory");
		goto fail;
	}
	L.arena[0] = '\0';
	L.aused = 1;
	off = arena_add(&L, POSTMASTER, strlen(POSTMASTER), false);
	L.r->postmaster = mailbox_id(&L, POSTMASTER, strlen(POSTMASTER), off);
	if (L.r->postmaster == NONE) {
		lerr(&L, "out of memory");
		goto fail;
	}
	if (read_lines(&L, fd, st.st_size) < 0 || L.errs.n)
		goto fail;
	if (finish(&L) < 0) {
		lerr(&L, "out of memory");
		goto fail;
	}
	close(fd);
	L.r->refs = 1;
	L.r->mtime = st.st_mtim;
	return L.r;
fail:
	close(fd);
	free_loader(&L);
	return NULL;
}

void recipients_ref(struct recipients *r)
{
	if (r)
		r->refs++;
}

void recipients_unref(struct recipients *r)
{
	if (!r || --r->refs)
		return;
	free(r->arena);
	free(r);
}

static bool domain_is_local(const struct recipients *r, const char *d, size_t n)
{
	uint32_t i = find(r, r->arena, d, n);

	return i != NONE && (r->slots[i].line & DOMAIN_BIT);
}

bool recipients_is_local_domain(const struct recipients *r, const char *domain, size_t len)
{
	char buf[ADDR_DOMAIN_MAX];

	if (!r || !domain || len == 0 || len > ADDR_DOMAIN_MAX)
		return false;
	/* The table's keys are lower-cased at load. */
	for (size_t k = 0; k < len; k++)
		buf[k] = util_lower(domain[k]);
	return domain_is_local(r, buf, len);
}

enum rcpt_result recipients_lookup(const struct recipients *r, const char *addr,
				   size_t len, uint32_t *mailbox)
{
	char buf[ADDR_MAX + 1];
	size_t at, dlen;
	uint32_t i;
	bool local;

	if (!r || !addr)
		return RCPT_NOT_LOCAL;
	/* The last '@': a quoted local part may hold another one. */
	for (at = len; at > 0 && addr[at - 1] != '@'; at--)
		;
	if (at == 0) {
		if (len != strlen(POSTMASTER) || strncasecmp(addr, POSTMASTER, len) != 0)
			return RCPT_NOT_LOCAL;
		if (mailbox)
			*mailbox = r->postmaster;
		return RCPT_OK;
	}
	at--;
	dlen = len - at - 1;
	if (dlen == 0 || dlen > ADDR_DOMAIN_MAX || addr[at + 1] == '[')
		return RCPT_NOT_LOCAL;
	if (len > ADDR_MAX || at == 0) {
		for (size_t k = 0; k < dlen; k++)
			buf[k] = util_lower(addr[at + 1 + k]);
		return domain_is_local(r, buf, dlen) ? RCPT_UNKNOWN : RCPT_NOT_LOCAL;
	}
	for (size_t k = 0; k < len; k++)
		buf[k] = util_lower(addr[k]);
	i = find(r, r->arena, buf, len);
	if (i == NONE || r->slots[i].rcpt == NONE)
		i = find(r, r->arena, buf + at, len - at); /* "@domain" */
	if (i != NONE && r->slots[i].rcpt != NONE) {
		if (mailbox)
			*mailbox = r->slots[i].rcpt;
		return RCPT_OK;
	}
	local = domain_is_local(r, buf + at + 1, dlen);
	if (local && at == strlen(POSTMASTER) && memcmp(buf, POSTMASTER, at) == 0) {
		if (mailbox)
			*mailbox = r->postmaster;
		return RCPT_OK;
	}
	return local ? RCPT_UNKNOWN : RCPT_NOT_LOCAL;
}

const char *recipients_mailbox(const struct recipients *r, uint32_t mailbox)
{
	uint32_t off;

	if (!r || mailbox >= r->nmailboxes)
		return NULL;
	memcpy(&off, r->arena + r->names + (size_t)mailbox * sizeof(off), sizeof(off));
	return r->arena + off;
}

uint32_t recipients_count(const struct recipients *r)
{
	return r ? r->count : 0;
}

struct timespec recipients_mtime(const struct recipients *r)
{
	struct timespec zero = { 0, 0 };

	return r ? r->mtime : zero;
}
