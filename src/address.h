/* address: RFC 5321 paths in MAIL FROM / RCPT TO, parsed the way Postfix
 * accepts them.
 *
 * Promises: pure, no allocation. Brackets may be omitted and a space may
 * follow the colon; source routes are accepted and dropped; quoted local
 * parts and address literals are valid; a local part over 64 octets, a
 * domain over 255 or a path over 256 is a syntax error (SPEC §7).
 */
#ifndef TARPITD_ADDRESS_H
#define TARPITD_ADDRESS_H

#include <stdbool.h>
#include <stddef.h>

#include "limits.h"

/* s/len: the text after "FROM:" or "TO:". On success copies the mailbox
 * (no brackets, no source route; "" for <>) NUL-terminated into out
 * (ADDRESS_MAX + 1 octets), sets *out_len and *rest to the offset of the
 * parameters (spaces skipped). Returns 0, or -1 on a syntax error. A
 * mailbox without '@' is returned as is (the caller decides whether a bare
 * "postmaster" is allowed). */
int address_parse_path(const char *s, size_t len, char *out, size_t *out_len, size_t *rest);

#endif
