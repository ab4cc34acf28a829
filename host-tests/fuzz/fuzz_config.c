/* fuzz_config: the INI file through config_load(), and the value parsers.
 *
 * The first octet chooses: 0-3 the rest is an INI file; 4 parse_timespan,
 * 5 parse_size, 6 parse_bool, 7 parse_uint (8 octets of min and max, then
 * the text).
 *
 * Checks: a failed load says why on "FILE:LINE:" lines; a loaded config
 * is within its documented ranges, every connector field formats, and the
 * connectors written back as INI with conf_field_format() (what `tarpitd
 * set` does) load again to the same fields. Every value that parses
 * formats back to text that parses to the same value.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "iprange.h"

#include "fuzz_util.h"

#define ERR_MAX 8192

static char g_err[ERR_MAX];
static char g_val[CONF_FIELD_MAX], g_val2[CONF_FIELD_MAX];
static char g_rt_path[300];
static char *g_ini; /* the round-trip INI text */
static size_t g_ini_len, g_ini_cap;

NOCOV static void rt_cleanup(void)
{
	unlink(g_rt_path);
}

NOCOV static void ini_put(const char *s, size_t n)
{
	if (g_ini_len + n + 1 > g_ini_cap) {
		size_t cap = (g_ini_len + n + 1) * 2;
		char *p = realloc(g_ini, cap);
		FUZZ_CHECK(p != NULL);
		g_ini = p;
		g_ini_cap = cap;
	}
	memcpy(g_ini + g_ini_len, s, n);
	g_ini_len += n;
	g_ini[g_ini_len] = 0;
}

NOCOV static void ini_puts(const char *s)
{
	ini_put(s, strlen(s));
}

NOCOV static bool text_fits(const char *s, size_t max)
{
	return memchr(s, 0, max) != NULL;
}

NOCOV static void check_loaded(const struct config *c)
{
	FUZZ_CHECK(c->nconnectors <= CONF_MAX_CONNECTORS);
	FUZZ_CHECK(c->nconnectors == 0 || c->connectors != NULL);
	FUZZ_CHECK(text_fits(c->server.hostname, sizeof c->server.hostname));
	FUZZ_CHECK(c->server.max_connections >= 1);
	FUZZ_CHECK(text_fits(c->server.recipients, sizeof c->server.recipients) && c->server.recipients[0]);
	FUZZ_CHECK(text_fits(c->server.spool, sizeof c->server.spool) && c->server.spool[0]);
	FUZZ_CHECK(!c->tls.enabled || (c->tls.certificate[0] && c->tls.key[0] &&
				       c->tls.max_sessions >= 1 && c->tls.max_sessions <= 1024));
	FUZZ_CHECK(!c->auth.enabled || c->auth.users[0]);
	for (unsigned i = 0; i < c->nconnectors; i++) {
		const struct connector_conf *cc = &c->connectors[i];

		FUZZ_CHECK(text_fits(cc->name, sizeof cc->name) && cc->name[0]);
		FUZZ_CHECK(text_fits(cc->fqdn, sizeof cc->fqdn) && cc->fqdn[0]);
		FUZZ_CHECK(text_fits(cc->banner, sizeof cc->banner) && cc->banner[0]);
		FUZZ_CHECK(cc->nbindings >= 1 && cc->nbindings <= CONF_MAX_BINDINGS);
		FUZZ_CHECK(cc->nranges >= 1 && cc->nranges <= CONF_MAX_RANGES);
		FUZZ_CHECK(cc->tarpit_interval <= 600 && cc->greeting_delay <= 600);
		FUZZ_CHECK(cc->max_message_size >= 1024 && cc->max_message_size <= 2ull * 1024 * 1024 * 1024);
		FUZZ_CHECK(cc->max_recipients_per_message >= 1 && cc->max_recipients_per_message <= 1000);
		FUZZ_CHECK(cc->connection_timeout >= 1 && cc->connection_inactivity_timeout >= 1);
		FUZZ_CHECK(cc->max_auth_failures <= 1000);
		FUZZ_CHECK(!cc->require_tls || (c->tls.enabled && cc->starttls));
		for (unsigned j = 0; j < cc->nbindings; j++)
			FUZZ_CHECK(cc->bindings[j].v6 != ip_is_v4(&cc->bindings[j].addr));
		for (unsigned j = 0; j < cc->nranges; j++)
			FUZZ_CHECK(ip_cmp(&cc->ranges[j].lo, &cc->ranges[j].hi) <= 0 &&
				   ip_is_v4(&cc->ranges[j].lo) == ip_is_v4(&cc->ranges[j].hi));
		for (unsigned j = 0; j < i; j++)
			FUZZ_CHECK(strcmp(cc->name, c->connectors[j].name) != 0);
		for (unsigned f = 0; f < conf_field_count(); f++) {
			size_t n = conf_field_format(cc, f, g_val, sizeof g_val);
			FUZZ_CHECK(n < sizeof g_val && strlen(g_val) == n);
			FUZZ_CHECK(conf_field_title(f) != NULL);
			FUZZ_CHECK(conf_field_find(conf_field_title(f)) == (int)f);
			FUZZ_CHECK(f == 0 || conf_field_find(conf_field_key(f)) == (int)f);
			FUZZ_CHECK(memchr(g_val, '\n', n) == NULL && memchr(g_val, '\r', n) == NULL);
		}
	}
}

/* The connectors written back field by field, under a fixed [server]. */
NOCOV static void round_trip(const struct config *c)
{
	struct config d;
	char err[ERR_MAX];

	g_ini_len = 0;
	ini_puts("[server]\nhostname = fuzz.test\nrecipients = r\nspool = s\n");
	if (c->tls.enabled)
		ini_puts("[tls]\ncertificate = c\nkey = k\n");
	if (c->auth.enabled)
		ini_puts("[auth]\nusers = u\n");
	for (unsigned i = 0; i < c->nconnectors; i++) {
		const struct connector_conf *cc = &c->connectors[i];

		ini_puts("[connector \"");
		ini_puts(cc->name);
		ini_puts("\"]\n");
		for (unsigned f = 1; f < conf_field_count(); f++) {
			ini_puts(conf_field_key(f));
			ini_puts(" = ");
			conf_field_format(cc, f, g_val, sizeof g_val);
			ini_puts(g_val);
			ini_puts("\n");
		}
	}
	fuzz_write_file(g_rt_path, (const uint8_t *)g_ini, g_ini_len, 0600);
	if (config_load(&d, g_rt_path, err, sizeof err) != 0) {
		unlink(g_rt_path);
		fprintf(stderr, "round trip refused:\n%s\n--- written ---\n%s\n", err, g_ini);
		FUZZ_CHECK(!"the formatted connectors load again");
	}
	unlink(g_rt_path);
	FUZZ_CHECK(d.nconnectors == c->nconnectors);
	for (unsigned i = 0; i < c->nconnectors; i++) {
		for (unsigned f = 0; f < conf_field_count(); f++) {
			conf_field_format(&c->connectors[i], f, g_val, sizeof g_val);
			conf_field_format(&d.connectors[i], f, g_val2, sizeof g_val2);
			if (strcmp(g_val, g_val2) != 0) {
				fprintf(stderr, "field %s: '%s' became '%s'\n", conf_field_title(f), g_val, g_val2);
				FUZZ_CHECK(!"a field survives the round trip");
			}
		}
	}
	config_free(&d);
}

NOCOV static void do_ini(const uint8_t *data, size_t size)
{
	const char *path = fuzz_tmp_file("config");
	struct config c;

	if (!g_rt_path[0]) {
		snprintf(g_rt_path, sizeof g_rt_path, "%s.rt", path);
		atexit(rt_cleanup);
	}
	fuzz_write_file(path, data, size, 0600);
	memset(g_err, 0x5a, sizeof g_err);
	if (config_load(&c, path, g_err, sizeof g_err) != 0) {
		unlink(path);
		fuzz_check_errors(g_err, sizeof g_err, path);
		return;
	}
	unlink(path); /* read: a crash from here on leaves nothing in /dev/shm */
	check_loaded(&c);
	round_trip(&c);
	config_free(&c);
}

NOCOV static void do_timespan(const char *s, const uint8_t *raw, size_t rawlen)
{
	uint32_t v, w;
	char t[64];
	size_t n;

	if (parse_timespan(s, &v) == 0) {
		n = format_timespan(v, t, sizeof t);
		FUZZ_CHECK(n > 0 && strlen(t) == n);
		FUZZ_CHECK(parse_timespan(t, &w) == 0 && w == v);
	}
	/* Every value formats to something that parses back. */
	if (rawlen >= 4) {
		memcpy(&v, raw, 4);
		n = format_timespan(v, t, sizeof t);
		FUZZ_CHECK(n > 0 && strlen(t) == n);
		FUZZ_CHECK(parse_timespan(t, &w) == 0 && w == v);
		FUZZ_CHECK(format_timespan(v, t, n) == 0 && t[0] == 0); /* too small: "" */
	}
}

NOCOV static void do_size(const char *s)
{
	static int field = -1;
	struct connector_conf cc;
	uint64_t v, w;
	size_t n;

	if (parse_size(s, &v) != 0)
		return;
	if (field < 0)
		field = conf_field_find("max_message_size");
	FUZZ_CHECK(field > 0);
	memset(&cc, 0, sizeof cc);
	cc.max_message_size = v;
	n = conf_field_format(&cc, (unsigned)field, g_val, sizeof g_val);
	FUZZ_CHECK(n > 0 && strlen(g_val) == n);
	FUZZ_CHECK(parse_size(g_val, &w) == 0 && w == v);
}

NOCOV static void do_bool(const char *s)
{
	bool v;

	if (parse_bool(s, &v) != 0)
		return;
	FUZZ_CHECK(strlen(s) <= 5);
}

NOCOV static void do_uint(const uint8_t *data, size_t size)
{
	uint32_t min, max, v, w;
	char t[16], *s;

	if (size < 8)
		return;
	memcpy(&min, data, 4);
	memcpy(&max, data + 4, 4);
	s = fuzz_cstr(data + 8, size - 8);
	if (parse_uint(s, min, max, &v) == 0) {
		FUZZ_CHECK(v >= min && v <= max);
		snprintf(t, sizeof t, "%u", (unsigned)v);
		FUZZ_CHECK(parse_uint(t, min, max, &w) == 0 && w == v);
	}
	free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;

	if (size < 1)
		return 0;
	switch (data[0] % 8) {
	case 0: case 1: case 2: case 3:
		do_ini(data + 1, size - 1);
		return 0;
	case 7:
		do_uint(data + 1, size - 1);
		return 0;
	default:
		break;
	}
	s = fuzz_cstr(data + 1, size - 1);
	switch (data[0] % 8) {
	case 4: do_timespan(s, data + 1, size - 1); break;
	case 5: do_size(s); break;
	default: do_bool(s); break;
	}
	free(s);
	return 0;
}
