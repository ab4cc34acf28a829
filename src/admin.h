/* admin: the `show`, `set`, `stats`, `harvest` and `passwd` subcommands of SPEC §2.
 *
 * Promises: each admin_* command takes the arguments after the subcommand
 * (without -c FILE), returns the exit status (0 ok, 1 failure, 2 usage
 * error) and writes errors to stderr, one line each. `set` changes the
 * INI file only after the whole result has passed config_load, rewrites
 * only the lines it changes (everything else byte for byte), and replaces
 * the file atomically. This is command-line code, never run by the
 * daemon: it allocates (file texts, lines) as it needs.
 */
#ifndef TARPITD_ADMIN_H
#define TARPITD_ADMIN_H

#include <stddef.h>
#include <stdio.h>

#include "config.h"

int admin_show(const char *path, int argc, char **argv);
int admin_set(const char *path, int argc, char **argv);
int admin_stats(const char *path, int argc, char **argv);
/* [forgive ADDR|all]: the running server's discredited sources, or clears them. */
int admin_harvest(const char *path, int argc, char **argv);
/* USER, the password on stdin (first line; prompted for, without echo and
 * twice, when stdin is a terminal), into the [auth] users file. */
int admin_passwd(const char *path, int argc, char **argv);
int admin_queue(const char *path, int argc, char **argv);

/* ---- the pure parts, exported for the unit tests ---- */

struct admin_edit {
	const char *key;   /* INI key name, e.g. "tarpit_interval" */
	const char *value; /* one line, no comment character after a space */
};

/* Applies the edits, in order, to every [connector "NAME"] section of the
 * INI text whose name equals name case-insensitively (name NULL: every
 * connector section). A key present in the section gets its value
 * replaced in place (indentation, spelling, separator, inline comment and
 * line end kept; continuation lines of the old value dropped); an absent
 * key is inserted as "key = value" after the section's last key. Returns
 * a malloc'd text (NUL-terminated, *outlen octets) or NULL when out of
 * memory; *nsections = number of sections matched. */
char *admin_rewrite(const char *text, size_t len, const char *name, const struct admin_edit *edits,
		    size_t nedits, size_t *outlen, unsigned *nsections);

/* 0 if value can stand as an INI value as it is: no control octet, and no
 * ';' or '#' that would start a comment (at the start or after white
 * space); -1 otherwise. */
int admin_value_ok(const char *value);

/* "Name,TarpitInterval, remote_ip_ranges" into field indexes
 * (conf_field_find). 0 ok; -1 with the offending item (cut, made
 * printable) in bad when one is unknown or empty; -2 more than max. */
int admin_parse_fields(const char *list, unsigned *fields, size_t max, size_t *n, char *bad,
		       size_t badlen);

/* The PowerShell-style table of `show`: header row, dashes as long as
 * each header, one row per connector (only the one named, if name is
 * not NULL, case-insensitively); columns padded to their widest cell plus
 * two spaces, no trailing spaces. 0 ok, -1 no connector of that name. */
int admin_print_table(FILE *out, const struct config *cfg, const char *name, const unsigned *fields,
		      size_t nfields);

/* The first line of in, without its LF or CRLF, into buf (NUL-terminated;
 * *len octets, which may include NULs). 0 ok; -1 empty (or nothing to
 * read); -2 longer than bufsz - 1 octets; -3 read error. */
int admin_read_password(FILE *in, char *buf, size_t bufsz, size_t *len);

#endif
