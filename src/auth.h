/* auth: SMTP AUTH as a whole, for the modules that use all of it.
 *
 * Promises: nothing of its own; it gathers the three parts, each with its
 * own promises: sasl.h (the pure base64 and SASL PLAIN parsers),
 * users.h (the users file: load, verify) and passwd.h (the writer behind
 * `tarpitd passwd`). New code includes the part it needs.
 */
#ifndef TARPITD_AUTH_H
#define TARPITD_AUTH_H

#include "passwd.h"
#include "sasl.h"
#include "users.h"

#endif
