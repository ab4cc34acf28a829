/* ini_line: what one line of the INI file is, for every reader of it.
 *
 * Promises: the one line model of the INI file. config_load hands inih
 * only the key lines this module finds, rebuilt as "key=value" from its
 * spans, and `tarpitd set` edits the line this module says holds a key,
 * so the loader and the editor cannot disagree on which line sets what.
 * Pure: no allocation, no I/O; every span is an offset into the caller's
 * text. The rules hold whatever inih's build options are:
 *  - a line ends at LF; a CR before that LF, or before the end of the
 *    text, is not part of it (ini_line_end);
 *  - a UTF-8 byte order mark opening the first line is dropped;
 *  - white space is space, tab, VT, FF and CR (util_is_ws);
 *  - ';' or '#' at the start of the text or after white space starts a
 *    comment, except between double quotes on a section header line;
 *  - an indented line after a key of the same section continues that
 *    key's value; this is decided before the '[' test, so "  [::1]:25"
 *    continues a list of bindings;
 *  - a line whose text starts with '[' is a section header;
 *  - otherwise the first '=' or ':' splits key from value, both trimmed
 *    of white space; a line without either is not a key line.
 */
#ifndef TARPITD_INI_LINE_H
#define TARPITD_INI_LINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ini_kind {
	INI_BLANK,  /* nothing but white space and a comment */
	INI_HEADER, /* [section] */
	INI_KEY,    /* key = value */
	INI_CONT,   /* indented: continues the last key's value */
	INI_OTHER,  /* text that is none of these: "expected 'key = value'" */
};

/* What one line carries over to the next: a continuation needs a key
 * line before it in the same section. */
struct ini_ctx {
	bool key_in_section;
	unsigned lines; /* lines seen, for the byte order mark of line 1 */
};

struct ini_line {
	enum ini_kind kind;
	size_t s, e;         /* the text: indentation, comment, trailing space gone */
	size_t key_s, key_e; /* INI_KEY: the key */
	size_t val_s, val_e; /* INI_KEY: the value; empty: both just after the separator */
};

/* The line starting at pos of the len-octet text t: its end (without LF
 * or the CR rules above) in *end; returns where the next line starts. */
size_t ini_line_end(const char *t, size_t len, size_t pos, size_t *end);

/* Classifies t[start..end) (one line, without its line end) and updates
 * ctx. */
void ini_line_parse(struct ini_ctx *ctx, const char *t, size_t start, size_t end, struct ini_line *l);
/* Counts a line the caller refuses without parsing it (too long). */
void ini_line_skip(struct ini_ctx *ctx);

/* A section header t[s..e) as ini_line_parse found it ('[' at s). The
 * close is the first ']' outside double quotes; the word starts after
 * '[' and white space and ends at white space, '"' or the close; arg is
 * where the text after the word and its white space starts. When arg
 * holds '"', the quoted name follows and after is past its closing
 * quote and the white space after that; otherwise after = arg. */
enum ini_hdr_status { INI_HDR_OK, INI_HDR_NO_CLOSE, INI_HDR_TRAILING };
struct ini_header {
	enum ini_hdr_status status;
	bool quoted;
	size_t close, word_s, word_e, arg, name_s, name_e, after;
};
void ini_header_parse(const char *t, size_t s, size_t e, struct ini_header *h);

/* The name of a well-formed [connector "NAME"] header (no text after the
 * closing quote, a non-empty name): true with its span; false for any
 * other header. The loader may still refuse the name (length, octets). */
bool ini_header_connector(const char *t, size_t s, size_t e, size_t *name_s, size_t *name_e);

#endif
