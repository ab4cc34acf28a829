/* conf_int: what the parts of the configuration loader share (config.c
 * the reader, conf_value.c the values, conf_field.c the show/set fields,
 * conf_host.c the host checks, conf_connector.c the connectors,
 * conf_relay.c the relays); not for other modules.
 *
 * Promises: one key table (conf_keys, conf_conn_keys) describes every INI
 * key once: its name, type, range, field offset and Exchange name, and
 * each part is table-driven from it (smaller on MIPS16 than code per key).
 */
#ifndef TARPITD_CONF_INT_H
#define TARPITD_CONF_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "ini_line.h"
#include "log.h"
#include "smtp_client.h"
#include "util.h"

/* starttls is stored as the index of its word: no, opportunistic, required. */
_Static_assert(SC_TLS_NO == 0 && SC_TLS_OPPORTUNISTIC == 1 && SC_TLS_REQUIRED == 2, "enum sc_tls_policy");

#define DAY 86400u
#define KIB 1024u

enum ktype {
	K_UINT,
	K_TIMESPAN,
	K_SIZE,
	K_BOOL,
	K_HOST,   /* printable ASCII, no spaces, "" = default */
	K_BANNER, /* printable ASCII with spaces, "" = default */
	K_PATH,   /* min 1: must not be empty; max: its enum path_role */
	K_USER,
	K_GROUP,  /* a group name, as K_USER */
	K_LOG,
	K_LEVEL,
	K_BINDINGS,
	K_RANGES,
	K_BANCMD, /* a command line split into argv words */
	K_TLSVER, /* 1.2 | 1.3, stored as 12 | 13 */
	K_TLSMODE, /* starttls | implicit, stored as a bool: implicit */
	K_RHOST,   /* a relay's host: ip:port, [ipv6]:port or unix:/path */
	K_PROTO,   /* smtp | lmtp, stored as a bool: lmtp */
	K_DOMAINS, /* a relay's domains: a list, or * alone */
	K_RTLS,    /* no | opportunistic | required: enum sc_tls_policy */
};

/* What a path names, so the checks of SPEC §3 are table-driven: a file
 * the daemon reads must be a regular file; `check` and `run` also look
 * at the spool, pidfile and control socket as the server would. */
enum path_role { P_FILE = 1, P_SPOOL, P_PIDFILE, P_CONTROL, P_SECRET };

/* The named sections come before S_CONNECTOR (their arrays are sized by
 * it); the quoted ones, connectors and relays, after it. */
enum sect { S_NONE, S_SERVER, S_TLS, S_AUTH, S_HARVEST, S_CONNECTOR, S_RELAY, S_SKIP };

struct key {
	const char *name;
	const char *exch; /* Exchange name for show/set, NULL = none */
	uint32_t min, max;
	uint16_t off;     /* of the field in its section's struct */
	uint8_t type;     /* enum ktype */
	uint8_t sect;     /* enum sect */
};

/* The largest section struct is [server] with its four paths. */
_Static_assert(sizeof(struct server_conf) <= UINT16_MAX, "key offsets are 16-bit");

#define KEY(s, st, n, t, f, lo, hi, x) { n, x, lo, hi, offsetof(st, f), t, s }
#define SK(n, t, f, lo, hi) KEY(S_SERVER, struct server_conf, n, t, f, lo, hi, NULL)
#define TK(n, t, f, lo, hi) KEY(S_TLS, struct tls_conf, n, t, f, lo, hi, NULL)
#define AK(n, t, f, lo, hi) KEY(S_AUTH, struct auth_conf, n, t, f, lo, hi, NULL)
#define HK(n, t, f, lo, hi) KEY(S_HARVEST, struct harvest_conf, n, t, f, lo, hi, NULL)
#define CK(n, t, f, lo, hi, x) KEY(S_CONNECTOR, struct connector_conf, n, t, f, lo, hi, x)
#define RK(n, t, f, lo, hi) KEY(S_RELAY, struct relay_conf, n, t, f, lo, hi, NULL)
_Static_assert(sizeof(struct relay_conf) <= UINT16_MAX, "key offsets are 16-bit");

/* Keys of every section but the connectors and relays, the connector keys
 * in the order of SPEC §3 (also the order of the show/set fields), and the
 * relay keys. The counts are checked against the tables where they are
 * defined (config.c). */
enum { CONF_NKEYS = 23, CONF_NCONN = 23, CONF_NRELAY = 12 };
extern const struct key conf_keys[CONF_NKEYS];
extern const struct key conf_conn_keys[CONF_NCONN];
extern const struct key conf_relay_keys[CONF_NRELAY];
/* The connector and relay keys the checks after the last line name
 * (their index). */
enum { C_BINDINGS = 1, C_RANGES = 2, C_CONN_TIMEOUT = 11, C_GREETING = 16, C_TLS_MODE = 19, C_REQUIRE_TLS = 20 };
enum { R_HOST = 0, R_DOMAINS = 2, R_STARTTLS = 3, R_CA_FILE = 4, R_TLS_NAME = 5, R_AUTH_USER = 6,
       R_PASSWORD_FILE = 7, R_RETRY_MIN = 9, R_RETRY_MAX = 10 };
extern const char *const conf_sect_name[S_CONNECTOR];
extern const uint16_t conf_sect_base[S_CONNECTOR];
extern const char conf_default_ranges[];

/* Per-connector parse state that the loaded config does not keep. */
struct conn_extra {
	bool bad_list[2];   /* bindings, remote_ip_ranges had a bad entry */
	int seen[CONF_NCONN];    /* line a key was given on, 0 = not given */
	int binding_line[CONF_MAX_BINDINGS];
	int range_line[CONF_MAX_RANGES]; /* 0 = the default ranges */
};

/* Per-relay parse state: the line each key was given on, 0 = not given. */
struct relay_extra {
	int seen[CONF_NRELAY];
};

struct pstate {
	bool bad_connector; /* a connector header was refused: no cascade */
	/* What the reader handed inih last, to catch lines it swallowed, and
	 * what an indented line would continue. */
	bool line_pending;
	const struct key *last_key; /* continuation target, NULL = ignore */

	struct config *c;
	FILE *f;
	int lineno;
	struct ini_ctx ini;
	struct errlist errs; /* its path is the INI file's */
	int read_errno; /* 0, or the errno of a read error */

	enum sect sect;
	struct connector_conf *conns; /* malloc'd, nconns of them */
	struct conn_extra *extra;     /* parallel to conns */
	unsigned nconns;
	struct connector_conf *conn;  /* the current one, NULL outside */
	struct conn_extra *cx;
	struct relay_conf *relays;    /* malloc'd, nrelays of them */
	unsigned nrelays;
	struct relay_conf *relay;     /* the current one, NULL outside */
	struct relay_extra *rx;
	struct relay_extra rextra[CONF_MAX_RELAYS]; /* parallel to relays */

	int seen[CONF_NKEYS];              /* line a key was given on, 0 = not given */
	int sect_line[S_CONNECTOR];   /* of the section headers, 0 = absent */
};

/* ---- messages (config.c) ---- */

void conf_err_at(struct pstate *st, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* An error in the value of key k on the current line: "k: message". */
void conf_kerr(struct pstate *st, const struct key *k, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* "k: 'value' is not a ..." for k's type. */
void conf_bad_value(struct pstate *st, const struct key *k, const char *v);
/* The line key k (not a connector key) was given on, else its section
 * header's. */
int conf_key_line(const struct pstate *st, const struct key *k);
/* Values quoted back in messages are cut and made printable, so a broken
 * file cannot flood or garble the terminal it is reported on. */
const char *conf_echo(char *buf, size_t len, const char *s);
#define ECHO_BUF LOG_ECHO_BUF

/* p made relative to the INI file's directory, unless absolute or
 * empty; an error at line when it gets too long (config.c). */
void conf_resolve_path(struct pstate *st, char *p, const char *key, int line);


/* ---- what `run` would refuse on this host (conf_host.c) ---- */

/* The user exists; the pidfile and control socket have their directory
 * and name no file but tarpitd's own; the spool can be made; every
 * address bound is one an interface has. Each error at its INI line. */
void conf_check_host(struct pstate *st);

/* ---- values (conf_value.c) ---- */

static inline bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* A count, TimeSpan or size as the INI file writes it. */
void conf_format_number(unsigned type, uint64_t v, char *buf, size_t len);
/* Printable ASCII (spaces only if asked), shorter than CONF_TEXT_MAX. */
bool conf_text_ok(const char *s, bool spaces);
/* Checks v for key k and stores it in its field of base (the section's
 * struct), or reports why not. */
void conf_apply(struct pstate *st, const struct key *k, const char *v, char *base);
/* One line's worth of a list value (bindings, remote_ip_ranges), the
 * first or a continuation. */
void conf_apply_list(struct pstate *st, const struct key *k, const char *v);
/* One line's worth of a relay's domains (the first or a continuation):
 * lower-cased and appended to st->relay->domains. */
void conf_apply_domains(struct pstate *st, const struct key *k, const char *v);

/* ---- connectors (conf_connector.c) ---- */

/* After the last line: each connector's required keys, the keys that
 * need each other and its defaults from [server]; then the checks across
 * connectors (wildcard and specific bindings on one port, overlapping
 * ranges on a shared binding). No connector at all is an error. */
void conf_finish_connectors(struct pstate *st);
/* 0.0.0.0 or ::. */
bool conf_is_wildcard(const struct binding *b);

/* ---- relays (conf_relay.c) ---- */

/* After the last line: each relay's required keys, the keys that need
 * each other, its paths (relative to the INI), its CA file and password
 * file (read here), then the checks across relays (a domain in one relay
 * only, one smarthost). */
void conf_finish_relays(struct pstate *st);

#endif
