/* ban: what the transport tells the harvest table, and the ban hook.
 *
 * Promises: one observer call, ban_offence(), for everything the harvest
 * table hears of a connection; it counts only where the tarpit applies
 * (trusted connectors, T = 0, and authenticated senders never count), logs
 * a source's discredit once, and runs the [harvest] ban command for it at
 * most once per window: argv split once at load, the address as its own
 * word, no shell, posix_spawn so the loop never waits, children reaped on
 * SIGCHLD. After `user =` the command is run by the privileged helper
 * (priv.h) with CAP_NET_ADMIN, and its failures come back as answers.
 * Nothing allocates after ban_init().
 */
#ifndef TARPITD_BAN_H
#define TARPITD_BAN_H

#include <stdbool.h>
#include <stdint.h>

struct conn;

enum ban_event {
	BAN_GREETING,     /* the greeting is due: is the source a known harvester? */
	BAN_UNKNOWN_RCPT, /* a recipient was unknown (550) */
	BAN_AUTH_FAILED,  /* an AUTH failed (535): counted as an unknown recipient is */
	BAN_HANGUP,       /* the client hung up while a tarpitted reply was pending */
	BAN_RCPT,         /* a RCPT reply is due: was the source discredited meanwhile? */
};

/* Whether the source of c is discredited now (SPEC §8). */
bool ban_offence(enum ban_event ev, struct conn *c);

/* At start, with a harvest table: the ban command's stdin and stdout. */
void ban_init(void);
void ban_fini(void);
/* SIGCHLD: reaps the ban commands, counting those that failed. */
void ban_reap(void);
/* The privileged helper's answers are readable (TAG_PRIV). */
void ban_helper_event(void);

/* discredits_total, bans_total, ban_failures (for the stats line). */
void ban_counters(uint64_t v[3]);

#endif
