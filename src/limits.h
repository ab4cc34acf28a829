/* limits: every compile-time limit, in one place (as dropbear's
 * default_options.h). Each is a fixed size that memory or code was laid
 * out for; the reason is given with it.
 *
 * Promises: only macros, nothing to link. The name is the system's: a
 * file compiled with -Isrc (unit tests, fuzzers) that asks for <limits.h>
 * lands here, so this header passes it on to the system's first, outside
 * its own guard (found by "limits.h", the next one is this file again
 * through -Isrc, whose #include_next then reaches the system's).
 */
#ifdef __clang__
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Winclude-next-absolute-path"
#endif
#include_next <limits.h>
#ifdef __clang__
#pragma clang diagnostic pop
#endif

#ifndef TARPITD_LIMITS_H
#define TARPITD_LIMITS_H

/* transport, listeners, control */

/* Distinct bindings over all connectors: the listener table is static. */
#define MAX_LISTENERS 64
/* Connections accepted per readiness of one listener, so one busy
 * listener cannot hold the loop. */
#define ACCEPT_BATCH 64
/* Lingering close: how long the last reply gets to reach the client
 * while its further input is discarded. */
#define LINGER_MS 2000
/* Housekeeping period: recipient file check, accept resume. */
#define TICK_MS 1000
/* A TLS handshake must finish within this. */
#define HANDSHAKE_MS 30000
/* Control clients served at once; more are refused. */
#define CONTROL_CLIENTS 4
/* Replies queued per connection; then the transport stops reading
 * (back-pressure). 16 covers a full pipelined group and its 421. */
#define OUTQ_MAX 16
/* Shared read buffer: message data is filtered in pieces of this. */
#define READ_BUF 16384
/* A TLS read during message data: no larger than the line buffer
 * (SMTP_LINE_MAX), so what follows the end of data fits there. */
#define TLS_READ_CHUNK 512

#endif
