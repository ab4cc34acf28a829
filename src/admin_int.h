/* admin_int: what the admin commands (admin_*.c) share; not for other
 * modules.
 *
 * Promises: the large state of the commands is static (one command runs
 * per process, and a stack frame this large costs MIPS16 code on every
 * access); every message is one "tarpitd: ..." line on stderr.
 */
#ifndef TARPITD_ADMIN_INT_H
#define TARPITD_ADMIN_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "admin.h"
#include "config.h"

extern struct config admin_cfg; /* the INI file as the command loaded it */
extern char admin_load_err[16384];

/* Prints "tarpitd: ..." and returns status, so a command can end with it. */
int admin_fail(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* An argument quoted back, cut and made printable (log_echo), so it
 * cannot garble the terminal the error is shown on. One per message. */
const char *admin_echo(const char *s);
int admin_unknown_option(const char *cmd, const char *arg); /* 2 */
int admin_no_connector(const char *name);                   /* 1 */
int admin_out_of_memory(void);                              /* 1 */
/* config_load into admin_cfg: 0, or -1 after printing its errors. */
int admin_load_or_report(const char *path);
/* stdout, written out: 0, or 1 after saying why. */
int admin_flush_stdout(const char *cmd);
/* SIGHUP to the pid in the pidfile, if that process exists and is a
 * tarpitd (its name, or it holds the control socket); a stale pidfile is
 * reported, never signalled. */
void admin_tell_server(const char *pidfile, const char *control);
/* The pid a pidfile names (> 1), or 0. */
long long admin_read_pidfile(const char *pidfile);
/* Whether process pid runs tarpitd (/proc/PID/comm). */
bool admin_pid_is_tarpitd(long long pid);

struct buf;
/* Sends req to the running server's control socket and reads its whole
 * answer into b. 0 ok; 1 after saying why not. */
int admin_control_request(const char *req, struct buf *b);

/* A growing text; oom once an allocation failed (then it stays as it was). */
struct buf {
	char *p;
	size_t len, cap;
	bool oom;
};
void admin_put(struct buf *b, const char *s, size_t n);
void admin_puts(struct buf *b, const char *s);

enum { RD_ERR = -1, RD_POLL = -2, RD_BIG = -3, RD_OOM = -4, RD_TIME = -5 };
/* fd to its end into b, at most max octets. With a deadline (util_now_ms's
 * clock; 0 none), a wait that reaches it gives RD_TIME. 0 ok, else an
 * RD_ code with errno set. */
int admin_read_all(int fd, struct buf *b, size_t max, uint64_t deadline);

#endif
