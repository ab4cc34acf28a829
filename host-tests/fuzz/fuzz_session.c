/* fuzz_session: an arbitrary client byte stream through the SMTP session.
 *
 * The harness plays src/conn.c's transport without sockets, clock or
 * disk, and frames the stream with the server's own framing module,
 * src/smtp_input.c (nothing of it is copied here): the stream is "read"
 * in pieces into the buffers smtp_input_room() names, command lines come
 * from smtp_input_line() while the session reads commands, message data
 * goes through smtp_input_data() after a 354 (in the clear the rest stays
 * in the stream as MSG_PEEK leaves it; inside TLS, pieces of at most
 * TLS_READ_CHUNK and the rest kept by smtp_input_keep()), and the end of
 * data gets smtp_input_verdict(). Every reply is rendered and checked,
 * and the session's promises (tarpit only where SPEC §8 says, close only
 * with a closing reply, one message per DATA, no allocation, no table
 * reference left behind) and the framing's (same end and octets as the
 * filter in one piece, the size and bare-EOL verdicts) are asserted; a
 * violation aborts.
 *
 * Input: 4 header octets, then the client stream.
 *   h0 bit 0 max_protocol_errors 3 (else 0)   bit 1 tarpit_interval 0 (else 5)
 *      bit 2 a pipelining client (reads run on past a line's end, octets
 *      after DATA/STARTTLS are a violation, 554); else every read stops
 *      at the first LF, as from a client that waits for each reply
 *      bit 3 no [auth]   bit 4 no [tls]   bit 5 255-octet fqdn and banner
 *      bit 6 auth_requires_tls   bit 7 require_tls
 *   h1 bits 0-2 read size   bit 3 max_message_size 64 (else 10MB)
 *      bit 4 tarpit_all_after_unknown off   bit 5 pipelining off
 *      bit 6 connector allows 7 recipients, slots hold 5 (a reload raised it)
 *      bit 7 max_unknown_recipients and max_auth_failures 0 (no limit)
 *   h2 h3 seed of the transport's own choices: STARTTLS context available,
 *      message store opens, commit succeeds, recipient file reloaded.
 * FUZZ_TRACE=1 in the environment prints the dialog to stderr.
 */
#include <dlfcn.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <mbedtls/pkcs5.h>
#include <mbedtls/version.h>
#include <sanitizer/allocator_interface.h>

#include "auth.h"
#include "config.h"
#include "limits.h"
#include "maildir.h"
#include "recipients.h"
#include "smtp_data.h"
#include "smtp_input.h"
#include "smtp_reply.h"
#include "smtp_session.h"

#include "fuzz_util.h"

#define MAX_RCPT 5
#define INPUT_MAX 65536
#define CHUNK_MAX 4096

/* ---- PBKDF2 made cheap ----------------------------------------------------
 * The session hands AUTH's credentials out (SMTP_AUTH_WAIT) and the
 * harness, in the transport's place, checks them with users_verify(),
 * which runs PBKDF2 with thousands of iterations; an AUTH in an input
 * would cost milliseconds. The executable's definition takes precedence
 * over libmbedcrypto's, so users.c's call lands here and runs the real
 * function with one iteration: users_set_password() and users_verify()
 * agree, the verdicts are the real ones. Build with -DFUZZ_REAL_PBKDF2 to
 * keep the real cost. */
static unsigned long g_pbkdf2_calls;

#ifndef FUZZ_REAL_PBKDF2
#if MBEDTLS_VERSION_NUMBER >= 0x03030000
typedef int (*pbkdf2_fn)(mbedtls_md_type_t, const unsigned char *, size_t, const unsigned char *,
			 size_t, unsigned int, uint32_t, unsigned char *);
static pbkdf2_fn real_pbkdf2;
int mbedtls_pkcs5_pbkdf2_hmac_ext(mbedtls_md_type_t md, const unsigned char *password, size_t plen,
				  const unsigned char *salt, size_t slen, unsigned int iteration_count,
				  uint32_t key_length, unsigned char *output)
{
	(void)iteration_count;
	g_pbkdf2_calls++;
	return real_pbkdf2(md, password, plen, salt, slen, 1, key_length, output);
}
#define PBKDF2_NAME "mbedtls_pkcs5_pbkdf2_hmac_ext"
#else
typedef int (*pbkdf2_fn)(mbedtls_md_context_t *, const unsigned char *, size_t, const unsigned char *,
			 size_t, unsigned int, uint32_t, unsigned char *);
static pbkdf2_fn real_pbkdf2;
int mbedtls_pkcs5_pbkdf2_hmac(mbedtls_md_context_t *ctx, const unsigned char *password, size_t plen,
			      const unsigned char *salt, size_t slen, unsigned int iteration_count,
			      uint32_t key_length, unsigned char *output)
{
	(void)iteration_count;
	g_pbkdf2_calls++;
	return real_pbkdf2(ctx, password, plen, salt, slen, 1, key_length, output);
}
#define PBKDF2_NAME "mbedtls_pkcs5_pbkdf2_hmac"
#endif
#endif

/* ---- allocation counting ---------------------------------------------------- */

static _Thread_local int g_armed; /* libFuzzer's own threads are not counted */
static unsigned long g_allocs, g_frees;

NOCOV static void malloc_hook(const volatile void *p, size_t n)
{
	(void)p;
	(void)n;
	if (g_armed)
		g_allocs++;
}

NOCOV static void free_hook(const volatile void *p)
{
	if (g_armed && p)
		g_frees++;
}

/* ---- fixed world ------------------------------------------------------------- */

static struct recipients *g_rcpts[2]; /* the file, and the file after a "reload" */
static struct users *g_users;
static struct smtp_envelope *g_envmem;
static size_t g_envsize;
static bool g_refs_checkable;
static bool g_trace; /* FUZZ_TRACE=1: print the dialog (to read a reproducer) */
static unsigned long g_verify_allocs; /* allocations one users_verify() makes */

static const char RCPTS_A[] = "# fuzz recipients\n"
			      "alice@example.org\n"
			      "bob@example.org        robert\n"
			      "carol@example.org      robert\n"
			      "@example.net           catchall\n"
			      "postmaster@example.org admin\n";
static const char RCPTS_B[] = "alice@example.org\n"
			      "dave@example.com       dave\n"
			      "@example.net           other\n";

/* The refcount is the first member of struct recipients (recipients.c);
 * there is no getter, so it is peeked, and only if the peek is proven
 * right at start. */
NOCOV static unsigned peek_refs(const struct recipients *r)
{
	unsigned v;
	memcpy(&v, r, sizeof v);
	return v;
}

NOCOV static void die(const char *what, const char *err)
{
	fprintf(stderr, "fuzz_session setup: %s: %s\n", what, err);
	exit(1);
}

static struct recipients *load_rcpts(const char *dir, const char *name, const char *text)
{
	char path[512], err[1024];
	struct recipients *r;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	fuzz_write_file(path, (const uint8_t *)text, strlen(text), 0600);
	r = recipients_load(path, err, sizeof err);
	if (!r)
		die("recipients_load", err);
	unlink(path);
	return r;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char dir[256], path[300], err[1024];
	(void)argc;
	(void)argv;

#ifndef FUZZ_REAL_PBKDF2
	real_pbkdf2 = (pbkdf2_fn)dlsym(RTLD_NEXT, PBKDF2_NAME);
	if (!real_pbkdf2)
		die("dlsym", PBKDF2_NAME);
#endif
	snprintf(dir, sizeof dir, "%s/tarpitd-fuzz-session-XXXXXX", fuzz_tmp_dir());
	if (!mkdtemp(dir))
		die("mkdtemp", dir);
	g_rcpts[0] = load_rcpts(dir, "rcpts-a", RCPTS_A);
	g_rcpts[1] = load_rcpts(dir, "rcpts-b", RCPTS_B);

	snprintf(path, sizeof path, "%s/users", dir);
	if (users_set_password(path, "alice@example.org", "correct horse", 13, err, sizeof err) != 0 ||
	    users_set_password(path, "u", "p", 1, err, sizeof err) != 0)
		die("users_set_password", err);
	g_users = users_load(path, err, sizeof err);
	if (!g_users)
		die("users_load", err);
	unlink(path);
	rmdir(dir);
	if (!users_verify(g_users, "u", 1, "p", 1) || users_verify(g_users, "u", 1, "q", 1))
		die("users_verify", "does not verify its own password");

	/* Sized as conn_table.c sizes it, without its rounding up, so ASan
	 * sees the first octet past the envelope. */
	g_envsize = sizeof(struct smtp_envelope) + MAX_RCPT * sizeof(uint32_t);
	if (g_envsize < offsetof(struct smtp_envelope, mbox) + AUTH_LINE_MAX)
		g_envsize = offsetof(struct smtp_envelope, mbox) + AUTH_LINE_MAX;
	g_trace = getenv("FUZZ_TRACE") != NULL;
	g_envmem = malloc(g_envsize);
	if (!g_envmem)
		die("malloc", "envelope");

	g_refs_checkable = peek_refs(g_rcpts[0]) == 1;
	recipients_ref(g_rcpts[0]);
	g_refs_checkable = g_refs_checkable && peek_refs(g_rcpts[0]) == 2;
	recipients_unref(g_rcpts[0]);
	g_refs_checkable = g_refs_checkable && peek_refs(g_rcpts[0]) == 1 && peek_refs(g_rcpts[1]) == 1;
	if (!g_refs_checkable)
		fprintf(stderr, "fuzz_session: recipient refcount not checkable, check skipped\n");

	__sanitizer_install_malloc_and_free_hooks(malloc_hook, free_hook);
	g_allocs = g_frees = 0;
	g_armed = 1;
	users_verify(g_users, "u", 1, "p", 1);
	g_armed = 0;
	g_verify_allocs = g_allocs;
	return 0;
}

/* ---- one connection ---------------------------------------------------------- */

struct harness {
	struct smtp_session s;
	struct smtp_env e;
	struct connector_conf conf;
	struct reply_ctx ctx;
	struct smtp_input inp;
	uint32_t rng;
	bool pipe_violations;
	size_t chunk;
	bool closed;   /* a reply with RF_CLOSE went out: nothing more is read */
	unsigned n354, stored, data_ends;
	uint32_t errors, unknown, n535;
};

static struct harness H;
static struct smtp_creds g_creds; /* where the session hands AUTH's credentials out */
static char g_line[SMTP_LINE_MAX];        /* the slot's line buffer (conn.in): over-reads hit the redzone */
static char g_dout[CHUNK_MAX + 1];        /* smtp_data_feed() output, also end-aligned */
static char g_ref[INPUT_MAX + 1];         /* the one-shot reference of a message's data */
static char g_acc[INPUT_MAX + 1];         /* the same, as fed in pieces */

static const char LONG_NAME[] = /* 255 octets: the longest fqdn and banner */
	"a23456789012345678901234567890123456789012345678901234567890123."
	"b23456789012345678901234567890123456789012345678901234567890123."
	"c23456789012345678901234567890123456789012345678901234567890123."
	"d23456789023456789023456789023456789023456789023456789023456789";
static const char QUEUE_ID[QUEUE_ID_MAX] = "QQQQQQQQQQQQQQQQQQQQQQQ";

NOCOV static uint32_t rnd(void)
{
	uint32_t x = H.rng;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	H.rng = x;
	return x;
}

NOCOV static void setup(const uint8_t h[4])
{
	static const size_t chunks[8] = {1, 2, 3, 7, 64, 512, CHUNK_MAX, CHUNK_MAX};
	struct connector_conf *c = &H.conf;

	memset(&H, 0, sizeof H);
	/* Garbage, not zeros: the session must initialise what it reads, the
	 * server reuses slots and envelopes without clearing them. */
	memset(&H.s, 0xa5, sizeof H.s);
	memset(g_envmem, 0xa5, g_envsize);

	snprintf(c->name, sizeof c->name, "fuzz");
	c->enabled = true;
	snprintf(c->fqdn, sizeof c->fqdn, "%s", (h[0] & 32) ? LONG_NAME : "mx.test");
	snprintf(c->banner, sizeof c->banner, "%s", (h[0] & 32) ? LONG_NAME : "mx.test ESMTP");
	c->tarpit_interval = (h[0] & 2) ? 0 : 5;
	c->tarpit_all_after_unknown = !(h[1] & 16);
	c->max_message_size = (h[1] & 8) ? 64 : 10u * 1024 * 1024;
	c->max_recipients_per_message = (h[1] & 64) ? MAX_RCPT + 2 : MAX_RCPT;
	c->max_protocol_errors = (h[0] & 1) ? 3 : 0;
	c->max_unknown_recipients = (h[1] & 128) ? 0 : 3;
	c->max_auth_failures = (h[1] & 128) ? 0 : 2;
	c->pipelining = !(h[1] & 32);
	c->starttls = true;
	c->require_tls = (h[0] & 128) != 0;
	c->auth = true;
	c->auth_requires_tls = (h[0] & 64) != 0;

	H.e.conn = c;
	H.e.rcpts = g_rcpts[0];
	H.e.users = (h[0] & 8) ? NULL : g_users;
	H.e.tls = !(h[0] & 16);

	H.ctx.fqdn = c->fqdn;
	H.ctx.banner = c->banner;
	H.ctx.peer_ip = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"; /* the longest text */
	H.ctx.queue_id = QUEUE_ID;
	H.ctx.max_size = (h[1] & 8) ? UINT64_MAX : c->max_message_size; /* the longest SIZE line */
	H.ctx.pipelining = c->pipelining;

	H.pipe_violations = (h[0] & 4) != 0;
	H.chunk = chunks[h[1] & 7];
	H.rng = ((uint32_t)h[2] << 8 | h[3]) * 2654435761u + 1u;
	/* Now and then no place for credentials: every AUTH must fail. */
	H.e.creds = (rnd() & 15) ? &g_creds : NULL;
	memset(&g_creds, 0xa5, sizeof g_creds);

	smtp_session_init(&H.s, g_envmem, MAX_RCPT);
	smtp_input_init(&H.inp);
}

/* A reply renders into REPLY_MAX as CRLF lines "NNN-" ... "NNN ", every
 * octet printable, the code that of its id and 2xx..5xx. */
NOCOV static void check_render(struct smtp_reply r)
{
	char buf[REPLY_MAX];
	int code;
	size_t len, i = 0;

	FUZZ_CHECK(r.id != R_NONE && r.id < R__COUNT);
	code = reply_code((enum reply_id)r.id);
	FUZZ_CHECK(code >= 200 && code <= 599);
	H.ctx.starttls = smtp_session_offers_starttls(&H.s, &H.e);
	H.ctx.auth = smtp_session_offers_auth(&H.s, &H.e);
	len = reply_render((enum reply_id)r.id, &H.ctx, buf, sizeof buf);
	FUZZ_CHECK(len > 0 && len < sizeof buf);
	if (g_trace)
		fprintf(stderr, "S: %s%.*s", (r.flags & RF_TARPIT) ? "(tarpit) " : "", (int)len, buf);
	while (i < len) {
		size_t e = i;
		char sep;

		while (e < len && buf[e] != '\r' && buf[e] != '\n')
			e++;
		FUZZ_CHECK(e + 2 <= len && buf[e] == '\r' && buf[e + 1] == '\n');
		FUZZ_CHECK(e - i >= 4);
		FUZZ_CHECK(buf[i] >= '2' && buf[i] <= '5');
		FUZZ_CHECK(buf[i + 1] >= '0' && buf[i + 1] <= '9' && buf[i + 2] >= '0' && buf[i + 2] <= '9');
		FUZZ_CHECK((buf[i] - '0') * 100 + (buf[i + 1] - '0') * 10 + (buf[i + 2] - '0') == code);
		sep = buf[i + 3];
		FUZZ_CHECK(sep == (e + 2 == len ? ' ' : '-'));
		for (size_t k = i; k < e; k++)
			FUZZ_CHECK(buf[k] >= 0x20 && buf[k] <= 0x7e);
		i = e + 2;
	}
}

/* Whether the tarpit may / must apply to a reply (SPEC §8). */
NOCOV static void check_tarpit(struct smtp_reply r)
{
	int code = reply_code((enum reply_id)r.id);
	bool tarpitted = smtp_session_tarpitted(&H.s, &H.e);
	bool rcpt_after_unknown = (r.id == R_250_RCPT || r.id == R_452_RCPTS) && H.s.unknown > 0 &&
				  H.conf.tarpit_all_after_unknown;
	bool may = tarpitted && (code >= 500 || code == 421 || rcpt_after_unknown);
	bool must = tarpitted && (code >= 500 || r.id == R_421_ERRORS || r.id == R_421_UNKNOWN ||
				  r.id == R_421_AUTH || rcpt_after_unknown);

	FUZZ_CHECK(!(r.flags & RF_TARPIT) || may);
	FUZZ_CHECK(!must || (r.flags & RF_TARPIT));
	FUZZ_CHECK(H.conf.tarpit_interval > 0 || !(r.flags & RF_TARPIT));
	FUZZ_CHECK(!smtp_session_authenticated(&H.s) || !(r.flags & RF_TARPIT));
}

NOCOV static void check_refs(void)
{
	bool txn = smtp_session_in_transaction(&H.s);

	FUZZ_CHECK(txn == (H.s.table != NULL));
	FUZZ_CHECK(H.s.table == NULL || H.s.table == g_rcpts[0] || H.s.table == g_rcpts[1]);
	if (g_refs_checkable)
		FUZZ_CHECK(peek_refs(g_rcpts[0]) + peek_refs(g_rcpts[1]) == 2u + (txn ? 1u : 0u));
}

/* What must hold between any two events. */
NOCOV static void check_session(void)
{
	struct smtp_session *s = &H.s;
	const struct smtp_envelope *env = s->env;

	FUZZ_CHECK(s->env == g_envmem && s->max_rcpt == MAX_RCPT);
	FUZZ_CHECK(s->state <= SMTP_CLOSING);
	FUZZ_CHECK(s->nrcpt <= s->max_rcpt && s->nrcpt <= H.conf.max_recipients_per_message);
	FUZZ_CHECK(smtp_session_in_transaction(s) || s->nrcpt == 0);
	FUZZ_CHECK(s->helo_len <= SMTP_HELO_MAX && strlen(s->helo) == s->helo_len);
	for (size_t i = 0; i < s->helo_len; i++)
		FUZZ_CHECK(strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:[]?",
				  s->helo[i]) != NULL);
	FUZZ_CHECK(memchr(s->sender, 0, sizeof s->sender) != NULL);
	FUZZ_CHECK(s->errors == H.errors && s->unknown == H.unknown);
	FUZZ_CHECK(s->auth_failures <= H.n535);
	if (s->nrcpt > 0) {
		FUZZ_CHECK(env->nmbox >= 1 && env->nmbox <= s->nrcpt);
		FUZZ_CHECK(env->first_len <= ADDRESS_MAX && strlen(env->first_rcpt) == env->first_len);
		for (unsigned i = 0; i < env->nmbox; i++) {
			if (!recipients_mailbox(s->table, env->mbox[i]))
				fprintf(stderr, "envelope mailbox %u of %u is id 0x%08x: no such mailbox\n", i,
					(unsigned)env->nmbox, (unsigned)env->mbox[i]);
			FUZZ_CHECK(recipients_mailbox(s->table, env->mbox[i]) != NULL);
			for (unsigned j = 0; j < i; j++)
				FUZZ_CHECK(env->mbox[i] != env->mbox[j]);
		}
	}
	if (H.conf.max_protocol_errors && s->errors > H.conf.max_protocol_errors)
		FUZZ_CHECK(s->state == SMTP_CLOSING);
	if (H.conf.max_unknown_recipients && s->unknown > H.conf.max_unknown_recipients)
		FUZZ_CHECK(s->state == SMTP_CLOSING);
	if (H.conf.max_auth_failures && s->auth_failures > H.conf.max_auth_failures)
		FUZZ_CHECK(s->state == SMTP_CLOSING);
	FUZZ_CHECK(H.stored <= H.data_ends && H.data_ends <= H.n354);
	check_refs();
}

NOCOV static void count_reply(struct smtp_reply r)
{
	if (r.id == R_550_UNKNOWN)
		H.unknown++;
	if (r.id == R_535_AUTH)
		H.n535++;
}

/* One command line into the session; returns its replies in out. */
NOCOV static unsigned run_line(const char *line, size_t len, bool too_long, struct smtp_reply out[2])
{
	unsigned n;
	bool closing = false, may_verify;

	FUZZ_CHECK(H.s.state == SMTP_CMD && !H.closed);
	if (g_trace)
		fprintf(stderr, "C: %.*s%s\n", (int)(len > 80 ? 80 : len), line,
			too_long ? " [too long]" : len > 80 ? "..." : "");
	may_verify = !too_long && smtp_session_may_verify(&H.s, line, len);
	n = smtp_session_line(&H.s, &H.e, line, len, too_long, out);
	if (H.s.state == SMTP_AUTH_WAIT) {
		struct smtp_reply probe[2];
		bool ok;

		/* The transport made sure of a verifier before the line, from
		 * smtp_session_may_verify(): it must have said so. */
		FUZZ_CHECK(n == 0 && may_verify && H.e.creds && H.e.users);
		FUZZ_CHECK(H.s.auth_failures <= H.n535 && !smtp_session_authenticated(&H.s));
		/* Waiting, the session takes no line. */
		FUZZ_CHECK(smtp_session_line(&H.s, &H.e, "NOOP", 4, false, probe) == 0);
		FUZZ_CHECK(H.s.state == SMTP_AUTH_WAIT);
		ok = users_verify(H.e.users, g_creds.user, g_creds.ulen, g_creds.pass, g_creds.plen);
		if (g_trace)
			fprintf(stderr, "   (credentials checked: %s)\n", ok ? "ok" : "wrong");
		n = smtp_session_auth_verdict(&H.s, &H.e, ok, out);
		FUZZ_CHECK(out[0].id == (ok ? R_235_AUTH : R_535_AUTH));
		FUZZ_CHECK(smtp_session_authenticated(&H.s) == ok);
		FUZZ_CHECK(smtp_session_auth_verdict(&H.s, &H.e, ok, probe) == 0);
	}
	FUZZ_CHECK(n == 1 || n == 2);
	if (n == 2) {
		int c = reply_code((enum reply_id)out[1].id);
		FUZZ_CHECK(c == 421 && (out[1].flags & RF_CLOSE) && !(out[0].flags & RF_CLOSE));
		FUZZ_CHECK(!(out[0].flags & (RF_DATA | RF_STARTTLS)));
	}
	for (unsigned i = 0; i < n; i++) {
		struct smtp_reply r = out[i];

		check_render(r);
		check_tarpit(r);
		count_reply(r);
		/* Counted on the first reply: the 421 that a limit adds after
		 * it does not undo the count. */
		if (i == 0 && reply_is_protocol_error((enum reply_id)r.id))
			H.errors++;
		FUZZ_CHECK(!(r.flags & RF_DATA) == (r.id != R_354));
		FUZZ_CHECK(!(r.flags & RF_STARTTLS) == (r.id != R_220_TLS));
		closing |= (r.flags & RF_CLOSE) != 0;
	}
	switch (H.s.state) {
	case SMTP_CMD:
		FUZZ_CHECK(!closing && !(out[0].flags & (RF_DATA | RF_STARTTLS)));
		break;
	case SMTP_DATA_WAIT:
		FUZZ_CHECK(n == 1 && (out[0].flags & RF_DATA) && smtp_session_in_transaction(&H.s) &&
			   H.s.nrcpt > 0);
		break;
	case SMTP_TLS_WAIT:
		FUZZ_CHECK(n == 1 && (out[0].flags & RF_STARTTLS) && !smtp_session_in_transaction(&H.s) &&
			   !smtp_session_in_tls(&H.s));
		break;
	case SMTP_CLOSING:
		FUZZ_CHECK(closing);
		break;
	default:
		FUZZ_CHECK(!"state after a command line");
	}
	check_session();
	return n;
}

/* conn.c pipe_violation(): the 354 or 220 becomes a closing 554. */
NOCOV static void pipe_violation(void)
{
	if (g_trace)
		fprintf(stderr, "S: (554 5.5.0 replaces the last reply: octets pipelined after it)\n");
	smtp_session_reset(&H.s);
	smtp_session_close(&H.s);
	smtp_input_drop(&H.inp);
	H.closed = true;
	check_session();
}

/* Octets wait before the 354 or 220 went out: in the line buffer (the
 * framing says so), or, from a pipelining client, still in the stream. */
NOCOV static bool early(size_t pos, size_t len)
{
	return smtp_input_early(&H.inp, &H.s) || (H.pipe_violations && pos < len);
}

/* Message data from in[*pos..len), as conn.c read_data() takes it. */
NOCOV static void run_data(const char *in, size_t len, size_t *pos_io)
{
	struct smtp_data ref;
	size_t ref_used, ref_len, ref_size, pos = *pos_io, acc_len = 0;
	bool ref_done, done = false;
	bool tls = smtp_session_in_tls(&H.s);
	struct smtp_reply probe[2];

	/* The same stream in one piece: the filter must find the same end
	 * and give the same octets whatever the split (smtp_data.h). */
	smtp_data_init(&ref);
	ref_used = smtp_data_feed(&ref, in + pos, len - pos, g_ref, &ref_len, &ref_done);
	FUZZ_CHECK(ref_used <= len - pos && (ref_done || ref_used == len - pos) && ref_len <= len - pos + 1);

	smtp_session_data_begin(&H.s);
	FUZZ_CHECK(H.s.state == SMTP_DATA);
	smtp_input_data_begin(&H.inp);
	FUZZ_CHECK(H.inp.len == 0 && H.inp.size == 0);
	H.n354++;
	while (pos < len && !done) {
		size_t n = len - pos < H.chunk ? len - pos : H.chunk, used, store;
		char *out;

		if (tls && n > TLS_READ_CHUNK)
			n = TLS_READ_CHUNK;
		out = g_dout + sizeof g_dout - (n + 1); /* exactly n + 1 octets */
		used = smtp_input_data(&H.inp, in + pos, n, out, H.conf.max_message_size, &store, &done);
		FUZZ_CHECK(used <= n && (done || used == n) && store <= n + 1);
		FUZZ_CHECK(acc_len + store <= sizeof g_acc);
		memcpy(g_acc + acc_len, out, store);
		acc_len += store;
		if (done && tls) {
			/* No peeking through TLS: the rest of the piece is read. */
			smtp_input_keep(&H.inp, g_line, in + pos + used, n - used);
			FUZZ_CHECK(H.inp.len == n - used);
			pos += n;
		} else {
			pos += used;
		}
		/* No reply in the middle of message data. */
		FUZZ_CHECK(smtp_session_line(&H.s, &H.e, "NOOP", 4, false, probe) == 0);
		FUZZ_CHECK(H.s.state == SMTP_DATA);
	}
	/* What was stored is the filter's output, cut where the message was
	 * refused; the size counts the message as transferred (RFC 1870):
	 * every octet consumed but the ".\r\n" that ended it. */
	ref_size = ref_used - (ref_done ? 3 : 0);
	FUZZ_CHECK(done == ref_done && (tls || pos - *pos_io == ref_used) && H.inp.size == ref_size &&
		   acc_len <= ref_len && memcmp(g_acc, g_ref, acc_len) == 0 && H.inp.data.bare_eol == ref.bare_eol);
	if (g_trace)
		fprintf(stderr, "C: [%zu octets of message data%s]\n", pos - *pos_io, done ? "" : ", no end");
	*pos_io = pos;
	if (done) {
		enum smtp_data_status st = smtp_input_verdict(&H.inp);
		struct smtp_reply r;

		FUZZ_CHECK(st == (ref.bare_eol ? DATA_BARE_EOL
				  : ref_size > H.conf.max_message_size ? DATA_TOO_BIG : DATA_STORED));
		if (st == DATA_STORED) {
			FUZZ_CHECK(acc_len == ref_len);
			if ((rnd() & 7) == 0)
				st = DATA_STORE_FAILED;
		}
		r = smtp_session_data_end(&H.s, &H.e, st);
		H.data_ends++;
		check_render(r);
		check_tarpit(r);
		FUZZ_CHECK(!(r.flags & (RF_CLOSE | RF_DATA | RF_STARTTLS)));
		FUZZ_CHECK(r.id == (st == DATA_STORED ? R_250_QUEUED : st == DATA_BARE_EOL ? R_550_BAREEOL
							: st == DATA_TOO_BIG ? R_552_TOOBIG : R_452_STORAGE));
		if (st == DATA_STORED)
			H.stored++;
		FUZZ_CHECK(H.s.state == SMTP_CMD && !smtp_session_in_transaction(&H.s));
		check_session();
	}
}

/* After a command line: the transport's actions on its replies, which
 * may take message data from the stream (*pos). */
NOCOV static void act(const struct smtp_reply *out, unsigned n, const char *in, size_t len, size_t *pos)
{
	struct smtp_reply r = out[n - 1];

	if (r.flags & RF_CLOSE) {
		H.closed = true;
		return;
	}
	if (r.flags & RF_STARTTLS) {
		/* conn.c run_line(): no free TLS context means 454. */
		if (rnd() & 1) {
			struct smtp_reply f = smtp_session_starttls_failed(&H.s);
			if (g_trace)
				fprintf(stderr, "   (no TLS context: the 220 becomes)\n");
			FUZZ_CHECK(f.id == R_454_TLS && H.s.state == SMTP_CMD);
			check_render(f);
			check_tarpit(f);
			check_session();
			return;
		}
		if (early(*pos, len)) {
			pipe_violation();
			return;
		}
		if (g_trace)
			fprintf(stderr, "   (TLS handshake done)\n");
		smtp_input_drop(&H.inp); /* conn.c conn_flush() after the 220 */
		smtp_session_tls_started(&H.s);
		FUZZ_CHECK(H.s.state == SMTP_CMD && smtp_session_in_tls(&H.s) &&
			   !smtp_session_in_transaction(&H.s) && !smtp_session_authenticated(&H.s) &&
			   H.s.helo_len == 0 && !smtp_session_offers_starttls(&H.s, &H.e));
		check_session();
		return;
	}
	if (r.flags & RF_DATA) {
		if (early(*pos, len)) {
			pipe_violation();
			return;
		}
		/* conn.c begin_data_sink(): the store could not be opened. */
		if ((rnd() & 7) == 0) {
			struct smtp_reply f = smtp_session_data_failed(&H.s);
			if (g_trace)
				fprintf(stderr, "   (store cannot open: the 354 becomes)\n");
			FUZZ_CHECK(f.id == R_452_STORAGE && H.s.state == SMTP_CMD &&
				   !smtp_session_in_transaction(&H.s));
			check_render(f);
			check_session();
			return;
		}
		run_data(in, len, pos);
	}
}

/* One read into the buffer the framing names: at most the read size, and
 * from a client that waits for each reply, never past a line's LF. */
NOCOV static void read_some(const char *in, size_t len, size_t *pos)
{
	char *at;
	size_t room = smtp_input_room(&H.inp, g_line, (char *)H.s.env->mbox, &at), n = len - *pos;
	const char *nl;

	/* Both buffers full and no line in them cannot happen: a full line
	 * buffer is a line, a skip or an AUTH line moved on; a full AUTH
	 * buffer is a line. */
	FUZZ_CHECK(room > 0);
	if (n > room)
		n = room;
	if (n > H.chunk)
		n = H.chunk;
	if (!H.pipe_violations && (nl = memchr(in + *pos, '\n', n)) != NULL)
		n = (size_t)(nl - (in + *pos)) + 1;
	memcpy(at, in + *pos, n);
	smtp_input_got(&H.inp, n);
	*pos += n;
}

NOCOV static void run_stream(const char *in, size_t len)
{
	size_t pos = 0;

	while (!H.closed) {
		struct smtp_line l;
		struct smtp_reply out[2];
		unsigned n;

		FUZZ_CHECK(H.s.state == SMTP_CMD);
		if ((rnd() & 15) == 0) /* a reload: new transactions use the new table */
			H.e.rcpts = g_rcpts[(rnd() >> 4) & 1];
		if (!smtp_input_line(&H.inp, g_line, (char *)H.s.env->mbox, &H.s, H.e.users != NULL, &l)) {
			if (pos == len)
				break; /* an incomplete line at the end: the server waits */
			read_some(in, len, &pos);
			continue;
		}
		FUZZ_CHECK(l.len <= (l.text == g_line ? SMTP_LINE_MAX : AUTH_LINE_MAX));
		FUZZ_CHECK(l.too_long || memchr(l.text, '\n', l.len) == NULL);
		n = run_line(l.text, l.len, l.too_long, out);
		smtp_input_consume(&H.inp, g_line, (char *)H.s.env->mbox, &l);
		act(out, n, in, len, &pos);
		if (H.s.state == SMTP_DATA) {
			FUZZ_CHECK(pos == len); /* the stream ended inside message data */
			break;
		}
	}
	if (H.closed) {
		struct smtp_reply probe[2];
		FUZZ_CHECK(H.s.state == SMTP_CLOSING);
		FUZZ_CHECK(smtp_session_line(&H.s, &H.e, "QUIT", 4, false, probe) == 0);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned long verify0 = g_pbkdf2_calls;

	if (size < 4 || size > INPUT_MAX)
		return 0;
	setup(data);
	g_allocs = g_frees = 0;
	g_armed = 1;
	run_stream((const char *)data + 4, size - 4);
	/* conn.c conn_close(): the slot is released with a reset. */
	smtp_session_reset(&H.s);
	g_armed = 0;
	FUZZ_CHECK(H.s.table == NULL);
	check_refs();
	/* Nothing allocated per connection; the harness's users_verify()
	 * PBKDF2 context (mbedTLS allocates it) is the only allocation, and it
	 * is freed. */
	FUZZ_CHECK(g_allocs == g_frees);
#ifndef FUZZ_REAL_PBKDF2
	FUZZ_CHECK(g_allocs == g_verify_allocs * (g_pbkdf2_calls - verify0));
#else
	(void)verify0;
#endif
	return 0;
}
