/* recipients: the flat recipient file of SPEC §4.
 *
 * Promises: one load builds one immutable table — a string arena and an
 * open-addressing hash, two allocations — so a lookup is a hash probe with
 * no allocation. Matching is case-insensitive. The local domains are the
 * domains named in the file; postmaster@<local domain> and bare postmaster
 * are always accepted. Tables are reference-counted so a session that
 * started a transaction on an old table keeps its mailbox ids valid across
 * a reload.
 */
#ifndef TARPITD_RECIPIENTS_H
#define TARPITD_RECIPIENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct recipients;

enum rcpt_result {
	RCPT_OK,          /* *mailbox set */
	RCPT_UNKNOWN,     /* local domain, no such user: 550 5.1.1 */
	RCPT_NOT_LOCAL,   /* domain is not ours: 550 5.7.1 */
};

/* NULL on error with "FILE:LINE: message" lines in err. */
struct recipients *recipients_load(const char *path, char *err, size_t errlen);
void recipients_ref(struct recipients *r);
void recipients_unref(struct recipients *r); /* frees at zero */

/* addr: "local@domain" or "postmaster", without brackets, any case. */
enum rcpt_result recipients_lookup(const struct recipients *r, const char *addr,
				   size_t len, uint32_t *mailbox);
/* Whether domain[0..len) (any case) is a local domain: one the file
 * names. No allocation. */
bool recipients_is_local_domain(const struct recipients *r, const char *domain, size_t len);
/* Mailbox id -> directory name (NUL-terminated, valid while r lives). */
const char *recipients_mailbox(const struct recipients *r, uint32_t mailbox);
uint32_t recipients_count(const struct recipients *r); /* entries loaded */
/* The file's modification time when it was loaded (for reload checks). */
struct timespec recipients_mtime(const struct recipients *r);

#endif
