/* admin_show: `tarpitd show` (see admin.h). */
#include "admin_int.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "util.h"

/* ---- show ------------------------------------------------------------------- */

int admin_parse_fields(const char *list, unsigned *fields, size_t max, size_t *n, char *bad,
		       size_t badlen)
{
	const char *p = list;

	*n = 0;
	if (bad && badlen)
		bad[0] = '\0';
	for (;;) {
		const char *comma = strchr(p, ',');
		const char *a = p, *b = comma ? comma : p + strlen(p);
		char item[CONF_NAME_MAX + 8];
		size_t len;
		int f = -1;

		while (a < b && util_is_ws(*a))
			a++;
		while (b > a && util_is_ws(b[-1]))
			b--;
		len = (size_t)(b - a);
		if (len > sizeof item - 1)
			len = sizeof item - 1;
		memcpy(item, a, len);
		item[len] = '\0';
		if (len > 0 && (size_t)(b - a) < CONF_NAME_MAX)
			f = conf_field_find(item);
		if (f < 0) {
			if (bad && badlen)
				log_echo(bad, badlen, item, len);
			return -1;
		}
		if (*n >= max)
			return -2;
		fields[(*n)++] = (unsigned)f;
		if (!comma)
			return 0;
		p = comma + 1;
	}
}

/* Padding is held back until something follows it, so no line ends in
 * spaces. */
static void cell(FILE *out, const char *s, size_t width, bool last, size_t *pending)
{
	size_t n = strlen(s);

	if (n) {
		for (; *pending; (*pending)--)
			fputc(' ', out);
		fputs(s, out);
	}
	if (!last)
		*pending += width + 2 - n;
}

int admin_print_table(FILE *out, const struct config *cfg, const char *name, const unsigned *fields,
		      size_t nfields)
{
	static char val[CONF_FIELD_MAX];
	size_t width[ADMIN_MAX_FIELDS] = { 0 };
	size_t i, pending;
	bool any = false;
	int pass, r;

	if (nfields > ADMIN_MAX_FIELDS)
		nfields = ADMIN_MAX_FIELDS;
	/* Rows -2 (titles) and -1 (dashes), then the connectors: measured
	 * in the first pass, printed in the second. */
	for (pass = 0; pass < 2; pass++) {
		if (pass == 1 && !any)
			return -1;
		for (r = -2; r < (int)cfg->nconnectors; r++) {
			if (r >= 0 && name && strcasecmp(cfg->connectors[r].name, name) != 0)
				continue;
			any |= r >= 0;
			pending = 0;
			for (i = 0; i < nfields; i++) {
				const char *title = conf_field_title(fields[i]);
				const char *s = val;
				size_t n;

				if (r == -2) {
					s = title;
				} else if (r == -1) {
					n = strlen(title);
					memset(val, '-', n);
					val[n] = '\0';
				} else {
					conf_field_format(&cfg->connectors[r], fields[i], val, sizeof val);
				}
				n = strlen(s);
				if (pass == 0 && n > width[i])
					width[i] = n;
				if (pass == 1)
					cell(out, s, width[i], i + 1 == nfields, &pending);
			}
			if (pass == 1)
				fputc('\n', out);
		}
	}
	return 0;
}

int admin_show(const char *path, int argc, char **argv)
{
	unsigned fields[ADMIN_MAX_FIELDS];
	size_t nfields = 0;
	const char *name = NULL, *list = NULL;
	char bad[LOG_ECHO_BUF];
	int i, r;

	for (i = 0; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--fields") == 0 || strncmp(a, "--fields=", 9) == 0) {
			if (list)
				return admin_fail(2, "show: --fields given twice");
			if (a[8] == '=')
				list = a + 9;
			else if (i + 1 < argc)
				list = argv[++i];
			else
				return admin_fail(2, "show: --fields needs a list of fields (F,..)");
		} else if (a[0] == '-' && a[1] == '-') {
			return admin_unknown_option("show", a);
		} else if (name) {
			return admin_fail(2, "show takes at most one connector NAME ('%s' is extra)", admin_echo(a));
		} else {
			name = a;
		}
	}
	r = admin_parse_fields(list ? list : "Name,Enabled,Bindings,RemoteIPRanges,TarpitInterval", fields,
			       ADMIN_MAX_FIELDS, &nfields, bad, sizeof bad);
	if (r == -1 && bad[0])
		return admin_fail(2, "show: unknown field '%s' (fields are Name and the connector keys, by INI or "
			       "Exchange name)", bad);
	if (r == -1)
		return admin_fail(2, "show: empty field name in --fields");
	if (r == -2)
		return admin_fail(2, "show: more than %d fields", ADMIN_MAX_FIELDS);
	if (admin_load_or_report(path) != 0)
		return 1;
	r = admin_print_table(stdout, &admin_cfg, name, fields, nfields);
	config_free(&admin_cfg);
	if (r != 0)
		return admin_no_connector(name);
	return admin_flush_stdout("show");
}
