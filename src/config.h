/* config: the INI file of SPEC §3, parsed with inih.
 *
 * Promises: config_load() either fills a complete, validated struct config
 * (defaults applied, ranges checked, relative paths made relative to the
 * INI file's directory, connectors checked against each other: unique
 * names, nesting RemoteIPRanges on shared bindings, no wildcard/specific
 * bind clash, greeting_delay below connection_timeout, every file it
 * names for reading a regular one; relays checked against each other: a
 * domain in one relay only, one smarthost; each relay's password read
 * from its 0600 file) or returns -1 with one
 * "FILE:LINE: message" line per error found. It never blocks on a file
 * (O_NONBLOCK) and never changes one; config_load_host() also asks the
 * host what `run` would find there. Allocation happens only here (at start and on reload),
 * never while serving. The value parsers are exported for the CLI and the
 * fuzzers.
 */
#ifndef TARPITD_CONFIG_H
#define TARPITD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iprange.h"
#include "limits.h"
#include "log.h"

/* The scalars come first: the daemon reads them per connection and per
 * command, and small targets (MIPS16, Thumb) reach the first 128 octets
 * of a struct (octets: the first 32) with shorter instructions. */
struct connector_conf {
	bool enabled;
	bool tarpit_all_after_unknown;
	bool pipelining;
	bool starttls;          /* offered when [tls] is configured */
	bool tls_implicit;      /* tls_mode = implicit: TLS from the first octet (RFC 8314) */
	bool require_tls;       /* MAIL before STARTTLS: 530 5.7.0 */
	bool auth;              /* offered when [auth] is configured */
	bool auth_requires_tls; /* AUTH only after STARTTLS */
	uint32_t tarpit_interval;   /* seconds, 0..600 */
	uint32_t max_recipients_per_message;
	uint32_t max_inbound_connections;
	uint32_t max_inbound_connections_per_source;
	uint32_t connection_timeout;            /* seconds */
	uint32_t connection_inactivity_timeout; /* seconds */
	uint32_t max_protocol_errors;           /* 0 = no limit */
	uint32_t max_unknown_recipients;        /* 0 = no limit */
	uint32_t max_auth_failures;             /* 0 = no limit */
	uint32_t greeting_delay;                /* seconds */
	unsigned nbindings;
	unsigned nranges;
	int line; /* line of the section header, for error messages */
	uint64_t max_message_size;  /* bytes */
	char name[CONF_NAME_MAX];
	char fqdn[CONF_TEXT_MAX];   /* "" = [server] hostname (filled in by load) */
	char banner[CONF_TEXT_MAX]; /* "" = "<fqdn> ESMTP" (filled in by load) */
	struct binding bindings[CONF_MAX_BINDINGS];
	struct ip_range ranges[CONF_MAX_RANGES];
};

/* spool_gid when there is no spool_group (as chown's "no change"). */
#define CONF_NO_GID UINT32_MAX

struct server_conf {
	uint32_t max_connections;
	uint32_t shutdown_timeout; /* seconds: SIGTERM's bound on DATA in progress */
	bool log_syslog;
	enum log_level log_level;
	uint32_t max_queued; /* forwarding queue entries, 1..QUEUE_MAX_QUEUED (default 1024) */
	uint32_t spool_gid; /* spool_group's gid, found by config_load_host; else CONF_NO_GID */
	char hostname[CONF_TEXT_MAX];
	char recipients[PATH_MAX];
	char spool[PATH_MAX];
	char user[64];      /* "" = keep the starting user */
	char spool_group[64]; /* "" = none: the spool is the daemon user's alone (SPEC §5) */
	char pidfile[PATH_MAX]; /* "" = none */
	char control[PATH_MAX]; /* UNIX socket for stats, "" = none */
};

/* [tls]: present = STARTTLS possible; paths resolved like the others. */
struct tls_conf {
	bool enabled;
	uint32_t max_sessions; /* 1..1024 */
	uint32_t max_sessions_per_source; /* 1..1024: one source's share of the pool */
	uint32_t min_version;  /* 12 | 13 (13 only where the mbedTLS build has it) */
	bool session_tickets;  /* RFC 5077 / TLS 1.3 tickets, key in RAM */
	int certificate_line, key_line; /* INI lines, for config_tls_error (0: none) */
	char certificate[PATH_MAX];
	char key[PATH_MAX];
};

/* [auth]: present = AUTH possible. */
struct auth_conf {
	bool enabled;
	char users[PATH_MAX];
};

/* [harvest] (SPEC §3, §8). Without the section the defaults apply (the
 * table is on); table_size = 0 turns the whole feature off, ban command
 * included. ban_command is split once, at load, on spaces and tabs: no
 * shell and no quoting, so no word can ever be reinterpreted. Word i is
 * the string at ban_buf + ban_off[i]; word 0 is an absolute path; word
 * ban_addr is exactly "%a", to be replaced by the address. */
struct harvest_conf {
	bool enabled;        /* table_size > 0 */
	uint32_t table_size; /* 0..1,000,000 entries */
	uint32_t threshold;  /* 1..1,000,000 unknown recipients */
	uint32_t window;     /* seconds, 1 s .. 7 days */
	unsigned ban_argc; /* 0 = no ban command */
	unsigned ban_addr; /* index of the "%a" word, when ban_argc > 0 */
	uint16_t ban_off[CONF_BAN_WORDS];
	char ban_buf[CONF_BAN_MAX];
};

/* [relay "NAME"] (SPEC §3, §10): one next hop for forwarding. host is
 * parsed at load: an address and port (no DNS, SPEC §9) or, with
 * is_unix, a path (LMTP on the router). domains is the list as written,
 * lower-cased, each domain NUL-terminated one after another (ndomains of
 * them); smarthost is `domains = *` (then ndomains is 0). The password
 * is read from auth_password_file at load (mode 0600, one line), so a
 * reload picks up a new one and the loop never opens the file. */
struct relay_conf {
	bool lmtp;           /* protocol = lmtp */
	bool smarthost;      /* domains = *: authenticated mail to non-local domains */
	bool is_unix;        /* host = unix:/path */
	uint8_t starttls;    /* enum sc_tls_policy (smtp_client.h): no, opportunistic, required */
	uint32_t max_connections;    /* 1..RELAY_CONNS_MAX parallel sessions */
	uint32_t retry_min;          /* seconds, 1..3600 */
	uint32_t retry_max;          /* seconds, retry_min..86400 */
	uint32_t max_queue_lifetime; /* seconds, 60..30 days */
	unsigned ndomains;
	int line;                    /* of the section header */
	int domains_line;            /* of the domains key: route_check's messages */
	struct binding addr;         /* host as ip:port, when !is_unix (v6: [ipv6]:port) */
	char name[CONF_NAME_MAX];
	char host[PATH_MAX];         /* as written: for messages and `show` */
	char unix_path[108];         /* sun_path, when is_unix */
	char tls_name[CONF_TEXT_MAX];  /* "" = none */
	char auth_user[CONF_TEXT_MAX]; /* "" = no AUTH */
	char auth_password[CONF_TEXT_MAX];
	char ca_file[PATH_MAX];        /* "" = none */
	char auth_password_file[PATH_MAX];
	char domains[RELAY_DOMAINS_MAX];
};

/* Small and often used members first, the paths last: see
 * struct connector_conf. */
struct config {
	struct connector_conf *connectors; /* malloc'd array */
	unsigned nconnectors;
	struct relay_conf *relays;         /* malloc'd array, NULL when none */
	unsigned nrelays;
	struct harvest_conf harvest;
	struct server_conf server;
	struct tls_conf tls;
	struct auth_conf auth;
	char path[PATH_MAX];
};

/* 0 ok; -1 with errors in err (lines joined by '\n', NUL-terminated,
 * truncated to errlen). On error *c holds nothing to free. */
int config_load(struct config *c, const char *path, char *err, size_t errlen);
/* config_load, and then what `run` would refuse on this host (SPEC §3):
 * an unknown user, a pidfile or control socket in a missing directory or
 * naming a file that is not tarpitd's own pidfile or socket, a spool that
 * cannot be made, an address no interface has, a spool_group this system
 * does not know (and fills in spool_gid). For `check` and for `run`
 * before it starts, never for a reload (the server's own files and
 * sockets exist then). */
int config_load_host(struct config *c, const char *path, char *err, size_t errlen);
void config_free(struct config *c);
/* A message of tls_open() or tls_check_files() about the [tls] files,
 * prefixed in place with "FILE:LINE: " of the key whose file it names
 * (SPEC §2: errors name FILE:LINE where a file is at fault). */
void config_tls_error(const struct config *c, char *err, size_t len);

/* Value parsers: 0 ok, -1 invalid. */
int parse_timespan(const char *s, uint32_t *seconds); /* [d.]hh:mm:ss */
size_t format_timespan(uint32_t seconds, char *buf, size_t len); /* hh:mm:ss or d.hh:mm:ss */
int parse_size(const char *s, uint64_t *bytes);     /* 1048576, 10MB, 512 KB */
int parse_bool(const char *s, bool *v);            /* yes/no true/false on/off 1/0 */
int parse_uint(const char *s, uint32_t min, uint32_t max, uint32_t *v);

/* Connector fields for `show` and `set` (SPEC §2): field 0 is the
 * pseudo-field Name (the section name), then every connector key in the
 * order of SPEC §3. A field is named by its INI key or its Exchange name,
 * case-insensitively and ignoring '_'. */
unsigned conf_field_count(void);
int conf_field_find(const char *name);     /* index, or -1 */
const char *conf_field_key(unsigned i);    /* INI key; NULL for Name */
const char *conf_field_title(unsigned i);  /* Exchange name, else INI key */
/* The value in INI syntax (hh:mm:ss, True/False, 10MB, "a, b" lists);
 * keys this version does not have show their SPEC default. Writes at
 * most len octets, NUL-terminated, and returns the full length, as
 * snprintf does. */
size_t conf_field_format(const struct connector_conf *cc, unsigned i, char *buf, size_t len);

#endif
